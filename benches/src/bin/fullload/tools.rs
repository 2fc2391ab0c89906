//! The three ways of moving the benchmark database into PostgreSQL, each run as child
//! processes into its own target database, timed, sampled for memory and verified.

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use dts_benches::child::telling_line;
use dts_benches::clients::url_password;
use dts_benches::report::thousands;
use dts_benches::usage::{self, Usage};
use dts_testkit::{MariaDb, Postgres};

use crate::source::{Set, Table, BENCH_DB};

/// A tool under measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tool {
    /// The release `dts` binary with a `schema` + `full` task.
    Dts,
    /// Another `dts` binary (`--baseline PATH`, e.g. a build of an earlier commit) with the
    /// same task, to compare two versions in the same run.
    Baseline,
    /// `pgloader SOURCE TARGET` with default settings.
    Pgloader,
    /// Per table, `mariadb --quick -B -N … -e "SELECT …" | psql -c "COPY … FROM STDIN"`.
    Pipe,
}

impl Tool {
    /// The tools measured by default (`baseline` only when asked for).
    pub const ALL: [Self; 3] = [Self::Dts, Self::Pgloader, Self::Pipe];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "dts" => Some(Self::Dts),
            "baseline" => Some(Self::Baseline),
            "pgloader" => Some(Self::Pgloader),
            "pipe" => Some(Self::Pipe),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Dts => "dts",
            Self::Baseline => "baseline",
            Self::Pgloader => "pgloader",
            Self::Pipe => "pipe",
        }
    }

    /// The PostgreSQL database this tool loads into; dropped and recreated for every run.
    pub fn target_db(self) -> &'static str {
        match self {
            Self::Dts => "bench_dts",
            Self::Baseline => "bench_baseline",
            Self::Pgloader => "bench_pgloader",
            Self::Pipe => "bench_pipe",
        }
    }
}

/// How one run ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Every table arrived with the source's row count; with `--verify`, `dts verify` then
    /// found the target equal to the source in `verify`.
    Done {
        elapsed: Duration,
        peak_memory: u64,
        verify: Option<Duration>,
    },
    /// The tool failed (exit status, timeout, missing table): not timed.
    Failed(String),
    /// The tool finished but a table's row count differs from the source's: not timed.
    LostRows(String),
}

/// The servers and settings shared by all runs.
pub struct Bench<'a> {
    pub mysql: &'a MariaDb,
    pub pg: &'a Postgres,
    /// The `dts` binary, when dts is measured.
    pub dts: Option<PathBuf>,
    /// The other `dts` binary, when `baseline` is measured.
    pub baseline: Option<PathBuf>,
    /// Task files and the tools' output go here.
    pub work_dir: PathBuf,
    /// A run still going after this long is killed and reported as failed.
    pub timeout: Duration,
    /// Row count of each source table.
    pub source_rows: HashMap<Table, u64>,
    /// pgloader load options, each passed as `--with OPTION`; empty for default settings.
    pub pgloader_with: Vec<String>,
    /// After each dts load, time `dts verify` on the loaded target.
    pub verify: bool,
}

/// A tool's run before verification.
enum Ran {
    Finished { elapsed: Duration, peak_memory: u64 },
    Failed(String),
}

