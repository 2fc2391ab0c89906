//! Incremental migration: change capture from the source's log (binlog or WAL) applied to
//! the target, starting exactly at the snapshot position of the full load, with the
//! applied position committed together with the data it covers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dts_cdc::{replicate, CdcEvent, CdcOptions, CdcSummary, MappedSource};
use dts_connectors::{ApplyOptions, CaptureOptions, ChangeMapping, Source};
use dts_core::{Change, ChangeEvent, ChangeSource, Position, Result, StateStore, TableName};
use tokio::sync::mpsc;

use crate::config::{Operation, UntranslatableDdl};
use crate::task::Run;

/// For each table copied whole (no key) by the full load, the snapshot position its copy was
/// taken at. Keyed by the target table name.
async fn keyless_copy_positions(
    store: &dyn StateStore,
    plan: &dts_schema::SchemaPlan,
) -> Result<HashMap<TableName, Position>> {
    let mut out = HashMap::new();
    for tp in plan.tables.iter().filter(|t| t.chunk_key.is_none()) {
        if let Some(position) = store.chunk_snapshot_position(&tp.target).await? {
            out.insert(tp.target.clone(), position);
        }
    }
    Ok(out)
}

/// Ends the change reader a killed earlier run of the task left on the source, so the new
/// reader can register with the same identity at once.
async fn end_stale_reader(store: &dyn StateStore, source: &Source) -> Result<()> {
    if let Some(record) = store.reader().await? {
        if source.end_reader(&record).await? {
            tracing::info!(
                connection = record.connection_id,
                "ended the change reader of an earlier run"
            );
        }
    }
    Ok(())
}

/// Which changes the task captures, and the names its reader goes by on the source.
pub(crate) fn capture_options(config: &crate::config::TaskConfig) -> Result<CaptureOptions> {
    let selection = config.selection()?;
    let tables: Arc<dyn Fn(&TableName) -> bool + Send + Sync> = {
        let s = selection.clone();
        Arc::new(move |t: &TableName| s.selects(t))
    };
    Ok(CaptureOptions {
        tables,
        schemas: Arc::new(move |d: &str| selection.selects_database(d)),
        server_id: config.incremental.server_id(&config.name),
        slot: dts_connectors::capture_slot_name(&config.name, &config.source.url),
    })
}

/// What incremental migration did in this run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncrementalReport {
    /// Source transactions applied.
    pub transactions: u64,
    /// Rows applied.
    pub rows: u64,
    /// The applied position when the run ended.
    pub position: Option<Position>,
}

/// The operations replicated for a table: its `[tables."…"] operations`, else the task's
/// `incremental.operations`. Resolved once per table.
struct Operations {
    task: Vec<Operation>,
    config: Arc<crate::config::TaskConfig>,
    tables: HashMap<TableName, Option<Vec<Operation>>>,
}

impl Operations {
    fn new(config: &crate::config::TaskConfig) -> Self {
        Self {
            task: config.incremental.operations.clone(),
            config: Arc::new(config.clone()),
            tables: HashMap::new(),
        }
    }

    /// The operations of table `t` when it has its own (an ambiguous pattern, which the
    /// precheck refuses, counts as none).
    fn own(&mut self, t: &TableName) -> Option<&[Operation]> {
        if !self.tables.contains_key(t) {
            let own = self.config.table_options(t).ok().and_then(|o| o.operations);
            self.tables.insert(t.clone(), own);
        }
        self.tables.get(t).and_then(Option::as_deref)
    }

    fn replicates(&mut self, t: &TableName, op: Operation) -> bool {
        match self.own(t) {
            Some(own) => own.contains(&op),
            None => self.task.contains(&op),
        }
    }

