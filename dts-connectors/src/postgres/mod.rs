//! PostgreSQL.

mod apply;
mod cascade;
mod copy;
mod error;
mod options;
mod precheck;
mod sink;
mod source;
mod state;
mod target;
mod verify;

pub use crate::endpoint::SslMode;
pub use apply::PgApplySink;
pub use copy::{is_supported_type, PgCopyColumn, PgCopyEncoder};
#[cfg(feature = "mysql")]
pub(crate) use copy::{put_field, write_numeric};
pub use error::map_error;
pub use options::PgConnectOptions;
pub use sink::PgChunkSink;
pub use source::{
    PgChangeSource, PgFeedback, PgKeyProber, PgServerInfo, PgSnapshot, PgSnapshotReader, PgSource,
    SlotLifetime,
};
pub use state::{
    migrate, read_position, read_schema, record_position, record_schema, PgStateStore, META_SCHEMA,
    STATE_VERSION,
};
pub use target::{connect_client, connect_client_with, PgStatement, PgTarget};
pub use verify::{PgRepairSink, PgTargetReader};
