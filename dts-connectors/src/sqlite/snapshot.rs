//! The consistent read of a SQLite file — read transactions that all see the same data,
//! one per reader outside WAL mode, one shared by every reader in WAL mode — and the key
//! prober of the chunk planner.

use std::path::Path;

use dts_core::{
    Chunk, Column, Error, KeyProber, Result, RowBatch, RowEncoding, SnapshotReader, Table, Value,
};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
// Every dynamic statement is built from quoted identifiers only; values are bound.
use rusqlite::types::Value as Bound;
use rusqlite::Connection;

use super::conn::Conn;
use super::encode::{value_of, SqlitePgEncoder};
use super::error::sqlite_error;
use super::source::quote;

/// Rows fetched per turn on the shared connection.
pub(crate) const BATCH_ROWS: usize = 8192;

/// An open read transaction on a SQLite file.
pub struct SqliteSnapshot {
    conn: Conn,
}

impl std::fmt::Debug for SqliteSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteSnapshot").finish_non_exhaustive()
    }
}

/// Opens `path` read-only and begins a read transaction on it. `BEGIN` is deferred: the
/// transaction (and, outside WAL mode, the shared lock that keeps writers from committing)
/// starts with the first read, done here.
async fn begin(path: &Path) -> Result<Conn> {
    let conn = Conn::open(path).await?;
    conn.run(|c| {
        c.execute_batch("BEGIN")
            .and_then(|()| c.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(())))
            .map_err(|e| sqlite_error("cannot begin the read transaction", e))
    })
    .await?;
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
        let first = begin(path).await?;
        let mode: String = first
            .run(|c| {
                c.query_row("PRAGMA journal_mode", [], |r| r.get(0))
                    .map_err(|e| sqlite_error("cannot read the journal mode", e))
            })
            .await?;
        let mut conns = vec![first.clone()];
        if !mode.eq_ignore_ascii_case("wal") {
            for _ in 1..readers {
                conns.push(begin(path).await?);
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
    conn: Conn,
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

/// Values bound to a statement.
fn bound(values: &[Value]) -> Result<Vec<Bound>> {
    values
        .iter()
        .map(|v| {
            Ok(match v {
                Value::Null => Bound::Null,
                Value::Int(i) => Bound::Integer(*i),
                Value::Double(f) => Bound::Real(*f),
                Value::Text(s) => Bound::Text(s.clone()),
                Value::Bytes(b) => Bound::Blob(b.clone()),
                other => {
                    return Err(Error::internal(format!(
                        "a SQLite key bound to a {} value",
                        other.kind()
                    )))
                }
            })
        })
        .collect()
}

/// Columns `from..to` of `row` as stored values (see [`value_of`]).
pub(crate) fn stored_values(row: &rusqlite::Row<'_>, from: usize, to: usize) -> Result<Vec<Value>> {
    (from..to)
        .map(|i| {
            row.get_ref(i)
                .map(value_of)
                .map_err(|e| sqlite_error("cannot read a SQLite value", e))
        })
        .collect()
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

/// One page of a chunk: its rows (as values, or encoded with the rows the encoder left as
/// values), how many there were, and the key of the last one.
struct Page {
    batch: RowBatch,
    rows: usize,
    last: Option<Vec<Value>>,
}

/// Reads one page: `sql` with `args` bound, at most [`BATCH_ROWS`] rows of `width`
/// delivered columns followed by `keys` key columns.
fn read_page(
    c: &Connection,
    sql: &str,
    args: &[Bound],
    width: usize,
    keys: usize,
    encoder: Option<&mut SqlitePgEncoder>,
) -> rusqlite::Result<Result<Page>> {
    let mut st = c.prepare(sql)?;
    let mut rows = st.query(rusqlite::params_from_iter(args))?;
    let mut batch = RowBatch::with_capacity(if encoder.is_some() { 0 } else { BATCH_ROWS });
    let mut encoded = bytes::BytesMut::new();
    let mut encoded_rows = 0u64;
    let mut count = 0;
    let mut last = None;
    let mut encoder = encoder;
    while let Some(row) = rows.next()? {
        count += 1;
        let converted = encoder
            .as_deref_mut()
            .is_some_and(|e| e.encode_row(row, &mut encoded));
        if converted {
            encoded_rows += 1;
        } else {
            match stored_values(row, 0, width) {
                Ok(values) => batch.push(values),
                Err(e) => return Ok(Err(e)),
            }
        }
        if count == BATCH_ROWS && keys > 0 {
            match stored_values(row, width, width + keys) {
                Ok(key) => last = Some(key),
                Err(e) => return Ok(Err(e)),
            }
        }
    }
    if encoder.is_some() {
        batch.size_bytes += encoded.len();
        batch.encoded = Some(dts_core::EncodedRows {
            rows: encoded_rows,
            data: Vec::from(encoded),
        });
    }
    Ok(Ok(Page {
        batch,
        rows: count,
        last,
    }))
}

/// Where a chunk's read is: the last key read (`None` before the first page), the rows
/// skipped by a keyless read, and whether the last page was the end.
struct ReadState {
    after: Option<Vec<Value>>,
    offset: usize,
    done: bool,
    encoder: Option<SqlitePgEncoder>,
}

impl SqliteSnapshotReader {
    /// The pages of `chunk`, each read in one turn on the connection.
    fn read_pages<'a>(
        &'a mut self,
        table: &'a Table,
        chunk: &'a Chunk,
        encoder: Option<SqlitePgEncoder>,
    ) -> BoxStream<'a, Result<RowBatch>> {
        let conn = self.conn.clone();
        let query = match chunk_query(table, chunk) {
            Ok(q) => q,
            Err(e) => return Box::pin(futures::stream::once(async move { Err(e) })),
        };
        let state = ReadState {
            after: None,
            offset: 0,
            done: false,
            encoder,
        };
        Box::pin(futures::stream::try_unfold(
            (state, query, conn),
            move |(state, query, conn)| async move {
                if state.done {
                    return Ok(None);
                }
                let q = &query;
                let mut sql = q.select.clone();
                let mut args = bound(&q.bounds)?;
                if q.keys.is_empty() {
                    sql.push_str(&format!(" LIMIT {BATCH_ROWS} OFFSET {}", state.offset));
                } else {
                    if let Some(a) = &state.after {
                        sql.push_str(&format!(
                            " AND {} > {}",
                            tuple(&q.keys),
                            params(q.keys.len())
                        ));
                        args.extend(bound(a)?);
                    }
                    sql.push_str(&format!(
                        " ORDER BY {} LIMIT {BATCH_ROWS}",
                        q.keys.join(", ")
                    ));
                }
                let (width, keys) = (q.width, q.keys.len());
                let context = format!("cannot read chunk {} of `{}`", chunk.index, table.name);
                let mut encoder = state.encoder;
                let (page, encoder) = conn
                    .run(move |c| {
                        let page = read_page(c, &sql, &args, width, keys, encoder.as_mut())
                            .map_err(|e| sqlite_error(context, e))
                            .and_then(|p| p);
                        Ok((page, encoder))
                    })
                    .await?;
                let page = page?;
                if page.rows == 0 {
                    return Ok(None);
                }
                let next = ReadState {
                    done: page.rows < BATCH_ROWS,
                    offset: state.offset + page.rows,
                    after: page.last,
                    encoder,
                };
                Ok(Some((page.batch, (next, query, conn))))
            },
        ))
    }
}

impl SnapshotReader for SqliteSnapshotReader {
    fn read_chunk<'a>(
        &'a mut self,
        table: &'a Table,
        chunk: &'a Chunk,
    ) -> BoxStream<'a, Result<RowBatch>> {
        self.read_pages(table, chunk, None)
    }

    /// [`RowEncoding::PgBinaryCopy`] of the types the default SQLite → PostgreSQL mapping
    /// gives the columns read: each page is then converted straight into a PostgreSQL
    /// target's binary `COPY` form, exactly as that mapping and the PostgreSQL sink would
    /// (rows holding a value the mapping refuses come as values).
    #[cfg(feature = "postgres")]
    fn row_encoding<'a>(
        &'a mut self,
        table: &'a Table,
    ) -> BoxFuture<'a, Result<Option<RowEncoding>>> {
        let offer = SqlitePgEncoder::offer(&Self::columns_read(table));
        Box::pin(futures::future::ready(Ok(Some(offer))))
    }

    #[cfg(feature = "postgres")]
    fn read_chunk_encoded<'a>(
        &'a mut self,
        table: &'a Table,
        chunk: &'a Chunk,
        encoding: &'a RowEncoding,
    ) -> BoxStream<'a, Result<RowBatch>> {
        match SqlitePgEncoder::new(table, &Self::columns_read(table), encoding) {
            Ok(encoder) => self.read_pages(table, chunk, Some(encoder)),
            Err(e) => Box::pin(futures::stream::once(async move { Err(e) })),
        }
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
    conn: Conn,
    table: String,
    name: String,
    keys: Vec<String>,
}

impl SqliteKeyProber {
    async fn one(&self, sql: String, args: Vec<Bound>) -> Result<Option<Vec<Value>>> {
        let n = self.keys.len();
        let context = format!("cannot probe the key of `{}`", self.name);
        self.conn
            .run(move |c| {
                let probe = || -> rusqlite::Result<Option<Result<Vec<Value>>>> {
                    let mut st = c.prepare(&sql)?;
                    let mut rows = st.query(rusqlite::params_from_iter(&args))?;
                    Ok(rows.next()?.map(|r| stored_values(r, 0, n)))
                };
                probe().map_err(|e| sqlite_error(context, e))?.transpose()
            })
            .await
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
        let mut args = Vec::new();
        if let Some(a) = after {
            sql.push_str(&format!(" WHERE ({k}) > {}", params(self.keys.len())));
            args = bound(a)?;
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
                Vec::new(),
            )
            .await?;
        let last = self
            .one(
                format!("SELECT {k} FROM {} ORDER BY {desc} LIMIT 1", self.table),
                Vec::new(),
            )
            .await?;
        Ok(first.zip(last))
    }
}
