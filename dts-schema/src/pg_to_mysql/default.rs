//! Column defaults of a PostgreSQL column as a MySQL `DEFAULT` clause: literals converted
//! as the column's values are, and the current time.

use dts_core::Value;
use dts_typemap::mysql::MySqlType;
use dts_typemap::pg_to_mysql::pg_value_from_text;
use dts_typemap::{convert_pg_value, PgSourceType, PgToMySqlMapping};

use crate::ident::is_wrapped;
use crate::mysql_to_mysql::quote_mysql_literal;

/// The expression of a `DEFAULT` clause for a column mapped by `mapping` whose default is
/// `expr` (as `pg_get_expr` prints it, under `TimeZone = UTC`), `None` for no default
/// (`NULL`); `Err` says why it is not carried.
pub(crate) fn translate_default(
    expr: &str,
    mapping: &PgToMySqlMapping,
) -> Result<Option<String>, String> {
    let mut s = expr.trim();
    while is_wrapped(s) {
        s = s[1..s.len() - 1].trim();
    }
    let lower = s.to_ascii_lowercase();
    if lower == "null" || lower.starts_with("null::") {
        return Ok(None);
    }
    if let Some(now) = current_time(&lower, mapping) {
        return now.map(Some);
    }
    let literal = literal_text(s).ok_or_else(|| {
        format!("default `{expr}` is an expression MySQL has no translation for here")
    })?;
    let value = pg_value_from_text(&mapping.source, &literal).ok_or_else(|| {
        format!(
            "default `{expr}` is not a value of `{}`",
            mapping.source_type
        )
    })?;
    let converted =
        convert_pg_value(mapping, value).map_err(|e| format!("default `{expr}`: {e}"))?;
    if converted.is_null() {
        return Ok(None);
    }
    let sql = mysql_literal(&converted);
    // MySQL takes defaults of text, blob and JSON columns only as expressions.
    Ok(Some(if takes_expression_default(&mapping.target) {
        format!("({sql})")
    } else {
        sql
    }))
}

/// `now()`, `CURRENT_TIMESTAMP` and friends for date and time targets; `None` when `lower`
/// is not the current time.
fn current_time(lower: &str, mapping: &PgToMySqlMapping) -> Option<Result<String, String>> {
    let (name, args) = match lower.split_once('(') {
        Some((n, rest)) => (n.trim(), rest.strip_suffix(')')?.trim()),
        None => (lower, ""),
    };
    let instant = matches!(
        (name, args),
        ("now" | "transaction_timestamp" | "statement_timestamp", "")
    ) || matches!(name, "current_timestamp" | "localtimestamp");
    let today = name == "current_date" && args.is_empty();
    if !instant && !today {
        return None;
    }
    let fsp = |p: u8| {
        if p == 0 {
            String::new()
        } else {
            format!("({p})")
        }
    };
    Some(match (&mapping.source, &mapping.target) {
        // The target holds UTC: UTC_TIMESTAMP, whatever the session's time zone.
        (PgSourceType::TimestampTz(_), MySqlType::DateTime(p)) if instant => {
            Ok(format!("(UTC_TIMESTAMP{})", fsp(*p)))
        }
        (PgSourceType::Timestamp(_), MySqlType::DateTime(p)) if instant => {
            Ok(format!("CURRENT_TIMESTAMP{}", fsp(*p)))
        }
        (PgSourceType::Date, MySqlType::Date) if today => Ok("(CURRENT_DATE)".into()),
        _ => Err(format!(
            "default `{lower}` has no MySQL translation for `{}`",
            mapping.source_type
        )),
    })
}

/// The literal of `'text'::type`, `'text'`, a bare number (`-1`, `1.5`) or a bare boolean,
/// unquoted.
fn literal_text(s: &str) -> Option<String> {
    if let Some(rest) = s.strip_prefix('\'') {
        let mut out = String::new();
        let mut chars = rest.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if chars.peek().map(|(_, c)| *c) == Some('\'') {
                    chars.next();
                    out.push('\'');
                    continue;
                }
                let tail = rest[i + 1..].trim();
                // Only a cast may follow the literal.
                return (tail.is_empty() || tail.starts_with("::")).then_some(out);
            }
            out.push(c);
        }
        return None;
    }
    let (head, cast) = match s.split_once("::") {
        Some((h, c)) => (h.trim(), Some(c)),
        None => (s, None),
    };
    let _ = cast;
    let mut head = head;
    while is_wrapped(head) {
        head = head[1..head.len() - 1].trim();
    }
    let number = {
        let digits = head.strip_prefix('-').unwrap_or(head);
        !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && digits.bytes().filter(|b| *b == b'.').count() <= 1
    };
    (number || head == "true" || head == "false").then(|| head.to_string())
}

