//! Binlog event framing and the event bodies change capture reads: rotate, query, XID,
//! table map, rows events, and the GTID events of MySQL and MariaDB.
//!
//! Layouts follow the replication protocol as MySQL and MariaDB document it; every parser
//! here is pure and runs on captured bytes in the tests.

use std::fmt;

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

/// Length of the common event header (binlog version 4).
pub(crate) const HEADER_LEN: usize = 19;

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

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    pub fn u8(&mut self) -> Parse<u8> {
        Ok(self.take(1)?[0])
    }

    /// An unsigned little-endian integer of `n` (1..=8) bytes.
    pub fn uint(&mut self, n: usize) -> Parse<u64> {
        let b = self.take(n)?;
        Ok(le_uint(b))
    }

    pub fn u16(&mut self) -> Parse<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
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

    /// A length-encoded integer used as a length or count.
    pub fn lenenc_usize(&mut self) -> Parse<usize> {
        usize::try_from(self.lenenc()?).map_err(|_| Malformed("length out of range"))
    }

    /// A length-encoded byte string.
    pub fn lenenc_bytes(&mut self) -> Parse<&'a [u8]> {
        let n = self.lenenc_usize()?;
        self.take(n)
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

/// One event as read from the stream: the header fields change capture uses and the body
/// (without the header and without the checksum).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawEvent<'a> {
    pub kind: u8,
    pub timestamp: u32,
    pub server_id: u32,
    /// End of this event in its binlog file (the next event's offset); 0 for events the
    /// server makes up for the stream.
    pub log_pos: u64,
    pub flags: u16,
    pub body: &'a [u8],
}

impl<'a> RawEvent<'a> {
    /// Splits one whole event as it is stored in a binlog file (header, body and, when
    /// `checksum` is set, a 4-byte CRC32 at the end).
    #[cfg(test)]
    pub fn from_bytes(bytes: &'a [u8], checksum: bool) -> Parse<Self> {
        let mut r = Reader::new(bytes);
        let timestamp = r.u32()?;
        let kind = r.u8()?;
        let server_id = r.u32()?;
        let size = usize::try_from(r.u32()?).map_err(|_| Malformed("event size"))?;
        let log_pos = u64::from(r.u32()?);
        let flags = r.u16()?;
        if size != bytes.len() || size < HEADER_LEN {
            return Err(Malformed("event size does not match its bytes"));
        }
        let end = if checksum { size - 4 } else { size };
        let body = bytes
            .get(HEADER_LEN..end)
            .ok_or(Malformed("event too short for its checksum"))?;
        Ok(Self {
            kind,
            timestamp,
            server_id,
            log_pos,
            flags,
            body,
        })
    }

    pub fn is_artificial(&self) -> bool {
        self.flags & FLAG_ARTIFICIAL != 0
    }
}

/// A rotate event: the stream continues in `file` at `position`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rotate {
    pub position: u64,
    pub file: String,
}

impl Rotate {
    pub fn parse(body: &[u8]) -> Parse<Self> {
        let mut r = Reader::new(body);
        let position = r.u64()?;
        let file = std::str::from_utf8(r.rest())
            .map_err(|_| Malformed("binlog file name is not utf-8"))?
            .to_string();
        if file.is_empty() {
            return Err(Malformed("empty binlog file name"));
        }
        Ok(Self { position, file })
    }
}

/// What a format description event says about the events after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Format {
    /// Width of table ids in table map and rows events: 6 bytes, or 4 on very old servers.
    pub table_id_len: usize,
}

impl Default for Format {
    fn default() -> Self {
        Self { table_id_len: 6 }
    }
}

