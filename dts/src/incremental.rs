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

/// A change source that passes on only the operations the task replicates.
struct OperationFilter<S> {
    inner: S,
    operations: Vec<Operation>,
}

#[dts_core::async_trait]
impl<S: ChangeSource> ChangeSource for OperationFilter<S> {
    async fn next_events(&mut self, max: usize, timeout: Duration) -> Result<Vec<ChangeEvent>> {
        let mut events = self.inner.next_events(max, timeout).await?;
        let ops = &self.operations;
        events.retain(|e| match &e.change {
            Change::Insert { .. } => ops.contains(&Operation::Insert),
            Change::Update { .. } => ops.contains(&Operation::Update),
            Change::Delete { .. } => ops.contains(&Operation::Delete),
            Change::Truncate { .. } => ops.contains(&Operation::Truncate),
            Change::Ddl { .. } => ops.contains(&Operation::Ddl),
            _ => true,
        });
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
        schema: config.schema_options()?,
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
    let operations = config.incremental.operations.clone();
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
            let operations = operations.clone();
            let capture = capture.clone();
            let task = task.clone();
            let mut mapping = mapping.clone();
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
                Ok(MappedSource::new(
                    checks_ref.tap(OperationFilter {
                        inner: crate::filter::RowFilterSource::new(inner, row_filters),
                        operations,
                    }),
                    mapper,
                ))
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
