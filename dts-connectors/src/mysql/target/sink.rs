//! Writing chunks into MySQL/MariaDB tables with `LOAD DATA LOCAL INFILE`, streamed from
//! memory, each chunk in one transaction together with its checkpoint record in
//! `dts_meta.chunk`.

use std::collections::HashMap;
use std::fmt::Write as _;

use bytes::{BufMut, Bytes, BytesMut};
use dts_core::{
    Chunk, ChunkSink, ChunkStats, Error, ErrorKind, Result, RowBatch, TableName, TargetTable, Value,
};
use futures::stream::{BoxStream, StreamExt};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};

use super::state::{migrate, INSERT_CHECKPOINT, SELECT_DONE};
use crate::mysql::error::map_error;
use dts_schema::quote_mysql_ident;

/// Encoded bytes are handed to the connection in pieces of about this size.
const SEND_BYTES: usize = 512 << 10;

/// How many encoded pieces may wait for the connection.
const PIECES_IN_FLIGHT: usize = 4;

/// How a target column's values are written in the load file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    /// As text, escaped (`\t`, `\n`, `\\`, `\0`, `\r`), the server converting it.
    Text,
    /// As hexadecimal digits into a user variable, stored with `UNHEX()`: binary strings
    /// pass byte for byte, whatever the file's character set.
    Hex,
    /// As a decimal number into a user variable, stored with `CAST(… AS UNSIGNED)`: the
    /// server reads a `BIT` column's text as bytes, not as a number.
    Bit,
    /// As text into a user variable, assigned as it is: an `AUTO_INCREMENT` column when
    /// other columns are assigned. MariaDB forgets that a row's `AUTO_INCREMENT` value was
    /// given once the `SET` clause is applied (a 0 then takes the next counter value,
    /// whatever `NO_AUTO_VALUE_ON_ZERO` says), unless that column is assigned there too.
    Assigned,
}

/// A target table's cached load plan: its columns, how each is written, and the statement.
struct TablePlan {
    columns: Vec<String>,
    loads: Vec<Load>,
    sql: String,
}

/// A [`ChunkSink`] writing into MySQL/MariaDB through one connection.
///
/// Each chunk is one transaction: a `LOAD DATA LOCAL INFILE` whose file is streamed from
/// memory while the batches arrive (in pieces of about 512 KiB, a few in flight: memory
/// stays bounded whatever the chunk's size, and no file is written), then an insert into
/// `dts_meta.chunk` keyed by task, table and chunk number, then `COMMIT`. The key makes a
/// chunk that is written twice fail at the second write, leaving no duplicate rows.
///
/// `LOAD DATA LOCAL` turns data errors into warnings (the server cannot stop the client's
/// stream), so the sink counts them: a chunk whose load left a warning, or stored another
/// number of rows than it sent, is rolled back and fails naming the table, the chunk and
/// the server's first warnings. Foreign key checks are off in the sink's session.
///
/// Column types are read from `information_schema` once per table and cached; a sink is
/// meant for one task whose target schema does not change while it runs.
pub struct MySqlChunkSink {
    conn: Conn,
    task: String,
    tables: HashMap<TableName, TablePlan>,
}

impl std::fmt::Debug for MySqlChunkSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MySqlChunkSink")
            .field("task", &self.task)
            .finish_non_exhaustive()
    }
}

impl MySqlChunkSink {
    /// Connects with `opts` (the target's session set-up, [`super::session_opts`]) for task
    /// `task`, creating the `dts_meta` database if needed.
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub async fn connect(opts: Opts, task: &str) -> Result<Self> {
        let mut conn = Conn::new(opts)
            .await
            .map_err(|e| map_error(e, "cannot connect to target"))?;
        migrate(&mut conn).await?;
        conn.query_drop("SET SESSION foreign_key_checks = 0")
            .await
            .map_err(|e| map_error(e, "setting up the target session"))?;
        Ok(Self {
            conn,
            task: task.to_string(),
            tables: HashMap::new(),
        })
    }

