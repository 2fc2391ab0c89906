//! Applying replicated changes to PostgreSQL: [`PgApplySink`], the [`ApplySink`] that writes
//! each batch of source transactions together with its log position in one target
//! transaction (a transaction too large for a batch arriving in parts within it), and the
//! `dts_meta.cdc_position` record. Changes arrive mapped (target tables, target column
//! names, target-typed values, target DDL): the sink only writes.
//!
//! Row changes of tables with a key are coalesced per key within a batch (the final state of
//! each touched key: deleted, or its last row) and applied set-wise: a binary `COPY` into a
//! temporary staging table, then one `DELETE … USING` and one `INSERT … SELECT` against the
//! target. Replaying a batch gives the same table. Tables without a key are changed one row
//! at a time, in order, touching exactly one matching row per change.

use crate::apply::{
    at_or_before, fresh_transactions, judge_copied, part_judge, schema_change_copied,
    unexpected_change, wait_for_earlier_session, ApplySessions, EarlierSession, Partial,
};
use std::collections::HashMap;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use dts_core::{ApplySink, ApplyStats, CascadeLogging};
use dts_core::{Catalog, Change, ChangeEvent, Error, Position, Result, SchemaChange, TableName};
use dts_schema::short_sql;
use futures::SinkExt;
use tokio_postgres::{Client, Statement};

use super::cascade::{triggers_off, triggers_on, Referenced};
use super::copy::PgCopyEncoder;
use super::error::map_error;
use super::sink::push_ident;
use super::state::{
    advance_position_and_commit, migrate, position_conflict, position_json, SELECT_POSITION,
    UPSERT_SCHEMA,
};
use super::target::connect_client;

mod keyed;
mod keyless;
mod params;
mod table;
#[cfg(test)]
mod tests;

use table::{RowOp, TableState};

/// Pending coalesced rows (across tables) that make the sink write them out mid-batch.
const FLUSH_ROWS: usize = 10_000;
/// Pending encoded bytes (across tables) that make the sink write them out mid-batch.
const FLUSH_BYTES: usize = 8 << 20;
/// Encoded `COPY` data is handed to the connection in pieces of about this size.
const SEND_BYTES: usize = 512 << 10;

/// The first key of the two-key advisory lock that tags the session applying a task's
/// changes (the second is `hashtext(task)`): `dtsa` in ASCII, apart from the run locks.
const APPLY_TAG_SPACE: i32 = 0x6474_7361;

/// The sessions applying a task's changes into PostgreSQL, tagged by a session-level
/// advisory lock (released when the session ends).
struct PgApplySessions<'a> {
    client: &'a Client,
    task: &'a str,
}

impl ApplySessions for PgApplySessions<'_> {
    async fn look(&mut self) -> Result<(EarlierSession, String)> {
        let what = || {
            format!(
                "looking for an earlier apply session of task `{}`",
                self.task
            )
        };
        let tagged: bool = self
            .client
            .query_one(
                "SELECT pg_try_advisory_lock($1, hashtext($2))",
                &[&APPLY_TAG_SPACE, &self.task],
            )
            .await
            .map_err(|e| map_error(e, what()))?
            .get(0);
        if tagged {
            return Ok((EarlierSession::None, String::new()));
        }
        let row = self
            .client
            .query_opt(
                "SELECT a.pid, a.state, \
                        extract(epoch FROM now() - a.state_change)::float8 \
                 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 \
                   AND l.classid = $1::int::oid AND l.objid = hashtext($2)::oid \
                   AND l.database = \
                       (SELECT oid FROM pg_database WHERE datname = current_database())",
                &[&APPLY_TAG_SPACE, &self.task],
            )
            .await
            .map_err(|e| map_error(e, what()))?;
        // Gone between the two statements: the next look takes the tag.
        let Some(row) = row else {
            return Ok((EarlierSession::Busy, "a session that just ended".into()));
        };
        let pid: i32 = row.get(0);
        let state: Option<String> = row.get(1);
        let idle: Option<f64> = row.get(2);
        let session = format!("server process {pid}");
        let state = match state.as_deref() {
            // Not ours to see (another role): nothing to wait for that we could tell.
            None | Some("idle") => EarlierSession::Idle,
            Some(s) if s.starts_with("idle in transaction") => EarlierSession::IdleInTransaction(
                std::time::Duration::from_secs_f64(idle.unwrap_or(0.0).max(0.0)),
            ),
            Some(_) => EarlierSession::Busy,
        };
        Ok((state, session))
    }

    async fn end(&mut self, holder: &str) -> Result<()> {
        let pid: i32 = holder
            .rsplit(' ')
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| Error::internal(format!("no process id in `{holder}`")))?;
        self.client
            .execute("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .map_err(|e| map_error(e, format!("ending the earlier apply session {holder}")))?;
        Ok(())
    }
}

