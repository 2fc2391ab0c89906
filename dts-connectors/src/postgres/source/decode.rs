//! Decoding `COPY … TO STDOUT (FORMAT binary)` output into [`Value`] rows.
//!
//! Each column is read with a decoder chosen from its base type (a domain resolved to the
//! type it is over). Types with a binary form the value model holds exactly are decoded
//! from it; every other type is selected as text (`::text`; `inet` and `cidr` with `format('%s', c)`,
//! whose text is the output function's: the form logical decoding sends), its canonical
//! text form under the pinned session settings, which its input function reads back
//! unchanged, and arrives as
//! [`Value::Text`]; `numeric` is selected as text and parsed as an exact [`Decimal`].
//!
//! Values the value model has no place for arrive as their text: `numeric`'s `NaN`,
//! `Infinity` and `-Infinity`, and the `infinity` and `-infinity` of dates and timestamps.
//! A target that cannot hold them refuses them by name; a PostgreSQL target writes them.

use bytes::{Buf, BytesMut};
use dts_core::{BitString, Date, DateTime, Decimal, Duration, Error, ErrorKind, Result, Value};

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days between the Unix epoch and PostgreSQL's.
const PG_EPOCH_DAYS: i64 = 10_957;

/// How one column is selected and decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decoder {
    Bool,
    Int2,
    Int4,
    Int8,
    Oid,
    Float4,
    Float8,
    /// UTF-8 text: text types, enums, `name`, `"char"`, and every type selected as text.
    Text,
    /// `numeric`, selected as text.
    Numeric,
    Json,
    Jsonb,
    Bytea,
    Uuid,
    Date,
    Timestamp,
    TimestampTz,
    Time,
    /// `bit(n)`/`varbit(n)` with n ≤ 64.
    Bits,
}

impl Decoder {
    /// The decoder for a column of base type `oid` (`typtype` its kind, `typmod` its
    /// modifier).
    pub(crate) fn of(oid: u32, typmod: i32) -> Self {
        match oid {
            16 => Self::Bool,
            21 => Self::Int2,
            23 => Self::Int4,
            20 => Self::Int8,
            26 => Self::Oid,
            700 => Self::Float4,
            701 => Self::Float8,
            25 | 1043 | 1042 | 19 | 18 => Self::Text,
            1700 => Self::Numeric,
            114 => Self::Json,
            3802 => Self::Jsonb,
            17 => Self::Bytea,
            2950 => Self::Uuid,
            1082 => Self::Date,
            1114 => Self::Timestamp,
            1184 => Self::TimestampTz,
            1083 => Self::Time,
            1560 | 1562 if (1..=64).contains(&typmod) => Self::Bits,
            _ => Self::Text,
        }
    }

    /// Whether the column is selected as text (its output function) rather than in its own
    /// binary form.
    /// How a column selected as text (see [`Decoder::selects_text`]) of base type `oid` is
    /// written in the select list: `c::text`, the output function's text, except for the
    /// types whose cast to `text` prints otherwise than their output function and than
    /// logical decoding sends them (`inet`, `cidr`: the cast adds the mask length), read
    /// with `format('%s', c)` (NULL kept).
    pub(crate) fn text_select(column: &str, oid: u32) -> String {
        if matches!(oid, 869 | 650) {
            format!("CASE WHEN {column} IS NULL THEN NULL ELSE format('%s', {column}) END")
        } else {
            format!("{column}::text")
        }
    }

    pub(crate) fn selects_text(self, oid: u32, typtype: &str) -> bool {
        match self {
            Self::Numeric => true,
            Self::Text => !matches!(oid, 25 | 1043 | 1042 | 19 | 18) && typtype != "e",
            _ => false,
        }
    }

