//! Value conversion from what the PostgreSQL readers produce to what the MySQL sinks write
//! (the *convert* half of the PostgreSQL → MySQL mapping).

use dts_core::{BitString, Date, DateTime, Decimal, Duration, Value};

use crate::error::ConvertError;
use crate::mysql::MySqlType;

use super::array::array_to_json;
use super::interval::parse_interval;
use super::{InfinityPolicy, NanPolicy, PgSourceType, PgToMySqlMapping};

/// The largest `time` MySQL stores, in microseconds (838:59:59).
const MAX_TIME_MICROS: i64 = (838 * 3600 + 59 * 60 + 59) * 1_000_000;

/// Converts one value as the PostgreSQL snapshot reader or change source delivers it (see
/// the decoders: types without a binary form arrive as their text, `NaN` and infinities as
/// text) into the value the MySQL sink writes for the mapped column.
///
/// | source | returns |
/// |---|---|
/// | `boolean`, integers, `oid` | `Bool`, `Int`, `UInt` as they are |
/// | `real`, `double precision` | `Float`, `Double`; `NaN` and infinities per [`NanPolicy`] |
/// | `numeric` → `decimal(M,D)` | `Decimal` with D fraction digits, when it fits exactly |
/// | `numeric` → text | `Text`, exact (`NaN` included) |
/// | `character(n)` | `Text` without trailing spaces |
/// | text types, text forms, enums | `Text`, length checked against a `varchar(n)` target |
/// | `bytea` | `Bytes`, length checked against a `varbinary(n)` target |
/// | `date`, `timestamp` | `Date`, `DateTime`; infinity per [`InfinityPolicy`] |
/// | `timestamptz` | `DateTime` holding the UTC time |
/// | `time` | `Time` |
/// | `interval` | `Text` (its text form) or `Time` (days as 24 hours, checked) |
/// | `uuid` | `Text`, or 16 `Bytes` for `binary(16)` |
/// | `json`, `jsonb` | `Json` as the source printed it |
/// | arrays | `Json` (see [`super::array_to_json`]) |
/// | `bit(n)`, n ≤ 64 | `Bits`; longer bit strings and `varbit` as `Text` of `0`/`1` |
///
/// # Errors
///
/// A [`ConvertError`] for any value the target cannot hold exactly (messages never hold
/// text contents), or of a kind the column does not produce ([`ConvertError::Mismatch`]).
pub fn convert_pg_value(mapping: &PgToMySqlMapping, value: Value) -> Result<Value, ConvertError> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let target = &mapping.target;
    match &mapping.source {
        PgSourceType::Boolean => match value {
            Value::Bool(b) => Ok(Value::Bool(b)),
            v => Err(mismatch("a boolean", &v)),
        },
        PgSourceType::SmallInt | PgSourceType::Integer | PgSourceType::BigInt => match value {
            Value::Int(n) => {
                let (lo, hi) = target.integer_range().unwrap_or((i128::MIN, i128::MAX));
                if i128::from(n) < lo || i128::from(n) > hi {
                    return Err(out_of_range(n, target));
                }
                Ok(Value::Int(n))
            }
            v => Err(mismatch("an integer", &v)),
        },
        PgSourceType::Oid => match value {
            Value::UInt(n) if n <= u64::from(u32::MAX) => Ok(Value::UInt(n)),
            Value::UInt(n) => Err(out_of_range(n, target)),
            v => Err(mismatch("an oid", &v)),
        },
        // MySQL stores -0 as 0 (the two compare equal in both engines): written as 0, and
        // counted (see `is_special_pg_value`).
        PgSourceType::Real => match value {
            // The pattern matches -0 too (float patterns compare with `==`).
            Value::Float(0.0) => Ok(Value::Float(0.0)),
            Value::Float(f) if f.is_finite() => Ok(Value::Float(f)),
            Value::Float(f) => nan(mapping, float_name(f.is_nan(), f < 0.0)),
            v => Err(mismatch("a real", &v)),
        },
        PgSourceType::Double => match value {
            Value::Double(0.0) => Ok(Value::Double(0.0)),
            Value::Double(f) if f.is_finite() => Ok(Value::Double(f)),
            Value::Double(f) => nan(mapping, float_name(f.is_nan(), f < 0.0)),
            v => Err(mismatch("a double", &v)),
        },
        PgSourceType::Numeric { .. } => numeric(mapping, value),
        PgSourceType::Char(_) => {
            let s = text_of(value)?;
            let trimmed = s.trim_end_matches(' ');
            fit_text(trimmed.to_string(), target).map(Value::Text)
        }
        PgSourceType::Bytea => match value {
            Value::Bytes(b) => {
                if let MySqlType::VarBinary(n) | MySqlType::Binary(n) = target {
                    if b.len() > usize::try_from(*n).unwrap_or(usize::MAX) {
                        return Err(too_long(b.len(), "bytes", target));
                    }
                }
                Ok(Value::Bytes(b))
            }
            v => Err(mismatch("bytes", &v)),
        },
        PgSourceType::Date => match value {
            Value::Date(d) => Ok(Value::Date(d)),
            Value::Text(t) if is_infinity(&t) => infinity(mapping, &t),
            v => Err(mismatch("a date", &v)),
        },
        PgSourceType::Timestamp(_) => match value {
            Value::DateTime(d) => Ok(Value::DateTime(d)),
            Value::Text(t) if is_infinity(&t) => infinity(mapping, &t),
            v => Err(mismatch("a timestamp", &v)),
        },
        PgSourceType::TimestampTz(_) => match value {
            // The instant's UTC wall-clock time.
            Value::Timestamp(d) => Ok(Value::DateTime(d)),
            Value::Text(t) if is_infinity(&t) => infinity(mapping, &t),
            v => Err(mismatch("a timestamptz", &v)),
        },
        PgSourceType::Time(_) => match value {
            Value::Time(t) => Ok(Value::Time(t)),
            v => Err(mismatch("a time", &v)),
        },
        PgSourceType::Interval => {
            let s = text_of(value)?;
            match target {
                MySqlType::Time(_) => {
                    let p = parse_interval(&s).ok_or(ConvertError::Unparsable {
                        expected: "interval",
                    })?;
                    let micros = p
                        .days
                        .checked_mul(86_400_000_000)
                        .and_then(|d| d.checked_add(p.micros))
                        .filter(|m| p.months == 0 && m.abs() <= MAX_TIME_MICROS)
                        .ok_or_else(|| out_of_range(&s, target))?;
                    Ok(Value::Time(Duration::from_micros(micros)))
                }
                _ => fit_text(s, target).map(Value::Text),
            }
        }
        PgSourceType::Uuid => {
            let s = text_of(value)?;
            match target {
                MySqlType::Binary(16) => uuid_bytes(&s).map(Value::Bytes),
                _ => fit_text(s, target).map(Value::Text),
            }
        }
        PgSourceType::Json | PgSourceType::Jsonb => {
            let s = text_of(value)?;
            fit_text(s, target).map(Value::Json)
        }
        PgSourceType::Array(element) => {
            let s = text_of(value)?;
            let json = array_to_json(&s, element)?;
            fit_text(json, target).map(Value::Json)
        }
        PgSourceType::Bit(_) | PgSourceType::VarBit(_) => match (value, target) {
            (Value::Bits(b), MySqlType::Bit(n)) if b.len == *n => Ok(Value::Bits(b)),
            (Value::Bits(b), MySqlType::Bit(_)) => Err(out_of_range(b, target)),
            (Value::Bits(b), _) => fit_text(b.to_string(), target).map(Value::Text),
            (Value::Text(s), MySqlType::Bit(n)) => {
                let bits = parse_bits(&s)?;
                if bits.len != *n {
                    return Err(out_of_range(&s, target));
                }
                Ok(Value::Bits(bits))
            }
            (Value::Text(s), _) => {
                if !s.bytes().all(|b| b == b'0' || b == b'1') {
                    return Err(ConvertError::Unparsable {
                        expected: "bit string",
                    });
                }
                fit_text(s, target).map(Value::Text)
            }
            (v, _) => Err(mismatch("a bit string", &v)),
        },
        // `"char"`'s binary form of the empty value is a zero byte; its text form is empty.
        PgSourceType::SingleChar => {
            let s = text_of(value)?;
            let s = if s == "\0" { String::new() } else { s };
            fit_text(s, target).map(Value::Text)
        }
        PgSourceType::VarChar(_)
        | PgSourceType::Text
        | PgSourceType::Name
        | PgSourceType::Money
        | PgSourceType::TimeTz
        | PgSourceType::Xml
        | PgSourceType::Enum { .. }
        | PgSourceType::Other(_) => fit_text(text_of(value)?, target).map(Value::Text),
    }
}

