//! Verification and repair on PostgreSQL: reading a table's rows by key range into values
//! of the form the type mapping writes ([`PgTargetReader`]), and running the statements
//! that make a table match its source ([`PgRepairSink`]).
//!
//! What that form is depends on the source: from MySQL, the values the row mapping
//! converts to (a MySQL `TIME` in an `interval` column is a duration); from PostgreSQL,
//! whose rows pass the mapping unchanged, the values the PostgreSQL source's snapshot
//! reader decodes, so the target is read with that reader's own decoders (an `interval`
//! as its text, `numeric`'s `NaN` and the infinite dates as text, `oid` as an unsigned
//! integer).

use std::collections::HashMap;

use dts_core::{
    async_trait, BitString, Chunk, Date, DateTime, Decimal, Duration, Engine, Error, ErrorKind,
    Repair, RepairMode, RepairSink, Result, RowBatch, TableName, TargetReader, TargetTable, Value,
};
use dts_typemap::quote::{quote_bytea, quote_ident, quote_literal, quote_qualified};
use futures::stream::BoxStream;
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::Client;

use super::error::map_error;
use super::sink::SELECT_COLUMNS;
use super::source::decode::Decoder;
use super::target::connect_client;

/// Rows fetched from the server per round trip: memory stays bounded whatever the table.
const FETCH_ROWS: i32 = 2000;

/// How one column's binary value becomes a [`Value`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decode {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    Text,
    Bytea,
    Date,
    Timestamp,
    TimestampTz,
    Time,
    Interval,
    Json,
    Jsonb,
    Bit,
    /// Any other type, selected as its output function prints it.
    AsText,
}

impl Decode {
    fn of(oid: u32) -> Self {
        match oid {
            16 => Decode::Bool,
            21 => Decode::Int2,
            23 => Decode::Int4,
            20 => Decode::Int8,
            700 => Decode::Float4,
            701 => Decode::Float8,
            1700 => Decode::Numeric,
            25 | 1042 | 1043 | 19 => Decode::Text,
            17 => Decode::Bytea,
            1082 => Decode::Date,
            1114 => Decode::Timestamp,
            1184 => Decode::TimestampTz,
            1083 => Decode::Time,
            1186 => Decode::Interval,
            114 => Decode::Json,
            3802 => Decode::Jsonb,
            1560 | 1562 => Decode::Bit,
            _ => Decode::AsText,
        }
    }
}

/// How one target column is selected and decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColumnRead {
    /// Into the values the row mapping from MySQL writes.
    Mapped(Decode),
    /// As the PostgreSQL source's snapshot reader reads the same type; selected as text
    /// when the flag is set (as [`Decoder::text_select`] says for the base type, the
    /// third field).
    Source(Decoder, bool, u32),
}

impl ColumnRead {
    /// The reading of a column of base type `oid` (an enum's is `anyenum`) with modifier
    /// `typmod`, for rows that came from `source`.
    fn of(source: Engine, oid: u32, typmod: i32) -> Self {
        if source == Engine::Postgres {
            const ANYENUM: u32 = 3500;
            let decoder = Decoder::of(oid, typmod);
            let kind = if oid == ANYENUM { "e" } else { "b" };
            ColumnRead::Source(decoder, decoder.selects_text(oid, kind), oid)
        } else {
            ColumnRead::Mapped(Decode::of(oid))
        }
    }

    fn as_text(self) -> bool {
        match self {
            ColumnRead::Mapped(d) => d == Decode::AsText,
            ColumnRead::Source(_, text, _) => text,
        }
    }

    fn decode(self, b: &[u8]) -> Option<Value> {
        match self {
            ColumnRead::Mapped(d) => decode(d, b),
            ColumnRead::Source(d, _, _) => d.decode(b).ok(),
        }
    }
}

/// A column's raw binary value, whatever its type.
struct Raw<'a>(Option<&'a [u8]>);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(
        _: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(Some(raw)))
    }

    fn from_sql_null(
        _: &Type,
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(None))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

fn be<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at + N)?.try_into().ok()
}

