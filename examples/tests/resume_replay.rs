//! After a resumed full load, through the `dts` command on real servers: replication starts
//! at the first snapshot's position and replays the changes made between the two
//! snapshots. DDL on a table copied under the later snapshot is skipped like its row
//! changes; a value that moved between keys on a secondary unique index is replayed to the
//! source's final state; and a table changed while its copy is unfinished stops the run
//! naming the table and the column.
//!
//! `cargo test -p dts-examples --test resume_replay`

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_table_equal, dts, text, Env};

/// A keyed table copied slowly in many chunks (first in the copy's order), a table without
/// a key, and a keyed table with a secondary unique index.
fn tables() -> String {
    let mut sql = String::from(
        "CREATE TABLE a_big (id INT PRIMARY KEY, v INT NOT NULL, w INT);\n\
         CREATE TABLE nk (v INT, s VARCHAR(20));\n\
         INSERT INTO nk VALUES (1, 'one'), (2, 'two'), (2, 'two');\n\
         CREATE TABLE u (id INT PRIMARY KEY, code VARCHAR(10) NOT NULL, UNIQUE KEY code (code));\n\
         INSERT INTO u VALUES (1, 'a'), (2, 'b');\n",
    );
    sql.push_str("INSERT INTO a_big VALUES ");
    for i in 1..=3000 {
        if i > 1 {
            sql.push(',');
        }
        sql.push_str(&format!("({i}, {}, {})", i * 7, i % 13));
    }
    sql.push_str(";\n");
    sql
}

const ALL: &str = "[\"schema\", \"full\", \"incremental\"]";

fn count(env: &Env, sql: &str) -> i64 {
    dts_testkit::postgres()
        .query_in(&env.target_db, sql)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Runs the task throttled and kills it (SIGKILL) once a first chunk of `a_big` committed,
/// before the copy reached the other tables; then writes the task file without throttle.
async fn killed_during_full_load(env: &Env) -> String {
    let slow = env.task_file(
        ALL,
        "full.rows_per_chunk = 100\nfull.workers = 2\nfull.max_rows_per_second = 300\n\
         incremental.max_batch_rows = 1\n",
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_dts"))
        .args(["run", "--config", slow.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while count(env, "SELECT count(*) FROM dts_meta.chunk WHERE task = 't'") < 1 {
        assert!(child.try_wait().unwrap().is_none(), "the first run ended");
        assert!(started.elapsed() < Duration::from_secs(120), "no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        count(
            env,
            "SELECT count(*) FROM dts_meta.chunk WHERE task = 't' AND table_name <> 'a_big'"
        ),
        0,
        "the killed run copied more than a_big"
    );
    // One batch per source transaction, so replayed changes are not coalesced away.
    let task = env.task_file(ALL, "full.workers = 2\nincremental.max_batch_rows = 1\n");
    task.to_str().unwrap().to_string()
}

/// The target table's columns, in order, as `name type` lines.
fn target_columns(env: &Env, table: &str) -> String {
    env.pg(&format!(
        "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) \
         FROM information_schema.columns WHERE table_schema = '{}' AND table_name = '{table}'",
        env.db
    ))
}

fn source_columns(env: &Env, table: &str) -> String {
    env.my(&format!(
        "SELECT GROUP_CONCAT(COLUMN_NAME ORDER BY ORDINAL_POSITION) \
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{}' AND TABLE_NAME = '{table}'",
        env.db
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn ddl_and_unique_moves_between_resumed_snapshots_replicate_exactly() {
    let env = Env::new("resume_replay", &tables());
    let task = killed_during_full_load(&env).await;
    // Between the two snapshots: a value moves from key 1 to key 2 on the unique index
    // (through a third value), and the keyless table is dropped and created again with
    // other rows, then altered back and forth. `u` and `nk` are copied under the later
    // snapshot; replication replays all of this from the first one.
    env.my("UPDATE u SET code = 'v' WHERE id = 1; \
         UPDATE u SET code = 'a2' WHERE id = 1; \
         UPDATE u SET code = 'v' WHERE id = 2; \
         DROP TABLE nk; \
         CREATE TABLE nk (v INT, s VARCHAR(20)); \
         INSERT INTO nk VALUES (10, 'ten'), (11, 'eleven'); \
         ALTER TABLE nk ADD COLUMN tmp INT; \
         UPDATE nk SET tmp = v; \
         ALTER TABLE nk DROP COLUMN tmp; \
         UPDATE a_big SET w = NULL WHERE id <= 5;");
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    // Changes after the later snapshot are still applied, DDL included.
    env.my(
        "ALTER TABLE nk ADD COLUMN extra INT DEFAULT 5; INSERT INTO nk VALUES (12, 'twelve', 6); \
         UPDATE u SET code = 'w' WHERE id = 1;",
    );
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    for table in ["a_big", "nk", "u"] {
        assert_eq!(
            target_columns(&env, table),
            source_columns(&env, table),
            "columns of {table}"
        );
    }
    assert_eq!(assert_table_equal(&env, "a_big", &env.db).await, 3000);
    assert_eq!(assert_table_equal(&env, "nk", &env.db).await, 3);
    assert_eq!(assert_table_equal(&env, "u", &env.db).await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_changed_during_an_unfinished_copy_stops_the_resumed_run() {
    let env = Env::new("resume_changed", &tables());
    let task = killed_during_full_load(&env).await;
    env.my("ALTER TABLE a_big DROP COLUMN w");
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("`{}.a_big`", env.db)) && err.contains("column `w` was dropped"),
        "{}",
        text(&out)
    );
    // Reverted, the run goes on and ends equal.
    env.my("ALTER TABLE a_big ADD COLUMN w INT; UPDATE a_big SET w = id % 13");
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(assert_table_equal(&env, "a_big", &env.db).await, 3000);
    assert_eq!(assert_table_equal(&env, "u", &env.db).await, 2);
}
