//! The task file: what to migrate, from where, to where, and how.
//!
//! A task file is TOML; every key is documented on the field it sets, and unknown keys are
//! rejected so a typo never silently changes what a task does. See `examples/task.toml` in
//! the repository for a commented example.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use dts_core::{Catalog, Error, Result, TableName};
use serde::Deserialize;

/// A migration task, as read from a task file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    /// The task's name: it keys the task's state (checkpoints, positions) in the target, so
    /// two tasks writing into one target must have different names. Default `dts`.
    #[serde(default = "default_task_name")]
    pub name: String,
    /// The migration types to run, in any order: `schema`, `full`, `incremental`.
    /// Default: `["schema"]`.
    #[serde(default = "default_migration")]
    pub migration: Vec<MigrationType>,
    /// The source server.
    pub source: Endpoint,
    /// The target server.
    pub target: Endpoint,
    /// Which objects to migrate and what to call them in the target.
    #[serde(default)]
    pub objects: Objects,
    /// Policies for conflicts and names.
    #[serde(default)]
    pub policy: Policy,
    /// Type-mapping options; the defaults are lossless.
    #[serde(default)]
    pub types: TypeOptions,
    /// Full data migration settings.
    #[serde(default)]
    pub full: FullOptions,
    /// Incremental migration settings.
    #[serde(default)]
    pub incremental: IncrementalOptions,
    /// Per-table settings, keyed by a `database.table` pattern (`*` and `?` wildcards, as in
    /// `objects.include`): which columns, which rows (`where`) and which replicated
    /// operations. A table matched by an exact key takes that key's settings; otherwise at
    /// most one wildcard key may set a given setting for it (two that do are an error
    /// naming both).
    #[serde(default)]
    pub tables: BTreeMap<String, TableOptions>,
    /// Labels added to every metric (see [`crate::metrics`]).
    #[serde(default)]
    pub metrics: crate::metrics::MetricsConfig,
    /// Alerts: when to run a command or post to a webhook (see [`crate::alerts`]).
    #[serde(default)]
    pub alerts: Vec<crate::alerts::AlertConfig>,
}

/// Incremental migration settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncrementalOptions {
    /// The replica server id dts uses to read the binlog; must differ from every server and
    /// replica of the source. Default: derived from the task name.
    #[serde(default)]
    pub server_id: Option<u32>,
    /// Which changes to replicate: any of `insert`, `update`, `delete`, `truncate`, `ddl`.
    /// Default: all.
    #[serde(default = "default_operations")]
    pub operations: Vec<Operation>,
    /// DDL that cannot be translated for the target: `stop` (default: the task stops with
    /// an error naming the statement) or `skip` (logged and skipped).
    #[serde(default)]
    pub untranslatable_ddl: UntranslatableDdl,
    /// MySQL/MariaDB target: whether the applied changes are written to the target's
    /// binlog, so that the target's own replicas follow (default `true`). `false` keeps
    /// them out (`SET SESSION sql_log_bin = 0`, which needs `BINLOG ADMIN` on MariaDB,
    /// `SYSTEM_VARIABLES_ADMIN` on MySQL; the precheck says). Refused for a PostgreSQL
    /// target.
    #[serde(default = "default_true")]
    pub target_binlog: bool,
    /// Task-wide limit on row changes applied per second (replication throttle). Default:
    /// none.
    #[serde(default)]
    pub max_rows_per_second: Option<u64>,
    /// Task-wide limit on bytes of row changes applied per second. Default: none.
    #[serde(default)]
    pub max_bytes_per_second: Option<u64>,
    /// Most source rows applied in one target transaction. Default 20,000.
    #[serde(default = "default_batch_rows")]
    pub max_batch_rows: usize,
    /// Longest a change waits to be batched, in milliseconds. Default 100.
    #[serde(default = "default_batch_delay_ms")]
    pub max_batch_delay_ms: u64,
    /// How long lost connections to either server (and other transient failures) are
    /// retried before the task fails, in seconds, counted from the first failure since work
    /// last got done: in the full load (the unfinished chunks are copied again), the
    /// post-data steps and replication. Default 60.
    #[serde(default = "default_retry_window")]
    pub retry_window_seconds: u64,
    /// Sampled verification during replication: the share of applied row changes (0 to 1)
    /// whose rows are compared, source against target, once applied. Default `0` (off).
    #[serde(default)]
    pub verify_sample: f64,
    /// Most sampled rows compared per second (the rest of the sample is skipped).
    /// Default 100.
    #[serde(default = "default_verify_rate")]
    pub verify_max_rows_per_second: u32,
}

fn default_verify_rate() -> u32 {
    100
}

impl Default for IncrementalOptions {
    fn default() -> Self {
        Self {
            server_id: None,
            operations: default_operations(),
            untranslatable_ddl: UntranslatableDdl::default(),
            target_binlog: true,
            max_rows_per_second: None,
            max_bytes_per_second: None,
            max_batch_rows: default_batch_rows(),
            max_batch_delay_ms: default_batch_delay_ms(),
            retry_window_seconds: default_retry_window(),
            verify_sample: 0.0,
            verify_max_rows_per_second: default_verify_rate(),
        }
    }
}

fn default_operations() -> Vec<Operation> {
    vec![
        Operation::Insert,
        Operation::Update,
        Operation::Delete,
        Operation::Truncate,
        Operation::Ddl,
    ]
}

