//! What the apply sinks of every target engine share: reading a batch as source
//! transactions, and comparing positions in one log.

use std::collections::HashMap;

use dts_core::{
    Change, ChangeEvent, Error, ErrorKind, Position, Result, RowImage, SchemaChange, TableName,
};

/// Whether `a` is at or before `b` in the same log.
pub(crate) fn at_or_before(a: &Position, b: &Position) -> bool {
    a.log_cmp(b).is_some_and(|o| o.is_le())
}

/// Splits a batch into transactions, each ending with a commit or DDL event.
pub(crate) fn split_transactions(events: &[ChangeEvent]) -> Result<Vec<&[ChangeEvent]>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, e) in events.iter().enumerate() {
        if e.change.ends_transaction() {
            out.push(&events[start..=i]);
            start = i + 1;
        }
    }
    if start != events.len() {
        return Err(Error::internal(
            "a batch of changes ends inside a transaction",
        ));
    }
    Ok(out)
}

/// One row change, as the sinks write it.
pub(crate) enum RowOp<'a> {
    Insert(&'a RowImage),
    Update(&'a RowImage, &'a RowImage),
    Delete(&'a RowImage),
}

impl<'a> RowOp<'a> {
    /// The row change `change` is, with its table; `None` for every other change.
    pub(crate) fn of(change: &'a Change) -> Option<(&'a TableName, Self)> {
        match change {
            Change::Insert { table, row } => Some((table, Self::Insert(row))),
            Change::Update {
                table,
                before,
                after,
            } => Some((table, Self::Update(before, after))),
            Change::Delete { table, row } => Some((table, Self::Delete(row))),
            _ => None,
        }
    }
}

/// Whether a row change or truncate of a transaction judged by `judge` is skipped because
/// the full load's copy of its table (copied at `copied_at`) is later and holds it, and
/// whether it is applied idempotently (`in_window`: the transaction lies in the window in
/// which a resumed full load's later snapshot may already hold it; a table copied whole
/// never is). Other changes pass as they are.
pub(crate) fn judge_copied(
    change: &Change,
    judge: &Position,
    copied_at: &HashMap<TableName, Position>,
    in_window: bool,
) -> (bool, bool) {
    match change {
        Change::Insert { table, .. }
        | Change::Update { table, .. }
        | Change::Delete { table, .. }
        | Change::Truncate { table } => match copied_at.get(table) {
            Some(at) => (at_or_before(judge, at), false),
            None => (false, in_window),
        },
        _ => (false, in_window),
    }
}

/// Whether a schema change at `judge` is already in the copy of the tables it touches:
/// it touches a table copied (`copied_at`: the full load's snapshot position of each table
/// copied whole) from a snapshot at or after `judge`. Such a change is skipped, as that
/// table's row changes are: the copy holds the table as the source had it at the copy's
/// snapshot (a resumed run stops when the schema of a table still to be copied differs
/// from the one the target was built from), so the statements, which change the table's
/// definition or its data, must not run on it. The tracked source schema still follows the
/// change. Tables the change creates (or renames to) are then treated as copied at the
/// latest of those snapshots, so what the log does to them before it is skipped too.
///
/// # Errors
///
/// A change that also touches a table without such a copy: it cannot be applied in part.
pub(crate) fn schema_change_copied(
    copied_at: &mut HashMap<TableName, Position>,
    change: &SchemaChange,
    judge: &Position,
) -> Result<bool> {
    let inside = |copied_at: &HashMap<TableName, Position>, t: &TableName| {
        copied_at
            .get(t)
            .filter(|at| at_or_before(judge, at))
            .cloned()
    };
    let copies: Vec<Position> = change
        .tables
        .iter()
        .chain(&change.created)
        .filter_map(|t| inside(copied_at, t))
        .collect();
    let Some(last) = copies
        .iter()
        .max_by(|a, b| a.log_cmp(b).unwrap_or(std::cmp::Ordering::Equal))
        .cloned()
    else {
        return Ok(false);
    };
    let outside: Vec<String> = change
        .tables
        .iter()
        .filter(|t| inside(copied_at, t).is_none())
        .map(|t| format!("`{t}`"))
        .collect();
    if !outside.is_empty() {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "source ddl `{}` at `{judge}` changes tables copied after it and {}, copied \
                 before it: it can be neither applied nor skipped; run it as separate \
                 statements, or migrate again from the start",
                dts_schema::short_sql(&change.source_sql),
                outside.join(", ")
            ),
        ));
    }
    let created: Vec<TableName> = change
        .created
        .iter()
        .filter(|t| inside(copied_at, t).is_none())
        .cloned()
        .collect();
    for t in created {
        copied_at.insert(t, last.clone());
    }
    Ok(true)
}

