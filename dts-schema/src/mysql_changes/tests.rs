//! Tests of the MySQL → MySQL change mapping: rows renamed and stripped of generated
//! columns, DDL kept with the target's names.

use std::sync::Arc;

use dts_core::{
    Catalog, Change, ChangeEvent, ChangeMapper, Column, Generated, Key, Position, RowImage, Schema,
    SqlMode, Table, TableName, Value,
};

use super::*;

fn col(name: &str, source_type: &str, nullable: bool) -> Column {
    Column {
        nullable,
        ..Column::new(name, source_type)
    }
}

fn items() -> Table {
    let mut twice = col("twice", "bigint(20)", true);
    twice.generated = Some(Generated {
        expression: "`n` * 2".into(),
        stored: false,
    });
    let mut columns = vec![
        col("id", "int(11)", false),
        col("n", "int(11)", true),
        twice,
        col("note", "varchar(20)", true),
    ];
    for (i, c) in columns.iter_mut().enumerate() {
        c.ordinal = u32::try_from(i + 1).unwrap();
    }
    Table {
        name: TableName::new("shop", "items"),
        columns,
        primary_key: Some(Key {
            name: Some("PRIMARY".into()),
            columns: vec!["id".into()],
        }),
        indexes: vec![],
        foreign_keys: vec![],
        comment: None,
        estimated_rows: 0,
        auto_increment: None,
    }
}

fn mapper() -> MySqlToMySqlChangeMapper {
    let catalog = Catalog {
        schemas: vec![Schema {
            name: "shop".into(),
            tables: vec![items()],
        }],
        types: Vec::new(),
        omitted_indexes: Vec::new(),
    };
    let opts = SchemaOptions::default()
        .rename_schema("shop", "store")
        .rename_table(TableName::new("shop", "items"), "goods");
    MySqlToMySqlChangeMapper::new(
        catalog,
        opts,
        Arc::new(|t: &TableName| t.schema == "shop" && !t.name.starts_with("tmp")),
    )
}

fn event(change: Change) -> ChangeEvent {
    ChangeEvent {
        change,
        position: Position::Binlog {
            file: "b.000001".into(),
            offset: 100,
            gtid: None,
        },
        timestamp: 0,
    }
}

fn ddl(m: &mut MySqlToMySqlChangeMapper, sql: &str) -> dts_core::Result<SchemaChange> {
    ddl_in_mode(m, sql, SqlMode::default())
}

fn ddl_in_mode(
    m: &mut MySqlToMySqlChangeMapper,
    sql: &str,
    sql_mode: SqlMode,
) -> dts_core::Result<SchemaChange> {
    let out = m.map(event(Change::Ddl {
        schema: Some("shop".into()),
        sql: sql.into(),
        sql_mode,
    }))?;
    match out.map(|e| e.change) {
        Some(Change::Schema(change)) => Ok(*change),
        other => panic!("{other:?}"),
    }
}

/// The target statement of a schema change (after the `sql_mode` statement).
fn statement(change: &SchemaChange) -> &str {
    assert_eq!(change.statements.len(), 2, "{:?}", change.statements);
    &change.statements[1]
}

#[test]
fn rows_name_the_target_table_without_generated_columns() {
    let mut m = mapper();
    let row = RowImage {
        columns: Arc::new(vec!["id".into(), "n".into(), "twice".into(), "note".into()]),
        values: vec![
            Value::Int(1),
            Value::Int(2),
            Value::Int(4),
            Value::Text("x".into()),
        ],
    };
    let out = m
        .map(event(Change::Insert {
            table: TableName::new("shop", "items"),
            row: row.clone(),
        }))
        .unwrap()
        .unwrap();
    let Change::Insert { table, row: mapped } = out.change else {
        panic!()
    };
    assert_eq!(table, TableName::new("store", "goods"));
    assert_eq!(*mapped.columns, ["id", "n", "note"]);
    assert_eq!(
        mapped.values,
        [Value::Int(1), Value::Int(2), Value::Text("x".into())]
    );
    // A table the task does not select is dropped; a selected one it does not know fails.
    let other = m
        .map(event(Change::Delete {
            table: TableName::new("crm", "people"),
            row: row.clone(),
        }))
        .unwrap();
    assert!(other.is_none());
    let unknown = m
        .map(event(Change::Delete {
            table: TableName::new("shop", "unknown"),
            row,
        }))
        .unwrap_err();
    assert!(unknown.message().contains("not among the migrated tables"));
    // Transaction boundaries pass.
    assert!(m.map(event(Change::Commit)).unwrap().is_some());
}

