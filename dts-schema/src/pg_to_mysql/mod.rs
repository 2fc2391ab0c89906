//! The PostgreSQL → MySQL/MariaDB planner: each PostgreSQL schema becomes a MySQL database,
//! each table an InnoDB table with the types of [`dts_typemap::pg_to_mysql`].
//!
//! - **Names** follow the renames of [`SchemaOptions`] and its identifier case policy, and
//!   must be valid MySQL names (at most 64 characters, no trailing space, no characters
//!   outside the Basic Multilingual Plane): any other is a blocking problem naming it and
//!   the rename option. Column names that differ only in case (MySQL's column names do
//!   not) block as well. Index names are made unique per table and foreign key names per
//!   database (InnoDB's scopes), with a note when one is changed.
//! - **Pre-data**: `CREATE DATABASE IF NOT EXISTS`, then each table with its columns,
//!   `NOT NULL`, translated defaults ([`default`]), the mapping's `CHECK`s, comments, its
//!   primary key, an `AUTO_INCREMENT` column and the index it needs. InnoDB stores rows in
//!   primary key order, so the key is always created with the table.
//! - **Post-data**: secondary indexes, foreign keys with their actions, and the
//!   `AUTO_INCREMENT` counters set past the copied maximum (and the source's counter).
//! - **Keys**: text and byte columns of a primary key, unique index or foreign key must be
//!   indexed whole (a prefix index would let values that differ after the prefix collide),
//!   so they become `varchar(n)`/`varbinary(n)` within InnoDB's 3072-byte index limit,
//!   shared fairly among the key's columns; the precheck counts longer values. Other
//!   indexes index a prefix of long columns. Integer columns of a foreign key and the key
//!   it references get the wider of their types (MySQL wants them equal).
//! - **Problems**: generated columns (their expressions are PostgreSQL's) block; indexes
//!   the schema model cannot describe (partial, expression, …) and `ON … SET DEFAULT`
//!   actions (which InnoDB refuses) are left out with a note; defaults that cannot be
//!   translated are left out with a note.

mod default;
mod keys;
mod mapper;
mod relation;

use std::collections::{BTreeMap, BTreeSet};

use dts_core::{Catalog, Column, ColumnDefault, ReferentialAction, Table, TableName};
use dts_typemap::mysql::MySqlType;
use dts_typemap::pg_to_mysql::{map_pg_type, notes, resolve_pg_type, Charset, MySqlFlavor};
use dts_typemap::PgToMySqlMapping;

use crate::mysql_to_mysql::{quote_mysql_ident, quote_mysql_literal};
use crate::options::SchemaOptions;
use crate::plan::{ColumnPlan, Phase, Problem, SchemaPlan, Statement, StatementKind, TablePlan};

pub use mapper::{PgToMySqlChangeMapper, PgToMySqlRowMapper};

/// MySQL's longest identifier, in characters.
pub const MYSQL_MAX_IDENTIFIER_CHARS: usize = 64;

/// Plans a PostgreSQL catalog into a MySQL or MariaDB target (the server family from
/// [`SchemaOptions::target_version`]).
///
/// Never panics and never stops early: whatever cannot be planned is a [`Problem`], and the
/// rest is still planned.
pub fn plan_pg_to_mysql(catalog: &Catalog, opts: &SchemaOptions) -> SchemaPlan {
    Planner::new(catalog, opts).run()
}

/// A column of a table being planned.
struct PlannedColumn<'a> {
    source: &'a Column,
    target: String,
    /// `None` when the column cannot be mapped (a blocking problem says why).
    mapping: Option<PgToMySqlMapping>,
    /// The domain's default when the column has none of its own.
    domain_default: Option<String>,
}

struct PlannedTable<'a> {
    source: &'a Table,
    target: TableName,
    columns: Vec<PlannedColumn<'a>>,
    /// The `AUTO_INCREMENT` column, by index.
    auto_increment: Option<usize>,
}

