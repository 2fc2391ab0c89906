//! The full data migration engine of dts: chunk planning over a key prober, a parallel
//! pipelined copy from snapshot readers into chunk sinks with per-chunk checkpoints,
//! throttling, a bad-row policy and typed progress events; and data verification and
//! repair ([`verify`]), chunk by chunk over the same key-range chunks.
//!
//! The engine is generic over the connector traits of `dts-core`
//! ([`dts_core::SnapshotReader`], [`dts_core::ChunkSink`]); it knows no driver.
//!
//! ```no_run
//! use dts_fullload::{plan_chunks, KeyProber};
//!
//! async fn plan<P: KeyProber>(prober: &mut P) -> Result<(), dts_core::Error> {
//!     let chunks = plan_chunks(prober, &["id".to_string()], 50_000, 1_000_000).await?;
//!     println!("{} chunks", chunks.len());
//!     Ok(())
//! }
//! ```
//!
//! This crate has no features.

pub mod chunk;
pub mod copy;
pub mod progress;
pub mod throttle;
pub mod verify;

pub use chunk::plan_chunks;
pub use copy::{copy_tables, BadRowPolicy, CopyOptions, CopySummary, TableJob};
pub use dts_core::KeyProber;
pub use dts_core::{ConvertFailure, RowMapper};
pub use progress::{ProgressEvent, ProgressTracker, TableProgress};
pub use throttle::Throttle;
