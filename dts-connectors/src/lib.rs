//! Database connectors of dts: MySQL/MariaDB (through `mysql_async`) and PostgreSQL (through
//! `tokio-postgres`).
//!
//! Each backend is one module: `mysql` has `source` (server info, schema, precheck probes),
//! `snapshot` (consistent snapshot readers and the key prober), `binlog` (change capture
//! from the binlog, MariaDB and MySQL 8 events), `target` (MySQL/MariaDB as a target: DDL,
//! the `dts_meta` state store, the `LOAD DATA LOCAL` chunk sink and the apply sink of
//! replication) and `error`; `postgres` has `source` (schema
//! from the catalogs, a snapshot exported by a temporary logical replication slot and shared
//! by parallel readers, chunk reads through binary `COPY`, source prechecks), `target`
//! (connections and DDL), `copy` (binary `COPY` encoding), `sink` (checkpointed chunk
//! writes), `apply` (applying captured changes with their position) and `error`. Driver
//! errors become classified [`dts_core::Error`]s by MySQL error number or SQLSTATE.
//!
//! ```no_run
//! use dts_connectors::mysql::MySqlSource;
//! use dts_core::SchemaSource;
//!
//! # async fn demo() -> Result<(), dts_core::Error> {
//! let source = MySqlSource::connect("mysql://root@127.0.0.1:3306").await?;
//! let catalog = source.read_catalog(&["shop".to_string()]).await?;
//! for table in catalog.tables() {
//!     println!("{} has {} columns", table.name, table.columns.len());
//! }
//! # Ok(())
//! # }
//! ```
//!
//! `sqlite` reads a SQLite file as a source (schema, a consistent read shared by parallel
//! readers, the value scan of the precheck); see [`sqlite`].
//!
//! Features: `mysql` (MySQL/MariaDB through `mysql_async`), `postgres` (PostgreSQL through
//! `tokio-postgres`), `sqlite` (SQLite files through `rusqlite`, the bundled libsqlite3); all
//! on by default.

#[cfg(any(feature = "mysql", feature = "postgres"))]
mod apply;
mod end;
#[cfg(any(feature = "mysql", feature = "postgres"))]
mod endpoint;
pub mod mysql;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "mysql")]
mod precheck;
pub mod registry;
#[cfg(any(feature = "mysql", feature = "postgres"))]
mod run_lock;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(any(feature = "mysql", feature = "postgres"))]
pub mod switchover;
#[cfg(any(feature = "mysql", feature = "postgres"))]
mod tls;
#[cfg(any(feature = "mysql", feature = "postgres"))]
mod url;

#[cfg(any(feature = "mysql", feature = "postgres"))]
pub use endpoint::SslMode;
pub use registry::{
    capture_slot_name, change_mapper, encoding_fits_plan, plan_schema, row_mapper, ApplyOptions,
    CaptureOptions, ChangeMapping, Snapshot, Source, TableReadLock, Target, TargetBinlog,
};
