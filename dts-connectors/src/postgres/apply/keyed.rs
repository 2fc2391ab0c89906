//! Keyed tables: changes coalesced per key, written through a staging table.

use std::collections::HashMap;
use std::fmt::Write as _;

use bytes::BytesMut;
use dts_core::{Error, Result, RowImage, TableName, Value};
use tokio_postgres::{Client, Statement};

use super::params::{as_params, fields, Encoded};
use super::{push_table, send_copy};
use crate::postgres::copy::{PgCopyColumn, PgCopyEncoder};
use crate::postgres::error::map_error;
use crate::postgres::sink::push_ident;

/// Pending keys of a table up to which it is written with row statements rather than
/// through its staging table.
const SMALL_FLUSH_ROWS: usize = 16;
/// `boolean`, the staging tables' deletion flag.
const BOOL_OID: u32 = 16;

/// Whether a valid, non-partial index of table `$1` (a quoted qualified name) leads with
/// the `$3` columns named in `$2`, in any order.
const KEY_INDEXED: &str = "\
    SELECT EXISTS ( \
        SELECT 1 FROM pg_index i \
        WHERE i.indrelid = $1::text::regclass AND i.indisvalid AND i.indpred IS NULL \
          AND i.indnkeyatts >= $3::int \
          AND (SELECT count(*) FROM generate_series(0, $3::int - 1) g \
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[g] \
               WHERE a.attname = ANY($2)) = $3::int)";

/// The unique indexes of table `$1` (a quoted qualified name) over plain columns, all among
/// the `$2` columns: each one's key columns, in index order.
const SELECT_UNIQUES: &str = "\
    SELECT array_agg(a.attname::text ORDER BY k.ord) \
    FROM pg_index i \
    CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
    WHERE i.indrelid = $1::text::regclass AND i.indisunique \
      AND i.indpred IS NULL AND i.indexprs IS NULL AND k.ord <= i.indnkeyatts \
    GROUP BY i.indexrelid \
    HAVING bool_and(a.attname = ANY($2)) \
    ORDER BY i.indexrelid";

/// A unique index of a keyed table other than its key, for resolving conflicts in the
/// idempotence window (see [`Keyed::window`]).
pub(super) struct Unique {
    /// Indexes of its columns among the copied columns.
    pub(super) columns: Vec<usize>,
    /// `DELETE` of the rows holding the given values in these columns, except the row of
    /// the given key: the unique values, then the key values.
    pub(super) delete: Statement,
}

/// A keyed table: coalesced final states, written through a staging table.
pub(super) struct Keyed {
    /// Indexes of the key columns among the copied columns.
    pub(super) key: Vec<usize>,
    /// Per copied column, whether it has no binary encoding (its values are sent as text).
    pub(super) text: Vec<bool>,
    /// Encoder of the key columns (the coalescing map's keys).
    pub(super) key_encoder: PgCopyEncoder,
    /// Encoder of staging rows: the copied columns, then the deletion flag.
    pub(super) stage_encoder: PgCopyEncoder,
    pub(super) copy: Statement,
    /// `DELETE` of one key, for small write-outs.
    pub(super) delete: Statement,
    /// `INSERT` of one row, for small write-outs.
    pub(super) insert: Statement,
    /// `UPDATE` of every copied column of one key (the new values, then the old key), for
    /// changes that act on other rows; prepared when first needed.
    pub(super) update: Lazy,
    /// `TRUNCATE` of the staging table (before its second use in a transaction).
    pub(super) clear_sql: String,
    /// `DELETE … USING staging; INSERT … SELECT … FROM staging`.
    pub(super) apply_sql: String,
    /// As `apply_sql`, deleting before the insert the target rows that hold a staged row's
    /// values in a unique index other than the key (see [`Keyed::window`]).
    pub(super) apply_resolving_sql: String,
    /// The table's unique indexes other than its key.
    pub(super) uniques: Vec<Unique>,
    /// Whether pending rows include changes from before the idempotence window's end.
    ///
    /// There the target may hold rows copied under a later snapshot than the change, and
    /// such a row can hold, in a secondary unique index, a value the replayed change puts on
    /// another key (in the source, the value moved from that key to the copied row's key
    /// between the change and the later snapshot). The copied row holds the value only
    /// through a change that comes later in the log, before the window ends, and replaying
    /// that change writes the whole row again (changes of keyed tables are written as the
    /// key's final row). So the conflicting row is deleted: the target then follows the
    /// source's order of states, and reaches its final state at the window's end. Past the
    /// window the target holds no later rows and a conflict is an error, as it should be.
    pub(super) window: bool,
    /// Whether the staging table holds rows of this transaction.
    pub(super) used: bool,
    /// Encoded key → encoded staging row.
    pub(super) pending: HashMap<Vec<u8>, Vec<u8>>,
    pub(super) scratch: BytesMut,
}

