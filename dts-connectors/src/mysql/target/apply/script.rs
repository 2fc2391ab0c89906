//! Scripts: statements sent to the server at once (one multi-statement query, one round
//! trip), each with what it is, so that the rows it changed can be checked and a failure
//! named.

use std::ops::Range;

use dts_core::TableName;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

/// What a statement of a script is.
#[derive(Debug)]
pub(super) enum Meta {
    /// A statement whose row count does not matter; a failure names `what`.
    Plain(String),
    /// An `INSERT`/`REPLACE … VALUES` of rows of `table`: `prefix` is the statement's text
    /// up to its first row, `rows` each row's tuple and `keys` each row's key, in order.
    Rows {
        table: TableName,
        key_names: String,
        prefix: Range<usize>,
        rows: Vec<Range<usize>>,
        keys: Vec<String>,
    },
    /// A change of one row of a table without a key: it must change exactly one row.
    One {
        table: TableName,
        what: &'static str,
        row: String,
    },
    /// The applied position's compare-and-set.
    Position,
}

/// Statements sent at once.
#[derive(Debug, Default)]
pub(super) struct Script {
    pub(super) sql: String,
    pub(super) statements: Vec<(Range<usize>, Meta)>,
}

/// The statement of a script that failed, and the error.
#[derive(Debug)]
pub(super) struct Failed {
    pub(super) index: usize,
    pub(super) error: mysql_async::Error,
}

impl Script {
    pub(super) fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.sql.len()
    }

    /// Starts a statement: its text is written to [`Script::sql`] until
    /// [`Script::end_statement`].
    pub(super) fn begin_statement(&mut self) -> usize {
        if !self.sql.is_empty() {
            self.sql.push_str(";\n");
        }
        self.sql.len()
    }

    /// Ends the statement begun at `start`.
    pub(super) fn end_statement(&mut self, start: usize, meta: Meta) {
        self.statements.push((start..self.sql.len(), meta));
    }

    /// Appends a whole statement.
    pub(super) fn push(&mut self, sql: &str, meta: Meta) {
        let start = self.begin_statement();
        self.sql.push_str(sql);
        self.end_statement(start, meta);
    }

    /// Runs every statement, in order, in one round trip; returns each statement's affected
    /// rows (matched rows for updates: the apply session counts found rows). The server
    /// stops at the first failing statement: those before it have run.
    pub(super) async fn run(&self, conn: &mut Conn) -> Result<Vec<u64>, Failed> {
        let mut counts = Vec::with_capacity(self.statements.len());
        if self.statements.is_empty() {
            return Ok(counts);
        }
        let mut result = conn
            .query_iter(self.sql.as_str())
            .await
            .map_err(|error| Failed { index: 0, error })?;
        counts.push(result.affected_rows());
        loop {
            // Moves to the next statement's result (an OK packet; rows are skipped). A
            // failed statement's error is read with the move to it (which then looks like
            // the last result) and returned by the move after it.
            let last = result.is_empty();
            match result.next().await {
                Ok(Some(_)) => {}
                Ok(None) if last => break,
                Ok(None) => counts.push(result.affected_rows()),
                Err(error) => {
                    counts.pop();
                    return Err(Failed {
                        index: counts.len(),
                        error,
                    });
                }
            }
        }
        if counts.len() != self.statements.len() {
            return Err(Failed {
                index: counts.len().min(self.statements.len().saturating_sub(1)),
                error: mysql_async::Error::Driver(mysql_async::DriverError::UnexpectedPacket {
                    payload: format!(
                        "{} results for {} statements",
                        counts.len(),
                        self.statements.len()
                    )
                    .into_bytes(),
                }),
            });
        }
        Ok(counts)
    }
}

/// Statements waiting to be sent, in scripts of about `limit` bytes (a statement is never
/// split: one larger than the limit is a script of its own).
#[derive(Debug)]
pub(super) struct Batch {
    scripts: Vec<Script>,
    limit: usize,
}

impl Batch {
    pub(super) fn new(limit: usize) -> Self {
        Self {
            scripts: Vec::new(),
            limit,
        }
    }

    /// The size a statement of many rows is cut at: well within a script.
    pub(super) fn statement_bytes(&self) -> usize {
        (self.limit / 2).min(1 << 20)
    }

    /// The script the next statement goes to.
    pub(super) fn current(&mut self) -> &mut Script {
        if self.scripts.last().is_none_or(|s| s.len() >= self.limit) {
            self.scripts.push(Script::default());
        }
        let last = self.scripts.len() - 1;
        &mut self.scripts[last]
    }

    pub(super) fn is_empty(&self) -> bool {
        self.scripts.iter().all(Script::is_empty)
    }

    /// Whether a statement waiting must have its changed rows checked before the
    /// transaction may commit.
    pub(super) fn has_checks(&self) -> bool {
        self.scripts.iter().any(|s| {
            s.statements
                .iter()
                .any(|(_, meta)| matches!(meta, Meta::One { .. }))
        })
    }

    /// Takes the scripts, leaving the batch empty.
    pub(super) fn take(&mut self) -> Vec<Script> {
        std::mem::take(&mut self.scripts)
    }

    pub(super) fn clear(&mut self) {
        self.scripts.clear();
    }
}
