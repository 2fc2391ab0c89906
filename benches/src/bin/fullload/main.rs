//! Full-load throughput: dts against pgloader and a raw `mariadb | psql COPY` pipe, on the
//! same MariaDB tables in the same run.
//!
//! Prerequisites: Linux; the MariaDB server and client and the PostgreSQL server and client
//! (`apt-get install -y mariadb-server mariadb-client postgresql`; no server needs to run,
//! private ones are started); `pgloader` on `PATH` (`apt-get install -y pgloader`; skipped
//! with a message if absent); the release `dts` binary next to this one:
//!
//! ```text
//! cargo build --release --bin dts
//! cargo run --release -p dts-benches --bin fullload
//! cargo run --release -p dts-benches --bin fullload -- --rows 200000 --repeat 3 --only pgloader,pipe
//! ```
//!
//! Set `DTS_BENCH_MYSQL_URL` (e.g. `mysql://root@127.0.0.1:3306`) and `DTS_BENCH_PG_URL`
//! (e.g. `postgres://postgres@127.0.0.1:5432/postgres`) to use existing servers instead; the
//! benchmark then drops and recreates the databases `benchdb` and `dts_fullload_store` on the
//! source and `bench_dts`, `bench_pgloader` and `bench_pipe` on the target.
//!
//! `--help` lists the options; `benches/README.md` explains each column.

mod source;
mod tools;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;
use std::{env, fs};

use anyhow::{bail, Context as _, Result};
use dts_benches::cli::list;
use dts_benches::report::{self, megabytes, per_second, thousands, Table};
use dts_testkit::{MariaDb, Postgres};

use source::{Set, TableStats};
use tools::{Bench, Outcome, Tool};

const USAGE: &str = "\
usage: fullload [--rows N] [--wide-rows N] [--only dts,pgloader,pipe] [--sets orders,wide,all]
                [--repeat K] [--timeout SECS] [--pgloader-with OPTION]... [--verify]
                [--baseline PATH]

  --rows N        rows of `orders` (6 columns, primary key, one index); default 1000000
  --wide-rows N   rows of `wide` (text, blob, json, decimal, times, non-ASCII); default 100000
  --only LIST     tools to measure; default dts,pgloader,pipe (`baseline` too with
                  --baseline)
  --sets LIST     table sets, each migrated and measured on its own; default orders,wide
                  (`all` migrates both tables together)
  --repeat K      runs per tool and set; the best and the median are reported; default 1
  --timeout SECS  a run still going after this long is killed and reported failed; default 900
  --pgloader-with OPTION
                  a pgloader load option, passed as `--with OPTION` (repeatable), e.g.
                  \"prefetch rows = 10000\"; default none: pgloader's default settings
  --baseline PATH another dts binary (e.g. a build of an earlier commit), measured as the
                  tool `baseline` in the same runs, rotated with the others
  --verify        after each dts load, time `dts verify` of the same task (which must find
                  the target equal to the source) and compare it with the load's time

environment: DTS_BENCH_MYSQL_URL, DTS_BENCH_PG_URL name existing servers to use instead of
private ones started from the installed binaries.";

/// Environment variable naming an existing MariaDB/MySQL server.
const MYSQL_URL_VAR: &str = "DTS_BENCH_MYSQL_URL";
/// Environment variable naming an existing PostgreSQL server.
const PG_URL_VAR: &str = "DTS_BENCH_PG_URL";

#[derive(Debug)]
struct Args {
    rows: u64,
    wide_rows: u64,
    tools: Vec<Tool>,
    sets: Vec<Set>,
    repeat: usize,
    timeout: Duration,
    pgloader_with: Vec<String>,
    verify: bool,
    baseline: Option<PathBuf>,
}

