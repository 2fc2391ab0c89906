//! `ALTER TABLE` clauses, one PostgreSQL statement (or a few) each, in order; and the key
//! changes `CREATE INDEX` and `DROP INDEX` share with them.

use dts_core::{ColumnDefault, TableName};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

use crate::ddl::{index_base_name, ColumnObjects, Planned, TakenNames};
use crate::ident::{quote_ident, quote_literal, quote_qualified};
use crate::plan::StatementKind;

use super::cast::{bytes_kept, conversion, implicit_default, is_volatile};
use super::column::{default_from, parse_column, ColumnKey, ColumnSpec, Inherited};
use super::create::table_options;
use super::key::{parse_key, starts_key, KeySpec, ParsedKey};
use super::model::{column_name, column_pos, drop_column, foreign_key_pos, index_pos, renumber};
use super::objects::{
    add_key_to, bare, create_index, create_primary_key, drop_foreign_key, drop_index,
    drop_primary_key, planned_trigger, refresh_trigger,
};
use super::state::{problems, State};
use super::{clause_text, DdlKind, DdlOutcome, Fail, Out, Run, SourceFlavor};
use crate::token::{split_commas, text, Cursor, Tok};

/// Where `ADD`/`MODIFY`/`CHANGE` put a column.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Position {
    First,
    After(String),
}

/// Splits off a trailing `FIRST` or `AFTER column`.
fn split_position(toks: &[Tok]) -> (&[Tok], Option<Position>) {
    let n = toks.len();
    if n >= 2 && toks[n - 2].is_kw("AFTER") {
        if let Some(name) = toks[n - 1].ident() {
            return (&toks[..n - 2], Some(Position::After(name)));
        }
    }
    if n >= 1 && toks[n - 1].is_kw("FIRST") {
        return (&toks[..n - 1], Some(Position::First));
    }
    (toks, None)
}

/// The clauses of an `ALTER TABLE`: comma-separated, with the partitioning options that may
/// follow the last one without a comma split off.
fn clauses(toks: &[Tok]) -> Vec<&[Tok]> {
    let mut out = Vec::new();
    for clause in split_commas(toks) {
        let mut depth = 0usize;
        let mut cut = None;
        for (i, t) in clause.iter().enumerate() {
            match t.token {
                Token::LParen => depth += 1,
                Token::RParen => depth = depth.saturating_sub(1),
                _ if depth == 0 && i > 0 => {
                    let next = clause.get(i + 1);
                    if (t.is_kw("PARTITION") && next.is_some_and(|n| n.is_kw("BY")))
                        || (t.is_kw("REMOVE") && next.is_some_and(|n| n.is_kw("PARTITIONING")))
                    {
                        cut = Some(i);
                        break;
                    }
                }
                _ => {}
            }
        }
        match cut {
            Some(i) => {
                out.push(&clause[..i]);
                out.push(&clause[i..]);
            }
            None => out.push(clause),
        }
    }
    out.retain(|c| !c.is_empty());
    out
}

/// Translates `ALTER TABLE table <toks>`.
pub(super) fn alter_table(
    run: &mut Run<'_>,
    table: TableName,
    toks: &[Tok],
) -> Result<DdlOutcome, Fail> {
    let mut c = Cursor::new(toks);
    // MariaDB: `ALTER TABLE t WAIT n …` / `NOWAIT`.
    if c.eat_kw("WAIT") {
        c.next();
    }
    c.eat_kw("NOWAIT");
    let list = clauses(c.rest());
    let spans: Vec<(usize, usize)> = list
        .iter()
        .filter_map(|cl| Some((cl.first()?.start, cl.last()?.end)))
        .collect();
    let mut scratch = Out::default();
    let trigger_before = if run
        .state
        .objects
        .get(&table)
        .is_some_and(|o| o.trigger.is_some())
    {
        Some(planned_trigger(run.state, &table, &mut scratch)?.1)
    } else {
        None
    };
    let mut a = Alter {
        state: &mut *run.state,
        selects: run.selects,
        default_schema: run.default_schema,
        flavor: run.flavor,
        sql: run.sql,
        table,
        out: Out::default(),
        columns_changed: false,
        model_changed: false,
        renames_only: !list.is_empty(),
        trigger_before,
        lower_case_table_names: run.lower_case_table_names,
        same_engine: run.same_engine,
    };
    for clause in list {
        a.clause(clause)?;
    }
    if a.columns_changed {
        refresh_trigger(a.state, &a.table, a.trigger_before.as_deref(), &mut a.out)?;
    }
    a.state.refresh_plan(&a.table);
    let kind = if a.out.statements.is_empty() && !a.model_changed {
        DdlKind::Ignored
    } else if a.renames_only {
        DdlKind::RenameTable
    } else {
        DdlKind::AlterTable
    };
    Ok(DdlOutcome {
        changed: if kind == DdlKind::Ignored {
            Vec::new()
        } else {
            vec![a.table.clone()]
        },
        statements: a.out.statements,
        kind,
        notes: a.out.notes,
        clauses: if a.out.left_out.is_empty() {
            Vec::new()
        } else {
            spans
        },
        left_out: a.out.left_out,
    })
}

struct Alter<'a> {
    state: &'a mut State,
    selects: &'a super::TableFilter,
    default_schema: Option<&'a str>,
    flavor: SourceFlavor,
    sql: &'a str,
    /// The table's current source name (a `RENAME TO` clause changes it).
    table: TableName,
    out: Out,
    /// Columns were added, dropped, renamed or changed: the `ON UPDATE` trigger is
    /// planned again.
    columns_changed: bool,
    /// The model changed (even without target statements).
    model_changed: bool,
    renames_only: bool,
    /// The trigger's statements before the change, if the table has one.
    trigger_before: Option<Vec<String>>,
    lower_case_table_names: u8,
    /// The target runs the source's statements (see [`super::SchemaTracker::for_same_engine`]).
    same_engine: bool,
}

