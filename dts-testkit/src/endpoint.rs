//! Where a server listens and who logs in: parsing and printing connection URLs.

use std::fmt;

use dts_core::url::{percent_decode, percent_encode};

use crate::Error;

/// Host, port and credentials of a server, from or for a URL such as
/// `mysql://root@127.0.0.1:3306` or `postgres://postgres@127.0.0.1:5432/postgres`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// URL scheme, e.g. `mysql` or `postgres`.
    pub(crate) scheme: String,
    /// Host name or address, IPv6 addresses without brackets.
    pub(crate) host: String,
    /// TCP port.
    pub(crate) port: u16,
    /// User name.
    pub(crate) user: String,
    /// Password, if any.
    pub(crate) password: Option<String>,
    /// Database named in the URL path, if any.
    pub(crate) database: Option<String>,
}

impl Endpoint {
    /// A password-less endpoint on `127.0.0.1`.
    pub(crate) fn loopback(scheme: &str, port: u16, user: &str, database: Option<&str>) -> Self {
        Self {
            scheme: scheme.to_owned(),
            host: "127.0.0.1".to_owned(),
            port,
            user: user.to_owned(),
            password: None,
            database: database.map(str::to_owned),
        }
    }

    /// Parses `url`, accepting the given schemes; a missing port or user takes the default.
    /// Query parameters are ignored.
    pub(crate) fn parse(
        url: &str,
        schemes: &[&str],
        default_port: u16,
        default_user: &str,
    ) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidUrl {
            url: redact(url),
            reason: reason.to_owned(),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("expected `scheme://host`"))?;
        if !schemes.contains(&scheme) {
            return Err(invalid(&format!(
                "expected scheme {}",
                schemes
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            )));
        }
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => (default_user.to_owned(), None),
            Some(info) => {
                let (user, password) = match info.split_once(':') {
                    Some((user, password)) => (user, Some(password)),
                    None => (info, None),
                };
                let user = percent_decode(user).ok_or_else(|| invalid("bad escape in user"))?;
                let password = password
                    .map(|p| percent_decode(p).ok_or_else(|| invalid("bad escape in password")))
                    .transpose()?;
                let user = if user.is_empty() {
                    default_user.to_owned()
                } else {
                    user
                };
                (user, password)
            }
        };
        let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| invalid("unclosed `[` in host"))?;
            let port = match after.strip_prefix(':') {
                Some(port) => Some(port),
                None if after.is_empty() => None,
                None => return Err(invalid("unexpected text after `]`")),
            };
            (host, port)
        } else {
            match hostport.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(invalid("missing host"));
        }
        let port = match port {
            None | Some("") => default_port,
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| invalid("port must be a number from 1 to 65535"))?,
        };
        let database = percent_decode(path).ok_or_else(|| invalid("bad escape in database"))?;
        Ok(Self {
            scheme: scheme.to_owned(),
            host: host.to_owned(),
            port,
            user,
            password,
            database: (!database.is_empty()).then_some(database),
        })
    }

    /// The URL of `database` (or of no database) on this server, with the password.
    pub(crate) fn url_for(&self, database: Option<&str>) -> String {
        self.render(database, false)
    }

    /// The URL of the URL's own database, with the password shown as `***`.
    pub(crate) fn redacted(&self) -> String {
        self.render(self.database.as_deref(), true)
    }

    fn render(&self, database: Option<&str>, hide_password: bool) -> String {
        let mut url = format!("{}://{}", self.scheme, percent_encode(&self.user));
        if let Some(password) = &self.password {
            url.push(':');
            if hide_password {
                url.push_str("***");
            } else {
                url.push_str(&percent_encode(password));
            }
        }
        url.push('@');
        if self.host.contains(':') {
            url.push_str(&format!("[{}]", self.host));
        } else {
            url.push_str(&self.host);
        }
        url.push_str(&format!(":{}", self.port));
        if let Some(database) = database {
            url.push('/');
            url.push_str(&percent_encode(database));
        }
        url
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// `url` with the password part of its authority (if any) replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{}", &rest[authority_end..]),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mysql(url: &str) -> Result<Endpoint, Error> {
        Endpoint::parse(url, &["mysql", "mariadb"], 3306, "root")
    }

    #[test]
    fn parses_user_host_port() {
        let e = mysql("mysql://root@127.0.0.1:3306").unwrap();
        assert_eq!(e.host, "127.0.0.1");
        assert_eq!(e.port, 3306);
        assert_eq!(e.user, "root");
        assert_eq!(e.password, None);
        assert_eq!(e.database, None);
        assert_eq!(e.url_for(Some("shop")), "mysql://root@127.0.0.1:3306/shop");
    }

    #[test]
    fn applies_defaults() {
        let e = mysql("mysql://db.example").unwrap();
        assert_eq!((e.port, e.user.as_str()), (3306, "root"));
        let e = Endpoint::parse(
            "postgresql://h/app",
            &["postgres", "postgresql"],
            5432,
            "pg",
        )
        .unwrap();
        assert_eq!((e.port, e.user.as_str()), (5432, "pg"));
        assert_eq!(e.database.as_deref(), Some("app"));
    }

    #[test]
    fn decodes_and_reencodes_password() {
        let e = mysql("mysql://app:p%40ss%3Aw@[::1]:3307/db?ssl=1").unwrap();
        assert_eq!(e.user, "app");
        assert_eq!(e.password.as_deref(), Some("p@ss:w"));
        assert_eq!(e.host, "::1");
        assert_eq!(e.port, 3307);
        assert_eq!(e.database.as_deref(), Some("db"));
        assert_eq!(e.url_for(None), "mysql://app:p%40ss%3Aw@[::1]:3307");
        assert_eq!(format!("{e:?}"), "mysql://app:***@[::1]:3307/db");
    }

    #[test]
    fn rejects_bad_urls_without_echoing_passwords() {
        for url in [
            "127.0.0.1:3306",
            "postgres://root@h:1",
            "mysql://root@:3306",
            "mysql://root@h:99999",
            "mysql://root:secret@h:x",
        ] {
            let err = mysql(url).unwrap_err().to_string();
            assert!(err.starts_with("invalid connection url"), "{err}");
            assert!(!err.contains("secret"), "{err}");
        }
    }
}
