//! PostgreSQL arrays, from their text form, as JSON arrays.

use crate::error::ConvertError;

use super::PgSourceType;

/// Converts an array's text form (`{1,NULL,-3}`, `{{"a b","c"},{NULL,"\"q\""}}`) into a
/// compact JSON array nested per dimension: `NULL` → `null`, numbers (of number element
/// types, when they are JSON numbers) as numbers, booleans as `true`/`false`, `json` and
/// `jsonb` elements as the JSON they hold, every other element as a string of its text
/// form. For text, enum, boolean and number elements the result is what PostgreSQL's
/// `to_json` gives (which prints timestamps in ISO 8601 with a `T`, where this keeps the
/// elements' text form, as the scalar columns have it).
///
/// # Errors
///
/// [`ConvertError::Unrepresentable`] for an array with explicit bounds (`[0:1]={…}`),
/// whose lower bounds a JSON array cannot keep; [`ConvertError::Unparsable`] for text that
/// is not an array literal.
pub fn array_to_json(text: &str, element: &PgSourceType) -> Result<String, ConvertError> {
    if text.starts_with('[') {
        return Err(ConvertError::Unrepresentable {
            what: "an array with lower bounds other than 1".into(),
            target: "a JSON array".into(),
        });
    }
    // `box` is the one built-in type whose arrays use `;` between elements.
    let delimiter = if matches!(element, PgSourceType::Other(n) if n == "box") {
        ';'
    } else {
        ','
    };
    let mut parser = Parser {
        s: text.as_bytes(),
        text,
        pos: 0,
        delimiter: delimiter as u8,
        element,
        out: String::with_capacity(text.len() + 2),
    };
    parser.array()?;
    if parser.pos != parser.s.len() {
        return Err(bad());
    }
    Ok(parser.out)
}

fn bad() -> ConvertError {
    ConvertError::Unparsable {
        expected: "array literal",
    }
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
    delimiter: u8,
    element: &'a PgSourceType,
    out: String,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn array(&mut self) -> Result<(), ConvertError> {
        if self.peek() != Some(b'{') {
            return Err(bad());
        }
        self.pos += 1;
        self.out.push('[');
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.out.push(']');
            return Ok(());
        }
        loop {
            match self.peek() {
                Some(b'{') => self.array()?,
                Some(b'"') => {
                    let s = self.quoted()?;
                    self.scalar(&s, true);
                }
                Some(_) => {
                    let start = self.pos;
                    while let Some(c) = self.peek() {
                        if c == self.delimiter || c == b'}' {
                            break;
                        }
                        self.pos += 1;
                    }
                    let token = &self.text[start..self.pos];
                    if token.is_empty() {
                        return Err(bad());
                    }
                    if token.eq_ignore_ascii_case("NULL") {
                        self.out.push_str("null");
                    } else {
                        let token = token.to_string();
                        self.scalar(&token, false);
                    }
                }
                None => return Err(bad()),
            }
            match self.peek() {
                Some(b'}') => {
                    self.pos += 1;
                    self.out.push(']');
                    return Ok(());
                }
                Some(c) if c == self.delimiter => {
                    self.pos += 1;
                    self.out.push(',');
                }
                _ => return Err(bad()),
            }
        }
    }

    /// A double-quoted element, unescaped.
    fn quoted(&mut self) -> Result<String, ConvertError> {
        self.pos += 1;
        let mut bytes = Vec::new();
        loop {
            match self.peek() {
                None => return Err(bad()),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    let c = self.s.get(self.pos + 1).copied().ok_or_else(bad)?;
                    bytes.push(c);
                    self.pos += 2;
                }
                Some(c) => {
                    bytes.push(c);
                    self.pos += 1;
                }
            }
        }
        String::from_utf8(bytes).map_err(|_| bad())
    }

    fn scalar(&mut self, s: &str, quoted: bool) {
        match self.element {
            e if e.is_number() && is_json_number(s) => self.out.push_str(s),
            PgSourceType::Boolean if s == "t" || s == "true" => self.out.push_str("true"),
            PgSourceType::Boolean if s == "f" || s == "false" => self.out.push_str("false"),
            PgSourceType::Json | PgSourceType::Jsonb if quoted || !s.is_empty() => {
                self.out.push_str(s);
            }
            _ => json_string(s, &mut self.out),
        }
    }
}

/// Whether `s` is a number in JSON's grammar.
pub(crate) fn is_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(c) if c.is_ascii_digit() => {
            digits(&mut i);
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Appends `s` as a JSON string.
pub(crate) fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_become_json() {
        let int = PgSourceType::Integer;
        assert_eq!(array_to_json("{}", &int).unwrap(), "[]");
        assert_eq!(array_to_json("{1,NULL,-3}", &int).unwrap(), "[1,null,-3]");
        assert_eq!(
            array_to_json("{{1,2},{3,4}}", &int).unwrap(),
            "[[1,2],[3,4]]"
        );
        assert_eq!(
            array_to_json(
                r#"{"a b","q\"uote","back\\slash",NULL,"NULL",""}"#,
                &PgSourceType::Text
            )
            .unwrap(),
            r#"["a b","q\"uote","back\\slash",null,"NULL",""]"#
        );
        assert_eq!(
            array_to_json("{t,f}", &PgSourceType::Boolean).unwrap(),
            "[true,false]"
        );
        assert_eq!(
            array_to_json("{NaN,1.5e+20,-0}", &PgSourceType::Double).unwrap(),
            r#"["NaN",1.5e+20,-0]"#
        );
        assert_eq!(
            array_to_json(r#"{"{\"a\": 1}",2}"#, &PgSourceType::Jsonb).unwrap(),
            r#"[{"a": 1},2]"#
        );
        assert_eq!(
            array_to_json("{(1,2);(0,0)}", &PgSourceType::Other("box".into())).unwrap(),
            r#"["(1,2)","(0,0)"]"#
        );
        assert!(array_to_json("[0:1]={1,2}", &int).is_err());
        assert!(array_to_json("{1,2", &int).is_err());
        assert!(array_to_json("{1,,2}", &int).is_err());
    }

    #[test]
    fn json_numbers() {
        for ok in ["0", "-1", "1.5", "1e5", "1.5E-3", "-0.0"] {
            assert!(is_json_number(ok), "{ok}");
        }
        for bad in ["", "01", "1.", ".5", "NaN", "Infinity", "+1", "1e"] {
            assert!(!is_json_number(bad), "{bad}");
        }
    }
}
