//! Accumulating events into batches of whole transactions, and handing over the open
//! transaction in parts when it grows too large.

use dts_core::{Change, ChangeEvent, Error, Position, Result};
use tokio::time::Instant;

use dts_core::ApplyStats;

/// Whether an event ends a source transaction: a commit, or a schema change (which commits
/// implicitly).
pub(crate) fn ends_transaction(change: &Change) -> bool {
    change.ends_transaction()
}

/// Whether an event is a row change.
pub(crate) fn is_row_change(change: &Change) -> bool {
    matches!(
        change,
        Change::Insert { .. } | Change::Update { .. } | Change::Delete { .. }
    )
}

/// Whether `position` is at or before the applied position.
fn applied_at(position: &Position, applied: Option<&Position>) -> bool {
    applied.is_some_and(|a| position.log_cmp(a).is_some_and(|o| o.is_le()))
}

/// What became of the transaction still being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    /// Its events read so far (if any) are all held.
    Held,
    /// Parts of it were handed to the sink, which holds them in an open target
    /// transaction; the parts' stats so far. The events read since are held.
    Streamed(ApplyStats),
    /// It is already applied (it began at or before the applied position): its events are
    /// dropped as they arrive.
    Dropped,
}

/// The events of the transaction still being read, handed over by [`Pending::take_open`].
#[derive(Debug)]
pub(crate) enum OpenPart {
    /// The next part, for [`crate::ApplySink::apply_part`].
    Part(Vec<ChangeEvent>),
    /// The transaction is already applied and is dropped from now on.
    AlreadyApplied,
}

/// Events read from the source and not yet applied: whole transactions first (the complete
/// part, which may be applied), then at most one transaction still being read (the open
/// one), of which earlier parts may already sit in the sink's open target transaction.
#[derive(Debug)]
pub(crate) struct Pending {
    events: Vec<ChangeEvent>,
    /// Number of leading events that form whole transactions.
    complete: usize,
    /// Row changes in the complete part.
    complete_rows: usize,
    /// Row changes of the open transaction held in `events`.
    open_rows: usize,
    /// Whether a transaction has begun and not ended (whether held, streamed or dropped).
    open_begun: bool,
    open: Open,
    /// The parts' stats of a streamed transaction that has ended: its rest is the first
    /// transaction of the complete part.
    streamed_done: Option<ApplyStats>,
    /// When the oldest pending event arrived.
    first_at: Option<Instant>,
    /// Whole transactions dropped because they were at or before the applied position.
    skipped: u64,
}

impl Default for Pending {
    fn default() -> Self {
        Self {
            events: Vec::new(),
            complete: 0,
            complete_rows: 0,
            open_rows: 0,
            open_begun: false,
            open: Open::Held,
            streamed_done: None,
            first_at: None,
            skipped: 0,
        }
    }
}

impl Pending {
    /// Appends one event read from the source. A transaction that ends at or before
    /// `applied` (a source resuming at a coarser point than the sink recorded) is dropped
    /// whole when its end arrives; one found already applied by [`Pending::take_open`] is
    /// dropped as it arrives. The end of a streamed transaction is kept whatever its
    /// position: its parts are in the sink, which judges it.
    ///
    /// # Errors
    ///
    /// [`dts_core::ErrorKind::Internal`] when a transaction dropped as already applied
    /// (it began at or before `applied`) ends after `applied`: the source's positions are
    /// out of order.
    pub(crate) fn push(
        &mut self,
        event: ChangeEvent,
        applied: Option<&Position>,
        now: Instant,
    ) -> Result<()> {
        let ends = ends_transaction(&event.change);
        if self.open == Open::Dropped {
            if ends {
                if !applied_at(&event.position, applied) {
                    return Err(Error::internal(format!(
                        "the transaction ending at `{}` began at or before the applied \
                         position{} but ends after it: the source's positions are out of order",
                        event.position,
                        applied.map(|a| format!(" `{a}`")).unwrap_or_default(),
                    )));
                }
                self.open = Open::Held;
                self.open_begun = false;
                self.skipped += 1;
            }
            return Ok(());
        }
        if matches!(event.change, Change::Rollback) {
            // The source rolled the transaction back: none of it happened.
            if let Open::Streamed(_) = self.open {
                return Err(Error::new(
                    dts_core::ErrorKind::Unsupported,
                    format!(
                        "the source rolled back the transaction ending at `{}` (it changed a \
                         non-transactional table), after parts of it were applied: it is \
                         larger than the batch limit; raise incremental.max_batch_rows above \
                         its size so that it is held whole until its end",
                        event.position
                    ),
                ));
            }
            self.events.truncate(self.complete);
            if self.events.is_empty() {
                self.first_at = None;
            }
            self.open_rows = 0;
            self.open_begun = false;
            self.open = Open::Held;
            return Ok(());
        }
        if self.events.is_empty() {
            self.first_at = Some(now);
        }
        if is_row_change(&event.change) {
            self.open_rows += 1;
        }
        self.events.push(event);
        if !ends {
            self.open_begun = true;
            return Ok(());
        }
        self.open_begun = false;
        let end = &self.events[self.events.len() - 1].position;
        let open = std::mem::replace(&mut self.open, Open::Held);
        if let Open::Streamed(parts) = open {
            self.streamed_done = Some(parts);
        } else if applied_at(end, applied) {
            self.events.truncate(self.complete);
            self.skipped += 1;
            if self.events.is_empty() {
                self.first_at = None;
            }
            self.open_rows = 0;
            return Ok(());
        }
        self.complete = self.events.len();
        self.complete_rows += self.open_rows;
        self.open_rows = 0;
        Ok(())
    }