#[test]
fn ddl_is_kept_with_the_target_names_and_the_source_mode() {
    let mut m = mapper();
    let change = ddl(
        &mut m,
        "ALTER TABLE items ADD COLUMN extra INT DEFAULT 7 AFTER n",
    )
    .unwrap();
    assert_eq!(change.statements[0], "SET SESSION sql_mode = ''");
    assert_eq!(
        statement(&change),
        "ALTER TABLE `store`.`goods` ADD COLUMN extra INT DEFAULT 7 AFTER n"
    );
    assert_eq!(change.tables, [TableName::new("store", "goods")]);
    assert!(change.created.is_empty());
    let catalog = change.catalog.expect("the schema changed");
    let names: Vec<&str> = catalog
        .table(&TableName::new("shop", "items"))
        .unwrap()
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["id", "n", "extra", "twice", "note"]);

    // Rows now carry the new column.
    let row = RowImage {
        columns: Arc::new(
            ["id", "n", "extra", "twice", "note"]
                .map(String::from)
                .to_vec(),
        ),
        values: vec![Value::Int(1); 5],
    };
    let out = m
        .map(event(Change::Insert {
            table: TableName::new("shop", "items"),
            row,
        }))
        .unwrap()
        .unwrap();
    let Change::Insert { row, .. } = out.change else {
        panic!()
    };
    assert_eq!(*row.columns, ["id", "n", "extra", "note"]);

    // The source's quoting and mode: ANSI_QUOTES names become backquoted, the flags both
    // engines know are carried.
    let mode = SqlMode::ANSI_QUOTES | SqlMode::from_bits((1 << 21) | (1 << 24) | (1 << 1));
    let change = ddl_in_mode(
        &mut m,
        r#"ALTER TABLE "shop"."items" DROP COLUMN "extra""#,
        mode,
    )
    .unwrap();
    assert_eq!(
        change.statements[0],
        "SET SESSION sql_mode = 'PIPES_AS_CONCAT,STRICT_TRANS_TABLES,NO_ZERO_DATE'"
    );
    assert_eq!(
        statement(&change),
        "ALTER TABLE `store`.`goods` DROP COLUMN `extra`"
    );
}

#[test]
fn referenced_like_and_renamed_tables_are_renamed_too() {
    let mut m = mapper();
    let change = ddl(
        &mut m,
        "CREATE TABLE shop.lines (id INT PRIMARY KEY, item INT, \
         CONSTRAINT fk FOREIGN KEY (item) REFERENCES items (id) ON DELETE CASCADE)",
    )
    .unwrap();
    assert_eq!(
        statement(&change),
        "CREATE TABLE `store`.`lines` (id INT PRIMARY KEY, item INT, \
         CONSTRAINT fk FOREIGN KEY (item) REFERENCES `store`.`goods` (id) ON DELETE CASCADE)"
    );
    assert_eq!(change.created, [TableName::new("store", "lines")]);
    assert!(change.tables.is_empty());

    let change = ddl(&mut m, "CREATE TABLE copy LIKE `items`").unwrap();
    assert_eq!(
        statement(&change),
        "CREATE TABLE `store`.`copy` LIKE `store`.`goods`"
    );

    let change = ddl(
        &mut m,
        "ALTER TABLE copy RENAME TO shop.copy2, ADD INDEX (n)",
    )
    .unwrap();
    assert_eq!(
        statement(&change),
        "ALTER TABLE `store`.`copy` RENAME TO `store`.`copy2`, ADD INDEX (n)"
    );
    assert_eq!(change.tables, [TableName::new("store", "copy")]);
    assert_eq!(change.created, [TableName::new("store", "copy2")]);

    let change = ddl(&mut m, "ALTER TABLE copy2 RENAME COLUMN note TO m").unwrap();
    assert_eq!(
        statement(&change),
        "ALTER TABLE `store`.`copy2` RENAME COLUMN note TO m"
    );

    let change = ddl(&mut m, "CREATE UNIQUE INDEX u ON copy2 (m)").unwrap();
    assert_eq!(
        statement(&change),
        "CREATE UNIQUE INDEX u ON `store`.`copy2` (m)"
    );
    let change = ddl(&mut m, "DROP INDEX u ON copy2").unwrap();
    assert_eq!(statement(&change), "DROP INDEX u ON `store`.`copy2`");

    // RENAME TABLE keeps the selected pairs; DROP TABLE drops the selected tables only.
    let change = ddl(
        &mut m,
        "RENAME TABLE copy2 TO copy3, crm.a TO crm.b, lines TO lines2",
    )
    .unwrap();
    assert_eq!(
        statement(&change),
        "RENAME TABLE `store`.`copy2` TO `store`.`copy3`, `store`.`lines` TO `store`.`lines2`"
    );
    let change = ddl(&mut m, "DROP TABLE IF EXISTS copy3, crm.other, lines2").unwrap();
    assert_eq!(
        statement(&change),
        "DROP TABLE IF EXISTS `store`.`copy3`, `store`.`lines2`"
    );
    assert_eq!(
        change.tables,
        [
            TableName::new("store", "copy3"),
            TableName::new("store", "lines2")
        ]
    );
}

