//! One target table: how its changes are written (its columns, key, the foreign keys with
//! actions that reference it) and its pending rows.

use std::collections::HashMap;
use std::sync::Arc;

pub(super) use crate::apply::RowOp;
use dts_core::{Error, ErrorKind, Result, RowImage, TableName};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::literal::{push_ident, push_literal};
use super::script::{Batch, Meta};
use crate::mysql::error::map_error;

/// Keys of one `DELETE … IN (…)` statement (the range optimizer's memory stays small).
const DELETE_KEYS: usize = 1000;

/// How a column is compared with a literal to find a row of a table without a key.
#[derive(Debug, Clone)]
enum Compare {
    /// `c <=> literal`.
    Plain,
    /// A MySQL `JSON` column: `c <=> CAST(literal AS JSON)`.
    Json,
    /// A character column: compared byte for byte in its character set,
    /// `c <=> CONVERT(literal USING cs) COLLATE cs_bin`, so that rows differing only in
    /// case or accents are told apart.
    Text(String),
}

/// The final state of one key in the pending rows of a keyed table.
#[derive(Debug)]
struct Final {
    /// Whether the key may hold a row in the target before the pending rows are written:
    /// its first pending change was not an insert (or the change is in the idempotence
    /// window). A key first inserted cannot: the target holds the source's rows as of the
    /// last write-out.
    existed: bool,
    /// The row's tuple literal, or `None` when the key ends deleted.
    row: Option<String>,
}

/// A change of a table without a key, in order.
#[derive(Debug)]
enum KeylessOp {
    /// Rows inserted: tuple literals.
    Insert(Vec<String>),
    /// A statement that must change exactly one row.
    One {
        sql: String,
        what: &'static str,
        row: String,
    },
}

#[derive(Debug)]
enum Pending {
    Keyed {
        /// Key literal → final state.
        rows: HashMap<String, Final>,
        /// Whether a pending change comes from before the idempotence window's end.
        window: bool,
    },
    Keyless(Vec<KeylessOp>),
}

/// The foreign keys with an action that reference a table.
#[derive(Debug, Default)]
pub(super) struct Referenced {
    /// Whether a delete acts on other rows.
    pub(super) on_delete: bool,
    /// The columns (indexes among the written columns) whose change acts on other rows.
    pub(super) on_update: Vec<usize>,
}

/// How the changes of one target table are written.
#[derive(Debug)]
pub(super) struct TableState {
    pub(super) target: TableName,
    /// `` `db`.`t` ``.
    qualified: String,
    /// The columns written, in the order of the mapped images' values.
    pub(super) columns: Arc<Vec<String>>,
    compare: Vec<Compare>,
    /// `` (`a`, `b`) ``.
    column_list: String,
    /// The key columns (indexes among `columns`); empty without a key.
    key: Vec<usize>,
    /// Names of the key columns, for messages (empty without a key).
    pub(super) key_names: Vec<String>,
    /// `` `a` `` or `` (`a`, `b`) ``.
    key_list: String,
    pub(super) referenced: Referenced,
    pending: Pending,
}

/// Whether a `DATA_TYPE` is a character type compared in a character set.
fn is_character(data_type: &str) -> bool {
    matches!(
        data_type,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext"
    )
}

