//! The PostgreSQL → MySQL/MariaDB type mapping (*check*), value conversion (*convert*,
//! [`convert_pg_value`]) and the data checks the precheck runs on the source
//! ([`pg_data_checks`]).
//!
//! Lossless by default: every value a PostgreSQL column holds arrives unchanged in the
//! MySQL column, or is refused by name (the precheck counts such values, the copy stops on
//! them naming table, column and key). What MySQL has no type for travels as PostgreSQL's
//! own text form, in a text column. Choices that trade exactness for convenience are
//! [`PgToMySqlOptions`].
//!
//! | PostgreSQL | MySQL/MariaDB | notes |
//! |---|---|---|
//! | `boolean` | `tinyint(1)` (`BOOLEAN`) | |
//! | `smallint`, `integer`, `bigint` | `smallint`, `int`, `bigint` | serial and identity columns: `AUTO_INCREMENT` |
//! | `oid` | `int unsigned` | |
//! | `real`, `double precision` | `float`, `double` | `NaN` and infinities blocked ([`NanPolicy`]); `-0` written as `0` |
//! | `numeric(p,s)` | `decimal(p,s)` | when MySQL can declare it (p ≤ 65, s ≤ 30); else as `numeric` |
//! | `numeric` | `decimal(65,30)`, values checked | or text ([`UnboundedNumeric`]); `NaN`, infinities blocked |
//! | `money` | `varchar(64)` | its text form (the source's `lc_monetary`) |
//! | `character(n)` | `char(n)` (n ≤ 255, else `varchar(n)`) | trailing spaces are not part of the value |
//! | `character varying(n)` | `varchar(n)` | `text`/`mediumtext` when long |
//! | `text`, `character varying` | `longtext` | `varchar(n)` in a key |
//! | `bytea` | `longblob` | `varbinary(n)` in a key |
//! | `date` | `date` | infinity blocked ([`InfinityPolicy`]) |
//! | `timestamp(p)` | `datetime(p)` | infinity blocked |
//! | `timestamptz(p)` | `datetime(p)`, in UTC | not `timestamp`, which ends in 2038 |
//! | `time(p)` | `time(p)` | 24:00:00 included |
//! | `timetz` | `varchar(32)` | its text form |
//! | `interval` | `varchar(80)` | PostgreSQL's text form; or `time(6)` ([`IntervalMapping`]) |
//! | `uuid` | `char(36)` ascii | or `binary(16)` ([`UuidMapping`]) |
//! | `json`, `jsonb` | `longtext` checked by `json_valid` (MariaDB's `JSON`) | the text as PostgreSQL prints it |
//! | arrays | `longtext` checked by `json_valid` | JSON arrays, nested per dimension |
//! | enums | `enum(…)` in sort order | `varchar` with a `CHECK` when a label ends in a space |
//! | domains | their base type | with their `NOT NULL` and default; `CHECK`s not carried |
//! | `bit(n)` | `bit(n)` (n ≤ 64) | longer: `varchar(n)` of `0`/`1` |
//! | `bit varying(n)` | `varchar(n)` of `0`/`1` | |
//! | `name`, `"char"` | `varchar(63)`, `varchar(4)` | |
//! | `xml`, `inet`, `cidr`, `macaddr`, ranges, geometric, `tsvector`, others | text | their text form |
//!
//! Every text column gets the target's binary collation without padding
//! ([`MySqlFlavor::text_collation`]), so values distinct in PostgreSQL (`'a'`/`'A'`,
//! `'é'`/`'e'`, `'a'`/`'a '`) stay distinct in unique indexes and comparisons.

mod array;
mod check;
mod convert;
mod interval;
mod source;

use crate::error::TypeError;
use crate::mysql::MySqlType;

pub use array::array_to_json;
pub use check::pg_data_checks;
pub use convert::{convert_pg_value, is_special_pg_value, pg_value_from_text};
pub use interval::{parse_interval, IntervalParts};
pub use source::{resolve_pg_type, PgSourceType, ResolvedType};

