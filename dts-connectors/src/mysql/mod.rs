//! MySQL and MariaDB.

mod binlog;
mod error;
mod options;
mod precheck;
mod snapshot;
mod source;
pub mod target;
mod types;

pub use crate::endpoint::SslMode;
pub use binlog::{BinlogFilter, MySqlBinlogSource};
pub use error::map_error;
pub use options::MySqlConnectOptions;
pub use snapshot::{
    mysql_param, MySqlKeyProber, MySqlSnapshot, MySqlSnapshotMode, MySqlSnapshotReader,
    BATCH_BYTES, BATCH_ROWS, SNAPSHOT_LOCK_WAIT_SECONDS,
};
pub use source::{MySqlReadLock, MySqlServerInfo, MySqlSource};
pub use target::{
    MySqlApplySink, MySqlChunkSink, MySqlRepairSink, MySqlStateStore, MySqlTarget,
    MySqlTargetReader,
};
