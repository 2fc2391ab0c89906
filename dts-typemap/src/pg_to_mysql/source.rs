//! PostgreSQL column types as the source's catalog prints them (`format_type`), parsed, with
//! enums and domains resolved against the catalog's user-defined types.

use dts_core::{TableName, UserType, UserTypeKind};

/// A PostgreSQL column type, as the PostgreSQL → MySQL mapping distinguishes them. Domains
/// are resolved to the type they are over ([`resolve_pg_type`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PgSourceType {
    /// `boolean`.
    Boolean,
    /// `smallint`.
    SmallInt,
    /// `integer`.
    Integer,
    /// `bigint`.
    BigInt,
    /// `oid` (unsigned 32 bits).
    Oid,
    /// `numeric(p,s)`, or `numeric` without precision (`precision` `None`). PostgreSQL 15
    /// allows a negative scale and a scale above the precision.
    Numeric {
        /// Total significant digits, `None` when unconstrained.
        precision: Option<u32>,
        /// Fraction digits (0 when unconstrained).
        scale: i32,
    },
    /// `real`.
    Real,
    /// `double precision`.
    Double,
    /// `money`: its text form depends on the source's `lc_monetary`.
    Money,
    /// `character(n)`: blank padded; trailing spaces are not part of the value.
    Char(u32),
    /// `character varying(n)`, or without a limit.
    VarChar(Option<u32>),
    /// `text`.
    Text,
    /// `name` (at most 63 bytes).
    Name,
    /// `"char"` (one byte).
    SingleChar,
    /// `bytea`.
    Bytea,
    /// `date`.
    Date,
    /// `timestamp(p) without time zone` (p 6 when not given).
    Timestamp(u8),
    /// `timestamp(p) with time zone`.
    TimestampTz(u8),
    /// `time(p) without time zone`.
    Time(u8),
    /// `time with time zone`.
    TimeTz,
    /// `interval`, any fields and precision.
    Interval,
    /// `uuid`.
    Uuid,
    /// `json`.
    Json,
    /// `jsonb`.
    Jsonb,
    /// `xml`.
    Xml,
    /// `bit(n)`.
    Bit(u32),
    /// `bit varying(n)`, or without a limit.
    VarBit(Option<u32>),
    /// An array of the element type (any number of dimensions).
    Array(Box<PgSourceType>),
    /// An enum of the catalog, with its labels in sort order.
    Enum {
        /// The enum's qualified name.
        name: TableName,
        /// Its labels, in sort order.
        labels: Vec<String>,
    },
    /// Any other type (`inet`, `cidr`, `macaddr`, ranges, geometric types, `tsvector`,
    /// composite and extension types, …), by its name: copied as its text form.
    Other(String),
}

impl PgSourceType {
    /// Parses a built-in type as `format_type` prints it (`character varying(20)`,
    /// `timestamp(3) with time zone`, `integer[]`); user-defined and unknown names are
    /// [`PgSourceType::Other`] (see [`resolve_pg_type`] for enums and domains).
    pub fn parse(type_text: &str) -> PgSourceType {
        let t = type_text.trim();
        if let Some(element) = t.strip_suffix("[]") {
            return PgSourceType::Array(Box::new(PgSourceType::parse(element)));
        }
        let (name, args) = split_args(t);
        let first = args.first().copied();
        let precision = |default: u8| {
            first
                .and_then(|p| u8::try_from(p).ok())
                .map_or(default, |p| p.min(6))
        };
        let length = || first.and_then(|n| u32::try_from(n).ok());
        match name.as_str() {
            "boolean" => PgSourceType::Boolean,
            "smallint" => PgSourceType::SmallInt,
            "integer" => PgSourceType::Integer,
            "bigint" => PgSourceType::BigInt,
            "oid" => PgSourceType::Oid,
            "numeric" => PgSourceType::Numeric {
                precision: length(),
                scale: args
                    .get(1)
                    .and_then(|s| i32::try_from(*s).ok())
                    .unwrap_or(0),
            },
            "real" => PgSourceType::Real,
            "double precision" => PgSourceType::Double,
            "money" => PgSourceType::Money,
            "character" => PgSourceType::Char(length().unwrap_or(1)),
            "character varying" => PgSourceType::VarChar(length()),
            "text" => PgSourceType::Text,
            "name" => PgSourceType::Name,
            "\"char\"" => PgSourceType::SingleChar,
            "bytea" => PgSourceType::Bytea,
            "date" => PgSourceType::Date,
            "timestamp without time zone" => PgSourceType::Timestamp(precision(6)),
            "timestamp with time zone" => PgSourceType::TimestampTz(precision(6)),
            "time without time zone" => PgSourceType::Time(precision(6)),
            "time with time zone" => PgSourceType::TimeTz,
            "uuid" => PgSourceType::Uuid,
            "json" => PgSourceType::Json,
            "jsonb" => PgSourceType::Jsonb,
            "xml" => PgSourceType::Xml,
            "bit" => PgSourceType::Bit(length().unwrap_or(1)),
            "bit varying" => PgSourceType::VarBit(length()),
            n if n == "interval" || n.starts_with("interval ") => PgSourceType::Interval,
            _ => PgSourceType::Other(t.to_string()),
        }
    }

