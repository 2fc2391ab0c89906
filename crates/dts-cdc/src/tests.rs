//! Engine tests over an in-memory source log and an in-memory sink: batching boundaries,
//! the stop position, stopping, retries and giving up, and resuming without gap or repeat
//! under injected failures. (Database behaviour is tested with the real connectors.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dts_core::{
    Change, ChangeEvent, ChangeSource, Error, ErrorKind, Lsn, Position, Result, RowImage,
    TableName, Value,
};
use tokio::sync::{mpsc, watch};

use crate::{replicate, ApplySink, ApplyStats, CdcEvent, CdcOptions, CdcSummary};

fn lsn(n: u64) -> Position {
    Position::Lsn(Lsn(n))
}

fn lsn_of(p: &Position) -> u64 {
    match p {
        Position::Lsn(l) => l.0,
        other => panic!("unexpected position {other}"),
    }
}

fn lost(what: &str) -> Error {
    Error::new(ErrorKind::Connection, format!("{what} connection lost"))
}

/// A source log: event `i` (0-based) sits at position `i + 1`.
#[derive(Default)]
struct Log {
    events: Vec<ChangeEvent>,
    next_row: i64,
}

impl Log {
    fn push(&mut self, change: Change) {
        let position = lsn(self.events.len() as u64 + 1);
        self.events.push(ChangeEvent {
            change,
            position,
            timestamp: 1_700_000_000,
        });
    }

    /// A transaction of `rows` inserts, each carrying the next row number.
    fn transaction(&mut self, rows: usize) {
        self.push(Change::Begin);
        for _ in 0..rows {
            self.next_row += 1;
            let row = RowImage {
                columns: Arc::new(vec!["n".into()]),
                values: vec![Value::Int(self.next_row)],
            };
            self.push(Change::Insert {
                table: TableName::new("s", "t"),
                row,
            });
        }
        self.push(Change::Commit);
    }

    fn end(&self) -> Position {
        lsn(self.events.len() as u64)
    }

    fn rows(&self) -> Vec<i64> {
        row_numbers(&self.events)
    }
}

