//! The consistent read of a SQLite file — read transactions that all see the same data,
//! one per reader outside WAL mode, one shared by every reader in WAL mode — and the key
//! prober of the chunk planner.

use std::path::Path;
use std::sync::Arc;

use dts_core::{Chunk, Column, Error, KeyProber, Result, RowBatch, SnapshotReader, Table, Value};
use futures::stream::BoxStream;
// Every dynamic statement is built from quoted identifiers only; values are bound.
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteConnection, SqliteRow};
use sqlx::AssertSqlSafe;
use sqlx::{Arguments, Row, TypeInfo, ValueRef};
use tokio::sync::Mutex;

use super::error::sqlite_error;
use super::source::quote;

/// Rows fetched per turn on the shared connection.
pub(crate) const BATCH_ROWS: usize = 8192;

/// An open read transaction on a SQLite file.
pub struct SqliteSnapshot {
    conn: Arc<Mutex<SqliteConnection>>,
}

impl std::fmt::Debug for SqliteSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteSnapshot").finish_non_exhaustive()
    }
}

/// Opens `path` read-only and begins a read transaction on it. `BEGIN` is deferred: the
/// transaction (and, outside WAL mode, the shared lock that keeps writers from committing)
/// starts with the first read, done here.
async fn begin(path: &Path) -> Result<SqliteConnection> {
    let mut conn = super::source::open(path).await?;
    for sql in ["BEGIN", "SELECT count(*) FROM sqlite_schema"] {
        sqlx::query(sql)
            .execute(&mut conn)
            .await
            .map_err(|e| sqlite_error("cannot begin the read transaction", e))?;
    }
    Ok(conn)
}

impl SqliteSnapshot {
    /// Opens `path` read-only and hands out `readers` readers (at least one) that all read
    /// the same data, in read transactions that end when the last reader is dropped.
    ///
    /// Outside WAL mode each reader gets a connection of its own, all begun while the first
    /// one's shared lock keeps every writer from committing, so they read in parallel. In
    /// WAL mode, where writers go on beside readers and each transaction sees the file as
    /// it was when it began, the readers share the first connection and its one
    /// transaction, taking turns a page at a time.
    ///
    /// # Errors
    ///
    /// Open errors naming the path; database errors (a writer holding its lock past the
    /// busy timeout is [`dts_core::ErrorKind::Transient`]).
    pub async fn open(path: &Path, readers: usize) -> Result<(Self, Vec<SqliteSnapshotReader>)> {
        let mut first = begin(path).await?;
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut first)
            .await
            .map_err(|e| sqlite_error("cannot read the journal mode", e))?;
        let first = Arc::new(Mutex::new(first));
        let mut conns = vec![first.clone()];
        if !mode.eq_ignore_ascii_case("wal") {
            for _ in 1..readers {
                conns.push(Arc::new(Mutex::new(begin(path).await?)));
            }
        }
        tracing::debug!(mode = %mode, connections = conns.len(), "SQLite snapshot opened");
        let readers = (0..readers.max(1))
            .map(|i| SqliteSnapshotReader {
                conn: conns[i % conns.len()].clone(),
            })
            .collect();
        Ok((Self { conn: first }, readers))
    }

    /// Another reader in the same transaction.
    pub fn reader(&self) -> SqliteSnapshotReader {
        SqliteSnapshotReader {
            conn: self.conn.clone(),
        }
    }
}

/// A reader of one [`SqliteSnapshot`]: chunks of a table by key range, read in batches of
/// keyset pages, each batch a turn on the shared connection.
pub struct SqliteSnapshotReader {
    conn: Arc<Mutex<SqliteConnection>>,
}

impl std::fmt::Debug for SqliteSnapshotReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteSnapshotReader")
            .finish_non_exhaustive()
    }
}

/// The SQL a key column is read by: a column, or the table's `rowid` when the key is
/// `rowid` and no column has that name (then under whichever of its names no column
/// takes).
fn key_sql(table: &Table, key: &str) -> Result<String> {
    if table.column(key).is_some() {
        return Ok(quote(key));
    }
    if key == dts_schema::ROWID {
        let taken = |n: &str| table.columns.iter().any(|c| c.name.eq_ignore_ascii_case(n));
        return ["rowid", "_rowid_", "oid"]
            .into_iter()
            .find(|n| !taken(n))
            .map(str::to_string)
            .ok_or_else(|| {
                Error::new(
                    dts_core::ErrorKind::Unsupported,
                    format!(
                        "table `{}` has columns named rowid, _rowid_ and oid and no key: its \
                         rows cannot be told apart",
                        table.name
                    ),
                )
            });
    }
    Err(Error::internal(format!(
        "key column `{key}` is not a column of `{}`",
        table.name
    )))
}

