//! The schema a resumed run works from: the source schema the target tables were built from
//! (recorded when the task first builds them), compared with the source's schema now.
//!
//! A run that finds the target built by an earlier run keeps working from the recorded
//! schema (the target's tables, chunk plans and post-data statements follow it), and first
//! compares it with the source's schema table by table:
//!
//! - a table whose copy is still to be finished must be unchanged: its remaining chunks
//!   would be read with one shape and written into a table of the other. The run stops,
//!   naming the table, the column and what changed;
//! - a table whose copy is complete may have changed: the copy holds it as it was at its
//!   snapshot, and replication (which starts at the first snapshot's position) applies the
//!   change from the log. So may a table that was created since, with incremental
//!   migration in the task (replication creates it); without it, a new table stops the run;
//! - once the full load is done, or replication has started, the tracked schema takes
//!   over and nothing is compared.

use std::collections::BTreeSet;

use dts_connectors::{Source, Target};
use dts_core::{
    Catalog, ChunkSink as _, Column, Error, ErrorKind, Result, StateStore, Table, TableName,
};

use crate::config::{MigrationType, TaskConfig};
use crate::task::{Step, TaskPlan};

/// The plan a run works from: `live` (read from the source now) on a first run, which is
/// recorded; on a resumed run the recorded schema's plan, after checking the source against
/// it.
pub(crate) async fn resume_plan(
    config: &TaskConfig,
    source: &Source,
    target: &Target,
    store: &dyn StateStore,
    live: TaskPlan,
) -> Result<TaskPlan> {
    let built = if config.runs(MigrationType::Schema) {
        store.is_done(Step::SchemaPreData.key()).await?
    } else {
        store.is_done(Step::FullLoad.key()).await? || !store.snapshot_positions().await?.is_empty()
    };
    let stored = if built {
        store.built_catalog().await?
    } else {
        None
    };
    let Some(stored) = stored else {
        if !built {
            store.record_built_catalog(&live.catalog).await?;
        }
        return Ok(live);
    };
    if !(store.is_done(Step::FullLoad.key()).await? || store.applied_position().await?.is_some()) {
        let plan = plan_of(config, source, target, stored.clone())?;
        let complete = complete_tables(config, target, store, &plan).await?;
        check(
            &stored,
            &live.catalog,
            &complete,
            config.runs(MigrationType::Incremental),
        )?;
    }
    plan_of(config, source, target, stored)
}

fn plan_of(
    config: &TaskConfig,
    source: &Source,
    target: &Target,
    catalog: Catalog,
) -> Result<TaskPlan> {
    let options = config
        .schema_options_for(&catalog)?
        .with_target_version(target.version());
    let schema = dts_connectors::plan_schema(source.engine(), target.engine(), &catalog, &options)?;
    Ok(TaskPlan { catalog, schema })
}

/// The source tables whose every chunk is copied.
async fn complete_tables(
    config: &TaskConfig,
    target: &Target,
    store: &dyn StateStore,
    plan: &TaskPlan,
) -> Result<BTreeSet<TableName>> {
    let mut out = BTreeSet::new();
    if !config.runs(MigrationType::Full) {
        return Ok(out);
    }
    let mut sink = target.chunk_sink(&config.name).await?;
    for tp in &plan.schema.tables {
        let Some(chunks) = store.chunk_plan(&tp.source).await? else {
            continue;
        };
        let target_table = dts_core::TargetTable {
            name: tp.target.clone(),
            columns: Vec::new(),
        };
        let done: BTreeSet<u32> = sink.done_chunks(&target_table).await?.into_iter().collect();
        if chunks.iter().all(|c| done.contains(&c.index)) {
            out.insert(tp.source.clone());
        }
    }
    Ok(out)
}

fn tables(catalog: &Catalog) -> impl Iterator<Item = &Table> {
    catalog.schemas.iter().flat_map(|s| &s.tables)
}

/// Checks the source's schema now (`live`) against the recorded one (`stored`); see the
/// module docs.
fn check(
    stored: &Catalog,
    live: &Catalog,
    complete: &BTreeSet<TableName>,
    replicates: bool,
) -> Result<()> {
    let fix = "revert the change on the source and run again, or drop the task's target \
               tables and its dts_meta rows and migrate from the start";
    for old in tables(stored) {
        if complete.contains(&old.name) {
            continue;
        }
        let Some(new) = live.table(&old.name) else {
            return Err(changed(
                format!(
                    "source table `{}` was dropped or renamed while its full load is unfinished",
                    old.name
                ),
                fix,
            ));
        };
        if let Some(what) = difference(old, new) {
            return Err(changed(
                format!(
                    "source table `{}` changed while its full load is unfinished: {what}",
                    old.name
                ),
                fix,
            ));
        }
    }
    if !replicates {
        if let Some(new) = tables(live).find(|t| stored.table(&t.name).is_none()) {
            return Err(changed(
                format!(
                    "source table `{}` was created since the task started, and the task \
                     does not replicate changes",
                    new.name
                ),
                fix,
            ));
        }
    }
    Ok(())
}

fn changed(message: String, fix: &str) -> Error {
    Error::new(ErrorKind::Conflict, format!("{message}; {fix}"))
}

/// What differs between a table as recorded (`old`) and as the source has it now (`new`),
/// naming the first column or object that differs; `None` when nothing that the copy
/// depends on differs (row estimates and the next `AUTO_INCREMENT` value may).
fn difference(old: &Table, new: &Table) -> Option<String> {
    for c in &old.columns {
        match new.column(&c.name) {
            None => return Some(format!("column `{}` was dropped or renamed", c.name)),
            Some(n) if n != c => return Some(column_difference(c, n)),
            Some(_) => {}
        }
    }
    if let Some(c) = new.columns.iter().find(|c| old.column(&c.name).is_none()) {
        return Some(format!("column `{}` was added", c.name));
    }
    if old.primary_key != new.primary_key {
        return Some("its primary key changed".into());
    }
    if old.indexes != new.indexes {
        return Some("its indexes changed".into());
    }
    if old.foreign_keys != new.foreign_keys {
        return Some("its foreign keys changed".into());
    }
    if old.comment != new.comment {
        return Some("its comment changed".into());
    }
    None
}

fn column_difference(old: &Column, new: &Column) -> String {
    let name = &old.name;
    if old.source_type != new.source_type {
        format!(
            "column `{name}` changed type from `{}` to `{}`",
            old.source_type, new.source_type
        )
    } else if old.nullable != new.nullable {
        format!(
            "column `{name}` became {}",
            if new.nullable { "nullable" } else { "NOT NULL" }
        )
    } else if old.ordinal != new.ordinal {
        format!(
            "column `{name}` moved from position {} to {}",
            old.ordinal, new.ordinal
        )
    } else if old.default != new.default {
        format!("column `{name}` changed its default")
    } else {
        format!("column `{name}` changed its definition")
    }
}
