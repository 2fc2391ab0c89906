//! Chunk reads: the statement of a chunk, and its rows streamed in bounded batches.

use std::fmt::Write as _;

use dts_core::KeyProber;
#[cfg(feature = "postgres")]
use dts_core::RowEncoding;
use dts_core::{Chunk, Column, Error, ErrorKind, Result, RowBatch, SnapshotReader, Table, Value};
#[cfg(feature = "postgres")]
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt};
use mysql_async::prelude::*;
use mysql_async::{Conn, Row};

use super::decode::{decode, DecodeError};
#[cfg(feature = "postgres")]
use super::encode::PgRowEncoder;
use super::prober::{qualified, Cmp, KeyColumns, MySqlKeyProber};
use super::{MySqlSnapshotReader, BATCH_BYTES, BATCH_ROWS};
use crate::mysql::error::map_error;
use crate::mysql::source::quote_ident;
use crate::mysql::types::{MySqlColumn, ValueKind as Kind};

impl MySqlSnapshotReader {
    /// The columns whose values each row holds, in order: the table's columns without the
    /// generated ones (the target computes those).
    pub fn columns_read(table: &Table) -> Vec<&Column> {
        table
            .columns
            .iter()
            .filter(|c| c.generated.is_none())
            .collect()
    }

    /// Sets the row filters of the tables this reader reads: each chunk of a filtered
    /// table reads only the rows its condition holds for.
    pub fn set_row_filters(&mut self, filters: dts_core::RowFilters) {
        self.filters = filters;
    }

    /// This reader's number, 0-based, among the readers of its snapshot.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The connection, inside the snapshot transaction: queries on it see the snapshot's
    /// data (e.g. row counts for verification). Do not end the transaction.
    pub fn conn(&mut self) -> &mut Conn {
        &mut self.conn
    }

    /// A key prober for planning the chunks of `table` over `key` on this reader, so the
    /// plan matches the snapshot.
    ///
    /// # Errors
    ///
    /// As [`MySqlKeyProber::new`].
    pub fn key_prober<'c>(
        &'c mut self,
        table: &Table,
        key: &[String],
    ) -> Result<MySqlKeyProber<'c>> {
        MySqlKeyProber::new(&mut self.conn, table, key)
    }

    /// Ends the snapshot transaction and closes the connection.
    ///
    /// # Errors
    ///
    /// Server and connection errors.
    pub async fn close(mut self) -> Result<()> {
        self.conn
            .query_drop("COMMIT")
            .await
            .map_err(|e| map_error(e, "ending a snapshot transaction"))?;
        self.conn
            .disconnect()
            .await
            .map_err(|e| map_error(e, "closing a snapshot reader"))
    }
}

impl SnapshotReader for MySqlSnapshotReader {
    fn key_prober<'a>(
        &'a mut self,
        table: &'a Table,
        key: &'a [String],
    ) -> Result<Box<dyn KeyProber + 'a>> {
        Ok(Box::new(MySqlKeyProber::new(&mut self.conn, table, key)?))
    }

    fn read_chunk<'a>(
        &'a mut self,
        table: &'a Table,
        chunk: &'a Chunk,
    ) -> BoxStream<'a, Result<RowBatch>> {
        let filter = self.filters.get(&table.name).map(String::as_str);
        read_chunk_with(&mut self.conn, table, chunk, filter, None)
    }

    /// [`RowEncoding::PgBinaryCopy`] of the types the default MySQL → PostgreSQL mapping
    /// gives the columns read: the reader then converts each value straight into a
    /// PostgreSQL target's binary `COPY` form, exactly as that mapping and the PostgreSQL
    /// sink would (rows holding a value the mapping refuses or replaces come as values).
    #[cfg(feature = "postgres")]
    fn row_encoding<'a>(
        &'a mut self,
        table: &'a Table,
    ) -> BoxFuture<'a, Result<Option<RowEncoding>>> {
        let offer = PgRowEncoder::offer(&Self::columns_read(table));
        Box::pin(futures::future::ready(Ok(offer)))
    }

    #[cfg(feature = "postgres")]
    fn read_chunk_encoded<'a>(
        &'a mut self,
        table: &'a Table,
        chunk: &'a Chunk,
        encoding: &'a RowEncoding,
    ) -> BoxStream<'a, Result<RowBatch>> {
        match PgRowEncoder::new(table, &Self::columns_read(table), encoding) {
            Ok(encoder) => {
                let filter = self.filters.get(&table.name).map(String::as_str);
                read_chunk_with(&mut self.conn, table, chunk, filter, Some(encoder))
            }
            Err(e) => stream::once(async move { Err(e) }).boxed(),
        }
    }
}