/// An [`ApplySink`] writing mapped changes into PostgreSQL through one connection.
///
/// Changes arrive as a [`dts_core::ChangeMapper`] leaves them: row changes name the target
/// table, with images of target column names and target-typed values; schema changes carry
/// the target statements. The sink converts nothing and parses no DDL.
///
/// Each [`ApplySink::apply`] call (with the [`ApplySink::apply_part`] calls before it, if
/// any) is one target transaction, run with `SET LOCAL
/// session_replication_role = replica` (no triggers — such as `ON UPDATE` timestamps — and no
/// foreign key checks fire; the source already ran them) and `SET LOCAL dts.applying = on`
/// (the `ON UPDATE CURRENT_TIMESTAMP` trigger functions dts creates leave the row alone
/// while it is set). The account needs superuser or, on PostgreSQL 15 and later, `GRANT SET
/// ON PARAMETER session_replication_role`. Within it:
///
/// - **Foreign key actions.** Unless the source logs the rows its foreign key actions
///   change ([`PgApplySink::with_cascade_logging`]; MariaDB and MySQL before 9.6 do not), a
///   change that makes the source act on other rows — the delete of a row of a table that
///   a target foreign key with `ON DELETE CASCADE`, `SET NULL` or `SET DEFAULT` references,
///   or an update of columns that a key with such an `ON UPDATE` action references — is
///   written on its own, after everything before it, with the role set to `origin` for
///   that statement: PostgreSQL then cascades through the target as InnoDB did through the
///   source, chains and self-references included. Nothing else of the batch fires triggers.
///   The user's own triggers on such a table, or on the rows the actions change, fire for
///   those statements; a trigger can tell by `current_setting('dts.applying', true) = 'on'`.
///   Before `idempotent_until`, where the target may already hold later rows, the row's
///   image before the change is written back first, so the actions meet the same rows.
///
/// - **First**, the task's row of `dts_meta.cdc_position` is locked (`FOR UPDATE`): a
///   repair beside the apply ([`dts_core::RepairSink::hold_apply`]) locks it too, so the
///   two never interleave and never wait for each other's rows.
/// - A table is planned from the first image's columns: their types are read from the
///   target, and its key is the primary key, else the smallest unique index over `NOT NULL`
///   columns (every column of it written). A value that cannot be encoded is an error naming
///   table and key; the whole batch is rolled back.
/// - **Tables with a key**: changes are
///   coalesced per key into the final state of each touched key (a key change deletes the old
///   key), encoded straight into binary `COPY` rows, and written set-wise through a temporary
///   staging table per target table (created once per connection): `COPY` into it, `DELETE
///   FROM target USING staging` on the key, `INSERT INTO target SELECT … WHERE NOT deleted`.
///   This is idempotent, so replaying transactions the target already holds is harmless.
///   Pending rows are written out every 10,000 rows or 8 MiB (across tables), within the
///   target transaction and across its parts, so the sink's memory stays bounded whatever
///   the size of the transaction. A table
///   with only a handful of touched keys (up to 16) is written with prepared per-key
///   `DELETE` and `INSERT` statements instead, pipelined: cheaper for small batches. When
///   an index leads with the key, the set-wise `DELETE` is made to probe it per staged key
///   (the unanalysed staging table otherwise draws a merge join over the whole index).
/// - **Tables without a key**: inserts are copied straight into the table (in runs); each
///   delete or update touches exactly one row that matches the old image on every copied
///   column (`IS NOT DISTINCT FROM`, by `ctid`), so duplicate rows stay right. When no row
///   matches, the target has diverged and the batch fails with [`ErrorKind::Conflict`].
///   Before the position passes `idempotent_until` such changes cannot be made idempotent:
///   they fail with [`ErrorKind::Unsupported`] naming the table, unless they change nothing.
/// - **Schema changes** ([`dts_core::Change::Schema`]): pending changes are written out and
///   the target statements run in the same transaction, in order; cached table information
///   is refreshed, and the source schema the change carries is recorded in
///   `dts_meta.cdc_schema` with the batch's position (see [`super::read_schema`]), so a
///   restarted mapper starts from it. A [`dts_core::Change::Ddl`] that was not mapped is an
///   error.
/// - **Truncate**: `TRUNCATE` of the mapped table, in order.
/// - Last, the position is written to `dts_meta.cdc_position` and the transaction committed
///   in the same round trip. Transactions at or before the recorded position are skipped.
///   The write is compare-and-set, from the position this sink last read
///   ([`ApplySink::applied_position`]) or committed: if another writer of the task moved it
///   meanwhile, nothing commits and the error ([`ErrorKind::Conflict`]) names the task.
///
/// **Transactions in parts.** [`ApplySink::apply_part`] opens the target transaction (if
/// it is not open yet), applies the part as above — rows staged and written out at the
/// same thresholds, so nothing of a part is kept beyond them — and returns with the
/// transaction still open: no position, no commit. The next [`ApplySink::apply`] carries
/// on in it with the rest of the source transaction, then the rest of its batch, and
/// commits as above. A transaction in parts is judged by the position of its first event:
/// at or before the recorded position it is already applied, and its parts and rest are
/// ignored without opening a target transaction; the copy positions
/// ([`PgApplySink::with_copied_at`]) and `idempotent_until` are compared with it too. These
/// positions all lie between source transactions, so this agrees with judging it by its
/// end. A failed part or closing apply rolls the whole target transaction back; so does the
/// next call after an abandoned one, and [`ApplySink::applied_position`] called while a
/// transaction in parts is open; a dropped sink closes its connection, which rolls it back
/// on the server.
///
/// Errors are classified by [`super::map_error`], so lost connections and deadlocks stay
/// retryable.
///
/// ```no_run
/// use dts_connectors::postgres::{record_position, PgApplySink};
/// use dts_core::Position;
///
/// # async fn demo(snapshot: Position) -> Result<(), dts_core::Error> {
/// let url = "postgres://dts@127.0.0.1/shop";
/// let mut sink = PgApplySink::connect(url, "task-1", None).await?;
/// record_position(sink.client(), "task-1", &snapshot).await?;
/// # Ok(())
/// # }
/// ```
pub struct PgApplySink {
    client: Client,
    task: String,
    idempotent_until: Option<Position>,
    copied_at: HashMap<TableName, Position>,
    /// The source schema after the schema changes of the batch being applied, if any.
    schema: Option<Arc<Catalog>>,
    /// Whether the source logs the rows its foreign key actions change.
    cascades: CascadeLogging,
    /// The position of the last committed batch (or read at connect).
    applied: Option<Position>,
    /// Per target table: how its changes are written; cleared after DDL and failures.
    tables: HashMap<TableName, TableState>,
    /// Staging table name per target table, stable for the connection.
    stages: HashMap<TableName, String>,
    /// Rows and bytes buffered since the last write-out (an upper bound).
    pending_rows: usize,
    pending_bytes: usize,
    /// Whether a target transaction is open (begun by the running call, by an abandoned
    /// one, or left open by `apply_part` for the transaction in parts).
    open: bool,
    /// Whether a call is running; still set when the next call starts if it was abandoned.
    busy: bool,
    /// The source transaction arriving in parts, if one is.
    partial: Option<Partial>,
    buffer: BytesMut,
    select_position: Statement,
}

