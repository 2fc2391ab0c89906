//! MySQL/MariaDB column types, parsed from `information_schema.COLUMNS.COLUMN_TYPE`.

use std::fmt;

use crate::error::TypeError;

/// A MySQL or MariaDB column type.
///
/// The sign of `decimal`, `float` and `double` columns is not part of the type: MySQL allows
/// `unsigned` on them as a value rule, which the mapping keeps as a `CHECK` (see
/// [`crate::ColumnMapping::unsigned`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MySqlType {
    /// `tinyint[(w)] [unsigned]`; `bool`/`boolean` is `tinyint(1)`.
    TinyInt {
        /// Whether the column is unsigned (0..=255).
        unsigned: bool,
        /// The display width, kept because `tinyint(1)` conventionally holds booleans.
        display_width: Option<u32>,
    },
    /// `smallint [unsigned]`.
    SmallInt {
        /// Whether the column is unsigned.
        unsigned: bool,
    },
    /// `mediumint [unsigned]` (24 bits).
    MediumInt {
        /// Whether the column is unsigned.
        unsigned: bool,
    },
    /// `int [unsigned]`.
    Int {
        /// Whether the column is unsigned.
        unsigned: bool,
    },
    /// `bigint [unsigned]`.
    BigInt {
        /// Whether the column is unsigned.
        unsigned: bool,
    },
    /// `decimal(p,s)`: precision 1..=65, scale 0..=38 (MariaDB; MySQL stops at 30).
    Decimal {
        /// Total number of digits.
        precision: u8,
        /// Number of fraction digits.
        scale: u8,
    },
    /// `float` (also `float(M,D)` and `float(p)` for p ≤ 24): IEEE single precision.
    Float,
    /// `double` (also `real`, `double precision`, `double(M,D)`, `float(p)` for p > 24).
    Double,
    /// `bit(n)`, n in 1..=64.
    Bit(u8),
    /// `char(n)`, n characters (0..=255).
    Char(u32),
    /// `varchar(n)`, n characters.
    VarChar(u32),
    /// `tinytext` (255 bytes).
    TinyText,
    /// `text` (65,535 bytes).
    Text,
    /// `mediumtext` (16 MiB).
    MediumText,
    /// `longtext` (4 GiB).
    LongText,
    /// `binary(n)`, exactly n bytes (zero padded).
    Binary(u32),
    /// `varbinary(n)`, up to n bytes.
    VarBinary(u32),
    /// `tinyblob` (255 bytes).
    TinyBlob,
    /// `blob` (65,535 bytes).
    Blob,
    /// `mediumblob` (16 MiB).
    MediumBlob,
    /// `longblob` (4 GiB).
    LongBlob,
    /// `date`.
    Date,
    /// `datetime(fsp)`, fsp in 0..=6.
    DateTime(u8),
    /// `timestamp(fsp)`, fsp in 0..=6.
    Timestamp(u8),
    /// `time(fsp)`, fsp in 0..=6: a signed duration up to ±838:59:59.
    Time(u8),
    /// `year` (`year(4)`, `year(2)`).
    Year,
    /// `enum(...)` with its members in index order (index 1 is the first).
    Enum(Vec<String>),
    /// `set(...)` with its members in bit order (bit 0 is the first).
    Set(Vec<String>),
    /// `json` (MySQL's binary JSON; MariaDB's JSON is `longtext` with a `json_valid` check).
    Json,
    /// A spatial type (`geometry`, `point`, `linestring`, `polygon`, `multi…`,
    /// `geometrycollection`), by name.
    Spatial(String),
}

/// Highest `TIME` magnitude MySQL stores: 838:59:59, in microseconds.
pub(crate) const MAX_TIME_MICROS: i64 = (838 * 3600 + 59 * 60 + 59) * 1_000_000;

/// A parsed `COLUMN_TYPE` with the attributes that are not part of [`MySqlType`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParsedType {
    pub(crate) ty: MySqlType,
    pub(crate) unsigned: bool,
}

