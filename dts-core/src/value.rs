//! The closed, lossless value model every connector reads into and writes from.
//!
//! A [`Value`] holds any value a supported engine can store without rounding, clamping or
//! re-encoding: exact decimals of any precision (kept as validated text), the full `u64`
//! range, signed durations beyond 24 hours, zero dates, bit strings, raw bytes and JSON text.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One column value.
///
/// The enum is closed on purpose: converters match on it exhaustively, so adding a variant is
/// a breaking change that every converter must handle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed integer of any width up to 64 bits.
    Int(i64),
    /// An unsigned integer of any width up to 64 bits.
    UInt(u64),
    /// A single-precision float, bit-exact.
    Float(f32),
    /// A double-precision float, bit-exact.
    Double(f64),
    /// An exact decimal number of any precision.
    Decimal(Decimal),
    /// Text, always UTF-8.
    Text(String),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// A calendar date; may be a MySQL zero or partial-zero date.
    Date(Date),
    /// A wall-clock date and time without time zone.
    DateTime(DateTime),
    /// An instant, expressed in UTC.
    Timestamp(DateTime),
    /// A signed duration or time of day (MySQL `TIME` reaches ±838 hours).
    Time(Duration),
    /// A year (MySQL `YEAR`), 0 or 1901..=2155.
    Year(u16),
    /// A JSON document as text; numbers are kept exactly as written.
    Json(String),
    /// A bit string of 1..=64 bits.
    Bits(BitString),
}

impl Value {
    /// Whether this is SQL `NULL`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// A short name of the variant, for error messages (never the value itself).
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::UInt(_) => "uint",
            Value::Float(_) => "float",
            Value::Double(_) => "double",
            Value::Decimal(_) => "decimal",
            Value::Text(_) => "text",
            Value::Bytes(_) => "bytes",
            Value::Date(_) => "date",
            Value::DateTime(_) => "datetime",
            Value::Timestamp(_) => "timestamp",
            Value::Time(_) => "time",
            Value::Year(_) => "year",
            Value::Json(_) => "json",
            Value::Bits(_) => "bits",
        }
    }

    /// An estimate of the memory this value holds, in bytes, for batch size accounting.
    pub fn size_hint(&self) -> usize {
        match self {
            Value::Text(s) | Value::Json(s) => s.len(),
            Value::Bytes(b) => b.len(),
            Value::Decimal(d) => d.as_str().len(),
            _ => 8,
        }
    }
}

impl Value {
    /// A short display of the value for messages that name a row, such as a key in an error:
    /// text cut to 40 characters and bytes to 20, both quoted (`'abc'`, `x'00ff'`); numbers,
    /// dates and times as written; other kinds (floats, JSON, bit strings) only by their
    /// [`kind`](Value::kind).
    ///
    /// ```
    /// use dts_core::Value;
    ///
    /// assert_eq!(Value::Int(7).short().to_string(), "7");
    /// assert_eq!(Value::Text("x".repeat(50)).short().to_string(), format!("'{}'", "x".repeat(40)));
    /// assert_eq!(Value::Bytes(vec![0, 255]).short().to_string(), "x'00ff'");
    /// assert_eq!(Value::Json("{}".into()).short().to_string(), "json");
    /// ```
    pub fn short(&self) -> Short<'_> {
        Short(self)
    }
}

/// The short display of a [`Value`] for messages, made by [`Value::short`].
#[derive(Debug, Clone, Copy)]
pub struct Short<'a>(&'a Value);

impl fmt::Display for Short<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Value::Text(s) => {
                f.write_str("'")?;
                for c in s.chars().take(40) {
                    write!(f, "{c}")?;
                }
                f.write_str("'")
            }
            Value::Bytes(b) => {
                f.write_str("x'")?;
                for x in b.iter().take(20) {
                    write!(f, "{x:02x}")?;
                }
                f.write_str("'")
            }
            Value::Null => f.write_str("NULL"),
            Value::Int(i) => write!(f, "{i}"),
            Value::UInt(u) => write!(f, "{u}"),
            Value::Decimal(d) => write!(f, "{d}"),
            Value::Date(d) => write!(f, "'{d}'"),
            Value::DateTime(d) | Value::Timestamp(d) => write!(f, "'{d}'"),
            Value::Time(t) => write!(f, "'{t}'"),
            Value::Year(y) => write!(f, "{y}"),
            Value::Bool(b) => write!(f, "{b}"),
            other => f.write_str(other.kind()),
        }
    }
}

/// An error parsing one of the value types from text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} literal `{text}`")]
pub struct ParseValueError {
    kind: &'static str,
    text: String,
}

