//! The directions other than MySQL → PostgreSQL, each against its peers on the same data in
//! the same run: a full load of `orders` PostgreSQL → PostgreSQL (dts, `pgcopydb clone`,
//! `psql | psql`), PostgreSQL → MariaDB (dts, `psql COPY TO | mariadb LOAD DATA`) and
//! MariaDB → MariaDB (dts, `mariadb | mariadb LOAD DATA`); then change capture from
//! PostgreSQL (single-row inserts, single-row updates and deletes) applied to each target.
//!
//! Prerequisites: Linux; the MariaDB and PostgreSQL servers and clients (no server needs to
//! run: private ones are started); `pgcopydb` on `PATH` (`apt-get install -y pgcopydb`;
//! skipped with a message if absent); the release `dts` binary next to this one:
//!
//! ```text
//! cargo build --release --bin dts --bin directions
//! target/release/directions --repeat 3
//! target/release/directions --directions pg-to-pg --rows 200000 --capture-rows 0
//! ```
//!
//! `--help` lists the options; `benches/README.md` explains the output.

mod capture;
mod data;
mod tools;
mod verify;

use std::collections::HashMap;
use std::process::{Command, ExitCode};
use std::time::Duration;
use std::{env, fs};

use anyhow::{bail, Context as _, Result};
use dts_benches::cli::list;
use dts_benches::report::{self, per_second, thousands, Table};
use dts_testkit::{MariaDb, Postgres};

use tools::{Bench, Direction, Outcome, Tool};
use verify::Verifications;

const USAGE: &str = "\
usage: directions [--directions pg-to-pg,pg-to-mysql,mysql-to-mysql] [--rows N] [--repeat K]
                  [--only dts,pgcopydb,pipe] [--capture-rows N] [--initial-rows N]
                  [--timeout SECS] [--verify]

  --directions LIST  directions to measure; default all three
  --rows N           rows of `orders` (6 columns, primary key, one index); default 1000000
  --repeat K         runs per tool and direction, the order rotating; default 3
  --only LIST        tools to measure (dts is always among them when capture is measured);
                     default dts,pgcopydb,pipe (pgcopydb in pg-to-pg only)
  --capture-rows N   single-row transactions of each capture workload from PostgreSQL
                     (pg-to-pg and pg-to-mysql); 0 skips capture; default 100000
  --initial-rows N   rows of the capture table copied by the full load first; default 100000
  --timeout SECS     a run still going after this long is killed and fails; default 900
  --verify           after each dts run, time `dts verify` of its task and, in pg-to-pg,
                     `pgcopydb compare data` of the same databases (a pgcopydb with a
                     `compare` command, 0.11 or later: DTS_BENCH_PGCOPYDB or on PATH)
  --keep-logs        keep the tools' logs and task files even when every run succeeded
  --dts-with LINE    a line added to dts's task files (repeatable), e.g. \"full.workers = 1\";
                     default none: dts's defaults

environment: DTS_BENCH_MYSQL_URL, DTS_BENCH_PG_URL name existing servers to use instead of
private ones started from the installed binaries; the benchmark drops and recreates its
databases there (benchdb, bench_source, bench_capture_source, bench_dts, bench_pgcopydb,
bench_pipe, bench_capture, dts_meta).";

#[derive(Debug)]
struct Args {
    directions: Vec<Direction>,
    rows: u64,
    repeat: usize,
    tools: Vec<Tool>,
    capture_rows: u64,
    initial_rows: u64,
    timeout: Duration,
    keep_logs: bool,
    dts_with: Vec<String>,
    verify: bool,
}

impl Args {
    fn parse(mut words: impl Iterator<Item = String>) -> Result<Option<Self>> {
        let mut args = Self {
            directions: Direction::ALL.to_vec(),
            rows: 1_000_000,
            repeat: 3,
            tools: Tool::ALL.to_vec(),
            capture_rows: 100_000,
            initial_rows: 100_000,
            timeout: Duration::from_secs(900),
            keep_logs: false,
            dts_with: Vec::new(),
            verify: false,
        };
        while let Some(word) = words.next() {
            let (flag, inline) = match word.split_once('=') {
                Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
                None => (word, None),
            };
            if flag == "--help" || flag == "-h" {
                return Ok(None);
            }
            if flag == "--keep-logs" {
                args.keep_logs = true;
                continue;
            }
            if flag == "--verify" {
                args.verify = true;
                continue;
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
                "--directions" => args.directions = list(&value, Direction::parse, "direction")?,
                "--rows" => args.rows = number()?,
                "--repeat" => args.repeat = usize::try_from(number()?)?,
                "--only" => args.tools = list(&value, Tool::parse, "tool")?,
                "--capture-rows" => args.capture_rows = number()?,
                "--initial-rows" => args.initial_rows = number()?,
                "--timeout" => args.timeout = Duration::from_secs(number()?),
                "--dts-with" => args.dts_with.push(value),
                _ => bail!("unknown option `{flag}`"),
            }
        }
        if args.rows == 0 || args.repeat == 0 || args.initial_rows == 0 {
            bail!("`--rows`, `--repeat` and `--initial-rows` must be at least 1");
        }
        Ok(Some(args))
    }
}