fn default_true() -> bool {
    true
}

fn default_batch_rows() -> usize {
    20_000
}

fn default_batch_delay_ms() -> u64 {
    100
}

fn default_retry_window() -> u64 {
    60
}

/// A kind of change incremental migration can replicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Operation {
    /// Row inserts.
    Insert,
    /// Row updates.
    Update,
    /// Row deletes.
    Delete,
    /// `TRUNCATE`.
    Truncate,
    /// Schema changes.
    Ddl,
}

/// What to do with DDL that cannot be translated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UntranslatableDdl {
    /// Stop the task with an error naming the statement.
    #[default]
    Stop,
    /// Log a warning naming the statement and continue.
    Skip,
}

impl IncrementalOptions {
    /// Whether the applied changes go to a MySQL/MariaDB target's binlog.
    pub fn target_binlog(&self) -> dts_connectors::TargetBinlog {
        if self.target_binlog {
            dts_connectors::TargetBinlog::On
        } else {
            dts_connectors::TargetBinlog::Off
        }
    }

    /// The server id to read the binlog with.
    pub fn server_id(&self, task: &str) -> u32 {
        self.server_id.unwrap_or_else(|| {
            // FNV-1a of the task name, in a range unlikely to collide with real servers.
            let mut h: u32 = 0x811c_9dc5;
            for b in task.bytes() {
                h ^= u32::from(b);
                h = h.wrapping_mul(0x0100_0193);
            }
            0x4000_0000 | (h & 0x3fff_ffff)
        })
    }
}

/// Full data migration settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FullOptions {
    /// Parallel copy workers (each one source and one target connection). Default: the
    /// number of CPU cores, at least 2.
    #[serde(default)]
    pub workers: Option<usize>,
    /// Rows per chunk: the unit of parallelism and of resumption. Default 50,000.
    #[serde(default = "default_rows_per_chunk")]
    pub rows_per_chunk: u64,
    /// Task-wide limit on rows copied per second. Default: none.
    #[serde(default)]
    pub max_rows_per_second: Option<u64>,
    /// Task-wide limit on bytes copied per second. Default: none.
    #[serde(default)]
    pub max_bytes_per_second: Option<u64>,
    /// A row with a value the target cannot hold: `stop` (default: the run stops, naming
    /// table, column and key) or `reject` (the row and the reason go to `reject_file`, and
    /// the copy continues).
    #[serde(default)]
    pub bad_rows: BadRows,
    /// Where rejected rows are written (tab-separated: table, column, key, reason, row).
    /// Default `dts-rejects.tsv` in the current directory.
    #[serde(default = "default_reject_file")]
    pub reject_file: std::path::PathBuf,
    /// Whether `dts run` scans every selected row for values the target cannot hold before
    /// it writes anything (one extra read of every table). Default `false`: the copy checks
    /// every value as it goes and stops (or rejects) naming table, column and key, and
    /// `dts precheck` always scans.
    #[serde(default)]
    pub precheck_values: bool,
    /// Tables whose storage engine is not transactional (MyISAM, Aria, MEMORY, …), which a
    /// consistent snapshot does not hold still: `refuse` (default: the precheck fails,
    /// naming them and the fix) or `lock` (they are locked against writes, with `LOCK
    /// TABLES … READ`, from before the snapshot until the copy ends, so that their copy
    /// matches the snapshot's position; writes to them wait meanwhile).
    #[serde(default)]
    pub non_transactional: NonTransactional,
    /// Seconds a chunk may move no rows before its connections count as stalled (a network
    /// that drops packets without closing the connection): the chunk then fails and is
    /// retried within `incremental.retry_window_seconds`, like a lost connection. `0`
    /// waits for ever. Default 120.
    #[serde(default = "default_stall_timeout_seconds")]
    pub stall_timeout_seconds: u64,
    /// Whether `dts run` verifies every copied table once the full load is done, as `dts
    /// verify` does, and fails naming the differences when the target does not match (the
    /// full load is then not recorded as done: repair with `dts verify --repair` and run
    /// the task again). Default `false`. With incremental migration the tables are verified
    /// while replication runs, differences re-checked once the target has applied past the
    /// source position they were read at, and a difference that persists fails the task.
    #[serde(default)]
    pub verify: bool,
}

fn default_stall_timeout_seconds() -> u64 {
    120
}

impl Default for FullOptions {
    fn default() -> Self {
        Self {
            workers: None,
            rows_per_chunk: default_rows_per_chunk(),
            max_rows_per_second: None,
            max_bytes_per_second: None,
            bad_rows: BadRows::default(),
            reject_file: default_reject_file(),
            precheck_values: false,
            stall_timeout_seconds: default_stall_timeout_seconds(),
            non_transactional: NonTransactional::default(),
            verify: false,
        }
    }
}

impl FullOptions {
    /// The number of workers to use.
    pub fn workers(&self) -> usize {
        self.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .max(2)
        })
    }
}

fn default_rows_per_chunk() -> u64 {
    50_000
}

fn default_reject_file() -> std::path::PathBuf {
    "dts-rejects.tsv".into()
}

/// What the full load does with tables of a non-transactional storage engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NonTransactional {
    /// Fail the precheck, naming the tables and the fix.
    #[default]
    Refuse,
    /// Lock them against writes from before the snapshot until the copy ends.
    Lock,
}