    /// Decodes one non-NULL field.
    pub(crate) fn decode(self, raw: &[u8]) -> std::result::Result<Value, String> {
        let fixed = |n: usize| {
            if raw.len() == n {
                Ok(raw)
            } else {
                Err(format!("expected {n} bytes, got {}", raw.len()))
            }
        };
        let text = || {
            std::str::from_utf8(raw)
                .map(str::to_string)
                .map_err(|_| "invalid UTF-8".to_string())
        };
        Ok(match self {
            Self::Bool => Value::Bool(fixed(1)?[0] != 0),
            Self::Int2 => Value::Int(i64::from((&mut fixed(2)?).get_i16())),
            Self::Int4 => Value::Int(i64::from((&mut fixed(4)?).get_i32())),
            Self::Int8 => Value::Int((&mut fixed(8)?).get_i64()),
            Self::Oid => Value::UInt(u64::from((&mut fixed(4)?).get_u32())),
            Self::Float4 => Value::Float((&mut fixed(4)?).get_f32()),
            Self::Float8 => Value::Double((&mut fixed(8)?).get_f64()),
            Self::Text => Value::Text(text()?),
            Self::Numeric => {
                let t = text()?;
                if matches!(t.as_str(), "NaN" | "Infinity" | "-Infinity") {
                    return Ok(Value::Text(t));
                }
                let d: Decimal = t
                    .parse()
                    .map_err(|_| format!("numeric `{t}` is not a decimal"))?;
                Value::Decimal(d)
            }
            Self::Json => Value::Json(text()?),
            Self::Jsonb => match raw.split_first() {
                Some((1, rest)) => Value::Json(
                    std::str::from_utf8(rest)
                        .map_err(|_| "invalid UTF-8".to_string())?
                        .to_string(),
                ),
                _ => return Err("unknown jsonb version".into()),
            },
            Self::Bytea => Value::Bytes(raw.to_vec()),
            Self::Uuid => {
                let b = fixed(16)?;
                let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                Value::Text(format!(
                    "{}-{}-{}-{}-{}",
                    &hex[0..8],
                    &hex[8..12],
                    &hex[12..16],
                    &hex[16..20],
                    &hex[20..32]
                ))
            }
            Self::Date => match (&mut fixed(4)?).get_i32() {
                i32::MAX => Value::Text("infinity".into()),
                i32::MIN => Value::Text("-infinity".into()),
                days => Value::Date(date(days)?),
            },
            Self::Timestamp | Self::TimestampTz => match (&mut fixed(8)?).get_i64() {
                i64::MAX => Value::Text("infinity".into()),
                i64::MIN => Value::Text("-infinity".into()),
                micros if self == Self::Timestamp => Value::DateTime(datetime(micros)?),
                micros => Value::Timestamp(datetime(micros)?),
            },
            Self::Time => Value::Time(Duration {
                micros: (&mut fixed(8)?).get_i64(),
            }),
            Self::Bits => {
                if raw.len() < 4 {
                    return Err("truncated bit string".into());
                }
                let mut buf = raw;
                let len = buf.get_i32();
                let len = u8::try_from(len)
                    .ok()
                    .filter(|l| (1..=64).contains(l))
                    .ok_or_else(|| format!("a bit string of {len} bits"))?;
                let mut bits = 0u64;
                for i in 0..usize::from(len) {
                    let byte = buf.get(i / 8).copied().unwrap_or(0);
                    let bit = (byte >> (7 - i % 8)) & 1;
                    bits = (bits << 1) | u64::from(bit);
                }
                Value::Bits(
                    BitString::new(len, bits).ok_or_else(|| "invalid bit string".to_string())?,
                )
            }
        })
    }
}

