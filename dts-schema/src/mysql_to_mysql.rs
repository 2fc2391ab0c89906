//! The MySQL/MariaDB → MySQL/MariaDB planner: the target gets every table as the source has
//! it.
//!
//! Nothing is translated: column types (as `COLUMN_TYPE` prints them, `ENUM`/`SET` members
//! included), character sets and collations, defaults, `AUTO_INCREMENT` (the column and the
//! table's counter), `ON UPDATE CURRENT_TIMESTAMP`, generated columns, MariaDB's JSON checks,
//! comments, indexes (prefix lengths, descending parts, full-text and spatial) and foreign
//! key actions are written back as the source's `information_schema` shows them.
//!
//! Names are kept as they are (the identifier case policy does not apply), apart from
//! renamed databases and tables: nothing copied verbatim names a database or a table (a
//! generated column's expression names only columns of its own table; foreign keys are
//! written with the target names). Renamed columns would leave those expressions naming
//! the old columns, so column renames are refused as a blocking problem.
//!
//! The primary key is created with the table (InnoDB stores rows in key order, so the copy
//! loads into it), as is an index an `AUTO_INCREMENT` column needs to be a key when the
//! primary key does not start with it; the other indexes and the foreign keys come after the
//! data, and then the `AUTO_INCREMENT` counter is set again (a table rebuilt to add an index
//! may have moved it; the server keeps it past the copied maximum).

use std::collections::BTreeSet;

use dts_core::{Column, ColumnDefault, Index, IndexKind, Table, TableName};

use crate::options::SchemaOptions;
use crate::plan::{Phase, Problem, SchemaPlan, Statement, StatementKind, TablePlan};
use dts_core::Catalog;

/// Quotes a MySQL identifier with backquotes.
pub fn quote_mysql_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Quotes a MySQL string literal, valid in a session without `NO_BACKSLASH_ESCAPES` (the
/// MySQL target's sessions set their `sql_mode` so): quotes doubled, backslashes and the
/// control characters the server reads as escapes escaped.
pub fn quote_mysql_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\x1a' => out.push_str("\\Z"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn qualified(name: &TableName) -> String {
    format!(
        "{}.{}",
        quote_mysql_ident(&name.schema),
        quote_mysql_ident(&name.name)
    )
}

