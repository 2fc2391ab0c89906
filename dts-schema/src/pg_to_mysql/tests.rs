use std::sync::Arc;

use dts_core::{
    Change, ChangeEvent, ChangeMapper, ErrorKind, ForeignKey, Generated, Index, IndexColumn,
    IndexKind, Key, Lsn, OmittedIndex, Position, RowImage, RowMapper, Schema, UserType,
    UserTypeKind, Value,
};

use super::*;

fn column(name: &str, ty: &str) -> Column {
    Column {
        ordinal: 1,
        ..Column::new(name, ty)
    }
}

fn not_null(c: Column) -> Column {
    Column {
        nullable: false,
        ..c
    }
}

fn index(name: &str, unique: bool, cols: &[&str]) -> Index {
    Index {
        name: name.into(),
        unique,
        kind: IndexKind::BTree,
        columns: cols
            .iter()
            .map(|c| IndexColumn {
                name: (*c).into(),
                prefix_length: None,
                descending: false,
            })
            .collect(),
    }
}

fn table(name: &str, columns: Vec<Column>, pk: &[&str]) -> Table {
    Table {
        name: TableName::new("s", name),
        columns,
        primary_key: (!pk.is_empty()).then(|| Key {
            name: Some(format!("{name}_pkey")),
            columns: pk.iter().map(|c| (*c).to_string()).collect(),
        }),
        indexes: vec![],
        foreign_keys: vec![],
        comment: None,
        estimated_rows: 0,
        auto_increment: None,
    }
}

fn catalog() -> Catalog {
    let mut parent = table(
        "parent",
        vec![
            Column {
                auto_increment: true,
                default: Some(ColumnDefault::Identity { always: true }),
                ..not_null(column("id", "bigint"))
            },
            Column {
                comment: Some("the code".into()),
                ..not_null(column("code", "text"))
            },
            Column {
                default: Some(ColumnDefault::Expression(
                    "'x''y'::character varying".into(),
                )),
                ..column("note", "character varying(20)")
            },
            column("mood", "s.mood"),
            column("lbl", "s.label"),
            Column {
                default: Some(ColumnDefault::Expression("now()".into())),
                ..not_null(column("made", "timestamp with time zone"))
            },
        ],
        &["id"],
    );
    parent.indexes.push(index("parent_code", true, &["code"]));
    parent.comment = Some("parents".into());
    parent.auto_increment = Some(1001);
    let mut child = table(
        "child",
        vec![
            not_null(column("a", "integer")),
            not_null(column("b", "text")),
            column("parent", "integer"),
            column("payload", "text"),
            Column {
                default: Some(ColumnDefault::Expression(
                    "nextval('s.child_n_seq'::regclass)".into(),
                )),
                auto_increment: true,
                ..not_null(column("n", "integer"))
            },
        ],
        &["a", "b"],
    );
    child
        .indexes
        .push(index("child_payload", false, &["payload"]));
    child.indexes.push(index("PRIMARY", false, &["parent"]));
    child.foreign_keys.push(ForeignKey {
        name: "fk".into(),
        columns: vec!["parent".into()],
        referenced_table: TableName::new("s", "parent"),
        referenced_columns: vec!["id".into()],
        on_delete: ReferentialAction::Cascade,
        on_update: ReferentialAction::SetDefault,
    });
    let mut other = table("other", vec![column("v", "text")], &[]);
    other.foreign_keys.push(ForeignKey {
        name: "fk".into(),
        columns: vec!["v".into()],
        referenced_table: TableName::new("s", "parent"),
        referenced_columns: vec!["code".into()],
        on_delete: ReferentialAction::NoAction,
        on_update: ReferentialAction::NoAction,
    });
    Catalog {
        schemas: vec![Schema {
            name: "s".into(),
            tables: vec![child, other, parent],
        }],
        types: vec![
            UserType {
                name: TableName::new("s", "mood"),
                kind: UserTypeKind::Enum {
                    labels: vec!["sad".into(), "ok".into(), "it's".into()],
                },
                comment: None,
            },
            UserType {
                name: TableName::new("s", "label"),
                kind: UserTypeKind::Domain {
                    base: "text".into(),
                    collation: None,
                    default: Some("'none'::text".into()),
                    not_null: true,
                    checks: vec![],
                },
                comment: None,
            },
        ],
        omitted_indexes: vec![OmittedIndex {
            table: TableName::new("s", "parent"),
            name: "parent_lower".into(),
            unique: true,
            reason: "expression indexes are not supported".into(),
            definition: "CREATE UNIQUE INDEX parent_lower ON s.parent USING btree (lower(code))"
                .into(),
        }],
    }
}

