//! The `pgoutput` logical replication messages (protocol version 2: in-progress
//! transactions streamed), parsed from the payload of an `XLogData` message.
//!
//! Pure: bytes in, [`PgOutput`] out. Inside a stream block (between Stream Start and Stream
//! Stop) the messages about rows and relations carry the transaction id before their body;
//! the caller says whether it is inside one.

use bytes::{Buf, Bytes};

/// A parse failure: what was malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError(pub(crate) String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed pgoutput message: {}", self.0)
    }
}

impl std::error::Error for ParseError {}

type Parsed<T> = std::result::Result<T, ParseError>;

/// One column of a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TupleValue {
    /// `'n'`: NULL.
    Null,
    /// `'u'`: a TOASTed value the change left as it was; its value is not sent.
    Unchanged,
    /// `'t'`: the value in its type's text form.
    Text(Bytes),
    /// `'b'`: the value in its type's binary form.
    Binary(Bytes),
}

/// One column of a relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RelationColumn {
    /// Part of the replica identity.
    pub(crate) key: bool,
    pub(crate) name: String,
    pub(crate) type_oid: u32,
    pub(crate) typmod: i32,
}

/// A Relation message: the table's columns as the changes after it carry them (generated and
/// dropped columns are not sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Relation {
    pub(crate) oid: u32,
    /// The schema (`pg_catalog` when the message leaves it empty).
    pub(crate) schema: String,
    pub(crate) name: String,
    /// `d` default (the key), `n` nothing, `f` full, `i` an index.
    pub(crate) replica_identity: u8,
    pub(crate) columns: Vec<RelationColumn>,
}

/// One `pgoutput` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PgOutput {
    Begin {
        /// Where the commit record starts.
        final_lsn: u64,
        /// Microseconds since 2000-01-01 UTC.
        timestamp: i64,
        xid: u32,
    },
    Commit {
        commit_lsn: u64,
        end_lsn: u64,
        timestamp: i64,
    },
    Origin,
    Relation {
        xid: Option<u32>,
        relation: Relation,
    },
    Type {
        xid: Option<u32>,
        oid: u32,
    },
    Insert {
        xid: Option<u32>,
        relation: u32,
        new: Vec<TupleValue>,
    },
    Update {
        xid: Option<u32>,
        relation: u32,
        /// The old key (`'K'`) or, with `REPLICA IDENTITY FULL`, the old row (`'O'`): sent
        /// only when the key changed or the identity is full.
        old: Option<Vec<TupleValue>>,
        new: Vec<TupleValue>,
    },
    Delete {
        xid: Option<u32>,
        relation: u32,
        /// The old key, or the old row with `REPLICA IDENTITY FULL`.
        old: Vec<TupleValue>,
    },
    Truncate {
        xid: Option<u32>,
        relations: Vec<u32>,
    },
    /// A `pg_logical_emit_message` message (only sent when asked for).
    Message {
        xid: Option<u32>,
    },
    StreamStart {
        xid: u32,
    },
    StreamStop,
    StreamCommit {
        xid: u32,
        commit_lsn: u64,
        end_lsn: u64,
        timestamp: i64,
    },
    StreamAbort {
        xid: u32,
        subxid: u32,
    },
}

impl PgOutput {
    /// The transaction id a message inside a stream block carries.
    pub(crate) fn xid(&self) -> Option<u32> {
        match self {
            PgOutput::Relation { xid, .. }
            | PgOutput::Type { xid, .. }
            | PgOutput::Insert { xid, .. }
            | PgOutput::Update { xid, .. }
            | PgOutput::Delete { xid, .. }
            | PgOutput::Truncate { xid, .. }
            | PgOutput::Message { xid, .. } => *xid,
            _ => None,
        }
    }
}

struct Reader {
    buf: Bytes,
}

impl Reader {
    fn need(&self, n: usize, what: &str) -> Parsed<()> {
        if self.buf.remaining() < n {
            Err(ParseError(format!("truncated {what}")))
        } else {
            Ok(())
        }
    }

    fn u8(&mut self, what: &str) -> Parsed<u8> {
        self.need(1, what)?;
        Ok(self.buf.get_u8())
    }

    fn i16(&mut self, what: &str) -> Parsed<i16> {
        self.need(2, what)?;
        Ok(self.buf.get_i16())
    }

    fn u32(&mut self, what: &str) -> Parsed<u32> {
        self.need(4, what)?;
        Ok(self.buf.get_u32())
    }

    fn i32(&mut self, what: &str) -> Parsed<i32> {
        self.need(4, what)?;
        Ok(self.buf.get_i32())
    }

    fn u64(&mut self, what: &str) -> Parsed<u64> {
        self.need(8, what)?;
        Ok(self.buf.get_u64())
    }

    fn i64(&mut self, what: &str) -> Parsed<i64> {
        self.need(8, what)?;
        Ok(self.buf.get_i64())
    }

