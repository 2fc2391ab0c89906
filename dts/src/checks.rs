//! Verification beside replication, in a running `dts run`: a sample of the applied row
//! changes compared source against target (`incremental.verify_sample`), and the
//! verification of the tables the full load copied (`full.verify` with incremental
//! migration).
//!
//! Both go through the verification engine of `dts-fullload` (the same row reads, type
//! mapping and comparison as `dts verify`) and its re-check: a difference is read again once
//! the target has applied past the source position it was read at, and only one that reads
//! the same in every round is reported, so changes in flight give no false report.
//!
//! The sample is taken where changes leave the source reader ([`Checks::tap`]): a random
//! draw per row change and a non-blocking send into a bounded queue, so the apply never
//! waits for it; a rate limit (`incremental.verify_max_rows_per_second`) and the queue's
//! bound keep its cost and memory fixed whatever the write load. Samples the queue cannot
//! hold are dropped and counted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dts_connectors::{Source, Target};
use dts_core::{
    Change, ChangeEvent, ChangeSource, Chunk, Error, ErrorKind, Position, Result, SampleProgress,
    StateStore, TableName, Value,
};
use dts_fullload::verify::{verify_tables, VerifyReport, Worker};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::{MigrationType, TaskConfig};
use crate::task::{Run, TaskEvent};
use crate::verify::{LiveRecheck, TableShape};

/// Sampled keys waiting to be compared, at most.
const QUEUE: usize = 10_000;
/// Keys compared in one round, at most.
const ROUND_KEYS: usize = 1_000;
/// How long a round collects keys before comparing them.
const ROUND_WINDOW: Duration = Duration::from_secs(2);
/// Re-check rounds of a difference, and how long each waits for replication.
const RECHECK_ROUNDS: u32 = 3;
const RECHECK_PATIENCE: Duration = Duration::from_secs(60);
/// The state-store step recording that the full load's tables verified clean.
const FULL_VERIFIED: &str = "full_verified";

/// Something the verification beside replication found.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SampleEvent {
    /// A round of sampled rows was compared.
    Compared {
        /// Rows compared in this round.
        rows: u64,
        /// Differences that persisted in this round.
        differences: u64,
        /// Differences that settled when read again (changes in flight).
        settled: u64,
        /// Samples dropped since the last round (the queue was full).
        dropped: u64,
    },
    /// A sampled row differs, source against target, after re-checks.
    Difference {
        /// The target table.
        table: String,
        /// `missing`, `extra` or `different`.
        kind: &'static str,
        /// The key, as `column=value` pairs.
        key: Vec<String>,
        /// The columns that differ (for `different`).
        columns: Vec<String>,
    },
    /// A round could not compare (a lost connection, a table changed by DDL): skipped.
    Skipped {
        /// Why.
        reason: String,
    },
}

/// Updates the published progress of the sampled verification from one event.
pub(crate) fn publish(p: &mut SampleProgress, e: &SampleEvent) {
    match e {
        SampleEvent::Compared {
            rows,
            settled,
            dropped,
            ..
        } => {
            p.rows += rows;
            p.settled += settled;
            p.dropped += dropped;
        }
        SampleEvent::Difference {
            table,
            kind,
            key,
            columns,
        } => {
            p.differences += 1;
            if p.last.len() == 10 {
                p.last.remove(0);
            }
            let cols = if columns.is_empty() {
                String::new()
            } else {
                format!(" in {}", columns.join(", "))
            };
            p.last
                .push(format!("{kind} `{table}` ({}){cols}", key.join(", ")));
        }
        SampleEvent::Skipped { .. } => p.skipped += 1,
    }
}

/// The status lines of the sampled verification.
pub(crate) fn show(f: &mut std::fmt::Formatter<'_>, s: &SampleProgress) -> std::fmt::Result {
    writeln!(
        f,
        "sampled verification: {} rows compared, {} differences ({} settled when read \
         again, {} samples dropped, {} rounds skipped)",
        s.rows, s.differences, s.settled, s.dropped, s.skipped
    )?;
    for d in &s.last {
        writeln!(f, "  {d}")?;
    }
    Ok(())
}

/// A sampled row change: its table, key (source values) and the position after it.
struct Sampled {
    table: TableName,
    key: Vec<Value>,
    position: Position,
}

/// The draw and the rate limit of the sample, shared by the taps of one run.
struct Gate {
    share: f64,
    rate: f64,
    state: Mutex<GateState>,
    dropped: AtomicU64,
    tx: mpsc::Sender<Sampled>,
    /// Source key column names per sampled table.
    keys: HashMap<TableName, Vec<String>>,
}

struct GateState {
    random: u64,
    tokens: f64,
    refilled: Instant,
}

