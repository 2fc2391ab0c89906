//! A full load killed with SIGKILL again and again, many times in the post-data step (the
//! index builds), and resumed each time: every resumed run must finish with exit 0 and the
//! target must equal the source (row count and a checksum over every column, each round).
//!
//! A killed run leaves its index builds running on the target server for a while (a busy
//! backend notices its client is gone only when it next talks to it). The resumed run must
//! neither deadlock with them nor with itself.
//!
//! ```text
//! cargo test -p dts-examples --test resume_postdata
//! ```

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{dts, text, Env};

/// Rows of the table, as in the report: a 1M-row table.
const ROWS: u32 = 1_000_000;

/// Kill-and-resume rounds.
const ROUNDS: usize = 20;

/// The benchmark's `orders` table: a primary key and one secondary index, both built in the
/// post-data step.
fn orders_table(rows: u32) -> String {
    format!(
        "CREATE TABLE orders (
           id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
           customer_id INT NOT NULL,
           status VARCHAR(16) NOT NULL,
           amount DECIMAL(12,2) NOT NULL,
           created_at DATETIME NOT NULL,
           note VARCHAR(64) NOT NULL,
           KEY orders_customer_id (customer_id));
         INSERT INTO orders (id, customer_id, status, amount, created_at, note)
         SELECT seq, 1 + (seq * 7919) % 50000,
           ELT(1 + seq % 5, 'new', 'paid', 'shipped', 'delivered', 'cancelled'),
           ((seq * 104729) % 10000000) / 100,
           TIMESTAMP'2020-01-01 00:00:00' + INTERVAL ((seq * 7727) % 126230400) SECOND,
           CONCAT('order ', seq, ' ', LEFT(MD5(seq), 16))
         FROM seq_1_to_{rows};"
    )
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

/// A connection to the target database, for polling.
async fn pg_client(env: &Env) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&env.pg_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// Waits until an index build runs in the target database (the post-data step began), or
/// the run ended. Returns whether a build was seen.
async fn wait_for_index_build(pg: &tokio_postgres::Client, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        let building: i64 = pg
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND pid <> pg_backend_pid() AND state = 'active' \
                 AND query ILIKE 'CREATE%INDEX%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if building > 0 {
            return true;
        }
        assert!(Instant::now() < deadline, "the post-data step never began");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Puts the target back where a run stands when the last chunk has been copied: the
/// indexes and the primary key are dropped, and the post-data step (and the full load,
/// which ends with it) are no longer recorded as done.
async fn reset_post_data(env: &Env, pg: &tokio_postgres::Client) {
    let schema = &env.db;
    pg.batch_execute(&format!(
        "ALTER TABLE \"{schema}\".orders DROP CONSTRAINT IF EXISTS orders_pkey; \
         DELETE FROM dts_meta.step WHERE task = 't' \
           AND (step LIKE 'schema.post_data%' OR step = 'full')"
    ))
    .await
    .unwrap();
    let indexes = pg
        .query(
            "SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = 'orders'",
            &[schema],
        )
        .await
        .unwrap();
    for row in indexes {
        let name: String = row.get(0);
        pg.batch_execute(&format!("DROP INDEX \"{schema}\".\"{name}\""))
            .await
            .unwrap();
    }
}

/// The target server's reports of deadlocks, if its log is at hand.
fn deadlock_reports() -> String {
    let Some(path) = dts_testkit::postgres().log_file() else {
        return String::new();
    };
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.contains("deadlock detected") {
            out.extend(lines[i..(i + 8).min(lines.len())].iter().copied());
        }
    }
    out.join("\n")
}

/// Row count and an order-independent checksum of the source table.
fn source_checksum(env: &Env) -> String {
    env.my(
        "SELECT CONCAT(COUNT(*), ' ', SUM(CAST(CONV(LEFT(MD5(CONCAT_WS('|', id, customer_id, \
         status, amount, created_at, note)), 8), 16, 10) AS UNSIGNED))) FROM orders",
    )
}

/// Row count and the same checksum of the target table.
async fn target_checksum(env: &Env, pg: &tokio_postgres::Client) -> String {
    let row = pg
        .query_one(
            &format!(
                "SELECT count(*)::text || ' ' || coalesce(sum(('x' || left(md5(concat_ws('|', \
                 id, customer_id, status, amount, to_char(created_at, 'YYYY-MM-DD HH24:MI:SS'), \
                 note)), 8))::bit(32)::bigint), 0)::text FROM \"{}\".orders",
                env.db
            ),
            &[],
        )
        .await
        .unwrap();
    row.get(0)
}

/// The primary key and the secondary index exist in the target.
async fn assert_post_data_done(env: &Env, pg: &tokio_postgres::Client, round: usize) {
    let row = pg
        .query_one(
            "SELECT (SELECT count(*) FROM pg_indexes WHERE schemaname = $1 \
                     AND tablename = 'orders'), \
                    (SELECT count(*) FROM pg_constraint \
                     WHERE conrelid = ($1 || '.orders')::regclass AND contype = 'p')",
            &[&env.db],
        )
        .await
        .unwrap();
    let (indexes, pkeys): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(
        (indexes, pkeys),
        (2, 1),
        "round {round}: indexes and primary key"
    );
}

#[tokio::test]
async fn post_data_survives_repeated_kills_and_resumes() {
    let started = Instant::now();
    let env = Env::new("resume_pd", &orders_table(ROWS));
    let task = env.task_file("[\"schema\", \"full\"]", "");
    let task = task.to_str().unwrap().to_string();
    let expected = source_checksum(&env);
    let mut pg: Option<tokio_postgres::Client> = None;
    let mut failures = Vec::new();
    for round in 0..ROUNDS {
        let kill_at = if round == 0 {
            // As the report did it: killed 1.5 s after the start, then the next run 1.0 s
            // after its start (the copy, or the post-data step of a run that resumed it).
            for delay in [1500, 1000] {
                let mut child = spawn_run(&task);
                tokio::time::sleep(Duration::from_millis(delay)).await;
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
            }
            "at 1.5 s, then at 1.0 s".to_string()
        } else {
            // Killed at varied short delays after the index builds began.
            let mut child = spawn_run(&task);
            let client = pg.as_ref().unwrap();
            assert!(
                wait_for_index_build(client, &mut child).await,
                "round {round}: the run ended before the post-data step"
            );
            let delay = u64::try_from(round * 37 % 300).unwrap();
            tokio::time::sleep(Duration::from_millis(delay)).await;
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            format!("{delay} ms into the post-data step")
        };
        let out = dts(&["run", "--config", &task]);
        if !out.status.success() {
            failures.push(format!(
                "round {round} (killed {kill_at}): {}\n--- server log\n{}",
                text(&out),
                deadlock_reports()
            ));
            // Finish the task so the next round starts from a completed one.
            let again = dts(&["run", "--config", &task]);
            assert!(again.status.success(), "{}", text(&again));
        }
        if pg.is_none() {
            pg = Some(pg_client(&env).await);
        }
        let client = pg.as_ref().unwrap();
        assert_post_data_done(&env, client, round).await;
        assert_eq!(
            target_checksum(&env, client).await,
            expected,
            "round {round}: count and checksum"
        );
        if round + 1 < ROUNDS {
            reset_post_data(&env, client).await;
        }
        eprintln!(
            "round {round} done at {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {ROUNDS} resumed runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "{ROUNDS} kill-and-resume rounds in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
