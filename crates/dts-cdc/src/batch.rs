//! Accumulating events into batches of whole transactions.

use dts_core::{Change, ChangeEvent, Position};
use tokio::time::Instant;

/// Whether an event ends a source transaction: a commit, or a DDL statement (which commits
/// implicitly).
pub(crate) fn ends_transaction(change: &Change) -> bool {
    matches!(change, Change::Commit | Change::Ddl { .. })
}

/// Whether an event is a row change.
pub(crate) fn is_row_change(change: &Change) -> bool {
    matches!(
        change,
        Change::Insert { .. } | Change::Update { .. } | Change::Delete { .. }
    )
}

/// Events read from the source and not yet applied: whole transactions first (the complete
/// part, which may be applied), then at most one transaction still being read.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    events: Vec<ChangeEvent>,
    /// Number of leading events that form whole transactions.
    complete: usize,
    /// Row changes in the complete part.
    complete_rows: usize,
    /// Row changes in the open transaction.
    open_rows: usize,
    /// When the oldest pending event arrived.
    first_at: Option<Instant>,
    /// Whole transactions dropped because they were at or before the applied position.
    skipped: u64,
}

impl Pending {
    /// Appends one event read from the source. A transaction that ends at or before
    /// `applied` (a source resuming at a coarser point than the sink recorded) is dropped
    /// whole when its end arrives.
    pub(crate) fn push(&mut self, event: ChangeEvent, applied: Option<&Position>, now: Instant) {
        if self.events.is_empty() {
            self.first_at = Some(now);
        }
        if is_row_change(&event.change) {
            self.open_rows += 1;
        }
        let ends = ends_transaction(&event.change);
        self.events.push(event);
        if !ends {
            return;
        }
        let end = &self.events[self.events.len() - 1].position;
        let seen = applied.is_some_and(|a| end.log_cmp(a).is_some_and(|o| o.is_le()));
        if seen {
            self.events.truncate(self.complete);
            self.skipped += 1;
            if self.events.is_empty() {
                self.first_at = None;
            }
        } else {
            self.complete = self.events.len();
            self.complete_rows += self.open_rows;
        }
        self.open_rows = 0;
    }

    /// Whether any whole transaction is waiting.
    pub(crate) fn has_complete(&self) -> bool {
        self.complete > 0
    }

    /// Whether nothing at all is pending.
    pub(crate) fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Row changes in the whole transactions waiting.
    pub(crate) fn complete_rows(&self) -> usize {
        self.complete_rows
    }

    /// The end position of the last whole transaction waiting.
    pub(crate) fn last_complete_position(&self) -> Option<&Position> {
        self.complete
            .checked_sub(1)
            .map(|i| &self.events[i].position)
    }

    /// When the oldest pending event arrived.
    pub(crate) fn first_at(&self) -> Option<Instant> {
        self.first_at
    }

    /// Transactions dropped so far as already applied.
    pub(crate) fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Removes and returns the whole transactions, leaving the open one.
    pub(crate) fn take_complete(&mut self, now: Instant) -> Vec<ChangeEvent> {
        let rest = self.events.split_off(self.complete);
        let batch = std::mem::replace(&mut self.events, rest);
        self.complete = 0;
        self.complete_rows = 0;
        self.first_at = if self.events.is_empty() {
            None
        } else {
            Some(now)
        };
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dts_core::{Lsn, RowImage, TableName, Value};
    use std::sync::Arc;

    fn ev(change: Change, lsn: u64) -> ChangeEvent {
        ChangeEvent {
            change,
            position: Position::Lsn(Lsn(lsn)),
            timestamp: 0,
        }
    }

    fn insert() -> Change {
        Change::Insert {
            table: TableName::new("s", "t"),
            row: RowImage {
                columns: Arc::new(vec!["id".into()]),
                values: vec![Value::Int(1)],
            },
        }
    }

    #[test]
    fn only_whole_transactions_are_taken() {
        let now = Instant::now();
        let mut p = Pending::default();
        for (c, l) in [
            (Change::Begin, 1),
            (insert(), 2),
            (insert(), 3),
            (Change::Commit, 4),
            (Change::Begin, 5),
            (insert(), 6),
        ] {
            p.push(ev(c, l), None, now);
        }
        assert!(p.has_complete());
        assert_eq!(p.complete_rows(), 2);
        let batch = p.take_complete(now);
        assert_eq!(batch.len(), 4);
        assert!(ends_transaction(&batch[3].change));
        assert!(!p.has_complete() && !p.is_empty());
        p.push(ev(Change::Commit, 7), None, now);
        p.push(
            ev(
                Change::Ddl {
                    schema: None,
                    sql: "x".into(),
                },
                8,
            ),
            None,
            now,
        );
        assert_eq!(p.complete_rows(), 1);
        assert_eq!(p.take_complete(now).len(), 4);
        assert!(p.is_empty() && p.first_at().is_none());
    }

    #[test]
    fn applied_transactions_are_dropped_whole() {
        let now = Instant::now();
        let applied = Position::Lsn(Lsn(4));
        let mut p = Pending::default();
        for (c, l) in [
            (Change::Begin, 1),
            (insert(), 2),
            (Change::Commit, 4),
            (Change::Begin, 5),
            (insert(), 6),
            (Change::Commit, 7),
        ] {
            p.push(ev(c, l), Some(&applied), now);
        }
        assert_eq!(p.skipped(), 1);
        let batch = p.take_complete(now);
        let lsns: Vec<_> = batch.iter().map(|e| e.position.clone()).collect();
        assert_eq!(
            lsns,
            [5, 6, 7].map(|l| Position::Lsn(Lsn(l))).to_vec(),
            "the transaction ending at the applied position is gone"
        );
    }
}
