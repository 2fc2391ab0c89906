//! Whether the target table equals the source table: the row count, `sum(id)`,
//! `sum(amount)` and a checksum of every row's values, computed by each server.

use std::fmt;

use anyhow::{Context as _, Result};
use dts_testkit::{MariaDb, Postgres};

use crate::source::{DB, TABLE};

/// What one side holds, as each server prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub rows: String,
    pub sum_id: String,
    pub sum_amount: String,
    /// The sum over the rows of the first 32 bits of the MD5 of the row's values joined by
    /// `|` (the time as `YYYY-MM-DD HH:MM:SS.ffffff`): any changed value changes it.
    pub rows_md5: String,
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rows {}, sum(id) {}, sum(amount) {}, row checksum {}",
            self.rows, self.sum_id, self.sum_amount, self.rows_md5
        )
    }
}

/// The source's checksum of `events`.
pub fn source(mysql: &MariaDb) -> Result<Checksum> {
    let sql = format!(
        "SELECT COUNT(*), COALESCE(SUM(id), 0), COALESCE(SUM(amount), 0), \
           COALESCE(SUM(CONV(LEFT(MD5(CONCAT_WS('|', id, account, kind, amount, note, \
             DATE_FORMAT(created_at, '%Y-%m-%d %H:%i:%s.%f'))), 8), 16, 10)), 0) \
         FROM {TABLE}"
    );
    let text = mysql
        .query_in(DB, &sql)
        .context("computing the source checksum")?;
    parse(&text, '\t')
}

/// The target's checksum of `events` in `database`.
pub fn target(pg: &Postgres, database: &str) -> Result<Checksum> {
    let sql = format!(
        "SELECT count(*), coalesce(sum(id), 0), coalesce(sum(amount), 0), \
           coalesce(sum(('x' || left(md5(concat_ws('|', id, account, kind, amount, note, \
             to_char(created_at, 'YYYY-MM-DD HH24:MI:SS.US'))), 8))::bit(32)::bigint), 0) \
         FROM {DB}.{TABLE}"
    );
    let text = pg
        .query_in(database, &sql)
        .context("computing the target checksum")?;
    parse(&text, '|')
}

fn parse(text: &str, separator: char) -> Result<Checksum> {
    let fields: Vec<&str> = text.trim().split(separator).map(str::trim).collect();
    let [rows, sum_id, sum_amount, rows_md5] = fields[..] else {
        anyhow::bail!("unexpected checksum output `{text}`");
    };
    Ok(Checksum {
        rows: rows.to_owned(),
        sum_id: sum_id.to_owned(),
        sum_amount: sum_amount.to_owned(),
        rows_md5: rows_md5.to_owned(),
    })
}

/// The outcome of comparing both sides.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Both sides agree.
    Equal(Checksum),
    /// They differ; both are given.
    Mismatch { source: Checksum, target: Checksum },
}

impl Verdict {
    pub fn is_equal(&self) -> bool {
        matches!(self, Self::Equal(_))
    }
}

/// Compares the source with the target database `database`.
pub fn compare(mysql: &MariaDb, pg: &Postgres, database: &str) -> Result<Verdict> {
    let source = source(mysql)?;
    let target = target(pg, database)?;
    Ok(if source == target {
        Verdict::Equal(source)
    } else {
        Verdict::Mismatch { source, target }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_outputs() {
        let mysql = parse("3\t6\t10.50\t123\n", '\t').unwrap();
        let pg = parse("3|6|10.50|123", '|').unwrap();
        assert_eq!(mysql, pg);
        assert_eq!(
            mysql.to_string(),
            "rows 3, sum(id) 6, sum(amount) 10.50, row checksum 123"
        );
        assert!(parse("3|6", '|').is_err());
    }
}
