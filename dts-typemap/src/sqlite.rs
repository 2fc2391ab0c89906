//! SQLite column types and values, mapped to the PostgreSQL types that hold them.
//!
//! SQLite stores any value in any column (except in `STRICT` tables): a column's declared
//! type only gives it an *affinity* ([`affinity`], the rules of section 3.1 "Determination
//! Of Column Affinity" of SQLite's documentation on data types), and each value keeps its
//! own storage class (`NULL`, `INTEGER`, `REAL`, `TEXT`, `BLOB`). The mapping therefore has
//! two halves:
//!
//! - [`map_sqlite_type`] picks a [`SqliteTarget`] for a declared type: the natural target
//!   type where the declared name says what the column holds (`VARCHAR(20)`,
//!   `DECIMAL(10,2)`, `BOOLEAN`, `DATE`, `DATETIME`), else the affinity's lossless form
//!   (`INTEGER` → `bigint`, `REAL` → `double precision`, `TEXT` → `text`, `BLOB` →
//!   `bytea`, `NUMERIC` → `numeric`). Columns without a declared type and `ANY` columns
//!   take the most general form that keeps every number and every text as written:
//!   `text` (integers and reals as their text; a blob in such a column does not fit).
//! - [`convert_sqlite_value`] converts each stored value into the [`Value`] the target type
//!   takes, refusing every value that does not fit exactly (text in an integer column, a
//!   real in an integer column, a blob in a text column, a real with more fraction digits
//!   than a `DECIMAL(10,2)` keeps, a text that is not a date in a `DATE` column): the
//!   precheck counts those, and the full load stops on them or rejects their rows.
//!
//! The targets are spelled as PostgreSQL types ([`SqliteTarget::pg_type`]); a MySQL or
//! MariaDB target takes them through the PostgreSQL → MySQL mapping
//! ([`crate::pg_to_mysql`]), so both targets agree on what each column holds.
//!
//! ```
//! use dts_core::Value;
//! use dts_typemap::sqlite::{affinity, convert_sqlite_value, map_sqlite_type, Affinity, SqliteTarget};
//!
//! assert_eq!(affinity("VARCHAR(20)"), Affinity::Text);
//! assert_eq!(map_sqlite_type("DECIMAL(10,2)"), SqliteTarget::Numeric(Some((10, 2))));
//! assert_eq!(map_sqlite_type("DECIMAL(10,2)").pg_type(), "numeric(10,2)");
//! let v = convert_sqlite_value(&SqliteTarget::Numeric(Some((10, 2))), Value::Double(10.5)).unwrap();
//! assert_eq!(v, Value::Decimal("10.50".parse().unwrap()));
//! assert!(convert_sqlite_value(&SqliteTarget::BigInt, Value::Text("x".into())).is_err());
//! ```

use std::fmt;

use dts_core::{Date, DateTime, Decimal, Value};

use crate::error::ConvertError;

/// A column's type affinity, by SQLite's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Affinity {
    /// The declared type contains `INT`.
    Integer,
    /// The declared type contains `CHAR`, `CLOB` or `TEXT`.
    Text,
    /// The declared type contains `BLOB`, or there is none.
    Blob,
    /// The declared type contains `REAL`, `FLOA` or `DOUB`.
    Real,
    /// Any other declared type.
    Numeric,
}

impl fmt::Display for Affinity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Integer => "INTEGER",
            Self::Text => "TEXT",
            Self::Blob => "BLOB",
            Self::Real => "REAL",
            Self::Numeric => "NUMERIC",
        })
    }
}

/// The affinity of a column declared with type `declared` (rules 1 to 5 of section 3.1, in
/// order: the first that matches decides).
pub fn affinity(declared: &str) -> Affinity {
    let t = declared.to_ascii_uppercase();
    if t.contains("INT") {
        Affinity::Integer
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        Affinity::Text
    } else if t.contains("BLOB") || t.trim().is_empty() {
        Affinity::Blob
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        Affinity::Real
    } else {
        Affinity::Numeric
    }
}

