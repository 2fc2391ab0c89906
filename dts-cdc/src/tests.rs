//! Engine tests over an in-memory source log and an in-memory sink: batching boundaries,
//! large transactions in parts, the stop position, stopping, retries and giving up, and
//! resuming without gap or repeat under injected failures. (Database behaviour is tested
//! with the real connectors.)

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
        self.open_transaction(rows);
        self.push(Change::Commit);
    }

    /// A transaction of `rows` inserts whose commit has not arrived.
    fn open_transaction(&mut self, rows: usize) {
        self.push(Change::Begin);
        for _ in 0..rows {
            self.insert();
        }
    }

    fn insert(&mut self) {
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
    /// The most events asked for in one read.
    max_asked: usize,
    /// A pause before each read hands events over.
    read_delay: Duration,
    /// Whether connections start at the beginning of the log whatever the position asked
    /// (a source resuming at a coarser point).
    resume_at_start: bool,
    /// The positions acknowledged, with what the sink had committed when each was.
    acks: Vec<(Position, Option<Position>)>,
    /// The sink's state, to check acknowledgements against.
    sink: Option<Arc<Mutex<SinkState>>>,
}

struct MemSource {
    script: Arc<Mutex<SourceScript>>,
    next: usize,
}

#[dts_core::async_trait]
impl ChangeSource for MemSource {
    async fn next_events(&mut self, max: usize, timeout: Duration) -> Result<Vec<ChangeEvent>> {
        let (batch, at_end, delay) = {
            let mut s = self.script.lock().unwrap();
            s.reads += 1;
            s.max_asked = s.max_asked.max(max);
            if s.fail_reads.contains(&s.reads) {
                return Err(lost("source"));
            }
            let end = s.log.events.len().min(self.next + max.min(s.chunk));
            let batch = s.log.events[self.next..end].to_vec();
            (batch, s.at_end, s.read_delay)
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if batch.is_empty() {
            match at_end {
                AtEnd::Wait => tokio::time::sleep(timeout).await,
                AtEnd::Stall => std::future::pending::<()>().await,
            }
        }
        self.next += batch.len();
        Ok(batch)
    }

    fn acknowledge(&mut self, position: &Position) {
        let mut s = self.script.lock().unwrap();
        let committed = s
            .sink
            .as_ref()
            .and_then(|k| k.lock().unwrap().position.clone());
        s.acks.push((position.clone(), committed));
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
    /// The events of each committed target transaction (parts included).
    batches: Vec<Vec<ChangeEvent>>,
    /// Per global apply call number (1-based), how it fails.
    fail_applies: Vec<(u64, Fail)>,
    applies: u64,
    /// Row changes handed to each apply call.
    apply_rows: Vec<usize>,
    /// Global apply_part call numbers (1-based) that fail with a lost connection.
    fail_parts: Vec<u64>,
    /// Row changes handed to each apply_part call (including failed and skipped ones).
    parts: Vec<usize>,
    /// Parts ignored because their transaction was applied before.
    skipped_parts: u64,
    /// Connection attempts that fail (1-based), or all of them.
    fail_connects: Vec<u64>,
    fail_all_connects: bool,
    connects: u64,
}

/// An in-memory target. Parts of a transaction live in the sink until the closing apply
/// (a target transaction left open), so they are gone when it fails or is dropped.
struct MemSink {
    state: Arc<Mutex<SinkState>>,
    /// The transaction in parts: its events applied so far, and whether it is already
    /// applied (its parts are ignored).
    open: Option<(Vec<ChangeEvent>, bool)>,
}

impl MemSink {
    fn new(state: Arc<Mutex<SinkState>>) -> Self {
        Self { state, open: None }
    }
}

fn at_or_before(a: &Position, b: Option<&Position>) -> bool {
    b.is_some_and(|b| lsn_of(a) <= lsn_of(b))
}

fn ends(e: &ChangeEvent) -> bool {
    matches!(e.change, Change::Commit | Change::Ddl { .. })
}

#[dts_core::async_trait]
impl ApplySink for MemSink {
    async fn apply(&mut self, events: &[ChangeEvent], position: &Position) -> Result<ApplyStats> {
        let open = self.open.take();
        let mut s = self.state.lock().unwrap();
        s.applies += 1;
        let n = s.applies;
        s.apply_rows.push(row_numbers(events).len());
        let fail = s
            .fail_applies
            .iter()
            .find(|(call, _)| *call == n)
            .map(|(_, f)| *f);
        assert!(
            events.last().is_some_and(ends),
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
        let mut stats = ApplyStats::default();
        let mut batch = Vec::new();
        let mut rest = events;
        let mut continued = open;
        while !rest.is_empty() {
            let end = rest.iter().position(ends).unwrap() + 1;
            let (transaction, after) = rest.split_at(end);
            rest = after;
            let skip = match continued.take() {
                Some((parts, skip)) => {
                    if !skip {
                        assert!(
                            !matches!(transaction[0].change, Change::Begin),
                            "the rest of a transaction in parts"
                        );
                        batch.extend(parts);
                    }
                    skip
                }
                None => at_or_before(&transaction[end - 1].position, s.position.as_ref()),
            };
            if skip {
                continue;
            }
            batch.extend_from_slice(transaction);
            stats.rows += row_numbers(transaction).len() as u64;
            stats.transactions += 1;
        }
        if batch.is_empty() {
            return Ok(stats);
        }
        s.committed.extend_from_slice(&batch);
        s.batches.push(batch);
        s.position = Some(position.clone());
        if fail == Some(Fail::After) {
            return Err(lost("target"));
        }
        Ok(stats)
    }

    async fn apply_part(&mut self, events: &[ChangeEvent]) -> Result<ApplyStats> {
        let mut s = self.state.lock().unwrap();
        s.parts.push(row_numbers(events).len());
        let n = s.parts.len() as u64;
        assert!(!events.is_empty() && !events.iter().any(ends));
        if s.fail_parts.contains(&n) {
            self.open = None;
            return Err(lost("target"));
        }
        let (parts, skip) = self.open.get_or_insert_with(|| {
            assert!(
                matches!(events[0].change, Change::Begin),
                "the first part starts the transaction"
            );
            (
                Vec::new(),
                at_or_before(&events[0].position, s.position.as_ref()),
            )
        });
        if *skip {
            s.skipped_parts += 1;
            return Ok(ApplyStats::default());
        }
        parts.extend_from_slice(events);
        Ok(ApplyStats {
            transactions: 0,
            rows: row_numbers(events).len() as u64,
        })
    }

    async fn applied_position(&mut self) -> Result<Option<Position>> {
        self.open = None;
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
        let sink = Arc::new(Mutex::new(sink));
        Self {
            source: Arc::new(Mutex::new(SourceScript {
                log: Arc::new(log),
                chunk,
                at_end,
                fail_reads: Vec::new(),
                reads: 0,
                connects: Vec::new(),
                max_asked: 0,
                read_delay: Duration::ZERO,
                resume_at_start: false,
                acks: Vec::new(),
                sink: Some(sink.clone()),
            })),
            sink,
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
                    let mut next = usize::try_from(lsn_of(&position)).unwrap();
                    {
                        let mut s = script.lock().unwrap();
                        if s.resume_at_start {
                            next = 0;
                        }
                        s.connects.push(position);
                    }
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
                    Ok(MemSink::new(state))
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
    log.transaction(100); // larger than a batch: applied in parts, committed whole
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
    let large = sink
        .batches
        .iter()
        .position(|b| row_numbers(b).len() == 100)
        .expect("the large transaction is committed alone");
    for (i, batch) in sink.batches.iter().enumerate() {
        assert!(
            matches!(batch[0].change, Change::Begin),
            "batch {i} starts a transaction"
        );
        assert!(matches!(batch.last().unwrap().change, Change::Commit));
        let rows = row_numbers(batch).len();
        // The whole transactions before the large one are applied before its first part.
        if i < last && i + 1 != large {
            assert!(rows >= 10, "batch {i} has {rows} rows: flushed early");
        }
        if i != large {
            // Never more than one transaction beyond the limit plus one read.
            assert!(rows < 10 + 4 + 7, "batch {i} has {rows} rows");
        }
    }
    // Ten parts of ten rows; the commit came alone.
    assert_eq!(sink.parts, [10; 10]);
    assert!(sink.apply_rows.iter().all(|&r| r < 10 + 4 + 7));
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
async fn the_source_is_acknowledged_only_positions_the_sink_committed() {
    let mut log = Log::default();
    for i in 0..40 {
        log.transaction(1 + i % 3);
    }
    let end = log.end();
    let h = Harness::new(log, 7, AtEnd::Wait);
    let options = CdcOptions {
        max_batch_rows: 10,
        ..until(end.clone())
    };
    let (result, _) = h.run(options, never_stop()).await;
    result.unwrap();
    let s = h.source.lock().unwrap();
    assert!(!s.acks.is_empty());
    let mut last = lsn(0);
    for (acked, committed) in &s.acks {
        // Each acknowledged position was committed by then, and they only move forward.
        assert_eq!(Some(acked), committed.as_ref());
        assert!(acked.log_cmp(&last).unwrap().is_ge());
        last = acked.clone();
    }
    // Every batch but possibly the last is acknowledged before the next read.
    assert!(s.acks.len() + 1 >= h.sink.lock().unwrap().batches.len());
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
    assert!(
        matches!(events.first(), Some(CdcEvent::Applying { rows: 1, oldest })
            if *oldest == std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
        "{events:?}"
    );
    let events: Vec<_> = events
        .into_iter()
        .filter(|e| !matches!(e, CdcEvent::Applying { .. }))
        .collect();
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
            async move { Ok(MemSink::new(state)) }
        },
        CdcOptions::default(),
        None,
        never_stop(),
    );
    assert_send(&fut);
}

fn applied_rows(events: &[CdcEvent]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            CdcEvent::Applied { rows, .. } => Some(*rows),
            _ => None,
        })
        .collect()
}

/// Ten times the batch limit in one transaction, among small ones: it reaches the sink in
/// parts of at most the limit, reads stay within the limit too, and it commits whole.
#[tokio::test]
async fn a_large_transaction_arrives_in_parts_of_bounded_size() {
    const MAX: usize = 50;
    let mut log = Log::default();
    for _ in 0..5 {
        log.transaction(3);
    }
    let begin = log.end();
    log.transaction(10 * MAX);
    let large_end = log.end();
    for _ in 0..5 {
        log.transaction(3);
    }
    let end = log.end();
    let want = log.rows();
    let h = Harness::new(log, 1000, AtEnd::Wait);
    let options = CdcOptions {
        max_batch_rows: MAX,
        max_batch_delay: Duration::from_secs(60),
        ..until(end.clone())
    };
    let (result, events) = h.run(options, never_stop()).await;
    let summary = result.unwrap();
    assert_eq!(summary.position, Some(end));
    assert_eq!(summary.transactions, 11);
    assert_eq!(summary.rows, want.len() as u64);
    assert_eq!(h.committed_rows(), want);
    assert!(h.source.lock().unwrap().max_asked <= MAX);
    let sink = h.sink.lock().unwrap();
    // Every part holds the limit, no more: the engine never held more of it.
    assert_eq!(sink.parts, [MAX; 10]);
    assert!(
        sink.apply_rows.iter().all(|&r| r <= MAX),
        "{:?}",
        sink.apply_rows
    );
    // The small transactions before it were committed before its first part; it was
    // committed alone, in one target transaction, with its commit as the position.
    let large = sink
        .batches
        .iter()
        .find(|b| b[0].position == lsn(lsn_of(&begin) + 1))
        .expect("a batch starting with the large transaction");
    assert_eq!(row_numbers(large).len(), 10 * MAX);
    assert_eq!(large.last().unwrap().position, large_end);
    assert!(applied_rows(&events).contains(&(10 * MAX as u64)));
}

/// A failure part-way through a large transaction commits nothing of it; the retry reads it
/// again whole from the applied position. A lost acknowledgement of its commit does not
/// make it apply twice.
#[tokio::test]
async fn a_failure_within_a_large_transaction_commits_nothing_and_it_is_retried_whole() {
    const MAX: usize = 20;
    for (fail_parts, fail_applies, parts_seen) in [
        (vec![4], vec![], 3 + 1 + 10),
        (vec![], vec![(2, Fail::Before)], 10 + 10),
        (vec![], vec![(2, Fail::After)], 10),
        (vec![10, 11], vec![(2, Fail::Before)], 9 + 1 + 1 + 10 + 10),
    ] {
        let mut log = Log::default();
        log.transaction(2);
        let before_large = log.end();
        log.transaction(10 * MAX);
        log.transaction(2);
        let end = log.end();
        let want = log.rows();
        let h = Harness::new(log, 7, AtEnd::Wait);
        {
            let mut s = h.sink.lock().unwrap();
            s.fail_parts = fail_parts.clone();
            s.fail_applies = fail_applies.clone();
        }
        let options = CdcOptions {
            max_batch_rows: MAX,
            ..until(end.clone())
        };
        let (result, events) = h.run(options, never_stop()).await;
        let case = format!("parts failing {fail_parts:?}, applies failing {fail_applies:?}");
        assert_eq!(result.unwrap().position, Some(end), "{case}");
        assert_eq!(h.committed_rows(), want, "{case}: every row exactly once");
        let sink = h.sink.lock().unwrap();
        assert_eq!(sink.parts.len(), parts_seen, "{case}");
        assert!(sink.parts.iter().all(|&r| r <= MAX), "{case}");
        // The large transaction was committed once, whole.
        let large: Vec<_> = sink
            .batches
            .iter()
            .filter(|b| row_numbers(b).len() >= 10 * MAX)
            .collect();
        assert_eq!(large.len(), 1, "{case}");
        let reconnects = events
            .iter()
            .filter(|e| matches!(e, CdcEvent::Reconnecting { .. }))
            .count();
        assert_eq!(reconnects, fail_parts.len() + fail_applies.len(), "{case}");
        // Every retry read the large transaction again from before it, or resumed after it
        // once committed.
        let connects = h.source.lock().unwrap().connects.clone();
        assert_eq!(connects.len(), reconnects + 1, "{case}");
        for c in &connects[1..] {
            assert!(
                *c == before_large || lsn_of(c) > lsn_of(&before_large) + 10 * MAX as u64,
                "{case}: resumed at {c}"
            );
        }
    }
}

/// A permanent failure of the apply closing a transaction in parts stops replication with
/// nothing of the transaction committed and the position before it.
#[tokio::test]
async fn a_permanent_failure_of_the_closing_apply_leaves_the_position() {
    let mut log = Log::default();
    log.transaction(100);
    let h = Harness::new(log, 10, AtEnd::Wait);
    h.sink.lock().unwrap().fail_applies = vec![(1, Fail::Permanent)];
    let options = CdcOptions {
        max_batch_rows: 10,
        ..until(lsn(102))
    };
    let (result, _) = h.run(options, never_stop()).await;
    let e = result.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Value);
    assert!(e.message().contains("applying changes up to `0/66`"), "{e}");
    let sink = h.sink.lock().unwrap();
    assert_eq!(sink.parts.len(), 10);
    assert!(sink.committed.is_empty());
    assert_eq!(sink.position, Some(lsn(0)));
}

/// `until` inside a large transaction: it is applied through its commit, nothing beyond.
#[tokio::test]
async fn until_inside_a_large_transaction_applies_it_whole_and_nothing_beyond() {
    let mut log = Log::default();
    log.transaction(3);
    log.transaction(95);
    let large_end = log.end();
    log.transaction(3);
    let h = Harness::new(log, 7, AtEnd::Wait);
    let options = CdcOptions {
        max_batch_rows: 10,
        ..until(lsn(50))
    };
    let (result, events) = h.run(options, never_stop()).await;
    assert_eq!(result.unwrap().position, Some(large_end));
    assert_eq!(h.committed_rows(), (1..=98).collect::<Vec<i64>>());
    assert_eq!(h.sink.lock().unwrap().parts, [10; 9]);
    assert!(matches!(events.last(), Some(CdcEvent::CaughtUp { .. })));
}

/// A stop while a large transaction is partly applied reads it to its commit and commits
/// it whole; the transaction after it is left for the next run.
#[tokio::test]
async fn stop_within_a_large_transaction_finishes_it() {
    const MAX: usize = 20;
    let mut log = Log::default();
    log.transaction(10 * MAX);
    let large_end = log.end();
    log.transaction(2);
    let h = Harness::new(log, 7, AtEnd::Wait);
    h.source.lock().unwrap().read_delay = Duration::from_millis(2);
    let (tx, rx) = watch::channel(false);
    let options = CdcOptions {
        max_batch_rows: MAX,
        max_batch_delay: Duration::from_secs(60),
        ..CdcOptions::default()
    };
    let run = h.run(options, rx);
    let stopper = async {
        while h.sink.lock().unwrap().parts.len() < 2 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tx.send(true).unwrap();
    };
    let ((result, _), ()) = tokio::join!(run, stopper);
    let summary = result.unwrap();
    assert_eq!(summary.position, Some(large_end));
    assert_eq!(summary.rows, 10 * MAX as u64);
    let rows = i64::try_from(10 * MAX).unwrap();
    assert_eq!(h.committed_rows(), (1..=rows).collect::<Vec<i64>>());
    let sink = h.sink.lock().unwrap();
    assert_eq!(sink.parts, [MAX; 10]);
    assert_eq!(sink.batches.len(), 1);
}

/// A stop while a large transaction is partly applied, when the rest of it does not come
/// (the source goes quiet or hangs): the partial transaction is rolled back.
#[tokio::test]
async fn stop_within_a_large_transaction_whose_rest_does_not_come_rolls_it_back() {
    for at_end in [AtEnd::Wait, AtEnd::Stall] {
        let mut log = Log::default();
        log.transaction(3);
        log.open_transaction(100);
        let h = Harness::new(log, 7, at_end);
        let (tx, rx) = watch::channel(false);
        let options = CdcOptions {
            max_batch_rows: 10,
            idle_ack: Duration::from_millis(20),
            ..CdcOptions::default()
        };
        let run = h.run(options, rx);
        let stopper = async {
            while h.sink.lock().unwrap().parts.len() < 10 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            tx.send(true).unwrap();
        };
        let started = std::time::Instant::now();
        let ((result, _), ()) = tokio::join!(run, stopper);
        assert_eq!(result.unwrap().position, Some(lsn(5)));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(h.committed_rows(), [1, 2, 3]);
        let sink = h.sink.lock().unwrap();
        assert_eq!(sink.parts.len(), 10);
        assert_eq!(sink.position, Some(lsn(5)));
    }
}

/// A source resuming before the applied position hands over a large transaction applied
/// before: it is dropped as it arrives, never handed to the sink, and the transactions
/// after it apply as usual.
#[tokio::test]
async fn a_large_transaction_read_again_is_dropped_without_being_held() {
    let mut log = Log::default();
    log.transaction(3);
    log.transaction(200);
    let applied = log.end();
    log.transaction(2);
    log.transaction(30);
    let end = log.end();
    let h = Harness::new(log, 7, AtEnd::Wait);
    h.source.lock().unwrap().resume_at_start = true;
    h.sink.lock().unwrap().position = Some(applied);
    let options = CdcOptions {
        max_batch_rows: 10,
        ..until(end.clone())
    };
    let (result, events) = h.run(options, never_stop()).await;
    let summary = result.unwrap();
    assert_eq!(summary.position, Some(end));
    assert_eq!(summary.rows, 32);
    assert_eq!(h.committed_rows(), (204..=235).collect::<Vec<i64>>());
    let sink = h.sink.lock().unwrap();
    // Only the last transaction went in parts; nothing of the one read again.
    assert_eq!(sink.parts, [10, 10, 10]);
    assert_eq!(sink.skipped_parts, 0);
    assert_eq!(applied_rows(&events).iter().sum::<u64>(), 32);
}

/// The metrics count committed row changes exactly, per table and operation, even when a
/// large transaction applied in parts fails part-way and is read again; batch latencies and
/// retries are recorded.
#[test]
fn metrics_count_committed_rows_once_per_table_and_operation() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use metrics_util::MetricKind;

    const MAX: usize = 20;
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let mut log = Log::default();
    for _ in 0..5 {
        log.transaction(3);
    }
    log.transaction(5 * MAX);
    log.transaction(2);
    let end = log.end();
    let want = log.rows();
    let h = Harness::new(log, 7, AtEnd::Wait);
    h.sink.lock().unwrap().fail_parts = vec![3];
    let options = CdcOptions {
        max_batch_rows: MAX,
        ..until(end.clone())
    };
    let result = metrics::with_local_recorder(&recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(h.run(options, never_stop()))
            .0
    });
    assert_eq!(result.unwrap().position, Some(end));
    assert_eq!(h.committed_rows(), want);
    let mut rows = None;
    let mut transactions = None;
    let mut retries = None;
    let mut latencies = 0;
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let labels: Vec<String> = key
            .key()
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        match (key.kind(), key.key().name(), value) {
            (MetricKind::Counter, crate::metrics::ROWS_APPLIED, DebugValue::Counter(n)) => {
                assert_eq!(labels, ["table=s.t", "operation=insert"]);
                rows = Some(n);
            }
            (MetricKind::Counter, crate::metrics::TRANSACTIONS_APPLIED, DebugValue::Counter(n)) => {
                transactions = Some(n);
            }
            (MetricKind::Counter, crate::metrics::RETRIES, DebugValue::Counter(n)) => {
                assert_eq!(labels, ["phase=incremental"]);
                retries = Some(n);
            }
            (
                MetricKind::Histogram,
                crate::metrics::BATCH_APPLY_SECONDS,
                DebugValue::Histogram(v),
            ) => latencies = v.len(),
            _ => {}
        }
    }
    assert_eq!(rows, Some(want.len() as u64), "every committed row once");
    assert_eq!(transactions, Some(7));
    assert_eq!(retries, Some(1));
    assert!(latencies >= 3, "{latencies} batch latencies");
}