    /// Whether any whole transaction is waiting.
    pub(crate) fn has_complete(&self) -> bool {
        self.complete > 0
    }

    /// Whether nothing at all is pending: no event held and no transaction half read.
    pub(crate) fn is_empty(&self) -> bool {
        self.events.is_empty() && !self.open_begun
    }

    /// Row changes in the whole transactions waiting.
    pub(crate) fn complete_rows(&self) -> usize {
        self.complete_rows
    }

    /// Row changes of the open transaction held (not yet handed to the sink).
    pub(crate) fn open_rows(&self) -> usize {
        self.open_rows
    }

    /// Whether the open transaction was partly handed to the sink (which holds a target
    /// transaction open for it).
    pub(crate) fn is_streaming(&self) -> bool {
        matches!(self.open, Open::Streamed(_))
    }

    /// Whether a streamed transaction has ended and waits, as the first complete
    /// transaction, to be committed.
    pub(crate) fn streamed_ended(&self) -> bool {
        self.streamed_done.is_some()
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

    /// Removes and returns the whole transactions, leaving the open one; with the stats of
    /// the parts applied before, when the first of them is the rest of a streamed
    /// transaction.
    pub(crate) fn take_complete(&mut self, now: Instant) -> (Vec<ChangeEvent>, Option<ApplyStats>) {
        let rest = self.events.split_off(self.complete);
        let batch = std::mem::replace(&mut self.events, rest);
        self.complete = 0;
        self.complete_rows = 0;
        self.first_at = if self.events.is_empty() {
            None
        } else {
            Some(now)
        };
        (batch, self.streamed_done.take())
    }

    /// Hands over the events of the open transaction held so far, once the whole
    /// transactions before it are taken. The first time, a transaction whose first event is
    /// at or before `applied` is found already applied and dropped from then on (the
    /// applied position always ends a transaction, so the transaction ends at or before it
    /// too); otherwise the events are the next part for the sink, and the transaction
    /// counts as streamed until its end.
    ///
    /// # Errors
    ///
    /// [`dts_core::ErrorKind::Internal`] if whole transactions are still waiting.
    pub(crate) fn take_open(&mut self, applied: Option<&Position>) -> Result<OpenPart> {
        if self.has_complete() {
            return Err(Error::internal(
                "handing over a transaction in parts before the transactions preceding it",
            ));
        }
        let events = std::mem::take(&mut self.events);
        self.open_rows = 0;
        self.first_at = None;
        match self.open {
            Open::Held => {
                if events
                    .first()
                    .is_some_and(|e| applied_at(&e.position, applied))
                {
                    self.open = Open::Dropped;
                    return Ok(OpenPart::AlreadyApplied);
                }
                self.open = Open::Streamed(ApplyStats::default());
                Ok(OpenPart::Part(events))
            }
            Open::Streamed(_) => Ok(OpenPart::Part(events)),
            Open::Dropped => Ok(OpenPart::AlreadyApplied),
        }
    }

    /// Adds what the sink reported for a part of the streamed transaction.
    pub(crate) fn add_part(&mut self, stats: ApplyStats) {
        if let Open::Streamed(parts) = &mut self.open {
            *parts += stats;
        }
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
    fn a_rolled_back_transaction_is_dropped_whole() {
        let now = Instant::now();
        let mut p = Pending::default();
        for (c, l) in [(Change::Begin, 1), (insert(), 2), (Change::Commit, 3)] {
            p.push(ev(c, l), None, now).unwrap();
        }
        for (c, l) in [(Change::Begin, 4), (insert(), 5), (Change::Rollback, 6)] {
            p.push(ev(c, l), None, now).unwrap();
        }
        let (events, _) = p.take_complete(now);
        assert_eq!(
            events
                .iter()
                .map(|e| e.position.clone())
                .collect::<Vec<_>>(),
            [1, 2, 3].map(|l| Position::Lsn(Lsn(l)))
        );
        assert_eq!(p.complete_rows(), 0);
        assert_eq!(p.open_rows(), 0);
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
            p.push(ev(c, l), None, now).unwrap();
        }
        assert!(p.has_complete());
        assert_eq!(p.complete_rows(), 2);
        let (batch, parts) = p.take_complete(now);
        assert!(parts.is_none());
        assert_eq!(batch.len(), 4);
        assert!(ends_transaction(&batch[3].change));
        assert!(!p.has_complete() && !p.is_empty());
        p.push(ev(Change::Commit, 7), None, now).unwrap();
        p.push(
            ev(
                Change::Ddl {
                    schema: None,
                    sql: "x".into(),
                    sql_mode: dts_core::SqlMode::default(),
                },
                8,
            ),
            None,
            now,
        )
        .unwrap();
        assert_eq!(p.complete_rows(), 1);
        assert_eq!(p.take_complete(now).0.len(), 4);
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
            p.push(ev(c, l), Some(&applied), now).unwrap();
        }
        assert_eq!(p.skipped(), 1);
        let (batch, _) = p.take_complete(now);
        let lsns: Vec<_> = batch.iter().map(|e| e.position.clone()).collect();
        assert_eq!(
            lsns,
            [5, 6, 7].map(|l| Position::Lsn(Lsn(l))).to_vec(),
            "the transaction ending at the applied position is gone"
        );
    }