    /// Whether values of the type are numbers (JSON numbers inside arrays).
    pub(crate) fn is_number(&self) -> bool {
        matches!(
            self,
            PgSourceType::SmallInt
                | PgSourceType::Integer
                | PgSourceType::BigInt
                | PgSourceType::Oid
                | PgSourceType::Numeric { .. }
                | PgSourceType::Real
                | PgSourceType::Double
        )
    }
}

/// `name(1,2) rest` → (`name rest`, [1, 2]): the modifiers in parentheses, wherever they
/// stand (`timestamp(3) with time zone`, `interval day to second(2)`).
fn split_args(t: &str) -> (String, Vec<i64>) {
    let Some(open) = t.find('(') else {
        return (t.to_string(), Vec::new());
    };
    // `"char"` and quoted names carry no modifiers.
    if t.starts_with('"') {
        return (t.to_string(), Vec::new());
    }
    let Some(close) = t[open..].find(')').map(|c| c + open) else {
        return (t.to_string(), Vec::new());
    };
    let args: Vec<i64> = t[open + 1..close]
        .split(',')
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    let name = format!("{}{}", t[..open].trim_end(), &t[close + 1..]);
    (name, args)
}

/// Splits a possibly qualified, possibly quoted name as `format_type` prints it
/// (`tort.mood`, `"My Schema"."My Type"`) into its unquoted parts.
fn name_parts(t: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut chars = t.chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    '"' => break,
                    c => part.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                part.push(c);
                chars.next();
            }
        }
        parts.push(part);
        match chars.next() {
            None => return Some(parts),
            Some('.') => {}
            Some(_) => return None,
        }
    }
}

/// A column type resolved through the catalog's enums and domains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedType {
    /// The base type.
    pub ty: PgSourceType,
    /// Whether a domain on the way is `NOT NULL`.
    pub not_null: bool,
    /// The default of the nearest domain that has one, as the catalog prints it.
    pub default: Option<String>,
    /// The domains passed through, nearest first (their `CHECK`s are not carried).
    pub domains: Vec<TableName>,
}