impl Gate {
    /// Whether this row change is sampled: a draw under the share, and a token of the rate.
    fn draw(&self) -> bool {
        let Ok(mut s) = self.state.lock() else {
            return false;
        };
        // xorshift64: cheap and good enough to pick rows.
        let mut x = s.random;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.random = x;
        #[allow(clippy::cast_precision_loss)]
        let u = (x >> 11) as f64 / (1u64 << 53) as f64;
        if u >= self.share {
            return false;
        }
        let now = Instant::now();
        let elapsed = now.duration_since(s.refilled).as_secs_f64();
        s.refilled = now;
        s.tokens = (s.tokens + elapsed * self.rate).min(self.rate);
        if s.tokens < 1.0 {
            return false;
        }
        s.tokens -= 1.0;
        true
    }

    fn offer(&self, event: &ChangeEvent) {
        let (table, row) = match &event.change {
            Change::Insert { table, row } | Change::Delete { table, row } => (table, row),
            Change::Update { table, after, .. } => (table, after),
            _ => return,
        };
        let Some(key) = self.keys.get(table) else {
            return;
        };
        if !self.draw() {
            return;
        }
        let values: Option<Vec<Value>> = key
            .iter()
            .map(|k| {
                let i = row.columns.iter().position(|c| c == k)?;
                row.values.get(i).cloned()
            })
            .collect();
        let Some(values) = values else { return };
        let sampled = Sampled {
            table: table.clone(),
            key: values,
            position: event.position.clone(),
        };
        if self.tx.try_send(sampled).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A change source that offers every row change it passes on to the sample.
pub(crate) struct SampleTap<S> {
    inner: S,
    gate: Option<Arc<Gate>>,
}

#[dts_core::async_trait]
impl<S: ChangeSource> ChangeSource for SampleTap<S> {
    async fn next_events(&mut self, max: usize, timeout: Duration) -> Result<Vec<ChangeEvent>> {
        let events = self.inner.next_events(max, timeout).await?;
        if let Some(gate) = &self.gate {
            for e in &events {
                gate.offer(e);
            }
        }
        Ok(events)
    }

    fn acknowledge(&mut self, position: &Position) {
        self.inner.acknowledge(position);
    }
}

/// The checks running beside one replication run.
pub(crate) struct Checks {
    gate: Option<Arc<Gate>>,
    sampler: Option<JoinHandle<()>>,
    full: Option<JoinHandle<Result<()>>>,
    /// Set when replication must stop (the run's stop, or the full verification failed).
    stop: watch::Receiver<bool>,
    forward: JoinHandle<()>,
    /// Whether the full verification asked replication to continue past `until`.
    pub(crate) holds_until: bool,
}

impl Checks {
    /// Starts the checks the task asks for beside the replication of `run`.
    pub(crate) async fn start(run: &Run<'_>) -> Result<Checks> {
        let config = run.config;
        let (stop_tx, stop) = watch::channel(*run.stop.borrow());
        let stop_tx = Arc::new(stop_tx);
        let forward = {
            let mut run_stop = run.stop.clone();
            let tx = stop_tx.clone();
            tokio::spawn(async move {
                while run_stop.changed().await.is_ok() {
                    if *run_stop.borrow() {
                        let _ = tx.send(true);
                    }
                }
            })
        };

        let mut gate = None;
        let mut sampler = None;
        if config.incremental.verify_sample > 0.0 {
            let mut shapes = HashMap::new();
            let mut keys = HashMap::new();
            for tp in &run.plan.schema.tables {
                if let Some(shape) = crate::verify::table_shape(
                    config,
                    &run.source,
                    run.target.engine(),
                    &run.plan,
                    tp,
                )? {
                    if !shape.key.is_empty() {
                        keys.insert(tp.source.clone(), shape.key_names.clone());
                        shapes.insert(tp.source.clone(), shape);
                    }
                }
            }
            let (tx, rx) = mpsc::channel(QUEUE);
            let seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0x2545_f491_4f6c_dd1d, |d| {
                    u64::from(d.subsec_nanos()) ^ d.as_secs().rotate_left(32)
                })
                | 1;
            let rate = f64::from(config.incremental.verify_max_rows_per_second);
            let g = Arc::new(Gate {
                share: config.incremental.verify_sample,
                rate,
                state: Mutex::new(GateState {
                    random: seed,
                    tokens: rate,
                    refilled: Instant::now(),
                }),
                dropped: AtomicU64::new(0),
                tx,
                keys,
            });
            sampler = Some(tokio::spawn(sample_loop(
                config.clone(),
                shapes,
                rx,
                g.clone(),
                run.events.clone(),
            )));
            gate = Some(g);
        }

        let mut full = None;
        let mut holds_until = false;
        if config.full.verify
            && config.runs(MigrationType::Full)
            && !run.store.is_done(FULL_VERIFIED).await?
        {
            holds_until = run.options.until_caught_up;
            let until = if holds_until {
                Some(run.source.current_position().await?)
            } else {
                None
            };
            full = Some(tokio::spawn(verify_full_load(
                config.clone(),
                run.events.clone(),
                stop_tx.clone(),
                until,
            )));
        }
        Ok(Checks {
            gate,
            sampler,
            full,
            stop,
            forward,
            holds_until,
        })
    }

    /// Wraps a change source of the run so that its row changes are offered to the sample.
    pub(crate) fn tap<S: ChangeSource>(&self, inner: S) -> SampleTap<S> {
        SampleTap {
            inner,
            gate: self.gate.clone(),
        }
    }

    /// The stop signal replication follows.
    pub(crate) fn stop(&self) -> watch::Receiver<bool> {
        self.stop.clone()
    }

    /// Ends the checks once replication ended: the sample stops; the result of the full
    /// load's verification, when it finished (an unfinished one runs again next run).
    pub(crate) async fn finish(mut self) -> Result<()> {
        if let Some(s) = self.sampler.take() {
            s.abort();
        }
        self.forward.abort();
        let Some(mut full) = self.full.take() else {
            return Ok(());
        };
        // A verification that stopped replication ends right after asking.
        let waited = tokio::time::timeout(Duration::from_secs(2), &mut full).await;
        if let Ok(joined) = waited {
            return joined.map_err(|e| {
                Error::internal(format!("the verification of the full load failed: {e}"))
            })?;
        }
        {
            full.abort();
            tracing::info!(
                "replication stopped before the verification of the full load finished: \
                 it runs again when the task runs again"
            );
        }
        Ok(())
    }
}

impl Drop for Checks {
    fn drop(&mut self) {
        self.forward.abort();
        if let Some(s) = &self.sampler {
            s.abort();
        }
        if let Some(f) = &self.full {
            f.abort();
        }
    }
}

fn emit(events: &Option<mpsc::UnboundedSender<TaskEvent>>, e: SampleEvent) {
    if let Some(tx) = events {
        let _ = tx.send(TaskEvent::Sampled(e));
    }
}

/// Waits until the target's applied position has reached `position` (`false` after
/// `patience`).
async fn wait_applied(
    store: &dyn StateStore,
    position: &Position,
    patience: Duration,
) -> Result<bool> {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(applied) = store.applied_position().await? {
            if applied.log_cmp(position).is_some_and(|o| o.is_ge()) {
                return Ok(true);
            }
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Compares the sampled keys, round after round, until aborted.
async fn sample_loop(
    config: TaskConfig,
    shapes: HashMap<TableName, TableShape>,
    mut rx: mpsc::Receiver<Sampled>,
    gate: Arc<Gate>,
    events: Option<mpsc::UnboundedSender<TaskEvent>>,
) {
    loop {
        let Some(first) = rx.recv().await else { return };
        let mut round = vec![first];
        let deadline = tokio::time::Instant::now() + ROUND_WINDOW;
        while round.len() < ROUND_KEYS {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(s)) => round.push(s),
                Ok(None) => return,
                Err(_) => break,
            }
        }
        let dropped = gate.dropped.swap(0, Ordering::Relaxed);
        match compare_round(&config, &shapes, round).await {
            Ok((report, rows)) => {
                let mut differences = 0;
                let mut settled = 0;
                for t in &report.tables {
                    settled += t.settled;
                    let kinds = [
                        ("missing", &t.missing_rows),
                        ("extra", &t.extra_rows),
                        ("different", &t.different_rows),
                    ];
                    for (kind, rows) in kinds {
                        for d in rows {
                            differences += 1;
                            let key: Vec<String> = t
                                .key_columns
                                .iter()
                                .zip(&d.key)
                                .map(|(c, v)| format!("{c}={v}"))
                                .collect();
                            tracing::warn!(
                                table = %t.target,
                                kind,
                                key = %key.join(", "),
                                columns = %d.columns.join(", "),
                                "sampled verification: the target row differs from the source"
                            );
                            emit(
                                &events,
                                SampleEvent::Difference {
                                    table: t.target.clone(),
                                    kind,
                                    key,
                                    columns: d.columns.clone(),
                                },
                            );
                        }
                    }
                }
                tracing::debug!(rows, differences, settled, dropped, "sampled rows compared");
                emit(
                    &events,
                    SampleEvent::Compared {
                        rows,
                        differences,
                        settled,
                        dropped,
                    },
                );
            }
            Err(e) => {
                tracing::warn!(error = %e.report(), "sampled verification: a round was skipped");
                emit(&events, SampleEvent::Skipped { reason: e.report() });
            }
        }
    }
}

/// Compares one round of sampled keys once the target applied them; returns the report and
/// the rows compared.
async fn compare_round(
    config: &TaskConfig,
    shapes: &HashMap<TableName, TableShape>,
    round: Vec<Sampled>,
) -> Result<(VerifyReport, u64)> {
    // One comparison per key, after the last change of the round.
    let mut last: Option<Position> = None;
    let mut by_table: HashMap<&TableName, HashMap<String, Vec<Value>>> = HashMap::new();
    for s in round {
        if last
            .as_ref()
            .is_none_or(|p| s.position.log_cmp(p).is_some_and(|o| o.is_gt()))
        {
            last = Some(s.position.clone());
        }
        let Some((name, _)) = shapes.get_key_value(&s.table) else {
            continue;
        };
        by_table
            .entry(name)
            .or_default()
            .insert(format!("{:?}", s.key), s.key);
    }
    let source = Source::connect(&config.source.url)
        .await?
        .with_row_filters(crate::filter::pushdown_of(config, shapes.keys())?);
    let target = Target::connect(&config.target.url).await?;
    let store = target.state_store(&config.name).await?;
    if let Some(p) = &last {
        if !wait_applied(store.as_ref(), p, RECHECK_PATIENCE).await? {
            return Err(Error::new(
                ErrorKind::Transient,
                format!("replication did not apply the sampled changes (up to {p}) in time"),
            ));
        }
    }
    let mut tables = Vec::new();
    let mut rows = 0u64;
    for (name, keys) in by_table {
        let shape = &shapes[name];
        let chunks: Vec<Chunk> = keys
            .into_values()
            .zip(0u32..)
            .map(|(k, i)| Chunk::point(i, shape.key_names.clone(), k))
            .collect();
        rows += chunks.len() as u64;
        tables.push(shape.check(chunks));
    }
    let snapshot = source.open_snapshot(1).await?;
    let reader = snapshot
        .readers
        .into_iter()
        .next()
        .ok_or_else(|| Error::internal("a source snapshot without a reader"))?;
    let worker = Worker {
        source: reader,
        target: target.target_reader(source.engine()).await?,
        repair: None,
    };
    let recheck = Arc::new(LiveRecheck {
        source,
        store,
        patience: RECHECK_PATIENCE,
    });
    let options = dts_fullload::verify::VerifyOptions {
        max_keys: ROUND_KEYS,
        repair: None,
        recheck: Some((recheck, RECHECK_ROUNDS)),
    };
    let report = verify_tables(tables, vec![worker], &options, None).await?;
    Ok((report, rows))
}

/// Verifies the tables the full load copied while replication runs, once it has caught up
/// with the source; a difference that persists stops replication and fails the run.
async fn verify_full_load(
    config: TaskConfig,
    events: Option<mpsc::UnboundedSender<TaskEvent>>,
    stop: Arc<watch::Sender<bool>>,
    until: Option<Position>,
) -> Result<()> {
    let result = verify_full_load_inner(&config, events).await;
    if result.is_err() {
        let _ = stop.send(true);
        return result;
    }
    // `--until-caught-up`: replication went on past its stop position for the
    // verification; it stops once it has applied that position.
    if let Some(until) = until {
        let target = Target::connect(&config.target.url).await?;
        let store = target.state_store(&config.name).await?;
        while !wait_applied(store.as_ref(), &until, RECHECK_PATIENCE).await? {}
        let _ = stop.send(true);
    }
    result
}

async fn verify_full_load_inner(
    config: &TaskConfig,
    events: Option<mpsc::UnboundedSender<TaskEvent>>,
) -> Result<()> {
    let source = Source::connect(&config.source.url).await?;
    let target = Target::connect(&config.target.url).await?;
    let store = target.state_store(&config.name).await?;
    // Fewer changes in flight: start once replication has applied what the source had
    // committed when it began.
    let now = source.current_position().await?;
    while !wait_applied(store.as_ref(), &now, RECHECK_PATIENCE).await? {}
    tracing::info!("verifying the tables of the full load while replication runs");
    let (vtx, forwarder) = crate::task::forward_events(events, TaskEvent::Verification);
    let options = crate::verify::VerifyOptions::default();
    let result = crate::verify::verify(config, &options, Some(vtx)).await;
    let _ = forwarder.await;
    let report = result?;
    if !report.matches() {
        return Err(Error::new(
            ErrorKind::Conflict,
            format!(
                "the target does not match the source after the full load (differences that \
                 persisted while replication ran): {}; repair with `dts verify --repair`, \
                 then run the task again",
                crate::verify::summary(&report)
            ),
        ));
    }
    tracing::info!(
        tables = report.tables.len(),
        "the tables of the full load match the source"
    );
    store.mark_done(FULL_VERIFIED).await
}