/// The target type of a SQLite column, spelled in PostgreSQL ([`SqliteTarget::pg_type`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SqliteTarget {
    /// `bigint`: every `INTEGER` affinity column (SQLite integers are 64-bit).
    BigInt,
    /// `double precision`: `REAL` affinity.
    Double,
    /// `numeric(p,s)` for `DECIMAL(p,s)` / `NUMERIC(p,s)`, `numeric` otherwise.
    Numeric(Option<(u16, u16)>),
    /// `boolean`, for `BOOLEAN` / `BOOL` (values 0 and 1).
    Boolean,
    /// `text`: `TEXT` affinity without a length, and the general form (`ANY`, no type).
    Text,
    /// `character varying(n)`, for `VARCHAR(n)`, `CHAR(n)` and their variants: the length
    /// is checked, and nothing is padded.
    VarChar(u32),
    /// `bytea`: `BLOB`.
    Bytea,
    /// `date`, for `DATE` (text `YYYY-MM-DD`).
    Date,
    /// `timestamp(6) without time zone`, for `DATETIME` and `TIMESTAMP` (text
    /// `YYYY-MM-DD HH:MM:SS[.ffffff]`, a `T` separator accepted).
    Timestamp,
}

impl SqliteTarget {
    /// The PostgreSQL type, as `format_type()` prints it.
    pub fn pg_type(&self) -> String {
        match self {
            Self::BigInt => "bigint".into(),
            Self::Double => "double precision".into(),
            Self::Numeric(Some((p, s))) => format!("numeric({p},{s})"),
            Self::Numeric(None) => "numeric".into(),
            Self::Boolean => "boolean".into(),
            Self::Text => "text".into(),
            Self::VarChar(n) => format!("character varying({n})"),
            Self::Bytea => "bytea".into(),
            Self::Date => "date".into(),
            Self::Timestamp => "timestamp(6) without time zone".into(),
        }
    }

    /// The PostgreSQL type's OID and type modifier, as `pg_attribute` records them and
    /// binary `COPY` names them (`-1`: no modifier).
    pub fn pg_type_id(&self) -> (u32, i32) {
        match *self {
            Self::BigInt => (20, -1),
            Self::Double => (701, -1),
            Self::Numeric(Some((p, s))) => (1700, ((i32::from(p) << 16) | i32::from(s)) + 4),
            Self::Numeric(None) => (1700, -1),
            Self::Boolean => (16, -1),
            Self::Text => (25, -1),
            Self::VarChar(n) => (1043, i32::try_from(n).map_or(-1, |n| n.saturating_add(4))),
            Self::Bytea => (17, -1),
            Self::Date => (1082, -1),
            Self::Timestamp => (1114, 6),
        }
    }

    /// The target whose [`SqliteTarget::pg_type`] is `pg_type`.
    pub fn from_pg_type(pg_type: &str) -> Option<Self> {
        Some(match pg_type {
            "bigint" => Self::BigInt,
            "double precision" => Self::Double,
            "numeric" => Self::Numeric(None),
            "boolean" => Self::Boolean,
            "text" => Self::Text,
            "bytea" => Self::Bytea,
            "date" => Self::Date,
            "timestamp(6) without time zone" => Self::Timestamp,
            other => {
                if let Some(n) = other
                    .strip_prefix("character varying(")
                    .and_then(|r| r.strip_suffix(')'))
                {
                    Self::VarChar(n.parse().ok()?)
                } else {
                    let args = other.strip_prefix("numeric(")?.strip_suffix(')')?;
                    let (p, s) = args.split_once(',')?;
                    Self::Numeric(Some((p.trim().parse().ok()?, s.trim().parse().ok()?)))
                }
            }
        })
    }
}

impl fmt::Display for SqliteTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pg_type())
    }
}

/// Splits `varchar ( 20 )` into `varchar` and its numeric arguments; `None` when the
/// arguments are not numbers.
fn split_type(declared: &str) -> Option<(String, Vec<u32>)> {
    let t = declared.trim().to_ascii_lowercase();
    let Some((name, rest)) = t.split_once('(') else {
        return Some((
            t.split_whitespace().collect::<Vec<_>>().join(" "),
            Vec::new(),
        ));
    };
    let args = rest.trim().strip_suffix(')')?;
    let args = args
        .split(',')
        .map(|a| a.trim().parse::<u32>().ok())
        .collect::<Option<Vec<_>>>()?;
    Some((name.split_whitespace().collect::<Vec<_>>().join(" "), args))
}