impl PlannedTable<'_> {
    fn index_of(&self, source_column: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.source.name == source_column)
    }

    fn qualified(&self) -> String {
        qualified(&self.target)
    }
}

fn qualified(t: &TableName) -> String {
    format!(
        "{}.{}",
        quote_mysql_ident(&t.schema),
        quote_mysql_ident(&t.name)
    )
}

struct Planner<'a> {
    catalog: &'a Catalog,
    opts: &'a SchemaOptions,
    flavor: MySqlFlavor,
    problems: Vec<Problem>,
}

impl<'a> Planner<'a> {
    fn new(catalog: &'a Catalog, opts: &'a SchemaOptions) -> Self {
        Self {
            catalog,
            opts,
            flavor: opts.mysql_flavor(),
            problems: Vec::new(),
        }
    }

    fn run(mut self) -> SchemaPlan {
        for o in &self.catalog.omitted_indexes {
            let uniqueness = if o.unique {
                "; the uniqueness it enforces is not enforced in the target"
            } else {
                ""
            };
            self.problems.push(Problem::note(
                format!("{}.{}", o.table, o.name),
                format!(
                    "index `{}` on table `{}` is left out: {} (`{}`){uniqueness}",
                    o.name, o.table, o.reason, o.definition
                ),
            ));
        }
        let mut tables: Vec<PlannedTable<'a>> =
            self.catalog.tables().map(|t| self.resolve(t)).collect();
        self.check_table_names(&tables);
        self.widen_foreign_keys(&mut tables);
        for t in &mut tables {
            self.fit_keys(t);
            self.fit_row(t);
            t.auto_increment = self.auto_increment(t);
        }

        let mut texts = BTreeSet::new();
        for t in &tables {
            let utf8 = t.columns.iter().any(|c| {
                c.mapping
                    .as_ref()
                    .is_some_and(|m| m.charset == Some(Charset::Utf8mb4))
            });
            if utf8 && texts.insert(t.source.name.schema.clone()) {
                self.problems.push(Problem::note(
                    t.source.name.schema.clone(),
                    format!(
                        "text columns of `{}` use the binary NO PAD collation `{}`: values distinct in PostgreSQL stay distinct in keys and comparisons ('a'/'A', 'é'/'e', 'a'/'a '); sorting follows code points, not the source's collation",
                        t.source.name.schema,
                        self.flavor.text_collation()
                    ),
                ));
            }
        }

        let mut plan = SchemaPlan::default();
        let mut databases = BTreeSet::new();
        for t in &tables {
            if databases.insert(t.target.schema.clone()) {
                plan.pre_data.push(Statement::new(
                    Phase::PreData,
                    StatementKind::Schema,
                    None,
                    t.target.schema.clone(),
                    format!(
                        "CREATE DATABASE IF NOT EXISTS {} CHARACTER SET utf8mb4 COLLATE {}",
                        quote_mysql_ident(&t.target.schema),
                        self.flavor.text_collation()
                    ),
                ));
            }
        }
        let targets: BTreeMap<&TableName, &PlannedTable<'_>> =
            tables.iter().map(|t| (&t.source.name, t)).collect();
        let mut indexes = Vec::new();
        let mut foreign_keys = Vec::new();
        let mut counters = Vec::new();
        let mut fk_names: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for t in &tables {
            let (sql, index_names) = self.create_table(t);
            plan.pre_data.push(Statement::new(
                Phase::PreData,
                StatementKind::Table,
                Some(&t.target),
                t.target.to_string(),
                sql,
            ));
            indexes.extend(self.indexes(t, index_names));
            let taken = fk_names.entry(t.target.schema.to_lowercase()).or_default();
            foreign_keys.extend(self.foreign_keys(t, &targets, taken));
            if let Some(c) = t.auto_increment {
                let floor = t.source.auto_increment.unwrap_or(1).max(1);
                counters.push(Statement::new(
                    Phase::PostData,
                    StatementKind::SequenceReset,
                    Some(&t.target),
                    format!("{}.{}", t.target, t.columns[c].target),
                    // InnoDB never sets the counter at or below the largest value held:
                    // this sets it past the copied maximum, and past the source's counter.
                    format!("ALTER TABLE {} AUTO_INCREMENT = {floor}", t.qualified()),
                ));
            }
            plan.tables.push(TablePlan {
                source: t.source.name.clone(),
                target: t.target.clone(),
                columns: t
                    .columns
                    .iter()
                    .filter_map(|c| {
                        let m = c.mapping.as_ref()?;
                        Some(ColumnPlan {
                            source_name: c.source.name.clone(),
                            target_name: c.target.clone(),
                            target_type: m.type_sql(self.flavor),
                            mapping: None,
                            pg_to_mysql: Some(m.clone()),
                            copied: true,
                        })
                    })
                    .collect(),
                chunk_key: t.source.chunk_key(),
            });
        }
        plan.post_data.extend(indexes);
        plan.post_data.extend(foreign_keys);
        plan.post_data.extend(counters);
        plan.problems = self.problems;
        plan
    }

