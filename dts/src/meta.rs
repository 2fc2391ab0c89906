//! The task's state in the target: a small `dts_meta` schema recording what each task has
//! done, so an interrupted task resumes and a finished one is not run twice.

use dts_connectors::postgres::map_error;
use dts_core::Result;
use tokio_postgres::GenericClient;

/// The schema holding dts's state in the target.
pub const META_SCHEMA: &str = "dts_meta";

/// Creates the metadata schema and tables if they do not exist.
pub(crate) async fn ensure(client: &impl GenericClient) -> Result<()> {
    client
        .batch_execute(
            "CREATE SCHEMA IF NOT EXISTS dts_meta;
             CREATE TABLE IF NOT EXISTS dts_meta.step (
                 task text NOT NULL,
                 step text NOT NULL,
                 done_at timestamptz NOT NULL DEFAULT now(),
                 PRIMARY KEY (task, step)
             );",
        )
        .await
        .map_err(|e| map_error(e, "creating the dts_meta schema in the target"))
}

/// Whether `step` of `task` is recorded as done. A missing metadata schema means no.
pub(crate) async fn is_done(client: &impl GenericClient, task: &str, step: &str) -> Result<bool> {
    let exists: bool = client
        .query_one("SELECT to_regclass('dts_meta.step') IS NOT NULL", &[])
        .await
        .map_err(|e| map_error(e, "reading task state"))?
        .get(0);
    if !exists {
        return Ok(false);
    }
    let row = client
        .query_opt(
            "SELECT 1 FROM dts_meta.step WHERE task = $1 AND step = $2",
            &[&task, &step],
        )
        .await
        .map_err(|e| map_error(e, "reading task state"))?;
    Ok(row.is_some())
}

/// Records `step` of `task` as done; meant to run in the same transaction as the step.
pub(crate) async fn mark_done(client: &impl GenericClient, task: &str, step: &str) -> Result<()> {
    client
        .execute(
            "INSERT INTO dts_meta.step (task, step) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&task, &step],
        )
        .await
        .map_err(|e| map_error(e, "recording task state"))?;
    Ok(())
}

const KEPT_PREFIX: &str = "kept:";

/// Records that target table `table` existed before the task and was kept (conflict policy
/// `ignore`); meant to run in the pre-data transaction.
pub(crate) async fn mark_kept(
    client: &impl GenericClient,
    task: &str,
    table: &dts_core::TableName,
) -> Result<()> {
    let key = format!(
        "{KEPT_PREFIX}{}",
        serde_json::to_string(table).map_err(|e| {
            dts_core::Error::internal("cannot encode a table name").with_source(e)
        })?
    );
    mark_done(client, task, &key).await
}

/// The target tables recorded by [`mark_kept`].
pub(crate) async fn kept_tables(
    client: &impl GenericClient,
    task: &str,
) -> Result<std::collections::BTreeSet<dts_core::TableName>> {
    let rows = client
        .query(
            "SELECT substr(step, $2) FROM dts_meta.step WHERE task = $1 AND step LIKE 'kept:%'",
            &[&task, &i32::try_from(KEPT_PREFIX.len() + 1).unwrap_or(6)],
        )
        .await
        .map_err(|e| map_error(e, "reading task state"))?;
    rows.iter()
        .map(|r| {
            serde_json::from_str(r.get::<_, &str>(0)).map_err(|e| {
                dts_core::Error::internal("recorded table name is not readable").with_source(e)
            })
        })
        .collect()
}
