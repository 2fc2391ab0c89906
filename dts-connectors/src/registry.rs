//! Connectors chosen at run time from a connection URL's scheme.
//!
//! [`Source::connect`] and [`Target::connect`] look at the URL's scheme (`mysql://`,
//! `mariadb://`, `postgres://`, `postgresql://`, and `sqlite://` for a source) and open the
//! matching connector. What they
//! return speaks only in the traits and types of `dts-core` (schema source, snapshot readers,
//! chunk sinks, change sources, apply sinks, state store) and in prechecks, so a program
//! built on them — the task runner of the `dts` crate — never names a driver type.
//!
//! The set of engines is closed and known when the crate is built (one feature each), so a
//! source and a target are enums over the engines compiled in: adding an engine is a new
//! variant, and the compiler points at every capability the new engine must provide. The
//! per-connection objects they hand out (readers, sinks, change sources) are trait objects
//! of the `dts-core` traits, which is what the engines and custom sinks plug into.
//!
//! Every error a [`Source`] or a [`Target`] returns, and every error of the objects they
//! hand out, says which end it comes from ([`dts_core::Error::end`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use dts_core::{
    ApplySink, CascadeLogging, Catalog, ChangeMapper, ChangeSource, ChunkSink, Engine, Error,
    Position, PrecheckReport, ReaderRecord, RepairSink, Result, RowEncoding, RowMapper,
    SchemaSource, SnapshotReader, StateStore, Table, TableName, TargetReader,
};
use dts_schema::{
    MySqlToMySqlChangeMapper, PgToMySqlChangeMapper, PgToMySqlRowMapper, PgToPgChangeMapper,
    PlanRowMapper, SchemaOptions, SchemaPlan, SchemaTracker, SqliteRowMapper, Statement, TablePlan,
    TrackedChangeMapper,
};
use dts_typemap::MappingOptions;

use crate::end::{source_error, target_error, AtEnd};
#[cfg(feature = "mysql")]
use crate::mysql::{
    BinlogFilter, MySqlApplySink, MySqlBinlogSource, MySqlChunkSink, MySqlRepairSink,
    MySqlSnapshot, MySqlSnapshotReader, MySqlSource, MySqlStateStore, MySqlTarget,
    MySqlTargetReader,
};
#[cfg(feature = "postgres")]
use crate::postgres::{
    PgApplySink, PgChangeSource, PgChunkSink, PgRepairSink, PgSnapshot, PgSnapshotReader, PgSource,
    PgStateStore, PgStatement, PgTarget, PgTargetReader, SlotLifetime,
};
#[cfg(feature = "sqlite")]
use crate::sqlite::{SqliteSnapshot, SqliteSnapshotReader, SqliteSource};

/// The schema translation for a pair of engines.
///
/// # Errors
///
/// [`dts_core::ErrorKind::Unsupported`] for a pair no mapping exists for yet.
pub fn plan_schema(
    source: Engine,
    target: Engine,
    catalog: &Catalog,
    options: &SchemaOptions,
) -> Result<SchemaPlan> {
    match (source, target) {
        (Engine::MySql, Engine::Postgres) => Ok(dts_schema::plan_mysql_to_pg(catalog, options)),
        (Engine::Postgres, Engine::Postgres) => Ok(dts_schema::plan_pg_to_pg(catalog, options)),
        (Engine::MySql, Engine::MySql) => Ok(dts_schema::plan_mysql_to_mysql(catalog, options)),
        (Engine::Postgres, Engine::MySql) => Ok(dts_schema::plan_pg_to_mysql(catalog, options)),
        (Engine::Sqlite, Engine::Postgres) => Ok(dts_schema::plan_sqlite_to_pg(catalog, options)),
        (Engine::Sqlite, Engine::MySql) => Ok(dts_schema::plan_sqlite_to_mysql(catalog, options)),
        (s, t) => Err(unsupported(format!("migrating from {s} to {t}"))),
    }
}

/// The row mapping of one table for the full load, for a pair of engines: converts rows as
/// the source's snapshot reader delivers them (the plan's copied columns, in order) into
/// target values.
///
/// # Errors
///
/// [`dts_core::ErrorKind::Unsupported`] for a pair no mapping exists for yet.
pub fn row_mapper(
    source: Engine,
    target: Engine,
    plan: &TablePlan,
    options: MappingOptions,
) -> Result<Arc<dyn RowMapper>> {
    match (source, target) {
        // The same-engine plans keep every type: their columns have no mapping and their
        // values pass unchanged.
        (Engine::MySql | Engine::Postgres, Engine::Postgres) | (Engine::MySql, Engine::MySql) => {
            Ok(Arc::new(PlanRowMapper::new(plan, options)))
        }
        // The plan's columns carry their PostgreSQL → MySQL mappings, options included.
        (Engine::Postgres, Engine::MySql) => Ok(Arc::new(PgToMySqlRowMapper::new(plan))),
        // Each stored value checked against its column's target type.
        (Engine::Sqlite, Engine::Postgres) => Ok(Arc::new(SqliteRowMapper::to_pg(plan))),
        (Engine::Sqlite, Engine::MySql) => Ok(Arc::new(SqliteRowMapper::to_mysql(plan))),
        (s, t) => Err(unsupported(format!("migrating rows from {s} to {t}"))),
    }
}

/// Whether rows of `plan`'s table read in `encoding` (one the source's snapshot reader
/// offered, see [`SnapshotReader::row_encoding`]) are the rows the table's mapping
/// ([`row_mapper`]) would give: so the copy may take them instead of converting values.
///
/// - Same engine, or PostgreSQL → PostgreSQL: when no column is converted.
/// - MySQL → PostgreSQL: the reader converts as the default mapping does, so when every
///   copied column is mapped into exactly the type (and modifier) the encoding names; a
///   column the task's options map otherwise (`tinyint(1)` as `boolean`, …) keeps the
///   table on values. The zero-date option is the reader's to leave alone: it sends every
///   row holding a value the mapping replaces or refuses as values.
/// - SQLite → PostgreSQL: likewise, the reader converts each stored value as the SQLite
///   mapping does, so when every copied column's target type is the one the encoding
///   names.
pub fn encoding_fits_plan(
    source: Engine,
    target: Engine,
    plan: &TablePlan,
    encoding: &RowEncoding,
) -> bool {
    match (source, target, encoding) {
        (Engine::Postgres, Engine::Postgres, _) => {
            plan.copied_columns().all(|c| c.mapping.is_none())
        }
        (Engine::MySql, Engine::Postgres, RowEncoding::PgBinaryCopy { types }) => {
            plan.copied_columns().count() == types.len()
                && plan.copied_columns().zip(types).all(|(c, t)| {
                    c.mapping
                        .as_ref()
                        .is_some_and(|m| (m.target.oid(), m.target.typmod()) == *t)
                })
        }
        (Engine::Sqlite, Engine::Postgres, RowEncoding::PgBinaryCopy { types }) => {
            plan.copied_columns().count() == types.len()
                && plan.copied_columns().zip(types).all(|(c, t)| {
                    dts_typemap::sqlite::SqliteTarget::from_pg_type(&c.target_type)
                        .is_some_and(|target| target.pg_type_id() == *t)
                })
        }
        _ => false,
    }
}