    #[test]
    fn an_open_transaction_is_handed_over_in_parts() {
        let now = Instant::now();
        let mut p = Pending::default();
        for (c, l) in [
            (Change::Begin, 1),
            (insert(), 2),
            (Change::Commit, 3),
            (Change::Begin, 4),
            (insert(), 5),
            (insert(), 6),
        ] {
            p.push(ev(c, l), None, now).unwrap();
        }
        assert_eq!(p.open_rows(), 2);
        assert!(p.take_open(None).is_err(), "whole transactions go first");
        let (batch, _) = p.take_complete(now);
        assert_eq!(batch.len(), 3);
        let OpenPart::Part(part) = p.take_open(None).unwrap() else {
            panic!("not a part");
        };
        assert_eq!(part.len(), 3);
        assert!(p.is_streaming() && !p.is_empty() && p.open_rows() == 0);
        p.push(ev(insert(), 7), None, now).unwrap();
        let OpenPart::Part(part) = p.take_open(None).unwrap() else {
            panic!("not a part");
        };
        assert_eq!(part.len(), 1);
        p.add_part(ApplyStats {
            transactions: 0,
            rows: 3,
        });
        p.push(ev(insert(), 8), None, now).unwrap();
        // The end of a streamed transaction is kept even if it looks applied: the sink
        // holds its parts and judges it.
        p.push(ev(Change::Commit, 9), Some(&Position::Lsn(Lsn(100))), now)
            .unwrap();
        assert!(p.streamed_ended() && !p.is_streaming() && p.has_complete());
        assert_eq!(p.complete_rows(), 1);
        let (rest, parts) = p.take_complete(now);
        assert_eq!(rest.len(), 2);
        assert_eq!(parts.map(|s| s.rows), Some(3));
        assert!(p.is_empty());
    }

    #[test]
    fn an_open_transaction_already_applied_is_dropped_as_it_arrives() {
        let now = Instant::now();
        let applied = Position::Lsn(Lsn(10));
        let mut p = Pending::default();
        for (c, l) in [(Change::Begin, 1), (insert(), 2), (insert(), 3)] {
            p.push(ev(c, l), Some(&applied), now).unwrap();
        }
        assert!(matches!(
            p.take_open(Some(&applied)).unwrap(),
            OpenPart::AlreadyApplied
        ));
        p.push(ev(insert(), 4), Some(&applied), now).unwrap();
        assert!(!p.is_empty() && p.open_rows() == 0 && !p.is_streaming());
        p.push(ev(Change::Commit, 10), Some(&applied), now).unwrap();
        assert!(p.is_empty() && !p.has_complete());
        assert_eq!(p.skipped(), 1);
        // The next transaction is taken as usual.
        for (c, l) in [(Change::Begin, 11), (insert(), 12), (Change::Commit, 13)] {
            p.push(ev(c, l), Some(&applied), now).unwrap();
        }
        assert_eq!(p.take_complete(now).0.len(), 3);

        // A dropped transaction that ends after the applied position: out of order.
        for (c, l) in [(Change::Begin, 5), (insert(), 6)] {
            p.push(ev(c, l), Some(&applied), now).unwrap();
        }
        assert!(matches!(
            p.take_open(Some(&applied)).unwrap(),
            OpenPart::AlreadyApplied
        ));
        let e = p
            .push(ev(Change::Commit, 11), Some(&applied), now)
            .unwrap_err();
        assert!(e.message().contains("out of order"), "{e}");
    }
}
