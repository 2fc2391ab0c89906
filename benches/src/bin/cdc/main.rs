//! Incremental migration throughput and latency: how fast `dts` applies a backlog of
//! single-row transactions from the MariaDB binary log to PostgreSQL, and how soon a row
//! committed in the source is visible in the target under a steady load.
//!
//! Prerequisites: Linux; the MariaDB server and client and the PostgreSQL server and client
//! (`apt-get install -y mariadb-server mariadb-client postgresql`; no server needs to run,
//! private ones are started with binary logging in row format); the release `dts` binary
//! next to this one:
//!
//! ```text
//! cargo build --release --bin dts
//! cargo run --release -p dts-benches --bin cdc
//! cargo run --release -p dts-benches --bin cdc -- --rows 20000 --rate 2000 --seconds 10
//! ```
//!
//! Set `DTS_BENCH_MYSQL_URL` (e.g. `mysql://root@127.0.0.1:3306`; a MariaDB server with
//! `binlog_format=ROW`, `binlog_row_image=FULL` and `binlog_row_metadata=FULL`) and
//! `DTS_BENCH_PG_URL` (e.g. `postgres://postgres@127.0.0.1:5432/postgres`) to use existing
//! servers instead; the benchmark then drops and recreates the database `cdcbench` on the
//! source and `bench_cdc` on the target.
//!
//! The steps, each on the state the previous one left:
//!
//! 1. setup: `cdcbench.events` with `--initial-rows` rows, then `dts run --until-caught-up`
//!    with `migration = ["schema", "full", "incremental"]` (the full load; not timed);
//! 2. `inserts`: with dts stopped, `--rows` single-row `INSERT` transactions; then `dts run
//!    --until-caught-up` applies the backlog, timed;
//! 3. `mixed`: the same with single-row `UPDATE`s (~70%) and `DELETE`s (~30%) by random id;
//! 4. `latency`: `dts run` replicating continuously while `--rate` single-row inserts per
//!    second are offered for `--seconds`; the target is polled every `--poll-ms` for new
//!    rows; then dts is stopped with `SIGTERM` and must exit with status 0.
//!
//! Before each timed catch-up, a catch-up with no backlog is timed too (start-up, prechecks,
//! connecting, reading the position): its time is subtracted for the net rate. After every
//! step the target table must equal the source (row count, `sum(id)`, `sum(amount)` and a
//! checksum of every row's values), else the benchmark says `MISMATCH` and exits with 1.
//!
//! `--help` lists the options; `benches/README.md` explains the output.

mod checksum;
mod latency;
mod source;
mod task;
mod workload;

use std::process::ExitCode;
use std::time::Duration;
use std::{env, fs};

use anyhow::{bail, Context as _, Result};
use dts_benches::report::{self, per_second, thousands, to_f64, Table};
use dts_testkit::{MariaDb, Postgres};

use checksum::Verdict;
use latency::{Measured, Settings};
use task::{CaughtUp, Dts, Incremental, Stopped};
use workload::Generated;

const USAGE: &str = "\
usage: cdc [--rows N] [--initial-rows N] [--rate R] [--seconds S] [--connections C]
           [--only inserts,mixed,latency] [--poll-ms MS] [--timeout SECS]
           [--max-batch-rows N] [--max-batch-delay-ms MS]
           [--verify-sample SHARE] [--verify-max-rows-per-second N]

  --rows N              single-row transactions of each throughput workload; default 100000
  --initial-rows N      rows of `events` before the full load; default 200000
  --rate R              rows (transactions) per second offered by the latency load; default 5000
  --seconds S           length of the latency load; default 20
  --connections C       source connections generating each load; default 4
  --only LIST           workloads to run, in this order: inserts, mixed, latency; default all
  --poll-ms MS          time between two polls of the target for new rows; default 5
  --timeout SECS        a dts catch-up still going after this long is killed and fails;
                        default 900
  --max-batch-rows N, --max-batch-delay-ms MS
                        written to the task's [incremental] section; default: not written,
                        dts's defaults apply
  --verify-sample SHARE, --verify-max-rows-per-second N
                        sampled verification during replication (written likewise)