    fn cstring(&mut self, what: &str) -> Parsed<String> {
        let end = self
            .buf
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| ParseError(format!("unterminated {what}")))?;
        let s = self.buf.split_to(end);
        self.buf.advance(1);
        String::from_utf8(s.to_vec()).map_err(|_| ParseError(format!("{what} is not UTF-8")))
    }

    fn bytes(&mut self, n: usize, what: &str) -> Parsed<Bytes> {
        self.need(n, what)?;
        Ok(self.buf.split_to(n))
    }

    fn tuple(&mut self) -> Parsed<Vec<TupleValue>> {
        let count = self.i16("tuple")?;
        let count = usize::try_from(count).map_err(|_| ParseError("column count".into()))?;
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            out.push(match self.u8("tuple column")? {
                b'n' => TupleValue::Null,
                b'u' => TupleValue::Unchanged,
                kind @ (b't' | b'b') => {
                    let len = self.i32("value length")?;
                    let len = usize::try_from(len)
                        .map_err(|_| ParseError(format!("value length {len}")))?;
                    let data = self.bytes(len, "value")?;
                    if kind == b't' {
                        TupleValue::Text(data)
                    } else {
                        TupleValue::Binary(data)
                    }
                }
                other => {
                    return Err(ParseError(format!(
                        "unknown tuple column kind {:?}",
                        char::from(other)
                    )))
                }
            });
        }
        Ok(out)
    }
}