impl Args {
    /// `None` for `--help`.
    fn parse(mut words: impl Iterator<Item = String>) -> Result<Option<Self>> {
        let mut args = Self {
            rows: 1_000_000,
            wide_rows: 100_000,
            tools: Tool::ALL.to_vec(),
            sets: vec![Set::Orders, Set::Wide],
            repeat: 1,
            timeout: Duration::from_secs(900),
            pgloader_with: Vec::new(),
            verify: false,
            baseline: None,
        };
        while let Some(word) = words.next() {
            let (flag, inline) = match word.split_once('=') {
                Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
                None => (word, None),
            };
            if flag == "--help" || flag == "-h" {
                return Ok(None);
            }
            if flag == "--verify" {
                args.verify = true;
                continue;
            }
            let value = match inline.or_else(|| words.next()) {
                Some(value) => value,
                None => bail!("`{flag}` needs a value"),
            };
            let number = || -> Result<u64> {
                value
                    .replace('_', "")
                    .parse()
                    .with_context(|| format!("`{flag}` needs a whole number, not `{value}`"))
            };
            match flag.as_str() {
                "--rows" => args.rows = number()?,
                "--wide-rows" => args.wide_rows = number()?,
                "--repeat" => args.repeat = usize::try_from(number()?)?,
                "--timeout" => args.timeout = Duration::from_secs(number()?),
                "--only" => args.tools = list(&value, Tool::parse, "tool")?,
                "--sets" => args.sets = list(&value, Set::parse, "table set")?,
                "--pgloader-with" => args.pgloader_with.push(value),
                "--baseline" => {
                    args.baseline = Some(PathBuf::from(&value));
                    if !args.tools.contains(&Tool::Baseline) {
                        args.tools.insert(1.min(args.tools.len()), Tool::Baseline);
                    }
                }
                _ => bail!("unknown option `{flag}`"),
            }
        }
        if args.rows == 0 || args.wide_rows == 0 || args.repeat == 0 {
            bail!("`--rows`, `--wide-rows` and `--repeat` must be at least 1");
        }
        if args.tools.contains(&Tool::Baseline) && args.baseline.is_none() {
            bail!("the tool `baseline` needs `--baseline PATH`");
        }
        Ok(Some(args))
    }
}

fn main() -> ExitCode {
    dts_benches::cli::main("fullload", USAGE, Args::parse, run)
}

/// Runs the benchmark and prints the report; `false` if a measured tool failed or lost rows.
fn run(args: &Args) -> Result<bool> {
    if cfg!(debug_assertions) {
        eprintln!("note: this benchmark is a debug build; run it with `cargo run --release`");
    }
    let mut tools = args.tools.clone();
    let mut skipped = Vec::new();
    let dts = if tools.contains(&Tool::Dts) {
        Some(locate_dts()?)
    } else {
        None
    };
    let baseline = match (&args.baseline, tools.contains(&Tool::Baseline)) {
        (Some(path), true) if !path.is_file() => {
            bail!("`--baseline {}`: no such file", path.display())
        }
        (Some(path), true) => Some(path.clone()),
        _ => None,
    };
    let pgloader_version = if tools.contains(&Tool::Pgloader) {
        if let Some(version) = pgloader_version() {
            Some(version)
        } else {
            let why = "pgloader skipped: `pgloader` is not on PATH \
                       (Debian: apt-get install -y pgloader)";
            eprintln!("{why}");
            skipped.push(why.to_owned());
            tools.retain(|t| *t != Tool::Pgloader);
            None
        }
    } else {
        None
    };

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
    let mysql_version = mysql.query("SELECT VERSION()")?;
    let pg_version = pg.query("SHOW server_version")?;
    eprintln!(
        "source MariaDB {mysql_version} on {}:{}, target PostgreSQL {pg_version} on {}:{}",
        mysql.host(),
        mysql.port(),
        pg.host(),
        pg.port()
    );

    source::generate(&mysql, args.rows, args.wide_rows)?;
    let stats: Vec<TableStats> = source::Table::ALL
        .iter()
        .map(|t| source::stats(&mysql, *t))
        .collect::<Result<_>>()?;

    let work_dir = env::temp_dir().join(format!("dts-fullload-{}", std::process::id()));
    fs::create_dir_all(&work_dir).with_context(|| format!("creating {}", work_dir.display()))?;
    let bench = Bench {
        mysql: &mysql,
        pg: &pg,
        dts,
        baseline,
        work_dir: work_dir.clone(),
        timeout: args.timeout,
        source_rows: stats.iter().map(|s| (s.table, s.rows)).collect(),
        pgloader_with: args.pgloader_with.clone(),
        verify: args.verify,
    };

    let mut outcomes: HashMap<(Set, Tool), Vec<Outcome>> = HashMap::new();
    for &set in &args.sets {
        source::move_set(&mysql, set, false)?;
        for rep in 0..args.repeat {
            // Rotate the order so that no tool always runs first (or last) on a warm server.
            for i in 0..tools.len() {
                let tool = tools[(i + rep) % tools.len()];
                let label = format!("{}-{}-{}", set.name(), tool.name(), rep + 1);
                let outcome = bench.run(tool, set, &label)?;
                eprintln!(
                    "[{}] {} run {}/{}: {}",
                    set.name(),
                    tool.name(),
                    rep + 1,
                    args.repeat,
                    describe(&outcome)
                );
                outcomes.entry((set, tool)).or_default().push(outcome);
            }
        }
        source::move_set(&mysql, set, true)?;
    }
    mysql.drop_database(source::BENCH_DB)?;
    mysql.drop_database(source::STORE_DB)?;

    let versions = Versions {
        mysql: mysql_version,
        pg: pg_version,
        pgloader: pgloader_version,
    };
    let all_ok = print_report(args, &tools, &stats, &outcomes, &versions, &skipped);
    if args.verify {
        print_verify_report(&args.sets, &stats, &outcomes);
    }
    if all_ok {
        let _ = fs::remove_dir_all(&work_dir);
    } else {
        println!("logs and task files: {}", work_dir.display());
    }
    Ok(all_ok)
}

