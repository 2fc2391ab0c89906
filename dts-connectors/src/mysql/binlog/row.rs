//! Row images: a table map turned into column decoders, and rows decoded into [`Value`]s of
//! the same shapes the snapshot reader produces.
//!
//! Signedness, column names and character sets come from the table map's optional metadata
//! (read by mysql_common, but for the signedness bitmap, whose columns differ between MySQL
//! and MariaDB), which the server writes in full only with
//! `binlog_row_metadata=FULL`.
//!
//! Row values are decoded here rather than by mysql_common's `RowsEvent::rows`, which leaves
//! signed MEDIUMINT without its sign, TIMESTAMP as epoch seconds, ENUM as its index, SET as
//! its bit mask, YEAR 0000 as 1900, strings undecoded, and parses the table map's optional
//! metadata again for every row. One [`TableDecoder`] per table map serves every row. The
//! parts of dates, times and bit strings become values through the functions the snapshot
//! reader uses too (`mysql::types`).

use std::sync::Arc;

use dts_core::{DateTime, TableName, Value};
use mysql_async::binlog::events::{
    ColumnCharsets, ColumnNames, DefaultCharset, EnumsStrValues, OptionalMetadataField,
    SetsStrValues, TableMapEvent,
};
use mysql_async::consts::UnknownColumnType;

use super::super::types;
use super::charset::{Charset, CharsetMap};
use super::decimal::{decimal_len, decode_decimal};
use super::event::{be_uint, Malformed, Parse, Reader};
use super::jsonb::jsonb_to_text;
use super::reader::Flavor;

/// Column type codes of the table map.
mod ty {
    pub const DECIMAL: u8 = 0;
    pub const TINY: u8 = 1;
    pub const SHORT: u8 = 2;
    pub const LONG: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const DOUBLE: u8 = 5;
    pub const TIMESTAMP: u8 = 7;
    pub const LONGLONG: u8 = 8;
    pub const INT24: u8 = 9;
    pub const DATE: u8 = 10;
    pub const TIME: u8 = 11;
    pub const DATETIME: u8 = 12;
    pub const YEAR: u8 = 13;
    pub const NEWDATE: u8 = 14;
    pub const VARCHAR: u8 = 15;
    pub const BIT: u8 = 16;
    pub const TIMESTAMP2: u8 = 17;
    pub const DATETIME2: u8 = 18;
    pub const TIME2: u8 = 19;
    pub const VECTOR: u8 = 242;
    pub const JSON: u8 = 245;
    pub const NEWDECIMAL: u8 = 246;
    pub const ENUM: u8 = 247;
    pub const SET: u8 = 248;
    pub const TINY_BLOB: u8 = 249;
    pub const MEDIUM_BLOB: u8 = 250;
    pub const LONG_BLOB: u8 = 251;
    pub const BLOB: u8 = 252;
    pub const VAR_STRING: u8 = 253;
    pub const STRING: u8 = 254;
    pub const GEOMETRY: u8 = 255;
}

