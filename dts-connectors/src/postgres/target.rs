//! What a task does to a PostgreSQL target: connect, look at what exists, run DDL.

use std::collections::BTreeSet;

use dts_core::{Result, TableName};
use tokio_postgres::{Client, Transaction};

use super::error::map_error;
use super::options::PgConnectOptions;

/// One DDL statement with the name of the object it creates, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgStatement {
    /// The object the statement concerns, e.g. `shop.orders`.
    pub object: String,
    /// The SQL text.
    pub sql: String,
}

/// A PostgreSQL target server, through one connection.
pub struct PgTarget {
    client: Client,
    version: String,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Connects to PostgreSQL at `url` (options as [`PgConnectOptions`] parses them), spawns
/// the connection task on the current tokio runtime and sets the session up for lossless
/// reading and writing.
pub async fn connect_client(url: &str) -> Result<Client> {
    connect_client_with(&url.parse()?).await
}

/// As [`connect_client`], with parsed options.
pub async fn connect_client_with(options: &PgConnectOptions) -> Result<Client> {
    let client = options.connect().await?;
    client
        .batch_execute(
            "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 3; \
             SET bytea_output = 'hex'; SET IntervalStyle = 'postgres'; \
             SET standard_conforming_strings = on",
        )
        .await
        .map_err(|e| map_error(e, "setting up the target session"))?;
    Ok(client)
}

impl PgTarget {
    /// Connects to the target at `url` (`postgres://user:password@host:port/db`).
    pub async fn connect(url: &str) -> Result<Self> {
        let client = connect_client(url).await?;
        let version: String = client
            .query_one("SHOW server_version", &[])
            .await
            .map_err(|e| map_error(e, "reading target version"))?
            .get(0);
        Ok(Self { client, version })
    }