/// The bad-row policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BadRows {
    /// Stop the run with an error naming table, column and key.
    #[default]
    Stop,
    /// Write the row to the reject file and continue.
    Reject,
}

fn default_task_name() -> String {
    "dts".into()
}

fn default_migration() -> Vec<MigrationType> {
    vec![MigrationType::Schema]
}

/// One of the three migration types a task may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MigrationType {
    /// Create the target schema: tables, keys, indexes, constraints.
    Schema,
    /// Copy every selected row from a consistent snapshot.
    Full,
    /// Replicate changes made after the snapshot.
    Incremental,
}

impl fmt::Display for MigrationType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Schema => "schema",
            Self::Full => "full",
            Self::Incremental => "incremental",
        })
    }
}

/// A server, named by URL.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// `mysql://user:password@host:port` or `postgres://user:password@host:port/db`, for the
    /// source and for the target; a source may also be a SQLite file, `sqlite://PATH`
    /// (`sqlite://data/app.db` is relative, `sqlite:///srv/app.db` absolute) or `sqlite:PATH`. `${VAR}` is replaced by the environment variable `VAR`, so passwords
    /// need not be written into the file.
    pub url: String,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &dts_core::error::redact_url(&self.url))
            .finish()
    }
}

/// Object selection and renaming.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objects {
    /// Tables to migrate, as `database.table` patterns; `*` matches any run of characters and
    /// `?` one character; a bare `database` means all its tables. Required: at least one.
    #[serde(default)]
    pub include: Vec<String>,
    /// Tables to leave out, as patterns like `include`'s; exclusion wins.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Renames: source database → target schema.
    #[serde(default)]
    pub rename_databases: BTreeMap<String, String>,
    /// Renames: `database.table` → new table name (in the table's target schema).
    #[serde(default)]
    pub rename_tables: BTreeMap<String, String>,
    /// Renames: `database.table.column` → new column name.
    #[serde(default)]
    pub rename_columns: BTreeMap<String, String>,
}

/// Settings of the tables a `[tables."pattern"]` key matches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableOptions {
    /// Which columns are migrated (created, copied, replicated).
    #[serde(default)]
    pub columns: ColumnSelection,
    /// A row filter: a SQL condition on the source table's columns, in the source's
    /// dialect (`region = 'eu' AND deleted_at IS NULL`). The full load copies the rows it
    /// holds for; replication applies the changes of rows it holds for, and an update that
    /// moves a row out of (into) the filter becomes a delete (an insert) in the target.
    #[serde(default, rename = "where")]
    pub filter: Option<String>,
    /// The replicated operations for these tables, replacing `incremental.operations`:
    /// any of `insert`, `update`, `delete`, `truncate`, `ddl`.
    #[serde(default)]
    pub operations: Option<Vec<Operation>>,
}

/// Column selection of a table: at most one of the two lists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSelection {
    /// The columns to migrate; the others are left out.
    #[serde(default)]
    pub include: Option<Vec<String>>,
    /// The columns to leave out.
    #[serde(default)]
    pub exclude: Option<Vec<String>>,
}

/// The per-table settings that apply to one table, resolved from the `[tables]` patterns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedTableOptions {
    /// The columns to migrate, when the task selects columns.
    pub columns: ColumnSelection,
    /// The row filter, when the table has one.
    pub filter: Option<String>,
    /// The replicated operations, when they differ from `incremental.operations`.
    pub operations: Option<Vec<Operation>>,
}

/// Task policies.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// What to do when a target table already exists: `fail` (default: the precheck fails),
    /// `ignore` (keep the existing table and proceed), `truncate` (keep it, emptied before
    /// the copy) or `drop` (drop it and create it as planned).
    #[serde(default)]
    pub conflicting_tables: ConflictPolicy,
    /// How identifiers are spelled in the target: `lower` (default) or `keep`.
    #[serde(default)]
    pub identifier_case: CasePolicy,
}

/// What to do when a target table already exists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConflictPolicy {
    /// The precheck fails, naming the tables.
    #[default]
    Fail,
    /// Existing tables are kept as they are; their creation is skipped.
    Ignore,
    /// Existing tables are kept, emptied (`TRUNCATE`) before the copy on the task's first
    /// run; their creation is skipped. The precheck names them.
    Truncate,
    /// Existing tables are dropped on the task's first run and created as the task plans
    /// them. The precheck names them.
    Drop,
}

/// How identifiers are spelled in the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CasePolicy {
    /// Lowercase every identifier.
    #[default]
    Lower,
    /// Keep the source's spelling.
    Keep,
}