/// InnoDB's limit on the bytes of one index (DYNAMIC and COMPRESSED row formats).
pub const MYSQL_MAX_KEY_BYTES: u32 = 3072;

/// Which server family the target is: they spell a few things differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum MySqlFlavor {
    /// MariaDB (10.5 or later).
    #[default]
    MariaDb,
    /// MySQL (8.0 or later).
    MySql,
}

impl MySqlFlavor {
    /// The family of a server from its version string (`SELECT VERSION()`):
    /// `10.11.6-MariaDB…` is MariaDB, anything else MySQL.
    pub fn from_version(version: &str) -> Self {
        if version.to_ascii_lowercase().contains("mariadb") {
            Self::MariaDb
        } else {
            Self::MySql
        }
    }

    /// The `utf8mb4` collation that compares code point by code point and keeps trailing
    /// spaces significant (`NO PAD`), as PostgreSQL's deterministic collations compare for
    /// equality: `utf8mb4_nopad_bin` on MariaDB, `utf8mb4_0900_bin` on MySQL 8.
    pub fn text_collation(&self) -> &'static str {
        match self {
            Self::MariaDb => "utf8mb4_nopad_bin",
            Self::MySql => "utf8mb4_0900_bin",
        }
    }
}

/// Target type of `uuid` columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum UuidMapping {
    /// `char(36)` in `ascii`: the canonical lowercase text.
    #[default]
    Char36,
    /// `binary(16)`: the 16 bytes.
    Binary16,
}

/// Target type of `interval` columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum IntervalMapping {
    /// `varchar(80)`: PostgreSQL's own text form (`1 year 2 mons 3 days 04:05:06.5`), which
    /// reads back as the same interval.
    #[default]
    Text,
    /// `time(6)`: a duration, days counted as 24 hours; intervals with years or months, or
    /// beyond ±838:59:59, are blocked.
    Time,
}

/// Target type of `numeric` columns MySQL cannot declare as they are (no precision, or a
/// precision above 65 or a scale above 30).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum UnboundedNumeric {
    /// `decimal(65,30)`: values with more than 35 integer digits or more than 30
    /// significant fraction digits are blocked. A value's own scale is not kept (`1.50`
    /// reads back as `1.500…0`, the same number).
    #[default]
    Decimal,
    /// `longtext` (`varchar` in a key): the exact text, `NaN` and infinities included; no
    /// arithmetic in the target.
    Text,
}

/// What becomes of `infinity` and `-infinity` in `date`, `timestamp` and `timestamptz`
/// columns, which MySQL has no value for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum InfinityPolicy {
    /// Refuse them: the precheck blocks, the copy stops naming the column.
    #[default]
    Error,
    /// Write `NULL` (counted and reported; a `NOT NULL` column still blocks).
    Null,
    /// Write the largest or smallest value the column holds (`9999-12-31 23:59:59.999999`,
    /// `0001-01-01 00:00:00`), counted and reported.
    Clamp,
}

/// What becomes of `NaN`, `Infinity` and `-Infinity` in `numeric`, `real` and `double
/// precision` columns, which MySQL has no value for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum NanPolicy {
    /// Refuse them: the precheck blocks, the copy stops naming the column.
    #[default]
    Error,
    /// Write `NULL` (counted and reported; a `NOT NULL` column still blocks).
    Null,
}

/// PostgreSQL → MySQL choices; [`Default`] is lossless.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PgToMySqlOptions {
    /// `uuid` → `char(36)` (default) or `binary(16)`.
    pub uuid: UuidMapping,
    /// `interval` → text (default) or `time(6)`.
    pub interval: IntervalMapping,
    /// `numeric` without a precision MySQL can declare → `decimal(65,30)` (default,
    /// checked) or text.
    pub unbounded_numeric: UnboundedNumeric,
    /// Infinite dates and timestamps: refused (default), `NULL` or clamped.
    pub infinity: InfinityPolicy,
    /// `NaN` and infinite numbers: refused (default) or `NULL`.
    pub nan: NanPolicy,
}

