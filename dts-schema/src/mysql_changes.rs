//! The MySQL/MariaDB → MySQL/MariaDB mapping of changes for replication.
//!
//! Rows pass as the binlog carries them: the table renamed as the task renames it, the
//! generated columns left out (the target computes them), values unchanged. DDL is kept as
//! the source ran it — same engine, same meaning — with every database and table name
//! rewritten to the target's, fully qualified (the target session has no default
//! database), and run under the source statement's `sql_mode`. The [`SchemaTracker`]
//! follows each statement so that the source schema stays known (which columns a table
//! has, which are generated, its key) and is recorded with the applied position.

use std::collections::HashMap;
use std::sync::Arc;

use dts_core::{
    Catalog, Change, ChangeEvent, ChangeMapper, Error, ErrorKind, Result, RowImage, SchemaChange,
    SqlMode, Table, TableName,
};

use crate::change::{DdlKind, DdlOutcome, SchemaTracker, TableFilter};
use crate::mapper::{image_map, short_sql, ImageMap};
use crate::mysql_to_mysql::{quote_mysql_ident, target_of};
use crate::options::SchemaOptions;
use crate::token::{self, tokenize, Cursor, Tok};

/// The `sql_mode` flags a statement is run with on the target, when the source statement
/// ran with them: those that change what a DDL statement does (how strictly values are
/// converted when a column changes, which dates and defaults are accepted, how expressions
/// read) and that MySQL and MariaDB both know, by their bit in the binlog's mask.
/// `ANSI_QUOTES` and `NO_BACKSLASH_ESCAPES` are not carried: the text is rewritten to read
/// the same without them ([`crate::sql_in_default_mode`]).
const CARRIED_MODES: &[(u64, &str)] = &[
    (1, "REAL_AS_FLOAT"),
    (1 << 1, "PIPES_AS_CONCAT"),
    (1 << 3, "IGNORE_SPACE"),
    (1 << 6, "NO_UNSIGNED_SUBTRACTION"),
    (1 << 7, "NO_DIR_IN_CREATE"),
    (1 << 19, "NO_AUTO_VALUE_ON_ZERO"),
    (1 << 21, "STRICT_TRANS_TABLES"),
    (1 << 22, "STRICT_ALL_TABLES"),
    (1 << 23, "NO_ZERO_IN_DATE"),
    (1 << 24, "NO_ZERO_DATE"),
    (1 << 25, "INVALID_DATES"),
    (1 << 26, "ERROR_FOR_DIVISION_BY_ZERO"),
    (1 << 29, "HIGH_NOT_PRECEDENCE"),
    (1 << 30, "NO_ENGINE_SUBSTITUTION"),
    (1 << 31, "PAD_CHAR_TO_FULL_LENGTH"),
];