impl TableState {
    /// Plans the writes of target table `target` from the mapped column list `columns`:
    /// reads the columns' types and the key (the primary key, else the smallest unique index
    /// over `NOT NULL` columns without prefix parts; every column of it written), and, when
    /// `cascades`, the foreign keys with actions that reference the table.
    pub(super) async fn load(
        conn: &mut Conn,
        target: &TableName,
        columns: Arc<Vec<String>>,
        cascades: bool,
    ) -> Result<Self> {
        let what = || format!("reading the columns of `{target}`");
        let types: Vec<(String, String, Option<String>, String)> = conn
            .exec(
                "SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_SET_NAME, IS_NULLABLE \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (target.schema.as_str(), target.name.as_str()),
            )
            .await
            .map_err(|e| map_error(e, what()))?;
        if types.is_empty() {
            return Err(Error::new(
                ErrorKind::Config,
                format!("target table `{target}` does not exist"),
            ));
        }
        let by_name: HashMap<&str, (&str, Option<&str>, bool)> = types
            .iter()
            .map(|(c, t, cs, n)| (c.as_str(), (t.as_str(), cs.as_deref(), n == "YES")))
            .collect();
        let mut compare = Vec::with_capacity(columns.len());
        for column in columns.iter() {
            let Some((data_type, charset, _)) = by_name.get(column.as_str()) else {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!("target table `{target}` has no column `{column}`"),
                ));
            };
            let data_type = data_type.to_ascii_lowercase();
            compare.push(match charset {
                _ if data_type == "json" => Compare::Json,
                Some(cs) if is_character(&data_type) && *cs != "binary" => {
                    Compare::Text((*cs).to_string())
                }
                _ => Compare::Plain,
            });
        }
        let stats: Vec<(String, i64, String, Option<i64>)> = conn
            .exec(
                "SELECT INDEX_NAME, NON_UNIQUE, COALESCE(COLUMN_NAME, ''), SUB_PART \
                 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
                 ORDER BY INDEX_NAME, SEQ_IN_INDEX",
                (target.schema.as_str(), target.name.as_str()),
            )
            .await
            .map_err(|e| map_error(e, format!("reading the keys of `{target}`")))?;
        let mut indexes: Vec<(String, Vec<usize>, bool)> = Vec::new();
        for (index, non_unique, column, sub_part) in stats {
            if non_unique != 0 {
                continue;
            }
            if indexes.last().is_none_or(|(name, _, _)| *name != index) {
                indexes.push((index.clone(), Vec::new(), true));
            }
            let Some((_, cols, usable)) = indexes.last_mut() else {
                continue;
            };
            let position = columns.iter().position(|c| *c == column);
            let not_null = by_name.get(column.as_str()).is_some_and(|(_, _, n)| !n);
            match position {
                Some(i) if sub_part.is_none() && (not_null || index == "PRIMARY") => cols.push(i),
                _ => *usable = false,
            }
        }
        let key: Vec<usize> = indexes
            .iter()
            .filter(|(_, cols, usable)| *usable && !cols.is_empty())
            .min_by_key(|(name, cols, _)| (*name != "PRIMARY", cols.len(), name.clone()))
            .map(|(_, cols, _)| cols.clone())
            .unwrap_or_default();
        let key_names: Vec<String> = key.iter().map(|&i| columns[i].clone()).collect();

        let mut qualified = String::new();
        push_ident(&mut qualified, &target.schema);
        qualified.push('.');
        push_ident(&mut qualified, &target.name);
        let mut column_list = String::from("(");
        for (i, c) in columns.iter().enumerate() {
            if i > 0 {
                column_list.push_str(", ");
            }
            push_ident(&mut column_list, c);
        }
        column_list.push(')');
        let mut key_list = String::new();
        if key.len() > 1 {
            key_list.push('(');
        }
        for (n, &i) in key.iter().enumerate() {
            if n > 0 {
                key_list.push_str(", ");
            }
            push_ident(&mut key_list, &columns[i]);
        }
        if key.len() > 1 {
            key_list.push(')');
        }
        let referenced = if cascades {
            Referenced::load(conn, target, &columns).await?
        } else {
            Referenced::default()
        };
        let pending = if key.is_empty() {
            Pending::Keyless(Vec::new())
        } else {
            Pending::Keyed {
                rows: HashMap::new(),
                window: false,
            }
        };
        Ok(Self {
            target: target.clone(),
            qualified,
            columns,
            compare,
            column_list,
            key,
            key_names,
            key_list,
            referenced,
            pending,
        })
    }

    pub(super) fn is_keyed(&self) -> bool {
        !self.key.is_empty()
    }

    /// Fails unless `image` has a value for each column.
    fn check_width(&self, image: &RowImage) -> Result<()> {
        if image.values.len() != self.columns.len() {
            return Err(Error::internal(format!(
                "a row image of `{}` has {} values for {} columns",
                self.target,
                image.values.len(),
                self.columns.len()
            )));
        }
        Ok(())
    }

    /// The error for a value of column `i` of `image` that no MySQL column holds.
    fn value_error(&self, image: &RowImage, i: usize, why: &str) -> Error {
        Error::new(
            ErrorKind::Value,
            format!(
                "the target cannot hold the value of column `{}` of `{}` at key {}: {why}",
                self.columns.get(i).map_or("?", String::as_str),
                self.target,
                image.key_text(&self.key_names)
            ),
        )
    }

    fn push_value(&self, out: &mut String, image: &RowImage, i: usize) -> Result<()> {
        push_literal(out, &image.values[i]).map_err(|why| self.value_error(image, i, why))
    }

    /// The row's tuple literal: `(v1, v2, …)`.
    fn row_literal(&self, image: &RowImage) -> Result<String> {
        self.check_width(image)?;
        let mut out = String::with_capacity(16 * image.values.len());
        out.push('(');
        for i in 0..image.values.len() {
            if i > 0 {
                out.push(',');
            }
            self.push_value(&mut out, image, i)?;
        }
        out.push(')');
        Ok(out)
    }

    /// The key's literal: the value of a one-column key, else `(v1, v2)`.
    fn key_literal(&self, image: &RowImage) -> Result<String> {
        self.check_width(image)?;
        let mut out = String::new();
        if self.key.len() > 1 {
            out.push('(');
        }
        for (n, &i) in self.key.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            self.push_value(&mut out, image, i)?;
        }
        if self.key.len() > 1 {
            out.push(')');
        }
        Ok(out)
    }

    /// `a = v1 AND b = v2` for the key of `image`.
    pub(super) fn key_condition(&self, image: &RowImage) -> Result<String> {
        let mut out = String::new();
        for (n, &i) in self.key.iter().enumerate() {
            if n > 0 {
                out.push_str(" AND ");
            }
            push_ident(&mut out, &self.columns[i]);
            out.push_str(" = ");
            self.push_value(&mut out, image, i)?;
        }
        Ok(out)
    }

    /// A condition that matches the rows equal to `image` in every written column.
    fn row_condition(&self, image: &RowImage) -> Result<String> {
        let mut out = String::new();
        for (i, compare) in self.compare.iter().enumerate() {
            if i > 0 {
                out.push_str(" AND ");
            }
            push_ident(&mut out, &self.columns[i]);
            out.push_str(" <=> ");
            let null = image.values[i].is_null();
            match compare {
                Compare::Json if !null => {
                    out.push_str("CAST(");
                    self.push_value(&mut out, image, i)?;
                    out.push_str(" AS JSON)");
                }
                Compare::Text(cs) if !null => {
                    out.push_str("CONVERT(");
                    self.push_value(&mut out, image, i)?;
                    out.push_str(" USING ");
                    out.push_str(cs);
                    out.push_str(") COLLATE ");
                    out.push_str(cs);
                    out.push_str("_bin");
                }
                _ => self.push_value(&mut out, image, i)?,
            }
        }
        Ok(out)
    }

    /// `SET a = v1, b = v2, …` from `image`.
    pub(super) fn assignments(&self, image: &RowImage) -> Result<String> {
        let mut out = String::from("SET ");
        for i in 0..self.columns.len() {
            if i > 0 {
                out.push_str(", ");
            }
            push_ident(&mut out, &self.columns[i]);
            out.push_str(" = ");
            self.push_value(&mut out, image, i)?;
        }
        Ok(out)
    }

    /// Whether the source's foreign key actions change other rows when it makes this change
    /// (never when the source logs those rows: nothing is loaded then).
    pub(super) fn acts_on_others(&self, op: &RowOp<'_>) -> bool {
        match op {
            RowOp::Insert(_) => false,
            RowOp::Delete(_) => self.referenced.on_delete,
            RowOp::Update(before, after) => {
                !self.referenced.on_update.is_empty()
                    && (before.columns != after.columns
                        || self
                            .referenced
                            .on_update
                            .iter()
                            .any(|&i| before.values.get(i) != after.values.get(i)))
            }
        }
    }

    /// Stages one change; returns the bytes it added. `in_window`: the change comes from
    /// before the idempotence window's end, where the target may already hold it.
    pub(super) fn stage(&mut self, op: &RowOp<'_>, in_window: bool) -> Result<usize> {
        if self.is_keyed() {
            self.stage_keyed(op, in_window)
        } else {
            self.stage_keyless(op, in_window)
        }
    }

    fn stage_keyed(&mut self, op: &RowOp<'_>, in_window: bool) -> Result<usize> {
        // (key, row) pairs to record, in order, and whether each key's first change may
        // find it in the target.
        let mut records: Vec<(String, Option<String>, bool)> = Vec::with_capacity(2);
        match op {
            RowOp::Insert(row) => {
                records.push((self.key_literal(row)?, Some(self.row_literal(row)?), false));
            }
            RowOp::Delete(row) => records.push((self.key_literal(row)?, None, true)),
            RowOp::Update(before, after) => {
                let old = self.key_literal(before)?;
                let new = self.key_literal(after)?;
                let row = Some(self.row_literal(after)?);
                if old == new {
                    records.push((new, row, true));
                } else {
                    records.push((old, None, true));
                    // The new key was free in the source: as for an insert.
                    records.push((new, row, false));
                }
            }
        }
        let Pending::Keyed { rows, window } = &mut self.pending else {
            return Err(Error::internal("a keyed change of a table without key"));
        };
        *window |= in_window;
        let mut added = 0;
        for (key, row, existed) in records {
            added += key.len() + row.as_ref().map_or(0, String::len);
            let entry = rows.entry(key).or_insert(Final {
                existed: existed || in_window,
                row: None,
            });
            entry.row = row;
        }
        Ok(added)
    }

    fn stage_keyless(&mut self, op: &RowOp<'_>, in_window: bool) -> Result<usize> {
        let (before, after) = match op {
            RowOp::Insert(row) => (None, Some(*row)),
            RowOp::Delete(row) => (Some(*row), None),
            RowOp::Update(before, after) => (Some(*before), Some(*after)),
        };
        if let (Some(b), Some(a)) = (before, after) {
            if b.values == a.values && b.columns == a.columns {
                return Ok(0);
            }
        }
        if in_window {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "changes to `{}`, a table without a primary or unique key, cannot be \
                     applied idempotently before the snapshot's consistency point; add a key \
                     or start replication at an exact snapshot position",
                    self.target
                ),
            ));
        }
        let op = match (before, after) {
            (None, Some(row)) => {
                let literal = self.row_literal(row)?;
                let added = literal.len();
                let Pending::Keyless(ops) = &mut self.pending else {
                    return Err(Error::internal("a keyless change of a keyed table"));
                };
                match ops.last_mut() {
                    Some(KeylessOp::Insert(rows)) => rows.push(literal),
                    _ => ops.push(KeylessOp::Insert(vec![literal])),
                }
                return Ok(added);
            }
            (Some(row), None) => {
                self.check_width(row)?;
                KeylessOp::One {
                    sql: format!(
                        "DELETE FROM {} WHERE {} LIMIT 1",
                        self.qualified,
                        self.row_condition(row)?
                    ),
                    what: "delete",
                    row: row.key_text(&[]),
                }
            }
            (Some(b), Some(a)) => {
                self.check_width(b)?;
                self.check_width(a)?;
                KeylessOp::One {
                    sql: format!(
                        "UPDATE {} {} WHERE {} LIMIT 1",
                        self.qualified,
                        self.assignments(a)?,
                        self.row_condition(b)?
                    ),
                    what: "update",
                    row: b.key_text(&[]),
                }
            }
            (None, None) => return Ok(0),
        };
        let KeylessOp::One { sql, .. } = &op else {
            return Ok(0);
        };
        let added = sql.len();
        let Pending::Keyless(ops) = &mut self.pending else {
            return Err(Error::internal("a keyless change of a keyed table"));
        };
        ops.push(op);
        Ok(added)
    }

    /// Whether rows are pending.
    pub(super) fn has_pending(&self) -> bool {
        match &self.pending {
            Pending::Keyed { rows, .. } => !rows.is_empty(),
            Pending::Keyless(ops) => !ops.is_empty(),
        }
    }

    /// Drops the pending rows (the table is being emptied).
    pub(super) fn discard(&mut self) {
        match &mut self.pending {
            Pending::Keyed { rows, window } => {
                rows.clear();
                *window = false;
            }
            Pending::Keyless(ops) => ops.clear(),
        }
    }

    /// Writes the pending rows out as statements of `batch`, in order: for a keyed table
    /// the deletes of every key that may hold a row, then the inserts of the final rows
    /// (before the idempotence window's end: the deletes of the keys that end deleted, then
    /// `REPLACE` of the final rows, which also removes rows that a later snapshot's copy
    /// left holding a final row's unique values); for a table without a key its changes
    /// in order.
    pub(super) fn flush(&mut self, batch: &mut Batch) {
        let target = self.target.clone();
        match std::mem::replace(&mut self.pending, Pending::Keyless(Vec::new())) {
            Pending::Keyed { rows, window } => {
                let mut deletes: Vec<String> = Vec::new();
                let mut finals: Vec<(String, String)> = Vec::new();
                for (key, f) in rows {
                    match f.row {
                        Some(row) => {
                            if f.existed && !window {
                                deletes.push(key.clone());
                            }
                            finals.push((key, row));
                        }
                        None if f.existed => deletes.push(key),
                        None => {}
                    }
                }
                for keys in deletes.chunks(DELETE_KEYS) {
                    let script = batch.current();
                    let start = script.begin_statement();
                    script.sql.push_str("DELETE FROM ");
                    script.sql.push_str(&self.qualified);
                    script.sql.push_str(" WHERE ");
                    script.sql.push_str(&self.key_list);
                    script.sql.push_str(" IN (");
                    for (n, key) in keys.iter().enumerate() {
                        if n > 0 {
                            script.sql.push(',');
                        }
                        script.sql.push_str(key);
                    }
                    script.sql.push(')');
                    script.end_statement(
                        start,
                        Meta::Plain(format!("applying deletes to `{target}`")),
                    );
                }
                let verb = if window { "REPLACE" } else { "INSERT" };
                self.write_rows(batch, verb, finals);
                self.pending = Pending::Keyed {
                    rows: HashMap::new(),
                    window: false,
                };
            }
            Pending::Keyless(ops) => {
                for op in ops {
                    match op {
                        KeylessOp::Insert(rows) => {
                            let rows = rows.into_iter().map(|r| (String::new(), r)).collect();
                            self.write_rows(batch, "INSERT", rows);
                        }
                        KeylessOp::One { sql, what, row } => batch.current().push(
                            &sql,
                            Meta::One {
                                table: target.clone(),
                                what,
                                row,
                            },
                        ),
                    }
                }
            }
        }
    }

    /// `INSERT`/`REPLACE` statements of `rows` (key literal, tuple literal), cut at
    /// [`Batch::statement_bytes`].
    fn write_rows(&self, batch: &mut Batch, verb: &str, rows: Vec<(String, String)>) {
        let cut = batch.statement_bytes();
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let script = batch.current();
            let start = script.begin_statement();
            script.sql.push_str(verb);
            script.sql.push_str(" INTO ");
            script.sql.push_str(&self.qualified);
            script.sql.push(' ');
            script.sql.push_str(&self.column_list);
            script.sql.push_str(" VALUES ");
            let prefix = start..script.sql.len();
            let mut ranges = Vec::new();
            let mut keys = Vec::new();
            while let Some((key, row)) =
                rows.next_if(|_| ranges.is_empty() || script.sql.len() - prefix.end < cut)
            {
                if !ranges.is_empty() {
                    script.sql.push(',');
                }
                let from = script.sql.len();
                script.sql.push_str(&row);
                ranges.push(from..script.sql.len());
                keys.push(key);
            }
            let mut key_names = String::new();
            for (n, k) in self.key_names.iter().enumerate() {
                if n > 0 {
                    key_names.push_str(", ");
                }
                key_names.push_str(k);
            }
            script.end_statement(
                start,
                Meta::Rows {
                    table: self.target.clone(),
                    key_names,
                    prefix,
                    rows: ranges,
                    keys,
                },
            );
        }
    }

    /// The statements that write back `image`, the row of a key before a change, in the
    /// idempotence window (the target may hold a later state of the key): delete the
    /// key (and `also`, the key the change moves it to), then insert it.
    pub(super) fn write_back(
        &self,
        batch: &mut Batch,
        image: &RowImage,
        also: Option<&RowImage>,
    ) -> Result<()> {
        let mut keys = vec![self.key_literal(image)?];
        if let Some(other) = also {
            let k = self.key_literal(other)?;
            if k != keys[0] {
                keys.push(k);
            }
        }
        batch.current().push(
            &format!(
                "DELETE FROM {} WHERE {} IN ({})",
                self.qualified,
                self.key_list,
                keys.join(",")
            ),
            Meta::Plain(format!("applying a change to `{}`", self.target)),
        );
        let row = self.row_literal(image)?;
        self.write_rows(batch, "REPLACE", vec![(keys.swap_remove(0), row)]);
        Ok(())
    }

    /// An update that sets only the columns `after` carries (a source that leaves values an
    /// update did not change out of its after image, as PostgreSQL does with large ones),
    /// found by the key of `before`: the target keeps its own values of the others.
    pub(super) fn partial_update_statement(
        &self,
        before: &RowImage,
        after: &RowImage,
    ) -> Result<String> {
        if !self.is_keyed() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "an update of `{}` leaves unchanged large values out, which a table \
                     without a key cannot apply; set the source table's REPLICA IDENTITY to FULL",
                    self.target
                ),
            ));
        }
        self.check_width(before)?;
        let mut set = String::from("SET ");
        for (n, (name, value)) in after.columns.iter().zip(&after.values).enumerate() {
            if !self.columns.contains(name) {
                return Err(Error::internal(format!(
                    "column `{name}` of an update is not a column of `{}`",
                    self.target
                )));
            }
            if n > 0 {
                set.push_str(", ");
            }
            push_ident(&mut set, name);
            set.push_str(" = ");
            push_literal(&mut set, value).map_err(|why| {
                Error::new(
                    ErrorKind::Value,
                    format!(
                        "the target cannot hold the value of column `{name}` of `{}` at key {}: \
                         {why}",
                        self.target,
                        before.key_text(&self.key_names)
                    ),
                )
            })?;
        }
        Ok(format!(
            "UPDATE {} {set} WHERE {}",
            self.qualified,
            self.key_condition(before)?
        ))
    }

    /// A statement changing one row as `op` does (a delete, or an update of every column),
    /// found by its key, or for a table without a key by every column (`LIMIT 1`).
    pub(super) fn single_statement(&self, op: &RowOp<'_>) -> Result<String> {
        let (find, set) = match op {
            RowOp::Delete(row) => (*row, None),
            RowOp::Update(before, after) => (*before, Some(*after)),
            RowOp::Insert(_) => return Err(Error::internal("an insert acting on other rows")),
        };
        self.check_width(find)?;
        let condition = if self.is_keyed() {
            self.key_condition(find)?
        } else {
            format!("{} LIMIT 1", self.row_condition(find)?)
        };
        Ok(match set {
            None => format!("DELETE FROM {} WHERE {condition}", self.qualified),
            Some(after) => {
                self.check_width(after)?;
                format!(
                    "UPDATE {} {} WHERE {condition}",
                    self.qualified,
                    self.assignments(after)?
                )
            }
        })
    }
}

