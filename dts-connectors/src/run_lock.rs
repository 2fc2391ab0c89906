//! The watch over a task's run lock that both engines' state stores keep: the lock lives on a
//! session of its own, checked every second, and taken again on a new session when lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dts_core::{async_trait, Error, ErrorKind, Result};

/// How often the run lock is checked.
pub(crate) const RUN_LOCK_CHECK: Duration = Duration::from_secs(1);

/// A state store's run-lock session, as [`watch`] sees it.
#[async_trait]
pub(crate) trait RunLockSession: Sync {
    /// The task the lock belongs to.
    fn task(&self) -> &str;
    /// Whether this store took the lock (nothing is watched before).
    fn locked(&self) -> &AtomicBool;
    /// Whether the lock session still holds the lock.
    async fn holds_run_lock(&self) -> Result<bool>;
    /// Takes the lock again on a new session.
    async fn relock(&self) -> Result<()>;
}

/// Returns once the run lock is lost for good: checks it every [`RUN_LOCK_CHECK`], takes it
/// again when its session released it or was lost, and returns the error saying why when
/// that fails.
pub(crate) async fn watch(session: &dyn RunLockSession) -> Error {
    loop {
        tokio::time::sleep(RUN_LOCK_CHECK).await;
        if !session.locked().load(Ordering::SeqCst) {
            continue;
        }
        let why = match session.holds_run_lock().await {
            Ok(true) => continue,
            Ok(false) => "the lock was released",
            Err(e) if e.kind() == ErrorKind::Connection => "the connection holding it was lost",
            // A check that failed otherwise (the session busy in a failed transaction) says
            // nothing about the lock: ask again.
            Err(_) => continue,
        };
        let task = session.task();
        tracing::warn!(task, why, "run lock lost; taking it again");
        match session.relock().await {
            Ok(()) => tracing::info!(task, "run lock taken again"),
            Err(e) => {
                session.locked().store(false, Ordering::SeqCst);
                return Error::new(
                    e.kind(),
                    format!(
                        "the run lock of task `{task}` is no longer held ({why}) and could not \
                         be taken again: the run stops so that no second run writes alongside \
                         it; run the task again to resume"
                    ),
                )
                .with_source(e);
            }
        }
    }
}
