//! Column selection (`[tables."db.pattern"]` `columns.include` / `columns.exclude`): which
//! columns of a source table migrate.
//!
//! The selection is applied once, to the source catalog the task plans from: a column left
//! out is removed from it, so the schema plan does not create it, the snapshot readers do
//! not select it, the row mappers and the verification do not see it. Replication drops it
//! from every row image and relation description before the change mappers
//! ([`crate::incremental`]), and the schema options carry the selection so DDL on a column
//! left out is skipped ([`dts_schema::ColumnFilter`]).
//!
//! Before anything is removed, the selection is checked against the whole table: a column
//! it names must exist, and a column left out must not be needed by what is kept (the
//! primary key, the key the table is copied by, an index, a foreign key on either side, a
//! generated column).

use std::collections::{BTreeMap, BTreeSet};

use dts_core::{Catalog, Result, Table, TableName};
use dts_schema::ColumnFilter;

use crate::config::TaskConfig;

/// The column selection of every table of `catalog` that has one, as the schema options
/// carry it.
pub(crate) fn filters(
    config: &TaskConfig,
    catalog: &Catalog,
) -> Result<BTreeMap<TableName, ColumnFilter>> {
    let mut out = BTreeMap::new();
    for table in catalog.tables() {
        let columns = config.table_options(&table.name)?.columns;
        let filter = match (columns.include, columns.exclude) {
            (Some(list), _) => ColumnFilter::Include(list.into_iter().collect()),
            (None, Some(list)) if !list.is_empty() => {
                ColumnFilter::Exclude(list.into_iter().collect())
            }
            _ => continue,
        };
        out.insert(table.name.clone(), filter);
    }
    Ok(out)
}

/// The configuration key that selects the columns of a table, for messages.
fn key(filter: &ColumnFilter) -> &'static str {
    match filter {
        ColumnFilter::Include(_) => "columns.include",
        _ => "columns.exclude",
    }
}

/// Checks the column selection `filters` against the whole source tables of `catalog`.
/// Returns every problem, each naming the table and the column.
pub(crate) fn problems(
    catalog: &Catalog,
    filters: &BTreeMap<TableName, ColumnFilter>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (name, filter) in filters {
        let Some(table) = catalog.table(name) else {
            continue;
        };
        for column in filter.names() {
            let found = table
                .columns
                .iter()
                .any(|c| c.name.eq_ignore_ascii_case(column));
            if !found {
                out.push(format!(
                    "`{}` of table `{name}` names column `{column}`, which the table does not \
                     have",
                    key(filter)
                ));
            }
        }
        let left_out: Vec<&str> = table
            .columns
            .iter()
            .filter(|c| !filter.keeps(&c.name))
            .map(|c| c.name.as_str())
            .collect();
        if left_out.len() == table.columns.len() {
            out.push(format!(
                "`{}` of table `{name}` leaves out every column",
                key(filter)
            ));
            continue;
        }
        for column in left_out {
            if let Some(why) = needed_by(catalog, table, filter, column) {
                out.push(format!(
                    "column `{column}` of table `{name}` cannot be left out: {why}"
                ));
            }
        }
    }
    out
}

/// What of table `table` (or of another table of `catalog`) needs column `column`, which
/// `filter` leaves out.
fn needed_by(
    catalog: &Catalog,
    table: &Table,
    filter: &ColumnFilter,
    column: &str,
) -> Option<String> {
    let same = |c: &String| c.eq_ignore_ascii_case(column);
    if let Some(pk) = &table.primary_key {
        if pk.columns.iter().any(same) {
            return Some("it is part of the primary key".into());
        }
    } else if let Some(key) = table.chunk_key() {
        if key.iter().any(same) {
            return Some(
                "it is part of the unique key the table is copied and replicated by".into(),
            );
        }
    }
    if let Some(index) = table
        .indexes
        .iter()
        .find(|i| i.columns.iter().any(|c| same(&c.name)))
    {
        return Some(format!("index `{}` covers it", index.name));
    }
    if let Some(fk) = table
        .foreign_keys
        .iter()
        .find(|f| f.columns.iter().any(same))
    {
        return Some(format!("foreign key `{}` uses it", fk.name));
    }
    for other in catalog.tables() {
        if let Some(fk) = other
            .foreign_keys
            .iter()
            .find(|f| f.referenced_table == table.name && f.referenced_columns.iter().any(same))
        {
            return Some(format!(
                "foreign key `{}` of table `{}` references it",
                fk.name, other.name
            ));
        }
    }
    let generated = table.columns.iter().find(|c| {
        filter.keeps(&c.name)
            && c.generated
                .as_ref()
                .is_some_and(|g| identifiers(&g.expression).any(|i| i.eq_ignore_ascii_case(column)))
    });
    if let Some(g) = generated {
        return Some(format!("generated column `{}` is computed from it", g.name));
    }
    None
}

