//! Consistent snapshots of a MySQL/MariaDB server: readers that all see the same data, the
//! binlog position the data corresponds to, a key prober for chunk planning, and chunk reads
//! that decode every column into a lossless [`Value`].
//!
//! # How the snapshot is taken
//!
//! - **Lock-free** (MariaDB, one reader; or any server with the binlog off and one reader):
//!   the reader runs `START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY` and reads
//!   `SHOW STATUS LIKE 'binlog_snapshot_%'`, which MariaDB fixes atomically with the
//!   snapshot; the GTID position comes from `BINLOG_GTID_POS(file, offset)`. No lock is taken
//!   and no privilege beyond `SELECT` is needed.
//! - **Global read lock** (several readers, or MySQL): every reader connects first, then a
//!   control connection holds `FLUSH TABLES WITH READ LOCK` (needs `RELOAD`) just long enough
//!   to read the binlog position (MySQL) and start every reader's snapshot transaction, then
//!   runs `UNLOCK TABLES`. On MariaDB the position is still taken from each reader's
//!   `binlog_snapshot_*` status, and all readers are checked to agree on it.
//!
//! If the lock is refused for lack of privilege on MariaDB, the snapshot falls back to one
//! lock-free reader and logs a warning: the caller sees fewer readers than it asked for.
//!
//! # Reading
//!
//! A [`MySqlSnapshotReader`] streams a chunk's rows through the binary protocol in
//! [`RowBatch`]es of at most [`BATCH_ROWS`] rows or about [`BATCH_BYTES`] bytes. The values of
//! each row are the table's columns without the generated ones, in table order
//! ([`MySqlSnapshotReader::columns_read`]). Chunk bounds are compared with the row-value
//! comparison expanded into `OR`/`AND` terms, so that the range optimizer uses the key's index.

use std::fmt::Write as _;
use std::time::Instant;

use dts_core::KeyProber;
use dts_core::{
    BitString, Chunk, Column, Decimal, Error, ErrorKind, Position, Result, RowBatch,
    SnapshotReader, Table, TableName, Value,
};
use dts_typemap::mysql::MySqlType;
use futures::stream::{self, BoxStream, StreamExt};
use mysql_async::prelude::*;
use mysql_async::{Conn, Row};
use tracing::{debug, info, warn};

use super::error::map_error;
use super::options::MySqlConnectOptions;
use super::source::quote_ident;
use super::types::{bit_string, date_time, time, MySqlColumn, ValueKind as Kind};

/// Most rows in one [`RowBatch`] produced by [`MySqlSnapshotReader`].
pub const BATCH_ROWS: usize = 4096;

/// A [`RowBatch`] produced by [`MySqlSnapshotReader`] is closed once its values hold at least
/// this many bytes (8 MiB), so a batch exceeds it by at most one row.
pub const BATCH_BYTES: usize = 8 << 20;

/// How a snapshot was made consistent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MySqlSnapshotMode {
    /// One reader, no lock: MariaDB's consistent snapshot reports its own binlog position
    /// (or the binlog is off and there is no position to agree on).
    LockFree,
    /// Readers started their snapshots while a control connection held
    /// `FLUSH TABLES WITH READ LOCK`.
    GlobalReadLock,
}

/// A consistent snapshot of a MySQL/MariaDB server, opened by [`MySqlSnapshot::open`].
///
/// The snapshot itself is held by the [`MySqlSnapshotReader`]s returned with it; this value
/// records where in the binlog the snapshot lies, so change capture can start exactly there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MySqlSnapshot {
    position: Option<Position>,
    mode: MySqlSnapshotMode,
    server_version: String,
    is_mariadb: bool,
}

/// One connection inside a consistent snapshot, reading chunks of tables.
///
/// Every reader of one [`MySqlSnapshot`] sees the same data. Chunk reads on one reader are
/// sequential; different readers may read concurrently.
#[derive(Debug)]
pub struct MySqlSnapshotReader {
    conn: Conn,
    index: usize,
}

/// What the server says about itself when a snapshot is opened.
struct ServerFacts {
    version: String,
    is_mariadb: bool,
    log_bin: bool,
}

impl MySqlSnapshot {
    /// Connects `readers` connections (at least one) to the server at `url` and opens a
    /// consistent snapshot on all of them, recording the binlog position of the snapshot.
    ///
    /// On MariaDB a single reader needs no lock; otherwise the account needs `RELOAD` for a
    /// brief `FLUSH TABLES WITH READ LOCK` (and, on MySQL, `REPLICATION CLIENT` to read the
    /// binlog position). Without `RELOAD` on MariaDB this returns a single lock-free reader
    /// instead of failing, so check the length of the returned vector.
    ///
    /// # Errors
    ///
    /// Connection, privilege and server errors, classified as [`dts_core::ErrorKind`]s.
    pub async fn open(url: &str, readers: usize) -> Result<(Self, Vec<MySqlSnapshotReader>)> {
        let opts: MySqlConnectOptions = url.parse()?;
        let readers = readers.max(1);
        let started = Instant::now();
        let mut control = connect(&opts).await?;
        let facts = server_facts(&mut control).await?;
        let lock_free_possible = facts.is_mariadb || !facts.log_bin;
        if readers == 1 && lock_free_possible {
            // The control connection becomes the reader: one connection is enough.
            let reader = open_lock_free(control, &facts).await?;
            return Ok(finish(facts, reader, started));
        }

        let mut conns = futures::future::try_join_all((0..readers).map(|_| connect(&opts))).await?;
        for conn in &mut conns {
            prepare_reader(conn).await?;
        }
        match control.query_drop("FLUSH TABLES WITH READ LOCK").await {
            Ok(()) => {}
            Err(e) => {
                let err = map_error(e, "cannot lock tables to open a consistent snapshot");
                if err.kind() == ErrorKind::Privilege && lock_free_possible {
                    warn!(
                        readers_requested = readers,
                        "no RELOAD privilege for FLUSH TABLES WITH READ LOCK: \
                         reading through one lock-free snapshot"
                    );
                    drop(control);
                    let first = conns.swap_remove(0);
                    for conn in conns {
                        let _ = conn.disconnect().await;
                    }
                    let reader = open_lock_free(first, &facts).await?;
                    return Ok(finish(facts, reader, started));
                }
                return Err(if err.kind() == ErrorKind::Privilege {
                    Error::new(
                        ErrorKind::Privilege,
                        "opening a consistent snapshot needs the RELOAD privilege \
                         (FLUSH TABLES WITH READ LOCK)",
                    )
                    .with_source(err)
                } else {
                    err
                });
            }
        }
        let locked = Instant::now();
        let under_lock = lock_and_start(&mut control, &mut conns, &facts).await;
        let unlocked = control
            .query_drop("UNLOCK TABLES")
            .await
            .map_err(|e| map_error(e, "cannot unlock tables after opening a snapshot"));
        let lock_ms = locked.elapsed().as_millis();
        let _ = control.disconnect().await;
        let mysql_position = under_lock?;
        unlocked?;

        let position = if facts.is_mariadb && facts.log_bin {
            let mut positions = Vec::with_capacity(conns.len());
            for conn in &mut conns {
                positions.push(binlog_snapshot_status(conn).await?);
            }
            if positions.windows(2).any(|w| w[0] != w[1]) {
                return Err(Error::internal(format!(
                    "snapshot readers disagree on the binlog position: {positions:?}"
                )));
            }
            match positions.into_iter().next().flatten() {
                Some((file, offset)) => Some(mariadb_position(&mut conns[0], file, offset).await?),
                None => None,
            }
        } else {
            mysql_position
        };
        let readers = conns
            .into_iter()
            .enumerate()
            .map(|(index, conn)| MySqlSnapshotReader { conn, index })
            .collect::<Vec<_>>();
        let snapshot = MySqlSnapshot {
            position,
            mode: MySqlSnapshotMode::GlobalReadLock,
            server_version: facts.version,
            is_mariadb: facts.is_mariadb,
        };
        info!(
            readers = readers.len(),
            lock_ms,
            open_ms = started.elapsed().as_millis(),
            position = ?snapshot.position.as_ref().map(ToString::to_string),
            "consistent snapshot opened under a global read lock"
        );
        Ok((snapshot, readers))
    }

