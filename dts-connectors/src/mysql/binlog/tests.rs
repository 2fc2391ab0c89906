//! Decoder tests on captured MariaDB events (`tests/fixtures/binlog/mariadb/`, regenerated
//! by the ignored `capture_mariadb_fixtures` test) and on MySQL 8 events built by hand from
//! the documented formats, as no MySQL 8 server is available here.

use std::sync::Arc;

use dts_core::{
    BitString, Change, ChangeEvent, Date, DateTime, Duration, ErrorKind, Position, SqlMode,
    TableName, Value,
};

use super::charset::CharsetMap;
use mysql_async::binlog::events::{
    Event, EventData, FormatDescriptionEvent, QueryEvent, RotateEvent, TableMapEvent,
};
use mysql_async::binlog::BinlogVersion;

use super::event::{
    client_charset, kind, parse_gtid_list, rotate_target, rows_kind, MariaGtid, RowsKind,
    FLAG_ARTIFICIAL,
};
use super::gtid::GtidState;
use super::reader::{EventReader, Flavor};
use super::row::{decode_all, TableDecoder};
use super::BinlogFilter;

const FIXTURES: &str = "tests/fixtures/binlog/mariadb";
const STREAM: &[u8] = include_bytes!("../../../tests/fixtures/binlog/mariadb/stream.bin");
const STREAM_FILE: &str = include_str!("../../../tests/fixtures/binlog/mariadb/stream.file");
const GTID_DDL: &[u8] = include_bytes!("../../../tests/fixtures/binlog/mariadb/gtid_ddl.bin");
const GTID_TRX: &[u8] =
    include_bytes!("../../../tests/fixtures/binlog/mariadb/gtid_transaction.bin");
const GTID_LIST: &[u8] = include_bytes!("../../../tests/fixtures/binlog/mariadb/gtid_list.bin");
const TABLE_MAP: &[u8] = include_bytes!("../../../tests/fixtures/binlog/mariadb/table_map.bin");
const WRITE_ROWS: &[u8] = include_bytes!("../../../tests/fixtures/binlog/mariadb/write_rows.bin");
const UPDATE_ROWS: &[u8] = include_bytes!("../../../tests/fixtures/binlog/mariadb/update_rows.bin");

/// The format description of the captured stream (CRC32 checksums), as mysql_common
/// keeps it after reading the stream's first event.
fn fixture_fde() -> FormatDescriptionEvent<'static> {
    let plain = FormatDescriptionEvent::new(BinlogVersion::Version4);
    let ev = Event::read(&plain, split(STREAM)[0]).unwrap_or_else(|e| panic!("{e} in {FIXTURES}"));
    ev.read_event::<FormatDescriptionEvent<'_>>()
        .unwrap_or_else(|e| panic!("{e} in {FIXTURES}"))
        .into_owned()
        .with_footer(ev.footer())
}

/// One captured event, read by mysql_common as the live stream reads it.
fn raw(bytes: &[u8]) -> Event {
    Event::read(&fixture_fde(), bytes).unwrap_or_else(|e| panic!("{e} in {FIXTURES}"))
}

/// An event built from its header fields and body, without a checksum (the stream's format
/// description not seen yet, or one without checksums).
fn built(kind: u8, timestamp: u32, log_pos: u64, flags: u16, body: &[u8]) -> Event {
    let mut b = Vec::new();
    b.extend(timestamp.to_le_bytes());
    b.push(kind);
    b.extend(1u32.to_le_bytes()); // server id
    b.extend(u32::try_from(19 + body.len()).unwrap().to_le_bytes());
    b.extend(u32::try_from(log_pos).unwrap().to_le_bytes());
    b.extend(flags.to_le_bytes());
    b.extend(body);
    Event::read(
        &FormatDescriptionEvent::new(BinlogVersion::Version4),
        &b[..],
    )
    .unwrap()
}

fn log_pos(ev: &Event) -> u64 {
    u64::from(ev.header().log_pos())
}

/// The events of a captured stream, split by the size in each header.
fn split(mut bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let size = u32::from_le_bytes(bytes[9..13].try_into().unwrap());
        let (event, rest) = bytes.split_at(usize::try_from(size).unwrap());
        out.push(event);
        bytes = rest;
    }
    out
}

/// The end of the last captured event in its binlog file.
fn stream_end() -> u64 {
    log_pos(&raw(split(STREAM).last().unwrap()))
}

/// CRC32 (IEEE), as the binlog checksums events.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                crc >> 1 ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn charsets() -> CharsetMap {
    CharsetMap::from_pairs([
        (8, "latin1".into()),
        (45, "utf8mb4".into()),
        (63, "binary".into()),
    ])
}

fn dt(s: &str) -> DateTime {
    s.parse().unwrap()
}