/// Converts rows into a target's encoding, when one was asked for.
#[cfg(feature = "postgres")]
type Encoder = PgRowEncoder;
/// Converts rows into a target's encoding: none without a target engine that has one.
#[cfg(not(feature = "postgres"))]
type Encoder = NoEncoder;

/// No encoder: no encoding can be asked for.
#[cfg(not(feature = "postgres"))]
enum NoEncoder {}

#[cfg(not(feature = "postgres"))]
impl NoEncoder {
    fn encode_row(&mut self, _: &[Option<mysql_async::Value>], _: &mut bytes::BytesMut) -> bool {
        match *self {}
    }
}

/// Streams the rows of `chunk` of `table` through `conn`, as a snapshot reader reads them:
/// the table's columns without the generated ones, each decoded by its declared type, in
/// bounded batches. The verification reader of a MySQL target reads with it too, so both
/// sides of MySQL → MySQL decode alike.
pub(crate) fn read_chunk_on<'a>(
    conn: &'a mut Conn,
    table: &'a Table,
    chunk: &'a Chunk,
) -> BoxStream<'a, Result<RowBatch>> {
    read_chunk_with(conn, table, chunk, None, None)
}

/// As [`read_chunk_on`], reading only the rows for which the SQL condition `filter` holds,
/// with each row converted by `encoder` when there is one.
fn read_chunk_with<'a>(
    conn: &'a mut Conn,
    table: &'a Table,
    chunk: &'a Chunk,
    filter: Option<&str>,
    encoder: Option<Encoder>,
) -> BoxStream<'a, Result<RowBatch>> {
    let plan = match ChunkRead::plan_filtered(table, chunk, filter) {
        Ok(plan) => plan,
        Err(e) => return stream::once(async move { Err(e) }).boxed(),
    };
    let state = ReadState::Start {
        conn,
        plan,
        encoder,
    };
    stream::unfold(state, |state| async move { state.step().await }).boxed()
}

/// How to read one chunk: the statement, its parameters and the column decoders.
pub(super) struct ChunkRead<'a> {
    table: &'a Table,
    chunk_index: u32,
    pub(super) sql: String,
    pub(super) params: Vec<mysql_async::Value>,
    columns: Vec<(&'a Column, Kind)>,
    /// Positions among `columns` of the key columns, to name the row in errors.
    pub(super) key_positions: Vec<usize>,
}

impl<'a> ChunkRead<'a> {
    #[cfg(test)]
    pub(super) fn plan(table: &'a Table, chunk: &Chunk) -> Result<Self> {
        Self::plan_filtered(table, chunk, None)
    }

