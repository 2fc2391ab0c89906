//! SQLite → PostgreSQL full load: dts against pgloader on the same SQLite file in the same
//! run.
//!
//! Prerequisites: Linux; the `sqlite3` command line tool, the PostgreSQL server and client
//! (`apt-get install -y sqlite3 postgresql`; no server needs to run, a private one is
//! started); `pgloader` on `PATH` (`apt-get install -y pgloader`; skipped with a message if
//! absent); the release `dts` binary next to this one:
//!
//! ```text
//! cargo build --release -p dts-benches --bin sqlite --bin dts
//! target/release/sqlite --repeat 3
//! ```
//!
//! Set `DTS_BENCH_PG_URL` (e.g. `postgres://postgres@127.0.0.1:5432/postgres`) to use an
//! existing server instead; the benchmark then drops and recreates the databases
//! `bench_sqlite_dts` and `bench_sqlite_pgloader` on it.
//!
//! `--help` lists the options; `benches/README.md` explains the table.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use dts_benches::report::{self, mebibytes, per_second, thousands, Table};
use dts_benches::usage;
use dts_testkit::Postgres;

const USAGE: &str = "\
usage: sqlite [--rows N] [--only dts,pgloader] [--repeat K] [--timeout SECS]

  --rows N        rows of `orders` (6 columns, integer primary key, one index); default 1000000
  --only LIST     tools to measure; default dts,pgloader
  --repeat K      runs per tool (the order rotates); the best and the median are reported;
                  default 1
  --timeout SECS  a run still going after this long is killed and reported failed; default 900

environment: DTS_BENCH_PG_URL names an existing PostgreSQL server to use instead of a
private one started from the installed binaries.";

const PG_URL_VAR: &str = "DTS_BENCH_PG_URL";

/// The table, its index and its rows: every value a function of the row number, none NULL.
const SCHEMA: &str = "\
CREATE TABLE orders (
  id INTEGER PRIMARY KEY,
  customer_id INTEGER NOT NULL,
  status VARCHAR(16) NOT NULL,
  amount DECIMAL(12,2) NOT NULL,
  created_at DATETIME NOT NULL,
  note VARCHAR(64) NOT NULL
);
CREATE INDEX orders_customer_id ON orders (customer_id);";

#[derive(Debug)]
struct Args {
    rows: u64,
    tools: Vec<Tool>,
    repeat: usize,
    timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Dts,
    Pgloader,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Self::Dts => "dts",
            Self::Pgloader => "pgloader",
        }
    }

    fn target_db(self) -> &'static str {
        match self {
            Self::Dts => "bench_sqlite_dts",
            Self::Pgloader => "bench_sqlite_pgloader",
        }
    }
}

impl Args {
    fn parse(mut words: impl Iterator<Item = String>) -> Result<Option<Self>> {
        let mut args = Self {
            rows: 1_000_000,
            tools: vec![Tool::Dts, Tool::Pgloader],
            repeat: 1,
            timeout: Duration::from_secs(900),
        };
        while let Some(flag) = words.next() {
            if flag == "--help" || flag == "-h" {
                return Ok(None);
            }
            let Some(value) = words.next() else {
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
                "--repeat" => args.repeat = usize::try_from(number()?.max(1))?,
                "--timeout" => args.timeout = Duration::from_secs(number()?),
                "--only" => {
                    args.tools = value
                        .split(',')
                        .map(|t| match t.trim() {
                            "dts" => Ok(Tool::Dts),
                            "pgloader" => Ok(Tool::Pgloader),
                            other => bail!("unknown tool `{other}`"),
                        })
                        .collect::<Result<_>>()?;
                }
                _ => bail!("unknown option `{flag}`"),
            }
        }
        Ok(Some(args))
    }
}

fn main() -> ExitCode {
    dts_benches::cli::main("sqlite", USAGE, Args::parse, run)
}

