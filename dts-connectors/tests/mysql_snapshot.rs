//! Live tests of MySQL/MariaDB snapshots: lossless chunk reads, chunk plans that cover a
//! table exactly, snapshot isolation across readers, and the exactness of the recorded
//! binlog position. Each test runs in its own database on the shared private MariaDB.

#![cfg(feature = "mysql")]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use dts_connectors::mysql::{
    MySqlSnapshot, MySqlSnapshotMode, MySqlSnapshotReader, MySqlSource, BATCH_BYTES, BATCH_ROWS,
};
use dts_core::{
    BitString, Chunk, Date, DateTime, Duration, ErrorKind, Position, RowBatch, SchemaSource,
    SnapshotReader, Table, TableName, Value,
};
use dts_fullload::plan_chunks;
use futures::TryStreamExt;
use mysql_async::prelude::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const SHOP_SQL: &str = include_str!("../../fixtures/mysql/shop.sql");

async fn table(url: &str, db: &str, name: &str) -> Table {
    let source = MySqlSource::connect(url).await.unwrap();
    let catalog = source.read_catalog(&[db.to_string()]).await.unwrap();
    catalog
        .table(&TableName::new(db, name))
        .unwrap_or_else(|| panic!("table {db}.{name} not found"))
        .clone()
}

async fn read_batches(
    reader: &mut MySqlSnapshotReader,
    table: &Table,
    chunk: &Chunk,
) -> Vec<RowBatch> {
    let batches: Vec<RowBatch> = reader
        .read_chunk(table, chunk)
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("{}", e.report()));
    for b in &batches {
        assert!(!b.is_empty(), "empty batch");
        assert!(b.len() <= BATCH_ROWS, "batch of {} rows", b.len());
    }
    batches
}

async fn read_rows(
    reader: &mut MySqlSnapshotReader,
    table: &Table,
    chunk: &Chunk,
) -> Vec<Vec<Value>> {
    read_batches(reader, table, chunk)
        .await
        .into_iter()
        .flat_map(|b| b.rows)
        .collect()
}

/// Ends the readers' snapshot transactions, which hold metadata locks on the tables they
/// read (dropping the database would wait for them).
async fn close(readers: Vec<MySqlSnapshotReader>) {
    for r in readers {
        r.close().await.unwrap();
    }
}

fn column_names(table: &Table) -> Vec<String> {
    MySqlSnapshotReader::columns_read(table)
        .into_iter()
        .map(|c| c.name.clone())
        .collect()
}

fn get<'r>(table: &Table, row: &'r [Value], column: &str) -> &'r Value {
    let i = column_names(table)
        .iter()
        .position(|c| c == column)
        .unwrap_or_else(|| panic!("column {column} not read"));
    &row[i]
}

fn dec(s: &str) -> Value {
    Value::Decimal(s.parse().unwrap())
}

fn dt(s: &str) -> DateTime {
    s.parse().unwrap()
}

fn time(s: &str) -> Value {
    Value::Time(s.parse::<Duration>().unwrap())
}