/// Why a table map or a row could not be turned into values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RowError {
    /// The bytes do not follow the format.
    Malformed(&'static str),
    /// The table map lacks metadata `binlog_row_metadata=FULL` provides.
    NoMetadata(&'static str),
    /// A column type this reader cannot decode (column name, type name).
    UnsupportedType(String, String),
    /// A character set this reader cannot convert (column name, character set).
    UnsupportedCharset(String, String),
    /// A value that is invalid for its column (column index, what).
    InvalidValue(usize, &'static str),
    /// A row image without every column (`binlog_row_image` is not `FULL`).
    PartialImage,
    /// A partial JSON update (`binlog_row_value_options=PARTIAL_JSON`).
    PartialJson(usize),
}

impl From<Malformed> for RowError {
    fn from(m: Malformed) -> Self {
        RowError::Malformed(m.0)
    }
}

/// How one column's values are decoded.
#[derive(Debug, Clone, PartialEq)]
enum Decoder {
    Int {
        width: usize,
        unsigned: bool,
    },
    Year,
    Float,
    Double,
    Decimal {
        precision: u8,
        scale: u8,
    },
    Bit {
        len: u8,
        bytes: usize,
    },
    /// CHAR/VARCHAR/BINARY/VARBINARY: a 1- or 2-byte length, then the bytes.
    Str {
        len_bytes: usize,
        charset: Charset,
    },
    /// TEXT/BLOB: a 1- to 4-byte length, then the bytes.
    Blob {
        len_bytes: usize,
        charset: Charset,
    },
    Enum {
        pack: usize,
        members: Option<Arc<[String]>>,
    },
    Set {
        pack: usize,
        members: Option<Arc<[String]>>,
    },
    Json {
        len_bytes: usize,
    },
    Date,
    Time,
    Time2 {
        fsp: u8,
    },
    DateTime,
    DateTime2 {
        fsp: u8,
    },
    Timestamp,
    Timestamp2 {
        fsp: u8,
    },
}

/// What a table map says about a table, ready to decode its rows.
#[derive(Debug, Clone)]
pub(crate) struct TableDecoder {
    /// The table.
    pub name: TableName,
    /// Column names in table order.
    pub columns: Arc<Vec<String>>,
    decoders: Vec<Decoder>,
    /// Positions of JSON columns among the table's columns, in order.
    json_columns: Vec<usize>,
}

/// The type and metadata of one column, as mysql_common reads them from the table map.
struct ColumnDef<'a> {
    /// The real type (ENUM/SET/STRING for logged STRING).
    real: u8,
    metadata: &'a [u8],
}

fn type_name(t: u8) -> String {
    match t {
        ty::GEOMETRY => "geometry".to_string(),
        ty::VECTOR => "vector".to_string(),
        ty::DECIMAL => "decimal (pre-5.0 format)".to_string(),
        other => format!("binlog column type {other}"),
    }
}

/// Numeric columns, over which the signedness bitmap runs: one bit per such column, in
/// column order.
///
/// The servers disagree on which columns count. MySQL (`is_numeric_type` of its table map
/// writer) counts the integer types, NEWDECIMAL, FLOAT and DOUBLE, and not YEAR; MariaDB
/// counts every field with a signedness, which YEAR (a TINYINT underneath) has. Counting
/// YEAR on MySQL would read every later column's flag from its neighbour's slot.
fn is_numeric(real: u8, flavor: Flavor) -> bool {
    match real {
        ty::TINY
        | ty::SHORT
        | ty::INT24
        | ty::LONG
        | ty::LONGLONG
        | ty::NEWDECIMAL
        | ty::FLOAT
        | ty::DOUBLE => true,
        ty::YEAR | ty::DECIMAL => flavor == Flavor::MariaDb,
        _ => false,
    }
}

/// Character columns, over which the column character sets run (ENUM and SET have their
/// own list).
fn is_character(real: u8) -> bool {
    matches!(
        real,
        ty::STRING
            | ty::VAR_STRING
            | ty::VARCHAR
            | ty::TINY_BLOB
            | ty::MEDIUM_BLOB
            | ty::LONG_BLOB
            | ty::BLOB
    )
}

fn is_enum_or_set(real: u8) -> bool {
    matches!(real, ty::ENUM | ty::SET)
}

/// The optional metadata fields dts uses, as mysql_common parses them.
#[derive(Default)]
struct Optional<'a> {
    /// Unsignedness of the numeric columns, in order.
    unsigned: Option<Vec<bool>>,
    default_charset: Option<DefaultCharset<'a>>,
    column_charset: Option<ColumnCharsets<'a>>,
    names: Option<ColumnNames<'a>>,
    set_values: Option<SetsStrValues<'a>>,
    enum_values: Option<EnumsStrValues<'a>>,
    enum_set_default_charset: Option<DefaultCharset<'a>>,
    enum_set_column_charset: Option<ColumnCharsets<'a>>,
}

/// A table map's optional metadata that mysql_common could not read.
const BAD_OPTIONAL: RowError = RowError::Malformed("invalid optional metadata");

/// The optional metadata field type of the signedness bitmap.
const SIGNEDNESS: u8 = 1;

/// The optional metadata of a table map `body` (the event without header and checksum):
/// what follows the null bitmap, walked over the documented layout.
fn raw_optional_metadata(body: &[u8]) -> Result<&[u8], RowError> {
    let mut r = Reader::new(body);
    r.take(6 + 2)?; // table id, flags
    for _ in 0..2 {
        // schema and table: length, name, NUL
        let len = r.u8()?;
        r.take(usize::from(len) + 1)?;
    }
    let columns = usize::try_from(r.lenenc()?).map_err(|_| RowError::Malformed("column count"))?;
    r.take(columns)?; // types
    let meta = usize::try_from(r.lenenc()?).map_err(|_| RowError::Malformed("column metadata"))?;
    r.take(meta)?;
    r.take(columns.div_ceil(8))?; // null bitmap
    Ok(r.rest())
}