/// `target/release/dts`, next to this executable.
fn locate_dts() -> Result<PathBuf> {
    let dts = dts_benches::child::sibling("dts").context("locating this executable")?;
    if !dts.is_file() {
        bail!(
            "the dts binary is missing: expected {} (next to this benchmark); \
             build it first with `cargo build --release --bin dts`, \
             or leave dts out with `--only pgloader,pipe`",
            dts.display()
        );
    }
    Ok(dts)
}

/// The first line of `pgloader --version`, or `None` if it is not on `PATH`.
fn pgloader_version() -> Option<String> {
    let output = Command::new("pgloader").arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    Some(text.lines().next().unwrap_or("pgloader").trim().to_owned())
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Done {
            elapsed,
            peak_memory,
            verify,
        } => format!(
            "{:.2} s, peak {} MiB, row counts verified{}",
            elapsed.as_secs_f64(),
            report::mebibytes(*peak_memory),
            verify
                .map(|v| format!(
                    "; dts verify {:.2} s: source and target match",
                    v.as_secs_f64()
                ))
                .unwrap_or_default()
        ),
        Outcome::Failed(why) => format!("FAILED: {why}"),
        Outcome::LostRows(what) => format!("LOST ROWS: {what}"),
    }
}

struct Versions {
    mysql: String,
    pg: String,
    pgloader: Option<String>,
}

/// A tool's results on one set.
struct Summary {
    runs: usize,
    /// Wall times of the runs, sorted; empty if any run failed or lost rows.
    times: Vec<Duration>,
    peak_memory: u64,
    /// The first failed run: `FAILED` or `LOST ROWS`, and what happened.
    problem: Option<(&'static str, String)>,
}

impl Summary {
    fn of(outcomes: &[Outcome]) -> Self {
        let mut times = Vec::new();
        let mut peak_memory = 0;
        let mut problem = None;
        for (run, outcome) in outcomes.iter().enumerate() {
            let failed = match outcome {
                Outcome::Done {
                    elapsed,
                    peak_memory: peak,
                    ..
                } => {
                    times.push(*elapsed);
                    peak_memory = peak_memory.max(*peak);
                    None
                }
                Outcome::Failed(why) => Some(("FAILED", why)),
                Outcome::LostRows(what) => Some(("LOST ROWS", what)),
            };
            if let (Some((kind, what)), None) = (failed, &problem) {
                problem = Some((kind, format!("run {}: {what}", run + 1)));
            }
        }
        if problem.is_some() {
            times.clear();
        }
        times.sort();
        Self {
            runs: outcomes.len(),
            times,
            peak_memory,
            problem,
        }
    }

    fn best(&self) -> Option<Duration> {
        self.times.first().copied()
    }