impl Referenced {
    /// Reads the foreign keys that reference target table `target` with an action (cascade,
    /// set null, set default), whose written columns are `names`.
    async fn load(conn: &mut Conn, target: &TableName, names: &[String]) -> Result<Self> {
        let rows: Vec<(String, String, String)> = conn
            .exec(
                "SELECT rc.DELETE_RULE, rc.UPDATE_RULE, k.REFERENCED_COLUMN_NAME \
                 FROM information_schema.REFERENTIAL_CONSTRAINTS rc \
                 JOIN information_schema.KEY_COLUMN_USAGE k \
                   ON k.CONSTRAINT_SCHEMA = rc.CONSTRAINT_SCHEMA \
                  AND k.CONSTRAINT_NAME = rc.CONSTRAINT_NAME \
                  AND k.TABLE_NAME = rc.TABLE_NAME \
                 WHERE k.REFERENCED_TABLE_SCHEMA = ? AND k.REFERENCED_TABLE_NAME = ?",
                (target.schema.as_str(), target.name.as_str()),
            )
            .await
            .map_err(|e| {
                map_error(
                    e,
                    format!("reading the foreign keys referencing `{target}`"),
                )
            })?;
        let acts = |rule: &str| {
            matches!(
                rule.to_ascii_uppercase().as_str(),
                "CASCADE" | "SET NULL" | "SET DEFAULT"
            )
        };
        let mut out = Self::default();
        for (on_delete, on_update, column) in rows {
            out.on_delete |= acts(&on_delete);
            if acts(&on_update) {
                if let Some(i) = names.iter().position(|n| *n == column) {
                    if !out.on_update.contains(&i) {
                        out.on_update.push(i);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// A short text for messages: at most 120 characters.
pub(super) fn shortened(text: &str) -> String {
    if text.chars().count() > 120 {
        let cut: String = text.chars().take(117).collect();
        format!("{cut}...")
    } else {
        text.to_string()
    }
}
