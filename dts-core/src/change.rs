//! Change capture: the changes a source's log delivers, and the traits that read and apply
//! them.
//!
//! Delivery is at-least-once: after a crash a source resumes from the last position the
//! target acknowledged, so a sink must apply a transaction and record its end position in
//! one target transaction, and skip transactions at or before the recorded position.

use async_trait::async_trait;

use crate::error::Result;
use crate::position::Position;
use crate::schema::TableName;
use crate::value::Value;

/// One row image: values of the source table's columns in the source's column order,
/// as the log carries them (binlog images include every column with `binlog_row_image=FULL`).
#[derive(Debug, Clone, PartialEq)]
pub struct RowImage {
    /// Source column names, in order (from the log's table metadata).
    pub columns: std::sync::Arc<Vec<String>>,
    /// The values, one per column.
    pub values: Vec<Value>,
}

impl RowImage {
    /// The key of this row as `(a=1, b='x')`, from the values of the `key` columns, long
    /// values shortened (see [`Value::short`]); `(table has no key)` when none of the key
    /// columns is in the image.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use dts_core::{RowImage, Value};
    ///
    /// let image = RowImage {
    ///     columns: Arc::new(vec!["id".into(), "name".into()]),
    ///     values: vec![Value::Int(7), Value::Text("x".into())],
    /// };
    /// assert_eq!(image.key_text(&["id".into()]), "(id=7)");
    /// assert_eq!(image.key_text(&[]), "(table has no key)");
    /// ```
    pub fn key_text(&self, key: &[String]) -> String {
        let parts: Vec<String> = key
            .iter()
            .filter_map(|k| {
                let i = self.columns.iter().position(|c| c == k)?;
                Some(format!("{k}={}", self.values.get(i)?.short()))
            })
            .collect();
        if parts.is_empty() {
            return "(table has no key)".into();
        }
        format!("({})", parts.join(", "))
    }
}

/// A change to one table or to the schema, in source commit order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Change {
    /// A transaction begins.
    Begin,
    /// A row was inserted.
    Insert {
        /// The table.
        table: TableName,
        /// The new row.
        row: RowImage,
    },
    /// A row was updated (the key may have changed).
    Update {
        /// The table.
        table: TableName,
        /// The row before.
        before: RowImage,
        /// The row after. It may carry fewer columns than the row before: a source that
        /// does not send values an update left as they were (PostgreSQL's unchanged
        /// TOASTed values) leaves those columns out, and the target keeps its own values
        /// of them.
        after: RowImage,
    },
    /// A row was deleted.
    Delete {
        /// The table.
        table: TableName,
        /// The deleted row.
        row: RowImage,
    },
    /// A table was truncated.
    Truncate {
        /// The table.
        table: TableName,
    },
    /// A schema change, as the source's SQL text, with the default schema and the SQL mode
    /// it ran in.
    Ddl {
        /// The default database of the session that ran it.
        schema: Option<String>,
        /// The statement.
        sql: String,
        /// The session's SQL mode, which decides how the text reads (`"name"` is an
        /// identifier under `ANSI_QUOTES`, `\` is an ordinary character under
        /// `NO_BACKSLASH_ESCAPES`).
        sql_mode: SqlMode,
    },
    /// Schema changes translated for the target (what a [`crate::ChangeMapper`] makes of a
    /// [`Change::Ddl`] or of a [`Change::Relation`] that differs from the tracked schema);
    /// ends a transaction as `Ddl` does, unless it comes from a relation description
    /// ([`SchemaChange::within_transaction`]).
    Schema(Box<SchemaChange>),
    /// A table's columns as the source's log describes them now, inside a transaction,
    /// before that table's next row change: PostgreSQL's relation message, which logical
    /// decoding sends instead of DDL (the first time a run meets the table, and after its
    /// definition changed). It does not end the transaction. A change mapper compares it
    /// with the tracked schema: the same columns pass as nothing, others become a
    /// [`Change::Schema`] (or stop replication, naming what cannot be followed).
    Relation {
        /// The table.
        table: crate::schema::TableName,
        /// Its replicated columns, in order (generated columns are not replicated).
        columns: Vec<RelationColumn>,
    },
    /// A transaction committed; `position` is where reading resumes after it.
    Commit,
    /// A transaction rolled back: none of its changes happened (the source logs such a
    /// transaction when it also changed a non-transactional table). Ends the transaction.
    Rollback,
}

