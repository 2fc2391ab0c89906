//! Value conversion: from what a MySQL reader produces to the canonical [`Value`] of the
//! PostgreSQL target type (the *convert* half of the mapping).
//!
//! Liberal in what it accepts (an `Int` for an unsigned column, `Bytes` for text, an enum
//! index, a `binary(n)` value without its trailing zeros), strict in what it returns: every
//! value is checked against the source's domain and the target's range, and nothing is
//! rounded, clamped or truncated.

use dts_core::{BitString, Date, DateTime, Decimal, Value};

use crate::error::ConvertError;
use crate::json::{check_json, JsonError};
use crate::mapping::{ColumnMapping, MappingOptions, ZeroDatePolicy};
use crate::mysql::{MySqlType, MAX_TIME_MICROS};
use crate::pg::PgType;

/// The largest value PostgreSQL stores in one field: 1 GB less the 4-byte length header.
pub const PG_MAX_VALUE_BYTES: usize = 0x3FFF_FFFF - 4;

const UNIX_EPOCH: DateTime = DateTime {
    date: Date::new(1970, 1, 1),
    hour: 0,
    minute: 0,
    second: 0,
    micro: 0,
};

const ZERO_DATETIME: DateTime = DateTime {
    date: Date::new(0, 0, 0),
    hour: 0,
    minute: 0,
    second: 0,
    micro: 0,
};

/// Whether a date is a MySQL zero or partial-zero date (`0000-00-00`, month 0, day 0) or has
/// year 0: PostgreSQL has no such date.
pub fn is_zero_date(date: &Date) -> bool {
    date.year == 0 || date.month == 0 || date.day == 0
}

