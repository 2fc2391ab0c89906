//! The replication loop: read changes, batch whole transactions (handing large ones over
//! in parts), apply them, report, and reconnect after transient failures.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dts_core::{ChangeEvent, ChangeSource, Error, ErrorKind, Position, Result};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::batch::{OpenPart, Pending};
use dts_core::ApplySink;

/// The first pause before reconnecting after a transient failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The fewest events asked of the source in one read (unless batches are smaller).
const MIN_READ: usize = 1024;
/// The least time a read may take, once a stop is requested, before a transaction partly
/// applied is given up.
const MIN_GRACE: Duration = Duration::from_secs(1);

/// Replication settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdcOptions {
    /// A batch is applied as soon as its whole transactions hold at least this many row
    /// changes; a transaction being read is handed to the sink in parts of this many row
    /// changes (see [`replicate`]), so this bounds the engine's memory. Default 20,000.
    pub max_batch_rows: usize,
    /// A batch is applied at the latest this long after its first event arrived (if it holds
    /// a whole transaction by then). Default 100 ms.
    pub max_batch_delay: Duration,
    /// Stop (successfully) once everything up to this position is applied: the last batch
    /// ends with the first transaction ending at or after it.
    pub until: Option<Position>,
    /// How long to keep reconnecting after a transient failure (lost connection, deadlock)
    /// before giving up with the last error; the window starts at the first failure of a
    /// streak and a successful apply ends the streak. Default 60 s.
    pub retry_window: Duration,
    /// How long the source may stay silent before [`CdcEvent::Idle`] is reported, and again
    /// after each further such period. Default 1 s.
    pub idle_ack: Duration,
}

impl Default for CdcOptions {
    fn default() -> Self {
        Self {
            max_batch_rows: 20_000,
            max_batch_delay: Duration::from_millis(100),
            until: None,
            retry_window: Duration::from_secs(60),
            idle_ack: Duration::from_secs(1),
        }
    }
}

/// What the replication loop reports while it runs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CdcEvent {
    /// A batch was applied and its end position recorded.
    Applied {
        /// Source transactions in the batch.
        transactions: u64,
        /// Row changes in the batch.
        rows: u64,
        /// The position recorded: replication resumes after it.
        position: Position,
        /// Now minus the source timestamp of the batch's last transaction.
        lag: Duration,
        /// Rows applied per second since the previous report (or the start).
        rows_per_second: f64,
    },
    /// A batch (or a part of a large transaction) is being handed to the sink: until it is
    /// applied (or a reconnection is reported), its oldest change waits, and the lag grows
    /// from its source commit time even when the target does not answer.
    Applying {
        /// Row changes in the batch.
        rows: u64,
        /// The source timestamp of the batch's first event.
        oldest: SystemTime,
    },
    /// The source had nothing new for [`CdcOptions::idle_ack`]; everything read is applied
    /// (the lag is zero).
    Idle {
        /// The applied position.
        position: Option<Position>,
    },
    /// A transient failure: the loop reconnects to both ends after a pause and resumes from
    /// the target's applied position.
    Reconnecting {
        /// The failure, with its causes.
        error: String,
        /// 1 for the first attempt of a streak of failures.
        attempt: u32,
    },
    /// Everything the source had was applied: reported once each time the loop catches up
    /// (at the start, or after it fell behind).
    CaughtUp {
        /// The applied position.
        position: Position,
    },
}

/// What a replication run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CdcSummary {
    /// Source transactions applied.
    pub transactions: u64,
    /// Row changes applied.
    pub rows: u64,
    /// The applied position at the end.
    pub position: Option<Position>,
}

