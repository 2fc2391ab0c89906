//! Full data migration: snapshot, chunk plans (persisted, so a resumed run uses the same
//! boundaries), parallel copy with checkpoints, and the value conversion between engines.
//!
//! # Retries
//!
//! A transient failure during the copy (a lost source or target connection, a deadlock, a
//! lock wait timeout: [`Error::is_retryable`]) is retried the way a resumed run would go
//! on, within the task's retry window (`incremental.retry_window_seconds`, counted from the
//! first failure since chunks last got done): the workers finish or abandon the chunks in
//! flight, then a new snapshot is opened and recorded, and the chunks the target does not
//! record as done are copied again. A chunk commits together with its checkpoint, so an
//! abandoned chunk left nothing behind and a chunk whose commit went through before its
//! connection was lost is not copied twice. Replication tells the copies of each snapshot
//! apart exactly as after a resumed run.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dts_core::{
    Chunk, ChunkSink, Error, ErrorKind, Position, Result, SnapshotReader, TableName, TargetTable,
};
use dts_fullload::{
    copy_tables, plan_chunks, BadRowPolicy, CopyOptions, CopySummary, ProgressEvent, TableJob,
};
use tokio::sync::mpsc;

use crate::config::{BadRows, MigrationType, NonTransactional};
use crate::task::{Run, Step};

/// What the full data migration did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FullReport {
    /// The copy's counters, over every attempt of this run.
    pub copy: CopySummary,
    /// The snapshot's log position, where incremental migration starts.
    pub position: Option<Position>,
    /// Values written as the type options say, per `table.column`: zero dates written as
    /// NULL (from MySQL); NaN and infinities written as NULL or clamped, -0 as 0 (from
    /// PostgreSQL into MySQL).
    pub zero_dates: Vec<(String, u64)>,
    /// Transient failures the copy recovered from by copying the unfinished chunks again.
    pub retries: u64,
    /// The verification after the copy (`full.verify`), when it ran.
    pub verify: Option<dts_fullload::verify::VerifyReport>,
}

/// The first pause before retrying after a transient failure; it doubles up to
/// [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(200);

/// The longest pause between retries.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// Runs the full data migration of every table of the run's plan, retrying transient
/// failures within the task's retry window (see the module documentation).
pub(crate) async fn run_full_load(
    run: &mut Run<'_>,
    events: Option<mpsc::UnboundedSender<ProgressEvent>>,
) -> Result<FullReport> {
    let window = Duration::from_secs(run.config.incremental.retry_window_seconds);
    // Counts what every attempt copied (a failed attempt returns no summary), and passes
    // the events on.
    let (tx, mut rx) = mpsc::unbounded_channel::<ProgressEvent>();
    let counter = tokio::spawn(async move {
        let mut copied = CopySummary::default();
        while let Some(e) = rx.recv().await {
            match &e {
                ProgressEvent::ChunkDone { rows, bytes, .. } => {
                    copied.rows += rows;
                    copied.bytes += bytes;
                    copied.chunks += 1;
                }
                ProgressEvent::RowRejected { .. } => copied.rejected += 1,
                _ => {}
            }
            if let Some(out) = &events {
                let _ = out.send(e);
            }
        }
        copied
    });

    let mut report = FullReport::default();
    let mut first = FirstAttempt::default();
    let mut streak: Option<Instant> = None;
    let mut delay = FIRST_RETRY_DELAY;
    let mut done_before = None;
    let result = loop {
        let attempt = copy_once(run, tx.clone(), &mut first).await;
        let e = match attempt {
            Ok(full) => {
                report.zero_dates = full.zero_dates;
                break Ok(());
            }
            Err(e) => e,
        };
        if !e.is_retryable() || *run.stop.borrow() {
            break Err(e);
        }
        // Chunks done since the last failure start a new streak.
        let done_now = done_chunks(run).await.ok();
        if done_now.is_some() && done_now > done_before {
            streak = None;
            delay = FIRST_RETRY_DELAY;
        }
        if done_now.is_some() {
            done_before = done_now;
        }
        let since = *streak.get_or_insert_with(Instant::now);
        if since.elapsed() >= window {
            break Err(Error::new(
                e.kind(),
                format!(
                    "the full load failed for {} s, the task's retry window \
                     (incremental.retry_window_seconds); run the task again to resume",
                    since.elapsed().as_secs()
                ),
            )
            .with_source(e));
        }
        report.retries += 1;
        crate::metrics::count_retry("full", &e);
        tracing::warn!(error = %e.report(), retry = report.retries, "retrying the full load's unfinished chunks");
        let mut stop = run.stop.clone();
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
        delay = (delay * 2).min(MAX_RETRY_DELAY);
        if *run.stop.borrow() {
            break Err(Error::new(
                ErrorKind::Interrupted,
                "copy stopped while retrying; run the task again to resume",
            )
            .with_source(e));
        }
        if let Err(e) = restore_target(run).await {
            break Err(e);
        }
    };
    drop(tx);
    let mut copied = counter
        .await
        .map_err(|e| Error::internal("full load event counter panicked").with_source(e))?;
    result?;
    copied.chunks_skipped = first.skipped.unwrap_or_default();
    report.copy = copied;
    report.position = first.position.flatten();
    Ok(report)
}

