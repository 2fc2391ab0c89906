//! The full data migration engine of dts: chunk planning over a key prober, parallel
//! pipelined copy from snapshot readers into chunk sinks, per-chunk checkpoints, throttling
//! and progress.
//!
//! The engine is generic over the connector traits of `dts-core`; it knows no driver.

pub mod chunk;

pub use chunk::{plan_chunks, KeyProber};