impl ParseValueError {
    pub(crate) fn new(kind: &'static str, text: &str) -> Self {
        // Keep error text short: a literal is at most a few dozen characters.
        let text = text.chars().take(80).collect();
        Self { kind, text }
    }
}

/// An exact decimal number, stored as normalised text: an optional `-`, at least one integer
/// digit, and an optional `.` followed by fraction digits. Trailing fraction zeros are kept,
/// because they carry the scale (`1.50` in a `DECIMAL(5,2)` column).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Decimal(String);

impl Decimal {
    /// The decimal as text, e.g. `-12.500`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the number is negative (and not zero).
    pub fn is_negative(&self) -> bool {
        self.0.starts_with('-')
    }

    /// The integer digits, without sign.
    pub fn integer_digits(&self) -> &str {
        let s = self.0.strip_prefix('-').unwrap_or(&self.0);
        match s.bytes().position(|b| b == b'.') {
            Some(dot) => &s[..dot],
            None => s,
        }
    }

    /// The fraction digits (possibly empty).
    pub fn fraction_digits(&self) -> &str {
        match self.0.bytes().position(|b| b == b'.') {
            Some(dot) => &self.0[dot + 1..],
            None => "",
        }
    }

    /// The scale: the number of fraction digits.
    pub fn scale(&self) -> usize {
        self.fraction_digits().len()
    }
}

impl FromStr for Decimal {
    type Err = ParseValueError;

    /// Parses `[+-]digits[.digits]`; a leading `.` or trailing `.` is accepted. Exponents,
    /// `NaN` and infinities are rejected (MySQL decimals have none).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseValueError::new("decimal", s);
        let t = s.trim();
        let (neg, body) = match t.as_bytes().first() {
            Some(b'-') => (true, &t[1..]),
            Some(b'+') => (false, &t[1..]),
            _ => (false, t),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        if (int.is_empty() && frac.is_empty())
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(err());
        }
        let int = int.trim_start_matches('0');
        let int = if int.is_empty() { "0" } else { int };
        let zero = int == "0" && frac.bytes().all(|b| b == b'0');
        let mut out = String::with_capacity(t.len() + 1);
        if neg && !zero {
            out.push('-');
        }
        out.push_str(int);
        if !frac.is_empty() {
            out.push('.');
            out.push_str(frac);
        }
        Ok(Decimal(out))
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A calendar date. MySQL allows zero parts (`0000-00-00`, `2024-00-15`), so the fields are
/// not validated against the calendar here; [`Date::is_valid`] tells whether they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Date {
    /// Year, 0..=9999.
    pub year: u16,
    /// Month, 1..=12, or 0 in a MySQL zero date.
    pub month: u8,
    /// Day of month, 1..=31, or 0 in a MySQL zero date.
    pub day: u8,
}

impl Date {
    /// A date from its parts, without calendar validation.
    pub const fn new(year: u16, month: u8, day: u8) -> Self {
        Self { year, month, day }
    }

    /// Whether any part is zero (`0000-00-00`, `2024-00-00`, `2024-05-00`): PostgreSQL has no
    /// such dates.
    pub fn has_zero_part(&self) -> bool {
        self.month == 0 || self.day == 0
    }

    /// Whether this is a real calendar date (year 1 or later).
    pub fn is_valid(&self) -> bool {
        self.year >= 1
            && (1..=12).contains(&self.month)
            && self.day >= 1
            && self.day <= days_in_month(self.year, self.month)
    }

    /// Days since 1970-01-01 (negative before), for a valid date.
    pub fn days_since_unix_epoch(&self) -> i64 {
        // Howard Hinnant's days_from_civil.
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let m = i64::from(self.month);
        let d = i64::from(self.day);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The date `days` after 1970-01-01.
    pub fn from_days_since_unix_epoch(days: i64) -> Option<Self> {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Some(Self {
            year: u16::try_from(year).ok()?,
            month: u8::try_from(month).ok()?,
            day: u8::try_from(day).ok()?,
        })
    }
}

fn is_leap(year: u16) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

fn parse_num<T: FromStr>(s: &str, kind: &'static str, whole: &str) -> Result<T, ParseValueError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseValueError::new(kind, whole));
    }
    s.parse().map_err(|_| ParseValueError::new(kind, whole))
}

impl FromStr for Date {
    type Err = ParseValueError;

