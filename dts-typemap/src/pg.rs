//! PostgreSQL column types that MySQL columns map to.

use std::fmt;

use dts_core::Value;

/// A PostgreSQL column type.
///
/// [`Display`](fmt::Display) writes the spelling PostgreSQL's `format_type()` returns
/// (`character varying(255)`, `timestamp(6) without time zone`), so a type read back from
/// the catalog compares equal as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PgType {
    /// `boolean`.
    Boolean,
    /// `smallint` (16 bits).
    SmallInt,
    /// `integer` (32 bits).
    Integer,
    /// `bigint` (64 bits).
    BigInt,
    /// `numeric(p,s)`.
    Numeric {
        /// Total number of digits.
        precision: u8,
        /// Number of fraction digits.
        scale: u8,
    },
    /// `real` (IEEE single precision).
    Real,
    /// `double precision`.
    Double,
    /// `character(n)` (blank padded).
    Char(u32),
    /// `character varying(n)`.
    VarChar(u32),
    /// `text`.
    Text,
    /// `bytea`.
    Bytea,
    /// `date`.
    Date,
    /// `timestamp(p) without time zone`.
    Timestamp(u8),
    /// `timestamp(p) with time zone`.
    TimestampTz(u8),
    /// `time(p) without time zone`.
    Time(u8),
    /// `interval hour to second(p)`.
    Interval(u8),
    /// `jsonb`.
    Jsonb,
    /// `bit(n)`.
    Bit(u8),
}

impl PgType {
    /// The type's OID in `pg_type` (the same on every PostgreSQL server), as binary `COPY`
    /// and the wire protocol name it.
    pub fn oid(&self) -> u32 {
        match self {
            PgType::Boolean => 16,
            PgType::Bytea => 17,
            PgType::BigInt => 20,
            PgType::SmallInt => 21,
            PgType::Integer => 23,
            PgType::Text => 25,
            PgType::Real => 700,
            PgType::Double => 701,
            PgType::Char(_) => 1042,
            PgType::VarChar(_) => 1043,
            PgType::Date => 1082,
            PgType::Time(_) => 1083,
            PgType::Timestamp(_) => 1114,
            PgType::TimestampTz(_) => 1184,
            PgType::Interval(_) => 1186,
            PgType::Bit(_) => 1560,
            PgType::Numeric { .. } => 1700,
            PgType::Jsonb => 3802,
        }
    }

    /// The type modifier a column of this type has in `pg_attribute.atttypmod`, as binary
    /// `COPY` and the catalog name it: `-1` for a type without one.
    pub fn typmod(&self) -> i32 {
        /// `INTERVAL_MASK(HOUR) | INTERVAL_MASK(MINUTE) | INTERVAL_MASK(SECOND)`.
        const HOUR_TO_SECOND: i32 = (1 << 10) | (1 << 11) | (1 << 12);
        match *self {
            PgType::Numeric { precision, scale } => {
                ((i32::from(precision) << 16) | i32::from(scale)) + 4
            }
            PgType::Char(n) | PgType::VarChar(n) => i32::try_from(n)
                .ok()
                .and_then(|n| n.checked_add(4))
                .unwrap_or(-1),
            PgType::Timestamp(p) | PgType::TimestampTz(p) | PgType::Time(p) => i32::from(p),
            PgType::Interval(p) => (HOUR_TO_SECOND << 16) | i32::from(p),
            PgType::Bit(n) => i32::from(n),
            PgType::Boolean
            | PgType::SmallInt
            | PgType::Integer
            | PgType::BigInt
            | PgType::Real
            | PgType::Double
            | PgType::Text
            | PgType::Bytea
            | PgType::Date
            | PgType::Jsonb => -1,
        }
    }