/// The type of every field of raw optional metadata, and the signedness bitmap's bytes.
fn optional_fields(optional: &[u8]) -> Result<(Vec<u8>, Option<&[u8]>), RowError> {
    let mut r = Reader::new(optional);
    let (mut types, mut signedness) = (Vec::new(), None);
    while !r.is_empty() {
        let t = r.u8()?;
        let len = usize::try_from(r.lenenc()?).map_err(|_| BAD_OPTIONAL)?;
        let value = r.take(len)?;
        if t == SIGNEDNESS {
            signedness = Some(value);
        }
        types.push(t);
    }
    Ok((types, signedness))
}

impl<'a> Optional<'a> {
    /// Reads the optional metadata of `map`, whose event body is `body`, for a server of
    /// `flavor` with `numeric` numeric columns.
    ///
    /// mysql_common counts YEAR among the numeric columns whatever the server; the
    /// signedness bitmap is therefore read here from the raw field, and mysql_common's
    /// reading of that one field (wrong, or an error, for MySQL) is ignored.
    fn parse(map: &'a TableMapEvent<'a>, body: &[u8], numeric: usize) -> Result<Self, RowError> {
        let mut out = Self::default();
        let (types, signedness) = optional_fields(raw_optional_metadata(body)?)?;
        if let Some(bits) = signedness {
            if bits.len() < numeric.div_ceil(8) {
                return Err(RowError::Malformed("signedness bitmap ends early"));
            }
            // The first numeric column is the most significant bit of the first byte.
            out.unsigned = Some(
                (0..numeric)
                    .map(|i| bits[i / 8] & (0x80 >> (i % 8)) != 0)
                    .collect(),
            );
        }
        // mysql_common reads one field per step, so its fields pair with the types read here.
        for (field, t) in map.iter_optional_meta().zip(types) {
            if t == SIGNEDNESS {
                continue;
            }
            let field = match field {
                Ok(field) => field,
                // A field type newer than mysql_common (it has consumed the field, and the
                // walk goes on): dts needs none of those.
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => continue,
                Err(_) => return Err(BAD_OPTIONAL),
            };
            match field {
                OptionalMetadataField::DefaultCharset(c) => out.default_charset = Some(c),
                OptionalMetadataField::ColumnCharset(c) => out.column_charset = Some(c),
                OptionalMetadataField::ColumnName(n) => out.names = Some(n),
                OptionalMetadataField::SetStrValue(v) => out.set_values = Some(v),
                OptionalMetadataField::EnumStrValue(v) => out.enum_values = Some(v),
                OptionalMetadataField::EnumAndSetDefaultCharset(c) => {
                    out.enum_set_default_charset = Some(c);
                }
                OptionalMetadataField::EnumAndSetColumnCharset(c) => {
                    out.enum_set_column_charset = Some(c);
                }
                _ => {} // primary keys, geometry types, visibility, …
            }
        }
        Ok(out)
    }
}

/// Collation ids of `count` columns from a `DEFAULT_CHARSET` field (a default, then
/// `(index, collation)` exceptions) or a per-column `COLUMN_CHARSET` field.
fn collations(
    default: Option<&DefaultCharset<'_>>,
    per_column: Option<&ColumnCharsets<'_>>,
    count: usize,
) -> Result<Option<Vec<u16>>, RowError> {
    if let Some(per_column) = per_column {
        let out = per_column
            .iter_charsets()
            .take(count)
            .collect::<Result<Vec<u16>, _>>()
            .map_err(|_| BAD_OPTIONAL)?;
        if out.len() < count {
            return Err(RowError::Malformed("event ends early"));
        }
        return Ok(Some(out));
    }
    let Some(default) = default else {
        return Ok(None);
    };
    let mut out = vec![default.default_charset(); count];
    for exception in default.iter_non_default() {
        let exception = exception.map_err(|_| BAD_OPTIONAL)?;
        *usize::try_from(exception.column_index())
            .ok()
            .and_then(|i| out.get_mut(i))
            .ok_or(RowError::Malformed(
                "charset exception for a missing column",
            ))? = exception.charset();
    }
    Ok(Some(out))
}

