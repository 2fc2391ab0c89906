//! Key definitions (`PRIMARY KEY (…)`, `UNIQUE KEY name (…)`, `FULLTEXT INDEX …`,
//! `CONSTRAINT name FOREIGN KEY (…) REFERENCES …`, `CHECK (…)`) as parts of the schema model.

use dts_core::{ForeignKey, Index, IndexColumn, IndexKind, ReferentialAction, TableName};
use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, IndexType, ObjectName,
    OrderBySort, TableConstraint, Value,
};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

use super::Fail;
use crate::token::{Cursor, Tok};

/// A parsed key definition. Names MySQL would generate are left `None`; the table decides
/// them (they depend on the names already taken).
#[derive(Debug, Clone)]
pub(super) enum KeySpec {
    /// `PRIMARY KEY (columns)`.
    Primary(Vec<String>),
    /// A unique, ordinary, full-text or spatial index.
    Index { name: Option<String>, index: Index },
    /// A foreign key: the constraint name and the name of the index it may create.
    Foreign {
        constraint: Option<String>,
        index_name: Option<String>,
        fk: ForeignKey,
    },
    /// A check constraint (not migrated), or MariaDB's `json_valid(column)` check.
    Check { json_column: Option<String> },
}

/// A key definition and whether it said `IF NOT EXISTS` (MariaDB).
#[derive(Debug, Clone)]
pub(super) struct ParsedKey {
    pub(super) spec: KeySpec,
    pub(super) if_not_exists: bool,
}

/// Index options after the key part list, which the target does not need.
const INDEX_OPTIONS: &[&str] = &[
    "USING",
    "COMMENT",
    "KEY_BLOCK_SIZE",
    "VISIBLE",
    "INVISIBLE",
    "WITH",
    "IGNORED",
    "NOT",
    "CLUSTERING",
    "ENGINE_ATTRIBUTE",
    "SECONDARY_ENGINE_ATTRIBUTE",
    "ALGORITHM",
    "LOCK",
    "ENFORCED",
];

/// Parses a key definition; `table` resolves an unqualified referenced table.
pub(super) fn parse_key(toks: &[Tok], table: &TableName) -> Result<ParsedKey, Fail> {
    // MariaDB accepts `IF NOT EXISTS` after INDEX/KEY/CONSTRAINT/FOREIGN KEY.
    let mut if_not_exists = false;
    let mut kept: Vec<Tok> = Vec::with_capacity(toks.len());
    let mut c = Cursor::new(toks);
    while let Some(t) = c.peek() {
        if c.eat_kws(&["IF", "NOT", "EXISTS"]) {
            if_not_exists = true;
        } else {
            kept.push(t.clone());
            c.next();
        }
    }
    let dialect = MySqlDialect {};
    let mut p =
        Parser::new(&dialect).with_tokens_with_locations(kept.iter().map(Tok::with_span).collect());
    let constraint = p
        .parse_optional_table_constraint()
        .map_err(|e| Fail::Parse(e.to_string()))?
        .ok_or_else(|| Fail::Parse("expected a key definition".into()))?;
    let rest = &kept[p.index().min(kept.len())..];
    if let Some(t) = rest.first() {
        if !INDEX_OPTIONS.iter().any(|kw| t.is_kw(kw)) && t.token != Token::Comma {
            return Err(Fail::Parse(format!(
                "unexpected `{}` after a key definition",
                t.token
            )));
        }
    }
    let spec = match constraint {
        TableConstraint::PrimaryKey(pk) => {
            let parts = key_parts(&pk.columns)?;
            if parts.iter().any(|p| p.prefix_length.is_some()) {
                return Err(Fail::Unsupported(
                    "a primary key on a column prefix".to_string(),
                ));
            }
            KeySpec::Primary(parts.into_iter().map(|p| p.name).collect())
        }
        TableConstraint::Unique(u) => KeySpec::Index {
            name: u.index_name.or(u.name).map(|i| i.value),
            index: Index {
                name: String::new(),
                unique: true,
                kind: kind(u.index_type.as_ref()),
                columns: key_parts(&u.columns)?,
            },
        },
        TableConstraint::Index(i) => KeySpec::Index {
            name: i.name.map(|i| i.value),
            index: Index {
                name: String::new(),
                unique: false,
                kind: kind(i.index_type.as_ref()),
                columns: key_parts(&i.columns)?,
            },
        },
        TableConstraint::FulltextOrSpatial(f) => KeySpec::Index {
            name: f.opt_index_name.map(|i| i.value),
            index: Index {
                name: String::new(),
                unique: false,
                kind: if f.fulltext {
                    IndexKind::FullText
                } else {
                    IndexKind::Spatial
                },
                columns: key_parts(&f.columns)?,
            },
        },
        TableConstraint::ForeignKey(fk) => KeySpec::Foreign {
            constraint: fk.name.map(|i| i.value),
            index_name: fk.index_name.map(|i| i.value),
            fk: ForeignKey {
                name: String::new(),
                columns: fk.columns.into_iter().map(|i| i.value).collect(),
                referenced_table: referenced(&fk.foreign_table, table)?,
                referenced_columns: fk.referred_columns.into_iter().map(|i| i.value).collect(),
                on_delete: action(fk.on_delete),
                on_update: action(fk.on_update),
            },
        },
        TableConstraint::Check(check) => KeySpec::Check {
            json_column: json_valid_column(&check.expr),
        },
        other => return Err(Fail::Unsupported(format!("key definition `{other}`"))),
    };
    Ok(ParsedKey {
        spec,
        if_not_exists,
    })
}

