//! The task's state in a PostgreSQL target: the `dts_meta` schema.
//!
//! This module owns every `dts_meta` table and all SQL that touches them. The tables are
//! created by one versioned migration ([`migrate`]); the chunk sink and the apply sink write
//! their records (a chunk's checkpoint, the applied position, the tracked schema) with the
//! statements defined here, inside their own data transactions.
//!
//! | table | what it records |
//! |---|---|
//! | `version` | the migration version of the schema |
//! | `step` | steps done (`schema.pre_data`, each post-data statement, …) and kept tables |
//! | `snapshot` | each full-load run's snapshot and its log position |
//! | `chunk_plan` | each table's chunk plan, so a resumed run uses the same boundaries |
//! | `chunk` | each chunk copied (committed with the chunk's rows) |
//! | `cdc_position` | the applied replication position (committed with the changes) |
//! | `cdc_schema` | the tracked source schema at the applied position |
//! | `cdc_source` | the change reader of the last run on the source (id, account, address) |
//! | `run` | who holds the task's run lock (host, process id, since when) |
//! | `built_catalog` | the source schema the target tables were built from |
//! | `task` | the task record: state, failure, heartbeat, published progress, stop request |
//!
//! The run lock itself is a session-level advisory lock, keyed by the task name in a key
//! space of its own ([`RUN_LOCK_SPACE`]), on a session of its own (the store's connection
//! for a store made with [`PgStateStore::new`]). The store checks every second that the
//! session still holds it; a lost session is replaced and the lock taken again, and if
//! another run took it meanwhile (or the target stays unreachable for a minute)
//! [`StateStore::run_lock_lost`] says so and the run stops.
//!
//! The applied position moves compare-and-set, through the function
//! `dts_meta.advance_position(task, expected, new)`: from the position its writer last saw,
//! or not at all (SQLSTATE `DTS01`), so that a second writer of a task can neither overwrite
//! another run's position nor move it backwards.

use std::collections::BTreeSet;

use dts_core::{
    Catalog, Chunk, CopiedChunks, DroppedState, Error, ErrorKind, Heartbeat, Position,
    PublishedProgress, ReaderRecord, Result, RunHolder, StateStore, TableName, TaskFailure,
    TaskRecord, TaskState,
};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, GenericClient};

use super::error::map_error;

/// The schema holding the task state.
pub const META_SCHEMA: &str = "dts_meta";

/// The migrations, in order: entry `i` brings the schema from version `i` to `i + 1`.
/// Version 1 creates the tables with `IF NOT EXISTS`, so a schema written by an earlier
/// release (before versioning) is adopted as it is.
const MIGRATIONS: &[&str] = &[
    "\
    CREATE TABLE IF NOT EXISTS dts_meta.step ( \
        task text NOT NULL, \
        step text NOT NULL, \
        done_at timestamptz NOT NULL DEFAULT now(), \
        PRIMARY KEY (task, step)); \
    CREATE TABLE IF NOT EXISTS dts_meta.snapshot ( \
        task text NOT NULL, \
        taken_at timestamptz NOT NULL DEFAULT clock_timestamp(), \
        position jsonb); \
    CREATE TABLE IF NOT EXISTS dts_meta.chunk_plan ( \
        task text NOT NULL, \
        schema_name text NOT NULL, \
        table_name text NOT NULL, \
        plan jsonb NOT NULL, \
        PRIMARY KEY (task, schema_name, table_name)); \
    CREATE TABLE IF NOT EXISTS dts_meta.chunk ( \
        task text NOT NULL, \
        schema_name text NOT NULL, \
        table_name text NOT NULL, \
        chunk int NOT NULL, \
        rows bigint NOT NULL, \
        done_at timestamptz NOT NULL DEFAULT now(), \
        PRIMARY KEY (task, schema_name, table_name, chunk)); \
    CREATE TABLE IF NOT EXISTS dts_meta.cdc_position ( \
        task text PRIMARY KEY, \
        position jsonb NOT NULL, \
        applied_at timestamptz); \
    CREATE TABLE IF NOT EXISTS dts_meta.cdc_schema ( \
        task text PRIMARY KEY, \
        catalog jsonb NOT NULL, \
        position jsonb NOT NULL, \
        changed_at timestamptz); \
    CREATE TABLE IF NOT EXISTS dts_meta.cdc_source ( \
        task text PRIMARY KEY, \
        connection_id bigint NOT NULL, \
        started_at timestamptz)",
    // 2: the change reader's account and address; who runs the task.
    "\
    ALTER TABLE dts_meta.cdc_source \
        ADD COLUMN IF NOT EXISTS user_name text, \
        ADD COLUMN IF NOT EXISTS host text; \
    CREATE TABLE IF NOT EXISTS dts_meta.run ( \
        task text PRIMARY KEY, \
        host text NOT NULL, \
        pid bigint NOT NULL, \
        backend_pid int NOT NULL, \
        started_at timestamptz NOT NULL DEFAULT now())",
    // 3: the source schema the target tables were built from.
    "\
    CREATE TABLE IF NOT EXISTS dts_meta.built_catalog ( \
        task text PRIMARY KEY, \
        catalog jsonb NOT NULL, \
        recorded_at timestamptz NOT NULL DEFAULT now())",
    // 4: the task record.
    "\
    CREATE TABLE IF NOT EXISTS dts_meta.task ( \
        task text PRIMARY KEY, \
        state text NOT NULL, \
        created_at timestamptz NOT NULL DEFAULT clock_timestamp(), \
        state_since timestamptz NOT NULL DEFAULT clock_timestamp(), \
        updated_at timestamptz NOT NULL DEFAULT clock_timestamp(), \
        failure jsonb, \
        host text, \
        pid bigint, \
        beat_at timestamptz, \
        stop_requested_at timestamptz, \
        switchover_position jsonb, \
        progress jsonb NOT NULL DEFAULT '{}')",
    // 5: the applied position moves compare-and-set: from the position the writer last
    // saw (none: no record yet) to the new one, or not at all (SQLSTATE `DTS01`).
    "\
    CREATE OR REPLACE FUNCTION dts_meta.advance_position( \
        p_task text, p_expected jsonb, p_position jsonb) RETURNS void \
    LANGUAGE plpgsql AS $fn$ \
    DECLARE found_position text; \
    BEGIN \
        IF p_expected IS NULL THEN \
            INSERT INTO dts_meta.cdc_position (task, position, applied_at) \
            VALUES (p_task, p_position, now()) ON CONFLICT (task) DO NOTHING; \
        ELSE \
            UPDATE dts_meta.cdc_position SET position = p_position, applied_at = now() \
            WHERE task = p_task AND position = p_expected; \
        END IF; \
        IF NOT FOUND THEN \
            SELECT position::text INTO found_position \
            FROM dts_meta.cdc_position WHERE task = p_task; \
            RAISE EXCEPTION USING ERRCODE = 'DTS01', \
                MESSAGE = coalesce(found_position, 'none'); \
        END IF; \
    END $fn$",
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
    "run",
    "built_catalog",
];

