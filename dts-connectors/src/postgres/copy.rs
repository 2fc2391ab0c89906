//! PostgreSQL's binary `COPY` format: an encoder from dts [`Value`]s to the bytes of
//! `COPY … FROM STDIN (FORMAT binary)`.
//!
//! Values are encoded strictly by the target column's type, as the server reports it (type
//! OID and typmod), never lossily: a value the column cannot hold exactly is an error naming
//! the column, not a rounded, clamped or truncated value. The server applies a column's
//! typmod on receipt (rounding `numeric(p,s)` fractions and `timestamp(p)` microseconds,
//! cutting trailing spaces off an over-long `varchar(n)`), so the encoder checks the typmod
//! before the server gets a chance to round.
//!
//! Layout: a header ([`PgCopyEncoder::write_header`]), then per row an `i16` field count and
//! per field an `i32` length (`-1` for `NULL`) and the type's binary send format, then a
//! trailer ([`PgCopyEncoder::write_trailer`]).

use bytes::{BufMut, BytesMut};
use dts_core::{BitString, Date, DateTime, Decimal, Error, ErrorKind, Result, Value};

/// `boolean`.
const BOOL: u32 = 16;
/// `bytea`.
const BYTEA: u32 = 17;
/// `bigint`.
const INT8: u32 = 20;
/// `smallint`.
const INT2: u32 = 21;
/// `integer`.
const INT4: u32 = 23;
/// `text`.
const TEXT: u32 = 25;
/// `json`.
const JSON: u32 = 114;
/// `real`.
const FLOAT4: u32 = 700;
/// `double precision`.
const FLOAT8: u32 = 701;
/// `character(n)`.
const BPCHAR: u32 = 1042;
/// `character varying(n)`.
const VARCHAR: u32 = 1043;
/// `date`.
const DATE: u32 = 1082;
/// `time without time zone`.
const TIME: u32 = 1083;
/// `timestamp without time zone`.
const TIMESTAMP: u32 = 1114;
/// `timestamp with time zone`.
const TIMESTAMPTZ: u32 = 1184;
/// `interval`.
const INTERVAL: u32 = 1186;
/// `bit(n)`.
const BIT: u32 = 1560;
/// `bit varying(n)`.
const VARBIT: u32 = 1562;
/// `numeric(p,s)`.
const NUMERIC: u32 = 1700;
/// `uuid`.
const UUID: u32 = 2950;
/// `anyenum`, standing for every enum type.
const ANYENUM: u32 = 3500;
/// `jsonb`.
const JSONB: u32 = 3802;

/// Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_DAYS: i64 = 10_957;
/// Microseconds from 1970-01-01 00:00:00 to PostgreSQL's epoch, 2000-01-01 00:00:00.
const PG_EPOCH_MICROS: i64 = PG_EPOCH_DAYS * 86_400_000_000;
/// The largest value PostgreSQL stores in one field: 1 GB less the 4-byte length header.
const MAX_FIELD_BYTES: usize = 0x3FFF_FFFF - 4;
/// The most integer digits of an unconstrained `numeric` (weight is an `i16` of base-10000
/// digits).
const NUMERIC_MAX_INT_DIGITS: usize = 131_072;
/// The most fraction digits of a `numeric` (`NUMERIC_DSCALE_MAX`).
const NUMERIC_MAX_SCALE: usize = 0x3FFF;
/// `numeric` sign word of a positive number (and zero).
const NUMERIC_POS: i16 = 0x0000;
/// `numeric` sign word of a negative number.
const NUMERIC_NEG: i16 = 0x4000;
/// `time` reaches 24:00:00.
const MAX_TIME_MICROS: i64 = 86_400_000_000;

/// The binary `COPY` signature that opens the header.
const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// A target column as PostgreSQL describes it in `pg_attribute`: its name and its type.
///
/// For a column of a domain type, pass the domain's base type and typmod. For a column of an
/// enum type, pass [`PgCopyEncoder::ANY_ENUM_OID`]: enum values are sent as their label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgCopyColumn {
    /// Column name, for error messages.
    pub name: String,
    /// The type's OID (`pg_attribute.atttypid`).
    pub type_oid: u32,
    /// The type modifier (`pg_attribute.atttypmod`), `-1` when there is none.
    pub typmod: i32,
}

impl PgCopyColumn {
    /// A column from its name, type OID and typmod.
    pub fn new(name: impl Into<String>, type_oid: u32, typmod: i32) -> Self {
        Self {
            name: name.into(),
            type_oid,
            typmod,
        }
    }
}

/// `numeric(precision, scale)`; the scale may be negative (PostgreSQL 15).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NumericTypmod {
    precision: i32,
    scale: i32,
}

/// How one column is encoded: the target type with what its typmod constrains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Bool,
    Int2,
    Int4,
    Int8,
    Numeric(Option<NumericTypmod>),
    Float4,
    Float8,
    /// `text`, `varchar(n)`, `character(n)`, enums: at most this many characters.
    Text(Option<usize>),
    Json,
    Jsonb,
    Bytea,
    Date,
    /// Microseconds must be a multiple of this (1 at full precision).
    Timestamp(i64),
    /// As [`Encoding::Timestamp`].
    TimestampTz(i64),
    /// As [`Encoding::Timestamp`].
    Time(i64),
    /// As [`Encoding::Timestamp`]; 0 when the interval's fields keep no time at all.
    Interval(i64),
    /// `bit(n)`: exactly n bits (any length without a typmod).
    Bit(Option<u32>),
    /// `bit varying(n)`: at most n bits.
    VarBit(Option<u32>),
    Uuid,
    /// Any other type (arrays, `inet`, ranges, `money`, …): written through the type's text
    /// input function, so the table's `COPY` is in text format.
    Other,
}

impl Encoding {
    fn of(oid: u32, typmod: i32) -> Option<Self> {
        Some(match oid {
            BOOL => Encoding::Bool,
            INT2 => Encoding::Int2,
            INT4 => Encoding::Int4,
            INT8 => Encoding::Int8,
            NUMERIC => Encoding::Numeric(numeric_typmod(typmod)),
            FLOAT4 => Encoding::Float4,
            FLOAT8 => Encoding::Float8,
            TEXT | ANYENUM => Encoding::Text(None),
            VARCHAR | BPCHAR => {
                Encoding::Text(typmod.checked_sub(4).and_then(|n| usize::try_from(n).ok()))
            }
            JSON => Encoding::Json,
            JSONB => Encoding::Jsonb,
            BYTEA => Encoding::Bytea,
            DATE => Encoding::Date,
            TIMESTAMP => Encoding::Timestamp(precision_unit(typmod)),
            TIMESTAMPTZ => Encoding::TimestampTz(precision_unit(typmod)),
            TIME => Encoding::Time(precision_unit(typmod)),
            INTERVAL => Encoding::Interval(interval_unit(typmod)),
            BIT => Encoding::Bit(u32::try_from(typmod).ok()),
            VARBIT => Encoding::VarBit(u32::try_from(typmod).ok()),
            UUID => Encoding::Uuid,
            _ => return None,
        })
    }
}

/// The `numeric` typmod: `((precision << 16) | (scale & 0x7ff)) + 4`, or none.
fn numeric_typmod(typmod: i32) -> Option<NumericTypmod> {
    let t = typmod.checked_sub(4).filter(|t| *t >= 0)?;
    Some(NumericTypmod {
        precision: (t >> 16) & 0xFFFF,
        scale: ((t & 0x7FF) ^ 1024) - 1024,
    })
}

/// The microsecond unit a `time(p)` / `timestamp(p)` typmod keeps.
fn precision_unit(p: i32) -> i64 {
    match u32::try_from(p) {
        Ok(p) if p < 6 => 10i64.pow(6 - p),
        _ => 1,
    }
}

/// The microsecond unit an `interval` typmod keeps: fields (`HOUR TO SECOND`, `MINUTE`, …)
/// in the high 16 bits, fractional precision in the low 16. 0 when no time is kept.
fn interval_unit(typmod: i32) -> i64 {
    const HOUR: i32 = 1 << 10;
    const MINUTE: i32 = 1 << 11;
    const SECOND: i32 = 1 << 12;
    const FULL_RANGE: i32 = 0x7FFF;
    const FULL_PRECISION: i32 = 0xFFFF;
    if typmod < 0 {
        return 1;
    }
    let range = (typmod >> 16) & 0x7FFF;
    let precision = typmod & 0xFFFF;
    let range_unit = if range == FULL_RANGE || range & SECOND != 0 {
        1
    } else if range & MINUTE != 0 {
        60_000_000
    } else if range & HOUR != 0 {
        3_600_000_000
    } else {
        return 0;
    };
    let precision_unit = if precision == FULL_PRECISION {
        1
    } else {
        precision_unit(precision)
    };
    range_unit.max(precision_unit)
}

