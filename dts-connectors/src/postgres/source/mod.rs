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
mod precheck;
pub(crate) mod replication;
mod snapshot;

pub use snapshot::{PgKeyProber, PgSnapshot, PgSnapshotReader};

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

    /// The source's current WAL write position.
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn current_position(&self) -> Result<dts_core::Position> {
        let lsn: String = self
            .client
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
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