impl MySqlType {
    /// Parses a column type as `information_schema.COLUMNS.COLUMN_TYPE` prints it:
    /// `int(11)`, `int(10) unsigned zerofill`, `decimal(65,30)`, `float(7,4)`,
    /// `enum('a','b''c','')`, `datetime(6)`, `bool`, …
    ///
    /// Keywords are case-insensitive; enum and set members keep their case. MariaDB's
    /// version comments (`datetime /* mariadb-5.3 */`) are ignored.
    ///
    /// # Errors
    ///
    /// [`TypeError::Unsupported`] for unknown type names (`inet6`, `uuid`, …) and
    /// [`TypeError::Invalid`] for malformed declarations. Spatial types parse to
    /// [`MySqlType::Spatial`]; mapping them fails.
    pub fn parse(column_type: &str) -> Result<MySqlType, TypeError> {
        parse_column_type(column_type).map(|p| p.ty)
    }

    /// Whether the type is an integer type declared `unsigned`.
    pub fn is_unsigned_integer(&self) -> bool {
        match self {
            MySqlType::TinyInt { unsigned, .. }
            | MySqlType::SmallInt { unsigned }
            | MySqlType::MediumInt { unsigned }
            | MySqlType::Int { unsigned }
            | MySqlType::BigInt { unsigned } => *unsigned,
            _ => false,
        }
    }

    /// The inclusive value range of an integer type, `None` for other types.
    pub fn integer_range(&self) -> Option<(i128, i128)> {
        let (lo, hi): (i128, i128) = match self {
            MySqlType::TinyInt {
                unsigned: false, ..
            } => (i8::MIN.into(), i8::MAX.into()),
            MySqlType::TinyInt { unsigned: true, .. } => (0, u8::MAX.into()),
            MySqlType::SmallInt { unsigned: false } => (i16::MIN.into(), i16::MAX.into()),
            MySqlType::SmallInt { unsigned: true } => (0, u16::MAX.into()),
            MySqlType::MediumInt { unsigned: false } => (-(1 << 23), (1 << 23) - 1),
            MySqlType::MediumInt { unsigned: true } => (0, (1 << 24) - 1),
            MySqlType::Int { unsigned: false } => (i32::MIN.into(), i32::MAX.into()),
            MySqlType::Int { unsigned: true } => (0, u32::MAX.into()),
            MySqlType::BigInt { unsigned: false } => (i64::MIN.into(), i64::MAX.into()),
            MySqlType::BigInt { unsigned: true } => (0, u64::MAX.into()),
            _ => return None,
        };
        Some((lo, hi))
    }
}

fn write_members(f: &mut fmt::Formatter<'_>, name: &str, members: &[String]) -> fmt::Result {
    f.write_str(name)?;
    f.write_str("(")?;
    for (i, m) in members.iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        f.write_str(&mysql_quote(m))?;
    }
    f.write_str(")")
}

