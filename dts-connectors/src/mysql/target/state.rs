//! The task's state in a MySQL/MariaDB target: the `dts_meta` database.
//!
//! This module owns every `dts_meta` table of a MySQL target and all SQL that touches them.
//! The tables are created by one versioned migration ([`migrate`]); the chunk sink writes a
//! chunk's checkpoint with the statement defined here, inside its own data transaction.
//!
//! | table | what it records |
//! |---|---|
//! | `version` | the migration version of the database |
//! | `step` | steps done (`schema.pre_data`, each schema statement, …) and kept tables |
//! | `snapshot` | each full-load run's snapshot and its log position |
//! | `chunk_plan` | each table's chunk plan, so a resumed run uses the same boundaries |
//! | `chunk` | each chunk copied (committed with the chunk's rows) |
//! | `cdc_position` | the applied replication position |
//! | `cdc_schema` | the tracked source schema at the applied position |
//! | `cdc_source` | the change reader of the last run on the source (id, account, address) |
//! | `cdc_ddl` | a replicated DDL statement being run: its position, step, session, and the touched tables' definitions before it (version 2); for a change inside a source transaction, how many of the transaction's events were committed before it (version 3) |
//! | `run` | who holds the task's run lock (host, process id, its connection, since when) |
//! | `built_catalog` | the source schema the target tables were built from |
//! | `task` | the task record: state, failure, heartbeat, published progress, stop request |
//!
//! Times are `DATETIME(6)` in UTC (`UTC_TIMESTAMP(6)`, the server's clock); JSON documents
//! are `LONGTEXT` (a MariaDB `JSON` is one, and nothing here queries inside them).
//!
//! The run lock is a named lock (`GET_LOCK`) on a session of its own, named after a hash of
//! the task (lock names are limited to 64 characters). The store checks every second that
//! the session still holds it; a lost session is replaced and the lock taken again, and if
//! another run took it meanwhile (or the target stays unreachable for a minute)
//! [`StateStore::run_lock_lost`] says so and the run stops.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};

use dts_core::{
    Catalog, Chunk, CopiedChunks, DroppedState, Error, ErrorKind, Heartbeat, Position,
    PublishedProgress, ReaderRecord, Result, RunHolder, StateStore, TableName, TaskFailure,
    TaskRecord, TaskState,
};
use dts_schema::quote_mysql_literal;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Pool, Row};

use crate::mysql::error::map_error;

/// The database holding the task state.
pub const META_DATABASE: &str = "dts_meta";

/// The schema version this release writes.
pub const STATE_VERSION: u32 = 3;

