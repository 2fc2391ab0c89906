//! Verification and repair end to end, through the `dts` command, on real servers, in
//! every supported direction (MySQL → PostgreSQL, PostgreSQL → PostgreSQL, MySQL → MySQL,
//! PostgreSQL → MySQL): a migrated database verifies clean; single-cell corruptions made
//! directly in the target are each reported with table, key and column; `--repair` fixes
//! them. A verification during a
//! write load reports nothing false; `full.verify = true` makes `dts run` verify.
//!
//! `cargo test -p dts-examples --test verify`

mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{dts, text, Env};
use mysql_async::prelude::*;

/// Every type family, a zero date (written as NULL), a composite key and a table without
/// a key holding duplicate rows.
const FIXTURE: &str = "
SET sql_mode = '';
CREATE TABLE v (
  id INT NOT NULL PRIMARY KEY,
  ti TINYINT NOT NULL,
  i INT NOT NULL,
  bu BIGINT UNSIGNED NOT NULL,
  d DECIMAL(30,10) NOT NULL,
  f FLOAT NOT NULL,
  dbl DOUBLE NOT NULL,
  s VARCHAR(40) NOT NULL,
  c CHAR(5) NOT NULL,
  t TEXT,
  b BLOB,
  bin BINARY(4),
  dt DATETIME(6),
  ts TIMESTAMP(3) NULL,
  dz DATE NULL,
  tm TIME,
  y YEAR,
  j JSON,
  bt BIT(5),
  e ENUM('red','green','blue'));
INSERT INTO v
SELECT seq, CAST(seq AS SIGNED) - 50, seq * 1000, 18446744073709551615 - seq, seq * 1.0000000001,
       0.1, 0.3, CONCAT('s-', seq), CONCAT('c', seq), REPEAT('t', seq), UNHEX(MD5(seq)),
       CHAR(seq), '2024-01-01 00:00:00.000001' + INTERVAL seq DAY,
       '2024-02-01 10:00:00.5' + INTERVAL seq HOUR,
       IF(seq = 3, '0000-00-00', '2024-03-01' + INTERVAL seq DAY),
       SEC_TO_TIME(seq * 3600 + 0.25), 2000 + seq, CONCAT('{\"a\": ', seq, ', \"b\": [1.50, 2e1]}'),
       seq % 32, ELT(seq % 3 + 1, 'red', 'green', 'blue')
FROM seq_1_to_14;
CREATE TABLE pair (g INT NOT NULL, n INT NOT NULL, label VARCHAR(20), PRIMARY KEY (g, n));
INSERT INTO pair SELECT seq % 3, seq, CONCAT('p', seq) FROM seq_1_to_10;
CREATE TABLE logbook (at DATETIME, message VARCHAR(40));
INSERT INTO logbook VALUES ('2024-01-01 00:00:00', 'start'), ('2024-01-01 00:00:00', 'dup'),
  ('2024-01-01 00:00:00', 'dup'), (NULL, NULL);
";

fn verify(task: &str, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let mut args = vec!["verify", "--config", task, "--json", "--max-keys", "50"];
    args.extend_from_slice(extra);
    let out = dts(&args);
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), json, text(&out))
}

fn table<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["source"].as_str().unwrap().ends_with(&format!(".{name}")))
        .unwrap_or_else(|| panic!("no table {name} in {report}"))
}

fn keys(t: &serde_json::Value, kind: &str) -> Vec<(String, Vec<String>)> {
    t[kind]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let key: Vec<String> = d["key"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().to_string())
                .collect();
            let cols = d["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_string())
                .collect();
            (key.join(","), cols)
        })
        .collect()
}

