//! The apply side of replication: a target that applies batches of whole source transactions
//! and records how far it got, atomically.

use std::future::Future;

use dts_core::{ChangeEvent, Position, Result};

/// What one [`ApplySink::apply`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Source transactions applied (a DDL statement counts as one); transactions the sink
    /// skipped because it had applied them before are not counted.
    pub transactions: u64,
    /// Row changes applied (inserts, updates and deletes), before any coalescing.
    pub rows: u64,
}

impl std::ops::AddAssign for ApplyStats {
    fn add_assign(&mut self, other: Self) {
        self.transactions += other.transactions;
        self.rows += other.rows;
    }
}

/// A target that applies source transactions.
///
/// Contract:
///
/// - **Atomic batches.** [`ApplySink::apply`] applies every event of the batch and records
///   `position` as applied in one target transaction: after a crash either all of the batch
///   and the new position are there, or none of it and the old position.
/// - **At-least-once delivery.** After a failure the engine resumes the source from
///   [`ApplySink::applied_position`], so events the sink never committed arrive again.
///   Transactions at or before the recorded position may arrive again too (a source that
///   resumes at a coarser point); a sink skips them.
/// - **Whole transactions.** A batch holds whole source transactions in commit order and
///   ends with a [`Change::Commit`](dts_core::Change::Commit) or
///   [`Change::Ddl`](dts_core::Change::Ddl) event. One source transaction is never split
///   across calls, so a single transaction of millions of rows arrives in one call: the
///   sink must stream it into the target (for example in pieces within its transaction)
///   rather than copy it whole, to keep its own memory bounded.
/// - **Sequential calls.** Calls on one sink never overlap. A call may be abandoned (its
///   future dropped) only when the engine gives the sink up; the sink must then leave
///   nothing committed for that call.
pub trait ApplySink: Send {
    /// Applies `events` (whole source transactions, in commit order; the slice ends with a
    /// `Commit` or `Ddl` event) and records `position` as applied, in one target
    /// transaction: all or nothing.
    ///
    /// # Errors
    ///
    /// Any [`dts_core::Error`]; the engine retries those for which
    /// [`dts_core::Error::is_retryable`] holds, after reconnecting, and stops on the others.
    fn apply<'a>(
        &'a mut self,
        events: &'a [ChangeEvent],
        position: &'a Position,
    ) -> impl Future<Output = Result<ApplyStats>> + Send + 'a;

    /// The position recorded by the last successful [`ApplySink::apply`] (or by whoever set
    /// up the task, e.g. the snapshot's position), if any.
    ///
    /// # Errors
    ///
    /// Any [`dts_core::Error`], classified as for [`ApplySink::apply`].
    fn applied_position(&mut self) -> impl Future<Output = Result<Option<Position>>> + Send;
}
