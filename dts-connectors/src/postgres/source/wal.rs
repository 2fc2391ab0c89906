//! Change capture from PostgreSQL's WAL through a logical replication slot and the
//! `pgoutput` plugin (protocol version 2, large in-progress transactions streamed).
//!
//! - **Positions.** A transaction's [`Change::Commit`] carries the end of its commit record
//!   (`end_lsn`): resuming there, the server sends exactly the transactions that commit
//!   later. Every other event of the transaction carries the position just after the start
//!   of its commit record (`commit_lsn + 1`), which is after the end of every transaction
//!   committed before it and not after its own end, so "the first event at or before the
//!   applied position" means "already applied", as the apply contract needs.
//! - **Idle source.** When the server's keepalive says it has decoded the WAL up to a point
//!   beyond the last transaction delivered, and no transaction is open, an empty transaction
//!   (`Begin`, `Commit`) at that point is delivered: applying it confirms the point, so the
//!   slot lets the WAL go on an idle database, and a stop position taken from
//!   `pg_current_wal_insert_lsn()` is reached without further writes.
//! - **Streamed transactions.** The server streams a transaction larger than
//!   `logical_decoding_work_mem` in blocks before it commits, interleaved with other
//!   transactions. Its messages are written, as they come, to a spool file of its own (memory
//!   stays bounded); a subtransaction's abort cuts the file back to where that subtransaction
//!   began; at its commit the file is read back and delivered in order, in bounded reads,
//!   as one transaction.
//! - **Feedback.** Standby status updates confirm only what [`PgFeedback::confirm`] was
//!   given (the position the target committed), every ten seconds, after each keepalive and
//!   whenever it advances: the slot keeps every WAL record the target still lacks.
//! - **Unchanged TOASTed values.** An update that leaves a large (TOASTed) value as it was
//!   does not carry it. With `REPLICA IDENTITY FULL` the old row carries it, and it is
//!   filled in from there; otherwise the column is left out of the update's after image
//!   and the target must leave its value alone. The before image always has every column:
//!   the old row with `REPLICA IDENTITY FULL`; else the old key (other columns `NULL`) when
//!   the key changed; else the new row (the key is the same), with `NULL` for the values
//!   not sent.
//! - **Spool files** live in the system's temporary directory (`dts-pgstream-<pid>-…`) and
//!   are removed when the transaction is delivered or aborted, or the source is dropped; a
//!   source starting removes those of processes that no longer run (a killed run's).
//! - **Values** arrive in their text form under the pinned session settings and are decoded
//!   into the same [`Value`]s the snapshot reader gives: domains as their base type, types
//!   without an exact place in the value model as their text.

use std::collections::{HashMap, VecDeque};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dts_core::{
    Change, ChangeEvent, ChangeSource, Error, ErrorKind, Lsn, Position, Result, RowImage,
    TableName, Value,
};
use tokio_postgres::Client;

use super::connect_source;
use super::decode::Decoder;
use super::pgoutput::{self, PgOutput, Relation, TupleValue};
use super::replication::{ReplicationConnection, StreamMessage, PG_EPOCH_MICROS};
use super::snapshot::quote_ident;
use super::SOURCE_SESSION;
use crate::postgres::error::map_error;
use crate::postgres::options::PgConnectOptions;

/// How often a status update is sent at the least.
const STATUS_INTERVAL: Duration = Duration::from_secs(10);

/// The smallest OID of an object that is not built in.
const FIRST_NORMAL_OID: u32 = 16384;

/// The position the target has committed, shared between whoever applies the changes and
/// the [`PgChangeSource`] that confirms it to the server.
#[derive(Debug, Clone)]
pub struct PgFeedback(Arc<AtomicU64>);

impl PgFeedback {
    /// Records `position` as committed in the target; the source confirms it to the server
    /// (positions only move forward; positions of another log are ignored).
    pub fn confirm(&self, position: &Position) {
        if let Position::Lsn(lsn) = position {
            self.0.fetch_max(lsn.0, Ordering::AcqRel);
        }
    }

    /// The confirmed LSN.
    pub fn confirmed(&self) -> Lsn {
        Lsn(self.0.load(Ordering::Acquire))
    }
}

/// What the source's catalog says of a column when its relation description is read.
struct ColumnFacts {
    ordinal: Option<u32>,
    not_null: bool,
    default: Option<String>,
    missing: Option<String>,
}

