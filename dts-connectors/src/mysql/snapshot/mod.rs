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
//! `FLUSH TABLES WITH READ LOCK` waits for running statements to end (on MariaDB the
//! writing ones, on MySQL queries too), and while it waits every write on the server waits
//! behind it. The control connection therefore sets `lock_wait_timeout` to
//! [`SNAPSHOT_LOCK_WAIT_SECONDS`]: behind a long-running statement the lock attempt gives
//! up after that long, releasing the writes,
//! with a transient error ([`ErrorKind::Transient`]) that names the cause. The caller
//! decides whether to try again (dts's full load does, within its retry window).
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

use std::time::Instant;

use dts_core::{Error, ErrorKind, Position, Result, TableName};
use mysql_async::prelude::*;
use mysql_async::{Conn, Row};
use tracing::{debug, info, warn};

use super::error::map_error;
use super::options::MySqlConnectOptions;
use super::source::MySqlReadLock;

/// How long the lock on tables a snapshot holds still waits for writes in progress.
const HOLD_LOCK_WAIT_SECONDS: u32 = 60;

mod decode;
#[cfg(feature = "postgres")]
mod encode;
mod param;
mod prober;
mod reader;
#[cfg(test)]
mod tests;

pub use param::mysql_param;
pub use prober::MySqlKeyProber;
pub(crate) use reader::read_chunk_on;

/// Most rows in one [`RowBatch`](dts_core::RowBatch) produced by [`MySqlSnapshotReader`].
pub const BATCH_ROWS: usize = 4096;

/// A [`RowBatch`](dts_core::RowBatch) produced by [`MySqlSnapshotReader`] is closed once its values hold at least
/// this many bytes (8 MiB), so a batch exceeds it by at most one row.
pub const BATCH_BYTES: usize = 8 << 20;

/// Longest time, in seconds, `FLUSH TABLES WITH READ LOCK` waits for running statements
/// (and so holds up the source's writes) before the snapshot attempt fails; the session's
/// `lock_wait_timeout` on the control connection.
pub const SNAPSHOT_LOCK_WAIT_SECONDS: u32 = 5;

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
    filters: dts_core::RowFilters,
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
        let (snapshot, readers, _) = Self::open_holding(url, readers, &[]).await?;
        Ok((snapshot, readers))
    }

    /// Like [`MySqlSnapshot::open`], and also locks `hold` (tables a snapshot does not hold
    /// still: non-transactional engines) against writes on a connection of its own, from
    /// before the snapshot's position is fixed until the returned lock is released: their
    /// rows, read by any reader while the lock is held, are their rows at the snapshot's
    /// position. Under the global read lock, the table lock is taken while the global lock
    /// is held (a writer waiting for the table lock would otherwise keep `FLUSH TABLES WITH
    /// READ LOCK` waiting); without it, before the snapshot transaction starts.
    ///
    /// # Errors
    ///
    /// As [`MySqlSnapshot::open`]; locking errors.
    pub async fn open_holding(
        url: &str,
        readers: usize,
        hold: &[TableName],
    ) -> Result<(Self, Vec<MySqlSnapshotReader>, Option<MySqlReadLock>)> {
        let opts: MySqlConnectOptions = url.parse()?;
        let take_hold = || async {
            if hold.is_empty() {
                return Ok(None);
            }
            let conn = connect(&opts).await?;
            MySqlReadLock::take(conn, hold, HOLD_LOCK_WAIT_SECONDS)
                .await
                .map(Some)
        };
        let readers = readers.max(1);
        let started = Instant::now();
        let mut control = connect(&opts).await?;
        let facts = server_facts(&mut control).await?;
        let lock_free_possible = facts.is_mariadb || !facts.log_bin;
        if readers == 1 && lock_free_possible {
            // The control connection becomes the reader: one connection is enough.
            let held = take_hold().await?;
            let reader = open_lock_free(control, &facts).await?;
            let (snapshot, readers) = finish(facts, reader, started);
            return Ok((snapshot, readers, held));
        }

        let mut conns = futures::future::try_join_all((0..readers).map(|_| connect(&opts))).await?;
        for conn in &mut conns {
            prepare_reader(conn).await?;
        }
        control
            .query_drop(format!(
                "SET SESSION lock_wait_timeout = {SNAPSHOT_LOCK_WAIT_SECONDS}"
            ))
            .await
            .map_err(|e| map_error(e, "preparing the snapshot's lock connection"))?;
        match control.query_drop("FLUSH TABLES WITH READ LOCK").await {
            Ok(()) => {}
            Err(mysql_async::Error::Server(e)) if e.code == LOCK_WAIT_TIMEOUT => {
                return Err(Error::new(
                    ErrorKind::Transient,
                    format!(
                        "FLUSH TABLES WITH READ LOCK waited more than \
                         {SNAPSHOT_LOCK_WAIT_SECONDS} s for a long-running statement on the \
                         source and gave up so as not to hold up the source's writes"
                    ),
                )
                .with_source(mysql_async::Error::Server(e)));
            }
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
                    let held = take_hold().await?;
                    let reader = open_lock_free(first, &facts).await?;
                    let (snapshot, readers) = finish(facts, reader, started);
                    return Ok((snapshot, readers, held));
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
        let held = take_hold().await;
        let under_lock = match &held {
            Ok(_) => lock_and_start(&mut control, &mut conns, &facts).await,
            Err(_) => Ok(None),
        };
        // On MariaDB, each reader's snapshot position, read while no write can commit: the
        // status is the snapshot's, and under the lock it is also the current position, so
        // a reader whose status fell back to the current position cannot read a later one.
        let mut positions = Vec::with_capacity(conns.len());
        if under_lock.is_ok() && held.is_ok() && facts.is_mariadb && facts.log_bin {
            for conn in &mut conns {
                positions.push(binlog_snapshot_status(conn).await);
            }
        }
        let unlocked = control
            .query_drop("UNLOCK TABLES")
            .await
            .map_err(|e| map_error(e, "cannot unlock tables after opening a snapshot"));
        let lock_ms = locked.elapsed().as_millis();
        let _ = control.disconnect().await;
        let held = held?;
        let mysql_position = under_lock?;
        unlocked?;

        let position = if facts.is_mariadb && facts.log_bin {
            let positions = positions.into_iter().collect::<Result<Vec<_>>>()?;
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
            .map(|(index, conn)| MySqlSnapshotReader {
                conn,
                index,
                filters: dts_core::RowFilters::default(),
            })
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
        Ok((snapshot, readers, held))
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

/// `ER_LOCK_WAIT_TIMEOUT`.
const LOCK_WAIT_TIMEOUT: u16 = 1205;

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
    Ok((
        MySqlSnapshotReader {
            conn,
            index: 0,
            filters: dts_core::RowFilters::default(),
        },
        position,
    ))
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
