//! Row filters: a table's `where` condition, parsed in the source's dialect, checked
//! against the source table, and evaluated by dts on the rows change capture delivers.
//!
//! The full load pushes a condition down into the source's `SELECT` as written
//! ([`RowFilter::pushdown`]): the source evaluates it. Replication has no server to ask, so
//! dts evaluates the condition on each row image itself ([`RowFilter::matches`]), with the
//! source's semantics:
//!
//! - three-valued logic: a comparison with `NULL` is unknown, `AND`, `OR` and `NOT` follow
//!   SQL's truth tables, and a row is kept only when the condition is true;
//! - numbers compare exactly (integers and decimals as decimals); when either side is a
//!   floating-point column or literal, both compare as `double` (as MySQL and PostgreSQL do);
//! - text compares under the column's collation, and only where dts knows the collation's
//!   rules exactly: binary collations (MySQL/MariaDB `*_bin`, where `PAD SPACE` ignores
//!   trailing spaces and `*_nopad_bin` / `*_0900_bin` do not), PostgreSQL's `"C"`, `"POSIX"`
//!   and `ucs_basic` for every comparison, and PostgreSQL's deterministic collations for
//!   equality and `LIKE` (equal means byte-equal there). `bpchar` comparisons ignore
//!   trailing spaces, its `LIKE` does not;
//! - dates and date-times compare with literals written `'YYYY-MM-DD'` and
//!   `'YYYY-MM-DD HH:MM:SS[.ffffff]'` (or `DATE '…'`, `TIMESTAMP '…'`);
//! - `IN`, `NOT IN` (unknown when no item matches and one is `NULL`), `BETWEEN`, `LIKE`
//!   with `%`, `_`, the `\` escape or an `ESCAPE` character, `IS [NOT] NULL`,
//!   `IS [NOT] TRUE|FALSE`, boolean columns, literals and parentheses.
//!
//! Anything else (functions, arithmetic, subqueries, a collation whose rules dts does not
//! know, time-zone-dependent timestamps) parses, but [`RowFilter::unevaluable`] names the
//! part and why, with an exact form to write instead where one exists; a task that
//! replicates refuses such a filter. A full-load-only task can still use it, since the
//! source evaluates it.
//!
//! ```
//! use dts_core::{Column, Engine, RowImage, Table, TableName, Value};
//! use dts_schema::filter::RowFilter;
//! # fn main() -> Result<(), dts_core::Error> {
//! let mut table = Table {
//!     name: TableName::new("shop", "orders"),
//!     columns: Vec::new(),
//!     primary_key: None,
//!     indexes: Vec::new(),
//!     foreign_keys: Vec::new(),
//!     comment: None,
//!     estimated_rows: 0,
//!     auto_increment: None,
//! };
//! table.columns.push(Column::new("id", "bigint"));
//! table.columns.push(Column::new("region", "text"));
//! let filter = RowFilter::parse(Engine::Postgres, &table, "region = 'eu' AND id > 10")?;
//! assert!(filter.unevaluable().is_none());
//! let row = RowImage {
//!     columns: std::sync::Arc::new(vec!["id".into(), "region".into()]),
//!     values: vec![Value::Int(11), Value::Text("eu".into())],
//! };
//! assert!(filter.matches(&row)?);
//! # Ok(())
//! # }
//! ```

mod eval;
mod like;
#[cfg(test)]
mod tests;

use std::fmt;

use dts_core::{
    Column, Date, DateTime, Decimal, Engine, Error, Result, RowImage, Table, TableName,
};
use sqlparser::ast::{
    BinaryOperator, DataType, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident,
    InTarget, ObjectName, UnaryOperator, Value as SqlValue,
};
use sqlparser::dialect::{Dialect, MySqlDialect, PostgreSqlDialect};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

use self::like::LikePattern;

/// A part of a condition dts cannot evaluate exactly on a row, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unevaluable {
    /// The part, as written in the condition (re-printed).
    pub part: String,
    /// Why it cannot be evaluated exactly.
    pub reason: String,
    /// An exact form of the part to write instead, when there is one.
    pub suggestion: Option<String>,
}

impl fmt::Display for Unevaluable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.part, self.reason)?;
        if let Some(s) = &self.suggestion {
            write!(f, "; write `{s}` instead")?;
        }
        Ok(())
    }
}

/// A table's row filter: the condition as written, the source columns it reads, and (when
/// dts can evaluate it exactly) its compiled form.
#[derive(Debug, Clone)]
pub struct RowFilter {
    table: TableName,
    text: String,
    columns: Vec<String>,
    plan: std::result::Result<eval::Node, Unevaluable>,
}

