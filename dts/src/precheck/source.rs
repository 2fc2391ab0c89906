//! Checks of the source: the selection, privileges, and whether the selected schema
//! translates.

use dts_connectors::{Source, Target};
use dts_core::{CheckStatus, PrecheckReport, Result, TableName};

use crate::config::TaskConfig;
use crate::task::{read_plan_checked, TaskPlan};

/// `objects.selection`: every include pattern matches a schema and some table is selected.
/// Returns the plan of what is selected.
pub(super) async fn selection(
    r: &mut PrecheckReport,
    config: &TaskConfig,
    source: &Source,
    target: &Target,
) -> Result<TaskPlan> {
    let selection = config.selection()?;
    let all = dts_core::SchemaSource::list_schemas(source).await?;
    let unmatched = selection.unmatched_databases(&all);
    let (plan, column_problems) =
        read_plan_checked(config, source, target.engine(), Some(target.version())).await?;
    columns(r, config, target, &column_problems).await?;
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
    Ok(plan)
}

/// `objects.columns`: the column selection of `[tables."…"]` names columns the tables
/// have, and leaves out none that what is kept needs. Checked before the task starts: once
/// it has, the source's schema may change under replication (a column named dropped, an
/// index on a column left out, which replication skips), and the run goes on from the
/// schema it recorded.
async fn columns(
    r: &mut PrecheckReport,
    config: &TaskConfig,
    target: &Target,
    problems: &[String],
) -> Result<()> {
    let selects = config
        .tables
        .values()
        .any(|t| t.columns.include.is_some() || t.columns.exclude.is_some());
    if !selects {
        return Ok(());
    }
    let store = target.state_store(&config.name).await?;
    let started = store
        .is_done(crate::task::Step::SchemaPreData.key())
        .await?
        || !store.snapshot_positions().await?.is_empty()
        || store.applied_position().await?.is_some();
    if started {
        r.pass(
            "objects.columns",
            format!("checked when task `{}` started", config.name),
        );
    } else if !problems.is_empty() {
        r.push(
            "objects.columns",
            CheckStatus::Fail,
            problems.join("; "),
            "correct `columns.include` / `columns.exclude` under `[tables.\"…\"]`: keep the \
             columns named",
        );
    } else {
        r.pass(
            "objects.columns",
            "the column selection keeps what the tables need",
        );
    }
    Ok(())
}

/// `source.privileges`.
pub(super) async fn privileges(
    r: &mut PrecheckReport,
    config: &TaskConfig,
    source: &Source,
    plan: &TaskPlan,
) -> Result<()> {
    let selection = config.selection()?;
    let all = dts_core::SchemaSource::list_schemas(source).await?;
    let schemas: Vec<String> = selection.databases(&all).into_iter().cloned().collect();
    let tables: Vec<TableName> = plan.catalog.tables().map(|t| t.name.clone()).collect();
    source.precheck_privileges(r, &schemas, &tables).await
}

/// `schema.translation`: blocking problems fail, notes warn.
pub(super) fn translation(r: &mut PrecheckReport, plan: &TaskPlan) {
    let join = |blocking: bool| {
        plan.schema
            .problems
            .iter()
            .filter(|p| p.blocking == blocking)
            .map(|p| format!("{}: {}", p.object, p.message))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let (blocking, notes) = (join(true), join(false));
    if !blocking.is_empty() {
        r.push(
            "schema.translation",
            CheckStatus::Fail,
            blocking,
            "exclude the objects named, or change them in the source",
        );
    } else if !notes.is_empty() {
        r.push(
            "schema.translation",
            CheckStatus::Warn,
            notes,
            "review the notes; nothing is lost",
        );
    } else {
        r.pass("schema.translation", "every selected object translates");
    }
}
