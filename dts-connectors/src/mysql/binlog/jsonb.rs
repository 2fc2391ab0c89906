//! MySQL's binary JSON (the `JSON` column format in rows events) to JSON text.
//!
//! The layout is MySQL's `json_binary` format: a type byte, then the value; objects and
//! arrays come in a small (16-bit offsets) and a large (32-bit offsets) form, with keys and
//! values addressed by offsets from the start of the container, and small scalars inlined in
//! the value entries. Text is written as MySQL prints it (`{"a": 1, "b": [true, null]}`),
//! keys in stored order. Numbers are exact: integers in full, decimals (stored as opaque
//! `DECIMAL` values) digit for digit, doubles in their shortest round-trip form with `.0`
//! added to integral ones (as MySQL does), switching to exponent form outside
//! 1e-5..1e15. Dates and times become quoted strings; other opaque values become
//! `"base64:type<N>:<data>"` strings, as MySQL prints them.

use super::decimal::decode_decimal;
use super::event::{le_uint, Malformed, Parse};

/// MySQL limits JSON documents to this nesting depth.
const MAX_DEPTH: usize = 100;

const SMALL_OBJECT: u8 = 0x00;
const LARGE_OBJECT: u8 = 0x01;
const SMALL_ARRAY: u8 = 0x02;
const LARGE_ARRAY: u8 = 0x03;
const LITERAL: u8 = 0x04;
const INT16: u8 = 0x05;
const UINT16: u8 = 0x06;
const INT32: u8 = 0x07;
const UINT32: u8 = 0x08;
const INT64: u8 = 0x09;
const UINT64: u8 = 0x0a;
const DOUBLE: u8 = 0x0b;
const STRING: u8 = 0x0c;
const OPAQUE: u8 = 0x0f;

/// Converts a binary JSON document to text. An empty document is JSON `null` (MySQL
/// writes one for a `JSON` column it could not store a value in).
pub(crate) fn jsonb_to_text(doc: &[u8]) -> Parse<String> {
    let mut out = String::with_capacity(doc.len() + doc.len() / 2);
    match doc.split_first() {
        None => out.push_str("null"),
        Some((&t, value)) => write_value(t, value, &mut out, 0)?,
    }
    Ok(out)
}

fn bad(what: &'static str) -> Malformed {
    Malformed(what)
}

fn slice(data: &[u8], start: usize, len: usize) -> Parse<&[u8]> {
    start
        .checked_add(len)
        .and_then(|end| data.get(start..end))
        .ok_or(bad("json value out of bounds"))
}

fn read_uint(data: &[u8], start: usize, len: usize) -> Parse<usize> {
    usize::try_from(le_uint(slice(data, start, len)?)).map_err(|_| bad("json offset"))
}

/// Reads MySQL's variable-length length: 7 bits per byte, least significant first.
fn var_len(data: &[u8]) -> Parse<(usize, usize)> {
    let mut len = 0usize;
    for (i, &b) in data.iter().enumerate().take(5) {
        len |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((len, i + 1));
        }
    }
    Err(bad("json string length"))
}

fn write_value(t: u8, data: &[u8], out: &mut String, depth: usize) -> Parse<()> {
    if depth > MAX_DEPTH {
        return Err(bad("json nested too deep"));
    }
    match t {
        SMALL_OBJECT => write_container(data, false, true, out, depth),
        LARGE_OBJECT => write_container(data, true, true, out, depth),
        SMALL_ARRAY => write_container(data, false, false, out, depth),
        LARGE_ARRAY => write_container(data, true, false, out, depth),
        LITERAL | INT16 | UINT16 | INT32 | UINT32 => write_inline(t, data, out),
        INT64 => {
            let b = slice(data, 0, 8)?;
            out.push_str(&i64::from_le_bytes(b.try_into().map_err(|_| bad("int64"))?).to_string());
            Ok(())
        }
        UINT64 => {
            out.push_str(&le_uint(slice(data, 0, 8)?).to_string());
            Ok(())
        }
        DOUBLE => {
            let b = slice(data, 0, 8)?;
            let f = f64::from_le_bytes(b.try_into().map_err(|_| bad("double"))?);
            write_double(f, out)
        }
        STRING => {
            let (len, n) = var_len(data)?;
            let s = std::str::from_utf8(slice(data, n, len)?)
                .map_err(|_| bad("json string is not utf-8"))?;
            write_string(s, out);
            Ok(())
        }
        OPAQUE => {
            let (&field_type, rest) = data.split_first().ok_or(bad("json opaque"))?;
            let (len, n) = var_len(rest)?;
            write_opaque(field_type, slice(rest, n, len)?, out)
        }
        _ => Err(bad("unknown json value type")),
    }
}