/// PostgreSQL's binary `numeric`: digit count, weight, sign, display scale, base-10000
/// digits; written with exactly the display scale's fraction digits.
fn numeric(b: &[u8]) -> Option<Decimal> {
    let ndigits = usize::try_from(i16::from_be_bytes(be(b, 0)?)).ok()?;
    let weight = i64::from(i16::from_be_bytes(be(b, 2)?));
    let sign = u16::from_be_bytes(be(b, 4)?);
    let dscale = usize::try_from(i16::from_be_bytes(be(b, 6)?)).ok()?;
    if sign != 0 && sign != 0x4000 {
        return None; // NaN or infinity: no source decimal holds them
    }
    let digit = |j: i64| -> Option<u16> {
        if j < 0 || j >= i64::try_from(ndigits).ok()? {
            return Some(0);
        }
        let at = 8 + 2 * usize::try_from(j).ok()?;
        Some(u16::from_be_bytes(be(b, at)?))
    };
    let mut s = String::new();
    if sign == 0x4000 {
        s.push('-');
    }
    if weight < 0 {
        s.push('0');
    } else {
        for j in 0..=weight {
            let d = digit(j)?;
            if j == 0 {
                s.push_str(&d.to_string());
            } else {
                s.push_str(&format!("{d:04}"));
            }
        }
    }
    if dscale > 0 {
        let mut frac = String::new();
        let mut k = 1;
        while frac.len() < dscale {
            frac.push_str(&format!("{:04}", digit(weight + k)?));
            k += 1;
        }
        frac.truncate(dscale);
        s.push('.');
        s.push_str(&frac);
    }
    s.parse().ok()
}

const PG_EPOCH_DAYS: i64 = 10_957;
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
const DAY_MICROS: i64 = 86_400_000_000;

fn decode(kind: Decode, b: &[u8]) -> Option<Value> {
    Some(match kind {
        Decode::Bool => Value::Bool(*b.first()? != 0),
        Decode::Int2 => Value::Int(i64::from(i16::from_be_bytes(be(b, 0)?))),
        Decode::Int4 => Value::Int(i64::from(i32::from_be_bytes(be(b, 0)?))),
        Decode::Int8 => Value::Int(i64::from_be_bytes(be(b, 0)?)),
        Decode::Float4 => Value::Float(f32::from_be_bytes(be(b, 0)?)),
        Decode::Float8 => Value::Double(f64::from_be_bytes(be(b, 0)?)),
        Decode::Numeric => Value::Decimal(numeric(b)?),
        Decode::Text | Decode::AsText => Value::Text(String::from_utf8(b.to_vec()).ok()?),
        Decode::Json => Value::Json(String::from_utf8(b.to_vec()).ok()?),
        Decode::Jsonb => {
            if b.first() != Some(&1) {
                return None;
            }
            Value::Json(String::from_utf8(b[1..].to_vec()).ok()?)
        }
        Decode::Bytea => Value::Bytes(b.to_vec()),
        Decode::Date => {
            let days = i64::from(i32::from_be_bytes(be(b, 0)?));
            Value::Date(Date::from_days_since_unix_epoch(days + PG_EPOCH_DAYS)?)
        }
        Decode::Timestamp | Decode::TimestampTz => {
            let micros = i64::from_be_bytes(be(b, 0)?).checked_add(PG_EPOCH_MICROS)?;
            let dt = DateTime::from_micros_since_unix_epoch(micros)?;
            if kind == Decode::Timestamp {
                Value::DateTime(dt)
            } else {
                Value::Timestamp(dt)
            }
        }
        Decode::Time => Value::Time(Duration::from_micros(i64::from_be_bytes(be(b, 0)?))),
        Decode::Interval => {
            let micros = i64::from_be_bytes(be(b, 0)?);
            let days = i64::from(i32::from_be_bytes(be(b, 8)?));
            let months = i64::from(i32::from_be_bytes(be(b, 12)?));
            let total = (days + 30 * months)
                .checked_mul(DAY_MICROS)?
                .checked_add(micros)?;
            Value::Time(Duration::from_micros(total))
        }
        Decode::Bit => {
            let len = u32::try_from(i32::from_be_bytes(be(b, 0)?)).ok()?;
            let bytes = &b[4..];
            if len == 0 || len > 64 {
                return None;
            }
            let mut acc: u128 = 0;
            for x in bytes {
                acc = (acc << 8) | u128::from(*x);
            }
            let pad = u32::try_from(bytes.len() * 8).ok()?.checked_sub(len)?;
            let bits = u64::try_from(acc >> pad).ok()?;
            Value::Bits(BitString::new(u8::try_from(len).ok()?, bits)?)
        }
    })
}

