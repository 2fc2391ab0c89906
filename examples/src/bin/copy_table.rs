//! Copying one table with the libraries directly, without the `dts` task runner: the
//! connector registry (`dts-connectors`), the schema translation (`dts-schema`), the type
//! mapping (`dts-typemap`) and the full-load engine (`dts-fullload`).
//!
//! Prerequisites: a MariaDB/MySQL source holding the table, and a PostgreSQL target database
//! where the table does not exist yet (its schema is created if missing). The account on the
//! source needs `SELECT` (and `RELOAD` for more than one reader to share the snapshot).
//!
//! ```text
//! cargo run --release --bin copy_table -- shop.orders \
//!     mysql://root@127.0.0.1:3306 postgres://postgres@127.0.0.1:5432/postgres
//! ```
//!
//! The URLs may come from `DTS_SOURCE_URL` and `DTS_TARGET_URL` instead; `DTS_ROWS_PER_CHUNK`
//! sets the chunk size (default 50,000 rows). The program creates
//! the table (foreign keys are left out: only this table is copied), copies its rows in
//! parallel chunks from one consistent snapshot, builds its indexes and prints the rows
//! copied. Its state is kept in the target's `dts_meta` schema under the task name
//! `copy_table.<schema>.<table>`: run again after an interruption, it copies the missing
//! chunks only.

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::{bail, Context};
use dts_connectors::{plan_schema, Source, Target};
use dts_core::{Catalog, Chunk, Schema, SchemaSource, SnapshotReader, TableName, TargetTable};
use dts_fullload::{copy_tables, plan_chunks, CopyOptions, TableJob};
use dts_schema::SchemaOptions;
use dts_typemap::MappingOptions;

/// Parallel readers (each with its own source and target connection).
const WORKERS: usize = 2;
/// Rows per chunk, the unit of parallelism and of resumption, unless `DTS_ROWS_PER_CHUNK`
/// says otherwise.
const ROWS_PER_CHUNK: u64 = 50_000;

fn arg_or_env(n: usize, var: &str) -> anyhow::Result<String> {
    std::env::args()
        .nth(n)
        .or_else(|| std::env::var(var).ok())
        .with_context(|| format!("give the URL as argument {n} or in {var}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let name = std::env::args()
        .nth(1)
        .context("usage: copy_table SCHEMA.TABLE [SOURCE_URL [TARGET_URL]]")?;
    let (schema, table) = name
        .split_once('.')
        .context("name the table as schema.table")?;
    let name = TableName::new(schema, table);
    let source = Source::connect(&arg_or_env(2, "DTS_SOURCE_URL")?).await?;
    let mut target = Target::connect(&arg_or_env(3, "DTS_TARGET_URL")?).await?;
    let task = format!("copy_table.{name}");
    let rows_per_chunk = match std::env::var("DTS_ROWS_PER_CHUNK") {
        Ok(n) => n
            .parse()
            .context("DTS_ROWS_PER_CHUNK is a number of rows")?,
        Err(_) => ROWS_PER_CHUNK,
    };

    // The table alone, without foreign keys to tables this program does not copy.
    let mut table = source
        .read_catalog(std::slice::from_ref(&name.schema))
        .await?
        .table(&name)
        .with_context(|| format!("no table `{name}` in the source"))?
        .clone();
    table.foreign_keys.clear();
    let catalog = Catalog {
        types: Vec::new(),
        omitted_indexes: Vec::new(),
        schemas: vec![Schema {
            name: name.schema.clone(),
            tables: vec![table.clone()],
        }],
    };
    let plan = plan_schema(
        source.engine(),
        target.engine(),
        &catalog,
        &SchemaOptions::default(),
    )?;
    if let Some(problem) = plan.blocking_problems().next() {
        bail!("cannot translate `{}`: {}", problem.object, problem.message);
    }
    let tp = &plan.tables[0];

    // Create the table, unless an earlier run did (the step is recorded with it).
    let store = target.state_store(&task).await?;
    if !store.is_done("pre_data").await? {
        let pre: Vec<_> = plan.pre_data.iter().collect();
        target
            .execute_step(&task, "pre_data", &pre, &BTreeSet::new())
            .await?;
    }

    // One snapshot, one sink per reader; the chunk plan is stored so a rerun keeps it.
    let snapshot = source.open_snapshot(WORKERS).await?;
    let mut readers = snapshot.readers;
    let mut sinks = Vec::new();
    for _ in &readers {
        sinks.push(target.chunk_sink(&task).await?);
    }
    let columns: Vec<_> = tp.copied_columns().collect();
    let source_columns: Vec<String> = columns.iter().map(|c| c.source_name.clone()).collect();
    if source.read_columns(&table) != source_columns {
        bail!("the reader's columns of `{name}` differ from the plan's");
    }
    let chunks = match store.chunk_plan(&name).await? {
        Some(chunks) => chunks,
        None => {
            let chunks = match &tp.chunk_key {
                Some(key) => {
                    let mut prober = readers[0].key_prober(&table, key)?;
                    plan_chunks(&mut prober, key, rows_per_chunk, table.estimated_rows).await?
                }
                None => vec![Chunk::whole_table()],
            };
            store.store_chunk_plan(&name, &chunks).await?;
            chunks
        }
    };
    let target_table = TargetTable {
        name: tp.target.clone(),
        columns: columns.iter().map(|c| c.target_name.clone()).collect(),
    };
    let done = sinks[0]
        .done_chunks(&target_table)
        .await?
        .into_iter()
        .collect();
    let job = TableJob {
        source: Arc::new(table.clone()),
        source_columns,
        target: target_table,
        // The row mapping of the (source, target) engine pair converts every value.
        mapper: dts_connectors::row_mapper(
            source.engine(),
            target.engine(),
            tp,
            MappingOptions::default(),
        )?,
        chunks,
        done,
        estimated_rows: table.estimated_rows,
        // Values, converted by the mapping; `dts::run` lets same-engine rows pass encoded.
        encoding: None,
    };

    // Ctrl-C stops after the chunks in flight; a rerun copies the rest.
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop_tx.send(true);
        }
    });
    let summary = copy_tables(
        vec![job],
        readers,
        sinks,
        CopyOptions::default(),
        None,
        stop,
    )
    .await?;

    // Indexes, constraints and sequence values after the data.
    if !store.is_done("post_data").await? {
        let post: Vec<_> = plan.post_data.iter().collect();
        target
            .execute_step(&task, "post_data", &post, &BTreeSet::new())
            .await?;
    }
    println!(
        "{} rows copied from {name} to {} ({} chunks, {} done before)",
        summary.rows, tp.target, summary.chunks, summary.chunks_skipped
    );
    Ok(())
}