    /// The binlog position of the snapshot: change capture started here sees exactly the
    /// changes the snapshot does not contain. `None` when the server's binlog is off.
    pub fn position(&self) -> Option<&Position> {
        self.position.as_ref()
    }

    /// How the snapshot was made consistent.
    pub fn mode(&self) -> MySqlSnapshotMode {
        self.mode
    }

    /// The server's `VERSION()`.
    pub fn server_version(&self) -> &str {
        &self.server_version
    }

    /// Whether the server is MariaDB.
    pub fn is_mariadb(&self) -> bool {
        self.is_mariadb
    }
}

fn finish(
    facts: ServerFacts,
    (reader, position): (MySqlSnapshotReader, Option<Position>),
    started: Instant,
) -> (MySqlSnapshot, Vec<MySqlSnapshotReader>) {
    let snapshot = MySqlSnapshot {
        position,
        mode: MySqlSnapshotMode::LockFree,
        server_version: facts.version,
        is_mariadb: facts.is_mariadb,
    };
    info!(
        open_ms = started.elapsed().as_millis(),
        position = ?snapshot.position.as_ref().map(ToString::to_string),
        "lock-free consistent snapshot opened"
    );
    (snapshot, vec![reader])
}

async fn connect(opts: &MySqlConnectOptions) -> Result<Conn> {
    opts.connect().await
}

async fn server_facts(conn: &mut Conn) -> Result<ServerFacts> {
    let row: Option<(String, Option<i64>)> = conn
        .query_first("SELECT VERSION(), @@log_bin")
        .await
        .map_err(|e| map_error(e, "reading source version"))?;
    let (version, log_bin) = row.unwrap_or_default();
    Ok(ServerFacts {
        is_mariadb: version.to_ascii_lowercase().contains("mariadb"),
        version,
        log_bin: log_bin.unwrap_or(0) != 0,
    })
}

/// Session settings of a snapshot reader, applied before its transaction starts.
async fn prepare_reader(conn: &mut Conn) -> Result<()> {
    conn.query_drop(
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ; \
         SET SESSION wait_timeout = 86400",
    )
    .await
    .map_err(|e| map_error(e, "preparing a snapshot reader"))
}

async fn start_snapshot(conn: &mut Conn) -> Result<()> {
    conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        .await
        .map_err(|e| map_error(e, "cannot start a consistent snapshot transaction"))
}

async fn open_lock_free(
    mut conn: Conn,
    facts: &ServerFacts,
) -> Result<(MySqlSnapshotReader, Option<Position>)> {
    prepare_reader(&mut conn).await?;
    start_snapshot(&mut conn).await?;
    let position = if facts.log_bin {
        match binlog_snapshot_status(&mut conn).await? {
            Some((file, offset)) => Some(mariadb_position(&mut conn, file, offset).await?),
            None => None,
        }
    } else {
        None
    };
    Ok((MySqlSnapshotReader { conn, index: 0 }, position))
}

/// Runs while the global read lock is held: starts every reader's snapshot and, on MySQL,
/// reads the binlog position (which no commit can move while the lock is held).
async fn lock_and_start(
    control: &mut Conn,
    readers: &mut [Conn],
    facts: &ServerFacts,
) -> Result<Option<Position>> {
    futures::future::try_join_all(readers.iter_mut().map(start_snapshot)).await?;
    if facts.is_mariadb || !facts.log_bin {
        return Ok(None);
    }
    let status = match control.query_first::<Row, _>("SHOW MASTER STATUS").await {
        Ok(row) => row,
        Err(mysql_async::Error::Server(e)) if e.code == 1064 => control
            .query_first::<Row, _>("SHOW BINARY LOG STATUS")
            .await
            .map_err(|e| map_error(e, "reading the binlog position"))?,
        Err(e) => return Err(map_error(e, "reading the binlog position")),
    };
    let Some(row) = status else {
        return Ok(None);
    };
    let file: Option<String> = row.get(0);
    let offset: Option<u64> = row.get(1);
    let gtid: Option<String> = row
        .columns_ref()
        .iter()
        .position(|c| c.name_str().eq_ignore_ascii_case("Executed_Gtid_Set"))
        .and_then(|i| row.get::<Option<String>, _>(i).flatten());
    match (file, offset) {
        (Some(file), Some(offset)) if !file.is_empty() => Ok(Some(Position::Binlog {
            file,
            offset,
            gtid: normalise_gtid(gtid),
        })),
        _ => Ok(None),
    }
}

