//! Database engines, told apart by the scheme of a connection URL.

use std::fmt;

use crate::error::{Error, Result};

/// A database engine dts can read from or write to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Engine {
    /// MySQL or MariaDB (`mysql://`, `mariadb://`).
    MySql,
    /// PostgreSQL (`postgres://`, `postgresql://`).
    Postgres,
    /// SQLite (`sqlite://PATH` or `sqlite:PATH`), as a source only.
    Sqlite,
}

impl Engine {
    /// The engine a connection URL names by its scheme.
    ///
    /// # Errors
    ///
    /// A configuration error naming the scheme when it is not one of `mysql`, `mariadb`,
    /// `postgres`, `postgresql` or `sqlite`. The rest of the URL (which may hold a password) is never
    /// part of the message.
    ///
    /// ```
    /// use dts_core::Engine;
    /// assert_eq!(Engine::from_url("mariadb://u:p@db:3306").unwrap(), Engine::MySql);
    /// assert_eq!(Engine::from_url("postgresql://db/app").unwrap(), Engine::Postgres);
    /// assert_eq!(Engine::from_url("sqlite://data/app.db").unwrap(), Engine::Sqlite);
    /// assert_eq!(Engine::from_url("sqlite:app.db").unwrap(), Engine::Sqlite);
    /// assert!(Engine::from_url("oracle://db").is_err());
    /// ```
    pub fn from_url(url: &str) -> Result<Self> {
        if url
            .get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("sqlite:"))
        {
            return Ok(Self::Sqlite);
        }
        let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("");
        match scheme.to_ascii_lowercase().as_str() {
            "mysql" | "mariadb" => Ok(Self::MySql),
            "postgres" | "postgresql" => Ok(Self::Postgres),
            "" => Err(Error::config(
                "the url has no scheme: start it with mysql://, mariadb://, postgres://, \
                 postgresql:// or sqlite://",
            )),
            other => Err(Error::config(format!(
                "unsupported url scheme `{}`: use mysql://, mariadb://, postgres://, \
                 postgresql:// or sqlite://",
                other.chars().take(20).collect::<String>()
            ))),
        }
    }

    /// A short lowercase name (`mysql`, `postgres`, `sqlite`).
    pub fn name(self) -> &'static str {
        match self {
            Self::MySql => "mysql",
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MySql => "MySQL/MariaDB",
            Self::Postgres => "PostgreSQL",
            Self::Sqlite => "SQLite",
        })
    }
}