impl Format {
    /// Parses a format description event body (its checksum already removed).
    pub fn parse(body: &[u8]) -> Parse<Self> {
        let mut r = Reader::new(body);
        let _binlog_version = r.u16()?;
        r.take(50)?; // server version
        r.u32()?; // create timestamp
        let header_len = r.u8()?;
        if usize::from(header_len) != HEADER_LEN {
            return Err(Malformed("unsupported event header length"));
        }
        let post_headers = r.rest();
        // Post-header lengths are indexed by event type - 1.
        let table_map = post_headers
            .get(usize::from(kind::TABLE_MAP) - 1)
            .copied()
            .unwrap_or(8);
        Ok(Self {
            table_id_len: if table_map == 6 { 4 } else { 6 },
        })
    }
}

/// A query event: a statement with the default database of the session that ran it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Query<'a> {
    pub schema: &'a [u8],
    pub sql: &'a [u8],
    /// `character_set_client` of the session (a collation id), when logged.
    pub client_charset: Option<u16>,
}

impl<'a> Query<'a> {
    pub fn parse(body: &'a [u8]) -> Parse<Self> {
        let mut r = Reader::new(body);
        r.u32()?; // thread id
        r.u32()?; // execution time
        let schema_len = usize::from(r.u8()?);
        r.u16()?; // error code
        let status_len = usize::from(r.u16()?);
        let status = r.take(status_len)?;
        let schema = r.take(schema_len)?;
        r.take(1)?; // NUL after the schema
        Ok(Self {
            schema,
            sql: r.rest(),
            client_charset: client_charset(status),
        })
    }
}

/// Finds `Q_CHARSET_CODE` among a query event's status variables. Variables are walked
/// with their known sizes; an unknown one ends the walk (its size is unknown).
fn client_charset(status: &[u8]) -> Option<u16> {
    let mut r = Reader::new(status);
    while !r.is_empty() {
        let code = r.u8().ok()?;
        let skip = match code {
            0 => 4, // flags2
            1 => 8, // sql_mode
            2 => {
                // catalog (old): length, bytes, NUL
                let n = usize::from(r.u8().ok()?);
                n + 1
            }
            3 => 4, // auto_increment increment and offset
            4 => {
                let b = r.take(6).ok()?;
                return Some(u16::from_le_bytes([b[0], b[1]]));
            }
            5 | 6 => usize::from(r.u8().ok()?), // time zone, catalog
            7 | 8 => 2,                         // lc_time_names, charset_database
            9 => 8,                             // table map for update
            10 => 4,                            // master data written
            11 => {
                // invoker: user, host
                let n = usize::from(r.u8().ok()?);
                r.take(n).ok()?;
                usize::from(r.u8().ok()?)
            }
            12 => {
                // updated database names: count, NUL-terminated names
                let count = r.u8().ok()?;
                if count != 254 {
                    for _ in 0..count {
                        let rest = r.clone().rest();
                        let nul = rest.iter().position(|&b| b == 0)?;
                        r.take(nul + 1).ok()?;
                    }
                }
                0
            }
            13 => 3,      // microseconds
            14 => 1,      // commit ts (unused)
            15 => 4,      // commit ts2 (unused)
            16 => 1,      // explicit_defaults_for_timestamp
            17 => 8,      // ddl logged with xid
            18 => 2,      // default collation for utf8mb4
            19 | 20 => 1, // sql_require_primary_key, default_table_encryption
            128 => 3,     // MariaDB: hrnow
            129 => 8,     // MariaDB: xid
            130 => 1,     // MariaDB: gtid flags3
            _ => return None,
        };
        r.take(skip).ok()?;
    }
    None
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
    /// Parses an untagged GTID event (type 33): flags, 16-byte UUID, 8-byte number, then
    /// commit metadata this reader does not need.
    pub fn parse(body: &[u8]) -> Parse<Self> {
        let mut r = Reader::new(body);
        r.u8()?; // flags
        let sid: [u8; 16] = r.take(16)?.try_into().map_err(|_| Malformed("gtid uuid"))?;
        let gno = r.u64()?;
        Ok(Self {
            sid,
            tag: None,
            gno,
        })
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

/// A table map event: the table a table id stands for and its column definitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableMap<'a> {
    pub table_id: u64,
    pub schema: &'a [u8],
    pub table: &'a [u8],
    pub column_types: &'a [u8],
    pub metadata: &'a [u8],
    pub optional: &'a [u8],
}

impl<'a> TableMap<'a> {
    pub fn parse(body: &'a [u8], format: Format) -> Parse<Self> {
        let mut r = Reader::new(body);
        let table_id = r.uint(format.table_id_len)?;
        r.u16()?; // flags
        let schema_len = usize::from(r.u8()?);
        let schema = r.take(schema_len)?;
        r.take(1)?;
        let table_len = usize::from(r.u8()?);
        let table = r.take(table_len)?;
        r.take(1)?;
        let columns = r.lenenc_usize()?;
        let column_types = r.take(columns)?;
        let metadata = r.lenenc_bytes()?;
        r.take(columns.div_ceil(8))?; // nullability
        Ok(Self {
            table_id,
            schema,
            table,
            column_types,
            metadata,
            optional: r.rest(),
        })
    }

    /// Reads only the table id of a table map body.
    pub fn table_id(body: &[u8], format: Format) -> Parse<u64> {
        Reader::new(body).uint(format.table_id_len)
    }
}

/// What a rows event does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowsKind {
    Write,
    Update,
    Delete,
}