/// The character set of a text target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Charset {
    /// `utf8mb4`, 4 bytes per character at most, with the flavor's binary `NO PAD`
    /// collation.
    Utf8mb4,
    /// `ascii` with `ascii_bin` (uuids and bit strings).
    Ascii,
}

impl Charset {
    /// The most bytes one character takes.
    pub fn max_bytes(&self) -> u32 {
        match self {
            Charset::Utf8mb4 => 4,
            Charset::Ascii => 1,
        }
    }

    /// `CHARACTER SET … COLLATE …` for the flavor.
    pub fn clause(&self, flavor: MySqlFlavor) -> String {
        match self {
            Charset::Utf8mb4 => {
                format!("CHARACTER SET utf8mb4 COLLATE {}", flavor.text_collation())
            }
            Charset::Ascii => "CHARACTER SET ascii COLLATE ascii_bin".to_string(),
        }
    }
}

/// Notes attached to mappings; shown in migration reports.
pub mod notes {
    /// `timestamptz`.
    pub const TIMESTAMPTZ: &str = "timestamp with time zone mapped to datetime holding the UTC time (MySQL's timestamp ends in 2038); applications read UTC";
    /// `numeric` without a declarable precision, as decimal.
    pub const NUMERIC_DECIMAL: &str = "numeric without a precision MySQL can declare mapped to decimal(65,30): values with more than 35 integer or 30 fraction digits are reported; a value's own scale is not kept (1.50 reads back as 1.500000000000000000000000000000)";
    /// `numeric` as text.
    pub const NUMERIC_TEXT: &str =
        "numeric mapped to text (unbounded_numeric_as = text): exact, NaN included, no arithmetic";
    /// `-0`.
    pub const NEGATIVE_ZERO: &str =
        "MySQL stores -0 as 0 (they compare equal in both engines): written as 0 and counted";
    /// `NaN` and infinities.
    pub const NAN: &str =
        "NaN and infinities have no MySQL number: reported, or written as NULL per the nan option";
    /// Infinite dates.
    pub const INFINITY: &str = "infinity and -infinity have no MySQL date: reported, or written as NULL or clamped per the infinity option";
    /// Text columns.
    pub const COLLATION: &str = "text uses a binary NO PAD collation: values distinct in PostgreSQL stay distinct ('a'/'A', 'é'/'e', trailing spaces); sorting follows code points, not the source's locale";
    /// `char(n)`.
    pub const CHAR: &str =
        "character(n): trailing spaces are not part of the value in either engine";
    /// Text forms.
    pub const TEXT_FORM: &str = "no MySQL type holds it: copied as PostgreSQL's text form, which reads back as the same value";
    /// `money`.
    pub const MONEY: &str =
        "money copied as its text form, which depends on the source's lc_monetary";
    /// `interval` as text.
    pub const INTERVAL_TEXT: &str = "interval copied as PostgreSQL's text form (IntervalStyle postgres); the interval_as = time option maps it to time(6) after checking the values";
    /// `interval` as time.
    pub const INTERVAL_TIME: &str = "interval mapped to time(6), days as 24 hours: intervals with years or months or beyond ±838:59:59 are reported";
    /// `uuid` as `binary(16)`.
    pub const UUID_BINARY: &str = "uuid mapped to binary(16): the 16 bytes, not the text";
    /// JSON.
    pub const JSON: &str = "json and jsonb copied as the text PostgreSQL prints, in a longtext checked by json_valid (MariaDB's JSON; MySQL's JSON type would store numbers as doubles)";
    /// Arrays.
    pub const ARRAY: &str = "array copied as a JSON array (nested per dimension): numbers and booleans as JSON values, other elements as strings of their text form; arrays with lower bounds other than 1 are reported";
    /// Enums with a label MySQL would change.
    pub const ENUM_CHECK: &str = "an enum label ends in a space, which MySQL's ENUM strips: mapped to varchar with a CHECK over the labels (values sort as text)";
    /// Domains.
    pub const DOMAIN: &str =
        "domain mapped to its base type with its NOT NULL and default; its CHECK constraints are not carried";
    /// Long `bit` and `varbit`.
    pub const BIT_TEXT: &str =
        "bit varying, and bit longer than 64, copied as text of 0 and 1 characters";
    /// Key columns narrowed to fit an index.
    pub const KEY_LIMIT: &str = "in a key: narrowed to varchar/varbinary within InnoDB's 3072-byte index limit, so the key stays a whole-value unique index; longer values are reported";
}