impl Alter<'_> {
    /// Plans table `t` without its keys, as it now is, and passes on the problems of its
    /// column `name`; returns the plan and the target objects of that column.
    fn plan_column(&mut self, t: &TableName, name: &str) -> Result<(Planned, ColumnObjects), Fail> {
        let planned = self.state.plan_variant(
            bare(self.state.table(t)?),
            &self.state.opts,
            self.state.taken.clone(),
        );
        let object = format!("{t}.{name}");
        problems(&planned.plan, |p| p.object == object, &mut self.out)?;
        let objects = planned
            .objects
            .get(t)
            .and_then(|o| o.columns.get(name))
            .cloned()
            .unwrap_or_default();
        Ok((planned, objects))
    }

    fn unsupported(&self, toks: &[Tok], why: &str) -> Fail {
        Fail::Unsupported(format!("`{}` {why}", clause_text(self.sql, toks)))
    }

    fn note(&mut self, note: String) {
        if !self.out.notes.contains(&note) {
            self.out.notes.push(note);
        }
    }

    fn clause(&mut self, toks: &[Tok]) -> Result<(), Fail> {
        if self.state.opts.columns.contains_key(&self.table) && self.left_out(toks)? {
            if let (Some(a), Some(b)) = (toks.first(), toks.last()) {
                self.out.left_out.push((a.start, b.end));
            }
            let text = clause_text(self.sql, toks);
            tracing::info!(table = %self.table, clause = %text,
                "skipping a schema change of a column the task leaves out");
            self.note(format!(
                "`{text}` concerns a column of `{}` the task leaves out: skipped",
                self.table
            ));
            return Ok(());
        }
        let mut c = Cursor::new(toks);
        let first = c.peek().and_then(Tok::keyword).unwrap_or_default();
        if first != "rename" {
            self.renames_only = false;
        }
        match first.as_str() {
            "add" => {
                c.next();
                self.add(toks, &mut c)
            }
            "drop" => {
                c.next();
                self.drop(toks, &mut c)
            }
            "modify" => {
                c.next();
                c.eat_kw("COLUMN");
                let if_exists = c.eat_kws(&["IF", "EXISTS"]);
                let (def, position) = split_position(c.rest());
                let position = self.kept_position(c.rest(), def.len(), position);
                let name = def
                    .first()
                    .and_then(Tok::ident)
                    .ok_or_else(|| Fail::Parse("expected a column after MODIFY".into()))?;
                self.change_column(&name, def, position, if_exists)
            }
            "change" => {
                c.next();
                c.eat_kw("COLUMN");
                let if_exists = c.eat_kws(&["IF", "EXISTS"]);
                let old = c
                    .ident()
                    .ok_or_else(|| Fail::Parse("expected a column after CHANGE".into()))?;
                let (def, position) = split_position(c.rest());
                let position = self.kept_position(c.rest(), def.len(), position);
                self.change_column(&old, def, position, if_exists)
            }
            "rename" => {
                c.next();
                if c.eat_kw("COLUMN") {
                    self.renames_only = false;
                    let old = c.ident();
                    let new = if c.eat_kw("TO") { c.ident() } else { None };
                    match (old, new) {
                        (Some(old), Some(new)) => self.rename_column(&old, &new),
                        _ => Err(Fail::Parse("expected `RENAME COLUMN a TO b`".into())),
                    }
                } else if c.eat_kw("INDEX") || c.eat_kw("KEY") {
                    self.renames_only = false;
                    let old = c.ident();
                    let new = if c.eat_kw("TO") { c.ident() } else { None };
                    match (old, new) {
                        (Some(old), Some(new)) => self.rename_index(&old, &new),
                        _ => Err(Fail::Parse("expected `RENAME INDEX a TO b`".into())),
                    }
                } else {
                    if !c.eat_kw("TO") {
                        c.eat_kw("AS");
                    }
                    let name = c
                        .object_name()
                        .ok_or_else(|| Fail::Parse("expected a table name after RENAME".into()))?;
                    self.rename_table(name)
                }
            }
            "alter" => {
                c.next();
                if ["INDEX", "KEY", "CHECK", "CONSTRAINT"]
                    .iter()
                    .any(|kw| c.at_kw(kw))
                {
                    // Visibility, IGNORED, ENFORCED: nothing the target keeps.
                    return Ok(());
                }
                c.eat_kw("COLUMN");
                let name = c
                    .ident()
                    .ok_or_else(|| Fail::Parse("expected a column after ALTER".into()))?;
                if c.eat_kws(&["SET", "DEFAULT"]) {
                    self.set_default(&name, Some(c.rest()))
                } else if c.eat_kws(&["DROP", "DEFAULT"]) {
                    self.set_default(&name, None)
                } else if c.at_kws(&["SET", "VISIBLE"]) || c.at_kws(&["SET", "INVISIBLE"]) {
                    Ok(())
                } else {
                    Err(self.unsupported(toks, "is not supported"))
                }
            }
            "convert" => {
                c.next();
                if !c.eat_kw("TO") {
                    return Err(self.unsupported(toks, "is not supported"));
                }
                let charset = if c.eat_kws(&["CHARACTER", "SET"]) || c.eat_kw("CHARSET") {
                    c.next().and_then(Tok::name_or_string)
                } else {
                    None
                };
                let collation = if c.eat_kw("COLLATE") {
                    c.next().and_then(Tok::name_or_string)
                } else {
                    None
                };
                let Some(charset) = charset else {
                    return Err(self.unsupported(toks, "is not supported"));
                };
                if charset.eq_ignore_ascii_case("binary") {
                    return Err(self.unsupported(
                        toks,
                        "turns text columns into byte strings, which the target cannot follow",
                    ));
                }
                self.convert_charset(&charset, collation)
            }
            "algorithm" | "lock" | "force" | "enable" | "disable" | "order" | "validation"
            | "without" | "nowait" => {
                if c.at_kws(&["WITHOUT", "SYSTEM", "VERSIONING"]) {
                    return Err(self.unsupported(toks, "is not supported"));
                }
                Ok(())
            }
            "with" => {
                if c.at_kws(&["WITH", "VALIDATION"]) {
                    Ok(())
                } else {
                    Err(self.unsupported(toks, "is not supported"))
                }
            }
            "partition" | "remove" | "coalesce" | "reorganize" | "analyze" | "check"
            | "optimize" | "rebuild" | "repair" => {
                self.note(format!(
                    "`{}` changes only the source's partitioning",
                    clause_text(self.sql, toks)
                ));
                Ok(())
            }
            "truncate" | "exchange" | "discard" | "import" => {
                Err(self.unsupported(toks, "changes rows without logging them as row events"))
            }
            _ => self.table_options(toks),
        }
    }

    /// Whether a clause of a table with a column selection concerns only columns the task
    /// leaves out (it is then skipped): a column added, dropped, changed or renamed, or a
    /// key over such a column. A rename across the selection (a kept column renamed to a
    /// name left out, or the other way) is refused: the selection names columns, and the
    /// column would change sides.
    fn left_out(&self, toks: &[Tok]) -> Result<bool, Fail> {
        let t = &self.table;
        let keeps = |name: &str| self.state.opts.keeps_column(t, name);
        let mut c = Cursor::new(toks);
        let first = c.next().and_then(Tok::keyword).unwrap_or_default();
        let column_key = |c: &mut Cursor<'_>| {
            c.eat_kw("COLUMN");
            let _ = c.eat_kws(&["IF", "NOT", "EXISTS"]) || c.eat_kws(&["IF", "EXISTS"]);
        };
        let (old, new) = match first.as_str() {
            "add" => {
                if starts_key(c.rest()) {
                    let key = parse_key(c.rest(), t)?;
                    let columns: Vec<String> = match key.spec {
                        KeySpec::Primary(columns) => columns,
                        KeySpec::Index { index, .. } => {
                            index.columns.into_iter().map(|c| c.name).collect()
                        }
                        KeySpec::Foreign { fk, .. } => fk.columns,
                        KeySpec::Check { .. } => Vec::new(),
                    };
                    return Ok(columns.iter().any(|c| !keeps(c)));
                }
                column_key(&mut c);
                match c.ident() {
                    Some(name) => (name.clone(), name),
                    None => return Ok(false),
                }
            }
            "drop" | "modify" | "alter" => {
                if ["PRIMARY", "INDEX", "KEY", "FOREIGN", "CHECK", "CONSTRAINT"]
                    .iter()
                    .any(|kw| c.at_kw(kw))
                {
                    return Ok(false);
                }
                column_key(&mut c);
                match c.ident() {
                    Some(name) => (name.clone(), name),
                    None => return Ok(false),
                }
            }
            "change" => {
                column_key(&mut c);
                match (c.ident(), c.ident()) {
                    (Some(old), Some(new)) => (old, new),
                    _ => return Ok(false),
                }
            }
            "rename" if c.eat_kw("COLUMN") => {
                let old = c.ident();
                let new = if c.eat_kw("TO") { c.ident() } else { None };
                match (old, new) {
                    (Some(old), Some(new)) => (old, new),
                    _ => return Ok(false),
                }
            }
            _ => return Ok(false),
        };
        match (keeps(&old), keeps(&new)) {
            (true, true) => Ok(false),
            (false, false) => Ok(true),
            _ => Err(Fail::Unsupported(format!(
                "`{}` renames column `{old}` of `{t}` to `{new}` across the task's column \
                 selection (columns.include / columns.exclude): the column would change \
                 from left out to migrated or back",
                clause_text(self.sql, toks)
            ))),
        }
    }

    /// A clause's position, without an `AFTER` a column the task leaves out (which the
    /// model does not hold): such a column goes to the end, or stays where it is.
    /// `toks` are the clause's tokens from the column definition on, `def` how many of them
    /// the definition is (the rest is the position); an `AFTER` left out is recorded as
    /// left out of the statement.
    fn kept_position(
        &mut self,
        toks: &[Tok],
        def: usize,
        position: Option<Position>,
    ) -> Option<Position> {
        match position {
            Some(Position::After(x)) if !self.state.opts.keeps_column(&self.table, &x) => {
                if let (Some(a), Some(b)) = (toks.get(def), toks.last()) {
                    self.out.left_out.push((a.start, b.end));
                }
                None
            }
            other => other,
        }
    }

    fn add(&mut self, toks: &[Tok], c: &mut Cursor<'_>) -> Result<(), Fail> {
        if starts_key(c.rest()) {
            let key = parse_key(c.rest(), &self.table)?;
            if add_key_to(
                self.state,
                &self.table,
                key,
                self.flavor,
                false,
                &mut self.out,
            )? {
                self.model_changed = true;
            }
            return Ok(());
        }
        if c.at_kw("PARTITION") {
            self.note(format!(
                "`{}` changes only the source's partitioning",
                clause_text(self.sql, toks)
            ));
            return Ok(());
        }
        if c.at_kw("PERIOD") || c.at_kws(&["SYSTEM", "VERSIONING"]) {
            return Err(self.unsupported(toks, "is not supported"));
        }
        c.eat_kw("COLUMN");
        let if_not_exists = c.eat_kws(&["IF", "NOT", "EXISTS"]);
        let rest = c.rest();
        if rest.first().is_some_and(|t| t.token == Token::LParen)
            && crate::token::closing(rest, 0) == Some(rest.len() - 1)
        {
            for def in split_commas(&rest[1..rest.len() - 1]) {
                self.add_column(def, None, if_not_exists)?;
            }
            return Ok(());
        }
        let (def, position) = split_position(rest);
        let position = self.kept_position(rest, def.len(), position);
        self.add_column(def, position, if_not_exists)
    }

    fn drop(&mut self, toks: &[Tok], c: &mut Cursor<'_>) -> Result<(), Fail> {
        let t = self.table.clone();
        if c.eat_kws(&["PRIMARY", "KEY"]) {
            self.model_changed = true;
            return drop_primary_key(self.state, &t, &mut self.out);
        }
        if c.eat_kw("INDEX") || c.eat_kw("KEY") {
            let if_exists = c.eat_kws(&["IF", "EXISTS"]);
            let name = c
                .ident()
                .ok_or_else(|| Fail::Parse("expected an index name after DROP INDEX".into()))?;
            let exists = name.eq_ignore_ascii_case("PRIMARY")
                || index_pos(self.state.table(&t)?, &name).is_some();
            if !exists {
                if if_exists {
                    return Ok(());
                }
                return Err(Fail::Unsupported(format!(
                    "unknown index `{name}` of `{t}`"
                )));
            }
            self.model_changed = true;
            return drop_index(self.state, &t, &name, &mut self.out);
        }
        if c.eat_kws(&["FOREIGN", "KEY"]) {
            let if_exists = c.eat_kws(&["IF", "EXISTS"]);
            let name = c
                .ident()
                .ok_or_else(|| Fail::Parse("expected a name after DROP FOREIGN KEY".into()))?;
            if foreign_key_pos(self.state.table(&t)?, &name).is_none() {
                if if_exists {
                    return Ok(());
                }
                return Err(Fail::Unsupported(format!(
                    "unknown foreign key `{name}` of `{t}`"
                )));
            }
            self.model_changed = true;
            return drop_foreign_key(self.state, &t, &name, &mut self.out);
        }
        if c.eat_kw("CHECK") {
            self.note(format!("check constraints of `{t}` are not migrated"));
            return Ok(());
        }
        if c.eat_kw("CONSTRAINT") {
            c.eat_kws(&["IF", "EXISTS"]);
            let name = c
                .ident()
                .ok_or_else(|| Fail::Parse("expected a name after DROP CONSTRAINT".into()))?;
            let table = self.state.table(&t)?;
            if foreign_key_pos(table, &name).is_some() {
                self.model_changed = true;
                return drop_foreign_key(self.state, &t, &name, &mut self.out);
            }
            if name.eq_ignore_ascii_case("PRIMARY") || index_pos(table, &name).is_some() {
                self.model_changed = true;
                return drop_index(self.state, &t, &name, &mut self.out);
            }
            self.note(format!("check constraints of `{t}` are not migrated"));
            return Ok(());
        }
        if c.at_kw("PARTITION") {
            return Err(self.unsupported(toks, "removes rows without logging them as row events"));
        }
        if c.at_kw("PERIOD") || c.at_kws(&["SYSTEM", "VERSIONING"]) {
            return Err(self.unsupported(toks, "is not supported"));
        }
        c.eat_kw("COLUMN");
        let if_exists = c.eat_kws(&["IF", "EXISTS"]);
        let name = c
            .ident()
            .ok_or_else(|| Fail::Parse("expected a column after DROP".into()))?;
        self.drop_column(&name, if_exists)
    }

    fn add_column(
        &mut self,
        def: &[Tok],
        position: Option<Position>,
        if_not_exists: bool,
    ) -> Result<(), Fail> {
        let spec = parse_column(self.sql, def, self.flavor, &Inherited::default())?;
        let t = self.table.clone();
        let name = spec.column.name.clone();
        if column_pos(self.state.table(&t)?, &name).is_some() {
            if if_not_exists {
                return Ok(());
            }
            return Err(Fail::Unsupported(format!(
                "column `{name}` already exists in `{t}`"
            )));
        }
        if spec.column.auto_increment {
            return Err(Fail::Unsupported(format!(
                "adding auto_increment column `{name}`: the source numbers the existing rows in an order the target cannot reproduce"
            )));
        }
        match &spec.column.default {
            Some(ColumnDefault::Expression(e)) if is_volatile(e) => {
                return Err(Fail::Unsupported(format!(
                    "adding column `{name}` with default `{e}`: the existing rows get values the target cannot reproduce"
                )))
            }
            Some(ColumnDefault::CurrentTimestamp(_)) if spec.column.generated.is_none() => {
                self.note(format!(
                    "existing rows of `{t}` get the current time in new column `{name}` when the target runs the statement, not when the source ran it"
                ));
            }
            _ => {}
        }
        for n in &spec.notes {
            self.note(n.clone());
        }
        let table = self.state.table_mut(&t)?;
        let at = match &position {
            None => table.columns.len(),
            Some(Position::First) => 0,
            Some(Position::After(after)) => {
                column_pos(table, after).ok_or_else(|| {
                    Fail::Unsupported(format!("unknown column `{after}` of `{t}`"))
                })? + 1
            }
        };
        table.columns.insert(at, spec.column.clone());
        renumber(table);
        self.model_changed = true;
        self.columns_changed = true;

        let target = self.state.target(&t);
        let target_col = self.state.opts.target_column(&t, &name);
        if position.is_some() {
            self.note(format!(
                "column `{name}` is added at the end of `{target}` in PostgreSQL; the source's column order is kept in the model"
            ));
        }
        let (planned, objects) = self.plan_column(&t, &name)?;
        let qualified = self.state.qualified(&t);
        let col_object = format!("{target}.{target_col}");
        if spec.column.generated.is_some() {
            for s in planned.plan.post_data.iter().filter(|s| {
                s.object == col_object
                    && matches!(
                        s.kind,
                        StatementKind::GeneratedColumn | StatementKind::Comment
                    )
            }) {
                self.out.statements.push(s.sql.clone());
            }
        } else {
            let definition = objects.definition.clone().ok_or_else(|| {
                Fail::Unsupported(format!("column `{name}` cannot be added to `{t}`"))
            })?;
            let mut sql = format!("ALTER TABLE {qualified} ADD COLUMN {definition}");
            let mut drop_default = false;
            if !spec.column.nullable && objects.default.is_none() {
                let mapping = planned
                    .plan
                    .tables
                    .first()
                    .and_then(|p| p.column(&name))
                    .and_then(|c| c.mapping.as_ref());
                if let Some(value) = mapping.and_then(implicit_default) {
                    // The source gives existing rows the type's implicit default.
                    sql.push_str(" DEFAULT ");
                    sql.push_str(&value);
                    drop_default = true;
                }
            }
            if let Some((_, clause)) = &objects.check {
                sql.push(' ');
                sql.push_str(clause);
            }
            self.out.statements.push(sql);
            if drop_default {
                self.out.statements.push(format!(
                    "ALTER TABLE {qualified} ALTER COLUMN {} DROP DEFAULT",
                    quote_ident(&target_col)
                ));
            }
            for s in planned
                .plan
                .pre_data
                .iter()
                .filter(|s| s.object == col_object && s.kind == StatementKind::Comment)
            {
                self.out.statements.push(s.sql.clone());
            }
        }
        if let Some((check, _)) = &objects.check {
            self.state.taken.constraints_of(&target).reserve(check);
        }
        self.state
            .objects
            .entry(t.clone())
            .or_default()
            .columns
            .insert(name.clone(), objects);
        self.column_key(spec.key, &name)
    }

    /// A key declared on a column (`ADD c int UNIQUE`).
    fn column_key(&mut self, key: Option<ColumnKey>, name: &str) -> Result<(), Fail> {
        let spec = match key {
            None => return Ok(()),
            Some(ColumnKey::Primary) => KeySpec::Primary(vec![name.to_string()]),
            Some(ColumnKey::Unique) => KeySpec::Index {
                name: None,
                index: dts_core::Index {
                    name: String::new(),
                    unique: true,
                    kind: dts_core::IndexKind::BTree,
                    columns: vec![dts_core::IndexColumn {
                        name: name.to_string(),
                        prefix_length: None,
                        descending: false,
                    }],
                },
            },
        };
        let key = ParsedKey {
            spec,
            if_not_exists: false,
        };
        add_key_to(
            self.state,
            &self.table,
            key,
            self.flavor,
            false,
            &mut self.out,
        )?;
        Ok(())
    }

    fn drop_column(&mut self, name: &str, if_exists: bool) -> Result<(), Fail> {
        let t = self.table.clone();
        let target = self.state.target(&t);
        let qualified = self.state.qualified(&t);
        let column_sql = self.state.column_sql(&t, name);
        let table = self.state.table_mut(&t)?;
        let Some((column, dropped)) = drop_column(table, name) else {
            if if_exists {
                return Ok(());
            }
            return Err(Fail::Unsupported(format!(
                "unknown column `{name}` of `{t}`"
            )));
        };
        if table.columns.is_empty() {
            return Err(Fail::Unsupported(format!(
                "dropping the last column of `{t}`"
            )));
        }
        self.model_changed = true;
        self.columns_changed = true;
        // A column of a type the mapping refuses was never created in the target.
        if dts_typemap::map_mysql_column(&column, &self.state.opts.mapping).is_ok() {
            self.out
                .statements
                .push(format!("ALTER TABLE {qualified} DROP COLUMN {column_sql}"));
        }

        // PostgreSQL drops the constraints, indexes and sequence that used the column;
        // the source only took the column out of its keys.
        let schema = target.schema.clone();
        let objects = self.state.objects.entry(t.clone()).or_default();
        let col = objects.columns.remove(&column.name).unwrap_or_default();
        let mut release_constraints: Vec<String> = col.check.iter().map(|c| c.0.clone()).collect();
        let mut release_relations: Vec<String> = col.sequence.iter().map(|s| s.0.clone()).collect();
        if dropped.primary_key {
            if let Some(p) = objects.pkey.take() {
                release_relations.push(p.clone());
                release_constraints.push(p);
            }
        }
        for i in dropped.removed.iter().chain(&dropped.shrunk) {
            if let Some(n) = objects.indexes.remove(i) {
                release_relations.push(n);
            }
        }
        if let Some(g) = self.state.generated.get_mut(&t) {
            for i in &dropped.removed {
                g.remove(i);
            }
        }
        for f in &dropped.foreign_keys {
            if let Some(n) = objects.foreign_keys.remove(f) {
                release_constraints.push(n);
            }
        }
        for n in release_relations {
            self.state.taken.relations_in(&schema).release(&n);
        }
        for n in release_constraints {
            self.state.taken.constraints_of(&target).release(&n);
        }
        if dropped.primary_key && self.state.table(&t)?.primary_key.is_some() {
            create_primary_key(self.state, &t, &mut self.out)?;
        }
        for i in &dropped.shrunk {
            create_index(self.state, &t, i, &mut self.out)?;
        }
        Ok(())
    }

    /// `MODIFY` (`old` is the defined column) and `CHANGE old new …`.
    fn change_column(
        &mut self,
        old: &str,
        def: &[Tok],
        position: Option<Position>,
        if_exists: bool,
    ) -> Result<(), Fail> {
        let t = self.table.clone();
        let Some(pos) = column_pos(self.state.table(&t)?, old) else {
            if if_exists {
                return Ok(());
            }
            return Err(Fail::Unsupported(format!(
                "unknown column `{old}` of `{t}`"
            )));
        };
        let before = self.state.table(&t)?.columns[pos].clone();
        // Without a character set the column gets the table's; the column's own is the
        // best guess of it.
        let inherited = Inherited {
            charset: before.charset.clone(),
            collation: before.collation.clone(),
        };
        let spec: ColumnSpec = parse_column(self.sql, def, self.flavor, &inherited)?;
        for n in &spec.notes {
            self.note(n.clone());
        }
        let mut after = spec.column.clone();
        let renamed = !after.name.eq_ignore_ascii_case(&before.name);
        if !renamed {
            after.name.clone_from(&before.name);
        }
        let label = format!("`{}`", clause_text(self.sql, def));
        if renamed && column_pos(self.state.table(&t)?, &after.name).is_some() {
            return Err(Fail::Unsupported(format!(
                "{label}: column `{}` already exists in `{t}`",
                after.name
            )));
        }
        if before.generated.is_some() || after.generated.is_some() {
            let same = before.generated == after.generated
                && before.source_type == after.source_type
                && before.nullable == after.nullable;
            if !same && !self.same_engine {
                return Err(Fail::Unsupported(format!(
                    "{label} changes generated column `{}`; PostgreSQL cannot change a generation expression in place",
                    before.name
                )));
            }
        }
        if after.auto_increment && !before.auto_increment {
            self.note(format!(
                "column `{}` of `{t}` becomes auto_increment: existing zero values are renumbered by the source, not by the target",
                after.name
            ));
        }
        let opts = self.state.opts.clone();
        let old_mapping = dts_typemap::map_mysql_column(&before, &opts.mapping)
            .map_err(|e| Fail::Unsupported(format!("{label}: column `{}`: {e}", before.name)))?;
        let new_mapping = dts_typemap::map_mysql_column(&after, &opts.mapping)
            .map_err(|e| Fail::Unsupported(format!("{label}: {e}")))?;
        let old_target_col = opts.target_column(&t, &before.name);
        let qualified = self.state.qualified(&t);
        let target = self.state.target(&t);

        // The model first: the column in its new place, keys following a rename.
        {
            let table = self.state.table_mut(&t)?;
            table.columns.remove(pos);
            let at = match &position {
                None => pos,
                Some(Position::First) => 0,
                Some(Position::After(x)) => {
                    column_pos(table, x).ok_or_else(|| {
                        Fail::Unsupported(format!("unknown column `{x}` of `{t}`"))
                    })? + 1
                }
            };
            table.columns.insert(at, after.clone());
            renumber(table);
        }
        if renamed {
            self.rename_references(&before.name, &after.name)?;
        }
        if position.is_some() {
            self.note(format!(
                "the position of column `{}` is not kept in `{target}`; the source's column order is kept in the model",
                after.name
            ));
        }
        self.model_changed = true;
        self.columns_changed = true;
        let new_target_col = self.state.opts.target_column(&t, &after.name);
        let col = quote_ident(&new_target_col);

        let old_objects = self
            .state
            .objects
            .get(&t)
            .and_then(|o| o.columns.get(&before.name))
            .cloned()
            .unwrap_or_default();
        let old_kind = old_objects.sequence.as_ref().map(|s| s.1);
        // Plan the new column against the names taken, its own check and (if its
        // mechanism changes) sequence names freed.
        let mut taken: TakenNames = self.state.taken.clone();
        let check_changed = old_mapping.check != new_mapping.check;
        if check_changed {
            if let Some((n, _)) = &old_objects.check {
                taken.constraints_of(&target).release(n);
            }
        }
        let planned = self
            .state
            .plan_variant(bare(self.state.table(&t)?), &opts, taken.clone());
        let object = format!("{t}.{}", after.name);
        problems(&planned.plan, |p| p.object == object, &mut self.out)?;
        let new_objects = planned
            .objects
            .get(&t)
            .and_then(|o| o.columns.get(&after.name))
            .cloned()
            .unwrap_or_default();
        let new_kind = new_objects.sequence.as_ref().map(|s| s.1);
        let mechanism_changed = old_kind != new_kind;
        let (new_objects, planned) = if mechanism_changed && old_objects.sequence.is_some() {
            // Plan again with the old sequence name free, so the new one may take it.
            if let Some((s, _)) = &old_objects.sequence {
                taken.relations_in(&target.schema).release(s);
            }
            let planned = self
                .state
                .plan_variant(bare(self.state.table(&t)?), &opts, taken);
            let objects = planned
                .objects
                .get(&t)
                .and_then(|o| o.columns.get(&after.name))
                .cloned()
                .unwrap_or_default();
            (objects, planned)
        } else {
            (new_objects, planned)
        };

        let mut statements = Vec::new();
        let alter_col = |what: &str| format!("ALTER TABLE {qualified} ALTER COLUMN {col} {what}");
        if old_target_col != new_target_col {
            statements.push(format!(
                "ALTER TABLE {qualified} RENAME COLUMN {} TO {col}",
                quote_ident(&old_target_col)
            ));
        }
        if check_changed {
            if let Some((n, _)) = &old_objects.check {
                statements.push(format!(
                    "ALTER TABLE {qualified} DROP CONSTRAINT IF EXISTS {}",
                    quote_ident(n)
                ));
            }
        }
        if mechanism_changed {
            match (&old_objects.sequence, old_kind) {
                (Some(_), Some(true)) => statements.push(alter_col("DROP IDENTITY IF EXISTS")),
                (Some((seq, _)), Some(false)) => {
                    statements.push(alter_col("DROP DEFAULT"));
                    statements.push(format!(
                        "DROP SEQUENCE IF EXISTS {}",
                        quote_qualified(&target.schema, seq)
                    ));
                }
                _ => {}
            }
        }
        let type_changed = old_mapping.target != new_mapping.target;
        let mut dependents: Vec<String> = if type_changed {
            self.state
                .table(&t)?
                .columns
                .iter()
                .filter(|c| {
                    c.generated
                        .as_ref()
                        .is_some_and(|g| expression_uses(&g.expression, &before.name))
                })
                .map(|c| c.name.clone())
                .collect()
        } else {
            Vec::new()
        };
        let old_default = if old_kind == Some(false) {
            None
        } else {
            old_objects.default.clone()
        };
        let new_default = if new_kind == Some(false) {
            None
        } else {
            new_objects.default.clone()
        };
        let mut default_dropped = false;
        if type_changed && old_default.is_some() {
            statements.push(alter_col("DROP DEFAULT"));
            default_dropped = true;
        }
        if type_changed || !bytes_kept(&old_mapping, &new_mapping) {
            if !bytes_kept(&old_mapping, &new_mapping) && !self.same_engine {
                return Err(Fail::Unsupported(format!(
                    "{label}: binary(n) pads values with zero bytes, which the target cannot reproduce"
                )));
            }
            let using = match conversion(&old_mapping, &new_mapping, &col) {
                Ok(using) => using,
                // The target converts the values itself, as the source did.
                Err(_) if self.same_engine => None,
                Err(why) => {
                    return Err(Fail::Unsupported(format!(
                        "{label} changes column `{}` from `{}` to `{}`: {why}",
                        before.name, before.source_type, after.source_type
                    )))
                }
            };
            if let Some(using) = using {
                // PostgreSQL cannot retype a column a generated column uses: those are
                // dropped first and added again after (the source recomputes them too).
                for g in &dependents {
                    statements.push(format!(
                        "ALTER TABLE {qualified} DROP COLUMN {}",
                        self.state.column_sql(&t, g)
                    ));
                }
                statements.push(alter_col(&format!(
                    "TYPE {} USING {using}",
                    new_mapping.target
                )));
            } else {
                dependents.clear();
            }
        }
        if before.nullable != after.nullable {
            statements.push(alter_col(if after.nullable {
                "DROP NOT NULL"
            } else {
                "SET NOT NULL"
            }));
        }
        match (&new_default, default_dropped || old_default != new_default) {
            (Some(d), true) => statements.push(alter_col(&format!("SET DEFAULT {d}"))),
            (None, true) if old_default.is_some() && !default_dropped => {
                statements.push(alter_col("DROP DEFAULT"));
            }
            _ => {}
        }
        if mechanism_changed {
            if let Some((seq, identity)) = &new_objects.sequence {
                let seq_q = quote_qualified(&target.schema, seq);
                if *identity {
                    statements.push(alter_col(&format!(
                        "ADD GENERATED BY DEFAULT AS IDENTITY (SEQUENCE NAME {seq_q})"
                    )));
                } else {
                    statements.push(format!("CREATE SEQUENCE {seq_q}"));
                    statements.push(alter_col(&format!(
                        "SET DEFAULT nextval({}::regclass)",
                        quote_literal(&seq_q)
                    )));
                    statements.push(format!("ALTER SEQUENCE {seq_q} OWNED BY {qualified}.{col}"));
                }
                let col_object = format!("{}.{}", target, new_target_col);
                for s in
                    planned.plan.post_data.iter().filter(|s| {
                        s.kind == StatementKind::SequenceReset && s.object == col_object
                    })
                {
                    statements.push(s.sql.clone());
                }
            }
        }
        if check_changed {
            if let Some((_, clause)) = &new_objects.check {
                statements.push(format!("ALTER TABLE {qualified} ADD {clause}"));
            }
        }
        if before.comment != after.comment {
            statements.push(format!(
                "COMMENT ON COLUMN {qualified}.{col} IS {}",
                after
                    .comment
                    .as_deref()
                    .map_or_else(|| "NULL".to_string(), quote_literal)
            ));
        }
        self.out.statements.extend(statements);

        // Names and objects.
        let schema = target.schema.clone();
        let mut objects = old_objects.clone();
        objects.definition = new_objects.definition.clone();
        objects.default = new_objects.default.clone();
        if check_changed {
            if let Some((n, _)) = &old_objects.check {
                self.state.taken.constraints_of(&target).release(n);
            }
            if let Some((n, _)) = &new_objects.check {
                self.state.taken.constraints_of(&target).reserve(n);
            }
            objects.check = new_objects.check.clone();
        }
        if mechanism_changed {
            if let Some((s, _)) = &old_objects.sequence {
                self.state.taken.relations_in(&schema).release(s);
            }
            if let Some((s, _)) = &new_objects.sequence {
                self.state.taken.relations_in(&schema).reserve(s);
            }
            objects.sequence = new_objects.sequence.clone();
        }
        let entry = self.state.objects.entry(t.clone()).or_default();
        entry.columns.remove(&before.name);
        entry.columns.insert(after.name.clone(), objects);
        if !dependents.is_empty() {
            self.add_generated_again(&dependents)?;
        }
        self.column_key(spec.key, &after.name)
    }

    /// Adds generated columns again after they were dropped for a type change of a column
    /// they use, with the indexes and primary key that contained them.
    fn add_generated_again(&mut self, columns: &[String]) -> Result<(), Fail> {
        let t = self.table.clone();
        let target = self.state.target(&t);
        let contains = |cols: Vec<&str>| {
            cols.iter()
                .any(|c| columns.iter().any(|g| g.eq_ignore_ascii_case(c)))
        };
        let table = self.state.table(&t)?;
        let pk = table
            .primary_key
            .as_ref()
            .is_some_and(|pk| contains(pk.columns.iter().map(String::as_str).collect()));
        let indexes: Vec<String> = table
            .indexes
            .iter()
            .filter(|i| contains(i.columns.iter().map(|c| c.name.as_str()).collect()))
            .map(|i| i.name.clone())
            .collect();
        // PostgreSQL dropped them with the columns.
        let objects = self.state.objects.entry(t.clone()).or_default();
        let mut relations = Vec::new();
        let mut constraints = Vec::new();
        if pk {
            if let Some(p) = objects.pkey.take() {
                relations.push(p.clone());
                constraints.push(p);
            }
        }
        for i in &indexes {
            relations.extend(objects.indexes.remove(i));
        }
        for g in columns {
            if let Some((n, _)) = objects.columns.get_mut(g).and_then(|c| c.check.take()) {
                constraints.push(n);
            }
        }
        for n in relations {
            self.state.taken.relations_in(&target.schema).release(&n);
        }
        for n in constraints {
            self.state.taken.constraints_of(&target).release(&n);
        }
        let planned = self.state.plan_variant(
            bare(self.state.table(&t)?),
            &self.state.opts,
            self.state.taken.clone(),
        );
        for g in columns {
            let object = format!("{target}.{}", self.state.opts.target_column(&t, g));
            for s in planned.plan.post_data.iter().filter(|s| {
                s.object == object
                    && matches!(
                        s.kind,
                        StatementKind::GeneratedColumn | StatementKind::Comment
                    )
            }) {
                self.out.statements.push(s.sql.clone());
            }
            if let Some((n, clause)) = planned
                .objects
                .get(&t)
                .and_then(|o| o.columns.get(g))
                .and_then(|c| c.check.clone())
            {
                self.state.taken.constraints_of(&target).reserve(&n);
                if let Some(c) = self
                    .state
                    .objects
                    .entry(t.clone())
                    .or_default()
                    .columns
                    .get_mut(g)
                {
                    c.check = Some((n, clause));
                }
            }
        }
        if pk {
            create_primary_key(self.state, &t, &mut self.out)?;
        }
        for i in &indexes {
            create_index(self.state, &t, i, &mut self.out)?;
        }
        Ok(())
    }

    /// Follows a column rename in the model: keys, foreign keys (also those of other
    /// tables referencing it), the option renames, the objects.
    fn rename_references(&mut self, old: &str, new: &str) -> Result<(), Fail> {
        let t = self.table.clone();
        let table = self.state.table(&t)?;
        if let Some(g) = table.columns.iter().find(|c| {
            c.generated
                .as_ref()
                .is_some_and(|g| expression_uses(&g.expression, old))
        }) {
            return Err(Fail::Unsupported(format!(
                "renaming column `{old}` of `{t}`, which generated column `{}` uses",
                g.name
            )));
        }
        let table = self.state.table_mut(&t)?;
        super::model::rename_column_refs(table, old, new, std::iter::empty());
        for other in self
            .state
            .catalog
            .schemas
            .iter_mut()
            .flat_map(|s| s.tables.iter_mut())
            .filter(|o| o.name != t)
        {
            for fk in &mut other.foreign_keys {
                if fk.referenced_table == t {
                    for c in &mut fk.referenced_columns {
                        if c.eq_ignore_ascii_case(old) {
                            *c = new.to_string();
                        }
                    }
                }
            }
        }
        let old_key = self
            .state
            .opts
            .column_renames
            .keys()
            .find(|(tt, c)| tt == &t && c.eq_ignore_ascii_case(old))
            .cloned();
        if let Some(k) = old_key {
            self.state.opts.column_renames.remove(&k);
        }
        Ok(())
    }

    fn rename_column(&mut self, old: &str, new: &str) -> Result<(), Fail> {
        let t = self.table.clone();
        let old = column_name(self.state.table(&t)?, old)?;
        if !old.eq_ignore_ascii_case(new) && column_pos(self.state.table(&t)?, new).is_some() {
            return Err(Fail::Unsupported(format!(
                "renaming column `{old}` of `{t}` to `{new}`, which exists"
            )));
        }
        let qualified = self.state.qualified(&t);
        let old_target = self.state.opts.target_column(&t, &old);
        let pos = column_pos(self.state.table(&t)?, &old).unwrap_or_default();
        self.state.table_mut(&t)?.columns[pos].name = new.to_string();
        self.rename_references(&old, new)?;
        let new_target = self.state.opts.target_column(&t, new);
        if old_target != new_target {
            self.out.statements.push(format!(
                "ALTER TABLE {qualified} RENAME COLUMN {} TO {}",
                quote_ident(&old_target),
                quote_ident(&new_target)
            ));
        }
        let objects = self.state.objects.entry(t).or_default();
        if let Some(o) = objects.columns.remove(&old) {
            objects.columns.insert(new.to_string(), o);
        }
        self.model_changed = true;
        self.columns_changed = true;
        Ok(())
    }

    fn rename_index(&mut self, old: &str, new: &str) -> Result<(), Fail> {
        let t = self.table.clone();
        let table = self.state.table_mut(&t)?;
        let pos = index_pos(table, old)
            .ok_or_else(|| Fail::Unsupported(format!("unknown index `{old}` of `{t}`")))?;
        if index_pos(table, new).is_some_and(|p| p != pos) {
            return Err(Fail::Unsupported(format!(
                "renaming index `{old}` of `{t}` to `{new}`, which exists"
            )));
        }
        let old_name = std::mem::replace(&mut table.indexes[pos].name, new.to_string());
        self.model_changed = true;
        if let Some(g) = self.state.generated.get_mut(&t) {
            if g.remove(&old_name) {
                g.insert(new.to_string());
            }
        }
        let target = self.state.target(&t);
        let Some(old_target) = self
            .state
            .objects
            .get_mut(&t)
            .and_then(|o| o.indexes.remove(&old_name))
        else {
            return Ok(());
        };
        let relations = self.state.taken.relations_in(&target.schema);
        relations.release(&old_target);
        let new_target = relations.claim(&index_base_name(&self.state.opts, &target.name, new));
        if new_target != old_target {
            self.out.statements.push(format!(
                "ALTER INDEX IF EXISTS {} RENAME TO {}",
                quote_qualified(&target.schema, &old_target),
                quote_ident(&new_target)
            ));
        }
        self.state
            .objects
            .entry(t)
            .or_default()
            .indexes
            .insert(new.to_string(), new_target);
        Ok(())
    }

    fn rename_table(&mut self, name: (Option<String>, String)) -> Result<(), Fail> {
        let to = match name {
            (Some(s), n) => TableName::new(s, n),
            (None, n) => match self.default_schema {
                Some(s) => TableName::new(s, n),
                None => TableName::new(self.table.schema.clone(), n),
            },
        };
        let to = if self.lower_case_table_names == 1 {
            TableName::new(to.schema.to_lowercase(), to.name.to_lowercase())
        } else {
            to
        };
        if to == self.table {
            return Ok(());
        }
        if !(self.selects)(&to) {
            return Err(Fail::Unsupported(format!(
                "`{}` is renamed to `{to}`, which is not selected",
                self.table
            )));
        }
        let from = self.table.clone();
        if self.columns_changed {
            // The trigger is planned under the table's current name.
            refresh_trigger(
                self.state,
                &from,
                self.trigger_before.as_deref(),
                &mut self.out,
            )?;
            self.columns_changed = false;
        }
        self.state.rename_table(&from, &to, &mut self.out)?;
        self.table = to;
        self.trigger_before = None;
        self.model_changed = true;
        Ok(())
    }

    fn set_default(&mut self, name: &str, expr: Option<&[Tok]>) -> Result<(), Fail> {
        let t = self.table.clone();
        let name = column_name(self.state.table(&t)?, name)?;
        let default = match expr {
            None => None,
            Some(toks) => {
                let dialect = MySqlDialect {};
                let mut p = Parser::new(&dialect)
                    .with_tokens_with_locations(toks.iter().map(Tok::with_span).collect());
                let e = p
                    .parse_expr()
                    .map_err(|e| Fail::Parse(format!("in the default of column `{name}`: {e}")))?;
                let end = p.index().min(toks.len());
                default_from(&e, text(self.sql, &toks[..end]))
            }
        };
        let pos = column_pos(self.state.table(&t)?, &name).unwrap_or_default();
        self.state.table_mut(&t)?.columns[pos].default = default;
        self.model_changed = true;
        let (_, new) = self.plan_column(&t, &name)?;
        let qualified = self.state.qualified(&t);
        let col = self.state.column_sql(&t, &name);
        self.out.statements.push(match &new.default {
            Some(d) => format!("ALTER TABLE {qualified} ALTER COLUMN {col} SET DEFAULT {d}"),
            None => format!("ALTER TABLE {qualified} ALTER COLUMN {col} DROP DEFAULT"),
        });
        let objects = self
            .state
            .objects
            .entry(t)
            .or_default()
            .columns
            .entry(name)
            .or_default();
        objects.default = new.default;
        objects.definition = new.definition;
        Ok(())
    }

    fn convert_charset(&mut self, charset: &str, collation: Option<String>) -> Result<(), Fail> {
        let t = self.table.clone();
        let table = self.state.table_mut(&t)?;
        for c in &mut table.columns {
            if c.charset.is_some() {
                c.charset = Some(charset.to_string());
                c.collation.clone_from(&collation);
            }
        }
        self.model_changed = true;
        self.note(format!(
            "`{t}` is converted to character set {charset}; text columns stay text in PostgreSQL"
        ));
        Ok(())
    }

    fn table_options(&mut self, toks: &[Tok]) -> Result<(), Fail> {
        let (opts, stop) = table_options(toks);
        if stop != toks.len() || stop == 0 {
            return Err(self.unsupported(toks, "is not supported"));
        }
        if let Some(what) = opts.unsupported {
            return Err(self.unsupported(toks, &format!("({what}) is not supported")));
        }
        let t = self.table.clone();
        let qualified = self.state.qualified(&t);
        if let Some(comment) = opts.comment {
            let comment = (!comment.is_empty()).then_some(comment);
            self.out.statements.push(format!(
                "COMMENT ON TABLE {qualified} IS {}",
                comment
                    .as_deref()
                    .map_or_else(|| "NULL".to_string(), quote_literal)
            ));
            self.state.table_mut(&t)?.comment = comment;
            self.model_changed = true;
        }
        if let Some(n) = opts.auto_increment {
            let table = self.state.table_mut(&t)?;
            table.auto_increment = Some(n);
            self.model_changed = true;
            if table.columns.iter().any(|c| c.auto_increment) {
                let planned = self.state.plan_variant(
                    bare(self.state.table(&t)?),
                    &self.state.opts,
                    self.state.taken.clone(),
                );
                for s in planned
                    .plan
                    .post_data
                    .iter()
                    .filter(|s| s.kind == StatementKind::SequenceReset)
                {
                    self.out.statements.push(s.sql.clone());
                }
            }
        }
        Ok(())
    }
}

/// Whether an expression mentions a column (as a word, quoted or not).
fn expression_uses(expression: &str, column: &str) -> bool {
    let lower = expression.to_ascii_lowercase();
    let name = column.to_ascii_lowercase();
    let word =
        |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    lower.match_indices(&name).any(|(i, _)| {
        !word(lower[..i].chars().next_back()) && !word(lower[i + name.len()..].chars().next())
    })
}