/// A statement prepared when first needed.
pub(super) enum Lazy {
    Sql(String),
    Prepared(Statement),
}

impl Keyed {
    pub(super) async fn create(
        client: &Client,
        target: &TableName,
        names: &[String],
        cols: &str,
        copy_columns: &[PgCopyColumn],
        key: Vec<usize>,
        stage: &str,
    ) -> Result<Self> {
        let mut flag = String::from("dts_deleted");
        while names.contains(&flag) {
            flag.push('_');
        }
        let mut stage_table = String::from("pg_temp.");
        push_ident(&mut stage_table, stage);
        let mut target_sql = String::new();
        push_table(&mut target_sql, target);
        let mut flag_sql = String::new();
        push_ident(&mut flag_sql, &flag);

        let mut stage_ident = String::new();
        push_ident(&mut stage_ident, stage);
        let create = format!(
            "DROP TABLE IF EXISTS {stage_table}; \
             CREATE TEMP TABLE {stage_ident} ON COMMIT DELETE ROWS AS \
             SELECT {cols}, false AS {flag_sql} FROM {target_sql} WITH NO DATA"
        );
        client
            .batch_execute(&create)
            .await
            .map_err(|e| map_error(e, format!("creating the staging table of `{target}`")))?;
        let key_columns: Vec<PgCopyColumn> = key.iter().map(|&i| copy_columns[i].clone()).collect();
        let mut stage_columns = copy_columns.to_vec();
        stage_columns.push(PgCopyColumn::new(flag.clone(), BOOL_OID, -1));
        let stage_encoder = PgCopyEncoder::for_any_types(&stage_columns)?;
        let text: Vec<bool> = (0..copy_columns.len())
            .map(|i| stage_encoder.is_text_column(i))
            .collect();
        let format = if stage_encoder.is_text() {
            ""
        } else {
            " (FORMAT binary)"
        };
        let copy = client
            .prepare(&format!(
                "COPY {stage_table} ({cols}, {flag_sql}) FROM STDIN{format}"
            ))
            .await
            .map_err(|e| map_error(e, format!("preparing the staging copy of `{target}`")))?;
        let mut on = String::new();
        for (n, &i) in key.iter().enumerate() {
            if n > 0 {
                on.push_str(" AND ");
            }
            let mut column = String::new();
            push_ident(&mut column, &names[i]);
            let _ = write!(on, "t.{column} = s.{column}");
        }
        // The staging table is never analysed, and the planner tends to join it to a large
        // target by a merge join over the target's whole key index. When an index leads
        // with the key, probing it once per staged key is far cheaper: force that plan.
        let key_names: Vec<String> = key.iter().map(|&i| names[i].clone()).collect();
        let key_len = i32::try_from(key.len()).unwrap_or(i32::MAX);
        let indexed: bool = client
            .query_one(KEY_INDEXED, &[&target_sql, &key_names, &key_len])
            .await
            .map_err(|e| map_error(e, format!("reading the indexes of `{target}`")))?
            .get(0);
        let delete = format!("DELETE FROM {target_sql} t USING {stage_table} s WHERE {on}");
        let delete = if indexed {
            format!(
                "SET LOCAL enable_mergejoin = off; SET LOCAL enable_hashjoin = off; {delete}; \
                 SET LOCAL enable_mergejoin TO DEFAULT; SET LOCAL enable_hashjoin TO DEFAULT"
            )
        } else {
            delete
        };
        let insert_sql = format!(
            "INSERT INTO {target_sql} ({cols}) SELECT {cols} FROM {stage_table} \
             WHERE NOT {flag_sql}"
        );
        let apply_sql = format!("{delete}; {insert_sql}");
        let uniques = Self::uniques(client, target, &target_sql, names, &key).await?;
        let mut resolve = String::new();
        for unique in &uniques {
            let mut on = String::new();
            for (n, &i) in unique.columns.iter().enumerate() {
                if n > 0 {
                    on.push_str(" AND ");
                }
                let mut column = String::new();
                push_ident(&mut column, &names[i]);
                let _ = write!(on, "t.{column} = s.{column}");
            }
            let _ = write!(
                resolve,
                "DELETE FROM {target_sql} t USING {stage_table} s WHERE NOT s.{flag_sql} AND {on}; "
            );
        }
        let apply_resolving_sql = format!("{delete}; {resolve}{insert_sql}");
        let mut by_key = String::new();
        for (n, &i) in key.iter().enumerate() {
            if n > 0 {
                by_key.push_str(" AND ");
            }
            push_ident(&mut by_key, &names[i]);
            let _ = write!(by_key, " = ${}", n + 1);
        }
        let delete = client
            .prepare(&format!("DELETE FROM {target_sql} WHERE {by_key}"))
            .await
            .map_err(|e| map_error(e, format!("preparing the row changes of `{target}`")))?;
        let mut sets = String::new();
        for (i, name) in names.iter().enumerate() {
            if i > 0 {
                sets.push_str(", ");
            }
            push_ident(&mut sets, name);
            let _ = write!(sets, " = ${}", i + 1);
        }
        let mut old_key = String::new();
        for (n, &i) in key.iter().enumerate() {
            if n > 0 {
                old_key.push_str(" AND ");
            }
            push_ident(&mut old_key, &names[i]);
            let _ = write!(old_key, " = ${}", names.len() + n + 1);
        }
        let update_sql = format!("UPDATE {target_sql} SET {sets} WHERE {old_key}");
        let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
        let insert = client
            .prepare(&format!(
                "INSERT INTO {target_sql} ({cols}) VALUES ({})",
                placeholders.join(", ")
            ))
            .await
            .map_err(|e| map_error(e, format!("preparing the row changes of `{target}`")))?;
        Ok(Self {
            key,
            text,
            key_encoder: PgCopyEncoder::for_any_types(&key_columns)?,
            stage_encoder,
            copy,
            delete,
            insert,
            update: Lazy::Sql(update_sql),
            clear_sql: format!("TRUNCATE {stage_table}"),
            apply_sql,
            apply_resolving_sql,
            uniques,
            window: false,
            used: false,
            pending: HashMap::new(),
            scratch: BytesMut::with_capacity(1024),
        })
    }

