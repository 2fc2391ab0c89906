//! Connection URLs as both engines' tools write them: `scheme://user:password@host:port/
//! database?name=value&…`, with percent-encoded parts, and their redaction for messages.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use dts_core::url::percent_decode as decode;
pub(crate) use dts_core::url::percent_encode as encode;
use dts_core::{Error, ErrorKind, Result};

/// A password or other secret: never printed, compared only as a whole.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The secret itself, for the driver only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where the password comes from.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum PasswordSource {
    /// No password.
    None,
    /// Given in the URL or by a setter.
    Inline(Secret),
    /// Read from this file at connect time (content without the trailing newline).
    File(std::path::PathBuf),
}

impl fmt::Debug for PasswordSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Inline(_) => f.write_str("Some(***)"),
            Self::File(path) => write!(f, "File({})", path.display()),
        }
    }
}

impl PasswordSource {
    /// The password, reading the file if there is one. `engine` names the server in errors.
    pub(crate) fn resolve(&self) -> Result<Option<Secret>> {
        match self {
            Self::None => Ok(None),
            Self::Inline(secret) => Ok(Some(secret.clone())),
            Self::File(path) => read_password_file(path).map(Some),
        }
    }
}

/// The password in `path`, without one trailing `\n` or `\r\n`.
pub(crate) fn read_password_file(path: &Path) -> Result<Secret> {
    let mut text = std::fs::read_to_string(path).map_err(|e| {
        Error::new(
            ErrorKind::Config,
            format!("cannot read password file `{}`", path.display()),
        )
        .with_source(e)
    })?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(Secret::new(text))
}

/// The parts of a connection URL, percent-decoded.
#[derive(Debug)]
pub(crate) struct ConnUrl {
    pub(crate) user: Option<String>,
    pub(crate) password: Option<Secret>,
    pub(crate) host: Option<String>,
    pub(crate) port: Option<u16>,
    pub(crate) database: Option<String>,
    pub(crate) params: Vec<(String, String)>,
}

impl ConnUrl {
    /// Parses `url`, whose scheme must be one of `schemes`; `engine` names the server kind in
    /// errors, which show the URL with its password replaced by `***`.
    pub(crate) fn parse(url: &str, schemes: &[&str], engine: &str) -> Result<Self> {
        let invalid = |reason: String| {
            Error::config(format!("invalid {engine} url `{}`: {reason}", redact(url)))
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("expected `scheme://host`".to_owned()))?;
        if !schemes.contains(&scheme) {
            let names: Vec<String> = schemes.iter().map(|s| format!("`{s}`")).collect();
            return Err(invalid(format!("expected scheme {}", names.join(" or "))));
        }
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (user, password) = match info.split_once(':') {
                    Some((user, password)) => (user, Some(password)),
                    None => (info, None),
                };
                let user = decode(user).ok_or_else(|| invalid("bad escape in user".to_owned()))?;
                let password = password
                    .map(|p| decode(p).ok_or_else(|| invalid("bad escape in password".to_owned())))
                    .transpose()?;
                (
                    (!user.is_empty()).then_some(user),
                    password.map(Secret::new),
                )
            }
        };
        let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| invalid("unclosed `[` in host".to_owned()))?;
            match after.strip_prefix(':') {
                Some(port) => (host.to_owned(), Some(port)),
                None if after.is_empty() => (host.to_owned(), None),
                None => return Err(invalid("unexpected text after `]`".to_owned())),
            }
        } else {
            let (host, port) = match hostport.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            };
            let host = decode(host).ok_or_else(|| invalid("bad escape in host".to_owned()))?;
            (host, port)
        };
        let port = match port {
            None | Some("") => None,
            Some(port) => Some(
                port.parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| invalid("port must be a number from 1 to 65535".to_owned()))?,
            ),
        };
        let database = decode(path).ok_or_else(|| invalid("bad escape in database".to_owned()))?;
        let mut params = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name =
                decode(name).ok_or_else(|| invalid("bad escape in option name".to_owned()))?;
            let value = decode(value)
                .ok_or_else(|| invalid(format!("bad escape in the value of `{name}`")))?;
            params.push((name, value));
        }
        Ok(Self {
            user,
            password,
            host: (!host.is_empty()).then_some(host),
            port,
            database: (!database.is_empty()).then_some(database),
            params,
        })
    }
}

