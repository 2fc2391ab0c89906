//! MySQL/MariaDB → MySQL/MariaDB, schema, full load and replication, through the `dts`
//! command on real servers: two databases of the testkit's private MariaDB (or of the
//! server named by `DTS_TEST_MYSQL_URL`), the target database a rename of the source one.
//! Both sides are read with mysql_async in the binary protocol, independently of dts's
//! readers and writers, and compared value for value; the tables' definitions are compared
//! line for line as `SHOW CREATE TABLE` prints them.
//!
//! `cargo test -p dts-examples --test mysql_to_mysql`

mod common;

use std::time::{Duration, Instant};

use common::{dts, text};
use mysql_async::prelude::*;

const FIXTURE: &str = include_str!("../../fixtures/mysql/torture.sql");

/// A loaded source database and the name of the target database it is copied into.
struct MyPair {
    source_db: String,
    target_db: String,
    dir: std::path::PathBuf,
}

impl MyPair {
    fn new(prefix: &str, sql: &str) -> Self {
        let my = dts_testkit::mariadb();
        let source_db = my.create_unique_database(&format!("{prefix}_src")).unwrap();
        my.exec_in(&source_db, sql).unwrap();
        let target_db = dts_testkit::unique_name(&format!("{prefix}_dst"));
        let dir = std::env::temp_dir().join(format!("dts-test-{source_db}"));
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            source_db,
            target_db,
            dir,
        }
    }

    /// The task's name: the state of every task lives in the server's one `dts_meta`.
    fn task(&self) -> &str {
        &self.target_db
    }

    fn task_file(&self, extra: &str) -> String {
        self.task_file_for("[\"schema\", \"full\"]", extra)
    }

    fn task_file_for(&self, migration: &str, extra: &str) -> String {
        let url = dts_testkit::mariadb().url();
        let text = format!(
            "name = \"{}\"\nmigration = {migration}\nsource.url = \"{url}\"\n\
             target.url = \"{url}\"\nobjects.include = [\"{}\"]\n\
             objects.rename_databases = {{ \"{}\" = \"{}\" }}\n{extra}",
            self.task(),
            self.source_db,
            self.source_db,
            self.target_db,
        );
        let path = self.dir.join("task.toml");
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    }

    async fn conn(&self) -> mysql_async::Conn {
        let mut conn = mysql_async::Conn::new(
            mysql_async::Opts::from_url(&dts_testkit::mariadb().url()).unwrap(),
        )
        .await
        .unwrap();
        conn.query_drop("SET NAMES utf8mb4; SET time_zone = '+00:00'")
            .await
            .unwrap();
        conn
    }

    fn query(&self, sql: &str) -> String {
        dts_testkit::mariadb()
            .query(sql)
            .unwrap()
            .trim()
            .to_string()
    }
}

fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

async fn tables(conn: &mut mysql_async::Conn, db: &str) -> Vec<String> {
    conn.exec(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? \
         ORDER BY TABLE_NAME",
        (db,),
    )
    .await
    .unwrap()
}

/// The binary protocol's kind of a value.
fn kind(v: &mysql_async::Value) -> &'static str {
    use mysql_async::Value as V;
    match v {
        V::NULL => "null",
        V::Bytes(_) => "bytes",
        V::Int(_) => "int",
        V::UInt(_) => "uint",
        V::Float(_) => "float",
        V::Double(_) => "double",
        V::Date(..) => "date",
        V::Time(..) => "time",
    }
}

