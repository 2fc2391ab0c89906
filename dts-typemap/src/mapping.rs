//! The MySQL → PostgreSQL type mapping table (the *check* half; [`crate::convert`] is the
//! *convert* half).

use dts_core::Column;

use crate::error::TypeError;
use crate::mysql::{parse_column_type, MySqlType};
use crate::pg::PgType;
use crate::quote::quote_literal_without_placeholder;

/// Choices that trade exactness for convenience. [`Default`] is lossless.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MappingOptions {
    /// Map `tinyint(1)` and `bool` to `boolean` instead of `smallint`. Values other than 0
    /// and 1 then block the migration (see [`crate::mysql_data_checks`]). Default `false`.
    pub tinyint1_as_boolean: bool,
    /// Map `time` to PostgreSQL `time` (a time of day) instead of `interval hour to second`.
    /// Values outside `00:00:00..=24:00:00` then block the migration. Default `false`.
    pub time_as_time: bool,
    /// What to do with zero and partial-zero dates (`0000-00-00`, month or day 0, year 0),
    /// which PostgreSQL cannot hold. Default [`ZeroDatePolicy::Null`].
    pub zero_date: ZeroDatePolicy,
    /// The choices of the PostgreSQL → MySQL/MariaDB mapping.
    pub pg_to_mysql: crate::pg_to_mysql::PgToMySqlOptions,
}

/// What becomes of MySQL zero dates (`0000-00-00`, `2024-00-10`, `2024-05-00`, year 0) and
/// `YEAR` 0000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ZeroDatePolicy {
    /// Write `NULL` (MySQL's own drivers read zero dates as `NULL`). The precheck reports the
    /// count as a warning; in a `NOT NULL` column it blocks the migration instead.
    #[default]
    Null,
    /// Refuse them: the precheck blocks the migration and conversion fails.
    Error,
}

/// How one MySQL column maps to PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnMapping {
    /// The source type, parsed. MariaDB `JSON` (`longtext` with a `json_valid` check) is
    /// [`MySqlType::Json`] here.
    pub source: MySqlType,
    /// The target type.
    pub target: PgType,
    /// A `CHECK` expression that keeps the source's domain in the target, over the quoted
    /// target column written as the placeholder `{col}` (e.g. `{col} >= 0`). String literals
    /// in it never contain the text `{col}`, so a plain replace is safe; see
    /// [`ColumnMapping::check_for`].
    pub check: Option<String>,
    /// Notes on lossy or special cases, for the migration report.
    pub notes: Vec<&'static str>,
    /// Whether the source column accepts `NULL` (decides what zero dates become).
    pub nullable: bool,
    /// Whether the source column is declared `unsigned` (integers, and decimals and floats,
    /// whose sign is not part of [`MySqlType`]).
    pub unsigned: bool,
}

impl ColumnMapping {
    /// The `CHECK` expression for a target column, `quoted_column` being its quoted name
    /// (`"price"`).
    pub fn check_for(&self, quoted_column: &str) -> Option<String> {
        self.check
            .as_ref()
            .map(|c| c.replace("{col}", quoted_column))
    }
}

