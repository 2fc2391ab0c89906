//! The MySQL statements that follow a column change a PostgreSQL relation description
//! shows ([`crate::relation_diff`]): columns dropped, retyped and added, each defined as
//! the planner defines it for the table as it is after the change.
//!
//! - **Added** columns get the type the task's mapping and options give them, `NOT NULL`
//!   and the default as the source's catalog has them. A column PostgreSQL added with a
//!   default it stored once (a "fast default") holds that value in the rows already there:
//!   it is added with that value as its default, which MySQL writes into every row, and
//!   then given its own default (or none). That value must convert as the column's values
//!   do, or the change is refused naming the column.
//! - **Dropped** columns are dropped.
//! - **Retyped** columns are changed with `MODIFY COLUMN`, so MySQL converts the values the
//!   target holds. Only conversions that give the value PostgreSQL's `column::type` gives
//!   are followed (integers into wider or narrower integers, exact numbers and text; exact
//!   numbers into exact numbers; text into text; `real` into `double precision`; `date`
//!   into `timestamp`; times into more fractional digits; `jsonb` into `json`, …); any
//!   other stops naming the table, the column and both types. A value the new type cannot
//!   hold makes MySQL refuse the statement (strict mode), naming the column.

use dts_core::{Catalog, ColumnDefault, Error, ErrorKind, Result, TableName};
use dts_typemap::mysql::MySqlType;
use dts_typemap::{PgSourceType, PgToMySqlMapping};

use super::{column_ddl, default, qualified, ColumnDdl};
use crate::options::SchemaOptions;
use crate::relation::RelationDiff;

/// The statements that make target table `target` follow `diff` of source table `table`:
/// `before` is the tracked catalog, `after` the catalog with the diff applied.
///
/// # Errors
///
/// [`ErrorKind::Unsupported`] naming the table and the column for a change that cannot be
/// followed as PostgreSQL made it (see the module docs).
pub(crate) fn relation_statements(
    before: &Catalog,
    after: &Catalog,
    opts: &SchemaOptions,
    table: &TableName,
    target: &TableName,
    diff: &RelationDiff,
) -> Result<Vec<String>> {
    let refuse = |column: &str, why: String| {
        Error::new(
            ErrorKind::Unsupported,
            format!(
                "column `{column}` of `{table}` changed at the source: {why}; apply the change \
                 to the target table `{target}` yourself and migrate the table again"
            ),
        )
    };
    let (old, _) = column_ddl(before, opts, table);
    let (new, problems) = column_ddl(after, opts, table);
    let find = |columns: &'_ [ColumnDdl], name: &str| -> Option<usize> {
        columns.iter().position(|c| c.source == name)
    };
    let changed = diff
        .added
        .iter()
        .map(|c| c.name.as_str())
        .chain(diff.retyped.iter().map(|(c, _, _)| c.as_str()));
    for column in changed {
        let object = format!("{table}.{column}");
        if let Some(p) = problems.iter().find(|p| p.blocking && p.object == object) {
            return Err(refuse(column, p.message.clone()));
        }
        for p in problems
            .iter()
            .filter(|p| !p.blocking && p.object == object)
        {
            tracing::warn!(column = %object, note = %p.message, "following a column change");
        }
        let mapped = find(&new, column).and_then(|i| new[i].definition.as_ref());
        if mapped.is_none() {
            return Err(refuse(column, "its type has no MySQL mapping".into()));
        }
    }

    // Added columns as they are added: a stored value's column with that value as default.
    let mut filling = after.clone();
    if let Some(t) = filling.table_mut(table) {
        for d in &diff.added {
            let Some(missing) = &d.missing else { continue };
            if let Some(c) = t.columns.iter_mut().find(|c| c.name == d.name) {
                c.default = Some(ColumnDefault::Expression(quote_pg_literal(missing)));
            }
        }
    }
    let (added, _) = column_ddl(&filling, opts, table);

    let mut clauses = Vec::new();
    let mut then = Vec::new();
    for name in &diff.dropped {
        let Some(i) = find(&old, name) else { continue };
        clauses.push(format!(
            "DROP COLUMN {}",
            crate::quote_mysql_ident(&old[i].target)
        ));
    }
    for (name, from, to) in &diff.retyped {
        let (Some(o), Some(n)) = (find(&old, name), find(&new, name)) else {
            continue;
        };
        let (Some(om), Some(nm)) = (&old[o].mapping, &new[n].mapping) else {
            return Err(refuse(
                name,
                format!("its type `{from}` has no MySQL mapping"),
            ));
        };
        if let Some(why) = conversion_refused(om, nm) {
            return Err(refuse(
                name,
                format!("its type changed from `{from}` to `{to}`, and {why}"),
            ));
        }
        if old[o].definition != new[n].definition {
            if let Some(def) = &new[n].definition {
                clauses.push(format!("MODIFY COLUMN {def}"));
            }
        }
    }
    for d in &diff.added {
        let Some(n) = find(&new, &d.name) else {
            continue;
        };
        let Some(a) = find(&added, &d.name) else {
            continue;
        };
        if let (Some(missing), Some(mapping)) = (&d.missing, &new[n].mapping) {
            match default::translate_default(&quote_pg_literal(missing), mapping) {
                Ok(_) => {}
                Err(why) => {
                    return Err(refuse(
                        &d.name,
                        format!(
                            "the rows already there hold `{missing}` in the new column, which \
                             the target cannot hold as its default ({why})"
                        ),
                    ))
                }
            }
        }
        let (Some(def), Some(fin)) = (&added[a].definition, &new[n].definition) else {
            continue;
        };
        clauses.push(format!("ADD COLUMN {def}"));
        if def != fin {
            then.push(format!("MODIFY COLUMN {fin}"));
        }
    }
    let qualified = qualified(target);
    let mut statements = Vec::new();
    if !clauses.is_empty() {
        statements.push(format!("ALTER TABLE {qualified} {}", clauses.join(", ")));
    }
    if !then.is_empty() {
        statements.push(format!("ALTER TABLE {qualified} {}", then.join(", ")));
    }
    Ok(statements)
}

