//! A PostgreSQL replication connection (`replication=database` in the startup packet).
//!
//! `tokio-postgres` 0.7 cannot open one: its startup packet carries only user, database,
//! options and application name, and `replication` is not a setting the server takes
//! through `options`. So this is a small client over `postgres-protocol`: TLS through
//! rustls as every other connection, authentication (trust, password, md5, SCRAM-SHA-256),
//! and the simple query protocol, which is what replication commands
//! (`CREATE_REPLICATION_SLOT`, `DROP_REPLICATION_SLOT`, `IDENTIFY_SYSTEM`) use, and
//! streaming: `START_REPLICATION` and its CopyBoth sub-protocol (`XLogData`, primary
//! keepalives, standby status updates), whose response `postgres-protocol` does not parse,
//! so the stream's frames are split here.

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use dts_core::{Error, ErrorKind, Result};
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::{backend::Message, frontend};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::endpoint::SslMode;
use crate::postgres::options::PgConnectOptions;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One replication connection.
pub(crate) struct ReplicationConnection {
    stream: Box<dyn Stream>,
    read: BytesMut,
    write: BytesMut,
}

impl std::fmt::Debug for ReplicationConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationConnection")
            .finish_non_exhaustive()
    }
}

fn io_error(what: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::new(ErrorKind::Connection, what.to_string()).with_source(e)
}

fn protocol_error(what: impl Into<String>) -> Error {
    Error::new(ErrorKind::Connection, what.into())
}

impl ReplicationConnection {
    /// Opens a replication connection to the server and database `options` name.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Connection`] when the server cannot be reached in time or the protocol
    /// fails; [`ErrorKind::Privilege`] when the server refuses the account (no `REPLICATION`
    /// attribute, or no `pg_hba.conf` line for replication connections).
    pub(crate) async fn connect(options: &PgConnectOptions) -> Result<Self> {
        let endpoint = options.endpoint();
        let what = format!(
            "cannot open a replication connection to postgres server `{}`",
            endpoint.address()
        );
        match tokio::time::timeout(endpoint.connect_timeout, Self::open(options, &what)).await {
            Ok(result) => result,
            Err(_) => Err(endpoint.timeout_error(&what)),
        }
    }

