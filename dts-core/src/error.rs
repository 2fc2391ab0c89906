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

/// Which end of a migration an error comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum End {
    /// The database read from.
    Source,
    /// The database written to (which also keeps the task's state).
    Target,
}

impl End {
    fn as_str(self) -> &'static str {
        match self {
            Self::Source => "source",
            Self::Target => "target",
        }
    }
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error with a kind, a message naming the object it concerns, and an optional cause.
///
/// Messages are lowercase, without a trailing period, and name the object:
/// ``unsupported type `geometry` for column `shop.orders.location` ``. The cause is kept in
/// [`std::error::Error::source`], not repeated in the message.
///
/// Where it is known, an error also says which [`End`] of the migration failed; `Display`
/// and [`Error::report`] then start with `source: ` or `target: `, unless the message
/// already names that end (``lost connection to source``). An error that stands for
/// several failures at once (parallel workers) carries the others as [`Error::related`].
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    end: Option<End>,
    message: String,
    source: Option<BoxError>,
    related: Vec<Error>,
}

impl Error {
    /// A new error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            end: None,
            message: message.into(),
            source: None,
            related: Vec::new(),
        }
    }

    /// Records that the error comes from `end`, unless an end is recorded already: an error
    /// the source raised stays a source error when it passes through a target's sink (a
    /// chunk sink consumes the source's batches and returns their errors).
    #[must_use]
    pub fn with_end(mut self, end: End) -> Self {
        self.end.get_or_insert(end);
        self
    }

    /// Attaches further errors that happened alongside this one (e.g. the failures of the
    /// other workers of a parallel copy); this error stays the primary one and keeps its
    /// kind. Errors related to the attached ones are attached too, as one flat list.
    #[must_use]
    pub fn with_related(mut self, errors: impl IntoIterator<Item = Error>) -> Self {
        for mut e in errors {
            let nested = std::mem::take(&mut e.related);
            self.related.push(e);
            self.related.extend(nested);
        }
        self
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

    /// The message, without the cause and without the end.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Which end of the migration failed, when known.
    pub fn end(&self) -> Option<End> {
        self.end
    }

    /// The errors that happened alongside this one, in the order they happened; empty for
    /// a single failure. [`Error::report`] lists them after this error.
    pub fn related(&self) -> &[Error] {
        &self.related
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

    /// The message followed by every cause in the chain, separated by `: `; then, for an
    /// error with [`Error::related`] errors, one more line `also: …` with the report of each.
    pub fn report(&self) -> String {
        let mut out = self.chain();
        for e in &self.related {
            out.push_str("\nalso: ");
            out.push_str(&e.chain());
        }
        out
    }

    /// `Display` followed by every cause in the chain.
    fn chain(&self) -> String {
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
        if let Some(end) = self.end.filter(|e| !names(&self.message, e.as_str())) {
            write!(f, "{end}: ")?;
        }
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// Whether `message` has the word `word` outside backquoted names (so that a table called
/// `source` does not count).
fn names(message: &str, word: &str) -> bool {
    message
        .split('`')
        .step_by(2)
        .flat_map(|text| text.split(|c: char| !c.is_alphanumeric() && c != '_'))
        .any(|w| w == word)
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
        assert_eq!(e.end(), None);
    }

    #[test]
    fn the_end_prefixes_display_and_report() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = Error::new(ErrorKind::Connection, "cannot connect to `db:5432`")
            .with_source(io)
            .with_end(End::Target);
        assert_eq!(e.end(), Some(End::Target));
        assert_eq!(
            e.to_string(),
            "target: connection error: cannot connect to `db:5432`"
        );
        assert_eq!(
            e.report(),
            "target: connection error: cannot connect to `db:5432`: refused"
        );
        assert_eq!(e.message(), "cannot connect to `db:5432`");
        assert!(e.is_retryable());
        assert_eq!(e.kind(), ErrorKind::Connection);

        // Context keeps the end.
        let e = e.context("table `shop.orders`");
        assert_eq!(
            e.to_string(),
            "target: connection error: table `shop.orders`: cannot connect to `db:5432`"
        );
    }

    #[test]
    fn the_first_end_recorded_stays() {
        let e = Error::new(ErrorKind::Database, "reading chunk 3 of `shop.orders`")
            .with_end(End::Source)
            .with_end(End::Target);
        assert_eq!(e.end(), Some(End::Source));
        assert_eq!(
            e.to_string(),
            "source: database error: reading chunk 3 of `shop.orders`"
        );
    }

    #[test]
    fn a_message_naming_its_end_is_not_prefixed() {
        let e = Error::new(ErrorKind::Connection, "the source closed the binlog stream")
            .with_end(End::Source);
        assert_eq!(
            e.to_string(),
            "connection error: the source closed the binlog stream"
        );
        let e =
            Error::new(ErrorKind::Precheck, "target version 9.6 is too old").with_end(End::Target);
        assert_eq!(
            e.to_string(),
            "precheck failed: target version 9.6 is too old"
        );

        // Naming the other end, or a table called `source`, does not count.
        let e = Error::new(
            ErrorKind::Database,
            "recording the source schema of task `t`",
        )
        .with_end(End::Target);
        assert_eq!(
            e.to_string(),
            "target: database error: recording the source schema of task `t`"
        );
        let e = Error::new(ErrorKind::Database, "reading `shop.source`").with_end(End::Source);
        assert_eq!(
            e.to_string(),
            "source: database error: reading `shop.source`"
        );
        assert!(!names("sources and targets", "source"));
    }

    #[test]
    fn related_errors_follow_in_the_report() {
        let first = Error::new(ErrorKind::Database, "copying chunk 1 of `shop.a`")
            .with_end(End::Target)
            .with_source(std::io::Error::other("disk full"));
        let second =
            Error::new(ErrorKind::Connection, "copying chunk 7 of `shop.b`").with_end(End::Source);
        let third = Error::new(ErrorKind::Value, "column `shop.c`.`x` at key (id=1)");
        let e = first.with_related([second.with_related([third])]);
        assert_eq!(e.kind(), ErrorKind::Database);
        assert!(!e.is_retryable());
        assert_eq!(e.related().len(), 2);
        assert!(e.related().iter().all(|r| r.related().is_empty()));
        assert_eq!(
            e.to_string(),
            "target: database error: copying chunk 1 of `shop.a`"
        );
        assert_eq!(
            e.report(),
            "target: database error: copying chunk 1 of `shop.a`: disk full\n\
             also: source: connection error: copying chunk 7 of `shop.b`\n\
             also: bad value: column `shop.c`.`x` at key (id=1)"
        );
    }
}