/// The target of a column declared with type `declared` (in a `STRICT` table too, where
/// only `INT`, `INTEGER`, `REAL`, `TEXT`, `BLOB` and `ANY` are allowed).
///
/// | declared | affinity | target |
/// |---|---|---|
/// | anything with `INT` | INTEGER | `bigint` |
/// | `VARCHAR(n)`, `CHAR(n)`, `NCHAR(n)`, `NVARCHAR(n)`, `CHARACTER VARYING(n)`… | TEXT | `varchar(n)` |
/// | other `CHAR`, `CLOB`, `TEXT` types | TEXT | `text` |
/// | `BLOB` | BLOB | `bytea` |
/// | none, `ANY` | BLOB / NUMERIC | `text` (the general form) |
/// | `REAL`, `FLOAT`, `DOUBLE`… | REAL | `double precision` |
/// | `DECIMAL(p,s)`, `NUMERIC(p,s)` | NUMERIC | `numeric(p,s)` |
/// | `BOOLEAN`, `BOOL` | NUMERIC | `boolean` |
/// | `DATE` | NUMERIC | `date` |
/// | `DATETIME`, `TIMESTAMP` | NUMERIC | `timestamp(6)` |
/// | `JSON`, `UUID`, `TIME`, `STRING` | NUMERIC | `text` |
/// | any other | NUMERIC | `numeric` |
pub fn map_sqlite_type(declared: &str) -> SqliteTarget {
    let trimmed = declared.trim();
    if trimmed.is_empty() || trimmed.eq_ignore_ascii_case("any") {
        return SqliteTarget::Text;
    }
    let (name, args) = split_type(trimmed).unwrap_or_default();
    match affinity(trimmed) {
        Affinity::Integer => SqliteTarget::BigInt,
        Affinity::Real => SqliteTarget::Double,
        Affinity::Blob => SqliteTarget::Bytea,
        Affinity::Text => match (name.as_str(), args.as_slice()) {
            (
                "varchar" | "character varying" | "varying character" | "nvarchar" | "nchar"
                | "native character" | "char" | "character",
                [n],
            ) if (1..=10_485_760).contains(n) => SqliteTarget::VarChar(*n),
            _ => SqliteTarget::Text,
        },
        Affinity::Numeric => match (name.as_str(), args.as_slice()) {
            ("decimal" | "numeric", [p]) if (1..=1000).contains(p) => {
                SqliteTarget::Numeric(u16::try_from(*p).ok().map(|p| (p, 0)))
            }
            ("decimal" | "numeric", [p, s]) if (1..=1000).contains(p) && s <= p => {
                match (u16::try_from(*p), u16::try_from(*s)) {
                    (Ok(p), Ok(s)) => SqliteTarget::Numeric(Some((p, s))),
                    _ => SqliteTarget::Numeric(None),
                }
            }
            ("boolean" | "bool", []) => SqliteTarget::Boolean,
            ("date", []) => SqliteTarget::Date,
            ("datetime" | "timestamp", _) => SqliteTarget::Timestamp,
            ("json" | "jsonb" | "uuid" | "time" | "string", _) => SqliteTarget::Text,
            _ => SqliteTarget::Numeric(None),
        },
    }
}

/// The storage class of a value as a SQLite reader delivers it, for messages.
fn storage(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Int(_) => "integer",
        Value::Double(_) => "real",
        Value::Text(_) => "text",
        // A reader delivers text that is not UTF-8 as bytes too.
        Value::Bytes(_) => "blob (or non-utf-8 text)",
        other => other.kind(),
    }
}

fn misfit(value: &Value, target: &SqliteTarget) -> ConvertError {
    ConvertError::StorageClass {
        storage: storage(value),
        target: target.pg_type(),
    }
}

/// The shortest text that reads back as `f` (`0.1`, `2.0`, `1e300`), as a SQLite text
/// column would not show it but as exact as the double itself.
pub fn real_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Inf" } else { "-Inf" }.into()
    } else {
        format!("{f:?}")
    }
}