/// A value as a SQL constant of no declared type, so the column it is compared with or
/// assigned to decides its type: numbers bare, floats in their shortest round-trip form
/// (which PostgreSQL reads back to the same bits), text quoted, bytes as `bytea` hex.
pub(crate) fn literal(v: &Value) -> String {
    fn float(text: String, nan: bool, inf: bool, neg: bool) -> String {
        let t = match (nan, inf, neg) {
            (true, ..) => "NaN".to_string(),
            (_, true, true) => "-Infinity".to_string(),
            (_, true, false) => "Infinity".to_string(),
            _ => text,
        };
        quote_literal(&t)
    }
    match v {
        Value::Null => "NULL".into(),
        Value::Bool(b) => if *b { "true" } else { "false" }.into(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Year(y) => y.to_string(),
        Value::Decimal(d) => d.to_string(),
        Value::Float(f) => float(format!("{f:?}"), f.is_nan(), f.is_infinite(), *f < 0.0),
        Value::Double(d) => float(format!("{d:?}"), d.is_nan(), d.is_infinite(), *d < 0.0),
        Value::Text(s) | Value::Json(s) => quote_literal(s),
        Value::Bytes(b) => quote_bytea(b),
        Value::Date(d) => quote_literal(&d.to_string()),
        Value::DateTime(dt) => quote_literal(&dt.to_string()),
        Value::Timestamp(dt) => quote_literal(&format!("{dt}+00")),
        Value::Time(t) => quote_literal(&t.to_string()),
        Value::Bits(b) => format!("B'{b}'"),
    }
}

fn row_literal(values: &[Value]) -> String {
    let v: Vec<String> = values.iter().map(literal).collect();
    format!("({})", v.join(", "))
}

fn column_list(columns: &[String]) -> String {
    let c: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
    format!("({})", c.join(", "))
}

fn qualified(t: &TableName) -> String {
    quote_qualified(&t.schema, &t.name)
}

/// Reads target tables for verification, through one connection.
///
/// Each chunk is read in a read-only transaction through a portal, [`FETCH_ROWS`] rows per
/// round trip, in binary. For rows from MySQL, integers, floats (bit-exact), `numeric`
/// (with its scale), text, `bytea`, dates, timestamps, `time`, `interval`, `json`/`jsonb`
/// and bit strings become the values the type mapping writes, and other types are read as
/// text; for rows from PostgreSQL, every column is selected and decoded as the
/// PostgreSQL source's snapshot reader does (the mapping passes those values unchanged).
pub struct PgTargetReader {
    client: Client,
    source: Engine,
    types: HashMap<TableName, Vec<ColumnRead>>,
}

impl std::fmt::Debug for PgTargetReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTargetReader").finish_non_exhaustive()
    }
}

impl PgTargetReader {
    /// Connects to the target at `url`, to read values in the form rows from a `source`
    /// engine take after the row mapping.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] for a malformed URL; classified connection errors.
    pub async fn connect(url: &str, source: Engine) -> Result<Self> {
        Ok(Self {
            client: connect_client(url).await?,
            source,
            types: HashMap::new(),
        })
    }
}

