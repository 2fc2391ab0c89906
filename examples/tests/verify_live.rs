//! Verification beside replication, end to end on real servers, MySQL → PostgreSQL and
//! PostgreSQL → PostgreSQL: `full.verify = true` on an incremental task verifies the copied
//! tables while replication runs (and fails naming a difference that persists); a
//! replicating `dts run` with `incremental.verify_sample` compares sampled applied rows
//! under a write load and reports exactly the rows the target changed by itself (an
//! `ALWAYS` trigger on the target stands for an apply that writes a wrong value), through
//! the log and `dts status`; `dts verify --repair` while the task replicates repairs
//! corruptions beside the apply under a write load on the same rows, after which the apply
//! goes on, catches up and the tables compare equal value for value (into a MySQL target it
//! is refused, naming why).
//!
//! `cargo test -p dts-examples --test verify_live`

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{dts, text, Env};
use mysql_async::prelude::*;

/// Rows `1..=HOT` of `hot` are updated and deleted by the writer; it inserts new keys
/// above `NEW_KEYS`.
const HOT: u64 = 2_000;
const NEW_KEYS: u64 = 1_000_000;

/// The statement the writer runs for the draw `x`.
fn write_statement(table: &str, x: u64, next_id: &mut u64, mysql: bool) -> String {
    let id = 1 + x % HOT;
    match x % 10 {
        0 => format!("DELETE FROM {table} WHERE id = {id}"),
        1 | 2 => {
            *next_id += 1;
            format!("INSERT INTO {table} VALUES ({next_id}, {id}, 'new')")
        }
        _ if mysql => {
            format!("UPDATE {table} SET n = n + 1, label = CONCAT('u', n) WHERE id = {id}")
        }
        _ => format!("UPDATE {table} SET n = n + 1, label = 'u' || n WHERE id = {id}"),
    }
}

/// A writer of single-statement transactions, about 300 a second, until finished.
struct Writer {
    stop: Arc<AtomicBool>,
    transactions: Arc<AtomicU64>,
    handle: tokio::task::JoinHandle<()>,
}

impl Writer {
    fn mysql(url: String) -> Writer {
        Self::start(move |stop, count| async move {
            let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&url).unwrap())
                .await
                .unwrap();
            let (mut x, mut next_id) = (0x2545_f491_4f6c_dd1du64, NEW_KEYS);
            while !stop.load(Ordering::Relaxed) {
                x = xorshift(x);
                let sql = write_statement("hot", x, &mut next_id, true);
                conn.query_drop(sql).await.unwrap();
                count.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_micros(3000)).await;
            }
        })
    }

    fn postgres(url: String) -> Writer {
        Self::start(move |stop, count| async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            let (mut x, mut next_id) = (0x2545_f491_4f6c_dd1du64, NEW_KEYS);
            while !stop.load(Ordering::Relaxed) {
                x = xorshift(x);
                let sql = write_statement("live.hot", x, &mut next_id, false);
                client.batch_execute(&sql).await.unwrap();
                count.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_micros(3000)).await;
            }
        })
    }

    fn start<F, Fut>(body: F) -> Writer
    where
        F: FnOnce(Arc<AtomicBool>, Arc<AtomicU64>) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let transactions = Arc::new(AtomicU64::new(0));
        let handle = tokio::spawn(body(stop.clone(), transactions.clone()));
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

