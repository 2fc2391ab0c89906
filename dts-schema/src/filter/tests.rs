use std::sync::Arc;

use dts_core::{Column, Engine, RowImage, Table, TableName, Value};

use super::RowFilter;

fn table(name: TableName) -> Table {
    Table {
        name,
        columns: Vec::new(),
        primary_key: None,
        indexes: Vec::new(),
        foreign_keys: Vec::new(),
        comment: None,
        estimated_rows: 0,
        auto_increment: None,
    }
}

fn mysql_table() -> Table {
    let mut t = table(TableName::new("shop", "orders"));
    let mut id = Column::new("id", "bigint(20)");
    id.nullable = false;
    t.columns.push(id);
    let mut region = Column::new("region", "varchar(10)");
    region.charset = Some("utf8mb4".into());
    region.collation = Some("utf8mb4_general_ci".into());
    t.columns.push(region);
    let mut code = Column::new("code", "varchar(10)");
    code.charset = Some("utf8mb4".into());
    code.collation = Some("utf8mb4_bin".into());
    t.columns.push(code);
    t.columns.push(Column::new("amount", "decimal(10,2)"));
    t.columns.push(Column::new("day", "date"));
    t
}

fn row(t: &Table, values: Vec<Value>) -> RowImage {
    RowImage {
        columns: Arc::new(t.columns.iter().map(|c| c.name.clone()).collect()),
        values,
    }
}

#[test]
fn unknown_columns_and_trailing_text_are_config_errors() {
    let t = mysql_table();
    let e = RowFilter::parse(Engine::MySql, &t, "regio = 'eu'").unwrap_err();
    assert!(
        e.message().contains("`regio`") && e.message().contains("shop.orders"),
        "{e}"
    );
    let e = RowFilter::parse(Engine::MySql, &t, "upper(nope) = 'EU'").unwrap_err();
    assert!(e.message().contains("`nope`"), "{e}");
    let e = RowFilter::parse(Engine::MySql, &t, "id = 1; DROP TABLE x").unwrap_err();
    assert!(e.message().contains("one expression"), "{e}");
    assert!(RowFilter::parse(Engine::MySql, &t, "id = ").is_err());
}

#[test]
fn case_insensitive_collations_are_refused_with_an_exact_form() {
    let t = mysql_table();
    let f = RowFilter::parse(Engine::MySql, &t, "REGION = 'eu' AND id > 0").unwrap();
    let u = f.unevaluable().unwrap();
    assert!(u.reason.contains("utf8mb4_general_ci"), "{u}");
    assert_eq!(
        u.suggestion.as_deref(),
        Some("REGION COLLATE utf8mb4_bin = 'eu'")
    );
    let f = RowFilter::parse(Engine::MySql, &t, "region COLLATE utf8mb4_bin = 'eu'").unwrap();
    assert!(f.unevaluable().is_none(), "{:?}", f.unevaluable());
    let v = |r: &str| {
        row(
            &t,
            vec![
                Value::Int(1),
                Value::Text(r.into()),
                Value::Null,
                Value::Null,
                Value::Null,
            ],
        )
    };
    assert!(f.matches(&v("eu")).unwrap());
    assert!(f.matches(&v("eu  ")).unwrap(), "PAD SPACE");
    assert!(!f.matches(&v("EU")).unwrap());
    let f = RowFilter::parse(Engine::MySql, &t, "lower(region) = 'eu'").unwrap();
    assert!(f.unevaluable().unwrap().reason.contains("functions"));
    assert_eq!(f.columns(), ["region"]);
}

#[test]
fn three_valued_logic_in_and_between() {
    let t = mysql_table();
    let f = RowFilter::parse(
        Engine::MySql,
        &t,
        "code NOT IN ('a', NULL) OR (amount BETWEEN 1 AND 2.5 AND day >= '2024-01-01')",
    )
    .unwrap();
    assert!(f.unevaluable().is_none(), "{:?}", f.unevaluable());
    let r = |code: Value, amount: &str, day: &str| {
        row(
            &t,
            vec![
                Value::Int(1),
                Value::Null,
                code,
                Value::Decimal(amount.parse().unwrap()),
                Value::Date(day.parse().unwrap()),
            ],
        )
    };
    // NOT IN with a NULL item is never true.
    assert!(!f
        .matches(&r(Value::Text("b".into()), "3.00", "2024-01-01"))
        .unwrap());
    assert!(f
        .matches(&r(Value::Text("b".into()), "2.50", "2024-01-01"))
        .unwrap());
    assert!(!f
        .matches(&r(Value::Text("b".into()), "2.51", "2024-01-01"))
        .unwrap());
    assert!(!f
        .matches(&r(Value::Text("b".into()), "1.00", "2023-12-31"))
        .unwrap());
}