    /// The task name checkpoints are recorded under.
    pub fn task(&self) -> &str {
        &self.task
    }

    /// Reads the target columns' types and builds the load statement, unless cached.
    async fn plan(&mut self, table: &TargetTable) -> Result<()> {
        if self
            .tables
            .get(&table.name)
            .is_some_and(|p| p.columns == table.columns)
        {
            return Ok(());
        }
        let name = &table.name;
        let types: Vec<(String, (String, String))> = self
            .conn
            .exec_map(
                "SELECT COLUMN_NAME, DATA_TYPE, EXTRA FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (name.schema.as_str(), name.name.as_str()),
                |(column, data_type, extra): (String, String, String)| (column, (data_type, extra)),
            )
            .await
            .map_err(|e| map_error(e, format!("reading the columns of `{name}`")))?;
        let types: HashMap<String, (String, String)> = types.into_iter().collect();
        let mut loads = Vec::with_capacity(table.columns.len());
        for column in &table.columns {
            let (data_type, _) = types.get(column).ok_or_else(|| {
                Error::new(
                    ErrorKind::Config,
                    format!("target table `{name}` has no column `{column}`"),
                )
            })?;
            loads.push(match data_type.to_ascii_lowercase().as_str() {
                "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
                    Load::Hex
                }
                "bit" => Load::Bit,
                _ => Load::Text,
            });
        }
        if loads.iter().any(|l| *l != Load::Text) {
            for (column, load) in table.columns.iter().zip(loads.iter_mut()) {
                let auto = types.get(column).is_some_and(|(_, extra)| {
                    extra.to_ascii_lowercase().contains("auto_increment")
                });
                if auto && *load == Load::Text {
                    *load = Load::Assigned;
                }
            }
        }
        let sql = load_statement(name, &table.columns, &loads);
        self.tables.insert(
            name.clone(),
            TablePlan {
                columns: table.columns.clone(),
                loads,
                sql,
            },
        );
        Ok(())
    }

    async fn write(
        &mut self,
        table: &TargetTable,
        chunk: &Chunk,
        mut batches: BoxStream<'_, Result<RowBatch>>,
    ) -> Result<ChunkStats> {
        self.plan(table).await?;
        let name = &table.name;
        let Self {
            conn, task, tables, ..
        } = self;
        let plan = tables
            .get(name)
            .ok_or_else(|| Error::internal(format!("no load plan for `{name}`")))?;
        let copy_what = || format!("copying chunk {} into `{name}`", chunk.index);

        conn.query_drop("START TRANSACTION")
            .await
            .map_err(|e| map_error(e, "starting a target transaction"))?;

        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(PIECES_IN_FLIGHT);
        conn.set_infile_handler(async move {
            Ok(futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|piece| (piece, rx))
            })
            .boxed())
        });

        let feed = async {
            let mut buffer = BytesMut::with_capacity(SEND_BYTES * 2);
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
                if batch.encoded.is_some() {
                    // This sink accepts no encoding: it never asked for encoded rows.
                    failure = Some(Error::new(
                        ErrorKind::Unsupported,
                        format!(
                            "chunk {}: encoded rows cannot be written into MySQL",
                            chunk.index
                        ),
                    ));
                    break;
                }
                for row in &batch.rows {
                    if let Err(e) = encode_row(row, &plan.loads, &mut buffer) {
                        failure = Some(e.context(format_args!(
                            "row {} of chunk {}",
                            rows + 1,
                            chunk.index
                        )));
                        break 'batches;
                    }
                    rows += 1;
                    if buffer.len() >= SEND_BYTES {
                        bytes += buffer.len() as u64;
                        if tx.send(Ok(buffer.split().freeze())).await.is_err() {
                            // The load ended early: its error says why.
                            return (rows, bytes, None);
                        }
                    }
                }
            }
            match failure {
                Some(e) => {
                    // The file ends here (what is buffered is not sent), and the transaction
                    // is rolled back below. Ending it normally leaves the connection usable;
                    // an error in the stream would not.
                    drop(tx);
                    (rows, bytes, Some(e))
                }
                None => {
                    bytes += buffer.len() as u64;
                    if !buffer.is_empty() {
                        let _ = tx.send(Ok(buffer.split().freeze())).await;
                    }
                    drop(tx);
                    (rows, bytes, None)
                }
            }
        };
        let (loaded, (rows, bytes, failure)) =
            futures::join!(conn.query_drop(plan.sql.as_str()), feed);

        let checked = match (failure, loaded) {
            (Some(e), _) => Err(e),
            (None, Err(e)) => Err(map_error(e, copy_what())),
            (None, Ok(())) => check_load(conn, name, chunk, rows).await,
        };
        if let Err(e) = checked {
            if let Err(rollback) = conn.query_drop("ROLLBACK").await {
                tracing::debug!(table = %name, chunk = chunk.index, error = %rollback,
                    "rollback after a failed chunk failed");
            }
            return Err(e);
        }

        let chunk_no = i32::try_from(chunk.index)
            .map_err(|_| Error::internal(format!("chunk number {} is too large", chunk.index)))?;
        let recorded = conn
            .exec_drop(
                INSERT_CHECKPOINT,
                (
                    task.as_str(),
                    name.schema.as_str(),
                    name.name.as_str(),
                    chunk_no,
                    rows,
                ),
            )
            .await;
        if let Err(e) = recorded {
            let _ = conn.query_drop("ROLLBACK").await;
            return Err(match &e {
                mysql_async::Error::Server(s) if s.code == 1062 => Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "chunk {} of `{name}` is already recorded as done",
                        chunk.index
                    ),
                )
                .with_source(e),
                _ => map_error(e, format!("recording chunk {} of `{name}`", chunk.index)),
            });
        }
        conn.query_drop("COMMIT")
            .await
            .map_err(|e| map_error(e, format!("committing chunk {} of `{name}`", chunk.index)))?;
        tracing::debug!(table = %name, chunk = chunk.index, rows, bytes, "chunk copied");
        Ok(ChunkStats { rows, bytes })
    }
}