/// A converted value as a MySQL literal (strings quoted for backslash escapes, as the
/// target sessions read them).
pub(crate) fn mysql_literal(value: &Value) -> String {
    match value {
        Value::Null => "NULL".into(),
        Value::Bool(b) => if *b { "TRUE" } else { "FALSE" }.into(),
        Value::Int(n) => n.to_string(),
        Value::UInt(n) => n.to_string(),
        Value::Year(y) => y.to_string(),
        Value::Decimal(d) => d.to_string(),
        Value::Float(f) => format!("{:e}", f64::from(*f)),
        Value::Double(f) => format!("{f:e}"),
        Value::Text(s) | Value::Json(s) => quote_mysql_literal(s),
        Value::Bytes(b) => {
            let hex: String = b.iter().map(|x| format!("{x:02X}")).collect();
            format!("X'{hex}'")
        }
        Value::Date(d) => format!("'{d}'"),
        Value::DateTime(d) | Value::Timestamp(d) => format!("'{d}'"),
        Value::Time(t) => format!("'{t}'"),
        Value::Bits(b) => format!("b'{b}'"),
    }
}

fn takes_expression_default(target: &MySqlType) -> bool {
    matches!(
        target,
        MySqlType::TinyText
            | MySqlType::Text
            | MySqlType::MediumText
            | MySqlType::LongText
            | MySqlType::TinyBlob
            | MySqlType::Blob
            | MySqlType::MediumBlob
            | MySqlType::LongBlob
            | MySqlType::Json
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use dts_typemap::{map_pg_type, PgToMySqlOptions};

    fn tr(ty: &str, expr: &str) -> Result<Option<String>, String> {
        let m = map_pg_type(
            ty,
            PgSourceType::parse(ty),
            true,
            &PgToMySqlOptions::default(),
        )
        .unwrap();
        translate_default(expr, &m)
    }

    #[test]
    fn literals_and_the_current_time() {
        assert_eq!(
            tr("character varying(20)", "'x''y'::character varying"),
            Ok(Some("'x''y'".into()))
        );
        assert_eq!(tr("text", "'a\\b'::text"), Ok(Some("('a\\\\b')".into())));
        assert_eq!(tr("integer", "'-1'::integer"), Ok(Some("-1".into())));
        assert_eq!(tr("integer", "(-1)"), Ok(Some("-1".into())));
        assert_eq!(tr("numeric(10,2)", "1.5"), Ok(Some("1.50".into())));
        assert_eq!(tr("boolean", "true"), Ok(Some("TRUE".into())));
        assert_eq!(tr("integer", "NULL::integer"), Ok(None));
        assert_eq!(
            tr("integer[]", "'{}'::integer[]"),
            Ok(Some("('[]')".into()))
        );
        assert_eq!(
            tr("bytea", "'\\x00ff'::bytea"),
            Ok(Some("(X'00FF')".into()))
        );
        assert_eq!(
            tr("timestamp with time zone", "now()"),
            Ok(Some("(UTC_TIMESTAMP(6))".into()))
        );
        assert_eq!(
            tr("timestamp(0) without time zone", "CURRENT_TIMESTAMP"),
            Ok(Some("CURRENT_TIMESTAMP".into()))
        );
        assert_eq!(
            tr("date", "CURRENT_DATE"),
            Ok(Some("(CURRENT_DATE)".into()))
        );
        assert_eq!(
            tr(
                "timestamp with time zone",
                "'2000-01-01 00:00:00+00'::timestamp with time zone"
            ),
            Ok(Some("'2000-01-01 00:00:00'".into()))
        );
        assert!(tr("uuid", "gen_random_uuid()").is_err());
        assert!(tr("integer", "(1 + 2)").is_err());
        assert!(tr("date", "'infinity'::date").is_err());
        assert!(tr("text", "now()").is_err());
    }
}