fn plan() -> SchemaPlan {
    plan_pg_to_mysql(&catalog(), &SchemaOptions::default())
}

fn statement<'p>(plan: &'p SchemaPlan, object: &str) -> &'p str {
    plan.statements()
        .find(|s| s.object == object && s.kind == StatementKind::Table)
        .map(|s| s.sql.as_str())
        .unwrap_or_else(|| panic!("no table statement for {object}"))
}

#[test]
fn tables_columns_defaults_and_keys() {
    let plan = plan();
    assert!(!plan.is_blocked(), "{:?}", plan.problems);
    assert_eq!(
        plan.pre_data[0].sql,
        "CREATE DATABASE IF NOT EXISTS `s` CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin"
    );
    let coll = "CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin";
    assert_eq!(
        statement(&plan, "s.parent"),
        format!(
            "CREATE TABLE `s`.`parent` (\n  \
             `id` bigint NOT NULL AUTO_INCREMENT,\n  \
             `code` varchar(768) {coll} NOT NULL COMMENT 'the code',\n  \
             `note` varchar(20) {coll} NULL DEFAULT 'x''y',\n  \
             `mood` enum('sad','ok','it''s') {coll} NULL,\n  \
             `lbl` longtext {coll} NOT NULL DEFAULT ('none'),\n  \
             `made` datetime(6) NOT NULL DEFAULT (UTC_TIMESTAMP(6)),\n  \
             PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 \
             COLLATE=utf8mb4_nopad_bin AUTO_INCREMENT=1001 COMMENT='parents'"
        )
    );
    // The composite key shares the index limit: the integer takes 4 bytes, the text the
    // rest; the foreign key column is widened to the parent's bigint; the serial column
    // that is not first in a key gets an index of its own.
    assert_eq!(
        statement(&plan, "s.child"),
        format!(
            "CREATE TABLE `s`.`child` (\n  \
             `a` int NOT NULL,\n  \
             `b` varchar(767) {coll} NOT NULL,\n  \
             `parent` bigint NULL,\n  \
             `payload` longtext {coll} NULL,\n  \
             `n` int NOT NULL AUTO_INCREMENT,\n  \
             PRIMARY KEY (`a`, `b`),\n  \
             KEY `n_key` (`n`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 \
             COLLATE=utf8mb4_nopad_bin"
        )
    );
    // A foreign key column referencing a text key is a whole-value key too.
    assert!(
        statement(&plan, "s.other").contains("`v` varchar(768)"),
        "{}",
        statement(&plan, "s.other")
    );
}

