//! How to reach a PostgreSQL server: [`PgConnectOptions`], parsed from a URL with libpq's
//! options.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use dts_core::{Error, ErrorKind, Result};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config, Connection, NoTls, Socket};

use super::error::map_error;
use crate::tls::{self, Verification};
use crate::url::{self, ConnUrl, PasswordSource, Secret};

/// The default connect timeout.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether and how a connection uses TLS, as libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PgSslMode {
    /// `disable`: plain text.
    Disable,
    /// `prefer` (the default): TLS without verifying the certificate if the server accepts
    /// it, else plain text.
    Prefer,
    /// `require`: TLS without verifying the certificate (unless `sslrootcert` is given:
    /// then as `verify-ca`); fails if the server does not accept TLS.
    Require,
    /// `verify-ca`: TLS; the certificate must be signed by an authority of `sslrootcert`.
    /// Its host names are not checked.
    VerifyCa,
    /// `verify-full`: as `verify-ca`, and the certificate must be issued for the host
    /// connected to.
    VerifyFull,
}

impl PgSslMode {
    /// The name as libpq spells it, e.g. `verify-full`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for PgSslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PgSslMode {
    type Err = Error;

    /// Parses a libpq mode name. `allow` is read as `prefer`.
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "disable" => Self::Disable,
            "allow" | "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => {
                return Err(Error::config(format!(
                    "unknown sslmode `{s}`: expected disable, prefer, require, verify-ca or \
                     verify-full"
                )))
            }
        })
    }
}

/// How to connect to a PostgreSQL server.
///
/// Parsed from `postgres://user:password@host:port/database?option=value&…` (or
/// `postgresql://`); user, password and database are percent-decoded, so a password with
/// `/`, `@`, `?` or `#` is written percent-encoded. The options follow libpq:
///
/// | option | meaning | default |
/// |---|---|---|
/// | `sslmode` | `disable`, `prefer`, `require`, `verify-ca`, `verify-full` | `prefer` |
/// | `sslrootcert` | PEM file of the trusted authorities (required for `verify-*`; with `require` it means `verify-ca`) | none |
/// | `sslcert`, `sslkey` | PEM client certificate and key (`cert` authentication) | none |
/// | `password_file` | file holding the password, read at each connect (one trailing newline removed) | none |
/// | `connect_timeout` | seconds to wait for a connection (`0`: no limit) | 10 |
/// | `user`, `password`, `host`, `port`, `dbname`, `application_name` | as the URL parts | |
///
/// The port defaults to 5432, the user to `postgres`, the database to the user name.
/// `host` may name a Unix socket directory (a path starting with `/`). Sessions are set up
/// for lossless reading and writing: UTC, ISO dates, full float precision, hex `bytea`.
///
/// `Debug` and `Display` show the URL with the password as `***`; the type is not
/// `Serialize`.
///
/// ```
/// use dts_connectors::postgres::{PgConnectOptions, PgSslMode};
///
/// let opts: PgConnectOptions = "postgres://app:p%40ss@db/shop?sslmode=verify-full&sslrootcert=/ca.pem"
///     .parse()
///     .unwrap();
/// assert_eq!(opts.get_ssl_mode(), PgSslMode::VerifyFull);
/// assert!(!format!("{opts:?}").contains("p@ss"));
/// let opts = opts.ssl_mode(PgSslMode::Require);
/// assert_eq!(opts.get_ssl_mode(), PgSslMode::Require);
/// ```
#[derive(Clone)]
pub struct PgConnectOptions {
    host: String,
    port: u16,
    user: String,
    password: PasswordSource,
    database: Option<String>,
    application_name: Option<String>,
    ssl_mode: PgSslMode,
    ssl_root_cert: Option<PathBuf>,
    ssl_cert: Option<PathBuf>,
    ssl_key: Option<PathBuf>,
    connect_timeout: Duration,
}

