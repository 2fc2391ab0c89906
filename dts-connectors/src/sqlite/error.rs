//! `sqlx` errors as classified [`dts_core::Error`]s.

use dts_core::{Error, ErrorKind};

/// A `sqlx` error as a [`dts_core::Error`] saying what was being done: `SQLITE_BUSY` and
/// `SQLITE_LOCKED` are transient, I/O and open errors connection errors, the rest database
/// errors.
pub fn sqlite_error(doing: impl std::fmt::Display, e: sqlx::Error) -> Error {
    let kind = match &e {
        sqlx::Error::Database(d) => match d.code().as_deref() {
            // SQLITE_BUSY, SQLITE_LOCKED and their extended codes.
            Some(c) if c == "5" || c == "6" || c.ends_with("05") || c.ends_with("06") => {
                ErrorKind::Transient
            }
            // SQLITE_CANTOPEN, SQLITE_NOTADB.
            Some("14" | "26") => ErrorKind::Connection,
            _ => ErrorKind::Database,
        },
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => ErrorKind::Connection,
        _ => ErrorKind::Database,
    };
    Error::new(kind, doing.to_string()).with_source(e)
}
