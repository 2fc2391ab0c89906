//! Migrate a live MySQL or MariaDB database to PostgreSQL.
//!
//! This is the facade of the dts workspace: it reads a task file ([`TaskConfig`]), runs the
//! prechecks ([`Task::precheck`]), shows the DDL it would run ([`Task::plan`]), runs the
//! task ([`Task::run`]) and verifies and repairs the target ([`Task::verify`]),
//! re-exporting the pieces it is built from: [`core`] (values, schema model, errors), [`typemap`] (type mapping), [`schema`] (DDL
//! translation) and [`connectors`] (MySQL/MariaDB and PostgreSQL).
//!
//! ```no_run
//! # async fn demo() -> Result<(), dts::core::Error> {
//! let config = dts::TaskConfig::from_file("task.toml".as_ref())?;
//! let task = dts::Task::new(config);
//! let report = task.precheck().await?;
//! println!("{report}");
//! if report.passed() {
//!     let done = task.run(None).await?;
//!     println!("created {} objects", done.created.len());
//! }
//! # Ok(())
//! # }
//! ```
//!
//! This crate has no optional features; the connectors it uses are MySQL/MariaDB and
//! PostgreSQL.

pub mod alerts;
pub mod checks;
mod columns;
pub mod config;
mod ddl;
mod filter;
pub mod full;
pub mod incremental;
pub mod metrics;
mod precheck;
pub mod record;
mod resume;
pub mod status;
pub mod switchover;
pub mod task;
pub mod verify;

pub use checks::SampleEvent;
pub use config::TaskConfig;
pub use dts_core::check::{CheckItem, CheckStatus, PrecheckReport};
pub use dts_fullload::verify::{VerifyEvent, VerifyReport};
pub use full::FullReport;
pub use incremental::IncrementalReport;
pub use metrics::Exporter;
pub use switchover::{SwitchoverOptions, SwitchoverReport};
pub use task::{RunOptions, RunReport, Step, Task, TaskEvent, TaskPlan};
pub use verify::VerifyOptions;

pub use dts_cdc as cdc;

pub use dts_fullload as fullload;

pub use dts_fullload::verify as verify_engine;

pub use dts_connectors as connectors;
pub use dts_core as core;
pub use dts_schema as schema;
pub use dts_typemap as typemap;