/// Whether `value` of a column mapped by `mapping` is one of the values written otherwise
/// (`NaN`, infinities and infinite dates written as `NULL` or clamped as the options say,
/// `-0` written as `0`): the copy counts them.
pub fn is_special_pg_value(mapping: &PgToMySqlMapping, value: &Value) -> bool {
    match (value, &mapping.source) {
        (Value::Float(f), _) => !f.is_finite() || (*f == 0.0 && f.is_sign_negative()),
        (Value::Double(f), _) => !f.is_finite() || (*f == 0.0 && f.is_sign_negative()),
        (
            Value::Text(t),
            PgSourceType::Date | PgSourceType::Timestamp(_) | PgSourceType::TimestampTz(_),
        ) => is_infinity(t),
        (Value::Text(t), PgSourceType::Numeric { .. }) => {
            is_numeric_special(t) && matches!(mapping.target, MySqlType::Decimal { .. })
        }
        _ => false,
    }
}

/// A value of `source` from its text form as PostgreSQL prints it under the source's
/// session settings (a column default's literal), in the form the readers deliver: `None`
/// when the text is not a valid value of the type.
pub fn pg_value_from_text(source: &PgSourceType, text: &str) -> Option<Value> {
    Some(match source {
        PgSourceType::Boolean => match text.to_ascii_lowercase().as_str() {
            "t" | "true" | "yes" | "on" | "1" => Value::Bool(true),
            "f" | "false" | "no" | "off" | "0" => Value::Bool(false),
            _ => return None,
        },
        PgSourceType::SmallInt | PgSourceType::Integer | PgSourceType::BigInt => {
            Value::Int(text.trim().parse().ok()?)
        }
        PgSourceType::Oid => Value::UInt(text.trim().parse().ok()?),
        PgSourceType::Real => Value::Float(match text {
            "NaN" => f32::NAN,
            "Infinity" => f32::INFINITY,
            "-Infinity" => f32::NEG_INFINITY,
            t => t.trim().parse().ok()?,
        }),
        PgSourceType::Double => Value::Double(match text {
            "NaN" => f64::NAN,
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            t => t.trim().parse().ok()?,
        }),
        PgSourceType::Numeric { .. } if is_numeric_special(text) => Value::Text(text.into()),
        PgSourceType::Numeric { .. } => Value::Decimal(text.trim().parse().ok()?),
        PgSourceType::Date if is_infinity(text) => Value::Text(text.into()),
        PgSourceType::Date => Value::Date(text.parse::<Date>().ok().filter(Date::is_valid)?),
        PgSourceType::Timestamp(_) | PgSourceType::TimestampTz(_) if is_infinity(text) => {
            Value::Text(text.into())
        }
        PgSourceType::Timestamp(_) => Value::DateTime(valid_datetime(text)?),
        PgSourceType::TimestampTz(_) => {
            Value::Timestamp(valid_datetime(text.strip_suffix("+00")?)?)
        }
        PgSourceType::Time(_) => Value::Time(text.parse::<Duration>().ok()?),
        PgSourceType::Bytea => {
            let hex = text.strip_prefix("\\x")?;
            if hex.len() % 2 != 0 {
                return None;
            }
            let mut out = Vec::with_capacity(hex.len() / 2);
            for pair in hex.as_bytes().chunks(2) {
                out.push(u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?);
            }
            Value::Bytes(out)
        }
        PgSourceType::Json | PgSourceType::Jsonb => Value::Json(text.into()),
        PgSourceType::Bit(n) if *n <= 64 => Value::Bits(parse_bits(text).ok()?),
        _ => Value::Text(text.into()),
    })
}