environment: DTS_BENCH_MYSQL_URL, DTS_BENCH_PG_URL name existing servers to use instead of
private ones started from the installed binaries.";

/// Environment variable naming an existing MariaDB/MySQL server.
const MYSQL_URL_VAR: &str = "DTS_BENCH_MYSQL_URL";
/// Environment variable naming an existing PostgreSQL server.
const PG_URL_VAR: &str = "DTS_BENCH_PG_URL";

/// The target database.
const TARGET_DB: &str = "bench_cdc";

/// The targets set for incremental migration.
const INSERTS_TARGET: u64 = 50_000;
const MIXED_TARGET: u64 = 20_000;
const P99_TARGET: Duration = Duration::from_secs(1);

/// How long dts may take, when started, to show a change made in the source.
const PROBE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long rows may take to show after the latency load ends before they count as missing.
const DRAIN: Duration = Duration::from_secs(60);
/// How long dts may take to exit after `SIGTERM`.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    Inserts,
    Mixed,
    Latency,
}

impl Workload {
    const ALL: [Self; 3] = [Self::Inserts, Self::Mixed, Self::Latency];

    fn parse(name: &str) -> Option<Self> {
        match name {
            "inserts" => Some(Self::Inserts),
            "mixed" => Some(Self::Mixed),
            "latency" => Some(Self::Latency),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Inserts => "inserts",
            Self::Mixed => "mixed",
            Self::Latency => "latency",
        }
    }
}

#[derive(Debug)]
struct Args {
    rows: u64,
    initial_rows: u64,
    rate: u64,
    seconds: u64,
    connections: u64,
    workloads: Vec<Workload>,
    poll_every: Duration,
    timeout: Duration,
    incremental: Incremental,
}

impl Args {
    /// `None` for `--help`.
    fn parse(mut words: impl Iterator<Item = String>) -> Result<Option<Self>> {
        let mut args = Self {
            rows: 100_000,
            initial_rows: 200_000,
            rate: 5_000,
            seconds: 20,
            connections: 4,
            workloads: Workload::ALL.to_vec(),
            poll_every: Duration::from_millis(5),
            timeout: Duration::from_secs(900),
            incremental: Incremental::default(),
        };
        while let Some(word) = words.next() {
            let (flag, inline) = match word.split_once('=') {
                Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
                None => (word, None),
            };
            if flag == "--help" || flag == "-h" {
                return Ok(None);
            }
            let Some(value) = inline.or_else(|| words.next()) else {
                bail!("`{flag}` needs a value");
            };
            let number = || -> Result<u64> {
                value
                    .replace('_', "")
                    .parse()
                    .with_context(|| format!("`{flag}` needs a whole number, not `{value}`"))
            };
            match flag.as_str() {
                "--rows" => args.rows = number()?,
                "--initial-rows" => args.initial_rows = number()?,
                "--rate" => args.rate = number()?,
                "--seconds" => args.seconds = number()?,
                "--connections" => args.connections = number()?,
                "--poll-ms" => args.poll_every = Duration::from_millis(number()?),
                "--timeout" => args.timeout = Duration::from_secs(number()?),
                "--max-batch-rows" => args.incremental.max_batch_rows = Some(number()?),
                "--max-batch-delay-ms" => args.incremental.max_batch_delay_ms = Some(number()?),
                "--verify-max-rows-per-second" => {
                    args.incremental.verify_max_rows_per_second = Some(number()?);
                }
                "--verify-sample" => {
                    let share: f64 = value
                        .parse()
                        .ok()
                        .filter(|s| (0.0..=1.0).contains(s))
                        .with_context(|| {
                            format!("`{flag}` needs a share between 0 and 1, not `{value}`")
                        })?;
                    args.incremental.verify_sample = Some(share);
                }
                "--only" => {
                    let mut chosen = Vec::new();
                    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                        let w = Workload::parse(name)
                            .with_context(|| format!("unknown workload `{name}`"))?;
                        chosen.push(w);
                    }
                    if chosen.is_empty() {
                        bail!("empty workload list");
                    }
                    // Always in the documented order: each runs on the state the previous left.
                    args.workloads = Workload::ALL
                        .into_iter()
                        .filter(|w| chosen.contains(w))
                        .collect();
                }
                _ => bail!("unknown option `{flag}`"),
            }
        }
        if args.rows == 0
            || args.initial_rows == 0
            || args.rate == 0
            || args.seconds == 0
            || args.connections == 0
            || args.poll_every.is_zero()
        {
            bail!(
                "`--rows`, `--initial-rows`, `--rate`, `--seconds`, `--connections` and \
                 `--poll-ms` must be at least 1"
            );
        }
        Ok(Some(args))
    }
}