impl Bench<'_> {
    /// Runs `tool` on the tables of `set` (already in [`BENCH_DB`]) into a fresh target
    /// database, then verifies the row counts and drops the target. `label` names the
    /// run's log files.
    ///
    /// Errors are the harness's own (a server that does not answer); a tool's failure is an
    /// [`Outcome`].
    pub fn run(&self, tool: Tool, set: Set, label: &str) -> Result<Outcome> {
        let target = tool.target_db();
        self.pg.create_database(target)?;
        // Start every tool with no dirty pages left by the previous one.
        self.pg.exec("CHECKPOINT")?;
        let ran = match tool {
            Tool::Dts => self.run_dts(self.dts.as_deref(), target, label)?,
            Tool::Baseline => self.run_dts(self.baseline.as_deref(), target, label)?,
            Tool::Pgloader => self.run_pgloader(target, label)?,
            Tool::Pipe => self.run_pipe(set, target, label)?,
        };
        let outcome = match ran {
            Ran::Failed(why) => Outcome::Failed(why),
            Ran::Finished {
                elapsed,
                peak_memory,
            } => match self.verify(set, target) {
                Some(problem) => problem,
                None if tool == Tool::Dts && self.verify => {
                    match self.run_dts_verify(target, label)? {
                        Ran::Finished { elapsed: v, .. } => Outcome::Done {
                            elapsed,
                            peak_memory,
                            verify: Some(v),
                        },
                        Ran::Failed(why) => Outcome::Failed(format!("dts verify: {why}")),
                    }
                }
                None => Outcome::Done {
                    elapsed,
                    peak_memory,
                    verify: None,
                },
            },
        };
        self.pg.drop_database(target)?;
        Ok(outcome)
    }

    fn run_dts(&self, exe: Option<&Path>, target: &str, label: &str) -> Result<Ran> {
        let exe = exe.context("the dts binary was not located")?;
        let task = self.work_dir.join(format!("{label}.toml"));
        // The URLs (which may hold passwords) travel in the environment, not in the file.
        fs::write(
            &task,
            format!(
                "# Written by the fullload benchmark.\n\
                 migration = [\"schema\", \"full\"]\n\n\
                 [source]\nurl = \"${{DTS_FULLLOAD_SOURCE_URL}}\"\n\n\
                 [target]\nurl = \"${{DTS_FULLLOAD_TARGET_URL}}\"\n\n\
                 [objects]\ninclude = [\"{BENCH_DB}\"]\n"
            ),
        )
        .with_context(|| format!("writing {}", task.display()))?;
        let mut command = Command::new(exe);
        command
            .arg("run")
            .arg("--config")
            .arg(&task)
            .env("DTS_FULLLOAD_SOURCE_URL", self.mysql.url())
            .env("DTS_FULLLOAD_TARGET_URL", self.pg.url_for(target));
        self.run_one(command, label)
    }

    /// `dts verify` of the task `run_dts` ran as `label`: it must find the target equal to
    /// the source (exit status 0).
    fn run_dts_verify(&self, target: &str, label: &str) -> Result<Ran> {
        let exe = self
            .dts
            .as_deref()
            .context("the dts binary was not located")?;
        let mut command = Command::new(exe);
        command
            .arg("verify")
            .arg("--config")
            .arg(self.work_dir.join(format!("{label}.toml")))
            .arg("--json")
            .env("DTS_FULLLOAD_SOURCE_URL", self.mysql.url())
            .env("DTS_FULLLOAD_TARGET_URL", self.pg.url_for(target));
        self.run_one(command, &format!("{label}-verify"))
    }

    fn run_pgloader(&self, target: &str, label: &str) -> Result<Ran> {
        let mut command = Command::new("pgloader");
        for option in &self.pgloader_with {
            command.arg("--with").arg(option);
        }
        command
            .arg(self.mysql.url_for(BENCH_DB))
            .arg(pgloader_url(&self.pg.url_for(target)));
        self.run_one(command, label)
    }

    /// Runs one child with its output in `label.out` / `label.err`.
    fn run_one(&self, mut command: Command, label: &str) -> Result<Ran> {
        let (err, out) = self.log_files(label);
        command
            .stdin(Stdio::null())
            .stdout(File::create(&out)?)
            .stderr(File::create(&err)?);
        let started = Instant::now();
        let mut children = [command
            .spawn()
            .with_context(|| format!("starting {:?}", command.get_program()))?];
        let used = usage::wait(&mut children, Some(started + self.timeout))?;
        let elapsed = started.elapsed();
        if let Some(why) = self.failure(&used, &[(&err, &out)]) {
            return Ok(Ran::Failed(why));
        }
        Ok(Ran::Finished {
            elapsed,
            peak_memory: used.peak_memory,
        })
    }

    /// Plain DDL, then per table a `mariadb | psql COPY` pipe (all tables at once), then the
    /// primary keys and indexes (all tables at once), as a careful hand-made load would.
    fn run_pipe(&self, set: Set, target: &str, label: &str) -> Result<Ran> {
        let started = Instant::now();
        let tables = set.tables();
        let ddl: String = std::iter::once(format!("CREATE SCHEMA {BENCH_DB};"))
            .chain(tables.iter().map(|t| pipe_table_ddl(*t).to_owned()))
            .collect();
        if let Err(e) = self.pg.exec_in(target, &ddl) {
            return Ok(Ran::Failed(format!("creating the target tables: {e}")));
        }

        let mut children = Vec::new();
        let mut logs = Vec::new();
        for &table in tables {
            let (dump_out, dump_err) = self.log_files(&format!("{label}-{}-mariadb", table.name()));
            let (copy_out, copy_err) = self.log_files(&format!("{label}-{}-psql", table.name()));
            let mut dump = self.mariadb_command(pipe_select(table));
            dump.stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(File::create(&dump_err)?);
            let mut dump = dump.spawn().context("starting mariadb")?;
            let rows = dump.stdout.take().context("mariadb stdout")?;
            let mut copy = self.psql_command(
                target,
                &format!("COPY {BENCH_DB}.{} FROM STDIN", table.name()),
            );
            copy.stdin(rows)
                .stdout(File::create(&copy_out)?)
                .stderr(File::create(&copy_err)?);
            let copy = match copy.spawn() {
                Ok(copy) => copy,
                Err(e) => {
                    // Do not leave the dump running into a closed pipe.
                    let _ = dump.kill();
                    let _ = dump.wait();
                    return Err(e).context("starting psql");
                }
            };
            children.push(dump);
            children.push(copy);
            logs.push((dump_err, dump_out));
            logs.push((copy_err, copy_out));
        }
        let copied = usage::wait(&mut children, Some(started + self.timeout))?;
        if let Some(why) = self.failure(&copied, &refs(&logs)) {
            return Ok(Ran::Failed(why));
        }

        let mut children = Vec::new();
        let mut logs = Vec::new();
        for &table in tables {
            let (out, err) = self.log_files(&format!("{label}-{}-index", table.name()));
            let mut index = self.psql_command(target, pipe_table_indexes(table));
            index
                .stdin(Stdio::null())
                .stdout(File::create(&out)?)
                .stderr(File::create(&err)?);
            children.push(spawn(index)?);
            logs.push((err, out));
        }
        let indexed = usage::wait(&mut children, Some(started + self.timeout))?;
        if let Some(why) = self.failure(&indexed, &refs(&logs)) {
            return Ok(Ran::Failed(why));
        }
        Ok(Ran::Finished {
            elapsed: started.elapsed(),
            peak_memory: copied.peak_memory.max(indexed.peak_memory),
        })
    }

    fn mariadb_command(&self, sql: &str) -> Command {
        let mut command = Command::new("mariadb");
        command
            .args([
                "--no-defaults",
                "--quick",
                "--batch",
                "--skip-column-names",
                "--protocol=TCP",
                "--default-character-set=utf8mb4",
            ])
            .arg(format!("--host={}", self.mysql.host()))
            .arg(format!("--port={}", self.mysql.port()))
            .arg(format!("--user={}", self.mysql.user()))
            .arg(BENCH_DB)
            .arg("-e")
            .arg(sql);
        match url_password(&self.mysql.url()) {
            Some(password) => command.env("MYSQL_PWD", password),
            None => command.env_remove("MYSQL_PWD"),
        };
        command
    }

    fn psql_command(&self, database: &str, sql: &str) -> Command {
        let mut command = Command::new("psql");
        command
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
            .arg("-h")
            .arg(self.pg.host())
            .arg("-p")
            .arg(self.pg.port().to_string())
            .arg("-U")
            .arg(self.pg.user())
            .arg("-d")
            .arg(database)
            .arg("-c")
            .arg(sql)
            // The dump's TIMESTAMPs are in UTC (`SET time_zone` in the SELECT).
            .env("PGTZ", "UTC");
        match url_password(&self.pg.url()) {
            Some(password) => command.env("PGPASSWORD", password),
            None => command.env_remove("PGPASSWORD"),
        };
        command
    }

    /// Why a group of children failed, if it did, with the last line of the first failing
    /// child's error output (else its standard output).
    fn failure(&self, used: &Usage, logs: &[(&Path, &Path)]) -> Option<String> {
        if used.timed_out {
            return Some(format!(
                "timed out after {} s (--timeout)",
                self.timeout.as_secs()
            ));
        }
        let (status, (err, out)) = used
            .statuses
            .iter()
            .zip(logs)
            .find(|(status, _)| !status.success())?;
        let detail = telling_line(err)
            .or_else(|| telling_line(out))
            .unwrap_or_default();
        Some(format!(
            "{}: {detail} (log: {})",
            describe(*status),
            err.display()
        ))
    }

    /// `None` if every table of `set` in `target` has the source's row count.
    fn verify(&self, set: Set, target: &str) -> Option<Outcome> {
        let mut lost = Vec::new();
        for &table in set.tables() {
            let expected = self.source_rows.get(&table).copied().unwrap_or_default();
            let sql = format!("SELECT count(*) FROM {BENCH_DB}.{}", table.name());
            let counted = self.pg.query_in(target, &sql);
            match counted.as_deref().map(str::parse::<u64>) {
                Ok(Ok(rows)) if rows == expected => {}
                Ok(Ok(rows)) => lost.push(format!(
                    "{}: {} of {} rows",
                    table.name(),
                    thousands(rows),
                    thousands(expected)
                )),
                _ => {
                    return Some(Outcome::Failed(format!(
                        "table `{BENCH_DB}.{}` missing or unreadable in the target",
                        table.name()
                    )))
                }
            }
        }
        (!lost.is_empty()).then(|| Outcome::LostRows(lost.join(", ")))
    }

    fn log_files(&self, label: &str) -> (PathBuf, PathBuf) {
        (
            self.work_dir.join(format!("{label}.err")),
            self.work_dir.join(format!("{label}.out")),
        )
    }
}