/// The one element of a one-element array's text (`{x}`, `{"a \"b\""}`), unquoted; `None`
/// for anything else (`NULL` included).
fn single_array_element(text: &str) -> Option<String> {
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    if let Some(quoted) = inner.strip_prefix('"') {
        let body = quoted.strip_suffix('"')?;
        let mut out = String::with_capacity(body.len());
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                out.push(chars.next()?);
            } else if c == '"' {
                return None;
            } else {
                out.push(c);
            }
        }
        return Some(out);
    }
    if inner.is_empty() || inner.eq_ignore_ascii_case("NULL") || inner.contains(',') {
        return None;
    }
    Some(inner.to_string())
}

/// One table as the relation message last described it.
#[derive(Debug)]
struct RelationState {
    table: TableName,
    selected: bool,
    columns: Arc<Vec<String>>,
    decoders: Vec<Decoder>,
}

/// The transaction being read.
#[derive(Debug, Clone)]
struct Open {
    position: Position,
    timestamp: u32,
}

/// A streamed transaction's messages, in a file of its own.
struct Spool {
    path: PathBuf,
    file: BufWriter<std::fs::File>,
    len: u64,
    /// Each subtransaction seen, with the file length before its first message.
    subxacts: Vec<(u32, u64)>,
}

impl Spool {
    fn create(xid: u32) -> Result<Self> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "dts-pgstream-{}-{xid}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| spool_error(&path, e))?;
        Ok(Self {
            path,
            file: BufWriter::new(file),
            len: 0,
            subxacts: Vec::new(),
        })
    }

    fn push(&mut self, xid: u32, data: &[u8]) -> Result<()> {
        if !self.subxacts.iter().any(|(x, _)| *x == xid) {
            self.subxacts.push((xid, self.len));
        }
        let len = u32::try_from(data.len())
            .map_err(|_| Error::internal("a streamed message over 4 GiB"))?;
        self.file
            .write_all(&len.to_be_bytes())
            .and_then(|()| self.file.write_all(data))
            .map_err(|e| spool_error(&self.path, e))?;
        self.len += 4 + u64::from(len);
        Ok(())
    }

    /// Drops subtransaction `subxid` (and those after it) from the file. The relation
    /// descriptions among the dropped messages are kept: the server does not send a
    /// description again within the transaction.
    fn abort_subxact(&mut self, subxid: u32) -> Result<()> {
        let Some(i) = self.subxacts.iter().position(|(x, _)| *x == subxid) else {
            return Ok(());
        };
        let at = self.subxacts[i].1;
        self.subxacts.truncate(i);
        self.file.flush().map_err(|e| spool_error(&self.path, e))?;
        let path = self.path.clone();
        let file = self.file.get_mut();
        let mut cut = Vec::new();
        file.seek(SeekFrom::Start(at))
            .and_then(|_| file.read_to_end(&mut cut))
            .and_then(|_| file.set_len(at))
            .and_then(|()| file.seek(SeekFrom::Start(at)).map(drop))
            .map_err(|e| spool_error(&path, e))?;
        self.len = at;
        let mut rest = &cut[..];
        while rest.len() >= 4 {
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
            let end = 4 + usize::try_from(len).unwrap_or(usize::MAX);
            let Some(message) = rest.get(4..end) else {
                break;
            };
            if matches!(message.first(), Some(b'R' | b'Y')) {
                self.file
                    .write_all(&rest[..end])
                    .map_err(|e| spool_error(&path, e))?;
                self.len += 4 + u64::from(len);
            }
            rest = &rest[end..];
        }
        Ok(())
    }

    /// The file to read back from its start, and the file's removal when done.
    fn into_reader(mut self) -> Result<SpoolReader> {
        self.file.flush().map_err(|e| spool_error(&self.path, e))?;
        let mut file = self
            .file
            .get_ref()
            .try_clone()
            .map_err(|e| spool_error(&self.path, e))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| spool_error(&self.path, e))?;
        Ok(SpoolReader {
            file: BufReader::new(file),
            remaining: self.len,
            spool: self,
        })
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Removes the spool files of processes that no longer run (where the system shows its
/// processes under `/proc`).
fn remove_stale_spools() {
    if !std::path::Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("dts-pgstream-")) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn spool_error(path: &std::path::Path, e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Io,
        format!(
            "cannot write the spool file `{}` of a streamed transaction",
            path.display()
        ),
    )
    .with_source(e)
}