impl std::fmt::Debug for PgApplySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgApplySink")
            .field("task", &self.task)
            .field("applied", &self.applied)
            .field("tables", &self.tables.len())
            .finish_non_exhaustive()
    }
}

impl PgApplySink {
    /// Connects to the target at `url` for task `task` (the name the position is recorded
    /// under), creating the task state if needed; before `idempotent_until` the target may
    /// already hold some of the changes (see the type docs).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] for a malformed URL; classified connection and database errors.
    pub async fn connect(
        url: &str,
        task: &str,
        idempotent_until: Option<Position>,
    ) -> Result<Self> {
        let client = connect_client(url).await?;
        Self::from_client(client, task, idempotent_until).await
    }

    /// A sink over an existing connection, creating `dts_meta.cdc_position` if needed. Its
    /// session is set up as [`connect_client`] does it: values of types without a binary
    /// encoding here are sent as their text, which `DateStyle` and `IntervalStyle` read.
    ///
    /// # Errors
    ///
    /// Classified database errors.
    pub async fn from_client(
        client: Client,
        task: &str,
        idempotent_until: Option<Position>,
    ) -> Result<Self> {
        client
            .batch_execute(
                "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; \
                 SET IntervalStyle = 'postgres'; SET standard_conforming_strings = on",
            )
            .await
            .map_err(|e| map_error(e, "setting up the apply session"))?;
        migrate(&client).await?;
        wait_for_earlier_session(
            task,
            &mut PgApplySessions {
                client: &client,
                task,
            },
        )
        .await?;
        let select_position = client
            .prepare(SELECT_POSITION)
            .await
            .map_err(|e| map_error(e, "preparing the position query"))?;
        let mut sink = Self {
            client,
            task: task.to_string(),
            idempotent_until,
            copied_at: HashMap::new(),
            schema: None,
            cascades: CascadeLogging::Unlogged,
            applied: None,
            tables: HashMap::new(),
            stages: HashMap::new(),
            pending_rows: 0,
            pending_bytes: 0,
            open: false,
            busy: false,
            partial: None,
            buffer: BytesMut::with_capacity(SEND_BYTES * 2),
            select_position,
        };
        sink.applied = sink.read_applied().await?;
        Ok(sink)
    }