    /// Parses `YYYY-MM-DD` (zero parts allowed).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut it = s.splitn(3, '-');
        let (Some(y), Some(m), Some(d)) = (it.next(), it.next(), it.next()) else {
            return Err(ParseValueError::new("date", s));
        };
        let date = Date {
            year: parse_num(y, "date", s)?,
            month: parse_num(m, "date", s)?,
            day: parse_num(d, "date", s)?,
        };
        if date.year > 9999 || date.month > 12 || date.day > 31 {
            return Err(ParseValueError::new("date", s));
        }
        Ok(date)
    }
}

/// A date and a time of day with microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DateTime {
    /// The date part.
    pub date: Date,
    /// Hour, 0..=23.
    pub hour: u8,
    /// Minute, 0..=59.
    pub minute: u8,
    /// Second, 0..=59.
    pub second: u8,
    /// Microsecond, 0..=999_999.
    pub micro: u32,
}

impl DateTime {
    /// Microseconds since 1970-01-01 00:00:00, for a valid date.
    pub fn micros_since_unix_epoch(&self) -> i64 {
        let secs = self.date.days_since_unix_epoch() * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second);
        secs * 1_000_000 + i64::from(self.micro)
    }

    /// The date-time `micros` microseconds after 1970-01-01 00:00:00.
    pub fn from_micros_since_unix_epoch(micros: i64) -> Option<Self> {
        let days = micros.div_euclid(86_400_000_000);
        let rest = micros.rem_euclid(86_400_000_000);
        let secs = rest / 1_000_000;
        Some(Self {
            date: Date::from_days_since_unix_epoch(days)?,
            hour: u8::try_from(secs / 3600).ok()?,
            minute: u8::try_from(secs / 60 % 60).ok()?,
            second: u8::try_from(secs % 60).ok()?,
            micro: u32::try_from(rest % 1_000_000).ok()?,
        })
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:02}:{:02}:{:02}",
            self.date, self.hour, self.minute, self.second
        )?;
        if self.micro != 0 {
            write!(f, ".{:06}", self.micro)?;
        }
        Ok(())
    }
}

fn parse_fraction(frac: &str, kind: &'static str, whole: &str) -> Result<u32, ParseValueError> {
    if frac.len() > 6 {
        return Err(ParseValueError::new(kind, whole));
    }
    let digits: u32 = parse_num(frac, kind, whole)?;
    let pad = 6 - u32::try_from(frac.len()).unwrap_or(6);
    Ok(digits * 10u32.pow(pad))
}

impl FromStr for DateTime {
    type Err = ParseValueError;

    /// Parses `YYYY-MM-DD HH:MM:SS[.ffffff]` (a `T` separator is accepted).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseValueError::new("datetime", s);
        let (d, t) = s.split_once([' ', 'T']).ok_or_else(err)?;
        let date: Date = d.parse().map_err(|_| err())?;
        let (hms, frac) = t.split_once('.').unwrap_or((t, ""));
        let mut it = hms.splitn(3, ':');
        let (Some(h), Some(m), Some(sec)) = (it.next(), it.next(), it.next()) else {
            return Err(err());
        };
        let dt = DateTime {
            date,
            hour: parse_num(h, "datetime", s)?,
            minute: parse_num(m, "datetime", s)?,
            second: parse_num(sec, "datetime", s)?,
            micro: if frac.is_empty() {
                0
            } else {
                parse_fraction(frac, "datetime", s)?
            },
        };
        if dt.hour > 23 || dt.minute > 59 || dt.second > 59 {
            return Err(err());
        }
        Ok(dt)
    }
}

/// A signed duration with microsecond precision, such as a MySQL `TIME` value
/// (`-838:59:59.000000` ..= `838:59:59.000000`) or a PostgreSQL `interval` of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Duration {
    /// Signed total microseconds.
    pub micros: i64,
}

impl Duration {
    /// A duration of `micros` microseconds.
    pub const fn from_micros(micros: i64) -> Self {
        Self { micros }
    }

    /// Whether the value is a time of day PostgreSQL's `time` can hold (`00:00:00` ..=
    /// `24:00:00`).
    pub fn is_time_of_day(&self) -> bool {
        (0..=86_400_000_000).contains(&self.micros)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.micros < 0 { "-" } else { "" };
        let abs = self.micros.unsigned_abs();
        let secs = abs / 1_000_000;
        let micro = abs % 1_000_000;
        write!(
            f,
            "{sign}{:02}:{:02}:{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )?;
        if micro != 0 {
            write!(f, ".{micro:06}")?;
        }
        Ok(())
    }
}

impl FromStr for Duration {
    type Err = ParseValueError;