    /// The type name without modifiers, as in `pg_type.typname` (`int4`, `varchar`,
    /// `timestamptz`).
    pub fn type_name(&self) -> &'static str {
        match self {
            PgType::Boolean => "bool",
            PgType::SmallInt => "int2",
            PgType::Integer => "int4",
            PgType::BigInt => "int8",
            PgType::Numeric { .. } => "numeric",
            PgType::Real => "float4",
            PgType::Double => "float8",
            PgType::Char(_) => "bpchar",
            PgType::VarChar(_) => "varchar",
            PgType::Text => "text",
            PgType::Bytea => "bytea",
            PgType::Date => "date",
            PgType::Timestamp(_) => "timestamp",
            PgType::TimestampTz(_) => "timestamptz",
            PgType::Time(_) => "time",
            PgType::Interval(_) => "interval",
            PgType::Jsonb => "jsonb",
            PgType::Bit(_) => "bit",
        }
    }
}

impl fmt::Display for PgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgType::Boolean => f.write_str("boolean"),
            PgType::SmallInt => f.write_str("smallint"),
            PgType::Integer => f.write_str("integer"),
            PgType::BigInt => f.write_str("bigint"),
            PgType::Numeric { precision, scale } => write!(f, "numeric({precision},{scale})"),
            PgType::Real => f.write_str("real"),
            PgType::Double => f.write_str("double precision"),
            PgType::Char(n) => write!(f, "character({n})"),
            PgType::VarChar(n) => write!(f, "character varying({n})"),
            PgType::Text => f.write_str("text"),
            PgType::Bytea => f.write_str("bytea"),
            PgType::Date => f.write_str("date"),
            PgType::Timestamp(p) => write!(f, "timestamp({p}) without time zone"),
            PgType::TimestampTz(p) => write!(f, "timestamp({p}) with time zone"),
            PgType::Time(p) => write!(f, "time({p}) without time zone"),
            PgType::Interval(p) => write!(f, "interval hour to second({p})"),
            PgType::Jsonb => f.write_str("jsonb"),
            PgType::Bit(n) => write!(f, "bit({n})"),
        }
    }
}

/// The literal quoting of [`crate::quote`], kept here for callers that name it by this path.
pub use crate::quote::quote_literal;

fn float_text(is_nan: bool, is_infinite: bool, negative: bool, shortest: String) -> String {
    if is_nan {
        "NaN".into()
    } else if is_infinite && negative {
        "-Infinity".into()
    } else if is_infinite {
        "Infinity".into()
    } else {
        shortest
    }
}

