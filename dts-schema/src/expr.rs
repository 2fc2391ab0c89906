//! A small translator from MySQL/MariaDB expressions (generation expressions and `DEFAULT`
//! expressions, as `information_schema` prints them) to PostgreSQL.
//!
//! It accepts a deliberately small language: backquoted or bare column names, numbers,
//! string literals (`'…'` or `"…"`, with `''` and backslash escapes, charset introducers
//! dropped), arithmetic, comparison and logical operators, `IS [NOT] NULL`, `[NOT] IN`,
//! `[NOT] BETWEEN`, `CASE`, and a whitelist of functions mapped to IMMUTABLE PostgreSQL
//! equivalents (PostgreSQL refuses anything else in a generation expression). Everything
//! else is an [`ExprError`] naming the part that could not be translated; nothing is guessed.
//!
//! MySQL semantics are kept where PostgreSQL differs: `/` never truncates (`::numeric`),
//! integer arithmetic is 64-bit (`::bigint`), division and modulo by zero give `NULL`
//! (`NULLIF`), `concat` is `||` over text (PostgreSQL's `concat()` is not immutable), numbers
//! used as conditions are compared with 0, and booleans used as numbers become integers.

use dts_core::Column;
use dts_typemap::pg::PgType;

use sqlparser::tokenizer::Token as SqlToken;

use crate::ident::{quote_ident, quote_literal};
use crate::token;

/// Where an expression is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExprContext {
    /// A generation expression: columns allowed, only immutable functions.
    Generated,
    /// A `DEFAULT` expression: no columns, the current time and `uuid()` allowed.
    Default,
}

/// A column an expression may reference.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExprColumn<'a> {
    /// The source column (its generation expression is inlined when referenced).
    pub source: &'a Column,
    /// The target column name, unquoted.
    pub target: &'a str,
    /// The target type.
    pub pg: &'a PgType,
}

/// What an expression is translated against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExprEnv<'a> {
    pub context: ExprContext,
    /// The columns of the table that exist in the target.
    pub columns: &'a [ExprColumn<'a>],
    /// The type of the column the expression computes.
    pub target: &'a PgType,
}

/// An expression that could not be translated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (in `{part}`)")]
pub(crate) struct ExprError {
    /// The part of the source expression that could not be translated.
    pub part: String,
    /// Why.
    pub reason: String,
}

/// Generated columns referencing generated columns are inlined at most this deep.
const MAX_INLINE_DEPTH: usize = 8;

/// Parentheses, unary operators and function calls nest at most this deep.
const MAX_NESTING: usize = 64;

/// Translates `expr` to PostgreSQL SQL, coerced to `env.target`.
pub(crate) fn translate(expr: &str, env: &ExprEnv<'_>) -> Result<String, ExprError> {
    translate_at(expr, env, 0)
}

fn translate_at(expr: &str, env: &ExprEnv<'_>, depth: usize) -> Result<String, ExprError> {
    let toks = tokenize(expr)?;
    if toks.is_empty() {
        return Err(ExprError {
            part: expr.to_string(),
            reason: "empty expression".into(),
        });
    }
    let mut p = Parser {
        src: expr,
        toks,
        pos: 0,
        env,
        depth,
        nesting: 0,
    };
    let node = p.parse_or()?;
    if let Some(t) = p.toks.get(p.pos) {
        return Err(p.err_span(t.start, expr.len(), "unexpected text"));
    }
    let sql = match (kind_of(env.target), node.kind) {
        (Kind::Bool, k) if k.is_numeric() => format!("({} <> 0)", node.sql),
        (k, Kind::Bool) if k.is_numeric() => format!("{}::integer", node.atom()),
        _ => node.sql,
    };
    Ok(sql)
}

// ---------------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A bare word: keyword, function name or unquoted column name.
    Word(String),
    /// A backquoted identifier.
    Ident(String),
    /// A string literal, unescaped.
    Str(String),
    /// A number, as written.
    Num(String),
    /// An operator.
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    start: usize,
    end: usize,
}

const OPERATORS: [&str; 23] = [
    "<=>", "<<", ">>", "<=", ">=", "<>", "!=", "||", "&&", ":=", "<", ">", "=", "+", "-", "*", "/",
    "%", "!", "&", "|", "^", "~",
];

fn tokenize(src: &str) -> Result<Vec<Token>, ExprError> {
    let (text, printed) = unescape_printed_quotes(src)?;
    let toks = token::tokenize(&text).map_err(|e| {
        let start = e.offset.min(src.len());
        let start = (0..=start)
            .rev()
            .find(|&i| src.is_char_boundary(i))
            .unwrap_or(0);
        let reason = if e.message.starts_with("Unterminated") || e.message.contains("delimiter") {
            "unterminated quote".to_string()
        } else {
            e.message
        };
        ExprError {
            part: src[start..].chars().take(24).collect(),
            reason,
        }
    })?;
    let mut out = Vec::with_capacity(toks.len());
    for (i, t) in toks.iter().enumerate() {
        let start = t.start;
        // A `\'…\'` literal ends where its closing `\'` ended in the source.
        let end = printed
            .iter()
            .find(|&&(s, _)| s == start)
            .map_or(t.end, |&(_, e)| e);
        let written = src.get(start..end).unwrap_or_default();
        let unsupported = |reason: &str| ExprError {
            part: written.to_string(),
            reason: reason.into(),
        };
        let tok = match &t.token {
            SqlToken::LParen => Tok::LParen,
            SqlToken::RParen => Tok::RParen,
            SqlToken::Comma => Tok::Comma,
            SqlToken::Word(w) if w.quote_style == Some('`') => Tok::Ident(w.value.clone()),
            SqlToken::Word(w) if w.quote_style.is_none() => {
                let word = &w.value;
                let literal_follows = toks.get(i + 1).is_some_and(|n| {
                    n.start == t.end
                        && matches!(
                            n.token,
                            SqlToken::SingleQuotedString(_) | SqlToken::DoubleQuotedString(_)
                        )
                });
                if literal_follows && word.starts_with('_') {
                    // A charset introducer (`_utf8mb4'x'`): the literal that follows is
                    // what counts.
                    continue;
                }
                let lower = word.to_ascii_lowercase();
                if lower.starts_with("0x") || lower.starts_with("0b") {
                    return Err(unsupported(
                        "hexadecimal and bit literals are not supported",
                    ));
                }
                if word.starts_with('@') {
                    return Err(ExprError {
                        part: "@".into(),
                        reason: "unexpected character".into(),
                    });
                }
                Tok::Word(word.clone())
            }
            SqlToken::SingleQuotedString(s)
            | SqlToken::DoubleQuotedString(s)
            | SqlToken::NationalStringLiteral(s) => Tok::Str(s.clone()),
            SqlToken::Number(n, _) => Tok::Num(n.clone()),
            SqlToken::HexStringLiteral(_)
            | SqlToken::SingleQuotedByteStringLiteral(_)
            | SqlToken::DoubleQuotedByteStringLiteral(_) => {
                return Err(unsupported(
                    "hexadecimal and bit literals are not supported",
                ))
            }
            _ => match OPERATORS.iter().find(|op| **op == written) {
                Some(op) => Tok::Op(op),
                None => {
                    return Err(ExprError {
                        part: written.chars().next().unwrap_or(' ').to_string(),
                        reason: "unexpected character".into(),
                    })
                }
            },
        };
        out.push(Token { tok, start, end });
    }
    Ok(out)
}

