//! What both engines' connect options hold alike: the server address, the account, the
//! database, the TLS files and the connect timeout, with their URL form and their setters.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dts_core::{Error, ErrorKind, Result};

use crate::url::{self, ConnUrl, PasswordSource};

/// The default connect timeout.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a server listens, who logs in, and the files and limits of the connection.
#[derive(Clone)]
pub(crate) struct Endpoint {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) user: String,
    pub(crate) password: PasswordSource,
    pub(crate) database: Option<String>,
    /// PEM file of the trusted authorities.
    pub(crate) ssl_ca: Option<PathBuf>,
    /// PEM client certificate.
    pub(crate) ssl_cert: Option<PathBuf>,
    /// PEM private key of the client certificate.
    pub(crate) ssl_key: Option<PathBuf>,
    pub(crate) connect_timeout: Duration,
    /// Whether and how the connection uses TLS.
    pub(crate) ssl_mode: SslMode,
}

/// An option that both engines know, under their own names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Setting {
    /// The PEM file of trusted authorities (`ssl-ca`, `sslrootcert`).
    CaFile,
    /// The PEM client certificate (`ssl-cert`, `sslcert`).
    CertFile,
    /// The PEM client key (`ssl-key`, `sslkey`).
    KeyFile,
    /// The file holding the password (`password_file`).
    PasswordFile,
    /// Seconds to wait for a connection (`connect_timeout`).
    ConnectTimeout,
}

/// The names an engine gives the options both engines know, in its URLs and messages.
pub(crate) type Names = &'static [(&'static str, Setting)];

/// The name of `setting` in `names`.
fn name_of(names: Names, setting: Setting) -> &'static str {
    names
        .iter()
        .find(|&&(_, known)| known == setting)
        .map_or("", |&(name, _)| name)
}

impl Endpoint {
    /// `user` on `localhost:port`, no password, no database, no TLS files.
    pub(crate) fn new(port: u16, user: &str) -> Self {
        Self {
            host: "localhost".to_owned(),
            port,
            user: user.to_owned(),
            password: PasswordSource::None,
            database: None,
            ssl_ca: None,
            ssl_cert: None,
            ssl_key: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            ssl_mode: SslMode::Preferred,
        }
    }

    /// Takes over the parts that `url` names, and returns its options.
    pub(crate) fn apply(&mut self, url: ConnUrl) -> Vec<(String, String)> {
        if let Some(host) = url.host {
            self.host = host;
        }
        if let Some(port) = url.port {
            self.port = port;
        }
        if let Some(user) = url.user {
            self.user = user;
        }
        if let Some(password) = url.password {
            self.password = PasswordSource::Inline(password);
        }
        self.database = url.database;
        url.params
    }

