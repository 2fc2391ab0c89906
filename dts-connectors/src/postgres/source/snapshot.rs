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

use std::collections::HashSet;

use bytes::Bytes;
use dts_core::{
    Chunk, Error, ErrorKind, KeyProber, Lsn, Position, Result, RowBatch, RowEncoding,
    SnapshotReader, Table, TableName, Value,
};
use futures::future::BoxFuture;
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

/// Bytes of encoded rows a reader yields at most per batch (a batch ends after the row that
/// crosses it): small enough that reading and writing a chunk overlap closely and that the
/// batches queued between them hold little memory.
const ENCODED_BATCH_BYTES: usize = 64 << 10;
/// Room a batch's buffer starts with: the batch and the row that crosses its end (a longer
/// row grows it).
const ENCODED_BUFFER_BYTES: usize = ENCODED_BATCH_BYTES + (16 << 10);

/// The signature, flags and extension length opening binary `COPY` output.
const COPY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// Each column's type as its binary form names it (see [`RowEncoding::PgBinaryCopy`]), and
/// whether the binary form can pass from this server to another unchanged: an enum, or a
/// built-in base, range or multirange type (an array of one) that has a binary form and
/// holds no server-specific OID (the `reg*` types); not a composite, nor an array of a
/// user-defined type (their binary forms carry the element type's OID, which differs
/// between servers), nor an extension's type.
const SELECT_ENCODED_TYPES: &str = "\
    SELECT a.attname::text, \
           CASE WHEN b.typtype = 'e' THEN 3500::oid ELSE b.oid END, \
           CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END, \
           b.typtype = 'e' OR (b.oid < 16384 AND b.typtype IN ('b', 'r', 'm') \
             AND b.typsend <> 0 AND b.typreceive <> 0 AND b.typname !~ '^_?reg' \
             AND (b.typcategory <> 'A' OR (e.oid < 16384 AND e.typtype IN ('b', 'r', 'm')))), \
           c.relkind = 'p' \
    FROM pg_attribute a \
    JOIN pg_class c ON c.oid = a.attrelid \
    JOIN pg_namespace n ON n.oid = c.relnamespace \
    JOIN pg_type t ON t.oid = a.atttypid \
    JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END \
    LEFT JOIN pg_type e ON e.oid = b.typelem \
    WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped";

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
            out.push(PgSnapshotReader {
                client,
                checked: HashSet::new(),
                filters: dts_core::RowFilters::default(),
            });
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
    /// Tables this reader's transaction has locked and found not rewritten since the
    /// snapshot (the lock keeps them so until the transaction ends).
    checked: HashSet<TableName>,
    /// Row filters of the tables it reads (see [`PgSnapshotReader::set_row_filters`]).
    filters: dts_core::RowFilters,
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
        Ok(Self {
            client,
            checked: HashSet::new(),
            filters: dts_core::RowFilters::default(),
        })
    }

    /// Sets the row filters of the tables this reader reads: each chunk of a filtered
    /// table reads only the rows its condition holds for (encoded reads too).
    pub fn set_row_filters(&mut self, filters: dts_core::RowFilters) {
        self.filters = filters;
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
    let from = from_clause(table, partitioned);
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

/// Locks `table` (and its partitions) for this reader's transaction, as every read does,
/// and checks that no `ALTER TABLE` rewrote it since the snapshot: PostgreSQL's table
/// rewrites are not MVCC-safe, so a snapshot taken before one sees the rewritten table
/// empty, and its rows would be missing from the target without a word (logical decoding
/// does not carry them either); after a `TRUNCATE` the snapshot sees it empty too, while
/// replication would replay changes to rows it never copied. Either is a retryable error:
/// the full load copies what is left from a new snapshot. The lock held from here keeps the
/// table so until the copy ends.
/// How long [`PgSnapshotReader::hold`] waits for a schema change in flight, in
/// milliseconds: past it the full load is retried, as after a lost connection.
const HOLD_LOCK_TIMEOUT_MS: u32 = 5_000;

async fn check_not_rewritten(client: &Client, table: &Table) -> Result<()> {
    let what = || format!("locking `{}` for the copy", table.name);
    let name = format!(
        "{}.{}",
        quote_ident(&table.name.schema),
        quote_ident(&table.name.name)
    );
    client
        .batch_execute(&format!("LOCK TABLE {name} IN ACCESS SHARE MODE"))
        .await
        .map_err(|e| map_error(e, what()))?;
    // Read under the snapshot, `relfilenode` is the table's storage then;
    // `pg_relation_filenode` is its storage now.
    let rewritten: Option<String> = client
        .query_one(
            "SELECT string_agg(c.oid::regclass::text, ', ') FROM pg_class c \
             WHERE (c.oid = $1::text::regclass \
                    OR c.oid IN (SELECT relid FROM pg_partition_tree($1::text::regclass) \
                                 WHERE isleaf)) \
               AND c.relkind = 'r' \
               AND c.relfilenode IS DISTINCT FROM pg_relation_filenode(c.oid)",
            &[&name],
        )
        .await
        .map_err(|e| map_error(e, what()))?
        .get(0);
    match rewritten {
        None => Ok(()),
        // Retryable: the copy starts again from a new snapshot, which sees the table as it
        // is now (a truncated table empty, a rewritten one with its rows), and replication
        // skips, for this table, the changes that snapshot already holds.
        Some(tables) => Err(Error::new(
            ErrorKind::Transient,
            format!(
                "table `{}` was rewritten on the source after the full load's snapshot was \
                 taken ({tables}: TRUNCATE, or an ALTER TABLE that rewrites it, such as a \
                 column type change; VACUUM FULL and CLUSTER also give it new storage): the \
                 snapshot cannot see its rows, so the chunks not yet copied are copied again \
                 from a new snapshot",
                table.name
            ),
        )),
    }
}

/// The columns read of `table`, after checking (on this reader's first read of the table)
/// that it was not rewritten since the snapshot.
async fn first_read<'t>(
    client: &Client,
    checked: &mut HashSet<TableName>,
    table: &'t Table,
) -> Result<Vec<&'t str>> {
    if !checked.contains(&table.name) {
        check_not_rewritten(client, table).await?;
        checked.insert(table.name.clone());
    }
    Ok(PgSnapshotReader::columns_read(table)
        .iter()
        .map(|c| c.name.as_str())
        .collect())
}

