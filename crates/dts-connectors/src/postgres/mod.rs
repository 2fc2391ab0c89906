//! PostgreSQL.

mod copy;
mod error;
mod sink;
mod target;

pub use copy::{is_supported_type, PgCopyColumn, PgCopyEncoder};
pub use error::map_error;
pub use sink::{ensure_checkpoint_table, PgChunkSink};
pub use target::{PgStatement, PgTarget};
