//! The one MySQL tokenizer of this crate: the tokens of a statement or an expression, with
//! their byte ranges in its text.
//!
//! Text is tokenized once with the MySQL dialect of the SQL parser (backquoted identifiers,
//! `''` and backslash escapes, `/*! … */` version comments expanded, other comments
//! dropped). Both the replication DDL parser (`change`) and the expression translator
//! (`expr`) read these tokens: the framing of each statement (which table, which clauses) is
//! read from the tokens here; column options, keys and expressions are read from token
//! slices, and the byte ranges give back the exact source text of an expression.

use std::borrow::Cow;

use dts_core::SqlMode;
use sqlparser::dialect::MySqlDialect;
use sqlparser::tokenizer::{Location, Span, Token, TokenWithSpan, Tokenizer};

/// One token.
#[derive(Debug, Clone)]
pub(crate) struct Tok {
    pub(crate) token: Token,
    pub(crate) span: Span,
    /// Byte range in the statement text.
    pub(crate) start: usize,
    pub(crate) end: usize,
}

impl Tok {
    /// An unquoted word equal to `kw` (case-insensitive).
    pub(crate) fn is_kw(&self, kw: &str) -> bool {
        matches!(&self.token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(kw))
    }

    /// The lowercase text of an unquoted word.
    pub(crate) fn keyword(&self) -> Option<String> {
        match &self.token {
            Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_lowercase()),
            _ => None,
        }
    }

    /// The name a word or quoted identifier stands for.
    pub(crate) fn ident(&self) -> Option<String> {
        match &self.token {
            Token::Word(w) => Some(w.value.clone()),
            // `"name"` under ANSI_QUOTES.
            Token::DoubleQuotedString(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// A string literal's value.
    pub(crate) fn string(&self) -> Option<String> {
        match &self.token {
            Token::SingleQuotedString(s)
            | Token::DoubleQuotedString(s)
            | Token::NationalStringLiteral(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// A name or a string (`CHARACTER SET 'utf8mb4'`, `ENGINE = InnoDB`).
    pub(crate) fn name_or_string(&self) -> Option<String> {
        self.ident().or_else(|| self.string())
    }

    /// An unsigned integer literal.
    pub(crate) fn number(&self) -> Option<u64> {
        match &self.token {
            Token::Number(n, _) => n.parse().ok(),
            _ => None,
        }
    }

    /// A keyword token standing in for a rewritten one, at this token's place.
    pub(crate) fn replaced_by(&self, keyword: &str) -> Tok {
        Tok {
            token: Token::make_keyword(keyword),
            ..self.clone()
        }
    }

    pub(crate) fn with_span(&self) -> TokenWithSpan {
        TokenWithSpan::new(self.token.clone(), self.span)
    }
}

/// Text the tokenizer refused (an unterminated quote, a stray delimiter).
#[derive(Debug, Clone)]
pub(crate) struct TokenizeError {
    /// The tokenizer's message, with the line and column.
    pub(crate) message: String,
    /// The byte offset the tokenizer stopped at.
    pub(crate) offset: usize,
}

/// Tokenizes a statement; whitespace and comments are dropped.
pub(crate) fn tokenize(sql: &str) -> Result<Vec<Tok>, TokenizeError> {
    let dialect = MySqlDialect {};
    let mut index = LineIndex::new(sql);
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| TokenizeError {
            message: e.to_string(),
            offset: index.offset(e.location),
        })?;
    let mut index = LineIndex::new(sql);
    let mut out = Vec::with_capacity(tokens.len());
    for t in tokens {
        if matches!(t.token, Token::Whitespace(_) | Token::EOF) {
            continue;
        }
        let start = index.offset(t.span.start);
        let end = index.offset(t.span.end).max(start);
        out.push(Tok {
            token: mysql_escapes(t.token, &sql[start..end]),
            span: t.span,
            start,
            end,
        });
    }
    Ok(out)
}

/// The text of a statement `sql` that ran under the SQL mode `mode`, rewritten to read the
/// same under the default mode this crate's tokenizer follows: under `ANSI_QUOTES` a
/// `"name"` becomes `` `name` ``, under `NO_BACKSLASH_ESCAPES` every backslash in a string
/// literal is doubled. Comments and backquoted names are kept as they are; text needing no
/// rewrite is returned unchanged.
pub fn sql_in_default_mode(sql: &str, mode: SqlMode) -> Cow<'_, str> {
    let (ansi, literal_backslash) = (mode.ansi_quotes(), mode.no_backslash_escapes());
    if !(ansi && sql.contains('"') || literal_backslash && sql.contains('\\')) {
        return Cow::Borrowed(sql);
    }
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 8);
    // Text up to `copied` is in `out`.
    let (mut i, mut copied) = (0, 0);
    // The end of a run of text quoted by `q` starting after `from`: the index of the
    // closing quote (or the text's end), with doubled quotes and (if `escapes`) backslash
    // escapes kept inside.
    let closing = |from: usize, q: u8, escapes: bool| -> usize {
        let mut j = from;
        while j < b.len() {
            match b[j] {
                b'\\' if escapes => j += 2,
                c if c == q && b.get(j + 1) == Some(&q) => j += 2,
                c if c == q => return j,
                _ => j += 1,
            }
        }
        b.len()
    };
    while i < b.len() {
        match b[i] {
            b'`' => i = closing(i + 1, b'`', false) + 1,
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let executable = b.get(i + 2) == Some(&b'!')
                    || (b.get(i + 2) == Some(&b'M') && b.get(i + 3) == Some(&b'!'));
                i = if executable {
                    // `/*! … */` holds SQL: read on inside it.
                    i + 3
                } else {
                    sql[i + 2..]
                        .find("*/")
                        .map_or(b.len(), |end| i + 2 + end + 2)
                };
            }
            b'#' => i = sql[i..].find('\n').map_or(b.len(), |end| i + end + 1),
            b'-' if b.get(i + 1) == Some(&b'-')
                && b.get(i + 2).is_none_or(|c| c.is_ascii_whitespace()) =>
            {
                i = sql[i..].find('\n').map_or(b.len(), |end| i + end + 1);
            }
            b'"' if ansi => {
                let end = closing(i + 1, b'"', false);
                out.push_str(&sql[copied..i]);
                out.push('`');
                out.push_str(&sql[i + 1..end].replace("\"\"", "\"").replace('`', "``"));
                out.push('`');
                i = (end + 1).min(b.len());
                copied = i;
            }
            q @ (b'\'' | b'"') => {
                let end = closing(i + 1, q, !literal_backslash);
                if literal_backslash {
                    out.push_str(&sql[copied..i + 1]);
                    out.push_str(&sql[i + 1..end].replace('\\', "\\\\"));
                    copied = end;
                }
                i = (end + 1).min(b.len());
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied..]);
    Cow::Owned(out)
}

/// Re-reads a string literal whose text `raw` has a backslash with MySQL's escapes.
///
/// The SQL parser's tokenizer turns `\a` and `\f` into BEL and form feed; MySQL knows no
/// such escapes and keeps the letter, as for every other unknown escape. This is the only
/// place where the tokens differ from the parser's own.
fn mysql_escapes(token: Token, raw: &str) -> Token {
    if !raw.contains('\\') {
        return token;
    }
    let body = |quote: char| {
        let raw = raw.trim_start_matches(['N', 'n']);
        raw.strip_prefix(quote)
            .and_then(|r| r.strip_suffix(quote))
            .map(|body| unescape(body, quote))
    };
    match token {
        Token::SingleQuotedString(s) => Token::SingleQuotedString(body('\'').unwrap_or(s)),
        Token::DoubleQuotedString(s) => Token::DoubleQuotedString(body('"').unwrap_or(s)),
        Token::NationalStringLiteral(s) => Token::NationalStringLiteral(body('\'').unwrap_or(s)),
        other => other,
    }
}

/// The value of the body of a MySQL string literal quoted with `quote`: a doubled quote
/// stands for one, and backslash escapes are read as MySQL reads them.
pub(crate) fn unescape(body: &str, quote: char) -> String {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c == quote && chars.peek() == Some(&quote) {
            chars.next();
            out.push(c);
        } else if c == '\\' {
            let Some(e) = chars.next() else {
                out.push(c);
                break;
            };
            match e {
                '0' => out.push('\0'),
                'b' => out.push('\u{8}'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'Z' => out.push('\u{1a}'),
                // MySQL keeps the backslash before `%` and `_` (they matter in LIKE).
                '%' | '_' => {
                    out.push('\\');
                    out.push(e);
                }
                other => out.push(other),
            }
        } else {
            out.push(c);
        }
    }
    out
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
pub(crate) fn text<'s>(sql: &'s str, toks: &[Tok]) -> &'s str {
    match (toks.first(), toks.last()) {
        (Some(a), Some(b)) if a.start <= b.end && b.end <= sql.len() => &sql[a.start..b.end],
        _ => "",
    }
}

/// The index of the `)` that closes the `(` at `open`, if balanced.
pub(crate) fn closing(toks: &[Tok], open: usize) -> Option<usize> {
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
pub(crate) fn split_commas(toks: &[Tok]) -> Vec<&[Tok]> {
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
pub(crate) struct Cursor<'t> {
    toks: &'t [Tok],
    pos: usize,
}

impl<'t> Cursor<'t> {
    pub(crate) fn new(toks: &'t [Tok]) -> Self {
        Self { toks, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn set_pos(&mut self, pos: usize) {
        self.pos = pos.min(self.toks.len());
    }

    pub(crate) fn rest(&self) -> &'t [Tok] {
        &self.toks[self.pos..]
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.toks.len()
    }

    pub(crate) fn peek(&self) -> Option<&'t Tok> {
        self.toks.get(self.pos)
    }

    pub(crate) fn peek_at(&self, ahead: usize) -> Option<&'t Tok> {
        self.toks.get(self.pos + ahead)
    }

    pub(crate) fn next(&mut self) -> Option<&'t Tok> {
        let t = self.toks.get(self.pos);
        if t.is_some() {
            self.pos += 1;
        }
        t
    }

    pub(crate) fn at_kw(&self, kw: &str) -> bool {
        self.peek().is_some_and(|t| t.is_kw(kw))
    }

    /// Whether the next tokens are exactly the keywords `kws`.
    pub(crate) fn at_kws(&self, kws: &[&str]) -> bool {
        kws.iter()
            .enumerate()
            .all(|(i, kw)| self.peek_at(i).is_some_and(|t| t.is_kw(kw)))
    }

    pub(crate) fn eat_kw(&mut self, kw: &str) -> bool {
        if self.at_kw(kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Eats the keywords `kws` if they all come next.
    pub(crate) fn eat_kws(&mut self, kws: &[&str]) -> bool {
        if self.at_kws(kws) {
            self.pos += kws.len();
            true
        } else {
            false
        }
    }

    pub(crate) fn eat(&mut self, token: &Token) -> bool {
        if self.peek().is_some_and(|t| &t.token == token) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// An identifier (a word, quoted or not).
    pub(crate) fn ident(&mut self) -> Option<String> {
        let name = self.peek()?.ident()?;
        self.pos += 1;
        Some(name)
    }

    /// A possibly qualified name: `name` or `schema.name`.
    pub(crate) fn object_name(&mut self) -> Option<(Option<String>, String)> {
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
    pub(crate) fn eat_eq(&mut self) {
        self.eat(&Token::Eq);
    }

    /// If the next token opens a parenthesis, returns the tokens inside and moves past the
    /// closing one.
    pub(crate) fn group(&mut self) -> Option<&'t [Tok]> {
        if self.peek()?.token != Token::LParen {
            return None;
        }
        let close = closing(self.toks, self.pos)?;
        let inner = &self.toks[self.pos + 1..close];
        self.pos = close + 1;
        Some(inner)
    }

    /// Skips one value: a token, or a parenthesised group.
    pub(crate) fn skip_value(&mut self) {
        if self.group().is_none() {
            self.next();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_quotes_make_double_quoted_text_a_name() {
        let ansi = SqlMode::ANSI_QUOTES;
        assert_eq!(
            sql_in_default_mode(r#"ALTER TABLE "t" ADD "a""b`c" INT DEFAULT 'x"y'"#, ansi),
            r#"ALTER TABLE `t` ADD `a"b``c` INT DEFAULT 'x"y'"#
        );
        // Backquoted names and comments are left alone; `/*! … */` holds SQL.
        assert_eq!(
            sql_in_default_mode(
                r#"/* "c" */ CREATE /*!50001 TABLE "t" */ (`"x"` INT) -- "d""#,
                ansi
            ),
            r#"/* "c" */ CREATE /*!50001 TABLE `t` */ (`"x"` INT) -- "d""#
        );
        // Without the mode, double quotes stay strings.
        assert_eq!(
            sql_in_default_mode(r#"COMMENT "x""#, SqlMode::default()),
            r#"COMMENT "x""#
        );
    }

    #[test]
    fn no_backslash_escapes_make_backslashes_literal() {
        let nbe = SqlMode::NO_BACKSLASH_ESCAPES;
        assert_eq!(
            sql_in_default_mode(
                r"ALTER TABLE t ADD c TEXT DEFAULT 'C:\' COMMENT 'it''s \n'",
                nbe
            ),
            r"ALTER TABLE t ADD c TEXT DEFAULT 'C:\\' COMMENT 'it''s \\n'"
        );
        // Double-quoted strings too, unless ANSI_QUOTES makes them names.
        assert_eq!(
            sql_in_default_mode(r#"DEFAULT "a\""#, nbe),
            r#"DEFAULT "a\\""#
        );
        assert_eq!(
            sql_in_default_mode(
                r#"ALTER TABLE "a\b" COMMENT 'c\'"#,
                nbe | SqlMode::ANSI_QUOTES
            ),
            r#"ALTER TABLE `a\b` COMMENT 'c\\'"#
        );
        // With escapes on, `\'` does not end the string.
        assert_eq!(
            sql_in_default_mode(r#"COMMENT 'a\'"b' "c""#, SqlMode::ANSI_QUOTES),
            r#"COMMENT 'a\'"b' `c`"#
        );
    }

    #[test]
    fn rewritten_text_tokenizes_as_the_mode_reads_it() {
        let sql = r"ALTER TABLE t ADD c TEXT DEFAULT 'C:\' COMMENT 'n'";
        // Read with escapes, the first string runs on to the next quote and the text ends
        // inside a string.
        assert!(tokenize(sql).is_err());
        let toks = tokenize(&sql_in_default_mode(sql, SqlMode::NO_BACKSLASH_ESCAPES)).unwrap();
        assert_eq!(toks[7].string().as_deref(), Some(r"C:\"));
        assert_eq!(toks[9].string().as_deref(), Some("n"));
    }

    fn strings(sql: &str) -> Vec<String> {
        tokenize(sql)
            .unwrap()
            .iter()
            .filter_map(Tok::string)
            .collect()
    }

    #[test]
    fn strings_use_mysql_escapes() {
        assert_eq!(
            strings(r"'a\ab\fc' N'it''s' 'x\'y' 'p\%q\_r' '\0\n'"),
            ["aabfc", "it's", "x'y", r"p\%q\_r", "\0\n"]
        );
        assert_eq!(strings(r#""d\"q""""#), ["d\"q\""]);
    }

    #[test]
    fn byte_ranges_follow_multibyte_text_and_lines() {
        let sql = "SELECT 'é€',\n  `naïve` -- note\n, 1";
        let toks = tokenize(sql).unwrap();
        let spelled: Vec<&str> = toks.iter().map(|t| &sql[t.start..t.end]).collect();
        assert_eq!(spelled, ["SELECT", "'é€'", ",", "`naïve`", ",", "1"]);
        assert_eq!(text(sql, &toks[1..4]), "'é€',\n  `naïve`");
    }

    #[test]
    fn errors_carry_the_offset() {
        let e = tokenize("a + 'open").unwrap_err();
        assert_eq!(e.offset, 4);
        assert!(e.message.starts_with("Unterminated"), "{}", e.message);
    }
}
