//! One run per task: a second `dts run` of a task whose first run is still going exits at
//! once with a clear message, and the first goes on applying changes.
//!
//! ```text
//! cargo test -p dts-examples --test run_lock
//! ```

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_table_equal, dts, numbers_table, text, Env};

fn spawn_run(task: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_dts"))
        .args(["run", "--config", task])
        .env("DTS_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Polls `check` until it holds, for at most `limit`; the first run must stay alive.
async fn wait_until(first: &mut Child, limit: Duration, what: &str, check: impl Fn() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first run ended while waiting for {what}"
        );
        assert!(started.elapsed() < limit, "no {what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_second_run_of_a_running_task_exits_and_the_first_goes_on() {
    let env = Env::new("run_lock", &numbers_table(2_000));
    let task = env.task_file("[\"schema\", \"full\", \"incremental\"]", "");
    let task = task.to_str().unwrap().to_string();

    // The first run reaches incremental migration and runs until stopped.
    let mut first = spawn_run(&task);
    let replicating = || {
        dts_testkit::postgres()
            .query_in(
                &env.target_db,
                "SELECT count(*) FROM dts_meta.cdc_source WHERE task = 't'",
            )
            .is_ok_and(|s| s.trim() == "1")
    };
    wait_until(
        &mut first,
        Duration::from_secs(60),
        "replication",
        replicating,
    )
    .await;

    // The second run of the same task exits quickly, naming the task.
    let started = Instant::now();
    let out = dts(&["run", "--config", &task]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("another run of task `t` is in progress"),
        "{}",
        text(&out)
    );
    assert!(
        stderr.contains(&format!("pid {}", first.id())),
        "the message names the running process: {}",
        text(&out)
    );
    assert_eq!(
        stderr.lines().filter(|l| !l.trim().is_empty()).count(),
        1,
        "one line: {}",
        text(&out)
    );
    assert!(took < Duration::from_secs(15), "took {took:?}");

    // The first run is still running and applying.
    assert!(first.try_wait().unwrap().is_none(), "the first run ended");
    env.my("INSERT INTO numbers (grp, id, label, amount, at, payload) \
         VALUES (1, 900001, 'after the second run', 1.5, '2024-06-01 00:00:00', NULL)");
    wait_until(&mut first, Duration::from_secs(30), "the new row", || {
        env.pg(&format!(
            "SELECT count(*) FROM {}.numbers WHERE id = 900001",
            env.db
        )) == "1"
    })
    .await;

    // Stopped, the first run lets the next one run.
    let status = Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = first.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(0), "SIGTERM did not stop dts cleanly");
    env.my("DELETE FROM numbers WHERE id = 900001");
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(assert_table_equal(&env, "numbers", &env.db).await, 2_000);
}

/// The first key of the run lock (`dts` in ASCII), as the state store takes it.
const RUN_LOCK_SPACE: i32 = 0x0064_7473;

fn spawn_logged_run(task: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_dts"))
        .args(["run", "--config", task])
        .env("DTS_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

async fn target_client(env: &Env) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&env.pg_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// The backend holding the run lock of task `t`, as the run record names it.
async fn lock_backend(client: &tokio_postgres::Client) -> i32 {
    client
        .query_one("SELECT backend_pid FROM dts_meta.run WHERE task = 't'", &[])
        .await
        .unwrap()
        .get(0)
}

async fn replicating(env: &Env, run: &mut Child) {
    wait_until(run, Duration::from_secs(60), "replication", || {
        dts_testkit::postgres()
            .query_in(
                &env.target_db,
                "SELECT count(*) FROM dts_meta.cdc_source WHERE task = 't'",
            )
            .is_ok_and(|s| s.trim() == "1")
    })
    .await;
}

/// The run lock lives on a session of its own: when that session is lost, the run takes
/// the lock again on a new one and goes on.
#[tokio::test]
async fn a_lost_run_lock_session_is_replaced_and_the_run_goes_on() {
    let env = Env::new("run_lock_relock", &numbers_table(500));
    let task = env.task_file("[\"schema\", \"full\", \"incremental\"]", "");
    let task = task.to_str().unwrap().to_string();
    let mut run = spawn_logged_run(&task);
    replicating(&env, &mut run).await;
    let client = target_client(&env).await;
    let old = lock_backend(&client).await;
    client
        .execute("SELECT pg_terminate_backend($1)", &[&old])
        .await
        .unwrap();

    // A new session of the run holds the lock, and the record names it.
    let started = Instant::now();
    loop {
        assert!(run.try_wait().unwrap().is_none(), "the run ended");
        let holder: i64 = client
            .query_one(
                "SELECT count(*) FROM dts_meta.run r JOIN pg_locks l ON l.pid = r.backend_pid \
                 AND l.locktype = 'advisory' AND l.granted AND l.classid = $1::int::oid \
                 AND l.objid = hashtext('t')::oid AND l.objsubid = 2 \
                 WHERE r.task = 't' AND r.backend_pid <> $2",
                &[&RUN_LOCK_SPACE, &old],
            )
            .await
            .unwrap()
            .get(0);
        if holder == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the lock was not taken again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Still replicating.
    env.my("INSERT INTO numbers (grp, id, label, amount, at, payload) \
         VALUES (1, 900001, 'after the relock', 1.5, '2024-06-01 00:00:00', NULL)");
    wait_until(&mut run, Duration::from_secs(30), "the new row", || {
        env.pg(&format!(
            "SELECT count(*) FROM {}.numbers WHERE id = 900001",
            env.db
        )) == "1"
    })
    .await;
    Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(0));
    assert_eq!(assert_table_equal(&env, "numbers", &env.db).await, 501);
}

/// When the run lock's session is lost and another session takes the lock before the run
/// can take it again, the run stops with an error naming the task instead of going on
/// unlocked.
#[tokio::test]
async fn a_run_whose_lock_is_taken_meanwhile_stops() {
    let env = Env::new("run_lock_lost", &numbers_table(500));
    let task = env.task_file("[\"schema\", \"full\", \"incremental\"]", "");
    let task = task.to_str().unwrap().to_string();
    let mut run = spawn_logged_run(&task);
    replicating(&env, &mut run).await;

    // End the session holding the lock, and take the lock as soon as it is free.
    let client = target_client(&env).await;
    let old = lock_backend(&client).await;
    client
        .execute("SELECT pg_terminate_backend($1)", &[&old])
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let got: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock($1, hashtext('t'))",
                &[&RUN_LOCK_SPACE],
            )
            .await
            .unwrap()
            .get(0);
        if got {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "lock never free"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    let status = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the run went on without its lock"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut run.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the run lock of task `t` is no longer held"),
        "{stderr}"
    );

    // Released, the task runs again and ends equal to the source.
    client
        .execute("SELECT pg_advisory_unlock_all()", &[])
        .await
        .unwrap();
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(assert_table_equal(&env, "numbers", &env.db).await, 500);
}
