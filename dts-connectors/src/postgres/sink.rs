//! Writing chunks into PostgreSQL tables with binary `COPY`, each chunk in one transaction
//! together with its checkpoint record in `dts_meta.chunk`.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use dts_core::{
    Chunk, ChunkSink, ChunkStats, Error, ErrorKind, Result, RowBatch, RowEncoding, TableName,
    TargetTable,
};
use futures::stream::BoxStream;
use futures::{SinkExt, StreamExt};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Statement};

use super::copy::{is_supported_type, PgCopyColumn, PgCopyEncoder};
use super::error::map_error;
use super::state::{migrate, INSERT_CHECKPOINT, SELECT_DONE};
use super::target::connect_client;

/// Encoded bytes are handed to the connection in pieces of about this size.
const SEND_BYTES: usize = 512 << 10;
/// Capacity of the encoding buffer: a piece plus room for the row that crosses the mark.
const BUFFER_BYTES: usize = 1 << 20;

/// The target columns' types, a domain resolved to its base type and an enum to `anyenum`.
pub(crate) const SELECT_COLUMNS: &str = "\
    SELECT a.attname, \
           CASE WHEN b.typtype = 'e' THEN 'anyenum'::regtype::oid ELSE b.oid END, \
           CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END, \
           format_type(a.atttypid, a.atttypmod) \
    FROM pg_attribute a \
    JOIN pg_class c ON c.oid = a.attrelid \
    JOIN pg_namespace n ON n.oid = c.relnamespace \
    JOIN pg_type t ON t.oid = a.atttypid \
    JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END \
    WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped \
      AND a.attname = ANY($3)";

/// A target table's cached copy plan: its columns, the prepared `COPY` and the encoder.
struct TablePlan {
    columns: Vec<String>,
    /// Each column's type and typmod, as [`RowEncoding::PgBinaryCopy`] names them.
    types: Vec<(u32, i32)>,
    copy: Statement,
    encoder: PgCopyEncoder,
    /// The binary `COPY` taking rows encoded as the source sent them, once an encoding was
    /// accepted ([`ChunkSink::accepts_encoding`]).
    pass: Option<Statement>,
}

/// A [`ChunkSink`] writing into PostgreSQL through one connection.
///
/// Each chunk is one transaction: a `COPY` of its rows (binary; text when the table has a
/// column of a type the binary encoder does not write, see
/// [`PgCopyEncoder::for_any_types`]), streamed in pieces of about
/// 512 KiB while the batches arrive (memory stays bounded whatever the chunk's size), then
/// an insert into `dts_meta.chunk` keyed by task, table and chunk number, then `COMMIT`.
/// The key makes a chunk that is written twice fail at the second write, leaving no
/// duplicate rows.
///
/// When the batch stream yields an error, a value cannot be encoded, or the server rejects
/// the data, the `COPY` is aborted and the transaction rolled back; the stream's error is
/// returned as it is, and an encoding error is prefixed with the row's 1-based position in
/// the chunk (``row 2 of chunk 7: column `name`: …``). Dropping the future mid-chunk rolls
/// back too.
///
/// Column types are read from `pg_attribute` once per table and cached; a sink is meant for
/// one task whose target schema does not change while it runs.
///
/// ```no_run
/// use dts_connectors::postgres::PgChunkSink;
/// use dts_core::{ChunkSink, TableName, TargetTable};
///
/// # async fn demo() -> Result<(), dts_core::Error> {
/// let mut sink = PgChunkSink::connect("postgres://dts@127.0.0.1/shop", "task-1").await?;
/// let table = TargetTable {
///     name: TableName::new("shop", "orders"),
///     columns: vec!["id".into(), "total".into()],
/// };
/// println!("done: {:?}", sink.done_chunks(&table).await?);
/// # Ok(())
/// # }
/// ```
pub struct PgChunkSink {
    client: Client,
    task: String,
    insert_checkpoint: Statement,
    select_done: Statement,
    tables: HashMap<TableName, TablePlan>,
    buffer: BytesMut,
    /// Whether the session reads dates and intervals as text `COPY` needs.
    text_session: bool,
}