/// What a change mapping needs: the source schema at the stream's start position and the
/// task's options.
#[derive(Clone)]
pub struct ChangeMapping {
    /// The source schema at the position the stream starts at.
    pub catalog: Catalog,
    /// The schema translation options.
    pub schema: SchemaOptions,
    /// The type mapping options.
    pub values: MappingOptions,
    /// Which source tables are selected.
    pub selects: Arc<dyn Fn(&TableName) -> bool + Send + Sync>,
    /// Skip DDL that cannot be translated (with a warning) instead of stopping.
    pub skip_unsupported_ddl: bool,
}

impl std::fmt::Debug for ChangeMapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeMapping")
            .field("skip_unsupported_ddl", &self.skip_unsupported_ddl)
            .finish_non_exhaustive()
    }
}

/// The change mapping for replication, for a pair of engines.
///
/// # Errors
///
/// [`dts_core::ErrorKind::Unsupported`] for a pair no mapping exists for yet.
pub fn change_mapper(
    source: Engine,
    target: Engine,
    mapping: ChangeMapping,
) -> Result<Box<dyn ChangeMapper>> {
    match (source, target) {
        (Engine::MySql, Engine::Postgres) => {
            let tracker = SchemaTracker::new(mapping.catalog, mapping.schema, mapping.selects);
            Ok(Box::new(
                TrackedChangeMapper::new(tracker, mapping.values)
                    .with_skip_unsupported_ddl(mapping.skip_unsupported_ddl),
            ))
        }
        // Names and values pass as they are; the recorded schema checks the columns.
        (Engine::Postgres, Engine::Postgres) => Ok(Box::new(PgToPgChangeMapper::new(
            &mapping.catalog,
            mapping.selects,
        ))),
        // Names and values as the schema migration planned them; the recorded schema
        // checks the columns.
        (Engine::Postgres, Engine::MySql) => Ok(Box::new(PgToMySqlChangeMapper::new(
            &mapping.catalog,
            &mapping.schema,
            mapping.selects,
        ))),
        // Rows pass with their tables renamed; DDL is kept, with the target's names.
        (Engine::MySql, Engine::MySql) => Ok(Box::new(
            MySqlToMySqlChangeMapper::new(mapping.catalog, mapping.schema, mapping.selects)
                .with_skip_unsupported_ddl(mapping.skip_unsupported_ddl),
        )),
        (s, t) => Err(unsupported(format!("replicating from {s} to {t}"))),
    }
}

/// Change capture asked of a SQLite source.
#[cfg(feature = "sqlite")]
fn no_change_log() -> Error {
    Error::config(
        "incremental migration from SQLite is not possible: SQLite keeps no change log to follow",
    )
}

fn unsupported(what: String) -> Error {
    Error::new(
        dts_core::ErrorKind::Unsupported,
        format!("{what} is not supported by this build"),
    )
}

/// Which changes a change source delivers, and how it identifies itself.
#[derive(Clone)]
pub struct CaptureOptions {
    /// Selects the tables whose row changes are delivered.
    pub tables: Arc<dyn Fn(&TableName) -> bool + Send + Sync>,
    /// Selects the schemas (MySQL databases) whose schema changes are delivered.
    pub schemas: Arc<dyn Fn(&str) -> bool + Send + Sync>,
    /// The replica server id a binlog reader registers with.
    pub server_id: u32,
    /// The replication slot, and the publication, a PostgreSQL reader streams with
    /// ([`capture_slot_name`] of the task).
    pub slot: String,
}

/// The name of the replication slot and of the publication that change capture from
/// PostgreSQL uses for task `task` reading the source at `source_url`: `dts_`, the task
/// name's letters and digits (lowercased, others as `_`, at most 40), and a hash of the
/// whole name and of the source database, so that distinct tasks get distinct slots within
/// PostgreSQL's 63 bytes (slots are shared by every database of a server).
pub fn capture_slot_name(task: &str, source_url: &str) -> String {
    #[cfg(feature = "postgres")]
    let database = source_url
        .parse::<crate::postgres::PgConnectOptions>()
        .ok()
        .and_then(|o| o.endpoint().database.clone())
        .unwrap_or_default();
    #[cfg(not(feature = "postgres"))]
    let database = {
        let _ = source_url;
        String::new()
    };
    let clean: String = task
        .chars()
        .take(40)
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    // FNV-1a, stable across releases and platforms.
    let mut hash: u32 = 0x811c_9dc5;
    for b in task.bytes().chain([0]).chain(database.bytes()) {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("dts_{clean}_{hash:08x}")
}

impl std::fmt::Debug for CaptureOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureOptions")
            .field("server_id", &self.server_id)
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

/// What an apply sink must know about the target's contents.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Until this position, changes may already be in the target (a full load resumed under
    /// a later snapshot): they must be applied idempotently.
    pub idempotent_until: Option<Position>,
    /// For target tables copied whole, the snapshot position their copy was taken at:
    /// changes at or before it are in the copy already.
    pub copied_at: HashMap<TableName, Position>,
    /// Whether the change log carries the rows foreign key actions changed (the source's
    /// [`Source::cascade_logging`]); when it does not, the target performs the actions.
    pub cascades: CascadeLogging,
    /// Whether the applied changes go to the target's own change log (a MySQL/MariaDB
    /// target's binlog, so that its replicas follow); a PostgreSQL target always logs them.
    pub binlog: TargetBinlog,
}

/// Whether the changes an apply sink writes go to the target's binlog (MySQL/MariaDB).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TargetBinlog {
    /// Written to the binlog, as any session's writes: the target's replicas follow.
    #[default]
    On,
    /// Kept out of it (`SET SESSION sql_log_bin = 0`, which needs a privilege).
    Off,
}

/// A consistent snapshot of a source: readers that all see the same data, and the log
/// position where change capture continues without gap or overlap.
pub struct Snapshot {
    /// The log position of the snapshot, when the source has a change log.
    pub position: Option<Position>,
    /// The readers, at least one; they hold the snapshot open.
    pub readers: Vec<Box<dyn SnapshotReader>>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("position", &self.position)
            .field("readers", &self.readers.len())
            .finish()
    }
}

/// A read lock on source tables (see [`Source::lock_tables_for_read`]), held until
/// [`TableReadLock::release`] or until dropped.
#[derive(Debug)]
pub struct TableReadLock {
    kind: TableReadLockKind,
}

