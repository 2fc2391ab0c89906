//! Incremental migration: binlog change capture applied to PostgreSQL, starting exactly at
//! the snapshot position of the full load, with the applied position committed together
//! with the data it covers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dts_cdc::{replicate, CdcEvent, CdcOptions, CdcSummary};
use dts_connectors::mysql::{BinlogFilter, MySqlBinlogSource};
use dts_connectors::postgres::{
    map_error, read_position, read_schema, record_position, record_schema, PgApplySink,
};
use dts_core::{Catalog, Change, ChangeEvent, ChangeSource, Position, Result, TableName};
use dts_schema::SchemaTracker;
use tokio::sync::{mpsc, watch};
use tokio_postgres::Client;

use crate::config::{Operation, TaskConfig, UntranslatableDdl};

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

/// The snapshot positions recorded by the full-load runs of `task`, oldest first.
async fn snapshot_positions(client: &Client, task: &str) -> Result<Vec<Position>> {
    let exists: bool = client
        .query_one("SELECT to_regclass('dts_meta.snapshot') IS NOT NULL", &[])
        .await
        .map_err(|e| map_error(e, "reading task state"))?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT position::text FROM dts_meta.snapshot \
             WHERE task = $1 AND position IS NOT NULL ORDER BY taken_at",
            &[&task],
        )
        .await
        .map_err(|e| map_error(e, "reading task state"))?;
    rows.iter()
        .map(|r| {
            serde_json::from_str(r.get::<_, &str>(0)).map_err(|e| {
                dts_core::Error::internal("stored snapshot position is not readable").with_source(e)
            })
        })
        .collect()
}

/// For each table copied whole (no key) by the full load, the snapshot position its copy was
/// taken at: the last snapshot recorded before its chunk committed. Keyed by the source
/// table name.
async fn keyless_copy_positions(
    client: &Client,
    task: &str,
    plan: &dts_schema::SchemaPlan,
) -> Result<HashMap<TableName, Position>> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('dts_meta.chunk') IS NOT NULL \
             AND to_regclass('dts_meta.snapshot') IS NOT NULL",
            &[],
        )
        .await
        .map_err(|e| map_error(e, "reading task state"))?
        .get(0);
    let mut out = HashMap::new();
    if !exists {
        return Ok(out);
    }
    for tp in plan.tables.iter().filter(|t| t.chunk_key.is_none()) {
        let row = client
            .query_opt(
                "SELECT (SELECT s.position::text FROM dts_meta.snapshot s \
                         WHERE s.task = c.task AND s.position IS NOT NULL \
                           AND s.taken_at <= c.done_at \
                         ORDER BY s.taken_at DESC LIMIT 1) \
                 FROM dts_meta.chunk c \
                 WHERE c.task = $1 AND c.schema_name = $2 AND c.table_name = $3 AND c.chunk = 0",
                &[&task, &tp.target.schema, &tp.target.name],
            )
            .await
            .map_err(|e| map_error(e, "reading task state"))?;
        if let Some(text) = row.and_then(|r| r.get::<_, Option<String>>(0)) {
            let position: Position = serde_json::from_str(&text).map_err(|e| {
                dts_core::Error::internal("stored snapshot position is not readable").with_source(e)
            })?;
            out.insert(tp.source.clone(), position);
        }
    }
    Ok(out)
}

/// Ends the binlog connection a killed earlier run of `task` left on the source (recorded in
/// `dts_meta.cdc_source`), so the new reader can register with the same server id at once.
async fn end_stale_reader(control: &Client, task: &str, source_url: &str) -> Result<()> {
    control
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS dts_meta.cdc_source ( \
                 task text PRIMARY KEY, connection_id bigint NOT NULL, started_at timestamptz)",
        )
        .await
        .map_err(|e| map_error(e, "creating dts_meta.cdc_source"))?;
    let row = control
        .query_opt(
            "SELECT connection_id FROM dts_meta.cdc_source WHERE task = $1",
            &[&task],
        )
        .await
        .map_err(|e| map_error(e, "reading task state"))?;
    let Some(id) = row.map(|r| r.get::<_, i64>(0)) else {
        return Ok(());
    };
    let source = dts_connectors::mysql::MySqlSource::connect(source_url).await?;
    if source
        .end_binlog_reader(u64::try_from(id).unwrap_or(0))
        .await?
    {
        tracing::info!(
            task,
            connection = id,
            "ended the binlog reader of an earlier run"
        );
    }
    Ok(())
}