fn main() -> ExitCode {
    dts_benches::cli::main("cdc", USAGE, Args::parse, run)
}

/// A catch-up workload's results.
struct Throughput {
    workload: Workload,
    baseline: CaughtUp,
    generated: Generated,
    run: CaughtUp,
    verdict: Verdict,
}

impl Throughput {
    /// The backlog's wall time less the no-backlog catch-up's, if positive.
    fn net(&self) -> Option<Duration> {
        self.run
            .elapsed
            .checked_sub(self.baseline.elapsed)
            .filter(|d| !d.is_zero())
    }

    fn target(&self) -> u64 {
        match self.workload {
            Workload::Mixed => MIXED_TARGET,
            _ => INSERTS_TARGET,
        }
    }

    /// `met` or `MISSED` by the net rate; `n/a` when the backlog took no longer than the
    /// catch-up without one (a backlog too small to measure).
    fn versus_target(&self) -> &'static str {
        match self.net() {
            None => "n/a",
            Some(net)
                if to_f64(self.generated.transactions) / net.as_secs_f64()
                    >= to_f64(self.target()) =>
            {
                "met"
            }
            Some(_) => "MISSED",
        }
    }
}

/// The latency workload's results.
struct Latency {
    probe: Duration,
    measured: Measured,
    stopped: Stopped,
    verdict: Verdict,
}

impl Latency {
    fn p99(&self) -> Option<Duration> {
        report::percentile(&self.measured.from_commit, 990).map(Duration::from_micros)
    }

    fn met(&self) -> bool {
        self.measured.missing == 0 && self.p99().is_some_and(|p99| p99 < P99_TARGET)
    }
}

/// Everything the report shows.
struct Results {
    mysql_version: String,
    pg_version: String,
    setup: Option<(Duration, CaughtUp, Verdict)>,
    throughput: Vec<Throughput>,
    latency: Option<Latency>,
    /// The step that failed, and why; the steps after it did not run.
    failed: Option<(String, String)>,
}

