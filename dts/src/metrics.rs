//! Metrics of a run, in the Prometheus text format.
//!
//! The engines and the task runner report through the [`metrics`] facade; a program that
//! wants them scraped calls [`Exporter::serve`] once (the `dts run --metrics-addr` option
//! does), which installs a Prometheus recorder and serves `GET /metrics` over HTTP/1. The
//! labels of the task file's `[metrics]` table, and `task` (the task's name), are added to
//! every metric. Without an exporter the metrics cost next to nothing.
//!
//! | name | kind | labels | meaning |
//! |---|---|---|---|
//! | `dts_task_state` | gauge | `state` | 1 for the state the run is in (`prechecking`, `schema`, `full`, `incremental`, `stopped`, `finished`, `failed`), 0 for the others |
//! | `dts_full_rows_copied_total` | counter | `table` | rows committed by the full load, per source table |
//! | `dts_full_bytes_copied_total` | counter | `table` | approximate bytes committed by the full load |
//! | `dts_full_chunks_copied_total` | counter | `table` | chunks committed by the full load (this run) |
//! | `dts_full_rows_rejected_total` | counter | `table` | rows written to the reject file |
//! | `dts_full_rows_estimated` | gauge | `table` | the source's estimate of the table's rows |
//! | `dts_replication_rows_applied_total` | counter | `table`, `operation` | row changes committed in the target (`insert`, `update`, `delete`; `truncate` counts statements) |
//! | `dts_replication_transactions_applied_total` | counter | | source transactions committed in the target |
//! | `dts_replication_batch_apply_seconds` | histogram | | time to apply one batch and commit it with its position |
//! | `dts_replication_lag_seconds` | gauge | | now minus the source commit time of the oldest change read and not yet applied (of the last batch applied when none waits; 0 once caught up); grows while the target does not answer |
//! | `dts_replication_applied_position` | gauge | | the applied position: the WAL location (PostgreSQL source) or the offset in the binlog file (MySQL/MariaDB source) |
//! | `dts_replication_applied_binlog_file` | gauge | | the number of the applied binlog file (`mysql-bin.000042` → 42) |
//! | `dts_retries_total` | counter | `phase` | retries after transient failures: `full` (the copy goes on with the unfinished chunks), `incremental` (replication reconnects), `runner` (the runner's own steps) |
//! | `dts_errors_total` | counter | `kind` | errors met: each transient failure retried and the error that ended a run, by kind (`connection`, `transient`, `value`, …) |
//! | `dts_alerts_total` | counter | `alert`, `status` | alerts sent (see [`crate::alerts`]) |

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use dts_cdc::CdcEvent;
use dts_core::{Error, ErrorKind, Position, Result, TaskState};
use dts_fullload::ProgressEvent;
use http_body_util::Full;
use hyper::{Request, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;
use tokio::sync::mpsc::{self, UnboundedSender};

use crate::task::{Step, TaskEvent};

pub use dts_cdc::metrics::{
    BATCH_APPLY_SECONDS, ERRORS, RETRIES, ROWS_APPLIED, TRANSACTIONS_APPLIED,
};

/// The run's state, one series per state.
pub const TASK_STATE: &str = "dts_task_state";
/// Rows copied by the full load, per table.
pub const ROWS_COPIED: &str = "dts_full_rows_copied_total";
/// Bytes copied by the full load, per table.
pub const BYTES_COPIED: &str = "dts_full_bytes_copied_total";
/// Chunks copied by the full load, per table.
pub const CHUNKS_COPIED: &str = "dts_full_chunks_copied_total";
/// Rows rejected by the full load, per table.
pub const ROWS_REJECTED: &str = "dts_full_rows_rejected_total";
/// The source's row estimate, per table.
pub const ROWS_ESTIMATED: &str = "dts_full_rows_estimated";
/// Replication lag, in seconds.
pub const LAG_SECONDS: &str = "dts_replication_lag_seconds";
/// The applied position (WAL location, or offset in the binlog file).
pub const APPLIED_POSITION: &str = "dts_replication_applied_position";
/// The applied binlog file's number.
pub const APPLIED_BINLOG_FILE: &str = "dts_replication_applied_binlog_file";
/// Alerts sent, by alert and status.
pub const ALERTS: &str = "dts_alerts_total";

/// Labels the task's own metrics use, which the task file cannot set.
const RESERVED_LABELS: [&str; 9] = [
    "task",
    "state",
    "table",
    "operation",
    "phase",
    "kind",
    "alert",
    "status",
    "le",
];

/// The states `dts_task_state` has a series for.
const STATES: [TaskState; 7] = [
    TaskState::Prechecking,
    TaskState::Schema,
    TaskState::Full,
    TaskState::Incremental,
    TaskState::Stopped,
    TaskState::Finished,
    TaskState::Failed,
];

/// Buckets of the batch apply latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The task file's `[metrics]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Labels added to every metric, such as `{ env = "prod" }`. Names follow Prometheus
    /// (`[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__`) and may not be one the metrics use
    /// themselves (`task`, `table`, `state`, …). Default none.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl MetricsConfig {
    /// Checks the label names.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] naming the label.
    pub fn validate(&self) -> Result<()> {
        for name in self.labels.keys() {
            let mut chars = name.chars();
            let valid = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with("__");
            if !valid {
                return Err(Error::config(format!(
                    "metrics label `{name}` is not a valid label name (letters, digits and \
                     `_`, not starting with a digit or `__`)"
                )));
            }
            if RESERVED_LABELS.contains(&name.as_str()) {
                return Err(Error::config(format!(
                    "metrics label `{name}` is used by dts's own metrics; choose another name"
                )));
            }
        }
        Ok(())
    }
}

