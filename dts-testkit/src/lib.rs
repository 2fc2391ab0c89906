//! Private MariaDB and PostgreSQL servers for integration tests, benchmarks and demos.
//!
//! The testkit starts servers from the binaries installed on the machine (`mariadbd`,
//! `postgres`), each on a free loopback port with its own data directory, configured the way
//! dts needs them: MariaDB with a row-based binary log carrying full row images and
//! metadata, PostgreSQL with `wal_level=logical`. It is synchronous and uses no database
//! driver: the SQL helpers run the installed `mariadb` and `psql` clients.
//!
//! - [`mariadb()`] and [`postgres()`] return servers shared by the whole process (one pair
//!   per test binary). Each test creates its own database, named by [`unique_name`].
//! - [`MariaDb::start_owned`] and [`Postgres::start_owned`] start servers owned by the
//!   caller, which can stop, kill and restart them; dropping one removes it.
//! - [`MariaDb::start_owned_tls`] and [`Postgres::start_owned_tls`] start owned servers that
//!   also accept TLS, with certificates from [`TestCertificates`] (a test authority, a
//!   server and a client certificate); `create_tls_user` on either makes accounts that may
//!   connect only over TLS, or only with a client certificate ([`TlsAccount`]).
//! - [`FaultProxy`] is a TCP proxy to put between a client and a server, which cuts,
//!   stalls, slows or refuses the connections through it on command (fault-injection
//!   tests).
//! - If `DTS_TEST_MYSQL_URL` or `DTS_TEST_PG_URL` is set, the shared accessors return
//!   handles to those external servers instead.
//!
//! Starting is fast: a data directory is initialised once per engine into a template under
//! the build directory (`target/dts-testkit/template-*`), and each server starts on a copy
//! of it. Servers never outlive the process that started them: the kernel signals them when
//! it exits, and directories left by dead processes are removed at the next start.
//!
//! ```no_run
//! use dts_testkit::{unique_name, Error};
//!
//! fn main() -> Result<(), Error> {
//!     let mysql = dts_testkit::mariadb();
//!     let db = unique_name("orders");
//!     mysql.create_database(&db)?;
//!     mysql.exec_in(&db, "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2);")?;
//!     assert_eq!(mysql.query_in(&db, "SELECT COUNT(*) FROM t")?, "2");
//!
//!     let pg = dts_testkit::postgres();
//!     pg.create_database(&db)?;
//!     assert_eq!(pg.query("SHOW wal_level")?, "logical");
//!     println!("source {} target {}", mysql.url_for(&db), pg.url_for(&db));
//!     Ok(())
//! }
//! ```
//!
//! This crate has no features. It needs Linux (`/proc`, `prctl`), the MariaDB server and
//! client, and the PostgreSQL server and `psql`.

mod endpoint;
mod error;
mod instance;
mod layout;
mod mariadb;
mod postgres;
mod process;
mod programs;
mod proxy;
mod tls;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

pub use error::Error;
pub use mariadb::{MariaDb, MYSQL_URL_VAR};
pub use postgres::{Postgres, PG_URL_VAR};
pub use proxy::{FaultProxy, Forwarding};
pub use tls::{TestCertificates, TlsAccount};

/// The MariaDB server shared by all tests of this process: the external server named by
/// `DTS_TEST_MYSQL_URL` if that is set, else a private server started on first call.
///
/// The private server is never dropped; it is killed when the process exits.
///
/// # Panics
///
/// Panics (on this and every later call) if the server cannot be started or reached.
pub fn mariadb() -> &'static MariaDb {
    static SHARED: OnceLock<Result<MariaDb, String>> = OnceLock::new();
    match SHARED.get_or_init(|| MariaDb::from_env().map_err(|e| error::chain(&e))) {
        Ok(server) => server,
        Err(message) => panic!("shared mariadb server unavailable: {message}"),
    }
}

/// The PostgreSQL server shared by all tests of this process: the external server named by
/// `DTS_TEST_PG_URL` if that is set, else a private server started on first call.
///
/// The private server is never dropped; it shuts down when the process exits.
///
/// # Panics
///
/// Panics (on this and every later call) if the server cannot be started or reached.
pub fn postgres() -> &'static Postgres {
    static SHARED: OnceLock<Result<Postgres, String>> = OnceLock::new();
    match SHARED.get_or_init(|| Postgres::from_env().map_err(|e| error::chain(&e))) {
        Ok(server) => server,
        Err(message) => panic!("shared postgres server unavailable: {message}"),
    }
}

/// A name unique to this process and call, `<prefix>_<pid>_<counter>`, for databases and
/// other objects that tests sharing a server must not collide on.
///
/// Use a lowercase ASCII prefix of letters, digits and `_` so that the name needs no quoting
/// in either engine; keep it under 40 bytes (PostgreSQL truncates names at 63).
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ() {
        let a = unique_name("t");
        let b = unique_name("t");
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("t_{}_", std::process::id())));
    }
}
