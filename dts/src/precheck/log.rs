//! Checks for incremental migration: the source's change log and the target's apply.

use dts_connectors::{Source, Target};
use dts_core::{Catalog, PrecheckReport, Result, TableName};

/// The change log's settings, privileges and retention on the source (for the selected
/// tables of `catalog`), and what applying changes needs on the target.
pub(super) async fn check(
    r: &mut PrecheckReport,
    source: &Source,
    target: &Target,
    catalog: &Catalog,
) -> Result<()> {
    let tables: Vec<TableName> = catalog.tables().map(|t| t.name.clone()).collect();
    source.precheck_log(r, &tables).await?;
    target.precheck_apply(r).await
}