/// Type-mapping options.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypeOptions {
    /// Map `tinyint(1)`/`bool` to `boolean` instead of `smallint`. The precheck verifies the
    /// data holds only 0, 1 and NULL. Default `false`.
    #[serde(default)]
    pub tinyint1_as_boolean: bool,
    /// Map `time` to `time` (checked: every value within 00:00–24:00) instead of `interval`.
    /// Default `interval`.
    #[serde(default)]
    pub time_as: TimeMapping,
    /// What to do with zero dates (`0000-00-00`): `null` (default; counted and reported) or
    /// `error` (the precheck and the copy stop).
    #[serde(default)]
    pub zero_date: ZeroDate,
    /// PostgreSQL `uuid` into MySQL: `char` (default: `char(36)`, the text) or `binary`
    /// (`binary(16)`, the bytes).
    #[serde(default)]
    pub uuid_as: UuidAs,
    /// PostgreSQL `interval` into MySQL: `text` (default: PostgreSQL's own text form,
    /// lossless) or `time` (`time(6)`, days as 24 hours; intervals with years or months or
    /// beyond ±838:59:59 block).
    #[serde(default)]
    pub interval_as: IntervalAs,
    /// PostgreSQL `numeric` without a precision MySQL can declare (none, more than 65
    /// digits or more than 30 fraction digits) into MySQL: `decimal` (default:
    /// `decimal(65,30)`; values that do not fit block, naming the column) or `text` (exact,
    /// `NaN` included).
    #[serde(default)]
    pub unbounded_numeric_as: UnboundedNumericAs,
    /// PostgreSQL `infinity`/`-infinity` dates and timestamps into MySQL: `error` (default:
    /// the precheck and the copy stop naming the column), `null` (counted and reported) or
    /// `clamp` (the type's last or first value, counted and reported).
    #[serde(default)]
    pub infinity: Infinity,
    /// PostgreSQL `NaN` and infinite numbers into MySQL: `error` (default) or `null`
    /// (counted and reported).
    #[serde(default)]
    pub nan: Nan,
}

/// Target type for PostgreSQL `uuid` in MySQL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UuidAs {
    /// `char(36)`: the canonical text.
    #[default]
    Char,
    /// `binary(16)`: the bytes.
    Binary,
}

/// Target type for PostgreSQL `interval` in MySQL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum IntervalAs {
    /// PostgreSQL's text form.
    #[default]
    Text,
    /// `time(6)`, checked.
    Time,
}

/// Target type for PostgreSQL `numeric` without a precision MySQL can declare.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UnboundedNumericAs {
    /// `decimal(65,30)`, checked.
    #[default]
    Decimal,
    /// Text.
    Text,
}

/// What becomes of infinite PostgreSQL dates and timestamps in MySQL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Infinity {
    /// Stop, naming the column.
    #[default]
    Error,
    /// Write NULL, count and report.
    Null,
    /// Write the type's last or first value, count and report.
    Clamp,
}

/// What becomes of PostgreSQL `NaN` and infinite numbers in MySQL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Nan {
    /// Stop, naming the column.
    #[default]
    Error,
    /// Write NULL, count and report.
    Null,
}

/// Target type for MySQL `TIME`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TimeMapping {
    /// `interval hour to second`: holds every MySQL value (±838 h).
    #[default]
    Interval,
    /// `time`: only for data within 00:00–24:00.
    Time,
}

/// Zero-date policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ZeroDate {
    /// Write NULL, count and report.
    #[default]
    Null,
    /// Stop with an error naming the row.
    Error,
}

