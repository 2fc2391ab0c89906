//! Switchover with a rollback path, and rollback.
//!
//! [`switchover`] moves the application from a task's source to its target while the task
//! replicates (`dts run`): it waits for the lag to fall under a threshold, stops the writes
//! on the source (or waits until the source is quiet), waits until the target has applied
//! the source's final position, moves every identity/sequence/`AUTO_INCREMENT` of the
//! target past the values in use, verifies, ends the forward replication at that position
//! and prepares the reverse task (target → source, incremental only) to start exactly
//! there. [`rollback`] does the same for the reverse task, back to the old source.
//!
//! Every step is recorded in the task record (`switching`, then `switched` with the
//! switchover position) and reported as a [`SwitchoverEvent`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dts_connectors::switchover::WriteLock;
use dts_connectors::{Source, Target};
use dts_core::{Engine, Error, ErrorKind, Position, Result, StateStore, TaskState};
use dts_schema::StatementKind;
use tokio::sync::mpsc::UnboundedSender;

use crate::config::TaskConfig;

/// How a switchover or a rollback behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SwitchoverOptions {
    /// Make the old side read-only ([`dts_connectors::switchover::lock_writes`]) instead of
    /// waiting until nothing writes it.
    pub lock_source: bool,
    /// The lag the running task must be under before the writes are stopped.
    pub max_lag: Duration,
    /// Without `lock_source`: how long the source's log position must stay still.
    pub quiet: Duration,
    /// Whether the verification runs (a difference stops the switchover).
    pub verify: bool,
    /// How long each waiting step waits before it fails.
    pub patience: Duration,
}

impl Default for SwitchoverOptions {
    fn default() -> Self {
        Self {
            lock_source: false,
            max_lag: Duration::from_secs(5),
            quiet: Duration::from_secs(10),
            verify: true,
            patience: Duration::from_secs(300),
        }
    }
}

impl SwitchoverOptions {
    /// Sets [`SwitchoverOptions::lock_source`].
    #[must_use]
    pub fn lock_source(mut self, yes: bool) -> Self {
        self.lock_source = yes;
        self
    }

    /// Sets [`SwitchoverOptions::max_lag`].
    #[must_use]
    pub fn max_lag(mut self, lag: Duration) -> Self {
        self.max_lag = lag;
        self
    }

    /// Sets [`SwitchoverOptions::quiet`].
    #[must_use]
    pub fn quiet(mut self, quiet: Duration) -> Self {
        self.quiet = quiet;
        self
    }

    /// Sets [`SwitchoverOptions::verify`].
    #[must_use]
    pub fn verify(mut self, yes: bool) -> Self {
        self.verify = yes;
        self
    }

    /// Sets [`SwitchoverOptions::patience`].
    #[must_use]
    pub fn patience(mut self, patience: Duration) -> Self {
        self.patience = patience;
        self
    }
}

/// A step of a switchover or a rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SwitchStep {
    /// (a) Waiting for the lag to fall under the threshold.
    Lag,
    /// (b) Stopping the writes on the old side, or waiting until it is quiet.
    StopWrites,
    /// (c) Waiting until the new side has applied the old side's final position.
    CatchUp,
    /// (d) Moving identity counters past the values in use.
    Sequences,
    /// (e) Verifying.
    Verify,
    /// (f) Ending the replication at the switchover position.
    End,
    /// (g) Preparing the reverse task (switchover), or making the old source writable again
    /// (rollback).
    Reverse,
}

impl fmt::Display for SwitchStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Lag => "lag",
            Self::StopWrites => "stop writes",
            Self::CatchUp => "catch up",
            Self::Sequences => "sequences",
            Self::Verify => "verify",
            Self::End => "end replication",
            Self::Reverse => "reverse",
        })
    }
}

/// What a step did or waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchoverEvent {
    /// The step.
    pub step: SwitchStep,
    /// What happened, for people.
    pub message: String,
}

/// What [`switchover`] did.
#[derive(Debug, Clone)]
pub struct SwitchoverReport {
    /// The position the forward replication ended at (the source's final position).
    pub position: Position,
    /// The write lock taken on the source, with its undo statements (`lock_source`).
    pub lock: Option<WriteLock>,
    /// Whether the source was unlocked again for the reverse task's writes (its account
    /// could not write into the locked source).
    pub unlocked: bool,
    /// Identity counters moved in the target.
    pub sequences: usize,
    /// The verification's summary, if it ran.
    pub verified: Option<String>,
    /// The reverse task's file.
    pub reverse_file: PathBuf,
    /// The reverse task.
    pub reverse: TaskConfig,
    /// Where the reverse task starts: the target's position at the switchover.
    pub reverse_start: Position,
}