    // --- names ----------------------------------------------------------------------

    /// Checks a target identifier; a blocking problem names it and the fix.
    fn check_identifier(&mut self, what: &str, name: &str, object: &str, fix: &str) {
        let chars = name.chars().count();
        let why = if name.is_empty() {
            Some("is empty".to_string())
        } else if chars > MYSQL_MAX_IDENTIFIER_CHARS {
            Some(format!(
                "is {chars} characters long, more than MySQL's {MYSQL_MAX_IDENTIFIER_CHARS}"
            ))
        } else if name.ends_with(' ') {
            Some("ends with a space, which MySQL names cannot".to_string())
        } else if name.chars().any(|c| u32::from(c) > 0xFFFF) {
            Some("has characters outside the Basic Multilingual Plane, which MySQL names cannot hold".to_string())
        } else {
            None
        };
        if let Some(why) = why {
            self.problems.push(Problem::blocking(
                object.to_string(),
                format!("{what} name `{name}` {why}: {fix}"),
            ));
        }
    }

    fn target_table(&self, t: &TableName) -> TableName {
        TableName::new(
            self.opts.spelled_schema(&t.schema),
            self.opts.spelled_table(t),
        )
    }

    /// Target names and type mappings of a table's columns.
    fn resolve(&mut self, table: &'a Table) -> PlannedTable<'a> {
        let target = self.target_table(&table.name);
        let object = table.name.to_string();
        self.check_identifier(
            "database",
            &target.schema,
            &table.name.schema,
            "rename it with objects.rename_databases",
        );
        self.check_identifier(
            "table",
            &target.name,
            &object,
            "rename it with objects.rename_tables",
        );
        let mut columns = Vec::new();
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for c in &table.columns {
            let column_object = format!("{object}.{}", c.name);
            if let Some(g) = &c.generated {
                self.problems.push(Problem::blocking(
                    column_object,
                    format!(
                        "generated column `{}.{}` (`{}`) has a PostgreSQL expression that is not translated to MySQL: exclude the table, or make it an ordinary column in the source",
                        table.name, c.name, g.expression
                    ),
                ));
                continue;
            }
            let name = self.opts.spelled_column(&table.name, &c.name);
            self.check_identifier(
                "column",
                &name,
                &column_object,
                "rename it with objects.rename_columns",
            );
            if let Some(first) = seen.insert(name.to_lowercase(), c.name.clone()) {
                self.problems.push(Problem::blocking(
                    column_object.clone(),
                    format!(
                        "columns `{first}` and `{}` of `{}` both become `{name}`, and MySQL column names ignore case: rename one with objects.rename_columns",
                        c.name, table.name
                    ),
                ));
            }
            let resolved = resolve_pg_type(&c.source_type, &self.catalog.types);
            let nullable = c.nullable && !resolved.not_null;
            let mapping = match map_pg_type(
                &c.source_type,
                resolved.ty,
                nullable,
                &self.opts.mapping.pg_to_mysql,
            ) {
                Ok(mut m) => {
                    if !resolved.domains.is_empty() {
                        m.notes.push(notes::DOMAIN);
                    }
                    Some(m)
                }
                Err(e) => {
                    self.problems.push(Problem::blocking(
                        column_object,
                        format!("column `{}.{}`: {e}", table.name, c.name),
                    ));
                    None
                }
            };
            columns.push(PlannedColumn {
                source: c,
                target: name,
                mapping,
                domain_default: resolved.default,
            });
        }
        PlannedTable {
            source: table,
            target,
            columns,
            auto_increment: None,
        }
    }

    fn check_table_names(&mut self, tables: &[PlannedTable<'_>]) {
        let mut seen: BTreeMap<&TableName, &TableName> = BTreeMap::new();
        for t in tables {
            if let Some(first) = seen.insert(&t.target, &t.source.name) {
                self.problems.push(Problem::blocking(
                    t.source.name.to_string(),
                    format!(
                        "tables `{first}` and `{}` both map to `{}` in the target",
                        t.source.name, t.target
                    ),
                ));
            }
        }
    }

    // --- types across tables ----------------------------------------------------------

    /// Gives the integer columns of each foreign key and of the key it references the
    /// wider of their two types: MySQL wants them equal, PostgreSQL does not.
    fn widen_foreign_keys(&mut self, tables: &mut [PlannedTable<'_>]) {
        let position: BTreeMap<TableName, usize> = tables
            .iter()
            .enumerate()
            .map(|(i, t)| (t.source.name.clone(), i))
            .collect();
        let mut pairs = Vec::new();
        for (ti, t) in tables.iter().enumerate() {
            for fk in &t.source.foreign_keys {
                let Some(&pi) = position.get(&fk.referenced_table) else {
                    continue;
                };
                for (c, p) in fk.columns.iter().zip(&fk.referenced_columns) {
                    if let (Some(ci), Some(pci)) = (t.index_of(c), tables[pi].index_of(p)) {
                        pairs.push(((ti, ci), (pi, pci)));
                    }
                }
            }
        }
        // Until nothing changes: a key may be referenced through several others.
        for _ in 0..=pairs.len() {
            let mut changed = false;
            for &((ti, ci), (pi, pci)) in &pairs {
                let rank = |m: &Option<PgToMySqlMapping>| match m.as_ref().map(|m| &m.target) {
                    Some(MySqlType::SmallInt { unsigned: false }) => Some(1),
                    Some(MySqlType::Int { unsigned: false }) => Some(2),
                    Some(MySqlType::BigInt { unsigned: false }) => Some(3),
                    _ => None,
                };
                let (Some(a), Some(b)) = (
                    rank(&tables[ti].columns[ci].mapping),
                    rank(&tables[pi].columns[pci].mapping),
                ) else {
                    continue;
                };
                if a == b {
                    continue;
                }
                let (wide, narrow) = if a > b {
                    ((ti, ci), (pi, pci))
                } else {
                    ((pi, pci), (ti, ci))
                };
                let target = tables[wide.0].columns[wide.1]
                    .mapping
                    .as_ref()
                    .map(|m| m.target.clone());
                if let (Some(target), Some(m)) =
                    (target, tables[narrow.0].columns[narrow.1].mapping.as_mut())
                {
                    m.target = target;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
    }

    /// Narrows text and byte columns of whole-value keys to fit InnoDB's index limit.
    fn fit_keys(&mut self, t: &mut PlannedTable<'_>) {
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let names = |cols: &[String], t: &PlannedTable<'_>| -> Vec<usize> {
            cols.iter().filter_map(|c| t.index_of(c)).collect()
        };
        if let Some(pk) = &t.source.primary_key {
            groups.push(names(&pk.columns, t));
        }
        for index in t.source.indexes.iter().filter(|i| i.unique) {
            let cols: Vec<String> = index.columns.iter().map(|c| c.name.clone()).collect();
            groups.push(names(&cols, t));
        }
        for fk in &t.source.foreign_keys {
            groups.push(names(&fk.columns, t));
        }
        // Columns referenced by other tables' foreign keys (their unique key is a group
        // already; this keeps both ends alike when it is not).
        for other in self.catalog.tables() {
            for fk in other
                .foreign_keys
                .iter()
                .filter(|fk| fk.referenced_table == t.source.name)
            {
                groups.push(names(&fk.referenced_columns, t));
            }
        }
        let mappings: Vec<Option<PgToMySqlMapping>> =
            t.columns.iter().map(|c| c.mapping.clone()).collect();
        let mut caps: BTreeMap<usize, u32> = BTreeMap::new();
        for group in &groups {
            for (&c, cap) in group.iter().zip(keys::key_shares(&mappings, group)) {
                if let Some(cap) = cap {
                    let e = caps.entry(c).or_insert(cap);
                    *e = (*e).min(cap);
                }
            }
        }
        for (c, cap) in caps {
            let column = &mut t.columns[c];
            if let Some(m) = column.mapping.as_mut() {
                let fitted = m.within_key_bytes(cap);
                if fitted.target != m.target {
                    let object = format!("{}.{}", t.source.name, column.source.name);
                    self.problems.push(Problem::note(
                        object.clone(),
                        format!(
                            "column `{object}` ({}) is in a key, which MySQL indexes whole only within InnoDB's 3072-byte limit: it becomes `{}`; the precheck reports longer values",
                            m.source_type, fitted.target
                        ),
                    ));
                }
                *m = fitted;
            }
        }
    }

    /// Stores the widest `varchar`s not in a key as text types when the row would exceed
    /// MySQL's row limit.
    fn fit_row(&mut self, t: &mut PlannedTable<'_>) {
        let mut keyed = BTreeSet::new();
        for index in t
            .source
            .primary_key
            .iter()
            .map(|k| k.columns.clone())
            .chain(
                t.source
                    .indexes
                    .iter()
                    .map(|i| i.columns.iter().map(|c| c.name.clone()).collect()),
            )
            .chain(t.source.foreign_keys.iter().map(|fk| fk.columns.clone()))
        {
            keyed.extend(index.iter().filter_map(|c| t.index_of(c)));
        }
        let mappings: Vec<Option<PgToMySqlMapping>> =
            t.columns.iter().map(|c| c.mapping.clone()).collect();
        for i in keys::row_overflow(&mappings, &keyed) {
            if let Some(m) = t.columns[i].mapping.as_mut() {
                *m = m.as_long_text();
            }
        }
    }

    /// The column that gets `AUTO_INCREMENT`: MySQL allows one per table, of an integer
    /// type. A table's primary key column comes first; other sequenced columns keep their
    /// copied values without a counter (noted).
    fn auto_increment(&mut self, t: &PlannedTable<'_>) -> Option<usize> {
        let integer = |c: &PlannedColumn<'_>| {
            c.mapping.as_ref().is_some_and(|m| {
                matches!(
                    m.target,
                    MySqlType::SmallInt { .. } | MySqlType::Int { .. } | MySqlType::BigInt { .. }
                )
            })
        };
        let sequenced: Vec<usize> = t
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.source.auto_increment && integer(c))
            .map(|(i, _)| i)
            .collect();
        let pk_first = t
            .source
            .primary_key
            .as_ref()
            .and_then(|k| k.columns.first())
            .and_then(|c| t.index_of(c));
        let chosen = pk_first
            .filter(|i| sequenced.contains(i))
            .or_else(|| sequenced.first().copied());
        for &i in sequenced.iter().filter(|&&i| Some(i) != chosen) {
            self.problems.push(Problem::note(
                format!("{}.{}", t.source.name, t.columns[i].source.name),
                format!(
                    "column `{}.{}` takes its values from a sequence, but MySQL allows one AUTO_INCREMENT column per table: its values are copied and new rows must give one",
                    t.source.name, t.columns[i].source.name
                ),
            ));
        }
        chosen
    }

    // --- DDL ---------------------------------------------------------------------------

    /// One column's definition.
    fn column_definition(&mut self, t: &PlannedTable<'_>, i: usize) -> Option<String> {
        let c = &t.columns[i];
        let m = c.mapping.as_ref()?;
        let quoted = quote_mysql_ident(&c.target);
        let object = format!("{}.{}", t.source.name, c.source.name);
        let mut s = format!("{quoted} {}", m.type_sql(self.flavor));
        s.push_str(if m.nullable { " NULL" } else { " NOT NULL" });
        let auto = t.auto_increment == Some(i);
        let expression = match &c.source.default {
            Some(ColumnDefault::Expression(e) | ColumnDefault::Literal(e)) => Some(e.clone()),
            Some(ColumnDefault::CurrentTimestamp(_)) => Some("CURRENT_TIMESTAMP".into()),
            _ => c.domain_default.clone(),
        };
        match expression {
            // A sequence's values come from the AUTO_INCREMENT (or, for the other
            // sequenced columns of a table, from the rows: noted already).
            _ if c.source.auto_increment => {}
            Some(e) => match default::translate_default(&e, m) {
                Ok(Some(sql)) => {
                    s.push_str(" DEFAULT ");
                    s.push_str(&sql);
                }
                Ok(None) => {}
                Err(why) => self.problems.push(Problem::note(
                    object.clone(),
                    format!("column `{object}`: {why}; the column has no default in the target"),
                )),
            },
            None => {}
        }
        if auto {
            s.push_str(" AUTO_INCREMENT");
        }
        if let Some(check) = m.check_for(&quoted) {
            s.push_str(&format!(" CHECK ({check})"));
        }
        if let Some(comment) = &c.source.comment {
            if comment.chars().count() <= 1024 {
                s.push_str(" COMMENT ");
                s.push_str(&quote_mysql_literal(comment));
            } else {
                self.problems.push(Problem::note(
                    object.clone(),
                    format!(
                        "the comment of column `{object}` is longer than MySQL's 1024 characters: left out"
                    ),
                ));
            }
        }
        Some(s)
    }

    /// `CREATE TABLE` with the primary key and the index an `AUTO_INCREMENT` column needs,
    /// and the index names taken by it (lowercase: MySQL compares them so).
    fn create_table(&mut self, t: &PlannedTable<'_>) -> (String, BTreeSet<String>) {
        let mut parts: Vec<String> = (0..t.columns.len())
            .filter_map(|i| self.column_definition(t, i))
            .collect();
        let mut names = BTreeSet::from(["primary".to_string()]);
        if let Some(pk) = &t.source.primary_key {
            parts.push(format!(
                "PRIMARY KEY ({})",
                self.key_columns(t, &pk.columns)
            ));
        }
        if let Some(a) = t.auto_increment {
            // MySQL wants the AUTO_INCREMENT column first in some index.
            let first_in = |cols: &[String]| cols.first() == Some(&t.columns[a].source.name);
            let keyed = t
                .source
                .primary_key
                .as_ref()
                .is_some_and(|k| first_in(&k.columns));
            if !keyed {
                let name = claim(&mut names, &format!("{}_key", t.columns[a].target));
                parts.push(format!(
                    "KEY {} ({})",
                    quote_mysql_ident(&name),
                    quote_mysql_ident(&t.columns[a].target)
                ));
            }
        }
        let mut sql = format!(
            "CREATE TABLE {} (\n  {}\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE={}",
            t.qualified(),
            parts.join(",\n  "),
            self.flavor.text_collation()
        );
        if let (Some(_), Some(n)) = (t.auto_increment, t.source.auto_increment) {
            sql.push_str(&format!(" AUTO_INCREMENT={n}"));
        }
        if let Some(comment) = &t.source.comment {
            if comment.chars().count() <= 2048 {
                sql.push_str(&format!(" COMMENT={}", quote_mysql_literal(comment)));
            } else {
                self.problems.push(Problem::note(
                    t.source.name.to_string(),
                    format!(
                        "the comment of table `{}` is longer than MySQL's 2048 characters: left out",
                        t.source.name
                    ),
                ));
            }
        }
        (sql, names)
    }

    /// Quoted target names of source columns, for a whole-value key.
    fn key_columns(&self, t: &PlannedTable<'_>, columns: &[String]) -> String {
        columns
            .iter()
            .map(|c| {
                let name = t
                    .index_of(c)
                    .map_or(c.as_str(), |i| t.columns[i].target.as_str());
                quote_mysql_ident(name)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Secondary indexes, after the data. Unique ones index whole values (their columns
    /// were fitted); others a prefix of long columns.
    fn indexes(&mut self, t: &PlannedTable<'_>, mut names: BTreeSet<String>) -> Vec<Statement> {
        let mappings: Vec<Option<PgToMySqlMapping>> =
            t.columns.iter().map(|c| c.mapping.clone()).collect();
        let mut out = Vec::new();
        for index in &t.source.indexes {
            let cols: Vec<usize> = index
                .columns
                .iter()
                .filter_map(|c| t.index_of(&c.name))
                .collect();
            if cols.len() != index.columns.len() || cols.iter().any(|&c| mappings[c].is_none()) {
                // A column left out (generated, unmappable): blocked already.
                continue;
            }
            let shares = keys::key_shares(&mappings, &cols);
            let parts: Vec<String> = index
                .columns
                .iter()
                .zip(&cols)
                .zip(&shares)
                .map(|((ic, &c), share)| {
                    let m = mappings[c].as_ref();
                    let mut s = quote_mysql_ident(&t.columns[c].target);
                    if let (Some(m), Some(share), false) = (m, share, index.unique) {
                        if m.key_bytes().is_none_or(|b| b > *share) {
                            let per = m.charset.map_or(1, |cs| cs.max_bytes());
                            s.push_str(&format!("({})", (share / per).max(1)));
                        }
                    }
                    if ic.descending {
                        s.push_str(" DESC");
                    }
                    s
                })
                .collect();
            let name = claim(&mut names, &index.name);
            if name != index.name {
                self.problems.push(Problem::note(
                    format!("{}.{}", t.source.name, index.name),
                    format!(
                        "index `{}` of `{}` is named `{name}` in the target (MySQL index names ignore case and `PRIMARY` is taken)",
                        index.name, t.source.name
                    ),
                ));
            }
            self.check_identifier(
                "index",
                &name,
                &format!("{}.{}", t.source.name, index.name),
                "rename it in the source",
            );
            out.push(Statement::new(
                Phase::PostData,
                if index.unique {
                    StatementKind::UniqueIndex
                } else {
                    StatementKind::Index
                },
                Some(&t.target),
                format!("{}.{name}", t.target),
                format!(
                    "ALTER TABLE {} ADD {}INDEX {} ({})",
                    t.qualified(),
                    if index.unique { "UNIQUE " } else { "" },
                    quote_mysql_ident(&name),
                    parts.join(", ")
                ),
            ));
        }
        out
    }

    /// Foreign keys with their actions, after the data; names unique per database.
    fn foreign_keys(
        &mut self,
        t: &PlannedTable<'_>,
        targets: &BTreeMap<&TableName, &PlannedTable<'_>>,
        taken: &mut BTreeSet<String>,
    ) -> Vec<Statement> {
        let mut out = Vec::new();
        for fk in &t.source.foreign_keys {
            let object = format!("{}.{}", t.source.name, fk.name);
            let Some(parent) = targets.get(&fk.referenced_table) else {
                self.problems.push(Problem::blocking(
                    object.clone(),
                    format!(
                        "foreign key `{object}` references `{}`, which is not selected",
                        fk.referenced_table
                    ),
                ));
                continue;
            };
            let mut action = |a: ReferentialAction, on: &str| {
                if a == ReferentialAction::SetDefault {
                    self.problems.push(Problem::note(
                        object.clone(),
                        format!(
                            "foreign key `{object}`: ON {on} SET DEFAULT is refused by InnoDB; created as NO ACTION"
                        ),
                    ));
                    ReferentialAction::NoAction.as_sql()
                } else {
                    a.as_sql()
                }
            };
            let on_delete = action(fk.on_delete, "DELETE");
            let on_update = action(fk.on_update, "UPDATE");
            let name = claim(taken, &fk.name);
            if name != fk.name {
                self.problems.push(Problem::note(
                    object.clone(),
                    format!(
                        "foreign key `{object}` is named `{name}` in the target (InnoDB's foreign key names are unique per database)"
                    ),
                ));
            }
            self.check_identifier("foreign key", &name, &object, "rename it in the source");
            out.push(Statement::new(
                Phase::PostData,
                StatementKind::ForeignKey,
                Some(&t.target),
                format!("{}.{name}", t.target),
                format!(
                    "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}) ON DELETE {on_delete} ON UPDATE {on_update}",
                    t.qualified(),
                    quote_mysql_ident(&name),
                    self.key_columns(t, &fk.columns),
                    parent.qualified(),
                    self.key_columns(parent, &fk.referenced_columns),
                ),
            ));
        }
        out
    }
}

/// `base`, or `base_2`, `base_3`, … : the first name not in `taken` (compared in lowercase,
/// as MySQL compares index and constraint names), which it joins.
/// A column of one table as the planner defines it in the target.
pub(crate) struct ColumnDdl {
    /// The source column's name.
    pub source: String,
    /// The target column's name.
    pub target: String,
    /// Its mapping, `None` when it cannot be mapped (a problem says why).
    pub mapping: Option<PgToMySqlMapping>,
    /// Its definition in `CREATE TABLE` (name, type, `NULL`, default, `CHECK`, comment).
    pub definition: Option<String>,
}

/// The columns of `table` as [`plan_pg_to_mysql`] defines them within `catalog` (keys
/// fitted, foreign key columns widened), and the problems of the table's objects.
pub(crate) fn column_ddl(
    catalog: &Catalog,
    opts: &SchemaOptions,
    table: &TableName,
) -> (Vec<ColumnDdl>, Vec<Problem>) {
    let mut planner = Planner::new(catalog, opts);
    let mut tables: Vec<PlannedTable<'_>> = catalog.tables().map(|t| planner.resolve(t)).collect();
    planner.widen_foreign_keys(&mut tables);
    let Some(t) = tables.iter_mut().find(|t| t.source.name == *table) else {
        return (Vec::new(), Vec::new());
    };
    planner.fit_keys(t);
    planner.fit_row(t);
    t.auto_increment = planner.auto_increment(t);
    let t = &*t;
    let columns = (0..t.columns.len())
        .map(|i| ColumnDdl {
            source: t.columns[i].source.name.clone(),
            target: t.columns[i].target.clone(),
            mapping: t.columns[i].mapping.clone(),
            definition: planner.column_definition(t, i),
        })
        .collect();
    let prefix = format!("{table}.");
    let problems = planner
        .problems
        .into_iter()
        .filter(|p| p.object.starts_with(&prefix))
        .collect();
    (columns, problems)
}

fn claim(taken: &mut BTreeSet<String>, base: &str) -> String {
    if taken.insert(base.to_lowercase()) {
        return base.to_string();
    }
    let mut n = 2;
    loop {
        let candidate = format!("{base}_{n}");
        if taken.insert(candidate.to_lowercase()) {
            return candidate;
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests;
