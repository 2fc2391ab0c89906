//! Data checks: MySQL predicates that find the rows a mapping cannot carry, for the precheck.

use crate::convert::PG_MAX_VALUE_BYTES;
use crate::mapping::{ColumnMapping, MappingOptions, ZeroDatePolicy};
use crate::mysql::MySqlType;
use crate::pg::PgType;

/// One check to run against the source before migrating: count the rows where
/// [`DataCheck::predicate`] is true.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataCheck {
    /// A stable code for reports and tests, e.g. `zero_date`.
    pub code: &'static str,
    /// A `WHERE` predicate in the source's dialect, true for the offending rows (it is
    /// parenthesised, so it can be combined with other predicates). MySQL predicates
    /// ([`mysql_data_checks`]) do not depend on `sql_mode` or on the column's character
    /// set and collation; PostgreSQL ones
    /// ([`pg_data_checks`](crate::pg_to_mysql::pg_data_checks)) expect `TimeZone = UTC`.
    pub predicate: String,
    /// What goes wrong with those rows, without naming the table.
    pub problem: String,
    /// How to fix it.
    pub fix: String,
    /// Whether offending rows stop the migration (else they are reported as a warning with
    /// their count).
    pub blocking: bool,
}

/// `(a OR b …)` over the column.
fn any_of(parts: &[String]) -> String {
    format!("({})", parts.join(" OR "))
}