    /// Sets `setting` from an option value; the error says what is wrong with the value.
    fn set(&mut self, setting: Setting, value: &str) -> Result<(), &'static str> {
        let path = || {
            (!value.is_empty())
                .then(|| PathBuf::from(value))
                .ok_or("is empty")
        };
        match setting {
            Setting::CaFile => self.ssl_ca = Some(path()?),
            Setting::CertFile => self.ssl_cert = Some(path()?),
            Setting::KeyFile => self.ssl_key = Some(path()?),
            Setting::PasswordFile => self.password = PasswordSource::File(path()?),
            Setting::ConnectTimeout => {
                self.connect_timeout =
                    url::parse_timeout(value).ok_or("must be a whole number of seconds")?;
            }
        }
        Ok(())
    }

    /// Sets the option `name` from `value` if `names` lists it (the error says what is wrong
    /// with the value); `Err("is unknown")` if it does not.
    pub(crate) fn set_named(
        &mut self,
        names: Names,
        name: &str,
        value: &str,
    ) -> Result<(), &'static str> {
        let (_, setting) = names
            .iter()
            .find(|(known, _)| *known == name)
            .ok_or("is unknown")?;
        self.set(*setting, value)
    }

    /// `host:port`, for messages.
    pub(crate) fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The client certificate and key files, if given; an error showing `url` and naming
    /// the options as `names` when only one of them is.
    pub(crate) fn identity_files(
        &self,
        engine: &str,
        url: &dyn fmt::Display,
        names: Names,
    ) -> Result<Option<(&Path, &Path)>> {
        match (&self.ssl_cert, &self.ssl_key) {
            (Some(cert), Some(key)) => Ok(Some((cert, key))),
            (None, None) => Ok(None),
            _ => Err(Error::config(format!(
                "{engine} url `{url}`: {} and {} go together",
                name_of(names, Setting::CertFile),
                name_of(names, Setting::KeyFile)
            ))),
        }
    }

    /// The error for a connection attempt that took longer than the connect timeout;
    /// `what` names the server.
    pub(crate) fn timeout_error(&self, what: &str) -> Error {
        Error::new(
            ErrorKind::Connection,
            format!(
                "{what}: no connection within {} s",
                self.connect_timeout.as_secs()
            ),
        )
    }

    /// Writes the URL `scheme://user[:***]@host:port[/database][?options]` with the password
    /// as `***`. The options are `leading`, the TLS files under `names`, the password file,
    /// `trailing` and a connect timeout other than the default. With `host_as_option`, host
    /// and port are written as the first options instead (libpq's form for socket paths).
    pub(crate) fn write_url(
        &self,
        f: &mut fmt::Formatter<'_>,
        scheme: &str,
        host_as_option: bool,
        leading: Option<String>,
        names: Names,
        trailing: Option<String>,
    ) -> fmt::Result {
        write!(f, "{scheme}://{}", url::encode(&self.user))?;
        if matches!(self.password, PasswordSource::Inline(_)) {
            f.write_str(":***")?;
        }
        let mut params = Vec::new();
        if host_as_option {
            f.write_str("@")?;
            params.push(format!("host={}", url::encode(&self.host)));
            params.push(format!("port={}", self.port));
        } else {
            write!(f, "@{}", self.address())?;
        }
        if let Some(db) = &self.database {
            write!(f, "/{}", url::encode(db))?;
        }
        params.extend(leading);
        let password_file = match &self.password {
            PasswordSource::File(path) => Some(path),
            _ => None,
        };
        for (name, path) in [
            (name_of(names, Setting::CaFile), self.ssl_ca.as_ref()),
            (name_of(names, Setting::CertFile), self.ssl_cert.as_ref()),
            (name_of(names, Setting::KeyFile), self.ssl_key.as_ref()),
            ("password_file", password_file),
        ] {
            if let Some(path) = path {
                params.push(format!(
                    "{name}={}",
                    url::encode(&path.display().to_string())
                ));
            }
        }
        params.extend(trailing);
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

    /// Writes the fields of a `Debug` struct: the address and account, the TLS mode and
    /// files (the authorities' under `ca_name`), and the timeout.
    pub(crate) fn debug_fields(&self, f: &mut fmt::DebugStruct<'_, '_>, ca_name: &str) {
        f.field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("database", &self.database)
            .field("ssl_mode", &self.ssl_mode)
            .field(ca_name, &self.ssl_ca)
            .field("ssl_cert", &self.ssl_cert)
            .field("ssl_key", &self.ssl_key)
            .field("connect_timeout", &self.connect_timeout);
    }
}

/// The setters and getters that both engines' option types share, for a type with an
/// `endpoint: Endpoint` field. `$host` and `$database` document the host setter and the
/// database getter, which differ between the engines.
macro_rules! endpoint_accessors {
    ($options:ident, host: $host:literal, database: $database:literal) => {
        impl $options {
            #[doc = $host]
            #[must_use]
            pub fn host(mut self, host: impl Into<String>) -> Self {
                self.endpoint.host = host.into();
                self
            }

            /// Sets the TLS mode.
            #[must_use]
            pub fn ssl_mode(mut self, mode: $crate::endpoint::SslMode) -> Self {
                self.endpoint.ssl_mode = mode;
                self
            }

            /// The TLS mode.
            pub fn get_ssl_mode(&self) -> $crate::endpoint::SslMode {
                self.endpoint.ssl_mode
            }

            /// Sets the TCP port.
            #[must_use]
            pub fn port(mut self, port: u16) -> Self {
                self.endpoint.port = port;
                self
            }

            /// Sets the user name.
            #[must_use]
            pub fn user(mut self, user: impl Into<String>) -> Self {
                self.endpoint.user = user.into();
                self
            }

            /// Sets the password.
            #[must_use]
            pub fn password(mut self, password: impl Into<String>) -> Self {
                self.endpoint.password =
                    $crate::url::PasswordSource::Inline($crate::url::Secret::new(password));
                self
            }

            /// Reads the password from `path` at each connect instead (one trailing newline
            /// is removed).
            #[must_use]
            pub fn password_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
                self.endpoint.password = $crate::url::PasswordSource::File(path.into());
                self
            }

            /// Sets the database.
            #[must_use]
            pub fn database(mut self, database: impl Into<String>) -> Self {
                self.endpoint.database = Some(database.into());
                self
            }

            #[doc = concat!("Sets the PEM client certificate (with [`", stringify!($options), "::ssl_key`]).")]
            #[must_use]
            pub fn ssl_cert(mut self, path: impl Into<std::path::PathBuf>) -> Self {
                self.endpoint.ssl_cert = Some(path.into());
                self
            }

            /// Sets the PEM private key of the client certificate.
            #[must_use]
            pub fn ssl_key(mut self, path: impl Into<std::path::PathBuf>) -> Self {
                self.endpoint.ssl_key = Some(path.into());
                self
            }

            /// Sets how long to wait for a connection.
            #[must_use]
            pub fn connect_timeout(mut self, timeout: std::time::Duration) -> Self {
                self.endpoint.connect_timeout = timeout;
                self
            }

            /// The host.
            pub fn get_host(&self) -> &str {
                &self.endpoint.host
            }

            /// The port.
            pub fn get_port(&self) -> u16 {
                self.endpoint.port
            }

            /// The user.
            pub fn get_user(&self) -> &str {
                &self.endpoint.user
            }

            #[doc = $database]
            pub fn get_database(&self) -> Option<&str> {
                self.endpoint.database.as_deref()
            }

            /// The connect timeout.
            pub fn get_connect_timeout(&self) -> std::time::Duration {
                self.endpoint.connect_timeout
            }
        }
    };
}