/// MySQL 8 prints the string literals of generation expressions as `\'…\'`, which no SQL
/// tokenizer reads. Outside quotes, each such literal is rewritten to `'…'` followed by two
/// spaces, so the text keeps its length and every other token its byte range; returns the
/// rewritten text and, for each literal, its start and its end in `src`.
fn unescape_printed_quotes(src: &str) -> Result<(String, Vec<(usize, usize)>), ExprError> {
    if !src.contains("\\'") {
        return Ok((src.to_string(), Vec::new()));
    }
    let bytes = src.as_bytes();
    let mut text = String::with_capacity(src.len());
    let mut printed = Vec::new();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(q) => {
                if c == b'\\' && q != b'`' && i + 1 < bytes.len() {
                    // An escaped character inside an ordinary literal; both bytes are kept.
                    let next = src[i + 1..].chars().next().map_or(1, char::len_utf8);
                    text.push_str(&src[i..i + 1 + next]);
                    i += 1 + next;
                    continue;
                }
                if c == q {
                    quote = None;
                }
            }
            None if c == b'\\' && bytes.get(i + 1) == Some(&b'\'') => {
                let body_start = i + 2;
                let Some(k) = src[body_start..].find("\\'") else {
                    return Err(ExprError {
                        part: src[i..].chars().take(24).collect(),
                        reason: "unterminated quote".into(),
                    });
                };
                let body_end = body_start + k;
                text.push('\'');
                text.push_str(&src[body_start..body_end]);
                text.push_str("'  ");
                printed.push((i, body_end + 2));
                i = body_end + 2;
                continue;
            }
            None if matches!(c, b'\'' | b'"' | b'`') => quote = Some(c),
            None => {}
        }
        let len = src[i..].chars().next().map_or(1, char::len_utf8);
        text.push_str(&src[i..i + len]);
        i += len;
    }
    Ok((text, printed))
}

// ---------------------------------------------------------------------------------------
// Value kinds

/// A coarse type of a translated subexpression, enough to keep MySQL's implicit
/// conversions explicit in PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `smallint`/`integer`: arithmetic on two of them is widened to `bigint`.
    Int,
    BigInt,
    Decimal,
    Float,
    Text,
    Bool,
    Temporal,
    Bytes,
    Json,
    Null,
    Other,
}

impl Kind {
    fn is_numeric(self) -> bool {
        matches!(self, Self::Int | Self::BigInt | Self::Decimal | Self::Float)
    }

    fn is_integer(self) -> bool {
        matches!(self, Self::Int | Self::BigInt)
    }

    fn name(self) -> &'static str {
        match self {
            Self::Int | Self::BigInt => "integer",
            Self::Decimal => "decimal",
            Self::Float => "floating-point",
            Self::Text => "string",
            Self::Bool => "boolean",
            Self::Temporal => "date/time",
            Self::Bytes => "binary",
            Self::Json => "json",
            Self::Null => "null",
            Self::Other => "other",
        }
    }
}

fn kind_of(pg: &PgType) -> Kind {
    match pg {
        PgType::Boolean => Kind::Bool,
        PgType::SmallInt | PgType::Integer => Kind::Int,
        PgType::BigInt => Kind::BigInt,
        PgType::Numeric { .. } => Kind::Decimal,
        PgType::Real | PgType::Double => Kind::Float,
        PgType::Char(_) | PgType::VarChar(_) | PgType::Text => Kind::Text,
        PgType::Bytea => Kind::Bytes,
        PgType::Date
        | PgType::Timestamp(_)
        | PgType::TimestampTz(_)
        | PgType::Time(_)
        | PgType::Interval(_) => Kind::Temporal,
        PgType::Jsonb => Kind::Json,
        _ => Kind::Other,
    }
}

/// A translated subexpression.
#[derive(Debug, Clone)]
struct Node {
    sql: String,
    kind: Kind,
    /// The value of an integer literal.
    int: Option<i128>,
    /// Whether the node is a literal (string literals adapt to the other operand's type).
    literal: bool,
    /// Whether `sql` can take a postfix `::type` without parentheses.
    atomic: bool,
    /// Byte span in the source expression.
    start: usize,
    end: usize,
}

impl Node {
    fn new(sql: String, kind: Kind, start: usize, end: usize) -> Self {
        Self {
            sql,
            kind,
            int: None,
            literal: false,
            atomic: true,
            start,
            end,
        }
    }

    fn not_atomic(mut self) -> Self {
        self.atomic = false;
        self
    }

