//! The schema steps: pre-data (one transaction, recorded inside it) and post-data (generated
//! columns, then indexes in parallel, then foreign keys, triggers and sequence values; each
//! statement recorded as it completes, so a rerun continues).
//!
//! Every statement is retried on a transient error (lost connection, deadlock, lock
//! timeout) until the task's retry window has passed since the first failure of a streak;
//! the target records a statement in the transaction that runs it, and runs nothing the
//! record says is done, so a retry never runs a statement twice.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use dts_connectors::Target;
use dts_core::{Error, ErrorKind, Result, TableName};
use dts_schema::{Phase, SchemaPlan, Statement, StatementKind};

use crate::task::{Run, Step};

/// On a task's first run (before its pre-data step is recorded), prepares the target tables
/// that already exist as `policy.conflicting_tables` says (`truncate`: emptied; `drop`:
/// dropped, to be created as planned) and returns the tables to keep as they are. A run
/// killed before the pre-data step is recorded prepares again: the dropped tables no longer
/// exist, the emptied ones are emptied again, before anything is copied.
pub(crate) async fn prepare_existing(
    config: &crate::config::TaskConfig,
    target: &dts_connectors::Target,
    plan: &crate::task::TaskPlan,
    found: BTreeSet<TableName>,
) -> Result<BTreeSet<TableName>> {
    use crate::config::ConflictPolicy;
    let conflicting: Vec<TableName> = plan
        .schema
        .tables
        .iter()
        .filter(|t| found.contains(&t.target))
        .map(|t| t.target.clone())
        .collect();
    match config.policy.conflicting_tables {
        ConflictPolicy::Truncate => {
            target.prepare_tables(&conflicting, false).await?;
            Ok(found)
        }
        ConflictPolicy::Drop => {
            target.prepare_tables(&conflicting, true).await?;
            Ok(found
                .into_iter()
                .filter(|t| !conflicting.contains(t))
                .collect())
        }
        _ => Ok(found),
    }
}

/// Runs the pre-data statements in one transaction recorded as done inside it.
pub(crate) async fn pre_data(run: &mut Run<'_>) -> Result<()> {
    let (todo, skipped) = select_statements(&run.plan.schema, Phase::PreData, &run.existing);
    let mut retry = Retry::new(run.config);
    loop {
        match run
            .target
            .execute_step(
                &run.config.name,
                Step::SchemaPreData.key(),
                &todo,
                &run.existing,
            )
            .await
        {
            Ok(()) => break,
            Err(e) => retry.after(e, &mut run.target, Session::Plain).await?,
        }
    }
    let events = run.events.clone();
    let emit = |e| {
        if let Some(tx) = &events {
            let _ = tx.send(e);
        }
    };
    for s in &todo {
        run.report.record_created(s, &emit);
    }
    for s in skipped {
        run.report.record_skipped(s, &emit);
    }
    Ok(())
}

/// Runs the post-data statements not run by an earlier run, then records the step done.
pub(crate) async fn post_data(run: &mut Run<'_>) -> Result<()> {
    let plan = run.plan.schema.clone();
    let (todo, skipped) = select_statements(&plan, Phase::PostData, &run.existing);
    // Generated columns first (indexes may cover them), then indexes in parallel, then
    // foreign keys, triggers and sequence values.
    let (generated, todo): (Vec<&Statement>, Vec<&Statement>) = todo
        .into_iter()
        .partition(|s| matches!(s.kind, StatementKind::GeneratedColumn));
    let (indexes, rest): (Vec<&Statement>, Vec<&Statement>) = todo.into_iter().partition(|s| {
        matches!(
            s.kind,
            StatementKind::PrimaryKey | StatementKind::Index | StatementKind::UniqueIndex
        )
    });
    let events = run.events.clone();
    let emit = |e| {
        if let Some(tx) = &events {
            let _ = tx.send(e);
        }
    };
    for s in generated {
        if execute_recorded(&mut run.target, run.config, s, Session::Plain).await? {
            run.report.record_created(s, &emit);
        }
    }
    for s in execute_parallel(run, &indexes).await? {
        run.report.record_created(s, &emit);
    }
    for s in rest {
        if execute_recorded(&mut run.target, run.config, s, Session::Plain).await? {
            run.report.record_created(s, &emit);
        }
    }
    for s in skipped {
        run.report.record_skipped(s, &emit);
    }
    run.store.mark_done(Step::SchemaPostData.key()).await
}

/// What a connection was set up for, so a replacement is set up the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Session {
    /// As connected.
    Plain,
    /// For index builds ([`Target::prepare_index_builds`]).
    IndexBuilds,
}

/// Retries of one statement: transient errors are retried, with a growing pause, until the
/// task's retry window has passed since the first failure.
struct Retry {
    window: Duration,
    first_failure: Option<Instant>,
    delay: Duration,
}

