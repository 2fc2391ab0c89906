//! One server process started by the testkit, with its private directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use crate::process::{self, NotReady, Signal};
use crate::Error;

/// How many fresh ports to try when a port is taken between choosing and binding it.
const PORT_ATTEMPTS: usize = 4;

/// How long `Drop` (or a failed start) waits for a server to exit before killing it.
const DROP_TIMEOUT: Duration = Duration::from_secs(10);

/// What distinguishes the engines in the lifecycle of an [`Instance`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Signals {
    /// Sent for an orderly shutdown.
    pub(crate) stop: Signal,
    /// Sent for an abrupt shutdown, and on drop.
    pub(crate) kill: Signal,
    /// Delivered by the kernel when this process dies.
    pub(crate) on_parent_death: Signal,
}

/// A server process and its directory `<run dir>/<name>` holding data, socket and log.
#[derive(Debug)]
pub(crate) struct Instance {
    /// Engine name for messages, e.g. `mariadb`.
    engine: &'static str,
    /// The instance directory, removed on drop.
    dir: PathBuf,
    /// The data directory inside `dir`.
    pub(crate) data: PathBuf,
    /// The server log inside `dir`.
    pub(crate) log: PathBuf,
    /// The TCP port, fixed after the first successful start.
    pub(crate) port: u16,
    signals: Signals,
    child: Option<Child>,
}

impl Instance {
    /// An instance in `dir` that is not running yet.
    pub(crate) fn new(engine: &'static str, dir: PathBuf, signals: Signals) -> Self {
        Self {
            engine,
            data: dir.join("data"),
            log: dir.join("server.log"),
            dir,
            port: 0,
            signals,
            child: None,
        }
    }

    /// E.g. `mariadb server on port 40123`.
    pub(crate) fn describe(&self) -> String {
        format!("{} server on port {}", self.engine, self.port)
    }

    /// Starts the server for the first time on a free port: `command(port)` builds the
    /// command line, `probe(port)` tells whether it is ready. Retries with another port if
    /// the chosen one was taken in the meantime.
    pub(crate) fn launch(
        &mut self,
        command: impl Fn(u16) -> Result<Command, Error>,
        probe: impl Fn(u16) -> bool,
    ) -> Result<(), Error> {
        let mut attempt = 1;
        loop {
            self.port = process::free_port()?;
            let log_start = fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
            match self.run(command(self.port)?, &probe) {
                Ok(()) => return Ok(()),
                Err(NotReady::Exited(_))
                    if attempt < PORT_ATTEMPTS && self.log_mentions_port_in_use(log_start) =>
                {
                    attempt += 1;
                }
                Err(e) => return Err(e.into_error()),
            }
        }
    }

    /// Starts the server again on its port and data directory.
    pub(crate) fn relaunch(
        &mut self,
        command: impl Fn(u16) -> Result<Command, Error>,
        probe: impl Fn(u16) -> bool,
    ) -> Result<(), Error> {
        if self.is_running() {
            return Err(self.state_error("start", "running"));
        }
        self.run(command(self.port)?, &probe)
            .map_err(NotReady::into_error)
    }

    fn run(&mut self, mut command: Command, probe: &impl Fn(u16) -> bool) -> Result<(), NotReady> {
        let log = process::open_log(&self.log).map_err(NotReady::Failed)?;
        let err = log
            .try_clone()
            .map_err(|e| NotReady::Failed(Error::io("duplicate a log file handle", e)))?;
        command
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(err);
        let what = self.describe();
        let mut child = process::spawn_server(command, self.signals.on_parent_death, &what)
            .map_err(NotReady::Failed)?;
        let port = self.port;
        let ready = process::wait_ready(&mut child, &what, &self.log, || probe(port));
        match ready {
            Ok(()) => self.child = Some(child),
            Err(NotReady::Failed(_)) => {
                let _ = process::shut_down(&mut child, self.signals.kill, DROP_TIMEOUT);
            }
            Err(NotReady::Exited(_)) => {}
        }
        ready
    }

    fn log_mentions_port_in_use(&self, from: u64) -> bool {
        fs::read(&self.log).is_ok_and(|bytes| {
            let start = usize::try_from(from).unwrap_or(0).min(bytes.len());
            String::from_utf8_lossy(&bytes[start..]).contains("Address already in use")
        })
    }

    /// Whether the server process is running.
    pub(crate) fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(_) => {
                self.child = None;
                false
            }
            None => false,
        }
    }

    /// The server's process id while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Orderly shutdown; waits for the process to exit.
    pub(crate) fn stop(&mut self) -> Result<(), Error> {
        self.shut_down("stop", self.signals.stop)
    }

    /// Abrupt shutdown; waits for the process to exit.
    pub(crate) fn kill(&mut self) -> Result<(), Error> {
        self.shut_down("kill", self.signals.kill)
    }

    fn shut_down(&mut self, operation: &'static str, signal: Signal) -> Result<(), Error> {
        if !self.is_running() {
            return Err(self.state_error(operation, "not running"));
        }
        if let Some(child) = self.child.as_mut() {
            process::shut_down(child, signal, process::STOP_TIMEOUT)?;
        }
        self.child = None;
        Ok(())
    }

    fn state_error(&self, operation: &'static str, state: &'static str) -> Error {
        Error::State {
            operation,
            server: self.describe(),
            state,
        }
    }

    /// The instance directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = process::shut_down(&mut child, self.signals.kill, DROP_TIMEOUT);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The methods that a server handle has alike for both engines, for a type with the fields