/// `ONLY` the table itself (not its inheritance children), or, for a partitioned table, the
/// table with all its partitions.
fn from_clause(table: &Table, partitioned: bool) -> String {
    format!(
        "{}{}.{}",
        if partitioned { "" } else { "ONLY " },
        quote_ident(&table.name.schema),
        quote_ident(&table.name.name)
    )
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

/// The `WHERE` clause selecting the rows of `chunk` (one key for a point chunk; empty for a
/// whole table).
fn chunk_filter(table: &Table, chunk: &Chunk, filters: &dts_core::RowFilters) -> Result<String> {
    let mut conditions = Vec::new();
    if let Some(filter) = filters.get(&table.name) {
        conditions.push(format!("({filter}\n)"));
    }
    if let (true, Some(point)) = (chunk.is_point(), &chunk.lower) {
        conditions.push(key_condition(table, &chunk.key, "=", point)?);
    } else if let Some(lower) = &chunk.lower {
        conditions.push(key_condition(table, &chunk.key, ">=", lower)?);
    }
    if let (false, Some(upper)) = (chunk.is_point(), &chunk.upper) {
        conditions.push(key_condition(table, &chunk.key, "<", upper)?);
    }
    Ok(if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    })
}

/// The types the columns `names` of `table` pass encoded as, if every one of them can (see
/// [`SELECT_ENCODED_TYPES`]), and the `FROM` clause that reads the table (as
/// [`read_columns`] gives it).
async fn encoded_types(
    client: &Client,
    table: &Table,
    names: &[&str],
) -> Result<(Option<Vec<(u32, i32)>>, String)> {
    let rows = client
        .query(
            SELECT_ENCODED_TYPES,
            &[&table.name.schema, &table.name.name],
        )
        .await
        .map_err(|e| map_error(e, format!("reading the column types of `{}`", table.name)))?;
    let partitioned = rows.first().is_some_and(|r| r.get::<_, bool>(4));
    let from = from_clause(table, partitioned);
    let mut types = Vec::with_capacity(names.len());
    for name in names {
        let Some(row) = rows.iter().find(|r| r.get::<_, &str>(0) == *name) else {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "column `{}.{name}` does not exist in the snapshot",
                    table.name
                ),
            ));
        };
        if !row.get::<_, bool>(3) {
            return Ok((None, from));
        }
        types.push((row.get::<_, u32>(1), row.get::<_, i32>(2)));
    }
    Ok((Some(types), from))
}

