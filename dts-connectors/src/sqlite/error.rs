//! `rusqlite` errors as classified [`dts_core::Error`]s.

use dts_core::{Error, ErrorKind};
use rusqlite::ErrorCode;

/// A `rusqlite` error as a [`dts_core::Error`] saying what was being done: `SQLITE_BUSY` and
/// `SQLITE_LOCKED` are transient, open errors and I/O errors connection errors, the rest
/// database errors.
pub fn sqlite_error(doing: impl std::fmt::Display, e: rusqlite::Error) -> Error {
    let kind = match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => ErrorKind::Transient,
        Some(ErrorCode::CannotOpen | ErrorCode::NotADatabase | ErrorCode::SystemIoFailure) => {
            ErrorKind::Connection
        }
        _ => ErrorKind::Database,
    };
    Error::new(kind, doing.to_string()).with_source(e)
}