impl RowFilter {
    /// Parses `condition` in the dialect of `engine` and resolves its column names against
    /// the source table `table` (PostgreSQL folds unquoted names to lower case; MySQL
    /// compares them without case).
    ///
    /// # Errors
    ///
    /// A configuration error naming the table when the condition is not one SQL
    /// expression, or names a column `table` does not have.
    pub fn parse(engine: Engine, table: &Table, condition: &str) -> Result<Self> {
        Self::parse_in(engine, table, condition, None)
    }

    /// Like [`RowFilter::parse`], on a PostgreSQL source whose database's default
    /// collation (`pg_database.datcollate`, libc provider) is `default_collation`: text
    /// columns without a collation of their own order exactly when it is `C` or `POSIX`.
    ///
    /// # Errors
    ///
    /// As [`RowFilter::parse`].
    pub fn parse_in(
        engine: Engine,
        table: &Table,
        condition: &str,
        default_collation: Option<&str>,
    ) -> Result<Self> {
        let context = || format!("the `where` filter of `{}`", table.name);
        let engine = match engine {
            Engine::MySql => Flavor::MySql,
            Engine::Postgres => Flavor::Postgres,
            other => {
                return Err(Error::new(
                    dts_core::ErrorKind::Unsupported,
                    format!("{}: row filters on a {other} source", context()),
                ))
            }
        };
        let dialect: Box<dyn Dialect> = match engine {
            Flavor::MySql => Box::new(MySqlDialect {}),
            Flavor::Postgres => Box::new(PostgreSqlDialect {}),
        };
        let syntax = |e: sqlparser::parser::ParserError| {
            Error::config(format!("{}: {e}", context())).with_source(e)
        };
        let mut parser = Parser::new(dialect.as_ref())
            .try_with_sql(condition)
            .map_err(syntax)?;
        let expr = parser.parse_expr().map_err(syntax)?;
        let rest = parser.peek_token();
        if rest.token != Token::EOF {
            return Err(Error::config(format!(
                "{}: unexpected `{}` after the condition (the filter is one expression)",
                context(),
                rest.token
            )));
        }
        let mut compiler = Compiler {
            engine,
            default_collation,
            table,
            used: Vec::new(),
            unknown: None,
        };
        let plan = compiler.condition(&expr);
        if let Some(name) = compiler.unknown {
            return Err(Error::config(format!(
                "{}: unknown column `{name}` (the filter names source columns)",
                context()
            )));
        }
        Ok(Self {
            table: table.name.clone(),
            text: condition.to_string(),
            columns: compiler.used,
            plan,
        })
    }

    /// The source table the filter belongs to.
    pub fn table(&self) -> &TableName {
        &self.table
    }

    /// The condition as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The source columns the condition reads, in the order it names them first.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The part dts cannot evaluate exactly, if any: replication cannot apply this filter.
    pub fn unevaluable(&self) -> Option<&Unevaluable> {
        self.plan.as_ref().err()
    }

    /// The condition for a source `WHERE` clause, parenthesised (and on its own line, so a
    /// trailing `--` comment in it ends there).
    pub fn pushdown(&self) -> String {
        format!("({}\n)", self.text)
    }

    /// Whether the condition is true for `row` (unknown counts as false).
    ///
    /// # Errors
    ///
    /// [`dts_core::ErrorKind::Unsupported`] when the filter is unevaluable, or `row` lacks a
    /// column the condition reads (it was dropped or renamed), or holds a value of a kind
    /// the column's type does not produce; each names the table, the column and the filter.
    pub fn matches(&self, row: &RowImage) -> Result<bool> {
        let node = self.plan.as_ref().map_err(|u| {
            Error::new(
                dts_core::ErrorKind::Unsupported,
                format!(
                    "the filter `{}` of `{}` cannot be evaluated on changes: {u}",
                    self.text, self.table
                ),
            )
        })?;
        let mut slots = Vec::with_capacity(self.columns.len());
        for name in &self.columns {
            let found = row.columns.iter().position(|c| c == name);
            let Some(value) = found.and_then(|i| row.values.get(i)) else {
                return Err(Error::new(
                    dts_core::ErrorKind::Unsupported,
                    format!(
                        "table `{}`: column `{name}` that the filter `{}` reads is not in the \
                         changed row (dropped or renamed?); replication cannot follow the \
                         filter",
                        self.table, self.text
                    ),
                ));
            };
            slots.push(value);
        }
        node.eval(&slots).map(|v| v == Some(true)).map_err(|e| {
            let column = self.columns.get(e.slot).map_or("?", String::as_str);
            Error::new(
                dts_core::ErrorKind::Unsupported,
                format!(
                    "table `{}`: column `{column}` holds a {} value the filter `{}` cannot \
                     compare",
                    self.table, e.kind, self.text
                ),
            )
        })
    }
}

