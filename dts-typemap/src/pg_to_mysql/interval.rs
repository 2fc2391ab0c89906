//! PostgreSQL intervals in their `postgres` style text form.

/// An interval's parts: PostgreSQL keeps months, days and microseconds apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IntervalParts {
    /// Months (years × 12 + months).
    pub months: i64,
    /// Days.
    pub days: i64,
    /// Microseconds of the time part.
    pub micros: i64,
}

/// Parses an interval as PostgreSQL prints it with `IntervalStyle = postgres` (the source's
/// pinned setting): `1 year 2 mons -3 days +04:05:06.5`, `-00:00:00.01`, `3 mons`.
pub fn parse_interval(text: &str) -> Option<IntervalParts> {
    let mut out = IntervalParts::default();
    let mut words = text.split_whitespace().peekable();
    while let Some(word) = words.next() {
        if word.contains(':') {
            out.micros = out.micros.checked_add(time_micros(word)?)?;
            continue;
        }
        let n: i64 = word.strip_prefix('+').unwrap_or(word).parse().ok()?;
        let unit = words.next()?;
        match unit {
            "year" | "years" => out.months = out.months.checked_add(n.checked_mul(12)?)?,
            "mon" | "mons" => out.months = out.months.checked_add(n)?,
            "day" | "days" => out.days = out.days.checked_add(n)?,
            _ => return None,
        }
    }
    Some(out)
}

/// `[+-]H+:MM:SS[.ffffff]` in microseconds.
fn time_micros(word: &str) -> Option<i64> {
    let (neg, body) = match word.as_bytes().first()? {
        b'-' => (true, &word[1..]),
        b'+' => (false, &word[1..]),
        _ => (false, word),
    };
    let (hms, frac) = body.split_once('.').unwrap_or((body, ""));
    let mut it = hms.split(':');
    let h: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let s: i64 = it.next()?.parse().ok()?;
    if it.next().is_some() || frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let micro: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").parse().ok()?
    };
    let total = h
        .checked_mul(3_600_000_000)?
        .checked_add(m * 60_000_000 + s * 1_000_000 + micro)?;
    Some(if neg { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_postgres_style() {
        let p = |t: &str| parse_interval(t).unwrap();
        assert_eq!(p("00:00:00"), IntervalParts::default());
        assert_eq!(
            p("1 day 02:03:04.56"),
            IntervalParts {
                months: 0,
                days: 1,
                micros: 7_384_560_000
            }
        );
        assert_eq!(
            p("-1 days +00:00:01"),
            IntervalParts {
                months: 0,
                days: -1,
                micros: 1_000_000
            }
        );
        assert_eq!(p("1 year 2 mons").months, 14);
        assert_eq!(p("-00:00:00.01").micros, -10_000);
        assert_eq!(p("838:59:59").micros, 3_020_399_000_000);
        assert!(parse_interval("1 fortnight").is_none());
        assert!(parse_interval("P1D").is_none());
    }
}
