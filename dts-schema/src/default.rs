//! Column defaults: a MySQL default (literal, current time or expression) as a PostgreSQL
//! `DEFAULT` for the mapped target type.

use dts_core::ColumnDefault;
use dts_typemap::mysql::MySqlType;
use dts_typemap::pg::PgType;
use dts_typemap::ColumnMapping;

use crate::expr::{translate, ExprEnv};
use dts_typemap::quote::{quote_bytea, quote_literal};

/// Why a default is not carried over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DefaultIssue {
    /// Left out on purpose (a zero date PostgreSQL cannot hold); the user gets a note.
    Dropped(String),
    /// Cannot be translated; blocking.
    Untranslatable(String),
}

/// The SQL of a `DEFAULT` clause for `default` on a column mapped by `mapping`, or `None`
/// when the column has no default in the target (`DEFAULT NULL`).
///
/// Literals are the unescaped values; `TIMESTAMP` literals are UTC (the schema reader runs
/// with `time_zone = '+00:00'`, as `information_schema` prints them in the session zone).
pub(crate) fn translate_default(
    default: &ColumnDefault,
    mapping: &ColumnMapping,
    env: &ExprEnv<'_>,
) -> Result<Option<String>, DefaultIssue> {
    match default {
        ColumnDefault::Literal(v) => literal(v, mapping),
        ColumnDefault::CurrentTimestamp(fsp) => current_timestamp(*fsp, &mapping.target).map(Some),
        ColumnDefault::Expression(e) => match translate(e, env) {
            Ok(sql) if sql.eq_ignore_ascii_case("null") => Ok(None),
            Ok(sql) => Ok(Some(sql)),
            Err(err) => Err(DefaultIssue::Untranslatable(err.to_string())),
        },
        other => Err(DefaultIssue::Untranslatable(format!(
            "unknown kind of default {other:?}"
        ))),
    }
}

/// `CURRENT_TIMESTAMP` and friends for the target type.
pub(crate) fn current_timestamp(fsp: u8, target: &PgType) -> Result<String, DefaultIssue> {
    let with_p = |kw: &str| {
        if fsp > 0 {
            format!("{kw}({})", fsp.min(6))
        } else {
            kw.to_string()
        }
    };
    match target {
        PgType::TimestampTz(_) => Ok(with_p("CURRENT_TIMESTAMP")),
        PgType::Timestamp(_) => Ok(with_p("LOCALTIMESTAMP")),
        PgType::Date => Ok("CURRENT_DATE".into()),
        PgType::Time(_) => Ok(with_p("LOCALTIME")),
        other => Err(DefaultIssue::Untranslatable(format!(
            "the current time is not a value of type `{other}`"
        ))),
    }
}

fn literal(v: &str, mapping: &ColumnMapping) -> Result<Option<String>, DefaultIssue> {
    let target = &mapping.target;
    let text_like = matches!(
        target,
        PgType::Char(_) | PgType::VarChar(_) | PgType::Text | PgType::Bytea | PgType::Jsonb
    );
    // Readers should report `DEFAULT NULL` as no default; a literal `NULL` is only text
    // for string columns.
    if !text_like && v.trim().eq_ignore_ascii_case("null") {
        return Ok(None);
    }
    let untranslatable = |why: &str| Err(DefaultIssue::Untranslatable(why.to_string()));
    match target {
        PgType::Boolean => match v.trim().to_ascii_lowercase().as_str() {
            "0" | "b'0'" | "false" => Ok(Some("false".into())),
            "1" | "b'1'" | "true" => Ok(Some("true".into())),
            _ => untranslatable("a boolean column only takes 0 or 1"),
        },
        PgType::SmallInt
        | PgType::Integer
        | PgType::BigInt
        | PgType::Numeric { .. }
        | PgType::Real
        | PgType::Double => {
            let v = v.trim();
            if let Some(bits) = bit_digits(v) {
                return match u128::from_str_radix(if bits.is_empty() { "0" } else { bits }, 2) {
                    Ok(n) => Ok(Some(n.to_string())),
                    Err(_) => untranslatable("the bit literal is too long"),
                };
            }
            if is_number(v) {
                if mapping.source == MySqlType::Year && v.parse::<f64>().is_ok_and(|y| y == 0.0) {
                    // Year 0000 stays 0, as the data does.
                    return Ok(Some("0".into()));
                }
                Ok(Some(v.strip_prefix('+').unwrap_or(v).to_string()))
            } else {
                untranslatable("not a number")
            }
        }
        PgType::Bit(n) => bit_default(v.trim(), usize::from(*n)).map(Some),
        PgType::Char(_) | PgType::VarChar(_) | PgType::Text => {
            if v.contains('\0') {
                return untranslatable("PostgreSQL text cannot hold a NUL character");
            }
            Ok(Some(quote_literal(v)))
        }
        PgType::Bytea => {
            let mut bytes = v.as_bytes().to_vec();
            // BINARY(n) values are zero-padded to n bytes, defaults included.
            if let MySqlType::Binary(n) = &mapping.source {
                let n = usize::try_from(*n).unwrap_or(usize::MAX);
                if bytes.len() < n {
                    bytes.resize(n, 0);
                }
            }
            Ok(Some(quote_bytea(&bytes)))
        }
        PgType::Date | PgType::Timestamp(_) | PgType::TimestampTz(_) if is_zero_date(v) => {
            Err(DefaultIssue::Dropped("PostgreSQL has no zero date".into()))
        }
        // TIMESTAMP defaults are read in UTC.
        PgType::TimestampTz(_) => Ok(Some(quote_literal(&format!("{}+00", v.trim())))),
        PgType::Jsonb => Ok(Some(format!("{}::jsonb", quote_literal(v)))),
        _ => Ok(Some(quote_literal(v))),
    }
}

