//! The change replication engine of dts: reads changes from a [`ChangeSource`], groups whole
//! source transactions into batches and hands them to an [`ApplySink`], which applies each
//! batch and records its end position in one target transaction. A transaction too large
//! for a batch is handed over in parts ([`ApplySink::apply_part`]) within one target
//! transaction, so memory stays bounded whatever the size of the source's transactions.
//!
//! The engine is generic over the core traits and knows no driver. It owns batching (whole
//! transactions only, flushed by size, by age, or as soon as the source has nothing more;
//! large transactions in parts), the stop position ([`CdcOptions::until`]), stopping on
//! request, reconnection with backoff after transient failures within a retry window, and
//! progress reports ([`CdcEvent`]: batches being applied, applied batches with lag and rate,
//! idle, catching up, reconnecting) and metrics through the `metrics` facade ([`metrics`]).
//!
//! Delivery is at-least-once and made exact by the sink: after a failure both ends are
//! reconnected and the source resumes from the sink's applied position, so nothing is lost,
//! and because the position is committed with the data, nothing is applied twice.
//!
//! ```no_run
//! use dts_cdc::{replicate, ApplySink, CdcEvent, CdcOptions};
//! use dts_core::{ChangeSource, Position, Result};
//! use tokio::sync::{mpsc, watch};
//!
//! async fn follow<S: ChangeSource, K: ApplySink>(
//!     source: impl Fn(Position) -> Result<S> + Send,
//!     sink: impl Fn() -> Result<K> + Send,
//!     until: Position,
//! ) -> Result<()> {
//!     let (events_tx, mut events) = mpsc::unbounded_channel();
//!     let (_stop_tx, stop) = watch::channel(false);
//!     tokio::spawn(async move {
//!         while let Some(event) = events.recv().await {
//!             if let CdcEvent::Applied { rows, lag, .. } = event {
//!                 println!("{rows} rows applied, lag {lag:?}");
//!             }
//!         }
//!     });
//!     let options = CdcOptions {
//!         until: Some(until),
//!         ..CdcOptions::default()
//!     };
//!     let summary = replicate(
//!         move |position| std::future::ready(source(position)),
//!         move || std::future::ready(sink()),
//!         options,
//!         Some(events_tx),
//!         stop,
//!     )
//!     .await?;
//!     println!("stopped at {:?}", summary.position);
//!     Ok(())
//! }
//! ```
//!
//! This crate has no features.

mod batch;
pub mod mapped;
pub mod metrics;
pub mod pipeline;

pub use mapped::MappedSource;
pub use pipeline::{replicate, CdcEvent, CdcOptions, CdcSummary};

#[cfg(test)]
mod tests;

#[doc(no_inline)]
pub use dts_core::{ApplySink, ApplyStats, ChangeEvent, ChangeSource, Position};
