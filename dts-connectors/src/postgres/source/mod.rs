//! Reading a PostgreSQL server as a source: its version, its schema from the system
//! catalogs, a consistent snapshot shared by parallel readers (a logical replication slot
//! created with an exported snapshot), and precheck probes.
//!
//! The schema is read with `search_path = pg_catalog`, so every name the server prints
//! (`format_type`, `pg_get_expr`, `pg_get_indexdef`) that is not a built-in one comes out
//! schema-qualified: `public.mood`, `nextval('shop.orders_id_seq'::regclass)`.
//!
//! Partitioned tables: the partitioned (parent) table is read as one table holding the rows
//! of all its partitions, and the partitions themselves are left out (selecting them would
//! copy their rows twice). Inheritance: every table is its own table and is read with
//! `ONLY`, so a parent's rows do not include its children's.

mod catalog;
pub(crate) mod decode;
mod pgoutput;
mod precheck;
pub(crate) mod replication;
mod snapshot;
mod wal;

pub use snapshot::{PgKeyProber, PgSnapshot, PgSnapshotReader, SlotLifetime};
pub use wal::{PgChangeSource, PgFeedback};

use dts_core::{Catalog, Result, SchemaSource};
use tokio_postgres::Client;

use super::error::map_error;
use super::options::PgConnectOptions;

/// What a PostgreSQL server says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgServerInfo {
    /// `SHOW server_version`, e.g. `15.19 (Debian 15.19-0+deb12u1)`.
    pub version: String,
    /// `server_version_num`, e.g. `150019`.
    pub version_num: u32,
}

impl PgServerInfo {
    /// PostgreSQL's logical decoding carries the rows foreign key actions change as changes
    /// of their own (the actions run as SQL in triggers).
    pub fn cascade_logging(&self) -> dts_core::CascadeLogging {
        dts_core::CascadeLogging::Logged
    }
}

/// A PostgreSQL source server, reached through one control connection (snapshot readers
/// open their own).
pub struct PgSource {
    client: Client,
    options: PgConnectOptions,
    info: PgServerInfo,
}

impl std::fmt::Debug for PgSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSource")
            .field("info", &self.info)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Session settings of every source connection: values print and parse the same way
/// whatever the server's configuration, and catalog output names every non-built-in object
/// with its schema.
pub(crate) const SOURCE_SESSION: &str = "SET search_path = pg_catalog; SET TimeZone = 'UTC'; \
     SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; SET extra_float_digits = 3; \
     SET bytea_output = 'hex'; SET standard_conforming_strings = on";

/// Publications publish a partitioned table's changes as its own.
const VIA_ROOT: &str = "WITH (publish_via_partition_root = true)";

/// Opens a source session with [`SOURCE_SESSION`] applied.
pub(crate) async fn connect_source(options: &PgConnectOptions) -> Result<Client> {
    let client = options.connect().await?;
    client
        .batch_execute(SOURCE_SESSION)
        .await
        .map_err(|e| map_error(e, "setting up the source session"))?;
    Ok(client)
}

