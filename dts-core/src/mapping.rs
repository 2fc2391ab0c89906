//! The conversion seam: source rows and changes become target rows and changes here, once,
//! before any sink sees them.
//!
//! A mapping is chosen by the pair (source engine, target engine). For the full load it is a
//! [`RowMapper`] per table, applied by the copy engine between reader and sink; for
//! replication it is a [`ChangeMapper`], applied to the change stream between source and
//! sink. Sinks receive target-typed values under target names and only write them.

use crate::change::ChangeEvent;
use crate::connector::Row;
use crate::error::{Error, Result};

/// Why a value of a row could not be converted: the column's index in the row and the error
/// (which names the column and the problem).
#[derive(Debug)]
pub struct ConvertFailure {
    /// Index of the offending value in the row.
    pub column: usize,
    /// What is wrong with it.
    pub error: Error,
}

/// Converts the rows of one source table, in the order its snapshot reader delivers the
/// columns, into rows of its target table (the target table's written columns, same order).
pub trait RowMapper: Send + Sync {
    /// Converts `row` in place.
    ///
    /// # Errors
    ///
    /// The first value the target cannot hold, with its column index.
    fn map_row(&self, row: &mut Row) -> std::result::Result<(), ConvertFailure>;

    /// The values replaced so far as the task's options say (zero dates written as NULL,
    /// …), counted per `table.column`, for columns that had any.
    fn replaced_values(&self) -> Vec<(String, u64)>;
}

/// Converts a stream of source changes into target changes.
///
/// Contract:
///
/// - Events are given in source order, exactly as the source delivered them; a mapper keeps
///   the state their meaning depends on (the source schema as DDL changes it).
/// - Row changes come out naming the target table, with row images of the target's column
///   names and target-typed values; source columns the target does not hold (generated
///   columns) are left out. A value the target cannot hold is an error naming table, column
///   and key.
/// - [`crate::Change::Ddl`] comes out as [`crate::Change::Schema`] with the target
///   statements (none for a statement the target does not need, or one the task skips), so
///   every transaction end stays in the stream; [`crate::Change::Begin`] and
///   [`crate::Change::Commit`] pass unchanged. An event may be dropped (`None`) only when it
///   ends no transaction.
/// - After an error, or when the stream is restarted from an earlier position, the mapper
///   is rebuilt from the schema recorded at that position; it is never rewound.
pub trait ChangeMapper: Send {
    /// Maps one event.
    ///
    /// # Errors
    ///
    /// Values the target cannot hold, DDL that cannot be translated (unless skipped), changes
    /// to tables the mapping does not know.
    fn map(&mut self, event: ChangeEvent) -> Result<Option<ChangeEvent>>;
}

impl<M: ChangeMapper + ?Sized> ChangeMapper for Box<M> {
    fn map(&mut self, event: ChangeEvent) -> Result<Option<ChangeEvent>> {
        (**self).map(event)
    }
}

impl<M: RowMapper + ?Sized> RowMapper for std::sync::Arc<M> {
    fn map_row(&self, row: &mut Row) -> std::result::Result<(), ConvertFailure> {
        (**self).map_row(row)
    }

    fn replaced_values(&self) -> Vec<(String, u64)> {
        (**self).replaced_values()
    }
}
