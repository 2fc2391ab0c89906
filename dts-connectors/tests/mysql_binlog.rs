//! Live tests of binlog change capture on the shared private MariaDB (`log-bin`, ROW format,
//! FULL row image and metadata): values equal to what the snapshot reader reads, row
//! images of updates and deletes, transaction boundaries, DDL, filtering, resuming, and
//! bounded batches. Each test works in its own database; other tests write to the same
//! server at the same time, so every check filters by database.

#![cfg(feature = "mysql")]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use dts_connectors::mysql::{BinlogFilter, MySqlBinlogSource, MySqlSnapshot, MySqlSource};
use dts_core::{
    BitString, Change, ChangeEvent, ChangeSource, ErrorKind, Position, SchemaSource,
    SnapshotReader, Table, TableName, Value,
};
use dts_typemap::{convert_mysql_value, map_mysql_column, MappingOptions};
use futures::TryStreamExt;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const SHOP_SQL: &str = include_str!("../../fixtures/mysql/shop.sql");

/// A replica server id unique to this process and call (1 is the server's own).
fn server_id() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    1000 + (std::process::id() % 100_000) * 64 + NEXT.fetch_add(1, Ordering::Relaxed)
}

async fn start_at(url: &str, from: &Position, filter: BinlogFilter) -> MySqlBinlogSource {
    MySqlBinlogSource::start(url, server_id(), from, filter)
        .await
        .unwrap_or_else(|e| panic!("{}", e.report()))
}

/// Reads events until `done` holds for the events read so far, or 20 s pass.
async fn read_until(
    source: &mut MySqlBinlogSource,
    done: impl Fn(&[ChangeEvent]) -> bool,
) -> Vec<ChangeEvent> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut events = Vec::new();
    while !done(&events) {
        assert!(
            Instant::now() < deadline,
            "timed out after {} events: {:?}",
            events.len(),
            events.iter().rev().take(5).collect::<Vec<_>>()
        );
        let batch = source
            .next_events(500, Duration::from_millis(500))
            .await
            .unwrap_or_else(|e| panic!("{}", e.report()));
        events.extend(batch);
    }
    events
}

/// Reads until an event at or after `end` arrives.
async fn read_to(source: &mut MySqlBinlogSource, end: &Position) -> Vec<ChangeEvent> {
    read_until(source, |events| {
        events.last().is_some_and(|e| {
            e.position
                .log_cmp(end)
                .is_some_and(|o| o != std::cmp::Ordering::Less)
        })
    })
    .await
}

async fn current(url: &str) -> Position {
    MySqlBinlogSource::current_position(url)
        .await
        .unwrap_or_else(|e| panic!("{}", e.report()))
}

/// Transactions (Begin … Commit) of the events, without the Begin and Commit; lone
/// progress Commits are dropped.
fn transactions(events: &[ChangeEvent]) -> Vec<Vec<Change>> {
    let mut out = Vec::new();
    let mut open: Option<Vec<Change>> = None;
    for e in events {
        match &e.change {
            Change::Begin => {
                assert!(open.is_none(), "nested Begin");
                open = Some(Vec::new());
            }
            Change::Commit => {
                if let Some(t) = open.take() {
                    out.push(t);
                }
            }
            other => {
                if let Some(t) = open.as_mut() {
                    t.push(other.clone());
                }
            }
        }
    }
    assert!(open.is_none(), "unterminated transaction");
    out
}

fn ddl_in<'a>(events: &'a [ChangeEvent], db: &str) -> Vec<&'a str> {
    events
        .iter()
        .filter_map(|e| match &e.change {
            Change::Ddl { schema, sql, .. } if schema.as_deref() == Some(db) => Some(sql.as_str()),
            _ => None,
        })
        .collect()
}

fn pairs(row: &dts_core::RowImage) -> Vec<(&str, &Value)> {
    row.columns
        .iter()
        .map(String::as_str)
        .zip(row.values.iter())
        .collect()
}

