//! The MySQL/MariaDB → PostgreSQL mapping of rows (full load) and changes (replication):
//! the one place where source values become target values and source DDL becomes target
//! DDL, ahead of every sink.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dts_core::{
    Change, ChangeEvent, ChangeMapper, ConvertFailure, Error, ErrorKind, Result, Row, RowImage,
    RowMapper, SchemaChange, SqlMode, TableName, Value,
};
use dts_typemap::{convert_mysql_value, ColumnMapping, MappingOptions};

use crate::change::SchemaTracker;
use crate::plan::TablePlan;

fn has_zero_date(v: &Value) -> bool {
    match v {
        Value::Date(d) => dts_typemap::is_zero_date(d),
        Value::DateTime(dt) | Value::Timestamp(dt) => dts_typemap::is_zero_date(&dt.date),
        _ => false,
    }
}

/// Converts the rows of one table for the full load: the copied columns of its
/// [`TablePlan`], in plan order (the order the snapshot reader delivers them), each by its
/// column mapping; a column without one (a same-engine plan keeps the type) passes its
/// values unchanged. Zero dates written as NULL are counted per column.
#[derive(Debug)]
pub struct PlanRowMapper {
    table: TableName,
    columns: Vec<(String, Option<ColumnMapping>)>,
    options: MappingOptions,
    zero_dates: Vec<AtomicU64>,
}

impl PlanRowMapper {
    /// The mapper of `plan`'s copied columns.
    pub fn new(plan: &TablePlan, options: MappingOptions) -> Self {
        let columns: Vec<(String, Option<ColumnMapping>)> = plan
            .copied_columns()
            .map(|c| (c.source_name.clone(), c.mapping.clone()))
            .collect();
        let zero_dates = columns.iter().map(|_| AtomicU64::new(0)).collect();
        Self {
            table: plan.source.clone(),
            columns,
            options,
            zero_dates,
        }
    }

    /// The source column names, in the order rows must hold them.
    pub fn source_columns(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|(name, _)| name.as_str())
    }
}

impl RowMapper for PlanRowMapper {
    fn map_row(&self, row: &mut Row) -> std::result::Result<(), ConvertFailure> {
        for (i, (v, (_, mapping))) in row.iter_mut().zip(&self.columns).enumerate() {
            let Some(mapping) = mapping else { continue };
            let input = std::mem::replace(v, Value::Null);
            let zero = has_zero_date(&input);
            match convert_mysql_value(mapping, input, &self.options) {
                Ok(out) => {
                    if zero && out.is_null() {
                        self.zero_dates[i].fetch_add(1, Ordering::Relaxed);
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

    /// Zero dates written as NULL.
    fn replaced_values(&self) -> Vec<(String, u64)> {
        self.columns
            .iter()
            .zip(&self.zero_dates)
            .filter_map(|((name, _), n)| {
                let n = n.load(Ordering::Relaxed);
                (n > 0).then(|| (format!("{}.{name}", self.table), n))
            })
            .collect()
    }
}

/// Where each column of a row image goes: its index among the copied columns, or `None`
/// for a column that is not copied.
pub(crate) type ImageMap = Arc<[Option<usize>]>;

/// Where each column of `image` (a row image of table `source`) goes among the `written`
/// columns of its target table (`name(i)` names the i-th), given each source column's
/// place (`by_source`: `None` for a column not written). The map of the last image shape
/// is kept in `last`, so images of one shape are mapped once.
///
/// # Errors
///
/// An image with a column the schema lacks, or lacking a written column: the source schema
/// changed without a DDL event the task saw, or the log holds partial row images.
pub(crate) fn image_map<'n>(
    last: &mut Option<(Arc<Vec<String>>, ImageMap)>,
    by_source: &HashMap<String, Option<usize>>,
    source: &TableName,
    written: usize,
    name: impl Fn(usize) -> &'n str,
    image: &RowImage,
) -> Result<ImageMap> {
    if image.values.len() != image.columns.len() {
        return Err(Error::internal(format!(
            "a row image of `{source}` has {} values for {} columns",
            image.values.len(),
            image.columns.len()
        )));
    }
    if let Some((columns, map)) = last {
        if Arc::ptr_eq(columns, &image.columns) || **columns == *image.columns {
            return Ok(map.clone());
        }
    }
    let mut seen = vec![false; written];
    let mut map = Vec::with_capacity(image.columns.len());
    for column in image.columns.iter() {
        let Some(slot) = by_source.get(column) else {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "the change log has column `{column}` in table `{source}`, which the \
                     task's schema lacks: the source schema changed without a DDL event the \
                     task saw"
                ),
            ));
        };
        if let Some(i) = *slot {
            seen[i] = true;
        }
        map.push(*slot);
    }
    if let Some(i) = seen.iter().position(|s| !s) {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "the change log's rows of `{source}` lack column `{}` (full row images are \
                 needed: binlog_row_image=FULL), or the source schema changed without a DDL \
                 event the task saw",
                name(i)
            ),
        ));
    }
    let map: ImageMap = map.into();
    *last = Some((image.columns.clone(), map.clone()));
    Ok(map)
}

