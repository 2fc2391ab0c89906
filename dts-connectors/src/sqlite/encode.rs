//! Rows of a SQLite read converted straight into PostgreSQL's binary `COPY` form, for a
//! PostgreSQL target ([`RowEncoding::PgBinaryCopy`]), without making a row of
//! [`Value`]s.
//!
//! Each stored value is converted exactly as the SQLite → PostgreSQL mapping converts it
//! ([`convert_sqlite_value`]) and encoded exactly as the PostgreSQL sink encodes the
//! converted value. Where the conversion is the stored bytes themselves (an integer into
//! `bigint`, a real into `double precision`, UTF-8 text into `text` or `varchar(n)`, a blob
//! into `bytea`) they are written as they are, with the mapping's checks; every other value
//! goes through the mapping's own function. A value the mapping refuses (a storage class
//! the column's type does not take, text too long, a NUL character, …) leaves its whole
//! row as values: the engine then converts it with the mapping and reports it as always,
//! naming table, column and key.

use bytes::{BufMut, BytesMut};
use dts_core::{Column, Error, ErrorKind, Result, RowEncoding, Table, Value};
use dts_typemap::sqlite::{convert_sqlite_value, map_sqlite_type, SqliteTarget};
use rusqlite::types::ValueRef;

use crate::postgres::{put_field, write_numeric, PgCopyColumn, PgCopyEncoder};

/// One stored value as a [`Value`] by its storage class: `Int`, `Double`, `Text`, `Bytes`
/// (a blob, or text that is not UTF-8) or `Null`.
pub(crate) fn value_of(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Double(f),
        ValueRef::Text(b) => match std::str::from_utf8(b) {
            Ok(s) => Value::Text(s.to_string()),
            Err(_) => Value::Bytes(b.to_vec()),
        },
        ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
    }
}

/// Converts the rows of one table into binary `COPY` tuples of the types the default
/// SQLite → PostgreSQL mapping gives its columns (see the module documentation).
#[derive(Debug)]
pub(crate) struct SqlitePgEncoder {
    targets: Vec<SqliteTarget>,
    field_count: i16,
    /// Encodes the converted values of the other columns as the sink does.
    encoder: PgCopyEncoder,
    /// Scratch space for a real's text and digits and for `numeric` digit groups.
    text: String,
    digits: Vec<u8>,
    int: Vec<u8>,
    frac: Vec<u8>,
    groups: Vec<i16>,
}

impl SqlitePgEncoder {
    /// The encoding the rows of `columns` (the columns a reader reads) convert into by the
    /// default mapping.
    pub(crate) fn offer(columns: &[&Column]) -> RowEncoding {
        RowEncoding::PgBinaryCopy {
            types: columns
                .iter()
                .map(|c| map_sqlite_type(&c.source_type).pg_type_id())
                .collect(),
        }
    }

