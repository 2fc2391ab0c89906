//! The task's life after `dts run`, seen from other processes: `dts status` during a full
//! load, during replication and after a failure; `dts stop` of a replicating run;
//! `dts cleanup` refusing while the task runs and leaving nothing of it afterwards.
//!
//! ```text
//! cargo test -p dts-examples --test status
//! ```

mod common;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{dts, numbers_table, text, Env};
use serde_json::Value;

fn spawn_run(task: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_dts"))
        .args(["run", "--config", task])
        .env("DTS_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// `dts status --json`: its exit code and the status.
fn status(task: &str) -> (Option<i32>, Value, Output) {
    let out = dts(&["status", "--config", task, "--json"]);
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), json, out)
}

/// Polls `dts status` until `check` holds, for at most `limit`; the run must stay alive.
async fn wait_status(
    run: &mut Child,
    task: &str,
    limit: Duration,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let (code, json, out) = status(task);
        if check(&json) {
            assert_eq!(code, Some(0), "a running task exits 0: {}", text(&out));
            return json;
        }
        assert!(
            run.try_wait().unwrap().is_none(),
            "the run ended while waiting for {what}; last status {json}"
        );
        assert!(
            started.elapsed() < limit,
            "no {what} within {limit:?}; last status {json}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn state(s: &Value) -> &str {
    s["record"]["state"].as_str().unwrap_or("")
}

#[tokio::test]
async fn status_follows_a_run_which_dts_stop_ends_and_cleanup_removes() {
    let env = Env::new("status", &numbers_table(8_000));
    // A throttled copy (about 4 s) in small chunks, so the load is seen half done.
    let task = env.task_file(
        "[\"schema\", \"full\", \"incremental\"]",
        "full.rows_per_chunk = 500\nfull.workers = 2\nfull.max_rows_per_second = 2000\n",
    );
    let task = task.to_str().unwrap().to_string();

    // Before the first run.
    let (code, json, out) = status(&task);
    assert_eq!(code, Some(6), "never run: {}", text(&out));
    assert_eq!(json["outcome"], "never_run");

    let mut run = spawn_run(&task);

    // During the full load: state `full`, a live process, rows moving, chunks counted.
    let during = wait_status(
        &mut run,
        &task,
        Duration::from_secs(60),
        "a half-done copy",
        |s| {
            let t = &s["tables"][0];
            state(s) == "full"
                && t["rows_done"].as_u64().unwrap_or(0) > 0
                && t["rows_done"].as_u64() < Some(8_000)
        },
    )
    .await;
    assert_eq!(during["outcome"], "running");
    assert_eq!(during["heartbeat_fresh"], true);
    assert_eq!(
        during["running"]["pid"].as_u64(),
        Some(u64::from(run.id())),
        "{during}"
    );
    let t = &during["tables"][0];
    assert_eq!(t["chunks_total"], 16, "{during}");
    assert!(t["chunks_done"].as_u64().unwrap() < 16, "{during}");
    assert!(t["rows_estimated"].as_u64().unwrap() > 0, "{during}");
    assert!(during["pre_data_done"] == true, "{during}");
    // The text form names the state and the table.
    let out = dts(&["status", "--config", &task]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("full, running (pid"), "{}", text(&out));
    assert!(shown.contains("numbers"), "{}", text(&out));

    // Replicating: state `incremental`, the copy complete, changes applied with lag known.
    let replicating = wait_status(
        &mut run,
        &task,
        Duration::from_secs(60),
        "replication",
        |s| state(s) == "incremental" && s["replication"]["applied_position"].is_object(),
    )
    .await;
    assert_eq!(
        replicating["tables"][0]["rows_done"], 8_000,
        "{replicating}"
    );
    assert_eq!(replicating["tables"][0]["chunks_done"], 16, "{replicating}");
    assert_eq!(
        replicating["post_data_done"], replicating["post_data_total"],
        "{replicating}"
    );
    env.my("INSERT INTO numbers (grp, id, label, amount, at, payload) \
         SELECT 1, 900000 + seq, 'later', 1, '2024-06-01', NULL FROM seq_1_to_50");
    let applied = wait_status(
        &mut run,
        &task,
        Duration::from_secs(30),
        "the changes",
        |s| {
            s["replication"]["rows"].as_u64() >= Some(50)
                && s["replication"]["lag_seconds"].is_number()
                && s["replication"]["last_commit_at"].is_string()
        },
    )
    .await;
    let r = &applied["replication"];
    assert!(r["transactions"].as_u64().unwrap() >= 1, "{applied}");
    // The source was asked for its position; the applied one is in the same file (or the
    // distance is counted in files).
    assert!(r["source_position"].is_object(), "{applied}");
    assert!(
        r["lag_bytes"].is_u64() || r["lag_files"].is_u64(),
        "{applied}"
    );
    // Caught up, the lag falls to zero bytes (no other writer on this server's binlog
    // during this test, except other tests: allow for them within the deadline).
    wait_status(&mut run, &task, Duration::from_secs(30), "no lag", |s| {
        s["replication"]["lag_bytes"] == 0 && s["replication"]["lag_seconds"] == 0.0
    })
    .await;

    // Cleanup refuses while the task runs, naming the process.
    let out = dts(&["cleanup", "--config", &task, "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("is running (pid {}", run.id())),
        "{}",
        text(&out)
    );
    assert_eq!(
        env.pg("SELECT count(*) FROM dts_meta.chunk WHERE task = 't'"),
        "16",
        "cleanup dropped state while the task ran"
    );

    // A repair while the task replicates runs beside the apply (a PostgreSQL target):
    // here nothing differs, so it writes nothing.
    let out = dts(&[
        "verify",
        "--config",
        &task,
        "--repair",
        "--sql-file",
        env.dir.join("repair.sql").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // `dts stop` from another process ends the run at a clean point, and waits for it.
    let started = Instant::now();
    let out = dts(&["stop", "--config", &task, "--timeout", "60"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("stopped"),
        "{}",
        text(&out)
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    let exited = run.try_wait().unwrap();
    let exited = match exited {
        Some(s) => s,
        // The lock is released when the store's connection closes, just before exit.
        None => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            run.try_wait()
                .unwrap()
                .expect("the run did not exit after dts stop")
        }
    };
    assert_eq!(exited.code(), Some(0), "a stopped replication exits 0");
    let (code, json, out) = status(&task);
    assert_eq!(code, Some(4), "stopped: {}", text(&out));
    assert_eq!(state(&json), "stopped");
    assert_eq!(json["heartbeat_fresh"], false);
    assert!(json["record"]["heartbeat"].is_null(), "{json}");
    let out = dts(&["stop", "--config", &task]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("not running"),
        "{}",
        text(&out)
    );

    // Cleanup asks for --yes, then leaves nothing of the task.
    let reader = env.pg("SELECT connection_id FROM dts_meta.cdc_source WHERE task = 't'");
    assert!(!reader.is_empty());
    let out = dts(&["cleanup", "--config", &task]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--yes"));
    assert_eq!(env.pg("SELECT count(*) FROM dts_meta.task"), "1");
    let out = dts(&["cleanup", "--config", &task, "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("rows of dts_meta.chunk"), "{}", text(&out));
    assert!(
        said.contains("dropped the dts_meta schema"),
        "{}",
        text(&out)
    );
    assert_eq!(
        env.pg("SELECT count(*) FROM pg_namespace WHERE nspname = 'dts_meta'"),
        "0"
    );
    assert_eq!(
        env.my(&format!(
            "SELECT count(*) FROM information_schema.PROCESSLIST WHERE ID = {reader}"
        )),
        "0",
        "a binlog reader was left on the source"
    );
    let (code, _, out) = status(&task);
    assert_eq!(code, Some(6), "nothing left: {}", text(&out));
    // The migrated data stays.
    assert_eq!(
        env.pg(&format!("SELECT count(*) FROM {}.numbers", env.db)),
        "8050"
    );
}

#[tokio::test]
async fn status_after_a_failure_shows_the_error_and_its_fix() {
    let env = Env::new("status_fail", &numbers_table(500));
    let task = env.task_file("[\"schema\", \"full\", \"incremental\"]", "");
    let task = task.to_str().unwrap().to_string();
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    let (code, json, out) = status(&task);
    assert_eq!(code, Some(4), "caught up, not running: {}", text(&out));
    assert_eq!(state(&json), "stopped");

    // DDL that cannot be translated stops replication: the run fails, the record says why.
    env.my("ALTER TABLE numbers ADD COLUMN spot POINT");
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let (code, json, out) = status(&task);
    assert_eq!(code, Some(5), "failed: {}", text(&out));
    assert_eq!(json["outcome"], "failed");
    assert_eq!(state(&json), "failed");
    let failure = &json["record"]["failure"];
    assert!(
        failure["message"].as_str().unwrap().contains("numbers"),
        "{json}"
    );
    assert!(!failure["fix"].as_str().unwrap().is_empty(), "{json}");
    let out = dts(&["status", "--config", &task]);
    assert_eq!(out.status.code(), Some(5));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("failed, not running"), "{}", text(&out));
    assert!(shown.contains("last error"), "{}", text(&out));
    assert!(shown.contains("fix: "), "{}", text(&out));
    // No password in the record.
    assert!(!env
        .pg("SELECT failure::text FROM dts_meta.task")
        .contains("password="));
}