/// Runs the benchmark and prints the report; `false` if a step failed or the target ever
/// differed from the source.
fn run(args: &Args) -> Result<bool> {
    if cfg!(debug_assertions) {
        eprintln!("note: this benchmark is a debug build; run it with `cargo run --release`");
    }
    let exe = dts_benches::child::sibling("dts").context("locating this executable")?;
    if !exe.is_file() {
        bail!(
            "the dts binary is missing: expected {} (next to this benchmark); \
             build it first with `cargo build --release --bin dts`",
            exe.display()
        );
    }
    let mysql = match env::var(MYSQL_URL_VAR) {
        Ok(url) if !url.is_empty() => MariaDb::external(&url)
            .with_context(|| format!("connecting to the server named by {MYSQL_URL_VAR}"))?,
        _ => MariaDb::start_owned().context("starting a private MariaDB server")?,
    };
    let pg = match env::var(PG_URL_VAR) {
        Ok(url) if !url.is_empty() => Postgres::external(&url)
            .with_context(|| format!("connecting to the server named by {PG_URL_VAR}"))?,
        _ => Postgres::start_owned().context("starting a private PostgreSQL server")?,
    };
    let mut results = Results {
        mysql_version: mysql.query("SELECT VERSION()")?,
        pg_version: pg.query("SHOW server_version")?,
        setup: None,
        throughput: Vec::new(),
        latency: None,
        failed: None,
    };
    eprintln!(
        "source MariaDB {} on {}:{}, target PostgreSQL {} on {}:{}",
        results.mysql_version,
        mysql.host(),
        mysql.port(),
        results.pg_version,
        pg.host(),
        pg.port()
    );

    let work_dir = env::temp_dir().join(format!("dts-cdc-{}", std::process::id()));
    fs::create_dir_all(&work_dir).with_context(|| format!("creating {}", work_dir.display()))?;
    let task_path = work_dir.join("task.toml");
    fs::write(&task_path, task::task_file(args.incremental))
        .with_context(|| format!("writing {}", task_path.display()))?;
    let bench = Bench {
        args,
        mysql: &mysql,
        pg: &pg,
        dts: Dts {
            exe,
            task: task_path,
            source_url: mysql.url(),
            target_url: pg.url_for(TARGET_DB),
            work_dir: work_dir.clone(),
            timeout: args.timeout,
        },
        runtime: tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?,
    };

    let mut step = "setup".to_owned();
    let outcome = (|| -> Result<()> {
        results.setup = Some(bench.setup()?);
        for &w in &args.workloads {
            w.name().clone_into(&mut step);
            match w {
                Workload::Inserts | Workload::Mixed => {
                    results.throughput.push(bench.throughput(w)?);
                }
                Workload::Latency => results.latency = Some(bench.latency()?),
            }
        }
        Ok(())
    })();
    if let Err(e) = outcome {
        eprintln!("cdc: {step} FAILED: {e:#}");
        results.failed = Some((step, format!("{e:#}")));
    }
    let all_ok = print_report(args, &results);
    if all_ok {
        mysql.drop_database(source::DB)?;
        pg.drop_database(TARGET_DB)?;
        let _ = fs::remove_dir_all(&work_dir);
    } else {
        println!("logs and task file: {}", work_dir.display());
    }
    Ok(all_ok)
}

/// The servers, the dts task and the settings shared by the steps.
struct Bench<'a> {
    args: &'a Args,
    mysql: &'a MariaDb,
    pg: &'a Postgres,
    dts: Dts,
    runtime: tokio::runtime::Runtime,
}