/// How one PostgreSQL column maps to MySQL/MariaDB: the target type and everything the
/// value conversion needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgToMySqlMapping {
    /// The column's type as the source declares it (a domain's name, if any).
    pub source_type: String,
    /// The source type, domains resolved.
    pub source: PgSourceType,
    /// The target type.
    pub target: MySqlType,
    /// The character set of a text target (its collation follows the flavor).
    pub charset: Option<Charset>,
    /// Whether the target text is checked by `json_valid()`.
    pub json: bool,
    /// A `CHECK` over the target column written as the placeholder `{col}`.
    pub check: Option<String>,
    /// Notes on lossy or special cases.
    pub notes: Vec<&'static str>,
    /// Whether the column accepts `NULL` (decides whether infinities may become `NULL`).
    pub nullable: bool,
    /// The options the mapping was made with.
    pub options: PgToMySqlOptions,
}

impl PgToMySqlMapping {
    /// The target column type as DDL spells it, with its character set and collation
    /// (`varchar(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin`).
    pub fn type_sql(&self, flavor: MySqlFlavor) -> String {
        match &self.charset {
            Some(cs) => format!("{} {}", self.target, cs.clause(flavor)),
            None => self.target.to_string(),
        }
    }

    /// The `CHECK` expression for the target column `quoted_column` (`` `c` ``), the JSON
    /// check included.
    pub fn check_for(&self, quoted_column: &str) -> Option<String> {
        let mut parts = Vec::new();
        if self.json {
            parts.push(format!("json_valid({quoted_column})"));
        }
        if let Some(c) = &self.check {
            parts.push(c.replace("{col}", quoted_column));
        }
        (!parts.is_empty()).then(|| parts.join(" AND "))
    }

    /// The bytes the column takes in an index: `None` for types an index can only hold a
    /// prefix of (`longtext`, `longblob`, …).
    pub fn key_bytes(&self) -> Option<u32> {
        let per_char = self.charset.map_or(1, |c| c.max_bytes());
        Some(match &self.target {
            MySqlType::TinyInt { .. } | MySqlType::Year => 1,
            MySqlType::SmallInt { .. } => 2,
            MySqlType::MediumInt { .. } | MySqlType::Date => 3,
            MySqlType::Int { .. } | MySqlType::Float => 4,
            MySqlType::BigInt { .. } | MySqlType::Double => 8,
            MySqlType::Decimal { precision, scale } => decimal_bytes(*precision, *scale),
            MySqlType::Bit(n) => (u32::from(*n)).div_ceil(8),
            MySqlType::DateTime(fsp) | MySqlType::Timestamp(fsp) => 5 + u32::from(*fsp).div_ceil(2),
            MySqlType::Time(fsp) => 3 + u32::from(*fsp).div_ceil(2),
            MySqlType::Char(n) | MySqlType::VarChar(n) => n.saturating_mul(per_char),
            MySqlType::Binary(n) | MySqlType::VarBinary(n) => *n,
            MySqlType::Enum(m) | MySqlType::Set(m) => {
                if m.len() < 256 {
                    1
                } else {
                    2
                }
            }
            _ => return None,
        })
    }