    /// Tells the sink, per target table, the snapshot position its copy was taken at, when
    /// a resumed full load copied it from a later snapshot than the one replication starts
    /// from. Changes of such a table committed at or before that position are already in the
    /// copy and are skipped; later ones are applied. This makes replication exact for tables
    /// without a key, whose changes cannot be replayed idempotently.
    #[must_use]
    pub fn with_copied_at(mut self, copied_at: HashMap<TableName, Position>) -> Self {
        self.copied_at = copied_at;
        self
    }

    /// Says whether the source's change log carries the rows its foreign key actions
    /// change. [`CascadeLogging::Unlogged`] (the default: MariaDB, MySQL before 9.6) makes
    /// the target perform the actions (see the type docs); [`CascadeLogging::Logged`]
    /// applies the logged rows only, so nothing is changed twice.
    #[must_use]
    pub fn with_cascade_logging(mut self, cascades: CascadeLogging) -> Self {
        self.cascades = cascades;
        self
    }

    /// The task name the position is recorded under.
    pub fn task(&self) -> &str {
        &self.task
    }

    /// The underlying connection.
    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn read_applied(&mut self) -> Result<Option<Position>> {
        if self.busy || self.partial.is_some() {
            // An abandoned call, or a transaction in parts that will not be continued.
            self.rollback().await;
        }
        let row = self
            .client
            .query_opt(&self.select_position, &[&self.task])
            .await
            .map_err(|e| {
                map_error(
                    e,
                    format!("reading the applied position of task `{}`", self.task),
                )
            })?;
        let position = row
            .map(|r| super::state::parse_position(&self.task, r.get(0)))
            .transpose()?;
        self.applied.clone_from(&position);
        Ok(position)
    }

    /// Rolls back what an abandoned call left open (a transaction in parts included).
    async fn end_abandoned(&mut self) {
        if self.busy {
            tracing::debug!(task = %self.task, "rolling back after an abandoned call");
            self.rollback().await;
        }
    }

    /// Rolls back the open target transaction, if any, and forgets what it may have
    /// created and the transaction in parts.
    async fn rollback(&mut self) {
        if self.open {
            if let Err(e) = self.client.batch_execute("ROLLBACK").await {
                tracing::debug!(error = %e, "rollback of a failed or abandoned batch failed");
            }
        }
        self.open = false;
        self.busy = false;
        self.partial = None;
        self.schema = None;
        self.forget_tables();
    }

    fn forget_tables(&mut self) {
        self.tables.clear();
        self.pending_rows = 0;
        self.pending_bytes = 0;
    }

    /// Opens the target transaction unless one is open.
    async fn begin(&mut self) -> Result<()> {
        if self.open {
            return Ok(());
        }
        self.open = true;
        // The position record is locked first: a repair beside the apply locks it too, so
        // the two never interleave (and never wait for each other's rows).
        self.client
            .batch_execute(&format!(
                "BEGIN; SET LOCAL session_replication_role = replica; SET LOCAL dts.applying = on; \
                 SELECT 1 FROM dts_meta.cdc_position WHERE task = {} FOR UPDATE",
                dts_typemap::pg::quote_literal(&self.task)
            ))
            .await
            .map_err(|e| map_error(e, "starting a target transaction in replica mode"))
    }

