//! MySQL column types as the two readers of row values see them: the declared type of a
//! column parsed once into the shape its values take, and the checks that turn the parts of
//! a MySQL value into a [`Value`] the same way whether they come from a snapshot row (the
//! binary protocol) or a binlog row image.
//!
//! The wire formats themselves differ and are decoded apart: the snapshot reader gets
//! values the server already converted (integers with their sign, text in the connection's
//! character set, ENUM and SET as member text, TIMESTAMP in the session time zone, BINARY
//! padded), while a binlog row image holds the storage bytes of each column (see
//! `binlog/row.rs`). What both produce from those bytes, dates, times and bit strings, is
//! built and checked here.

use dts_core::{
    BitString, Column, Date, DateTime, Duration, Error, ErrorKind, Result, Table, Value,
};
use dts_typemap::mysql::MySqlType;

/// The shape of a column's values as [`Value`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueKind {
    Int,
    UInt,
    Decimal,
    Float,
    Double,
    Bit(u8),
    Text,
    Bytes,
    Date,
    DateTime,
    Timestamp,
    Time,
    Year,
    Json,
}

/// A column's declared type, parsed once, with the shape of its values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MySqlColumn {
    /// The declared type.
    pub ty: MySqlType,
    /// The shape its values take.
    pub kind: ValueKind,
}

impl MySqlColumn {
    /// Parses the declared type of `column` of `table`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unsupported`] for a type that cannot be parsed or has no lossless value
    /// (spatial types and others).
    pub fn of(table: &Table, column: &Column) -> Result<Self> {
        let ty = MySqlType::parse(&column.source_type).map_err(|e| {
            Error::new(
                ErrorKind::Unsupported,
                format!(
                    "cannot read column `{}.{}` of type `{}`",
                    table.name, column.name, column.source_type
                ),
            )
            .with_source(e)
        })?;
        let kind = match &ty {
            MySqlType::TinyInt { unsigned, .. }
            | MySqlType::SmallInt { unsigned }
            | MySqlType::MediumInt { unsigned }
            | MySqlType::Int { unsigned }
            | MySqlType::BigInt { unsigned } => {
                if *unsigned {
                    ValueKind::UInt
                } else {
                    ValueKind::Int
                }
            }
            MySqlType::Decimal { .. } => ValueKind::Decimal,
            MySqlType::Float => ValueKind::Float,
            MySqlType::Double => ValueKind::Double,
            MySqlType::Bit(n) => ValueKind::Bit(*n),
            MySqlType::Char(_)
            | MySqlType::VarChar(_)
            | MySqlType::TinyText
            | MySqlType::Text
            | MySqlType::MediumText
            | MySqlType::LongText
            | MySqlType::Enum(_)
            | MySqlType::Set(_) => {
                if column.json_checked {
                    ValueKind::Json
                } else {
                    ValueKind::Text
                }
            }
            MySqlType::Binary(_)
            | MySqlType::VarBinary(_)
            | MySqlType::TinyBlob
            | MySqlType::Blob
            | MySqlType::MediumBlob
            | MySqlType::LongBlob => ValueKind::Bytes,
            MySqlType::Date => ValueKind::Date,
            MySqlType::DateTime(_) => ValueKind::DateTime,
            MySqlType::Timestamp(_) => ValueKind::Timestamp,
            MySqlType::Time(_) => ValueKind::Time,
            MySqlType::Year => ValueKind::Year,
            MySqlType::Json => ValueKind::Json,
            MySqlType::Spatial(name) => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!(
                        "unsupported type `{name}` for column `{}.{}`",
                        table.name, column.name
                    ),
                ))
            }
            other => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!(
                        "unsupported type `{other:?}` for column `{}.{}`",
                        table.name, column.name
                    ),
                ))
            }
        };
        Ok(Self { ty, kind })
    }
}

/// A DATETIME (or TIMESTAMP, or with a zero time a DATE) from its parts; `None` outside the
/// ranges MySQL stores. Zero parts (zero dates) are kept.
pub(crate) fn date_time(
    year: u64,
    month: u64,
    day: u64,
    hour: u64,
    minute: u64,
    second: u64,
    micro: u64,
) -> Option<DateTime> {
    if year > 9999 || month > 12 || day > 31 || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    if micro > 999_999 {
        return None;
    }
    Some(DateTime {
        date: Date::new(
            u16::try_from(year).ok()?,
            u8::try_from(month).ok()?,
            u8::try_from(day).ok()?,
        ),
        hour: u8::try_from(hour).ok()?,
        minute: u8::try_from(minute).ok()?,
        second: u8::try_from(second).ok()?,
        micro: u32::try_from(micro).ok()?,
    })
}