/// A timestamp column as the task record shows it: UTC, `YYYY-MM-DD HH:MM:SS`.
macro_rules! utc {
    ($col:literal) => {
        concat!(
            "to_char(",
            $col,
            " AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"
        )
    };
}

/// The schema version this release writes.
pub const STATE_VERSION: i32 = 5;

/// The SQLSTATE `dts_meta.advance_position` raises when the recorded position is not the
/// one the writer expected; its message is the recorded position (JSON, or `none`).
const POSITION_MOVED: &str = "DTS01";

/// The first key of the two-key advisory locks that are run locks (the second is
/// `hashtext(task)`): `dts` in ASCII. Other advisory locks of dts use one-key locks, which
/// PostgreSQL keeps apart from two-key ones.
pub const RUN_LOCK_SPACE: i32 = 0x0064_7473;

use crate::run_lock::RUN_LOCK_CHECK;

/// How long a lost run-lock session is reconnected before the run gives up.
const RUN_LOCK_RETRY_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// How long a run lock held by another session is retried before the run gives up: a
/// process killed a moment ago may still hold it until its server notices.
const RUN_LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(3);

/// Records a chunk as copied: `$1` task, `$2` schema, `$3` table, `$4` chunk, `$5` rows.
pub(crate) const INSERT_CHECKPOINT: &str = "INSERT INTO dts_meta.chunk \
    (task, schema_name, table_name, chunk, rows, done_at) VALUES ($1, $2, $3, $4, $5, now())";
/// The chunks copied of a target table: `$1` task, `$2` schema, `$3` table.
pub(crate) const SELECT_DONE: &str = "SELECT chunk FROM dts_meta.chunk \
    WHERE task = $1 AND schema_name = $2 AND table_name = $3 ORDER BY chunk";
/// The applied position of task `$1`.
pub(crate) const SELECT_POSITION: &str =
    "SELECT position::text FROM dts_meta.cdc_position WHERE task = $1";
/// Records the tracked schema: `$1` task, `$2` catalog (JSON text), `$3` position (JSON text).
pub(crate) const UPSERT_SCHEMA: &str =
    "INSERT INTO dts_meta.cdc_schema (task, catalog, position, changed_at) \
    VALUES ($1, $2::text::jsonb, $3::text::jsonb, now()) ON CONFLICT (task) DO UPDATE \
    SET catalog = excluded.catalog, position = excluded.position, changed_at = excluded.changed_at";
const INSERT_POSITION: &str = "INSERT INTO dts_meta.cdc_position (task, position, applied_at) \
    VALUES ($1, $2::text::jsonb, now()) ON CONFLICT (task) DO NOTHING";
const INSERT_SCHEMA: &str =
    "INSERT INTO dts_meta.cdc_schema (task, catalog, position, changed_at) \
    VALUES ($1, $2::text::jsonb, $3::text::jsonb, now()) ON CONFLICT (task) DO NOTHING";

/// The SQL that moves task `task`'s applied position from `expected` (the position the
/// writer last read or wrote; `None`: no position recorded yet) to `position` and commits,
/// to end an apply transaction in one round trip (literals quoted for any
/// `standard_conforming_strings`).
///
/// The move is compare-and-set: if the recorded position is not `expected` (another run
/// moved it, or a second writer would move it backwards), the statement fails with
/// SQLSTATE `DTS01`, nothing commits, and [`position_conflict`] turns the error into one
/// naming the task.
pub(crate) fn advance_position_and_commit(
    task: &str,
    expected: Option<&Position>,
    position: &Position,
) -> Result<String> {
    let expected = match expected {
        Some(p) => format!(
            "{}::jsonb",
            dts_typemap::pg::quote_literal(&position_json(p)?)
        ),
        None => "NULL::jsonb".to_string(),
    };
    Ok(format!(
        "SELECT dts_meta.advance_position({}, {expected}, {}::jsonb); COMMIT",
        dts_typemap::pg::quote_literal(task),
        dts_typemap::pg::quote_literal(&position_json(position)?),
    ))
}