impl PgSource {
    /// Connects to the server at `url` (`postgres://user:password@host:port/db`, options as
    /// [`PgConnectOptions`] parses them) and reads its version.
    ///
    /// # Errors
    ///
    /// As [`PgConnectOptions::connect`].
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url.parse()?).await
    }

    /// Connects to the server `options` name and reads its version.
    ///
    /// # Errors
    ///
    /// As [`PgConnectOptions::connect`].
    pub async fn connect_with(options: PgConnectOptions) -> Result<Self> {
        let client = connect_source(&options).await?;
        let row = client
            .query_one(
                "SELECT current_setting('server_version'), \
                        current_setting('server_version_num')::int4",
                &[],
            )
            .await
            .map_err(|e| map_error(e, "reading source version"))?;
        let version_num: i32 = row.get(1);
        Ok(Self {
            client,
            options,
            info: PgServerInfo {
                version: row.get(0),
                version_num: u32::try_from(version_num).unwrap_or(0),
            },
        })
    }

    /// The server's version information.
    pub fn info(&self) -> &PgServerInfo {
        &self.info
    }

    /// The control connection.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The source's current WAL insert position: the end of every record written so far,
    /// commits included that are not flushed yet (`synchronous_commit = off` acknowledges
    /// those to their clients); `pg_current_wal_lsn()` may lag behind it.
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn current_position(&self) -> Result<dts_core::Position> {
        let lsn: String = self
            .client
            .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
            .await
            .map_err(|e| map_error(e, "reading the source WAL position"))?
            .get(0);
        lsn.parse().map(dts_core::Position::Lsn).map_err(|e| {
            dts_core::Error::new(
                dts_core::ErrorKind::Database,
                "bad WAL position from the server",
            )
            .with_source(e)
        })
    }

    /// Creates publication `name` for exactly `tables`, or makes an existing one publish
    /// exactly them (every kind of change, truncates included; a partitioned table's
    /// changes as changes of the partitioned table, which is how it is copied).
    ///
    /// Create it before the slot that streams with it: `pgoutput` reads the publication as
    /// the catalog was when each change was made.
    ///
    /// # Errors
    ///
    /// Server errors ([`dts_core::ErrorKind::Privilege`] when the account may not create
    /// publications in the database or does not own a table).
    pub async fn ensure_publication(
        &self,
        name: &str,
        tables: &[dts_core::TableName],
    ) -> Result<()> {
        let list = tables
            .iter()
            .map(|t| {
                format!(
                    "{}.{}",
                    snapshot::quote_ident(&t.schema),
                    snapshot::quote_ident(&t.name)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let exists = self
            .client
            .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&name])
            .await
            .map_err(|e| map_error(e, format!("reading publication `{name}`")))?
            .is_some();
        let ident = snapshot::quote_ident(name);
        let sql = match (exists, tables.is_empty()) {
            (false, true) => format!("CREATE PUBLICATION {ident} {VIA_ROOT}"),
            (false, false) => format!("CREATE PUBLICATION {ident} FOR TABLE {list} {VIA_ROOT}"),
            (true, true) => {
                format!("DROP PUBLICATION {ident}; CREATE PUBLICATION {ident} {VIA_ROOT}")
            }
            (true, false) => format!("ALTER PUBLICATION {ident} SET TABLE {list}"),
        };
        self.client
            .batch_execute(&sql)
            .await
            .map_err(|e| map_error(e, format!("creating publication `{name}`")))
    }

    /// Drops publication `name` if it exists. Returns whether it did.
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn drop_publication(&self, name: &str) -> Result<bool> {
        let exists = self
            .client
            .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&name])
            .await
            .map_err(|e| map_error(e, format!("reading publication `{name}`")))?
            .is_some();
        if exists {
            self.client
                .batch_execute(&format!(
                    "DROP PUBLICATION IF EXISTS {}",
                    snapshot::quote_ident(name)
                ))
                .await
                .map_err(|e| map_error(e, format!("dropping publication `{name}`")))?;
        }
        Ok(exists)
    }

    /// The position replication slot `name` has confirmed, or `None` when no such slot
    /// exists.
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn slot_position(&self, name: &str) -> Result<Option<dts_core::Lsn>> {
        let row = self
            .client
            .query_opt(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
                &[&name],
            )
            .await
            .map_err(|e| map_error(e, format!("reading replication slot `{name}`")))?;
        Ok(row
            .and_then(|r| r.get::<_, Option<String>>(0))
            .and_then(|l| l.parse().ok()))
    }

    /// Ends the WAL sender that streams from slot `name`, if one does (`pid`, when given,
    /// must be its process id). Returns whether one was ended; waits until the slot is free.
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn end_slot_reader(&self, name: &str, pid: Option<u32>) -> Result<bool> {
        let pid = pid.and_then(|p| i32::try_from(p).ok());
        let ended: bool = self
            .client
            .query_one(
                "SELECT coalesce(bool_or(pg_terminate_backend(active_pid, 10000)), false)                  FROM pg_replication_slots                  WHERE slot_name = $1 AND active_pid IS NOT NULL                    AND ($2::int4 IS NULL OR active_pid = $2)",
                &[&name, &pid],
            )
            .await
            .map_err(|e| map_error(e, format!("ending the reader of slot `{name}`")))?
            .get(0);
        Ok(ended)
    }

    /// Drops replication slot `name` if it exists, ending the WAL sender that uses it
    /// first. Returns whether it did.
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn drop_slot(&self, name: &str) -> Result<bool> {
        self.end_slot_reader(name, None).await?;
        let dropped = self
            .client
            .query_opt(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots                  WHERE slot_name = $1",
                &[&name],
            )
            .await
            .map_err(|e| map_error(e, format!("dropping replication slot `{name}`")))?
            .is_some();
        Ok(dropped)
    }

    /// Creates the permanent logical replication slot `name` (for `pgoutput`, without a
    /// snapshot) and returns its consistent point: streaming from there delivers every
    /// transaction that commits later.
    ///
    /// # Errors
    ///
    /// Connection and privilege errors; the server's error when the slot exists.
    pub async fn create_slot(&self, name: &str) -> Result<dts_core::Lsn> {
        let mut repl = replication::ReplicationConnection::connect(&self.options).await?;
        let what = format!("creating replication slot `{name}`");
        let rows = repl
            .simple_query(
                &format!(
                    "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput NOEXPORT_SNAPSHOT",
                    snapshot::quote_ident(name)
                ),
                &what,
            )
            .await;
        repl.close().await;
        let lsn = rows?
            .first()
            .and_then(|r| r.get(1).cloned().flatten())
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| {
                dts_core::Error::new(
                    dts_core::ErrorKind::Database,
                    format!("{what}: no consistent point"),
                )
            })?;
        Ok(lsn)
    }

    /// The tables change capture can publish that `selects` selects: ordinary and
    /// partitioned tables, not partitions (their changes are published as their
    /// partitioned table's).
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn capturable_tables(
        &self,
        selects: &(dyn Fn(&dts_core::TableName) -> bool + Send + Sync),
    ) -> Result<Vec<dts_core::TableName>> {
        let rows = self
            .client
            .query(
                "SELECT n.nspname::text, c.relname::text FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
                   AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                   AND n.nspname NOT LIKE 'pg\\_%' \
                 ORDER BY 1, 2",
                &[],
            )
            .await
            .map_err(|e| map_error(e, "listing source tables"))?;
        Ok(rows
            .iter()
            .map(|r| dts_core::TableName::new(r.get::<_, String>(0), r.get::<_, String>(1)))
            .filter(|t| selects(t))
            .collect())
    }

    /// The database's default collation when its provider is libc (`datcollate`), `None`
    /// for another provider (ICU).
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn default_collation(&self) -> Result<Option<String>> {
        // `datlocprovider` exists from PostgreSQL 15 on; read through JSON so older
        // servers (libc only) answer too.
        let row = self
            .client
            .query_one(
                "SELECT datcollate::text, to_jsonb(d) ->> 'datlocprovider' \
                 FROM pg_database d WHERE datname = current_database()",
                &[],
            )
            .await
            .map_err(|e| map_error(e, "reading the database's default collation"))?;
        let provider: Option<String> = row.get(1);
        Ok(match provider.as_deref() {
            None | Some("c") => Some(row.get(0)),
            Some(_) => None,
        })
    }

    /// Of `tables`, those whose replica identity is not `FULL`: their updates and deletes
    /// carry the old row's key only, not its other columns.
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn tables_without_full_identity(
        &self,
        tables: &[dts_core::TableName],
    ) -> Result<Vec<dts_core::TableName>> {
        let schemas: Vec<String> = tables.iter().map(|t| t.schema.clone()).collect();
        let names: Vec<String> = tables.iter().map(|t| t.name.clone()).collect();
        let rows = self
            .client
            .query(
                "SELECT t.schema, t.name FROM unnest($1::text[], $2::text[]) AS t(schema, name) \
                 JOIN pg_namespace n ON n.nspname = t.schema \
                 JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.name \
                 WHERE c.relreplident <> 'f'",
                &[&schemas, &names],
            )
            .await
            .map_err(|e| map_error(e, "reading the replica identity of the source tables"))?;
        Ok(rows
            .iter()
            .map(|r| dts_core::TableName::new(r.get::<_, String>(0), r.get::<_, String>(1)))
            .collect())
    }

    /// The account and client address of the server process `pid` (`local` for a Unix
    /// socket), if it runs.
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn backend_identity(&self, pid: u32) -> Result<Option<(String, String)>> {
        let pid = i32::try_from(pid).unwrap_or(0);
        let row = self
            .client
            .query_opt(
                "SELECT usename::text, coalesce(host(client_addr), 'local') \
                 FROM pg_stat_activity WHERE pid = $1",
                &[&pid],
            )
            .await
            .map_err(|e| map_error(e, "reading a server process"))?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    /// Ends the WAL sender `pid` if it still runs as `user` from `host` (as
    /// [`PgSource::backend_identity`] gave them), waiting until it has exited. Returns
    /// whether it did.
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn end_wal_sender(&self, pid: u32, user: &str, host: &str) -> Result<bool> {
        let pid = i32::try_from(pid).unwrap_or(0);
        let ended: bool = self
            .client
            .query_one(
                "SELECT coalesce(bool_or(pg_terminate_backend(pid, 10000)), false) \
                 FROM pg_stat_activity \
                 WHERE pid = $1 AND backend_type = 'walsender' AND usename = $2 \
                   AND coalesce(host(client_addr), 'local') = $3",
                &[&pid, &user, &host],
            )
            .await
            .map_err(|e| map_error(e, "ending an earlier change reader"))?
            .get(0);
        Ok(ended)
    }

    /// The connection options.
    pub fn options(&self) -> &PgConnectOptions {
        &self.options
    }
}

#[dts_core::async_trait]
impl SchemaSource for PgSource {
    async fn list_schemas(&self) -> Result<Vec<String>> {
        let rows = self
            .client
            .query(
                "SELECT nspname::text FROM pg_namespace \
                 WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
                   AND nspname NOT LIKE 'pg\\_temp\\_%' AND nspname NOT LIKE 'pg\\_toast\\_temp\\_%' \
                 ORDER BY 1",
                &[],
            )
            .await
            .map_err(|e| map_error(e, "listing source schemas"))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn read_catalog(&self, schemas: &[String]) -> Result<Catalog> {
        catalog::read_catalog(&self.client, schemas).await
    }
}