impl TaskConfig {
    /// Reads and validates a task file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!("cannot read task file `{}`", path.display())).with_source(e)
        })?;
        text.parse::<TaskConfig>()
            .map_err(|e| e.context(format!("task file `{}`", path.display())))
    }

    /// Checks what parsing cannot: URL schemes, selection patterns, rename keys.
    pub fn validate(&self) -> Result<()> {
        self.metrics.validate()?;
        crate::alerts::validate(&self.alerts)?;
        if ![
            "mysql://",
            "mariadb://",
            "postgres://",
            "postgresql://",
            "sqlite:",
        ]
        .iter()
        .any(|scheme| self.source.url.starts_with(scheme))
        {
            return Err(Error::config(format!(
                "source url `{}` must start with mysql://, mariadb://, postgres://, postgresql:// \
                 or sqlite://",
                dts_core::error::redact_url(&self.source.url)
            )));
        }
        if !["mysql://", "mariadb://", "postgres://", "postgresql://"]
            .iter()
            .any(|scheme| self.target.url.starts_with(scheme))
        {
            return Err(Error::config(format!(
                "target url `{}` must start with mysql://, mariadb://, postgres:// or postgresql://",
                dts_core::error::redact_url(&self.target.url)
            )));
        }
        if self.name.is_empty() || self.name.len() > 60 {
            return Err(Error::config("task name must be 1 to 60 characters"));
        }
        if self.migration.is_empty() {
            return Err(Error::config(
                "`migration` must list at least one of schema, full, incremental",
            ));
        }
        if self.full.workers == Some(0) || self.full.workers.is_some_and(|w| w > 64) {
            return Err(Error::config("`full.workers` must be between 1 and 64"));
        }
        if self.incremental.server_id == Some(0) {
            return Err(Error::config("`incremental.server_id` must not be 0"));
        }
        if !self.incremental.target_binlog
            && ["postgres://", "postgresql://"]
                .iter()
                .any(|scheme| self.target.url.starts_with(scheme))
        {
            return Err(Error::config(
                "`incremental.target_binlog = false` is for MySQL/MariaDB targets: a \
                 PostgreSQL target always logs the changes it applies",
            ));
        }
        if self.incremental.max_batch_rows == 0 {
            return Err(Error::config(
                "`incremental.max_batch_rows` must be at least 1",
            ));
        }
        if self.full.rows_per_chunk == 0 {
            return Err(Error::config("`full.rows_per_chunk` must be at least 1"));
        }
        if !(0.0..=1.0).contains(&self.incremental.verify_sample) {
            return Err(Error::config(
                "`incremental.verify_sample` must be between 0 and 1 (the share of applied \
                 row changes compared)",
            ));
        }
        if self.incremental.verify_max_rows_per_second == 0 {
            return Err(Error::config(
                "`incremental.verify_max_rows_per_second` must be at least 1",
            ));
        }
        if self.objects.include.is_empty() {
            return Err(Error::config(
                "`objects.include` must name at least one database or `database.table` pattern",
            ));
        }
        for p in self.objects.include.iter().chain(&self.objects.exclude) {
            TablePattern::parse(p)?;
        }
        for key in self.objects.rename_tables.keys() {
            parse_qualified(key, 2, "objects.rename_tables")?;
        }
        for (key, options) in &self.tables {
            let pattern =
                TablePattern::parse(key).map_err(|e| e.context(format!("`[tables.\"{key}\"]`")))?;
            if pattern.table == "*" && !key.contains('.') {
                return Err(Error::config(format!(
                    "`[tables.\"{key}\"]` must name tables as `database.table` (wildcards \
                     allowed)"
                )));
            }
            match (&options.columns.include, &options.columns.exclude) {
                (Some(_), Some(_)) => {
                    return Err(Error::config(format!(
                        "`[tables.\"{key}\"]` sets both `columns.include` and \
                         `columns.exclude`: choose one"
                    )))
                }
                (Some(list), None) if list.is_empty() => {
                    return Err(Error::config(format!(
                        "`[tables.\"{key}\"]` `columns.include` must name at least one column"
                    )))
                }
                _ => {}
            }
            if options
                .filter
                .as_deref()
                .is_some_and(|f| f.trim().is_empty())
            {
                return Err(Error::config(format!(
                    "`[tables.\"{key}\"]` `where` is empty"
                )));
            }
        }
        for key in self.objects.rename_columns.keys() {
            parse_qualified(key, 3, "objects.rename_columns")?;
        }
        Ok(())
    }

    /// The `[tables]` settings that apply to table `t` (named as in the source).
    ///
    /// # Errors
    ///
    /// Two wildcard keys that both match `t` set the same setting (an exact key wins).
    pub fn table_options(&self, t: &TableName) -> Result<ResolvedTableOptions> {
        let mut matching: Vec<(&String, &TableOptions)> = self
            .tables
            .iter()
            .filter(|(k, _)| TablePattern::parse(k).is_ok_and(|p| p.matches(t)))
            .collect();
        // An exact key first: it wins over wildcard ones.
        matching.sort_by_key(|(k, _)| k.contains(['*', '?']));
        let mut out = ResolvedTableOptions::default();
        let mut set_by: [Option<&String>; 3] = [None; 3];
        for (key, options) in matching {
            let exact = !key.contains(['*', '?']);
            let sets = [
                options.columns.include.is_some() || options.columns.exclude.is_some(),
                options.filter.is_some(),
                options.operations.is_some(),
            ];
            for (i, name) in ["columns", "where", "operations"].iter().enumerate() {
                if !sets[i] {
                    continue;
                }
                if let Some(earlier) = set_by[i] {
                    if !exact && earlier.contains(['*', '?']) {
                        return Err(Error::config(format!(
                            "table `{t}`: both `[tables.\"{earlier}\"]` and \
                             `[tables.\"{key}\"]` set `{name}`; name the table exactly to \
                             choose"
                        )));
                    }
                    continue;
                }
                set_by[i] = Some(key);
                match i {
                    0 => out.columns = options.columns.clone(),
                    1 => out.filter = options.filter.clone(),
                    _ => out.operations = options.operations.clone(),
                }
            }
        }
        Ok(out)
    }

    /// The selection as compiled patterns.
    pub fn selection(&self) -> Result<Selection> {
        Ok(Selection {
            include: self
                .objects
                .include
                .iter()
                .map(|p| TablePattern::parse(p))
                .collect::<Result<_>>()?,
            exclude: self
                .objects
                .exclude
                .iter()
                .map(|p| TablePattern::parse(p))
                .collect::<Result<_>>()?,
        })
    }

    /// The schema translator's options for this task.
    pub fn schema_options(&self) -> Result<dts_schema::SchemaOptions> {
        let mut opts = dts_schema::SchemaOptions {
            case: match self.policy.identifier_case {
                CasePolicy::Lower => dts_schema::IdentifierCase::Lower,
                CasePolicy::Keep => dts_schema::IdentifierCase::Keep,
            },
            mapping: self.mapping_options(),
            primary_keys_after_data: self.runs(MigrationType::Full),
            ..Default::default()
        };
        opts.schema_renames = self.objects.rename_databases.clone();
        for (key, new) in &self.objects.rename_tables {
            let parts = parse_qualified(key, 2, "objects.rename_tables")?;
            opts.table_renames
                .insert(TableName::new(&parts[0], &parts[1]), new.clone());
        }
        for (key, new) in &self.objects.rename_columns {
            let parts = parse_qualified(key, 3, "objects.rename_columns")?;
            opts.column_renames.insert(
                (TableName::new(&parts[0], &parts[1]), parts[2].clone()),
                new.clone(),
            );
        }
        Ok(opts)
    }

    /// The schema translator's options for this task, with the column selection of the
    /// tables of `catalog` (the selected source tables).
    ///
    /// # Errors
    ///
    /// As [`TaskConfig::schema_options`] and [`TaskConfig::table_options`].
    pub fn schema_options_for(&self, catalog: &Catalog) -> Result<dts_schema::SchemaOptions> {
        let mut opts = self.schema_options()?;
        opts.columns = crate::columns::filters(self, catalog)?;
        Ok(opts)
    }

    /// The type-mapping options for this task.
    pub fn mapping_options(&self) -> dts_typemap::MappingOptions {
        dts_typemap::MappingOptions {
            tinyint1_as_boolean: self.types.tinyint1_as_boolean,
            time_as_time: self.types.time_as == TimeMapping::Time,
            zero_date: match self.types.zero_date {
                ZeroDate::Null => dts_typemap::ZeroDatePolicy::Null,
                ZeroDate::Error => dts_typemap::ZeroDatePolicy::Error,
            },
            pg_to_mysql: self.pg_to_mysql_options(),
        }
    }

    /// The PostgreSQL → MySQL type-mapping options for this task.
    fn pg_to_mysql_options(&self) -> dts_typemap::PgToMySqlOptions {
        use dts_typemap::pg_to_mysql as m;
        let t = &self.types;
        dts_typemap::PgToMySqlOptions {
            uuid: match t.uuid_as {
                UuidAs::Char => m::UuidMapping::Char36,
                UuidAs::Binary => m::UuidMapping::Binary16,
            },
            interval: match t.interval_as {
                IntervalAs::Text => m::IntervalMapping::Text,
                IntervalAs::Time => m::IntervalMapping::Time,
            },
            unbounded_numeric: match t.unbounded_numeric_as {
                UnboundedNumericAs::Decimal => m::UnboundedNumeric::Decimal,
                UnboundedNumericAs::Text => m::UnboundedNumeric::Text,
            },
            infinity: match t.infinity {
                Infinity::Error => m::InfinityPolicy::Error,
                Infinity::Null => m::InfinityPolicy::Null,
                Infinity::Clamp => m::InfinityPolicy::Clamp,
            },
            nan: match t.nan {
                Nan::Error => m::NanPolicy::Error,
                Nan::Null => m::NanPolicy::Null,
            },
        }
    }

    /// Whether the task runs migration type `t`.
    pub fn runs(&self, t: MigrationType) -> bool {
        self.migration.contains(&t)
    }
}