/// A MySQL session's `sql_mode`, as the server's bit mask (the binlog's query events carry
/// it); [`SqlMode::default`] is the empty mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SqlMode(u64);

impl SqlMode {
    /// `"…"` quotes identifiers, not strings.
    pub const ANSI_QUOTES: SqlMode = SqlMode(1 << 2);
    /// A backslash in a string is an ordinary character, not an escape.
    pub const NO_BACKSLASH_ESCAPES: SqlMode = SqlMode(1 << 20);

    /// The mode of a bit mask as the server stores it (`@@sql_mode + 0`).
    pub const fn from_bits(bits: u64) -> Self {
        SqlMode(bits)
    }

    /// The bit mask.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: SqlMode) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether `"…"` quotes identifiers.
    pub const fn ansi_quotes(self) -> bool {
        self.contains(Self::ANSI_QUOTES)
    }

    /// Whether a backslash in a string is an ordinary character.
    pub const fn no_backslash_escapes(self) -> bool {
        self.contains(Self::NO_BACKSLASH_ESCAPES)
    }
}

impl std::ops::BitOr for SqlMode {
    type Output = SqlMode;

    fn bitor(self, other: SqlMode) -> SqlMode {
        SqlMode(self.0 | other.0)
    }
}

impl Change {
    /// Whether this event ends a source transaction: a commit, or a schema change (which
    /// commits implicitly) other than one made of a relation description.
    pub fn ends_transaction(&self) -> bool {
        match self {
            Change::Commit | Change::Rollback | Change::Ddl { .. } => true,
            Change::Schema(change) => !change.within_transaction,
            _ => false,
        }
    }
}

/// One column of a [`Change::Relation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    /// The column's name.
    pub name: String,
    /// Its type as the source names it (PostgreSQL's `format_type`, e.g. `numeric(12,2)`,
    /// `text[]`, `public.mood`).
    pub data_type: String,
    /// Whether it is part of the table's replica identity.
    pub key: bool,
    /// Its attribute number in the source's catalog when the description was read
    /// (PostgreSQL's `attnum`, which a rename keeps and a new column does not reuse);
    /// `None` when the column was no longer there.
    pub ordinal: Option<u32>,
    /// Whether it is declared `NOT NULL` (read with [`RelationColumn::ordinal`]).
    pub not_null: bool,
    /// Its default expression, as the source's catalog prints it (read with
    /// [`RelationColumn::ordinal`]).
    pub default: Option<String>,
    /// For a column added with a default that was not evaluated per row (PostgreSQL's
    /// "fast default", `atthasmissing`), the value the rows already there hold, as its
    /// text; `None` otherwise. A column added with a volatile default was filled by a table
    /// rewrite, which the log does not carry: it has a default and no such value.
    pub missing: Option<String>,
}

/// A source schema change as the target applies it.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaChange {
    /// The source statement, for messages.
    pub source_sql: String,
    /// Target statements to run, in order, in the apply transaction (empty when the target
    /// needs none, or the task skips the statement).
    pub statements: Vec<String>,
    /// The source schema after the change, when it changed: the state store records it with
    /// the applied position, so a restart maps later changes with the right schema.
    pub catalog: Option<std::sync::Arc<crate::schema::Catalog>>,
    /// The target tables the change alters, drops or renames (by their name before it):
    /// tables that existed before it.
    pub tables: Vec<crate::schema::TableName>,
    /// The target tables the change creates, or renames tables to.
    pub created: Vec<crate::schema::TableName>,
    /// Whether the change sits inside a source transaction (it follows a relation
    /// description, [`Change::Relation`]): the target applies it in the open transaction,
    /// which goes on. A target that cannot change its schema inside a transaction refuses
    /// it, naming the change.
    pub within_transaction: bool,
}

