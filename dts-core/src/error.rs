//! The classified error every dts crate converts into.

use std::fmt;

/// A boxed error source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong, in categories a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The task file or options are malformed or inconsistent.
    Config,
    /// A server could not be reached, or the connection was lost.
    Connection,
    /// The account lacks a privilege the task needs.
    Privilege,
    /// A precheck failed; the task was not started.
    Precheck,
    /// An object or type that dts cannot migrate.
    Unsupported,
    /// A value the target cannot hold.
    Value,
    /// An object already exists in the target.
    Conflict,
    /// The server rejected a statement.
    Database,
    /// A transient server condition (deadlock, lock timeout, serialization failure).
    Transient,
    /// The task was asked to stop.
    Interrupted,
    /// Local file or process I/O failed.
    Io,
    /// A bug in dts.
    Internal,
}

impl ErrorKind {
    fn as_str(&self) -> &'static str {
        match self {
            Self::Config => "configuration error",
            Self::Connection => "connection error",
            Self::Privilege => "missing privilege",
            Self::Precheck => "precheck failed",
            Self::Unsupported => "unsupported",
            Self::Value => "bad value",
            Self::Conflict => "conflict",
            Self::Database => "database error",
            Self::Transient => "transient database error",
            Self::Interrupted => "interrupted",
            Self::Io => "i/o error",
            Self::Internal => "internal error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error with a kind, a message naming the object it concerns, and an optional cause.
///
/// Messages are lowercase, without a trailing period, and name the object:
/// ``unsupported type `geometry` for column `shop.orders.location` ``. The cause is kept in
/// [`std::error::Error::source`], not repeated in the message.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<BoxError>,
}

impl Error {
    /// A new error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying cause.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Prefixes the message with context, e.g. the table being copied.
    #[must_use]
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// The error's category.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the cause.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether retrying the same operation may succeed (lost connection, deadlock, lock
    /// timeout, serialization failure).
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::Connection | ErrorKind::Transient)
    }

    /// Whether the error is about a value the target cannot hold.
    pub fn is_bad_value(&self) -> bool {
        self.kind == ErrorKind::Value
    }

    /// The message followed by every cause in the chain, separated by `: `.
    pub fn report(&self) -> String {
        let mut out = self.to_string();
        let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(self);
        while let Some(e) = cur {
            out.push_str(": ");
            out.push_str(&e.to_string());
            cur = e.source();
        }
        out
    }

    /// Shorthand for a [`ErrorKind::Config`] error.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    /// Shorthand for a [`ErrorKind::Internal`] error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::new(ErrorKind::Io, "i/o failed").with_source(e)
    }
}

/// A connection URL with its password replaced by `***`, for messages and logs.
///
/// ```
/// assert_eq!(
///     dts_core::error::redact_url("mysql://app:s3cret@db:3306/shop"),
///     "mysql://app:***@db:3306/shop"
/// );
/// ```
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// Shorthand for `std::result::Result<T, dts_core::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_chains_causes_and_classifies() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let e = Error::new(ErrorKind::Connection, "lost connection to source")
            .with_source(io)
            .context("table `shop.orders`");
        assert!(e.is_retryable());
        assert_eq!(
            e.report(),
            "connection error: table `shop.orders`: lost connection to source: reset by peer"
        );
        assert!(!Error::config("bad").is_retryable());
    }
}
