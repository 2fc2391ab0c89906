//! The canonical byte form of values, which digests and row comparisons hash.
//!
//! Two values encode to the same bytes exactly when the target holds the same value: every
//! variant has its own tag, floats are encoded by their bits, text and bytes with their
//! length, decimals as their (normalised, scale-keeping) text. JSON is the one value whose
//! text is not the value: a `jsonb` column keeps a document with its keys sorted,
//! duplicate keys dropped, whitespace removed and numbers as `numeric`, so JSON is encoded
//! in that normal form on both sides.

use dts_core::Value;

/// Appends the canonical bytes of `v` to `out`.
pub(crate) fn encode_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(0),
        Value::Bool(b) => out.extend_from_slice(&[1, u8::from(*b)]),
        Value::Int(i) => {
            out.push(2);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::UInt(u) => {
            out.push(3);
            out.extend_from_slice(&u.to_le_bytes());
        }
        Value::Float(f) => {
            out.push(4);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Value::Double(d) => {
            out.push(5);
            out.extend_from_slice(&d.to_bits().to_le_bytes());
        }
        Value::Decimal(d) => bytes(6, d.as_str().as_bytes(), out),
        Value::Text(s) => bytes(7, s.as_bytes(), out),
        Value::Bytes(b) => bytes(8, b, out),
        Value::Date(d) => {
            out.push(9);
            out.extend_from_slice(&d.year.to_le_bytes());
            out.extend_from_slice(&[d.month, d.day]);
        }
        Value::DateTime(dt) | Value::Timestamp(dt) => {
            out.push(if matches!(v, Value::DateTime(_)) {
                10
            } else {
                11
            });
            out.extend_from_slice(&dt.date.year.to_le_bytes());
            out.extend_from_slice(&[dt.date.month, dt.date.day, dt.hour, dt.minute, dt.second]);
            out.extend_from_slice(&dt.micro.to_le_bytes());
        }
        Value::Time(t) => {
            out.push(12);
            out.extend_from_slice(&t.micros.to_le_bytes());
        }
        Value::Year(y) => {
            out.push(13);
            out.extend_from_slice(&y.to_le_bytes());
        }
        Value::Json(s) => {
            out.push(14);
            match parse_json(s) {
                Some(j) => j.encode(out),
                // Not JSON (the target would have refused it): compared as text.
                None => bytes(15, s.as_bytes(), out),
            }
        }
        Value::Bits(b) => {
            out.push(16);
            out.push(b.len);
            out.extend_from_slice(&b.bits.to_le_bytes());
        }
    }
}

fn bytes(tag: u8, b: &[u8], out: &mut Vec<u8>) {
    out.push(tag);
    out.extend_from_slice(&(b.len() as u64).to_le_bytes());
    out.extend_from_slice(b);
}

/// A parsed JSON document in `jsonb`'s normal form.
#[derive(Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    /// A number as `numeric` prints it.
    Number(String),
    String(String),
    Array(Vec<Json>),
    /// Keys sorted, each once (the last one written wins).
    Object(Vec<(String, Json)>),
}

impl Json {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Json::Null => out.push(0),
            Json::Bool(b) => out.extend_from_slice(&[1, u8::from(*b)]),
            Json::Number(n) => bytes(2, n.as_bytes(), out),
            Json::String(s) => bytes(3, s.as_bytes(), out),
            Json::Array(items) => {
                out.push(4);
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for i in items {
                    i.encode(out);
                }
            }
            Json::Object(members) => {
                out.push(5);
                out.extend_from_slice(&(members.len() as u64).to_le_bytes());
                for (k, v) in members {
                    bytes(3, k.as_bytes(), out);
                    v.encode(out);
                }
            }
        }
    }
}

fn parse_json(text: &str) -> Option<Json> {
    let mut p = JsonParser {
        b: text.as_bytes(),
        i: 0,
        depth: 0,
    };
    let v = p.value()?;
    p.ws();
    (p.i == p.b.len()).then_some(v)
}