    async fn apply_part_events(&mut self, events: &[ChangeEvent]) -> Result<ApplyStats> {
        self.end_abandoned().await;
        let judge = match part_judge(events, &mut self.partial, self.applied.as_ref()) {
            Ok(Some(judge)) => judge,
            Ok(None) => return Ok(ApplyStats::default()),
            Err(e) => {
                self.rollback().await;
                return Err(e);
            }
        };
        self.busy = true;
        match self.apply_part_in_transaction(events, &judge).await {
            Ok(stats) => {
                self.busy = false;
                tracing::trace!(task = %self.task, rows = stats.rows, first = %judge,
                    "part of a transaction applied");
                Ok(stats)
            }
            Err(e) => {
                self.rollback().await;
                Err(e)
            }
        }
    }

    async fn apply_part_in_transaction(
        &mut self,
        events: &[ChangeEvent],
        judge: &Position,
    ) -> Result<ApplyStats> {
        self.begin().await?;
        let mut stats = ApplyStats::default();
        self.apply_transaction(events, judge, &mut stats).await?;
        Ok(stats)
    }

    async fn apply_batch(
        &mut self,
        events: &[ChangeEvent],
        position: &Position,
    ) -> Result<ApplyStats> {
        self.end_abandoned().await;
        let fresh = match fresh_transactions(events, &mut self.partial, self.applied.as_ref()) {
            Ok(fresh) => fresh,
            Err(e) => {
                self.rollback().await;
                return Err(e);
            }
        };
        if fresh.abandon_parts && self.open {
            self.rollback().await;
        }
        if fresh.is_empty() {
            return Ok(ApplyStats::default());
        }
        self.busy = true;
        match self
            .apply_in_transaction(fresh.continued, &fresh.transactions, position)
            .await
        {
            Ok(stats) => {
                self.busy = false;
                self.applied = Some(position.clone());
                tracing::debug!(task = %self.task, %position, transactions = stats.transactions,
                    rows = stats.rows, "changes applied");
                Ok(stats)
            }
            Err(e) => {
                self.rollback().await;
                Err(e)
            }
        }
    }

    async fn apply_in_transaction(
        &mut self,
        continued: Option<(&[ChangeEvent], Position)>,
        transactions: &[&[ChangeEvent]],
        position: &Position,
    ) -> Result<ApplyStats> {
        self.begin().await?;
        let mut stats = ApplyStats::default();
        if let Some((rest, first)) = continued {
            self.apply_transaction(rest, &first, &mut stats).await?;
            stats.transactions += 1;
        }
        for transaction in transactions {
            let end = &transaction[transaction.len() - 1].position;
            self.apply_transaction(transaction, end, &mut stats).await?;
            stats.transactions += 1;
        }
        self.flush_all().await?;
        if let Some(catalog) = self.schema.take() {
            self.record_schema(&catalog, position).await?;
        }
        // Compare-and-set from the position this sink last saw committed: a second writer
        // of the task cannot move it backwards or over another run's.
        let sql = advance_position_and_commit(&self.task, self.applied.as_ref(), position)?;
        self.client
            .batch_execute(&sql)
            .await
            .map_err(|e| position_conflict(e, &self.task, self.applied.as_ref(), position))?;
        self.open = false;
        self.pending_rows = 0;
        self.pending_bytes = 0;
        for state in self.tables.values_mut() {
            state.committed();
        }
        Ok(stats)
    }

    /// Applies the events of one source transaction (all of it, or a part) in the open
    /// target transaction. `judge` is the position the transaction is judged by for copied
    /// tables and the idempotence window: its end, or for a transaction in parts its first
    /// event (equivalent, as those positions lie between transactions).
    async fn apply_transaction(
        &mut self,
        events: &[ChangeEvent],
        judge: &Position,
        stats: &mut ApplyStats,
    ) -> Result<()> {
        let in_window = self
            .idempotent_until
            .as_ref()
            .is_some_and(|u| at_or_before(judge, u));
        for event in events {
            let (skip, in_window) = judge_copied(&event.change, judge, &self.copied_at, in_window);
            if skip {
                continue;
            }
            if let Some((table, op)) = RowOp::of(&event.change) {
                stats.rows += 1;
                self.row_change(table, op, in_window).await?;
                continue;
            }
            match &event.change {
                Change::Begin | Change::Commit => {}
                Change::Truncate { table } => self.truncate(table).await?,
                Change::Schema(change) => {
                    if self.schema_change_copied(change, judge)? {
                        if let Some(catalog) = &change.catalog {
                            self.schema = Some(catalog.clone());
                        }
                        tracing::debug!(task = %self.task, statement = %short_sql(&change.source_sql),
                            "ddl skipped: the copy of its table is later");
                        continue;
                    }
                    self.schema_change(change).await?;
                }
                _ => return Err(unexpected_change(event)),
            }
        }
        Ok(())
    }

