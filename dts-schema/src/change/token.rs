//! The tokens of one statement, with their byte ranges in the statement text.
//!
//! Statements are tokenized once with the MySQL dialect of the SQL parser (backquoted
//! identifiers, `''` and backslash escapes, `/*! … */` version comments expanded, other
//! comments dropped). The framing of each statement (which table, which clauses) is read
//! from the tokens here; the parser proper reads column options, keys and expressions from
//! token slices, and the byte ranges give back the exact source text of an expression.

use sqlparser::dialect::MySqlDialect;
use sqlparser::tokenizer::{Location, Span, Token, TokenWithSpan, Tokenizer};

/// One token.
#[derive(Debug, Clone)]
pub(super) struct Tok {
    pub(super) token: Token,
    pub(super) span: Span,
    /// Byte range in the statement text.
    pub(super) start: usize,
    pub(super) end: usize,
}

impl Tok {
    /// An unquoted word equal to `kw` (case-insensitive).
    pub(super) fn is_kw(&self, kw: &str) -> bool {
        matches!(&self.token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(kw))
    }

    /// The lowercase text of an unquoted word.
    pub(super) fn keyword(&self) -> Option<String> {
        match &self.token {
            Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_lowercase()),
            _ => None,
        }
    }

    /// The name a word or quoted identifier stands for.
    pub(super) fn ident(&self) -> Option<String> {
        match &self.token {
            Token::Word(w) => Some(w.value.clone()),
            // `"name"` under ANSI_QUOTES.
            Token::DoubleQuotedString(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// A string literal's value.
    pub(super) fn string(&self) -> Option<String> {
        match &self.token {
            Token::SingleQuotedString(s)
            | Token::DoubleQuotedString(s)
            | Token::NationalStringLiteral(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// A name or a string (`CHARACTER SET 'utf8mb4'`, `ENGINE = InnoDB`).
    pub(super) fn name_or_string(&self) -> Option<String> {
        self.ident().or_else(|| self.string())
    }

    /// An unsigned integer literal.
    pub(super) fn number(&self) -> Option<u64> {
        match &self.token {
            Token::Number(n, _) => n.parse().ok(),
            _ => None,
        }
    }

    /// A keyword token standing in for a rewritten one, at this token's place.
    pub(super) fn replaced_by(&self, keyword: &str) -> Tok {
        Tok {
            token: Token::make_keyword(keyword),
            ..self.clone()
        }
    }

    pub(super) fn with_span(&self) -> TokenWithSpan {
        TokenWithSpan::new(self.token.clone(), self.span)
    }
}

/// Tokenizes a statement; whitespace and comments are dropped.
pub(super) fn tokenize(sql: &str) -> Result<Vec<Tok>, String> {
    let dialect = MySqlDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| e.to_string())?;
    let mut index = LineIndex::new(sql);
    let mut out = Vec::with_capacity(tokens.len());
    for t in tokens {
        if matches!(t.token, Token::Whitespace(_) | Token::EOF) {
            continue;
        }
        let start = index.offset(t.span.start);
        let end = index.offset(t.span.end).max(start);
        out.push(Tok {
            token: t.token,
            span: t.span,
            start,
            end,
        });
    }
    Ok(out)
}

/// Line/column locations (1-based, columns counted in characters) to byte offsets.
struct LineIndex<'s> {
    sql: &'s str,
    line_starts: Vec<usize>,
    /// The last location resolved, to walk forward instead of from the line start.
    last: (u64, u64, usize),
}

impl<'s> LineIndex<'s> {
    fn new(sql: &'s str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(sql.match_indices('\n').map(|(i, _)| i + 1));
        Self {
            sql,
            line_starts,
            last: (1, 1, 0),
        }
    }

    fn offset(&mut self, loc: Location) -> usize {
        let Some(&line_start) = usize::try_from(loc.line)
            .ok()
            .and_then(|l| l.checked_sub(1))
            .and_then(|l| self.line_starts.get(l))
        else {
            return self.sql.len();
        };
        let (mut col, mut byte) = if self.last.0 == loc.line && self.last.1 <= loc.column {
            (self.last.1, self.last.2)
        } else {
            (1, line_start)
        };
        let rest = &self.sql[byte..];
        for ch in rest.chars() {
            if col >= loc.column || ch == '\n' {
                break;
            }
            col += 1;
            byte += ch.len_utf8();
        }
        self.last = (loc.line, col, byte);
        byte
    }
}

/// The source text a run of tokens covers.
pub(super) fn text<'s>(sql: &'s str, toks: &[Tok]) -> &'s str {
    match (toks.first(), toks.last()) {
        (Some(a), Some(b)) if a.start <= b.end && b.end <= sql.len() => &sql[a.start..b.end],
        _ => "",
    }
}

/// The index of the `)` that closes the `(` at `open`, if balanced.
pub(super) fn closing(toks: &[Tok], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, t) in toks.iter().enumerate().skip(open) {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Splits a run of tokens at the commas outside parentheses.
pub(super) fn split_commas(toks: &[Tok]) -> Vec<&[Tok]> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, t) in toks.iter().enumerate() {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            Token::Comma if depth == 0 => {
                out.push(&toks[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&toks[start..]);
    out
}

/// A reading position in a run of tokens.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cursor<'t> {
    toks: &'t [Tok],
    pos: usize,
}

impl<'t> Cursor<'t> {
    pub(super) fn new(toks: &'t [Tok]) -> Self {
        Self { toks, pos: 0 }
    }

    pub(super) fn pos(&self) -> usize {
        self.pos
    }

    pub(super) fn set_pos(&mut self, pos: usize) {
        self.pos = pos.min(self.toks.len());
    }

    pub(super) fn rest(&self) -> &'t [Tok] {
        &self.toks[self.pos..]
    }

    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.toks.len()
    }

    pub(super) fn peek(&self) -> Option<&'t Tok> {
        self.toks.get(self.pos)
    }

    pub(super) fn peek_at(&self, ahead: usize) -> Option<&'t Tok> {
        self.toks.get(self.pos + ahead)
    }

    pub(super) fn next(&mut self) -> Option<&'t Tok> {
        let t = self.toks.get(self.pos);
        if t.is_some() {
            self.pos += 1;
        }
        t
    }

    pub(super) fn at_kw(&self, kw: &str) -> bool {
        self.peek().is_some_and(|t| t.is_kw(kw))
    }

    /// Whether the next tokens are exactly the keywords `kws`.
    pub(super) fn at_kws(&self, kws: &[&str]) -> bool {
        kws.iter()
            .enumerate()
            .all(|(i, kw)| self.peek_at(i).is_some_and(|t| t.is_kw(kw)))
    }

    pub(super) fn eat_kw(&mut self, kw: &str) -> bool {
        if self.at_kw(kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Eats the keywords `kws` if they all come next.
    pub(super) fn eat_kws(&mut self, kws: &[&str]) -> bool {
        if self.at_kws(kws) {
            self.pos += kws.len();
            true
        } else {
            false
        }
    }

    pub(super) fn eat(&mut self, token: &Token) -> bool {
        if self.peek().is_some_and(|t| &t.token == token) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// An identifier (a word, quoted or not).
    pub(super) fn ident(&mut self) -> Option<String> {
        let name = self.peek()?.ident()?;
        self.pos += 1;
        Some(name)
    }

    /// A possibly qualified name: `name` or `schema.name`.
    pub(super) fn object_name(&mut self) -> Option<(Option<String>, String)> {
        let first = self.ident()?;
        if self.peek().is_some_and(|t| t.token == Token::Period) {
            self.pos += 1;
            let second = self.ident()?;
            Some((Some(first), second))
        } else {
            Some((None, first))
        }
    }

    /// Skips `= ` if present (table options accept both `ENGINE=x` and `ENGINE x`).
    pub(super) fn eat_eq(&mut self) {
        self.eat(&Token::Eq);
    }

    /// If the next token opens a parenthesis, returns the tokens inside and moves past the
    /// closing one.
    pub(super) fn group(&mut self) -> Option<&'t [Tok]> {
        if self.peek()?.token != Token::LParen {
            return None;
        }
        let close = closing(self.toks, self.pos)?;
        let inner = &self.toks[self.pos + 1..close];
        self.pos = close + 1;
        Some(inner)
    }

    /// Skips one value: a token, or a parenthesised group.
    pub(super) fn skip_value(&mut self) {
        if self.group().is_none() {
            self.next();
        }
    }
}