fn row_numbers(events: &[ChangeEvent]) -> Vec<i64> {
    events
        .iter()
        .filter_map(|e| match &e.change {
            Change::Insert { row, .. } => match row.values[0] {
                Value::Int(n) => Some(n),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// What the in-memory source does when it has handed over every event.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AtEnd {
    /// Waits for the timeout and returns nothing.
    Wait,
    /// Never returns (a read blocked on the network).
    Stall,
}

/// Shared script of the in-memory source.
struct SourceScript {
    log: Arc<Log>,
    /// At most this many events per read.
    chunk: usize,
    at_end: AtEnd,
    /// Global read numbers (1-based, across connections) that fail with a lost connection.
    fail_reads: Vec<u64>,
    reads: u64,
    connects: Vec<Position>,
}

struct MemSource {
    script: Arc<Mutex<SourceScript>>,
    next: usize,
}

impl ChangeSource for MemSource {
    async fn next_events(&mut self, max: usize, timeout: Duration) -> Result<Vec<ChangeEvent>> {
        let (batch, at_end) = {
            let mut s = self.script.lock().unwrap();
            s.reads += 1;
            if s.fail_reads.contains(&s.reads) {
                return Err(lost("source"));
            }
            let end = s.log.events.len().min(self.next + max.min(s.chunk));
            let batch = s.log.events[self.next..end].to_vec();
            (batch, s.at_end)
        };
        if batch.is_empty() {
            match at_end {
                AtEnd::Wait => tokio::time::sleep(timeout).await,
                AtEnd::Stall => std::future::pending::<()>().await,
            }
        }
        self.next += batch.len();
        Ok(batch)
    }
}

/// How one apply call fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fail {
    /// Nothing is committed.
    Before,
    /// The batch is committed but the acknowledgement is lost.
    After,
    /// A permanent error.
    Permanent,
}

#[derive(Default)]
struct SinkState {
    /// Every event committed, in order.
    committed: Vec<ChangeEvent>,
    position: Option<Position>,
    /// Per committed batch: number of events and whether it starts at a transaction start.
    batches: Vec<Vec<ChangeEvent>>,
    /// Per global apply call number (1-based), how it fails.
    fail_applies: Vec<(u64, Fail)>,
    applies: u64,
    /// Connection attempts that fail (1-based), or all of them.
    fail_connects: Vec<u64>,
    fail_all_connects: bool,
    connects: u64,
}

struct MemSink {
    state: Arc<Mutex<SinkState>>,
}

impl ApplySink for MemSink {
    async fn apply<'a>(
        &'a mut self,
        events: &'a [ChangeEvent],
        position: &'a Position,
    ) -> Result<ApplyStats> {
        let mut s = self.state.lock().unwrap();
        s.applies += 1;
        let n = s.applies;
        let fail = s
            .fail_applies
            .iter()
            .find(|(call, _)| *call == n)
            .map(|(_, f)| *f);
        assert!(
            matches!(
                events.last().map(|e| &e.change),
                Some(Change::Commit | Change::Ddl { .. })
            ),
            "a batch must end with a commit"
        );
        assert_eq!(&events.last().unwrap().position, position);
        match fail {
            Some(Fail::Before) => return Err(lost("target")),
            Some(Fail::Permanent) => {
                return Err(Error::new(ErrorKind::Value, "bad value in column `c`"))
            }
            _ => {}
        }
        s.committed.extend_from_slice(events);
        s.batches.push(events.to_vec());
        s.position = Some(position.clone());
        if fail == Some(Fail::After) {
            return Err(lost("target"));
        }
        let rows = row_numbers(events).len() as u64;
        let transactions = events
            .iter()
            .filter(|e| matches!(e.change, Change::Commit))
            .count() as u64;
        Ok(ApplyStats { transactions, rows })
    }

    async fn applied_position(&mut self) -> Result<Option<Position>> {
        Ok(self.state.lock().unwrap().position.clone())
    }
}

struct Harness {
    source: Arc<Mutex<SourceScript>>,
    sink: Arc<Mutex<SinkState>>,
}

impl Harness {
    fn new(log: Log, chunk: usize, at_end: AtEnd) -> Self {
        let sink = SinkState {
            position: Some(lsn(0)),
            ..SinkState::default()
        };
        Self {
            source: Arc::new(Mutex::new(SourceScript {
                log: Arc::new(log),
                chunk,
                at_end,
                fail_reads: Vec::new(),
                reads: 0,
                connects: Vec::new(),
            })),
            sink: Arc::new(Mutex::new(sink)),
        }
    }

    async fn run(
        &self,
        options: CdcOptions,
        stop: watch::Receiver<bool>,
    ) -> (Result<CdcSummary>, Vec<CdcEvent>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let source = self.source.clone();
        let sink = self.sink.clone();
        let result = replicate(
            move |position: Position| {
                let script = source.clone();
                async move {
                    let next = usize::try_from(lsn_of(&position)).unwrap();
                    script.lock().unwrap().connects.push(position);
                    Ok(MemSource { script, next })
                }
            },
            move || {
                let state = sink.clone();
                async move {
                    {
                        let mut s = state.lock().unwrap();
                        s.connects += 1;
                        let n = s.connects;
                        if s.fail_all_connects || s.fail_connects.contains(&n) {
                            return Err(lost("target"));
                        }
                    }
                    Ok(MemSink { state })
                }
            },
            options,
            Some(tx),
            stop,
        )
        .await;
        let mut events = Vec::new();
        while let Ok(e) = rx.try_recv() {
            events.push(e);
        }
        (result, events)
    }

    fn committed_rows(&self) -> Vec<i64> {
        row_numbers(&self.sink.lock().unwrap().committed)
    }
}

fn until(position: Position) -> CdcOptions {
    CdcOptions {
        until: Some(position),
        idle_ack: Duration::from_millis(20),
        ..CdcOptions::default()
    }
}

fn never_stop() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    // Keep the sender alive for the whole test.
    std::mem::forget(tx);
    rx
}