fn main() -> ExitCode {
    dts_benches::cli::main("directions", USAGE, Args::parse, run)
}

fn run(args: &Args) -> Result<bool> {
    if cfg!(debug_assertions) {
        eprintln!("note: this benchmark is a debug build; run it with `cargo build --release`");
    }
    let mut skipped: Vec<String> = Vec::new();
    let mut tools = args.tools.clone();
    let pgcopydb = version_of("pgcopydb");
    if tools.contains(&Tool::Pgcopydb)
        && args.directions.contains(&Direction::PgToPg)
        && pgcopydb.is_none()
    {
        skipped.push("pgcopydb skipped: not on PATH (Debian: apt-get install -y pgcopydb)".into());
        tools.retain(|t| *t != Tool::Pgcopydb);
    }
    let dts_wanted = tools.contains(&Tool::Dts) || args.capture_rows > 0;
    let dts = if dts_wanted {
        let dts = dts_benches::child::sibling("dts").context("locating this executable")?;
        if !dts.is_file() {
            bail!(
                "the dts binary is missing: expected {} (build it with `cargo build --release \
                 --bin dts`), or leave dts out with `--only pipe --capture-rows 0`",
                dts.display()
            );
        }
        Some(dts)
    } else {
        None
    };

    let need_pg = args
        .directions
        .iter()
        .any(|d| d.source_is_pg() || d.target_is_pg());
    let need_mysql = args
        .directions
        .iter()
        .any(|d| !d.target_is_pg() || !d.source_is_pg());
    let pg = if need_pg {
        Some(match env::var("DTS_BENCH_PG_URL") {
            Ok(url) if !url.is_empty() => Postgres::external(&url)?,
            _ => Postgres::start_owned().context("starting a private PostgreSQL server")?,
        })
    } else {
        None
    };
    let mysql = if need_mysql {
        Some(match env::var("DTS_BENCH_MYSQL_URL") {
            Ok(url) if !url.is_empty() => MariaDb::external(&url)?,
            _ => MariaDb::start_owned().context("starting a private MariaDB server")?,
        })
    } else {
        None
    };
    let versions = format!(
        "{}{}",
        pg.as_ref()
            .map(|pg| pg
                .query("SHOW server_version")
                .map(|v| format!("PostgreSQL {v}; ")))
            .transpose()?
            .unwrap_or_default(),
        mysql
            .as_ref()
            .map(|m| m.query("SELECT VERSION()").map(|v| format!("MariaDB {v}")))
            .transpose()?
            .unwrap_or_default(),
    );
    let work_dir = env::temp_dir().join(format!("dts-directions-{}", std::process::id()));
    fs::create_dir_all(&work_dir)?;
    let verifications = args.verify.then(Verifications::new);
    if let Some(v) = &verifications {
        if v.pgcopydb.is_none() && args.directions.contains(&Direction::PgToPg) {
            skipped.push(
                "pgcopydb compare skipped: no pgcopydb with a `compare` command (0.11 or \
                 later) at DTS_BENCH_PGCOPYDB or on PATH; benches/README.md says how to build one"
                    .into(),
            );
        }
    }
    let bench = Bench {
        mysql: mysql.as_ref(),
        pg: pg.as_ref(),
        dts,
        work_dir: work_dir.clone(),
        timeout: args.timeout,
        dts_with: args.dts_with.clone(),
        verify: verifications.as_ref(),
    };

    if args.directions.iter().any(|d| d.source_is_pg()) {
        eprintln!("generating {} rows in PostgreSQL…", thousands(args.rows));
        data::create_pg_orders(bench.pg(), args.rows)?;
    }
    if args.directions.contains(&Direction::MySqlToMySql) {
        eprintln!("generating {} rows in MariaDB…", thousands(args.rows));
        data::create_mariadb_orders(bench.mysql(), args.rows)?;
    }

    let mut outcomes: HashMap<(Direction, Tool), Vec<Outcome>> = HashMap::new();
    let mut captures = Vec::new();
    let mut all_ok = true;
    for &direction in &args.directions {
        let expected = bench.source_fingerprint(direction)?;
        let measured: Vec<Tool> = direction
            .tools()
            .iter()
            .copied()
            .filter(|t| tools.contains(t))
            .collect();
        for rep in 0..args.repeat {
            for i in 0..measured.len() {
                let tool = measured[(i + rep) % measured.len()];
                let label = format!("{}-{}-{}", direction.name(), tool.name(), rep + 1);
                let outcome = bench.run(direction, tool, &expected, &label)?;
                eprintln!(
                    "[{}] {} run {}: {outcome:?}",
                    direction.name(),
                    tool.name(),
                    rep + 1
                );
                outcomes.entry((direction, tool)).or_default().push(outcome);
            }
        }
        if direction.source_is_pg() && args.capture_rows > 0 {
            eprintln!("[{}] capture…", direction.name());
            match capture::measure(&bench, direction, args.initial_rows, args.capture_rows) {
                Ok(measured) => captures.push((direction, Ok(measured))),
                Err(e) => {
                    all_ok = false;
                    captures.push((direction, Err(format!("{e:#}"))));
                }
            }
        }
    }

    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    println!(
        "\ndirections: {versions}; {cores} CPU core(s); {} run(s) per tool; `orders`: {} rows",
        args.repeat,
        thousands(args.rows)
    );
    if let Some(v) = &pgcopydb {
        println!("pgcopydb: {v}, default settings");
    }
    if !args.dts_with.is_empty() {
        println!("dts: NOT default settings: {}", args.dts_with.join("; "));
    }
    for why in &skipped {
        println!("{why}");
    }
    for &direction in &args.directions {
        println!("\n{} (pipe: {}):", direction.name(), direction.pipe());
        let mut table = Table::new([
            "tool",
            "result",
            "runs ok",
            "best s",
            "median s",
            "median rows/s",
            "peak MiB",
        ])
        .left_align(1);
        let mut medians = HashMap::new();
        for &tool in direction.tools().iter().filter(|t| tools.contains(t)) {
            let runs = outcomes
                .get(&(direction, tool))
                .map_or(&[][..], Vec::as_slice);
            let mut times: Vec<Duration> = Vec::new();
            let mut peak = 0;
            let mut problem = None;
            for (i, o) in runs.iter().enumerate() {
                match o {
                    Outcome::Done {
                        elapsed,
                        peak_memory,
                    } => {
                        times.push(*elapsed);
                        peak = peak.max(*peak_memory);
                    }
                    Outcome::Failed(why) => {
                        problem.get_or_insert_with(|| format!("run {}: {why}", i + 1));
                    }
                }
            }
            times.sort();
            let ok = problem.is_none() && !times.is_empty();
            all_ok &= ok;
            let median = report::median(&times);
            if ok {
                medians.insert(tool, (times[0], median.unwrap_or_default()));
            }
            let secs = |d: Option<Duration>| {
                d.filter(|_| ok)
                    .map_or_else(|| "-".into(), |d| format!("{:.2}", d.as_secs_f64()))
            };
            table.row([
                tool.name().to_owned(),
                if ok { "ok" } else { "FAILED" }.to_owned(),
                format!("{}/{}", times.len(), runs.len()),
                secs(times.first().copied()),
                secs(median),
                median
                    .filter(|_| ok)
                    .map_or_else(|| "-".into(), |d| per_second(args.rows, d)),
                if ok {
                    report::mebibytes(peak)
                } else {
                    "-".into()
                },
            ]);
            if let Some(problem) = problem {
                println!("  {} FAILED, {problem}", tool.name());
            }
        }
        print!("{table}");
        for &peer in direction.tools().iter().filter(|t| **t != Tool::Dts) {
            let ratio = match (medians.get(&Tool::Dts), medians.get(&peer)) {
                (Some((db, dm)), Some((pb, pm))) => format!(
                    "best {:.2}x, median {:.2}x",
                    pb.as_secs_f64() / db.as_secs_f64(),
                    pm.as_secs_f64() / dm.as_secs_f64()
                ),
                _ => "n/a (not both measured and ok)".into(),
            };
            println!("  dts rows/s ÷ {} rows/s: {ratio}", peer.name());
        }
    }
    if let Some(v) = &verifications {
        report_verifications(v);
    }
    for (direction, result) in &captures {
        println!(
            "\ncapture from PostgreSQL, {} ({} initial rows copied first):",
            direction.name(),
            thousands(args.initial_rows)
        );
        match result {
            Err(why) => println!("  FAILED: {why}"),
            Ok(measured) => {
                let mut table = Table::new([
                    "workload",
                    "transactions",
                    "rows changed",
                    "catch-up s",
                    "idle catch-up s",
                    "net rows/s",
                    "peak MiB",
                ])
                .left_align(0);
                for m in measured {
                    table.row([
                        m.workload.to_owned(),
                        thousands(m.transactions),
                        thousands(m.rows),
                        format!("{:.2}", m.elapsed.as_secs_f64()),
                        format!("{:.2}", m.idle.as_secs_f64()),
                        format!("{:.0}", m.net_rate()),
                        report::mebibytes(m.peak_memory),
                    ]);
                }
                print!("{table}");
            }
        }
    }
    println!(
        "\nWall times include creating the tables and building the keys and the index for \
         every tool; every run's target is compared with the source (row count, sums and \
         extremes of every column). Quote the ratios: the machine may be shared and noisy."
    );
    if all_ok && !args.keep_logs {
        let _ = fs::remove_dir_all(&work_dir);
    } else {
        println!("logs and task files: {}", work_dir.display());
    }
    Ok(all_ok)
}