/// What the first attempt of a run found, for the run's report.
#[derive(Default)]
struct FirstAttempt {
    /// Chunks done by earlier runs.
    skipped: Option<u64>,
    /// The position of the run's first snapshot.
    position: Option<Option<Position>>,
}

/// Chunks the target records as done, over every table of the plan.
async fn done_chunks(run: &Run<'_>) -> Result<usize> {
    let mut sink = run.target.chunk_sink(&run.config.name).await?;
    let mut n = 0;
    for tp in &run.plan.schema.tables {
        let target = TargetTable {
            name: tp.target.clone(),
            columns: Vec::new(),
        };
        n += sink.done_chunks(&target).await?.len();
    }
    Ok(n)
}

/// Replaces the run's target connection and state store if the store's connection was
/// lost, retrying within the task's retry window. The run lock is not the store's: it lives on
/// a session of its own, watched (and taken again if lost) for the whole run.
pub(crate) async fn restore_target(run: &mut Run<'_>) -> Result<()> {
    let window = Duration::from_secs(run.config.incremental.retry_window_seconds);
    let started = Instant::now();
    let mut delay = FIRST_RETRY_DELAY;
    loop {
        let e = match run.store.is_done(Step::FullLoad.key()).await {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Connection => match reconnect(run).await {
                Ok(()) => {
                    tracing::info!("reconnected to the target");
                    return Ok(());
                }
                Err(e) => e,
            },
            Err(e) => e,
        };
        if !e.is_retryable() || started.elapsed() >= window {
            return Err(e);
        }
        tracing::warn!(error = %e.report(), "reconnecting to the target");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RETRY_DELAY);
    }
}

async fn reconnect(run: &mut Run<'_>) -> Result<()> {
    let target = run.target.reconnect().await?;
    // The run lock is not this store's to take: it lives on a session of its own, which
    // the run's lock watch replaces (and takes the lock again) if it was lost.
    run.store = target.state_store(&run.config.name).await?.into();
    run.target = target;
    Ok(())
}

/// One attempt at the full data migration: opens (and records) a snapshot, plans the chunks
/// of tables without a stored plan, and copies every chunk not yet done. Fills in `first`
/// on the first attempt.
async fn copy_once(
    run: &Run<'_>,
    events: mpsc::UnboundedSender<ProgressEvent>,
    first: &mut FirstAttempt,
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
    let (snapshot, read_lock) = if config.runs(MigrationType::Incremental) {
        // Change capture continues from this snapshot (on PostgreSQL through the task's
        // slot, created with it).
        let capture = crate::incremental::capture_options(config)?;
        run.source
            .open_snapshot_for_capture(workers, &hold, &capture)
            .await?
    } else {
        run.source.open_snapshot_holding(workers, &hold).await?
    };
    let position = snapshot.position.clone();
    let mut readers = snapshot.readers;
    // Schema changes and truncations of the tables wait for their copy (PostgreSQL: its
    // snapshots keep rows, not table definitions).
    let tables: Vec<&dts_core::Table> = plan
        .tables
        .iter()
        .filter_map(|tp| catalog.table(&tp.source))
        .collect();
    for reader in &mut readers {
        reader.hold(&tables).await?;
    }
    store.record_snapshot(position.as_ref()).await?;
    first.position.get_or_insert_with(|| position.clone());
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
        // Rows travel in the target's encoding, not as values, when the reader offers one
        // that gives what the table's mapping would (no conversion at all, or the reader
        // converting as the mapping does) and the target's sink takes it.
        let mut encoding = None;
        if let Some(offered) = readers[0].row_encoding(table).await? {
            if dts_connectors::encoding_fits_plan(
                run.source.engine(),
                run.target.engine(),
                tp,
                &offered,
            ) && sinks[0].accepts_encoding(&target, &offered).await?
            {
                encoding = Some(offered);
            }
        }
        tracing::debug!(table = %tp.source, encoded = encoding.is_some(), "copy planned");
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
            encoding,
        });
    }
    let options = CopyOptions {
        max_rows_per_second: config.full.max_rows_per_second,
        max_bytes_per_second: config.full.max_bytes_per_second,
        bad_rows: match config.full.bad_rows {
            BadRows::Stop => BadRowPolicy::Stop,
            BadRows::Reject => BadRowPolicy::Reject(config.full.reject_file.clone()),
        },
        stall_timeout: (config.full.stall_timeout_seconds > 0)
            .then(|| std::time::Duration::from_secs(config.full.stall_timeout_seconds)),
        ..CopyOptions::default()
    };
    let mappers: Vec<_> = jobs.iter().map(|j| j.mapper.clone()).collect();
    first
        .skipped
        .get_or_insert(jobs.iter().map(|j| j.done.len() as u64).sum());
    let copy = copy_tables(
        jobs,
        readers,
        sinks,
        options,
        Some(events),
        run.stop.clone(),
    )
    .await?;
    if let Some(lock) = read_lock {
        lock.release().await?;
    }
    let zero = mappers.iter().flat_map(|m| m.replaced_values()).collect();
    Ok(FullReport {
        copy,
        position,
        zero_dates: zero,
        retries: 0,
        verify: None,
    })
}
