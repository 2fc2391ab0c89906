//! Switchover with a rollback path, end to end on real servers, MySQL → PostgreSQL and
//! PostgreSQL → MySQL: an application account writes into the source while `dts run`
//! replicates in the background; `dts switchover --lock-source` stops those writes, waits
//! for lag 0, verifies and starts the reverse task; the application's next insert into the
//! target succeeds (identity moved past the values in use); writes into the target reach
//! the old source through the reverse task; `dts rollback` returns to the source; `dts
//! stop`/`dts cleanup` of both task files leave no slot, publication, binlog reader or task
//! state. Tables are compared value for value through the servers' own drivers.
//!
//! ```text
//! cargo test -p dts-examples --test switchover
//! ```

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{dts, text};
use mysql_async::prelude::*;
use serde_json::Value;

/// The two tests change server-wide settings (MariaDB's `read_only`) and count binlog
/// readers: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One side of the migration, reached as the application or as dts.
#[derive(Clone, Debug)]
enum Db {
    /// A MariaDB database (`url` names it) and the table's qualified name.
    My { url: String, table: String },
    /// A PostgreSQL database and the table's qualified name.
    Pg { url: String, table: String },
}

/// A row of the table: id, v, note.
type Row = (i64, i64, Option<String>);

enum Conn {
    My(mysql_async::Conn),
    Pg(tokio_postgres::Client),
}

impl Db {
    async fn connect(&self) -> Result<Conn, String> {
        match self {
            Db::My { url, .. } => {
                let opts = mysql_async::Opts::from_url(url).map_err(|e| e.to_string())?;
                mysql_async::Conn::new(opts)
                    .await
                    .map(Conn::My)
                    .map_err(|e| e.to_string())
            }
            Db::Pg { url, .. } => {
                let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(conn);
                Ok(Conn::Pg(client))
            }
        }
    }

    fn table(&self) -> &str {
        match self {
            Db::My { table, .. } | Db::Pg { table, .. } => table,
        }
    }

    /// The same database as another account.
    fn as_user(&self, user: &str) -> Db {
        let swap = |url: &str| {
            let (scheme, rest) = url.split_once("://").unwrap();
            let rest = rest.split_once('@').map_or(rest, |(_, r)| r);
            format!("{scheme}://{user}@{rest}")
        };
        match self {
            Db::My { url, table } => Db::My {
                url: swap(url).replacen(&format!("{user}@"), &format!("{user}:pw@"), 1),
                table: table.clone(),
            },
            Db::Pg { url, table } => Db::Pg {
                url: swap(url),
                table: table.clone(),
            },
        }
    }

    async fn exec(&self, conn: &mut Conn, sql: &str) -> Result<(), String> {
        match conn {
            Conn::My(c) => c.query_drop(sql).await.map_err(|e| e.to_string()),
            Conn::Pg(c) => c.batch_execute(sql).await.map_err(|e| e.to_string()),
        }
    }

    async fn run(&self, sql: &str) -> Result<(), String> {
        let mut conn = self.connect().await?;
        self.exec(&mut conn, sql).await
    }

