//! Change capture: the changes a source's log delivers, and the traits that read and apply
//! them.
//!
//! Delivery is at-least-once: after a crash a source resumes from the last position the
//! target acknowledged, so a sink must apply a transaction and record its end position in
//! one target transaction, and skip transactions at or before the recorded position.

use std::future::Future;

use crate::error::Result;
use crate::position::Position;
use crate::schema::TableName;
use crate::value::Value;

/// One row image: values of the source table's columns in the source's column order,
/// as the log carries them (binlog images include every column with `binlog_row_image=FULL`).
#[derive(Debug, Clone, PartialEq)]
pub struct RowImage {
    /// Source column names, in order (from the log's table metadata).
    pub columns: std::sync::Arc<Vec<String>>,
    /// The values, one per column.
    pub values: Vec<Value>,
}

/// A change to one table or to the schema, in source commit order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Change {
    /// A transaction begins.
    Begin,
    /// A row was inserted.
    Insert {
        /// The table.
        table: TableName,
        /// The new row.
        row: RowImage,
    },
    /// A row was updated (the key may have changed).
    Update {
        /// The table.
        table: TableName,
        /// The row before.
        before: RowImage,
        /// The row after.
        after: RowImage,
    },
    /// A row was deleted.
    Delete {
        /// The table.
        table: TableName,
        /// The deleted row.
        row: RowImage,
    },
    /// A table was truncated.
    Truncate {
        /// The table.
        table: TableName,
    },
    /// A schema change, as the source's SQL text, with the default schema it ran in.
    Ddl {
        /// The default database of the session that ran it.
        schema: Option<String>,
        /// The statement.
        sql: String,
    },
    /// A transaction committed; `position` is where reading resumes after it.
    Commit,
}

/// A change with where it sits in the source log.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    /// The change.
    pub change: Change,
    /// The log position after this event: resuming there continues with the next event.
    /// For [`Change::Commit`] (and [`Change::Ddl`], which commits implicitly) this is the
    /// position to acknowledge.
    pub position: Position,
    /// The source's timestamp of the event, in seconds since the Unix epoch (for lag).
    pub timestamp: u32,
}

/// Reads changes from a source log, in commit order.
pub trait ChangeSource: Send {
    /// Waits for the next events and returns up to `max` of them (at least one), or an
    /// empty vector when `timeout` passes with nothing new. Only changes of selected tables
    /// (and DDL in selected databases) are returned; transaction boundaries are always kept.
    fn next_events(
        &mut self,
        max: usize,
        timeout: std::time::Duration,
    ) -> impl Future<Output = Result<Vec<ChangeEvent>>> + Send;
}