fn valid_datetime(text: &str) -> Option<DateTime> {
    text.parse::<DateTime>().ok().filter(|d| d.date.is_valid())
}

fn parse_bits(s: &str) -> Result<BitString, ConvertError> {
    let bad = || ConvertError::Unparsable {
        expected: "bit string",
    };
    let len = u8::try_from(s.len()).map_err(|_| bad())?;
    let mut bits = 0u64;
    for c in s.bytes() {
        bits = match c {
            b'0' => bits << 1,
            b'1' => (bits << 1) | 1,
            _ => return Err(bad()),
        };
    }
    BitString::new(len, bits).ok_or_else(bad)
}

fn is_infinity(t: &str) -> bool {
    t == "infinity" || t == "-infinity"
}

fn is_numeric_special(t: &str) -> bool {
    matches!(t, "NaN" | "Infinity" | "-Infinity")
}

fn float_name(is_nan: bool, negative: bool) -> &'static str {
    if is_nan {
        "NaN"
    } else if negative {
        "-Infinity"
    } else {
        "Infinity"
    }
}

/// `numeric` values: exact decimals into `decimal(M,D)`, or text.
fn numeric(mapping: &PgToMySqlMapping, value: Value) -> Result<Value, ConvertError> {
    let target = &mapping.target;
    match (value, target) {
        (Value::Decimal(d), MySqlType::Decimal { precision, scale }) => {
            fit_decimal(&d, *precision, *scale)
                .map(Value::Decimal)
                .ok_or_else(|| out_of_range(&d, target))
        }
        (Value::Decimal(d), _) => fit_text(d.to_string(), target).map(Value::Text),
        (Value::Text(t), MySqlType::Decimal { .. }) if is_numeric_special(&t) => nan(mapping, &t),
        (Value::Text(t), _) if is_numeric_special(&t) => fit_text(t, target).map(Value::Text),
        (v, _) => Err(mismatch("a numeric", &v)),
    }
}

