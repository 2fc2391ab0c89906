//! A consistent snapshot of a PostgreSQL source shared by parallel readers, with the WAL
//! position change capture starts at.
//!
//! The snapshot comes from a logical replication slot created on a replication connection
//! with `EXPORT_SNAPSHOT` (`CREATE_REPLICATION_SLOT … LOGICAL pgoutput EXPORT_SNAPSHOT`, the
//! spelling every supported version reads; PostgreSQL 15 also reads `(SNAPSHOT 'export')`):
//! the server returns the slot's consistent point and the name of a snapshot that shows
//! exactly the transactions committed before it. Every reader imports that snapshot
//! (`SET TRANSACTION SNAPSHOT`) in a `REPEATABLE READ` transaction, so all readers see the
//! same data, and decoding from the slot's consistent point delivers exactly the
//! transactions the snapshot does not show: no gap, no overlap.
//!
//! `pg_export_snapshot()` in a transaction plus `pg_create_logical_replication_slot()` is
//! not the same: the slot's consistent point is reached later than, and independently of,
//! the exported snapshot, so transactions committing in between would be both in the copy
//! and in the stream, or in neither.
//!
//! The slot is created `TEMPORARY`: the server drops it when the replication connection
//! ends, which this type does as soon as every reader has imported the snapshot (the
//! imported snapshots stay valid in the readers' transactions). A killed run leaves no slot
//! behind. Change capture, which must keep its slot across runs, creates a permanent slot
//! the same way ([`SlotLifetime::Permanent`]) and streams from it later on a replication
//! connection of its own.

use bytes::Bytes;
use dts_core::{
    Chunk, Error, ErrorKind, KeyProber, Lsn, Position, Result, RowBatch, SnapshotReader, Table,
    Value,
};
use futures::stream::{self, BoxStream, StreamExt};
use futures::TryStreamExt;
use tokio_postgres::Client;

use super::connect_source;
use super::decode::{CopyParser, Decoder};
use super::replication::ReplicationConnection;
use crate::postgres::error::map_error;
use crate::postgres::options::PgConnectOptions;

/// Rows per batch a reader yields at most.
const BATCH_ROWS: usize = 2048;
/// Bytes per batch a reader yields at most (a batch ends after the row that crosses it).
const BATCH_BYTES: usize = 4 << 20;

/// The base types of a table's columns, a domain resolved to the type it is over.
const SELECT_COLUMN_TYPES: &str = "\
    SELECT a.attname::text, b.oid, b.typtype::text, \
           CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END, \
           c.relkind = 'p' \
    FROM pg_attribute a \
    JOIN pg_class c ON c.oid = a.attrelid \
    JOIN pg_namespace n ON n.oid = c.relnamespace \
    JOIN pg_type t ON t.oid = a.atttypid \
    JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END \
    WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped";

/// How long the replication slot a snapshot is taken with lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlotLifetime {
    /// Dropped by the server as soon as every reader has imported the snapshot (or the
    /// process dies): a full load alone.
    Temporary,
    /// Kept until dropped: change capture streams from it, starting at the snapshot's
    /// position.
    Permanent,
}

/// A consistent snapshot: its WAL position and the readers sharing it.
#[derive(Debug)]
pub struct PgSnapshot {
    /// The slot's consistent point: change capture continues from here.
    pub position: Position,
    /// The name of the exported snapshot (valid only while it is being imported).
    pub snapshot_name: String,
}

