//! Turns binlog events into [`ChangeEvent`]s: tracks the position and GTID state, the
//! event groups (transactions), the table maps, and what the filter selects.
//!
//! Pure: it is fed events one at a time (from the live stream, or from captured bytes in
//! the tests) and queues the change events they produce.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use dts_core::{Change, ChangeEvent, Error, ErrorKind, Position, Result, RowImage, TableName};
use mysql_async::binlog::events::{
    Event, EventData, GtidEvent, QueryEvent, RotateEvent, TableMapEvent,
};
use tracing::{debug, warn};

use super::charset::{latin1_to_string, Charset, CharsetMap};
use super::event::{
    client_charset, kind, parse_gtid_list, rotate_target, rows_kind, sql_mode, Malformed,
    MariaGtid, MySqlGtid, Reader, RowsKind, FLAG_ARTIFICIAL,
};
use super::gtid::GtidState;
use super::row::{RowError, TableDecoder};
use super::statement::{classify, Statement, Target};
use super::BinlogFilter;

/// The server family, which decides the GTID syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    MariaDb,
    MySql,
}

/// The most table maps kept; beyond it the cache starts over (table maps are repeated
/// before every statement's rows, so nothing is lost).
const MAX_TABLES: usize = 4096;

enum TableEntry {
    Skipped,
    Selected(Arc<TableDecoder>),
}

struct CachedTable {
    /// The table map event body, to tell a repeated map from a changed one.
    map: Vec<u8>,
    entry: TableEntry,
}

/// The GTID of an event group.
#[derive(Debug, Clone)]
enum GroupGtid {
    MariaDb { domain: u32, server: u32, seq: u64 },
    MySql(MySqlGtid),
}

/// An open event group: a transaction, or one implicitly committing statement.
struct Group {
    /// Ends at `COMMIT`/XID (a `BEGIN` was seen, or MariaDB said the group is
    /// transactional); otherwise the next statement ends it.
    explicit: bool,
    gtid: Option<GroupGtid>,
    /// Where the group's `Begin` sits, delivered with the first selected change.
    begin: Position,
    begin_timestamp: u32,
    begin_sent: bool,
}

/// The state machine from binlog events to change events.
pub(crate) struct EventReader {
    flavor: Flavor,
    filter: BinlogFilter,
    charsets: CharsetMap,
    format_seen: bool,
    /// Whether events carry a CRC32: the first (fake) rotate arrives before the format
    /// description and still has it.
    checksum: bool,
    file: String,
    offset: u64,
    gtid: GtidState,
    gtid_text: Option<String>,
    tables: HashMap<u64, CachedTable>,
    group: Option<Group>,
    /// The last position delivered as an acknowledgeable point (or the start).
    acked: (String, u64),
    last_timestamp: u32,
    /// Change events ready for delivery, in order.
    pub out: VecDeque<ChangeEvent>,
}

impl EventReader {
    pub fn new(
        flavor: Flavor,
        filter: BinlogFilter,
        charsets: CharsetMap,
        checksum: bool,
        file: String,
        offset: u64,
        gtid: GtidState,
    ) -> Self {
        let gtid_text = gtid.render();
        Self {
            flavor,
            filter,
            charsets,
            format_seen: false,
            checksum,
            acked: (file.clone(), offset),
            file,
            offset,
            gtid,
            gtid_text,
            tables: HashMap::new(),
            group: None,
            last_timestamp: 0,
            out: VecDeque::new(),
        }
    }

    /// The position after the last event read.
    pub fn position(&self) -> Position {
        Position::Binlog {
            file: self.file.clone(),
            offset: self.offset,
            gtid: self.gtid_text.clone(),
        }
    }

    fn context(&self) -> String {
        format!("reading the binlog at {}:{}", self.file, self.offset)
    }

    fn malformed(&self, m: Malformed) -> Error {
        Error::new(ErrorKind::Database, format!("malformed binlog event: {m}"))
            .context(self.context())
    }

    /// An event mysql_common could not parse.
    fn unparsable(&self, what: &str, e: std::io::Error) -> Error {
        Error::new(ErrorKind::Database, format!("malformed {what} event"))
            .with_source(e)
            .context(self.context())
    }

    fn push(&mut self, change: Change, timestamp: u32) {
        let position = self.position();
        self.out.push_back(ChangeEvent {
            change,
            position,
            timestamp,
        });
    }