/// `d` written with exactly `scale` fraction digits, if `decimal(precision, scale)` holds
/// it without rounding.
fn fit_decimal(d: &Decimal, precision: u8, scale: u8) -> Option<Decimal> {
    let int = d.integer_digits().trim_start_matches('0');
    let frac = d.fraction_digits().trim_end_matches('0');
    let scale = usize::from(scale);
    if int.len() > usize::from(precision).saturating_sub(scale) || frac.len() > scale {
        return None;
    }
    let mut s = String::with_capacity(int.len() + scale + 3);
    if d.is_negative() {
        s.push('-');
    }
    s.push_str(if int.is_empty() { "0" } else { int });
    if scale > 0 {
        s.push('.');
        s.push_str(frac);
        s.extend(std::iter::repeat_n('0', scale - frac.len()));
    }
    s.parse().ok()
}

/// `NaN` or an infinite number, per the `nan` option.
fn nan(mapping: &PgToMySqlMapping, what: &str) -> Result<Value, ConvertError> {
    match mapping.options.nan {
        NanPolicy::Null if mapping.nullable => Ok(Value::Null),
        _ => Err(ConvertError::Unrepresentable {
            what: what.to_string(),
            target: mapping.target.to_string(),
        }),
    }
}

/// An infinite date or timestamp, per the `infinity` option.
fn infinity(mapping: &PgToMySqlMapping, what: &str) -> Result<Value, ConvertError> {
    let negative = what.starts_with('-');
    match mapping.options.infinity {
        InfinityPolicy::Null if mapping.nullable => Ok(Value::Null),
        InfinityPolicy::Clamp => {
            let date = if negative {
                Date::new(1, 1, 1)
            } else {
                Date::new(9999, 12, 31)
            };
            Ok(match mapping.target {
                MySqlType::Date => Value::Date(date),
                MySqlType::DateTime(fsp) => Value::DateTime(if negative {
                    DateTime {
                        date,
                        hour: 0,
                        minute: 0,
                        second: 0,
                        micro: 0,
                    }
                } else {
                    // The largest value of the column's precision (more digits would round
                    // up past the end of the range).
                    let unit = 10u32.pow(6 - u32::from(fsp.min(6)));
                    DateTime {
                        date,
                        hour: 23,
                        minute: 59,
                        second: 59,
                        micro: 999_999 / unit * unit,
                    }
                }),
                _ => return Err(unrepresentable(what, &mapping.target)),
            })
        }
        _ => Err(unrepresentable(what, &mapping.target)),
    }
}

fn unrepresentable(what: &str, target: &MySqlType) -> ConvertError {
    ConvertError::Unrepresentable {
        what: what.to_string(),
        target: target.to_string(),
    }
}

/// The 16 bytes of a uuid's text.
fn uuid_bytes(s: &str) -> Result<Vec<u8>, ConvertError> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    let bad = || ConvertError::Unparsable { expected: "uuid" };
    if hex.len() != 32 {
        return Err(bad());
    }
    (0..16)
        .map(|i| {
            u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16).map_err(|_| bad())
        })
        .collect()
}

fn text_of(value: Value) -> Result<String, ConvertError> {
    match value {
        Value::Text(s) | Value::Json(s) => Ok(s),
        Value::Bytes(b) => String::from_utf8(b).map_err(|e| ConvertError::InvalidUtf8 {
            offset: e.utf8_error().valid_up_to(),
        }),
        v => Err(mismatch("text", &v)),
    }
}