/// `(a, b)`.
fn tuple(items: &[String]) -> String {
    format!("({})", items.join(", "))
}

/// `(?, ?)` for `n` values.
fn params(n: usize) -> String {
    tuple(&vec!["?".to_string(); n])
}

fn bind(args: &mut SqliteArguments, values: &[Value]) -> Result<()> {
    for v in values {
        let r = match v {
            Value::Null => args.add(None::<i64>),
            Value::Int(i) => args.add(*i),
            Value::Double(f) => args.add(*f),
            Value::Text(s) => args.add(s.clone()),
            Value::Bytes(b) => args.add(b.clone()),
            other => {
                return Err(Error::internal(format!(
                    "a SQLite key bound to a {} value",
                    other.kind()
                )))
            }
        };
        r.map_err(|e| Error::internal(format!("cannot bind a SQLite key value: {e}")))?;
    }
    Ok(())
}

/// One stored value, by its storage class: `Int`, `Double`, `Text`, `Bytes` (a blob, or
/// text that is not UTF-8) or `Null`.
pub(crate) fn stored_value(row: &SqliteRow, i: usize) -> Result<Value> {
    let err = |e| sqlite_error("cannot read a SQLite value", e);
    let raw = row.try_get_raw(i).map_err(err)?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let class = raw.type_info();
    Ok(match class.name() {
        "INTEGER" => Value::Int(row.try_get_unchecked::<i64, _>(i).map_err(err)?),
        "REAL" => Value::Double(row.try_get_unchecked::<f64, _>(i).map_err(err)?),
        "TEXT" => {
            let bytes: Vec<u8> = row.try_get_unchecked(i).map_err(err)?;
            match String::from_utf8(bytes) {
                Ok(s) => Value::Text(s),
                Err(e) => Value::Bytes(e.into_bytes()),
            }
        }
        _ => Value::Bytes(row.try_get_unchecked::<Vec<u8>, _>(i).map_err(err)?),
    })
}

impl SqliteSnapshotReader {
    /// The columns a reader delivers for `table`, in order: every column but generated
    /// ones (the target computes those).
    pub fn columns_read(table: &Table) -> Vec<&Column> {
        table
            .columns
            .iter()
            .filter(|c| c.generated.is_none())
            .collect()
    }
}

/// A chunk's query without its page condition.
struct ChunkQuery {
    /// `SELECT cols, keys FROM t WHERE … ` (ends with `WHERE 1` when nothing else).
    select: String,
    /// The key columns as SQL.
    keys: Vec<String>,
    /// Values bound to the chunk's own conditions.
    bounds: Vec<Value>,
    /// How many columns are delivered (the keys follow them).
    width: usize,
}

fn chunk_query(table: &Table, chunk: &Chunk) -> Result<ChunkQuery> {
    let cols: Vec<String> = SqliteSnapshotReader::columns_read(table)
        .iter()
        .map(|c| quote(&c.name))
        .collect();
    let keys: Vec<String> = chunk
        .key
        .iter()
        .map(|k| key_sql(table, k))
        .collect::<Result<_>>()?;
    let mut select = format!(
        "SELECT {} FROM {} WHERE 1",
        cols.iter()
            .chain(keys.iter())
            .cloned()
            .collect::<Vec<_>>()
            .join(", "),
        quote(&table.name.name)
    );
    let mut bounds = Vec::new();
    let k = tuple(&keys);
    if chunk.is_point() {
        select.push_str(&format!(" AND {k} = {}", params(keys.len())));
        bounds.extend(chunk.lower.clone().unwrap_or_default());
    } else {
        if let Some(l) = &chunk.lower {
            select.push_str(&format!(" AND {k} >= {}", params(keys.len())));
            bounds.extend(l.iter().cloned());
        }
        if let Some(u) = &chunk.upper {
            select.push_str(&format!(" AND {k} < {}", params(keys.len())));
            bounds.extend(u.iter().cloned());
        }
    }
    Ok(ChunkQuery {
        select,
        keys,
        bounds,
        width: cols.len(),
    })
}