/// What [`rollback`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct RollbackReport {
    /// The position the reverse replication ended at.
    pub position: Position,
    /// The write lock taken on the target (`lock_source`), with its undo statements.
    pub lock: Option<WriteLock>,
    /// Statements run to make the old source writable again.
    pub unlocked: Vec<String>,
    /// Identity counters moved in the old source.
    pub sequences: usize,
    /// The verification's summary, if it ran.
    pub verified: Option<String>,
}

/// The reverse task's file next to `task_file`: `TASK.reverse.toml`.
pub fn reverse_file(task_file: &Path) -> PathBuf {
    let stem = task_file
        .file_stem()
        .map_or_else(|| "task".into(), |s| s.to_string_lossy().into_owned());
    task_file.with_file_name(format!("{stem}.reverse.toml"))
}

/// The reverse task's file text, from the task file's text: source and target swapped,
/// `migration = ["incremental"]`, the name suffixed `-reverse`, the same other options
/// and `policy.conflicting_tables = "ignore"` (the tables exist on both sides by design)
/// (less those that name the forward direction: a fixed `incremental.server_id`,
/// `incremental.target_binlog` for a PostgreSQL reverse target, `full.verify`). The
/// selection is spelled as the target names the objects (lowercased under the default
/// identifier case).
///
/// # Errors
///
/// [`ErrorKind::Config`] for a task with renames or a column selection (their inverse is
/// not derived: write the reverse task by hand), a name too long for the suffix, or a
/// malformed file.
pub fn reverse_task_text(text: &str) -> Result<String> {
    let config: TaskConfig = text.parse()?;
    let mut table: toml::Table = toml::from_str(text)
        .map_err(|e| Error::config(format!("malformed task file: {}", e.message().trim())))?;
    let o = &config.objects;
    if !(o.rename_databases.is_empty() && o.rename_tables.is_empty() && o.rename_columns.is_empty())
    {
        return Err(Error::config(
            "the task renames objects (objects.rename_*): the reverse task's selection and \
             renames are not derived from them; write the reverse task file by hand",
        ));
    }
    if let Some(key) = config
        .tables
        .iter()
        .find(|(_, t)| t.columns.include.is_some() || t.columns.exclude.is_some())
        .map(|(k, _)| k)
    {
        return Err(Error::config(format!(
            "the task leaves out columns (`[tables.\"{key}\"]` columns): the old database \
             holds them and the new one does not, so the reverse task is not derived; write \
             the reverse task file by hand"
        )));
    }
    let name = format!("{}-reverse", config.name);
    if name.len() > 60 {
        return Err(Error::config(format!(
            "task name `{}` is too long for the reverse task's `-reverse` suffix (at most 52 \
             characters)",
            config.name
        )));
    }
    table.insert("name".into(), toml::Value::String(name));
    // The tables exist on both sides by design: the reverse task writes into them.
    let policy = table
        .entry("policy")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(policy) = policy {
        policy.insert(
            "conflicting_tables".into(),
            toml::Value::String("ignore".into()),
        );
    }
    table.insert(
        "migration".into(),
        toml::Value::Array(vec![toml::Value::String("incremental".into())]),
    );
    let source = table.remove("source");
    let target = table.remove("target");
    if let Some(t) = target {
        table.insert("source".into(), t);
    }
    if let Some(s) = source {
        table.insert("target".into(), s);
    }
    let lower = config.policy.identifier_case == crate::config::CasePolicy::Lower;
    if let Some(toml::Value::Table(objects)) = table.get_mut("objects") {
        for key in ["include", "exclude"] {
            if let Some(toml::Value::Array(patterns)) = objects.get_mut(key) {
                for p in patterns.iter_mut() {
                    if let (true, toml::Value::String(s)) = (lower, &mut *p) {
                        *s = s.to_lowercase();
                    }
                }
            }
        }
    }
    let reverse_target_pg = Engine::from_url(&config.source.url)? == Engine::Postgres;
    if let Some(toml::Value::Table(inc)) = table.get_mut("incremental") {
        inc.remove("server_id");
        if reverse_target_pg {
            inc.remove("target_binlog");
        }
    }
    if let Some(toml::Value::Table(full)) = table.get_mut("full") {
        full.remove("verify");
    }
    // Row filters are written in the forward source's dialect and select what the target
    // got; the reverse task sends back every change the application makes to those rows.
    if let Some(toml::Value::Table(tables)) = table.get_mut("tables") {
        let mut emptied = Vec::new();
        for (key, options) in tables.iter_mut() {
            if let toml::Value::Table(options) = options {
                options.remove("where");
                if options.is_empty() {
                    emptied.push(key.clone());
                }
            }
        }
        for key in emptied {
            tables.remove(&key);
        }
        if tables.is_empty() {
            table.remove("tables");
        }
    }
    let out = format!(
        "# The reverse task of `{}` (target → source, from the switchover position), written \
         by `dts switchover`.\n{}",
        config.name,
        toml::to_string(&table)
            .map_err(|e| Error::internal(format!("cannot write the reverse task: {e}")))?
    );
    // It must be a valid task.
    out.parse::<TaskConfig>()
        .map_err(|e| e.context("the reverse task derived from the task file"))?;
    Ok(out)
}

