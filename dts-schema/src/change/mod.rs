//! Schema changes during replication: MySQL/MariaDB DDL from the binlog translated into
//! PostgreSQL DDL, with the source schema model kept up to date.
//!
//! A [`SchemaTracker`] starts from the catalog the initial schema migration was planned
//! with and follows every DDL statement the source logs. For each one it returns the
//! PostgreSQL statements that bring the target along ([`DdlOutcome`]), and it keeps the
//! source model ([`SchemaTracker::table`], whose column order is the order of binlog row
//! images) and the table plans ([`SchemaTracker::table_plan`]: target names, type mappings,
//! key) consistent after every change.
//!
//! Target names follow the schema translation exactly (case policy, renames, generated
//! names with collision handling, the 63-byte limit): the tracker replays the initial plan to
//! learn every name it created, and plans each new table, column, index and key with the same
//! planner, seeded with the names already taken.

mod alter;
mod cast;
mod column;
mod create;
mod key;
mod model;
mod objects;
mod state;

use std::fmt;
use std::sync::Arc;

use dts_core::{Catalog, ErrorKind, Table, TableName};

use crate::ident::quote_qualified;
use crate::options::SchemaOptions;
use crate::plan::TablePlan;

use self::create::Body;
use self::key::parse_key;
use self::model::{index_pos, like};
use self::state::State;
use crate::token::{self, tokenize, Cursor, Tok};

/// The source server's flavor, which decides a few spellings of the schema model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SourceFlavor {
    /// MariaDB: `JSON` columns are `longtext` checked by `json_valid()`
    /// ([`dts_core::Column::json_checked`]), integer types carry their display width
    /// (`int(11)`), and `FOREIGN KEY name (…)` names the constraint.
    #[default]
    MariaDb,
    /// MySQL 8: `JSON` is its own type, integer types have no display width (except
    /// `tinyint(1)` and `zerofill` columns), unnamed foreign keys are `{table}_ibfk_{n}`.
    MySql,
}

/// What a DDL statement was, as far as the target is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DdlKind {
    /// `CREATE TABLE` (also `… LIKE`, `CREATE OR REPLACE TABLE`).
    CreateTable,
    /// `DROP TABLE` (also `DROP DATABASE` of a database with selected tables).
    DropTable,
    /// `RENAME TABLE`, or an `ALTER TABLE` that only renames.
    RenameTable,
    /// `TRUNCATE TABLE`.
    Truncate,
    /// `ALTER TABLE`.
    AlterTable,
    /// `CREATE INDEX`.
    CreateIndex,
    /// `DROP INDEX`.
    DropIndex,
    /// Not about a selected table, or without effect in PostgreSQL (`ALTER TABLE … ENGINE=`,
    /// views, routines, users, grants, `CREATE TEMPORARY TABLE`).
    Ignored,
}

impl fmt::Display for DdlKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CreateTable => "create table",
            Self::DropTable => "drop table",
            Self::RenameTable => "rename table",
            Self::Truncate => "truncate",
            Self::AlterTable => "alter table",
            Self::CreateIndex => "create index",
            Self::DropIndex => "drop index",
            Self::Ignored => "ignored",
        })
    }
}

/// The translation of one DDL statement.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DdlOutcome {
    /// PostgreSQL statements to run, in order, without trailing semicolons. Run them in one
    /// transaction: a later one may depend on an earlier one. A statement may hold more than
    /// one command separated by `; ` (a primary key built as an index, then attached), so run
    /// each with the simple query protocol.
    pub statements: Vec<String>,
    /// Source tables created, altered, renamed (by their new name) or dropped.
    pub changed: Vec<TableName>,
    /// What the statement was.
    pub kind: DdlKind,
    /// What the target does not keep as the source has it (a column added at the end
    /// instead of `AFTER x`, a check constraint not migrated, …), for the log.
    pub notes: Vec<String>,
    /// Byte ranges of the statement's clauses that were skipped because they concern
    /// columns the task leaves out ([`SchemaOptions::columns`]): a target that runs the
    /// source's statement leaves them out of it.
    pub left_out: Vec<(usize, usize)>,
    /// With clauses left out: the byte ranges of every clause of the statement, in order.
    pub(crate) clauses: Vec<(usize, usize)>,
}

