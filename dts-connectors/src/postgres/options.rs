//! How to reach a PostgreSQL server: [`PgConnectOptions`], parsed from a URL with libpq's
//! options.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use dts_core::{Error, Result};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::config::SslMode as WireSslMode;
use tokio_postgres::{Client, Config, Connection, NoTls, Socket};

use super::error::map_error;
use crate::endpoint::{endpoint_accessors, Endpoint, Names, Setting, SslMode, LIBPQ_MODES};
use crate::tls::{self, Verification};
use crate::url::{self, ConnUrl, PasswordSource, Secret};

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
/// use dts_connectors::postgres::{PgConnectOptions, SslMode};
///
/// let opts: PgConnectOptions = "postgres://app:p%40ss@db/shop?sslmode=verify-full&sslrootcert=/ca.pem"
///     .parse()
///     .unwrap();
/// assert_eq!(opts.get_ssl_mode(), SslMode::VerifyIdentity);
/// assert!(!format!("{opts:?}").contains("p@ss"));
/// let opts = opts.ssl_mode(SslMode::Required);
/// assert_eq!(opts.get_ssl_mode(), SslMode::Required);
/// ```
#[derive(Clone)]
pub struct PgConnectOptions {
    endpoint: Endpoint,
    application_name: Option<String>,
}

/// libpq's names of the options both engines know.
const SETTINGS: Names = &[
    ("sslrootcert", Setting::CaFile),
    ("sslcert", Setting::CertFile),
    ("sslkey", Setting::KeyFile),
    ("password_file", Setting::PasswordFile),
    ("connect_timeout", Setting::ConnectTimeout),
];

impl Default for PgConnectOptions {
    /// `postgres` on `localhost:5432`, no password, `prefer`.
    fn default() -> Self {
        Self {
            endpoint: Endpoint::new(5432, "postgres"),
            application_name: None,
        }
    }
}

impl FromStr for PgConnectOptions {
    type Err = Error;

    fn from_str(url: &str) -> Result<Self> {
        let parts = ConnUrl::parse(url, &["postgres", "postgresql"], "postgres")?;
        let mut opts = Self::default();
        for (name, value) in opts.endpoint.apply(parts) {
            let bad = |reason: &str| url::bad_option("postgres", url, &name, reason);
            match name.as_str() {
                "sslmode" => {
                    // libpq reads `allow` as `prefer`.
                    let name = if value == "allow" { "prefer" } else { &value };
                    opts.endpoint.ssl_mode = LIBPQ_MODES
                        .named(name)
                        .ok_or_else(|| bad(&format!("must be {}", LIBPQ_MODES.expected())))?;
                }
                "user" => opts.endpoint.user = value,
                "password" => opts.endpoint.password = PasswordSource::Inline(Secret::new(value)),
                "host" => opts.endpoint.host = value,
                "port" => {
                    opts.endpoint.port = value
                        .parse()
                        .ok()
                        .filter(|&p| p != 0)
                        .ok_or_else(|| bad("must be a number from 1 to 65535"))?;
                }
                "dbname" => opts.endpoint.database = Some(value),
                "application_name" => opts.application_name = Some(value),
                other => opts
                    .endpoint
                    .set_named(SETTINGS, other, &value)
                    .map_err(bad)?,
            }
        }
        Ok(opts)
    }
}

endpoint_accessors!(
    PgConnectOptions,
    host: "Sets the host name, address, or Unix socket directory (a path starting with `/`).",
    database: "The database, if named (the server defaults to the user name)."
);