fn idents(names: &[String]) -> String {
    names
        .iter()
        .map(|n| quote_mysql_ident(n))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Plans a MySQL/MariaDB catalog into a MySQL/MariaDB target, keeping every table as it is.
///
/// Pre-data: databases (`CREATE DATABASE IF NOT EXISTS`), then each table with its columns,
/// primary key, the `AUTO_INCREMENT` counter and comments. Post-data: secondary indexes,
/// then foreign keys with their actions, then the `AUTO_INCREMENT` counters again.
///
/// Never panics: what cannot be planned (renames, a foreign key to a table that is not
/// selected) is a [`Problem`].
pub fn plan_mysql_to_mysql(catalog: &Catalog, opts: &SchemaOptions) -> SchemaPlan {
    let mut plan = SchemaPlan::default();
    renames(opts, &mut plan.problems);

    let mut schemas = BTreeSet::new();
    for table in catalog.tables() {
        let schema = target_of(opts, &table.name).schema;
        if schemas.insert(schema.clone()) {
            plan.pre_data.push(Statement::new(
                Phase::PreData,
                StatementKind::Schema,
                None,
                schema.clone(),
                format!(
                    "CREATE DATABASE IF NOT EXISTS {}",
                    quote_mysql_ident(&schema)
                ),
            ));
        }
    }

    let selected: BTreeSet<&TableName> = catalog.tables().map(|t| &t.name).collect();
    let mut indexes = Vec::new();
    let mut foreign_keys = Vec::new();
    let mut counters = Vec::new();
    for table in catalog.tables() {
        let target = target_of(opts, &table.name);
        let q = qualified(&target);
        let inline = inline_indexes(table);
        plan.pre_data.push(Statement::new(
            Phase::PreData,
            StatementKind::Table,
            Some(&target),
            target.to_string(),
            create_table(table, &q, &inline),
        ));
        for index in table.indexes.iter().filter(|i| !inline.contains(&i.name)) {
            indexes.push(Statement::new(
                Phase::PostData,
                if index.unique {
                    StatementKind::UniqueIndex
                } else {
                    StatementKind::Index
                },
                Some(&target),
                format!("{target}.{}", index.name),
                format!("ALTER TABLE {q} ADD {}", index_definition(index)),
            ));
        }
        for fk in &table.foreign_keys {
            let object = format!("{}.{}", table.name, fk.name);
            if !selected.contains(&fk.referenced_table) {
                plan.problems.push(Problem::blocking(
                    object.clone(),
                    format!(
                        "foreign key `{object}` references `{}`, which is not selected",
                        fk.referenced_table
                    ),
                ));
                continue;
            }
            foreign_keys.push(Statement::new(
                Phase::PostData,
                StatementKind::ForeignKey,
                Some(&target),
                format!("{target}.{}", fk.name),
                format!(
                    "ALTER TABLE {q} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}) \
                     ON DELETE {} ON UPDATE {}",
                    quote_mysql_ident(&fk.name),
                    idents(&fk.columns),
                    qualified(&target_of(opts, &fk.referenced_table)),
                    idents(&fk.referenced_columns),
                    fk.on_delete.as_sql(),
                    fk.on_update.as_sql()
                ),
            ));
        }
        if let Some(n) = table.auto_increment {
            counters.push(Statement::new(
                Phase::PostData,
                StatementKind::SequenceReset,
                Some(&target),
                target.to_string(),
                format!("ALTER TABLE {q} AUTO_INCREMENT = {n}"),
            ));
        }
        plan.tables.push(TablePlan::identity(table, target));
    }
    plan.post_data.extend(indexes);
    plan.post_data.extend(foreign_keys);
    plan.post_data.extend(counters);
    plan
}

/// The target name of a source table: renamed as the options say, else as it is.
pub(crate) fn target_of(opts: &SchemaOptions, table: &TableName) -> TableName {
    TableName::new(
        opts.schema_renames
            .get(&table.schema)
            .cloned()
            .unwrap_or_else(|| table.schema.clone()),
        opts.table_renames
            .get(table)
            .cloned()
            .unwrap_or_else(|| table.name.clone()),
    )
}

/// Column renames would leave generated columns' expressions naming the old columns:
/// refused.
fn renames(opts: &SchemaOptions, problems: &mut Vec<Problem>) {
    for (t, c) in opts.column_renames.keys() {
        let object = format!("{t}.{c}");
        problems.push(Problem::blocking(
            object.clone(),
            format!(
                "column `{object}` is renamed, but a MySQL to MySQL migration keeps column \
                 names as they are"
            ),
        ));
    }
}

/// The indexes created with the table: one that makes an `AUTO_INCREMENT` column a key when
/// the primary key does not start with it (the server refuses the table otherwise).
fn inline_indexes(table: &Table) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for column in table.columns.iter().filter(|c| c.auto_increment) {
        let pk_first = table
            .primary_key
            .as_ref()
            .and_then(|k| k.columns.first())
            .is_some_and(|c| *c == column.name);
        if pk_first {
            continue;
        }
        if let Some(index) = table
            .indexes
            .iter()
            .find(|i| i.columns.first().is_some_and(|c| c.name == column.name))
        {
            out.insert(index.name.clone());
        }
    }
    out
}

