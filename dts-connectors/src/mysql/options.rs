//! How to reach a MySQL or MariaDB server: [`MySqlConnectOptions`], parsed from a URL with
//! the options of the MySQL command-line client.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use dts_core::{Error, ErrorKind, Result};
use mysql_async::{ClientIdentity, Conn, Opts, OptsBuilder, SslOpts};

use super::error::map_error;
use crate::tls;
use crate::url::{self, ConnUrl, PasswordSource, Secret};

/// The default connect timeout.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether and how a connection uses TLS, as the MySQL client's `--ssl-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MySqlSslMode {
    /// `DISABLED`: plain text.
    Disabled,
    /// `PREFERRED` (the default): TLS without verifying the certificate if the server
    /// offers it, else plain text.
    Preferred,
    /// `REQUIRED`: TLS without verifying the certificate; fails if the server does not
    /// offer TLS.
    Required,
    /// `VERIFY_CA`: TLS; the certificate must be signed by a trusted authority (`ssl-ca`,
    /// else the built-in web roots). Its host names are not checked.
    VerifyCa,
    /// `VERIFY_IDENTITY`: as `VERIFY_CA`, and the certificate must be issued for the host
    /// connected to.
    VerifyIdentity,
}

impl MySqlSslMode {
    /// The name as the MySQL client spells it, e.g. `VERIFY_CA`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disabled => "DISABLED",
            Self::Preferred => "PREFERRED",
            Self::Required => "REQUIRED",
            Self::VerifyCa => "VERIFY_CA",
            Self::VerifyIdentity => "VERIFY_IDENTITY",
        }
    }
}

impl fmt::Display for MySqlSslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MySqlSslMode {
    type Err = Error;

    /// Parses a mode name, in any letter case.
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "DISABLED" => Self::Disabled,
            "PREFERRED" => Self::Preferred,
            "REQUIRED" => Self::Required,
            "VERIFY_CA" => Self::VerifyCa,
            "VERIFY_IDENTITY" => Self::VerifyIdentity,
            _ => {
                return Err(Error::config(format!(
                    "unknown ssl-mode `{s}`: expected DISABLED, PREFERRED, REQUIRED, VERIFY_CA \
                     or VERIFY_IDENTITY"
                )))
            }
        })
    }
}

/// How to connect to a MySQL or MariaDB server.
///
/// Parsed from `mysql://user:password@host:port/database?option=value&…` (or `mariadb://`);
/// user, password and database are percent-decoded, so a password with `/`, `@`, `?` or
/// `#` is written percent-encoded. The options follow the MySQL command-line client:
///
/// | option | meaning | default |
/// |---|---|---|
/// | `ssl-mode` | `DISABLED`, `PREFERRED`, `REQUIRED`, `VERIFY_CA`, `VERIFY_IDENTITY` | `PREFERRED`, or `VERIFY_CA` when `ssl-ca` is given |
/// | `ssl-ca` | PEM file of the trusted authorities | built-in web roots |
/// | `ssl-cert`, `ssl-key` | PEM client certificate and key (`REQUIRE X509` accounts) | none |
/// | `password_file` | file holding the password, read at each connect (one trailing newline removed) | none |
/// | `connect_timeout` | seconds to wait for a connection (`0`: no limit) | 10 |
///
/// Underscores may replace the dashes (`ssl_mode`). The port defaults to 3306, the user to
/// `root`. Sessions are set up for lossless reading: `utf8mb4`, UTC time zone, long network
/// timeouts.
///
/// `Debug` and `Display` show the URL with the password as `***`; the type is not
/// `Serialize`.
///
/// ```
/// use dts_connectors::mysql::{MySqlConnectOptions, MySqlSslMode};
///
/// let opts: MySqlConnectOptions = "mysql://app:p%40ss@db:3306/shop?ssl-mode=REQUIRED"
///     .parse()
///     .unwrap();
/// assert_eq!(opts.get_ssl_mode(), MySqlSslMode::Required);
/// assert_eq!(opts.to_string(), "mysql://app:***@db:3306/shop?ssl-mode=REQUIRED");
/// let opts = opts.ssl_mode(MySqlSslMode::VerifyIdentity).ssl_ca("/etc/ssl/db-ca.pem");
/// assert_eq!(opts.get_ssl_mode(), MySqlSslMode::VerifyIdentity);
/// ```
#[derive(Clone)]
pub struct MySqlConnectOptions {
    host: String,
    port: u16,
    user: String,
    password: PasswordSource,
    database: Option<String>,
    ssl_mode: MySqlSslMode,
    ssl_ca: Option<PathBuf>,
    ssl_cert: Option<PathBuf>,
    ssl_key: Option<PathBuf>,
    connect_timeout: Duration,
}