/// A committed streamed transaction being delivered from its spool file.
struct SpoolReader {
    file: BufReader<std::fs::File>,
    remaining: u64,
    spool: Spool,
}

impl SpoolReader {
    fn read_message(&mut self) -> Result<Option<Bytes>> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let path = self.spool.path.clone();
        let mut len = [0u8; 4];
        self.file
            .read_exact(&mut len)
            .map_err(|e| spool_error(&path, e))?;
        let len = u32::from_be_bytes(len);
        let mut data = vec![0u8; usize::try_from(len).unwrap_or(0)];
        self.file
            .read_exact(&mut data)
            .map_err(|e| spool_error(&path, e))?;
        self.remaining = self.remaining.saturating_sub(4 + u64::from(len));
        Ok(Some(Bytes::from(data)))
    }
}

/// A streamed transaction being delivered: its messages, then its commit.
struct Replay {
    reader: SpoolReader,
    open: Open,
    end: Position,
}

/// A [`ChangeSource`] reading a logical replication slot with `pgoutput`.
pub struct PgChangeSource {
    conn: ReplicationConnection,
    /// Type lookups (domains, enums and other types that are not built in).
    client: Client,
    tables: Arc<dyn Fn(&TableName) -> bool + Send + Sync>,
    relations: HashMap<u32, RelationState>,
    /// Types that are not built in: the base type a domain is over (with its modifier), or
    /// the type itself.
    types: HashMap<u32, (u32, Option<i32>)>,
    /// Type names by type and modifier, for relation descriptions.
    type_names: HashMap<(u32, i32), String>,
    open: Option<Open>,
    in_stream: Option<u32>,
    streams: HashMap<u32, Spool>,
    replay: Option<Replay>,
    /// Events decoded and not handed over yet.
    pending: VecDeque<ChangeEvent>,
    /// Whether the events handed over so far end with a whole transaction.
    between: bool,
    /// The end of the last transaction delivered (or the start position).
    delivered: u64,
    feedback: PgFeedback,
    sent: u64,
    last_status: Instant,
    pid: u32,
    slot: String,
}

impl std::fmt::Debug for PgChangeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgChangeSource")
            .field("slot", &self.slot)
            .field("delivered", &Lsn(self.delivered))
            .finish_non_exhaustive()
    }
}

impl PgChangeSource {
    /// Starts streaming from slot `slot` with publication `publication`, at `from` (a
    /// position the target has applied: the slot's consistent point, or a transaction's
    /// end). Only changes of tables `tables` selects are delivered.
    ///
    /// # Errors
    ///
    /// Connection and privilege errors; the server's error when the slot or the
    /// publication does not exist or the slot is in use.
    pub async fn start(
        options: &PgConnectOptions,
        slot: &str,
        publication: &str,
        from: Lsn,
        tables: Arc<dyn Fn(&TableName) -> bool + Send + Sync>,
    ) -> Result<Self> {
        let what = format!("streaming from replication slot `{slot}`");
        remove_stale_spools();
        let client = connect_source(options).await?;
        let mut conn = ReplicationConnection::connect(options).await?;
        // Values print the same way as for the snapshot readers.
        conn.simple_query(SOURCE_SESSION, &what).await?;
        let pid = conn
            .simple_query("SELECT pg_backend_pid()", &what)
            .await?
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let literal = |s: &str| format!("'{}'", s.replace('\'', "''"));
        let command = format!(
            "START_REPLICATION SLOT {} LOGICAL {from} (proto_version '2', \
             publication_names {}, streaming 'on')",
            quote_ident(slot),
            literal(&quote_ident(publication)),
        );
        conn.start_streaming(&command, &what).await?;
        tracing::info!(slot, position = %from, "streaming changes from the WAL");
        Ok(Self {
            conn,
            client,
            tables,
            relations: HashMap::new(),
            types: HashMap::new(),
            type_names: HashMap::new(),
            open: None,
            in_stream: None,
            streams: HashMap::new(),
            replay: None,
            pending: VecDeque::new(),
            between: true,
            delivered: from.0,
            feedback: PgFeedback(Arc::new(AtomicU64::new(from.0))),
            sent: 0,
            last_status: Instant::now(),
            pid,
            slot: slot.to_string(),
        })
    }