/// Fails when the load just run left warnings or stored another number of rows than sent.
async fn check_load(conn: &mut Conn, name: &TableName, chunk: &Chunk, rows: u64) -> Result<()> {
    let stored = conn.affected_rows();
    if conn.get_warnings() > 0 {
        let warnings: Vec<(String, u32, String)> = conn
            .query("SHOW WARNINGS LIMIT 3")
            .await
            .map_err(|e| map_error(e, "reading the load's warnings"))?;
        let text: Vec<String> = warnings
            .into_iter()
            .map(|(_, code, message)| format!("{code}: {message}"))
            .collect();
        return Err(Error::new(
            ErrorKind::Value,
            format!(
                "chunk {} of `{name}` was not stored as sent: {}",
                chunk.index,
                text.join("; ")
            ),
        ));
    }
    if stored != rows {
        return Err(Error::new(
            ErrorKind::Value,
            format!(
                "chunk {} of `{name}` stored {stored} rows of the {rows} sent (duplicate keys?)",
                chunk.index
            ),
        ));
    }
    Ok(())
}

/// `LOAD DATA LOCAL INFILE` into `name`: tab-separated fields, newline-ended lines,
/// backslash escapes, `\N` for NULL; binary and bit columns through user variables.
fn load_statement(name: &TableName, columns: &[String], loads: &[Load]) -> String {
    let mut targets = Vec::with_capacity(columns.len());
    let mut sets = Vec::new();
    for (i, (column, load)) in columns.iter().zip(loads).enumerate() {
        match load {
            Load::Text => targets.push(quote_mysql_ident(column)),
            Load::Hex => {
                targets.push(format!("@v{i}"));
                sets.push(format!("{} = UNHEX(@v{i})", quote_mysql_ident(column)));
            }
            Load::Bit => {
                targets.push(format!("@v{i}"));
                sets.push(format!(
                    "{} = CAST(@v{i} AS UNSIGNED)",
                    quote_mysql_ident(column)
                ));
            }
            Load::Assigned => {
                targets.push(format!("@v{i}"));
                sets.push(format!("{} = @v{i}", quote_mysql_ident(column)));
            }
        }
    }
    let mut sql = format!(
        "LOAD DATA LOCAL INFILE 'dts-chunk' INTO TABLE {}.{} CHARACTER SET utf8mb4 \
         FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({})",
        quote_mysql_ident(&name.schema),
        quote_mysql_ident(&name.name),
        targets.join(", ")
    );
    if !sets.is_empty() {
        sql.push_str(" SET ");
        sql.push_str(&sets.join(", "));
    }
    sql
}

