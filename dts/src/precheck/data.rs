//! Checks for the full load: keys to split tables by, a snapshot parallel readers share,
//! and values the type mapping cannot hold.

use dts_connectors::Source;
use dts_core::{CheckStatus, PrecheckReport, Result};

use crate::config::{BadRows, NonTransactional, TaskConfig};
use crate::task::TaskPlan;

/// `source.keys`, `source.transactional`, `source.snapshot`, `source.values`.
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
    non_transactional(r, config, source, plan).await?;
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

/// `source.transactional`: tables of a non-transactional storage engine, which a snapshot
/// does not hold still (their copy would hold rows replication then applies again).
async fn non_transactional(
    r: &mut PrecheckReport,
    config: &TaskConfig,
    source: &Source,
    plan: &TaskPlan,
) -> Result<()> {
    let selected: Vec<dts_core::TableName> = plan
        .schema
        .tables
        .iter()
        .map(|t| t.source.clone())
        .collect();
    let tables = source.non_transactional_tables(&selected).await?;
    if tables.is_empty() {
        r.pass(
            "source.transactional",
            "every table has a transactional storage engine",
        );
        return Ok(());
    }
    let names: Vec<String> = tables
        .iter()
        .map(|(t, engine)| format!("`{t}` ({engine})"))
        .collect();
    let alters: Vec<String> = tables
        .iter()
        .map(|(t, _)| {
            let quote = |s: &str| format!("`{}`", s.replace('`', "``"));
            format!(
                "ALTER TABLE {}.{} ENGINE=InnoDB;",
                quote(&t.schema),
                quote(&t.name)
            )
        })
        .collect();
    match config.full.non_transactional {
        NonTransactional::Lock => r.push(
            "source.transactional",
            CheckStatus::Warn,
            format!(
                "non-transactional tables, locked against writes from the snapshot until \
                 the copy ends (writes to them wait meanwhile): {}",
                names.join(", ")
            ),
            format!(
                "to copy without the lock, convert them: {}",
                alters.join(" ")
            ),
        ),
        _ => r.push(
            "source.transactional",
            CheckStatus::Fail,
            format!(
                "non-transactional tables are not held still by a snapshot (their copy and \
                 replication would both apply the changes made meanwhile): {}",
                names.join(", ")
            ),
            format!(
                "convert them ({}), or set full.non_transactional = \"lock\" to lock them \
                 against writes while they are copied",
                alters.join(" ")
            ),
        ),
    }
    Ok(())
}
