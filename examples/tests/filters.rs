//! Row filters (`[tables."…"] where = "…"`) end to end, per direction: the full load copies
//! the rows the condition holds for, replication follows rows moving into and out of it
//! (updates become inserts or deletes), and the target ends equal, value for value, to the
//! source rows the condition holds for; `dts verify` agrees. A condition dts cannot
//! evaluate on changes is refused naming the part.

mod common;

use common::{dts, text};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    MySql,
    Pg,
}

/// A source and a target database of one direction.
struct Pair {
    source: Side,
    target: Side,
    /// The source database (MySQL) or the source's database (PostgreSQL).
    source_db: String,
    /// The schema holding `orders` on the source (MySQL: the database).
    schema: String,
    target_db: String,
    dir: std::path::PathBuf,
}

const CONDITION: &str =
    "region IN ('eu', 'uk') AND amount >= 10 AND (note IS NULL OR note NOT LIKE 'skip%')";

const ROWS: &str = "INSERT INTO orders VALUES \
    (1, 'eu', 10.00, '2024-01-01', 'a'), (2, 'us', 50.00, '2024-01-02', 'b'), \
    (3, 'eu', NULL, '2024-01-03', 'c'), (4, 'uk', 99.99, NULL, NULL), \
    (5, 'eu', 5.00, '2024-01-05', 'e'), (6, 'eu ', 20.00, '2024-01-06', 'f'), \
    (7, 'EU', 20.00, '2024-01-07', 'g'), (8, 'eu', 30.00, '2024-01-08', 'skip me'), \
    (9, 'eu', 40.00, '2024-01-09', 'keep'), (10, 'uk', 12.00, '2024-01-10', NULL), \
    (13, NULL, 50.00, '2024-01-13', 'n')";

/// Rows move into and out of the filter, filter columns become NULL, inserts and deletes
/// land on both sides of it.
const WORKLOAD: &[&str] = &[
    "UPDATE orders SET region = 'eu' WHERE id = 2",
    "UPDATE orders SET region = 'us' WHERE id = 1",
    "UPDATE orders SET amount = NULL WHERE id = 4",
    "UPDATE orders SET amount = 15.00 WHERE id = 3",
    "UPDATE orders SET note = 'still' WHERE id = 9",
    "UPDATE orders SET note = 'z' WHERE id = 5",
    "UPDATE orders SET id = 110 WHERE id = 10",
    "UPDATE orders SET id = 107, region = 'eu' WHERE id = 7",
    "UPDATE orders SET note = 'skip now' WHERE id = 110",
    "UPDATE orders SET region = 'uk' WHERE id = 13",
    "INSERT INTO orders VALUES (11, 'eu', 11.00, '2024-02-11', NULL)",
    "INSERT INTO orders VALUES (12, 'us', 11.00, '2024-02-12', NULL)",
    "DELETE FROM orders WHERE id = 9",
    "DELETE FROM orders WHERE id = 8",
    "DELETE FROM orders WHERE id = 4",
    "UPDATE orders SET region = NULL WHERE id = 2",
    "UPDATE orders SET region = 'uk' WHERE id = 2",
];

impl Pair {
    fn new(prefix: &str, source: Side, target: Side, replica_full: bool) -> Self {
        let my = dts_testkit::mariadb();
        let pg = dts_testkit::postgres();
        let dir =
            std::env::temp_dir().join(format!("dts-test-{}", dts_testkit::unique_name(prefix)));
        std::fs::create_dir_all(&dir).unwrap();
        let (source_db, schema) = match source {
            Side::MySql => {
                let db = my.create_unique_database(&format!("{prefix}_s")).unwrap();
                my.exec_in(
                    &db,
                    &format!(
                        "CREATE TABLE orders (id INT PRIMARY KEY, \
                         region VARCHAR(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin, \
                         amount DECIMAL(10,2), day DATE, note VARCHAR(20) \
                         CHARACTER SET utf8mb4 COLLATE utf8mb4_bin); {ROWS};"
                    ),
                )
                .unwrap();
                (db.clone(), db)
            }
            Side::Pg => {
                let db = dts_testkit::unique_name(&format!("{prefix}_s"));
                pg.create_database(&db).unwrap();
                let identity = if replica_full {
                    "ALTER TABLE orders REPLICA IDENTITY FULL;"
                } else {
                    ""
                };
                pg.exec_in(
                    &db,
                    &format!(
                        "CREATE SCHEMA shop; SET search_path = shop; \
                         CREATE TABLE orders (id INT PRIMARY KEY, region TEXT, \
                         amount NUMERIC(10,2), day DATE, note VARCHAR(20)); {identity} {ROWS};"
                    ),
                )
                .unwrap();
                (db, "shop".to_string())
            }
        };
        let target_db = dts_testkit::unique_name(&format!("{prefix}_t"));
        match target {
            Side::Pg => pg.create_database(&target_db).unwrap(),
            Side::MySql => {}
        }
        Self {
            source,
            target,
            source_db,
            schema,
            target_db,
            dir,
        }
    }

