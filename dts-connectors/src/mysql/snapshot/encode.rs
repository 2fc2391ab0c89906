//! Snapshot rows converted straight into PostgreSQL's binary `COPY` format, for a
//! PostgreSQL target ([`RowEncoding::PgBinaryCopy`]), without making [`Value`]s of them.
//!
//! Each column is converted exactly as the MySQL → PostgreSQL mapping converts it
//! ([`convert_mysql_value`]) and then encoded exactly as the PostgreSQL sink encodes the
//! converted value. Columns whose conversion is a plain re-encoding of the protocol's bytes
//! (integers into integers, text into text, bytes into `bytea`, decimals into a `numeric`
//! of the same scale) are written from the protocol value as it is, with the checks the
//! mapping and the encoder make; the others go through the mapping's own functions, one
//! value at a time. A value either way refuses or replaces (out of range, not UTF-8, a NUL
//! character, a zero date written as NULL, …) leaves its whole row as values: the engine
//! then converts it with the mapping and reports it as always, naming table, column and key.

use bytes::{BufMut, BytesMut};
use dts_core::{Column, Error, ErrorKind, Result, RowEncoding, Table};
use dts_typemap::{
    convert_mysql_value, map_mysql_column, ColumnMapping, MappingOptions, MySqlType, PgType,
};
use mysql_async::Value as M;

use super::decode::decode;
use crate::mysql::types::{MySqlColumn, ValueKind as Kind};
use crate::postgres::{put_field, write_numeric, PgCopyColumn, PgCopyEncoder};

/// The binary form of one column, chosen once per table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// An integer within the source type's range into `smallint`, `integer` or `bigint`.
    Int { lo: i128, hi: i128, width: IntWidth },
    /// UTF-8 text without NUL into `text`, `varchar(n)` or `character(n)`, at most
    /// `max_chars` characters (the source's and the target's limit).
    Text { max_chars: Option<usize> },
    /// Bytes into `bytea`: at most `max` bytes, exactly `exact` for `binary(n)`.
    Bytes { max: usize, exact: Option<usize> },
    /// A decimal's text into a `numeric` of the same scale: at most `max_int` integer
    /// digits, exactly `scale` fraction digits, not negative when `unsigned`.
    Decimal {
        max_int: usize,
        scale: usize,
        unsigned: bool,
    },
    /// Through the mapping's conversion and the sink's encoder.
    Mapped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IntWidth {
    Two,
    Four,
    Eight,
}

#[derive(Debug)]
struct Field {
    kind: Kind,
    mapping: ColumnMapping,
    form: Form,
}

/// Converts the rows of one table into binary `COPY` tuples of the target types named by a
/// [`RowEncoding::PgBinaryCopy`] (see the module documentation).
#[derive(Debug)]
pub(crate) struct PgRowEncoder {
    fields: Vec<Field>,
    field_count: i16,
    /// Encodes the values of [`Form::Mapped`] columns as the sink does.
    encoder: PgCopyEncoder,
    /// Scratch space for `numeric` digits.
    digits: Vec<i16>,
    options: MappingOptions,
}

/// The target type and type modifier of `mapping` as `pg_attribute` records them.
fn pg_type(mapping: &ColumnMapping) -> (u32, i32) {
    (mapping.target.oid(), mapping.target.typmod())
}

/// The columns' mappings by the default MySQL → PostgreSQL mapping, `None` when a column
/// has none.
fn default_mappings<'t>(columns: &[&'t Column]) -> Option<Vec<(&'t Column, ColumnMapping)>> {
    let options = MappingOptions::default();
    columns
        .iter()
        .map(|c| map_mysql_column(c, &options).ok().map(|m| (*c, m)))
        .collect()
}

impl PgRowEncoder {
    /// The encoding the rows of `columns` (the columns a reader reads) convert into by the
    /// default mapping, or `None` when a column has no mapping.
    pub(crate) fn offer(columns: &[&Column]) -> Option<RowEncoding> {
        let mappings = default_mappings(columns)?;
        Some(RowEncoding::PgBinaryCopy {
            types: mappings.iter().map(|(_, m)| pg_type(m)).collect(),
        })
    }