/// The statement that sets a target session's `sql_mode` to the flags of `mode` that a
/// DDL statement is run with (see [`MySqlToMySqlChangeMapper`]).
pub fn mysql_session_mode(mode: SqlMode) -> String {
    let names: Vec<&str> = CARRIED_MODES
        .iter()
        .filter(|(bit, _)| mode.bits() & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    format!("SET SESSION sql_mode = '{}'", names.join(","))
}

/// A table's mapping for replication: its target name and the columns written.
struct Shape {
    source: TableName,
    target: TableName,
    /// The columns written (the source's columns that are not generated), in source order.
    columns: Arc<Vec<String>>,
    /// Every source column by name: its index among the written columns, or `None` for a
    /// generated one.
    by_source: HashMap<String, Option<usize>>,
    /// The last image layout seen, and where its columns go.
    image: Option<(Arc<Vec<String>>, ImageMap)>,
}

impl Shape {
    fn new(table: &Table, target: TableName) -> Self {
        let mut by_source = HashMap::new();
        let mut columns = Vec::new();
        for c in &table.columns {
            if c.generated.is_none() {
                by_source.insert(c.name.clone(), Some(columns.len()));
                columns.push(c.name.clone());
            } else {
                by_source.insert(c.name.clone(), None);
            }
        }
        Self {
            source: table.name.clone(),
            target,
            columns: Arc::new(columns),
            by_source,
            image: None,
        }
    }

    /// Where each column of `image` goes among the written columns.
    fn image_map(&mut self, image: &RowImage) -> Result<ImageMap> {
        let columns = &self.columns;
        image_map(
            &mut self.image,
            &self.by_source,
            &self.source,
            columns.len(),
            |i| &columns[i],
            image,
        )
    }

    /// The image as the target holds it: the written columns, in source order.
    fn convert(&mut self, image: RowImage) -> Result<RowImage> {
        let map = self.image_map(&image)?;
        let identity = map.len() == self.columns.len()
            && map.iter().enumerate().all(|(i, slot)| *slot == Some(i));
        if identity {
            return Ok(RowImage {
                columns: self.columns.clone(),
                values: image.values,
            });
        }
        let mut values = vec![dts_core::Value::Null; self.columns.len()];
        for (value, slot) in image.values.into_iter().zip(map.iter()) {
            if let Some(i) = *slot {
                values[i] = value;
            }
        }
        Ok(RowImage {
            columns: self.columns.clone(),
            values,
        })
    }
}

/// The MySQL/MariaDB → MySQL/MariaDB [`ChangeMapper`].
///
/// - **Rows**: changes of tables the task selects name the target table (the database and
///   table renames of the task applied) and carry the source's columns other than generated
///   ones, in the source's order, values unchanged; changes of other tables are dropped.
/// - **DDL**: each statement goes through the [`SchemaTracker`], which keeps the source
///   schema (and says what the statement did to the selected tables). A statement that
///   does nothing to them (views, routines, users, other databases' tables, temporary
///   tables) becomes a [`Change::Schema`] without statements. Otherwise the target runs the
///   statement as the source ran it, under the source's `sql_mode` (its flags both engines
///   know, see [`mysql_session_mode`]; the first statement of the change sets it, and the
///   sink restores its own afterwards), with every table name rewritten to the target's,
///   qualified with its database: the table the statement is about, tables a foreign key
///   `REFERENCES`, `LIKE` sources, `RENAME … TO` names. `DROP TABLE` (and `DROP DATABASE`)
///   become a `DROP TABLE IF EXISTS` of the selected tables only, `RENAME TABLE` a rename of
///   the selected tables only. The change carries the source schema after it.
/// - **Refused**: what the tracker cannot follow (a statement it cannot parse, `CREATE TABLE
///   … SELECT`, a rename out of the selection or into it, a definition it does not know, a
///   new `AUTO_INCREMENT` column or one added with a non-constant default, whose values the
///   target would give the existing rows in its own way, a type the PostgreSQL mapping does
///   not know) stops replication naming the
///   statement, or with [`MySqlToMySqlChangeMapper::with_skip_unsupported_ddl`] is skipped
///   with a warning (the target then lacks the change: later rows of the table may no
///   longer fit it).
pub struct MySqlToMySqlChangeMapper {
    tracker: SchemaTracker,
    selects: TableFilter,
    skip_unsupported_ddl: bool,
    shapes: HashMap<TableName, Shape>,
}

impl std::fmt::Debug for MySqlToMySqlChangeMapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MySqlToMySqlChangeMapper")
            .field("skip_unsupported_ddl", &self.skip_unsupported_ddl)
            .finish_non_exhaustive()
    }
}

impl MySqlToMySqlChangeMapper {
    /// A mapper from `catalog`, the selected source tables at the position the stream starts
    /// at, with the task's schema options `opts` (its renames) and table selection
    /// `selects`.
    pub fn new(catalog: Catalog, opts: SchemaOptions, selects: TableFilter) -> Self {
        Self {
            tracker: SchemaTracker::new(catalog, opts, selects.clone()).for_same_engine(),
            selects,
            skip_unsupported_ddl: false,
            shapes: HashMap::new(),
        }
    }

    /// Skips source DDL that cannot be followed (with a warning in the log) instead of
    /// failing.
    #[must_use]
    pub fn with_skip_unsupported_ddl(mut self, skip: bool) -> Self {
        self.skip_unsupported_ddl = skip;
        self
    }

    /// The tracked source schema.
    pub fn catalog(&self) -> &Catalog {
        self.tracker.catalog()
    }

    fn target_of(&self, table: &TableName) -> TableName {
        target_of(self.tracker.options(), table)
    }