impl std::fmt::Debug for PgChunkSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgChunkSink")
            .field("task", &self.task)
            .field("tables", &self.tables.len())
            .finish_non_exhaustive()
    }
}

impl PgChunkSink {
    /// Connects to the target at `url` for task `task` (the name checkpoints are recorded
    /// under), creating the checkpoint table if needed.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] for a malformed URL; classified connection and database errors.
    pub async fn connect(url: &str, task: &str) -> Result<Self> {
        let client = connect_client(url).await?;
        Self::from_client(client, task).await
    }

    /// A sink over an existing connection (its session settings do not matter: values are
    /// sent in binary), creating the checkpoint table if needed.
    ///
    /// # Errors
    ///
    /// Classified database errors.
    pub async fn from_client(client: Client, task: &str) -> Result<Self> {
        migrate(&client).await?;
        let insert_checkpoint = client
            .prepare(INSERT_CHECKPOINT)
            .await
            .map_err(|e| map_error(e, "preparing the checkpoint insert"))?;
        let select_done = client
            .prepare(SELECT_DONE)
            .await
            .map_err(|e| map_error(e, "preparing the checkpoint query"))?;
        Ok(Self {
            client,
            task: task.to_string(),
            insert_checkpoint,
            select_done,
            tables: HashMap::new(),
            buffer: BytesMut::with_capacity(BUFFER_BYTES),
            text_session: false,
        })
    }

    /// The task name checkpoints are recorded under.
    pub fn task(&self) -> &str {
        &self.task
    }

    /// The underlying connection.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Reads the target columns' types and prepares the `COPY`, unless cached.
    async fn plan(&mut self, table: &TargetTable) -> Result<()> {
        if self
            .tables
            .get(&table.name)
            .is_some_and(|p| p.columns == table.columns)
        {
            return Ok(());
        }
        let name = &table.name;
        let columns = target_columns(&self.client, name, &table.columns, true).await?;
        let types = columns.iter().map(|c| (c.type_oid, c.typmod)).collect();
        let encoder = PgCopyEncoder::for_any_types(&columns)?;
        if encoder.is_text() && !self.text_session {
            // Text input of dates and intervals as a PostgreSQL source prints them.
            self.client
                .batch_execute("SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'")
                .await
                .map_err(|e| map_error(e, "setting up the target session for text copy"))?;
            self.text_session = true;
        }
        let sql = copy_sql(table, !encoder.is_text());
        let copy = self
            .client
            .prepare(&sql)
            .await
            .map_err(|e| map_error(e, format!("preparing the copy into `{name}`")))?;
        self.tables.insert(
            name.clone(),
            TablePlan {
                columns: table.columns.clone(),
                types,
                copy,
                encoder,
                pass: None,
            },
        );
        Ok(())
    }

    /// Whether rows of `table` in `encoding` can be written as they are: the target
    /// columns have exactly the types and modifiers the source's binary form holds.
    async fn accepts(&mut self, table: &TargetTable, encoding: &RowEncoding) -> Result<bool> {
        let RowEncoding::PgBinaryCopy { types } = encoding else {
            return Ok(false);
        };
        self.plan(table).await?;
        let plan = self
            .tables
            .get_mut(&table.name)
            .ok_or_else(|| Error::internal(format!("no copy plan for `{}`", table.name)))?;
        if &plan.types != types {
            return Ok(false);
        }
        if plan.pass.is_none() {
            let pass = self
                .client
                .prepare(&copy_sql(table, true))
                .await
                .map_err(|e| map_error(e, format!("preparing the copy into `{}`", table.name)))?;
            plan.pass = Some(pass);
        }
        Ok(true)
    }