/// Notes attached to mappings; shown in migration reports.
pub mod notes {
    /// Unsigned columns.
    pub const UNSIGNED: &str =
        "unsigned: a CHECK (value >= 0) keeps the source's sign rule in a wider signed type";
    /// `bigint unsigned`.
    pub const BIGINT_UNSIGNED: &str = "bigint unsigned exceeds PostgreSQL bigint: numeric(20,0) holds 0..=18446744073709551615 exactly, at some cost in size and speed";
    /// `tinyint(1)` kept as a number.
    pub const TINYINT1_KEPT: &str = "tinyint(1) keeps its numbers as smallint; the tinyint1_as_boolean option maps it to boolean after checking that every value is 0 or 1";
    /// `tinyint(1)` as boolean.
    pub const TINYINT1_BOOLEAN: &str =
        "tinyint(1) mapped to boolean: values other than 0 and 1 block the migration";
    /// `float(M,D)`, `double(M,D)`.
    pub const FLOAT_DIGITS: &str = "float(M,D)/double(M,D): MySQL rounds to D decimals when writing; the stored binary value is copied bit-exactly and the target does not round";
    /// `char(n)`.
    pub const CHAR: &str = "char(n) mapped to varchar(n): MySQL strips trailing spaces from CHAR values on read, and PostgreSQL character(n) would pad them back";
    /// `char(0)`, `varchar(0)`.
    pub const ZERO_LENGTH: &str =
        "zero-length string type mapped to varchar(1) with a CHECK that allows only ''";
    /// All text types.
    pub const COLLATION: &str = "MySQL's default collations compare case-insensitively and ignore trailing spaces; PostgreSQL compares exactly, so unique keys and lookups may behave differently";
    /// Text that may hold U+0000.
    pub const TEXT_NUL: &str =
        "PostgreSQL text cannot hold U+0000: values containing it are reported";
    /// `binary(n)`.
    pub const BINARY_PAD: &str = "binary(n) values keep their trailing zero bytes (restored to n bytes when a reader dropped them); a CHECK keeps the length";
    /// `varbinary(n)`.
    pub const VARBINARY: &str = "varbinary(n) mapped to bytea with a CHECK on its length";
    /// `longtext`, `longblob`.
    pub const LONG_VALUE: &str =
        "PostgreSQL values are limited to 1 GB: longer values are reported";
    /// `datetime`.
    pub const DATETIME: &str =
        "datetime has no time zone: timestamp without time zone keeps the wall-clock value";
    /// `timestamp`.
    pub const TIMESTAMP: &str =
        "timestamp is an instant: copied in UTC into timestamp with time zone";
    /// Date types.
    pub const ZERO_DATE: &str = "zero and partial-zero dates (0000-00-00, month or day 0, year 0) have no PostgreSQL equivalent: written as NULL or reported, per the zero-date policy";
    /// Dates stored under `ALLOW_INVALID_DATES`.
    pub const INVALID_DATE: &str =
        "dates off the calendar (e.g. 2023-02-30, allowed by ALLOW_INVALID_DATES) are reported";
    /// `year`.
    pub const YEAR: &str =
        "year mapped to smallint with a CHECK (0 or 1901..=2155): year 0000 stays 0";
    /// `time` as interval.
    pub const TIME_INTERVAL: &str = "time is a signed duration up to ±838:59:59: interval hour to second keeps it exactly; the time_as_time option maps it to time after checking the values";
    /// `time` as time of day.
    pub const TIME_OF_DAY: &str =
        "time mapped to time of day: values outside 00:00:00..24:00:00 block the migration";
    /// `enum`.
    pub const ENUM: &str = "enum mapped to varchar with a CHECK over its members: values sort as text, not by member index, and MySQL's error value '' (index 0) is reported unless '' is a member";
    /// `set`.
    pub const SET: &str = "set mapped to varchar with a CHECK that every comma-separated element is a member: values sort as text, not by bitmask";
    /// `json`.
    pub const JSON: &str = "jsonb keeps numbers exactly but normalises whitespace and key order and keeps only the last of duplicate keys; \\u0000 escapes are reported";
    /// MariaDB `json`.
    pub const MARIADB_JSON: &str = "MariaDB JSON (longtext checked by json_valid) mapped to jsonb; texts json_valid accepts but PostgreSQL refuses (such as `1.` or unknown escapes) fail conversion";
}

fn unsigned_check(unsigned: bool) -> Option<String> {
    unsigned.then(|| "{col} >= 0".to_string())
}