/// Builds the SQLite file with the `sqlite3` tool: the rows come from a recursive CTE.
fn build_file(path: &Path, rows: u64) -> Result<()> {
    let _ = fs::remove_file(path);
    let sql = format!(
        "{SCHEMA}
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
INSERT INTO orders
SELECT i, i % 50000,
       CASE i % 4 WHEN 0 THEN 'new' WHEN 1 THEN 'paid' WHEN 2 THEN 'shipped' ELSE 'done' END,
       (i % 100000) / 100.0,
       datetime(1700000000 + i * 7, 'unixepoch'),
       'order note ' || i
FROM n;
COMMIT;
ANALYZE;"
    );
    let mut child = Command::new("sqlite3")
        .arg(path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting sqlite3 (apt-get install -y sqlite3)")?;
    child
        .stdin
        .take()
        .context("sqlite3 stdin")?
        .write_all(sql.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("sqlite3: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn run(args: &Args) -> Result<bool> {
    let pg = match std::env::var(PG_URL_VAR) {
        Ok(url) if !url.is_empty() => Postgres::external(&url)
            .with_context(|| format!("{PG_URL_VAR} names no usable server"))?,
        _ => Postgres::start_owned().context("starting a private PostgreSQL server")?,
    };
    let work_dir = std::env::temp_dir().join(format!("dts-bench-sqlite-{}", std::process::id()));
    fs::create_dir_all(&work_dir)?;
    let file = work_dir.join("orders.db");
    let started = Instant::now();
    build_file(&file, args.rows)?;
    println!(
        "SQLite file {} ({} rows, {} MiB) built in {:.1} s",
        file.display(),
        thousands(args.rows),
        mebibytes(fs::metadata(&file)?.len()),
        started.elapsed().as_secs_f64()
    );

    let dts = dts_benches::child::sibling("dts").context("locating this executable")?;
    let mut tools = args.tools.clone();
    if tools.contains(&Tool::Dts) && !dts.is_file() {
        bail!(
            "{} is missing: build it with `cargo build --release -p dts-benches --bin sqlite --bin dts`",
            dts.display()
        );
    }
    if tools.contains(&Tool::Pgloader)
        && Command::new("pgloader").arg("--version").output().is_err()
    {
        println!("pgloader is not installed (apt-get install -y pgloader): measuring dts only");
        tools.retain(|t| *t != Tool::Pgloader);
    }

    let mut times: Vec<(Tool, Vec<Duration>, u64, Vec<String>)> = tools
        .iter()
        .map(|t| (*t, Vec::new(), 0, Vec::new()))
        .collect();
    for round in 0..args.repeat {
        // Rotate the order so neither tool always runs on a warmer cache.
        let n = times.len();
        for k in 0..n {
            let i = (k + round) % n;
            let tool = times[i].0;
            let label = format!("{}-{round}", tool.name());
            match run_tool(&pg, tool, &dts, &file, &work_dir, &label, args) {
                Ok((elapsed, peak)) => {
                    times[i].1.push(elapsed);
                    times[i].2 = times[i].2.max(peak);
                }
                Err(e) => times[i].3.push(format!("{e:#}")),
            }
        }
    }

    let mut table = Table::new([
        "tool",
        "runs",
        "best s",
        "median s",
        "rows/s (median)",
        "peak MiB",
    ])
    .left_align(0);
    let mut medians = Vec::new();
    let mut ok = true;
    for (tool, durations, peak, failures) in &mut times {
        durations.sort();
        let median = report::median(durations);
        if !failures.is_empty() {
            ok = false;
            for f in failures.iter() {
                println!("{} FAILED: {f}", tool.name());
            }
        }
        medians.push((*tool, median));
        table.row([
            tool.name().to_owned(),
            format!("{}/{}", durations.len(), args.repeat),
            durations
                .first()
                .map_or("-".into(), |d| format!("{:.2}", d.as_secs_f64())),
            median.map_or("-".into(), |d| format!("{:.2}", d.as_secs_f64())),
            median.map_or("-".into(), |d| per_second(args.rows, d)),
            mebibytes(*peak),
        ]);
    }
    print!("{table}");
    let median_of = |t: Tool| medians.iter().find(|(x, _)| *x == t).and_then(|(_, m)| *m);
    if let (Some(d), Some(p)) = (median_of(Tool::Dts), median_of(Tool::Pgloader)) {
        println!(
            "dts is {:.2}x pgloader (median wall time, {} rows, goal >= 3x)",
            p.as_secs_f64() / d.as_secs_f64(),
            thousands(args.rows)
        );
    }
    println!("logs: {}", work_dir.display());
    Ok(ok)
}

/// One load into a fresh target database, checked by its row count.
fn run_tool(
    pg: &Postgres,
    tool: Tool,
    dts: &Path,
    file: &Path,
    work_dir: &Path,
    label: &str,
    args: &Args,
) -> Result<(Duration, u64)> {
    let target = tool.target_db();
    pg.create_database(target)?;
    pg.exec("CHECKPOINT")?;
    let url = pg.url_for(target);
    let mut command = match tool {
        Tool::Dts => {
            let task = work_dir.join(format!("{label}.toml"));
            fs::write(
                &task,
                format!(
                    "# Written by the sqlite benchmark.\nname = \"bench\"\n\
                     migration = [\"schema\", \"full\"]\n\n\
                     [source]\nurl = \"sqlite://{}\"\n\n\
                     [target]\nurl = \"${{DTS_SQLITE_TARGET_URL}}\"\n\n\
                     [objects]\ninclude = [\"main\"]\n",
                    file.display()
                ),
            )?;
            let mut c = Command::new(dts);
            c.arg("run")
                .arg("--config")
                .arg(&task)
                .env("DTS_SQLITE_TARGET_URL", &url);
            c
        }
        Tool::Pgloader => {
            let mut c = Command::new("pgloader");
            let url = match url.strip_prefix("postgres://") {
                Some(rest) => format!("postgresql://{rest}"),
                None => url.clone(),
            };
            c.arg(file).arg(url);
            c
        }
    };
    let out: PathBuf = work_dir.join(format!("{label}.out"));
    let err: PathBuf = work_dir.join(format!("{label}.err"));
    command
        .stdin(Stdio::null())
        .stdout(File::create(&out)?)
        .stderr(File::create(&err)?);
    let started = Instant::now();
    let mut children = [command
        .spawn()
        .with_context(|| format!("starting {}", tool.name()))?];
    let used = usage::wait(&mut children, Some(started + args.timeout))?;
    let elapsed = started.elapsed();
    if used.timed_out {
        bail!(
            "timed out after {} s (logs {})",
            args.timeout.as_secs(),
            out.display()
        );
    }
    if !used.statuses.iter().all(|s| s.success()) {
        bail!(
            "exit status {:?}: {}",
            used.statuses,
            dts_benches::child::telling_line(&err).unwrap_or_default()
        );
    }
    // dts loads into `main`, pgloader into `public`.
    let schema = pg.query_in(
        target,
        "SELECT table_schema FROM information_schema.tables WHERE table_name = 'orders' LIMIT 1",
    )?;
    if schema.trim().is_empty() {
        bail!("no `orders` table in the target");
    }
    let rows = pg.query_in(
        target,
        &format!("SELECT count(*) FROM \"{}\".orders", schema.trim()),
    )?;
    if rows.trim() != args.rows.to_string() {
        bail!("{} rows arrived of {}", rows.trim(), args.rows);
    }
    pg.drop_database(target)?;
    Ok((elapsed, used.peak_memory))
}
