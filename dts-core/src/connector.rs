//! Connector traits of the full load: reading a schema, probing keys for chunk planning,
//! reading a table in chunks from a snapshot, writing chunks.
//!
//! Delivery contract: a chunk may be read and written more than once (a killed run retries
//! it), so a sink must make [`ChunkSink::write_chunk`] atomic together with the record that
//! the chunk is done; then a retried chunk is either skipped or written whole, never twice.
//!
//! The traits are object-safe (`async-trait`): connectors are chosen at run time from a URL
//! and handed to the engines as boxes; a box of a connector is a connector too.

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::stream::BoxStream;

use crate::error::Result;
use crate::schema::{Catalog, Table, TableName};
use crate::value::Value;

/// One row: values in the table's column order.
pub type Row = Vec<Value>;

/// An owned batch of rows with an estimate of the memory it holds.
///
/// A batch holds values ([`RowBatch::rows`]), or, when the reader was asked for a
/// [`RowEncoding`] ([`SnapshotReader::read_chunk_encoded`]), rows in that encoding
/// ([`RowBatch::encoded`]), which a sink that accepted the encoding writes as they are,
/// and possibly values too: rows the reader did not encode, converted by the mapping as
/// always.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowBatch {
    /// The rows.
    pub rows: Vec<Row>,
    /// Approximate bytes held by the values, for memory bounds and throttling.
    pub size_bytes: usize,
    /// Rows in an encoding reader and sink agreed on, not decoded into values.
    pub encoded: Option<EncodedRows>,
}

/// A form in which rows travel from a snapshot reader to a chunk sink without becoming
/// [`Value`]s: when both ends store them alike, nothing is decoded and encoded again, and
/// the target's own input functions check every value; when the reader's engine differs
/// from the target's, the reader converts each value straight into the target's form,
/// exactly as the mapping of the two engines converts it.
///
/// The engine asks the reader which encoding it can deliver a table in
/// ([`SnapshotReader::row_encoding`]) and the sink whether it writes it into the target
/// table ([`ChunkSink::accepts_encoding`]); only then does it read the table's chunks
/// encoded, and only when the table's rows need no conversion or the reader's encoding
/// is the conversion the table's mapping makes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RowEncoding {
    /// Tuples of PostgreSQL's binary `COPY` format, without its header and trailer: per row
    /// a 16-bit field count, then per field a 32-bit length (-1 for NULL) and the value in
    /// its type's binary form.
    PgBinaryCopy {
        /// Each column's type and type modifier (`-1` for none), as they fix the binary
        /// form and what the column holds: the OID of a built-in base type (a domain
        /// counts as the type it is over, with its modifier), or `anyenum` (3500) for
        /// every enum, whose binary form is its label. A sink accepts only columns of
        /// exactly these types and modifiers, so that the target neither reinterprets nor
        /// rounds a value.
        types: Vec<(u32, i32)>,
    },
}

/// Rows in a [`RowEncoding`], as one piece of bytes holding whole rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodedRows {
    /// How many rows `data` holds.
    pub rows: u64,
    /// The rows, each whole.
    pub data: Vec<u8>,
}

impl RowBatch {
    /// An empty batch with room for `rows` rows.
    pub fn with_capacity(rows: usize) -> Self {
        Self {
            rows: Vec::with_capacity(rows),
            size_bytes: 0,
            encoded: None,
        }
    }

    /// A batch of `rows` rows held encoded in `data`.
    pub fn encoded(rows: u64, data: Vec<u8>) -> Self {
        Self {
            rows: Vec::new(),
            size_bytes: data.len(),
            encoded: Some(EncodedRows { rows, data }),
        }
    }

    /// Appends a row, adding its size to [`RowBatch::size_bytes`].
    pub fn push(&mut self, row: Row) {
        self.size_bytes += row.iter().map(Value::size_hint).sum::<usize>();
        self.rows.push(row);
    }

    /// Number of rows, values and encoded ones.
    pub fn len(&self) -> usize {
        self.rows.len()
            + self
                .encoded
                .as_ref()
                .map_or(0, |e| usize::try_from(e.rows).unwrap_or(usize::MAX))
    }

    /// Whether the batch has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A key range of one table: rows with `lower <= key < upper` in the key's row-value order.
/// `None` bounds are open. A table without a usable key is one chunk with no key and no
/// bounds. A chunk whose two bounds are equal (an empty range otherwise, which no planner
/// makes) holds exactly the row whose key equals them: [`Chunk::point`], read by the
/// verification of sampled keys.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Chunk {
    /// 0-based chunk number within the table; stable across runs of the same plan.
    pub index: u32,
    /// The key columns the bounds refer to (empty for a whole-table chunk).
    pub key: Vec<String>,
    /// Inclusive lower bound, one value per key column.
    pub lower: Option<Vec<Value>>,
    /// Exclusive upper bound, one value per key column.
    pub upper: Option<Vec<Value>>,
}

impl Chunk {
    /// The single chunk covering a whole table.
    pub fn whole_table() -> Self {
        Self {
            index: 0,
            key: Vec::new(),
            lower: None,
            upper: None,
        }
    }

