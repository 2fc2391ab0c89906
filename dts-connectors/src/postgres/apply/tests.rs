//! Unit tests of batch splitting, parameter fields and key rendering.

use super::params::fields;
use super::*;
use crate::apply::split_transactions;
use dts_core::{Lsn, RowImage, Value};

fn ev(change: Change, lsn: u64) -> ChangeEvent {
    ChangeEvent {
        change,
        position: Position::Lsn(Lsn(lsn)),
        timestamp: 0,
    }
}

#[test]
fn batches_split_at_commits_and_ddl() {
    let ddl = Change::Ddl {
        schema: None,
        sql: "DROP TABLE x".into(),
        sql_mode: dts_core::SqlMode::default(),
    };
    let events = [
        ev(Change::Begin, 1),
        ev(Change::Commit, 2),
        ev(ddl, 3),
        ev(Change::Begin, 4),
        ev(Change::Commit, 5),
    ];
    let t = split_transactions(&events).unwrap();
    assert_eq!(t.iter().map(|t| t.len()).collect::<Vec<_>>(), [2, 1, 2]);
    assert!(split_transactions(&events[..4]).is_err());
}

#[test]
fn fields_split_lengths_and_nulls() {
    let mut b = BytesMut::new();
    b.put_i32(2);
    b.put_slice(b"ab");
    b.put_i32(-1);
    b.put_i32(0);
    let f = fields(&b, |i| i == 1);
    assert_eq!(f.len(), 3);
    assert_eq!(
        f.iter().map(|f| f.1).collect::<Vec<_>>(),
        [false, true, false]
    );
    assert_eq!(f[0].0, Some(&b"ab"[..]));
    assert_eq!(f[1].0, None);
    assert_eq!(f[2].0, Some(&b""[..]));
}

#[test]
fn keys_are_named_without_long_values() {
    let image = RowImage {
        columns: Arc::new(vec!["a".into(), "b".into(), "c".into()]),
        values: vec![Value::Int(7), Value::Text("x".repeat(100)), Value::Null],
    };
    let key = image.key_text(&["a".into(), "b".into()]);
    assert_eq!(key, format!("(a=7, b='{}')", "x".repeat(40)));
    assert_eq!(image.key_text(&[]), "(table has no key)");
    assert_eq!(
        short_sql("ALTER  TABLE\n t ADD c int"),
        "ALTER TABLE t ADD c int"
    );
    assert!(short_sql(&"x ".repeat(100)).ends_with("..."));
}