/// The exact decimal of the shortest text that reads back as `f` (`1e20` →
/// `100000000000000000000`); `None` for infinities and `NaN`.
pub fn real_decimal(f: f64) -> Option<Decimal> {
    if !f.is_finite() {
        return None;
    }
    // `{:e}` prints the shortest round-trip digits: `-1.25e-3`.
    let e = format!("{f:e}");
    let (mantissa, exponent) = e.split_once('e')?;
    let exponent: i64 = exponent.parse().ok()?;
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    // The value is 0.d1d2d3… × 10^(exponent + 1).
    let point = exponent + 1;
    let len = i64::try_from(digits.len()).ok()?;
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if point <= 0 {
        out.push_str("0.");
        out.push_str(&"0".repeat(usize::try_from(-point).ok()?));
        out.push_str(&digits);
    } else if point >= len {
        out.push_str(&digits);
        out.push_str(&"0".repeat(usize::try_from(point - len).ok()?));
    } else {
        let p = usize::try_from(point).ok()?;
        out.push_str(&digits[..p]);
        out.push('.');
        out.push_str(&digits[p..]);
    }
    let d: Decimal = out.parse().ok()?;
    // `2.0` → `2`: trailing fraction zeros of a double carry no scale.
    let s = d.as_str();
    Some(if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').parse().ok()?
    } else {
        d
    })
}

/// `d` with exactly `scale` fraction digits when that drops no non-zero digit, and at most
/// `precision - scale` integer digits.
fn fit_decimal(
    d: &Decimal,
    precision: u16,
    scale: u16,
    target: &SqliteTarget,
) -> Result<Decimal, ConvertError> {
    let out_of_range = || ConvertError::OutOfRange {
        value: d.to_string(),
        target: target.pg_type(),
    };
    let scale = usize::from(scale);
    let frac = d.fraction_digits();
    let kept = frac.trim_end_matches('0');
    if kept.len() > scale {
        return Err(out_of_range());
    }
    let int = d.integer_digits().trim_start_matches('0');
    if int.len() > usize::from(precision) - scale {
        return Err(out_of_range());
    }
    let mut s = String::new();
    if d.is_negative() {
        s.push('-');
    }
    s.push_str(if int.is_empty() { "0" } else { int });
    if scale > 0 {
        s.push('.');
        s.push_str(kept);
        s.push_str(&"0".repeat(scale - kept.len()));
    }
    s.parse().map_err(|_| out_of_range())
}

