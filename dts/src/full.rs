//! Full data migration: snapshot, chunk plans (persisted, so a resumed run uses the same
//! boundaries), parallel copy with checkpoints, and the value conversion between engines.

use std::collections::BTreeSet;
use std::sync::Arc;

use dts_core::{Chunk, ChunkSink, Error, Position, Result, TableName, TargetTable};
use dts_fullload::{
    copy_tables, plan_chunks, BadRowPolicy, CopyOptions, CopySummary, ProgressEvent, TableJob,
};
use tokio::sync::mpsc;

use crate::config::{BadRows, MigrationType, NonTransactional};
use crate::task::Run;

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

/// Runs the full data migration of every table of the run's plan.
pub(crate) async fn run_full_load(
    run: &Run<'_>,
    events: Option<mpsc::UnboundedSender<ProgressEvent>>,
) -> Result<FullReport> {
    let config = run.config;
    let (catalog, plan, store) = (&run.plan.catalog, &run.plan.schema, &run.store);
    let workers = config.full.workers();
    // Tables a snapshot does not hold still (non-transactional engines), when the task
    // accepts locking them (the precheck refuses them otherwise): locked against writes
    // before the snapshot's position is fixed, until their copy is done.
    let hold: Vec<TableName> = if config.full.non_transactional == NonTransactional::Lock {
        let selected: Vec<TableName> = plan.tables.iter().map(|t| t.source.clone()).collect();
        run.source
            .non_transactional_tables(&selected)
            .await?
            .into_iter()
            .map(|(t, _)| t)
            .collect()
    } else {
        Vec::new()
    };
    if !hold.is_empty() {
        tracing::info!(tables = ?hold, "locking non-transactional tables for their copy");
    }
    let (snapshot, read_lock) = run.source.open_snapshot_holding(workers, &hold).await?;
    let position = snapshot.position.clone();
    let mut readers = snapshot.readers;
    store.record_snapshot(position.as_ref()).await?;
    tracing::info!(position = ?position, readers = readers.len(), "snapshot opened");
    if config.runs(MigrationType::Incremental) {
        // The source schema as of the snapshot: replication tracks schema changes from here,
        // not from a later reading that may include changes still waiting in the binlog.
        if let Some(p) = &position {
            store.record_schema(catalog, p).await?;
        }
    }

    let mut sinks = Vec::with_capacity(readers.len());
    for _ in 0..readers.len() {
        sinks.push(run.target.chunk_sink(&config.name).await?);
    }

    let mut jobs = Vec::new();
    for tp in &plan.tables {
        let Some(table) = catalog.table(&tp.source) else {
            continue;
        };
        let copied: Vec<&dts_schema::ColumnPlan> = tp.columns.iter().filter(|c| c.copied).collect();
        let source_columns: Vec<String> = copied.iter().map(|c| c.source_name.clone()).collect();
        if run.source.read_columns(table) != source_columns {
            return Err(Error::internal(format!(
                "column order of `{}` differs between reader and plan",
                tp.source
            )));
        }
        let target = TargetTable {
            name: tp.target.clone(),
            columns: copied.iter().map(|c| c.target_name.clone()).collect(),
        };
        let chunks = match store.chunk_plan(&tp.source).await? {
            Some(chunks) => chunks,
            None => {
                let key = tp.chunk_key.clone().unwrap_or_default();
                let started = std::time::Instant::now();
                let chunks = if key.is_empty() {
                    vec![Chunk::whole_table()]
                } else {
                    let mut prober =
                        dts_core::SnapshotReader::key_prober(&mut readers[0], table, &key)?;
                    plan_chunks(
                        &mut prober,
                        &key,
                        config.full.rows_per_chunk,
                        table.estimated_rows,
                    )
                    .await?
                };
                tracing::debug!(table = %tp.source, chunks = chunks.len(), ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX), "chunks planned");
                store.store_chunk_plan(&tp.source, &chunks).await?;
                chunks
            }
        };
        let done: BTreeSet<u32> = sinks[0].done_chunks(&target).await?.into_iter().collect();
        jobs.push(TableJob {
            source: Arc::new(table.clone()),
            source_columns,
            target,
            mapper: dts_connectors::row_mapper(
                run.source.engine(),
                run.target.engine(),
                tp,
                config.mapping_options(),
            )?,
            chunks,
            done,
            estimated_rows: table.estimated_rows,
        });
    }
    let options = CopyOptions {
        max_rows_per_second: config.full.max_rows_per_second,
        max_bytes_per_second: config.full.max_bytes_per_second,
        bad_rows: match config.full.bad_rows {
            BadRows::Stop => BadRowPolicy::Stop,
            BadRows::Reject => BadRowPolicy::Reject(config.full.reject_file.clone()),
        },
        ..CopyOptions::default()
    };
    let mappers: Vec<_> = jobs.iter().map(|j| j.mapper.clone()).collect();
    let copy = copy_tables(jobs, readers, sinks, options, events, run.stop.clone()).await?;
    if let Some(lock) = read_lock {
        lock.release().await?;
    }
    let zero = mappers.iter().flat_map(|m| m.replaced_values()).collect();
    Ok(FullReport {
        copy,
        position,
        zero_dates: zero,
    })
}