/// Resolves `type_text` (as the catalog prints a column's type) against the catalog's enums
/// and domains: a domain becomes the type it is over (with its `NOT NULL` and default), an
/// enum its labels; arrays of either are resolved element-wise.
pub fn resolve_pg_type(type_text: &str, types: &[UserType]) -> ResolvedType {
    let mut out = ResolvedType {
        ty: PgSourceType::Other(String::new()),
        not_null: false,
        default: None,
        domains: Vec::new(),
    };
    let mut text = type_text.trim().to_string();
    // A domain over a domain over …: at most as many steps as there are types.
    for _ in 0..=types.len() {
        let (base, array) = match text.strip_suffix("[]") {
            Some(e) => (e.to_string(), true),
            None => (text.clone(), false),
        };
        let user = name_parts(&base).filter(|p| p.len() == 2).and_then(|p| {
            types
                .iter()
                .find(|t| t.name.schema == p[0] && t.name.name == p[1])
        });
        let Some(user) = user else {
            out.ty = PgSourceType::parse(&text);
            return out;
        };
        match &user.kind {
            UserTypeKind::Enum { labels } => {
                let e = PgSourceType::Enum {
                    name: user.name.clone(),
                    labels: labels.clone(),
                };
                out.ty = if array {
                    PgSourceType::Array(Box::new(e))
                } else {
                    e
                };
                return out;
            }
            UserTypeKind::Domain {
                base: over,
                default,
                not_null,
                ..
            } => {
                if array {
                    // An array of a domain: the elements' type, without its constraints.
                    let element = resolve_pg_type(&base, types);
                    out.ty = PgSourceType::Array(Box::new(element.ty));
                    return out;
                }
                out.not_null |= *not_null;
                if out.default.is_none() {
                    out.default.clone_from(default);
                }
                out.domains.push(user.name.clone());
                text = over.trim().to_string();
            }
            _ => {
                out.ty = PgSourceType::Other(text);
                return out;
            }
        }
    }
    out.ty = PgSourceType::Other(text);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_format_type_spellings() {
        use PgSourceType as P;
        for (text, ty) in [
            ("integer", P::Integer),
            (
                "numeric",
                P::Numeric {
                    precision: None,
                    scale: 0,
                },
            ),
            (
                "numeric(5,-2)",
                P::Numeric {
                    precision: Some(5),
                    scale: -2,
                },
            ),
            ("character varying", P::VarChar(None)),
            ("character varying(20)", P::VarChar(Some(20))),
            ("character(3)", P::Char(3)),
            ("\"char\"", P::SingleChar),
            ("timestamp(3) without time zone", P::Timestamp(3)),
            ("timestamp with time zone", P::TimestampTz(6)),
            ("time(0) without time zone", P::Time(0)),
            ("time with time zone", P::TimeTz),
            ("interval day to second(2)", P::Interval),
            ("interval(3)", P::Interval),
            ("bit varying(100)", P::VarBit(Some(100))),
            ("bit(3)", P::Bit(3)),
            ("integer[]", P::Array(Box::new(P::Integer))),
            (
                "character varying(5)[]",
                P::Array(Box::new(P::VarChar(Some(5)))),
            ),
            ("inet", P::Other("inet".into())),
        ] {
            assert_eq!(PgSourceType::parse(text), ty, "{text}");
        }
    }

    #[test]
    fn resolves_domains_and_enums() {
        let types = vec![
            UserType {
                name: TableName::new("s", "My Mood"),
                kind: UserTypeKind::Enum {
                    labels: vec!["a".into(), "b".into()],
                },
                comment: None,
            },
            UserType {
                name: TableName::new("s", "pos"),
                kind: UserTypeKind::Domain {
                    base: "integer".into(),
                    collation: None,
                    default: Some("1".into()),
                    not_null: false,
                    checks: vec![],
                },
                comment: None,
            },
            UserType {
                name: TableName::new("s", "strict_pos"),
                kind: UserTypeKind::Domain {
                    base: "s.pos".into(),
                    collation: None,
                    default: None,
                    not_null: true,
                    checks: vec![],
                },
                comment: None,
            },
            UserType {
                name: TableName::new("s", "moods"),
                kind: UserTypeKind::Domain {
                    base: "s.\"My Mood\"[]".into(),
                    collation: None,
                    default: None,
                    not_null: false,
                    checks: vec![],
                },
                comment: None,
            },
        ];
        let r = resolve_pg_type("s.strict_pos", &types);
        assert_eq!(r.ty, PgSourceType::Integer);
        assert!(r.not_null);
        assert_eq!(r.default.as_deref(), Some("1"));
        assert_eq!(r.domains.len(), 2);
        let r = resolve_pg_type("s.moods", &types);
        assert!(matches!(
            r.ty,
            PgSourceType::Array(e) if matches!(*e, PgSourceType::Enum { ref labels, .. } if labels.len() == 2)
        ));
        assert_eq!(
            resolve_pg_type("s.pos[]", &types).ty,
            PgSourceType::Array(Box::new(PgSourceType::Integer))
        );
        assert_eq!(
            resolve_pg_type("other.t", &types).ty,
            PgSourceType::Other("other.t".into())
        );
    }
}