/// Writes a scalar stored inline in a value entry (or at the start of `data`).
fn write_inline(t: u8, data: &[u8], out: &mut String) -> Parse<()> {
    match t {
        LITERAL => out.push_str(match slice(data, 0, 1)?[0] {
            0 => "null",
            1 => "true",
            2 => "false",
            _ => return Err(bad("json literal")),
        }),
        INT16 => {
            let b = slice(data, 0, 2)?;
            out.push_str(&i16::from_le_bytes([b[0], b[1]]).to_string());
        }
        UINT16 => out.push_str(&le_uint(slice(data, 0, 2)?).to_string()),
        INT32 => {
            let b = slice(data, 0, 4)?;
            out.push_str(&i32::from_le_bytes([b[0], b[1], b[2], b[3]]).to_string());
        }
        UINT32 => out.push_str(&le_uint(slice(data, 0, 4)?).to_string()),
        _ => return Err(bad("json inline value")),
    }
    Ok(())
}

fn is_inlined(t: u8, large: bool) -> bool {
    match t {
        LITERAL | INT16 | UINT16 => true,
        INT32 | UINT32 => large,
        _ => false,
    }
}

fn write_container(
    data: &[u8],
    large: bool,
    object: bool,
    out: &mut String,
    depth: usize,
) -> Parse<()> {
    let w = if large { 4 } else { 2 };
    let count = read_uint(data, 0, w)?;
    let size = read_uint(data, w, w)?;
    let data = data.get(..size).ok_or(bad("json container size"))?;
    let key_entry = w + 2;
    let value_entry = 1 + w;
    let keys_at = 2 * w;
    let values_at = if object {
        count
            .checked_mul(key_entry)
            .and_then(|k| k.checked_add(keys_at))
            .ok_or(bad("json container"))?
    } else {
        keys_at
    };
    out.push(if object { '{' } else { '[' });
    for i in 0..count {
        if i > 0 {
            out.push_str(", ");
        }
        if object {
            let entry = keys_at + i * key_entry;
            let key_offset = read_uint(data, entry, w)?;
            let key_len = read_uint(data, entry + w, 2)?;
            let key = std::str::from_utf8(slice(data, key_offset, key_len)?)
                .map_err(|_| bad("json key is not utf-8"))?;
            write_string(key, out);
            out.push_str(": ");
        }
        let entry = values_at + i * value_entry;
        let t = slice(data, entry, 1)?[0];
        if is_inlined(t, large) {
            write_inline(t, slice(data, entry + 1, w)?, out)?;
        } else {
            let offset = read_uint(data, entry + 1, w)?;
            let value = data.get(offset..).ok_or(bad("json value offset"))?;
            write_value(t, value, out, depth + 1)?;
        }
    }
    out.push(if object { '}' } else { ']' });
    Ok(())
}

/// Writes a JSON string with MySQL's escapes.
fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_double(f: f64, out: &mut String) -> Parse<()> {
    if !f.is_finite() {
        return Err(bad("json double is not finite"));
    }
    let sci = format!("{f:e}");
    let exp: i32 = sci
        .rsplit_once('e')
        .and_then(|(_, e)| e.parse().ok())
        .unwrap_or(0);
    if f != 0.0 && !(-5..15).contains(&exp) {
        out.push_str(&sci);
    } else {
        let fixed = f.to_string();
        out.push_str(&fixed);
        if !fixed.contains('.') {
            out.push_str(".0");
        }
    }
    Ok(())
}

/// MySQL column type codes of opaque JSON values with a readable form.
const OPAQUE_DECIMAL: u8 = 246;
const OPAQUE_DATE: u8 = 10;
const OPAQUE_TIME: u8 = 11;
const OPAQUE_DATETIME: u8 = 12;
const OPAQUE_TIMESTAMP: u8 = 7;

fn write_opaque(field_type: u8, data: &[u8], out: &mut String) -> Parse<()> {
    match field_type {
        OPAQUE_DECIMAL => {
            let precision = slice(data, 0, 1)?[0];
            let scale = slice(data, 1, 1)?[0];
            out.push_str(&decode_decimal(&data[2..], precision, scale)?);
        }
        OPAQUE_DATE | OPAQUE_DATETIME | OPAQUE_TIMESTAMP | OPAQUE_TIME => {
            let b = slice(data, 0, 8)?;
            let packed = i64::from_le_bytes(b.try_into().map_err(|_| bad("json temporal"))?);
            out.push('"');
            out.push_str(&packed_temporal(field_type, packed)?);
            out.push('"');
        }
        _ => {
            out.push_str(&format!("\"base64:type{field_type}:"));
            base64(data, out);
            out.push('"');
        }
    }
    Ok(())
}

