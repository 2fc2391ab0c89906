//! Planner tests over hand-built catalogs.

use dts_core::{
    Catalog, Column, ColumnDefault, ForeignKey, Generated, Index, IndexColumn, IndexKind, Key,
    ReferentialAction, Schema, Table, TableName,
};
use dts_typemap::pg::PgType;

use crate::{
    plan_mysql_to_pg, IdentifierCase, SchemaOptions, SchemaPlan, Statement, StatementKind,
};

// --- builders -----------------------------------------------------------------------------

fn col(name: &str, source_type: &str) -> Column {
    Column::new(name, source_type)
}

trait ColumnExt {
    fn not_null(self) -> Self;
    fn literal(self, v: &str) -> Self;
    fn now(self, fsp: u8) -> Self;
    fn expression(self, e: &str) -> Self;
    fn auto(self) -> Self;
    fn on_update(self) -> Self;
    fn generated(self, e: &str, stored: bool) -> Self;
    fn comment(self, c: &str) -> Self;
    fn collation(self, c: &str) -> Self;
}

impl ColumnExt for Column {
    fn not_null(mut self) -> Self {
        self.nullable = false;
        self
    }
    fn literal(mut self, v: &str) -> Self {
        self.default = Some(ColumnDefault::Literal(v.into()));
        self
    }
    fn now(mut self, fsp: u8) -> Self {
        self.default = Some(ColumnDefault::CurrentTimestamp(fsp));
        self
    }
    fn expression(mut self, e: &str) -> Self {
        self.default = Some(ColumnDefault::Expression(e.into()));
        self
    }
    fn auto(mut self) -> Self {
        self.auto_increment = true;
        self.nullable = false;
        self
    }
    fn on_update(mut self) -> Self {
        self.on_update_current_timestamp = true;
        self
    }
    fn generated(mut self, e: &str, stored: bool) -> Self {
        self.generated = Some(Generated {
            expression: e.into(),
            stored,
        });
        self
    }
    fn comment(mut self, c: &str) -> Self {
        self.comment = Some(c.into());
        self
    }
    fn collation(mut self, c: &str) -> Self {
        self.collation = Some(c.into());
        self
    }
}

fn table(schema: &str, name: &str, columns: Vec<Column>) -> Table {
    let columns = columns
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            c.ordinal = u32::try_from(i + 1).unwrap_or(u32::MAX);
            c
        })
        .collect();
    Table {
        name: TableName::new(schema, name),
        columns,
        primary_key: None,
        indexes: vec![],
        foreign_keys: vec![],
        comment: None,
        estimated_rows: 0,
        auto_increment: None,
    }
}

trait TableExt {
    fn pk(self, cols: &[&str]) -> Self;
    fn index(
        self,
        name: &str,
        unique: bool,
        kind: IndexKind,
        cols: &[(&str, Option<u32>, bool)],
    ) -> Self;
    fn fk(self, name: &str, cols: &[&str], parent: TableName, parent_cols: &[&str]) -> Self;
    fn comment(self, c: &str) -> Self;
    fn next_id(self, n: u64) -> Self;
}

impl TableExt for Table {
    fn pk(mut self, cols: &[&str]) -> Self {
        self.primary_key = Some(Key {
            name: Some("PRIMARY".into()),
            columns: cols.iter().map(|c| (*c).to_string()).collect(),
        });
        self
    }
    fn index(
        mut self,
        name: &str,
        unique: bool,
        kind: IndexKind,
        cols: &[(&str, Option<u32>, bool)],
    ) -> Self {
        self.indexes.push(Index {
            name: name.into(),
            unique,
            kind,
            columns: cols
                .iter()
                .map(|(c, prefix, desc)| IndexColumn {
                    name: (*c).into(),
                    prefix_length: *prefix,
                    descending: *desc,
                })
                .collect(),
        });
        self
    }
    fn fk(mut self, name: &str, cols: &[&str], parent: TableName, parent_cols: &[&str]) -> Self {
        self.foreign_keys.push(ForeignKey {
            name: name.into(),
            columns: cols.iter().map(|c| (*c).to_string()).collect(),
            referenced_table: parent,
            referenced_columns: parent_cols.iter().map(|c| (*c).to_string()).collect(),
            on_delete: ReferentialAction::Cascade,
            on_update: ReferentialAction::NoAction,
        });
        self
    }
    fn comment(mut self, c: &str) -> Self {
        self.comment = Some(c.into());
        self
    }
    fn next_id(mut self, n: u64) -> Self {
        self.auto_increment = Some(n);
        self
    }
}