    /// The encoder of `columns` of `table` into `encoding`, which must be the one
    /// [`PgRowEncoder::offer`] gives for them.
    pub(crate) fn new(table: &Table, columns: &[&Column], encoding: &RowEncoding) -> Result<Self> {
        let refuse = || {
            Error::new(
                ErrorKind::Unsupported,
                format!("cannot read `{}` in {encoding:?}", table.name),
            )
        };
        let RowEncoding::PgBinaryCopy { types } = encoding else {
            return Err(refuse());
        };
        let mappings = default_mappings(columns).ok_or_else(refuse)?;
        if types.len() != mappings.len()
            || mappings
                .iter()
                .zip(types)
                .any(|((_, m), t)| pg_type(m) != *t)
        {
            return Err(refuse());
        }
        let mut fields = Vec::with_capacity(mappings.len());
        let mut copy_columns = Vec::with_capacity(mappings.len());
        for (column, mapping) in mappings {
            let kind = MySqlColumn::of(table, column)?.kind;
            let (oid, typmod) = pg_type(&mapping);
            copy_columns.push(PgCopyColumn::new(column.name.clone(), oid, typmod));
            let form = form(kind, &mapping);
            fields.push(Field {
                kind,
                mapping,
                form,
            });
        }
        let encoder = PgCopyEncoder::new(&copy_columns)?;
        Ok(Self {
            field_count: i16::try_from(fields.len())
                .map_err(|_| Error::internal(format!("too many columns in `{}`", table.name)))?,
            fields,
            encoder,
            digits: Vec::with_capacity(32),
            options: MappingOptions::default(),
        })
    }

    /// Appends `row` to `out` as one binary `COPY` tuple, or leaves `out` as it was and
    /// answers `false` when a value needs the mapping's judgement (the row then goes as
    /// values).
    pub(crate) fn encode_row(&mut self, row: &[Option<M>], out: &mut BytesMut) -> bool {
        if row.len() != self.fields.len() {
            return false;
        }
        let start = out.len();
        out.put_i16(self.field_count);
        for (i, value) in row.iter().enumerate() {
            let ok = match value {
                None | Some(M::NULL) => {
                    out.put_i32(-1);
                    true
                }
                Some(v) => self.encode_value(i, v, out),
            };
            if !ok {
                out.truncate(start);
                return false;
            }
        }
        true
    }

    /// Appends one value; a value the plain re-encoding does not cover goes through the
    /// mapping (which decides the rare cases: padding, trimming, errors).
    fn encode_value(&mut self, i: usize, value: &M, out: &mut BytesMut) -> bool {
        let done = match (self.fields[i].form, value) {
            (Form::Int { lo, hi, width }, M::Int(n)) => put_int(i128::from(*n), lo, hi, width, out),
            (Form::Int { lo, hi, width }, M::UInt(n)) => {
                put_int(i128::from(*n), lo, hi, width, out)
            }
            (Form::Text { max_chars }, M::Bytes(b)) => {
                !b.contains(&0)
                    && std::str::from_utf8(b).is_ok_and(|s| {
                        max_chars.is_none_or(|max| b.len() <= max || s.chars().count() <= max)
                    })
                    && put_field(b, out)
            }
            (Form::Bytes { max, exact }, M::Bytes(b)) => {
                b.len() <= max && exact.is_none_or(|n| b.len() == n) && put_field(b, out)
            }
            (
                Form::Decimal {
                    max_int,
                    scale,
                    unsigned,
                },
                M::Bytes(b),
            ) => match split_decimal(b) {
                Some((negative, int, frac))
                    if frac.len() == scale && int.len() <= max_int && !(unsigned && negative) =>
                {
                    write_numeric(negative, int, frac, &mut self.digits, out);
                    true
                }
                _ => false,
            },
            _ => false,
        };
        done || self.encode_mapped(i, value, out)
    }

    /// Converts one value with the mapping and encodes it as the sink does.
    fn encode_mapped(&mut self, i: usize, value: &M, out: &mut BytesMut) -> bool {
        let field = &self.fields[i];
        let Ok(decoded) = decode(field.kind, value.clone()) else {
            return false;
        };
        let Ok(converted) = convert_mysql_value(&field.mapping, decoded, &self.options) else {
            return false;
        };
        // A value replaced by NULL (a zero date) goes as a value: the engine's mapper
        // counts it.
        !converted.is_null() && self.encoder.encode_field(i, &converted, out).is_ok()
    }
}

/// An integer within the source type's range `lo..=hi`, into the target's width.
fn put_int(n: i128, lo: i128, hi: i128, width: IntWidth, out: &mut BytesMut) -> bool {
    if n < lo || n > hi {
        return false;
    }
    match width {
        IntWidth::Two => match i16::try_from(n) {
            Ok(n) => {
                out.put_i32(2);
                out.put_i16(n);
            }
            Err(_) => return false,
        },
        IntWidth::Four => match i32::try_from(n) {
            Ok(n) => {
                out.put_i32(4);
                out.put_i32(n);
            }
            Err(_) => return false,
        },
        IntWidth::Eight => match i64::try_from(n) {
            Ok(n) => {
                out.put_i32(8);
                out.put_i64(n);
            }
            Err(_) => return false,
        },
    }
    true
}

