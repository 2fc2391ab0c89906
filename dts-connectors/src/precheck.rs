//! What the prechecks of every source engine share.

use dts_core::{CheckStatus, PrecheckReport};
use dts_typemap::DataCheck;

/// Reports the `source.values` check from the value scan's counts: per table, each column's
/// data checks with the number of rows each found. A check that blocks is a failure when
/// the task stops on bad rows (`stop_on_bad_rows`), a warning otherwise.
pub(crate) fn push_value_findings<'a>(
    r: &mut PrecheckReport,
    scanned: impl IntoIterator<Item = (String, &'a [(String, DataCheck)], Vec<u64>)>,
    stop_on_bad_rows: bool,
) {
    let mut failures = Vec::new();
    let mut warnings = Vec::new();
    for (table, checks, counts) in scanned {
        for ((column, check), n) in checks.iter().zip(counts) {
            if n == 0 {
                continue;
            }
            let line = format!(
                "`{table}`.`{column}`: {n} rows: {} ({})",
                check.problem, check.fix
            );
            if check.blocking && stop_on_bad_rows {
                failures.push(line);
            } else {
                warnings.push(line);
            }
        }
    }
    failures.sort();
    warnings.sort();
    if !failures.is_empty() {
        r.push(
            "source.values",
            CheckStatus::Fail,
            failures
                .into_iter()
                .chain(warnings)
                .collect::<Vec<_>>()
                .join("; "),
            "fix the values in the source, exclude the columns' tables, change the type \
             options, or set full.bad_rows = \"reject\"",
        );
    } else if !warnings.is_empty() {
        r.push(
            "source.values",
            CheckStatus::Warn,
            warnings.join("; "),
            "review: these values are converted as the task's type options say",
        );
    } else {
        r.pass("source.values", "every value fits its target type");
    }
}
