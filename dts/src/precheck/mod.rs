//! Prechecks: everything that can be known before a task writes anything. The connectivity
//! and version checks of both ends are here; the rest has one module per area — the source
//! ([`source`]), the target ([`target`]), the data the full load copies
//! ([`data`]) and the change log incremental migration reads ([`log`]). Engine-specific
//! questions go to the connectors; this module decides which checks a task needs.

mod data;
mod filters;
mod log;
mod source;
mod target;

pub(crate) use target::target_schemas;

use dts_connectors::{Source, Target};
use dts_core::{CheckStatus, ErrorKind, PrecheckReport, Result};

use crate::config::{MigrationType, TaskConfig};
use crate::task::TaskPlan;

/// Both servers, connected and checked, with the task's plan: what a run goes on with.
pub(crate) struct Ready {
    pub(crate) source: Source,
    pub(crate) target: Target,
    pub(crate) plan: TaskPlan,
}

/// Runs every check the task needs. Fails only when the checks themselves cannot run;
/// failed checks are in the report. `scan_values` scans every row for values the target
/// cannot hold.
pub(crate) async fn run(
    config: &TaskConfig,
    scan_values: bool,
) -> Result<(PrecheckReport, Option<Ready>)> {
    let mut r = PrecheckReport::default();
    let types: Vec<String> = config.migration.iter().map(ToString::to_string).collect();
    r.pass("task.migration_types", types.join(", "));

    let source = connect::<Source>(&mut r, &config.source.url).await;
    let target = connect::<Target>(&mut r, &config.target.url).await;
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

    let plan = source::selection(&mut r, config, &source, &target).await?;
    source
        .precheck_leftovers(&mut r, &config.name, &config.source.url)
        .await?;
    source::privileges(&mut r, config, &source, &plan).await?;
    let existing = target::privileges(&mut r, &target, &plan).await?;
    source::translation(&mut r, &plan);
    filters::check(&mut r, config, &source, &plan).await?;
    if config.runs(MigrationType::Full) {
        data::check(&mut r, config, &source, &plan, scan_values).await?;
    }
    if config.runs(MigrationType::Incremental) {
        log::check(
            &mut r,
            &source,
            &target,
            &plan.catalog,
            config.incremental.target_binlog(),
        )
        .await?;
    }
    target::conflicts(&mut r, config, &target, &plan, &existing).await?;
    Ok((
        r,
        Some(Ready {
            source,
            target,
            plan,
        }),
    ))
}

/// What the connectivity check needs of either end of a task.
trait End: Sized {
    /// `source` or `target`.
    const NAME: &'static str;
    /// The code of the connectivity check.
    const CONNECTIVITY: &'static str;

    /// Connects to the server at `url`.
    async fn connect(url: &str) -> Result<Self>;

    /// What the check says when connected, with the server's version.
    fn connected(&self) -> String;

    /// The version check.
    fn precheck_version(&self, r: &mut PrecheckReport);
}

impl End for Source {
    const NAME: &'static str = "source";
    const CONNECTIVITY: &'static str = "source.connectivity";

    async fn connect(url: &str) -> Result<Self> {
        Source::connect(url).await
    }

    fn connected(&self) -> String {
        format!("connected to source, version {}", self.version())
    }

    fn precheck_version(&self, r: &mut PrecheckReport) {
        Source::precheck_version(self, r);
    }
}

impl End for Target {
    const NAME: &'static str = "target";
    const CONNECTIVITY: &'static str = "target.connectivity";

    async fn connect(url: &str) -> Result<Self> {
        Target::connect(url).await
    }

    fn connected(&self) -> String {
        format!("connected to target, {} {}", self.engine(), self.version())
    }

    fn precheck_version(&self, r: &mut PrecheckReport) {
        Target::precheck_version(self, r);
    }
}

/// `source.connectivity` and `source.version`, or the same of the target: the connected
/// server if it answers.
async fn connect<E: End>(r: &mut PrecheckReport, url: &str) -> Option<E> {
    match E::connect(url).await {
        Ok(end) => {
            r.pass(E::CONNECTIVITY, end.connected());
            end.precheck_version(r);
            Some(end)
        }
        Err(e) => {
            let name = E::NAME;
            let fix = if e.kind() == ErrorKind::Unsupported {
                format!("use a {name} this build supports")
            } else {
                format!(
                    "check the {name} url, that the server is running and reachable, and the \
                     account's password"
                )
            };
            r.push(E::CONNECTIVITY, CheckStatus::Fail, e.report(), fix);
            None
        }
    }
}