/// An error for the option `name` of a URL: `reason` says what is wrong with its value.
pub(crate) fn bad_option(engine: &str, url: &str, name: &str, reason: &str) -> Error {
    Error::config(format!(
        "invalid {engine} url `{}`: option `{name}` {reason}",
        redact(url)
    ))
}

/// Parses a `connect_timeout` value in whole seconds; `0` means no timeout (libpq), kept
/// here as a very long one.
pub(crate) fn parse_timeout(value: &str) -> Option<Duration> {
    let seconds: u64 = value.trim().parse().ok()?;
    Some(if seconds == 0 {
        Duration::from_secs(u64::from(u32::MAX))
    } else {
        Duration::from_secs(seconds)
    })
}

/// `url` with the password of its authority and the values of `password`-like options
/// replaced by `***`. Works on malformed URLs too, as it looks only for the separators.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The authority ends at the first `/`, `?` or `#` after the last `@` (a raw password
    // may contain those characters, but user names and hosts do not).
    let search_from = rest.rfind('@').map_or(0, |at| at + 1);
    let authority_end = rest[search_from..]
        .find(['/', '?', '#'])
        .map_or(rest.len(), |i| search_from + i);
    let authority = &rest[..authority_end];
    let mut out = format!("{scheme}://");
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => out.push_str(&format!("{user}:***@{host}")),
            None => out.push_str(authority),
        },
        None => out.push_str(authority),
    }
    let tail = &rest[authority_end..];
    let (before_query, query) = match tail.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (tail, None),
    };
    out.push_str(before_query);
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _))
                    if name.to_ascii_lowercase().contains("password")
                        && !name.eq_ignore_ascii_case("password_file") =>
                {
                    format!("{name}=***")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_parts() {
        let u = ConnUrl::parse(
            "mysql://app:p%40s%2Fs%3F%23w@db.example:3307/shop?ssl-mode=REQUIRED&ssl-ca=%2Fca.pem",
            &["mysql"],
            "mysql",
        )
        .unwrap();
        assert_eq!(u.user.as_deref(), Some("app"));
        assert_eq!(u.password.as_ref().map(Secret::expose), Some("p@s/s?#w"));
        assert_eq!(u.host.as_deref(), Some("db.example"));
        assert_eq!(u.port, Some(3307));
        assert_eq!(u.database.as_deref(), Some("shop"));
        assert_eq!(
            u.params,
            vec![
                ("ssl-mode".to_owned(), "REQUIRED".to_owned()),
                ("ssl-ca".to_owned(), "/ca.pem".to_owned())
            ]
        );
        let u = ConnUrl::parse("postgres://[::1]", &["postgres"], "postgres").unwrap();
        assert_eq!(
            (u.host.as_deref(), u.port, u.user),
            (Some("::1"), None, None)
        );
    }

    #[test]
    fn errors_never_show_the_password() {
        for url in [
            "mysql://u:s3cret@h:99999/db",
            "mysql://u:s3cret@h:x",
            "mysql://u:s3cret@h/%zz",
            "pg://u:s3cret@h",
            "mysql://u:s3cret/with/slash@h:1:2",
        ] {
            let e = ConnUrl::parse(url, &["mysql"], "mysql").unwrap_err();
            assert!(!e.report().contains("s3cret"), "{}", e.report());
            assert!(!format!("{e:?}").contains("s3cret"), "{e:?}");
        }
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("mysql://app:s3cret@db:3306/shop"),
            "mysql://app:***@db:3306/shop"
        );
        assert_eq!(redact("mysql://app:a/b?c@db/x"), "mysql://app:***@db/x");
        assert_eq!(redact("mysql://db:3306"), "mysql://db:3306");
        assert_eq!(
            redact("postgres://db/x?user=u&password=s3cret&sslmode=require"),
            "postgres://db/x?user=u&password=***&sslmode=require"
        );
    }

    #[test]
    fn reads_password_files_without_the_trailing_newline() {
        let dir = std::env::temp_dir().join(format!("dts-url-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pw");
        std::fs::write(&path, "a b\n").unwrap();
        assert_eq!(read_password_file(&path).unwrap().expose(), "a b");
        std::fs::write(&path, "x\r\n").unwrap();
        assert_eq!(read_password_file(&path).unwrap().expose(), "x");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(read_password_file(&path).is_err());
        assert_eq!(format!("{:?}", Secret::new("s3cret")), "***");
    }
}
