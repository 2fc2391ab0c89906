//! Unit tests of the apply sink's pure parts: batch splitting, server messages, definitions.

use super::*;

fn server_error(code: u16, message: &str) -> mysql_async::Error {
    mysql_async::Error::Server(mysql_async::ServerError {
        code,
        message: message.into(),
        state: "22003".into(),
    })
}

#[test]
fn rows_and_columns_are_read_from_server_messages() {
    let e = server_error(1264, "Out of range value for column 'n' at row 37");
    assert_eq!(row_number(&e), Some(37));
    let e = server_error(
        1366,
        "Incorrect integer value: 'x' for column `db`.`t`.`c` at row 2",
    );
    assert_eq!(row_number(&e), Some(2));
    assert_eq!(
        column_named("Data too long for column 'long name' at row 1").as_deref(),
        Some("long name")
    );
    assert_eq!(
        column_named("Incorrect integer value: 'x' for column `db`.`t`.`c` at row 2").as_deref(),
        Some("c")
    );
    assert_eq!(column_named("Column 'c' cannot be null"), None);
    assert_eq!(
        row_number(&server_error(1048, "Column 'c' cannot be null")),
        None
    );
}

#[test]
fn row_errors_name_table_column_and_key() {
    let table = TableName::new("db", "t");
    let e = row_error(
        &table,
        "id",
        Some("5"),
        None,
        server_error(1264, "Out of range value for column 'n' at row 1"),
    );
    assert_eq!(e.kind(), ErrorKind::Value);
    assert!(
        e.message().starts_with(
            "the target cannot hold the value of column `n` of `db.t` at key (id) = 5"
        ),
        "{e}"
    );
    let e = row_error(
        &table,
        "",
        Some(""),
        Some("('a',1)"),
        server_error(1062, "Duplicate entry 'a' for key 'u'"),
    );
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(
        e.message().contains("in row ('a',1) (table has no key)"),
        "{e}"
    );
}

#[test]
fn definitions_differ_when_a_table_changed_appeared_or_went() {
    let a = r#"{"s.t":"CREATE TABLE t (a int)","s.u":null}"#;
    assert!(!differ(a, a));
    assert!(differ(
        a,
        r#"{"s.t":"CREATE TABLE t (a int, b int)","s.u":null}"#
    ));
    assert!(differ(
        a,
        r#"{"s.t":"CREATE TABLE t (a int)","s.u":"CREATE TABLE u (x int)"}"#
    ));
    assert!(differ(a, r#"{"s.t":null,"s.u":null}"#));
    assert!(!differ("{}", "{}"));
}

#[test]
fn session_settings_are_told_from_ddl() {
    assert!(is_session_setting("SET SESSION sql_mode = ''"));
    assert!(is_session_setting("  set sql_mode = ''"));
    assert!(!is_session_setting("SETTLE"));
    assert!(!is_session_setting("ALTER TABLE t ADD c INT"));
}