fn catalog(tables: Vec<Table>) -> Catalog {
    let mut schemas: Vec<Schema> = Vec::new();
    for t in tables {
        match schemas.iter_mut().find(|s| s.name == t.name.schema) {
            Some(s) => s.tables.push(t),
            None => schemas.push(Schema {
                name: t.name.schema.clone(),
                tables: vec![t],
            }),
        }
    }
    Catalog {
        schemas,
        types: Vec::new(),
        omitted_indexes: Vec::new(),
    }
}

fn find<'p>(plan: &'p SchemaPlan, kind: StatementKind, object: &str) -> &'p Statement {
    plan.statements()
        .find(|s| s.kind == kind && s.object == object)
        .unwrap_or_else(|| {
            panic!(
                "no {kind} statement for `{object}` in\n{}",
                plan.to_script()
            )
        })
}

fn problem<'p>(plan: &'p SchemaPlan, needle: &str) -> &'p crate::Problem {
    plan.problems
        .iter()
        .find(|p| p.message.contains(needle))
        .unwrap_or_else(|| panic!("no problem mentioning `{needle}` in {:#?}", plan.problems))
}

fn shop() -> TableName {
    TableName::new("shop", "order")
}

// --- fixtures -----------------------------------------------------------------------------

/// A table with a column of every type family and defaults of every kind.
fn everything() -> Table {
    table(
        "shop",
        "everything",
        vec![
            col("id", "int(11)").auto(),
            col("tiny", "tinyint(4)").literal("-5"),
            col("small_u", "smallint(5) unsigned").literal("+7"),
            col("medium", "mediumint(9)"),
            col("int_u", "int(10) unsigned").literal("NULL"),
            col("big", "bigint(20)").literal("b'101'"),
            col("price", "decimal(10,2)").not_null().literal("1.50"),
            col("f", "float").literal("1e20"),
            col("d", "double"),
            col("bits", "bit(3)").literal("b'101'"),
            col("code", "char(4)").literal("it's"),
            col("name", "varchar(20)").not_null().literal("a'b\\c"),
            col("body", "text"),
            col("bin", "binary(4)").literal("ab"),
            col("vbin", "varbinary(8)"),
            col("blob", "blob"),
            col("born", "date").literal("2020-01-01"),
            col("zero_day", "date").literal("0000-00-00"),
            col("created", "datetime(6)").not_null().now(6),
            col("updated", "timestamp").not_null().now(0).on_update(),
            col("fixed_ts", "timestamp").literal("2020-01-01 00:00:00"),
            col("zero_dt", "datetime").literal("0000-00-00 00:00:00"),
            col("at", "time").literal("12:30:00"),
            col("year", "year(4)").literal("2024"),
            col("zero_year", "year(4)").literal("0000"),
            col("state", "enum('a','b')").literal("b"),
            col("tags", "set('x','y')"),
            col("doc", "json").literal("{\"a\": 1}"),
            col("uid", "varchar(40)").expression("uuid()"),
            col("three", "int(11)").expression("(1 + 2)"),
            col("bad_default", "int(11)").expression("sha2('x', 256)"),
            col("not_number", "int(11)").literal("abc"),
        ],
    )
    .pk(&["id"])
    .next_id(42)
}

/// A reserved-word table with a reserved-word column.
fn order_table() -> Table {
    table(
        "shop",
        "order",
        vec![
            col("id", "int(11)").auto(),
            col("select", "varchar(10)")
                .not_null()
                .comment("it's \"chosen\""),
            col("user", "int(11)"),
            col("created", "datetime").not_null(),
        ],
    )
    .pk(&["id"])
    .index(
        "idx_created",
        false,
        IndexKind::BTree,
        &[("created", None, true)],
    )
    .index(
        "uq_select",
        true,
        IndexKind::BTree,
        &[("select", None, false)],
    )
    .comment("customer's orders")
}

fn line_items() -> Table {
    table(
        "shop",
        "line_items",
        vec![
            col("order_id", "int(11)").not_null(),
            col("line_no", "smallint(6)").not_null(),
            col("note", "text").collation("utf8mb4_general_ci"),
            col("payload", "blob"),
            col("customer_id", "int(11)"),
            col("created", "datetime"),
            col("sku", "varchar(20)").collation("utf8mb4_general_ci"),
        ],
    )
    .pk(&["order_id", "line_no"])
    .index(
        "idx_created",
        false,
        IndexKind::BTree,
        &[("created", None, false)],
    )
    .index(
        "idx_note",
        false,
        IndexKind::BTree,
        &[("note", Some(10), false), ("payload", Some(4), true)],
    )
    .index(
        "uq_sku",
        true,
        IndexKind::BTree,
        &[("sku", Some(20), false)],
    )
    .index("h_sku", false, IndexKind::Hash, &[("sku", None, false)])
    .index(
        "ft_note",
        false,
        IndexKind::FullText,
        &[("note", None, false), ("sku", None, false)],
    )
    .fk("fk_order", &["order_id"], shop(), &["id"])
    .fk(
        "fk_customer",
        &["customer_id"],
        TableName::new("shop", "customers"),
        &["id"],
    )
}

