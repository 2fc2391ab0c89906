//! Mapping `mysql_async` errors onto classified [`dts_core::Error`]s.

use dts_core::{Error, ErrorKind};

/// Classifies a `mysql_async` error by MySQL error number, keeping it as the source.
/// `what` names the operation or object, e.g. ``reading schema of `shop` ``.
pub fn map_error(e: mysql_async::Error, what: impl std::fmt::Display) -> Error {
    let kind = match &e {
        mysql_async::Error::Server(s) => match s.code {
            // access denied to database / for user / to table or column / for operation
            1044 | 1045 | 1142 | 1143 | 1227 | 1370 => ErrorKind::Privilege,
            // lock wait timeout, deadlock; a binlog reader with our server id is still
            // registered (the server drops it once it notices its connection is gone)
            1205 | 1213 | 4052 => ErrorKind::Transient,
            // server shutdown in progress, too many connections, the session was killed
            // (MariaDB)
            1053 | 1040 | 1927 => ErrorKind::Connection,
            1049 | 1146 | 1054 => ErrorKind::Config,
            _ => ErrorKind::Database,
        },
        mysql_async::Error::Io(_) => ErrorKind::Connection,
        mysql_async::Error::Driver(mysql_async::DriverError::ConnectionClosed) => {
            ErrorKind::Connection
        }
        mysql_async::Error::Url(_) => ErrorKind::Config,
        _ => ErrorKind::Database,
    };
    Error::new(kind, what.to_string()).with_source(e)
}