#[test]
fn post_data_indexes_foreign_keys_and_counters() {
    let plan = plan();
    let post: Vec<&str> = plan.post_data.iter().map(|s| s.sql.as_str()).collect();
    assert_eq!(
        post,
        [
            "ALTER TABLE `s`.`child` ADD INDEX `child_payload` (`payload`(768))",
            "ALTER TABLE `s`.`child` ADD INDEX `PRIMARY_2` (`parent`)",
            "ALTER TABLE `s`.`parent` ADD UNIQUE INDEX `parent_code` (`code`)",
            "ALTER TABLE `s`.`child` ADD CONSTRAINT `fk` FOREIGN KEY (`parent`) REFERENCES \
             `s`.`parent` (`id`) ON DELETE CASCADE ON UPDATE NO ACTION",
            "ALTER TABLE `s`.`other` ADD CONSTRAINT `fk_2` FOREIGN KEY (`v`) REFERENCES \
             `s`.`parent` (`code`) ON DELETE NO ACTION ON UPDATE NO ACTION",
            "ALTER TABLE `s`.`child` AUTO_INCREMENT = 1",
            "ALTER TABLE `s`.`parent` AUTO_INCREMENT = 1001",
        ]
    );
    let notes: Vec<&str> = plan.problems.iter().map(|p| p.message.as_str()).collect();
    for expected in [
        "index `parent_lower` on table `s.parent` is left out: expression indexes are not supported",
        "ON UPDATE SET DEFAULT is refused by InnoDB; created as NO ACTION",
        "index `PRIMARY` of `s.child` is named `PRIMARY_2`",
        "foreign key `s.other.fk` is named `fk_2`",
        "text columns of `s` use the binary NO PAD collation `utf8mb4_nopad_bin`",
        "column `s.parent.code` (text) is in a key, which MySQL indexes whole only within \
         InnoDB's 3072-byte limit: it becomes `varchar(768)`",
    ] {
        assert!(
            notes.iter().any(|n| n.contains(expected)),
            "{expected}: {notes:?}"
        );
    }
    assert!(plan.problems.iter().all(|p| !p.blocking));
}

#[test]
fn mysql_collation_and_mappings_in_the_table_plan() {
    let opts = SchemaOptions::default().with_target_version("8.0.36");
    let plan = plan_pg_to_mysql(&catalog(), &opts);
    assert!(plan.pre_data[0].sql.ends_with("COLLATE utf8mb4_0900_bin"));
    let t = plan.table(&TableName::new("s", "parent")).unwrap();
    let code = t.column("code").unwrap();
    assert_eq!(
        code.target_type,
        "varchar(768) CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_bin"
    );
    assert!(code.mapping.is_none() && code.pg_to_mysql.is_some());
    assert_eq!(t.chunk_key, Some(vec!["id".to_string()]));
}

#[test]
fn blocking_problems_name_the_object_and_the_fix() {
    let mut c = catalog();
    let parent = &mut c.schemas[0].tables[2];
    parent.columns.push(Column {
        generated: Some(Generated {
            expression: "(id * 2)".into(),
            stored: true,
        }),
        ..column("twice", "bigint")
    });
    parent.columns.push(column("Code", "text"));
    let long = "x".repeat(65);
    let opts = SchemaOptions::default()
        .rename_table(TableName::new("s", "other"), long.clone())
        .rename_column(TableName::new("s", "child"), "payload", "p🎉");
    let plan = plan_pg_to_mysql(&c, &opts);
    let blocking: Vec<&str> = plan
        .blocking_problems()
        .map(|p| p.message.as_str())
        .collect();
    assert_eq!(blocking.len(), 4, "{blocking:?}");
    assert!(blocking[0]
        .contains("column name `p🎉` has characters outside the Basic Multilingual Plane"));
    assert_eq!(
        blocking[1],
        format!(
            "table name `{long}` is 65 characters long, more than MySQL's 64: rename it with objects.rename_tables"
        )
    );
    assert!(blocking[2].starts_with("generated column `s.parent.twice` (`(id * 2)`)"));
    assert!(blocking[3].starts_with(
        "columns `code` and `Code` of `s.parent` both become `code`, and MySQL column names ignore case"
    ));
}

