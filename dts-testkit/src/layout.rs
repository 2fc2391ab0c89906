//! Where the testkit keeps its files: initialised templates and per-process run directories.
//!
//! ```text
//! <base>/template-mariadb/{stamp,data/}      initialised once, copied per server
//! <base>/template-postgres/{stamp,data/}
//! <base>/template-<engine>.lock              held while a template is being built
//! <runs>/<pid>-<start time>/my1/             one directory per server instance
//! <runs>/<pid>-<start time>/pg2/
//! ```
//!
//! `<base>` is `$DTS_TESTKIT_DIR`, else `$CARGO_TARGET_DIR/dts-testkit`, else the workspace's
//! `target/dts-testkit`, else `<temp dir>/dts-testkit`. `<runs>` is `<base>/runs`, or
//! `<temp dir>/dts-testkit-runs-<uid>` if that path is too long for Unix socket paths.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use crate::error::IoContext;
use crate::Error;

/// How long to wait for another process to finish building a template.
const TEMPLATE_LOCK_TIMEOUT: Duration = Duration::from_secs(300);

/// Age after which a lock file that names no owner is considered abandoned.
const EMPTY_LOCK_AGE: Duration = Duration::from_secs(10);

/// Longest `<runs>` path that leaves room for `/<pid>-<start>/pgN/.s.PGSQL.NNNNN` within the
/// 107 bytes a Unix socket path may have.
const MAX_RUNS_ROOT_LEN: usize = 50;

/// A process, identified by pid and start time so that a reused pid is not mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcessId {
    pid: u32,
    start: u64,
}

impl ProcessId {
    /// This process.
    pub(crate) fn current() -> Self {
        let pid = std::process::id();
        Self {
            pid,
            start: start_time(pid).unwrap_or(0),
        }
    }

    /// Parses the `<pid>-<start>` form used in file names.
    fn parse(text: &str) -> Option<Self> {
        let (pid, start) = text.split_once('-')?;
        Some(Self {
            pid: pid.parse().ok()?,
            start: start.parse().ok()?,
        })
    }

    /// Whether the process still exists.
    fn is_alive(self) -> bool {
        start_time(self.pid) == Some(self.start)
    }
}

impl std::fmt::Display for ProcessId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.pid, self.start)
    }
}

/// The start time of process `pid` in clock ticks since boot (field 22 of `/proc/<pid>/stat`).
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is parenthesised and may contain spaces and parentheses.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Creates `dir` and its parents, making each created directory world-traversable so that
/// the unprivileged PostgreSQL user can reach its data directory.
pub(crate) fn create_dir(dir: &Path) -> Result<(), Error> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
            .context(|| format!("set permissions of `{}`", dir.display())),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io(
            format!("create directory `{}`", dir.display()),
            e,
        )),
    }
}

/// The base directory for templates, chosen once per process.
pub(crate) fn base_dir() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let candidates = [
            std::env::var_os("DTS_TESTKIT_DIR").map(PathBuf::from),
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|p| p.join("dts-testkit")),
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../target")
                .canonicalize()
                .ok()
                .map(|p| p.join("dts-testkit")),
        ];
        candidates
            .into_iter()
            .flatten()
            .find(|dir| create_dir(dir).is_ok())
            .unwrap_or_else(|| std::env::temp_dir().join("dts-testkit"))
    })
}

/// The directory holding all processes' run directories: `<base>/runs`, or a directory in
/// the temporary directory if that path is too long for Unix socket paths below it.
fn runs_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let preferred = base_dir().join("runs");
        if preferred.as_os_str().len() <= MAX_RUNS_ROOT_LEN {
            return preferred;
        }
        // Per user, as the sticky temporary directory lets only its creator use it.
        let uid = {
            use std::os::unix::fs::MetadataExt;
            fs::metadata("/proc/self").map_or(0, |meta| meta.uid())
        };
        std::env::temp_dir().join(format!("dts-testkit-runs-{uid}"))
    })
}

/// This process's run directory, created on first use after removing the run directories
/// of processes that no longer exist.
pub(crate) fn run_dir() -> Result<&'static Path, Error> {
    static RUN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = RUN.get_or_init(|| {
        let root = runs_root();
        create_dir(root).map_err(|e| crate::error::chain(&e))?;
        remove_stale(root, ProcessId::parse);
        let dir = root.join(ProcessId::current().to_string());
        // A leftover from a process with the same identity cannot be running; start clean.
        let _ = fs::remove_dir_all(&dir);
        create_dir(&dir).map_err(|e| crate::error::chain(&e))?;
        Ok(dir)
    });
    match dir {
        Ok(dir) => Ok(dir),
        Err(message) => Err(Error::io(
            "create the run directory",
            io::Error::other(message.clone()),
        )),
    }
}

/// A fresh, empty directory for one server instance: `<run dir>/<prefix><n>`.
pub(crate) fn instance_dir(prefix: &str) -> Result<PathBuf, Error> {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let dir = run_dir()?.join(format!("{prefix}{}", NEXT.fetch_add(1, Ordering::Relaxed)));
    create_dir(&dir)?;
    Ok(dir)
}