/// Quotes a string as MySQL prints enum and set members in `COLUMN_TYPE`: in single
/// quotes, `'` doubled, backslash, NUL, newline and carriage return escaped.
///
/// ```
/// assert_eq!(dts_typemap::mysql::mysql_quote("it's\\"), r"'it''s\\'");
/// ```
pub fn mysql_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("''"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

impl fmt::Display for MySqlType {
    /// The canonical MySQL spelling (`int unsigned`, `decimal(10,2)`, `datetime(6)`,
    /// `enum('a','b''c')`). The sign of decimals and floats is not part of the type.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = |u: bool| if u { " unsigned" } else { "" };
        let frac = |f: &mut fmt::Formatter<'_>, name: &str, fsp: u8| {
            if fsp == 0 {
                f.write_str(name)
            } else {
                write!(f, "{name}({fsp})")
            }
        };
        match self {
            MySqlType::TinyInt {
                unsigned,
                display_width: Some(w),
            } => write!(f, "tinyint({w}){}", sign(*unsigned)),
            MySqlType::TinyInt {
                unsigned,
                display_width: None,
            } => write!(f, "tinyint{}", sign(*unsigned)),
            MySqlType::SmallInt { unsigned } => write!(f, "smallint{}", sign(*unsigned)),
            MySqlType::MediumInt { unsigned } => write!(f, "mediumint{}", sign(*unsigned)),
            MySqlType::Int { unsigned } => write!(f, "int{}", sign(*unsigned)),
            MySqlType::BigInt { unsigned } => write!(f, "bigint{}", sign(*unsigned)),
            MySqlType::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            MySqlType::Float => f.write_str("float"),
            MySqlType::Double => f.write_str("double"),
            MySqlType::Bit(n) => write!(f, "bit({n})"),
            MySqlType::Char(n) => write!(f, "char({n})"),
            MySqlType::VarChar(n) => write!(f, "varchar({n})"),
            MySqlType::TinyText => f.write_str("tinytext"),
            MySqlType::Text => f.write_str("text"),
            MySqlType::MediumText => f.write_str("mediumtext"),
            MySqlType::LongText => f.write_str("longtext"),
            MySqlType::Binary(n) => write!(f, "binary({n})"),
            MySqlType::VarBinary(n) => write!(f, "varbinary({n})"),
            MySqlType::TinyBlob => f.write_str("tinyblob"),
            MySqlType::Blob => f.write_str("blob"),
            MySqlType::MediumBlob => f.write_str("mediumblob"),
            MySqlType::LongBlob => f.write_str("longblob"),
            MySqlType::Date => f.write_str("date"),
            MySqlType::DateTime(fsp) => frac(f, "datetime", *fsp),
            MySqlType::Timestamp(fsp) => frac(f, "timestamp", *fsp),
            MySqlType::Time(fsp) => frac(f, "time", *fsp),
            MySqlType::Year => f.write_str("year"),
            MySqlType::Enum(m) => write_members(f, "enum", m),
            MySqlType::Set(m) => write_members(f, "set", m),
            MySqlType::Json => f.write_str("json"),
            MySqlType::Spatial(name) => f.write_str(name),
        }
    }
}

/// Removes `/* … */` comments outside quotes (MariaDB prints `datetime /* mariadb-5.3 */`
/// for temporal columns in the pre-10.0 format).
fn strip_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_quote = false;
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if !in_quote && rest.starts_with("/*") {
            match rest[2..].find("*/") {
                Some(end) => {
                    rest = &rest[2 + end + 2..];
                    out.push(' ');
                    continue;
                }
                None => break,
            }
        }
        if c == '\'' {
            in_quote = !in_quote;
        } else if c == '\\' && in_quote {
            // Keep the escaped character with its backslash.
            out.push(c);
            rest = &rest[1..];
            if let Some(n) = rest.chars().next() {
                out.push(n);
                rest = &rest[n.len_utf8()..];
            }
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Arguments inside the parentheses after a type name.
enum Args {
    None,
    Numbers(Vec<u32>),
    Literals(Vec<String>),
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
    whole: &'a str,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    fn skip_ws(&mut self) {
        let r = self.rest();
        self.pos += r.len() - r.trim_start().len();
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn word(&mut self) -> &'a str {
        let r = self.rest();
        let n = r
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(r.len());
        self.pos += n;
        &r[..n]
    }

    fn invalid(&self, reason: &'static str) -> TypeError {
        TypeError::invalid(self.whole, reason)
    }

    fn number(&mut self) -> Result<u32, TypeError> {
        let r = self.rest();
        let n = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
        if n == 0 {
            return Err(self.invalid("expected a number"));
        }
        self.pos += n;
        r[..n]
            .parse()
            .map_err(|_| self.invalid("number out of range"))
    }

    /// Parses a single-quoted literal with `''` and backslash escapes.
    fn literal(&mut self) -> Result<String, TypeError> {
        if !self.eat('\'') {
            return Err(self.invalid("expected a quoted member"));
        }
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.invalid("unterminated quoted member"));
            };
            self.pos += c.len_utf8();
            match c {
                '\'' => {
                    if self.eat('\'') {
                        out.push('\'');
                    } else {
                        return Ok(out);
                    }
                }
                '\\' => {
                    let Some(e) = self.peek() else {
                        return Err(self.invalid("unterminated quoted member"));
                    };
                    self.pos += e.len_utf8();
                    match e {
                        '0' => out.push('\0'),
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        't' => out.push('\t'),
                        'b' => out.push('\u{8}'),
                        'Z' => out.push('\u{1a}'),
                        // MySQL keeps the backslash before `%` and `_`.
                        '%' | '_' => {
                            out.push('\\');
                            out.push(e);
                        }
                        other => out.push(other),
                    }
                }
                c => out.push(c),
            }
        }
    }

    fn args(&mut self, quoted: bool) -> Result<Args, TypeError> {
        self.skip_ws();
        if !self.eat('(') {
            return Ok(Args::None);
        }
        let mut numbers = Vec::new();
        let mut literals = Vec::new();
        loop {
            self.skip_ws();
            if quoted {
                literals.push(self.literal()?);
            } else {
                numbers.push(self.number()?);
            }
            self.skip_ws();
            if self.eat(')') {
                break;
            }
            if !self.eat(',') {
                return Err(self.invalid("expected `,` or `)`"));
            }
        }
        Ok(if quoted {
            Args::Literals(literals)
        } else {
            Args::Numbers(numbers)
        })
    }
}