/// The error for a change no sink applies: a rolled-back transaction, DDL that did not
/// pass through the change mapper, a kind of change this version does not know.
pub(crate) fn unexpected_change(event: &ChangeEvent) -> Error {
    match &event.change {
        Change::Rollback => Error::internal(format!(
            "a rolled-back source transaction reached the sink (at `{}`)",
            event.position
        )),
        Change::Ddl { sql, .. } => Error::internal(format!(
            "source ddl `{}` reached the sink untranslated: changes must pass through the \
             task's change mapper",
            dts_schema::short_sql(sql)
        )),
        _ => Error::new(
            ErrorKind::Unsupported,
            format!(
                "a change of an unsupported kind at position `{}`",
                event.position
            ),
        ),
    }
}

/// A source transaction arriving in parts (`ApplySink::apply_part`).
#[derive(Debug)]
pub(crate) struct Partial {
    /// The position of its first event, which it is judged by: the applied position, the
    /// copy positions and the idempotence window all lie between transactions, so it is at
    /// or before one of them exactly when its end is.
    pub(crate) first: Position,
    /// Whether it is already applied: its parts and rest are ignored.
    pub(crate) skip: bool,
}

/// For a part of a source transaction (`events`, none of which ends it): the position the
/// part is judged by, or `None` when there is nothing to apply (no events, or a
/// transaction the target already holds, as of `applied`). Starts `partial` with the first
/// part.
///
/// # Errors
///
/// A part that holds the end of a transaction.
pub(crate) fn part_judge(
    events: &[ChangeEvent],
    partial: &mut Option<Partial>,
    applied: Option<&Position>,
) -> Result<Option<Position>> {
    if let Some(end) = events.iter().find(|e| e.change.ends_transaction()) {
        return Err(Error::internal(format!(
            "a part of a transaction holds the end of a transaction (at `{}`)",
            end.position
        )));
    }
    let Some(first) = events.first() else {
        return Ok(None);
    };
    let partial = partial.get_or_insert_with(|| Partial {
        first: first.position.clone(),
        skip: applied.is_some_and(|a| at_or_before(&first.position, a)),
    });
    Ok((!partial.skip).then(|| partial.first.clone()))
}

/// What of a batch is to be applied.
#[derive(Debug, Default)]
pub(crate) struct Fresh<'a> {
    /// The rest of a transaction applied in parts, with the position it is judged by.
    pub(crate) continued: Option<(&'a [ChangeEvent], Position)>,
    /// The whole transactions the target does not hold yet.
    pub(crate) transactions: Vec<&'a [ChangeEvent]>,
    /// Whether the parts of a transaction applied so far are to be rolled back: the
    /// target held it after all (its parts were applied only if the source's positions
    /// are out of order), so nothing of it stays.
    pub(crate) abandon_parts: bool,
}

impl Fresh<'_> {
    /// Whether nothing is to be applied.
    pub(crate) fn is_empty(&self) -> bool {
        self.continued.is_none() && self.transactions.is_empty()
    }
}

/// Splits a batch into transactions and keeps those the target does not hold yet (as of
/// `applied`), taking the transaction applied in parts (`partial`) with its rest.
///
/// # Errors
///
/// A batch that ends inside a transaction, or one with no rest for the transaction in
/// parts.
pub(crate) fn fresh_transactions<'a>(
    events: &'a [ChangeEvent],
    partial: &mut Option<Partial>,
    applied: Option<&Position>,
) -> Result<Fresh<'a>> {
    let transactions = split_transactions(events)?;
    if transactions.is_empty() && partial.is_some() {
        return Err(Error::internal(
            "no rest given for a transaction applied in parts",
        ));
    }
    let is_fresh = |t: &&[ChangeEvent]| {
        let end = &t[t.len() - 1].position;
        !applied.is_some_and(|a| at_or_before(end, a))
    };
    let mut transactions = transactions.into_iter();
    let mut out = Fresh::default();
    if let Some(partial) = partial.take() {
        let rest = transactions.next().unwrap_or_default();
        if !partial.skip && is_fresh(&rest) {
            out.continued = Some((rest, partial.first));
        } else {
            out.abandon_parts = true;
        }
    }
    out.transactions = transactions.filter(is_fresh).collect();
    Ok(out)
}