async fn column_types(
    client: &Client,
    table: &TargetTable,
    source: Engine,
) -> Result<Vec<ColumnRead>> {
    let rows = client
        .query(
            SELECT_COLUMNS,
            &[&table.name.schema, &table.name.name, &table.columns],
        )
        .await
        .map_err(|e| map_error(e, format!("reading the columns of `{}`", table.name)))?;
    let by_name: HashMap<String, (u32, i32)> = rows
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                (r.get::<_, u32>(1), r.get::<_, i32>(2)),
            )
        })
        .collect();
    table
        .columns
        .iter()
        .map(|c| {
            by_name
                .get(c)
                .map(|(oid, typmod)| ColumnRead::of(source, *oid, *typmod))
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::Database,
                        format!("column `{}.{c}` does not exist in the target", table.name),
                    )
                })
        })
        .collect()
}

fn chunk_query(table: &TargetTable, types: &[ColumnRead], chunk: &Chunk) -> String {
    let select: Vec<String> = table
        .columns
        .iter()
        .zip(types)
        .map(|(c, t)| {
            if t.as_text() {
                // As the snapshot reader selects it.
                let oid = match t {
                    ColumnRead::Source(_, _, oid) => *oid,
                    ColumnRead::Mapped(_) => 0,
                };
                Decoder::text_select(&quote_ident(c), oid)
            } else {
                quote_ident(c)
            }
        })
        .collect();
    let mut sql = format!(
        "SELECT {} FROM {}",
        select.join(", "),
        qualified(&table.name)
    );
    let key = column_list(&chunk.key);
    let mut conds = Vec::new();
    if let (true, Some(point)) = (chunk.is_point(), &chunk.lower) {
        conds.push(format!("{key} = {}", row_literal(point)));
    } else if let Some(lower) = &chunk.lower {
        conds.push(format!("{key} >= {}", row_literal(lower)));
    }
    if let (false, Some(upper)) = (chunk.is_point(), &chunk.upper) {
        conds.push(format!("{key} < {}", row_literal(upper)));
    }
    if !conds.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conds.join(" AND "));
    }
    sql
}

impl TargetReader for PgTargetReader {
    fn read_chunk<'a>(
        &'a mut self,
        table: &'a TargetTable,
        chunk: &'a Chunk,
    ) -> BoxStream<'a, Result<RowBatch>> {
        enum State<'a> {
            Start(&'a mut PgTargetReader),
            Reading(
                tokio_postgres::Transaction<'a>,
                tokio_postgres::Portal,
                Vec<ColumnRead>,
            ),
            Done,
        }
        let what = move || format!("reading chunk {} of `{}`", chunk.index, table.name);
        Box::pin(futures::stream::try_unfold(
            State::Start(self),
            move |state| async move {
                let (tx, portal, types) = match state {
                    State::Done => return Ok(None),
                    State::Start(reader) => {
                        let types = match reader.types.get(&table.name) {
                            Some(t) => t.clone(),
                            None => {
                                let t = column_types(&reader.client, table, reader.source).await?;
                                reader.types.insert(table.name.clone(), t.clone());
                                t
                            }
                        };
                        let tx = reader
                            .client
                            .build_transaction()
                            .read_only(true)
                            .start()
                            .await
                            .map_err(|e| map_error(e, what()))?;
                        let sql = chunk_query(table, &types, chunk);
                        let portal = tx
                            .bind(sql.as_str(), &[])
                            .await
                            .map_err(|e| map_error(e, what()))?;
                        (tx, portal, types)
                    }
                    State::Reading(tx, portal, types) => (tx, portal, types),
                };
                let rows = tx
                    .query_portal(&portal, FETCH_ROWS)
                    .await
                    .map_err(|e| map_error(e, what()))?;
                if rows.is_empty() {
                    tx.commit().await.map_err(|e| map_error(e, what()))?;
                    return Ok(None);
                }
                let mut batch = RowBatch::with_capacity(rows.len());
                for r in &rows {
                    let mut row = Vec::with_capacity(types.len());
                    for (i, kind) in types.iter().enumerate() {
                        let raw: Raw<'_> = r.try_get(i).map_err(|e| map_error(e, what()))?;
                        row.push(match raw.0 {
                            None => Value::Null,
                            Some(b) => kind.decode(b).ok_or_else(|| {
                                Error::new(
                                    ErrorKind::Value,
                                    format!(
                                        "column `{}.{}` holds a value no source value maps to",
                                        table.name, table.columns[i]
                                    ),
                                )
                            })?,
                        });
                    }
                    batch.push(row);
                }
                let next = if rows.len() < usize::try_from(FETCH_ROWS).unwrap_or(0) {
                    tx.commit().await.map_err(|e| map_error(e, what()))?;
                    State::Done
                } else {
                    State::Reading(tx, portal, types)
                };
                Ok(Some((batch, next)))
            },
        ))
    }
}