/// Appends one row as a line of the load file; nothing when the row does not fit the
/// columns.
fn encode_row(row: &[Value], loads: &[Load], out: &mut BytesMut) -> Result<()> {
    if row.len() != loads.len() {
        return Err(Error::internal(format!(
            "a row has {} values for {} columns",
            row.len(),
            loads.len()
        )));
    }
    for (i, (value, load)) in row.iter().zip(loads).enumerate() {
        if i > 0 {
            out.put_u8(b'\t');
        }
        encode_value(value, *load, out);
    }
    out.put_u8(b'\n');
    Ok(())
}

/// Appends `bytes` with the load file's escapes.
fn escaped(bytes: &[u8], out: &mut BytesMut) {
    let mut from = 0;
    for (i, b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            0 => b"\\0",
            _ => continue,
        };
        out.put_slice(&bytes[from..i]);
        out.put_slice(esc);
        from = i + 1;
    }
    out.put_slice(&bytes[from..]);
}

fn hex(bytes: &[u8], out: &mut BytesMut) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.put_u8(DIGITS[usize::from(b >> 4)]);
        out.put_u8(DIGITS[usize::from(b & 0x0f)]);
    }
}

/// Appends one value in the form the server reads back as the same value.
fn encode_value(value: &Value, load: Load, out: &mut BytesMut) {
    match (value, load) {
        (Value::Null, _) => out.put_slice(b"\\N"),
        (Value::Bytes(b), Load::Hex) => hex(b, out),
        (Value::Text(s) | Value::Json(s), Load::Hex) => hex(s.as_bytes(), out),
        (Value::Bytes(b), _) => escaped(b, out),
        (Value::Text(s) | Value::Json(s), _) => escaped(s.as_bytes(), out),
        (Value::Bits(b), _) => {
            let _ = write!(out, "{}", b.bits);
        }
        (Value::Bool(b), _) => out.put_u8(if *b { b'1' } else { b'0' }),
        (Value::Int(n), _) => {
            let _ = write!(out, "{n}");
        }
        (Value::UInt(n), _) => {
            let _ = write!(out, "{n}");
        }
        (Value::Decimal(d), _) => out.put_slice(d.as_str().as_bytes()),
        // The shortest text of the double that holds the float exactly: read back as a
        // double and rounded to a float, it is the same float (never above FLT_MAX).
        (Value::Float(f), _) => {
            let _ = write!(out, "{:e}", f64::from(*f));
        }
        (Value::Double(f), _) => {
            let _ = write!(out, "{f:e}");
        }
        (Value::Date(d), _) => {
            let _ = write!(out, "{d}");
        }
        (Value::DateTime(d) | Value::Timestamp(d), _) => {
            let _ = write!(out, "{d}");
        }
        (Value::Time(t), _) => {
            let _ = write!(out, "{t}");
        }
        (Value::Year(y), _) => {
            let _ = write!(out, "{y:04}");
        }
    }
}