    /// The server version, e.g. `15.19 (Debian 15.19-0+deb12u1)`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The major version number.
    pub fn major_version(&self) -> u32 {
        self.version
            .split(|c: char| !c.is_ascii_digit())
            .find(|s| !s.is_empty())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// The underlying client, for callers that need more than this type offers.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The underlying client, mutably (for transactions).
    pub fn client_mut(&mut self) -> &mut Client {
        &mut self.client
    }

    /// The tables (and views, sequences, …) that already exist in the named schemas.
    pub async fn existing_tables(&self, schemas: &[String]) -> Result<BTreeSet<TableName>> {
        let rows = self
            .client
            .query(
                "SELECT n.nspname, c.relname FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = ANY($1) AND c.relkind IN ('r','p','v','m','f')",
                &[&schemas],
            )
            .await
            .map_err(|e| map_error(e, "listing target tables"))?;
        Ok(rows
            .iter()
            .map(|r| TableName::new(r.get::<_, String>(0), r.get::<_, String>(1)))
            .collect())
    }

    /// Whether the account may create schemas in the current database, and the current
    /// database's name.
    pub async fn can_create_schemas(&self) -> Result<(bool, String)> {
        let row = self
            .client
            .query_one(
                "SELECT has_database_privilege(current_database(), 'CREATE'), current_database()",
                &[],
            )
            .await
            .map_err(|e| map_error(e, "checking target privileges"))?;
        Ok((row.get(0), row.get(1)))
    }

    /// Schemas in `names` that exist but in which the account may not create objects.
    pub async fn schemas_without_create(&self, names: &[String]) -> Result<Vec<String>> {
        let rows = self
            .client
            .query(
                "SELECT nspname FROM pg_namespace \
                 WHERE nspname = ANY($1) AND NOT has_schema_privilege(oid, 'CREATE')",
                &[&names],
            )
            .await
            .map_err(|e| map_error(e, "checking target schema privileges"))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Whether the account may set `session_replication_role` (superuser, or on PostgreSQL
    /// 15+ a `SET` privilege on the parameter), which applying replicated changes needs.
    pub async fn can_set_replication_role(&self) -> Result<bool> {
        let superuser: bool = self
            .client
            .query_one(
                "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
                &[],
            )
            .await
            .map_err(|e| map_error(e, "checking target privileges"))?
            .get(0);
        if superuser || self.major_version() < 15 {
            return Ok(superuser);
        }
        let granted: bool = self
            .client
            .query_one(
                "SELECT has_parameter_privilege('session_replication_role', 'SET')",
                &[],
            )
            .await
            .map_err(|e| map_error(e, "checking target privileges"))?
            .get(0);
        Ok(granted)
    }

    /// Runs `statements` in one transaction: all of them take effect, or none. The error
    /// names the statement's object.
    pub async fn execute_in_transaction(&mut self, statements: &[PgStatement]) -> Result<()> {
        let tx = self.begin_with(statements).await?;
        tx.commit()
            .await
            .map_err(|e| map_error(e, "committing target ddl"))
    }

    /// Starts a transaction and runs `statements` in it; the error names the failing
    /// statement's object.
    async fn begin_with(&mut self, statements: &[PgStatement]) -> Result<Transaction<'_>> {
        let tx = self
            .client
            .transaction()
            .await
            .map_err(|e| map_error(e, "starting a target transaction"))?;
        for st in statements {
            tracing::debug!(object = %st.object, "executing ddl");
            tx.batch_execute(&st.sql)
                .await
                .map_err(|e| map_error(e, format!("creating `{}` failed", st.object)))?;
        }
        Ok(tx)
    }

    /// Runs one statement outside a transaction (e.g. `CREATE INDEX`).
    pub async fn execute(&self, statement: &PgStatement) -> Result<()> {
        self.client
            .batch_execute(&statement.sql)
            .await
            .map_err(|e| map_error(e, format!("creating `{}` failed", statement.object)))
    }

    /// Runs `statements` in one transaction together with the record that step `step` of
    /// task `task` is done and, for each table of `kept`, that it existed before the task:
    /// all of it takes effect, or none. Nothing runs when the step is recorded already (an
    /// earlier attempt committed), so a retry after a lost connection is safe. The error
    /// names the failing statement's object.
    ///
    /// # Errors
    ///
    /// Classified database errors.
    pub async fn execute_step(
        &mut self,
        task: &str,
        step: &str,
        statements: &[PgStatement],
        kept: &BTreeSet<TableName>,
    ) -> Result<()> {
        super::state::migrate(&self.client).await?;
        let tx = self
            .client
            .transaction()
            .await
            .map_err(|e| map_error(e, "starting a target transaction"))?;
        if !super::state::claim_step(&tx, task, step).await? {
            return tx
                .rollback()
                .await
                .map_err(|e| map_error(e, "ending a target transaction"));
        }
        for st in statements {
            tracing::debug!(object = %st.object, "executing ddl");
            tx.batch_execute(&st.sql)
                .await
                .map_err(|e| map_error(e, format!("creating `{}` failed", st.object)))?;
        }
        for t in kept {
            super::state::mark_done(&tx, task, &super::state::kept_step(t)?).await?;
        }
        tx.commit()
            .await
            .map_err(|e| map_error(e, "committing target ddl"))
    }

    /// Runs `statement` and records step `step` of task `task` as done, in one transaction,
    /// unless the step is recorded already. Returns whether it ran.
    ///
    /// The record is written first in the transaction, before the statement takes any lock:
    /// a transaction running the same step (e.g. left running on the server by a killed
    /// process) is waited for while this one holds no lock on the statement's table, and if
    /// it commits, the step is found done and nothing runs. So two runs of one statement
    /// never wait on each other's table locks (a deadlock), and a step done meanwhile is
    /// never run twice.
    ///
    /// # Errors
    ///
    /// Classified database errors.
    pub async fn execute_once(
        &mut self,
        task: &str,
        step: &str,
        statement: &PgStatement,
    ) -> Result<bool> {
        super::state::migrate(&self.client).await?;
        if super::state::is_done(&self.client, task, step).await? {
            return Ok(false);
        }
        let tx = self
            .client
            .transaction()
            .await
            .map_err(|e| map_error(e, "starting a target transaction"))?;
        if !super::state::claim_step(&tx, task, step).await? {
            tx.rollback()
                .await
                .map_err(|e| map_error(e, "ending a target transaction"))?;
            return Ok(false);
        }
        tx.batch_execute(&statement.sql)
            .await
            .map_err(|e| map_error(e, format!("creating `{}` failed", statement.object)))?;
        tx.commit()
            .await
            .map_err(|e| map_error(e, "committing target ddl"))?;
        Ok(true)
    }

    /// Ends the sessions in this database that carry an application name starting with
    /// `prefix` (but not with `own`) and belong to this account, and waits until they are
    /// gone, for at most `patience`. Returns how many there were.
    ///
    /// Used on the sessions a killed run of the task left running (an index build goes on
    /// until it next talks to its client, which is gone). Sessions the account may not end
    /// are waited for. Both prefixes must be free of `LIKE` wildcards (`%`, `_`, `\`).
    ///
    /// # Errors
    ///
    /// Classified database errors.
    pub async fn end_sessions(
        &self,
        prefix: &str,
        own: &str,
        patience: std::time::Duration,
    ) -> Result<usize> {
        const FIND: &str = "SELECT pid FROM pg_stat_activity \
            WHERE datname = current_database() AND usename = current_user \
              AND pid <> pg_backend_pid() \
              AND application_name LIKE $1 || '%' AND application_name NOT LIKE $2 || '%'";
        let err = |e| map_error(e, "ending the sessions of an earlier run");
        let pids: Vec<i32> = self
            .client
            .query(FIND, &[&prefix, &own])
            .await
            .map_err(err)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if pids.is_empty() {
            return Ok(0);
        }
        tracing::info!(
            sessions = pids.len(),
            "ending the target sessions of an earlier run"
        );
        for pid in &pids {
            if let Err(e) = self
                .client
                .query_one("SELECT pg_terminate_backend($1)", &[pid])
                .await
            {
                tracing::warn!(pid, error = %e, "cannot end a session of an earlier run, waiting for it");
            }
        }
        let deadline = std::time::Instant::now() + patience;
        loop {
            let left = self
                .client
                .query(
                    "SELECT 1 FROM pg_stat_activity WHERE pid = ANY($1)",
                    &[&pids],
                )
                .await
                .map_err(err)?;
            if left.is_empty() {
                return Ok(pids.len());
            }
            if std::time::Instant::now() >= deadline {
                tracing::warn!(
                    sessions = left.len(),
                    "sessions of an earlier run are still running"
                );
                return Ok(pids.len());
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Sets the application name of this session (shown in `pg_stat_activity`).
    ///
    /// # Errors
    ///
    /// Classified database errors.
    pub async fn set_application_name(&self, name: &str) -> Result<()> {
        self.client
            .execute("SELECT set_config('application_name', $1, false)", &[&name])
            .await
            .map_err(|e| map_error(e, "setting the application name"))?;
        Ok(())
    }

    /// Prepares this connection for index builds: sorts in memory rather than in
    /// temporary files.
    ///
    /// # Errors
    ///
    /// Classified database errors.
    pub async fn prepare_index_builds(&self) -> Result<()> {
        self.client
            .batch_execute("SET maintenance_work_mem = '256MB'")
            .await
            .map_err(|e| map_error(e, "setting up an index build"))
    }

    /// Empties (`TRUNCATE`) or drops (`drop`) the existing target `tables` a task is told to
    /// prepare, in one statement (tables referencing each other go together); a table
    /// another table references is refused by the server, naming the constraint.
    ///
    /// # Errors
    ///
    /// Server errors, naming the tables.
    pub async fn prepare_tables(&self, tables: &[TableName], drop: bool) -> Result<()> {
        if tables.is_empty() {
            return Ok(());
        }
        let names = qualified_names(tables);
        let (sql, what) = if drop {
            ("DROP TABLE", "dropping")
        } else {
            ("TRUNCATE", "emptying")
        };
        self.client
            .batch_execute(&format!("{sql} {}", names.join(", ")))
            .await
            .map_err(|e| map_error(e, format!("{what} target tables {}", names.join(", "))))
    }

    /// Updates the planner statistics of `tables`.
    ///
    /// # Errors
    ///
    /// Classified database errors.
    pub async fn analyze(&self, tables: &[TableName]) -> Result<()> {
        if tables.is_empty() {
            return Ok(());
        }
        let names = qualified_names(tables);
        self.client
            .batch_execute(&format!("ANALYZE {}", names.join(", ")))
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
                dts_schema::quote_ident(&t.schema),
                dts_schema::quote_ident(&t.name)
            )
        })
        .collect()
}
