//! Mapping `tokio-postgres` errors onto classified [`dts_core::Error`]s by SQLSTATE.

use dts_core::{Error, ErrorKind};

/// Classifies a `tokio-postgres` error by SQLSTATE, keeping it as the source. `what` names
/// the operation or object.
pub fn map_error(e: tokio_postgres::Error, what: impl std::fmt::Display) -> Error {
    let kind = match e.code().map(|c| c.code()) {
        Some(code) if code.starts_with("08") => ErrorKind::Connection,
        Some(code) if code.starts_with("28") => ErrorKind::Privilege,
        Some("42501") => ErrorKind::Privilege,
        Some("40001" | "40P01" | "55P03") => ErrorKind::Transient,
        Some("57P01" | "57P02" | "57P03" | "53300") => ErrorKind::Connection,
        Some("42P07" | "42P06" | "42710") => ErrorKind::Conflict,
        Some("22021" | "22003" | "22008" | "22007" | "22P02" | "22001" | "22P05") => {
            ErrorKind::Value
        }
        Some(_) => ErrorKind::Database,
        None if e.is_closed() => ErrorKind::Connection,
        None => {
            // Errors without SQLSTATE are client-side: I/O, protocol, or conversion.
            let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
            let mut io = false;
            while let Some(s) = src {
                io |= s.is::<std::io::Error>();
                src = s.source();
            }
            if io {
                ErrorKind::Connection
            } else {
                ErrorKind::Database
            }
        }
    };
    Error::new(kind, what.to_string()).with_source(e)
}