impl Default for PgConnectOptions {
    /// `postgres` on `localhost:5432`, no password, `prefer`.
    fn default() -> Self {
        Self {
            host: "localhost".to_owned(),
            port: 5432,
            user: "postgres".to_owned(),
            password: PasswordSource::None,
            database: None,
            application_name: None,
            ssl_mode: PgSslMode::Prefer,
            ssl_root_cert: None,
            ssl_cert: None,
            ssl_key: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

impl FromStr for PgConnectOptions {
    type Err = Error;

    fn from_str(url: &str) -> Result<Self> {
        let parts = ConnUrl::parse(url, &["postgres", "postgresql"], "postgres")?;
        let mut opts = Self::default();
        if let Some(host) = parts.host {
            opts.host = host;
        }
        if let Some(port) = parts.port {
            opts.port = port;
        }
        if let Some(user) = parts.user {
            opts.user = user;
        }
        if let Some(password) = parts.password {
            opts.password = PasswordSource::Inline(password);
        }
        opts.database = parts.database;
        for (name, value) in parts.params {
            let bad = |reason: &str| url::bad_option("postgres", url, &name, reason);
            let path = || {
                (!value.is_empty())
                    .then(|| PathBuf::from(&value))
                    .ok_or_else(|| bad("is empty"))
            };
            match name.as_str() {
                "sslmode" => {
                    opts.ssl_mode = value.parse().map_err(|_| {
                        bad("must be disable, prefer, require, verify-ca or verify-full")
                    })?;
                }
                "sslrootcert" => opts.ssl_root_cert = Some(path()?),
                "sslcert" => opts.ssl_cert = Some(path()?),
                "sslkey" => opts.ssl_key = Some(path()?),
                "password_file" => {
                    opts.password = PasswordSource::File(path()?);
                }
                "connect_timeout" => {
                    opts.connect_timeout = url::parse_timeout(&value)
                        .ok_or_else(|| bad("must be a whole number of seconds"))?;
                }
                "user" => opts.user = value,
                "password" => opts.password = PasswordSource::Inline(Secret::new(value)),
                "host" => opts.host = value,
                "port" => {
                    opts.port = value
                        .parse()
                        .ok()
                        .filter(|&p| p != 0)
                        .ok_or_else(|| bad("must be a number from 1 to 65535"))?;
                }
                "dbname" => opts.database = Some(value),
                "application_name" => opts.application_name = Some(value),
                _ => return Err(bad("is unknown")),
            }
        }
        Ok(opts)
    }
}

impl PgConnectOptions {
    /// Options for `postgres` on `localhost:5432` (as [`Default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the host name, address, or Unix socket directory (a path starting with `/`).
    #[must_use]
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// Sets the TCP port.
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Sets the user name.
    #[must_use]
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = user.into();
        self
    }

    /// Sets the password.
    #[must_use]
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = PasswordSource::Inline(Secret::new(password));
        self
    }

    /// Reads the password from `path` at each connect instead (one trailing newline is
    /// removed).
    #[must_use]
    pub fn password_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.password = PasswordSource::File(path.into());
        self
    }

    /// Sets the database.
    #[must_use]
    pub fn database(mut self, database: impl Into<String>) -> Self {
        self.database = Some(database.into());
        self
    }

