//! Full data migration end to end, through the `dts` command, on real servers.

mod common;

use std::time::{Duration, Instant};

use common::{assert_table_equal, dts, numbers_table, source_tables, text, Env};
use mysql_async::prelude::*;

const FIXTURE: &str = include_str!("../../fixtures/mysql/shop.sql");

#[tokio::test]
async fn fixture_database_is_copied_value_for_value() {
    let env = Env::new("full_fixture", FIXTURE);
    let task = env.task_file("[\"schema\", \"full\"]", "full.rows_per_chunk = 2\n");
    let out = dts(&["run", "--config", task.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("zero dates written as NULL"),
        "{}",
        text(&out)
    );

    let tables = source_tables(&env);
    assert_eq!(tables.len(), 8);
    let mut rows = 0;
    for t in &tables {
        rows += assert_table_equal(&env, t, &env.db).await;
    }
    assert!(rows >= 25, "{rows}");
    // Duplicate rows of a keyless table are all there.
    assert_eq!(
        env.pg(&format!(
            "SELECT count(*) FROM {}.audit_log WHERE message = 'dup'",
            env.db
        )),
        "2"
    );
    // Identity continues after the copied rows; sequences are past the maximum.
    assert_eq!(
        env.pg(&format!(
            "INSERT INTO {}.customers (email) VALUES ('new@x') RETURNING id",
            env.db
        ))
        .lines()
        .next()
        .unwrap(),
        "5"
    );

    // Running the finished task again does nothing.
    let again = dts(&["run", "--config", task.to_str().unwrap()]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("already finished"),
        "{}",
        text(&again)
    );
}

#[tokio::test]
async fn copy_under_concurrent_writes_equals_the_snapshot() {
    let env = Env::new(
        "full_snapshot",
        &(numbers_table(60_000) + "CREATE TABLE changes (seq INT PRIMARY KEY);"),
    );
    let url = env.mysql_url();
    // One writer, committing in sequence order: each transaction changes `numbers` and
    // records its sequence number in `changes`, atomically.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let writer = tokio::spawn(async move {
        let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&url).unwrap())
            .await
            .unwrap();
        let mut seq: i64 = 0;
        while !*stop_rx.borrow() && seq < 20_000 {
            seq += 1;
            let mut tx = conn
                .start_transaction(mysql_async::TxOpts::default())
                .await
                .unwrap();
            match seq % 3 {
                0 => tx
                    .exec_drop(
                        "INSERT INTO numbers VALUES (100, ?, 'new', 1, NOW(6), NULL)",
                        (seq,),
                    )
                    .await
                    .unwrap(),
                1 => tx
                    .exec_drop(
                        "UPDATE numbers SET label = CONCAT('upd-', ?) WHERE grp = ? % 7 AND id = ?",
                        (seq, seq * 2, seq * 2),
                    )
                    .await
                    .unwrap(),
                _ => tx
                    .exec_drop(
                        "DELETE FROM numbers WHERE grp = ? % 7 AND id = ?",
                        (seq * 2 + 1, seq * 2 + 1),
                    )
                    .await
                    .unwrap(),
            }
            tx.exec_drop("INSERT INTO changes VALUES (?)", (seq,))
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        seq
    });
    // Let the writer get going, then copy while it runs.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let task = env.task_file(
        "[\"schema\", \"full\"]",
        "full.rows_per_chunk = 3000\nfull.workers = 3\n",
    );
    let out =
        tokio::task::spawn_blocking(move || dts(&["run", "--config", task.to_str().unwrap()]))
            .await
            .unwrap();
    stop_tx.send(true).unwrap();
    let written = writer.await.unwrap();
    assert!(out.status.success(), "{}", text(&out));

    // The snapshot holds a prefix of the writer's transactions.
    let max_seq: i64 = env
        .pg(&format!(
            "SELECT coalesce(max(seq), 0) FROM {}.changes",
            env.db
        ))
        .parse()
        .unwrap();
    let count: i64 = env
        .pg(&format!("SELECT count(*) FROM {}.changes", env.db))
        .parse()
        .unwrap();
    assert_eq!(
        count, max_seq,
        "the snapshot is not a prefix of the commits"
    );
    assert!(
        max_seq > 0 && max_seq < written,
        "max {max_seq} written {written}"
    );

    // The recorded position is the snapshot's: after it, the binlog holds exactly the
    // writer's transactions that the snapshot does not.
    let position = env.pg("SELECT position::text FROM dts_meta.snapshot WHERE task = 't'");
    let file = position
        .split("\"file\": \"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let offset: u64 = position
        .split("\"offset\": ")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .unwrap()
        .parse()
        .unwrap();
    let mut after = 0i64;
    let files: Vec<String> = env
        .my("SHOW BINARY LOGS")
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .filter(|f| f.as_str() >= file.as_str())
        .collect();
    for f in files {
        let from = if f == file { offset } else { 4 };
        let events = env.my(&format!("SHOW BINLOG EVENTS IN '{f}' FROM {from}"));
        let n = events
            .lines()
            .filter(|l| l.contains(&format!("({}.changes)", env.db)) && l.contains("Table_map"))
            .count();
        after += i64::try_from(n).unwrap();
    }
    assert_eq!(
        after,
        written - max_seq,
        "transactions on `changes` in the binlog after the snapshot position"
    );

    // Undo the transactions after the snapshot on a copy of the source, then compare.
    let mut script = String::new();
    for seq in (max_seq + 1..=written).rev() {
        let sql = match seq % 3 {
            0 => format!("DELETE FROM numbers WHERE grp = 100 AND id = {seq}"),
            1 => {
                // Restore the label the row had before this update (or before the earlier
                // update of the same row by the writer, which cannot happen: ids differ).
                format!(
                    "UPDATE numbers SET label = CONCAT('row-', {id}) WHERE grp = {id} % 7 AND id = {id}",
                    id = seq * 2
                )
            }
            _ => {
                let id = seq * 2 + 1;
                if id > 60_000 {
                    "DO 0".to_string()
                } else {
                    format!(
                    "INSERT INTO numbers VALUES ({id} % 7, {id}, CONCAT('row-', {id}), {id} * 1.0001, \
                     '2024-01-01' + INTERVAL {id} SECOND, UNHEX(MD5({id})))"
                    )
                }
            }
        };
        script.push_str(&format!("{sql}; DELETE FROM changes WHERE seq = {seq};\n"));
    }
    env.my(&script);
    assert_table_equal(&env, "numbers", &env.db).await;
    assert_table_equal(&env, "changes", &env.db).await;
}