/// Quotes an identifier with double quotes.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl PgSnapshot {
    /// Opens `readers` (at least one) connections that all see one snapshot, taken by
    /// creating the temporary logical replication slot `slot` on a replication connection.
    ///
    /// # Errors
    ///
    /// Connection and privilege errors (the account needs the `REPLICATION` attribute and
    /// `wal_level` must be `logical`); [`ErrorKind::Config`] when no replication slot is
    /// free.
    pub async fn open(
        options: &PgConnectOptions,
        readers: usize,
        slot: &str,
    ) -> Result<(Self, Vec<PgSnapshotReader>)> {
        Self::open_with(options, readers, slot, SlotLifetime::Temporary).await
    }

    /// Like [`PgSnapshot::open`], with a slot that lives as `lifetime` says: a permanent
    /// slot stays after the readers imported the snapshot, so that change capture streams
    /// from the snapshot's position (its consistent point) with no gap and no overlap.
    ///
    /// # Errors
    ///
    /// As [`PgSnapshot::open`]; the server's error when a slot of that name exists.
    pub async fn open_with(
        options: &PgConnectOptions,
        readers: usize,
        slot: &str,
        lifetime: SlotLifetime,
    ) -> Result<(Self, Vec<PgSnapshotReader>)> {
        let mut repl = ReplicationConnection::connect(options).await?;
        let rows = repl
            .simple_query(
                &format!(
                    "CREATE_REPLICATION_SLOT {}{} LOGICAL pgoutput EXPORT_SNAPSHOT",
                    quote_ident(slot),
                    match lifetime {
                        SlotLifetime::Temporary => " TEMPORARY",
                        SlotLifetime::Permanent => "",
                    }
                ),
                &format!("creating replication slot `{slot}`"),
            )
            .await?;
        let row = rows.first().ok_or_else(|| {
            Error::new(
                ErrorKind::Database,
                "CREATE_REPLICATION_SLOT returned no row",
            )
        })?;
        let field = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        let lsn: Lsn = field(1).parse().map_err(|e| {
            Error::new(ErrorKind::Database, "bad consistent point from the server").with_source(e)
        })?;
        let snapshot_name = field(2);
        let mut out = Vec::with_capacity(readers.max(1));
        for _ in 0..readers.max(1) {
            let client = connect_source(options).await?;
            client
                .batch_execute(&format!(
                    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
                     SET TRANSACTION SNAPSHOT '{}'",
                    snapshot_name.replace('\'', "''")
                ))
                .await
                .map_err(|e| map_error(e, "importing the source snapshot"))?;
            out.push(PgSnapshotReader { client });
        }
        // Every reader holds the snapshot now; ending the replication connection drops a
        // temporary slot (a permanent one stays).
        repl.close().await;
        Ok((
            Self {
                position: Position::Lsn(lsn),
                snapshot_name,
            },
            out,
        ))
    }
}

/// Reads chunks of tables from one imported snapshot, through binary `COPY`.
pub struct PgSnapshotReader {
    client: Client,
}

impl std::fmt::Debug for PgSnapshotReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSnapshotReader").finish_non_exhaustive()
    }
}

impl PgSnapshotReader {
    /// A reader in a snapshot of its own (`REPEATABLE READ`, taken at its first read),
    /// without a log position and without a replication slot: for reads that need a
    /// snapshot taken after some moment, not its exact position.
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub async fn open_plain(options: &PgConnectOptions) -> Result<Self> {
        let client = connect_source(options).await?;
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(|e| map_error(e, "opening a source snapshot"))?;
        Ok(Self { client })
    }
    /// The columns a reader delivers for `table`, in order: every column but generated
    /// ones (the target computes those).
    pub fn columns_read(table: &Table) -> Vec<&dts_core::Column> {
        table
            .columns
            .iter()
            .filter(|c| c.generated.is_none())
            .collect()
    }
}

/// One column as it is selected and decoded.
#[derive(Debug, Clone)]
struct ReadColumn {
    name: String,
    decoder: Decoder,
    as_text: bool,
    /// The base type.
    oid: u32,
}