    /// Records the tracked source schema in `dts_meta.cdc_schema`, in the batch's
    /// transaction.
    async fn record_schema(&mut self, catalog: &Catalog, position: &Position) -> Result<()> {
        let catalog = serde_json::to_string(catalog)
            .map_err(|e| Error::internal("cannot encode the source schema").with_source(e))?;
        self.client
            .execute(
                UPSERT_SCHEMA,
                &[&self.task, &catalog, &position_json(position)?],
            )
            .await
            .map_err(|e| map_error(e, "recording the source schema"))?;
        Ok(())
    }

    async fn row_change(
        &mut self,
        table: &TableName,
        op: RowOp<'_>,
        in_window: bool,
    ) -> Result<()> {
        let columns = match &op {
            RowOp::Insert(r) | RowOp::Delete(r) | RowOp::Update(r, _) => r.columns.clone(),
        };
        let stale = self
            .tables
            .get(table)
            .is_some_and(|t| !Arc::ptr_eq(&t.columns, &columns) && *t.columns != *columns);
        if stale {
            // The mapped column list changed (a schema change): write out what is pending
            // and plan the table again.
            self.flush_all().await?;
            self.tables.remove(table);
        }
        if !self.tables.contains_key(table) {
            let stage = self.stage_name(table);
            let mut state = TableState::load(&self.client, table, columns, stage).await?;
            if self.cascades == CascadeLogging::Unlogged {
                let names: Vec<String> = state.columns.to_vec();
                state.referenced = Referenced::load(&self.client, &state.target, &names).await?;
            }
            self.tables.insert(table.clone(), state);
        }
        if let RowOp::Update(before, after) = &op {
            if after.columns.len() != before.columns.len() {
                // Columns left out of the after image keep the target's values.
                self.flush_all().await?;
                let Self { client, tables, .. } = self;
                let state = tables
                    .get_mut(table)
                    .ok_or_else(|| Error::internal(format!("no apply plan for `{table}`")))?;
                return state.keyed_partial_update(client, before, after).await;
            }
        }
        let acts = match self.tables.get_mut(table) {
            Some(state) => state.acts_on_others(&op)?,
            None => false,
        };
        if acts && self.apply_with_actions(table, &op, in_window).await? {
            return Ok(());
        }
        let Self {
            client,
            tables,
            buffer,
            ..
        } = self;
        let state = tables
            .get_mut(table)
            .ok_or_else(|| Error::internal(format!("no apply plan for `{table}`")))?;
        let added = if state.is_keyed() {
            state.stage_change(&op, in_window)?
        } else {
            state.keyless_change(client, &op, in_window, buffer).await?
        };
        self.pending_rows += 1;
        self.pending_bytes += added;
        if self.pending_rows >= FLUSH_ROWS || self.pending_bytes >= FLUSH_BYTES {
            self.flush_all().await?;
        }
        Ok(())
    }

    /// Applies a change that makes the source act on other rows through foreign keys, on
    /// its own and with the target's actions on, after writing out everything before it.
    /// Returns false when the row to update is missing (the target has diverged, or holds
    /// a later state): the change is then staged like any other.
    async fn apply_with_actions(
        &mut self,
        table: &TableName,
        op: &RowOp<'_>,
        in_window: bool,
    ) -> Result<bool> {
        self.flush_all().await?;
        let Self {
            client,
            tables,
            buffer,
            ..
        } = self;
        let state = tables
            .get_mut(table)
            .ok_or_else(|| Error::internal(format!("no apply plan for `{table}`")))?;
        if state.is_keyed() {
            return state.keyed_with_actions(client, op, in_window).await;
        }
        triggers_on(client).await?;
        state.keyless_change(client, op, in_window, buffer).await?;
        triggers_off(client).await?;
        Ok(true)
    }

