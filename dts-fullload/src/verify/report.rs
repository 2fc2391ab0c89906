//! What a verification found, as data first and as text for people second.

use std::fmt;

use serde::Serialize;

/// A row that differs, named by its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The key's values, shortened for display ([`dts_core::Value::short`]), one per key
    /// column; for a table without a key, every column of the row.
    pub key: Vec<String>,
    /// The target columns whose values differ (empty for a missing or an extra row).
    pub columns: Vec<String>,
}

/// What was repaired in one table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RepairStats {
    /// Rows inserted.
    pub inserted: u64,
    /// Rows updated.
    pub updated: u64,
    /// Rows deleted.
    pub deleted: u64,
    /// Statements written to the SQL file (transaction control included).
    pub statements: u64,
    /// Whether the statements ran (`false`: a dry run only wrote them).
    pub applied: bool,
}

/// The verification of one table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TableReport {
    /// The source table, `schema.table`.
    pub source: String,
    /// The target table, `schema.table`.
    pub target: String,
    /// The target columns that name a row in [`Difference::key`]: the key, or every column
    /// of a table without a key (then compared as a multiset: duplicates count).
    pub key_columns: Vec<String>,
    /// Whether the table has no key and was compared as a multiset of rows.
    pub keyless: bool,
    /// Source rows compared.
    pub rows: u64,
    /// Target rows read.
    pub target_rows: u64,
    /// Key-range chunks compared.
    pub chunks: u64,
    /// Chunks whose digests differed and were compared row by row.
    pub chunks_compared_by_row: u64,
    /// Rows the target is missing (copies of a row, for a table without a key).
    pub missing: u64,
    /// Rows the target holds and the source does not.
    pub extra: u64,
    /// Rows under the same key with different values.
    pub different: u64,
    /// The first missing rows (capped).
    pub missing_rows: Vec<Difference>,
    /// The first extra rows (capped).
    pub extra_rows: Vec<Difference>,
    /// The first different rows, with the columns that differ (capped).
    pub different_rows: Vec<Difference>,
    /// Differences found at first that matched when re-checked after replication caught up.
    pub settled: u64,
    /// What repair did, when asked to.
    pub repair: Option<RepairStats>,
}

impl TableReport {
    /// Whether source and target hold the same rows.
    pub fn matches(&self) -> bool {
        self.missing == 0 && self.extra == 0 && self.different == 0
    }
}

/// The verification of every selected table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// One report per table, in plan order.
    pub tables: Vec<TableReport>,
    /// Wall time, in milliseconds.
    pub elapsed_ms: u64,
    /// Where the repair statements were written, if repair ran.
    pub repair_file: Option<String>,
}

impl VerifyReport {
    /// Whether every table matches.
    pub fn matches(&self) -> bool {
        self.tables.iter().all(TableReport::matches)
    }

    /// Whether every difference found was repaired (statements run, not a dry run).
    pub fn repaired(&self) -> bool {
        self.tables
            .iter()
            .all(|t| t.matches() || t.repair.is_some_and(|r| r.applied))
    }

    /// Rows compared in all tables.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }
}

fn write_keys(
    f: &mut fmt::Formatter<'_>,
    what: &str,
    count: u64,
    rows: &[Difference],
    key_columns: &[String],
) -> fmt::Result {
    if count == 0 {
        return Ok(());
    }
    writeln!(f, "  {what}: {count}")?;
    for d in rows {
        let key: Vec<String> = key_columns
            .iter()
            .zip(&d.key)
            .map(|(c, v)| format!("{c}={v}"))
            .collect();
        if d.columns.is_empty() {
            writeln!(f, "    ({})", key.join(", "))?;
        } else {
            writeln!(f, "    ({}): {}", key.join(", "), d.columns.join(", "))?;
        }
    }
    if count > rows.len() as u64 {
        writeln!(f, "    … and {} more", count - rows.len() as u64)?;
    }
    Ok(())
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for t in &self.tables {
            let status = if t.matches() { "ok" } else { "DIFFERS" };
            writeln!(
                f,
                "{} -> {}: {status}, {} rows compared ({} in target), {} missing, {} extra, {} different{}",
                t.source,
                t.target,
                t.rows,
                t.target_rows,
                t.missing,
                t.extra,
                t.different,
                if t.keyless { " (no key: compared as a multiset)" } else { "" }
            )?;
            write_keys(
                f,
                "missing in target",
                t.missing,
                &t.missing_rows,
                &t.key_columns,
            )?;
            write_keys(f, "extra in target", t.extra, &t.extra_rows, &t.key_columns)?;
            write_keys(
                f,
                "different",
                t.different,
                &t.different_rows,
                &t.key_columns,
            )?;
            if t.settled > 0 {
                writeln!(
                    f,
                    "  {} differences in flight matched once replication caught up",
                    t.settled
                )?;
            }
            if let Some(r) = t.repair {
                writeln!(
                    f,
                    "  repair{}: {} inserted, {} updated, {} deleted",
                    if r.applied { "" } else { " (dry run, not run)" },
                    r.inserted,
                    r.updated,
                    r.deleted
                )?;
            }
        }
        let different = self.tables.iter().filter(|t| !t.matches()).count();
        write!(
            f,
            "{} tables, {} rows compared in {:.1} s: ",
            self.tables.len(),
            self.rows(),
            self.elapsed_ms as f64 / 1000.0
        )?;
        if different == 0 {
            writeln!(f, "source and target match")?;
        } else {
            writeln!(f, "{different} tables differ")?;
        }
        if let Some(file) = &self.repair_file {
            writeln!(f, "repair statements: {file}")?;
        }
        Ok(())
    }
}