/// A TIME from its sign and parts (hours unbounded: TIME reaches ±838 hours); `None` for
/// minutes, seconds or microseconds out of range, or an overflowing total.
pub(crate) fn time(
    negative: bool,
    hours: u64,
    minutes: u64,
    seconds: u64,
    micros: u64,
) -> Option<Duration> {
    if minutes > 59 || seconds > 59 || micros > 999_999 {
        return None;
    }
    let total = hours
        .checked_mul(60)?
        .checked_add(minutes)?
        .checked_mul(60)?
        .checked_add(seconds)?
        .checked_mul(1_000_000)?
        .checked_add(micros)?;
    let total = i64::try_from(total).ok()?;
    Some(Duration::from_micros(if negative { -total } else { total }))
}

/// A BIT(`len`) value from its big-endian bytes (at most 8); `None` if the bytes hold more
/// bits than the column has.
pub(crate) fn bit_string(len: u8, bytes: &[u8]) -> Option<BitString> {
    if bytes.len() > 8 {
        return None;
    }
    let bits = bytes.iter().fold(0u64, |acc, &x| acc << 8 | u64::from(x));
    BitString::new(len, bits)
}

/// A [`Value::Timestamp`] from epoch seconds and microseconds, in UTC (how the binlog stores
/// TIMESTAMP; the zero timestamp is epoch 0).
pub(crate) fn timestamp_from_epoch(secs: i64, micro: i64) -> Option<Value> {
    if !(0..1_000_000).contains(&micro) {
        return None;
    }
    DateTime::from_micros_since_unix_epoch(secs.checked_mul(1_000_000)?.checked_add(micro)?)
        .map(Value::Timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_times_keep_zero_dates_and_refuse_out_of_range_parts() {
        let dt = date_time(2024, 2, 29, 23, 59, 59, 999_999).unwrap();
        assert_eq!(dt, "2024-02-29 23:59:59.999999".parse().unwrap());
        let zero = date_time(0, 0, 0, 0, 0, 0, 0).unwrap();
        assert_eq!(zero.date, Date::new(0, 0, 0));
        assert!(date_time(10_000, 1, 1, 0, 0, 0, 0).is_none());
        assert!(date_time(2024, 13, 1, 0, 0, 0, 0).is_none());
        assert!(date_time(2024, 1, 32, 0, 0, 0, 0).is_none());
        assert!(date_time(2024, 1, 1, 24, 0, 0, 0).is_none());
        assert!(date_time(2024, 1, 1, 0, 60, 0, 0).is_none());
        assert!(date_time(2024, 1, 1, 0, 0, 60, 0).is_none());
        assert!(date_time(2024, 1, 1, 0, 0, 0, 1_000_000).is_none());
    }

    #[test]
    fn times_carry_sign_and_hours_beyond_a_day() {
        let max = time(true, 838, 59, 58, 999_999).unwrap();
        assert_eq!(
            max,
            Duration::from_micros(-((838 * 3600 + 59 * 60 + 58) * 1_000_000 + 999_999))
        );
        assert_eq!(time(false, 0, 0, 0, 1), Some(Duration::from_micros(1)));
        assert!(time(false, 1, 60, 0, 0).is_none());
        assert!(time(false, 1, 0, 60, 0).is_none());
        assert!(time(false, 1, 0, 0, 1_000_000).is_none());
        assert!(time(false, u64::MAX, 0, 0, 0).is_none());
    }

    #[test]
    fn bit_strings_from_big_endian_bytes() {
        assert_eq!(bit_string(64, &[0xFF; 8]), BitString::new(64, u64::MAX));
        assert_eq!(bit_string(3, &[0b101]), BitString::new(3, 0b101));
        assert!(bit_string(3, &[0b1000]).is_none());
        assert!(bit_string(64, &[0; 9]).is_none());
    }

    #[test]
    fn timestamps_from_epoch_are_utc() {
        assert_eq!(
            timestamp_from_epoch(2_147_483_647, 123_000),
            Some(Value::Timestamp("2038-01-19 03:14:07.123".parse().unwrap()))
        );
        assert_eq!(
            timestamp_from_epoch(0, 0),
            Some(Value::Timestamp("1970-01-01 00:00:00".parse().unwrap()))
        );
        assert!(timestamp_from_epoch(0, 1_000_000).is_none());
        assert!(timestamp_from_epoch(0, -1).is_none());
    }
}