/// Parses one message; `in_stream` when it sits between Stream Start and Stream Stop.
pub(crate) fn parse(data: Bytes, in_stream: bool) -> Parsed<PgOutput> {
    let mut r = Reader { buf: data };
    let tag = r.u8("message")?;
    let xid = |r: &mut Reader| -> Parsed<Option<u32>> {
        if in_stream {
            r.u32("transaction id").map(Some)
        } else {
            Ok(None)
        }
    };
    Ok(match tag {
        b'B' => PgOutput::Begin {
            final_lsn: r.u64("begin")?,
            timestamp: r.i64("begin")?,
            xid: r.u32("begin")?,
        },
        b'C' => {
            r.u8("commit flags")?;
            PgOutput::Commit {
                commit_lsn: r.u64("commit")?,
                end_lsn: r.u64("commit")?,
                timestamp: r.i64("commit")?,
            }
        }
        b'O' => PgOutput::Origin,
        b'R' => {
            let xid = xid(&mut r)?;
            let oid = r.u32("relation")?;
            let schema = r.cstring("schema name")?;
            let name = r.cstring("relation name")?;
            let replica_identity = r.u8("replica identity")?;
            let count = r.i16("relation")?;
            let count = usize::try_from(count).map_err(|_| ParseError("column count".into()))?;
            let mut columns = Vec::with_capacity(count);
            for _ in 0..count {
                let flags = r.u8("column flags")?;
                columns.push(RelationColumn {
                    key: flags & 1 != 0,
                    name: r.cstring("column name")?,
                    type_oid: r.u32("column type")?,
                    typmod: r.i32("column type modifier")?,
                });
            }
            PgOutput::Relation {
                xid,
                relation: Relation {
                    oid,
                    schema: if schema.is_empty() {
                        "pg_catalog".into()
                    } else {
                        schema
                    },
                    name,
                    replica_identity,
                    columns,
                },
            }
        }
        b'Y' => {
            let xid = xid(&mut r)?;
            let oid = r.u32("type")?;
            r.cstring("type schema")?;
            r.cstring("type name")?;
            PgOutput::Type { xid, oid }
        }
        b'I' => {
            let xid = xid(&mut r)?;
            let relation = r.u32("insert")?;
            match r.u8("insert")? {
                b'N' => PgOutput::Insert {
                    xid,
                    relation,
                    new: r.tuple()?,
                },
                _ => return Err(ParseError("insert without a new tuple".into())),
            }
        }
        b'U' => {
            let xid = xid(&mut r)?;
            let relation = r.u32("update")?;
            let mut old = None;
            let mut kind = r.u8("update")?;
            if matches!(kind, b'K' | b'O') {
                old = Some(r.tuple()?);
                kind = r.u8("update")?;
            }
            if kind != b'N' {
                return Err(ParseError("update without a new tuple".into()));
            }
            PgOutput::Update {
                xid,
                relation,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let xid = xid(&mut r)?;
            let relation = r.u32("delete")?;
            match r.u8("delete")? {
                b'K' | b'O' => PgOutput::Delete {
                    xid,
                    relation,
                    old: r.tuple()?,
                },
                _ => return Err(ParseError("delete without an old tuple".into())),
            }
        }
        b'T' => {
            let xid = xid(&mut r)?;
            let count = r.u32("truncate")?;
            r.u8("truncate options")?;
            let relations = (0..count)
                .map(|_| r.u32("truncated relation"))
                .collect::<Parsed<Vec<_>>>()?;
            PgOutput::Truncate { xid, relations }
        }
        b'M' => PgOutput::Message { xid: xid(&mut r)? },
        b'S' => {
            let xid = r.u32("stream start")?;
            r.u8("stream start")?;
            PgOutput::StreamStart { xid }
        }
        b'E' => PgOutput::StreamStop,
        b'c' => {
            let xid = r.u32("stream commit")?;
            r.u8("stream commit flags")?;
            PgOutput::StreamCommit {
                xid,
                commit_lsn: r.u64("stream commit")?,
                end_lsn: r.u64("stream commit")?,
                timestamp: r.i64("stream commit")?,
            }
        }
        b'A' => PgOutput::StreamAbort {
            xid: r.u32("stream abort")?,
            subxid: r.u32("stream abort")?,
        },
        other => {
            return Err(ParseError(format!(
                "unknown message type {:?}",
                char::from(other)
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    fn tuple(out: &mut Vec<u8>, values: &[Option<&[u8]>]) {
        out.put_i16(i16::try_from(values.len()).unwrap());
        for v in values {
            match v {
                None => out.put_u8(b'n'),
                Some(b"<u>") => out.put_u8(b'u'),
                Some(v) => {
                    out.put_u8(b't');
                    out.put_i32(i32::try_from(v.len()).unwrap());
                    out.put_slice(v);
                }
            }
        }
    }

    #[test]
    fn parses_relation_and_row_messages() {
        let mut m = vec![b'R'];
        m.put_u32(16385);
        m.put_slice(b"shop\0orders\0");
        m.put_u8(b'd');
        m.put_i16(2);
        m.put_u8(1);
        m.put_slice(b"id\0");
        m.put_u32(23);
        m.put_i32(-1);
        m.put_u8(0);
        m.put_slice(b"note\0");
        m.put_u32(25);
        m.put_i32(-1);
        let parsed = parse(Bytes::from(m), false).unwrap();
        let PgOutput::Relation {
            xid: None,
            relation,
        } = parsed
        else {
            panic!("{parsed:?}")
        };
        assert_eq!(relation.schema, "shop");
        assert_eq!(relation.columns.len(), 2);
        assert!(relation.columns[0].key && !relation.columns[1].key);

        // An update inside a stream block: xid, old key, new row with an unchanged value.
        let mut m = vec![b'U'];
        m.put_u32(777);
        m.put_u32(16385);
        m.put_u8(b'K');
        tuple(&mut m, &[Some(b"1"), None]);
        m.put_u8(b'N');
        tuple(&mut m, &[Some(b"2"), Some(b"<u>")]);
        assert_eq!(
            parse(Bytes::from(m), true).unwrap(),
            PgOutput::Update {
                xid: Some(777),
                relation: 16385,
                old: Some(vec![
                    TupleValue::Text(Bytes::from_static(b"1")),
                    TupleValue::Null
                ]),
                new: vec![
                    TupleValue::Text(Bytes::from_static(b"2")),
                    TupleValue::Unchanged
                ],
            }
        );

        let mut m = vec![b'T'];
        m.put_u32(2);
        m.put_u8(0);
        m.put_u32(1);
        m.put_u32(2);
        assert_eq!(
            parse(Bytes::from(m), false).unwrap(),
            PgOutput::Truncate {
                xid: None,
                relations: vec![1, 2]
            }
        );
    }

    #[test]
    fn parses_transaction_boundaries() {
        let mut m = vec![b'C', 0];
        m.put_u64(10);
        m.put_u64(20);
        m.put_i64(30);
        assert_eq!(
            parse(Bytes::from(m), false).unwrap(),
            PgOutput::Commit {
                commit_lsn: 10,
                end_lsn: 20,
                timestamp: 30
            }
        );
        let mut m = vec![b'c'];
        m.put_u32(5);
        m.put_u8(0);
        m.put_u64(10);
        m.put_u64(20);
        m.put_i64(30);
        assert_eq!(
            parse(Bytes::from(m), false).unwrap(),
            PgOutput::StreamCommit {
                xid: 5,
                commit_lsn: 10,
                end_lsn: 20,
                timestamp: 30
            }
        );
        let mut m = vec![b'A'];
        m.put_u32(5);
        m.put_u32(6);
        assert_eq!(
            parse(Bytes::from(m), false).unwrap(),
            PgOutput::StreamAbort { xid: 5, subxid: 6 }
        );
    }

    #[test]
    fn refuses_truncated_and_unknown_messages() {
        for bad in [
            &b"B\0\0"[..],
            b"Z",
            b"I\0\0\0\x01X",
            b"U\0\0\0\x01N\0\x01t\0\0\0\x09ab",
        ] {
            assert!(
                parse(Bytes::copy_from_slice(bad), false).is_err(),
                "{bad:?}"
            );
        }
    }
}