/// Splits binary `COPY` output into batches of whole rows, left encoded: the header and
/// the trailer are checked and dropped, each row's fields are counted and their lengths
/// followed, and nothing is decoded.
#[derive(Debug)]
struct EncodedSplitter {
    /// Bytes received and not yet handed out; rows start at 0 (the header once dropped).
    pending: Vec<u8>,
    /// Where the first row not yet seen whole starts in `pending`.
    scanned: usize,
    /// Rows whole in `pending[..scanned]`.
    rows: u64,
    /// Fields of each row.
    columns: usize,
    header_done: bool,
    trailer_seen: bool,
}

impl EncodedSplitter {
    fn new(columns: usize) -> Self {
        Self {
            pending: Vec::with_capacity(ENCODED_BUFFER_BYTES),
            scanned: 0,
            rows: 0,
            columns,
            header_done: false,
            trailer_seen: false,
        }
    }

    /// Takes in more output and follows the rows it completes.
    fn push(&mut self, data: &[u8]) -> std::result::Result<(), String> {
        if self.trailer_seen {
            return Err("data after the end of the copy".into());
        }
        self.pending.extend_from_slice(data);
        if !self.header_done {
            let fixed = COPY_SIGNATURE.len() + 8;
            let Some(head) = self.pending.get(..fixed) else {
                return Ok(());
            };
            if &head[..COPY_SIGNATURE.len()] != COPY_SIGNATURE {
                return Err("not binary copy output".into());
            }
            let ext = read_i32(&head[fixed - 4..]);
            let ext = usize::try_from(ext).map_err(|_| "a bad header extension length")?;
            if self.pending.len() < fixed + ext {
                return Ok(());
            }
            self.pending.drain(..fixed + ext);
            self.header_done = true;
        }
        self.scan()
    }

    /// Follows whole rows from `scanned` on.
    fn scan(&mut self) -> std::result::Result<(), String> {
        let buf = &self.pending;
        let mut at = self.scanned;
        while let Some(count) = buf.get(at..at + 2) {
            let count = i16::from_be_bytes([count[0], count[1]]);
            if count == -1 {
                if at + 2 != buf.len() {
                    return Err("data after the end of the copy".into());
                }
                self.pending.truncate(at);
                self.trailer_seen = true;
                break;
            }
            if usize::try_from(count).ok() != Some(self.columns) {
                return Err(format!(
                    "a row of {count} fields for {} columns",
                    self.columns
                ));
            }
            let mut end = at + 2;
            let mut whole = true;
            for _ in 0..self.columns {
                let Some(len) = buf.get(end..end + 4) else {
                    whole = false;
                    break;
                };
                let len = read_i32(len);
                end += 4;
                if len == -1 {
                    continue;
                }
                let len = usize::try_from(len).map_err(|_| format!("a field of {len} bytes"))?;
                end += len;
                if end > buf.len() {
                    whole = false;
                    break;
                }
            }
            if !whole {
                break;
            }
            at = end;
            self.rows += 1;
        }
        self.scanned = at;
        Ok(())
    }

    /// The whole rows received, if there are at least `min_bytes` of them (or any, when
    /// `min_bytes` is 0).
    fn take(&mut self, min_bytes: usize) -> Option<RowBatch> {
        if self.rows == 0 || self.scanned < min_bytes {
            return None;
        }
        // The partial row after the whole ones starts the next buffer, which has its full
        // room from the start (no growing by doubling).
        let mut rest =
            Vec::with_capacity(ENCODED_BUFFER_BYTES.max(self.pending.len() - self.scanned));
        rest.extend_from_slice(&self.pending[self.scanned..]);
        self.pending.truncate(self.scanned);
        let data = std::mem::replace(&mut self.pending, rest);
        let rows = std::mem::take(&mut self.rows);
        self.scanned = 0;
        Some(RowBatch::encoded(rows, data))
    }

    /// Checks that the output ended where it should: after the trailer, at a row's end.
    fn finish(&self) -> std::result::Result<(), String> {
        if !self.trailer_seen || self.scanned != self.pending.len() {
            return Err("the copy output ended in the middle".into());
        }
        Ok(())
    }
}