    fn task_file(&self, migration: &str, condition: &str) -> String {
        let my = dts_testkit::mariadb();
        let pg = dts_testkit::postgres();
        let source_url = match self.source {
            Side::MySql => my.url(),
            Side::Pg => pg.url_for(&self.source_db),
        };
        let (target_url, rename) = match self.target {
            Side::Pg => (pg.url_for(&self.target_db), String::new()),
            Side::MySql => (
                my.url(),
                format!(
                    "objects.rename_databases = {{ \"{}\" = \"{}\" }}\n",
                    self.schema, self.target_db
                ),
            ),
        };
        let text = format!(
            "name = \"{}\"\nmigration = {migration}\nsource.url = \"{source_url}\"\n\
             target.url = \"{target_url}\"\nobjects.include = [\"{}\"]\n{rename}\
             full.rows_per_chunk = 3\n\n[tables.\"{}.orders\"]\nwhere = \"{}\"\n",
            self.target_db,
            self.schema,
            self.schema,
            condition.replace('\\', "\\\\").replace('"', "\\\"")
        );
        let path = self.dir.join("task.toml");
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    }

    fn source_sql(&self, sql: &str) -> String {
        match self.source {
            Side::MySql => dts_testkit::mariadb()
                .query_in(&self.source_db, sql)
                .unwrap(),
            Side::Pg => dts_testkit::postgres()
                .query_in(&self.source_db, &format!("SET search_path = shop; {sql}"))
                .unwrap(),
        }
    }

    /// The rows as `id|region|amount|day|note` lines, `~` for NULL.
    fn rows(&self, side: Side, filtered: bool) -> Vec<String> {
        let filter = if filtered {
            format!(" WHERE {CONDITION}")
        } else {
            String::new()
        };
        let out = match side {
            Side::MySql => {
                let db = if filtered {
                    &self.source_db
                } else {
                    &self.target_db
                };
                dts_testkit::mariadb()
                    .query_in(
                        db,
                        &format!(
                            "SELECT CONCAT_WS('|', id, COALESCE(region, '~'), \
                             COALESCE(amount, '~'), COALESCE(day, '~'), COALESCE(note, '~')) \
                             FROM orders{filter} ORDER BY id"
                        ),
                    )
                    .unwrap()
            }
            Side::Pg => {
                let db = if filtered {
                    &self.source_db
                } else {
                    &self.target_db
                };
                dts_testkit::postgres()
                    .query_in(
                        db,
                        &format!(
                            "SELECT concat_ws('|', id, COALESCE(region, '~'), \
                             COALESCE(amount::text, '~'), COALESCE(day::text, '~'), \
                             COALESCE(note, '~')) FROM \"{}\".orders{filter} ORDER BY id",
                            self.schema
                        ),
                    )
                    .unwrap()
            }
        };
        out.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    }

    fn assert_target_is_filtered_source(&self, stage: &str) -> usize {
        let expected = self.rows(self.source, true);
        let actual = self.rows(self.target, false);
        assert_eq!(
            actual, expected,
            "{:?} -> {:?} after {stage}",
            self.source, self.target
        );
        expected.len()
    }
}

fn scenario(prefix: &str, source: Side, target: Side) {
    let pair = Pair::new(prefix, source, target, true);
    let task = pair.task_file("[\"schema\", \"full\", \"incremental\"]", CONDITION);
    let pre = dts(&["precheck", "--config", &task]);
    assert!(pre.status.success(), "{}", text(&pre));
    assert!(
        String::from_utf8_lossy(&pre.stdout).contains("source.row_filters"),
        "{}",
        text(&pre)
    );

    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    let copied = pair.assert_target_is_filtered_source("the full load");
    assert!(copied >= 3, "{copied}");

    for sql in WORKLOAD {
        pair.source_sql(sql);
    }
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    let rows = pair.assert_target_is_filtered_source("replication");
    // Rows moved in by updates (2 also through a NULL region, 3 from a NULL amount, 13 from
    // a NULL region, 107 with a new key) or inserted; moved out (1, 4 and 110 by updates,
    // 9 deleted) or inserted outside (12).
    let ids = pair.rows(pair.target, false);
    for id in ["2|", "3|", "13|", "107|", "11|"] {
        assert!(
            ids.iter().any(|r| r.starts_with(id)),
            "{id} missing from {ids:?}"
        );
    }
    for id in ["1|", "4|", "9|", "110|", "12|"] {
        assert!(
            !ids.iter().any(|r| r.starts_with(id)),
            "{id} kept in {ids:?}"
        );
    }
    println!("{source:?} -> {target:?}: {copied} rows copied, {rows} after replication");

    let verify = dts(&["verify", "--config", &task]);
    assert!(verify.status.success(), "{}", text(&verify));
}