/// The identifiers of an SQL expression: bare words and `` `quoted` `` or `"quoted"`
/// names, outside string literals (function names and keywords included, which is what a
/// check for a column's use needs: a column is never missed).
fn identifiers(expression: &str) -> impl Iterator<Item = String> + '_ {
    let mut out = Vec::new();
    let mut chars = expression.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '\'' => {
                // A string literal: `''` and `\'` stay inside it.
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '\'' if chars.peek() == Some(&'\'') => {
                            chars.next();
                        }
                        '\'' => break,
                        _ => {}
                    }
                }
            }
            '`' | '"' => {
                let mut name = String::new();
                while let Some(c) = chars.next() {
                    if c == ch {
                        if chars.peek() == Some(&ch) {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    name.push(c);
                }
                out.push(name);
            }
            c if c.is_alphanumeric() || c == '_' || c == '$' => {
                let mut name = String::from(c);
                while let Some(&c) = chars.peek() {
                    if c.is_alphanumeric() || c == '_' || c == '$' {
                        name.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(name);
            }
            _ => {}
        }
    }
    out.into_iter()
}

/// Removes the columns `filters` leave out from the tables of `catalog`, except those
/// something kept needs ([`problems`] names them; the precheck refuses them before a task
/// starts, and keeping them keeps the plan whole). Ordinals are kept (a PostgreSQL relation
/// description names columns by them).
pub(crate) fn apply(catalog: &mut Catalog, filters: &BTreeMap<TableName, ColumnFilter>) {
    for (name, filter) in filters {
        let Some(table) = catalog.table(name) else {
            continue;
        };
        let keep: BTreeSet<String> = table
            .columns
            .iter()
            .filter(|c| {
                filter.keeps(&c.name) || needed_by(catalog, table, filter, &c.name).is_some()
            })
            .map(|c| c.name.clone())
            .collect();
        if let Some(table) = catalog.table_mut(name) {
            table.columns.retain(|c| keep.contains(&c.name));
        }
    }
}

/// Target columns that the task does not write and that cannot be left empty: `NOT NULL`
/// without a default (nor identity, auto-increment or generation) in an existing target
/// table `existing`, which planned as `plan` writes only `written`.
pub(crate) fn unfilled_columns(existing: &Table, written: &BTreeSet<String>) -> Vec<String> {
    existing
        .columns
        .iter()
        .filter(|c| {
            !c.nullable
                && c.default.is_none()
                && !c.auto_increment
                && c.generated.is_none()
                && !written.iter().any(|w| w.eq_ignore_ascii_case(&c.name))
        })
        .map(|c| c.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use dts_core::{Column, Generated, Index, IndexColumn, IndexKind, Key, Schema};

    use super::*;

    fn table() -> Table {
        let mut columns: Vec<Column> = ["id", "code", "note", "secret", "total"]
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let mut c = Column::new(*n, "int");
                c.ordinal = u32::try_from(i + 1).unwrap();
                c
            })
            .collect();
        columns[4].generated = Some(Generated {
            expression: "`note` * 2 + 'secret'".into(),
            stored: true,
        });
        Table {
            name: TableName::new("shop", "orders"),
            columns,
            primary_key: Some(Key {
                name: None,
                columns: vec!["id".into()],
            }),
            indexes: vec![Index {
                name: "code_idx".into(),
                unique: false,
                kind: IndexKind::BTree,
                columns: vec![IndexColumn {
                    name: "code".into(),
                    prefix_length: None,
                    descending: false,
                }],
            }],
            foreign_keys: Vec::new(),
            comment: None,
            estimated_rows: 0,
            auto_increment: None,
        }
    }

    fn catalog() -> Catalog {
        Catalog {
            schemas: vec![Schema {
                name: "shop".into(),
                tables: vec![table()],
            }],
            ..Default::default()
        }
    }

    fn exclude(names: &[&str]) -> BTreeMap<TableName, ColumnFilter> {
        BTreeMap::from([(
            TableName::new("shop", "orders"),
            ColumnFilter::Exclude(names.iter().map(|n| n.to_string()).collect()),
        )])
    }

    #[test]
    fn refusals_name_the_table_and_the_column() {
        let c = catalog();
        for (left_out, why) in [
            ("id", "primary key"),
            ("code", "index `code_idx`"),
            ("note", "generated column `total`"),
            ("nope", "does not have"),
        ] {
            let p = problems(&c, &exclude(&[left_out]));
            assert_eq!(p.len(), 1, "{p:?}");
            assert!(
                p[0].contains("`shop.orders`") && p[0].contains(&format!("`{left_out}`")),
                "{p:?}"
            );
            assert!(p[0].contains(why), "{p:?}");
        }
        // A string literal naming the column is not a use of it.
        assert!(problems(&c, &exclude(&["secret"])).is_empty());
        // Leaving out the generated column with what it needs is fine.
        assert!(problems(&c, &exclude(&["note", "total", "SECRET"])).is_empty());
        let include = BTreeMap::from([(
            TableName::new("shop", "orders"),
            ColumnFilter::Include(["id".to_string()].into()),
        )]);
        let p = problems(&c, &include);
        assert!(p.iter().any(|p| p.contains("`code`")), "{p:?}");
    }

    #[test]
    fn apply_removes_columns_and_keeps_ordinals() {
        let mut c = catalog();
        apply(&mut c, &exclude(&["note", "TOTAL"]));
        let t = c.table(&TableName::new("shop", "orders")).unwrap();
        let kept: Vec<(&str, u32)> = t
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.ordinal))
            .collect();
        assert_eq!(kept, [("id", 1), ("code", 2), ("secret", 4)]);
    }

    #[test]
    fn identifiers_skip_string_literals() {
        let ids: Vec<String> = identifiers("concat(`a`, 'b''c', \"d\", e_1)").collect();
        assert_eq!(ids, ["concat", "a", "d", "e_1"]);
    }
}
