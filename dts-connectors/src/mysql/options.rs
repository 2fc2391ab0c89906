//! How to reach a MySQL or MariaDB server: [`MySqlConnectOptions`], parsed from a URL with
//! the options of the MySQL command-line client.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use dts_core::{Error, ErrorKind, Result};
use mysql_async::{ClientIdentity, Conn, Opts, OptsBuilder, SslOpts};

use super::error::map_error;
use crate::endpoint::{endpoint_accessors, Endpoint, Names, Setting, SslMode, MYSQL_MODES};
use crate::tls;
use crate::url::{self, ConnUrl, Secret};

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
/// use dts_connectors::mysql::{MySqlConnectOptions, SslMode};
///
/// let opts: MySqlConnectOptions = "mysql://app:p%40ss@db:3306/shop?ssl-mode=REQUIRED"
///     .parse()
///     .unwrap();
/// assert_eq!(opts.get_ssl_mode(), SslMode::Required);
/// assert_eq!(opts.to_string(), "mysql://app:***@db:3306/shop?ssl-mode=REQUIRED");
/// let opts = opts.ssl_mode(SslMode::VerifyIdentity).ssl_ca("/etc/ssl/db-ca.pem");
/// assert_eq!(opts.get_ssl_mode(), SslMode::VerifyIdentity);
/// ```
#[derive(Clone)]
pub struct MySqlConnectOptions {
    endpoint: Endpoint,
}

impl Default for MySqlConnectOptions {
    /// `root` on `localhost:3306`, no password, `PREFERRED`.
    fn default() -> Self {
        Self {
            endpoint: Endpoint::new(3306, "root"),
        }
    }
}

/// The MySQL client's names of the options both engines know, with dashes for underscores.
const SETTINGS: Names = &[
    ("ssl-ca", Setting::CaFile),
    ("ssl-cert", Setting::CertFile),
    ("ssl-key", Setting::KeyFile),
    ("password-file", Setting::PasswordFile),
    ("connect-timeout", Setting::ConnectTimeout),
];

impl FromStr for MySqlConnectOptions {
    type Err = Error;

    fn from_str(url: &str) -> Result<Self> {
        let parts = ConnUrl::parse(url, &["mysql", "mariadb"], "mysql")?;
        let mut opts = Self::default();
        let mut mode = None;
        for (name, value) in opts.endpoint.apply(parts) {
            let bad = |reason: &str| url::bad_option("mysql", url, &name, reason);
            match name.replace('_', "-").to_ascii_lowercase().as_str() {
                "ssl-mode" | "sslmode" => {
                    mode = Some(
                        MYSQL_MODES
                            .named(&value.to_ascii_uppercase())
                            .ok_or_else(|| bad(&format!("must be {}", MYSQL_MODES.expected())))?,
                    );
                }
                other => opts
                    .endpoint
                    .set_named(SETTINGS, other, &value)
                    .map_err(bad)?,
            }
        }
        // As the MySQL client: a CA without an explicit mode asks for verification.
        opts.endpoint.ssl_mode = mode.unwrap_or(if opts.endpoint.ssl_ca.is_some() {
            SslMode::VerifyCa
        } else {
            SslMode::Preferred
        });
        Ok(opts)
    }
}

endpoint_accessors!(
    MySqlConnectOptions,
    host: "Sets the host name or address.",
    database: "The default database, if any."
);

impl MySqlConnectOptions {
    /// Options for `root` on `localhost:3306` (as [`Default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the PEM file of trusted authorities.
    #[must_use]
    pub fn ssl_ca(mut self, path: impl Into<PathBuf>) -> Self {
        self.endpoint.ssl_ca = Some(path.into());
        self
    }

