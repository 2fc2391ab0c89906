//! The directions, the tools measured in each, and one timed run of a tool into a fresh
//! target, verified against the source's fingerprint.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use dts_benches::child::telling_line;
use dts_benches::clients;
use dts_benches::usage::{self, Usage};
use dts_testkit::{MariaDb, Postgres};

use crate::data::{self, PG_SOURCE_DB, SCHEMA};
use crate::verify::{self, Verifications};

/// A source → target pair of engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    PgToPg,
    PgToMySql,
    MySqlToMySql,
}

impl Direction {
    pub const ALL: [Self; 3] = [Self::PgToPg, Self::PgToMySql, Self::MySqlToMySql];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::PgToPg => "pg-to-pg",
            Self::PgToMySql => "pg-to-mysql",
            Self::MySqlToMySql => "mysql-to-mysql",
        }
    }

    /// The tools measured in this direction: dts and its peers.
    pub fn tools(self) -> &'static [Tool] {
        match self {
            Self::PgToPg => &[Tool::Dts, Tool::Pgcopydb, Tool::Pipe],
            Self::PgToMySql | Self::MySqlToMySql => &[Tool::Dts, Tool::Pipe],
        }
    }

    pub fn source_is_pg(self) -> bool {
        matches!(self, Self::PgToPg | Self::PgToMySql)
    }

    pub fn target_is_pg(self) -> bool {
        matches!(self, Self::PgToPg)
    }

    /// What the raw pipe runs, for the report.
    pub fn pipe(self) -> &'static str {
        match self {
            Self::PgToPg => "psql COPY TO STDOUT | psql COPY FROM STDIN",
            Self::PgToMySql => "psql COPY TO STDOUT | mariadb LOAD DATA LOCAL INFILE",
            Self::MySqlToMySql => "mariadb --quick -B SELECT | mariadb LOAD DATA LOCAL INFILE",
        }
    }
}

/// A tool under measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tool {
    /// The release `dts` binary with a `schema` + `full` task.
    Dts,
    /// `pgcopydb clone` with default settings (PostgreSQL → PostgreSQL only).
    Pgcopydb,
    /// The engines' command-line clients piped into each other, keys and index after.
    Pipe,
}

impl Tool {
    pub const ALL: [Self; 3] = [Self::Dts, Self::Pgcopydb, Self::Pipe];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Dts => "dts",
            Self::Pgcopydb => "pgcopydb",
            Self::Pipe => "pipe",
        }
    }

    /// The target database of this tool's runs; dropped and recreated for every run.
    pub fn target_db(self) -> &'static str {
        match self {
            Self::Dts => "bench_dts",
            Self::Pgcopydb => "bench_pgcopydb",
            Self::Pipe => "bench_pipe",
        }
    }
}

/// How one run ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The target's fingerprint equals the source's.
    Done { elapsed: Duration, peak_memory: u64 },
    /// The tool failed, timed out, or the target differs from the source: not timed.
    Failed(String),
}

/// The servers and settings shared by all runs.
pub struct Bench<'a> {
    pub mysql: Option<&'a MariaDb>,
    pub pg: Option<&'a Postgres>,
    pub dts: Option<PathBuf>,
    pub work_dir: PathBuf,
    pub timeout: Duration,
    /// Lines added to dts's task files.
    pub dts_with: Vec<String>,
    /// With `--verify`: each dts run's target is verified, and the times kept here.
    pub verify: Option<&'a Verifications>,
}

