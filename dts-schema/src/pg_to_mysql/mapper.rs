//! The PostgreSQL → MySQL/MariaDB mapping of rows (full load) and changes (replication).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dts_core::{
    Catalog, Change, ChangeEvent, ChangeMapper, ConvertFailure, Error, ErrorKind, Result, Row,
    RowImage, RowMapper, TableName, Value,
};
use dts_typemap::pg_to_mysql::is_special_pg_value;
use dts_typemap::{convert_pg_value, PgToMySqlMapping};

use crate::options::SchemaOptions;
use crate::plan::TablePlan;

use super::plan_pg_to_mysql;

/// Converts the rows of one table for the full load: the plan's copied columns, in plan
/// order (the order the PostgreSQL snapshot reader delivers them), each by its
/// PostgreSQL → MySQL mapping. Values the task's options replace (`NaN`, infinities
/// written as `NULL` or clamped) are counted per column.
#[derive(Debug)]
pub struct PgToMySqlRowMapper {
    table: TableName,
    columns: Vec<(String, Option<PgToMySqlMapping>)>,
    replaced: Vec<AtomicU64>,
}

impl PgToMySqlRowMapper {
    /// The mapper of `plan`'s copied columns.
    pub fn new(plan: &TablePlan) -> Self {
        let columns: Vec<(String, Option<PgToMySqlMapping>)> = plan
            .copied_columns()
            .map(|c| (c.source_name.clone(), c.pg_to_mysql.clone()))
            .collect();
        let replaced = columns.iter().map(|_| AtomicU64::new(0)).collect();
        Self {
            table: plan.source.clone(),
            columns,
            replaced,
        }
    }
}

impl RowMapper for PgToMySqlRowMapper {
    fn map_row(&self, row: &mut Row) -> std::result::Result<(), ConvertFailure> {
        for (i, (v, (_, mapping))) in row.iter_mut().zip(&self.columns).enumerate() {
            let Some(mapping) = mapping else { continue };
            let input = std::mem::replace(v, Value::Null);
            let special = is_special_pg_value(mapping, &input);
            match convert_pg_value(mapping, input) {
                Ok(out) => {
                    if special {
                        self.replaced[i].fetch_add(1, Ordering::Relaxed);
                    }
                    *v = out;
                }
                Err(e) => {
                    return Err(ConvertFailure {
                        column: i,
                        error: e.into(),
                    })
                }
            }
        }
        Ok(())
    }

    /// `NaN`, infinities and infinite dates written as `NULL` or clamped.
    fn replaced_values(&self) -> Vec<(String, u64)> {
        self.columns
            .iter()
            .zip(&self.replaced)
            .filter_map(|((name, _), n)| {
                let n = n.load(Ordering::Relaxed);
                (n > 0).then(|| (format!("{}.{name}", self.table), n))
            })
            .collect()
    }
}

/// The replication shapes of the tables of `catalog` that `selects` selects.
fn shapes(
    catalog: &Catalog,
    options: &SchemaOptions,
    selects: &(dyn Fn(&TableName) -> bool + Send + Sync),
) -> BTreeMap<TableName, Shape> {
    let plan = plan_pg_to_mysql(catalog, options);
    plan.tables
        .iter()
        .filter(|t| selects(&t.source))
        .map(|t| {
            let columns: Vec<(String, String, PgToMySqlMapping)> = t
                .copied_columns()
                .filter_map(|c| {
                    Some((
                        c.source_name.clone(),
                        c.target_name.clone(),
                        c.pg_to_mysql.clone()?,
                    ))
                })
                .collect();
            let names = columns.iter().map(|(s, _, _)| s.clone()).collect();
            (
                t.source.clone(),
                Shape {
                    target: t.target.clone(),
                    columns,
                    names,
                    key: t.chunk_key.clone().unwrap_or_default(),
                    layout: None,
                },
            )
        })
        .collect()
}

/// An image layout: its columns, their target names, where they go, whether whole.
type Layout = (Arc<Vec<String>>, Arc<Vec<String>>, Vec<usize>, bool);

