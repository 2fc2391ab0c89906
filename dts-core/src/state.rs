//! The task's state: what a task has done, kept where it writes (in the target), so that an
//! interrupted task resumes and a finished one is not run twice.
//!
//! One [`StateStore`] owns every piece of task state: steps done, tables kept, snapshots and
//! their log positions, chunk plans, the replication position, the tracked source schema, the
//! source schema the target was built from and
//! the change reader of the running process, and the task record ([`TaskRecord`]: the task's
//! state, the running process's heartbeat, the progress it publishes, a stop request). Engines and the task runner read and write state
//! only through it. Writes that must be atomic with data (a chunk and its checkpoint, a batch
//! of changes and its position, a DDL step and its record) are made by the target's sinks in
//! their own transactions, with the same store implementation's tables.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::connector::Chunk;
use crate::error::Result;
use crate::position::Position;
use crate::schema::{Catalog, TableName};

/// The change reader a run started on the source, so that a later run can end it if that
/// process was killed without closing it.
///
/// A connection id alone does not name one connection for good (a restarted server counts
/// from 1 again), so the record also holds the account and client address the source showed
/// for the connection; a later run ends a connection only when all three match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderRecord {
    /// The source's id of the reader's connection.
    pub connection_id: u64,
    /// The account the source showed for the connection (MySQL: `PROCESSLIST.USER`), if
    /// known (records written by older releases have none).
    pub user: Option<String>,
    /// The client address the source showed for the connection (MySQL: `PROCESSLIST.HOST`,
    /// `host:port`), if known.
    pub host: Option<String>,
}

/// Where a task is in its life, as its record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TaskState {
    /// A run is checking the servers before writing.
    Prechecking,
    /// A run is creating the schema (before or after the data).
    Schema,
    /// A run is copying the data.
    Full,
    /// A run is replicating changes.
    Incremental,
    /// A switchover is in progress.
    Switching,
    /// The application was switched over to the target.
    Switched,
    /// The last run stopped when asked to (or caught up), with nothing left unfinished that
    /// a new run would not resume.
    Stopped,
    /// The last run did every migration type of the task (schema and full load; a task with
    /// incremental migration ends as [`TaskState::Stopped`]).
    Finished,
    /// The last run failed; the record holds the error and its fix.
    Failed,
}

impl TaskState {
    /// The state's name, as stored and shown.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Prechecking => "prechecking",
            Self::Schema => "schema",
            Self::Full => "full",
            Self::Incremental => "incremental",
            Self::Switching => "switching",
            Self::Switched => "switched",
            Self::Stopped => "stopped",
            Self::Finished => "finished",
            Self::Failed => "failed",
        }
    }

    /// Whether a run in this state has ended (no process works on the task).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Self::Switched | Self::Stopped | Self::Finished | Self::Failed
        )
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TaskState {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "prechecking" => Self::Prechecking,
            "schema" => Self::Schema,
            "full" => Self::Full,
            "incremental" => Self::Incremental,
            "switching" => Self::Switching,
            "switched" => Self::Switched,
            "stopped" => Self::Stopped,
            "finished" => Self::Finished,
            "failed" => Self::Failed,
            other => {
                return Err(crate::Error::new(
                    crate::ErrorKind::Database,
                    format!("unknown task state `{other}` in the task record"),
                ))
            }
        })
    }
}

/// Why a run failed, as recorded: the error with its causes, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFailure {
    /// The error's kind (`connection error`, `precheck failed`, …).
    pub kind: String,
    /// The error and its causes, one per line (never a password).
    pub message: String,
    /// What the operator does about it.
    pub fix: String,
}

/// The running process, as its heartbeat shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The host the process runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// When it last beat (UTC, `YYYY-MM-DD HH:MM:SS`), by the store's clock.
    pub beat_at: String,
    /// How long ago it last beat, by the store's clock (so no two machines' clocks are
    /// compared).
    pub age: Duration,
}

/// The full load of one table, as the running process publishes it (what the stored chunk
/// plan and the checkpoints do not say).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableLoad {
    /// The source table.
    pub source: TableName,
    /// The target table (its checkpoints are recorded under this name).
    pub target: TableName,
    /// Chunks planned.
    pub chunks: u64,
    /// The source server's estimate of the table's rows.
    pub estimated_rows: u64,
}

/// Replication, as the running process publishes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplicationProgress {
    /// Source transactions applied by this run.
    pub transactions: u64,
    /// Row changes applied by this run.
    pub rows: u64,
    /// Lag when last measured: now minus the source commit time of the last transaction
    /// applied (0 when everything read was applied).
    pub lag_ms: u64,
    /// Rows applied per second, recently.
    pub rows_per_second: f64,
    /// The source commit time of the last transaction applied, in milliseconds since the
    /// Unix epoch (by the running process's clock).
    pub last_commit_unix_ms: Option<u64>,
    /// Reconnections after transient failures in this run.
    pub reconnections: u64,
}