    /// The mapping of a row change's table; `None` when the table is not selected.
    fn shape(&mut self, table: &TableName) -> Result<Option<&mut Shape>> {
        if !self.shapes.contains_key(table) {
            let Some(source) = self.tracker.table(table) else {
                if !(self.selects)(table) {
                    return Ok(None);
                }
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!(
                        "change to table `{table}`, which is not among the migrated tables \
                         (or was created without a DDL event the task saw)"
                    ),
                ));
            };
            let shape = Shape::new(source, self.target_of(table));
            self.shapes.insert(table.clone(), shape);
        }
        Ok(self.shapes.get_mut(table))
    }

    fn ddl(&mut self, schema: Option<String>, sql: String, mode: SqlMode) -> Result<SchemaChange> {
        self.shapes.clear();
        let before = self.tracker.clone();
        let text = crate::sql_in_default_mode(&sql, mode).into_owned();
        let outcome = self
            .tracker
            .apply_mysql_ddl(schema.as_deref(), &text)
            .map_err(Error::from)
            .and_then(|outcome| {
                let statement = target_statement(&before, &text, schema.as_deref(), &outcome)
                    .map_err(|why| {
                        Error::new(
                            ErrorKind::Unsupported,
                            format!("cannot name the target's tables in the statement: {why}"),
                        )
                    })?;
                Ok((outcome, statement))
            });
        match outcome {
            Ok((outcome, statement)) => {
                for note in &outcome.notes {
                    tracing::debug!(statement = %short_sql(&sql), note = %note, "ddl note");
                }
                let changed = statement.is_some() || !outcome.changed.is_empty();
                let (tables, created) = self.touched(&before, &outcome.changed);
                let statements = match statement {
                    Some(s) => vec![mysql_session_mode(mode), s],
                    None => Vec::new(),
                };
                Ok(SchemaChange {
                    within_transaction: false,
                    statements,
                    catalog: changed.then(|| Arc::new(self.tracker.catalog().clone())),
                    source_sql: sql,
                    tables,
                    created,
                })
            }
            Err(e) => {
                self.tracker = before;
                if self.skip_unsupported_ddl && e.kind() == ErrorKind::Unsupported {
                    tracing::warn!(statement = %short_sql(&sql), error = %e.message(),
                        "skipping a source ddl statement that cannot be replicated");
                    Ok(SchemaChange {
                        within_transaction: false,
                        statements: Vec::new(),
                        catalog: None,
                        source_sql: sql,
                        tables: Vec::new(),
                        created: Vec::new(),
                    })
                } else {
                    Err(e.context(format_args!("source ddl `{}`", short_sql(&sql))))
                }
            }
        }
    }

    /// The target tables a statement touched: those that existed before it (altered,
    /// dropped, renamed from) and those it created (or renamed to), from the tracked
    /// tables before it (`before`) and the source tables it changed.
    fn touched(
        &self,
        before: &SchemaTracker,
        changed: &[TableName],
    ) -> (Vec<TableName>, Vec<TableName>) {
        let mut tables: Vec<TableName> = Vec::new();
        let mut created: Vec<TableName> = Vec::new();
        for source in changed {
            let old = before.table(source).map(|_| self.target_of(source));
            let new = self.tracker.table(source).map(|_| self.target_of(source));
            match (old, new) {
                (Some(old), Some(new)) if old == new => tables.push(old),
                (old, new) => {
                    tables.extend(old);
                    created.extend(new);
                }
            }
        }
        for table in before.catalog().tables() {
            if self.tracker.table(&table.name).is_none() {
                let target = target_of(before.options(), &table.name);
                if !tables.contains(&target) {
                    tables.push(target);
                }
            }
        }
        tables.sort();
        tables.dedup();
        created.sort();
        created.dedup();
        (tables, created)
    }
}

impl ChangeMapper for MySqlToMySqlChangeMapper {
    fn map(&mut self, event: ChangeEvent) -> Result<Option<ChangeEvent>> {
        let ChangeEvent {
            change,
            position,
            timestamp,
        } = event;
        let change = match change {
            Change::Insert { table, row } => {
                let Some(shape) = self.shape(&table)? else {
                    return Ok(None);
                };
                Change::Insert {
                    table: shape.target.clone(),
                    row: shape.convert(row)?,
                }
            }
            Change::Update {
                table,
                before,
                after,
            } => {
                let Some(shape) = self.shape(&table)? else {
                    return Ok(None);
                };
                Change::Update {
                    table: shape.target.clone(),
                    before: shape.convert(before)?,
                    after: shape.convert(after)?,
                }
            }
            Change::Delete { table, row } => {
                let Some(shape) = self.shape(&table)? else {
                    return Ok(None);
                };
                Change::Delete {
                    table: shape.target.clone(),
                    row: shape.convert(row)?,
                }
            }
            Change::Truncate { table } => {
                let Some(shape) = self.shape(&table)? else {
                    return Ok(None);
                };
                Change::Truncate {
                    table: shape.target.clone(),
                }
            }
            Change::Ddl {
                schema,
                sql,
                sql_mode,
            } => Change::Schema(Box::new(self.ddl(schema, sql, sql_mode)?)),
            other => other,
        };
        Ok(Some(ChangeEvent {
            change,
            position,
            timestamp,
        }))
    }
}