fn int_target(ty: &MySqlType) -> PgType {
    match ty {
        MySqlType::TinyInt { .. } | MySqlType::SmallInt { unsigned: false } => PgType::SmallInt,
        MySqlType::SmallInt { unsigned: true }
        | MySqlType::MediumInt { .. }
        | MySqlType::Int { unsigned: false } => PgType::Integer,
        MySqlType::Int { unsigned: true } | MySqlType::BigInt { unsigned: false } => PgType::BigInt,
        _ => PgType::Numeric {
            precision: 20,
            scale: 0,
        },
    }
}

fn char_length(members: &[String]) -> usize {
    members.iter().map(|m| m.chars().count()).max().unwrap_or(0)
}

fn varchar(len: usize, type_name: &str) -> Result<u32, TypeError> {
    // PostgreSQL's varchar limit is 10,485,760 characters; enums and sets stay far below.
    u32::try_from(len.max(1))
        .ok()
        .filter(|&n| n <= 10_485_760)
        .ok_or_else(|| TypeError::Unmappable {
            type_name: type_name.to_string(),
            reason: "members too long for varchar",
        })
}

fn members_without_nul(members: &[String], type_name: &str) -> Result<(), TypeError> {
    if members.iter().any(|m| m.contains('\0')) {
        return Err(TypeError::Unmappable {
            type_name: type_name.to_string(),
            reason: "a member contains U+0000, which PostgreSQL text cannot hold",
        });
    }
    Ok(())
}

fn list(members: &[String]) -> String {
    members
        .iter()
        .map(|m| quote_literal_without_placeholder(m))
        .collect::<Vec<_>>()
        .join(",")
}