#[tokio::test]
async fn batches_hold_whole_transactions_and_respect_the_row_limit() {
    let mut log = Log::default();
    for i in 0..60 {
        log.transaction(1 + i % 4);
    }
    log.transaction(100); // larger than a batch: applied whole
    log.transaction(2);
    let end = log.end();
    let want = log.rows();
    let h = Harness::new(log, 7, AtEnd::Wait);
    let options = CdcOptions {
        max_batch_rows: 10,
        max_batch_delay: Duration::from_secs(60),
        ..until(end.clone())
    };
    let (result, events) = h.run(options, never_stop()).await;
    let summary = result.unwrap();
    assert_eq!(summary.position, Some(end));
    assert_eq!(summary.rows, want.len() as u64);
    assert_eq!(summary.transactions, 62);
    assert_eq!(h.committed_rows(), want);
    let sink = h.sink.lock().unwrap();
    let last = sink.batches.len() - 1;
    for (i, batch) in sink.batches.iter().enumerate() {
        assert!(
            matches!(batch[0].change, Change::Begin),
            "batch {i} starts a transaction"
        );
        assert!(matches!(batch.last().unwrap().change, Change::Commit));
        let rows = row_numbers(batch).len();
        if i < last {
            assert!(rows >= 10, "batch {i} has {rows} rows: flushed early");
        }
        // Never more than one transaction beyond the limit plus one read.
        assert!(rows < 10 + 100 + 7, "batch {i} has {rows} rows");
    }
    assert!(sink.batches.iter().any(|b| row_numbers(b).len() >= 100));
    let applied: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, CdcEvent::Applied { .. }))
        .collect();
    assert_eq!(applied.len(), sink.batches.len());
    assert!(matches!(events.last(), Some(CdcEvent::CaughtUp { .. })));
}

#[tokio::test]
async fn a_batch_is_flushed_as_soon_as_the_source_has_nothing_more() {
    let mut log = Log::default();
    log.transaction(1);
    log.transaction(1);
    let h = Harness::new(log, 100, AtEnd::Wait);
    let (tx, rx) = watch::channel(false);
    let options = CdcOptions {
        max_batch_rows: 1000,
        max_batch_delay: Duration::from_secs(60),
        idle_ack: Duration::from_secs(60),
        ..CdcOptions::default()
    };
    let run = h.run(options, rx);
    let stopper = async {
        // The batch is applied long before the delay or the idle period pass.
        for _ in 0..200 {
            if h.sink.lock().unwrap().batches.len() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tx.send(true).unwrap();
    };
    let ((result, events), ()) = tokio::join!(run, stopper);
    assert_eq!(result.unwrap().rows, 2);
    assert_eq!(h.sink.lock().unwrap().batches.len(), 1);
    assert!(events
        .iter()
        .any(|e| matches!(e, CdcEvent::CaughtUp { position } if *position == lsn(6))));
}

#[tokio::test]
async fn until_already_reached_returns_without_reading_the_source() {
    let mut log = Log::default();
    log.transaction(3);
    let h = Harness::new(log, 10, AtEnd::Wait);
    h.sink.lock().unwrap().position = Some(lsn(5));
    let (result, _) = h.run(until(lsn(4)), never_stop()).await;
    assert_eq!(result.unwrap().position, Some(lsn(5)));
    assert!(h.source.lock().unwrap().connects.is_empty());
    assert!(h.sink.lock().unwrap().batches.is_empty());
}

#[tokio::test]
async fn until_stops_at_the_transaction_reaching_it_and_applies_nothing_beyond() {
    let log = || {
        let mut log = Log::default();
        for _ in 0..10 {
            log.transaction(2);
        }
        log
    };
    // Position 12 is the commit of the third transaction; 14 is inside the fourth.
    for (until_lsn, end, rows) in [(12, 12, 6), (14, 16, 8)] {
        let h = Harness::new(log(), 4, AtEnd::Wait);
        let options = CdcOptions {
            max_batch_rows: 1000,
            max_batch_delay: Duration::from_secs(60),
            ..until(lsn(until_lsn))
        };
        let (result, events) = h.run(options, never_stop()).await;
        assert_eq!(result.unwrap().position, Some(lsn(end)));
        assert_eq!(h.committed_rows(), (1..=rows).collect::<Vec<i64>>());
        assert!(matches!(events.last(), Some(CdcEvent::CaughtUp { .. })));
    }
}

#[tokio::test]
async fn until_of_another_log_kind_is_a_config_error() {
    let h = Harness::new(Log::default(), 10, AtEnd::Wait);
    let options = CdcOptions {
        until: Some(Position::Binlog {
            file: "b.000001".into(),
            offset: 4,
            gtid: None,
        }),
        ..CdcOptions::default()
    };
    let (result, _) = h.run(options, never_stop()).await;
    assert_eq!(result.unwrap_err().kind(), ErrorKind::Config);
}

#[tokio::test]
async fn no_applied_position_is_a_config_error() {
    let h = Harness::new(Log::default(), 10, AtEnd::Wait);
    h.sink.lock().unwrap().position = None;
    let (result, _) = h.run(CdcOptions::default(), never_stop()).await;
    let e = result.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.message().contains("snapshot position"), "{e}");
}