#[test]
fn rows_are_converted_and_special_values_counted() {
    let mut c = catalog();
    c.schemas[0].tables[2]
        .columns
        .push(column("t", "timestamp without time zone"));
    let mut opts = SchemaOptions::default();
    opts.mapping.pg_to_mysql.infinity = dts_typemap::pg_to_mysql::InfinityPolicy::Null;
    let plan = plan_pg_to_mysql(&c, &opts);
    let mapper = PgToMySqlRowMapper::new(plan.table(&TableName::new("s", "parent")).unwrap());
    let ts: dts_core::DateTime = "2100-01-01 00:00:00".parse().unwrap();
    let mut row = vec![
        Value::Int(1),
        Value::Text("c".into()),
        Value::Null,
        Value::Text("ok".into()),
        Value::Text("l".into()),
        Value::Timestamp(ts),
        Value::Text("infinity".into()),
    ];
    mapper.map_row(&mut row).unwrap();
    assert_eq!(row[5], Value::DateTime(ts));
    assert_eq!(row[6], Value::Null);
    assert_eq!(mapper.replaced_values(), [("s.parent.t".to_string(), 1)]);
    let mut bad = row.clone();
    bad[1] = Value::Text("é".repeat(769));
    let failure = mapper.map_row(&mut bad).unwrap_err();
    assert_eq!(failure.column, 1);
    assert!(failure
        .error
        .to_string()
        .contains("too long for `varchar(768)`"));
}

#[test]
fn changes_are_renamed_converted_and_checked() {
    let selects: Arc<dyn Fn(&TableName) -> bool + Send + Sync> =
        Arc::new(|t: &TableName| t.name != "other");
    let opts = SchemaOptions::default()
        .rename_schema("s", "d")
        .rename_column(TableName::new("s", "child"), "payload", "body");
    let mut mapper = PgToMySqlChangeMapper::new(&catalog(), &opts, selects);
    let image = |cols: &[&str], values: Vec<Value>| RowImage {
        columns: Arc::new(cols.iter().map(|c| (*c).to_string()).collect()),
        values,
    };
    let event = |change| ChangeEvent {
        change,
        position: Position::Lsn(Lsn(1)),
        timestamp: 0,
    };
    let child = TableName::new("s", "child");
    let full = image(
        &["a", "b", "parent", "payload", "n"],
        vec![
            Value::Int(1),
            Value::Text("k".into()),
            Value::Int(2),
            Value::Text("p".into()),
            Value::Int(3),
        ],
    );
    // An update whose after image leaves the unchanged TOASTed payload out.
    let out = mapper
        .map(event(Change::Update {
            table: child.clone(),
            before: full.clone(),
            after: image(
                &["a", "b", "parent", "n"],
                vec![
                    Value::Int(1),
                    Value::Text("k".into()),
                    Value::Int(5),
                    Value::Int(3),
                ],
            ),
        }))
        .unwrap()
        .unwrap();
    let Change::Update {
        table,
        before,
        after,
    } = out.change
    else {
        panic!("{out:?}")
    };
    assert_eq!(table, TableName::new("d", "child"));
    assert_eq!(*before.columns, ["a", "b", "parent", "body", "n"]);
    assert_eq!(*after.columns, ["a", "b", "parent", "n"]);
    assert_eq!(after.values[2], Value::Int(5));
    // Unselected tables are dropped; commits pass.
    let other = event(Change::Insert {
        table: TableName::new("s", "other"),
        row: image(&["v"], vec![Value::Null]),
    });
    assert_eq!(mapper.map(other).unwrap(), None);
    let commit = event(Change::Commit);
    assert_eq!(mapper.map(commit.clone()).unwrap(), Some(commit));
    // A value the target cannot hold names table, column and key.
    let mut long = full.clone();
    long.values[1] = Value::Text("x".repeat(800));
    let err = mapper
        .map(event(Change::Insert {
            table: child.clone(),
            row: long,
        }))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("column `s.child`.`b` at key (a=1, b='xxxx"),
        "{err}"
    );
    // A changed column list stops replication naming both lists.
    let err = mapper
        .map(event(Change::Insert {
            table: child,
            row: image(
                &["a", "b", "parent", "payload", "n", "added"],
                vec![Value::Null; 6],
            ),
        }))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(
        err.to_string()
            .contains("a, b, parent, payload, n became a, b, parent, payload, n, added"),
        "{err}"
    );
}