impl Bench<'_> {
    fn source_url(&self) -> String {
        self.mysql.url_for(source::DB)
    }

    fn compare(&self, step: &str) -> Result<Verdict> {
        let verdict = checksum::compare(self.mysql, self.pg, TARGET_DB)?;
        match &verdict {
            Verdict::Equal(sum) => eprintln!("[{step}] target = source: {sum}"),
            Verdict::Mismatch { source, target } => {
                eprintln!("[{step}] MISMATCH: source {source}; target {target}");
            }
        }
        Ok(verdict)
    }

    /// The source table, the target database and the full load.
    fn setup(&self) -> Result<(Duration, CaughtUp, Verdict)> {
        let generated = source::create(self.mysql, self.args.initial_rows)?;
        eprintln!(
            "[setup] {}.{}: {} rows generated in {:.1} s",
            source::DB,
            source::TABLE,
            thousands(self.args.initial_rows),
            generated.as_secs_f64()
        );
        self.pg.create_database(TARGET_DB)?;
        let run = self.dts.catch_up("setup")?;
        eprintln!(
            "[setup] schema + full load + catch-up: {:.2} s (not timed), peak {} MiB",
            run.elapsed.as_secs_f64(),
            report::mebibytes(run.peak_memory)
        );
        Ok((generated, run, self.compare("setup")?))
    }

    /// A backlog of single-row transactions left while dts is stopped, then applied by one
    /// `--until-caught-up` run.
    fn throughput(&self, w: Workload) -> Result<Throughput> {
        let name = w.name();
        let baseline = self.dts.catch_up(&format!("{name}-baseline"))?;
        eprintln!(
            "[{name}] catch-up with no backlog: {:.2} s",
            baseline.elapsed.as_secs_f64()
        );
        let (n, c) = (self.args.rows, self.args.connections);
        let url = self.source_url();
        let generated = match w {
            Workload::Mixed => {
                let live = source::ids(self.mysql)?;
                let before = u64::try_from(live.len())?;
                let generated = self
                    .runtime
                    .block_on(workload::updates_and_deletes(&url, &live, n, c, 0x5eed))?;
                let after = source::count(self.mysql)?;
                if after != before - generated.deletes {
                    bail!(
                        "the workload's deletes did not all delete a row: {before} rows, \
                         {} deletes, {after} rows left",
                        generated.deletes
                    );
                }
                generated
            }
            _ => {
                let first = source::max_id(self.mysql)? + 1;
                self.runtime
                    .block_on(workload::inserts(&url, first, n, c, 0x5eed))?
            }
        };
        eprintln!(
            "[{name}] backlog: {} single-row transactions ({} updates, {} deletes) from {c} \
             connections in {:.2} s ({} transactions/s)",
            thousands(generated.transactions),
            thousands(generated.updates),
            thousands(generated.deletes),
            generated.elapsed.as_secs_f64(),
            per_second(generated.transactions, generated.elapsed)
        );
        // Start the timed run with no dirty pages left by the load.
        self.pg.exec("CHECKPOINT")?;
        let run = self.dts.catch_up(name)?;
        eprintln!(
            "[{name}] catch-up with the backlog: {:.2} s, peak {} MiB{}",
            run.elapsed.as_secs_f64(),
            report::mebibytes(run.peak_memory),
            applied(run.applied)
        );
        let verdict = self.compare(name)?;
        Ok(Throughput {
            workload: w,
            baseline,
            generated,
            run,
            verdict,
        })
    }

    /// dts running continuously under a steady load; then stopped with `SIGTERM`.
    fn latency(&self) -> Result<Latency> {
        let settings = Settings {
            rate: self.args.rate,
            seconds: self.args.seconds,
            connections: self.args.connections,
            poll_every: self.args.poll_every,
            drain: DRAIN,
        };
        let first = source::max_id(self.mysql)? + 1;
        let probe_id = source::min_id(self.mysql)?;
        if probe_id == 0 {
            bail!("the source table is empty: no row to probe replication with");
        }
        let url = self.source_url();
        self.pg.exec("CHECKPOINT")?;
        let mut running = self.dts.start("latency")?;
        let (probe, measured) = self.runtime.block_on(async {
            let target = latency::connect_target(&self.pg.url_for(TARGET_DB)).await?;
            let probe =
                latency::probe(&url, &target, probe_id, settings.poll_every, PROBE_TIMEOUT).await?;
            eprintln!(
                "[latency] dts started and replicating: a change showed after {:.2} s; \
                 offering {} rows/s for {} s",
                probe.as_secs_f64(),
                thousands(settings.rate),
                settings.seconds
            );
            let measured = latency::measure(&url, &target, first, settings).await?;
            anyhow::Ok((probe, measured))
        })?;
        running.check_alive()?;
        let stopped = running.stop(STOP_TIMEOUT)?;
        eprintln!(
            "[latency] {} of {} rows committed, {} missing; dts stopped by SIGTERM in \
             {:.2} s with status 0, peak {} MiB{}",
            thousands(measured.committed),
            thousands(measured.planned),
            thousands(measured.missing),
            stopped.stop_time.as_secs_f64(),
            report::mebibytes(stopped.peak_memory),
            applied(stopped.applied)
        );
        let verdict = self.compare("latency")?;
        Ok(Latency {
            probe,
            measured,
            stopped,
            verdict,
        })
    }
}

