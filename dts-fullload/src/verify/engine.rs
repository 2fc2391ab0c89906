//! The verification engine: digests per chunk, row-by-row comparison of the chunks whose
//! digests differ, re-checks while replication runs, repair.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dts_core::{
    async_trait, Chunk, Error, Position, RepairMode, RepairSink, Result, Row, RowMapper,
    SnapshotReader, Table, TargetReader, TargetTable, Value,
};
use futures::StreamExt;
use tokio::sync::mpsc::UnboundedSender;
use twox_hash::{XxHash3_128, XxHash3_64};

use super::canon::encode_value;
use super::report::{Difference, RepairStats, TableReport, VerifyReport};

/// One table to verify.
pub struct TableCheck {
    /// The source table, as its snapshot readers read it.
    pub source: Arc<Table>,
    /// The target table and its columns, one per value of a mapped row.
    pub target: TargetTable,
    /// The task's row mapping of the table: source rows become target-typed rows.
    pub mapper: Arc<dyn RowMapper>,
    /// Positions, in a row, of the key columns the chunks are bounded by; empty for a table
    /// without a key (one chunk, compared as a multiset of rows).
    pub key: Vec<usize>,
    /// The key-range chunks of the source table (the stored chunk plan, or a new one).
    pub chunks: Vec<Chunk>,
}

impl std::fmt::Debug for TableCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableCheck")
            .field("source", &self.source.name)
            .field("target", &self.target.name)
            .field("key", &self.key)
            .field("chunks", &self.chunks.len())
            .finish_non_exhaustive()
    }
}

/// The connections of one verification worker.
pub struct Worker {
    /// Reads the source's chunks.
    pub source: Box<dyn SnapshotReader>,
    /// Reads the target's chunks.
    pub target: Box<dyn TargetReader>,
    /// Writes repairs, when repair is asked for.
    pub repair: Option<Box<dyn RepairSink>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("repair", &self.repair.is_some())
            .finish_non_exhaustive()
    }
}

/// Where and how repairs are made.
#[derive(Debug, Clone)]
pub struct RepairOptions {
    /// Run the statements, or only write them down.
    pub mode: RepairMode,
    /// The SQL file every statement is written to (created or truncated).
    pub file: PathBuf,
    /// Repair beside the task's running apply (see [`BesideApply`]).
    pub beside_apply: Option<BesideApply>,
}

/// A repair beside a running apply: each chunk's repair transaction holds the task's apply
/// ([`dts_core::RepairSink::hold_apply`]), reads the chunk's rows from a new source
/// snapshot, taken once the apply is held, and writes every differing key as that snapshot
/// holds it (deleted where the source has no row). Every change the target holds was
/// committed on the source before the snapshot, so the repair never writes a value older
/// than the target's; once it committed, the apply replays the changes the snapshot holds
/// beyond the applied position, idempotently.
#[derive(Clone)]
pub struct BesideApply {
    /// The task whose apply is held.
    pub task: String,
    /// Opens the new source snapshots.
    pub source: Arc<dyn FreshReader>,
}

/// Opens a source reader in a snapshot taken at the call (see [`BesideApply`]).
#[async_trait]
pub trait FreshReader: Send + Sync {
    /// A reader that sees every transaction the source committed before the call.
    async fn reader(&self) -> Result<Box<dyn SnapshotReader>>;
}

impl std::fmt::Debug for BesideApply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BesideApply")
            .field("task", &self.task)
            .finish_non_exhaustive()
    }
}

/// Re-checks differences while replication runs: a difference read at source position `P`
/// may be a change the target has not applied yet, so it is read again from a new source
/// snapshot once the target's applied position has passed that snapshot's position.
#[async_trait]
pub trait Recheck: Send + Sync {
    /// Opens a new source snapshot with `readers` readers and returns its log position.
    async fn snapshot(&self, readers: usize) -> Result<(Position, Vec<Box<dyn SnapshotReader>>)>;

    /// Waits until the target's applied position has reached `position`; `false` when it
    /// did not within the recheck's patience.
    async fn wait_applied(&self, position: &Position) -> Result<bool>;
}

/// How a verification runs.
#[derive(Clone, Default)]
pub struct VerifyOptions {
    /// Keys listed per table and kind of difference (the counts are always complete).
    pub max_keys: usize,
    /// Repair the differences found.
    pub repair: Option<RepairOptions>,
    /// Re-check differences after replication caught up, this many rounds at most.
    pub recheck: Option<(Arc<dyn Recheck>, u32)>,
}