#[test]
fn captured_events_are_whole_with_valid_checksums() {
    let events = split(STREAM);
    assert_eq!(events.len(), 20);
    for event in events {
        let (data, sum) = event.split_at(event.len() - 4);
        let mut data = data.to_vec();
        if data[4] == kind::FORMAT_DESCRIPTION {
            data[17] &= !1; // the "binlog in use" flag is not part of the checksum
        }
        assert_eq!(crc32(&data), u32::from_le_bytes(sum.try_into().unwrap()));
    }
}

#[test]
fn mariadb_gtid_and_gtid_list_events() {
    let ddl = raw(GTID_DDL);
    assert_eq!(ddl.header().event_type_raw(), kind::MARIADB_GTID);
    let g = MariaGtid::parse(ddl.data()).unwrap();
    assert_eq!((g.domain, ddl.header().server_id(), g.seq), (0, 1, 1));
    assert!(g.standalone(), "a DDL group has no COMMIT");
    let trx = MariaGtid::parse(raw(GTID_TRX).data()).unwrap();
    assert_eq!(trx.seq, 3);
    assert!(!trx.standalone());

    let list = raw(GTID_LIST);
    assert_eq!(list.header().event_type_raw(), kind::MARIADB_GTID_LIST);
    assert_eq!(parse_gtid_list(list.data()).unwrap(), vec![]);
    // A list as a server with history writes it: count, then (domain, server, seq).
    let mut body = 2u32.to_le_bytes().to_vec();
    for (d, s, q) in [(0u32, 1u32, 41u64), (1, 2, 7)] {
        body.extend(d.to_le_bytes());
        body.extend(s.to_le_bytes());
        body.extend(q.to_le_bytes());
    }
    assert_eq!(parse_gtid_list(&body).unwrap(), vec![(0, 1, 41), (1, 2, 7)]);
}

#[test]
fn table_map_with_full_metadata_names_every_column() {
    let ev = raw(TABLE_MAP);
    let map = ev.read_event::<TableMapEvent<'_>>().unwrap();
    assert_eq!(
        (map.database_name_raw(), map.table_name_raw()),
        (&b"fx"[..], &b"t"[..])
    );
    let table = TableDecoder::new(&map, ev.data(), Flavor::MariaDb, &charsets()).unwrap();
    assert_eq!(table.name, TableName::new("fx", "t"));
    assert_eq!(
        table.columns.join(","),
        "id,tiny,med,big_u,dec65,f,d,b,c,vc,bin,bl,txt,dt,dtm,ts,tm,yr,e,s,j"
    );
    // Without the optional metadata (binlog_row_metadata=NO_LOG) nothing can be decoded.
    let mut bytes = TABLE_MAP.to_vec();
    let optional = map.iter_optional_meta().count();
    assert!(optional > 0);
    // Cut the optional metadata off (keeping the checksum's 4 bytes, which mysql_common
    // removes) and fix the event size.
    let body_end = bytes.len() - 4;
    let cut = optional_metadata_len(TABLE_MAP);
    bytes.drain(body_end - cut..body_end);
    let size = u32::try_from(bytes.len()).unwrap();
    bytes[9..13].copy_from_slice(&size.to_le_bytes());
    let bare_ev = raw(&bytes);
    let bare = bare_ev.read_event::<TableMapEvent<'_>>().unwrap();
    assert_eq!(bare.iter_optional_meta().count(), 0);
    assert!(TableDecoder::new(&bare, bare_ev.data(), Flavor::MariaDb, &charsets()).is_err());
}

/// The length of a captured table map's optional metadata: what follows its null bitmap
/// (walked by hand over the documented layout, lengths below 251).
fn optional_metadata_len(event: &[u8]) -> usize {
    let body = &event[19..event.len() - 4];
    let mut at = 6 + 2; // table id, flags
    at += 1 + usize::from(body[at]) + 1; // schema
    at += 1 + usize::from(body[at]) + 1; // table
    let columns = usize::from(body[at]);
    at += 1 + columns; // column count, types
    at += 1 + usize::from(body[at]); // metadata
    at += columns.div_ceil(8); // null bitmap
    body.len() - at
}

fn fixture_table() -> TableDecoder {
    let ev = raw(TABLE_MAP);
    let map = ev.read_event::<TableMapEvent<'_>>().unwrap();
    TableDecoder::new(&map, ev.data(), Flavor::MariaDb, &charsets()).unwrap()
}

