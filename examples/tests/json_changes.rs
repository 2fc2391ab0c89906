//! The `json_changes` example run as written against a private MariaDB.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::Env;
use serde_json::json;

/// Kills the child when dropped (a failing test leaves no process behind).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The lines a child writes to one of its pipes, as they come.
fn lines(pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

#[test]
fn json_changes_prints_each_change_stops_on_ctrl_c_and_replays_from_a_position() {
    let env = Env::new(
        "ex_json",
        "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20), price DECIMAL(10,2));
         CREATE TABLE other (id INT PRIMARY KEY);",
    );
    let mut child = Running(
        Command::new(env!("CARGO_BIN_EXE_json_changes"))
            .args([
                dts_testkit::mariadb().url().as_str(),
                "--database",
                env.db.as_str(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = lines(child.0.stdout.take().unwrap());
    let stderr = lines(child.0.stderr.take().unwrap());
    let started = stderr.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(started.starts_with("reading changes from"), "{started}");

    // Changes in this database, in three transactions; and one elsewhere, not printed.
    dts_testkit::mariadb()
        .exec(
            "CREATE DATABASE IF NOT EXISTS ex_json_elsewhere; \
               CREATE TABLE IF NOT EXISTS ex_json_elsewhere.x (id INT); \
               INSERT INTO ex_json_elsewhere.x VALUES (1)",
        )
        .unwrap();
    env.my(
        "BEGIN; INSERT INTO t VALUES (1, 'a', 1.50), (2, NULL, NULL); \
         INSERT INTO other VALUES (9); COMMIT; \
         UPDATE t SET name = 'b', price = 2 WHERE id = 1; \
         DELETE FROM t WHERE id = 2;",
    );
    let table = format!("{}.t", env.db);
    let expected = vec![
        json!({"table": table, "kind": "insert",
               "after": {"id": {"Int": 1}, "name": {"Text": "a"}, "price": {"Decimal": "1.50"}}}),
        json!({"table": table, "kind": "insert",
               "after": {"id": {"Int": 2}, "name": "Null", "price": "Null"}}),
        json!({"table": format!("{}.other", env.db), "kind": "insert", "after": {"id": {"Int": 9}}}),
        json!({"table": table, "kind": "update",
               "before": {"id": {"Int": 1}, "name": {"Text": "a"}, "price": {"Decimal": "1.50"}},
               "after": {"id": {"Int": 1}, "name": {"Text": "b"}, "price": {"Decimal": "2.00"}}}),
        json!({"table": table, "kind": "delete",
               "before": {"id": {"Int": 2}, "name": "Null", "price": "Null"}}),
    ];

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut printed = Vec::new();
    while printed.len() < expected.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = stdout
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("only these lines arrived: {printed:#?}"));
        printed.push(serde_json::from_str::<serde_json::Value>(&line).unwrap());
    }
    assert_eq!(printed, expected);

    // Ctrl-C: it stops cleanly and prints nothing more.
    let status = Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = child.0.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "json_changes did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        exit.success(),
        "{exit:?}: {:?}",
        stderr.iter().collect::<Vec<_>>()
    );
    // The pipe is closed now: these are all the lines that came after.
    let rest: Vec<String> = stdout.iter().collect();
    assert!(rest.is_empty(), "{rest:?}");

    // Read again from the same start, it prints the same lines and stops by itself.
    let from = started["reading changes from ".len()..]
        .split(' ')
        .next()
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_json_changes"))
        .args([
            "--database",
            env.db.as_str(),
            "--from",
            from,
            "--until-caught-up",
        ])
        .env("DTS_SOURCE_URL", dts_testkit::mariadb().url())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::text(&out));
    let again: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(again, expected, "{}", common::text(&out));
}
