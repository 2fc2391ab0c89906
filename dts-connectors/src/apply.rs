//! What the apply sinks of every target engine share: reading a batch as source
//! transactions, and comparing positions in one log.

use dts_core::{ChangeEvent, Error, Position, Result};

/// Whether `a` is at or before `b` in the same log.
pub(crate) fn at_or_before(a: &Position, b: &Position) -> bool {
    a.log_cmp(b).is_some_and(|o| o.is_le())
}

/// Splits a batch into transactions, each ending with a commit or DDL event.
pub(crate) fn split_transactions(events: &[ChangeEvent]) -> Result<Vec<&[ChangeEvent]>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, e) in events.iter().enumerate() {
        if e.change.ends_transaction() {
            out.push(&events[start..=i]);
            start = i + 1;
        }
    }
    if start != events.len() {
        return Err(Error::internal(
            "a batch of changes ends inside a transaction",
        ));
    }
    Ok(out)
}