/// The columns `names` of `table` as they are selected and decoded, and the `FROM` clause
/// that reads the table: `ONLY` the table itself (not its inheritance children), or, for a
/// partitioned table, the table with all its partitions.
async fn read_columns(
    client: &Client,
    table: &Table,
    names: &[&str],
) -> Result<(Vec<ReadColumn>, String)> {
    let rows = client
        .query(SELECT_COLUMN_TYPES, &[&table.name.schema, &table.name.name])
        .await
        .map_err(|e| map_error(e, format!("reading the column types of `{}`", table.name)))?;
    let partitioned = rows.first().is_some_and(|r| r.get::<_, bool>(4));
    let from = format!(
        "{}{}.{}",
        if partitioned { "" } else { "ONLY " },
        quote_ident(&table.name.schema),
        quote_ident(&table.name.name)
    );
    let columns = names
        .iter()
        .map(|name| {
            let row = rows
                .iter()
                .find(|r| r.get::<_, String>(0) == *name)
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::Conflict,
                        format!(
                            "column `{}.{name}` does not exist in the snapshot",
                            table.name
                        ),
                    )
                })?;
            let oid: u32 = row.get(1);
            let typtype: String = row.get(2);
            let decoder = Decoder::of(oid, row.get(3));
            Ok(ReadColumn {
                name: (*name).to_string(),
                decoder,
                as_text: decoder.selects_text(oid, &typtype),
                oid,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((columns, from))
}

fn select_list(columns: &[ReadColumn]) -> String {
    columns
        .iter()
        .map(|c| {
            if c.as_text {
                Decoder::text_select(&quote_ident(&c.name), c.oid)
            } else {
                quote_ident(&c.name)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A value as an SQL literal of the key column's type (`COPY` takes no parameters).
fn literal(value: &Value) -> Result<String> {
    let quoted = |s: &str| format!("'{}'", s.replace('\'', "''"));
    Ok(match value {
        Value::Null => "NULL".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => quoted(&format!("{f:?}")),
        Value::Double(f) => quoted(&format!("{f:?}")),
        Value::Decimal(d) => quoted(d.as_str()),
        Value::Text(s) | Value::Json(s) => quoted(s),
        Value::Bytes(b) => {
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            format!("'\\x{hex}'")
        }
        Value::Date(d) => quoted(&d.to_string()),
        Value::DateTime(d) | Value::Timestamp(d) => quoted(&d.to_string()),
        Value::Time(t) => quoted(&t.to_string()),
        other => {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("a {} value cannot bound a chunk", other.kind()),
            ))
        }
    })
}

/// `(k1, k2) <op> (v1::type, v2::type)`, the values cast to the key columns' own types.
fn key_condition(table: &Table, key: &[String], op: &str, values: &[Value]) -> Result<String> {
    let mut cols = Vec::new();
    let mut lits = Vec::new();
    for (name, value) in key.iter().zip(values) {
        let column = table.column(name).ok_or_else(|| {
            Error::new(
                ErrorKind::Conflict,
                format!("key column `{}.{name}` does not exist", table.name),
            )
        })?;
        cols.push(quote_ident(name));
        lits.push(format!("{}::{}", literal(value)?, column.source_type));
    }
    Ok(format!("({}) {op} ({})", cols.join(", "), lits.join(", ")))
}

/// Runs a binary `COPY` of `sql` and yields its rows decoded, in batches.
fn copy_rows<'a>(
    client: &'a Client,
    sql: String,
    columns: Vec<ReadColumn>,
    context: String,
) -> BoxStream<'a, Result<RowBatch>> {
    let start = async move {
        let copy = client
            .copy_out(&sql)
            .await
            .map_err(|e| map_error(e, context.clone()))?;
        Ok::<_, Error>((copy, columns, context))
    };
    stream::once(start)
        .map_ok(|(copy, columns, context)| {
            let parser = CopyParser::default();
            let state = (Box::pin(copy), parser, columns, context, false);
            stream::try_unfold(
                state,
                |(mut copy, mut parser, columns, context, mut done)| async move {
                    let mut batch = RowBatch::with_capacity(BATCH_ROWS);
                    loop {
                        while let Some(fields) = parser.next_row()? {
                            batch.push(decode_row(&columns, fields, &context)?);
                            if batch.len() >= BATCH_ROWS || batch.size_bytes >= BATCH_BYTES {
                                return Ok(Some((batch, (copy, parser, columns, context, done))));
                            }
                        }
                        if done {
                            return Ok(if batch.is_empty() {
                                None
                            } else {
                                Some((batch, (copy, parser, columns, context, done)))
                            });
                        }
                        match copy.as_mut().try_next().await {
                            Ok(Some(data)) => {
                                let data: Bytes = data;
                                parser.push(&data);
                            }
                            Ok(None) => done = true,
                            Err(e) => return Err(map_error(e, context.clone())),
                        }
                    }
                },
            )
        })
        .try_flatten()
        .boxed()
}

fn decode_row(
    columns: &[ReadColumn],
    fields: Vec<Option<Vec<u8>>>,
    context: &str,
) -> Result<Vec<Value>> {
    if fields.len() != columns.len() {
        return Err(Error::new(
            ErrorKind::Database,
            format!(
                "{context}: {} fields for {} columns",
                fields.len(),
                columns.len()
            ),
        ));
    }
    columns
        .iter()
        .zip(fields)
        .map(|(c, f)| match f {
            None => Ok(Value::Null),
            Some(raw) => c.decoder.decode(&raw).map_err(|problem| {
                Error::new(
                    ErrorKind::Value,
                    format!("{context}: column `{}`: {problem}", c.name),
                )
            }),
        })
        .collect()
}

impl SnapshotReader for PgSnapshotReader {
    fn read_chunk<'a>(
        &'a mut self,
        table: &'a Table,
        chunk: &'a Chunk,
    ) -> BoxStream<'a, Result<RowBatch>> {
        let context = format!("reading chunk {} of `{}`", chunk.index, table.name);
        let client = &self.client;
        let plan = async move {
            let names: Vec<&str> = PgSnapshotReader::columns_read(table)
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            let (columns, from) = read_columns(client, table, &names).await?;
            let mut conditions = Vec::new();
            if let (true, Some(point)) = (chunk.is_point(), &chunk.lower) {
                conditions.push(key_condition(table, &chunk.key, "=", point)?);
            } else if let Some(lower) = &chunk.lower {
                conditions.push(key_condition(table, &chunk.key, ">=", lower)?);
            }
            if let (false, Some(upper)) = (chunk.is_point(), &chunk.upper) {
                conditions.push(key_condition(table, &chunk.key, "<", upper)?);
            }
            let filter = if conditions.is_empty() {
                String::new()
            } else {
                format!(" WHERE {}", conditions.join(" AND "))
            };
            let sql = format!(
                "COPY (SELECT {} FROM {}{filter}) TO STDOUT (FORMAT binary)",
                select_list(&columns),
                from
            );
            Ok::<_, Error>((sql, columns))
        };
        stream::once(plan)
            .map_ok(move |(sql, columns)| copy_rows(client, sql, columns, context.clone()))
            .try_flatten()
            .boxed()
    }

    fn key_prober<'a>(
        &'a mut self,
        table: &'a Table,
        key: &'a [String],
    ) -> Result<Box<dyn KeyProber + 'a>> {
        for name in key {
            if table.column(name).is_none() {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!("key column `{}.{name}` does not exist", table.name),
                ));
            }
        }
        Ok(Box::new(PgKeyProber {
            client: &self.client,
            table,
            key,
            columns: None,
        }))
    }
}

