//! The engine's metrics, through the [`metrics`] facade: whatever recorder the program
//! installs (a Prometheus exporter, say) receives them; without one they cost next to
//! nothing.
//!
//! | name | kind | labels | meaning |
//! |---|---|---|---|
//! | `dts_replication_rows_applied_total` | counter | `table`, `operation` | row changes committed in the target, per source table and operation (`insert`, `update`, `delete`; `truncate` counts statements) |
//! | `dts_replication_transactions_applied_total` | counter | | source transactions committed in the target |
//! | `dts_replication_batch_apply_seconds` | histogram | | time to apply one batch and commit it with its position |
//! | `dts_retries_total` | counter | `phase` = `incremental` | reconnections after transient failures |
//! | `dts_errors_total` | counter | `kind` | transient failures met (retried), by error kind |

use std::collections::HashMap;

use dts_core::{Change, ChangeEvent, ErrorKind, TableName};

/// Rows applied per source table and operation.
pub const ROWS_APPLIED: &str = "dts_replication_rows_applied_total";
/// Source transactions applied.
pub const TRANSACTIONS_APPLIED: &str = "dts_replication_transactions_applied_total";
/// Batch apply latency, in seconds.
pub const BATCH_APPLY_SECONDS: &str = "dts_replication_batch_apply_seconds";
/// Retries after transient failures, by phase.
pub const RETRIES: &str = "dts_retries_total";
/// Errors met, by kind.
pub const ERRORS: &str = "dts_errors_total";

/// The label value of an error kind: its name in snake case (`connection`, `transient`…).
pub fn kind_label(kind: ErrorKind) -> String {
    let name = format!("{kind:?}");
    let mut out = String::with_capacity(name.len() + 2);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Whether `change` changes rows (a truncation counts as one).
pub(crate) fn is_row(change: &Change) -> bool {
    matches!(
        change,
        Change::Insert { .. }
            | Change::Update { .. }
            | Change::Delete { .. }
            | Change::Truncate { .. }
    )
}

/// Row changes counted per (table, operation), until they are committed.
#[derive(Debug, Default)]
pub(crate) struct RowCounts {
    counts: HashMap<(TableName, &'static str), u64>,
}

impl RowCounts {
    /// Counts the row changes of `events`.
    pub(crate) fn add(&mut self, events: &[ChangeEvent]) {
        for e in events {
            let (table, op) = match &e.change {
                Change::Insert { table, .. } => (table, "insert"),
                Change::Update { table, .. } => (table, "update"),
                Change::Delete { table, .. } => (table, "delete"),
                Change::Truncate { table, .. } => (table, "truncate"),
                _ => continue,
            };
            match self.counts.get_mut(&(table.clone(), op)) {
                Some(n) => *n += 1,
                None => {
                    self.counts.insert((table.clone(), op), 1);
                }
            }
        }
    }

    /// Forgets what was counted (the changes were not committed).
    pub(crate) fn clear(&mut self) {
        self.counts.clear();
    }

    /// Reports what was counted as committed, and forgets it.
    pub(crate) fn commit(&mut self, transactions: u64) {
        for ((table, op), n) in self.counts.drain() {
            metrics::counter!(ROWS_APPLIED, "table" => table.to_string(), "operation" => op)
                .increment(n);
        }
        metrics::counter!(TRANSACTIONS_APPLIED).increment(transactions);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_labels_are_snake_case() {
        assert_eq!(kind_label(ErrorKind::Connection), "connection");
        assert_eq!(kind_label(ErrorKind::Io), "io");
    }
}
