//! Live display of a running task: progress bars on a terminal, plain periodic lines
//! otherwise, and a summary table at the end.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use dts::cdc::CdcEvent;
use dts::core::TableName;
use dts::fullload::{ProgressEvent, ProgressTracker, TableProgress};
use dts::TaskEvent;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc::UnboundedReceiver;

/// Human-readable bytes.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    #[allow(clippy::cast_precision_loss)]
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn rate(rows: u64, secs: f64) -> String {
    if secs <= 0.0 {
        return "-".into();
    }
    #[allow(clippy::cast_precision_loss)]
    let r = rows as f64 / secs;
    format!("{r:.0} rows/s")
}

fn line(name: &TableName, t: &TableProgress, secs: f64) -> String {
    let pct = t.fraction() * 100.0;
    format!(
        "{name}: {}/{} rows ({pct:.0}%), chunks {}/{}, {}, {}",
        t.rows,
        t.estimated_rows,
        t.chunks_done,
        t.chunks,
        bytes(t.bytes),
        rate(t.rows, secs)
    )
}

/// Prints task events until the channel closes; returns the final progress.
pub async fn display(mut rx: UnboundedReceiver<TaskEvent>) -> ProgressTracker {
    let terminal = std::io::stdout().is_terminal();
    let mut tracker = ProgressTracker::new();
    let multi = MultiProgress::with_draw_target(if terminal {
        ProgressDrawTarget::stdout()
    } else {
        ProgressDrawTarget::hidden()
    });
    let style = ProgressStyle::with_template("{prefix:<32} [{bar:30}] {pos:>10}/{len:<10} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let mut bars: BTreeMap<TableName, ProgressBar> = BTreeMap::new();
    let mut last_print = Instant::now();
    let mut last_replication = Instant::now() - Duration::from_secs(10);
    let mut applied = (0u64, 0u64);
    let print = |s: String| {
        if terminal {
            let _ = multi.println(s);
        } else {
            println!("{s}");
        }
    };
    loop {
        let event = match tokio::time::timeout(Duration::from_secs(2), rx.recv()).await {
            Ok(Some(e)) => Some(e),
            Ok(None) => break,
            Err(_) => None,
        };
        match event {
            Some(TaskEvent::Progress(p)) => {
                tracker.apply(&p);
                match &p {
                    ProgressEvent::TablePlanned { table, .. } if terminal => {
                        let t = &tracker.tables()[table];
                        let bar = multi.add(ProgressBar::new(t.estimated_rows.max(1)));
                        bar.set_style(style.clone());
                        bar.set_prefix(table.to_string());
                        bars.insert(table.clone(), bar);
                    }
                    ProgressEvent::RowRejected {
                        table,
                        column,
                        key,
                        reason,
                    } => print(format!("rejected {table}.{column} at {key}: {reason}")),
                    _ => {}
                }
                if let ProgressEvent::ChunkDone { table, .. } = &p {
                    if let (Some(bar), Some(t)) = (bars.get(table), tracker.tables().get(table)) {
                        if t.rows > bar.length().unwrap_or(0) {
                            bar.set_length(t.rows);
                        }
                        bar.set_position(t.rows);
                        let secs = tracker.elapsed().as_secs_f64();
                        bar.set_message(format!("{} {}", bytes(t.bytes), rate(t.rows, secs)));
                        if t.finished() {
                            bar.set_length(t.rows.max(1));
                            bar.finish();
                        }
                    }
                }
            }
            Some(TaskEvent::StepStarted(s)) => print(format!("{s}: started")),
            Some(TaskEvent::StepFinished(s)) => print(format!("{s}: done")),
            Some(TaskEvent::AlreadyDone(s)) => {
                print(format!("{s}: already done by an earlier run"))
            }
            Some(TaskEvent::Created { kind, object }) => {
                print(format!("  created {kind:?} {object}"))
            }
            Some(TaskEvent::Skipped { object }) => print(format!("  skipped {object} (exists)")),
            Some(TaskEvent::Verification(dts::VerifyEvent::TableDone(t))) => print(format!(
                "  verified {}: {}",
                t.source,
                if t.matches() {
                    format!("{} rows match", t.rows)
                } else {
                    format!(
                        "DIFFERS ({} missing, {} extra, {} different)",
                        t.missing, t.extra, t.different
                    )
                }
            )),
            Some(TaskEvent::Replication(e)) => match e {
                CdcEvent::Applied {
                    transactions,
                    rows,
                    position,
                    lag,
                    rows_per_second,
                } => {
                    applied.0 += transactions;
                    applied.1 += rows;
                    if last_replication.elapsed() >= Duration::from_secs(2) {
                        last_replication = Instant::now();
                        print(format!(
                            "  replicating: {} transactions, {} rows applied, \
                             {rows_per_second:.0} rows/s, lag {:.1}s, at {position}",
                            applied.0,
                            applied.1,
                            lag.as_secs_f64()
                        ));
                    }
                }
                CdcEvent::CaughtUp { position } => print(format!("  caught up at {position}")),
                CdcEvent::Reconnecting { error, attempt } => print(format!(
                    "  connection lost ({error}); reconnecting, attempt {attempt}"
                )),
                _ => {}
            },
            Some(TaskEvent::Sampled(dts::SampleEvent::Difference {
                table,
                kind,
                key,
                columns,
            })) => print(format!(
                "  sampled verification: {kind} row in {table} ({}){}",
                key.join(", "),
                if columns.is_empty() {
                    String::new()
                } else {
                    format!(" in {}", columns.join(", "))
                }
            )),
            Some(_) => {}
            None => {}
        }
        if !terminal && last_print.elapsed() >= Duration::from_secs(2) && tracker.rows() > 0 {
            last_print = Instant::now();
            let secs = tracker.elapsed().as_secs_f64();
            for (name, t) in tracker.tables().iter().filter(|(_, t)| !t.finished()) {
                println!("  {}", line(name, t, secs));
            }
            if let Some(eta) = tracker.eta() {
                println!(
                    "  total {} rows, {}, eta {}s",
                    tracker.rows(),
                    rate(tracker.rows(), secs),
                    eta.as_secs()
                );
            }
        }
    }
    for bar in bars.values() {
        bar.finish();
    }
    tracker
}

/// The summary table printed at the end of a full load.
pub fn summary(tracker: &ProgressTracker) -> String {
    let secs = tracker.elapsed().as_secs_f64();
    let mut out = format!(
        "{:<40} {:>12} {:>12} {:>9} {:>9}\n",
        "table", "rows", "bytes", "chunks", "rejected"
    );
    for (name, t) in tracker.tables() {
        out.push_str(&format!(
            "{:<40} {:>12} {:>12} {:>4}/{:<4} {:>9}\n",
            name.to_string(),
            t.rows,
            bytes(t.bytes),
            t.chunks_done,
            t.chunks,
            t.rejected
        ));
    }
    out.push_str(&format!(
        "{:<40} {:>12} {:>12}   in {secs:.1}s, {}",
        "total",
        tracker.rows(),
        bytes(tracker.bytes()),
        rate(tracker.rows(), secs)
    ));
    out
}

/// Prints verification progress on standard error (standard output keeps the report) until
/// the channel closes: per table, chunks compared and rows, every two seconds at most.
pub async fn verify_display(mut rx: UnboundedReceiver<dts::VerifyEvent>) {
    let started = Instant::now();
    let mut chunks: BTreeMap<String, (usize, usize, u64)> = BTreeMap::new();
    let mut last_print = Instant::now();
    while let Some(event) = rx.recv().await {
        match event {
            dts::VerifyEvent::TableStarted { table, chunks: n } => {
                chunks.insert(table, (0, n, 0));
            }
            dts::VerifyEvent::ChunkDone { table, rows, .. } => {
                if let Some(c) = chunks.get_mut(&table) {
                    c.0 += 1;
                    c.2 += rows;
                }
                if last_print.elapsed() >= Duration::from_secs(2) {
                    last_print = Instant::now();
                    let secs = started.elapsed().as_secs_f64();
                    for (t, (done, n, rows)) in &chunks {
                        if done < n {
                            eprintln!("verifying {t}: chunks {done}/{n}, {}", rate(*rows, secs));
                        }
                    }
                }
            }
            dts::VerifyEvent::Recheck { round, differences } => eprintln!(
                "re-checking {differences} differences after replication caught up (round {round})"
            ),
            _ => {}
        }
    }
}
