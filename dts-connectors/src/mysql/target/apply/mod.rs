//! Applying replicated changes to MySQL/MariaDB: [`MySqlApplySink`], the [`ApplySink`] that
//! writes each batch of source transactions together with its log position in one target
//! transaction, through the text protocol in batched statements. Changes arrive mapped
//! (target tables, target column names, target values, target DDL): the sink only writes.

use crate::apply::{
    at_or_before, fresh_transactions, judge_copied, part_judge, schema_change_copied,
    unexpected_change, wait_for_earlier_session, ApplySessions, EarlierSession, Partial,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dts_core::{
    ApplySink, ApplyStats, CascadeLogging, Catalog, Change, ChangeEvent, Error, ErrorKind,
    Position, Result, SchemaChange, TableName,
};
use dts_schema::short_sql;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};

use super::state::{
    advance_position_sql, clear_ddl_sql, is_position_conflict, migrate, parse_position,
    position_conflict, record_ddl_sql, upsert_schema_sql, SELECT_DDL, SELECT_POSITION,
};
use super::SQL_MODE;
use crate::mysql::error::map_error;
use crate::TargetBinlog;

pub(super) mod literal;
mod script;
mod table;
#[cfg(test)]
mod tests;

use script::{Batch, Failed, Meta, Script};
use table::{shortened, RowOp, TableState};

/// The sessions applying a task's changes into MySQL/MariaDB, tagged by a named lock
/// (`GET_LOCK`, released when the session ends).
struct MySqlApplySessions<'a> {
    conn: &'a mut Conn,
    task: &'a str,
}

/// The named lock that tags the session applying `task`'s changes (lock names are limited
/// to 64 characters: a hash of the task).
fn apply_tag(task: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in task.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("dts.apply.{h:016x}")
}

impl ApplySessions for MySqlApplySessions<'_> {
    async fn look(&mut self) -> Result<(EarlierSession, String)> {
        let what = || {
            format!(
                "looking for an earlier apply session of task `{}`",
                self.task
            )
        };
        let tag = apply_tag(self.task);
        let tagged: Option<Option<i64>> = self
            .conn
            .exec_first("SELECT GET_LOCK(?, 0)", (tag.as_str(),))
            .await
            .map_err(|e| map_error(e, what()))?;
        if tagged.flatten() == Some(1) {
            return Ok((EarlierSession::None, String::new()));
        }
        // A session sees its own account's sessions without the PROCESS privilege; one
        // it cannot see is taken as idle.
        let holder: Option<(Option<u64>, Option<String>)> = self
            .conn
            .exec_first(
                "SELECT l.id, p.COMMAND FROM (SELECT IS_USED_LOCK(?) AS id) l \
                 LEFT JOIN information_schema.PROCESSLIST p ON p.ID = l.id",
                (tag.as_str(),),
            )
            .await
            .map_err(|e| map_error(e, what()))?;
        match holder {
            Some((Some(id), command)) => {
                let session = format!("connection {id}");
                let state = match command.as_deref() {
                    None | Some("Sleep") => EarlierSession::Idle,
                    Some(_) => EarlierSession::Busy,
                };
                Ok((state, session))
            }
            // Released between the two statements: the next look takes the tag.
            _ => Ok((EarlierSession::Busy, "a session that just ended".into())),
        }
    }

    async fn end(&mut self, holder: &str) -> Result<()> {
        let id: u64 = holder
            .rsplit(' ')
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| Error::internal(format!("no connection id in `{holder}`")))?;
        self.conn
            .query_drop(format!("KILL CONNECTION {id}"))
            .await
            .map_err(|e| map_error(e, format!("ending the earlier apply session {holder}")))
    }
}

/// Pending row changes (across tables) that make the sink write them out mid-batch.
const FLUSH_ROWS: usize = 10_000;
/// Pending literal bytes (across tables) that make the sink write them out mid-batch.
const FLUSH_BYTES: usize = 8 << 20;
/// Largest script sent at once (a multi-statement query), unless the server's
/// `max_allowed_packet` is smaller.
const SCRIPT_BYTES: usize = 8 << 20;

/// MySQL error numbers of a value a column cannot hold, or of a row a constraint refuses.
const VALUE_ERRORS: &[u16] = &[
    1048, // column cannot be null
    1264, // out of range
    1265, // data truncated
    1292, // incorrect date/time value
    1366, // incorrect value for the column's type or character set
    1367, // illegal value
    1406, // data too long
    1416, // cannot get a geometry object
    1690, // value out of range in an expression
    3140, // invalid JSON text
    4025, // CHECK constraint failed (MariaDB)
    3819, // CHECK constraint violated (MySQL)
    1062, // duplicate entry
];