/// Converts one value as a SQLite reader delivers it (its storage class: `Null`, `Int`,
/// `Double`, `Text`, or `Bytes` for a blob or for text that is not UTF-8) into the value
/// the target type takes.
///
/// | target | takes |
/// |---|---|
/// | `bigint` | integers |
/// | `double precision` | reals; integers a double holds exactly |
/// | `numeric(p,s)`, `numeric` | integers and finite reals (their shortest exact decimal) that fit without rounding |
/// | `boolean` | the integers 0 and 1 |
/// | `text`, `varchar(n)` | text (at most n characters); integers and reals as their text in `text` |
/// | `bytea` | blobs; text as its UTF-8 bytes |
/// | `date`, `timestamp` | text in the ISO forms SQLite's date functions write |
///
/// # Errors
///
/// [`ConvertError::StorageClass`] for a value of a storage class the target does not take,
/// [`ConvertError::OutOfRange`], [`ConvertError::TooLong`], [`ConvertError::NotBoolean`] and
/// [`ConvertError::Unparsable`] for values that do not fit.
pub fn convert_sqlite_value(target: &SqliteTarget, value: Value) -> Result<Value, ConvertError> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    match target {
        SqliteTarget::BigInt => match value {
            Value::Int(i) => Ok(Value::Int(i)),
            v => Err(misfit(&v, target)),
        },
        SqliteTarget::Double => match value {
            Value::Double(f) => Ok(Value::Double(f)),
            Value::Int(i) => {
                // Exactly representable: |i| <= 2^53.
                if i.unsigned_abs() <= (1u64 << 53) {
                    #[allow(clippy::cast_precision_loss)]
                    Ok(Value::Double(i as f64))
                } else {
                    Err(ConvertError::OutOfRange {
                        value: i.to_string(),
                        target: target.pg_type(),
                    })
                }
            }
            v => Err(misfit(&v, target)),
        },
        SqliteTarget::Numeric(ps) => {
            let d = match value {
                Value::Int(i) => int_decimal(i)?,
                Value::Double(f) => {
                    real_decimal(f).ok_or_else(|| ConvertError::Unrepresentable {
                        what: real_text(f),
                        target: target.pg_type(),
                    })?
                }
                v => return Err(misfit(&v, target)),
            };
            Ok(Value::Decimal(match ps {
                Some((p, s)) => fit_decimal(&d, *p, *s, target)?,
                None => d,
            }))
        }
        SqliteTarget::Boolean => match value {
            Value::Int(0) => Ok(Value::Bool(false)),
            Value::Int(1) => Ok(Value::Bool(true)),
            Value::Int(i) => Err(ConvertError::NotBoolean {
                value: i.to_string(),
            }),
            v => Err(misfit(&v, target)),
        },
        SqliteTarget::Text => match value {
            Value::Text(s) => Ok(Value::Text(s)),
            Value::Int(i) => Ok(Value::Text(i.to_string())),
            Value::Double(f) => Ok(Value::Text(real_text(f))),
            v => Err(misfit(&v, target)),
        },
        SqliteTarget::VarChar(n) => match value {
            Value::Text(s) => {
                let chars = s.chars().count();
                if chars > usize::try_from(*n).unwrap_or(usize::MAX) {
                    Err(ConvertError::TooLong {
                        length: chars,
                        unit: "characters",
                        target: target.pg_type(),
                    })
                } else {
                    Ok(Value::Text(s))
                }
            }
            v => Err(misfit(&v, target)),
        },
        SqliteTarget::Bytea => match value {
            Value::Bytes(b) => Ok(Value::Bytes(b)),
            Value::Text(s) => Ok(Value::Bytes(s.into_bytes())),
            v => Err(misfit(&v, target)),
        },
        SqliteTarget::Date => match value {
            Value::Text(s) => match s.parse::<Date>() {
                Ok(d) if s.len() == 10 && d.is_valid() => Ok(Value::Date(d)),
                _ => Err(ConvertError::Unparsable { expected: "date" }),
            },
            v => Err(misfit(&v, target)),
        },
        SqliteTarget::Timestamp => match value {
            Value::Text(s) => match s.parse::<DateTime>() {
                Ok(d) if d.date.is_valid() && !s.ends_with(['Z', 'z']) => Ok(Value::DateTime(d)),
                _ => Err(ConvertError::Unparsable {
                    expected: "timestamp",
                }),
            },
            v => Err(misfit(&v, target)),
        },
    }
}