fn row_values(change: &Change) -> (&str, Vec<(&str, &Value)>) {
    match change {
        Change::Insert { row, .. } => ("insert", pairs(row)),
        Change::Delete { row, .. } => ("delete", pairs(row)),
        other => panic!("not an insert or delete: {other:?}"),
    }
}

fn int(v: i64) -> Value {
    Value::Int(v)
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

async fn table(url: &str, db: &str, name: &str) -> Table {
    let source = MySqlSource::connect(url).await.unwrap();
    let catalog = source.read_catalog(&[db.to_string()]).await.unwrap();
    catalog.table(&TableName::new(db, name)).unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_types_arrive_as_the_snapshot_reads_them() -> TestResult {
    let server = dts_testkit::mariadb();
    let db = server.create_unique_database("binlog_types")?;
    let url = server.url();
    let from = current(&url).await;
    server.exec_in(&db, SHOP_SQL)?;
    let end = current(&url).await;
    let mut source = start_at(&url, &from, BinlogFilter::databases([db.clone()])).await;
    let events = read_to(&mut source, &end).await;

    let ddl = ddl_in(&events, &db);
    assert!(
        ddl.iter().any(|s| s.starts_with("CREATE TABLE all_types")),
        "{ddl:?}"
    );
    assert_eq!(
        ddl.iter().filter(|s| s.starts_with("CREATE TABLE")).count(),
        8,
        "{ddl:?}"
    );
    let target = TableName::new(&db, "all_types");
    let inserts: Vec<&dts_core::RowImage> = events
        .iter()
        .filter_map(|e| match &e.change {
            Change::Insert { table, row } if *table == target => Some(row),
            _ => None,
        })
        .collect();
    assert_eq!(inserts.len(), 4);

    // What the snapshot reader reads for the same rows.
    let all_types = table(&url, &db, "all_types").await;
    let (_snapshot, mut readers) = MySqlSnapshot::open(&url, 1).await?;
    let batches: Vec<dts_core::RowBatch> = readers[0]
        .read_chunk(&all_types, &dts_core::Chunk::whole_table())
        .try_collect()
        .await?;
    for r in readers {
        r.close().await?;
    }
    let snapshot_rows: BTreeMap<i64, Vec<Value>> = batches
        .into_iter()
        .flat_map(|b| b.rows)
        .map(|row| match row[0] {
            Value::Int(id) => (id, row),
            ref other => panic!("id {other:?}"),
        })
        .collect();
    let opts = MappingOptions::default();
    for image in &inserts {
        assert_eq!(
            image.columns.as_slice(),
            all_types
                .columns
                .iter()
                .map(|c| c.name.clone())
                .collect::<Vec<_>>()
        );
        let Value::Int(id) = image.values[0] else {
            panic!("id {:?}", image.values[0]);
        };
        let snap = &snapshot_rows[&id];
        for (i, column) in all_types.columns.iter().enumerate() {
            let mapping = map_mysql_column(column, &opts)?;
            let from_binlog = convert_mysql_value(&mapping, image.values[i].clone(), &opts);
            let from_snapshot = convert_mysql_value(&mapping, snap[i].clone(), &opts);
            assert_eq!(
                from_binlog, from_snapshot,
                "row {id} column {}: binlog {:?}, snapshot {:?}",
                column.name, image.values[i], snap[i]
            );
            assert!(from_binlog.is_ok(), "row {id} column {}", column.name);
        }
    }

    // The binlog's own forms of the boundary values.
    let by_id = |id: i64| {
        inserts
            .iter()
            .find(|r| r.values[0] == int(id))
            .map(|r| {
                r.columns
                    .iter()
                    .cloned()
                    .zip(r.values.iter().cloned())
                    .collect::<BTreeMap<String, Value>>()
            })
            .unwrap()
    };
    let (min, max, mid) = (by_id(1), by_id(2), by_id(3));
    assert_eq!(max["c_bigint_u"], Value::UInt(u64::MAX));
    assert_eq!(max["c_tinyint_u"], Value::UInt(255));
    assert_eq!(min["c_tinyint"], int(-128));
    assert_eq!(mid["c_mediumint"], int(-1));
    assert_eq!(min["c_mediumint"], int(-8_388_608));
    assert_eq!(max["c_mediumint_u"], Value::UInt(16_777_215));
    assert_eq!(
        max["c_decimal"],
        Value::Decimal(
            "99999999999999999999999999999999999.999999999999999999999999999999".parse()?
        )
    );
    assert_eq!(
        min["c_decimal"],
        Value::Decimal(
            "-99999999999999999999999999999999999.999999999999999999999999999999".parse()?
        )
    );
    assert_eq!(min["c_decimal_0"], Value::Decimal("-9999999999".parse()?));
    assert_eq!(
        max["c_bit64"],
        Value::Bits(BitString::new(64, u64::MAX).unwrap())
    );
    assert_eq!(max["c_binary"], Value::Bytes(vec![1]));
    assert_eq!(mid["c_binary"], Value::Bytes(vec![0x61]));
    assert_eq!(max["c_varchar"], text("Grüße, 世界 🎉"));
    assert_eq!(max["c_latin1"], text("Ærøskøbing café"));
    assert_eq!(max["c_time"], Value::Time("838:59:59".parse()?));
    assert_eq!(min["c_time6"], Value::Time("-838:59:59".parse()?));
    assert_eq!(mid["c_time6"], Value::Time("00:00:00.000001".parse()?));
    assert_eq!(
        by_id(4)["c_date"],
        Value::Date(dts_core::Date::new(0, 0, 0))
    );
    assert_eq!(
        max["c_timestamp6"],
        Value::Timestamp("2038-01-19 03:14:07.999999".parse()?)
    );
    assert_eq!(max["c_enum"], text("d'e"));
    assert_eq!(max["c_set"], text("x,y,z"));
    assert_eq!(max["c_year"], Value::Year(2155));
    let big = "12345678901234567890.12345678901234567890";
    assert!(
        matches!(&max["c_json"], Value::Text(s) if s.contains(big)),
        "{:?}",
        max["c_json"]
    );
    source.close().await?;
    server.drop_database(&db)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_deletes_and_transactions_keep_images_and_boundaries() -> TestResult {
    let server = dts_testkit::mariadb();
    let db = server.create_unique_database("binlog_dml")?;
    let url = server.url();
    server.exec_in(
        &db,
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20), n INT)",
    )?;
    let from = current(&url).await;
    server.exec_in(
        &db,
        "INSERT INTO t VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3);
         UPDATE t SET v = 'x' WHERE id IN (1, 2);
         UPDATE t SET id = 10 WHERE id = 3;
         DELETE FROM t WHERE id = 2;
         START TRANSACTION;
         INSERT INTO t VALUES (4, 'd', 4);
         UPDATE t SET n = 40 WHERE id = 4;
         DELETE FROM t WHERE id = 1;
         COMMIT;",
    )?;
    let end = current(&url).await;
    let mut source = start_at(&url, &from, BinlogFilter::databases([db.clone()])).await;
    let events = read_to(&mut source, &end).await;
    let txs = transactions(&events);
    assert_eq!(txs.len(), 5, "{txs:#?}");

    assert_eq!(txs[0].len(), 3);
    assert_eq!(
        row_values(&txs[0][2]).1,
        vec![("id", &int(3)), ("v", &text("c")), ("n", &int(3))]
    );
    let updates: Vec<(Vec<Value>, Vec<Value>)> = txs[1]
        .iter()
        .map(|c| match c {
            Change::Update { before, after, .. } => (before.values.clone(), after.values.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        updates,
        vec![
            (
                vec![int(1), text("a"), int(1)],
                vec![int(1), text("x"), int(1)]
            ),
            (
                vec![int(2), text("b"), int(2)],
                vec![int(2), text("x"), int(2)]
            ),
        ]
    );
    match &txs[2][..] {
        [Change::Update {
            table,
            before,
            after,
        }] => {
            assert_eq!(*table, TableName::new(&db, "t"));
            assert_eq!(before.values, vec![int(3), text("c"), int(3)]);
            assert_eq!(after.values, vec![int(10), text("c"), int(3)]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        row_values(&txs[3][0]),
        (
            "delete",
            vec![("id", &int(2)), ("v", &text("x")), ("n", &int(2))]
        )
    );
    assert_eq!(txs[4].len(), 3, "{:?}", txs[4]);
    let Change::Insert { row, .. } = &txs[4][0] else {
        panic!("{:?}", txs[4][0]);
    };
    let Change::Update { before, after, .. } = &txs[4][1] else {
        panic!("{:?}", txs[4][1]);
    };
    let Change::Delete { row: deleted, .. } = &txs[4][2] else {
        panic!("{:?}", txs[4][2]);
    };
    assert_eq!(row.values, vec![int(4), text("d"), int(4)]);
    assert_eq!(before.values, vec![int(4), text("d"), int(4)]);
    assert_eq!(after.values, vec![int(4), text("d"), int(40)]);
    assert_eq!(deleted.values, vec![int(1), text("x"), int(1)]);
    // Positions move forward and commits carry the GTID position.
    let commits: Vec<&Position> = events
        .iter()
        .filter(|e| e.change == Change::Commit)
        .map(|e| &e.position)
        .collect();
    for w in commits.windows(2) {
        assert_eq!(w[0].log_cmp(w[1]), Some(std::cmp::Ordering::Less));
    }
    assert!(commits
        .iter()
        .all(|p| matches!(p, Position::Binlog { gtid: Some(g), .. } if !g.is_empty())));
    source.close().await?;
    server.drop_database(&db)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_arrives_in_order_and_later_rows_use_the_new_columns() -> TestResult {
    let server = dts_testkit::mariadb();
    let db = server.create_unique_database("binlog_ddl")?;
    let url = server.url();
    let from = current(&url).await;
    server.exec_in(
        &db,
        "CREATE TABLE d1 (id INT PRIMARY KEY);
         INSERT INTO d1 VALUES (1);
         ALTER TABLE d1 ADD COLUMN extra VARCHAR(10) DEFAULT 'z';
         INSERT INTO d1 VALUES (2, 'y');
         CREATE INDEX d1_extra ON d1 (extra);
         TRUNCATE TABLE d1;
         RENAME TABLE d1 TO d2;
         DROP TABLE d2;",
    )?;
    let end = current(&url).await;
    let mut source = start_at(&url, &from, BinlogFilter::databases([db.clone()])).await;
    let events = read_to(&mut source, &end).await;
    let mine: Vec<&Change> = events
        .iter()
        .map(|e| &e.change)
        .filter(|c| match c {
            Change::Ddl { schema, .. } => schema.as_deref() == Some(db.as_str()),
            Change::Insert { table, .. } | Change::Truncate { table } => table.schema == db,
            _ => false,
        })
        .collect();
    let shape: Vec<String> = mine
        .iter()
        .map(|c| match c {
            Change::Ddl { sql, .. } => sql.split_whitespace().take(2).collect::<Vec<_>>().join(" "),
            Change::Insert { row, .. } => format!("insert {:?}", row.values),
            Change::Truncate { table } => format!("truncate {}", table.name),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            "CREATE TABLE".to_string(),
            "insert [Int(1)]".into(),
            "ALTER TABLE".into(),
            "insert [Int(2), Text(\"y\")]".into(),
            "CREATE INDEX".into(),
            "truncate d1".into(),
            "RENAME TABLE".into(),
            "DROP TABLE".into(),
        ]
    );
    match mine[3] {
        Change::Insert { row, .. } => assert_eq!(*row.columns, vec!["id", "extra"]),
        _ => unreachable!(),
    }
    source.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unselected_tables_and_databases_produce_no_rows() -> TestResult {
    let server = dts_testkit::mariadb();
    let db = server.create_unique_database("binlog_sel")?;
    let other = server.create_unique_database("binlog_other")?;
    let url = server.url();
    server.exec_in(
        &db,
        "CREATE TABLE keep (id INT PRIMARY KEY); CREATE TABLE skip (id INT PRIMARY KEY);",
    )?;
    server.exec_in(&other, "CREATE TABLE t (id INT PRIMARY KEY);")?;
    let from = current(&url).await;
    server.exec_in(
        &db,
        "START TRANSACTION; INSERT INTO keep VALUES (1); INSERT INTO skip VALUES (1); COMMIT;
         INSERT INTO skip VALUES (2);",
    )?;
    server.exec_in(
        &other,
        "INSERT INTO t VALUES (1); ALTER TABLE t ADD COLUMN c INT;",
    )?;
    let end = current(&url).await;
    let keep = TableName::new(&db, "keep");
    let selected = keep.clone();
    let db_name = db.clone();
    let filter = BinlogFilter {
        tables: std::sync::Arc::new(move |t: &TableName| *t == selected),
        databases: std::sync::Arc::new(move |d: &str| d == db_name),
    };
    let mut source = start_at(&url, &from, filter).await;
    let events = read_to(&mut source, &end).await;
    for e in &events {
        match &e.change {
            Change::Insert { table, .. }
            | Change::Update { table, .. }
            | Change::Delete { table, .. } => assert_eq!(*table, keep),
            Change::Ddl { schema, sql, .. } => {
                assert_ne!(schema.as_deref(), Some(other.as_str()), "{sql}");
            }
            _ => {}
        }
    }
    let txs = transactions(&events);
    assert_eq!(txs.len(), 1, "{txs:?}");
    assert_eq!(txs[0].len(), 1);
    // The last event acknowledges the position past the skipped work.
    let last = events.last().unwrap();
    assert_eq!(last.change, Change::Commit);
    assert_ne!(last.position.log_cmp(&end), Some(std::cmp::Ordering::Less));
    source.close().await?;
    server.drop_database(&db)?;
    server.drop_database(&other)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_at_a_commit_continues_with_the_next_transaction() -> TestResult {
    let server = dts_testkit::mariadb();
    let db = server.create_unique_database("binlog_resume")?;
    let url = server.url();
    server.exec_in(&db, "CREATE TABLE t (id INT PRIMARY KEY)")?;
    let from = current(&url).await;
    server.exec_in(
        &db,
        "INSERT INTO t VALUES (1); INSERT INTO t VALUES (2); INSERT INTO t VALUES (3);",
    )?;
    let end = current(&url).await;
    let filter = || BinlogFilter::databases([db.clone()]);
    let ids = |events: &[ChangeEvent]| -> Vec<Value> {
        transactions(events)
            .iter()
            .flatten()
            .map(|c| row_values(c).1[0].1.clone())
            .collect()
    };

    let mut first = start_at(&url, &from, filter()).await;
    let events = read_until(&mut first, |ev| {
        ev.iter()
            .skip_while(|e| !matches!(e.change, Change::Insert { .. }))
            .any(|e| e.change == Change::Commit)
    })
    .await;
    // Acknowledge the first transaction only, as a consumer that crashed after it would.
    let first_insert = events
        .iter()
        .position(|e| matches!(e.change, Change::Insert { .. }))
        .unwrap();
    let commit_at = first_insert
        + events[first_insert..]
            .iter()
            .position(|e| e.change == Change::Commit)
            .unwrap();
    let commit = events[commit_at].position.clone();
    assert_eq!(ids(&events[..=commit_at]), vec![int(1)]);
    first.close().await?;

    let mut second = start_at(&url, &commit, filter()).await;
    let rest = read_to(&mut second, &end).await;
    assert_eq!(ids(&rest), vec![int(2), int(3)]);
    // The resumed source knows the GTID position of where it started.
    assert!(matches!(
        &rest[0].position,
        Position::Binlog { gtid: Some(_), .. }
    ));
    second.close().await?;
    server.drop_database(&db)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_transaction_streams_in_bounded_batches() -> TestResult {
    const ROWS: usize = 200_000;
    const MAX: usize = 1000;
    let server = dts_testkit::mariadb();
    let db = server.create_unique_database("binlog_big")?;
    let url = server.url();
    server.exec_in(
        &db,
        "CREATE TABLE big (id INT PRIMARY KEY, v INT, s VARCHAR(20))",
    )?;
    let from = current(&url).await;
    server.exec_in(
        &db,
        &format!("INSERT INTO big SELECT seq, seq * 2, 'row' FROM seq_1_to_{ROWS}"),
    )?;
    let mut source = start_at(&url, &from, BinlogFilter::databases([db.clone()])).await;
    let started = Instant::now();
    let (mut inserts, mut begins, mut commits, mut batches) = (0usize, 0, 0, 0);
    let mut in_transaction = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while commits == 0 || inserts < ROWS {
        assert!(Instant::now() < deadline, "timed out at {inserts} rows");
        let batch = source.next_events(MAX, Duration::from_millis(500)).await?;
        assert!(batch.len() <= MAX, "batch of {}", batch.len());
        batches += 1;
        for e in batch {
            match e.change {
                Change::Begin => {
                    begins += 1;
                    in_transaction = true;
                }
                Change::Insert { ref table, ref row } if table.schema == db => {
                    inserts += 1;
                    if inserts == ROWS {
                        assert_eq!(row.values[0], int(200_000));
                    }
                }
                Change::Commit if in_transaction => {
                    in_transaction = false;
                    commits += 1;
                }
                _ => {}
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{inserts} rows in {batches} batches, {secs:.2} s, {:.0} rows/s",
        inserts as f64 / secs
    );
    assert_eq!((begins, inserts, commits), (1, ROWS, 1));
    source.close().await?;
    server.drop_database(&db)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn geometry_columns_and_lost_connections_are_reported() -> TestResult {
    let server = dts_testkit::mariadb();
    let db = server.create_unique_database("binlog_err")?;
    let url = server.url();
    server.exec_in(&db, "CREATE TABLE g (id INT PRIMARY KEY, location POINT)")?;

    // A lost connection is retryable.
    let from = current(&url).await;
    let mut source = start_at(&url, &from, BinlogFilter::databases([db.clone()])).await;
    let quiet = source.next_events(10, Duration::from_millis(200)).await?;
    assert!(
        quiet.iter().all(|e| e.change == Change::Commit),
        "{quiet:?}"
    );
    server.exec(&format!("KILL CONNECTION {}", source.connection_id()))?;
    let err = loop {
        if let Err(e) = source.next_events(10, Duration::from_secs(5)).await {
            break e;
        }
    };
    assert_eq!(err.kind(), ErrorKind::Connection, "{}", err.report());
    assert!(err.is_retryable());
    assert!(source
        .next_events(10, Duration::from_millis(10))
        .await
        .is_err());

    // A missing binlog file is not retryable.
    let gone = Position::Binlog {
        file: "binlog.999999".into(),
        offset: 4,
        gtid: None,
    };
    let mut source = start_at(&url, &gone, BinlogFilter::all()).await;
    let err = source
        .next_events(10, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{}", err.report());

    // Geometry cannot be captured: the error names the column.
    let from = current(&url).await;
    server.exec_in(&db, "INSERT INTO g VALUES (1, POINT(1, 2))")?;
    let mut source = start_at(&url, &from, BinlogFilter::databases([db.clone()])).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let err = loop {
        assert!(Instant::now() < deadline);
        if let Err(e) = source.next_events(10, Duration::from_millis(500)).await {
            break e;
        }
    };
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{}", err.report());
    assert!(
        err.message().contains(&format!("`{db}.g.location`")),
        "{}",
        err.report()
    );
    server.drop_database(&db)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sources_time_out_empty_and_positions_are_binlog_coordinates() -> TestResult {
    let server = dts_testkit::mariadb();
    let url = server.url();
    let here = current(&url).await;
    let Position::Binlog { file, offset, gtid } = &here else {
        panic!("{here:?}");
    };
    assert!(file.contains('.') && *offset >= 4);
    assert!(gtid.is_some());
    // Nothing selected: at most progress commits, never rows.
    let filter = BinlogFilter {
        tables: std::sync::Arc::new(|_| false),
        databases: std::sync::Arc::new(|_| false),
    };
    let mut source = start_at(&url, &here, filter).await;
    let started = Instant::now();
    let events = source.next_events(10, Duration::from_millis(300)).await?;
    assert!(
        events.iter().all(|e| e.change == Change::Commit),
        "{events:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(MySqlBinlogSource::start(
        &url,
        server_id(),
        &Position::Lsn(dts_core::Lsn(1)),
        BinlogFilter::all()
    )
    .await
    .is_err_and(|e| e.kind() == ErrorKind::Config));
    source.close().await?;
    Ok(())
}

/// Regenerates the captured MariaDB events under `tests/fixtures/binlog/mariadb/` that the
/// decoder's unit tests read, from a private server of its own (so that no other test's
/// events interleave):
///
/// `cargo test -p dts-connectors --test mysql_binlog -- --ignored capture_mariadb_fixtures`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "regenerates fixtures"]
async fn capture_mariadb_fixtures() -> TestResult {
    use futures::StreamExt;
    use mysql_async::binlog::BinlogVersion;
    use mysql_async::prelude::*;

    let server = dts_testkit::MariaDb::start_owned()?;
    server.exec("FLUSH BINARY LOGS")?;
    let status = server.query("SHOW MASTER STATUS")?;
    let file = status.split('\t').next().unwrap().to_string();
    server.exec(FIXTURE_SQL)?;

    let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&server.url())?).await?;
    conn.query_drop("SET @mariadb_slave_capability = 4").await?;
    conn.query_drop("SET @master_binlog_checksum = @@global.binlog_checksum")
        .await?;
    let mut stream = conn
        .get_binlog_stream(
            mysql_async::BinlogStreamRequest::new(77)
                .with_filename(file.as_bytes())
                .with_pos(4),
        )
        .await?;
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/binlog/mariadb");
    std::fs::create_dir_all(&dir)?;
    let mut all = Vec::new();
    let mut xids = 0;
    while xids < 3 {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await?
            .unwrap()?;
        let header = event.header();
        if header.log_pos() == 0 {
            continue; // made up for the stream (fake rotate): not in the file
        }
        let mut bytes = Vec::new();
        event.write(BinlogVersion::Version4, &mut bytes)?;
        let name = match header.event_type_raw() {
            162 if xids == 0 && all_len_of(&all, 162) == 2 => Some("gtid_transaction.bin"),
            162 if all_len_of(&all, 162) == 0 => Some("gtid_ddl.bin"),
            163 => Some("gtid_list.bin"),
            19 if all_len_of(&all, 19) == 0 => Some("table_map.bin"),
            23 => Some("write_rows.bin"),
            24 => Some("update_rows.bin"),
            25 => Some("delete_rows.bin"),
            _ => None,
        };
        if let Some(name) = name {
            std::fs::write(dir.join(name), &bytes)?;
        }
        if header.event_type_raw() == 16 {
            xids += 1;
        }
        all.push((header.event_type_raw(), bytes));
    }
    let stream_bytes: Vec<u8> = all.iter().flat_map(|(_, b)| b.clone()).collect();
    std::fs::write(dir.join("stream.bin"), stream_bytes)?;
    std::fs::write(dir.join("stream.file"), &file)?;
    println!(
        "captured {} events: {:?}",
        all.len(),
        all.iter().map(|(t, _)| *t).collect::<Vec<_>>()
    );
    Ok(())
}

fn all_len_of(events: &[(u8, Vec<u8>)], kind: u8) -> usize {
    events.iter().filter(|(t, _)| *t == kind).count()
}

/// The workload of the captured fixtures (see `capture_mariadb_fixtures`).
const FIXTURE_SQL: &str = "
SET sql_mode = '';
SET time_zone = '+00:00';
CREATE DATABASE fx;
CREATE TABLE fx.t (
  id INT UNSIGNED PRIMARY KEY, tiny TINYINT, med MEDIUMINT, big_u BIGINT UNSIGNED,
  dec65 DECIMAL(65,30), f FLOAT, d DOUBLE, b BIT(64), c CHAR(10) CHARACTER SET latin1,
  vc VARCHAR(300), bin BINARY(4), bl BLOB, txt TEXT, dt DATE, dtm DATETIME(6),
  ts TIMESTAMP(3) NULL, tm TIME(6), yr YEAR, e ENUM('a','b'), s SET('x','y','z'), j JSON
);
INSERT INTO fx.t VALUES
  (1, -128, -1, 18446744073709551615, -123.45, 1.5, -2.25,
   b'1111111111111111111111111111111111111111111111111111111111111111', 'Ærø',
   'Grüße 🎉', x'61', x'00FF', 'text', '2024-02-29', '2024-02-29 23:59:59.999999',
   '2038-01-19 03:14:07.123', '-838:59:58.999999', 2155, 'b', 'x,z', '{\"a\": [1, 2.5]}'),
  (2, NULL, 8388607, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '0000-00-00',
   '0000-00-00 00:00:00', NULL, '00:00:00.000001', 0, NULL, '', NULL);
UPDATE fx.t SET id = 3, vc = 'changed' WHERE id = 2;
DELETE FROM fx.t WHERE id = 1;
";

/// MariaDB gives YEAR a slot of the signedness bitmap (MySQL does not, see the unit tests on
/// MySQL events): columns after a YEAR keep their own signedness.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signedness_after_a_year_column_is_read_from_its_own_slot() -> TestResult {
    let server = dts_testkit::mariadb();
    let db = server.create_unique_database("binlog_year")?;
    let url = server.url();
    server.exec_in(
        &db,
        "CREATE TABLE t (id INT PRIMARY KEY, y YEAR, a INT, u INT UNSIGNED, \
         b TINYINT UNSIGNED, c BIGINT)",
    )?;
    let from = current(&url).await;
    server.exec_in(
        &db,
        "INSERT INTO t VALUES (1, 2024, -1, 4294967295, 255, -5)",
    )?;
    let end = current(&url).await;
    let mut source = start_at(&url, &from, BinlogFilter::databases([db.clone()])).await;
    let events = read_to(&mut source, &end).await;
    let txs = transactions(&events);
    assert_eq!(txs.len(), 1, "{txs:#?}");
    assert_eq!(
        row_values(&txs[0][0]).1,
        vec![
            ("id", &int(1)),
            ("y", &Value::Year(2024)),
            ("a", &int(-1)),
            ("u", &Value::UInt(4_294_967_295)),
            ("b", &Value::UInt(255)),
            ("c", &int(-5)),
        ]
    );
    server.drop_database(&db)?;
    Ok(())
}

/// The cleanup of a killed run's change reader ends a connection only if it is a binlog
/// reader running as the recorded account from the recorded address: a reused connection
/// id belonging to someone else is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_earlier_reader_is_ended_only_when_account_and_address_match() -> TestResult {
    let server = dts_testkit::mariadb();
    let url = server.url();
    let source = MySqlSource::connect(&url).await?;
    let from = current(&url).await;
    let reader = start_at(&url, &from, BinlogFilter::all()).await;
    let id = u64::from(reader.connection_id());
    let (user, host) = source
        .connection_identity(id)
        .await?
        .expect("the reader is in the process list");
    let alive = |id: u64| {
        let source = source.clone();
        async move { source.connection_identity(id).await.unwrap().is_some() }
    };

    // Another account's or another address's connection with that id: left alone.
    assert!(!source.end_binlog_reader(id, "someone_else", &host).await?);
    assert!(!source.end_binlog_reader(id, &user, "10.9.9.9:4000").await?);
    assert!(alive(id).await);
    // A connection that is not a binlog reader, though account and address match: left
    // alone.
    use mysql_async::prelude::Queryable;
    let mut other = source.conn().await?;
    let other_id: u64 = other.query_first("SELECT CONNECTION_ID()").await?.unwrap();
    let (other_user, other_host) = source.connection_identity(other_id).await?.unwrap();
    assert!(
        !source
            .end_binlog_reader(other_id, &other_user, &other_host)
            .await?
    );
    assert!(alive(other_id).await);
    drop(other);

    // The recorded reader itself: ended.
    assert!(source.end_binlog_reader(id, &user, &host).await?);
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(id).await {
        assert!(Instant::now() < deadline, "the reader still runs");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(reader);
    Ok(())
}