    /// Reads one event, as mysql_async's binlog stream delivers it (mysql_common's
    /// [`Event`]: header, body without checksum, and the format description in force).
    ///
    /// The events mysql_common parses correctly are read through its parsers: rotate,
    /// query, table map (with its optional metadata), rows event headers and MySQL GTIDs.
    /// MariaDB's own events and row values are decoded here (see the crate README).
    pub fn handle(&mut self, ev: &Event) -> Result<()> {
        let header = ev.header();
        let ev_kind = header.event_type_raw();
        let timestamp = header.timestamp();
        let log_pos = u64::from(header.log_pos());
        let artificial = header.flags_raw() & FLAG_ARTIFICIAL != 0;
        if timestamp != 0 {
            self.last_timestamp = timestamp;
        }
        // The header's end position moves the offset forward; events the server makes up
        // (log_pos 0) and heartbeats do not, and it never moves back (a format description
        // re-sent when resuming mid-file carries its original position).
        if log_pos != 0 && ev_kind != kind::HEARTBEAT && log_pos > self.offset {
            self.offset = log_pos;
        }
        match ev_kind {
            kind::ROTATE => {
                let rotate = ev
                    .read_event::<RotateEvent<'_>>()
                    .map_err(|e| self.unparsable("rotate", e))?;
                let checksum_left = !self.format_seen && self.checksum;
                let (position, file) =
                    rotate_target(&rotate, checksum_left).map_err(|m| self.malformed(m))?;
                if !artificial {
                    self.tables.clear();
                }
                debug!(file = %file, offset = position, "binlog rotated");
                self.file = file;
                self.offset = position;
            }
            // mysql_common keeps the format description itself (table id width, post-header
            // lengths, checksum); the reader only needs to know one was seen.
            kind::FORMAT_DESCRIPTION => self.format_seen = true,
            // MariaDB's GTID event (162) is unknown to mysql_common: decoded here.
            kind::MARIADB_GTID => {
                let g = MariaGtid::parse(ev.data()).map_err(|m| self.malformed(m))?;
                let gtid = GroupGtid::MariaDb {
                    domain: g.domain,
                    server: header.server_id(),
                    seq: g.seq,
                };
                self.open_group(!g.standalone(), Some(gtid), timestamp);
            }
            kind::GTID | kind::GTID_TAGGED => {
                let g = ev
                    .read_event::<GtidEvent>()
                    .map_err(|e| self.unparsable("gtid", e))?;
                let gtid = MySqlGtid::from_event(&g);
                self.open_group(false, Some(GroupGtid::MySql(gtid)), timestamp);
            }
            kind::ANONYMOUS_GTID => self.open_group(false, None, timestamp),
            // MariaDB's GTID list event (163) is unknown to mysql_common: decoded here.
            kind::MARIADB_GTID_LIST if !artificial && self.flavor == Flavor::MariaDb => {
                let list = parse_gtid_list(ev.data()).map_err(|m| self.malformed(m))?;
                // The list holds every (domain, server) pair; each domain's last entry is
                // its current GTID.
                let mut map = BTreeMap::new();
                for (domain, server, seq) in list {
                    map.insert(domain, (server, seq));
                }
                self.gtid = GtidState::MariaDb(map);
                self.gtid_text = self.gtid.render();
            }
            kind::QUERY => self.query(ev)?,
            // The XID itself is not needed: the event only ends the group.
            kind::XID => self.end_group(timestamp),
            kind::TABLE_MAP => self.table_map(ev)?,
            kind::WRITE_ROWS_V1
            | kind::UPDATE_ROWS_V1
            | kind::DELETE_ROWS_V1
            | kind::WRITE_ROWS
            | kind::UPDATE_ROWS
            | kind::DELETE_ROWS
            | kind::PARTIAL_UPDATE_ROWS => self.rows(ev)?,
            kind::XA_PREPARE => {
                if self.group.as_ref().is_some_and(|g| g.begin_sent) {
                    return Err(Error::new(
                        ErrorKind::Unsupported,
                        "an XA transaction changed selected tables: prepared XA transactions \
                         cannot be captured from the binlog",
                    )
                    .context(self.context()));
                }
                self.end_group(timestamp);
            }
            kind::QUERY_COMPRESSED | kind::ROWS_COMPRESSED_FIRST..=kind::ROWS_COMPRESSED_LAST => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    "compressed binlog events cannot be read: set log_bin_compress=OFF on the \
                     source",
                )
                .context(self.context()));
            }
            kind::INCIDENT => {
                return Err(Error::new(
                    ErrorKind::Database,
                    "the source logged an incident event: changes may be missing from the \
                     binlog, so the target must be loaded again from a new snapshot",
                )
                .context(self.context()));
            }
            // Heartbeats, stop events, MariaDB annotations (160) and binlog checkpoints
            // (161), MySQL previous GTIDs, transaction payloads (mysql_async delivers their
            // events decompressed after them), and others.
            _ => {}
        }
        Ok(())
    }

    fn open_group(&mut self, explicit: bool, gtid: Option<GroupGtid>, timestamp: u32) {
        if let Some(old) = &self.group {
            if old.begin_sent {
                warn!(position = %self.position(), "binlog event group ended without a commit");
            }
        }
        self.group = Some(Group {
            explicit,
            gtid,
            begin: self.position(),
            begin_timestamp: timestamp,
            begin_sent: false,
        });
    }

    /// Ends the open group: records its GTID and, if it delivered changes, a `Commit`.
    fn end_group(&mut self, timestamp: u32) {
        let Some(group) = self.group.take() else {
            return;
        };
        self.record_gtid(group.gtid);
        if group.begin_sent {
            self.push(Change::Commit, timestamp);
            self.acked = (self.file.clone(), self.offset);
        }
    }

    /// Ends the open group with a `ROLLBACK`: if it delivered changes, a `Rollback` tells
    /// the consumer that none of them happened.
    fn end_group_rolled_back(&mut self, timestamp: u32) {
        let Some(group) = self.group.take() else {
            return;
        };
        self.record_gtid(group.gtid);
        if group.begin_sent {
            self.push(Change::Rollback, timestamp);
            self.acked = (self.file.clone(), self.offset);
        }
    }

    fn record_gtid(&mut self, gtid: Option<GroupGtid>) {
        match gtid {
            Some(GroupGtid::MariaDb {
                domain,
                server,
                seq,
            }) => self.gtid.add_mariadb(domain, server, seq),
            Some(GroupGtid::MySql(g)) => self.gtid.add_mysql(&g),
            None => return,
        }
        self.gtid_text = self.gtid.render();
    }

    /// Delivers the group's `Begin` if it has not been delivered yet.
    fn ensure_begin(&mut self) {
        if self.group.is_none() {
            // Rows outside any group (a stream started inside a transaction).
            self.open_group(true, None, self.last_timestamp);
        }
        if let Some(group) = self.group.as_mut() {
            if !group.begin_sent {
                group.begin_sent = true;
                let event = ChangeEvent {
                    change: Change::Begin,
                    position: group.begin.clone(),
                    timestamp: group.begin_timestamp,
                };
                self.out.push_back(event);
            }
        }
    }

    fn query(&mut self, ev: &Event) -> Result<()> {
        let q = ev
            .read_event::<QueryEvent<'_>>()
            .map_err(|e| self.unparsable("query", e))?;
        let timestamp = ev.header().timestamp();
        let sql = self.statement_text(q.query_raw(), client_charset(&q));
        let sql_mode = sql_mode(&q);
        let schema = (!q.schema_raw().is_empty())
            .then(|| String::from_utf8_lossy(q.schema_raw()).into_owned());
        let explicit = self.group.as_ref().is_some_and(|g| g.explicit);
        // Classified as the default mode reads it (`"db"."t"` under ANSI_QUOTES, a
        // trailing backslash under NO_BACKSLASH_ESCAPES); delivered as it was written.
        match classify(&dts_schema::sql_in_default_mode(&sql, sql_mode)) {
            Statement::Begin => {
                let here = self.position();
                match self.group.as_mut() {
                    Some(g) => {
                        g.explicit = true;
                        if !g.begin_sent {
                            g.begin = here;
                            g.begin_timestamp = timestamp;
                        }
                    }
                    None => self.open_group(true, None, timestamp),
                }
            }
            Statement::Commit => self.end_group(timestamp),
            Statement::Rollback => self.end_group_rolled_back(timestamp),
            Statement::Ddl(targets) => {
                let selected = self.ddl_selected(&targets, schema.as_deref());
                if !explicit {
                    // The statement commits implicitly: it is the group's end.
                    let group = self.group.take();
                    self.record_gtid(group.and_then(|g| g.gtid));
                }
                if selected {
                    self.push(
                        Change::Ddl {
                            schema,
                            sql,
                            sql_mode,
                        },
                        timestamp,
                    );
                    if !explicit {
                        self.acked = (self.file.clone(), self.offset);
                    }
                } else {
                    debug!(schema = ?schema, "ddl on unselected databases skipped");
                }
            }
            Statement::Truncate(table) => {
                // Truncation is a change of the table's data, delivered as its own kind (so
                // that the operations a task replicates can leave it out), in a transaction
                // of its own: the statement commits implicitly.
                let name = table
                    .database
                    .or_else(|| schema.clone())
                    .map(|db| TableName::new(db, table.table));
                if !explicit {
                    let group = self.group.take();
                    self.record_gtid(group.and_then(|g| g.gtid));
                }
                match name {
                    Some(name) if (self.filter.tables)(&name) => {
                        if !explicit {
                            self.open_group(false, None, timestamp);
                        }
                        self.ensure_begin();
                        self.push(Change::Truncate { table: name }, timestamp);
                        if !explicit {
                            self.end_group(timestamp);
                        }
                    }
                    Some(_) => debug!("truncation of an unselected table skipped"),
                    None => {
                        return Err(Error::new(
                            ErrorKind::Unsupported,
                            format!(
                                "`{}` names no database and the session had none",
                                dts_schema::short_sql(&sql)
                            ),
                        )
                        .context(self.context()))
                    }
                }
            }
            Statement::Dml(tables) => {
                // Unknown tables, or tables in an unknown database, count as selected.
                let selected = tables.is_empty()
                    || tables.iter().any(|t| {
                        t.database
                            .as_deref()
                            .or(schema.as_deref())
                            .is_none_or(|db| {
                                (self.filter.tables)(&TableName::new(db, t.table.as_str()))
                            })
                    });
                if selected {
                    return Err(Error::new(
                        ErrorKind::Unsupported,
                        format!(
                            "a data change was logged as a statement (default database {}): \
                             set binlog_format=ROW on the source",
                            schema
                                .as_deref()
                                .map_or("none".to_string(), |s| format!("`{s}`"))
                        ),
                    )
                    .context(self.context()));
                }
                if !explicit {
                    self.end_group(timestamp);
                }
            }
            Statement::Other => {
                if !explicit {
                    self.end_group(timestamp);
                }
            }
        }
        Ok(())
    }

    /// The statement as UTF-8, from the session's client character set.
    fn statement_text(&self, sql: &[u8], charset: Option<u16>) -> String {
        if let Ok(s) = std::str::from_utf8(sql) {
            return s.to_string();
        }
        match charset.and_then(|c| self.charsets.get(c)) {
            Some(Charset::Latin1) => latin1_to_string(sql),
            other => {
                warn!(
                    charset = ?other,
                    position = %self.position(),
                    "statement text is not valid in its character set; invalid bytes replaced"
                );
                String::from_utf8_lossy(sql).into_owned()
            }
        }
    }

    fn ddl_selected(&self, targets: &[Target], schema: Option<&str>) -> bool {
        if targets.is_empty() {
            return true;
        }
        targets.iter().any(|t| match t {
            Target::Database(d) => (self.filter.databases)(d),
            Target::Default => schema.is_none_or(|s| (self.filter.databases)(s)),
        })
    }

    fn table_map(&mut self, ev: &Event) -> Result<()> {
        let map = ev
            .read_event::<TableMapEvent<'_>>()
            .map_err(|e| self.unparsable("table map", e))?;
        let id = map.table_id();
        if self.tables.get(&id).is_some_and(|c| c.map == ev.data()) {
            return Ok(());
        }
        let name = TableName::new(
            String::from_utf8_lossy(map.database_name_raw()),
            String::from_utf8_lossy(map.table_name_raw()),
        );
        let entry = if (self.filter.tables)(&name) {
            let decoder = TableDecoder::new(&map, ev.data(), self.flavor, &self.charsets)
                .map_err(|e| self.row_error(e, &name, None))?;
            TableEntry::Selected(Arc::new(decoder))
        } else {
            TableEntry::Skipped
        };
        if self.tables.len() >= MAX_TABLES {
            self.tables.clear();
        }
        self.tables.insert(
            id,
            CachedTable {
                map: ev.data().to_vec(),
                entry,
            },
        );
        Ok(())
    }

    fn rows(&mut self, ev: &Event) -> Result<()> {
        let rows = match ev.read_data() {
            Ok(Some(EventData::RowsEvent(rows))) => rows,
            Ok(_) => return Err(self.malformed(Malformed("not a rows event"))),
            Err(e) => return Err(self.unparsable("rows", e)),
        };
        let id = rows.table_id();
        let table = match self.tables.get(&id).map(|c| &c.entry) {
            Some(TableEntry::Selected(t)) => Arc::clone(t),
            Some(TableEntry::Skipped) => return Ok(()),
            None => {
                return Err(Error::new(
                    ErrorKind::Database,
                    format!("rows event for table id {id} without a table map"),
                )
                .context(self.context()))
            }
        };
        if usize::try_from(rows.num_columns()).ok() != Some(table.columns.len()) {
            return Err(self.malformed(Malformed(
                "rows event column count differs from its table map",
            )));
        }
        let (kind, partial) = rows_kind(&rows);
        // Whether the first image (the before image, or the only one) and the after image
        // of an update hold every column, as they do with binlog_row_image=FULL.
        let before = rows.columns_before_image().map(|bits| bits.all());
        let after = rows.columns_after_image().map(|bits| bits.all());
        let first_full = before.or(after).unwrap_or(false);
        let after_full = after.unwrap_or(false);
        self.ensure_begin();
        let mut r = Reader::new(rows.rows_data());
        let image = |values| RowImage {
            columns: Arc::clone(&table.columns),
            values,
        };
        while !r.is_empty() {
            let change = match kind {
                RowsKind::Write => Change::Insert {
                    table: table.name.clone(),
                    row: image(
                        table
                            .decode_row(&mut r, first_full, false)
                            .map_err(|e| self.row_error(e, &table.name, Some(&table)))?,
                    ),
                },
                RowsKind::Delete => Change::Delete {
                    table: table.name.clone(),
                    row: image(
                        table
                            .decode_row(&mut r, first_full, false)
                            .map_err(|e| self.row_error(e, &table.name, Some(&table)))?,
                    ),
                },
                RowsKind::Update => {
                    let before = table
                        .decode_row(&mut r, first_full, false)
                        .map_err(|e| self.row_error(e, &table.name, Some(&table)))?;
                    let after = table
                        .decode_row(&mut r, after_full, partial)
                        .map_err(|e| self.row_error(e, &table.name, Some(&table)))?;
                    Change::Update {
                        table: table.name.clone(),
                        before: image(before),
                        after: image(after),
                    }
                }
            };
            self.push(change, ev.header().timestamp());
        }
        Ok(())
    }

    fn row_error(&self, e: RowError, table: &TableName, decoder: Option<&TableDecoder>) -> Error {
        let column = |i: usize| -> String {
            let name = decoder
                .and_then(|d| d.columns.get(i).cloned())
                .unwrap_or_else(|| format!("#{}", i + 1));
            format!("`{table}.{name}`")
        };
        let (kind, message) = match e {
            RowError::Malformed(m) => (
                ErrorKind::Database,
                format!("malformed row of `{table}` in the binlog: {m}"),
            ),
            RowError::NoMetadata(what) => (
                ErrorKind::Config,
                format!(
                    "the binlog has no {what} for table `{table}`: set \
                     binlog_row_metadata=FULL on the source"
                ),
            ),
            RowError::UnsupportedType(name, ty) => (
                ErrorKind::Unsupported,
                format!("unsupported type `{ty}` for column `{table}.{name}`"),
            ),
            RowError::UnsupportedCharset(name, cs) => (
                ErrorKind::Unsupported,
                format!(
                    "character set `{cs}` of column `{table}.{name}` cannot be read from the \
                     binlog"
                ),
            ),
            RowError::InvalidValue(i, what) => (
                ErrorKind::Value,
                format!("invalid {what} value in column {}", column(i)),
            ),
            RowError::PartialImage => (
                ErrorKind::Config,
                format!(
                    "a row image of `{table}` lacks columns: set binlog_row_image=FULL on the \
                     source"
                ),
            ),
            RowError::PartialJson(i) => (
                ErrorKind::Config,
                format!(
                    "column {} holds a partial JSON update: set binlog_row_value_options='' on \
                     the source",
                    column(i)
                ),
            ),
        };
        Error::new(kind, message).context(self.context())
    }

    /// Whether [`EventReader::progress_commit`] has a `Commit` to give.
    pub fn has_progress(&self) -> bool {
        self.group.is_none()
            && self.out.is_empty()
            && !(self.acked.0 == self.file && self.acked.1 == self.offset)
    }

    /// A `Commit` at the current position if the reader sits between groups at a position
    /// later than the last one delivered (skipped transactions, rotations), so that the
    /// caller can acknowledge progress.
    pub fn progress_commit(&mut self) -> Option<ChangeEvent> {
        if !self.has_progress() {
            return None;
        }
        self.acked = (self.file.clone(), self.offset);
        Some(ChangeEvent {
            change: Change::Commit,
            position: self.position(),
            timestamp: self.last_timestamp,
        })
    }
}