#[derive(Debug)]
enum TableReadLockKind {
    #[cfg(feature = "mysql")]
    MySql(crate::mysql::MySqlReadLock),
}

impl TableReadLock {
    /// The tables locked.
    pub fn tables(&self) -> &[TableName] {
        match &self.kind {
            #[cfg(feature = "mysql")]
            TableReadLockKind::MySql(l) => l.tables(),
        }
    }

    /// Releases the lock.
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn release(self) -> Result<()> {
        match self.kind {
            #[cfg(feature = "mysql")]
            TableReadLockKind::MySql(l) => l.release().await.map_err(source_error),
        }
    }
}

/// A snapshot of PostgreSQL source `s` taken with slot `slot`.
#[cfg(feature = "postgres")]
async fn pg_snapshot(
    s: &PgSource,
    readers: usize,
    slot: &str,
    lifetime: SlotLifetime,
    filters: &dts_core::RowFilters,
) -> Result<Snapshot> {
    let (snapshot, readers) = PgSnapshot::open_with(s.options(), readers, slot, lifetime)
        .await
        .map_err(source_error)?;
    Ok(Snapshot {
        position: Some(snapshot.position),
        readers: readers
            .into_iter()
            .map(|mut r| {
                r.set_row_filters(filters.clone());
                Box::new(AtEnd::source(r)) as Box<dyn SnapshotReader>
            })
            .collect(),
    })
}

/// The `Debug` form of a [`Source`] or [`Target`]: its engine and its URL without the
/// password.
fn debug_end(
    f: &mut std::fmt::Formatter<'_>,
    name: &str,
    engine: Engine,
    url: &str,
) -> std::fmt::Result {
    f.debug_struct(name)
        .field("engine", &engine)
        .field("url", &dts_core::error::redact_url(url))
        .finish()
}

/// The source connectors, one variant per engine compiled in.
enum SourceKind {
    #[cfg(feature = "mysql")]
    MySql(MySqlSource),
    #[cfg(feature = "postgres")]
    Postgres(Box<PgSource>),
    #[cfg(feature = "sqlite")]
    Sqlite(Box<SqliteSource>),
}

/// The target connectors, one variant per engine compiled in.
enum TargetKind {
    #[cfg(feature = "mysql")]
    MySql(MySqlTarget),
    #[cfg(feature = "postgres")]
    Postgres(PgTarget),
}

/// Evaluates `$body` with `$c` bound to the connector inside a [`SourceKind`] or
/// [`TargetKind`], whichever engine it is: one match arm per engine compiled in. For
/// bodies that only call the connector; what differs between engines is a plain `match`.
macro_rules! on_source {
    ($kind:expr, $c:ident => $body:expr) => {
        match $kind {
            #[cfg(feature = "mysql")]
            SourceKind::MySql($c) => $body,
            #[cfg(feature = "postgres")]
            SourceKind::Postgres($c) => $body,
            #[cfg(feature = "sqlite")]
            SourceKind::Sqlite($c) => $body,
        }
    };
}
macro_rules! on_target {
    ($kind:expr, $c:ident => $body:expr) => {
        match $kind {
            #[cfg(feature = "mysql")]
            TargetKind::MySql($c) => $body,
            #[cfg(feature = "postgres")]
            TargetKind::Postgres($c) => $body,
        }
    };
}

/// A source database, chosen by the URL's scheme.
pub struct Source {
    kind: SourceKind,
    url: String,
    filters: dts_core::RowFilters,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        debug_end(f, "Source", self.engine(), &self.url)
    }
}

impl Source {
    /// Connects to the source at `url`.
    ///
    /// # Errors
    ///
    /// [`dts_core::ErrorKind::Config`] for an unknown scheme or a malformed URL,
    /// [`dts_core::ErrorKind::Unsupported`] for an engine this build cannot read from;
    /// classified connection errors.
    pub async fn connect(url: &str) -> Result<Self> {
        let kind = match Engine::from_url(url)? {
            #[cfg(feature = "mysql")]
            Engine::MySql => MySqlSource::connect(url).await.map(SourceKind::MySql),
            #[cfg(feature = "postgres")]
            Engine::Postgres => PgSource::connect(url)
                .await
                .map(|s| SourceKind::Postgres(Box::new(s))),
            #[cfg(feature = "sqlite")]
            Engine::Sqlite => SqliteSource::connect(url)
                .await
                .map(|s| SourceKind::Sqlite(Box::new(s))),
            other => Err(unsupported(format!("{other} as a source"))),
        };
        let url = url.to_string();
        kind.map(|kind| Self {
            kind,
            url,
            filters: dts_core::RowFilters::default(),
        })
        .map_err(source_error)
    }

    /// This source with row filters: every snapshot reader it opens afterwards reads only
    /// the rows of a filtered table its condition (in the source's SQL) holds for.
    #[must_use]
    pub fn with_row_filters(mut self, filters: dts_core::RowFilters) -> Self {
        self.filters = filters;
        self
    }

    /// The row filters set by [`Source::with_row_filters`].
    pub fn row_filters(&self) -> &dts_core::RowFilters {
        &self.filters
    }

    /// The source's engine.
    pub fn engine(&self) -> Engine {
        match &self.kind {
            #[cfg(feature = "mysql")]
            SourceKind::MySql(_) => Engine::MySql,
            #[cfg(feature = "postgres")]
            SourceKind::Postgres(_) => Engine::Postgres,
            #[cfg(feature = "sqlite")]
            SourceKind::Sqlite(_) => Engine::Sqlite,
        }
    }

    /// The server's version string.
    pub fn version(&self) -> &str {
        on_source!(&self.kind, s => &s.info().version)
    }

    /// Whether the source's change log carries the rows its foreign key actions change
    /// (see [`CascadeLogging`]).
    pub fn cascade_logging(&self) -> CascadeLogging {
        on_source!(&self.kind, s => s.info().cascade_logging())
    }

    /// `source.version`.
    pub fn precheck_version(&self, r: &mut PrecheckReport) {
        on_source!(&self.kind, s => s.precheck_version(r))
    }

    /// `source.privileges`: every selected table of the selected `schemas` is readable.
    ///
    /// # Errors
    ///
    /// Server errors other than missing privileges.
    pub async fn precheck_privileges(
        &self,
        r: &mut PrecheckReport,
        schemas: &[String],
        tables: &[TableName],
    ) -> Result<()> {
        on_source!(&self.kind, s => s
                .precheck_privileges(r, schemas, tables)
                .await
                .map_err(source_error))
    }

    /// `source.snapshot`: whether `workers` parallel readers can share one snapshot.
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn precheck_snapshot(&self, r: &mut PrecheckReport, workers: usize) -> Result<()> {
        on_source!(&self.kind, s => s.precheck_snapshot(r, workers).await.map_err(source_error))
    }