/// Converts one value read from a MySQL column into the canonical value for the mapped
/// PostgreSQL type.
///
/// | target | returns | accepts |
/// |---|---|---|
/// | `smallint`, `integer`, `bigint` | `Int` | `Int`, `UInt`, `Bool`, `Year` |
/// | `numeric(p,s)` | `Decimal` with exactly `s` fraction digits | `Decimal`, `Int`, `UInt`, decimal text |
/// | `boolean` | `Bool` (from 0 or 1) | `Int`, `UInt`, `Bool` |
/// | `real` / `double precision` | `Float` / `Double`, bit-exact | `Float`, `Double` (when exact) |
/// | `varchar`, `text` | `Text` | `Text`, UTF-8 `Bytes`; enum index / set bitmask as `Int`/`UInt` |
/// | `bytea` | `Bytes` (`binary(n)` padded back to n bytes) | `Bytes`, `Text` |
/// | `date` | `Date` | `Date`, date text |
/// | `timestamp` | `DateTime` | `DateTime`, datetime text |
/// | `timestamptz` | `Timestamp` (UTC) | `Timestamp` |
/// | `interval`, `time` | `Time` | `Time`, time text |
/// | `jsonb` | `Json` | `Json`, `Text`, UTF-8 `Bytes` |
/// | `bit(n)` | `Bits` of length n | `Bits`, big-endian `Bytes`, `UInt`, `Int` |
///
/// `Null` stays `Null`. Zero dates follow [`MappingOptions::zero_date`] (`YEAR` 0 stays 0); a
/// `timestamp` value of exactly 1970-01-01 00:00:00 UTC is MySQL's zero timestamp (how it
/// is stored and how the binlog sends it).
///
/// # Errors
///
/// A [`ConvertError`] for any value the target cannot hold exactly, or a value of the wrong
/// kind ([`ConvertError::Mismatch`]). Messages never contain text, blob or JSON contents.
pub fn convert_mysql_value(
    mapping: &ColumnMapping,
    value: Value,
    opts: &MappingOptions,
) -> Result<Value, ConvertError> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let source = &mapping.source;
    match source {
        MySqlType::TinyInt { .. }
        | MySqlType::SmallInt { .. }
        | MySqlType::MediumInt { .. }
        | MySqlType::Int { .. }
        | MySqlType::BigInt { .. } => {
            let n = integer_of(&value)?;
            let (lo, hi) = source.integer_range().unwrap_or((0, 0));
            if n < lo || n > hi {
                return Err(out_of_range(n, source));
            }
            integer_to_target(n, mapping)
        }
        MySqlType::Year => {
            let y = match value {
                Value::Year(y) => i128::from(y),
                ref v => integer_of(v)?,
            };
            // Year 0000 is a value of MySQL's YEAR type (not a date), and smallint holds it.
            if y != 0 && !(1901..=2155).contains(&y) {
                return Err(out_of_range(y, "year"));
            }
            integer_to_target(y, mapping)
        }
        MySqlType::Decimal { precision, scale } => {
            let d = decimal_of(value)?;
            if mapping.unsigned && d.is_negative() {
                return Err(out_of_range(&d, source_name(mapping)));
            }
            let d = fit_decimal(&d, *precision, *scale)
                .ok_or_else(|| out_of_range(&d, source_name(mapping)))?;
            match mapping.target {
                PgType::Numeric { precision, scale } => fit_decimal(&d, precision, scale)
                    .map(Value::Decimal)
                    .ok_or_else(|| out_of_range(&d, mapping.target)),
                _ => Err(unmapped(mapping)),
            }
        }
        MySqlType::Float => {
            let f = match value {
                Value::Float(f) => f,
                Value::Double(d) => narrow(d)?,
                v => return Err(mismatch("a float", &v)),
            };
            if mapping.unsigned && f < 0.0 {
                return Err(out_of_range(f, source_name(mapping)));
            }
            match mapping.target {
                PgType::Real => Ok(Value::Float(f)),
                PgType::Double => Ok(Value::Double(f64::from(f))),
                _ => Err(unmapped(mapping)),
            }
        }
        MySqlType::Double => {
            let d = match value {
                Value::Double(d) => d,
                Value::Float(f) => f64::from(f),
                v => return Err(mismatch("a double", &v)),
            };
            if mapping.unsigned && d < 0.0 {
                return Err(out_of_range(d, source_name(mapping)));
            }
            match mapping.target {
                PgType::Double => Ok(Value::Double(d)),
                _ => Err(unmapped(mapping)),
            }
        }
        MySqlType::Bit(len) => {
            let bits = bits_of(value)?;
            if *len < 64 && bits >> len != 0 {
                return Err(out_of_range(bits, source));
            }
            match mapping.target {
                PgType::Bit(n) => BitString::new(n, bits)
                    .map(Value::Bits)
                    .ok_or_else(|| out_of_range(bits, mapping.target)),
                _ => Err(unmapped(mapping)),
            }
        }
        MySqlType::Char(len) | MySqlType::VarChar(len) => {
            let s = text_of(value)?;
            check_chars(&s, *len, source)?;
            text_to_target(s, mapping)
        }
        MySqlType::TinyText | MySqlType::Text | MySqlType::MediumText | MySqlType::LongText => {
            text_to_target(text_of(value)?, mapping)
        }
        MySqlType::Binary(len) => {
            let mut b = bytes_of(value)?;
            let n = usize::try_from(*len).unwrap_or(usize::MAX);
            if b.len() > n {
                return Err(too_long(b.len(), "bytes", source));
            }
            // The binlog drops trailing zero bytes of binary(n); the column always holds n.
            b.resize(n, 0);
            bytes_to_target(b, mapping)
        }
        MySqlType::VarBinary(len) => {
            let b = bytes_of(value)?;
            if b.len() > usize::try_from(*len).unwrap_or(usize::MAX) {
                return Err(too_long(b.len(), "bytes", source));
            }
            bytes_to_target(b, mapping)
        }
        MySqlType::TinyBlob | MySqlType::Blob | MySqlType::MediumBlob | MySqlType::LongBlob => {
            let b = bytes_of(value)?;
            let max = match source {
                MySqlType::TinyBlob => 255,
                MySqlType::Blob => 65_535,
                MySqlType::MediumBlob => 16_777_215,
                _ => usize::MAX,
            };
            if b.len() > max {
                return Err(too_long(b.len(), "bytes", source));
            }
            bytes_to_target(b, mapping)
        }
        MySqlType::Date => {
            let d = match value {
                Value::Date(d) => d,
                v => parse_text(v, "date")?,
            };
            if is_zero_date(&d) {
                return zero_date(mapping, opts, d.to_string());
            }
            if !d.is_valid() {
                return Err(ConvertError::InvalidDate {
                    value: d.to_string(),
                });
            }
            match mapping.target {
                PgType::Date => Ok(Value::Date(d)),
                _ => Err(unmapped(mapping)),
            }
        }
        MySqlType::DateTime(fsp) => {
            let dt = match value {
                Value::DateTime(dt) => dt,
                v @ (Value::Text(_) | Value::Bytes(_)) => parse_text(v, "datetime")?,
                v => return Err(mismatch("a datetime", &v)),
            };
            datetime_value(dt, *fsp, mapping, opts, Value::DateTime)
        }
        MySqlType::Timestamp(fsp) => {
            let dt = match value {
                // MySQL stores the zero TIMESTAMP as epoch 0 and the binlog sends it so;
                // 1970-01-01 00:00:00 UTC itself is outside TIMESTAMP's range.
                Value::Timestamp(dt) if dt == UNIX_EPOCH => ZERO_DATETIME,
                Value::Timestamp(dt) => dt,
                v => return Err(mismatch("a timestamp", &v)),
            };
            datetime_value(dt, *fsp, mapping, opts, Value::Timestamp)
        }
        MySqlType::Time(fsp) => {
            let t = match value {
                Value::Time(t) => t,
                v @ (Value::Text(_) | Value::Bytes(_)) => parse_text(v, "time")?,
                v => return Err(mismatch("a time", &v)),
            };
            if t.micros.abs() > MAX_TIME_MICROS {
                return Err(out_of_range(t, source));
            }
            let micro = u32::try_from(t.micros.unsigned_abs() % 1_000_000).unwrap_or(0);
            check_fraction(micro, *fsp, &t, source)?;
            match mapping.target {
                PgType::Interval(p) => {
                    check_fraction(micro, p, &t, mapping.target)?;
                    Ok(Value::Time(t))
                }
                PgType::Time(p) => {
                    if !t.is_time_of_day() {
                        return Err(ConvertError::TimeOutOfRange {
                            value: t.to_string(),
                        });
                    }
                    check_fraction(micro, p, &t, mapping.target)?;
                    Ok(Value::Time(t))
                }
                _ => Err(unmapped(mapping)),
            }
        }
        MySqlType::Enum(members) => {
            let s = match value {
                Value::Int(_) | Value::UInt(_) => {
                    // The binlog carries the 1-based member index; 0 is MySQL's error value.
                    let i = integer_of(&value)?;
                    if i == 0 {
                        String::new()
                    } else {
                        usize::try_from(i - 1)
                            .ok()
                            .and_then(|i| members.get(i))
                            .cloned()
                            .ok_or_else(|| out_of_range(i, "enum index"))?
                    }
                }
                v => text_of(v)?,
            };
            if !members.contains(&s) {
                return Err(ConvertError::NotAMember { kind: "enum" });
            }
            text_to_target(s, mapping)
        }
        MySqlType::Set(members) => {
            let s = match value {
                Value::Int(_) | Value::UInt(_) => {
                    // The binlog carries a bitmask: bit i is member i.
                    let mask = integer_of(&value)?;
                    if mask < 0 || mask >> members.len() != 0 {
                        return Err(out_of_range(mask, "set bitmask"));
                    }
                    members
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| mask >> i & 1 == 1)
                        .map(|(_, m)| m.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                }
                v => text_of(v)?,
            };
            if !s.is_empty() && !s.split(',').all(|e| members.iter().any(|m| m == e)) {
                return Err(ConvertError::NotAMember { kind: "set" });
            }
            text_to_target(s, mapping)
        }
        MySqlType::Json => {
            let s = match value {
                Value::Json(s) => s,
                v => text_of(v)?,
            };
            match check_json(&s) {
                Ok(()) => {}
                Err(JsonError::Nul) => return Err(ConvertError::NulInJson),
                Err(JsonError::Syntax(offset, reason)) => {
                    return Err(ConvertError::InvalidJson { offset, reason })
                }
            }
            match mapping.target {
                PgType::Jsonb => Ok(Value::Json(s)),
                _ => Err(unmapped(mapping)),
            }
        }
        MySqlType::Spatial(_) => Err(unmapped(mapping)),
    }
}