fn spawn(mut command: Command) -> Result<Child> {
    command
        .spawn()
        .with_context(|| format!("starting {:?}", command.get_program()))
}

fn refs(logs: &[(PathBuf, PathBuf)]) -> Vec<(&Path, &Path)> {
    logs.iter()
        .map(|(err, out)| (err.as_path(), out.as_path()))
        .collect()
}

fn describe(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exit status {code}"),
        None => format!("{status}"),
    }
}

/// pgloader names the PostgreSQL scheme `postgresql://` (or `pgsql://`).
fn pgloader_url(url: &str) -> String {
    match url.strip_prefix("postgres://") {
        Some(rest) => format!("postgresql://{rest}"),
        None => url.to_owned(),
    }
}

/// The pipe's target table, without keys (they are added after the load).
fn pipe_table_ddl(table: Table) -> &'static str {
    match table {
        Table::Orders => {
            "CREATE TABLE benchdb.orders (id bigint NOT NULL, customer_id integer NOT NULL, \
             status varchar(16) NOT NULL, amount numeric(12,2) NOT NULL, \
             created_at timestamp NOT NULL, note varchar(64) NOT NULL);"
        }
        Table::Wide => {
            "CREATE TABLE benchdb.wide (id integer NOT NULL, body text NOT NULL, \
             payload bytea NOT NULL, doc jsonb NOT NULL, price numeric(20,6) NOT NULL, \
             happened_at timestamp(6) NOT NULL, updated_at timestamptz NOT NULL, \
             label varchar(255) NOT NULL);"
        }
    }
}