    /// The tables among `tables` whose storage engine is not transactional (MyISAM, Aria,
    /// MEMORY, …), with their engine: a snapshot does not hold them still.
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn non_transactional_tables(
        &self,
        tables: &[TableName],
    ) -> Result<Vec<(TableName, String)>> {
        let schemas: Vec<String> = tables
            .iter()
            .map(|t| t.schema.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        match &self.kind {
            #[cfg(feature = "mysql")]
            SourceKind::MySql(s) => Ok(s
                .non_transactional_tables(&schemas)
                .await
                .map_err(source_error)?
                .into_iter()
                .filter(|(t, _)| tables.contains(t))
                .collect()),
            // Every PostgreSQL table is transactional (unlogged ones too).
            #[cfg(feature = "postgres")]
            SourceKind::Postgres(_) => Ok(Vec::new()),
            // The read transaction holds every table.
            #[cfg(feature = "sqlite")]
            SourceKind::Sqlite(_) => Ok(Vec::new()),
        }
    }

    /// `source.values`: values the type mapping of `plan` cannot hold, counted per column
    /// when `scan`; without it the check passes and says the copy checks every value.
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn precheck_values(
        &self,
        r: &mut PrecheckReport,
        plan: &SchemaPlan,
        options: &MappingOptions,
        workers: usize,
        scan: bool,
        stop_on_bad_rows: bool,
    ) -> Result<()> {
        if !scan {
            r.pass(
                "source.values",
                "checked row by row during the copy (run `dts precheck`, or set \
                 full.precheck_values = true, to scan before copying)",
            );
            return Ok(());
        }
        match &self.kind {
            #[cfg(feature = "mysql")]
            SourceKind::MySql(s) => s
                .precheck_values(r, plan, options, workers, stop_on_bad_rows)
                .await
                .map_err(source_error),
            #[cfg(feature = "postgres")]
            SourceKind::Postgres(s) => s
                .precheck_values(r, plan, workers, stop_on_bad_rows)
                .await
                .map_err(source_error),
            #[cfg(feature = "sqlite")]
            SourceKind::Sqlite(s) => s
                .precheck_values(r, plan, stop_on_bad_rows)
                .await
                .map_err(source_error),
        }
    }

    /// The checks of the source's change log (settings, privileges, retention), for the
    /// selected `tables`.
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn precheck_log(&self, r: &mut PrecheckReport, tables: &[TableName]) -> Result<()> {
        match &self.kind {
            #[cfg(feature = "mysql")]
            SourceKind::MySql(s) => {
                let _ = tables;
                s.precheck_binlog(r).await.map_err(source_error)
            }
            #[cfg(feature = "postgres")]
            SourceKind::Postgres(s) => s.precheck_log(r, tables).await.map_err(source_error),
            #[cfg(feature = "sqlite")]
            SourceKind::Sqlite(s) => {
                let _ = tables;
                s.precheck_log(r);
                Ok(())
            }
        }
    }

    /// The default collation of a PostgreSQL source's database when its provider is libc
    /// (text columns without a collation of their own use it); `None` on MySQL/MariaDB,
    /// whose columns always name their collation.
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn default_collation(&self) -> Result<Option<String>> {
        match &self.kind {
            #[cfg(feature = "mysql")]
            SourceKind::MySql(_) => Ok(None),
            #[cfg(feature = "postgres")]
            SourceKind::Postgres(s) => s.default_collation().await.map_err(source_error),
            // Row filters on a SQLite source are refused where they are parsed.
            #[cfg(feature = "sqlite")]
            SourceKind::Sqlite(_) => Ok(None),
        }
    }

    /// Of `tables`, those whose captured changes do not carry the whole old row of an
    /// update or delete (PostgreSQL tables whose replica identity is not `FULL`). None on
    /// MySQL/MariaDB, whose `binlog_row_image=FULL` the log precheck requires.
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn tables_without_full_old_rows(
        &self,
        tables: &[TableName],
    ) -> Result<Vec<TableName>> {
        match &self.kind {
            #[cfg(feature = "mysql")]
            SourceKind::MySql(_) => {
                let _ = tables;
                Ok(Vec::new())
            }
            #[cfg(feature = "postgres")]
            SourceKind::Postgres(s) => s
                .tables_without_full_identity(tables)
                .await
                .map_err(source_error),
            // No change capture from SQLite.
            #[cfg(feature = "sqlite")]
            SourceKind::Sqlite(_) => Ok(Vec::new()),
        }
    }

    /// `source.leftovers`: what earlier dts tasks left on the source server (a PostgreSQL
    /// source's inactive replication slots and publications, other than those of the task
    /// named `task`): a warning naming them. A MySQL/MariaDB source keeps nothing of a task
    /// between runs (a killed run's binlog reader is ended by the next run).
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn precheck_leftovers(
        &self,
        r: &mut PrecheckReport,
        task: &str,
        source_url: &str,
    ) -> Result<()> {
        match &self.kind {
            #[cfg(feature = "mysql")]
            SourceKind::MySql(_) => {
                let _ = (task, source_url);
                r.pass(
                    "source.leftovers",
                    "a MySQL/MariaDB source keeps nothing of a task between runs",
                );
                Ok(())
            }
            #[cfg(feature = "postgres")]
            SourceKind::Postgres(s) => s
                .precheck_leftovers(r, &capture_slot_name(task, source_url))
                .await
                .map_err(source_error),
            #[cfg(feature = "sqlite")]
            SourceKind::Sqlite(_) => {
                let _ = (task, source_url);
                r.pass(
                    "source.leftovers",
                    "a SQLite source keeps nothing of a task between runs",
                );
                Ok(())
            }
        }
    }

    /// The columns a snapshot reader delivers for `table`, in order.
    pub fn read_columns(&self, table: &Table) -> Vec<String> {
        match &self.kind {
            #[cfg(feature = "mysql")]
            SourceKind::MySql(_) => MySqlSnapshotReader::columns_read(table)
                .iter()
                .map(|c| c.name.clone())
                .collect(),
            #[cfg(feature = "postgres")]
            SourceKind::Postgres(_) => PgSnapshotReader::columns_read(table)
                .iter()
                .map(|c| c.name.clone())
                .collect(),
            #[cfg(feature = "sqlite")]
            SourceKind::Sqlite(_) => SqliteSnapshotReader::columns_read(table)
                .iter()
                .map(|c| c.name.clone())
                .collect(),
        }
    }

    /// Opens a consistent snapshot with up to `readers` readers (fewer when the source
    /// cannot share a snapshot between connections).
    ///
    /// # Errors
    ///
    /// Connection, privilege and server errors.
    pub async fn open_snapshot(&self, readers: usize) -> Result<Snapshot> {
        Ok(self.open_snapshot_holding(readers, &[]).await?.0)
    }

    /// Opens one reader in a consistent snapshot taken now, without a log position: it
    /// sees every transaction committed before the call. Cheaper than
    /// [`Source::open_snapshot`] on PostgreSQL (no replication slot, so it never waits for
    /// running transactions).
    ///
    /// # Errors
    ///
    /// Connection, privilege and server errors.
    pub async fn open_reader(&self) -> Result<Box<dyn SnapshotReader>> {
        match &self.kind {
            #[cfg(feature = "mysql")]
            SourceKind::MySql(_) => self
                .open_snapshot(1)
                .await?
                .readers
                .into_iter()
                .next()
                .ok_or_else(|| Error::internal("a source snapshot without a reader")),
            #[cfg(feature = "postgres")]
            SourceKind::Postgres(s) => {
                let mut reader = crate::postgres::PgSnapshotReader::open_plain(s.options())
                    .await
                    .map_err(source_error)?;
                reader.set_row_filters(self.filters.clone());
                Ok(Box::new(AtEnd::source(reader)))
            }
            #[cfg(feature = "sqlite")]
            SourceKind::Sqlite(s) => {
                let (_, mut readers) = SqliteSnapshot::open(s.path(), 1)
                    .await
                    .map_err(source_error)?;
                let reader = readers
                    .pop()
                    .ok_or_else(|| Error::internal("a source snapshot without a reader"))?;
                Ok(Box::new(AtEnd::source(reader)))
            }
        }
    }

    /// Like [`Source::open_snapshot`], and also locks `hold` (tables a snapshot does not
    /// hold still: non-transactional engines) against writes from before the snapshot's
    /// position is fixed until the returned lock is released: copied while it is held,
    /// they match the snapshot's position. Writes to them wait meanwhile.
    ///
    /// # Errors
    ///
    /// As [`Source::open_snapshot`]; locking errors (a lock wait timeout is
    /// [`dts_core::ErrorKind::Transient`]).
    pub async fn open_snapshot_holding(
        &self,
        readers: usize,
        hold: &[TableName],
    ) -> Result<(Snapshot, Option<TableReadLock>)> {
        match &self.kind {
            #[cfg(feature = "mysql")]
            SourceKind::MySql(_) => {
                let (snapshot, readers, held) =
                    MySqlSnapshot::open_holding(&self.url, readers, hold)
                        .await
                        .map_err(source_error)?;
                Ok((
                    Snapshot {
                        position: snapshot.position().cloned(),
                        readers: readers
                            .into_iter()
                            .map(|mut r| {
                                r.set_row_filters(self.filters.clone());
                                Box::new(AtEnd::source(r)) as Box<dyn SnapshotReader>
                            })
                            .collect(),
                    },
                    held.map(|l| TableReadLock {
                        kind: TableReadLockKind::MySql(l),
                    }),
                ))
            }
            #[cfg(feature = "postgres")]
            SourceKind::Postgres(s) => {
                if !hold.is_empty() {
                    return Err(source_error(unsupported(
                        "locking tables for their copy on PostgreSQL (every table is \
                         transactional there)"
                            .to_string(),
                    )));
                }
                // A temporary slot, dropped by the server once every reader imported the
                // snapshot (or when this process dies): none is ever left behind.
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos());
                let slot = format!("dts_snapshot_{}_{nanos}", std::process::id());
                Ok((
                    pg_snapshot(s, readers, &slot, SlotLifetime::Temporary, &self.filters).await?,
                    None,
                ))
            }
            #[cfg(feature = "sqlite")]
            SourceKind::Sqlite(s) => {
                if !hold.is_empty() {
                    return Err(source_error(unsupported(
                        "locking tables for their copy on SQLite (the read transaction holds \
                         every table)"
                            .to_string(),
                    )));
                }
                let (_, readers) = SqliteSnapshot::open(s.path(), readers)
                    .await
                    .map_err(source_error)?;
                Ok((
                    Snapshot {
                        position: None,
                        readers: readers
                            .into_iter()
                            .map(|r| Box::new(AtEnd::source(r)) as Box<dyn SnapshotReader>)
                            .collect(),
                    },
                    None,
                ))
            }
        }
    }

