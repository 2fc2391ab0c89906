//! Column type changes: which conversions PostgreSQL performs exactly as the source did, and
//! the value existing rows get when a `NOT NULL` column without a default is added.

use dts_typemap::pg::PgType;
use dts_typemap::{ColumnMapping, MySqlType};

use dts_typemap::quote::{quote_bytea, quote_literal};

/// How a column's values are converted when its type changes from `old` to `new`: `Ok(None)`
/// when the target type stays, `Ok(Some(expr))` with the `USING` expression over
/// `column` (quoted), or `Err(why)` when PostgreSQL would not produce what the source did.
///
/// Conversions are allowed where both engines give the same value or PostgreSQL refuses the
/// value outright (so replication stops instead of diverging): integers and decimals among
/// themselves and to floating point or text, text to text (enum and set members are text),
/// floating point widening, text to numbers or JSON, byte strings, date to datetime, and
/// precision changes of temporal types. Everything else (floating point to integer rounds
/// differently, datetime to timestamp depends on the session time zone, temporal and
/// floating point values print differently as text, text and bytes depend on the
/// character set) is refused.
pub(super) fn conversion(
    old: &ColumnMapping,
    new: &ColumnMapping,
    column: &str,
) -> Result<Option<String>, String> {
    use PgType as P;
    if old.target == new.target {
        return Ok(None);
    }
    let cast = || Ok(Some(format!("{column}::{}", new.target)));
    let exact = |t: &PgType| matches!(t, P::SmallInt | P::Integer | P::BigInt | P::Numeric { .. });
    let float = |t: &PgType| matches!(t, P::Real | P::Double);
    let text = |t: &PgType| matches!(t, P::Char(_) | P::VarChar(_) | P::Text);
    match (&old.target, &new.target) {
        (a, b) if exact(a) && (exact(b) || float(b) || text(b)) => cast(),
        (P::Real, P::Double) | (P::Double, P::Real) => cast(),
        (a, b) if text(a) && (text(b) || exact(b) || float(b)) => cast(),
        (a, P::Jsonb) if text(a) => cast(),
        (P::Bytea, P::Bytea) => Ok(None),
        (P::Boolean, b) if exact(b) => Ok(Some(format!("{column}::integer::{b}"))),
        (P::Bit(m), P::Bit(n)) if n > m => Ok(Some(format!("{column}::bigint::bit({n})"))),
        (P::Date, P::Timestamp(_)) => cast(),
        (P::Timestamp(_), P::Timestamp(_))
        | (P::TimestampTz(_), P::TimestampTz(_))
        | (P::Time(_), P::Time(_))
        | (P::Interval(_), P::Interval(_)) => cast(),
        (a, b) => Err(format!(
            "PostgreSQL cannot convert `{a}` to `{b}` the way the source converted the values"
        )),
    }
}

/// Whether the change of source type keeps byte strings as they are: `binary(n)` pads
/// values with zero bytes, so a change to `binary(n)` from anything but `binary(n)` changes
/// them.
pub(super) fn bytes_kept(old: &ColumnMapping, new: &ColumnMapping) -> bool {
    match (&old.source, &new.source) {
        (MySqlType::Binary(a), MySqlType::Binary(b)) => a == b,
        (_, MySqlType::Binary(_)) => false,
        _ => true,
    }
}