    /// The read of `chunk`, of the rows `filter` (a SQL condition) holds for when given.
    pub(super) fn plan_filtered(
        table: &'a Table,
        chunk: &Chunk,
        filter: Option<&str>,
    ) -> Result<Self> {
        let ctx = || format!("reading chunk {} of `{}`", chunk.index, table.name);
        let columns = MySqlSnapshotReader::columns_read(table)
            .into_iter()
            .map(|c| Ok((c, MySqlColumn::of(table, c)?.kind)))
            .collect::<Result<Vec<_>>>()
            .map_err(|e| e.context(ctx()))?;
        if columns.is_empty() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("table `{}` has no stored columns to read", table.name),
            ));
        }
        let mut sql = String::from("SELECT ");
        for (i, (c, _)) in columns.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&quote_ident(&c.name));
        }
        let _ = write!(sql, " FROM {}", qualified(&table.name));
        let mut params = Vec::new();
        let mut terms = Vec::new();
        if chunk.lower.is_some() || chunk.upper.is_some() {
            let key = KeyColumns::new(table, &chunk.key).map_err(|e| e.context(ctx()))?;
            if let Some(index) = &key.index {
                let _ = write!(sql, " FORCE INDEX ({})", quote_ident(index));
            }
            if let (true, Some(point)) = (chunk.is_point(), &chunk.lower) {
                terms.push(
                    key.equal(point, &mut params)
                        .map_err(|e| e.context(ctx()))?,
                );
            } else if let Some(lower) = &chunk.lower {
                terms.push(
                    key.compare(lower, Cmp::Ge, &mut params)
                        .map_err(|e| e.context(ctx()))?,
                );
            }
            if let (false, Some(upper)) = (chunk.is_point(), &chunk.upper) {
                terms.push(
                    key.compare(upper, Cmp::Lt, &mut params)
                        .map_err(|e| e.context(ctx()))?,
                );
            }
        }
        if let Some(filter) = filter {
            terms.push(format!("({filter}\n)"));
        }
        if !terms.is_empty() {
            let _ = write!(sql, " WHERE {}", terms.join(" AND "));
        }
        let key_names: Vec<String> = if chunk.key.is_empty() {
            table.chunk_key().unwrap_or_default()
        } else {
            chunk.key.clone()
        };
        let key_positions = key_names
            .iter()
            .filter_map(|k| columns.iter().position(|(c, _)| &c.name == k))
            .collect();
        Ok(Self {
            table,
            chunk_index: chunk.index,
            sql,
            params,
            columns,
            key_positions,
        })
    }

    fn context(&self) -> String {
        format!(
            "reading chunk {} of `{}`",
            self.chunk_index, self.table.name
        )
    }

    /// Decodes one row; an undecodable value fails the row, naming column and key.
    pub(super) fn decode_row(&self, raw: Vec<Option<mysql_async::Value>>) -> Result<Vec<Value>> {
        if raw.len() != self.columns.len() {
            return Err(Error::internal(format!(
                "{}: expected {} values per row, got {}",
                self.context(),
                self.columns.len(),
                raw.len()
            )));
        }
        let mut out = Vec::with_capacity(raw.len());
        let mut failure: Option<(usize, DecodeError)> = None;
        for (i, (v, (_, kind))) in raw.into_iter().zip(&self.columns).enumerate() {
            match decode(*kind, v.unwrap_or(mysql_async::Value::NULL)) {
                Ok(v) => out.push(v),
                Err(e) => {
                    failure.get_or_insert((i, e));
                    out.push(Value::Null);
                }
            }
        }
        match failure {
            None => Ok(out),
            Some((i, e)) => {
                let column = self.columns[i].0;
                let mut message = format!(
                    "{} in column `{}.{}`",
                    e.describe(),
                    self.table.name,
                    column.name
                );
                if !self.key_positions.is_empty() {
                    let key: Vec<String> = self
                        .key_positions
                        .iter()
                        .map(|&p| render_key_value(&out[p]))
                        .collect();
                    let _ = write!(message, " at key ({})", key.join(", "));
                }
                Err(Error::new(e.kind(), message).context(self.context()))
            }
        }
    }
}

/// The state of a chunk's row stream.
enum ReadState<'a> {
    Start {
        conn: &'a mut Conn,
        plan: ChunkRead<'a>,
        encoder: Option<Encoder>,
    },
    Rows {
        rows: BoxStream<'a, mysql_async::Result<Row>>,
        plan: ChunkRead<'a>,
        encoder: Option<Encoder>,
        /// The size of the last encoded batch, to size the next one's buffer.
        last_bytes: usize,
    },
    Done,
}