    /// Like [`Source::open_snapshot_holding`], for a task whose change capture continues
    /// from the snapshot. On PostgreSQL the snapshot is taken by creating the task's
    /// permanent replication slot `capture.slot` (after its publication of the tables
    /// `capture.tables` selects, which decoding needs to exist first), so the stream starts
    /// exactly at the snapshot's position; when the slot exists already (a full load
    /// resumed), the snapshot comes from a temporary slot and the stream still starts from
    /// the first snapshot's position the task recorded. Elsewhere it is
    /// [`Source::open_snapshot_holding`].
    ///
    /// # Errors
    ///
    /// As [`Source::open_snapshot_holding`]; privilege errors creating the publication.
    pub async fn open_snapshot_for_capture(
        &self,
        readers: usize,
        hold: &[TableName],
        capture: &CaptureOptions,
    ) -> Result<(Snapshot, Option<TableReadLock>)> {
        match &self.kind {
            #[cfg(feature = "postgres")]
            SourceKind::Postgres(s) if hold.is_empty() => {
                let exists = s
                    .slot_position(&capture.slot)
                    .await
                    .map_err(source_error)?
                    .is_some();
                if exists {
                    return self.open_snapshot_holding(readers, hold).await;
                }
                let tables = s
                    .capturable_tables(capture.tables.as_ref())
                    .await
                    .map_err(source_error)?;
                s.ensure_publication(&capture.slot, &tables)
                    .await
                    .map_err(source_error)?;
                Ok((
                    pg_snapshot(
                        s,
                        readers,
                        &capture.slot,
                        SlotLifetime::Permanent,
                        &self.filters,
                    )
                    .await?,
                    None,
                ))
            }
            _ => self.open_snapshot_holding(readers, hold).await,
        }
    }

    /// Where change capture of a task that copies nothing starts: the source's current
    /// position (MySQL), or the consistent point of the task's replication slot, created
    /// now with its publication when it does not exist (PostgreSQL; an existing slot's
    /// confirmed position otherwise).
    ///
    /// # Errors
    ///
    /// Connection, privilege and server errors.
    pub async fn capture_start(&self, capture: &CaptureOptions) -> Result<Position> {
        match &self.kind {
            #[cfg(feature = "mysql")]
            SourceKind::MySql(_) => self.current_position().await,
            #[cfg(feature = "postgres")]
            SourceKind::Postgres(s) => {
                if let Some(lsn) = s.slot_position(&capture.slot).await.map_err(source_error)? {
                    return Ok(Position::Lsn(lsn));
                }
                let tables = s
                    .capturable_tables(capture.tables.as_ref())
                    .await
                    .map_err(source_error)?;
                s.ensure_publication(&capture.slot, &tables)
                    .await
                    .map_err(source_error)?;
                let lsn = s.create_slot(&capture.slot).await.map_err(source_error)?;
                Ok(Position::Lsn(lsn))
            }
            #[cfg(feature = "sqlite")]
            SourceKind::Sqlite(_) => {
                let _ = capture;
                Err(source_error(no_change_log()))
            }
        }
    }