/// The migrations, in order: entry `i` brings the database from version `i` to `i + 1`.
/// Each entry is a list of statements (MySQL DDL commits on its own, so each is idempotent).
const MIGRATIONS: &[&[&str]] = &[
    &[
        "CREATE TABLE IF NOT EXISTS dts_meta.step ( \
        task VARCHAR(190) NOT NULL, \
        step VARCHAR(500) NOT NULL, \
        done_at DATETIME(6) NOT NULL, \
        PRIMARY KEY (task, step)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        "CREATE TABLE IF NOT EXISTS dts_meta.snapshot ( \
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, \
        task VARCHAR(190) NOT NULL, \
        taken_at DATETIME(6) NOT NULL, \
        position LONGTEXT NULL, \
        KEY (task, id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        "CREATE TABLE IF NOT EXISTS dts_meta.chunk_plan ( \
        task VARCHAR(190) NOT NULL, \
        schema_name VARCHAR(64) NOT NULL, \
        table_name VARCHAR(64) NOT NULL, \
        chunks BIGINT NOT NULL, \
        plan LONGTEXT NOT NULL, \
        PRIMARY KEY (task, schema_name, table_name)) \
        ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        "CREATE TABLE IF NOT EXISTS dts_meta.chunk ( \
        task VARCHAR(190) NOT NULL, \
        schema_name VARCHAR(64) NOT NULL, \
        table_name VARCHAR(64) NOT NULL, \
        chunk INT NOT NULL, \
        row_count BIGINT NOT NULL, \
        done_at DATETIME(6) NOT NULL, \
        PRIMARY KEY (task, schema_name, table_name, chunk)) \
        ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        "CREATE TABLE IF NOT EXISTS dts_meta.cdc_position ( \
        task VARCHAR(190) NOT NULL PRIMARY KEY, \
        position LONGTEXT NOT NULL, \
        applied_at DATETIME(6) NULL) \
        ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        "CREATE TABLE IF NOT EXISTS dts_meta.cdc_schema ( \
        task VARCHAR(190) NOT NULL PRIMARY KEY, \
        catalog LONGTEXT NOT NULL, \
        position LONGTEXT NOT NULL, \
        changed_at DATETIME(6) NULL) \
        ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        "CREATE TABLE IF NOT EXISTS dts_meta.cdc_source ( \
        task VARCHAR(190) NOT NULL PRIMARY KEY, \
        connection_id BIGINT UNSIGNED NOT NULL, \
        user_name VARCHAR(255) NULL, \
        host VARCHAR(255) NULL, \
        started_at DATETIME(6) NULL) \
        ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        "CREATE TABLE IF NOT EXISTS dts_meta.run ( \
        task VARCHAR(190) NOT NULL PRIMARY KEY, \
        host VARCHAR(255) NOT NULL, \
        pid BIGINT NOT NULL, \
        connection_id BIGINT UNSIGNED NOT NULL, \
        started_at DATETIME(6) NOT NULL) \
        ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        "CREATE TABLE IF NOT EXISTS dts_meta.built_catalog ( \
        task VARCHAR(190) NOT NULL PRIMARY KEY, \
        catalog LONGTEXT NOT NULL, \
        recorded_at DATETIME(6) NOT NULL) \
        ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        "CREATE TABLE IF NOT EXISTS dts_meta.task ( \
        task VARCHAR(190) NOT NULL PRIMARY KEY, \
        state VARCHAR(32) NOT NULL, \
        created_at DATETIME(6) NOT NULL, \
        state_since DATETIME(6) NOT NULL, \
        updated_at DATETIME(6) NOT NULL, \
        failure LONGTEXT NULL, \
        host VARCHAR(255) NULL, \
        pid BIGINT NULL, \
        beat_at DATETIME(6) NULL, \
        stop_requested_at DATETIME(6) NULL, \
        switchover_position LONGTEXT NULL, \
        progress LONGTEXT NOT NULL) \
        ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    ],
    // 2: the replicated DDL statement being run, so that a run killed while it ran neither
    // runs it twice nor loses it.
    &["CREATE TABLE IF NOT EXISTS dts_meta.cdc_ddl ( \
        task VARCHAR(190) NOT NULL PRIMARY KEY, \
        position LONGTEXT NOT NULL, \
        step INT NOT NULL, \
        connection_id BIGINT UNSIGNED NOT NULL, \
        definitions LONGTEXT NOT NULL, \
        started_at DATETIME(6) NOT NULL) \
        ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"],
    // 3: a schema change inside a source transaction (a PostgreSQL relation description)
    // is recorded with the number of the transaction's events committed before it.
    &["ALTER TABLE dts_meta.cdc_ddl ADD COLUMN events BIGINT UNSIGNED NULL"],
];

/// The state tables keyed by task, in the order [`StateStore::drop_task`] empties them.
const TASK_TABLES: &[&str] = &[
    "task",
    "step",
    "snapshot",
    "chunk_plan",
    "chunk",
    "cdc_position",
    "cdc_schema",
    "cdc_source",
    "cdc_ddl",
    "run",
    "built_catalog",
];

/// The named lock that serialises migrations and dropping the database.
const MIGRATE_LOCK: &str = "dts_meta.migrate";

use crate::run_lock::RUN_LOCK_CHECK;

/// How long a lost run-lock session is reconnected before the run gives up.
const RUN_LOCK_RETRY_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// How long a run lock held by another session is retried before the run gives up: a
/// process killed a moment ago may still hold it until its server notices.
const RUN_LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(3);

/// A time column as the task record shows it: UTC, `YYYY-MM-DD HH:MM:SS`.
macro_rules! utc {
    ($col:literal) => {
        concat!("DATE_FORMAT(", $col, ", '%Y-%m-%d %H:%i:%s')")
    };
}

/// Records a chunk as copied: task, schema, table, chunk, rows.
pub(crate) const INSERT_CHECKPOINT: &str = "INSERT INTO dts_meta.chunk \
    (task, schema_name, table_name, chunk, row_count, done_at) \
    VALUES (?, ?, ?, ?, ?, UTC_TIMESTAMP(6))";
/// The chunks copied of a target table: task, schema, table.
pub(crate) const SELECT_DONE: &str = "SELECT chunk FROM dts_meta.chunk \
    WHERE task = ? AND schema_name = ? AND table_name = ? ORDER BY chunk";

fn db(what: impl std::fmt::Display) -> impl FnOnce(mysql_async::Error) -> Error {
    move |e| map_error(e, what)
}

fn corrupt(what: impl std::fmt::Display, e: serde_json::Error) -> Error {
    Error::new(
        ErrorKind::Database,
        format!("the {what} recorded in dts_meta is malformed"),
    )
    .with_source(e)
}

/// A value as the JSON text stored in `dts_meta`.
macro_rules! encode {
    ($value:expr, $what:literal) => {
        serde_json::to_string($value)
            .map_err(|e| Error::internal(concat!("cannot encode ", $what)).with_source(e))
    };
}

pub(crate) fn parse_position(task: &str, json: &str) -> Result<Position> {
    serde_json::from_str(json).map_err(|e| corrupt(format_args!("position of task `{task}`"), e))
}

/// The applied position of a task: task.
pub(crate) const SELECT_POSITION: &str =
    "SELECT position FROM dts_meta.cdc_position WHERE task = ?";

/// The replicated DDL statement a run of a task was running: task. Position, step, the
/// session that ran it, the definitions before it.
pub(crate) const SELECT_DDL: &str = "SELECT position, step, connection_id, definitions, events \
    FROM dts_meta.cdc_ddl WHERE task = ?";

/// The statement that moves task `task`'s applied position from `expected` (the position the
/// writer last read or wrote; `None`: none recorded yet) to `position`, in the writer's
/// transaction, as SQL text (for a script of statements sent at once; literals quoted for a
/// session without `NO_BACKSLASH_ESCAPES`).
///
/// The move is compare-and-set: when the recorded position is not `expected` (another run
/// moved it, or a second writer would move it backwards) the statement fails — error 1048
/// (the new position turns NULL), or 1062 (a position exists where none was expected) — and
/// [`position_conflict`] names the task.
pub(crate) fn advance_position_sql(
    task: &str,
    expected: Option<&Position>,
    position: &Position,
) -> Result<String> {
    let task = quote_mysql_literal(task);
    let new = quote_mysql_literal(&encode!(position, "a position")?);
    Ok(match expected {
        None => format!(
            "INSERT INTO dts_meta.cdc_position (task, position, applied_at) \
             VALUES ({task}, {new}, UTC_TIMESTAMP(6))"
        ),
        Some(expected) => {
            let expected = quote_mysql_literal(&encode!(expected, "a position")?);
            format!(
                "INSERT INTO dts_meta.cdc_position (task, position, applied_at) \
                 VALUES ({task}, {new}, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE \
                 position = IF(position = {expected}, {new}, NULL), \
                 applied_at = UTC_TIMESTAMP(6)"
            )
        }
    })
}

/// Whether a failed [`advance_position_sql`] statement failed its compare-and-set.
pub(crate) fn is_position_conflict(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if s.code == 1048 || s.code == 1062)
}

/// The error for a position the compare-and-set refused: [`ErrorKind::Conflict`] naming the
/// task, the position found (`found`, read after the refusal) and the one expected.
pub(crate) fn position_conflict(
    e: mysql_async::Error,
    task: &str,
    found: Option<&Position>,
    expected: Option<&Position>,
    position: &Position,
) -> Error {
    let found = found.map_or("none".to_string(), |p| format!("`{p}`"));
    let expected = expected.map_or("none".to_string(), |p| format!("`{p}`"));
    Error::new(
        ErrorKind::Conflict,
        format!(
            "the applied position of task `{task}` is {found}, not {expected} as this run \
             last recorded it: another run of the task is writing it; stop it (position \
             `{position}` not recorded, nothing committed)"
        ),
    )
    .with_source(e)
}

/// The statement recording the tracked source schema `catalog` of task `task` at
/// `position`, as SQL text.
pub(crate) fn upsert_schema_sql(
    task: &str,
    catalog: &Catalog,
    position: &Position,
) -> Result<String> {
    Ok(format!(
        "INSERT INTO dts_meta.cdc_schema (task, catalog, position, changed_at) \
         VALUES ({}, {}, {}, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE \
         catalog = VALUES(catalog), position = VALUES(position), \
         changed_at = VALUES(changed_at)",
        quote_mysql_literal(task),
        quote_mysql_literal(&encode!(catalog, "a catalog")?),
        quote_mysql_literal(&encode!(position, "a position")?),
    ))
}

/// The statement recording that step `step` of the replicated DDL statement at `position`
/// is about to run on session `connection_id`, with the definitions of the tables it
/// touches (`definitions`, JSON), as SQL text. `events` is, for a change inside a source
/// transaction, how many of the transaction's events were committed before it.
pub(crate) fn record_ddl_sql(
    task: &str,
    position: &Position,
    step: usize,
    connection_id: u64,
    definitions: &str,
    events: Option<u64>,
) -> Result<String> {
    Ok(format!(
        "REPLACE INTO dts_meta.cdc_ddl \
         (task, position, step, connection_id, definitions, started_at, events) \
         VALUES ({}, {}, {step}, {connection_id}, {}, UTC_TIMESTAMP(6), {})",
        quote_mysql_literal(task),
        quote_mysql_literal(&encode!(position, "a position")?),
        quote_mysql_literal(definitions),
        events.map_or_else(|| "NULL".to_string(), |n| n.to_string()),
    ))
}

/// The statement forgetting task `task`'s replicated DDL statement, as SQL text.
pub(crate) fn clear_ddl_sql(task: &str) -> String {
    format!(
        "DELETE FROM dts_meta.cdc_ddl WHERE task = {}",
        quote_mysql_literal(task)
    )
}

/// The schema version recorded in `dts_meta`, or `None` when nothing is there yet.
///
/// # Errors
///
/// [`ErrorKind::Config`] when a newer release wrote the database; classified server errors.
pub(crate) async fn current_version(conn: &mut Conn) -> Result<Option<u32>> {
    let exists: Option<u64> = conn
        .query_first(
            "SELECT COUNT(*) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = 'dts_meta' AND TABLE_NAME = 'version'",
        )
        .await
        .map_err(db("reading the dts_meta version"))?;
    if exists.unwrap_or(0) == 0 {
        return Ok(None);
    }
    let version: Option<Option<u32>> = conn
        .query_first("SELECT MAX(version) FROM dts_meta.version")
        .await
        .map_err(db("reading the dts_meta version"))?;
    match version.flatten() {
        Some(v) if v > STATE_VERSION => Err(Error::config(format!(
            "the target's dts_meta database is at version {v}, newer than this release's \
             {STATE_VERSION}: run the task with the release that wrote it, or a newer one"
        ))),
        v => Ok(v),
    }
}

/// Creates or upgrades the `dts_meta` database to [`STATE_VERSION`]. Idempotent, and safe
/// to run from several connections at once (a named lock serialises migrations).
///
/// # Errors
///
/// A classified server error, e.g. [`ErrorKind::Privilege`] when the account may not
/// create the database; [`ErrorKind::Config`] when a newer release wrote it.
pub async fn migrate(conn: &mut Conn) -> Result<()> {
    if current_version(conn).await? == Some(STATE_VERSION) {
        return Ok(());
    }
    let what = "creating the dts_meta database in the target";
    let locked: Option<Option<i64>> = conn
        .exec_first("SELECT GET_LOCK(?, 60)", (MIGRATE_LOCK,))
        .await
        .map_err(db(what))?;
    if locked.flatten() != Some(1) {
        return Err(Error::new(
            ErrorKind::Transient,
            "another session is creating the dts_meta database",
        ));
    }
    let result = migrate_locked(conn).await;
    let released = conn
        .exec_drop("SELECT RELEASE_LOCK(?)", (MIGRATE_LOCK,))
        .await
        .map_err(db(what));
    result.and(released)
}

async fn migrate_locked(conn: &mut Conn) -> Result<()> {
    let what = "creating the dts_meta database in the target";
    conn.query_drop("CREATE DATABASE IF NOT EXISTS dts_meta CHARACTER SET utf8mb4")
        .await
        .map_err(db(what))?;
    conn.query_drop(
        "CREATE TABLE IF NOT EXISTS dts_meta.version ( \
             version INT UNSIGNED NOT NULL PRIMARY KEY, migrated_at DATETIME(6) NOT NULL) \
             ENGINE=InnoDB",
    )
    .await
    .map_err(db(what))?;
    let version = current_version(conn).await?.unwrap_or(0);
    for (i, statements) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        for sql in *statements {
            match conn.query_drop(*sql).await {
                // A column added by a run killed before it recorded the version.
                Err(mysql_async::Error::Server(e)) if e.code == 1060 => {}
                other => other.map_err(db(what))?,
            }
        }
        let to = u32::try_from(i + 1).unwrap_or(u32::MAX);
        conn.exec_drop(
            "INSERT INTO dts_meta.version (version, migrated_at) \
             VALUES (?, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE version = version",
            (to,),
        )
        .await
        .map_err(db(what))?;
    }
    Ok(())
}