/// Whether [`PgCopyEncoder`] can encode values for the type with this OID.
pub fn is_supported_type(type_oid: u32) -> bool {
    Encoding::of(type_oid, -1).is_some()
}

#[derive(Debug, Clone)]
struct Column {
    name: String,
    encoding: Encoding,
}

/// Encodes rows into PostgreSQL's binary `COPY` format for one list of target columns.
///
/// | column type | values |
/// |---|---|
/// | `smallint`, `integer`, `bigint` | `Int`, `UInt` (range checked) |
/// | `numeric(p,s)` | `Decimal`, `Int`, `UInt` (no digit beyond the scale, at most p−s integer digits) |
/// | `real` / `double precision` | `Float` / `Double`, bit-exact |
/// | `boolean` | `Bool` |
/// | `text`, `varchar(n)`, `character(n)`, enums, `json` | `Text`, `Json` (no NUL; at most n characters) |
/// | `jsonb` | `Json`, `Text` (no NUL, no `\u0000` escape) |
/// | `bytea` | `Bytes` |
/// | `date` | `Date` (a real calendar date) |
/// | `timestamp(p)` / `timestamp(p) with time zone` | `DateTime` / `Timestamp` (UTC) |
/// | `time(p)` | `Time` within `00:00:00..=24:00:00` |
/// | `interval` | `Time`, all in the microseconds field (±838 h round-trips) |
/// | `bit(n)`, `bit varying(n)` | `Bits` |
/// | `uuid` | `Text` (`8-4-4-4-12` or 32 hex digits), 16 `Bytes` |
///
/// `Null` is `NULL` in every column. Anything else is an error of kind
/// [`ErrorKind::Value`] naming the column and the problem, never the contents of a text or
/// blob.
///
/// ```
/// use bytes::BytesMut;
/// use dts_connectors::postgres::{PgCopyColumn, PgCopyEncoder};
/// use dts_core::Value;
///
/// # fn main() -> Result<(), dts_core::Error> {
/// let mut encoder = PgCopyEncoder::new(&[
///     PgCopyColumn::new("id", 20, -1),
///     PgCopyColumn::new("name", 25, -1),
/// ])?;
/// let mut out = BytesMut::new();
/// PgCopyEncoder::write_header(&mut out);
/// encoder.encode_row(&[Value::Int(1), Value::Text("one".into())], &mut out)?;
/// PgCopyEncoder::write_trailer(&mut out);
/// assert_eq!(out.len(), 19 + 2 + (4 + 8) + (4 + 3) + 2);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PgCopyEncoder {
    columns: Vec<Column>,
    field_count: i16,
    /// Reused scratch space for `numeric` base-10000 digits.
    digits: Vec<i16>,
    /// Whether rows are written in `COPY`'s text format (some column has no binary
    /// encoding here).
    text: bool,
    /// Reused scratch space: a value's binary encoding, made to check it in text mode.
    scratch: BytesMut,
}

impl PgCopyEncoder {
    /// The OID to pass for a column of any enum type (`anyenum`).
    pub const ANY_ENUM_OID: u32 = ANYENUM;

    /// An encoder for rows of `columns`, in that order.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unsupported`] naming the column if its type is not one the encoder
    /// handles (see [`is_supported_type`]); [`ErrorKind::Internal`] if there are more
    /// columns than a row can have.
    pub fn new(columns: &[PgCopyColumn]) -> Result<Self> {
        Self::build(columns, false)
    }

    /// An encoder for rows of `columns` of any type. When every column has a binary
    /// encoding (see [`is_supported_type`]) this is [`PgCopyEncoder::new`]; otherwise rows
    /// are written in `COPY`'s text format ([`PgCopyEncoder::is_text`]): the columns of
    /// other types (arrays, `inet`, ranges, `money`, …) take [`Value::Text`] in the type's
    /// own text form (as a PostgreSQL source delivers them) and go through its input
    /// function, and every other column is checked exactly as in binary format, then
    /// written as text its input function reads back unchanged.
    ///
    /// Text format needs the session's `DateStyle` and `IntervalStyle` to read what a
    /// PostgreSQL source prints with `ISO` and `postgres`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Internal`] if there are more columns than a row can have.
    pub fn for_any_types(columns: &[PgCopyColumn]) -> Result<Self> {
        Self::build(columns, true)
    }