/// Runs repair statements on PostgreSQL, one transaction per call, with triggers and
/// foreign keys off (`session_replication_role = replica`, as the replication apply does).
pub struct PgRepairSink {
    client: Client,
    /// The task whose apply an open repair transaction holds ([`RepairSink::hold_apply`]).
    held: Option<String>,
}

impl std::fmt::Debug for PgRepairSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgRepairSink").finish_non_exhaustive()
    }
}

impl PgRepairSink {
    /// Connects to the target at `url`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] for a malformed URL; classified connection errors.
    pub async fn connect(url: &str) -> Result<Self> {
        Ok(Self {
            client: connect_client(url).await?,
            held: None,
        })
    }
}

fn key_condition(key: &[String], values: &[Value]) -> String {
    let c: Vec<String> = key
        .iter()
        .zip(values)
        .map(|(k, v)| format!("{} = {}", quote_ident(k), literal(v)))
        .collect();
    c.join(" AND ")
}

/// The statements of one repair transaction.
pub(crate) fn repair_statements(
    table: &TargetTable,
    key: &[String],
    repairs: &[Repair],
) -> Result<Vec<String>> {
    let name = qualified(&table.name);
    let mut out = vec![
        "BEGIN".to_string(),
        "SET LOCAL session_replication_role = replica".to_string(),
    ];
    for r in repairs {
        out.push(match r {
            // The source's values of identity columns too, `GENERATED ALWAYS` ones included
            // (as the full load's `COPY` writes them).
            Repair::Insert(row) => format!(
                "INSERT INTO {name} {} OVERRIDING SYSTEM VALUE VALUES {}",
                column_list(&table.columns),
                row_literal(row)
            ),
            Repair::Update { key: k, row } => {
                let set: Vec<String> = table
                    .columns
                    .iter()
                    .zip(row)
                    .filter(|(c, _)| !key.contains(c))
                    .map(|(c, v)| format!("{} = {}", quote_ident(c), literal(v)))
                    .collect();
                if set.is_empty() {
                    continue;
                }
                format!(
                    "UPDATE {name} SET {} WHERE {}",
                    set.join(", "),
                    key_condition(key, k)
                )
            }
            Repair::Delete { key: k } => {
                format!("DELETE FROM {name} WHERE {}", key_condition(key, k))
            }
            Repair::DeleteOne(row) => {
                let c: Vec<String> = table
                    .columns
                    .iter()
                    .zip(row)
                    .map(|(c, v)| match v {
                        // `json` has no equality operator; its text is what was read.
                        Value::Json(_) => format!(
                            "{}::text IS NOT DISTINCT FROM {}",
                            quote_ident(c),
                            literal(v)
                        ),
                        _ => format!("{} IS NOT DISTINCT FROM {}", quote_ident(c), literal(v)),
                    })
                    .collect();
                format!(
                    "DELETE FROM {name} WHERE ctid = (SELECT ctid FROM {name} WHERE {} LIMIT 1)",
                    c.join(" AND ")
                )
            }
            other => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!("repair {other:?} is not supported by the PostgreSQL target"),
                ))
            }
        });
    }
    out.push("COMMIT".to_string());
    Ok(out)
}

/// Locks task `task`'s applied-position record, which the apply locks at the start of each
/// of its transactions.
fn hold_statement(task: &str) -> String {
    format!(
        "SELECT position::text FROM dts_meta.cdc_position WHERE task = {} FOR UPDATE",
        dts_typemap::pg::quote_literal(task)
    )
}