/// Maps a parsed MySQL type, with its `unsigned` attribute and nullability, to PostgreSQL.
///
/// This is [`map_mysql_column`] without the [`Column`]; it is public for callers that hold
/// only a type (e.g. a binlog table map).
///
/// # Errors
///
/// [`TypeError::Unsupported`] for spatial types, [`TypeError::Unmappable`] for enum or set
/// members PostgreSQL text cannot hold.
pub fn map_mysql_type(
    source: MySqlType,
    unsigned: bool,
    nullable: bool,
    opts: &MappingOptions,
) -> Result<ColumnMapping, TypeError> {
    use notes as n;
    let mut notes: Vec<&'static str> = Vec::new();
    let mut check: Option<String> = None;
    let target = match &source {
        MySqlType::TinyInt { display_width, .. } => {
            if *display_width == Some(1) {
                if opts.tinyint1_as_boolean {
                    notes.push(n::TINYINT1_BOOLEAN);
                    PgType::Boolean
                } else {
                    notes.push(n::TINYINT1_KEPT);
                    check = unsigned_check(unsigned);
                    PgType::SmallInt
                }
            } else {
                check = unsigned_check(unsigned);
                PgType::SmallInt
            }
        }
        MySqlType::SmallInt { .. }
        | MySqlType::MediumInt { .. }
        | MySqlType::Int { .. }
        | MySqlType::BigInt { .. } => {
            check = unsigned_check(unsigned);
            if matches!(source, MySqlType::BigInt { unsigned: true }) {
                notes.push(n::BIGINT_UNSIGNED);
            }
            int_target(&source)
        }
        MySqlType::Decimal { precision, scale } => {
            check = unsigned_check(unsigned);
            PgType::Numeric {
                precision: *precision,
                scale: *scale,
            }
        }
        MySqlType::Float => {
            check = unsigned_check(unsigned);
            PgType::Real
        }
        MySqlType::Double => {
            check = unsigned_check(unsigned);
            PgType::Double
        }
        MySqlType::Bit(len) => PgType::Bit(*len),
        MySqlType::Char(len) | MySqlType::VarChar(len) => {
            if matches!(source, MySqlType::Char(_)) {
                notes.push(n::CHAR);
            }
            notes.push(n::COLLATION);
            notes.push(n::TEXT_NUL);
            if *len == 0 {
                notes.push(n::ZERO_LENGTH);
                check = Some("{col} = ''".into());
                PgType::VarChar(1)
            } else {
                PgType::VarChar(*len)
            }
        }
        MySqlType::TinyText | MySqlType::Text | MySqlType::MediumText | MySqlType::LongText => {
            notes.push(n::COLLATION);
            notes.push(n::TEXT_NUL);
            if source == MySqlType::LongText {
                notes.push(n::LONG_VALUE);
            }
            PgType::Text
        }
        MySqlType::Binary(len) => {
            notes.push(n::BINARY_PAD);
            check = Some(format!("octet_length({{col}}) = {len}"));
            PgType::Bytea
        }
        MySqlType::VarBinary(len) => {
            notes.push(n::VARBINARY);
            check = Some(format!("octet_length({{col}}) <= {len}"));
            PgType::Bytea
        }
        MySqlType::TinyBlob | MySqlType::Blob | MySqlType::MediumBlob => PgType::Bytea,
        MySqlType::LongBlob => {
            notes.push(n::LONG_VALUE);
            PgType::Bytea
        }
        MySqlType::Date => {
            notes.extend([n::ZERO_DATE, n::INVALID_DATE]);
            PgType::Date
        }
        MySqlType::DateTime(fsp) => {
            notes.extend([n::DATETIME, n::ZERO_DATE, n::INVALID_DATE]);
            PgType::Timestamp(*fsp)
        }
        MySqlType::Timestamp(fsp) => {
            notes.extend([n::TIMESTAMP, n::ZERO_DATE]);
            PgType::TimestampTz(*fsp)
        }
        MySqlType::Time(fsp) => {
            if opts.time_as_time {
                notes.push(n::TIME_OF_DAY);
                PgType::Time(*fsp)
            } else {
                notes.push(n::TIME_INTERVAL);
                PgType::Interval(*fsp)
            }
        }
        MySqlType::Year => {
            notes.push(n::YEAR);
            check = Some("{col} = 0 OR {col} BETWEEN 1901 AND 2155".into());
            PgType::SmallInt
        }
        MySqlType::Enum(members) => {
            let name = source.to_string();
            members_without_nul(members, &name)?;
            notes.extend([n::ENUM, n::COLLATION]);
            check = Some(format!("{{col}} IN ({})", list(members)));
            PgType::VarChar(varchar(char_length(members), &name)?)
        }
        MySqlType::Set(members) => {
            let name = source.to_string();
            members_without_nul(members, &name)?;
            notes.extend([n::SET, n::COLLATION]);
            let total: usize = members.iter().map(|m| m.chars().count()).sum::<usize>()
                + members.len().saturating_sub(1);
            check = Some(format!(
                "{{col}} = '' OR string_to_array({{col}}, ',') <@ ARRAY[{}]::text[]",
                list(members)
            ));
            PgType::VarChar(varchar(total, &name)?)
        }
        MySqlType::Json => {
            notes.push(n::JSON);
            PgType::Jsonb
        }
        MySqlType::Spatial(name) => return Err(TypeError::unsupported(name)),
    };
    if unsigned && check.as_deref() == Some("{col} >= 0") {
        notes.push(n::UNSIGNED);
    }
    Ok(ColumnMapping {
        source,
        target,
        check,
        notes,
        nullable,
        unsigned,
    })
}