/// `endpoint: Endpoint` and `server: Option<Private>` (its private server's parts, with an
/// `instance: Instance`) and the methods `start_owned`, `external`, `exec`,
/// `create_database`, `is_running`, `stop` and `launch(&mut self, again: bool)`. `$var` is
/// the environment variable naming an external server, `$user` the user of private servers.
macro_rules! server_handle {
    ($server:ident, env: $var:ident, user: $user:literal) => {
        impl $server {
            #[doc = concat!("The external server named by [`", stringify!($var), "`] if that is set, else a")]
            /// private server as from [`Self::start_owned`].
            ///
            /// # Errors
            ///
            /// As [`Self::external`] or [`Self::start_owned`].
            pub fn from_env() -> Result<Self, Error> {
                match std::env::var($var) {
                    Ok(url) if !url.is_empty() => Self::external(&url),
                    _ => Self::start_owned(),
                }
            }

            /// The URL of database `database` on this server.
            pub fn url_for(&self, database: &str) -> String {
                self.endpoint.url_for(Some(database))
            }

            /// The host the server listens on (`127.0.0.1` for private servers).
            pub fn host(&self) -> &str {
                &self.endpoint.host
            }

            /// The TCP port.
            pub fn port(&self) -> u16 {
                self.endpoint.port
            }

            #[doc = concat!("The user the SQL helpers log in as (`", $user, "` for private servers).")]
            pub fn user(&self) -> &str {
                &self.endpoint.user
            }

            /// The data directory of a private server; `None` for an external one.
            pub fn data_dir(&self) -> Option<&std::path::Path> {
                self.server.as_ref().map(|s| s.instance.data.as_path())
            }

            /// The log file of a private server; `None` for an external one.
            pub fn log_file(&self) -> Option<&std::path::Path> {
                self.server.as_ref().map(|s| s.instance.log.as_path())
            }

            /// Whether this handle points at an external server.
            pub fn is_external(&self) -> bool {
                self.server.is_none()
            }

            /// Creates a database named by [`unique_name`](crate::unique_name)`(prefix)` and
            /// returns the name.
            ///
            /// # Errors
            ///
            /// As [`Self::exec`].
            pub fn create_unique_database(&self, prefix: &str) -> Result<String, Error> {
                let name = crate::unique_name(prefix);
                self.create_database(&name)?;
                Ok(name)
            }

            /// Starts a stopped or killed private server again on the same data directory
            /// and port.
            ///
            /// # Errors
            ///
            /// Fails for an external server, one that is running, or if it does not come up.
            pub fn start(&mut self) -> Result<(), Error> {
                self.private_mut("start")?;
                self.launch(true)
            }

            /// Stops the private server (if running) and starts it again.
            ///
            /// # Errors
            ///
            /// As [`Self::stop`] and [`Self::start`].
            pub fn restart(&mut self) -> Result<(), Error> {
                if self.is_running() {
                    self.stop()?;
                }
                self.start()
            }

            fn private_mut(&mut self, operation: &'static str) -> Result<&mut Private, Error> {
                let url = self.endpoint.redacted();
                self.server
                    .as_mut()
                    .ok_or(Error::External { operation, url })
            }
        }

        impl std::fmt::Debug for $server {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let mut debug = f.debug_struct(stringify!($server));
                debug.field("url", &self.endpoint);
                if let Some(private) = &self.server {
                    debug.field("dir", &private.instance.dir());
                }
                debug.finish_non_exhaustive()
            }
        }
    };
}

pub(crate) use server_handle;

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::layout;

    const SIGNALS: Signals = Signals {
        stop: Signal::Terminate,
        kill: Signal::Kill,
        on_parent_death: Signal::Kill,
    };

    fn shell(script: &'static str) -> impl Fn(u16) -> Result<Command, Error> {
        move |_port| {
            let mut command = Command::new("sh");
            command.args(["-c", script]);
            Ok(command)
        }
    }

    #[test]
    fn startup_failure_shows_the_log_tail() {
        let mut instance = Instance::new("fake", layout::instance_dir("t").unwrap(), SIGNALS);
        let err = instance
            .launch(shell("echo 'fatal: no data directory' >&2; exit 3"), |_| {
                false
            })
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Startup { .. }), "{text}");
        assert!(text.starts_with("fake server on port "), "{text}");
        assert!(text.contains("exited during startup"), "{text}");
        assert!(text.contains("fatal: no data directory"), "{text}");
    }

    #[test]
    fn taken_ports_are_retried() {
        let mut instance = Instance::new("fake", layout::instance_dir("t").unwrap(), SIGNALS);
        let err = instance
            .launch(
                shell("echo 'bind: Address already in use' >&2; exit 1"),
                |_| false,
            )
            .unwrap_err();
        let log = fs::read_to_string(&instance.log).unwrap();
        assert_eq!(log.matches("Address already in use").count(), PORT_ATTEMPTS);
        assert!(matches!(err, Error::Startup { .. }));
    }

    #[test]
    fn lifecycle_of_a_polled_process() {
        let dir = layout::instance_dir("t").unwrap();
        let mut instance = Instance::new("fake", dir.clone(), SIGNALS);
        let polls = Cell::new(0);
        let probe = |_port| {
            polls.set(polls.get() + 1);
            polls.get() >= 3
        };
        instance.launch(shell("exec sleep 60"), probe).unwrap();
        assert_eq!(polls.get(), 3);
        assert!(instance.is_running());
        let pid = instance.pid().unwrap();
        instance.stop().unwrap();
        assert!(!instance.is_running());
        assert!(matches!(instance.stop(), Err(Error::State { .. })));
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
        instance.relaunch(shell("exec sleep 60"), |_| true).unwrap();
        assert!(matches!(
            instance.relaunch(shell("exec sleep 60"), |_| true),
            Err(Error::State { .. })
        ));
        let pid = instance.pid().unwrap();
        drop(instance);
        assert!(!dir.exists());
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }
}