/// The error for a failed position write: [`ErrorKind::Conflict`] naming the task and the
/// positions when the compare-and-set found another position, else the mapped error.
pub(crate) fn position_conflict(
    e: tokio_postgres::Error,
    task: &str,
    expected: Option<&Position>,
    position: &Position,
) -> Error {
    let found = e
        .as_db_error()
        .filter(|d| d.code().code() == POSITION_MOVED)
        .map(|d| d.message().to_string());
    match found {
        Some(found) => {
            let found =
                serde_json::from_str::<Position>(&found).map_or(found, |p| format!("`{p}`"));
            let expected = expected.map_or("none".to_string(), |p| format!("`{p}`"));
            Error::new(
                ErrorKind::Conflict,
                format!(
                    "the applied position of task `{task}` is {found}, not {expected} as this                      run last recorded it: another run of the task is writing it; stop it                      (position `{position}` not recorded, nothing committed)"
                ),
            )
            .with_source(e)
        }
        None => map_error(e, format!("recording position `{position}` and committing")),
    }
}

/// Creates or upgrades the `dts_meta` schema to [`STATE_VERSION`]. Idempotent, and safe to
/// run from several connections at once (an advisory lock serialises migrations).
///
/// # Errors
///
/// A classified database error, e.g. [`ErrorKind::Privilege`] when the account may not
/// create the schema; [`ErrorKind::Config`] when the schema was written by a newer release.
pub async fn migrate(client: &Client) -> Result<()> {
    if current_version(client).await? == Some(STATE_VERSION) {
        return Ok(());
    }
    let mut attempt = 0;
    loop {
        match migrate_once(client).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                // Leave no failed transaction open on the connection.
                let _ = client.batch_execute("ROLLBACK").await;
                let collided = e.code() == Some(&SqlState::UNIQUE_VIOLATION)
                    || e.code() == Some(&SqlState::DUPLICATE_SCHEMA)
                    || e.code() == Some(&SqlState::DUPLICATE_TABLE);
                attempt += 1;
                if !collided || attempt > 2 {
                    return Err(map_error(e, "creating the dts_meta schema in the target"));
                }
            }
        }
    }
}

async fn current_version(client: &Client) -> Result<Option<i32>> {
    let exists: bool = client
        .query_one("SELECT to_regclass('dts_meta.version') IS NOT NULL", &[])
        .await
        .map_err(|e| map_error(e, "reading the dts_meta version"))?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let version: Option<i32> = client
        .query_one("SELECT max(version) FROM dts_meta.version", &[])
        .await
        .map_err(|e| map_error(e, "reading the dts_meta version"))?
        .get(0);
    match version {
        Some(v) if v > STATE_VERSION => Err(Error::config(format!(
            "the target's dts_meta schema is at version {v}, newer than this release's \
             {STATE_VERSION}: run the task with the release that wrote it, or a newer one"
        ))),
        v => Ok(v),
    }
}

async fn migrate_once(client: &Client) -> std::result::Result<(), tokio_postgres::Error> {
    client
        .batch_execute(
            "BEGIN; SELECT pg_advisory_xact_lock(hashtext('dts_meta')); \
             CREATE SCHEMA IF NOT EXISTS dts_meta; \
             CREATE TABLE IF NOT EXISTS dts_meta.version ( \
                 version int NOT NULL, migrated_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    let version: i32 = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM dts_meta.version",
            &[],
        )
        .await?
        .get(0);
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        client.batch_execute(sql).await?;
        let to = i32::try_from(i + 1).unwrap_or(i32::MAX);
        client
            .execute("INSERT INTO dts_meta.version (version) VALUES ($1)", &[&to])
            .await?;
    }
    client.batch_execute("COMMIT").await
}

fn corrupt(what: impl std::fmt::Display, e: serde_json::Error) -> Error {
    Error::new(
        ErrorKind::Database,
        format!("the {what} recorded in dts_meta is malformed"),
    )
    .with_source(e)
}

/// `position` as the JSON text stored in `dts_meta`.
pub(crate) fn position_json(position: &Position) -> Result<String> {
    serde_json::to_string(position)
        .map_err(|e| Error::internal(format!("cannot encode position `{position}`")).with_source(e))
}

pub(crate) fn parse_position(task: &str, json: &str) -> Result<Position> {
    serde_json::from_str(json).map_err(|e| corrupt(format_args!("position of task `{task}`"), e))
}

/// Records `step` of `task` as done, with the given connection or transaction (so it can
/// commit together with the step's work).
pub(crate) async fn mark_done(client: &impl GenericClient, task: &str, step: &str) -> Result<()> {
    client
        .execute(
            "INSERT INTO dts_meta.step (task, step) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&task, &step],
        )
        .await
        .map_err(|e| map_error(e, "recording task state"))?;
    Ok(())
}

/// Records `step` of `task` as done inside transaction `tx`, unless it is recorded already;
/// returns whether this call recorded it. A concurrent transaction recording the same step
/// is waited for: if it commits, this returns `false`.
pub(crate) async fn claim_step(tx: &impl GenericClient, task: &str, step: &str) -> Result<bool> {
    let n = tx
        .execute(
            "INSERT INTO dts_meta.step (task, step) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&task, &step],
        )
        .await
        .map_err(|e| map_error(e, "recording task state"))?;
    Ok(n == 1)
}

/// Whether `step` of `task` is recorded as done.
pub(crate) async fn is_done(client: &impl GenericClient, task: &str, step: &str) -> Result<bool> {
    let row = client
        .query_opt(
            "SELECT 1 FROM dts_meta.step WHERE task = $1 AND step = $2",
            &[&task, &step],
        )
        .await
        .map_err(|e| map_error(e, "reading task state"))?;
    Ok(row.is_some())
}