#[tokio::test]
async fn stop_applies_the_whole_transactions_read_and_drops_a_half_read_one() {
    let mut log = Log::default();
    log.transaction(2);
    log.transaction(3);
    // A transaction whose commit never arrives, then a read that blocks.
    log.push(Change::Begin);
    log.next_row += 1;
    log.push(Change::Insert {
        table: TableName::new("s", "t"),
        row: RowImage {
            columns: Arc::new(vec!["n".into()]),
            values: vec![Value::Int(log.next_row)],
        },
    });
    let h = Harness::new(log, 100, AtEnd::Stall);
    let (tx, rx) = watch::channel(false);
    let options = CdcOptions {
        max_batch_rows: 1000,
        max_batch_delay: Duration::from_secs(60),
        ..CdcOptions::default()
    };
    let run = h.run(options, rx);
    let stopper = async {
        // Let the source hand everything over and block.
        while h.source.lock().unwrap().reads < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tx.send(true).unwrap();
    };
    let ((result, _), ()) = tokio::join!(run, stopper);
    let summary = result.unwrap();
    assert_eq!(summary.position, Some(lsn(9)));
    assert_eq!(h.committed_rows(), [1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn stop_before_start_does_nothing() {
    let h = Harness::new(Log::default(), 10, AtEnd::Wait);
    let (_tx, rx) = watch::channel(true);
    let (result, _) = h.run(CdcOptions::default(), rx).await;
    assert_eq!(result.unwrap(), CdcSummary::default());
    assert_eq!(h.sink.lock().unwrap().connects, 0);
}

#[tokio::test]
async fn failures_resume_from_the_applied_position_without_gap_or_repeat() {
    let mut log = Log::default();
    for i in 0..80 {
        log.transaction(1 + i % 3);
    }
    let end = log.end();
    let want = log.rows();
    let h = Harness::new(log, 5, AtEnd::Wait);
    h.source.lock().unwrap().fail_reads = vec![3, 9, 10, 25];
    {
        let mut s = h.sink.lock().unwrap();
        s.fail_applies = vec![(2, Fail::Before), (4, Fail::After), (7, Fail::After)];
        s.fail_connects = vec![3];
    }
    let options = CdcOptions {
        max_batch_rows: 8,
        ..until(end.clone())
    };
    let (result, events) = h.run(options, never_stop()).await;
    let summary = result.unwrap();
    assert_eq!(summary.position, Some(end));
    assert_eq!(h.committed_rows(), want, "every row exactly once, in order");
    let reconnects = events
        .iter()
        .filter(|e| matches!(e, CdcEvent::Reconnecting { .. }))
        .count();
    assert_eq!(reconnects, 8);
    // Each reconnection resumed the source exactly at the sink's position.
    let connects = h.source.lock().unwrap().connects.clone();
    assert_eq!(connects[0], lsn(0));
    let sink = h.sink.lock().unwrap();
    let mut ends: Vec<Position> = vec![lsn(0)];
    ends.extend(
        sink.batches
            .iter()
            .map(|b| b.last().unwrap().position.clone()),
    );
    for c in &connects {
        assert!(
            ends.contains(c),
            "source resumed at {c}, not at an applied position"
        );
    }
    // The lost acknowledgements did not make anything apply twice.
    assert_eq!(
        sink.committed.len(),
        sink.batches.iter().map(Vec::len).sum::<usize>()
    );
}

#[tokio::test]
async fn reconnecting_gives_up_after_the_retry_window() {
    let h = Harness::new(Log::default(), 10, AtEnd::Wait);
    h.sink.lock().unwrap().fail_all_connects = true;
    let options = CdcOptions {
        retry_window: Duration::from_millis(350),
        ..CdcOptions::default()
    };
    let started = std::time::Instant::now();
    let (result, events) = h.run(options, never_stop()).await;
    let e = result.unwrap_err();
    assert!(e.is_retryable());
    assert!(started.elapsed() >= Duration::from_millis(350));
    let attempts: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            CdcEvent::Reconnecting { attempt, error } => {
                assert!(error.contains("target connection lost"), "{error}");
                Some(*attempt)
            }
            _ => None,
        })
        .collect();
    // 100 + 200 ms of pauses fit, the 400 ms one ends past the window.
    assert_eq!(attempts, [1, 2, 3]);
}

#[tokio::test]
async fn a_permanent_error_stops_at_once() {
    let mut log = Log::default();
    log.transaction(2);
    let h = Harness::new(log, 10, AtEnd::Wait);
    h.sink.lock().unwrap().fail_applies = vec![(1, Fail::Permanent)];
    let (result, events) = h.run(until(lsn(4)), never_stop()).await;
    let e = result.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Value);
    assert!(e.message().contains("applying changes up to `0/4`"), "{e}");
    assert!(!events
        .iter()
        .any(|e| matches!(e, CdcEvent::Reconnecting { .. })));
}