impl std::fmt::Debug for VerifyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyOptions")
            .field("max_keys", &self.max_keys)
            .field("repair", &self.repair)
            .field("recheck", &self.recheck.as_ref().map(|r| r.1))
            .finish()
    }
}

/// Something that happened during a verification.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum VerifyEvent {
    /// A table's verification is about to start.
    TableStarted {
        /// The source table.
        table: String,
        /// Its chunks.
        chunks: usize,
    },
    /// A chunk was compared.
    ChunkDone {
        /// The source table.
        table: String,
        /// The chunk number.
        chunk: u32,
        /// Source rows in the chunk.
        rows: u64,
        /// Whether the digests matched (otherwise the rows were compared one by one).
        digest_matched: bool,
    },
    /// Differences are read again after replication caught up.
    Recheck {
        /// The round, from 1.
        round: u32,
        /// Differences still open before this round.
        differences: u64,
    },
    /// A table is done (repaired, if asked).
    TableDone(Box<TableReport>),
}

/// A row of a differing chunk, by key: the key's values and a hash of each column.
#[derive(Debug, Clone)]
struct Entry {
    key: Vec<Value>,
    columns: Vec<u64>,
    /// The chunk it was read in.
    chunk: u32,
}

/// The differences of one keyed table, by the key's canonical bytes.
#[derive(Debug, Default)]
struct KeyedDiff {
    missing: HashMap<Vec<u8>, Entry>,
    extra: HashMap<Vec<u8>, Entry>,
    /// Key → (target entry, source entry, differing column positions).
    different: HashMap<Vec<u8>, (Entry, Entry, Vec<usize>)>,
}

impl KeyedDiff {
    fn count(&self) -> u64 {
        (self.missing.len() + self.extra.len() + self.different.len()) as u64
    }

    /// Adds a chunk's rows that found no partner in the chunk; rows of one key found in
    /// different chunks (the target sorts keys differently) are paired here.
    fn add(&mut self, missing: Vec<(Vec<u8>, Entry)>, extra: Vec<(Vec<u8>, Entry)>) {
        for (k, m) in missing {
            match self.extra.remove(&k) {
                Some(e) => self.pair(k, m, e),
                None => {
                    self.missing.insert(k, m);
                }
            }
        }
        for (k, e) in extra {
            match self.missing.remove(&k) {
                Some(m) => self.pair(k, m, e),
                None => {
                    self.extra.insert(k, e);
                }
            }
        }
    }

    fn pair(&mut self, k: Vec<u8>, source: Entry, target: Entry) {
        let cols = differing(&source.columns, &target.columns);
        if !cols.is_empty() {
            self.different.insert(k, (target, source, cols));
        }
    }

    /// Keeps only the differences `newer` still shows, of the same kind and with the same
    /// values on both sides; returns how many settled.
    ///
    /// A row changed while it was compared shows other values when read again (or no
    /// difference): a difference that reads the same in every round is one that replication
    /// did not and will not make go away.
    fn intersect(&mut self, newer: KeyedDiff) -> u64 {
        let before = self.count();
        let mut newer = newer;
        self.missing = std::mem::take(&mut newer.missing)
            .into_iter()
            .filter(|(k, e)| self.missing.get(k).is_some_and(|o| o.columns == e.columns))
            .collect();
        self.extra = std::mem::take(&mut newer.extra)
            .into_iter()
            .filter(|(k, e)| self.extra.get(k).is_some_and(|o| o.columns == e.columns))
            .collect();
        self.different = std::mem::take(&mut newer.different)
            .into_iter()
            .filter(|(k, (t, s, _))| {
                self.different
                    .get(k)
                    .is_some_and(|(ot, os, _)| ot.columns == t.columns && os.columns == s.columns)
            })
            .collect();
        before - self.count()
    }

    fn chunks(&self) -> HashSet<u32> {
        self.missing
            .values()
            .chain(self.extra.values())
            .map(|e| e.chunk)
            .chain(
                self.different
                    .values()
                    .flat_map(|(t, s, _)| [t.chunk, s.chunk]),
            )
            .collect()
    }
}

fn differing(a: &[u64], b: &[u64]) -> Vec<usize> {
    a.iter()
        .zip(b)
        .enumerate()
        .filter(|(_, (x, y))| x != y)
        .map(|(i, _)| i)
        .collect()
}