    async fn open(options: &PgConnectOptions, what: &str) -> Result<Self> {
        let endpoint = options.endpoint();
        let stream: Box<dyn Stream> = if endpoint.host.starts_with('/') {
            #[cfg(unix)]
            {
                let path = format!("{}/.s.PGSQL.{}", endpoint.host, endpoint.port);
                Box::new(
                    tokio::net::UnixStream::connect(path)
                        .await
                        .map_err(io_error(what))?,
                )
            }
            #[cfg(not(unix))]
            return Err(Error::config(
                "unix sockets are not available on this platform",
            ));
        } else {
            let mut tcp = tokio::net::TcpStream::connect((endpoint.host.as_str(), endpoint.port))
                .await
                .map_err(io_error(what))?;
            match options.tls_config()? {
                None => Box::new(tcp),
                Some(config) => {
                    let mut buf = BytesMut::new();
                    frontend::ssl_request(&mut buf);
                    tcp.write_all(&buf).await.map_err(io_error(what))?;
                    let answer = tcp.read_u8().await.map_err(io_error(what))?;
                    if answer == b'S' {
                        let name = rustls::pki_types::ServerName::try_from(
                            endpoint
                                .host
                                .trim_start_matches('[')
                                .trim_end_matches(']')
                                .to_string(),
                        )
                        .map_err(|e| Error::config(what.to_string()).with_source(e))?;
                        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                            .connect(name, tcp)
                            .await
                            .map_err(io_error(what))?;
                        Box::new(tls)
                    } else if endpoint.ssl_mode == SslMode::Preferred {
                        Box::new(tcp)
                    } else {
                        return Err(protocol_error(format!(
                            "{what}: the server does not accept TLS"
                        )));
                    }
                }
            }
        };
        let mut conn = Self {
            stream,
            read: BytesMut::with_capacity(8192),
            write: BytesMut::new(),
        };
        let database = endpoint
            .database
            .clone()
            .unwrap_or_else(|| endpoint.user.clone());
        let mut params = vec![
            ("user", endpoint.user.as_str()),
            ("database", database.as_str()),
            ("replication", "database"),
            ("client_encoding", "UTF8"),
        ];
        if let Some(name) = options.get_application_name() {
            params.push(("application_name", name));
        }
        frontend::startup_message(params.iter().copied(), &mut conn.write)
            .map_err(io_error(what))?;
        conn.flush(what).await?;
        let password = endpoint.password.resolve()?;
        let password = || {
            password
                .as_ref()
                .map(|p| p.expose().as_bytes().to_vec())
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::Privilege,
                        format!("{what}: the server asks for a password and none is given"),
                    )
                })
        };
        let mut scram: Option<ScramSha256> = None;
        loop {
            match conn.next(what).await? {
                Message::AuthenticationOk | Message::ParameterStatus(_) => {}
                Message::BackendKeyData(_) | Message::NoticeResponse(_) => {}
                Message::AuthenticationCleartextPassword => {
                    frontend::password_message(&password()?, &mut conn.write)
                        .map_err(io_error(what))?;
                    conn.flush(what).await?;
                }
                Message::AuthenticationMd5Password(body) => {
                    let hash = md5_hash(endpoint.user.as_bytes(), &password()?, body.salt());
                    frontend::password_message(hash.as_bytes(), &mut conn.write)
                        .map_err(io_error(what))?;
                    conn.flush(what).await?;
                }
                Message::AuthenticationSasl(body) => {
                    let mut mechanisms = body.mechanisms();
                    let mut offered = false;
                    while let Some(m) = mechanisms.next().map_err(io_error(what))? {
                        offered |= m == SCRAM_SHA_256;
                    }
                    if !offered {
                        return Err(protocol_error(format!(
                            "{what}: the server offers no supported SASL mechanism"
                        )));
                    }
                    let s = ScramSha256::new(&password()?, ChannelBinding::unsupported());
                    frontend::sasl_initial_response(SCRAM_SHA_256, s.message(), &mut conn.write)
                        .map_err(io_error(what))?;
                    conn.flush(what).await?;
                    scram = Some(s);
                }
                Message::AuthenticationSaslContinue(body) => {
                    let s = scram
                        .as_mut()
                        .ok_or_else(|| protocol_error(format!("{what}: unexpected SASL step")))?;
                    s.update(body.data()).map_err(|e| {
                        Error::new(ErrorKind::Privilege, what.to_string()).with_source(e)
                    })?;
                    frontend::sasl_response(s.message(), &mut conn.write)
                        .map_err(io_error(what))?;
                    conn.flush(what).await?;
                }
                Message::AuthenticationSaslFinal(body) => {
                    let s = scram
                        .as_mut()
                        .ok_or_else(|| protocol_error(format!("{what}: unexpected SASL step")))?;
                    s.finish(body.data()).map_err(|e| {
                        Error::new(ErrorKind::Privilege, what.to_string()).with_source(e)
                    })?;
                }
                Message::ReadyForQuery(_) => return Ok(conn),
                Message::ErrorResponse(body) => return Err(server_error(&body, what)),
                _ => {
                    return Err(protocol_error(format!(
                        "{what}: unexpected message during authentication"
                    )))
                }
            }
        }
    }

    async fn flush(&mut self, what: &str) -> Result<()> {
        self.stream
            .write_all(&self.write)
            .await
            .map_err(io_error(what))?;
        self.stream.flush().await.map_err(io_error(what))?;
        self.write.clear();
        Ok(())
    }

    async fn next(&mut self, what: &str) -> Result<Message> {
        loop {
            if let Some(message) = Message::parse(&mut self.read).map_err(io_error(what))? {
                return Ok(message);
            }
            let n = self
                .stream
                .read_buf(&mut self.read)
                .await
                .map_err(io_error(what))?;
            if n == 0 {
                return Err(protocol_error(format!(
                    "{what}: the server closed the connection"
                )));
            }
        }
    }

    /// Runs `sql` (a replication command or plain SQL) through the simple query protocol
    /// and returns the rows of its result as text (`None` for NULL).
    ///
    /// # Errors
    ///
    /// The server's error, classified by SQLSTATE and prefixed with `what`.
    pub(crate) async fn simple_query(
        &mut self,
        sql: &str,
        what: &str,
    ) -> Result<Vec<Vec<Option<String>>>> {
        frontend::query(sql, &mut self.write).map_err(io_error(what))?;
        self.flush(what).await?;
        let mut rows = Vec::new();
        let mut failure = None;
        loop {
            match self.next(what).await? {
                Message::DataRow(body) => {
                    let buf = body.buffer();
                    let mut ranges = body.ranges();
                    let mut row = Vec::new();
                    while let Some(range) = ranges.next().map_err(io_error(what))? {
                        row.push(match range {
                            Some(r) => Some(
                                String::from_utf8(buf[r].to_vec())
                                    .map_err(|e| protocol_error(what).with_source(e))?,
                            ),
                            None => None,
                        });
                    }
                    rows.push(row);
                }
                Message::ErrorResponse(body) => failure = Some(server_error(&body, what)),
                Message::ReadyForQuery(_) => break,
                _ => {}
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(rows),
        }
    }

    /// The next frame: CopyData and CopyBothResponse are split here (`postgres-protocol`
    /// does not know the latter), everything else is parsed by `postgres-protocol`.
    /// Cancel-safe: a frame is taken from the buffer only once it is whole.
    async fn next_frame(&mut self, what: &str) -> Result<Frame> {
        loop {
            if self.read.len() >= 5 && matches!(self.read[0], b'd' | b'W') {
                let len =
                    u32::from_be_bytes([self.read[1], self.read[2], self.read[3], self.read[4]]);
                let total = usize::try_from(len).unwrap_or(usize::MAX).saturating_add(1);
                if self.read.len() >= total {
                    let tag = self.read[0];
                    let mut frame = self.read.split_to(total).freeze();
                    frame.advance(5);
                    return Ok(if tag == b'd' {
                        Frame::CopyData(frame)
                    } else {
                        Frame::CopyBoth
                    });
                }
            } else if let Some(message) = Message::parse(&mut self.read).map_err(io_error(what))? {
                return Ok(Frame::Other(message));
            }
            let n = self
                .stream
                .read_buf(&mut self.read)
                .await
                .map_err(io_error(what))?;
            if n == 0 {
                return Err(protocol_error(format!(
                    "{what}: the server closed the connection"
                )));
            }
        }
    }

    /// Sends `command` (`START_REPLICATION …`) and waits until the server switches to
    /// streaming.
    ///
    /// # Errors
    ///
    /// The server's error (an unknown slot or publication, a slot in use), classified by
    /// SQLSTATE.
    pub(crate) async fn start_streaming(&mut self, command: &str, what: &str) -> Result<()> {
        frontend::query(command, &mut self.write).map_err(io_error(what))?;
        self.flush(what).await?;
        loop {
            match self.next_frame(what).await? {
                Frame::CopyBoth => return Ok(()),
                Frame::Other(Message::ErrorResponse(body)) => {
                    let error = server_error(&body, what);
                    // The server ends the command with ReadyForQuery.
                    while !matches!(
                        self.next_frame(what).await?,
                        Frame::Other(Message::ReadyForQuery(_))
                    ) {}
                    return Err(error);
                }
                Frame::Other(Message::NoticeResponse(_) | Message::ParameterStatus(_)) => {}
                _ => {
                    return Err(protocol_error(format!(
                        "{what}: unexpected message starting replication"
                    )))
                }
            }
        }
    }

    /// The next message of the replication stream. Cancel-safe.
    ///
    /// # Errors
    ///
    /// The server's error, or [`ErrorKind::Connection`] when the stream ends or breaks.
    pub(crate) async fn next_stream_message(&mut self, what: &str) -> Result<StreamMessage> {
        loop {
            match self.next_frame(what).await? {
                Frame::CopyData(mut data) => {
                    let truncated = || protocol_error(format!("{what}: truncated stream message"));
                    match data.first().copied() {
                        Some(b'w') if data.len() >= 25 => {
                            // Kind, WAL start, WAL end, send time: the message's own
                            // positions are what the commits carry.
                            data.advance(25);
                            return Ok(StreamMessage::XLogData { data });
                        }
                        Some(b'k') if data.len() >= 18 => {
                            data.advance(1);
                            let end = data.get_u64();
                            data.advance(8);
                            let reply = data.get_u8() != 0;
                            return Ok(StreamMessage::Keepalive { end, reply });
                        }
                        Some(b'w' | b'k') => return Err(truncated()),
                        _ => {
                            return Err(protocol_error(format!(
                                "{what}: unknown replication stream message"
                            )))
                        }
                    }
                }
                Frame::Other(Message::ErrorResponse(body)) => {
                    return Err(server_error(&body, what))
                }
                Frame::Other(Message::NoticeResponse(_) | Message::ParameterStatus(_)) => {}
                Frame::Other(Message::CopyDone) => {
                    return Err(protocol_error(format!(
                        "{what}: the server ended the replication stream"
                    )))
                }
                _ => {
                    return Err(protocol_error(format!(
                        "{what}: unexpected message in the replication stream"
                    )))
                }
            }
        }
    }

    /// Sends a standby status update: WAL up to `lsn` is written, flushed and applied on
    /// this side (the slot may release what comes before it).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Connection`] when the connection fails.
    pub(crate) async fn send_status(&mut self, lsn: u64, what: &str) -> Result<()> {
        let mut body = BytesMut::with_capacity(34);
        body.put_u8(b'r');
        body.put_u64(lsn);
        body.put_u64(lsn);
        body.put_u64(lsn);
        body.put_i64(pg_now_micros());
        body.put_u8(0);
        frontend::CopyData::new(body.freeze())
            .map_err(io_error(what))?
            .write(&mut self.write);
        self.flush(what).await
    }

    /// Ends the connection politely.
    pub(crate) async fn close(mut self) {
        frontend::terminate(&mut self.write);
        let _ = self.flush("closing the replication connection").await;
        let _ = self.stream.shutdown().await;
    }
}