pub(crate) use endpoint_accessors;

/// Whether and how a connection uses TLS. Both engines have the same five modes; each
/// engine's URL spells them as its own client does ([`SslMode::mysql_name`],
/// [`SslMode::libpq_name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SslMode {
    /// Plain text (`DISABLED`, `disable`).
    Disabled,
    /// The default: TLS without verifying the certificate if the server offers it, else
    /// plain text (`PREFERRED`, `prefer`).
    Preferred,
    /// TLS without verifying the certificate; fails if the server does not offer TLS
    /// (`REQUIRED`, `require`). A PostgreSQL URL that names `sslrootcert` verifies the
    /// chain in this mode, as libpq does.
    Required,
    /// TLS; the certificate must be signed by a trusted authority. Its host names are not
    /// checked (`VERIFY_CA`, `verify-ca`).
    VerifyCa,
    /// As [`SslMode::VerifyCa`], and the certificate must be issued for the host connected
    /// to (`VERIFY_IDENTITY`, `verify-full`).
    VerifyIdentity,
}

impl SslMode {
    /// The name as the MySQL client's `--ssl-mode` spells it, e.g. `VERIFY_CA`.
    pub fn mysql_name(self) -> &'static str {
        MYSQL_MODES.name(self)
    }

    /// The name as libpq's `sslmode` spells it, e.g. `verify-full`.
    pub fn libpq_name(self) -> &'static str {
        LIBPQ_MODES.name(self)
    }
}

/// The names one client gives the TLS modes, in the order of [`SslMode`].
pub(crate) struct ModeNames([(&'static str, SslMode); 5]);

/// The MySQL client's names (`--ssl-mode`).
pub(crate) const MYSQL_MODES: ModeNames = ModeNames([
    ("DISABLED", SslMode::Disabled),
    ("PREFERRED", SslMode::Preferred),
    ("REQUIRED", SslMode::Required),
    ("VERIFY_CA", SslMode::VerifyCa),
    ("VERIFY_IDENTITY", SslMode::VerifyIdentity),
]);

/// libpq's names (`sslmode`).
pub(crate) const LIBPQ_MODES: ModeNames = ModeNames([
    ("disable", SslMode::Disabled),
    ("prefer", SslMode::Preferred),
    ("require", SslMode::Required),
    ("verify-ca", SslMode::VerifyCa),
    ("verify-full", SslMode::VerifyIdentity),
]);

impl ModeNames {
    /// The name of `mode`.
    pub(crate) fn name(&self, mode: SslMode) -> &'static str {
        self.0
            .iter()
            .find(|&&(_, known)| known == mode)
            .map_or("", |&(name, _)| name)
    }

    /// The mode named `name`, spelled exactly.
    pub(crate) fn named(&self, name: &str) -> Option<SslMode> {
        self.0
            .iter()
            .find(|&&(known, _)| known == name)
            .map(|&(_, mode)| mode)
    }

    /// The names, as `a, b or c`.
    pub(crate) fn expected(&self) -> String {
        let names: Vec<&str> = self.0.iter().map(|&(name, _)| name).collect();
        let (last, rest) = names.split_last().expect("modes have names");
        format!("{} or {last}", rest.join(", "))
    }
}
