//! The dts task the benchmark runs, and its runs as child processes: to catch up (timed), or
//! continuously until stopped with `SIGTERM`.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use dts_benches::child::{self, telling_line};
use dts_benches::usage;

use crate::source::DB;

/// The task's name (it keys the task's state in the target).
const TASK_NAME: &str = "cdcbench";

/// Environment variables the task file reads the URLs from, so that no password is written
/// to disk.
const SOURCE_URL_VAR: &str = "DTS_CDC_SOURCE_URL";
const TARGET_URL_VAR: &str = "DTS_CDC_TARGET_URL";

/// `[incremental]` settings given on the command line; `None` keeps dts's default.
#[derive(Debug, Clone, Copy, Default)]
pub struct Incremental {
    pub max_batch_rows: Option<u64>,
    pub max_batch_delay_ms: Option<u64>,
    /// `verify_sample`: the share of applied rows compared during replication.
    pub verify_sample: Option<f64>,
    /// `verify_max_rows_per_second`.
    pub verify_max_rows_per_second: Option<u64>,
}

/// The task file for `migration = ["schema", "full", "incremental"]` of database [`DB`].
pub fn task_file(incremental: Incremental) -> String {
    let mut text = format!(
        "# Written by the cdc benchmark.\n\
         name = \"{TASK_NAME}\"\n\
         migration = [\"schema\", \"full\", \"incremental\"]\n\n\
         [source]\nurl = \"${{{SOURCE_URL_VAR}}}\"\n\n\
         [target]\nurl = \"${{{TARGET_URL_VAR}}}\"\n\n\
         [objects]\ninclude = [\"{DB}\"]\n"
    );
    let mut keys: Vec<String> = [
        ("max_batch_rows", incremental.max_batch_rows),
        ("max_batch_delay_ms", incremental.max_batch_delay_ms),
        (
            "verify_max_rows_per_second",
            incremental.verify_max_rows_per_second,
        ),
    ]
    .into_iter()
    .filter_map(|(key, value)| value.map(|v| format!("{key} = {v}\n")))
    .collect();
    if let Some(share) = incremental.verify_sample {
        keys.push(format!("verify_sample = {share:?}\n"));
    }
    if !keys.is_empty() {
        text.push_str("\n[incremental]\n");
        text.extend(keys);
    }
    text
}

/// The `dts` binary with its task.
pub struct Dts {
    pub exe: PathBuf,
    pub task: PathBuf,
    pub source_url: String,
    pub target_url: String,
    /// Logs go here.
    pub work_dir: PathBuf,
    /// A run still going after this long is killed and reported as failed.
    pub timeout: Duration,
}

/// A finished `--until-caught-up` run.
#[derive(Debug, Clone, Copy)]
pub struct CaughtUp {
    /// From starting the process to its exit.
    pub elapsed: Duration,
    /// Its peak resident memory, in bytes.
    pub peak_memory: u64,
    /// Transactions and rows dts says it applied, if its output says.
    pub applied: Option<(u64, u64)>,
}

/// A continuous run in progress.
pub struct Running {
    child: Child,
    label: String,
    out: PathBuf,
    err: PathBuf,
}

/// A continuous run after its stop.
#[derive(Debug, Clone, Copy)]
pub struct Stopped {
    /// From sending `SIGTERM` to the exit.
    pub stop_time: Duration,
    pub peak_memory: u64,
    pub applied: Option<(u64, u64)>,
}

impl Dts {
    fn command(&self, until_caught_up: bool, label: &str) -> Result<(Command, PathBuf, PathBuf)> {
        let out = self.work_dir.join(format!("{label}.out"));
        let err = self.work_dir.join(format!("{label}.err"));
        let mut command = Command::new(&self.exe);
        command.arg("run").arg("--config").arg(&self.task);
        if until_caught_up {
            command.arg("--until-caught-up");
        }
        command
            .env(SOURCE_URL_VAR, &self.source_url)
            .env(TARGET_URL_VAR, &self.target_url)
            .stdin(Stdio::null())
            .stdout(File::create(&out).with_context(|| format!("creating {}", out.display()))?)
            .stderr(File::create(&err).with_context(|| format!("creating {}", err.display()))?);
        Ok((command, out, err))
    }