/// The text of a log without its terminal colours.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// `dts status --json` of the task.
fn status(task: &str) -> serde_json::Value {
    let out = dts(&["status", "--config", task, "--json"]);
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// A replicating `dts run` whose log goes to `log`.
fn replicate(task: &str, log: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_dts"))
        .args(["run", "--config", task])
        .env("DTS_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// The target's own corruption of the rows the apply writes: an `ALWAYS` trigger (it fires
/// under `session_replication_role = replica` too) appends `!` to the label of every new
/// key divisible by ten.
fn corrupting_trigger(schema: &str) -> String {
    format!(
        "CREATE FUNCTION {schema}.corrupt() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.id > {NEW_KEYS} AND NEW.id % 10 = 0 THEN NEW.label := NEW.label || '!'; END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER corrupt BEFORE INSERT OR UPDATE ON {schema}.hot
           FOR EACH ROW EXECUTE FUNCTION {schema}.corrupt();
         ALTER TABLE {schema}.hot ENABLE ALWAYS TRIGGER corrupt;"
    )
}

/// Runs the sampled verification of a replicating task under a write load and checks that
/// it reports the corrupted rows, and only them.
async fn sampled_verification_reports_only_corrupted_rows(
    task: &str,
    log: &std::path::Path,
    writer: Writer,
) {
    let mut run = replicate(task, log);
    let started = Instant::now();
    let sampled = loop {
        let s = status(task);
        let sampled = s["record"]["progress"]["sampled"].clone();
        if sampled["rows"].as_u64().unwrap_or(0) >= 300
            && sampled["differences"].as_u64().unwrap_or(0) >= 3
        {
            break sampled;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the sample did not find the corrupted rows: {s}\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    eprintln!("published: {sampled}");
    let out = dts(&["status", "--config", task]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("sampled verification: "),
        "{}",
        text(&out)
    );
    let transactions = writer.finish().await;
    assert!(transactions > 300, "{transactions}");
    let stopped = dts(&["stop", "--config", task]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    run.wait().unwrap();

    // Every difference reported is a corrupted row (a new key divisible by ten, its label),
    // in the status and in the log; none is a change that was in flight.
    for d in sampled["last"].as_array().unwrap() {
        let d = d.as_str().unwrap();
        assert!(
            d.starts_with("different `") && d.ends_with("0) in label"),
            "{d}"
        );
    }
    let log = strip_ansi(&std::fs::read_to_string(log).unwrap());
    let reported: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("sampled verification: the target row differs"))
        .collect();
    assert!(reported.len() >= 3, "{log}");
    for line in &reported {
        let key = line
            .split("key=id=")
            .nth(1)
            .and_then(|k| k.split_whitespace().next())
            .unwrap_or_else(|| panic!("no key in {line}"));
        let id: u64 = key.parse().unwrap();
        assert!(id > NEW_KEYS && id % 10 == 0, "a false difference: {line}");
        assert!(line.contains("columns=label"), "{line}");
    }
    assert!(
        sampled["rows"].as_u64().unwrap() > sampled["differences"].as_u64().unwrap() * 5,
        "{sampled}"
    );
}

const MYSQL_FIXTURE: &str = "
CREATE TABLE hot (id BIGINT PRIMARY KEY, n INT NOT NULL, label VARCHAR(40));
INSERT INTO hot SELECT seq, seq, CONCAT('h', seq) FROM seq_1_to_2000;
CREATE TABLE cold (id INT PRIMARY KEY, v VARCHAR(20));
INSERT INTO cold SELECT seq, CONCAT('c', seq) FROM seq_1_to_500;";

const SAMPLE_OPTIONS: &str = "incremental.verify_sample = 0.5\n\
     incremental.verify_max_rows_per_second = 300\nfull.verify = true\n";

#[tokio::test]
async fn mysql_to_postgres_verifies_beside_replication() {
    let env = Env::new("vsample", MYSQL_FIXTURE);
    let task = env.task_file("[\"schema\", \"full\", \"incremental\"]", SAMPLE_OPTIONS);
    let task = task.to_str().unwrap();
    // The full load's tables verify while replication runs, then the run stops caught up.
    let out = dts(&["run", "--config", task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("verified {}.hot: 2000 rows match", env.db)),
        "{}",
        text(&out)
    );

    env.pg(&corrupting_trigger(&env.db));
    let writer = Writer::mysql(env.mysql_url());
    sampled_verification_reports_only_corrupted_rows(task, &env.dir.join("run.log"), writer).await;
}

#[tokio::test]
async fn postgres_to_postgres_verifies_beside_replication() {
    let pg = dts_testkit::postgres();
    let source_db = dts_testkit::unique_name("vsample_src");
    pg.create_database(&source_db).unwrap();
    pg.exec_in(
        &source_db,
        "CREATE SCHEMA live;
         CREATE TABLE live.hot (id bigint PRIMARY KEY, n integer NOT NULL, label text);
         INSERT INTO live.hot SELECT g, g, 'h' || g FROM generate_series(1, 2000) g;
         CREATE TABLE live.cold (id integer PRIMARY KEY, v text);
         INSERT INTO live.cold SELECT g, 'c' || g FROM generate_series(1, 500) g;",
    )
    .unwrap();
    let target_db = dts_testkit::unique_name("vsample_dst");
    pg.create_database(&target_db).unwrap();
    let dir = std::env::temp_dir().join(format!("dts-test-{source_db}"));
    std::fs::create_dir_all(&dir).unwrap();
    let task = dir.join("task.toml");
    std::fs::write(
        &task,
        format!(
            "name = \"t\"\nmigration = [\"schema\", \"full\", \"incremental\"]\n\
             source.url = \"{}\"\ntarget.url = \"{}\"\nobjects.include = [\"live\"]\n\
             {SAMPLE_OPTIONS}",
            pg.url_for(&source_db),
            pg.url_for(&target_db)
        ),
    )
    .unwrap();
    let task = task.to_str().unwrap();
    let out = dts(&["run", "--config", task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("verified live.hot: 2000 rows match"),
        "{}",
        text(&out)
    );

    pg.exec_in(&target_db, &corrupting_trigger("live")).unwrap();
    let writer = Writer::postgres(pg.url_for(&source_db));
    sampled_verification_reports_only_corrupted_rows(task, &dir.join("run.log"), writer).await;
    let out = dts(&["cleanup", "--config", task, "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
}

/// `full.verify = true` with incremental migration: a row of the target the source does
/// not have (a table kept from before the task) persists while replication runs, so the
/// run fails naming it; repaired, the task runs again and verifies clean.
async fn full_verify_beside_replication_fails_then_passes(task: &str, extra_table: &str) {
    let out = dts(&["run", "--config", task, "--until-caught-up"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not match the source after the full load")
            && err.contains(&format!("`{extra_table}`: 0 missing, 1 extra, 0 different"))
            && err.contains("extra (id=1000)"),
        "{}",
        text(&out)
    );
    let sql = std::env::temp_dir().join(format!("dts-repair-{}.sql", std::process::id()));
    let out = dts(&[
        "verify",
        "--config",
        task,
        "--repair",
        "--sql-file",
        sql.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = dts(&["run", "--config", task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("rows match"),
        "{}",
        text(&out)
    );
    // Verified once: a later run does not verify again.
    let out = dts(&["run", "--config", task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("rows match"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn full_verify_with_incremental_fails_naming_a_persisting_difference() {
    // MySQL → PostgreSQL.
    let env = Env::new(
        "vfull_inc",
        "CREATE TABLE a (id INT PRIMARY KEY, v VARCHAR(10));
         INSERT INTO a SELECT seq, CONCAT('v', seq) FROM seq_1_to_20;",
    );
    let db = &env.db;
    env.pg(&format!(
        "CREATE SCHEMA {db}; CREATE TABLE {db}.a (id integer PRIMARY KEY, v varchar(10));
         INSERT INTO {db}.a VALUES (1000, 'extra');"
    ));
    let task = env.task_file(
        "[\"schema\", \"full\", \"incremental\"]",
        "full.verify = true\n[policy]\nconflicting_tables = \"ignore\"\n",
    );
    full_verify_beside_replication_fails_then_passes(task.to_str().unwrap(), &format!("{db}.a"))
        .await;

    // PostgreSQL → PostgreSQL.
    let pg = dts_testkit::postgres();
    let source_db = dts_testkit::unique_name("vfull_inc_src");
    pg.create_database(&source_db).unwrap();
    pg.exec_in(
        &source_db,
        "CREATE SCHEMA s; CREATE TABLE s.a (id integer PRIMARY KEY, v text);
         INSERT INTO s.a SELECT g, 'v' || g FROM generate_series(1, 20) g;",
    )
    .unwrap();
    let target_db = dts_testkit::unique_name("vfull_inc_dst");
    pg.create_database(&target_db).unwrap();
    pg.exec_in(
        &target_db,
        "CREATE SCHEMA s; CREATE TABLE s.a (id integer PRIMARY KEY, v text);
         INSERT INTO s.a VALUES (1000, 'extra');",
    )
    .unwrap();
    let task = env.dir.join("pg.toml");
    std::fs::write(
        &task,
        format!(
            "name = \"t\"\nmigration = [\"schema\", \"full\", \"incremental\"]\n\
             source.url = \"{}\"\ntarget.url = \"{}\"\nobjects.include = [\"s\"]\n\
             full.verify = true\n[policy]\nconflicting_tables = \"ignore\"\n",
            pg.url_for(&source_db),
            pg.url_for(&target_db)
        ),
    )
    .unwrap();
    let task = task.to_str().unwrap();
    full_verify_beside_replication_fails_then_passes(task, "s.a").await;
    let out = dts(&["cleanup", "--config", task, "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
}

/// `dts verify --json --repair` while the task runs; returns the exit code and report.
fn verify_repair(task: &str, sql: &std::path::Path) -> (i32, serde_json::Value, String) {
    let out = dts(&[
        "verify",
        "--config",
        task,
        "--json",
        "--repair",
        "--sql-file",
        sql.to_str().unwrap(),
    ]);
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), json, text(&out))
}

/// The repair statistics of table `name` in a report, summed over the kinds.
fn repaired(report: &serde_json::Value, name: &str) -> u64 {
    let t = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["source"].as_str().unwrap().ends_with(&format!(".{name}")))
        .unwrap_or_else(|| panic!("no table {name} in {report}"));
    ["inserted", "updated", "deleted"]
        .iter()
        .map(|k| t["repair"][k].as_u64().unwrap_or(0))
        .sum()
}

/// Corrupts the target while replication applies a write load (rows the writer changes
/// too), repairs with `dts verify --repair` beside the running apply, and checks that the
/// apply goes on (no conflict with a row the repair wrote), catches up, and that a
/// verification is then clean.
async fn repair_beside_the_apply(
    task: &str,
    dir: &std::path::Path,
    target_sql: impl Fn(&str),
    writer: Writer,
) {
    let mut run = replicate(task, &dir.join("repair-run.log"));
    // Let replication apply some of the load first.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Every tenth hot row changed, rows deleted, rows added; the cold table too.
    target_sql(
        "SET session_replication_role = replica;
         UPDATE {s}.hot SET label = 'corrupt' WHERE id % 10 = 3;
         DELETE FROM {s}.hot WHERE id % 50 = 7;
         INSERT INTO {s}.hot SELECT 5000000 + g, g, 'extra' FROM generate_series(1, 20) g;
         UPDATE {s}.cold SET v = v || ' ' WHERE id = 7;
         DELETE FROM {s}.cold WHERE id = 8;",
    );
    let sql = dir.join("beside.sql");
    let (code, report, out) = {
        let (task, sql) = (task.to_string(), sql.clone());
        tokio::task::spawn_blocking(move || verify_repair(&task, &sql))
            .await
            .unwrap()
    };
    assert_eq!(code, 0, "{out}");
    assert!(repaired(&report, "hot") >= 200, "{out}");
    assert_eq!(repaired(&report, "cold"), 2, "{out}");
    let statements = std::fs::read_to_string(&sql).unwrap();
    assert!(statements.contains("FOR UPDATE"), "{statements}");

    // The load goes on after the repair; then it stops and replication catches up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let transactions = writer.finish().await;
    assert!(transactions > 300, "{transactions}");
    let started = Instant::now();
    loop {
        assert!(
            run.try_wait().unwrap().is_none(),
            "replication stopped: {}",
            std::fs::read_to_string(dir.join("repair-run.log")).unwrap_or_default()
        );
        let out = dts(&["verify", "--config", task, "--json"]);
        if out.status.success() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the target does not match after the repair: {}",
            text(&out)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let stopped = dts(&["stop", "--config", task]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    assert!(run.wait().unwrap().success());
}

#[tokio::test]
async fn mysql_to_postgres_repairs_beside_the_apply() {
    let env = Env::new("vbeside", MYSQL_FIXTURE);
    let task = env.task_file(
        "[\"schema\", \"full\", \"incremental\"]",
        "full.rows_per_chunk = 250\n",
    );
    let task = task.to_str().unwrap();
    let out = dts(&["run", "--config", task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    let writer = Writer::mysql(env.mysql_url());
    let db = env.db.clone();
    repair_beside_the_apply(
        task,
        &env.dir,
        |sql| {
            env.pg(&sql.replace("{s}", &db));
        },
        writer,
    )
    .await;
    // Value for value, read through each server's own driver.
    assert!(common::assert_table_equal(&env, "hot", &env.db).await > 1900);
    assert_eq!(common::assert_table_equal(&env, "cold", &env.db).await, 500);
}

#[tokio::test]
async fn postgres_to_postgres_repairs_beside_the_apply() {
    let pg = dts_testkit::postgres();
    let source_db = dts_testkit::unique_name("vbeside_src");
    pg.create_database(&source_db).unwrap();
    pg.exec_in(
        &source_db,
        "CREATE SCHEMA live;
         CREATE TABLE live.hot (id bigint PRIMARY KEY, n integer NOT NULL, label text);
         INSERT INTO live.hot SELECT g, g, 'h' || g FROM generate_series(1, 2000) g;
         CREATE TABLE live.cold (id integer PRIMARY KEY, v text);
         INSERT INTO live.cold SELECT g, 'c' || g FROM generate_series(1, 500) g;",
    )
    .unwrap();
    let target_db = dts_testkit::unique_name("vbeside_dst");
    pg.create_database(&target_db).unwrap();
    let dir = std::env::temp_dir().join(format!("dts-test-{source_db}"));
    std::fs::create_dir_all(&dir).unwrap();
    let task = dir.join("task.toml");
    std::fs::write(
        &task,
        format!(
            "name = \"t\"\nmigration = [\"schema\", \"full\", \"incremental\"]\n\
             source.url = \"{}\"\ntarget.url = \"{}\"\nobjects.include = [\"live\"]\n\
             full.rows_per_chunk = 250\n",
            pg.url_for(&source_db),
            pg.url_for(&target_db)
        ),
    )
    .unwrap();
    let task = task.to_str().unwrap();
    let out = dts(&["run", "--config", task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    let writer = Writer::postgres(pg.url_for(&source_db));
    repair_beside_the_apply(
        task,
        &dir,
        |sql| pg.exec_in(&target_db, &sql.replace("{s}", "live")).unwrap(),
        writer,
    )
    .await;
    // Value for value: every row's text form on both sides.
    for table in ["hot", "cold"] {
        let q = format!("SELECT string_agg(t::text, E'\\n' ORDER BY t) FROM live.{table} t");
        let (s, t) = (
            pg.query_in(&source_db, &q).unwrap(),
            pg.query_in(&target_db, &q).unwrap(),
        );
        assert!(s.lines().count() >= 500, "{table}");
        assert!(
            s == t,
            "`{table}` differs after the repair beside the apply"
        );
    }
    let out = dts(&["cleanup", "--config", task, "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[tokio::test]
async fn a_repair_beside_the_apply_of_a_mysql_target_is_refused_naming_why() {
    let my = dts_testkit::mariadb();
    let source_db = my.create_unique_database("vbeside_my").unwrap();
    my.exec_in(
        &source_db,
        "CREATE TABLE a (id INT PRIMARY KEY, v VARCHAR(10));
         INSERT INTO a SELECT seq, CONCAT('v', seq) FROM seq_1_to_20;",
    )
    .unwrap();
    let target_db = dts_testkit::unique_name("vbeside_my_dst");
    let dir = std::env::temp_dir().join(format!("dts-test-{source_db}"));
    std::fs::create_dir_all(&dir).unwrap();
    let task = dir.join("task.toml");
    std::fs::write(
        &task,
        format!(
            "name = \"{target_db}\"\nmigration = [\"schema\", \"full\", \"incremental\"]\n\
             source.url = \"{}\"\ntarget.url = \"{}\"\nobjects.include = [\"{source_db}\"]\n\
             objects.rename_databases = {{ \"{source_db}\" = \"{target_db}\" }}\n",
            my.url(),
            my.url()
        ),
    )
    .unwrap();
    let task = task.to_str().unwrap();
    let out = dts(&["run", "--config", task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    let mut run = replicate(task, &dir.join("run.log"));
    // Once the run replicates, a repair is refused, naming the process and why.
    let started = Instant::now();
    loop {
        let s = status(task);
        if s["record"]["state"] == "incremental" && s["running"].is_object() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (code, _, out) = verify_repair(task, &dir.join("r.sql"));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("is running (pid {}", run.id()))
            && out.contains("needs a PostgreSQL target"),
        "{out}"
    );
    let stopped = dts(&["stop", "--config", task]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    run.wait().unwrap();
    // Stopped, the repair runs.
    let (code, _, out) = verify_repair(task, &dir.join("r.sql"));
    assert_eq!(code, 0, "{out}");
}