    /// The handle through which the committed position is confirmed to the server.
    pub fn feedback(&self) -> PgFeedback {
        self.feedback.clone()
    }

    /// The process id of the server's WAL sender serving this source.
    pub fn backend_pid(&self) -> u32 {
        self.pid
    }

    fn what(&self) -> String {
        format!("streaming from replication slot `{}`", self.slot)
    }

    /// Sends a status update when one is due, or when `now` asks for one.
    async fn status(&mut self, now: bool) -> Result<()> {
        let confirmed = self.feedback.confirmed().0;
        if now || confirmed > self.sent || self.last_status.elapsed() >= STATUS_INTERVAL {
            let what = self.what();
            self.conn.send_status(confirmed, &what).await?;
            self.sent = confirmed;
            self.last_status = Instant::now();
        }
        Ok(())
    }

    /// The base type and modifier of a column's type.
    async fn base_type(&mut self, oid: u32, typmod: i32) -> Result<Decoder> {
        if oid < FIRST_NORMAL_OID {
            return Ok(Decoder::of(oid, typmod));
        }
        if !self.types.contains_key(&oid) {
            let row = self
                .client
                .query_one(
                    "SELECT CASE WHEN typtype = 'd' THEN typbasetype ELSE oid END, \
                            CASE WHEN typtype = 'd' THEN typtypmod END \
                     FROM pg_type WHERE oid = $1",
                    &[&oid],
                )
                .await
                .map_err(|e| map_error(e, format!("reading the type {oid} of the source")))?;
            self.types.insert(oid, (row.get(0), row.get(1)));
        }
        let (base, domain_mod) = self.types[&oid];
        Ok(Decoder::of(base, domain_mod.unwrap_or(typmod)))
    }

    /// Takes in a relation description; for a selected table, the [`Change::Relation`] that
    /// tells the change mapper its columns as they are now.
    async fn relation(&mut self, relation: Relation) -> Result<Option<Change>> {
        let table = TableName::new(relation.schema, relation.name);
        let mut decoders = Vec::with_capacity(relation.columns.len());
        for c in &relation.columns {
            decoders.push(self.base_type(c.type_oid, c.typmod).await?);
        }
        let selected = (self.tables)(&table);
        let described = if selected {
            // Attribute numbers tell a renamed column from a dropped and an added one; a
            // new column's default and the value of the rows already there say what those
            // rows hold.
            let facts: HashMap<String, ColumnFacts> = self
                .client
                .query(
                    "SELECT a.attname::text, a.attnum::int4, a.attnotnull, \
                            pg_get_expr(d.adbin, d.adrelid), \
                            CASE WHEN a.atthasmissing THEN a.attmissingval::text END \
                     FROM pg_attribute a \
                     LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
                     WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped",
                    &[&relation.oid],
                )
                .await
                .map_err(|e| map_error(e, format!("reading the columns of `{table}`")))?
                .iter()
                .map(|r| {
                    let missing: Option<String> = r.get(4);
                    (
                        r.get(0),
                        ColumnFacts {
                            ordinal: u32::try_from(r.get::<_, i32>(1)).ok(),
                            not_null: r.get(2),
                            default: r.get(3),
                            missing: missing.as_deref().and_then(single_array_element),
                        },
                    )
                })
                .collect();
            let mut columns = Vec::with_capacity(relation.columns.len());
            for c in &relation.columns {
                let facts = facts.get(&c.name);
                columns.push(dts_core::RelationColumn {
                    name: c.name.clone(),
                    data_type: self.type_name(c.type_oid, c.typmod).await?,
                    key: c.key,
                    ordinal: facts.and_then(|f| f.ordinal),
                    not_null: facts.is_some_and(|f| f.not_null),
                    default: facts.and_then(|f| f.default.clone()),
                    missing: facts.and_then(|f| f.missing.clone()),
                });
            }
            Some(Change::Relation {
                table: table.clone(),
                columns,
            })
        } else {
            None
        };
        let columns: Vec<String> = relation.columns.into_iter().map(|c| c.name).collect();
        let state = RelationState {
            selected,
            table,
            columns: Arc::new(columns),
            decoders,
        };
        if let Some(old) = self.relations.get(&relation.oid) {
            if old.columns != state.columns {
                tracing::info!(table = %state.table, "the table's columns changed");
            }
        }
        self.relations.insert(relation.oid, state);
        Ok(described)
    }