    /// Parses `[-]H+:MM:SS[.ffffff]`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseValueError::new("time", s);
        let (neg, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (hms, frac) = body.split_once('.').unwrap_or((body, ""));
        let mut it = hms.splitn(3, ':');
        let (Some(h), Some(m), Some(sec)) = (it.next(), it.next(), it.next()) else {
            return Err(err());
        };
        let h: i64 = parse_num(h, "time", s)?;
        let m: i64 = parse_num(m, "time", s)?;
        let sec: i64 = parse_num(sec, "time", s)?;
        if m > 59 || sec > 59 {
            return Err(err());
        }
        let micro = if frac.is_empty() {
            0
        } else {
            i64::from(parse_fraction(frac, "time", s)?)
        };
        let total = h
            .checked_mul(3_600_000_000)
            .and_then(|v| v.checked_add(m * 60_000_000 + sec * 1_000_000 + micro))
            .ok_or_else(err)?;
        Ok(Duration {
            micros: if neg { -total } else { total },
        })
    }
}

/// A bit string of 1..=64 bits (MySQL `BIT(n)`); bit `len-1` is the most significant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BitString {
    /// Number of bits, 1..=64.
    pub len: u8,
    /// The bits, right-aligned.
    pub bits: u64,
}

impl BitString {
    /// A bit string of `len` bits; `None` when `len` is out of range or `bits` has bits set
    /// beyond `len`.
    pub fn new(len: u8, bits: u64) -> Option<Self> {
        if len == 0 || len > 64 || (len < 64 && bits >> len != 0) {
            return None;
        }
        Some(Self { len, bits })
    }
}

impl fmt::Display for BitString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for i in (0..self.len).rev() {
            f.write_str(if self.bits >> i & 1 == 1 { "1" } else { "0" })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_normalises_and_keeps_scale() {
        let d: Decimal = "-000123.4500".parse().unwrap();
        assert_eq!(d.as_str(), "-123.4500");
        assert_eq!(d.scale(), 4);
        assert_eq!("-0.00".parse::<Decimal>().unwrap().as_str(), "0.00");
        assert_eq!(".5".parse::<Decimal>().unwrap().as_str(), "0.5");
        let big = format!("{}.{}", "9".repeat(35), "9".repeat(30));
        assert_eq!(big.parse::<Decimal>().unwrap().as_str(), big);
        for bad in ["", "-", "1e5", "NaN", "1.2.3", "12a", "."] {
            assert!(bad.parse::<Decimal>().is_err(), "{bad}");
        }
    }

    #[test]
    fn dates_round_trip_through_epoch_days() {
        for s in [
            "1970-01-01",
            "2000-02-29",
            "0001-01-01",
            "9999-12-31",
            "1900-03-01",
        ] {
            let d: Date = s.parse().unwrap();
            assert!(d.is_valid());
            let back = Date::from_days_since_unix_epoch(d.days_since_unix_epoch()).unwrap();
            assert_eq!(back, d);
            assert_eq!(back.to_string(), s);
        }
        assert_eq!(Date::new(2000, 1, 1).days_since_unix_epoch(), 10_957);
        let zero: Date = "0000-00-00".parse().unwrap();
        assert!(zero.has_zero_part() && !zero.is_valid());
        assert!(!Date::new(2023, 2, 29).is_valid());
    }

    #[test]
    fn datetime_parses_fractions_and_round_trips() {
        let dt: DateTime = "2024-05-06 07:08:09.5".parse().unwrap();
        assert_eq!(dt.micro, 500_000);
        assert_eq!(dt.to_string(), "2024-05-06 07:08:09.500000");
        let m = dt.micros_since_unix_epoch();
        assert_eq!(DateTime::from_micros_since_unix_epoch(m).unwrap(), dt);
        assert!("2024-05-06 24:00:00".parse::<DateTime>().is_err());
    }

    #[test]
    fn durations_beyond_a_day_and_negative() {
        let t: Duration = "-838:59:59.000000".parse().unwrap();
        assert_eq!(t.micros, -(838 * 3600 + 59 * 60 + 59) * 1_000_000);
        assert_eq!(t.to_string(), "-838:59:59");
        let t: Duration = "25:00:00.000001".parse().unwrap();
        assert!(!t.is_time_of_day());
        assert_eq!(t.to_string(), "25:00:00.000001");
        assert!("24:00:00".parse::<Duration>().unwrap().is_time_of_day());
    }

    #[test]
    fn bit_strings_check_width() {
        assert_eq!(BitString::new(3, 0b101).unwrap().to_string(), "101");
        assert!(BitString::new(3, 0b1000).is_none());
        assert_eq!(
            BitString::new(64, u64::MAX).unwrap().to_string(),
            "1".repeat(64)
        );
        assert!(BitString::new(0, 0).is_none());
    }
}