/// A rows event: row images of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rows<'a> {
    pub kind: RowsKind,
    pub table_id: u64,
    /// Number of columns of the table.
    pub columns: usize,
    /// Which columns the before image (or the only image) holds.
    pub present: &'a [u8],
    /// Which columns the after image of an update holds.
    pub present_after: &'a [u8],
    /// After images start with value options (partial JSON updates, MySQL 8).
    pub partial: bool,
    /// The row images.
    pub data: &'a [u8],
}

impl<'a> Rows<'a> {
    /// Parses a rows event of event type `event_kind` (v1 or v2 write/update/delete, or a
    /// MySQL partial update).
    pub fn parse(event_kind: u8, body: &'a [u8], format: Format) -> Parse<Self> {
        let (kind, v2, partial) = match event_kind {
            kind::WRITE_ROWS_V1 => (RowsKind::Write, false, false),
            kind::UPDATE_ROWS_V1 => (RowsKind::Update, false, false),
            kind::DELETE_ROWS_V1 => (RowsKind::Delete, false, false),
            kind::WRITE_ROWS => (RowsKind::Write, true, false),
            kind::UPDATE_ROWS => (RowsKind::Update, true, false),
            kind::DELETE_ROWS => (RowsKind::Delete, true, false),
            kind::PARTIAL_UPDATE_ROWS => (RowsKind::Update, true, true),
            _ => return Err(Malformed("not a rows event")),
        };
        let mut r = Reader::new(body);
        let table_id = r.uint(format.table_id_len)?;
        r.u16()?; // flags
        if v2 {
            let extra = usize::from(r.u16()?);
            r.take(extra.checked_sub(2).ok_or(Malformed("rows extra data"))?)?;
        }
        let columns = r.lenenc_usize()?;
        let present = r.take(columns.div_ceil(8))?;
        let present_after = if kind == RowsKind::Update {
            r.take(columns.div_ceil(8))?
        } else {
            &[]
        };
        Ok(Self {
            kind,
            table_id,
            columns,
            present,
            present_after,
            partial,
            data: r.rest(),
        })
    }

    /// Reads only the table id of a rows event body.
    pub fn table_id(body: &[u8], format: Format) -> Parse<u64> {
        Reader::new(body).uint(format.table_id_len)
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
        assert!(Reader::new(&[1]).u16().is_err());
    }

    #[test]
    fn mysql_gtid_uuid_renders_in_canonical_form() {
        let mut body = vec![1u8];
        body.extend(0u8..16);
        body.extend(42u64.to_le_bytes());
        let g = MySqlGtid::parse(&body).unwrap();
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
        assert_eq!(client_charset(&status), Some(33));
        assert_eq!(client_charset(&[200, 1]), None);
    }
}