/// An [`ApplySink`] writing mapped changes into MySQL/MariaDB through one connection.
///
/// Changes arrive as a [`dts_core::ChangeMapper`] leaves them: row changes name the target
/// table, with images of target column names and target values; schema changes carry the
/// target statements. The sink converts nothing and parses no DDL. It works for any source
/// engine (binlog or WAL positions).
///
/// The session is the target's (`utf8mb4`, UTC, strict `sql_mode`, see
/// [`super::session_opts`]) with `foreign_key_checks = 0`: the source checked its foreign
/// keys, and rows its foreign key actions changed either arrive as their own changes or are
/// handled below, so the target must not act on them again. With [`TargetBinlog::Off`] the
/// session also sets `sql_log_bin = 0`, which needs `SUPER` or `BINLOG ADMIN` (MariaDB), or
/// `SYSTEM_VARIABLES_ADMIN` / `SESSION_VARIABLES_ADMIN` (MySQL): without it the sink fails
/// to connect, naming the fix. Values are written as SQL literals in batched statements of
/// the text protocol (one round trip sends many statements).
///
/// Each [`ApplySink::apply`] call (with the [`ApplySink::apply_part`] calls before it) is
/// one target transaction, but for schema changes (below). Within it:
///
/// - A table is planned from the first image's columns: its key is the primary key, else
///   the smallest unique index over `NOT NULL` columns without prefix parts (every column
///   of it written).
/// - **Tables with a key**: changes are coalesced per key into the final state of each key
///   touched (deleted, or its last row; a key change deletes the old key) and written
///   set-wise: `DELETE … WHERE key IN (…)` of the keys that may hold a row in the target
///   (not the keys whose first change was an insert: the target holds the source's rows as
///   of the last write-out), then multi-row `INSERT … VALUES (…), (…)` of the final rows.
///   An update is thus a delete and an insert: a unique value moved between rows in the
///   batch never collides, and a row the target holds against the source's (a duplicate
///   key) is an error, not overwritten. Before `idempotent_until`, where the target may
///   already hold later rows, every touched key is deleted and the final rows are written
///   with `REPLACE` (which also removes a row that a later snapshot's copy left holding a
///   final row's unique values). Pending rows are written out every 10,000 rows or 8 MiB
///   (across tables), within the target transaction and across its parts.
/// - **Tables without a key**: inserts go in multi-row `INSERT`s; each delete or update
///   changes exactly one row equal to the old image in every written column (`<=>`,
///   character columns compared byte for byte in their character set, `LIMIT 1`), so
///   duplicate rows stay right; when no row matches, the target has diverged and the batch
///   fails with [`ErrorKind::Conflict`]. Before `idempotent_until` such changes fail with
///   [`ErrorKind::Unsupported`].
/// - **Foreign key actions.** Unless the source logs the rows its foreign key actions
///   change ([`MySqlApplySink::with_cascade_logging`]; MariaDB and MySQL before 9.6 do not),
///   a delete of a row of a table that a foreign key with `ON DELETE CASCADE` or `SET NULL`
///   references, or an update of columns a key with such an `ON UPDATE` action references,
///   is written on its own, after everything before it, with `foreign_key_checks = 1` for
///   that statement: InnoDB then acts on the target's rows as it did on the source's.
/// - **Values**: a value the target cannot hold fails the batch (everything of it rolled
///   back) with [`ErrorKind::Value`] naming the table, the column (as the server names it)
///   and the row's key; a duplicate key with [`ErrorKind::Conflict`].
/// - **Truncate**: `DELETE FROM` the table, in order, in the transaction (so that it is
///   exactly once; the table's `AUTO_INCREMENT` counter is not reset).
/// - Last, the position is written to `dts_meta.cdc_position` and the transaction committed,
///   in the same round trip as the last rows. Transactions at or before the recorded
///   position are skipped. The write is compare-and-set, from the position this sink last
///   read or committed: if another writer of the task moved it, nothing commits and the
///   error ([`ErrorKind::Conflict`]) names the task.
///
/// **Schema changes.** MySQL commits each DDL statement on its own, so a
/// [`Change::Schema`] with statements splits the target transaction: what comes before it
/// commits with the position of the last whole source transaction before it, together with
/// a record in `dts_meta.cdc_ddl` of the change's position, the step about to run, this
/// session and the definitions (`SHOW CREATE TABLE`) of the tables it touches. Statements
/// that set session variables (`SET …`, the source statement's `sql_mode`) run first; each
/// DDL statement's step is recorded before it runs; after the last one the session's own
/// `sql_mode` is set again, and the source schema the change carries, the change's
/// position and the removal of the record commit together. A run that finds the record when
/// the change arrives again (it was killed in between) skips the rows committed with it,
/// waits until the recorded session no longer runs a statement, and judges the recorded
/// step by the definitions: when a touched table's definition differs from the recorded
/// one, the statement took effect and is not run again; otherwise it runs. A statement
/// touching no known table is run again.
///
/// A schema change **inside a source transaction** ([`SchemaChange::within_transaction`]:
/// a PostgreSQL relation description between the transaction's rows) splits it the same
/// way: the rows before it (of earlier parts too) commit with the record, which also holds
/// the change's position and how many of the transaction's events came before it; the
/// statements run, each recorded first; the record is then marked done (its step past the
/// last statement), and the position, the schema after the change and the record's
/// removal commit with the end of the source transaction. The rows before the change are
/// visible in between. A run that finds such a record skips the events of that
/// transaction it counts, applies (or judges, as above) the change's remaining statements,
/// and goes on with the rest of the transaction: nothing of it is applied twice or lost.
///
/// **Transactions in parts** ([`ApplySink::apply_part`]) are applied as on PostgreSQL
/// ([`crate::postgres::PgApplySink`]): in the open target transaction, written out at the
/// same thresholds, judged by their first event; a failure rolls the whole transaction
/// back.
///
/// Errors are classified by [`crate::mysql::map_error`], so lost connections, deadlocks
/// and lock wait timeouts stay retryable.
pub struct MySqlApplySink {
    conn: Conn,
    task: String,
    /// This session's id, recorded with a DDL statement it runs.
    connection_id: u64,
    idempotent_until: Option<Position>,
    copied_at: HashMap<TableName, Position>,
    cascades: CascadeLogging,
    /// The source schema after the schema changes applied since the last commit.
    schema: Option<Arc<Catalog>>,
    /// The position of the last committed batch (or read at connect).
    applied: Option<Position>,
    /// The end of the last whole source transaction applied in the open target transaction.
    last_end: Option<Position>,
    /// Per target table: how its changes are written; cleared after DDL and failures.
    tables: HashMap<TableName, TableState>,
    pending_rows: usize,
    pending_bytes: usize,
    /// Statements waiting to be sent.
    batch: Batch,
    /// Whether a target transaction is open (its `START TRANSACTION` possibly still waiting
    /// in the batch).
    open: bool,
    /// Whether a call is running; still set when the next call starts if it was abandoned.
    busy: bool,
    /// The source transaction arriving in parts, if one is.
    partial: Option<Partial>,
    /// How many events of the source transaction being applied were seen.
    seq: u64,
    /// A schema change inside a source transaction that a killed (or failed) run recorded:
    /// the events of that transaction before it are committed.
    resume: Option<Unfinished>,
    /// Whether [`MySqlApplySink::resume`] was read since the session's last failure.
    resume_read: bool,
    /// The source schema after schema changes inside the source transaction being applied
    /// (recorded only with the end of that transaction).
    tx_schema: Option<Arc<Catalog>>,
    /// Whether a schema change inside a source transaction is recorded in `dts_meta.cdc_ddl`
    /// and must be forgotten when that transaction's end commits.
    tx_record: bool,
}

