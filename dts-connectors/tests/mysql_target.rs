//! MySQL/MariaDB as a target against a real server: the chunk sink's `LOAD DATA LOCAL`
//! stores every value exactly, a failed chunk (a stream error, a value the column cannot
//! hold) leaves nothing behind, a chunk is never written twice; the state store's run lock
//! admits one run per task.
//!
//! Runs on the testkit's private MariaDB (or the server named by `DTS_TEST_MYSQL_URL`):
//! `cargo test -p dts-connectors --test mysql_target`.

#![cfg(feature = "mysql")]

use dts_connectors::mysql::target::session_opts;
use dts_connectors::mysql::{MySqlChunkSink, MySqlStateStore};
use dts_core::{
    BitString, Chunk, ChunkSink, Error, ErrorKind, RowBatch, StateStore, TableName, TargetTable,
    Value,
};
use futures::stream::{self, BoxStream, StreamExt};

fn chunk(index: u32) -> Chunk {
    Chunk {
        index,
        ..Chunk::whole_table()
    }
}

fn batch(rows: Vec<Vec<Value>>) -> RowBatch {
    let mut b = RowBatch::with_capacity(rows.len());
    for row in rows {
        b.push(row);
    }
    b
}

fn batches(list: Vec<Result<RowBatch, Error>>) -> BoxStream<'static, Result<RowBatch, Error>> {
    stream::iter(list).boxed()
}

fn query(sql: &str) -> String {
    dts_testkit::mariadb()
        .query(sql)
        .unwrap()
        .trim()
        .to_string()
}

/// A fresh database with `ddl` run in it, a sink for task `task`, and the target table.
async fn setup(prefix: &str, ddl: &str, columns: &[&str]) -> (String, MySqlChunkSink, TargetTable) {
    let my = dts_testkit::mariadb();
    let db = my.create_unique_database(prefix).unwrap();
    my.exec_in(&db, ddl).unwrap();
    let opts = session_opts(&my.url()).await.unwrap();
    let sink = MySqlChunkSink::connect(opts, &db).await.unwrap();
    let table = TargetTable {
        name: TableName::new(db.clone(), "t"),
        columns: columns.iter().map(|c| c.to_string()).collect(),
    };
    (db, sink, table)
}

#[tokio::test]
async fn values_are_stored_exactly_and_checkpointed_with_the_chunk() {
    let (db, mut sink, table) = setup(
        "mytgt_values",
        "CREATE TABLE t (id INT PRIMARY KEY, s TEXT CHARACTER SET latin1, b VARBINARY(10), \
         bits BIT(64), f FLOAT, d DOUBLE, dt DATE, tm TIME(6), y YEAR)",
        &["id", "s", "b", "bits", "f", "d", "dt", "tm", "y"],
    )
    .await;
    let rows = vec![
        vec![
            Value::Int(1),
            Value::Text("tab\t nl\n bs\\ nul\0 å".into()),
            Value::Bytes(vec![0, b'\t', b'\\', 0xff]),
            Value::Bits(BitString::new(64, u64::MAX).unwrap()),
            Value::Float(f32::MAX),
            Value::Double(f64::MIN_POSITIVE),
            Value::Date("0000-00-00".parse().unwrap()),
            Value::Time("-838:59:58.999999".parse().unwrap()),
            Value::Year(0),
        ],
        vec![
            Value::Int(2),
            Value::Null,
            Value::Bytes(Vec::new()),
            Value::Null,
            Value::Float(-0.1),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
        ],
    ];
    let stats = sink
        .write_chunk(&table, &chunk(0), batches(vec![Ok(batch(rows))]))
        .await
        .unwrap();
    assert_eq!(stats.rows, 2);
    assert_eq!(
        query(&format!(
            "SELECT id, HEX(s), HEX(b), CAST(bits AS UNSIGNED), CAST(f AS DOUBLE), \
             d, dt, tm, y FROM `{db}`.t ORDER BY id"
        )),
        "1\t74616209206E6C0A2062735C206E756C0020E5\t00095CFF\t18446744073709551615\t\
         3.4028234663852886e38\t2.2250738585072014e-308\t0000-00-00\t-838:59:58.999999\t0000\n\
         2\tNULL\t\tNULL\t-0.10000000149011612\tNULL\tNULL\tNULL\tNULL"
    );
    // The same chunk again: refused, nothing written twice.
    let again = sink
        .write_chunk(
            &table,
            &chunk(0),
            batches(vec![Ok(batch(vec![vec![
                Value::Int(3),
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
            ]]))]),
        )
        .await
        .unwrap_err();
    assert_eq!(again.kind(), ErrorKind::Conflict, "{again}");
    assert_eq!(query(&format!("SELECT COUNT(*) FROM `{db}`.t")), "2");
    assert_eq!(sink.done_chunks(&table).await.unwrap(), vec![0]);
}

