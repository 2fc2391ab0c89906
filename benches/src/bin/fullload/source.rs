//! The source data: deterministic tables generated inside MariaDB, and the table sets that
//! are moved into the benchmark database one at a time.

use std::time::Instant;

use anyhow::{Context as _, Result};
use dts_testkit::MariaDb;

/// The database every tool migrates; it holds the tables of one set at a time.
pub const BENCH_DB: &str = "benchdb";

/// Where the generated tables wait while another set is being measured.
pub const STORE_DB: &str = "dts_fullload_store";

/// A generated table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// 6 narrow columns, a primary key and a secondary index.
    Orders,
    /// Long text, binary, JSON, exact decimals, fractional times, non-ASCII text.
    Wide,
}

impl Table {
    pub const ALL: [Self; 2] = [Self::Orders, Self::Wide];

    pub fn name(self) -> &'static str {
        match self {
            Self::Orders => "orders",
            Self::Wide => "wide",
        }
    }
}

/// The tables migrated together in one measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Set {
    Orders,
    Wide,
    /// Both tables in one migration.
    All,
}

impl Set {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "orders" => Some(Self::Orders),
            "wide" => Some(Self::Wide),
            "all" => Some(Self::All),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Orders => "orders",
            Self::Wide => "wide",
            Self::All => "all",
        }
    }

    pub fn tables(self) -> &'static [Table] {
        match self {
            Self::Orders => &[Table::Orders],
            Self::Wide => &[Table::Wide],
            Self::All => &Table::ALL,
        }
    }
}

/// What the source holds of one table.
#[derive(Debug, Clone, Copy)]
pub struct TableStats {
    pub table: Table,
    pub rows: u64,
    pub columns: u64,
    /// The sum over all rows and columns of `LENGTH(value)`: the bytes of each value as the
    /// server returns it as text (BLOBs as raw bytes).
    pub payload_bytes: u64,
    /// `information_schema.TABLES.DATA_LENGTH` after `ANALYZE TABLE` (InnoDB pages of the
    /// clustered index, including off-page TEXT/BLOB).
    pub data_length: u64,
    /// `INDEX_LENGTH`: the secondary indexes.
    pub index_length: u64,
}

const ORDERS_DDL: &str = "\
CREATE TABLE orders (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  customer_id INT NOT NULL,
  status VARCHAR(16) NOT NULL,
  amount DECIMAL(12,2) NOT NULL,
  created_at DATETIME NOT NULL,
  note VARCHAR(64) NOT NULL,
  KEY orders_customer_id (customer_id)
) ENGINE=InnoDB";

/// `{seq}` is the sequence table (`seq_1_to_N`).
const ORDERS_FILL: &str = "\
INSERT INTO orders (id, customer_id, status, amount, created_at, note)
SELECT seq,
  1 + (seq * 7919) % 50000,
  ELT(1 + seq % 5, 'new', 'paid', 'shipped', 'delivered', 'cancelled'),
  ((seq * 104729) % 10000000) / 100,
  TIMESTAMP'2020-01-01 00:00:00' + INTERVAL ((seq * 7727) % 126230400) SECOND,
  CONCAT('order ', seq, ' ', LEFT(MD5(seq), 16))
FROM {seq}";

const WIDE_DDL: &str = "\
CREATE TABLE wide (
  id INT NOT NULL PRIMARY KEY,
  body TEXT NOT NULL,
  payload BLOB NOT NULL,
  doc JSON NOT NULL,
  price DECIMAL(20,6) NOT NULL,
  happened_at DATETIME(6) NOT NULL,
  updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  label VARCHAR(255) NOT NULL
) ENGINE=InnoDB";

/// Text of 200–2000 characters with tabs, newlines and backslashes; 100–1000 arbitrary bytes
/// (NULs included); a JSON object of numbers, strings and an array; times in UTC.
const WIDE_FILL: &str = r"
INSERT INTO wide (id, body, payload, doc, price, happened_at, updated_at, label)
SELECT seq,
  LEFT(REPEAT(CONCAT(MD5(seq), ' lorem ipsum\tdolor\nsit \\ amet, '), 40),
       200 + (seq * 7919) % 1801),
  LEFT(REPEAT(UNHEX(SHA2(seq, 256)), 32), 100 + (seq * 104729) % 901),
  JSON_OBJECT('id', seq, 'sku', CONCAT('SKU-', LPAD(seq, 8, '0')),
              'price', ROUND(seq * 0.37, 2), 'qty', seq % 97, 'ratio', seq / 7,
              'tags', JSON_ARRAY('bulk', seq % 13, 'grüße')),
  MOD(seq * 987654.321987, 99999999999999),
  TIMESTAMP'2021-06-01 00:00:00' + INTERVAL (seq * 1234567) MICROSECOND,
  FROM_UNIXTIME(1600000000 + (seq * 37) % 500000000),
  CONCAT('Zürich – 東京 – ', seq, ' – ',
         ELT(1 + seq % 4, 'naïve café', 'Ελληνικά', 'русский текст', 'emoji 😀'))