/// `s` if the text target holds it.
fn fit_text(s: String, target: &MySqlType) -> Result<String, ConvertError> {
    let max_chars = match target {
        MySqlType::Char(n) | MySqlType::VarChar(n) => Some(*n),
        _ => None,
    };
    if let Some(n) = max_chars {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        // Cheap first: no more bytes than characters allowed means it fits.
        if s.len() > n {
            let chars = s.chars().count();
            if chars > n {
                return Err(too_long(chars, "characters", target));
            }
        }
    }
    let max_bytes = match target {
        MySqlType::TinyText => 255,
        MySqlType::Text => 65_535,
        MySqlType::MediumText => 16_777_215,
        _ => usize::MAX,
    };
    if s.len() > max_bytes {
        return Err(too_long(s.len(), "bytes", target));
    }
    Ok(s)
}

fn too_long(length: usize, unit: &'static str, target: &MySqlType) -> ConvertError {
    ConvertError::TooLong {
        length,
        unit,
        target: target.to_string(),
    }
}

fn out_of_range(value: impl std::fmt::Display, target: impl std::fmt::Display) -> ConvertError {
    let mut v = value.to_string();
    if v.len() > 80 {
        v = format!("{}…", v.chars().take(60).collect::<String>());
    }
    ConvertError::OutOfRange {
        value: v,
        target: target.to_string(),
    }
}

