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
