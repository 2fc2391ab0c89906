//! Incremental migration end to end, through the `dts` command, on real servers: a mixed
//! workload during and after the full load, SIGKILL under load, and DDL during replication.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{assert_table_equal, dts, numbers_table, source_tables, text, Env};
use mysql_async::prelude::*;

const FIXTURE: &str = include_str!("../../fixtures/mysql/shop.sql");

const ALL: &str = "[\"schema\", \"full\", \"incremental\"]";

/// A deterministic pseudo-random sequence (xorshift), so failures can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A writer running a mixed workload against the source until stopped: single-row inserts,
/// updates and deletes, primary-key changes, multi-statement transactions, a large
/// transaction now and then, new rows of every column type, and duplicate rows in a table
/// without a key.
struct Workload {
    stop: Arc<AtomicBool>,
    transactions: Arc<AtomicU64>,
    handle: tokio::task::JoinHandle<()>,
}

impl Workload {
    fn start(url: String, seed: u64) -> Workload {
        let stop = Arc::new(AtomicBool::new(false));
        let transactions = Arc::new(AtomicU64::new(0));
        let (s, t) = (stop.clone(), transactions.clone());
        let handle = tokio::spawn(async move {
            let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&url).unwrap())
                .await
                .unwrap();
            let mut rng = Rng(seed);
            let mut next_id: u64 = 10_000_000;
            while !s.load(Ordering::Relaxed) {
                let n = t.fetch_add(1, Ordering::Relaxed);
                let mut tx = conn
                    .start_transaction(mysql_async::TxOpts::default())
                    .await
                    .unwrap();
                let statements = if n % 50 == 49 { 8 } else { 1 };
                for _ in 0..statements {
                    let id = 1 + rng.below(50_000);
                    let sql = match rng.below(12) {
                        0..=3 => {
                            next_id += 1;
                            format!(
                                "INSERT INTO numbers VALUES ({g}, {next_id}, 'ins-{next_id}', \
                                 {next_id}.5, NOW(6), UNHEX(MD5({next_id})))",
                                g = next_id % 7
                            )
                        }
                        4..=6 => format!(
                            "UPDATE numbers SET label = CONCAT(label, '+'), amount = amount + 1, \
                             payload = NULL WHERE id = {id}"
                        ),
                        7 => format!("DELETE FROM numbers WHERE id = {id}"),
                        8 => {
                            next_id += 1;
                            format!("UPDATE numbers SET id = {next_id} WHERE id = {id}")
                        }
                        9 => "INSERT INTO all_types (c_tinyint, c_tinyint_u, c_bool, \
                              c_smallint, c_smallint_u, c_mediumint, c_mediumint_u, c_int, \
                              c_int_u, c_bigint, c_bigint_u, c_decimal, c_decimal_0, c_float, \
                              c_double, c_bit1, c_bit64, c_char, c_varchar, c_latin1, \
                              c_tinytext, c_text, c_mediumtext, c_longtext, c_binary, \
                              c_varbinary, c_tinyblob, c_blob, c_mediumblob, c_longblob, \
                              c_date, c_datetime, c_datetime6, c_timestamp, c_timestamp6, \
                              c_time, c_time6, c_year, c_enum, c_set, c_json) \
                              SELECT c_tinyint, c_tinyint_u, c_bool, c_smallint, c_smallint_u, \
                              c_mediumint, c_mediumint_u, c_int, c_int_u, c_bigint, c_bigint_u, \
                              c_decimal, c_decimal_0, c_float, c_double, c_bit1, c_bit64, c_char, \
                              c_varchar, c_latin1, c_tinytext, c_text, c_mediumtext, c_longtext, \
                              c_binary, c_varbinary, c_tinyblob, c_blob, c_mediumblob, \
                              c_longblob, c_date, c_datetime, c_datetime6, c_timestamp, \
                              c_timestamp6, c_time, c_time6, c_year, c_enum, c_set, c_json \
                              FROM all_types WHERE id <= 3"
                            .to_string(),
                        10 => "INSERT INTO audit_log VALUES ('2024-01-01 00:00:00', 'dup')"
                            .to_string(),
                        _ => "DELETE FROM audit_log WHERE message = 'dup' LIMIT 1".to_string(),
                    };
                    tx.query_drop(sql).await.unwrap();
                }
                if n % 400 == 399 {
                    // A large transaction: thousands of rows in one commit.
                    next_id += 5_000;
                    tx.query_drop(format!(
                        "INSERT INTO numbers SELECT seq % 7, {base} + seq, 'bulk', seq, NOW(6), NULL \
                         FROM seq_1_to_5000",
                        base = next_id - 5_000
                    ))
                    .await
                    .unwrap();
                }
                tx.commit().await.unwrap();
            }
        });
        Workload {
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

fn spawn_dts(task: &str, until_caught_up: bool) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dts"));
    cmd.args(["run", "--config", task]);
    if until_caught_up {
        cmd.arg("--until-caught-up");
    }
    cmd.stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

async fn assert_all_tables_equal(env: &Env) {
    for t in source_tables(env) {
        assert_table_equal(env, &t, &env.db).await;
    }
}

#[tokio::test]
async fn mixed_workload_during_and_after_the_full_load_converges() {
    let env = Env::new("inc_mixed", &(FIXTURE.to_string() + &numbers_table(50_000)));
    let task = env.task_file(ALL, "full.rows_per_chunk = 5000\n");
    let task = task.to_str().unwrap().to_string();
    let workload = Workload::start(env.mysql_url(), 42);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Full load and catch-up while the workload runs.
    let t = task.clone();
    let out =
        tokio::task::spawn_blocking(move || dts(&["run", "--config", &t, "--until-caught-up"]))
            .await
            .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // More changes after the full load (at least 100 transactions in all, however loaded the
    // machine is), then a final catch-up.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while workload.transactions.load(Ordering::Relaxed) <= 100
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let written = workload.finish().await;
    assert!(
        written > 100,
        "the workload wrote only {written} transactions"
    );
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_all_tables_equal(&env).await;
}

#[tokio::test]
async fn sigkill_five_times_under_load_then_catch_up_converges() {
    let env = Env::new("inc_kill", &(FIXTURE.to_string() + &numbers_table(30_000)));
    let task = env.task_file(ALL, "full.rows_per_chunk = 3000\n");
    let task = task.to_str().unwrap().to_string();
    let workload = Workload::start(env.mysql_url(), 7);
    let mut rng = Rng(1234);
    for _ in 0..5 {
        let mut child = spawn_dts(&task, false);
        let wait = Duration::from_millis(400 + rng.below(1600));
        let started = Instant::now();
        while started.elapsed() < wait {
            if child.try_wait().unwrap().is_some() {
                let out = child.wait_with_output().unwrap();
                panic!("dts exited while it should be replicating: {}", text(&out));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let written = workload.finish().await;
    assert!(
        written > 100,
        "the workload wrote only {written} transactions"
    );
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    eprintln!("{}", text(&out));
    assert_all_tables_equal(&env).await;
}

#[tokio::test]
async fn ddl_during_replication_is_applied_in_order() {
    let env = Env::new(
        "inc_ddl",
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL, price DECIMAL(8,2));
         INSERT INTO items VALUES (1, 'a', 1.50), (2, 'b', NULL);",
    );
    let task = env.task_file(ALL, "");
    let task = task.to_str().unwrap().to_string();
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));

    // Each schema change, followed by rows that use it.
    env.my(
        "CREATE TABLE added (id INT PRIMARY KEY AUTO_INCREMENT, a VARCHAR(10), b INT);
         INSERT INTO added (a, b) VALUES ('one', 1), ('two', 2);
         ALTER TABLE added ADD COLUMN c INT NOT NULL DEFAULT 5;
         INSERT INTO added (a, b) VALUES ('three', 3);
         ALTER TABLE added MODIFY c BIGINT NOT NULL DEFAULT 5;
         INSERT INTO added (a, b, c) VALUES ('big', 4, 9000000000);
         ALTER TABLE added CHANGE c d BIGINT NOT NULL DEFAULT 6;
         INSERT INTO added (a, b) VALUES ('six', 6);
         ALTER TABLE added RENAME COLUMN d TO e;
         ALTER TABLE added ALTER e SET DEFAULT 7;
         INSERT INTO added (a, b) VALUES ('seven', 7);
         ALTER TABLE added ADD INDEX added_b (b);
         ALTER TABLE added ADD UNIQUE KEY added_a (a);
         INSERT INTO added (a, b) VALUES ('eight', 8);
         ALTER TABLE added DROP INDEX added_b;
         ALTER TABLE added DROP COLUMN b;
         INSERT INTO added (a) VALUES ('nine');
         ALTER TABLE items ADD COLUMN note TEXT AFTER name;
         UPDATE items SET note = 'noted', price = 2.00 WHERE id = 1;
         INSERT INTO items VALUES (3, 'c', 'new', 3.25);
         CREATE TABLE scratch (id INT PRIMARY KEY);
         INSERT INTO scratch VALUES (1), (2);
         TRUNCATE TABLE scratch;
         INSERT INTO scratch VALUES (3);
         RENAME TABLE scratch TO kept;
         INSERT INTO kept VALUES (4);
         CREATE TABLE dropped (id INT PRIMARY KEY);
         INSERT INTO dropped VALUES (1);
         DROP TABLE dropped;",
    );
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    for t in ["items", "added", "kept"] {
        assert_table_equal(&env, t, &env.db).await;
    }
    let s = &env.db;
    assert_eq!(
        env.pg(&format!(
            "SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position) \
             FROM information_schema.columns WHERE table_schema = '{s}' AND table_name = 'added'"
        )),
        "id integer, a character varying, e bigint",
        "columns of `added` after the DDL"
    );
    assert_eq!(
        env.pg(&format!(
            "SELECT column_default FROM information_schema.columns \
             WHERE table_schema = '{s}' AND table_name = 'added' AND column_name = 'e'"
        )),
        "7"
    );
    let indexes = env.pg(&format!(
        "SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes \
         WHERE schemaname = '{s}' AND tablename = 'added'"
    ));
    assert!(indexes.contains("added_a"), "{indexes}");
    assert!(!indexes.contains("added_b"), "{indexes}");
    for gone in ["scratch", "dropped"] {
        assert_eq!(
            env.pg(&format!(
                "SELECT count(*) FROM pg_tables WHERE schemaname = '{s}' AND tablename = '{gone}'"
            )),
            "0",
            "`{gone}` still exists"
        );
    }

    // DDL that cannot be translated stops the task with an error naming the table, and
    // the position stays before it: running again stops at the same statement.
    env.my("ALTER TABLE items ADD COLUMN spot POINT");
    for _ in 0..2 {
        let out = dts(&["run", "--config", &task, "--until-caught-up"]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("items"), "{}", text(&out));
    }
}

/// Sends SIGTERM to a child process.
fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            started.elapsed() < limit,
            "dts did not exit within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn lost_connections_are_retried_and_sigterm_stops_cleanly() {
    let env = Env::new("inc_conn", &(FIXTURE.to_string() + &numbers_table(5_000)));
    let task = env.task_file(ALL, "");
    let task = task.to_str().unwrap().to_string();
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));

    let workload = Workload::start(env.mysql_url(), 99);
    let mut child = spawn_dts(&task, false);
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(800)).await;
        // Drop the binlog reader's connection on the source, and the apply connection on
        // the target.
        let reader: String =
            env.pg("SELECT connection_id FROM dts_meta.cdc_source WHERE task = 't'");
        let _ = dts_testkit::mariadb().exec(&format!("KILL CONNECTION {reader}"));
        env.pg(&format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = '{}' AND pid <> pg_backend_pid() AND application_name <> 'psql'",
            env.target_db
        ));
        assert!(
            child.try_wait().unwrap().is_none(),
            "dts gave up after a lost connection"
        );
    }
    // Replication goes on after the reconnections: rows written after the last lost
    // connection arrive while the same process runs.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let source_max = env.my("SELECT MAX(id) FROM numbers");
    let started = Instant::now();
    loop {
        let target_max = env.pg(&format!("SELECT max(id) FROM {}.numbers", env.db));
        if target_max.parse::<i64>().unwrap_or(0) >= source_max.parse::<i64>().unwrap() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "replication did not resume: target max id {target_max}, source {source_max}"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "dts gave up after a lost connection"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let written = workload.finish().await;
    assert!(written > 50, "{written}");
    terminate(&child);
    let status = wait_exit(&mut child, Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0), "SIGTERM did not stop dts cleanly");
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_all_tables_equal(&env).await;
}

