//! SQLite as a source, through `rusqlite` (the bundled libsqlite3).
//!
//! A source is a database file named by `sqlite://PATH` (`sqlite://data/app.db` relative to
//! the working directory, `sqlite:///srv/app.db` absolute) or `sqlite:PATH`. The file is
//! opened read-only (`SQLITE_OPEN_READONLY`, what `mode=ro` asks for); a missing file is an
//! error naming the path. Its one schema is `main` (select tables as `main.orders`).
//!
//! - [`SqliteSource`]: the schema ([`source`]: declared types, `INTEGER PRIMARY KEY`
//!   rowid aliases, `WITHOUT ROWID`, `AUTOINCREMENT` and its `sqlite_sequence` counter,
//!   indexes, foreign keys with their actions, defaults, generated columns, `STRICT`) and
//!   the prechecks ([`precheck`]: the value scan, and incremental migration refused:
//!   SQLite keeps no change log to follow).
//! - [`SqliteSnapshot`]: the consistent read ([`snapshot`]). In rollback-journal mode the
//!   first reader's read transaction holds a shared lock that keeps every writer from
//!   committing; the other readers begin theirs, each on its own connection, while it is
//!   held, so all see the same data and read in parallel. In WAL mode, where writers go on
//!   and each transaction sees the file as it was when it began, every reader shares ONE
//!   connection holding ONE read transaction, taking turns a page at a time (the target's
//!   writers still work in parallel). The transactions last until the last reader is
//!   dropped.

mod conn;
mod encode;
mod error;
pub mod precheck;
pub mod snapshot;
pub mod source;

pub use error::sqlite_error;
pub use snapshot::{SqliteSnapshot, SqliteSnapshotReader};
pub use source::{SqliteInfo, SqliteSource};

use std::path::PathBuf;

use dts_core::{Error, Result};

/// The path a `sqlite://PATH` or `sqlite:PATH` URL names.
///
/// # Errors
///
/// [`dts_core::ErrorKind::Config`] for another scheme, an empty path or URL options.
pub fn sqlite_path(url: &str) -> Result<PathBuf> {
    let rest = url
        .get(..7)
        .filter(|s| s.eq_ignore_ascii_case("sqlite:"))
        .map(|_| &url[7..])
        .ok_or_else(|| Error::config("a SQLite url starts with sqlite://"))?;
    let path = rest.strip_prefix("//").unwrap_or(rest);
    if path.contains('?') {
        return Err(Error::config(format!(
            "the SQLite url `{url}` has options; none are taken (the file is always opened \
             read-only)"
        )));
    }
    if path.is_empty() {
        return Err(Error::config(
            "the SQLite url names no file: use sqlite://PATH",
        ));
    }
    let decoded = dts_core::url::percent_decode(path)
        .ok_or_else(|| Error::config(format!("the SQLite url `{url}` has a malformed escape")))?;
    Ok(PathBuf::from(decoded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_relative_and_absolute_paths() {
        assert_eq!(
            sqlite_path("sqlite://data/app.db").unwrap(),
            PathBuf::from("data/app.db")
        );
        assert_eq!(
            sqlite_path("sqlite:///srv/app.db").unwrap(),
            PathBuf::from("/srv/app.db")
        );
        assert_eq!(
            sqlite_path("sqlite:app.db").unwrap(),
            PathBuf::from("app.db")
        );
        assert_eq!(
            sqlite_path("SQLITE:/a%20b.db").unwrap(),
            PathBuf::from("/a b.db")
        );
        assert!(sqlite_path("sqlite://").is_err());
        assert!(sqlite_path("sqlite://x.db?mode=rw").is_err());
        assert!(sqlite_path("mysql://x").is_err());
    }
}