    fn build(columns: &[PgCopyColumn], any_type: bool) -> Result<Self> {
        let field_count = i16::try_from(columns.len()).map_err(|_| {
            Error::internal(format!(
                "{} columns exceed what a row can have",
                columns.len()
            ))
        })?;
        let columns = columns
            .iter()
            .map(|c| {
                let encoding = Encoding::of(c.type_oid, c.typmod)
                    .or(any_type.then_some(Encoding::Other))
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::Unsupported,
                            format!(
                                "unsupported target type (oid {}) for column `{}`",
                                c.type_oid, c.name
                            ),
                        )
                    })?;
                Ok(Column {
                    name: c.name.clone(),
                    encoding,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let text = columns.iter().any(|c| c.encoding == Encoding::Other);
        Ok(Self {
            columns,
            field_count,
            digits: Vec::with_capacity(64),
            text,
            scratch: BytesMut::new(),
        })
    }

    /// Whether rows are written in `COPY`'s text format (`COPY … FROM STDIN`), else in its
    /// binary format (`COPY … FROM STDIN (FORMAT binary)`).
    pub fn is_text(&self) -> bool {
        self.text
    }

    /// Writes what precedes the rows: the binary header, nothing in text format.
    pub fn write_start(&self, out: &mut BytesMut) {
        if !self.text {
            Self::write_header(out);
        }
    }

    /// Writes what follows the rows: the binary trailer, nothing in text format.
    pub fn write_end(&self, out: &mut BytesMut) {
        if !self.text {
            Self::write_trailer(out);
        }
    }

    /// Number of columns (values per row).
    pub fn column_count(&self) -> usize {
        self.columns.len()
    }

    /// Writes the binary `COPY` header: signature, flags (0) and header extension length
    /// (0).
    pub fn write_header(out: &mut BytesMut) {
        out.put_slice(SIGNATURE);
        out.put_i32(0);
        out.put_i32(0);
    }

    /// Writes the binary `COPY` trailer: a field count of -1.
    pub fn write_trailer(out: &mut BytesMut) {
        out.put_i16(-1);
    }

    /// Appends one row to `out`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Value`] naming the column for a value the column cannot hold exactly or
    /// of a kind the column does not take; [`ErrorKind::Internal`] if the row has the wrong
    /// number of values. On error, `out` is left as it was before the call.
    pub fn encode_row(&mut self, row: &[Value], out: &mut BytesMut) -> Result<()> {
        if row.len() != self.columns.len() {
            return Err(row_width(row.len(), self.columns.len()));
        }
        let start = out.len();
        if self.text {
            return self
                .encode_text_row(row, out)
                .inspect_err(|_| out.truncate(start));
        }
        out.put_i16(self.field_count);
        for (column, value) in self.columns.iter().zip(row) {
            if let Err(e) = encode_value(column, value, &mut self.digits, out) {
                out.truncate(start);
                return Err(e);
            }
        }
        Ok(())
    }

    /// As [`PgCopyEncoder::encode_row`] for the row `row` followed by `last`, without
    /// building that row: for a row with one more column than its source image.
    pub(crate) fn encode_row_and(
        &mut self,
        row: &[Value],
        last: &Value,
        out: &mut BytesMut,
    ) -> Result<()> {
        if row.len() + 1 != self.columns.len() {
            return Err(row_width(row.len() + 1, self.columns.len()));
        }
        if self.text {
            let mut whole = row.to_vec();
            whole.push(last.clone());
            return self.encode_row(&whole, out);
        }
        let start = out.len();
        out.put_i16(self.field_count);
        for (column, value) in self.columns.iter().zip(row.iter().chain([last])) {
            if let Err(e) = encode_value(column, value, &mut self.digits, out) {
                out.truncate(start);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Appends the field of column `index` alone — its `i32` length (`-1` for `NULL`) and its
    /// binary value — exactly as [`PgCopyEncoder::encode_row`] writes it within a row. The
    /// value part is also the binary parameter format of the extended query protocol.
    ///
    /// Errors as for [`PgCopyEncoder::encode_row`]; on error `out` is left unchanged.
    pub(crate) fn encode_field(
        &mut self,
        index: usize,
        value: &Value,
        out: &mut BytesMut,
    ) -> Result<()> {
        let column = self.columns.get(index).ok_or_else(|| {
            Error::internal(format!("no column {index} among {}", self.columns.len()))
        })?;
        let start = out.len();
        if column.encoding == Encoding::Other {
            // No binary form: the value's text, for a parameter sent in text format (see
            // [`PgCopyEncoder::is_text_column`]).
            return match value {
                Value::Null => {
                    out.put_i32(-1);
                    Ok(())
                }
                Value::Text(s) | Value::Json(s) => {
                    check_text(column, s.as_bytes())?;
                    put_len(column, s.len(), out)?;
                    out.put_slice(s.as_bytes());
                    Ok(())
                }
                other => Err(mismatch(column, Encoding::Other, other)),
            };
        }
        encode_value(column, value, &mut self.digits, out).inspect_err(|_| out.truncate(start))
    }

    /// Whether column `index` has no binary encoding here: [`PgCopyEncoder::encode_field`]
    /// writes its value's text, to be sent as a text-format parameter.
    pub(crate) fn is_text_column(&self, index: usize) -> bool {
        self.columns
            .get(index)
            .is_some_and(|c| c.encoding == Encoding::Other)
    }

    /// One row in text format: fields separated by tabs, `\N` for `NULL`, a newline.
    fn encode_text_row(&mut self, row: &[Value], out: &mut BytesMut) -> Result<()> {
        for (i, (column, value)) in self.columns.iter().zip(row).enumerate() {
            if i > 0 {
                out.put_u8(b'\t');
            }
            if value.is_null() {
                out.put_slice(b"\\N");
                continue;
            }
            if column.encoding == Encoding::Other {
                if let Value::Text(s) | Value::Json(s) = value {
                    check_text(column, s.as_bytes())?;
                }
            } else {
                // The same checks as in binary format.
                self.scratch.clear();
                encode_value(column, value, &mut self.digits, &mut self.scratch)?;
            }
            put_text(column.encoding, value, out);
        }
        out.put_u8(b'\n');
        Ok(())
    }
}

/// A checked value as `COPY` text: the form its type's input function reads back exactly,
/// escaped for the text format.
fn put_text(encoding: Encoding, value: &Value, out: &mut BytesMut) {
    let mut plain = |s: &str| out.put_slice(s.as_bytes());
    match value {
        Value::Null => plain("\\N"),
        Value::Bool(b) => plain(if *b { "t" } else { "f" }),
        Value::Int(n) => plain(&n.to_string()),
        Value::UInt(n) => plain(&n.to_string()),
        Value::Year(n) => plain(&n.to_string()),
        Value::Decimal(d) => plain(d.as_str()),
        Value::Float(f) => plain(&float_text(f64::from(*f), format!("{f:?}"))),
        Value::Double(f) => plain(&float_text(*f, format!("{f:?}"))),
        Value::Date(d) => plain(&d.to_string()),
        Value::DateTime(d) => plain(&d.to_string()),
        Value::Timestamp(d) => plain(&format!("{d}+00")),
        Value::Time(t) => plain(&t.to_string()),
        Value::Bits(b) => {
            let text: String = (0..b.len)
                .rev()
                .map(|i| if (b.bits >> i) & 1 == 1 { '1' } else { '0' })
                .collect();
            plain(&text);
        }
        Value::Bytes(b) if encoding == Encoding::Uuid => {
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            plain(&hex);
        }
        Value::Bytes(b) => {
            // `\x…`, its backslash escaped.
            out.put_slice(b"\\\\x");
            for x in b {
                out.put_slice(format!("{x:02x}").as_bytes());
            }
        }
        Value::Text(s) | Value::Json(s) => {
            for &byte in s.as_bytes() {
                match byte {
                    b'\\' => out.put_slice(b"\\\\"),
                    b'\n' => out.put_slice(b"\\n"),
                    b'\r' => out.put_slice(b"\\r"),
                    b'\t' => out.put_slice(b"\\t"),
                    _ => out.put_u8(byte),
                }
            }
        }
    }
}

/// A float's shortest text that reads back to the same bits, in PostgreSQL's spelling of
/// the special values.
fn float_text(f: f64, shortest: String) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        shortest
    }
}

/// An interval as PostgreSQL prints it with `IntervalStyle = postgres`
/// (`-1 years 2 mons +3 days -04:05:06.5`): months, days and microseconds.
fn parse_interval(s: &str) -> Option<(i32, i32, i64)> {
    let (mut months, mut days, mut micros) = (0i64, 0i64, 0i128);
    let mut words = s.split_ascii_whitespace().peekable();
    while let Some(word) = words.next() {
        if word.contains(':') {
            let (negative, rest) = match word.as_bytes().first()? {
                b'-' => (true, &word[1..]),
                b'+' => (false, &word[1..]),
                _ => (false, word),
            };
            let mut parts = rest.splitn(3, ':');
            let hours: i128 = parts.next()?.parse().ok()?;
            let minutes: i128 = parts.next()?.parse().ok()?;
            let seconds = parts.next()?;
            let (whole, fraction) = seconds.split_once('.').unwrap_or((seconds, ""));
            let whole: i128 = whole.parse().ok()?;
            if fraction.len() > 6 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let fraction: i128 = format!("{fraction:0<6}").parse().ok()?;
            let t = ((hours * 60 + minutes) * 60 + whole) * 1_000_000 + fraction;
            micros += if negative { -t } else { t };
            continue;
        }
        let n: i64 = word.parse().ok()?;
        match words.next()? {
            "year" | "years" => months += n.checked_mul(12)?,
            "mon" | "mons" => months += n,
            "day" | "days" => days += n,
            _ => return None,
        }
    }
    Some((
        i32::try_from(months).ok()?,
        i32::try_from(days).ok()?,
        i64::try_from(micros).ok()?,
    ))
}

/// `bit(n)` / `bit varying(n)` from its text of `0`s and `1`s, of any length.
fn encode_bit_text(
    col: &Column,
    s: &str,
    exact: Option<u32>,
    max: Option<u32>,
    out: &mut BytesMut,
) -> Result<()> {
    if !s.bytes().all(|b| b == b'0' || b == b'1') {
        return Err(value_error(col, "text is not a bit string"));
    }
    let len = u32::try_from(s.len()).map_err(|_| value_error(col, "bit string too long"))?;
    if exact.is_some_and(|n| n != len) || max.is_some_and(|n| len > n) {
        let n = exact.or(max).unwrap_or(0);
        return Err(value_error(
            col,
            format!("bit string of {len} bits does not fit bit({n})"),
        ));
    }
    let nbytes = s.len().div_ceil(8);
    put_len(col, 4 + nbytes, out)?;
    out.put_u32(len);
    for chunk in s.as_bytes().chunks(8) {
        let mut byte = 0u8;
        for (i, &b) in chunk.iter().enumerate() {
            if b == b'1' {
                byte |= 0x80 >> i;
            }
        }
        out.put_u8(byte);
    }
    Ok(())
}

/// Appends one field: length and binary value.
fn encode_value(
    col: &Column,
    value: &Value,
    digits: &mut Vec<i16>,
    out: &mut BytesMut,
) -> Result<()> {
    match (col.encoding, value) {
        (_, Value::Null) => out.put_i32(-1),
        (Encoding::Bool, Value::Bool(b)) => {
            out.put_i32(1);
            out.put_u8(u8::from(*b));
        }
        (Encoding::Int2, Value::Int(n)) => {
            let n = i16::try_from(*n).map_err(|_| out_of_range(col, n))?;
            out.put_i32(2);
            out.put_i16(n);
        }
        (Encoding::Int2, Value::UInt(n)) => {
            let n = i16::try_from(*n).map_err(|_| out_of_range(col, n))?;
            out.put_i32(2);
            out.put_i16(n);
        }
        (Encoding::Int4, Value::Int(n)) => {
            let n = i32::try_from(*n).map_err(|_| out_of_range(col, n))?;
            out.put_i32(4);
            out.put_i32(n);
        }
        (Encoding::Int4, Value::UInt(n)) => {
            let n = i32::try_from(*n).map_err(|_| out_of_range(col, n))?;
            out.put_i32(4);
            out.put_i32(n);
        }
        (Encoding::Int8, Value::Int(n)) => {
            out.put_i32(8);
            out.put_i64(*n);
        }
        (Encoding::Int8, Value::UInt(n)) => {
            let n = i64::try_from(*n).map_err(|_| out_of_range(col, n))?;
            out.put_i32(8);
            out.put_i64(n);
        }
        (Encoding::Numeric(typmod), Value::Decimal(d)) => {
            encode_decimal(col, d, typmod, digits, out)?;
        }
        (Encoding::Numeric(typmod), Value::Int(n)) => {
            encode_integer_numeric(col, *n < 0, n.unsigned_abs(), typmod, out)?;
        }
        (Encoding::Numeric(typmod), Value::UInt(n)) => {
            encode_integer_numeric(col, false, *n, typmod, out)?;
        }
        (Encoding::Float4, Value::Float(f)) => {
            out.put_i32(4);
            out.put_u32(f.to_bits());
        }
        (Encoding::Float8, Value::Double(f)) => {
            out.put_i32(8);
            out.put_u64(f.to_bits());
        }
        (Encoding::Text(max_chars), Value::Text(s) | Value::Json(s)) => {
            check_text(col, s.as_bytes())?;
            if let Some(max) = max_chars {
                // Bytes bound characters from above: count only when the bytes exceed it.
                if s.len() > max && s.chars().count() > max {
                    return Err(too_long(col, s.chars().count(), max));
                }
            }
            put_len(col, s.len(), out)?;
            out.put_slice(s.as_bytes());
        }
        (Encoding::Json, Value::Json(s) | Value::Text(s)) => {
            check_text(col, s.as_bytes())?;
            put_len(col, s.len(), out)?;
            out.put_slice(s.as_bytes());
        }
        (Encoding::Jsonb, Value::Json(s) | Value::Text(s)) => {
            check_text(col, s.as_bytes())?;
            if has_escaped_nul(s.as_bytes()) {
                return Err(value_error(
                    col,
                    "contains a `\\u0000` escape, which jsonb cannot hold",
                ));
            }
            put_len(col, s.len() + 1, out)?;
            out.put_u8(1);
            out.put_slice(s.as_bytes());
        }
        (Encoding::Bytea, Value::Bytes(b)) => {
            put_len(col, b.len(), out)?;
            out.put_slice(b);
        }
        (Encoding::Date, Value::Date(d)) => {
            let days = pg_days(col, d)?;
            out.put_i32(4);
            out.put_i32(days);
        }
        (Encoding::Timestamp(unit), Value::DateTime(dt))
        | (Encoding::TimestampTz(unit), Value::Timestamp(dt)) => {
            let micros = pg_micros(col, dt)?;
            if micros % unit != 0 {
                return Err(too_precise(col));
            }
            out.put_i32(8);
            out.put_i64(micros);
        }
        (Encoding::Time(unit), Value::Time(t)) => {
            if !(0..=MAX_TIME_MICROS).contains(&t.micros) {
                return Err(value_error(
                    col,
                    format!("time `{t}` is not a time of day (00:00:00 to 24:00:00)"),
                ));
            }
            if t.micros % unit != 0 {
                return Err(too_precise(col));
            }
            out.put_i32(8);
            out.put_i64(t.micros);
        }
        (Encoding::Interval(unit), Value::Text(s)) => {
            let (months, days, micros) = parse_interval(s)
                .ok_or_else(|| value_error(col, format!("`{s}` is not an interval")))?;
            if (unit == 0 && micros != 0) || (unit != 0 && micros % unit != 0) {
                return Err(too_precise(col));
            }
            out.put_i32(16);
            out.put_i64(micros);
            out.put_i32(days);
            out.put_i32(months);
        }
        (Encoding::Bit(len), Value::Text(s)) => encode_bit_text(col, s, len, len, out)?,
        (Encoding::VarBit(max), Value::Text(s)) => encode_bit_text(col, s, None, max, out)?,
        (Encoding::Numeric(_), Value::Text(s)) => {
            // The values a numeric holds beyond decimals, as PostgreSQL spells them.
            let sign: u16 = match s.as_str() {
                "NaN" => 0xC000,
                "Infinity" => 0xD000,
                "-Infinity" => 0xF000,
                _ => return Err(value_error(col, format!("`{s}` is not a numeric"))),
            };
            out.put_i32(8);
            out.put_i16(0);
            out.put_i16(0);
            out.put_u16(sign);
            out.put_i16(0);
        }
        (Encoding::Date, Value::Text(s)) => {
            let days = match s.as_str() {
                "infinity" => i32::MAX,
                "-infinity" => i32::MIN,
                _ => return Err(value_error(col, format!("`{s}` is not a date"))),
            };
            out.put_i32(4);
            out.put_i32(days);
        }
        (Encoding::Timestamp(_) | Encoding::TimestampTz(_), Value::Text(s)) => {
            let micros = match s.as_str() {
                "infinity" => i64::MAX,
                "-infinity" => i64::MIN,
                _ => return Err(value_error(col, format!("`{s}` is not a timestamp"))),
            };
            out.put_i32(8);
            out.put_i64(micros);
        }
        (Encoding::Interval(unit), Value::Time(t)) => {
            if (unit == 0 && t.micros != 0) || (unit != 0 && t.micros % unit != 0) {
                return Err(too_precise(col));
            }
            out.put_i32(16);
            out.put_i64(t.micros);
            out.put_i32(0);
            out.put_i32(0);
        }
        (Encoding::Bit(len), Value::Bits(b)) => encode_bits(col, b, len, len, out)?,
        (Encoding::VarBit(max), Value::Bits(b)) => encode_bits(col, b, None, max, out)?,
        (Encoding::Uuid, Value::Text(s)) => {
            let uuid =
                parse_uuid(s.as_bytes()).ok_or_else(|| value_error(col, "text is not a uuid"))?;
            out.put_i32(16);
            out.put_slice(&uuid);
        }
        (Encoding::Uuid, Value::Bytes(b)) => {
            if b.len() != 16 {
                return Err(value_error(
                    col,
                    format!("{} bytes are not a uuid (16 bytes)", b.len()),
                ));
            }
            out.put_i32(16);
            out.put_slice(b);
        }
        (encoding, value) => return Err(mismatch(col, encoding, value)),
    }
    Ok(())
}

/// Writes a field length.
fn put_len(col: &Column, len: usize, out: &mut BytesMut) -> Result<()> {
    match i32::try_from(len) {
        Ok(n) if len <= MAX_FIELD_BYTES => {
            out.put_i32(n);
            Ok(())
        }
        _ => Err(value_error(
            col,
            format!("value of {len} bytes exceeds PostgreSQL's 1 GB field limit"),
        )),
    }
}

/// Rejects a NUL character, which no PostgreSQL text value can hold.
fn check_text(col: &Column, bytes: &[u8]) -> Result<()> {
    if bytes.contains(&0) {
        return Err(value_error(
            col,
            "contains a NUL character, which PostgreSQL text cannot hold",
        ));
    }
    Ok(())
}

/// Whether JSON text holds a `\u0000` escape (an escaped backslash followed by `u0000` is
/// not one).
fn has_escaped_nul(bytes: &[u8]) -> bool {
    let mut i = 0;
    while let Some(p) = bytes[i..].iter().position(|&b| b == b'\\') {
        let j = i + p;
        if bytes.get(j + 1) == Some(&b'u') && bytes.get(j + 2..j + 6) == Some(b"0000".as_slice()) {
            return true;
        }
        // Skip the escaped character, whatever it is.
        i = j + 2;
        if i >= bytes.len() {
            break;
        }
    }
    false
}

/// Days since 2000-01-01 of a real calendar date.
fn pg_days(col: &Column, d: &Date) -> Result<i32> {
    if !d.is_valid() {
        return Err(value_error(
            col,
            format!("`{d}` is not a calendar date PostgreSQL can hold"),
        ));
    }
    i32::try_from(d.days_since_unix_epoch() - PG_EPOCH_DAYS)
        .map_err(|_| value_error(col, format!("date `{d}` is out of range")))
}

/// Microseconds since 2000-01-01 00:00:00 of a valid date and time.
fn pg_micros(col: &Column, dt: &DateTime) -> Result<i64> {
    if !dt.date.is_valid() || dt.hour > 23 || dt.minute > 59 || dt.second > 59 || dt.micro > 999_999
    {
        return Err(value_error(
            col,
            format!("`{dt}` is not a date and time PostgreSQL can hold"),
        ));
    }
    Ok(dt.micros_since_unix_epoch() - PG_EPOCH_MICROS)
}

/// `bit(n)` / `bit varying(n)`: bit length, then the bits MSB first, zero-padded at the end.
fn encode_bits(
    col: &Column,
    b: &BitString,
    exact: Option<u32>,
    max: Option<u32>,
    out: &mut BytesMut,
) -> Result<()> {
    let len = u32::from(b.len);
    if b.len == 0 || b.len > 64 || (b.len < 64 && b.bits >> b.len != 0) {
        return Err(value_error(
            col,
            format!("malformed bit string of {len} bits"),
        ));
    }
    if exact.is_some_and(|n| n != len) || max.is_some_and(|n| len > n) {
        let n = exact.or(max).unwrap_or(0);
        return Err(value_error(
            col,
            format!("bit string of {len} bits does not fit bit({n})"),
        ));
    }
    let nbytes = b.len.div_ceil(8);
    let aligned = b.bits << (64 - u32::from(b.len));
    out.put_i32(4 + i32::from(nbytes));
    out.put_u32(len);
    out.put_slice(&aligned.to_be_bytes()[..usize::from(nbytes)]);
    Ok(())
}

/// A uuid from `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` or 32 hex digits.
fn parse_uuid(s: &[u8]) -> Option<[u8; 16]> {
    let hyphens = match s.len() {
        36 => true,
        32 => false,
        _ => return None,
    };
    let mut out = [0u8; 16];
    let mut nibbles = 0usize;
    for (i, &c) in s.iter().enumerate() {
        if hyphens && matches!(i, 8 | 13 | 18 | 23) {
            if c != b'-' {
                return None;
            }
            continue;
        }
        let v = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return None,
        };
        out[nibbles / 2] |= if nibbles % 2 == 0 { v << 4 } else { v };
        nibbles += 1;
    }
    (nibbles == 32).then_some(out)
}

/// A base-10000 digit from 1 to 4 ASCII decimal digits.
fn digit_group(digits: &[u8]) -> i16 {
    digits
        .iter()
        .fold(0i16, |acc, &b| acc * 10 + i16::from(b.wrapping_sub(b'0')))
}

/// Whether a decimal with these (leading-zero-free) integer digits and fraction digits fits
/// `numeric(p,s)` without the server rounding it.
fn fits_numeric(int: &[u8], frac: &[u8], typmod: NumericTypmod) -> bool {
    let max_int_digits = i64::from(typmod.precision) - i64::from(typmod.scale);
    match usize::try_from(typmod.scale) {
        Ok(scale) => {
            if frac.len() > scale && frac[scale..].iter().any(|&b| b != b'0') {
                return false;
            }
        }
        Err(_) => {
            // A negative scale rounds to tens, hundreds, …: those digits must be zero.
            let zeros = usize::try_from(-i64::from(typmod.scale)).unwrap_or(usize::MAX);
            if frac.iter().any(|&b| b != b'0') || int.iter().rev().take(zeros).any(|&b| b != b'0') {
                return false;
            }
        }
    }
    i64::try_from(int.len()).is_ok_and(|n| n <= max_int_digits)
}

/// `numeric` from a decimal's text: `ndigits`, `weight`, `sign`, `dscale`, then base-10000
/// digits, without leading or trailing zero digits.
fn encode_decimal(
    col: &Column,
    d: &Decimal,
    typmod: Option<NumericTypmod>,
    digits: &mut Vec<i16>,
    out: &mut BytesMut,
) -> Result<()> {
    let int = d.integer_digits().as_bytes();
    let int = &int[int.iter().position(|&b| b != b'0').unwrap_or(int.len())..];
    let frac = d.fraction_digits().as_bytes();
    if let Some(t) = typmod {
        if !fits_numeric(int, frac, t) {
            return Err(numeric_out_of_range(col, t));
        }
    }
    if int.len() > NUMERIC_MAX_INT_DIGITS || frac.len() > NUMERIC_MAX_SCALE {
        return Err(value_error(
            col,
            format!(
                "decimal of {} integer and {} fraction digits exceeds PostgreSQL's numeric",
                int.len(),
                frac.len()
            ),
        ));
    }
    write_numeric(d.is_negative(), int, frac, digits, out);
    Ok(())
}

/// Appends a field's length and bytes; `false` (and nothing appended) for a field too
/// long for PostgreSQL.
pub(crate) fn put_field(b: &[u8], out: &mut BytesMut) -> bool {
    match i32::try_from(b.len()) {
        Ok(n) if b.len() <= dts_typemap::PG_MAX_VALUE_BYTES => {
            out.put_i32(n);
            out.put_slice(b);
            true
        }
        _ => false,
    }
}

/// Writes a `numeric` field (length, header, base-10000 digits, without leading or
/// trailing zero digits) of a decimal given by its sign (`negative` only when it is not
/// zero), its integer digits without leading zeros and its fraction digits, which set the
/// display scale. The digits must fit PostgreSQL's `numeric` (see [`encode_decimal`]).
pub(crate) fn write_numeric(
    negative: bool,
    int: &[u8],
    frac: &[u8],
    digits: &mut Vec<i16>,
    out: &mut BytesMut,
) {
    digits.clear();
    let int_groups = int.len().div_ceil(4);
    if int_groups > 0 {
        let first = int.len() - (int_groups - 1) * 4;
        digits.push(digit_group(&int[..first]));
        digits.extend(int[first..].chunks_exact(4).map(digit_group));
    }
    let mut chunks = frac.chunks_exact(4);
    digits.extend(chunks.by_ref().map(digit_group));
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut g = digit_group(rest);
        for _ in rest.len()..4 {
            g *= 10;
        }
        digits.push(g);
    }
    // Both bounded by the callers' checks: at most 32768 integer groups, scale at most 16383.
    let dscale = i16::try_from(frac.len()).unwrap_or(i16::MAX);
    let weight = i32::try_from(int_groups).unwrap_or(i32::MAX) - 1;
    let Some(first) = digits.iter().position(|&g| g != 0) else {
        put_numeric_header(out, 0, 0, NUMERIC_POS, dscale);
        return;
    };
    let last = digits.iter().rposition(|&g| g != 0).unwrap_or(first);
    let weight = weight - i32::try_from(first).unwrap_or(0);
    let sign = if negative { NUMERIC_NEG } else { NUMERIC_POS };
    let used = &digits[first..=last];
    put_numeric_header(
        out,
        i16::try_from(used.len()).unwrap_or(i16::MAX),
        i16::try_from(weight).unwrap_or(i16::MAX),
        sign,
        dscale,
    );
    for &g in used {
        out.put_i16(g);
    }
}

