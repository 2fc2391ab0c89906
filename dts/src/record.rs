//! The task record a run keeps up to date: its state at each step and at its end (with the
//! error and its fix on failure), a heartbeat, the progress `dts status` shows, and the stop
//! request `dts stop` leaves there.
//!
//! The heartbeat runs on a connection of its own, so a run busy in a long statement still
//! beats; it publishes progress at most once per beat.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dts_cdc::CdcEvent;
use dts_connectors::Target;
use dts_core::{
    Error, ErrorKind, PublishedProgress, ReplicationProgress, StateStore, TableLoad, TableName,
    TaskFailure, TaskState,
};
use dts_fullload::ProgressEvent;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::task::{TaskEvent, TaskPlan};

/// How often the running process beats (and publishes its progress).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// A heartbeat older than this means no process is alive to run the task (or it hangs).
pub const HEARTBEAT_STALE: Duration = Duration::from_secs(10);

/// What to do about a failure, by its kind: the line `dts status` shows under the error.
pub fn fix_for(e: &Error) -> String {
    match e.kind() {
        ErrorKind::Connection => {
            "check that the server named in the error is up and reachable from this machine \
             with the task's account, then run the task again: it resumes where it stopped"
        }
        ErrorKind::Privilege => {
            "grant the task's account the privilege named in the error, then run the task again"
        }
        ErrorKind::Precheck => {
            "run `dts precheck` with the task file and apply the fix it prints for each \
             failed check, then run the task again"
        }
        ErrorKind::Config => {
            "correct the task file or the setting named in the error, then run the task again"
        }
        ErrorKind::Unsupported => {
            "leave the object named in the error out (objects.exclude) or change it in the \
             source, then run the task again"
        }
        ErrorKind::Value => {
            "correct the value named in the error in the source, or let the task reject such \
             rows (full.bad_rows = \"reject\"), then run the task again"
        }
        ErrorKind::Conflict => {
            "resolve the conflict named in the error (an object that exists already, or \
             another run of the task), then run the task again"
        }
        ErrorKind::Io => "check the file or disk named in the error, then run the task again",
        ErrorKind::Interrupted => "run the task again: it resumes where it stopped",
        ErrorKind::Database | ErrorKind::Transient => {
            "correct the cause the server reports, then run the task again: it resumes where \
             it stopped"
        }
        _ => {
            "run the task again (it resumes where it stopped); if it fails the same way, \
             report the error with a log taken with DTS_LOG=debug"
        }
    }
    .to_string()
}

/// The record of a failed run.
pub(crate) fn failure(e: &Error) -> TaskFailure {
    TaskFailure {
        kind: e.kind().to_string(),
        message: e.report(),
        fix: fix_for(e),
    }
}

/// The progress a run publishes, updated from its events.
#[derive(Default)]
struct Shared {
    progress: PublishedProgress,
    /// Changed since the last beat.
    dirty: bool,
}

/// Keeps a run's published progress from its events, and the heartbeat that writes it.
pub(crate) struct Publisher {
    shared: Arc<Mutex<Shared>>,
    heartbeat: JoinHandle<()>,
    tee: Option<JoinHandle<()>>,
}

