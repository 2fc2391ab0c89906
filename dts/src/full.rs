//! Full data migration: snapshot, chunk plans (persisted, so a resumed run uses the same
//! boundaries), parallel copy with checkpoints, and the value conversion between engines.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dts_connectors::mysql::{MySqlSnapshot, MySqlSnapshotReader};
use dts_connectors::postgres::{map_error, PgChunkSink};
use dts_core::{Catalog, Chunk, Error, Position, Result, Row, TableName, TargetTable, Value};
use dts_fullload::{
    copy_tables, plan_chunks, BadRowPolicy, ConvertFailure, CopyOptions, CopySummary,
    ProgressEvent, RowConverter, TableJob,
};
use dts_schema::SchemaPlan;
use dts_typemap::{ColumnMapping, MappingOptions};
use tokio::sync::{mpsc, watch};
use tokio_postgres::Client;

use crate::config::{BadRows, MigrationType, TaskConfig};

/// What the full data migration did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FullReport {
    /// The copy's counters.
    pub copy: CopySummary,
    /// The snapshot's log position, where incremental migration starts.
    pub position: Option<Position>,
    /// Zero dates written as NULL, per `table.column`.
    pub zero_dates: Vec<(String, u64)>,
}

/// Converts MySQL values to PostgreSQL values with each column's mapping, counting zero
/// dates written as NULL.
struct MappingConverter {
    tables: Vec<Vec<ColumnMapping>>,
    options: MappingOptions,
    zero_dates: Vec<Vec<AtomicU64>>,
}

fn has_zero_date(v: &Value) -> bool {
    match v {
        Value::Date(d) => dts_typemap::is_zero_date(d),
        Value::DateTime(dt) | Value::Timestamp(dt) => dts_typemap::is_zero_date(&dt.date),
        _ => false,
    }
}