    /// The SQL, parenthesised if a postfix cast would bind to only part of it.
    fn atom(&self) -> String {
        if self.atomic {
            self.sql.clone()
        } else {
            format!("({})", self.sql)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Parser and translator

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    pos: usize,
    env: &'a ExprEnv<'a>,
    depth: usize,
    nesting: usize,
}

type Res<T> = Result<T, ExprError>;

impl Parser<'_> {
    fn err_span(&self, start: usize, end: usize, reason: impl Into<String>) -> ExprError {
        let end = end.min(self.src.len()).max(start);
        ExprError {
            part: self
                .src
                .get(start..end)
                .unwrap_or(self.src)
                .trim()
                .to_string(),
            reason: reason.into(),
        }
    }

    fn err_node(&self, n: &Node, reason: impl Into<String>) -> ExprError {
        self.err_span(n.start, n.end, reason)
    }

    fn err_here(&self, reason: impl Into<String>) -> ExprError {
        match self.toks.get(self.pos) {
            Some(t) => self.err_span(t.start, t.end, reason),
            None => self.err_span(0, self.src.len(), reason),
        }
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }

    fn peek_at(&self, ahead: usize) -> Option<&Tok> {
        self.toks.get(self.pos + ahead).map(|t| &t.tok)
    }

    fn at_word(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn at_word_ahead(&self, ahead: usize, kw: &str) -> bool {
        matches!(self.peek_at(ahead), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn at_op(&self, op: &str) -> bool {
        matches!(self.peek(), Some(Tok::Op(o)) if *o == op)
    }

    fn eat_word(&mut self, kw: &str) -> bool {
        if self.at_word(kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_word(&mut self, kw: &str) -> Res<()> {
        if self.eat_word(kw) {
            Ok(())
        } else {
            Err(self.err_here(format!("expected `{}`", kw.to_ascii_lowercase())))
        }
    }

    fn expect(&mut self, tok: &Tok, what: &str) -> Res<usize> {
        match self.toks.get(self.pos) {
            Some(t) if &t.tok == tok => {
                self.pos += 1;
                Ok(t.end)
            }
            _ => Err(self.err_here(format!("expected {what}"))),
        }
    }

    fn prev_end(&self) -> usize {
        self.pos
            .checked_sub(1)
            .and_then(|i| self.toks.get(i))
            .map_or(0, |t| t.end)
    }

    // --- coercions -------------------------------------------------------------------

    /// `node` as a PostgreSQL condition.
    fn boolean(&self, node: &Node) -> Res<String> {
        match node.kind {
            Kind::Bool | Kind::Null => Ok(node.sql.clone()),
            k if k.is_numeric() => Ok(format!("({} <> 0)", node.sql)),
            k => Err(self.err_node(
                node,
                format!(
                    "a {} value used as a condition is not translatable",
                    k.name()
                ),
            )),
        }
    }

    /// `node` as a number (booleans become 0/1, as in MySQL).
    fn numeric(&self, node: Node) -> Res<Node> {
        match node.kind {
            Kind::Bool => Ok(Node {
                sql: format!("{}::integer", node.atom()),
                kind: Kind::Int,
                ..node
            }),
            k if k.is_numeric() || k == Kind::Null => Ok(node),
            k => Err(self.err_node(
                &node,
                format!(
                    "arithmetic on a {} value is not translatable (MySQL converts it to a number)",
                    k.name()
                ),
            )),
        }
    }

    /// `node` as text, for string functions (numbers print the same in both engines;
    /// other kinds do not, or their text casts are not immutable).
    fn text(&self, node: &Node, func: &str) -> Res<String> {
        match node.kind {
            Kind::Text => Ok(node.sql.clone()),
            Kind::Null => Ok("NULL::text".into()),
            Kind::Int | Kind::BigInt | Kind::Decimal => Ok(format!("{}::text", node.atom())),
            k => Err(self.err_node(
                node,
                format!("`{func}` of a {} value is not translatable", k.name()),
            )),
        }
    }

    /// The common kind of values that must share one type (CASE branches, COALESCE).
    fn unify(&self, nodes: &mut [Node]) -> Res<Kind> {
        let kinds: Vec<Kind> = nodes
            .iter()
            .filter(|n| n.kind != Kind::Null && !(n.literal && n.kind == Kind::Text))
            .map(|n| n.kind)
            .collect();
        let has_text_literal = nodes.iter().any(|n| n.literal && n.kind == Kind::Text);
        let Some(&first) = kinds.first() else {
            return Ok(if has_text_literal {
                Kind::Text
            } else {
                Kind::Null
            });
        };
        let numeric = kinds.iter().any(|k| k.is_numeric());
        if numeric && kinds.iter().all(|k| k.is_numeric() || *k == Kind::Bool) {
            for n in nodes.iter_mut() {
                if n.kind == Kind::Bool {
                    let taken = std::mem::replace(n, Node::new(String::new(), Kind::Null, 0, 0));
                    *n = self.numeric(taken)?;
                }
            }
            let widest = if kinds.contains(&Kind::Float) {
                Kind::Float
            } else if kinds.contains(&Kind::Decimal) {
                Kind::Decimal
            } else if kinds.contains(&Kind::BigInt) {
                Kind::BigInt
            } else {
                Kind::Int
            };
            if has_text_literal {
                let n = nodes.iter().find(|n| n.literal && n.kind == Kind::Text);
                if let Some(n) = n {
                    return Err(self.err_node(n, "a string mixed with numbers is not translatable"));
                }
            }
            return Ok(widest);
        }
        if kinds.iter().all(|k| *k == first) {
            // String literals adapt to the type of the other values.
            return Ok(first);
        }
        let n = nodes
            .iter()
            .find(|n| n.kind != first && n.kind != Kind::Null)
            .unwrap_or(&nodes[0]);
        Err(self.err_node(
            n,
            format!(
                "values of mixed types ({} and {}) are not translatable",
                first.name(),
                n.kind.name()
            ),
        ))
    }

    /// Checks that two values can be compared the same way in both engines.
    fn comparable(&self, l: &mut Node, r: &mut Node) -> Res<()> {
        let (lk, rk) = (l.kind, r.kind);
        if lk == Kind::Null || rk == Kind::Null || lk == rk {
            return Ok(());
        }
        let num_or_bool = |k: Kind| k.is_numeric() || k == Kind::Bool;
        if num_or_bool(lk) && num_or_bool(rk) {
            if lk == Kind::Bool {
                *l = self.numeric(l.clone())?;
            }
            if rk == Kind::Bool {
                *r = self.numeric(r.clone())?;
            }
            return Ok(());
        }
        // A string literal against a date/time or json value is read as that type.
        if (l.literal && lk == Kind::Text && !num_or_bool(rk))
            || (r.literal && rk == Kind::Text && !num_or_bool(lk))
        {
            return Ok(());
        }
        Err(self.err_span(
            l.start,
            r.end,
            format!(
                "comparing a {} value with a {} value follows different rules in PostgreSQL",
                lk.name(),
                rk.name()
            ),
        ))
    }

    // --- grammar, lowest precedence first ---------------------------------------------

    fn parse_or(&mut self) -> Res<Node> {
        self.nested(Self::parse_or_inner)
    }

    fn parse_or_inner(&mut self) -> Res<Node> {
        let mut left = self.parse_xor()?;
        loop {
            if self.at_op("||") {
                return Err(self.err_here(
                    "operator `||` means OR or concatenation depending on sql_mode; write OR or concat()",
                ));
            }
            if !self.eat_word("or") {
                return Ok(left);
            }
            let right = self.parse_xor()?;
            let sql = format!("({} OR {})", self.boolean(&left)?, self.boolean(&right)?);
            left = Node::new(sql, Kind::Bool, left.start, right.end);
        }
    }

    fn parse_xor(&mut self) -> Res<Node> {
        let left = self.parse_and()?;
        if self.at_word("xor") {
            return Err(self.err_here("operator `xor` is not supported"));
        }
        Ok(left)
    }

    fn parse_and(&mut self) -> Res<Node> {
        let mut left = self.parse_not()?;
        while self.eat_word("and") || self.at_op("&&") {
            if self.at_op("&&") {
                self.pos += 1;
            }
            let right = self.parse_not()?;
            let sql = format!("({} AND {})", self.boolean(&left)?, self.boolean(&right)?);
            left = Node::new(sql, Kind::Bool, left.start, right.end);
        }
        Ok(left)
    }

    fn parse_not(&mut self) -> Res<Node> {
        if self.at_word("not") {
            return self.nested(|p| {
                let start = p.toks[p.pos].start;
                p.pos += 1;
                let inner = p.parse_not()?;
                let sql = format!("(NOT {})", p.boolean(&inner)?);
                Ok(Node::new(sql, Kind::Bool, start, inner.end))
            });
        }
        self.parse_predicate()
    }

    /// Runs `f` one nesting level deeper, refusing expressions that nest too deeply.
    fn nested(&mut self, f: impl FnOnce(&mut Self) -> Res<Node>) -> Res<Node> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(self.err_here("expression nests too deeply"));
        }
        let node = f(self);
        self.nesting -= 1;
        node
    }

    fn parse_predicate(&mut self) -> Res<Node> {
        let mut left = self.parse_add()?;
        loop {
            if let Some(Tok::Op(op)) = self.peek() {
                let op = *op;
                let pg = match op {
                    "=" => "=",
                    "<>" | "!=" => "<>",
                    "<" => "<",
                    ">" => ">",
                    "<=" => "<=",
                    ">=" => ">=",
                    "<=>" => "IS NOT DISTINCT FROM",
                    _ => break,
                };
                self.pos += 1;
                let mut right = self.parse_add()?;
                self.comparable(&mut left, &mut right)?;
                let sql = format!("({} {pg} {})", left.sql, right.sql);
                left = Node::new(sql, Kind::Bool, left.start, right.end);
                continue;
            }
            if self.eat_word("is") {
                let not = if self.eat_word("not") { " NOT" } else { "" };
                let sql = if self.eat_word("null") || self.eat_word("unknown") {
                    format!("({} IS{not} NULL)", left.sql)
                } else if self.eat_word("true") {
                    format!("({} IS{not} TRUE)", self.boolean(&left)?)
                } else if self.eat_word("false") {
                    format!("({} IS{not} FALSE)", self.boolean(&left)?)
                } else {
                    return Err(self.err_here("expected null, true or false after `is`"));
                };
                left = Node::new(sql, Kind::Bool, left.start, self.prev_end());
                continue;
            }
            let negated = self.at_word("not")
                && ["in", "between", "like", "regexp", "rlike"]
                    .iter()
                    .any(|kw| self.at_word_ahead(1, kw));
            let ahead = usize::from(negated);
            let not = if negated { " NOT" } else { "" };
            if self.at_word_ahead(ahead, "in") {
                self.pos += ahead + 1;
                self.expect(&Tok::LParen, "`(` after `in`")?;
                let mut items = Vec::new();
                loop {
                    let mut item = self.parse_or()?;
                    self.comparable(&mut left, &mut item)?;
                    items.push(item.sql);
                    if self.peek() == Some(&Tok::Comma) {
                        self.pos += 1;
                        continue;
                    }
                    break;
                }
                let end = self.expect(&Tok::RParen, "`)` closing the `in` list")?;
                let sql = format!("({}{not} IN ({}))", left.sql, items.join(", "));
                left = Node::new(sql, Kind::Bool, left.start, end);
                continue;
            }
            if self.at_word_ahead(ahead, "between") {
                self.pos += ahead + 1;
                let mut low = self.parse_add()?;
                self.expect_word("and")?;
                let mut high = self.parse_add()?;
                self.comparable(&mut left, &mut low)?;
                self.comparable(&mut left, &mut high)?;
                let sql = format!("({}{not} BETWEEN {} AND {})", left.sql, low.sql, high.sql);
                left = Node::new(sql, Kind::Bool, left.start, high.end);
                continue;
            }
            for kw in ["like", "regexp", "rlike", "sounds"] {
                if self.at_word_ahead(ahead, kw) {
                    self.pos += ahead;
                    return Err(self.err_here(format!(
                        "operator `{kw}` is not supported (case and escape rules differ)"
                    )));
                }
            }
            break;
        }
        Ok(left)
    }

    fn parse_add(&mut self) -> Res<Node> {
        let mut left = self.parse_mul()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Op("+")) => "+",
                Some(Tok::Op("-")) => "-",
                _ => return Ok(left),
            };
            self.pos += 1;
            let right = self.parse_mul()?;
            left = self.arith(left, op, right)?;
        }
    }

    fn parse_mul(&mut self) -> Res<Node> {
        let mut left = self.parse_unary()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Op("*")) => "*",
                Some(Tok::Op("/")) => "/",
                Some(Tok::Op("%")) => "%",
                Some(Tok::Word(w)) if w.eq_ignore_ascii_case("mod") => "%",
                Some(Tok::Word(w)) if w.eq_ignore_ascii_case("div") => "div",
                _ => return Ok(left),
            };
            self.pos += 1;
            let right = self.parse_unary()?;
            left = self.arith(left, op, right)?;
        }
    }

    fn arith(&self, left: Node, op: &str, right: Node) -> Res<Node> {
        let (start, end) = (left.start, right.end);
        let l = self.numeric(left)?;
        let r = self.numeric(right)?;
        let kinds = [l.kind, r.kind];
        let float = kinds.contains(&Kind::Float);
        let decimal = kinds.contains(&Kind::Decimal);
        let both_int = kinds.iter().all(|k| k.is_integer() || *k == Kind::Null);
        let (sql, kind) = match op {
            "+" | "-" | "*" => {
                let kind = if float {
                    Kind::Float
                } else if decimal {
                    Kind::Decimal
                } else {
                    Kind::BigInt
                };
                // MySQL computes integer arithmetic in 64 bits.
                let lsql =
                    if l.kind == Kind::Int && r.kind == Kind::Int && !(l.literal && r.literal) {
                        format!("{}::bigint", l.atom())
                    } else {
                        l.sql.clone()
                    };
                (format!("({lsql} {op} {})", r.sql), kind)
            }
            "/" => {
                // MySQL's `/` never truncates; by zero it gives NULL.
                if float {
                    (format!("({} / NULLIF({}, 0))", l.sql, r.sql), Kind::Float)
                } else {
                    (
                        format!("({}::numeric / NULLIF({}, 0))", l.atom(), r.sql),
                        Kind::Decimal,
                    )
                }
            }
            "%" => {
                if float {
                    return Err(self.err_span(
                        start,
                        end,
                        "modulo of a floating-point value is not translatable",
                    ));
                }
                let kind = if decimal {
                    Kind::Decimal
                } else if kinds.contains(&Kind::BigInt) {
                    Kind::BigInt
                } else {
                    Kind::Int
                };
                (format!("({} % NULLIF({}, 0))", l.sql, r.sql), kind)
            }
            _ => {
                // DIV: integer division, truncating toward zero, NULL by zero.
                if both_int {
                    (format!("({} / NULLIF({}, 0))", l.sql, r.sql), Kind::BigInt)
                } else if float {
                    (
                        format!("trunc({} / NULLIF({}, 0))", l.sql, r.sql),
                        Kind::Float,
                    )
                } else {
                    (
                        format!("trunc({} / NULLIF({}, 0))", l.sql, r.sql),
                        Kind::Decimal,
                    )
                }
            }
        };
        Ok(Node::new(sql, kind, start, end))
    }

    fn parse_unary(&mut self) -> Res<Node> {
        self.nested(Self::parse_unary_inner)
    }

    fn parse_unary_inner(&mut self) -> Res<Node> {
        let Some(t) = self.toks.get(self.pos).cloned() else {
            return Err(self.err_span(0, self.src.len(), "unexpected end of expression"));
        };
        match t.tok {
            Tok::Op("-") => {
                self.pos += 1;
                let inner = self.parse_unary()?;
                if let (Some(v), true) = (inner.int, inner.literal) {
                    let mut n =
                        Node::new(format!("-{}", inner.sql), inner.kind, t.start, inner.end);
                    n.int = Some(-v);
                    n.literal = true;
                    return Ok(n.not_atomic());
                }
                let inner = self.numeric(inner)?;
                Ok(Node::new(
                    format!("(-{})", inner.sql),
                    inner.kind,
                    t.start,
                    inner.end,
                ))
            }
            Tok::Op("+") => {
                self.pos += 1;
                self.parse_unary()
            }
            Tok::Op("!") => {
                self.pos += 1;
                let inner = self.parse_unary()?;
                let sql = format!("(NOT {})", self.boolean(&inner)?);
                Ok(Node::new(sql, Kind::Bool, t.start, inner.end))
            }
            _ => self.parse_primary(),
        }
    }

    fn parse_primary(&mut self) -> Res<Node> {
        let Some(t) = self.toks.get(self.pos).cloned() else {
            return Err(self.err_span(0, self.src.len(), "unexpected end of expression"));
        };
        self.pos += 1;
        match t.tok {
            Tok::Num(n) => Ok(number(n, t.start, t.end)),
            Tok::Str(s) => {
                if s.contains('\0') {
                    return Err(self.err_span(
                        t.start,
                        t.end,
                        "a string with a NUL character cannot be stored in PostgreSQL text",
                    ));
                }
                let mut node = Node::new(quote_literal(&s), Kind::Text, t.start, t.end);
                node.literal = true;
                Ok(node)
            }
            Tok::Ident(name) => self.column(&name, t.start, t.end),
            Tok::LParen => {
                let inner = self.parse_or()?;
                if self.peek() == Some(&Tok::Comma) {
                    return Err(self.err_span(t.start, t.end, "row values are not supported"));
                }
                let end = self.expect(&Tok::RParen, "`)`")?;
                let sql = crate::ident::parenthesize(&inner.sql);
                Ok(Node {
                    sql,
                    atomic: true,
                    start: t.start,
                    end,
                    ..inner
                })
            }
            Tok::Word(w) => {
                let lower = w.to_ascii_lowercase();
                if self.peek() == Some(&Tok::LParen) && lower != "case" && lower != "not" {
                    return self.call(&lower, t.start);
                }
                match lower.as_str() {
                    "null" => Ok(Node::new("NULL".into(), Kind::Null, t.start, t.end)),
                    "true" | "false" => {
                        let mut n = Node::new(lower.clone(), Kind::Bool, t.start, t.end);
                        n.literal = true;
                        Ok(n)
                    }
                    "case" => self.parse_case(t.start),
                    "not" => {
                        let inner = self.parse_predicate()?;
                        let sql = format!("(NOT {})", self.boolean(&inner)?);
                        Ok(Node::new(sql, Kind::Bool, t.start, inner.end))
                    }
                    "current_timestamp" | "localtimestamp" | "localtime" | "current_date"
                    | "current_time" => self.function(&lower, Vec::new(), t.start, t.end),
                    "interval" | "binary" | "collate" | "select" | "exists" => {
                        Err(self.err_span(t.start, t.end, format!("`{lower}` is not supported")))
                    }
                    _ => self.column(&w, t.start, t.end),
                }
            }
            Tok::Op(op) => {
                Err(self.err_span(t.start, t.end, format!("operator `{op}` is not supported")))
            }
            Tok::RParen | Tok::Comma => {
                Err(self.err_span(t.start, t.end, "unexpected punctuation"))
            }
        }
    }

    fn parse_case(&mut self, start: usize) -> Res<Node> {
        let mut operand = if self.at_word("when") {
            None
        } else {
            Some(self.parse_or()?)
        };
        let mut whens = Vec::new();
        let mut results = Vec::new();
        while self.eat_word("when") {
            let mut cond = self.parse_or()?;
            let cond_sql = match operand.as_mut() {
                Some(op) => {
                    self.comparable(op, &mut cond)?;
                    cond.sql.clone()
                }
                None => self.boolean(&cond)?,
            };
            self.expect_word("then")?;
            whens.push(cond_sql);
            results.push(self.parse_or()?);
        }
        if whens.is_empty() {
            return Err(self.err_here("expected `when`"));
        }
        let has_else = self.eat_word("else");
        if has_else {
            results.push(self.parse_or()?);
        }
        self.expect_word("end")?;
        let end = self.prev_end();
        let kind = self.unify(&mut results)?;
        let mut sql = String::from("CASE");
        if let Some(op) = &operand {
            sql.push(' ');
            sql.push_str(&op.sql);
        }
        for (w, r) in whens.iter().zip(&results) {
            sql.push_str(&format!(" WHEN {w} THEN {}", r.sql));
        }
        if has_else {
            if let Some(r) = results.last() {
                sql.push_str(&format!(" ELSE {}", r.sql));
            }
        }
        sql.push_str(" END");
        Ok(Node::new(sql, kind, start, end).not_atomic())
    }

    /// A function call whose name was just consumed (the `(` is next).
    fn call(&mut self, name: &str, start: usize) -> Res<Node> {
        self.pos += 1; // (
        if name == "trim" {
            return self.parse_trim(start);
        }
        let mut args = Vec::new();
        if self.peek() != Some(&Tok::RParen) {
            loop {
                args.push(self.parse_or()?);
                if matches!(name, "substring" | "substr" | "mid")
                    && args.len() == 1
                    && self.eat_word("from")
                {
                    args.push(self.parse_or()?);
                    if self.eat_word("for") {
                        args.push(self.parse_or()?);
                    }
                    break;
                }
                if self.peek() == Some(&Tok::Comma) {
                    self.pos += 1;
                    continue;
                }
                break;
            }
        }
        let end = self.expect(&Tok::RParen, "`)` closing the function call")?;
        self.function(name, args, start, end)
    }

    /// `trim([both|leading|trailing] [chars] from s)` or `trim(s)`.
    fn parse_trim(&mut self, start: usize) -> Res<Node> {
        let mut func = "btrim";
        let mut explicit = false;
        for (kw, f) in [
            ("both", "btrim"),
            ("leading", "ltrim"),
            ("trailing", "rtrim"),
        ] {
            if self.eat_word(kw) {
                func = f;
                explicit = true;
            }
        }
        let (chars, subject) = if explicit && self.eat_word("from") {
            (None, self.parse_or()?)
        } else {
            let first = self.parse_or()?;
            if self.eat_word("from") {
                (Some(first), self.parse_or()?)
            } else if explicit {
                return Err(self.err_here("expected `from`"));
            } else {
                (None, first)
            }
        };
        let end = self.expect(&Tok::RParen, "`)` closing trim")?;
        let s = self.text(&subject, "trim")?;
        let sql = match chars {
            None => format!("{func}({s})"),
            Some(c) => {
                let single = c.literal
                    && c.kind == Kind::Text
                    && c.sql.chars().filter(|&ch| ch != '\'').count() == 1;
                if !single {
                    return Err(self.err_span(
                        start,
                        end,
                        "trim of anything but one character is not translatable (MySQL removes a whole string, PostgreSQL a set of characters)",
                    ));
                }
                format!("{func}({s}, {})", c.sql)
            }
        };
        Ok(Node::new(sql, Kind::Text, start, end))
    }

    fn arity(
        &self,
        name: &str,
        args: &[Node],
        min: usize,
        max: usize,
        span: (usize, usize),
    ) -> Res<()> {
        if args.len() < min || args.len() > max {
            return Err(self.err_span(
                span.0,
                span.1,
                format!("wrong number of arguments to `{name}`"),
            ));
        }
        Ok(())
    }

    /// Translates a whitelisted function.
    fn function(&self, name: &str, args: Vec<Node>, start: usize, end: usize) -> Res<Node> {
        let span = (start, end);
        let node = |sql: String, kind: Kind| Node::new(sql, kind, start, end);
        match name {
            "concat" => {
                self.arity(name, &args, 1, usize::MAX, span)?;
                let parts = args
                    .iter()
                    .map(|a| self.text(a, "concat"))
                    .collect::<Res<Vec<_>>>()?;
                if parts.len() == 1 {
                    let mut n = node(parts[0].clone(), Kind::Text);
                    n.atomic = args[0].atomic || args[0].kind != Kind::Text;
                    return Ok(n);
                }
                Ok(node(format!("({})", parts.join(" || ")), Kind::Text))
            }
            "upper" | "ucase" | "lower" | "lcase" => {
                self.arity(name, &args, 1, 1, span)?;
                let f = if name.starts_with('u') { "upper" } else { "lower" };
                Ok(node(format!("{f}({})", self.text(&args[0], f)?), Kind::Text))
            }
            "abs" => {
                self.arity(name, &args, 1, 1, span)?;
                let a = self.numeric(args[0].clone())?;
                Ok(node(format!("abs({})", a.sql), a.kind))
            }
            "round" => {
                self.arity(name, &args, 1, 2, span)?;
                let x = self.numeric(args[0].clone())?;
                let digits = match args.get(1) {
                    Some(d) if d.kind.is_integer() => Some(d.sql.clone()),
                    Some(d) => {
                        return Err(self.err_node(d, "`round` digits must be an integer"));
                    }
                    None => None,
                };
                let (x_sql, kind) = match x.kind {
                    Kind::Float if digits.is_some() => {
                        return Err(self.err_span(
                            start,
                            end,
                            "`round` of a floating-point value to digits is not translatable",
                        ));
                    }
                    // PostgreSQL's round() of an integer would go through float.
                    Kind::Int | Kind::BigInt => (format!("{}::numeric", x.atom()), Kind::Decimal),
                    k => (x.sql.clone(), k),
                };
                let sql = match digits {
                    Some(d) => format!("round({x_sql}, {d})"),
                    None => format!("round({x_sql})"),
                };
                Ok(node(sql, kind))
            }
            "floor" | "ceil" | "ceiling" => {
                self.arity(name, &args, 1, 1, span)?;
                let x = self.numeric(args[0].clone())?;
                if x.kind.is_integer() {
                    return Ok(Node { start, end, ..x });
                }
                let f = if name == "floor" { "floor" } else { "ceil" };
                Ok(node(format!("{f}({})", x.sql), x.kind))
            }
            "coalesce" | "ifnull" => {
                if name == "ifnull" {
                    self.arity(name, &args, 2, 2, span)?;
                } else {
                    self.arity(name, &args, 1, usize::MAX, span)?;
                }
                let mut args = args;
                let kind = self.unify(&mut args)?;
                let list: Vec<String> = args.into_iter().map(|a| a.sql).collect();
                Ok(node(format!("coalesce({})", list.join(", ")), kind))
            }
            "nullif" => {
                self.arity(name, &args, 2, 2, span)?;
                let mut a = args[0].clone();
                let mut b = args[1].clone();
                self.comparable(&mut a, &mut b)?;
                Ok(node(format!("NULLIF({}, {})", a.sql, b.sql), a.kind))
            }
            "char_length" | "character_length" => {
                self.arity(name, &args, 1, 1, span)?;
                let s = self.text(&args[0], name)?;
                Ok(node(format!("char_length({s})"), Kind::Int))
            }
            "length" | "octet_length" => {
                // MySQL's LENGTH counts bytes.
                self.arity(name, &args, 1, 1, span)?;
                let s = if args[0].kind == Kind::Bytes {
                    args[0].sql.clone()
                } else {
                    self.text(&args[0], name)?
                };
                Ok(node(format!("octet_length({s})"), Kind::Int))
            }
            "substring" | "substr" | "mid" => {
                self.arity(name, &args, 2, 3, span)?;
                let (s, kind) = if args[0].kind == Kind::Bytes {
                    (args[0].sql.clone(), Kind::Bytes)
                } else {
                    (self.text(&args[0], name)?, Kind::Text)
                };
                let pos = match args[1].int {
                    Some(p) if p >= 1 => p.to_string(),
                    _ => {
                        return Err(self.err_node(
                            &args[1],
                            "substring positions other than a positive integer literal are not translatable",
                        ));
                    }
                };
                let sql = match args.get(2) {
                    None => format!("substr({s}, {pos})"),
                    Some(len) => format!("substr({s}, {pos}, {})", self.non_negative(len)?),
                };
                Ok(node(sql, kind))
            }
            "left" | "right" => {
                self.arity(name, &args, 2, 2, span)?;
                let s = self.text(&args[0], name)?;
                Ok(node(
                    format!("{name}({s}, {})", self.non_negative(&args[1])?),
                    Kind::Text,
                ))
            }
            "ltrim" | "rtrim" => {
                self.arity(name, &args, 1, 1, span)?;
                Ok(node(format!("{name}({})", self.text(&args[0], name)?), Kind::Text))
            }
            "if" => {
                self.arity(name, &args, 3, 3, span)?;
                let cond = self.boolean(&args[0])?;
                let mut branches = vec![args[1].clone(), args[2].clone()];
                let kind = self.unify(&mut branches)?;
                Ok(node(
                    format!(
                        "CASE WHEN {cond} THEN {} ELSE {} END",
                        branches[0].sql, branches[1].sql
                    ),
                    kind,
                )
                .not_atomic())
            }
            "mod" => {
                self.arity(name, &args, 2, 2, span)?;
                let mut it = args.into_iter();
                let (a, b) = (it.next(), it.next());
                match (a, b) {
                    (Some(a), Some(b)) => self.arith(a, "%", b),
                    _ => Err(self.err_span(start, end, "wrong number of arguments to `mod`")),
                }
            }
            "now" | "current_timestamp" | "localtimestamp" | "localtime" | "curdate"
            | "current_date" | "curtime" | "current_time" | "uuid"
                if self.env.context == ExprContext::Default =>
            {
                self.default_function(name, &args, span)
            }
            "now" | "current_timestamp" | "localtimestamp" | "localtime" | "curdate"
            | "current_date" | "curtime" | "current_time" | "uuid" | "rand" | "sysdate"
            | "unix_timestamp" | "utc_timestamp" | "connection_id" | "user" | "database"
                if self.env.context == ExprContext::Generated =>
            {
                Err(self.err_span(
                    start,
                    end,
                    format!("function `{name}` is not immutable, so PostgreSQL cannot compute it in a generated column"),
                ))
            }
            _ => Err(self.err_span(
                start,
                end,
                format!("function `{name}` has no translation"),
            )),
        }
    }

    /// The current time, date or a random UUID, in a `DEFAULT`.
    fn default_function(&self, name: &str, args: &[Node], span: (usize, usize)) -> Res<Node> {
        let (start, end) = span;
        let precision = match args {
            [] => None,
            [p] if takes_precision(name) => match p.int {
                Some(0) => None,
                Some(v) if (1..=6).contains(&v) => Some(v),
                _ => return Err(self.err_node(p, "fractional digits must be 0 to 6")),
            },
            _ => {
                return Err(self.err_span(
                    start,
                    end,
                    format!("wrong number of arguments to `{name}`"),
                ))
            }
        };
        let with_p = |kw: &str| match precision {
            Some(p) => format!("{kw}({p})"),
            None => kw.to_string(),
        };
        let sql = match name {
            "uuid" => {
                return Ok(Node::new(
                    "gen_random_uuid()::text".into(),
                    Kind::Text,
                    start,
                    end,
                ))
            }
            "curdate" | "current_date" => "CURRENT_DATE".to_string(),
            "curtime" | "current_time" => with_p("LOCALTIME"),
            _ => match self.env.target {
                PgType::TimestampTz(_) => with_p("CURRENT_TIMESTAMP"),
                PgType::Timestamp(_) => with_p("LOCALTIMESTAMP"),
                PgType::Date => "CURRENT_DATE".to_string(),
                PgType::Time(_) => with_p("LOCALTIME"),
                other => {
                    return Err(self.err_span(
                        start,
                        end,
                        format!("the current time as a default of a `{other}` column is not translatable"),
                    ));
                }
            },
        };
        Ok(Node::new(sql, Kind::Temporal, start, end))
    }

    /// An integer argument where MySQL treats negatives as 0.
    fn non_negative(&self, n: &Node) -> Res<String> {
        match (n.int, n.kind) {
            (Some(v), _) => Ok(v.max(0).to_string()),
            (None, k) if k.is_integer() => Ok(format!("GREATEST({}, 0)", n.sql)),
            _ => Err(self.err_node(n, "a length must be an integer")),
        }
    }

    fn column(&self, name: &str, start: usize, end: usize) -> Res<Node> {
        if self.env.context == ExprContext::Default {
            return Err(self.err_span(
                start,
                end,
                "a default cannot reference a column in PostgreSQL",
            ));
        }
        let Some(col) = self
            .env
            .columns
            .iter()
            .find(|c| c.source.name.eq_ignore_ascii_case(name))
        else {
            return Err(self.err_span(start, end, format!("unknown column `{name}`")));
        };
        let kind = kind_of(col.pg);
        if let Some(generated) = &col.source.generated {
            // PostgreSQL does not let a generation expression read another generated
            // column: inline its expression, converted to its type as MySQL stores it.
            if self.depth >= MAX_INLINE_DEPTH {
                return Err(self.err_span(start, end, "generated columns nest too deeply"));
            }
            let env = ExprEnv {
                target: col.pg,
                ..*self.env
            };
            let inner = translate_at(&generated.expression, &env, self.depth + 1)?;
            let sql = format!("{}::{}", crate::ident::parenthesize(&inner), col.pg);
            return Ok(Node::new(sql, kind, start, end));
        }
        let quoted = quote_ident(col.target);
        // MySQL reads CHAR values without their trailing pad; so does a cast to text.
        let sql = if matches!(col.pg, PgType::Char(_)) {
            format!("{quoted}::text")
        } else {
            quoted
        };
        Ok(Node::new(sql, kind, start, end))
    }
}

