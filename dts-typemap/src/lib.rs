//! Type mapping and value conversion between engines, lossless by default: MySQL/MariaDB to
//! PostgreSQL, and PostgreSQL to MySQL/MariaDB ([`pg_to_mysql`]).
//!
//! The mapping is split into *check* and *convert*:
//!
//! - [`map_mysql_column`] parses a column's `COLUMN_TYPE` into a [`MySqlType`] and picks the
//!   [`PgType`] that holds every source value, with a `CHECK` that keeps the source's domain
//!   (`{col} >= 0` for unsigned columns, the members of an enum) and notes on every lossy or
//!   special case;
//! - [`mysql_data_checks`] gives the MySQL predicates the precheck counts rows with (zero
//!   dates, NUL characters, `tinyint(1)` values other than 0/1…), each with its fix;
//! - [`convert_mysql_value`] turns each value a MySQL reader produces into the canonical
//!   [`Value`](dts_core::Value) for the target type, refusing anything it would have to round, clamp or strip.
//!
//! Conveniences that can lose information (`tinyint(1)` → `boolean`, `time` → `time`) are
//! [`MappingOptions`], checked against the data. The crate is pure: no I/O, no async.
//!
//! ```no_run
//! use dts_core::{Column, Error, Value};
//! use dts_typemap::{convert_mysql_value, map_mysql_column, mysql_data_checks, MappingOptions};
//!
//! fn migrate_column(column: &Column, value: Value) -> Result<Value, Error> {
//!     let opts = MappingOptions::default();
//!     let mapping = map_mysql_column(column, &opts)
//!         .map_err(|e| Error::from(e).context(format!("column `{}`", column.name)))?;
//!     println!("{} -> {}", column.source_type, mapping.target);
//!     if let Some(check) = mapping.check_for("\"price\"") {
//!         println!("CHECK ({check})");
//!     }
//!     for check in mysql_data_checks(&mapping, "`price`", &opts) {
//!         println!("SELECT COUNT(*) FROM t WHERE {}  -- {}", check.predicate, check.code);
//!     }
//!     Ok(convert_mysql_value(&mapping, value, &opts)?)
//! }
//! ```
//!
//! The PostgreSQL → MySQL/MariaDB direction lives in [`pg_to_mysql`]: [`map_pg_type`] maps
//! a (domain-resolved) PostgreSQL type, [`convert_pg_value`] converts the values the
//! PostgreSQL readers produce, [`pg_data_checks`] gives the PostgreSQL predicates the
//! precheck counts, with the lossy choices in [`PgToMySqlOptions`].
//!
//! SQLite sources are mapped by [`sqlite`]: declared types and affinities to PostgreSQL
//! types ([`sqlite::map_sqlite_type`]), stored values checked and converted one by one
//! ([`sqlite::convert_sqlite_value`]); a MySQL/MariaDB target takes those PostgreSQL types
//! through [`pg_to_mysql`].
//!
//! This crate has no features.

mod check;
mod convert;
mod error;
mod json;
mod mapping;
pub mod mysql;
pub mod pg;
pub mod pg_to_mysql;
pub mod quote;
pub mod sqlite;

pub use check::{mysql_data_checks, DataCheck};
pub use convert::{convert_mysql_value, is_zero_date, PG_MAX_VALUE_BYTES};
pub use error::{ConvertError, TypeError};
pub use mapping::{
    map_mysql_column, map_mysql_type, notes, ColumnMapping, MappingOptions, ZeroDatePolicy,
};
pub use mysql::MySqlType;
pub use pg::PgType;
pub use pg_to_mysql::{
    convert_pg_value, map_pg_type, pg_data_checks, MySqlFlavor, PgSourceType, PgToMySqlMapping,
    PgToMySqlOptions,
};
pub use quote::{quote_ident, quote_literal, quote_qualified};