#[test]
fn like_escapes_read_as_each_dialect_reads_them() {
    let t = mysql_table();
    for (cond, s, want) in [
        (r"code LIKE 'a\_%'", "a_x", true),
        (r"code LIKE 'a\_%'", "abx", false),
        (r"code LIKE 'a!%' ESCAPE '!'", "a%", true),
        (r"code LIKE 'a!%' ESCAPE '!'", "ab", false),
        ("code LIKE 'a_c'", "abc", true),
        ("code LIKE 'a'", "a ", false),
    ] {
        let f = RowFilter::parse(Engine::MySql, &t, cond).unwrap();
        let r = row(
            &t,
            vec![
                Value::Int(1),
                Value::Null,
                Value::Text(s.into()),
                Value::Null,
                Value::Null,
            ],
        );
        assert_eq!(f.matches(&r).unwrap(), want, "{cond} on {s:?}");
    }
}

#[test]
fn postgres_names_fold_and_ordering_needs_a_bytewise_collation() {
    let mut t = table(TableName::new("public", "t"));
    t.columns.push(Column::new("Name", "text"));
    t.columns.push(Column::new("name", "text"));
    let f = RowFilter::parse(Engine::Postgres, &t, "\"Name\" = 'x' AND NAME = 'y'").unwrap();
    assert_eq!(f.columns(), ["Name", "name"]);
    assert!(f.unevaluable().is_none());
    let f = RowFilter::parse(Engine::Postgres, &t, "name < 'm'").unwrap();
    let u = f.unevaluable().unwrap();
    assert_eq!(
        u.suggestion.as_deref(),
        Some("name COLLATE \"C\" < 'm'"),
        "{u}"
    );
    let f = RowFilter::parse(Engine::Postgres, &t, "name COLLATE \"C\" < 'm'").unwrap();
    assert!(f.unevaluable().is_none(), "{:?}", f.unevaluable());
}

#[test]
fn missing_columns_stop_evaluation_naming_them() {
    let t = mysql_table();
    let f = RowFilter::parse(Engine::MySql, &t, "code = 'a'").unwrap();
    let r = RowImage {
        columns: Arc::new(vec!["id".into()]),
        values: vec![Value::Int(1)],
    };
    let e = f.matches(&r).unwrap_err();
    assert!(
        e.message().contains("`code`") && e.message().contains("code = 'a'"),
        "{e}"
    );
}

#[test]
fn mysql_double_quoted_strings_and_short_images_are_refused() {
    let t = mysql_table();
    let f = RowFilter::parse(Engine::MySql, &t, "code = \"a\"").unwrap();
    assert!(f.unevaluable().unwrap().reason.contains("single quotes"));
    let f = RowFilter::parse(Engine::MySql, &t, "code = 'a'").unwrap();
    let short = RowImage {
        columns: Arc::new(t.columns.iter().map(|c| c.name.clone()).collect()),
        values: vec![Value::Int(1)],
    };
    assert!(f.matches(&short).is_err());
}

#[test]
fn a_postgres_database_in_the_c_locale_orders_default_text_exactly() {
    let mut t = table(TableName::new("public", "t"));
    t.columns.push(Column::new("name", "text"));
    let f = RowFilter::parse_in(Engine::Postgres, &t, "name < 'm'", Some("C")).unwrap();
    assert!(f.unevaluable().is_none(), "{:?}", f.unevaluable());
    let f = RowFilter::parse_in(Engine::Postgres, &t, "name < 'm'", Some("en_US.UTF-8")).unwrap();
    assert!(f.unevaluable().unwrap().reason.contains("en_US.UTF-8"));
}