/// How long a new apply session waits for a statement still running in an earlier
/// session of the same task (a killed run's last `COMMIT`, which the server finishes after
/// the client is gone) before it gives up.
pub(crate) const EARLIER_SESSION_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// How long an earlier session of the same task may sit idle inside a transaction before a
/// new apply session ends it (its client is gone or cut off: no `COMMIT` will come, and it
/// holds the row locks of what it wrote).
pub(crate) const EARLIER_SESSION_IDLE_LIMIT: std::time::Duration =
    std::time::Duration::from_secs(5);

/// How long a new apply session waits for an earlier one that holds the task's tag while
/// idle outside a transaction (a connection being closed) to go, before it goes on without
/// the tag.
pub(crate) const EARLIER_SESSION_IDLE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What an earlier apply session of the same task is doing, as the server shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EarlierSession {
    /// None holds the task's apply tag (this session has it now).
    None,
    /// It is idle outside a transaction, or cannot be seen: nothing of it is in flight.
    Idle,
    /// It is running a statement (a killed run's last `COMMIT`, say): wait for it.
    Busy,
    /// It is idle inside a transaction, for this long.
    IdleInTransaction(std::time::Duration),
}

/// A target engine's view of the sessions applying a task's changes, for
/// [`wait_for_earlier_session`].
pub(crate) trait ApplySessions {
    /// Tags this session as the task's apply session if no other session has the tag, and
    /// otherwise says what the session holding it does, and names it (for the log and for
    /// [`ApplySessions::end`]).
    async fn look(&mut self) -> Result<(EarlierSession, String)>;
    /// Ends the session `holder` names (its transaction is rolled back).
    async fn end(&mut self, holder: &str) -> Result<()>;
}

/// The barrier every apply sink passes before it reads the applied position: an earlier
/// session of the task whose last transaction is still being committed (a run killed just
/// after sending `COMMIT`: the server commits it after the client is gone) would move the
/// position after it was read, and its rows would then be applied a second time (for a
/// table without a key, twice over). Waits while the session holding the task's apply tag
/// runs a statement, ends it when it sits idle inside a transaction for longer than
/// [`EARLIER_SESSION_IDLE_LIMIT`] (no `COMMIT` will come from it), and returns once this
/// session has the tag, or the holder stayed idle outside a transaction for
/// [`EARLIER_SESSION_IDLE_WAIT`].
pub(crate) async fn wait_for_earlier_session(
    task: &str,
    sessions: &mut impl ApplySessions,
) -> Result<()> {
    let started = std::time::Instant::now();
    let mut idle_since = None;
    loop {
        let (state, holder) = sessions.look().await?;
        if state != EarlierSession::Idle {
            idle_since = None;
        }
        match state {
            EarlierSession::None => return Ok(()),
            // A session closing (a sink just dropped) still holds the tag for a moment; one
            // that stays idle is another live sink of the task, with nothing in flight.
            EarlierSession::Idle => {
                if idle_since
                    .get_or_insert_with(std::time::Instant::now)
                    .elapsed()
                    >= EARLIER_SESSION_IDLE_WAIT
                {
                    return Ok(());
                }
            }
            EarlierSession::IdleInTransaction(idle) if idle >= EARLIER_SESSION_IDLE_LIMIT => {
                tracing::warn!(
                    task,
                    session = %holder,
                    "ending an earlier apply session of the task left idle inside a transaction"
                );
                sessions.end(&holder).await?;
            }
            EarlierSession::Busy | EarlierSession::IdleInTransaction(_) => {}
        }
        if started.elapsed() > EARLIER_SESSION_PATIENCE {
            return Err(Error::new(
                dts_core::ErrorKind::Conflict,
                format!(
                    "an earlier session of task `{task}` ({holder}) is still writing to the \
                     target after {} s: another process may be running the task; stop it \
                     (`dts status` shows who runs it)",
                    EARLIER_SESSION_PATIENCE.as_secs()
                ),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
