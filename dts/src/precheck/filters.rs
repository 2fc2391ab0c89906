//! `source.row_filters`: every table's `where` filter parses and names columns of its
//! table; a task that replicates also needs dts to evaluate each filter exactly on the
//! changes, and the old rows of updates and deletes whole where the filter reads columns
//! outside the key.

use dts_connectors::Source;
use dts_core::{CheckStatus, PrecheckReport, Result, TableName};
use dts_schema::filter::RowFilter;

use crate::config::{MigrationType, TaskConfig};
use crate::task::TaskPlan;

const CODE: &str = "source.row_filters";

/// Adds the `source.row_filters` item when the task filters rows.
pub(super) async fn check(
    r: &mut PrecheckReport,
    config: &TaskConfig,
    source: &Source,
    plan: &TaskPlan,
) -> Result<()> {
    if config.tables.values().all(|o| o.filter.is_none()) {
        return Ok(());
    }
    let mut problems = Vec::new();
    let mut fixes = Vec::new();
    let mut filters = Vec::new();
    let collation = source.default_collation().await?;
    for table in plan.catalog.tables() {
        let text = match config.table_options(&table.name) {
            Ok(options) => options.filter,
            Err(e) => {
                problems.push(e.message().to_string());
                fixes.push("name the table exactly in `[tables]`".to_string());
                continue;
            }
        };
        let Some(text) = text else { continue };
        match RowFilter::parse_in(source.engine(), table, &text, collation.as_deref()) {
            Ok(f) => filters.push(f),
            Err(e) => {
                problems.push(e.message().to_string());
                fixes.push(format!("correct the `where` of `{}`", table.name));
            }
        }
    }
    if config.runs(MigrationType::Incremental) {
        for f in &filters {
            if let Some(u) = f.unevaluable() {
                problems.push(format!(
                    "table `{}`: replication cannot evaluate the filter `{}` exactly: {u}",
                    f.table(),
                    f.text()
                ));
                fixes.push(match &u.suggestion {
                    Some(s) => format!("write `{s}`"),
                    None => "write the filter with comparisons of columns with literals \
                             (see the README), or run the full load only"
                        .to_string(),
                });
            }
        }
        let outside_key: Vec<TableName> = filters
            .iter()
            .filter(|f| {
                let key = plan
                    .catalog
                    .table(f.table())
                    .and_then(|t| t.primary_key.as_ref())
                    .map(|k| k.columns.clone())
                    .unwrap_or_default();
                f.columns().iter().any(|c| !key.contains(c))
            })
            .map(|f| f.table().clone())
            .collect();
        for t in source.tables_without_full_old_rows(&outside_key).await? {
            problems.push(format!(
                "table `{t}`: its filter reads columns outside its primary key, but its \
                 updates and deletes do not carry the whole old row, so a row leaving the \
                 filter cannot be told"
            ));
            fixes.push(format!(
                "ALTER TABLE {}.{} REPLICA IDENTITY FULL",
                dts_schema::quote_ident(&t.schema),
                dts_schema::quote_ident(&t.name)
            ));
        }
    }
    if problems.is_empty() {
        let names: Vec<String> = filters.iter().map(|f| format!("`{}`", f.table())).collect();
        r.pass(CODE, format!("rows of {} filtered", names.join(", ")));
    } else {
        r.push(
            CODE,
            CheckStatus::Fail,
            problems.join("; "),
            fixes.join("; "),
        );
    }
    Ok(())
}