    /// A type as `format_type` names it in the source's schema (qualified outside
    /// `pg_catalog`, as the catalog reader names it).
    async fn type_name(&mut self, oid: u32, typmod: i32) -> Result<String> {
        if let Some(name) = self.type_names.get(&(oid, typmod)) {
            return Ok(name.clone());
        }
        let name: String = self
            .client
            .query_one("SELECT format_type($1::oid, $2::int4)", &[&oid, &typmod])
            .await
            .map_err(|e| map_error(e, format!("reading the type {oid} of the source")))?
            .get(0);
        self.type_names.insert((oid, typmod), name.clone());
        Ok(name)
    }

    fn state(&self, oid: u32) -> Result<&RelationState> {
        self.relations.get(&oid).ok_or_else(|| {
            Error::new(
                ErrorKind::Database,
                format!("a change of relation {oid} arrived before its description"),
            )
        })
    }

    /// Decodes a tuple; `Unchanged` values stay `None`.
    fn decode_tuple(state: &RelationState, tuple: &[TupleValue]) -> Result<Vec<Option<Value>>> {
        if tuple.len() != state.columns.len() {
            return Err(Error::new(
                ErrorKind::Database,
                format!(
                    "a change of `{}` has {} values for {} columns",
                    state.table,
                    tuple.len(),
                    state.columns.len()
                ),
            ));
        }
        tuple
            .iter()
            .zip(&state.decoders)
            .zip(state.columns.iter())
            .map(|((v, d), name)| {
                let raw = match v {
                    TupleValue::Null => return Ok(Some(Value::Null)),
                    TupleValue::Unchanged => return Ok(None),
                    TupleValue::Text(raw) => d.decode_text(raw),
                    TupleValue::Binary(raw) => d.decode(raw),
                };
                raw.map(Some).map_err(|e| {
                    Error::new(
                        ErrorKind::Value,
                        format!(
                            "cannot read column `{}.{name}` of a change: {e}",
                            state.table
                        ),
                    )
                })
            })
            .collect()
    }