/// Streams changes from a source into a sink until `stop`, [`CdcOptions::until`] or a
/// permanent error.
///
/// The loop connects the sink, reads the position it recorded (the caller records the
/// snapshot's position before the first run, so there is always one) and connects the
/// source there. It then reads events and applies them in batches of whole transactions:
/// a batch is applied when its whole transactions hold [`CdcOptions::max_batch_rows`] row
/// changes, when [`CdcOptions::max_batch_delay`] has passed since its first event, or as
/// soon as the source has nothing more to hand over right now (reads then use a zero
/// timeout). A batch always ends with a commit or DDL event.
///
/// - **Large transactions**: a transaction is not held whole. Once the transaction being
///   read holds `max_batch_rows` row changes, the whole transactions read before it are
///   applied (and committed) first, then its events read so far are handed to
///   [`ApplySink::apply_part`] and dropped; so again each time another `max_batch_rows` row
///   changes of it arrive. When its commit arrives, the rest goes to [`ApplySink::apply`]
///   at once, which commits the one target transaction all parts were applied in. The
///   engine thus holds at most about `max_batch_rows` row changes pending, plus one read
///   of at most as many events, whatever the size of the transactions. A transaction that
///   has grown to `max_batch_rows` and whose first event is at or before the applied
///   position (a source resuming at a coarser point) is already applied: its events are
///   dropped as they arrive. [`CdcEvent::Applied`] reports such a transaction once, at its
///   commit, with the row changes of all its parts.
/// - **Stop**: when `stop` turns `true`, the whole transactions already read are applied
///   and the loop returns `Ok`; a transaction half read is dropped and read again by the
///   next run. A read in progress is abandoned together with its source connection. A
///   transaction partly applied is never committed partly: reading goes on (the read in
///   progress included) to its commit, which is applied with the rest of it, and the loop
///   returns `Ok` then (transactions read after it are dropped and read again by the next
///   run). Should the source fail, have nothing more (a read returning nothing), or not
///   return from a read within its timeout plus [`CdcOptions::idle_ack`] (at least a
///   second), before that commit arrives, the partial transaction is rolled back instead
///   (the sink is dropped) and the loop returns `Ok`; the next run reads it again whole.
/// - **Until**: the loop applies everything up to the first transaction that ends at or
///   after `until` (by [`Position::log_cmp`]), nothing beyond it, and returns `Ok`; right
///   away if the applied position is already there.
/// - **Retries**: an error for which [`Error::is_retryable`] holds, from either end,
///   makes the loop report [`CdcEvent::Reconnecting`], pause (100 ms, doubling to 5 s),
///   reconnect both ends and resume the source from the sink's applied position; events
///   after it are read again (at-least-once, made exact by the sink's atomic position).
///   A transaction that failed part-way through its parts is rolled back by the sink and
///   read again whole.
///   Once [`CdcOptions::retry_window`] has passed since the first failure of a streak the
///   last error is returned. Other errors are returned at once.
///
/// Events go to `events` if given (a closed receiver is ignored).
///
/// ```no_run
/// use dts_cdc::{replicate, ApplySink, CdcOptions};
/// use dts_core::{ChangeSource, Position, Result};
/// use tokio::sync::watch;
///
/// async fn run<S, K>(
///     open_source: impl Fn(Position) -> S + Send,
///     open_sink: impl Fn() -> K + Send,
/// ) -> Result<()>
/// where
///     S: ChangeSource,
///     K: ApplySink,
/// {
///     let (_stop_tx, stop) = watch::channel(false);
///     let summary = replicate(
///         move |position| {
///             let source = open_source(position);
///             async move { Ok(source) }
///         },
///         move || {
///             let sink = open_sink();
///             async move { Ok(sink) }
///         },
///         CdcOptions::default(),
///         None,
///         stop,
///     )
///     .await?;
///     println!("{} transactions applied", summary.transactions);
///     Ok(())
/// }
/// ```
///
/// # Errors
///
/// The first permanent error, or the last transient one once the retry window has passed;
/// [`ErrorKind::Config`] when the sink has no applied position or `until` cannot be compared
/// with it.
pub async fn replicate<S, K, FS, FSF, FK, FKF>(
    mut connect_source: FS,
    mut connect_sink: FK,
    options: CdcOptions,
    events: Option<mpsc::UnboundedSender<CdcEvent>>,
    stop: watch::Receiver<bool>,
) -> Result<CdcSummary>
where
    S: ChangeSource,
    K: ApplySink,
    FS: FnMut(Position) -> FSF + Send,
    FSF: Future<Output = Result<S>> + Send,
    FK: FnMut() -> FKF + Send,
    FKF: Future<Output = Result<K>> + Send,
{
    let mut stop = StopSignal::new(stop);
    let mut engine = Engine {
        options: &options,
        events,
        summary: CdcSummary::default(),
        last_report: Instant::now(),
        caught_up: false,
        healthy: false,
        counts: crate::metrics::RowCounts::default(),
    };
    let mut streak: Option<Instant> = None;
    let mut attempt: u32 = 0;
    let mut backoff = FIRST_BACKOFF;
    loop {
        if stop.requested() {
            return Ok(engine.summary);
        }
        let result = engine
            .session(&mut connect_source, &mut connect_sink, &mut stop)
            .await;
        let error = match result {
            Ok(()) => return Ok(engine.summary),
            Err(e) if e.is_retryable() && !stop.requested() => e,
            Err(e) => return Err(e),
        };
        if std::mem::take(&mut engine.healthy) {
            streak = None;
            attempt = 0;
            backoff = FIRST_BACKOFF;
        }
        let first = *streak.get_or_insert_with(Instant::now);
        if first.elapsed() >= options.retry_window {
            tracing::warn!(attempts = attempt, error = %error.report(), "giving up reconnecting");
            return Err(error);
        }
        attempt += 1;
        tracing::warn!(attempt, pause_ms = backoff.as_millis(), error = %error.report(),
            "replication interrupted; reconnecting");
        metrics::counter!(crate::metrics::RETRIES, "phase" => "incremental").increment(1);
        metrics::counter!(crate::metrics::ERRORS, "kind" => crate::metrics::kind_label(error.kind()))
            .increment(1);
        engine.emit(CdcEvent::Reconnecting {
            error: error.report(),
            attempt,
        });
        tokio::select! {
            biased;
            () = stop.wait() => return Ok(engine.summary),
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// The stop watch; a dropped sender means "never stop".
struct StopSignal {
    rx: watch::Receiver<bool>,
    closed: bool,
}

impl StopSignal {
    fn new(rx: watch::Receiver<bool>) -> Self {
        Self { rx, closed: false }
    }

    fn requested(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once a stop is requested (never, if the sender is gone without asking).
    async fn wait(&mut self) {
        loop {
            if *self.rx.borrow_and_update() {
                return;
            }
            if self.closed {
                std::future::pending::<()>().await;
            }
            if self.rx.changed().await.is_err() {
                self.closed = true;
            }
        }
    }
}

/// The state of one replication run across reconnections.
struct Engine<'o> {
    options: &'o CdcOptions,
    events: Option<mpsc::UnboundedSender<CdcEvent>>,
    summary: CdcSummary,
    /// When the last [`CdcEvent::Applied`] was reported (for its rate).
    last_report: Instant,
    /// Whether [`CdcEvent::CaughtUp`] was reported since the loop last fell behind.
    caught_up: bool,
    /// Whether the current session made progress (ends a streak of failures).
    healthy: bool,
    /// Row changes of the transaction applied in parts, counted when it commits.
    counts: crate::metrics::RowCounts,
}

impl Engine<'_> {
    fn emit(&self, event: CdcEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.send(event);
        }
    }

    /// Reports [`CdcEvent::Applying`] for `events`, about to be handed to the sink.
    fn emit_applying(&self, events: &[ChangeEvent]) {
        let Some(first) = events.first() else {
            return;
        };
        let rows = events
            .iter()
            .filter(|e| crate::metrics::is_row(&e.change))
            .count();
        self.emit(CdcEvent::Applying {
            rows: rows as u64,
            oldest: UNIX_EPOCH + Duration::from_secs(u64::from(first.timestamp)),
        });
    }

    /// Whether `position` has reached [`CdcOptions::until`].
    fn reached_until(&self, position: &Position) -> Result<bool> {
        let Some(until) = &self.options.until else {
            return Ok(false);
        };
        match position.log_cmp(until) {
            Some(order) => Ok(order.is_ge()),
            None => Err(Error::config(format!(
                "the stop position `{until}` cannot be compared with the applied position \
                 `{position}`"
            ))),
        }
    }

    fn caught_up(&mut self, position: &Position) {
        if !self.caught_up {
            self.caught_up = true;
            tracing::debug!(%position, "replication caught up");
            self.emit(CdcEvent::CaughtUp {
                position: position.clone(),
            });
        }
    }

    /// One connection to each end: runs until done (`Ok`) or an error.
    async fn session<S, K, FS, FSF, FK, FKF>(
        &mut self,
        connect_source: &mut FS,
        connect_sink: &mut FK,
        stop: &mut StopSignal,
    ) -> Result<()>
    where
        S: ChangeSource,
        K: ApplySink,
        FS: FnMut(Position) -> FSF + Send,
        FSF: Future<Output = Result<S>> + Send,
        FK: FnMut() -> FKF + Send,
        FKF: Future<Output = Result<K>> + Send,
    {
        // Parts applied by an earlier session were rolled back with it.
        self.counts.clear();
        let mut sink = connect_sink().await?;
        let start = sink.applied_position().await?.ok_or_else(|| {
            Error::config(
                "the target has no applied position for this task: record the snapshot \
                 position before replication starts",
            )
        })?;
        self.summary.position = Some(start.clone());
        if self.reached_until(&start)? {
            self.caught_up(&start);
            return Ok(());
        }
        if stop.requested() {
            return Ok(());
        }
        tracing::info!(position = %start, "starting replication");
        let mut source = connect_source(start).await?;
        let max_rows = self.options.max_batch_rows.max(1);
        let mut pending = Pending::default();
        let mut last_activity = Instant::now();
        // Set when a stop is requested while a transaction is partly applied: reading goes
        // on to its commit.
        let mut finishing = false;
        let mut acknowledged: Option<Position> = None;
        loop {
            // The source learns what the target has committed (a PostgreSQL slot confirms
            // it and may release the WAL before it).
            if let Some(p) = &self.summary.position {
                if acknowledged.as_ref() != Some(p) {
                    source.acknowledge(p);
                    acknowledged = Some(p.clone());
                }
            }
            let timeout = if pending.has_complete() {
                Duration::ZERO
            } else {
                self.options.idle_ack
            };
            let max = max_rows
                .saturating_sub(pending.complete_rows() + pending.open_rows())
                .max(MIN_READ.min(max_rows));
            let read = {
                let next = source.next_events(max, timeout);
                tokio::pin!(next);
                loop {
                    if finishing {
                        // Stopping: the source gets a bounded time to hand over the rest.
                        let grace = (timeout + self.options.idle_ack).max(MIN_GRACE);
                        break tokio::select! {
                            biased;
                            r = &mut next => Some(r),
                            () = tokio::time::sleep(grace) => None,
                        };
                    }
                    if !pending.is_streaming() {
                        break tokio::select! {
                            biased;
                            () = stop.wait() => None,
                            r = &mut next => Some(r),
                        };
                    }
                    // A transaction is partly applied: a stop lets the read go on.
                    tokio::select! {
                        biased;
                        () = stop.wait() => finishing = true,
                        r = &mut next => break Some(r),
                    }
                }
            };
            let read = match read {
                Some(Ok(read)) if !(finishing && read.is_empty()) => read,
                Some(Err(e)) if !(finishing && e.is_retryable()) => return Err(e),
                None if !finishing => {
                    // Stop: apply the whole transactions read, drop the half-read one.
                    if pending.has_complete() {
                        self.flush(&mut sink, &mut pending).await?;
                    }
                    return Ok(());
                }
                other => {
                    // Stopping, and the rest of the transaction applied in parts does not
                    // come: it is rolled back with the sink, and read again by the next run.
                    let error = other.and_then(Result::err).map(|e| e.report());
                    tracing::warn!(
                        error,
                        "stopping in the middle of a large transaction; \
                        its partial changes are rolled back"
                    );
                    return Ok(());
                }
            };
            let now = Instant::now();
            let drained = read.is_empty();
            if !drained {
                last_activity = now;
            }
            let mut at_until = false;
            let mut stopped = false;
            for event in read {
                pending.push(event, self.summary.position.as_ref(), now)?;
                if self.options.until.is_some() {
                    if let Some(end) = pending.last_complete_position() {
                        if self.reached_until(end)? {
                            // Nothing beyond the stop position is applied.
                            at_until = true;
                            break;
                        }
                    }
                }
                if pending.streamed_ended() {
                    // The transaction applied in parts is whole: commit it at once.
                    self.flush(&mut sink, &mut pending).await?;
                    if finishing {
                        stopped = true;
                        break;
                    }
                } else if pending.open_rows() >= max_rows {
                    self.stream(&mut sink, &mut pending).await?;
                }
            }
            if at_until {
                let position = self.flush(&mut sink, &mut pending).await?;
                self.caught_up(&position);
                return Ok(());
            }
            if stopped {
                return Ok(());
            }
            if pending.has_complete() {
                let full = pending.complete_rows() >= max_rows;
                let late = pending
                    .first_at()
                    .is_some_and(|t| now.duration_since(t) >= self.options.max_batch_delay);
                if full || late || drained {
                    if full || late {
                        self.caught_up = false;
                    }
                    let position = self.flush(&mut sink, &mut pending).await?;
                    if self.reached_until(&position)? {
                        self.caught_up(&position);
                        return Ok(());
                    }
                    if drained && pending.is_empty() {
                        self.caught_up(&position);
                    }
                }
                continue;
            }
            if drained && pending.is_empty() {
                // Nothing new and nothing waiting: idle.
                self.healthy = true;
                let position = self.summary.position.clone();
                if let Some(p) = &position {
                    if self.reached_until(p)? {
                        self.caught_up(p);
                        return Ok(());
                    }
                    self.caught_up(p);
                }
                if now.duration_since(last_activity) >= self.options.idle_ack {
                    last_activity = now;
                    self.emit(CdcEvent::Idle { position });
                }
            }
        }
    }

    /// Applies the whole transactions pending (the first may be the rest of a transaction
    /// applied in parts); returns the position recorded.
    async fn flush<K: ApplySink>(
        &mut self,
        sink: &mut K,
        pending: &mut Pending,
    ) -> Result<Position> {
        let (batch, parts) = pending.take_complete(Instant::now());
        let last = batch
            .last()
            .ok_or_else(|| Error::internal("flushing an empty batch"))?;
        let position = last.position.clone();
        let lag = lag_of(last);
        self.emit_applying(&batch);
        let started = Instant::now();
        let mut stats = sink.apply(&batch, &position).await.map_err(|e| {
            if e.kind() == ErrorKind::Internal {
                e
            } else {
                e.context(format_args!("applying changes up to `{position}`"))
            }
        })?;
        if let Some(parts) = parts {
            stats += parts;
        }
        metrics::histogram!(crate::metrics::BATCH_APPLY_SECONDS).record(started.elapsed());
        self.counts.add(&batch);
        self.counts.commit(stats.transactions);
        self.healthy = true;
        self.summary.transactions += stats.transactions;
        self.summary.rows += stats.rows;
        self.summary.position = Some(position.clone());
        let now = Instant::now();
        let secs = now.duration_since(self.last_report).as_secs_f64().max(1e-6);
        self.last_report = now;
        let rows_per_second = stats.rows as f64 / secs;
        tracing::debug!(transactions = stats.transactions, rows = stats.rows, %position,
            lag_ms = lag.as_millis(), already_applied = pending.skipped(), "batch applied");
        self.emit(CdcEvent::Applied {
            transactions: stats.transactions,
            rows: stats.rows,
            position: position.clone(),
            lag,
            rows_per_second,
        });
        Ok(position)
    }

    /// The transaction being read has grown to the batch limit: applies the whole
    /// transactions before it (committed as usual), then hands its events read so far to
    /// [`ApplySink::apply_part`] and drops them, unless it is already applied.
    async fn stream<K: ApplySink>(&mut self, sink: &mut K, pending: &mut Pending) -> Result<()> {
        if pending.has_complete() {
            self.flush(sink, pending).await?;
        }
        self.caught_up = false;
        let part = match pending.take_open(self.summary.position.as_ref())? {
            OpenPart::Part(events) => events,
            OpenPart::AlreadyApplied => {
                tracing::debug!(applied = ?self.summary.position,
                    "skipping a large transaction applied before");
                return Ok(());
            }
        };
        let Some(last) = part.last() else {
            return Ok(());
        };
        self.emit_applying(&part);
        let stats = sink.apply_part(&part).await.map_err(|e| {
            if e.kind() == ErrorKind::Internal {
                e
            } else {
                e.context(format_args!(
                    "applying changes up to `{}` (part of a transaction)",
                    last.position
                ))
            }
        })?;
        // Not progress yet (nothing is committed): a failure streak goes on.
        pending.add_part(stats);
        self.counts.add(&part);
        tracing::debug!(rows = stats.rows, position = %last.position,
            "part of a large transaction applied");
        Ok(())
    }
}

/// Now minus the source timestamp of `event` (zero if the clocks disagree).
fn lag_of(event: &ChangeEvent) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    now.saturating_sub(Duration::from_secs(u64::from(event.timestamp)))
}