impl Decoder {
    /// Decodes one non-NULL field in its type's text form, as logical decoding sends it
    /// under the pinned session settings, into the same [`Value`] the binary form gives.
    pub(crate) fn decode_text(self, raw: &[u8]) -> std::result::Result<Value, String> {
        let t = std::str::from_utf8(raw).map_err(|_| "invalid UTF-8".to_string())?;
        let int = || {
            t.parse::<i64>()
                .map_err(|_| format!("`{t}` is not an integer"))
        };
        let float = |t: &str| -> std::result::Result<f64, String> {
            match t {
                "NaN" => Ok(f64::NAN),
                "Infinity" => Ok(f64::INFINITY),
                "-Infinity" => Ok(f64::NEG_INFINITY),
                _ => t.parse().map_err(|_| format!("`{t}` is not a number")),
            }
        };
        let infinite = matches!(t, "infinity" | "-infinity");
        Ok(match self {
            Self::Bool => match t {
                "t" => Value::Bool(true),
                "f" => Value::Bool(false),
                _ => return Err(format!("`{t}` is not a boolean")),
            },
            Self::Int2 | Self::Int4 | Self::Int8 => Value::Int(int()?),
            Self::Oid => Value::UInt(t.parse().map_err(|_| format!("`{t}` is not an oid"))?),
            Self::Float4 => Value::Float(match t {
                "NaN" => f32::NAN,
                "Infinity" => f32::INFINITY,
                "-Infinity" => f32::NEG_INFINITY,
                _ => t.parse().map_err(|_| format!("`{t}` is not a number"))?,
            }),
            Self::Float8 => Value::Double(float(t)?),
            Self::Text | Self::Uuid => Value::Text(t.to_string()),
            Self::Numeric => return self.decode(raw),
            Self::Json | Self::Jsonb => Value::Json(t.to_string()),
            Self::Bytea => {
                let hex = t
                    .strip_prefix("\\x")
                    .ok_or_else(|| "bytea not in hex form".to_string())?;
                if hex.len() % 2 != 0 {
                    return Err("odd hex digits in bytea".into());
                }
                let mut out = Vec::with_capacity(hex.len() / 2);
                for pair in hex.as_bytes().chunks(2) {
                    let s = std::str::from_utf8(pair).map_err(|_| "bad hex".to_string())?;
                    out.push(u8::from_str_radix(s, 16).map_err(|_| "bad hex".to_string())?);
                }
                Value::Bytes(out)
            }
            Self::Date | Self::Timestamp | Self::TimestampTz if infinite => {
                Value::Text(t.to_string())
            }
            Self::Date => Value::Date(
                t.parse::<Date>()
                    .ok()
                    .filter(Date::is_valid)
                    .ok_or_else(|| "date outside years 1-9999".to_string())?,
            ),
            Self::Timestamp | Self::TimestampTz => {
                let local = if self == Self::TimestampTz {
                    t.strip_suffix("+00")
                        .ok_or_else(|| format!("timestamptz `{t}` not in UTC"))?
                } else {
                    t
                };
                let d = local
                    .parse::<DateTime>()
                    .ok()
                    .filter(|d| d.date.is_valid())
                    .ok_or_else(|| "timestamp outside years 1-9999".to_string())?;
                if self == Self::Timestamp {
                    Value::DateTime(d)
                } else {
                    Value::Timestamp(d)
                }
            }
            Self::Time => Value::Time(
                t.parse::<Duration>()
                    .map_err(|_| format!("`{t}` is not a time"))?,
            ),
            Self::Bits => {
                let len = u8::try_from(t.len())
                    .ok()
                    .filter(|l| (1..=64).contains(l))
                    .ok_or_else(|| format!("a bit string of {} bits", t.len()))?;
                let mut bits = 0u64;
                for c in t.bytes() {
                    let bit = match c {
                        b'0' => 0,
                        b'1' => 1,
                        _ => return Err("bad bit string".into()),
                    };
                    bits = (bits << 1) | bit;
                }
                Value::Bits(
                    BitString::new(len, bits).ok_or_else(|| "invalid bit string".to_string())?,
                )
            }
        })
    }
}

fn date(days: i32) -> std::result::Result<Date, String> {
    Date::from_days_since_unix_epoch(i64::from(days) + PG_EPOCH_DAYS)
        .filter(Date::is_valid)
        .ok_or_else(|| "date outside years 1-9999".to_string())
}

fn datetime(micros: i64) -> std::result::Result<DateTime, String> {
    micros
        .checked_add(PG_EPOCH_MICROS)
        .and_then(DateTime::from_micros_since_unix_epoch)
        .filter(|d| d.date.is_valid())
        .ok_or_else(|| "timestamp outside years 1-9999".to_string())
}

/// An incremental parser of binary `COPY` output: takes the data as it arrives in pieces
/// and yields whole rows.
#[derive(Debug, Default)]
pub(crate) struct CopyParser {
    buf: BytesMut,
    header_done: bool,
    finished: bool,
}

/// The binary `COPY` signature.
const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

impl CopyParser {
    /// Appends a piece of data.
    pub(crate) fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete row's fields (`None` for NULL), or `None` when more data is
    /// needed or the trailer was read.
    pub(crate) fn next_row(&mut self) -> Result<Option<Vec<Option<Vec<u8>>>>> {
        if self.finished {
            return Ok(None);
        }
        if !self.header_done {
            if self.buf.len() < SIGNATURE.len() + 8 {
                return Ok(None);
            }
            if &self.buf[..SIGNATURE.len()] != SIGNATURE {
                return Err(Error::new(
                    ErrorKind::Database,
                    "binary copy output has no signature",
                ));
            }
            let ext = u32::from_be_bytes([self.buf[15], self.buf[16], self.buf[17], self.buf[18]])
                as usize;
            if self.buf.len() < 19 + ext {
                return Ok(None);
            }
            self.buf.advance(19 + ext);
            self.header_done = true;
        }
        if self.buf.len() < 2 {
            return Ok(None);
        }
        let count = i16::from_be_bytes([self.buf[0], self.buf[1]]);
        if count == -1 {
            self.finished = true;
            return Ok(None);
        }
        let count = usize::try_from(count)
            .map_err(|_| Error::new(ErrorKind::Database, "bad field count in copy output"))?;
        // Find the row's end before taking anything.
        let mut at = 2;
        for _ in 0..count {
            if self.buf.len() < at + 4 {
                return Ok(None);
            }
            let len = i32::from_be_bytes([
                self.buf[at],
                self.buf[at + 1],
                self.buf[at + 2],
                self.buf[at + 3],
            ]);
            at += 4 + usize::try_from(len).unwrap_or(0);
            if self.buf.len() < at {
                return Ok(None);
            }
        }
        let mut row = self.buf.split_to(at);
        row.advance(2);
        let mut fields = Vec::with_capacity(count);
        for _ in 0..count {
            let len = row.get_i32();
            if len < 0 {
                fields.push(None);
            } else {
                let len = usize::try_from(len).unwrap_or(0);
                fields.push(Some(row.split_to(len).to_vec()));
            }
        }
        Ok(Some(fields))
    }