/// The member lists of `count` ENUM (or SET) columns, decoded in their character sets.
fn member_lists(
    lists: Option<Vec<Vec<Vec<u8>>>>,
    count: usize,
    charsets: &[Charset],
) -> Result<Vec<Option<Arc<[String]>>>, RowError> {
    let Some(lists) = lists else {
        return Ok(vec![None; count]);
    };
    if lists.len() < count {
        return Err(RowError::Malformed("event ends early"));
    }
    let mut out = Vec::with_capacity(count);
    for (i, raw_members) in lists.into_iter().take(count).enumerate() {
        let cs = charsets.get(i).cloned().unwrap_or(Charset::Utf8);
        let members: Vec<String> = raw_members
            .iter()
            .map(|raw| {
                cs.decode(raw)
                    .unwrap_or_else(|| String::from_utf8_lossy(raw).into_owned())
            })
            .collect();
        out.push(Some(members.into()));
    }
    Ok(out)
}

/// Bit `i` of a bitmap whose bits count from the least significant bit of each byte.
fn bit(bitmap: &[u8], i: usize) -> bool {
    bitmap.get(i / 8).copied().unwrap_or(0) & (1 << (i % 8)) != 0
}

impl TableDecoder {
    /// Builds the decoders of a table map.
    ///
    /// # Errors
    ///
    /// [`RowError::NoMetadata`] when column names or signedness are missing (the server's
    /// `binlog_row_metadata` is not `FULL`), [`RowError::UnsupportedType`] for geometry and
    /// other types without a lossless value, [`RowError::UnsupportedCharset`] for character
    /// sets this reader cannot convert.
    pub fn new(
        map: &TableMapEvent<'_>,
        body: &[u8],
        flavor: Flavor,
        charset_map: &CharsetMap,
    ) -> Result<Self, RowError> {
        let name = TableName::new(
            String::from_utf8_lossy(map.database_name_raw()),
            String::from_utf8_lossy(map.table_name_raw()),
        );
        let n = usize::try_from(map.columns_count())
            .map_err(|_| RowError::Malformed("column count"))?;
        // Numeric types are logged as themselves (only strings are logged as another type).
        let numeric = (0..n)
            .filter(|&i| {
                matches!(map.get_raw_column_type(i), Ok(Some(t)) if is_numeric(t as u8, flavor))
            })
            .count();
        let opt = Optional::parse(map, body, numeric)?;
        let names: Vec<String> = {
            let names = opt
                .names
                .as_ref()
                .ok_or(RowError::NoMetadata("column names"))?;
            let names = names
                .iter_names()
                .take(n)
                .map(|c| c.map(|c| String::from_utf8_lossy(c.name_raw()).into_owned()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| BAD_OPTIONAL)?;
            if names.len() < n {
                return Err(RowError::Malformed("event ends early"));
            }
            names
        };
        let mut defs = Vec::with_capacity(n);
        for (i, column_name) in names.iter().enumerate() {
            let logged: u8 = match map.get_raw_column_type(i) {
                Ok(Some(t)) => t as u8,
                Ok(None) => return Err(RowError::Malformed("column count")),
                Err(UnknownColumnType(t)) => {
                    return Err(RowError::UnsupportedType(column_name.clone(), type_name(t)))
                }
            };
            // mysql_common finds each column's metadata (walking the ones before it) and the
            // real type of a logged STRING (ENUM, SET or STRING, from the metadata).
            let metadata = map
                .get_column_metadata(i)
                .ok_or(RowError::Malformed("event ends early"))?;
            let real = match map.get_column_type(i) {
                Ok(Some(t)) if logged == ty::STRING => t as u8,
                Ok(_) => logged,
                Err(_) => return Err(RowError::Malformed("invalid real type of a string column")),
            };
            defs.push(ColumnDef { real, metadata });
        }
        let signedness: &[bool] = match &opt.unsigned {
            Some(s) => s,
            None if numeric == 0 => &[],
            None => return Err(RowError::NoMetadata("column signedness")),
        };
        let character = defs.iter().filter(|d| is_character(d.real)).count();
        let char_collations = collations(
            opt.default_charset.as_ref(),
            opt.column_charset.as_ref(),
            character,
        )?;
        if character > 0 && char_collations.is_none() {
            return Err(RowError::NoMetadata("column character sets"));
        }
        let enum_set = defs.iter().filter(|d| is_enum_or_set(d.real)).count();
        let enum_set_collations = collations(
            opt.enum_set_default_charset.as_ref(),
            opt.enum_set_column_charset.as_ref(),
            enum_set,
        )?
        .unwrap_or_default();
        let enum_set_charsets: Vec<Charset> = enum_set_collations
            .iter()
            .map(|&c| charset_map.get(c).unwrap_or(Charset::Utf8))
            .collect();
        // ENUM and SET charsets, split by kind in column order.
        let (mut enum_cs, mut set_cs) = (Vec::new(), Vec::new());
        for (d, cs) in defs.iter().filter(|d| is_enum_or_set(d.real)).zip(
            enum_set_charsets
                .iter()
                .cloned()
                .chain(std::iter::repeat(Charset::Utf8)),
        ) {
            if d.real == ty::ENUM {
                enum_cs.push(cs);
            } else {
                set_cs.push(cs);
            }
        }
        let enum_count = enum_cs.len();
        let set_count = set_cs.len();
        let enum_lists = match &opt.enum_values {
            Some(v) => Some(
                v.iter_values()
                    .map(|l| l.map(|l| l.values().iter().map(|m| m.value_raw().to_vec()).collect()))
                    .collect::<Result<Vec<Vec<Vec<u8>>>, _>>()
                    .map_err(|_| BAD_OPTIONAL)?,
            ),
            None => None,
        };
        let set_lists = match &opt.set_values {
            Some(v) => Some(
                v.iter_values()
                    .map(|l| l.map(|l| l.values().iter().map(|m| m.value_raw().to_vec()).collect()))
                    .collect::<Result<Vec<Vec<Vec<u8>>>, _>>()
                    .map_err(|_| BAD_OPTIONAL)?,
            ),
            None => None,
        };
        let mut enum_members = member_lists(enum_lists, enum_count, &enum_cs)?.into_iter();
        let mut set_members = member_lists(set_lists, set_count, &set_cs)?.into_iter();

        let mut decoders = Vec::with_capacity(n);
        let mut json_columns = Vec::new();
        let (mut numeric_i, mut char_i) = (0, 0);
        for (i, d) in defs.iter().enumerate() {
            let unsigned = if is_numeric(d.real, flavor) {
                numeric_i += 1;
                signedness.get(numeric_i - 1).copied().unwrap_or(false)
            } else {
                false
            };
            let charset = if is_character(d.real) {
                char_i += 1;
                let id = char_collations
                    .as_ref()
                    .and_then(|c| c.get(char_i - 1))
                    .copied()
                    .unwrap_or(0);
                let cs = charset_map.get(id).ok_or_else(|| {
                    RowError::UnsupportedCharset(names[i].clone(), format!("collation {id}"))
                })?;
                if let Charset::Other(cs_name) = &cs {
                    return Err(RowError::UnsupportedCharset(
                        names[i].clone(),
                        cs_name.clone(),
                    ));
                }
                cs
            } else {
                Charset::Binary
            };
            // mysql_common hands out as many metadata bytes as the logged type has.
            let b = |k: usize| {
                d.metadata
                    .get(k)
                    .copied()
                    .ok_or(RowError::Malformed("column metadata ends early"))
            };
            let dec = match d.real {
                ty::TINY => Decoder::Int { width: 1, unsigned },
                ty::SHORT => Decoder::Int { width: 2, unsigned },
                ty::INT24 => Decoder::Int { width: 3, unsigned },
                ty::LONG => Decoder::Int { width: 4, unsigned },
                ty::LONGLONG => Decoder::Int { width: 8, unsigned },
                ty::YEAR => Decoder::Year,
                ty::FLOAT => Decoder::Float,
                ty::DOUBLE => Decoder::Double,
                ty::NEWDECIMAL => {
                    decimal_len(b(0)?, b(1)?)?;
                    Decoder::Decimal {
                        precision: b(0)?,
                        scale: b(1)?,
                    }
                }
                ty::BIT => {
                    let (bits, bytes) = (usize::from(b(0)?), usize::from(b(1)?));
                    let len = u8::try_from(bytes * 8 + bits)
                        .ok()
                        .filter(|l| (1..=64).contains(l))
                        .ok_or(RowError::Malformed("bit length"))?;
                    Decoder::Bit {
                        len,
                        bytes: bytes + usize::from(bits > 0),
                    }
                }
                ty::VARCHAR | ty::VAR_STRING => {
                    let max = usize::from(u16::from_le_bytes([b(0)?, b(1)?]));
                    Decoder::Str {
                        len_bytes: if max < 256 { 1 } else { 2 },
                        charset,
                    }
                }
                ty::STRING => {
                    let max = if b(0)? == 0 {
                        usize::from(u16::from_le_bytes([b(0)?, b(1)?]))
                    } else if b(0)? & 0x30 != 0x30 {
                        // A long CHAR: bits 4-5 of the first byte, inverted, extend the length.
                        usize::from(b(1)?) | (usize::from((b(0)? & 0x30) ^ 0x30) << 4)
                    } else {
                        usize::from(b(1)?)
                    };
                    Decoder::Str {
                        len_bytes: if max < 256 { 1 } else { 2 },
                        charset,
                    }
                }
                ty::TINY_BLOB | ty::MEDIUM_BLOB | ty::LONG_BLOB | ty::BLOB => {
                    let len_bytes = usize::from(b(0)?);
                    if !(1..=4).contains(&len_bytes) {
                        return Err(RowError::Malformed("blob length size"));
                    }
                    Decoder::Blob { len_bytes, charset }
                }
                ty::JSON => {
                    json_columns.push(i);
                    let len_bytes = usize::from(b(0)?);
                    if !(1..=4).contains(&len_bytes) {
                        return Err(RowError::Malformed("json length size"));
                    }
                    Decoder::Json { len_bytes }
                }
                ty::ENUM => Decoder::Enum {
                    pack: usize::from(b(1)?),
                    members: enum_members.next().flatten(),
                },
                ty::SET => Decoder::Set {
                    pack: usize::from(b(1)?),
                    members: set_members.next().flatten(),
                },
                ty::DATE | ty::NEWDATE => Decoder::Date,
                ty::TIME => Decoder::Time,
                ty::TIME2 => Decoder::Time2 { fsp: fsp(b(0)?)? },
                ty::DATETIME => Decoder::DateTime,
                ty::DATETIME2 => Decoder::DateTime2 { fsp: fsp(b(0)?)? },
                ty::TIMESTAMP => Decoder::Timestamp,
                ty::TIMESTAMP2 => Decoder::Timestamp2 { fsp: fsp(b(0)?)? },
                other => {
                    return Err(RowError::UnsupportedType(
                        names[i].clone(),
                        type_name(other),
                    ))
                }
            };
            decoders.push(dec);
        }
        Ok(Self {
            name,
            columns: Arc::new(names),
            decoders,
            json_columns,
        })
    }

    /// Decodes one row image from `r`: `full` says it holds every column (as it does with
    /// `binlog_row_image=FULL`; other images are refused). `partial` marks an after image of a MySQL partial
    /// update event, which starts with value options.
    pub fn decode_row(
        &self,
        r: &mut Reader<'_>,
        full: bool,
        partial: bool,
    ) -> Result<Vec<Value>, RowError> {
        let n = self.decoders.len();
        if !full {
            return Err(RowError::PartialImage);
        }
        if partial {
            let options = r.lenenc()?;
            if options & 1 != 0 {
                let bits = r.take(self.json_columns.len().div_ceil(8))?;
                if let Some(k) = (0..self.json_columns.len()).find(|&k| bit(bits, k)) {
                    return Err(RowError::PartialJson(self.json_columns[k]));
                }
            }
        }
        let nulls = r.take(n.div_ceil(8))?;
        let mut out = Vec::with_capacity(n);
        for (i, dec) in self.decoders.iter().enumerate() {
            if bit(nulls, i) {
                out.push(Value::Null);
            } else {
                out.push(decode_value(dec, r).map_err(|e| match e {
                    ValueError::Malformed(m) => RowError::Malformed(m),
                    ValueError::Invalid(what) => RowError::InvalidValue(i, what),
                })?);
            }
        }
        Ok(out)
    }
}

fn fsp(b: u8) -> Parse<u8> {
    if b > 6 {
        return Err(Malformed("fractional seconds precision"));
    }
    Ok(b)
}

enum ValueError {
    Malformed(&'static str),
    Invalid(&'static str),
}

impl From<Malformed> for ValueError {
    fn from(m: Malformed) -> Self {
        ValueError::Malformed(m.0)
    }
}

fn sign_extend(v: u64, bytes: usize) -> i64 {
    let shift = 64 - 8 * u32::try_from(bytes).unwrap_or(8);
    // Reinterpreting the bits is the point: shift the sign bit to the top and back.
    i64::from_ne_bytes((v << shift).to_ne_bytes()) >> shift
}

/// Reads a length-prefixed byte string (`len_bytes` little-endian length).
fn prefixed<'a>(r: &mut Reader<'a>, len_bytes: usize) -> Parse<&'a [u8]> {
    let len = usize::try_from(r.uint(len_bytes)?).map_err(|_| Malformed("value length"))?;
    r.take(len)
}

fn text(bytes: &[u8], charset: &Charset) -> Result<Value, ValueError> {
    if *charset == Charset::Binary {
        return Ok(Value::Bytes(bytes.to_vec()));
    }
    charset
        .decode(bytes)
        .map(Value::Text)
        .ok_or(ValueError::Invalid(match charset {
            Charset::Utf8 => "utf-8",
            _ => "character",
        }))
}

/// Fraction bytes for a fractional seconds precision.
fn frac_len(fsp: u8) -> usize {
    usize::from(fsp).div_ceil(2)
}

/// Microseconds from a big-endian fraction of `fsp` digits, signed for DATETIME2/TIME2.
fn fraction(b: &[u8], fsp: u8) -> i64 {
    let raw = be_uint(b);
    match fsp {
        1 | 2 => sign_extend(raw, 1) * 10_000,
        3 | 4 => sign_extend(raw, 2) * 100,
        5 | 6 => sign_extend(raw, 3),
        _ => 0,
    }
}

fn date_time(
    year: u64,
    month: u64,
    day: u64,
    h: u64,
    mi: u64,
    s: u64,
    micro: u64,
) -> Result<DateTime, ValueError> {
    types::date_time(year, month, day, h, mi, s, micro).ok_or(ValueError::Invalid("datetime"))
}

fn decode_value(dec: &Decoder, r: &mut Reader<'_>) -> Result<Value, ValueError> {
    Ok(match dec {
        Decoder::Int { width, unsigned } => {
            let raw = r.uint(*width)?;
            if *unsigned {
                Value::UInt(raw)
            } else {
                Value::Int(sign_extend(raw, *width))
            }
        }
        Decoder::Year => {
            let y = r.u8()?;
            Value::Year(if y == 0 { 0 } else { 1900 + u16::from(y) })
        }
        Decoder::Float => {
            let b = r.take(4)?;
            Value::Float(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        }
        Decoder::Double => Value::Double(f64::from_bits(r.u64()?)),
        Decoder::Decimal { precision, scale } => {
            let len = decimal_len(*precision, *scale)?;
            let text = decode_decimal(r.take(len)?, *precision, *scale)?;
            Value::Decimal(text.parse().map_err(|_| ValueError::Invalid("decimal"))?)
        }
        Decoder::Bit { len, bytes } => {
            Value::Bits(types::bit_string(*len, r.take(*bytes)?).ok_or(ValueError::Invalid("bit"))?)
        }
        Decoder::Str { len_bytes, charset } | Decoder::Blob { len_bytes, charset } => {
            text(prefixed(r, *len_bytes)?, charset)?
        }
        Decoder::Json { len_bytes } => {
            let doc = prefixed(r, *len_bytes)?;
            Value::Json(jsonb_to_text(doc).map_err(|_| ValueError::Invalid("binary json"))?)
        }
        Decoder::Enum { pack, members } => {
            let index = r.uint(*pack)?;
            match members {
                Some(m) => Value::Text(if index == 0 {
                    // MySQL's error value for an invalid member.
                    String::new()
                } else {
                    usize::try_from(index - 1)
                        .ok()
                        .and_then(|i| m.get(i))
                        .ok_or(ValueError::Invalid("enum index"))?
                        .clone()
                }),
                None => Value::UInt(index),
            }
        }
        Decoder::Set { pack, members } => {
            let mask = r.uint(*pack)?;
            match members {
                Some(m) => {
                    if m.len() < 64 && mask >> m.len() != 0 {
                        return Err(ValueError::Invalid("set bitmask"));
                    }
                    let mut s = String::new();
                    for (i, member) in m.iter().enumerate() {
                        if mask >> i & 1 == 1 {
                            if !s.is_empty() {
                                s.push(',');
                            }
                            s.push_str(member);
                        }
                    }
                    Value::Text(s)
                }
                None => Value::UInt(mask),
            }
        }
        Decoder::Date => {
            let v = r.uint(3)?;
            let d = date_time(v >> 9, v >> 5 & 15, v & 31, 0, 0, 0, 0)?;
            Value::Date(d.date)
        }
        Decoder::Time => {
            // Pre-5.6 TIME: a signed integer hhmmss.
            let v = sign_extend(r.uint(3)?, 3);
            let abs = v.unsigned_abs();
            let (h, m, s) = (abs / 10_000, abs / 100 % 100, abs % 100);
            Value::Time(types::time(v < 0, h, m, s, 0).ok_or(ValueError::Invalid("time"))?)
        }
        Decoder::Time2 { fsp } => {
            // 3 bytes: sign, 1 unused bit, 10 bits hour, 6 minute, 6 second, offset by
            // 0x800000; then the fraction. Negative values with a fraction borrow one second.
            let int_bytes = r.take(3)?;
            let int = i64::try_from(be_uint(int_bytes)).unwrap_or(0) - 0x80_0000;
            let frac_bytes = r.take(frac_len(*fsp))?;
            let packed = match fsp {
                0 => int << 24,
                1..=4 => {
                    let raw = i64::try_from(be_uint(frac_bytes)).unwrap_or(0);
                    let (scale, modulus) = if *fsp <= 2 {
                        (10_000, 0x100)
                    } else {
                        (100, 0x1_0000)
                    };
                    let (mut int, mut frac) = (int, raw);
                    if int < 0 && frac != 0 {
                        int += 1;
                        frac -= modulus;
                    }
                    (int << 24) + frac * scale
                }
                _ => {
                    // The six bytes together are one big-endian number offset by
                    // 0x800000000000.
                    let raw =
                        i64::try_from(be_uint(int_bytes) << 24 | be_uint(frac_bytes)).unwrap_or(0);
                    raw - 0x8000_0000_0000
                }
            };
            let neg = packed < 0;
            let abs = packed.unsigned_abs();
            let hms = abs >> 24;
            let micro = abs % (1 << 24);
            let (h, m, s) = (
                (hms >> 12) % (1 << 10),
                (hms >> 6) % (1 << 6),
                hms % (1 << 6),
            );
            Value::Time(types::time(neg, h, m, s, micro).ok_or(ValueError::Invalid("time"))?)
        }
        Decoder::DateTime => {
            // Pre-5.6 DATETIME: the decimal number YYYYMMDDhhmmss.
            let v = r.u64()?;
            let (d, t) = (v / 1_000_000, v % 1_000_000);
            Value::DateTime(date_time(
                d / 10_000,
                d / 100 % 100,
                d % 100,
                t / 10_000,
                t / 100 % 100,
                t % 100,
                0,
            )?)
        }
        Decoder::DateTime2 { fsp } => {
            // 5 bytes: sign, 17 bits year*13+month, 5 day, 5 hour, 6 minute, 6 second,
            // offset by 0x8000000000; then the fraction.
            let int = i64::try_from(be_uint(r.take(5)?)).unwrap_or(0) - 0x80_0000_0000;
            let frac = fraction(r.take(frac_len(*fsp))?, *fsp);
            let packed = (int << 24) + frac;
            let packed = u64::try_from(packed).map_err(|_| ValueError::Invalid("datetime"))?;
            let micro = packed % (1 << 24);
            let ymdhms = packed >> 24;
            let ymd = ymdhms >> 17;
            let ym = ymd >> 5;
            let hms = ymdhms % (1 << 17);
            Value::DateTime(date_time(
                ym / 13,
                ym % 13,
                ymd % (1 << 5),
                hms >> 12,
                (hms >> 6) % (1 << 6),
                hms % (1 << 6),
                micro,
            )?)
        }
        Decoder::Timestamp => timestamp(i64::from(r.u32()?), 0)?,
        Decoder::Timestamp2 { fsp } => {
            let secs = i64::try_from(be_uint(r.take(4)?)).unwrap_or(0);
            let micro = fraction(r.take(frac_len(*fsp))?, *fsp);
            timestamp(secs, micro)?
        }
    })
}

/// A TIMESTAMP from epoch seconds and microseconds, in UTC. The zero timestamp is epoch 0.
fn timestamp(secs: i64, micro: i64) -> Result<Value, ValueError> {
    types::timestamp_from_epoch(secs, micro).ok_or(ValueError::Invalid("timestamp"))
}

/// Decodes every row image of `data` (one image per row: write and delete events).
#[cfg(test)]
pub(crate) fn decode_all(
    table: &TableDecoder,
    data: &[u8],
    full: bool,
) -> Result<Vec<Vec<Value>>, RowError> {
    let mut r = Reader::new(data);
    let mut rows = Vec::new();
    while !r.is_empty() {
        rows.push(table.decode_row(&mut r, full, false)?);
    }
    Ok(rows)
}
