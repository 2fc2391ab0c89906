//! Prechecks: everything that can be known before a task writes anything, one module per
//! area — the source ([`source`]), the target ([`target`]), the data the full load copies
//! ([`data`]) and the change log incremental migration reads ([`log`]). Engine-specific
//! questions go to the connectors; this module decides which checks a task needs.

mod data;
mod log;
mod source;
mod target;

pub(crate) use target::target_schemas;

use dts_connectors::{Source, Target};
use dts_core::{CheckStatus, PrecheckReport, Result};

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

    let source = source::connect(&mut r, config).await;
    let target = target::connect(&mut r, config).await;
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

    let plan = source::selection(&mut r, config, &source, target.engine()).await?;
    source::privileges(&mut r, config, &source, &plan).await?;
    let existing = target::privileges(&mut r, &target, &plan).await?;
    source::translation(&mut r, &plan);
    if config.runs(MigrationType::Full) {
        data::check(&mut r, config, &source, &plan, scan_values).await?;
    }
    if config.runs(MigrationType::Incremental) {
        log::check(&mut r, &source, &target).await?;
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