/// The source dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    MySql,
    Postgres,
}

/// How values of a column compare.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Class {
    /// Integers and decimals, compared exactly.
    Exact,
    /// Floating point, compared as `double`.
    Float,
    /// Text under a collation.
    Text(TextRule),
    /// Bytes (MySQL binary strings), compared bytewise.
    Bytes,
    /// A date.
    Date,
    /// A date and time without time zone.
    DateTime,
    /// A boolean (PostgreSQL).
    Bool,
    /// A type the filter cannot compare; the reason.
    Other(String),
}

/// How trailing spaces count when text compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pad {
    /// They count (`NO PAD`, PostgreSQL text).
    No,
    /// The shorter string compares as if padded with spaces (MySQL `PAD SPACE`).
    Space,
    /// Trailing spaces are removed from both first (PostgreSQL `bpchar`).
    Trim,
}

/// The rules a text column's collation gives comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TextRule {
    /// The collation's name, for messages (`default` for PostgreSQL's database default).
    pub collation: String,
    /// How trailing spaces count in comparisons.
    pub pad: Pad,
    /// Trailing spaces do not count in `LIKE` either (no collation dts knows does this:
    /// MySQL's `LIKE` ignores `PAD SPACE`, PostgreSQL's sees a `bpchar`'s padding).
    pub pad_like: bool,
    /// Equality (and `LIKE`) is exact: equal means the same characters.
    pub eq: bool,
    /// Ordering is exact: by code point.
    pub order: bool,
}

struct Compiler<'a> {
    engine: Flavor,
    default_collation: Option<&'a str>,
    table: &'a Table,
    used: Vec<String>,
    unknown: Option<String>,
}

type Plan<T> = std::result::Result<T, Unevaluable>;

fn refuse<T>(part: &Expr, reason: impl Into<String>) -> Plan<T> {
    Err(Unevaluable {
        part: part.to_string(),
        reason: reason.into(),
        suggestion: None,
    })
}

/// The first refusal of two results, else both values.
fn both<A, B>(a: Plan<A>, b: Plan<B>) -> Plan<(A, B)> {
    Ok((a?, b?))
}

/// A scalar operand.
#[derive(Debug, Clone)]
enum Operand {
    /// A column, with its class (a `COLLATE` applied).
    Column {
        slot: usize,
        class: Class,
        name: String,
        collated: bool,
    },
    /// A literal.
    Literal(Lit),
}

#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Null,
    Number(String),
    Float(f64),
    Text(String, Option<TextRule>),
    Bool(bool),
    Date(Date),
    DateTime(DateTime),
}