    /// Runs `dts run --until-caught-up` and times it; fails if dts fails or times out.
    /// `label` names its log files.
    pub fn catch_up(&self, label: &str) -> Result<CaughtUp> {
        let (mut command, out, err) = self.command(true, label)?;
        let started = Instant::now();
        let mut children = [command
            .spawn()
            .with_context(|| format!("starting {}", self.exe.display()))?];
        let used = usage::wait(&mut children, Some(started + self.timeout))?;
        let elapsed = started.elapsed();
        if used.timed_out {
            bail!(
                "`dts run --until-caught-up` ({label}) still running after {} s (--timeout) \
                 and killed (log: {})",
                self.timeout.as_secs(),
                err.display()
            );
        }
        check_exit(used.statuses[0], label, &out, &err)?;
        Ok(CaughtUp {
            elapsed,
            peak_memory: used.peak_memory,
            applied: applied(&out),
        })
    }

    /// Starts `dts run` to replicate until stopped.
    pub fn start(&self, label: &str) -> Result<Running> {
        let (mut command, out, err) = self.command(false, label)?;
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", self.exe.display()))?;
        Ok(Running {
            child,
            label: label.to_owned(),
            out,
            err,
        })
    }
}

impl Running {
    /// Fails if dts has exited already (it should run until stopped).
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            check_exit(status, &self.label, &self.out, &self.err)?;
            bail!(
                "`dts run` ({}) exited on its own with status 0 before it was stopped \
                 (log: {})",
                self.label,
                self.out.display()
            );
        }
        Ok(())
    }

    /// Stops dts with `SIGTERM` and waits up to `timeout` for it to exit; fails unless it
    /// exits with status 0.
    pub fn stop(mut self, timeout: Duration) -> Result<Stopped> {
        self.check_alive()?;
        // The exit may come within milliseconds of the signal, before the first sample:
        // take the high-water mark now too.
        let peak_before = usage::peak_resident(self.child.id()).unwrap_or(0);
        let sent = Instant::now();
        child::terminate(self.child.id()).context("stopping dts")?;
        let used = usage::wait(std::slice::from_mut(&mut self.child), Some(sent + timeout))?;
        let stop_time = sent.elapsed();
        if used.timed_out {
            bail!(
                "`dts run` ({}) did not exit within {} s of SIGTERM and was killed (log: {})",
                self.label,
                timeout.as_secs(),
                self.err.display()
            );
        }
        check_exit(used.statuses[0], &self.label, &self.out, &self.err)?;
        Ok(Stopped {
            stop_time,
            peak_memory: used.peak_memory.max(peak_before),
            applied: applied(&self.out),
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A run abandoned on an error must not outlive the benchmark.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn check_exit(status: ExitStatus, label: &str, out: &Path, err: &Path) -> Result<()> {
    if status.success() {
        return Ok(());
    }
    let detail = telling_line(err)
        .or_else(|| telling_line(out))
        .unwrap_or_default();
    let how = match status.code() {
        Some(code) => format!("exit status {code}"),
        None => status.to_string(),
    };
    bail!(
        "`dts run` ({label}) failed with {how}: {detail} (log: {})",
        err.display()
    )
}

/// The transactions and rows of dts's `incremental: T transactions, R rows applied` line.
fn applied(out: &Path) -> Option<(u64, u64)> {
    let text = fs::read_to_string(out).ok()?;
    text.lines().rev().find_map(parse_applied)
}

fn parse_applied(line: &str) -> Option<(u64, u64)> {
    let rest = line.trim().strip_prefix("incremental: ")?;
    let (transactions, rest) = rest.split_once(" transactions, ")?;
    let (rows, _) = rest.split_once(" rows applied")?;
    Some((transactions.parse().ok()?, rows.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_task_file() {
        let text = task_file(Incremental::default());
        assert!(text.contains("migration = [\"schema\", \"full\", \"incremental\"]"));
        assert!(text.contains("url = \"${DTS_CDC_SOURCE_URL}\""));
        assert!(text.contains("include = [\"cdcbench\"]"));
        assert!(!text.contains("[incremental]"));
        let text = task_file(Incremental {
            max_batch_rows: Some(5000),
            ..Incremental::default()
        });
        assert!(text.ends_with("\n[incremental]\nmax_batch_rows = 5000\n"));
    }

    #[test]
    fn reads_what_dts_applied() {
        assert_eq!(
            parse_applied("incremental: 12 transactions, 34 rows applied, position x:4"),
            Some((12, 34))
        );
        assert_eq!(
            parse_applied("incremental: 0 transactions, 0 rows applied"),
            Some((0, 0))
        );
        assert_eq!(parse_applied("task `cdcbench` finished"), None);
    }
}