/// The digits of a bit literal `b'0101'` / `0b0101`.
fn bit_digits(v: &str) -> Option<&str> {
    let inner = v
        .strip_prefix("b'")
        .or_else(|| v.strip_prefix("B'"))
        .and_then(|s| s.strip_suffix('\''))
        .or_else(|| v.strip_prefix("0b"))?;
    inner
        .bytes()
        .all(|b| b == b'0' || b == b'1')
        .then_some(inner)
}

fn bit_default(v: &str, width: usize) -> Result<String, DefaultIssue> {
    let digits = match bit_digits(v) {
        Some(d) => d.trim_start_matches('0').to_string(),
        None => match v.parse::<u64>() {
            Ok(0) => String::new(),
            Ok(n) => format!("{n:b}"),
            Err(_) => return Err(DefaultIssue::Untranslatable("not a bit value".to_string())),
        },
    };
    if digits.len() > width {
        return Err(DefaultIssue::Untranslatable(format!(
            "the value does not fit in {width} bits"
        )));
    }
    Ok(format!("B'{digits:0>width$}'"))
}

/// A decimal number: optional sign, digits with at most one point, optional exponent.
fn is_number(v: &str) -> bool {
    let s = v.strip_prefix(['+', '-']).unwrap_or(v);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut digits = 0;
    let mut points = 0;
    for b in mantissa.bytes() {
        match b {
            b'0'..=b'9' => digits += 1,
            b'.' => points += 1,
            _ => return false,
        }
    }
    if digits == 0 || points > 1 {
        return false;
    }
    match exponent {
        None => true,
        Some(e) => {
            let e = e.strip_prefix(['+', '-']).unwrap_or(e);
            !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
        }
    }
}

/// Whether a date or datetime literal has a zero year, month or day (`0000-00-00`,
/// `2020-00-15`), which PostgreSQL cannot hold.
pub(crate) fn is_zero_date(v: &str) -> bool {
    let mut parts = v.trim().splitn(3, '-');
    let field = |p: Option<&str>| {
        p.map(|s| {
            s.bytes()
                .take_while(u8::is_ascii_digit)
                .fold(0u32, |acc, b| {
                    acc.saturating_mul(10).saturating_add(u32::from(b - b'0'))
                })
        })
    };
    match (
        field(parts.next()),
        field(parts.next()),
        field(parts.next()),
    ) {
        (Some(y), Some(m), Some(d)) => y == 0 || m == 0 || d == 0,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_bits_and_zero_dates() {
        assert!(is_number("5"));
        assert!(is_number("-1.50"));
        assert!(is_number("1e20"));
        assert!(is_number("+.5"));
        assert!(!is_number("abc"));
        assert!(!is_number("1.2.3"));
        assert!(!is_number("1e"));
        assert!(!is_number(""));
        assert_eq!(bit_default("b'101'", 3).unwrap(), "B'101'");
        assert_eq!(bit_default("b'101'", 8).unwrap(), "B'00000101'");
        assert_eq!(bit_default("5", 4).unwrap(), "B'0101'");
        assert_eq!(bit_default("0", 2).unwrap(), "B'00'");
        assert!(bit_default("b'111'", 2).is_err());
        assert!(is_zero_date("0000-00-00"));
        assert!(is_zero_date("0000-00-00 00:00:00.000000"));
        assert!(is_zero_date("2020-00-15"));
        assert!(!is_zero_date("2020-01-01 00:00:00"));
        assert!(!is_zero_date("12:00:00"));
    }
}