/// Whether a definition in a table body is a key rather than a column.
pub(super) fn starts_key(toks: &[Tok]) -> bool {
    let Some(first) = toks.first() else {
        return false;
    };
    [
        "CONSTRAINT",
        "PRIMARY",
        "UNIQUE",
        "KEY",
        "INDEX",
        "FULLTEXT",
        "SPATIAL",
        "FOREIGN",
        "CHECK",
    ]
    .iter()
    .any(|kw| first.is_kw(kw))
}

fn kind(t: Option<&IndexType>) -> IndexKind {
    // InnoDB builds every index as a B-tree (`USING HASH` is accepted and ignored), and
    // information_schema reports BTREE, so the model says BTree too.
    let _ = t;
    IndexKind::BTree
}

fn action(a: Option<sqlparser::ast::ReferentialAction>) -> ReferentialAction {
    use sqlparser::ast::ReferentialAction as A;
    match a {
        // information_schema reports an unspecified action as RESTRICT.
        None | Some(A::Restrict) => ReferentialAction::Restrict,
        Some(A::Cascade) => ReferentialAction::Cascade,
        Some(A::SetNull) => ReferentialAction::SetNull,
        Some(A::NoAction) => ReferentialAction::NoAction,
        // MariaDB accepts SET DEFAULT and InnoDB ignores it: the key restricts, and
        // information_schema reports RESTRICT (MySQL rejects the clause).
        Some(A::SetDefault) => ReferentialAction::Restrict,
    }
}

fn referenced(name: &ObjectName, table: &TableName) -> Result<TableName, Fail> {
    let parts: Vec<&Ident> = name.0.iter().filter_map(|p| p.as_ident()).collect();
    match parts.as_slice() {
        [t] => Ok(TableName::new(table.schema.clone(), t.value.clone())),
        [s, t] => Ok(TableName::new(s.value.clone(), t.value.clone())),
        _ => Err(Fail::Parse(format!("malformed referenced table `{name}`"))),
    }
}

fn key_parts(columns: &[sqlparser::ast::IndexColumn]) -> Result<Vec<IndexColumn>, Fail> {
    columns
        .iter()
        .map(|ic| {
            let descending = matches!(ic.column.options.sort, Some(OrderBySort::Desc));
            let (name, prefix_length) = match &ic.column.expr {
                Expr::Identifier(id) => (id.value.clone(), None),
                Expr::CompoundIdentifier(parts) if !parts.is_empty() => {
                    (parts[parts.len() - 1].value.clone(), None)
                }
                // `name(10)`: a prefix of the column.
                Expr::Function(f) if f.name.0.len() == 1 => {
                    let column = f.name.0[0]
                        .as_ident()
                        .map(|i| i.value.clone())
                        .unwrap_or_default();
                    let n = match &f.args {
                        FunctionArguments::List(list) => match list.args.as_slice() {
                            [FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v)))] => {
                                match &v.value {
                                    Value::Number(n, _) => n.parse::<u32>().ok(),
                                    _ => None,
                                }
                            }
                            _ => None,
                        },
                        _ => None,
                    };
                    match n {
                        Some(n) if !column.is_empty() => (column, Some(n)),
                        _ => {
                            return Err(Fail::Unsupported(format!(
                                "the functional key part `{}`",
                                ic.column.expr
                            )))
                        }
                    }
                }
                other => {
                    return Err(Fail::Unsupported(format!(
                        "the functional key part `{other}`"
                    )))
                }
            };
            Ok(IndexColumn {
                name,
                prefix_length,
                descending,
            })
        })
        .collect()
}

fn json_valid_column(expr: &Expr) -> Option<String> {
    let Expr::Function(f) = expr else {
        return None;
    };
    let name = f.name.0.last()?.as_ident()?;
    if !name.value.eq_ignore_ascii_case("json_valid") {
        return None;
    }
    match &f.args {
        FunctionArguments::List(list) => match list.args.as_slice() {
            [FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(id)))] => {
                Some(id.value.clone())
            }
            _ => None,
        },
        _ => None,
    }
}
