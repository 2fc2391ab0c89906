//! What a switchover does to a server beyond replication: stopping the application's writes
//! (and allowing them again), and running the statements that move identity counters.
//!
//! - **MySQL/MariaDB**: `SET GLOBAL read_only = ON`. It stops every account without the
//!   `READ_ONLY ADMIN` privilege (MariaDB ≥ 10.5.2; `ALL PRIVILEGES ON *.*` includes it, and
//!   on MariaDB 10.11 `SUPER` alone does not) or, on MySQL, without `SUPER` /
//!   `CONNECTION_ADMIN`; replication threads and temporary tables are not stopped either
//!   (verified on MariaDB 10.11: an account with `SUPER` only, or with every privilege on the
//!   database only, is refused; `root` and an account with `READ_ONLY ADMIN` still write).
//!   On MariaDB 10.11 setting `read_only` itself needs `READ_ONLY ADMIN` (`SUPER` is refused),
//!   so the locking account always keeps writing; on MySQL it may not.
//! - **PostgreSQL**: `ALTER DATABASE … SET default_transaction_read_only = on`, which new
//!   sessions take, with the locking account exempted (`ALTER ROLE CURRENT_USER IN DATABASE …
//!   SET default_transaction_read_only = off`, which wins over the database's setting) so
//!   that dts keeps writing, then every client session of another role in the database is
//!   ended (a session keeps the setting it started with). A session may still turn the
//!   setting off itself (`SET default_transaction_read_only = off`): it stops an application
//!   that does not, not a determined one.

use dts_core::{Engine, Error, Result};

#[cfg(feature = "mysql")]
use mysql_async::prelude::Queryable as _;

/// What [`lock_writes`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteLock {
    /// The statements that stopped the writes, as run.
    pub statements: Vec<String>,
    /// The statements that undo them (what [`unlock_writes`] runs).
    pub undo: Vec<String>,
    /// Who can still write.
    pub exempt: String,
    /// Whether the locking account itself can still write (so that a reverse task
    /// connecting with it writes into the locked server).
    pub self_exempt: bool,
    /// Sessions ended because they would still have written (PostgreSQL).
    pub ended_sessions: u64,
}

#[cfg(feature = "mysql")]
async fn mysql_conn(url: &str) -> Result<mysql_async::Conn> {
    url.parse::<crate::mysql::MySqlConnectOptions>()?
        .connect()
        .await
}

/// Stops the application's writes on the server at `url` (see the module documentation for
/// what is and is not stopped).
///
/// # Errors
///
/// Connection errors; [`dts_core::ErrorKind::Privilege`] when the account may not change the
/// setting (MySQL: `SUPER`/`SYSTEM_VARIABLES_ADMIN`; PostgreSQL: owning the database).
pub async fn lock_writes(url: &str) -> Result<WriteLock> {
    match Engine::from_url(url)? {
        #[cfg(feature = "mysql")]
        Engine::MySql => {
            let mut conn = mysql_conn(url).await?;
            let sql = "SET GLOBAL read_only = ON";
            conn.query_drop(sql)
                .await
                .map_err(|e| crate::mysql::map_error(e, "making the server read-only"))?;
            let self_exempt = mysql_self_exempt(&mut conn).await?;
            Ok(WriteLock {
                statements: vec![sql.to_string()],
                undo: vec!["SET GLOBAL read_only = OFF".to_string()],
                exempt: "accounts with READ_ONLY ADMIN (MariaDB; `ALL PRIVILEGES ON *.*` \
                         includes it, SUPER alone does not on MariaDB 10.11) or SUPER / \
                         CONNECTION_ADMIN (MySQL), and replication threads, can still write"
                    .to_string(),
                self_exempt,
                ended_sessions: 0,
            })
        }
        #[cfg(feature = "postgres")]
        Engine::Postgres => {
            let client = crate::postgres::connect_client(url).await?;
            let row = client
                .query_one(
                    "SELECT format('%I', current_database()), current_user::text",
                    &[],
                )
                .await
                .map_err(|e| crate::postgres::map_error(e, "reading the database name"))?;
            let (db, role): (String, String) = (row.get(0), row.get(1));
            let statements = vec![
                format!("ALTER DATABASE {db} SET default_transaction_read_only = on"),
                format!(
                    "ALTER ROLE CURRENT_USER IN DATABASE {db} SET default_transaction_read_only = off"
                ),
            ];
            for sql in &statements {
                client
                    .batch_execute(sql)
                    .await
                    .map_err(|e| crate::postgres::map_error(e, format!("running `{sql}`")))?;
            }
            let ended: i64 = client
                .query_one(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) \
                     FROM pg_stat_activity WHERE datname = current_database() \
                     AND pid <> pg_backend_pid() AND backend_type = 'client backend' \
                     AND usename <> current_user",
                    &[],
                )
                .await
                .map_err(|e| crate::postgres::map_error(e, "ending the sessions that write"))?
                .get(0);
            Ok(WriteLock {
                statements,
                undo: pg_undo(&db),
                exempt: format!(
                    "sessions of role `{role}` (dts's own) and any session that sets \
                     default_transaction_read_only = off itself can still write"
                ),
                self_exempt: true,
                ended_sessions: u64::try_from(ended).unwrap_or(0),
            })
        }
        #[allow(unreachable_patterns)]
        other => Err(unsupported(other)),
    }
}

