//! The task runner: prechecks, then the task's steps in order — schema (pre-data), full
//! load, schema (post-data), incremental — each skipped when an earlier run finished it.

use std::collections::BTreeSet;
use std::fmt;

use dts_cdc::CdcEvent;
use dts_connectors::{Source, Target};
use dts_core::{
    Catalog, Engine, Error, ErrorKind, PrecheckReport, Result, SchemaSource, TableName, TaskState,
};
use dts_fullload::ProgressEvent;
use dts_schema::{SchemaPlan, Statement, StatementKind};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::watch;

use crate::config::{MigrationType, TaskConfig};
use crate::full::FullReport;
use crate::incremental::IncrementalReport;

/// Something that happened during a run, for live display or for a library user.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TaskEvent {
    /// A step started.
    StepStarted(Step),
    /// A DDL statement was executed.
    Created {
        /// The kind of object.
        kind: StatementKind,
        /// The object's name.
        object: String,
    },
    /// A DDL statement was skipped because its table existed and the task ignores conflicts.
    Skipped {
        /// The object's name.
        object: String,
    },
    /// A step was found done by an earlier run and skipped.
    AlreadyDone(Step),
    /// A step finished.
    StepFinished(Step),
    /// Progress of the full data migration.
    Progress(ProgressEvent),
    /// Progress of incremental migration: batches applied, lag, reconnections.
    Replication(CdcEvent),
    /// Progress of the verification after the full load (`full.verify`).
    Verification(dts_fullload::verify::VerifyEvent),
    /// The sampled verification during replication (`incremental.verify_sample`).
    Sampled(crate::checks::SampleEvent),
}

/// A step of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// Prechecks.
    Precheck,
    /// Schema migration before the data: schemas, tables, primary keys.
    SchemaPreData,
    /// Full data migration.
    FullLoad,
    /// Schema migration after the data: indexes, constraints, triggers, sequences.
    SchemaPostData,
    /// Incremental migration (change capture).
    Incremental,
}

impl Step {
    /// The name the step is recorded under in the task's state.
    pub(crate) fn key(&self) -> &'static str {
        match self {
            Step::Precheck => "precheck",
            Step::SchemaPreData => "schema.pre_data",
            Step::FullLoad => "full",
            Step::SchemaPostData => "schema.post_data",
            Step::Incremental => "incremental",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Precheck => "precheck",
            Step::SchemaPreData => "schema migration (pre-data)",
            Step::FullLoad => "full data migration",
            Step::SchemaPostData => "schema migration (post-data)",
            Step::Incremental => "incremental migration",
        })
    }
}

/// What a finished run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunReport {
    /// Objects created, by name.
    pub created: Vec<String>,
    /// Objects skipped because they existed (conflict policy `ignore`).
    pub skipped: Vec<String>,
    /// Steps found already done by an earlier run.
    pub already_done: Vec<Step>,
    /// Non-blocking notes from schema translation.
    pub warnings: Vec<String>,
    /// What the full data migration did, if it ran in this run.
    pub full: Option<FullReport>,
    /// What incremental migration did, if it ran in this run.
    pub incremental: Option<IncrementalReport>,
}

impl RunReport {
    pub(crate) fn record_created(&mut self, s: &Statement, emit: &impl Fn(TaskEvent)) {
        self.created.push(s.object.clone());
        emit(TaskEvent::Created {
            kind: s.kind,
            object: s.object.clone(),
        });
    }

    pub(crate) fn record_skipped(&mut self, s: &Statement, emit: &impl Fn(TaskEvent)) {
        self.skipped.push(s.object.clone());
        emit(TaskEvent::Skipped {
            object: s.object.clone(),
        });
    }
}

/// How a run behaves, beyond the task file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunOptions {
    /// With incremental migration: apply everything the source committed before the run
    /// reached the incremental phase, then return (instead of running until stopped).
    pub until_caught_up: bool,
}

impl RunOptions {
    /// Sets [`RunOptions::until_caught_up`].
    #[must_use]
    pub fn until_caught_up(mut self, yes: bool) -> Self {
        self.until_caught_up = yes;
        self
    }
}