    async fn write(
        &mut self,
        table: &TargetTable,
        chunk: &Chunk,
        batches: BoxStream<'_, Result<RowBatch>>,
    ) -> Result<ChunkStats> {
        self.plan(table).await?;
        let name = &table.name;
        let chunk_no = i32::try_from(chunk.index)
            .map_err(|_| Error::internal(format!("chunk number {} is too large", chunk.index)))?;
        let Self {
            client,
            task,
            insert_checkpoint,
            tables,
            buffer,
            ..
        } = self;
        let plan = tables
            .get_mut(name)
            .ok_or_else(|| Error::internal(format!("no copy plan for `{name}`")))?;
        let copy_what = || format!("copying chunk {} into `{name}`", chunk.index);

        // A chunk comes all encoded or all as values: its first batch says which.
        let mut batches = batches.peekable();
        let encoded = matches!(
            std::pin::Pin::new(&mut batches).peek().await,
            Some(Ok(b)) if b.encoded.is_some()
        );
        let statement = if encoded {
            plan.pass.as_ref().ok_or_else(|| {
                Error::internal(format!(
                    "encoded rows for `{name}`, whose encoding was not accepted"
                ))
            })?
        } else {
            &plan.copy
        };

        let tx = client
            .transaction()
            .await
            .map_err(|e| map_error(e, "starting a target transaction"))?;
        let copy = tx
            .copy_in::<_, Bytes>(statement)
            .await
            .map_err(|e| map_error(e, copy_what()))?;
        // Boxed, so that dropping it aborts the COPY.
        let mut copy = Box::pin(copy);

        buffer.clear();
        if encoded {
            PgCopyEncoder::write_header(buffer);
        } else {
            plan.encoder.write_start(buffer);
        }
        let mut rows: u64 = 0;
        let mut bytes: u64 = 0;
        let mut failure: Option<Error> = None;
        'batches: while let Some(batch) = batches.next().await {
            let batch = match batch {
                Ok(batch) => batch,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            // Values beside encoded rows (rows the reader did not encode) are encoded here
            // into the same binary `COPY`, which needs a binary encoder.
            if encoded != batch.encoded.is_some()
                || (encoded && !batch.rows.is_empty() && plan.encoder.is_text())
            {
                failure = Some(Error::internal(format!(
                    "chunk {} of `{name}` mixes encoded rows and values",
                    chunk.index
                )));
                break;
            }
            for row in &batch.rows {
                if let Err(e) = plan.encoder.encode_row(row, buffer) {
                    failure =
                        Some(e.context(format_args!("row {} of chunk {}", rows + 1, chunk.index)));
                    break 'batches;
                }
                rows += 1;
                if buffer.len() >= SEND_BYTES {
                    bytes += buffer.len() as u64;
                    if let Err(e) = copy.feed(buffer.split().freeze()).await {
                        failure = Some(map_error(e, copy_what()));
                        break 'batches;
                    }
                    if buffer.capacity() < SEND_BYTES {
                        buffer.reserve(BUFFER_BYTES);
                    }
                }
            }
            if let Some(data) = batch.encoded {
                // Rows as the source sent them: handed on whole, after what is buffered.
                rows += data.rows;
                bytes += data.data.len() as u64;
                if !buffer.is_empty() {
                    bytes += buffer.len() as u64;
                    if let Err(e) = copy.feed(buffer.split().freeze()).await {
                        failure = Some(map_error(e, copy_what()));
                        break;
                    }
                }
                if let Err(e) = copy.feed(Bytes::from(data.data)).await {
                    failure = Some(map_error(e, copy_what()));
                    break;
                }
            }
        }
        if let Some(e) = failure {
            // Dropping the copy sink without finishing it aborts the COPY.
            drop(copy);
            if let Err(rollback) = tx.rollback().await {
                tracing::debug!(table = %name, chunk = chunk.index, error = %rollback,
                    "rollback after a failed chunk failed");
            }
            return Err(e);
        }

        if encoded {
            PgCopyEncoder::write_trailer(buffer);
        } else {
            plan.encoder.write_end(buffer);
        }
        bytes += buffer.len() as u64;
        let sent = async {
            copy.feed(buffer.split().freeze()).await?;
            copy.as_mut().finish().await
        }
        .await
        .map_err(|e| map_error(e, copy_what()))?;
        if sent != rows {
            return Err(Error::internal(format!(
                "copy of chunk {} into `{name}` stored {sent} rows of {rows}",
                chunk.index
            )));
        }
        let row_count = i64::try_from(rows).unwrap_or(i64::MAX);
        tx.execute(
            insert_checkpoint,
            &[task, &name.schema, &name.name, &chunk_no, &row_count],
        )
        .await
        .map_err(|e| {
            if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
                Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "chunk {} of `{name}` is already recorded as done",
                        chunk.index
                    ),
                )
                .with_source(e)
            } else {
                map_error(e, format!("recording chunk {} of `{name}`", chunk.index))
            }
        })?;
        tx.commit()
            .await
            .map_err(|e| map_error(e, format!("committing chunk {} of `{name}`", chunk.index)))?;
        tracing::debug!(table = %name, chunk = chunk.index, rows, bytes, "chunk copied");
        Ok(ChunkStats { rows, bytes })
    }

    async fn done(&mut self, table: &TargetTable) -> Result<Vec<u32>> {
        let name = &table.name;
        let rows = self
            .client
            .query(&self.select_done, &[&self.task, &name.schema, &name.name])
            .await
            .map_err(|e| map_error(e, format!("reading the done chunks of `{name}`")))?;
        rows.iter()
            .map(|r| {
                let n: i32 = r.get(0);
                u32::try_from(n).map_err(|_| {
                    Error::internal(format!("negative chunk number {n} recorded for `{name}`"))
                })
            })
            .collect()
    }
}