#[test]
fn write_rows_decode_into_snapshot_shapes() {
    let table = fixture_table();
    let ev = raw(WRITE_ROWS);
    let Some(EventData::RowsEvent(rows)) = ev.read_data().unwrap() else {
        panic!("not a rows event")
    };
    assert_eq!(rows_kind(&rows), (RowsKind::Write, false));
    let full = rows.columns_after_image().unwrap().all();
    let decoded = decode_all(&table, rows.rows_data(), full).unwrap();
    assert_eq!(decoded.len(), 2);
    let expected_first = vec![
        Value::UInt(1),
        Value::Int(-128),
        Value::Int(-1), // signed MEDIUMINT, sign-extended
        Value::UInt(u64::MAX),
        Value::Decimal("-123.450000000000000000000000000000".parse().unwrap()),
        Value::Float(1.5),
        Value::Double(-2.25),
        Value::Bits(BitString::new(64, u64::MAX).unwrap()),
        Value::Text("Ærø".into()), // latin1
        Value::Text("Grüße 🎉".into()),
        Value::Bytes(vec![0x61]), // BINARY(4) without its trailing zeros
        Value::Bytes(vec![0, 0xFF]),
        Value::Text("text".into()),
        Value::Date(Date::new(2024, 2, 29)),
        Value::DateTime(dt("2024-02-29 23:59:59.999999")),
        Value::Timestamp(dt("2038-01-19 03:14:07.123")),
        Value::Time(Duration::from_micros(
            -((838 * 3600 + 59 * 60 + 58) * 1_000_000 + 999_999),
        )),
        Value::Year(2155),
        Value::Text("b".into()),
        Value::Text("x,z".into()),
        Value::Text("{\"a\": [1, 2.5]}".into()), // MariaDB JSON is LONGTEXT
    ];
    assert_eq!(decoded[0], expected_first);
    let second = &decoded[1];
    assert_eq!(second[2], Value::Int(8_388_607));
    assert_eq!(second[13], Value::Date(Date::new(0, 0, 0)));
    assert_eq!(second[14], Value::DateTime(zero_datetime()));
    assert_eq!(second[16], Value::Time(Duration::from_micros(1)));
    assert_eq!(second[17], Value::Year(0));
    assert_eq!(second[19], Value::Text(String::new()));
    assert_eq!(second[1], Value::Null);
}

fn zero_datetime() -> DateTime {
    DateTime {
        date: Date::new(0, 0, 0),
        hour: 0,
        minute: 0,
        second: 0,
        micro: 0,
    }
}

#[test]
fn update_rows_carry_both_images() {
    let table = fixture_table();
    let ev = raw(UPDATE_ROWS);
    let Some(EventData::RowsEvent(rows)) = ev.read_data().unwrap() else {
        panic!("not a rows event")
    };
    assert_eq!(rows_kind(&rows), (RowsKind::Update, false));
    let mut r = super::event::Reader::new(rows.rows_data());
    let present = rows.columns_before_image().unwrap().all();
    let present_after = rows.columns_after_image().unwrap().all();
    let before = table.decode_row(&mut r, present, false).unwrap();
    let after = table.decode_row(&mut r, present_after, false).unwrap();
    assert!(r.is_empty());
    assert_eq!((&before[0], &after[0]), (&Value::UInt(2), &Value::UInt(3)));
    assert_eq!(
        (&before[9], &after[9]),
        (&Value::Null, &Value::Text("changed".into()))
    );
}

fn reader(filter: BinlogFilter, file: &str, offset: u64, gtid: GtidState) -> EventReader {
    EventReader::new(
        Flavor::MariaDb,
        filter,
        charsets(),
        true,
        file.into(),
        offset,
        gtid,
    )
}

fn feed(reader: &mut EventReader, bytes: &[u8]) -> Vec<ChangeEvent> {
    for event in split(bytes) {
        reader.handle(&raw(event)).unwrap();
    }
    reader.out.drain(..).collect()
}

#[test]
fn the_captured_stream_becomes_transactions_and_ddl() {
    let mut r = reader(
        BinlogFilter::databases(["fx"]),
        STREAM_FILE,
        4,
        GtidState::Unknown,
    );
    let events = feed(&mut r, STREAM);
    let shape: Vec<&str> = events
        .iter()
        .map(|e| match &e.change {
            Change::Begin => "begin",
            Change::Commit => "commit",
            Change::Insert { .. } => "insert",
            Change::Update { .. } => "update",
            Change::Delete { .. } => "delete",
            Change::Ddl { .. } => "ddl",
            _ => "other",
        })
        .collect();
    assert_eq!(
        shape,
        [
            "ddl", "ddl", "begin", "insert", "insert", "commit", "begin", "update", "commit",
            "begin", "delete", "commit"
        ]
    );
    match &events[0].change {
        Change::Ddl { schema, sql, .. } => {
            assert_eq!(schema.as_deref(), Some("fx"));
            assert_eq!(sql, "CREATE DATABASE fx");
        }
        other => panic!("{other:?}"),
    }
    // The GTID list at the start of the file made the GTID position known. (The stream
    // skips MariaDB's annotate events, so the end is not 4 + the stream's length.)
    let end = stream_end();
    assert_eq!(
        events.last().unwrap().position,
        Position::Binlog {
            file: STREAM_FILE.into(),
            offset: end,
            gtid: Some("0-1-5".into()),
        }
    );
    assert_eq!(r.position(), events.last().unwrap().position);
    // Begin sits after the group's GTID event; rows after their rows event.
    let begin = &events[2].position;
    let insert = &events[3].position;
    assert_eq!(begin.log_cmp(insert), Some(std::cmp::Ordering::Less));
    assert!(
        r.progress_commit().is_none(),
        "everything acknowledged already"
    );
}