/// The differences of a table without a key: per row hash, source copies minus target
/// copies.
type Multiset = HashMap<u128, i64>;

/// [`Multiset`] for the repair module.
pub(crate) type MultisetPublic = Multiset;

#[derive(Debug)]
enum TableDiff {
    Keyed(KeyedDiff),
    Keyless(Multiset),
}

impl TableDiff {
    fn count(&self) -> u64 {
        match self {
            TableDiff::Keyed(d) => d.count(),
            TableDiff::Keyless(m) => m.values().map(|n| n.unsigned_abs()).sum(),
        }
    }
}

/// A row's canonical bytes, with the end of each column's bytes.
#[derive(Default)]
struct Encoded {
    buf: Vec<u8>,
    ends: Vec<usize>,
}

impl Encoded {
    fn row(&mut self, row: &[Value]) {
        self.buf.clear();
        self.ends.clear();
        for v in row {
            encode_value(v, &mut self.buf);
            self.ends.push(self.buf.len());
        }
    }

    fn column(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.buf[start..self.ends[i]]
    }

    fn hash(&self) -> u128 {
        XxHash3_128::oneshot(&self.buf)
    }

    fn column_hashes(&self) -> Vec<u64> {
        (0..self.ends.len())
            .map(|i| XxHash3_64::oneshot(self.column(i)))
            .collect()
    }

    fn key(&self, key: &[usize]) -> Vec<u8> {
        key.iter().flat_map(|&i| self.column(i)).copied().collect()
    }
}

/// The target chunk of a source chunk: the same key range, in target columns and values.
fn target_chunk(t: &TableCheck, chunk: &Chunk) -> Result<Chunk> {
    let bound = |b: &Option<Vec<Value>>| -> Result<Option<Vec<Value>>> {
        let Some(values) = b else { return Ok(None) };
        let mut row = vec![Value::Null; t.target.columns.len()];
        for (&i, v) in t.key.iter().zip(values) {
            row[i] = v.clone();
        }
        t.mapper.map_row(&mut row).map_err(|f| f.error)?;
        Ok(Some(t.key.iter().map(|&i| row[i].clone()).collect()))
    };
    Ok(Chunk {
        index: chunk.index,
        key: t.key.iter().map(|&i| t.target.columns[i].clone()).collect(),
        lower: bound(&chunk.lower)?,
        upper: bound(&chunk.upper)?,
    })
}

fn mapped(t: &TableCheck, mut row: Row) -> Result<Row> {
    match t.mapper.map_row(&mut row) {
        Ok(()) => Ok(row),
        Err(f) => Err(f.error),
    }
}

/// Streams the source rows of a chunk, mapped, to `each`.
async fn each_source_row(
    reader: &mut dyn SnapshotReader,
    t: &TableCheck,
    chunk: &Chunk,
    mut each: impl FnMut(Row) -> Result<()>,
) -> Result<()> {
    let mut stream = reader.read_chunk(&t.source, chunk);
    while let Some(batch) = stream.next().await {
        for row in batch?.rows {
            each(mapped(t, row)?)?;
        }
    }
    Ok(())
}

async fn each_target_row(
    reader: &mut dyn TargetReader,
    t: &TableCheck,
    chunk: &Chunk,
    mut each: impl FnMut(Row) -> Result<()>,
) -> Result<()> {
    let mut stream = reader.read_chunk(&t.target, chunk);
    while let Some(batch) = stream.next().await {
        for row in batch?.rows {
            if row.len() != t.target.columns.len() {
                return Err(Error::internal(format!(
                    "target reader returned {} values for the {} columns of `{}`",
                    row.len(),
                    t.target.columns.len(),
                    t.target.name
                )));
            }
            each(row)?;
        }
    }
    Ok(())
}

/// Row count and the sum of row hashes: equal multisets of rows have equal digests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Digest {
    rows: u64,
    sum: u128,
}

impl Digest {
    fn add(&mut self, e: &Encoded) {
        self.rows += 1;
        self.sum = self.sum.wrapping_add(e.hash());
    }
}

/// What comparing one chunk found.
struct ChunkResult {
    table: usize,
    rows: u64,
    target_rows: u64,
    digest_matched: bool,
    missing: Vec<(Vec<u8>, Entry)>,
    extra: Vec<(Vec<u8>, Entry)>,
    multiset: Multiset,
}