/// A [`Value`] as a PostgreSQL constant of type `target`, e.g. for a `DEFAULT` clause:
/// numbers bare (`-5`, `1.50`), other values quoted and cast (`'2024-01-02'::date`), bytes
/// through `decode('…', 'hex')`, bit strings as `B'101'`. Floats are written in their
/// shortest round-trip form, which PostgreSQL reads back to the same bits (NaN payloads
/// aside). A [`Value::Timestamp`] is written in UTC (`+00`).
pub fn sql_literal(value: &Value, target: PgType) -> String {
    match value {
        Value::Null => "NULL".into(),
        Value::Bool(b) => if *b { "true" } else { "false" }.into(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Year(y) => y.to_string(),
        Value::Decimal(d) => d.to_string(),
        Value::Float(f) => {
            let t = float_text(f.is_nan(), f.is_infinite(), *f < 0.0, format!("{f:?}"));
            format!("'{t}'::{target}")
        }
        Value::Double(d) => {
            let t = float_text(d.is_nan(), d.is_infinite(), *d < 0.0, format!("{d:?}"));
            format!("'{t}'::{target}")
        }
        Value::Text(s) | Value::Json(s) => format!("{}::{target}", quote_literal(s)),
        Value::Bytes(b) => {
            let mut hex = String::with_capacity(b.len() * 2);
            for byte in b {
                hex.push_str(&format!("{byte:02x}"));
            }
            format!("decode('{hex}', 'hex')")
        }
        Value::Date(d) => format!("'{d}'::{target}"),
        Value::DateTime(dt) => format!("'{dt}'::{target}"),
        Value::Timestamp(dt) => format!("'{dt}+00'::{target}"),
        Value::Time(t) => format!("'{t}'::{target}"),
        Value::Bits(b) => format!("B'{b}'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_match_format_type() {
        // What PostgreSQL 15's format_type() returns for each type.
        for (t, s, oid) in [
            (PgType::Boolean, "boolean", 16),
            (PgType::SmallInt, "smallint", 21),
            (PgType::Integer, "integer", 23),
            (PgType::BigInt, "bigint", 20),
            (
                PgType::Numeric {
                    precision: 20,
                    scale: 0,
                },
                "numeric(20,0)",
                1700,
            ),
            (PgType::Real, "real", 700),
            (PgType::Double, "double precision", 701),
            (PgType::Char(10), "character(10)", 1042),
            (PgType::VarChar(255), "character varying(255)", 1043),
            (PgType::Text, "text", 25),
            (PgType::Bytea, "bytea", 17),
            (PgType::Date, "date", 1082),
            (PgType::Timestamp(6), "timestamp(6) without time zone", 1114),
            (PgType::TimestampTz(0), "timestamp(0) with time zone", 1184),
            (PgType::Time(3), "time(3) without time zone", 1083),
            (PgType::Interval(3), "interval hour to second(3)", 1186),
            (PgType::Jsonb, "jsonb", 3802),
            (PgType::Bit(64), "bit(64)", 1560),
        ] {
            assert_eq!(t.to_string(), s);
            assert_eq!(t.oid(), oid, "{s}");
        }
        assert_eq!(PgType::TimestampTz(6).type_name(), "timestamptz");
    }

    #[test]
    fn typmods_match_the_catalog() {
        // What PostgreSQL 15's pg_attribute.atttypmod holds for columns of each type.
        for (t, typmod) in [
            (PgType::Boolean, -1),
            (PgType::BigInt, -1),
            (
                PgType::Numeric {
                    precision: 12,
                    scale: 2,
                },
                786_438,
            ),
            (PgType::Char(10), 14),
            (PgType::VarChar(255), 259),
            (PgType::Text, -1),
            (PgType::Timestamp(6), 6),
            (PgType::TimestampTz(0), 0),
            (PgType::Time(3), 3),
            (PgType::Interval(3), 469_762_051),
            (PgType::Bit(64), 64),
            (PgType::Jsonb, -1),
        ] {
            assert_eq!(t.typmod(), typmod, "{t}");
        }
    }

    #[test]
    fn values_as_constants() {
        use dts_core::{BitString, Date};
        assert_eq!(sql_literal(&Value::Null, PgType::Text), "NULL");
        assert_eq!(sql_literal(&Value::Int(-5), PgType::SmallInt), "-5");
        assert_eq!(
            sql_literal(&Value::Float(f32::NAN), PgType::Real),
            "'NaN'::real"
        );
        assert_eq!(
            sql_literal(&Value::Double(f64::NEG_INFINITY), PgType::Double),
            "'-Infinity'::double precision"
        );
        assert_eq!(
            sql_literal(&Value::Float(-0.0), PgType::Real),
            "'-0.0'::real"
        );
        assert_eq!(
            sql_literal(&Value::Float(f32::MAX), PgType::Real),
            "'3.4028235e38'::real"
        );
        assert_eq!(
            sql_literal(&Value::Bytes(vec![0, 0xab]), PgType::Bytea),
            "decode('00ab', 'hex')"
        );
        assert_eq!(
            sql_literal(&Value::Date(Date::new(1000, 1, 1)), PgType::Date),
            "'1000-01-01'::date"
        );
        assert_eq!(
            sql_literal(&Value::Bits(BitString::new(3, 5).unwrap()), PgType::Bit(3)),
            "B'101'"
        );
        assert_eq!(
            sql_literal(&Value::Json("{\"a\":1}".into()), PgType::Jsonb),
            "'{\"a\":1}'::jsonb"
        );
    }
}