#[tokio::test]
async fn sigkill_at_several_points_resumes_exactly() {
    let env = Env::new("full_kill", &numbers_table(120_000));
    // Throttled so the copy lasts long enough to be killed at chosen points.
    let task = env.task_file(
        "[\"schema\", \"full\"]",
        "full.rows_per_chunk = 2000\nfull.workers = 2\nfull.max_rows_per_second = 40000\n",
    );
    let task = task.to_str().unwrap().to_string();
    let chunks_done = || -> i64 {
        // Before the first run creates it, the checkpoint table does not exist: 0 chunks.
        dts_testkit::postgres()
            .query_in(
                &env.target_db,
                "SELECT count(*) FROM dts_meta.chunk WHERE task = 't'",
            )
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    // Kill points: during start-up (before or during the schema phase), then after the
    // given fractions of the planned chunks committed.
    let planned = || -> i64 {
        dts_testkit::postgres()
            .query_in(
                &env.target_db,
                "SELECT jsonb_array_length(plan) FROM dts_meta.chunk_plan WHERE task = 't'",
            )
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    common::kill_at_chunk_points(&task, &[-1, 15, 35, 55, 80], chunks_done, planned).await;
    common::resume_after_kills(&task);
    assert_eq!(assert_table_equal(&env, "numbers", &env.db).await, 120_000);
    // The primary key in the target would have refused duplicates; check the count too.
    assert_eq!(
        env.pg(&format!("SELECT count(*) FROM {}.numbers", env.db)),
        "120000"
    );
}

#[tokio::test]
async fn a_bad_value_stops_with_its_key_or_goes_to_the_reject_file() {
    let env = Env::new(
        "full_bad",
        "CREATE TABLE notes (id INT PRIMARY KEY, body TEXT);
         INSERT INTO notes SELECT seq, CONCAT('note ', seq) FROM seq_1_to_500;
         UPDATE notes SET body = CONCAT('a', CHAR(0), 'b') WHERE id = 321;",
    );
    // With the value scan before copying, the precheck finds the NUL and nothing is written.
    let task = env.task_file("[\"schema\", \"full\"]", "full.precheck_values = true\n");
    let out = dts(&["run", "--config", task.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("source.values"), "{}", text(&out));
    assert!(
        err.contains("notes") && err.contains("body"),
        "{}",
        text(&out)
    );
    assert_eq!(
        env.pg(&format!(
            "SELECT count(*) FROM pg_namespace WHERE nspname = '{}'",
            env.db
        )),
        "0"
    );
    let report = dts(&["precheck", "--config", task.to_str().unwrap()]);
    assert_eq!(report.status.code(), Some(1), "{}", text(&report));

    // By default the copy checks every value: it stops at the bad row, naming table,
    // column and key, and the chunk holding it is not committed.
    let task = env.task_file("[\"schema\", \"full\"]", "full.rows_per_chunk = 100\n");
    let out = dts(&["run", "--config", task.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("`{}.notes`.`body`", env.db)) && err.contains("id=321"),
        "{}",
        text(&out)
    );
    assert!(err.contains("NUL"), "{}", text(&out));
    // The chunk holding id 321, from the stored plan: not recorded as done, none of its rows
    // in the target.
    let plan = env.pg(
        "SELECT (c->>'index') || ' ' || coalesce(c->'lower'->0->>'Int', '-') || ' ' || \
                coalesce(c->'upper'->0->>'Int', '-') \
         FROM dts_meta.chunk_plan, jsonb_array_elements(plan) c WHERE task = 't'",
    );
    let (index, lower, upper) = plan
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (
                f[0].to_string(),
                f[1].parse::<i64>().ok(),
                f[2].parse::<i64>().ok(),
            )
        })
        .find(|(_, lo, hi)| lo.is_none_or(|lo| lo <= 321) && hi.is_none_or(|hi| 321 < hi))
        .unwrap();
    assert_eq!(
        env.pg(&format!(
            "SELECT count(*) FROM {}.notes WHERE id >= {} AND id < {}",
            env.db,
            lower.unwrap_or(i64::MIN),
            upper.unwrap_or(i64::MAX)
        )),
        "0",
        "the chunk with the bad row was committed"
    );
    assert_eq!(
        env.pg(&format!(
            "SELECT count(*) FROM dts_meta.chunk WHERE task = 't' AND table_name = 'notes' \
             AND chunk = {index}"
        )),
        "0"
    );
    // Fixing the source and running again finishes the copy exactly.
    env.my("UPDATE notes SET body = 'fixed' WHERE id = 321");
    let out = dts(&["run", "--config", task.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(assert_table_equal(&env, "notes", &env.db).await, 500);

    // The reject policy, on a fresh target.
    env.my("UPDATE notes SET body = CONCAT('a', CHAR(0), 'b') WHERE id = 321");
    dts_testkit::postgres()
        .create_database(&env.target_db)
        .unwrap();

    // Reject policy: the row goes to the reject file with its key, the rest is copied.
    let rejects = env.dir.join("rejects.tsv");
    let task = env.task_file(
        "[\"schema\", \"full\"]",
        &format!(
            "full.bad_rows = \"reject\"\nfull.reject_file = \"{}\"\nfull.rows_per_chunk = 100\n",
            rejects.display()
        ),
    );
    let out = dts(&["run", "--config", task.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 rows rejected"),
        "{}",
        text(&out)
    );
    let file = std::fs::read_to_string(&rejects).unwrap();
    assert_eq!(file.lines().count(), 1, "{file}");
    assert!(
        file.contains("notes") && file.contains("body") && file.contains("id=321"),
        "{file}"
    );
    assert_eq!(
        env.pg(&format!("SELECT count(*) FROM {}.notes", env.db)),
        "499"
    );
    assert_eq!(
        env.pg(&format!(
            "SELECT count(*) FROM {}.notes WHERE id = 321",
            env.db
        )),
        "0"
    );
}

#[tokio::test]
async fn a_large_value_is_copied_exactly_with_bounded_memory() {
    let env = Env::new(
        "full_large",
        "CREATE TABLE files (id INT PRIMARY KEY, content LONGBLOB, body LONGTEXT);
         INSERT INTO files VALUES (1, REPEAT(x'00FF10', 20000000), REPEAT('é', 5000000)),
                                  (2, x'', '');",
    );
    let task = env.task_file("[\"schema\", \"full\"]", "");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dts"))
        .args(["run", "--config", task.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak_kb = 0u64;
    while child.try_wait().unwrap().is_none() {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            if let Some(l) = status.lines().find(|l| l.starts_with("VmHWM:")) {
                peak_kb = l
                    .split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(peak_kb)
                    .max(peak_kb);
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let source = env.my("SELECT MD5(content), MD5(body) FROM files WHERE id = 1");
    let target = env.pg(&format!(
        "SELECT md5(content) || E'\\t' || md5(convert_to(body, 'UTF8')) FROM {}.files WHERE id = 1",
        env.db
    ));
    assert_eq!(source.to_lowercase(), target);
    eprintln!("peak memory of dts copying a 60 MB value: {peak_kb} kB");
    // A 60 MB value passes through a few buffers, never the whole table or chunk.
    assert!(peak_kb < 600_000, "peak memory {peak_kb} kB");
}

#[tokio::test]
async fn rejected_rows_are_on_disk_before_their_chunk_commits() {
    // Every 100th row holds a NUL (which PostgreSQL text cannot hold); the copy is throttled
    // and killed once some chunks committed: each row missing from a committed chunk must
    // already be in the reject file.
    let env = Env::new(
        "full_rejkill",
        "CREATE TABLE notes (id INT PRIMARY KEY, body TEXT);
         INSERT INTO notes SELECT seq, IF(seq % 100 = 0, CONCAT('a', CHAR(0), 'b'),
           CONCAT('note ', seq)) FROM seq_1_to_40000;",
    );
    let rejects = env.dir.join("rejects.tsv");
    let _ = std::fs::remove_file(&rejects);
    let task = env.task_file(
        "[\"schema\", \"full\"]",
        &format!(
            "full.bad_rows = \"reject\"\nfull.reject_file = \"{}\"\nfull.rows_per_chunk = 1000\n\
             full.workers = 2\nfull.max_rows_per_second = 8000\n",
            rejects.display()
        ),
    );
    let task = task.to_str().unwrap().to_string();
    let committed = || -> i64 {
        dts_testkit::postgres()
            .query_in(
                &env.target_db,
                "SELECT count(*) FROM dts_meta.chunk WHERE task = 't'",
            )
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dts"))
        .args(["run", "--config", &task])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while committed() < 3 {
        assert!(child.try_wait().unwrap().is_none(), "the copy ended early");
        assert!(started.elapsed() < Duration::from_secs(120), "no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // The rows of committed chunks that are not in the target: every one is in the file. A
    // chunk commits whole and holds about 1,000 rows, so when both neighbours of row g are
    // in the target, the chunk of g committed.
    let missing = env.pg(&format!(
        "SELECT string_agg(g::text, ',' ORDER BY g) FROM generate_series(1, 40000) g \
         WHERE g % 100 = 0 AND NOT EXISTS (SELECT 1 FROM {s}.notes n WHERE n.id = g) \
         AND EXISTS (SELECT 1 FROM {s}.notes n WHERE n.id = g - 1) \
         AND EXISTS (SELECT 1 FROM {s}.notes n WHERE n.id = g + 1)",
        s = env.db
    ));
    assert!(
        !missing.is_empty(),
        "no chunk with a rejected row committed"
    );
    let file = std::fs::read_to_string(&rejects).unwrap_or_default();
    for id in missing.split(',') {
        assert!(
            file.contains(&format!("id={id})")),
            "row {id} left out of a committed chunk is not in the reject file:\n{file}"
        );
    }
}

/// Every type the reader converts straight into PostgreSQL's binary `COPY` form (plain
/// re-encodings and the ones it converts with the mapping), at its edges, and values the
/// mapping replaces (zero dates): the same rows in `straight`, whose rows the reader
/// converts, and in `as_values`, which a `tinyint(1)` mapped to `boolean` keeps on values.
const EVERY_CONVERTED_TYPE: &str = r#"
SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION';
SET SESSION time_zone = '+00:00';
CREATE TABLE straight (
  id INT NOT NULL PRIMARY KEY,
  ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, su SMALLINT UNSIGNED,
  mi MEDIUMINT, mu MEDIUMINT UNSIGNED, ii INT, iu INT UNSIGNED, bi BIGINT, bu BIGINT UNSIGNED,
  d65 DECIMAL(65,30), d10 DECIMAL(10,2) UNSIGNED, d5 DECIMAL(5,0), d4 DECIMAL(4,4),
  fl FLOAT, db DOUBLE, bt BIT(10),
  dt DATE, dtt DATETIME, dt6 DATETIME(6), ts TIMESTAMP(3) NULL DEFAULT NULL,
  tm TIME, tm6 TIME(6), yr YEAR,
  ch CHAR(10), vc VARCHAR(255) CHARACTER SET utf8mb4, l1 VARCHAR(20) CHARACTER SET latin1,
  tx TEXT, lt LONGTEXT,
  bn BINARY(4), vbn VARBINARY(16), tb TINYBLOB, lb LONGBLOB,
  en ENUM('A', 'b', 'C d'), st SET('x', 'Y', 'z'), js JSON
) ENGINE=InnoDB;
INSERT INTO straight VALUES
  (1, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0,
   '-99999999999999999999999999999999999.999999999999999999999999999999', 0.00, -99999, -0.9999,
   -3.40282e38, -1.7976931348623157e308, b'0000000000',
   '1000-01-01', '1000-01-01 00:00:00', '1000-01-01 00:00:00.000000', '1970-01-01 00:00:01.000',
   '-838:59:59', '-838:59:58.999999', 1901, '', '', '', '', '',
   x'00000000', x'', x'', x'', 'A', '', '[]'),
  (2, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295,
   9223372036854775807, 18446744073709551615,
   '99999999999999999999999999999999999.999999999999999999999999999999', 99999999.99, 99999, 0.9999,
   3.40282e38, 1.7976931348623157e308, b'1111111111',
   '9999-12-31', '9999-12-31 23:59:59', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999',
   '838:59:59', '838:59:58.999999', 2155, 'zzzzzzzzzz', REPEAT('é', 255), 'åäö ÅÄÖ',
   'tab\there\nnewline\\back\rcr', REPEAT('x', 70000),
   x'DEADBEEF', x'00FF00FF00', x'00', x'0001020300', 'C d', 'x,Y,z',
   '{\"a\": [1, 2.50, \"x\\\\ty\"], \"b\": null, \"c\": {\"d\": 1e100}}'),
  (3, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, '0.000000000000000000000000000001', 0.01, -1, 0.0001,
   1.17549e-38, 2.2250738585072014e-308, b'1000000001',
   '2024-02-29', '2024-02-29 12:34:56', '2024-02-29 12:34:56.000001', '2024-02-29 12:34:56.500',
   '00:00:00', '-00:00:00.000001', 0, 'a', 'emoji 😀 𝄞', 'a', 'a', 'a',
   x'61000000', x'6100', NULL, NULL, 'b', 'Y', '\"just a string\"'),
  (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   -0.0, 0.1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  -- Zero dates: written as NULL by the mapping (and counted), so the row goes as values.
  (5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, '5', 5, 5, 0.5, 5, 5, b'101',
   '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00', NULL,
   '01:02:03', '01:02:03.5', 2024, 'five', 'five', 'five', 'five', 'five',
   x'05050505', x'05', x'05', x'05', 'b', 'x', '5');
INSERT INTO straight (id, ti, vc, dtt, d10)
  SELECT seq, seq % 100, CONCAT('row ', seq), '2024-01-01 00:00:00' + INTERVAL seq SECOND, seq / 100
  FROM seq_6_to_3000;
CREATE TABLE as_values LIKE straight;
ALTER TABLE as_values ADD COLUMN flag TINYINT(1) NOT NULL DEFAULT 1;
INSERT INTO as_values SELECT *, 1 FROM straight;
"#;

#[tokio::test]
async fn rows_converted_while_reading_arrive_as_rows_converted_as_values() {
    let env = Env::new("full_straight", EVERY_CONVERTED_TYPE);
    let task = env.task_file(
        "[\"schema\", \"full\"]",
        "full.rows_per_chunk = 1000\nfull.workers = 2\ntypes.tinyint1_as_boolean = true\n",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dts"))
        .args(["run", "--config", task.to_str().unwrap()])
        .env("DTS_LOG", "dts::full=debug")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let log = String::from_utf8_lossy(&out.stderr);
    for (table, encoded) in [("straight", true), ("as_values", false)] {
        let line = format!("table={}.{table} encoded={encoded}", env.db);
        assert!(log.contains(&line), "no `{line}` in the log:\n{log}");
    }
    // The zero dates of row 5 were replaced and counted, as through values.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("zero dates written as NULL"),
        "{}",
        text(&out)
    );

    assert_eq!(assert_table_equal(&env, "straight", &env.db).await, 3000);
    // Both paths wrote the same values, compared by PostgreSQL as they are stored (the
    // columns of `straight`: `as_values` has its boolean besides).
    assert_eq!(
        env.pg(&format!("SELECT count(*) FROM {}.as_values", env.db)),
        "3000"
    );
    let columns = env.pg(&format!(
        "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute \
         WHERE attrelid = '{}.straight'::regclass AND attnum > 0 AND NOT attisdropped",
        env.db
    ));
    let differ = env.pg(&format!(
        "SELECT count(*) FROM ((SELECT {columns} FROM {db}.straight EXCEPT ALL \
         SELECT {columns} FROM {db}.as_values) UNION ALL (SELECT {columns} FROM {db}.as_values \
         EXCEPT ALL SELECT {columns} FROM {db}.straight)) d",
        db = env.db
    ));
    assert_eq!(differ, "0");
}