/// The sampled verification of a replicating run (`incremental.verify_sample`), as it
/// publishes it for `dts status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SampleProgress {
    /// Sampled rows compared, source against target.
    pub rows: u64,
    /// Differences that persisted when read again.
    pub differences: u64,
    /// Differences that settled when read again (changes in flight).
    pub settled: u64,
    /// Samples dropped because the queue of keys to compare was full.
    pub dropped: u64,
    /// Rounds skipped (a lost connection, a table changed by DDL).
    pub skipped: u64,
    /// The last differences (kind, table, key, columns), at most 10.
    pub last: Vec<String>,
}

/// What a running process publishes in its task record for `dts status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PublishedProgress {
    /// Statements of the pre-data schema step.
    pub pre_data_statements: u64,
    /// Statements of the post-data schema step.
    pub post_data_statements: u64,
    /// The tables of the full load, as planned.
    pub tables: Vec<TableLoad>,
    /// Replication, once it runs.
    pub replication: Option<ReplicationProgress>,
    /// Sampled verification during replication, when the task asks for it.
    #[serde(default)]
    pub sampled: Option<SampleProgress>,
}

/// A task's record: its state, the running process's heartbeat, the progress it publishes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Where the task is.
    pub state: TaskState,
    /// When the task was first run (UTC, `YYYY-MM-DD HH:MM:SS`).
    pub created_at: String,
    /// When the current state began.
    pub state_since: String,
    /// When the record last changed.
    pub updated_at: String,
    /// Why the last run failed, in state [`TaskState::Failed`].
    pub failure: Option<TaskFailure>,
    /// The last heartbeat of the process running the task; `None` once a run ended.
    pub heartbeat: Option<Heartbeat>,
    /// Whether a stop was requested (by `dts stop`) since the run began.
    pub stop_requested: bool,
    /// The position at which the application was switched over, once it was.
    pub switchover_position: Option<Position>,
    /// The progress the running process published.
    pub progress: PublishedProgress,
}

/// The checkpoints of one target table's full load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopiedChunks {
    /// The target table.
    pub table: TableName,
    /// Chunks committed.
    pub chunks: u64,
    /// Rows committed.
    pub rows: u64,
    /// Rows committed in the last minute.
    pub rows_last_minute: u64,
}

/// Who holds a task's run lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunHolder {
    /// The host the run was started on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// Since when (UTC, `YYYY-MM-DD HH:MM:SS`).
    pub since: String,
}

/// What [`StateStore::drop_task`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DroppedState {
    /// Rows deleted, per state table.
    pub rows: Vec<(String, u64)>,
    /// Whether the state schema was dropped too (no task had rows left in it).
    pub schema_dropped: bool,
}

