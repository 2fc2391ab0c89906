//! PostgreSQL quoting: identifiers, qualified names and string literals.
//!
//! Every identifier and string literal dts writes into PostgreSQL SQL goes through this
//! module. Literals are valid whatever `standard_conforming_strings` is set to: a string
//! with a backslash is written in the `E'…'` form with its backslashes doubled, any other
//! string as a plain `'…'` literal (which both settings read the same way). A source comment
//! or default such as `x\'; DROP TABLE t; --` therefore stays one literal on every server.

/// Quotes an identifier for PostgreSQL: wrapped in double quotes, embedded `"` doubled.
///
/// ```
/// use dts_typemap::quote::quote_ident;
///
/// assert_eq!(quote_ident("order"), r#""order""#);
/// assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
/// ```
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A qualified, quoted name: `"schema"."name"`.
///
/// ```
/// assert_eq!(dts_typemap::quote::quote_qualified("s", "t"), r#""s"."t""#);
/// ```
pub fn quote_qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// Quotes `s` as a PostgreSQL string literal that means the same whatever
/// `standard_conforming_strings` is set to: `'…'` with embedded `'` doubled, and the `E'…'`
/// form with backslashes doubled as well when `s` has a backslash.
///
/// PostgreSQL text cannot hold U+0000; a string containing it gives a literal the server
/// refuses.
///
/// ```
/// use dts_typemap::quote::quote_literal;
///
/// assert_eq!(quote_literal("it's"), "'it''s'");
/// assert_eq!(quote_literal(r"x\'; DROP TABLE t; --"), r"E'x\\''; DROP TABLE t; --'");
/// ```
pub fn quote_literal(s: &str) -> String {
    let escape = s.contains('\\');
    let mut out = String::with_capacity(s.len() + 3);
    if escape {
        out.push('E');
    }
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A `bytea` constant: the hex form `\x…` of `bytes` as a [`quote_literal`], cast to
/// `bytea`.
///
/// ```
/// assert_eq!(dts_typemap::quote::quote_bytea(b"ab"), r"E'\\x6162'::bytea");
/// assert_eq!(dts_typemap::quote::quote_bytea(&[]), r"E'\\x'::bytea");
/// ```
pub fn quote_bytea(bytes: &[u8]) -> String {
    let mut hex = String::with_capacity(2 + bytes.len() * 2);
    hex.push_str("\\x");
    for b in bytes {
        hex.push(char::from(HEX_DIGITS[usize::from(b >> 4)]));
        hex.push(char::from(HEX_DIGITS[usize::from(b & 0x0f)]));
    }
    format!("{}::bytea", quote_literal(&hex))
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Like [`quote_literal`], but the result never contains the text `{col}` (the placeholder
/// of [`crate::ColumnMapping::check`]).
pub(crate) fn quote_literal_without_placeholder(s: &str) -> String {
    if s.contains("{col}") {
        return s
            .split("{col}")
            .map(quote_literal)
            .collect::<Vec<_>>()
            .join(" || '{' || 'col}' || ");
    }
    quote_literal(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads one PostgreSQL string literal at the start of `sql` as the server's lexer does
    /// with the given `standard_conforming_strings` setting; returns its value and the rest.
    fn lex_literal(sql: &str, standard_conforming: bool) -> Option<(String, &str)> {
        let (escape, body) = match sql.strip_prefix('E') {
            Some(rest) => (true, rest),
            None => (!standard_conforming, sql),
        };
        let body = body.strip_prefix('\'')?;
        let mut value = String::new();
        let mut chars = body.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' if escape => value.push(chars.next()?.1),
                '\'' => {
                    if chars.peek().map(|&(_, c)| c) == Some('\'') {
                        chars.next();
                        value.push('\'');
                    } else {
                        return Some((value, &body[i + 1..]));
                    }
                }
                c => value.push(c),
            }
        }
        None
    }

    #[test]
    fn identifiers_double_embedded_quotes() {
        assert_eq!(quote_ident("select"), "\"select\"");
        assert_eq!(quote_ident("CamelCase"), "\"CamelCase\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(quote_qualified("a\"", "b"), "\"a\"\"\".\"b\"");
    }

    #[test]
    fn literals_double_quotes_and_escape_backslashes() {
        assert_eq!(quote_literal("a'b''c"), "'a''b''''c'");
        assert_eq!(quote_literal(""), "''");
        assert_eq!(quote_literal(r"back\slash"), r"E'back\\slash'");
        assert_eq!(quote_literal(r"a\b'"), r"E'a\\b'''");
    }

    #[test]
    fn hostile_text_is_one_literal_under_both_settings() {
        for hostile in [
            r"x\'; DROP TABLE t; --",
            r"\",
            r"'\'",
            "it's",
            r"\\'' OR 1=1 --",
            "plain",
        ] {
            let quoted = quote_literal(hostile);
            for standard_conforming in [true, false] {
                let (value, rest) = lex_literal(&quoted, standard_conforming)
                    .unwrap_or_else(|| panic!("{quoted} does not lex"));
                assert_eq!(value, hostile, "{quoted}, scs = {standard_conforming}");
                assert_eq!(rest, "", "{quoted}, scs = {standard_conforming}");
            }
        }
    }

    #[test]
    fn placeholder_never_survives() {
        assert_eq!(quote_literal_without_placeholder("b'c"), "'b''c'");
        assert_eq!(
            quote_literal_without_placeholder("x{col}y"),
            "'x' || '{' || 'col}' || 'y'"
        );
        assert!(!quote_literal_without_placeholder("{col}{col}").contains("{col}"));
    }
}
