//! Unit tests of chunk statements, value decoding and parameters.

use super::decode::{decode, DecodeError};
use super::prober::{Cmp, KeyColumns};
use super::reader::ChunkRead;
use super::*;
use crate::mysql::types::ValueKind as Kind;
use dts_core::{
    BitString, Chunk, Column, Date, Duration, ErrorKind, Index, IndexColumn, IndexKind, Key, Table,
    TableName, Value,
};
use mysql_async::Value as M;

fn column(name: &str, ty: &str) -> Column {
    Column {
        name: name.into(),
        ordinal: 1,
        source_type: ty.into(),
        nullable: false,
        default: None,
        auto_increment: false,
        on_update_current_timestamp: false,
        generated: None,
        charset: None,
        collation: None,
        json_checked: false,
        comment: None,
    }
}

fn table() -> Table {
    let mut generated = column("g", "int(11)");
    generated.generated = Some(dts_core::Generated {
        expression: "a + 1".into(),
        stored: true,
    });
    Table {
        name: TableName::new("shop", "t"),
        columns: vec![
            column("a", "int(11)"),
            column("b", "varchar(10)"),
            generated,
            column("d", "decimal(65,30)"),
            column("e", "enum('x','y')"),
        ],
        primary_key: Some(Key {
            name: None,
            columns: vec!["a".into(), "b".into()],
        }),
        indexes: vec![Index {
            name: "u_d".into(),
            unique: true,
            kind: IndexKind::BTree,
            columns: vec![IndexColumn {
                name: "d".into(),
                prefix_length: None,
                descending: false,
            }],
        }],
        foreign_keys: vec![],
        comment: None,
        estimated_rows: 0,
        auto_increment: None,
    }
}

#[test]
fn chunk_sql_expands_row_comparisons_and_skips_generated_columns() {
    let t = table();
    let chunk = Chunk {
        index: 3,
        key: vec!["a".into(), "b".into()],
        lower: Some(vec![Value::Int(1), Value::Text("x".into())]),
        upper: Some(vec![Value::Int(5), Value::Text("y".into())]),
    };
    let plan = ChunkRead::plan(&t, &chunk).unwrap();
    assert_eq!(
        plan.sql,
        "SELECT `a`, `b`, `d`, `e` FROM `shop`.`t` FORCE INDEX (`PRIMARY`) WHERE \
         `a` >= ? AND ((`a` > ?) OR (`a` = ? AND `b` >= ?)) AND \
         `a` <= ? AND ((`a` < ?) OR (`a` = ? AND `b` < ?))"
    );
    assert_eq!(plan.params.len(), 8);
    assert_eq!(plan.params[3], M::Bytes(b"x".to_vec()));
    assert_eq!(plan.key_positions, vec![0, 1]);
    let whole = ChunkRead::plan(&t, &Chunk::whole_table()).unwrap();
    assert_eq!(whole.sql, "SELECT `a`, `b`, `d`, `e` FROM `shop`.`t`");
    assert!(whole.params.is_empty());
}

#[test]
fn decimal_keys_are_cast_and_unique_indexes_forced() {
    let t = table();
    let key = KeyColumns::new(&t, &["d".to_string()]).unwrap();
    assert_eq!(key.index.as_deref(), Some("u_d"));
    let mut params = Vec::new();
    let sql = key
        .compare(
            &[Value::Decimal("1.5".parse().unwrap())],
            Cmp::Gt,
            &mut params,
        )
        .unwrap();
    assert_eq!(sql, "`d` > CAST(? AS DECIMAL(65,30))");
    assert_eq!(params, vec![M::Bytes(b"1.5".to_vec())]);
    let e = KeyColumns::new(&t, &["e".to_string()]).unwrap();
    assert_eq!(e.columns[0].select_expr(), "(`e` + 0)");
    assert!(KeyColumns::new(&t, &["nope".to_string()]).is_err());
    assert_eq!(KeyColumns::new(&t, &["b".to_string()]).unwrap().index, None);
}