impl Default for MySqlConnectOptions {
    /// `root` on `localhost:3306`, no password, `PREFERRED`.
    fn default() -> Self {
        Self {
            host: "localhost".to_owned(),
            port: 3306,
            user: "root".to_owned(),
            password: PasswordSource::None,
            database: None,
            ssl_mode: MySqlSslMode::Preferred,
            ssl_ca: None,
            ssl_cert: None,
            ssl_key: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

impl FromStr for MySqlConnectOptions {
    type Err = Error;

    fn from_str(url: &str) -> Result<Self> {
        let parts = ConnUrl::parse(url, &["mysql", "mariadb"], "mysql")?;
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
        let mut mode = None;
        for (name, value) in parts.params {
            let bad = |reason: &str| url::bad_option("mysql", url, &name, reason);
            match name.replace('_', "-").to_ascii_lowercase().as_str() {
                "ssl-mode" | "sslmode" => {
                    mode = Some(value.parse::<MySqlSslMode>().map_err(|_| {
                        bad("must be DISABLED, PREFERRED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY")
                    })?);
                }
                "ssl-ca" => {
                    opts.ssl_ca = Some(non_empty_path(&value).ok_or_else(|| bad("is empty"))?)
                }
                "ssl-cert" => {
                    opts.ssl_cert = Some(non_empty_path(&value).ok_or_else(|| bad("is empty"))?)
                }
                "ssl-key" => {
                    opts.ssl_key = Some(non_empty_path(&value).ok_or_else(|| bad("is empty"))?)
                }
                "password-file" => {
                    opts.password = PasswordSource::File(
                        non_empty_path(&value).ok_or_else(|| bad("is empty"))?,
                    );
                }
                "connect-timeout" => {
                    opts.connect_timeout = url::parse_timeout(&value)
                        .ok_or_else(|| bad("must be a whole number of seconds"))?;
                }
                _ => return Err(bad("is unknown")),
            }
        }
        // As the MySQL client: a CA without an explicit mode asks for verification.
        opts.ssl_mode = mode.unwrap_or(if opts.ssl_ca.is_some() {
            MySqlSslMode::VerifyCa
        } else {
            MySqlSslMode::Preferred
        });
        Ok(opts)
    }
}

fn non_empty_path(value: &str) -> Option<PathBuf> {
    (!value.is_empty()).then(|| PathBuf::from(value))
}

impl MySqlConnectOptions {
    /// Options for `root` on `localhost:3306` (as [`Default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the host name or address.
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

    /// Sets the default database.
    #[must_use]
    pub fn database(mut self, database: impl Into<String>) -> Self {
        self.database = Some(database.into());
        self
    }

    /// Sets the TLS mode.
    #[must_use]
    pub fn ssl_mode(mut self, mode: MySqlSslMode) -> Self {
        self.ssl_mode = mode;
        self
    }

    /// Sets the PEM file of trusted authorities.
    #[must_use]
    pub fn ssl_ca(mut self, path: impl Into<PathBuf>) -> Self {
        self.ssl_ca = Some(path.into());
        self
    }

    /// Sets the PEM client certificate (with [`MySqlConnectOptions::ssl_key`]).
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

    /// The default database, if any.
    pub fn get_database(&self) -> Option<&str> {
        self.database.as_deref()
    }

    /// The TLS mode.
    pub fn get_ssl_mode(&self) -> MySqlSslMode {
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

    /// Driver options with TLS as `tls` says (`None`: plain text), the password resolved.
    fn driver_opts(&self, password: Option<&Secret>, tls: Option<SslOpts>) -> Opts {
        OptsBuilder::default()
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass(password.map(|p| p.expose().to_owned()))
            .db_name(self.database.clone())
            .ssl_opts(tls)
            .init(vec![
                "SET NAMES utf8mb4",
                "SET time_zone = '+00:00'",
                "SET SESSION net_read_timeout = 3600, net_write_timeout = 3600",
            ])
            .prefer_socket(false)
            .into()
    }

    /// TLS settings for the mode, or `None` for plain text.
    fn ssl_opts(&self) -> Option<SslOpts> {
        let mut ssl = SslOpts::default();
        match self.ssl_mode {
            MySqlSslMode::Disabled => return None,
            MySqlSslMode::Preferred | MySqlSslMode::Required => {
                ssl = ssl.with_danger_accept_invalid_certs(true);
            }
            MySqlSslMode::VerifyCa => ssl = ssl.with_danger_skip_domain_validation(true),
            MySqlSslMode::VerifyIdentity => {}
        }
        if let Some(ca) = &self.ssl_ca {
            ssl = ssl
                .with_root_certs(vec![ca.clone().into()])
                .with_disable_built_in_roots(true);
        }
        if let (Some(cert), Some(key)) = (&self.ssl_cert, &self.ssl_key) {
            ssl = ssl.with_client_identity(Some(ClientIdentity::new(
                cert.clone().into(),
                key.clone().into(),
            )));
        }
        Some(ssl)
    }

    /// Opens one connection, with the mode's fallback (`PREFERRED` retries in plain text
    /// when the server offers no TLS), and returns it with the driver options that made it,
    /// for pools of further connections.
    pub(crate) async fn connect_with_opts(&self) -> Result<(Conn, Opts)> {
        if self.ssl_cert.is_some() != self.ssl_key.is_some() {
            return Err(Error::config(format!(
                "mysql url `{self}`: ssl-cert and ssl-key go together"
            )));
        }
        let password = self.password.resolve()?;
        let opts = self.driver_opts(password.as_ref(), self.ssl_opts());
        match self.try_connect(&opts).await {
            Ok(conn) => Ok((conn, opts)),
            Err(ConnectFailure::Driver(mysql_async::Error::Driver(
                mysql_async::DriverError::NoClientSslFlagFromServer,
            ))) if self.ssl_mode == MySqlSslMode::Preferred => {
                tracing::debug!(address = %self.address(), "server offers no tls, connecting in plain text");
                let plain = self.driver_opts(password.as_ref(), None);
                let conn = self
                    .try_connect(&plain)
                    .await
                    .map_err(|e| self.connect_error(e))?;
                Ok((conn, plain))
            }
            Err(ConnectFailure::Driver(e))
                if self.ssl_mode == MySqlSslMode::VerifyCa && name_mismatch(&e).is_some() =>
            {
                // mysql_async 0.37.1 ignores `with_danger_skip_domain_validation` with the
                // rustls versions that report name mismatches with their context
                // (blackbeam/mysql_async#404). The chain was verified before the names, so
                // connect again under a name the certificate presents.
                let name = name_mismatch(&e).unwrap_or_default();
                let opts = self.driver_opts(
                    password.as_ref(),
                    self.ssl_opts()
                        .map(|ssl| ssl.with_danger_tls_hostname_override(Some(name))),
                );
                let conn = self
                    .try_connect(&opts)
                    .await
                    .map_err(|e| self.connect_error(e))?;
                Ok((conn, opts))
            }
            Err(e) => Err(self.connect_error(e)),
        }
    }

    /// Opens one connection (see [`MySqlConnectOptions`] for the modes).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Connection`] naming host and port when the server cannot be reached in
    /// time, refuses TLS under `REQUIRED` or higher, or its certificate fails a check (the
    /// message names the check); [`ErrorKind::Privilege`] when the server refuses the
    /// account; [`ErrorKind::Config`] for unreadable files.
    pub async fn connect(&self) -> Result<Conn> {
        self.connect_with_opts().await.map(|(conn, _)| conn)
    }

    async fn try_connect(&self, opts: &Opts) -> std::result::Result<Conn, ConnectFailure> {
        match tokio::time::timeout(self.connect_timeout, Conn::new(opts.clone())).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(ConnectFailure::Driver(e)),
            Err(_) => Err(ConnectFailure::Timeout),
        }
    }

    fn connect_error(&self, failure: ConnectFailure) -> Error {
        let what = format!("cannot connect to mysql server `{}`", self.address());
        match failure {
            ConnectFailure::Timeout => Error::new(
                ErrorKind::Connection,
                format!(
                    "{what}: no connection within {} s",
                    self.connect_timeout.as_secs()
                ),
            ),
            ConnectFailure::Driver(mysql_async::Error::Driver(
                mysql_async::DriverError::NoClientSslFlagFromServer,
            )) => Error::new(
                ErrorKind::Connection,
                format!(
                    "{what}: the server does not offer tls, which ssl-mode={} requires",
                    self.ssl_mode
                ),
            ),
            ConnectFailure::Driver(e) => match tls::certificate_failure(&e) {
                Some(check) => {
                    Error::new(ErrorKind::Connection, format!("{what}: {check}")).with_source(e)
                }
                None => map_error(e, what),
            },
        }
    }
}

/// Why one connection attempt failed.
enum ConnectFailure {
    Driver(mysql_async::Error),
    Timeout,
}

/// The first name a server certificate presents, when `e` is a host name mismatch.
fn name_mismatch(e: &mysql_async::Error) -> Option<String> {
    let rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext {
        presented,
        ..
    }) = tls::find_rustls_error(e)?
    else {
        return None;
    };
    presented.iter().find_map(|name| {
        // webpki renders the names as `DnsName("db.example")` or `IpAddress(10.0.0.1)`.
        let inner = name
            .strip_prefix("DnsName(\"")
            .and_then(|n| n.strip_suffix("\")"))
            .map(|n| n.replace("*.", "wildcard."))
            .or_else(|| {
                name.strip_prefix("IpAddress(")
                    .and_then(|n| n.strip_suffix(')'))
                    .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                    .map(str::to_owned)
            })?;
        rustls::pki_types::ServerName::try_from(inner.as_str())
            .is_ok()
            .then_some(inner)
    })
}

impl fmt::Display for MySqlConnectOptions {
    /// The URL of these options, with the password (if any) as `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mysql://{}", url::encode(&self.user))?;
        if !matches!(
            self.password,
            PasswordSource::None | PasswordSource::File(_)
        ) {
            f.write_str(":***")?;
        }
        write!(f, "@{}", self.address())?;
        if let Some(db) = &self.database {
            write!(f, "/{}", url::encode(db))?;
        }
        let mut params = Vec::new();
        if self.ssl_mode != MySqlSslMode::Preferred {
            params.push(format!("ssl-mode={}", self.ssl_mode));
        }
        for (name, path) in [
            ("ssl-ca", &self.ssl_ca),
            ("ssl-cert", &self.ssl_cert),
            ("ssl-key", &self.ssl_key),
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

impl fmt::Debug for MySqlConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MySqlConnectOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("database", &self.database)
            .field("ssl_mode", &self.ssl_mode)
            .field("ssl_ca", &self.ssl_ca)
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
    fn parses_client_options() {
        let o: MySqlConnectOptions =
            "mariadb://u:p%2F%40%3F%23@h:3307/db?ssl-mode=verify_identity&ssl-ca=/ca.pem\
             &ssl_cert=/c.pem&ssl-key=/c.key&connect_timeout=3"
                .parse()
                .unwrap();
        assert_eq!(o.get_host(), "h");
        assert_eq!(o.get_port(), 3307);
        assert_eq!(o.get_user(), "u");
        assert_eq!(o.get_database(), Some("db"));
        assert_eq!(o.get_ssl_mode(), MySqlSslMode::VerifyIdentity);
        assert_eq!(o.get_connect_timeout(), Duration::from_secs(3));
        assert_eq!(o.password.resolve().unwrap().unwrap().expose(), "p/@?#");
        let shown = format!("{o} {o:?}");
        assert!(
            !shown.contains("p/@?#") && !shown.contains("%2F%40"),
            "{shown}"
        );
    }

    #[test]
    fn applies_the_clients_defaults() {
        let o: MySqlConnectOptions = "mysql://db".parse().unwrap();
        assert_eq!((o.get_port(), o.get_user()), (3306, "root"));
        assert_eq!(o.get_ssl_mode(), MySqlSslMode::Preferred);
        assert_eq!(o.get_connect_timeout(), Duration::from_secs(10));
        let o: MySqlConnectOptions = "mysql://db?ssl-ca=/ca.pem".parse().unwrap();
        assert_eq!(o.get_ssl_mode(), MySqlSslMode::VerifyCa);
        let o: MySqlConnectOptions = "mysql://db?ssl-ca=/ca.pem&ssl-mode=REQUIRED"
            .parse()
            .unwrap();
        assert_eq!(o.get_ssl_mode(), MySqlSslMode::Required);
    }

    #[test]
    fn rejects_bad_options_without_showing_the_password() {
        for url in [
            "mysql://u:s3cret@h?ssl-mode=sometimes",
            "mysql://u:s3cret@h?sslrootcert=/x",
            "mysql://u:s3cret@h?connect_timeout=soon",
            "mysql://u:s3cret@h:0",
            "postgres://u:s3cret@h",
        ] {
            let e = url.parse::<MySqlConnectOptions>().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config);
            assert!(e.report().contains("u:***@h"), "{}", e.report());
            assert!(!e.report().contains("s3cret"), "{}", e.report());
        }
    }

    #[test]
    fn reads_names_from_name_mismatches() {
        let e = mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext {
                expected: rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap(),
                presented: vec![
                    "DnsName(\"*.db.example\")".to_owned(),
                    "IpAddress(10.0.0.1)".to_owned(),
                ],
            }),
        )));
        assert_eq!(name_mismatch(&e).as_deref(), Some("wildcard.db.example"));
    }
}