/// The source schema selected by a task, and its translation.
#[derive(Debug, Clone)]
pub struct TaskPlan {
    /// The selected tables of the source.
    pub catalog: Catalog,
    /// The translation into target DDL.
    pub schema: SchemaPlan,
}

/// A migration task, ready to precheck, plan or run.
///
/// ```no_run
/// # async fn demo() -> Result<(), dts_core::Error> {
/// let config: dts::TaskConfig = r#"
///     migration = ["schema"]
///     source.url = "mysql://root@127.0.0.1:3306"
///     target.url = "postgres://postgres@127.0.0.1:5432/postgres"
///     objects.include = ["shop"]
/// "#.parse()?;
/// let task = dts::Task::new(config);
/// let report = task.precheck().await?;
/// println!("{report}");
/// task.run(None).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Task {
    config: TaskConfig,
}

/// Reads the selected source schema and translates it for the target engine (whose server
/// version, when known, picks version-specific spellings).
/// A column selection (`[tables."…"] columns`) is applied as far as it can be: a column
/// that something kept needs stays (the precheck refuses such a selection before a task
/// starts).
pub(crate) async fn read_plan(
    config: &TaskConfig,
    source: &Source,
    target: Engine,
    target_version: Option<&str>,
) -> Result<TaskPlan> {
    Ok(read_plan_checked(config, source, target, target_version)
        .await?
        .0)
}

/// Like [`read_plan`], returning the problems of the column selection instead of failing
/// on them (the precheck reports them).
pub(crate) async fn read_plan_checked(
    config: &TaskConfig,
    source: &Source,
    target: Engine,
    target_version: Option<&str>,
) -> Result<(TaskPlan, Vec<String>)> {
    let selection = config.selection()?;
    let all = source.list_schemas().await?;
    let databases: Vec<String> = selection.databases(&all).into_iter().cloned().collect();
    let mut catalog = source.read_catalog(&databases).await?;
    catalog.retain_tables(|t| selection.selects(t));
    // The columns left out are checked against the whole tables, then removed: nothing
    // below plans, copies, replicates or verifies them.
    let mut options = config.schema_options_for(&catalog)?;
    let mut problems = crate::columns::problems(&catalog, &options.columns);
    problems.extend(filtered_columns_left_out(
        config,
        &catalog,
        source.engine(),
        &options,
    )?);
    crate::columns::apply(&mut catalog, &options.columns);
    options.target_version = target_version.map(str::to_string);
    let schema = dts_connectors::plan_schema(source.engine(), target, &catalog, &options)?;
    Ok((TaskPlan { catalog, schema }, problems))
}

/// The columns a table's row filter (`where`) reads that its column selection leaves out:
/// replication evaluates the filter on the rows it applies, so they must be kept.
fn filtered_columns_left_out(
    config: &TaskConfig,
    catalog: &dts_core::Catalog,
    engine: Engine,
    options: &dts_schema::SchemaOptions,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (name, columns) in &options.columns {
        let Some(table) = catalog.table(name) else {
            continue;
        };
        let Some(text) = config.table_options(name)?.filter else {
            continue;
        };
        // A condition that does not parse is reported where filters are compiled.
        let Ok(filter) = dts_schema::filter::RowFilter::parse(engine, table, &text) else {
            continue;
        };
        for column in filter.columns().iter().filter(|c| !columns.keeps(c)) {
            out.push(format!(
                "the row filter (`where`) of table `{name}` reads column `{column}`, which \
                 `columns` leaves out: keep the column"
            ));
        }
    }
    Ok(out)
}

/// How long a run waits for the target sessions of a killed earlier run to end.
const LEFTOVER_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// The steps of a task, in the order they run.
const STEPS: [Step; 4] = [
    Step::SchemaPreData,
    Step::FullLoad,
    Step::SchemaPostData,
    Step::Incremental,
];

/// The pause before a step's work is retried after a transient failure.
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(500);

/// What the steps of one run share.
pub(crate) struct Run<'a> {
    pub(crate) config: &'a TaskConfig,
    pub(crate) source: Source,
    pub(crate) target: Target,
    pub(crate) plan: TaskPlan,
    pub(crate) store: std::sync::Arc<dyn dts_core::StateStore>,
    /// Target tables that existed before the task (kept under the `ignore` policy).
    pub(crate) existing: BTreeSet<TableName>,
    pub(crate) events: Option<UnboundedSender<TaskEvent>>,
    pub(crate) stop: watch::Receiver<bool>,
    pub(crate) options: RunOptions,
    pub(crate) report: RunReport,
}