impl Compiler<'_> {
    fn column(&mut self, idents: &[Ident], part: &Expr) -> Plan<Operand> {
        let ident = match idents {
            [c] => c,
            [t, c] if self.name_eq(&t.value, &self.table.name.name, t.quote_style.is_some()) => c,
            [d, t, c]
                if self.name_eq(&d.value, &self.table.name.schema, d.quote_style.is_some())
                    && self.name_eq(&t.value, &self.table.name.name, t.quote_style.is_some()) =>
            {
                c
            }
            _ => {
                self.unknown.get_or_insert_with(|| part.to_string());
                return refuse(part, "names another table");
            }
        };
        let found = self
            .table
            .columns
            .iter()
            .find(|c| self.name_eq(&ident.value, &c.name, ident.quote_style.is_some()));
        let Some(column) = found else {
            self.unknown.get_or_insert_with(|| ident.value.clone());
            return refuse(part, "unknown column");
        };
        let slot = match self.used.iter().position(|u| *u == column.name) {
            Some(i) => i,
            None => {
                self.used.push(column.name.clone());
                self.used.len() - 1
            }
        };
        let class = if column.generated.is_some() {
            Class::Other(format!(
                "`{}` is a generated column, which change capture does not carry",
                column.name
            ))
        } else {
            classify(self.engine, column, self.default_collation)
        };
        Ok(Operand::Column {
            slot,
            class,
            name: column.name.clone(),
            collated: false,
        })
    }

    /// Whether the written name `written` names `actual`.
    fn name_eq(&self, written: &str, actual: &str, quoted: bool) -> bool {
        match self.engine {
            Flavor::MySql => written.eq_ignore_ascii_case(actual),
            Flavor::Postgres if quoted => written == actual,
            Flavor::Postgres => written.to_lowercase() == actual,
        }
    }

    /// Resolves the columns inside a part that is refused anyway, so unknown names are
    /// still reported.
    fn visit_refused(&mut self, e: &Expr) {
        match e {
            Expr::Identifier(i) => {
                let _ = self.column(std::slice::from_ref(i), e);
            }
            Expr::CompoundIdentifier(ids) => {
                let _ = self.column(ids, e);
            }
            Expr::BinaryOp { left, right, .. } => {
                self.visit_refused(left);
                self.visit_refused(right);
            }
            Expr::UnaryOp { expr, .. }
            | Expr::Nested(expr)
            | Expr::Cast { expr, .. }
            | Expr::Collate { expr, .. }
            | Expr::IsNull(expr)
            | Expr::IsNotNull(expr) => self.visit_refused(expr),
            Expr::Function(f) => {
                if let FunctionArguments::List(list) = &f.args {
                    for a in &list.args {
                        if let FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) = a {
                            self.visit_refused(x);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// A boolean-valued expression.
    fn condition(&mut self, e: &Expr) -> Plan<eval::Node> {
        use eval::Node;
        match e {
            Expr::Nested(inner) => self.condition(inner),
            Expr::BinaryOp { left, op, right } => match op {
                BinaryOperator::And | BinaryOperator::Or => {
                    let (l, r) = both(self.condition(left), self.condition(right))?;
                    Ok(if *op == BinaryOperator::And {
                        Node::And(Box::new(l), Box::new(r))
                    } else {
                        Node::Or(Box::new(l), Box::new(r))
                    })
                }
                BinaryOperator::Eq
                | BinaryOperator::NotEq
                | BinaryOperator::Lt
                | BinaryOperator::LtEq
                | BinaryOperator::Gt
                | BinaryOperator::GtEq => {
                    let op = eval::CmpOp::from_sql(op).expect("comparison operator");
                    let (l, r) = both(self.operand(left), self.operand(right))?;
                    self.compare(e, l, op, r)
                }
                _ => {
                    self.visit_refused(e);
                    refuse(e, "dts evaluates no such operator on changes")
                }
            },
            Expr::UnaryOp {
                op: UnaryOperator::Not,
                expr,
            } => Ok(Node::Not(Box::new(self.condition(expr)?))),
            Expr::IsNull(x) | Expr::IsNotNull(x) => {
                let negated = matches!(e, Expr::IsNotNull(_));
                let o = self.operand(x)?;
                Ok(match o {
                    Operand::Column { slot, .. } => Node::IsNull { slot, negated },
                    Operand::Literal(l) => Node::Const(Some((l == Lit::Null) != negated)),
                })
            }
            Expr::IsTrue(x) | Expr::IsNotTrue(x) | Expr::IsFalse(x) | Expr::IsNotFalse(x) => {
                let want = matches!(e, Expr::IsTrue(_) | Expr::IsNotTrue(_));
                let negated = matches!(e, Expr::IsNotTrue(_) | Expr::IsNotFalse(_));
                let inner = self.condition(x)?;
                Ok(Node::Is {
                    inner: Box::new(inner),
                    want,
                    negated,
                })
            }
            Expr::In {
                expr,
                target: InTarget::List(list),
                negated,
                ..
            } => {
                let left = self.operand(expr)?;
                let mut any: Option<Node> = None;
                let mut first_err = None;
                for item in list {
                    let node = self
                        .operand(item)
                        .and_then(|r| self.compare(e, left.clone(), eval::CmpOp::Eq, r));
                    match node {
                        Ok(n) => {
                            any = Some(match any {
                                None => n,
                                Some(a) => Node::Or(Box::new(a), Box::new(n)),
                            })
                        }
                        Err(u) => {
                            first_err.get_or_insert(u);
                        }
                    }
                }
                if let Some(u) = first_err {
                    return Err(u);
                }
                let any = any.unwrap_or(Node::Const(Some(false)));
                Ok(if *negated {
                    Node::Not(Box::new(any))
                } else {
                    any
                })
            }
            Expr::In { expr, target, .. } => {
                self.visit_refused(expr);
                let what = match target {
                    InTarget::Subquery(_) => "a subquery",
                    _ => "this kind of `IN`",
                };
                refuse(e, format!("dts cannot evaluate {what} on changes"))
            }
            Expr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let x = self.operand(expr)?;
                let (lo, hi) = both(self.operand(low), self.operand(high))?;
                let ge = self.compare(e, x.clone(), eval::CmpOp::GtEq, lo)?;
                let le = self.compare(e, x, eval::CmpOp::LtEq, hi)?;
                let node = Node::And(Box::new(ge), Box::new(le));
                Ok(if *negated {
                    Node::Not(Box::new(node))
                } else {
                    node
                })
            }
            Expr::Like {
                negated,
                any: false,
                expr,
                pattern,
                escape_char,
            } => self.like(e, expr, pattern, escape_char.as_deref(), *negated),
            Expr::Value(v) => match &v.value {
                SqlValue::Boolean(b) => Ok(Node::Const(Some(*b))),
                SqlValue::Null => Ok(Node::Const(None)),
                _ => refuse(e, "a literal is not a condition"),
            },
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) => match self.operand(e)? {
                Operand::Column {
                    slot,
                    class: Class::Bool,
                    ..
                } => Ok(Node::Truth { slot }),
                Operand::Column { name, .. } => refuse(
                    e,
                    format!("`{name}` is not a boolean column; compare it with a value"),
                ),
                Operand::Literal(_) => refuse(e, "a literal is not a condition"),
            },
            Expr::Function(_) => {
                self.visit_refused(e);
                refuse(e, "dts evaluates no functions on changes")
            }
            Expr::Subquery(_) | Expr::Exists { .. } => {
                refuse(e, "dts evaluates no subqueries on changes")
            }
            _ => {
                self.visit_refused(e);
                refuse(e, "dts cannot evaluate this on changes")
            }
        }
    }

    /// A scalar expression: a column, a literal, or a column / literal with `COLLATE`.
    fn operand(&mut self, e: &Expr) -> Plan<Operand> {
        match e {
            Expr::Nested(inner) => self.operand(inner),
            Expr::Identifier(i) => self.column(std::slice::from_ref(i), e),
            Expr::CompoundIdentifier(ids) => self.column(ids, e),
            Expr::Value(v) => self.literal(e, &v.value, false),
            Expr::UnaryOp {
                op: UnaryOperator::Minus,
                expr,
            } => match expr.as_ref() {
                Expr::Value(v) => self.literal(e, &v.value, true),
                _ => {
                    self.visit_refused(expr);
                    refuse(e, "dts evaluates no arithmetic on changes")
                }
            },
            Expr::TypedString(t) => {
                let Some(text) = t.value.clone().into_string() else {
                    return refuse(e, "a typed literal that is not a string");
                };
                match &t.data_type {
                    DataType::Date => text
                        .trim()
                        .parse::<Date>()
                        .map(|d| Operand::Literal(Lit::Date(d)))
                        .or_else(|_| refuse(e, "not a date dts reads (write 'YYYY-MM-DD')")),
                    DataType::Timestamp(_, tz)
                        if *tz == sqlparser::ast::TimezoneInfo::None
                            || *tz == sqlparser::ast::TimezoneInfo::WithoutTimeZone =>
                    {
                        parse_datetime(&text)
                            .map(|d| Operand::Literal(Lit::DateTime(d)))
                            .ok_or(())
                            .or_else(|()| {
                                refuse(e, "not a date-time dts reads (write 'YYYY-MM-DD HH:MM:SS')")
                            })
                    }
                    DataType::Datetime(_) if self.engine == Flavor::MySql => parse_datetime(&text)
                        .map(|d| Operand::Literal(Lit::DateTime(d)))
                        .ok_or(())
                        .or_else(|()| {
                            refuse(e, "not a date-time dts reads (write 'YYYY-MM-DD HH:MM:SS')")
                        }),
                    _ => refuse(e, "dts evaluates typed literals of DATE and TIMESTAMP only"),
                }
            }
            Expr::Collate { expr, collation } => {
                let inner = self.operand(expr)?;
                self.collate(e, inner, collation)
            }
            Expr::Function(_) => {
                self.visit_refused(e);
                refuse(e, "dts evaluates no functions on changes")
            }
            Expr::BinaryOp { .. } => {
                self.visit_refused(e);
                refuse(
                    e,
                    "dts evaluates no arithmetic or operators in values on changes",
                )
            }
            _ => {
                self.visit_refused(e);
                refuse(e, "dts cannot evaluate this on changes")
            }
        }
    }

    fn literal(&self, e: &Expr, v: &SqlValue, negative: bool) -> Plan<Operand> {
        let sign = if negative { "-" } else { "" };
        let lit = match v {
            SqlValue::Number(n, _) => {
                if n.contains(['e', 'E']) {
                    if self.engine == Flavor::Postgres {
                        return refuse(e, "write the number without an exponent");
                    }
                    match format!("{sign}{n}").parse::<f64>() {
                        Ok(f) => Lit::Float(f),
                        Err(_) => return refuse(e, "not a number dts reads"),
                    }
                } else {
                    match format!("{sign}{n}").parse::<Decimal>() {
                        Ok(d) => Lit::Number(d.to_string()),
                        Err(_) => return refuse(e, "not a number dts reads"),
                    }
                }
            }
            _ if negative => return refuse(e, "dts evaluates no arithmetic on changes"),
            SqlValue::SingleQuotedString(s) => Lit::Text(s.clone(), None),
            SqlValue::DoubleQuotedString(_) if self.engine == Flavor::MySql => {
                // A string, or an identifier under `ANSI_QUOTES`: the source may read it
                // otherwise than dts.
                return refuse(e, "write strings in single quotes");
            }
            SqlValue::EscapedStringLiteral(s) if self.engine == Flavor::Postgres => {
                Lit::Text(s.clone(), None)
            }
            SqlValue::Boolean(b) => match self.engine {
                Flavor::Postgres => Lit::Bool(*b),
                Flavor::MySql => Lit::Number(if *b { "1" } else { "0" }.into()),
            },
            SqlValue::Null => Lit::Null,
            _ => return refuse(e, "dts evaluates no literal of this kind on changes"),
        };
        Ok(Operand::Literal(lit))
    }

    fn collate(&self, e: &Expr, inner: Operand, collation: &ObjectName) -> Plan<Operand> {
        let name = collation.to_string();
        let bare = name.trim_matches(['"', '`']).to_string();
        let rule = match self.engine {
            Flavor::Postgres => pg_rule(Some(&bare), false, None),
            Flavor::MySql => mysql_rule(&bare, None),
        };
        match inner {
            Operand::Column {
                slot,
                class: Class::Text(old),
                name: col,
                ..
            } => {
                if self.engine == Flavor::MySql {
                    // The collation must belong to the column's character set.
                    let charset = |c: &str| {
                        let cs = c.split('_').next().unwrap_or("").to_ascii_lowercase();
                        if cs == "utf8" {
                            "utf8mb3".to_string()
                        } else {
                            cs
                        }
                    };
                    if charset(&bare) != charset(&old.collation) {
                        return refuse(
                            e,
                            format!(
                                "collation `{bare}` is not of the character set of `{col}` \
                                 (collation `{}`)",
                                old.collation
                            ),
                        );
                    }
                }
                let rule = TextRule {
                    pad: if self.engine == Flavor::Postgres {
                        old.pad
                    } else {
                        rule.pad
                    },
                    pad_like: old.pad_like,
                    ..rule
                };
                Ok(Operand::Column {
                    slot,
                    class: Class::Text(rule),
                    name: col,
                    collated: true,
                })
            }
            Operand::Literal(Lit::Text(s, _)) => Ok(Operand::Literal(Lit::Text(s, Some(rule)))),
            _ => refuse(e, "`COLLATE` applies to text"),
        }
    }

    /// A comparison of two operands.
    fn compare(
        &self,
        part: &Expr,
        left: Operand,
        op: eval::CmpOp,
        right: Operand,
    ) -> Plan<eval::Node> {
        use eval::{How, Node, Side};
        let (left, op, right) = match (&left, &right) {
            (Operand::Literal(_), Operand::Column { .. }) => (right, op.flip(), left),
            _ => (left, op, right),
        };
        let Operand::Column {
            slot,
            class,
            name,
            collated,
        } = left
        else {
            return refuse(part, "compares two literals");
        };
        if let Class::Other(why) = &class {
            return refuse(part, format!("`{name}`: {why}"));
        }
        let mk = |how: How, right: Side| {
            Ok(Node::Cmp {
                op,
                slot,
                how,
                right,
            })
        };
        match right {
            Operand::Literal(Lit::Null) => Ok(Node::Const(None)),
            Operand::Literal(lit) => match (&class, lit) {
                (Class::Exact, Lit::Number(n)) => mk(How::Exact, Side::Number(n.parse().ok())),
                (Class::Exact | Class::Float, Lit::Float(f)) => mk(How::Float, Side::Float(f)),
                (Class::Float, Lit::Number(n)) => mk(
                    How::Float,
                    Side::Float(n.parse::<f64>().unwrap_or(f64::NAN)),
                ),
                (Class::Text(rule), Lit::Text(s, lit_rule)) => {
                    let rule = match lit_rule {
                        Some(r) if !collated => r,
                        _ => rule.clone(),
                    };
                    self.text_check(part, &name, &rule, op)?;
                    mk(How::Text(rule.pad), Side::Text(s))
                }
                (Class::Bytes, Lit::Text(s, None)) => mk(How::Bytes, Side::Bytes(s.into_bytes())),
                (Class::Date, Lit::Text(s, _)) => match s.trim().parse::<Date>() {
                    Ok(d) if !s.contains(':') => mk(How::Date, Side::Date(d)),
                    _ => refuse(
                        part,
                        format!("compare date column `{name}` with a date written 'YYYY-MM-DD'"),
                    ),
                },
                (Class::Date, Lit::Date(d)) => mk(How::Date, Side::Date(d)),
                (Class::DateTime, Lit::Text(s, _)) => match parse_datetime(&s) {
                    Some(d) => mk(How::DateTime, Side::DateTime(d)),
                    None => refuse(
                        part,
                        format!(
                            "compare date-time column `{name}` with a value written \
                             'YYYY-MM-DD HH:MM:SS[.ffffff]'"
                        ),
                    ),
                },
                (Class::DateTime, Lit::DateTime(d)) => mk(How::DateTime, Side::DateTime(d)),
                (Class::DateTime, Lit::Date(d)) => mk(How::DateTime, Side::DateTime(midnight(d))),
                (Class::Bool, Lit::Bool(b)) => mk(How::Bool, Side::Bool(b)),
                (Class::Exact | Class::Float, Lit::Text(..)) => refuse(
                    part,
                    format!("compares number column `{name}` with a string; write the number"),
                ),
                _ => refuse(
                    part,
                    format!("dts does not compare column `{name}` with this kind of literal"),
                ),
            },
            Operand::Column {
                slot: other,
                class: right_class,
                name: right_name,
                ..
            } => {
                let how = match (&class, &right_class) {
                    (Class::Exact, Class::Exact) => How::Exact,
                    (Class::Exact | Class::Float, Class::Exact | Class::Float) => How::Float,
                    (Class::Date, Class::Date) => How::Date,
                    (Class::DateTime, Class::DateTime) => How::DateTime,
                    (Class::Bool, Class::Bool) => How::Bool,
                    (Class::Bytes, Class::Bytes) => How::Bytes,
                    (Class::Text(a), Class::Text(b)) if a == b => {
                        self.text_check(part, &name, a, op)?;
                        How::Text(a.pad)
                    }
                    _ => {
                        return refuse(
                            part,
                            format!(
                                "dts does not compare columns `{name}` and `{right_name}` \
                                 on changes"
                            ),
                        )
                    }
                };
                mk(how, Side::Column(other))
            }
        }
    }

    /// Refuses a text comparison the collation does not make exact.
    fn text_check(&self, part: &Expr, name: &str, rule: &TextRule, op: eval::CmpOp) -> Plan<()> {
        let ordering = !matches!(op, eval::CmpOp::Eq | eval::CmpOp::NotEq);
        if (ordering && !rule.order) || !rule.eq {
            let what = if ordering { "orders" } else { "compares" };
            return Err(Unevaluable {
                part: part.to_string(),
                reason: format!(
                    "`{name}` {what} text under collation `{}`, whose rules dts does not \
                     know",
                    rule.collation
                ),
                suggestion: Some(self.suggest(part, name)),
            });
        }
        Ok(())
    }

    /// The part with `COLLATE` of a binary collation after column `name`.
    fn suggest(&self, part: &Expr, name: &str) -> String {
        let text = part.to_string();
        let collation = match self.engine {
            Flavor::Postgres => "\"C\"".to_string(),
            Flavor::MySql => {
                let charset = self
                    .table
                    .column(name)
                    .and_then(|c| c.charset.clone())
                    .unwrap_or_else(|| "utf8mb4".into());
                format!("{charset}_bin")
            }
        };
        // Insert the clause after the first mention of the column.
        match text.to_ascii_lowercase().find(&name.to_ascii_lowercase()) {
            Some(i) => {
                let end = i + name.len();
                let end = if text[end..].starts_with(['"', '`']) {
                    end + 1
                } else {
                    end
                };
                format!("{} COLLATE {collation}{}", &text[..end], &text[end..])
            }
            None => format!("{text} COLLATE {collation}"),
        }
    }

    fn like(
        &mut self,
        e: &Expr,
        expr: &Expr,
        pattern: &Expr,
        escape: Option<&Expr>,
        negated: bool,
    ) -> Plan<eval::Node> {
        let x = self.operand(expr)?;
        let p = self.operand(pattern)?;
        let Operand::Column {
            slot, class, name, ..
        } = x
        else {
            return refuse(e, "`LIKE` of a literal");
        };
        let rule = match class {
            Class::Text(rule) => rule,
            Class::Other(why) => return refuse(e, format!("`{name}`: {why}")),
            _ => return refuse(e, format!("`LIKE` on non-text column `{name}`")),
        };
        let Operand::Literal(Lit::Text(pat, lit_rule)) = p else {
            return refuse(e, "the `LIKE` pattern must be a string literal");
        };
        let rule = lit_rule.unwrap_or(rule);
        self.text_check(e, &name, &rule, eval::CmpOp::Eq)?;
        let escape = match escape {
            None => Some('\\'),
            Some(x) => match x {
                Expr::Value(v) => match v.value.clone().into_string() {
                    Some(s) if s.is_empty() => None,
                    Some(s) if s.chars().count() == 1 => s.chars().next(),
                    _ => return refuse(e, "the escape must be one character"),
                },
                _ => return refuse(e, "the escape must be a string literal"),
            },
        };
        let Some(pattern) = LikePattern::new(&pat, escape) else {
            return refuse(e, "the pattern ends with its escape character");
        };
        Ok(eval::Node::Like {
            slot,
            pattern,
            trim: rule.pad_like,
            negated,
        })
    }
}

fn midnight(date: Date) -> DateTime {
    DateTime {
        date,
        hour: 0,
        minute: 0,
        second: 0,
        micro: 0,
    }
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` or `YYYY-MM-DD` (midnight).
fn parse_datetime(s: &str) -> Option<DateTime> {
    let s = s.trim();
    if let Ok(d) = s.parse::<DateTime>() {
        return Some(d);
    }
    if s.contains(':') {
        return None;
    }
    s.parse::<Date>().ok().map(midnight)
}

/// The comparison class of a source column.
fn classify(engine: Flavor, column: &Column, default_collation: Option<&str>) -> Class {
    let ty = column.source_type.to_ascii_lowercase();
    let base = ty
        .split(['(', ' '])
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    match engine {
        Flavor::MySql => match base.as_str() {
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "decimal"
            | "numeric" | "year" | "dec" | "fixed" => Class::Exact,
            "float" | "double" | "real" => Class::Float,
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => {
                let collation = column.collation.as_deref().unwrap_or("");
                Class::Text(mysql_rule(collation, column.charset.as_deref()))
            }
            "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
                Class::Bytes
            }
            "date" => Class::Date,
            "datetime" => Class::DateTime,
            "timestamp" => Class::Other(
                "a TIMESTAMP compares in the session's time zone; dts does not evaluate it on \
                 changes"
                    .into(),
            ),
            other => Class::Other(format!("dts does not compare `{other}` values on changes")),
        },
        Flavor::Postgres => {
            let array = ty.ends_with("[]");
            match base.as_str() {
                _ if array => Class::Other("dts does not compare arrays on changes".into()),
                "smallint" | "integer" | "bigint" | "numeric" | "decimal" | "int" | "int2"
                | "int4" | "int8" => Class::Exact,
                "real" | "double" | "float4" | "float8" => Class::Float,
                "text" | "character" | "varchar" | "char" | "bpchar" => {
                    let pad = matches!(base.as_str(), "character" | "char" | "bpchar")
                        && !ty.starts_with("character varying");
                    Class::Text(pg_rule(column.collation.as_deref(), pad, default_collation))
                }
                "date" => Class::Date,
                "timestamp" if !ty.contains("with time zone") => Class::DateTime,
                "timestamp" => Class::Other(
                    "a timestamptz compares in the session's time zone; dts does not \
                     evaluate it on changes"
                        .into(),
                ),
                "boolean" | "bool" => Class::Bool,
                other => Class::Other(format!("dts does not compare `{other}` values on changes")),
            }
        }
    }
}

/// A MySQL/MariaDB collation's rules: only binary (`_bin`) collations are known exactly.
fn mysql_rule(collation: &str, charset: Option<&str>) -> TextRule {
    let c = collation.to_ascii_lowercase();
    let binary = c.ends_with("_bin");
    let charset = charset
        .map(str::to_ascii_lowercase)
        .unwrap_or_else(|| c.split('_').next().unwrap_or("").to_string());
    // utf8 and ascii bytes order as code points; single-byte sets other than ascii do not
    // (latin1 is cp1252 in MySQL).
    let codepoint_order = charset.starts_with("utf8") || charset == "ascii";
    TextRule {
        collation: if collation.is_empty() {
            "unknown".into()
        } else {
            collation.into()
        },
        pad: if binary && !c.contains("nopad") && !c.contains("_0900_") {
            Pad::Space
        } else {
            Pad::No
        },
        pad_like: false,
        eq: binary,
        order: binary && codepoint_order,
    }
}

/// A PostgreSQL collation's rules; `None` is the database's default collation, which is
/// `default` (libc) when given.
fn pg_rule(collation: Option<&str>, bpchar: bool, default: Option<&str>) -> TextRule {
    let name = collation.unwrap_or("default");
    let bytewise = matches!(name, "C" | "POSIX" | "ucs_basic" | "pg_c_utf8")
        || (collation.is_none() && matches!(default, Some("C" | "POSIX")));
    // Deterministic: equal strings are byte-equal. The database default is deterministic;
    // named libc and predefined ICU collations are; a user-made collation may not be.
    let deterministic = bytewise
        || collation.is_none()
        || name == "default"
        || name.ends_with("-x-icu")
        || name.contains('.')
        || name == "und";
    let name = match (collation, default) {
        (None, Some(d)) => format!("default ({d})"),
        _ => name.to_string(),
    };
    TextRule {
        collation: name,
        pad: if bpchar { Pad::Trim } else { Pad::No },
        // `LIKE` on a `bpchar` sees its padding (checked on PostgreSQL 15).
        pad_like: false,
        eq: deterministic,
        order: bytewise,
    }
}