/// The tables a MySQL/MariaDB DDL statement is about, qualified with `default_schema` when
/// it does not name their database: the table of `ALTER TABLE`, `CREATE TABLE`,
/// `TRUNCATE`, `CREATE INDEX … ON` and `DROP INDEX … ON`, the tables of `DROP TABLE`, and
/// both names of each `RENAME TABLE` pair. Empty for other statements, for unqualified
/// names without a default database, and for text that does not tokenize.
///
/// ```
/// use dts_core::{SqlMode, TableName};
///
/// let tables = dts_schema::mysql_ddl_tables(Some("shop"), "ALTER TABLE orders ADD x int", SqlMode::default());
/// assert_eq!(tables, [TableName::new("shop", "orders")]);
/// ```
pub fn mysql_ddl_tables(default_schema: Option<&str>, sql: &str, mode: SqlMode) -> Vec<TableName> {
    let text = crate::sql_in_default_mode(sql, mode);
    let Ok(toks) = tokenize(&text) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    let mut c = Cursor::new(&toks);
    let verb = c.next().and_then(Tok::keyword).unwrap_or_default();
    match verb.as_str() {
        "alter" => {
            c.eat_kw("ONLINE");
            c.eat_kw("IGNORE");
            if c.eat_kw("TABLE") {
                c.eat_kws(&["IF", "EXISTS"]);
                names.extend(c.object_name());
            }
        }
        "create" | "drop" => {
            c.eat_kws(&["OR", "REPLACE"]);
            let _ = c.eat_kw("ONLINE") || c.eat_kw("OFFLINE");
            c.eat_kw("TEMPORARY");
            if c.eat_kw("TABLE") {
                let _ = c.eat_kws(&["IF", "NOT", "EXISTS"]) || c.eat_kws(&["IF", "EXISTS"]);
                if verb == "drop" {
                    for part in token::split_commas(c.rest()) {
                        names.extend(Cursor::new(part).object_name());
                    }
                } else {
                    names.extend(c.object_name());
                }
            } else {
                let _ = c.eat_kw("UNIQUE") || c.eat_kw("FULLTEXT") || c.eat_kw("SPATIAL");
                if c.eat_kw("INDEX") {
                    let _ = c.eat_kws(&["IF", "NOT", "EXISTS"]) || c.eat_kws(&["IF", "EXISTS"]);
                    c.next();
                    if c.eat_kw("ON") {
                        names.extend(c.object_name());
                    }
                }
            }
        }
        "truncate" => {
            c.eat_kw("TABLE");
            names.extend(c.object_name());
        }
        "rename" if c.eat_kw("TABLE") || c.eat_kw("TABLES") => {
            for part in token::split_commas(c.rest()) {
                let mut p = Cursor::new(part);
                names.extend(p.object_name());
                if p.eat_kw("TO") {
                    names.extend(p.object_name());
                }
            }
        }
        _ => {}
    }
    names
        .into_iter()
        .filter_map(|(schema, table)| match schema {
            Some(s) => Some(TableName::new(s, table)),
            None => default_schema.map(|s| TableName::new(s, table)),
        })
        .collect()
}

/// A span of the statement's text and what replaces it.
type Edit = (usize, usize, String);

