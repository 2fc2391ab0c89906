//! The task runner: prechecks, then the task's steps in order — schema (pre-data), full
//! load, schema (post-data), incremental — each skipped when an earlier run finished it.

use std::collections::BTreeSet;
use std::fmt;

use dts_cdc::CdcEvent;
use dts_connectors::{Source, Target};
use dts_core::{
    Catalog, Engine, Error, ErrorKind, PrecheckReport, Result, SchemaSource, TableName,
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

/// Reads the selected source schema and translates it for the target engine.
pub(crate) async fn read_plan(
    config: &TaskConfig,
    source: &Source,
    target: Engine,
) -> Result<TaskPlan> {
    let selection = config.selection()?;
    let all = source.list_schemas().await?;
    let databases: Vec<String> = selection.databases(&all).into_iter().cloned().collect();
    let mut catalog = source.read_catalog(&databases).await?;
    for schema in &mut catalog.schemas {
        schema.tables.retain(|t| selection.selects(&t.name));
    }
    catalog.schemas.retain(|s| !s.tables.is_empty());
    let schema =
        dts_connectors::plan_schema(source.engine(), target, &catalog, &config.schema_options()?)?;
    Ok(TaskPlan { catalog, schema })
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
                let (ptx, forwarder) = forward_events(self.events.clone(), TaskEvent::Progress);
                let result = crate::full::run_full_load(self, Some(ptx)).await;
                let _ = forwarder.await;
                self.report.full = Some(result?);
                Ok(())
            }
            Step::SchemaPostData => {
                crate::ddl::post_data(self).await?;
                // The full load is done once its data and the post-data schema are in
                // place.
                if self.includes(Step::FullLoad)
                    && !self.report.already_done.contains(&Step::FullLoad)
                {
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
            Step::Incremental => {
                let (ctx, forwarder) = forward_events(self.events.clone(), TaskEvent::Replication);
                let result = crate::incremental::run_incremental(self, Some(ctx)).await;
                let _ = forwarder.await;
                self.report.incremental = Some(result?);
                Ok(())
            }
        }
    }

    /// Runs the steps in order. A step recorded as done by an earlier run is skipped, except
    /// incremental migration, which goes on from its recorded position (unless stopped).
    async fn run(mut self) -> Result<RunReport> {
        for step in STEPS {
            if !self.includes(step) {
                continue;
            }
            if step == Step::Incremental {
                if *self.stop.borrow() {
                    break;
                }
            } else if self.store.is_done(step.key()).await? {
                self.report.already_done.push(step);
                self.emit(TaskEvent::AlreadyDone(step));
                continue;
            }
            self.emit(TaskEvent::StepStarted(step));
            self.step(step).await?;
            self.emit(TaskEvent::StepFinished(step));
        }
        Ok(self.report)
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

    /// Reads the selected source schema and translates it, without writing anything.
    pub async fn plan(&self) -> Result<TaskPlan> {
        let source = Source::connect(&self.config.source.url).await?;
        let target = Engine::from_url(&self.config.target.url)?;
        read_plan(&self.config, &source, target).await
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

    async fn run_inner(
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
        let (report, ready) =
            crate::precheck::run(&self.config, self.config.full.precheck_values).await?;
        if !report.passed() {
            let failed: Vec<String> = report
                .failures()
                .map(|i| format!("{}: {}", i.code, i.message))
                .collect();
            return Err(Error::new(ErrorKind::Precheck, failed.join("; ")));
        }
        let Some(ready) = ready else {
            return Err(Error::internal("precheck passed without connections"));
        };
        emit(TaskEvent::StepFinished(Step::Precheck));
        // Every target session of this run is named after it, so a later run can find
        // what this one leaves behind if it is killed.
        let target = ready.target.for_run(&self.config.name).await?;
        let store = target.state_store(&self.config.name).await?;
        store.migrate().await?;
        // One run per task: the lock is held by the store's connection, which the run
        // keeps until it ends.
        store.lock_run().await?;
        // Holding the lock, every other session of the task belongs to a run that ended
        // (killed): statements it still runs on the server would hold locks this run needs.
        target.end_earlier_runs(LEFTOVER_PATIENCE).await?;
        // The target tables that existed before this task created its own (kept under the
        // `ignore` conflict policy): found now on a first run, recorded with the pre-data
        // step for later runs, when the task's own tables exist too.
        let existing = if store.is_done(Step::SchemaPreData.key()).await? {
            store.kept_tables().await?
        } else {
            target
                .existing_tables(&crate::precheck::target_schemas(&ready.plan))
                .await?
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
        // The run stops when the caller says so, or when the run lock is lost.
        let (stop_run, run_stop) = watch::channel(*stop.borrow());
        let forward_stop = {
            let (mut stop, stop_run) = (stop, stop_run.clone());
            tokio::spawn(async move {
                while stop.changed().await.is_ok() {
                    if *stop.borrow() {
                        let _ = stop_run.send(true);
                    }
                }
            })
        };
        let run = Run {
            config: &self.config,
            source: ready.source,
            target,
            plan: ready.plan,
            store: std::sync::Arc::clone(&store),
            existing,
            events,
            stop: run_stop,
            options,
            report,
        }
        .run();
        tokio::pin!(run);
        // The run lock lives on one connection: if it is lost, the run stops as on a stop
        // request (chunks in flight and the batch being applied end; positions move
        // compare-and-set, so no other run's work is overwritten meanwhile) and fails,
        // rather than go on unlocked.
        let result = tokio::select! {
            result = &mut run => result,
            lost = store.run_lock_lost() => {
                tracing::error!(error = %lost, "run lock lost: stopping");
                let _ = stop_run.send(true);
                let _ = run.await;
                Err(lost)
            }
        };
        forward_stop.abort();
        result
    }
}

/// A channel whose events are forwarded, wrapped by `wrap`, to the task's event channel (if
/// any) until the sender is dropped; await the handle to drain it.
fn forward_events<E: Send + 'static>(
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