#[tokio::test]
async fn an_unreachable_source_fails_clearly_after_the_retry_window() {
    // A server of its own, so it can be stopped.
    let mut source = tokio::task::spawn_blocking(dts_testkit::MariaDb::start_owned)
        .await
        .unwrap()
        .unwrap();
    source.create_database("shop").unwrap();
    source.exec_in("shop", FIXTURE).unwrap();
    let target_db = dts_testkit::unique_name("inc_window");
    dts_testkit::postgres().create_database(&target_db).unwrap();
    let dir = std::env::temp_dir().join(format!("dts-test-{target_db}"));
    std::fs::create_dir_all(&dir).unwrap();
    let task = dir.join("task.toml");
    std::fs::write(
        &task,
        format!(
            "name = \"w\"\nmigration = {ALL}\nsource.url = \"{}\"\ntarget.url = \"{}\"\n\
             objects.include = [\"shop\"]\nincremental.retry_window_seconds = 3\n",
            source.url(),
            dts_testkit::postgres().url_for(&target_db)
        ),
    )
    .unwrap();
    let task = task.to_str().unwrap().to_string();
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));

    let mut child = spawn_dts(&task, false);
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::task::spawn_blocking(move || {
        source.stop().unwrap();
        source
    })
    .await
    .unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(60)).await;
    assert_eq!(status.code(), Some(1));
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("connection"), "{}", text(&out));
}

