//! Percent-encoding of the parts of connection URLs (user, password, database, option
//! values), as both engines' tools write them.
//!
//! ```
//! use dts_core::url::{percent_decode, percent_encode};
//!
//! assert_eq!(percent_encode("p@ss/w"), "p%40ss%2Fw");
//! assert_eq!(percent_decode("p%40ss%2Fw").as_deref(), Some("p@ss/w"));
//! assert_eq!(percent_decode("%zz"), None);
//! ```

/// Escapes everything except RFC 3986 unreserved characters.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes; `None` if an escape is malformed or the result is not UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