#[test]
fn wide_rows_store_their_widest_varchars_as_text() {
    let mut columns: Vec<Column> = (0..20)
        .map(|i| column(&format!("c{i}"), "character varying(1000)"))
        .collect();
    columns.push(not_null(column("id", "character varying(1000)")));
    let mut t = table("wide", columns, &["id"]);
    t.indexes.push(index("wide_c0", false, &["c0"]));
    let c = Catalog {
        schemas: vec![Schema {
            name: "s".into(),
            tables: vec![t],
        }],
        types: vec![],
        omitted_indexes: vec![],
    };
    let plan = plan_pg_to_mysql(&c, &SchemaOptions::default());
    let tp = &plan.tables[0];
    let ty = |name: &str| {
        let m = tp.column(name).unwrap().pg_to_mysql.as_ref().unwrap();
        m.target.to_string()
    };
    // 21 × 4,002 bytes exceed the row limit: the key column and the indexed one stay
    // varchar, enough of the others become text (values are the same).
    assert_eq!(ty("id"), "varchar(768)");
    assert_eq!(ty("c0"), "varchar(1000)");
    let texts = (1..20).filter(|i| ty(&format!("c{i}")) == "text").count();
    let varchars = (1..20)
        .filter(|i| ty(&format!("c{i}")) == "varchar(1000)")
        .count();
    assert_eq!(texts + varchars, 19);
    assert!(
        varchars * 4002 + 4002 + 3074 <= 65_000 && texts > 0,
        "{varchars} {texts}"
    );
}

#[test]
fn relation_descriptions_become_mysql_column_changes() {
    let t = Table {
        name: TableName::new("s", "t"),
        columns: vec![
            Column {
                ordinal: 1,
                nullable: false,
                ..Column::new("id", "bigint")
            },
            Column {
                ordinal: 2,
                ..Column::new("gone", "text")
            },
            Column {
                ordinal: 3,
                ..Column::new("small", "integer")
            },
            Column {
                ordinal: 4,
                ..Column::new("b", "text")
            },
        ],
        ..table("t", vec![], &["id"])
    };
    let catalog = Catalog {
        schemas: vec![Schema {
            name: "s".into(),
            tables: vec![t],
        }],
        ..Catalog::default()
    };
    let selects: Arc<dyn Fn(&TableName) -> bool + Send + Sync> = Arc::new(|_: &TableName| true);
    let opts = SchemaOptions::default().rename_schema("s", "d");
    let mut mapper = PgToMySqlChangeMapper::new(&catalog, &opts, selects);
    // Name, type, attribute number, NOT NULL, default, stored value.
    type Described<'a> = (
        &'a str,
        &'a str,
        u32,
        bool,
        Option<&'a str>,
        Option<&'a str>,
    );
    let described = |columns: &[Described<'_>]| {
        let columns = columns
            .iter()
            .map(
                |(name, ty, ordinal, not_null, default, missing)| dts_core::RelationColumn {
                    name: (*name).into(),
                    data_type: (*ty).into(),
                    key: *name == "id",
                    ordinal: Some(*ordinal),
                    not_null: *not_null,
                    default: default.map(str::to_string),
                    missing: missing.map(str::to_string),
                },
            )
            .collect();
        ChangeEvent {
            change: Change::Relation {
                table: TableName::new("s", "t"),
                columns,
            },
            position: Position::Lsn(Lsn(1)),
            timestamp: 0,
        }
    };
    // The same columns pass as nothing.
    let same = described(&[
        ("id", "bigint", 1, true, None, None),
        ("gone", "text", 2, false, None, None),
        ("small", "integer", 3, false, None, None),
        ("b", "text", 4, false, None, None),
    ]);
    assert_eq!(mapper.map(same).unwrap(), None);
    // Dropped, retyped, added with a stored default that differs from its own default.
    let changed = described(&[
        ("id", "bigint", 1, true, None, None),
        ("small", "bigint", 3, false, None, None),
        ("b", "text", 4, false, None, None),
        ("late", "integer", 5, true, Some("4"), Some("3")),
        ("note", "character varying(20)", 6, false, None, None),
    ]);
    let out = mapper.map(changed).unwrap().unwrap();
    let Change::Schema(change) = out.change else {
        panic!("{out:?}")
    };
    assert!(change.within_transaction);
    assert_eq!(change.tables, [TableName::new("d", "t")]);
    assert_eq!(
        change.statements,
        [
            "ALTER TABLE `d`.`t` DROP COLUMN `gone`, MODIFY COLUMN `small` bigint NULL, \
             ADD COLUMN `late` int NOT NULL DEFAULT 3, ADD COLUMN `note` varchar(20) \
             CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NULL",
            "ALTER TABLE `d`.`t` MODIFY COLUMN `late` int NOT NULL DEFAULT 4",
        ]
    );
    let tracked = change.catalog.as_ref().unwrap();
    let names: Vec<&str> = tracked
        .table(&TableName::new("s", "t"))
        .unwrap()
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["id", "small", "b", "late", "note"]);
    // Rows now map with the new columns.
    let row = ChangeEvent {
        change: Change::Insert {
            table: TableName::new("s", "t"),
            row: RowImage {
                columns: Arc::new(names.iter().map(|c| (*c).to_string()).collect()),
                values: vec![
                    Value::Int(1),
                    Value::Int(2),
                    Value::Null,
                    Value::Int(3),
                    Value::Text("n".into()),
                ],
            },
        },
        position: Position::Lsn(Lsn(1)),
        timestamp: 0,
    };
    assert!(mapper.map(row).unwrap().is_some());
    // A retype MySQL would convert otherwise is refused, naming table and column.
    let retyped = described(&[
        ("id", "bigint", 1, true, None, None),
        ("small", "bigint", 3, false, None, None),
        ("b", "integer", 4, false, None, None),
        ("late", "integer", 5, true, Some("4"), None),
        ("note", "character varying(20)", 6, false, None, None),
    ]);
    let err = mapper.map(retyped).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(
        err.to_string().contains(
            "column `b` of `s.t` changed at the source: its type changed from `text` to `integer`"
        ),
        "{err}"
    );
}