/// Emits events to an optional channel.
struct Steps(Option<UnboundedSender<SwitchoverEvent>>);

impl Steps {
    fn say(&self, step: SwitchStep, message: impl Into<String>) {
        let message = message.into();
        tracing::info!(%step, "{message}");
        if let Some(tx) = &self.0 {
            let _ = tx.send(SwitchoverEvent { step, message });
        }
    }
}

async fn open_store(config: &TaskConfig) -> Result<Box<dyn StateStore>> {
    Target::connect(&config.target.url)
        .await?
        .state_store(&config.name)
        .await
}

/// Refuses to run a task that was switched over: its replication would write into the side
/// the application now writes (and, with the reverse task running, each task would send the
/// other's changes back).
pub(crate) async fn refuse_switched(config: &TaskConfig, store: &dyn StateStore) -> Result<()> {
    let Some(record) = store.task_record().await? else {
        return Ok(());
    };
    if record.state != TaskState::Switched {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::Conflict,
        format!(
            "task `{}` was switched over{}: running it again would replicate into the side \
             the application now writes; `dts cleanup` it (and run it afresh) to migrate again",
            config.name,
            record
                .switchover_position
                .map_or_else(String::new, |p| format!(" at {p}"))
        ),
    ))
}

/// Checks that `config`'s task is replicating in a running process.
async fn expect_replicating(config: &TaskConfig, store: &dyn StateStore) -> Result<()> {
    let name = &config.name;
    let record = store.task_record().await?;
    let holder = store.run_holder().await?;
    match (&record, holder) {
        (Some(r), Some(_)) if matches!(r.state, TaskState::Incremental | TaskState::Switching) => {
            Ok(())
        }
        (Some(r), _) if r.state == TaskState::Switched => Err(Error::new(
            ErrorKind::Conflict,
            format!(
                "task `{name}` is not replicating (its state is `switched`{}): it was switched \
                 over already; `dts rollback` goes back, `dts status` on its reverse task file \
                 shows the reverse replication",
                r.switchover_position
                    .as_ref()
                    .map_or_else(String::new, |p| format!(" at {p}"))
            ),
        )),
        (Some(r), _) => Err(Error::new(
            ErrorKind::Conflict,
            format!(
                "task `{name}` is not replicating (its state is `{}`{}): start it with `dts run \
                 --config …` and switch over once it replicates",
                r.state,
                if r.heartbeat.is_none() {
                    ", no process runs it"
                } else {
                    ""
                }
            ),
        )),
        (None, _) => Err(Error::new(
            ErrorKind::Conflict,
            format!("task `{name}` has never run: start it with `dts run --config …`"),
        )),
    }
}