/// An integer as a decimal.
fn int_decimal(i: i64) -> Result<Decimal, ConvertError> {
    i.to_string().parse().map_err(|_| ConvertError::Unparsable {
        expected: "decimal",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affinity_follows_sqlite_rules_in_order() {
        for (t, a) in [
            ("INT", Affinity::Integer),
            ("INTEGER", Affinity::Integer),
            ("TINYINT", Affinity::Integer),
            ("UNSIGNED BIG INT", Affinity::Integer),
            ("INT8", Affinity::Integer),
            ("CHARINT", Affinity::Integer),
            ("POINT", Affinity::Integer),
            ("CHARACTER(20)", Affinity::Text),
            ("VARCHAR(255)", Affinity::Text),
            ("NATIVE CHARACTER(70)", Affinity::Text),
            ("CLOB", Affinity::Text),
            ("TEXT", Affinity::Text),
            ("BLOB", Affinity::Blob),
            ("", Affinity::Blob),
            ("REAL", Affinity::Real),
            ("DOUBLE PRECISION", Affinity::Real),
            ("FLOAT", Affinity::Real),
            ("NUMERIC", Affinity::Numeric),
            ("DECIMAL(10,5)", Affinity::Numeric),
            ("BOOLEAN", Affinity::Numeric),
            ("DATETIME", Affinity::Numeric),
            ("STRING", Affinity::Numeric),
            ("ANY", Affinity::Numeric),
            ("FLOATING POINT", Affinity::Integer),
        ] {
            assert_eq!(affinity(t), a, "{t}");
        }
    }

    #[test]
    fn declared_types_map_to_natural_targets() {
        for (t, pg) in [
            ("INTEGER", "bigint"),
            ("int", "bigint"),
            ("smallint", "bigint"),
            ("VARCHAR(20)", "character varying(20)"),
            ("nchar(5)", "character varying(5)"),
            ("varchar", "text"),
            ("TEXT", "text"),
            ("CLOB", "text"),
            ("BLOB", "bytea"),
            ("", "text"),
            ("ANY", "text"),
            ("REAL", "double precision"),
            ("DOUBLE", "double precision"),
            ("DECIMAL(10,2)", "numeric(10,2)"),
            ("numeric(5)", "numeric(5,0)"),
            ("NUMERIC", "numeric"),
            ("money", "numeric"),
            ("BOOLEAN", "boolean"),
            ("DATE", "date"),
            ("DATETIME", "timestamp(6) without time zone"),
            ("timestamp", "timestamp(6) without time zone"),
            ("JSON", "text"),
        ] {
            let target = map_sqlite_type(t);
            assert_eq!(target.pg_type(), pg, "{t}");
            assert_eq!(SqliteTarget::from_pg_type(pg), Some(target), "{pg}");
        }
    }

    #[test]
    fn reals_become_exact_shortest_decimals() {
        for (f, d) in [
            (0.1, "0.1"),
            (2.0, "2"),
            (-1.25e-3, "-0.00125"),
            (1e20, "100000000000000000000"),
            (123.456, "123.456"),
            (0.0, "0"),
        ] {
            assert_eq!(real_decimal(f).unwrap().as_str(), d, "{f}");
        }
        assert_eq!(real_decimal(f64::INFINITY), None);
        assert_eq!(real_text(2.0), "2.0");
        assert_eq!(real_text(1e300), "1e300");
    }

    #[test]
    fn values_convert_or_are_refused() {
        use SqliteTarget as T;
        let ok = |t: T, v: Value| convert_sqlite_value(&t, v).unwrap();
        let bad = |t: T, v: Value| convert_sqlite_value(&t, v).unwrap_err().to_string();
        assert_eq!(ok(T::BigInt, Value::Int(i64::MIN)), Value::Int(i64::MIN));
        assert!(bad(T::BigInt, Value::Text("x".into())).contains("text value"));
        assert!(bad(T::BigInt, Value::Double(1.5)).contains("real value"));
        assert_eq!(ok(T::Double, Value::Int(3)), Value::Double(3.0));
        assert!(bad(T::Double, Value::Int(i64::MAX)).contains("out of range"));
        assert_eq!(
            ok(T::Numeric(Some((10, 2))), Value::Double(10.5)),
            Value::Decimal("10.50".parse().unwrap())
        );
        assert!(bad(T::Numeric(Some((10, 2))), Value::Double(0.125)).contains("out of range"));
        assert!(bad(T::Numeric(Some((4, 2))), Value::Int(100)).contains("out of range"));
        assert_eq!(ok(T::Boolean, Value::Int(1)), Value::Bool(true));
        assert!(bad(T::Boolean, Value::Int(2)).contains("not a boolean"));
        assert_eq!(ok(T::Text, Value::Int(7)), Value::Text("7".into()));
        assert!(bad(T::Text, Value::Bytes(vec![0xff])).contains("blob"));
        assert!(bad(T::VarChar(2), Value::Text("äöü".into())).contains("3 characters"));
        assert_eq!(
            ok(T::VarChar(3), Value::Text("äöü".into())),
            Value::Text("äöü".into())
        );
        assert_eq!(
            ok(T::Bytea, Value::Text("a".into())),
            Value::Bytes(b"a".to_vec())
        );
        assert!(bad(T::Bytea, Value::Int(1)).contains("integer value"));
        assert_eq!(
            ok(T::Date, Value::Text("2024-02-29".into())),
            Value::Date(Date::new(2024, 2, 29))
        );
        assert!(bad(T::Date, Value::Text("2023-02-29".into())).contains("date"));
        assert_eq!(
            ok(T::Timestamp, Value::Text("2024-01-02T03:04:05.5".into())),
            Value::DateTime("2024-01-02 03:04:05.5".parse().unwrap())
        );
        assert!(bad(T::Timestamp, Value::Int(1_700_000_000)).contains("integer value"));
        assert_eq!(ok(T::BigInt, Value::Null), Value::Null);
    }
}
