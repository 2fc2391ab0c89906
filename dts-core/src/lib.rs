//! The core model of dts: values, schemas, log positions, connector traits and errors.
//!
//! Every other dts crate speaks in these types. A source connector reads a [`Catalog`] and
//! streams [`RowBatch`]es of [`Value`]s; a target connector writes them; the type-mapping
//! crate checks and converts values between engines; errors from every layer become one
//! classified [`Error`].
//!
//! ```no_run
//! use dts_core::{Decimal, Error, Value};
//!
//! fn main() -> Result<(), Error> {
//!     // Exact decimals of any precision survive unchanged.
//!     let d: Decimal = "12345678901234567890123456789012345.123456789012345678901234567890"
//!         .parse()
//!         .map_err(|e| Error::config("bad decimal").with_source(e))?;
//!     let v = Value::Decimal(d);
//!     assert_eq!(v.kind(), "decimal");
//!     Ok(())
//! }
//! ```
//!
//! This crate has no features and no I/O.

pub mod change;
pub mod check;
pub mod connector;
pub mod engine;
pub mod error;
pub mod mapping;
pub mod position;
pub mod schema;
pub mod state;
pub mod url;
pub mod value;
pub mod verify;

pub use async_trait::async_trait;
pub use change::{
    ApplySink, ApplyStats, CascadeLogging, Change, ChangeEvent, ChangeSource, RelationColumn,
    RowImage, SchemaChange, SqlMode,
};
pub use check::{CheckItem, CheckStatus, PrecheckReport};
pub use connector::{
    Chunk, ChunkSink, ChunkStats, EncodedRows, KeyProber, Row, RowBatch, RowEncoding, RowFilters,
    SchemaSource, SnapshotReader, TargetTable,
};
pub use engine::Engine;
pub use error::{End, Error, ErrorKind, Result};
pub use mapping::{ChangeMapper, ConvertFailure, RowMapper};
pub use position::{Lsn, Position};
pub use schema::{
    Catalog, Column, ColumnDefault, ForeignKey, Generated, Index, IndexColumn, IndexKind, Key,
    OmittedIndex, ReferentialAction, Schema, Table, TableName, UserType, UserTypeKind,
};
pub use state::{
    CopiedChunks, DroppedState, Heartbeat, PublishedProgress, ReaderRecord, ReplicationProgress,
    RunHolder, SampleProgress, StateStore, TableLoad, TaskFailure, TaskRecord, TaskState,
};
pub use value::{BitString, Date, DateTime, Decimal, Duration, ParseValueError, Short, Value};
pub use verify::{Repair, RepairMode, RepairSink, TargetReader};

/// The README's code blocks, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