impl RowConverter for MappingConverter {
    fn convert(&self, table: usize, row: &mut Row) -> std::result::Result<(), ConvertFailure> {
        let mappings = &self.tables[table];
        for (i, (v, m)) in row.iter_mut().zip(mappings).enumerate() {
            let input = std::mem::replace(v, Value::Null);
            let zero = has_zero_date(&input);
            match dts_typemap::convert_mysql_value(m, input, &self.options) {
                Ok(out) => {
                    if zero && out.is_null() {
                        self.zero_dates[table][i].fetch_add(1, Ordering::Relaxed);
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
}

async fn ensure_meta(client: &Client) -> Result<()> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS dts_meta.chunk_plan (
                 task text NOT NULL,
                 schema_name text NOT NULL,
                 table_name text NOT NULL,
                 plan jsonb NOT NULL,
                 PRIMARY KEY (task, schema_name, table_name)
             );
             CREATE TABLE IF NOT EXISTS dts_meta.snapshot (
                 task text NOT NULL,
                 taken_at timestamptz NOT NULL DEFAULT clock_timestamp(),
                 position jsonb
             );",
        )
        .await
        .map_err(|e| map_error(e, "creating dts_meta tables in the target"))
}

/// The snapshot position recorded by the first full-load run of `task`, if any: the
/// position incremental migration starts from.
pub async fn first_snapshot_position(client: &Client, task: &str) -> Result<Option<Position>> {
    let exists: bool = client
        .query_one("SELECT to_regclass('dts_meta.snapshot') IS NOT NULL", &[])
        .await
        .map_err(|e| map_error(e, "reading task state"))?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let row = client
        .query_opt(
            "SELECT position::text FROM dts_meta.snapshot WHERE task = $1 AND position IS NOT NULL \
             ORDER BY taken_at LIMIT 1",
            &[&task],
        )
        .await
        .map_err(|e| map_error(e, "reading task state"))?;
    row.map(|r| {
        let text: String = r.get(0);
        serde_json::from_str(&text)
            .map_err(|e| Error::internal("stored snapshot position is not readable").with_source(e))
    })
    .transpose()
}

async fn load_plan(client: &Client, task: &str, table: &TableName) -> Result<Option<Vec<Chunk>>> {
    let row = client
        .query_opt(
            "SELECT plan::text FROM dts_meta.chunk_plan \
             WHERE task = $1 AND schema_name = $2 AND table_name = $3",
            &[&task, &table.schema, &table.name],
        )
        .await
        .map_err(|e| map_error(e, format!("reading the chunk plan of `{table}`")))?;
    row.map(|r| {
        let text: String = r.get(0);
        serde_json::from_str(&text).map_err(|e| {
            Error::internal(format!("stored chunk plan of `{table}` is not readable"))
                .with_source(e)
        })
    })
    .transpose()
}

async fn store_plan(
    client: &Client,
    task: &str,
    table: &TableName,
    chunks: &[Chunk],
) -> Result<()> {
    let text = serde_json::to_string(chunks)
        .map_err(|e| Error::internal("cannot serialise a chunk plan").with_source(e))?;
    client
        .execute(
            "INSERT INTO dts_meta.chunk_plan (task, schema_name, table_name, plan) \
             VALUES ($1, $2, $3, $4::text::jsonb)",
            &[&task, &table.schema, &table.name, &text],
        )
        .await
        .map_err(|e| map_error(e, format!("storing the chunk plan of `{table}`")))?;
    Ok(())
}

/// Runs the full data migration of every table of `plan`.
pub(crate) async fn run_full_load(
    config: &TaskConfig,
    catalog: &Catalog,
    plan: &SchemaPlan,
    control: &Client,
    events: Option<mpsc::UnboundedSender<ProgressEvent>>,
    stop: watch::Receiver<bool>,
) -> Result<FullReport> {
    ensure_meta(control).await?;
    let workers = config.full.workers();
    let (snapshot, mut readers) = MySqlSnapshot::open(&config.source.url, workers).await?;
    let position = snapshot.position().cloned();
    let position_json = position
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| Error::internal("cannot serialise a position").with_source(e))?;
    control
        .execute(
            "INSERT INTO dts_meta.snapshot (task, position) VALUES ($1, $2::text::jsonb)",
            &[&config.name, &position_json],
        )
        .await
        .map_err(|e| map_error(e, "recording the snapshot position"))?;
    tracing::info!(position = ?position, readers = readers.len(), "snapshot opened");
    if config.runs(MigrationType::Incremental) {
        // The source schema as of the snapshot: replication tracks schema changes from here,
        // not from a later reading that may include changes still waiting in the binlog.
        if let Some(p) = &position {
            dts_connectors::postgres::record_schema(control, &config.name, catalog, p).await?;
        }
    }

    let mut sinks = Vec::with_capacity(readers.len());
    for _ in 0..readers.len() {
        sinks.push(PgChunkSink::connect(&config.target.url, &config.name).await?);
    }

    let mut jobs = Vec::new();
    let mut mappings = Vec::new();
    for tp in &plan.tables {
        let Some(table) = catalog.table(&tp.source) else {
            continue;
        };
        let copied: Vec<&dts_schema::ColumnPlan> = tp.columns.iter().filter(|c| c.copied).collect();
        let source_columns: Vec<String> = copied.iter().map(|c| c.source_name.clone()).collect();
        let read_order: Vec<String> = MySqlSnapshotReader::columns_read(table)
            .iter()
            .map(|c| c.name.clone())
            .collect();
        if read_order != source_columns {
            return Err(Error::internal(format!(
                "column order of `{}` differs between reader and plan",
                tp.source
            )));
        }
        let target = TargetTable {
            name: tp.target.clone(),
            columns: copied.iter().map(|c| c.target_name.clone()).collect(),
        };
        let chunks = match load_plan(control, &config.name, &tp.source).await? {
            Some(chunks) => chunks,
            None => {
                let key = tp.chunk_key.clone().unwrap_or_default();
                let started = std::time::Instant::now();
                let chunks = if key.is_empty() {
                    vec![Chunk::whole_table()]
                } else {
                    let mut prober = readers[0].key_prober(table, &key)?;
                    plan_chunks(
                        &mut prober,
                        &key,
                        config.full.rows_per_chunk,
                        table.estimated_rows,
                    )
                    .await?
                };
                tracing::debug!(table = %tp.source, chunks = chunks.len(), ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX), "chunks planned");
                store_plan(control, &config.name, &tp.source, &chunks).await?;
                chunks
            }
        };
        let done: BTreeSet<u32> = dts_core::ChunkSink::done_chunks(&mut sinks[0], &target)
            .await?
            .into_iter()
            .collect();
        mappings.push(copied.iter().map(|c| c.mapping.clone()).collect::<Vec<_>>());
        jobs.push(TableJob {
            source: Arc::new(table.clone()),
            source_columns,
            target,
            chunks,
            done,
            estimated_rows: table.estimated_rows,
        });
    }
    let zero_dates = mappings
        .iter()
        .map(|m| m.iter().map(|_| AtomicU64::new(0)).collect())
        .collect();
    let converter = Arc::new(MappingConverter {
        tables: mappings,
        options: config.mapping_options(),
        zero_dates,
    });
    let options = CopyOptions {
        max_rows_per_second: config.full.max_rows_per_second,
        max_bytes_per_second: config.full.max_bytes_per_second,
        bad_rows: match config.full.bad_rows {
            BadRows::Stop => BadRowPolicy::Stop,
            BadRows::Reject => BadRowPolicy::Reject(config.full.reject_file.clone()),
        },
        ..CopyOptions::default()
    };
    let names: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            j.source_columns
                .iter()
                .map(|c| format!("{}.{c}", j.source.name))
                .collect()
        })
        .collect();
    let copy = copy_tables(
        jobs,
        readers,
        sinks,
        converter.clone(),
        options,
        events,
        stop,
    )
    .await?;
    drop(snapshot);
    let mut zero = Vec::new();
    for (t, cols) in converter.zero_dates.iter().enumerate() {
        for (c, n) in cols.iter().enumerate() {
            let n = n.load(Ordering::Relaxed);
            if n > 0 {
                zero.push((names[t][c].clone(), n));
            }
        }
    }
    Ok(FullReport {
        copy,
        position,
        zero_dates: zero,
    })
}