#[tokio::test]
async fn truncation_is_replicated_only_when_the_task_replicates_it() {
    // A task that replicates inserts but not truncation keeps the rows a source TRUNCATE
    // removed; one that replicates everything follows it.
    let sql = "CREATE TABLE kept (id INT PRIMARY KEY); INSERT INTO kept VALUES (1), (2);";
    for (operations, expected) in [
        ("[\"insert\", \"update\", \"delete\", \"ddl\"]", "1,2,3"),
        (
            "[\"insert\", \"update\", \"delete\", \"truncate\", \"ddl\"]",
            "3",
        ),
    ] {
        let env = Env::new("inc_trunc", sql);
        let task = env.task_file(ALL, &format!("incremental.operations = {operations}\n"));
        let task = task.to_str().unwrap().to_string();
        let out = dts(&["run", "--config", &task, "--until-caught-up"]);
        assert!(out.status.success(), "{}", text(&out));
        env.my("TRUNCATE TABLE kept; INSERT INTO kept VALUES (3);");
        let out = dts(&["run", "--config", &task, "--until-caught-up"]);
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(
            env.pg(&format!(
                "SELECT string_agg(id::text, ',' ORDER BY id) FROM {}.kept",
                env.db
            )),
            expected,
            "operations {operations}"
        );
    }
}