impl DdlOutcome {
    fn ignored() -> Self {
        Self {
            left_out: Vec::new(),
            clauses: Vec::new(),
            statements: Vec::new(),
            changed: Vec::new(),
            kind: DdlKind::Ignored,
            notes: Vec::new(),
        }
    }
}

/// A DDL statement that cannot be translated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DdlError {
    /// The statement is about a selected table but could not be parsed.
    #[error("cannot parse ddl `{statement}`: {message}")]
    Parse {
        /// The statement's first 200 characters.
        statement: String,
        /// What the parser expected.
        message: String,
    },
    /// The statement changes a selected table in a way the target cannot follow.
    #[error("{}", unsupported_message(table.as_ref(), what))]
    Unsupported {
        /// The table concerned, if known.
        table: Option<TableName>,
        /// What cannot be followed, naming the clause.
        what: String,
    },
}

fn unsupported_message(table: Option<&TableName>, what: &str) -> String {
    match table {
        Some(t) => format!("unsupported schema change of `{t}`: {what}"),
        None => format!("unsupported schema change: {what}"),
    }
}

impl From<DdlError> for dts_core::Error {
    fn from(e: DdlError) -> Self {
        dts_core::Error::new(ErrorKind::Unsupported, e.to_string())
    }
}

/// Why a statement (or a part of it) cannot be translated; the table is added by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fail {
    Parse(String),
    Unsupported(String),
}

impl Fail {
    fn into_error(self, table: Option<&TableName>, sql: &str) -> DdlError {
        match self {
            Fail::Parse(message) => DdlError::Parse {
                statement: sql.trim().chars().take(200).collect(),
                message,
            },
            Fail::Unsupported(what) => DdlError::Unsupported {
                table: table.cloned(),
                what,
            },
        }
    }
}

/// Whether a source table is selected for replication.
pub type TableFilter = Arc<dyn Fn(&TableName) -> bool + Send + Sync>;

/// The source schema during replication, and the translator of its DDL into PostgreSQL.
///
/// Cloning is cheap enough to snapshot the tracker before a batch and restore it when the
/// batch fails; [`SchemaTracker::apply_mysql_ddl`] itself changes nothing when it fails.
///
/// ```no_run
/// use std::sync::Arc;
///
/// use dts_core::{Catalog, Error};
/// use dts_schema::{SchemaOptions, SchemaTracker};
///
/// fn follow(catalog: Catalog, ddl: &[(Option<String>, String)]) -> Result<(), Error> {
///     let mut tracker = SchemaTracker::new(
///         catalog,
///         SchemaOptions::default(),
///         Arc::new(|t| t.schema == "shop"),
///     );
///     for (schema, sql) in ddl {
///         let outcome = tracker.apply_mysql_ddl(schema.as_deref(), sql)?;
///         for statement in &outcome.statements {
///             println!("{statement};"); // run on the target, in one transaction
///         }
///     }
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct SchemaTracker {
    state: State,
    selects: TableFilter,
    flavor: SourceFlavor,
    lower_case_table_names: u8,
    /// Whether the target is of the source's engine (see
    /// [`SchemaTracker::for_same_engine`]).
    same_engine: bool,
}