/// Whether `step` of `task` is recorded as done.
pub(crate) async fn is_done(conn: &mut Conn, task: &str, step: &str) -> Result<bool> {
    let row: Option<u8> = conn
        .exec_first(
            "SELECT 1 FROM dts_meta.step WHERE task = ? AND step = ?",
            (task, step),
        )
        .await
        .map_err(db("reading task state"))?;
    Ok(row.is_some())
}

/// Records `step` of `task` as done (again is a no-op), in the connection's transaction if
/// one is open.
pub(crate) async fn mark_done(conn: &mut Conn, task: &str, step: &str) -> Result<()> {
    conn.exec_drop(
        "INSERT INTO dts_meta.step (task, step, done_at) VALUES (?, ?, UTC_TIMESTAMP(6)) \
         ON DUPLICATE KEY UPDATE task = task",
        (task, step),
    )
    .await
    .map_err(db("recording task state"))
}

const KEPT_PREFIX: &str = "kept:";

/// The step key that records target table `table` as kept.
pub(crate) fn kept_step(table: &TableName) -> Result<String> {
    Ok(format!("{KEPT_PREFIX}{}", encode!(table, "a table name")?))
}

/// The named lock of task `task`'s runs: `dts.run.` and a hash of the task name (lock names
/// are limited to 64 characters).
fn run_lock_name(task: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in task.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("dts.run.{h:016x}")
}