/// The Prometheus endpoint of a process: a recorder installed for the whole process, and an
/// HTTP/1 listener answering `GET /metrics` (and `GET /`) with every metric.
#[derive(Debug)]
pub struct Exporter {
    addr: SocketAddr,
    handle: PrometheusHandle,
}

impl Exporter {
    /// Installs the Prometheus recorder for the process, with the task's labels (`task` and
    /// those of its `[metrics]` table) on every metric, and serves it on `addr`, `HOST:PORT`
    /// (port 0: one the system picks, see [`Exporter::local_addr`]). Must be called within
    /// a Tokio runtime, which then serves the scrapes.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] when the labels are invalid or a recorder is installed
    /// already; [`ErrorKind::Io`] naming the address when it cannot be listened on.
    pub async fn serve(addr: &str, config: &crate::TaskConfig) -> Result<Exporter> {
        config.metrics.validate()?;
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!("cannot listen for metrics scrapes on {addr}"),
            )
            .with_source(e)
        })?;
        let addr = listener.local_addr().map_err(|e| {
            Error::new(ErrorKind::Io, "cannot read the metrics listener's address").with_source(e)
        })?;
        let mut builder = PrometheusBuilder::new()
            .add_global_label("task", config.name.clone())
            .set_buckets_for_metric(Matcher::Full(BATCH_APPLY_SECONDS.into()), &LATENCY_BUCKETS)
            .map_err(|e| Error::internal(format!("metrics buckets: {e}")))?;
        for (k, v) in &config.metrics.labels {
            builder = builder.add_global_label(k.clone(), v.clone());
        }
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).map_err(|_| {
            Error::config("a metrics recorder is already installed in this process")
        })?;
        describe();
        // Histograms are kept in buckets that upkeep drains; render does it too, but a
        // process nobody scrapes must not grow.
        let upkeep = handle.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                upkeep.run_upkeep();
            }
        });
        let served = handle.clone();
        tokio::spawn(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics listener: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let handle = served.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let handle = handle.clone();
                        async move { Ok::<_, Infallible>(scrape(&req, &handle)) }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    if let Err(e) = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await
                    {
                        tracing::debug!(error = %e, "metrics scrape connection failed");
                    }
                });
            }
        });
        tracing::info!(%addr, "serving metrics on http://{addr}/metrics");
        Ok(Exporter { addr, handle })
    }

    /// The address scrapes are served on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every metric, in the Prometheus text format, as a scrape returns it.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

