//! MySQL and MariaDB.

mod error;
mod source;

pub use error::map_error;
pub use source::{MySqlServerInfo, MySqlSource};
