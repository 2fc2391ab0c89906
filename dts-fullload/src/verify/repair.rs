//! Repair: the statements that make each differing chunk of the target match the source,
//! one transaction per chunk, every statement written to the repair file.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use dts_core::{Error, Repair, Result, Row, Value};

use super::engine::{
    empty_stats, io_error, key_bytes, keyless_rows, on_workers, source_rows_by_key,
    write_statements, RepairOptions, RepairPlan, TableCheck, Worker,
};
use super::report::RepairStats;

/// Repairs of a table without a key are applied this many rows per transaction.
const KEYLESS_BATCH: usize = 1000;

type File = Arc<Mutex<std::io::BufWriter<std::fs::File>>>;

fn tally(stats: &mut RepairStats, repairs: &[Repair], statements: usize) {
    for r in repairs {
        match r {
            Repair::Insert(_) => stats.inserted += 1,
            Repair::Update { .. } => stats.updated += 1,
            Repair::Delete { .. } | Repair::DeleteOne(_) => stats.deleted += 1,
            _ => {}
        }
    }
    stats.statements += statements as u64;
}

async fn run(
    w: &mut Worker,
    t: &TableCheck,
    repairs: &[Repair],
    options: &RepairOptions,
    file: &File,
    stats: &mut RepairStats,
) -> Result<()> {
    if repairs.is_empty() {
        return Ok(());
    }
    let sink = w
        .repair
        .as_mut()
        .ok_or_else(|| Error::internal("repair asked for without a repair sink"))?;
    let key: Vec<String> = t.key.iter().map(|&i| t.target.columns[i].clone()).collect();
    let statements = sink.repair(&t.target, &key, repairs, options.mode).await?;
    // Written once the transaction committed (or, in a dry run, as built).
    write_statements(file, &statements)?;
    tally(stats, repairs, statements.len());
    Ok(())
}

/// Repairs the tables' differences in parallel, one job per differing chunk.
pub(crate) async fn repair_tables(
    tables: &Arc<Vec<TableCheck>>,
    plans: &[RepairPlan],
    workers: Vec<Worker>,
    options: &RepairOptions,
) -> Result<Vec<Option<RepairStats>>> {
    if options.beside_apply.is_some() && options.mode == dts_core::RepairMode::Apply {
        if let Some((ti, _)) = plans.iter().enumerate().find(|(_, p)| p.multiset.is_some()) {
            return Err(Error::new(
                dts_core::ErrorKind::Conflict,
                format!(
                    "`{}` has no primary or unique key: its rows cannot be repaired while \
                     the task runs (the apply could not tell a repaired copy from its own); \
                     stop the task with `dts stop`, repair, then run it again",
                    tables[ti].target.name
                ),
            ));
        }
    }
    let file: File = Arc::new(Mutex::new(std::io::BufWriter::new(
        std::fs::File::create(&options.file).map_err(io_error)?,
    )));
    let mut jobs: Vec<(usize, Option<u32>, Arc<RepairPlanPart>)> = Vec::new();
    let mut stats: Vec<Option<RepairStats>> = vec![None; tables.len()];
    for (ti, plan) in plans.iter().enumerate() {
        if let Some(m) = &plan.multiset {
            jobs.push((ti, None, Arc::new(RepairPlanPart::Keyless(m.clone()))));
        }
        for (&chunk, c) in &plan.chunks {
            jobs.push((
                ti,
                Some(chunk),
                Arc::new(RepairPlanPart::Keyed {
                    insert: c.insert.clone(),
                    update: c.update.clone(),
                    delete: c.delete.clone(),
                }),
            ));
        }
        if plan.multiset.is_some() || !plan.chunks.is_empty() {
            stats[ti] = Some(empty_stats(options.mode));
        }
    }
    if jobs.is_empty() {
        // An empty file still says that nothing needed repair.
        write_statements(&file, &[])?;
        return Ok(stats);
    }
    let shared = tables.clone();
    let opts = options.clone();
    let (_, results) = on_workers(workers, jobs, move |w, (ti, chunk, part)| {
        let tables = shared.clone();
        let file = file.clone();
        let opts = opts.clone();
        Box::pin(async move {
            let t = &tables[ti];
            let mut s = empty_stats(opts.mode);
            match &*part {
                RepairPlanPart::Keyless(m) => {
                    let (missing, extra) = keyless_rows(w, t, m, None).await?;
                    let mut repairs: Vec<Repair> =
                        extra.into_iter().map(Repair::DeleteOne).collect();
                    repairs.extend(missing.into_iter().map(Repair::Insert));
                    for batch in repairs.chunks(KEYLESS_BATCH) {
                        run(w, t, batch, &opts, &file, &mut s).await?;
                    }
                }
                RepairPlanPart::Keyed {
                    insert,
                    update,
                    delete,
                } => {
                    let index = chunk.unwrap_or(0);
                    let c = t
                        .chunks
                        .iter()
                        .find(|c| c.index == index)
                        .ok_or_else(|| Error::internal("repair of an unknown chunk"))?;
                    if let (Some(beside), dts_core::RepairMode::Apply) =
                        (&opts.beside_apply, opts.mode)
                    {
                        let statements =
                            repair_beside_apply(w, t, c, beside, (insert, update, delete)).await?;
                        // Written once committed.
                        write_statements(&file, &statements)?;
                        s.inserted += insert.len() as u64;
                        s.updated += update.len() as u64;
                        s.deleted += delete.len() as u64;
                        s.statements += statements.len() as u64;
                        return Ok((ti, s));
                    }
                    let mut inserts: Vec<Row> = Vec::new();
                    let mut updates: Vec<Repair> = Vec::new();
                    if !insert.is_empty() || !update.is_empty() {
                        source_rows_by_key(w, t, c, |k, row| {
                            if insert.contains_key(k) {
                                inserts.push(row);
                            } else if let Some(key) = update.get(k) {
                                updates.push(Repair::Update {
                                    key: key.clone(),
                                    row,
                                });
                            }
                        })
                        .await?;
                    }
                    let mut repairs: Vec<Repair> = delete
                        .iter()
                        .map(|k| Repair::Delete { key: k.clone() })
                        .collect();
                    repairs.extend(updates);
                    repairs.extend(inserts.into_iter().map(Repair::Insert));
                    run(w, t, &repairs, &opts, &file, &mut s).await?;
                }
            }
            Ok((ti, s))
        })
    })
    .await?;
    for (ti, s) in results {
        if let Some(total) = &mut stats[ti] {
            total.inserted += s.inserted;
            total.updated += s.updated;
            total.deleted += s.deleted;
            total.statements += s.statements;
        }
    }
    Ok(stats)
}