    async fn rows(&self) -> Vec<Row> {
        let t = self.table();
        match self.connect().await.unwrap() {
            Conn::My(mut c) => c
                .query(format!(
                    "SELECT CAST(id AS SIGNED), CAST(v AS SIGNED), note FROM {t} ORDER BY id"
                ))
                .await
                .unwrap(),
            Conn::Pg(c) => c
                .query(
                    &format!("SELECT id::int8, v::int8, note::text FROM {t} ORDER BY id"),
                    &[],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect(),
        }
    }
}

/// An application writing into `db` until stopped: inserts (the key from the identity),
/// updates and deletes, reconnecting after each refusal.
struct Writer {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
    last_error: Arc<std::sync::Mutex<String>>,
    handle: tokio::task::JoinHandle<()>,
}

impl Writer {
    fn start(db: Db, tag: &'static str) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let last_error = Arc::new(std::sync::Mutex::new(String::new()));
        let (s, o, r, l) = (
            stop.clone(),
            ok.clone(),
            refused.clone(),
            last_error.clone(),
        );
        let handle = tokio::spawn(async move {
            let t = db.table().to_string();
            let mut conn = None;
            let mut i: u64 = 0;
            while !s.load(Ordering::SeqCst) {
                i += 1;
                if conn.is_none() {
                    conn = db.connect().await.ok();
                }
                let sql = match i % 10 {
                    3 => format!(
                        "UPDATE {t} SET v = v + 1, note = 'u{i}' WHERE id = {}",
                        i / 2
                    ),
                    7 => format!("DELETE FROM {t} WHERE id = {}", i / 3),
                    _ => format!("INSERT INTO {t} (v, note) VALUES ({i}, '{tag}{i}')"),
                };
                let result = match conn.as_mut() {
                    Some(c) => db.exec(c, &sql).await,
                    None => Err("cannot connect".to_string()),
                };
                match result {
                    Ok(()) => {
                        o.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => {
                        r.fetch_add(1, Ordering::SeqCst);
                        *l.lock().unwrap() = e;
                        conn = None;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        });
        Writer {
            stop,
            ok,
            refused,
            last_error,
            handle,
        }
    }

    async fn finish(self) -> (u64, u64, String) {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.await.unwrap();
        let e = self.last_error.lock().unwrap().clone();
        (
            self.ok.load(Ordering::SeqCst),
            self.refused.load(Ordering::SeqCst),
            e,
        )
    }
}

fn spawn_run(task: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_dts"))
        .args(["run", "--config", task])
        .env("DTS_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn status(task: &str) -> (Option<i32>, Value) {
    let out = dts(&["status", "--config", task, "--json"]);
    (
        out.status.code(),
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
    )
}

async fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "no {what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_equal(a: &Db, b: &Db, what: &str) -> Vec<Row> {
    let started = Instant::now();
    loop {
        let (x, y) = (a.rows().await, b.rows().await);
        if x == y {
            return x;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what}: the tables still differ after 60 s ({} rows vs {})",
            x.len(),
            y.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn run_cmd(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        dts(&args)
    })
    .await
    .unwrap()
}

/// The whole procedure for one direction. `source`/`target` are dts's view (the tables'
/// qualified names included), `app_source`/`app_target` the application's account.
/// One direction's run of the procedure.
struct Case {
    name: &'static str,
    dir: std::path::PathBuf,
    task_text: String,
    source: Db,
    target: Db,
    app_source: Db,
    app_target: Db,
    /// Whether the rollback locks the target (else it waits until the target is quiet).
    lock_rollback: bool,
}

async fn switch_and_back(case: Case) {
    let Case {
        name,
        dir,
        task_text,
        source,
        target,
        app_source,
        app_target,
        lock_rollback,
    } = case;
    let task_path = dir.join("task.toml");
    std::fs::write(&task_path, task_text).unwrap();
    let task = task_path.to_str().unwrap().to_string();
    let reverse = dir.join("task.reverse.toml");
    let reverse = reverse.to_str().unwrap().to_string();

    // The application writes while the task copies, then replicates.
    let writer = Writer::start(app_source.clone(), "s");
    let mut run = spawn_run(&task);
    // Step 3 of the procedure: `dts status` shows each phase with moving numbers: the full
    // load's rows done (throttled to 100 rows/s here), then replication's rows applied.
    let mut copied = Vec::new();
    wait_for("replication", Duration::from_secs(120), || {
        assert!(run.try_wait().unwrap().is_none(), "dts run ended early");
        let (code, s) = status(&task);
        if s["record"]["state"] == "full" {
            assert_eq!(code, Some(0), "{s}");
            let rows: u64 = s["tables"]
                .as_array()
                .map(|t| t.iter().filter_map(|t| t["rows_done"].as_u64()).sum())
                .unwrap_or(0);
            copied.push(rows);
        }
        s["record"]["state"] == "incremental"
    })
    .await;
    copied.dedup();
    assert!(
        copied.len() >= 2 && copied.windows(2).all(|w| w[0] < w[1]),
        "the full load's rows done did not move in `dts status`: {copied:?}"
    );
    let applied = || status(&task).1["replication"]["rows"].as_u64().unwrap_or(0);
    let first = applied();
    wait_for(
        "rows applied to move in `dts status`",
        Duration::from_secs(60),
        || applied() > first,
    )
    .await;

    // Without --lock-source the source must fall quiet: the application still writes, so the
    // switchover gives up, says why, and leaves the task replicating.
    let out = run_cmd(
        [
            "switchover",
            "--config",
            &task,
            "--quiet-seconds",
            "2",
            "--timeout",
            "4",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("never stayed quiet for 2 s"), "{shown}");
    assert_eq!(status(&task).1["record"]["state"], "incremental", "{shown}");
    assert!(run.try_wait().unwrap().is_none(), "dts run ended: {shown}");

    let started = Instant::now();
    let out = run_cmd(
        [
            "switchover",
            "--config",
            &task,
            "--lock-source",
            "--max-lag-seconds",
            "5",
            "--timeout",
            "120",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    let took = started.elapsed();
    let shown = text(&out);
    assert!(out.status.success(), "switchover failed: {shown}");
    let (written, refused, why) = writer.finish().await;
    println!(
        "{name}: switchover in {took:?}; the application wrote {written} statements, \
         {refused} refused once the source was read-only ({why})\n{shown}"
    );
    assert!(refused > 0, "the lock never refused a write: {shown}");
    assert!(shown.contains("lag 0"), "{shown}");
    assert!(shown.contains("no difference"), "{shown}");
    // The forward run ended by itself, cleanly.
    let started = Instant::now();
    let code = loop {
        if let Some(s) = run.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "dts run still runs"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(code.success(), "dts run exited with {code}");
    assert_eq!(status(&task).1["record"]["state"], "switched");
    let again = dts(&["switchover", "--config", &task, "--lock-source"]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(
        text(&again).contains("is not replicating (its state is `switched`"),
        "{}",
        text(&again)
    );
    // Running the switched task again would replicate into the side the application now
    // writes: refused, and the record stays.
    let rerun = dts(&["run", "--config", &task]);
    assert_eq!(rerun.status.code(), Some(1), "{}", text(&rerun));
    assert!(
        text(&rerun).contains("was switched over at"),
        "{}",
        text(&rerun)
    );
    assert_eq!(status(&task).1["record"]["state"], "switched");
    let rows = wait_equal(&source, &target, "after switchover").await;
    assert!(rows.len() > 100, "{} rows", rows.len());

    // The application moves to the target: its next inserts succeed, and every write
    // reaches the old source through the reverse task.
    let max_before = rows.iter().map(|r| r.0).max().unwrap();
    app_target
        .run(&format!(
            "INSERT INTO {} (v, note) VALUES (-1, 'first on the target')",
            target.table()
        ))
        .await
        .expect("the application's first insert into the target");
    let first = target.rows().await;
    let new_id = first.iter().find(|r| r.1 == -1).unwrap().0;
    assert!(new_id > max_before, "new id {new_id} <= {max_before}");
    let writer = Writer::start(app_target.clone(), "t");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (written, refused_t, _) = writer.finish().await;
    assert!(
        written > 50,
        "{written} writes into the target, {refused_t} refused"
    );
    let rows = wait_equal(&target, &source, "through the reverse task").await;
    assert!(rows
        .iter()
        .any(|r| r.2.as_deref() == Some("first on the target")));

    // Rollback: the reverse task ends, the old source takes the application back. Locked:
    // the application writes until the lock refuses it. Quiet: the application stops, and
    // the rollback waits until the target's log stays still.
    let writer = Writer::start(app_target.clone(), "r");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let writer = if lock_rollback {
        Some(writer)
    } else {
        writer.finish().await;
        None
    };
    let mut args = vec!["rollback", "--config", &task, "--timeout", "120"];
    if lock_rollback {
        args.push("--lock-source");
    } else {
        args.extend(["--quiet-seconds", "2"]);
    }
    let out = run_cmd(args.into_iter().map(String::from).collect()).await;
    let shown = text(&out);
    assert!(out.status.success(), "rollback failed: {shown}");
    println!("{name}: rollback\n{shown}");
    if let Some(writer) = writer {
        let (_, refused, _) = writer.finish().await;
        assert!(
            refused > 0,
            "the target's lock never refused a write: {shown}"
        );
    } else {
        assert!(
            shown.contains("is quiet: its position stayed at"),
            "{shown}"
        );
    }
    assert!(shown.contains("point the application back"), "{shown}");
    let (_, rev) = status(&reverse);
    assert_eq!(rev["record"]["state"], "switched", "{rev}");
    assert!(rev["running"].is_null(), "{rev}");
    let rows = wait_equal(&target, &source, "after rollback").await;
    // Nothing lost either way: the last rows written on the target are in the source.
    assert!(rows
        .iter()
        .any(|r| r.2.as_deref().is_some_and(|n| n.starts_with('r'))));
    let max_before = rows.iter().map(|r| r.0).max().unwrap();
    app_source
        .run(&format!(
            "INSERT INTO {} (v, note) VALUES (-2, 'back on the source')",
            source.table()
        ))
        .await
        .expect("the application's first insert into the old source");
    let back = source.rows().await;
    let id = back.iter().find(|r| r.1 == -2).unwrap().0;
    assert!(id > max_before, "id {id} <= {max_before}");

    // Stop and clean up both tasks.
    for t in [&task, &reverse] {
        let out = dts(&["stop", "--config", t]);
        assert!(out.status.success(), "{}", text(&out));
        let out = dts(&["cleanup", "--config", t, "--yes"]);
        assert!(out.status.success(), "{}", text(&out));
        let (code, json) = status(t);
        assert_eq!(code, Some(6), "state left for {t}: {json}");
    }
}

/// What the tasks leave on the servers: replication slots and publications named `dts_…`
/// for `names`, binlog readers, rows of the task record in `dts_meta` (on the MariaDB server
/// and in the PostgreSQL databases `pg_dbs`).
async fn assert_nothing_left(pg_dbs: &[&str], slots: &[String], names: &[String]) {
    assert_nothing_left_on(dts_testkit::mariadb(), pg_dbs, slots, names).await;
}

/// [`assert_nothing_left`] with the MariaDB server `my`.
async fn assert_nothing_left_on(
    my: &dts_testkit::MariaDb,
    pg_dbs: &[&str],
    slots: &[String],
    names: &[String],
) {
    let pg = dts_testkit::postgres();
    let list = names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let exists = my
        .query(
            "SELECT COUNT(*) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = 'dts_meta' AND TABLE_NAME = 'task'",
        )
        .unwrap();
    if exists.trim() == "1" {
        let n = my
            .query(&format!(
                "SELECT COUNT(*) FROM dts_meta.task WHERE task IN ({list})"
            ))
            .unwrap();
        assert_eq!(n.trim(), "0", "task records left in MariaDB");
    }
    for db in pg_dbs {
        let n = pg
            .query_in(
                db,
                &format!(
                    "SELECT CASE WHEN to_regclass('dts_meta.task') IS NULL THEN 0 ELSE \
                     (xpath('/row/c/text()', query_to_xml('SELECT count(*) AS c FROM \
                     dts_meta.task WHERE task IN ({})', false, true, '')))[1]::text::int END",
                    list.replace('\'', "''")
                ),
            )
            .unwrap();
        assert_eq!(n.trim(), "0", "task records left in {db}");
    }
    for slot in slots {
        let n = pg
            .query(&format!(
                "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{slot}'"
            ))
            .unwrap();
        assert_eq!(n.trim(), "0", "slot {slot} left");
        for db in pg_dbs {
            let n = pg
                .query_in(
                    db,
                    &format!("SELECT count(*) FROM pg_publication WHERE pubname = '{slot}'"),
                )
                .unwrap();
            assert_eq!(n.trim(), "0", "publication {slot} left in {db}");
        }
    }
    let readers = my
        .query(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'",
        )
        .unwrap();
    assert_eq!(readers.trim(), "0", "a binlog reader still runs");
}

const MY_TABLE: &str = "CREATE TABLE items (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
                        v BIGINT NOT NULL, note VARCHAR(40))";

fn preload(n: u32) -> String {
    let values: Vec<String> = (1..=n).map(|i| format!("({i}, 'p{i}')")).collect();
    format!("INSERT INTO items (v, note) VALUES {}", values.join(", "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_to_postgres_switchover_and_rollback() {
    let _serial = SERIAL.lock().await;
    let my = dts_testkit::mariadb();
    // A failed earlier test may have left the server read-only.
    my.exec("SET GLOBAL read_only = OFF").unwrap();
    let pg = dts_testkit::postgres();
    let db = my.create_unique_database("sw").unwrap();
    my.exec_in(&db, &format!("{MY_TABLE}; {}", preload(200)))
        .unwrap();
    let app = format!("app_{db}");
    my.exec(&format!(
        "CREATE USER '{app}'@'%' IDENTIFIED BY 'pw'; GRANT ALL ON `{db}`.* TO '{app}'@'%'"
    ))
    .unwrap();
    let target_db = dts_testkit::unique_name("sw_dst");
    pg.create_database(&target_db).unwrap();
    pg.exec(&format!("CREATE ROLE {app} LOGIN")).unwrap();
    let dir = std::env::temp_dir().join(format!("dts-test-{db}"));
    std::fs::create_dir_all(&dir).unwrap();
    let name = db.clone();
    let source = Db::My {
        url: my.url_for(&db),
        table: format!("`{db}`.items"),
    };
    let target = Db::Pg {
        url: pg.url_for(&target_db),
        table: format!("\"{db}\".items"),
    };
    let task_text = format!(
        "name = \"{name}\"\nmigration = [\"schema\", \"full\", \"incremental\"]\n\
         full.max_rows_per_second = 100\nfull.rows_per_chunk = 40\n\
         source.url = \"{}\"\ntarget.url = \"{}\"\nobjects.include = [\"{db}\"]\n",
        my.url(),
        pg.url_for(&target_db)
    );
    let app_source = source.as_user(&app);
    let app_target = target.as_user(&app);
    let flow = switch_and_back(Case {
        name: "mysql → postgres",
        dir: dir.clone(),
        task_text,
        source: source.clone(),
        target: target.clone(),
        app_source,
        app_target,
        lock_rollback: true,
    });
    // Grants are given once the task has created the schema.
    tokio::join!(flow, grant_when_created(&target_db, &db, &app));
    let forward_slot = dts::connectors::capture_slot_name(&name, &my.url());
    let reverse_slot =
        dts::connectors::capture_slot_name(&format!("{name}-reverse"), &pg.url_for(&target_db));
    assert_nothing_left(
        &[&target_db],
        &[forward_slot, reverse_slot],
        &[name.clone(), format!("{name}-reverse")],
    )
    .await;
    // The rollback left the target read-only for the application: undo for the next test.
    pg.exec(&format!(
        "ALTER DATABASE \"{target_db}\" RESET default_transaction_read_only"
    ))
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_to_mysql_switchover_and_rollback() {
    let _serial = SERIAL.lock().await;
    let my = dts_testkit::mariadb();
    // A failed earlier test may have left the server read-only.
    my.exec("SET GLOBAL read_only = OFF").unwrap();
    let pg = dts_testkit::postgres();
    let source_db = dts_testkit::unique_name("sw_src");
    pg.create_database(&source_db).unwrap();
    // The schema becomes the MySQL database: unique on the server.
    let schema = dts_testkit::unique_name("swp");
    let app = format!("app_{schema}");
    pg.exec_in(
        &source_db,
        &format!(
            "CREATE SCHEMA {schema}; CREATE TABLE {schema}.items (id bigint GENERATED BY \
             DEFAULT AS IDENTITY PRIMARY KEY, v bigint NOT NULL, note varchar(40)); \
             SET search_path = {schema}; {}; CREATE ROLE {app} LOGIN; \
             GRANT USAGE ON SCHEMA {schema} TO {app}; \
             GRANT ALL ON ALL TABLES IN SCHEMA {schema} TO {app}; \
             GRANT ALL ON ALL SEQUENCES IN SCHEMA {schema} TO {app}",
            preload(200)
        ),
    )
    .unwrap();
    my.exec(&format!(
        "CREATE USER '{app}'@'%' IDENTIFIED BY 'pw'; GRANT ALL ON `{schema}`.* TO '{app}'@'%'"
    ))
    .unwrap();
    let dir = std::env::temp_dir().join(format!("dts-test-{source_db}"));
    std::fs::create_dir_all(&dir).unwrap();
    let name = source_db.clone();
    let source = Db::Pg {
        url: pg.url_for(&source_db),
        table: format!("{schema}.items"),
    };
    let target = Db::My {
        url: my.url(),
        table: format!("`{schema}`.items"),
    };
    let task_text = format!(
        "name = \"{name}\"\nmigration = [\"schema\", \"full\", \"incremental\"]\n\
         full.max_rows_per_second = 100\nfull.rows_per_chunk = 40\n\
         source.url = \"{}\"\ntarget.url = \"{}\"\nobjects.include = [\"{schema}\"]\n",
        pg.url_for(&source_db),
        my.url()
    );
    let app_source = source.as_user(&app);
    let app_target = Db::My {
        url: format!("mysql://{app}:pw@{}:{}/{schema}", my.host(), my.port()),
        table: format!("`{schema}`.items"),
    };
    let outcome = tokio::spawn(switch_and_back(Case {
        name: "postgres → mysql",
        dir: dir.clone(),
        task_text,
        source,
        target,
        app_source,
        app_target,
        lock_rollback: true,
    }));
    let result = outcome.await;
    // The rollback left the MariaDB server read-only (global): undo it whatever happened.
    my.exec("SET GLOBAL read_only = OFF").unwrap();
    result.unwrap();
    let forward_slot = dts::connectors::capture_slot_name(&name, &pg.url_for(&source_db));
    let reverse_slot = dts::connectors::capture_slot_name(&format!("{name}-reverse"), &my.url());
    assert_nothing_left(
        &[&source_db],
        &[forward_slot, reverse_slot],
        &[name.clone(), format!("{name}-reverse")],
    )
    .await;
}

/// Grants `app` every right on the tables and sequences of `schema` in `db` once the schema
/// holds a table (created by the task's schema step), for at most two minutes.
async fn grant_when_created(db: &str, schema: &str, app: &str) {
    let pg = dts_testkit::postgres();
    let started = Instant::now();
    loop {
        let created = pg
            .query_in(
                db,
                &format!("SELECT count(*) FROM pg_tables WHERE schemaname = '{schema}'"),
            )
            .map(|n| n.trim() == "1")
            .unwrap_or(false);
        if created {
            tokio::time::sleep(Duration::from_millis(200)).await;
            pg.exec_in(
                db,
                &format!(
                    "GRANT USAGE ON SCHEMA {schema} TO {app}; \
                     GRANT ALL ON ALL TABLES IN SCHEMA {schema} TO {app}; \
                     GRANT ALL ON ALL SEQUENCES IN SCHEMA {schema} TO {app}"
                ),
            )
            .unwrap();
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no table in {db}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_to_postgres_switchover_and_rollback() {
    let _serial = SERIAL.lock().await;
    let pg = dts_testkit::postgres();
    let source_db = dts_testkit::unique_name("sw_pp_src");
    let target_db = dts_testkit::unique_name("sw_pp_dst");
    pg.create_database(&source_db).unwrap();
    pg.create_database(&target_db).unwrap();
    let schema = dts_testkit::unique_name("swq");
    let app = format!("app_{schema}");
    pg.exec_in(
        &source_db,
        &format!(
            "CREATE SCHEMA {schema}; CREATE TABLE {schema}.items (id bigint GENERATED BY \
             DEFAULT AS IDENTITY PRIMARY KEY, v bigint NOT NULL, note varchar(40)); \
             SET search_path = {schema}; {}; CREATE ROLE {app} LOGIN; \
             GRANT USAGE ON SCHEMA {schema} TO {app}; \
             GRANT ALL ON ALL TABLES IN SCHEMA {schema} TO {app}; \
             GRANT ALL ON ALL SEQUENCES IN SCHEMA {schema} TO {app}",
            preload(200)
        ),
    )
    .unwrap();
    let dir = std::env::temp_dir().join(format!("dts-test-{source_db}"));
    std::fs::create_dir_all(&dir).unwrap();
    let name = source_db.clone();
    let source = Db::Pg {
        url: pg.url_for(&source_db),
        table: format!("{schema}.items"),
    };
    let target = Db::Pg {
        url: pg.url_for(&target_db),
        table: format!("{schema}.items"),
    };
    let task_text = format!(
        "name = \"{name}\"\nmigration = [\"schema\", \"full\", \"incremental\"]\n\
         full.max_rows_per_second = 100\nfull.rows_per_chunk = 40\n\
         source.url = \"{}\"\ntarget.url = \"{}\"\nobjects.include = [\"{schema}\"]\n",
        pg.url_for(&source_db),
        pg.url_for(&target_db)
    );
    let app_source = source.as_user(&app);
    let app_target = target.as_user(&app);
    let flow = switch_and_back(Case {
        name: "postgres → postgres",
        dir: dir.clone(),
        task_text,
        source,
        target,
        app_source,
        app_target,
        lock_rollback: true,
    });
    tokio::join!(flow, grant_when_created(&target_db, &schema, &app));
    let forward_slot = dts::connectors::capture_slot_name(&name, &pg.url_for(&source_db));
    let reverse_slot =
        dts::connectors::capture_slot_name(&format!("{name}-reverse"), &pg.url_for(&target_db));
    assert_nothing_left(
        &[&source_db, &target_db],
        &[forward_slot, reverse_slot],
        &[name.clone(), format!("{name}-reverse")],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_to_mysql_switchover_and_rollback() {
    let _serial = SERIAL.lock().await;
    // Two servers: `read_only` is server-wide.
    let my = dts_testkit::mariadb();
    my.exec("SET GLOBAL read_only = OFF").unwrap();
    let other = dts_testkit::MariaDb::start_owned().unwrap();
    let db = my.create_unique_database("swm").unwrap();
    my.exec_in(&db, &format!("{MY_TABLE}; {}", preload(200)))
        .unwrap();
    let app = format!("app_{db}");
    for server in [my, &other] {
        server
            .exec(&format!(
                "CREATE USER '{app}'@'%' IDENTIFIED BY 'pw'; GRANT ALL ON `{db}`.* TO '{app}'@'%'"
            ))
            .unwrap();
    }
    let dir = std::env::temp_dir().join(format!("dts-test-{db}"));
    std::fs::create_dir_all(&dir).unwrap();
    let name = db.clone();
    let source = Db::My {
        url: my.url_for(&db),
        table: format!("`{db}`.items"),
    };
    let target = Db::My {
        url: other.url(),
        table: format!("`{db}`.items"),
    };
    let task_text = format!(
        "name = \"{name}\"\nmigration = [\"schema\", \"full\", \"incremental\"]\n\
         full.max_rows_per_second = 100\nfull.rows_per_chunk = 40\n\
         source.url = \"{}\"\ntarget.url = \"{}\"\nobjects.include = [\"{db}\"]\n",
        my.url(),
        other.url()
    );
    let app_source = source.as_user(&app);
    let app_target = Db::My {
        url: format!("mysql://{app}:pw@{}:{}/{db}", other.host(), other.port()),
        table: format!("`{db}`.items"),
    };
    let result = tokio::spawn(switch_and_back(Case {
        name: "mysql → mysql",
        dir: dir.clone(),
        task_text,
        source,
        target,
        app_source,
        app_target,
        lock_rollback: false,
    }))
    .await;
    my.exec("SET GLOBAL read_only = OFF").unwrap();
    result.unwrap();
    let names = [name.clone(), format!("{name}-reverse")];
    assert_nothing_left_on(my, &[], &[], &names).await;
    assert_nothing_left_on(&other, &[], &[], &names).await;
}