    /// Whether the target holds text or bytes whose length an index limit may have to cut
    /// down ([`PgToMySqlMapping::within_key_bytes`]).
    pub fn is_variable_length(&self) -> bool {
        matches!(
            self.target,
            MySqlType::Char(_)
                | MySqlType::VarChar(_)
                | MySqlType::VarBinary(_)
                | MySqlType::TinyText
                | MySqlType::Text
                | MySqlType::MediumText
                | MySqlType::LongText
                | MySqlType::TinyBlob
                | MySqlType::Blob
                | MySqlType::MediumBlob
                | MySqlType::LongBlob
        )
    }

    /// The mapping for a column that must be indexed whole within `max_bytes` (a primary
    /// key, unique index or foreign key column): a text or byte target becomes
    /// `varchar(n)`/`varbinary(n)` of at most that many bytes; values longer than `n` are
    /// refused by the conversion and counted by the data checks. Other targets are
    /// returned as they are.
    pub fn within_key_bytes(&self, max_bytes: u32) -> PgToMySqlMapping {
        if !self.is_variable_length() || self.key_bytes().is_some_and(|b| b <= max_bytes) {
            return self.clone();
        }
        let mut m = self.clone();
        let per_char = m.charset.map_or(1, |c| c.max_bytes());
        let n = (max_bytes / per_char).max(1);
        m.target = match (&m.target, m.charset) {
            (
                MySqlType::VarBinary(_)
                | MySqlType::TinyBlob
                | MySqlType::Blob
                | MySqlType::MediumBlob
                | MySqlType::LongBlob,
                _,
            ) => MySqlType::VarBinary(n),
            _ => MySqlType::VarChar(n),
        };
        m.notes.push(notes::KEY_LIMIT);
        m
    }

    /// The mapping with a `varchar(n)` target stored as a text type instead (a table whose
    /// `varchar`s would exceed MySQL's 65,535-byte row limit); other targets as they are.
    pub fn as_long_text(&self) -> PgToMySqlMapping {
        let mut m = self.clone();
        if let MySqlType::VarChar(n) = m.target {
            let bytes = u64::from(n) * u64::from(m.charset.map_or(1, |c| c.max_bytes()));
            m.target = text_type_for(bytes);
        }
        m
    }
}

/// The storage bytes of `decimal(p,s)`: 4 bytes per 9 digits on each side of the point.
fn decimal_bytes(precision: u8, scale: u8) -> u32 {
    const PARTIAL: [u32; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];
    let side = |digits: u8| {
        let d = u32::from(digits);
        d / 9 * 4 + PARTIAL[usize::try_from(d % 9).unwrap_or(0)]
    };
    side(precision.saturating_sub(scale)) + side(scale)
}

/// The smallest text type holding `bytes` bytes.
fn text_type_for(bytes: u64) -> MySqlType {
    if bytes <= 65_535 {
        MySqlType::Text
    } else if bytes <= 16_777_215 {
        MySqlType::MediumText
    } else {
        MySqlType::LongText
    }
}

/// A `varchar(n)` for up to `n` characters of `charset`, or the smallest text type that
/// holds them when a `varchar` that long would take most of a row.
fn varchar_or_text(n: u32, charset: Charset) -> MySqlType {
    let bytes = u64::from(n) * u64::from(charset.max_bytes());
    if bytes <= 65_532 {
        MySqlType::VarChar(n.max(1))
    } else {
        text_type_for(bytes)
    }
}