#[test]
fn unselected_tables_are_skipped_and_progress_is_acknowledged_once() {
    let mut r = reader(
        BinlogFilter::databases(["other"]),
        STREAM_FILE,
        4,
        GtidState::Unknown,
    );
    let events = feed(&mut r, STREAM);
    assert!(events.is_empty(), "{events:?}");
    assert!(r.has_progress());
    let commit = r.progress_commit().unwrap();
    assert_eq!(commit.change, Change::Commit);
    assert_eq!(commit.position, r.position());
    assert!(r.progress_commit().is_none());

    // Tables filtered out one by one: rows skipped, DDL of the database kept.
    let filter = BinlogFilter {
        tables: Arc::new(|_| false),
        databases: Arc::new(|d| d == "fx"),
    };
    let mut r = reader(filter, STREAM_FILE, 4, GtidState::Unknown);
    let events = feed(&mut r, STREAM);
    assert_eq!(events.len(), 2);
    assert!(events
        .iter()
        .all(|e| matches!(e.change, Change::Ddl { .. })));
}

#[test]
fn a_resumed_reader_ignores_the_re_sent_format_event_position() {
    // Resuming mid-file: the server sends a fake rotate (still carrying its checksum,
    // as no format event has been seen yet) and the format event with position 0.
    let events = split(STREAM);
    let start = log_pos(&raw(events[3]));
    let mut r = reader(
        BinlogFilter::all(),
        STREAM_FILE,
        start,
        GtidState::parse_mariadb("0-1-0").unwrap(),
    );
    let mut rotate_body = start.to_le_bytes().to_vec();
    rotate_body.extend(STREAM_FILE.as_bytes());
    rotate_body.extend([0xde, 0xad, 0xbe, 0xef]);
    let fake = built(kind::ROTATE, 0, 0, FLAG_ARTIFICIAL, &rotate_body);
    r.handle(&fake).unwrap();
    assert_eq!(
        r.position().to_string(),
        format!("{STREAM_FILE}:{start} (gtid 0-1-0)")
    );
    let mut fde = events[0].to_vec();
    fde[13..17].fill(0); // log_pos 0, as the server re-sends it
    r.handle(&raw(&fde)).unwrap();
    for event in &events[4..] {
        r.handle(&raw(event)).unwrap();
    }
    let out: Vec<ChangeEvent> = r.out.drain(..).collect();
    assert!(matches!(&out[0].change, Change::Ddl { .. }));
    assert_eq!(
        out.last().unwrap().position.to_string(),
        format!("{STREAM_FILE}:{} (gtid 0-1-5)", stream_end())
    );
}