#[tokio::test]
async fn idle_and_lag_are_reported() {
    let mut log = Log::default();
    log.transaction(1);
    let h = Harness::new(log, 10, AtEnd::Wait);
    let (tx, rx) = watch::channel(false);
    let options = CdcOptions {
        idle_ack: Duration::from_millis(10),
        ..CdcOptions::default()
    };
    let run = h.run(options, rx);
    let stopper = async {
        // The first read hands the transaction over, the next ones find nothing.
        while h.source.lock().unwrap().reads < 6 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tx.send(true).unwrap();
    };
    let ((result, events), ()) = tokio::join!(run, stopper);
    assert_eq!(result.unwrap().rows, 1);
    let Some(CdcEvent::Applied { lag, rows, .. }) = events.first() else {
        panic!("first event: {:?}", events.first());
    };
    assert_eq!(*rows, 1);
    // The log's timestamps are from November 2023.
    assert!(*lag > Duration::from_secs(3600));
    assert!(matches!(events[1], CdcEvent::CaughtUp { .. }));
    let idle = events
        .iter()
        .filter(|e| matches!(e, CdcEvent::Idle { position: Some(p) } if *p == lsn(3)))
        .count();
    assert!(idle >= 2, "{events:?}");
}

#[test]
fn replicate_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let h = Harness::new(Log::default(), 1, AtEnd::Wait);
    let source = h.source.clone();
    let sink = h.sink.clone();
    let fut = replicate(
        move |position: Position| {
            let script = source.clone();
            async move {
                let next = usize::try_from(lsn_of(&position)).unwrap();
                Ok(MemSource { script, next })
            }
        },
        move || {
            let state = sink.clone();
            async move { Ok(MemSink { state }) }
        },
        CdcOptions::default(),
        None,
        never_stop(),
    );
    assert_send(&fut);
}