/// MariaDB's binlog coordinates of the current transaction's consistent snapshot; `None`
/// when the server reports none (binlog off).
async fn binlog_snapshot_status(conn: &mut Conn) -> Result<Option<(String, u64)>> {
    let rows: Vec<(String, String)> = conn
        .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
        .await
        .map_err(|e| map_error(e, "reading the snapshot's binlog position"))?;
    let mut file = None;
    let mut offset = None;
    for (name, value) in rows {
        match name.to_ascii_lowercase().as_str() {
            "binlog_snapshot_file" => file = Some(value),
            "binlog_snapshot_position" => offset = value.trim().parse::<u64>().ok(),
            _ => {}
        }
    }
    match (file, offset) {
        (Some(file), Some(offset)) if !file.is_empty() => Ok(Some((file, offset))),
        _ => Ok(None),
    }
}

/// A MariaDB binlog position with the GTID position that corresponds to it.
async fn mariadb_position(conn: &mut Conn, file: String, offset: u64) -> Result<Position> {
    let gtid: Option<Option<String>> = conn
        .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (file.as_str(), offset))
        .await
        .map_err(|e| map_error(e, "reading the gtid position of the snapshot"))?;
    let gtid = normalise_gtid(gtid.flatten());
    if gtid.is_none() {
        debug!(%file, offset, "no gtid position for the snapshot's binlog position");
    }
    Ok(Position::Binlog { file, offset, gtid })
}

fn normalise_gtid(gtid: Option<String>) -> Option<String> {
    gtid.map(|g| g.split_whitespace().collect::<String>())
        .filter(|g| !g.is_empty())
}

impl MySqlSnapshotReader {
    /// The columns whose values each row holds, in order: the table's columns without the
    /// generated ones (the target computes those).
    pub fn columns_read(table: &Table) -> Vec<&Column> {
        table
            .columns
            .iter()
            .filter(|c| c.generated.is_none())
            .collect()
    }

    /// This reader's number, 0-based, among the readers of its snapshot.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The connection, inside the snapshot transaction: queries on it see the snapshot's
    /// data (e.g. row counts for verification). Do not end the transaction.
    pub fn conn(&mut self) -> &mut Conn {
        &mut self.conn
    }

    /// A key prober for planning the chunks of `table` over `key` on this reader, so the
    /// plan matches the snapshot.
    ///
    /// # Errors
    ///
    /// As [`MySqlKeyProber::new`].
    pub fn key_prober<'c>(
        &'c mut self,
        table: &Table,
        key: &[String],
    ) -> Result<MySqlKeyProber<'c>> {
        MySqlKeyProber::new(&mut self.conn, table, key)
    }

    /// Ends the snapshot transaction and closes the connection.
    ///
    /// # Errors
    ///
    /// Server and connection errors.
    pub async fn close(mut self) -> Result<()> {
        self.conn
            .query_drop("COMMIT")
            .await
            .map_err(|e| map_error(e, "ending a snapshot transaction"))?;
        self.conn
            .disconnect()
            .await
            .map_err(|e| map_error(e, "closing a snapshot reader"))
    }
}

impl SnapshotReader for MySqlSnapshotReader {
    fn key_prober<'a>(
        &'a mut self,
        table: &'a Table,
        key: &'a [String],
    ) -> Result<Box<dyn KeyProber + 'a>> {
        Ok(Box::new(MySqlKeyProber::new(&mut self.conn, table, key)?))
    }

    fn read_chunk<'a>(
        &'a mut self,
        table: &'a Table,
        chunk: &'a Chunk,
    ) -> BoxStream<'a, Result<RowBatch>> {
        let plan = match ChunkRead::plan(table, chunk) {
            Ok(plan) => plan,
            Err(e) => return stream::once(async move { Err(e) }).boxed(),
        };
        let state = ReadState::Start {
            conn: &mut self.conn,
            plan,
        };
        stream::unfold(state, |state| async move { state.step().await }).boxed()
    }
}

/// How to read one chunk: the statement, its parameters and the column decoders.
struct ChunkRead<'a> {
    table: &'a Table,
    chunk_index: u32,
    sql: String,
    params: Vec<mysql_async::Value>,
    columns: Vec<(&'a Column, Kind)>,
    /// Positions among `columns` of the key columns, to name the row in errors.
    key_positions: Vec<usize>,
}

impl<'a> ChunkRead<'a> {
    fn plan(table: &'a Table, chunk: &Chunk) -> Result<Self> {
        let ctx = || format!("reading chunk {} of `{}`", chunk.index, table.name);
        let columns = MySqlSnapshotReader::columns_read(table)
            .into_iter()
            .map(|c| Ok((c, MySqlColumn::of(table, c)?.kind)))
            .collect::<Result<Vec<_>>>()
            .map_err(|e| e.context(ctx()))?;
        if columns.is_empty() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("table `{}` has no stored columns to read", table.name),
            ));
        }
        let mut sql = String::from("SELECT ");
        for (i, (c, _)) in columns.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&quote_ident(&c.name));
        }
        let _ = write!(sql, " FROM {}", qualified(&table.name));
        let mut params = Vec::new();
        if chunk.lower.is_some() || chunk.upper.is_some() {
            let key = KeyColumns::new(table, &chunk.key).map_err(|e| e.context(ctx()))?;
            if let Some(index) = &key.index {
                let _ = write!(sql, " FORCE INDEX ({})", quote_ident(index));
            }
            let mut terms = Vec::new();
            if let Some(lower) = &chunk.lower {
                terms.push(
                    key.compare(lower, Cmp::Ge, &mut params)
                        .map_err(|e| e.context(ctx()))?,
                );
            }
            if let Some(upper) = &chunk.upper {
                terms.push(
                    key.compare(upper, Cmp::Lt, &mut params)
                        .map_err(|e| e.context(ctx()))?,
                );
            }
            let _ = write!(sql, " WHERE {}", terms.join(" AND "));
        }
        let key_names: Vec<String> = if chunk.key.is_empty() {
            table.chunk_key().unwrap_or_default()
        } else {
            chunk.key.clone()
        };
        let key_positions = key_names
            .iter()
            .filter_map(|k| columns.iter().position(|(c, _)| &c.name == k))
            .collect();
        Ok(Self {
            table,
            chunk_index: chunk.index,
            sql,
            params,
            columns,
            key_positions,
        })
    }

    fn context(&self) -> String {
        format!(
            "reading chunk {} of `{}`",
            self.chunk_index, self.table.name
        )
    }

    /// Decodes one row; an undecodable value fails the row, naming column and key.
    fn decode_row(&self, raw: Vec<Option<mysql_async::Value>>) -> Result<Vec<Value>> {
        if raw.len() != self.columns.len() {
            return Err(Error::internal(format!(
                "{}: expected {} values per row, got {}",
                self.context(),
                self.columns.len(),
                raw.len()
            )));
        }
        let mut out = Vec::with_capacity(raw.len());
        let mut failure: Option<(usize, DecodeError)> = None;
        for (i, (v, (_, kind))) in raw.into_iter().zip(&self.columns).enumerate() {
            match decode(*kind, v.unwrap_or(mysql_async::Value::NULL)) {
                Ok(v) => out.push(v),
                Err(e) => {
                    failure.get_or_insert((i, e));
                    out.push(Value::Null);
                }
            }
        }
        match failure {
            None => Ok(out),
            Some((i, e)) => {
                let column = self.columns[i].0;
                let mut message = format!(
                    "{} in column `{}.{}`",
                    e.describe(),
                    self.table.name,
                    column.name
                );
                if !self.key_positions.is_empty() {
                    let key: Vec<String> = self
                        .key_positions
                        .iter()
                        .map(|&p| render_key_value(&out[p]))
                        .collect();
                    let _ = write!(message, " at key ({})", key.join(", "));
                }
                Err(Error::new(e.kind(), message).context(self.context()))
            }
        }
    }
}