fn bits(len: u8, b: u64) -> Value {
    Value::Bits(BitString::new(len, b).unwrap())
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

/// `SHOW MASTER STATUS` through the command-line client: (file, offset).
fn master_status() -> (String, u64) {
    let out = dts_testkit::mariadb().query("SHOW MASTER STATUS").unwrap();
    let mut fields = out.lines().next().unwrap().split('\t');
    let file = fields.next().unwrap().to_string();
    let offset = fields.next().unwrap().parse().unwrap();
    (file, offset)
}

fn binlog_coords(p: Option<&Position>) -> (String, u64) {
    match p {
        Some(Position::Binlog { file, offset, .. }) => (file.clone(), *offset),
        other => panic!("expected a binlog position, got {other:?}"),
    }
}

/// The binlog events from `offset` of `file`: (position, type, info).
async fn binlog_events(url: &str, file: &str, offset: u64) -> Vec<(u64, String, String)> {
    let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(url).unwrap())
        .await
        .unwrap();
    let rows: Vec<mysql_async::Row> = conn
        .query(format!("SHOW BINLOG EVENTS IN '{file}' FROM {offset}"))
        .await
        .unwrap();
    conn.disconnect().await.unwrap();
    rows.into_iter()
        .map(|r| {
            let pos: u64 = r.get(1).unwrap();
            let kind: String = r.get(2).unwrap();
            let info: String = r.get(5).unwrap_or_default();
            (pos, kind, info)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shop_tables_read_whole_with_exact_values() -> TestResult {
    let server = dts_testkit::mariadb();
    let db = server.create_unique_database("snap_shop")?;
    server.exec_in(&db, SHOP_SQL)?;
    let url = server.url();
    let source = MySqlSource::connect(&url).await?;
    let catalog = source.read_catalog(std::slice::from_ref(&db)).await?;

    let (snapshot, mut readers) = MySqlSnapshot::open(&url, 1).await?;
    assert_eq!(readers.len(), 1);
    assert_eq!(snapshot.mode(), MySqlSnapshotMode::LockFree);
    assert!(snapshot.is_mariadb());
    let reader = &mut readers[0];

    let expected_rows = [
        ("customers", 4),
        ("products", 3),
        ("orders", 3),
        ("order_items", 4),
        ("Order", 3),
        ("all_types", 4),
        ("audit_log", 3),
        ("settings", 2),
    ];
    for (name, n) in expected_rows {
        let t = catalog.table(&TableName::new(&db, name)).unwrap();
        let rows = read_rows(reader, t, &Chunk::whole_table()).await;
        assert_eq!(rows.len(), n, "rows of {name}");
        let width = MySqlSnapshotReader::columns_read(t).len();
        assert!(rows.iter().all(|r| r.len() == width), "row width of {name}");
    }

    // Generated columns are not read.
    let customers = catalog.table(&TableName::new(&db, "customers")).unwrap();
    assert!(!column_names(customers).contains(&"full_name".to_string()));
    assert_eq!(column_names(customers).len(), customers.columns.len() - 1);
    let items = catalog.table(&TableName::new(&db, "order_items")).unwrap();
    assert!(!column_names(items).contains(&"line_total".to_string()));
    let rows = read_rows(reader, customers, &Chunk::whole_table()).await;
    let dee = rows
        .iter()
        .find(|r| get(customers, r, "email") == &text("dee@example.com"))
        .unwrap();
    assert_eq!(get(customers, dee, "id"), &Value::UInt(4));
    assert_eq!(get(customers, dee, "last_name"), &text("O'Neil"));
    assert_eq!(
        get(customers, dee, "notes"),
        &text("emoji 🎉 and tab\there")
    );
    assert_eq!(get(customers, dee, "country"), &text("IE"));

    let products = catalog.table(&TableName::new(&db, "products")).unwrap();
    let mut rows = read_rows(reader, products, &Chunk::whole_table()).await;
    rows.sort_by_key(|r| format!("{:?}", r[0]));
    assert_eq!(get(products, &rows[0], "flags"), &bits(8, 0b101));
    assert_eq!(get(products, &rows[0], "price"), &dec("9.99"));
    assert_eq!(get(products, &rows[0], "tags"), &text("new,sale"));
    assert_eq!(
        get(products, &rows[0], "thumbnail"),
        &Value::Bytes(vec![0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
    );
    assert_eq!(
        get(products, &rows[0], "attributes"),
        &Value::Json(
            r#"{"color": "blue", "size": 12345678901234567890.12345678901234567890}"#.into()
        )
    );
    assert_eq!(get(products, &rows[2], "stock"), &Value::Int(-5));
    assert_eq!(get(products, &rows[2], "status"), &text(""));
    assert_eq!(get(products, &rows[2], "thumbnail"), &Value::Bytes(vec![]));

    let orders = catalog.table(&TableName::new(&db, "orders")).unwrap();
    let mut rows = read_rows(reader, orders, &Chunk::whole_table()).await;
    rows.sort_by_key(|r| format!("{:?}", r[0]));
    assert_eq!(
        get(orders, &rows[0], "total"),
        &dec("38.980000000000000000000000000000")
    );
    assert_eq!(get(orders, &rows[1], "delivery_window"), &time("-01:30:00"));
    assert_eq!(
        get(orders, &rows[1], "placed_at"),
        &Value::DateTime(dt("2024-02-29 23:59:59.999999"))
    );
    assert_eq!(
        get(orders, &rows[2], "placed_on"),
        &Value::Date(Date::new(1000, 1, 1))
    );

    let t = catalog.table(&TableName::new(&db, "all_types")).unwrap();
    let mut rows = read_rows(reader, t, &Chunk::whole_table()).await;
    rows.sort_by_key(|r| match r[0] {
        Value::Int(n) => n,
        _ => panic!("id"),
    });
    let [min, max, misc, zero] = &rows[..] else {
        panic!("4 rows expected");
    };
    let c = |row: &Vec<Value>, name: &str| get(t, row, name).clone();

    assert_eq!(c(min, "c_tinyint"), Value::Int(-128));
    assert_eq!(c(min, "c_tinyint_u"), Value::UInt(0));
    assert_eq!(c(min, "c_mediumint"), Value::Int(-8_388_608));
    assert_eq!(c(min, "c_bigint"), Value::Int(i64::MIN));
    assert_eq!(
        c(min, "c_decimal"),
        dec("-99999999999999999999999999999999999.999999999999999999999999999999")
    );
    assert_eq!(c(min, "c_decimal_0"), dec("-9999999999"));
    assert_eq!(c(min, "c_float"), Value::Float(-3.40282e38));
    assert_eq!(
        c(min, "c_double"),
        Value::Double(-1.797_693_134_862_315_7e308)
    );
    assert_eq!(c(min, "c_bit1"), bits(1, 0));
    assert_eq!(c(min, "c_binary"), Value::Bytes(vec![0, 0, 0, 0]));
    assert_eq!(c(min, "c_varbinary"), Value::Bytes(vec![]));
    assert_eq!(c(min, "c_date"), Value::Date(Date::new(1000, 1, 1)));
    assert_eq!(
        c(min, "c_timestamp"),
        Value::Timestamp(dt("1970-01-01 00:00:01"))
    );
    assert_eq!(c(min, "c_time"), time("-838:59:59"));
    assert_eq!(c(min, "c_time6"), time("-838:59:59"));
    assert_eq!(c(min, "c_year"), Value::Year(1901));
    assert_eq!(c(min, "c_enum"), text("a"));
    assert_eq!(c(min, "c_set"), text(""));
    assert_eq!(c(min, "c_json"), Value::Json("{}".into()));

    assert_eq!(c(max, "c_tinyint_u"), Value::UInt(255));
    assert_eq!(c(max, "c_mediumint_u"), Value::UInt(16_777_215));
    assert_eq!(c(max, "c_int_u"), Value::UInt(4_294_967_295));
    assert_eq!(c(max, "c_bigint"), Value::Int(i64::MAX));
    assert_eq!(c(max, "c_bigint_u"), Value::UInt(u64::MAX));
    assert_eq!(
        c(max, "c_decimal"),
        dec("99999999999999999999999999999999999.999999999999999999999999999999")
    );
    assert_eq!(
        c(max, "c_double"),
        Value::Double(1.797_693_134_862_315_7e308)
    );
    assert_eq!(c(max, "c_bit64"), bits(64, u64::MAX));
    assert_eq!(c(max, "c_char"), text("abcdefghij"));
    assert_eq!(c(max, "c_varchar"), text("Grüße, 世界 🎉"));
    assert_eq!(c(max, "c_latin1"), text("Ærøskøbing café"));
    assert_eq!(c(max, "c_longtext"), text(&"long ".repeat(1000)));
    assert_eq!(c(max, "c_binary"), Value::Bytes(vec![1, 0, 0, 0]));
    assert_eq!(
        c(max, "c_varbinary"),
        Value::Bytes(vec![0xDE, 0xAD, 0xBE, 0xEF, 0x00])
    );
    assert_eq!(c(max, "c_longblob"), Value::Bytes(vec![0, 0xFF, 0, 0xFF]));
    assert_eq!(c(max, "c_date"), Value::Date(Date::new(9999, 12, 31)));
    assert_eq!(
        c(max, "c_datetime6"),
        Value::DateTime(dt("9999-12-31 23:59:59.999999"))
    );
    assert_eq!(
        c(max, "c_timestamp6"),
        Value::Timestamp(dt("2038-01-19 03:14:07.999999"))
    );
    assert_eq!(c(max, "c_time"), time("838:59:59"));
    assert_eq!(c(max, "c_year"), Value::Year(2155));
    assert_eq!(c(max, "c_enum"), text("d'e"));
    assert_eq!(c(max, "c_set"), text("x,y,z"));
    assert_eq!(
        c(max, "c_json"),
        Value::Json(
            r#"{"big": 12345678901234567890.12345678901234567890, "neg": -1e-7, "s": "\u00e9"}"#
                .into()
        )
    );

    assert_eq!(c(misc, "c_bool"), Value::Int(2));
    assert_eq!(c(misc, "c_mediumint"), Value::Int(-1));
    assert_eq!(
        c(misc, "c_decimal"),
        dec("0.000000000000000000000000000001")
    );
    assert_eq!(c(misc, "c_float"), Value::Float(1.17549e-38));
    assert_eq!(c(misc, "c_double"), Value::Double(5e-324));
    assert_eq!(c(misc, "c_bit1"), Value::Null);
    assert_eq!(c(misc, "c_bit64"), bits(64, 0b1010));
    assert_eq!(c(misc, "c_char"), text("pad"));
    assert_eq!(c(misc, "c_varchar"), text("trailing  "));
    assert_eq!(c(misc, "c_binary"), Value::Bytes(vec![0x61, 0, 0, 0]));
    assert_eq!(c(misc, "c_date"), Value::Date(Date::new(2024, 2, 29)));
    assert_eq!(
        c(misc, "c_datetime6"),
        Value::DateTime(dt("2000-01-01 12:00:00.5"))
    );
    assert_eq!(c(misc, "c_time"), time("24:00:00"));
    assert_eq!(c(misc, "c_time6"), time("00:00:00.000001"));
    assert_eq!(c(misc, "c_year"), Value::Year(0));
    assert_eq!(c(misc, "c_enum"), text("b c"));
    assert_eq!(
        c(misc, "c_json"),
        Value::Json(r#"[1, 2.50, "x", null, true]"#.into())
    );

    assert_eq!(c(zero, "c_date"), Value::Date(Date::new(0, 0, 0)));
    assert_eq!(
        c(zero, "c_datetime"),
        Value::DateTime(DateTime {
            date: Date::new(0, 0, 0),
            hour: 0,
            minute: 0,
            second: 0,
            micro: 0
        })
    );
    assert_eq!(c(zero, "c_int"), Value::Null);
    assert_eq!(c(zero, "c_json"), Value::Null);

    close(readers).await;
    server.drop_database(&db)?;
    Ok(())
}

/// Reads chunks `parity`, `parity + 2`, … and returns their indexes and rows.
async fn read_every_other(
    reader: &mut MySqlSnapshotReader,
    table: &Table,
    chunks: &[Chunk],
    parity: usize,
) -> Vec<(u32, Vec<Vec<Value>>)> {
    let mut out = Vec::new();
    for c in chunks.iter().skip(parity).step_by(2) {
        out.push((c.index, read_rows(reader, table, c).await));
    }
    out
}

/// Plans `table` with `rows_per_chunk`, reads every chunk (split over the readers, which run
/// concurrently) and checks that the chunks hold every row of the table exactly once.
async fn check_chunking(
    url: &str,
    db: &str,
    name: &str,
    rows_per_chunk: u64,
    expected_rows: usize,
) -> Vec<Chunk> {
    let t = table(url, db, name).await;
    let key = t.chunk_key().expect("table has a chunk key");
    let (_snapshot, mut readers) = MySqlSnapshot::open(url, 2).await.unwrap();
    assert_eq!(readers.len(), 2);

    let chunks = {
        let mut prober = readers[0].key_prober(&t, &key).unwrap();
        plan_chunks(&mut prober, &key, rows_per_chunk, 0)
            .await
            .unwrap_or_else(|e| panic!("{}", e.report()))
    };
    let min_chunks = expected_rows.div_ceil(usize::try_from(rows_per_chunk).unwrap());
    assert!(
        chunks.len() >= min_chunks && chunks.len() <= min_chunks + 1,
        "{} chunks for {expected_rows} rows",
        chunks.len()
    );

    let key_pos: Vec<usize> = key
        .iter()
        .map(|k| column_names(&t).iter().position(|c| c == k).unwrap())
        .collect();
    let key_of =
        |row: &Vec<Value>| format!("{:?}", key_pos.iter().map(|&i| &row[i]).collect::<Vec<_>>());

    let (r0, r1) = readers.split_at_mut(1);
    let (a, b) = (&mut r0[0], &mut r1[0]);
    let (even, odd) = futures::join!(
        read_every_other(a, &t, &chunks, 0),
        read_every_other(b, &t, &chunks, 1)
    );
    let mut seen = BTreeSet::new();
    let mut total = 0;
    for (c, rows) in even.iter().chain(odd.iter()) {
        assert!(
            rows.len() <= usize::try_from(rows_per_chunk).unwrap(),
            "chunk {c} holds {} rows",
            rows.len()
        );
        for row in rows {
            total += 1;
            assert!(seen.insert(key_of(row)), "key {} read twice", key_of(row));
        }
    }
    let whole = read_rows(&mut readers[0], &t, &Chunk::whole_table()).await;
    let all: BTreeSet<String> = whole.iter().map(key_of).collect();
    assert_eq!(whole.len(), expected_rows);
    assert_eq!(all.len(), expected_rows);
    assert_eq!(total, expected_rows, "rows read through chunks");
    assert_eq!(seen, all, "chunks miss or invent keys");
    close(readers).await;
    chunks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_keys_chunk_into_the_exact_table() -> TestResult {
    let server = dts_testkit::mariadb();
    let db = server.create_unique_database("snap_chunks")?;
    server.exec_in(
        &db,
        "CREATE TABLE ints (a INT NOT NULL, b INT NOT NULL, payload VARCHAR(30), \
           PRIMARY KEY (a, b));
         INSERT INTO ints SELECT CAST(seq AS SIGNED) DIV 7 - 700, (seq * 7919) MOD 10007, CONCAT('row ', seq) \
           FROM seq_1_to_10000;
         CREATE TABLE strs (s VARCHAR(20) NOT NULL, n INT NOT NULL, id INT, \
           UNIQUE KEY sn (s, n));
         INSERT INTO strs SELECT \
           ELT(1 + seq MOD 9, 'a', 'B', 'c ', 'é', 'Z', '🎉', 'ß', 'Ä', 'c'), seq, seq \
           FROM seq_1_to_10000;",
    )?;
    let url = server.url();
    let chunks = check_chunking(&url, &db, "ints", 997, 10_000).await;
    assert_eq!(chunks[0].key, vec!["a".to_string(), "b".to_string()]);
    assert!(chunks[0].lower.is_none() && chunks.last().unwrap().upper.is_none());
    let chunks = check_chunking(&url, &db, "strs", 997, 10_000).await;
    assert_eq!(chunks[1].key, vec!["s".to_string(), "n".to_string()]);

    // The whole table comes in bounded batches.
    let t = table(&url, &db, "ints").await;
    let (_s, mut readers) = MySqlSnapshot::open(&url, 1).await?;
    let batches = read_batches(&mut readers[0], &t, &Chunk::whole_table()).await;
    assert_eq!(batches.len(), 10_000usize.div_ceil(BATCH_ROWS));
    close(readers).await;
    server.drop_database(&db)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decimal_enum_binary_and_temporal_keys_chunk_exactly() -> TestResult {
    let server = dts_testkit::mariadb();
    let db = server.create_unique_database("snap_oddkeys")?;
    server.exec_in(
        &db,
        "CREATE TABLE k1 (d DECIMAL(40,30) NOT NULL, e ENUM('z','a','m') NOT NULL, \
           vb VARBINARY(8) NOT NULL, PRIMARY KEY (d, e, vb));
         INSERT INTO k1 SELECT \
           CAST(seq DIV 10 AS DECIMAL(40,30)) + 0.000000000000000000000000000001 * (seq MOD 2), \
           1 + seq MOD 3, \
           UNHEX(LPAD(HEX((seq * 2654435761) MOD 4294967296), 8, '0')) \
           FROM seq_1_to_3000;
         CREATE TABLE k2 (dt DATETIME(6) NOT NULL, t TIME(6) NOT NULL, bt BIT(12) NOT NULL, \
           y YEAR NOT NULL, PRIMARY KEY (dt, t, bt, y));
         INSERT INTO k2 SELECT \
           '2024-01-01' + INTERVAL (seq DIV 5) SECOND + INTERVAL (seq MOD 2) MICROSECOND, \
           SEC_TO_TIME(CAST((seq * 997) MOD 3000000 AS SIGNED) - 1500000) + INTERVAL 0.5 SECOND, \
           seq MOD 4096, 1901 + seq MOD 255 \
           FROM seq_1_to_3000;",
    )?;
    let url = server.url();
    check_chunking(&url, &db, "k1", 97, 3000).await;
    check_chunking(&url, &db, "k2", 97, 3000).await;
    server.drop_database(&db)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_rows_close_batches_by_size() -> TestResult {
    let server = dts_testkit::mariadb();
    let db = server.create_unique_database("snap_big")?;
    server.exec_in(
        &db,
        "CREATE TABLE blobs (id INT PRIMARY KEY, b LONGBLOB);
         INSERT INTO blobs SELECT seq, REPEAT('x', 1048576) FROM seq_1_to_20;
         CREATE TABLE geo (id INT PRIMARY KEY, p POINT);",
    )?;
    let url = server.url();
    let t = table(&url, &db, "blobs").await;
    let (_s, mut readers) = MySqlSnapshot::open(&url, 1).await?;
    let batches = read_batches(&mut readers[0], &t, &Chunk::whole_table()).await;
    assert_eq!(batches.iter().map(RowBatch::len).sum::<usize>(), 20);
    assert!(batches.len() >= 3, "{} batches", batches.len());
    for b in &batches {
        assert!(b.size_bytes < BATCH_BYTES + (1 << 20) + 64);
    }

    // Spatial columns are refused, naming the column.
    let geo = table(&url, &db, "geo").await;
    let err = readers[0]
        .read_chunk(&geo, &Chunk::whole_table())
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(
        err.message().contains(&format!("{db}.geo.p")),
        "{}",
        err.report()
    );
    close(readers).await;
    server.drop_database(&db)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_share_one_snapshot_at_the_recorded_position() -> TestResult {
    let server = dts_testkit::mariadb();
    let db = server.create_unique_database("snap_iso")?;
    server.exec_in(
        &db,
        "CREATE TABLE iso (id INT PRIMARY KEY, v VARCHAR(40) NOT NULL);
         INSERT INTO iso SELECT seq, CONCAT('v', seq) FROM seq_1_to_100;",
    )?;
    let url = server.url();
    let t = table(&url, &db, "iso").await;
    let before = master_status();

    let (snapshot, mut readers) = MySqlSnapshot::open(&url, 2).await?;
    assert_eq!(readers.len(), 2);
    assert_eq!(snapshot.mode(), MySqlSnapshotMode::GlobalReadLock);
    let position = binlog_coords(snapshot.position());
    let gtid = match snapshot.position() {
        Some(Position::Binlog { gtid, .. }) => gtid.clone(),
        _ => None,
    };
    assert!(
        gtid.as_deref().is_some_and(|g| g.starts_with("0-1-")),
        "{gtid:?}"
    );

    let marker = format!("after-snapshot-{db}");
    server.exec_in(
        &db,
        &format!(
            "INSERT INTO iso VALUES (1000, '{marker}');
             UPDATE iso SET v = '{marker}' WHERE id = 1;
             DELETE FROM iso WHERE id = 2;"
        ),
    )?;
    let after = master_status();
    assert!(before <= position, "{before:?} > {position:?}");
    assert!(position < after, "{position:?} >= {after:?}");

    for reader in &mut readers {
        let rows = read_rows(reader, &t, &Chunk::whole_table()).await;
        assert_eq!(rows.len(), 100, "reader {}", reader.index());
        let ids: Vec<&Value> = rows.iter().map(|r| &r[0]).collect();
        assert!(ids.contains(&&Value::Int(2)));
        assert!(!ids.contains(&&Value::Int(1000)));
        let one = rows.iter().find(|r| r[0] == Value::Int(1)).unwrap();
        assert_eq!(one[1], text("v1"));
    }
    // A fresh connection sees the changes.
    assert_eq!(
        server.query_in(&db, "SELECT COUNT(*), MAX(id) FROM iso")?,
        "100\t1000"
    );

    // The changes are in the binlog after the snapshot's position, and not before it.
    let (file, offset) = position;
    let later = binlog_events(&url, &file, offset).await;
    let count = |events: &[(u64, String, String)]| {
        events
            .iter()
            .filter(|(_, _, info)| info.contains(&marker))
            .count()
    };
    assert_eq!(
        count(&later),
        2,
        "insert and update annotated after the position"
    );
    assert!(later
        .iter()
        .any(|(_, kind, info)| kind == "Table_map" && info.contains(&format!("({db}.iso)"))));
    let all = binlog_events(&url, &file, 4).await;
    let earlier: Vec<_> = all
        .into_iter()
        .filter(|(pos, _, _)| *pos < offset)
        .collect();
    assert_eq!(count(&earlier), 0);
    close(readers).await;
    server.drop_database(&db)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_free_snapshot_position_is_exact_under_writes() -> TestResult {
    let server = dts_testkit::mariadb();
    let db = server.create_unique_database("snap_exact")?;
    server.exec_in(&db, "CREATE TABLE w (k INT PRIMARY KEY);")?;
    let url = server.url();
    let t = table(&url, &db, "w").await;

    // One writer inserts k = 1, 2, 3, … in autocommit transactions.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, written, url, db) = (stop.clone(), written.clone(), url.clone(), db.clone());
        tokio::spawn(async move {
            let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&url).unwrap())
                .await
                .unwrap();
            conn.query_drop("SET SESSION binlog_annotate_row_events = ON")
                .await
                .unwrap();
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                k += 1;
                conn.query_drop(format!("INSERT INTO `{db}`.w (k) VALUES ({k})"))
                    .await
                    .unwrap();
                written.store(k, Ordering::Relaxed);
            }
            conn.disconnect().await.unwrap();
        })
    };
    let wait_for = |n: u64| {
        let written = written.clone();
        async move {
            let deadline = Instant::now() + StdDuration::from_secs(30);
            while written.load(Ordering::Relaxed) < n {
                assert!(Instant::now() < deadline, "writer stalled");
                tokio::time::sleep(StdDuration::from_millis(5)).await;
            }
        }
    };
    wait_for(200).await;
    let (snapshot, mut readers) = MySqlSnapshot::open(&url, 1).await?;
    assert_eq!(snapshot.mode(), MySqlSnapshotMode::LockFree);
    let opened_at = written.load(Ordering::Relaxed);
    wait_for(opened_at + 200).await;
    stop.store(true, Ordering::Relaxed);
    writer.await?;

    // The reader's own status agrees with the recorded position.
    let (file, offset) = binlog_coords(snapshot.position());
    let status: Vec<(String, String)> = readers[0]
        .conn()
        .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
        .await?;
    assert!(status.contains(&("Binlog_snapshot_file".to_string(), file.clone())));
    assert!(status.contains(&("Binlog_snapshot_position".to_string(), offset.to_string())));

    // The snapshot holds exactly k = 1..=n.
    let rows = read_rows(&mut readers[0], &t, &Chunk::whole_table()).await;
    let mut keys: Vec<i64> = rows
        .iter()
        .map(|r| match r[0] {
            Value::Int(k) => k,
            _ => panic!("int key"),
        })
        .collect();
    keys.sort_unstable();
    let n = i64::try_from(keys.len())?;
    assert!(n >= 200, "snapshot holds {n} rows");
    assert_eq!(keys, (1..=n).collect::<Vec<_>>());

    // The first insert after the position is k = n + 1: no gap, no overlap.
    let events = binlog_events(&url, &file, offset).await;
    let needle = format!("INSERT INTO `{db}`.w (k) VALUES (");
    let after: Vec<i64> = events
        .iter()
        .filter(|(_, kind, _)| kind == "Annotate_rows")
        .filter_map(|(_, _, info)| info.strip_prefix(&needle)?.strip_suffix(')')?.parse().ok())
        .collect();
    assert_eq!(
        after.first(),
        Some(&(n + 1)),
        "first insert after the position"
    );
    assert!(after.windows(2).all(|w| w[1] == w[0] + 1));

    // The gtid is that of the last transaction before the position.
    let gtid = match snapshot.position() {
        Some(Position::Binlog { gtid: Some(g), .. }) => g.clone(),
        other => panic!("no gtid in {other:?}"),
    };
    let (_, kind, info) = events.first().unwrap();
    assert_eq!(kind, "Gtid", "an event group starts at the position");
    let seq = |g: &str| -> u64 { g.rsplit('-').next().unwrap().trim().parse().unwrap() };
    let next_gtid = info.split_whitespace().last().unwrap();
    assert_eq!(seq(next_gtid), seq(&gtid) + 1, "{gtid} then {info}");
    close(readers).await;
    server.drop_database(&db)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_reload_privilege_one_lock_free_reader_is_used() -> TestResult {
    let server = dts_testkit::mariadb();
    let db = server.create_unique_database("snap_priv")?;
    let user = dts_testkit::unique_name("snapuser");
    let mut grants = String::new();
    for host in ["localhost", "127.0.0.1", "::1"] {
        grants.push_str(&format!(
            "CREATE USER '{user}'@'{host}' IDENTIFIED BY 'pw'; \
             GRANT SELECT ON `{db}`.* TO '{user}'@'{host}';"
        ));
    }
    server.exec(&grants)?;
    server.exec_in(
        &db,
        "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2), (3);",
    )?;
    let url = format!("mysql://{user}:pw@{}:{}/{db}", server.host(), server.port());
    let t = table(&server.url(), &db, "t").await;

    let (snapshot, mut readers) = MySqlSnapshot::open(&url, 3).await?;
    assert_eq!(readers.len(), 1);
    assert_eq!(snapshot.mode(), MySqlSnapshotMode::LockFree);
    assert!(snapshot.position().is_some());
    let rows = read_rows(&mut readers[0], &t, &Chunk::whole_table()).await;
    assert_eq!(rows.len(), 3);

    let key = vec!["id".to_string()];
    let chunks = {
        let mut prober = readers[0].key_prober(&t, &key)?;
        plan_chunks(&mut prober, &key, 2, 0).await?
    };
    assert_eq!(chunks.len(), 2);
    let mut total = 0;
    for c in &chunks {
        total += read_rows(&mut readers[0], &t, c).await.len();
    }
    assert_eq!(total, 3);
    close(readers).await;
    let mut drops = String::new();
    for host in ["localhost", "127.0.0.1", "::1"] {
        drops.push_str(&format!("DROP USER '{user}'@'{host}';"));
    }
    server.exec(&drops)?;
    server.drop_database(&db)?;
    Ok(())
}

/// Counts the rows of chunks `parity`, `parity + 2`, … without keeping them.
async fn count_every_other(
    reader: &mut MySqlSnapshotReader,
    table: &Table,
    chunks: &[Chunk],
    parity: usize,
) -> usize {
    let mut n = 0;
    for c in chunks.iter().skip(parity).step_by(2) {
        let mut batches = reader.read_chunk(table, c);
        while let Some(b) = batches.try_next().await.unwrap() {
            n += b.len();
        }
    }
    n
}

/// Read throughput; run with
/// `cargo test --release -p dts-connectors --test mysql_snapshot -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "throughput measurement"]
async fn read_throughput() -> TestResult {
    let server = dts_testkit::mariadb();
    let db = server.create_unique_database("snap_speed")?;
    server.exec_in(
        &db,
        "CREATE TABLE big (id INT PRIMARY KEY, a BIGINT, s VARCHAR(32), d DECIMAL(12,2), \
           t DATETIME);
         INSERT INTO big SELECT seq, seq * 31, CONCAT('name-', seq), seq / 100, \
           '2024-01-01' + INTERVAL seq SECOND FROM seq_1_to_1000000;",
    )?;
    let url = server.url();
    let t = table(&url, &db, "big").await;

    let (_s, mut readers) = MySqlSnapshot::open(&url, 1).await?;
    let whole = Chunk::whole_table();
    for pass in ["cold", "warm"] {
        let started = Instant::now();
        let rows = count_every_other(&mut readers[0], &t, std::slice::from_ref(&whole), 0).await;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "1 reader, whole table, {pass}: {rows} rows in {secs:.2} s = {:.0} rows/s",
            rows as f64 / secs
        );
    }
    close(readers).await;
    let (_s, mut readers) = MySqlSnapshot::open(&url, 2).await?;
    let key = vec!["id".to_string()];
    let chunks = {
        let mut prober = readers[0].key_prober(&t, &key)?;
        plan_chunks(&mut prober, &key, 100_000, 0).await?
    };
    let started = Instant::now();
    let (r0, r1) = readers.split_at_mut(1);
    let (a, b) = tokio::join!(
        count_every_other(&mut r0[0], &t, &chunks, 0),
        count_every_other(&mut r1[0], &t, &chunks, 1)
    );
    let n = a + b;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "2 readers, {} chunks: {} rows in {secs:.2} s = {:.0} rows/s",
        chunks.len(),
        n,
        n as f64 / secs
    );
    close(readers).await;
    server.drop_database(&db)?;
    Ok(())
}

/// Behind a long-running statement, the global read lock of a multi-reader snapshot gives up after
/// `SNAPSHOT_LOCK_WAIT_SECONDS` with a transient error naming the cause, and the source's
/// writes, which wait behind the lock attempt, are held up no longer than that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_lock_gives_up_behind_a_long_query() -> TestResult {
    use dts_connectors::mysql::SNAPSHOT_LOCK_WAIT_SECONDS;
    let my = dts_testkit::mariadb();
    let db = my.create_unique_database("snap_lockwait")?;
    my.exec_in(
        &db,
        "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1);
         CREATE TABLE w (id INT PRIMARY KEY);",
    )?;
    let url = my.url_for(&db);
    let limit = StdDuration::from_secs(u64::from(SNAPSHOT_LOCK_WAIT_SECONDS));

    // A long-running write on `t`: the global read lock waits for it to end.
    let mut long = mysql_async::Conn::new(mysql_async::Opts::from_url(&url)?).await?;
    let long_id = long.id();
    let long_query = tokio::spawn(async move {
        long.query_drop("UPDATE t SET id = id WHERE SLEEP(30) = 0")
            .await
    });
    tokio::time::sleep(StdDuration::from_millis(300)).await;

    let started = Instant::now();
    let lock = tokio::spawn({
        let url = url.clone();
        async move { MySqlSnapshot::open(&url, 2).await.map(|_| ()) }
    });
    // A write that arrives while the lock attempt waits.
    tokio::time::sleep(StdDuration::from_millis(500)).await;
    let mut writer = mysql_async::Conn::new(mysql_async::Opts::from_url(&url)?).await?;
    let write_started = Instant::now();
    writer.query_drop("INSERT INTO w VALUES (1)").await?;
    let write_waited = write_started.elapsed();
    let e = lock.await?.unwrap_err();
    let waited = started.elapsed();
    my.exec(&format!("KILL QUERY {long_id}"))?;
    let _ = long_query.await;

    assert_eq!(e.kind(), ErrorKind::Transient, "{}", e.report());
    assert!(e.is_retryable());
    assert!(
        e.report().contains("long-running statement"),
        "{}",
        e.report()
    );
    assert!(
        waited < limit + StdDuration::from_secs(3),
        "the lock attempt took {waited:?}"
    );
    assert!(
        write_waited < limit + StdDuration::from_secs(1),
        "a write waited {write_waited:?} behind the lock attempt"
    );
    Ok(())
}
