//! The error type of the testkit.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;

/// Everything that can go wrong while starting, using or stopping a test server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file system or process operation failed.
    #[error("could not {action}")]
    Io {
        /// What was being done, e.g. ``create directory `/tmp/x` ``.
        action: String,
        /// The operating system error.
        #[source]
        source: io::Error,
    },

    /// A program the testkit needs is not installed.
    #[error("could not find `{program}` (searched {searched})")]
    MissingProgram {
        /// The program name.
        program: String,
        /// Where it was looked for.
        searched: String,
    },

    /// A command-line program exited unsuccessfully.
    #[error("`{program}` failed ({status}): {stderr}")]
    Command {
        /// The program that failed, e.g. `mariadb` or `psql`.
        program: String,
        /// Its exit status.
        status: ExitStatus,
        /// Its standard error output, trimmed.
        stderr: String,
    },

    /// A server exited during startup or did not accept connections in time.
    #[error("{server} {reason}; last lines of `{}`:\n{log_tail}", log.display())]
    Startup {
        /// The server, e.g. `mariadb server on port 40123`.
        server: String,
        /// What happened, e.g. `exited during startup (exit status: 1)`.
        reason: String,
        /// The server's log file.
        log: PathBuf,
        /// The last lines of the log file.
        log_tail: String,
    },

    /// A connection URL could not be parsed.
    #[error("invalid connection url `{url}`: {reason}")]
    InvalidUrl {
        /// The URL, with any password replaced by `***`.
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Test certificates could not be generated.
    #[error("could not generate test certificates: {reason}")]
    Certificates {
        /// What went wrong.
        reason: String,
    },

    /// The operation needs a server started by the testkit, but the handle points at an
    /// external server.
    #[error("cannot {operation} the external server at `{url}`")]
    External {
        /// The refused operation, e.g. `kill`.
        operation: &'static str,
        /// The server's URL, without password.
        url: String,
    },

    /// The server process is in the wrong state for the operation.
    #[error("cannot {operation} {server}: it is {state}")]
    State {
        /// The refused operation, e.g. `start`.
        operation: &'static str,
        /// The server, e.g. `mariadb server on port 40123`.
        server: String,
        /// Its state: `running` or `not running`.
        state: &'static str,
    },
}

impl Error {
    /// An [`Error::Io`] for `action`.
    pub(crate) fn io(action: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            action: action.into(),
            source,
        }
    }
}

/// Extension to attach an action description to `io::Result`s.
pub(crate) trait IoContext<T> {
    /// Maps an I/O error to [`Error::Io`] with the action built by `action`.
    fn context(self, action: impl FnOnce() -> String) -> Result<T, Error>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, action: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|source| Error::io(action(), source))
    }
}

/// The error and its sources joined with `: `, for panic messages.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
