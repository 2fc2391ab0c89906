//! Decoding binary-protocol values into lossless [`Value`]s.

use dts_core::{BitString, Decimal, ErrorKind, Result, Value};

use crate::mysql::types::{bit_string, date_time, time, ValueKind as Kind};

/// Why a server value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DecodeError {
    /// Text that is not UTF-8.
    Utf8,
    /// A value that is out of range or malformed for the column's type.
    Invalid(&'static str),
    /// The server sent a representation the column's type does not have.
    Unexpected(&'static str),
}

impl DecodeError {
    pub(super) fn describe(&self) -> String {
        match self {
            DecodeError::Utf8 => "invalid utf-8".to_string(),
            DecodeError::Invalid(what) => format!("invalid {what} value"),
            DecodeError::Unexpected(what) => format!("unexpected {what} value from the server"),
        }
    }

    pub(super) fn kind(&self) -> ErrorKind {
        match self {
            DecodeError::Utf8 | DecodeError::Invalid(_) => ErrorKind::Value,
            DecodeError::Unexpected(_) => ErrorKind::Database,
        }
    }
}

fn text_of(bytes: Vec<u8>) -> Result<String, DecodeError> {
    String::from_utf8(bytes).map_err(|_| DecodeError::Utf8)
}

fn parse_text<T: std::str::FromStr>(bytes: &[u8], what: &'static str) -> Result<T, DecodeError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or(DecodeError::Invalid(what))
}

/// A DATETIME or TIMESTAMP of the binary protocol, checked as the binlog's are.
#[allow(clippy::too_many_arguments)]
fn protocol_date_time(
    y: u16,
    mo: u8,
    d: u8,
    h: u8,
    mi: u8,
    s: u8,
    micro: u32,
) -> Result<dts_core::DateTime, DecodeError> {
    date_time(
        y.into(),
        mo.into(),
        d.into(),
        h.into(),
        mi.into(),
        s.into(),
        micro.into(),
    )
    .ok_or(DecodeError::Invalid("datetime"))
}

/// Decodes one value of the binary (or text) protocol into a [`Value`] of `kind`.
pub(super) fn decode(kind: Kind, v: mysql_async::Value) -> Result<Value, DecodeError> {
    use mysql_async::Value as M;
    Ok(match (kind, v) {
        (_, M::NULL) => Value::Null,
        (Kind::Int, M::Int(n)) => Value::Int(n),
        (Kind::Int, M::UInt(n)) => {
            Value::Int(i64::try_from(n).map_err(|_| DecodeError::Invalid("integer"))?)
        }
        (Kind::Int, M::Bytes(b)) => Value::Int(parse_text(&b, "integer")?),
        (Kind::UInt, M::UInt(n)) => Value::UInt(n),
        (Kind::UInt, M::Int(n)) => {
            Value::UInt(u64::try_from(n).map_err(|_| DecodeError::Invalid("unsigned integer"))?)
        }
        (Kind::UInt, M::Bytes(b)) => Value::UInt(parse_text(&b, "unsigned integer")?),
        (Kind::Decimal, M::Bytes(b)) => Value::Decimal(parse_text::<Decimal>(&b, "decimal")?),
        (Kind::Decimal, M::Int(n)) => Value::Decimal(
            n.to_string()
                .parse()
                .map_err(|_| DecodeError::Invalid("decimal"))?,
        ),
        (Kind::Decimal, M::UInt(n)) => Value::Decimal(
            n.to_string()
                .parse()
                .map_err(|_| DecodeError::Invalid("decimal"))?,
        ),
        (Kind::Float, M::Float(f)) => Value::Float(f),
        (Kind::Float, M::Bytes(b)) => Value::Float(parse_text(&b, "float")?),
        (Kind::Double, M::Double(f)) => Value::Double(f),
        (Kind::Double, M::Float(f)) => Value::Double(f64::from(f)),
        (Kind::Double, M::Bytes(b)) => Value::Double(parse_text(&b, "double")?),
        (Kind::Bit(n), M::Bytes(b)) => {
            Value::Bits(bit_string(n, &b).ok_or(DecodeError::Invalid("bit"))?)
        }
        (Kind::Bit(n), M::UInt(bits)) => {
            Value::Bits(BitString::new(n, bits).ok_or(DecodeError::Invalid("bit"))?)
        }
        (Kind::Text, M::Bytes(b)) => Value::Text(text_of(b)?),
        (Kind::Json, M::Bytes(b)) => Value::Json(text_of(b)?),
        (Kind::Bytes, M::Bytes(b)) => Value::Bytes(b),
        (Kind::Date, M::Date(y, mo, d, _, _, _, _)) => Value::Date(
            date_time(y.into(), mo.into(), d.into(), 0, 0, 0, 0)
                .ok_or(DecodeError::Invalid("date"))?
                .date,
        ),
        (Kind::Date, M::Bytes(b)) => Value::Date(parse_text(&b, "date")?),
        (Kind::DateTime, M::Date(y, mo, d, h, mi, s, us)) => {
            Value::DateTime(protocol_date_time(y, mo, d, h, mi, s, us)?)
        }
        (Kind::DateTime, M::Bytes(b)) => Value::DateTime(parse_text(&b, "datetime")?),
        (Kind::Timestamp, M::Date(y, mo, d, h, mi, s, us)) => {
            Value::Timestamp(protocol_date_time(y, mo, d, h, mi, s, us)?)
        }
        (Kind::Timestamp, M::Bytes(b)) => Value::Timestamp(parse_text(&b, "timestamp")?),
        (Kind::Time, M::Time(neg, days, h, mi, s, us)) => {
            let hours = u64::from(days) * 24 + u64::from(h);
            Value::Time(
                time(neg, hours, mi.into(), s.into(), us.into())
                    .ok_or(DecodeError::Invalid("time"))?,
            )
        }
        (Kind::Time, M::Bytes(b)) => Value::Time(parse_text(&b, "time")?),
        (Kind::Year, M::UInt(n)) => {
            Value::Year(u16::try_from(n).map_err(|_| DecodeError::Invalid("year"))?)
        }
        (Kind::Year, M::Int(n)) => {
            Value::Year(u16::try_from(n).map_err(|_| DecodeError::Invalid("year"))?)
        }
        (Kind::Year, M::Bytes(b)) => Value::Year(parse_text(&b, "year")?),
        (kind, other) => {
            return Err(DecodeError::Unexpected(match (kind, other) {
                (_, M::Bytes(_)) => "string",
                (_, M::Int(_) | M::UInt(_)) => "integer",
                (_, M::Float(_) | M::Double(_)) => "floating-point",
                (_, M::Date(..)) => "date",
                (_, M::Time(..)) => "time",
                (_, M::NULL) => "null",
            }))
        }
    })
}
