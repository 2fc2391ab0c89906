//! The parallel, pipelined copy of planned chunks from snapshot readers into chunk sinks.
//!
//! Each worker is two tasks joined by a bounded queue: a reader task streams a chunk's
//! batches from its snapshot connection while the writer task converts and writes the
//! previous batches through its sink, so reading, converting and writing overlap and memory
//! stays bounded by the queue length times the batch size, whatever the table or value size.
//! Workers take chunks from one shared queue, across tables and within a table.

use std::collections::{BTreeSet, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dts_core::{
    Chunk, ChunkSink, Error, ErrorKind, Result, Row, RowBatch, RowEncoding, RowMapper,
    SnapshotReader, Table, TargetTable, Value,
};
use futures::StreamExt;
use tokio::sync::{mpsc, watch};

use crate::progress::ProgressEvent;
use crate::throttle::Throttle;

/// What to do with a row holding a value the target cannot hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BadRowPolicy {
    /// Stop the copy with an error naming table, column and key (the default).
    #[default]
    Stop,
    /// Write the row and the reason to this file, and continue without it.
    Reject(PathBuf),
}

/// Copy settings.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Batches buffered between a worker's reader and writer.
    pub queue_batches: usize,
    /// Task-wide limit on rows per second, if any.
    pub max_rows_per_second: Option<u64>,
    /// Task-wide limit on bytes per second, if any.
    pub max_bytes_per_second: Option<u64>,
    /// Bad-row policy.
    pub bad_rows: BadRowPolicy,
    /// A chunk that moves no batch for this long (a connection that stalls without closing)
    /// fails with a retryable [`ErrorKind::Connection`] error naming the chunk; `None`
    /// waits for ever. Time spent waiting on the throttle does not count.
    pub stall_timeout: Option<std::time::Duration>,
}

impl Default for CopyOptions {
    fn default() -> Self {
        Self {
            queue_batches: 4,
            max_rows_per_second: None,
            max_bytes_per_second: None,
            bad_rows: BadRowPolicy::Stop,
            stall_timeout: Some(std::time::Duration::from_secs(120)),
        }
    }
}

/// One table to copy.
#[derive(Clone)]
pub struct TableJob {
    /// The source table.
    pub source: Arc<Table>,
    /// The source column names in the order the reader delivers values.
    pub source_columns: Vec<String>,
    /// The target table and columns, in the same order.
    pub target: TargetTable,
    /// Converts the source rows into target rows (the table's mapping).
    pub mapper: Arc<dyn RowMapper>,
    /// The planned chunks.
    pub chunks: Vec<Chunk>,
    /// Chunks recorded as done by earlier runs: skipped.
    pub done: BTreeSet<u32>,
    /// The server's row estimate, for progress.
    pub estimated_rows: u64,
    /// The encoding the table's rows travel in from reader to sink without becoming values
    /// (see [`RowEncoding`]), or `None` to read and write values. Set it only when the
    /// reader gave it ([`SnapshotReader::row_encoding`]) and converts into it exactly as the
    /// mapper converts (the mapper converts nothing, or the reader's encoding is the
    /// mapping's own), and a sink of the target accepted it
    /// ([`ChunkSink::accepts_encoding`]). The encoded rows then skip the mapper and the
    /// bad-row policy; the rows a reader leaves as values in a batch (those it could not
    /// encode) go through both as always.
    pub encoding: Option<RowEncoding>,
}

impl std::fmt::Debug for TableJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableJob")
            .field("source", &self.source.name)
            .field("target", &self.target)
            .field("chunks", &self.chunks.len())
            .field("done", &self.done.len())
            .field("encoding", &self.encoding)
            .finish_non_exhaustive()
    }
}

/// What a copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopySummary {
    /// Rows written.
    pub rows: u64,
    /// Approximate bytes written.
    pub bytes: u64,
    /// Chunks written in this run.
    pub chunks: u64,
    /// Chunks skipped because earlier runs had written them.
    pub chunks_skipped: u64,
    /// Rows written to the reject file.
    pub rejected: u64,
}

