//! The connectors chosen by URL, on real servers: every error says which end of the
//! migration it comes from, whether the connection fails or an object handed out by a
//! connected source or target does.
//!
//! Runs on the testkit's private MariaDB and PostgreSQL (or the servers named by
//! `DTS_TEST_MYSQL_URL` and `DTS_TEST_PG_URL`):
//! `cargo test -p dts-connectors --test registry`.

#![cfg(all(feature = "mysql", feature = "postgres"))]

use dts_connectors::{Source, Target};
use dts_core::{
    Chunk, ChunkSink, Column, End, ErrorKind, RowBatch, SnapshotReader, Table, TableName,
    TargetTable, Value,
};
use futures::{StreamExt, TryStreamExt};

/// A local port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `url` with its port replaced by `port`.
fn with_port(url: &str, from: u16, port: u16) -> String {
    let replaced = url.replacen(&format!(":{from}"), &format!(":{port}"), 1);
    assert_ne!(replaced, url, "no port {from} in {url}");
    replaced
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_connection_names_its_end() {
    let my = dts_testkit::mariadb();
    let pg = dts_testkit::postgres();

    let url = with_port(&my.url(), my.port(), closed_port());
    let e = Source::connect(&url).await.unwrap_err();
    assert_eq!(e.end(), Some(End::Source), "{}", e.report());
    assert_eq!(e.kind(), ErrorKind::Connection, "{}", e.report());
    assert!(e.is_retryable());
    assert!(e.report().starts_with("source: "), "{}", e.report());

    let url = with_port(&pg.url(), pg.port(), closed_port());
    let e = Target::connect(&url).await.unwrap_err();
    assert_eq!(e.end(), Some(End::Target), "{}", e.report());
    assert_eq!(e.kind(), ErrorKind::Connection, "{}", e.report());
    assert!(e.is_retryable());
    assert!(e.report().starts_with("target: "), "{}", e.report());

    // A MySQL target too.
    let url = with_port(&my.url(), my.port(), closed_port());
    let e = Target::connect(&url).await.unwrap_err();
    assert_eq!(e.end(), Some(End::Target), "{}", e.report());
    assert_eq!(e.kind(), ErrorKind::Connection, "{}", e.report());
    assert!(e.report().starts_with("target: "), "{}", e.report());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_objects_handed_out_name_their_end() {
    let my = dts_testkit::mariadb();
    let pg = dts_testkit::postgres();
    let db = my.create_unique_database("registry_end").unwrap();
    let pg_db = dts_testkit::unique_name("registry_end");
    pg.create_database(&pg_db).unwrap();

    // A snapshot reader asked for a table that does not exist.
    let source = Source::connect(&my.url_for(&db)).await.unwrap();
    let mut snapshot = source.open_snapshot(1).await.unwrap();
    let missing = Table {
        name: TableName::new(&db, "missing"),
        columns: vec![Column::new("id", "int")],
        primary_key: None,
        indexes: Vec::new(),
        foreign_keys: Vec::new(),
        comment: None,
        estimated_rows: 0,
        auto_increment: None,
    };
    let chunk = Chunk::whole_table();
    let e = snapshot.readers[0]
        .read_chunk(&missing, &chunk)
        .try_collect::<Vec<RowBatch>>()
        .await
        .unwrap_err();
    assert_eq!(e.end(), Some(End::Source), "{}", e.report());
    assert!(e.report().starts_with("source: "), "{}", e.report());

    // A chunk sink writing into a table that does not exist.
    let target = Target::connect(&pg.url_for(&pg_db)).await.unwrap();
    let mut sink = target.chunk_sink("registry-end").await.unwrap();
    let into = TargetTable {
        name: TableName::new("public", "missing"),
        columns: vec!["id".into()],
    };
    let rows = RowBatch {
        rows: vec![vec![Value::Int(1)]],
        size_bytes: 8,
        encoded: None,
    };
    let e = sink
        .write_chunk(&into, &chunk, futures::stream::iter([Ok(rows)]).boxed())
        .await
        .unwrap_err();
    assert_eq!(e.end(), Some(End::Target), "{}", e.report());

    // The target's own calls.
    let e = target
        .analyze(&[TableName::new("public", "missing")])
        .await
        .unwrap_err();
    assert_eq!(e.end(), Some(End::Target), "{}", e.report());
    // The message names the target already (`analysing target tables`): no prefix.
    assert!(!e.report().starts_with("target: "), "{}", e.report());
    assert!(e.message().contains("target"), "{}", e.report());
}
