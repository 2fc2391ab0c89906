//! What change capture takes from binlog events beyond mysql_common's parsed events: the
//! event type codes it dispatches on, MariaDB's own events (GTID, GTID list), which
//! mysql_common does not know, and small views over mysql_common's events (the client
//! character set of a query, a rotate's target, the kind of a rows event).
//!
//! Layouts follow the replication protocol as MySQL and MariaDB document it; every parser
//! here is pure and runs on captured bytes in the tests.

use std::fmt;

use dts_core::SqlMode;
use mysql_async::binlog::events::{
    GtidEvent, QueryEvent, RotateEvent, RowsEventData, StatusVarVal,
};
use mysql_async::binlog::StatusVarKey;

/// Event type codes (the header's type byte).
pub(crate) mod kind {
    pub const QUERY: u8 = 2;
    pub const ROTATE: u8 = 4;
    pub const FORMAT_DESCRIPTION: u8 = 15;
    pub const XID: u8 = 16;
    pub const TABLE_MAP: u8 = 19;
    pub const WRITE_ROWS_V1: u8 = 23;
    pub const UPDATE_ROWS_V1: u8 = 24;
    pub const DELETE_ROWS_V1: u8 = 25;
    pub const INCIDENT: u8 = 26;
    pub const HEARTBEAT: u8 = 27;
    pub const WRITE_ROWS: u8 = 30;
    pub const UPDATE_ROWS: u8 = 31;
    pub const DELETE_ROWS: u8 = 32;
    pub const GTID: u8 = 33;
    pub const ANONYMOUS_GTID: u8 = 34;
    pub const XA_PREPARE: u8 = 38;
    pub const PARTIAL_UPDATE_ROWS: u8 = 39;
    pub const GTID_TAGGED: u8 = 42;
    // MariaDB's own events.
    pub const MARIADB_GTID: u8 = 162;
    pub const MARIADB_GTID_LIST: u8 = 163;
    pub const QUERY_COMPRESSED: u8 = 165;
    pub const ROWS_COMPRESSED_FIRST: u8 = 166;
    pub const ROWS_COMPRESSED_LAST: u8 = 171;
}

/// Header flag of events the server made up for the stream (fake rotate, …).
pub(crate) const FLAG_ARTIFICIAL: u16 = 0x20;

/// Why an event body could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed(pub &'static str);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Malformed {}

/// Result of a parser.
pub(crate) type Parse<T> = Result<T, Malformed>;

/// A little-endian reader over an event body.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn take(&mut self, n: usize) -> Parse<&'a [u8]> {
        if n > self.buf.len() {
            return Err(Malformed("event ends early"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// The bytes not read yet.
    pub fn rest(self) -> &'a [u8] {
        self.buf
    }

    pub fn u8(&mut self) -> Parse<u8> {
        Ok(self.take(1)?[0])
    }

    /// An unsigned little-endian integer of `n` (1..=8) bytes.
    pub fn uint(&mut self, n: usize) -> Parse<u64> {
        let b = self.take(n)?;
        Ok(le_uint(b))
    }

    pub fn u32(&mut self) -> Parse<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> Parse<u64> {
        self.uint(8)
    }

    /// A length-encoded integer.
    pub fn lenenc(&mut self) -> Parse<u64> {
        match self.u8()? {
            n @ 0..=0xfa => Ok(u64::from(n)),
            0xfc => self.uint(2),
            0xfd => self.uint(3),
            0xfe => self.uint(8),
            _ => Err(Malformed("invalid length-encoded integer")),
        }
    }
}

/// An unsigned little-endian integer of up to 8 bytes.
pub(crate) fn le_uint(b: &[u8]) -> u64 {
    b.iter().rev().fold(0u64, |acc, &x| acc << 8 | u64::from(x))
}

/// An unsigned big-endian integer of up to 8 bytes.
pub(crate) fn be_uint(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |acc, &x| acc << 8 | u64::from(x))
}

/// A MariaDB GTID event: the start of an event group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MariaGtid {
    pub domain: u32,
    pub seq: u64,
    pub flags: u8,
}

impl MariaGtid {
    /// The group is one statement without `BEGIN`/`COMMIT` (DDL and other implicitly
    /// committing statements).
    pub const FL_STANDALONE: u8 = 1;

    pub fn parse(body: &[u8]) -> Parse<Self> {
        let mut r = Reader::new(body);
        let seq = r.u64()?;
        let domain = r.u32()?;
        let flags = r.u8()?;
        Ok(Self { domain, seq, flags })
    }

    pub fn standalone(&self) -> bool {
        self.flags & Self::FL_STANDALONE != 0
    }
}

/// A MariaDB GTID list event: the binlog state (domain, server, sequence) when the file
/// was started.
pub(crate) fn parse_gtid_list(body: &[u8]) -> Parse<Vec<(u32, u32, u64)>> {
    let mut r = Reader::new(body);
    // The upper 4 bits carry flags.
    let count = r.u32()? & 0x0FFF_FFFF;
    let mut out = Vec::new();
    for _ in 0..count {
        let domain = r.u32()?;
        let server = r.u32()?;
        let seq = r.u64()?;
        out.push((domain, server, seq));
    }
    Ok(out)
}

