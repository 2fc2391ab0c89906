//! A custom change sink: every change replicated from a MySQL/MariaDB binlog becomes one JSON
//! line on standard output. The replication engine (`dts-cdc`) does the reading, batching
//! and reconnecting; the sink only implements `dts_core::ApplySink`.
//!
//! Prerequisites: a MariaDB/MySQL source with the binlog on (`log_bin`, `binlog_format=ROW`,
//! `binlog_row_image=FULL`, `binlog_row_metadata=FULL`) and an account with `REPLICATION
//! SLAVE` and `REPLICATION CLIENT` (MariaDB: `BINLOG MONITOR`).
//!
//! ```text
//! cargo run --release --bin json_changes -- mysql://root@127.0.0.1:3306 --database shop
//! ```
//!
//! The URL may come from `DTS_SOURCE_URL` instead. It prints the changes committed after it
//! starts (or after `--from FILE:OFFSET`) until Ctrl-C; `--until-caught-up` stops once
//! everything committed before the start is printed, `--max-events N` once N row changes are
//! (the transaction holding the N-th is printed whole). One line per change:
//!
//! ```text
//! {"after":{"id":{"Int":1},"name":{"Text":"a"}},"kind":"insert","table":"shop.t"}
//! {"after":{…},"before":{…},"kind":"update","table":"shop.t"}
//! {"before":{…},"kind":"delete","table":"shop.t"}
//! ```
//!
//! Values are in the serde form of `dts_core::Value`, which is exact (`{"Decimal":"1.50"}`,
//! `{"UInt":18446744073709551615}`, `"Null"`). Truncates and DDL are lines too (`"kind":
//! "truncate"`, `"kind":"ddl"` with `schema` and `sql`).

use std::io::Write;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use clap::Parser;
use dts_cdc::{replicate, CdcEvent, CdcOptions};
use dts_connectors::{CaptureOptions, Source};
use dts_core::{ApplySink, ApplyStats, Change, ChangeEvent, Error, ErrorKind, Position, RowImage};
use serde_json::{json, Map};

/// Print the changes of a MySQL/MariaDB binlog as JSON lines.
#[derive(Parser)]
struct Args {
    /// Source URL (default: `DTS_SOURCE_URL`).
    url: Option<String>,
    /// Only changes of this database.
    #[arg(long)]
    database: Option<String>,
    /// Start at this binlog position (`FILE:OFFSET`) instead of the current one.
    #[arg(long)]
    from: Option<String>,
    /// Stop once everything the source committed before the start is printed.
    #[arg(long)]
    until_caught_up: bool,
    /// Stop once this many row changes are printed.
    #[arg(long)]
    max_events: Option<u64>,
    /// The replica server id to read the binlog with (default: from the process id).
    #[arg(long)]
    server_id: Option<u32>,
}

/// An [`ApplySink`] writing JSON lines to standard output. The applied position lives in
/// memory, shared with the sinks the engine creates after reconnecting.
struct JsonLines {
    applied: Arc<Mutex<Position>>,
    /// Lines of a transaction arriving in parts, printed at its commit: standard output
    /// cannot roll back, so this sink holds them rather than writing them out as it goes.
    pending: Vec<String>,
    /// Whether the transaction being read is already applied; `None` between transactions.
    skip: Option<bool>,
}

impl JsonLines {
    /// Turns the events into lines (into `pending`), skipping transactions that end at or
    /// before the applied position, judged by their first event.
    fn take(&mut self, events: &[ChangeEvent]) -> ApplyStats {
        let applied = self
            .applied
            .lock()
            .map(|p| p.clone())
            .unwrap_or_else(|p| p.into_inner().clone());
        let mut stats = ApplyStats::default();
        for event in events {
            let skip = *self
                .skip
                .get_or_insert_with(|| event.position.log_cmp(&applied).is_some_and(|o| o.is_le()));
            if !skip {
                if let Some((line, rows)) = json_line(&event.change) {
                    self.pending.push(line.to_string());
                    stats.rows += rows;
                }
            }
            if matches!(event.change, Change::Commit | Change::Ddl { .. }) {
                stats.transactions += u64::from(!skip);
                self.skip = None;
            }
        }
        stats
    }
}