/// Compares one chunk: digests of both sides first, row by row only when they differ.
async fn compare_chunk(
    w: &mut Worker,
    t: &TableCheck,
    table: usize,
    chunk: &Chunk,
    digest_first: bool,
) -> Result<ChunkResult> {
    let tchunk = target_chunk(t, chunk)?;
    let mut result = ChunkResult {
        table,
        rows: 0,
        target_rows: 0,
        digest_matched: false,
        missing: Vec::new(),
        extra: Vec::new(),
        multiset: Multiset::new(),
    };
    if digest_first {
        let (mut se, mut te) = (Encoded::default(), Encoded::default());
        let (mut sd, mut td) = (Digest::default(), Digest::default());
        let s = each_source_row(w.source.as_mut(), t, chunk, |row| {
            se.row(&row);
            sd.add(&se);
            Ok(())
        });
        let g = each_target_row(w.target.as_mut(), t, &tchunk, |row| {
            te.row(&row);
            td.add(&te);
            Ok(())
        });
        futures::try_join!(s, g)?;
        result.rows = sd.rows;
        result.target_rows = td.rows;
        if sd == td {
            result.digest_matched = true;
            return Ok(result);
        }
    }
    let mut e = Encoded::default();
    let mut rows = 0;
    if t.key.is_empty() {
        let mut net = Multiset::new();
        each_source_row(w.source.as_mut(), t, chunk, |row| {
            e.row(&row);
            rows += 1;
            *net.entry(e.hash()).or_default() += 1;
            Ok(())
        })
        .await?;
        let mut target_rows = 0;
        each_target_row(w.target.as_mut(), t, &tchunk, |row| {
            e.row(&row);
            target_rows += 1;
            *net.entry(e.hash()).or_default() -= 1;
            Ok(())
        })
        .await?;
        net.retain(|_, n| *n != 0);
        result.multiset = net;
        result.rows = rows;
        result.target_rows = target_rows;
        return Ok(result);
    }
    let mut source: HashMap<Vec<u8>, Entry> = HashMap::new();
    each_source_row(w.source.as_mut(), t, chunk, |row| {
        e.row(&row);
        rows += 1;
        let entry = Entry {
            key: t.key.iter().map(|&i| row[i].clone()).collect(),
            columns: e.column_hashes(),
            chunk: chunk.index,
        };
        source.insert(e.key(&t.key), entry);
        Ok(())
    })
    .await?;
    let mut target_rows = 0;
    let mut different = Vec::new();
    each_target_row(w.target.as_mut(), t, &tchunk, |row| {
        e.row(&row);
        target_rows += 1;
        let k = e.key(&t.key);
        let columns = e.column_hashes();
        match source.remove(&k) {
            Some(s) => {
                if s.columns != columns {
                    different.push((k, s, columns));
                }
            }
            None => result.extra.push((
                k,
                Entry {
                    key: t.key.iter().map(|&i| row[i].clone()).collect(),
                    columns,
                    chunk: chunk.index,
                },
            )),
        }
        Ok(())
    })
    .await?;
    // A differing row is a missing and an extra row under one key; the table's diff pairs
    // them (and rows whose key the target sorts into another chunk).
    for (k, s, columns) in different {
        let target = Entry {
            key: s.key.clone(),
            columns,
            chunk: chunk.index,
        };
        result.missing.push((k.clone(), s));
        result.extra.push((k, target));
    }
    result.missing.extend(source);
    result.rows = rows;
    result.target_rows = target_rows;
    Ok(result)
}