    /// Whether a DDL statement is replicated: the task's choice, unless a table it is about
    /// has operations of its own, then all of those must include `ddl`.
    fn replicates_ddl(&mut self, schema: Option<&str>, sql: &str, mode: dts_core::SqlMode) -> bool {
        let tables = dts_schema::mysql_ddl_tables(schema, sql, mode);
        let mut own = false;
        let mut all = true;
        for t in &tables {
            if let Some(ops) = self.own(t) {
                own = true;
                all &= ops.contains(&Operation::Ddl);
            }
        }
        if own {
            all
        } else {
            self.task.contains(&Operation::Ddl)
        }
    }
}

/// The columns a row image of a table keeps, for one list of source columns.
struct Kept {
    /// The source's column list the mapping was made for.
    from: Arc<Vec<String>>,
    /// The kept columns.
    columns: Arc<Vec<String>>,
    /// Their indexes in the source's list.
    at: Vec<usize>,
}

/// A change source that passes on only what the task replicates: the operations of each
/// table (`incremental.operations`, or the table's own), the columns of each table (those
/// left out are dropped from row images and relation descriptions), at the task's rate
/// (`incremental.max_rows_per_second` / `max_bytes_per_second`).
struct ChangeFilter<S> {
    inner: S,
    operations: Operations,
    columns: std::collections::BTreeMap<TableName, dts_schema::ColumnFilter>,
    kept: HashMap<TableName, Vec<Kept>>,
    throttle: Option<dts_fullload::Throttle>,
    /// Most events read at once while throttled, so one wait stays short.
    throttled_max: usize,
}

impl<S> ChangeFilter<S> {
    fn new(
        inner: S,
        config: &crate::config::TaskConfig,
        schema: &dts_schema::SchemaOptions,
    ) -> Self {
        let (rows, bytes) = (
            config.incremental.max_rows_per_second,
            config.incremental.max_bytes_per_second,
        );
        let throttle =
            (rows.is_some() || bytes.is_some()).then(|| dts_fullload::Throttle::new(rows, bytes));
        // A quarter of a second's rows at most (and at least a few events).
        let throttled_max = rows.map_or(usize::MAX, |r| {
            usize::try_from(r / 4).unwrap_or(usize::MAX).max(8)
        });
        Self {
            inner,
            operations: Operations::new(config),
            columns: schema.columns.clone(),
            kept: HashMap::new(),
            throttle,
            throttled_max,
        }
    }

    /// Drops the columns left out from a row image of table `t`.
    fn strip(&mut self, t: &TableName, image: &mut dts_core::RowImage) {
        let Some(filter) = self.columns.get(t) else {
            return;
        };
        // One mapping per column list met (a PostgreSQL update's old row may carry only
        // the key, its new one leave out unchanged TOASTed values); a few per table.
        let known = self.kept.entry(t.clone()).or_default();
        let at = known
            .iter()
            .position(|k| Arc::ptr_eq(&k.from, &image.columns) || *k.from == *image.columns);
        let at = match at {
            Some(i) => i,
            None => {
                let at: Vec<usize> = image
                    .columns
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| filter.keeps(c))
                    .map(|(i, _)| i)
                    .collect();
                let columns = Arc::new(at.iter().map(|&i| image.columns[i].clone()).collect());
                if known.len() >= 8 {
                    known.remove(0);
                }
                known.push(Kept {
                    from: image.columns.clone(),
                    columns,
                    at,
                });
                known.len() - 1
            }
        };
        let kept = &known[at];
        if kept.at.len() == image.columns.len() {
            return;
        }
        let mut values = std::mem::take(&mut image.values);
        image.values = kept
            .at
            .iter()
            .filter_map(|&i| {
                values
                    .get_mut(i)
                    .map(|v| std::mem::replace(v, dts_core::Value::Null))
            })
            .collect();
        image.columns = kept.columns.clone();
    }

    /// Whether an event passes; drops the columns left out from those that do.
    fn pass(&mut self, change: &mut Change) -> bool {
        match change {
            Change::Insert { table, row } => {
                if !self.operations.replicates(table, Operation::Insert) {
                    return false;
                }
                let t = table.clone();
                self.strip(&t, row);
                true
            }
            Change::Delete { table, row } => {
                if !self.operations.replicates(table, Operation::Delete) {
                    return false;
                }
                let t = table.clone();
                self.strip(&t, row);
                true
            }
            Change::Update {
                table,
                before,
                after,
            } => {
                if !self.operations.replicates(table, Operation::Update) {
                    return false;
                }
                let t = table.clone();
                self.strip(&t, before);
                self.strip(&t, after);
                true
            }
            Change::Truncate { table } => self.operations.replicates(table, Operation::Truncate),
            Change::Ddl {
                schema,
                sql,
                sql_mode,
            } => self
                .operations
                .replicates_ddl(schema.as_deref(), sql, *sql_mode),
            Change::Relation { table, columns } => {
                if let Some(filter) = self.columns.get(table) {
                    columns.retain(|c| filter.keeps(&c.name));
                }
                true
            }
            _ => true,
        }
    }
}