fn small(n: u32, max: u32, c: &Cursor<'_>, reason: &'static str) -> Result<u8, TypeError> {
    if n > max {
        return Err(c.invalid(reason));
    }
    u8::try_from(n).map_err(|_| c.invalid(reason))
}

/// Parses a `COLUMN_TYPE` into the type and its `unsigned` attribute.
pub(crate) fn parse_column_type(column_type: &str) -> Result<ParsedType, TypeError> {
    let cleaned = strip_comments(column_type);
    let mut c = Cursor {
        s: &cleaned,
        pos: 0,
        whole: column_type,
    };
    c.skip_ws();
    let mut name = c.word().to_ascii_lowercase();
    if name.is_empty() {
        return Err(c.invalid("missing type name"));
    }
    if name == "double" {
        let save = c.pos;
        c.skip_ws();
        if c.word().eq_ignore_ascii_case("precision") {
            name = "double precision".into();
        } else {
            c.pos = save;
        }
    }
    let quoted = matches!(name.as_str(), "enum" | "set");
    let args = c.args(quoted)?;

    // Trailing attributes.
    let mut unsigned = false;
    let mut attributes = false;
    loop {
        c.skip_ws();
        if c.rest().is_empty() {
            break;
        }
        let w = c.word().to_ascii_lowercase();
        match w.as_str() {
            "unsigned" | "zerofill" => unsigned = true,
            "signed" => {}
            "" => return Err(c.invalid("unexpected character")),
            _ => return Err(c.invalid("unexpected attribute")),
        }
        attributes = true;
    }

    // Quoted arguments are only parsed for `enum` and `set`, which read them below.
    let n = match &args {
        Args::Numbers(n) => n.clone(),
        Args::None | Args::Literals(_) => Vec::new(),
    };
    let at_most = |k: usize| -> Result<(), TypeError> {
        if n.len() > k {
            Err(c.invalid("too many arguments"))
        } else {
            Ok(())
        }
    };
    let fsp = |n: &[u32]| -> Result<u8, TypeError> {
        small(
            n.first().copied().unwrap_or(0),
            6,
            &c,
            "fractional seconds precision above 6",
        )
    };

    let ty = match name.as_str() {
        "bool" | "boolean" => {
            at_most(0)?;
            MySqlType::TinyInt {
                unsigned,
                display_width: Some(1),
            }
        }
        "tinyint" | "int1" => {
            at_most(1)?;
            MySqlType::TinyInt {
                unsigned,
                display_width: n.first().copied(),
            }
        }
        "smallint" | "int2" => {
            at_most(1)?;
            MySqlType::SmallInt { unsigned }
        }
        "mediumint" | "int3" | "middleint" => {
            at_most(1)?;
            MySqlType::MediumInt { unsigned }
        }
        "int" | "integer" | "int4" => {
            at_most(1)?;
            MySqlType::Int { unsigned }
        }
        "bigint" | "int8" => {
            at_most(1)?;
            MySqlType::BigInt { unsigned }
        }
        "decimal" | "dec" | "numeric" | "fixed" => {
            at_most(2)?;
            let p = n.first().copied().unwrap_or(10);
            let s = n.get(1).copied().unwrap_or(0);
            if p == 0 {
                return Err(c.invalid("precision must be at least 1"));
            }
            let precision = small(p, 65, &c, "precision above 65")?;
            let scale = small(s, 38, &c, "scale above 38")?;
            if scale > precision {
                return Err(c.invalid("scale above precision"));
            }
            MySqlType::Decimal { precision, scale }
        }
        "float" | "float4" => match n.as_slice() {
            [] | [_, _] => MySqlType::Float,
            [p] if *p <= 24 => MySqlType::Float,
            [p] if *p <= 53 => MySqlType::Double,
            [_] => return Err(c.invalid("float precision above 53")),
            _ => return Err(c.invalid("too many arguments")),
        },
        "double" | "double precision" | "real" | "float8" => match n.as_slice() {
            [] | [_, _] => MySqlType::Double,
            _ => return Err(c.invalid("expected no arguments or (M,D)")),
        },
        "bit" => {
            at_most(1)?;
            let len = n.first().copied().unwrap_or(1);
            if len == 0 {
                return Err(c.invalid("bit length must be at least 1"));
            }
            MySqlType::Bit(small(len, 64, &c, "bit length above 64")?)
        }
        "char" | "character" | "nchar" => {
            at_most(1)?;
            let len = n.first().copied().unwrap_or(1);
            if len > 255 {
                return Err(c.invalid("char length above 255"));
            }
            MySqlType::Char(len)
        }
        "varchar" | "nvarchar" => match n.as_slice() {
            [len] if *len <= 65_535 => MySqlType::VarChar(*len),
            [_] => return Err(c.invalid("varchar length above 65535")),
            _ => return Err(c.invalid("varchar needs a length")),
        },
        "binary" => {
            at_most(1)?;
            let len = n.first().copied().unwrap_or(1);
            if len > 255 {
                return Err(c.invalid("binary length above 255"));
            }
            MySqlType::Binary(len)
        }
        "varbinary" => match n.as_slice() {
            [len] if *len <= 65_535 => MySqlType::VarBinary(*len),
            [_] => return Err(c.invalid("varbinary length above 65535")),
            _ => return Err(c.invalid("varbinary needs a length")),
        },
        "tinytext" => {
            at_most(0)?;
            MySqlType::TinyText
        }
        "text" => {
            at_most(1)?;
            match n.first().copied().unwrap_or(65_535) {
                0..=255 => MySqlType::TinyText,
                256..=65_535 => MySqlType::Text,
                65_536..=16_777_215 => MySqlType::MediumText,
                _ => MySqlType::LongText,
            }
        }
        "mediumtext" | "long" => {
            at_most(0)?;
            MySqlType::MediumText
        }
        "longtext" => {
            at_most(0)?;
            MySqlType::LongText
        }
        "tinyblob" => {
            at_most(0)?;
            MySqlType::TinyBlob
        }
        "blob" => {
            at_most(1)?;
            match n.first().copied().unwrap_or(65_535) {
                0..=255 => MySqlType::TinyBlob,
                256..=65_535 => MySqlType::Blob,
                65_536..=16_777_215 => MySqlType::MediumBlob,
                _ => MySqlType::LongBlob,
            }
        }
        "mediumblob" => {
            at_most(0)?;
            MySqlType::MediumBlob
        }
        "longblob" => {
            at_most(0)?;
            MySqlType::LongBlob
        }
        "date" => {
            at_most(0)?;
            MySqlType::Date
        }
        "datetime" => {
            at_most(1)?;
            MySqlType::DateTime(fsp(&n)?)
        }
        "timestamp" => {
            at_most(1)?;
            MySqlType::Timestamp(fsp(&n)?)
        }
        "time" => {
            at_most(1)?;
            MySqlType::Time(fsp(&n)?)
        }
        "year" => {
            at_most(1)?;
            if !matches!(n.first(), None | Some(2 | 4)) {
                return Err(c.invalid("year width must be 2 or 4"));
            }
            MySqlType::Year
        }
        "enum" | "set" => {
            let Args::Literals(members) = args else {
                return Err(c.invalid("expected quoted members"));
            };
            if name == "enum" {
                if members.len() > 65_535 {
                    return Err(c.invalid("more than 65535 enum members"));
                }
                MySqlType::Enum(members)
            } else {
                if members.len() > 64 {
                    return Err(c.invalid("more than 64 set members"));
                }
                MySqlType::Set(members)
            }
        }
        "json" => {
            at_most(0)?;
            MySqlType::Json
        }
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" | "geomcollection" => {
            at_most(0)?;
            MySqlType::Spatial(name)
        }
        _ => return Err(TypeError::unsupported(column_type)),
    };
    let numeric = matches!(
        ty,
        MySqlType::TinyInt { .. }
            | MySqlType::SmallInt { .. }
            | MySqlType::MediumInt { .. }
            | MySqlType::Int { .. }
            | MySqlType::BigInt { .. }
            | MySqlType::Decimal { .. }
            | MySqlType::Float
            | MySqlType::Double
    );
    if attributes && !numeric {
        return Err(c.invalid("sign attributes on a non-numeric type"));
    }
    Ok(ParsedType { ty, unsigned })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> MySqlType {
        MySqlType::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn unsigned(s: &str) -> bool {
        parse_column_type(s).unwrap().unsigned
    }

    #[test]
    fn integers_with_widths_and_attributes() {
        assert_eq!(p("int(11)"), MySqlType::Int { unsigned: false });
        assert_eq!(p("int(10) unsigned"), MySqlType::Int { unsigned: true });
        assert_eq!(
            p("int unsigned zerofill"),
            MySqlType::Int { unsigned: true }
        );
        assert_eq!(p("int(5) zerofill"), MySqlType::Int { unsigned: true });
        assert_eq!(p("INT(10) UNSIGNED"), MySqlType::Int { unsigned: true });
        assert_eq!(
            p("tinyint(1)"),
            MySqlType::TinyInt {
                unsigned: false,
                display_width: Some(1)
            }
        );
        assert_eq!(
            p("tinyint(3) unsigned"),
            MySqlType::TinyInt {
                unsigned: true,
                display_width: Some(3)
            }
        );
        assert_eq!(
            p("tinyint"),
            MySqlType::TinyInt {
                unsigned: false,
                display_width: None
            }
        );
        for b in ["bool", "boolean", "BOOL"] {
            assert_eq!(
                p(b),
                MySqlType::TinyInt {
                    unsigned: false,
                    display_width: Some(1)
                }
            );
        }
        assert_eq!(
            p("smallint(5) unsigned"),
            MySqlType::SmallInt { unsigned: true }
        );
        assert_eq!(p("mediumint(9)"), MySqlType::MediumInt { unsigned: false });
        assert_eq!(
            p("bigint(20) unsigned"),
            MySqlType::BigInt { unsigned: true }
        );
        assert_eq!(p("bigint"), MySqlType::BigInt { unsigned: false });
        assert_eq!(p("integer"), MySqlType::Int { unsigned: false });
        assert_eq!(p("int signed"), MySqlType::Int { unsigned: false });
    }

    #[test]
    fn decimals_and_floats() {
        assert_eq!(
            p("decimal(65,30)"),
            MySqlType::Decimal {
                precision: 65,
                scale: 30
            }
        );
        assert_eq!(
            p("decimal"),
            MySqlType::Decimal {
                precision: 10,
                scale: 0
            }
        );
        assert_eq!(
            p("decimal(10,0) unsigned"),
            MySqlType::Decimal {
                precision: 10,
                scale: 0
            }
        );
        assert!(unsigned("decimal(10,0) unsigned"));
        assert!(!unsigned("decimal(10,0)"));
        assert_eq!(
            p("numeric(5,2)"),
            MySqlType::Decimal {
                precision: 5,
                scale: 2
            }
        );
        assert_eq!(p("float"), MySqlType::Float);
        assert_eq!(p("float(7,4)"), MySqlType::Float);
        assert_eq!(p("float(10,2) unsigned"), MySqlType::Float);
        assert!(unsigned("float(10,2) unsigned"));
        assert_eq!(p("float(24)"), MySqlType::Float);
        assert_eq!(p("float(30)"), MySqlType::Double);
        assert_eq!(p("double"), MySqlType::Double);
        assert_eq!(p("double unsigned"), MySqlType::Double);
        assert!(unsigned("double unsigned"));
        assert_eq!(p("double(10,3)"), MySqlType::Double);
        assert_eq!(p("double precision"), MySqlType::Double);
        assert_eq!(p("real"), MySqlType::Double);
        for bad in [
            "decimal(66,2)",
            "decimal(5,6)",
            "decimal(0,0)",
            "decimal(10,39)",
            "float(54)",
            "double(5)",
        ] {
            assert!(
                matches!(MySqlType::parse(bad), Err(TypeError::Invalid { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn strings_binaries_and_bits() {
        assert_eq!(p("bit(64)"), MySqlType::Bit(64));
        assert_eq!(p("bit(1)"), MySqlType::Bit(1));
        assert_eq!(p("bit"), MySqlType::Bit(1));
        assert_eq!(p("char(10)"), MySqlType::Char(10));
        assert_eq!(p("char(0)"), MySqlType::Char(0));
        assert_eq!(p("char"), MySqlType::Char(1));
        assert_eq!(p("varchar(255)"), MySqlType::VarChar(255));
        assert_eq!(p("binary(16)"), MySqlType::Binary(16));
        assert_eq!(p("varbinary(10)"), MySqlType::VarBinary(10));
        for (s, t) in [
            ("tinytext", MySqlType::TinyText),
            ("text", MySqlType::Text),
            ("mediumtext", MySqlType::MediumText),
            ("longtext", MySqlType::LongText),
            ("tinyblob", MySqlType::TinyBlob),
            ("blob", MySqlType::Blob),
            ("mediumblob", MySqlType::MediumBlob),
            ("longblob", MySqlType::LongBlob),
            ("text(100)", MySqlType::TinyText),
            ("blob(70000)", MySqlType::MediumBlob),
        ] {
            assert_eq!(p(s), t, "{s}");
        }
        for bad in [
            "bit(65)",
            "bit(0)",
            "varchar",
            "char(256)",
            "varchar(65536)",
        ] {
            assert!(
                matches!(MySqlType::parse(bad), Err(TypeError::Invalid { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn temporal_types() {
        assert_eq!(p("date"), MySqlType::Date);
        assert_eq!(p("datetime(6)"), MySqlType::DateTime(6));
        assert_eq!(p("datetime"), MySqlType::DateTime(0));
        assert_eq!(p("timestamp"), MySqlType::Timestamp(0));
        assert_eq!(p("timestamp(3)"), MySqlType::Timestamp(3));
        assert_eq!(p("time(3)"), MySqlType::Time(3));
        assert_eq!(p("time"), MySqlType::Time(0));
        assert_eq!(p("year(4)"), MySqlType::Year);
        assert_eq!(p("year"), MySqlType::Year);
        assert_eq!(p("year(2)"), MySqlType::Year);
        // MariaDB marks temporal columns in the old on-disk format with a comment.
        assert_eq!(p("datetime /* mariadb-5.3 */"), MySqlType::DateTime(0));
        assert_eq!(p("time(3) /* mariadb-5.3 */"), MySqlType::Time(3));
        assert!(MySqlType::parse("datetime(7)").is_err());
        assert!(MySqlType::parse("year(3)").is_err());
        assert!(MySqlType::parse("date unsigned").is_err());
    }

    #[test]
    fn enum_and_set_members_with_quotes_commas_and_escapes() {
        assert_eq!(
            p("enum('a','b''c','')"),
            MySqlType::Enum(vec!["a".into(), "b'c".into(), String::new()])
        );
        assert_eq!(
            p("set('x','y')"),
            MySqlType::Set(vec!["x".into(), "y".into()])
        );
        // Captured from MariaDB 10.11 information_schema.COLUMNS.COLUMN_TYPE.
        assert_eq!(
            p(r"enum('a','b''c','','x,y','(p)','back\\slash','nl\nx')"),
            MySqlType::Enum(
                ["a", "b'c", "", "x,y", "(p)", "back\\slash", "nl\nx"]
                    .map(String::from)
                    .to_vec()
            )
        );
        assert_eq!(
            p("enum('a\\0b','tab\tx','dq\"x','é€😀')"),
            MySqlType::Enum(
                ["a\0b", "tab\tx", "dq\"x", "é€😀"]
                    .map(String::from)
                    .to_vec()
            )
        );
        assert_eq!(
            p("ENUM( 'A' , 'b' )"),
            MySqlType::Enum(vec!["A".into(), "b".into()])
        );
        for bad in ["enum('a'", "enum('a',)", "enum(a)", "set", "enum('a') x"] {
            assert!(MySqlType::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_spatial_and_unknown() {
        assert_eq!(p("json"), MySqlType::Json);
        assert_eq!(p("geometry"), MySqlType::Spatial("geometry".into()));
        assert_eq!(p("point"), MySqlType::Spatial("point".into()));
        assert_eq!(
            p("geometrycollection"),
            MySqlType::Spatial("geometrycollection".into())
        );
        assert_eq!(
            MySqlType::parse("inet6"),
            Err(TypeError::Unsupported {
                type_name: "inet6".into()
            })
        );
        assert_eq!(
            MySqlType::parse("uuid").unwrap_err().to_string(),
            "unsupported type `uuid`"
        );
        assert!(matches!(
            MySqlType::parse(""),
            Err(TypeError::Invalid { .. })
        ));
    }

    #[test]
    fn display_round_trips_through_parse() {
        for s in [
            "tinyint(1)",
            "tinyint unsigned",
            "int unsigned",
            "bigint unsigned",
            "decimal(65,30)",
            "float",
            "double",
            "bit(64)",
            "char(10)",
            "varchar(255)",
            "binary(16)",
            "datetime(6)",
            "timestamp",
            "time(3)",
            "year",
            "json",
            "geometry",
            r"enum('a','b''c','','x,y','back\\slash','nl\nx','nul\0')",
            "set('x','y')",
        ] {
            let t = p(s);
            assert_eq!(t.to_string(), s);
            assert_eq!(p(&t.to_string()), t);
        }
    }

    #[test]
    fn integer_ranges() {
        assert_eq!(
            p("mediumint").integer_range(),
            Some((-8_388_608, 8_388_607))
        );
        assert_eq!(
            p("bigint unsigned").integer_range(),
            Some((0, 18_446_744_073_709_551_615))
        );
        assert_eq!(p("text").integer_range(), None);
        assert!(p("int unsigned").is_unsigned_integer());
    }
}
