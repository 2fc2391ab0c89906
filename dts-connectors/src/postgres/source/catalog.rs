//! The schema of a PostgreSQL source, read from the system catalogs.

use std::collections::BTreeMap;

use dts_core::{
    Catalog, Column, ColumnDefault, ForeignKey, Generated, Index, IndexColumn, IndexKind, Key,
    OmittedIndex, ReferentialAction, Result, Schema, Table, TableName, UserType, UserTypeKind,
};
use tokio_postgres::Client;

use crate::postgres::error::map_error;

/// Tables of the named schemas: ordinary and partitioned tables, partitions left out.
const SELECT_TABLES: &str = "\
    SELECT c.oid, n.nspname::text, c.relname::text, obj_description(c.oid, 'pg_class'), \
           GREATEST(c.reltuples, 0)::int8 \
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
    WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
    ORDER BY 2, 3";

/// Columns: type as `format_type` prints it (qualified outside `pg_catalog`, since the
/// session's `search_path` is `pg_catalog`), default, identity, generation, a collation
/// other than the type's, comment.
const SELECT_COLUMNS: &str = "\
    SELECT a.attrelid, a.attname::text, a.attnum::int4, format_type(a.atttypid, a.atttypmod), \
           a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, \
           a.attgenerated::text, \
           CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation THEN \
                CASE WHEN cn.nspname = 'pg_catalog' THEN quote_ident(co.collname) \
                     ELSE quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END \
           END, \
           col_description(a.attrelid, a.attnum) \
    FROM pg_attribute a \
    JOIN pg_type t ON t.oid = a.atttypid \
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
    LEFT JOIN pg_collation co ON co.oid = a.attcollation \
    LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace \
    WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped \
    ORDER BY a.attrelid, a.attnum";

/// Indexes with their key columns (0 for an expression), sort options, access method and
/// the constraint they back.
const SELECT_INDEXES: &str = "\
    SELECT i.indrelid, ic.relname::text, i.indisprimary, i.indisunique, am.amname::text, \
           i.indnatts::int4, i.indnkeyatts::int4, i.indexprs IS NOT NULL, \
           i.indpred IS NOT NULL, i.indkey::int2[], i.indoption::int2[], \
           ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o) \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n \
                 ORDER BY k.o), \
           con.conname::text, con.contype::text, pg_get_indexdef(i.indexrelid) \
    FROM pg_index i \
    JOIN pg_class ic ON ic.oid = i.indexrelid \
    JOIN pg_am am ON am.oid = ic.relam \
    LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid \
                               AND con.contype IN ('p', 'u', 'x') \
    WHERE i.indrelid = ANY($1) \
    ORDER BY i.indrelid, ic.relname";

/// Foreign keys with their columns in key order and their actions.
const SELECT_FOREIGN_KEYS: &str = "\
    SELECT con.conrelid, con.conname::text, rn.nspname::text, rc.relname::text, \
           ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, o) \
                 JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n \
                 ORDER BY k.o), \
           ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, o) \
                 JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n \
                 ORDER BY k.o), \
           con.confdeltype::text, con.confupdtype::text \
    FROM pg_constraint con \
    JOIN pg_class rc ON rc.oid = con.confrelid \
    JOIN pg_namespace rn ON rn.oid = rc.relnamespace \
    WHERE con.contype = 'f' AND con.conrelid = ANY($1) \
    ORDER BY con.conrelid, con.conname";

/// Enums and domains of the named schemas, in creation (OID) order: a domain comes after
/// the type it is over. Array types and types of extensions are left out.
const SELECT_TYPES: &str = "\
    SELECT t.oid, n.nspname::text, t.typname::text, t.typtype::text, \
           ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid \
                 ORDER BY e.enumsortorder), \
           CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END, \
           CASE WHEN t.typcollation <> 0 AND t.typcollation <> bt.typcollation THEN \
                CASE WHEN cn.nspname = 'pg_catalog' THEN quote_ident(co.collname) \
                     ELSE quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END \
           END, \
           pg_get_expr(t.typdefaultbin, 0), t.typnotnull, \
           ARRAY(SELECT c.conname::text FROM pg_constraint c \
                 WHERE c.contypid = t.oid AND c.contype = 'c' ORDER BY c.conname), \
           ARRAY(SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c \
                 WHERE c.contypid = t.oid AND c.contype = 'c' ORDER BY c.conname), \
           obj_description(t.oid, 'pg_type') \
    FROM pg_type t \
    JOIN pg_namespace n ON n.oid = t.typnamespace \
    LEFT JOIN pg_type bt ON bt.oid = t.typbasetype \
    LEFT JOIN pg_collation co ON co.oid = t.typcollation \
    LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace \
    WHERE n.nspname = ANY($1) AND t.typtype IN ('e', 'd') \
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass \
                      AND d.objid = t.oid AND d.deptype = 'e') \
    ORDER BY t.oid";

