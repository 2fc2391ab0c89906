//! Literals the schema crate writes mean the same on a PostgreSQL server whatever
//! `standard_conforming_strings` is set to: hostile text read from the source (a comment or
//! default such as `x\'; DROP TABLE t; --`) stays one literal and comes back unchanged.
//!
//! Needs the PostgreSQL binaries installed (or `DTS_TEST_PG_URL`):
//! `cargo test -p dts-schema --test quoting`.

use dts_core::{Catalog, Column, ColumnDefault, Key, Schema, Table, TableName};
use dts_schema::{plan_mysql_to_pg, quote_literal, SchemaOptions};

const HOSTILE: &[&str] = &[
    r"x\'; DROP TABLE t; --",
    r"\",
    r"'\'",
    r"a\\'' OR 1=1 --",
    "it's",
    "plain",
];

#[test]
fn literals_read_back_under_both_settings() {
    let pg = dts_testkit::postgres();
    for setting in ["on", "off"] {
        for text in HOSTILE {
            let sql = format!(
                "SET escape_string_warning = off;\nSET standard_conforming_strings = {setting};\nSELECT {};",
                quote_literal(text)
            );
            let got = pg
                .query(&sql)
                .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"));
            assert_eq!(got, *text, "standard_conforming_strings = {setting}: {sql}");
        }
    }
}

#[test]
fn hostile_comment_and_default_stay_literals() {
    let pg = dts_testkit::postgres();
    let db = pg.create_unique_database("quoting").expect("database");
    let hostile = HOSTILE[0];
    let mut name = Column::new("name", "varchar(40)");
    name.ordinal = 2;
    name.default = Some(ColumnDefault::Literal(hostile.into()));
    name.comment = Some(hostile.into());
    let mut id = Column::new("id", "int(11)");
    id.ordinal = 1;
    id.nullable = false;
    let catalog = Catalog {
        types: Vec::new(),
        omitted_indexes: Vec::new(),
        schemas: vec![Schema {
            name: db.clone(),
            tables: vec![Table {
                name: TableName::new(db.clone(), "t"),
                columns: vec![id, name],
                primary_key: Some(Key {
                    name: None,
                    columns: vec!["id".into()],
                }),
                indexes: vec![],
                foreign_keys: vec![],
                comment: Some(hostile.into()),
                estimated_rows: 0,
                auto_increment: None,
            }],
        }],
    };
    let plan = plan_mysql_to_pg(&catalog, &SchemaOptions::default());
    assert!(
        plan.blocking_problems().next().is_none(),
        "{:?}",
        plan.problems
    );
    let mut batch =
        String::from("SET escape_string_warning = off;\nSET standard_conforming_strings = off;\n");
    for s in plan.pre_data.iter().chain(&plan.post_data) {
        batch.push_str(&s.sql);
        batch.push_str(";\n");
    }
    pg.exec_in(&db, &batch)
        .unwrap_or_else(|e| panic!("postgres refused the plan:\n{batch}\n{e}"));
    let table = format!("\"{db}\".\"t\"");
    let got = pg
        .query_in(
            &db,
            &format!(
                "INSERT INTO {table} (id) VALUES (1);\n\
                 SELECT name FROM {table};\n\
                 SELECT obj_description('{table}'::regclass, 'pg_class');\n\
                 SELECT col_description('{table}'::regclass, 2);"
            ),
        )
        .expect("read back");
    assert_eq!(got, [hostile; 3].join("\n"));
    pg.drop_database(&db).expect("drop database");
}