    /// Writes out every table's pending rows.
    async fn flush_all(&mut self) -> Result<()> {
        let Self {
            client,
            tables,
            buffer,
            ..
        } = self;
        for state in tables.values_mut() {
            state.flush(client, buffer).await?;
        }
        self.pending_rows = 0;
        self.pending_bytes = 0;
        Ok(())
    }

    fn stage_name(&mut self, target: &TableName) -> String {
        let next = self.stages.len();
        self.stages
            .entry(target.clone())
            .or_insert_with(|| format!("dts_stage_{next}"))
            .clone()
    }

    async fn truncate(&mut self, table: &TableName) -> Result<()> {
        if let Some(state) = self.tables.get_mut(table) {
            state.discard();
        }
        // MySQL's TRUNCATE resets the table's AUTO_INCREMENT: the identity restarts too.
        let mut sql = String::from("TRUNCATE ");
        push_table(&mut sql, table);
        sql.push_str(" RESTART IDENTITY");
        self.client
            .batch_execute(&sql)
            .await
            .map_err(|e| map_error(e, format!("truncating `{table}`")))
    }

    /// Whether a schema change at `judge` is already in the copy of the tables it touches
    /// (see [`crate::apply::schema_change_copied`]).
    fn schema_change_copied(&mut self, change: &SchemaChange, judge: &Position) -> Result<bool> {
        schema_change_copied(&mut self.copied_at, change, judge)
    }

    /// Runs a translated schema change's statements, in order, in the open transaction.
    async fn schema_change(&mut self, change: &SchemaChange) -> Result<()> {
        self.flush_all().await?;
        for statement in &change.statements {
            tracing::debug!(task = %self.task, statement = %short_sql(statement), "applying ddl");
            self.client.batch_execute(statement).await.map_err(|e| {
                map_error(
                    e,
                    format!(
                        "running `{}` (translated from source ddl `{}`)",
                        short_sql(statement),
                        short_sql(&change.source_sql)
                    ),
                )
            })?;
        }
        if let Some(catalog) = &change.catalog {
            self.schema = Some(catalog.clone());
        }
        if !change.statements.is_empty() {
            // Column lists, types, keys or names may have changed: plan every table again.
            self.tables.clear();
        }
        Ok(())
    }
}

#[dts_core::async_trait]
impl ApplySink for PgApplySink {
    async fn apply(&mut self, events: &[ChangeEvent], position: &Position) -> Result<ApplyStats> {
        self.apply_batch(events, position).await
    }

    async fn apply_part(&mut self, events: &[ChangeEvent]) -> Result<ApplyStats> {
        self.apply_part_events(events).await
    }

    async fn applied_position(&mut self) -> Result<Option<Position>> {
        self.read_applied().await
    }
}

fn push_table(sql: &mut String, table: &TableName) {
    push_ident(sql, &table.schema);
    sql.push('.');
    push_ident(sql, &table.name);
}

fn push_list<'a>(sql: &mut String, prefix: &str, names: impl IntoIterator<Item = &'a str>) {
    for (i, name) in names.into_iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(prefix);
        push_ident(sql, name);
    }
}

/// Runs a `COPY` of `rows` (encoded rows, or runs of them), with `buffer` holding the
/// binary header already, or, with `text`, in text format (no header, no trailer); returns
/// the rows the server stored.
async fn send_copy(
    client: &Client,
    statement: &Statement,
    buffer: &mut BytesMut,
    rows: impl Iterator<Item = impl AsRef<[u8]>>,
    text: bool,
    what: &(dyn Fn() -> String + Sync),
) -> Result<u64> {
    let sink = client
        .copy_in::<_, Bytes>(statement)
        .await
        .map_err(|e| map_error(e, what()))?;
    // Boxed, so that dropping it aborts the COPY.
    let mut sink = Box::pin(sink);
    for row in rows {
        buffer.put_slice(row.as_ref());
        if buffer.len() >= SEND_BYTES {
            sink.feed(buffer.split().freeze())
                .await
                .map_err(|e| map_error(e, what()))?;
        }
    }
    if !text {
        PgCopyEncoder::write_trailer(buffer);
    }
    sink.feed(buffer.split().freeze())
        .await
        .map_err(|e| map_error(e, what()))?;
    sink.as_mut()
        .finish()
        .await
        .map_err(|e| map_error(e, what()))
}
