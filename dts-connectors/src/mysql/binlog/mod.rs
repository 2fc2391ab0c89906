//! Change capture from the MySQL/MariaDB binlog: [`MySqlBinlogSource`] reads the binlog as
//! a replica does and delivers [`ChangeEvent`]s of the selected tables. The delivery contract
//! is documented on [`MySqlBinlogSource`].

mod charset;
mod decimal;
mod event;
mod gtid;
mod jsonb;
mod reader;
mod row;
mod statement;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dts_core::{ChangeEvent, ChangeSource, Error, ErrorKind, Position, Result, TableName};
use futures::{FutureExt, StreamExt};
use mysql_async::prelude::*;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn, Row};
use tracing::{debug, info};

use self::charset::CharsetMap;
use self::gtid::GtidState;
use self::reader::{EventReader, Flavor};
use super::error::map_error;
use super::options::MySqlConnectOptions;

/// How often the source is asked to send a heartbeat when it has nothing else to send.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// Most binlog events one [`ChangeSource::next_events`] call reads once it has something
/// to return.
const READ_BUDGET: usize = 16_384;

/// Silence after which the connection counts as lost.
const SILENCE_LIMIT: Duration = Duration::from_secs(30);

/// Which tables' rows and which databases' schema changes a [`MySqlBinlogSource`] delivers.
///
/// The predicates run once per table map (not per row) and once per statement.
#[derive(Clone)]
pub struct BinlogFilter {
    /// Selects the tables whose row changes are delivered.
    pub tables: Arc<dyn Fn(&TableName) -> bool + Send + Sync>,
    /// Selects the databases whose schema changes are delivered.
    pub databases: Arc<dyn Fn(&str) -> bool + Send + Sync>,
}

impl BinlogFilter {
    /// Everything: all tables, all databases.
    pub fn all() -> Self {
        Self {
            tables: Arc::new(|_| true),
            databases: Arc::new(|_| true),
        }
    }

    /// The tables and schema changes of the named databases.
    pub fn databases<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let names: Arc<Vec<String>> = Arc::new(names.into_iter().map(Into::into).collect());
        let for_tables = Arc::clone(&names);
        Self {
            tables: Arc::new(move |t: &TableName| for_tables.contains(&t.schema)),
            databases: Arc::new(move |d: &str| names.iter().any(|n| n == d)),
        }
    }
}

impl fmt::Debug for BinlogFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BinlogFilter").finish_non_exhaustive()
    }
}

/// A binlog reader registered with a MySQL or MariaDB server as a replica, delivering the
/// changes of selected tables in commit order.
///
/// Created by [`MySqlBinlogSource::start`]; read with [`ChangeSource::next_events`].
///
/// # What is delivered
///
/// - Transactions as `Begin`, `Insert`/`Update`/`Delete` of selected tables, `Commit`.
///   Transactions that change no selected table are dropped; their end positions still
///   reach the caller as a lone `Commit` when nothing else would acknowledge them (at most
///   one per [`ChangeSource::next_events`] call).
/// - Schema changes (`CREATE`/`ALTER`/`DROP`/`RENAME`/`TRUNCATE` of tables, indexes,
///   databases, views, routines…) as `Ddl` with the session's default database, unless every
///   object they name lies in an unselected database. Server administration (users, grants,
///   `FLUSH`, table maintenance, temporary tables) is skipped.
/// - Row values in the shapes the snapshot reader produces, with these binlog forms that
///   `dts_typemap::convert_mysql_value` accepts: `BINARY(n)` without its trailing zero bytes,
///   `TIMESTAMP` as UTC from epoch seconds (the zero timestamp is epoch 0), MariaDB `JSON`
///   (a `LONGTEXT`) as text, and `ENUM`/`SET` as their member text (their 1-based index or
///   bit mask when the table map lacks the member lists).
///
/// Row images hold every column of the table in table order, generated ones included
/// (the server logs their values); column names come from the table map.
///
/// Each event's position is the binlog position right after it (file, offset of the next
/// event, and the GTID state when known): the position of a `Commit` or `Ddl` is where
/// reading resumes after it.
///
/// # Server requirements
///
/// `log_bin` on, `binlog_format=ROW`, `binlog_row_image=FULL`, `binlog_row_metadata=FULL`
/// (column names, signedness and character sets come from the table maps), and an account
/// with `REPLICATION SLAVE` (and `REPLICATION CLIENT`/`BINLOG MONITOR` for
/// [`MySqlBinlogSource::current_position`]). Refused with an error: geometry columns of
/// selected tables, compressed binlog events (`log_bin_compress`), prepared XA transactions
/// that change selected tables, and changes to selected tables logged as statements.
///
/// # Failures
///
/// A lost connection (or a source silent for longer than three heartbeat periods) is an
/// [`ErrorKind::Connection`] error, which is retryable: start a new source at the last
/// acknowledged position. After any error the source stays failed.
///
/// Calls are sequential (`&mut self`); events are delivered at least once across restarts,
/// never twice within one source.
pub struct MySqlBinlogSource {
    stream: BinlogStream,
    connection_id: u32,
    reader: EventReader,
    last_received: Instant,
    failed: bool,
}