/// (a) Waits until the running task's published lag is under `max_lag`.
async fn wait_lag(
    config: &TaskConfig,
    store: &dyn StateStore,
    options: &SwitchoverOptions,
    steps: &Steps,
) -> Result<()> {
    let started = Instant::now();
    let max_ms = u64::try_from(options.max_lag.as_millis()).unwrap_or(u64::MAX);
    let mut said = false;
    loop {
        let record = store.task_record().await?;
        let lag = record
            .as_ref()
            .and_then(|r| r.progress.replication.as_ref())
            .map(|p| p.lag_ms);
        let alive = record
            .as_ref()
            .and_then(|r| r.heartbeat.as_ref())
            .is_some_and(|h| h.age < Duration::from_secs(30));
        if store.run_holder().await?.is_none() {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "task `{}` stopped running while the switchover waited for its lag",
                    config.name
                ),
            ));
        }
        match lag {
            Some(ms) if alive && ms <= max_ms => {
                steps.say(
                    SwitchStep::Lag,
                    format!(
                        "lag {} under the threshold {}",
                        ms_text(ms),
                        ms_text(max_ms)
                    ),
                );
                return Ok(());
            }
            _ if started.elapsed() >= options.patience => {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "the lag of task `{}` never fell under {} in {} s: it is {}",
                        config.name,
                        ms_text(max_ms),
                        options.patience.as_secs(),
                        match (lag, alive) {
                            (Some(ms), true) => ms_text(ms),
                            (Some(ms), false) =>
                                format!("{} (last published; the heartbeat is stale)", ms_text(ms)),
                            (None, _) => "not published yet (replication has not started)".into(),
                        }
                    ),
                ));
            }
            _ => {
                if !said {
                    said = true;
                    steps.say(
                        SwitchStep::Lag,
                        format!(
                            "waiting for the lag to fall under {} (now {})",
                            ms_text(max_ms),
                            lag.map_or_else(|| "unknown".into(), ms_text)
                        ),
                    );
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }
}

fn ms_text(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", Duration::from_millis(ms).as_secs_f64())
    }
}

