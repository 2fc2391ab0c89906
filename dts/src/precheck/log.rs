//! Checks for incremental migration: the source's change log and the target's apply.

use dts_connectors::{Source, Target};
use dts_core::{PrecheckReport, Result};

/// The change log's settings, privileges and retention on the source, and what applying
/// changes needs on the target.
pub(super) async fn check(r: &mut PrecheckReport, source: &Source, target: &Target) -> Result<()> {
    source.precheck_log(r).await?;
    target.precheck_apply(r).await
}