fn applied(applied: Option<(u64, u64)>) -> String {
    applied.map_or_else(String::new, |(transactions, rows)| {
        format!(
            ", dts applied {} rows in {} transactions",
            thousands(rows),
            thousands(transactions)
        )
    })
}

fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

/// Microseconds as milliseconds with one decimal.
fn ms(us: u64) -> String {
    format!("{:.1}", to_f64(us) / 1000.0)
}

fn verified(verdict: &Verdict) -> &'static str {
    if verdict.is_equal() {
        "equal"
    } else {
        "MISMATCH"
    }
}

/// Prints the results; `true` if every step ran and the target always equalled the source.
fn print_report(args: &Args, results: &Results) -> bool {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let mut all_ok = results.failed.is_none();
    println!();
    println!(
        "cdc: MariaDB {} -> PostgreSQL {}, both local; {cores} CPU core(s); {} initial rows; \
         {} source connections; dts incremental settings: {}",
        results.mysql_version,
        results.pg_version,
        thousands(args.initial_rows),
        args.connections,
        incremental_settings(args.incremental)
    );
    if let Some((generated, run, verdict)) = &results.setup {
        all_ok &= verdict.is_equal();
        println!(
            "setup: {} rows generated in {:.1} s; schema + full load + catch-up {:.2} s \
             (not timed); target = source: {}",
            thousands(args.initial_rows),
            generated.as_secs_f64(),
            run.elapsed.as_secs_f64(),
            verified(verdict)
        );
        if let Verdict::Mismatch { source, target } = verdict {
            println!("  MISMATCH after setup: source {source}; target {target}");
        }
    }
    println!();
    let mut table = Table::new([
        "workload",
        "rows",
        "s",
        "rows/s",
        "net s",
        "net rows/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "target",
        "vs target",
        "target = source",
    ])
    .left_align(10)
    .left_align(11)
    .left_align(12);
    for t in &results.throughput {
        all_ok &= t.verdict.is_equal();
        let label = match t.workload {
            Workload::Mixed => "updates 70% / deletes 30%",
            _ => "single-row inserts",
        };
        table.row([
            format!("  catch-up, no backlog ({})", t.workload.name()),
            "0".to_owned(),
            secs(t.baseline.elapsed),
        ]);
        let net = t.net();
        table.row([
            label.to_owned(),
            thousands(t.generated.transactions),
            secs(t.run.elapsed),
            per_second(t.generated.transactions, t.run.elapsed),
            net.map_or_else(|| "-".to_owned(), secs),
            net.map_or_else(
                || "-".to_owned(),
                |net| per_second(t.generated.transactions, net),
            ),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            format!("≥ {} rows/s", thousands(t.target())),
            t.versus_target().to_owned(),
            verified(&t.verdict).to_owned(),
        ]);
    }
    if let Some(l) = &results.latency {
        all_ok &= l.verdict.is_equal() && l.measured.missing == 0;
        let m = &l.measured;
        let p = |per_mille| report::percentile(&m.from_commit, per_mille).map_or("-".into(), ms);
        table.row([
            format!("steady inserts, {} rows/s offered", thousands(args.rate)),
            thousands(m.committed),
            secs(m.send_time),
            per_second(m.committed, m.send_time),
            String::new(),
            String::new(),
            p(500),
            p(900),
            p(990),
            p(1000),
            "p99 < 1 s".to_owned(),
            if l.met() { "met" } else { "MISSED" }.to_owned(),
            verified(&l.verdict).to_owned(),
        ]);
    }
    print!("{table}");
    println!();
    for t in &results.throughput {
        let g = &t.generated;
        println!(
            "{}: backlog of {} single-row transactions ({} updates, {} deletes) generated \
             with dts stopped in {:.2} s ({} transactions/s); dts: no-backlog catch-up {:.2} s, \
             backlog catch-up {:.2} s, peak {} MiB{}",
            t.workload.name(),
            thousands(g.transactions),
            thousands(g.updates),
            thousands(g.deletes),
            g.elapsed.as_secs_f64(),
            per_second(g.transactions, g.elapsed),
            t.baseline.elapsed.as_secs_f64(),
            t.run.elapsed.as_secs_f64(),
            report::mebibytes(t.run.peak_memory),
            applied(t.run.applied)
        );
        if let Verdict::Mismatch { source, target } = &t.verdict {
            println!(
                "  MISMATCH after {}: source {source}; target {target}",
                t.workload.name()
            );
        }
    }
    if let Some(l) = &results.latency {
        print_latency(args, l);
    }
    if let Some((step, why)) = &results.failed {
        println!();
        println!("FAILED at step `{step}`: {why}");
        println!("(the steps after it did not run)");
    }
    println!();
    println!(
        "rows/s = rows / wall time of `dts run --until-caught-up`, from starting the process \
         to its exit; net = the same less the no-backlog catch-up just before (start-up, \
         prechecks, connecting, reading the position). `vs target` compares the net rate. \
         The machine may be shared and noisy: repeat before quoting a number."
    );
    all_ok
}