/// The keys of one chunk's repair: to insert, to update, to delete.
type ChunkKeys<'a> = (
    &'a HashMap<Vec<u8>, Vec<Value>>,
    &'a HashMap<Vec<u8>, Vec<Value>>,
    &'a [Vec<Value>],
);

/// Repairs one chunk beside the running apply (see [`super::engine::BesideApply`]):
/// holds the apply, reads the chunk from a new source snapshot and writes each differing
/// key as that snapshot holds it, in one transaction. Returns the statements.
async fn repair_beside_apply(
    w: &mut Worker,
    t: &TableCheck,
    chunk: &dts_core::Chunk,
    beside: &super::engine::BesideApply,
    (insert, update, delete): ChunkKeys<'_>,
) -> Result<Vec<String>> {
    let mut wanted: HashMap<Vec<u8>, Vec<Value>> = HashMap::new();
    wanted.extend(insert.iter().map(|(k, v)| (k.clone(), v.clone())));
    wanted.extend(update.iter().map(|(k, v)| (k.clone(), v.clone())));
    wanted.extend(delete.iter().map(|v| (key_bytes(v), v.clone())));
    let sink = w
        .repair
        .as_mut()
        .ok_or_else(|| Error::internal("repair asked for without a repair sink"))?;
    let applied = sink.hold_apply(&beside.task).await?;
    // Taken with the apply held: it holds every change the target holds.
    let reader = beside.source.reader().await?;
    let earlier = std::mem::replace(&mut w.source, reader);
    let mut rows: Vec<Row> = Vec::new();
    let read = source_rows_by_key(w, t, chunk, |k, row| {
        if wanted.remove(k).is_some() {
            rows.push(row);
        }
    })
    .await;
    w.source = earlier;
    read?;
    // Every key deleted, then inserted where the source has it: the statements do not
    // depend on what the target holds now.
    let mut repairs: Vec<Repair> = rows
        .iter()
        .map(|row| Repair::Delete {
            key: t.key.iter().map(|&i| row[i].clone()).collect(),
        })
        .collect();
    repairs.extend(wanted.into_values().map(|key| Repair::Delete { key }));
    repairs.extend(rows.into_iter().map(Repair::Insert));
    tracing::debug!(table = %t.target.name, chunk = chunk.index, applied = ?applied, keys = repairs.len(), "repairing beside the apply");
    let key: Vec<String> = t.key.iter().map(|&i| t.target.columns[i].clone()).collect();
    let sink = w
        .repair
        .as_mut()
        .ok_or_else(|| Error::internal("repair asked for without a repair sink"))?;
    sink.repair(&t.target, &key, &repairs, dts_core::RepairMode::Apply)
        .await
}

/// One repair job's share of a table's differences.
enum RepairPlanPart {
    Keyless(super::engine::MultisetPublic),
    Keyed {
        insert: HashMap<Vec<u8>, Vec<Value>>,
        update: HashMap<Vec<u8>, Vec<Value>>,
        delete: Vec<Vec<dts_core::Value>>,
    },
}