impl<'a> ReadState<'a> {
    async fn step(self) -> Option<(Result<RowBatch>, ReadState<'a>)> {
        let (mut rows, plan, mut encoder, last_bytes) = match self {
            ReadState::Done => return None,
            ReadState::Rows {
                rows,
                plan,
                encoder,
                last_bytes,
            } => (rows, plan, encoder, last_bytes),
            ReadState::Start {
                conn,
                plan,
                encoder,
            } => {
                let params = plan.params.clone();
                match conn
                    .exec_stream::<Row, _, _>(plan.sql.clone(), params)
                    .await
                {
                    Ok(rows) => (rows.boxed(), plan, encoder, 0),
                    Err(e) => return Some((Err(map_error(e, plan.context())), ReadState::Done)),
                }
            }
        };
        let mut batch = RowBatch::with_capacity(if encoder.is_some() {
            0
        } else {
            BATCH_ROWS.min(1024)
        });
        // The rows the encoder converted, and their bytes; a batch of an encoded read
        // carries them even when there are none, so that a sink sees the chunk's form.
        let mut encoded_rows: u64 = 0;
        let mut encoded = bytes::BytesMut::with_capacity(if encoder.is_some() {
            last_bytes + last_bytes / 8 + 1024
        } else {
            0
        });
        let finish = |mut batch: RowBatch, rows: u64, data: bytes::BytesMut, encoding: bool| {
            if encoding {
                batch.size_bytes += data.len();
                batch.encoded = Some(dts_core::EncodedRows {
                    rows,
                    // A fresh buffer of one owner: its memory becomes the vector, uncopied.
                    data: Vec::from(data),
                });
            }
            batch
        };
        loop {
            match rows.next().await {
                Some(Ok(row)) => {
                    let raw = row.unwrap_raw();
                    let converted = encoder
                        .as_mut()
                        .is_some_and(|e| e.encode_row(&raw, &mut encoded));
                    if converted {
                        encoded_rows += 1;
                    } else {
                        match plan.decode_row(raw) {
                            Ok(values) => batch.push(values),
                            Err(e) => return Some((Err(e), ReadState::Done)),
                        }
                    }
                    let count =
                        batch.rows.len() + usize::try_from(encoded_rows).unwrap_or(usize::MAX);
                    if count >= BATCH_ROWS || batch.size_bytes + encoded.len() >= BATCH_BYTES {
                        let on = encoder.is_some();
                        let last_bytes = encoded.len();
                        return Some((
                            Ok(finish(batch, encoded_rows, encoded, on)),
                            ReadState::Rows {
                                rows,
                                plan,
                                encoder,
                                last_bytes,
                            },
                        ));
                    }
                }
                Some(Err(e)) => return Some((Err(map_error(e, plan.context())), ReadState::Done)),
                None => {
                    return if batch.is_empty() && encoded_rows == 0 {
                        None
                    } else {
                        let on = encoder.is_some();
                        Some((
                            Ok(finish(batch, encoded_rows, encoded, on)),
                            ReadState::Done,
                        ))
                    };
                }
            }
        }
    }
}

/// A short rendering of a key value for error messages.
fn render_key_value(v: &Value) -> String {
    const MAX: usize = 40;
    let quoted = |s: &str| {
        let mut t: String = s.chars().take(MAX).collect();
        if s.chars().count() > MAX {
            t.push('…');
        }
        format!("'{t}'")
    };
    match v {
        Value::Null => "NULL".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Int(n) => n.to_string(),
        Value::UInt(n) => n.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Double(f) => f.to_string(),
        Value::Decimal(d) => d.to_string(),
        Value::Text(s) | Value::Json(s) => quoted(s),
        Value::Bytes(b) => {
            let mut s = String::from("x'");
            for byte in b.iter().take(MAX / 2) {
                let _ = write!(s, "{byte:02X}");
            }
            if b.len() > MAX / 2 {
                s.push('…');
            }
            s.push('\'');
            s
        }
        Value::Date(d) => quoted(&d.to_string()),
        Value::DateTime(d) | Value::Timestamp(d) => quoted(&d.to_string()),
        Value::Time(d) => quoted(&d.to_string()),
        Value::Year(y) => y.to_string(),
        Value::Bits(b) => format!("b'{b}'"),
    }
}