/// The [`StateStore`] of a MySQL/MariaDB target: the `dts_meta` database, through a pool of
/// connections of its own, and the run lock on a session of its own.
pub struct MySqlStateStore {
    pool: Pool,
    opts: Opts,
    task: String,
    lock_name: String,
    /// The session holding the run lock.
    lock_conn: tokio::sync::Mutex<Option<Conn>>,
    /// Whether this store holds the task's run lock.
    locked: AtomicBool,
}

impl std::fmt::Debug for MySqlStateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MySqlStateStore")
            .field("task", &self.task)
            .finish_non_exhaustive()
    }
}

impl MySqlStateStore {
    /// The state of task `task` on the target that `opts` (with the target's session
    /// set-up) connect to.
    pub fn new(opts: Opts, task: &str) -> Self {
        Self {
            pool: Pool::new(opts.clone()),
            opts,
            task: task.to_string(),
            lock_name: run_lock_name(task),
            lock_conn: tokio::sync::Mutex::new(None),
            locked: AtomicBool::new(false),
        }
    }

    /// Connects to the target at `url` for the state of task `task`.
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub async fn connect(url: &str, task: &str) -> Result<Self> {
        Ok(Self::new(super::session_opts(url).await?, task))
    }

    async fn conn(&self) -> Result<Conn> {
        self.pool
            .get_conn()
            .await
            .map_err(db("cannot connect to target"))
    }

    /// A connection, when the `dts_meta` database exists (else nothing is recorded).
    async fn conn_if_exists(&self) -> Result<Option<Conn>> {
        let mut conn = self.conn().await?;
        Ok(current_version(&mut conn).await?.map(|_| conn))
    }

    async fn rows(&self, sql: &str, params: mysql_async::Params, what: &str) -> Result<Vec<Row>> {
        let Some(mut conn) = self.conn_if_exists().await? else {
            return Ok(Vec::new());
        };
        conn.exec(sql, params).await.map_err(db(what))
    }

    async fn execute(&self, sql: &str, params: mysql_async::Params, what: String) -> Result<u64> {
        let mut conn = self.conn().await?;
        conn.exec_drop(sql, params).await.map_err(db(what))?;
        Ok(conn.affected_rows())
    }

    fn task_params(&self) -> mysql_async::Params {
        (self.task.as_str(),).into()
    }

    /// Takes the run lock on `conn`'s session if it is free.
    async fn try_lock(&self, conn: &mut Conn) -> Result<bool> {
        let got: Option<Option<i64>> = conn
            .exec_first("SELECT GET_LOCK(?, 0)", (self.lock_name.as_str(),))
            .await
            .map_err(db(format!("taking the run lock of task `{}`", self.task)))?;
        Ok(got.flatten() == Some(1))
    }

    /// Records this process and `conn`'s session as the holder of the run lock.
    async fn record_run(&self, conn: &mut Conn) -> Result<()> {
        conn.exec_drop(
            "REPLACE INTO dts_meta.run (task, host, pid, connection_id, started_at) \
             VALUES (?, ?, ?, CONNECTION_ID(), UTC_TIMESTAMP(6))",
            (
                self.task.as_str(),
                host_name(),
                i64::from(std::process::id()),
            ),
        )
        .await
        .map_err(db(format!("recording the run of task `{}`", self.task)))
    }

    /// The holder of the run lock, as recorded for the session that holds it now.
    async fn holder(&self, conn: &mut Conn) -> Result<Option<RunHolder>> {
        let row: Option<(String, i64, String)> = conn
            .exec_first(
                concat!(
                    "SELECT host, pid, ",
                    utc!("started_at"),
                    " FROM dts_meta.run WHERE task = ? AND connection_id = IS_USED_LOCK(?)"
                ),
                (self.task.as_str(), self.lock_name.as_str()),
            )
            .await
            .map_err(db(format!("reading who runs task `{}`", self.task)))?;
        Ok(row.map(|(host, pid, since)| RunHolder {
            host,
            pid: u32::try_from(pid).unwrap_or(0),
            since,
        }))
    }