fn print_latency(args: &Args, l: &Latency) {
    let m = &l.measured;
    let p =
        |values: &[u64], per_mille| report::percentile(values, per_mille).map_or("-".into(), ms);
    println!(
        "latency: {} of {} rows committed ({} rows/s for {} s over {} connections, one \
         autocommit INSERT each); achieved {:.0} rows/s from the first due time to the last \
         commit; latest send {:.1} ms behind schedule",
        thousands(m.committed),
        thousands(m.planned),
        thousands(args.rate),
        args.seconds,
        args.connections,
        m.achieved_rate(),
        m.max_send_lag.as_secs_f64() * 1e3,
    );
    println!(
        "  commit -> visible (created_at = source NOW(6) at the INSERT, to the start of the \
         first poll that returned the row): p50 {} ms, p90 {} ms, p99 {} ms, max {} ms",
        p(&m.from_commit, 500),
        p(&m.from_commit, 900),
        p(&m.from_commit, 990),
        p(&m.from_commit, 1000)
    );
    println!(
        "  commit acknowledged to the client -> visible (this process's monotonic clock): \
         p50 {} ms, p90 {} ms, p99 {} ms, max {} ms",
        p(&m.from_ack, 500),
        p(&m.from_ack, 900),
        p(&m.from_ack, 990),
        p(&m.from_ack, 1000)
    );
    println!(
        "  poll granularity: a poll every {} ms asked, {} polls, mean interval {:.1} ms, \
         mean poll {:.1} ms, longest {:.1} ms: a latency is overstated by at most one \
         interval plus one poll",
        args.poll_every.as_millis(),
        thousands(m.polls),
        m.mean_poll_interval.as_secs_f64() * 1e3,
        m.mean_poll_time.as_secs_f64() * 1e3,
        m.max_poll_time.as_secs_f64() * 1e3
    );
    println!(
        "  clock: both servers run on this machine, so the source's NOW(6) and this \
         process's clock read the same system clock"
    );
    println!(
        "  dts: showed a probe change {:.2} s after it started; {} rows missing (rows may \
         take up to {} s after the load ends to show); stopped by SIGTERM in {:.2} s with exit status 0, peak {} MiB{}",
        l.probe.as_secs_f64(),
        thousands(m.missing),
        DRAIN.as_secs(),
        l.stopped.stop_time.as_secs_f64(),
        report::mebibytes(l.stopped.peak_memory),
        applied(l.stopped.applied)
    );
    if m.missing > 0 {
        println!(
            "  MISSING ROWS: {} committed rows never showed in the target",
            thousands(m.missing)
        );
    }
    if let Verdict::Mismatch { source, target } = &l.verdict {
        println!("  MISMATCH after latency: source {source}; target {target}");
    }
}