impl std::str::FromStr for TaskConfig {
    type Err = Error;

    /// Parses a task file's text, substitutes `${VAR}`s in URLs and validates it.
    fn from_str(text: &str) -> Result<Self> {
        let mut cfg: TaskConfig = toml::from_str(text).map_err(|e| {
            // The message and the line say it all; the parser's own rendering repeats them
            // over several lines, so it is not kept as the source.
            Error::config(format!("malformed task file: {}", e.message().trim()))
                .context(span_hint(text, e.span()))
        })?;
        cfg.source.url = expand_env(&cfg.source.url)?;
        cfg.target.url = expand_env(&cfg.target.url)?;
        crate::alerts::expand(&mut cfg.alerts, expand_env)?;
        cfg.validate()?;
        Ok(cfg)
    }
}

fn span_hint(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(r) => {
            let line = text[..r.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}")
        }
        None => "task file".into(),
    }
}

fn expand_env(s: &str) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| Error::config("unterminated `${` in url"))?;
        let var = &after[..end];
        let val = std::env::var(var).map_err(|_| {
            Error::config(format!(
                "environment variable `{var}` used in a url is not set"
            ))
        })?;
        out.push_str(&val);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn parse_qualified(key: &str, parts: usize, field: &str) -> Result<Vec<String>> {
    let v: Vec<String> = key.split('.').map(str::to_string).collect();
    if v.len() != parts || v.iter().any(String::is_empty) {
        let shape = if parts == 2 {
            "database.table"
        } else {
            "database.table.column"
        };
        return Err(Error::config(format!(
            "`{field}` key `{key}` must have the form `{shape}`"
        )));
    }
    Ok(v)
}

/// A `database[.table]` pattern with `*` and `?` wildcards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePattern {
    database: String,
    table: String,
}

impl TablePattern {
    /// Parses `database` or `database.table`.
    pub fn parse(p: &str) -> Result<Self> {
        let (database, table) = match p.split_once('.') {
            Some((d, t)) => (d, t),
            None => (p, "*"),
        };
        if database.is_empty() || table.is_empty() || table.contains('.') {
            return Err(Error::config(format!(
                "object pattern `{p}` must have the form `database` or `database.table`"
            )));
        }
        Ok(Self {
            database: database.into(),
            table: table.into(),
        })
    }

    /// Whether the pattern's database part matches `database`.
    pub fn matches_database(&self, database: &str) -> bool {
        wildcard_match(&self.database, database)
    }

    /// Whether the pattern matches the table.
    pub fn matches(&self, t: &TableName) -> bool {
        self.matches_database(&t.schema) && wildcard_match(&self.table, &t.name)
    }
}

/// Compiled include/exclude patterns.
#[derive(Debug, Clone)]
pub struct Selection {
    include: Vec<TablePattern>,
    exclude: Vec<TablePattern>,
}