    fn median(&self) -> Option<Duration> {
        report::median(&self.times)
    }
}

/// Per set, the time `dts verify` took against the time of the dts load it verified, in
/// the same run: both medians, the verification's rows/s, and the median of the per-run
/// ratios (below 1: verifying took less time than copying).
fn print_verify_report(
    sets: &[Set],
    stats: &[TableStats],
    outcomes: &HashMap<(Set, Tool), Vec<Outcome>>,
) {
    let mut table = Table::new([
        "set",
        "runs",
        "load median s",
        "verify median s",
        "verify rows/s",
        "verify ÷ load (median of runs)",
    ]);
    for &set in sets {
        let runs: Vec<(Duration, Duration)> = outcomes
            .get(&(set, Tool::Dts))
            .into_iter()
            .flatten()
            .filter_map(|o| match o {
                Outcome::Done {
                    elapsed,
                    verify: Some(v),
                    ..
                } => Some((*elapsed, *v)),
                _ => None,
            })
            .collect();
        if runs.is_empty() {
            table.row(vec![
                set.name().to_owned(),
                "0".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "FAILED".into(),
            ]);
            continue;
        }
        let rows: u64 = stats
            .iter()
            .filter(|s| set.tables().contains(&s.table))
            .map(|s| s.rows)
            .sum();
        let mut loads: Vec<Duration> = runs.iter().map(|r| r.0).collect();
        let mut verifies: Vec<Duration> = runs.iter().map(|r| r.1).collect();
        let mut ratios: Vec<f64> = runs
            .iter()
            .map(|(l, v)| v.as_secs_f64() / l.as_secs_f64())
            .collect();
        loads.sort();
        verifies.sort();
        ratios.sort_by(f64::total_cmp);
        let median_ratio = if ratios.len() % 2 == 1 {
            ratios[ratios.len() / 2]
        } else {
            (ratios[ratios.len() / 2 - 1] + ratios[ratios.len() / 2]) / 2.0
        };
        let load = report::median(&loads).unwrap_or_default();
        let verify = report::median(&verifies).unwrap_or_default();
        table.row(vec![
            set.name().to_owned(),
            runs.len().to_string(),
            format!("{:.2}", load.as_secs_f64()),
            format!("{:.2}", verify.as_secs_f64()),
            per_second(rows, verify),
            format!("{median_ratio:.2}"),
        ]);
    }
    println!("\ndts verify after each dts load (same task, same run):\n{table}");
}

/// Prints the result tables; `true` if every measured run succeeded.
fn print_report(
    args: &Args,
    tools: &[Tool],
    stats: &[TableStats],
    outcomes: &HashMap<(Set, Tool), Vec<Outcome>>,
    versions: &Versions,
    skipped: &[String],
) -> bool {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    println!();
    println!(
        "fullload: MariaDB {} -> PostgreSQL {}, both local; {} CPU core(s); {} run(s) per tool and set",
        versions.mysql, versions.pg, cores, args.repeat
    );
    if let Some(pgloader) = &versions.pgloader {
        if args.pgloader_with.is_empty() {
            println!("pgloader: {pgloader}, default settings");
        } else {
            let options: Vec<String> = args
                .pgloader_with
                .iter()
                .map(|o| format!("--with {o:?}"))
                .collect();
            println!(
                "pgloader: {pgloader}, NOT default settings: {}",
                options.join(" ")
            );
        }
    }
    for why in skipped {
        println!("{why}");
    }
    let mut all_ok = true;
    for &set in &args.sets {
        let tables: Vec<&TableStats> = stats
            .iter()
            .filter(|s| set.tables().contains(&s.table))
            .collect();
        let rows: u64 = tables.iter().map(|s| s.rows).sum();
        let payload: u64 = tables.iter().map(|s| s.payload_bytes).sum();
        println!();
        println!("table set `{}`:", set.name());
        for s in &tables {
            println!(
                "  {}: {} rows, {} columns, payload {} MB (sum of LENGTH(value)), \
                 InnoDB data {} MB + secondary indexes {} MB",
                s.table.name(),
                thousands(s.rows),
                s.columns,
                megabytes(s.payload_bytes),
                megabytes(s.data_length),
                megabytes(s.index_length)
            );
        }
        let mut table = Table::new([
            "tool",
            "result",
            "runs ok",
            "best s",
            "median s",
            "best rows/s",
            "median rows/s",
            "best MB/s",
            "peak MiB",
        ])
        .left_align(1);
        let summaries: HashMap<Tool, Summary> = tools
            .iter()
            .map(|t| {
                (
                    *t,
                    Summary::of(outcomes.get(&(set, *t)).map_or(&[], Vec::as_slice)),
                )
            })
            .collect();
        for &tool in tools {
            let s = &summaries[&tool];
            let dash = || "-".to_owned();
            let secs =
                |d: Option<Duration>| d.map_or_else(dash, |d| format!("{:.2}", d.as_secs_f64()));
            let rate = |d: Option<Duration>| d.map_or_else(dash, |d| per_second(rows, d));
            let mb_rate = |d: Option<Duration>| {
                d.map_or_else(dash, |d| {
                    format!("{:.1}", report::to_f64(payload) / 1e6 / d.as_secs_f64())
                })
            };
            all_ok &= s.problem.is_none();
            table.row([
                tool.name().to_owned(),
                s.problem.as_ref().map_or("ok", |(kind, _)| kind).to_owned(),
                format!("{}/{}", s.times.len(), s.runs),
                secs(s.best()),
                secs(s.median()),
                rate(s.best()),
                rate(s.median()),
                mb_rate(s.best()),
                if s.times.is_empty() {
                    dash()
                } else {
                    report::mebibytes(s.peak_memory)
                },
            ]);
        }
        print!("{table}");
        for &tool in tools {
            if let Some((kind, what)) = &summaries[&tool].problem {
                println!("  {} {kind}, {what}", tool.name());
            }
        }
        for peer in [Tool::Baseline, Tool::Pgloader, Tool::Pipe] {
            if peer == Tool::Baseline && !tools.contains(&peer) {
                continue;
            }
            println!(
                "  dts rows/s ÷ {} rows/s: {}",
                peer.name(),
                ratio(&summaries, peer)
            );
        }
    }
    println!();
    println!(
        "Wall time includes schema creation and index builds for every tool. The machine may \
         be shared and noisy: quote the ratios, which compare runs on the same data in the \
         same session, rather than absolute rates."
    );
    all_ok
}

/// `best 1.23x, median 1.20x`, or why there is no ratio.
fn ratio(summaries: &HashMap<Tool, Summary>, peer: Tool) -> String {
    let (Some(dts), Some(other)) = (summaries.get(&Tool::Dts), summaries.get(&peer)) else {
        return "n/a (not both measured)".into();
    };
    if dts.problem.is_some() {
        return "n/a (dts failed)".into();
    }
    if other.problem.is_some() {
        return format!("n/a ({} failed)", peer.name());
    }
    let times = |d: Option<Duration>, o: Option<Duration>| match (d, o) {
        // Same rows, so the rate ratio is the inverse time ratio.
        (Some(d), Some(o)) => format!("{:.2}x", o.as_secs_f64() / d.as_secs_f64()),
        _ => "n/a".into(),
    };
    format!(
        "best {}, median {}",
        times(dts.best(), other.best()),
        times(dts.median(), other.median())
    )
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
        assert_eq!(args.rows, 1_000_000);
        assert_eq!(args.tools, Tool::ALL);
        assert!(!args.verify);
        let args = parse(&[
            "--verify",
            "--rows",
            "2_000",
            "--wide-rows=10",
            "--only",
            "pipe,pgloader,pipe",
            "--repeat",
            "3",
            "--sets",
            "all",
            "--pgloader-with",
            "prefetch rows = 10000",
            "--pgloader-with=workers = 2",
        ])
        .unwrap()
        .unwrap();
        assert_eq!((args.rows, args.wide_rows, args.repeat), (2000, 10, 3));
        assert_eq!(args.tools, [Tool::Pipe, Tool::Pgloader]);
        assert_eq!(args.sets, [Set::All]);
        assert_eq!(args.pgloader_with, ["prefetch rows = 10000", "workers = 2"]);
        assert!(args.verify);
        assert!(parse(&["--help"]).unwrap().is_none());
        assert!(parse(&["--only", "mydumper"]).is_err());
        assert!(parse(&["--rows"]).is_err());
        assert!(parse(&["--repeat", "0"]).is_err());
        assert!(parse(&["--bogus", "1"]).is_err());
    }