    /// Sets the `application_name` the server shows for the session.
    #[must_use]
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = Some(name.into());
        self
    }

    /// Sets the TLS mode.
    #[must_use]
    pub fn ssl_mode(mut self, mode: PgSslMode) -> Self {
        self.ssl_mode = mode;
        self
    }

    /// Sets the PEM file of trusted authorities.
    #[must_use]
    pub fn ssl_root_cert(mut self, path: impl Into<PathBuf>) -> Self {
        self.ssl_root_cert = Some(path.into());
        self
    }

    /// Sets the PEM client certificate (with [`PgConnectOptions::ssl_key`]).
    #[must_use]
    pub fn ssl_cert(mut self, path: impl Into<PathBuf>) -> Self {
        self.ssl_cert = Some(path.into());
        self
    }

    /// Sets the PEM private key of the client certificate.
    #[must_use]
    pub fn ssl_key(mut self, path: impl Into<PathBuf>) -> Self {
        self.ssl_key = Some(path.into());
        self
    }

    /// Sets how long to wait for a connection.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The host.
    pub fn get_host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn get_port(&self) -> u16 {
        self.port
    }

    /// The user.
    pub fn get_user(&self) -> &str {
        &self.user
    }

    /// The database, if named (the server defaults to the user name).
    pub fn get_database(&self) -> Option<&str> {
        self.database.as_deref()
    }

    /// The TLS mode.
    pub fn get_ssl_mode(&self) -> PgSslMode {
        self.ssl_mode
    }

    /// The connect timeout.
    pub fn get_connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// `host:port`, for messages.
    fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The certificate verification the mode asks for (`require` with a root certificate
    /// verifies the chain, as libpq does).
    fn verification(&self) -> Verification {
        match self.ssl_mode {
            PgSslMode::VerifyFull => Verification::ChainAndHost,
            PgSslMode::VerifyCa => Verification::Chain,
            PgSslMode::Require if self.ssl_root_cert.is_some() => Verification::Chain,
            _ => Verification::None,
        }
    }

    /// The rustls configuration for the mode, or `None` for `disable`.
    fn tls_config(&self) -> Result<Option<rustls::ClientConfig>> {
        if self.ssl_mode == PgSslMode::Disable {
            return Ok(None);
        }
        let verification = self.verification();
        let roots = match &self.ssl_root_cert {
            Some(path) => tls::load_certs(path, "sslrootcert")?,
            None if verification != Verification::None => {
                return Err(Error::config(format!(
                    "postgres url `{self}`: sslmode={} needs sslrootcert, the authority to \
                     verify the server certificate with",
                    self.ssl_mode
                )))
            }
            None => Vec::new(),
        };
        let identity = match (&self.ssl_cert, &self.ssl_key) {
            (Some(cert), Some(key)) => Some((
                tls::load_certs(cert, "sslcert")?,
                tls::load_key(key, "sslkey")?,
            )),
            (None, None) => None,
            _ => {
                return Err(Error::config(format!(
                    "postgres url `{self}`: sslcert and sslkey go together"
                )))
            }
        };
        tls::client_config(verification, roots, identity).map(Some)
    }

    /// The driver configuration, the password read.
    fn driver_config(&self) -> Result<Config> {
        let mut config = Config::new();
        if self.host.starts_with('/') {
            config.host_path(&self.host);
        } else {
            config.host(&self.host);
        }
        config
            .port(self.port)
            .user(&self.user)
            .connect_timeout(self.connect_timeout)
            .ssl_mode(match self.ssl_mode {
                PgSslMode::Disable => SslMode::Disable,
                PgSslMode::Prefer => SslMode::Prefer,
                _ => SslMode::Require,
            });
        if let Some(password) = self.password.resolve()? {
            config.password(password.expose());
        }
        if let Some(db) = &self.database {
            config.dbname(db);
        }
        if let Some(name) = &self.application_name {
            config.application_name(name);
        }
        Ok(config)
    }

    /// Opens a connection, spawns its task on the current tokio runtime, and returns the
    /// client. The session is not set up further (see `connect_client` for that).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Connection`] naming host and port when the server cannot be reached in
    /// time, refuses TLS under `require` or higher, or its certificate fails a check (the
    /// message names the check); [`ErrorKind::Privilege`] when the server refuses the
    /// account (e.g. a `pg_hba.conf` rule for plain connections); [`ErrorKind::Config`] for
    /// unreadable files or `verify-*` without `sslrootcert`.
    pub async fn connect(&self) -> Result<Client> {
        let config = self.driver_config()?;
        let tls = self.tls_config()?;
        let what = format!("cannot connect to postgres server `{}`", self.address());
        let attempt = async {
            match tls {
                None => {
                    let (client, connection) = config.connect(NoTls).await?;
                    spawn(connection);
                    Ok(client)
                }
                Some(tls) => {
                    let (client, connection) =
                        config.connect(tls::postgres::MakeRustls::new(tls)).await?;
                    spawn(connection);
                    Ok(client)
                }
            }
        };
        match tokio::time::timeout(self.connect_timeout, attempt).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(match tls::certificate_failure(&e) {
                Some(check) => {
                    Error::new(ErrorKind::Connection, format!("{what}: {check}")).with_source(e)
                }
                None => map_error(e, what),
            }),
            Err(_) => Err(Error::new(
                ErrorKind::Connection,
                format!(
                    "{what}: no connection within {} s",
                    self.connect_timeout.as_secs()
                ),
            )),
        }
    }
}

/// Drives a connection on the current runtime until it closes.
fn spawn<T>(connection: Connection<Socket, T>)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "postgres connection closed");
        }
    });
}