#[tokio::test]
async fn corruptions_are_reported_by_key_and_column_and_repaired() {
    let env = Env::new("verify", FIXTURE);
    let task = env.task_file("[\"schema\", \"full\"]", "full.rows_per_chunk = 3\n");
    let task = task.to_str().unwrap();
    let out = dts(&["run", "--config", task]);
    assert!(out.status.success(), "{}", text(&out));

    // A fresh copy verifies clean: no false alarm from representation (tinyint/smallint,
    // unsigned/numeric, DATETIME(6)/timestamp(6), zero date/NULL, JSON/jsonb, BIT/bit).
    let (code, report, out) = verify(task, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(table(&report, "v")["rows"], 14, "{out}");
    assert!(
        table(&report, "v")["chunks"].as_u64().unwrap() >= 4,
        "{out}"
    );
    assert_eq!(table(&report, "logbook")["keyless"], true, "{out}");

    let db = &env.db;
    env.pg(&format!(
        "UPDATE {db}.v SET i = i + 1 WHERE id = 1;
         UPDATE {db}.v SET d = d + 0.0000000001 WHERE id = 2;
         UPDATE {db}.v SET dbl = '0.30000000000000004' WHERE id = 3;
         UPDATE {db}.v SET f = '0.10000001' WHERE id = 4;
         UPDATE {db}.v SET s = s || ' ' WHERE id = 5;
         UPDATE {db}.v SET b = set_byte(b, 7, get_byte(b, 7) # 1) WHERE id = 6;
         UPDATE {db}.v SET dt = dt + interval '1 microsecond' WHERE id = 7;
         UPDATE {db}.v SET j = jsonb_set(j, '{{b,0}}', '1.5') WHERE id = 8;
         UPDATE {db}.v SET t = t || 'x' WHERE id = 9;
         UPDATE {db}.v SET bt = B'11111' WHERE id = 10;
         DELETE FROM {db}.v WHERE id = 11;
         UPDATE {db}.v SET tm = tm + interval '1 second' WHERE id = 12;
         UPDATE {db}.v SET bu = bu - 1 WHERE id = 13;
         UPDATE {db}.v SET ts = NULL WHERE id = 14;
         INSERT INTO {db}.v (id, ti, i, bu, d, f, dbl, s, c)
           VALUES (1000, 0, 0, 0, 0, 0, 0, 'extra', 'x');
         UPDATE {db}.pair SET label = 'P4' WHERE g = 1 AND n = 4;
         INSERT INTO {db}.logbook SELECT * FROM {db}.logbook WHERE message = 'start';
         DELETE FROM {db}.logbook WHERE message IS NULL;"
    ));

    let (code, report, out) = verify(task, &[]);
    assert_eq!(code, 1, "{out}");
    let v = table(&report, "v");
    let mut different = keys(v, "different_rows");
    different.sort();
    let mut want: Vec<(String, Vec<String>)> = [
        ("1", "i"),
        ("2", "d"),
        ("3", "dbl"),
        ("4", "f"),
        ("5", "s"),
        ("6", "b"),
        ("7", "dt"),
        ("8", "j"),
        ("9", "t"),
        ("10", "bt"),
        ("12", "tm"),
        ("13", "bu"),
        ("14", "ts"),
    ]
    .iter()
    .map(|(k, c)| (k.to_string(), vec![c.to_string()]))
    .collect();
    want.sort();
    assert_eq!(different, want, "{out}");
    assert_eq!(
        keys(v, "missing_rows"),
        [("11".to_string(), vec![])],
        "{out}"
    );
    assert_eq!(
        keys(v, "extra_rows"),
        [("1000".to_string(), vec![])],
        "{out}"
    );
    assert_eq!(v["different"], 13, "{out}");
    let pair = table(&report, "pair");
    assert_eq!(
        keys(pair, "different_rows"),
        [("1,4".to_string(), vec!["label".to_string()])],
        "{out}"
    );
    let logbook = table(&report, "logbook");
    assert_eq!(
        (logbook["missing"].as_u64(), logbook["extra"].as_u64()),
        (Some(1), Some(1)),
        "{out}"
    );
    assert_eq!(
        keys(logbook, "extra_rows")[0].0,
        "'2024-01-01 00:00:00','start'",
        "{out}"
    );
    assert_eq!(keys(logbook, "missing_rows")[0].0, "NULL,NULL", "{out}");

    // A dry run writes the statements and changes nothing.
    let sql = env.dir.join("repair.sql");
    let sql_arg = sql.to_str().unwrap();
    let (code, _, out) = verify(task, &["--repair", "--dry-run", "--sql-file", sql_arg]);
    assert_eq!(code, 1, "{out}");
    let written = std::fs::read_to_string(&sql).unwrap();
    assert!(
        written.contains(&format!("DELETE FROM \"{db}\".\"v\" WHERE \"id\" = 1000;")),
        "{written}"
    );
    assert!(
        written.contains("BEGIN;") && written.contains("COMMIT;"),
        "{written}"
    );
    let (code, _, out) = verify(task, &[]);
    assert_eq!(code, 1, "a dry run changed the target: {out}");

    // Repair, then verify again: clean.
    let (code, report, out) = verify(task, &["--repair", "--sql-file", sql_arg]);
    assert_eq!(code, 0, "{out}");
    let r = &table(&report, "v")["repair"];
    assert_eq!(
        (
            r["inserted"].as_u64(),
            r["updated"].as_u64(),
            r["deleted"].as_u64()
        ),
        (Some(1), Some(13), Some(1)),
        "{out}"
    );
    let (code, report, out) = verify(task, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(table(&report, "logbook")["target_rows"], 4, "{out}");

    // A bad task file is exit 2.
    let bad = env.dir.join("bad.toml");
    std::fs::write(&bad, "nonsense = 1\n").unwrap();
    let out = dts(&["verify", "--config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

fn sorted_keys(t: &serde_json::Value, kind: &str) -> Vec<(String, Vec<String>)> {
    let mut k = keys(t, kind);
    k.sort();
    k
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, Vec<String>)> {
    let mut v: Vec<(String, Vec<String>)> = items
        .iter()
        .map(|(k, c)| (k.to_string(), vec![c.to_string()]))
        .collect();
    v.sort();
    v
}

const PG_FIXTURE: &str = include_str!("../../fixtures/postgres/torture.sql");

#[tokio::test]
async fn postgres_to_postgres_corruptions_are_reported_and_repaired() {
    let pg = dts_testkit::postgres();
    let source_db = dts_testkit::unique_name("vpg_src");
    pg.create_database(&source_db).unwrap();
    pg.exec_in(&source_db, PG_FIXTURE).unwrap();
    let target_db = dts_testkit::unique_name("vpg_dst");
    pg.create_database(&target_db).unwrap();
    let dir = std::env::temp_dir().join(format!("dts-test-{source_db}"));
    std::fs::create_dir_all(&dir).unwrap();
    let task = dir.join("task.toml");
    std::fs::write(
        &task,
        format!(
            "name = \"t\"\nmigration = [\"schema\", \"full\"]\nsource.url = \"{}\"\n\
             target.url = \"{}\"\nobjects.include = [\"tort\"]\nfull.rows_per_chunk = 3\n",
            pg.url_for(&source_db),
            pg.url_for(&target_db)
        ),
    )
    .unwrap();
    let task = task.to_str().unwrap();
    let out = dts(&["run", "--config", task]);
    assert!(out.status.success(), "{}", text(&out));

    // Every type of the torture fixture read on both sides the way the source reader reads
    // it: NaN and infinite numerics and dates, huge intervals, 100-bit varbits, arrays,
    // ranges, enums, domains, money, xml, oid, "char" — no false alarm.
    let (code, report, out) = verify(task, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(table(&report, "everything")["rows"], 36, "{out}");
    assert!(
        table(&report, "everything")["chunks"].as_u64().unwrap() >= 10,
        "{out}"
    );
    assert_eq!(table(&report, "keyless")["keyless"], true, "{out}");

    // One corruption per row and type family; triggers and foreign key actions off, so each
    // change is only the one made.
    pg.exec_in(
        &target_db,
        "SET session_replication_role = replica;
         UPDATE tort.everything SET n2 = n2 + 0.01 WHERE id = 1;
         UPDATE tort.everything SET ts = ts + interval '1 microsecond' WHERE id = 2;
         UPDATE tort.everything SET jb = '\"null\"' WHERE id = 3;
         UPDATE tort.everything SET f8 = '2.225073858507202e-308' WHERE id = 4;
         UPDATE tort.everything SET by = set_byte(by, 99999, get_byte(by, 99999) # 1) WHERE id = 5;
         UPDATE tort.everything SET f4 = '0' WHERE id = 6;
         UPDATE tort.everything SET n = n + 0.000000001 WHERE id = 7;
         UPDATE tort.everything SET t = t || ' ' WHERE id = 8;
         UPDATE tort.everything SET seq = seq + 1 WHERE id = 9;
         UPDATE tort.everything SET mood = 'happy' WHERE id = 10;
         UPDATE tort.everything SET made = made + interval '1 microsecond' WHERE id = 11;
         UPDATE tort.everything SET lbl = 'bulK' WHERE id = 12;
         UPDATE tort.everything SET ia = '{1}' WHERE id = 13;
         UPDATE tort.everything SET ip = '10.0.0.1' WHERE id = 14;
         UPDATE tort.everything SET iv = '1 day' WHERE id = 15;
         DELETE FROM tort.everything WHERE id = 16;
         INSERT INTO tort.everything (id, lbl) VALUES (1000, 'extra');
         DELETE FROM tort.parent WHERE id = 12;
         UPDATE tort.child SET payload = payload || ' ' WHERE a = 1 AND b = 'k1';
         INSERT INTO tort.keyless SELECT * FROM tort.keyless WHERE v = 'x';",
    )
    .unwrap();

    let (code, report, out) = verify(task, &[]);
    assert_eq!(code, 1, "{out}");
    let e = table(&report, "everything");
    assert_eq!(
        sorted_keys(e, "different_rows"),
        pairs(&[
            ("1", "n2"),
            ("2", "ts"),
            ("3", "jb"),
            ("4", "f8"),
            ("5", "by"),
            ("6", "f4"),
            ("7", "n"),
            ("8", "t"),
            ("9", "seq"),
            ("10", "mood"),
            ("11", "made"),
            ("12", "lbl"),
            ("13", "ia"),
            ("14", "ip"),
            ("15", "iv"),
        ]),
        "{out}"
    );
    assert_eq!(
        keys(e, "missing_rows"),
        [("16".to_string(), vec![])],
        "{out}"
    );
    assert_eq!(
        keys(e, "extra_rows"),
        [("1000".to_string(), vec![])],
        "{out}"
    );
    let parent = table(&report, "parent");
    assert_eq!(
        keys(parent, "missing_rows"),
        [("12".to_string(), vec![])],
        "{out}"
    );
    assert_eq!(
        keys(table(&report, "child"), "different_rows"),
        [("1,'k1'".to_string(), vec!["payload".to_string()])],
        "{out}"
    );
    let keyless = table(&report, "keyless");
    assert_eq!(
        (keyless["missing"].as_u64(), keyless["extra"].as_u64()),
        (Some(0), Some(1)),
        "{out}"
    );

    // Repair (the parent's identity is `GENERATED ALWAYS`), then verify again: clean.
    let sql = dir.join("repair.sql");
    let (code, report, out) = verify(task, &["--repair", "--sql-file", sql.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let r = &table(&report, "everything")["repair"];
    assert_eq!(
        (
            r["inserted"].as_u64(),
            r["updated"].as_u64(),
            r["deleted"].as_u64()
        ),
        (Some(1), Some(15), Some(1)),
        "{out}"
    );
    let (code, _, out) = verify(task, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        pg.query_in(&target_db, "SELECT count(*) FROM tort.keyless")
            .unwrap()
            .trim(),
        "4"
    );
}

#[tokio::test]
async fn full_verify_makes_the_run_fail_naming_the_differences() {
    let fixture = "CREATE TABLE a (id INT PRIMARY KEY, v VARCHAR(10));
        INSERT INTO a SELECT seq, CONCAT('v', seq) FROM seq_1_to_20;
        CREATE TABLE b (k INT PRIMARY KEY, d DECIMAL(10,4));
        INSERT INTO b SELECT seq, seq / 7 FROM seq_1_to_20;";
    let schema_full = "[\"schema\", \"full\"]";

    // A clean copy verifies, and the run says so.
    let env = Env::new("vfull_ok", fixture);
    let task = env.task_file(schema_full, "full.rows_per_chunk = 6\nfull.verify = true\n");
    let out = dts(&["run", "--config", task.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("verified: 40 rows in 2 tables"),
        "{}",
        text(&out)
    );

    // A target table kept from before the task (`conflicting_tables = "ignore"`) holds a
    // row the source does not: the run fails naming it, and the full load is not recorded
    // as done.
    let env = Env::new("vfull_bad", fixture);
    let db = &env.db;
    env.pg(&format!(
        "CREATE SCHEMA {db}; CREATE TABLE {db}.a (id integer PRIMARY KEY, v varchar(10));
         INSERT INTO {db}.a VALUES (1000, 'extra');"
    ));
    let task = env.task_file(
        schema_full,
        "full.rows_per_chunk = 6\nfull.verify = true\n[policy]\nconflicting_tables = \"ignore\"\n",
    );
    let task = task.to_str().unwrap();
    let out = dts(&["run", "--config", task]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not match the source after the full load")
            && err.contains(&format!("`{db}.a`: 0 missing, 1 extra, 0 different"))
            && err.contains("extra (id=1000)"),
        "{}",
        text(&out)
    );
    // Repaired, the task runs again: the copy has nothing left to do, the verification
    // passes and the task finishes.
    let (code, _, out) = verify(
        task,
        &[
            "--repair",
            "--sql-file",
            env.dir.join("r.sql").to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}");
    let out = dts(&["run", "--config", task]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("source and target match"),
        "{}",
        text(&out)
    );
}

/// A writer changing rows `1..=HOT` of `hot` (updates, deletes, inserts of new keys) until
/// stopped; rows above `HOT` and the table `cold` are never touched.
const HOT: u64 = 15_000;

struct Writer {
    stop: Arc<AtomicBool>,
    transactions: Arc<AtomicU64>,
    handle: tokio::task::JoinHandle<()>,
}

impl Writer {
    fn start(url: String) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let transactions = Arc::new(AtomicU64::new(0));
        let (s, t) = (stop.clone(), transactions.clone());
        let handle = tokio::spawn(async move {
            let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&url).unwrap())
                .await
                .unwrap();
            let mut x: u64 = 0x2545_f491_4f6c_dd1d;
            let mut next_id = 1_000_000u64;
            while !s.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let id = 1 + x % HOT;
                let sql = match x % 10 {
                    0 => format!("DELETE FROM hot WHERE id = {id}"),
                    1 | 2 => {
                        next_id += 1;
                        format!("INSERT INTO hot VALUES ({next_id}, {id}, 'new')")
                    }
                    _ => {
                        format!("UPDATE hot SET n = n + 1, label = CONCAT('u', n) WHERE id = {id}")
                    }
                };
                conn.query_drop(sql).await.unwrap();
                t.fetch_add(1, Ordering::Relaxed);
                // About 400 transactions a second: replication keeps up on a small machine.
                tokio::time::sleep(Duration::from_micros(2500)).await;
            }
        });
        Writer {
            stop,
            transactions,
            handle,
        }
    }

    async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.await.unwrap();
        self.transactions.load(Ordering::Relaxed)
    }
}

fn verify_async(task: &str) -> tokio::task::JoinHandle<(i32, serde_json::Value, String)> {
    let task = task.to_string();
    tokio::task::spawn_blocking(move || verify(&task, &[]))
}

#[tokio::test]
async fn verifying_during_replication_under_load_reports_only_real_differences() {
    let env = Env::new(
        "vlive",
        "CREATE TABLE hot (id BIGINT PRIMARY KEY, n INT NOT NULL, label VARCHAR(40));
         INSERT INTO hot SELECT seq, seq, CONCAT('h', seq) FROM seq_1_to_20000;
         CREATE TABLE cold (id INT PRIMARY KEY, v VARCHAR(20));
         INSERT INTO cold SELECT seq, CONCAT('c', seq) FROM seq_1_to_1000;",
    );
    let task = env.task_file(
        "[\"schema\", \"full\", \"incremental\"]",
        "full.rows_per_chunk = 2000\n",
    );
    let task = task.to_str().unwrap();
    let out = dts(&["run", "--config", task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));

    let mut replication = Command::new(env!("CARGO_BIN_EXE_dts"))
        .args(["run", "--config", task])
        .env("DTS_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let writer = Writer::start(env.mysql_url());
    // Replication applies the writer's changes.
    let started = Instant::now();
    while env.pg(&format!(
        "SELECT count(*) FROM {}.hot WHERE id > 1000000",
        env.db
    )) == "0"
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "nothing replicated"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Verifications while rows change: none reports a difference; the changes in flight
    // are re-checked once replication has applied past the source's position.
    let mut settled = 0;
    for _ in 0..3 {
        let (code, report, out) = verify_async(task).await.unwrap();
        assert_eq!(code, 0, "a false difference during the load: {out}");
        settled += table(&report, "hot")["settled"].as_u64().unwrap();
        if settled > 0 {
            break;
        }
    }
    assert!(settled > 0, "no verification saw a change in flight");

    // A real corruption made in the target during the load is still reported, and only it.
    let db = &env.db;
    env.pg(&format!(
        "UPDATE {db}.cold SET v = v || ' ' WHERE id = 7;
         UPDATE {db}.hot SET label = 'corrupt' WHERE id = 19999;"
    ));
    let (code, report, out) = verify_async(task).await.unwrap();
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        keys(table(&report, "cold"), "different_rows"),
        [("7".to_string(), vec!["v".to_string()])],
        "{out}"
    );
    let hot = table(&report, "hot");
    assert_eq!(
        keys(hot, "different_rows"),
        [("19999".to_string(), vec!["label".to_string()])],
        "{out}"
    );
    assert_eq!(
        (hot["missing"].as_u64(), hot["extra"].as_u64()),
        (Some(0), Some(0)),
        "{out}"
    );

    let transactions = writer.finish().await;
    assert!(transactions > 100, "{transactions}");
    replication.kill().unwrap();
    replication.wait().unwrap();
}

/// A task file copying `source_url`'s `include` database into `target_db` of the testkit's
/// MariaDB, the task named after the target database (every task's state lives in the
/// server's one `dts_meta`).
fn into_mysql_task(
    dir: &std::path::Path,
    source_url: &str,
    include: &str,
    target_db: &str,
) -> String {
    let text = format!(
        "name = \"{target_db}\"\nmigration = [\"schema\", \"full\"]\nsource.url = \"{source_url}\"\n\
         target.url = \"{}\"\nobjects.include = [\"{include}\"]\n\
         objects.rename_databases = {{ \"{include}\" = \"{target_db}\" }}\n\
         full.rows_per_chunk = 3\n",
        dts_testkit::mariadb().url(),
    );
    let path = dir.join("task.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

const MY_TORTURE: &str = include_str!("../../fixtures/mysql/torture.sql");

#[tokio::test]
async fn mysql_to_mysql_corruptions_are_reported_and_repaired() {
    let my = dts_testkit::mariadb();
    let source_db = my.create_unique_database("vmy_src").unwrap();
    my.exec_in(&source_db, MY_TORTURE).unwrap();
    let target_db = dts_testkit::unique_name("vmy_dst");
    let dir = std::env::temp_dir().join(format!("dts-test-{source_db}"));
    std::fs::create_dir_all(&dir).unwrap();
    let task = into_mysql_task(&dir, &my.url(), &source_db, &target_db);
    let task = task.as_str();
    let out = dts(&["run", "--config", task]);
    assert!(out.status.success(), "{}", text(&out));

    // Every type of the torture fixture (zero dates, TIME beyond a day, BIT(64), unsigned
    // BIGINT, DECIMAL(65,30), ENUM and SET, JSON, binary strings, four character sets) is
    // read on both sides by the same decoders: no false alarm.
    let (code, report, out) = verify(task, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(table(&report, "everything")["rows"], 4, "{out}");
    assert!(
        table(&report, "everything")["chunks"].as_u64().unwrap() >= 2,
        "{out}"
    );
    assert_eq!(table(&report, "keyless")["keyless"], true, "{out}");

    // Corruptions made directly in the target: values differing only in case or a trailing
    // space under case- and pad-insensitive collations, the last digit of a decimal, one
    // microsecond, one byte (`changed = changed` keeps the ON UPDATE column); a missing and
    // an extra row; a duplicated keyless row and one whose copy differs only in case.
    my.exec_in(
        &target_db,
        "SET foreign_key_checks = 0;
         UPDATE everything SET dt6 = dt6 + INTERVAL 1 MICROSECOND, changed = changed WHERE id = 0;
         UPDATE everything SET lb = x'FF00FF', changed = changed WHERE id = 1;
         UPDATE everything SET vb = 'a ', d65 = d65 * 2, changed = changed WHERE id = 2;
         UPDATE everything SET vc = 'a', changed = changed WHERE id = 3;
         INSERT INTO everything (id, changed) VALUES (7, '2024-01-01 00:00:00');
         UPDATE child SET note = 'B' WHERE parent_id = 1 AND seq = 2;
         DELETE FROM pairs WHERE a = 2 AND b = 'x';
         INSERT INTO keyless VALUES ('one', 2);
         UPDATE keyless SET k = 'DUP' WHERE k = 'dup' LIMIT 1;",
    )
    .unwrap();

    let (code, report, out) = verify(task, &[]);
    assert_eq!(code, 1, "{out}");
    let e = table(&report, "everything");
    assert_eq!(
        keys(e, "different_rows")
            .into_iter()
            .map(|(k, mut c)| {
                c.sort();
                (k, c)
            })
            .collect::<Vec<_>>(),
        [
            ("0".to_string(), vec!["dt6".to_string()]),
            ("1".to_string(), vec!["lb".to_string()]),
            ("2".to_string(), vec!["d65".to_string(), "vb".to_string()]),
            ("3".to_string(), vec!["vc".to_string()]),
        ],
        "{out}"
    );
    assert_eq!(keys(e, "extra_rows"), [("7".to_string(), vec![])], "{out}");
    assert_eq!(
        keys(table(&report, "child"), "different_rows"),
        [("1,2".to_string(), vec!["note".to_string()])],
        "{out}"
    );
    assert_eq!(
        keys(table(&report, "pairs"), "missing_rows"),
        [("2,'x'".to_string(), vec![])],
        "{out}"
    );
    let keyless = table(&report, "keyless");
    assert_eq!(
        (keyless["missing"].as_u64(), keyless["extra"].as_u64()),
        (Some(1), Some(2)),
        "{out}"
    );

    // A dry run writes MySQL statements and changes nothing.
    let sql = dir.join("repair.sql");
    let sql_arg = sql.to_str().unwrap();
    let (code, _, out) = verify(task, &["--repair", "--dry-run", "--sql-file", sql_arg]);
    assert_eq!(code, 1, "{out}");
    let written = std::fs::read_to_string(&sql).unwrap();
    assert!(
        written.contains(&format!(
            "DELETE FROM `{target_db}`.`everything` WHERE `id` = 7;"
        )) && written.contains("START TRANSACTION;")
            && written.contains("SET SESSION foreign_key_checks = 0;"),
        "{written}"
    );
    let (code, _, out) = verify(task, &[]);
    assert_eq!(code, 1, "a dry run changed the target: {out}");

    // Repair, then verify again: clean, the keyless table's rows as in the source.
    let (code, report, out) = verify(task, &["--repair", "--sql-file", sql_arg]);
    assert_eq!(code, 0, "{out}");
    let r = &table(&report, "everything")["repair"];
    assert_eq!(
        (
            r["inserted"].as_u64(),
            r["updated"].as_u64(),
            r["deleted"].as_u64()
        ),
        (Some(0), Some(4), Some(1)),
        "{out}"
    );
    let (code, _, out) = verify(task, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        my.query_in(
            &target_db,
            "SELECT GROUP_CONCAT(CONCAT(IFNULL(k, 'NULL'), ':', IFNULL(n, 'NULL')) \
             ORDER BY k, n SEPARATOR ' ') FROM keyless"
        )
        .unwrap()
        .trim(),
        "NULL:NULL NULL:NULL dup:1 dup:1 one:2"
    );
}

const PG_TORTURE_TO_MYSQL: &str = include_str!("../../fixtures/postgres/torture_to_mysql.sql");

#[tokio::test]
async fn postgres_to_mysql_corruptions_are_reported_and_repaired() {
    let pg = dts_testkit::postgres();
    let my = dts_testkit::mariadb();
    let source_db = dts_testkit::unique_name("vpgmy_src");
    pg.create_database(&source_db).unwrap();
    pg.exec_in(&source_db, PG_TORTURE_TO_MYSQL).unwrap();
    let target_db = dts_testkit::unique_name("vpgmy_dst");
    let dir = std::env::temp_dir().join(format!("dts-test-{source_db}"));
    std::fs::create_dir_all(&dir).unwrap();
    let task = into_mysql_task(&dir, &pg.url_for(&source_db), "tort", &target_db);
    let task = task.as_str();
    let out = dts(&["run", "--config", task]);
    assert!(out.status.success(), "{}", text(&out));

    // The mapped values read back equal: booleans in TINYINT(1), timestamptz as UTC
    // DATETIME, numeric with its scale, JSON and arrays as text checked by json_valid,
    // uuids as text (one the key), bit strings, intervals, money and the other text forms.
    let (code, report, out) = verify(task, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(table(&report, "misc")["rows"], 34, "{out}");
    assert!(
        table(&report, "misc")["chunks"].as_u64().unwrap() >= 10,
        "{out}"
    );
    assert_eq!(table(&report, "keyless")["keyless"], true, "{out}");

    my.exec_in(
        &target_db,
        "SET foreign_key_checks = 0;
         UPDATE texts SET nm = 'a' WHERE id = 2;
         UPDATE texts SET vc = 'ab  ' WHERE id = 8;
         UPDATE texts SET big = 'X' WHERE id = 7;
         UPDATE numbers SET b = 1 WHERE id = 1;
         UPDATE numbers SET n2 = n2 + 0.01 WHERE id = 4;
         UPDATE numbers SET f8 = 0.30000000000000004 WHERE id = 7;
         UPDATE times SET tstz = tstz + INTERVAL 1 SECOND WHERE id = 1;
         UPDATE misc SET jb = '{\"k\": 1}' WHERE id = 'ffffffff-ffff-ffff-ffff-ffffffffffff';
         DELETE FROM misc WHERE id = '00000000-0000-0000-0000-000000000000';
         INSERT INTO parent (id, code) VALUES (5000, 'extra');
         INSERT INTO keyless SELECT * FROM keyless WHERE v = 'dup' LIMIT 1;
         UPDATE keyless SET v = 'X' WHERE v = 'x';",
    )
    .unwrap();

    let (code, report, out) = verify(task, &[]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        sorted_keys(table(&report, "texts"), "different_rows"),
        pairs(&[("2", "nm"), ("7", "big"), ("8", "vc")]),
        "{out}"
    );
    assert_eq!(
        sorted_keys(table(&report, "numbers"), "different_rows"),
        pairs(&[("1", "b"), ("4", "n2"), ("7", "f8")]),
        "{out}"
    );
    assert_eq!(
        keys(table(&report, "times"), "different_rows"),
        pairs(&[("1", "tstz")]),
        "{out}"
    );
    let misc = table(&report, "misc");
    assert_eq!(
        keys(misc, "different_rows"),
        pairs(&[("'ffffffff-ffff-ffff-ffff-ffffffffffff'", "jb")]),
        "{out}"
    );
    assert_eq!(
        keys(misc, "missing_rows"),
        [("'00000000-0000-0000-0000-000000000000'".to_string(), vec![])],
        "{out}"
    );
    assert_eq!(
        keys(table(&report, "parent"), "extra_rows"),
        [("5000".to_string(), vec![])],
        "{out}"
    );
    let keyless = table(&report, "keyless");
    assert_eq!(
        (keyless["missing"].as_u64(), keyless["extra"].as_u64()),
        (Some(1), Some(2)),
        "{out}"
    );

    let sql = dir.join("repair.sql");
    let (code, _, out) = verify(task, &["--repair", "--sql-file", sql.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let (code, _, out) = verify(task, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        my.query_in(
            &target_db,
            "SELECT GROUP_CONCAT(IFNULL(v, 'NULL') ORDER BY v SEPARATOR ' ') FROM keyless"
        )
        .unwrap()
        .trim(),
        "NULL dup dup x"
    );
}
