//! Data verification and repair of a task's tables: the chunk plans, row mappings and
//! connectors of the task handed to the verification engine of `dts-fullload`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dts_connectors::{Source, Target};
use dts_core::{
    async_trait, Chunk, Error, ErrorKind, Position, RepairMode, Result, SnapshotReader, StateStore,
    TargetTable,
};
use dts_fullload::verify::{Recheck, RepairOptions, TableCheck, VerifyEvent, VerifyReport, Worker};
use tokio::sync::mpsc::UnboundedSender;

use crate::config::{MigrationType, TaskConfig};

/// How `dts verify` runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// Keys listed per table and kind of difference.
    pub max_keys: usize,
    /// Repair the differences found: run the statements or only write them, and where.
    pub repair: Option<(RepairMode, PathBuf)>,
    /// During replication: how many times differences are re-checked once the target has
    /// applied past the source position they were read at.
    pub recheck_rounds: u32,
    /// How long a re-check waits for replication to reach the source's position.
    pub recheck_patience: Duration,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            max_keys: 10,
            repair: None,
            recheck_rounds: 3,
            recheck_patience: Duration::from_secs(60),
        }
    }
}

impl VerifyOptions {
    /// Repairs the differences found, writing every statement to `file`; with
    /// [`RepairMode::DryRun`] the statements are only written.
    #[must_use]
    pub fn repair(mut self, mode: RepairMode, file: PathBuf) -> Self {
        self.repair = Some((mode, file));
        self
    }

    /// Sets [`VerifyOptions::max_keys`].
    #[must_use]
    pub fn max_keys(mut self, n: usize) -> Self {
        self.max_keys = n;
        self
    }
}

/// Re-reads the source in a new snapshot and waits for the target's applied position.
pub(crate) struct LiveRecheck {
    pub(crate) source: Source,
    pub(crate) store: Box<dyn StateStore>,
    pub(crate) patience: Duration,
}

#[async_trait]
impl Recheck for LiveRecheck {
    async fn snapshot(&self, readers: usize) -> Result<(Position, Vec<Box<dyn SnapshotReader>>)> {
        let snapshot = self.source.open_snapshot(readers).await?;
        let position = snapshot
            .position
            .ok_or_else(|| Error::internal("the source's snapshot has no log position"))?;
        Ok((position, snapshot.readers))
    }