    /// The chunk holding only the row whose `key` columns equal `values`.
    pub fn point(index: u32, key: Vec<String>, values: Vec<Value>) -> Self {
        Self {
            index,
            key,
            lower: Some(values.clone()),
            upper: Some(values),
        }
    }

    /// Whether this is a [`Chunk::point`]: both bounds present and equal.
    pub fn is_point(&self) -> bool {
        matches!((&self.lower, &self.upper), (Some(l), Some(u)) if l == u)
    }
}

/// Reads a source's schema.
#[async_trait]
pub trait SchemaSource: Send + Sync {
    /// The names of the source's schemas (MySQL databases), system schemas left out.
    async fn list_schemas(&self) -> Result<Vec<String>>;

    /// Reads every table of the named schemas (MySQL databases). Schemas that do not exist
    /// are absent from the result, not an error.
    async fn read_catalog(&self, schemas: &[String]) -> Result<Catalog>;
}

/// Answers the chunk planner's questions about one table's key, inside a snapshot.
///
/// Key tuples are compared as row values in key column order (`(a, b) > (x, y)` means
/// `a > x OR (a = x AND b > y)`), which is the order of the key's index. Calls are
/// sequential.
#[async_trait]
pub trait KeyProber: Send {
    /// The key tuple that comes `step` rows after `after` (exclusive) in key order, i.e. the
    /// `step`-th key greater than `after` (the 1st being the smallest key greater than
    /// `after`); from the start of the table when `after` is `None`. `None` when fewer than
    /// `step` keys follow.
    async fn key_after(&mut self, after: Option<&[Value]>, step: u64)
        -> Result<Option<Vec<Value>>>;

    /// The smallest and the largest key tuple, or `None` for an empty table.
    async fn key_range(&mut self) -> Result<Option<(Vec<Value>, Vec<Value>)>>;
}

#[async_trait]
impl<P: KeyProber + ?Sized> KeyProber for Box<P> {
    async fn key_after(
        &mut self,
        after: Option<&[Value]>,
        step: u64,
    ) -> Result<Option<Vec<Value>>> {
        (**self).key_after(after, step).await
    }

    async fn key_range(&mut self) -> Result<Option<(Vec<Value>, Vec<Value>)>> {
        (**self).key_range().await
    }
}

/// Row filters of a snapshot read: per source table, a condition in the source's SQL that
/// the rows read must satisfy (a task's `where` filters, checked before they get here).
/// A reader adds the condition to the `WHERE` clause of every chunk of that table it reads;
/// chunk planning still probes keys over the whole table.
pub type RowFilters = std::sync::Arc<std::collections::BTreeMap<TableName, String>>;

/// Reads rows of one chunk from a consistent snapshot.
///
/// Every reader obtained from one snapshot sees the same data. Calls on one reader are
/// sequential; several readers may run concurrently.
pub trait SnapshotReader: Send {
    /// Streams the rows of `chunk` of `table` in batches, in no particular order. Batches
    /// are bounded in rows and bytes, so memory stays bounded whatever the chunk size.
    fn read_chunk<'a>(
        &'a mut self,
        table: &'a Table,
        chunk: &'a Chunk,
    ) -> BoxStream<'a, Result<RowBatch>>;

    /// A prober for the key `key` of `table` that reads through this reader's snapshot, for
    /// chunk planning. The reader is borrowed while the prober lives.
    ///
    /// # Errors
    ///
    /// When `key` names no column of `table` or a column the source cannot compare.
    fn key_prober<'a>(
        &'a mut self,
        table: &'a Table,
        key: &'a [String],
    ) -> Result<Box<dyn KeyProber + 'a>>;

    /// Holds `tables` still against changes of their definition (and truncation) until
    /// this reader's end, so that every chunk of them reads as the snapshot has them: on a
    /// source whose snapshots keep rows but not table definitions (PostgreSQL), schema
    /// changes and `TRUNCATE` then wait for the copy while writes go on. Called right after
    /// the snapshot is opened, on every reader.
    ///
    /// The default holds nothing: sources whose snapshot holds each table while it is read
    /// (MySQL/MariaDB metadata locks, SQLite's read transaction).
    ///
    /// # Errors
    ///
    /// A lock wait past the source's timeout ([`ErrorKind::Transient`](crate::ErrorKind)),
    /// a column read that a table no longer has, server errors.
    fn hold<'a>(&'a mut self, tables: &'a [&'a Table]) -> BoxFuture<'a, Result<()>> {
        let _ = tables;
        Box::pin(futures::future::ready(Ok(())))
    }

    /// The encoding this reader can deliver the rows of `table` in without making values
    /// of them (see [`RowEncoding`]), or `None` when it delivers the table only as values.
    /// An encoding of another engine's types says into which types the reader converts
    /// (as the default mapping of the two engines does); the caller uses it only where the
    /// table's mapping converts into exactly these types.
    ///
    /// The default answers `None`: a reader that implements no encoding says so, and the
    /// engine reads values through [`SnapshotReader::read_chunk`].
    fn row_encoding<'a>(
        &'a mut self,
        table: &'a Table,
    ) -> BoxFuture<'a, Result<Option<RowEncoding>>> {
        let _ = table;
        Box::pin(futures::future::ready(Ok(None)))
    }

    /// Like [`SnapshotReader::read_chunk`], with the rows in `encoding` (one that
    /// [`SnapshotReader::row_encoding`] gave for `table`): batches hold
    /// [`RowBatch::encoded`] rows, and, from a reader that converts, the rows it could not
    /// convert without the mapping's judgement (a value the mapping refuses or replaces,
    /// such as a zero date) as values, for the engine to convert and report as always.
    ///
    /// The default fails with [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported):
    /// a reader without encodings is never asked for one.
    fn read_chunk_encoded<'a>(
        &'a mut self,
        table: &'a Table,
        chunk: &'a Chunk,
        encoding: &'a RowEncoding,
    ) -> BoxStream<'a, Result<RowBatch>> {
        let _ = (chunk, encoding);
        let e = crate::Error::new(
            crate::ErrorKind::Unsupported,
            format!("this reader cannot read `{}` encoded", table.name),
        );
        Box::pin(futures::stream::once(futures::future::ready(Err(e))))
    }
}

