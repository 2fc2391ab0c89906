//! Data checks: PostgreSQL predicates that find the rows a PostgreSQL → MySQL mapping
//! cannot carry, for the precheck.

use crate::check::DataCheck;
use crate::mysql::MySqlType;

use super::{InfinityPolicy, NanPolicy, PgSourceType, PgToMySqlMapping};

/// `c::text IN ('NaN', 'Infinity', '-Infinity')`, valid on every version (numeric
/// infinities exist from PostgreSQL 14).
fn special_numeric(c: &str) -> String {
    format!("({c}::text IN ('NaN', 'Infinity', '-Infinity'))")
}

/// The checks that find values [`super::convert_pg_value`] would refuse (or, for
/// non-blocking ones, replace) for a column mapped by `mapping`. `column_sql` is the
/// column as a PostgreSQL query names it, quoted (`"a"`). Predicates are PostgreSQL
/// `WHERE` conditions for a session with `TimeZone = UTC` (the source's pinned setting).
///
/// | code | when | blocking |
/// |---|---|---|
/// | `nan` | `NaN` or infinite `numeric`/`real`/`double precision` | unless `nan = null` and the column is nullable |
/// | `infinity` | infinite `date`/`timestamp`/`timestamptz` | under `infinity = error`, or `null` in a `NOT NULL` column |
/// | `date_out_of_range` | dates before year 1 or after 9999 | yes |
/// | `numeric_out_of_range` | numerics with more integer or fraction digits than the `decimal` holds | yes |
/// | `interval_out_of_range` | intervals with years or months or beyond ±838:59:59 mapped to `time` | yes |
/// | `too_long_for_key` | text or bytes longer than a key column's `varchar(n)`/`varbinary(n)` | yes |
/// | `array_bounds` | arrays with lower bounds other than 1 | yes |
pub fn pg_data_checks(mapping: &PgToMySqlMapping, column_sql: &str) -> Vec<DataCheck> {
    let c = column_sql;
    let mut checks = Vec::new();
    let target = &mapping.target;
    match &mapping.source {
        PgSourceType::Real | PgSourceType::Double => checks.push(nan_check(
            mapping,
            format!("({c} IN ('NaN', 'Infinity', '-Infinity'))"),
        )),
        PgSourceType::Numeric { precision, scale } => {
            if let MySqlType::Decimal {
                precision: p,
                scale: s,
            } = target
            {
                checks.push(nan_check(mapping, special_numeric(c)));
                // Only when the decimal is narrower than the numeric.
                let exact = precision.is_some_and(|sp| {
                    let fraction = i64::from(*scale).max(0);
                    let integer = (i64::from(sp) - i64::from(*scale)).max(0);
                    integer <= i64::from(*p) - i64::from(*s) && fraction <= i64::from(*s)
                });
                if !exact {
                    let integer = p - s;
                    checks.push(DataCheck {
                        code: "numeric_out_of_range",
                        predicate: format!(
                            "(CASE WHEN {} THEN false ELSE abs({c}) >= 1e{integer} OR {c} <> round({c}, {s}) END)",
                            special_numeric(c)
                        ),
                        problem: format!(
                            "values with more than {integer} integer digits or {s} fraction digits do not fit `{target}`"
                        ),
                        fix: "set types.unbounded_numeric_as = \"text\", or round the values in the source".into(),
                        blocking: true,
                    });
                }
            }
        }
        PgSourceType::Date | PgSourceType::Timestamp(_) | PgSourceType::TimestampTz(_) => {
            let (low, high) = match mapping.source {
                PgSourceType::Date => ("'0001-01-01'::date", "'10000-01-01'::date"),
                PgSourceType::Timestamp(_) => (
                    "'0001-01-01 00:00:00'::timestamp",
                    "'10000-01-01 00:00:00'::timestamp",
                ),
                _ => (
                    "'0001-01-01 00:00:00+00'::timestamptz",
                    "'10000-01-01 00:00:00+00'::timestamptz",
                ),
            };
            let (blocking, outcome) = match mapping.options.infinity {
                InfinityPolicy::Error => (true, "they have no MySQL value"),
                InfinityPolicy::Null if mapping.nullable => (false, "they will be written as NULL"),
                InfinityPolicy::Null => (true, "they would become NULL but the column is NOT NULL"),
                InfinityPolicy::Clamp => (
                    false,
                    "they will be written as the first or last value of the type",
                ),
            };
            checks.push(DataCheck {
                code: "infinity",
                predicate: format!("(NOT isfinite({c}))"),
                problem: format!("infinity and -infinity: {outcome}"),
                fix:
                    "set types.infinity = \"clamp\" or \"null\", or change the values in the source"
                        .into(),
                blocking,
            });
            checks.push(DataCheck {
                code: "date_out_of_range",
                predicate: format!("(isfinite({c}) AND ({c} < {low} OR {c} >= {high}))"),
                problem: "dates before year 1 or after 9999 have no MySQL value".into(),
                fix: "change the values in the source, or exclude the table".into(),
                blocking: true,
            });
        }
        PgSourceType::Interval if matches!(target, MySqlType::Time(_)) => {
            checks.push(DataCheck {
                code: "interval_out_of_range",
                predicate: format!(
                    "(date_part('year', {c}) <> 0 OR date_part('month', {c}) <> 0 \
                     OR abs(date_part('epoch', {c})) > 3020399)"
                ),
                problem: "intervals with years or months, or beyond ±838:59:59, do not fit time(6)"
                    .into(),
                fix: "keep intervals as text (types.interval_as = \"text\")".into(),
                blocking: true,
            });
        }
        PgSourceType::Array(_) => checks.push(DataCheck {
            code: "array_bounds",
            predicate: format!("({c}::text LIKE '[%')"),
            problem: "arrays with lower bounds other than 1 lose them in a JSON array".into(),
            fix: "renumber the arrays from 1 in the source, or exclude the table".into(),
            blocking: true,
        }),
        _ => {}
    }
    if let Some(check) = key_length_check(mapping, c) {
        checks.push(check);
    }
    checks
}

