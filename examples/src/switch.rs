//! `dts switchover` and `dts rollback`: the fourth and fifth steps of a migration (switch the
//! application over with a rollback path; go back).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use dts::core::Error;
use dts::switchover::{SwitchStep, SwitchoverEvent, SwitchoverOptions};

/// The options `dts switchover` and `dts rollback` share.
#[derive(Args)]
pub struct SwitchArgs {
    /// The task file (of the forward task, for both commands).
    #[arg(long, short)]
    config: PathBuf,
    /// Make the side the application leaves read-only (MariaDB/MySQL `read_only`,
    /// PostgreSQL `default_transaction_read_only` plus ending the sessions that write)
    /// instead of waiting until nothing writes it.
    #[arg(long)]
    lock_source: bool,
    /// The replication lag under which the writes are stopped.
    #[arg(long, default_value_t = 5)]
    max_lag_seconds: u64,
    /// Without --lock-source: how long the source's log position must stay still.
    #[arg(long, default_value_t = 10)]
    quiet_seconds: u64,
    /// Do not verify before completing (a difference otherwise stops the switchover).
    #[arg(long)]
    skip_verify: bool,
    /// How long each waiting step waits before failing.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

#[derive(Args)]
pub struct SwitchoverArgs {
    #[command(flatten)]
    common: SwitchArgs,
    /// Do not start the reverse task: print the line that starts it.
    #[arg(long)]
    no_reverse: bool,
}

impl SwitchArgs {
    fn options(&self) -> SwitchoverOptions {
        SwitchoverOptions::default()
            .lock_source(self.lock_source)
            .max_lag(Duration::from_secs(self.max_lag_seconds))
            .quiet(Duration::from_secs(self.quiet_seconds))
            .verify(!self.skip_verify)
            .patience(Duration::from_secs(self.timeout))
    }
}

fn letter(step: SwitchStep) -> char {
    match step {
        SwitchStep::Lag => 'a',
        SwitchStep::StopWrites => 'b',
        SwitchStep::CatchUp => 'c',
        SwitchStep::Sequences => 'd',
        SwitchStep::Verify => 'e',
        SwitchStep::End => 'f',
        _ => 'g',
    }
}

/// Prints each step as it is reported; await the handle to drain.
fn printer() -> (
    tokio::sync::mpsc::UnboundedSender<SwitchoverEvent>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<SwitchoverEvent>();
    let handle = tokio::spawn(async move {
        while let Some(e) = rx.recv().await {
            println!("({}) {}: {}", letter(e.step), e.step, e.message);
        }
    });
    (tx, handle)
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// `dts switchover`.
pub async fn switchover(args: SwitchoverArgs) -> Result<ExitCode, Error> {
    let (tx, printed) = printer();
    let result =
        dts::switchover::switchover(&args.common.config, &args.common.options(), Some(tx)).await;
    let _ = printed.await;
    let report = result?;
    let reverse = shown(&report.reverse_file);
    let run_line = format!("dts run --config {reverse}");
    if args.no_reverse {
        println!(
            "(g) reverse: start the reverse task now, before the application writes the target:"
        );
        println!("    {run_line}");
    } else {
        let log = report.reverse_file.with_extension("log");
        let mut child = start_detached(&report.reverse_file, &log)?;
        let pid = child.id();
        wait_running(&report.reverse, &mut child, &log)
            .await
            .map_err(|e| {
                e.context(format!(
                    "switched over at {}, but the reverse task did not start; fix it and \
                     start it with `{run_line}` before the application writes the target",
                    report.position
                ))
            })?;
        println!(
            "(g) reverse: task `{}` replicates target → source in the background (pid {pid}, \
             log {}); the same by hand: `{run_line}`",
            report.reverse.name,
            log.display()
        );
    }
    println!(
        "switched over at {}: point the application to the target now. To go back: \
         `dts rollback --config {}`",
        report.position,
        shown(&args.common.config)
    );
    Ok(ExitCode::SUCCESS)
}

/// `dts rollback`.
pub async fn rollback(args: SwitchArgs) -> Result<ExitCode, Error> {
    let (tx, printed) = printer();
    let result = dts::switchover::rollback(&args.config, &args.options(), Some(tx)).await;
    let _ = printed.await;
    let report = result?;
    let config = dts::TaskConfig::from_file(&args.config)?;
    println!(
        "rolled back at {}: point the application back to the source `{}` now",
        report.position,
        dts::core::error::redact_url(&config.source.url)
    );
    if let Some(lock) = &report.lock {
        println!(
            "the target stays read-only; to undo: `{}`",
            lock.undo.join("; ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Starts `dts run --config FILE` as a detached process (own process group, no terminal),
/// its output appended to `log`.
fn start_detached(file: &Path, log: &Path) -> Result<std::process::Child, Error> {
    use std::os::unix::process::CommandExt as _;
    let io = |what: &str, e: std::io::Error| {
        Error::new(dts::core::ErrorKind::Io, format!("{what}: {e}"))
    };
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| io(&format!("cannot open the log file `{}`", log.display()), e))?;
    let err = out
        .try_clone()
        .map_err(|e| io("cannot share the log file", e))?;
    let exe = std::env::current_exe().map_err(|e| io("cannot find the dts program", e))?;
    let child = std::process::Command::new(exe)
        .arg("run")
        .arg("--config")
        .arg(file)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| io("cannot start the reverse task", e))?;
    Ok(child)
}

/// Waits until the reverse task replicates (its record says `incremental` and a process holds
/// it), for at most a minute.
async fn wait_running(
    config: &dts::TaskConfig,
    child: &mut std::process::Child,
    log: &Path,
) -> Result<(), Error> {
    let started = Instant::now();
    loop {
        if let Ok(Some(code)) = child.try_wait() {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(3).collect();
            return Err(Error::new(
                dts::core::ErrorKind::Conflict,
                format!(
                    "the reverse task `{}` exited ({code}): {}",
                    config.name,
                    tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
                ),
            ));
        }
        let status = dts::status::TaskStatus::read(config).await?;
        let state = status.record.as_ref().map(|r| r.state);
        match state {
            Some(dts::core::TaskState::Incremental) if status.running.is_some() => return Ok(()),
            Some(dts::core::TaskState::Failed) => {
                let why = status
                    .record
                    .and_then(|r| r.failure)
                    .map_or_else(String::new, |f| f.message);
                return Err(Error::new(
                    dts::core::ErrorKind::Conflict,
                    format!(
                        "the reverse task `{}` failed to start: {why} (log: {})",
                        config.name,
                        log.display()
                    ),
                ));
            }
            _ if started.elapsed() > Duration::from_secs(60) => {
                return Err(Error::new(
                    dts::core::ErrorKind::Conflict,
                    format!(
                        "the reverse task `{}` is not replicating a minute after it was \
                         started (state {}); see its log {}",
                        config.name,
                        state.map_or_else(|| "none".into(), |s| s.to_string()),
                        log.display()
                    ),
                ));
            }
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}