impl Retry {
    fn new(config: &crate::config::TaskConfig) -> Self {
        Self {
            window: Duration::from_secs(config.incremental.retry_window_seconds),
            first_failure: None,
            delay: Duration::from_millis(50),
        }
    }

    /// Returns `e` unless it is transient and the window is still open; otherwise pauses.
    async fn pause(&mut self, e: Error) -> Result<()> {
        let first = *self.first_failure.get_or_insert_with(Instant::now);
        if !e.is_retryable() || first.elapsed() >= self.window {
            return Err(e);
        }
        tracing::warn!(error = %e.report(), "retrying a schema statement");
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(Duration::from_secs(5));
        Ok(())
    }

    /// As [`Retry::pause`]; after a lost connection, also replaces `target`'s connection
    /// (retrying that too).
    async fn after(&mut self, e: Error, target: &mut Target, session: Session) -> Result<()> {
        let lost = e.kind() == ErrorKind::Connection;
        self.pause(e).await?;
        if lost {
            *target = self.connect(target, session).await?;
        }
        Ok(())
    }

    /// Another connection like `target`'s, retried as [`Retry::pause`] allows.
    async fn connect(&mut self, target: &Target, session: Session) -> Result<Target> {
        loop {
            match reconnect(target, session).await {
                Ok(fresh) => return Ok(fresh),
                Err(e) => self.pause(e).await?,
            }
        }
    }
}

async fn reconnect(target: &Target, session: Session) -> Result<Target> {
    let fresh = target.reconnect().await?;
    if session == Session::IndexBuilds {
        fresh.prepare_index_builds().await?;
    }
    Ok(fresh)
}

/// Runs one post-data statement on `target` unless an earlier run did; records it in the
/// same transaction. Transient errors are retried. Returns whether it ran.
async fn execute_recorded(
    target: &mut Target,
    config: &crate::config::TaskConfig,
    s: &Statement,
    session: Session,
) -> Result<bool> {
    let key = format!("{}:{}", Step::SchemaPostData.key(), statement_key(s));
    let started = Instant::now();
    let mut retry = Retry::new(config);
    let ran = loop {
        match target.execute_once(&config.name, &key, s).await {
            Ok(ran) => break ran,
            Err(e) => retry.after(e, target, session).await?,
        }
    };
    if ran {
        tracing::debug!(object = %s.object, ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX), "post-data statement done");
    }
    Ok(ran)
}

/// Runs statements on as many connections as the task has workers (index builds), each
/// recorded as done. Returns the statements that ran.
async fn execute_parallel<'a>(
    run: &Run<'_>,
    statements: &[&'a Statement],
) -> Result<Vec<&'a Statement>> {
    if statements.is_empty() {
        return Ok(Vec::new());
    }
    let workers = run.config.full.workers().min(statements.len());
    let queue = std::sync::Mutex::new(statements.to_vec());
    let ran = std::sync::Mutex::new(Vec::new());
    let work = (0..workers).map(|_| async {
        let mut target = Retry::new(run.config)
            .connect(&run.target, Session::IndexBuilds)
            .await?;
        loop {
            let next = queue.lock().ok().and_then(|mut q| q.pop());
            let Some(s) = next else { break };
            if execute_recorded(&mut target, run.config, s, Session::IndexBuilds).await? {
                if let Ok(mut r) = ran.lock() {
                    r.push(s);
                }
            }
        }
        Ok::<_, Error>(())
    });
    futures::future::try_join_all(work).await?;
    Ok(ran.into_inner().unwrap_or_default())
}

/// A stable key for a statement, so a rerun recognises statements already executed.
fn statement_key(s: &Statement) -> String {
    // FNV-1a over the SQL text: stable across runs and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.sql.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The statements of `phase` to run, and those skipped because their table (or, for a
/// foreign key, the table it references) already existed in the target (only reachable with
/// conflict policy `ignore`; otherwise the precheck failed).
fn select_statements<'a>(
    plan: &'a SchemaPlan,
    phase: Phase,
    existing: &BTreeSet<TableName>,
) -> (Vec<&'a Statement>, Vec<&'a Statement>) {
    let list = match phase {
        Phase::PreData => &plan.pre_data,
        _ => &plan.post_data,
    };
    let references: Vec<String> = existing
        .iter()
        .map(|t| {
            format!(
                " REFERENCES {}.{} ",
                dts_schema::quote_ident(&t.schema),
                dts_schema::quote_ident(&t.name)
            )
        })
        .collect();
    list.iter().partition(|s| {
        let own = s.table.as_ref().is_none_or(|t| !existing.contains(t));
        let parent_existed = s.kind == StatementKind::ForeignKey
            && references.iter().any(|r| s.sql.contains(r.as_str()));
        own && !parent_existed
    })
}