/// `[UNIQUE|FULLTEXT|SPATIAL] INDEX name (parts) [USING HASH]`.
fn index_definition(index: &Index) -> String {
    let kind = match (index.kind, index.unique) {
        (IndexKind::FullText, _) => "FULLTEXT INDEX",
        (IndexKind::Spatial, _) => "SPATIAL INDEX",
        (_, true) => "UNIQUE INDEX",
        _ => "INDEX",
    };
    let parts: Vec<String> = index
        .columns
        .iter()
        .map(|c| {
            let mut s = quote_mysql_ident(&c.name);
            if let Some(n) = c.prefix_length {
                s.push_str(&format!("({n})"));
            }
            if c.descending {
                s.push_str(" DESC");
            }
            s
        })
        .collect();
    let using = if index.kind == IndexKind::Hash {
        " USING HASH"
    } else {
        ""
    };
    format!(
        "{kind} {} ({}){using}",
        quote_mysql_ident(&index.name),
        parts.join(", ")
    )
}

fn create_table(table: &Table, qualified: &str, inline: &BTreeSet<String>) -> String {
    let mut parts: Vec<String> = table.columns.iter().map(column_definition).collect();
    if let Some(pk) = &table.primary_key {
        parts.push(format!("PRIMARY KEY ({})", idents(&pk.columns)));
    }
    for index in table.indexes.iter().filter(|i| inline.contains(&i.name)) {
        parts.push(index_definition(index));
    }
    let mut sql = format!("CREATE TABLE {qualified} (\n  {}\n)", parts.join(",\n  "));
    if let Some(n) = table.auto_increment {
        sql.push_str(&format!(" AUTO_INCREMENT={n}"));
    }
    if let Some(comment) = &table.comment {
        sql.push_str(&format!(" COMMENT={}", quote_mysql_literal(comment)));
    }
    sql
}

fn column_definition(c: &Column) -> String {
    let mut s = format!("{} {}", quote_mysql_ident(&c.name), c.source_type);
    // MySQL prints a binary string type's character set as `binary`: implied by the type.
    if let Some(charset) = c.charset.as_deref().filter(|cs| *cs != "binary") {
        s.push_str(" CHARACTER SET ");
        s.push_str(charset);
        if let Some(collation) = &c.collation {
            s.push_str(" COLLATE ");
            s.push_str(collation);
        }
    }
    if let Some(g) = &c.generated {
        s.push_str(&format!(
            " GENERATED ALWAYS AS ({}) {}",
            g.expression,
            if g.stored { "STORED" } else { "VIRTUAL" }
        ));
        // MariaDB refuses NULL / NOT NULL on generated columns; their nullability follows.
    } else {
        s.push_str(if c.nullable { " NULL" } else { " NOT NULL" });
        match &c.default {
            None => {}
            Some(ColumnDefault::Literal(v)) => {
                s.push_str(" DEFAULT ");
                if c.source_type.starts_with("bit") && v.starts_with("b'") {
                    s.push_str(v);
                } else {
                    s.push_str(&quote_mysql_literal(v));
                }
            }
            Some(ColumnDefault::CurrentTimestamp(0)) => s.push_str(" DEFAULT CURRENT_TIMESTAMP"),
            Some(ColumnDefault::CurrentTimestamp(n)) => {
                s.push_str(&format!(" DEFAULT CURRENT_TIMESTAMP({n})"));
            }
            Some(ColumnDefault::Expression(e)) => s.push_str(&format!(" DEFAULT ({e})")),
            // A MySQL catalog has no identity columns (AUTO_INCREMENT is separate).
            Some(_) => {}
        }
        if c.on_update_current_timestamp {
            s.push_str(" ON UPDATE ");
            s.push_str(&current_timestamp_of(&c.source_type));
        }
        if c.auto_increment {
            s.push_str(" AUTO_INCREMENT");
        }
    }
    if c.json_checked {
        s.push_str(&format!(
            " CHECK (json_valid({}))",
            quote_mysql_ident(&c.name)
        ));
    }
    if let Some(comment) = &c.comment {
        s.push_str(" COMMENT ");
        s.push_str(&quote_mysql_literal(comment));
    }
    s
}

