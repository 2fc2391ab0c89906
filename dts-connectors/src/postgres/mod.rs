//! PostgreSQL.

mod apply;
mod copy;
mod error;
mod options;
mod sink;
mod target;

pub use apply::{
    ensure_position_table, read_position, read_schema, record_position, record_schema, PgApplySink,
};
pub use copy::{is_supported_type, PgCopyColumn, PgCopyEncoder};
pub use error::map_error;
pub use options::{PgConnectOptions, PgSslMode};
pub use sink::{ensure_checkpoint_table, PgChunkSink};
pub use target::{connect_client, connect_client_with, PgStatement, PgTarget};