impl fmt::Debug for SchemaTracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchemaTracker")
            .field("flavor", &self.flavor)
            .field("lower_case_table_names", &self.lower_case_table_names)
            .field("tables", &self.state.plans.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl SchemaTracker {
    /// A tracker of `catalog`, the selected source tables at the start of replication, as
    /// the initial schema migration planned them with `opts` (pass the same catalog and
    /// options, so the tracker knows the names that migration created). `selects` tells
    /// whether a source table is selected: tables created or renamed later into a name it
    /// selects are followed.
    ///
    /// The flavor is [`SourceFlavor::MariaDb`]; see [`SchemaTracker::with_flavor`].
    pub fn new(catalog: Catalog, opts: SchemaOptions, selects: TableFilter) -> Self {
        Self {
            state: State::new(catalog, opts),
            selects,
            flavor: SourceFlavor::default(),
            lower_case_table_names: 0,
            same_engine: false,
        }
    }

    /// Follows the DDL for a target of the source's own engine, which runs the source's
    /// statements itself: the tracked schema is what matters, not the PostgreSQL
    /// statements, so changes that only PostgreSQL would perform differently from the
    /// source are not refused (a column type change it would convert otherwise, a change
    /// to `binary(n)`, a generated column changed in place). The PostgreSQL statements of
    /// such a change are then incomplete: do not run them.
    #[must_use]
    pub fn for_same_engine(mut self) -> Self {
        self.same_engine = true;
        self
    }

    /// Sets the source's `lower_case_table_names` (default 0): with 1 the server stores
    /// and compares database and table names in lowercase, so names in statements are
    /// lowercased; with 2 names are compared without regard to case.
    #[must_use]
    pub fn with_lower_case_table_names(mut self, value: u8) -> Self {
        self.lower_case_table_names = value;
        self
    }

    /// Sets the source flavor.
    #[must_use]
    pub fn with_flavor(mut self, flavor: SourceFlavor) -> Self {
        self.flavor = flavor;
        self
    }

    /// The source flavor.
    pub fn flavor(&self) -> SourceFlavor {
        self.flavor
    }

    /// The current plan of a selected source table: target name, columns with their
    /// mappings in source order, key.
    pub fn table_plan(&self, source: &TableName) -> Option<&TablePlan> {
        self.state.plans.get(source)
    }

    /// The plans of every tracked table, by source name.
    pub fn table_plans(&self) -> impl Iterator<Item = &TablePlan> {
        self.state.plans.values()
    }

    /// The current source model of a tracked table (columns in the source's order).
    pub fn table(&self, source: &TableName) -> Option<&Table> {
        self.state.catalog.table(source)
    }

    /// The tracked source tables.
    pub fn catalog(&self) -> &Catalog {
        &self.state.catalog
    }

    /// The schema options in force. Column renames follow their table when it is renamed;
    /// a rename of a column that is renamed or dropped in the source no longer applies.
    pub fn options(&self) -> &SchemaOptions {
        &self.state.opts
    }

    /// Translates one DDL statement, as the binlog's query event carries it, run with the
    /// default database `default_schema`; updates the tracked model and returns the
    /// PostgreSQL statements to run.
    ///
    /// Statements about tables that are not selected, about other objects (views, routines,
    /// users, grants) or without effect in PostgreSQL are [`DdlKind::Ignored`].
    ///
    /// # Errors
    ///
    /// [`DdlError::Parse`] when a statement about a selected table cannot be parsed, and
    /// [`DdlError::Unsupported`] when it changes a selected table in a way the target cannot
    /// follow (a column type change PostgreSQL would convert differently, partitions
    /// dropped, a table renamed out of or into the selection, …). The tracker is unchanged
    /// then.
    pub fn apply_mysql_ddl(
        &mut self,
        default_schema: Option<&str>,
        sql: &str,
    ) -> Result<DdlOutcome, DdlError> {
        let toks = match tokenize(sql) {
            Ok(t) => t,
            Err(e) if about_tables(sql) => return Err(Fail::Parse(e.message).into_error(None, sql)),
            Err(_) => return Ok(DdlOutcome::ignored()),
        };
        let concerns_tables = toks.first().and_then(Tok::keyword).is_some_and(|w| {
            matches!(
                w.as_str(),
                "create"
                    | "alter"
                    | "drop"
                    | "rename"
                    | "truncate"
                    | "insert"
                    | "replace"
                    | "update"
                    | "delete"
                    | "load"
            )
        });
        if !concerns_tables {
            return Ok(DdlOutcome::ignored());
        }
        let mut next = self.state.clone();
        let mut run = Run {
            state: &mut next,
            selects: &self.selects,
            flavor: self.flavor,
            default_schema,
            sql,
            table: None,
            lower_case_table_names: self.lower_case_table_names,
            same_engine: self.same_engine,
        };
        match run.statement(&toks) {
            Ok(outcome) => {
                self.state = next;
                Ok(outcome)
            }
            Err(fail) => {
                let table = run.table.clone();
                Err(fail.into_error(table.as_ref(), sql))
            }
        }
    }
}

/// One statement being translated.
struct Run<'r> {
    state: &'r mut State,
    selects: &'r TableFilter,
    flavor: SourceFlavor,
    default_schema: Option<&'r str>,
    sql: &'r str,
    /// The table the statement concerns, for errors.
    table: Option<TableName>,
    lower_case_table_names: u8,
    same_engine: bool,
}