#[dts_core::async_trait]
impl ChunkSink for PgChunkSink {
    async fn write_chunk<'a>(
        &'a mut self,
        table: &'a TargetTable,
        chunk: &'a Chunk,
        batches: BoxStream<'a, Result<RowBatch>>,
    ) -> Result<ChunkStats> {
        self.write(table, chunk, batches).await
    }

    async fn done_chunks(&mut self, table: &TargetTable) -> Result<Vec<u32>> {
        self.done(table).await
    }

    /// [`RowEncoding::PgBinaryCopy`], when every target column has exactly the type and
    /// modifier the encoding names (so the server reads each value back as the source
    /// stored it, and its input functions check it).
    async fn accepts_encoding(
        &mut self,
        table: &TargetTable,
        encoding: &RowEncoding,
    ) -> Result<bool> {
        self.accepts(table, encoding).await
    }
}

/// `COPY schema.table (columns) FROM STDIN`, in binary format when `binary`.
fn copy_sql(table: &TargetTable, binary: bool) -> String {
    let mut sql = String::from("COPY ");
    push_ident(&mut sql, &table.name.schema);
    sql.push('.');
    push_ident(&mut sql, &table.name.name);
    sql.push_str(" (");
    for (i, column) in table.columns.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        push_ident(&mut sql, column);
    }
    sql.push_str(if binary {
        ") FROM STDIN (FORMAT binary)"
    } else {
        ") FROM STDIN"
    });
    sql
}

/// Appends `ident` as a quoted identifier: in double quotes, embedded quotes doubled.
pub(crate) fn push_ident(sql: &mut String, ident: &str) {
    sql.push('"');
    for c in ident.chars() {
        if c == '"' {
            sql.push('"');
        }
        sql.push(c);
    }
    sql.push('"');
}

/// The types of `columns` of target table `name`, as `COPY` needs them; an error names a
/// missing table or column, or, unless `any_type`, a column type the binary encoder cannot
/// write.
pub(crate) async fn target_columns(
    client: &Client,
    name: &TableName,
    columns: &[String],
    any_type: bool,
) -> Result<Vec<PgCopyColumn>> {
    let rows = client
        .query(SELECT_COLUMNS, &[&name.schema, &name.name, &columns])
        .await
        .map_err(|e| map_error(e, format!("reading the columns of `{name}`")))?;
    let mut out = Vec::with_capacity(columns.len());
    for column in columns {
        let row = rows
            .iter()
            .find(|r| r.get::<_, &str>(0) == column)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Database,
                    if rows.is_empty() {
                        format!("target table `{name}` does not exist or has no such columns")
                    } else {
                        format!("target table `{name}` has no column `{column}`")
                    },
                )
            })?;
        let type_oid: u32 = row.get(1);
        if !any_type && !is_supported_type(type_oid) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "cannot write column `{name}.{column}` of type `{}`",
                    row.get::<_, &str>(3)
                ),
            ));
        }
        out.push(PgCopyColumn::new(column.clone(), type_oid, row.get(2)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        let mut s = String::new();
        push_ident(&mut s, "we\"ird name");
        assert_eq!(s, "\"we\"\"ird name\"");
    }
}
