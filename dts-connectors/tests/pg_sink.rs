//! The PostgreSQL chunk sink against a real server: every supported type round-trips
//! exactly, a failed chunk leaves nothing behind, and checkpoints keep a chunk from being
//! written twice.
//!
//! Runs on the testkit's private PostgreSQL (or the server named by `DTS_TEST_PG_URL`):
//! `cargo test -p dts-connectors --test pg_sink`.

#![cfg(feature = "postgres")]

use bytes::BytesMut;
use dts_connectors::postgres::{PgChunkSink, PgCopyColumn, PgCopyEncoder};
use dts_core::{
    BitString, Chunk, ChunkSink, Date, DateTime, Duration, Error, ErrorKind, RowBatch, TableName,
    TargetTable, Value,
};
use futures::stream::{self, BoxStream, StreamExt};

const TASK: &str = "task-1";

/// A fresh database and a sink connected to it.
async fn setup(prefix: &str, ddl: &str) -> (String, PgChunkSink) {
    let pg = dts_testkit::postgres();
    let db = dts_testkit::unique_name(prefix);
    pg.create_database(&db).unwrap();
    pg.exec_in(&db, ddl).unwrap();
    let sink = PgChunkSink::connect(&pg.url_for(&db), TASK).await.unwrap();
    (db, sink)
}

fn query(db: &str, sql: &str) -> String {
    dts_testkit::postgres().query_in(db, sql).unwrap()
}

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

fn table(schema: &str, name: &str, columns: &[&str]) -> TargetTable {
    TargetTable {
        name: TableName::new(schema, name),
        columns: columns.iter().map(|c| c.to_string()).collect(),
    }
}

fn dec(s: &str) -> Value {
    Value::Decimal(s.parse().unwrap())
}

fn date(s: &str) -> Date {
    s.parse().unwrap()
}

fn datetime(s: &str) -> DateTime {
    s.parse().unwrap()
}

fn time(s: &str) -> Value {
    Value::Time(s.parse::<Duration>().unwrap())
}

const ALL_TYPES: &str = r#"
    CREATE SCHEMA "Shop";
    CREATE TYPE "Shop".mood AS ENUM ('sad', 'happy');
    CREATE DOMAIN "Shop".price AS numeric(5,2) CHECK (VALUE > 0);
    CREATE TABLE "Shop"."all ""types""" (
        id int PRIMARY KEY,
        i2 smallint, i4 integer, i8 bigint,
        n numeric(65,30), nu numeric,
        f4 real, f8 double precision,
        b boolean,
        t text, vc varchar(10), bc char(3), j json, jb jsonb,
        by bytea,
        d date, ts timestamp(6), tstz timestamptz(6), tm time(6),
        iv interval hour to second(6),
        bits bit(64), vb varbit(10),
        u uuid, e "Shop".mood, p "Shop".price,
        "we""ird" int
    );
"#;