fn pipe_table_indexes(table: Table) -> &'static str {
    match table {
        Table::Orders => {
            "ALTER TABLE benchdb.orders ADD PRIMARY KEY (id); \
             CREATE INDEX orders_customer_id ON benchdb.orders (customer_id);"
        }
        Table::Wide => "ALTER TABLE benchdb.wide ADD PRIMARY KEY (id);",
    }
}

/// The pipe's dump query. `mariadb --batch` escapes tab, newline, backslash and NUL as `\t`,
/// `\n`, `\\`, `\0`, which COPY's text format reads back, except `\0`: so the BLOB is sent as
/// the bytea hex form `\x…` (its backslash doubled by the client, undoubled by COPY). The
/// generated columns are all `NOT NULL`, so no `NULL` ↔ `\N` conversion is needed.
fn pipe_select(table: Table) -> &'static str {
    match table {
        Table::Orders => "SELECT id, customer_id, status, amount, created_at, note FROM orders",
        Table::Wide => {
            r"SET time_zone = '+00:00';
              SELECT id, body, CONCAT('\\x', HEX(payload)), doc, price, happened_at,
                     updated_at, label FROM wide"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_telling_line_of_a_log() {
        let dir = std::env::temp_dir().join(format!("fullload-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let log = dir.join("pgloader.err");
        fs::write(
            &log,
            "Heap exhausted during garbage collection: 3264 bytes available\n  Gen 1 2\n\n\
             fatal error encountered in SBCL\nError opening /dev/tty: No such device\n",
        )
        .unwrap();
        assert_eq!(
            telling_line(&log).unwrap(),
            "Heap exhausted during garbage collection: 3264 bytes available"
        );
        fs::write(&log, "starting\ncopied 3 rows\n\n").unwrap();
        assert_eq!(telling_line(&log).unwrap(), "copied 3 rows");
        fs::write(&log, "").unwrap();
        assert_eq!(telling_line(&log), None);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn names_the_postgresql_scheme_for_pgloader() {
        assert_eq!(
            pgloader_url("postgres://postgres@127.0.0.1:5/bench_pgloader"),
            "postgresql://postgres@127.0.0.1:5/bench_pgloader"
        );
    }
}