#[tokio::test]
async fn a_failed_chunk_leaves_nothing_behind() {
    let (db, mut sink, table) = setup(
        "mytgt_fail",
        "CREATE TABLE t (id INT PRIMARY KEY, n TINYINT, s VARCHAR(3))",
        &["id", "n", "s"],
    )
    .await;
    let ok_rows = || {
        batch(
            (0..1000)
                .map(|i| vec![Value::Int(i), Value::Int(1), Value::Null])
                .collect(),
        )
    };
    // The stream fails after a first batch.
    let err = sink
        .write_chunk(
            &table,
            &chunk(0),
            batches(vec![
                Ok(ok_rows()),
                Err(Error::new(ErrorKind::Connection, "source lost")),
            ]),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("source lost"), "{err}");
    // Values the columns cannot hold: out of range, too long. `LOAD DATA LOCAL` makes
    // them warnings; the sink refuses them.
    for bad in [
        vec![Value::Int(5000), Value::Int(300), Value::Null],
        vec![Value::Int(5001), Value::Int(1), Value::Text("long".into())],
    ] {
        let err = sink
            .write_chunk(
                &table,
                &chunk(1),
                batches(vec![Ok(ok_rows()), Ok(batch(vec![bad]))]),
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("chunk 1"), "{err}");
    }
    assert_eq!(query(&format!("SELECT COUNT(*) FROM `{db}`.t")), "0");
    assert!(sink.done_chunks(&table).await.unwrap().is_empty());
    // The sink goes on working afterwards.
    sink.write_chunk(&table, &chunk(2), batches(vec![Ok(ok_rows())]))
        .await
        .unwrap();
    assert_eq!(query(&format!("SELECT COUNT(*) FROM `{db}`.t")), "1000");
}

#[tokio::test]
async fn one_run_per_task() {
    let my = dts_testkit::mariadb();
    let task = dts_testkit::unique_name("mytgt_lock");
    let opts = session_opts(&my.url()).await.unwrap();
    let first = MySqlStateStore::new(opts.clone(), &task);
    first.migrate().await.unwrap();
    first.lock_run().await.unwrap();
    first.lock_run().await.unwrap(); // again: a no-op
    let holder = first.run_holder().await.unwrap().unwrap();
    assert_eq!(holder.pid, std::process::id());

    let second = MySqlStateStore::new(opts.clone(), &task);
    let err = second.lock_run().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(
        err.to_string()
            .contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    // The lock ends with the store that held it.
    drop(first);
    let third = MySqlStateStore::new(opts, &task);
    third.lock_run().await.unwrap();

    // The rest of the state round-trips.
    third.mark_done("schema.pre_data").await.unwrap();
    assert!(third.is_done("schema.pre_data").await.unwrap());
    assert!(!third.is_done("schema.post_data").await.unwrap());
    let table = TableName::new("s", "t");
    third
        .store_chunk_plan(&table, &[chunk(0), chunk(1)])
        .await
        .unwrap();
    assert_eq!(third.chunk_plan(&table).await.unwrap().unwrap().len(), 2);
    assert_eq!(third.planned_chunks().await.unwrap(), vec![(table, 2)]);
    third
        .record_state(dts_core::TaskState::Full, None)
        .await
        .unwrap();
    assert!(!third.beat(None).await.unwrap());
    assert!(third.request_stop().await.unwrap());
    assert!(third.beat(None).await.unwrap());
    let record = third.task_record().await.unwrap().unwrap();
    assert_eq!(record.state, dts_core::TaskState::Full);
    assert!(record.stop_requested);
    assert!(record.heartbeat.is_some());
}

#[tokio::test]
async fn a_zero_in_an_auto_increment_column_stays_zero() {
    // A binary column makes the load assign values in its `SET` clause, where MariaDB
    // forgets that the AUTO_INCREMENT value was given; later table rebuilds keep the 0.
    let (db, mut sink, table) = setup(
        "mytgt_zero",
        "CREATE TABLE t (id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, v INT, \
         x TEXT, b VARBINARY(4)) AUTO_INCREMENT = 100",
        &["id", "v", "b"],
    )
    .await;
    let rows = vec![
        vec![Value::UInt(0), Value::Int(1), Value::Bytes(vec![0])],
        vec![Value::UInt(5), Value::Int(2), Value::Null],
    ];
    sink.write_chunk(&table, &chunk(0), batches(vec![Ok(batch(rows))]))
        .await
        .unwrap();
    assert_eq!(
        query(&format!(
            "SELECT GROUP_CONCAT(id ORDER BY id) FROM `{db}`.t"
        )),
        "0,5"
    );
    let mut target = dts_connectors::mysql::MySqlTarget::connect(&dts_testkit::mariadb().url())
        .await
        .unwrap();
    for (i, sql) in [
        format!("ALTER TABLE `{db}`.t ADD INDEX v (v)"),
        format!("ALTER TABLE `{db}`.t ADD CONSTRAINT s UNIQUE (v)"),
        format!("ALTER TABLE `{db}`.t ADD FULLTEXT INDEX ft (x)"),
        format!("ALTER TABLE `{db}`.t FORCE"),
        format!("ALTER TABLE `{db}`.t ENGINE=InnoDB, ALGORITHM=COPY"),
    ]
    .into_iter()
    .enumerate()
    {
        let st = dts_schema::Statement {
            phase: dts_schema::Phase::PostData,
            kind: dts_schema::StatementKind::Index,
            table: None,
            object: "t".into(),
            sql,
        };
        target
            .execute_once(&db, &format!("x:{i}"), &st)
            .await
            .unwrap();
        assert_eq!(
            query(&format!(
                "SELECT GROUP_CONCAT(id ORDER BY id) FROM `{db}`.t"
            )),
            "0,5",
            "after statement {i}"
        );
    }
}