    /// The error for a run lock held by another session, naming the holder when its record
    /// is that session's.
    async fn run_conflict(&self, conn: &mut Conn) -> Error {
        let who = match self.holder(conn).await {
            Ok(Some(h)) => format!(
                " (pid {} on host `{}`, since {} UTC)",
                h.pid, h.host, h.since
            ),
            _ => String::new(),
        };
        Error::new(
            ErrorKind::Conflict,
            format!(
                "another run of task `{}` is in progress{who}: stop it before starting \
                 the task again",
                self.task
            ),
        )
    }

    /// Takes the run lock again on a new session after its session was lost, retrying a
    /// failing connection for [`RUN_LOCK_RETRY_WINDOW`].
    async fn relock(&self) -> Result<()> {
        let deadline = std::time::Instant::now() + RUN_LOCK_RETRY_WINDOW;
        let mut lock_conn = self.lock_conn.lock().await;
        loop {
            let attempt = async {
                let mut conn = Conn::new(self.opts.clone())
                    .await
                    .map_err(db("cannot connect to target"))?;
                if !self.try_lock(&mut conn).await? {
                    return Err(self.run_conflict(&mut conn).await);
                }
                self.record_run(&mut conn).await?;
                Ok(conn)
            };
            match attempt.await {
                Ok(conn) => {
                    *lock_conn = Some(conn);
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::Conflict => return Err(e),
                Err(e) if std::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(RUN_LOCK_CHECK).await,
            }
        }
    }

    /// Whether the lock session still holds the run lock: `Ok(false)` when the lock is
    /// gone, an error when the session could not be asked.
    async fn holds_run_lock(&self) -> Result<bool> {
        let mut lock_conn = self.lock_conn.lock().await;
        let Some(conn) = lock_conn.as_mut() else {
            return Err(Error::new(ErrorKind::Connection, "no lock session"));
        };
        let held: Option<Option<i64>> = conn
            .exec_first(
                "SELECT IS_USED_LOCK(?) = CONNECTION_ID()",
                (self.lock_name.as_str(),),
            )
            .await
            .map_err(db("checking the run lock"))?;
        Ok(held.flatten() == Some(1))
    }
}

#[dts_core::async_trait]
impl StateStore for MySqlStateStore {
    async fn migrate(&self) -> Result<()> {
        let mut conn = self.conn().await?;
        migrate(&mut conn).await
    }

    async fn is_done(&self, step: &str) -> Result<bool> {
        let Some(mut conn) = self.conn_if_exists().await? else {
            return Ok(false);
        };
        is_done(&mut conn, &self.task, step).await
    }

    async fn mark_done(&self, step: &str) -> Result<()> {
        let mut conn = self.conn().await?;
        mark_done(&mut conn, &self.task, step).await
    }

    async fn kept_tables(&self) -> Result<BTreeSet<TableName>> {
        let rows = self
            .rows(
                "SELECT SUBSTRING(step, ?) FROM dts_meta.step WHERE task = ? AND step LIKE 'kept:%'",
                (
                    u64::try_from(KEPT_PREFIX.len() + 1).unwrap_or(6),
                    self.task.as_str(),
                )
                    .into(),
                "reading task state",
            )
            .await?;
        rows.into_iter()
            .map(|r| {
                let text: String = mysql_async::from_row(r);
                serde_json::from_str(&text).map_err(|e| corrupt("kept table", e))
            })
            .collect()
    }

    async fn record_snapshot(&self, position: Option<&Position>) -> Result<()> {
        let json = position.map(|p| encode!(p, "a position")).transpose()?;
        self.execute(
            "INSERT INTO dts_meta.snapshot (task, taken_at, position) \
             VALUES (?, UTC_TIMESTAMP(6), ?)",
            (self.task.as_str(), json).into(),
            "recording the snapshot position".into(),
        )
        .await
        .map(|_| ())
    }

    async fn snapshot_positions(&self) -> Result<Vec<Position>> {
        let rows = self
            .rows(
                "SELECT position FROM dts_meta.snapshot \
                 WHERE task = ? AND position IS NOT NULL ORDER BY id",
                self.task_params(),
                "reading task state",
            )
            .await?;
        rows.into_iter()
            .map(|r| parse_position(&self.task, &mysql_async::from_row::<String>(r)))
            .collect()
    }

    async fn chunk_snapshot_position(&self, table: &TableName) -> Result<Option<Position>> {
        let rows = self
            .rows(
                "SELECT (SELECT s.position FROM dts_meta.snapshot s \
                         WHERE s.task = c.task AND s.position IS NOT NULL \
                           AND s.taken_at <= c.done_at \
                         ORDER BY s.id DESC LIMIT 1) \
                 FROM dts_meta.chunk c \
                 WHERE c.task = ? AND c.schema_name = ? AND c.table_name = ? AND c.chunk = 0",
                (
                    self.task.as_str(),
                    table.schema.as_str(),
                    table.name.as_str(),
                )
                    .into(),
                "reading task state",
            )
            .await?;
        rows.into_iter()
            .filter_map(mysql_async::from_row::<Option<String>>)
            .map(|text| parse_position(&self.task, &text))
            .next()
            .transpose()
    }

    async fn chunk_plan(&self, table: &TableName) -> Result<Option<Vec<Chunk>>> {
        let rows = self
            .rows(
                "SELECT plan FROM dts_meta.chunk_plan \
                 WHERE task = ? AND schema_name = ? AND table_name = ?",
                (
                    self.task.as_str(),
                    table.schema.as_str(),
                    table.name.as_str(),
                )
                    .into(),
                "reading a chunk plan",
            )
            .await?;
        rows.into_iter()
            .next()
            .map(|r| {
                serde_json::from_str(&mysql_async::from_row::<String>(r))
                    .map_err(|e| corrupt(format_args!("chunk plan of `{table}`"), e))
            })
            .transpose()
    }

