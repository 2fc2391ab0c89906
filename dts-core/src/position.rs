//! Log positions: where a snapshot was taken and where change capture resumes.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A position in a source's change log.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Position {
    /// A MySQL/MariaDB binlog coordinate, with the GTID state at that point when known.
    Binlog {
        /// Binlog file name (`mysql-bin.000003`).
        file: String,
        /// Byte offset of the next event in that file.
        offset: u64,
        /// The executed GTID set (MySQL) or GTID position (MariaDB) at that point.
        gtid: Option<String>,
    },
    /// A PostgreSQL WAL location; in JSON `{"kind": "lsn", "lsn": "0/16B3748"}` (a tagged
    /// enum's variant must be a map).
    Lsn(#[serde(with = "lsn_field")] Lsn),
}

/// [`Position::Lsn`]'s value as the map `{"lsn": "X/Y"}`.
mod lsn_field {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Lsn;

    #[derive(Serialize, Deserialize)]
    struct Field {
        lsn: String,
    }

    pub(super) fn serialize<S: Serializer>(lsn: &Lsn, s: S) -> Result<S::Ok, S::Error> {
        Field {
            lsn: lsn.to_string(),
        }
        .serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Lsn, D::Error> {
        let field = Field::deserialize(d)?;
        field.lsn.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Binlog { file, offset, gtid } => {
                write!(f, "{file}:{offset}")?;
                if let Some(g) = gtid.as_deref().filter(|g| !g.is_empty()) {
                    write!(f, " (gtid {g})")?;
                }
                Ok(())
            }
            Position::Lsn(lsn) => lsn.fmt(f),
        }
    }
}

impl Position {
    /// Orders two positions of the same log: binlog positions by file sequence number and
    /// offset, LSNs numerically. `None` for positions of different kinds or unparsable file
    /// names.
    pub fn log_cmp(&self, other: &Position) -> Option<std::cmp::Ordering> {
        match (self, other) {
            (
                Position::Binlog {
                    file: f1,
                    offset: o1,
                    ..
                },
                Position::Binlog {
                    file: f2,
                    offset: o2,
                    ..
                },
            ) => {
                if f1 == f2 {
                    return Some(o1.cmp(o2));
                }
                let seq = |f: &str| -> Option<u64> { f.rsplit('.').next()?.parse().ok() };
                let (s1, s2) = (seq(f1)?, seq(f2)?);
                Some(s1.cmp(&s2).then(o1.cmp(o2)))
            }
            (Position::Lsn(a), Position::Lsn(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

/// A PostgreSQL log sequence number, printed as `X/Y`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl std::str::FromStr for Lsn {
    type Err = crate::value::ParseValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parse = || -> Option<u64> {
            let (hi, lo) = s.split_once('/')?;
            let hi = u64::from_str_radix(hi, 16).ok()?;
            let lo = u64::from_str_radix(lo, 16).ok()?;
            (hi <= 0xFFFF_FFFF && lo <= 0xFFFF_FFFF).then_some(hi << 32 | lo)
        };
        parse()
            .map(Lsn)
            .ok_or_else(|| crate::value::ParseValueError::new("lsn", s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_through_json() {
        for p in [
            Position::Lsn("16/B374D848".parse().unwrap()),
            Position::Binlog {
                file: "b.000001".into(),
                offset: 4,
                gtid: None,
            },
        ] {
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(
                serde_json::from_str::<Position>(&json).unwrap(),
                p,
                "{json}"
            );
        }
        assert_eq!(
            serde_json::to_string(&Position::Lsn(Lsn(1))).unwrap(),
            r#"{"kind":"lsn","lsn":"0/1"}"#
        );
    }

    #[test]
    fn lsn_round_trips() {
        let l: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(l.0, 0x16_B374_D848);
        assert_eq!(l.to_string(), "16/B374D848");
        assert!("zz".parse::<Lsn>().is_err());
    }

    #[test]
    fn binlog_positions_order_by_file_then_offset() {
        let p = |f: &str, o| Position::Binlog {
            file: f.into(),
            offset: o,
            gtid: None,
        };
        use std::cmp::Ordering::*;
        assert_eq!(p("b.000002", 4).log_cmp(&p("b.000001", 900)), Some(Greater));
        assert_eq!(p("b.000002", 4).log_cmp(&p("b.000002", 5)), Some(Less));
        assert_eq!(p("b.000010", 4).log_cmp(&p("b.000009", 5)), Some(Greater));
        assert_eq!(p("b.x", 4).log_cmp(&p("b.000009", 5)), None);
        assert_eq!(p("b.000001", 4).log_cmp(&Position::Lsn(Lsn(1))), None);
    }

    #[test]
    fn positions_serialise_with_a_tag() {
        let p = Position::Binlog {
            file: "mysql-bin.000001".into(),
            offset: 328,
            gtid: Some("0-1-5".into()),
        };
        assert_eq!(p.to_string(), "mysql-bin.000001:328 (gtid 0-1-5)");
    }
}