fn incremental_settings(i: Incremental) -> String {
    let mut set = Vec::new();
    if let Some(n) = i.max_batch_rows {
        set.push(format!("max_batch_rows = {n}"));
    }
    if let Some(n) = i.max_batch_delay_ms {
        set.push(format!("max_batch_delay_ms = {n}"));
    }
    if let Some(s) = i.verify_sample {
        set.push(format!("verify_sample = {s}"));
    }
    if let Some(n) = i.verify_max_rows_per_second {
        set.push(format!("verify_max_rows_per_second = {n}"));
    }
    if set.is_empty() {
        "defaults".to_owned()
    } else {
        set.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> Result<Option<Args>> {
        Args::parse(words.iter().map(|w| (*w).to_owned()))
    }

    #[test]
    fn parses_options() {
        let args = parse(&[]).unwrap().unwrap();
        assert_eq!((args.rows, args.initial_rows), (100_000, 200_000));
        assert_eq!((args.rate, args.seconds), (5_000, 20));
        assert_eq!(args.workloads, Workload::ALL);
        let args = parse(&[
            "--rows=20_000",
            "--rate",
            "2000",
            "--only",
            "latency,inserts",
            "--poll-ms",
            "2",
            "--max-batch-rows",
            "5000",
        ])
        .unwrap()
        .unwrap();
        assert_eq!((args.rows, args.rate), (20_000, 2_000));
        assert_eq!(args.workloads, [Workload::Inserts, Workload::Latency]);
        assert_eq!(args.poll_every, Duration::from_millis(2));
        assert_eq!(args.incremental.max_batch_rows, Some(5000));
        assert!(parse(&["--help"]).unwrap().is_none());
        assert!(parse(&["--only", "ddl"]).is_err());
        assert!(parse(&["--rate", "0"]).is_err());
        assert!(parse(&["--rows"]).is_err());
        assert!(parse(&["--bogus", "1"]).is_err());
    }

    #[test]
    fn a_mismatch_fails_the_run_and_a_missed_target_does_not() {
        let args = parse(&[]).unwrap().unwrap();
        let sum = |rows: &str| checksum::Checksum {
            rows: rows.to_owned(),
            sum_id: "1".to_owned(),
            sum_amount: "1.00".to_owned(),
            rows_md5: "1".to_owned(),
        };
        let caught_up = |ms| CaughtUp {
            elapsed: Duration::from_millis(ms),
            peak_memory: 1 << 20,
            applied: Some((10, 10)),
        };
        let throughput = |verdict, ms| Throughput {
            workload: Workload::Inserts,
            baseline: caught_up(100),
            generated: Generated {
                transactions: 100_000,
                ..Generated::default()
            },
            run: caught_up(ms),
            verdict,
        };
        let mut results = Results {
            mysql_version: "10.11".to_owned(),
            pg_version: "15".to_owned(),
            setup: None,
            throughput: vec![throughput(Verdict::Equal(sum("1")), 10_100)],
            latency: None,
            failed: None,
        };
        // 100,000 rows in 10 s net: 10,000 rows/s, below the target, still a valid run.
        assert_eq!(results.throughput[0].versus_target(), "MISSED");
        assert!(print_report(&args, &results));
        results.throughput[0] = throughput(Verdict::Equal(sum("1")), 1_100);
        assert_eq!(results.throughput[0].versus_target(), "met");
        results.throughput[0] = throughput(Verdict::Equal(sum("1")), 90);
        assert_eq!(results.throughput[0].versus_target(), "n/a");
        results.throughput.push(throughput(
            Verdict::Mismatch {
                source: sum("2"),
                target: sum("1"),
            },
            1_100,
        ));
        assert!(!print_report(&args, &results));
    }
}
