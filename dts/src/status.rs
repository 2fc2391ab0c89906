//! A task's status as any machine that reaches the target sees it (`dts status`), stopping a
//! task running elsewhere (`dts stop`) and removing what a task left (`dts cleanup`).
//!
//! Everything is read from the task's state in the target: the task record the running
//! process keeps (state, heartbeat, published progress), the stored chunk plans and
//! checkpoints, and the applied replication position. The source is asked only for its
//! current log position, to measure how far replication is behind in bytes.

use std::fmt;
use std::time::{Duration, Instant};
#[cfg(test)]
use std::time::{SystemTime, UNIX_EPOCH};

use dts_connectors::{Source, Target};
use dts_core::{
    Error, ErrorKind, Position, Result, RunHolder, StateStore, TableName, TaskRecord, TaskState,
};
use serde::Serialize;

use crate::record::HEARTBEAT_STALE;
use crate::TaskConfig;

/// Where a task stands, for scripts: each has its own exit code of `dts status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// A process runs the task (it holds the task's run lock).
    Running,
    /// The last run did everything the task lists (or the application was switched over).
    Finished,
    /// No process runs the task, which is not finished: stopped when asked, or its process
    /// was killed; running it again resumes.
    Stopped,
    /// The last run failed; the status holds the error and its fix.
    Failed,
    /// The task was never run (or its state was cleaned up).
    NeverRun,
}

impl Outcome {
    /// The exit code `dts status` uses for this outcome: 0 running, 3 finished, 4 stopped,
    /// 5 failed, 6 never run (1 and 2 are errors, as for every command).
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Running => 0,
            Outcome::Finished => 3,
            Outcome::Stopped => 4,
            Outcome::Failed => 5,
            Outcome::NeverRun => 6,
        }
    }
}

/// The full load of one table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableStatus {
    /// The source table.
    pub source: TableName,
    /// The target table.
    pub target: TableName,
    /// Rows committed in the target (by every run).
    pub rows_done: u64,
    /// The source server's estimate of the rows (at least the rows done).
    pub rows_estimated: u64,
    /// Chunks committed.
    pub chunks_done: u64,
    /// Chunks planned.
    pub chunks_total: u64,
    /// Rows per second over the last minute.
    pub rows_per_second: f64,
    /// Seconds until the table is copied at that rate, while it is being copied.
    pub eta_seconds: Option<u64>,
}

/// Replication.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplicationStatus {
    /// The position applied in the target.
    pub applied_position: Option<Position>,
    /// Seconds since a batch was last applied.
    pub applied_seconds_ago: Option<f64>,
    /// The source's current position, when the source could be asked.
    pub source_position: Option<Position>,
    /// Why the source could not be asked, if it could not.
    pub source_error: Option<String>,
    /// How far the applied position is behind the source's, in bytes of log, when both are
    /// in the same binlog file (or are LSNs).
    pub lag_bytes: Option<u64>,
    /// Binlog files between the applied position and the source's, when they differ.
    pub lag_files: Option<u64>,
    /// Lag in seconds, as the running process last measured it.
    pub lag_seconds: Option<f64>,
    /// Rows applied per second, recently.
    pub rows_per_second: f64,
    /// The source commit time of the last transaction applied (UTC).
    pub last_commit_at: Option<String>,
    /// Transactions applied by the current (or last) run.
    pub transactions: u64,
    /// Rows applied by the current (or last) run.
    pub rows: u64,
}

/// A task's status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskStatus {
    /// The task's name.
    pub task: String,
    /// Where it stands.
    pub outcome: Outcome,
    /// Its record, if it was ever run.
    pub record: Option<TaskRecord>,
    /// The process holding the run lock, if any.
    pub running: Option<RunHolder>,
    /// Whether that process beats (its heartbeat is fresher than
    /// [`crate::record::HEARTBEAT_STALE`]).
    pub heartbeat_fresh: bool,
    /// Whether the pre-data schema step is done.
    pub pre_data_done: bool,
    /// Post-data statements done.
    pub post_data_done: u64,
    /// Post-data statements in all (when a run published it).
    pub post_data_total: u64,
    /// The full load, per table.
    pub tables: Vec<TableStatus>,
    /// Replication, once it started.
    pub replication: Option<ReplicationStatus>,
}