/// A table's mapping for replication, derived from its plan.
struct Shape {
    source: TableName,
    target: TableName,
    /// Target names of the copied columns, in plan order: the columns of mapped images.
    columns: Arc<Vec<String>>,
    /// Source names and mappings of the copied columns, in plan order (`None`: the value
    /// passes unchanged).
    mappings: Vec<(String, Option<ColumnMapping>)>,
    /// Every plan column by source name: its index among the copied columns, or `None`.
    by_source: HashMap<String, Option<usize>>,
    /// Source names of the key columns, for messages.
    key: Vec<String>,
    /// The last image layout seen, and where its columns go.
    image: Option<(Arc<Vec<String>>, ImageMap)>,
}

impl Shape {
    fn new(plan: &TablePlan) -> Self {
        let mut by_source = HashMap::new();
        let mut mappings = Vec::new();
        for c in &plan.columns {
            if c.copied {
                by_source.insert(c.source_name.clone(), Some(mappings.len()));
                mappings.push((c.source_name.clone(), c.mapping.clone()));
            } else {
                by_source.insert(c.source_name.clone(), None);
            }
        }
        Self {
            source: plan.source.clone(),
            target: plan.target.clone(),
            columns: Arc::new(
                plan.copied_columns()
                    .map(|c| c.target_name.clone())
                    .collect(),
            ),
            mappings,
            by_source,
            key: plan.chunk_key.clone().unwrap_or_default(),
            image: None,
        }
    }

    /// Where each column of `image` goes among the copied columns.
    fn image_map(&mut self, image: &RowImage) -> Result<ImageMap> {
        let mappings = &self.mappings;
        image_map(
            &mut self.image,
            &self.by_source,
            &self.source,
            mappings.len(),
            |i| &mappings[i].0,
            image,
        )
    }

    /// The image as the target holds it: the copied columns under their target names, each
    /// value converted by its mapping.
    fn convert(&mut self, image: RowImage, options: &MappingOptions) -> Result<RowImage> {
        let map = self.image_map(&image)?;
        let mut values = vec![Value::Null; self.mappings.len()];
        let mut source = image;
        for (j, slot) in map.iter().enumerate() {
            let Some(i) = *slot else { continue };
            let value = std::mem::replace(&mut source.values[j], Value::Null);
            let (name, mapping) = &self.mappings[i];
            values[i] = match mapping {
                Some(mapping) => match convert_mysql_value(mapping, value, options) {
                    Ok(v) => v,
                    Err(e) => {
                        // The key, named only on failure: the values before this one are
                        // converted already, so take them back from the target row.
                        for (k, slot) in map.iter().enumerate().take(j) {
                            if let Some(t) = *slot {
                                source.values[k] = values[t].clone();
                            }
                        }
                        let key = source.key_text(&self.key);
                        return Err(Error::from(e).context(format_args!(
                            "column `{}`.`{name}` at key {key}",
                            self.source
                        )));
                    }
                },
                None => value,
            };
        }
        Ok(RowImage {
            columns: self.columns.clone(),
            values,
        })
    }
}

/// The MySQL/MariaDB → PostgreSQL [`ChangeMapper`]: row changes of the selected tables become
/// changes of their target tables with converted values; DDL goes through the
/// [`SchemaTracker`], which keeps the source schema current and translates each statement.
pub struct TrackedChangeMapper {
    tracker: SchemaTracker,
    options: MappingOptions,
    skip_unsupported_ddl: bool,
    shapes: HashMap<TableName, Shape>,
}

impl std::fmt::Debug for TrackedChangeMapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackedChangeMapper")
            .field("skip_unsupported_ddl", &self.skip_unsupported_ddl)
            .finish_non_exhaustive()
    }
}

impl TrackedChangeMapper {
    /// A mapper over `tracker` (the source schema at the position the stream starts at),
    /// converting values with `options`.
    pub fn new(tracker: SchemaTracker, options: MappingOptions) -> Self {
        Self {
            tracker,
            options,
            skip_unsupported_ddl: false,
            shapes: HashMap::new(),
        }
    }

    /// Skips source DDL the tracker cannot translate (with a warning in the log) instead of
    /// failing.
    #[must_use]
    pub fn with_skip_unsupported_ddl(mut self, skip: bool) -> Self {
        self.skip_unsupported_ddl = skip;
        self
    }

    /// The tracker.
    pub fn tracker(&self) -> &SchemaTracker {
        &self.tracker
    }

