//! Checks of the target: privileges, and tables that exist already.

use std::collections::BTreeSet;

use dts_connectors::Target;
use dts_core::{CheckStatus, PrecheckReport, Result, TableName};

use crate::config::{ConflictPolicy, TaskConfig};
use crate::task::{Step, TaskPlan};

/// The target schemas of a plan.
pub(crate) fn target_schemas(plan: &TaskPlan) -> Vec<String> {
    plan.schema
        .tables
        .iter()
        .map(|t| t.target.schema.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// `target.privileges`. Returns the tables that exist in the target schemas.
pub(super) async fn privileges(
    r: &mut PrecheckReport,
    target: &Target,
    plan: &TaskPlan,
) -> Result<BTreeSet<TableName>> {
    let schemas = target_schemas(plan);
    let existing = target.existing_tables(&schemas).await?;
    target.precheck_privileges(r, &schemas, &existing).await?;
    Ok(existing)
}

/// `target.conflicting_tables`: no target table exists yet, unless this task created it in
/// an earlier run or the policy is `ignore`.
pub(super) async fn conflicts(
    r: &mut PrecheckReport,
    config: &TaskConfig,
    target: &Target,
    plan: &TaskPlan,
    existing: &BTreeSet<TableName>,
) -> Result<()> {
    let store = target.state_store(&config.name).await?;
    let pre_done = store.is_done(Step::SchemaPreData.key()).await?;
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
            format!(
                "target tables were created by task `{}` earlier",
                config.name
            ),
        );
    } else if conflicts.is_empty() {
        r.pass("target.conflicting_tables", "no target table exists yet");
    } else {
        let (status, then) = match config.policy.conflicting_tables {
            ConflictPolicy::Fail => (CheckStatus::Fail, ""),
            ConflictPolicy::Ignore => (CheckStatus::Warn, ": kept as they are"),
            ConflictPolicy::Truncate => (
                CheckStatus::Warn,
                ": they will be EMPTIED (TRUNCATE) before the copy",
            ),
            ConflictPolicy::Drop => (
                CheckStatus::Warn,
                ": they will be DROPPED and created as the task plans them",
            ),
        };
        if matches!(
            config.policy.conflicting_tables,
            ConflictPolicy::Ignore | ConflictPolicy::Truncate
        ) {
            unfilled(r, config, plan, existing).await?;
        }
        r.push(
            "target.conflicting_tables",
            status,
            format!("target already has {}{then}", conflicts.join(", ")),
            "drop or rename them in the target, rename them in the task \
             (objects.rename_*), or set policy.conflicting_tables = \"ignore\"",
        );
    }
    Ok(())
}

/// `target.unfilled_columns`: a target table that exists and is kept (policy `ignore` or
/// `truncate`) gets rows without the columns the task leaves out: none of its columns that
/// the task does not write may be `NOT NULL` without a default.
async fn unfilled(
    r: &mut PrecheckReport,
    config: &TaskConfig,
    plan: &TaskPlan,
    existing: &BTreeSet<TableName>,
) -> Result<()> {
    let filters = crate::columns::filters(config, &plan.catalog)?;
    let kept: Vec<&dts_schema::TablePlan> = plan
        .schema
        .tables
        .iter()
        .filter(|t| existing.contains(&t.target) && filters.contains_key(&t.source))
        .collect();
    if kept.is_empty() {
        return Ok(());
    }
    let schemas: Vec<String> = kept
        .iter()
        .map(|t| t.target.schema.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // The target's tables, read as a source reads its own.
    let reader = dts_connectors::Source::connect(&config.target.url).await?;
    let catalog = dts_core::SchemaSource::read_catalog(&reader, &schemas).await?;
    let mut problems = Vec::new();
    for tp in kept {
        let Some(table) = catalog.table(&tp.target) else {
            continue;
        };
        let written: BTreeSet<String> = tp.columns.iter().map(|c| c.target_name.clone()).collect();
        for column in crate::columns::unfilled_columns(table, &written) {
            problems.push(format!(
                "column `{column}` of existing target table `{}` is NOT NULL without a \
                 default, and the task does not write it (source table `{}` migrates only \
                 some of its columns)",
                tp.target, tp.source
            ));
        }
    }
    if problems.is_empty() {
        r.pass(
            "target.unfilled_columns",
            "the existing target tables accept rows without the columns left out",
        );
    } else {
        r.push(
            "target.unfilled_columns",
            CheckStatus::Fail,
            problems.join("; "),
            "migrate the column (columns.include / columns.exclude), give it a default or \
             make it nullable in the target, or let the task create the table",
        );
    }
    Ok(())
}