#[dts_core::async_trait]
impl<S: ChangeSource> ChangeSource for ChangeFilter<S> {
    async fn next_events(&mut self, max: usize, timeout: Duration) -> Result<Vec<ChangeEvent>> {
        let max = if self.throttle.is_some() {
            max.min(self.throttled_max)
        } else {
            max
        };
        let mut events = self.inner.next_events(max, timeout).await?;
        events.retain_mut(|e| self.pass(&mut e.change));
        if let Some(throttle) = &self.throttle {
            let (mut rows, mut bytes) = (0u64, 0u64);
            let size = |image: &dts_core::RowImage| -> u64 {
                image.values.iter().map(|v| v.size_hint() as u64).sum()
            };
            for e in &events {
                match &e.change {
                    Change::Insert { row, .. } | Change::Delete { row, .. } => {
                        rows += 1;
                        bytes += size(row);
                    }
                    Change::Update { after, .. } => {
                        rows += 1;
                        bytes += size(after);
                    }
                    _ => {}
                }
            }
            if rows > 0 {
                throttle.acquire(rows, bytes).await;
            }
        }
        Ok(events)
    }

    fn acknowledge(&mut self, position: &Position) {
        self.inner.acknowledge(position);
    }
}

/// Runs incremental migration until the run is stopped, or until everything the source had
/// committed when this phase began is applied (`until_caught_up`).
pub(crate) async fn run_incremental(
    run: &Run<'_>,
    events: Option<mpsc::UnboundedSender<CdcEvent>>,
) -> Result<IncrementalReport> {
    let config = run.config;
    let task = config.name.clone();
    let store = run.store.as_ref();
    let full_ran = config.runs(crate::config::MigrationType::Full);

    // Where to start: the applied position of an earlier run, else the (first) snapshot
    // position of the full load, else the source's current position.
    let snapshots = store.snapshot_positions().await?;
    let capture = capture_options(config)?;
    if store.applied_position().await?.is_none() {
        let start = match snapshots.first() {
            Some(p) => p.clone(),
            None if full_ran => {
                return Err(dts_core::Error::config(
                    "the full load recorded no log position (is the source's change log off?)",
                ))
            }
            None => run.source.capture_start(&capture).await?,
        };
        store.start_position(&start).await?;
        // Replication tracks schema changes from the schema at its start position.
        store.record_schema(&run.plan.catalog, &start).await?;
    }
    // A full load resumed after a crash copied later chunks from a later snapshot: until the
    // stream passes the last snapshot, changes may already be in the target.
    let idempotent_until = if snapshots.len() > 1 {
        snapshots.last().cloned()
    } else {
        None
    };
    let copied_at = keyless_copy_positions(store, &run.plan.schema).await?;
    end_stale_reader(store, &run.source).await?;

    let selects = capture.tables.clone();
    let mapping = ChangeMapping {
        catalog: run.plan.catalog.clone(),
        schema: config.schema_options_for(&run.plan.catalog)?,
        values: config.mapping_options(),
        selects: selects.clone(),
        skip_unsupported_ddl: config.incremental.untranslatable_ddl == UntranslatableDdl::Skip,
    };
    let until = if run.options.until_caught_up {
        Some(run.source.current_position().await?)
    } else {
        None
    };
    let options = CdcOptions {
        max_batch_rows: config.incremental.max_batch_rows,
        max_batch_delay: Duration::from_millis(config.incremental.max_batch_delay_ms),
        until,
        retry_window: Duration::from_secs(config.incremental.retry_window_seconds),
        ..CdcOptions::default()
    };
    let row_filters = if config.tables.is_empty() {
        Vec::new()
    } else {
        let collation = run.source.default_collation().await?;
        crate::filter::compile(
            config,
            &run.plan.catalog,
            run.source.engine(),
            collation.as_deref(),
        )?
    };
    let row_filters = &row_filters;
    let apply = ApplyOptions {
        idempotent_until,
        copied_at,
        cascades: run.source.cascade_logging(),
        binlog: config.incremental.target_binlog(),
    };
    let (source, target) = (&run.source, &run.target);
    let engines = (source.engine(), target.engine());
    let checks = crate::checks::Checks::start(run).await?;
    let options = if checks.holds_until {
        CdcOptions {
            until: None,
            ..options
        }
    } else {
        options
    };
    let checks_ref = &checks;

    let summary: Result<CdcSummary> = replicate(
        |from: Position| {
            let capture = capture.clone();
            let task = task.clone();
            let mut mapping = mapping.clone();
            let schema = mapping.schema.clone();
            async move {
                // The mapping starts from the source schema recorded with the position the
                // stream resumes at (the applied position).
                let state = target.state_store(&task).await?;
                if let Some(catalog) = state.tracked_schema().await? {
                    mapping.catalog = catalog;
                }
                let mapper = dts_connectors::change_mapper(engines.0, engines.1, mapping)?;
                let (inner, reader) = source.capture(&from, &capture).await?;
                // The reader's identity, so that a later run can end it if this process is
                // killed.
                state.record_reader(&reader).await?;
                // Rows are filtered on the whole source row first, then the columns left out
                // are dropped.
                let inner = crate::filter::RowFilterSource::new(inner, row_filters);
                let filtered = ChangeFilter::new(inner, config, &schema);
                Ok(MappedSource::new(checks_ref.tap(filtered), mapper))
            }
        },
        || {
            let task = task.clone();
            let apply = apply.clone();
            async move { target.apply_sink(&task, &apply).await }
        },
        options,
        events,
        checks.stop(),
    )
    .await;
    let checks_done = checks.finish().await;
    let summary = summary?;
    checks_done?;
    Ok(IncrementalReport {
        transactions: summary.transactions,
        rows: summary.rows,
        position: summary.position,
    })
}