impl TaskStatus {
    /// Reads the status of `config`'s task from its target (and the source's position, if
    /// the task replicates and the source answers within a few seconds).
    ///
    /// # Errors
    ///
    /// Connection and server errors of the target.
    pub async fn read(config: &TaskConfig) -> Result<Self> {
        let store = open_store(config).await?;
        let record = store.task_record().await?;
        let running = store.run_holder().await?;
        let heartbeat_fresh = record
            .as_ref()
            .and_then(|r| r.heartbeat.as_ref())
            .is_some_and(|h| h.age < HEARTBEAT_STALE);
        let outcome = match (&record, &running) {
            (_, Some(_)) => Outcome::Running,
            (None, None) => Outcome::NeverRun,
            (Some(r), None) => match r.state {
                TaskState::Failed => Outcome::Failed,
                TaskState::Finished | TaskState::Switched => Outcome::Finished,
                _ => Outcome::Stopped,
            },
        };
        let live = outcome == Outcome::Running;
        let pre_data_done = store.is_done(crate::Step::SchemaPreData.key()).await?;
        let post_data_done = store
            .statements_done(crate::Step::SchemaPostData.key())
            .await?;
        let published = record
            .as_ref()
            .map(|r| r.progress.clone())
            .unwrap_or_default();
        let copying = live && record.as_ref().is_some_and(|r| r.state == TaskState::Full);

        // Tables: the published plan (source, target, estimate), else the stored chunk
        // plans; rows and chunks from the checkpoints.
        let planned = store.planned_chunks().await?;
        let copied = store.copied_chunks().await?;
        let mut tables: Vec<TableStatus> = Vec::new();
        let mut push = |source: &TableName, target: &TableName, chunks: u64, estimate: u64| {
            let done = copied.iter().find(|c| c.table == *target);
            let (rows_done, chunks_done, recent) =
                done.map_or((0, 0, 0), |c| (c.rows, c.chunks, c.rows_last_minute));
            let rate = if copying { recent as f64 / 60.0 } else { 0.0 };
            let rows_estimated = estimate.max(rows_done);
            let eta_seconds = (copying && rate > 0.0 && chunks_done < chunks)
                .then(|| Duration::try_from_secs_f64((rows_estimated - rows_done) as f64 / rate))
                .and_then(|d| d.ok())
                .map(|d| d.as_secs() + 1);
            tables.push(TableStatus {
                source: source.clone(),
                target: target.clone(),
                rows_done,
                rows_estimated,
                chunks_done,
                chunks_total: chunks,
                rows_per_second: rate,
                eta_seconds,
            });
        };
        for (source, chunks) in &planned {
            match published.tables.iter().find(|t| t.source == *source) {
                Some(t) => push(source, &t.target, *chunks, t.estimated_rows),
                None => push(source, source, *chunks, 0),
            }
        }

        let applied = store.applied_position().await?;
        let replication = if applied.is_some() || published.replication.is_some() {
            let r = published.replication.clone().unwrap_or_default();
            let (source_position, source_error) = if live && applied.is_some() {
                match source_position(config).await {
                    Ok(p) => (Some(p), None),
                    Err(e) => (None, Some(e.report())),
                }
            } else {
                (None, None)
            };
            let (lag_bytes, lag_files) = match (&applied, &source_position) {
                (Some(a), Some(s)) => log_distance(a, s),
                _ => (None, None),
            };
            Some(ReplicationStatus {
                applied_seconds_ago: store.applied_age().await?.map(|d| d.as_secs_f64()),
                applied_position: applied,
                source_position,
                source_error,
                lag_bytes,
                lag_files,
                lag_seconds: published
                    .replication
                    .as_ref()
                    .map(|r| r.lag_ms as f64 / 1000.0),
                rows_per_second: if live { r.rows_per_second } else { 0.0 },
                last_commit_at: r.last_commit_unix_ms.map(utc_from_unix_ms),
                transactions: r.transactions,
                rows: r.rows,
            })
        } else {
            None
        };
        Ok(Self {
            task: config.name.clone(),
            outcome,
            record,
            running,
            heartbeat_fresh,
            pre_data_done,
            post_data_done,
            post_data_total: published.post_data_statements,
            tables,
            replication,
        })
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(record) = &self.record else {
            return writeln!(f, "task `{}`: never run", self.task);
        };
        let state = record.state;
        match (&self.running, &record.heartbeat) {
            (Some(h), beat) => {
                write!(
                    f,
                    "task `{}`: {state}, running (pid {} on host `{}`, since {} UTC",
                    self.task, h.pid, h.host, h.since
                )?;
                match beat {
                    Some(b) if self.heartbeat_fresh => {
                        write!(f, "; heartbeat {:.1} s ago)", b.age.as_secs_f64())?
                    }
                    Some(b) => write!(
                        f,
                        "; NOT RESPONDING: last heartbeat {:.0} s ago)",
                        b.age.as_secs_f64()
                    )?,
                    None => write!(f, ")")?,
                }
                writeln!(f)?;
            }
            (None, _) if !state.is_final() => writeln!(
                f,
                "task `{}`: {state}, not running (its process ended without recording it: \
                 killed?); run the task again to resume",
                self.task
            )?,
            (None, _) => writeln!(f, "task `{}`: {state}, not running", self.task)?,
        }
        writeln!(
            f,
            "  state since {} UTC, first run {} UTC{}",
            record.state_since,
            record.created_at,
            if record.stop_requested {
                "; a stop was requested"
            } else {
                ""
            }
        )?;
        if let Some(p) = &record.switchover_position {
            writeln!(f, "  switched over at {p}")?;
        }
        write!(
            f,
            "schema: pre-data {}",
            if self.pre_data_done {
                "done"
            } else {
                "not done"
            }
        )?;
        if self.post_data_total > 0 || self.post_data_done > 0 {
            write!(
                f,
                "; post-data {}/{} statements",
                self.post_data_done,
                self.post_data_total.max(self.post_data_done)
            )?;
        }
        writeln!(f)?;
        if !self.tables.is_empty() {
            let rows: u64 = self.tables.iter().map(|t| t.rows_done).sum();
            let est: u64 = self.tables.iter().map(|t| t.rows_estimated).sum();
            let chunks: u64 = self.tables.iter().map(|t| t.chunks_done).sum();
            let total: u64 = self.tables.iter().map(|t| t.chunks_total).sum();
            writeln!(
                f,
                "full load: {} tables, {rows} of ~{est} rows, {chunks}/{total} chunks",
                self.tables.len()
            )?;
            for t in &self.tables {
                write!(
                    f,
                    "  {:<30} {:>10} / ~{:<10} rows  {:>5}/{:<5} chunks",
                    t.target.to_string(),
                    t.rows_done,
                    t.rows_estimated,
                    t.chunks_done,
                    t.chunks_total
                )?;
                if t.rows_per_second > 0.0 {
                    write!(f, "  {:.0} rows/s", t.rows_per_second)?;
                }
                if let Some(eta) = t.eta_seconds {
                    write!(f, "  ETA {eta} s")?;
                }
                writeln!(f)?;
            }
        }
        if let Some(r) = &self.replication {
            write!(f, "replication: applied ")?;
            match &r.applied_position {
                Some(p) => write!(f, "{p}")?,
                None => write!(f, "nothing yet")?,
            }
            if let Some(s) = r.applied_seconds_ago {
                write!(f, " ({s:.1} s ago)")?;
            }
            writeln!(f)?;
            match (
                &r.source_position,
                r.lag_bytes,
                r.lag_files,
                &r.source_error,
            ) {
                (Some(p), Some(b), _, _) => writeln!(f, "  source at {p}: {b} bytes behind")?,
                (Some(p), None, Some(n), _) => {
                    writeln!(f, "  source at {p}: {n} binlog files behind")?
                }
                (Some(p), _, _, _) => writeln!(f, "  source at {p}")?,
                (None, _, _, Some(e)) => writeln!(f, "  source position unknown: {e}")?,
                _ => {}
            }
            write!(f, "  lag ")?;
            match r.lag_seconds {
                Some(l) => write!(f, "{l:.1} s")?,
                None => write!(f, "unknown")?,
            }
            write!(
                f,
                ", {:.0} rows/s; {} transactions, {} rows applied by the last run",
                r.rows_per_second, r.transactions, r.rows
            )?;
            if let Some(c) = &r.last_commit_at {
                write!(f, "; last applied commit {c} UTC")?;
            }
            writeln!(f)?;
        }
        if let Some(s) = &record.progress.sampled {
            crate::checks::show(f, s)?;
        }
        if let Some(e) = &record.failure {
            writeln!(f, "last error ({}):", e.kind)?;
            for line in e.message.lines() {
                writeln!(f, "  {line}")?;
            }
            writeln!(f, "fix: {}", e.fix)?;
        }
        Ok(())
    }
}