/// The value MySQL gives existing rows when a `NOT NULL` column without a default is added
/// (its implicit default), as a PostgreSQL literal; `None` when there is none PostgreSQL can
/// hold (dates, whose implicit default is the zero date; JSON).
pub(super) fn implicit_default(mapping: &ColumnMapping) -> Option<String> {
    use PgType as P;
    Some(match (&mapping.source, &mapping.target) {
        (MySqlType::Enum(members), _) => quote_literal(members.first()?),
        (MySqlType::Year, _) => return None,
        (MySqlType::Binary(n), _) => {
            let n = usize::try_from(*n).ok()?;
            quote_bytea(&vec![0; n])
        }
        (_, P::SmallInt | P::Integer | P::BigInt | P::Numeric { .. } | P::Real | P::Double) => {
            "0".into()
        }
        (_, P::Boolean) => "false".into(),
        (_, P::Char(_) | P::VarChar(_) | P::Text) => "''".into(),
        (_, P::Bytea) => quote_bytea(&[]),
        (_, P::Bit(n)) => format!("B'{}'", "0".repeat(usize::from(*n))),
        (_, P::Interval(_)) => "'0'::interval".into(),
        (_, P::Time(_)) => "'00:00:00'".into(),
        _ => return None,
    })
}

/// Whether a default expression gives each row its own value (`uuid()`, `rand()`), which the
/// target cannot reproduce for rows that exist when the column is added.
pub(super) fn is_volatile(expression: &str) -> bool {
    let lower = expression.to_ascii_lowercase();
    [
        "uuid",
        "rand",
        "random",
        "sys_guid",
        "nextval",
        "connection_id",
    ]
    .iter()
    .any(|f| {
        lower.match_indices(f).any(|(i, _)| {
            let before = lower[..i].chars().next_back();
            let after = lower[i + f.len()..].trim_start().chars().next();
            !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') && after == Some('(')
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dts_core::Column;
    use dts_typemap::{map_mysql_column, MappingOptions};

    fn mapping(ty: &str) -> ColumnMapping {
        let c = Column {
            ordinal: 1,
            ..Column::new("c", ty)
        };
        map_mysql_column(&c, &MappingOptions::default()).unwrap()
    }

    fn conv(a: &str, b: &str) -> Result<Option<String>, String> {
        conversion(&mapping(a), &mapping(b), "\"c\"")
    }

    #[test]
    fn allowed_and_refused_conversions() {
        assert_eq!(conv("int", "int(11)"), Ok(None));
        assert_eq!(conv("int", "bigint"), Ok(Some("\"c\"::bigint".into())));
        assert_eq!(
            conv("int", "varchar(20)"),
            Ok(Some("\"c\"::character varying(20)".into()))
        );
        assert_eq!(
            conv("decimal(10,2)", "decimal(12,4)"),
            Ok(Some("\"c\"::numeric(12,4)".into()))
        );
        assert_eq!(conv("enum('a','b')", "varchar(1)"), Ok(None));
        assert_eq!(conv("varchar(5)", "text"), Ok(Some("\"c\"::text".into())));
        assert_eq!(
            conv("datetime", "datetime(3)"),
            Ok(Some("\"c\"::timestamp(3) without time zone".into()))
        );
        assert!(conv("double", "int").is_err());
        assert!(conv("datetime", "timestamp").is_err());
        assert!(conv("datetime", "varchar(30)").is_err());
        assert!(conv("varchar(10)", "varbinary(10)").is_err());
        assert!(conv("int", "datetime").is_err());
        assert!(conv("json", "text").is_err());
        assert_eq!(conv("text", "json"), Ok(Some("\"c\"::jsonb".into())));
    }

    #[test]
    fn implicit_defaults_and_volatile_expressions() {
        assert_eq!(implicit_default(&mapping("int")).as_deref(), Some("0"));
        assert_eq!(
            implicit_default(&mapping("varchar(3)")).as_deref(),
            Some("''")
        );
        assert_eq!(
            implicit_default(&mapping("enum('x','y')")).as_deref(),
            Some("'x'")
        );
        assert_eq!(
            implicit_default(&mapping("binary(2)")).as_deref(),
            Some("E'\\\\x0000'::bytea")
        );
        assert_eq!(implicit_default(&mapping("datetime")), None);
        assert!(is_volatile("uuid()"));
        assert!(is_volatile("concat('x', RAND ())"));
        assert!(!is_volatile("my_uuid_col"));
        assert!(!is_volatile("current_timestamp()"));
    }
}
