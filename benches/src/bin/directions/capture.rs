//! Change capture from PostgreSQL: how fast `dts` applies a backlog of single-row
//! transactions written while it was stopped (inserts, then updates and deletes), read from
//! the WAL through its logical replication slot and applied to the target.

use std::fs::File;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use dts_benches::child::telling_line;
use dts_benches::usage;

use crate::data::{self, CAPTURE_SCHEMA, PG_CAPTURE_DB};
use crate::tools::{Bench, Direction};

/// The target database of the capture measurement.
const TARGET_DB: &str = "bench_capture";

/// One timed catch-up of a workload.
#[derive(Debug, Clone)]
pub struct Measured {
    pub workload: &'static str,
    /// Source rows the workload changed (each in its own transaction).
    pub rows: u64,
    /// Transactions the workload committed.
    pub transactions: u64,
    /// The catch-up's wall time, from start to exit.
    pub elapsed: Duration,
    /// A catch-up with nothing to apply (start-up, prechecks, connecting), measured just
    /// before: subtracted for the net rate.
    pub idle: Duration,
    pub peak_memory: u64,
}

impl Measured {
    /// Rows applied per second, net of the idle catch-up's time.
    pub fn net_rate(&self) -> f64 {
        let net = self
            .elapsed
            .saturating_sub(self.idle)
            .as_secs_f64()
            .max(1e-3);
        dts_benches::report::to_f64(self.rows) / net
    }
}

/// Runs the capture measurement of `direction` (its source is PostgreSQL): `initial` rows
/// copied by the full load, then `rows` single-row inserts and `rows` single-row updates
/// and deletes, each backlog applied by a timed `dts run --until-caught-up` and the target
/// compared with the source after each.
pub fn measure(
    bench: &Bench<'_>,
    direction: Direction,
    initial: u64,
    rows: u64,
) -> Result<Vec<Measured>> {
    let pg = bench.pg();
    let label = format!("{}-capture", direction.name());
    data::create_pg_capture(pg, initial)?;
    let target_url = if direction.target_is_pg() {
        pg.create_database(TARGET_DB)?;
        pg.url_for(TARGET_DB)
    } else {
        let mysql = bench.mysql();
        mysql.drop_database(TARGET_DB)?;
        mysql.drop_database("dts_meta")?;
        mysql.url()
    };
    let rename = if direction.target_is_pg() {
        String::new()
    } else {
        format!("objects.rename_databases = {{ \"{CAPTURE_SCHEMA}\" = \"{TARGET_DB}\" }}\n")
    };
    let task = bench.work_dir.join(format!("{label}.toml"));
    std::fs::write(
        &task,
        format!(
            "name = \"bench_capture\"\nmigration = [\"schema\", \"full\", \"incremental\"]\n\
             source.url = \"${{DTS_BENCH_SOURCE}}\"\ntarget.url = \"${{DTS_BENCH_TARGET}}\"\n\
             objects.include = [\"{CAPTURE_SCHEMA}\"]\n{rename}"
        ),
    )?;
    let exe = bench.dts.as_ref().context("the dts binary")?;
    let run = |what: &str, args: &[&str]| -> Result<(Duration, u64)> {
        let out = bench.work_dir.join(format!("{label}-{what}.out"));
        let err = bench.work_dir.join(format!("{label}-{what}.err"));
        let mut command = Command::new(exe);
        command
            .args(args)
            .arg("--config")
            .arg(&task)
            .env("DTS_BENCH_SOURCE", pg.url_for(PG_CAPTURE_DB))
            .env("DTS_BENCH_TARGET", &target_url)
            .stdin(Stdio::null())
            .stdout(File::create(&out)?)
            .stderr(File::create(&err)?);
        let started = Instant::now();
        let mut children = [command.spawn().context("starting dts")?];
        let used = usage::wait(&mut children, Some(started + bench.timeout))?;
        if used.timed_out || !used.statuses[0].success() {
            bail!(
                "dts {} ({what}) failed: {} (log {})",
                args.join(" "),
                telling_line(&err).unwrap_or_default(),
                err.display()
            );
        }
        Ok((started.elapsed(), used.peak_memory))
    };
    let compare = |what: &str| -> Result<()> {
        let source = data::pg_events_fingerprint(pg, PG_CAPTURE_DB)?;
        let target = if direction.target_is_pg() {
            data::pg_events_fingerprint(pg, TARGET_DB)?
        } else {
            data::mariadb_events_fingerprint(bench.mysql(), TARGET_DB)?
        };
        if source != target {
            bail!("after {what}, the target differs from the source: {target} instead of {source}");
        }
        Ok(())
    };

    let result = (|| -> Result<Vec<Measured>> {
        run("setup", &["run", "--until-caught-up"])?;
        compare("the full load")?;
        let mut measured = Vec::new();

        let (idle, _) = run("idle-1", &["run", "--until-caught-up"])?;
        pg.exec_in(
            PG_CAPTURE_DB,
            &format!("CALL capture.insert_rows({}, {rows})", initial + 1),
        )?;
        let (elapsed, peak_memory) = run("inserts", &["run", "--until-caught-up"])?;
        compare("the inserts")?;
        measured.push(Measured {
            workload: "inserts",
            rows,
            transactions: rows,
            elapsed,
            idle,
            peak_memory,
        });

        let (idle, _) = run("idle-2", &["run", "--until-caught-up"])?;
        let changed: u64 = pg
            .query_in(
                PG_CAPTURE_DB,
                &format!("CALL capture.mix({rows}, {})", initial + rows),
            )?
            .trim()
            .parse()
            .context("reading the rows the mixed workload changed")?;
        let (elapsed, peak_memory) = run("mixed", &["run", "--until-caught-up"])?;
        compare("the updates and deletes")?;
        measured.push(Measured {
            workload: "updates+deletes",
            rows: changed,
            transactions: rows,
            elapsed,
            idle,
            peak_memory,
        });
        Ok(measured)
    })();
    // The slot holds WAL until it is dropped, and keeps the source database from being
    // dropped: clean up whatever happened.
    let cleaned = run("cleanup", &["cleanup", "--yes"]);
    let measured = result?;
    cleaned?;
    pg.drop_database(PG_CAPTURE_DB)?;
    if direction.target_is_pg() {
        pg.drop_database(TARGET_DB)?;
    } else {
        bench.mysql().drop_database(TARGET_DB)?;
    }
    Ok(measured)
}
