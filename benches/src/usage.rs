//! Waiting for child processes while sampling their peak memory.
//!
//! The peak is read from `/proc/PID/status` (`VmHWM`, the resident-set high-water mark the
//! kernel keeps for each process). Because the mark only grows, sampling every few
//! milliseconds loses at most what a process adds in its last interval before it exits.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How often memory is sampled and the children are checked for exit.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// Every how many samples the process tree is scanned again for new descendants.
const RESCAN_EVERY: u32 = 10;

/// What a group of child processes did, from [`wait`].
#[derive(Debug)]
pub struct Usage {
    /// The exit status of each child, in the order given.
    pub statuses: Vec<ExitStatus>,
    /// The sum, over the children and their descendants, of each process's peak resident set
    /// size (`VmHWM`), in bytes: an upper bound of what they held at once.
    pub peak_memory: u64,
    /// Whether the deadline passed and the children still running were killed.
    pub timed_out: bool,
}

/// Waits until every child has exited, sampling the peak memory of the children and their
/// descendants. Children still running at `deadline` are killed (`SIGKILL`), with their
/// descendants.
///
/// # Errors
///
/// Fails if a child's status cannot be read or it cannot be killed.
pub fn wait(children: &mut [Child], deadline: Option<Instant>) -> io::Result<Usage> {
    let roots: Vec<u32> = children.iter().map(Child::id).collect();
    let mut statuses: Vec<Option<ExitStatus>> = vec![None; children.len()];
    let mut peaks: HashMap<u32, u64> = HashMap::new();
    let mut tree = roots.clone();
    let mut timed_out = false;
    for round in 0u32.. {
        if round % RESCAN_EVERY == 0 {
            tree = process_tree(&roots);
        }
        // Sample before reaping: an exited child's status no longer shows its peak.
        for &pid in &tree {
            if let Some(peak) = peak_resident(pid) {
                let known = peaks.entry(pid).or_default();
                *known = (*known).max(peak);
            }
        }
        for (child, status) in children.iter_mut().zip(statuses.iter_mut()) {
            if status.is_none() {
                *status = child.try_wait()?;
            }
        }
        if statuses.iter().all(Option::is_some) {
            break;
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            timed_out = true;
            for (child, status) in children.iter_mut().zip(statuses.iter_mut()) {
                if status.is_none() {
                    // The child first, so it cannot exit normally once its descendants die;
                    // the descendants are listed before, while they are still its own.
                    let descendants = descendants(child.id());
                    child.kill()?;
                    kill_all(&descendants);
                    *status = Some(child.wait()?);
                }
            }
            break;
        }
        thread::sleep(SAMPLE_EVERY);
    }
    Ok(Usage {
        statuses: statuses.into_iter().flatten().collect(),
        peak_memory: peaks.values().sum(),
        timed_out,
    })
}

/// The living descendants of process `pid`, not `pid` itself.
fn descendants(pid: u32) -> Vec<String> {
    process_tree(&[pid])
        .into_iter()
        .filter(|&p| p != pid)
        .map(|p| p.to_string())
        .collect()
}

/// Kills (`SIGKILL`) the processes `pids`.
fn kill_all(descendants: &[String]) {
    if !descendants.is_empty() {
        // Best effort: a descendant may exit on its own meanwhile.
        let _ = Command::new("kill")
            .arg("-KILL")
            .args(descendants)
            .stderr(Stdio::null())
            .status();
    }
}

/// The peak resident set size of process `pid` in bytes, if it is alive and has memory.
pub fn peak_resident(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_hwm(&status)
}

/// The `VmHWM` line of a `/proc/PID/status` text, in bytes.
fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let mut fields = line["VmHWM:".len()..].split_whitespace();
    let value: u64 = fields.next()?.parse().ok()?;
    match fields.next() {
        Some("kB") => Some(value * 1024),
        _ => None,
    }
}

/// `roots` and all their living descendants.
fn process_tree(roots: &[u32]) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            if let Some(parent) = parse_parent(&stat) {
                children.entry(parent).or_default().push(pid);
            }
        }
    }
    let mut seen: HashSet<u32> = HashSet::new();
    let mut pending = roots.to_vec();
    let mut tree = Vec::new();
    while let Some(pid) = pending.pop() {
        if seen.insert(pid) {
            tree.push(pid);
            pending.extend(children.get(&pid).into_iter().flatten());
        }
    }
    tree
}

/// The parent pid from a `/proc/PID/stat` line: `pid (comm) state ppid …`, where `comm` may
/// itself contain spaces and parentheses.
fn parse_parent(stat: &str) -> Option<u32> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn parses_vm_hwm() {
        let status = "Name:\tcat\nVmPeak:\t    8000 kB\nVmHWM:\t    1234 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(1234 * 1024));
        assert_eq!(parse_vm_hwm("Name:\tzombie\nState:\tZ (zombie)\n"), None);
    }

    #[test]
    fn parses_parent_with_odd_command_names() {
        assert_eq!(parse_parent("42 (a) b (c) S 7 42 42 0"), Some(7));
        assert_eq!(parse_parent("42 (sh) R 1 42"), Some(1));
        assert_eq!(parse_parent("garbage"), None);
    }

    #[test]
    fn waits_and_samples_a_child_and_its_descendants() {
        let mut children = [Command::new("sh")
            .args(["-c", "sleep 0.3 & wait"])
            .spawn()
            .unwrap()];
        let usage = wait(&mut children, None).unwrap();
        assert!(!usage.timed_out);
        assert!(usage.statuses[0].success());
        assert!(usage.peak_memory > 0);
    }

    #[test]
    fn kills_at_the_deadline_with_descendants() {
        let mut children = [Command::new("sh")
            .args(["-c", "sleep 30 & echo $! ; wait"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()];
        let deadline = Instant::now() + Duration::from_millis(300);
        let usage = wait(&mut children, Some(deadline)).unwrap();
        assert!(usage.timed_out);
        assert!(!usage.statuses[0].success());
        let mut printed = String::new();
        std::io::Read::read_to_string(&mut children[0].stdout.take().unwrap(), &mut printed)
            .unwrap();
        let sleeper: u32 = printed.trim().parse().unwrap();
        // Killed, and reaped by init: gone, or at most a zombie for a moment.
        let gone = || {
            fs::read_to_string(format!("/proc/{sleeper}/stat"))
                .map_or(true, |stat| stat.contains(") Z"))
        };
        let until = Instant::now() + Duration::from_secs(5);
        while !gone() && Instant::now() < until {
            thread::sleep(Duration::from_millis(10));
        }
        assert!(gone());
    }
}
