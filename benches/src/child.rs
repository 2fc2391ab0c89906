//! Child processes of a benchmark: the programs it finds next to its own executable, the
//! stop signal it sends them, and the line of their logs that says what went wrong.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where the executable `name` sits if it was built with this benchmark: in the same
/// directory (`target/release/` for `cargo run --release`). Whether it exists is the
/// caller's to check, so that it can say how to build it.
///
/// # Errors
///
/// Fails if this executable's own path cannot be read.
pub fn sibling(name: &str) -> io::Result<PathBuf> {
    let me = std::env::current_exe()?;
    Ok(me.parent().unwrap_or(Path::new(".")).join(name))
}

/// Sends `SIGTERM` to process `pid`: the polite stop, which the process may handle (finish
/// its work in flight) before exiting.
///
/// # Errors
///
/// Fails if `kill` cannot be run or reports that the signal was not sent (no such process).
pub fn terminate(pid: u32) -> io::Result<()> {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "could not send SIGTERM to process {pid}"
        )))
    }
}

/// The line of a log that best says what went wrong, shortened to 200 characters: the first
/// that mentions an error, a panic or an exhausted resource, else the last non-empty one.
pub fn telling_line(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let lines = || text.lines().map(str::trim).filter(|l| !l.is_empty());
    let line = lines()
        .find(|l| {
            let l = l.to_lowercase();
            ["error", "fatal", "panicked", "exhausted"]
                .iter()
                .any(|word| l.contains(word))
        })
        .or_else(|| lines().next_back())?;
    let mut short: String = line.chars().take(200).collect();
    if short.len() < line.len() {
        short.push('…');
    }
    Some(short)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn finds_the_telling_line_of_a_log() {
        let dir = std::env::temp_dir().join(format!("dts-benches-child-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let log = dir.join("dts.err");
        fs::write(&log, "starting\nError: lost the connection\nbye\n").unwrap();
        assert_eq!(telling_line(&log).unwrap(), "Error: lost the connection");
        fs::write(&log, "starting\ncaught up\n\n").unwrap();
        assert_eq!(telling_line(&log).unwrap(), "caught up");
        fs::write(&log, "").unwrap();
        assert_eq!(telling_line(&log), None);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn terminates_a_child() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let started = Instant::now();
        terminate(child.id()).unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success());
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(sibling("dts").unwrap().ends_with("dts"));
    }
}