/// A change with where it sits in the source log.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    /// The change.
    pub change: Change,
    /// The log position after this event: resuming there continues with the next event.
    /// For [`Change::Commit`] (and [`Change::Ddl`], which commits implicitly) this is the
    /// position to acknowledge.
    pub position: Position,
    /// The source's timestamp of the event, in seconds since the Unix epoch (for lag).
    pub timestamp: u32,
}

/// Reads changes from a source log, in commit order.
#[async_trait]
pub trait ChangeSource: Send {
    /// Waits for the next events and returns up to `max` of them (at least one), or an
    /// empty vector when `timeout` passes with nothing new. Only changes of selected tables
    /// (and DDL in selected databases) are returned; transaction boundaries are always kept.
    async fn next_events(
        &mut self,
        max: usize,
        timeout: std::time::Duration,
    ) -> Result<Vec<ChangeEvent>>;

    /// Records that the target has committed everything up to `position`, a position the
    /// sink recorded as applied (never one it has not committed). A source whose server
    /// keeps its log for the reader (a PostgreSQL replication slot) confirms it, so the
    /// server may release what comes before it; a source whose server keeps its log by its
    /// own rules (the binlog) has nothing to do.
    fn acknowledge(&mut self, position: &Position);
}

#[async_trait]
impl<S: ChangeSource + ?Sized> ChangeSource for Box<S> {
    async fn next_events(
        &mut self,
        max: usize,
        timeout: std::time::Duration,
    ) -> Result<Vec<ChangeEvent>> {
        (**self).next_events(max, timeout).await
    }

    fn acknowledge(&mut self, position: &Position) {
        (**self).acknowledge(position);
    }
}

/// Whether a change log carries the rows that foreign key actions (`ON DELETE CASCADE`,
/// `SET NULL`, `ON UPDATE CASCADE`…) changed, which decides who performs those actions
/// when the changes are applied elsewhere.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CascadeLogging {
    /// The log holds only the rows a statement changed itself; the actions' effects are
    /// missing and the target must perform them. MariaDB, and MySQL before 9.6, whose
    /// InnoDB runs the actions inside the storage engine.
    #[default]
    Unlogged,
    /// The log holds the rows the actions changed as changes of their own; the target
    /// must not perform them again. MySQL 9.6 and later, and PostgreSQL's logical decoding.
    Logged,
}

/// What one [`ApplySink::apply`] or [`ApplySink::apply_part`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Source transactions applied (a DDL statement counts as one); transactions the sink
    /// skipped because it had applied them before are not counted. A transaction that
    /// arrived in parts is counted by the [`ApplySink::apply`] call that commits it; parts
    /// count none.
    pub transactions: u64,
    /// Row changes applied by this call (inserts, updates and deletes), before any
    /// coalescing; for a transaction that arrived in parts, each call counts the row changes
    /// of its own events.
    pub rows: u64,
}

impl std::ops::AddAssign for ApplyStats {
    fn add_assign(&mut self, other: Self) {
        self.transactions += other.transactions;
        self.rows += other.rows;
    }
}