#[test]
fn binary_protocol_values_decode_losslessly() {
    assert_eq!(
        decode(Kind::UInt, M::UInt(u64::MAX)),
        Ok(Value::UInt(u64::MAX))
    );
    assert_eq!(decode(Kind::Int, M::Int(-1)), Ok(Value::Int(-1)));
    assert!(decode(Kind::UInt, M::Int(-1)).is_err());
    assert_eq!(
        decode(Kind::Bit(64), M::Bytes(vec![0xFF; 8])),
        Ok(Value::Bits(BitString::new(64, u64::MAX).unwrap()))
    );
    assert_eq!(
        decode(Kind::Bit(12), M::Bytes(vec![0x0A, 0xBC])),
        Ok(Value::Bits(BitString::new(12, 0xABC).unwrap()))
    );
    assert_eq!(
        decode(Kind::Time, M::Time(true, 34, 22, 59, 59, 0)),
        Ok(Value::Time(Duration::from_micros(
            -(838 * 3600 + 59 * 60 + 59) * 1_000_000
        )))
    );
    assert_eq!(
        decode(Kind::Date, M::Date(0, 0, 0, 0, 0, 0, 0)),
        Ok(Value::Date(Date::new(0, 0, 0)))
    );
    assert_eq!(
        decode(Kind::Text, M::Bytes(vec![0xFF])),
        Err(DecodeError::Utf8)
    );
    assert_eq!(
        decode(
            Kind::Decimal,
            M::Bytes(b"-0.000000000000000000000000000001".to_vec())
        ),
        Ok(Value::Decimal(
            "-0.000000000000000000000000000001".parse().unwrap()
        ))
    );
    assert_eq!(decode(Kind::Year, M::UInt(2155)), Ok(Value::Year(2155)));
    assert!(matches!(
        decode(Kind::Date, M::Int(1)),
        Err(DecodeError::Unexpected("integer"))
    ));
}

#[test]
fn params_round_trip_through_decode() {
    let values = [
        (Kind::Int, Value::Int(i64::MIN)),
        (Kind::UInt, Value::UInt(u64::MAX)),
        (Kind::Float, Value::Float(-3.5)),
        (Kind::Double, Value::Double(5e-324)),
        (Kind::Decimal, Value::Decimal("12.500".parse().unwrap())),
        (Kind::Text, Value::Text("Grüße 🎉".into())),
        (Kind::Bytes, Value::Bytes(vec![0, 0xFF])),
        (Kind::Date, Value::Date(Date::new(2024, 0, 0))),
        (
            Kind::DateTime,
            Value::DateTime("9999-12-31 23:59:59.999999".parse().unwrap()),
        ),
        (
            Kind::Timestamp,
            Value::Timestamp("2038-01-19 03:14:07.5".parse().unwrap()),
        ),
        (
            Kind::Time,
            Value::Time("-838:59:59.000001".parse().unwrap()),
        ),
        (Kind::Time, Value::Time("25:00:00".parse().unwrap())),
        (Kind::Year, Value::Year(1901)),
        (
            Kind::Bit(5),
            Value::Bits(BitString::new(5, 0b10101).unwrap()),
        ),
        (Kind::Json, Value::Json("{}".into())),
    ];
    for (kind, v) in values {
        assert_eq!(decode(kind, mysql_param(&v)), Ok(v.clone()), "{v:?}");
    }
}

#[test]
fn undecodable_values_name_table_column_chunk_and_key() {
    let t = table();
    let chunk = Chunk {
        index: 7,
        key: vec!["a".into(), "b".into()],
        lower: Some(vec![Value::Int(1), Value::Text("x".into())]),
        upper: None,
    };
    let plan = ChunkRead::plan(&t, &chunk).unwrap();
    let row = vec![
        Some(M::Int(42)),
        Some(M::Bytes(b"key".to_vec())),
        Some(M::Bytes(b"1.5".to_vec())),
        Some(M::Bytes(vec![b'x', 0xFF])),
    ];
    let err = plan.decode_row(row.clone()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Value);
    assert_eq!(
        err.message(),
        "reading chunk 7 of `shop.t`: invalid utf-8 in column `shop.t.e` at key (42, 'key')"
    );
    let mut good = row;
    good[3] = Some(M::Bytes(b"y".to_vec()));
    assert_eq!(
        plan.decode_row(good).unwrap(),
        vec![
            Value::Int(42),
            Value::Text("key".into()),
            Value::Decimal("1.5".parse().unwrap()),
            Value::Text("y".into())
        ]
    );
    assert_eq!(
        plan.decode_row(vec![None]).unwrap_err().kind(),
        ErrorKind::Internal
    );
}

#[test]
fn futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let t = table();
    let key = vec!["a".to_string(), "b".to_string()];
    let open = MySqlSnapshot::open("mysql://root@127.0.0.1:1", 2);
    assert_send(&open);
    let connect = MySqlKeyProber::connect("mysql://root@127.0.0.1:1", &t, &key);
    assert_send(&connect);
}