/// The task's state store, on a connection to the target of its own.
async fn open_store(config: &TaskConfig) -> Result<Box<dyn StateStore>> {
    Target::connect(&config.target.url)
        .await?
        .state_store(&config.name)
        .await
}

/// The source's current log position, within a few seconds.
async fn source_position(config: &TaskConfig) -> Result<Position> {
    let ask = async {
        Source::connect(&config.source.url)
            .await?
            .current_position()
            .await
    };
    tokio::time::timeout(Duration::from_secs(5), ask)
        .await
        .map_err(|_| {
            Error::new(
                ErrorKind::Connection,
                "source: no answer within 5 s to the question of its log position",
            )
        })?
}

/// How far `applied` is behind `current`: bytes when they are in one log file (or are LSNs),
/// else the number of binlog files between them.
fn log_distance(applied: &Position, current: &Position) -> (Option<u64>, Option<u64>) {
    match (applied, current) {
        (
            Position::Binlog {
                file: a, offset: x, ..
            },
            Position::Binlog {
                file: b, offset: y, ..
            },
        ) if a == b => (Some(y.saturating_sub(*x)), None),
        (Position::Binlog { file: a, .. }, Position::Binlog { file: b, .. }) => {
            let seq = |f: &str| f.rsplit('.').next()?.parse::<u64>().ok();
            (None, seq(b).zip(seq(a)).map(|(b, a)| b.saturating_sub(a)))
        }
        (Position::Lsn(a), Position::Lsn(b)) => (Some(b.0.saturating_sub(a.0)), None),
        _ => (None, None),
    }
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of a time in milliseconds since the Unix epoch.
fn utc_from_unix_ms(ms: u64) -> String {
    let (date, time) = utc_date_time(ms / 1000);
    format!("{date} {time}")
}

/// The civil date (`YYYY-MM-DD`) and time of day (`HH:MM:SS`), in UTC, of a time in
/// seconds since the Unix epoch.
pub(crate) fn utc_date_time(secs: u64) -> (String, String) {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01 (never negative here).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (
        format!("{year:04}-{month:02}-{day:02}"),
        format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

/// How [`stop`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopOutcome {
    /// No process ran the task.
    NotRunning,
    /// The process that ran the task exited.
    Stopped(RunHolder),
    /// The process still runs the task after the timeout.
    StillRunning(RunHolder),
}

/// Asks the process running `config`'s task (on any machine) to stop at a clean point, as on
/// SIGTERM, and waits for it to exit, for at most `timeout`.
///
/// # Errors
///
/// Connection and server errors of the target.
pub async fn stop(config: &TaskConfig, timeout: Duration) -> Result<StopOutcome> {
    let store = open_store(config).await?;
    let Some(holder) = store.run_holder().await? else {
        return Ok(StopOutcome::NotRunning);
    };
    store.request_stop().await?;
    let started = Instant::now();
    loop {
        match store.run_holder().await? {
            None => return Ok(StopOutcome::Stopped(holder)),
            Some(h) if started.elapsed() >= timeout => return Ok(StopOutcome::StillRunning(h)),
            Some(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// What a task left, for [`cleanup`] to drop.
#[derive(Debug, Clone, PartialEq)]
pub struct Leftovers {
    /// The task's record, if any.
    pub record: Option<TaskRecord>,
    /// The change reader of the last run on the source, if recorded (source connection id).
    pub reader: Option<u64>,
}

/// What [`cleanup`] dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cleaned {
    /// `dts_meta` rows deleted, per table.
    pub rows: Vec<(String, u64)>,
    /// Whether the `dts_meta` schema was dropped (no task had rows left in it).
    pub schema_dropped: bool,
    /// The change reader ended on the source (its connection id), if one still ran.
    pub reader_ended: Option<u64>,
    /// What change capture kept on the source and was dropped (a PostgreSQL source's
    /// replication slot and publication).
    pub capture_dropped: Vec<String>,
}

/// What `config`'s task left in the target's state and on the source.
///
/// # Errors
///
/// Connection and server errors of the target.
pub async fn leftovers(config: &TaskConfig) -> Result<Leftovers> {
    let store = open_store(config).await?;
    Ok(Leftovers {
        record: store.task_record().await?,
        reader: store.reader().await?.map(|r| r.connection_id),
    })
}

/// Drops what `config`'s task left: its change reader on the source (if it still runs) and
/// every `dts_meta` row of the task (the schema too, once no task has rows in it). Refuses
/// while a run holds the task.
///
/// # Errors
///
/// [`ErrorKind::Conflict`] while a process runs the task (naming it); connection and
/// server errors (the state is kept when the source cannot be reached to end its reader).
pub async fn cleanup(config: &TaskConfig) -> Result<Cleaned> {
    let store = open_store(config).await?;
    if let Some(h) = store.run_holder().await? {
        return Err(running_error(&config.name, &h));
    }
    store.migrate().await?;
    // Holding the lock, no run can start while the state goes.
    store.lock_run().await?;
    let mut cleaned = Cleaned::default();
    let reader = store.reader().await?;
    // A PostgreSQL source keeps the task's replication slot, which holds its WAL for ever.
    let slotted = ["postgres://", "postgresql://"]
        .iter()
        .any(|s| config.source.url.starts_with(s));
    if reader.is_some() || slotted {
        let source = Source::connect(&config.source.url).await?;
        if let Some(reader) = reader {
            if source.end_reader(&reader).await? {
                cleaned.reader_ended = Some(reader.connection_id);
            }
        }
        cleaned.capture_dropped = source
            .drop_capture(&dts_connectors::capture_slot_name(
                &config.name,
                &config.source.url,
            ))
            .await?;
    }
    let dropped = store.drop_task().await?;
    cleaned.rows = dropped.rows;
    cleaned.schema_dropped = dropped.schema_dropped;
    Ok(cleaned)
}

/// The error for a command that needs the task not to run.
fn running_error(task: &str, h: &RunHolder) -> Error {
    Error::new(
        ErrorKind::Conflict,
        format!(
            "task `{task}` is running (pid {} on host `{}`, since {} UTC): stop it first \
             with `dts stop`",
            h.pid, h.host, h.since
        ),
    )
}

/// Now, in milliseconds since the Unix epoch.
#[cfg(test)]
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dts_core::Lsn;

    #[test]
    fn utc_formatting_matches_known_dates() {
        assert_eq!(utc_from_unix_ms(0), "1970-01-01 00:00:00");
        assert_eq!(utc_from_unix_ms(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(utc_from_unix_ms(1_718_900_000_123), "2024-06-20 16:13:20");
        assert!(utc_from_unix_ms(now_ms()).starts_with("20"));
    }

    #[test]
    fn log_distance_in_bytes_or_files() {
        let p = |f: &str, o| Position::Binlog {
            file: f.into(),
            offset: o,
            gtid: None,
        };
        assert_eq!(
            log_distance(&p("b.000003", 100), &p("b.000003", 350)),
            (Some(250), None)
        );
        assert_eq!(
            log_distance(&p("b.000003", 100), &p("b.000005", 4)),
            (None, Some(2))
        );
        assert_eq!(
            log_distance(&Position::Lsn(Lsn(10)), &Position::Lsn(Lsn(25))),
            (Some(15), None)
        );
    }

    #[test]
    fn exit_codes_are_distinct() {
        let codes: std::collections::BTreeSet<u8> = [
            Outcome::Running,
            Outcome::Finished,
            Outcome::Stopped,
            Outcome::Failed,
            Outcome::NeverRun,
        ]
        .iter()
        .map(Outcome::exit_code)
        .collect();
        assert_eq!(codes.len(), 5);
        assert!(!codes.contains(&1) && !codes.contains(&2));
    }
}