impl fmt::Debug for MySqlBinlogSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MySqlBinlogSource")
            .field("position", &self.reader.position())
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

async fn connect(url: &str) -> Result<Conn> {
    url.parse::<MySqlConnectOptions>()?.connect().await
}

fn is_mariadb(version: &str) -> bool {
    version.to_ascii_lowercase().contains("mariadb")
}

impl MySqlBinlogSource {
    /// Connects to the server at `url`, registers as a replica with `server_id` (non-zero
    /// and different from every other replica of the server) and starts reading the binlog
    /// at `from`, a [`Position::Binlog`] (file and offset; the GTID state in `gtid` when
    /// known, else it is looked up on MariaDB).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] for a position of another kind or a server without a binlog;
    /// connection and privilege errors as classified by [`map_error`]. A purged or missing
    /// binlog file is reported by the first [`ChangeSource::next_events`] call.
    pub async fn start(
        url: &str,
        server_id: u32,
        from: &Position,
        filter: BinlogFilter,
    ) -> Result<Self> {
        let Position::Binlog { file, offset, gtid } = from else {
            return Err(Error::config(format!(
                "binlog change capture starts at a binlog position, not at {from}"
            )));
        };
        let mut conn = connect(url).await?;
        let facts: Option<(String, Option<i64>, Option<String>)> = conn
            .query_first("SELECT VERSION(), @@log_bin, @@global.binlog_checksum")
            .await
            .map_err(|e| map_error(e, "reading the source's binlog settings"))?;
        let (version, log_bin, checksum) = facts.unwrap_or_default();
        if log_bin.unwrap_or(0) == 0 {
            return Err(Error::config(
                "binary logging is off on the source: start it with log_bin",
            ));
        }
        let flavor = if is_mariadb(&version) {
            Flavor::MariaDb
        } else {
            Flavor::MySql
        };
        let collations: Vec<(u64, String)> = conn
            .query(
                "SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS \
                 WHERE ID IS NOT NULL",
            )
            .await
            .map_err(|e| map_error(e, "reading the source's collations"))?;
        let charsets = CharsetMap::from_pairs(
            collations
                .into_iter()
                .filter_map(|(id, cs)| u16::try_from(id).ok().map(|id| (id, cs))),
        );
        let gtid_state = match (flavor, gtid.as_deref()) {
            (Flavor::MariaDb, Some(g)) => GtidState::parse_mariadb(g)
                .ok_or_else(|| Error::config(format!("invalid MariaDB GTID position `{g}`")))?,
            (Flavor::MySql, Some(g)) => GtidState::parse_mysql(g)
                .ok_or_else(|| Error::config(format!("invalid MySQL GTID set `{g}`")))?,
            (Flavor::MariaDb, None) => {
                let pos: std::result::Result<Option<Option<String>>, _> = conn
                    .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (file.as_str(), *offset))
                    .await;
                match pos {
                    Ok(Some(Some(g))) => GtidState::parse_mariadb(&g).unwrap_or(GtidState::Unknown),
                    other => {
                        debug!(?other, "no gtid position for the start position");
                        GtidState::Unknown
                    }
                }
            }
            (Flavor::MySql, None) => GtidState::Unknown,
        };
        let heartbeat_ns = HEARTBEAT.as_nanos();
        let mut setup = vec![
            format!("SET @master_heartbeat_period = {heartbeat_ns}"),
            format!("SET @source_heartbeat_period = {heartbeat_ns}"),
            "SET @master_binlog_checksum = @@global.binlog_checksum".to_string(),
            "SET @source_binlog_checksum = @@global.binlog_checksum".to_string(),
        ];
        if flavor == Flavor::MariaDb {
            // Without capability 4, MariaDB replaces its GTID events by fake BEGIN and
            // dummy events.
            setup.push("SET @mariadb_slave_capability = 4".to_string());
        }
        for sql in setup {
            conn.query_drop(sql)
                .await
                .map_err(|e| map_error(e, "preparing the binlog connection"))?;
        }
        let connection_id = conn.id();
        let stream = conn
            .get_binlog_stream(
                BinlogStreamRequest::new(server_id)
                    .with_filename(file.as_bytes())
                    .with_pos(*offset),
            )
            .await
            .map_err(|e| map_error(e, format!("requesting the binlog from {file}:{offset}")))?;
        let checksum = checksum.is_some_and(|c| !c.eq_ignore_ascii_case("NONE"));
        let reader = EventReader::new(
            flavor,
            filter,
            charsets,
            checksum,
            file.clone(),
            *offset,
            gtid_state,
        );
        info!(position = %reader.position(), server_id, %version, "binlog reading started");
        Ok(Self {
            stream,
            connection_id,
            reader,
            last_received: Instant::now(),
            failed: false,
        })
    }

    /// The source's current end of log, with its GTID state: the position after everything
    /// committed so far (`SHOW MASTER STATUS`, or `SHOW BINARY LOG STATUS` on MySQL 8.4; on
    /// MariaDB the GTID position is `BINLOG_GTID_POS` of that very coordinate).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] if the binlog is off; connection and privilege errors.
    pub async fn current_position(url: &str) -> Result<Position> {
        let mut conn = connect(url).await?;
        let version: Option<String> = conn
            .query_first("SELECT VERSION()")
            .await
            .map_err(|e| map_error(e, "reading the source version"))?;
        let status = match conn.query_first::<Row, _>("SHOW MASTER STATUS").await {
            Ok(row) => row,
            Err(mysql_async::Error::Server(e)) if e.code == 1064 => conn
                .query_first::<Row, _>("SHOW BINARY LOG STATUS")
                .await
                .map_err(|e| map_error(e, "reading the binlog position"))?,
            Err(e) => return Err(map_error(e, "reading the binlog position")),
        };
        let row = status.ok_or_else(|| {
            Error::config("binary logging is off on the source: start it with log_bin")
        })?;
        let file: Option<String> = row.get(0);
        let offset: Option<u64> = row.get(1);
        let (Some(file), Some(offset)) = (file, offset) else {
            return Err(Error::new(
                ErrorKind::Database,
                "the source reported no binlog position",
            ));
        };
        let gtid = if is_mariadb(&version.unwrap_or_default()) {
            let g: Option<Option<String>> = conn
                .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (file.as_str(), offset))
                .await
                .map_err(|e| map_error(e, "reading the gtid position"))?;
            g.flatten()
        } else {
            row.columns_ref()
                .iter()
                .position(|c| c.name_str().eq_ignore_ascii_case("Executed_Gtid_Set"))
                .and_then(|i| row.get::<Option<String>, _>(i).flatten())
        };
        let gtid = gtid
            .map(|g| g.split_whitespace().collect::<String>())
            .filter(|g| !g.is_empty());
        let _ = conn.disconnect().await;
        Ok(Position::Binlog { file, offset, gtid })
    }

    /// The position after the last binlog event read (which may be ahead of the last event
    /// delivered).
    pub fn position(&self) -> Position {
        self.reader.position()
    }

    /// The server's id of the binlog connection (`CONNECTION_ID()`, the `Id` column of
    /// `SHOW PROCESSLIST`).
    pub fn connection_id(&self) -> u32 {
        self.connection_id
    }

    /// Stops reading and closes the connection.
    ///
    /// # Errors
    ///
    /// Connection errors while closing.
    pub async fn close(self) -> Result<()> {
        self.stream
            .close()
            .await
            .map_err(|e| map_error(e, "closing the binlog connection"))
    }

    fn fail(&mut self, e: Error) -> Error {
        self.failed = true;
        e.context(format!("reading the binlog at {}", self.reader.position()))
    }

    /// Reads one event from the stream into the reader.
    fn process(
        &mut self,
        item: Option<mysql_async::Result<mysql_async::binlog::events::Event>>,
    ) -> Result<()> {
        let event = match item {
            Some(Ok(event)) => event,
            Some(Err(e)) => {
                let e = map_error(e, "binlog stream failed");
                return Err(self.fail(e));
            }
            None => {
                let e = Error::new(ErrorKind::Connection, "the source closed the binlog stream");
                return Err(self.fail(e));
            }
        };
        self.last_received = Instant::now();
        let handled = self.reader.handle(&event);
        if handled.is_err() {
            self.failed = true;
        }
        handled
    }
}