/// A table's mapping for replication.
struct Shape {
    target: TableName,
    /// Per source column (in the recorded schema's order): target name and mapping.
    columns: Vec<(String, String, PgToMySqlMapping)>,
    /// Source column names, in order, for messages and image checks.
    names: Vec<String>,
    key: Vec<String>,
    /// The last image layout seen: its columns, their target names, where they go among
    /// [`Shape::columns`], and whether it is the whole row.
    layout: Option<Layout>,
}

impl Shape {
    /// The image as the target holds it: target names, converted values. `whole` images
    /// must have every column in order; others (an update's after image, which leaves out
    /// unchanged TOASTed values) a subset.
    fn convert(&mut self, table: &TableName, image: RowImage, whole: bool) -> Result<RowImage> {
        let (target_names, map) = self.layout(table, &image, whole)?;
        let mut values = Vec::with_capacity(image.values.len());
        for (value, &i) in image.values.iter().zip(&map) {
            let (source, _, mapping) = &self.columns[i];
            match convert_pg_value(mapping, value.clone()) {
                Ok(v) => values.push(v),
                Err(e) => {
                    let key = image.key_text(&self.key);
                    return Err(Error::from(e)
                        .context(format_args!("column `{table}`.`{source}` at key {key}")));
                }
            }
        }
        Ok(RowImage {
            columns: target_names,
            values,
        })
    }

    fn layout(
        &mut self,
        table: &TableName,
        image: &RowImage,
        whole: bool,
    ) -> Result<(Arc<Vec<String>>, Vec<usize>)> {
        if image.values.len() != image.columns.len() {
            return Err(Error::internal(format!(
                "a row image of `{table}` has {} values for {} columns",
                image.values.len(),
                image.columns.len()
            )));
        }
        if let Some((columns, targets, map, is_whole)) = &self.layout {
            if (*is_whole || !whole)
                && (Arc::ptr_eq(columns, &image.columns) || **columns == *image.columns)
            {
                return Ok((targets.clone(), map.clone()));
            }
        }
        let is_whole = *image.columns == self.names;
        let fits = is_whole || (!whole && image.columns.iter().all(|c| self.names.contains(c)));
        if !fits {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "the columns of `{table}` changed at the source ({} became {}) without a \
                     relation description saying so; migrate the table again",
                    self.names.join(", "),
                    image.columns.join(", ")
                ),
            ));
        }
        let map: Vec<usize> = image
            .columns
            .iter()
            .filter_map(|c| self.names.iter().position(|n| n == c))
            .collect();
        let targets: Arc<Vec<String>> =
            Arc::new(map.iter().map(|&i| self.columns[i].1.clone()).collect());
        self.layout = Some((
            image.columns.clone(),
            targets.clone(),
            map.clone(),
            is_whole,
        ));
        Ok((targets, map))
    }
}

/// The change mapping of PostgreSQL → MySQL/MariaDB replication: row changes of the
/// selected tables become changes of their target tables (renamed as the plan says) with
/// values converted as the full load converts them; changes of tables not selected are
/// dropped. An update's after image may carry fewer columns than the table has (values the
/// update left as they were and the source did not send): only those are mapped, so the
/// target keeps its own values of the others. A row image whose columns are not those of
/// the table in the tracked schema stops replication naming the table and both column
/// lists.
///
/// A relation description ([`Change::Relation`]) that matches the tracked table passes as
/// nothing; one that shows changed columns (added, dropped, retyped:
/// [`crate::relation_diff`]) becomes a [`Change::Schema`] inside the source transaction
/// ([`dts_core::SchemaChange::within_transaction`]) with the MySQL statements that follow it
/// (see `relation_statements`: columns defined as the planner defines them with the task's
/// type mapping and options, `NOT NULL` and defaults as the source's catalog has them, the
/// value a stored default gave the rows already there, retypes only where MySQL converts
/// the values as PostgreSQL did), and the tracked schema follows. What it cannot follow
/// stops replication naming the table and the column.
pub struct PgToMySqlChangeMapper {
    /// The source schema as tracked (recorded at the stream's start, then followed).
    catalog: Catalog,
    options: SchemaOptions,
    shapes: BTreeMap<TableName, Shape>,
    selects: Arc<dyn Fn(&TableName) -> bool + Send + Sync>,
}