struct Shared {
    jobs: Vec<TableJob>,
    queue: Mutex<VecDeque<(usize, usize)>>,
    throttle: Throttle,
    events: Option<mpsc::UnboundedSender<ProgressEvent>>,
    rejects: Option<Mutex<std::io::BufWriter<std::fs::File>>>,
    rejected: AtomicU64,
    stop: watch::Receiver<bool>,
    /// The workers' errors, in the order they happened.
    failures: Mutex<Vec<Error>>,
    /// See [`CopyOptions::stall_timeout`].
    stall_timeout: Option<std::time::Duration>,
}

/// When a worker's current chunk last moved a batch, for the stall watchdog.
struct Liveness {
    base: Instant,
    /// Milliseconds after `base` of the last batch moved.
    last_ms: AtomicU64,
    /// Whether the chunk is waiting on the throttle (which is not a stall).
    throttled: std::sync::atomic::AtomicBool,
}

impl Liveness {
    fn new() -> Self {
        Self {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
            throttled: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Records that a batch moved now.
    fn beat(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// How long since a batch last moved, unless the throttle holds the chunk.
    fn idle(&self) -> Option<std::time::Duration> {
        if self.throttled.load(Ordering::Relaxed) {
            return None;
        }
        let last = std::time::Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        Some(self.base.elapsed().saturating_sub(last))
    }
}

impl Shared {
    fn emit(&self, e: ProgressEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.send(e);
        }
    }

    /// Records a worker's error and makes the other workers stop taking chunks.
    fn fail(&self, e: Error) {
        if let Ok(mut q) = self.queue.lock() {
            q.clear();
        }
        if let Ok(mut f) = self.failures.lock() {
            f.push(e);
        }
    }

    fn next_chunk(&self) -> Option<(usize, usize)> {
        if *self.stop.borrow() {
            return None;
        }
        self.queue.lock().ok()?.pop_front()
    }
}

/// Formats the key of `row` as `(a=1, b='x')` for error messages.
fn key_text(job: &TableJob, row: &Row) -> String {
    let key = job.source.chunk_key().unwrap_or_default();
    let cols: Vec<(&String, &Value)> = if key.is_empty() {
        Vec::new()
    } else {
        key.iter()
            .filter_map(|k| {
                let i = job.source_columns.iter().position(|c| c == k)?;
                Some((k, row.get(i)?))
            })
            .collect()
    };
    if cols.is_empty() {
        return "(table has no key)".into();
    }
    let parts: Vec<String> = cols
        .iter()
        .map(|(k, v)| format!("{k}={}", v.short()))
        .collect();
    format!("({})", parts.join(", "))
}

/// Copies every chunk of `jobs` not yet done, with one worker per reader/sink pair.
///
/// Stops taking new chunks when `stop` becomes `true` (chunks in flight finish) and then
/// returns an [`ErrorKind::Interrupted`] error. The first failing chunk stops every worker
/// from taking more chunks; the chunks other workers have in flight finish or fail too.
/// Chunks committed stay committed (the sink records them), so a rerun resumes.
///
/// # Errors
///
/// When chunks fail, the error of the first to fail, with the errors of the others (at
/// most one per worker, in the order they happened) as its [`Error::related`] errors, so
/// that [`Error::report`] names every failing chunk.
pub async fn copy_tables<R, S>(
    jobs: Vec<TableJob>,
    readers: Vec<R>,
    sinks: Vec<S>,
    options: CopyOptions,
    events: Option<mpsc::UnboundedSender<ProgressEvent>>,
    stop: watch::Receiver<bool>,
) -> Result<CopySummary>
where
    R: SnapshotReader + 'static,
    S: ChunkSink + 'static,
{
    if readers.is_empty() || readers.len() != sinks.len() {
        return Err(Error::internal("copy needs one sink per reader"));
    }
    let mut queue = VecDeque::new();
    let mut skipped = 0u64;
    for (t, job) in jobs.iter().enumerate() {
        for (c, chunk) in job.chunks.iter().enumerate() {
            if job.done.contains(&chunk.index) {
                skipped += 1;
            } else {
                queue.push_back((t, c));
            }
        }
    }
    let rejects = match &options.bad_rows {
        BadRowPolicy::Stop => None,
        BadRowPolicy::Reject(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| {
                    Error::new(
                        ErrorKind::Io,
                        format!("cannot open reject file `{}`", path.display()),
                    )
                    .with_source(e)
                })?;
            Some(Mutex::new(std::io::BufWriter::new(f)))
        }
    };
    let shared = Arc::new(Shared {
        jobs,
        queue: Mutex::new(queue),
        throttle: Throttle::new(options.max_rows_per_second, options.max_bytes_per_second),
        events,
        rejects,
        rejected: AtomicU64::new(0),
        stop: stop.clone(),
        failures: Mutex::new(Vec::new()),
        stall_timeout: options.stall_timeout,
    });
    for job in &shared.jobs {
        shared.emit(ProgressEvent::TablePlanned {
            table: job.source.name.clone(),
            chunks: job.chunks.len(),
            chunks_done: job.done.len(),
            estimated_rows: job.estimated_rows,
        });
    }

    let mut handles = Vec::new();
    for (reader, sink) in readers.into_iter().zip(sinks) {
        handles.push(tokio::spawn(worker(
            shared.clone(),
            reader,
            sink,
            options.queue_batches.max(1),
        )));
    }
    let mut summary = CopySummary {
        chunks_skipped: skipped,
        ..Default::default()
    };
    for h in handles {
        match h.await {
            Ok(s) => {
                summary.rows += s.rows;
                summary.bytes += s.bytes;
                summary.chunks += s.chunks;
            }
            Err(join) => shared.fail(Error::internal("copy worker panicked").with_source(join)),
        }
    }
    if let Some(r) = &shared.rejects {
        if let Ok(mut w) = r.lock() {
            w.flush()?;
        }
    }
    summary.rejected = shared.rejected.load(Ordering::Relaxed);
    let mut failures = shared
        .failures
        .lock()
        .map(|mut f| std::mem::take(&mut *f))
        .unwrap_or_default();
    if !failures.is_empty() {
        let first = failures.remove(0);
        return Err(first.with_related(failures));
    }
    if *stop.borrow() {
        let left = shared.queue.lock().map(|q| q.len()).unwrap_or(0);
        if left > 0 {
            return Err(Error::new(
                ErrorKind::Interrupted,
                format!("copy stopped with {left} chunks left; run the task again to resume"),
            ));
        }
    }
    Ok(summary)
}

type ChunkFeed = (usize, usize, mpsc::Receiver<Result<RowBatch>>);

/// Copies chunks until the queue is empty or a chunk fails; a failure is recorded in
/// `shared`. Returns what the worker copied.
async fn worker<R, S>(
    shared: Arc<Shared>,
    mut reader: R,
    mut sink: S,
    queue_batches: usize,
) -> CopySummary
where
    R: SnapshotReader + 'static,
    S: ChunkSink + 'static,
{
    // Every sink is asked, as the one the plan asked: a sink that refuses a table's
    // encoding would get rows it cannot write.
    for job in &shared.jobs {
        if let Some(encoding) = &job.encoding {
            let accepted = sink.accepts_encoding(&job.target, encoding).await;
            if !matches!(accepted, Ok(true)) {
                let e = accepted.err().unwrap_or_else(|| {
                    Error::internal(format!(
                        "a sink refuses the encoded rows of `{}` another sink accepted",
                        job.source.name
                    ))
                });
                shared.fail(e.context(format!("preparing the copy of `{}`", job.source.name)));
                return CopySummary::default();
            }
        }
    }
    // Reader task: streams chunks into per-chunk bounded queues, one chunk ahead.
    let (feed_tx, mut feed_rx) = mpsc::channel::<ChunkFeed>(1);
    let rshared = shared.clone();
    let reader_task = tokio::spawn(async move {
        while let Some((t, c)) = rshared.next_chunk() {
            let (tx, rx) = mpsc::channel(queue_batches);
            if feed_tx.send((t, c, rx)).await.is_err() {
                break;
            }
            let job = &rshared.jobs[t];
            let chunk = &job.chunks[c];
            let mut stream = match &job.encoding {
                Some(encoding) => reader.read_chunk_encoded(&job.source, chunk, encoding),
                None => reader.read_chunk(&job.source, chunk),
            };
            while let Some(batch) = stream.next().await {
                let failed = batch.is_err();
                if tx.send(batch).await.is_err() || failed {
                    break;
                }
            }
        }
    });

    let mut summary = CopySummary::default();
    let mut failed = false;
    while let Some((t, c, rx)) = feed_rx.recv().await {
        let job = &shared.jobs[t];
        let chunk = &job.chunks[c];
        let started = Instant::now();
        let live = Arc::new(Liveness::new());
        let converted = convert_stream(shared.clone(), t, rx, live.clone());
        let write = sink.write_chunk(&job.target, chunk, converted.boxed());
        match watch_stalls(write, &live, shared.stall_timeout).await {
            Ok(stats) => {
                summary.rows += stats.rows;
                summary.bytes += stats.bytes;
                summary.chunks += 1;
                tracing::debug!(table = %job.source.name, chunk = chunk.index, rows = stats.rows, "chunk copied");
                shared.emit(ProgressEvent::ChunkDone {
                    table: job.source.name.clone(),
                    chunk: chunk.index,
                    rows: stats.rows,
                    bytes: stats.bytes,
                    elapsed: started.elapsed(),
                });
            }
            Err(e) => {
                shared.fail(e.context(format!(
                    "copying chunk {} of `{}`",
                    chunk.index, job.source.name
                )));
                failed = true;
                break;
            }
        }
    }
    drop(feed_rx);
    if failed {
        reader_task.abort();
    }
    let _ = reader_task.await;
    summary
}

/// Runs a chunk's write, failing it with a retryable error when no batch moves for
/// `limit` (see [`CopyOptions::stall_timeout`]). Dropping the write aborts its statement.
async fn watch_stalls<F>(write: F, live: &Liveness, limit: Option<std::time::Duration>) -> F::Output
where
    F: std::future::Future<Output = Result<dts_core::ChunkStats>>,
{
    let Some(limit) = limit else {
        return write.await;
    };
    let check = (limit / 4).clamp(
        std::time::Duration::from_millis(50),
        std::time::Duration::from_secs(5),
    );
    tokio::pin!(write);
    loop {
        tokio::select! {
            done = &mut write => return done,
            () = tokio::time::sleep(check) => {
                if live.idle().is_some_and(|idle| idle >= limit) {
                    return Err(Error::new(
                        ErrorKind::Connection,
                        format!(
                            "no rows moved for {} s: a source or target connection stalled",
                            limit.as_secs_f64()
                        ),
                    ));
                }
            }
        }
    }
}

/// Converts each batch of a chunk, applying the bad-row policy and the throttle.
fn convert_stream(
    shared: Arc<Shared>,
    table: usize,
    rx: mpsc::Receiver<Result<RowBatch>>,
    live: Arc<Liveness>,
) -> impl futures::Stream<Item = Result<RowBatch>> + Send + 'static {
    futures::stream::unfold((shared, rx), move |(shared, mut rx)| {
        let live = live.clone();
        async move {
            let batch = rx.recv().await?;
            live.beat();
            let out = match batch {
                Err(e) => Err(e),
                Ok(batch) => convert_batch(&shared, table, batch),
            };
            if let Ok(b) = &out {
                live.throttled.store(true, Ordering::Relaxed);
                shared
                    .throttle
                    .acquire(b.len() as u64, b.size_bytes as u64)
                    .await;
                live.throttled.store(false, Ordering::Relaxed);
                live.beat();
            }
            Some((out, (shared, rx)))
        }
    })
}

