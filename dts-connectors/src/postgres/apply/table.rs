//! Planning the writes of one table (keyed or not) and routing its row changes.

use std::fmt::Write as _;
use std::sync::Arc;

pub(super) use crate::apply::RowOp;
use bytes::BytesMut;
use dts_core::{Error, ErrorKind, Result, RowImage, TableName, Value};
use tokio_postgres::Client;

use super::keyed::{Keyed, Lazy};
use super::keyless::Keyless;
use super::params::{as_params, fields};
use super::{push_list, push_table};
use crate::postgres::cascade::{with_actions, Referenced};
use crate::postgres::copy::PgCopyEncoder;
use crate::postgres::error::map_error;
use crate::postgres::sink::{push_ident, target_columns};

/// How the changes of one table are written.
pub(super) struct TableState {
    pub(super) target: TableName,
    /// The columns written, in the order of the mapped images' values.
    pub(super) columns: Arc<Vec<String>>,
    /// Names of the key columns, for messages (empty without a key).
    pub(super) key_names: Vec<String>,
    /// Encoder of the written columns.
    pub(super) encoder: PgCopyEncoder,
    pub(super) mode: Mode,
    /// The foreign keys with an action that reference the table (none when the source
    /// logs what they change).
    pub(super) referenced: Referenced,
}

pub(super) enum Mode {
    Keyed(Box<Keyed>),
    Keyless(Keyless),
}

/// The key the sink coalesces a table's changes by: its primary key, else the smallest
/// unique index over `NOT NULL` columns without predicate or expression (the key the task
/// chose in the source maps to one of these); only when every column of it is written.
const SELECT_KEY: &str = "\
    SELECT array_agg(a.attname::text ORDER BY k.ord) \
    FROM pg_index i \
    CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
    WHERE i.indrelid = $1::text::regclass AND i.indisunique AND i.indisvalid \
      AND i.indpred IS NULL AND i.indexprs IS NULL \
    GROUP BY i.indexrelid, i.indisprimary, i.indnkeyatts \
    HAVING bool_and(a.attnotnull) AND bool_and(a.attname = ANY($2)) \
    ORDER BY i.indisprimary DESC, i.indnkeyatts, i.indexrelid LIMIT 1";

impl TableState {
    /// Plans the writes of target table `target` from the mapped column list `columns`:
    /// reads the columns' types and the key, and creates the staging table (keyed) or
    /// prepares the row statements (keyless).
    pub(super) async fn load(
        client: &Client,
        target: &TableName,
        columns: Arc<Vec<String>>,
        stage: String,
    ) -> Result<Self> {
        // A column of a type without a binary encoding here (arrays, `inet`, ranges,
        // `money`, `timetz`, …) is written as its text, which its input function reads.
        let copy_columns = target_columns(client, target, &columns, true).await?;
        let encoder = PgCopyEncoder::for_any_types(&copy_columns)?;
        let mut qualified = String::new();
        push_table(&mut qualified, target);
        let key_names: Vec<String> = client
            .query_opt(SELECT_KEY, &[&qualified, &*columns])
            .await
            .map_err(|e| map_error(e, format!("reading the key of `{target}`")))?
            .map(|r| r.get(0))
            .unwrap_or_default();
        let key: Vec<usize> = key_names
            .iter()
            .filter_map(|k| columns.iter().position(|c| c == k))
            .collect();
        let mut cols = String::new();
        push_list(&mut cols, "", columns.iter().map(String::as_str));
        let mode = if key.is_empty() {
            Mode::Keyless(
                Keyless::prepare(client, target, &columns, &cols, encoder.is_text()).await?,
            )
        } else {
            Mode::Keyed(Box::new(
                Keyed::create(client, target, &columns, &cols, &copy_columns, key, &stage).await?,
            ))
        };
        Ok(Self {
            target: target.clone(),
            columns,
            key_names,
            encoder,
            mode,
            referenced: Referenced::default(),
        })
    }

    pub(super) fn is_keyed(&self) -> bool {
        matches!(self.mode, Mode::Keyed(_))
    }

    /// The values of a mapped image, checked against the table's columns.
    pub(super) fn values(&self, image: &RowImage) -> Result<Vec<Value>> {
        self.check_width(image)?;
        Ok(image.values.clone())
    }