impl std::fmt::Debug for MySqlApplySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MySqlApplySink")
            .field("task", &self.task)
            .field("applied", &self.applied)
            .field("tables", &self.tables.len())
            .finish_non_exhaustive()
    }
}

/// A schema change a killed run was applying, as recorded in `dts_meta.cdc_ddl`.
#[derive(Debug)]
struct Unfinished {
    position: Position,
    step: usize,
    connection_id: u64,
    definitions: String,
    /// For a change inside a source transaction: the transaction's events before it.
    events: Option<u64>,
}

/// Definitions of tables, by `db.table`: `SHOW CREATE TABLE`, or `None` when absent.
type Definitions = BTreeMap<String, Option<String>>;

impl MySqlApplySink {
    /// Connects with `opts` (the target's session set-up, [`super::session_opts`]) for task
    /// `task` (the name the position is recorded under), creating `dts_meta` if needed;
    /// before `idempotent_until` the target may already hold some of the changes (see the
    /// type docs). `binlog` says whether the applied writes go to the target's binlog.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Privilege`] naming the fix when `binlog` is off and the account may not
    /// turn it off for its session; classified connection and database errors.
    pub async fn connect(
        opts: Opts,
        task: &str,
        idempotent_until: Option<Position>,
        binlog: TargetBinlog,
    ) -> Result<Self> {
        let opts: Opts = OptsBuilder::from_opts(opts).client_found_rows(true).into();
        let mut conn = Conn::new(opts)
            .await
            .map_err(|e| map_error(e, "cannot connect to target"))?;
        migrate(&mut conn).await?;
        wait_for_earlier_session(
            task,
            &mut MySqlApplySessions {
                conn: &mut conn,
                task,
            },
        )
        .await?;
        conn.query_drop("SET SESSION foreign_key_checks = 0")
            .await
            .map_err(|e| map_error(e, "setting up the apply session"))?;
        if binlog == TargetBinlog::Off {
            set_binlog_off(&mut conn).await?;
        }
        let (connection_id, packet): (u64, u64) = conn
            .query_first("SELECT CONNECTION_ID(), @@max_allowed_packet")
            .await
            .map_err(|e| map_error(e, "setting up the apply session"))?
            .unwrap_or((0, 16 << 20));
        let limit = usize::try_from(packet)
            .unwrap_or(usize::MAX)
            .saturating_sub(1 << 20)
            .clamp(64 << 10, SCRIPT_BYTES);
        let mut sink = Self {
            conn,
            task: task.to_string(),
            connection_id,
            idempotent_until,
            copied_at: HashMap::new(),
            cascades: CascadeLogging::Unlogged,
            schema: None,
            applied: None,
            last_end: None,
            tables: HashMap::new(),
            pending_rows: 0,
            pending_bytes: 0,
            batch: Batch::new(limit),
            open: false,
            busy: false,
            partial: None,
            seq: 0,
            resume: None,
            resume_read: false,
            tx_schema: None,
            tx_record: false,
        };
        sink.applied = sink.read_applied().await?;
        Ok(sink)
    }

    /// Tells the sink, per target table, the snapshot position its copy was taken at, when
    /// a resumed full load copied it from a later snapshot than the one replication starts
    /// from: changes of such a table at or before that position are skipped.
    #[must_use]
    pub fn with_copied_at(mut self, copied_at: HashMap<TableName, Position>) -> Self {
        self.copied_at = copied_at;
        self
    }

    /// Says whether the source's change log carries the rows its foreign key actions
    /// change. [`CascadeLogging::Unlogged`] (the default: MariaDB, MySQL before 9.6) makes
    /// the target perform the actions (see the type docs); [`CascadeLogging::Logged`]
    /// (PostgreSQL, MySQL 9.6 and later) applies the logged rows only.
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
    pub fn conn(&mut self) -> &mut Conn {
        &mut self.conn
    }

    async fn read_applied(&mut self) -> Result<Option<Position>> {
        if self.busy || self.partial.is_some() || self.open {
            self.rollback().await;
        }
        let json: Option<String> = self
            .conn
            .exec_first(SELECT_POSITION, (self.task.as_str(),))
            .await
            .map_err(|e| {
                map_error(
                    e,
                    format!("reading the applied position of task `{}`", self.task),
                )
            })?;
        let position = json.map(|j| parse_position(&self.task, &j)).transpose()?;
        self.applied.clone_from(&position);
        Ok(position)
    }

    /// Rolls back what an abandoned call left open.
    async fn end_abandoned(&mut self) {
        if self.busy {
            tracing::debug!(task = %self.task, "rolling back after an abandoned call");
            self.rollback().await;
        }
    }