impl Selection {
    /// Whether a table is selected.
    pub fn selects(&self, t: &TableName) -> bool {
        self.include.iter().any(|p| p.matches(t)) && !self.exclude.iter().any(|p| p.matches(t))
    }

    /// Whether some include pattern may select tables of `database` (schema changes there
    /// are followed, so tables created later are picked up).
    pub fn selects_database(&self, database: &str) -> bool {
        self.include.iter().any(|p| p.matches_database(database))
    }

    /// The databases among `available` that some include pattern may select from.
    pub fn databases<'a>(&self, available: &'a [String]) -> Vec<&'a String> {
        available
            .iter()
            .filter(|d| self.include.iter().any(|p| p.matches_database(d)))
            .collect()
    }

    /// Include patterns whose database part matches none of `available`.
    pub fn unmatched_databases(&self, available: &[String]) -> Vec<String> {
        self.include
            .iter()
            .filter(|p| !available.iter().any(|d| p.matches_database(d)))
            .map(|p| p.database.clone())
            .collect()
    }
}

/// `*` and `?` glob matching (case-sensitive, as MySQL names are on Linux).
fn wildcard_match(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = s.chars().collect();
    let (mut pi, mut si) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Checks a task file without touching any server, returning the first problem.
pub fn check_file(path: &Path) -> Result<TaskConfig> {
    TaskConfig::from_file(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        name = "shop"
        migration = ["schema"]
        [source]
        url = "mysql://root@127.0.0.1:3306"
        [target]
        url = "postgres://postgres@127.0.0.1:5432/postgres"
        [objects]
        include = ["shop", "crm.cust*"]
        exclude = ["shop.tmp_?"]
        rename_tables = { "shop.orders" = "purchase_orders" }
    "#;

    #[test]
    fn parses_a_good_file_and_selects() {
        let cfg: TaskConfig = GOOD.parse().unwrap();
        let sel = cfg.selection().unwrap();
        assert!(sel.selects(&TableName::new("shop", "orders")));
        assert!(!sel.selects(&TableName::new("shop", "tmp_1")));
        assert!(sel.selects(&TableName::new("shop", "tmp_12")));
        assert!(sel.selects(&TableName::new("crm", "customers")));
        assert!(!sel.selects(&TableName::new("crm", "leads")));
        let dbs = vec!["crm".to_string(), "shop".into(), "other".into()];
        assert_eq!(sel.databases(&dbs), vec!["crm", "shop"]);
        let opts = cfg.schema_options().unwrap();
        assert_eq!(
            opts.table_renames[&TableName::new("shop", "orders")],
            "purchase_orders"
        );
    }

    #[test]
    fn per_table_settings_resolve_exact_keys_first_and_refuse_ambiguity() {
        let text = format!(
            "{GOOD}\n[tables.\"shop.orders\"]\ncolumns.exclude = [\"note\"]\n\
             where = \"region = 'eu'\"\n\
             [tables.\"shop.*\"]\noperations = [\"insert\"]\nwhere = \"id > 0\"\n\
             [tables.\"shop.o*\"]\ncolumns.include = [\"id\"]\n"
        );
        let cfg: TaskConfig = text.parse().unwrap();
        let orders = cfg
            .table_options(&TableName::new("shop", "orders"))
            .unwrap();
        assert_eq!(orders.columns.exclude, Some(vec!["note".to_string()]));
        assert_eq!(orders.columns.include, None);
        assert_eq!(orders.filter.as_deref(), Some("region = 'eu'"));
        assert_eq!(orders.operations, Some(vec![Operation::Insert]));
        let items = cfg.table_options(&TableName::new("shop", "items")).unwrap();
        assert_eq!(items.filter.as_deref(), Some("id > 0"));
        assert_eq!(items.columns, ColumnSelection::default());
        // `shop.*` and `shop.o*` both match `shop.other`, only one sets columns: fine.
        let other = cfg.table_options(&TableName::new("shop", "other")).unwrap();
        assert_eq!(other.columns.include, Some(vec!["id".to_string()]));
        let clash = text.replace("columns.include = [\"id\"]", "where = \"id < 9\"");
        let cfg: TaskConfig = clash.parse().unwrap();
        let e = cfg
            .table_options(&TableName::new("shop", "other"))
            .unwrap_err();
        assert!(
            e.message().contains("shop.*") && e.message().contains("shop.o*"),
            "{e}"
        );
        let both = text.replace(
            "columns.exclude",
            "columns.include = [\"id\"]\ncolumns.exclude",
        );
        let e = both.parse::<TaskConfig>().unwrap_err();
        assert!(e.message().contains("choose one"), "{e}");
    }

    #[test]
    fn rejects_unknown_keys_with_a_line() {
        let bad = GOOD.replace("exclude", "exclud");
        let e = bad.parse::<TaskConfig>().unwrap_err();
        assert_eq!(e.kind(), dts_core::ErrorKind::Config);
        assert!(e.message().contains("unknown field `exclud`"), "{e}");
        assert!(e.message().starts_with("line 10"), "{e}");
    }

    #[test]
    fn a_sqlite_file_is_a_source_and_no_target() {
        for url in [
            "sqlite://data/app.db",
            "sqlite:///srv/app.db",
            "sqlite:app.db",
        ] {
            let text = GOOD.replace("mysql://root@127.0.0.1:3306", url);
            let cfg = text.parse::<TaskConfig>().unwrap();
            assert_eq!(cfg.source.url, url);
        }
        let e = GOOD
            .replace(
                "postgres://postgres@127.0.0.1:5432/postgres",
                "sqlite://x.db",
            )
            .parse::<TaskConfig>()
            .unwrap_err();
        assert!(e.message().contains("target url"), "{e}");
    }

    #[test]
    fn rejects_bad_urls_patterns_and_types() {
        for (from, to, expected) in [
            ("mysql://root", "http://root", "must start with mysql://"),
            ("\"shop\", \"crm", "\"a.b.c\", \"crm", "`a.b.c`"),
            (
                "[\"schema\"]",
                "[\"everything\"]",
                "unknown variant `everything`",
            ),
            ("\"shop.orders\"", "\"orders\"", "database.table"),
        ] {
            let e = GOOD.replace(from, to).parse::<TaskConfig>().unwrap_err();
            assert!(e.message().contains(expected), "{from} -> {to}: {e}");
        }
    }

    #[test]
    fn expands_environment_variables_and_redacts() {
        std::env::set_var("DTS_TEST_SECRET_PW", "hunter2");
        let cfg: TaskConfig = GOOD
            .replace("mysql://root@", "mysql://root:${DTS_TEST_SECRET_PW}@")
            .parse()
            .unwrap();
        assert_eq!(cfg.source.url, "mysql://root:hunter2@127.0.0.1:3306");
        assert!(!format!("{cfg:?}").contains("hunter2"));
        let e = GOOD
            .replace("mysql://root@", "mysql://root:${DTS_TEST_UNSET_VAR_X}@")
            .parse::<TaskConfig>()
            .unwrap_err();
        assert!(e.message().contains("DTS_TEST_UNSET_VAR_X"), "{e}");
    }

    #[test]
    fn the_commented_example_task_file_parses() {
        std::env::set_var("SOURCE_PASSWORD", "example");
        let cfg: TaskConfig = include_str!("../../examples/task.toml").parse().unwrap();
        assert!(cfg.runs(MigrationType::Incremental));
        assert_eq!(cfg.full.workers(), 2);
        assert_eq!(cfg.incremental.operations.len(), 5);
        assert_eq!(cfg.source.url, "mysql://root:example@127.0.0.1:3306");
        let orders = cfg
            .table_options(&TableName::new("shop", "orders"))
            .unwrap();
        assert!(orders.filter.unwrap().contains("deleted_at IS NULL"));
        let audit = cfg
            .table_options(&TableName::new("shop", "audit_log"))
            .unwrap();
        assert_eq!(audit.operations, Some(vec![Operation::Insert]));
        assert_eq!(audit.columns.include.map(|c| c.len()), Some(3));
        let customers = cfg
            .table_options(&TableName::new("shop", "customers"))
            .unwrap();
        assert_eq!(customers.columns.exclude.map(|c| c.len()), Some(2));
    }

    #[test]
    fn postgres_to_mysql_type_options() {
        let cfg: TaskConfig = format!(
            "{GOOD}\n[types]\nuuid_as = \"binary\"\ninterval_as = \"time\"\n\
             unbounded_numeric_as = \"text\"\ninfinity = \"clamp\"\nnan = \"null\"\n"
        )
        .parse()
        .unwrap();
        use dts_typemap::pg_to_mysql as m;
        let o = cfg.mapping_options().pg_to_mysql;
        assert_eq!(o.uuid, m::UuidMapping::Binary16);
        assert_eq!(o.interval, m::IntervalMapping::Time);
        assert_eq!(o.unbounded_numeric, m::UnboundedNumeric::Text);
        assert_eq!(o.infinity, m::InfinityPolicy::Clamp);
        assert_eq!(o.nan, m::NanPolicy::Null);
        let default: TaskConfig = GOOD.parse().unwrap();
        assert_eq!(
            default.mapping_options().pg_to_mysql,
            dts_typemap::PgToMySqlOptions::default()
        );
        let e = GOOD
            .replace("[objects]", "[types]\nnan = \"zero\"\n[objects]")
            .parse::<TaskConfig>()
            .unwrap_err();
        assert!(e.message().contains("unknown variant `zero`"), "{e}");
    }

    #[test]
    fn the_target_binlog_may_be_turned_off_for_a_mysql_target_only() {
        let cfg: TaskConfig = GOOD.parse().unwrap();
        assert_eq!(
            cfg.incremental.target_binlog(),
            dts_connectors::TargetBinlog::On
        );
        let off = GOOD.replace(
            "[objects]",
            "[incremental]\n        target_binlog = false\n        [objects]",
        );
        let e = off.parse::<TaskConfig>().unwrap_err();
        assert!(e.message().contains("target_binlog = false"), "{e}");
        let cfg: TaskConfig = off
            .replace(
                "postgres://postgres@127.0.0.1:5432/postgres",
                "mysql://root@127.0.0.1:3307",
            )
            .parse()
            .unwrap();
        assert_eq!(
            cfg.incremental.target_binlog(),
            dts_connectors::TargetBinlog::Off
        );
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("a*c", "abbbc"));
        assert!(wildcard_match("*", ""));
        assert!(!wildcard_match("a?c", "ac"));
        assert!(wildcard_match("a*b*c", "axxbyyc"));
        assert!(!wildcard_match("a*b", "axxc"));
    }
}