/// `numeric` from an integer.
fn encode_integer_numeric(
    col: &Column,
    negative: bool,
    magnitude: u64,
    typmod: Option<NumericTypmod>,
    out: &mut BytesMut,
) -> Result<()> {
    if let Some(t) = typmod {
        let mut text = [0u8; 20];
        let mut n = magnitude;
        let mut len = 0;
        while n > 0 {
            text[19 - len] = b'0' + u8::try_from(n % 10).unwrap_or(0);
            n /= 10;
            len += 1;
        }
        if !fits_numeric(&text[20 - len..], &[], t) {
            return Err(numeric_out_of_range(col, t));
        }
    }
    if magnitude == 0 {
        put_numeric_header(out, 0, 0, NUMERIC_POS, 0);
        return Ok(());
    }
    // Base-10000 digits, least significant first: u64 has at most 5.
    let mut groups = [0i16; 5];
    let mut count = 0;
    let mut n = magnitude;
    while n > 0 {
        groups[count] = i16::try_from(n % 10_000).unwrap_or(0);
        n /= 10_000;
        count += 1;
    }
    let lowest = groups[..count].iter().position(|&g| g != 0).unwrap_or(0);
    let used = &groups[lowest..count];
    let sign = if negative { NUMERIC_NEG } else { NUMERIC_POS };
    put_numeric_header(
        out,
        i16::try_from(used.len()).unwrap_or(0),
        i16::try_from(count - 1).unwrap_or(0),
        sign,
        0,
    );
    for &g in used.iter().rev() {
        out.put_i16(g);
    }
    Ok(())
}