    /// Driver options with TLS as `tls` says (`None`: plain text), the password resolved.
    fn driver_opts(&self, password: Option<&Secret>, tls: Option<SslOpts>) -> Opts {
        OptsBuilder::default()
            .ip_or_hostname(self.endpoint.host.clone())
            .tcp_port(self.endpoint.port)
            .user(Some(self.endpoint.user.clone()))
            .pass(password.map(|p| p.expose().to_owned()))
            .db_name(self.endpoint.database.clone())
            .ssl_opts(tls)
            // `setup`, not `init`: the pool resets a returned connection
            // (COM_RESET_CONNECTION), which drops session settings; setup statements run
            // again after every reset.
            .setup(vec![
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
        match self.endpoint.ssl_mode {
            SslMode::Disabled => return None,
            SslMode::Preferred | SslMode::Required => {
                ssl = ssl.with_danger_accept_invalid_certs(true);
            }
            SslMode::VerifyCa => ssl = ssl.with_danger_skip_domain_validation(true),
            SslMode::VerifyIdentity => {}
        }
        if let Some(ca) = &self.endpoint.ssl_ca {
            ssl = ssl
                .with_root_certs(vec![ca.clone().into()])
                .with_disable_built_in_roots(true);
        }
        if let (Some(cert), Some(key)) = (&self.endpoint.ssl_cert, &self.endpoint.ssl_key) {
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
        self.endpoint.identity_files("mysql", self, SETTINGS)?;
        let password = self.endpoint.password.resolve()?;
        let opts = self.driver_opts(password.as_ref(), self.ssl_opts());
        match self.try_connect(&opts).await {
            Ok(conn) => Ok((conn, opts)),
            Err(ConnectFailure::Driver(mysql_async::Error::Driver(
                mysql_async::DriverError::NoClientSslFlagFromServer,
            ))) if self.endpoint.ssl_mode == SslMode::Preferred => {
                tracing::debug!(address = %self.endpoint.address(), "server offers no tls, connecting in plain text");
                let plain = self.driver_opts(password.as_ref(), None);
                let conn = self
                    .try_connect(&plain)
                    .await
                    .map_err(|e| self.connect_error(e))?;
                Ok((conn, plain))
            }
            Err(ConnectFailure::Driver(e))
                if self.endpoint.ssl_mode == SslMode::VerifyCa && name_mismatch(&e).is_some() =>
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
        match tokio::time::timeout(self.endpoint.connect_timeout, Conn::new(opts.clone())).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(ConnectFailure::Driver(e)),
            Err(_) => Err(ConnectFailure::Timeout),
        }
    }

    fn connect_error(&self, failure: ConnectFailure) -> Error {
        let what = format!(
            "cannot connect to mysql server `{}`",
            self.endpoint.address()
        );
        match failure {
            ConnectFailure::Timeout => self.endpoint.timeout_error(&what),
            ConnectFailure::Driver(mysql_async::Error::Driver(
                mysql_async::DriverError::NoClientSslFlagFromServer,
            )) => Error::new(
                ErrorKind::Connection,
                format!(
                    "{what}: the server does not offer tls, which ssl-mode={} requires",
                    self.endpoint.ssl_mode.mysql_name()
                ),
            ),
            ConnectFailure::Driver(e) => tls::connect_error(e, what, map_error),
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
        let mode = (self.endpoint.ssl_mode != SslMode::Preferred)
            .then(|| format!("ssl-mode={}", self.endpoint.ssl_mode.mysql_name()));
        self.endpoint
            .write_url(f, "mysql", false, mode, SETTINGS, None)
    }
}

impl fmt::Debug for MySqlConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("MySqlConnectOptions");
        self.endpoint.debug_fields(&mut debug, "ssl_ca");
        debug.finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
        assert_eq!(o.get_ssl_mode(), SslMode::VerifyIdentity);
        assert_eq!(o.get_connect_timeout(), Duration::from_secs(3));
        assert_eq!(
            o.endpoint.password.resolve().unwrap().unwrap().expose(),
            "p/@?#"
        );
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
        assert_eq!(o.get_ssl_mode(), SslMode::Preferred);
        assert_eq!(o.get_connect_timeout(), Duration::from_secs(10));
        let o: MySqlConnectOptions = "mysql://db?ssl-ca=/ca.pem".parse().unwrap();
        assert_eq!(o.get_ssl_mode(), SslMode::VerifyCa);
        let o: MySqlConnectOptions = "mysql://db?ssl-ca=/ca.pem&ssl-mode=REQUIRED"
            .parse()
            .unwrap();
        assert_eq!(o.get_ssl_mode(), SslMode::Required);
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