async fn remember_reader(control: &Client, task: &str, connection_id: u32) -> Result<()> {
    control
        .execute(
            "INSERT INTO dts_meta.cdc_source (task, connection_id, started_at) \
             VALUES ($1, $2, now()) ON CONFLICT (task) DO UPDATE \
             SET connection_id = excluded.connection_id, started_at = excluded.started_at",
            &[&task, &i64::from(connection_id)],
        )
        .await
        .map_err(|e| map_error(e, "recording the binlog reader"))?;
    Ok(())
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
}

/// Runs incremental migration until `stop`, or until everything the source had committed
/// when this phase began is applied (`until_caught_up`).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_incremental(
    config: &TaskConfig,
    catalog: &Catalog,
    plan: &dts_schema::SchemaPlan,
    control: &Client,
    until_caught_up: bool,
    full_ran: bool,
    events: Option<mpsc::UnboundedSender<CdcEvent>>,
    stop: watch::Receiver<bool>,
) -> Result<IncrementalReport> {
    let task = config.name.clone();
    let source_url = config.source.url.clone();
    let target_url = config.target.url.clone();

    // Where to start: the applied position of an earlier run, else the (first) snapshot
    // position of the full load, else the source's current position.
    let snapshots = snapshot_positions(control, &task).await?;
    if read_position(control, &task).await?.is_none() {
        let start = match snapshots.first() {
            Some(p) => p.clone(),
            None if full_ran => {
                return Err(dts_core::Error::config(
                    "the full load recorded no binlog position (is log_bin off?)",
                ))
            }
            None => MySqlBinlogSource::current_position(&source_url).await?,
        };
        record_position(control, &task, &start).await?;
        // Replication tracks schema changes from the schema at its start position.
        record_schema(control, &task, catalog, &start).await?;
    }
    // A full load resumed after a crash copied later chunks from a later snapshot: until the
    // stream passes the last snapshot, changes may already be in the target.
    let idempotent_until = if snapshots.len() > 1 {
        snapshots.last().cloned()
    } else {
        None
    };
    let copied_at = keyless_copy_positions(control, &task, plan).await?;
    end_stale_reader(control, &task, &source_url).await?;

    let selection = config.selection()?;
    let selects: Arc<dyn Fn(&TableName) -> bool + Send + Sync> = {
        let s = selection.clone();
        Arc::new(move |t: &TableName| s.selects(t))
    };
    let tracked = match read_schema(control, &task).await? {
        Some(stored) => stored,
        None => catalog.clone(),
    };
    let tracker = Arc::new(Mutex::new(SchemaTracker::new(
        tracked,
        config.schema_options()?,
        selects.clone(),
    )));
    let filter = BinlogFilter {
        tables: selects,
        databases: {
            let s = selection.clone();
            Arc::new(move |d: &str| s.selects_database(d))
        },
    };
    let until = if until_caught_up {
        Some(MySqlBinlogSource::current_position(&source_url).await?)
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
    let server_id = config.incremental.server_id(&task);
    let operations = config.incremental.operations.clone();
    let mapping = config.mapping_options();
    let skip_ddl = config.incremental.untranslatable_ddl == UntranslatableDdl::Skip;

    let summary: CdcSummary = replicate(
        |from: Position| {
            let url = source_url.clone();
            let filter = filter.clone();
            let operations = operations.clone();
            let task = task.clone();
            let target_url = target_url.clone();
            async move {
                let inner = MySqlBinlogSource::start(&url, server_id, &from, filter).await?;
                // The reader's connection id, so that a later run can end it if this
                // process is killed; written through a short-lived connection.
                let registry = dts_connectors::postgres::connect_client(&target_url).await?;
                remember_reader(&registry, &task, inner.connection_id()).await?;
                Ok(OperationFilter { inner, operations })
            }
        },
        || {
            let url = target_url.clone();
            let task = task.clone();
            let tracker = tracker.clone();
            let idempotent_until = idempotent_until.clone();
            let copied_at = copied_at.clone();
            async move {
                let sink =
                    PgApplySink::connect_shared(&url, &task, tracker, mapping, idempotent_until)
                        .await?;
                Ok(sink
                    .with_skip_unsupported_ddl(skip_ddl)
                    .with_copied_at(copied_at))
            }
        },
        options,
        events,
        stop,
    )
    .await?;
    Ok(IncrementalReport {
        transactions: summary.transactions,
        rows: summary.rows,
        position: summary.position,
    })
}