impl std::fmt::Debug for PgToMySqlChangeMapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgToMySqlChangeMapper")
            .field("tables", &self.shapes.len())
            .finish_non_exhaustive()
    }
}

impl PgToMySqlChangeMapper {
    /// A mapping from the source schema `catalog` (as recorded at the stream's start),
    /// planned with `options` as the schema migration planned it, for the tables `selects`
    /// selects.
    pub fn new(
        catalog: &Catalog,
        options: &SchemaOptions,
        selects: Arc<dyn Fn(&TableName) -> bool + Send + Sync>,
    ) -> Self {
        Self {
            catalog: catalog.clone(),
            options: options.clone(),
            shapes: shapes(catalog, options, &*selects),
            selects,
        }
    }

    /// The schema change a relation description of `table` makes, if it differs from the
    /// tracked table.
    fn relation(
        &mut self,
        table: &TableName,
        columns: &[dts_core::RelationColumn],
    ) -> Result<Option<dts_core::SchemaChange>> {
        let tracked = self.catalog.table(table).ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                format!("a change of `{table}`, a table the recorded source schema does not hold"),
            )
        })?;
        let diff = crate::relation_diff(tracked, columns)?;
        if diff.is_empty() {
            return Ok(None);
        }
        let target = self.shape(table)?.target.clone();
        let mut after = self.catalog.clone();
        if let Some(t) = after.table_mut(table) {
            crate::apply_relation_diff(t, &diff);
        }
        let statements = super::relation::relation_statements(
            &self.catalog,
            &after,
            &self.options,
            table,
            &target,
            &diff,
        )?;
        tracing::info!(table = %table, statements = %statements.join("; "),
            "following a column change the source's relation description shows");
        self.shapes = shapes(&after, &self.options, &*self.selects);
        self.catalog = after;
        Ok(Some(dts_core::SchemaChange {
            source_sql: format!("(relation description of `{table}`)"),
            statements,
            catalog: Some(Arc::new(self.catalog.clone())),
            tables: vec![target],
            created: Vec::new(),
            within_transaction: true,
        }))
    }

    fn shape(&mut self, table: &TableName) -> Result<&mut Shape> {
        self.shapes.get_mut(table).ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                format!("a change of `{table}`, a table the recorded source schema does not hold"),
            )
        })
    }
}

impl ChangeMapper for PgToMySqlChangeMapper {
    fn map(&mut self, event: ChangeEvent) -> Result<Option<ChangeEvent>> {
        let ChangeEvent {
            change,
            position,
            timestamp,
        } = event;
        let table = match &change {
            Change::Insert { table, .. }
            | Change::Update { table, .. }
            | Change::Delete { table, .. }
            | Change::Truncate { table }
            | Change::Relation { table, .. } => Some(table.clone()),
            Change::Ddl { sql, .. } => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!("a DDL statement from a PostgreSQL source: {sql}"),
                ))
            }
            _ => None,
        };
        if let Some(table) = &table {
            if !(self.selects)(table) {
                return Ok(None);
            }
        }
        let change = match change {
            Change::Insert { table, row } => {
                let shape = self.shape(&table)?;
                Change::Insert {
                    row: shape.convert(&table, row, true)?,
                    table: shape.target.clone(),
                }
            }
            Change::Update {
                table,
                before,
                after,
            } => {
                let shape = self.shape(&table)?;
                Change::Update {
                    before: shape.convert(&table, before, true)?,
                    after: shape.convert(&table, after, false)?,
                    table: shape.target.clone(),
                }
            }
            Change::Delete { table, row } => {
                let shape = self.shape(&table)?;
                Change::Delete {
                    row: shape.convert(&table, row, true)?,
                    table: shape.target.clone(),
                }
            }
            Change::Truncate { table } => Change::Truncate {
                table: self.shape(&table)?.target.clone(),
            },
            Change::Relation { table, columns } => match self.relation(&table, &columns)? {
                Some(change) => Change::Schema(Box::new(change)),
                None => return Ok(None),
            },
            other => other,
        };
        Ok(Some(ChangeEvent {
            change,
            position,
            timestamp,
        }))
    }
}