/// Runs `job` for every item of `jobs` on the workers, in parallel (one job per worker at a
/// time); returns the workers and the results. The first error stops the others.
pub(crate) async fn on_workers<J, R, F>(
    workers: Vec<Worker>,
    jobs: Vec<J>,
    job: F,
) -> Result<(Vec<Worker>, Vec<R>)>
where
    J: Send + 'static,
    R: Send + 'static,
    F: for<'w> Fn(&'w mut Worker, J) -> futures::future::BoxFuture<'w, Result<R>>
        + Send
        + Sync
        + 'static,
{
    let queue = Arc::new(Mutex::new(jobs.into_iter().collect::<VecDeque<J>>()));
    let job = Arc::new(job);
    let mut set = tokio::task::JoinSet::new();
    for mut w in workers {
        let queue = queue.clone();
        let job = job.clone();
        set.spawn(async move {
            let mut out = Vec::new();
            loop {
                let next = queue
                    .lock()
                    .map_err(|_| Error::internal("poisoned"))?
                    .pop_front();
                let Some(j) = next else { break };
                match job(&mut w, j).await {
                    Ok(r) => out.push(r),
                    Err(e) => {
                        queue
                            .lock()
                            .map_err(|_| Error::internal("poisoned"))?
                            .clear();
                        return Err(e);
                    }
                }
            }
            Ok((w, out))
        });
    }
    let mut workers = Vec::new();
    let mut results = Vec::new();
    let mut first_error = None;
    while let Some(joined) = set.join_next().await {
        match joined.map_err(|e| Error::internal(format!("verification worker failed: {e}")))? {
            Ok((w, out)) => {
                workers.push(w);
                results.extend(out);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok((workers, results)),
    }
}

/// Compares the chunks `which` (table, chunk position) and gathers each table's
/// differences.
async fn compare(
    tables: &Arc<Vec<TableCheck>>,
    workers: Vec<Worker>,
    which: Vec<(usize, usize)>,
    digest_first: bool,
    events: Option<UnboundedSender<VerifyEvent>>,
) -> Result<(Vec<Worker>, Vec<ChunkResult>)> {
    let shared = tables.clone();
    on_workers(workers, which, move |w, (ti, ci)| {
        let tables = shared.clone();
        let events = events.clone();
        Box::pin(async move {
            let t = &tables[ti];
            let chunk = &t.chunks[ci];
            let r = compare_chunk(w, t, ti, chunk, digest_first).await?;
            tracing::debug!(table = %t.source.name, chunk = chunk.index, rows = r.rows, matched = r.digest_matched, "chunk compared");
            if let Some(tx) = &events {
                let _ = tx.send(VerifyEvent::ChunkDone {
                    table: t.source.name.to_string(),
                    chunk: chunk.index,
                    rows: r.rows,
                    digest_matched: r.digest_matched,
                });
            }
            Ok(r)
        })
    })
    .await
}

fn gather(tables: &[TableCheck], results: Vec<ChunkResult>) -> Vec<(TableDiff, u64, u64, u64)> {
    let mut out: Vec<(TableDiff, u64, u64, u64)> = tables
        .iter()
        .map(|t| {
            let d = if t.key.is_empty() {
                TableDiff::Keyless(Multiset::new())
            } else {
                TableDiff::Keyed(KeyedDiff::default())
            };
            (d, 0, 0, 0)
        })
        .collect();
    for r in results {
        let slot = &mut out[r.table];
        slot.1 += r.rows;
        slot.2 += r.target_rows;
        if !r.digest_matched {
            slot.3 += 1;
        }
        match &mut slot.0 {
            TableDiff::Keyed(d) => d.add(r.missing, r.extra),
            TableDiff::Keyless(m) => {
                for (h, n) in r.multiset {
                    *m.entry(h).or_default() += n;
                }
                m.retain(|_, n| *n != 0);
            }
        }
    }
    out
}

/// Verifies `tables` with `workers` (at least one) in parallel and returns the report,
/// sending progress to `events`.
///
/// Each chunk's rows are read from both sides, the source's through the table's row
/// mapping, and digested (row count and a sum of 128-bit row hashes of the canonical
/// values, so row order does not matter); only chunks whose digests differ are read again
/// and compared row by row, by key (by row, counting copies, for a table without a key).
/// Memory holds one differing chunk's keys and column hashes per worker, and the
/// differences found.
///
/// # Errors
///
/// Reader, mapping and repair errors; a source row the mapping cannot convert.
pub async fn verify_tables(
    tables: Vec<TableCheck>,
    workers: Vec<Worker>,
    options: &VerifyOptions,
    events: Option<UnboundedSender<VerifyEvent>>,
) -> Result<VerifyReport> {
    if workers.is_empty() {
        return Err(Error::internal("verification needs at least one worker"));
    }
    let started = Instant::now();
    let tables = Arc::new(tables);
    let emit = |e: VerifyEvent| {
        if let Some(tx) = &events {
            let _ = tx.send(e);
        }
    };
    let mut jobs = Vec::new();
    for (ti, t) in tables.iter().enumerate() {
        emit(VerifyEvent::TableStarted {
            table: t.source.name.to_string(),
            chunks: t.chunks.len(),
        });
        jobs.extend((0..t.chunks.len()).map(|ci| (ti, ci)));
    }
    let (mut workers, results) = compare(&tables, workers, jobs, true, events.clone()).await?;
    let mut diffs = gather(&tables, results);
    let mut settled = vec![0u64; tables.len()];

    if let Some((recheck, rounds)) = &options.recheck {
        for round in 1..=*rounds {
            let open: u64 = diffs.iter().map(|d| d.0.count()).sum();
            if open == 0 {
                break;
            }
            emit(VerifyEvent::Recheck {
                round,
                differences: open,
            });
            let (position, readers) = recheck.snapshot(workers.len()).await?;
            if !recheck.wait_applied(&position).await? {
                tracing::warn!(%position, "replication did not reach the source position in time: differences not re-checked");
                break;
            }
            let mut which = Vec::new();
            for (ti, (d, ..)) in diffs.iter().enumerate() {
                let chunks: HashSet<u32> = match d {
                    TableDiff::Keyed(k) => k.chunks(),
                    TableDiff::Keyless(m) if !m.is_empty() => {
                        tables[ti].chunks.iter().map(|c| c.index).collect()
                    }
                    TableDiff::Keyless(_) => HashSet::new(),
                };
                which.extend(
                    tables[ti]
                        .chunks
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| chunks.contains(&c.index))
                        .map(|(ci, _)| (ti, ci)),
                );
            }
            let n = readers.len().min(workers.len());
            let mut fresh: Vec<Worker> = Vec::with_capacity(n);
            for (source, mut w) in readers.into_iter().zip(workers.drain(..n)) {
                w.source = source;
                fresh.push(w);
            }
            let (back, results) = compare(&tables, fresh, which, false, None).await?;
            workers = back;
            let newer = gather(&tables, results);
            for (ti, ((d, ..), (nd, ..))) in diffs.iter_mut().zip(newer).enumerate() {
                settled[ti] += match (d, nd) {
                    (TableDiff::Keyed(d), TableDiff::Keyed(nd)) => d.intersect(nd),
                    (TableDiff::Keyless(m), TableDiff::Keyless(nm)) => {
                        let before: u64 = m.values().map(|n| n.unsigned_abs()).sum();
                        m.retain(|h, n| {
                            let now = nm.get(h).copied().unwrap_or(0);
                            *n = if now.signum() == n.signum() {
                                now.abs().min(n.abs()) * n.signum()
                            } else {
                                0
                            };
                            *n != 0
                        });
                        before - m.values().map(|n| n.unsigned_abs()).sum::<u64>()
                    }
                    _ => 0,
                };
            }
        }
    }

    let mut reports = Vec::with_capacity(tables.len());
    for (ti, (d, rows, target_rows, by_row)) in diffs.iter().enumerate() {
        let t = &tables[ti];
        let mut r = TableReport {
            source: t.source.name.to_string(),
            target: t.target.name.to_string(),
            keyless: t.key.is_empty(),
            key_columns: if t.key.is_empty() {
                t.target.columns.clone()
            } else {
                t.key.iter().map(|&i| t.target.columns[i].clone()).collect()
            },
            rows: *rows,
            target_rows: *target_rows,
            chunks: t.chunks.len() as u64,
            chunks_compared_by_row: *by_row,
            settled: settled[ti],
            ..TableReport::default()
        };
        match d {
            TableDiff::Keyed(k) => {
                r.missing = k.missing.len() as u64;
                r.extra = k.extra.len() as u64;
                r.different = k.different.len() as u64;
                r.missing_rows = first_keys(k.missing.values(), options.max_keys, |_| vec![]);
                r.extra_rows = first_keys(k.extra.values(), options.max_keys, |_| vec![]);
                let mut diff: Vec<&(Entry, Entry, Vec<usize>)> = k.different.values().collect();
                diff.sort_by(|a, b| cmp_key(&a.0.key, &b.0.key));
                r.different_rows = diff
                    .into_iter()
                    .take(options.max_keys)
                    .map(|(e, _, cols)| Difference {
                        key: e.key.iter().map(|v| v.short().to_string()).collect(),
                        columns: cols.iter().map(|&i| t.target.columns[i].clone()).collect(),
                    })
                    .collect();
            }
            TableDiff::Keyless(m) => {
                r.missing = m
                    .values()
                    .filter(|n| **n > 0)
                    .map(|n| n.unsigned_abs())
                    .sum();
                r.extra = m
                    .values()
                    .filter(|n| **n < 0)
                    .map(|n| n.unsigned_abs())
                    .sum();
            }
        }
        reports.push(r);
    }

    // Rows of tables without a key are shown by their values: read the few to show.
    let keyless: Vec<usize> = diffs
        .iter()
        .enumerate()
        .filter(|(_, (d, ..))| matches!(d, TableDiff::Keyless(m) if !m.is_empty()))
        .map(|(i, _)| i)
        .collect();
    for ti in keyless {
        let TableDiff::Keyless(m) = &diffs[ti].0 else {
            continue;
        };
        let (missing, extra) =
            keyless_rows(&mut workers[0], &tables[ti], m, Some(options.max_keys)).await?;
        let show = |rows: Vec<Row>| {
            rows.into_iter()
                .map(|row| Difference {
                    key: row.iter().map(|v| v.short().to_string()).collect(),
                    columns: vec![],
                })
                .collect()
        };
        reports[ti].missing_rows = show(missing);
        reports[ti].extra_rows = show(extra);
    }

    let mut repair_file = None;
    if let Some(repair) = &options.repair {
        repair_file = Some(repair.file.display().to_string());
        let stats =
            super::repair::repair_tables(&tables, &diffs_view(&diffs), workers, repair).await?;
        for (r, s) in reports.iter_mut().zip(stats) {
            r.repair = s;
        }
    }
    for r in &reports {
        emit(VerifyEvent::TableDone(Box::new(r.clone())));
    }
    Ok(VerifyReport {
        tables: reports,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        repair_file,
    })
}

/// What repair needs of one table's differences.
#[derive(Debug, Default)]
pub(crate) struct RepairPlan {
    /// Per chunk: keys to insert and to update (read from that source chunk), keys to
    /// delete.
    pub(crate) chunks: HashMap<u32, ChunkRepairs>,
    /// For a table without a key: per row hash, copies to insert (> 0) or delete (< 0).
    pub(crate) multiset: Option<Multiset>,
}

/// The keys one chunk's repair touches, by canonical key bytes.
#[derive(Debug, Default)]
pub(crate) struct ChunkRepairs {
    pub(crate) insert: HashMap<Vec<u8>, Vec<Value>>,
    pub(crate) update: HashMap<Vec<u8>, Vec<Value>>,
    pub(crate) delete: Vec<Vec<Value>>,
}

fn diffs_view(diffs: &[(TableDiff, u64, u64, u64)]) -> Vec<RepairPlan> {
    diffs
        .iter()
        .map(|(d, ..)| match d {
            TableDiff::Keyless(m) => RepairPlan {
                chunks: HashMap::new(),
                multiset: (!m.is_empty()).then(|| m.clone()),
            },
            TableDiff::Keyed(k) => {
                let mut chunks: HashMap<u32, ChunkRepairs> = HashMap::new();
                for (key, e) in &k.missing {
                    chunks
                        .entry(e.chunk)
                        .or_default()
                        .insert
                        .insert(key.clone(), e.key.clone());
                }
                for e in k.extra.values() {
                    chunks
                        .entry(e.chunk)
                        .or_default()
                        .delete
                        .push(e.key.clone());
                }
                for (key, (target, source, _)) in &k.different {
                    let _ = target;
                    chunks
                        .entry(source.chunk)
                        .or_default()
                        .update
                        .insert(key.clone(), source.key.clone());
                }
                RepairPlan {
                    chunks,
                    multiset: None,
                }
            }
        })
        .collect()
}

/// The rows behind a keyless table's differences: source rows the target lacks copies of,
/// and target rows it has too many copies of (at most `limit` each).
pub(crate) async fn keyless_rows(
    w: &mut Worker,
    t: &TableCheck,
    net: &Multiset,
    limit: Option<usize>,
) -> Result<(Vec<Row>, Vec<Row>)> {
    let limit = limit.unwrap_or(usize::MAX);
    let mut want = net.clone();
    let mut e = Encoded::default();
    let mut missing = Vec::new();
    let chunk = Chunk::whole_table();
    each_source_row(w.source.as_mut(), t, &chunk, |row| {
        if missing.len() < limit {
            e.row(&row);
            if let Some(n) = want.get_mut(&e.hash()) {
                if *n > 0 {
                    *n -= 1;
                    missing.push(row);
                }
            }
        }
        Ok(())
    })
    .await?;
    let mut extra = Vec::new();
    each_target_row(w.target.as_mut(), t, &chunk, |row| {
        if extra.len() < limit {
            e.row(&row);
            if let Some(n) = want.get_mut(&e.hash()) {
                if *n < 0 {
                    *n += 1;
                    extra.push(row);
                }
            }
        }
        Ok(())
    })
    .await?;
    Ok((missing, extra))
}

/// Streams a source chunk's mapped rows whose keys are wanted.
pub(crate) async fn source_rows_by_key(
    w: &mut Worker,
    t: &TableCheck,
    chunk: &Chunk,
    mut each: impl FnMut(&[u8], Row),
) -> Result<()> {
    let mut e = Encoded::default();
    each_source_row(w.source.as_mut(), t, chunk, |row| {
        e.row(&row);
        each(&e.key(&t.key), row);
        Ok(())
    })
    .await
}

/// The canonical bytes of a key's values, as rows' keys are compared.
pub(crate) fn key_bytes(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        encode_value(v, &mut out);
    }
    out
}

