//! Database connectors of dts: MySQL/MariaDB (through `mysql_async`) and PostgreSQL (through
//! `tokio-postgres`).
//!
//! Each backend is one module with the same file set: `source` (schema and snapshot
//! reading), `target` (what the task does to a target server), `error` (mapping driver errors
//! onto [`dts_core::Error`] by error number or SQLSTATE).
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
//! Features: `mysql` (MySQL/MariaDB through `mysql_async`), `postgres` (PostgreSQL through
//! `tokio-postgres`); both on by default.

#[cfg(feature = "mysql")]
pub mod mysql;
#[cfg(feature = "postgres")]
pub mod postgres;