#[test]
fn added_columns_follow_the_type_options() {
    let catalog = Catalog {
        schemas: vec![Schema {
            name: "s".into(),
            tables: vec![table("t", vec![not_null(column("id", "bigint"))], &["id"])],
        }],
        ..Catalog::default()
    };
    let selects: Arc<dyn Fn(&TableName) -> bool + Send + Sync> = Arc::new(|_: &TableName| true);
    let mut mapping = dts_typemap::MappingOptions::default();
    mapping.pg_to_mysql.uuid = dts_typemap::pg_to_mysql::UuidMapping::Binary16;
    mapping.pg_to_mysql.interval = dts_typemap::pg_to_mysql::IntervalMapping::Time;
    let opts = SchemaOptions::default().with_mapping(mapping);
    let mut mapper = PgToMySqlChangeMapper::new(&catalog, &opts, selects);
    let column = |name: &str, ty: &str, ordinal| dts_core::RelationColumn {
        name: name.into(),
        data_type: ty.into(),
        key: name == "id",
        ordinal: Some(ordinal),
        not_null: name == "id",
        default: None,
        missing: None,
    };
    let out = mapper
        .map(ChangeEvent {
            change: Change::Relation {
                table: TableName::new("s", "t"),
                columns: vec![
                    column("id", "bigint", 1),
                    column("u", "uuid", 2),
                    column("i", "interval", 3),
                ],
            },
            position: Position::Lsn(Lsn(1)),
            timestamp: 0,
        })
        .unwrap()
        .unwrap();
    let Change::Schema(change) = out.change else {
        panic!("{out:?}")
    };
    assert_eq!(
        change.statements,
        ["ALTER TABLE `s`.`t` ADD COLUMN `u` binary(16) NULL, ADD COLUMN `i` time(6) NULL"]
    );
}