/// `text` as a PostgreSQL string literal.
fn quote_pg_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// What a column's values are, for judging a conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Boolean,
    Integer,
    /// Exact numbers; whether the source declares a precision (else MySQL pads the
    /// values' scale, which text would show).
    Exact {
        bounded: bool,
    },
    Real,
    Double,
    Text,
    Bytes,
    Date,
    /// Timestamps: precision, with time zone.
    Timestamp(u8, bool),
    Time(u8),
    Json {
        binary: bool,
    },
    Other,
}

fn family(m: &PgToMySqlMapping) -> Family {
    use MySqlType as M;
    use PgSourceType as P;
    let integer_target = matches!(
        m.target,
        M::TinyInt { .. }
            | M::SmallInt { .. }
            | M::MediumInt { .. }
            | M::Int { .. }
            | M::BigInt { .. }
    );
    let text_target = matches!(
        m.target,
        M::Char(_) | M::VarChar(_) | M::TinyText | M::Text | M::MediumText | M::LongText
    );
    match (&m.source, &m.target) {
        (P::Boolean, _) if integer_target => Family::Boolean,
        (P::SmallInt | P::Integer | P::BigInt | P::Oid, _) if integer_target => Family::Integer,
        (P::Numeric { precision, .. }, M::Decimal { .. }) => Family::Exact {
            bounded: precision.is_some(),
        },
        (P::Real, M::Float) => Family::Real,
        (P::Double, M::Double) => Family::Double,
        (P::Char(_) | P::VarChar(_) | P::Text | P::Name, _) if text_target => Family::Text,
        (P::Bytea, _) => Family::Bytes,
        (P::Date, M::Date) => Family::Date,
        (P::Timestamp(p), M::DateTime(_)) => Family::Timestamp(*p, false),
        (P::TimestampTz(p), M::DateTime(_)) => Family::Timestamp(*p, true),
        (P::Time(p), M::Time(_)) => Family::Time(*p),
        (P::Json, _) if m.json => Family::Json { binary: false },
        (P::Jsonb, _) if m.json => Family::Json { binary: true },
        _ => Family::Other,
    }
}

/// Why MySQL's conversion of the target's values from `old` to `new` would not give what
/// PostgreSQL's `column::type` gave, or `None` when it gives the same.
fn conversion_refused(old: &PgToMySqlMapping, new: &PgToMySqlMapping) -> Option<String> {
    use Family as F;
    if old.source == new.source && old.target == new.target {
        return None;
    }
    let same = match (family(old), family(new)) {
        (F::Boolean | F::Integer, F::Integer | F::Exact { .. } | F::Double) => true,
        (F::Integer, F::Text) => true,
        (F::Exact { .. }, F::Exact { .. }) => true,
        (F::Exact { bounded: true }, F::Text) => true,
        (F::Real, F::Double) => true,
        (F::Text, F::Text) | (F::Bytes, F::Bytes) => true,
        (F::Date, F::Timestamp(_, false)) => true,
        (F::Timestamp(p, a), F::Timestamp(q, b)) => a == b && q >= p,
        (F::Time(p), F::Time(q)) => q >= p,
        (F::Json { .. }, F::Json { binary: false }) => true,
        (F::Json { binary: false }, F::Json { binary: true }) => false,
        _ => false,
    };
    (!same).then(|| {
        format!(
            "MySQL would not convert the values the target holds (`{}`) into `{}` as \
             PostgreSQL converted them",
            old.target, new.target
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dts_typemap::pg_to_mysql::{map_pg_type, PgToMySqlOptions};

    fn mapping(ty: &str) -> PgToMySqlMapping {
        map_pg_type(
            ty,
            PgSourceType::parse(ty),
            true,
            &PgToMySqlOptions::default(),
        )
        .unwrap()
    }

    #[test]
    fn follows_only_conversions_mysql_makes_as_postgresql_does() {
        let ok = |a: &str, b: &str| conversion_refused(&mapping(a), &mapping(b)).is_none();
        assert!(ok("integer", "bigint"));
        assert!(ok("bigint", "smallint"));
        assert!(ok("integer", "numeric(12,2)"));
        assert!(ok("numeric(10,2)", "numeric(12,4)"));
        assert!(ok("numeric", "numeric(40,12)"));
        assert!(ok("integer", "text"));
        assert!(ok("character varying(10)", "text"));
        assert!(ok("text", "character varying(20)"));
        assert!(ok("real", "double precision"));
        assert!(ok("date", "timestamp without time zone"));
        assert!(ok("jsonb", "json"));
        assert!(ok("boolean", "integer"));
        assert!(!ok("integer", "boolean"));
        assert!(!ok("boolean", "text"));
        assert!(!ok("numeric", "text"));
        assert!(!ok("text", "integer"));
        assert!(!ok("json", "jsonb"));
        assert!(!ok("double precision", "real"));
        assert!(!ok(
            "timestamp without time zone",
            "timestamp with time zone"
        ));
        assert!(!ok(
            "timestamp(6) without time zone",
            "timestamp(0) without time zone"
        ));
        let why = conversion_refused(&mapping("text"), &mapping("integer")).unwrap();
        assert!(why.contains("`longtext`") && why.contains("`int`"), "{why}");
    }
}