/// Every row of `db.table` as the binary protocol delivers it, in a canonical order (each
/// value's kind and its whole SQL literal: two rows differ in them exactly when a value
/// differs).
async fn rows(conn: &mut mysql_async::Conn, db: &str, table: &str) -> Vec<String> {
    let rows: Vec<mysql_async::Row> = conn
        .exec(format!("SELECT * FROM {}.{}", quote(db), quote(table)), ())
        .await
        .unwrap();
    let mut out: Vec<String> = rows
        .into_iter()
        .map(|r| {
            r.unwrap()
                .iter()
                .map(|v| format!("{}:{}", kind(v), v.as_sql(true)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    out.sort();
    out
}

/// The definition of `db.table` as `SHOW CREATE TABLE` prints it, one line per column,
/// key, constraint and the table's options, sorted (the order of keys depends on when
/// they were added).
async fn definition(conn: &mut mysql_async::Conn, db: &str, table: &str) -> Vec<String> {
    let (_, sql): (String, String) = conn
        .query_first(format!("SHOW CREATE TABLE {}.{}", quote(db), quote(table)))
        .await
        .unwrap()
        .unwrap();
    let mut lines: Vec<String> = sql
        .lines()
        .skip(1)
        .map(|l| l.trim().trim_end_matches(',').to_string())
        .collect();
    lines.sort();
    lines
}

/// How table definitions are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Definitions {
    /// Not at all.
    Skip,
    /// Line for line.
    Exact,
    /// Line for line, but for the `AUTO_INCREMENT` counter (a source transaction rolled
    /// back moves the source's counter, and nothing is logged for it).
    ButCounters,
}

/// A definition's lines without the `AUTO_INCREMENT=n` table option.
fn without_counter(lines: Vec<String>) -> Vec<String> {
    lines
        .into_iter()
        .map(|l| {
            l.split(' ')
                .filter(|w| !w.starts_with("AUTO_INCREMENT="))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// Compares every table of the source database with the target's, definitions and rows;
/// returns the number of rows.
async fn assert_same(pair: &MyPair, check_definitions: bool) -> usize {
    let definitions = if check_definitions {
        Definitions::Exact
    } else {
        Definitions::Skip
    };
    assert_same_as(pair, definitions).await
}

/// [`assert_same`], comparing definitions as `definitions` says.
async fn assert_same_as(pair: &MyPair, definitions: Definitions) -> usize {
    let mut conn = pair.conn().await;
    let source = tables(&mut conn, &pair.source_db).await;
    assert!(!source.is_empty());
    assert_eq!(source, tables(&mut conn, &pair.target_db).await);
    let mut total = 0;
    for table in &source {
        let expected = rows(&mut conn, &pair.source_db, table).await;
        let actual = rows(&mut conn, &pair.target_db, table).await;
        assert_eq!(expected.len(), actual.len(), "row count of {table}");
        for (e, a) in expected.iter().zip(&actual) {
            assert_eq!(e, a, "a row of {table}");
        }
        if definitions != Definitions::Skip {
            let mut source = definition(&mut conn, &pair.source_db, table).await;
            let mut target = definition(&mut conn, &pair.target_db, table).await;
            if definitions == Definitions::ButCounters {
                source = without_counter(source);
                target = without_counter(target);
            }
            assert_eq!(source, target, "definition of {table}");
        }
        total += expected.len();
    }
    total
}

#[tokio::test]
async fn type_torture_fixture_is_copied_as_it_is() {
    let pair = MyPair::new("mymy_torture", FIXTURE);
    let task = pair.task_file("full.rows_per_chunk = 2\nfull.workers = 3\n");

    let pre = dts(&["precheck", "--config", &task]);
    assert!(pre.status.success(), "{}", text(&pre));

    let out = dts(&["run", "--config", &task]);
    assert!(out.status.success(), "{}", text(&out));

    let copied = assert_same(&pair, true).await;
    assert_eq!(copied, 4 + 7 + 3 + 4 + 4 + 5);

    let target = &pair.target_db;
    // The AUTO_INCREMENT counter is the source's (ahead of the copied rows), and an
    // inserted 0 stays 0 (NO_AUTO_VALUE_ON_ZERO while loading).
    assert_eq!(
        pair.query(&format!(
            "SELECT AUTO_INCREMENT FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = '{target}' AND TABLE_NAME = 'everything'"
        )),
        "1000"
    );
    assert_eq!(
        pair.query(&format!(
            "SELECT COUNT(*) FROM `{target}`.everything WHERE id = 0"
        )),
        "1"
    );
    // Foreign key actions hold in the target.
    pair.query(&format!("DELETE FROM `{target}`.parent WHERE code = 'p2'"));
    assert_eq!(
        pair.query(&format!(
            "SELECT COUNT(*) FROM `{target}`.child WHERE parent_id = 2"
        )),
        "0"
    );
    assert_eq!(
        pair.query(&format!(
            "SELECT COUNT(*) FROM `{target}`.child WHERE owner IS NULL"
        )),
        "2"
    );

    // The finished task does nothing when run again.
    let again = dts(&["run", "--config", &task]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("already finished"),
        "{}",
        text(&again)
    );
}

#[tokio::test]
async fn column_renames_are_refused_before_anything_is_written() {
    let pair = MyPair::new("mymy_rename", FIXTURE);
    let task = pair.task_file(&format!(
        "objects.rename_columns = {{ \"{}.pairs.v\" = \"value\" }}\n",
        pair.source_db
    ));
    let out = dts(&["run", "--config", &task]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("keeps column names as they are"),
        "{}",
        text(&out)
    );
    assert_eq!(
        pair.query(&format!(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{}'",
            pair.target_db
        )),
        "0"
    );
}

/// Rows for the kill test: a composite key, a keyless table, blobs, bits and texts with
/// the load file's special characters.
const KILL_FIXTURE: &str = "
    CREATE TABLE plain (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        n DECIMAL(20,6), t VARCHAR(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,
        ts DATETIME(6), b VARBINARY(32), f DOUBLE, bits BIT(12), e ENUM('red', 'green', 'blue')
    );
    INSERT INTO plain (n, t, ts, b, f, bits, e)
    SELECT seq / 7, CONCAT('row ', seq, '\\t\\\\\\n'), '2000-01-01' + INTERVAL seq MINUTE,
           UNHEX(MD5(seq)), seq / 3, seq % 4096, ELT(seq % 3 + 1, 'red', 'green', 'blue')
    FROM seq_1_to_60000;
    CREATE TABLE mixed (
        a INT NOT NULL, b INT NOT NULL, tag VARCHAR(20), PRIMARY KEY (a, b)
    );
    INSERT INTO mixed SELECT seq % 97, seq, CONCAT('x', seq) FROM seq_1_to_60000;
    CREATE TABLE keyless (v VARCHAR(20), w INT);
    INSERT INTO keyless SELECT CONCAT('v', seq % 1000), seq FROM seq_1_to_30000;
";

#[tokio::test]
async fn sigkill_mid_copy_resumes_exactly() {
    let pair = MyPair::new("mymy_kill", KILL_FIXTURE);
    // Throttled so the copy lasts long enough to be killed at chosen points.
    let task = pair.task_file(
        "full.rows_per_chunk = 3000\nfull.workers = 2\nfull.max_rows_per_second = 30000\n",
    );
    let count = |sql: &str| -> i64 {
        dts_testkit::mariadb()
            .query(sql)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    let chunks_done = || {
        count(&format!(
            "SELECT COUNT(*) FROM dts_meta.chunk WHERE task = '{}'",
            pair.task()
        ))
    };
    let planned = || {
        count(&format!(
            "SELECT COALESCE(SUM(chunks), 0) FROM dts_meta.chunk_plan WHERE task = '{}'",
            pair.task()
        ))
    };
    common::kill_at_chunk_points(&task, &[10, 35, 65], chunks_done, planned).await;
    common::resume_after_kills(&task);
    assert_eq!(assert_same(&pair, true).await, 150_000);
}

/// The mixed write workload on the torture fixture's tables: inserts, updates and deletes of
/// every kind of column, transactions, one rolled back, a table without a key, cascading
/// foreign key deletes, and DDL once replication runs (the task reads the schema before its
/// snapshot: DDL in between is not seen): a column added to and dropped from `pairs` again
/// and again, a table created and then indexed.
#[derive(Default)]
struct Workload {
    i: u64,
    /// Whether `pairs` has its extra column now.
    extra: bool,
    /// When the table `later` was created.
    later: Option<u64>,
}

impl Workload {
    /// The next statement; `ddl`: whether DDL may run.
    fn next(&mut self, ddl: bool) -> String {
        let i = self.i;
        self.i += 1;
        let id = 10_000 + i;
        if ddl && i % 60 == 20 && !self.extra {
            self.extra = true;
            return "ALTER TABLE pairs ADD COLUMN extra INT DEFAULT 7 AFTER b".into();
        }
        if ddl && i % 60 == 50 && self.extra {
            self.extra = false;
            return "ALTER TABLE pairs DROP COLUMN extra".into();
        }
        if ddl && i % 12 == 9 && self.later.is_none() {
            self.later = Some(i);
            return "CREATE TABLE later (id INT PRIMARY KEY, v VARCHAR(20))".into();
        }
        if ddl && self.later.is_some_and(|at| at + 60 == i) {
            return "ALTER TABLE later ADD INDEX v_idx (v)".into();
        }
        match i % 12 {
            0 => format!(
                "INSERT INTO everything (id, ti, tu, si, mi, mu, ii, iu, bi, bu, d65, d10, fl, \
                 db, bt10, bt64, dt, dtt, dt6, ts, tm6, yr, ch, vc, vb, l1, tx, lt, bn, vbn, bl, \
                 en, st, js, changed) VALUES ({id}, -{m}, {m}, -{i}, -{i}, {i}, {i}, {i}, -{i}, \
                 {i}, '{i}.{i}', {m}.5, {i}.25, -{i}.125, b'1010101010', {i}, '2001-02-03', \
                 '2001-02-03 04:05:06', '2024-02-29 12:34:56.{m:06}', '2020-01-01 00:00:00.123', \
                 '-12:34:56.000001', 1999, 'c{i}', 'é{i}', 'w{i}', 'å{i}', 'tab\\there {i}', \
                 REPEAT('x', {i}), x'0102', x'00ff{m:02x}', x'00', 'it''s', 'x,z', \
                 '{{\"n\": {i}}}', '2024-01-01 00:00:00.000')",
                m = i % 100,
            ),
            1 => format!(
                "UPDATE everything SET ii = ii + 1, tx = CONCAT(COALESCE(tx, ''), '+'), \
                 st = 'Y', bt10 = b'1' WHERE id = {}",
                id - 1
            ),
            2 if i >= 26 => format!("DELETE FROM everything WHERE id = {}", id - 26),
            3 => format!("INSERT INTO pairs (a, b, v) VALUES ({i}, 'x', {i} / 3)"),
            4 => format!(
                "UPDATE pairs SET v = v + 1, b = 'y' WHERE a = {} AND b = 'x'",
                i - 1
            ),
            5 => format!(
                "BEGIN; INSERT INTO pairs (a, b, v) VALUES ({i}, 't', 0); \
                 DELETE FROM pairs WHERE a = {} AND b = 'y'; \
                 INSERT INTO words VALUES ('w{i}'), ('W{i}'); COMMIT",
                i - 2
            ),
            6 => format!(
                "BEGIN; INSERT INTO pairs (a, b, v) VALUES ({i}, 'r', 1); \
                 INSERT INTO everything (id, changed) VALUES ({id}, NOW()); ROLLBACK"
            ),
            7 if self.later.is_some() => format!(
                "INSERT INTO keyless VALUES ('k{}', {}); INSERT INTO later VALUES ({i}, 'v{i}')",
                i % 5,
                i % 3
            ),
            7 => format!("INSERT INTO keyless VALUES ('k{}', {})", i % 5, i % 3),
            8 => format!("DELETE FROM keyless WHERE k = 'k{}' LIMIT 1", (i + 1) % 5),
            9 => format!(
                "UPDATE keyless SET n = n + 1 WHERE k = 'k{}' LIMIT 1",
                (i + 2) % 5
            ),
            10 => format!(
                "BEGIN; INSERT INTO parent (id, code) VALUES ({id}, 'c{i}'); \
                 INSERT INTO child (parent_id, note, owner) VALUES ({id}, 'n{i}', NULL), \
                 (1, 'o{i}', {id}); COMMIT"
            ),
            // A delete that InnoDB cascades to one child and sets another's owner to NULL:
            // the binlog holds only the parent's row.
            11 => format!("DELETE FROM parent WHERE id = {}", id - 1),
            _ => "UPDATE everything SET db = db / 2 WHERE id = 1".into(),
        }
    }
}

#[tokio::test]
async fn replication_under_writes_survives_sigkill_and_catches_up() {
    let pair = MyPair::new("mymy_cdc", FIXTURE);
    let task = pair.task_file_for(
        "[\"schema\", \"full\", \"incremental\"]",
        "incremental.max_batch_rows = 200\nincremental.max_batch_delay_ms = 50\n",
    );
    let pre = dts(&["precheck", "--config", &task]);
    assert!(pre.status.success(), "{}", text(&pre));

    // The workload runs all along, from before the snapshot to the end; DDL once
    // replication runs.
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let ddl = std::sync::Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, ddl) = (stop.clone(), ddl.clone());
        let db = pair.source_db.clone();
        std::thread::spawn(move || {
            let mut workload = Workload::default();
            while !stop.load(Ordering::Relaxed) {
                let statement = workload.next(ddl.load(Ordering::Relaxed));
                dts_testkit::mariadb()
                    .exec_in(&db, &statement)
                    .unwrap_or_else(|e| panic!("`{statement}`: {e}"));
            }
            (workload.i, workload.later.is_some())
        })
    };
    let applied = || {
        dts_testkit::mariadb()
            .query(&format!(
                "SELECT position FROM dts_meta.cdc_position WHERE task = '{}'",
                pair.task()
            ))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    println!("kill timing seed {seed}");
    let mut rng = u64::from(seed) | 1;
    let mut random = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    for round in 0..5 {
        let log = pair.dir.join(format!("run-{round}.log"));
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dts"))
            .args(["run", "--config", &task])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        // Replication applies a few batches, then the process is killed at a random moment.
        let first = applied();
        let started = Instant::now();
        let mut advanced = 0;
        let wanted = 2 + random(4);
        let mut last = first.clone();
        while advanced < wanted {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the run ended in round {round}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            assert!(started.elapsed() < Duration::from_secs(180), "no progress");
            let now = applied();
            if !now.is_empty() && now != last {
                advanced += 1;
                last = now;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ddl.store(true, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(random(1000))).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let (statements, later) = writer.join().unwrap();
    assert!(
        statements > 100 && later,
        "{statements} statements, later: {later}"
    );

    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    let rows = assert_same_as(&pair, Definitions::ButCounters).await;
    println!("{statements} statements written, {rows} rows compared");
    assert!(rows > 50, "{rows}");
    // The workload's DDL reached the target: the table created mid-stream, and `pairs`
    // with or without its extra column as the source has it.
    assert_eq!(
        pair.query(&format!(
            "SELECT COUNT(*) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = '{}' AND TABLE_NAME = 'later'",
            pair.target_db
        )),
        "1"
    );
    // Cascaded deletes happened in the target: no child of a deleted parent is left.
    assert_eq!(
        pair.query(&format!(
            "SELECT COUNT(*) FROM `{0}`.child c LEFT JOIN `{0}`.parent p ON p.id = c.parent_id \
             WHERE p.id IS NULL",
            pair.target_db
        )),
        "0"
    );
}
