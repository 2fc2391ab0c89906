//! The source database: the `events` table, its initial rows, and what the workloads need to
//! know about it.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use dts_testkit::MariaDb;

/// The source database, and the target schema it becomes.
pub const DB: &str = "cdcbench";

/// The one table every workload writes.
pub const TABLE: &str = "events";

const DDL: &str = "\
CREATE TABLE events (
  id BIGINT PRIMARY KEY,
  account INT NOT NULL,
  kind VARCHAR(16) NOT NULL,
  amount DECIMAL(12,2) NOT NULL,
  note VARCHAR(64) NOT NULL,
  created_at DATETIME(6) NOT NULL
) ENGINE=InnoDB";

/// Deterministic rows `1..=N`: every value is a function of the row number. `{seq}` is the
/// sequence table (`seq_1_to_N`).
const FILL: &str = "\
INSERT INTO events (id, account, kind, amount, note, created_at)
SELECT seq,
  1 + (seq * 7919) % 10000,
  ELT(1 + seq % 4, 'deposit', 'withdrawal', 'transfer', 'fee'),
  ((seq * 104729) % 1000000) / 100,
  CONCAT('event ', seq, ' ', LEFT(MD5(seq), 16)),
  TIMESTAMP'2024-01-01 00:00:00' + INTERVAL ((seq * 7727) % 31536000) SECOND
    + INTERVAL (seq % 1000000) MICROSECOND
FROM {seq}";

/// Creates [`DB`] afresh with `events` holding `rows` rows; returns how long it took.
pub fn create(mysql: &MariaDb, rows: u64) -> Result<Duration> {
    let started = Instant::now();
    mysql.create_database(DB)?;
    // The initial rows are copied by the full load: they need not reach the binary log of a
    // private server (an external one may not allow turning it off).
    let session = if mysql.is_external() {
        ""
    } else {
        "SET sql_log_bin = 0;"
    };
    let fill = FILL.replace("{seq}", &format!("seq_1_to_{rows}"));
    mysql
        .exec_in(
            DB,
            &format!("{session} {DDL}; {fill}; ANALYZE TABLE {TABLE};"),
        )
        .with_context(|| format!("creating `{DB}.{TABLE}` with {rows} rows"))?;
    Ok(started.elapsed())
}

/// The smallest id in the table (0 if empty).
pub fn min_id(mysql: &MariaDb) -> Result<u64> {
    number(mysql, &format!("SELECT COALESCE(MIN(id), 0) FROM {TABLE}"))
}

/// The largest id in the table (0 if empty): new rows get the ids after it.
pub fn max_id(mysql: &MariaDb) -> Result<u64> {
    number(mysql, &format!("SELECT COALESCE(MAX(id), 0) FROM {TABLE}"))
}

/// The number of rows in the table.
pub fn count(mysql: &MariaDb) -> Result<u64> {
    number(mysql, &format!("SELECT COUNT(*) FROM {TABLE}"))
}

/// The one number `sql` returns.
fn number(mysql: &MariaDb, sql: &str) -> Result<u64> {
    let text = mysql.query_in(DB, sql)?;
    text.trim()
        .parse()
        .with_context(|| format!("unexpected result `{text}` of `{sql}`"))
}

/// Every id in the table, ascending.
pub fn ids(mysql: &MariaDb) -> Result<Vec<u64>> {
    let text = mysql.query_in(DB, &format!("SELECT id FROM {TABLE} ORDER BY id"))?;
    text.lines()
        .map(|l| {
            l.trim()
                .parse()
                .with_context(|| format!("unexpected id `{l}`"))
        })
        .collect()
}