/// The JSON line of a change and the row changes it counts; `None` for `Begin`/`Commit`.
fn json_line(change: &Change) -> Option<(serde_json::Value, u64)> {
    let row = |r: &RowImage| -> Map<String, serde_json::Value> {
        let values = r
            .values
            .iter()
            .map(|v| serde_json::to_value(v).unwrap_or_default());
        r.columns.iter().cloned().zip(values).collect()
    };
    Some(match change {
        Change::Insert { table, row: r } => (
            json!({"table": table.to_string(), "kind": "insert", "after": row(r)}),
            1,
        ),
        Change::Update {
            table,
            before,
            after,
        } => (
            json!({"table": table.to_string(), "kind": "update", "before": row(before), "after": row(after)}),
            1,
        ),
        Change::Delete { table, row: r } => (
            json!({"table": table.to_string(), "kind": "delete", "before": row(r)}),
            1,
        ),
        Change::Truncate { table } => (json!({"table": table.to_string(), "kind": "truncate"}), 0),
        Change::Ddl {
            schema,
            sql,
            sql_mode,
        } => (
            json!({"kind": "ddl", "schema": schema, "sql": sql, "sql_mode": sql_mode.bits()}),
            0,
        ),
        _ => return None,
    })
}

#[dts_core::async_trait]
impl ApplySink for JsonLines {
    async fn apply(
        &mut self,
        events: &[ChangeEvent],
        position: &Position,
    ) -> dts_core::Result<ApplyStats> {
        let stats = self.take(events);
        let mut out = std::io::stdout().lock();
        for line in self.pending.drain(..) {
            writeln!(out, "{line}").map_err(|e| {
                Error::new(ErrorKind::Io, "writing standard output failed").with_source(e)
            })?;
        }
        out.flush().map_err(|e| {
            Error::new(ErrorKind::Io, "writing standard output failed").with_source(e)
        })?;
        // Printed, so applied: the position is recorded after the lines, never before.
        *self
            .applied
            .lock()
            .map_err(|_| Error::internal("position lock poisoned"))? = position.clone();
        Ok(stats)
    }

    async fn apply_part(&mut self, events: &[ChangeEvent]) -> dts_core::Result<ApplyStats> {
        Ok(ApplyStats {
            transactions: 0,
            ..self.take(events)
        })
    }

    async fn applied_position(&mut self) -> dts_core::Result<Option<Position>> {
        // Called between transactions: a transaction left in parts is rolled back.
        self.pending.clear();
        self.skip = None;
        Ok(Some(
            self.applied
                .lock()
                .map_err(|_| Error::internal("position lock poisoned"))?
                .clone(),
        ))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let url = args
        .url
        .or_else(|| std::env::var("DTS_SOURCE_URL").ok())
        .context("give the source URL or set DTS_SOURCE_URL")?;
    let source = Source::connect(&url).await?;
    let from = match &args.from {
        Some(text) => {
            let (file, offset) = text.rsplit_once(':').context("--from takes FILE:OFFSET")?;
            Position::Binlog {
                file: file.into(),
                offset: offset.parse()?,
                gtid: None,
            }
        }
        None => source.current_position().await?,
    };
    let until = if args.until_caught_up {
        Some(source.current_position().await?)
    } else {
        None
    };
    let database = args.database.clone();
    let db = database.clone();
    let capture = CaptureOptions {
        tables: Arc::new(move |t| db.as_ref().is_none_or(|d| &t.schema == d)),
        schemas: Arc::new(move |s| database.as_ref().is_none_or(|d| s == d)),
        server_id: args.server_id.unwrap_or(0x4000_0000 | std::process::id()),
        slot: dts_connectors::capture_slot_name("json_changes", &url),
    };
    eprintln!("reading changes from {from}");

    // Ctrl-C, or the `--max-events`-th row change, stops after the transactions read.
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let max = args.max_events;
    tokio::spawn(async move {
        let mut rows = 0;
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            tokio::select! {
                _ = &mut ctrl_c => break,
                event = events.recv() => match event {
                    Some(CdcEvent::Applied { rows: n, .. }) => rows += n,
                    Some(_) => {}
                    None => return,
                },
            }
            if max.is_some_and(|m| rows >= m) {
                break;
            }
        }
        let _ = stop_tx.send(true);
    });

    let applied = Arc::new(Mutex::new(from));
    let source = &source;
    let summary = replicate(
        |from: Position| {
            let capture = capture.clone();
            async move { Ok(source.capture(&from, &capture).await?.0) }
        },
        || {
            let applied = applied.clone();
            async move {
                Ok(JsonLines {
                    applied,
                    pending: Vec::new(),
                    skip: None,
                })
            }
        },
        CdcOptions {
            until,
            ..CdcOptions::default()
        },
        Some(events_tx),
        stop,
    )
    .await?;
    eprintln!(
        "{} transactions, {} row changes; stopped at {}",
        summary.transactions,
        summary.rows,
        summary
            .position
            .map_or_else(|| "the start".into(), |p| p.to_string())
    );
    Ok(())
}