    /// Drops what change capture keeps on the source for a task: on PostgreSQL its
    /// replication slot and publication named `slot` (ending the reader that still streams
    /// from the slot). Returns the names of what it dropped.
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn drop_capture(&self, slot: &str) -> Result<Vec<String>> {
        match &self.kind {
            // The binlog is kept by the server's own rules: nothing to drop.
            #[cfg(feature = "mysql")]
            SourceKind::MySql(_) => {
                let _ = slot;
                Ok(Vec::new())
            }
            #[cfg(feature = "postgres")]
            SourceKind::Postgres(s) => {
                let mut out = Vec::new();
                if s.drop_slot(slot).await.map_err(source_error)? {
                    out.push(format!("replication slot {slot}"));
                }
                if s.drop_publication(slot).await.map_err(source_error)? {
                    out.push(format!("publication {slot}"));
                }
                Ok(out)
            }
            // Nothing is kept on a SQLite file.
            #[cfg(feature = "sqlite")]
            SourceKind::Sqlite(_) => {
                let _ = slot;
                Ok(Vec::new())
            }
        }
    }

    /// The source's current log position.
    ///
    /// # Errors
    ///
    /// Server errors; [`dts_core::ErrorKind::Config`] when the source keeps no change log.
    pub async fn current_position(&self) -> Result<Position> {
        match &self.kind {
            #[cfg(feature = "mysql")]
            SourceKind::MySql(_) => MySqlBinlogSource::current_position(&self.url)
                .await
                .map_err(source_error),
            #[cfg(feature = "postgres")]
            SourceKind::Postgres(s) => s.current_position().await.map_err(source_error),
            #[cfg(feature = "sqlite")]
            SourceKind::Sqlite(_) => Err(source_error(no_change_log())),
        }
    }

    /// Starts reading changes at `from`. Returns the change source and the record that lets
    /// a later run end this reader if this process dies without closing it.
    ///
    /// # Errors
    ///
    /// Connection, privilege and server errors.
    pub async fn capture(
        &self,
        from: &Position,
        options: &CaptureOptions,
    ) -> Result<(Box<dyn ChangeSource>, ReaderRecord)> {
        match &self.kind {
            #[cfg(feature = "mysql")]
            SourceKind::MySql(s) => {
                let filter = BinlogFilter {
                    tables: options.tables.clone(),
                    databases: options.schemas.clone(),
                };
                let source = MySqlBinlogSource::start(&self.url, options.server_id, from, filter)
                    .await
                    .map_err(source_error)?;
                let connection_id = u64::from(source.connection_id());
                let (user, host) = s
                    .connection_identity(connection_id)
                    .await
                    .map_err(source_error)?
                    .map_or((None, None), |(u, h)| (Some(u), Some(h)));
                let record = ReaderRecord {
                    connection_id,
                    user,
                    host,
                };
                Ok((Box::new(AtEnd::source(source)), record))
            }
            #[cfg(feature = "postgres")]
            SourceKind::Postgres(s) => {
                let Position::Lsn(lsn) = from else {
                    return Err(source_error(Error::config(format!(
                        "a PostgreSQL source cannot resume at `{from}`, a position of another \
                         kind of log"
                    ))));
                };
                if s.slot_position(&options.slot)
                    .await
                    .map_err(source_error)?
                    .is_none()
                {
                    return Err(source_error(Error::config(format!(
                        "replication slot `{}` of the task does not exist on the source (it \
                         was dropped, or never created): changes since `{from}` cannot be \
                         read; run the task again from the start (after `dts cleanup`)",
                        options.slot
                    ))));
                }
                let source = PgChangeSource::start(
                    s.options(),
                    &options.slot,
                    &options.slot,
                    *lsn,
                    options.tables.clone(),
                )
                .await
                .map_err(source_error)?;
                let pid = source.backend_pid();
                let (user, host) = s
                    .backend_identity(pid)
                    .await
                    .map_err(source_error)?
                    .map_or((None, None), |(u, h)| (Some(u), Some(h)));
                let record = ReaderRecord {
                    connection_id: u64::from(pid),
                    user,
                    host,
                };
                Ok((Box::new(AtEnd::source(source)), record))
            }
            #[cfg(feature = "sqlite")]
            SourceKind::Sqlite(_) => {
                let _ = (from, options);
                Err(source_error(no_change_log()))
            }
        }
    }

    /// Ends the change reader a killed earlier run left on the source, if it still runs as
    /// the same account from the same client address as recorded. A record without account
    /// and address (written by an older release) ends nothing. Returns whether it did.
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn end_reader(&self, record: &ReaderRecord) -> Result<bool> {
        let (Some(user), Some(host)) = (&record.user, &record.host) else {
            tracing::debug!(
                connection = record.connection_id,
                "the earlier change reader's account and address are not recorded: left alone"
            );
            return Ok(false);
        };
        match &self.kind {
            #[cfg(feature = "mysql")]
            SourceKind::MySql(s) => s
                .end_binlog_reader(record.connection_id, user, host)
                .await
                .map_err(source_error),
            #[cfg(feature = "postgres")]
            SourceKind::Postgres(s) => match u32::try_from(record.connection_id) {
                Ok(pid) => s
                    .end_wal_sender(pid, user, host)
                    .await
                    .map_err(source_error),
                Err(_) => Ok(false),
            },
            #[cfg(feature = "sqlite")]
            SourceKind::Sqlite(_) => Ok(false),
        }
    }
}

#[dts_core::async_trait]
impl SchemaSource for Source {
    async fn list_schemas(&self) -> Result<Vec<String>> {
        on_source!(&self.kind, s => s.list_schemas().await.map_err(source_error))
    }

    async fn read_catalog(&self, schemas: &[String]) -> Result<Catalog> {
        on_source!(&self.kind, s => s.read_catalog(schemas).await.map_err(source_error))
    }
}

/// A target database, chosen by the URL's scheme, through one control connection; sinks
/// and the state store open connections of their own.
pub struct Target {
    kind: TargetKind,
    url: String,
    /// The sessions of a task's run, once [`Target::for_run`] named them.
    sessions: Option<RunSessions>,
}

/// How the target sessions of a task's runs are named: `dts.<task hash>.<run id>.<task>`
/// (at most 63 bytes, PostgreSQL's limit), so that the sessions of one run, and of every run
/// of one task, can be told from all others.
#[derive(Debug, Clone)]
struct RunSessions {
    /// `dts.<task hash>.`: every run of the task.
    task_prefix: String,
    /// `dts.<task hash>.<run id>`: this run.
    run_prefix: String,
    /// The whole application name.
    name: String,
}