#[dts_core::async_trait]
impl ChunkSink for MySqlChunkSink {
    async fn write_chunk<'a>(
        &'a mut self,
        table: &'a TargetTable,
        chunk: &'a Chunk,
        batches: BoxStream<'a, Result<RowBatch>>,
    ) -> Result<ChunkStats> {
        self.write(table, chunk, batches).await
    }

    async fn done_chunks(&mut self, table: &TargetTable) -> Result<Vec<u32>> {
        let name = &table.name;
        let done: Vec<i64> = self
            .conn
            .exec(
                SELECT_DONE,
                (self.task.as_str(), name.schema.as_str(), name.name.as_str()),
            )
            .await
            .map_err(|e| map_error(e, format!("reading the done chunks of `{name}`")))?;
        done.into_iter()
            .map(|n| {
                u32::try_from(n).map_err(|_| {
                    Error::internal(format!("negative chunk number {n} recorded for `{name}`"))
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dts_core::{BitString, Date, DateTime, Duration};

    fn line(row: &[Value], loads: &[Load]) -> String {
        let mut out = BytesMut::new();
        encode_row(row, loads, &mut out).unwrap();
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn values_are_written_as_the_server_reads_them_back() {
        let row = [
            Value::Null,
            Value::Text("a\tb\nc\\d\0e\rf".into()),
            Value::Bytes(vec![0, 0xff, b'\n']),
            Value::Bits(BitString::new(10, 0b10_0000_0001).unwrap()),
            Value::UInt(u64::MAX),
            Value::Int(i64::MIN),
            Value::Float(f32::MAX),
            Value::Double(-0.1),
            Value::Date(Date::new(0, 0, 0)),
            Value::DateTime(DateTime {
                date: Date::new(2024, 2, 29),
                hour: 23,
                minute: 59,
                second: 59,
                micro: 5,
            }),
            Value::Time(Duration::from_micros(
                -(838 * 3600 + 59 * 60 + 59) * 1_000_000 - 1,
            )),
            Value::Year(0),
        ];
        let loads = [
            Load::Text,
            Load::Text,
            Load::Hex,
            Load::Bit,
            Load::Text,
            Load::Text,
            Load::Text,
            Load::Text,
            Load::Text,
            Load::Text,
            Load::Text,
            Load::Text,
        ];
        assert_eq!(
            line(&row, &loads),
            "\\N\ta\\tb\\nc\\\\d\\0e\\rf\t00FF0A\t513\t18446744073709551615\t\
             -9223372036854775808\t3.4028234663852886e38\t-1e-1\t0000-00-00\t\
             2024-02-29 23:59:59.000005\t-838:59:59.000001\t0000\n"
        );
    }

    #[test]
    fn a_row_that_cannot_be_written_leaves_nothing() {
        let mut out = BytesMut::from(&b"kept\n"[..]);
        let err = encode_row(
            &[Value::Int(1), Value::Int(2), Value::Int(3)],
            &[Load::Text, Load::Text],
            &mut out,
        )
        .unwrap_err();
        assert!(err.to_string().contains("3 values for 2 columns"), "{err}");
        assert_eq!(&out[..], b"kept\n");
    }

    #[test]
    fn binary_and_bit_columns_go_through_variables() {
        let sql = load_statement(
            &TableName::new("s", "t`x"),
            &["a".into(), "b".into(), "c".into()],
            &[Load::Text, Load::Hex, Load::Bit],
        );
        assert_eq!(
            sql,
            "LOAD DATA LOCAL INFILE 'dts-chunk' INTO TABLE `s`.`t``x` CHARACTER SET utf8mb4 \
             FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' \
             (`a`, @v1, @v2) SET `b` = UNHEX(@v1), `c` = CAST(@v2 AS UNSIGNED)"
        );
    }
}
