//! MySQL/MariaDB as a target: connections, what exists, prechecks, DDL with its step
//! records (`ddl`), the task state in a `dts_meta` database ([`MySqlStateStore`]), the
//! chunk sink writing with `LOAD DATA LOCAL INFILE` ([`MySqlChunkSink`]), the apply sink
//! of replication ([`MySqlApplySink`]), and verification's reader and repair sink
//! ([`MySqlTargetReader`], [`MySqlRepairSink`]).
//!
//! Every target session is set up the same way: `utf8mb4`, UTC time zone, long network
//! timeouts and `sql_mode = 'STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'`:
//! strict (a value the column cannot hold is an error, never a warning), zero dates
//! accepted as the source has them, an `AUTO_INCREMENT` column's 0 kept as 0, backslash
//! escapes on (the DDL's literals are quoted for them).

mod apply;
mod sink;
mod state;
mod verify;

use std::collections::BTreeSet;

use dts_core::{CheckStatus, PrecheckReport, Result, TableName};
use dts_schema::Statement;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};

use super::error::map_error;
use super::options::MySqlConnectOptions;

pub use apply::MySqlApplySink;
pub use sink::MySqlChunkSink;
pub use state::{migrate, MySqlStateStore, META_DATABASE, STATE_VERSION};
pub use verify::{MySqlRepairSink, MySqlTargetReader};

/// The `sql_mode` of every target session.
pub(crate) const SQL_MODE: &str =
    "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'";

/// The session set-up of every target connection.
const SETUP: &[&str] = &[
    "SET NAMES utf8mb4",
    "SET time_zone = '+00:00'",
    "SET SESSION net_read_timeout = 3600, net_write_timeout = 3600",
    SQL_MODE,
];

/// Driver options for target sessions at `url`: TLS settled by one connection (as
/// [`MySqlConnectOptions`] does it), then the target's session set-up, run again after
/// every reset of a pooled connection.
///
/// # Errors
///
/// Connection errors.
pub async fn session_opts(url: &str) -> Result<Opts> {
    let options: MySqlConnectOptions = url.parse()?;
    let (conn, opts) = options.connect_with_opts().await?;
    let _ = conn.disconnect().await;
    Ok(OptsBuilder::from_opts(opts)
        .setup(SETUP.iter().map(|s| (*s).to_string()).collect::<Vec<_>>())
        .into())
}

/// A MySQL or MariaDB target server, through one connection.
pub struct MySqlTarget {
    conn: tokio::sync::Mutex<Conn>,
    opts: Opts,
    version: String,
    is_mariadb: bool,
    major_minor: (u32, u32),
}