#[cfg(feature = "postgres")]
fn pg_undo(db: &str) -> Vec<String> {
    vec![
        format!("ALTER DATABASE {db} RESET default_transaction_read_only"),
        format!("ALTER ROLE CURRENT_USER IN DATABASE {db} RESET default_transaction_read_only"),
    ]
}

/// Whether the connected MySQL/MariaDB account writes into a read-only server.
#[cfg(feature = "mysql")]
async fn mysql_self_exempt(conn: &mut mysql_async::Conn) -> Result<bool> {
    let version: Option<String> = conn
        .query_first("SELECT VERSION()")
        .await
        .map_err(|e| crate::mysql::map_error(e, "reading the server version"))?;
    let (a, b) = if version.unwrap_or_default().contains("MariaDB") {
        ("READ_ONLY ADMIN", "READ_ONLY ADMIN")
    } else {
        ("SUPER", "CONNECTION_ADMIN")
    };
    let n: Option<i64> = conn
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.USER_PRIVILEGES \
             WHERE PRIVILEGE_TYPE IN (?, ?) AND GRANTEE = CONCAT('''', \
             SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', \
             SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')",
            (a, b),
        )
        .await
        .map_err(|e| crate::mysql::map_error(e, "reading the account's privileges"))?;
    Ok(n.unwrap_or(0) > 0)
}

/// Allows writes again on the server at `url` (undoes [`lock_writes`]; a server that was not
/// locked is left as it is). Returns the statements run.
///
/// # Errors
///
/// As [`lock_writes`].
pub async fn unlock_writes(url: &str) -> Result<Vec<String>> {
    match Engine::from_url(url)? {
        #[cfg(feature = "mysql")]
        Engine::MySql => {
            let mut conn = mysql_conn(url).await?;
            let on: Option<i64> = conn
                .query_first("SELECT @@GLOBAL.read_only")
                .await
                .map_err(|e| crate::mysql::map_error(e, "reading read_only"))?;
            if on.unwrap_or(0) == 0 {
                return Ok(Vec::new());
            }
            let sql = "SET GLOBAL read_only = OFF";
            conn.query_drop(sql)
                .await
                .map_err(|e| crate::mysql::map_error(e, "making the server writable"))?;
            Ok(vec![sql.to_string()])
        }
        #[cfg(feature = "postgres")]
        Engine::Postgres => {
            let client = crate::postgres::connect_client(url).await?;
            let row = client
                .query_one(
                    "SELECT format('%I', current_database()), EXISTS (SELECT 1 \
                     FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase \
                     WHERE d.datname = current_database() \
                     AND 'default_transaction_read_only=on' = ANY (s.setconfig))",
                    &[],
                )
                .await
                .map_err(|e| crate::postgres::map_error(e, "reading the database settings"))?;
            let (db, locked): (String, bool) = (row.get(0), row.get(1));
            if !locked {
                return Ok(Vec::new());
            }
            let undo = pg_undo(&db);
            for sql in &undo {
                client
                    .batch_execute(sql)
                    .await
                    .map_err(|e| crate::postgres::map_error(e, format!("running `{sql}`")))?;
            }
            Ok(undo)
        }
        #[allow(unreachable_patterns)]
        other => Err(unsupported(other)),
    }
}

/// Runs `statements` in order on the server at `url`, each on its own (the statements that
/// move identity counters past the values in use: `setval(…)`, `ALTER TABLE … AUTO_INCREMENT
/// = …`).
///
/// # Errors
///
/// Connection errors; the failing statement's error, naming it.
pub async fn run_statements(url: &str, statements: &[String]) -> Result<()> {
    match Engine::from_url(url)? {
        #[cfg(feature = "mysql")]
        Engine::MySql => {
            let mut conn = mysql_conn(url).await?;
            for sql in statements {
                conn.query_drop(sql.as_str())
                    .await
                    .map_err(|e| crate::mysql::map_error(e, format!("running `{sql}`")))?;
            }
            Ok(())
        }
        #[cfg(feature = "postgres")]
        Engine::Postgres => {
            let client = crate::postgres::connect_client(url).await?;
            for sql in statements {
                client
                    .batch_execute(sql)
                    .await
                    .map_err(|e| crate::postgres::map_error(e, format!("running `{sql}`")))?;
            }
            Ok(())
        }
        #[allow(unreachable_patterns)]
        other => Err(unsupported(other)),
    }
}

#[allow(dead_code)]
fn unsupported(engine: Engine) -> Error {
    Error::new(
        dts_core::ErrorKind::Unsupported,
        format!("switchover on {engine} is not supported by this build"),
    )
}