    /// Whether the trailer was read.
    #[cfg(test)]
    pub(crate) fn is_finished(&self) -> bool {
        self.finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rows_split_anywhere() {
        let mut data = SIGNATURE.to_vec();
        data.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        // Row: (int4 7, NULL)
        data.extend_from_slice(&[0, 2, 0, 0, 0, 4, 0, 0, 0, 7, 0xff, 0xff, 0xff, 0xff]);
        data.extend_from_slice(&[0xff, 0xff]);
        for split in 0..data.len() {
            let mut p = CopyParser::default();
            p.push(&data[..split]);
            let mut rows = Vec::new();
            while let Some(r) = p.next_row().unwrap() {
                rows.push(r);
            }
            p.push(&data[split..]);
            while let Some(r) = p.next_row().unwrap() {
                rows.push(r);
            }
            assert!(p.is_finished());
            assert_eq!(rows, vec![vec![Some(vec![0, 0, 0, 7]), None]]);
        }
    }

    #[test]
    fn text_forms_decode_as_the_binary_forms_do() {
        let cases: [(Decoder, &[u8], &[u8]); 9] = [
            (Decoder::Int2, b"-32768", &(-32768i16).to_be_bytes()),
            (Decoder::Date, b"2000-01-01", &0i32.to_be_bytes()),
            (Decoder::Date, b"infinity", &i32::MAX.to_be_bytes()),
            (
                Decoder::TimestampTz,
                b"1970-01-01 00:00:00+00",
                &(-PG_EPOCH_MICROS).to_be_bytes(),
            ),
            (
                Decoder::Timestamp,
                b"2000-01-01 00:00:00.000001",
                &1i64.to_be_bytes(),
            ),
            (Decoder::Bits, b"101", &[0, 0, 0, 3, 0b1010_0000]),
            (Decoder::Bytea, b"\\x00ff", &[0, 255]),
            (Decoder::Bool, b"t", &[1]),
            (Decoder::Float8, b"0.1", &0.1f64.to_be_bytes()),
        ];
        for (decoder, text, binary) in cases {
            assert_eq!(
                decoder.decode_text(text),
                decoder.decode(binary),
                "{decoder:?} {text:?}"
            );
        }
        assert_eq!(
            Decoder::Numeric.decode_text(b"-Infinity"),
            Ok(Value::Text("-Infinity".into()))
        );
        assert!(Decoder::Date.decode_text(b"0044-03-15 BC").is_err());
        assert!(Decoder::TimestampTz
            .decode_text(b"2000-01-01 00:00:00+02")
            .is_err());
        assert!(matches!(Decoder::Float4.decode_text(b"NaN"), Ok(Value::Float(f)) if f.is_nan()));
    }

    #[test]
    fn decodes_edges() {
        assert_eq!(
            Decoder::Int2.decode(&(-32768i16).to_be_bytes()),
            Ok(Value::Int(-32768))
        );
        assert_eq!(
            Decoder::Date.decode(&0i32.to_be_bytes()),
            Ok(Value::Date("2000-01-01".parse().unwrap()))
        );
        assert_eq!(
            Decoder::Date.decode(&i32::MAX.to_be_bytes()),
            Ok(Value::Text("infinity".into()))
        );
        assert_eq!(
            Decoder::TimestampTz.decode(&i64::MIN.to_be_bytes()),
            Ok(Value::Text("-infinity".into()))
        );
        assert_eq!(
            Decoder::TimestampTz.decode(&(-PG_EPOCH_MICROS).to_be_bytes()),
            Ok(Value::Timestamp("1970-01-01 00:00:00".parse().unwrap()))
        );
        assert_eq!(
            Decoder::Numeric.decode(b"NaN"),
            Ok(Value::Text("NaN".into()))
        );
        assert!(Decoder::Numeric.decode(b"1e5").is_err());
        assert_eq!(
            Decoder::Bits.decode(&[0, 0, 0, 3, 0b1010_0000]),
            Ok(Value::Bits(BitString::new(3, 0b101).unwrap()))
        );
        assert_eq!(
            Decoder::Jsonb.decode(b"\x01{}"),
            Ok(Value::Json("{}".into()))
        );
    }
}