fn mismatch(expected: &'static str, found: &Value) -> ConvertError {
    ConvertError::Mismatch {
        expected,
        found: found.kind(),
    }
}

fn unmapped(mapping: &ColumnMapping) -> ConvertError {
    ConvertError::Unmapped {
        source_type: source_name(mapping),
        target: mapping.target.to_string(),
    }
}

fn out_of_range(value: impl std::fmt::Display, target: impl std::fmt::Display) -> ConvertError {
    ConvertError::OutOfRange {
        value: value.to_string(),
        target: target.to_string(),
    }
}

fn too_long(length: usize, unit: &'static str, target: impl std::fmt::Display) -> ConvertError {
    ConvertError::TooLong {
        length,
        unit,
        target: target.to_string(),
    }
}

/// The source type's name including an `unsigned` the type does not carry.
fn source_name(mapping: &ColumnMapping) -> String {
    let name = mapping.source.to_string();
    if mapping.unsigned && !mapping.source.is_unsigned_integer() {
        format!("{name} unsigned")
    } else {
        name
    }
}

fn zero_date(
    mapping: &ColumnMapping,
    opts: &MappingOptions,
    value: String,
) -> Result<Value, ConvertError> {
    match opts.zero_date {
        ZeroDatePolicy::Null if mapping.nullable => Ok(Value::Null),
        ZeroDatePolicy::Null => Err(ConvertError::ZeroDate {
            value,
            not_null: true,
        }),
        ZeroDatePolicy::Error => Err(ConvertError::ZeroDate {
            value,
            not_null: false,
        }),
    }
}

fn integer_of(value: &Value) -> Result<i128, ConvertError> {
    match value {
        Value::Int(i) => Ok(i128::from(*i)),
        Value::UInt(u) => Ok(i128::from(*u)),
        Value::Bool(b) => Ok(i128::from(*b)),
        v => Err(mismatch("an integer", v)),
    }
}

fn integer_to_target(n: i128, mapping: &ColumnMapping) -> Result<Value, ConvertError> {
    let target = mapping.target;
    let int = |ok: bool| {
        i64::try_from(n)
            .ok()
            .filter(|_| ok)
            .map(Value::Int)
            .ok_or_else(|| out_of_range(n, target))
    };
    match target {
        PgType::Boolean => match n {
            0 => Ok(Value::Bool(false)),
            1 => Ok(Value::Bool(true)),
            _ => Err(ConvertError::NotBoolean {
                value: n.to_string(),
            }),
        },
        PgType::SmallInt => int(i16::try_from(n).is_ok()),
        PgType::Integer => int(i32::try_from(n).is_ok()),
        PgType::BigInt => int(true),
        PgType::Numeric { precision, scale } => {
            let d: Decimal = n.to_string().parse().map_err(|_| out_of_range(n, target))?;
            fit_decimal(&d, precision, scale)
                .map(Value::Decimal)
                .ok_or_else(|| out_of_range(n, target))
        }
        _ => Err(unmapped(mapping)),
    }
}

fn decimal_of(value: Value) -> Result<Decimal, ConvertError> {
    let unparsable = || ConvertError::Unparsable {
        expected: "decimal",
    };
    match value {
        Value::Decimal(d) => Ok(d),
        Value::Int(i) => i.to_string().parse().map_err(|_| unparsable()),
        Value::UInt(u) => u.to_string().parse().map_err(|_| unparsable()),
        v @ (Value::Text(_) | Value::Bytes(_)) => parse_text(v, "decimal"),
        v => Err(mismatch("a decimal", &v)),
    }
}

/// `d` written with exactly `scale` fraction digits, if it fits `numeric(precision, scale)`
/// without rounding (extra fraction digits must be zeros).
fn fit_decimal(d: &Decimal, precision: u8, scale: u8) -> Option<Decimal> {
    let int = d.integer_digits();
    let int_len = if int == "0" { 0 } else { int.len() };
    if int_len > usize::from(precision.saturating_sub(scale)) {
        return None;
    }
    let frac = d.fraction_digits();
    let scale = usize::from(scale);
    if frac.len() == scale {
        return Some(d.clone());
    }
    if frac.len() > scale && frac.as_bytes()[scale..].iter().any(|&b| b != b'0') {
        return None;
    }
    let mut out = String::with_capacity(int.len() + scale + 2);
    if d.is_negative() {
        out.push('-');
    }
    out.push_str(int);
    if scale > 0 {
        out.push('.');
        out.push_str(&frac[..frac.len().min(scale)]);
        out.extend(std::iter::repeat_n('0', scale.saturating_sub(frac.len())));
    }
    out.parse().ok()
}

/// An `f64` as `f32` when the round trip is bit-exact.
fn narrow(d: f64) -> Result<f32, ConvertError> {
    // The cast may round; the round trip below rejects any value it changed.
    #[allow(clippy::cast_possible_truncation)]
    let f = d as f32;
    if f64::from(f).to_bits() == d.to_bits() {
        Ok(f)
    } else {
        Err(out_of_range(d, "float"))
    }
}