    /// Rolls back the open target transaction, if any, sets the session back (a failure
    /// may leave foreign key checks on, or the source's `sql_mode`), and forgets what the
    /// transaction staged.
    async fn rollback(&mut self) {
        let reset = format!("ROLLBACK; SET SESSION foreign_key_checks = 0; {SQL_MODE}");
        if let Err(e) = self.conn.query_drop(reset).await {
            tracing::debug!(error = %e, "rollback of a failed or abandoned batch failed");
        }
        self.open = false;
        self.busy = false;
        self.partial = None;
        self.schema = None;
        self.last_end = None;
        self.seq = 0;
        self.resume = None;
        self.resume_read = false;
        self.tx_schema = None;
        self.tx_record = false;
        self.batch.clear();
        self.tables.clear();
        self.pending_rows = 0;
        self.pending_bytes = 0;
    }

    /// Opens the target transaction unless one is open (its `START TRANSACTION` goes with
    /// the next statements sent).
    fn begin(&mut self) {
        if !self.open {
            self.open = true;
            self.batch.current().push(
                "START TRANSACTION",
                Meta::Plain("starting a target transaction".into()),
            );
        }
    }

    async fn apply_part_events(&mut self, events: &[ChangeEvent]) -> Result<ApplyStats> {
        self.end_abandoned().await;
        if self.partial.is_none() {
            self.seq = 0;
        }
        let judge = match part_judge(events, &mut self.partial, self.applied.as_ref()) {
            Ok(Some(judge)) => judge,
            Ok(None) => return Ok(ApplyStats::default()),
            Err(e) => {
                self.rollback().await;
                return Err(e);
            }
        };
        self.busy = true;
        let result = async {
            self.read_resume().await?;
            self.begin();
            let mut stats = ApplyStats::default();
            self.apply_transaction(events, &judge, None, &mut stats)
                .await?;
            Ok::<_, Error>(stats)
        }
        .await;
        match result {
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
        let result = match self.read_resume().await {
            Ok(()) => {
                self.apply_in_transaction(fresh.continued, &fresh.transactions, position)
                    .await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(stats) => {
                self.busy = false;
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
        self.begin();
        let mut stats = ApplyStats::default();
        if let Some((rest, first)) = continued {
            let end = rest[rest.len() - 1].position.clone();
            self.apply_transaction(rest, &first, Some(&end), &mut stats)
                .await?;
            self.transaction_ended(end);
            stats.transactions += 1;
        }
        for transaction in transactions {
            let end = transaction[transaction.len() - 1].position.clone();
            self.seq = 0;
            self.apply_transaction(transaction, &end, Some(&end), &mut stats)
                .await?;
            self.transaction_ended(end);
            stats.transactions += 1;
        }
        self.commit(position).await?;
        Ok(stats)
    }

    /// Notes the end of a whole source transaction applied in the open target transaction:
    /// the schema its changes made is recorded with the next commit.
    fn transaction_ended(&mut self, end: Position) {
        if let Some(catalog) = self.tx_schema.take() {
            self.schema = Some(catalog);
        }
        self.seq = 0;
        self.last_end = Some(end);
    }

    /// Reads the schema change inside a source transaction a killed or failed run
    /// recorded, once per session and failure.
    async fn read_resume(&mut self) -> Result<()> {
        if !self.resume_read {
            self.resume = self.unfinished().await?.filter(|u| u.events.is_some());
            self.tx_record = self.resume.is_some();
            self.resume_read = true;
        }
        Ok(())
    }

    /// Writes out everything pending, records the schema and the position, and commits.
    async fn commit(&mut self, position: &Position) -> Result<()> {
        self.begin();
        self.flush_tables();
        if self.batch.has_checks() {
            // Rows that must be found are checked before anything commits.
            self.send(None).await?;
        }
        if let Some(catalog) = self.schema.take() {
            let sql = upsert_schema_sql(&self.task, &catalog, position)?;
            self.batch
                .current()
                .push(&sql, Meta::Plain("recording the source schema".into()));
        }
        if self.tx_record {
            // The source transaction a schema change inside it was recorded for has ended.
            self.batch.current().push(
                &clear_ddl_sql(&self.task),
                Meta::Plain("recording the schema change".into()),
            );
        }
        let cas = advance_position_sql(&self.task, self.applied.as_ref(), position)?;
        let script = self.batch.current();
        script.push(&cas, Meta::Position);
        script.push("COMMIT", Meta::Plain("committing".into()));
        self.send(Some(position)).await?;
        self.open = false;
        self.tx_record = false;
        self.applied = Some(position.clone());
        self.last_end = None;
        self.pending_rows = 0;
        self.pending_bytes = 0;
        Ok(())
    }

    /// Applies the events of one source transaction (all of it, or a part) in the open
    /// target transaction. `judge` is the position the transaction is judged by for copied
    /// tables and the idempotence window (its end, or for a part its first event); `end` is
    /// its end, `None` for a part.
    async fn apply_transaction(
        &mut self,
        events: &[ChangeEvent],
        judge: &Position,
        end: Option<&Position>,
        stats: &mut ApplyStats,
    ) -> Result<()> {
        let in_window = self
            .idempotent_until
            .as_ref()
            .is_some_and(|u| at_or_before(judge, u));
        // A schema change a killed run was applying: the rows before it were committed with
        // its record.
        let mut resumed: Option<Unfinished> = None;
        let has_ddl = events.iter().any(|e| {
            matches!(&e.change, Change::Schema(c)
                if !c.statements.is_empty() && !c.within_transaction)
        });
        if has_ddl {
            if let Some(end) = end {
                resumed = self.unfinished().await?.filter(|u| u.position == *end);
            }
        }
        for event in events {
            let seq = self.seq;
            self.seq += 1;
            // Events of a source transaction committed with the record of a schema change
            // inside it, by a run that did not get to the transaction's end.
            let mut within_resumed = None;
            if let Some(r) = &self.resume {
                if r.position == event.position {
                    let n = r.events.unwrap_or(0);
                    if seq < n {
                        continue;
                    }
                    within_resumed = self.resume.take().filter(|_| seq == n);
                    let is_within =
                        matches!(&event.change, Change::Schema(c) if c.within_transaction);
                    if within_resumed.is_some() != is_within || seq > n {
                        return Err(Error::internal(format!(
                            "the schema change an earlier run recorded inside the source \
                             transaction at `{}` (after {n} of its events) is not where it was \
                             recorded: the changes are not delivered as they were",
                            event.position
                        )));
                    }
                }
            }
            // Committed with the record of the schema change that follows them.
            let resumed_rows = resumed.is_some()
                && matches!(
                    event.change,
                    Change::Insert { .. }
                        | Change::Update { .. }
                        | Change::Delete { .. }
                        | Change::Truncate { .. }
                );
            let (skip, in_window) = if resumed_rows {
                (true, false)
            } else {
                judge_copied(&event.change, judge, &self.copied_at, in_window)
            };
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
                Change::Truncate { table } => self.truncate(table),
                Change::Schema(change) if change.within_transaction => {
                    // MySQL commits a schema change on its own: the source transaction is
                    // split at it, and resumed there after a kill.
                    if self.schema_change_copied(change, judge)? || change.statements.is_empty() {
                        if let Some(catalog) = &change.catalog {
                            self.tx_schema = Some(catalog.clone());
                        }
                        continue;
                    }
                    self.schema_change(change, &event.position, Some(seq), within_resumed)
                        .await?;
                }
                Change::Schema(change) => {
                    if self.schema_change_copied(change, judge)? {
                        if let Some(catalog) = &change.catalog {
                            self.schema = Some(catalog.clone());
                        }
                        tracing::debug!(task = %self.task, statement = %short_sql(&change.source_sql),
                            "ddl skipped: the copy of its table is later");
                        continue;
                    }
                    let at = end.unwrap_or(&event.position).clone();
                    self.schema_change(change, &at, None, resumed.take())
                        .await?;
                }
                _ => return Err(unexpected_change(event)),
            }
        }
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
            // The mapped column list changed: write out what is pending, plan again.
            self.write_out().await?;
            self.tables.remove(table);
        }
        if !self.tables.contains_key(table) {
            let cascades = self.cascades == CascadeLogging::Unlogged;
            let state = TableState::load(&mut self.conn, table, columns, cascades).await?;
            self.tables.insert(table.clone(), state);
        }
        if let RowOp::Update(before, after) = &op {
            if after.columns.len() != before.columns.len() {
                // Columns left out of the after image keep the target's values.
                self.write_out().await?;
                let state = self.state(table)?;
                let sql = state.partial_update_statement(before, after)?;
                self.batch.current().push(
                    &sql,
                    Meta::Plain(format!("applying an update to `{table}`")),
                );
                return Ok(());
            }
        }
        let acts = self.state(table)?.acts_on_others(&op);
        if acts && self.apply_with_actions(table, &op, in_window).await? {
            return Ok(());
        }
        let added = self
            .tables
            .get_mut(table)
            .ok_or_else(|| Error::internal(format!("no apply plan for `{table}`")))?
            .stage(&op, in_window)?;
        self.pending_rows += 1;
        self.pending_bytes += added;
        if self.pending_rows >= FLUSH_ROWS || self.pending_bytes >= FLUSH_BYTES {
            self.write_out().await?;
        }
        Ok(())
    }

    fn state(&self, table: &TableName) -> Result<&TableState> {
        self.tables
            .get(table)
            .ok_or_else(|| Error::internal(format!("no apply plan for `{table}`")))
    }

    /// Applies a change that makes the source act on other rows through foreign keys, on
    /// its own with foreign key checks on, after writing out everything before it. Returns
    /// false when the row to update is missing (the target has diverged, or holds a later
    /// state): the change is then staged like any other.
    async fn apply_with_actions(
        &mut self,
        table: &TableName,
        op: &RowOp<'_>,
        in_window: bool,
    ) -> Result<bool> {
        self.write_out().await?;
        let state = self.state(table)?;
        let keyed = state.is_keyed();
        let what = format!("applying a change with foreign key actions to `{table}`");
        let mut batch = Batch::new(usize::MAX);
        if in_window && keyed {
            let (before, after) = match op {
                RowOp::Delete(row) => (*row, None),
                RowOp::Update(before, after) => (*before, Some(*after)),
                RowOp::Insert(row) => (*row, None),
            };
            state.write_back(&mut batch, before, after)?;
        }
        let sql = state.single_statement(op)?;
        let script = batch.current();
        script.push(
            "SET SESSION foreign_key_checks = 1",
            Meta::Plain(what.clone()),
        );
        let index = script.statements.len();
        let meta = if keyed {
            Meta::Plain(what.clone())
        } else {
            let row = match op {
                RowOp::Delete(r) | RowOp::Update(r, _) | RowOp::Insert(r) => r.key_text(&[]),
            };
            Meta::One {
                table: table.clone(),
                what: if matches!(op, RowOp::Delete(_)) {
                    "delete"
                } else {
                    "update"
                },
                row,
            }
        };
        script.push(&sql, meta);
        script.push("SET SESSION foreign_key_checks = 0", Meta::Plain(what));
        let scripts = batch.take();
        let counts = self.run_scripts(scripts, None).await?;
        let changed = counts.get(index).copied();
        Ok(!(keyed && matches!(op, RowOp::Update(..)) && changed == Some(0)))
    }

    fn truncate(&mut self, table: &TableName) {
        if let Some(state) = self.tables.get_mut(table) {
            state.discard();
        }
        let mut sql = String::from("DELETE FROM ");
        literal::push_ident(&mut sql, &table.schema);
        sql.push('.');
        literal::push_ident(&mut sql, &table.name);
        self.batch
            .current()
            .push(&sql, Meta::Plain(format!("emptying `{table}`")));
    }

    /// Moves every table's pending rows into the batch.
    fn flush_tables(&mut self) {
        for state in self.tables.values_mut() {
            if state.has_pending() {
                state.flush(&mut self.batch);
            }
        }
        self.pending_rows = 0;
        self.pending_bytes = 0;
    }

    /// Writes out every table's pending rows and everything waiting, in the open
    /// transaction.
    async fn write_out(&mut self) -> Result<()> {
        self.flush_tables();
        self.send(None).await
    }

    /// Sends the waiting statements, checking each; `position` is the position being
    /// committed, for a failed compare-and-set.
    async fn send(&mut self, position: Option<&Position>) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let scripts = self.batch.take();
        self.run_scripts(scripts, position).await.map(|_| ())
    }

    /// Runs `scripts` in order; returns every statement's affected rows.
    async fn run_scripts(
        &mut self,
        scripts: Vec<Script>,
        position: Option<&Position>,
    ) -> Result<Vec<u64>> {
        let mut all = Vec::new();
        for script in scripts {
            let counts = match script.run(&mut self.conn).await {
                Ok(counts) => counts,
                Err(failed) => return Err(self.failure(&script, failed, position).await),
            };
            for ((_, meta), count) in script.statements.iter().zip(&counts) {
                if let Meta::One { table, what, row } = meta {
                    if *count != 1 {
                        return Err(Error::new(
                            ErrorKind::Conflict,
                            format!(
                                "no row of `{table}` matches the source row {} to {what}: the \
                                 target has diverged from the source",
                                shortened(row)
                            ),
                        ));
                    }
                }
            }
            all.extend(counts);
        }
        Ok(all)
    }

    /// The error for a failed statement of `script`, naming what failed.
    async fn failure(
        &mut self,
        script: &Script,
        failed: Failed,
        position: Option<&Position>,
    ) -> Error {
        let Failed { index, error } = failed;
        let Some((_, meta)) = script.statements.get(index) else {
            return map_error(error, "applying changes");
        };
        match meta {
            Meta::Plain(what) => map_error(error, what),
            Meta::One { table, what, .. } => {
                map_error(error, format!("applying a row {what} to `{table}`"))
            }
            Meta::Position => {
                let Some(position) = position else {
                    return map_error(error, "recording the applied position");
                };
                if !is_position_conflict(&error) {
                    return map_error(error, format!("recording position `{position}`"));
                }
                let expected = self.applied.clone();
                // What is recorded now, read after the refused transaction is gone.
                let _ = self.conn.query_drop("ROLLBACK").await;
                self.open = false;
                let found: Option<String> = self
                    .conn
                    .exec_first(SELECT_POSITION, (self.task.as_str(),))
                    .await
                    .ok()
                    .flatten();
                let found = found.and_then(|j| parse_position(&self.task, &j).ok());
                if found.is_some() {
                    self.applied.clone_from(&found);
                }
                position_conflict(
                    error,
                    &self.task,
                    found.as_ref(),
                    expected.as_ref(),
                    position,
                )
            }
            Meta::Rows {
                table,
                key_names,
                prefix,
                rows,
                keys,
            } => {
                let code = match &error {
                    mysql_async::Error::Server(s) => s.code,
                    _ => 0,
                };
                if !VALUE_ERRORS.contains(&code) {
                    return map_error(error, format!("writing rows of `{table}`"));
                }
                // The row the server names, else the one that fails on its own.
                let (row, error) = match row_number(&error) {
                    Some(n) if n >= 1 && n <= rows.len() => (Some(n - 1), error),
                    _ if rows.len() == 1 => (Some(0), error),
                    _ => {
                        let prefix = &script.sql[prefix.clone()];
                        let mut found = (None, error);
                        for (i, range) in rows.iter().enumerate() {
                            let single = format!("{prefix}{}", &script.sql[range.clone()]);
                            if let Err(e) = self.conn.query_drop(single).await {
                                found = (Some(i), e);
                                break;
                            }
                        }
                        found
                    }
                };
                row_error(
                    table,
                    key_names,
                    row.map(|i| keys[i].as_str()),
                    row.map(|i| &script.sql[rows[i].clone()]),
                    error,
                )
            }
        }
    }

    /// Whether a schema change at `judge` is already in the copy of the tables it touches
    /// (see [`crate::apply::schema_change_copied`]).
    fn schema_change_copied(&mut self, change: &SchemaChange, judge: &Position) -> Result<bool> {
        schema_change_copied(&mut self.copied_at, change, judge)
    }

    /// The schema change a killed run of the task was applying, if one is recorded.
    async fn unfinished(&mut self) -> Result<Option<Unfinished>> {
        let row: Option<(String, i64, u64, String, Option<u64>)> = self
            .conn
            .exec_first(SELECT_DDL, (self.task.as_str(),))
            .await
            .map_err(|e| map_error(e, "reading the schema change being applied"))?;
        row.map(|(position, step, connection_id, definitions, events)| {
            Ok(Unfinished {
                position: parse_position(&self.task, &position)?,
                step: usize::try_from(step).unwrap_or(0),
                connection_id,
                definitions,
                events,
            })
        })
        .transpose()
    }

    /// The definitions of the tables a schema change touches, as JSON.
    async fn definitions(&mut self, change: &SchemaChange) -> Result<String> {
        let mut out = Definitions::new();
        for table in change.tables.iter().chain(&change.created) {
            let mut sql = String::from("SHOW CREATE TABLE ");
            literal::push_ident(&mut sql, &table.schema);
            sql.push('.');
            literal::push_ident(&mut sql, &table.name);
            let definition = match self.conn.query_first::<(String, String), _>(sql).await {
                Ok(row) => row.map(|(_, d)| d),
                Err(mysql_async::Error::Server(e)) if e.code == 1146 => None,
                Err(e) => return Err(map_error(e, format!("reading the definition of `{table}`"))),
            };
            out.insert(table.to_string(), definition);
        }
        serde_json::to_string(&out)
            .map_err(|e| Error::internal("cannot encode table definitions").with_source(e))
    }

    /// Waits until session `id` of a killed run runs no statement any more (a DDL statement
    /// goes on on the server after its client is gone).
    async fn wait_for_session(&mut self, id: u64) -> Result<()> {
        if id == self.connection_id {
            return Ok(());
        }
        let started = Instant::now();
        let mut told = Instant::now();
        loop {
            let busy: Option<u64> = self
                .conn
                .exec_first(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                     WHERE ID = ? AND COMMAND NOT IN ('Sleep', 'Killed')",
                    (id,),
                )
                .await
                .map_err(|e| map_error(e, "reading the target's sessions"))?;
            if busy.unwrap_or(0) == 0 {
                return Ok(());
            }
            if told.elapsed() >= Duration::from_secs(10) {
                told = Instant::now();
                tracing::info!(
                    session = id,
                    waited_s = started.elapsed().as_secs(),
                    "waiting for an earlier run's ddl statement to end"
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Applies a schema change with statements, at `at` (the end of its source
    /// transaction; for a change inside a source transaction, its own position, with
    /// `within` the number of the transaction's events before it); see the type docs.
    /// `resumed` is the record of a killed run that was applying it.
    async fn schema_change(
        &mut self,
        change: &SchemaChange,
        at: &Position,
        within: Option<u64>,
        resumed: Option<Unfinished>,
    ) -> Result<()> {
        if change.statements.is_empty() {
            if let Some(catalog) = &change.catalog {
                self.schema = Some(catalog.clone());
            }
            return Ok(());
        }
        let first_ddl = change
            .statements
            .iter()
            .position(|s| !is_session_setting(s))
            .unwrap_or(change.statements.len());
        // 1. What comes before commits, with the record of the change.
        let (from_step, before) = match &resumed {
            Some(u) => (u.step, Some(u.definitions.clone())),
            None => (first_ddl, None),
        };
        self.begin();
        self.flush_tables();
        if self.batch.has_checks() {
            self.send(None).await?;
        }
        let committed = self.last_end.clone();
        if let Some(end) = &committed {
            if let Some(catalog) = self.schema.take() {
                let sql = upsert_schema_sql(&self.task, &catalog, end)?;
                self.batch
                    .current()
                    .push(&sql, Meta::Plain("recording the source schema".into()));
            }
        }
        let definitions = match &before {
            Some(d) => d.clone(),
            None => self.definitions(change).await?,
        };
        if resumed.is_none() {
            let sql = record_ddl_sql(
                &self.task,
                at,
                from_step,
                self.connection_id,
                &definitions,
                within,
            )?;
            self.batch
                .current()
                .push(&sql, Meta::Plain("recording the schema change".into()));
        }
        if let Some(end) = &committed {
            if self.applied.as_ref() != Some(end) {
                let cas = advance_position_sql(&self.task, self.applied.as_ref(), end)?;
                self.batch.current().push(&cas, Meta::Position);
            }
        }
        self.batch
            .current()
            .push("COMMIT", Meta::Plain("committing".into()));
        self.send(committed.as_ref()).await?;
        self.open = false;
        if let Some(end) = committed {
            self.applied = Some(end);
        }
        self.last_end = None;
        self.tables.clear();
        if within.is_some() {
            self.tx_record = true;
        }

        // 2. The statements: session settings always, each DDL statement recorded first.
        if let Some(u) = &resumed {
            self.wait_for_session(u.connection_id).await?;
        }
        for (i, statement) in change.statements.iter().enumerate() {
            let what = || {
                format!(
                    "running `{}` (for source ddl `{}`)",
                    short_sql(statement),
                    short_sql(&change.source_sql)
                )
            };
            if is_session_setting(statement) {
                self.conn
                    .query_drop(statement.as_str())
                    .await
                    .map_err(|e| map_error(e, what()))?;
                continue;
            }
            if i < from_step {
                continue;
            }
            if i == from_step {
                // Recorded with what came before; after a kill, judged by the definitions.
                if resumed.is_some() && differ(&definitions, &self.definitions(change).await?) {
                    tracing::info!(task = %self.task, statement = %short_sql(statement),
                        "ddl found applied by an earlier run: not run again");
                    continue;
                }
            } else {
                let now = self.definitions(change).await?;
                let sql = record_ddl_sql(&self.task, at, i, self.connection_id, &now, within)?;
                self.conn
                    .query_drop(sql)
                    .await
                    .map_err(|e| map_error(e, "recording the schema change"))?;
            }
            tracing::debug!(task = %self.task, statement = %short_sql(statement), "applying ddl");
            self.conn
                .query_drop(statement.as_str())
                .await
                .map_err(|e| ddl_error(e, &change.tables, what()))?;
        }

        if let Some(events) = within {
            // 3. Inside a source transaction: recorded as done; the schema, the position
            // and the record's removal commit with the transaction's end.
            let now = self.definitions(change).await?;
            let sql = record_ddl_sql(
                &self.task,
                at,
                change.statements.len(),
                self.connection_id,
                &now,
                Some(events),
            )?;
            self.conn
                .query_drop(sql)
                .await
                .map_err(|e| map_error(e, "recording the schema change"))?;
            if let Some(catalog) = &change.catalog {
                self.tx_schema = Some(catalog.clone());
            }
            self.begin();
            return Ok(());
        }

        // 3. The session's own mode again; the schema, the position and the record's
        // removal commit together.
        self.conn
            .query_drop(SQL_MODE)
            .await
            .map_err(|e| map_error(e, "setting up the apply session"))?;
        self.begin();
        if let Some(catalog) = change.catalog.clone().or_else(|| self.schema.take()) {
            let sql = upsert_schema_sql(&self.task, &catalog, at)?;
            self.batch
                .current()
                .push(&sql, Meta::Plain("recording the source schema".into()));
        }
        self.schema = None;
        let cas = advance_position_sql(&self.task, self.applied.as_ref(), at)?;
        let script = self.batch.current();
        script.push(
            &clear_ddl_sql(&self.task),
            Meta::Plain("recording the schema change".into()),
        );
        script.push(&cas, Meta::Position);
        script.push("COMMIT", Meta::Plain("committing".into()));
        self.send(Some(at)).await?;
        self.open = false;
        self.applied = Some(at.clone());
        // The rest of the batch goes on in a new transaction.
        self.begin();
        Ok(())
    }
}

/// The error of a DDL statement: [`ErrorKind::Value`] naming the table and the column when
/// a value the target holds does not fit a changed column (strict mode), else classified.
fn ddl_error(error: mysql_async::Error, tables: &[TableName], what: String) -> Error {
    let named = match &error {
        mysql_async::Error::Server(s) if VALUE_ERRORS.contains(&s.code) && s.code != 1062 => {
            column_named(&s.message).map(|c| (c, s.message.clone()))
        }
        _ => None,
    };
    let Some((column, message)) = named else {
        return map_error(error, what);
    };
    let table = tables
        .first()
        .map_or_else(|| "the table".to_string(), |t| format!("`{t}`"));
    Error::new(
        ErrorKind::Value,
        format!(
            "the target cannot hold the values of column `{column}` of {table} after the \
             change: {message} ({what})"
        ),
    )
    .with_source(error)
}

/// Whether a target statement only sets session variables (run again by every run).
fn is_session_setting(sql: &str) -> bool {
    let head: String = sql.trim_start().chars().take(4).collect();
    head.eq_ignore_ascii_case("SET ")
}

/// Whether any table's definition differs between two recorded sets.
fn differ(before: &str, now: &str) -> bool {
    let parse = |s: &str| serde_json::from_str::<Definitions>(s).unwrap_or_default();
    let (before, now) = (parse(before), parse(now));
    before
        .iter()
        .any(|(table, def)| now.get(table) != Some(def))
}

/// The row number a server error names (`… at row 3`).
fn row_number(error: &mysql_async::Error) -> Option<usize> {
    let mysql_async::Error::Server(s) = error else {
        return None;
    };
    let at = s.message.rfind(" at row ")?;
    s.message[at + 8..]
        .trim()
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()
}

/// The column a server error names (`… for column 'c' …`, ``… column `db`.`t`.`c` …``).
fn column_named(message: &str) -> Option<String> {
    let at = message.find("column ")?;
    let rest = &message[at + 7..];
    if let Some(quoted) = rest.strip_prefix('\'') {
        return quoted.split('\'').next().map(str::to_string);
    }
    if rest.starts_with('`') {
        let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
        let name = rest[..end].rsplit('.').next()?;
        return Some(name.trim_matches('`').to_string());
    }
    None
}

/// The error for a row of `table` the server refused: [`ErrorKind::Value`] (a value the
/// column cannot hold) or [`ErrorKind::Conflict`] (a duplicate key), naming the table, the
/// column and the row's key (`key`; for a table without a key, the row's values `row`).
fn row_error(
    table: &TableName,
    key_names: &str,
    key: Option<&str>,
    row: Option<&str>,
    error: mysql_async::Error,
) -> Error {
    let (code, message) = match &error {
        mysql_async::Error::Server(s) => (s.code, s.message.clone()),
        other => (0, other.to_string()),
    };
    let at = match (key, row) {
        (Some(k), _) if !k.is_empty() => format!("at key ({key_names}) = {}", shortened(k)),
        (_, Some(r)) => format!("in row {} (table has no key)", shortened(r)),
        _ => "in one of the rows written".to_string(),
    };
    if code == 1062 {
        return Error::new(
            ErrorKind::Conflict,
            format!(
                "target table `{table}` already holds a row with the key of the row {at}: the \
                 target has diverged from the source ({message})"
            ),
        )
        .with_source(error);
    }
    let column =
        column_named(&message).map_or_else(|| "a column".to_string(), |c| format!("column `{c}`"));
    Error::new(
        ErrorKind::Value,
        format!("the target cannot hold the value of {column} of `{table}` {at}: {message}"),
    )
    .with_source(error)
}

/// Turns the session's binlog off, or fails naming the privilege it needs.
async fn set_binlog_off(conn: &mut Conn) -> Result<()> {
    match conn.query_drop("SET SESSION sql_log_bin = 0").await {
        Ok(()) => Ok(()),
        Err(mysql_async::Error::Server(e)) if [1227, 1044, 1045, 1142].contains(&e.code) => {
            Err(Error::new(
                ErrorKind::Privilege,
                format!(
                    "the target account may not keep the applied changes out of the target's \
                     binlog (SET SESSION sql_log_bin = 0: {}): grant it BINLOG ADMIN (MariaDB) \
                     or SYSTEM_VARIABLES_ADMIN (MySQL), or set incremental.target_binlog = true",
                    e.message
                ),
            ))
        }
        Err(e) => Err(map_error(e, "turning the binlog off for the apply session")),
    }
}

/// Whether the target account may turn its session's binlog off; `Ok(None)` when it may,
/// else the server's refusal.
pub(crate) async fn binlog_off_refused(conn: &mut Conn) -> Result<Option<String>> {
    match conn
        .query_drop("SET SESSION sql_log_bin = 0; SET SESSION sql_log_bin = 1")
        .await
    {
        Ok(()) => Ok(None),
        Err(mysql_async::Error::Server(e)) if [1227, 1044, 1045, 1142].contains(&e.code) => {
            Ok(Some(e.message.clone()))
        }
        Err(e) => Err(map_error(
            e,
            "checking whether the binlog can be turned off",
        )),
    }
}

#[dts_core::async_trait]
impl ApplySink for MySqlApplySink {
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