/// The state of a chunk's row stream.
enum ReadState<'a> {
    Start {
        conn: &'a mut Conn,
        plan: ChunkRead<'a>,
    },
    Rows {
        rows: BoxStream<'a, mysql_async::Result<Row>>,
        plan: ChunkRead<'a>,
    },
    Done,
}

impl<'a> ReadState<'a> {
    async fn step(self) -> Option<(Result<RowBatch>, ReadState<'a>)> {
        let (mut rows, plan) = match self {
            ReadState::Done => return None,
            ReadState::Rows { rows, plan } => (rows, plan),
            ReadState::Start { conn, plan } => {
                let params = plan.params.clone();
                match conn
                    .exec_stream::<Row, _, _>(plan.sql.clone(), params)
                    .await
                {
                    Ok(rows) => (rows.boxed(), plan),
                    Err(e) => return Some((Err(map_error(e, plan.context())), ReadState::Done)),
                }
            }
        };
        let mut batch = RowBatch::with_capacity(BATCH_ROWS.min(1024));
        loop {
            match rows.next().await {
                Some(Ok(row)) => match plan.decode_row(row.unwrap_raw()) {
                    Ok(values) => {
                        batch.push(values);
                        if batch.len() >= BATCH_ROWS || batch.size_bytes >= BATCH_BYTES {
                            return Some((Ok(batch), ReadState::Rows { rows, plan }));
                        }
                    }
                    Err(e) => return Some((Err(e), ReadState::Done)),
                },
                Some(Err(e)) => return Some((Err(map_error(e, plan.context())), ReadState::Done)),
                None => {
                    return if batch.is_empty() {
                        None
                    } else {
                        Some((Ok(batch), ReadState::Done))
                    };
                }
            }
        }
    }
}

/// A key prober over one table's key, running on a snapshot reader's connection or on a
/// connection of its own.
///
/// [`KeyProber::key_after`] runs `SELECT k1, k2 FROM t FORCE INDEX (…) WHERE (k1, k2) > (…)
/// ORDER BY k1, k2 LIMIT 1 OFFSET step-1`, with the row comparison expanded for the range
/// optimizer. Key values of `ENUM` and `SET` columns are their numbers (1-based member
/// index, member bit mask), because that is the order the server sorts them in; chunk
/// bounds from this prober are read back correctly by [`MySqlSnapshotReader`].
#[derive(Debug)]
pub struct MySqlKeyProber<'c> {
    conn: ConnSlot<'c>,
    table: TableName,
    select: String,
    key: KeyColumns,
}

#[derive(Debug)]
enum ConnSlot<'c> {
    Borrowed(&'c mut Conn),
    Owned(Conn),
}

impl ConnSlot<'_> {
    fn get(&mut self) -> &mut Conn {
        match self {
            ConnSlot::Borrowed(c) => c,
            ConnSlot::Owned(c) => c,
        }
    }
}

impl<'c> MySqlKeyProber<'c> {
    /// A prober for `table` over the key columns `key` on `conn` (e.g. a snapshot reader's
    /// connection: see [`MySqlSnapshotReader::key_prober`]).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] if `key` is empty or names a column the table does not have;
    /// [`ErrorKind::Unsupported`] for key column types that cannot be compared exactly
    /// (JSON, spatial).
    pub fn new(conn: &'c mut Conn, table: &Table, key: &[String]) -> Result<Self> {
        Self::with_slot(ConnSlot::Borrowed(conn), table, key)
    }

    fn with_slot(conn: ConnSlot<'c>, table: &Table, key: &[String]) -> Result<Self> {
        let key = KeyColumns::new(table, key)?;
        let mut select = String::from("SELECT ");
        for (i, k) in key.columns.iter().enumerate() {
            if i > 0 {
                select.push_str(", ");
            }
            select.push_str(&k.select_expr());
        }
        let _ = write!(select, " FROM {}", qualified(&table.name));
        if let Some(index) = &key.index {
            let _ = write!(select, " FORCE INDEX ({})", quote_ident(index));
        }
        Ok(Self {
            conn,
            table: table.name.clone(),
            select,
            key,
        })
    }
}

impl MySqlKeyProber<'static> {
    /// A prober on a fresh connection to `url` (outside any snapshot: the plan reflects the
    /// data at the time of each probe, which is still correct, as chunks cover the whole key
    /// space).
    ///
    /// # Errors
    ///
    /// Connection errors, and as [`MySqlKeyProber::new`].
    pub async fn connect(url: &str, table: &Table, key: &[String]) -> Result<Self> {
        let opts: MySqlConnectOptions = url.parse()?;
        let conn = connect(&opts).await?;
        Self::with_slot(ConnSlot::Owned(conn), table, key)
    }
}