impl RunSessions {
    fn new(task: &str) -> Self {
        // FNV-1a: stable across runs and platforms.
        let fnv = |bytes: &[u8], mut h: u64| {
            for b in bytes {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            h
        };
        let task_hash = fnv(task.as_bytes(), 0xcbf2_9ce4_8422_2325);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let run_id = fnv(
            &[
                std::process::id().to_le_bytes().as_slice(),
                nanos.to_le_bytes().as_slice(),
            ]
            .concat(),
            task_hash,
        );
        let task_prefix = format!("dts.{:08x}.", task_hash >> 32);
        let run_prefix = format!("{task_prefix}{:08x}", run_id >> 32);
        // Characters a URL needs no escapes for: the name goes into the target URL.
        let mut name = format!("{run_prefix}.");
        for c in task.chars() {
            if name.len() >= 63 {
                break;
            }
            name.push(if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            });
        }
        Self {
            task_prefix,
            run_prefix,
            name,
        }
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        debug_end(f, "Target", self.engine(), &self.url)
    }
}

#[cfg(feature = "postgres")]
fn pg_statements(statements: &[&Statement]) -> Vec<PgStatement> {
    statements
        .iter()
        .map(|s| PgStatement {
            object: s.object.clone(),
            sql: s.sql.clone(),
        })
        .collect()
}

impl Target {
    /// Connects to the target at `url`, failing as [`Source::connect`] does (`Unsupported`
    /// names an engine this build cannot write to).
    pub async fn connect(url: &str) -> Result<Self> {
        let kind = match Engine::from_url(url)? {
            #[cfg(feature = "mysql")]
            Engine::MySql => MySqlTarget::connect(url).await.map(TargetKind::MySql),
            #[cfg(feature = "postgres")]
            Engine::Postgres => PgTarget::connect(url).await.map(TargetKind::Postgres),
            other => Err(unsupported(format!("{other} as a target"))),
        }
        .map_err(target_error)?;
        Ok(Self {
            kind,
            url: url.to_string(),
            sessions: None,
        })
    }

    /// Names this connection, and every connection opened through this target from now on
    /// (sinks, state stores, [`Target::reconnect`]), as sessions of one run of task `task`,
    /// so that [`Target::end_earlier_runs`] can find what an earlier run left behind. On
    /// PostgreSQL this is the `application_name` (it replaces one given in the URL); MySQL
    /// sessions are not named.
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn for_run(mut self, task: &str) -> Result<Self> {
        let sessions = RunSessions::new(task);
        match &self.kind {
            #[cfg(feature = "mysql")]
            TargetKind::MySql(_) => {}
            #[cfg(feature = "postgres")]
            TargetKind::Postgres(t) => {
                t.set_application_name(&sessions.name).await?;
                let sep = if self.url.contains('?') { '&' } else { '?' };
                self.url = format!("{}{sep}application_name={}", self.url, sessions.name);
            }
        }
        self.sessions = Some(sessions);
        Ok(self)
    }

    /// Ends the sessions that earlier runs of this target's task left on the server (a
    /// killed process's index builds go on until they next talk to their client), and waits
    /// until they are gone, for at most `patience`. Returns how many there were. Does
    /// nothing unless [`Target::for_run`] named this run; nothing on MySQL, whose sessions
    /// are not named (a statement a killed run left running is waited for by the locks it
    /// holds).
    ///
    /// Call it only while holding the task's run lock ([`StateStore::lock_run`]): then
    /// every other session of the task belongs to a run that has ended.
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn end_earlier_runs(&self, patience: std::time::Duration) -> Result<usize> {
        let Some(sessions) = &self.sessions else {
            return Ok(0);
        };
        match &self.kind {
            #[cfg(feature = "mysql")]
            TargetKind::MySql(_) => {
                let _ = (sessions, patience);
                Ok(0)
            }
            #[cfg(feature = "postgres")]
            TargetKind::Postgres(t) => {
                t.end_sessions(&sessions.task_prefix, &sessions.run_prefix, patience)
                    .await
            }
        }
    }

    /// Another connection to the same target.
    ///
    /// # Errors
    ///
    /// As [`Target::connect`].
    pub async fn reconnect(&self) -> Result<Self> {
        let mut target = Self::connect(&self.url).await?;
        target.sessions.clone_from(&self.sessions);
        Ok(target)
    }

    /// The target's engine.
    pub fn engine(&self) -> Engine {
        match &self.kind {
            #[cfg(feature = "mysql")]
            TargetKind::MySql(_) => Engine::MySql,
            #[cfg(feature = "postgres")]
            TargetKind::Postgres(_) => Engine::Postgres,
        }
    }

    /// The server's version string.
    pub fn version(&self) -> &str {
        on_target!(&self.kind, t => t.version())
    }

    /// `target.version`.
    pub fn precheck_version(&self, r: &mut PrecheckReport) {
        on_target!(&self.kind, t => t.precheck_version(r))
    }

    /// `target.privileges`: the account may create the target `schemas` and their tables;
    /// `existing` are the tables already there.
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn precheck_privileges(
        &self,
        r: &mut PrecheckReport,
        schemas: &[String],
        existing: &BTreeSet<TableName>,
    ) -> Result<()> {
        on_target!(&self.kind, t => t
                .precheck_privileges(r, schemas, existing)
                .await
                .map_err(target_error))
    }

    /// The checks applying replicated changes needs, the applied changes going to the
    /// target's binlog or not as `binlog` says.
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn precheck_apply(&self, r: &mut PrecheckReport, binlog: TargetBinlog) -> Result<()> {
        match &self.kind {
            #[cfg(feature = "mysql")]
            TargetKind::MySql(t) => t.precheck_apply(r, binlog).await.map_err(target_error),
            #[cfg(feature = "postgres")]
            TargetKind::Postgres(t) => {
                let _ = binlog;
                t.precheck_apply(r).await.map_err(target_error)
            }
        }
    }

    /// The tables that already exist in the named schemas.
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn existing_tables(&self, schemas: &[String]) -> Result<BTreeSet<TableName>> {
        on_target!(&self.kind, t => t.existing_tables(schemas).await.map_err(target_error))
    }

    /// The state store of task `task`, on its own connection.
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub async fn state_store(&self, task: &str) -> Result<Box<dyn StateStore>> {
        match &self.kind {
            #[cfg(feature = "mysql")]
            TargetKind::MySql(t) => Ok(Box::new(AtEnd::target(MySqlStateStore::new(
                t.opts().clone(),
                task,
            )))),
            #[cfg(feature = "postgres")]
            TargetKind::Postgres(_) => Ok(Box::new(AtEnd::target(
                PgStateStore::connect(&self.url, task)
                    .await
                    .map_err(target_error)?,
            ))),
        }
    }