/// Where a task keeps its state.
///
/// Contract:
///
/// - **Scoped by task.** A store is opened for one task name; every call reads and writes
///   that task's state only.
/// - **Created on first use, versioned.** [`StateStore::migrate`] creates the store's tables
///   or upgrades them from an older version, and is idempotent; other calls may assume it
///   ran. Reading calls on a store whose tables do not exist yet return "nothing recorded",
///   never an error.
/// - **Concurrency.** Calls may come from several tasks of one process at once; each call is
///   atomic on its own.
/// - **One run per task.** A run takes [`StateStore::lock_run`] before it writes anything
///   and keeps the store (which holds the lock) until it ends; a second run of the same task
///   fails to take it. The lock ends with the store, or with the process that held it; a
///   run that loses it (its connection dropped) learns so from [`StateStore::run_lock_lost`]
///   and stops.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// Creates or upgrades the state tables.
    async fn migrate(&self) -> Result<()>;

    /// Whether `step` is recorded as done.
    async fn is_done(&self, step: &str) -> Result<bool>;

    /// Records `step` as done (again is a no-op).
    async fn mark_done(&self, step: &str) -> Result<()>;

    /// Target tables that existed before the task and were kept (recorded with the pre-data
    /// step).
    async fn kept_tables(&self) -> Result<BTreeSet<TableName>>;

    /// Records a snapshot taken by a full-load run, with its log position when the source
    /// has one.
    async fn record_snapshot(&self, position: Option<&Position>) -> Result<()>;

    /// The log positions of the snapshots recorded, oldest first.
    async fn snapshot_positions(&self) -> Result<Vec<Position>>;

    /// The position of the snapshot that target table `table`'s first chunk was copied
    /// from (the last snapshot recorded before the chunk committed), if it was copied.
    async fn chunk_snapshot_position(&self, table: &TableName) -> Result<Option<Position>>;

    /// The stored chunk plan of source table `table`.
    async fn chunk_plan(&self, table: &TableName) -> Result<Option<Vec<Chunk>>>;

    /// Stores the chunk plan of source table `table`; fails when one is stored already.
    async fn store_chunk_plan(&self, table: &TableName, chunks: &[Chunk]) -> Result<()>;

    /// The replication position recorded as applied.
    async fn applied_position(&self) -> Result<Option<Position>>;

    /// Records the position replication starts from, unless one is recorded already.
    /// Returns whether it was recorded.
    async fn start_position(&self, position: &Position) -> Result<bool>;

    /// The tracked source schema, as of the applied position.
    async fn tracked_schema(&self) -> Result<Option<Catalog>>;

    /// Records the source schema as of `position`.
    async fn record_schema(&self, catalog: &Catalog, position: &Position) -> Result<()>;

    /// The source schema the target tables were built from (recorded by
    /// [`StateStore::record_built_catalog`]), if recorded.
    async fn built_catalog(&self) -> Result<Option<Catalog>>;

    /// Records the selected source schema the target tables are built from, replacing an
    /// earlier record: a resumed run compares it with the source's schema, and plans from
    /// it what the target holds.
    async fn record_built_catalog(&self, catalog: &Catalog) -> Result<()>;

    /// The change reader recorded by the last run.
    async fn reader(&self) -> Result<Option<ReaderRecord>>;

    /// Records the change reader of this run.
    async fn record_reader(&self, reader: &ReaderRecord) -> Result<()>;

    /// Takes the task's run lock, held until this store is dropped (or its process ends), and
    /// records who holds it (host and process id).
    ///
    /// A lock left by a process that has just died is waited for briefly, as the store's
    /// server may take a moment to notice; taking the lock again through the same store is
    /// a no-op.
    ///
    /// # Errors
    ///
    /// [`crate::ErrorKind::Conflict`] when another run of the task holds the lock, naming
    /// the task and, when recorded, that run's host and process id; classified store
    /// errors otherwise.
    async fn lock_run(&self) -> Result<()>;

    /// The task's record, if a run ever wrote one.
    async fn task_record(&self) -> Result<Option<TaskRecord>>;

    /// Records that the task is in `state` (creating the record on a first run), with the
    /// failure in [`TaskState::Failed`] (cleared otherwise). Entering
    /// [`TaskState::Prechecking`] (a run begins) or a final state ([`TaskState::is_final`]: the
    /// run ended) clears a stop request; entering a final state clears the heartbeat.
    async fn record_state(&self, state: TaskState, failure: Option<&TaskFailure>) -> Result<()>;

    /// The running process's heartbeat: records that this process (its host and process id)
    /// is alive now, with its published progress when given. Returns whether a stop was
    /// requested.
    async fn beat(&self, progress: Option<&PublishedProgress>) -> Result<bool>;

    /// Asks the process running the task to stop (it watches its record through
    /// [`StateStore::beat`]). Returns `false` when the task has no record.
    async fn request_stop(&self) -> Result<bool>;

    /// Records the position at which the application was switched over to the target.
    async fn record_switchover_position(&self, position: &Position) -> Result<()>;

    /// Who holds the task's run lock now, if anyone (a run whose process died no longer
    /// holds it).
    async fn run_holder(&self) -> Result<Option<RunHolder>>;

    /// The checkpoints recorded by the full load, per target table.
    async fn copied_chunks(&self) -> Result<Vec<CopiedChunks>>;

    /// How many chunks the stored plan of each source table has.
    async fn planned_chunks(&self) -> Result<Vec<(TableName, u64)>>;

    /// How many statements of schema step `step` are recorded as done (those recorded as
    /// `step:…`).
    async fn statements_done(&self, step: &str) -> Result<u64>;

    /// The time since replication last committed a batch (the applied position's record),
    /// by the store's clock.
    async fn applied_age(&self) -> Result<Option<Duration>>;

    /// Deletes every record of the task, and the store's tables too once no task has any
    /// record left. Call it holding the run lock ([`StateStore::lock_run`]).
    async fn drop_task(&self) -> Result<DroppedState>;
    /// Resolves when the run lock taken by [`StateStore::lock_run`] is no longer held (its
    /// connection was lost, or the lock was released behind the store's back), with the
    /// error the run stops with; never resolves while the lock is held, nor before it is
    /// taken. A run races its work against this, so it never goes on unlocked.
    async fn run_lock_lost(&self) -> crate::Error;
}