impl Publisher {
    /// Starts the heartbeat of task `task` on a connection of its own to `target`, which sets
    /// `stop` when the record asks the run to stop. Returns the publisher and the event
    /// channel the run sends to (passed on to `events`).
    pub(crate) async fn start(
        target: &Target,
        task: &str,
        plan: &TaskPlan,
        events: Option<mpsc::UnboundedSender<TaskEvent>>,
        stop: Arc<watch::Sender<bool>>,
    ) -> dts_core::Result<(Self, mpsc::UnboundedSender<TaskEvent>)> {
        let shared = Arc::new(Mutex::new(Shared {
            progress: PublishedProgress {
                pre_data_statements: plan.schema.pre_data.len() as u64,
                post_data_statements: plan.schema.post_data.len() as u64,
                ..PublishedProgress::default()
            },
            dirty: true,
        }));
        let targets: HashMap<TableName, TableName> = plan
            .schema
            .tables
            .iter()
            .map(|t| (t.source.clone(), t.target.clone()))
            .collect();
        let (tx, mut rx) = mpsc::unbounded_channel::<TaskEvent>();
        let tee_shared = shared.clone();
        let tee = tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                if let Ok(mut s) = tee_shared.lock() {
                    if update(&mut s.progress, &targets, &e) {
                        s.dirty = true;
                    }
                }
                if let Some(out) = &events {
                    let _ = out.send(e);
                }
            }
        });
        let target = target.reconnect().await?;
        let task = task.to_string();
        let beat_shared = shared.clone();
        let heartbeat = tokio::spawn(async move {
            let mut store: Option<Box<dyn StateStore>> = None;
            let mut ticks = tokio::time::interval(HEARTBEAT_INTERVAL);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if store.is_none() {
                    match target.state_store(&task).await {
                        Ok(s) => store = Some(s),
                        Err(e) => {
                            tracing::warn!(error = %e.report(), "heartbeat: cannot reach the target");
                            continue;
                        }
                    }
                }
                let progress = beat_shared
                    .lock()
                    .ok()
                    .and_then(|mut s| std::mem::take(&mut s.dirty).then(|| s.progress.clone()));
                let Some(st) = &store else { continue };
                match st.beat(progress.as_ref()).await {
                    Ok(true) => {
                        if !*stop.borrow() {
                            tracing::info!("a stop was requested through the task record");
                            eprintln!(
                                "stopping: a stop was requested (dts stop); finishing the work \
                                 in flight"
                            );
                        }
                        let _ = stop.send(true);
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e.report(), "heartbeat: cannot write the task record");
                        // Publish again with the next beat, on a new connection.
                        if let Ok(mut s) = beat_shared.lock() {
                            s.dirty |= progress.is_some();
                        }
                        store = None;
                    }
                }
            }
        });
        Ok((
            Self {
                shared,
                heartbeat,
                tee: Some(tee),
            },
            tx,
        ))
    }

    /// Ends the heartbeat and returns the last progress, once the run's event senders are
    /// dropped (the events sent before are counted).
    pub(crate) async fn finish(mut self) -> PublishedProgress {
        if let Some(tee) = self.tee.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), tee).await;
        }
        self.heartbeat.abort();
        let _ = (&mut self.heartbeat).await;
        self.shared
            .lock()
            .map(|s| s.progress.clone())
            .unwrap_or_default()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

/// Updates `progress` from one event; returns whether it changed.
fn update(
    progress: &mut PublishedProgress,
    targets: &HashMap<TableName, TableName>,
    e: &TaskEvent,
) -> bool {
    match e {
        TaskEvent::Progress(ProgressEvent::TablePlanned {
            table,
            chunks,
            estimated_rows,
            ..
        }) => {
            let load = TableLoad {
                source: table.clone(),
                target: targets.get(table).cloned().unwrap_or_else(|| table.clone()),
                chunks: *chunks as u64,
                estimated_rows: *estimated_rows,
            };
            match progress.tables.iter_mut().find(|t| t.source == *table) {
                Some(t) => *t = load,
                None => progress.tables.push(load),
            }
            true
        }
        TaskEvent::Replication(e) => {
            let r = progress
                .replication
                .get_or_insert_with(ReplicationProgress::default);
            match e {
                CdcEvent::Applied {
                    transactions,
                    rows,
                    lag,
                    rows_per_second,
                    ..
                } => {
                    r.transactions += transactions;
                    r.rows += rows;
                    r.lag_ms = u64::try_from(lag.as_millis()).unwrap_or(u64::MAX);
                    r.rows_per_second = *rows_per_second;
                    r.last_commit_unix_ms = SystemTime::now()
                        .checked_sub(*lag)
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .and_then(|d| u64::try_from(d.as_millis()).ok());
                }
                CdcEvent::Idle { .. } | CdcEvent::CaughtUp { .. } => {
                    r.lag_ms = 0;
                    r.rows_per_second = 0.0;
                }
                CdcEvent::Reconnecting { .. } => r.reconnections += 1,
                #[allow(unreachable_patterns)]
                _ => return false,
            }
            true
        }
        TaskEvent::Sampled(e) => {
            crate::checks::publish(progress.sampled.get_or_insert_with(Default::default), e);
            true
        }
        _ => false,
    }
}

