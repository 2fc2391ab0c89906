//! The benchmark's data: the `orders` table generated in either source engine, the
//! `events` table of the capture measurement, and the fingerprint both engines compute of a
//! loaded table to check that everything arrived.

use anyhow::{Context as _, Result};
use dts_testkit::{MariaDb, Postgres};

/// The source schema (PostgreSQL) or database (MariaDB) holding `orders`.
pub const SCHEMA: &str = "benchdb";

/// The PostgreSQL database holding [`SCHEMA`] at the source.
pub const PG_SOURCE_DB: &str = "bench_source";

/// The PostgreSQL database holding the capture measurement's source table.
pub const PG_CAPTURE_DB: &str = "bench_capture_source";

/// The capture measurement's schema and table.
pub const CAPTURE_SCHEMA: &str = "capture";

/// `orders` in PostgreSQL: 6 narrow columns, a primary key and a secondary index, every
/// value a function of the row number.
const PG_ORDERS: &str = "\
CREATE SCHEMA benchdb;
CREATE TABLE benchdb.orders (id bigint PRIMARY KEY, customer_id integer NOT NULL,
  status varchar(16) NOT NULL, amount numeric(12,2) NOT NULL,
  created_at timestamp NOT NULL, note varchar(64) NOT NULL);
INSERT INTO benchdb.orders
SELECT g, 1 + (g * 7919) % 100000,
  (ARRAY['new', 'paid', 'shipped', 'cancelled'])[1 + g % 4],
  ((g * 104729) % 1000000) / 100.0,
  timestamp '2024-01-01' + ((g * 7727) % 31536000) * interval '1 second',
  'order ' || g || ' ' || left(md5(g::text), 16)
FROM generate_series(1::bigint, {rows}) g;
CREATE INDEX orders_customer ON benchdb.orders (customer_id);
VACUUM ANALYZE benchdb.orders;";

/// The same table in MariaDB, with the same values.
const MARIADB_ORDERS: &str = "\
CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id INT NOT NULL,
  status VARCHAR(16) NOT NULL, amount DECIMAL(12,2) NOT NULL,
  created_at DATETIME NOT NULL, note VARCHAR(64) NOT NULL) ENGINE=InnoDB;
INSERT INTO orders
SELECT seq, 1 + (seq * 7919) % 100000,
  ELT(1 + seq % 4, 'new', 'paid', 'shipped', 'cancelled'),
  ((seq * 104729) % 1000000) / 100,
  TIMESTAMP'2024-01-01 00:00:00' + INTERVAL ((seq * 7727) % 31536000) SECOND,
  CONCAT('order ', seq, ' ', LEFT(MD5(seq), 16))
FROM seq_1_to_{rows};
CREATE INDEX orders_customer ON orders (customer_id);
ANALYZE TABLE orders;";

/// The capture measurement's table, its first rows, and the procedures that write the
/// single-row transactions of each workload (each row its own transaction: `COMMIT`
/// inside the loop).
const PG_CAPTURE: &str = "\
CREATE SCHEMA capture;
CREATE TABLE capture.events (id bigint PRIMARY KEY, account integer NOT NULL,
  kind varchar(16) NOT NULL, amount numeric(12,2) NOT NULL, note varchar(64) NOT NULL,
  created_at timestamp(6) NOT NULL);
CREATE PROCEDURE capture.insert_rows(first bigint, n bigint) LANGUAGE plpgsql AS $$
DECLARE i bigint := first;
BEGIN
  WHILE i < first + n LOOP
    INSERT INTO capture.events VALUES (i, 1 + (i * 7919) % 10000,
      (ARRAY['deposit', 'withdrawal', 'transfer', 'fee'])[1 + i % 4],
      ((i * 104729) % 1000000) / 100.0, 'event ' || i || ' ' || left(md5(i::text), 16),
      timestamp '2024-01-01' + ((i * 7727) % 31536000) * interval '1 second'
        + (i % 1000000) * interval '1 microsecond');
    COMMIT;
    i := i + 1;
  END LOOP;
END $$;
CREATE PROCEDURE capture.mix(n bigint, ids bigint, INOUT changed bigint DEFAULT 0)
LANGUAGE plpgsql AS $$
DECLARE r bigint; i bigint := 1;
BEGIN
  WHILE i <= n LOOP
    IF i % 10 < 7 THEN
      UPDATE capture.events SET amount = amount + 1, note = 'updated ' || i
        WHERE id = 1 + (i * 7919) % ids;
    ELSE
      DELETE FROM capture.events WHERE id = 1 + (i * 104729) % ids;
    END IF;
    GET DIAGNOSTICS r = ROW_COUNT;
    changed := changed + r;
    COMMIT;
    i := i + 1;
  END LOOP;