/// Values longer than a key column's `varchar(n)` / `varbinary(n)` narrowed below what the
/// source type allows.
fn key_length_check(mapping: &PgToMySqlMapping, c: &str) -> Option<DataCheck> {
    let (n, length) = match (&mapping.target, &mapping.source) {
        (MySqlType::VarBinary(n), PgSourceType::Bytea) => (*n, format!("octet_length({c})")),
        (MySqlType::VarChar(n), PgSourceType::Array(_)) => {
            (*n, format!("char_length(to_json({c})::text)"))
        }
        (MySqlType::VarChar(n), PgSourceType::VarBit(_) | PgSourceType::Bit(_)) => {
            (*n, format!("length({c})"))
        }
        (MySqlType::VarChar(n) | MySqlType::Char(n), source) => {
            // Types whose values are never longer than the target: nothing to count.
            let bound = match source {
                PgSourceType::Char(m) | PgSourceType::VarChar(Some(m)) => Some(*m),
                PgSourceType::Name => Some(63),
                PgSourceType::SingleChar => Some(4),
                PgSourceType::Uuid => Some(36),
                PgSourceType::Enum { labels, .. } => labels
                    .iter()
                    .map(|l| u32::try_from(l.chars().count()).unwrap_or(u32::MAX))
                    .max(),
                _ => None,
            };
            if bound.is_some_and(|m| m <= *n) {
                return None;
            }
            let inner = match source {
                PgSourceType::Char(_) | PgSourceType::VarChar(_) | PgSourceType::Text => {
                    c.to_string()
                }
                _ => format!("{c}::text"),
            };
            (*n, format!("char_length({inner})"))
        }
        _ => return None,
    };
    Some(DataCheck {
        code: "too_long_for_key",
        predicate: format!("({length} > {n})"),
        problem: format!(
            "values longer than {n} do not fit `{}`, the widest a key column may be within InnoDB's 3072-byte index limit",
            mapping.target
        ),
        fix: "shorten the values in the source, or drop the column from its keys".into(),
        blocking: true,
    })
}

fn nan_check(mapping: &PgToMySqlMapping, predicate: String) -> DataCheck {
    let (blocking, outcome) = match mapping.options.nan {
        NanPolicy::Null if mapping.nullable => (false, "they will be written as NULL"),
        NanPolicy::Null => (true, "they would become NULL but the column is NOT NULL"),
        _ => (true, "they have no MySQL value"),
    };
    DataCheck {
        code: "nan",
        predicate,
        problem: format!("NaN and infinities: {outcome}"),
        fix: "set types.nan = \"null\", or change the values in the source".into(),
        blocking,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{map_pg_type, PgToMySqlOptions};
    use super::*;

    fn codes(t: &str) -> Vec<&'static str> {
        let m = map_pg_type(
            t,
            PgSourceType::parse(t),
            true,
            &PgToMySqlOptions::default(),
        )
        .unwrap();
        pg_data_checks(&m, "\"c\"").iter().map(|c| c.code).collect()
    }

    #[test]
    fn checks_per_type() {
        assert_eq!(codes("numeric(10,2)"), ["nan"]);
        assert_eq!(codes("numeric"), ["nan", "numeric_out_of_range"]);
        assert_eq!(codes("date"), ["infinity", "date_out_of_range"]);
        assert_eq!(codes("integer[]"), ["array_bounds"]);
        assert!(codes("text").is_empty());
        assert!(codes("integer").is_empty());
        let m = map_pg_type(
            "text",
            PgSourceType::Text,
            true,
            &PgToMySqlOptions::default(),
        )
        .unwrap()
        .within_key_bytes(400);
        let checks = pg_data_checks(&m, "\"c\"");
        assert_eq!(checks[0].predicate, "(char_length(\"c\") > 100)");
        let m = map_pg_type(
            "character varying(20)",
            PgSourceType::VarChar(Some(20)),
            true,
            &PgToMySqlOptions::default(),
        )
        .unwrap()
        .within_key_bytes(3072);
        assert!(pg_data_checks(&m, "\"c\"").is_empty());
        let m = map_pg_type(
            "numeric",
            PgSourceType::parse("numeric"),
            true,
            &PgToMySqlOptions::default(),
        )
        .unwrap();
        assert_eq!(
            pg_data_checks(&m, "\"c\"")[1].predicate,
            "(CASE WHEN (\"c\"::text IN ('NaN', 'Infinity', '-Infinity')) THEN false ELSE abs(\"c\") >= 1e35 OR \"c\" <> round(\"c\", 30) END)"
        );
    }
}
