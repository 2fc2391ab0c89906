//! Running programs: servers that die with this process, and one-shot command-line tools.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use crate::error::IoContext;
use crate::Error;

/// How long a server may take to accept connections.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a server may take to shut down before it is killed.
pub(crate) const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Pause between readiness or exit polls.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How many lines of a server log an error shows.
const LOG_TAIL_LINES: usize = 40;

/// A signal sent to a server process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// `SIGINT`: PostgreSQL's fast shutdown.
    Interrupt,
    /// `SIGTERM`: MariaDB's normal shutdown.
    Terminate,
    /// `SIGQUIT`: PostgreSQL's immediate shutdown; the postmaster takes its children along.
    Quit,
    /// `SIGKILL`.
    Kill,
}

impl Signal {
    fn number(self) -> libc::c_int {
        match self {
            Self::Interrupt => libc::SIGINT,
            Self::Terminate => libc::SIGTERM,
            Self::Quit => libc::SIGQUIT,
            Self::Kill => libc::SIGKILL,
        }
    }
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// The sender to the spawner thread, which lives as long as the process.
///
/// The kernel delivers a parent-death signal when the *thread* that forked the child exits,
/// not when the process does. Test harnesses run each test on its own short-lived thread, so
/// servers are forked from this dedicated thread instead; it never exits before the process.
fn spawner() -> Option<&'static mpsc::Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Option<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER
        .get_or_init(|| {
            let (requests, incoming) = mpsc::channel::<SpawnRequest>();
            thread::Builder::new()
                .name("dts-testkit-spawner".to_owned())
                .spawn(move || {
                    for (mut command, reply) in incoming {
                        let _ = reply.send(command.spawn());
                    }
                })
                .ok()
                .map(|_| requests)
        })
        .as_ref()
}

/// Spawns `command` so that the kernel sends it `on_parent_death` when this process exits,
/// however it exits.
pub(crate) fn spawn_server(
    mut command: Command,
    on_parent_death: Signal,
    what: &str,
) -> Result<Child, Error> {
    set_parent_death_signal(&mut command, on_parent_death);
    let spawner = spawner().ok_or_else(|| {
        Error::io(
            "start the server spawner thread",
            io::Error::other("thread creation failed"),
        )
    })?;
    let (reply, response) = mpsc::channel();
    let gone = || io::Error::other("the spawner thread is gone");
    spawner
        .send((command, reply))
        .map_err(|_| gone())
        .and_then(|()| response.recv().map_err(|_| gone())?)
        .context(|| format!("spawn {what}"))
}

/// Makes the child ask the kernel for `signal` when its parent thread exits.
#[allow(unsafe_code)]
fn set_parent_death_signal(command: &mut Command, signal: Signal) {
    let signal = libc::c_ulong::from(signal.number().unsigned_abs());
    let parent = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
    // SAFETY: the closure runs in the forked child between `fork` and `exec`, where only
    // async-signal-safe functions may be called. It calls `prctl(PR_SET_PDEATHSIG)` and
    // `getppid`, both plain system calls, and builds an `io::Error` from a raw OS error
    // code, which does not allocate. It touches no locks and no memory shared with the
    // parent.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before the request took effect.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// Sends `signal` to process `pid` with the `kill` program.
pub(crate) fn signal(pid: u32, signal: Signal) -> Result<(), Error> {
    let status = Command::new("kill")
        .arg(format!("-{}", signal.number()))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context(|| format!("send signal {} to process {pid}", signal.number()))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::io(
            format!("send signal {} to process {pid}", signal.number()),
            io::Error::other(status.to_string()),
        ))
    }
}

/// Sends `first` to the child and waits for it to exit; kills it if it outlives `timeout`.
pub(crate) fn shut_down(
    child: &mut Child,
    first: Signal,
    timeout: Duration,
) -> Result<ExitStatus, Error> {
    if let Some(status) = child.try_wait().context(|| "poll a server".to_owned())? {
        return Ok(status);
    }
    let sent = if first == Signal::Kill {
        child
            .kill()
            .context(|| format!("kill process {}", child.id()))
    } else {
        signal(child.id(), first)
    };
    if let Err(e) = sent {
        // Sending fails if the process exited in the meantime.
        return match child.try_wait() {
            Ok(Some(status)) => Ok(status),
            _ => Err(e),
        };
    }
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().context(|| "poll a server".to_owned())? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return child
                .wait()
                .context(|| "wait for a killed server".to_owned());
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// How a readiness wait ended badly.
pub(crate) enum NotReady {
    /// The server exited; the log may say why (e.g. its port was taken).
    Exited(Error),
    /// Polling failed or the deadline passed.
    Failed(Error),
}

impl NotReady {
    /// The error, whichever way the wait ended.
    pub(crate) fn into_error(self) -> Error {
        match self {
            Self::Exited(e) | Self::Failed(e) => e,
        }
    }
}

/// Polls `probe` until it returns true, the child exits or [`READY_TIMEOUT`] passes. The
/// child is left running if the wait fails for another reason than its exit.
pub(crate) fn wait_ready(
    child: &mut Child,
    server: &str,
    log: &Path,
    mut probe: impl FnMut() -> bool,
) -> Result<(), NotReady> {
    let startup_error = |reason: String| Error::Startup {
        server: server.to_owned(),
        reason,
        log: log.to_owned(),
        log_tail: log_tail(log),
    };
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return Err(NotReady::Exited(startup_error(format!(
                    "exited during startup ({status})"
                ))))
            }
            Ok(None) => {}
            Err(e) => return Err(NotReady::Failed(Error::io(format!("poll {server}"), e))),
        }
        if probe() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(NotReady::Failed(startup_error(format!(
                "did not accept connections within {} s",
                READY_TIMEOUT.as_secs()
            ))));
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Whether something accepts TCP connections on `127.0.0.1:port`.
pub(crate) fn accepts_tcp(port: u16) -> bool {
    TcpStream::connect_timeout(
        &(Ipv4Addr::LOCALHOST, port).into(),
        Duration::from_millis(500),
    )
    .is_ok()
}