fn mismatch(expected: &'static str, found: &Value) -> ConvertError {
    ConvertError::Mismatch {
        expected,
        found: found.kind(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{map_pg_type, PgToMySqlOptions, UnboundedNumeric, UuidMapping};
    use super::*;

    fn mapping(t: &str) -> PgToMySqlMapping {
        mapping_with(t, PgToMySqlOptions::default())
    }

    fn mapping_with(t: &str, options: PgToMySqlOptions) -> PgToMySqlMapping {
        map_pg_type(t, PgSourceType::parse(t), true, &options).unwrap()
    }

    fn conv(t: &str, v: Value) -> Result<Value, ConvertError> {
        convert_pg_value(&mapping(t), v)
    }

    fn dec(s: &str) -> Value {
        Value::Decimal(s.parse().unwrap())
    }

    #[test]
    fn numbers() {
        assert_eq!(conv("integer", Value::Int(-5)), Ok(Value::Int(-5)));
        assert_eq!(conv("boolean", Value::Bool(true)), Ok(Value::Bool(true)));
        assert_eq!(
            conv("oid", Value::UInt(4_294_967_295)),
            Ok(Value::UInt(4_294_967_295))
        );
        assert_eq!(conv("numeric(10,2)", dec("-1.5")), Ok(dec("-1.50")));
        // Unbounded numerics: exact within decimal(65,30), refused beyond.
        assert_eq!(
            conv("numeric", dec("1.50")),
            Ok(dec("1.500000000000000000000000000000"))
        );
        let max = format!("{}.{}", "9".repeat(35), "9".repeat(30));
        assert_eq!(conv("numeric", dec(&max)), Ok(dec(&max)));
        assert!(conv("numeric", dec(&"9".repeat(36))).is_err());
        assert!(conv("numeric", dec(&format!("0.{}1", "0".repeat(30)))).is_err());
        assert_eq!(
            conv("numeric", dec(&format!("2.5{}", "0".repeat(40)))),
            Ok(dec("2.500000000000000000000000000000"))
        );
        let e = conv("numeric", Value::Text("NaN".into())).unwrap_err();
        assert_eq!(e.to_string(), "NaN cannot be stored in `decimal(65,30)`");
        assert!(conv("double precision", Value::Double(f64::INFINITY)).is_err());
        assert!(conv("real", Value::Float(f32::NAN)).is_err());
        let zero = conv("real", Value::Float(-0.0)).unwrap();
        assert!(matches!(zero, Value::Float(f) if f == 0.0 && f.is_sign_positive()));
        assert!(is_special_pg_value(&mapping("real"), &Value::Float(-0.0)));
        assert!(!is_special_pg_value(&mapping("real"), &Value::Float(0.0)));
        let text = PgToMySqlOptions {
            unbounded_numeric: UnboundedNumeric::Text,
            ..PgToMySqlOptions::default()
        };
        let m = mapping_with("numeric", text);
        assert_eq!(
            convert_pg_value(&m, Value::Text("NaN".into())),
            Ok(Value::Text("NaN".into()))
        );
        assert_eq!(
            convert_pg_value(&m, dec("1.50")),
            Ok(Value::Text("1.50".into()))
        );
    }

    #[test]
    fn nan_and_infinity_policies() {
        let opts = PgToMySqlOptions {
            nan: NanPolicy::Null,
            infinity: InfinityPolicy::Clamp,
            ..PgToMySqlOptions::default()
        };
        let m = mapping_with("double precision", opts);
        assert!(is_special_pg_value(&m, &Value::Double(f64::NAN)));
        assert_eq!(
            convert_pg_value(&m, Value::Double(f64::NAN)),
            Ok(Value::Null)
        );
        let mut not_null = m.clone();
        not_null.nullable = false;
        assert!(convert_pg_value(&not_null, Value::Double(f64::NAN)).is_err());
        let ts = mapping_with("timestamp(3) without time zone", opts);
        assert_eq!(
            convert_pg_value(&ts, Value::Text("infinity".into())),
            Ok(Value::DateTime("9999-12-31 23:59:59.999".parse().unwrap()))
        );
        assert_eq!(
            convert_pg_value(&mapping_with("date", opts), Value::Text("-infinity".into())),
            Ok(Value::Date(Date::new(1, 1, 1)))
        );
        let e = conv("timestamp with time zone", Value::Text("infinity".into())).unwrap_err();
        assert_eq!(e.to_string(), "infinity cannot be stored in `datetime(6)`");
    }

    #[test]
    fn dates_texts_and_forms() {
        let dt: DateTime = "2038-01-19 03:14:08".parse().unwrap();
        assert_eq!(
            conv("timestamp with time zone", Value::Timestamp(dt)),
            Ok(Value::DateTime(dt))
        );
        assert_eq!(
            conv("\"char\"", Value::Text("\0".into())),
            Ok(Value::Text(String::new()))
        );
        assert_eq!(
            conv("character(5)", Value::Text("ab   ".into())),
            Ok(Value::Text("ab".into()))
        );
        let key = mapping("text").within_key_bytes(12);
        assert_eq!(
            convert_pg_value(&key, Value::Text("été".into())),
            Ok(Value::Text("été".into()))
        );
        let e = convert_pg_value(&key, Value::Text("abcd".into())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "value of 4 characters is too long for `varchar(3)`"
        );
        assert_eq!(
            conv("integer[]", Value::Text("{1,NULL}".into())),
            Ok(Value::Json("[1,null]".into()))
        );
        assert_eq!(
            conv("bit varying(5)", Value::Bits(BitString::new(3, 1).unwrap())),
            Ok(Value::Text("001".into()))
        );
        let bin = PgToMySqlOptions {
            uuid: UuidMapping::Binary16,
            ..PgToMySqlOptions::default()
        };
        assert_eq!(
            convert_pg_value(
                &mapping_with("uuid", bin),
                Value::Text("000102030405060708090a0b0c0d0e0f".into())
            ),
            Ok(Value::Bytes((0..16).collect()))
        );
    }

    #[test]
    fn intervals_as_time() {
        let opts = PgToMySqlOptions {
            interval: super::super::IntervalMapping::Time,
            ..PgToMySqlOptions::default()
        };
        let m = mapping_with("interval", opts);
        assert_eq!(
            convert_pg_value(&m, Value::Text("1 day 02:00:00".into())),
            Ok(Value::Time(Duration::from_micros(26 * 3_600_000_000)))
        );
        assert!(convert_pg_value(&m, Value::Text("1 mon".into())).is_err());
        assert!(convert_pg_value(&m, Value::Text("35 days".into())).is_err());
        assert_eq!(
            conv("interval", Value::Text("1 mon".into())),
            Ok(Value::Text("1 mon".into()))
        );
    }

    #[test]
    fn default_literals() {
        assert_eq!(
            pg_value_from_text(&PgSourceType::Boolean, "true"),
            Some(Value::Bool(true))
        );
        assert_eq!(
            pg_value_from_text(&PgSourceType::TimestampTz(6), "2000-01-01 00:00:00+00"),
            Some(Value::Timestamp("2000-01-01 00:00:00".parse().unwrap()))
        );
        assert_eq!(
            pg_value_from_text(&PgSourceType::TimestampTz(6), "2000-01-01 00:00:00+02"),
            None
        );
        assert_eq!(
            pg_value_from_text(&PgSourceType::Bytea, "\\x00ff"),
            Some(Value::Bytes(vec![0, 255]))
        );
    }
}