#[dts_core::async_trait]
impl ChangeSource for MySqlBinlogSource {
    /// Waits up to `timeout` for the first event, then takes whatever else the stream
    /// already holds, up to `max` events; returns as soon as the stream has nothing more
    /// buffered. Rows of one binlog event beyond `max` wait in memory for the next call.
    async fn next_events(
        &mut self,
        max: usize,
        timeout: std::time::Duration,
    ) -> Result<Vec<ChangeEvent>> {
        if self.failed {
            return Err(Error::new(
                ErrorKind::Connection,
                "the binlog source failed earlier: start a new one at the last acknowledged \
                 position",
            ));
        }
        let max = max.max(1);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut out = Vec::new();
        let mut read = 0usize;
        loop {
            while out.len() < max {
                match self.reader.out.pop_front() {
                    Some(e) => out.push(e),
                    None => break,
                }
            }
            if out.len() >= max {
                return Ok(out);
            }
            if !out.is_empty() || self.reader.has_progress() {
                // Deliver what we have unless the stream holds more right now; a stream that
                // never runs dry of skipped events still returns within the budget.
                if read >= READ_BUDGET || tokio::time::Instant::now() >= deadline {
                    break;
                }
                match self.stream.next().now_or_never() {
                    Some(item) => self.process(item)?,
                    None => break,
                }
                read += 1;
                continue;
            }
            let silence_end = tokio::time::Instant::from_std(self.last_received + SILENCE_LIMIT);
            let until = deadline.min(silence_end);
            match tokio::time::timeout_at(until, self.stream.next()).await {
                Ok(item) => self.process(item)?,
                Err(_) if silence_end <= deadline => {
                    let e = Error::new(
                        ErrorKind::Connection,
                        format!(
                            "no event or heartbeat from the source for {} s",
                            SILENCE_LIMIT.as_secs()
                        ),
                    );
                    return Err(self.fail(e));
                }
                Err(_) => break,
            }
        }
        if out.len() < max {
            if let Some(commit) = self.reader.progress_commit() {
                out.push(commit);
            }
        }
        Ok(out)
    }

    /// Nothing to do: the server keeps its binlog by its own rules (`binlog_expire_logs_seconds`),
    /// not for its readers.
    fn acknowledge(&mut self, _position: &Position) {}
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod send_tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    #[allow(dead_code)]
    fn futures_are_send(source: &mut MySqlBinlogSource) {
        let url = "mysql://root@127.0.0.1:1";
        let from = Position::Binlog {
            file: "binlog.000001".into(),
            offset: 4,
            gtid: None,
        };
        assert_send(&MySqlBinlogSource::start(
            url,
            2,
            &from,
            BinlogFilter::all(),
        ));
        assert_send(&MySqlBinlogSource::current_position(url));
        assert_send(&source.next_events(1, Duration::from_secs(1)));
    }

    #[test]
    fn filters_select_by_database() {
        let f = BinlogFilter::databases(["shop"]);
        assert!((f.tables)(&TableName::new("shop", "t")));
        assert!(!(f.tables)(&TableName::new("other", "t")));
        assert!((f.databases)("shop") && !(f.databases)("shopx"));
        assert_eq!(format!("{f:?}"), "BinlogFilter { .. }");
    }
}