impl std::fmt::Debug for MySqlTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MySqlTarget")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl MySqlTarget {
    /// Connects to the target at `url` (`mysql://user:password@host:port`).
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub async fn connect(url: &str) -> Result<Self> {
        let opts = session_opts(url).await?;
        let mut conn = Conn::new(opts.clone())
            .await
            .map_err(|e| map_error(e, "cannot connect to target"))?;
        let version: String = conn
            .query_first("SELECT VERSION()")
            .await
            .map_err(|e| map_error(e, "reading target version"))?
            .unwrap_or_default();
        let is_mariadb = version.to_ascii_lowercase().contains("mariadb");
        let mut nums = version
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<u32>().unwrap_or(0));
        let major_minor = (nums.next().unwrap_or(0), nums.next().unwrap_or(0));
        Ok(Self {
            conn: tokio::sync::Mutex::new(conn),
            opts,
            version,
            is_mariadb,
            major_minor,
        })
    }

    /// The driver options of this target's sessions, for further connections.
    pub fn opts(&self) -> &Opts {
        &self.opts
    }

    /// The server version, e.g. `10.11.14-MariaDB-0+deb12u2`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// `target.version`: MariaDB 10.5 or later, MySQL 8.0 or later.
    pub fn precheck_version(&self, r: &mut PrecheckReport) {
        let (family, least) = if self.is_mariadb {
            ("MariaDB", (10, 5))
        } else {
            ("MySQL", (8, 0))
        };
        if self.major_minor >= least {
            r.pass("target.version", self.version.clone());
        } else {
            r.push(
                "target.version",
                CheckStatus::Fail,
                format!("target version {} is too old", self.version),
                format!(
                    "use {family} {}.{} or later as the target",
                    least.0, least.1
                ),
            );
        }
    }

    /// The tables (and views) that already exist in the named databases.
    ///
    /// # Errors
    ///
    /// Classified server errors.
    pub async fn existing_tables(&self, schemas: &[String]) -> Result<BTreeSet<TableName>> {
        if schemas.is_empty() {
            return Ok(BTreeSet::new());
        }
        let marks = vec!["?"; schemas.len()].join(",");
        let params: Vec<mysql_async::Value> = schemas.iter().map(|s| s.as_str().into()).collect();
        let rows: Vec<(String, String)> = self
            .conn
            .lock()
            .await
            .exec(
                format!(
                    "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
                     WHERE TABLE_SCHEMA IN ({marks})"
                ),
                params,
            )
            .await
            .map_err(|e| map_error(e, "listing target tables"))?;
        Ok(rows
            .into_iter()
            .map(|(s, t)| TableName::new(s, t))
            .collect())
    }

    /// `target.privileges` and `target.local_infile`: the account may create the target
    /// databases and tables, write them and add indexes and foreign keys; `LOAD DATA LOCAL`
    /// is allowed by the server.
    ///
    /// # Errors
    ///
    /// Classified server errors.
    pub async fn precheck_privileges(
        &self,
        r: &mut PrecheckReport,
        schemas: &[String],
        _existing: &BTreeSet<TableName>,
    ) -> Result<()> {
        let mut conn = self.conn.lock().await;
        let grants: Vec<String> = conn
            .query("SHOW GRANTS FOR CURRENT_USER()")
            .await
            .map_err(|e| map_error(e, "reading the target account's privileges"))?;
        let needed = [
            "CREATE",
            "ALTER",
            "INDEX",
            "REFERENCES",
            "INSERT",
            "SELECT",
            "DELETE",
        ];
        // Global grants, or grants on each target database and on `dts_meta`.
        let covers = |grant: &str, db: Option<&str>| {
            let g = grant.to_ascii_uppercase();
            let on_all = g.contains(" ON *.* ");
            let on_db = db.is_some_and(|db| {
                g.contains(&format!(
                    " ON `{}`.* ",
                    db.replace('`', "``").to_ascii_uppercase()
                ))
            });
            (on_all || on_db)
                && (g.contains("ALL PRIVILEGES") || needed.iter().all(|p| g.contains(p)))
        };
        let missing: Vec<&str> = schemas
            .iter()
            .map(String::as_str)
            .chain(std::iter::once(state::META_DATABASE))
            .filter(|db| !grants.iter().any(|g| covers(g, Some(db))))
            .collect();
        if missing.is_empty() {
            r.pass(
                "target.privileges",
                "may create the target databases and tables, and write them",
            );
        } else {
            r.push(
                "target.privileges",
                CheckStatus::Fail,
                format!(
                    "the target account's grants do not show {} on {}",
                    needed.join(", "),
                    missing
                        .iter()
                        .map(|d| format!("`{d}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "GRANT ALL PRIVILEGES ON each target database and on `dts_meta` to the \
                 target account",
            );
        }
        let local: Option<(String, String)> = conn
            .query_first("SHOW GLOBAL VARIABLES LIKE 'local\\_infile'")
            .await
            .map_err(|e| map_error(e, "reading variable `local_infile`"))?;
        match local {
            Some((_, v)) if v.eq_ignore_ascii_case("ON") || v == "1" => {
                r.pass("target.local_infile", "LOAD DATA LOCAL INFILE is allowed");
            }
            _ => r.push(
                "target.local_infile",
                CheckStatus::Fail,
                "the target server refuses LOAD DATA LOCAL INFILE (local_infile = OFF), \
                 which the full load writes with",
                "SET GLOBAL local_infile = ON on the target (or local_infile=1 in its \
                 configuration)",
            ),
        }
        Ok(())
    }

    /// `target.binlog`: whether the applied changes go to the target's binlog as the task
    /// asks. With [`crate::TargetBinlog::Off`] the account must be allowed to turn its session's
    /// binlog off (`SET SESSION sql_log_bin = 0`, which needs `SUPER` or `BINLOG ADMIN` on
    /// MariaDB, `SYSTEM_VARIABLES_ADMIN` or `SESSION_VARIABLES_ADMIN` on MySQL).
    ///
    /// # Errors
    ///
    /// Classified server errors other than the missing privilege.
    pub async fn precheck_apply(
        &self,
        r: &mut PrecheckReport,
        binlog: crate::TargetBinlog,
    ) -> Result<()> {
        let mut conn = self.conn.lock().await;
        let log_bin: Option<(String, String)> = conn
            .query_first("SHOW GLOBAL VARIABLES LIKE 'log\\_bin'")
            .await
            .map_err(|e| map_error(e, "reading variable `log_bin`"))?;
        let logging = log_bin.is_some_and(|(_, v)| v.eq_ignore_ascii_case("ON") || v == "1");
        match binlog {
            _ if !logging => r.pass(
                "target.binlog",
                "the target keeps no binlog: applied changes are not logged there",
            ),
            crate::TargetBinlog::On => r.pass(
                "target.binlog",
                "applied changes are written to the target's binlog (its replicas follow)",
            ),
            crate::TargetBinlog::Off => match apply::binlog_off_refused(&mut conn).await? {
                None => r.pass(
                    "target.binlog",
                    "applied changes are kept out of the target's binlog",
                ),
                Some(refusal) => r.push(
                    "target.binlog",
                    CheckStatus::Fail,
                    format!(
                        "the target account may not keep the applied changes out of the \
                         target's binlog (SET SESSION sql_log_bin = 0: {refusal})"
                    ),
                    "GRANT BINLOG ADMIN (MariaDB) or SYSTEM_VARIABLES_ADMIN (MySQL) ON *.* to \
                     the target account, or set incremental.target_binlog = true",
                ),
            },
        }
        Ok(())
    }

    /// Runs `statements`, each recorded as `step:<hash>` once it ran, then records step
    /// `step` of task `task` done (with the `kept` tables as existing before the task).
    /// Nothing runs when the step is recorded already; a statement recorded already is not
    /// run again.
    ///
    /// MySQL commits each DDL statement on its own, so the step cannot be one transaction as
    /// on PostgreSQL: a run killed between a statement and its record leaves the object
    /// without its record (an index or foreign key is then found by its name and recorded;
    /// a table makes the next run's precheck name it as existing).
    ///
    /// # Errors
    ///
    /// Classified server errors naming the failing statement's object.
    pub async fn execute_step(
        &mut self,
        task: &str,
        step: &str,
        statements: &[&Statement],
        kept: &BTreeSet<TableName>,
    ) -> Result<()> {
        let conn = self.conn.get_mut();
        migrate(conn).await?;
        if state::is_done(conn, task, step).await? {
            return Ok(());
        }
        for st in statements {
            run_recorded(conn, task, &format!("{step}:{}", statement_key(st)), st).await?;
        }
        for t in kept {
            state::mark_done(conn, task, &state::kept_step(t)?).await?;
        }
        state::mark_done(conn, task, step).await
    }

    /// Runs `statement` and records step `step` of task `task` as done, unless the step is
    /// recorded already. Returns whether it ran. An index or foreign key that exists
    /// already under its name (a killed run made it and could not record it) is recorded
    /// as done without running.
    ///
    /// # Errors
    ///
    /// Classified server errors.
    pub async fn execute_once(
        &mut self,
        task: &str,
        step: &str,
        statement: &Statement,
    ) -> Result<bool> {
        let conn = self.conn.get_mut();
        migrate(conn).await?;
        run_recorded(conn, task, step, statement).await
    }

    /// Empties (`TRUNCATE TABLE`, one table a statement) or drops (`drop`, one statement)
    /// the existing target `tables` a task is told to prepare; a table another table
    /// references is refused by the server, naming it.
    ///
    /// # Errors
    ///
    /// Server errors, naming the tables.
    pub async fn prepare_tables(&self, tables: &[TableName], drop: bool) -> Result<()> {
        let names = qualified_names(tables);
        let statements: Vec<String> = if names.is_empty() {
            Vec::new()
        } else if drop {
            vec![format!("DROP TABLE {}", names.join(", "))]
        } else {
            names
                .iter()
                .map(|n| format!("TRUNCATE TABLE {n}"))
                .collect()
        };
        let mut conn = self.conn.lock().await;
        for sql in statements {
            conn.query_drop(&sql)
                .await
                .map_err(|e| map_error(e, format!("preparing target tables: `{sql}`")))?;
        }
        Ok(())
    }

    /// Updates the optimizer statistics of `tables`.
    ///
    /// # Errors
    ///
    /// Classified server errors.
    pub async fn analyze(&self, tables: &[TableName]) -> Result<()> {
        if tables.is_empty() {
            return Ok(());
        }
        let names = qualified_names(tables);
        self.conn
            .lock()
            .await
            .query_drop(format!("ANALYZE TABLE {}", names.join(", ")))
            .await
            .map_err(|e| map_error(e, "analysing target tables"))
    }
}

/// `tables` as qualified, quoted names.
fn qualified_names(tables: &[TableName]) -> Vec<String> {
    tables
        .iter()
        .map(|t| {
            format!(
                "{}.{}",
                dts_schema::quote_mysql_ident(&t.schema),
                dts_schema::quote_mysql_ident(&t.name)
            )
        })
        .collect()
}

/// Runs `statement` unless `step` of `task` is recorded, then records it.
async fn run_recorded(
    conn: &mut Conn,
    task: &str,
    step: &str,
    statement: &Statement,
) -> Result<bool> {
    if state::is_done(conn, task, step).await? {
        return Ok(false);
    }
    tracing::debug!(object = %statement.object, "executing ddl");
    match conn.query_drop(statement.sql.as_str()).await {
        Ok(()) => {}
        // Duplicate key name (index), duplicate foreign key name (MySQL 1826, MariaDB 1005
        // with errno 121): made by a killed run.
        Err(mysql_async::Error::Server(e))
            if [1061, 1826].contains(&e.code)
                || (e.code == 1005 && e.message.contains("errno: 121")) =>
        {
            tracing::info!(object = %statement.object, "exists already: recorded as done");
            state::mark_done(conn, task, step).await?;
            return Ok(false);
        }
        Err(e) => {
            return Err(map_error(
                e,
                format!("creating `{}` failed", statement.object),
            ))
        }
    }
    state::mark_done(conn, task, step).await?;
    Ok(true)
}

/// A stable key for a statement: FNV-1a over its SQL text.
fn statement_key(s: &Statement) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.sql.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}