/// Field length and the four `numeric` header words.
fn put_numeric_header(out: &mut BytesMut, ndigits: i16, weight: i16, sign: i16, dscale: i16) {
    out.put_i32(8 + 2 * i32::from(ndigits));
    out.put_i16(ndigits);
    out.put_i16(weight);
    out.put_i16(sign);
    out.put_i16(dscale);
}

fn type_name(encoding: Encoding) -> &'static str {
    match encoding {
        Encoding::Bool => "boolean",
        Encoding::Int2 => "smallint",
        Encoding::Int4 => "integer",
        Encoding::Int8 => "bigint",
        Encoding::Numeric(_) => "numeric",
        Encoding::Float4 => "real",
        Encoding::Float8 => "double precision",
        Encoding::Text(_) => "text",
        Encoding::Json => "json",
        Encoding::Jsonb => "jsonb",
        Encoding::Bytea => "bytea",
        Encoding::Date => "date",
        Encoding::Timestamp(_) => "timestamp",
        Encoding::TimestampTz(_) => "timestamp with time zone",
        Encoding::Time(_) => "time",
        Encoding::Interval(_) => "interval",
        Encoding::Bit(_) => "bit",
        Encoding::VarBit(_) => "bit varying",
        Encoding::Uuid => "uuid",
        Encoding::Other => "its type",
    }
}