const KEPT_PREFIX: &str = "kept:";

/// The step key that records target table `table` as kept.
pub(crate) fn kept_step(table: &TableName) -> Result<String> {
    Ok(format!(
        "{KEPT_PREFIX}{}",
        serde_json::to_string(table)
            .map_err(|e| Error::internal("cannot encode a table name").with_source(e))?
    ))
}

/// Records `position` as task `task`'s applied position unless one is recorded already;
/// returns whether it recorded it. The task runner calls this with the snapshot's position
/// before replication starts.
///
/// # Errors
///
/// Classified database errors.
pub async fn record_position(client: &Client, task: &str, position: &Position) -> Result<bool> {
    migrate(client).await?;
    let n = client
        .execute(INSERT_POSITION, &[&task, &position_json(position)?])
        .await
        .map_err(|e| {
            map_error(
                e,
                format!("recording position `{position}` of task `{task}`"),
            )
        })?;
    Ok(n == 1)
}

/// The applied position recorded for task `task`, if any (`None` also when nothing of the
/// state exists yet).
///
/// # Errors
///
/// Classified database errors; [`ErrorKind::Database`] if the record does not parse.
pub async fn read_position(client: &Client, task: &str) -> Result<Option<Position>> {
    if current_version(client).await?.is_none() {
        return Ok(None);
    }
    let row = client
        .query_opt(SELECT_POSITION, &[&task])
        .await
        .map_err(|e| map_error(e, format!("reading the applied position of task `{task}`")))?;
    row.map(|r| parse_position(task, r.get(0))).transpose()
}

/// The source schema recorded for task `task` by the last replicated DDL statement that
/// changed it (or at the start of replication), if any: the schema at the applied position.
///
/// # Errors
///
/// Classified database errors; [`ErrorKind::Database`] if the record does not parse.
pub async fn read_schema(client: &Client, task: &str) -> Result<Option<Catalog>> {
    if current_version(client).await?.is_none() {
        return Ok(None);
    }
    let row = client
        .query_opt(
            "SELECT catalog::text FROM dts_meta.cdc_schema WHERE task = $1",
            &[&task],
        )
        .await
        .map_err(|e| map_error(e, format!("reading the source schema of task `{task}`")))?;
    row.map(|r| {
        serde_json::from_str(r.get(0))
            .map_err(|e| corrupt(format_args!("source schema of task `{task}`"), e))
    })
    .transpose()
}

/// Records `catalog` as task `task`'s source schema at `position`, unless a schema is already
/// recorded: the schema replication starts from. Record it when the snapshot is taken, so a
/// later run does not start from a source schema that already includes changes still
/// waiting in the log.
///
/// # Errors
///
/// Classified database errors.
pub async fn record_schema(
    client: &Client,
    task: &str,
    catalog: &Catalog,
    position: &Position,
) -> Result<bool> {
    migrate(client).await?;
    let catalog_json = serde_json::to_string(catalog)
        .map_err(|e| Error::internal("cannot encode a catalog").with_source(e))?;
    let n = client
        .execute(
            INSERT_SCHEMA,
            &[&task, &catalog_json, &position_json(position)?],
        )
        .await
        .map_err(|e| map_error(e, format!("recording the source schema of task `{task}`")))?;
    Ok(n == 1)
}

/// The [`StateStore`] of a PostgreSQL target: the `dts_meta` schema, through its own
/// connection.
pub struct PgStateStore {
    client: Client,
    task: String,
    /// The target's URL, for a store made by [`PgStateStore::connect`]: the run lock then
    /// lives on a session of its own, taken again when that session is lost.
    url: Option<String>,
    /// The session holding the run lock, when it is not the store's own.
    lock_client: tokio::sync::Mutex<Option<Client>>,
    /// Whether this store holds the task's run lock.
    locked: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for PgStateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStateStore")
            .field("task", &self.task)
            .finish_non_exhaustive()
    }
}