fn people() -> Table {
    table(
        "shop",
        "people",
        vec![
            col("id", "int(11)").not_null(),
            col("first", "varchar(50)"),
            col("last", "varchar(50)"),
            col("price", "decimal(10,2)"),
            col("qty", "int(11)"),
            col("full_name", "varchar(101)")
                .generated("concat(`first`,' ',`last`)", false)
                .comment("first and last"),
            col("total", "decimal(10,2)").generated("`price` * `qty`", true),
            col("hashed", "varchar(64)").generated("sha2(`first`,256)", true),
            col("touched", "timestamp").not_null().now(0).on_update(),
        ],
    )
    .pk(&["id"])
    .index(
        "idx_total",
        false,
        IndexKind::BTree,
        &[("total", None, false)],
    )
}

fn events() -> Table {
    table(
        "shop",
        "events",
        vec![
            col("id", "bigint(20) unsigned").auto(),
            col("kind", "varchar(10)"),
        ],
    )
    .pk(&["id"])
    .next_id(1001)
}

fn places() -> Table {
    table(
        "shop",
        "places",
        vec![
            col("id", "int(11)").not_null(),
            col("location", "geometry").not_null(),
        ],
    )
    .pk(&["id"])
    .index(
        "sp_location",
        false,
        IndexKind::Spatial,
        &[("location", None, false)],
    )
}

fn camel() -> Table {
    table(
        "Shop",
        "CamelTable",
        vec![
            col("CamelId", "int(11)").not_null(),
            col("MixedName", "varchar(10)"),
        ],
    )
    .pk(&["CamelId"])
    .index(
        "IdxMixed",
        false,
        IndexKind::BTree,
        &[("MixedName", None, false)],
    )
}

fn full_catalog() -> Catalog {
    catalog(vec![
        everything(),
        order_table(),
        line_items(),
        people(),
        events(),
        places(),
    ])
}

// --- tests --------------------------------------------------------------------------------

#[test]
fn reserved_words_are_quoted_everywhere() {
    let plan = plan_mysql_to_pg(&catalog(vec![order_table()]), &SchemaOptions::default());
    assert!(!plan.is_blocked(), "{:#?}", plan.problems);
    assert_eq!(
        plan.pre_data[0].sql,
        r#"CREATE SCHEMA IF NOT EXISTS "shop""#
    );
    let create = find(&plan, StatementKind::Table, "shop.order");
    let expected = format!(
        r#"CREATE TABLE "shop"."order" (
    "id" {int} NOT NULL GENERATED BY DEFAULT AS IDENTITY (SEQUENCE NAME "shop"."order_id_seq"),
    "select" {vc} NOT NULL,
    "user" {int},
    "created" {dt} NOT NULL,
    CONSTRAINT "order_pkey" PRIMARY KEY ("id")
)"#,
        int = PgType::Integer,
        vc = PgType::VarChar(10),
        dt = PgType::Timestamp(0),
    );
    assert_eq!(create.sql, expected);
    assert_eq!(create.table, Some(TableName::new("shop", "order")));
    assert_eq!(
        find(&plan, StatementKind::Comment, "shop.order").sql,
        r#"COMMENT ON TABLE "shop"."order" IS 'customer''s orders'"#
    );
    assert_eq!(
        find(&plan, StatementKind::Comment, "shop.order.select").sql,
        r#"COMMENT ON COLUMN "shop"."order"."select" IS 'it''s "chosen"'"#
    );
    assert_eq!(
        find(&plan, StatementKind::Index, "shop.order_idx_created").sql,
        r#"CREATE INDEX IF NOT EXISTS "order_idx_created" ON "shop"."order" ("created" DESC)"#
    );
    assert_eq!(
        find(&plan, StatementKind::UniqueIndex, "shop.order_uq_select").sql,
        r#"CREATE UNIQUE INDEX IF NOT EXISTS "order_uq_select" ON "shop"."order" ("select")"#
    );
    assert_eq!(
        find(&plan, StatementKind::SequenceReset, "shop.order.id").sql,
        r#"SELECT setval(pg_get_serial_sequence('"shop"."order"', 'id'), GREATEST(v, 1), v >= 1) FROM (SELECT GREATEST(COALESCE(max("id"), 0), 0)::bigint AS v FROM "shop"."order") AS m"#
    );
    let t = plan.table(&shop()).unwrap();
    assert_eq!(t.chunk_key, Some(vec!["id".to_string()]));
    assert!(t.columns.iter().all(|c| c.copied));
    // Every statement is in its phase, pre-data first.
    assert!(plan
        .pre_data
        .iter()
        .all(|s| s.phase == crate::Phase::PreData));
    assert!(plan
        .post_data
        .iter()
        .all(|s| s.phase == crate::Phase::PostData));
}