    async fn store_chunk_plan(&self, table: &TableName, chunks: &[Chunk]) -> Result<()> {
        let text = encode!(&chunks, "a chunk plan")?;
        self.execute(
            "INSERT INTO dts_meta.chunk_plan (task, schema_name, table_name, chunks, plan) \
             VALUES (?, ?, ?, ?, ?)",
            (
                self.task.as_str(),
                table.schema.as_str(),
                table.name.as_str(),
                u64::try_from(chunks.len()).unwrap_or(u64::MAX),
                text,
            )
                .into(),
            format!("storing the chunk plan of `{table}`"),
        )
        .await
        .map(|_| ())
    }

    async fn applied_position(&self) -> Result<Option<Position>> {
        let rows = self
            .rows(
                "SELECT position FROM dts_meta.cdc_position WHERE task = ?",
                self.task_params(),
                "reading the applied position",
            )
            .await?;
        rows.into_iter()
            .next()
            .map(|r| parse_position(&self.task, &mysql_async::from_row::<String>(r)))
            .transpose()
    }

    async fn start_position(&self, position: &Position) -> Result<bool> {
        let mut conn = self.conn().await?;
        migrate(&mut conn).await?;
        conn.exec_drop(
            "INSERT INTO dts_meta.cdc_position (task, position, applied_at) \
             VALUES (?, ?, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE task = task",
            (self.task.as_str(), encode!(position, "a position")?),
        )
        .await
        .map_err(db(format!(
            "recording position `{position}` of task `{}`",
            self.task
        )))?;
        Ok(conn.affected_rows() == 1)
    }

    async fn tracked_schema(&self) -> Result<Option<Catalog>> {
        let rows = self
            .rows(
                "SELECT catalog FROM dts_meta.cdc_schema WHERE task = ?",
                self.task_params(),
                "reading the tracked source schema",
            )
            .await?;
        rows.into_iter()
            .next()
            .map(|r| {
                serde_json::from_str(&mysql_async::from_row::<String>(r))
                    .map_err(|e| corrupt("tracked source schema", e))
            })
            .transpose()
    }

    async fn record_schema(&self, catalog: &Catalog, position: &Position) -> Result<()> {
        self.execute(
            "INSERT INTO dts_meta.cdc_schema (task, catalog, position, changed_at) \
             VALUES (?, ?, ?, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE \
             catalog = VALUES(catalog), position = VALUES(position), \
             changed_at = VALUES(changed_at)",
            (
                self.task.as_str(),
                encode!(catalog, "a catalog")?,
                encode!(position, "a position")?,
            )
                .into(),
            format!("recording the source schema of task `{}`", self.task),
        )
        .await
        .map(|_| ())
    }

    async fn built_catalog(&self) -> Result<Option<Catalog>> {
        let rows = self
            .rows(
                "SELECT catalog FROM dts_meta.built_catalog WHERE task = ?",
                self.task_params(),
                "reading the source schema the target was built from",
            )
            .await?;
        rows.into_iter()
            .next()
            .map(|r| {
                serde_json::from_str(&mysql_async::from_row::<String>(r)).map_err(|e| {
                    corrupt(
                        format_args!("source schema task `{}` was built from", self.task),
                        e,
                    )
                })
            })
            .transpose()
    }

    async fn record_built_catalog(&self, catalog: &Catalog) -> Result<()> {
        self.execute(
            "REPLACE INTO dts_meta.built_catalog (task, catalog, recorded_at) \
             VALUES (?, ?, UTC_TIMESTAMP(6))",
            (self.task.as_str(), encode!(catalog, "a catalog")?).into(),
            "recording the source schema the target is built from".into(),
        )
        .await
        .map(|_| ())
    }

    async fn reader(&self) -> Result<Option<ReaderRecord>> {
        let rows = self
            .rows(
                "SELECT connection_id, user_name, host FROM dts_meta.cdc_source WHERE task = ?",
                self.task_params(),
                "reading task state",
            )
            .await?;
        Ok(rows.into_iter().next().map(|r| {
            let (connection_id, user, host): (u64, Option<String>, Option<String>) =
                mysql_async::from_row(r);
            ReaderRecord {
                connection_id,
                user,
                host,
            }
        }))
    }

    async fn record_reader(&self, reader: &ReaderRecord) -> Result<()> {
        self.execute(
            "REPLACE INTO dts_meta.cdc_source (task, connection_id, user_name, host, started_at) \
             VALUES (?, ?, ?, ?, UTC_TIMESTAMP(6))",
            (
                self.task.as_str(),
                reader.connection_id,
                reader.user.clone(),
                reader.host.clone(),
            )
                .into(),
            "recording the change reader".into(),
        )
        .await
        .map(|_| ())
    }

