//! Tables of a non-transactional storage engine (Aria, MyISAM), which a consistent snapshot
//! does not hold still: the precheck refuses them by default, naming the fix; with
//! `full.non_transactional = "lock"` they are locked from before the snapshot until their
//! copy is done, and a writer running all along leaves the target equal to the source,
//! value for value, without duplicate rows (the tables have no key, so a row copied and
//! replayed would show twice).
//!
//! ```text
//! cargo test -p dts-examples --test non_transactional
//! ```

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{assert_table_equal, dts, text, Env};
use mysql_async::prelude::*;

const ROWS: u32 = 30_000;

fn tables_sql() -> String {
    format!(
        "CREATE TABLE log_aria (n INT NOT NULL, note VARCHAR(40) NOT NULL) ENGINE=Aria;
         CREATE TABLE log_myisam (n INT NOT NULL, note VARCHAR(40) NOT NULL) ENGINE=MyISAM;
         CREATE TABLE kept (id INT PRIMARY KEY, note VARCHAR(40) NOT NULL) ENGINE=InnoDB;
         INSERT INTO log_aria SELECT seq, CONCAT('a-', seq) FROM seq_1_to_{ROWS};
         INSERT INTO log_myisam SELECT seq, CONCAT('m-', seq) FROM seq_1_to_{ROWS};
         INSERT INTO kept SELECT seq, CONCAT('k-', seq) FROM seq_1_to_{ROWS};"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_transactional_tables_are_refused_or_copied_under_a_lock() {
    let env = Env::new("nontx", &tables_sql());

    // By default the precheck fails, naming the tables, their engines and the fix.
    let task = env.task_file("[\"schema\", \"full\", \"incremental\"]", "");
    let task = task.to_str().unwrap().to_string();
    let out = dts(&["precheck", "--config", &task]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    for needle in [
        "source.transactional",
        &format!("`{}.log_aria` (Aria)", env.db),
        &format!("`{}.log_myisam` (MyISAM)", env.db),
        &format!("ALTER TABLE `{}`.`log_aria` ENGINE=InnoDB;", env.db),
        "full.non_transactional = \"lock\"",
    ] {
        assert!(all.contains(needle), "no `{needle}` in {all}");
    }
    assert!(!all.contains("`kept`"), "{all}");
    let out = dts(&["run", "--config", &task]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        env.pg("SELECT count(*) FROM pg_namespace WHERE nspname = 'dts_meta'"),
        "0",
        "a refused run wrote nothing"
    );

    // Locked for their copy, under a writer that inserts into all three tables from
    // before the run until after it.
    let task = env.task_file(
        "[\"schema\", \"full\", \"incremental\"]",
        "[full]\nnon_transactional = \"lock\"\nrows_per_chunk = 2000\n",
    );
    let task = task.to_str().unwrap().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, written, url) = (stop.clone(), written.clone(), env.mysql_url());
        tokio::spawn(async move {
            let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&url).unwrap())
                .await
                .unwrap();
            let mut n = ROWS;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                conn.exec_drop("INSERT INTO log_aria VALUES (?, CONCAT('a-', ?))", (n, n))
                    .await
                    .unwrap();
                conn.exec_drop("INSERT INTO log_myisam VALUES (?, CONCAT('m-', ?))", (n, n))
                    .await
                    .unwrap();
                conn.exec_drop("INSERT INTO kept VALUES (?, CONCAT('k-', ?))", (n, n))
                    .await
                    .unwrap();
                written.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    // The writer is going before the run starts.
    while written.load(Ordering::SeqCst) < 200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    // Writes go on after the copy (the lock is released), and stop.
    let after = written.load(Ordering::SeqCst);
    while written.load(Ordering::SeqCst) < after + 200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));

    let total = u64::from(ROWS) + written.load(Ordering::SeqCst);
    for table in ["log_aria", "log_myisam", "kept"] {
        let compared = assert_table_equal(&env, table, &env.db).await;
        assert_eq!(u64::try_from(compared).unwrap(), total, "{table}");
    }
}