#[test]
fn statements_about_nothing_selected_need_no_target_statement() {
    let mut m = mapper();
    for sql in [
        "CREATE VIEW v AS SELECT 1",
        "ALTER TABLE crm.people ADD COLUMN x INT",
        "CREATE TEMPORARY TABLE t (a INT)",
        "GRANT SELECT ON shop.* TO someone",
    ] {
        let change = ddl(&mut m, sql).unwrap();
        assert!(
            change.statements.is_empty(),
            "{sql}: {:?}",
            change.statements
        );
        assert!(change.catalog.is_none(), "{sql}");
    }
}

#[test]
fn what_cannot_be_followed_stops_or_is_skipped() {
    let mut m = mapper();
    let e = ddl(&mut m, "CREATE TABLE shop.t2 SELECT * FROM shop.items").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.message().contains("CREATE TABLE shop.t2 SELECT"), "{e}");
    // Nothing of it stays: the table is unknown afterwards.
    assert!(m.catalog().table(&TableName::new("shop", "t2")).is_none());
    let e = ddl(&mut m, "RENAME TABLE items TO tmp_items").unwrap_err();
    assert!(e.message().contains("not selected"), "{e}");

    let mut m = mapper().with_skip_unsupported_ddl(true);
    let change = ddl(&mut m, "RENAME TABLE items TO tmp_items").unwrap();
    assert!(change.statements.is_empty());
    assert!(m
        .catalog()
        .table(&TableName::new("shop", "items"))
        .is_some());
}

#[test]
fn changes_only_postgresql_would_convert_otherwise_are_followed() {
    let mut m = mapper();
    let ddl_sql = "ALTER TABLE items MODIFY note DATETIME(3), \
                   MODIFY twice BIGINT AS (`n` * 3) VIRTUAL";
    let change = ddl(&mut m, ddl_sql).unwrap();
    assert_eq!(
        statement(&change),
        "ALTER TABLE `store`.`goods` MODIFY note DATETIME(3), \
         MODIFY twice BIGINT AS (`n` * 3) VIRTUAL"
    );
    let items = m.catalog().table(&TableName::new("shop", "items")).unwrap();
    assert_eq!(items.columns[3].source_type, "datetime(3)");
    // The PostgreSQL translation refuses the same statement.
    let mut pg = SchemaTracker::new(
        mapper().catalog().clone(),
        SchemaOptions::default(),
        Arc::new(|_: &TableName| true),
    );
    assert!(pg.apply_mysql_ddl(Some("shop"), ddl_sql).is_err());
}

/// A mapper of `items` without its column `note`, which the task leaves out.
fn mapper_without_note() -> MySqlToMySqlChangeMapper {
    let mut table = items();
    table.columns.retain(|c| c.name != "note");
    let catalog = Catalog {
        schemas: vec![Schema {
            name: "shop".into(),
            tables: vec![table],
        }],
        types: Vec::new(),
        omitted_indexes: Vec::new(),
    };
    let opts = SchemaOptions::default()
        .rename_schema("shop", "store")
        .rename_table(TableName::new("shop", "items"), "goods")
        .select_columns(
            TableName::new("shop", "items"),
            crate::ColumnFilter::Exclude(["note".to_string()].into()),
        );
    MySqlToMySqlChangeMapper::new(catalog, opts, Arc::new(|t: &TableName| t.schema == "shop"))
}

#[test]
fn clauses_about_columns_left_out_are_left_out_of_the_statement() {
    let mut m = mapper_without_note();
    // Only about the column left out: nothing to run, the schema unchanged.
    let change = ddl(&mut m, "ALTER TABLE items MODIFY note varchar(40) NOT NULL").unwrap();
    assert!(change.statements.is_empty(), "{:?}", change.statements);
    assert!(change.catalog.is_none());
    let change = ddl(
        &mut m,
        "ALTER TABLE items DROP COLUMN note, ADD COLUMN extra int",
    )
    .unwrap();
    assert_eq!(
        statement(&change),
        "ALTER TABLE `store`.`goods` ADD COLUMN extra int"
    );
    let change = ddl(
        &mut m,
        "ALTER TABLE items ADD COLUMN note2 int AFTER note, ALTER COLUMN note SET DEFAULT 'x'",
    )
    .unwrap();
    assert_eq!(
        statement(&change),
        "ALTER TABLE `store`.`goods` ADD COLUMN note2 int"
    );
    let names: Vec<String> = m
        .catalog()
        .table(&TableName::new("shop", "items"))
        .unwrap()
        .columns
        .iter()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(names, ["id", "n", "twice", "extra", "note2"]);
    // A rows image's column left out is not the mapper's concern (the task drops it
    // before); a rename across the selection is refused, naming the column.
    let e = ddl(&mut m, "ALTER TABLE items CHANGE n note int").unwrap_err();
    assert!(
        e.message().contains("`n`") && e.message().contains("shop.items"),
        "{e}"
    );
}