fn bits_of(value: Value) -> Result<u64, ConvertError> {
    match value {
        Value::Bits(b) => Ok(b.bits),
        Value::UInt(u) => Ok(u),
        Value::Int(i) => u64::try_from(i).map_err(|_| out_of_range(i, "bit")),
        Value::Bytes(b) => {
            let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
            let significant = &b[start..];
            if significant.len() > 8 {
                return Err(too_long(b.len(), "bytes", "bit(64)"));
            }
            Ok(significant
                .iter()
                .fold(0u64, |acc, &x| acc << 8 | u64::from(x)))
        }
        v => Err(mismatch("a bit string", &v)),
    }
}

fn text_of(value: Value) -> Result<String, ConvertError> {
    match value {
        Value::Text(s) => Ok(s),
        Value::Bytes(b) => String::from_utf8(b).map_err(|e| ConvertError::InvalidUtf8 {
            offset: e.utf8_error().valid_up_to(),
        }),
        v => Err(mismatch("a text", &v)),
    }
}

fn bytes_of(value: Value) -> Result<Vec<u8>, ConvertError> {
    match value {
        Value::Bytes(b) => Ok(b),
        Value::Text(s) => Ok(s.into_bytes()),
        v => Err(mismatch("a bytes", &v)),
    }
}

fn parse_text<T: std::str::FromStr>(
    value: Value,
    expected: &'static str,
) -> Result<T, ConvertError> {
    let unparsable = || ConvertError::Unparsable { expected };
    match value {
        Value::Text(s) => s.trim().parse().map_err(|_| unparsable()),
        Value::Bytes(b) => std::str::from_utf8(&b)
            .map_err(|_| unparsable())?
            .trim()
            .parse()
            .map_err(|_| unparsable()),
        v => Err(ConvertError::Mismatch {
            expected: match expected {
                "decimal" => "a decimal",
                "date" => "a date",
                "datetime" => "a datetime",
                _ => "a time",
            },
            found: v.kind(),
        }),
    }
}

/// Checks that `s` has at most `max` characters (counting only when the byte length could
/// exceed it).
fn check_chars(s: &str, max: u32, target: impl std::fmt::Display) -> Result<(), ConvertError> {
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    if s.len() > max {
        let n = s.chars().count();
        if n > max {
            return Err(too_long(n, "characters", target));
        }
    }
    Ok(())
}

fn text_to_target(s: String, mapping: &ColumnMapping) -> Result<Value, ConvertError> {
    match mapping.target {
        PgType::VarChar(n) | PgType::Char(n) => check_chars(&s, n, mapping.target)?,
        PgType::Text => {}
        _ => return Err(unmapped(mapping)),
    }
    if s.len() > PG_MAX_VALUE_BYTES {
        return Err(too_long(s.len(), "bytes", "PostgreSQL's 1 GB value limit"));
    }
    if s.contains('\0') {
        return Err(ConvertError::NulInText);
    }
    Ok(Value::Text(s))
}

fn bytes_to_target(b: Vec<u8>, mapping: &ColumnMapping) -> Result<Value, ConvertError> {
    if mapping.target != PgType::Bytea {
        return Err(unmapped(mapping));
    }
    if b.len() > PG_MAX_VALUE_BYTES {
        return Err(too_long(b.len(), "bytes", "PostgreSQL's 1 GB value limit"));
    }
    Ok(Value::Bytes(b))
}

/// Applies the zero-date policy and calendar and precision checks to a datetime; `None`
/// means "write NULL".
fn checked_datetime(
    dt: DateTime,
    fsp: u8,
    mapping: &ColumnMapping,
    opts: &MappingOptions,
) -> Result<Option<DateTime>, ConvertError> {
    if is_zero_date(&dt.date) {
        return zero_date(mapping, opts, dt.to_string()).map(|_| None);
    }
    if !dt.date.is_valid() || dt.hour > 23 || dt.minute > 59 || dt.second > 59 || dt.micro > 999_999
    {
        return Err(ConvertError::InvalidDate {
            value: dt.to_string(),
        });
    }
    check_fraction(dt.micro, fsp, &dt, &mapping.source)?;
    Ok(Some(dt))
}

/// A source datetime as the value `wrap` makes ([`Value::DateTime`] for a `timestamp`
/// target, [`Value::Timestamp`] for `timestamptz`): checked by [`checked_datetime`], `NULL`
/// when the zero-date policy says so, refused when the target keeps fewer fractional digits
/// or is not the timestamp type `wrap` stands for.
fn datetime_value(
    dt: DateTime,
    fsp: u8,
    mapping: &ColumnMapping,
    opts: &MappingOptions,
    wrap: fn(DateTime) -> Value,
) -> Result<Value, ConvertError> {
    let Some(dt) = checked_datetime(dt, fsp, mapping, opts)? else {
        return Ok(Value::Null);
    };
    let value = wrap(dt);
    let precision = match (&value, mapping.target) {
        (Value::DateTime(_), PgType::Timestamp(p))
        | (Value::Timestamp(_), PgType::TimestampTz(p)) => p,
        _ => return Err(unmapped(mapping)),
    };
    check_fraction(dt.micro, precision, &dt, mapping.target)?;
    Ok(value)
}

