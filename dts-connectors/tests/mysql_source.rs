//! Live tests of the MySQL/MariaDB source's connection pool: every connection it hands out
//! carries the session settings the readers rely on, including a connection the pool reset
//! (`COM_RESET_CONNECTION`) when it was returned.
//!
//! Runs on the testkit's private MariaDB (or the server `DTS_TEST_MYSQL_URL` names):
//! `cargo test -p dts-connectors --test mysql_source`.

#![cfg(feature = "mysql")]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use dts_connectors::mysql::MySqlSource;
use mysql_async::prelude::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_connections_keep_their_session_settings_after_a_reset() -> TestResult {
    let server = dts_testkit::mariadb();
    let source = MySqlSource::connect(&server.url()).await?;
    let mut seen = BTreeSet::new();
    let mut reused = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    // Take and return connections until the pool has handed out a returned (and therefore
    // reset) connection a few times; every checkout must carry the settings.
    while reused < 3 {
        assert!(
            Instant::now() < deadline,
            "the pool never handed out a returned connection"
        );
        let mut conn = source.conn().await?;
        let (id, time_zone, client, read_timeout): (u64, String, String, u64) = conn
            .query_first(
                "SELECT CONNECTION_ID(), @@session.time_zone, @@session.character_set_client, \
                 @@session.net_read_timeout",
            )
            .await?
            .expect("one row");
        assert_eq!(time_zone, "+00:00", "connection {id}: time zone");
        assert_eq!(client, "utf8mb4", "connection {id}: client character set");
        assert_eq!(read_timeout, 3600, "connection {id}: net_read_timeout");
        if !seen.insert(id) {
            reused += 1;
        }
        // Change a setting the way a reader might; the reset must not leak it and setup
        // must restore the task's own.
        conn.query_drop("SET time_zone = '+05:00'").await?;
        drop(conn);
        // The pool cleans a returned connection in the background.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