    /// The unique indexes of `target` other than the key `key`, over written columns.
    async fn uniques(
        client: &Client,
        target: &TableName,
        target_sql: &str,
        names: &[String],
        key: &[usize],
    ) -> Result<Vec<Unique>> {
        let rows = client
            .query(SELECT_UNIQUES, &[&target_sql, &names])
            .await
            .map_err(|e| map_error(e, format!("reading the unique indexes of `{target}`")))?;
        let mut key_set: Vec<usize> = key.to_vec();
        key_set.sort_unstable();
        let mut out = Vec::new();
        for row in rows {
            let columns: Vec<String> = row.get(0);
            let columns: Vec<usize> = columns
                .iter()
                .filter_map(|c| names.iter().position(|n| n == c))
                .collect();
            let mut set = columns.clone();
            set.sort_unstable();
            if set == key_set || out.iter().any(|u: &Unique| u.columns == columns) {
                continue;
            }
            let mut sql = format!("DELETE FROM {target_sql} WHERE ");
            for (n, &i) in columns.iter().enumerate() {
                push_ident(&mut sql, &names[i]);
                let _ = write!(sql, " = ${} AND ", n + 1);
            }
            sql.push_str("NOT (");
            for (n, &i) in key.iter().enumerate() {
                if n > 0 {
                    sql.push_str(" AND ");
                }
                push_ident(&mut sql, &names[i]);
                let _ = write!(sql, " = ${}", columns.len() + n + 1);
            }
            sql.push(')');
            let delete = client
                .prepare(&sql)
                .await
                .map_err(|e| map_error(e, format!("preparing the row changes of `{target}`")))?;
            out.push(Unique { columns, delete });
        }
        Ok(out)
    }

    /// Whether key column `n` (the `n`th of the key) is sent as text.
    pub(super) fn key_text(&self, n: usize) -> bool {
        self.key.get(n).is_some_and(|&i| self.text[i])
    }