/// The target's statement for a source statement `sql` (in the default mode's quoting) that
/// the tracker, in the state `before` it, translated as `outcome`: `None` when the target
/// needs none.
fn target_statement(
    before: &SchemaTracker,
    sql: &str,
    default_schema: Option<&str>,
    outcome: &DdlOutcome,
) -> std::result::Result<Option<String>, String> {
    let opts = before.options();
    let qualified = |t: &TableName| {
        let t = target_of(opts, t);
        format!(
            "{}.{}",
            quote_mysql_ident(&t.schema),
            quote_mysql_ident(&t.name)
        )
    };
    match outcome.kind {
        DdlKind::Ignored => Ok(None),
        DdlKind::DropTable => {
            if outcome.changed.is_empty() {
                return Ok(None);
            }
            let names: Vec<String> = outcome.changed.iter().map(qualified).collect();
            Ok(Some(format!("DROP TABLE IF EXISTS {}", names.join(", "))))
        }
        DdlKind::Truncate => Ok(outcome
            .changed
            .first()
            .map(|t| format!("TRUNCATE TABLE {}", qualified(t)))),
        _ => {
            let toks = tokenize(sql).map_err(|e| e.message)?;
            let resolve = |name: (Option<String>, String)| {
                match name {
                (Some(schema), table) => Ok(TableName::new(schema, table)),
                (None, table) => default_schema
                    .map(|s| TableName::new(s, table.clone()))
                    .ok_or_else(|| {
                        format!("table `{table}` is not qualified and the statement ran without a default database")
                    }),
            }
            };
            if toks.first().is_some_and(|t| t.is_kw("RENAME")) {
                return rename_tables(&toks, before, resolve, qualified).map(Some);
            }
            let mut edits = name_edits(&toks, &resolve, &qualified)?;
            if edits.is_empty() {
                return Err("no table name found".into());
            }
            // Clauses about columns the task leaves out are left out of the statement.
            if let (Some(first), Some(last)) = (outcome.clauses.first(), outcome.clauses.last()) {
                // A kept clause loses the parts left out of it (an `AFTER` a column left
                // out).
                let kept: Vec<String> = outcome
                    .clauses
                    .iter()
                    .filter(|c| !outcome.left_out.contains(c))
                    .map(|&(a, b)| {
                        let mut text = String::new();
                        let mut at = a;
                        let mut inner: Vec<&(usize, usize)> = outcome
                            .left_out
                            .iter()
                            .filter(|s| a <= s.0 && s.1 <= b)
                            .collect();
                        inner.sort();
                        for &(s, e) in inner {
                            text.push_str(sql.get(at..s).unwrap_or_default().trim_end());
                            at = e;
                        }
                        text.push_str(sql.get(at..b).unwrap_or_default());
                        text
                    })
                    .collect();
                if kept.is_empty() {
                    return Ok(None);
                }
                if edits.iter().any(|e| e.0 >= first.0 && e.1 <= last.1) {
                    return Err(
                        "a clause left out (a column the task leaves out) sits beside \
                                clauses that name tables"
                            .into(),
                    );
                }
                edits.push((first.0, last.1, kept.join(", ")));
            }
            Ok(Some(apply_edits(sql, edits)))
        }
    }
}

/// `RENAME TABLE a TO b, …` with the selected pairs only (the tracker refused a rename out
/// of the selection or into it, so a pair is selected at both ends or at neither).
fn rename_tables(
    toks: &[Tok],
    before: &SchemaTracker,
    resolve: impl Fn((Option<String>, String)) -> std::result::Result<TableName, String>,
    qualified: impl Fn(&TableName) -> String,
) -> std::result::Result<String, String> {
    let mut c = Cursor::new(toks);
    c.next();
    if !(c.eat_kw("TABLE") || c.eat_kw("TABLES")) {
        return Err("expected TABLE after RENAME".into());
    }
    // Where each tracked table is as the statement goes on.
    let mut at: Vec<TableName> = before.catalog().tables().map(|t| t.name.clone()).collect();
    let mut pairs = Vec::new();
    for part in token::split_commas(c.rest()) {
        let mut p = Cursor::new(part);
        let from = p
            .object_name()
            .ok_or("expected `old TO new` in RENAME TABLE")?;
        if !p.eat_kw("TO") {
            return Err("expected `old TO new` in RENAME TABLE".into());
        }
        let to = p
            .object_name()
            .ok_or("expected `old TO new` in RENAME TABLE")?;
        let (from, to) = (resolve(from)?, resolve(to)?);
        if let Some(i) = at.iter().position(|t| *t == from) {
            at[i] = to.clone();
            pairs.push(format!("{} TO {}", qualified(&from), qualified(&to)));
        }
    }
    if pairs.is_empty() {
        return Err("no selected table is renamed".into());
    }
    Ok(format!("RENAME TABLE {}", pairs.join(", ")))
}