/// The verification times against the full load's, per direction: medians over the runs.
fn report_verifications(verifications: &Verifications) {
    let runs = verifications.runs.borrow();
    println!("\nverification of each dts copy (`orders`), same run:");
    let mut table = Table::new([
        "direction",
        "tool",
        "runs ok",
        "median s",
        "median load s",
        "verify ÷ load",
    ])
    .left_align(0)
    .left_align(1);
    for direction in Direction::ALL {
        let mine: Vec<_> = runs.iter().filter(|r| r.direction == direction).collect();
        if mine.is_empty() {
            continue;
        }
        let mut loads: Vec<Duration> = mine.iter().map(|r| r.load).collect();
        loads.sort();
        let load = report::median(&loads).unwrap_or_default();
        let tools: [(&str, Vec<&Result<Duration, String>>); 2] = [
            ("dts verify", mine.iter().map(|r| &r.dts).collect()),
            (
                "pgcopydb compare data",
                mine.iter().filter_map(|r| r.pgcopydb.as_ref()).collect(),
            ),
        ];
        for (tool, results) in tools {
            if results.is_empty() {
                continue;
            }
            let mut times: Vec<Duration> = results
                .iter()
                .filter_map(|r| r.as_ref().ok().copied())
                .collect();
            times.sort();
            let median = report::median(&times);
            table.row([
                direction.name().to_owned(),
                tool.to_owned(),
                format!("{}/{}", times.len(), results.len()),
                median.map_or_else(|| "-".into(), |d| format!("{:.2}", d.as_secs_f64())),
                format!("{:.2}", load.as_secs_f64()),
                median.map_or_else(
                    || "-".into(),
                    |d| format!("{:.2}", d.as_secs_f64() / load.as_secs_f64()),
                ),
            ]);
            if let Some(Err(why)) = results.iter().find(|r| r.is_err()) {
                println!("  {tool} FAILED: {why}");
            }
        }
    }
    print!("{table}");
}

/// The first line of `PROGRAM --version`, or `None` if it is not on `PATH`.
fn version_of(program: &str) -> Option<String> {
    let output = Command::new(program).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    Some(text.lines().next().unwrap_or(program).trim().to_owned())
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
        assert_eq!(args.directions, Direction::ALL);
        assert_eq!(
            (args.rows, args.repeat, args.capture_rows),
            (1_000_000, 3, 100_000)
        );
        let args = parse(&[
            "--directions",
            "pg-to-mysql,pg-to-pg,pg-to-mysql",
            "--rows=2_000",
            "--only",
            "pipe",
            "--capture-rows",
            "0",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(args.directions, [Direction::PgToMySql, Direction::PgToPg]);
        assert_eq!((args.rows, args.capture_rows), (2000, 0));
        assert_eq!(args.tools, [Tool::Pipe]);
        assert!(parse(&["--help"]).unwrap().is_none());
        assert!(parse(&["--directions", "mysql-to-oracle"]).is_err());
        assert!(parse(&["--repeat", "0"]).is_err());
        assert!(parse(&["--rows"]).is_err());
    }
}