#[test]
fn a_real_rotate_moves_to_the_new_file_at_its_position() {
    let mut r = reader(
        BinlogFilter::all(),
        "binlog.000007",
        900,
        GtidState::Unknown,
    );
    let mut body = 4u64.to_le_bytes().to_vec();
    body.extend(b"binlog.000008");
    let rotate = built(kind::ROTATE, 1, 944, 0, &body);
    // A format event was seen: the body has no checksum left.
    let fde = raw(split(STREAM)[0]);
    r.handle(&fde).unwrap();
    r.handle(&rotate).unwrap();
    assert_eq!(r.position().to_string(), "binlog.000008:4");
    assert_eq!(
        rotate_target(&rotate.read_event::<RotateEvent<'_>>().unwrap(), false).unwrap(),
        (4, "binlog.000008".to_string())
    );
    let progress = r.progress_commit().unwrap();
    assert_eq!(progress.position.to_string(), "binlog.000008:4");
}

// ---------------------------------------------------------------------------------------
// MySQL 8 events, built by hand following the replication protocol documentation
// (`libbinlogevents`): rows events v2, DEFAULT_CHARSET metadata, binary JSON, GTID events.

fn lenenc(n: usize) -> Vec<u8> {
    assert!(n < 251);
    vec![u8::try_from(n).unwrap()]
}

/// A MySQL 8 table map of `shop.doc (id BIGINT UNSIGNED, doc JSON, name VARCHAR(20),
/// t TIME(2), w DATETIME(4))` with utf8mb4 as the default charset.
fn mysql_table_map() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(&42u64.to_le_bytes()[..6]); // table id
    b.extend([1, 0]); // flags
    b.extend([4]);
    b.extend(b"shop\0");
    b.extend([3]);
    b.extend(b"doc\0");
    b.extend(lenenc(5));
    b.extend([8, 245, 15, 19, 18]); // LONGLONG, JSON, VARCHAR, TIME2, DATETIME2
    let meta = [4u8, 80, 0, 2, 4]; // JSON: 4-byte length; VARCHAR: 80 bytes; fsp 2; fsp 4
    b.extend(lenenc(meta.len()));
    b.extend(meta);
    b.push(0b11110); // nullability
                     // SIGNEDNESS: one numeric column, unsigned.
    b.extend([1, 1, 0b1000_0000]);
    // DEFAULT_CHARSET: utf8mb4_0900_ai_ci (255, length-encoded), no exceptions.
    b.extend([2, 3, 0xfc, 0xff, 0x00]);
    // COLUMN_NAME
    let names: Vec<u8> = ["id", "doc", "name", "t", "w"]
        .iter()
        .flat_map(|n| {
            let mut v = lenenc(n.len());
            v.extend(n.as_bytes());
            v
        })
        .collect();
    b.push(4);
    b.extend(lenenc(names.len()));
    b.extend(names);
    b
}

/// A v2 write rows event for the table above with one row.
fn mysql_write_rows(row: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(&42u64.to_le_bytes()[..6]);
    b.extend([1, 0]); // flags: end of statement
    b.extend([2, 0]); // extra data length (just itself)
    b.extend(lenenc(5));
    b.push(0b11111); // all columns present
    b.extend(row);
    b
}

fn mysql_row() -> Vec<u8> {
    let mut row = vec![0b00000]; // no NULLs
    row.extend(u64::MAX.to_le_bytes());
    // JSON {"k": 12.5} as a small object with a double value.
    let mut obj = Vec::new();
    obj.extend(1u16.to_le_bytes()); // count
    obj.extend(20u16.to_le_bytes()); // size: 4 + 4 (key entry) + 3 (value entry) + 1 + 8
    obj.extend(11u16.to_le_bytes()); // key offset
    obj.extend(1u16.to_le_bytes()); // key length
    obj.push(0x0b); // double
    obj.extend(12u16.to_le_bytes()); // value offset
    obj.push(b'k');
    obj.extend(12.5f64.to_le_bytes());
    let mut doc = vec![0x00];
    doc.extend(obj);
    row.extend(u32::try_from(doc.len()).unwrap().to_le_bytes());
    row.extend(doc);
    row.push(6); // VARCHAR(20) utf8mb4: one length byte
    row.extend("héllo".as_bytes());
    // TIME(2) -00:00:00.01: integer part -1 (0x7FFFFF), fraction byte 0xFF.
    row.extend([0x7f, 0xff, 0xff, 0xff]);
    // DATETIME(4) 2020-01-02 03:04:05.1234.
    let ym = 2020u64 * 13 + 1;
    let packed = (((ym << 5) | 2) << 17) | (3 << 12) | (4 << 6) | 5;
    let int = packed + 0x80_0000_0000;
    row.extend(&int.to_be_bytes()[3..]);
    row.extend(1234u16.to_be_bytes());
    row
}

fn mysql_reader(filter: BinlogFilter) -> EventReader {
    EventReader::new(
        Flavor::MySql,
        filter,
        CharsetMap::default(),
        true,
        "binlog.000001".into(),
        4,
        GtidState::parse_mysql("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-10").unwrap(),
    )
}

fn event(kind: u8, log_pos: u64, body: &[u8]) -> Event {
    built(kind, 1_700_000_000, log_pos, 0, body)
}

fn mysql_gtid(gno: u64) -> Vec<u8> {
    let mut b = vec![1u8];
    b.extend([
        0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42, 0x95,
        0x62,
    ]);
    b.extend(gno.to_le_bytes());
    b.extend([0x02; 17]); // logical clock and commit timestamps, unused here
    b
}

fn query(schema: &str, sql: &str) -> Vec<u8> {
    query_in_mode(schema, sql, None)
}

/// A query event body; with `sql_mode`, its status variables carry the mode (Q_SQL_MODE).
fn query_in_mode(schema: &str, sql: &str, sql_mode: Option<u64>) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(7u32.to_le_bytes());
    b.extend(0u32.to_le_bytes());
    b.push(u8::try_from(schema.len()).unwrap());
    b.extend(0u16.to_le_bytes());
    let mut status = vec![4u8, 45, 0, 45, 0, 255, 0];
    if let Some(mode) = sql_mode {
        status.push(1);
        status.extend(mode.to_le_bytes());
    }
    b.extend(u16::try_from(status.len()).unwrap().to_le_bytes());
    b.extend(status);
    b.extend(schema.as_bytes());
    b.push(0);
    b.extend(sql.as_bytes());
    b
}