END $$;";

/// Creates `orders` with `rows` rows in PostgreSQL's [`PG_SOURCE_DB`], afresh.
pub fn create_pg_orders(pg: &Postgres, rows: u64) -> Result<()> {
    pg.drop_database(PG_SOURCE_DB)?;
    pg.create_database(PG_SOURCE_DB)?;
    pg.exec_in(
        PG_SOURCE_DB,
        &PG_ORDERS.replace("{rows}", &rows.to_string()),
    )
    .context("generating the PostgreSQL source table")
}

/// Creates `orders` with `rows` rows in MariaDB's [`SCHEMA`] database, afresh.
pub fn create_mariadb_orders(mysql: &MariaDb, rows: u64) -> Result<()> {
    mysql.drop_database(SCHEMA)?;
    mysql.create_database(SCHEMA)?;
    mysql
        .exec_in(SCHEMA, &MARIADB_ORDERS.replace("{rows}", &rows.to_string()))
        .context("generating the MariaDB source table")
}

/// Creates the capture measurement's source afresh, with `rows` first rows.
pub fn create_pg_capture(pg: &Postgres, rows: u64) -> Result<()> {
    pg.drop_database(PG_CAPTURE_DB)?;
    pg.create_database(PG_CAPTURE_DB)?;
    pg.exec_in(PG_CAPTURE_DB, PG_CAPTURE)?;
    pg.exec_in(
        PG_CAPTURE_DB,
        &format!("CALL capture.insert_rows(1, {rows})"),
    )
    .context("generating the capture source table")
}

/// One line that changes when any row of `orders` is missing, doubled or altered: the
/// row count and sums and extremes of every column, formatted alike by both engines.
pub fn pg_orders_fingerprint(pg: &Postgres, database: &str, table: &str) -> Result<String> {
    Ok(pg.query_in(
        database,
        &format!(
            "SELECT concat_ws('|', count(*), sum(id), sum(customer_id), sum(amount), \
             sum(length(status)), sum(length(note)), \
             to_char(min(created_at), 'YYYY-MM-DD HH24:MI:SS'), \
             to_char(max(created_at), 'YYYY-MM-DD HH24:MI:SS')) FROM {table}"
        ),
    )?)
}

/// [`pg_orders_fingerprint`] of a MariaDB table.
pub fn mariadb_orders_fingerprint(mysql: &MariaDb, database: &str, table: &str) -> Result<String> {
    Ok(mysql.query_in(
        database,
        &format!(
            "SELECT CONCAT_WS('|', COUNT(*), SUM(id), SUM(customer_id), SUM(amount), \
             SUM(CHAR_LENGTH(status)), SUM(CHAR_LENGTH(note)), \
             DATE_FORMAT(MIN(created_at), '%Y-%m-%d %H:%i:%s'), \
             DATE_FORMAT(MAX(created_at), '%Y-%m-%d %H:%i:%s')) FROM {table}"
        ),
    )?)
}

/// The fingerprint of the capture table in PostgreSQL: count, sums, and a digest of every
/// row's values in key order.
pub fn pg_events_fingerprint(pg: &Postgres, database: &str) -> Result<String> {
    Ok(pg.query_in(
        database,
        "SELECT concat_ws('|', count(*), sum(id), sum(amount), \
         md5(string_agg(concat_ws(',', id, account, kind, amount, note, \
           to_char(created_at, 'YYYY-MM-DD HH24:MI:SS.US')), ';' ORDER BY id))) \
         FROM capture.events",
    )?)
}

/// [`pg_events_fingerprint`] of the capture table in a MariaDB database.
pub fn mariadb_events_fingerprint(mysql: &MariaDb, database: &str) -> Result<String> {
    Ok(mysql.query_in(
        database,
        "SET SESSION group_concat_max_len = 4294967295; \
         SELECT CONCAT_WS('|', COUNT(*), SUM(id), SUM(amount), \
         MD5(GROUP_CONCAT(CONCAT_WS(',', id, account, kind, amount, note, \
           DATE_FORMAT(created_at, '%Y-%m-%d %H:%i:%s.%f')) ORDER BY id SEPARATOR ';'))) \
         FROM events",
    )?)
}