/// The state store of a task run before, when no run of it is going on: a run about to
/// precheck records its state there. `None` on a first run, while another run holds the
/// task, or when the target cannot be reached (the precheck says why).
pub(crate) async fn earlier_record(config: &crate::TaskConfig) -> Option<Box<dyn StateStore>> {
    let target = Target::connect(&config.target.url).await.ok()?;
    let store = target.state_store(&config.name).await.ok()?;
    store.task_record().await.ok()??;
    if store.run_holder().await.ok()?.is_some() {
        return None;
    }
    Some(store)
}

/// Logs a failure to write the task record where the run goes on regardless.
pub(crate) fn note(written: dts_core::Result<()>) {
    if let Err(e) = written {
        tracing::warn!(error = %e.report(), "cannot update the task record");
    }
}

/// The state a run is in while it does `step`.
pub(crate) fn state_of(step: crate::Step) -> TaskState {
    match step {
        crate::Step::Precheck => TaskState::Prechecking,
        crate::Step::SchemaPreData | crate::Step::SchemaPostData => TaskState::Schema,
        crate::Step::FullLoad => TaskState::Full,
        crate::Step::Incremental => TaskState::Incremental,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dts_core::{Lsn, Position};

    #[test]
    fn events_fill_in_the_published_progress() {
        let src = TableName::new("shop", "orders");
        let dst = TableName::new("copy", "orders");
        let targets = HashMap::from([(src.clone(), dst.clone())]);
        let mut p = PublishedProgress::default();
        let planned = TaskEvent::Progress(ProgressEvent::TablePlanned {
            table: src.clone(),
            chunks: 7,
            chunks_done: 2,
            estimated_rows: 1000,
        });
        assert!(update(&mut p, &targets, &planned));
        assert!(update(&mut p, &targets, &planned));
        assert_eq!(p.tables.len(), 1);
        assert_eq!(p.tables[0].target, dst);
        assert_eq!(p.tables[0].chunks, 7);
        let applied = TaskEvent::Replication(CdcEvent::Applied {
            transactions: 3,
            rows: 30,
            position: Position::Lsn(Lsn(1)),
            lag: Duration::from_millis(1500),
            rows_per_second: 12.5,
        });
        assert!(update(&mut p, &targets, &applied));
        assert!(update(&mut p, &targets, &applied));
        let r = p.replication.clone().unwrap();
        assert_eq!((r.transactions, r.rows, r.lag_ms), (6, 60, 1500));
        let now = u64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap();
        let commit = r.last_commit_unix_ms.unwrap();
        assert!(
            commit <= now - 1500 && commit > now - 60_000,
            "{commit} vs {now}"
        );
        assert!(update(
            &mut p,
            &targets,
            &TaskEvent::Replication(CdcEvent::Idle { position: None })
        ));
        assert_eq!(p.replication.as_ref().unwrap().lag_ms, 0);
        assert!(!update(
            &mut p,
            &targets,
            &TaskEvent::StepFinished(crate::Step::FullLoad)
        ));
    }

    #[test]
    fn every_failure_has_a_fix() {
        for kind in [
            ErrorKind::Connection,
            ErrorKind::Precheck,
            ErrorKind::Internal,
        ] {
            let f = failure(&Error::new(kind, "x failed"));
            assert!(f.message.contains("x failed"));
            assert!(!f.fix.is_empty());
        }
    }
}