/// A decimal's text as MySQL writes it, `-?digits(.digits)?`: whether it is negative (and
/// not zero), its integer digits without leading zeros, and its fraction digits. `None`
/// for any other text.
fn split_decimal(b: &[u8]) -> Option<(bool, &[u8], &[u8])> {
    let (sign, body) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    let (int, frac) = match body.iter().position(|&c| c == b'.') {
        Some(dot) => (&body[..dot], &body[dot + 1..]),
        None => (body, &body[body.len()..]),
    };
    if int.is_empty() || !int.iter().all(u8::is_ascii_digit) || !frac.iter().all(u8::is_ascii_digit)
    {
        return None;
    }
    let int = &int[int.iter().position(|&c| c != b'0').unwrap_or(int.len())..];
    let zero = int.is_empty() && frac.iter().all(|&c| c == b'0');
    Some((sign && !zero, int, frac))
}

/// The form of a column of `kind` converted by `mapping`.
fn form(kind: Kind, mapping: &ColumnMapping) -> Form {
    let to_usize = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
    match (kind, &mapping.source, mapping.target) {
        (Kind::Int | Kind::UInt, source, target) => {
            let Some((lo, hi)) = source.integer_range() else {
                return Form::Mapped;
            };
            let width = match target {
                PgType::SmallInt => IntWidth::Two,
                PgType::Integer => IntWidth::Four,
                PgType::BigInt => IntWidth::Eight,
                _ => return Form::Mapped,
            };
            Form::Int { lo, hi, width }
        }
        (
            Kind::Text,
            MySqlType::Char(_)
            | MySqlType::VarChar(_)
            | MySqlType::TinyText
            | MySqlType::Text
            | MySqlType::MediumText
            | MySqlType::LongText,
            PgType::Text | PgType::VarChar(_) | PgType::Char(_),
        ) => {
            let source = match mapping.source {
                MySqlType::Char(n) | MySqlType::VarChar(n) => Some(to_usize(n)),
                _ => None,
            };
            let target = match mapping.target {
                PgType::Char(n) | PgType::VarChar(n) => Some(to_usize(n)),
                _ => None,
            };
            let max_chars = match (source, target) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            Form::Text { max_chars }
        }
        (Kind::Bytes, source, PgType::Bytea) => {
            let (max, exact) = match source {
                MySqlType::Binary(n) => (to_usize(*n), Some(to_usize(*n))),
                MySqlType::VarBinary(n) => (to_usize(*n), None),
                MySqlType::TinyBlob => (255, None),
                MySqlType::Blob => (65_535, None),
                MySqlType::MediumBlob => (16_777_215, None),
                MySqlType::LongBlob => (usize::MAX, None),
                _ => return Form::Mapped,
            };
            Form::Bytes { max, exact }
        }
        (
            Kind::Decimal,
            MySqlType::Decimal { precision, scale },
            PgType::Numeric {
                precision: target_precision,
                scale: target_scale,
            },
        ) if *scale == target_scale => Form::Decimal {
            max_int: usize::from(precision.saturating_sub(*scale))
                .min(usize::from(target_precision.saturating_sub(target_scale))),
            scale: usize::from(*scale),
            unsigned: mapping.unsigned,
        },
        _ => Form::Mapped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dts_core::{TableName, Value};

    fn table(columns: Vec<Column>) -> Table {
        Table {
            name: TableName::new("shop", "t"),
            columns,
            primary_key: None,
            indexes: Vec::new(),
            foreign_keys: Vec::new(),
            comment: None,
            estimated_rows: 1,
            auto_increment: None,
        }
    }

    fn column(source_type: &str) -> Column {
        Column {
            nullable: true,
            ..Column::new("c", source_type)
        }
    }

    /// The old path: the protocol value decoded, converted by the mapping, encoded by the
    /// sink's encoder; `None` where it fails or the mapping writes NULL for a value.
    fn by_values(table: &Table, value: &M) -> Option<Vec<u8>> {
        let column = &table.columns[0];
        let kind = MySqlColumn::of(table, column).unwrap().kind;
        let mapping = map_mysql_column(column, &MappingOptions::default()).unwrap();
        let decoded = decode(kind, value.clone()).ok()?;
        let converted = convert_mysql_value(&mapping, decoded, &MappingOptions::default()).ok()?;
        if converted.is_null() && *value != M::NULL {
            return None;
        }
        let (oid, typmod) = pg_type(&mapping);
        let mut encoder = PgCopyEncoder::new(&[PgCopyColumn::new("c", oid, typmod)]).unwrap();
        let mut out = BytesMut::new();
        encoder
            .encode_row(&[converted as Value], &mut out)
            .ok()
            .map(|()| out.to_vec())
    }

    fn straight(table: &Table, value: &M) -> Option<Vec<u8>> {
        let columns: Vec<&Column> = table.columns.iter().collect();
        let offered = PgRowEncoder::offer(&columns).unwrap();
        let mut encoder = PgRowEncoder::new(table, &columns, &offered).unwrap();
        let mut out = BytesMut::new();
        out.put_u8(7);
        let ok = encoder.encode_row(&[Some(value.clone())], &mut out);
        if ok {
            Some(out[1..].to_vec())
        } else {
            assert_eq!(&out[..], [7], "a refused row leaves the buffer as it was");
            None
        }
    }

    /// Every value converts straight exactly as through values, or is left to values; the
    /// `expected` ones convert straight.
    fn check(source_type: &str, values: &[(M, bool)]) {
        let t = table(vec![column(source_type)]);
        for (value, expected) in values {
            let old = by_values(&t, value);
            let new = straight(&t, value);
            if let Some(new) = &new {
                assert_eq!(
                    Some(new),
                    old.as_ref(),
                    "`{source_type}` {value:?}: converted straight unlike through values"
                );
            }
            assert_eq!(
                new.is_some(),
                *expected,
                "`{source_type}` {value:?}: straight {new:?}, through values {old:?}"
            );
        }
    }

    fn bytes(s: &str) -> M {
        M::Bytes(s.as_bytes().to_vec())
    }

    #[test]
    fn integers_convert_as_the_mapping_does() {
        check(
            "tinyint",
            &[
                (M::Int(-128), true),
                (M::Int(127), true),
                (M::Int(128), false),
                (M::UInt(5), true),
                (M::NULL, true),
                (bytes("12"), true),
            ],
        );
        check(
            "tinyint unsigned",
            &[
                (M::Int(-1), false),
                (M::UInt(255), true),
                (M::UInt(256), false),
            ],
        );
        check(
            "mediumint",
            &[(M::Int(-8_388_608), true), (M::Int(16_777_215), false)],
        );
        check(
            "int unsigned",
            &[(M::UInt(4_294_967_295), true), (M::Int(-1), false)],
        );
        check(
            "bigint",
            &[
                (M::Int(i64::MIN), true),
                (M::Int(i64::MAX), true),
                (M::UInt(u64::MAX), false),
            ],
        );
        // Into numeric(20,0), through the mapping.
        check(
            "bigint unsigned",
            &[
                (M::UInt(u64::MAX), true),
                (M::UInt(0), true),
                (M::Int(-1), false),
            ],
        );
        check("tinyint(1)", &[(M::Int(1), true), (M::Int(7), true)]);
        check(
            "year",
            &[
                (M::UInt(2024), true),
                (M::UInt(0), true),
                (M::UInt(1800), false),
            ],
        );
    }

    #[test]
    fn text_converts_as_the_mapping_does() {
        check(
            "varchar(4)",
            &[
                (bytes(""), true),
                (bytes("abcd"), true),
                (bytes("éééé"), true),
                (bytes("abcde"), false),
                (bytes("ééééé"), false),
                (bytes("a\0b"), false),
                (M::Bytes(vec![0xff, 0xfe]), false),
                (M::Int(3), false),
            ],
        );
        check("char(2)", &[(bytes("ab"), true), (bytes("abc"), false)]);
        check(
            "longtext",
            &[
                (bytes("tab\there\nnewline\\"), true),
                (bytes("emoji 😀"), true),
            ],
        );
        check("enum('a','b')", &[(bytes("a"), true), (bytes("c"), false)]);
        check("set('a','b')", &[(bytes("a,b"), true), (bytes("c"), false)]);
        check(
            "json",
            &[
                (bytes("{\"a\": [1, 2.50]}"), true),
                (bytes("{"), false),
                (bytes("\"\\u0000\""), false),
            ],
        );
    }

    #[test]
    fn bytes_convert_as_the_mapping_does() {
        check(
            "binary(4)",
            &[
                (M::Bytes(vec![0, 1, 2, 3]), true),
                (M::Bytes(vec![1]), true),
                (M::Bytes(vec![1, 2, 3, 4, 5]), false),
            ],
        );
        check(
            "varbinary(3)",
            &[
                (M::Bytes(vec![]), true),
                (M::Bytes(vec![0, 0, 0]), true),
                (M::Bytes(vec![0; 4]), false),
            ],
        );
        check(
            "tinyblob",
            &[
                (M::Bytes(vec![9; 255]), true),
                (M::Bytes(vec![9; 256]), false),
            ],
        );
        check("longblob", &[(M::Bytes(vec![0; 70_000]), true)]);
    }

    #[test]
    fn decimals_convert_as_the_mapping_does() {
        check(
            "decimal(12,2)",
            &[
                (bytes("0.00"), true),
                (bytes("-0.00"), true),
                (bytes("1.50"), true),
                (bytes("-1234567890.12"), true),
                (bytes("9999999999.99"), true),
                (bytes("10000000000.00"), false),
                (bytes("00012.30"), true),
                (bytes("1.5"), true),
                (bytes(" 1.50"), true),
                (bytes("1e5"), false),
                (bytes("."), false),
            ],
        );
        check(
            "decimal(10,2) unsigned",
            &[
                (bytes("12.00"), true),
                (bytes("-12.00"), false),
                (bytes("-0.00"), true),
            ],
        );
        check(
            "decimal(65,30)",
            &[
                (
                    bytes("-99999999999999999999999999999999999.999999999999999999999999999999"),
                    true,
                ),
                (bytes("0.000000000000000000000000000001"), true),
            ],
        );
        check(
            "decimal(5,0)",
            &[
                (bytes("-99999"), true),
                (bytes("0"), true),
                (bytes("100000"), false),
            ],
        );
        check(
            "decimal(4,4)",
            &[(bytes("0.1234"), true), (bytes("-0.0001"), true)],
        );
    }

    #[test]
    fn dates_times_and_the_rest_convert_as_the_mapping_does() {
        check(
            "datetime",
            &[
                (M::Date(2024, 2, 29, 12, 34, 56, 0), true),
                (M::Date(2024, 2, 29, 12, 34, 56, 5), false),
                (M::Date(0, 0, 0, 0, 0, 0, 0), false),
                (M::Date(2023, 2, 29, 0, 0, 0, 0), false),
            ],
        );
        check(
            "datetime(6)",
            &[(M::Date(9999, 12, 31, 23, 59, 59, 999_999), true)],
        );
        check(
            "date",
            &[
                (M::Date(1000, 1, 1, 0, 0, 0, 0), true),
                (M::Date(2024, 0, 1, 0, 0, 0, 0), false),
            ],
        );
        check(
            "timestamp(3)",
            &[(M::Date(2038, 1, 19, 3, 14, 7, 999_000), true)],
        );
        check(
            "time",
            &[
                (M::Time(true, 34, 22, 59, 59, 0), true),
                (M::Time(false, 0, 0, 0, 0, 1), false),
            ],
        );
        check(
            "float",
            &[(M::Float(-3.40282e38), true), (M::Float(-0.0), true)],
        );
        check(
            "double",
            &[(M::Double(0.1), true), (M::Double(f64::MIN_POSITIVE), true)],
        );
        check(
            "bit(10)",
            &[(M::Bytes(vec![2, 1]), true), (M::Bytes(vec![4, 0]), false)],
        );
    }

    #[test]
    fn a_row_converts_whole_or_not_at_all() {
        let t = table(vec![
            column("int"),
            column("varchar(2)"),
            column("decimal(4,2)"),
        ]);
        let columns: Vec<&Column> = t.columns.iter().collect();
        let offered = PgRowEncoder::offer(&columns).unwrap();
        assert_eq!(
            offered,
            RowEncoding::PgBinaryCopy {
                types: vec![(23, -1), (1043, 6), (1700, (4 << 16) + 2 + 4)]
            }
        );
        let mut encoder = PgRowEncoder::new(&t, &columns, &offered).unwrap();
        let mut out = BytesMut::new();
        assert!(encoder.encode_row(&[Some(M::Int(1)), Some(bytes("ab")), None], &mut out));
        let first = out.len();
        assert!(!encoder.encode_row(
            &[Some(M::Int(2)), Some(bytes("abc")), Some(bytes("1.00"))],
            &mut out
        ));
        assert_eq!(out.len(), first);
        // Another table's types are refused.
        let other = RowEncoding::PgBinaryCopy {
            types: vec![(20, -1), (1043, 6), (1700, (4 << 16) + 2 + 4)],
        };
        assert!(PgRowEncoder::new(&t, &columns, &other).is_err());
    }
}