impl fmt::Display for PgConnectOptions {
    /// The URL of these options, with the password (if any) as `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "postgres://{}", url::encode(&self.user))?;
        if matches!(self.password, PasswordSource::Inline(_)) {
            f.write_str(":***")?;
        }
        let mut params = Vec::new();
        if self.host.starts_with('/') {
            f.write_str("@")?;
            params.push(format!("host={}", url::encode(&self.host)));
            params.push(format!("port={}", self.port));
        } else {
            write!(f, "@{}", self.address())?;
        }
        if let Some(db) = &self.database {
            write!(f, "/{}", url::encode(db))?;
        }
        if self.ssl_mode != PgSslMode::Prefer {
            params.push(format!("sslmode={}", self.ssl_mode));
        }
        for (name, path) in [
            ("sslrootcert", &self.ssl_root_cert),
            ("sslcert", &self.ssl_cert),
            ("sslkey", &self.ssl_key),
        ] {
            if let Some(path) = path {
                params.push(format!(
                    "{name}={}",
                    url::encode(&path.display().to_string())
                ));
            }
        }
        if let PasswordSource::File(path) = &self.password {
            params.push(format!(
                "password_file={}",
                url::encode(&path.display().to_string())
            ));
        }
        if let Some(name) = &self.application_name {
            params.push(format!("application_name={}", url::encode(name)));
        }
        if self.connect_timeout != DEFAULT_CONNECT_TIMEOUT {
            params.push(format!(
                "connect_timeout={}",
                self.connect_timeout.as_secs()
            ));
        }
        if !params.is_empty() {
            write!(f, "?{}", params.join("&"))?;
        }
        Ok(())
    }
}

impl fmt::Debug for PgConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConnectOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("database", &self.database)
            .field("application_name", &self.application_name)
            .field("ssl_mode", &self.ssl_mode)
            .field("ssl_root_cert", &self.ssl_root_cert)
            .field("ssl_cert", &self.ssl_cert)
            .field("ssl_key", &self.ssl_key)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_libpq_options() {
        let o: PgConnectOptions = "postgresql://u:p%2F%40%3F%23@h:5433/db?sslmode=verify-ca\
                                   &sslrootcert=/ca.pem&sslcert=/c.pem&sslkey=/c.key\
                                   &connect_timeout=2&application_name=dts"
            .parse()
            .unwrap();
        assert_eq!((o.get_host(), o.get_port(), o.get_user()), ("h", 5433, "u"));
        assert_eq!(o.get_database(), Some("db"));
        assert_eq!(o.get_ssl_mode(), PgSslMode::VerifyCa);
        assert_eq!(o.get_connect_timeout(), Duration::from_secs(2));
        assert_eq!(o.password.resolve().unwrap().unwrap().expose(), "p/@?#");
        let shown = format!("{o} {o:?}");
        assert!(
            !shown.contains("p/@?#") && !shown.contains("%2F%40"),
            "{shown}"
        );
        assert_eq!(o.verification(), Verification::Chain);
    }

    #[test]
    fn applies_libpqs_defaults() {
        let o: PgConnectOptions = "postgres://db".parse().unwrap();
        assert_eq!((o.get_port(), o.get_user()), (5432, "postgres"));
        assert_eq!(o.get_ssl_mode(), PgSslMode::Prefer);
        assert_eq!(o.get_connect_timeout(), Duration::from_secs(10));
        let o: PgConnectOptions = "postgres://db?sslmode=require".parse().unwrap();
        assert_eq!(o.verification(), Verification::None);
        let o: PgConnectOptions = "postgres://db?sslmode=require&sslrootcert=/ca.pem"
            .parse()
            .unwrap();
        assert_eq!(o.verification(), Verification::Chain);
        let o: PgConnectOptions = "postgres://db?sslmode=verify-full".parse().unwrap();
        let e = o.tls_config().unwrap_err();
        assert!(e.message().contains("needs sslrootcert"), "{e}");
    }

    #[test]
    fn rejects_bad_options_without_showing_the_password() {
        for url in [
            "postgres://u:s3cret@h?sslmode=sometimes",
            "postgres://u:s3cret@h?ssl-mode=REQUIRED",
            "postgres://u:s3cret@h?connect_timeout=soon",
            "postgres://u:s3cret@h:99999",
            "mysql://u:s3cret@h",
            "postgres://u@h?password=s3cret&bogus=1",
        ] {
            let e = url.parse::<PgConnectOptions>().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config);
            assert!(!e.report().contains("s3cret"), "{}", e.report());
        }
    }
}