impl Bench<'_> {
    pub fn pg(&self) -> &Postgres {
        self.pg.expect("a PostgreSQL server for this direction")
    }

    pub fn mysql(&self) -> &MariaDb {
        self.mysql.expect("a MariaDB server for this direction")
    }

    /// The source's fingerprint of `orders`.
    pub fn source_fingerprint(&self, direction: Direction) -> Result<String> {
        if direction.source_is_pg() {
            data::pg_orders_fingerprint(self.pg(), PG_SOURCE_DB, "benchdb.orders")
        } else {
            data::mariadb_orders_fingerprint(self.mysql(), SCHEMA, "orders")
        }
    }

    /// Runs `tool` in `direction` into a fresh target database, compares the target's
    /// fingerprint with `expected`, and drops the target. `label` names the logs.
    pub fn run(
        &self,
        direction: Direction,
        tool: Tool,
        expected: &str,
        label: &str,
    ) -> Result<Outcome> {
        let target = tool.target_db();
        self.fresh_target(direction, target)?;
        let ran = match tool {
            Tool::Dts => self.run_dts(direction, target, label)?,
            Tool::Pgcopydb => self.run_pgcopydb(target, label)?,
            Tool::Pipe => self.run_pipe(direction, target, label)?,
        };
        let outcome = match ran {
            Err(why) => Outcome::Failed(why),
            Ok((elapsed, peak_memory)) => {
                let found = if direction.target_is_pg() {
                    data::pg_orders_fingerprint(self.pg(), target, "benchdb.orders")
                } else {
                    data::mariadb_orders_fingerprint(self.mysql(), target, "orders")
                };
                match found {
                    Ok(found) if found == expected => {
                        if let (Tool::Dts, Some(verifications)) = (tool, self.verify) {
                            verify::measure(
                                self,
                                verifications,
                                direction,
                                target,
                                label,
                                elapsed,
                            )?;
                        }
                        Outcome::Done {
                            elapsed,
                            peak_memory,
                        }
                    }
                    Ok(found) => Outcome::Failed(format!(
                        "the target differs from the source: {found} instead of {expected} \
                         (count|sum(id)|sum(customer_id)|sum(amount)|…)"
                    )),
                    Err(e) => Outcome::Failed(format!("reading the target: {e:#}")),
                }
            }
        };
        self.drop_target(direction, target)?;
        Ok(outcome)
    }

    fn fresh_target(&self, direction: Direction, target: &str) -> Result<()> {
        if direction.target_is_pg() {
            self.pg().create_database(target)?;
            self.pg().exec("CHECKPOINT")?;
        } else {
            let mysql = self.mysql();
            mysql.drop_database(target)?;
            // Each dts run is a new task: the state of the last one goes with its target.
            mysql.drop_database("dts_meta")?;
            mysql.exec("FLUSH TABLES")?;
        }
        Ok(())
    }

    fn drop_target(&self, direction: Direction, target: &str) -> Result<()> {
        if direction.target_is_pg() {
            self.pg().drop_database(target)?;
        } else {
            self.mysql().drop_database(target)?;
            self.mysql().drop_database("dts_meta")?;
        }
        Ok(())
    }

    pub fn source_url(&self, direction: Direction) -> String {
        if direction.source_is_pg() {
            self.pg().url_for(PG_SOURCE_DB)
        } else {
            self.mysql().url()
        }
    }

    pub fn target_url(&self, direction: Direction, target: &str) -> String {
        if direction.target_is_pg() {
            self.pg().url_for(target)
        } else {
            self.mysql().url()
        }
    }

    fn log_files(&self, label: &str) -> (PathBuf, PathBuf) {
        (
            self.work_dir.join(format!("{label}.out")),
            self.work_dir.join(format!("{label}.err")),
        )
    }

    /// `dts run` of a `schema` + `full` task; into a MySQL target, the database is renamed
    /// to the tool's target database.
    fn run_dts(
        &self,
        direction: Direction,
        target: &str,
        label: &str,
    ) -> Result<Result<(Duration, u64), String>> {
        let exe = self.dts.as_ref().context("the dts binary")?;
        let rename = if direction.target_is_pg() {
            String::new()
        } else {
            format!("objects.rename_databases = {{ \"{SCHEMA}\" = \"{target}\" }}\n")
        };
        let task = self.work_dir.join(format!("{label}.toml"));
        std::fs::write(
            &task,
            format!(
                "name = \"bench_{}\"\nmigration = [\"schema\", \"full\"]\n\
                 source.url = \"${{DTS_BENCH_SOURCE}}\"\ntarget.url = \"${{DTS_BENCH_TARGET}}\"\n\
                 objects.include = [\"{SCHEMA}\"]\n{rename}{}\n",
                label.replace('-', "_"),
                self.dts_with.join("\n")
            ),
        )?;
        let mut command = Command::new(exe);
        command
            .arg("run")
            .arg("--config")
            .arg(&task)
            .env("DTS_BENCH_SOURCE", self.source_url(direction))
            .env("DTS_BENCH_TARGET", self.target_url(direction, target));
        self.timed(vec![command], label)
    }

    /// `pgcopydb clone` with its default settings, its work directory under the bench's.
    fn run_pgcopydb(&self, target: &str, label: &str) -> Result<Result<(Duration, u64), String>> {
        let dir = self.work_dir.join(format!("{label}-pgcopydb"));
        let mut command = Command::new("pgcopydb");
        command
            .arg("clone")
            .arg("--source")
            .arg(self.pg().url_for(PG_SOURCE_DB))
            .arg("--target")
            .arg(self.pg().url_for(target))
            .arg("--dir")
            .arg(&dir);
        self.timed(vec![command], label)
    }

    /// The target table without the secondary index (with the primary key in MariaDB,
    /// whose tables are stored in key order), the clients piped into each other, then the
    /// keys and the index.
    fn run_pipe(
        &self,
        direction: Direction,
        target: &str,
        label: &str,
    ) -> Result<Result<(Duration, u64), String>> {
        let started = Instant::now();
        let (create, copy_in, index) = if direction.target_is_pg() {
            let pg = self.pg();
            (
                clients::psql(
                    pg,
                    target,
                    "CREATE SCHEMA benchdb; CREATE TABLE benchdb.orders (id bigint NOT NULL, \
                     customer_id integer NOT NULL, status varchar(16) NOT NULL, \
                     amount numeric(12,2) NOT NULL, created_at timestamp NOT NULL, \
                     note varchar(64) NOT NULL)",
                ),
                clients::psql(pg, target, "COPY benchdb.orders FROM STDIN"),
                clients::psql(
                    pg,
                    target,
                    "ALTER TABLE benchdb.orders ADD PRIMARY KEY (id); \
                     CREATE INDEX orders_customer ON benchdb.orders (customer_id)",
                ),
            )
        } else {
            let mysql = self.mysql();
            mysql.create_database(target)?;
            (
                clients::mariadb(
                    mysql,
                    target,
                    "CREATE TABLE orders (id BIGINT NOT NULL PRIMARY KEY, \
                     customer_id INT NOT NULL, status VARCHAR(16) NOT NULL, \
                     amount DECIMAL(12,2) NOT NULL, created_at DATETIME(6) NOT NULL, \
                     note VARCHAR(64) NOT NULL) ENGINE=InnoDB",
                ),
                clients::mariadb(
                    mysql,
                    target,
                    "SET SESSION foreign_key_checks = 0, unique_checks = 0; \
                     LOAD DATA LOCAL INFILE '/dev/stdin' INTO TABLE orders \
                     CHARACTER SET utf8mb4",
                ),
                clients::mariadb(
                    mysql,
                    target,
                    "CREATE INDEX orders_customer ON orders (customer_id)",
                ),
            )
        };
        let copy_out = if direction.source_is_pg() {
            clients::psql(self.pg(), PG_SOURCE_DB, "COPY benchdb.orders TO STDOUT")
        } else {
            clients::mariadb(self.mysql(), SCHEMA, "SELECT * FROM orders")
        };
        let mut peak = 0;
        for (step, commands) in [
            ("create", vec![create]),
            ("copy", vec![copy_out, copy_in]),
            ("index", vec![index]),
        ] {
            match self.spawn_all(commands, &format!("{label}-{step}"), started)? {
                Ok(used) => peak = peak.max(used),
                Err(why) => return Ok(Err(format!("{step}: {why}"))),
            }
        }
        Ok(Ok((started.elapsed(), peak)))
    }

    /// Runs `commands` (a pipe when two: the first's output is the second's input) and
    /// times them from now.
    pub fn timed(
        &self,
        commands: Vec<Command>,
        label: &str,
    ) -> Result<Result<(Duration, u64), String>> {
        let started = Instant::now();
        Ok(self
            .spawn_all(commands, label, started)?
            .map(|peak| (started.elapsed(), peak)))
    }

    /// Runs one command, or two piped into each other, to their end; the peak memory of
    /// all, or why they failed.
    fn spawn_all(
        &self,
        commands: Vec<Command>,
        label: &str,
        started: Instant,
    ) -> Result<Result<u64, String>> {
        let mut children: Vec<Child> = Vec::new();
        let mut logs = Vec::new();
        let mut upstream = None;
        let count = commands.len();
        for (i, mut command) in commands.into_iter().enumerate() {
            let (out, err) = self.log_files(&format!("{label}-{i}"));
            command.stderr(File::create(&err)?);
            match upstream.take() {
                Some(input) => command.stdin(input),
                None => command.stdin(Stdio::null()),
            };
            if i + 1 < count {
                command.stdout(Stdio::piped());
            } else {
                command.stdout(File::create(&out)?);
            }
            let mut child = match command.spawn() {
                Ok(child) => child,
                Err(e) => {
                    for mut c in children {
                        let _ = c.kill();
                        let _ = c.wait();
                    }
                    return Err(e).with_context(|| format!("starting {command:?}"));
                }
            };
            upstream = child.stdout.take();
            children.push(child);
            logs.push((err, out));
        }
        let used = usage::wait(&mut children, Some(started + self.timeout))?;
        Ok(match failure(&used, &logs, self.timeout) {
            Some(why) => Err(why),
            None => Ok(used.peak_memory),
        })
    }
}

/// Why a group of children failed, if it did: the first failing child's status and the
/// telling line of its error output (else its standard output).
fn failure(used: &Usage, logs: &[(PathBuf, PathBuf)], timeout: Duration) -> Option<String> {
    if used.timed_out {
        return Some(format!("timed out after {} s", timeout.as_secs()));
    }
    let (status, (err, out)) = used
        .statuses
        .iter()
        .zip(logs)
        .find(|(status, _)| !status.success())?;
    let line = telling_line(err)
        .or_else(|| telling_line(out))
        .unwrap_or_default();
    Some(format!("{status}: {line} (log {})", path_text(err)))
}

fn path_text(path: &Path) -> String {
    path.display().to_string()
}