struct JsonParser<'a> {
    b: &'a [u8],
    i: usize,
    depth: usize,
}

impl JsonParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.peek() == Some(c)).then(|| self.i += 1)
    }

    fn value(&mut self) -> Option<Json> {
        self.ws();
        self.depth += 1;
        if self.depth > 10_000 {
            return None;
        }
        let v = match self.peek()? {
            b'n' => self.word(b"null", Json::Null),
            b't' => self.word(b"true", Json::Bool(true)),
            b'f' => self.word(b"false", Json::Bool(false)),
            b'"' => self.string().map(Json::String),
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                if self.eat(b']').is_none() {
                    loop {
                        items.push(self.value()?);
                        if self.eat(b']').is_some() {
                            break;
                        }
                        self.eat(b',')?;
                    }
                }
                Some(Json::Array(items))
            }
            b'{' => {
                self.i += 1;
                let mut members: Vec<(String, Json)> = Vec::new();
                if self.eat(b'}').is_none() {
                    loop {
                        self.ws();
                        let k = self.string()?;
                        self.eat(b':')?;
                        let v = self.value()?;
                        members.push((k, v));
                        if self.eat(b'}').is_some() {
                            break;
                        }
                        self.eat(b',')?;
                    }
                }
                // The last of duplicate keys wins, as in jsonb.
                members.reverse();
                members.sort_by(|a, b| a.0.cmp(&b.0));
                members.dedup_by(|later, first| later.0 == first.0);
                Some(Json::Object(members))
            }
            _ => self.number().map(Json::Number),
        };
        self.depth -= 1;
        v
    }

    fn word(&mut self, w: &[u8], v: Json) -> Option<Json> {
        self.b[self.i..].starts_with(w).then(|| {
            self.i += w.len();
            v
        })
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.b.get(self.i..self.i + 4)?;
        self.i += 4;
        u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
    }

    fn string(&mut self) -> Option<String> {
        if self.peek()? != b'"' {
            return None;
        }
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let c = self.peek()?;
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let e = self.peek()?;
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xd800..0xdc00).contains(&hi) {
                                if !self.b[self.i..].starts_with(b"\\u") {
                                    return None;
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                0x10000 + ((hi - 0xd800) << 10) + (lo.checked_sub(0xdc00)?)
                            } else {
                                hi
                            };
                            char::from_u32(code)?
                        }
                        _ => return None,
                    };
                    let mut buf = [0; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                c => out.push(c),
            }
        }
    }

    /// A number in the form PostgreSQL's `numeric` prints it: plain digits, the scale the
    /// text implies (`1.50` keeps two, `1.5e-3` is `0.0015`, `1e2` is `100`), no `-0`.
    fn number(&mut self) -> Option<String> {
        let start = self.i;
        let neg = self.peek() == Some(b'-');
        if neg {
            self.i += 1;
        }
        let int_start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        let int = &self.b[int_start..self.i];
        let mut frac: &[u8] = &[];
        if self.peek() == Some(b'.') {
            self.i += 1;
            let s = self.i;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.i += 1;
            }
            frac = &self.b[s..self.i];
        }
        let mut exp: i64 = 0;
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            let s = self.i;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.i += 1;
            }
            exp = std::str::from_utf8(&self.b[s..self.i]).ok()?.parse().ok()?;
        }
        if int.is_empty() || self.i == start || exp.abs() > 100_000 {
            return None;
        }
        let mut digits: Vec<u8> = int.iter().chain(frac).copied().collect();
        let mut scale = i64::try_from(frac.len()).ok()? - exp;
        if scale < 0 {
            digits.extend(std::iter::repeat_n(b'0', usize::try_from(-scale).ok()?));
            scale = 0;
        }
        let scale = usize::try_from(scale).ok()?;
        if digits.len() <= scale {
            let mut padded = vec![b'0'; scale + 1 - digits.len()];
            padded.extend_from_slice(&digits);
            digits = padded;
        }
        let (int, frac) = digits.split_at(digits.len() - scale);
        let int = match int.iter().position(|&d| d != b'0') {
            Some(p) => &int[p..],
            None => b"0",
        };
        let zero = int == b"0" && frac.iter().all(|&d| d == b'0');
        let mut out = String::new();
        if neg && !zero {
            out.push('-');
        }
        out.push_str(std::str::from_utf8(int).ok()?);
        if !frac.is_empty() {
            out.push('.');
            out.push_str(std::str::from_utf8(frac).ok()?);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        encode_value(v, &mut out);
        out
    }

    fn json(s: &str) -> Vec<u8> {
        enc(&Value::Json(s.into()))
    }

    #[test]
    fn json_in_jsonb_normal_form() {
        // What PostgreSQL prints for `'<left>'::jsonb` is the right side.
        for (written, stored) in [
            (r#"{"b": 1, "a": [1, 2]}"#, r#"{"a": [1, 2], "b": 1}"#),
            (r#"{"a": 1, "a": 2}"#, r#"{"a": 2}"#),
            ("1e2", "100"),
            ("1.0e2", "100"),
            ("1.5e-3", "0.0015"),
            ("-0", "0"),
            ("0.10", "0.10"),
            (r#""\u00e9\n""#, "\"é\\n\""),
            (r#""\ud83d\ude00""#, "\"😀\""),
        ] {
            assert_eq!(json(written), json(stored), "{written}");
        }
        for (a, b) in [
            ("0.10", "0.1"),
            (r#"{"a": 1}"#, r#"{"a": "1"}"#),
            ("[1, 2]", "[2, 1]"),
            (r#""a ""#, r#""a""#),
        ] {
            assert_ne!(json(a), json(b), "{a} vs {b}");
        }
    }

    #[test]
    fn every_difference_shows() {
        use dts_core::{Date, DateTime, Duration};
        let d = |s: &str| Value::Decimal(s.parse().unwrap());
        let pairs = [
            (d("1.50"), d("1.51")),
            (d("1.50"), d("1.5")),
            (
                Value::Float(0.1),
                Value::Float(f32::from_bits(0.1f32.to_bits() + 1)),
            ),
            (
                Value::Double(0.1),
                Value::Double(f64::from_bits(0.1f64.to_bits() ^ 1)),
            ),
            (Value::Text("a".into()), Value::Text("a ".into())),
            (Value::Bytes(vec![0, 1]), Value::Bytes(vec![0, 2])),
            (Value::Int(1), Value::UInt(1)),
            (Value::Null, Value::Text(String::new())),
            (Value::Text(String::new()), Value::Bytes(Vec::new())),
            (
                Value::DateTime(DateTime {
                    date: Date {
                        year: 2024,
                        month: 1,
                        day: 2,
                    },
                    hour: 0,
                    minute: 0,
                    second: 0,
                    micro: 1,
                }),
                Value::DateTime(DateTime {
                    date: Date {
                        year: 2024,
                        month: 1,
                        day: 2,
                    },
                    hour: 0,
                    minute: 0,
                    second: 0,
                    micro: 0,
                }),
            ),
            (
                Value::Time(Duration::from_micros(1)),
                Value::Time(Duration::from_micros(-1)),
            ),
        ];
        for (a, b) in pairs {
            assert_ne!(enc(&a), enc(&b), "{a:?} vs {b:?}");
            assert_eq!(enc(&a), enc(&a.clone()));
        }
    }

    proptest::proptest! {
        #[test]
        fn text_and_bytes_encodings_are_prefix_free(a in ".*", b in ".*", c in ".*", d in ".*") {
            // Two columns whose contents shift between them never encode alike.
            let mut x = enc(&Value::Text(a.clone()));
            x.extend(enc(&Value::Text(b.clone())));
            let mut y = enc(&Value::Text(c.clone()));
            y.extend(enc(&Value::Text(d.clone())));
            proptest::prop_assert_eq!(x == y, a == c && b == d);
        }
    }
}