    /// The encoder of `columns` of `table` into `encoding`, which must be the one
    /// [`SqlitePgEncoder::offer`] gives for them.
    pub(crate) fn new(table: &Table, columns: &[&Column], encoding: &RowEncoding) -> Result<Self> {
        if *encoding != Self::offer(columns) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("cannot read `{}` in {encoding:?}", table.name),
            ));
        }
        let targets: Vec<SqliteTarget> = columns
            .iter()
            .map(|c| map_sqlite_type(&c.source_type))
            .collect();
        let copy_columns: Vec<PgCopyColumn> = columns
            .iter()
            .zip(&targets)
            .map(|(c, t)| {
                let (oid, typmod) = t.pg_type_id();
                PgCopyColumn::new(c.name.clone(), oid, typmod)
            })
            .collect();
        Ok(Self {
            field_count: i16::try_from(targets.len())
                .map_err(|_| Error::internal(format!("too many columns in `{}`", table.name)))?,
            targets,
            encoder: PgCopyEncoder::new(&copy_columns)?,
            text: String::with_capacity(32),
            digits: Vec::with_capacity(32),
            int: Vec::with_capacity(32),
            frac: Vec::with_capacity(32),
            groups: Vec::with_capacity(16),
        })
    }

    /// Appends the first columns of `row` (one per column of the encoder) to `out` as one
    /// binary `COPY` tuple, or leaves `out` as it was and answers `false` when a value is
    /// one the mapping refuses (the row then goes as values).
    pub(crate) fn encode_row(&mut self, row: &rusqlite::Row<'_>, out: &mut BytesMut) -> bool {
        let start = out.len();
        out.put_i16(self.field_count);
        for i in 0..self.targets.len() {
            let ok = row.get_ref(i).is_ok_and(|v| self.encode_value(i, v, out));
            if !ok {
                out.truncate(start);
                return false;
            }
        }
        true
    }

    fn encode_value(&mut self, i: usize, value: ValueRef<'_>, out: &mut BytesMut) -> bool {
        match (self.targets[i], value) {
            (_, ValueRef::Null) => {
                out.put_i32(-1);
                true
            }
            (SqliteTarget::BigInt, ValueRef::Integer(n)) => {
                out.put_i32(8);
                out.put_i64(n);
                true
            }
            (SqliteTarget::Double, ValueRef::Real(f)) => {
                out.put_i32(8);
                out.put_f64(f);
                true
            }
            (SqliteTarget::Text, ValueRef::Text(b)) => {
                !b.contains(&0) && std::str::from_utf8(b).is_ok() && put_field(b, out)
            }
            (SqliteTarget::VarChar(n), ValueRef::Text(b)) => {
                let max = usize::try_from(n).unwrap_or(usize::MAX);
                !b.contains(&0)
                    && std::str::from_utf8(b)
                        .is_ok_and(|s| b.len() <= max || s.chars().count() <= max)
                    && put_field(b, out)
            }
            (SqliteTarget::Bytea, ValueRef::Blob(b) | ValueRef::Text(b)) => put_field(b, out),
            (SqliteTarget::Numeric(Some((p, s))), ValueRef::Real(f))
                if self.real_numeric(f, p, s, out) =>
            {
                true
            }
            (target, v) => match convert_sqlite_value(&target, value_of(v)) {
                Ok(Value::Text(s)) if s.contains('\0') => false,
                Ok(converted) => self.encoder.encode_field(i, &converted, out).is_ok(),
                Err(_) => false,
            },
        }
    }

    /// A non-zero finite real into `numeric(precision, scale)` as the mapping converts it:
    /// the shortest decimal that reads back as the real, which must fit without rounding,
    /// with exactly `scale` fraction digits. `false`, with nothing appended, for any other
    /// real, which then takes the mapping's own path.
    fn real_numeric(&mut self, f: f64, precision: u16, scale: u16, out: &mut BytesMut) -> bool {
        use std::fmt::Write as _;
        if !f.is_finite() || f == 0.0 {
            return false;
        }
        self.text.clear();
        // `{:e}` prints the shortest round-trip digits: `1.25e-3`.
        if write!(self.text, "{:e}", f.abs()).is_err() {
            return false;
        }
        let Some((mantissa, exponent)) = self.text.split_once('e') else {
            return false;
        };
        let Ok(exponent) = exponent.parse::<i32>() else {
            return false;
        };
        // The digits, the first not zero; the value is 0.d1d2… × 10^(exponent + 1).
        self.digits.clear();
        self.digits
            .extend(mantissa.bytes().filter(u8::is_ascii_digit));
        let digits = &self.digits;
        let scale = usize::from(scale);
        let max_int = usize::from(precision).saturating_sub(scale);
        self.int.clear();
        self.frac.clear();
        let fraction = if exponent >= 0 {
            let Ok(point) = usize::try_from(exponent + 1) else {
                return false;
            };
            if point > max_int {
                return false;
            }
            let whole = point.min(digits.len());
            self.int.extend_from_slice(&digits[..whole]);
            self.int.resize(point, b'0');
            &digits[whole..]
        } else {
            let Ok(zeros) = usize::try_from(-(exponent + 1)) else {
                return false;
            };
            if zeros >= scale {
                return false;
            }
            self.frac.resize(zeros, b'0');
            digits
        };
        self.frac.extend_from_slice(fraction);
        while self.frac.last() == Some(&b'0') {
            self.frac.pop();
        }
        if self.frac.len() > scale {
            return false;
        }
        self.frac.resize(scale, b'0');
        write_numeric(f < 0.0, &self.int, &self.frac, &mut self.groups, out);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dts_core::TableName;
    use rusqlite::types::Value as Bound;

    fn table(declared: &str) -> Table {
        Table {
            name: TableName::new("main", "t"),
            columns: vec![Column {
                nullable: true,
                ..Column::new("c", declared)
            }],
            primary_key: None,
            indexes: Vec::new(),
            foreign_keys: Vec::new(),
            comment: None,
            estimated_rows: 1,
            auto_increment: None,
        }
    }

    /// The values path: the stored value converted by the mapping, encoded by the sink's
    /// encoder; `None` where the mapping refuses it.
    fn by_values(declared: &str, value: ValueRef<'_>) -> Option<Vec<u8>> {
        let target = map_sqlite_type(declared);
        let converted = convert_sqlite_value(&target, value_of(value)).ok()?;
        if matches!(&converted, Value::Text(s) if s.contains('\0')) {
            return None;
        }
        let (oid, typmod) = target.pg_type_id();
        let mut encoder = PgCopyEncoder::new(&[PgCopyColumn::new("c", oid, typmod)]).unwrap();
        let mut out = BytesMut::new();
        encoder
            .encode_row(&[converted], &mut out)
            .ok()
            .map(|()| out.to_vec())
    }

    /// Every value, read back from SQLite with its storage class, converts straight
    /// exactly as through values, or is left to values; the `expected` ones convert
    /// straight.
    fn check(declared: &str, values: &[(Bound, bool)]) {
        let t = table(declared);
        let columns: Vec<&Column> = t.columns.iter().collect();
        let offered = SqlitePgEncoder::offer(&columns);
        let mut encoder = SqlitePgEncoder::new(&t, &columns, &offered).unwrap();
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for (value, expected) in values {
            let mut st = conn.prepare("SELECT ?1").unwrap();
            let mut rows = st.query([value]).unwrap();
            let row = rows.next().unwrap().unwrap();
            let old = by_values(declared, row.get_ref(0).unwrap());
            let mut out = BytesMut::new();
            out.put_u8(7);
            let new = if encoder.encode_row(row, &mut out) {
                Some(out[1..].to_vec())
            } else {
                assert_eq!(&out[..], [7], "a refused row leaves the buffer as it was");
                None
            };
            if let Some(new) = &new {
                assert_eq!(
                    Some(new),
                    old.as_ref(),
                    "`{declared}` {value:?}: converted straight unlike through values"
                );
            }
            assert_eq!(
                new.is_some(),
                *expected,
                "`{declared}` {value:?}: straight {new:?}, through values {old:?}"
            );
        }
    }

    fn text(s: &str) -> Bound {
        Bound::Text(s.into())
    }

    #[test]
    fn integers_reals_and_bytes_convert_as_the_mapping_does() {
        check(
            "integer",
            &[
                (Bound::Integer(0), true),
                (Bound::Integer(i64::MIN), true),
                (Bound::Integer(i64::MAX), true),
                (Bound::Null, true),
                (Bound::Real(1.5), false),
                (text("12"), false),
            ],
        );
        check(
            "real",
            &[
                (Bound::Real(-0.0), true),
                (Bound::Real(f64::MIN_POSITIVE), true),
                (Bound::Integer(3), true),
                (Bound::Integer(i64::MAX), false),
                (text("x"), false),
            ],
        );
        check(
            "blob",
            &[
                (Bound::Blob(vec![0, 255, 1]), true),
                (text("abc"), true),
                (Bound::Integer(1), false),
            ],
        );
    }

    #[test]
    fn text_converts_as_the_mapping_does() {
        check(
            "varchar(3)",
            &[
                (text("abc"), true),
                (text("né€"), true),
                (text("abcd"), false),
                (text("a\0b"), false),
                (Bound::Integer(12), false),
                (Bound::Blob(vec![1]), false),
            ],
        );
        check(
            "text",
            &[
                (text(""), true),
                (text("Zürich – 東京"), true),
                (Bound::Integer(-12), true),
                (Bound::Real(0.1), true),
                (text("nul\0"), false),
            ],
        );
        check(
            "datetime",
            &[
                (text("2024-02-29 23:59:59"), true),
                (text("2024-02-29T23:59:59.123456"), true),
                (text("2023-02-29 00:00:00"), false),
                (text("2024-01-01 00:00:00Z"), false),
                (Bound::Integer(0), false),
            ],
        );
    }

    #[test]
    fn reals_into_numerics_convert_as_the_mapping_does() {
        let mut reals = vec![
            0.0,
            -0.0,
            0.1,
            0.2,
            0.3,
            1.0,
            -1.0,
            2.5,
            100.0,
            99_999.99,
            9_999_999_999.99,
            10_000_000_000.0,
            0.005,
            0.01,
            -0.01,
            1e-3,
            123_456.785,
            1e20,
            1e-20,
            5e-324,
            f64::MAX,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        // (SQLite stores NaN as NULL: no stored value is NaN.)
        // Amounts in cents, and doubles that are not short decimals.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            #[allow(clippy::cast_precision_loss)]
            let cents = (x % 10_000_000_000) as f64 / 100.0;
            reals.push(if i % 2 == 0 { cents } else { -cents });
            reals.push(f64::from_bits(x >> 2) % 1e6);
        }
        for declared in [
            "decimal(12,2)",
            "numeric(5,0)",
            "decimal(30,10)",
            "numeric(4,4)",
        ] {
            let t = map_sqlite_type(declared);
            let values: Vec<(Bound, bool)> = reals
                .iter()
                .map(|&f| {
                    let fits = by_values(declared, ValueRef::Real(f)).is_some();
                    (Bound::Real(f), fits)
                })
                .collect();
            assert!(matches!(t, SqliteTarget::Numeric(Some(_))));
            check(declared, &values);
        }
        // Integers and unconstrained numerics take the mapping's path.
        check(
            "numeric",
            &[(Bound::Real(2.5), true), (Bound::Integer(7), true)],
        );
    }

    #[test]
    fn reals_that_fit_take_the_straight_path() {
        let t = table("decimal(12,2)");
        let columns: Vec<&Column> = t.columns.iter().collect();
        let offered = SqlitePgEncoder::offer(&columns);
        let mut encoder = SqlitePgEncoder::new(&t, &columns, &offered).unwrap();
        let mut out = BytesMut::new();
        for f in [1234.5, -0.01, 9_999_999_999.99, 100.0] {
            assert!(encoder.real_numeric(f, 12, 2, &mut out), "{f}");
        }
        for f in [0.001, 1e10, 0.0, f64::INFINITY] {
            assert!(!encoder.real_numeric(f, 12, 2, &mut out), "{f}");
        }
    }
}
