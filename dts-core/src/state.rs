//! The task's state: what a task has done, kept where it writes (in the target), so that an
//! interrupted task resumes and a finished one is not run twice.
//!
//! One [`StateStore`] owns every piece of task state: steps done, tables kept, snapshots and
//! their log positions, chunk plans, the replication position, the tracked source schema and
//! the change reader of the running process. Engines and the task runner read and write state
//! only through it. Writes that must be atomic with data (a chunk and its checkpoint, a batch
//! of changes and its position, a DDL step and its record) are made by the target's sinks in
//! their own transactions, with the same store implementation's tables.

use std::collections::BTreeSet;

use async_trait::async_trait;

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

    /// Resolves when the run lock taken by [`StateStore::lock_run`] is no longer held (its
    /// connection was lost, or the lock was released behind the store's back), with the
    /// error the run stops with; never resolves while the lock is held, nor before it is
    /// taken. A run races its work against this, so it never goes on unlocked.
    async fn run_lock_lost(&self) -> crate::Error;
}