/// `CURRENT_TIMESTAMP` with the fractional digits of a `datetime(n)` / `timestamp(n)` type.
fn current_timestamp_of(source_type: &str) -> String {
    let fsp = source_type
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .and_then(|(n, _)| n.trim().parse::<u8>().ok())
        .unwrap_or(0);
    if fsp == 0 {
        "CURRENT_TIMESTAMP".to_string()
    } else {
        format!("CURRENT_TIMESTAMP({fsp})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dts_core::{ForeignKey, IndexColumn, Key, ReferentialAction, Schema};

    fn catalog() -> Catalog {
        let mut id = Column::new("id", "int(10) unsigned");
        id.nullable = false;
        id.auto_increment = true;
        let mut name = Column::new("name", "varchar(20)");
        name.charset = Some("latin1".into());
        name.collation = Some("latin1_bin".into());
        name.default = Some(ColumnDefault::Literal("it's \\ new".into()));
        let mut kind = Column::new("kind", "enum('A','b')");
        kind.default = Some(ColumnDefault::Literal("A".into()));
        let mut flags = Column::new("flags", "bit(3)");
        flags.default = Some(ColumnDefault::Literal("b'101'".into()));
        let mut at = Column::new("at", "timestamp(3)");
        at.nullable = false;
        at.default = Some(ColumnDefault::CurrentTimestamp(3));
        at.on_update_current_timestamp = true;
        let mut doubled = Column::new("doubled", "int(11)");
        doubled.generated = Some(dts_core::Generated {
            expression: "`id` * 2".into(),
            stored: true,
        });
        let mut doc = Column::new("doc", "longtext");
        doc.charset = Some("utf8mb4".into());
        doc.collation = Some("utf8mb4_bin".into());
        doc.json_checked = true;
        let parent = Table {
            name: TableName::new("s", "parent"),
            columns: vec![id, name, kind, flags, at, doubled, doc],
            primary_key: Some(Key {
                name: None,
                columns: vec!["id".into()],
            }),
            indexes: vec![Index {
                name: "name_idx".into(),
                unique: true,
                kind: IndexKind::BTree,
                columns: vec![IndexColumn {
                    name: "name".into(),
                    prefix_length: Some(5),
                    descending: true,
                }],
            }],
            foreign_keys: vec![],
            comment: Some("the 'parent'".into()),
            estimated_rows: 0,
            auto_increment: Some(42),
        };
        let mut serial = Column::new("n", "bigint(20)");
        serial.nullable = false;
        serial.auto_increment = true;
        let child = Table {
            name: TableName::new("s", "child"),
            columns: vec![Column::new("a", "int(11)"), serial],
            primary_key: Some(Key {
                name: None,
                columns: vec!["a".into(), "n".into()],
            }),
            indexes: vec![Index {
                name: "n".into(),
                unique: false,
                kind: IndexKind::BTree,
                columns: vec![IndexColumn {
                    name: "n".into(),
                    prefix_length: None,
                    descending: false,
                }],
            }],
            foreign_keys: vec![ForeignKey {
                name: "fk_parent".into(),
                columns: vec!["a".into()],
                referenced_table: TableName::new("s", "parent"),
                referenced_columns: vec!["id".into()],
                on_delete: ReferentialAction::Cascade,
                on_update: ReferentialAction::SetNull,
            }],
            comment: None,
            estimated_rows: 0,
            auto_increment: None,
        };
        Catalog {
            schemas: vec![Schema {
                name: "s".into(),
                tables: vec![child, parent],
            }],
            types: vec![],
            omitted_indexes: Vec::new(),
        }
    }

    #[test]
    fn keeps_every_column_attribute_as_it_is() {
        let plan = plan_mysql_to_mysql(&catalog(), &SchemaOptions::default());
        assert!(plan.problems.is_empty(), "{:?}", plan.problems);
        assert_eq!(plan.pre_data[0].sql, "CREATE DATABASE IF NOT EXISTS `s`");
        let parent = &plan.pre_data[2].sql;
        assert_eq!(
            parent,
            "CREATE TABLE `s`.`parent` (\n  \
             `id` int(10) unsigned NOT NULL AUTO_INCREMENT,\n  \
             `name` varchar(20) CHARACTER SET latin1 COLLATE latin1_bin NULL DEFAULT 'it''s \\\\ new',\n  \
             `kind` enum('A','b') NULL DEFAULT 'A',\n  \
             `flags` bit(3) NULL DEFAULT b'101',\n  \
             `at` timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),\n  \
             `doubled` int(11) GENERATED ALWAYS AS (`id` * 2) STORED,\n  \
             `doc` longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL CHECK (json_valid(`doc`)),\n  \
             PRIMARY KEY (`id`)\n) AUTO_INCREMENT=42 COMMENT='the ''parent'''"
        );
        let copied: Vec<&str> = plan.tables[1]
            .copied_columns()
            .map(|c| c.target_name.as_str())
            .collect();
        assert_eq!(copied, ["id", "name", "kind", "flags", "at", "doc"]);
        assert!(plan
            .tables
            .iter()
            .all(|t| t.columns.iter().all(|c| c.mapping.is_none())));
    }

    #[test]
    fn auto_increment_key_inline_other_indexes_and_foreign_keys_after_the_data() {
        let plan = plan_mysql_to_mysql(&catalog(), &SchemaOptions::default());
        let child = &plan.pre_data[1].sql;
        assert!(
            child.ends_with("PRIMARY KEY (`a`, `n`),\n  INDEX `n` (`n`)\n)"),
            "{child}"
        );
        let post: Vec<&str> = plan.post_data.iter().map(|s| s.sql.as_str()).collect();
        assert_eq!(
            post,
            [
                "ALTER TABLE `s`.`parent` ADD UNIQUE INDEX `name_idx` (`name`(5) DESC)",
                "ALTER TABLE `s`.`child` ADD CONSTRAINT `fk_parent` FOREIGN KEY (`a`) \
                 REFERENCES `s`.`parent` (`id`) ON DELETE CASCADE ON UPDATE SET NULL",
                "ALTER TABLE `s`.`parent` AUTO_INCREMENT = 42",
            ]
        );
    }

    #[test]
    fn databases_and_tables_are_renamed_columns_are_not() {
        let opts = SchemaOptions::default()
            .rename_schema("s", "t")
            .rename_table(TableName::new("s", "parent"), "mother".to_string());
        let plan = plan_mysql_to_mysql(&catalog(), &opts);
        assert!(plan.problems.is_empty(), "{:?}", plan.problems);
        assert_eq!(plan.pre_data[0].sql, "CREATE DATABASE IF NOT EXISTS `t`");
        assert_eq!(plan.tables[1].target, TableName::new("t", "mother"));
        assert!(plan.post_data[1]
            .sql
            .contains("REFERENCES `t`.`mother` (`id`)"));
        // Names keep their case whatever the case policy.
        assert!(plan.pre_data[1].sql.starts_with("CREATE TABLE `t`.`child`"));

        let mut c = catalog();
        c.schemas[0].tables.retain(|t| t.name.name == "child");
        let opts = SchemaOptions::default().rename_column(
            TableName::new("s", "child"),
            "a".to_string(),
            "b".to_string(),
        );
        let plan = plan_mysql_to_mysql(&c, &opts);
        let messages: Vec<&str> = plan.problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(messages[0].contains("keeps column names as they are"));
        assert!(messages[1].contains("which is not selected"));
        assert!(plan.is_blocked());
    }

    #[test]
    fn literals_are_quoted_for_backslash_escapes() {
        assert_eq!(quote_mysql_literal("a'b\\c\0\n"), "'a''b\\\\c\\0\\n'");
        assert_eq!(quote_mysql_ident("we`ird"), "`we``ird`");
    }
}