/// Reads the enums and domains of `schemas`, in an order they can be created in.
async fn read_types(client: &Client, schemas: &[String]) -> Result<Vec<UserType>> {
    let rows = client
        .query(SELECT_TYPES, &[&schemas])
        .await
        .map_err(|e| map_error(e, "reading the source's enums and domains"))?;
    Ok(rows
        .iter()
        .map(|row| {
            let kind = if row.get::<_, String>(3) == "e" {
                UserTypeKind::Enum { labels: row.get(4) }
            } else {
                let names: Vec<String> = row.get(9);
                let definitions: Vec<String> = row.get(10);
                UserTypeKind::Domain {
                    base: row.get::<_, Option<String>>(5).unwrap_or_default(),
                    collation: row.get(6),
                    default: row.get(7),
                    not_null: row.get(8),
                    checks: names.into_iter().zip(definitions).collect(),
                }
            };
            UserType {
                name: TableName::new(row.get::<_, String>(1), row.get::<_, String>(2)),
                kind,
                comment: row.get::<_, Option<String>>(11).filter(|c| !c.is_empty()),
            }
        })
        .collect())
}

/// Reads every table of `schemas` into a [`Catalog`]; schemas that do not exist are absent.
/// Indexes the schema model cannot describe (expression, partial, `INCLUDE`, access methods
/// other than B-tree and hash, `NULLS FIRST` on ascending or `NULLS LAST` on descending
/// columns) and exclusion constraints are left out of their tables and listed in
/// [`Catalog::omitted_indexes`].
///
/// # Errors
///
/// Server errors.
pub(crate) async fn read_catalog(client: &Client, schemas: &[String]) -> Result<Catalog> {
    let err = |e| map_error(e, "reading the source schema");
    let mut tables: BTreeMap<u32, Table> = BTreeMap::new();
    for row in client
        .query(SELECT_TABLES, &[&schemas])
        .await
        .map_err(err)?
    {
        let estimated: i64 = row.get(4);
        tables.insert(
            row.get(0),
            Table {
                name: TableName::new(row.get::<_, String>(1), row.get::<_, String>(2)),
                columns: Vec::new(),
                primary_key: None,
                indexes: Vec::new(),
                foreign_keys: Vec::new(),
                comment: row.get::<_, Option<String>>(3).filter(|c| !c.is_empty()),
                estimated_rows: u64::try_from(estimated).unwrap_or(0),
                auto_increment: None,
            },
        );
    }
    let oids: Vec<u32> = tables.keys().copied().collect();

    for row in client.query(SELECT_COLUMNS, &[&oids]).await.map_err(err)? {
        let Some(table) = tables.get_mut(&row.get::<_, u32>(0)) else {
            continue;
        };
        let default: Option<String> = row.get(5);
        let identity: String = row.get(6);
        let generated: String = row.get(7);
        let mut column = Column {
            ordinal: u32::try_from(row.get::<_, i32>(2)).unwrap_or(0),
            nullable: !row.get::<_, bool>(4),
            collation: row.get(8),
            comment: row.get::<_, Option<String>>(9).filter(|c| !c.is_empty()),
            ..Column::new(row.get::<_, String>(1), row.get::<_, String>(3))
        };
        match (identity.as_str(), generated.as_str()) {
            ("a" | "d", _) => {
                column.auto_increment = true;
                column.default = Some(ColumnDefault::Identity {
                    always: identity == "a",
                });
            }
            (_, "s") => {
                column.generated = default.map(|expression| Generated {
                    expression,
                    stored: true,
                });
            }
            _ => {
                column.auto_increment = default
                    .as_deref()
                    .is_some_and(|d| d.starts_with("nextval("));
                column.default = default.map(ColumnDefault::Expression);
            }
        }
        table.columns.push(column);
    }

    let mut omitted = Vec::new();
    for row in client.query(SELECT_INDEXES, &[&oids]).await.map_err(err)? {
        let Some(table) = tables.get_mut(&row.get::<_, u32>(0)) else {
            continue;
        };
        let name: String = row.get(1);
        let index = IndexRow {
            primary: row.get(2),
            unique: row.get(3),
            method: row.get(4),
            columns: row.get(5),
            key_columns: row.get(6),
            expressions: row.get(7),
            partial: row.get(8),
            attnums: row.get(9),
            options: row.get(10),
            names: row.get(11),
            constraint: row.get(12),
            constraint_type: row.get(13),
        };
        let definition: String = row.get(14);
        if let Err(why) = index.check() {
            omitted.push(OmittedIndex {
                table: table.name.clone(),
                name,
                unique: index.unique || index.constraint_type.as_deref() == Some("x"),
                reason: why.to_string(),
                definition,
            });
            continue;
        }
        let columns: Vec<IndexColumn> = index
            .names
            .iter()
            .zip(&index.options)
            .map(|(name, option)| IndexColumn {
                name: name.clone(),
                prefix_length: None,
                descending: option & 1 != 0,
            })
            .collect();
        if index.primary {
            table.primary_key = Some(Key {
                name: index.constraint,
                columns: columns.into_iter().map(|c| c.name).collect(),
            });
        } else {
            table.indexes.push(Index {
                name,
                unique: index.unique,
                kind: if index.method == "hash" {
                    IndexKind::Hash
                } else {
                    IndexKind::BTree
                },
                columns,
            });
        }
    }

    for row in client
        .query(SELECT_FOREIGN_KEYS, &[&oids])
        .await
        .map_err(err)?
    {
        let Some(table) = tables.get_mut(&row.get::<_, u32>(0)) else {
            continue;
        };
        table.foreign_keys.push(ForeignKey {
            name: row.get(1),
            referenced_table: TableName::new(row.get::<_, String>(2), row.get::<_, String>(3)),
            columns: row.get(4),
            referenced_columns: row.get(5),
            on_delete: action(&row.get::<_, String>(6)),
            on_update: action(&row.get::<_, String>(7)),
        });
    }

    // A table with one identity or serial column: its sequence's counter, so the target's
    // continues past values the source handed out for rows since deleted.
    for table in tables.values_mut() {
        let mut sequenced = table.columns.iter().filter(|c| c.auto_increment);
        let (Some(column), None) = (sequenced.next(), sequenced.next()) else {
            continue;
        };
        let qualified = format!(
            "{}.{}",
            super::snapshot::quote_ident(&table.name.schema),
            super::snapshot::quote_ident(&table.name.name)
        );
        let row = client
            .query_one(
                "SELECT CASE WHEN s IS NOT NULL AND has_sequence_privilege(s, 'SELECT,USAGE') \
                        THEN pg_sequence_last_value(s::regclass) END \
                 FROM pg_get_serial_sequence($1, $2) s",
                &[&qualified, &column.name],
            )
            .await
            .map_err(err)?;
        let last: Option<i64> = row.get(0);
        table.auto_increment = last.and_then(|n| u64::try_from(n).ok()).map(|n| n + 1);
    }

    let mut by_schema: BTreeMap<String, Vec<Table>> = BTreeMap::new();
    for table in tables.into_values() {
        by_schema
            .entry(table.name.schema.clone())
            .or_default()
            .push(table);
    }
    Ok(Catalog {
        types: read_types(client, schemas).await?,
        omitted_indexes: omitted,
        schemas: by_schema
            .into_iter()
            .map(|(name, mut tables)| {
                tables.sort_by(|a, b| a.name.name.cmp(&b.name.name));
                Schema { name, tables }
            })
            .collect(),
    })
}