#[test]
fn mysql_to_pg_filters_the_full_load_and_replication() {
    scenario("flt_mp", Side::MySql, Side::Pg);
}

#[test]
fn pg_to_pg_filters_the_full_load_and_replication() {
    scenario("flt_pp", Side::Pg, Side::Pg);
}

#[test]
fn pg_to_mysql_filters_the_full_load_and_replication() {
    scenario("flt_pm", Side::Pg, Side::MySql);
}

#[test]
fn mysql_to_mysql_filters_the_full_load_and_replication() {
    scenario("flt_mm", Side::MySql, Side::MySql);
}

#[test]
fn conditions_replication_cannot_evaluate_are_refused_naming_the_part() {
    // A function: refused for replication, naming it.
    let pair = Pair::new("flt_bad", Side::MySql, Side::Pg, true);
    let task = pair.task_file(
        "[\"schema\", \"full\", \"incremental\"]",
        "region = 'eu' AND upper(note) = 'A'",
    );
    let out = dts(&["precheck", "--config", &task]);
    assert!(!out.status.success(), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("source.row_filters") && all.contains("upper(note) = 'A'"),
        "{all}"
    );
    let run = dts(&["run", "--config", &task]);
    assert!(!run.status.success(), "{}", text(&run));
    // The full load alone pushes it down to the source as it is.
    let task = pair.task_file(
        "[\"schema\", \"full\"]",
        "region = 'eu' AND upper(note) = 'A'",
    );
    let out = dts(&["run", "--config", &task]);
    assert!(out.status.success(), "{}", text(&out));
    let rows = pair.rows(Side::Pg, false);
    assert_eq!(rows, ["1|eu|10.00|2024-01-01|a"], "{}", text(&out));

    // A PostgreSQL table without REPLICA IDENTITY FULL whose filter reads other columns.
    let pair = Pair::new("flt_ri", Side::Pg, Side::Pg, false);
    let task = pair.task_file("[\"schema\", \"full\", \"incremental\"]", "region = 'eu'");
    let out = dts(&["precheck", "--config", &task]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("REPLICA IDENTITY FULL"),
        "{}",
        text(&out)
    );
    // An ordering under a collation dts does not know, with the exact form suggested.
    let task = pair.task_file("[\"schema\", \"full\", \"incremental\"]", "note < 'm'");
    let out = dts(&["precheck", "--config", &task]);
    assert!(
        text(&out).contains("note COLLATE \\\"C\\\" < 'm'")
            || text(&out).contains("note COLLATE \"C\" < 'm'"),
        "{}",
        text(&out)
    );
    // An unknown column is a configuration error naming it.
    let task = pair.task_file("[\"schema\", \"full\"]", "regio = 'eu'");
    let out = dts(&["precheck", "--config", &task]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("`regio`"), "{}", text(&out));
}