/// The answer to one scrape request.
fn scrape<B>(req: &Request<B>, handle: &PrometheusHandle) -> Response<Full<Bytes>> {
    let found = req.method() == hyper::Method::GET && matches!(req.uri().path(), "/metrics" | "/");
    let (status, content_type, body) = if found {
        (
            hyper::StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            handle.render(),
        )
    } else {
        (
            hyper::StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: metrics are served at /metrics\n".to_string(),
        )
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

/// The help text of each metric (`# HELP` lines).
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!(
        TASK_STATE,
        "1 for the state the task's run is in, 0 for the others"
    );
    describe_counter!(
        ROWS_COPIED,
        "Rows committed by the full load, per source table"
    );
    describe_counter!(
        BYTES_COPIED,
        Unit::Bytes,
        "Approximate bytes committed by the full load, per source table"
    );
    describe_counter!(
        CHUNKS_COPIED,
        "Chunks committed by the full load, per source table"
    );
    describe_counter!(
        ROWS_REJECTED,
        "Rows written to the reject file, per source table"
    );
    describe_gauge!(ROWS_ESTIMATED, "The source's estimate of the table's rows");
    describe_counter!(
        ROWS_APPLIED,
        "Row changes committed in the target by replication, per source table and operation"
    );
    describe_counter!(
        TRANSACTIONS_APPLIED,
        "Source transactions committed in the target by replication"
    );
    describe_histogram!(
        BATCH_APPLY_SECONDS,
        Unit::Seconds,
        "Time to apply one batch of changes and commit it with its position"
    );
    describe_gauge!(
        LAG_SECONDS,
        Unit::Seconds,
        "Now minus the source commit time of the oldest change not yet applied"
    );
    describe_gauge!(
        APPLIED_POSITION,
        "The applied position: WAL location, or offset in the binlog file"
    );
    describe_gauge!(APPLIED_BINLOG_FILE, "The number of the applied binlog file");
    describe_counter!(RETRIES, "Retries after transient failures, by phase");
    describe_counter!(
        ERRORS,
        "Errors met (transient failures retried, and the error ending a run), by kind"
    );
    describe_counter!(ALERTS, "Alerts sent, by alert and status");
    // Shown from the first scrape, so that a rate over them starts at zero.
    for phase in ["full", "incremental", "runner"] {
        metrics::counter!(RETRIES, "phase" => phase).absolute(0);
    }
}

/// Counts a retry after `error` in `phase`.
pub(crate) fn count_retry(phase: &'static str, error: &Error) {
    metrics::counter!(RETRIES, "phase" => phase).increment(1);
    metrics::counter!(ERRORS, "kind" => dts_cdc::metrics::kind_label(error.kind())).increment(1);
}

/// What the run is doing, as its events tell: the state and the replication lag, for the
/// metrics and for the alerts.
#[derive(Debug, Default)]
pub(crate) struct Live {
    inner: Mutex<LiveInner>,
}

#[derive(Debug, Default)]
struct LiveInner {
    /// The state of the run, final once it ended.
    state: Option<TaskState>,
    /// The state of the step the run was in last (never a final state).
    step: Option<TaskState>,
    /// Whether the run ended (events still on their way change nothing).
    ended: bool,
    replicating: bool,
    /// The source commit time of the oldest change handed to the target and not applied.
    oldest_unapplied: Option<SystemTime>,
    /// The lag of the last batch applied (zero once caught up).
    last_lag: Duration,
}

impl Live {
    fn lock(&self) -> std::sync::MutexGuard<'_, LiveInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The state the run is in (its final state once it ended), once it began.
    #[cfg(test)]
    pub(crate) fn state(&self) -> Option<TaskState> {
        self.lock().state
    }

    /// The state of the step the run is in, or was in when it ended.
    pub(crate) fn step(&self) -> Option<TaskState> {
        self.lock().step
    }

    /// The replication lag now, while replication runs.
    pub(crate) fn lag(&self) -> Option<Duration> {
        let inner = self.lock();
        if !inner.replicating {
            return None;
        }
        Some(match inner.oldest_unapplied {
            Some(t) => SystemTime::now()
                .duration_since(t)
                .unwrap_or_default()
                .max(inner.last_lag),
            None => inner.last_lag,
        })
    }

    fn set_state(&self, state: TaskState) {
        {
            let mut inner = self.lock();
            inner.state = Some(state);
            if !state.is_final() {
                inner.step = Some(state);
            }
        }
        for s in STATES {
            metrics::gauge!(TASK_STATE, "state" => s.as_str()).set(if s == state {
                1.0
            } else {
                0.0
            });
        }
    }

    fn publish_lag(&self) {
        if let Some(lag) = self.lag() {
            metrics::gauge!(LAG_SECONDS).set(lag.as_secs_f64());
        }
    }

    /// Takes in one event of the run.
    fn on_event(&self, event: &TaskEvent) {
        if self.lock().ended {
            return;
        }
        match event {
            TaskEvent::StepStarted(step) => {
                if *step == Step::Incremental {
                    let mut inner = self.lock();
                    inner.replicating = true;
                    inner.oldest_unapplied = None;
                    inner.last_lag = Duration::ZERO;
                }
                self.set_state(crate::record::state_of(*step));
            }
            TaskEvent::StepFinished(Step::Incremental) => self.lock().replicating = false,
            TaskEvent::Progress(p) => on_progress(p),
            TaskEvent::Replication(e) => self.on_replication(e),
            _ => {}
        }
    }

    fn on_replication(&self, event: &CdcEvent) {
        {
            let mut inner = self.lock();
            match event {
                CdcEvent::Applying { oldest, .. } => {
                    // After a failed attempt the batch is read again: the older time stays.
                    let t = inner.oldest_unapplied.map_or(*oldest, |t| t.min(*oldest));
                    inner.oldest_unapplied = Some(t);
                }
                CdcEvent::Applied { lag, position, .. } => {
                    inner.oldest_unapplied = None;
                    inner.last_lag = *lag;
                    set_position(position);
                }
                CdcEvent::Idle { position } => {
                    inner.oldest_unapplied = None;
                    inner.last_lag = Duration::ZERO;
                    if let Some(p) = position {
                        set_position(p);
                    }
                }
                CdcEvent::CaughtUp { position } => {
                    inner.oldest_unapplied = None;
                    inner.last_lag = Duration::ZERO;
                    set_position(position);
                }
                _ => {}
            }
        }
        self.publish_lag();
    }

    /// Records how the run ended.
    pub(crate) fn finish<T>(&self, result: &Result<T>, incremental: bool) {
        {
            let mut inner = self.lock();
            inner.replicating = false;
            inner.ended = true;
        }
        let state = match result {
            Ok(_) if incremental => TaskState::Stopped,
            Ok(_) => TaskState::Finished,
            Err(e) if e.kind() == ErrorKind::Interrupted => TaskState::Stopped,
            Err(e) => {
                metrics::counter!(ERRORS, "kind" => dts_cdc::metrics::kind_label(e.kind()))
                    .increment(1);
                TaskState::Failed
            }
        };
        self.set_state(state);
    }
}

fn on_progress(event: &ProgressEvent) {
    match event {
        ProgressEvent::TablePlanned {
            table,
            estimated_rows,
            ..
        } => {
            #[allow(clippy::cast_precision_loss)]
            let rows = *estimated_rows as f64;
            metrics::gauge!(ROWS_ESTIMATED, "table" => table.to_string()).set(rows);
        }
        ProgressEvent::ChunkDone {
            table, rows, bytes, ..
        } => {
            let table = table.to_string();
            metrics::counter!(ROWS_COPIED, "table" => table.clone()).increment(*rows);
            metrics::counter!(BYTES_COPIED, "table" => table.clone()).increment(*bytes);
            metrics::counter!(CHUNKS_COPIED, "table" => table).increment(1);
        }
        ProgressEvent::RowRejected { table, .. } => {
            metrics::counter!(ROWS_REJECTED, "table" => table.to_string()).increment(1);
        }
        _ => {}
    }
}

#[allow(clippy::cast_precision_loss)]
fn set_position(position: &Position) {
    match position {
        Position::Lsn(lsn) => metrics::gauge!(APPLIED_POSITION).set(lsn.0 as f64),
        Position::Binlog { file, offset, .. } => {
            metrics::gauge!(APPLIED_POSITION).set(*offset as f64);
            let number = file
                .rsplit_once('.')
                .and_then(|(_, n)| n.parse::<u64>().ok());
            if let Some(n) = number {
                metrics::gauge!(APPLIED_BINLOG_FILE).set(n as f64);
            }
        }
        _ => {}
    }
}

/// Watches the events of a run on their way to `events`: returns the channel the run sends
/// them to, and what they tell. The lag gauge is refreshed every second while replication
/// runs, so it grows while the target does not answer.
pub(crate) fn observe(
    events: Option<UnboundedSender<TaskEvent>>,
) -> (UnboundedSender<TaskEvent>, Arc<Live>) {
    let live = Arc::new(Live::default());
    let (tx, mut rx) = mpsc::unbounded_channel::<TaskEvent>();
    let watched = Arc::clone(&live);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = rx.recv() => {
                    let Some(event) = event else { break };
                    watched.on_event(&event);
                    if let Some(out) = &events {
                        let _ = out.send(event);
                    }
                }
                _ = tick.tick() => watched.publish_lag(),
            }
        }
    });
    (tx, live)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_are_checked() {
        let ok = MetricsConfig {
            labels: [("env".to_string(), "prod".to_string())].into(),
        };
        ok.validate().unwrap();
        for bad in ["task", "table", "1x", "a-b", "__x", ""] {
            let config = MetricsConfig {
                labels: [(bad.to_string(), "v".to_string())].into(),
            };
            let e = config.validate().unwrap_err();
            assert!(e.to_string().contains(&format!("`{bad}`")), "{e}");
        }
    }

    #[test]
    fn lag_grows_while_a_batch_waits_and_is_zero_once_caught_up() {
        let live = Live::default();
        assert_eq!(live.lag(), None, "no lag before replication");
        live.on_event(&TaskEvent::StepStarted(Step::Incremental));
        assert_eq!(live.lag(), Some(Duration::ZERO));
        assert_eq!(live.state(), Some(TaskState::Incremental));
        let oldest = SystemTime::now() - Duration::from_secs(30);
        live.on_event(&TaskEvent::Replication(CdcEvent::Applying {
            rows: 3,
            oldest,
        }));
        let lag = live.lag().unwrap();
        assert!(
            lag >= Duration::from_secs(30) && lag < Duration::from_secs(40),
            "{lag:?}"
        );
        live.on_event(&TaskEvent::Replication(CdcEvent::CaughtUp {
            position: Position::Lsn(dts_core::Lsn(7)),
        }));
        assert_eq!(live.lag(), Some(Duration::ZERO));
        live.finish(&Ok(()), true);
        assert_eq!(live.lag(), None);
        assert_eq!(live.state(), Some(TaskState::Stopped));
        assert_eq!(live.step(), Some(TaskState::Incremental));
        // An event still on its way when the run ended changes nothing.
        live.on_event(&TaskEvent::StepStarted(Step::Incremental));
        assert_eq!(live.state(), Some(TaskState::Stopped));
        assert_eq!(live.lag(), None);
    }
}