/// Removes the entries of `dir` whose name identifies (via `owner`) a process that is gone.
fn remove_stale(dir: &Path, owner: impl Fn(&str) -> Option<ProcessId>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(process) = name.to_str().and_then(&owner) else {
            continue;
        };
        if !process.is_alive() {
            let path = entry.path();
            let _ = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
        }
    }
}

/// The initialised template for `engine`, built by `build` if it is missing or its stamp
/// differs from `stamp`.
///
/// `build` receives an empty directory and must create `data/` in it. Building happens in a
/// private directory that is renamed into place, so readers never see a partial template;
/// a lock file keeps concurrent processes from building the same template twice.
pub(crate) fn template(
    engine: &str,
    stamp: &str,
    build: impl FnOnce(&Path) -> Result<(), Error>,
) -> Result<PathBuf, Error> {
    let base = base_dir();
    create_dir(base)?;
    let name = format!("template-{engine}");
    let dir = base.join(&name);
    let lock = base.join(format!("{name}.lock"));
    let me = ProcessId::current();
    remove_stale(base, |entry| {
        entry
            .strip_prefix(&name)?
            .strip_prefix(".build-")
            .and_then(|rest| ProcessId::parse(rest.rsplit_once('-')?.0))
    });
    let deadline = Instant::now() + TEMPLATE_LOCK_TIMEOUT;
    loop {
        if has_stamp(&dir, stamp) {
            return Ok(dir);
        }
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
        {
            Ok(mut file) => {
                let _ = write!(file, "{me}");
                let built = build_template(&dir, &name, stamp, me, build);
                let _ = fs::remove_file(&lock);
                return built.map(|()| dir);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let owner = fs::read_to_string(&lock)
                    .ok()
                    .and_then(|text| ProcessId::parse(text.trim()));
                // A lock without owner belongs to a process that has not written it yet, or
                // that died right after creating it.
                let abandoned = match owner {
                    Some(owner) => !owner.is_alive(),
                    None => fs::metadata(&lock)
                        .and_then(|meta| meta.modified())
                        .is_ok_and(|at| at.elapsed().unwrap_or_default() > EMPTY_LOCK_AGE),
                };
                if abandoned {
                    let _ = fs::remove_file(&lock);
                    continue;
                }
                if Instant::now() > deadline {
                    return Err(Error::io(
                        format!("acquire the template lock `{}`", lock.display()),
                        io::ErrorKind::TimedOut.into(),
                    ));
                }
                thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                return Err(Error::io(
                    format!("create the template lock `{}`", lock.display()),
                    e,
                ))
            }
        }
    }
}

/// Builds the template into a private directory and renames it to `dir`.
fn build_template(
    dir: &Path,
    name: &str,
    stamp: &str,
    me: ProcessId,
    build: impl FnOnce(&Path) -> Result<(), Error>,
) -> Result<(), Error> {
    if has_stamp(dir, stamp) {
        return Ok(());
    }
    let base = dir.parent().unwrap_or(dir);
    if dir.exists() {
        let old = base.join(format!("{name}.build-{me}-old"));
        fs::rename(dir, &old).context(|| format!("move the outdated `{}`", dir.display()))?;
        let _ = fs::remove_dir_all(&old);
    }
    let scratch = base.join(format!("{name}.build-{me}-new"));
    let _ = fs::remove_dir_all(&scratch);
    create_dir(&scratch)?;
    let result = build(&scratch)
        .and_then(|()| {
            fs::write(scratch.join("stamp"), stamp)
                .context(|| format!("write `{}`", scratch.join("stamp").display()))
        })
        .and_then(|()| {
            fs::rename(&scratch, dir).context(|| format!("rename template to `{}`", dir.display()))
        });
    if result.is_err() {
        let _ = fs::remove_dir_all(&scratch);
    }
    result
}

/// Whether `dir` is a complete template with the given stamp.
fn has_stamp(dir: &Path, stamp: &str) -> bool {
    fs::read_to_string(dir.join("stamp")).is_ok_and(|found| found == stamp)
}

/// A short fingerprint of an installed program: its path, size and modification time.
pub(crate) fn fingerprint(program: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    match fs::metadata(program) {
        Ok(meta) => format!("{} {} {}", program.display(), meta.len(), meta.mtime()),
        Err(_) => program.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_process_is_alive_and_round_trips() {
        let me = ProcessId::current();
        assert!(me.is_alive());
        assert_eq!(ProcessId::parse(&me.to_string()), Some(me));
        let other = ProcessId {
            start: me.start + 1,
            ..me
        };
        assert!(!other.is_alive());
    }

    #[test]
    fn template_is_built_once() {
        let stamp = format!("test {}", ProcessId::current());
        let engine = format!("unit-{}", std::process::id());
        let mut builds = 0;
        for _ in 0..2 {
            let dir = template(&engine, &stamp, |scratch| {
                builds += 1;
                fs::create_dir(scratch.join("data")).context(|| "create data".to_owned())
            })
            .unwrap();
            assert!(dir.join("data").is_dir());
        }
        assert_eq!(builds, 1);
        fs::remove_dir_all(base_dir().join(format!("template-{engine}"))).unwrap();
    }
}
