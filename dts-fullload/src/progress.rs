//! Typed progress events of a full load, and a tracker that turns them into per-table rows
//! done, rate and ETA.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dts_core::TableName;

/// Something that happened during a copy.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ProgressEvent {
    /// A table's chunks are planned.
    TablePlanned {
        /// The source table.
        table: TableName,
        /// Number of chunks.
        chunks: usize,
        /// Chunks done by earlier runs.
        chunks_done: usize,
        /// The server's row estimate.
        estimated_rows: u64,
    },
    /// A chunk was committed.
    ChunkDone {
        /// The source table.
        table: TableName,
        /// The chunk number.
        chunk: u32,
        /// Rows written.
        rows: u64,
        /// Approximate bytes written.
        bytes: u64,
        /// Time the chunk took.
        elapsed: Duration,
    },
    /// A row was written to the reject file.
    RowRejected {
        /// The source table.
        table: TableName,
        /// The offending column.
        column: String,
        /// The row's key, as `(a=1, b='x')`.
        key: String,
        /// Why it was rejected.
        reason: String,
    },
}

/// Progress of one table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableProgress {
    /// Chunks planned.
    pub chunks: usize,
    /// Chunks done (including those of earlier runs).
    pub chunks_done: usize,
    /// The server's row estimate.
    pub estimated_rows: u64,
    /// Rows copied in this run.
    pub rows: u64,
    /// Bytes copied in this run.
    pub bytes: u64,
    /// Rows rejected in this run.
    pub rejected: u64,
}

impl TableProgress {
    /// Whether every chunk is done.
    pub fn finished(&self) -> bool {
        self.chunks > 0 && self.chunks_done >= self.chunks
    }

    /// Fraction done, 0.0..=1.0, by chunks (exact) or rows (estimate), whichever is larger.
    pub fn fraction(&self) -> f64 {
        if self.finished() {
            return 1.0;
        }
        let by_chunks = if self.chunks == 0 {
            0.0
        } else {
            ratio(self.chunks_done as u64, self.chunks as u64)
        };
        let by_rows = if self.estimated_rows == 0 {
            0.0
        } else {
            ratio(self.rows, self.estimated_rows).min(0.99)
        };
        by_chunks.max(by_rows)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    // Precision loss is irrelevant for a progress fraction.
    #[allow(clippy::cast_precision_loss)]
    let r = a as f64 / b as f64;
    r
}

/// Folds progress events into per-table progress, rates and ETAs.
#[derive(Debug, Clone)]
pub struct ProgressTracker {
    started: Instant,
    tables: BTreeMap<TableName, TableProgress>,
}

impl Default for ProgressTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl ProgressTracker {
    /// A tracker whose clock starts now.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            tables: BTreeMap::new(),
        }
    }

    /// Applies one event.
    pub fn apply(&mut self, event: &ProgressEvent) {
        match event {
            ProgressEvent::TablePlanned {
                table,
                chunks,
                chunks_done,
                estimated_rows,
            } => {
                let t = self.tables.entry(table.clone()).or_default();
                t.chunks = *chunks;
                t.chunks_done = *chunks_done;
                t.estimated_rows = *estimated_rows;
            }
            ProgressEvent::ChunkDone {
                table, rows, bytes, ..
            } => {
                let t = self.tables.entry(table.clone()).or_default();
                t.chunks_done += 1;
                t.rows += rows;
                t.bytes += bytes;
            }
            ProgressEvent::RowRejected { table, .. } => {
                self.tables.entry(table.clone()).or_default().rejected += 1;
            }
        }
    }

    /// Per-table progress, by table name.
    pub fn tables(&self) -> &BTreeMap<TableName, TableProgress> {
        &self.tables
    }

    /// Time since the tracker started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Total rows copied in this run.
    pub fn rows(&self) -> u64 {
        self.tables.values().map(|t| t.rows).sum()
    }

    /// Total bytes copied in this run.
    pub fn bytes(&self) -> u64 {
        self.tables.values().map(|t| t.bytes).sum()
    }

    /// Overall rows per second so far.
    pub fn rows_per_second(&self) -> f64 {
        let secs = self.elapsed().as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        #[allow(clippy::cast_precision_loss)]
        let rows = self.rows() as f64;
        rows / secs
    }

    /// Estimated time left for the whole copy, from the estimated rows left and the rate.
    pub fn eta(&self) -> Option<Duration> {
        let rate = self.rows_per_second();
        if rate <= 0.0 {
            return None;
        }
        let left: u64 = self
            .tables
            .values()
            .filter(|t| !t.finished())
            .map(|t| t.estimated_rows.saturating_sub(t.rows))
            .sum();
        #[allow(clippy::cast_precision_loss)]
        let secs = left as f64 / rate;
        Some(Duration::from_secs_f64(secs.min(1e9)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_folds_events() {
        let t = TableName::new("s", "t");
        let mut p = ProgressTracker::new();
        p.apply(&ProgressEvent::TablePlanned {
            table: t.clone(),
            chunks: 4,
            chunks_done: 1,
            estimated_rows: 400,
        });
        p.apply(&ProgressEvent::ChunkDone {
            table: t.clone(),
            chunk: 1,
            rows: 100,
            bytes: 1000,
            elapsed: Duration::from_millis(5),
        });
        let tp = &p.tables()[&t];
        assert_eq!(tp.chunks_done, 2);
        assert!((tp.fraction() - 0.5).abs() < 1e-9);
        assert!(!tp.finished());
        assert_eq!(p.rows(), 100);
        assert!(p.eta().is_some());
    }
}