impl PgStateStore {
    /// The state of task `task`, through `client`.
    pub fn new(client: Client, task: &str) -> Self {
        Self {
            client,
            task: task.to_string(),
            url: None,
            lock_client: tokio::sync::Mutex::new(None),
            locked: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Connects to the target at `url` for the state of task `task`.
    ///
    /// # Errors
    ///
    /// As [`super::connect_client`].
    pub async fn connect(url: &str, task: &str) -> Result<Self> {
        let mut store = Self::new(super::connect_client(url).await?, task);
        store.url = Some(url.to_string());
        Ok(store)
    }

    /// The underlying connection.
    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn exists(&self) -> Result<bool> {
        Ok(current_version(&self.client).await?.is_some())
    }

    /// The row `sql` selects with `params`, or `None` when it selects none or no run
    /// created the `dts_meta` schema yet; `what` names the read in errors.
    async fn row_if_any(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        what: impl std::fmt::Display,
    ) -> Result<Option<tokio_postgres::Row>> {
        if !self.exists().await? {
            return Ok(None);
        }
        self.client
            .query_opt(sql, params)
            .await
            .map_err(|e| map_error(e, what))
    }

    async fn positions(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Position>> {
        if !self.exists().await? {
            return Ok(Vec::new());
        }
        let rows = self
            .client
            .query(sql, params)
            .await
            .map_err(|e| map_error(e, "reading task state"))?;
        rows.iter()
            .filter_map(|r| r.get::<_, Option<&str>>(0))
            .map(|text| parse_position(&self.task, text))
            .collect()
    }
}

#[dts_core::async_trait]
impl StateStore for PgStateStore {
    async fn migrate(&self) -> Result<()> {
        migrate(&self.client).await
    }

    async fn is_done(&self, step: &str) -> Result<bool> {
        if !self.exists().await? {
            return Ok(false);
        }
        is_done(&self.client, &self.task, step).await
    }

    async fn mark_done(&self, step: &str) -> Result<()> {
        mark_done(&self.client, &self.task, step).await
    }

    async fn kept_tables(&self) -> Result<BTreeSet<TableName>> {
        if !self.exists().await? {
            return Ok(BTreeSet::new());
        }
        let rows = self
            .client
            .query(
                "SELECT substr(step, $2) FROM dts_meta.step WHERE task = $1 AND step LIKE 'kept:%'",
                &[
                    &self.task,
                    &i32::try_from(KEPT_PREFIX.len() + 1).unwrap_or(6),
                ],
            )
            .await
            .map_err(|e| map_error(e, "reading task state"))?;
        rows.iter()
            .map(|r| {
                serde_json::from_str(r.get::<_, &str>(0)).map_err(|e| corrupt("kept table", e))
            })
            .collect()
    }

    async fn record_snapshot(&self, position: Option<&Position>) -> Result<()> {
        let json = position.map(position_json).transpose()?;
        self.client
            .execute(
                "INSERT INTO dts_meta.snapshot (task, position) VALUES ($1, $2::text::jsonb)",
                &[&self.task, &json],
            )
            .await
            .map_err(|e| map_error(e, "recording the snapshot position"))?;
        Ok(())
    }

    async fn snapshot_positions(&self) -> Result<Vec<Position>> {
        self.positions(
            "SELECT position::text FROM dts_meta.snapshot \
             WHERE task = $1 AND position IS NOT NULL ORDER BY taken_at",
            &[&self.task],
        )
        .await
    }

    async fn chunk_snapshot_position(&self, table: &TableName) -> Result<Option<Position>> {
        Ok(self
            .positions(
                "SELECT (SELECT s.position::text FROM dts_meta.snapshot s \
                         WHERE s.task = c.task AND s.position IS NOT NULL \
                           AND s.taken_at <= c.done_at \
                         ORDER BY s.taken_at DESC LIMIT 1) \
                 FROM dts_meta.chunk c \
                 WHERE c.task = $1 AND c.schema_name = $2 AND c.table_name = $3 AND c.chunk = 0",
                &[&self.task, &table.schema, &table.name],
            )
            .await?
            .into_iter()
            .next())
    }

    async fn chunk_plan(&self, table: &TableName) -> Result<Option<Vec<Chunk>>> {
        let row = self
            .row_if_any(
                "SELECT plan::text FROM dts_meta.chunk_plan \
                 WHERE task = $1 AND schema_name = $2 AND table_name = $3",
                &[&self.task, &table.schema, &table.name],
                format!("reading the chunk plan of `{table}`"),
            )
            .await?;
        row.map(|r| {
            serde_json::from_str(r.get::<_, &str>(0))
                .map_err(|e| corrupt(format_args!("chunk plan of `{table}`"), e))
        })
        .transpose()
    }

    async fn store_chunk_plan(&self, table: &TableName, chunks: &[Chunk]) -> Result<()> {
        let text = serde_json::to_string(chunks)
            .map_err(|e| Error::internal("cannot encode a chunk plan").with_source(e))?;
        self.client
            .execute(
                "INSERT INTO dts_meta.chunk_plan (task, schema_name, table_name, plan) \
                 VALUES ($1, $2, $3, $4::text::jsonb)",
                &[&self.task, &table.schema, &table.name, &text],
            )
            .await
            .map_err(|e| map_error(e, format!("storing the chunk plan of `{table}`")))?;
        Ok(())
    }

    async fn applied_position(&self) -> Result<Option<Position>> {
        read_position(&self.client, &self.task).await
    }

    async fn start_position(&self, position: &Position) -> Result<bool> {
        record_position(&self.client, &self.task, position).await
    }

    async fn tracked_schema(&self) -> Result<Option<Catalog>> {
        read_schema(&self.client, &self.task).await
    }

    async fn record_schema(&self, catalog: &Catalog, position: &Position) -> Result<()> {
        record_schema(&self.client, &self.task, catalog, position)
            .await
            .map(|_| ())
    }

    async fn built_catalog(&self) -> Result<Option<Catalog>> {
        let row = self
            .row_if_any(
                "SELECT catalog::text FROM dts_meta.built_catalog WHERE task = $1",
                &[&self.task],
                "reading the source schema the target was built from",
            )
            .await?;
        row.map(|r| {
            serde_json::from_str(r.get(0)).map_err(|e| {
                corrupt(
                    format_args!("source schema task `{}` was built from", self.task),
                    e,
                )
            })
        })
        .transpose()
    }

    async fn record_built_catalog(&self, catalog: &Catalog) -> Result<()> {
        let text = serde_json::to_string(catalog)
            .map_err(|e| Error::internal("cannot encode a catalog").with_source(e))?;
        self.client
            .execute(
                "INSERT INTO dts_meta.built_catalog (task, catalog, recorded_at) \
                 VALUES ($1, $2::text::jsonb, now()) ON CONFLICT (task) DO UPDATE \
                 SET catalog = excluded.catalog, recorded_at = excluded.recorded_at",
                &[&self.task, &text],
            )
            .await
            .map_err(|e| map_error(e, "recording the source schema the target is built from"))?;
        Ok(())
    }

    async fn reader(&self) -> Result<Option<ReaderRecord>> {
        let row = self
            .row_if_any(
                "SELECT connection_id, user_name, host FROM dts_meta.cdc_source WHERE task = $1",
                &[&self.task],
                "reading task state",
            )
            .await?;
        Ok(row.map(|r| ReaderRecord {
            connection_id: u64::try_from(r.get::<_, i64>(0)).unwrap_or(0),
            user: r.get(1),
            host: r.get(2),
        }))
    }

    async fn record_reader(&self, reader: &ReaderRecord) -> Result<()> {
        let id = i64::try_from(reader.connection_id).unwrap_or(i64::MAX);
        self.client
            .execute(
                "INSERT INTO dts_meta.cdc_source (task, connection_id, user_name, host, started_at) \
                 VALUES ($1, $2, $3, $4, now()) ON CONFLICT (task) DO UPDATE \
                 SET connection_id = excluded.connection_id, user_name = excluded.user_name, \
                     host = excluded.host, started_at = excluded.started_at",
                &[&self.task, &id, &reader.user, &reader.host],
            )
            .await
            .map_err(|e| map_error(e, "recording the change reader"))?;
        Ok(())
    }

    async fn lock_run(&self) -> Result<()> {
        use std::sync::atomic::Ordering;
        if self.locked.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut lock_client = self.lock_client.lock().await;
        let client = match &self.url {
            Some(url) => lock_client.insert(super::connect_client(url).await?),
            None => &self.client,
        };
        let deadline = std::time::Instant::now() + RUN_LOCK_PATIENCE;
        while !self.try_lock(client).await? {
            if std::time::Instant::now() >= deadline {
                return Err(self.run_conflict(client).await);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        self.locked.store(true, Ordering::SeqCst);
        self.record_run(client).await
    }

    async fn run_lock_lost(&self) -> Error {
        crate::run_lock::watch(self).await
    }

    async fn task_record(&self) -> Result<Option<TaskRecord>> {
        let row = self
            .row_if_any(
                concat!(
                    "SELECT state, ",
                    utc!("created_at"),
                    ", ",
                    utc!("state_since"),
                    ", ",
                    utc!("updated_at"),
                    ", failure::text, host, pid, ",
                    utc!("beat_at"),
                    ", extract(epoch FROM clock_timestamp() - beat_at)::float8, \
                     stop_requested_at IS NOT NULL, switchover_position::text, progress::text \
                     FROM dts_meta.task WHERE task = $1"
                ),
                &[&self.task],
                "reading the task record",
            )
            .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        let failure = r
            .get::<_, Option<&str>>(4)
            .map(|t| serde_json::from_str(t).map_err(|e| corrupt("task failure", e)))
            .transpose()?;
        let heartbeat = match (
            r.get::<_, Option<String>>(5),
            r.get::<_, Option<i64>>(6),
            r.get::<_, Option<String>>(7),
            r.get::<_, Option<f64>>(8),
        ) {
            (Some(host), Some(pid), Some(beat_at), Some(age)) => Some(Heartbeat {
                host,
                pid: u32::try_from(pid).unwrap_or(0),
                beat_at,
                age: std::time::Duration::try_from_secs_f64(age.max(0.0)).unwrap_or_default(),
            }),
            _ => None,
        };
        let switchover_position = r
            .get::<_, Option<&str>>(10)
            .map(|t| parse_position(&self.task, t))
            .transpose()?;
        let progress: PublishedProgress = serde_json::from_str(r.get::<_, &str>(11))
            .map_err(|e| corrupt("published progress", e))?;
        Ok(Some(TaskRecord {
            state: r.get::<_, &str>(0).parse()?,
            created_at: r.get(1),
            state_since: r.get(2),
            updated_at: r.get(3),
            failure,
            heartbeat,
            stop_requested: r.get(9),
            switchover_position,
            progress,
        }))
    }

    async fn record_state(&self, state: TaskState, failure: Option<&TaskFailure>) -> Result<()> {
        let failure = failure
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| Error::internal("cannot encode a task failure").with_source(e))?;
        self.client
            .execute(
                "INSERT INTO dts_meta.task (task, state, failure) VALUES ($1, $2, $3::text::jsonb) \
                 ON CONFLICT (task) DO UPDATE SET \
                     state = excluded.state, failure = excluded.failure, \
                     state_since = CASE WHEN task.state = excluded.state THEN task.state_since \
                                        ELSE clock_timestamp() END, \
                     updated_at = clock_timestamp(), \
                     beat_at = CASE WHEN $4 THEN NULL ELSE task.beat_at END, \
                     stop_requested_at = CASE WHEN $5 THEN NULL ELSE task.stop_requested_at END",
                &[
                    &self.task,
                    &state.as_str(),
                    &failure,
                    &state.is_final(),
                    &(state.is_final() || state == TaskState::Prechecking),
                ],
            )
            .await
            .map_err(|e| map_error(e, format!("recording the state of task `{}`", self.task)))?;
        Ok(())
    }

    async fn beat(&self, progress: Option<&PublishedProgress>) -> Result<bool> {
        let progress = progress
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| Error::internal("cannot encode the task's progress").with_source(e))?;
        let row = self
            .client
            .query_opt(
                "UPDATE dts_meta.task SET host = $2, pid = $3, beat_at = clock_timestamp(), \
                     progress = coalesce($4::text::jsonb, progress) \
                 WHERE task = $1 RETURNING stop_requested_at IS NOT NULL",
                &[
                    &self.task,
                    &host_name(),
                    &i64::from(std::process::id()),
                    &progress,
                ],
            )
            .await
            .map_err(|e| {
                map_error(
                    e,
                    format!("recording the heartbeat of task `{}`", self.task),
                )
            })?;
        Ok(row.is_some_and(|r| r.get(0)))
    }

    async fn request_stop(&self) -> Result<bool> {
        if !self.exists().await? {
            return Ok(false);
        }
        let n = self
            .client
            .execute(
                "UPDATE dts_meta.task SET stop_requested_at = clock_timestamp() WHERE task = $1",
                &[&self.task],
            )
            .await
            .map_err(|e| map_error(e, format!("requesting task `{}` to stop", self.task)))?;
        Ok(n == 1)
    }

    async fn record_switchover_position(&self, position: &Position) -> Result<()> {
        let n = self
            .client
            .execute(
                "UPDATE dts_meta.task SET switchover_position = $2::text::jsonb, \
                     updated_at = clock_timestamp() WHERE task = $1",
                &[&self.task, &position_json(position)?],
            )
            .await
            .map_err(|e| map_error(e, "recording the switchover position"))?;
        if n == 1 {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Config,
                format!("task `{}` has no record: it was never run", self.task),
            ))
        }
    }

    async fn run_holder(&self) -> Result<Option<RunHolder>> {
        let row = self
            .row_if_any(
                concat!(
                    "SELECT r.host, r.pid, ",
                    utc!("r.started_at"),
                    " FROM dts_meta.run r JOIN pg_locks l \
                       ON l.pid = r.backend_pid AND l.locktype = 'advisory' AND l.granted \
                      AND l.classid = $2::int::oid AND l.objid = hashtext($1)::oid \
                      AND l.objsubid = 2 AND l.database = \
                          (SELECT oid FROM pg_database WHERE datname = current_database()) \
                     WHERE r.task = $1"
                ),
                &[&self.task, &RUN_LOCK_SPACE],
                format!("reading who runs task `{}`", self.task),
            )
            .await?;
        Ok(row.map(|r| RunHolder {
            host: r.get(0),
            pid: u32::try_from(r.get::<_, i64>(1)).unwrap_or(0),
            since: r.get(2),
        }))
    }

    async fn copied_chunks(&self) -> Result<Vec<CopiedChunks>> {
        if !self.exists().await? {
            return Ok(Vec::new());
        }
        let rows = self
            .client
            .query(
                "SELECT schema_name, table_name, count(*), coalesce(sum(rows), 0)::bigint, \
                     coalesce(sum(rows) FILTER \
                         (WHERE done_at > clock_timestamp() - interval '1 minute'), 0)::bigint \
                 FROM dts_meta.chunk WHERE task = $1 \
                 GROUP BY schema_name, table_name ORDER BY schema_name, table_name",
                &[&self.task],
            )
            .await
            .map_err(|e| map_error(e, "reading the full load's checkpoints"))?;
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(rows
            .iter()
            .map(|r| CopiedChunks {
                table: TableName::new(r.get::<_, String>(0), r.get::<_, String>(1)),
                chunks: n(r.get(2)),
                rows: n(r.get(3)),
                rows_last_minute: n(r.get(4)),
            })
            .collect())
    }

    async fn planned_chunks(&self) -> Result<Vec<(TableName, u64)>> {
        if !self.exists().await? {
            return Ok(Vec::new());
        }
        let rows = self
            .client
            .query(
                "SELECT schema_name, table_name, jsonb_array_length(plan)::bigint \
                 FROM dts_meta.chunk_plan WHERE task = $1 ORDER BY schema_name, table_name",
                &[&self.task],
            )
            .await
            .map_err(|e| map_error(e, "reading the chunk plans"))?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    TableName::new(r.get::<_, String>(0), r.get::<_, String>(1)),
                    u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
                )
            })
            .collect())
    }

    async fn statements_done(&self, step: &str) -> Result<u64> {
        if !self.exists().await? {
            return Ok(0);
        }
        let n: i64 = self
            .client
            .query_one(
                "SELECT count(*) FROM dts_meta.step WHERE task = $1 AND starts_with(step, $2)",
                &[&self.task, &format!("{step}:")],
            )
            .await
            .map_err(|e| map_error(e, "reading the schema steps done"))?
            .get(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn applied_age(&self) -> Result<Option<std::time::Duration>> {
        let row = self
            .row_if_any(
                "SELECT extract(epoch FROM clock_timestamp() - applied_at)::float8 \
                 FROM dts_meta.cdc_position WHERE task = $1",
                &[&self.task],
                "reading the applied position",
            )
            .await?;
        Ok(row
            .and_then(|r| r.get::<_, Option<f64>>(0))
            .and_then(|s| std::time::Duration::try_from_secs_f64(s.max(0.0)).ok()))
    }

    async fn drop_task(&self) -> Result<DroppedState> {
        let mut dropped = DroppedState::default();
        if !self.exists().await? {
            return Ok(dropped);
        }
        let what = |e| map_error(e, format!("dropping the state of task `{}`", self.task));
        // Serialised with migrations, so no table is created while the schema is dropped.
        self.client
            .batch_execute("BEGIN; SELECT pg_advisory_xact_lock(hashtext('dts_meta'))")
            .await
            .map_err(what)?;
        let result = async {
            for table in TASK_TABLES {
                let n = self
                    .client
                    .execute(
                        &format!("DELETE FROM dts_meta.{table} WHERE task = $1"),
                        &[&self.task],
                    )
                    .await
                    .map_err(what)?;
                if n > 0 {
                    dropped.rows.push(((*table).to_string(), n));
                }
            }
            let mut left = Vec::new();
            for table in TASK_TABLES {
                left.push(format!("SELECT 1 FROM dts_meta.{table}"));
            }
            let any_left: bool = self
                .client
                .query_one(
                    &format!("SELECT EXISTS ({})", left.join(" UNION ALL ")),
                    &[],
                )
                .await
                .map_err(what)?
                .get(0);
            if !any_left {
                self.client
                    .batch_execute("DROP SCHEMA dts_meta CASCADE")
                    .await
                    .map_err(what)?;
                dropped.schema_dropped = true;
            }
            self.client.batch_execute("COMMIT").await.map_err(what)
        }
        .await;
        if let Err(e) = result {
            let _ = self.client.batch_execute("ROLLBACK").await;
            return Err(e);
        }
        Ok(dropped)
    }
}

impl PgStateStore {
    /// Takes the run lock on `client`'s session if it is free.
    async fn try_lock(&self, client: &Client) -> Result<bool> {
        Ok(client
            .query_one(
                "SELECT pg_try_advisory_lock($1, hashtext($2))",
                &[&RUN_LOCK_SPACE, &self.task],
            )
            .await
            .map_err(|e| map_error(e, format!("taking the run lock of task `{}`", self.task)))?
            .get(0))
    }

    /// Records this process and `client`'s session as the holder of the run lock.
    async fn record_run(&self, client: &Client) -> Result<()> {
        let pid = i64::from(std::process::id());
        client
            .execute(
                "INSERT INTO dts_meta.run (task, host, pid, backend_pid, started_at) \
                 VALUES ($1, $2, $3, pg_backend_pid(), now()) ON CONFLICT (task) DO UPDATE \
                 SET host = excluded.host, pid = excluded.pid, \
                     backend_pid = excluded.backend_pid, started_at = excluded.started_at",
                &[&self.task, &host_name(), &pid],
            )
            .await
            .map_err(|e| map_error(e, format!("recording the run of task `{}`", self.task)))?;
        Ok(())
    }

    /// Takes the run lock again on a new session after its session was lost, retrying a
    /// failing connection for [`RUN_LOCK_RETRY_WINDOW`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Conflict`] when another run took the lock meanwhile; the last
    /// connection error when the target stays unreachable; [`ErrorKind::Connection`] for a
    /// store without a URL to reconnect with.
    async fn relock(&self) -> Result<()> {
        let Some(url) = &self.url else {
            return Err(Error::new(
                ErrorKind::Connection,
                "the store's connection holds the lock and cannot be replaced",
            ));
        };
        let deadline = std::time::Instant::now() + RUN_LOCK_RETRY_WINDOW;
        let mut lock_client = self.lock_client.lock().await;
        loop {
            let attempt = async {
                let client = super::connect_client(url).await?;
                if !self.try_lock(&client).await? {
                    return Err(self.run_conflict(&client).await);
                }
                self.record_run(&client).await?;
                Ok(client)
            };
            match attempt.await {
                Ok(client) => {
                    *lock_client = Some(client);
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::Conflict => return Err(e),
                Err(e) if std::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(RUN_LOCK_CHECK).await,
            }
        }
    }

    /// Whether the session holding the run lock still holds it: `Ok(false)` when the lock
    /// is gone, an error when the session could not be asked.
    async fn holds_run_lock(&self) -> Result<bool> {
        let lock_client = self.lock_client.lock().await;
        let client = match (&self.url, lock_client.as_ref()) {
            (Some(_), Some(c)) => c,
            (Some(_), None) => return Err(Error::new(ErrorKind::Connection, "no lock session")),
            (None, _) => &self.client,
        };
        if client.is_closed() {
            return Err(Error::new(ErrorKind::Connection, "connection closed"));
        }
        Ok(client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' \
                   AND pid = pg_backend_pid() AND granted AND classid = $1::int::oid \
                   AND objid = hashtext($2)::oid AND objsubid = 2)",
                &[&RUN_LOCK_SPACE, &self.task],
            )
            .await
            .map_err(|e| map_error(e, "checking the run lock"))?
            .get(0))
    }

    /// The error for a run lock held by another session, naming the holder when its record
    /// is that session's.
    async fn run_conflict(&self, client: &Client) -> Error {
        let holder = client
            .query_opt(
                "SELECT r.host, r.pid, to_char(r.started_at AT TIME ZONE 'UTC', \
                         'YYYY-MM-DD HH24:MI:SS') \
                 FROM dts_meta.run r JOIN pg_locks l \
                   ON l.pid = r.backend_pid AND l.locktype = 'advisory' AND l.granted \
                  AND l.classid = $2::int::oid AND l.objid = hashtext($1)::oid \
                  AND l.objsubid = 2 AND l.database = \
                      (SELECT oid FROM pg_database WHERE datname = current_database()) \
                 WHERE r.task = $1",
                &[&self.task, &RUN_LOCK_SPACE],
            )
            .await
            .ok()
            .flatten();
        let who = holder.map_or_else(String::new, |r| {
            format!(
                " (pid {} on host `{}`, since {} UTC)",
                r.get::<_, i64>(1),
                r.get::<_, &str>(0),
                r.get::<_, &str>(2)
            )
        });
        Error::new(
            ErrorKind::Conflict,
            format!(
                "another run of task `{}` is in progress{who}: stop it before starting \
                 the task again",
                self.task
            ),
        )
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
impl crate::run_lock::RunLockSession for PgStateStore {
    fn task(&self) -> &str {
        &self.task
    }

    fn locked(&self) -> &std::sync::atomic::AtomicBool {
        &self.locked
    }

    async fn holds_run_lock(&self) -> Result<bool> {
        PgStateStore::holds_run_lock(self).await
    }

    async fn relock(&self) -> Result<()> {
        PgStateStore::relock(self).await
    }
}
