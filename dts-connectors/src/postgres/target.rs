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
             SET bytea_output = 'hex'; SET IntervalStyle = 'postgres'",
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
    /// all of it takes effect, or none. The error names the failing statement's object.
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
        let tx = self.begin_with(statements).await?;
        for t in kept {
            super::state::mark_done(&tx, task, &super::state::kept_step(t)?).await?;
        }
        super::state::mark_done(&tx, task, step).await?;
        tx.commit()
            .await
            .map_err(|e| map_error(e, "committing target ddl"))
    }

    /// Runs `statement` and records step `step` of task `task` as done, in one transaction,
    /// unless the step is recorded already. Returns whether it ran.
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
        tx.batch_execute(&statement.sql)
            .await
            .map_err(|e| map_error(e, format!("creating `{}` failed", statement.object)))?;
        super::state::mark_done(&tx, task, step).await?;
        tx.commit()
            .await
            .map_err(|e| map_error(e, "committing target ddl"))?;
        Ok(true)
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

    /// Updates the planner statistics of `tables`.
    ///
    /// # Errors
    ///
    /// Classified database errors.
    pub async fn analyze(&self, tables: &[TableName]) -> Result<()> {
        if tables.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = tables
            .iter()
            .map(|t| {
                format!(
                    "{}.{}",
                    dts_schema::quote_ident(&t.schema),
                    dts_schema::quote_ident(&t.name)
                )
            })
            .collect();
        self.client
            .batch_execute(&format!("ANALYZE {}", names.join(", ")))
            .await
            .map_err(|e| map_error(e, "analysing target tables"))
    }
}