fn read_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Runs a binary `COPY` of `sql` and yields its rows left encoded, in batches.
fn copy_encoded<'a>(
    client: &'a Client,
    sql: String,
    columns: usize,
    context: String,
) -> BoxStream<'a, Result<RowBatch>> {
    let start = async move {
        let copy = client
            .copy_out(&sql)
            .await
            .map_err(|e| map_error(e, context.clone()))?;
        Ok::<_, Error>((copy, context))
    };
    stream::once(start)
        .map_ok(move |(copy, context)| {
            let state = (
                Box::pin(copy),
                EncodedSplitter::new(columns),
                context,
                false,
            );
            stream::try_unfold(
                state,
                |(mut copy, mut rows, context, mut done)| async move {
                    loop {
                        if let Some(batch) = rows.take(if done { 0 } else { ENCODED_BATCH_BYTES }) {
                            return Ok(Some((batch, (copy, rows, context, done))));
                        }
                        if done {
                            rows.finish().map_err(|m| {
                                Error::new(ErrorKind::Database, format!("{context}: {m}"))
                            })?;
                            return Ok(None);
                        }
                        match copy.as_mut().try_next().await {
                            Ok(Some(data)) => {
                                let data: Bytes = data;
                                rows.push(&data).map_err(|m| {
                                    Error::new(ErrorKind::Database, format!("{context}: {m}"))
                                })?;
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

impl PgSnapshotReader {
    /// The connection, the tables checked, and the row filters, borrowed apart.
    fn parts(&mut self) -> (&Client, &mut HashSet<TableName>, &dts_core::RowFilters) {
        (&self.client, &mut self.checked, &self.filters)
    }
}

impl SnapshotReader for PgSnapshotReader {
    fn read_chunk<'a>(
        &'a mut self,
        table: &'a Table,
        chunk: &'a Chunk,
    ) -> BoxStream<'a, Result<RowBatch>> {
        let context = format!("reading chunk {} of `{}`", chunk.index, table.name);
        let (client, checked, filters) = self.parts();
        let plan = async move {
            let names = first_read(client, checked, table).await?;
            let (columns, from) = read_columns(client, table, &names).await?;
            let filter = chunk_filter(table, chunk, filters)?;
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

    /// Locks `tables` `ACCESS SHARE` in this reader's transaction, until its end (as
    /// `pg_dump` does): a snapshot keeps rows, not definitions, so a column dropped after
    /// it is gone for its statements too, and a truncated or rewritten table reads empty.
    /// Held by every reader, the locks make schema changes and `TRUNCATE` wait for the
    /// copy, and a reader's own reads never queue behind such a change (a lock a session
    /// holds already is granted again at once). Then checks that every table still has
    /// each column read: a change that slipped in before the lock is named.
    fn hold<'a>(&'a mut self, tables: &'a [&'a Table]) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if tables.is_empty() {
                return Ok(());
            }
            let names: Vec<String> = tables
                .iter()
                .map(|t| {
                    format!(
                        "{}.{}",
                        quote_ident(&t.name.schema),
                        quote_ident(&t.name.name)
                    )
                })
                .collect();
            self.client
                .batch_execute(&format!(
                    "SET LOCAL lock_timeout = {HOLD_LOCK_TIMEOUT_MS}; \
                     LOCK TABLE {} IN ACCESS SHARE MODE; SET LOCAL lock_timeout = 0",
                    names.join(", ")
                ))
                .await
                .map_err(|e| {
                    map_error(
                        e,
                        "locking the tables to copy against schema changes until their copy",
                    )
                })?;
            for (table, name) in tables.iter().zip(&names) {
                let columns = PgSnapshotReader::columns_read(table)
                    .iter()
                    .map(|c| quote_ident(&c.name))
                    .collect::<Vec<_>>()
                    .join(", ");
                if columns.is_empty() {
                    continue;
                }
                // Parsed against the catalog as it is now, not as the snapshot has it.
                if let Err(e) = self
                    .client
                    .batch_execute(&format!("SELECT {columns} FROM ONLY {name} WHERE false"))
                    .await
                {
                    let e = map_error(e, format!("checking the columns of `{}`", table.name));
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        format!(
                            "table `{}` changed on the source after the task read its \
                             schema, before its copy ({}): the task's schema is out of date; \
                             start the task again",
                            table.name,
                            e.message()
                        ),
                    )
                    .with_source(e));
                }
            }
            Ok(())
        })
    }

    /// [`RowEncoding::PgBinaryCopy`] when every column read has a binary form another
    /// PostgreSQL server reads back unchanged (see [`SELECT_ENCODED_TYPES`]).
    fn row_encoding<'a>(
        &'a mut self,
        table: &'a Table,
    ) -> BoxFuture<'a, Result<Option<RowEncoding>>> {
        let client = &self.client;
        Box::pin(async move {
            let names: Vec<&str> = PgSnapshotReader::columns_read(table)
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            Ok(encoded_types(client, table, &names)
                .await?
                .0
                .map(|types| RowEncoding::PgBinaryCopy { types }))
        })
    }

    /// The chunk's rows as `COPY (SELECT …) TO STDOUT (FORMAT binary)` sends them, the
    /// columns selected as they are; the column types are checked against `encoding` first
    /// (a table altered since the encoding was agreed stops the copy, naming it).
    fn read_chunk_encoded<'a>(
        &'a mut self,
        table: &'a Table,
        chunk: &'a Chunk,
        encoding: &'a RowEncoding,
    ) -> BoxStream<'a, Result<RowBatch>> {
        let context = format!("reading chunk {} of `{}`", chunk.index, table.name);
        let (client, checked, filters) = self.parts();
        let plan = async move {
            let names = first_read(client, checked, table).await?;
            let RowEncoding::PgBinaryCopy { types } = encoding else {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!("cannot read `{}` in {encoding:?}", table.name),
                ));
            };
            let (found, from) = encoded_types(client, table, &names).await?;
            if found.as_ref() != Some(types) {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "the column types of `{}` changed during the copy",
                        table.name
                    ),
                ));
            }
            let list: Vec<String> = names.iter().map(|n| quote_ident(n)).collect();
            let sql = format!(
                "COPY (SELECT {} FROM {from}{}) TO STDOUT (FORMAT binary)",
                list.join(", "),
                chunk_filter(table, chunk, filters)?
            );
            Ok::<_, Error>((sql, names.len()))
        };
        stream::once(plan)
            .map_ok(move |(sql, columns)| copy_encoded(client, sql, columns, context.clone()))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Binary `COPY` output of two-column rows: `(1, 'ab')`, `(NULL, '')`, `(7, NULL)`.
    fn output() -> Vec<u8> {
        let mut out = COPY_SIGNATURE.to_vec();
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&4i32.to_be_bytes());
        out.extend_from_slice(b"ext!");
        for row in rows() {
            out.extend_from_slice(&row);
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    fn rows() -> Vec<Vec<u8>> {
        let field = |v: Option<&[u8]>| -> Vec<u8> {
            match v {
                None => (-1i32).to_be_bytes().to_vec(),
                Some(v) => {
                    let mut f = i32::try_from(v.len()).unwrap().to_be_bytes().to_vec();
                    f.extend_from_slice(v);
                    f
                }
            }
        };
        [
            (Some(&1i32.to_be_bytes()[..]), Some(&b"ab"[..])),
            (None, Some(&b""[..])),
            (Some(&7i32.to_be_bytes()[..]), None),
        ]
        .into_iter()
        .map(|(a, b)| {
            let mut row = 2i16.to_be_bytes().to_vec();
            row.extend(field(a));
            row.extend(field(b));
            row
        })
        .collect()
    }

    #[test]
    fn rows_are_split_whole_whatever_the_pieces() {
        let all = output();
        let expected: Vec<u8> = rows().concat();
        for piece in [1, 2, 3, 5, 7, 11, all.len()] {
            let mut splitter = EncodedSplitter::new(2);
            let mut got = Vec::new();
            let mut count = 0;
            for part in all.chunks(piece) {
                splitter.push(part).unwrap();
                // A batch as soon as one row is whole: every cut is at a row's end.
                if let Some(batch) = splitter.take(1) {
                    let encoded = batch.encoded.unwrap();
                    count += encoded.rows;
                    got.extend(encoded.data);
                    assert!(
                        rows()
                            .iter()
                            .scan(0, |end, r| {
                                *end += r.len();
                                Some(*end)
                            })
                            .any(|end| end == got.len()),
                        "cut inside a row with pieces of {piece}"
                    );
                }
            }
            if let Some(batch) = splitter.take(0) {
                let encoded = batch.encoded.unwrap();
                count += encoded.rows;
                got.extend(encoded.data);
            }
            splitter.finish().unwrap();
            assert_eq!(count, 3, "pieces of {piece}");
            assert_eq!(got, expected, "pieces of {piece}");
        }
    }

    #[test]
    fn broken_output_is_refused() {
        let all = output();
        // Cut short: no trailer.
        let mut splitter = EncodedSplitter::new(2);
        splitter.push(&all[..all.len() - 5]).unwrap();
        assert!(splitter.finish().is_err());
        // Rows of another width.
        let mut splitter = EncodedSplitter::new(3);
        assert!(splitter
            .push(&all)
            .unwrap_err()
            .contains("2 fields for 3 columns"));
        // Not binary copy output.
        let mut splitter = EncodedSplitter::new(2);
        assert!(splitter.push(b"1\tab\n2\tcd\n3\tef\n4\tgh\n\\.\n").is_err());
        // Data after the trailer.
        let mut splitter = EncodedSplitter::new(2);
        splitter.push(&all).unwrap();
        assert!(splitter.push(&[0]).is_err());
    }
}