    /// The parameters of each unique index's conflict `DELETE` for a row (its encoded
    /// fields) and the key it keeps (its encoded key fields).
    pub(super) fn conflict_params<'a>(
        &self,
        row: &[Encoded<'a>],
        key: &[Encoded<'a>],
    ) -> Vec<(&Statement, Vec<Encoded<'a>>)> {
        self.uniques
            .iter()
            .map(|u| {
                let params = u
                    .columns
                    .iter()
                    .map(|&i| row.get(i).copied().unwrap_or(Encoded(None, false)))
                    .chain(key.iter().copied())
                    .collect();
                (&u.delete, params)
            })
            .collect()
    }

    /// The encoded key of a converted row.
    pub(super) fn key_bytes(
        &mut self,
        values: &[Value],
        target: &TableName,
        image: &RowImage,
        key_names: &[String],
    ) -> Result<Vec<u8>> {
        self.scratch.clear();
        for (n, &i) in self.key.iter().enumerate() {
            self.key_encoder
                .encode_field(n, &values[i], &mut self.scratch)
                .map_err(|e| {
                    e.context(format_args!(
                        "table `{target}` at key {}",
                        image.key_text(key_names)
                    ))
                })?;
        }
        Ok(self.scratch.to_vec())
    }

    pub(super) async fn flush(
        &mut self,
        client: &Client,
        target: &TableName,
        buffer: &mut BytesMut,
    ) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let what = || format!("applying changes to `{target}`");
        let resolve = std::mem::take(&mut self.window) && !self.uniques.is_empty();
        // Staging rows in text format (some column has no binary encoding) are not split
        // into parameters: they always go through the staging table.
        if self.pending.len() <= SMALL_FLUSH_ROWS && !self.stage_encoder.is_text() {
            return self.flush_small(client, resolve, &what).await;
        }
        if self.used {
            client
                .batch_execute(&self.clear_sql)
                .await
                .map_err(|e| map_error(e, what()))?;
        }
        let rows = self.pending.len() as u64;
        buffer.clear();
        self.stage_encoder.write_start(buffer);
        let pending = std::mem::take(&mut self.pending);
        let text = self.stage_encoder.is_text();
        let copied = send_copy(
            client,
            &self.copy,
            buffer,
            pending.into_values(),
            text,
            &what,
        )
        .await?;
        if copied != rows {
            return Err(Error::internal(format!(
                "staging copy of `{target}` stored {copied} rows of {rows}"
            )));
        }
        self.used = true;
        let sql = if resolve {
            &self.apply_resolving_sql
        } else {
            &self.apply_sql
        };
        client
            .batch_execute(sql)
            .await
            .map_err(|e| map_error(e, what()))
    }
}

impl Keyed {
    /// Writes out a few pending keys with prepared statements, pipelined: the deletes of
    /// every touched key, then (with `resolve`, see [`Keyed::window`]) the deletes of rows
    /// that hold a final row's values in another unique index, then the inserts of the
    /// final rows. Fewer round trips and less server work than the staging table for a
    /// handful of rows.
    pub(super) async fn flush_small(
        &mut self,
        client: &Client,
        resolve: bool,
        what: &(dyn Fn() -> String + Sync),
    ) -> Result<()> {
        let pending = std::mem::take(&mut self.pending);
        let mut deletes: Vec<Vec<Encoded<'_>>> = Vec::with_capacity(pending.len());
        let mut inserts: Vec<Vec<Encoded<'_>>> = Vec::with_capacity(pending.len());
        let mut conflicts: Vec<(&Statement, Vec<Encoded<'_>>)> = Vec::new();
        for (key, row) in &pending {
            deletes.push(fields(key, |n| self.key_text(n)));
            // A staging row: field count, the copied columns, the deletion flag.
            let mut values = fields(row.get(2..).unwrap_or_default(), |i| {
                self.text.get(i).copied().unwrap_or(false)
            });
            let deleted = values.pop().and_then(|f| f.0) != Some(&[0u8][..]);
            if !deleted {
                if resolve {
                    conflicts
                        .extend(self.conflict_params(&values, &fields(key, |n| self.key_text(n))));
                }
                inserts.push(values);
            }
        }
        let delete_params: Vec<_> = deletes.iter().map(|p| as_params(p)).collect();
        let conflict_params: Vec<_> = conflicts.iter().map(|(s, p)| (*s, as_params(p))).collect();
        let insert_params: Vec<_> = inserts.iter().map(|p| as_params(p)).collect();
        let requests = delete_params
            .iter()
            .map(|p| client.execute(&self.delete, p))
            .chain(conflict_params.iter().map(|(s, p)| client.execute(*s, p)))
            .chain(
                insert_params
                    .iter()
                    .map(|p| client.execute(&self.insert, p)),
            );
        futures::future::try_join_all(requests)
            .await
            .map_err(|e| map_error(e, what()))?;
        Ok(())
    }
}