impl PgRepairSink {
    /// Runs `statements` (after the transaction's opening ones) in the transaction the sink
    /// holds, and commits it.
    async fn repair_held(&mut self, table: &TargetTable, statements: &[String]) -> Result<()> {
        let what = || format!("repairing `{}` beside the running apply", table.name);
        for s in statements {
            if let Err(e) = self.client.execute(s.as_str(), &[]).await {
                let _ = self.client.batch_execute("ROLLBACK").await;
                return Err(map_error(e, what()));
            }
        }
        self.client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| map_error(e, what()))
    }
}

#[async_trait]
impl RepairSink for PgRepairSink {
    async fn hold_apply(&mut self, task: &str) -> Result<Option<dts_core::Position>> {
        if self.held.take().is_some() {
            let _ = self.client.batch_execute("ROLLBACK").await;
        }
        let what = || format!("holding the apply of task `{task}` for a repair");
        self.client
            .batch_execute("BEGIN; SET LOCAL session_replication_role = replica")
            .await
            .map_err(|e| map_error(e, what()))?;
        let row = self
            .client
            .query_opt(hold_statement(task).as_str(), &[])
            .await;
        let row = match row {
            Ok(row) => row,
            Err(e) => {
                let _ = self.client.batch_execute("ROLLBACK").await;
                return Err(map_error(e, what()));
            }
        };
        self.held = Some(task.to_string());
        row.map(|r| super::state::parse_position(task, r.get(0)))
            .transpose()
    }