/// The checks that find values [`crate::convert_mysql_value`] would refuse (or, for
/// non-blocking ones, change to `NULL`) for a column mapped by `mapping`.
///
/// `column_sql` is the column as it appears in a MySQL query, already quoted (`` `a` ``,
/// or `` t.`a` ``).
///
/// | code | when | blocking |
/// |---|---|---|
/// | `not_boolean` | `tinyint(1)` mapped to `boolean`, values other than 0 and 1 | yes |
/// | `nul_in_text` | text containing U+0000 | yes |
/// | `value_too_large` | `longtext`/`longblob` values above PostgreSQL's 1 GB limit | yes |
/// | `zero_date` | zero or partial-zero dates, year 0 | under [`ZeroDatePolicy::Error`] or `NOT NULL` |
/// | `invalid_date` | dates off the calendar (`ALLOW_INVALID_DATES`) | yes |
/// | `time_out_of_range` | `time` mapped to `time`, values outside 00:00:00..24:00:00 | yes |
/// | `enum_error_value` | MySQL's error value `''` in an enum that does not declare `''` | yes |
/// | `nul_in_json` | JSON with a `\u0000` escape | yes |
pub fn mysql_data_checks(
    mapping: &ColumnMapping,
    column_sql: &str,
    opts: &MappingOptions,
) -> Vec<DataCheck> {
    let c = column_sql;
    let mut checks = Vec::new();
    let zero_blocking = opts.zero_date == ZeroDatePolicy::Error || !mapping.nullable;
    let zero_outcome = || {
        if opts.zero_date == ZeroDatePolicy::Error {
            "the zero-date policy is `error`"
        } else if mapping.nullable {
            "they will be written as NULL"
        } else {
            "they would become NULL but the column is NOT NULL"
        }
    };
    match &mapping.source {
        MySqlType::TinyInt { .. } if mapping.target == PgType::Boolean => {
            checks.push(DataCheck {
                code: "not_boolean",
                predicate: format!("({c} NOT IN (0,1))"),
                problem: "values other than 0 and 1 cannot be stored as boolean".into(),
                fix: format!(
                    "keep tinyint(1) as a number (turn tinyint1_as_boolean off), or set {c} to 0 or 1 in these rows in the source"
                ),
                blocking: true,
            });
        }
        MySqlType::Char(_)
        | MySqlType::VarChar(_)
        | MySqlType::TinyText
        | MySqlType::Text
        | MySqlType::MediumText
        | MySqlType::LongText => {
            checks.push(DataCheck {
                code: "nul_in_text",
                predicate: format!("(INSTR(CONVERT({c} USING utf8mb4), CHAR(0)) > 0)"),
                problem: "text contains the NUL character (U+0000), which PostgreSQL text cannot hold".into(),
                fix: format!(
                    "remove it in the source (UPDATE … SET {c} = REPLACE({c}, CHAR(0), '')), or declare the column as a binary type (varbinary/blob), which maps to bytea"
                ),
                blocking: true,
            });
            if mapping.source == MySqlType::LongText {
                checks.push(too_large(
                    c,
                    // utf8mb4 takes at most 4 bytes per character, and every character at
                    // least one byte: only rows above a quarter of the limit need converting.
                    format!(
                        "(LENGTH({c}) > {} AND LENGTH(CONVERT({c} USING utf8mb4)) > {})",
                        PG_MAX_VALUE_BYTES / 4,
                        PG_MAX_VALUE_BYTES
                    ),
                ));
            }
        }
        MySqlType::LongBlob => {
            checks.push(too_large(
                c,
                format!("(LENGTH({c}) > {PG_MAX_VALUE_BYTES})"),
            ));
        }
        MySqlType::Date | MySqlType::DateTime(_) | MySqlType::Timestamp(_) => {
            checks.push(DataCheck {
                code: "zero_date",
                predicate: any_of(&[
                    format!("YEAR({c}) = 0"),
                    format!("MONTH({c}) = 0"),
                    format!("DAYOFMONTH({c}) = 0"),
                ]),
                problem: format!(
                    "zero or partial-zero dates (0000-00-00, month or day 0, year 0) have no PostgreSQL equivalent: {}",
                    zero_outcome()
                ),
                fix: format!(
                    "set {c} to a real date or NULL in these rows in the source, or choose the zero-date policy `null` for a nullable column"
                ),
                blocking: zero_blocking,
            });
            if !matches!(mapping.source, MySqlType::Timestamp(_)) {
                let leap =
                    format!("(YEAR({c}) % 4 = 0 AND YEAR({c}) % 100 <> 0 OR YEAR({c}) % 400 = 0)");
                checks.push(DataCheck {
                    code: "invalid_date",
                    predicate: any_of(&[
                        format!("MONTH({c}) IN (4,6,9,11) AND DAYOFMONTH({c}) = 31"),
                        format!("MONTH({c}) = 2 AND DAYOFMONTH({c}) > IF({leap}, 29, 28)"),
                    ]),
                    problem: "dates that are not on the calendar (such as 2023-02-30, stored under ALLOW_INVALID_DATES) cannot be stored in PostgreSQL".into(),
                    fix: format!("set {c} to a real date or NULL in these rows in the source"),
                    blocking: true,
                });
            }
        }
        MySqlType::Time(_) if matches!(mapping.target, PgType::Time(_)) => {
            checks.push(DataCheck {
                code: "time_out_of_range",
                predicate: format!("({c} < '00:00:00' OR {c} > '24:00:00')"),
                problem: "durations outside 00:00:00..24:00:00 cannot be stored as PostgreSQL time".into(),
                fix: "keep the default mapping of time to interval (turn time_as_time off), or correct these rows in the source".into(),
                blocking: true,
            });
        }
        MySqlType::Enum(members) if !members.iter().any(String::is_empty) => {
            checks.push(DataCheck {
                code: "enum_error_value",
                predicate: format!("({c} = 0)"),
                problem: "MySQL's enum error value '' (index 0, stored for invalid input outside strict mode) is not a member and fails the target CHECK".into(),
                fix: format!("set {c} to a member or NULL in these rows in the source"),
                blocking: true,
            });
        }
        MySqlType::Json => {
            // `(^|[^\\])(\\\\)*\\u0000`: an unescaped `\u0000`. Backslashes are written as
            // CHAR(92) so the predicate means the same under NO_BACKSLASH_ESCAPES.
            let b = "CHAR(92 USING utf8mb4)";
            let regex = format!(
                "CONCAT('(^|[^', {b}, {b}, '])(', {b}, {b}, {b}, {b}, ')*', {b}, {b}, 'u0000')"
            );
            checks.push(DataCheck {
                code: "nul_in_json",
                predicate: format!("(CAST({c} AS CHAR) REGEXP {regex})"),
                problem: "JSON contains the escape \\u0000, which PostgreSQL jsonb cannot hold"
                    .into(),
                fix: format!("remove the U+0000 characters from {c} in these rows in the source"),
                blocking: true,
            });
        }
        _ => {}
    }
    checks
}