FROM {seq}";

/// Creates [`STORE_DB`] with `orders` (`orders_rows` rows) and `wide` (`wide_rows` rows),
/// and an empty [`BENCH_DB`].
pub fn generate(mysql: &MariaDb, orders_rows: u64, wide_rows: u64) -> Result<()> {
    mysql.create_database(STORE_DB)?;
    mysql.create_database(BENCH_DB)?;
    // Generated rows need not reach the binary log of a private server.
    let session = if mysql.is_external() {
        "SET time_zone = '+00:00';"
    } else {
        "SET time_zone = '+00:00'; SET sql_log_bin = 0;"
    };
    for (table, ddl, fill, rows) in [
        (Table::Orders, ORDERS_DDL, ORDERS_FILL, orders_rows),
        (Table::Wide, WIDE_DDL, WIDE_FILL, wide_rows),
    ] {
        let started = Instant::now();
        let fill = fill.replace("{seq}", &format!("seq_1_to_{rows}"));
        mysql
            .exec_in(
                STORE_DB,
                &format!("{session} {ddl}; {fill}; ANALYZE TABLE {};", table.name()),
            )
            .with_context(|| format!("generating table `{STORE_DB}.{}`", table.name()))?;
        eprintln!(
            "generated {}.{}: {rows} rows in {:.1} s",
            STORE_DB,
            table.name(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Row count, sizes and column count of a table in [`STORE_DB`].
pub fn stats(mysql: &MariaDb, table: Table) -> Result<TableStats> {
    let name = table.name();
    let columns = mysql.query(&format!(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = '{STORE_DB}' AND TABLE_NAME = '{name}' ORDER BY ORDINAL_POSITION"
    ))?;
    let columns: Vec<&str> = columns.lines().collect();
    let lengths: Vec<String> = columns
        .iter()
        .map(|c| format!("SUM(LENGTH(`{c}`))"))
        .collect();
    let counted = mysql.query_in(
        STORE_DB,
        &format!("SELECT COUNT(*), {} FROM `{name}`", lengths.join(", ")),
    )?;
    let mut fields = counted.split('\t').map(|f| {
        f.parse::<u64>()
            .with_context(|| format!("unexpected number `{f}` from `{name}`"))
    });
    let rows = fields.next().context("empty count")??;
    let mut payload_bytes = 0;
    for length in fields {
        payload_bytes += length?;
    }
    let sizes = mysql.query(&format!(
        "SELECT DATA_LENGTH, INDEX_LENGTH FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = '{STORE_DB}' AND TABLE_NAME = '{name}'"
    ))?;
    let (data, index) = sizes
        .split_once('\t')
        .with_context(|| format!("no size for `{name}`: `{sizes}`"))?;
    Ok(TableStats {
        table,
        rows,
        columns: u64::try_from(columns.len())?,
        payload_bytes,
        data_length: data.parse()?,
        index_length: index.parse()?,
    })
}

/// Moves the tables of `set` from [`STORE_DB`] into [`BENCH_DB`] (`RENAME TABLE`, instant),
/// or back with `back`.
pub fn move_set(mysql: &MariaDb, set: Set, back: bool) -> Result<()> {
    let (from, to) = if back {
        (BENCH_DB, STORE_DB)
    } else {
        (STORE_DB, BENCH_DB)
    };
    let renames: Vec<String> = set
        .tables()
        .iter()
        .map(|t| format!("`{from}`.`{0}` TO `{to}`.`{0}`", t.name()))
        .collect();
    mysql
        .exec(&format!("RENAME TABLE {}", renames.join(", ")))
        .with_context(|| format!("moving table set `{}` from `{from}` to `{to}`", set.name()))
}