/// Fails when `micro` has more fractional digits than `fsp` keeps (PostgreSQL would round).
fn check_fraction(
    micro: u32,
    fsp: u8,
    value: &dyn std::fmt::Display,
    target: impl std::fmt::Display,
) -> Result<(), ConvertError> {
    let unit = 10u32.pow(u32::from(6u8.saturating_sub(fsp)));
    if micro % unit != 0 {
        return Err(out_of_range(value, target));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map_mysql_column;
    use crate::mapping::tests::column;
    use dts_core::Duration;
    use proptest::prelude::*;

    fn time(s: &str) -> Duration {
        s.parse().unwrap()
    }

    fn mapping(s: &str) -> ColumnMapping {
        map_mysql_column(&column(s, true), &MappingOptions::default()).unwrap()
    }

    fn conv(s: &str, v: Value) -> Result<Value, ConvertError> {
        convert_mysql_value(&mapping(s), v, &MappingOptions::default())
    }

    fn dec(s: &str) -> Value {
        Value::Decimal(s.parse().unwrap())
    }

    #[test]
    fn null_stays_null() {
        for s in ["int", "date", "text", "json", "bit(3)", "tinyint(1)"] {
            assert_eq!(conv(s, Value::Null), Ok(Value::Null));
        }
    }

    #[test]
    fn integer_boundaries_of_every_width() {
        let cases: [(&str, i128, i128); 10] = [
            ("tinyint", -128, 127),
            ("tinyint unsigned", 0, 255),
            ("smallint", -32_768, 32_767),
            ("smallint unsigned", 0, 65_535),
            ("mediumint", -8_388_608, 8_388_607),
            ("mediumint unsigned", 0, 16_777_215),
            ("int", i128::from(i32::MIN), i128::from(i32::MAX)),
            ("int unsigned", 0, i128::from(u32::MAX)),
            ("bigint", i128::from(i64::MIN), i128::from(i64::MAX)),
            ("bigint unsigned", 0, i128::from(u64::MAX)),
        ];
        for (ty, lo, hi) in cases {
            let m = mapping(ty);
            for n in [lo, hi] {
                let v = if n < 0 {
                    Value::Int(i64::try_from(n).unwrap())
                } else {
                    Value::UInt(u64::try_from(n).unwrap())
                };
                let out = convert_mysql_value(&m, v, &MappingOptions::default()).unwrap();
                let expected = if m.target == PgType::BigInt
                    || m.target == PgType::Integer
                    || m.target == PgType::SmallInt
                {
                    Value::Int(i64::try_from(n).unwrap())
                } else {
                    dec(&n.to_string())
                };
                assert_eq!(out, expected, "{ty} {n}");
            }
            // One past each end is refused, never clamped.
            for n in [lo - 1, hi + 1] {
                let v = if n < 0 {
                    i64::try_from(n).map(Value::Int)
                } else {
                    u64::try_from(n).map(Value::UInt)
                };
                if let Ok(v) = v {
                    let e = convert_mysql_value(&m, v, &MappingOptions::default());
                    assert!(
                        matches!(e, Err(ConvertError::OutOfRange { .. })),
                        "{ty} {n}: {e:?}"
                    );
                }
            }
        }
        assert_eq!(
            conv("bigint(20) unsigned", Value::UInt(u64::MAX)),
            Ok(dec("18446744073709551615"))
        );
        // A reader may hand Int for an unsigned column.
        assert_eq!(conv("int unsigned", Value::Int(7)), Ok(Value::Int(7)));
        // The unsigned 255 a binlog without metadata reads as -1 is refused.
        assert_eq!(
            conv("tinyint unsigned", Value::Int(-1))
                .unwrap_err()
                .to_string(),
            "value `-1` out of range for `tinyint unsigned`"
        );
        // A signed mediumint -1 a decoder failed to sign-extend is refused.
        assert!(conv("mediumint", Value::UInt(16_777_215)).is_err());
        assert_eq!(
            conv("int", Value::Text("1".into())),
            Err(ConvertError::Mismatch {
                expected: "an integer",
                found: "text"
            })
        );
    }

    #[test]
    fn tinyint1_kept_by_default_and_checked_as_boolean() {
        assert_eq!(conv("tinyint(1)", Value::Int(2)), Ok(Value::Int(2)));
        let opts = MappingOptions {
            tinyint1_as_boolean: true,
            ..MappingOptions::default()
        };
        let m = map_mysql_column(&column("tinyint(1)", true), &opts).unwrap();
        assert_eq!(
            convert_mysql_value(&m, Value::Int(1), &opts),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            convert_mysql_value(&m, Value::Int(0), &opts),
            Ok(Value::Bool(false))
        );
        assert_eq!(
            convert_mysql_value(&m, Value::Bool(true), &opts),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            convert_mysql_value(&m, Value::Int(2), &opts),
            Err(ConvertError::NotBoolean { value: "2".into() })
        );
        assert!(convert_mysql_value(&m, Value::Int(-1), &opts).is_err());
    }

    #[test]
    fn decimals_fit_or_fail_without_rounding() {
        let max = format!("{}.{}", "9".repeat(35), "9".repeat(30));
        let min = format!("-{max}");
        assert_eq!(conv("decimal(65,30)", dec(&max)), Ok(dec(&max)));
        assert_eq!(conv("decimal(65,30)", dec(&min)), Ok(dec(&min)));
        let too_big = format!("1{}.{}", "0".repeat(35), "0".repeat(30));
        assert!(matches!(
            conv("decimal(65,30)", dec(&too_big)),
            Err(ConvertError::OutOfRange { .. })
        ));
        let too_fine = format!("1.{}1", "0".repeat(30));
        assert!(conv("decimal(65,30)", dec(&too_fine)).is_err());
        // Scale is made exact: padded with zeros, or trailing zeros dropped.
        assert_eq!(conv("decimal(5,2)", dec("1.5")), Ok(dec("1.50")));
        assert_eq!(conv("decimal(5,2)", dec("1.5000")), Ok(dec("1.50")));
        assert_eq!(conv("decimal(5,2)", Value::Int(-3)), Ok(dec("-3.00")));
        assert_eq!(
            conv("decimal(5,2)", Value::Text("12.34".into())),
            Ok(dec("12.34"))
        );
        assert_eq!(
            conv("decimal(5,2)", Value::Bytes(b"-0.01".to_vec())),
            Ok(dec("-0.01"))
        );
        assert!(conv("decimal(5,2)", dec("1000.00")).is_err());
        assert!(conv("decimal(5,2)", dec("1.005")).is_err());
        assert_eq!(
            conv("decimal(5,2)", Value::Text("abc".into())),
            Err(ConvertError::Unparsable {
                expected: "decimal"
            })
        );
        assert_eq!(conv("decimal(5,5)", dec("0.12345")), Ok(dec("0.12345")));
        assert_eq!(conv("decimal(10,0) unsigned", dec("0")), Ok(dec("0")));
        assert_eq!(
            conv("decimal(10,0) unsigned", dec("-1"))
                .unwrap_err()
                .to_string(),
            "value `-1` out of range for `decimal(10,0) unsigned`"
        );
    }

    #[test]
    fn floats_are_bit_exact() {
        let subnormal = f32::from_bits(1);
        let payload_nan = f32::from_bits(0x7fc0_1234);
        for f in [
            subnormal,
            -0.0,
            payload_nan,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
        ] {
            match conv("float", Value::Float(f)) {
                Ok(Value::Float(g)) => assert_eq!(g.to_bits(), f.to_bits()),
                other => panic!("{other:?}"),
            }
        }
        for d in [
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            f64::from_bits(1),
            -0.0,
            f64::from_bits(0x7ff8_0000_0000_beef),
        ] {
            match conv("double", Value::Double(d)) {
                Ok(Value::Double(g)) => assert_eq!(g.to_bits(), d.to_bits()),
                other => panic!("{other:?}"),
            }
        }
        // A double for a float column only when it is exactly a float.
        assert_eq!(conv("float", Value::Double(0.5)), Ok(Value::Float(0.5)));
        assert!(conv("float", Value::Double(0.1)).is_err());
        assert_eq!(conv("double", Value::Float(0.5)), Ok(Value::Double(0.5)));
        assert!(conv("float(10,2) unsigned", Value::Float(-1.0)).is_err());
        assert_eq!(
            conv("double unsigned", Value::Double(-0.0)),
            Ok(Value::Double(-0.0))
        );
    }

    #[test]
    fn dates_and_zero_dates_under_both_policies() {
        for s in ["1000-01-01", "9999-12-31", "0001-01-01", "2024-02-29"] {
            let d: Date = s.parse().unwrap();
            assert_eq!(conv("date", Value::Date(d)), Ok(Value::Date(d)));
        }
        let zero_dates = ["0000-00-00", "2024-00-10", "2024-05-00", "0000-01-01"];
        let err = MappingOptions {
            zero_date: ZeroDatePolicy::Error,
            ..MappingOptions::default()
        };
        for s in zero_dates {
            let d: Date = s.parse().unwrap();
            assert!(is_zero_date(&d));
            assert_eq!(conv("date", Value::Date(d)), Ok(Value::Null));
            let not_null = map_mysql_column(&column("date", false), &Default::default()).unwrap();
            assert_eq!(
                convert_mysql_value(&not_null, Value::Date(d), &Default::default()),
                Err(ConvertError::ZeroDate {
                    value: s.into(),
                    not_null: true
                })
            );
            assert_eq!(
                convert_mysql_value(&mapping("date"), Value::Date(d), &err),
                Err(ConvertError::ZeroDate {
                    value: s.into(),
                    not_null: false
                })
            );
        }
        assert!(!is_zero_date(&Date::new(1000, 1, 1)));
        assert_eq!(
            conv("date", Value::Date(Date::new(2023, 2, 30))),
            Err(ConvertError::InvalidDate {
                value: "2023-02-30".into()
            })
        );
        assert_eq!(
            conv("date", Value::Text("2024-01-02".into())),
            Ok(Value::Date(Date::new(2024, 1, 2)))
        );
        // Year 0 is kept as 0 whatever the zero-date policy: smallint holds it.
        assert_eq!(conv("year(4)", Value::Year(0)), Ok(Value::Int(0)));
        assert_eq!(
            convert_mysql_value(&mapping("year"), Value::Year(0), &err),
            Ok(Value::Int(0))
        );
        assert_eq!(conv("year", Value::Year(1901)), Ok(Value::Int(1901)));
        assert_eq!(conv("year", Value::UInt(2155)), Ok(Value::Int(2155)));
        assert!(conv("year", Value::Year(1900)).is_err());
    }

    #[test]
    fn datetimes_and_timestamps() {
        let dt: DateTime = "2024-05-06 07:08:09.123456".parse().unwrap();
        assert_eq!(
            conv("datetime(6)", Value::DateTime(dt)),
            Ok(Value::DateTime(dt))
        );
        assert_eq!(
            conv("timestamp(6)", Value::Timestamp(dt)),
            Ok(Value::Timestamp(dt))
        );
        // More fractional digits than the column keeps would be rounded by PostgreSQL.
        assert!(matches!(
            conv("datetime(3)", Value::DateTime(dt)),
            Err(ConvertError::OutOfRange { .. })
        ));
        let ms: DateTime = "2024-05-06 07:08:09.123".parse().unwrap();
        assert_eq!(
            conv("datetime(3)", Value::DateTime(ms)),
            Ok(Value::DateTime(ms))
        );
        for s in ["1000-01-01 00:00:00", "9999-12-31 23:59:59.999999"] {
            let dt: DateTime = s.parse().unwrap();
            assert_eq!(
                conv("datetime(6)", Value::DateTime(dt)),
                Ok(Value::DateTime(dt))
            );
        }
        let zero: DateTime = "0000-00-00 00:00:00".parse().unwrap();
        assert_eq!(conv("datetime", Value::DateTime(zero)), Ok(Value::Null));
        assert_eq!(conv("timestamp", Value::Timestamp(zero)), Ok(Value::Null));
        // The binlog's zero TIMESTAMP is epoch 0.
        let epoch: DateTime = "1970-01-01 00:00:00".parse().unwrap();
        assert_eq!(
            conv("timestamp(6)", Value::Timestamp(epoch)),
            Ok(Value::Null)
        );
        let not_null = map_mysql_column(&column("timestamp", false), &Default::default()).unwrap();
        assert_eq!(
            convert_mysql_value(&not_null, Value::Timestamp(epoch), &Default::default()),
            Err(ConvertError::ZeroDate {
                value: "0000-00-00 00:00:00".into(),
                not_null: true
            })
        );
        let first: DateTime = "1970-01-01 00:00:01".parse().unwrap();
        assert_eq!(
            conv("timestamp", Value::Timestamp(first)),
            Ok(Value::Timestamp(first))
        );
        // A wall-clock value for an instant column is a reader bug, not a guess to make.
        assert!(matches!(
            conv("timestamp", Value::DateTime(ms)),
            Err(ConvertError::Mismatch { .. })
        ));
        assert!(matches!(
            conv("datetime", Value::Timestamp(ms)),
            Err(ConvertError::Mismatch { .. })
        ));
    }

    #[test]
    fn times_as_interval_and_as_time_of_day() {
        for s in [
            "838:59:59.000000",
            "-838:59:59.000000",
            "24:00:00",
            "00:00:00",
        ] {
            let t = time(s);
            assert_eq!(conv("time(6)", Value::Time(t)), Ok(Value::Time(t)), "{s}");
        }
        assert!(conv("time(6)", Value::Time(time("839:00:00"))).is_err());
        assert!(conv("time(0)", Value::Time(time("00:00:00.5"))).is_err());
        let opts = MappingOptions {
            time_as_time: true,
            ..MappingOptions::default()
        };
        let m = map_mysql_column(&column("time(6)", true), &opts).unwrap();
        assert_eq!(
            convert_mysql_value(&m, Value::Time(time("24:00:00")), &opts),
            Ok(Value::Time(time("24:00:00")))
        );
        for s in ["-00:00:01", "24:00:00.000001", "838:59:59", "-838:59:59"] {
            assert!(
                matches!(
                    convert_mysql_value(&m, Value::Time(time(s)), &opts),
                    Err(ConvertError::TimeOutOfRange { .. })
                ),
                "{s}"
            );
        }
    }

    #[test]
    fn text_keeps_every_character_and_refuses_nul() {
        for s in [
            "😀 emoji",
            "中文字符",
            "Ünïcødé façade ß ÿ",
            "",
            "trailing  ",
        ] {
            assert_eq!(
                conv("text", Value::Text(s.into())),
                Ok(Value::Text(s.into()))
            );
            assert_eq!(
                conv("varchar(255)", Value::Bytes(s.as_bytes().to_vec())),
                Ok(Value::Text(s.into()))
            );
        }
        assert_eq!(
            conv("text", Value::Text("a\0b".into())),
            Err(ConvertError::NulInText)
        );
        assert_eq!(
            conv("varchar(10)", Value::Bytes(vec![b'a', 0xff])),
            Err(ConvertError::InvalidUtf8 { offset: 1 })
        );
        // varchar(n) counts characters, like MySQL.
        assert_eq!(
            conv("varchar(2)", Value::Text("😀😀".into())),
            Ok(Value::Text("😀😀".into()))
        );
        assert_eq!(
            conv("char(2)", Value::Text("abc".into()))
                .unwrap_err()
                .to_string(),
            "value of 3 characters is too long for `char(2)`"
        );
        assert_eq!(
            conv("char(0)", Value::Text(String::new())),
            Ok(Value::Text(String::new()))
        );
        assert!(conv("char(0)", Value::Text("x".into())).is_err());
    }

    #[test]
    fn binary_keeps_zero_padding() {
        let v = vec![1, 0, 0, 0];
        assert_eq!(
            conv("binary(4)", Value::Bytes(v.clone())),
            Ok(Value::Bytes(v.clone()))
        );
        // The binlog drops the trailing zeros; they are restored.
        assert_eq!(
            conv("binary(4)", Value::Bytes(vec![1])),
            Ok(Value::Bytes(v))
        );
        assert!(conv("binary(4)", Value::Bytes(vec![0; 5])).is_err());
        assert_eq!(
            conv("varbinary(4)", Value::Bytes(vec![0, 0])),
            Ok(Value::Bytes(vec![0, 0]))
        );
        assert!(conv("tinyblob", Value::Bytes(vec![0; 256])).is_err());
        assert_eq!(
            conv("longblob", Value::Bytes(vec![0, 255])),
            Ok(Value::Bytes(vec![0, 255]))
        );
    }

    #[test]
    fn enums_and_sets() {
        let e = "enum('a','b''c','')";
        for s in ["a", "b'c", ""] {
            assert_eq!(conv(e, Value::Text(s.into())), Ok(Value::Text(s.into())));
        }
        assert_eq!(conv(e, Value::UInt(2)), Ok(Value::Text("b'c".into())));
        assert_eq!(conv(e, Value::UInt(0)), Ok(Value::Text(String::new())));
        assert!(conv(e, Value::UInt(4)).is_err());
        assert_eq!(
            conv(e, Value::Text("z".into())),
            Err(ConvertError::NotAMember { kind: "enum" })
        );
        // The error value '' is not a member of an enum that does not declare it.
        assert!(conv("enum('a')", Value::UInt(0)).is_err());

        let s = "set('x','y','z')";
        for v in ["", "x", "x,z", "x,y,z"] {
            assert_eq!(conv(s, Value::Text(v.into())), Ok(Value::Text(v.into())));
        }
        assert_eq!(conv(s, Value::UInt(0b101)), Ok(Value::Text("x,z".into())));
        assert_eq!(conv(s, Value::UInt(0)), Ok(Value::Text(String::new())));
        assert!(conv(s, Value::UInt(0b1000)).is_err());
        assert_eq!(
            conv(s, Value::Text("x,w".into())),
            Err(ConvertError::NotAMember { kind: "set" })
        );
    }

    #[test]
    fn json_is_kept_verbatim_and_checked() {
        let big = r#"{"n": 12345678901234567890.12345678901234567890, "a": [1, 2]}"#;
        assert_eq!(
            conv("json", Value::Json(big.into())),
            Ok(Value::Json(big.into()))
        );
        assert_eq!(
            conv("json", Value::Bytes(big.as_bytes().to_vec())),
            Ok(Value::Json(big.into()))
        );
        let mut c = column("longtext", true);
        c.json_checked = true;
        let m = map_mysql_column(&c, &MappingOptions::default()).unwrap();
        assert_eq!(
            convert_mysql_value(&m, Value::Text(big.into()), &MappingOptions::default()),
            Ok(Value::Json(big.into()))
        );
        assert_eq!(
            conv("json", Value::Json(r#"{"a":"\u0000"}"#.into())),
            Err(ConvertError::NulInJson)
        );
        assert_eq!(
            conv("json", Value::Json(r#"["\\u0000"]"#.into())),
            Ok(Value::Json(r#"["\\u0000"]"#.into()))
        );
        assert!(matches!(
            conv("json", Value::Json("1.".into())),
            Err(ConvertError::InvalidJson { .. })
        ));
    }

    #[test]
    fn bit_strings_from_every_reader_form() {
        let one = BitString::new(1, 1).unwrap();
        assert_eq!(conv("bit(1)", Value::Bits(one)), Ok(Value::Bits(one)));
        assert_eq!(conv("bit(1)", Value::Bytes(vec![1])), Ok(Value::Bits(one)));
        assert_eq!(conv("bit(1)", Value::UInt(1)), Ok(Value::Bits(one)));
        assert!(conv("bit(1)", Value::UInt(2)).is_err());
        let all = BitString::new(64, u64::MAX).unwrap();
        assert_eq!(conv("bit(64)", Value::Bits(all)), Ok(Value::Bits(all)));
        assert_eq!(
            conv("bit(64)", Value::Bytes(vec![0xff; 8])),
            Ok(Value::Bits(all))
        );
        assert_eq!(conv("bit(64)", Value::UInt(u64::MAX)), Ok(Value::Bits(all)));
        let b10 = BitString::new(10, 0b10_0000_0001).unwrap();
        assert_eq!(
            conv("bit(10)", Value::Bytes(vec![0b10, 1])),
            Ok(Value::Bits(b10))
        );
        // A reader that widened the length still gives the column's length back.
        let wide = BitString::new(64, 0b10_0000_0001).unwrap();
        assert_eq!(conv("bit(10)", Value::Bits(wide)), Ok(Value::Bits(b10)));
        assert!(conv("bit(64)", Value::Bytes(vec![1; 9])).is_err());
    }

    #[test]
    fn wrong_kinds_are_mismatches() {
        assert_eq!(
            conv("date", Value::Int(1)),
            Err(ConvertError::Mismatch {
                expected: "a date",
                found: "int"
            })
        );
        assert!(matches!(
            conv("text", Value::Int(1)),
            Err(ConvertError::Mismatch { .. })
        ));
        // A hand-made mapping whose target cannot take the source's values.
        let mut m = mapping("int");
        m.target = PgType::Jsonb;
        assert_eq!(
            convert_mysql_value(&m, Value::Int(1), &Default::default()),
            Err(ConvertError::Unmapped {
                source_type: "int".into(),
                target: "jsonb".into()
            })
        );
    }

    fn int_types() -> impl Strategy<Value = (&'static str, i128)> {
        prop_oneof![
            any::<i8>().prop_map(|n| ("tinyint", i128::from(n))),
            any::<u8>().prop_map(|n| ("tinyint unsigned", i128::from(n))),
            any::<i16>().prop_map(|n| ("smallint", i128::from(n))),
            any::<u16>().prop_map(|n| ("smallint unsigned", i128::from(n))),
            (-8_388_608i32..=8_388_607).prop_map(|n| ("mediumint", i128::from(n))),
            (0u32..=16_777_215).prop_map(|n| ("mediumint unsigned", i128::from(n))),
            any::<i32>().prop_map(|n| ("int", i128::from(n))),
            any::<u32>().prop_map(|n| ("int unsigned", i128::from(n))),
            any::<i64>().prop_map(|n| ("bigint", i128::from(n))),
            any::<u64>().prop_map(|n| ("bigint unsigned", i128::from(n))),
        ]
    }

    proptest! {
        #[test]
        fn integers_of_every_width_are_unchanged((ty, n) in int_types()) {
            let v = match u64::try_from(n) {
                Ok(u) => Value::UInt(u),
                Err(_) => Value::Int(i64::try_from(n).unwrap()),
            };
            let out = conv(ty, v).unwrap();
            let back: i128 = match out {
                Value::Int(i) => i128::from(i),
                Value::Decimal(d) => d.as_str().parse().unwrap(),
                other => panic!("{other:?}"),
            };
            prop_assert_eq!(back, n);
        }

        #[test]
        fn decimals_up_to_65_30_are_unchanged(
            p in 1u8..=65,
            s_seed in 0u8..=30,
            neg in any::<bool>(),
            digits in proptest::collection::vec(0u8..=9, 65),
        ) {
            let s = s_seed.min(p);
            let int_len = usize::from(p - s);
            let int: String = digits[..int_len].iter().map(|d| char::from(b'0' + d)).collect();
            let frac: String = digits[int_len..int_len + usize::from(s)]
                .iter()
                .map(|d| char::from(b'0' + d))
                .collect();
            let text = format!(
                "{}{}{}{}",
                if neg { "-" } else { "" },
                if int.is_empty() { "0" } else { &int },
                if s > 0 { "." } else { "" },
                frac
            );
            let d: Decimal = text.parse().unwrap();
            let ty = format!("decimal({p},{s})");
            prop_assert_eq!(conv(&ty, Value::Decimal(d.clone())), Ok(Value::Decimal(d)));
        }

        #[test]
        fn durations_round_trip_through_text(micros in -MAX_TIME_MICROS..=MAX_TIME_MICROS) {
            let t = Duration::from_micros(micros);
            let text = t.to_string();
            let back: Duration = text.parse().unwrap();
            prop_assert_eq!(back, t);
            prop_assert_eq!(conv("time(6)", Value::Text(text)), Ok(Value::Time(t)));
        }
    }
}
