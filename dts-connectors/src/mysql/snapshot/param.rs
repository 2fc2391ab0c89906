//! Values as prepared-statement parameters.

use dts_core::Value;

/// Converts a [`Value`] to a prepared-statement parameter that the server compares exactly
/// with a column of the type the value came from: integers as integers, decimals as their
/// text (compare them through `CAST(? AS DECIMAL(p,s))`), text and bytes as strings, dates
/// and times as temporal values, bit strings as their unsigned number.
pub fn mysql_param(value: &Value) -> mysql_async::Value {
    use mysql_async::Value as M;
    match value {
        Value::Null => M::NULL,
        Value::Bool(b) => M::Int(i64::from(*b)),
        Value::Int(n) => M::Int(*n),
        Value::UInt(n) => M::UInt(*n),
        Value::Float(f) => M::Float(*f),
        Value::Double(f) => M::Double(*f),
        Value::Decimal(d) => M::Bytes(d.as_str().as_bytes().to_vec()),
        Value::Text(s) | Value::Json(s) => M::Bytes(s.as_bytes().to_vec()),
        Value::Bytes(b) => M::Bytes(b.clone()),
        Value::Date(d) => M::Date(d.year, d.month, d.day, 0, 0, 0, 0),
        Value::DateTime(dt) | Value::Timestamp(dt) => M::Date(
            dt.date.year,
            dt.date.month,
            dt.date.day,
            dt.hour,
            dt.minute,
            dt.second,
            dt.micro,
        ),
        Value::Time(d) => {
            let abs = d.micros.unsigned_abs();
            let micro = u32::try_from(abs % 1_000_000).unwrap_or(0);
            let secs = abs / 1_000_000;
            let part = |x: u64| u8::try_from(x).unwrap_or(u8::MAX);
            M::Time(
                d.micros < 0,
                u32::try_from(secs / 86_400).unwrap_or(u32::MAX),
                part(secs / 3600 % 24),
                part(secs / 60 % 60),
                part(secs % 60),
                micro,
            )
        }
        Value::Year(y) => M::UInt(u64::from(*y)),
        Value::Bits(b) => M::UInt(b.bits),
    }
}
