//! The task runner: precheck → schema (pre-data) → full → schema (post-data).

use std::collections::BTreeSet;
use std::fmt;

use dts_connectors::mysql::MySqlSource;
use dts_connectors::postgres::PgTarget;
use dts_core::{Catalog, Error, ErrorKind, Result, SchemaSource, TableName};
use dts_schema::{Phase, SchemaPlan, Statement, StatementKind};
use futures::StreamExt;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::watch;

use crate::config::{ConflictPolicy, MigrationType, TaskConfig};
use crate::full::FullReport;
use crate::incremental::IncrementalReport;
use crate::meta;
use dts_cdc::CdcEvent;
use dts_core::{CheckStatus, PrecheckReport};
use dts_fullload::ProgressEvent;

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
    fn key(&self) -> &'static str {
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
    fn record_created(&mut self, s: &Statement, emit: &impl Fn(TaskEvent)) {
        self.created.push(s.object.clone());
        emit(TaskEvent::Created {
            kind: s.kind,
            object: s.object.clone(),
        });
    }

    fn record_skipped(&mut self, s: &Statement, emit: &impl Fn(TaskEvent)) {
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

impl Task {
    /// A task from a validated configuration.
    pub fn new(config: TaskConfig) -> Self {
        Self { config }
    }

    /// The task's configuration.
    pub fn config(&self) -> &TaskConfig {
        &self.config
    }

    async fn read_plan(&self, source: &MySqlSource) -> Result<TaskPlan> {
        let selection = self.config.selection()?;
        let all = source.list_schemas().await?;
        let databases: Vec<String> = selection.databases(&all).into_iter().cloned().collect();
        let mut catalog = source.read_catalog(&databases).await?;
        for schema in &mut catalog.schemas {
            schema.tables.retain(|t| selection.selects(&t.name));
        }
        catalog.schemas.retain(|s| !s.tables.is_empty());
        let schema = dts_schema::plan_mysql_to_pg(&catalog, &self.config.schema_options()?);
        Ok(TaskPlan { catalog, schema })
    }

    /// Reads the selected source schema and translates it, without writing anything.
    pub async fn plan(&self) -> Result<TaskPlan> {
        let source = MySqlSource::connect(&self.config.source.url).await?;
        self.read_plan(&source).await
    }

    /// Runs every precheck and reports each item. Fails only when the checks themselves
    /// cannot run; failed checks are in the report.
    pub async fn precheck(&self) -> Result<PrecheckReport> {
        Ok(self.precheck_inner(true).await?.0)
    }

    async fn precheck_inner(
        &self,
        scan_values: bool,
    ) -> Result<(PrecheckReport, Option<(PgTarget, TaskPlan)>)> {
        let mut r = PrecheckReport::default();
        let cfg = &self.config;
        let types: Vec<String> = cfg.migration.iter().map(ToString::to_string).collect();
        r.pass("task.migration_types", types.join(", "));

        let source = match MySqlSource::connect(&cfg.source.url).await {
            Ok(s) => {
                let info = s.info().clone();
                r.pass(
                    "source.connectivity",
                    format!("connected to source, version {}", info.version),
                );
                let ok = if info.is_mariadb {
                    info.major_minor >= (10, 2)
                } else {
                    info.major_minor >= (5, 7)
                };
                if ok {
                    r.pass("source.version", info.version.clone());
                } else {
                    r.push(
                        "source.version",
                        CheckStatus::Fail,
                        format!("source version {} is too old", info.version),
                        "use MariaDB 10.2 or later, or MySQL 5.7 or later",
                    );
                }
                Some(s)
            }
            Err(e) => {
                r.push(
                    "source.connectivity",
                    CheckStatus::Fail,
                    e.report(),
                    "check the source url, that the server is running and reachable, and the \
                     account's password",
                );
                None
            }
        };
        let target = match PgTarget::connect(&cfg.target.url).await {
            Ok(t) => {
                r.pass(
                    "target.connectivity",
                    format!("connected to target, PostgreSQL {}", t.version()),
                );
                if t.major_version() >= 12 {
                    r.pass("target.version", t.version().to_string());
                } else {
                    r.push(
                        "target.version",
                        CheckStatus::Fail,
                        format!("target version {} is too old", t.version()),
                        "use PostgreSQL 12 or later",
                    );
                }
                Some(t)
            }
            Err(e) => {
                r.push(
                    "target.connectivity",
                    CheckStatus::Fail,
                    e.report(),
                    "check the target url, that the server is running and reachable, and the \
                     account's password",
                );
                None
            }
        };
        let (Some(source), Some(target)) = (source, target) else {
            for code in [
                "objects.selection",
                "source.privileges",
                "target.privileges",
                "schema.translation",
                "target.conflicting_tables",
            ] {
                r.push(
                    code,
                    CheckStatus::Skipped,
                    "needs both servers",
                    "fix the connectivity checks first",
                );
            }
            return Ok((r, None));
        };

        // Selection.
        let selection = cfg.selection()?;
        let all = source.list_schemas().await?;
        let unmatched = selection.unmatched_databases(&all);
        let plan = self.read_plan(&source).await?;
        let table_count = plan.catalog.tables().count();
        if !unmatched.is_empty() {
            r.push(
                "objects.selection",
                CheckStatus::Fail,
                format!(
                    "no source database matches {}",
                    unmatched
                        .iter()
                        .map(|d| format!("`{d}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "correct `objects.include`; the source has: ".to_string() + &all.join(", "),
            );
        } else if table_count == 0 {
            r.push(
                "objects.selection",
                CheckStatus::Fail,
                "the selection matches no table",
                "correct `objects.include` / `objects.exclude`",
            );
        } else {
            r.pass(
                "objects.selection",
                format!(
                    "{table_count} tables in {} databases",
                    plan.catalog.schemas.len()
                ),
            );
        }

        // Source privileges: every selected table must be readable.
        let mut unreadable = Vec::new();
        for t in plan.catalog.tables() {
            if let Err(e) = source.check_select(&t.name).await {
                if e.kind() == ErrorKind::Privilege {
                    unreadable.push(format!("`{}`", t.name));
                } else {
                    return Err(e);
                }
            }
        }
        // Tables the account has no privilege on are invisible in information_schema: a
        // database-level SELECT is needed so that no table is left out unseen.
        let grants = source.grants().await?;
        let dbs_without_select: Vec<String> = selection
            .databases(&all)
            .into_iter()
            .filter(|d| !has_database_select(&grants, d))
            .map(|d| format!("`{d}`"))
            .collect();
        if !dbs_without_select.is_empty() {
            r.push(
                "source.privileges",
                CheckStatus::Fail,
                format!(
                    "the source account has no SELECT on all tables of {}: tables it cannot see \
                     would not be migrated{}",
                    dbs_without_select.join(", "),
                    if unreadable.is_empty() {
                        String::new()
                    } else {
                        format!("; it cannot SELECT from {}", unreadable.join(", "))
                    }
                ),
                "GRANT SELECT ON <database>.* TO the source account",
            );
        } else if unreadable.is_empty() {
            r.pass("source.privileges", "SELECT on every selected table");
        } else {
            r.push(
                "source.privileges",
                CheckStatus::Fail,
                format!(
                    "the source account cannot SELECT from {}",
                    unreadable.join(", ")
                ),
                "GRANT SELECT ON <database>.* TO the source account",
            );
        }

        // Target privileges.
        let target_schemas: BTreeSet<String> = plan
            .schema
            .tables
            .iter()
            .map(|t| t.target.schema.clone())
            .collect();
        let target_schemas: Vec<String> = target_schemas.into_iter().collect();
        let existing = target.existing_tables(&target_schemas).await?;
        let (can_create_schema, dbname) = target.can_create_schemas().await?;
        let no_create = target.schemas_without_create(&target_schemas).await?;
        let existing_schemas: BTreeSet<String> =
            existing.iter().map(|t| t.schema.clone()).collect();
        let need_schema_create = target_schemas.iter().any(|s| !existing_schemas.contains(s));
        if !no_create.is_empty() {
            r.push(
                "target.privileges",
                CheckStatus::Fail,
                format!(
                    "the target account cannot create tables in schema {}",
                    no_create.join(", ")
                ),
                "GRANT CREATE ON SCHEMA <schema> TO the target account",
            );
        } else if need_schema_create && !can_create_schema {
            r.push(
                "target.privileges",
                CheckStatus::Fail,
                format!("the target account cannot create schemas in database `{dbname}`"),
                format!("GRANT CREATE ON DATABASE \"{dbname}\" TO the target account"),
            );
        } else {
            r.pass(
                "target.privileges",
                "may create the target schemas and tables",
            );
        }

        // Translation problems.
        let blocking: Vec<&dts_schema::Problem> =
            plan.schema.problems.iter().filter(|p| p.blocking).collect();
        let notes: Vec<&dts_schema::Problem> = plan
            .schema
            .problems
            .iter()
            .filter(|p| !p.blocking)
            .collect();
        if !blocking.is_empty() {
            r.push(
                "schema.translation",
                CheckStatus::Fail,
                blocking
                    .iter()
                    .map(|p| format!("{}: {}", p.object, p.message))
                    .collect::<Vec<_>>()
                    .join("; "),
                "exclude the objects named, or change them in the source",
            );
        } else if !notes.is_empty() {
            r.push(
                "schema.translation",
                CheckStatus::Warn,
                notes
                    .iter()
                    .map(|p| format!("{}: {}", p.object, p.message))
                    .collect::<Vec<_>>()
                    .join("; "),
                "review the notes; nothing is lost",
            );
        } else {
            r.pass("schema.translation", "every selected object translates");
        }

        if cfg.runs(MigrationType::Full) {
            self.precheck_data(&mut r, &source, &plan, scan_values)
                .await?;
        }
        if cfg.runs(MigrationType::Incremental) {
            self.precheck_binlog(&mut r, &source).await?;
            if target.can_set_replication_role().await? {
                r.pass(
                    "target.replication_role",
                    "may set session_replication_role (triggers off while applying)",
                );
            } else {
                r.push(
                    "target.replication_role",
                    CheckStatus::Fail,
                    "the target account may not set session_replication_role, which applying \
                     changes needs so that triggers and foreign keys do not fire twice",
                    "use a superuser, or on PostgreSQL 15+: GRANT SET ON PARAMETER \
                     session_replication_role TO the target account",
                );
            }
        }

        // Conflicting tables (unless this task created them in an earlier run).
        let pre_done = meta::is_done(target.client(), &cfg.name, Step::SchemaPreData.key()).await?;
        let conflicts: Vec<String> = plan
            .schema
            .tables
            .iter()
            .filter(|t| existing.contains(&t.target))
            .map(|t| format!("`{}`", t.target))
            .collect();
        if pre_done {
            r.pass(
                "target.conflicting_tables",
                format!("target tables were created by task `{}` earlier", cfg.name),
            );
        } else if conflicts.is_empty() {
            r.pass("target.conflicting_tables", "no target table exists yet");
        } else {
            let status = match cfg.policy.conflicting_tables {
                ConflictPolicy::Fail => CheckStatus::Fail,
                ConflictPolicy::Ignore => CheckStatus::Warn,
            };
            r.push(
                "target.conflicting_tables",
                status,
                format!("target already has {}", conflicts.join(", ")),
                "drop or rename them in the target, rename them in the task \
                 (objects.rename_*), or set policy.conflicting_tables = \"ignore\"",
            );
        }

        Ok((r, Some((target, plan))))
    }

    /// Checks for the full load: keys for chunking, the snapshot lock privilege, and values
    /// the type mapping cannot hold (counted per column with the type mapping's predicates).
    async fn precheck_data(
        &self,
        r: &mut PrecheckReport,
        source: &MySqlSource,
        plan: &TaskPlan,
        scan_values: bool,
    ) -> Result<()> {
        let keyless: Vec<String> = plan
            .schema
            .tables
            .iter()
            .filter(|t| t.chunk_key.is_none())
            .map(|t| format!("`{}`", t.source))
            .collect();
        if keyless.is_empty() {
            r.pass(
                "source.keys",
                "every table has a primary or not-null unique key",
            );
        } else {
            r.push(
                "source.keys",
                CheckStatus::Warn,
                format!(
                    "no primary or not-null unique key: {} (copied whole, in one transaction, \
                     without parallelism within the table)",
                    keyless.join(", ")
                ),
                "add a primary key to copy such tables in parallel chunks",
            );
        }

        let grants = source.grants().await?.join("\n").to_ascii_uppercase();
        let reload = grants.contains("ALL PRIVILEGES ON *.*") || grants.contains("RELOAD");
        if reload || self.config.full.workers() <= 1 {
            r.pass(
                "source.snapshot",
                "parallel readers share one consistent snapshot",
            );
        } else {
            r.push(
                "source.snapshot",
                CheckStatus::Warn,
                "the source account lacks RELOAD: the snapshot cannot be shared by parallel \
                 readers, so the copy reads through one connection",
                "GRANT RELOAD ON *.* TO the source account for parallel reads",
            );
        }

        if !scan_values {
            r.pass(
                "source.values",
                "checked row by row during the copy (run `dts precheck`, or set \
                 full.precheck_values = true, to scan before copying)",
            );
            return Ok(());
        }
        // One scan per table counts every check of every column; tables are scanned
        // concurrently.
        let options = self.config.mapping_options();
        let scans = plan.schema.tables.iter().map(|tp| {
            let checks: Vec<(String, dts_typemap::DataCheck)> = tp
                .columns
                .iter()
                .filter(|c| c.copied)
                .flat_map(|col| {
                    let quoted = format!("`{}`", col.source_name.replace('`', "``"));
                    dts_typemap::mysql_data_checks(&col.mapping, &quoted, &options)
                        .into_iter()
                        .map(|check| (col.source_name.clone(), check))
                        .collect::<Vec<_>>()
                })
                .collect();
            async move {
                let predicates: Vec<String> =
                    checks.iter().map(|(_, c)| c.predicate.clone()).collect();
                let counts = source.count_many(&tp.source, &predicates).await?;
                Ok::<_, Error>((tp, checks, counts))
            }
        });
        let results: Vec<_> = futures::stream::iter(scans)
            .buffer_unordered(self.config.full.workers())
            .collect::<Vec<_>>()
            .await;
        let mut failures = Vec::new();
        let mut warnings = Vec::new();
        for result in results {
            let (tp, checks, counts) = result?;
            for ((column, check), n) in checks.iter().zip(counts) {
                if n == 0 {
                    continue;
                }
                let line = format!(
                    "`{}`.`{column}`: {n} rows: {} ({})",
                    tp.source, check.problem, check.fix
                );
                if check.blocking && self.config.full.bad_rows == crate::config::BadRows::Stop {
                    failures.push(line);
                } else {
                    warnings.push(line);
                }
            }
        }
        failures.sort();
        warnings.sort();
        if !failures.is_empty() {
            r.push(
                "source.values",
                CheckStatus::Fail,
                failures
                    .into_iter()
                    .chain(warnings)
                    .collect::<Vec<_>>()
                    .join("; "),
                "fix the values in the source, exclude the columns' tables, change the type \
                 options, or set full.bad_rows = \"reject\"",
            );
        } else if !warnings.is_empty() {
            r.push(
                "source.values",
                CheckStatus::Warn,
                warnings.join("; "),
                "review: these values are converted as the task's type options say",
            );
        } else {
            r.pass("source.values", "every value fits its target type");
        }
        Ok(())
    }

    /// Checks for incremental migration: the binlog settings change capture needs, the
    /// replication privileges, and binlog retention.
    async fn precheck_binlog(&self, r: &mut PrecheckReport, source: &MySqlSource) -> Result<()> {
        let vars = source
            .variables(&[
                "log_bin",
                "binlog_format",
                "binlog_row_image",
                "binlog_row_metadata",
                "server_id",
                "expire_logs_days",
                "binlog_expire_logs_seconds",
            ])
            .await?;
        let get = |k: &str| vars.get(k).map(|v| v.to_ascii_uppercase());
        let mut wrong = Vec::new();
        let mut fixes = Vec::new();
        for (name, want) in [
            ("log_bin", "ON"),
            ("binlog_format", "ROW"),
            ("binlog_row_image", "FULL"),
            ("binlog_row_metadata", "FULL"),
        ] {
            match get(name) {
                Some(v) if v == want => {}
                Some(v) => {
                    wrong.push(format!("{name} is {v}, needs {want}"));
                    fixes.push(if name == "log_bin" {
                        "start the server with log-bin".to_string()
                    } else {
                        format!("SET GLOBAL {name} = '{want}' (and in the server's configuration)")
                    });
                }
                None => {
                    wrong.push(format!(
                        "{name} is not available (MariaDB 10.5+ or MySQL 8.0 needed)"
                    ));
                    fixes.push("upgrade the source server".into());
                }
            }
        }
        if get("server_id").as_deref() == Some("0") {
            wrong.push("server_id is 0".into());
            fixes.push("set server_id to a non-zero value".into());
        }
        if wrong.is_empty() {
            r.pass(
                "source.binlog",
                "log_bin ON, ROW format, FULL row image and metadata",
            );
        } else {
            r.push(
                "source.binlog",
                CheckStatus::Fail,
                wrong.join("; "),
                fixes.join("; "),
            );
        }

        let grants = source.grants().await?.join("\n").to_ascii_uppercase();
        let all = grants.contains("ALL PRIVILEGES ON *.*");
        let slave = all || grants.contains("REPLICATION SLAVE");
        let client = all
            || grants.contains("REPLICATION CLIENT")
            || grants.contains("BINLOG MONITOR")
            || grants.contains("SUPER");
        if slave && client {
            r.pass("source.replication_privileges", "may read the binlog");
        } else {
            let mut missing = Vec::new();
            if !slave {
                missing.push("REPLICATION SLAVE");
            }
            if !client {
                missing.push("REPLICATION CLIENT (BINLOG MONITOR on MariaDB)");
            }
            r.push(
                "source.replication_privileges",
                CheckStatus::Fail,
                format!("the source account lacks {}", missing.join(" and ")),
                format!("GRANT {} ON *.* TO the source account", missing.join(", ")),
            );
        }

        let seconds = get("binlog_expire_logs_seconds")
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|s| *s > 0)
            .or_else(|| {
                get("expire_logs_days")
                    .and_then(|v| v.parse::<f64>().ok())
                    .filter(|d| *d > 0.0)
                    .map(|d| {
                        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                        let s = (d * 86_400.0) as u64;
                        s
                    })
            });
        match seconds {
            Some(s) if s < 86_400 => r.push(
                "source.binlog_retention",
                CheckStatus::Warn,
                format!("binlogs are purged after {s} s: a pause longer than that loses changes"),
                "keep binlogs for at least a day (binlog_expire_logs_seconds)",
            ),
            Some(s) => r.pass(
                "source.binlog_retention",
                format!("binlogs are kept {:.1} days", s as f64 / 86_400.0),
            ),
            None => r.pass(
                "source.binlog_retention",
                "binlogs are never purged automatically",
            ),
        }
        Ok(())
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
        let (report, ready) = self
            .precheck_inner(self.config.full.precheck_values)
            .await?;
        if !report.passed() {
            let failed: Vec<String> = report
                .failures()
                .map(|i| format!("{}: {}", i.code, i.message))
                .collect();
            return Err(Error::new(ErrorKind::Precheck, failed.join("; ")));
        }
        let Some((mut target, plan)) = ready else {
            return Err(Error::internal("precheck passed without connections"));
        };
        emit(TaskEvent::StepFinished(Step::Precheck));
        let mut out = RunReport {
            warnings: plan
                .schema
                .problems
                .iter()
                .filter(|p| !p.blocking)
                .map(|p| format!("{}: {}", p.object, p.message))
                .collect(),
            ..Default::default()
        };
        let target_schemas: Vec<String> = plan
            .schema
            .tables
            .iter()
            .map(|t| t.target.schema.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let name = self.config.name.clone();
        meta::ensure(target.client()).await?;
        // The target tables that existed before this task created its own (kept under the
        // `ignore` conflict policy): found now on a first run, recorded with the pre-data
        // step for later runs, when the task's own tables exist too.
        let existing: BTreeSet<TableName> =
            if meta::is_done(target.client(), &name, Step::SchemaPreData.key()).await? {
                meta::kept_tables(target.client(), &name).await?
            } else {
                target.existing_tables(&target_schemas).await?
            };
        let schema = self.config.runs(MigrationType::Schema);
        let full = self.config.runs(MigrationType::Full);

        // Pre-data: one transaction, recorded as done inside it.
        let step = Step::SchemaPreData;
        if !schema {
        } else if meta::is_done(target.client(), &name, step.key()).await? {
            out.already_done.push(step);
            emit(TaskEvent::AlreadyDone(step));
        } else {
            emit(TaskEvent::StepStarted(step));
            let (run, skipped) = select_statements(&plan.schema, Phase::PreData, &existing);
            self.execute_pre_data(&mut target, &run, &existing, step)
                .await?;
            for s in &run {
                out.record_created(s, &emit);
            }
            for s in skipped {
                out.record_skipped(s, &emit);
            }
            emit(TaskEvent::StepFinished(step));
        }

        // Full data migration: chunks recorded as they commit, so a rerun resumes.
        let step = Step::FullLoad;
        if !full {
        } else if meta::is_done(target.client(), &name, step.key()).await? {
            out.already_done.push(step);
            emit(TaskEvent::AlreadyDone(step));
        } else {
            emit(TaskEvent::StepStarted(step));
            let (ptx, forwarder) = forward_events(events.clone(), TaskEvent::Progress);
            let result = crate::full::run_full_load(
                &self.config,
                &plan.catalog,
                &plan.schema,
                target.client(),
                Some(ptx),
                stop.clone(),
            )
            .await;
            let _ = forwarder.await;
            out.full = Some(result?);
            emit(TaskEvent::StepFinished(step));
        }

        // Post-data: indexes in parallel, then constraints, triggers, sequences; each
        // statement recorded as it completes, so a rerun continues.
        let step = Step::SchemaPostData;
        if !schema {
        } else if meta::is_done(target.client(), &name, step.key()).await? {
            out.already_done.push(step);
            emit(TaskEvent::AlreadyDone(step));
        } else {
            emit(TaskEvent::StepStarted(step));
            let (run, skipped) = select_statements(&plan.schema, Phase::PostData, &existing);
            // Generated columns first (indexes may cover them), then indexes in parallel,
            // then foreign keys, triggers and sequence values.
            let (generated, run): (Vec<&Statement>, Vec<&Statement>) = run
                .into_iter()
                .partition(|s| matches!(s.kind, StatementKind::GeneratedColumn));
            let (indexes, rest): (Vec<&Statement>, Vec<&Statement>) =
                run.into_iter().partition(|s| {
                    matches!(
                        s.kind,
                        StatementKind::PrimaryKey
                            | StatementKind::Index
                            | StatementKind::UniqueIndex
                    )
                });
            for s in generated {
                if self.execute_recorded(&mut target, s).await? {
                    out.record_created(s, &emit);
                }
            }
            let workers = self.config.full.workers();
            let created = self.execute_parallel(&indexes, workers).await?;
            for s in created {
                out.record_created(s, &emit);
            }
            for s in rest {
                if self.execute_recorded(&mut target, s).await? {
                    out.record_created(s, &emit);
                }
            }
            for s in skipped {
                out.record_skipped(s, &emit);
            }
            meta::mark_done(target.client(), &name, step.key()).await?;
            emit(TaskEvent::StepFinished(step));
        }

        // The full load is done once its data and the post-data schema are in place.
        if full && !out.already_done.contains(&Step::FullLoad) {
            let tables: Vec<String> = plan
                .schema
                .tables
                .iter()
                .map(|t| {
                    format!(
                        "{}.{}",
                        dts_schema::quote_ident(&t.target.schema),
                        dts_schema::quote_ident(&t.target.name)
                    )
                })
                .collect();
            if !tables.is_empty() {
                target
                    .client()
                    .batch_execute(&format!("ANALYZE {}", tables.join(", ")))
                    .await
                    .map_err(|e| {
                        dts_connectors::postgres::map_error(e, "analysing target tables")
                    })?;
            }
            meta::mark_done(target.client(), &name, Step::FullLoad.key()).await?;
        }

        // Incremental: runs until stopped (or caught up); its position is in
        // dts_meta.cdc_position, written with the data it covers.
        if self.config.runs(MigrationType::Incremental) && !*stop.borrow() {
            let step = Step::Incremental;
            emit(TaskEvent::StepStarted(step));
            let (ctx, forwarder) = forward_events(events.clone(), TaskEvent::Replication);
            let result = crate::incremental::run_incremental(
                &self.config,
                &plan.catalog,
                &plan.schema,
                target.client(),
                options.until_caught_up,
                full,
                Some(ctx),
                stop.clone(),
            )
            .await;
            let _ = forwarder.await;
            out.incremental = Some(result?);
            emit(TaskEvent::StepFinished(step));
        }
        Ok(out)
    }

    /// Runs one post-data statement unless an earlier run did; records it in the same
    /// transaction. Returns whether it ran.
    async fn execute_recorded(&self, target: &mut PgTarget, s: &Statement) -> Result<bool> {
        let key = format!("{}:{}", Step::SchemaPostData.key(), statement_key(s));
        if meta::is_done(target.client(), &self.config.name, &key).await? {
            return Ok(false);
        }
        let started = std::time::Instant::now();
        let tx = target
            .client_mut()
            .transaction()
            .await
            .map_err(|e| dts_connectors::postgres::map_error(e, "starting a transaction"))?;
        tx.batch_execute(&s.sql).await.map_err(|e| {
            dts_connectors::postgres::map_error(e, format!("creating `{}` failed", s.object))
        })?;
        meta::mark_done(&tx, &self.config.name, &key).await?;
        tx.commit()
            .await
            .map_err(|e| dts_connectors::postgres::map_error(e, "committing post-data ddl"))?;
        tracing::debug!(object = %s.object, ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX), "post-data statement done");
        Ok(true)
    }

    /// Runs statements on `workers` connections at once (index builds), each recorded as
    /// done. Returns the statements that ran.
    async fn execute_parallel<'a>(
        &self,
        statements: &[&'a Statement],
        workers: usize,
    ) -> Result<Vec<&'a Statement>> {
        if statements.is_empty() {
            return Ok(Vec::new());
        }
        let queue = std::sync::Mutex::new(statements.to_vec());
        let ran = std::sync::Mutex::new(Vec::new());
        let work = (0..workers.min(statements.len())).map(|_| async {
            let mut target = PgTarget::connect(&self.config.target.url).await?;
            // Index builds sort in memory rather than in temporary files.
            target
                .client()
                .batch_execute("SET maintenance_work_mem = '256MB'")
                .await
                .map_err(|e| dts_connectors::postgres::map_error(e, "setting up an index build"))?;
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop());
                let Some(s) = next else { break };
                if self.execute_recorded(&mut target, s).await? {
                    if let Ok(mut r) = ran.lock() {
                        r.push(s);
                    }
                }
            }
            Ok::<_, Error>(())
        });
        futures::future::try_join_all(work).await?;
        Ok(ran.into_inner().unwrap_or_default())
    }

    async fn execute_pre_data(
        &self,
        target: &mut PgTarget,
        statements: &[&Statement],
        kept: &BTreeSet<TableName>,
        step: Step,
    ) -> Result<()> {
        let tx = target
            .client_mut()
            .transaction()
            .await
            .map_err(|e| dts_connectors::postgres::map_error(e, "starting a transaction"))?;
        for st in statements {
            tx.batch_execute(&st.sql).await.map_err(|e| {
                dts_connectors::postgres::map_error(e, format!("creating `{}` failed", st.object))
            })?;
        }
        for t in kept {
            meta::mark_kept(&tx, &self.config.name, t).await?;
        }
        meta::mark_done(&tx, &self.config.name, step.key()).await?;
        tx.commit()
            .await
            .map_err(|e| dts_connectors::postgres::map_error(e, "committing pre-data ddl"))
    }
}