/// A classified error from the server's `ErrorResponse`.
fn server_error(
    body: &postgres_protocol::message::backend::ErrorResponseBody,
    what: &str,
) -> Error {
    let mut code = String::new();
    let mut message = String::new();
    let mut fields = body.fields();
    while let Ok(Some(field)) = fields.next() {
        let value = String::from_utf8_lossy(field.value_bytes()).into_owned();
        match field.type_() {
            b'C' => code = value,
            b'M' => message = value,
            _ => {}
        }
    }
    let kind = match code.as_str() {
        c if c.starts_with("28") || c == "42501" => ErrorKind::Privilege,
        c if c.starts_with("08") || c.starts_with("57P") => ErrorKind::Connection,
        "55006" | "40001" | "40P01" | "55P03" => ErrorKind::Transient,
        "53400" | "55000" => ErrorKind::Config,
        _ => ErrorKind::Database,
    };
    Error::new(kind, format!("{what}: {message} (SQLSTATE {code})"))
}

/// A frame of the backend protocol.
enum Frame {
    CopyData(Bytes),
    CopyBoth,
    Other(Message),
}

/// A message of the replication stream.
#[derive(Debug)]
pub(crate) enum StreamMessage {
    /// WAL data: one output plugin message.
    XLogData { data: Bytes },
    /// The server's WAL end, and whether it wants a status update at once.
    Keepalive { end: u64, reply: bool },
}

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
pub(crate) const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Now, in microseconds since 2000-01-01 UTC.
fn pg_now_micros() -> i64 {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    unix - PG_EPOCH_MICROS
}
