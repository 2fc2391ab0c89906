//! Character sets of binlog string values: collation ids to character sets, and decoding
//! of the character sets dts reads from the binlog into UTF-8.
//!
//! The binlog carries strings in their column's character set (the snapshot reader gets
//! them converted by the server instead). UTF-8 is checked strictly; `latin1` is MySQL's
//! latin1, which is Windows-1252 with the five undefined bytes mapped to the C1 controls
//! of the same number, exactly as the server converts it to `utf8mb4`.

use std::collections::HashMap;

/// A character set of string values in the binlog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Charset {
    /// `binary`: the values are bytes.
    Binary,
    /// `utf8mb4`, `utf8mb3`, `utf8`, `ascii`: UTF-8 text.
    Utf8,
    /// MySQL's `latin1` (Windows-1252).
    Latin1,
    /// `ucs2` (UCS-2, big-endian).
    Ucs2,
    /// `utf16` (big-endian).
    Utf16,
    /// `utf16le`.
    Utf16Le,
    /// `utf32` (big-endian).
    Utf32,
    /// A character set this reader cannot convert, by name.
    Other(String),
}

impl Charset {
    /// The character set of a name as `information_schema.COLLATIONS` spells it.
    pub fn from_name(name: &str) -> Self {
        match name.to_ascii_lowercase().as_str() {
            "binary" => Charset::Binary,
            "utf8mb4" | "utf8mb3" | "utf8" | "ascii" => Charset::Utf8,
            "latin1" => Charset::Latin1,
            "ucs2" => Charset::Ucs2,
            "utf16" => Charset::Utf16,
            "utf16le" => Charset::Utf16Le,
            "utf32" => Charset::Utf32,
            other => Charset::Other(other.to_string()),
        }
    }

    /// Decodes a value into UTF-8 text; `None` if the bytes are not valid in the character
    /// set (or the character set is [`Charset::Binary`] or unsupported).
    pub fn decode(&self, bytes: &[u8]) -> Option<String> {
        match self {
            Charset::Utf8 => std::str::from_utf8(bytes).ok().map(str::to_string),
            Charset::Latin1 => Some(latin1_to_string(bytes)),
            Charset::Ucs2 | Charset::Utf16 => {
                utf16(bytes, u16::from_be_bytes, *self == Charset::Ucs2)
            }
            Charset::Utf16Le => utf16(bytes, u16::from_le_bytes, false),
            Charset::Utf32 => {
                if bytes.len() % 4 != 0 {
                    return None;
                }
                bytes
                    .chunks_exact(4)
                    .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                    .collect()
            }
            Charset::Binary | Charset::Other(_) => None,
        }
    }
}

fn utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16, no_surrogates: bool) -> Option<String> {
    if bytes.len() % 2 != 0 {
        return None;
    }
    let units = bytes.chunks_exact(2).map(|c| unit([c[0], c[1]]));
    if no_surrogates {
        units.map(|u| char::from_u32(u32::from(u))).collect()
    } else {
        char::decode_utf16(units)
            .collect::<Result<String, _>>()
            .ok()
    }
}

/// MySQL's latin1 bytes 0x80..=0x9F in Unicode; the other bytes are their own code points.
const LATIN1_80_9F: [char; 32] = [
    '\u{20AC}', '\u{0081}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}',
    '\u{02C6}', '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{008D}', '\u{017D}', '\u{008F}',
    '\u{0090}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}',
    '\u{02DC}', '\u{2122}', '\u{0161}', '\u{203A}', '\u{0153}', '\u{009D}', '\u{017E}', '\u{0178}',
];

/// Converts MySQL latin1 bytes to UTF-8 (every byte is a character).
pub(crate) fn latin1_to_string(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if (0x80..=0x9F).contains(&b) {
                LATIN1_80_9F[usize::from(b - 0x80)]
            } else {
                char::from(b)
            }
        })
        .collect()
}

/// Collation ids to character sets, read from the server (`information_schema.COLLATIONS`)
/// with a built-in table of the common ids as fallback.
#[derive(Debug, Clone, Default)]
pub(crate) struct CharsetMap {
    by_id: HashMap<u16, Charset>,
}

impl CharsetMap {
    /// A map from `(collation id, character set name)` pairs.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (u16, String)>) -> Self {
        Self {
            by_id: pairs
                .into_iter()
                .map(|(id, name)| (id, Charset::from_name(&name)))
                .collect(),
        }
    }

    /// The character set of collation `id`; `None` if unknown.
    pub fn get(&self, id: u16) -> Option<Charset> {
        if let Some(cs) = self.by_id.get(&id) {
            return Some(cs.clone());
        }
        builtin(id).or_else(|| {
            // MariaDB's NO PAD collations are the PAD SPACE ones plus 1024.
            (1024..2048)
                .contains(&id)
                .then(|| builtin(id - 1024))
                .flatten()
        })
    }
}

/// The character sets of the collation ids every MySQL and MariaDB server shares.
fn builtin(id: u16) -> Option<Charset> {
    Some(match id {
        63 => Charset::Binary,
        5 | 8 | 15 | 31 | 47 | 48 | 49 | 94 => Charset::Latin1,
        11 | 65 => Charset::Utf8,                         // ascii
        33 | 76 | 83 | 192..=215 | 223 => Charset::Utf8,  // utf8mb3
        45 | 46 | 224..=247 | 255..=323 => Charset::Utf8, // utf8mb4
        35 | 90 | 128..=151 | 159 => Charset::Ucs2,
        54 | 55 | 101..=124 | 327 => Charset::Utf16,
        56 | 62 => Charset::Utf16Le,
        60 | 61 | 160..=183 | 328 => Charset::Utf32,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_is_windows_1252_with_c1_gaps() {
        assert_eq!(
            latin1_to_string(b"caf\xe9 \x80\x81\x9f\xff"),
            "café €\u{81}Ÿÿ"
        );
        assert_eq!(Charset::Latin1.decode(b"\xc6r\xf8"), Some("Ærø".into()));
    }

    #[test]
    fn utf_encodings_decode_strictly() {
        assert_eq!(
            Charset::Utf8.decode("Grüße 🎉".as_bytes()),
            Some("Grüße 🎉".into())
        );
        assert_eq!(Charset::Utf8.decode(&[0xff]), None);
        assert_eq!(
            Charset::Utf16.decode(&[0xd8, 0x3c, 0xdf, 0x89]),
            Some("🎉".into())
        );
        assert_eq!(Charset::Ucs2.decode(&[0xd8, 0x3c, 0xdf, 0x89]), None);
        assert_eq!(Charset::Utf16Le.decode(&[0x41, 0]), Some("A".into()));
        assert_eq!(
            Charset::Utf32.decode(&[0, 1, 0xf3, 0x89]),
            Some("🎉".into())
        );
        assert_eq!(Charset::Binary.decode(b"x"), None);
    }

    #[test]
    fn collation_ids_resolve_through_server_table_then_builtins() {
        let map = CharsetMap::from_pairs([(2048, "utf8mb4".to_string()), (28, "gbk".to_string())]);
        assert_eq!(map.get(2048), Some(Charset::Utf8));
        assert_eq!(map.get(28), Some(Charset::Other("gbk".into())));
        assert_eq!(map.get(8), Some(Charset::Latin1));
        assert_eq!(map.get(1032), Some(Charset::Latin1));
        assert_eq!(map.get(63), Some(Charset::Binary));
        assert_eq!(map.get(9999), None);
    }
}