/// The edits that name the target's tables in `CREATE TABLE`, `ALTER TABLE`, `CREATE INDEX`
/// and `DROP INDEX`: the statement's table, `LIKE` sources, `REFERENCES` targets and
/// `RENAME [TO|AS]` names.
fn name_edits(
    toks: &[Tok],
    resolve: &impl Fn((Option<String>, String)) -> std::result::Result<TableName, String>,
    qualified: &impl Fn(&TableName) -> String,
) -> std::result::Result<Vec<Edit>, String> {
    let mut edits = Vec::new();
    // A name at the cursor, replaced.
    let name_at = |c: &mut Cursor<'_>, edits: &mut Vec<Edit>| {
        let start = c.peek().map(|t| t.start);
        let name = c.object_name();
        let end = c
            .pos()
            .checked_sub(1)
            .and_then(|i| toks.get(i))
            .map(|t| t.end);
        match (start, name, end) {
            (Some(start), Some(name), Some(end)) => {
                edits.push((start, end, qualified(&resolve(name)?)));
                Ok(())
            }
            _ => Err("expected a table name".to_string()),
        }
    };
    let mut c = Cursor::new(toks);
    let alter = c.at_kw("ALTER");
    c.next();
    let body_from;
    if alter {
        c.eat_kw("ONLINE");
        c.eat_kw("IGNORE");
        if !c.eat_kw("TABLE") {
            return Err("expected TABLE after ALTER".into());
        }
        c.eat_kws(&["IF", "EXISTS"]);
        name_at(&mut c, &mut edits)?;
        body_from = c.pos();
    } else {
        // CREATE … or DROP …
        c.eat_kws(&["OR", "REPLACE"]);
        let _ = c.eat_kw("ONLINE") || c.eat_kw("OFFLINE");
        if c.eat_kw("TABLE") {
            c.eat_kws(&["IF", "NOT", "EXISTS"]);
            name_at(&mut c, &mut edits)?;
            // `CREATE TABLE t LIKE u`, `CREATE TABLE t (LIKE u)`.
            if c.eat_kw("LIKE") {
                name_at(&mut c, &mut edits)?;
            } else if c
                .peek()
                .is_some_and(|t| t.token == sqlparser::tokenizer::Token::LParen)
                && c.peek_at(1).is_some_and(|t| t.is_kw("LIKE"))
            {
                c.next();
                c.next();
                name_at(&mut c, &mut edits)?;
            }
            body_from = c.pos();
        } else {
            for kw in ["UNIQUE", "FULLTEXT", "SPATIAL"] {
                if c.eat_kw(kw) {
                    break;
                }
            }
            if !c.eat_kw("INDEX") {
                return Err("expected TABLE or INDEX".into());
            }
            c.eat_kws(&["IF", "NOT", "EXISTS"]);
            c.eat_kws(&["IF", "EXISTS"]);
            while !c.at_end() && !c.at_kw("ON") {
                c.next();
            }
            if !c.eat_kw("ON") {
                return Err("expected ON after the index name".into());
            }
            name_at(&mut c, &mut edits)?;
            body_from = c.pos();
        }
    }
    // Foreign keys' referenced tables and renames, anywhere after the head.
    let mut c = Cursor::new(toks);
    c.set_pos(body_from);
    while let Some(t) = c.next() {
        if t.is_kw("REFERENCES") {
            name_at(&mut c, &mut edits)?;
        } else if alter && t.is_kw("RENAME") {
            let other = ["COLUMN", "INDEX", "KEY", "CONSTRAINT"]
                .iter()
                .any(|kw| c.at_kw(kw));
            if !other {
                let _ = c.eat_kw("TO") || c.eat_kw("AS");
                c.eat(&sqlparser::tokenizer::Token::Eq);
                name_at(&mut c, &mut edits)?;
            }
        }
    }
    Ok(edits)
}

fn apply_edits(sql: &str, mut edits: Vec<Edit>) -> String {
    edits.sort_by_key(|e| e.0);
    let mut out = String::with_capacity(sql.len() + 32);
    let mut copied = 0;
    for (start, end, text) in edits {
        if start < copied {
            continue;
        }
        out.push_str(&sql[copied..start]);
        out.push_str(&text);
        copied = end;
    }
    out.push_str(&sql[copied..]);
    out
}

#[cfg(test)]
mod tests;