/// Maps a column of (resolved) type `source` to MySQL/MariaDB.
///
/// `source_type` is the type as declared (for messages), `nullable` whether the column (and
/// its domains) accept `NULL`.
///
/// # Errors
///
/// [`TypeError::Unmappable`] for an enum MySQL cannot declare (more than 65,535 labels).
pub fn map_pg_type(
    source_type: &str,
    source: PgSourceType,
    nullable: bool,
    options: &PgToMySqlOptions,
) -> Result<PgToMySqlMapping, TypeError> {
    use notes as n;
    let mut notes: Vec<&'static str> = Vec::new();
    let mut charset = None;
    let mut json = false;
    let mut check = None;
    let utf8 = Some(Charset::Utf8mb4);
    let target = match &source {
        PgSourceType::Boolean => MySqlType::TinyInt {
            unsigned: false,
            display_width: Some(1),
        },
        PgSourceType::SmallInt => MySqlType::SmallInt { unsigned: false },
        PgSourceType::Integer => MySqlType::Int { unsigned: false },
        PgSourceType::BigInt => MySqlType::BigInt { unsigned: false },
        PgSourceType::Oid => MySqlType::Int { unsigned: true },
        PgSourceType::Real => {
            notes.push(n::NAN);
            notes.push(n::NEGATIVE_ZERO);
            MySqlType::Float
        }
        PgSourceType::Double => {
            notes.push(n::NAN);
            notes.push(n::NEGATIVE_ZERO);
            MySqlType::Double
        }
        PgSourceType::Numeric { precision, scale } => {
            match declarable_decimal(*precision, *scale) {
                Some((p, s)) => {
                    notes.push(n::NAN);
                    MySqlType::Decimal {
                        precision: p,
                        scale: s,
                    }
                }
                None if options.unbounded_numeric == UnboundedNumeric::Text => {
                    notes.push(n::NUMERIC_TEXT);
                    charset = Some(Charset::Ascii);
                    MySqlType::LongText
                }
                None => {
                    notes.push(n::NUMERIC_DECIMAL);
                    notes.push(n::NAN);
                    MySqlType::Decimal {
                        precision: 65,
                        scale: 30,
                    }
                }
            }
        }
        PgSourceType::Money => {
            notes.push(n::MONEY);
            charset = utf8;
            MySqlType::VarChar(64)
        }
        PgSourceType::Char(len) => {
            notes.push(n::CHAR);
            notes.push(n::COLLATION);
            charset = utf8;
            if *len <= 255 {
                MySqlType::Char(*len)
            } else {
                varchar_or_text(*len, Charset::Utf8mb4)
            }
        }
        PgSourceType::VarChar(Some(len)) => {
            notes.push(n::COLLATION);
            charset = utf8;
            varchar_or_text(*len, Charset::Utf8mb4)
        }
        PgSourceType::VarChar(None) | PgSourceType::Text => {
            notes.push(n::COLLATION);
            charset = utf8;
            MySqlType::LongText
        }
        PgSourceType::Name => {
            charset = utf8;
            MySqlType::VarChar(63)
        }
        PgSourceType::SingleChar => {
            charset = utf8;
            MySqlType::VarChar(4)
        }
        PgSourceType::Bytea => MySqlType::LongBlob,
        PgSourceType::Date => {
            notes.push(n::INFINITY);
            MySqlType::Date
        }
        PgSourceType::Timestamp(p) => {
            notes.push(n::INFINITY);
            MySqlType::DateTime(*p)
        }
        PgSourceType::TimestampTz(p) => {
            notes.push(n::TIMESTAMPTZ);
            notes.push(n::INFINITY);
            MySqlType::DateTime(*p)
        }
        PgSourceType::Time(p) => MySqlType::Time(*p),
        PgSourceType::TimeTz => {
            notes.push(n::TEXT_FORM);
            charset = utf8;
            MySqlType::VarChar(32)
        }
        PgSourceType::Interval => match options.interval {
            IntervalMapping::Text => {
                notes.push(n::INTERVAL_TEXT);
                charset = utf8;
                MySqlType::VarChar(80)
            }
            IntervalMapping::Time => {
                notes.push(n::INTERVAL_TIME);
                MySqlType::Time(6)
            }
        },
        PgSourceType::Uuid => match options.uuid {
            UuidMapping::Char36 => {
                charset = Some(Charset::Ascii);
                MySqlType::Char(36)
            }
            UuidMapping::Binary16 => {
                notes.push(n::UUID_BINARY);
                MySqlType::Binary(16)
            }
        },
        PgSourceType::Json | PgSourceType::Jsonb => {
            notes.push(n::JSON);
            charset = utf8;
            json = true;
            MySqlType::LongText
        }
        PgSourceType::Array(_) => {
            notes.push(n::ARRAY);
            charset = utf8;
            json = true;
            MySqlType::LongText
        }
        PgSourceType::Xml => {
            notes.push(n::TEXT_FORM);
            charset = utf8;
            MySqlType::LongText
        }
        PgSourceType::Bit(len) if *len <= 64 => {
            MySqlType::Bit(u8::try_from(*len).unwrap_or(64).max(1))
        }
        PgSourceType::Bit(len) | PgSourceType::VarBit(Some(len)) => {
            notes.push(n::BIT_TEXT);
            charset = Some(Charset::Ascii);
            varchar_or_text(*len, Charset::Ascii)
        }
        PgSourceType::VarBit(None) => {
            notes.push(n::BIT_TEXT);
            charset = Some(Charset::Ascii);
            MySqlType::LongText
        }
        PgSourceType::Enum { labels, .. } => {
            if labels.len() > 65_535 {
                return Err(TypeError::Unmappable {
                    type_name: source_type.to_string(),
                    reason: "more than 65,535 labels",
                });
            }
            charset = utf8;
            if labels.iter().any(|l| l.ends_with(' ') || l.is_empty()) {
                notes.push(n::ENUM_CHECK);
                let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(1);
                check = Some(format!(
                    "{{col}} IN ({})",
                    labels
                        .iter()
                        .map(|l| crate::mysql::mysql_quote(l))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                MySqlType::VarChar(u32::try_from(longest).unwrap_or(u32::MAX).max(1))
            } else {
                MySqlType::Enum(labels.clone())
            }
        }
        PgSourceType::Other(name) => {
            notes.push(n::TEXT_FORM);
            charset = utf8;
            match name.as_str() {
                "inet" | "cidr" => MySqlType::VarChar(50),
                "macaddr" => MySqlType::VarChar(17),
                "macaddr8" => MySqlType::VarChar(23),
                _ => MySqlType::LongText,
            }
        }
    };
    Ok(PgToMySqlMapping {
        source_type: source_type.to_string(),
        source,
        target,
        charset,
        json,
        check,
        notes,
        nullable,
        options: *options,
    })
}

/// The `decimal(M,D)` holding every value of `numeric(precision, scale)`, when MySQL can
/// declare it (M ≤ 65, D ≤ 30).
fn declarable_decimal(precision: Option<u32>, scale: i32) -> Option<(u8, u8)> {
    let p = i64::from(precision?);
    let s = i64::from(scale);
    // A negative scale rounds to tens, hundreds…: integers of p - s digits. A scale above
    // the precision leaves no integer digits.
    let fraction = s.max(0);
    let integer = (p - s).max(0);
    let total = (integer + fraction).max(1);
    (total <= 65 && fraction <= 30).then(|| {
        (
            u8::try_from(total).unwrap_or(65),
            u8::try_from(fraction).unwrap_or(0),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(t: &str) -> PgToMySqlMapping {
        map_pg_type(
            t,
            PgSourceType::parse(t),
            true,
            &PgToMySqlOptions::default(),
        )
        .unwrap()
    }

    #[test]
    fn mapping_table() {
        let f = MySqlFlavor::MariaDb;
        for (pg, my) in [
            ("boolean", "tinyint(1)"),
            ("smallint", "smallint"),
            ("integer", "int"),
            ("bigint", "bigint"),
            ("oid", "int unsigned"),
            ("real", "float"),
            ("double precision", "double"),
            ("numeric(10,2)", "decimal(10,2)"),
            ("numeric(5,-2)", "decimal(7,0)"),
            ("numeric(3,5)", "decimal(5,5)"),
            ("numeric", "decimal(65,30)"),
            ("numeric(70,2)", "decimal(65,30)"),
            (
                "character(3)",
                "char(3) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin",
            ),
            (
                "character varying(20)",
                "varchar(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin",
            ),
            (
                "character varying(20000)",
                "mediumtext CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin",
            ),
            (
                "text",
                "longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin",
            ),
            ("bytea", "longblob"),
            ("date", "date"),
            ("timestamp without time zone", "datetime(6)"),
            ("timestamp(3) with time zone", "datetime(3)"),
            ("time without time zone", "time(6)"),
            (
                "interval",
                "varchar(80) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin",
            ),
            ("uuid", "char(36) CHARACTER SET ascii COLLATE ascii_bin"),
            (
                "jsonb",
                "longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin",
            ),
            ("bit(3)", "bit(3)"),
            (
                "bit varying(10)",
                "varchar(10) CHARACTER SET ascii COLLATE ascii_bin",
            ),
            (
                "inet",
                "varchar(50) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin",
            ),
        ] {
            assert_eq!(map(pg).type_sql(f), my, "{pg}");
        }
        assert_eq!(
            map("text").type_sql(MySqlFlavor::MySql),
            "longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_bin"
        );
        assert_eq!(
            map("integer[]").check_for("`a`").as_deref(),
            Some("json_valid(`a`)")
        );
    }

    #[test]
    fn options_change_the_lossy_cases() {
        let opts = PgToMySqlOptions {
            uuid: UuidMapping::Binary16,
            interval: IntervalMapping::Time,
            unbounded_numeric: UnboundedNumeric::Text,
            ..PgToMySqlOptions::default()
        };
        let m = |t: &str| {
            map_pg_type(t, PgSourceType::parse(t), true, &opts)
                .unwrap()
                .type_sql(MySqlFlavor::MariaDb)
        };
        assert_eq!(m("uuid"), "binary(16)");
        assert_eq!(m("interval"), "time(6)");
        assert_eq!(
            m("numeric"),
            "longtext CHARACTER SET ascii COLLATE ascii_bin"
        );
        assert_eq!(m("numeric(12,4)"), "decimal(12,4)");
    }

    #[test]
    fn enums_keep_their_labels_unless_mysql_would_change_one() {
        let e = |labels: &[&str]| {
            map_pg_type(
                "s.e",
                PgSourceType::Enum {
                    name: dts_core::TableName::new("s", "e"),
                    labels: labels.iter().map(|l| (*l).to_string()).collect(),
                },
                true,
                &PgToMySqlOptions::default(),
            )
            .unwrap()
        };
        let m = e(&["a", "A", "it's"]);
        assert_eq!(m.target.to_string(), "enum('a','A','it''s')");
        assert!(m.check.is_none());
        let m = e(&["a", "b "]);
        assert_eq!(m.target, MySqlType::VarChar(2));
        assert_eq!(m.check_for("`c`").as_deref(), Some("`c` IN ('a', 'b ')"));
    }

    #[test]
    fn key_limits_narrow_text_and_bytes() {
        let m = map("text").within_key_bytes(3072);
        assert_eq!(m.target, MySqlType::VarChar(768));
        assert_eq!(m.key_bytes(), Some(3072));
        assert_eq!(
            map("bytea").within_key_bytes(100).target,
            MySqlType::VarBinary(100)
        );
        assert_eq!(
            map("uuid").within_key_bytes(10).target,
            MySqlType::VarChar(10)
        );
        // Fixed-size types are left alone, and so are columns that fit.
        assert_eq!(
            map("bigint").within_key_bytes(4).target.to_string(),
            "bigint"
        );
        assert_eq!(
            map("character varying(20)").within_key_bytes(3072).target,
            MySqlType::VarChar(20)
        );
        assert_eq!(map("numeric").key_bytes(), Some(30));
        assert_eq!(map("timestamp with time zone").key_bytes(), Some(8));
        assert_eq!(
            map("character varying(300)").as_long_text().target,
            MySqlType::Text
        );
    }

    #[test]
    fn flavors_from_versions() {
        assert_eq!(
            MySqlFlavor::from_version("10.11.6-MariaDB-0+deb12u1"),
            MySqlFlavor::MariaDb
        );
        assert_eq!(MySqlFlavor::from_version("8.0.36"), MySqlFlavor::MySql);
    }
}