/// One row of [`SELECT_INDEXES`].
struct IndexRow {
    primary: bool,
    unique: bool,
    method: String,
    columns: i32,
    key_columns: i32,
    expressions: bool,
    partial: bool,
    attnums: Vec<i16>,
    options: Vec<i16>,
    names: Vec<String>,
    constraint: Option<String>,
    constraint_type: Option<String>,
}

impl IndexRow {
    /// Whether the schema model describes the index fully; else why not.
    fn check(&self) -> std::result::Result<(), &'static str> {
        if self.constraint_type.as_deref() == Some("x") {
            return Err("exclusion constraints are not supported");
        }
        if self.expressions || self.attnums.contains(&0) {
            return Err("expression indexes are not supported");
        }
        if self.partial {
            return Err("partial indexes are not supported");
        }
        if self.columns != self.key_columns {
            return Err("INCLUDE columns are not supported");
        }
        if self.method != "btree" && self.method != "hash" {
            return Err("only btree and hash indexes are supported");
        }
        // Bit 0: DESC; bit 1: NULLS FIRST. The default is NULLS LAST for ASC and NULLS
        // FIRST for DESC.
        if self.options.iter().any(|o| (o & 1 != 0) != (o & 2 != 0)) {
            return Err("non-default NULLS FIRST/LAST ordering is not supported");
        }
        if self.names.len() != self.attnums.len() {
            return Err("an indexed column could not be resolved");
        }
        Ok(())
    }
}

/// A foreign key action from its `pg_constraint` code.
fn action(code: &str) -> ReferentialAction {
    match code {
        "r" => ReferentialAction::Restrict,
        "c" => ReferentialAction::Cascade,
        "n" => ReferentialAction::SetNull,
        "d" => ReferentialAction::SetDefault,
        _ => ReferentialAction::NoAction,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(options: Vec<i16>) -> IndexRow {
        IndexRow {
            primary: false,
            unique: false,
            method: "btree".into(),
            columns: 1,
            key_columns: 1,
            expressions: false,
            partial: false,
            attnums: vec![1],
            options,
            names: vec!["a".into()],
            constraint: None,
            constraint_type: None,
        }
    }

    #[test]
    fn index_sort_options() {
        assert!(index(vec![0]).check().is_ok());
        assert!(
            index(vec![3]).check().is_ok(),
            "DESC NULLS FIRST is DESC's default"
        );
        assert!(index(vec![1]).check().is_err(), "DESC NULLS LAST");
        assert!(index(vec![2]).check().is_err(), "ASC NULLS FIRST");
    }

    #[test]
    fn actions() {
        assert_eq!(action("a"), ReferentialAction::NoAction);
        assert_eq!(action("c"), ReferentialAction::Cascade);
        assert_eq!(action("n"), ReferentialAction::SetNull);
        assert_eq!(action("d"), ReferentialAction::SetDefault);
        assert_eq!(action("r"), ReferentialAction::Restrict);
    }
}