impl<R: SnapshotReader + ?Sized> SnapshotReader for Box<R> {
    fn read_chunk<'a>(
        &'a mut self,
        table: &'a Table,
        chunk: &'a Chunk,
    ) -> BoxStream<'a, Result<RowBatch>> {
        (**self).read_chunk(table, chunk)
    }

    fn key_prober<'a>(
        &'a mut self,
        table: &'a Table,
        key: &'a [String],
    ) -> Result<Box<dyn KeyProber + 'a>> {
        (**self).key_prober(table, key)
    }

    fn hold<'a>(&'a mut self, tables: &'a [&'a Table]) -> BoxFuture<'a, Result<()>> {
        (**self).hold(tables)
    }

    fn row_encoding<'a>(
        &'a mut self,
        table: &'a Table,
    ) -> BoxFuture<'a, Result<Option<RowEncoding>>> {
        (**self).row_encoding(table)
    }

    fn read_chunk_encoded<'a>(
        &'a mut self,
        table: &'a Table,
        chunk: &'a Chunk,
        encoding: &'a RowEncoding,
    ) -> BoxStream<'a, Result<RowBatch>> {
        (**self).read_chunk_encoded(table, chunk, encoding)
    }
}

/// What a sink reports after writing a chunk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkStats {
    /// Rows written.
    pub rows: u64,
    /// Approximate bytes written.
    pub bytes: u64,
}

/// A target table and the columns a copy writes, in the order of the rows' values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetTable {
    /// The target table.
    pub name: TableName,
    /// Target column names, one per value of each row.
    pub columns: Vec<String>,
}

/// Writes chunks into target tables.
///
/// Each [`ChunkSink::write_chunk`] call is atomic: the rows of the chunk and the record that
/// the chunk is done are committed together, or not at all, so a chunk retried after a crash
/// is never written twice. Calls on one sink are sequential; several sinks may run
/// concurrently on different chunks.
#[async_trait]
pub trait ChunkSink: Send {
    /// Writes every batch of `batches` as chunk `chunk` of `table` and records the chunk as
    /// done, in one transaction. An error from the stream aborts the transaction.
    async fn write_chunk<'a>(
        &'a mut self,
        table: &'a TargetTable,
        chunk: &'a Chunk,
        batches: BoxStream<'a, Result<RowBatch>>,
    ) -> Result<ChunkStats>;

    /// The indexes of the chunks of `table` recorded as done by earlier runs.
    async fn done_chunks(&mut self, table: &TargetTable) -> Result<Vec<u32>>;

    /// Whether [`ChunkSink::write_chunk`] writes rows of `table` given in `encoding`
    /// ([`RowBatch::encoded`]) as they are: the target columns must store what the
    /// encoding describes exactly as the source does. Once it answered `true`, a chunk of
    /// `table` may come as encoded batches (which may also hold values), or as values only,
    /// as always.
    ///
    /// The default answers `false`: a sink that implements no encoding says so, and is
    /// given values.
    async fn accepts_encoding(
        &mut self,
        table: &TargetTable,
        encoding: &RowEncoding,
    ) -> Result<bool> {
        let _ = (table, encoding);
        Ok(false)
    }
}

#[async_trait]
impl<S: ChunkSink + ?Sized> ChunkSink for Box<S> {
    async fn write_chunk<'a>(
        &'a mut self,
        table: &'a TargetTable,
        chunk: &'a Chunk,
        batches: BoxStream<'a, Result<RowBatch>>,
    ) -> Result<ChunkStats> {
        (**self).write_chunk(table, chunk, batches).await
    }

    async fn done_chunks(&mut self, table: &TargetTable) -> Result<Vec<u32>> {
        (**self).done_chunks(table).await
    }

    async fn accepts_encoding(
        &mut self,
        table: &TargetTable,
        encoding: &RowEncoding,
    ) -> Result<bool> {
        (**self).accepts_encoding(table, encoding).await
    }
}
