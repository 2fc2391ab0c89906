//! Throughput benchmarks of dts against real servers and peer tools.
//!
//! The benchmarks are binaries (`src/bin/*`) that start private MariaDB and PostgreSQL
//! servers with `dts-testkit` (or use the servers named by `DTS_BENCH_MYSQL_URL` and
//! `DTS_BENCH_PG_URL`), generate data, run dts and its peers on the same data in the same
//! run, and print rows/s with the ratios between the tools. See `benches/README.md` for the
//! commands and what each column means:
//!
//! - `fullload`: a full load of MariaDB tables into PostgreSQL by the `dts` binary,
//!   `pgloader`, and a raw `mariadb --quick -B | psql -c "COPY …"` pipe.
//! - `sqlite`: a SQLite file into PostgreSQL by the `dts` binary and by `pgloader`.
//! - `directions`: the other directions against their peers (`pgcopydb`, the raw client
//!   pipes), and change capture from PostgreSQL.
//! - `cdc`: incremental migration by the `dts` binary: how fast it applies a backlog of
//!   single-row inserts and of updates and deletes, and how soon a row committed in the
//!   source is visible in the target under a steady load.
//!
//! This library holds what the binaries share: [`cli`] turns arguments into a run and its
//! result into an exit code, [`clients`] runs the servers' command-line clients, [`usage`]
//! waits for child processes while sampling their peak memory, [`child`] finds, stops and
//! diagnoses them, [`report`] prints result tables.
//!
//! ```no_run
//! use std::process::Command;
//! use std::time::Instant;
//!
//! fn main() -> std::io::Result<()> {
//!     let started = Instant::now();
//!     let mut children = [Command::new("pgloader").arg("--version").spawn()?];
//!     let usage = dts_benches::usage::wait(&mut children, None)?;
//!     let mut table = dts_benches::report::Table::new(["tool", "s", "peak MiB"]);
//!     table.row([
//!         "pgloader".to_owned(),
//!         format!("{:.2}", started.elapsed().as_secs_f64()),
//!         dts_benches::report::mebibytes(usage.peak_memory),
//!     ]);
//!     print!("{table}");
//!     Ok(())
//! }
//! ```
//!
//! This crate has no features. It needs Linux (`/proc`).

pub mod child;
pub mod cli;
pub mod clients;
pub mod report;
pub mod usage;
