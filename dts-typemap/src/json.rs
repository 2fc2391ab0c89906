//! A JSON syntax check with PostgreSQL `jsonb`'s rules: RFC 8259 grammar, no `\u0000`
//! escape, surrogate escapes in pairs.
//!
//! MariaDB's `json_valid()` accepts texts `jsonb` refuses (`1.`, unknown escapes such as
//! `\x`), and MySQL 8 prints U+0000 inside strings as `\u0000`; checking before writing turns
//! a failed bulk load into an error that names the column and key.

/// Why a JSON text is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonError {
    /// A `\u0000` escape at this byte offset.
    Nul,
    /// A syntax error at this byte offset.
    Syntax(usize, &'static str),
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn err<T>(&self, reason: &'static str) -> Result<T, JsonError> {
        Err(JsonError::Syntax(self.i, reason))
    }

    fn expect(&mut self, c: u8, reason: &'static str) -> Result<(), JsonError> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            self.err(reason)
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), JsonError> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            self.err("invalid literal")
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Result<(), JsonError> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return self.err("invalid number"),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return self.err("invalid number");
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return self.err("invalid number");
            }
        }
        Ok(())
    }

    fn hex4(&mut self) -> Result<u16, JsonError> {
        let Some(h) = self.b.get(self.i..self.i + 4) else {
            return self.err("invalid unicode escape");
        };
        let mut v: u16 = 0;
        for &c in h {
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => return self.err("invalid unicode escape"),
            };
            v = v << 4 | u16::from(d);
        }
        self.i += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<(), JsonError> {
        self.expect(b'"', "expected a string")?;
        loop {
            let Some(c) = self.peek() else {
                return self.err("unterminated string");
            };
            match c {
                b'"' => {
                    self.i += 1;
                    return Ok(());
                }
                b'\\' => {
                    self.i += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.i += 1;
                        }
                        Some(b'u') => {
                            self.i += 1;
                            let at = self.i - 2;
                            let u = self.hex4()?;
                            match u {
                                0 => return Err(JsonError::Nul),
                                0xD800..=0xDBFF => {
                                    if !self.b[self.i..].starts_with(b"\\u") {
                                        return Err(JsonError::Syntax(at, "unpaired surrogate"));
                                    }
                                    self.i += 2;
                                    if !(0xDC00..=0xDFFF).contains(&self.hex4()?) {
                                        return Err(JsonError::Syntax(at, "unpaired surrogate"));
                                    }
                                }
                                0xDC00..=0xDFFF => {
                                    return Err(JsonError::Syntax(at, "unpaired surrogate"));
                                }
                                _ => {}
                            }
                        }
                        _ => return self.err("invalid escape"),
                    }
                }
                0..=0x1f => return self.err("control character in string"),
                _ => self.i += 1,
            }
        }
    }
}

/// Checks that `text` is JSON PostgreSQL's `jsonb` accepts. Iterative, so deep nesting
/// cannot overflow the stack.
pub(crate) fn check_json(text: &str) -> Result<(), JsonError> {
    let mut p = Parser {
        b: text.as_bytes(),
        i: 0,
    };
    // Open containers: `{` or `[`.
    let mut stack: Vec<u8> = Vec::new();
    p.ws();
    'value: loop {
        match p.peek() {
            Some(b'{') => {
                p.i += 1;
                p.ws();
                if p.peek() == Some(b'}') {
                    p.i += 1;
                } else {
                    stack.push(b'{');
                    p.string()?;
                    p.ws();
                    p.expect(b':', "expected `:`")?;
                    p.ws();
                    continue 'value;
                }
            }
            Some(b'[') => {
                p.i += 1;
                p.ws();
                if p.peek() == Some(b']') {
                    p.i += 1;
                } else {
                    stack.push(b'[');
                    continue 'value;
                }
            }
            Some(b'"') => p.string()?,
            Some(b't') => p.literal(b"true")?,
            Some(b'f') => p.literal(b"false")?,
            Some(b'n') => p.literal(b"null")?,
            Some(b'-' | b'0'..=b'9') => p.number()?,
            None => return p.err("unexpected end"),
            Some(_) => return p.err("unexpected character"),
        }
        // After a complete value: close containers or move to the next element.
        loop {
            p.ws();
            let Some(&open) = stack.last() else {
                return if p.i == p.b.len() {
                    Ok(())
                } else {
                    p.err("trailing characters")
                };
            };
            match (open, p.peek()) {
                (_, Some(b',')) => {
                    p.i += 1;
                    p.ws();
                    if open == b'{' {
                        p.string()?;
                        p.ws();
                        p.expect(b':', "expected `:`")?;
                        p.ws();
                    }
                    continue 'value;
                }
                (b'{', Some(b'}')) | (b'[', Some(b']')) => {
                    p.i += 1;
                    stack.pop();
                }
                _ => return p.err("expected `,` or a closing bracket"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_jsonb_accepts() {
        for ok in [
            "{}",
            "[]",
            " [1, 2.5, -0, 1e5, 1E-5, 0.0e+1] ",
            r#"{"k":12345678901234567890.12345678901234567890}"#,
            r#"{"a":{"b":[true,false,null,"x"]},"a":2}"#,
            r#""\u00e9 \ud83d\ude00 \" \\ \/ \b\f\n\r\t""#,
            "\"é€😀\"",
            "3",
            "null",
            &format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
        ] {
            assert_eq!(check_json(ok), Ok(()), "{ok:.40}");
        }
    }

    #[test]
    fn refuses_what_jsonb_refuses() {
        assert_eq!(check_json(r#"{"a":"\u0000"}"#), Err(JsonError::Nul));
        for bad in [
            "",
            "1.",
            "01",
            "-",
            "[1,]",
            "{\"a\" 1}",
            r#""\x""#,
            r#""\ud800""#,
            r#""\udc00""#,
            r#""\ud800\u0041""#,
            "\"a\u{1}\"",
            "'a'",
            "NaN",
            "[1] 2",
            "{\"a\":1",
            "[",
            "tru",
            "\"\\u12\"",
        ] {
            assert!(
                matches!(check_json(bad), Err(JsonError::Syntax(..))),
                "{bad}"
            );
        }
        assert_eq!(
            check_json("[1,,2]"),
            Err(JsonError::Syntax(3, "unexpected character"))
        );
    }
}