impl Run<'_> {
    pub(crate) fn emit(&self, e: TaskEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.send(e);
        }
    }

    /// Whether the task includes `step`.
    fn includes(&self, step: Step) -> bool {
        match step {
            Step::Precheck => true,
            Step::SchemaPreData | Step::SchemaPostData => self.config.runs(MigrationType::Schema),
            Step::FullLoad => self.config.runs(MigrationType::Full),
            Step::Incremental => self.config.runs(MigrationType::Incremental),
        }
    }

    async fn step(&mut self, step: Step) -> Result<()> {
        match step {
            Step::Precheck => Ok(()),
            Step::SchemaPreData => crate::ddl::pre_data(self).await,
            Step::FullLoad => {
                // Retries transient failures itself.
                let (ptx, forwarder) = forward_events(self.events.clone(), TaskEvent::Progress);
                let result = crate::full::run_full_load(self, Some(ptx)).await;
                let _ = forwarder.await;
                let mut full = result?;
                // With incremental migration the tables are verified beside replication
                // (`crate::checks`), where changes in flight are re-checked.
                if self.config.full.verify && !self.config.runs(MigrationType::Incremental) {
                    let (vtx, forwarder) =
                        forward_events(self.events.clone(), TaskEvent::Verification);
                    let options = crate::verify::VerifyOptions::default();
                    let result = crate::verify::verify(self.config, &options, Some(vtx)).await;
                    let _ = forwarder.await;
                    let report = result?;
                    if !report.matches() {
                        return Err(Error::new(
                            ErrorKind::Conflict,
                            format!(
                                "the target does not match the source after the full load: {}; \
                                 repair with `dts verify --repair`, then run the task again",
                                crate::verify::summary(&report)
                            ),
                        ));
                    }
                    full.verify = Some(report);
                }
                self.report.full = Some(full);
                Ok(())
            }
            Step::SchemaPostData => {
                // Every part is idempotent (statements are recorded as they complete):
                // retried as a whole, with the run's own connections restored, within the
                // retry window counted from the first failure.
                let mut first_failure = None;
                loop {
                    crate::full::restore_target(self).await?;
                    match self.post_data().await {
                        Err(e)
                            if self.retries(
                                &e,
                                *first_failure.get_or_insert_with(std::time::Instant::now),
                            ) =>
                        {
                            tokio::time::sleep(RETRY_PAUSE).await;
                        }
                        done => return done,
                    }
                }
            }
            Step::Incremental => {
                // Replication retries transient failures itself; those of its setup (reading
                // the task's state) are retried here, within the first retry window.
                let started = std::time::Instant::now();
                loop {
                    crate::full::restore_target(self).await?;
                    let (ctx, forwarder) =
                        forward_events(self.events.clone(), TaskEvent::Replication);
                    let result = crate::incremental::run_incremental(self, Some(ctx)).await;
                    let _ = forwarder.await;
                    match result {
                        Err(e) if self.retries(&e, started) => {
                            tokio::time::sleep(RETRY_PAUSE).await;
                        }
                        result => {
                            self.report.incremental = Some(result?);
                            return Ok(());
                        }
                    }
                }
            }
        }
    }

    /// Whether an earlier run finished `step`; a lost connection to the target is restored
    /// and the question asked again, within the retry window.
    async fn step_done(&mut self, step: Step) -> Result<bool> {
        let mut first_failure = None;
        loop {
            crate::full::restore_target(self).await?;
            match self.store.is_done(step.key()).await {
                Err(e)
                    if self.retries(
                        &e,
                        *first_failure.get_or_insert_with(std::time::Instant::now),
                    ) =>
                {
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                done => return done,
            }
        }
    }

    /// Records in the task record that `step` begins, reconnecting the state store and
    /// retrying as [`Run::step_done`] does when its connection was lost.
    async fn record_step_state(&mut self, step: Step) -> Result<()> {
        let mut first_failure = None;
        loop {
            crate::full::restore_target(self).await?;
            match self
                .store
                .record_state(crate::record::state_of(step), None)
                .await
            {
                Err(e)
                    if self.retries(
                        &e,
                        *first_failure.get_or_insert_with(std::time::Instant::now),
                    ) =>
                {
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                written => return written,
            }
        }
    }

    /// The post-data schema step; then, when this run did the full load, its record.
    async fn post_data(&mut self) -> Result<()> {
        crate::ddl::post_data(self).await?;
        // The full load is done once its data and the post-data schema are in place.
        if self.includes(Step::FullLoad) && !self.report.already_done.contains(&Step::FullLoad) {
            let tables: Vec<TableName> = self
                .plan
                .schema
                .tables
                .iter()
                .map(|t| t.target.clone())
                .collect();
            self.target.analyze(&tables).await?;
            self.store.mark_done(Step::FullLoad.key()).await?;
        }
        Ok(())
    }

    /// Whether to retry after `e`, a failure of work started at `started`: a transient
    /// error within the task's retry window, while no stop is requested. Logs the retry.
    fn retries(&self, e: &Error, started: std::time::Instant) -> bool {
        let window = std::time::Duration::from_secs(self.config.incremental.retry_window_seconds);
        let retry = e.is_retryable() && !*self.stop.borrow() && started.elapsed() < window;
        if retry {
            crate::metrics::count_retry("runner", e);
            tracing::warn!(error = %e.report(), "retrying after a transient failure");
        }
        retry
    }

    /// Runs the steps in order, recording in the task record the state of each step it
    /// starts. A step recorded as done by an earlier run is skipped, except incremental
    /// migration, which goes on from its recorded position (unless stopped).
    async fn run(&mut self) -> Result<()> {
        for step in STEPS {
            if !self.includes(step) {
                continue;
            }
            if step == Step::Incremental {
                if *self.stop.borrow() {
                    break;
                }
            } else if self.step_done(step).await? {
                self.report.already_done.push(step);
                self.emit(TaskEvent::AlreadyDone(step));
                continue;
            }
            self.record_step_state(step).await?;
            self.emit(TaskEvent::StepStarted(step));
            self.step(step).await?;
            self.emit(TaskEvent::StepFinished(step));
        }
        Ok(())
    }

    /// Records how the run ended in the task record: finished, stopped, or failed with the
    /// error and its fix; on the run's state store, or on a new connection when that one
    /// was lost.
    async fn record_end(&self, result: &Result<()>) {
        let (state, failure) = match result {
            Ok(()) if self.includes(Step::Incremental) => (TaskState::Stopped, None),
            Ok(()) => (TaskState::Finished, None),
            Err(e) if e.kind() == ErrorKind::Interrupted => (TaskState::Stopped, None),
            Err(e) => (TaskState::Failed, Some(crate::record::failure(e))),
        };
        let mut written = self.store.record_state(state, failure.as_ref()).await;
        if written.is_err() {
            if let Ok(target) = self.target.reconnect().await {
                if let Ok(store) = target.state_store(&self.config.name).await {
                    written = store.record_state(state, failure.as_ref()).await;
                }
            }
        }
        if let Err(e) = written {
            tracing::warn!(error = %e.report(), %state, "cannot record how the run ended");
        }
    }
}

impl Task {
    /// A task from a validated configuration.
    pub fn new(config: TaskConfig) -> Self {
        Self { config }
    }

    /// The task's configuration.
    pub fn config(&self) -> &TaskConfig {
        &self.config
    }

    /// Reads the selected source schema and translates it, without writing anything. A
    /// MySQL target is asked for its version (its server family spells collations its own
    /// way); when it cannot be reached, MariaDB's spellings are used.
    pub async fn plan(&self) -> Result<TaskPlan> {
        let source = Source::connect(&self.config.source.url).await?;
        let target = Engine::from_url(&self.config.target.url)?;
        let version = match target {
            Engine::MySql => Target::connect(&self.config.target.url)
                .await
                .ok()
                .map(|t| t.version().to_string()),
            _ => None,
        };
        read_plan(&self.config, &source, target, version.as_deref()).await
    }

    /// Compares every selected table of the source with the target, through the task's
    /// type mapping, and repairs the differences if `options` ask for it. Progress is sent
    /// to `events`, if given. Nothing is written unless repair runs.
    pub async fn verify(
        &self,
        options: &crate::verify::VerifyOptions,
        events: Option<UnboundedSender<dts_fullload::verify::VerifyEvent>>,
    ) -> Result<dts_fullload::verify::VerifyReport> {
        crate::verify::verify(&self.config, options, events).await
    }

    /// Runs every precheck and reports each item. Fails only when the checks themselves
    /// cannot run; failed checks are in the report.
    pub async fn precheck(&self) -> Result<PrecheckReport> {
        Ok(crate::precheck::run(&self.config, true).await?.0)
    }

    /// Runs the task: prechecks, then every migration type the task lists. Events are sent
    /// to `events` as they happen, if given. A failed precheck stops the task before it
    /// writes anything.
    pub async fn run(&self, events: Option<UnboundedSender<TaskEvent>>) -> Result<RunReport> {
        let (_tx, stop) = watch::channel(false);
        self.run_until(events, stop).await
    }

    /// Like [`Task::run_until`], with [`RunOptions`].
    pub async fn run_with(
        &self,
        events: Option<UnboundedSender<TaskEvent>>,
        stop: watch::Receiver<bool>,
        options: RunOptions,
    ) -> Result<RunReport> {
        self.run_inner(events, stop, options).await
    }

    /// Like [`Task::run`], but stops cleanly when `stop` becomes `true`: chunks in flight
    /// are committed, nothing new is started, and the error is [`ErrorKind::Interrupted`].
    /// Running the task again resumes where it stopped.
    pub async fn run_until(
        &self,
        events: Option<UnboundedSender<TaskEvent>>,
        stop: watch::Receiver<bool>,
    ) -> Result<RunReport> {
        self.run_inner(events, stop, RunOptions::default()).await
    }

    /// Runs the task with its metrics and alerts watching.
    async fn run_inner(
        &self,
        events: Option<UnboundedSender<TaskEvent>>,
        stop: watch::Receiver<bool>,
        options: RunOptions,
    ) -> Result<RunReport> {
        let (events, live) = crate::metrics::observe(events);
        let alerts = crate::alerts::Alerts::start(&self.config, std::sync::Arc::clone(&live));
        let result = self.run_steps(Some(events), stop, options).await;
        live.finish(&result, self.config.runs(MigrationType::Incremental));
        alerts.finish(&result).await;
        result
    }

    async fn run_steps(
        &self,
        events: Option<UnboundedSender<TaskEvent>>,
        stop: watch::Receiver<bool>,
        options: RunOptions,
    ) -> Result<RunReport> {
        let emit = |e: TaskEvent| {
            if let Some(tx) = &events {
                let _ = tx.send(e);
            }
        };
        emit(TaskEvent::StepStarted(Step::Precheck));
        // A task run before shows that it is being checked again (unless a run of it is
        // going on); a first run writes nothing until its checks pass.
        let earlier = crate::record::earlier_record(&self.config).await;
        if let Some(store) = &earlier {
            crate::switchover::refuse_switched(&self.config, store.as_ref()).await?;
            crate::record::note(store.record_state(TaskState::Prechecking, None).await);
        }
        let checked = crate::precheck::run(&self.config, self.config.full.precheck_values)
            .await
            .and_then(|(report, ready)| {
                if report.passed() {
                    ready.ok_or_else(|| Error::internal("precheck passed without connections"))
                } else {
                    let failed: Vec<String> = report
                        .failures()
                        .map(|i| format!("{}: {}", i.code, i.message))
                        .collect();
                    Err(Error::new(ErrorKind::Precheck, failed.join("; ")))
                }
            });
        let ready = match checked {
            Ok(ready) => ready,
            Err(e) => {
                if let Some(store) = &earlier {
                    let failure = crate::record::failure(&e);
                    crate::record::note(
                        store.record_state(TaskState::Failed, Some(&failure)).await,
                    );
                }
                return Err(e);
            }
        };
        drop(earlier);
        emit(TaskEvent::StepFinished(Step::Precheck));
        // Every target session of this run is named after it, so a later run can find
        // what this one leaves behind if it is killed.
        let target = ready.target.for_run(&self.config.name).await?;
        let store = target.state_store(&self.config.name).await?;
        store.migrate().await?;
        // One run per task: the lock is held by the store's connection, which the run
        // keeps until it ends.
        store.lock_run().await?;
        // From now on the record is this run's (a stop asked of an earlier run is void).
        store.record_state(TaskState::Prechecking, None).await?;
        // Holding the lock, every other session of the task belongs to a run that ended
        // (killed): statements it still runs on the server would hold locks this run needs.
        let prepared = async {
            target.end_earlier_runs(LEFTOVER_PATIENCE).await?;
            // The target tables that existed before this task created its own (kept under the
            // `ignore` conflict policy): found now on a first run, recorded with the pre-data
            // step for later runs, when the task's own tables exist too.
            let existing = if store.is_done(Step::SchemaPreData.key()).await? {
                store.kept_tables().await?
            } else {
                let found = target
                    .existing_tables(&crate::precheck::target_schemas(&ready.plan))
                    .await?;
                crate::ddl::prepare_existing(&self.config, &target, &ready.plan, found).await?
            };
            // A resumed run works from the source schema the target was built from, after
            // checking the source against it; a first run records the schema it builds from.
            let plan = crate::resume::resume_plan(
                &self.config,
                &ready.source,
                &target,
                store.as_ref(),
                ready.plan.clone(),
            )
            .await?;
            Ok::<_, Error>((existing, plan))
        }
        .await;
        let (existing, plan) = match prepared {
            Ok(prepared) => prepared,
            Err(e) => {
                let failure = crate::record::failure(&e);
                crate::record::note(store.record_state(TaskState::Failed, Some(&failure)).await);
                return Err(e);
            }
        };
        let report = RunReport {
            warnings: ready
                .plan
                .schema
                .problems
                .iter()
                .filter(|p| !p.blocking)
                .map(|p| format!("{}: {}", p.object, p.message))
                .collect(),
            ..Default::default()
        };
        let store: std::sync::Arc<dyn dts_core::StateStore> = store.into();
        // The run stops when its caller says so, when the task record asks it to, or when
        // the run lock is lost.
        let (stop_tx, run_stop) = watch::channel(*stop.borrow());
        let stop_tx = std::sync::Arc::new(stop_tx);
        let forward_stop = {
            let (mut stop, stop_tx) = (stop, stop_tx.clone());
            tokio::spawn(async move {
                if stop.wait_for(|s| *s).await.is_ok() {
                    let _ = stop_tx.send(true);
                }
            })
        };
        let (publisher, events) = crate::record::Publisher::start(
            &target,
            &self.config.name,
            &plan,
            events,
            stop_tx.clone(),
        )
        .await?;
        let source = crate::filter::filtered_source(&self.config, ready.source, &plan.catalog)?;
        let mut run = Run {
            config: &self.config,
            source,
            target,
            plan,
            store: std::sync::Arc::clone(&store),
            existing,
            events: Some(events),
            stop: run_stop,
            options,
            report,
        };
        let result = {
            let running = run.run();
            tokio::pin!(running);
            // The run lock lives on a session of its own: if it is lost and cannot be taken
            // again, the run stops as on a stop request (chunks in flight and the batch being
            // applied end; positions move compare-and-set, so no other run's work is
            // overwritten meanwhile) and fails, rather than go on unlocked.
            tokio::select! {
                result = &mut running => result,
                lost = store.run_lock_lost() => {
                    tracing::error!(error = %lost, "run lock lost: stopping");
                    let _ = stop_tx.send(true);
                    let _ = running.await;
                    Err(lost)
                }
            }
        };
        forward_stop.abort();
        // Every event is counted before the run's end is recorded.
        run.events = None;
        let _ = publisher.finish().await;
        run.record_end(&result).await;
        result.map(|()| std::mem::take(&mut run.report))
    }
}

/// A channel whose events are forwarded, wrapped by `wrap`, to the task's event channel (if
/// any) until the sender is dropped; await the handle to drain it.
pub(crate) fn forward_events<E: Send + 'static>(
    events: Option<UnboundedSender<TaskEvent>>,
    wrap: fn(E) -> TaskEvent,
) -> (UnboundedSender<E>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let handle = tokio::spawn(async move {
        while let Some(e) = rx.recv().await {
            if let Some(out) = &events {
                let _ = out.send(wrap(e));
            }
        }
    });
    (tx, handle)
}