/// Maps a MySQL/MariaDB column to PostgreSQL, from its `COLUMN_TYPE`
/// ([`Column::source_type`]) and, for MariaDB JSON, [`Column::json_checked`].
///
/// # Errors
///
/// A [`TypeError`] for types that do not parse or have no lossless target (spatial types,
/// `inet6`, `uuid`).
pub fn map_mysql_column(
    column: &Column,
    opts: &MappingOptions,
) -> Result<ColumnMapping, TypeError> {
    let parsed = parse_column_type(&column.source_type)?;
    let mariadb_json = column.json_checked
        && matches!(
            parsed.ty,
            MySqlType::LongText | MySqlType::MediumText | MySqlType::Text | MySqlType::TinyText
        );
    let source = if mariadb_json {
        MySqlType::Json
    } else {
        parsed.ty
    };
    let mut mapping = map_mysql_type(source, parsed.unsigned, column.nullable, opts)?;
    if mariadb_json {
        mapping.notes.push(notes::MARIADB_JSON);
    }
    if matches!(mapping.source, MySqlType::Float | MySqlType::Double)
        && column.source_type.contains(',')
    {
        mapping.notes.push(notes::FLOAT_DIGITS);
    }
    Ok(mapping)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn column(source_type: &str, nullable: bool) -> Column {
        Column {
            ordinal: 1,
            nullable,
            ..Column::new("c", source_type)
        }
    }

    fn map(s: &str) -> ColumnMapping {
        map_mysql_column(&column(s, true), &MappingOptions::default())
            .unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn target(s: &str) -> String {
        map(s).target.to_string()
    }

    #[test]
    fn integer_table() {
        for (s, t, check) in [
            ("tinyint(4)", "smallint", None),
            ("tinyint(3) unsigned", "smallint", Some("{col} >= 0")),
            ("smallint(6)", "smallint", None),
            ("smallint(5) unsigned", "integer", Some("{col} >= 0")),
            ("mediumint(9)", "integer", None),
            ("mediumint(8) unsigned", "integer", Some("{col} >= 0")),
            ("int(11)", "integer", None),
            ("int(10) unsigned", "bigint", Some("{col} >= 0")),
            ("int unsigned zerofill", "bigint", Some("{col} >= 0")),
            ("bigint(20)", "bigint", None),
            ("bigint(20) unsigned", "numeric(20,0)", Some("{col} >= 0")),
        ] {
            let m = map(s);
            assert_eq!(m.target.to_string(), t, "{s}");
            assert_eq!(m.check.as_deref(), check, "{s}");
            assert_eq!(m.unsigned, check.is_some(), "{s}");
        }
        assert!(map("bigint unsigned")
            .notes
            .contains(&notes::BIGINT_UNSIGNED));
    }

    #[test]
    fn tinyint1_is_a_number_unless_asked() {
        let m = map("tinyint(1)");
        assert_eq!(m.target, PgType::SmallInt);
        assert!(m.notes.contains(&notes::TINYINT1_KEPT));
        let opts = MappingOptions {
            tinyint1_as_boolean: true,
            ..MappingOptions::default()
        };
        for s in ["tinyint(1)", "bool", "boolean"] {
            let m = map_mysql_column(&column(s, true), &opts).unwrap();
            assert_eq!(m.target, PgType::Boolean, "{s}");
            assert_eq!(m.check, None);
        }
        // Only display width 1 is a boolean.
        let m = map_mysql_column(&column("tinyint(4)", true), &opts).unwrap();
        assert_eq!(m.target, PgType::SmallInt);
    }

    #[test]
    fn numeric_float_and_bit_table() {
        assert_eq!(target("decimal(65,30)"), "numeric(65,30)");
        assert_eq!(target("decimal(10,0)"), "numeric(10,0)");
        let m = map("decimal(10,0) unsigned");
        assert_eq!(m.check.as_deref(), Some("{col} >= 0"));
        assert!(m.notes.contains(&notes::UNSIGNED));
        assert_eq!(target("float"), "real");
        assert_eq!(target("double"), "double precision");
        let m = map("float(7,4)");
        assert_eq!(m.target, PgType::Real);
        assert!(m.notes.contains(&notes::FLOAT_DIGITS));
        assert_eq!(map("double unsigned").check.as_deref(), Some("{col} >= 0"));
        assert_eq!(target("bit(1)"), "bit(1)");
        assert_eq!(target("bit(64)"), "bit(64)");
    }

    #[test]
    fn string_and_binary_table() {
        let m = map("char(10)");
        assert_eq!(m.target.to_string(), "character varying(10)");
        assert!(m.notes.contains(&notes::CHAR));
        assert_eq!(target("varchar(255)"), "character varying(255)");
        let m = map("char(0)");
        assert_eq!(m.target, PgType::VarChar(1));
        assert_eq!(m.check.as_deref(), Some("{col} = ''"));
        for s in ["tinytext", "text", "mediumtext", "longtext"] {
            assert_eq!(target(s), "text");
        }
        let m = map("binary(16)");
        assert_eq!(m.target, PgType::Bytea);
        assert_eq!(m.check.as_deref(), Some("octet_length({col}) = 16"));
        assert_eq!(
            map("varbinary(10)").check.as_deref(),
            Some("octet_length({col}) <= 10")
        );
        for s in ["tinyblob", "blob", "mediumblob", "longblob"] {
            assert_eq!(target(s), "bytea");
        }
    }

    #[test]
    fn temporal_table() {
        assert_eq!(target("date"), "date");
        assert_eq!(target("datetime(6)"), "timestamp(6) without time zone");
        assert_eq!(target("datetime"), "timestamp(0) without time zone");
        assert_eq!(target("timestamp"), "timestamp(0) with time zone");
        assert_eq!(target("timestamp(3)"), "timestamp(3) with time zone");
        assert_eq!(target("time(3)"), "interval hour to second(3)");
        let opts = MappingOptions {
            time_as_time: true,
            ..MappingOptions::default()
        };
        let m = map_mysql_column(&column("time(3)", true), &opts).unwrap();
        assert_eq!(m.target.to_string(), "time(3) without time zone");
        let m = map("year(4)");
        assert_eq!(m.target, PgType::SmallInt);
        assert_eq!(
            m.check.as_deref(),
            Some("{col} = 0 OR {col} BETWEEN 1901 AND 2155")
        );
    }

    #[test]
    fn enum_set_and_json_table() {
        let m = map("enum('a','b''c','')");
        assert_eq!(m.target, PgType::VarChar(3));
        assert_eq!(m.check.as_deref(), Some("{col} IN ('a','b''c','')"));
        assert_eq!(
            map(r"enum('back\\slash')").check.as_deref(),
            Some(r"{col} IN (E'back\\slash')")
        );
        assert_eq!(map("enum('')").target, PgType::VarChar(1));
        assert_eq!(map("enum('é€😀x')").target, PgType::VarChar(4));
        let m = map("set('x','y')");
        assert_eq!(m.target, PgType::VarChar(3));
        assert_eq!(
            m.check.as_deref(),
            Some("{col} = '' OR string_to_array({col}, ',') <@ ARRAY['x','y']::text[]")
        );
        assert_eq!(
            m.check_for("\"s\"").as_deref(),
            Some("\"s\" = '' OR string_to_array(\"s\", ',') <@ ARRAY['x','y']::text[]")
        );
        let nul = map_mysql_column(&column(r"enum('a\0b')", true), &Default::default());
        assert!(matches!(nul, Err(TypeError::Unmappable { .. })));

        assert_eq!(map("json").target, PgType::Jsonb);
        let mut c = column("longtext", true);
        c.json_checked = true;
        let m = map_mysql_column(&c, &MappingOptions::default()).unwrap();
        assert_eq!(m.source, MySqlType::Json);
        assert_eq!(m.target, PgType::Jsonb);
        assert!(m.notes.contains(&notes::MARIADB_JSON));
    }

    #[test]
    fn spatial_and_unknown_types_are_unsupported() {
        for s in ["geometry", "point", "linestring", "polygon", "multipolygon"] {
            let e = map_mysql_column(&column(s, true), &Default::default()).unwrap_err();
            assert_eq!(e.to_string(), format!("unsupported type `{s}`"));
        }
        let e = map_mysql_column(&column("inet6", true), &Default::default()).unwrap_err();
        assert!(matches!(e, TypeError::Unsupported { .. }));
    }
}