/// A MySQL GTID: source UUID, optional tag (MySQL 8.4) and transaction number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MySqlGtid {
    pub sid: [u8; 16],
    pub tag: Option<String>,
    pub gno: u64,
}

impl MySqlGtid {
    /// The GTID of a MySQL GTID event, tagged (MySQL 8.4) or not, as mysql_common parses it.
    pub fn from_event(event: &GtidEvent) -> Self {
        Self {
            sid: event.sid(),
            tag: event.tag().map(ToString::to_string),
            gno: event.gno(),
        }
    }

    /// The UUID in its usual text form, with the tag after a colon when there is one.
    pub fn source_key(&self) -> String {
        let s = &self.sid;
        let mut out = String::with_capacity(48);
        for (i, b) in s.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                out.push('-');
            }
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        out
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `character_set_client` of the session that ran a query (a collation id), from the
/// `Q_CHARSET_CODE` status variable when it is logged. mysql_common walks the status
/// variables; it stops at codes it does not know (MariaDB's 128–130), which the server
/// writes after this one.
pub(crate) fn client_charset(query: &QueryEvent<'_>) -> Option<u16> {
    match query
        .status_vars()
        .get_status_var(StatusVarKey::Charset)?
        .get_value()
    {
        Ok(StatusVarVal::Charset { charset_client, .. }) => Some(charset_client),
        _ => None,
    }
}

/// The SQL mode of the session that ran a query event (the empty mode when the event does
/// not say).
pub(crate) fn sql_mode(query: &QueryEvent<'_>) -> SqlMode {
    let Some(var) = query.status_vars().get_status_var(StatusVarKey::SqlMode) else {
        return SqlMode::default();
    };
    match var.get_value() {
        Ok(StatusVarVal::SqlMode(flags)) => SqlMode::from_bits(flags.0),
        _ => SqlMode::default(),
    }
}

/// The file and position a rotate event moves to. `checksum_left` says the event still
/// carries its CRC32: the server sends its first (fake) rotate before the format
/// description, so mysql_common cannot know yet that events end with a checksum and leaves
/// it at the end of the file name.
pub(crate) fn rotate_target(event: &RotateEvent<'_>, checksum_left: bool) -> Parse<(u64, String)> {
    let mut name = event.name_raw();
    if checksum_left && name.len() > 4 {
        name = &name[..name.len() - 4];
    }
    let file = std::str::from_utf8(name)
        .map_err(|_| Malformed("binlog file name is not utf-8"))?
        .to_string();
    if file.is_empty() {
        return Err(Malformed("empty binlog file name"));
    }
    Ok((event.position(), file))
}

/// What a rows event does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowsKind {
    Write,
    Update,
    Delete,
}

/// The kind of a rows event, and whether its after images start with value options (a MySQL
/// partial update).
pub(crate) fn rows_kind(rows: &RowsEventData<'_>) -> (RowsKind, bool) {
    match rows {
        RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => {
            (RowsKind::Write, false)
        }
        RowsEventData::UpdateRowsEventV1(_) | RowsEventData::UpdateRowsEvent(_) => {
            (RowsKind::Update, false)
        }
        RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => {
            (RowsKind::Delete, false)
        }
        RowsEventData::PartialUpdateRowsEvent(_) => (RowsKind::Update, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_decode_little_endian_and_length_encoded_integers() {
        let mut r = Reader::new(&[0xfa, 0xfc, 0x34, 0x12, 0xfd, 1, 2, 3, 0xfb]);
        assert_eq!(r.lenenc(), Ok(250));
        assert_eq!(r.lenenc(), Ok(0x1234));
        assert_eq!(r.lenenc(), Ok(0x030201));
        assert!(r.lenenc().is_err());
        assert_eq!(be_uint(&[1, 2]), 0x0102);
        assert_eq!(le_uint(&[1, 2]), 0x0201);
        assert!(Reader::new(&[1, 2, 3]).u32().is_err());
    }

    #[test]
    fn mysql_gtid_uuid_renders_in_canonical_form() {
        let sid: [u8; 16] = std::array::from_fn(|i| u8::try_from(i).unwrap());
        let g = MySqlGtid::from_event(&GtidEvent::new(sid, 42));
        assert_eq!(g.gno, 42);
        assert_eq!(g.source_key(), "00010203-0405-0607-0809-0a0b0c0d0e0f");
    }

    #[test]
    fn query_status_variables_give_the_client_charset() {
        // flags2, sql_mode, catalog "std", auto_increment, charset 33/33/45.
        let mut status = vec![0, 0, 0, 0, 0];
        status.extend([1, 0, 0, 0, 0, 0, 0, 0, 0]);
        status.extend([6, 3, b's', b't', b'd']);
        status.extend([3, 1, 0, 1, 0]);
        status.extend([4, 33, 0, 33, 0, 45, 0]);
        assert_eq!(
            client_charset(&QueryEvent::new(status, &b"db"[..])),
            Some(33)
        );
        assert_eq!(
            client_charset(&QueryEvent::new(&[200u8, 1][..], &b""[..])),
            None
        );
    }
}