#[test]
fn defaults_of_every_kind() {
    let plan = plan_mysql_to_pg(&catalog(vec![everything()]), &SchemaOptions::default());
    let sql = &find(&plan, StatementKind::Table, "shop.everything").sql;
    let has = |line: &str| assert!(sql.contains(line), "missing `{line}` in\n{sql}");
    has(
        r#""id" integer NOT NULL GENERATED BY DEFAULT AS IDENTITY (SEQUENCE NAME "shop"."everything_id_seq"),"#,
    );
    has(r#""tiny" smallint DEFAULT -5,"#);
    has(r#""small_u" integer DEFAULT 7,"#);
    has(r#""int_u" bigint,"#);
    has(r#""big" bigint DEFAULT 5,"#);
    has(&format!(
        r#""price" {} NOT NULL DEFAULT 1.50,"#,
        PgType::Numeric {
            precision: 10,
            scale: 2
        }
    ));
    has(r#""f" real DEFAULT 1e20,"#);
    has(r#""bits" bit(3) DEFAULT B'101',"#);
    has(&format!(
        r#""code" {} DEFAULT 'it''s',"#,
        PgType::VarChar(4)
    ));
    has(&format!(
        r#""name" {} NOT NULL DEFAULT E'a''b\\c',"#,
        PgType::VarChar(20)
    ));
    has(r#""bin" bytea DEFAULT E'\\x61620000'::bytea,"#);
    has(r#""born" date DEFAULT '2020-01-01',"#);
    has(r#""zero_day" date,"#);
    has(&format!(
        r#""created" {} NOT NULL DEFAULT LOCALTIMESTAMP(6),"#,
        PgType::Timestamp(6)
    ));
    has(&format!(
        r#""updated" {} NOT NULL DEFAULT CURRENT_TIMESTAMP,"#,
        PgType::TimestampTz(0)
    ));
    has(&format!(
        r#""fixed_ts" {} DEFAULT '2020-01-01 00:00:00+00',"#,
        PgType::TimestampTz(0)
    ));
    has(&format!(r#""zero_dt" {},"#, PgType::Timestamp(0)));
    has(" DEFAULT '12:30:00',");
    has(r#""year" smallint DEFAULT 2024,"#);
    has(r#""zero_year" smallint DEFAULT 0,"#);
    has(r#" DEFAULT 'b',"#);
    has(r#""doc" jsonb DEFAULT '{"a": 1}'::jsonb,"#);
    has(r#" DEFAULT gen_random_uuid()::text,"#);
    has(r#""three" integer DEFAULT (1 + 2),"#);
    has(r#""bad_default" integer,"#);

    let zero = problem(&plan, "`0000-00-00`");
    assert!(!zero.blocking);
    assert_eq!(zero.object, "shop.everything.zero_day");
    assert_eq!(
        zero.message,
        "default `0000-00-00` of column `shop.everything.zero_day` is dropped: PostgreSQL has no zero date"
    );
    assert!(!problem(&plan, "`0000-00-00 00:00:00`").blocking);
    let bad = problem(&plan, "shop.everything.bad_default");
    assert!(bad.blocking);
    assert!(
        bad.message.contains("function `sha2` has no translation"),
        "{}",
        bad.message
    );
    let nan = problem(&plan, "shop.everything.not_number");
    assert!(nan.blocking);
    assert!(nan.message.ends_with("not a number"), "{}", nan.message);

    // The sequence continues past the source's counter (next id 42).
    assert!(
        find(&plan, StatementKind::SequenceReset, "shop.everything.id")
            .sql
            .contains("GREATEST(COALESCE(max(\"id\"), 0), 41)::bigint")
    );
    // ON UPDATE CURRENT_TIMESTAMP on a table without generated columns.
    let function = find(&plan, StatementKind::Trigger, "shop.everything_on_update()");
    assert_eq!(
        function.sql,
        r#"CREATE OR REPLACE FUNCTION "shop"."everything_on_update"() RETURNS trigger LANGUAGE plpgsql AS $dts$
BEGIN
    IF current_setting('dts.applying', true) = 'on' THEN
        RETURN NEW;
    END IF;
    IF NEW IS DISTINCT FROM OLD AND NEW."updated" IS NOT DISTINCT FROM OLD."updated" THEN
        NEW."updated" := CURRENT_TIMESTAMP;
    END IF;
    RETURN NEW;
END
$dts$"#
    );
    assert_eq!(
        find(
            &plan,
            StatementKind::Trigger,
            "shop.everything.everything_on_update"
        )
        .sql,
        r#"CREATE OR REPLACE TRIGGER "everything_on_update" BEFORE UPDATE ON "shop"."everything" FOR EACH ROW EXECUTE FUNCTION "shop"."everything_on_update"()"#
    );
}

#[test]
fn mapping_checks_become_named_constraints() {
    let plan = plan_mysql_to_pg(&catalog(vec![everything()]), &SchemaOptions::default());
    let t = plan.table(&TableName::new("shop", "everything")).unwrap();
    let sql = &find(&plan, StatementKind::Table, "shop.everything").sql;
    let mut checks = 0;
    for c in &t.columns {
        if let Some(check) = c.mapping.as_ref().and_then(|m| m.check.as_ref()) {
            checks += 1;
            let name = format!("everything_{}_check", c.target_name);
            let expected = format!(
                "CONSTRAINT \"{name}\" CHECK ({})",
                check.replace("{col}", &format!("\"{}\"", c.target_name))
            );
            assert!(sql.contains(&expected), "missing `{expected}` in\n{sql}");
        }
    }
    assert!(
        checks > 0,
        "the fixture should exercise at least one mapping check"
    );
    assert!(!sql.contains("{col}"));
}

#[test]
fn composite_keys_prefix_hash_fulltext_and_foreign_keys() {
    let plan = plan_mysql_to_pg(&full_catalog(), &SchemaOptions::default());
    let create = &find(&plan, StatementKind::Table, "shop.line_items").sql;
    assert!(create.contains(r#"CONSTRAINT "line_items_pkey" PRIMARY KEY ("order_id", "line_no")"#));
    assert_eq!(
        plan.table(&TableName::new("shop", "line_items"))
            .unwrap()
            .chunk_key,
        Some(vec!["order_id".to_string(), "line_no".to_string()])
    );
    assert_eq!(
        find(&plan, StatementKind::Index, "shop.line_items_idx_note").sql,
        r#"CREATE INDEX IF NOT EXISTS "line_items_idx_note" ON "shop"."line_items" ((left("note", 10)), (substring("payload" from 1 for 4)) DESC)"#
    );
    // A prefix as long as the column is the whole column.
    assert_eq!(
        find(&plan, StatementKind::UniqueIndex, "shop.line_items_uq_sku").sql,
        r#"CREATE UNIQUE INDEX IF NOT EXISTS "line_items_uq_sku" ON "shop"."line_items" ("sku")"#
    );
    assert!(
        !problem(
            &plan,
            "unique index `uq_sku` of `shop.line_items` compares `sku`"
        )
        .blocking
    );
    assert_eq!(
        find(&plan, StatementKind::Index, "shop.line_items_h_sku").sql,
        r#"CREATE INDEX IF NOT EXISTS "line_items_h_sku" ON "shop"."line_items" USING hash ("sku")"#
    );
    assert_eq!(
        find(&plan, StatementKind::Index, "shop.line_items_ft_note").sql,
        r#"CREATE INDEX IF NOT EXISTS "line_items_ft_note" ON "shop"."line_items" USING gin (to_tsvector('simple', coalesce("note", '') || ' ' || coalesce("sku", '')))"#
    );
    assert!(!problem(&plan, "fulltext index `ft_note`").blocking);
    // Same MySQL index name on two tables: distinct PostgreSQL names.
    find(&plan, StatementKind::Index, "shop.order_idx_created");
    find(&plan, StatementKind::Index, "shop.line_items_idx_created");

    assert_eq!(
        find(&plan, StatementKind::ForeignKey, "shop.line_items.fk_order").sql,
        r#"ALTER TABLE "shop"."line_items" ADD CONSTRAINT "fk_order" FOREIGN KEY ("order_id") REFERENCES "shop"."order" ("id") ON DELETE CASCADE ON UPDATE NO ACTION"#
    );
    let missing = problem(&plan, "fk_customer");
    assert!(missing.blocking);
    assert_eq!(missing.object, "shop.line_items.fk_customer");
    assert_eq!(
        missing.message,
        "foreign key `fk_customer` of `shop.line_items` references table `shop.customers` which is not selected"
    );
    assert!(!plan.statements().any(|s| s.sql.contains("fk_customer")));

    // Post-data order: generated columns, unique indexes, indexes, foreign keys, triggers,
    // sequences.
    let rank = |k: StatementKind| match k {
        StatementKind::GeneratedColumn | StatementKind::Comment | StatementKind::PrimaryKey => 0,
        StatementKind::UniqueIndex => 1,
        StatementKind::Index => 2,
        StatementKind::ForeignKey => 3,
        StatementKind::Trigger => 4,
        _ => 5,
    };
    let ranks: Vec<u8> = plan.post_data.iter().map(|s| rank(s.kind)).collect();
    assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "{ranks:?}");
}

#[test]
fn unsupported_types_and_spatial_indexes_are_blocking() {
    let plan = plan_mysql_to_pg(&full_catalog(), &SchemaOptions::default());
    let geo = problem(&plan, "geometry");
    assert!(geo.blocking);
    assert_eq!(geo.object, "shop.places.location");
    assert_eq!(
        geo.message,
        "unsupported type `geometry` for column `shop.places.location`"
    );
    let t = plan.table(&TableName::new("shop", "places")).unwrap();
    assert!(t.column("location").is_none());
    assert!(t.column("id").is_some());
    let spatial = problem(&plan, "spatial index `sp_location`");
    assert!(spatial.blocking);
    assert!(plan.is_blocked());
}

#[test]
fn generated_columns_are_added_after_the_copy() {
    let plan = plan_mysql_to_pg(&catalog(vec![people()]), &SchemaOptions::default());
    let t = plan.table(&TableName::new("shop", "people")).unwrap();
    assert!(!t.column("full_name").unwrap().copied);
    assert!(!t.column("total").unwrap().copied);
    assert!(t.column("first").unwrap().copied);
    assert_eq!(t.copied_columns().count(), 6);
    let create = &find(&plan, StatementKind::Table, "shop.people").sql;
    assert!(!create.contains("full_name"));
    assert!(!create.contains("\"total\""));

    assert_eq!(
        find(
            &plan,
            StatementKind::GeneratedColumn,
            "shop.people.full_name"
        )
        .sql,
        format!(
            r#"ALTER TABLE "shop"."people" ADD COLUMN IF NOT EXISTS "full_name" {} GENERATED ALWAYS AS ("first" || ' ' || "last") STORED"#,
            PgType::VarChar(101)
        )
    );
    assert_eq!(
        find(&plan, StatementKind::GeneratedColumn, "shop.people.total").sql,
        format!(
            r#"ALTER TABLE "shop"."people" ADD COLUMN IF NOT EXISTS "total" {} GENERATED ALWAYS AS ("price" * "qty") STORED"#,
            PgType::Numeric {
                precision: 10,
                scale: 2
            }
        )
    );
    assert_eq!(
        find(&plan, StatementKind::Comment, "shop.people.full_name").phase,
        crate::Phase::PostData
    );
    let virt = problem(&plan, "virtual generated column `shop.people.full_name`");
    assert!(!virt.blocking);
    let bad = problem(&plan, "shop.people.hashed");
    assert!(bad.blocking);
    assert_eq!(
        bad.message,
        "generation expression `sha2(`first`,256)` of column `shop.people.hashed` cannot be translated: function `sha2` has no translation (in `sha2(`first`,256)`)"
    );
    // The index on a generated column comes after the column.
    let pos = |object: &str| {
        plan.post_data
            .iter()
            .position(|s| s.object == object)
            .unwrap()
    };
    assert!(pos("shop.people.total") < pos("shop.people_idx_total"));
    // With generated columns, the trigger compares the stored columns only.
    let function = &find(&plan, StatementKind::Trigger, "shop.people_on_update()").sql;
    assert!(function.contains(
        r#"IF ROW(NEW."id", NEW."first", NEW."last", NEW."price", NEW."qty", NEW."touched") IS DISTINCT FROM ROW(OLD."id", OLD."first", OLD."last", OLD."price", OLD."qty", OLD."touched") AND NEW."touched" IS NOT DISTINCT FROM OLD."touched" THEN"#
    ), "{function}");
}

#[test]
fn unsigned_bigint_auto_increment_uses_an_owned_sequence() {
    let plan = plan_mysql_to_pg(&catalog(vec![events()]), &SchemaOptions::default());
    assert!(!plan.is_blocked(), "{:#?}", plan.problems);
    let kinds: Vec<(StatementKind, &str)> = plan
        .pre_data
        .iter()
        .map(|s| (s.kind, s.sql.as_str()))
        .collect();
    assert_eq!(
        kinds[1],
        (
            StatementKind::Sequence,
            r#"CREATE SEQUENCE "shop"."events_id_seq""#
        )
    );
    assert_eq!(kinds[2].0, StatementKind::Table);
    assert!(kinds[2].1.contains(&format!(
        r#""id" {} NOT NULL DEFAULT nextval('"shop"."events_id_seq"'::regclass)"#,
        PgType::Numeric {
            precision: 20,
            scale: 0
        }
    )));
    assert_eq!(
        kinds[3],
        (
            StatementKind::Sequence,
            r#"ALTER SEQUENCE "shop"."events_id_seq" OWNED BY "shop"."events"."id""#
        )
    );
    assert_eq!(
        find(&plan, StatementKind::SequenceReset, "shop.events.id").sql,
        r#"SELECT setval(pg_get_serial_sequence('"shop"."events"', 'id'), GREATEST(v, 1), v >= 1) FROM (SELECT GREATEST(COALESCE(max("id"), 0), 1000)::bigint AS v FROM "shop"."events") AS m"#
    );
    assert_eq!(plan.statements_of(StatementKind::SequenceReset).count(), 1);
}

#[test]
fn case_policy_lower_and_keep() {
    let cat = catalog(vec![camel()]);
    let lower = plan_mysql_to_pg(&cat, &SchemaOptions::default());
    let t = &lower.tables[0];
    assert_eq!(t.target, TableName::new("shop", "cameltable"));
    assert_eq!(t.columns[0].target_name, "camelid");
    assert_eq!(
        lower.pre_data[0].sql,
        r#"CREATE SCHEMA IF NOT EXISTS "shop""#
    );
    let create = &find(&lower, StatementKind::Table, "shop.cameltable").sql;
    assert!(create.starts_with(r#"CREATE TABLE "shop"."cameltable" ("#));
    assert!(create.contains(r#"CONSTRAINT "cameltable_pkey" PRIMARY KEY ("camelid")"#));
    find(&lower, StatementKind::Index, "shop.cameltable_idxmixed");

    let keep = plan_mysql_to_pg(
        &cat,
        &SchemaOptions::default().with_case(IdentifierCase::Keep),
    );
    let t = &keep.tables[0];
    assert_eq!(t.target, TableName::new("Shop", "CamelTable"));
    assert_eq!(t.columns[1].target_name, "MixedName");
    let create = &find(&keep, StatementKind::Table, "Shop.CamelTable").sql;
    assert!(create.contains(r#""CamelId" integer NOT NULL"#), "{create}");
    assert!(create.contains(r#"CONSTRAINT "CamelTable_pkey" PRIMARY KEY ("CamelId")"#));
    assert_eq!(
        find(&keep, StatementKind::Index, "Shop.CamelTable_IdxMixed").sql,
        r#"CREATE INDEX IF NOT EXISTS "CamelTable_IdxMixed" ON "Shop"."CamelTable" ("MixedName")"#
    );
}

#[test]
fn renames_reach_every_reference() {
    let opts = SchemaOptions::default()
        .rename_schema("shop", "Store")
        .rename_table(shop(), "orders")
        .rename_column(shop(), "id", "order_pk");
    let plan = plan_mysql_to_pg(&full_catalog(), &opts);
    assert_eq!(
        opts.target_table(&shop()),
        TableName::new("Store", "orders")
    );
    assert_eq!(opts.target_column(&shop(), "id"), "order_pk");
    let fk = &find(
        &plan,
        StatementKind::ForeignKey,
        "Store.line_items.fk_order",
    )
    .sql;
    assert!(
        fk.contains(r#"REFERENCES "Store"."orders" ("order_pk")"#),
        "{fk}"
    );
    let create = &find(&plan, StatementKind::Table, "Store.orders").sql;
    assert!(create.contains(r#"CONSTRAINT "orders_pkey" PRIMARY KEY ("order_pk")"#));
    assert!(
        find(&plan, StatementKind::SequenceReset, "Store.orders.order_pk")
            .sql
            .contains(r#"pg_get_serial_sequence('"Store"."orders"', 'order_pk')"#)
    );
}

#[test]
fn colliding_names_are_blocking_and_index_names_are_made_unique() {
    let cat = catalog(vec![
        table("shop", "Users", vec![col("id", "int(11)")]),
        table(
            "shop",
            "users",
            vec![col("Name", "varchar(5)"), col("name", "varchar(5)")],
        ),
        table("shop", "a", vec![col("x", "int(11)")]).index(
            "b_c",
            false,
            IndexKind::BTree,
            &[("x", None, false)],
        ),
        table("shop", "a_b", vec![col("x", "int(11)")]).index(
            "c",
            false,
            IndexKind::BTree,
            &[("x", None, false)],
        ),
        table("shop", "t", vec![col("id", "int(11)").not_null()]).pk(&["id"]),
        table("shop", "t_pkey", vec![col("id", "int(11)")]),
    ]);
    let plan = plan_mysql_to_pg(&cat, &SchemaOptions::default());
    let tables = problem(&plan, "both map to `shop.users`");
    assert!(tables.blocking);
    assert_eq!(
        tables.message,
        "tables `shop.Users` and `shop.users` both map to `shop.users` in the target"
    );
    let cols = problem(&plan, "both map to `name`");
    assert!(cols.blocking);
    assert_eq!(
        cols.message,
        "columns `shop.users.Name` and `shop.users.name` both map to `name` in the target"
    );
    find(&plan, StatementKind::Index, "shop.a_b_c");
    find(&plan, StatementKind::Index, "shop.a_b_c1");
    // The primary key's index does not take the name of another table.
    let create = &find(&plan, StatementKind::Table, "shop.t").sql;
    assert!(
        create.contains(r#"CONSTRAINT "t_pkey1" PRIMARY KEY ("id")"#),
        "{create}"
    );
}

#[test]
fn long_names_are_cut_with_a_hash_and_reported() {
    let long_table = "t".repeat(70);
    let long_col = format!("{}_a", "c".repeat(68));
    let long_col2 = format!("{}_b", "c".repeat(68));
    let cat = catalog(vec![table(
        "shop",
        &long_table,
        vec![
            col(&long_col, "int(11)").not_null(),
            col(&long_col2, "int(11)"),
        ],
    )
    .pk(&[long_col.as_str()])]);
    let plan = plan_mysql_to_pg(&cat, &SchemaOptions::default());
    assert!(!plan.is_blocked(), "{:#?}", plan.problems);
    let t = &plan.tables[0];
    assert_eq!(t.target.name.len(), 63);
    assert!(t.target.name.starts_with(&"t".repeat(54)));
    assert_eq!(t.columns[0].target_name.len(), 63);
    assert_ne!(t.columns[0].target_name, t.columns[1].target_name);
    let note = problem(&plan, "table name");
    assert!(!note.blocking);
    assert!(note.message.contains("longer than 63 bytes"));
    assert_eq!(
        plan.problems
            .iter()
            .filter(|p| p.message.starts_with("column name"))
            .count(),
        2
    );
    let create = &find(&plan, StatementKind::Table, &t.target.to_string()).sql;
    let pkey = create
        .lines()
        .find(|l| l.contains("PRIMARY KEY"))
        .unwrap()
        .trim()
        .to_string();
    let name = pkey.split('"').nth(1).unwrap();
    assert!(name.len() <= 63, "{name}");
    assert!(plan.statements().all(|s| s
        .sql
        .split('"')
        .skip(1)
        .step_by(2)
        .all(|ident| ident.len() <= 63)));
}

#[test]
fn foreign_keys_need_a_unique_parent_key() {
    let parent = table(
        "s",
        "parent",
        vec![col("id", "int(11)").not_null(), col("code", "int(11)")],
    )
    .pk(&["id"]);
    let child = table(
        "s",
        "child",
        vec![col("pid", "int(11)"), col("pcode", "int(11)")],
    )
    .fk("fk_id", &["pid"], TableName::new("s", "parent"), &["id"])
    .fk(
        "fk_code",
        &["pcode"],
        TableName::new("s", "parent"),
        &["code"],
    );
    let plan = plan_mysql_to_pg(&catalog(vec![parent, child]), &SchemaOptions::default());
    find(&plan, StatementKind::ForeignKey, "s.child.fk_id");
    let p = problem(&plan, "fk_code");
    assert!(p.blocking);
    assert!(
        p.message.contains("no primary key or unique index"),
        "{}",
        p.message
    );
}

#[test]
fn primary_key_on_a_generated_column_is_added_after_it() {
    let t = table(
        "s",
        "g",
        vec![
            col("a", "int(11)").not_null(),
            col("b", "int(11)").not_null().generated("`a` + 1", true),
        ],
    )
    .pk(&["b"]);
    let plan = plan_mysql_to_pg(&catalog(vec![t]), &SchemaOptions::default());
    let create = &find(&plan, StatementKind::Table, "s.g").sql;
    assert!(!create.contains("PRIMARY KEY"));
    assert_eq!(
        find(&plan, StatementKind::PrimaryKey, "s.g.g_pkey").sql,
        r#"CREATE UNIQUE INDEX IF NOT EXISTS "g_pkey" ON "s"."g" ("b"); ALTER TABLE "s"."g" ADD CONSTRAINT "g_pkey" PRIMARY KEY USING INDEX "g_pkey""#
    );
    let pos = |k: StatementKind| plan.post_data.iter().position(|s| s.kind == k).unwrap();
    assert!(pos(StatementKind::GeneratedColumn) < pos(StatementKind::PrimaryKey));
    assert!(find(&plan, StatementKind::GeneratedColumn, "s.g.b")
        .sql
        .contains(r#"NOT NULL GENERATED ALWAYS AS ("a"::bigint + 1) STORED"#));
}

#[test]
fn empty_catalog_and_script() {
    let plan = plan_mysql_to_pg(&Catalog::default(), &SchemaOptions::default());
    assert!(plan.tables.is_empty() && plan.pre_data.is_empty() && plan.post_data.is_empty());
    assert_eq!(plan.to_script(), "-- pre-data\n-- post-data\n");
    let plan = plan_mysql_to_pg(&full_catalog(), &SchemaOptions::default());
    let script = plan.to_script();
    assert!(script.starts_with("-- pre-data\nCREATE SCHEMA IF NOT EXISTS \"shop\";\n"));
    assert_eq!(plan.tables.len(), 6);
}
