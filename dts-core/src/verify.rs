//! Connector traits of data verification and repair: reading a target table's rows in the
//! value form the type mapping produces, and writing the statements that make a target
//! table match its source.
//!
//! Verification compares what a source's [`crate::SnapshotReader`] delivers, converted by the
//! task's [`crate::RowMapper`], with what a [`TargetReader`] reads back from the target: both
//! sides are then target-typed [`Value`]s of one form, compared exactly. Repair hands the
//! differences found to a [`RepairSink`].

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::connector::{Chunk, Row, RowBatch, TargetTable};
use crate::error::Result;
use crate::value::Value;

/// Reads the rows of a target table for verification.
///
/// Contract:
///
/// - Values come in the form the row mapping into this target engine produces for a
///   column of the same type (for PostgreSQL: `Int` for `smallint`/`integer`/`bigint`,
///   `Decimal` with the column's scale for `numeric`, bit-exact `Float`/`Double`, `Text`,
///   `Bytes`, `Date`, `DateTime` for `timestamp`, `Timestamp` in UTC for `timestamptz`,
///   `Time` for `time` and `interval`, `Json`, `Bits`), so that a value the mapping wrote
///   reads back equal.
/// - The chunk's key and bounds name target columns and hold target values; rows with
///   `lower <= key < upper` in the target's row-value order are read. Chunks of one plan
///   whose bounds meet partition the table, whatever order the target sorts keys in.
/// - Calls on one reader are sequential; several readers may run concurrently. Batches are
///   bounded, so memory stays bounded whatever the chunk's size.
pub trait TargetReader: Send {
    /// Streams the rows of `chunk` of `table`, the values of each row in the order of
    /// `table.columns`, in no particular order.
    fn read_chunk<'a>(
        &'a mut self,
        table: &'a TargetTable,
        chunk: &'a Chunk,
    ) -> BoxStream<'a, Result<RowBatch>>;
}

impl<R: TargetReader + ?Sized> TargetReader for Box<R> {
    fn read_chunk<'a>(
        &'a mut self,
        table: &'a TargetTable,
        chunk: &'a Chunk,
    ) -> BoxStream<'a, Result<RowBatch>> {
        (**self).read_chunk(table, chunk)
    }
}

/// One change that makes a target table match its source. Rows hold the target table's
/// columns in the order of [`TargetTable::columns`]; keys hold the values of the key
/// columns given with them.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Repair {
    /// Insert a row the target is missing.
    Insert(Row),
    /// Replace the non-key values of the row with this key.
    Update {
        /// The row's key.
        key: Vec<Value>,
        /// The row as the source holds it.
        row: Row,
    },
    /// Delete the row with this key.
    Delete {
        /// The row's key.
        key: Vec<Value>,
    },
    /// Delete one copy of a row of a table without a key (every column equal, NULLs
    /// included).
    DeleteOne(Row),
}

/// Whether repair statements are run or only written down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RepairMode {
    /// Run the statements, one transaction per chunk.
    #[default]
    Apply,
    /// Only return the statements.
    DryRun,
}

/// Makes a target table match its source, for the differences verification found.
///
/// Contract: the statements of one call run in one transaction, in the order returned
/// (deletes before inserts, so a row re-inserted under its key does not conflict); they
/// are complete SQL a user could run again by hand, and the returned list is exactly what
/// ran. Calls on one sink are sequential; several sinks may run concurrently on different
/// key ranges.
///
/// **Beside a running apply.** [`RepairSink::hold_apply`] opens the repair transaction and
/// locks the task's applied-position record in it, which the task's apply locks at the
/// start of each of its transactions: no apply transaction runs until the repair commits,
/// and the position it returns is the one the target holds meanwhile. The caller then reads
/// the source rows from a snapshot at a position at or after it, and the next
/// [`RepairSink::repair`] call runs in that transaction and commits it (a delete that finds
/// no row is then not an error: every key is written as the source held it). The apply
/// afterwards replays the changes between the two positions; it must write each keyed
/// row's whole final state (delete by key, insert), so the replay ends in the source's
/// state and never stops on a row the repair already wrote.
#[async_trait]
pub trait RepairSink: Send {
    /// Opens a repair transaction that holds the apply of task `task` (see the trait's
    /// documentation) and returns the task's applied position, `None` when it has none.
    ///
    /// # Errors
    ///
    /// [`crate::ErrorKind::Unsupported`] for a target whose apply cannot be held; database
    /// errors.
    async fn hold_apply(&mut self, task: &str) -> Result<Option<crate::Position>>;

    /// Builds the statements for `repairs` of `table`, whose key columns are `key` (empty
    /// for a table without a key), and runs them in one transaction unless `mode` is
    /// [`RepairMode::DryRun`]. Returns the statements, transaction control included.
    async fn repair(
        &mut self,
        table: &TargetTable,
        key: &[String],
        repairs: &[Repair],
        mode: RepairMode,
    ) -> Result<Vec<String>>;
}

#[async_trait]
impl<S: RepairSink + ?Sized> RepairSink for Box<S> {
    async fn hold_apply(&mut self, task: &str) -> Result<Option<crate::Position>> {
        (**self).hold_apply(task).await
    }

    async fn repair(
        &mut self,
        table: &TargetTable,
        key: &[String],
        repairs: &[Repair],
        mode: RepairMode,
    ) -> Result<Vec<String>> {
        (**self).repair(table, key, repairs, mode).await
    }
}