impl PgConnectOptions {
    /// Options for `postgres` on `localhost:5432` (as [`Default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the `application_name` the server shows for the session.
    #[must_use]
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = Some(name.into());
        self
    }

    /// Sets the PEM file of trusted authorities.
    #[must_use]
    pub fn ssl_root_cert(mut self, path: impl Into<PathBuf>) -> Self {
        self.endpoint.ssl_ca = Some(path.into());
        self
    }

    /// The certificate verification the mode asks for (`require` with a root certificate
    /// verifies the chain, as libpq does).
    fn verification(&self) -> Verification {
        match self.endpoint.ssl_mode {
            SslMode::VerifyIdentity => Verification::ChainAndHost,
            SslMode::VerifyCa => Verification::Chain,
            SslMode::Required if self.endpoint.ssl_ca.is_some() => Verification::Chain,
            _ => Verification::None,
        }
    }

    /// The `application_name`, if set.
    pub(crate) fn get_application_name(&self) -> Option<&str> {
        self.application_name.as_deref()
    }

    /// The endpoint: host, port, account, TLS settings.
    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The rustls configuration for the mode, or `None` for `disable`.
    pub(crate) fn tls_config(&self) -> Result<Option<rustls::ClientConfig>> {
        if self.endpoint.ssl_mode == SslMode::Disabled {
            return Ok(None);
        }
        let verification = self.verification();
        let roots = match &self.endpoint.ssl_ca {
            Some(path) => tls::load_certs(path, "sslrootcert")?,
            None if verification != Verification::None => {
                return Err(Error::config(format!(
                    "postgres url `{self}`: sslmode={} needs sslrootcert, the authority to \
                     verify the server certificate with",
                    self.endpoint.ssl_mode.libpq_name()
                )))
            }
            None => Vec::new(),
        };
        let identity = match self.endpoint.identity_files("postgres", self, SETTINGS)? {
            Some((cert, key)) => Some((
                tls::load_certs(cert, "sslcert")?,
                tls::load_key(key, "sslkey")?,
            )),
            None => None,
        };
        tls::client_config(verification, roots, identity).map(Some)
    }

    /// The driver configuration, the password read.
    fn driver_config(&self) -> Result<Config> {
        let mut config = Config::new();
        let endpoint = &self.endpoint;
        if endpoint.host.starts_with('/') {
            config.host_path(&endpoint.host);
        } else {
            config.host(&endpoint.host);
        }
        config
            .port(endpoint.port)
            .user(&endpoint.user)
            .connect_timeout(endpoint.connect_timeout)
            .ssl_mode(match self.endpoint.ssl_mode {
                SslMode::Disabled => WireSslMode::Disable,
                SslMode::Preferred => WireSslMode::Prefer,
                _ => WireSslMode::Require,
            });
        if let Some(password) = endpoint.password.resolve()? {
            config.password(password.expose());
        }
        if let Some(db) = &endpoint.database {
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
    /// [`ErrorKind::Connection`](dts_core::ErrorKind::Connection) naming host and port when the server cannot be reached in
    /// time, refuses TLS under `require` or higher, or its certificate fails a check (the
    /// message names the check); [`ErrorKind::Privilege`](dts_core::ErrorKind::Privilege) when the server refuses the
    /// account (e.g. a `pg_hba.conf` rule for plain connections); [`ErrorKind::Config`](dts_core::ErrorKind::Config) for
    /// unreadable files or `verify-*` without `sslrootcert`.
    pub async fn connect(&self) -> Result<Client> {
        let config = self.driver_config()?;
        let tls = self.tls_config()?;
        let what = format!(
            "cannot connect to postgres server `{}`",
            self.endpoint.address()
        );
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
        match tokio::time::timeout(self.endpoint.connect_timeout, attempt).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(tls::connect_error(e, what, map_error)),
            Err(_) => Err(self.endpoint.timeout_error(&what)),
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
        let mode = (self.endpoint.ssl_mode != SslMode::Preferred)
            .then(|| format!("sslmode={}", self.endpoint.ssl_mode.libpq_name()));
        let application_name = self
            .application_name
            .as_ref()
            .map(|name| format!("application_name={}", url::encode(name)));
        let socket = self.endpoint.host.starts_with('/');
        self.endpoint
            .write_url(f, "postgres", socket, mode, SETTINGS, application_name)
    }
}

impl fmt::Debug for PgConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("PgConnectOptions");
        self.endpoint.debug_fields(&mut debug, "ssl_root_cert");
        debug
            .field("application_name", &self.application_name)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use dts_core::ErrorKind;

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
        assert_eq!(o.get_ssl_mode(), SslMode::VerifyCa);
        assert_eq!(o.get_connect_timeout(), Duration::from_secs(2));
        assert_eq!(
            o.endpoint.password.resolve().unwrap().unwrap().expose(),
            "p/@?#"
        );
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
        assert_eq!(o.get_ssl_mode(), SslMode::Preferred);
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
