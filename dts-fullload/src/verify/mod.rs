//! Data verification and repair: proves that a target holds exactly what its source
//! holds, and makes it so where it does not.
//!
//! The engine is generic over the connector traits of `dts-core` and knows no driver: the
//! source side is read by [`dts_core::SnapshotReader`]s and converted by the task's
//! [`dts_core::RowMapper`] (the same conversion the full load writes with), the target side
//! is read by [`dts_core::TargetReader`]s into values of the same form, and repairs go
//! through [`dts_core::RepairSink`]s. Any pair of engines with these connectors is
//! verified the same way.
//!
//! - **Exact.** Values are compared by a canonical byte form (floats by their bits,
//!   decimals with their scale, text and bytes whole, JSON in `jsonb`'s normal form).
//! - **Fast.** Key-range chunks are compared in parallel; each side of a chunk is streamed
//!   once and reduced to a digest (row count and a wrapping sum of 128-bit xxh3 row hashes,
//!   so row order does not matter and duplicate rows count), and only chunks whose digests
//!   differ are read again and compared row by row. Memory is bounded by one chunk's keys
//!   and column hashes per worker plus the differences found.
//! - **Live.** With a [`Recheck`], differences are read again once replication has applied
//!   past the source position they were read at; only those that persist are reported.
//! - **Repair.** Missing rows are inserted, extra rows deleted and different rows updated,
//!   one transaction per chunk, every statement written to a SQL file.
//!
//! ```no_run
//! use dts_fullload::verify::{verify_tables, TableCheck, VerifyOptions, Worker};
//!
//! async fn check(tables: Vec<TableCheck>, workers: Vec<Worker>) -> Result<(), dts_core::Error> {
//!     let options = VerifyOptions { max_keys: 10, ..VerifyOptions::default() };
//!     let report = verify_tables(tables, workers, &options, None).await?;
//!     print!("{report}");
//!     Ok(())
//! }
//! ```
//!

mod canon;
pub mod engine;
mod repair;
pub mod report;

pub use engine::{
    verify_tables, BesideApply, FreshReader, Recheck, RepairOptions, TableCheck, VerifyEvent,
    VerifyOptions, Worker,
};
pub use report::{Difference, RepairStats, TableReport, VerifyReport};
