//! PostgreSQL.

mod error;
mod target;

pub use error::map_error;
pub use target::{PgStatement, PgTarget};