    async fn repair(
        &mut self,
        table: &TargetTable,
        key: &[String],
        repairs: &[Repair],
        mode: RepairMode,
    ) -> Result<Vec<String>> {
        let mut statements = repair_statements(table, key, repairs)?;
        if let Some(task) = self.held.take() {
            // Opened by `hold_apply`: the held transaction writes every key as the source
            // holds it (a delete may find no row).
            statements.insert(2, hold_statement(&task));
            self.repair_held(table, &statements[3..statements.len() - 1])
                .await?;
            return Ok(statements);
        }
        if mode == RepairMode::Apply {
            let what = || format!("repairing `{}`", table.name);
            let tx = self
                .client
                .transaction()
                .await
                .map_err(|e| map_error(e, what()))?;
            for s in &statements[1..statements.len() - 1] {
                let n = tx
                    .execute(s.as_str(), &[])
                    .await
                    .map_err(|e| map_error(e, what()))?;
                let delete_or_update = s.starts_with("DELETE") || s.starts_with("UPDATE");
                if delete_or_update && n != 1 {
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        format!(
                            "repairing `{}`: a row changed since it was compared (a statement touched {n} rows); verify again",
                            table.name
                        ),
                    ));
                }
            }
            tx.commit().await.map_err(|e| map_error(e, what()))?;
        }
        Ok(statements)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(ndigits: i16, weight: i16, sign: u16, dscale: i16, digits: &[u16]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(ndigits.to_be_bytes());
        b.extend(weight.to_be_bytes());
        b.extend(sign.to_be_bytes());
        b.extend(dscale.to_be_bytes());
        for d in digits {
            b.extend(d.to_be_bytes());
        }
        b
    }

    #[test]
    fn numerics_keep_their_scale() {
        // What PostgreSQL sends for each of these `numeric` values.
        let n = |b: Vec<u8>| numeric(&b).unwrap().to_string();
        assert_eq!(n(num(1, 0, 0, 2, &[1])), "1.00");
        assert_eq!(n(num(2, 0, 0x4000, 2, &[12, 3400])), "-12.34");
        assert_eq!(n(num(1, -1, 0, 4, &[5])), "0.0005");
        assert_eq!(n(num(1, -2, 0, 6, &[1200])), "0.000012");
        assert_eq!(n(num(1, -2, 0, 8, &[12])), "0.00000012");
        assert_eq!(n(num(2, 1, 0, 0, &[1, 0])), "10000");
        assert_eq!(n(num(0, 0, 0, 3, &[])), "0.000");
        assert_eq!(n(num(3, 1, 0, 5, &[12, 3456, 7890])), "123456.78900");
        assert!(numeric(&num(0, 0, 0xC000, 0, &[])).is_none());
    }

    #[test]
    fn bits_and_intervals() {
        assert_eq!(
            decode(Decode::Bit, &[0, 0, 0, 3, 0b1010_0000]),
            Some(Value::Bits(BitString::new(3, 0b101).unwrap()))
        );
        let mut iv = Vec::new();
        iv.extend(1_i64.to_be_bytes());
        iv.extend(1_i32.to_be_bytes());
        iv.extend(0_i32.to_be_bytes());
        assert_eq!(
            decode(Decode::Interval, &iv),
            Some(Value::Time(Duration::from_micros(DAY_MICROS + 1)))
        );
    }

    #[test]
    fn rows_from_postgres_are_read_as_the_source_reader_reads_them() {
        // interval, numeric, varbit(100), oid, an enum, bit(3), int4.
        let pg = |oid, typmod| ColumnRead::of(Engine::Postgres, oid, typmod);
        assert_eq!(pg(1186, -1), ColumnRead::Source(Decoder::Text, true, 1186));
        assert_eq!(
            pg(1700, -1),
            ColumnRead::Source(Decoder::Numeric, true, 1700)
        );
        assert_eq!(pg(1562, 100), ColumnRead::Source(Decoder::Text, true, 1562));
        assert_eq!(pg(26, -1), ColumnRead::Source(Decoder::Oid, false, 26));
        assert_eq!(pg(3500, -1), ColumnRead::Source(Decoder::Text, false, 3500));
        assert_eq!(pg(1560, 3), ColumnRead::Source(Decoder::Bits, false, 1560));
        assert!(!pg(23, -1).as_text());
        // From MySQL, an interval holds a `TIME`: a duration.
        let my = ColumnRead::of(Engine::MySql, 1186, -1);
        assert_eq!(my, ColumnRead::Mapped(Decode::Interval));
        let mut iv = Vec::new();
        iv.extend(5_i64.to_be_bytes());
        iv.extend(0_i32.to_be_bytes());
        iv.extend(0_i32.to_be_bytes());
        assert_eq!(my.decode(&iv), Some(Value::Time(Duration::from_micros(5))));
        assert_eq!(
            pg(1186, -1).decode(b"1 mon 00:00:05"),
            Some(Value::Text("1 mon 00:00:05".into()))
        );
    }

    #[test]
    fn literals_leave_the_type_to_the_column() {
        assert_eq!(literal(&Value::Float(0.1)), "'0.1'");
        assert_eq!(literal(&Value::Double(f64::NEG_INFINITY)), "'-Infinity'");
        assert_eq!(literal(&Value::Text("it's".into())), "'it''s'");
        assert_eq!(literal(&Value::Bytes(vec![0, 255])), r"E'\\x00ff'::bytea");
        let t = TargetTable {
            name: TableName::new("s", "t"),
            columns: vec!["id".into(), "v".into()],
        };
        let st = repair_statements(
            &t,
            &["id".into()],
            &[
                Repair::Delete {
                    key: vec![Value::Int(3)],
                },
                Repair::Update {
                    key: vec![Value::Int(1)],
                    row: vec![Value::Int(1), Value::Text("a ".into())],
                },
                Repair::Insert(vec![Value::Int(2), Value::Null]),
            ],
        )
        .unwrap();
        assert_eq!(
            st,
            [
                "BEGIN",
                "SET LOCAL session_replication_role = replica",
                r#"DELETE FROM "s"."t" WHERE "id" = 3"#,
                r#"UPDATE "s"."t" SET "v" = 'a ' WHERE "id" = 1"#,
                r#"INSERT INTO "s"."t" ("id", "v") OVERRIDING SYSTEM VALUE VALUES (2, NULL)"#,
                "COMMIT",
            ]
        );
    }
}