impl SnapshotReader for SqliteSnapshotReader {
    fn read_chunk<'a>(
        &'a mut self,
        table: &'a Table,
        chunk: &'a Chunk,
    ) -> BoxStream<'a, Result<RowBatch>> {
        let conn = self.conn.clone();
        let query = match chunk_query(table, chunk) {
            Ok(q) => q,
            Err(e) => return Box::pin(futures::stream::once(async move { Err(e) })),
        };
        // State: the last key read (`None` before the first page), the rows skipped by a
        // keyless read, and whether the last page was the end.
        let state = (None::<Vec<Value>>, 0usize, false);
        Box::pin(futures::stream::try_unfold(
            (state, query, conn),
            move |((after, offset, done), query, conn)| async move {
                if done {
                    return Ok(None);
                }
                let q = &query;
                let mut sql = q.select.clone();
                let mut args = SqliteArguments::default();
                bind(&mut args, &q.bounds)?;
                if q.keys.is_empty() {
                    sql.push_str(&format!(" LIMIT {BATCH_ROWS} OFFSET {offset}"));
                } else {
                    if let Some(a) = &after {
                        sql.push_str(&format!(
                            " AND {} > {}",
                            tuple(&q.keys),
                            params(q.keys.len())
                        ));
                        bind(&mut args, a)?;
                    }
                    sql.push_str(&format!(
                        " ORDER BY {} LIMIT {BATCH_ROWS}",
                        q.keys.join(", ")
                    ));
                }
                let rows: Vec<SqliteRow> = {
                    let mut c = conn.lock().await;
                    sqlx::query_with::<Sqlite, _>(AssertSqlSafe(sql), args)
                        .fetch_all(&mut *c)
                        .await
                        .map_err(|e| {
                            sqlite_error(
                                format!("cannot read chunk {} of `{}`", chunk.index, table.name),
                                e,
                            )
                        })?
                };
                if rows.is_empty() {
                    return Ok(None);
                }
                let end = rows.len() < BATCH_ROWS;
                let mut batch = RowBatch::with_capacity(rows.len());
                let mut last = None;
                for (n, row) in rows.iter().enumerate() {
                    let mut values = Vec::with_capacity(q.width);
                    for i in 0..q.width {
                        values.push(stored_value(row, i)?);
                    }
                    if n + 1 == rows.len() && !q.keys.is_empty() {
                        let mut key = Vec::with_capacity(q.keys.len());
                        for i in q.width..q.width + q.keys.len() {
                            key.push(stored_value(row, i)?);
                        }
                        last = Some(key);
                    }
                    batch.push(values);
                }
                let next = (last, offset + rows.len(), end);
                Ok(Some((batch, (next, query, conn))))
            },
        ))
    }

    fn key_prober<'a>(
        &'a mut self,
        table: &'a Table,
        key: &'a [String],
    ) -> Result<Box<dyn KeyProber + 'a>> {
        let keys: Vec<String> = key
            .iter()
            .map(|k| key_sql(table, k))
            .collect::<Result<_>>()?;
        Ok(Box::new(SqliteKeyProber {
            conn: self.conn.clone(),
            table: quote(&table.name.name),
            name: table.name.to_string(),
            keys,
        }))
    }
}

/// The chunk planner's prober over a SQLite table's key, in the snapshot's transaction.
struct SqliteKeyProber {
    conn: Arc<Mutex<SqliteConnection>>,
    table: String,
    name: String,
    keys: Vec<String>,
}

impl SqliteKeyProber {
    async fn one(&self, sql: String, args: SqliteArguments) -> Result<Option<Vec<Value>>> {
        let mut c = self.conn.lock().await;
        let row = sqlx::query_with::<Sqlite, _>(AssertSqlSafe(sql), args)
            .fetch_optional(&mut *c)
            .await
            .map_err(|e| sqlite_error(format!("cannot probe the key of `{}`", self.name), e))?;
        row.map(|r| (0..self.keys.len()).map(|i| stored_value(&r, i)).collect())
            .transpose()
    }
}

#[dts_core::async_trait]
impl KeyProber for SqliteKeyProber {
    async fn key_after(
        &mut self,
        after: Option<&[Value]>,
        step: u64,
    ) -> Result<Option<Vec<Value>>> {
        let k = self.keys.join(", ");
        let mut sql = format!("SELECT {k} FROM {}", self.table);
        let mut args = SqliteArguments::default();
        if let Some(a) = after {
            sql.push_str(&format!(" WHERE ({k}) > {}", params(self.keys.len())));
            bind(&mut args, a)?;
        }
        sql.push_str(&format!(
            " ORDER BY {k} LIMIT 1 OFFSET {}",
            step.saturating_sub(1)
        ));
        self.one(sql, args).await
    }

    async fn key_range(&mut self) -> Result<Option<(Vec<Value>, Vec<Value>)>> {
        let k = self.keys.join(", ");
        let desc = self
            .keys
            .iter()
            .map(|k| format!("{k} DESC"))
            .collect::<Vec<_>>()
            .join(", ");
        let first = self
            .one(
                format!("SELECT {k} FROM {} ORDER BY {k} LIMIT 1", self.table),
                SqliteArguments::default(),
            )
            .await?;
        let last = self
            .one(
                format!("SELECT {k} FROM {} ORDER BY {desc} LIMIT 1", self.table),
                SqliteArguments::default(),
            )
            .await?;
        Ok(first.zip(last))
    }
}