/// The statements and notes of one translation.
#[derive(Debug, Default)]
pub(crate) struct Out {
    pub(crate) statements: Vec<String>,
    pub(crate) notes: Vec<String>,
    /// Clauses skipped because they concern columns left out (byte ranges).
    pub(crate) left_out: Vec<(usize, usize)>,
}

impl Run<'_> {
    fn resolve(&mut self, name: (Option<String>, String)) -> Result<TableName, Fail> {
        let name = match name {
            (Some(schema), table) => TableName::new(schema, table),
            (None, table) => match self.default_schema {
                Some(schema) => TableName::new(schema, table),
                None => {
                    return Err(Fail::Unsupported(format!(
                        "table `{table}` is not qualified and the statement ran without a default database"
                    )))
                }
            },
        };
        Ok(if self.lower_case_table_names == 1 {
            TableName::new(name.schema.to_lowercase(), name.name.to_lowercase())
        } else {
            name
        })
    }

    /// The tracked name of a table, or `None` if it is not tracked.
    fn tracked(&self, name: &TableName) -> Option<TableName> {
        self.state.find(name, self.lower_case_table_names == 2)
    }

    fn selected(&self, name: &TableName) -> bool {
        self.tracked(name).is_some() || (self.selects)(name)
    }

    /// A tracked table named by the statement; `Ok(None)` when it is not selected (the
    /// statement is ignored), an error when it is selected but not tracked.
    fn tracked_or_ignored(&mut self, name: &TableName) -> Result<Option<TableName>, Fail> {
        if let Some(t) = self.tracked(name) {
            self.table = Some(t.clone());
            return Ok(Some(t));
        }
        if (self.selects)(name) {
            self.table = Some(name.clone());
            return Err(Fail::Unsupported(format!(
                "table `{name}` is selected but its definition is not known (it was not in the initial catalog and no CREATE TABLE was seen)"
            )));
        }
        Ok(None)
    }

    fn statement(&mut self, toks: &[Tok]) -> Result<DdlOutcome, Fail> {
        let mut c = Cursor::new(toks);
        let Some(first) = c.next().and_then(Tok::keyword) else {
            return Ok(DdlOutcome::ignored());
        };
        match first.as_str() {
            "create" => self.create(&mut c),
            "alter" => {
                c.eat_kw("ONLINE");
                c.eat_kw("IGNORE");
                if !c.eat_kw("TABLE") {
                    return Ok(DdlOutcome::ignored());
                }
                c.eat_kws(&["IF", "EXISTS"]);
                let name = c
                    .object_name()
                    .ok_or_else(|| Fail::Parse("expected a table name after ALTER TABLE".into()))?;
                let name = self.resolve(name)?;
                let Some(table) = self.tracked_or_ignored(&name)? else {
                    return Ok(DdlOutcome::ignored());
                };
                alter::alter_table(self, table, c.rest())
            }
            "drop" => self.drop(&mut c),
            "rename" => {
                if !(c.eat_kw("TABLE") || c.eat_kw("TABLES")) {
                    return Ok(DdlOutcome::ignored());
                }
                let mut pairs = Vec::new();
                for part in token::split_commas(c.rest()) {
                    let mut p = Cursor::new(part);
                    let from = p.object_name();
                    let to = if p.eat_kw("TO") {
                        p.object_name()
                    } else {
                        None
                    };
                    match (from, to) {
                        (Some(from), Some(to))
                            if p.at_end() || p.at_kw("WAIT") || p.at_kw("NOWAIT") =>
                        {
                            pairs.push((self.resolve(from)?, self.resolve(to)?));
                        }
                        _ => {
                            return Err(Fail::Parse("expected `old TO new` in RENAME TABLE".into()))
                        }
                    }
                }
                self.rename(pairs)
            }
            "truncate" => {
                c.eat_kw("TABLE");
                let name = c
                    .object_name()
                    .ok_or_else(|| Fail::Parse("expected a table name after TRUNCATE".into()))?;
                let name = self.resolve(name)?;
                let Some(table) = self.tracked_or_ignored(&name)? else {
                    return Ok(DdlOutcome::ignored());
                };
                let target = self.state.target(&table);
                if let Some(t) = self.state.catalog_table_mut(&table) {
                    t.auto_increment = None;
                }
                Ok(DdlOutcome {
                    left_out: Vec::new(),
                    clauses: Vec::new(),
                    statements: vec![format!(
                        "TRUNCATE TABLE {} RESTART IDENTITY",
                        quote_qualified(&target.schema, &target.name)
                    )],
                    changed: vec![table],
                    kind: DdlKind::Truncate,
                    notes: Vec::new(),
                })
            }
            "insert" | "replace" | "update" | "delete" | "load" => self.data_change(&mut c, &first),
            _ => Ok(DdlOutcome::ignored()),
        }
    }

    /// A data change logged as a statement: rows the target never sees.
    fn data_change(&mut self, c: &mut Cursor<'_>, verb: &str) -> Result<DdlOutcome, Fail> {
        let name = match verb {
            "load" => {
                while !c.at_end() && !c.at_kws(&["INTO", "TABLE"]) {
                    c.next();
                }
                c.eat_kws(&["INTO", "TABLE"]);
                c.object_name()
            }
            _ => {
                while let Some(word) = c.peek().and_then(Tok::keyword) {
                    if !matches!(
                        word.as_str(),
                        "low_priority"
                            | "delayed"
                            | "high_priority"
                            | "ignore"
                            | "quick"
                            | "into"
                            | "from"
                    ) {
                        break;
                    }
                    c.next();
                }
                c.object_name()
            }
        };
        let Some(name) = name else {
            return Ok(DdlOutcome::ignored());
        };
        let Ok(name) = self.resolve(name) else {
            return Ok(DdlOutcome::ignored());
        };
        if !self.selected(&name) {
            return Ok(DdlOutcome::ignored());
        }
        self.table = Some(name);
        Err(Fail::Unsupported(format!(
            "a data change logged as a statement (`{}`); the source must log row events (binlog_format=ROW)",
            verb.to_ascii_uppercase()
        )))
    }

    fn create(&mut self, c: &mut Cursor<'_>) -> Result<DdlOutcome, Fail> {
        let or_replace = c.eat_kws(&["OR", "REPLACE"]);
        let temporary = c.eat_kw("TEMPORARY");
        if c.eat_kw("TABLE") {
            let if_not_exists = c.eat_kws(&["IF", "NOT", "EXISTS"]);
            let name = c
                .object_name()
                .ok_or_else(|| Fail::Parse("expected a table name after CREATE TABLE".into()))?;
            if temporary {
                return Ok(DdlOutcome::ignored());
            }
            let name = self.resolve(name)?;
            return self.create_table(name, c.rest(), if_not_exists, or_replace);
        }
        // MariaDB's `CREATE ONLINE INDEX` / `DROP OFFLINE INDEX`.
        let _ = c.eat_kw("ONLINE") || c.eat_kw("OFFLINE");
        let kind = ["UNIQUE", "FULLTEXT", "SPATIAL"]
            .into_iter()
            .find(|kw| c.eat_kw(kw));
        if !c.eat_kw("INDEX") {
            return Ok(DdlOutcome::ignored());
        }
        let if_not_exists = c.eat_kws(&["IF", "NOT", "EXISTS"]);
        let name_tok = c
            .next()
            .filter(|t| t.ident().is_some())
            .ok_or_else(|| Fail::Parse("expected an index name after CREATE INDEX".into()))?
            .clone();
        let mut using: Vec<Tok> = Vec::new();
        if c.at_kw("USING") {
            using.extend(c.rest().iter().take(2).cloned());
            c.set_pos(c.pos() + 2);
        }
        if !c.eat_kw("ON") {
            return Err(Fail::Parse("expected ON after the index name".into()));
        }
        let table = c
            .object_name()
            .ok_or_else(|| Fail::Parse("expected a table name after ON".into()))?;
        let table = self.resolve(table)?;
        let Some(table) = self.tracked_or_ignored(&table)? else {
            return Ok(DdlOutcome::ignored());
        };
        // The same definition as `ALTER TABLE … ADD [UNIQUE] INDEX name (…)`.
        let mut def: Vec<Tok> = Vec::new();
        if let Some(kind) = kind {
            def.push(name_tok.replaced_by(kind));
        }
        def.push(name_tok.replaced_by("INDEX"));
        def.push(name_tok.clone());
        def.extend(using);
        def.extend(c.rest().iter().cloned());
        let key = parse_key(&def, &table)?;
        // An index over a column the task leaves out is left out with it.
        if let key::KeySpec::Index { index, .. } = &key.spec {
            if let Some(c) = index
                .columns
                .iter()
                .find(|c| !self.state.opts.keeps_column(&table, &c.name))
            {
                tracing::info!(%table, column = %c.name,
                    "skipping an index over a column the task leaves out");
                return Ok(DdlOutcome::ignored());
            }
        }
        let mut out = Out::default();
        if or_replace {
            if let Some(name) = name_tok.ident() {
                if let Some(t) = self.state.catalog.table(&table) {
                    if index_pos(t, &name).is_some() {
                        objects::drop_index(self.state, &table, &name, &mut out)?;
                    }
                }
            }
        }
        let changed = objects::add_key_to(
            self.state,
            &table,
            key,
            self.flavor,
            if_not_exists,
            &mut out,
        )?;
        self.state.refresh_plan(&table);
        Ok(DdlOutcome {
            left_out: Vec::new(),
            clauses: Vec::new(),
            kind: if changed {
                DdlKind::CreateIndex
            } else {
                DdlKind::Ignored
            },
            changed: if changed { vec![table] } else { Vec::new() },
            statements: out.statements,
            notes: out.notes,
        })
    }

    fn create_table(
        &mut self,
        name: TableName,
        rest: &[Tok],
        if_not_exists: bool,
        or_replace: bool,
    ) -> Result<DdlOutcome, Fail> {
        let tracked = self.tracked(&name);
        if tracked.is_none() && !(self.selects)(&name) {
            return Ok(DdlOutcome::ignored());
        }
        self.table = Some(name.clone());
        let mut out = Out::default();
        if let Some(existing) = &tracked {
            if if_not_exists && !or_replace {
                let mut outcome = DdlOutcome::ignored();
                outcome.notes.push(format!(
                    "table `{existing}` exists; CREATE TABLE IF NOT EXISTS has no effect"
                ));
                return Ok(outcome);
            }
            if !or_replace {
                return Err(Fail::Unsupported(format!(
                    "table `{existing}` already exists in the tracked schema"
                )));
            }
        }
        let (table, generated) = match create::parse_body(self.sql, rest, &name, self.flavor)? {
            Body::Defined {
                table,
                notes,
                generated,
            } => {
                out.notes.extend(notes);
                (*table, generated)
            }
            Body::Like(other) => {
                let other = self.resolve(other)?;
                let source = self
                    .tracked(&other)
                    .and_then(|o| self.state.catalog.table(&o).cloned());
                match source {
                    Some(source) => (
                        like(&source, name.clone()),
                        self.state.generated.get(&source.name).cloned().unwrap_or_default(),
                    ),
                    None => {
                        return Err(Fail::Unsupported(format!(
                            "`CREATE TABLE … LIKE {other}` copies a table whose definition is not tracked"
                        )))
                    }
                }
            }
        };
        if let Some(existing) = tracked {
            self.state.drop_tables(&[existing], &mut out);
        }
        self.state.create_table(table, generated, &mut out)?;
        Ok(DdlOutcome {
            left_out: Vec::new(),
            clauses: Vec::new(),
            statements: out.statements,
            changed: vec![name],
            kind: DdlKind::CreateTable,
            notes: out.notes,
        })
    }

    fn drop(&mut self, c: &mut Cursor<'_>) -> Result<DdlOutcome, Fail> {
        let temporary = c.eat_kw("TEMPORARY");
        if c.eat_kw("TABLE") || c.eat_kw("TABLES") {
            if temporary {
                return Ok(DdlOutcome::ignored());
            }
            c.eat_kws(&["IF", "EXISTS"]);
            let mut names = Vec::new();
            for part in token::split_commas(c.rest()) {
                let mut p = Cursor::new(part);
                let name = p
                    .object_name()
                    .ok_or_else(|| Fail::Parse("expected a table name in DROP TABLE".into()))?;
                names.push(self.resolve(name)?);
            }
            let mut tracked = Vec::new();
            let mut untracked = Vec::new();
            for name in names {
                match self.tracked(&name) {
                    Some(t) => tracked.push(t),
                    None if (self.selects)(&name) => untracked.push(name),
                    None => {}
                }
            }
            if tracked.is_empty() && untracked.is_empty() {
                return Ok(DdlOutcome::ignored());
            }
            self.table = tracked.first().or(untracked.first()).cloned();
            let mut out = Out::default();
            let mut targets: Vec<TableName> =
                tracked.iter().map(|t| self.state.target(t)).collect();
            targets.extend(untracked.iter().map(|t| self.state.opts.target_table(t)));
            out.statements.push(format!(
                "DROP TABLE IF EXISTS {}",
                targets
                    .iter()
                    .map(|t| quote_qualified(&t.schema, &t.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            self.state.forget_tables(&tracked, &mut out);
            let mut changed = tracked;
            changed.extend(untracked);
            return Ok(DdlOutcome {
                left_out: Vec::new(),
                clauses: Vec::new(),
                statements: out.statements,
                changed,
                kind: DdlKind::DropTable,
                notes: out.notes,
            });
        }
        if c.eat_kw("DATABASE") || c.eat_kw("SCHEMA") {
            c.eat_kws(&["IF", "EXISTS"]);
            let Some(schema) = c.ident() else {
                return Ok(DdlOutcome::ignored());
            };
            let tables: Vec<TableName> = self
                .state
                .catalog
                .tables()
                .filter(|t| t.name.schema == schema)
                .map(|t| t.name.clone())
                .collect();
            if tables.is_empty() {
                return Ok(DdlOutcome::ignored());
            }
            let mut out = Out::default();
            self.state.drop_tables(&tables, &mut out);
            return Ok(DdlOutcome {
                left_out: Vec::new(),
                clauses: Vec::new(),
                statements: out.statements,
                changed: tables,
                kind: DdlKind::DropTable,
                notes: out.notes,
            });
        }
        // MariaDB's `CREATE ONLINE INDEX` / `DROP OFFLINE INDEX`.
        let _ = c.eat_kw("ONLINE") || c.eat_kw("OFFLINE");
        if c.eat_kw("INDEX") {
            let if_exists = c.eat_kws(&["IF", "EXISTS"]);
            let name = c
                .ident()
                .ok_or_else(|| Fail::Parse("expected an index name after DROP INDEX".into()))?;
            if !c.eat_kw("ON") {
                return Err(Fail::Parse("expected ON after the index name".into()));
            }
            let table = c
                .object_name()
                .ok_or_else(|| Fail::Parse("expected a table name after ON".into()))?;
            let table = self.resolve(table)?;
            let Some(table) = self.tracked_or_ignored(&table)? else {
                return Ok(DdlOutcome::ignored());
            };
            let mut out = Out::default();
            let exists = self.state.catalog.table(&table).is_some_and(|t| {
                index_pos(t, &name).is_some() || name.eq_ignore_ascii_case("PRIMARY")
            });
            if !exists {
                if if_exists {
                    return Ok(DdlOutcome::ignored());
                }
                return Err(Fail::Unsupported(format!(
                    "unknown index `{name}` of `{table}`"
                )));
            }
            objects::drop_index(self.state, &table, &name, &mut out)?;
            self.state.refresh_plan(&table);
            return Ok(DdlOutcome {
                left_out: Vec::new(),
                clauses: Vec::new(),
                statements: out.statements,
                changed: vec![table],
                kind: DdlKind::DropIndex,
                notes: out.notes,
            });
        }
        Ok(DdlOutcome::ignored())
    }

    /// `RENAME TABLE a TO b, c TO d`: each step in order, judged on where each table ends.
    fn rename(&mut self, pairs: Vec<(TableName, TableName)>) -> Result<DdlOutcome, Fail> {
        // Where each table starts (tracked or not) and where it ends.
        let mut at: Vec<(TableName, Option<TableName>)> = Vec::new(); // (current, tracked origin)
        for (from, to) in &pairs {
            let origin = match at.iter().position(|(cur, _)| cur == from) {
                Some(i) => at.remove(i).1,
                None => self.tracked(from),
            };
            at.push((to.clone(), origin));
        }
        for (end, origin) in &at {
            match origin {
                Some(origin) if !(self.selects)(end) => {
                    self.table = Some(origin.clone());
                    return Err(Fail::Unsupported(format!(
                        "`{origin}` is renamed to `{end}`, which is not selected"
                    )));
                }
                None if (self.selects)(end) => {
                    let start = pairs
                        .iter()
                        .find(|(_, to)| to == end)
                        .map_or_else(|| end.clone(), |(from, _)| from.clone());
                    self.table = Some(end.clone());
                    return Err(Fail::Unsupported(format!(
                        "`{start}`, which is not selected, is renamed to `{end}`, which is"
                    )));
                }
                _ => {}
            }
        }
        let mut out = Out::default();
        let mut changed = Vec::new();
        for (from, to) in pairs {
            if let Some(from) = self.tracked(&from) {
                self.table = Some(from.clone());
                self.state.rename_table(&from, &to, &mut out)?;
                changed.retain(|t| t != &from);
                changed.push(to);
            }
        }
        if changed.is_empty() {
            return Ok(DdlOutcome::ignored());
        }
        Ok(DdlOutcome {
            left_out: Vec::new(),
            clauses: Vec::new(),
            statements: out.statements,
            changed,
            kind: DdlKind::RenameTable,
            notes: out.notes,
        })
    }
}

/// Whether a statement the tokenizer refused looks like table DDL (which must then be
/// reported) rather than something else (a routine body, …), which is ignored.
fn about_tables(sql: &str) -> bool {
    let words: Vec<String> = sql
        .split_whitespace()
        .take(5)
        .map(|w| w.trim_matches('`').to_ascii_uppercase())
        .collect();
    words.first().is_some_and(|w| w == "TRUNCATE")
        || (words
            .first()
            .is_some_and(|w| matches!(w.as_str(), "CREATE" | "ALTER" | "DROP" | "RENAME"))
            && words
                .iter()
                .any(|w| matches!(w.as_str(), "TABLE" | "TABLES" | "INDEX")))
}

/// A short text of a clause for messages.
fn clause_text(sql: &str, toks: &[Tok]) -> String {
    let t = token::text(sql, toks);
    let mut s: String = t.chars().take(80).collect();
    if t.chars().count() > 80 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests;