/// Answers the chunk planner's questions about a key through a reader's snapshot.
pub struct PgKeyProber<'a> {
    client: &'a Client,
    table: &'a Table,
    key: &'a [String],
    columns: Option<(Vec<ReadColumn>, String)>,
}

impl std::fmt::Debug for PgKeyProber<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgKeyProber")
            .field("table", &self.table.name)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl PgKeyProber<'_> {
    async fn first_row(
        &mut self,
        filter: &str,
        order: &str,
        offset: u64,
    ) -> Result<Option<Vec<Value>>> {
        if self.columns.is_none() {
            let names: Vec<&str> = self.key.iter().map(String::as_str).collect();
            self.columns = Some(read_columns(self.client, self.table, &names).await?);
        }
        let (columns, from) = self.columns.clone().unwrap_or_default();
        let sql = format!(
            "COPY (SELECT {} FROM {from}{filter} ORDER BY {order} OFFSET {offset} LIMIT 1) \
             TO STDOUT (FORMAT binary)",
            select_list(&columns),
        );
        let context = format!("probing the key of `{}`", self.table.name);
        let mut rows = copy_rows(self.client, sql, columns, context);
        let mut first = None;
        while let Some(batch) = rows.next().await {
            if first.is_none() {
                first = batch?.rows.into_iter().next();
            }
        }
        Ok(first)
    }

    fn order(&self, descending: bool) -> String {
        self.key
            .iter()
            .map(|k| {
                if descending {
                    format!("{} DESC", quote_ident(k))
                } else {
                    quote_ident(k)
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[dts_core::async_trait]
impl KeyProber for PgKeyProber<'_> {
    async fn key_after(
        &mut self,
        after: Option<&[Value]>,
        step: u64,
    ) -> Result<Option<Vec<Value>>> {
        if step == 0 {
            return Err(Error::internal("key_after with step 0"));
        }
        let filter = match after {
            Some(values) => format!(
                " WHERE {}",
                key_condition(self.table, self.key, ">", values)?
            ),
            None => String::new(),
        };
        let order = self.order(false);
        self.first_row(&filter, &order, step - 1).await
    }

    async fn key_range(&mut self) -> Result<Option<(Vec<Value>, Vec<Value>)>> {
        let (asc, desc) = (self.order(false), self.order(true));
        let Some(min) = self.first_row("", &asc, 0).await? else {
            return Ok(None);
        };
        let max = self
            .first_row("", &desc, 0)
            .await?
            .unwrap_or_else(|| min.clone());
        Ok(Some((min, max)))
    }
}
