//! `--verify`: after each dts run, `dts verify` of the same task on the copied target, timed,
//! and for PostgreSQL → PostgreSQL `pgcopydb compare data` of the same databases, timed;
//! both against the full load's own time in the same run.

use std::cell::RefCell;
use std::process::Command;
use std::time::Duration;

use anyhow::Result;

use crate::data::PG_SOURCE_DB;
use crate::tools::{Bench, Direction};

/// The verification times measured after one dts run.
#[derive(Debug)]
pub struct Verified {
    pub direction: Direction,
    /// The full load it verifies.
    pub load: Duration,
    /// `dts verify`: its time, or why it failed or found a difference.
    pub dts: Result<Duration, String>,
    /// `pgcopydb compare data` (PostgreSQL → PostgreSQL, when measured).
    pub pgcopydb: Option<Result<Duration, String>>,
}

/// Where the verification times are kept while the benchmark runs.
#[derive(Debug, Default)]
pub struct Verifications {
    /// The `pgcopydb` with a `compare` command, if one was found.
    pub pgcopydb: Option<String>,
    pub runs: RefCell<Vec<Verified>>,
}

impl Verifications {
    /// Verifications with `pgcopydb compare data` measured when `DTS_BENCH_PGCOPYDB` (or
    /// `pgcopydb` on `PATH`) has a `compare data` command (pgcopydb 0.11 and later).
    pub fn new() -> Self {
        let program = std::env::var("DTS_BENCH_PGCOPYDB")
            .ok()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "pgcopydb".into());
        let has_compare = Command::new(&program)
            .args(["compare", "data", "--help"])
            .output()
            .is_ok_and(|o| o.status.success());
        Self {
            pgcopydb: has_compare.then_some(program),
            runs: RefCell::new(Vec::new()),
        }
    }
}

/// Verifies the target a dts run just copied: `dts verify` with the run's task file, then
/// `pgcopydb compare data` when the direction is PostgreSQL → PostgreSQL.
pub fn measure(
    bench: &Bench,
    verifications: &Verifications,
    direction: Direction,
    target: &str,
    label: &str,
    load: Duration,
) -> Result<()> {
    let exe = bench.dts.clone().unwrap_or_default();
    let mut command = Command::new(exe);
    command
        .arg("verify")
        .arg("--config")
        .arg(bench.work_dir.join(format!("{label}.toml")))
        .env("DTS_BENCH_SOURCE", bench.source_url(direction))
        .env("DTS_BENCH_TARGET", bench.target_url(direction, target));
    let dts = bench
        .timed(vec![command], &format!("{label}-verify"))?
        .map(|(elapsed, _)| elapsed);
    let pgcopydb = match (&verifications.pgcopydb, direction) {
        (Some(program), Direction::PgToPg) => {
            let dir = bench.work_dir.join(format!("{label}-compare"));
            let mut command = Command::new(program);
            command
                .args(["compare", "data", "--source"])
                .arg(bench.pg().url_for(PG_SOURCE_DB))
                .arg("--target")
                .arg(bench.pg().url_for(target))
                .arg("--dir")
                .arg(&dir);
            Some(
                bench
                    .timed(vec![command], &format!("{label}-compare"))?
                    .map(|(elapsed, _)| elapsed),
            )
        }
        _ => None,
    };
    verifications.runs.borrow_mut().push(Verified {
        direction,
        load,
        dts,
        pgcopydb,
    });
    Ok(())
}