#[cold]
fn value_error(col: &Column, problem: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Value,
        format!("column `{}`: {problem}", col.name),
    )
}

#[cold]
fn out_of_range(col: &Column, n: impl std::fmt::Display) -> Error {
    value_error(
        col,
        format!("{n} is out of range for {}", type_name(col.encoding)),
    )
}

#[cold]
fn numeric_out_of_range(col: &Column, t: NumericTypmod) -> Error {
    value_error(
        col,
        format!(
            "decimal does not fit numeric({},{}) without rounding",
            t.precision, t.scale
        ),
    )
}

#[cold]
fn too_long(col: &Column, chars: usize, max: usize) -> Error {
    value_error(
        col,
        format!("text of {chars} characters exceeds the column's {max}"),
    )
}

#[cold]
fn too_precise(col: &Column) -> Error {
    value_error(
        col,
        format!(
            "value has more precision than the column's {} type keeps",
            type_name(col.encoding)
        ),
    )
}

#[cold]
fn mismatch(col: &Column, encoding: Encoding, value: &Value) -> Error {
    value_error(
        col,
        format!(
            "a {} value cannot be written to a {} column",
            value.kind(),
            type_name(encoding)
        ),
    )
}

#[cold]
fn row_width(got: usize, want: usize) -> Error {
    Error::internal(format!("row has {got} values for {want} columns"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_as_postgres_prints_them() {
        assert_eq!(parse_interval("00:00:00"), Some((0, 0, 0)));
        assert_eq!(
            parse_interval("-1 years +2 mons -3 days -04:05:06.5"),
            Some((-10, -3, -14_706_500_000))
        );
        assert_eq!(parse_interval("1 day"), Some((0, 1, 0)));
        assert_eq!(parse_interval("1 fortnight"), None);
        assert_eq!(parse_interval("3000000000 mons"), None);
    }

    #[test]
    fn text_format_for_tables_with_other_types() {
        let columns = [
            PgCopyColumn::new("id", INT4, -1),
            PgCopyColumn::new("tags", 1009, -1), // text[]
            PgCopyColumn::new("body", TEXT, -1),
            PgCopyColumn::new("raw", BYTEA, -1),
            PgCopyColumn::new("at", TIMESTAMPTZ, -1),
        ];
        assert!(PgCopyEncoder::new(&columns).is_err());
        let mut e = PgCopyEncoder::for_any_types(&columns).unwrap();
        assert!(e.is_text());
        let mut out = BytesMut::new();
        e.write_start(&mut out);
        e.encode_row(
            &[
                Value::Int(7),
                Value::Text("{a,\"b c\"}".into()),
                Value::Text("tab\there\\".into()),
                Value::Bytes(vec![0, 255]),
                Value::Timestamp("2000-01-02 03:04:05.5".parse().unwrap()),
            ],
            &mut out,
        )
        .unwrap();
        e.encode_row(
            &[
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
            ],
            &mut out,
        )
        .unwrap();
        e.write_end(&mut out);
        assert_eq!(
            &out[..],
            b"7\t{a,\"b c\"}\ttab\\there\\\\\t\\\\x00ff\t2000-01-02 03:04:05.500000+00\n\\N\t\\N\t\\N\t\\N\t\\N\n"
        );
        // Checks stay as strict as in binary format, and leave nothing behind.
        let len = out.len();
        let err = e
            .encode_row(
                &[
                    Value::Int(1 << 40),
                    Value::Null,
                    Value::Null,
                    Value::Null,
                    Value::Null,
                ],
                &mut out,
            )
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Value);
        assert_eq!(out.len(), len);
        // Without such a column the encoder stays binary.
        assert!(!PgCopyEncoder::for_any_types(&columns[..1])
            .unwrap()
            .is_text());
    }
    use dts_core::Duration;

    fn encode(oid: u32, typmod: i32, value: Value) -> Result<Vec<u8>> {
        let mut enc = PgCopyEncoder::new(&[PgCopyColumn::new("c", oid, typmod)])?;
        let mut out = BytesMut::new();
        enc.encode_row(&[value], &mut out)?;
        assert_eq!(&out[..2], &[0, 1], "field count");
        Ok(out[2..].to_vec())
    }

    /// The field bytes after the 4-byte length, checking the length.
    fn field(oid: u32, typmod: i32, value: Value) -> Vec<u8> {
        let bytes = encode(oid, typmod, value).unwrap();
        let len = i32::from_be_bytes(bytes[..4].try_into().unwrap());
        assert_eq!(usize::try_from(len).unwrap(), bytes.len() - 4);
        bytes[4..].to_vec()
    }

    fn err(oid: u32, typmod: i32, value: Value) -> String {
        let e = encode(oid, typmod, value).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Value, "{e}");
        e.message().to_string()
    }

    fn dec(s: &str) -> Value {
        Value::Decimal(s.parse().unwrap())
    }

    /// A numeric field from its header words and digits.
    fn numeric(ndigits: i16, weight: i16, sign: u16, dscale: i16, digits: &[i16]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&ndigits.to_be_bytes());
        v.extend_from_slice(&weight.to_be_bytes());
        v.extend_from_slice(&sign.to_be_bytes());
        v.extend_from_slice(&dscale.to_be_bytes());
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    fn numeric_typmod_of(p: i32, s: i32) -> i32 {
        ((p << 16) | (s & 0x7FF)) + 4
    }

    #[test]
    fn header_row_and_trailer() {
        let mut enc = PgCopyEncoder::new(&[
            PgCopyColumn::new("a", INT4, -1),
            PgCopyColumn::new("b", TEXT, -1),
        ])
        .unwrap();
        let mut out = BytesMut::new();
        PgCopyEncoder::write_header(&mut out);
        enc.encode_row(&[Value::Int(7), Value::Null], &mut out)
            .unwrap();
        PgCopyEncoder::write_trailer(&mut out);
        let want: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0\
            \x00\x02\x00\x00\x00\x04\x00\x00\x00\x07\xff\xff\xff\xff\xff\xff";
        assert_eq!(&out[..], want);
    }

    #[test]
    fn integers_with_range_checks() {
        assert_eq!(field(INT2, -1, Value::Int(-2)), [0xff, 0xfe]);
        assert_eq!(field(INT2, -1, Value::UInt(32767)), [0x7f, 0xff]);
        assert_eq!(field(INT4, -1, Value::Int(-1)), [0xff; 4]);
        assert_eq!(field(INT4, -1, Value::UInt(1)), [0, 0, 0, 1]);
        assert_eq!(
            field(INT8, -1, Value::Int(i64::MIN)),
            i64::MIN.to_be_bytes()
        );
        assert_eq!(
            field(INT8, -1, Value::UInt(9_223_372_036_854_775_807)),
            i64::MAX.to_be_bytes()
        );
        assert_eq!(
            err(INT2, -1, Value::Int(32768)),
            "column `c`: 32768 is out of range for smallint"
        );
        assert!(err(INT4, -1, Value::Int(-2_147_483_649)).contains("out of range for integer"));
        assert!(err(INT8, -1, Value::UInt(u64::MAX)).contains("18446744073709551615"));
        assert_eq!(
            err(INT4, -1, Value::Bool(true)),
            "column `c`: a bool value cannot be written to a integer column"
        );
    }

    #[test]
    fn numeric_fixtures() {
        let n = |s: &str| field(NUMERIC, -1, dec(s));
        assert_eq!(n("0"), numeric(0, 0, 0, 0, &[]));
        assert_eq!(n("0.000"), numeric(0, 0, 0, 3, &[]));
        assert_eq!(n("1"), numeric(1, 0, 0, 0, &[1]));
        assert_eq!(n("-1"), numeric(1, 0, 0x4000, 0, &[1]));
        assert_eq!(n("10000"), numeric(1, 1, 0, 0, &[1]));
        assert_eq!(n("0.0001"), numeric(1, -1, 0, 4, &[1]));
        assert_eq!(n("0.00000001"), numeric(1, -2, 0, 8, &[1]));
        assert_eq!(n("12345.678"), numeric(3, 1, 0, 3, &[1, 2345, 6780]));
        assert_eq!(n("-0.5"), numeric(1, -1, 0x4000, 1, &[5000]));
        assert_eq!(n("100000000.0001"), numeric(4, 2, 0, 4, &[1, 0, 0, 1]));
        assert_eq!(n("1.50"), numeric(2, 0, 0, 2, &[1, 5000]));
        let max = format!("{}.{}", "9".repeat(35), "9".repeat(30));
        let mut digits = vec![999];
        digits.extend([9999; 15]);
        digits.push(9900);
        assert_eq!(n(&max), numeric(17, 8, 0, 30, &digits));
        let min = format!("-{max}");
        assert_eq!(n(&min), numeric(17, 8, 0x4000, 30, &digits));
    }

    #[test]
    fn numeric_from_integers() {
        let n = |v: Value| field(NUMERIC, -1, v);
        assert_eq!(n(Value::Int(0)), numeric(0, 0, 0, 0, &[]));
        assert_eq!(n(Value::Int(-1)), numeric(1, 0, 0x4000, 0, &[1]));
        assert_eq!(n(Value::UInt(10_000)), numeric(1, 1, 0, 0, &[1]));
        assert_eq!(
            n(Value::UInt(u64::MAX)),
            numeric(5, 4, 0, 0, &[1844, 6744, 737, 955, 1615])
        );
        assert_eq!(
            n(Value::Int(i64::MIN)),
            numeric(5, 4, 0x4000, 0, &[922, 3372, 368, 5477, 5808])
        );
        // numeric(20,0) holds u64::MAX; numeric(5,2) holds 999 but not 1000.
        assert_eq!(
            field(NUMERIC, numeric_typmod_of(20, 0), Value::UInt(u64::MAX)).len(),
            18
        );
        assert!(encode(NUMERIC, numeric_typmod_of(5, 2), Value::Int(-999)).is_ok());
        assert!(err(NUMERIC, numeric_typmod_of(5, 2), Value::Int(1000)).contains("numeric(5,2)"));
    }

    #[test]
    fn numeric_typmod_is_checked_not_rounded() {
        let t = numeric_typmod_of(5, 2);
        assert!(encode(NUMERIC, t, dec("999.99")).is_ok());
        assert!(encode(NUMERIC, t, dec("-999.9900")).is_ok());
        assert_eq!(
            err(NUMERIC, t, dec("1.001")),
            "column `c`: decimal does not fit numeric(5,2) without rounding"
        );
        assert!(encode(NUMERIC, t, dec("1000.00")).is_err());
        let t65 = numeric_typmod_of(65, 30);
        let max = format!("{}.{}", "9".repeat(35), "9".repeat(30));
        assert!(encode(NUMERIC, t65, dec(&max)).is_ok());
        assert!(encode(NUMERIC, t65, dec(&format!("1{max}"))).is_err());
        // Negative scale: numeric(3,-2) holds 12300, not 12340 or 0.5.
        let neg = numeric_typmod_of(3, -2);
        assert_eq!(
            numeric_typmod(neg),
            Some(NumericTypmod {
                precision: 3,
                scale: -2
            })
        );
        assert!(encode(NUMERIC, neg, dec("12300")).is_ok());
        assert!(encode(NUMERIC, neg, dec("12340")).is_err());
        assert!(encode(NUMERIC, neg, dec("0.5")).is_err());
    }

    #[test]
    fn floats_are_bit_exact() {
        assert_eq!(field(FLOAT4, -1, Value::Float(-0.0)), [0x80, 0, 0, 0]);
        assert_eq!(
            field(FLOAT4, -1, Value::Float(f32::MAX)),
            [0x7f, 0x7f, 0xff, 0xff]
        );
        assert_eq!(
            field(FLOAT8, -1, Value::Double(1.5)),
            [0x3f, 0xf8, 0, 0, 0, 0, 0, 0]
        );
        assert!(err(FLOAT4, -1, Value::Double(1.0)).contains("a double value"));
        assert!(err(FLOAT8, -1, Value::Float(1.0)).contains("a float value"));
    }

    #[test]
    fn booleans() {
        assert_eq!(field(BOOL, -1, Value::Bool(true)), [1]);
        assert_eq!(field(BOOL, -1, Value::Bool(false)), [0]);
        assert!(err(BOOL, -1, Value::Int(1)).contains("a int value"));
    }

    #[test]
    fn text_types_reject_nul_and_over_long_values() {
        assert_eq!(field(TEXT, -1, Value::Text("é".into())), "é".as_bytes());
        assert_eq!(
            field(VARCHAR, 3 + 4, Value::Text("€€€".into())),
            "€€€".as_bytes()
        );
        assert_eq!(field(BPCHAR, 2 + 4, Value::Text("ab".into())), b"ab");
        assert_eq!(field(ANYENUM, -1, Value::Text("small".into())), b"small");
        assert_eq!(field(JSON, -1, Value::Json("[1]".into())), b"[1]");
        let e = err(TEXT, -1, Value::Text("secret\0value".into()));
        assert_eq!(
            e,
            "column `c`: contains a NUL character, which PostgreSQL text cannot hold"
        );
        assert!(!e.contains("secret"));
        assert_eq!(
            err(VARCHAR, 3 + 4, Value::Text("abc ".into())),
            "column `c`: text of 4 characters exceeds the column's 3"
        );
        assert!(err(TEXT, -1, Value::Bytes(vec![1])).contains("a bytes value"));
    }

    #[test]
    fn jsonb_has_a_version_byte_and_no_nul_escape() {
        assert_eq!(
            field(JSONB, -1, Value::Json("{\"a\":1}".into())),
            b"\x01{\"a\":1}"
        );
        assert!(err(JSONB, -1, Value::Json("[\"a\\u0000\"]".into())).contains("\\u0000"));
        // An escaped backslash followed by `u0000` is text, not an escape.
        assert!(encode(JSONB, -1, Value::Json("[\"\\\\u0000\"]".into())).is_ok());
        assert!(encode(JSONB, -1, Value::Json("[\"\\\\\\u0000\"]".into())).is_err());
        assert!(encode(JSONB, -1, Value::Json("[\"\\".into())).is_ok());
        // json (text) keeps the escape as written.
        assert!(encode(JSON, -1, Value::Json("[\"\\u0000\"]".into())).is_ok());
    }

    #[test]
    fn bytea_keeps_zero_bytes() {
        assert_eq!(field(BYTEA, -1, Value::Bytes(vec![0, 1, 0])), [0, 1, 0]);
        assert_eq!(field(BYTEA, -1, Value::Bytes(vec![])), [0u8; 0]);
    }

    #[test]
    fn dates_and_timestamps_count_from_2000() {
        let d = |y, m, day| Value::Date(Date::new(y, m, day));
        assert_eq!(field(DATE, -1, d(2000, 1, 1)), 0i32.to_be_bytes());
        assert_eq!(field(DATE, -1, d(1970, 1, 1)), (-10_957i32).to_be_bytes());
        assert_eq!(field(DATE, -1, d(2000, 1, 2)), 1i32.to_be_bytes());
        assert_eq!(
            err(DATE, -1, d(0, 0, 0)),
            "column `c`: `0000-00-00` is not a calendar date PostgreSQL can hold"
        );
        assert!(encode(DATE, -1, d(2023, 2, 29)).is_err());

        let epoch: DateTime = "1970-01-01 00:00:00".parse().unwrap();
        let want = (-946_684_800_000_000i64).to_be_bytes();
        assert_eq!(field(TIMESTAMP, -1, Value::DateTime(epoch)), want);
        assert_eq!(field(TIMESTAMPTZ, 6, Value::Timestamp(epoch)), want);
        let dt: DateTime = "2000-01-01 00:00:01.5".parse().unwrap();
        assert_eq!(
            field(TIMESTAMP, 1, Value::DateTime(dt)),
            1_500_000i64.to_be_bytes()
        );
        assert!(err(TIMESTAMP, 0, Value::DateTime(dt)).contains("more precision"));
        assert!(err(TIMESTAMPTZ, -1, Value::DateTime(dt)).contains("a datetime value"));
        let mut bad = dt;
        bad.hour = 24;
        assert!(encode(TIMESTAMP, -1, Value::DateTime(bad)).is_err());
    }

    #[test]
    fn times_and_intervals() {
        let t = |s: &str| Value::Time(s.parse::<Duration>().unwrap());
        assert_eq!(
            field(TIME, -1, t("24:00:00")),
            86_400_000_000i64.to_be_bytes()
        );
        assert_eq!(field(TIME, 0, t("00:00:00")), 0i64.to_be_bytes());
        assert!(err(TIME, -1, t("-00:00:01")).contains("not a time of day"));
        assert!(err(TIME, -1, t("24:00:00.000001")).contains("not a time of day"));
        assert!(err(TIME, 3, t("01:00:00.0001")).contains("more precision"));

        let micros = -(838i64 * 3600 + 59 * 60 + 59) * 1_000_000;
        let mut want = micros.to_be_bytes().to_vec();
        want.extend_from_slice(&[0; 8]);
        assert_eq!(field(INTERVAL, -1, t("-838:59:59")), want);
        // interval hour to second(6) and (0).
        let hts = |p: i32| ((1 << 10 | 1 << 11 | 1 << 12) << 16) | p;
        assert_eq!(field(INTERVAL, hts(6), t("-838:59:59")), want);
        assert_eq!(field(INTERVAL, hts(0xFFFF), t("1:00:00.5")).len(), 16);
        assert!(err(INTERVAL, hts(0), t("0:00:00.5")).contains("more precision"));
        // interval minute keeps whole minutes; interval day keeps no time.
        assert!(encode(INTERVAL, (1 << 11) << 16 | 0xFFFF, t("0:02:00")).is_ok());
        assert!(encode(INTERVAL, (1 << 11) << 16 | 0xFFFF, t("0:02:01")).is_err());
        assert!(encode(INTERVAL, (1 << 3) << 16 | 0xFFFF, t("1:00:00")).is_err());
    }

    #[test]
    fn bit_strings_msb_first() {
        let b = |len, bits| Value::Bits(BitString::new(len, bits).unwrap());
        assert_eq!(field(BIT, 3, b(3, 0b101)), [0, 0, 0, 3, 0b1010_0000]);
        assert_eq!(
            field(BIT, 64, b(64, u64::MAX)),
            [0, 0, 0, 64, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(
            field(BIT, 9, b(9, 0b1_0000_0001)),
            [0, 0, 0, 9, 0b1000_0000, 0b1000_0000]
        );
        assert_eq!(field(VARBIT, 8, b(2, 1)), [0, 0, 0, 2, 0b0100_0000]);
        assert_eq!(field(VARBIT, -1, b(2, 1)), [0, 0, 0, 2, 0b0100_0000]);
        assert_eq!(
            err(BIT, 4, b(3, 1)),
            "column `c`: bit string of 3 bits does not fit bit(4)"
        );
        assert!(encode(VARBIT, 2, b(3, 1)).is_err());
        let malformed = Value::Bits(BitString { len: 2, bits: 4 });
        assert!(err(BIT, 2, malformed).contains("malformed"));
    }

    #[test]
    fn uuids_from_text_or_bytes() {
        let want: Vec<u8> = (0..16).map(|i| i * 17).collect();
        let s = "00112233-4455-6677-8899-aabbccddeeff";
        assert_eq!(field(UUID, -1, Value::Text(s.into())), want);
        assert_eq!(
            field(UUID, -1, Value::Text(s.replace('-', "").to_uppercase())),
            want
        );
        assert_eq!(field(UUID, -1, Value::Bytes(want.clone())), want);
        assert_eq!(
            err(
                UUID,
                -1,
                Value::Text("0011223344-55-6677-8899-aabbccddeeff".into())
            ),
            "column `c`: text is not a uuid"
        );
        assert!(encode(UUID, -1, Value::Bytes(vec![0; 15])).is_err());
    }

    #[test]
    fn errors_leave_the_buffer_unchanged_and_check_row_width() {
        let mut enc = PgCopyEncoder::new(&[
            PgCopyColumn::new("a", INT4, -1),
            PgCopyColumn::new("b", INT2, -1),
        ])
        .unwrap();
        let mut out = BytesMut::new();
        out.put_slice(b"xy");
        let e = enc
            .encode_row(&[Value::Int(1), Value::Int(1 << 20)], &mut out)
            .unwrap_err();
        assert_eq!(
            e.message(),
            "column `b`: 1048576 is out of range for smallint"
        );
        assert_eq!(&out[..], b"xy");
        let e = enc.encode_row(&[Value::Int(1)], &mut out).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert!(PgCopyEncoder::new(&[PgCopyColumn::new("g", 600, -1)])
            .unwrap_err()
            .message()
            .contains("column `g`"));
        assert!(is_supported_type(NUMERIC) && !is_supported_type(600));
    }

    #[test]
    fn nulls_everywhere() {
        for oid in [
            BOOL, INT8, NUMERIC, TEXT, JSONB, BYTEA, DATE, INTERVAL, BIT, UUID,
        ] {
            assert_eq!(encode(oid, -1, Value::Null).unwrap(), [0xff; 4]);
        }
    }

    /// Encode speed of 6-column rows; run with
    /// `cargo test --release -p dts-connectors --lib -- --ignored --nocapture encode_speed`.
    #[test]
    #[ignore = "benchmark"]
    fn encode_speed() {
        let mut enc = PgCopyEncoder::new(&[
            PgCopyColumn::new("id", INT8, -1),
            PgCopyColumn::new("n", INT4, -1),
            PgCopyColumn::new("name", VARCHAR, 64 + 4),
            PgCopyColumn::new("price", NUMERIC, numeric_typmod_of(12, 2)),
            PgCopyColumn::new("at", TIMESTAMP, 6),
            PgCopyColumn::new("x", FLOAT8, -1),
        ])
        .unwrap();
        let rows: Vec<Vec<Value>> = (0..1_000_000i64)
            .map(|i| {
                vec![
                    Value::Int(i),
                    Value::Int(i % 1000),
                    Value::Text(format!("customer name {i}")),
                    dec(&format!("{}.{:02}", i % 100_000, i % 100)),
                    Value::DateTime(
                        DateTime::from_micros_since_unix_epoch(1_700_000_000_000_000 + i).unwrap(),
                    ),
                    Value::Double(f64::from(u32::try_from(i).unwrap()) * 0.5),
                ]
            })
            .collect();
        let mut out = BytesMut::with_capacity(1 << 20);
        let start = std::time::Instant::now();
        let mut bytes = 0;
        for row in &rows {
            enc.encode_row(row, &mut out).unwrap();
            if out.len() >= 512 << 10 {
                bytes += out.len();
                out.clear();
            }
        }
        bytes += out.len();
        let secs = start.elapsed().as_secs_f64();
        println!(
            "encoded {} rows ({} MB) in {secs:.3} s: {:.0} rows/s",
            rows.len(),
            bytes >> 20,
            1e6 / secs
        );
    }
}