impl MySqlKeyProber<'_> {
    /// The first key tuple in key order (`DESC` for the last), if the table has rows.
    async fn key_at_end(&mut self, descending: bool) -> Result<Option<Vec<Value>>> {
        let mut sql = self.select.clone();
        sql.push_str(" ORDER BY ");
        for (i, k) in self.key.columns.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&quote_ident(&k.name));
            if descending {
                sql.push_str(" DESC");
            }
        }
        sql.push_str(" LIMIT 1");
        let table = &self.table;
        let row: Option<Row> = self
            .conn
            .get()
            .query_first(sql)
            .await
            .map_err(|e| map_error(e, format!("probing the key of `{table}`")))?;
        row.map(|row| self.decode_key(row)).transpose()
    }

    fn decode_key(&self, row: Row) -> Result<Vec<Value>> {
        let table = &self.table;
        let raw = row.unwrap_raw();
        let mut key = Vec::with_capacity(raw.len());
        for (v, k) in raw.into_iter().zip(&self.key.columns) {
            let v = decode(k.probe_kind, v.unwrap_or(mysql_async::Value::NULL)).map_err(|e| {
                Error::new(
                    e.kind(),
                    format!("{} in key column `{}.{}`", e.describe(), table, k.name),
                )
            })?;
            key.push(v);
        }
        Ok(key)
    }
}

#[dts_core::async_trait]
impl KeyProber for MySqlKeyProber<'_> {
    async fn key_range(&mut self) -> Result<Option<(Vec<Value>, Vec<Value>)>> {
        let Some(min) = self.key_at_end(false).await? else {
            return Ok(None);
        };
        let max = self.key_at_end(true).await?.unwrap_or_else(|| min.clone());
        Ok(Some((min, max)))
    }

    async fn key_after(
        &mut self,
        after: Option<&[Value]>,
        step: u64,
    ) -> Result<Option<Vec<Value>>> {
        let step = step.max(1);
        let mut sql = self.select.clone();
        let mut params = Vec::new();
        if let Some(after) = after {
            let term = self.key.compare(after, Cmp::Gt, &mut params)?;
            let _ = write!(sql, " WHERE {term}");
        }
        sql.push_str(" ORDER BY ");
        for (i, k) in self.key.columns.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&quote_ident(&k.name));
        }
        sql.push_str(" LIMIT 1 OFFSET ?");
        params.push(mysql_async::Value::UInt(step - 1));
        let table = &self.table;
        let row: Option<Row> = self
            .conn
            .get()
            .exec_first(sql, params)
            .await
            .map_err(|e| map_error(e, format!("probing the key of `{table}`")))?;
        let Some(row) = row else {
            return Ok(None);
        };
        self.decode_key(row).map(Some)
    }
}

/// The key columns of a table, with what is needed to compare them with bound values.
#[derive(Debug, Clone)]
struct KeyColumns {
    columns: Vec<KeyColumn>,
    /// The index to force: `PRIMARY` or the unique index over exactly these columns.
    index: Option<String>,
}

#[derive(Debug, Clone)]
struct KeyColumn {
    name: String,
    /// How a bound value is written in SQL (`?`, or a cast for exact decimal comparison).
    placeholder: String,
    /// Whether the column is compared by number (`ENUM`, `SET`).
    numeric_member: bool,
    /// How the prober decodes the column.
    probe_kind: Kind,
}

impl KeyColumn {
    fn select_expr(&self) -> String {
        if self.numeric_member {
            format!("({} + 0)", quote_ident(&self.name))
        } else {
            quote_ident(&self.name)
        }
    }
}

/// A comparison of a key tuple with a bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    /// key > bound
    Gt,
    /// key >= bound
    Ge,
    /// key < bound
    Lt,
}

impl KeyColumns {
    fn new(table: &Table, key: &[String]) -> Result<Self> {
        if key.is_empty() {
            return Err(Error::config(format!(
                "no key columns given for table `{}`",
                table.name
            )));
        }
        let mut columns = Vec::with_capacity(key.len());
        for name in key {
            let column = table.column(name).ok_or_else(|| {
                Error::config(format!("key column `{}.{name}` does not exist", table.name))
            })?;
            // Parsed once: the declared type decides the placeholder, the shape the value.
            let parsed = MySqlColumn::of(table, column)?;
            let (placeholder, numeric_member, probe_kind) = match &parsed.ty {
                MySqlType::Decimal { precision, scale } => (
                    format!("CAST(? AS DECIMAL({precision},{scale}))"),
                    false,
                    Kind::Decimal,
                ),
                MySqlType::Enum(_) | MySqlType::Set(_) => ("?".to_string(), true, Kind::UInt),
                MySqlType::Json | MySqlType::Spatial(_) => {
                    return Err(Error::new(
                        ErrorKind::Unsupported,
                        format!(
                            "column `{}.{}` of type `{}` cannot be a chunk key",
                            table.name, column.name, column.source_type
                        ),
                    ))
                }
                _ => ("?".to_string(), false, parsed.kind),
            };
            columns.push(KeyColumn {
                name: name.clone(),
                placeholder,
                numeric_member,
                probe_kind,
            });
        }
        let index = if table
            .primary_key
            .as_ref()
            .is_some_and(|pk| pk.columns == key)
        {
            Some("PRIMARY".to_string())
        } else {
            table
                .indexes
                .iter()
                .find(|i| {
                    i.unique
                        && i.columns.len() == key.len()
                        && i.columns
                            .iter()
                            .zip(key)
                            .all(|(c, k)| &c.name == k && c.prefix_length.is_none())
                })
                .map(|i| i.name.clone())
        };
        Ok(Self { columns, index })
    }

    /// The expanded row comparison `key <cmp> bound`, e.g. for `(a, b) >= (x, y)`:
    /// `a >= x AND (a > x OR (a = x AND b >= y))`. The leading single-column term lets the
    /// range optimizer bound the scan even where it gives up on the disjunction.
    fn compare(
        &self,
        bound: &[Value],
        cmp: Cmp,
        params: &mut Vec<mysql_async::Value>,
    ) -> Result<String> {
        if bound.len() != self.columns.len() {
            return Err(Error::internal(format!(
                "chunk bound has {} values for a key of {} columns",
                bound.len(),
                self.columns.len()
            )));
        }
        let (strict, last, outer) = match cmp {
            Cmp::Gt => (">", ">", ">="),
            Cmp::Ge => (">", ">=", ">="),
            Cmp::Lt => ("<", "<", "<="),
        };
        let n = self.columns.len();
        let push = |i: usize, params: &mut Vec<mysql_async::Value>| -> String {
            params.push(mysql_param(&bound[i]));
            self.columns[i].placeholder.clone()
        };
        let col = |i: usize| quote_ident(&self.columns[i].name);
        if n == 1 {
            let p = push(0, params);
            return Ok(format!("{} {last} {p}", col(0)));
        }
        let mut sql = String::new();
        let p = push(0, params);
        let _ = write!(sql, "{} {outer} {p} AND (", col(0));
        for i in 0..n {
            if i > 0 {
                sql.push_str(" OR ");
            }
            sql.push('(');
            for j in 0..i {
                let p = push(j, params);
                let _ = write!(sql, "{} = {p} AND ", col(j));
            }
            let op = if i + 1 == n { last } else { strict };
            let p = push(i, params);
            let _ = write!(sql, "{} {op} {p})", col(i));
        }
        sql.push(')');
        Ok(sql)
    }
}

