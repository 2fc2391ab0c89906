//! MySQL's binary `DECIMAL` format (`decimal2bin`), as rows events and binary JSON carry it.
//!
//! Digits are stored in groups of nine per 4-byte big-endian word; a leading and a trailing
//! partial group use 1–4 bytes. The first bit is the sign (set for non-negative numbers),
//! and every byte of a negative number is inverted.

use std::fmt::Write as _;

use super::event::{be_uint, Malformed, Parse};

/// Bytes needed for 0..=9 leftover digits.
const DIG2BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];

/// The number of bytes a `DECIMAL(precision, scale)` value takes.
pub(crate) fn decimal_len(precision: u8, scale: u8) -> Parse<usize> {
    let (intg, frac) = split(precision, scale)?;
    Ok(intg / 9 * 4 + DIG2BYTES[intg % 9] + frac / 9 * 4 + DIG2BYTES[frac % 9])
}

fn split(precision: u8, scale: u8) -> Parse<(usize, usize)> {
    if scale > precision || precision > 65 || scale > 30 {
        return Err(Malformed("decimal precision or scale out of range"));
    }
    Ok((usize::from(precision - scale), usize::from(scale)))
}

/// Decodes a `DECIMAL(precision, scale)` value into its exact text: an optional `-`, the
/// integer digits without leading zeros (at least one) and exactly `scale` fraction digits.
pub(crate) fn decode_decimal(bytes: &[u8], precision: u8, scale: u8) -> Parse<String> {
    let (intg, frac) = split(precision, scale)?;
    let len = decimal_len(precision, scale)?;
    let raw = bytes
        .get(..len)
        .ok_or(Malformed("decimal value ends early"))?;
    if raw.is_empty() {
        return Ok("0".to_string());
    }
    let negative = raw[0] & 0x80 == 0;
    let mask = if negative { 0xFF } else { 0 };
    let mut buf: Vec<u8> = raw.iter().map(|b| b ^ mask).collect();
    buf[0] ^= 0x80;

    let mut digits = String::with_capacity(intg + frac + 2);
    let mut pos = 0;
    let mut group = |n: usize, width: usize, digits: &mut String| -> Parse<()> {
        let v = be_uint(&buf[pos..pos + n]);
        pos += n;
        if v >= 10u64.pow(u32::try_from(width).unwrap_or(9)) {
            return Err(Malformed("invalid decimal digits"));
        }
        let _ = write!(digits, "{v:0width$}");
        Ok(())
    };
    if intg % 9 > 0 {
        group(DIG2BYTES[intg % 9], intg % 9, &mut digits)?;
    }
    for _ in 0..intg / 9 {
        group(4, 9, &mut digits)?;
    }
    let int_part = digits.trim_start_matches('0');
    let mut out = String::with_capacity(intg + frac + 2);
    if negative {
        out.push('-');
    }
    out.push_str(if int_part.is_empty() { "0" } else { int_part });
    if frac > 0 {
        let mut fraction = String::with_capacity(frac);
        for _ in 0..frac / 9 {
            group(4, 9, &mut fraction)?;
        }
        if frac % 9 > 0 {
            group(DIG2BYTES[frac % 9], frac % 9, &mut fraction)?;
        }
        out.push('.');
        out.push_str(&fraction);
    }
    if negative && out[1..].bytes().all(|b| b == b'0' || b == b'.') {
        // A negative zero does not exist in MySQL, but keep the text canonical anyway.
        out.remove(0);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes a decimal text the way the server does, for round-trip tests.
    fn encode(text: &str, precision: u8, scale: u8) -> Vec<u8> {
        let (neg, body) = match text.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, text),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        let intg = usize::from(precision - scale);
        let fracg = usize::from(scale);
        let int = if intg == 0 {
            String::new()
        } else {
            format!("{int:0>intg$}")
        };
        let frac = format!("{frac:0<fracg$}");
        let mut out = Vec::new();
        let mut push = |digits: &str| {
            let n: u64 = digits.parse().unwrap();
            let bytes = DIG2BYTES[digits.len()];
            out.extend_from_slice(&n.to_be_bytes()[8 - bytes..]);
        };
        let lead = intg % 9;
        if lead > 0 {
            push(&int[..lead]);
        }
        for chunk in int.as_bytes()[lead..].chunks(9) {
            push(std::str::from_utf8(chunk).unwrap());
        }
        for chunk in frac.as_bytes().chunks(9) {
            push(std::str::from_utf8(chunk).unwrap());
        }
        out[0] ^= 0x80;
        if neg {
            for b in &mut out {
                *b ^= 0xFF;
            }
        }
        out
    }

    #[test]
    fn server_bytes_decode_exactly() {
        // DECIMAL(5,2) 1.50 as MariaDB logged it.
        assert_eq!(decode_decimal(&[0x80, 0x01, 0x32], 5, 2).unwrap(), "1.50");
        // DECIMAL(10,4) -1234.5678 from the MySQL documentation's example layout.
        let b = encode("-1234.5678", 10, 4);
        assert_eq!(decode_decimal(&b, 10, 4).unwrap(), "-1234.5678");
    }

    #[test]
    fn extremes_round_trip() {
        let max = format!("{}.{}", "9".repeat(35), "9".repeat(30));
        for (text, p, s) in [
            (max.as_str(), 65, 30),
            (&format!("-{max}"), 65, 30),
            ("0.000000000000000000000000000001", 65, 30),
            ("-9999999999", 10, 0),
            ("0", 10, 0),
            ("123456789012345678", 18, 0),
            ("0.5", 1, 1),
        ] {
            let b = encode(text, p, s);
            assert_eq!(b.len(), decimal_len(p, s).unwrap());
            assert_eq!(decode_decimal(&b, p, s).unwrap(), text, "{text}");
        }
        assert!(decode_decimal(&[0x80], 5, 2).is_err());
        assert!(decode_decimal(&[0xFF; 3], 5, 2).is_err());
    }
}
