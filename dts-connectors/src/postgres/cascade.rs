//! Foreign key actions the change log does not carry.
//!
//! MariaDB, and MySQL before 9.6, run `ON DELETE CASCADE` / `SET NULL` and `ON UPDATE
//! CASCADE` inside InnoDB and log only the rows a statement changed itself. The apply sink
//! writes with `session_replication_role = replica`, so PostgreSQL's foreign key triggers do
//! not run either. A source change that makes the source act on other rows — a delete of a
//! row of a table that foreign keys with an action reference, or an update of the columns
//! such keys reference — is therefore written on its own, in order, with the role set back
//! to `origin` for that one statement: PostgreSQL's referential triggers then do to the
//! target's rows what InnoDB did to the source's, through every level of a chain and in
//! self-referencing tables. Everything before it is written out first, so the target holds
//! the source's rows as they were when the source ran the statement.

use dts_core::{Result, RowImage, TableName};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use super::error::map_error;
use super::sink::push_ident;

/// Returns the role to `origin` for one statement.
const ORIGIN: &str = "SET LOCAL session_replication_role = origin";
/// Back to writing without triggers.
const REPLICA: &str = "SET LOCAL session_replication_role = replica";

/// Per foreign key referencing table `$1` (a quoted qualified name): whether it acts on
/// delete, whether it acts on update, and the referenced columns. Actions: `c` cascade,
/// `n` set null, `d` set default (`a` no action and `r` restrict change no rows).
const REFERENCING_KEYS: &str = "\
    SELECT c.confdeltype::text IN ('c', 'n', 'd'), c.confupdtype::text IN ('c', 'n', 'd'), \
           ARRAY(SELECT a.attname::text FROM pg_attribute a \
                 WHERE a.attrelid = c.confrelid AND a.attnum = ANY(c.confkey)) \
    FROM pg_constraint c \
    WHERE c.contype = 'f' AND c.confrelid = $1::text::regclass";

/// The foreign keys with an action that reference a table, as its rows' changes need.
#[derive(Debug, Default)]
pub(super) struct Referenced {
    /// Whether a delete acts on other rows.
    pub(super) on_delete: bool,
    /// The columns (indexes among the table's copied columns) whose change acts on other
    /// rows.
    pub(super) on_update: Vec<usize>,
}

impl Referenced {
    /// Reads the foreign keys referencing target table `target`, whose copied columns are
    /// `names` (target names, in plan order).
    pub(super) async fn load(
        client: &Client,
        target: &TableName,
        names: &[String],
    ) -> Result<Self> {
        let mut table = String::new();
        push_ident(&mut table, &target.schema);
        table.push('.');
        push_ident(&mut table, &target.name);
        let rows = client
            .query(REFERENCING_KEYS, &[&table])
            .await
            .map_err(|e| {
                map_error(
                    e,
                    format!("reading the foreign keys referencing `{target}`"),
                )
            })?;
        let mut out = Self::default();
        for row in rows {
            out.on_delete |= row.get::<_, bool>(0);
            if row.get::<_, bool>(1) {
                for column in row.get::<_, Vec<String>>(2) {
                    if let Some(i) = names.iter().position(|n| *n == column) {
                        if !out.on_update.contains(&i) {
                            out.on_update.push(i);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Whether an update from `before` to `after` (mapped images: values in the order of the
    /// written columns) changes a referenced column.
    pub(super) fn changes(&self, before: &RowImage, after: &RowImage) -> bool {
        if self.on_update.is_empty() {
            return false;
        }
        if before.columns != after.columns {
            return true;
        }
        before
            .values
            .iter()
            .zip(&after.values)
            .enumerate()
            .any(|(i, (old, new))| self.on_update.contains(&i) && old != new)
    }
}

/// Runs `statement` with the target's triggers on, foreign key actions included, in the
/// open transaction; returns the rows it changed. The three requests are pipelined.
pub(super) async fn with_actions(
    client: &Client,
    statement: &Statement,
    params: &[&(dyn ToSql + Sync)],
    what: &(dyn Fn() -> String + Sync),
) -> Result<u64> {
    let (_, rows, _) = futures::try_join!(
        client.batch_execute(ORIGIN),
        client.execute(statement, params),
        client.batch_execute(REPLICA),
    )
    .map_err(|e| map_error(e, what()))?;
    Ok(rows)
}

/// Turns the target's triggers on for the statements that follow, in the open
/// transaction.
pub(super) async fn triggers_on(client: &Client) -> Result<()> {
    client
        .batch_execute(ORIGIN)
        .await
        .map_err(|e| map_error(e, "setting session_replication_role to origin"))
}

/// Turns the target's triggers off again.
pub(super) async fn triggers_off(client: &Client) -> Result<()> {
    client
        .batch_execute(REPLICA)
        .await
        .map_err(|e| map_error(e, "setting session_replication_role to replica"))
}
