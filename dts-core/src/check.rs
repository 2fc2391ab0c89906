//! Precheck results: everything that can be known before a task writes anything.
//!
//! Every check has a stable code, a status, a message naming the objects concerned and, when
//! it does not pass, the fix. Connectors contribute the checks only they can make (privileges,
//! log settings, values their engine holds); the task runner collects them in a
//! [`PrecheckReport`].

use std::fmt;

use serde::Serialize;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CheckStatus {
    /// Nothing to report.
    Pass,
    /// Worth knowing; does not stop the task.
    Warn,
    /// Stops the task.
    Fail,
    /// Not run, because a check it depends on failed.
    Skipped,
}

impl fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pass => "pass",
            Self::Warn => "warn",
            Self::Fail => "FAIL",
            Self::Skipped => "skip",
        })
    }
}

/// One precheck item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckItem {
    /// Stable code, e.g. `target.conflicting_tables`.
    pub code: &'static str,
    /// The outcome.
    pub status: CheckStatus,
    /// What was found, naming the objects concerned.
    pub message: String,
    /// How to fix it (empty when the check passed).
    pub fix: String,
}

/// The result of a precheck run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PrecheckReport {
    /// The items, in the order they ran.
    pub items: Vec<CheckItem>,
}

impl PrecheckReport {
    /// Whether no item failed.
    pub fn passed(&self) -> bool {
        !self.items.iter().any(|i| i.status == CheckStatus::Fail)
    }

    /// The failed items.
    pub fn failures(&self) -> impl Iterator<Item = &CheckItem> {
        self.items.iter().filter(|i| i.status == CheckStatus::Fail)
    }

    /// Adds every item of `other`, in order.
    pub fn extend(&mut self, other: PrecheckReport) {
        self.items.extend(other.items);
    }

    /// The item with `code`, if it ran.
    pub fn item(&self, code: &str) -> Option<&CheckItem> {
        self.items.iter().find(|i| i.code == code)
    }

    /// Adds an item; the fix is dropped when the item passed.
    pub fn push(
        &mut self,
        code: &'static str,
        status: CheckStatus,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.items.push(CheckItem {
            code,
            status,
            message: message.into(),
            fix: if status == CheckStatus::Pass {
                String::new()
            } else {
                fix.into()
            },
        });
    }

    /// Adds a passing item.
    pub fn pass(&mut self, code: &'static str, message: impl Into<String>) {
        self.push(code, CheckStatus::Pass, message, "");
    }
}

impl fmt::Display for PrecheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for item in &self.items {
            writeln!(f, "[{:>4}] {:<28} {}", item.status, item.code, item.message)?;
            if !item.fix.is_empty() {
                writeln!(f, "       {:<28} fix: {}", "", item.fix)?;
            }
        }
        let failed = self.failures().count();
        if failed == 0 {
            write!(f, "precheck passed ({} checks)", self.items.len())
        } else {
            write!(
                f,
                "precheck failed: {failed} of {} checks failed",
                self.items.len()
            )
        }
    }
}