    /// Fails unless `image` has a value for each column.
    pub(super) fn check_width(&self, image: &RowImage) -> Result<()> {
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

    /// Whether the source's foreign key actions change other rows when it makes this change
    /// (always false when the source logs those rows).
    pub(super) fn acts_on_others(&mut self, op: &RowOp<'_>) -> Result<bool> {
        Ok(match op {
            RowOp::Insert(_) => false,
            RowOp::Delete(_) => self.referenced.on_delete,
            RowOp::Update(before, after) => {
                if self.referenced.on_update.is_empty() {
                    return Ok(false);
                }
                self.referenced.changes(before, after)
            }
        })
    }

    /// Writes one delete or update of a keyed table on its own, with the target's foreign
    /// key actions on. In the idempotence window the row's image before the change is
    /// written back first (without actions). Returns false when an update found no row.
    pub(super) async fn keyed_with_actions(
        &mut self,
        client: &Client,
        op: &RowOp<'_>,
        in_window: bool,
    ) -> Result<bool> {
        let (before, after) = match op {
            RowOp::Delete(row) => (*row, None),
            RowOp::Update(before, after) => (*before, Some(*after)),
            RowOp::Insert(_) => return Err(Error::internal("an insert acting on other rows")),
        };
        let old = self.values(before)?;
        let new = after.map(|a| self.values(a)).transpose()?;
        let Self {
            target,
            key_names,
            encoder,
            mode,
            ..
        } = self;
        let Mode::Keyed(k) = mode else {
            return Err(Error::internal("a table without key on the keyed path"));
        };
        let old_key = k.key_bytes(&old, target, before, key_names)?;
        let new_key = match (&new, after) {
            (Some(values), Some(image)) => Some(k.key_bytes(values, target, image, key_names)?),
            _ => None,
        };
        let what = || format!("applying a change with foreign key actions to `{target}`");
        let key_flags: Vec<bool> = (0..k.key.len()).map(|n| k.key_text(n)).collect();
        let key_text = |n: usize| key_flags.get(n).copied().unwrap_or(false);
        let text = k.text.clone();
        let row_text = |i: usize| text.get(i).copied().unwrap_or(false);
        let mut encode = |values: &[Value], image: &RowImage, out: &mut BytesMut| {
            for (i, v) in values.iter().enumerate() {
                encoder.encode_field(i, v, out).map_err(|e| {
                    e.context(format_args!(
                        "table `{target}` at key {}",
                        image.key_text(key_names)
                    ))
                })?;
            }
            Ok::<_, Error>(())
        };
        if in_window {
            let mut row = BytesMut::new();
            encode(&old, before, &mut row)?;
            let mut deletes = vec![fields(&old_key, key_text)];
            if let Some(new_key) = new_key.as_ref().filter(|n| **n != old_key) {
                deletes.push(fields(new_key, key_text));
            }
            let row = fields(&row, row_text);
            let delete_params: Vec<_> = deletes.iter().map(|p| as_params(p)).collect();
            // Rows copied under a later snapshot may hold the image's unique values.
            let conflicts = k.conflict_params(&row, &fields(&old_key, key_text));
            let conflict_params: Vec<_> =
                conflicts.iter().map(|(s, p)| (*s, as_params(p))).collect();
            let insert_params = as_params(&row);
            let requests = delete_params
                .iter()
                .map(|p| client.execute(&k.delete, p))
                .chain(conflict_params.iter().map(|(s, p)| client.execute(*s, p)))
                .chain(std::iter::once(client.execute(&k.insert, &insert_params)));
            futures::future::try_join_all(requests)
                .await
                .map_err(|e| map_error(e, what()))?;
        }
        let (Some(new), Some(after)) = (new, after) else {
            with_actions(
                client,
                &k.delete,
                &as_params(&fields(&old_key, key_text)),
                &what,
            )
            .await?;
            return Ok(true);
        };
        if let Lazy::Sql(sql) = &k.update {
            let statement = client
                .prepare(sql)
                .await
                .map_err(|e| map_error(e, format!("preparing the row changes of `{target}`")))?;
            k.update = Lazy::Prepared(statement);
        }
        let Lazy::Prepared(update) = &k.update else {
            return Err(Error::internal("update statement not prepared"));
        };
        let mut row = BytesMut::new();
        encode(&new, after, &mut row)?;
        if in_window {
            let new_fields = fields(&row, row_text);
            let conflicts = k.conflict_params(&new_fields, &fields(&old_key, key_text));
            let requests = conflicts
                .iter()
                .map(|(s, p)| (*s, as_params(p)))
                .collect::<Vec<_>>();
            futures::future::try_join_all(requests.iter().map(|(s, p)| client.execute(*s, p)))
                .await
                .map_err(|e| map_error(e, what()))?;
        }
        let mut params = fields(&row, row_text);
        params.extend(fields(&old_key, key_text));
        let rows = with_actions(client, update, &as_params(&params), &what).await?;
        Ok(rows > 0)
    }

    /// Applies an update whose after image carries only some of the table's columns (the
    /// source left the others as they were and did not send them: PostgreSQL's unchanged
    /// TOASTed values), setting by key only the columns it carries, so the target keeps
    /// its own values of the others. The caller writes out everything pending first.
    pub(super) async fn keyed_partial_update(
        &mut self,
        client: &Client,
        before: &RowImage,
        after: &RowImage,
    ) -> Result<()> {
        let old = self.values(before)?;
        let Self {
            target,
            columns,
            key_names,
            encoder,
            mode,
            ..
        } = self;
        let Mode::Keyed(k) = mode else {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "an update of `{target}` leaves unchanged large values out, which a table \
                     without a key cannot apply; set the source table's REPLICA IDENTITY to FULL"
                ),
            ));
        };
        let set = after
            .columns
            .iter()
            .map(|name| {
                columns.iter().position(|c| c == name).ok_or_else(|| {
                    Error::internal(format!(
                        "column `{name}` of an update is not a column of `{target}`"
                    ))
                })
            })
            .collect::<Result<Vec<usize>>>()?;
        let old_key = k.key_bytes(&old, target, before, key_names)?;
        let mut row = BytesMut::new();
        for (&i, v) in set.iter().zip(&after.values) {
            encoder.encode_field(i, v, &mut row).map_err(|e| {
                e.context(format_args!(
                    "table `{target}` at key {}",
                    after.key_text(key_names)
                ))
            })?;
        }
        let mut sql = String::from("UPDATE ");
        push_table(&mut sql, target);
        sql.push_str(" SET ");
        for (n, &i) in set.iter().enumerate() {
            if n > 0 {
                sql.push_str(", ");
            }
            push_ident(&mut sql, &columns[i]);
            let _ = write!(sql, " = ${}", n + 1);
        }
        sql.push_str(" WHERE ");
        for (n, &i) in k.key.iter().enumerate() {
            if n > 0 {
                sql.push_str(" AND ");
            }
            push_ident(&mut sql, &columns[i]);
            let _ = write!(sql, " = ${}", set.len() + n + 1);
        }
        let mut params = fields(&row, |n| set.get(n).is_some_and(|&i| k.text[i]));
        params.extend(fields(&old_key, |n| k.key_text(n)));
        client
            .execute(sql.as_str(), &as_params(&params))
            .await
            .map_err(|e| map_error(e, format!("applying an update to `{target}`")))?;
        Ok(())
    }

    /// Coalesces one change of a keyed table; returns the bytes it added. `in_window`:
    /// the change comes from before the idempotence window's end (see [`Keyed::window`]).
    pub(super) fn stage_change(&mut self, op: &RowOp<'_>, in_window: bool) -> Result<usize> {
        if let Mode::Keyed(k) = &mut self.mode {
            k.window |= in_window;
        }
        match op {
            RowOp::Insert(row) => {
                self.check_width(row)?;
                self.stage_row(false, row)
            }
            RowOp::Delete(row) => {
                self.check_width(row)?;
                self.stage_row(true, row)
            }
            RowOp::Update(before, after) => {
                self.check_width(before)?;
                self.check_width(after)?;
                let Mode::Keyed(k) = &mut self.mode else {
                    return Err(Error::internal("staging a change of a table without key"));
                };
                let old_key = k.key_bytes(&before.values, &self.target, before, &self.key_names)?;
                let new_key = k.key_bytes(&after.values, &self.target, after, &self.key_names)?;
                let mut added = 0;
                if old_key != new_key {
                    added += self.stage_row(true, before)?;
                }
                Ok(added + self.stage_row(false, after)?)
            }
        }
    }

    /// Records the final state of the key of `image`: deleted, or this row.
    pub(super) fn stage_row(&mut self, deleted: bool, image: &RowImage) -> Result<usize> {
        let Mode::Keyed(k) = &mut self.mode else {
            return Err(Error::internal("staging a change of a table without key"));
        };
        let key = k.key_bytes(&image.values, &self.target, image, &self.key_names)?;
        k.scratch.clear();
        k.stage_encoder
            .encode_row_and(&image.values, &Value::Bool(deleted), &mut k.scratch)
            .map_err(|e| {
                e.context(format_args!(
                    "table `{}` at key {}",
                    self.target,
                    image.key_text(&self.key_names)
                ))
            })?;
        let row = k.scratch.to_vec();
        let added = key.len() + row.len();
        k.pending.insert(key, row);
        Ok(added)
    }

    /// Applies one change of a table without key, in order; returns the bytes it buffered.
    pub(super) async fn keyless_change(
        &mut self,
        client: &Client,
        op: &RowOp<'_>,
        in_window: bool,
        buffer: &mut BytesMut,
    ) -> Result<usize> {
        let (old, new) = match op {
            RowOp::Insert(row) => (None, Some(self.values(row)?)),
            RowOp::Delete(row) => (Some(self.values(row)?), None),
            RowOp::Update(before, after) => (Some(self.values(before)?), Some(self.values(after)?)),
        };
        if old.is_some() && old == new {
            return Ok(0);
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
        let Self {
            encoder,
            mode,
            target,
            ..
        } = self;
        let Mode::Keyless(k) = mode else {
            return Err(Error::internal("a keyed table on the keyless path"));
        };
        let image = match op {
            RowOp::Insert(r) | RowOp::Delete(r) | RowOp::Update(r, _) => *r,
        };
        let context = || format!("table `{target}` (no key) at row {}", image.key_text(&[]));
        if old.is_none() {
            let values = new.unwrap_or_default();
            let start = k.inserts.len();
            encoder
                .encode_row(&values, &mut k.inserts)
                .map_err(|e| e.context(context()))?;
            k.insert_rows += 1;
            return Ok(k.inserts.len() - start);
        }
        k.flush(client, target, buffer).await?;
        k.params.clear();
        let mut values: Vec<&Value> = Vec::new();
        if let Some(new) = &new {
            values.extend(new);
        }
        if let Some(old) = &old {
            values.extend(old);
        }
        let width = encoder.column_count();
        for (i, v) in values.iter().enumerate() {
            encoder
                .encode_field(i % width, v, &mut k.params)
                .map_err(|e| e.context(context()))?;
        }
        let params = fields(&k.params, |i| encoder.is_text_column(i % width));
        let refs = as_params(&params);
        let (statement, what) = if new.is_some() {
            (&k.update, "update")
        } else {
            (&k.delete, "delete")
        };
        let n = client
            .execute(statement, &refs)
            .await
            .map_err(|e| map_error(e, format!("applying a row {what} to `{target}`")))?;
        if n == 0 {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "no row of `{target}` matches the source row to {what}: the target has \
                     diverged from the source"
                ),
            ));
        }
        Ok(0)
    }

    /// Writes out pending rows.
    pub(super) async fn flush(&mut self, client: &Client, buffer: &mut BytesMut) -> Result<()> {
        match &mut self.mode {
            Mode::Keyed(k) => k.flush(client, &self.target, buffer).await,
            Mode::Keyless(k) => k.flush(client, &self.target, buffer).await,
        }
    }

    /// Drops pending rows (the table is being truncated).
    pub(super) fn discard(&mut self) {
        match &mut self.mode {
            Mode::Keyed(k) => k.pending.clear(),
            Mode::Keyless(k) => {
                k.inserts.clear();
                k.insert_rows = 0;
            }
        }
    }

    /// The transaction committed: the staging table is empty again.
    pub(super) fn committed(&mut self) {
        if let Mode::Keyed(k) = &mut self.mode {
            k.used = false;
        }
    }
}