#[tokio::test]
async fn a_transaction_the_source_rolled_back_is_not_applied() {
    // A rolled-back transaction that also changed a non-transactional (MyISAM) table: its
    // InnoDB rows never happened on the source and must not reach the target. MariaDB 10.11
    // with binlog_format=ROW logs only the MyISAM rows, as a group of their own; servers that
    // log the whole transaction end it with ROLLBACK, which the binlog reader delivers as
    // `Change::Rollback` and the engine drops (unit tests on constructed events cover that).
    let sql = "CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO t VALUES (1);
               CREATE TABLE log_m (id INT) ENGINE=MyISAM;";
    let env = Env::new("inc_rollback", sql);
    let task = env.task_file(ALL, &format!("objects.exclude = [\"{}.log_m\"]\n", env.db));
    let task = task.to_str().unwrap().to_string();
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    env.my(
        "BEGIN; INSERT INTO t VALUES (2); INSERT INTO log_m VALUES (2); UPDATE t SET id = 10 \
         WHERE id = 1; ROLLBACK; INSERT INTO t VALUES (3);",
    );
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(env.my("SELECT GROUP_CONCAT(id ORDER BY id) FROM t"), "1,3");
    assert_eq!(
        env.pg(&format!(
            "SELECT string_agg(id::text, ',' ORDER BY id) FROM {}.t",
            env.db
        )),
        "1,3"
    );
}

#[tokio::test]
async fn hostile_comments_and_defaults_stay_literals_whatever_the_target_session_says() {
    // A source comment or default holding `\'` must not end a literal in the target and run
    // the rest as SQL, even where the target's sessions start with
    // standard_conforming_strings = off (where '\'' is an escaped quote).
    let env = Env::new("inc_hostile", "CREATE TABLE victim (id INT PRIMARY KEY);");
    dts_testkit::postgres()
        .exec(&format!(
            "ALTER DATABASE {} SET standard_conforming_strings = off",
            env.target_db
        ))
        .unwrap();
    let task = env.task_file(ALL, "");
    let task = task.to_str().unwrap().to_string();
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    let hostile = r"x\'; DROP TABLE victim; --";
    let quoted = hostile.replace('\\', "\\\\").replace('\'', "\\'");
    env.my(&format!(
        "CREATE TABLE notes (id INT PRIMARY KEY, body VARCHAR(100) DEFAULT '{quoted}' \
         COMMENT '{quoted}') COMMENT '{quoted}'; INSERT INTO notes (id) VALUES (1);"
    ));
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    let s = &env.db;
    assert_eq!(
        env.pg(&format!("SELECT to_regclass('{s}.victim') IS NOT NULL")),
        "t",
        "the victim table survives"
    );
    assert_eq!(env.pg(&format!("SELECT body FROM {s}.notes")), hostile);
    assert_eq!(
        env.pg(&format!("SELECT obj_description('{s}.notes'::regclass)")),
        hostile
    );
    assert_eq!(
        env.pg(&format!("SELECT col_description('{s}.notes'::regclass, 2)")),
        hostile
    );
}