    fn shape(&mut self, table: &TableName) -> Result<&mut Shape> {
        if !self.shapes.contains_key(table) {
            let plan = self.tracker.table_plan(table).ok_or_else(|| {
                Error::new(
                    ErrorKind::Unsupported,
                    format!(
                        "change to table `{table}`, which is not among the migrated tables \
                         (or was created without a DDL event the task saw)"
                    ),
                )
            })?;
            self.shapes.insert(table.clone(), Shape::new(plan));
        }
        self.shapes
            .get_mut(table)
            .ok_or_else(|| Error::internal(format!("no mapping for `{table}`")))
    }

    fn ddl(&mut self, schema: Option<String>, sql: String, mode: SqlMode) -> Result<SchemaChange> {
        // Column lists, types, keys or names may change: map every table afresh.
        self.shapes.clear();
        // Target names of the tracked tables before the statement, to name what it touches.
        let before: HashMap<TableName, TableName> = self
            .tracker
            .table_plans()
            .map(|p| (p.source.clone(), p.target.clone()))
            .collect();
        // The parser reads the default mode's quoting.
        let text = crate::sql_in_default_mode(&sql, mode);
        match self.tracker.apply_mysql_ddl(schema.as_deref(), &text) {
            Ok(outcome) => {
                for note in &outcome.notes {
                    tracing::info!(statement = %short_sql(&sql), note = %note, "ddl note");
                }
                let changed = !outcome.statements.is_empty() || !outcome.changed.is_empty();
                let (tables, created) = self.touched(&before, &outcome.changed);
                Ok(SchemaChange {
                    within_transaction: false,
                    statements: outcome.statements,
                    catalog: changed.then(|| Arc::new(self.tracker.catalog().clone())),
                    source_sql: sql,
                    tables,
                    created,
                })
            }
            Err(e) => {
                let e = Error::from(e);
                if self.skip_unsupported_ddl && e.kind() == ErrorKind::Unsupported {
                    tracing::warn!(statement = %short_sql(&sql), error = %e.message(),
                        "skipping a source ddl statement that cannot be translated");
                    Ok(SchemaChange {
                        within_transaction: false,
                        statements: Vec::new(),
                        catalog: None,
                        source_sql: sql,
                        tables: Vec::new(),
                        created: Vec::new(),
                    })
                } else {
                    Err(e.context(format_args!("source ddl `{}`", short_sql(&sql))))
                }
            }
        }
    }
}

impl TrackedChangeMapper {
    /// The target tables a statement touched, given the tracked tables' target names
    /// before it (`before`, by source name) and the source tables it changed (by their
    /// names after it): the tables that existed before it (altered, dropped, renamed from),
    /// and the tables it created (or renamed to).
    fn touched(
        &self,
        before: &HashMap<TableName, TableName>,
        changed: &[TableName],
    ) -> (Vec<TableName>, Vec<TableName>) {
        let mut tables: Vec<TableName> = Vec::new();
        let mut created: Vec<TableName> = Vec::new();
        for source in changed {
            let after = self.tracker.table_plan(source).map(|p| &p.target);
            match (before.get(source), after) {
                (Some(old), Some(new)) if old == new => tables.push(old.clone()),
                (old, new) => {
                    tables.extend(old.cloned());
                    created.extend(new.cloned());
                }
            }
        }
        // Tables gone from the tracker: dropped, or renamed to a name in `changed`.
        for (source, target) in before {
            if self.tracker.table_plan(source).is_none() && !tables.contains(target) {
                tables.push(target.clone());
            }
        }
        tables.sort();
        created.sort();
        (tables, created)
    }
}

/// A statement shortened for messages: whitespace collapsed, at most 120 characters.
pub fn short_sql(sql: &str) -> String {
    let one_line: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 120 {
        let cut: String = one_line.chars().take(117).collect();
        format!("{cut}...")
    } else {
        one_line
    }
}

impl ChangeMapper for TrackedChangeMapper {
    fn map(&mut self, event: ChangeEvent) -> Result<Option<ChangeEvent>> {
        let ChangeEvent {
            change,
            position,
            timestamp,
        } = event;
        let options = self.options;
        let change = match change {
            Change::Insert { table, row } => {
                let shape = self.shape(&table)?;
                Change::Insert {
                    table: shape.target.clone(),
                    row: shape.convert(row, &options)?,
                }
            }
            Change::Update {
                table,
                before,
                after,
            } => {
                let shape = self.shape(&table)?;
                Change::Update {
                    table: shape.target.clone(),
                    before: shape.convert(before, &options)?,
                    after: shape.convert(after, &options)?,
                }
            }
            Change::Delete { table, row } => {
                let shape = self.shape(&table)?;
                Change::Delete {
                    table: shape.target.clone(),
                    row: shape.convert(row, &options)?,
                }
            }
            Change::Truncate { table } => Change::Truncate {
                table: self.shape(&table)?.target.clone(),
            },
            Change::Ddl {
                schema,
                sql,
                sql_mode,
            } => Change::Schema(Box::new(self.ddl(schema, sql, sql_mode)?)),
            other => other,
        };
        Ok(Some(ChangeEvent {
            change,
            position,
            timestamp,
        }))
    }
}