/// The keys of the PostgreSQL target's `orders` (none before it exists).
fn pg_ids(pair: &Pair) -> Vec<i64> {
    dts_testkit::postgres()
        .query_in(
            &pair.target_db,
            &format!("SELECT id FROM \"{}\".orders ORDER BY id", pair.schema),
        )
        .map(|out| out.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Dropping a column the filter reads stops a running replication, naming table, column
/// and filter (and a new run is refused by the precheck, naming the column).
fn dropped_filter_column_stops(prefix: &str, source: Side) {
    let pair = Pair::new(prefix, source, Side::Pg, true);
    let task = pair.task_file("[\"schema\", \"full\", \"incremental\"]", CONDITION);
    let log = pair.dir.join("run.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dts"))
        .args(["run", "--config", &task])
        .env("DTS_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    // Wait until the full load's rows are there and replication runs.
    pair.source_sql("INSERT INTO orders VALUES (19, 'eu', 50.00, '2024-03-01', 'x')");
    while !pg_ids(&pair).contains(&19) {
        assert!(
            started.elapsed().as_secs() < 60,
            "replication did not start"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "{}",
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    pair.source_sql("ALTER TABLE orders DROP COLUMN note");
    pair.source_sql("INSERT INTO orders VALUES (20, 'eu', 50.00, '2024-03-01')");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed().as_secs() > 90 {
            child.kill().unwrap();
            panic!(
                "replication did not stop: {}",
                std::fs::read_to_string(&log).unwrap()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let all = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success(), "{all}");
    assert!(
        all.contains("`note`") && all.contains("orders") && all.contains("note NOT LIKE 'skip%'"),
        "{all}"
    );
    // The row was not applied.
    let ids = pg_ids(&pair);
    assert!(ids.contains(&19) && !ids.contains(&20), "{ids:?}");
    // A new run is refused before it starts.
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("unknown column `note`"),
        "{}",
        text(&out)
    );
}

#[test]
fn mysql_dropping_a_filter_column_stops_replication_naming_it() {
    dropped_filter_column_stops("flt_ddl_m", Side::MySql);
}

#[test]
fn pg_dropping_a_filter_column_stops_replication_naming_it() {
    dropped_filter_column_stops("flt_ddl_p", Side::Pg);
}

/// PostgreSQL: an update that moves a row with a TOASTed value it leaves unchanged into the
/// filter inserts the whole row (the value comes from the old row under `REPLICA IDENTITY
/// FULL`); `TRUNCATE` passes; a filter on key columns needs no `REPLICA IDENTITY FULL`.
#[test]
fn pg_rows_with_unchanged_toasted_values_move_in_whole_and_truncate_passes() {
    let pair = Pair::new("flt_toast", Side::Pg, Side::Pg, true);
    let big = "(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 8000) g)";
    pair.source_sql(&format!(
        "ALTER TABLE orders ADD COLUMN body TEXT; \
         UPDATE orders SET body = {big} || id WHERE id IN (2, 9)"
    ));
    let task = pair.task_file("[\"schema\", \"full\", \"incremental\"]", CONDITION);
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    // Out -> in, the TOASTed body left as it was; in -> in likewise.
    pair.source_sql("UPDATE orders SET region = 'eu' WHERE id = 2");
    pair.source_sql("UPDATE orders SET day = '2025-01-01' WHERE id = 9");
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    pair.assert_target_is_filtered_source("moving toasted rows");
    let digest = |db: &str| {
        dts_testkit::postgres()
            .query_in(
                db,
                "SELECT id, length(body), md5(body) FROM shop.orders \
                 WHERE body IS NOT NULL ORDER BY id",
            )
            .unwrap()
    };
    let source = dts_testkit::postgres()
        .query_in(
            &pair.source_db,
            &format!(
                "SELECT id, length(body), md5(body) FROM shop.orders \
                 WHERE ({CONDITION}) AND body IS NOT NULL ORDER BY id"
            ),
        )
        .unwrap();
    assert_eq!(digest(&pair.target_db), source);
    assert_eq!(source.lines().count(), 2, "{source}");

    pair.source_sql("TRUNCATE orders");
    pair.source_sql("INSERT INTO orders VALUES (30, 'eu', 30.00, NULL, NULL, NULL), (31, 'us', 30.00, NULL, NULL, NULL)");
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(pair.assert_target_is_filtered_source("truncate"), 1);

    // A filter on the key alone needs no REPLICA IDENTITY FULL.
    let keyed = Pair::new("flt_key", Side::Pg, Side::Pg, false);
    let task = keyed.task_file("[\"schema\", \"full\", \"incremental\"]", "id >= 5");
    let out = dts(&["precheck", "--config", &task]);
    assert!(out.status.success(), "{}", text(&out));
}

/// On a PostgreSQL database whose default collation is `C`, text without a collation of
/// its own orders by code point: dts evaluates `<` on it, and replication follows it.
#[test]
fn pg_ordering_under_a_c_default_collation_replicates() {
    let pg = dts_testkit::postgres();
    let source_db = dts_testkit::unique_name("flt_c_s");
    pg.exec(&format!(
        "CREATE DATABASE \"{source_db}\" LOCALE 'C' TEMPLATE template0"
    ))
    .unwrap();
    pg.exec_in(
        &source_db,
        &format!(
            "CREATE SCHEMA shop; SET search_path = shop; \
             CREATE TABLE orders (id INT PRIMARY KEY, region TEXT, amount NUMERIC(10,2), \
             day DATE, note VARCHAR(20)); ALTER TABLE orders REPLICA IDENTITY FULL; {ROWS};"
        ),
    )
    .unwrap();
    let target_db = dts_testkit::unique_name("flt_c_t");
    pg.create_database(&target_db).unwrap();
    let dir = std::env::temp_dir().join(format!("dts-test-{source_db}"));
    std::fs::create_dir_all(&dir).unwrap();
    let pair = Pair {
        source: Side::Pg,
        target: Side::Pg,
        source_db,
        schema: "shop".into(),
        target_db,
        dir,
    };
    let condition = "region < 'eu ' AND region >= 'EU'";
    let task = pair.task_file("[\"schema\", \"full\", \"incremental\"]", condition);
    let pre = dts(&["precheck", "--config", &task]);
    assert!(pre.status.success(), "{}", text(&pre));
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    pair.source_sql("UPDATE orders SET region = 'Z' WHERE id = 2");
    pair.source_sql("UPDATE orders SET region = 'f' WHERE id = 1");
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    let source = pg
        .query_in(
            &pair.source_db,
            &format!("SELECT id, region FROM shop.orders WHERE {condition} ORDER BY id"),
        )
        .unwrap();
    let target = pg
        .query_in(
            &pair.target_db,
            "SELECT id, region FROM shop.orders ORDER BY id",
        )
        .unwrap();
    assert_eq!(target, source);
    // 'EU', 'Z', 'eu' (uppercase sorts first under C); not 'f'.
    assert!(
        source.contains("2|Z") && !source.contains("1|f"),
        "{source}"
    );
}

/// A row filter and a column selection on one table: the filter reads the whole source
/// row (replication evaluates it before the left-out column is dropped), the target holds
/// the kept columns of the rows it holds for, and `dts verify` agrees.
fn filter_with_columns_left_out(prefix: &str, source: Side, target: Side) {
    let pair = Pair::new(prefix, source, target, true);
    let task = pair.task_file("[\"schema\", \"full\", \"incremental\"]", CONDITION);
    let mut text_now = std::fs::read_to_string(&task).unwrap();
    text_now.push_str("columns.exclude = [\"day\"]\n");
    std::fs::write(&task, text_now).unwrap();
    // The kept columns of `rows`: every field but the fourth.
    let kept = |rows: Vec<String>| -> Vec<String> {
        rows.iter()
            .map(|r| {
                let f: Vec<&str> = r.split('|').collect();
                format!("{}|{}|{}|{}", f[0], f[1], f[2], f[4])
            })
            .collect()
    };
    let target_rows = |pair: &Pair| -> Vec<String> {
        let out = match pair.target {
            Side::MySql => dts_testkit::mariadb()
                .query_in(
                    &pair.target_db,
                    "SELECT CONCAT_WS('|', id, COALESCE(region, '~'), COALESCE(amount, '~'), \
                     COALESCE(note, '~')) FROM orders ORDER BY id",
                )
                .unwrap(),
            Side::Pg => dts_testkit::postgres()
                .query_in(
                    &pair.target_db,
                    &format!(
                        "SELECT concat_ws('|', id, COALESCE(region, '~'), \
                         COALESCE(amount::text, '~'), COALESCE(note, '~')) \
                         FROM \"{}\".orders ORDER BY id",
                        pair.schema
                    ),
                )
                .unwrap(),
        };
        out.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    };
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(target_rows(&pair), kept(pair.rows(pair.source, true)));
    for sql in WORKLOAD {
        pair.source_sql(sql);
    }
    // The left-out column changes alone, inside and outside the filter.
    pair.source_sql("UPDATE orders SET day = '2030-01-01' WHERE id IN (2, 3, 12)");
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    let expected = kept(pair.rows(pair.source, true));
    assert!(expected.len() >= 4, "{expected:?}");
    assert_eq!(target_rows(&pair), expected, "{source:?} -> {target:?}");
    let verify = dts(&["verify", "--config", &task]);
    assert!(verify.status.success(), "{}", text(&verify));
}

#[test]
fn mysql_to_pg_filters_rows_of_a_table_with_a_column_left_out() {
    filter_with_columns_left_out("flt_cmp", Side::MySql, Side::Pg);
}

#[test]
fn pg_to_mysql_filters_rows_of_a_table_with_a_column_left_out() {
    filter_with_columns_left_out("flt_cpm", Side::Pg, Side::MySql);
}
