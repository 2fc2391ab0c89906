//! Checks for incremental migration: the source's change log and the target's apply.

use dts_connectors::{Source, Target, TargetBinlog};
use dts_core::{Catalog, PrecheckReport, Result, TableName};

/// The change log's settings, privileges and retention on the source (for the selected
/// tables of `catalog`), and what applying changes needs on the target (whose own log gets
/// the applied changes or not, as `binlog` says).
pub(super) async fn check(
    r: &mut PrecheckReport,
    source: &Source,
    target: &Target,
    catalog: &Catalog,
    binlog: TargetBinlog,
) -> Result<()> {
    let tables: Vec<TableName> = catalog.tables().map(|t| t.name.clone()).collect();
    source.precheck_log(r, &tables).await?;
    target.precheck_apply(r, binlog).await
}
