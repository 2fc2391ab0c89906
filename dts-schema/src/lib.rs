//! Schema translation for dts: a MySQL/MariaDB [`Catalog`](dts_core::Catalog) becomes
//! PostgreSQL DDL in two phases.
//!
//! [`plan_mysql_to_pg`] returns a [`SchemaPlan`]:
//!
//! - **pre-data** (before the bulk copy): `CREATE SCHEMA`, sequences, `CREATE TABLE` with
//!   columns, mapped types, `NOT NULL`, translated defaults, identity columns, the primary
//!   key and the type mapping's `CHECK` constraints, and comments;
//! - **post-data** (after the copy): generated columns, unique and secondary indexes,
//!   foreign keys, `ON UPDATE CURRENT_TIMESTAMP` triggers, and sequence values set past the
//!   copied maximum;
//! - **problems**: everything that cannot be translated, named, blocking or not. Planning
//!   never stops early and never panics, so one run reports every problem.
//!
//! Identifiers are always double-quoted, follow the [`IdentifierCase`] policy and renames of
//! [`SchemaOptions`], and are fitted to PostgreSQL's 63-byte limit with a hash suffix
//! ([`fit_identifier`]). Other crates map source names with
//! [`SchemaOptions::target_table`] and [`SchemaOptions::target_column`] so every layer
//! agrees on target names.
//!
//! ```no_run
//! use dts_core::{Catalog, Error};
//! use dts_schema::{plan_mysql_to_pg, SchemaOptions};
//!
//! fn translate(catalog: &Catalog) -> Result<(), Error> {
//!     let plan = plan_mysql_to_pg(catalog, &SchemaOptions::default());
//!     if let Some(p) = plan.blocking_problems().next() {
//!         return Err(Error::new(dts_core::ErrorKind::Unsupported, p.message.clone()));
//!     }
//!     for statement in &plan.pre_data {
//!         println!("{};", statement.sql); // run on the target before the copy
//!     }
//!     for statement in &plan.post_data {
//!         println!("{};", statement.sql); // run after the copy
//!     }
//!     Ok(())
//! }
//! ```
//!
//! During replication a [`SchemaTracker`] follows the source's DDL: it translates each
//! statement the binlog carries (`CREATE TABLE`, `ALTER TABLE`, `RENAME TABLE`, `DROP`,
//! `TRUNCATE`, `CREATE`/`DROP INDEX`) into PostgreSQL statements that address the objects
//! the initial migration created, and keeps the source model and the [`TablePlan`]s current
//! ([`SchemaTracker::apply_mysql_ddl`]). What it cannot follow is a [`DdlError`].
//!
//! The generated SQL needs PostgreSQL 14 or later (`CREATE OR REPLACE TRIGGER`, stored
//! generated columns, `gen_random_uuid()`). Every identifier and string literal in it is
//! quoted by [`dts_typemap::quote`], so it means the same whatever
//! `standard_conforming_strings` is set to.
//!
//! A PostgreSQL source into a PostgreSQL target is planned by [`plan_pg_to_pg`]: every
//! object as it is (types, enums, domains, collations, defaults, identity, generated
//! columns, indexes, foreign keys, comments), no value converted. In replication,
//! [`PgToPgChangeMapper`] follows the column changes PostgreSQL's relation descriptions
//! show ([`relation_diff`]).
//!
//! A MySQL/MariaDB source into a MySQL/MariaDB target is planned by
//! [`plan_mysql_to_mysql`]: every column type, character set, collation, default,
//! `AUTO_INCREMENT`, generated column, index and foreign key as it is, no value converted.
//! Its replication is mapped by [`MySqlToMySqlChangeMapper`]: rows pass with their tables
//! renamed, and DDL is kept as the source ran it, with the target's table names.
//!
//! A PostgreSQL source into a MySQL/MariaDB target is planned by [`plan_pg_to_mysql`]: each
//! schema a database, types mapped by [`dts_typemap::pg_to_mysql`] (binary `NO PAD`
//! collations, keys fitted into InnoDB's index limit), defaults, `AUTO_INCREMENT`, indexes
//! and foreign keys; rows and changes are converted by [`PgToMySqlRowMapper`] and
//! [`PgToMySqlChangeMapper`].
//!
//! A SQLite source is planned by [`plan_sqlite_to_pg`] and [`plan_sqlite_to_mysql`]: its
//! declared types restated as PostgreSQL types (see [`dts_typemap::sqlite`]), then planned
//! as a PostgreSQL catalog; [`SqliteRowMapper`] checks and converts every stored value.
//!
//! This crate has no features and does no I/O.

mod change;
mod ddl;
mod default;
mod expr;
pub mod filter;
mod ident;
mod mapper;
mod mysql_changes;
mod mysql_to_mysql;
mod options;
mod pg_to_mysql;
mod pg_to_pg;
mod plan;
mod relation;
mod sqlite;
mod token;

pub use change::{DdlError, DdlKind, DdlOutcome, SchemaTracker, SourceFlavor, TableFilter};
pub use ddl::plan_mysql_to_pg;
pub use ident::{fit_identifier, quote_ident, quote_literal, IdentifierCase, MAX_IDENTIFIER_BYTES};
pub use mapper::{short_sql, PlanRowMapper, TrackedChangeMapper};
pub use mysql_changes::{mysql_ddl_tables, mysql_session_mode, MySqlToMySqlChangeMapper};
pub use mysql_to_mysql::{plan_mysql_to_mysql, quote_mysql_ident, quote_mysql_literal};
pub use options::{ColumnFilter, SchemaOptions};
pub use pg_to_mysql::{
    plan_pg_to_mysql, PgToMySqlChangeMapper, PgToMySqlRowMapper, MYSQL_MAX_IDENTIFIER_CHARS,
};
pub use pg_to_pg::{plan_pg_to_pg, PgToPgChangeMapper};
pub use plan::{ColumnPlan, Phase, Problem, SchemaPlan, Statement, StatementKind, TablePlan};
pub use relation::{apply_relation_diff, relation_diff, RelationDiff};
pub use sqlite::{plan_sqlite_to_mysql, plan_sqlite_to_pg, SqliteRowMapper, ROWID, WITHOUT_ROWID};
pub use token::sql_in_default_mode;

#[cfg(test)]
mod tests;
