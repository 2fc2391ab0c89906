//! `dts demo` in each direction, as a newcomer runs it: private servers started, the sample
//! database migrated (schema, full load), changed, the changes replicated, and the target
//! shown. Each demo starts its own servers.
//!
//! `cargo test -p dts-examples --test demo`

mod common;

use common::{dts, text};

/// Runs `dts demo --direction DIRECTION` and returns its output, failing unless it exits 0.
fn demo(direction: &str) -> String {
    let out = dts(&["demo", "--direction", direction]);
    let all = text(&out);
    assert!(
        out.status.success(),
        "dts demo --direction {direction}:\n{all}"
    );
    all
}

/// The lines of the replicated customers, as the demo prints them.
fn customers(output: &str) -> Vec<&str> {
    output
        .lines()
        .skip_while(|l| !l.contains("customers in"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect()
}

#[test]
fn mysql_to_pg_replicates_rows_and_ddl() {
    let out = demo("mysql-to-pg");
    let rows = customers(&out);
    assert_eq!(rows.len(), 5, "{out}");
    assert!(
        rows.iter().any(|r| r.contains("eve@example.com points=0")),
        "{out}"
    );
    assert!(
        rows.iter()
            .any(|r| r.contains("ann@example.com points=120")),
        "{out}"
    );
    assert!(out.contains("audit_log      2 rows"), "{out}");
}

#[test]
fn pg_to_pg_replicates_rows_and_cascades() {
    let out = demo("pg-to-pg");
    let rows = customers(&out);
    // Eve arrived; Bo went, with her order and its item (cascaded at the source).
    assert_eq!(rows.len(), 4, "{out}");
    assert!(rows.iter().any(|r| r.contains("eve@example.com")), "{out}");
    assert!(!rows.iter().any(|r| r.contains("bo@example.com")), "{out}");
    assert!(out.contains("orders         2 rows"), "{out}");
    assert!(out.contains("order_items    3 rows"), "{out}");
    assert!(out.contains("orders.total numeric not null"), "{out}");
}

#[test]
fn mysql_to_mysql_replicates_rows_and_ddl() {
    let out = demo("mysql-to-mysql");
    let rows = customers(&out);
    assert_eq!(rows.len(), 5, "{out}");
    assert!(
        rows.iter()
            .any(|r| r.contains("ann@example.com points=120")),
        "{out}"
    );
    assert!(out.contains("audit_log      2 rows"), "{out}");
}

#[test]
fn pg_to_mysql_replicates_rows_and_cascades() {
    let out = demo("pg-to-mysql");
    let rows = customers(&out);
    assert_eq!(rows.len(), 4, "{out}");
    assert!(!rows.iter().any(|r| r.contains("bo@example.com")), "{out}");
    // After 2038, as DATETIME(6) in UTC.
    assert!(
        rows.iter()
            .any(|r| r.contains("2039-06-01 04:00:00.123456")),
        "{out}"
    );
    assert!(out.contains("orders         2 rows"), "{out}");
    assert!(out.contains("order_items    3 rows"), "{out}");
}