fn cmp_key(a: &[Value], b: &[Value]) -> std::cmp::Ordering {
    let s = |k: &[Value]| k.iter().map(|v| v.short().to_string()).collect::<Vec<_>>();
    let (x, y) = (s(a), s(b));
    // Numbers in number order, the rest as text.
    for (p, q) in x.iter().zip(&y) {
        let o = match (p.parse::<i128>(), q.parse::<i128>()) {
            (Ok(m), Ok(n)) => m.cmp(&n),
            _ => p.cmp(q),
        };
        if o.is_ne() {
            return o;
        }
    }
    x.len().cmp(&y.len())
}

fn first_keys<'a>(
    entries: impl Iterator<Item = &'a Entry>,
    max: usize,
    columns: impl Fn(&Entry) -> Vec<String>,
) -> Vec<Difference> {
    let mut all: Vec<&Entry> = entries.collect();
    all.sort_by(|a, b| cmp_key(&a.key, &b.key));
    all.into_iter()
        .take(max)
        .map(|e| Difference {
            key: e.key.iter().map(|v| v.short().to_string()).collect(),
            columns: columns(e),
        })
        .collect()
}

/// Writes one transaction's statements to the repair file.
pub(crate) fn write_statements(
    file: &Mutex<std::io::BufWriter<std::fs::File>>,
    statements: &[String],
) -> Result<()> {
    let mut f = file
        .lock()
        .map_err(|_| Error::internal("repair file lock poisoned"))?;
    for s in statements {
        writeln!(f, "{s};").map_err(io_error)?;
    }
    writeln!(f).map_err(io_error)?;
    f.flush().map_err(io_error)
}