/// A target that applies source transactions.
///
/// Contract:
///
/// - **Atomic batches.** [`ApplySink::apply`] applies every event of the batch and records
///   `position` as applied in one target transaction: after a crash either all of the batch
///   and the new position are there, or none of it and the old position.
/// - **At-least-once delivery.** After a failure the engine resumes the source from
///   [`ApplySink::applied_position`], so events the sink never committed arrive again.
///   Transactions at or before the recorded position may arrive again too (a source that
///   resumes at a coarser point); a sink skips them.
/// - **Whole transactions.** A batch holds whole source transactions in commit order and
///   ends with a [`Change::Commit`](Change::Commit) or
///   [`Change::Ddl`](Change::Ddl) event, except that the first transaction of
///   a batch may be the rest of a transaction begun by [`ApplySink::apply_part`] calls.
/// - **Transactions in parts.** A source transaction larger than the engine's batch limit
///   is not held in memory whole. It arrives as one or more [`ApplySink::apply_part`]
///   calls, each with the next events of the transaction in order (the first call starts
///   at the transaction's first event; no part holds a `Commit` or `Ddl` event), followed
///   by one [`ApplySink::apply`] call whose events start with the rest of that
///   transaction (at least its `Commit`) and may go on with further whole transactions.
///   The sink applies the parts inside one target transaction, which the first part opens
///   and every part leaves open (no position recorded, nothing committed); the `apply`
///   continues in it, records its position and commits, so the transaction stays atomic.
///   No other call comes between the parts and that `apply`. The sink keeps its memory
///   bounded across parts (it writes rows out as it goes rather than collecting them).
/// - **Rollback of a partial transaction.** If a part or the closing `apply` fails, or a
///   call is abandoned, or the sink is dropped before the closing `apply` succeeds, the
///   open target transaction is rolled back: nothing of the partial transaction stays and
///   the recorded position is unchanged. Such a transaction is never continued: the caller
///   sends it again from its first event (the engine reconnects and resumes the source
///   from [`ApplySink::applied_position`], which reads the whole transaction again).
/// - **Skipping in parts.** The recorded position always ends a transaction, so a
///   transaction whose first event sits at or before it ended at or before it too: a sink
///   judges a transaction arriving in parts by its first event and, when it is already
///   applied, ignores its parts and the rest of it in the closing `apply` (counting nothing
///   for it).
/// - **Sequential calls.** Calls on one sink never overlap. A call may be abandoned (its
///   future dropped) only when the engine gives the sink up; the sink must then leave
///   nothing committed for that call.
#[async_trait]
pub trait ApplySink: Send {
    /// Applies `events` (whole source transactions, in commit order; the slice ends with a
    /// `Commit` or `Ddl` event) and records `position` as applied, in one target
    /// transaction: all or nothing. When [`ApplySink::apply_part`] left a transaction
    /// open, the slice starts with the rest of that transaction, and this call continues
    /// the open target transaction and commits it with everything else.
    ///
    /// # Errors
    ///
    /// Any [`crate::Error`]; the engine retries those for which
    /// [`crate::Error::is_retryable`] holds, after reconnecting, and stops on the others.
    /// A failure rolls back everything of the call, parts applied before included.
    async fn apply(&mut self, events: &[ChangeEvent], position: &Position) -> Result<ApplyStats>;

    /// Applies `events`, the next part of one source transaction that has not ended yet
    /// (none of them is a `Commit` or `Ddl` event), in a target transaction that stays
    /// open: the first part of a transaction opens it, later parts continue it, and the
    /// following [`ApplySink::apply`] call finishes it, records the position and commits.
    /// Nothing is committed and no position is recorded here. Returns the row changes
    /// applied, with no transaction counted. A transaction whose first event sits at or
    /// before the recorded position is already applied: its parts are ignored.
    ///
    /// # Errors
    ///
    /// As for [`ApplySink::apply`]. After an error the partial transaction is rolled back
    /// and must not be continued (see the trait's contract).
    async fn apply_part(&mut self, events: &[ChangeEvent]) -> Result<ApplyStats>;

    /// The position recorded by the last successful [`ApplySink::apply`] (or by whoever set
    /// up the task, e.g. the snapshot's position), if any. The engine calls it only between
    /// transactions; a sink rolls back a partially applied transaction it is called in the
    /// middle of.
    ///
    /// # Errors
    ///
    /// Any [`crate::Error`], classified as for [`ApplySink::apply`].
    async fn applied_position(&mut self) -> Result<Option<Position>>;
}

#[async_trait]
impl<K: ApplySink + ?Sized> ApplySink for Box<K> {
    async fn apply(&mut self, events: &[ChangeEvent], position: &Position) -> Result<ApplyStats> {
        (**self).apply(events, position).await
    }

    async fn apply_part(&mut self, events: &[ChangeEvent]) -> Result<ApplyStats> {
        (**self).apply_part(events).await
    }

    async fn applied_position(&mut self) -> Result<Option<Position>> {
        (**self).applied_position().await
    }
}