/// (b) Stops the writes on the server at `url` (the side the application leaves), or waits
/// until its log position stays still for `options.quiet`.
async fn stop_writes(
    url: &str,
    source: &Source,
    options: &SwitchoverOptions,
    steps: &Steps,
) -> Result<Option<WriteLock>> {
    let redacted = dts_core::error::redact_url(url);
    if options.lock_source {
        let lock = dts_connectors::switchover::lock_writes(url)
            .await
            .map_err(|e| e.context(format!("making `{redacted}` read-only")))?;
        steps.say(
            SwitchStep::StopWrites,
            format!(
                "`{redacted}` is read-only: ran `{}`{}; {}. To undo: `{}`",
                lock.statements.join("; "),
                if lock.ended_sessions > 0 {
                    format!(
                        ", ended {} session(s) that could write",
                        lock.ended_sessions
                    )
                } else {
                    String::new()
                },
                lock.exempt,
                lock.undo.join("; ")
            ),
        );
        return Ok(Some(lock));
    }
    steps.say(
        SwitchStep::StopWrites,
        format!(
            "not locking `{redacted}` (no --lock-source): waiting until its log position has \
             not moved for {} s; stop the application's writes now",
            options.quiet.as_secs()
        ),
    );
    let started = Instant::now();
    let mut last = source.current_position().await?;
    let mut still_since = Instant::now();
    loop {
        if still_since.elapsed() >= options.quiet {
            steps.say(
                SwitchStep::StopWrites,
                format!(
                    "`{redacted}` is quiet: its position stayed at {last} for {} s",
                    options.quiet.as_secs()
                ),
            );
            return Ok(None);
        }
        if started.elapsed() >= options.patience {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "`{redacted}` never stayed quiet for {} s in {} s (its position is at \
                     {last} and still moves): stop the application's writes, or use \
                     --lock-source",
                    options.quiet.as_secs(),
                    options.patience.as_secs()
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = source.current_position().await?;
        if now != last {
            last = now;
            still_since = Instant::now();
        }
    }
}

/// (c) Reads the final position of `source` and waits until `store`'s applied position has
/// reached it.
async fn catch_up(
    name: &str,
    source: &Source,
    store: &dyn StateStore,
    options: &SwitchoverOptions,
    steps: &Steps,
) -> Result<Position> {
    let last = source.current_position().await?;
    steps.say(
        SwitchStep::CatchUp,
        format!("final position {last}: waiting until task `{name}` has applied it"),
    );
    let started = Instant::now();
    loop {
        let applied = store.applied_position().await?;
        if let Some(a) = &applied {
            match a.log_cmp(&last) {
                Some(std::cmp::Ordering::Less) => {}
                Some(_) => {
                    steps.say(
                        SwitchStep::CatchUp,
                        format!("applied {a}: lag 0 (nothing written since)"),
                    );
                    return Ok(a.clone());
                }
                None => {
                    return Err(Error::config(format!(
                        "the applied position `{a}` of task `{name}` cannot be compared with \
                         the source's position `{last}`"
                    )))
                }
            }
        }
        if store.run_holder().await?.is_none() {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "task `{name}` stopped running before it applied the final position \
                     {last} (applied: {})",
                    applied.map_or_else(|| "nothing".into(), |a| a.to_string())
                ),
            ));
        }
        if started.elapsed() >= options.patience {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "task `{name}` did not apply the final position {last} in {} s (applied: \
                     {})",
                    options.patience.as_secs(),
                    applied.map_or_else(|| "nothing".into(), |a| a.to_string())
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A MySQL target's version (its server family spells collations its own way).
async fn mysql_version(url: &str) -> Result<Option<String>> {
    Ok(if Engine::from_url(url)? == Engine::MySql {
        Some(Target::connect(url).await?.version().to_string())
    } else {
        None
    })
}

/// (d) Moves every identity counter of `config`'s target past the values in use, with the
/// statements the post-data schema step runs, planned from the source's schema now.
async fn move_sequences(config: &TaskConfig, source: &Source, steps: &Steps) -> Result<usize> {
    let engine = Engine::from_url(&config.target.url)?;
    let version = mysql_version(&config.target.url).await?;
    let plan = crate::task::read_plan(config, source, engine, version.as_deref()).await?;
    let statements: Vec<String> = plan
        .schema
        .statements_of(StatementKind::SequenceReset)
        .map(|s| s.sql.clone())
        .collect();
    dts_connectors::switchover::run_statements(&config.target.url, &statements)
        .await
        .map_err(|e| {
            e.context(format!(
                "moving the identity counters of `{}`",
                dts_core::error::redact_url(&config.target.url)
            ))
        })?;
    let objects: Vec<String> = plan
        .schema
        .statements_of(StatementKind::SequenceReset)
        .map(|s| s.object.clone())
        .collect();
    steps.say(
        SwitchStep::Sequences,
        if objects.is_empty() {
            "no identity/sequence/AUTO_INCREMENT column in the selected tables".to_string()
        } else {
            format!(
                "moved {} identity counter(s) past the values in use: {}",
                objects.len(),
                objects.join(", ")
            )
        },
    );
    Ok(statements.len())
}

/// (e) Verifies `config`'s target against its source; a difference is an error.
async fn verify(
    config: &TaskConfig,
    options: &SwitchoverOptions,
    steps: &Steps,
) -> Result<Option<String>> {
    if !options.verify {
        steps.say(SwitchStep::Verify, "skipped (--skip-verify)");
        return Ok(None);
    }
    steps.say(SwitchStep::Verify, "comparing every selected table");
    let started = Instant::now();
    let report =
        crate::verify::verify(config, &crate::verify::VerifyOptions::default(), None).await?;
    let summary = crate::verify::summary(&report);
    if !report.matches() {
        return Err(Error::new(
            ErrorKind::Conflict,
            format!(
                "the verification found differences: {summary}; see `dts verify --config …`, \
                 repair with `dts verify --repair`, or switch over with --skip-verify"
            ),
        ));
    }
    let rows: u64 = report.tables.iter().map(|t| t.rows).sum();
    let summary = format!(
        "{} table(s), {rows} rows, in {:.1} s",
        report.tables.len(),
        started.elapsed().as_secs_f64()
    );
    steps.say(SwitchStep::Verify, format!("no difference: {summary}"));
    Ok(Some(summary))
}

/// Runs the reverse task's prechecks; a failed check is an error naming it.
async fn precheck_reverse(reverse: &TaskConfig, steps: &Steps) -> Result<()> {
    let (report, _) = crate::precheck::run(reverse, false).await?;
    if !report.passed() {
        let failed: Vec<String> = report
            .failures()
            .map(|i| format!("{}: {}", i.code, i.message))
            .collect();
        return Err(Error::new(
            ErrorKind::Precheck,
            format!(
                "the reverse task `{}` would not run: {}",
                reverse.name,
                failed.join("; ")
            ),
        ));
    }
    steps.say(
        SwitchStep::Verify,
        format!("the reverse task `{}` passes its prechecks", reverse.name),
    );
    Ok(())
}

/// (f) Ends `config`'s running replication (as `dts stop` does) and records it `switched` at
/// `position`.
async fn end_replication(
    config: &TaskConfig,
    store: &dyn StateStore,
    position: &Position,
    options: &SwitchoverOptions,
    steps: &Steps,
) -> Result<Position> {
    if let crate::status::StopOutcome::StillRunning(h) =
        crate::status::stop(config, options.patience).await?
    {
        return Err(Error::new(
            ErrorKind::Conflict,
            format!(
                "task `{}` still runs (pid {} on host `{}`) {} s after it was asked to stop",
                config.name,
                h.pid,
                h.host,
                options.patience.as_secs()
            ),
        ));
    }
    let applied = store.applied_position().await?.unwrap_or(position.clone());
    if applied.log_cmp(position) == Some(std::cmp::Ordering::Less) {
        return Err(Error::internal(format!(
            "task `{}` ended at {applied}, before the switchover position {position}",
            config.name
        )));
    }
    store.record_state(TaskState::Switched, None).await?;
    store.record_switchover_position(&applied).await?;
    steps.say(
        SwitchStep::End,
        format!(
            "task `{}` ended at {applied} and is recorded `switched`",
            config.name
        ),
    );
    Ok(applied)
}

/// Runs `work`; on failure, records the task back in `back` (its run goes on) and adds
/// `undo` to the error.
async fn or_restore<T>(
    store: &dyn StateStore,
    back: TaskState,
    undo: Option<&WriteLock>,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    match work.await {
        Ok(t) => Ok(t),
        Err(e) => {
            crate::record::note(store.record_state(back, None).await);
            Err(match undo {
                Some(lock) => e.context(format!(
                    "the old side stays read-only; to undo: `{}`",
                    lock.undo.join("; ")
                )),
                None => e,
            })
        }
    }
}

/// Switches the application over from the task in `task_file` (running in `dts run`) to its
/// target, and prepares the reverse task (`TASK.reverse.toml`, started by the caller with
/// `dts run`) from the switchover position. Steps are sent to `events`, if given.
///
/// # Errors
///
/// Each step's error names what failed: the lag that never fell under the threshold, the
/// position not applied in time, the differences found, the server that refused a
/// statement. Until the forward replication ends, a failure leaves the task replicating
/// (and the source read-only under `lock_source`: the error says how to undo it).
pub async fn switchover(
    task_file: &Path,
    options: &SwitchoverOptions,
    events: Option<UnboundedSender<SwitchoverEvent>>,
) -> Result<SwitchoverReport> {
    let steps = Steps(events);
    let text = std::fs::read_to_string(task_file).map_err(|e| {
        Error::config(format!("cannot read task file `{}`", task_file.display())).with_source(e)
    })?;
    let config: TaskConfig = text
        .parse()
        .map_err(|e: Error| e.context(format!("task file `{}`", task_file.display())))?;
    let reverse_text = reverse_task_text(&text)?;
    let reverse: TaskConfig = reverse_text.parse()?;
    let reverse_path = reverse_file(task_file);

    let store = open_store(&config).await?;
    expect_replicating(&config, store.as_ref()).await?;
    // A reverse task with state of its own would resume from there, not from this switchover.
    let reverse_store = open_store(&reverse).await?;
    if reverse_store.task_record().await?.is_some()
        || reverse_store.applied_position().await?.is_some()
    {
        return Err(Error::new(
            ErrorKind::Conflict,
            format!(
                "the reverse task `{}` has state from an earlier switchover in `{}`: drop it \
                 with `dts cleanup --config {} --yes` first",
                reverse.name,
                dts_core::error::redact_url(&reverse.target.url),
                reverse_path.display()
            ),
        ));
    }
    store.record_state(TaskState::Switching, None).await?;
    let store = store.as_ref();
    let source = Source::connect(&config.source.url).await?;

    or_restore(
        store,
        TaskState::Incremental,
        None,
        wait_lag(&config, store, options, &steps),
    )
    .await?;
    let lock = or_restore(
        store,
        TaskState::Incremental,
        None,
        stop_writes(&config.source.url, &source, options, &steps),
    )
    .await?;
    let prepared = async {
        let position = catch_up(&config.name, &source, store, options, &steps).await?;
        let sequences = move_sequences(&config, &source, &steps).await?;
        let verified = verify(&config, options, &steps).await?;
        // The reverse task must be able to run before the forward one ends.
        precheck_reverse(&reverse, &steps).await?;
        Ok::<_, Error>((position, sequences, verified))
    };
    let (position, sequences, verified) =
        or_restore(store, TaskState::Incremental, lock.as_ref(), prepared).await?;
    let position = end_replication(&config, store, &position, options, &steps).await?;

    // The reverse task writes into the source (its state, then the application's changes):
    // an account the lock does not exempt needs it writable, now that the forward task has
    // ended.
    let mut unlocked = false;
    if let Some(l) = &lock {
        if !l.self_exempt {
            dts_connectors::switchover::unlock_writes(&config.source.url).await?;
            unlocked = true;
        }
    }
    // (g) The reverse task starts at the target's position now, while nothing writes it:
    // the forward task has ended and the application is not pointed at the target yet.
    let reverse_source = Source::connect(&reverse.source.url).await?;
    let capture = crate::incremental::capture_options(&reverse)?;
    let reverse_start = reverse_source.capture_start(&capture).await?;
    let target_engine = Engine::from_url(&reverse.target.url)?;
    let version = mysql_version(&reverse.target.url).await?;
    let plan = crate::task::read_plan(&reverse, &reverse_source, target_engine, version.as_deref())
        .await?;
    reverse_store.migrate().await?;
    reverse_store.start_position(&reverse_start).await?;
    reverse_store
        .record_schema(&plan.catalog, &reverse_start)
        .await?;
    std::fs::write(&reverse_path, &reverse_text).map_err(|e| {
        Error::config(format!(
            "cannot write the reverse task file `{}`",
            reverse_path.display()
        ))
        .with_source(e)
    })?;
    steps.say(
        SwitchStep::Reverse,
        format!(
            "reverse task `{}` written to {}, starting at {reverse_start}{}",
            reverse.name,
            reverse_path.display(),
            match (&lock, unlocked) {
                (Some(_), true) => {
                    "; the source is writable again (its account cannot write into the \
                     read-only server, and the reverse task must): point the application \
                     to the target now, nothing else may write the source"
                }
                (Some(_), false) => {
                    "; the source stays read-only for the application, the reverse task \
                     writes into it with dts's account (exempt); `dts rollback` makes it \
                     writable again"
                }
                (None, _) => "",
            }
        ),
    );
    Ok(SwitchoverReport {
        position,
        lock,
        unlocked,
        sequences,
        verified,
        reverse_file: reverse_path,
        reverse,
        reverse_start,
    })
}

/// Rolls back a switchover of the task in `task_file`: the reverse task
/// (`TASK.reverse.toml`, running in `dts run`) catches up, the old source's identity
/// counters move past the values in use, the reverse task ends (recorded `switched`) and
/// the old source is made writable again. Steps are sent to `events`, if given.
///
/// # Errors
///
/// As [`switchover`]; [`ErrorKind::Conflict`] when the task was not switched over or its
/// reverse task does not run.
pub async fn rollback(
    task_file: &Path,
    options: &SwitchoverOptions,
    events: Option<UnboundedSender<SwitchoverEvent>>,
) -> Result<RollbackReport> {
    let steps = Steps(events);
    let config = TaskConfig::from_file(task_file)?;
    let reverse_path = reverse_file(task_file);
    let reverse = TaskConfig::from_file(&reverse_path)?;
    let forward_store = open_store(&config).await?;
    let state = forward_store.task_record().await?.map(|r| r.state);
    if state != Some(TaskState::Switched) {
        return Err(Error::new(
            ErrorKind::Conflict,
            format!(
                "task `{}` was not switched over (its state is `{}`): nothing to roll back",
                config.name,
                state.map_or_else(|| "never run".into(), |s| s.to_string())
            ),
        ));
    }
    let store = open_store(&reverse).await?;
    expect_replicating(&reverse, store.as_ref()).await?;
    store.record_state(TaskState::Switching, None).await?;
    let store = store.as_ref();
    let source = Source::connect(&reverse.source.url).await?;
    or_restore(
        store,
        TaskState::Incremental,
        None,
        wait_lag(&reverse, store, options, &steps),
    )
    .await?;
    let lock = or_restore(
        store,
        TaskState::Incremental,
        None,
        stop_writes(&reverse.source.url, &source, options, &steps),
    )
    .await?;
    let prepared = async {
        let position = catch_up(&reverse.name, &source, store, options, &steps).await?;
        let sequences = move_sequences(&reverse, &source, &steps).await?;
        let verified = verify(&reverse, options, &steps).await?;
        Ok::<_, Error>((position, sequences, verified))
    };
    let (position, sequences, verified) =
        or_restore(store, TaskState::Incremental, lock.as_ref(), prepared).await?;
    let position = end_replication(&reverse, store, &position, options, &steps).await?;
    let unlocked = dts_connectors::switchover::unlock_writes(&config.source.url).await?;
    steps.say(
        SwitchStep::Reverse,
        if unlocked.is_empty() {
            format!(
                "`{}` was not read-only",
                dts_core::error::redact_url(&config.source.url)
            )
        } else {
            format!(
                "`{}` is writable again: ran `{}`",
                dts_core::error::redact_url(&config.source.url),
                unlocked.join("; ")
            )
        },
    );
    Ok(RollbackReport {
        position,
        lock,
        unlocked,
        sequences,
        verified,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TASK: &str = r#"
name = "shop"
migration = ["schema", "full", "incremental"]
source.url = "postgres://dts:${DTS_SWITCH_TEST_PW}@db2/shop"
target.url = "mysql://root@db1:3306"
objects.include = ["Shop"]
objects.exclude = ["Shop.Log*"]
incremental.server_id = 77
incremental.target_binlog = false
incremental.max_batch_rows = 500
"#;

    #[test]
    fn reverse_task_swaps_the_ends_and_replicates_only() {
        std::env::set_var("DTS_SWITCH_TEST_PW", "secret");
        let text = reverse_task_text(TASK).unwrap();
        let reverse: TaskConfig = text.parse().unwrap();
        assert_eq!(reverse.name, "shop-reverse");
        assert_eq!(
            reverse.migration,
            vec![crate::config::MigrationType::Incremental]
        );
        assert_eq!(reverse.source.url, "mysql://root@db1:3306");
        assert_eq!(reverse.target.url, "postgres://dts:secret@db2/shop");
        // The variable is kept, not its value; `target_binlog` is for a MySQL target only.
        assert!(
            text.contains("postgres://dts:${DTS_SWITCH_TEST_PW}@db2/shop"),
            "{text}"
        );
        assert!(!text.contains("target_binlog"), "{text}");
        assert!(!text.contains("secret"), "{text}");
        assert_eq!(reverse.objects.include, vec!["shop".to_string()]);
        assert_eq!(reverse.objects.exclude, vec!["shop.log*".to_string()]);
        assert_eq!(reverse.incremental.server_id, None);
        assert_eq!(reverse.incremental.max_batch_rows, 500);
        assert_eq!(
            reverse.policy.conflicting_tables,
            crate::config::ConflictPolicy::Ignore
        );
    }

    #[test]
    fn reverse_task_leaves_row_filters_out() {
        std::env::set_var("DTS_SWITCH_TEST_PW", "secret");
        let filtered = format!("{TASK}\n[tables.\"shop.orders\"]\nwhere = \"region = 'eu'\"\n");
        assert!(filtered.parse::<TaskConfig>().unwrap().tables.len() == 1);
        let text = reverse_task_text(&filtered).unwrap();
        assert!(!text.contains("region"), "{text}");
        let reverse: TaskConfig = text.parse().unwrap();
        assert!(reverse.tables.is_empty());
    }

    #[test]
    fn reverse_task_refuses_renames_and_long_names() {
        std::env::set_var("DTS_SWITCH_TEST_PW", "secret");
        let renamed = format!("{TASK}objects.rename_databases = {{ Shop = \"store\" }}\n");
        let e = reverse_task_text(&renamed).unwrap_err();
        assert!(e.to_string().contains("rename"), "{e}");
        let long = TASK.replace("name = \"shop\"", &format!("name = \"{}\"", "x".repeat(55)));
        let e = reverse_task_text(&long).unwrap_err();
        assert!(e.to_string().contains("too long"), "{e}");
        let columns = format!("{TASK}[tables.\"Shop.orders\"]\ncolumns.exclude = [\"note\"]\n");
        let e = reverse_task_text(&columns).unwrap_err();
        assert!(e.to_string().contains("Shop.orders"), "{e}");
    }

    #[test]
    fn reverse_file_sits_next_to_the_task_file() {
        assert_eq!(
            reverse_file(Path::new("/etc/dts/shop.toml")),
            PathBuf::from("/etc/dts/shop.reverse.toml")
        );
    }
}