fn convert_batch(shared: &Shared, table: usize, mut batch: RowBatch) -> Result<RowBatch> {
    let job = &shared.jobs[table];
    if batch.encoded.is_some() {
        // Rows already in the target's encoding (see `TableJob::encoding`) pass as they
        // are; the batch's values, rows the reader could not encode, are converted below.
        if job.encoding.is_none() {
            return Err(Error::internal(format!(
                "encoded rows of `{}` the copy did not ask for",
                job.source.name
            )));
        }
        if batch.rows.is_empty() {
            return Ok(batch);
        }
    }
    let mut rejected_any = false;
    let mut keep = vec![true; batch.rows.len()];
    for (i, row) in batch.rows.iter_mut().enumerate() {
        let original = if shared.rejects.is_some() {
            Some(row.clone())
        } else {
            None
        };
        if let Err(f) = job.mapper.map_row(row) {
            let column = job.source_columns.get(f.column).map_or("?", String::as_str);
            let key = key_text(job, original.as_ref().unwrap_or(row));
            match (&shared.rejects, original) {
                (Some(w), Some(original)) => {
                    keep[i] = false;
                    rejected_any = true;
                    shared.rejected.fetch_add(1, Ordering::Relaxed);
                    shared.emit(ProgressEvent::RowRejected {
                        table: job.source.name.clone(),
                        column: column.to_string(),
                        key: key.clone(),
                        reason: f.error.message().to_string(),
                    });
                    let mut w = w
                        .lock()
                        .map_err(|_| Error::internal("reject file lock poisoned"))?;
                    writeln!(
                        w,
                        "{}\t{column}\t{key}\t{}\t{original:?}",
                        job.source.name,
                        f.error.message()
                    )?;
                }
                _ => {
                    return Err(Error::new(
                        ErrorKind::Value,
                        format!(
                            "column `{}`.`{column}` at key {key}: {}",
                            job.source.name,
                            f.error.message()
                        ),
                    )
                    .with_source(f.error));
                }
            }
        }
    }
    if rejected_any {
        // The rejected rows reach the disk before the batch goes on: the chunk that left
        // them out commits after its last batch, so a crash never loses a rejected row.
        if let Some(w) = &shared.rejects {
            let mut w = w
                .lock()
                .map_err(|_| Error::internal("reject file lock poisoned"))?;
            w.flush()?;
            w.get_ref().sync_data()?;
        }
        let mut it = keep.iter();
        batch.rows.retain(|_| *it.next().unwrap_or(&true));
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dts_core::{ChunkStats, ConvertFailure, KeyProber, TableName};
    use futures::stream::BoxStream;
    use tokio::sync::Barrier;

    /// Keeps rows as they are.
    struct Identity;

    impl RowMapper for Identity {
        fn map_row(&self, _: &mut Row) -> std::result::Result<(), ConvertFailure> {
            Ok(())
        }

        fn replaced_values(&self) -> Vec<(String, u64)> {
            Vec::new()
        }
    }

    /// Reads one row per chunk, or fails on the chunks of `failing` tables, once every
    /// worker has taken a chunk (so that no worker takes them all).
    struct Reader {
        all: Arc<Barrier>,
        failing: &'static str,
    }

    impl SnapshotReader for Reader {
        fn read_chunk<'a>(
            &'a mut self,
            table: &'a Table,
            chunk: &'a Chunk,
        ) -> BoxStream<'a, Result<RowBatch>> {
            let batch = if table.name.name == self.failing {
                Err(Error::new(
                    ErrorKind::Connection,
                    format!("reading chunk {} of `{}`", chunk.index, table.name),
                ))
            } else {
                Ok(RowBatch {
                    rows: vec![vec![Value::Null]],
                    size_bytes: 1,
                    encoded: None,
                })
            };
            let all = self.all.clone();
            futures::stream::once(async move {
                all.wait().await;
                batch
            })
            .boxed()
        }

        fn key_prober<'a>(
            &'a mut self,
            _: &'a Table,
            _: &'a [String],
        ) -> Result<Box<dyn KeyProber + 'a>> {
            Err(Error::internal("no prober"))
        }
    }

    /// Writes chunks, and fails on `failing` tables.
    struct Sink {
        failing: &'static str,
    }

    #[dts_core::async_trait]
    impl ChunkSink for Sink {
        async fn write_chunk<'a>(
            &'a mut self,
            table: &'a TargetTable,
            _: &'a Chunk,
            mut batches: BoxStream<'a, Result<RowBatch>>,
        ) -> Result<ChunkStats> {
            let mut stats = ChunkStats::default();
            while let Some(batch) = batches.next().await {
                stats.rows += batch?.len() as u64;
            }
            if table.name.name == self.failing {
                return Err(Error::new(
                    ErrorKind::Database,
                    format!("writing into `{}`", table.name),
                ));
            }
            Ok(stats)
        }

        async fn done_chunks(&mut self, _: &TargetTable) -> Result<Vec<u32>> {
            Ok(Vec::new())
        }
    }

    fn job(name: &str) -> TableJob {
        let table = Table {
            name: TableName::new("shop", name),
            columns: Vec::new(),
            primary_key: None,
            indexes: Vec::new(),
            foreign_keys: Vec::new(),
            comment: None,
            estimated_rows: 1,
            auto_increment: None,
        };
        TableJob {
            source: Arc::new(table),
            source_columns: vec!["id".into()],
            target: TargetTable {
                name: TableName::new("shop", name),
                columns: vec!["id".into()],
            },
            mapper: Arc::new(Identity),
            chunks: vec![Chunk::whole_table()],
            done: BTreeSet::new(),
            estimated_rows: 1,
            encoding: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_failing_worker_is_reported() {
        // Two workers take one table each; the reader of `a` and the sink of `b` fail.
        let all = Arc::new(Barrier::new(2));
        let readers = vec![
            Reader {
                all: all.clone(),
                failing: "a",
            },
            Reader { all, failing: "a" },
        ];
        let sinks = vec![Sink { failing: "b" }, Sink { failing: "b" }];
        let (_stop_tx, stop) = watch::channel(false);
        let e = copy_tables(
            vec![job("a"), job("b")],
            readers,
            sinks,
            CopyOptions::default(),
            None,
            stop,
        )
        .await
        .unwrap_err();

        assert_eq!(e.related().len(), 1, "{}", e.report());
        let mut kinds = vec![e.kind(), e.related()[0].kind()];
        kinds.sort_by_key(|k| k.to_string());
        assert_eq!(kinds, [ErrorKind::Connection, ErrorKind::Database]);
        let report = e.report();
        assert_eq!(report.lines().count(), 2, "{report}");
        assert!(
            report.contains(
                "connection error: copying chunk 0 of `shop.a`: reading chunk 0 of `shop.a`"
            ),
            "{report}"
        );
        assert!(
            report.contains("database error: copying chunk 0 of `shop.b`: writing into `shop.b`"),
            "{report}"
        );
        assert!(
            report.lines().nth(1).unwrap().starts_with("also: "),
            "{report}"
        );
    }

    #[tokio::test]
    async fn one_failure_has_no_related_errors() {
        let e = copy_tables(
            vec![job("a")],
            vec![Reader {
                all: Arc::new(Barrier::new(1)),
                failing: "none",
            }],
            vec![Sink { failing: "a" }],
            CopyOptions::default(),
            None,
            watch::channel(false).1,
        )
        .await
        .unwrap_err();
        assert!(e.related().is_empty());
        assert_eq!(
            e.report(),
            "database error: copying chunk 0 of `shop.a`: writing into `shop.a`"
        );
    }

    /// Reads every chunk as two encoded rows, and values otherwise.
    struct EncodedReader;

    impl SnapshotReader for EncodedReader {
        fn read_chunk<'a>(
            &'a mut self,
            _: &'a Table,
            _: &'a Chunk,
        ) -> BoxStream<'a, Result<RowBatch>> {
            futures::stream::once(async { Ok(RowBatch::default()) }).boxed()
        }

        fn key_prober<'a>(
            &'a mut self,
            _: &'a Table,
            _: &'a [String],
        ) -> Result<Box<dyn KeyProber + 'a>> {
            Err(Error::internal("no prober"))
        }

        fn read_chunk_encoded<'a>(
            &'a mut self,
            _: &'a Table,
            _: &'a Chunk,
            _: &'a RowEncoding,
        ) -> BoxStream<'a, Result<RowBatch>> {
            futures::stream::once(async { Ok(RowBatch::encoded(2, vec![1, 2, 3])) }).boxed()
        }
    }

    /// Takes the encoding when `accepts`, and records the bytes it got.
    struct EncodedSink {
        accepts: bool,
        got: Vec<u8>,
    }

    #[dts_core::async_trait]
    impl ChunkSink for EncodedSink {
        async fn write_chunk<'a>(
            &'a mut self,
            _: &'a TargetTable,
            _: &'a Chunk,
            mut batches: BoxStream<'a, Result<RowBatch>>,
        ) -> Result<ChunkStats> {
            let mut stats = ChunkStats::default();
            while let Some(batch) = batches.next().await {
                let batch = batch?;
                stats.rows += batch.len() as u64;
                self.got
                    .extend(batch.encoded.map(|e| e.data).unwrap_or_default());
            }
            Ok(stats)
        }

        async fn done_chunks(&mut self, _: &TargetTable) -> Result<Vec<u32>> {
            Ok(Vec::new())
        }

        async fn accepts_encoding(&mut self, _: &TargetTable, _: &RowEncoding) -> Result<bool> {
            Ok(self.accepts)
        }
    }

    #[tokio::test]
    async fn encoded_rows_pass_untouched_only_to_sinks_that_accept_them() {
        let mut encoded = job("a");
        encoded.encoding = Some(RowEncoding::PgBinaryCopy {
            types: vec![(20, -1)],
        });
        let (_stop_tx, stop) = watch::channel(false);
        let summary = copy_tables(
            vec![encoded.clone()],
            vec![EncodedReader],
            vec![EncodedSink {
                accepts: true,
                got: Vec::new(),
            }],
            CopyOptions::default(),
            None,
            stop.clone(),
        )
        .await
        .unwrap();
        assert_eq!(summary.rows, 2);

        // A sink that refuses the encoding is never given encoded rows.
        let e = copy_tables(
            vec![encoded],
            vec![EncodedReader],
            vec![EncodedSink {
                accepts: false,
                got: Vec::new(),
            }],
            CopyOptions::default(),
            None,
            stop,
        )
        .await
        .unwrap_err();
        assert!(
            e.report().contains("preparing the copy of `shop.a`"),
            "{}",
            e.report()
        );
    }

    /// Reads every chunk as one batch of two encoded rows and the values `values`.
    struct MixedReader {
        values: Vec<Row>,
    }

    impl SnapshotReader for MixedReader {
        fn read_chunk<'a>(
            &'a mut self,
            _: &'a Table,
            _: &'a Chunk,
        ) -> BoxStream<'a, Result<RowBatch>> {
            futures::stream::once(async { Ok(RowBatch::default()) }).boxed()
        }

        fn key_prober<'a>(
            &'a mut self,
            _: &'a Table,
            _: &'a [String],
        ) -> Result<Box<dyn KeyProber + 'a>> {
            Err(Error::internal("no prober"))
        }

        fn read_chunk_encoded<'a>(
            &'a mut self,
            _: &'a Table,
            _: &'a Chunk,
            _: &'a RowEncoding,
        ) -> BoxStream<'a, Result<RowBatch>> {
            let mut batch = RowBatch::encoded(2, vec![1, 2, 3]);
            for row in self.values.clone() {
                batch.push(row);
            }
            futures::stream::once(async move { Ok(batch) }).boxed()
        }
    }

    /// Doubles integers, and refuses 13.
    struct Doubling;

    impl RowMapper for Doubling {
        fn map_row(&self, row: &mut Row) -> std::result::Result<(), ConvertFailure> {
            for (column, v) in row.iter_mut().enumerate() {
                match v {
                    Value::Int(13) => {
                        return Err(ConvertFailure {
                            column,
                            error: Error::new(ErrorKind::Value, "thirteen"),
                        })
                    }
                    Value::Int(n) => *n *= 2,
                    _ => {}
                }
            }
            Ok(())
        }

        fn replaced_values(&self) -> Vec<(String, u64)> {
            Vec::new()
        }
    }

    /// Records the values it got beside the encoded rows.
    struct MixedSink {
        values: Arc<Mutex<Vec<Row>>>,
    }

    #[dts_core::async_trait]
    impl ChunkSink for MixedSink {
        async fn write_chunk<'a>(
            &'a mut self,
            _: &'a TargetTable,
            _: &'a Chunk,
            mut batches: BoxStream<'a, Result<RowBatch>>,
        ) -> Result<ChunkStats> {
            let mut stats = ChunkStats::default();
            while let Some(batch) = batches.next().await {
                let batch = batch?;
                assert!(batch.encoded.is_some());
                stats.rows += batch.len() as u64;
                self.values.lock().unwrap().extend(batch.rows);
            }
            Ok(stats)
        }

        async fn done_chunks(&mut self, _: &TargetTable) -> Result<Vec<u32>> {
            Ok(Vec::new())
        }

        async fn accepts_encoding(&mut self, _: &TargetTable, _: &RowEncoding) -> Result<bool> {
            Ok(true)
        }
    }

    #[tokio::test]
    async fn values_beside_encoded_rows_are_converted_and_judged() {
        let mut encoded = job("a");
        encoded.mapper = Arc::new(Doubling);
        encoded.encoding = Some(RowEncoding::PgBinaryCopy {
            types: vec![(20, -1)],
        });
        let (_stop_tx, stop) = watch::channel(false);
        let values = Arc::new(Mutex::new(Vec::new()));
        let summary = copy_tables(
            vec![encoded.clone()],
            vec![MixedReader {
                values: vec![vec![Value::Int(4)]],
            }],
            vec![MixedSink {
                values: values.clone(),
            }],
            CopyOptions::default(),
            None,
            stop.clone(),
        )
        .await
        .unwrap();
        assert_eq!(summary.rows, 3);
        assert_eq!(*values.lock().unwrap(), vec![vec![Value::Int(8)]]);

        // A value the mapping refuses stops the copy, naming its column.
        let e = copy_tables(
            vec![encoded],
            vec![MixedReader {
                values: vec![vec![Value::Int(13)]],
            }],
            vec![MixedSink {
                values: Arc::new(Mutex::new(Vec::new())),
            }],
            CopyOptions::default(),
            None,
            stop,
        )
        .await
        .unwrap_err();
        assert!(e.report().contains("`shop.a`.`id`"), "{}", e.report());
        assert!(e.report().contains("thirteen"), "{}", e.report());
    }
}