/// Whether `SHOW GRANTS` lines give SELECT on every table of `database` (a global or
/// database-level grant of SELECT or ALL PRIVILEGES).
fn has_database_select(grants: &[String], database: &str) -> bool {
    let escaped = database.replace('_', "\\_");
    grants.iter().any(|g| {
        let upper = g.to_ascii_uppercase();
        let Some((privs, rest)) = upper.split_once(" ON ") else {
            return false;
        };
        let privs_ok = privs.contains("ALL PRIVILEGES")
            || privs
                .trim_start_matches("GRANT ")
                .split(',')
                .any(|p| p.trim() == "SELECT");
        let on = rest.split_whitespace().next().unwrap_or("");
        let on_ok = on == "*.*"
            || g.contains(&format!("`{database}`.*"))
            || g.contains(&format!("`{escaped}`.*"));
        privs_ok && on_ok
    })
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

/// A stable key for a statement, so a rerun recognises statements already executed.
fn statement_key(s: &Statement) -> String {
    // FNV-1a over the SQL text: stable across runs and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.sql.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The statements of `phase` to run, and those skipped because their table (or, for a
/// foreign key, the table it references) already existed in the target (only reachable with
/// conflict policy `ignore`; otherwise the precheck failed).
fn select_statements<'a>(
    plan: &'a SchemaPlan,
    phase: Phase,
    existing: &BTreeSet<TableName>,
) -> (Vec<&'a Statement>, Vec<&'a Statement>) {
    let list = match phase {
        Phase::PreData => &plan.pre_data,
        _ => &plan.post_data,
    };
    let references: Vec<String> = existing
        .iter()
        .map(|t| {
            format!(
                " REFERENCES {}.{} ",
                dts_schema::quote_ident(&t.schema),
                dts_schema::quote_ident(&t.name)
            )
        })
        .collect();
    list.iter().partition(|s| {
        let own = s.table.as_ref().is_none_or(|t| !existing.contains(t));
        let parent_existed = s.kind == StatementKind::ForeignKey
            && references.iter().any(|r| s.sql.contains(r.as_str()));
        own && !parent_existed
    })
}

#[cfg(test)]
mod tests {
    use super::has_database_select;

    #[test]
    fn database_select_grants_are_recognised() {
        let g = |lines: &[&str]| lines.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(has_database_select(
            &g(&["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"]),
            "shop"
        ));
        assert!(has_database_select(
            &g(&[
                "GRANT USAGE ON *.* TO `u`@`%`",
                "GRANT SELECT, SHOW VIEW ON `shop`.* TO `u`@`%`"
            ]),
            "shop"
        ));
        assert!(has_database_select(
            &g(&["GRANT SELECT ON `my\\_db`.* TO `u`@`%`"]),
            "my_db"
        ));
        assert!(!has_database_select(
            &g(&[
                "GRANT USAGE ON *.* TO `u`@`%`",
                "GRANT SELECT ON `shop`.`orders` TO `u`@`%`"
            ]),
            "shop"
        ));
        assert!(!has_database_select(
            &g(&["GRANT INSERT ON `shop`.* TO `u`@`%`"]),
            "shop"
        ));
        assert!(!has_database_select(
            &g(&["GRANT SELECT ON `other`.* TO `u`@`%`"]),
            "shop"
        ));
    }
}