#[cfg(test)]
mod tests {
    use dts_core::{Catalog, RelationColumn, RowImage, SqlMode, Value};

    use super::*;

    /// Hands out its events once.
    struct Events(Vec<ChangeEvent>);

    #[dts_core::async_trait]
    impl ChangeSource for Events {
        async fn next_events(&mut self, max: usize, _: Duration) -> Result<Vec<ChangeEvent>> {
            let n = max.min(self.0.len());
            Ok(self.0.drain(..n).collect())
        }

        fn acknowledge(&mut self, _: &Position) {}
    }

    fn event(change: Change) -> ChangeEvent {
        ChangeEvent {
            change,
            position: Position::Binlog {
                file: "b.000001".into(),
                offset: 4,
                gtid: None,
            },
            timestamp: 0,
        }
    }

    fn row(columns: &Arc<Vec<String>>, values: &[i64]) -> RowImage {
        RowImage {
            columns: columns.clone(),
            values: values.iter().map(|v| Value::Int(*v)).collect(),
        }
    }

    #[tokio::test]
    async fn columns_left_out_and_operations_per_table_are_filtered() {
        let config: crate::config::TaskConfig = "name = \"t\"\nmigration = [\"incremental\"]\n\
             source.url = \"mysql://root@127.0.0.1:3306\"\n\
             target.url = \"postgres://postgres@127.0.0.1/postgres\"\n\
             objects.include = [\"shop\"]\n\
             incremental.operations = [\"insert\", \"update\", \"delete\", \"ddl\"]\n\
             [tables.\"shop.orders\"]\ncolumns.exclude = [\"secret\"]\n\
             [tables.\"shop.log\"]\noperations = [\"insert\"]\n"
            .parse()
            .unwrap();
        let orders = TableName::new("shop", "orders");
        let log = TableName::new("shop", "log");
        let catalog = Catalog::default();
        let mut schema = config.schema_options_for(&catalog).unwrap();
        schema.columns = crate::columns::filters(
            &config,
            &Catalog {
                schemas: vec![dts_core::Schema {
                    name: "shop".into(),
                    tables: vec![dts_core::Table {
                        name: orders.clone(),
                        columns: Vec::new(),
                        primary_key: None,
                        indexes: Vec::new(),
                        foreign_keys: Vec::new(),
                        comment: None,
                        estimated_rows: 0,
                        auto_increment: None,
                    }],
                }],
                ..Catalog::default()
            },
        )
        .unwrap();
        let all = Arc::new(vec!["id".to_string(), "secret".into(), "n".into()]);
        let key = Arc::new(vec!["id".to_string()]);
        let events = vec![
            event(Change::Insert {
                table: orders.clone(),
                row: row(&all, &[1, 2, 3]),
            }),
            event(Change::Update {
                table: orders.clone(),
                before: row(&key, &[1]),
                after: row(&all, &[1, 5, 3]),
            }),
            event(Change::Relation {
                table: orders.clone(),
                columns: ["id", "secret"]
                    .iter()
                    .map(|n| RelationColumn {
                        name: (*n).into(),
                        data_type: "integer".into(),
                        key: *n == "id",
                        ordinal: None,
                        not_null: false,
                        default: None,
                        missing: None,
                    })
                    .collect(),
            }),
            event(Change::Insert {
                table: log.clone(),
                row: row(&key, &[1]),
            }),
            event(Change::Delete {
                table: log.clone(),
                row: row(&key, &[1]),
            }),
            event(Change::Truncate { table: log.clone() }),
            event(Change::Ddl {
                schema: Some("shop".into()),
                sql: "ALTER TABLE log ADD x int".into(),
                sql_mode: SqlMode::default(),
            }),
            event(Change::Ddl {
                schema: Some("shop".into()),
                sql: "ALTER TABLE orders ADD x int".into(),
                sql_mode: SqlMode::default(),
            }),
        ];
        let mut filter = ChangeFilter::new(Events(events), &config, &schema);
        let out = filter
            .next_events(100, Duration::from_millis(1))
            .await
            .unwrap();
        let kinds: Vec<String> = out
            .iter()
            .map(|e| match &e.change {
                Change::Insert { table, row } => format!("insert {} {:?}", table.name, row.columns),
                Change::Update { after, before, .. } => {
                    format!("update {:?} {:?}", before.columns, after.columns)
                }
                Change::Relation { columns, .. } => format!("relation {}", columns.len()),
                Change::Delete { .. } => "delete".into(),
                Change::Truncate { .. } => "truncate".into(),
                Change::Ddl { sql, .. } => sql.clone(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "insert orders [\"id\", \"n\"]",
                "update [\"id\"] [\"id\", \"n\"]",
                "relation 1",
                "insert log [\"id\"]",
                "ALTER TABLE orders ADD x int",
            ]
        );
        let Change::Update { after, .. } = &out[1].change else {
            panic!()
        };
        assert_eq!(after.values, [Value::Int(1), Value::Int(3)]);
    }
}