    async fn lock_run(&self) -> Result<()> {
        if self.locked.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut lock_conn = self.lock_conn.lock().await;
        let conn = lock_conn.insert(
            Conn::new(self.opts.clone())
                .await
                .map_err(db("cannot connect to target"))?,
        );
        let deadline = std::time::Instant::now() + RUN_LOCK_PATIENCE;
        while !self.try_lock(conn).await? {
            if std::time::Instant::now() >= deadline {
                return Err(self.run_conflict(conn).await);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        self.locked.store(true, Ordering::SeqCst);
        self.record_run(conn).await
    }

    async fn run_lock_lost(&self) -> Error {
        crate::run_lock::watch(self).await
    }

    async fn task_record(&self) -> Result<Option<TaskRecord>> {
        let rows = self
            .rows(
                concat!(
                    "SELECT state, ",
                    utc!("created_at"),
                    ", ",
                    utc!("state_since"),
                    ", ",
                    utc!("updated_at"),
                    ", failure, host, pid, ",
                    utc!("beat_at"),
                    ", TIMESTAMPDIFF(MICROSECOND, beat_at, UTC_TIMESTAMP(6)), \
                     stop_requested_at IS NOT NULL, switchover_position, progress \
                     FROM dts_meta.task WHERE task = ?"
                ),
                self.task_params(),
                "reading the task record",
            )
            .await?;
        let Some(mut r) = rows.into_iter().next() else {
            return Ok(None);
        };
        let take_text = |r: &mut Row, i: usize| -> Option<String> { r.take(i).flatten() };
        let state: String = take_text(&mut r, 0).unwrap_or_default();
        let created_at = take_text(&mut r, 1).unwrap_or_default();
        let state_since = take_text(&mut r, 2).unwrap_or_default();
        let updated_at = take_text(&mut r, 3).unwrap_or_default();
        let failure = take_text(&mut r, 4)
            .map(|t| serde_json::from_str(&t).map_err(|e| corrupt("task failure", e)))
            .transpose()?;
        let host = take_text(&mut r, 5);
        let pid: Option<i64> = r.take(6).flatten();
        let beat_at = take_text(&mut r, 7);
        let age: Option<i64> = r.take(8).flatten();
        let heartbeat = match (host, pid, beat_at, age) {
            (Some(host), Some(pid), Some(beat_at), Some(age)) => Some(Heartbeat {
                host,
                pid: u32::try_from(pid).unwrap_or(0),
                beat_at,
                age: std::time::Duration::from_micros(u64::try_from(age).unwrap_or(0)),
            }),
            _ => None,
        };
        let stop_requested: Option<i64> = r.take(9).flatten();
        let switchover_position = take_text(&mut r, 10)
            .map(|t| parse_position(&self.task, &t))
            .transpose()?;
        // `{}` until the running process first publishes its progress.
        let progress = match take_text(&mut r, 11).filter(|t| t != "{}") {
            Some(t) => serde_json::from_str(&t).map_err(|e| corrupt("published progress", e))?,
            None => PublishedProgress::default(),
        };
        Ok(Some(TaskRecord {
            state: state.parse()?,
            created_at,
            state_since,
            updated_at,
            failure,
            heartbeat,
            stop_requested: stop_requested == Some(1),
            switchover_position,
            progress,
        }))
    }

    async fn record_state(&self, state: TaskState, failure: Option<&TaskFailure>) -> Result<()> {
        let failure = failure.map(|f| encode!(f, "a task failure")).transpose()?;
        let clear_beat = state.is_final();
        let clear_stop = state.is_final() || state == TaskState::Prechecking;
        self.execute(
            "INSERT INTO dts_meta.task \
                 (task, state, created_at, state_since, updated_at, failure, progress) \
             VALUES (?, ?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), ?, '{}') \
             ON DUPLICATE KEY UPDATE \
                 state_since = IF(state = VALUES(state), state_since, UTC_TIMESTAMP(6)), \
                 state = VALUES(state), failure = VALUES(failure), \
                 updated_at = UTC_TIMESTAMP(6), \
                 beat_at = IF(?, NULL, beat_at), \
                 stop_requested_at = IF(?, NULL, stop_requested_at)",
            (
                self.task.as_str(),
                state.as_str(),
                failure,
                clear_beat,
                clear_stop,
            )
                .into(),
            format!("recording the state of task `{}`", self.task),
        )
        .await
        .map(|_| ())
    }

    async fn beat(&self, progress: Option<&PublishedProgress>) -> Result<bool> {
        let progress = progress
            .map(|p| encode!(p, "the task's progress"))
            .transpose()?;
        let mut conn = self.conn().await?;
        let what = format!("recording the heartbeat of task `{}`", self.task);
        conn.exec_drop(
            "UPDATE dts_meta.task SET host = ?, pid = ?, beat_at = UTC_TIMESTAMP(6), \
                 progress = COALESCE(?, progress) WHERE task = ?",
            (
                host_name(),
                i64::from(std::process::id()),
                progress,
                self.task.as_str(),
            ),
        )
        .await
        .map_err(db(what.clone()))?;
        let stop: Option<i64> = conn
            .exec_first(
                "SELECT stop_requested_at IS NOT NULL FROM dts_meta.task WHERE task = ?",
                (self.task.as_str(),),
            )
            .await
            .map_err(db(what))?;
        Ok(stop == Some(1))
    }

    async fn request_stop(&self) -> Result<bool> {
        let Some(mut conn) = self.conn_if_exists().await? else {
            return Ok(false);
        };
        conn.exec_drop(
            "UPDATE dts_meta.task SET stop_requested_at = UTC_TIMESTAMP(6) WHERE task = ?",
            (self.task.as_str(),),
        )
        .await
        .map_err(db(format!("requesting task `{}` to stop", self.task)))?;
        // Affected rows count changed rows only: ask whether the record exists.
        let exists: Option<u8> = conn
            .exec_first(
                "SELECT 1 FROM dts_meta.task WHERE task = ?",
                (self.task.as_str(),),
            )
            .await
            .map_err(db("reading the task record"))?;
        Ok(exists.is_some())
    }

    async fn record_switchover_position(&self, position: &Position) -> Result<()> {
        let mut conn = self.conn().await?;
        let exists: Option<u8> = conn
            .exec_first(
                "SELECT 1 FROM dts_meta.task WHERE task = ?",
                (self.task.as_str(),),
            )
            .await
            .map_err(db("reading the task record"))?;
        if exists.is_none() {
            return Err(Error::new(
                ErrorKind::Config,
                format!("task `{}` has no record: it was never run", self.task),
            ));
        }
        conn.exec_drop(
            "UPDATE dts_meta.task SET switchover_position = ?, updated_at = UTC_TIMESTAMP(6) \
             WHERE task = ?",
            (encode!(position, "a position")?, self.task.as_str()),
        )
        .await
        .map_err(db("recording the switchover position"))
    }

    async fn run_holder(&self) -> Result<Option<RunHolder>> {
        let Some(mut conn) = self.conn_if_exists().await? else {
            return Ok(None);
        };
        self.holder(&mut conn).await
    }

    async fn copied_chunks(&self) -> Result<Vec<CopiedChunks>> {
        let rows = self
            .rows(
                "SELECT schema_name, table_name, COUNT(*), \
                     CAST(COALESCE(SUM(row_count), 0) AS SIGNED), \
                     CAST(COALESCE(SUM(CASE WHEN done_at > UTC_TIMESTAMP(6) - INTERVAL 1 MINUTE \
                                       THEN row_count END), 0) AS SIGNED) \
                 FROM dts_meta.chunk WHERE task = ? \
                 GROUP BY schema_name, table_name ORDER BY schema_name, table_name",
                self.task_params(),
                "reading the full load's checkpoints",
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let (schema, name, chunks, rows, recent): (String, String, i64, i64, i64) =
                    mysql_async::from_row(r);
                let n = |v: i64| u64::try_from(v).unwrap_or(0);
                CopiedChunks {
                    table: TableName::new(schema, name),
                    chunks: n(chunks),
                    rows: n(rows),
                    rows_last_minute: n(recent),
                }
            })
            .collect())
    }