/// Renders MySQL's packed temporal integer (integer part shifted left 24 bits, plus
/// microseconds) as MySQL prints JSON temporals.
fn packed_temporal(field_type: u8, packed: i64) -> Parse<String> {
    let neg = packed < 0;
    let abs = packed.unsigned_abs();
    let micro = abs % (1 << 24);
    let int = abs >> 24;
    if field_type == OPAQUE_TIME {
        let hour = (int >> 12) % (1 << 10);
        let minute = (int >> 6) % (1 << 6);
        let second = int % (1 << 6);
        let sign = if neg { "-" } else { "" };
        return Ok(format!(
            "{sign}{hour:02}:{minute:02}:{second:02}.{micro:06}"
        ));
    }
    if neg {
        return Err(bad("negative json datetime"));
    }
    let ymd = int >> 17;
    let ym = ymd >> 5;
    let hms = int % (1 << 17);
    let (year, month, day) = (ym / 13, ym % 13, ymd % (1 << 5));
    let (hour, minute, second) = (hms >> 12, (hms >> 6) % (1 << 6), hms % (1 << 6));
    Ok(if field_type == OPAQUE_DATE {
        format!("{year:04}-{month:02}-{day:02}")
    } else {
        format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}.{micro:06}")
    })
}

fn base64(data: &[u8], out: &mut String) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let idx = usize::try_from(n >> (18 - 6 * i) & 63).unwrap_or(0);
                out.push(char::from(ALPHABET[idx]));
            } else {
                out.push('=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! No MySQL 8 server is available here, so documents are built by hand following the
    //! `json_binary` format description in MySQL's source (`sql-common/json_binary.h`).

    use super::*;

    fn small_object(entries: &[(&str, u8, Vec<u8>)]) -> Vec<u8> {
        // Header: count, size; key entries (offset, len); value entries (type, offset or
        // inline value); then keys, then non-inlined values.
        let n = entries.len();
        let header = 4 + n * 4 + n * 3;
        let mut keys: Vec<u8> = Vec::new();
        let mut values: Vec<u8> = Vec::new();
        let mut key_entries = Vec::new();
        let mut value_entries = Vec::new();
        let key_base = header;
        let keys_len: usize = entries.iter().map(|(k, _, _)| k.len()).sum();
        for (k, t, v) in entries {
            key_entries.extend(u16::try_from(key_base + keys.len()).unwrap().to_le_bytes());
            key_entries.extend(u16::try_from(k.len()).unwrap().to_le_bytes());
            keys.extend(k.as_bytes());
            value_entries.push(*t);
            if is_inlined(*t, false) {
                let mut inline = v.clone();
                inline.resize(2, 0);
                value_entries.extend(inline);
            } else {
                let at = header + keys_len + values.len();
                value_entries.extend(u16::try_from(at).unwrap().to_le_bytes());
                values.extend(v);
            }
        }
        let size = header + keys.len() + values.len();
        let mut out = Vec::new();
        out.extend(u16::try_from(n).unwrap().to_le_bytes());
        out.extend(u16::try_from(size).unwrap().to_le_bytes());
        out.extend(key_entries);
        out.extend(value_entries);
        out.extend(keys);
        out.extend(values);
        out
    }

    fn small_array(values: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let n = values.len();
        let header = 4 + n * 3;
        let mut entries = Vec::new();
        let mut data: Vec<u8> = Vec::new();
        for (t, v) in values {
            entries.push(*t);
            if is_inlined(*t, false) {
                let mut inline = v.clone();
                inline.resize(2, 0);
                entries.extend(inline);
            } else {
                entries.extend(u16::try_from(header + data.len()).unwrap().to_le_bytes());
                data.extend(v);
            }
        }
        let mut out = Vec::new();
        out.extend(u16::try_from(n).unwrap().to_le_bytes());
        out.extend(u16::try_from(header + data.len()).unwrap().to_le_bytes());
        out.extend(entries);
        out.extend(data);
        out
    }

    fn string(s: &str) -> Vec<u8> {
        let mut v = vec![u8::try_from(s.len()).unwrap()];
        v.extend(s.as_bytes());
        v
    }

    fn doc(t: u8, body: Vec<u8>) -> Vec<u8> {
        let mut v = vec![t];
        v.extend(body);
        v
    }

    #[test]
    fn scalars_print_exactly() {
        assert_eq!(jsonb_to_text(&[]).unwrap(), "null");
        assert_eq!(jsonb_to_text(&[LITERAL, 1]).unwrap(), "true");
        assert_eq!(
            jsonb_to_text(&doc(INT16, (-5i16).to_le_bytes().to_vec())).unwrap(),
            "-5"
        );
        assert_eq!(
            jsonb_to_text(&doc(UINT64, u64::MAX.to_le_bytes().to_vec())).unwrap(),
            "18446744073709551615"
        );
        assert_eq!(
            jsonb_to_text(&doc(INT64, i64::MIN.to_le_bytes().to_vec())).unwrap(),
            "-9223372036854775808"
        );
        for (f, text) in [
            (2.5, "2.5"),
            (1.0, "1.0"),
            (-1e-7, "-1e-7"),
            (1.2345678901234567e19, "1.2345678901234567e19"),
            (0.0001, "0.0001"),
            (0.1 + 0.2, "0.30000000000000004"),
        ] {
            assert_eq!(
                jsonb_to_text(&doc(DOUBLE, f64::to_le_bytes(f).to_vec())).unwrap(),
                text
            );
        }
        assert_eq!(
            jsonb_to_text(&doc(STRING, string("é\"\\\n\u{1}"))).unwrap(),
            "\"é\\\"\\\\\\n\\u0001\""
        );
    }

    #[test]
    fn opaque_decimals_and_temporals() {
        // DECIMAL(40,20) 12345678901234567890.12345678901234567890, stored as
        // precision, scale, decimal2bin bytes.
        let text = "12345678901234567890.12345678901234567890";
        let mut dec = vec![40u8, 20];
        // 20 integer digits: 2 leading digits (1 byte) + 2 groups; 20 fraction digits: 2
        // groups + 2 digits (1 byte).
        dec.push(12 ^ 0x80);
        dec.extend(345_678_901u32.to_be_bytes());
        dec.extend(234_567_890u32.to_be_bytes());
        dec.extend(123_456_789u32.to_be_bytes());
        dec.extend(12_345_678u32.to_be_bytes());
        dec.push(90);
        let mut opaque = vec![OPAQUE, OPAQUE_DECIMAL, u8::try_from(dec.len()).unwrap()];
        opaque.extend(dec);
        assert_eq!(jsonb_to_text(&opaque).unwrap(), text);

        // 2015-01-15 23:24:25.000001 packed: ((year*13+month)<<5|day)<<17 | h<<12|m<<6|s.
        let ymd = ((2015i64 * 13 + 1) << 5) | 15;
        let int = (ymd << 17) | (23 << 12) | (24 << 6) | 25;
        let packed = (int << 24) | 1;
        let mut dt = vec![OPAQUE, OPAQUE_DATETIME, 8];
        dt.extend(packed.to_le_bytes());
        assert_eq!(
            jsonb_to_text(&dt).unwrap(),
            "\"2015-01-15 23:24:25.000001\""
        );
        let time = -(((838i64 << 12) | (59 << 6) | 59) << 24);
        let mut t = vec![OPAQUE, OPAQUE_TIME, 8];
        t.extend(time.to_le_bytes());
        assert_eq!(jsonb_to_text(&t).unwrap(), "\"-838:59:59.000000\"");
        let blob = vec![OPAQUE, 252, 3, b'a', b'b', b'c'];
        assert_eq!(jsonb_to_text(&blob).unwrap(), "\"base64:type252:YWJj\"");
    }

    #[test]
    fn containers_nest_with_inlined_and_offset_values() {
        let inner = small_array(&[
            (INT16, 1i16.to_le_bytes().to_vec()),
            (DOUBLE, 2.5f64.to_le_bytes().to_vec()),
            (STRING, string("x")),
            (LITERAL, vec![0]),
            (LITERAL, vec![1]),
        ]);
        let obj = small_object(&[
            ("a", SMALL_ARRAY, inner),
            ("bb", UINT16, 7u16.to_le_bytes().to_vec()),
            ("s", STRING, string("é")),
        ]);
        assert_eq!(
            jsonb_to_text(&doc(SMALL_OBJECT, obj)).unwrap(),
            "{\"a\": [1, 2.5, \"x\", null, true], \"bb\": 7, \"s\": \"é\"}"
        );
        assert_eq!(
            jsonb_to_text(&doc(SMALL_ARRAY, small_array(&[]))).unwrap(),
            "[]"
        );
        assert!(jsonb_to_text(&[SMALL_OBJECT, 1, 0, 200, 0]).is_err());
        assert!(jsonb_to_text(&[0x0e]).is_err());
    }
}