    fn full_image(
        state: &RelationState,
        values: Vec<Option<Value>>,
        what: &str,
    ) -> Result<RowImage> {
        let values = values
            .into_iter()
            .zip(state.columns.iter())
            .map(|(v, name)| {
                v.ok_or_else(|| {
                    Error::new(
                        ErrorKind::Database,
                        format!(
                            "the {what} of `{}` lacks the value of column `{name}`",
                            state.table
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RowImage {
            columns: state.columns.clone(),
            values,
        })
    }

    /// The change a row message makes, or `None` for a table not selected.
    async fn row_change(&mut self, message: PgOutput) -> Result<Vec<Change>> {
        Ok(match message {
            PgOutput::Relation { relation, .. } => {
                self.relation(relation).await?.into_iter().collect()
            }
            PgOutput::Insert { relation, new, .. } => {
                let state = self.state(relation)?;
                if !state.selected {
                    return Ok(Vec::new());
                }
                let row = Self::full_image(state, Self::decode_tuple(state, &new)?, "insert")?;
                vec![Change::Insert {
                    table: state.table.clone(),
                    row,
                }]
            }
            PgOutput::Update {
                relation, old, new, ..
            } => {
                let state = self.state(relation)?;
                if !state.selected {
                    return Ok(Vec::new());
                }
                let mut new = Self::decode_tuple(state, &new)?;
                let old = old.map(|o| Self::decode_tuple(state, &o)).transpose()?;
                // Unchanged values: from the old row when it is whole (identity FULL).
                if let Some(old) = &old {
                    for (n, o) in new.iter_mut().zip(old) {
                        if n.is_none() {
                            n.clone_from(o);
                        }
                    }
                }
                let before = match old {
                    // The old key: every other column NULL.
                    Some(old) => Self::full_image(
                        state,
                        old.into_iter()
                            .map(|v| Some(v.unwrap_or(Value::Null)))
                            .collect(),
                        "old row",
                    )?,
                    // The key did not change: the new row holds it.
                    None => RowImage {
                        columns: state.columns.clone(),
                        values: new
                            .iter()
                            .map(|v| v.clone().unwrap_or(Value::Null))
                            .collect(),
                    },
                };
                let after = if new.iter().all(Option::is_some) {
                    Self::full_image(state, new, "new row")?
                } else {
                    let (columns, values): (Vec<String>, Vec<Value>) = state
                        .columns
                        .iter()
                        .zip(new)
                        .filter_map(|(c, v)| Some((c.clone(), v?)))
                        .unzip();
                    RowImage {
                        columns: Arc::new(columns),
                        values,
                    }
                };
                vec![Change::Update {
                    table: state.table.clone(),
                    before,
                    after,
                }]
            }
            PgOutput::Delete { relation, old, .. } => {
                let state = self.state(relation)?;
                if !state.selected {
                    return Ok(Vec::new());
                }
                let old = Self::decode_tuple(state, &old)?;
                let row = Self::full_image(
                    state,
                    old.into_iter()
                        .map(|v| Some(v.unwrap_or(Value::Null)))
                        .collect(),
                    "old row",
                )?;
                vec![Change::Delete {
                    table: state.table.clone(),
                    row,
                }]
            }
            PgOutput::Truncate { relations, .. } => {
                let mut out = Vec::new();
                for oid in relations {
                    let state = self.state(oid)?;
                    if state.selected {
                        out.push(Change::Truncate {
                            table: state.table.clone(),
                        });
                    }
                }
                out
            }
            _ => Vec::new(),
        })
    }

    /// Queues `change` at `position`.
    fn push(&mut self, change: Change, position: Position, timestamp: u32) {
        self.between = change.ends_transaction();
        self.pending.push_back(ChangeEvent {
            change,
            position,
            timestamp,
        });
    }

    /// Handles one message of the stream, queueing what it delivers.
    async fn handle(&mut self, message: StreamMessage) -> Result<()> {
        let data = match message {
            StreamMessage::Keepalive { end, reply } => {
                self.idle_point(end);
                let _ = reply;
                return self.status(true).await;
            }
            StreamMessage::XLogData { data, .. } => data,
        };
        let raw = data.clone();
        let message = pgoutput::parse(data, self.in_stream.is_some())
            .map_err(|e| Error::new(ErrorKind::Database, format!("{}: {e}", self.what())))?;
        if let (Some(stream), Some(xid)) = (self.in_stream, message.xid()) {
            let spool = match self.streams.entry(stream) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => v.insert(Spool::create(stream)?),
            };
            return spool.push(xid, &raw);
        }
        match message {
            PgOutput::Relation { relation, .. } => {
                if let Some(change) = self.relation(relation).await? {
                    // Inside the transaction whose next change it describes.
                    if let Some(open) = self.open.clone() {
                        self.push(change, open.position, open.timestamp);
                    }
                }
            }
            PgOutput::Type { .. } | PgOutput::Origin | PgOutput::Message { .. } => {}
            PgOutput::Begin {
                final_lsn,
                timestamp,
                ..
            } => {
                let open = Open {
                    position: Position::Lsn(Lsn(final_lsn + 1)),
                    timestamp: unix_seconds(timestamp),
                };
                self.push(Change::Begin, open.position.clone(), open.timestamp);
                self.open = Some(open);
            }
            PgOutput::Commit {
                end_lsn, timestamp, ..
            } => {
                self.open = None;
                self.delivered = self.delivered.max(end_lsn);
                self.push(
                    Change::Commit,
                    Position::Lsn(Lsn(end_lsn)),
                    unix_seconds(timestamp),
                );
            }
            PgOutput::StreamStart { xid } => self.in_stream = Some(xid),
            PgOutput::StreamStop => self.in_stream = None,
            PgOutput::StreamAbort { xid, subxid } => {
                if xid == subxid {
                    self.streams.remove(&xid);
                } else if let Some(spool) = self.streams.get_mut(&xid) {
                    spool.abort_subxact(subxid)?;
                }
            }
            PgOutput::StreamCommit {
                xid,
                commit_lsn,
                end_lsn,
                timestamp,
            } => {
                let open = Open {
                    position: Position::Lsn(Lsn(commit_lsn + 1)),
                    timestamp: unix_seconds(timestamp),
                };
                self.push(Change::Begin, open.position.clone(), open.timestamp);
                self.between = false;
                let reader = match self.streams.remove(&xid) {
                    Some(spool) => Some(spool.into_reader()?),
                    None => None,
                };
                let end = Position::Lsn(Lsn(end_lsn));
                self.delivered = self.delivered.max(end_lsn);
                match reader {
                    Some(reader) => self.replay = Some(Replay { reader, open, end }),
                    None => {
                        self.push(Change::Commit, end, open.timestamp);
                    }
                }
            }
            other => {
                let open = self.open.clone().ok_or_else(|| {
                    Error::new(
                        ErrorKind::Database,
                        format!("{}: a change outside a transaction", self.what()),
                    )
                })?;
                for change in self.row_change(other).await? {
                    self.push(change, open.position.clone(), open.timestamp);
                }
            }
        }
        Ok(())
    }

    /// After a keepalive: the server has sent everything before `end`; when nothing is open
    /// and `end` is beyond the last transaction delivered, an empty transaction at `end`.
    fn idle_point(&mut self, end: u64) {
        if self.open.is_some() || self.replay.is_some() || !self.between || end <= self.delivered {
            return;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
        let position = Position::Lsn(Lsn(end));
        self.push(Change::Begin, position.clone(), now);
        self.push(Change::Commit, position, now);
        self.delivered = end;
    }

    /// Queues up to about `max` events of the streamed transaction being replayed.
    async fn replay(&mut self, max: usize) -> Result<()> {
        while self.pending.len() < max {
            let Some(replay) = self.replay.as_mut() else {
                return Ok(());
            };
            let Some(data) = replay.reader.read_message()? else {
                let Some(replay) = self.replay.take() else {
                    return Ok(());
                };
                self.push(Change::Commit, replay.end, replay.open.timestamp);
                return Ok(());
            };
            let open = replay.open.clone();
            let message = pgoutput::parse(data, true)
                .map_err(|e| Error::new(ErrorKind::Database, format!("{}: {e}", self.what())))?;
            for change in self.row_change(message).await? {
                self.push(change, open.position.clone(), open.timestamp);
            }
        }
        Ok(())
    }
}

/// Microseconds since 2000-01-01 as seconds since the Unix epoch.
fn unix_seconds(pg_micros: i64) -> u32 {
    u32::try_from(pg_micros.saturating_add(PG_EPOCH_MICROS).max(0) / 1_000_000).unwrap_or(u32::MAX)
}

#[dts_core::async_trait]
impl ChangeSource for PgChangeSource {
    async fn next_events(&mut self, max: usize, timeout: Duration) -> Result<Vec<ChangeEvent>> {
        let max = max.max(1);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            while out.len() < max {
                match self.pending.pop_front() {
                    Some(e) => out.push(e),
                    None => break,
                }
            }
            if out.len() >= max {
                break;
            }
            self.status(false).await?;
            if self.replay.is_some() {
                self.replay(max - out.len()).await?;
                continue;
            }
            let now = tokio::time::Instant::now();
            let wait = if out.is_empty() {
                deadline.saturating_duration_since(now)
            } else {
                Duration::ZERO
            };
            let what = self.what();
            match tokio::time::timeout(
                wait.min(STATUS_INTERVAL),
                self.conn.next_stream_message(&what),
            )
            .await
            {
                Ok(message) => self.handle(message?).await?,
                Err(_) if out.is_empty() && tokio::time::Instant::now() < deadline => {}
                Err(_) => break,
            }
        }
        Ok(out)
    }

    /// Confirms `position` to the server with the next status update (at the latest before
    /// the next read returns).
    fn acknowledge(&mut self, position: &Position) {
        self.feedback.confirm(position);
    }
}

#[cfg(test)]
mod tests {
    use super::single_array_element;

    #[test]
    fn reads_the_one_element_of_an_array_text() {
        assert_eq!(single_array_element("{d}").as_deref(), Some("d"));
        assert_eq!(single_array_element("{42}").as_deref(), Some("42"));
        assert_eq!(
            single_array_element(r#"{"a \"b\" \\ c, d"}"#).as_deref(),
            Some(r#"a "b" \ c, d"#)
        );
        assert_eq!(
            single_array_element(r#"{"2024-01-01 00:00:00+00"}"#).as_deref(),
            Some("2024-01-01 00:00:00+00")
        );
        assert_eq!(single_array_element("{NULL}"), None);
        assert_eq!(single_array_element("{1,2}"), None);
        assert_eq!(single_array_element("{{1,2}}"), None);
        assert_eq!(single_array_element("x"), None);
    }
}