/// Whether a current-time function takes fractional digits.
fn takes_precision(name: &str) -> bool {
    !matches!(name, "uuid" | "curdate" | "current_date")
}

fn number(text: String, start: usize, end: usize) -> Node {
    let kind = if text.contains(['e', 'E']) {
        Kind::Float
    } else if text.contains('.') {
        Kind::Decimal
    } else {
        match text.parse::<i64>() {
            Ok(v) if i32::try_from(v).is_ok() => Kind::Int,
            Ok(_) => Kind::BigInt,
            Err(_) => Kind::Decimal,
        }
    };
    let int = if kind.is_integer() {
        text.parse::<i128>().ok()
    } else {
        None
    };
    let sql = if text.starts_with('.') {
        format!("0{text}")
    } else {
        text
    };
    let mut n = Node::new(sql, kind, start, end);
    n.int = int;
    n.literal = true;
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use dts_core::Generated;

    fn col(name: &str, generated: Option<&str>) -> Column {
        Column {
            ordinal: 1,
            generated: generated.map(|e| Generated {
                expression: e.into(),
                stored: false,
            }),
            ..Column::new(name, "int")
        }
    }

    struct Fixture {
        cols: Vec<(Column, String, PgType)>,
    }

    impl Fixture {
        fn new() -> Self {
            let c = |n: &str, t: &str, pg: PgType| (col(n, None), t.to_string(), pg);
            Self {
                cols: vec![
                    c("first", "first", PgType::VarChar(50)),
                    c("Last", "last", PgType::Text),
                    c(
                        "price",
                        "price",
                        PgType::Numeric {
                            precision: 10,
                            scale: 2,
                        },
                    ),
                    c("qty", "qty", PgType::Integer),
                    c("big", "big", PgType::BigInt),
                    c("ratio", "ratio", PgType::Double),
                    c("code", "code", PgType::Char(4)),
                    c("born", "born", PgType::Date),
                    c("flag", "flag", PgType::Boolean),
                    (
                        col("total", Some("`price` * `qty`")),
                        "total".into(),
                        PgType::Numeric {
                            precision: 12,
                            scale: 2,
                        },
                    ),
                ],
            }
        }

        fn run(
            &self,
            expr: &str,
            target: PgType,
            context: ExprContext,
        ) -> Result<String, ExprError> {
            let columns: Vec<ExprColumn<'_>> = self
                .cols
                .iter()
                .map(|(c, t, pg)| ExprColumn {
                    source: c,
                    target: t,
                    pg,
                })
                .collect();
            let env = ExprEnv {
                context,
                columns: &columns,
                target: &target,
            };
            translate(expr, &env)
        }

        fn gen(&self, expr: &str) -> String {
            self.run(expr, PgType::Text, ExprContext::Generated)
                .unwrap_or_else(|e| panic!("{expr}: {e}"))
        }

        fn gen_err(&self, expr: &str) -> ExprError {
            self.run(expr, PgType::Text, ExprContext::Generated)
                .expect_err(expr)
        }
    }

    #[test]
    fn mariadb_generation_expressions() {
        let f = Fixture::new();
        assert_eq!(
            f.gen("concat(`first`,' ',`Last`)"),
            r#"("first" || ' ' || "last")"#
        );
        assert_eq!(f.gen("`price` * `qty`"), r#"("price" * "qty")"#);
        assert_eq!(
            f.gen("`qty` * 2 + if(`qty` > 1,1,0)"),
            r#"(("qty"::bigint * 2) + CASE WHEN ("qty" > 1) THEN 1 ELSE 0 END)"#
        );
        assert_eq!(f.gen("concat(`first`,'it\\'s')"), r#"("first" || 'it''s')"#);
        assert_eq!(f.gen("substr(`first`,1,3)"), r#"substr("first", 1, 3)"#);
        assert_eq!(
            f.gen("substring(`first` from 2 for 3)"),
            r#"substr("first", 2, 3)"#
        );
        assert_eq!(f.gen("`qty` / 3"), r#"("qty"::numeric / NULLIF(3, 0))"#);
        assert_eq!(f.gen("`ratio` / 3"), r#"("ratio" / NULLIF(3, 0))"#);
        assert_eq!(
            f.gen("coalesce(`qty`,0) + ifnull(`big`,1)"),
            r#"(coalesce("qty", 0) + coalesce("big", 1))"#
        );
        assert_eq!(
            f.gen("case when `qty` is null then 'n' when `qty` between 1 and 5 then 'small' else `first` end"),
            r#"CASE WHEN ("qty" IS NULL) THEN 'n' WHEN ("qty" BETWEEN 1 AND 5) THEN 'small' ELSE "first" END"#
        );
        assert_eq!(f.gen("trim(`first`)"), r#"btrim("first")"#);
        assert_eq!(
            f.gen("trim(both 'x' from `first`)"),
            r#"btrim("first", 'x')"#
        );
        assert_eq!(f.gen("trim(leading from `first`)"), r#"ltrim("first")"#);
        assert_eq!(
            f.gen("`qty` in (1,2,3) and !(`qty` <=> 2) or `qty` is not null"),
            r#"((("qty" IN (1, 2, 3)) AND (NOT ("qty" IS NOT DISTINCT FROM 2))) OR ("qty" IS NOT NULL))"#
        );
        assert_eq!(
            f.gen("-`qty` MOD 3 + `qty` DIV 2"),
            r#"(((-"qty") % NULLIF(3, 0)) + ("qty" / NULLIF(2, 0)))"#
        );
        assert_eq!(
            f.gen("concat('dq',left(`first`,2),right(`first`,1),ucase(`first`),lcase(`first`))"),
            r#"('dq' || left("first", 2) || right("first", 1) || upper("first") || lower("first"))"#
        );
        assert_eq!(
            f.gen("char_length(`first`) + octet_length(`first`) + round(`price`,0) + floor(`price`) + ceiling(`ratio`) + abs(`qty`) + round(`qty`)"),
            r#"((((((char_length("first")::bigint + octet_length("first")) + round("price", 0)) + floor("price")) + ceil("ratio")) + abs("qty")) + round("qty"::numeric))"#
        );
        assert_eq!(
            f.gen("case `qty` when 1 then 10 else 20 end"),
            r#"CASE "qty" WHEN 1 THEN 10 ELSE 20 END"#
        );
        assert_eq!(f.gen("concat(_utf8mb4'x', `first`)"), r#"('x' || "first")"#);
        assert_eq!(
            f.gen("concat(_utf8mb4\\'a b\\',`first`)"),
            r#"('a b' || "first")"#
        );
        assert_eq!(
            f.gen("concat(`qty`, `price`)"),
            r#"("qty"::text || "price"::text)"#
        );
        assert_eq!(f.gen("concat(`code`, '-')"), r#"("code"::text || '-')"#);
        assert_eq!(
            f.gen("`qty` = 1 and `qty` <> 2 or `qty` = 0"),
            r#"((("qty" = 1) AND ("qty" <> 2)) OR ("qty" = 0))"#
        );
        assert_eq!(
            f.gen("left(`first`, `qty`)"),
            r#"left("first", GREATEST("qty", 0))"#
        );
        assert_eq!(f.gen("`big` + -1"), r#"("big" + -1)"#);
        assert_eq!(f.gen("\"dq\""), "'dq'");
    }

    #[test]
    fn inlines_generated_columns_and_coerces_to_target() {
        let f = Fixture::new();
        assert_eq!(
            f.gen("`total` + 1"),
            r#"(("price" * "qty")::numeric(12,2) + 1)"#
        );
        // A condition stored in an integer column, a number stored in a boolean column.
        assert_eq!(
            f.run("`qty` > 1", PgType::SmallInt, ExprContext::Generated)
                .unwrap(),
            r#"("qty" > 1)::integer"#
        );
        assert_eq!(
            f.run("`qty` + 1", PgType::Boolean, ExprContext::Generated)
                .unwrap(),
            r#"(("qty"::bigint + 1) <> 0)"#
        );
        assert_eq!(
            f.gen("if(`qty`, 'y', 'n')"),
            r#"CASE WHEN ("qty" <> 0) THEN 'y' ELSE 'n' END"#
        );
        assert_eq!(f.gen("`flag` + 1"), r#"("flag"::integer::bigint + 1)"#);
    }

    #[test]
    fn untranslatable_parts_are_named() {
        let f = Fixture::new();
        let e = f.gen_err("sha2(`first`,256)");
        assert_eq!(e.part, "sha2(`first`,256)");
        assert!(e.reason.contains("`sha2`"), "{e}");
        let e = f.gen_err("concat(`first`, md5(`Last`))");
        assert_eq!(e.part, "md5(`Last`)");
        let e = f.gen_err("`first` like 'a%'");
        assert!(e.reason.contains("like"), "{e}");
        let e = f.gen_err("`nope` + 1");
        assert_eq!(e.reason, "unknown column `nope`");
        let e = f.gen_err("now()");
        assert!(e.reason.contains("not immutable"), "{e}");
        let e = f.gen_err("concat(`born`, 'x')");
        assert_eq!(e.part, "`born`");
        let e = f.gen_err("`first` + 1");
        assert!(e.reason.contains("arithmetic on a string"), "{e}");
        let e = f.gen_err("`first` = 1");
        assert!(e.reason.contains("comparing"), "{e}");
        let e = f.gen_err("concat('a\\0b')");
        assert!(e.reason.contains("NUL"), "{e}");
        let e = f.gen_err("`ratio` % 2");
        assert!(e.reason.contains("modulo"), "{e}");
        let e = f.gen_err("0x41");
        assert!(e.reason.contains("hexadecimal"), "{e}");
        let e = f.gen_err("`qty` ||  1");
        assert!(e.reason.contains("sql_mode"), "{e}");
        let e = f.gen_err("substr(`first`, -2)");
        assert!(e.reason.contains("positive"), "{e}");
        let e = f.gen_err("trim(both 'ab' from `first`)");
        assert!(e.reason.contains("one character"), "{e}");
        let e = f.gen_err("(`qty` + 1");
        assert!(e.reason.contains("expected"), "{e}");
        let e = f.gen_err("`qty` + 1 )");
        assert_eq!(e.reason, "unexpected text");
        let e = f.gen_err("`unterminated");
        assert_eq!(e.reason, "unterminated quote");
    }

    #[test]
    fn printed_literals_keep_their_place() {
        let toks = tokenize(r"concat(_utf8mb4\'a\\b\',`x`) + \'it''s\'").unwrap();
        let spelled: Vec<(&Tok, usize, usize)> =
            toks.iter().map(|t| (&t.tok, t.start, t.end)).collect();
        assert_eq!(
            spelled,
            [
                (&Tok::Word("concat".into()), 0, 6),
                (&Tok::LParen, 6, 7),
                (&Tok::Str(r"a\b".into()), 15, 23),
                (&Tok::Comma, 23, 24),
                (&Tok::Ident("x".into()), 24, 27),
                (&Tok::RParen, 27, 28),
                (&Tok::Op("+"), 29, 30),
                (&Tok::Str("it's".into()), 31, 40),
            ]
        );
        let e = tokenize(r"concat(\'open").unwrap_err();
        assert_eq!(e.reason, "unterminated quote");
        assert_eq!(e.part, r"\'open");
        let e = tokenize("1 + @x").unwrap_err();
        assert_eq!(e.reason, "unexpected character");
        let e = tokenize("0b101").unwrap_err();
        assert!(e.reason.contains("bit literals"), "{e}");
        let e = tokenize("1 ? 2").unwrap_err();
        assert_eq!(
            (e.part.as_str(), e.reason.as_str()),
            ("?", "unexpected character")
        );
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let f = Fixture::new();
        let samples = [
            "concat(`first`,_utf8mb4\\' é \\',`Last`) + case when `qty` between 1 and 2 then 'x''y' else \"z\" end",
            "trim(both 'x' from substring(`first` from 2 for 3)) in ('a', 'b') and not `flag` is true",
            "-(`qty` div 2) mod 3 <=> round(`price`, 1) || x'41' `é` 0x1f b'01' 1e+ .5 'unterminated",
        ];
        for s in samples {
            for (i, _) in s.char_indices() {
                for (j, _) in s.char_indices().filter(|(j, _)| *j >= i) {
                    let _ = f.run(&s[i..j], PgType::Text, ExprContext::Generated);
                    let _ = f.run(&s[i..j], PgType::Integer, ExprContext::Default);
                }
            }
        }
        let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(f.gen_err(&deep).reason.contains("too deeply"));
        let unary = format!("{}1", "- ".repeat(10_000));
        assert!(f.gen_err(&unary).reason.contains("too deeply"));
        let nots = format!("{}1", "not ".repeat(10_000));
        assert!(f.gen_err(&nots).reason.contains("too deeply"));
        let calls = format!("{}1{}", "abs(".repeat(10_000), ")".repeat(10_000));
        assert!(f.gen_err(&calls).reason.contains("too deeply"));
    }

    #[test]
    fn defaults_allow_time_and_uuid_but_not_columns() {
        let f = Fixture::new();
        let d = |e: &str, t: PgType| f.run(e, t, ExprContext::Default);
        assert_eq!(d("(1 + 2)", PgType::Integer).unwrap(), "(1 + 2)");
        assert_eq!(
            d("current_timestamp()", PgType::Timestamp(0)).unwrap(),
            "LOCALTIMESTAMP"
        );
        assert_eq!(
            d("current_timestamp(6)", PgType::TimestampTz(6)).unwrap(),
            "CURRENT_TIMESTAMP(6)"
        );
        assert_eq!(d("now()", PgType::Date).unwrap(), "CURRENT_DATE");
        assert_eq!(d("curdate()", PgType::Date).unwrap(), "CURRENT_DATE");
        assert_eq!(
            d("uuid()", PgType::VarChar(40)).unwrap(),
            "gen_random_uuid()::text"
        );
        assert_eq!(d("concat('a','b')", PgType::Text).unwrap(), "('a' || 'b')");
        let e = d("`qty` + 1", PgType::Integer).unwrap_err();
        assert!(e.reason.contains("cannot reference a column"), "{e}");
        let e = d("now()", PgType::Text).unwrap_err();
        assert!(e.reason.contains("current time"), "{e}");
    }
}