pub(crate) fn io_error(e: std::io::Error) -> Error {
    Error::new(dts_core::ErrorKind::Io, "cannot write the repair file").with_source(e)
}

pub(crate) fn empty_stats(mode: RepairMode) -> RepairStats {
    RepairStats {
        applied: mode == RepairMode::Apply,
        ..RepairStats::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: i64, columns: &[u64]) -> (Vec<u8>, Entry) {
        (
            key.to_be_bytes().to_vec(),
            Entry {
                key: vec![Value::Int(key)],
                columns: columns.to_vec(),
                chunk: 0,
            },
        )
    }

    fn diff(missing: &[(i64, u64)], extra: &[(i64, u64)]) -> KeyedDiff {
        let mut d = KeyedDiff::default();
        d.add(
            missing.iter().map(|(k, c)| entry(*k, &[*c])).collect(),
            extra.iter().map(|(k, c)| entry(*k, &[*c])).collect(),
        );
        d
    }

    #[test]
    fn only_differences_that_read_the_same_again_persist() {
        // Key 1 differs, 2 is missing, 3 extra, 4 differs, 5 missing.
        let mut first = diff(
            &[(1, 10), (2, 20), (4, 40), (5, 50)],
            &[(1, 11), (3, 30), (4, 41)],
        );
        assert_eq!(
            (
                first.different.len(),
                first.missing.len(),
                first.extra.len()
            ),
            (2, 2, 1)
        );
        // Read again: 1 reads the same; 2 still missing with the same values; 3 gone; 4
        // differs with new target values (changed in flight); 5 missing with other values.
        let again = diff(&[(1, 10), (2, 20), (4, 40), (5, 51)], &[(1, 11), (4, 42)]);
        assert_eq!(first.intersect(again), 3);
        assert_eq!(
            first.different.keys().collect::<Vec<_>>(),
            [&1i64.to_be_bytes().to_vec()]
        );
        assert_eq!(
            first.missing.keys().collect::<Vec<_>>(),
            [&2i64.to_be_bytes().to_vec()]
        );
        assert!(first.extra.is_empty());
    }
}