/// Column, then for each of three rows the value written and the text PostgreSQL returns
/// (`∅` for NULL).
fn all_types_cases() -> Vec<(&'static str, [(Value, String); 3])> {
    let max65 = format!("{}.{}", "9".repeat(35), "9".repeat(30));
    let ones = "1".repeat(64);
    let s = |x: &str| x.to_string();
    vec![
        (
            "i2",
            [
                (Value::Int(32767), s("32767")),
                (Value::UInt(0), s("0")),
                (Value::Int(-32768), s("-32768")),
            ],
        ),
        (
            "i4",
            [
                (Value::UInt(2_147_483_647), s("2147483647")),
                (Value::Null, s("∅")),
                (Value::Int(-2_147_483_648), s("-2147483648")),
            ],
        ),
        (
            "i8",
            [
                (
                    Value::UInt(9_223_372_036_854_775_807),
                    s("9223372036854775807"),
                ),
                (Value::Int(0), s("0")),
                (Value::Int(i64::MIN), s("-9223372036854775808")),
            ],
        ),
        (
            "n",
            [
                (dec(&max65), max65.clone()),
                (dec("0"), format!("0.{}", "0".repeat(30))),
                (dec(&format!("-{max65}")), format!("-{max65}")),
            ],
        ),
        (
            "nu",
            [
                (dec("12345.678"), s("12345.678")),
                (Value::UInt(u64::MAX), s("18446744073709551615")),
                (dec("-0.00010"), s("-0.00010")),
            ],
        ),
        (
            "f4",
            [
                (Value::Float(-0.0), s("-0")),
                (Value::Float(f32::MAX), s("3.4028235e+38")),
                (Value::Float(f32::MIN_POSITIVE), s("1.1754944e-38")),
            ],
        ),
        (
            "f8",
            [
                (Value::Double(f64::MAX), s("1.7976931348623157e+308")),
                (Value::Double(5e-324), s("5e-324")),
                (Value::Double(0.1), s("0.1")),
            ],
        ),
        (
            "b",
            [
                (Value::Bool(true), s("true")),
                (Value::Bool(false), s("false")),
                (Value::Null, s("∅")),
            ],
        ),
        (
            "t",
            [
                (Value::Text(s("héllo wörld 😀")), s("héllo wörld 😀")),
                (Value::Text(String::new()), String::new()),
                (
                    Value::Text(s("line\nbreak\ttab\\")),
                    s("line\nbreak\ttab\\"),
                ),
            ],
        ),
        (
            "vc",
            [
                (Value::Text(s("ééééééééé€")), s("ééééééééé€")),
                (Value::Text(s("a ")), s("a ")),
                (Value::Null, s("∅")),
            ],
        ),
        (
            "bc",
            [
                (Value::Text(s("abc")), s("abc")),
                (Value::Text(s("€€€")), s("€€€")),
                (Value::Null, s("∅")),
            ],
        ),
        (
            "j",
            [
                (
                    Value::Json(s("{\"a\": [1, 2.50]}")),
                    s("{\"a\": [1, 2.50]}"),
                ),
                (Value::Json(s("\"\\u0000\"")), s("\"\\u0000\"")),
                (Value::Null, s("∅")),
            ],
        ),
        (
            "jb",
            [
                (
                    Value::Json(s("{\"n\":1234567890123456789012345678901234567890}")),
                    s("{\"n\": 1234567890123456789012345678901234567890}"),
                ),
                (
                    Value::Json(s("[0.10000000000000000000000000000000000001, \"é\"]")),
                    s("[0.10000000000000000000000000000000000001, \"é\"]"),
                ),
                (Value::Text(s("null")), s("null")),
            ],
        ),
        (
            "by",
            [
                (Value::Bytes(vec![0, 0, 1, 255, 0]), s("\\x000001ff00")),
                (Value::Bytes(Vec::new()), s("\\x")),
                (Value::Null, s("∅")),
            ],
        ),
        (
            "d",
            [
                (Value::Date(date("2000-01-01")), s("2000-01-01")),
                (Value::Date(date("1970-01-01")), s("1970-01-01")),
                (Value::Date(date("9999-12-31")), s("9999-12-31")),
            ],
        ),
        (
            "ts",
            [
                (
                    Value::DateTime(datetime("1970-01-01 00:00:00")),
                    s("1970-01-01 00:00:00"),
                ),
                (
                    Value::DateTime(datetime("9999-12-31 23:59:59.999999")),
                    s("9999-12-31 23:59:59.999999"),
                ),
                (
                    Value::DateTime(datetime("0001-01-01 00:00:00")),
                    s("0001-01-01 00:00:00"),
                ),
            ],
        ),
        (
            "tstz",
            [
                (
                    Value::Timestamp(datetime("1970-01-01 00:00:00")),
                    s("1970-01-01 00:00:00+00"),
                ),
                (
                    Value::Timestamp(datetime("2038-01-19 03:14:08.000001")),
                    s("2038-01-19 03:14:08.000001+00"),
                ),
                (Value::Null, s("∅")),
            ],
        ),
        (
            "tm",
            [
                (time("24:00:00"), s("24:00:00")),
                (time("00:00:00.000001"), s("00:00:00.000001")),
                (time("13:14:15.5"), s("13:14:15.5")),
            ],
        ),
        (
            "iv",
            [
                (time("-838:59:59"), s("-838:59:59")),
                (time("838:59:58.999999"), s("838:59:58.999999")),
                (time("00:00:00"), s("00:00:00")),
            ],
        ),
        (
            "bits",
            [
                (Value::Bits(BitString::new(64, u64::MAX).unwrap()), ones),
                (
                    Value::Bits(BitString::new(64, 1).unwrap()),
                    format!("{}1", "0".repeat(63)),
                ),
                (Value::Null, s("∅")),
            ],
        ),
        (
            "vb",
            [
                (Value::Bits(BitString::new(3, 0b101).unwrap()), s("101")),
                (
                    Value::Bits(BitString::new(10, 0b10_0000_0001).unwrap()),
                    s("1000000001"),
                ),
                (Value::Null, s("∅")),
            ],
        ),
        (
            "u",
            [
                (
                    Value::Text(s("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")),
                    s("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
                ),
                (
                    Value::Bytes(vec![0xff; 16]),
                    s("ffffffff-ffff-ffff-ffff-ffffffffffff"),
                ),
                (Value::Null, s("∅")),
            ],
        ),
        (
            "e",
            [
                (Value::Text(s("happy")), s("happy")),
                (Value::Text(s("sad")), s("sad")),
                (Value::Null, s("∅")),
            ],
        ),
        (
            "p",
            [
                (dec("1.5"), s("1.50")),
                (dec("999.99"), s("999.99")),
                (Value::Null, s("∅")),
            ],
        ),
        (
            "we\"ird",
            [
                (Value::Int(1), s("1")),
                (Value::Int(2), s("2")),
                (Value::Int(3), s("3")),
            ],
        ),
    ]
}

#[tokio::test]
async fn every_type_round_trips_exactly() {
    let (db, mut sink) = setup("pgsink_types", ALL_TYPES).await;
    let cases = all_types_cases();
    let mut columns = vec!["id"];
    columns.extend(cases.iter().map(|(c, _)| *c));
    let target = table("Shop", "all \"types\"", &columns);
    let rows: Vec<Vec<Value>> = (0..3)
        .map(|i| {
            let mut row = vec![Value::Int(i64::try_from(i).unwrap())];
            row.extend(cases.iter().map(|(_, vals)| vals[i].0.clone()));
            row
        })
        .collect();
    // Two batches, to cross a batch boundary.
    let second = rows[2..].to_vec();
    let first = rows[..2].to_vec();
    let stats = sink
        .write_chunk(
            &target,
            &chunk(0),
            batches(vec![Ok(batch(first)), Ok(batch(second))]),
        )
        .await
        .unwrap();
    assert_eq!(stats.rows, 3);
    assert!(stats.bytes > 100, "{stats:?}");

    for (column, vals) in &cases {
        let ident = format!("\"{}\"", column.replace('"', "\"\""));
        let got = query(
            &db,
            &format!(
                "SET extra_float_digits = 3; SET TimeZone = 'UTC'; SET IntervalStyle = 'postgres';\n\
                 SELECT coalesce({ident}::text, '∅') FROM \"Shop\".\"all \"\"types\"\"\" ORDER BY id"
            ),
        );
        let want: Vec<&str> = vals.iter().map(|(_, text)| text.as_str()).collect();
        assert_eq!(got, want.join("\n"), "column {column}");
    }
    assert_eq!(
        query(
            &db,
            "SELECT task, schema_name, table_name, chunk, rows FROM dts_meta.chunk"
        ),
        "task-1|Shop|all \"types\"|0|3"
    );
}

/// The encoder's bytes equal what the server's own send functions produce for the same
/// value, so the unit tests' fixtures are the server's canonical encodings.
#[test]
fn encoder_bytes_match_the_servers_send_functions() {
    let pg = dts_testkit::postgres();
    let db = dts_testkit::unique_name("pgsink_send");
    pg.create_database(&db).unwrap();
    let max65 = format!("{}.{}", "9".repeat(35), "9".repeat(30));
    // (type oid, typmod, SQL expression, value)
    let cases: Vec<(u32, i32, String, Value)> = vec![
        (
            21,
            -1,
            "int2send((-32768)::int2)".into(),
            Value::Int(-32768),
        ),
        (
            23,
            -1,
            "int4send((2147483647)::int4)".into(),
            Value::UInt(2_147_483_647),
        ),
        (
            20,
            -1,
            "int8send((-9223372036854775808)::int8)".into(),
            Value::Int(i64::MIN),
        ),
        (1700, -1, "numeric_send((0)::numeric)".into(), dec("0")),
        (
            1700,
            -1,
            "numeric_send((0.000)::numeric)".into(),
            dec("0.000"),
        ),
        (1700, -1, "numeric_send((1)::numeric)".into(), dec("1")),
        (1700, -1, "numeric_send((-1)::numeric)".into(), dec("-1")),
        (
            1700,
            -1,
            "numeric_send((10000)::numeric)".into(),
            dec("10000"),
        ),
        (
            1700,
            -1,
            "numeric_send((0.0001)::numeric)".into(),
            dec("0.0001"),
        ),
        (
            1700,
            -1,
            "numeric_send((0.00000001)::numeric)".into(),
            dec("0.00000001"),
        ),
        (
            1700,
            -1,
            "numeric_send((12345.678)::numeric)".into(),
            dec("12345.678"),
        ),
        (
            1700,
            -1,
            "numeric_send((100000000.0001)::numeric)".into(),
            dec("100000000.0001"),
        ),
        (
            1700,
            -1,
            format!("numeric_send(({max65})::numeric)"),
            dec(&max65),
        ),
        (
            1700,
            -1,
            format!("numeric_send((-{max65})::numeric)"),
            dec(&format!("-{max65}")),
        ),
        (
            1700,
            -1,
            "numeric_send((18446744073709551615)::numeric)".into(),
            Value::UInt(u64::MAX),
        ),
        (
            1700,
            -1,
            "numeric_send((-9223372036854775808)::numeric)".into(),
            Value::Int(i64::MIN),
        ),
        (
            700,
            -1,
            "float4send(('-0')::float4)".into(),
            Value::Float(-0.0),
        ),
        (
            700,
            -1,
            "float4send(('3.4028235e38')::float4)".into(),
            Value::Float(f32::MAX),
        ),
        (
            701,
            -1,
            "float8send(('1.7976931348623157e308')::float8)".into(),
            Value::Double(f64::MAX),
        ),
        (16, -1, "boolsend(true)".into(), Value::Bool(true)),
        (
            25,
            -1,
            "textsend(('héllo')::text)".into(),
            Value::Text("héllo".into()),
        ),
        (
            3802,
            -1,
            r#"jsonb_send(('{"n": 1}')::jsonb)"#.into(),
            Value::Json(r#"{"n": 1}"#.into()),
        ),
        (
            1082,
            -1,
            "date_send(('2000-01-01')::date)".into(),
            Value::Date(date("2000-01-01")),
        ),
        (
            1082,
            -1,
            "date_send(('1970-01-01')::date)".into(),
            Value::Date(date("1970-01-01")),
        ),
        (
            1082,
            -1,
            "date_send(('0001-01-01')::date)".into(),
            Value::Date(date("0001-01-01")),
        ),
        (
            1114,
            -1,
            "timestamp_send(('1970-01-01 00:00:00')::timestamp)".into(),
            Value::DateTime(datetime("1970-01-01 00:00:00")),
        ),
        (
            1184,
            -1,
            "timestamptz_send(('2038-01-19 03:14:08.000001+00')::timestamptz)".into(),
            Value::Timestamp(datetime("2038-01-19 03:14:08.000001")),
        ),
        (
            1083,
            -1,
            "time_send(('24:00:00')::time)".into(),
            time("24:00:00"),
        ),
        (
            1186,
            -1,
            "interval_send(('-838:59:59')::interval)".into(),
            time("-838:59:59"),
        ),
        (
            1186,
            -1,
            "interval_send(('838:59:58.999999')::interval)".into(),
            time("838:59:58.999999"),
        ),
        (
            1560,
            3,
            "bit_send(B'101')".into(),
            Value::Bits(BitString::new(3, 5).unwrap()),
        ),
        (
            1560,
            64,
            format!("bit_send(B'{}')", "1".repeat(64)),
            Value::Bits(BitString::new(64, u64::MAX).unwrap()),
        ),
        (
            1562,
            -1,
            "varbit_send((B'1000000001')::varbit)".into(),
            Value::Bits(BitString::new(10, 0b10_0000_0001).unwrap()),
        ),
        (
            2950,
            -1,
            "uuid_send(('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11')::uuid)".into(),
            Value::Text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into()),
        ),
    ];
    let sql: Vec<String> = cases
        .iter()
        .map(|(_, _, expr, _)| format!("SELECT encode({expr}, 'hex');"))
        .collect();
    let server = query(&db, &sql.join("\n"));
    let server: Vec<&str> = server.lines().collect();
    assert_eq!(server.len(), cases.len());
    for ((oid, typmod, expr, value), want) in cases.iter().zip(server) {
        let mut encoder = PgCopyEncoder::new(&[PgCopyColumn::new("c", *oid, *typmod)]).unwrap();
        let mut out = BytesMut::new();
        encoder
            .encode_row(std::slice::from_ref(value), &mut out)
            .unwrap();
        let got: String = out[6..].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(got, want, "{expr}");
    }
}

const SIMPLE: &str = "CREATE SCHEMA s; CREATE TABLE s.t (id bigint PRIMARY KEY, name text);";

fn simple_rows(from: i64, to: i64) -> RowBatch {
    batch(
        (from..to)
            .map(|i| vec![Value::Int(i), Value::Text(format!("row {i}"))])
            .collect(),
    )
}

#[tokio::test]
async fn a_stream_error_mid_chunk_leaves_nothing() {
    let (db, mut sink) = setup("pgsink_abort", SIMPLE).await;
    let target = table("s", "t", &["id", "name"]);
    // Enough rows that some bytes have reached the server before the error.
    let e = sink
        .write_chunk(
            &target,
            &chunk(0),
            batches(vec![
                Ok(simple_rows(0, 50_000)),
                Err(Error::new(ErrorKind::Connection, "source went away")),
                Ok(simple_rows(50_000, 50_001)),
            ]),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection);
    assert_eq!(e.message(), "source went away");
    assert_eq!(query(&db, "SELECT count(*) FROM s.t"), "0");
    assert_eq!(query(&db, "SELECT count(*) FROM dts_meta.chunk"), "0");
    assert!(sink.done_chunks(&target).await.unwrap().is_empty());

    // The connection is still usable: the retry writes the chunk.
    let stats = sink
        .write_chunk(
            &target,
            &chunk(0),
            batches(vec![
                Ok(simple_rows(0, 50_000)),
                Ok(simple_rows(50_000, 50_001)),
            ]),
        )
        .await
        .unwrap();
    assert_eq!(stats.rows, 50_001);
    assert_eq!(
        query(&db, "SELECT count(*), sum(id) FROM s.t"),
        "50001|1250025000"
    );
}

#[tokio::test]
async fn a_nul_in_text_names_the_column_and_row() {
    let (db, mut sink) = setup("pgsink_nul", SIMPLE).await;
    let target = table("s", "t", &["id", "name"]);
    let rows = batch(vec![
        vec![Value::Int(1), Value::Text("fine".into())],
        vec![Value::Int(2), Value::Text("private\0data".into())],
    ]);
    let e = sink
        .write_chunk(&target, &chunk(7), batches(vec![Ok(rows)]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Value);
    assert_eq!(
        e.message(),
        "row 2 of chunk 7: column `name`: contains a NUL character, which PostgreSQL text \
         cannot hold"
    );
    assert!(!e.report().contains("private"));
    assert_eq!(query(&db, "SELECT count(*) FROM s.t"), "0");
    assert_eq!(query(&db, "SELECT count(*) FROM dts_meta.chunk"), "0");
}

#[tokio::test]
async fn done_chunks_reflect_commits_and_a_chunk_is_never_written_twice() {
    let (db, mut sink) = setup("pgsink_done", SIMPLE).await;
    let target = table("s", "t", &["id", "name"]);
    assert!(sink.done_chunks(&target).await.unwrap().is_empty());
    for (index, from) in [(2, 200), (0, 0)] {
        sink.write_chunk(
            &target,
            &chunk(index),
            batches(vec![Ok(simple_rows(from, from + 100))]),
        )
        .await
        .unwrap();
    }
    assert_eq!(sink.done_chunks(&target).await.unwrap(), [0, 2]);

    // Chunk 2 again: the checkpoint key rejects it and none of its rows stay.
    let e = sink
        .write_chunk(
            &target,
            &chunk(2),
            batches(vec![Ok(simple_rows(1000, 1100))]),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{}", e.report());
    assert_eq!(query(&db, "SELECT count(*), max(id) FROM s.t"), "200|299");

    // Another task and another table have their own checkpoints.
    let pg = dts_testkit::postgres();
    let mut other = PgChunkSink::connect(&pg.url_for(&db), "task-2")
        .await
        .unwrap();
    assert!(other.done_chunks(&target).await.unwrap().is_empty());
    let t2 = table("s", "t2", &["id", "name"]);
    assert!(sink.done_chunks(&t2).await.unwrap().is_empty());
    assert_eq!(
        query(
            &db,
            "SELECT string_agg(chunk || ':' || rows, ',' ORDER BY chunk) FROM dts_meta.chunk"
        ),
        "0:100,2:100"
    );
}

#[tokio::test]
async fn an_empty_chunk_is_recorded() {
    let (db, mut sink) = setup("pgsink_empty", SIMPLE).await;
    let target = table("s", "t", &["id", "name"]);
    let stats = sink
        .write_chunk(&target, &chunk(0), batches(vec![]))
        .await
        .unwrap();
    assert_eq!(stats.rows, 0);
    assert_eq!(sink.done_chunks(&target).await.unwrap(), [0]);
    assert_eq!(query(&db, "SELECT count(*) FROM s.t"), "0");
}

#[tokio::test]
async fn missing_tables_and_columns_are_named() {
    let (_db, mut sink) = setup("pgsink_missing", SIMPLE).await;
    let e = sink
        .write_chunk(
            &table("s", "t", &["id", "nope"]),
            &chunk(0),
            batches(vec![]),
        )
        .await
        .unwrap_err();
    assert_eq!(e.message(), "target table `s.t` has no column `nope`");
    let e = sink
        .write_chunk(&table("s", "absent", &["id"]), &chunk(0), batches(vec![]))
        .await
        .unwrap_err();
    assert!(e.message().contains("`s.absent` does not exist"), "{e}");
}

#[tokio::test]
async fn server_side_rejections_roll_back() {
    let (db, mut sink) = setup(
        "pgsink_reject",
        "CREATE SCHEMA s; CREATE TABLE s.t (id bigint PRIMARY KEY, name text CHECK (name <> 'x'));",
    )
    .await;
    let target = table("s", "t", &["id", "name"]);
    let rows = batch(vec![
        vec![Value::Int(1), Value::Text("a".into())],
        vec![Value::Int(2), Value::Text("x".into())],
    ]);
    let e = sink
        .write_chunk(&target, &chunk(0), batches(vec![Ok(rows)]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Database, "{}", e.report());
    assert_eq!(query(&db, "SELECT count(*) FROM s.t"), "0");
    assert!(sink.done_chunks(&target).await.unwrap().is_empty());
}

#[test]
fn write_chunk_futures_are_send() {
    fn assert_send<T: Send>(_: T) {}
    #[allow(dead_code)]
    async fn check(sink: &mut PgChunkSink, t: &TargetTable, c: &Chunk) {
        assert_send(sink.write_chunk(t, c, batches(vec![])));
        assert_send(sink.done_chunks(t));
    }
}

/// Rows per second through the sink, 6 columns;
/// `cargo test --release -p dts-connectors --test pg_sink -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn sink_throughput() {
    let (db, mut sink) = setup(
        "pgsink_speed",
        "CREATE SCHEMA s; CREATE UNLOGGED TABLE s.t (id bigint, n integer, name varchar(64), \
         price numeric(12,2), at timestamp(6), x double precision);",
    )
    .await;
    let target = table("s", "t", &["id", "n", "name", "price", "at", "x"]);
    const ROWS: i64 = 1_000_000;
    const BATCH: i64 = 4096;
    let batches: Vec<RowBatch> = (0..ROWS)
        .step_by(usize::try_from(BATCH).unwrap())
        .map(|from| {
            batch(
                (from..(from + BATCH).min(ROWS))
                    .map(|i| {
                        vec![
                            Value::Int(i),
                            Value::Int(i % 1000),
                            Value::Text(format!("customer name {i}")),
                            dec(&format!("{}.{:02}", i % 100_000, i % 100)),
                            Value::DateTime(
                                DateTime::from_micros_since_unix_epoch(1_700_000_000_000_000 + i)
                                    .unwrap(),
                            ),
                            Value::Double(f64::from(u32::try_from(i).unwrap()) * 0.5),
                        ]
                    })
                    .collect(),
            )
        })
        .collect();
    let start = std::time::Instant::now();
    let stats = sink
        .write_chunk(
            &target,
            &chunk(0),
            stream::iter(batches.into_iter().map(Ok)).boxed(),
        )
        .await
        .unwrap();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "wrote {} rows ({} MB) in {secs:.3} s: {:.0} rows/s",
        stats.rows,
        stats.bytes >> 20,
        f64::from(u32::try_from(stats.rows).unwrap()) / secs
    );
    assert_eq!(query(&db, "SELECT count(*) FROM s.t"), ROWS.to_string());
}
