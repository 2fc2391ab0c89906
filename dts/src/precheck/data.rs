//! Checks for the full load: keys to split tables by, a snapshot parallel readers share,
//! and values the type mapping cannot hold.

use dts_connectors::Source;
use dts_core::{CheckStatus, PrecheckReport, Result};

use crate::config::{BadRows, TaskConfig};
use crate::task::TaskPlan;

/// `source.keys`, `source.snapshot`, `source.values`.
pub(super) async fn check(
    r: &mut PrecheckReport,
    config: &TaskConfig,
    source: &Source,
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
    source.precheck_snapshot(r, config.full.workers()).await?;
    source
        .precheck_values(
            r,
            &plan.schema,
            &config.mapping_options(),
            config.full.workers(),
            scan_values,
            config.full.bad_rows == BadRows::Stop,
        )
        .await
}
