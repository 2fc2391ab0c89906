//! A SQLite connection shared by async callers: each use runs on tokio's blocking pool,
//! one at a time.
//!
//! `rusqlite` is synchronous and lends each row's values in place; a read runs a whole page
//! of rows in one blocking call, so no row crosses a thread on its own.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use dts_core::{Error, ErrorKind, Result};
use rusqlite::{Connection, OpenFlags};

use super::error::sqlite_error;

/// How long a statement waits for a writer's lock before it fails as transient.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// One connection to a SQLite file, shared; cloning shares it.
#[derive(Clone)]
pub(crate) struct Conn(Arc<Mutex<Connection>>);

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").finish_non_exhaustive()
    }
}

impl Conn {
    /// Opens `path` read-only (`SQLITE_OPEN_READONLY`): a missing file is a connection
    /// error naming the path.
    pub(crate) async fn open(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::new(
                ErrorKind::Connection,
                format!("SQLite file `{}` does not exist", path.display()),
            ));
        }
        let path = path.to_path_buf();
        let conn = blocking(move || {
            let conn = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .and_then(|c| c.busy_timeout(BUSY_TIMEOUT).map(|()| c))
            .map_err(|e| {
                sqlite_error(format!("cannot open SQLite file `{}`", path.display()), e)
            })?;
            Ok(conn)
        })
        .await?;
        Ok(Self(Arc::new(Mutex::new(conn))))
    }

    /// Runs `f` on the connection on the blocking pool, after any use already running.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let conn = self.0.clone();
        blocking(move || f(&conn.lock().unwrap_or_else(PoisonError::into_inner))).await
    }
}

/// `f` on tokio's blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("a SQLite call did not finish: {e}")))?
}