    /// Runs `statements` and records step `step` of task `task` done (and the `kept`
    /// tables as existing before the task), in one transaction.
    ///
    /// # Errors
    ///
    /// Classified database errors naming the failing statement's object.
    pub async fn execute_step(
        &mut self,
        task: &str,
        step: &str,
        statements: &[&Statement],
        kept: &BTreeSet<TableName>,
    ) -> Result<()> {
        match &mut self.kind {
            #[cfg(feature = "mysql")]
            TargetKind::MySql(t) => t
                .execute_step(task, step, statements, kept)
                .await
                .map_err(target_error),
            #[cfg(feature = "postgres")]
            TargetKind::Postgres(t) => t
                .execute_step(task, step, &pg_statements(statements), kept)
                .await
                .map_err(target_error),
        }
    }

    /// Runs `statement` and records step `step` done, in one transaction, unless the step
    /// is recorded already. Returns whether it ran.
    ///
    /// # Errors
    ///
    /// Classified database errors naming the statement's object.
    pub async fn execute_once(
        &mut self,
        task: &str,
        step: &str,
        statement: &Statement,
    ) -> Result<bool> {
        match &mut self.kind {
            #[cfg(feature = "mysql")]
            TargetKind::MySql(t) => t
                .execute_once(task, step, statement)
                .await
                .map_err(target_error),
            #[cfg(feature = "postgres")]
            TargetKind::Postgres(t) => {
                let st = pg_statements(&[statement]).remove(0);
                t.execute_once(task, step, &st).await.map_err(target_error)
            }
        }
    }

    /// Prepares this connection for index builds.
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn prepare_index_builds(&self) -> Result<()> {
        match &self.kind {
            // Nothing to set per session.
            #[cfg(feature = "mysql")]
            TargetKind::MySql(_) => Ok(()),
            #[cfg(feature = "postgres")]
            TargetKind::Postgres(t) => t.prepare_index_builds().await.map_err(target_error),
        }
    }

    /// Empties (`TRUNCATE`) or drops (`drop`) the existing target `tables` a task's
    /// `policy.conflicting_tables` says to prepare.
    ///
    /// # Errors
    ///
    /// Server errors, naming the tables (a table another one references is refused).
    pub async fn prepare_tables(&self, tables: &[TableName], drop: bool) -> Result<()> {
        on_target!(&self.kind, t => t.prepare_tables(tables, drop).await.map_err(target_error))
    }

    /// Updates the planner statistics of `tables`.
    ///
    /// # Errors
    ///
    /// Server errors.
    pub async fn analyze(&self, tables: &[TableName]) -> Result<()> {
        on_target!(&self.kind, t => t.analyze(tables).await.map_err(target_error))
    }

    /// A chunk sink for task `task`, on its own connection.
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub async fn chunk_sink(&self, task: &str) -> Result<Box<dyn ChunkSink>> {
        match &self.kind {
            #[cfg(feature = "mysql")]
            TargetKind::MySql(t) => Ok(Box::new(AtEnd::target(
                MySqlChunkSink::connect(t.opts().clone(), task)
                    .await
                    .map_err(target_error)?,
            ))),
            #[cfg(feature = "postgres")]
            TargetKind::Postgres(_) => Ok(Box::new(AtEnd::target(
                PgChunkSink::connect(&self.url, task)
                    .await
                    .map_err(target_error)?,
            ))),
        }
    }

    /// A reader of target tables for verification, on its own connection, returning
    /// values in the form rows from a `source` engine take after the row mapping.
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub async fn target_reader(&self, source: Engine) -> Result<Box<dyn TargetReader>> {
        // Rows from SQLite are mapped into the values a PostgreSQL source's rows take.
        let source = if source == Engine::Sqlite {
            Engine::Postgres
        } else {
            source
        };
        match &self.kind {
            #[cfg(feature = "mysql")]
            TargetKind::MySql(_) => Ok(Box::new(AtEnd::target(
                MySqlTargetReader::connect(&self.url, source)
                    .await
                    .map_err(target_error)?,
            ))),
            #[cfg(feature = "postgres")]
            TargetKind::Postgres(_) => Ok(Box::new(AtEnd::target(
                PgTargetReader::connect(&self.url, source)
                    .await
                    .map_err(target_error)?,
            ))),
        }
    }

    /// A sink for repair statements, on its own connection.
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub async fn repair_sink(&self) -> Result<Box<dyn RepairSink>> {
        match &self.kind {
            #[cfg(feature = "mysql")]
            TargetKind::MySql(_) => Ok(Box::new(AtEnd::target(
                MySqlRepairSink::connect(&self.url)
                    .await
                    .map_err(target_error)?,
            ))),
            #[cfg(feature = "postgres")]
            TargetKind::Postgres(_) => Ok(Box::new(AtEnd::target(
                PgRepairSink::connect(&self.url)
                    .await
                    .map_err(target_error)?,
            ))),
        }
    }

    /// An apply sink for task `task`, on its own connection.
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub async fn apply_sink(
        &self,
        task: &str,
        options: &ApplyOptions,
    ) -> Result<Box<dyn ApplySink>> {
        match &self.kind {
            #[cfg(feature = "mysql")]
            TargetKind::MySql(t) => {
                let sink = MySqlApplySink::connect(
                    t.opts().clone(),
                    task,
                    options.idempotent_until.clone(),
                    options.binlog,
                )
                .await
                .map_err(target_error)?
                .with_copied_at(options.copied_at.clone())
                .with_cascade_logging(options.cascades);
                Ok(Box::new(AtEnd::target(sink)))
            }
            #[cfg(feature = "postgres")]
            TargetKind::Postgres(_) => {
                let sink = PgApplySink::connect(&self.url, task, options.idempotent_until.clone())
                    .await
                    .map_err(target_error)?
                    .with_copied_at(options.copied_at.clone())
                    .with_cascade_logging(options.cascades);
                Ok(Box::new(AtEnd::target(sink)))
            }
        }
    }
}

#[cfg(all(test, feature = "postgres"))]
mod tests {
    use super::capture_slot_name;

    #[test]
    fn capture_slot_names_are_valid_and_distinct_per_task_and_database() {
        let a = capture_slot_name("orders", "postgres://u@h/shop");
        assert_eq!(
            a,
            capture_slot_name("orders", "postgres://other@elsewhere:6543/shop")
        );
        assert_ne!(a, capture_slot_name("orders", "postgres://u@h/crm"));
        assert_ne!(a, capture_slot_name("Orders", "postgres://u@h/shop"));
        let long = capture_slot_name(&"Ünïcode task name, long ".repeat(10), "postgres://u@h/d");
        for name in [&a, &long] {
            assert!(name.starts_with("dts_") && name.len() <= 63, "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
        }
    }
}
