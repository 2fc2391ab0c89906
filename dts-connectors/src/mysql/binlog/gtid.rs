//! The GTID state at a binlog position: MariaDB's GTID position (the last GTID of each
//! replication domain, `0-1-42,1-2-7`) or MySQL's executed GTID set
//! (`3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::event::MySqlGtid;

/// The GTID state after the transactions read so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GtidState {
    /// Not known (a MySQL start position without a GTID set, or GTIDs off).
    Unknown,
    /// MariaDB: domain → (server id, sequence number) of the domain's last GTID.
    MariaDb(BTreeMap<u32, (u32, u64)>),
    /// MySQL: source (UUID, with `:tag` for tagged GTIDs) → sorted disjoint intervals.
    MySql(BTreeMap<String, Vec<(u64, u64)>>),
}

impl GtidState {
    /// Parses a MariaDB GTID position; `None` if malformed.
    pub fn parse_mariadb(s: &str) -> Option<Self> {
        let mut map = BTreeMap::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut it = part.splitn(3, '-');
            let domain = it.next()?.parse().ok()?;
            let server = it.next()?.parse().ok()?;
            let seq = it.next()?.parse().ok()?;
            map.insert(domain, (server, seq));
        }
        Some(GtidState::MariaDb(map))
    }

    /// Parses a MySQL GTID set (tags as MySQL 8.4 writes them); `None` if malformed.
    pub fn parse_mysql(s: &str) -> Option<Self> {
        let mut map: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
        let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        for part in compact.split(',').filter(|p| !p.is_empty()) {
            let mut it = part.split(':');
            let uuid = it.next()?.to_ascii_lowercase();
            let mut key = uuid.clone();
            for item in it {
                if item.starts_with(|c: char| c.is_ascii_digit()) {
                    let (a, b) = item.split_once('-').unwrap_or((item, item));
                    let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
                    if a > b {
                        return None;
                    }
                    add_interval(map.entry(key.clone()).or_default(), a, b);
                } else {
                    key = format!("{uuid}:{}", item.to_ascii_lowercase());
                }
            }
        }
        Some(GtidState::MySql(map))
    }

    /// Records a MariaDB GTID.
    pub fn add_mariadb(&mut self, domain: u32, server: u32, seq: u64) {
        match self {
            GtidState::MariaDb(map) => {
                map.insert(domain, (server, seq));
            }
            _ => {
                // Without the earlier state the position would claim other domains are
                // empty; keep it unknown.
            }
        }
    }

    /// Records a MySQL GTID.
    pub fn add_mysql(&mut self, gtid: &MySqlGtid) {
        if let GtidState::MySql(map) = self {
            add_interval(
                map.entry(gtid.source_key()).or_default(),
                gtid.gno,
                gtid.gno,
            );
        }
    }

    /// The state as text, in the server's own syntax; `None` when unknown.
    pub fn render(&self) -> Option<String> {
        let mut out = String::new();
        match self {
            GtidState::Unknown => return None,
            GtidState::MariaDb(map) => {
                for (domain, (server, seq)) in map {
                    if !out.is_empty() {
                        out.push(',');
                    }
                    let _ = write!(out, "{domain}-{server}-{seq}");
                }
            }
            GtidState::MySql(map) => {
                for (source, intervals) in map {
                    if !out.is_empty() {
                        out.push(',');
                    }
                    out.push_str(source);
                    for (a, b) in intervals {
                        if a == b {
                            let _ = write!(out, ":{a}");
                        } else {
                            let _ = write!(out, ":{a}-{b}");
                        }
                    }
                }
            }
        }
        Some(out)
    }
}

/// Adds `[a, b]` to sorted disjoint intervals, merging adjacent and overlapping ones.
fn add_interval(intervals: &mut Vec<(u64, u64)>, a: u64, b: u64) {
    intervals.push((a, b));
    intervals.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(intervals.len());
    for &(x, y) in intervals.iter() {
        match merged.last_mut() {
            Some(last) if x <= last.1.saturating_add(1) => last.1 = last.1.max(y),
            _ => merged.push((x, y)),
        }
    }
    *intervals = merged;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_positions_keep_the_last_gtid_per_domain() {
        let mut s = GtidState::parse_mariadb("0-1-5, 1-2-7").unwrap();
        s.add_mariadb(0, 3, 6);
        s.add_mariadb(2, 1, 1);
        assert_eq!(s.render().unwrap(), "0-3-6,1-2-7,2-1-1");
        assert_eq!(GtidState::parse_mariadb("").unwrap().render().unwrap(), "");
        assert!(GtidState::parse_mariadb("0-1").is_none());
    }

    #[test]
    fn mysql_sets_merge_intervals_and_keep_tags() {
        let uuid = "3E11FA47-71CA-11E1-9E33-C80AA9429562";
        let mut s = GtidState::parse_mysql(&format!("{uuid}:1-5:7,\n{uuid}:tag1:3")).unwrap();
        let lower = uuid.to_ascii_lowercase();
        let key = |gno| MySqlGtid {
            sid: parse_uuid(&lower),
            tag: None,
            gno,
        };
        s.add_mysql(&key(6));
        s.add_mysql(&key(9));
        assert_eq!(s.render().unwrap(), format!("{lower}:1-7:9,{lower}:tag1:3"));
        assert!(GtidState::parse_mysql("x:5-1").is_none());
        assert_eq!(GtidState::Unknown.render(), None);
    }

    fn parse_uuid(s: &str) -> [u8; 16] {
        let hex: String = s.chars().filter(|c| *c != '-').collect();
        let mut out = [0u8; 16];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }
}