    async fn planned_chunks(&self) -> Result<Vec<(TableName, u64)>> {
        let rows = self
            .rows(
                "SELECT schema_name, table_name, chunks FROM dts_meta.chunk_plan \
                 WHERE task = ? ORDER BY schema_name, table_name",
                self.task_params(),
                "reading the chunk plans",
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let (schema, name, chunks): (String, String, i64) = mysql_async::from_row(r);
                (
                    TableName::new(schema, name),
                    u64::try_from(chunks).unwrap_or(0),
                )
            })
            .collect())
    }

    async fn statements_done(&self, step: &str) -> Result<u64> {
        let rows = self
            .rows(
                "SELECT COUNT(*) FROM dts_meta.step WHERE task = ? AND LEFT(step, ?) = ?",
                (
                    self.task.as_str(),
                    u64::try_from(step.chars().count() + 1).unwrap_or(u64::MAX),
                    format!("{step}:"),
                )
                    .into(),
                "reading the schema steps done",
            )
            .await?;
        Ok(rows
            .into_iter()
            .next()
            .map_or(0, mysql_async::from_row::<u64>))
    }

    async fn applied_age(&self) -> Result<Option<std::time::Duration>> {
        let rows = self
            .rows(
                "SELECT TIMESTAMPDIFF(MICROSECOND, applied_at, UTC_TIMESTAMP(6)) \
                 FROM dts_meta.cdc_position WHERE task = ?",
                self.task_params(),
                "reading the applied position",
            )
            .await?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(mysql_async::from_row::<Option<i64>>)
            .map(|us| std::time::Duration::from_micros(u64::try_from(us).unwrap_or(0))))
    }

    async fn drop_task(&self) -> Result<DroppedState> {
        let mut dropped = DroppedState::default();
        let Some(mut conn) = self.conn_if_exists().await? else {
            return Ok(dropped);
        };
        let what = format!("dropping the state of task `{}`", self.task);
        // Serialised with migrations, so no table is created while the database is dropped.
        let locked: Option<Option<i64>> = conn
            .exec_first("SELECT GET_LOCK(?, 60)", (MIGRATE_LOCK,))
            .await
            .map_err(db(what.clone()))?;
        if locked.flatten() != Some(1) {
            return Err(Error::new(
                ErrorKind::Transient,
                "another session is changing the dts_meta database",
            ));
        }
        let result = async {
            for table in TASK_TABLES {
                conn.exec_drop(
                    format!("DELETE FROM dts_meta.{table} WHERE task = ?"),
                    (self.task.as_str(),),
                )
                .await
                .map_err(db(what.clone()))?;
                let n = conn.affected_rows();
                if n > 0 {
                    dropped.rows.push(((*table).to_string(), n));
                }
            }
            let left: Vec<String> = TASK_TABLES
                .iter()
                .map(|t| format!("(SELECT COUNT(*) FROM dts_meta.{t})"))
                .collect();
            let any: Option<u64> = conn
                .query_first(format!("SELECT {}", left.join(" + ")))
                .await
                .map_err(db(what.clone()))?;
            if any.unwrap_or(0) == 0 {
                conn.query_drop("DROP DATABASE dts_meta")
                    .await
                    .map_err(db(what.clone()))?;
                dropped.schema_dropped = true;
            }
            Ok::<_, Error>(())
        }
        .await;
        let _ = conn
            .exec_drop("SELECT RELEASE_LOCK(?)", (MIGRATE_LOCK,))
            .await;
        result.map(|()| dropped)
    }
}

/// This machine's host name, for the run record.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_else(|| "unknown".to_string())
}

#[dts_core::async_trait]
impl crate::run_lock::RunLockSession for MySqlStateStore {
    fn task(&self) -> &str {
        &self.task
    }

    fn locked(&self) -> &std::sync::atomic::AtomicBool {
        &self.locked
    }

    async fn holds_run_lock(&self) -> Result<bool> {
        MySqlStateStore::holds_run_lock(self).await
    }

    async fn relock(&self) -> Result<()> {
        MySqlStateStore::relock(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_lock_names_fit_the_server_limit() {
        let long = "x".repeat(500);
        assert!(run_lock_name(&long).len() <= 64);
        assert_ne!(run_lock_name("a"), run_lock_name("b"));
        assert_eq!(run_lock_name("a"), run_lock_name("a"));
    }
}
