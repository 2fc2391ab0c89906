//! Plain-text result tables and number formatting for benchmark output.

use std::fmt;
use std::time::Duration;

/// A text table: a header row and data rows, columns padded to their widest cell. The first
/// column is left-aligned, the others right-aligned unless [`Table::left_align`]ed.
#[derive(Debug, Clone, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    left: Vec<usize>,
}

impl Table {
    /// A table with these column titles.
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        Self {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
            left: vec![0],
        }
    }

    /// Aligns column `column` (0-based) to the left, as for text.
    #[must_use]
    pub fn left_align(mut self, column: usize) -> Self {
        self.left.push(column);
        self
    }

    /// Appends a row; missing cells are left empty.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let columns = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.header.len()])
            .max()
            .unwrap_or(0);
        let mut widths = vec![0; columns];
        for row in std::iter::once(&self.header).chain(&self.rows) {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, row: &[String]| -> fmt::Result {
            let mut text = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = row.get(i).map_or("", String::as_str);
                let pad = " ".repeat(width - cell.chars().count());
                if i > 0 {
                    text.push_str("  ");
                }
                if self.left.contains(&i) {
                    text.push_str(cell);
                    text.push_str(&pad);
                } else {
                    text.push_str(&pad);
                    text.push_str(cell);
                }
            }
            writeln!(f, "{}", text.trim_end())
        };
        line(f, &self.header)?;
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        line(f, &rule)?;
        for row in &self.rows {
            line(f, row)?;
        }
        Ok(())
    }
}

/// `n` with thousands separators: `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A byte count in decimal megabytes (10^6 bytes) with one decimal: `1_500_000` → `1.5`.
pub fn megabytes(bytes: u64) -> String {
    format!("{:.1}", to_f64(bytes) / 1e6)
}

/// A byte count in mebibytes (2^20 bytes), rounded: `3 << 20` → `3`.
pub fn mebibytes(bytes: u64) -> String {
    format!("{:.0}", to_f64(bytes) / f64::from(1u32 << 20))
}

/// `count` per second over `elapsed`, rounded to a whole number with thousands separators.
pub fn per_second(count: u64, elapsed: Duration) -> String {
    let rate = to_f64(count) / elapsed.as_secs_f64().max(1e-9);
    // Rates are far below 2^53; formatting avoids a float-to-int cast.
    let rounded = format!("{rate:.0}");
    rounded.parse::<u64>().map_or(rounded, thousands)
}

/// `n` as a float, for rates and sizes (exact below 2^53).
pub fn to_f64(n: u64) -> f64 {
    n as f64
}

/// The median of a non-empty sorted slice of durations (the mean of the middle two for an
/// even count); `None` if empty.
pub fn median(sorted: &[Duration]) -> Option<Duration> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2),
    }
}

/// The `per_mille`‰ percentile of a non-empty sorted slice by the nearest-rank method (the
/// smallest value with at least that share of the values at or below it): `500` is the
/// median's lower neighbour, `990` the p99, `1000` the maximum; `None` if empty.
pub fn percentile<T: Copy>(sorted: &[T], per_mille: u32) -> Option<T> {
    let n = sorted.len();
    let per_mille = usize::try_from(per_mille.min(1000)).ok()?;
    let rank = (n * per_mille).div_ceil(1000).max(1);
    sorted.get(rank.min(n).checked_sub(1)?).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(megabytes(1_550_000), "1.6");
        assert_eq!(mebibytes(3 << 20), "3");
        assert_eq!(per_second(1_000_000, Duration::from_secs(4)), "250,000");
        assert!((to_f64(u64::MAX) - 1.844_674_407_370_955_2e19).abs() < 1e4);
    }

    #[test]
    fn takes_medians() {
        let s = Duration::from_secs;
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[s(3)]), Some(s(3)));
        assert_eq!(median(&[s(1), s(2), s(9)]), Some(s(2)));
        assert_eq!(median(&[s(1), s(3), s(5), s(9)]), Some(s(4)));
    }

    #[test]
    fn takes_percentiles() {
        let values: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&values, 500), Some(50));
        assert_eq!(percentile(&values, 990), Some(99));
        assert_eq!(percentile(&values, 1000), Some(100));
        assert_eq!(percentile(&values, 0), Some(1));
        assert_eq!(percentile(&[7], 990), Some(7));
        assert_eq!(percentile::<u32>(&[], 500), None);
    }

    #[test]
    fn aligns_columns() {
        let mut table = Table::new(["tool", "result", "rows/s"]).left_align(1);
        table.row(["pgloader", "ok", "240,000"]);
        table.row(["pipe", "FAILED", "1,000,000"]);
        let text = table.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "tool      result     rows/s");
        assert_eq!(lines[1], "--------  ------  ---------");
        assert_eq!(lines[2], "pgloader  ok        240,000");
        assert_eq!(lines[3], "pipe      FAILED  1,000,000");
    }
}