fn qualified(name: &TableName) -> String {
    format!("{}.{}", quote_ident(&name.schema), quote_ident(&name.name))
}

/// Why a server value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DecodeError {
    /// Text that is not UTF-8.
    Utf8,
    /// A value that is out of range or malformed for the column's type.
    Invalid(&'static str),
    /// The server sent a representation the column's type does not have.
    Unexpected(&'static str),
}

impl DecodeError {
    fn describe(&self) -> String {
        match self {
            DecodeError::Utf8 => "invalid utf-8".to_string(),
            DecodeError::Invalid(what) => format!("invalid {what} value"),
            DecodeError::Unexpected(what) => format!("unexpected {what} value from the server"),
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            DecodeError::Utf8 | DecodeError::Invalid(_) => ErrorKind::Value,
            DecodeError::Unexpected(_) => ErrorKind::Database,
        }
    }
}

fn text_of(bytes: Vec<u8>) -> Result<String, DecodeError> {
    String::from_utf8(bytes).map_err(|_| DecodeError::Utf8)
}

fn parse_text<T: std::str::FromStr>(bytes: &[u8], what: &'static str) -> Result<T, DecodeError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or(DecodeError::Invalid(what))
}

/// A DATETIME or TIMESTAMP of the binary protocol, checked as the binlog's are.
#[allow(clippy::too_many_arguments)]
fn protocol_date_time(
    y: u16,
    mo: u8,
    d: u8,
    h: u8,
    mi: u8,
    s: u8,
    micro: u32,
) -> Result<dts_core::DateTime, DecodeError> {
    date_time(
        y.into(),
        mo.into(),
        d.into(),
        h.into(),
        mi.into(),
        s.into(),
        micro.into(),
    )
    .ok_or(DecodeError::Invalid("datetime"))
}

/// Decodes one value of the binary (or text) protocol into a [`Value`] of `kind`.
fn decode(kind: Kind, v: mysql_async::Value) -> Result<Value, DecodeError> {
    use mysql_async::Value as M;
    Ok(match (kind, v) {
        (_, M::NULL) => Value::Null,
        (Kind::Int, M::Int(n)) => Value::Int(n),
        (Kind::Int, M::UInt(n)) => {
            Value::Int(i64::try_from(n).map_err(|_| DecodeError::Invalid("integer"))?)
        }
        (Kind::Int, M::Bytes(b)) => Value::Int(parse_text(&b, "integer")?),
        (Kind::UInt, M::UInt(n)) => Value::UInt(n),
        (Kind::UInt, M::Int(n)) => {
            Value::UInt(u64::try_from(n).map_err(|_| DecodeError::Invalid("unsigned integer"))?)
        }
        (Kind::UInt, M::Bytes(b)) => Value::UInt(parse_text(&b, "unsigned integer")?),
        (Kind::Decimal, M::Bytes(b)) => Value::Decimal(parse_text::<Decimal>(&b, "decimal")?),
        (Kind::Decimal, M::Int(n)) => Value::Decimal(
            n.to_string()
                .parse()
                .map_err(|_| DecodeError::Invalid("decimal"))?,
        ),
        (Kind::Decimal, M::UInt(n)) => Value::Decimal(
            n.to_string()
                .parse()
                .map_err(|_| DecodeError::Invalid("decimal"))?,
        ),
        (Kind::Float, M::Float(f)) => Value::Float(f),
        (Kind::Float, M::Bytes(b)) => Value::Float(parse_text(&b, "float")?),
        (Kind::Double, M::Double(f)) => Value::Double(f),
        (Kind::Double, M::Float(f)) => Value::Double(f64::from(f)),
        (Kind::Double, M::Bytes(b)) => Value::Double(parse_text(&b, "double")?),
        (Kind::Bit(n), M::Bytes(b)) => {
            Value::Bits(bit_string(n, &b).ok_or(DecodeError::Invalid("bit"))?)
        }
        (Kind::Bit(n), M::UInt(bits)) => {
            Value::Bits(BitString::new(n, bits).ok_or(DecodeError::Invalid("bit"))?)
        }
        (Kind::Text, M::Bytes(b)) => Value::Text(text_of(b)?),
        (Kind::Json, M::Bytes(b)) => Value::Json(text_of(b)?),
        (Kind::Bytes, M::Bytes(b)) => Value::Bytes(b),
        (Kind::Date, M::Date(y, mo, d, _, _, _, _)) => Value::Date(
            date_time(y.into(), mo.into(), d.into(), 0, 0, 0, 0)
                .ok_or(DecodeError::Invalid("date"))?
                .date,
        ),
        (Kind::Date, M::Bytes(b)) => Value::Date(parse_text(&b, "date")?),
        (Kind::DateTime, M::Date(y, mo, d, h, mi, s, us)) => {
            Value::DateTime(protocol_date_time(y, mo, d, h, mi, s, us)?)
        }
        (Kind::DateTime, M::Bytes(b)) => Value::DateTime(parse_text(&b, "datetime")?),
        (Kind::Timestamp, M::Date(y, mo, d, h, mi, s, us)) => {
            Value::Timestamp(protocol_date_time(y, mo, d, h, mi, s, us)?)
        }
        (Kind::Timestamp, M::Bytes(b)) => Value::Timestamp(parse_text(&b, "timestamp")?),
        (Kind::Time, M::Time(neg, days, h, mi, s, us)) => {
            let hours = u64::from(days) * 24 + u64::from(h);
            Value::Time(
                time(neg, hours, mi.into(), s.into(), us.into())
                    .ok_or(DecodeError::Invalid("time"))?,
            )
        }
        (Kind::Time, M::Bytes(b)) => Value::Time(parse_text(&b, "time")?),
        (Kind::Year, M::UInt(n)) => {
            Value::Year(u16::try_from(n).map_err(|_| DecodeError::Invalid("year"))?)
        }
        (Kind::Year, M::Int(n)) => {
            Value::Year(u16::try_from(n).map_err(|_| DecodeError::Invalid("year"))?)
        }
        (Kind::Year, M::Bytes(b)) => Value::Year(parse_text(&b, "year")?),
        (kind, other) => {
            return Err(DecodeError::Unexpected(match (kind, other) {
                (_, M::Bytes(_)) => "string",
                (_, M::Int(_) | M::UInt(_)) => "integer",
                (_, M::Float(_) | M::Double(_)) => "floating-point",
                (_, M::Date(..)) => "date",
                (_, M::Time(..)) => "time",
                (_, M::NULL) => "null",
            }))
        }
    })
}

/// Converts a [`Value`] to a prepared-statement parameter that the server compares exactly
/// with a column of the type the value came from: integers as integers, decimals as their
/// text (compare them through `CAST(? AS DECIMAL(p,s))`), text and bytes as strings, dates
/// and times as temporal values, bit strings as their unsigned number.
pub fn mysql_param(value: &Value) -> mysql_async::Value {
    use mysql_async::Value as M;
    match value {
        Value::Null => M::NULL,
        Value::Bool(b) => M::Int(i64::from(*b)),
        Value::Int(n) => M::Int(*n),
        Value::UInt(n) => M::UInt(*n),
        Value::Float(f) => M::Float(*f),
        Value::Double(f) => M::Double(*f),
        Value::Decimal(d) => M::Bytes(d.as_str().as_bytes().to_vec()),
        Value::Text(s) | Value::Json(s) => M::Bytes(s.as_bytes().to_vec()),
        Value::Bytes(b) => M::Bytes(b.clone()),
        Value::Date(d) => M::Date(d.year, d.month, d.day, 0, 0, 0, 0),
        Value::DateTime(dt) | Value::Timestamp(dt) => M::Date(
            dt.date.year,
            dt.date.month,
            dt.date.day,
            dt.hour,
            dt.minute,
            dt.second,
            dt.micro,
        ),
        Value::Time(d) => {
            let abs = d.micros.unsigned_abs();
            let micro = u32::try_from(abs % 1_000_000).unwrap_or(0);
            let secs = abs / 1_000_000;
            let part = |x: u64| u8::try_from(x).unwrap_or(u8::MAX);
            M::Time(
                d.micros < 0,
                u32::try_from(secs / 86_400).unwrap_or(u32::MAX),
                part(secs / 3600 % 24),
                part(secs / 60 % 60),
                part(secs % 60),
                micro,
            )
        }
        Value::Year(y) => M::UInt(u64::from(*y)),
        Value::Bits(b) => M::UInt(b.bits),
    }
}

/// A short rendering of a key value for error messages.
fn render_key_value(v: &Value) -> String {
    const MAX: usize = 40;
    let quoted = |s: &str| {
        let mut t: String = s.chars().take(MAX).collect();
        if s.chars().count() > MAX {
            t.push('…');
        }
        format!("'{t}'")
    };
    match v {
        Value::Null => "NULL".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Int(n) => n.to_string(),
        Value::UInt(n) => n.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Double(f) => f.to_string(),
        Value::Decimal(d) => d.to_string(),
        Value::Text(s) | Value::Json(s) => quoted(s),
        Value::Bytes(b) => {
            let mut s = String::from("x'");
            for byte in b.iter().take(MAX / 2) {
                let _ = write!(s, "{byte:02X}");
            }
            if b.len() > MAX / 2 {
                s.push('…');
            }
            s.push('\'');
            s
        }
        Value::Date(d) => quoted(&d.to_string()),
        Value::DateTime(d) | Value::Timestamp(d) => quoted(&d.to_string()),
        Value::Time(d) => quoted(&d.to_string()),
        Value::Year(y) => y.to_string(),
        Value::Bits(b) => format!("b'{b}'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dts_core::{Date, Duration, Index, IndexColumn, IndexKind, Key};
    use mysql_async::Value as M;

    fn column(name: &str, ty: &str) -> Column {
        Column {
            name: name.into(),
            ordinal: 1,
            source_type: ty.into(),
            nullable: false,
            default: None,
            auto_increment: false,
            on_update_current_timestamp: false,
            generated: None,
            charset: None,
            collation: None,
            json_checked: false,
            comment: None,
        }
    }

    fn table() -> Table {
        let mut generated = column("g", "int(11)");
        generated.generated = Some(dts_core::Generated {
            expression: "a + 1".into(),
            stored: true,
        });
        Table {
            name: TableName::new("shop", "t"),
            columns: vec![
                column("a", "int(11)"),
                column("b", "varchar(10)"),
                generated,
                column("d", "decimal(65,30)"),
                column("e", "enum('x','y')"),
            ],
            primary_key: Some(Key {
                name: None,
                columns: vec!["a".into(), "b".into()],
            }),
            indexes: vec![Index {
                name: "u_d".into(),
                unique: true,
                kind: IndexKind::BTree,
                columns: vec![IndexColumn {
                    name: "d".into(),
                    prefix_length: None,
                    descending: false,
                }],
            }],
            foreign_keys: vec![],
            comment: None,
            estimated_rows: 0,
            auto_increment: None,
        }
    }

    #[test]
    fn chunk_sql_expands_row_comparisons_and_skips_generated_columns() {
        let t = table();
        let chunk = Chunk {
            index: 3,
            key: vec!["a".into(), "b".into()],
            lower: Some(vec![Value::Int(1), Value::Text("x".into())]),
            upper: Some(vec![Value::Int(5), Value::Text("y".into())]),
        };
        let plan = ChunkRead::plan(&t, &chunk).unwrap();
        assert_eq!(
            plan.sql,
            "SELECT `a`, `b`, `d`, `e` FROM `shop`.`t` FORCE INDEX (`PRIMARY`) WHERE \
             `a` >= ? AND ((`a` > ?) OR (`a` = ? AND `b` >= ?)) AND \
             `a` <= ? AND ((`a` < ?) OR (`a` = ? AND `b` < ?))"
        );
        assert_eq!(plan.params.len(), 8);
        assert_eq!(plan.params[3], M::Bytes(b"x".to_vec()));
        assert_eq!(plan.key_positions, vec![0, 1]);
        let whole = ChunkRead::plan(&t, &Chunk::whole_table()).unwrap();
        assert_eq!(whole.sql, "SELECT `a`, `b`, `d`, `e` FROM `shop`.`t`");
        assert!(whole.params.is_empty());
    }

    #[test]
    fn decimal_keys_are_cast_and_unique_indexes_forced() {
        let t = table();
        let key = KeyColumns::new(&t, &["d".to_string()]).unwrap();
        assert_eq!(key.index.as_deref(), Some("u_d"));
        let mut params = Vec::new();
        let sql = key
            .compare(
                &[Value::Decimal("1.5".parse().unwrap())],
                Cmp::Gt,
                &mut params,
            )
            .unwrap();
        assert_eq!(sql, "`d` > CAST(? AS DECIMAL(65,30))");
        assert_eq!(params, vec![M::Bytes(b"1.5".to_vec())]);
        let e = KeyColumns::new(&t, &["e".to_string()]).unwrap();
        assert_eq!(e.columns[0].select_expr(), "(`e` + 0)");
        assert!(KeyColumns::new(&t, &["nope".to_string()]).is_err());
        assert_eq!(KeyColumns::new(&t, &["b".to_string()]).unwrap().index, None);
    }

    #[test]
    fn binary_protocol_values_decode_losslessly() {
        assert_eq!(
            decode(Kind::UInt, M::UInt(u64::MAX)),
            Ok(Value::UInt(u64::MAX))
        );
        assert_eq!(decode(Kind::Int, M::Int(-1)), Ok(Value::Int(-1)));
        assert!(decode(Kind::UInt, M::Int(-1)).is_err());
        assert_eq!(
            decode(Kind::Bit(64), M::Bytes(vec![0xFF; 8])),
            Ok(Value::Bits(BitString::new(64, u64::MAX).unwrap()))
        );
        assert_eq!(
            decode(Kind::Bit(12), M::Bytes(vec![0x0A, 0xBC])),
            Ok(Value::Bits(BitString::new(12, 0xABC).unwrap()))
        );
        assert_eq!(
            decode(Kind::Time, M::Time(true, 34, 22, 59, 59, 0)),
            Ok(Value::Time(Duration::from_micros(
                -(838 * 3600 + 59 * 60 + 59) * 1_000_000
            )))
        );
        assert_eq!(
            decode(Kind::Date, M::Date(0, 0, 0, 0, 0, 0, 0)),
            Ok(Value::Date(Date::new(0, 0, 0)))
        );
        assert_eq!(
            decode(Kind::Text, M::Bytes(vec![0xFF])),
            Err(DecodeError::Utf8)
        );
        assert_eq!(
            decode(
                Kind::Decimal,
                M::Bytes(b"-0.000000000000000000000000000001".to_vec())
            ),
            Ok(Value::Decimal(
                "-0.000000000000000000000000000001".parse().unwrap()
            ))
        );
        assert_eq!(decode(Kind::Year, M::UInt(2155)), Ok(Value::Year(2155)));
        assert!(matches!(
            decode(Kind::Date, M::Int(1)),
            Err(DecodeError::Unexpected("integer"))
        ));
    }

    #[test]
    fn params_round_trip_through_decode() {
        let values = [
            (Kind::Int, Value::Int(i64::MIN)),
            (Kind::UInt, Value::UInt(u64::MAX)),
            (Kind::Float, Value::Float(-3.5)),
            (Kind::Double, Value::Double(5e-324)),
            (Kind::Decimal, Value::Decimal("12.500".parse().unwrap())),
            (Kind::Text, Value::Text("Grüße 🎉".into())),
            (Kind::Bytes, Value::Bytes(vec![0, 0xFF])),
            (Kind::Date, Value::Date(Date::new(2024, 0, 0))),
            (
                Kind::DateTime,
                Value::DateTime("9999-12-31 23:59:59.999999".parse().unwrap()),
            ),
            (
                Kind::Timestamp,
                Value::Timestamp("2038-01-19 03:14:07.5".parse().unwrap()),
            ),
            (
                Kind::Time,
                Value::Time("-838:59:59.000001".parse().unwrap()),
            ),
            (Kind::Time, Value::Time("25:00:00".parse().unwrap())),
            (Kind::Year, Value::Year(1901)),
            (
                Kind::Bit(5),
                Value::Bits(BitString::new(5, 0b10101).unwrap()),
            ),
            (Kind::Json, Value::Json("{}".into())),
        ];
        for (kind, v) in values {
            assert_eq!(decode(kind, mysql_param(&v)), Ok(v.clone()), "{v:?}");
        }
    }

    #[test]
    fn undecodable_values_name_table_column_chunk_and_key() {
        let t = table();
        let chunk = Chunk {
            index: 7,
            key: vec!["a".into(), "b".into()],
            lower: Some(vec![Value::Int(1), Value::Text("x".into())]),
            upper: None,
        };
        let plan = ChunkRead::plan(&t, &chunk).unwrap();
        let row = vec![
            Some(M::Int(42)),
            Some(M::Bytes(b"key".to_vec())),
            Some(M::Bytes(b"1.5".to_vec())),
            Some(M::Bytes(vec![b'x', 0xFF])),
        ];
        let err = plan.decode_row(row.clone()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Value);
        assert_eq!(
            err.message(),
            "reading chunk 7 of `shop.t`: invalid utf-8 in column `shop.t.e` at key (42, 'key')"
        );
        let mut good = row;
        good[3] = Some(M::Bytes(b"y".to_vec()));
        assert_eq!(
            plan.decode_row(good).unwrap(),
            vec![
                Value::Int(42),
                Value::Text("key".into()),
                Value::Decimal("1.5".parse().unwrap()),
                Value::Text("y".into())
            ]
        );
        assert_eq!(
            plan.decode_row(vec![None]).unwrap_err().kind(),
            ErrorKind::Internal
        );
    }

    #[test]
    fn futures_are_send() {
        fn assert_send<T: Send>(_: &T) {}
        let t = table();
        let key = vec!["a".to_string(), "b".to_string()];
        let open = MySqlSnapshot::open("mysql://root@127.0.0.1:1", 2);
        assert_send(&open);
        let connect = MySqlKeyProber::connect("mysql://root@127.0.0.1:1", &t, &key);
        assert_send(&connect);
    }
}