/// A loopback port that was free a moment ago.
pub(crate) fn free_port() -> Result<u16, Error> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .context(|| "find a free port on 127.0.0.1".to_owned())
}

/// The last lines of a log file, or a note that it could not be read.
pub(crate) fn log_tail(log: &Path) -> String {
    const MAX_BYTES: u64 = 64 * 1024;
    let read = || -> io::Result<String> {
        let mut file = fs::File::open(log)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(MAX_BYTES)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
        }
        Err(e) => format!("(log unreadable: {e})"),
    }
}

/// Opens (appending) the log file a server writes its output to.
pub(crate) fn open_log(log: &Path) -> Result<fs::File, Error> {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .context(|| format!("open log file `{}`", log.display()))
}

/// Runs a one-shot program with `input` on standard input and returns its standard output.
pub(crate) fn run(mut command: Command, input: &str) -> Result<String, Error> {
    let program = Path::new(command.get_program())
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context(|| format!("run `{program}`"))?;
    let mut stdin = child.stdin.take();
    let input = input.to_owned();
    // Feed standard input from another thread so that large output cannot deadlock.
    let writer = thread::spawn(move || {
        if let Some(stdin) = stdin.as_mut() {
            let _ = stdin.write_all(input.as_bytes());
        }
    });
    let output = child
        .wait_with_output()
        .context(|| format!("wait for `{program}`"))?;
    let _ = writer.join();
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(Error::Command {
            program,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// How many threads copy template files; file creation is latency-bound on many disks.
const COPY_THREADS: usize = 8;

/// Copies the directory tree `from` to `to` (which must not exist), keeping modes and, when
/// running as root, owners. Files are copied by several threads: a PostgreSQL data
/// directory holds about a thousand small files.
pub(crate) fn copy_tree(from: &Path, to: &Path) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    let keep_owner = running_as_root();
    let mut files = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let source = from.join(&relative);
        let target = to.join(&relative);
        let meta =
            fs::symlink_metadata(&source).context(|| format!("read `{}`", source.display()))?;
        fs::create_dir(&target).context(|| format!("create directory `{}`", target.display()))?;
        fs::set_permissions(&target, meta.permissions())
            .context(|| format!("set permissions of `{}`", target.display()))?;
        if keep_owner {
            std::os::unix::fs::chown(&target, Some(meta.uid()), Some(meta.gid()))
                .context(|| format!("set the owner of `{}`", target.display()))?;
        }
        for entry in fs::read_dir(&source).context(|| format!("read `{}`", source.display()))? {
            let entry = entry.context(|| format!("read `{}`", source.display()))?;
            let kind = entry
                .file_type()
                .context(|| format!("read `{}`", entry.path().display()))?;
            let child = relative.join(entry.file_name());
            if kind.is_dir() {
                pending.push(child);
            } else if kind.is_file() {
                files.push(child);
            }
        }
    }
    let copy_file = |relative: &PathBuf| -> Result<(), Error> {
        let (source, target) = (from.join(relative), to.join(relative));
        fs::copy(&source, &target)
            .context(|| format!("copy `{}` to `{}`", source.display(), target.display()))?;
        if keep_owner {
            let meta = fs::metadata(&source).context(|| format!("read `{}`", source.display()))?;
            std::os::unix::fs::chown(&target, Some(meta.uid()), Some(meta.gid()))
                .context(|| format!("set the owner of `{}`", target.display()))?;
        }
        Ok(())
    };
    let chunk = files.len().div_ceil(COPY_THREADS).max(1);
    thread::scope(|scope| {
        let workers: Vec<_> = files
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().try_for_each(copy_file)))
            .collect();
        // Join every worker before reporting the first error.
        let results: Vec<_> = workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect();
        results
            .into_iter()
            .collect::<Result<Vec<()>, Error>>()
            .map(drop)
    })
}

/// Whether this process runs as root (judged by the owner of `/proc/self`).
pub(crate) fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}