    async fn wait_applied(&self, position: &Position) -> Result<bool> {
        let deadline = Instant::now() + self.patience;
        loop {
            if let Some(applied) = self.store.applied_position().await? {
                if applied.log_cmp(position).is_some_and(|o| o.is_ge()) {
                    return Ok(true);
                }
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// What verifying one table needs besides its chunks: the source table, the target
/// columns, the row mapping and the key.
#[derive(Clone)]
pub(crate) struct TableShape {
    pub(crate) source: Arc<dts_core::Table>,
    pub(crate) target: TargetTable,
    pub(crate) mapper: Arc<dyn dts_core::RowMapper>,
    /// Positions of the key columns in a row; empty when the table is compared whole.
    pub(crate) key: Vec<usize>,
    /// The source names of the key columns (empty likewise).
    pub(crate) key_names: Vec<String>,
}

impl TableShape {
    /// The table to verify in `chunks`.
    pub(crate) fn check(&self, chunks: Vec<Chunk>) -> TableCheck {
        TableCheck {
            source: self.source.clone(),
            target: self.target.clone(),
            mapper: self.mapper.clone(),
            key: self.key.clone(),
            chunks,
        }
    }
}

/// The shape of the task's table `tp` (`None` when the source no longer has it).
pub(crate) fn table_shape(
    config: &TaskConfig,
    source: &Source,
    target: dts_core::Engine,
    plan: &crate::TaskPlan,
    tp: &dts_schema::TablePlan,
) -> Result<Option<TableShape>> {
    let Some(table) = plan.catalog.table(&tp.source) else {
        return Ok(None);
    };
    let copied: Vec<&dts_schema::ColumnPlan> = tp.columns.iter().filter(|c| c.copied).collect();
    let source_columns: Vec<String> = copied.iter().map(|c| c.source_name.clone()).collect();
    if source.read_columns(table) != source_columns {
        return Err(Error::internal(format!(
            "column order of `{}` differs between reader and plan",
            tp.source
        )));
    }
    let key_names = tp.chunk_key.clone().unwrap_or_default();
    let key: Option<Vec<usize>> = key_names
        .iter()
        .map(|k| source_columns.iter().position(|c| c == k))
        .collect();
    let (key, key_names) = match key {
        Some(key) if !key.is_empty() => (key, key_names),
        _ => (Vec::new(), Vec::new()),
    };
    Ok(Some(TableShape {
        source: Arc::new(table.clone()),
        target: TargetTable {
            name: tp.target.clone(),
            columns: copied.iter().map(|c| c.target_name.clone()).collect(),
        },
        mapper: dts_connectors::row_mapper(source.engine(), target, tp, config.mapping_options())?,
        key,
        key_names,
    }))
}

/// Opens source readers in snapshots taken at the call.
struct FreshSource(Source);

#[async_trait]
impl dts_fullload::verify::FreshReader for FreshSource {
    async fn reader(&self) -> Result<Box<dyn SnapshotReader>> {
        self.0.open_reader().await
    }
}

/// Verifies (and repairs, if asked) every table the task selects.
pub(crate) async fn verify(
    config: &TaskConfig,
    options: &VerifyOptions,
    events: Option<UnboundedSender<VerifyEvent>>,
) -> Result<VerifyReport> {
    let source = Source::connect(&config.source.url).await?;
    let target = Target::connect(&config.target.url).await?;
    let plan =
        crate::task::read_plan(config, &source, target.engine(), Some(target.version())).await?;
    // Only the rows the task's filters keep are compared.
    let source = crate::filter::filtered_source(config, source, &plan.catalog)?;
    let store = target.state_store(&config.name).await?;
    // A repair while a process runs the task goes beside its apply: each chunk's repair
    // holds the apply, and writes the source's rows as of a snapshot taken meanwhile.
    let mut beside_apply = None;
    if matches!(&options.repair, Some((mode, _)) if *mode != RepairMode::DryRun) {
        if let Some(h) = store.run_holder().await? {
            let replicating = store
                .task_record()
                .await?
                .is_some_and(|r| r.state == dts_core::TaskState::Incremental)
                && store.applied_position().await?.is_some();
            let why = if !replicating {
                Some(
                    "it is not replicating yet, and a repair while it copies or creates \
                     tables could overwrite newer ones",
                )
            } else if target.engine() != dts_core::Engine::Postgres {
                Some(
                    "a repair beside its apply needs a PostgreSQL target (the MySQL apply \
                     could stop on a row the repair inserted)",
                )
            } else {
                None
            };
            if let Some(why) = why {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "task `{}` is running (pid {} on host `{}`, since {} UTC): {why}; \
                         stop it with `dts stop`, repair, then run the task again \
                         (replication resumes where it stopped), or verify without --repair",
                        config.name, h.pid, h.host, h.since
                    ),
                ));
            }
            tracing::info!(pid = h.pid, host = %h.host, "repairing beside the running apply");
            beside_apply = Some(dts_fullload::verify::BesideApply {
                task: config.name.clone(),
                source: Arc::new(FreshSource(crate::filter::filtered_source(
                    config,
                    Source::connect(&config.source.url).await?,
                    &plan.catalog,
                )?)),
            });
        }
    }
    let snapshot = source.open_snapshot(config.full.workers()).await?;
    let mut readers = snapshot.readers;

    let mut tables = Vec::new();
    for tp in &plan.schema.tables {
        let Some(shape) = table_shape(config, &source, target.engine(), &plan, tp)? else {
            continue;
        };
        // A key column the target does not hold cannot bound target ranges: compare the
        // table whole, by key still when it has one.
        let chunks = if shape.key.is_empty() {
            vec![Chunk::whole_table()]
        } else {
            let stored = store.chunk_plan(&tp.source).await?;
            match stored {
                Some(c) if c.iter().all(|c| c.key == shape.key_names) => c,
                _ => {
                    let mut prober = SnapshotReader::key_prober(
                        &mut readers[0],
                        &shape.source,
                        &shape.key_names,
                    )?;
                    dts_fullload::plan_chunks(
                        &mut prober,
                        &shape.key_names,
                        config.full.rows_per_chunk,
                        shape.source.estimated_rows,
                    )
                    .await?
                }
            }
        };
        tables.push(shape.check(chunks));
    }

    let mut workers = Vec::with_capacity(readers.len());
    for reader in readers {
        workers.push(Worker {
            source: reader,
            target: target.target_reader(source.engine()).await?,
            repair: match options.repair {
                Some(_) => Some(target.repair_sink().await?),
                None => None,
            },
        });
    }
    let live = config.runs(MigrationType::Incremental) && store.applied_position().await?.is_some();
    let recheck: Option<(Arc<dyn Recheck>, u32)> = if live && options.recheck_rounds > 0 {
        Some((
            Arc::new(LiveRecheck {
                source,
                store,
                patience: options.recheck_patience,
            }),
            options.recheck_rounds,
        ))
    } else {
        None
    };
    let engine_options = dts_fullload::verify::VerifyOptions {
        max_keys: options.max_keys,
        repair: options.repair.as_ref().map(|(mode, file)| RepairOptions {
            mode: *mode,
            file: file.clone(),
            beside_apply: beside_apply.clone(),
        }),
        recheck,
    };
    dts_fullload::verify::verify_tables(tables, workers, &engine_options, events).await
}

/// The differences of a report in one line: per differing table its counts and the first
/// keys (with the columns that differ).
pub(crate) fn summary(report: &VerifyReport) -> String {
    const SHOWN: usize = 3;
    let mut parts = Vec::new();
    for t in report.tables.iter().filter(|t| !t.matches()) {
        let mut firsts = Vec::new();
        let rows = [
            ("missing", &t.missing_rows),
            ("extra", &t.extra_rows),
            ("different", &t.different_rows),
        ];
        for (kind, rows) in rows {
            for d in rows.iter().take(SHOWN) {
                let key: Vec<String> = t
                    .key_columns
                    .iter()
                    .zip(&d.key)
                    .map(|(c, v)| format!("{c}={v}"))
                    .collect();
                let columns = if d.columns.is_empty() {
                    String::new()
                } else {
                    format!(" in {}", d.columns.join(", "))
                };
                firsts.push(format!("{kind} ({}){columns}", key.join(", ")));
            }
        }
        parts.push(format!(
            "`{}`: {} missing, {} extra, {} different ({})",
            t.target,
            t.missing,
            t.extra,
            t.different,
            firsts.join("; ")
        ));
    }
    parts.join("; ")
}