#[test]
fn mysql_transactions_with_json_and_v2_rows_events() {
    let mut r = mysql_reader(BinlogFilter::databases(["shop"]));
    let map = mysql_table_map();
    let rows = mysql_write_rows(&mysql_row());
    let gtid = mysql_gtid(11);
    let begin = query("shop", "BEGIN");
    let xid = 99u64.to_le_bytes();
    for e in [
        event(kind::GTID, 100, &gtid),
        event(kind::QUERY, 200, &begin),
        event(kind::TABLE_MAP, 300, &map),
        event(kind::WRITE_ROWS, 400, &rows),
        event(kind::XID, 431, &xid),
    ] {
        r.handle(&e).unwrap();
    }
    let out: Vec<ChangeEvent> = r.out.drain(..).collect();
    assert_eq!(out.len(), 3);
    assert_eq!(out[0].change, Change::Begin);
    assert_eq!(
        out[0].position.to_string(),
        "binlog.000001:200 (gtid 3e11fa47-71ca-11e1-9e33-c80aa9429562:1-10)"
    );
    match &out[1].change {
        Change::Insert { table, row } => {
            assert_eq!(*table, TableName::new("shop", "doc"));
            assert_eq!(*row.columns, vec!["id", "doc", "name", "t", "w"]);
            assert_eq!(
                row.values,
                vec![
                    Value::UInt(u64::MAX),
                    Value::Json("{\"k\": 12.5}".into()),
                    Value::Text("héllo".into()),
                    Value::Time(Duration::from_micros(-10_000)),
                    Value::DateTime(dt("2020-01-02 03:04:05.1234")),
                ]
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        out[2].position.to_string(),
        "binlog.000001:431 (gtid 3e11fa47-71ca-11e1-9e33-c80aa9429562:1-11)"
    );

    // DDL: GTID then the statement, without BEGIN; it ends the group.
    let gtid = mysql_gtid(12);
    let ddl = query("shop", "ALTER TABLE doc ADD COLUMN x INT");
    r.handle(&event(kind::GTID, 500, &gtid)).unwrap();
    r.handle(&event(kind::QUERY, 600, &ddl)).unwrap();
    let out: Vec<ChangeEvent> = r.out.drain(..).collect();
    assert_eq!(
        out[0].change,
        Change::Ddl {
            schema: Some("shop".into()),
            sql: "ALTER TABLE doc ADD COLUMN x INT".into(),
            sql_mode: SqlMode::default(),
        }
    );
    assert_eq!(
        out[0].position.to_string(),
        "binlog.000001:600 (gtid 3e11fa47-71ca-11e1-9e33-c80aa9429562:1-12)"
    );
    assert!(r.progress_commit().is_none());
}

#[test]
fn mysql_partial_json_updates_and_statement_dml_are_refused() {
    let mut r = mysql_reader(BinlogFilter::all());
    let map = mysql_table_map();
    r.handle(&event(kind::TABLE_MAP, 300, &map)).unwrap();
    // A partial update: before image, then value options with PARTIAL_JSON and the JSON
    // column marked partial.
    let mut body = Vec::new();
    body.extend(&42u64.to_le_bytes()[..6]);
    body.extend([1, 0, 2, 0]);
    body.extend(lenenc(5));
    body.push(0b11111);
    body.push(0b11111);
    body.extend(mysql_row());
    body.extend([1, 0b1]);
    body.extend(mysql_row());
    let err = r
        .handle(&event(kind::PARTIAL_UPDATE_ROWS, 400, &body))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(
        err.message().contains("`shop.doc.doc`"),
        "{}",
        err.message()
    );
    assert!(err.message().contains("binlog_row_value_options"));

    let mut r = mysql_reader(BinlogFilter::all());
    let insert = query("shop", "INSERT INTO doc VALUES (1)");
    let err = r.handle(&event(kind::QUERY, 100, &insert)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.message().contains("binlog_format=ROW"));
    // Statement-logged changes to unselected tables (MariaDB empties MEMORY tables so after a
    // restart) are skipped.
    let mut r = mysql_reader(BinlogFilter::databases(["other"]));
    r.handle(&event(kind::QUERY, 100, &insert)).unwrap();
    let memory = query("", "DELETE FROM `shop`.`mem`");
    r.handle(&event(kind::QUERY, 200, &memory)).unwrap();
    assert!(r.out.is_empty());
    let ev = event(kind::QUERY, 100, &insert);
    let q = ev.read_event::<QueryEvent<'_>>().unwrap();
    assert_eq!(
        (q.schema_raw(), client_charset(&q)),
        (&b"shop"[..], Some(45))
    );
}

#[test]
fn mysql_rows_without_full_image_or_with_geometry_are_refused() {
    let mut r = mysql_reader(BinlogFilter::all());
    let map = mysql_table_map();
    r.handle(&event(kind::TABLE_MAP, 300, &map)).unwrap();
    let mut minimal = mysql_write_rows(&mysql_row());
    minimal[11] = 0b00001; // only the id column
    let err = r
        .handle(&event(kind::WRITE_ROWS, 400, &minimal))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.message().contains("binlog_row_image=FULL"));

    let mut geo = mysql_table_map();
    // Turn the VARCHAR into a GEOMETRY column (1 metadata byte instead of 2).
    let types_at = 6 + 2 + 6 + 5 + 1;
    geo[types_at + 2] = 255;
    let meta_at = types_at + 5;
    geo.remove(meta_at + 2);
    geo[meta_at] = 4;
    let mut r = mysql_reader(BinlogFilter::all());
    let err = r.handle(&event(kind::TABLE_MAP, 300, &geo)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert_eq!(
        err.message().split(": ").last().unwrap(),
        "unsupported type `geometry` for column `shop.doc.name`"
    );
}

#[test]
fn a_group_ended_by_rollback_is_delivered_as_rolled_back() {
    // How the server logs a transaction that also changed a non-transactional table and
    // was rolled back: its rows, then `ROLLBACK` instead of a commit.
    let mut r = mysql_reader(BinlogFilter::databases(["shop"]));
    let map = mysql_table_map();
    let rows = mysql_write_rows(&mysql_row());
    for e in [
        event(kind::GTID, 100, &mysql_gtid(11)),
        event(kind::QUERY, 200, &query("shop", "BEGIN")),
        event(kind::TABLE_MAP, 300, &map),
        event(kind::WRITE_ROWS, 400, &rows),
        event(kind::QUERY, 500, &query("shop", "ROLLBACK")),
    ] {
        r.handle(&e).unwrap();
    }
    let out: Vec<ChangeEvent> = r.out.drain(..).collect();
    let kinds: Vec<&Change> = out.iter().map(|e| &e.change).collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    assert_eq!(*kinds[0], Change::Begin);
    assert!(matches!(kinds[1], Change::Insert { .. }));
    assert_eq!(*kinds[2], Change::Rollback, "not a commit");
    assert!(kinds[2].ends_transaction());
}

/// A table map of `shop.y` with the given column types (no metadata bytes needed for
/// them), a signedness bitmap and column names, as a server of either family writes it.
fn numeric_table_map(types: &[u8], signedness: &[u8], names: &[&str]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(&7u64.to_le_bytes()[..6]); // table id
    b.extend([1, 0]); // flags
    b.extend([4]);
    b.extend(b"shop\0");
    b.extend([1]);
    b.extend(b"y\0");
    b.extend(lenenc(types.len()));
    b.extend(types);
    let meta: Vec<u8> = types
        .iter()
        .flat_map(|&t| match t {
            4 => vec![4u8], // FLOAT: pack length
            5 => vec![8u8], // DOUBLE
            _ => vec![],
        })
        .collect();
    b.extend(lenenc(meta.len()));
    b.extend(meta);
    b.extend(vec![0u8; types.len().div_ceil(8)]); // not nullable
    b.push(1); // SIGNEDNESS
    b.extend(lenenc(signedness.len()));
    b.extend(signedness);
    let names: Vec<u8> = names
        .iter()
        .flat_map(|n| {
            let mut v = lenenc(n.len());
            v.extend(n.as_bytes());
            v
        })
        .collect();
    b.push(4); // COLUMN_NAME
    b.extend(lenenc(names.len()));
    b.extend(names);
    b
}

fn numeric_decoder(flavor: Flavor, map: &[u8]) -> TableDecoder {
    let ev = event(kind::TABLE_MAP, 100, map);
    let map = ev.read_event::<TableMapEvent<'_>>().unwrap();
    TableDecoder::new(&map, ev.data(), flavor, &charsets()).unwrap()
}

const YEAR: u8 = 13;
const LONG: u8 = 3;

/// `(yr YEAR, a INT, u INT UNSIGNED)` holding `(2024, -1, 4294967295)`.
fn year_int_row() -> Vec<u8> {
    let mut row = vec![0u8]; // no NULLs
    row.push(124); // 2024
    row.extend((-1i32).to_le_bytes());
    row.extend(u32::MAX.to_le_bytes());
    row
}

#[test]
fn mysql_signedness_skips_year_columns() {
    // MySQL's signedness bitmap has no bit for YEAR: `a` is the first numeric column
    // (signed), `u` the second (unsigned).
    let map = numeric_table_map(&[YEAR, LONG, LONG], &[0b0100_0000], &["yr", "a", "u"]);
    let table = numeric_decoder(Flavor::MySql, &map);
    let rows = decode_all(&table, &year_int_row(), true).unwrap();
    assert_eq!(
        rows,
        vec![vec![
            Value::Year(2024),
            Value::Int(-1),
            Value::UInt(u64::from(u32::MAX))
        ]]
    );
}

#[test]
fn mariadb_signedness_counts_year_columns() {
    // MariaDB gives YEAR a bit of its own: `u` is the third.
    let map = numeric_table_map(&[YEAR, LONG, LONG], &[0b0010_0000], &["yr", "a", "u"]);
    let table = numeric_decoder(Flavor::MariaDb, &map);
    let rows = decode_all(&table, &year_int_row(), true).unwrap();
    assert_eq!(
        rows,
        vec![vec![
            Value::Year(2024),
            Value::Int(-1),
            Value::UInt(u64::from(u32::MAX))
        ]]
    );
}

#[test]
fn mysql_signedness_of_eight_numeric_columns_after_a_year_fits_one_byte() {
    // Eight numeric columns after a YEAR: MySQL writes one byte of flags (the last column
    // unsigned), where counting YEAR would ask for two.
    let types = [YEAR, 1, 2, 9, 3, 8, 4, 5, LONG];
    let names = ["yr", "a", "b", "c", "d", "e", "f", "g", "u"];
    let table = numeric_decoder(
        Flavor::MySql,
        &numeric_table_map(&types, &[0b0000_0001], &names),
    );
    let mut row = vec![0u8, 0u8]; // no NULLs (9 columns: two bytes)
    row.push(0); // YEAR 0000
    row.push(0xff); // TINYINT -1
    row.extend((-2i16).to_le_bytes());
    row.extend([0xfd, 0xff, 0xff]); // MEDIUMINT -3
    row.extend((-4i32).to_le_bytes());
    row.extend((-5i64).to_le_bytes());
    row.extend(1.5f32.to_le_bytes());
    row.extend((-2.5f64).to_le_bytes());
    row.extend(u32::MAX.to_le_bytes());
    let rows = decode_all(&table, &row, true).unwrap();
    assert_eq!(
        rows,
        vec![vec![
            Value::Year(0),
            Value::Int(-1),
            Value::Int(-2),
            Value::Int(-3),
            Value::Int(-4),
            Value::Int(-5),
            Value::Float(1.5),
            Value::Double(-2.5),
            Value::UInt(u64::from(u32::MAX)),
        ]]
    );
}

#[test]
fn ddl_carries_its_session_sql_mode_and_is_classified_in_it() {
    let mut r = mysql_reader(BinlogFilter::databases(["shop"]));
    let ansi = SqlMode::ANSI_QUOTES | SqlMode::NO_BACKSLASH_ESCAPES;
    // Under ANSI_QUOTES `"other"."t"` names a table of an unselected database: skipped.
    r.handle(&event(kind::GTID, 100, &mysql_gtid(11))).unwrap();
    let drop = query_in_mode("shop", r#"DROP TABLE "other"."t""#, Some(ansi.bits()));
    r.handle(&event(kind::QUERY, 200, &drop)).unwrap();
    assert!(
        r.out
            .iter()
            .all(|e| !matches!(e.change, Change::Ddl { .. })),
        "{:?}",
        r.out
    );
    r.out.clear();
    // A selected statement is delivered with the mode it ran in.
    let sql = r#"ALTER TABLE "doc" ADD COLUMN "p" TEXT COMMENT 'C:\'"#;
    r.handle(&event(kind::GTID, 300, &mysql_gtid(12))).unwrap();
    r.handle(&event(
        kind::QUERY,
        400,
        &query_in_mode("shop", sql, Some(ansi.bits())),
    ))
    .unwrap();
    let out: Vec<ChangeEvent> = r.out.drain(..).collect();
    assert_eq!(
        out[0].change,
        Change::Ddl {
            schema: Some("shop".into()),
            sql: sql.into(),
            sql_mode: ansi,
        }
    );
    // A statement without the status variable ran in the empty mode.
    r.handle(&event(kind::GTID, 500, &mysql_gtid(13))).unwrap();
    r.handle(&event(kind::QUERY, 600, &query("shop", "DROP TABLE doc")))
        .unwrap();
    let out: Vec<ChangeEvent> = r.out.drain(..).collect();
    assert!(matches!(
        &out[0].change,
        Change::Ddl { sql_mode, .. } if *sql_mode == SqlMode::default()
    ));
}