fn too_large(c: &str, predicate: String) -> DataCheck {
    DataCheck {
        code: "value_too_large",
        predicate,
        problem: "values larger than 1 GB cannot be stored in one PostgreSQL field".into(),
        fix: format!("shorten {c} in these rows in the source, or exclude the column"),
        blocking: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map_mysql_column;
    use crate::mapping::tests::column;

    fn checks(ty: &str, nullable: bool, opts: &MappingOptions) -> Vec<DataCheck> {
        let m = map_mysql_column(&column(ty, nullable), opts).unwrap();
        mysql_data_checks(&m, "`a`", opts)
    }

    fn codes(ty: &str) -> Vec<&'static str> {
        checks(ty, true, &MappingOptions::default())
            .iter()
            .map(|c| c.code)
            .collect()
    }

    #[test]
    fn boolean_check_only_under_the_option() {
        assert!(codes("tinyint(1)").is_empty());
        let opts = MappingOptions {
            tinyint1_as_boolean: true,
            ..MappingOptions::default()
        };
        let c = checks("tinyint(1)", true, &opts);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].code, "not_boolean");
        assert_eq!(c[0].predicate, "(`a` NOT IN (0,1))");
        assert!(c[0].blocking);
    }

    #[test]
    fn nul_checks_for_text_and_json() {
        for ty in ["char(3)", "varchar(10)", "tinytext", "text", "mediumtext"] {
            assert_eq!(codes(ty), ["nul_in_text"], "{ty}");
        }
        let c = &checks("varchar(10)", true, &MappingOptions::default())[0];
        assert_eq!(
            c.predicate,
            "(INSTR(CONVERT(`a` USING utf8mb4), CHAR(0)) > 0)"
        );
        assert!(c.blocking);
        assert_eq!(codes("longtext"), ["nul_in_text", "value_too_large"]);
        assert_eq!(codes("longblob"), ["value_too_large"]);
        assert_eq!(codes("json"), ["nul_in_json"]);
        let c = &checks("json", true, &MappingOptions::default())[0];
        assert!(c.predicate.starts_with("(CAST(`a` AS CHAR) REGEXP CONCAT("));
        assert!(!c.predicate.contains('\\'));
        for ty in [
            "int",
            "blob",
            "binary(4)",
            "decimal(5,2)",
            "bit(3)",
            "set('a')",
        ] {
            assert!(codes(ty).is_empty(), "{ty}");
        }
    }

    #[test]
    fn zero_dates_warn_or_block() {
        let null = MappingOptions::default();
        let error = MappingOptions {
            zero_date: ZeroDatePolicy::Error,
            ..MappingOptions::default()
        };
        for ty in ["date", "datetime(6)", "timestamp"] {
            let c = checks(ty, true, &null);
            assert_eq!(c[0].code, "zero_date");
            assert_eq!(
                c[0].predicate,
                "(YEAR(`a`) = 0 OR MONTH(`a`) = 0 OR DAYOFMONTH(`a`) = 0)"
            );
            assert!(
                !c[0].blocking,
                "nullable column under the null policy warns"
            );
            assert!(checks(ty, false, &null)[0].blocking, "NOT NULL blocks");
            assert!(checks(ty, true, &error)[0].blocking, "error policy blocks");
        }
        assert_eq!(codes("date"), ["zero_date", "invalid_date"]);
        assert_eq!(codes("timestamp(3)"), ["zero_date"]);
        // Year 0000 is kept as 0: nothing to check, whatever the policy.
        assert!(checks("year(4)", true, &null).is_empty());
        assert!(checks("year", false, &error).is_empty());
    }

    #[test]
    fn time_of_day_and_enum_checks() {
        assert!(codes("time(3)").is_empty());
        let opts = MappingOptions {
            time_as_time: true,
            ..MappingOptions::default()
        };
        let c = checks("time(3)", true, &opts);
        assert_eq!(c[0].code, "time_out_of_range");
        assert_eq!(c[0].predicate, "(`a` < '00:00:00' OR `a` > '24:00:00')");
        assert!(c[0].blocking);

        assert_eq!(codes("enum('a','b')"), ["enum_error_value"]);
        assert!(codes("enum('a','')").is_empty());
    }
}