    #[test]
    fn a_failed_run_is_not_timed() {
        let done = |s| Outcome::Done {
            elapsed: Duration::from_secs(s),
            peak_memory: 1 << 20,
            verify: None,
        };
        let s = Summary::of(&[done(3), done(1), done(2)]);
        assert_eq!(s.best(), Some(Duration::from_secs(1)));
        assert_eq!(s.median(), Some(Duration::from_secs(2)));
        let s = Summary::of(&[done(3), Outcome::LostRows("orders: 1 of 2 rows".into())]);
        assert_eq!(s.best(), None);
        let (kind, what) = s.problem.unwrap();
        assert_eq!(kind, "LOST ROWS");
        assert_eq!(what, "run 2: orders: 1 of 2 rows");
    }

    #[test]
    fn ratios_compare_rates() {
        let summary = |secs: u64| Summary {
            runs: 1,
            times: vec![Duration::from_secs(secs)],
            peak_memory: 0,
            problem: None,
        };
        let summaries = HashMap::from([(Tool::Dts, summary(2)), (Tool::Pgloader, summary(4))]);
        assert_eq!(
            ratio(&summaries, Tool::Pgloader),
            "best 2.00x, median 2.00x"
        );
        assert_eq!(ratio(&summaries, Tool::Pipe), "n/a (not both measured)");
    }
}
