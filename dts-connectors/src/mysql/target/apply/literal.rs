//! Values as MySQL SQL literals, for statements sent in the text protocol.
//!
//! The apply session's `sql_mode` has no `NO_BACKSLASH_ESCAPES` and its character set is
//! `utf8mb4`: strings are quoted with backslash escapes and converted by the server into
//! each column's character set; binary strings are hexadecimal; numbers are written
//! exactly (floats as the shortest text of the double that holds them, decimals as their
//! digits); dates and times as quoted text in the session's UTC time zone.

use std::fmt::Write as _;

use dts_core::Value;

/// Decimals with more digits than this are quoted: MySQL reads a longer numeric literal
/// as an approximate double, and a string exactly.
const EXACT_DIGITS: usize = 65;

/// Appends `value` as a literal the server reads back as the same value. Fails, with the
/// reason, for a value no MySQL column holds (a NaN or infinite float).
pub(crate) fn push_literal(out: &mut String, value: &Value) -> Result<(), &'static str> {
    match value {
        Value::Null => out.push_str("NULL"),
        Value::Bool(b) => out.push_str(if *b { "TRUE" } else { "FALSE" }),
        Value::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Value::UInt(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Float(f) => {
            if !f.is_finite() {
                return Err("a NaN or infinite floating-point value");
            }
            // The shortest text of the double that holds the float exactly: stored into a
            // FLOAT column it rounds back to the same float.
            let _ = write!(out, "{:e}", f64::from(*f));
        }
        Value::Double(f) => {
            if !f.is_finite() {
                return Err("a NaN or infinite floating-point value");
            }
            let _ = write!(out, "{f:e}");
        }
        Value::Decimal(d) => {
            let digits = d.integer_digits().len() + d.scale();
            if digits > EXACT_DIGITS {
                push_quoted(out, d.as_str());
            } else {
                out.push_str(d.as_str());
            }
        }
        Value::Text(s) | Value::Json(s) => push_quoted(out, s),
        Value::Bytes(b) => push_hex(out, b),
        Value::Date(d) => {
            let _ = write!(out, "'{d}'");
        }
        Value::DateTime(d) | Value::Timestamp(d) => {
            let _ = write!(out, "'{d}'");
        }
        Value::Time(t) => {
            let _ = write!(out, "'{t}'");
        }
        Value::Year(y) => {
            let _ = write!(out, "{y}");
        }
        Value::Bits(b) => {
            let _ = write!(out, "{}", b.bits);
        }
    }
    Ok(())
}

/// Appends `s` as a quoted string with the escapes the server reads back.
pub(crate) fn push_quoted(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('\'');
    let mut from = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'\'' => "''",
            b'\\' => "\\\\",
            0 => "\\0",
            b'\n' => "\\n",
            b'\r' => "\\r",
            0x1a => "\\Z",
            _ => continue,
        };
        out.push_str(&s[from..i]);
        out.push_str(escape);
        from = i + 1;
    }
    out.push_str(&s[from..]);
    out.push('\'');
}

/// Appends `bytes` as a hexadecimal literal (`X'…'`), a binary string.
fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(bytes.len() * 2 + 3);
    out.push_str("X'");
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out.push('\'');
}

/// Appends an identifier quoted with backquotes.
pub(crate) fn push_ident(out: &mut String, name: &str) {
    out.push('`');
    for c in name.chars() {
        if c == '`' {
            out.push('`');
        }
        out.push(c);
    }
    out.push('`');
}

#[cfg(test)]
mod tests {
    use super::*;
    use dts_core::{BitString, Date, DateTime, Duration};

    fn lit(v: &Value) -> String {
        let mut s = String::new();
        push_literal(&mut s, v).unwrap();
        s
    }

    #[test]
    fn values_are_written_as_the_server_reads_them_back() {
        assert_eq!(lit(&Value::Null), "NULL");
        assert_eq!(lit(&Value::Int(i64::MIN)), "-9223372036854775808");
        assert_eq!(lit(&Value::UInt(u64::MAX)), "18446744073709551615");
        assert_eq!(lit(&Value::Float(f32::MAX)), "3.4028234663852886e38");
        assert_eq!(lit(&Value::Float(-0.0)), "-0e0");
        assert_eq!(lit(&Value::Double(0.1)), "1e-1");
        assert_eq!(lit(&Value::Decimal("-12.50".parse().unwrap())), "-12.50");
        let long = format!("{}.5", "9".repeat(70));
        assert_eq!(
            lit(&Value::Decimal(long.parse().unwrap())),
            format!("'{long}'")
        );
        assert_eq!(
            lit(&Value::Text("it's a \\ \0 \n \r \x1a é".into())),
            "'it''s a \\\\ \\0 \\n \\r \\Z é'"
        );
        assert_eq!(lit(&Value::Bytes(vec![0, 0xff, 0x10])), "X'00FF10'");
        assert_eq!(lit(&Value::Bytes(Vec::new())), "X''");
        assert_eq!(lit(&Value::Date(Date::new(0, 0, 0))), "'0000-00-00'");
        assert_eq!(
            lit(&Value::DateTime(DateTime {
                date: Date::new(2024, 2, 29),
                hour: 23,
                minute: 59,
                second: 59,
                micro: 5,
            })),
            "'2024-02-29 23:59:59.000005'"
        );
        assert_eq!(
            lit(&Value::Time(Duration::from_micros(
                -(838 * 3600 + 59 * 60 + 59) * 1_000_000 - 1
            ))),
            "'-838:59:59.000001'"
        );
        assert_eq!(lit(&Value::Year(0)), "0");
        assert_eq!(lit(&Value::Bits(BitString::new(10, 513).unwrap())), "513");
        assert_eq!(lit(&Value::Bool(true)), "TRUE");
        let mut s = String::new();
        assert!(push_literal(&mut s, &Value::Double(f64::NAN)).is_err());
        assert!(push_literal(&mut s, &Value::Float(f32::INFINITY)).is_err());
    }

    #[test]
    fn identifiers_double_their_backquotes() {
        let mut s = String::new();
        push_ident(&mut s, "we`ird");
        assert_eq!(s, "`we``ird`");
    }
}
