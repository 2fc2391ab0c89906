//! Marking errors with the end of the migration they come from.
//!
//! The registry knows which connector is the source and which the target, the connectors
//! themselves do not. It wraps every per-connection object it hands out in [`AtEnd`], which
//! records the end on each error passing through (see [`Error::with_end`]: an end recorded
//! earlier stays, so a source error a target's chunk sink returns stays a source error).

use std::collections::BTreeSet;
use std::time::Duration;

use dts_core::{
    async_trait, ApplySink, ApplyStats, Catalog, ChangeEvent, ChangeSource, Chunk, ChunkSink,
    ChunkStats, End, Error, KeyProber, Position, ReaderRecord, Result, RowBatch, SnapshotReader,
    StateStore, Table, TableName, TargetTable, Value,
};
use dts_core::{
    CopiedChunks, DroppedState, PublishedProgress, RowEncoding, RunHolder, TaskFailure, TaskRecord,
    TaskState,
};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;

/// Marks an error as the source's.
pub(crate) fn source_error(e: Error) -> Error {
    e.with_end(End::Source)
}

/// Marks an error as the target's.
pub(crate) fn target_error(e: Error) -> Error {
    e.with_end(End::Target)
}

/// A connector object whose errors are marked with the end it belongs to.
pub(crate) struct AtEnd<T> {
    inner: T,
    end: End,
}

impl<T> AtEnd<T> {
    /// Marks the errors of a source's object.
    pub(crate) fn source(inner: T) -> Self {
        Self {
            inner,
            end: End::Source,
        }
    }

    /// Marks the errors of a target's object.
    pub(crate) fn target(inner: T) -> Self {
        Self {
            inner,
            end: End::Target,
        }
    }

    fn mark<V>(&self, r: Result<V>) -> Result<V> {
        r.map_err(|e| e.with_end(self.end))
    }
}

#[async_trait]
impl<P: KeyProber> KeyProber for AtEnd<P> {
    async fn key_after(
        &mut self,
        after: Option<&[Value]>,
        step: u64,
    ) -> Result<Option<Vec<Value>>> {
        let r = self.inner.key_after(after, step).await;
        self.mark(r)
    }

    async fn key_range(&mut self) -> Result<Option<(Vec<Value>, Vec<Value>)>> {
        let r = self.inner.key_range().await;
        self.mark(r)
    }
}

/// `stream` with the failing `end` marked on each of its errors.
fn marked<'a, T: Send + 'a>(
    end: End,
    stream: BoxStream<'a, Result<T>>,
) -> BoxStream<'a, Result<T>> {
    stream.map(move |r| r.map_err(|e| e.with_end(end))).boxed()
}

impl<R: SnapshotReader> SnapshotReader for AtEnd<R> {
    fn read_chunk<'a>(
        &'a mut self,
        table: &'a Table,
        chunk: &'a Chunk,
    ) -> BoxStream<'a, Result<RowBatch>> {
        marked(self.end, self.inner.read_chunk(table, chunk))
    }

    fn key_prober<'a>(
        &'a mut self,
        table: &'a Table,
        key: &'a [String],
    ) -> Result<Box<dyn KeyProber + 'a>> {
        let end = self.end;
        match self.inner.key_prober(table, key) {
            Ok(prober) => Ok(Box::new(AtEnd { inner: prober, end })),
            Err(e) => Err(e.with_end(end)),
        }
    }

    fn hold<'a>(&'a mut self, tables: &'a [&'a Table]) -> BoxFuture<'a, Result<()>> {
        let end = self.end;
        let inner = self.inner.hold(tables);
        Box::pin(async move { inner.await.map_err(|e| e.with_end(end)) })
    }

    fn row_encoding<'a>(
        &'a mut self,
        table: &'a Table,
    ) -> BoxFuture<'a, Result<Option<RowEncoding>>> {
        let end = self.end;
        let inner = self.inner.row_encoding(table);
        Box::pin(async move { inner.await.map_err(|e| e.with_end(end)) })
    }

    fn read_chunk_encoded<'a>(
        &'a mut self,
        table: &'a Table,
        chunk: &'a Chunk,
        encoding: &'a RowEncoding,
    ) -> BoxStream<'a, Result<RowBatch>> {
        marked(
            self.end,
            self.inner.read_chunk_encoded(table, chunk, encoding),
        )
    }
}

#[async_trait]
impl<S: ChunkSink> ChunkSink for AtEnd<S> {
    async fn write_chunk<'a>(
        &'a mut self,
        table: &'a TargetTable,
        chunk: &'a Chunk,
        batches: BoxStream<'a, Result<RowBatch>>,
    ) -> Result<ChunkStats> {
        let r = self.inner.write_chunk(table, chunk, batches).await;
        self.mark(r)
    }

    async fn done_chunks(&mut self, table: &TargetTable) -> Result<Vec<u32>> {
        let r = self.inner.done_chunks(table).await;
        self.mark(r)
    }

    async fn accepts_encoding(
        &mut self,
        table: &TargetTable,
        encoding: &RowEncoding,
    ) -> Result<bool> {
        let r = self.inner.accepts_encoding(table, encoding).await;
        self.mark(r)
    }
}

#[async_trait]
impl<S: ChangeSource> ChangeSource for AtEnd<S> {
    async fn next_events(&mut self, max: usize, timeout: Duration) -> Result<Vec<ChangeEvent>> {
        let r = self.inner.next_events(max, timeout).await;
        self.mark(r)
    }

    fn acknowledge(&mut self, position: &Position) {
        self.inner.acknowledge(position);
    }
}

#[async_trait]
impl<K: ApplySink> ApplySink for AtEnd<K> {
    async fn apply(&mut self, events: &[ChangeEvent], position: &Position) -> Result<ApplyStats> {
        let r = self.inner.apply(events, position).await;
        self.mark(r)
    }

    async fn apply_part(&mut self, events: &[ChangeEvent]) -> Result<ApplyStats> {
        let r = self.inner.apply_part(events).await;
        self.mark(r)
    }

    async fn applied_position(&mut self) -> Result<Option<Position>> {
        let r = self.inner.applied_position().await;
        self.mark(r)
    }
}

#[async_trait]
impl<S: StateStore> StateStore for AtEnd<S> {
    async fn migrate(&self) -> Result<()> {
        self.mark(self.inner.migrate().await)
    }

    async fn is_done(&self, step: &str) -> Result<bool> {
        self.mark(self.inner.is_done(step).await)
    }

    async fn mark_done(&self, step: &str) -> Result<()> {
        self.mark(self.inner.mark_done(step).await)
    }

    async fn kept_tables(&self) -> Result<BTreeSet<TableName>> {
        self.mark(self.inner.kept_tables().await)
    }

    async fn record_snapshot(&self, position: Option<&Position>) -> Result<()> {
        self.mark(self.inner.record_snapshot(position).await)
    }

    async fn snapshot_positions(&self) -> Result<Vec<Position>> {
        self.mark(self.inner.snapshot_positions().await)
    }

    async fn chunk_snapshot_position(&self, table: &TableName) -> Result<Option<Position>> {
        self.mark(self.inner.chunk_snapshot_position(table).await)
    }

    async fn chunk_plan(&self, table: &TableName) -> Result<Option<Vec<Chunk>>> {
        self.mark(self.inner.chunk_plan(table).await)
    }

    async fn store_chunk_plan(&self, table: &TableName, chunks: &[Chunk]) -> Result<()> {
        self.mark(self.inner.store_chunk_plan(table, chunks).await)
    }

    async fn applied_position(&self) -> Result<Option<Position>> {
        self.mark(self.inner.applied_position().await)
    }

    async fn start_position(&self, position: &Position) -> Result<bool> {
        self.mark(self.inner.start_position(position).await)
    }

    async fn tracked_schema(&self) -> Result<Option<Catalog>> {
        self.mark(self.inner.tracked_schema().await)
    }

    async fn built_catalog(&self) -> Result<Option<Catalog>> {
        self.mark(self.inner.built_catalog().await)
    }

    async fn record_built_catalog(&self, catalog: &Catalog) -> Result<()> {
        self.mark(self.inner.record_built_catalog(catalog).await)
    }

    async fn record_schema(&self, catalog: &Catalog, position: &Position) -> Result<()> {
        self.mark(self.inner.record_schema(catalog, position).await)
    }

    async fn reader(&self) -> Result<Option<ReaderRecord>> {
        self.mark(self.inner.reader().await)
    }

    async fn record_reader(&self, reader: &ReaderRecord) -> Result<()> {
        self.mark(self.inner.record_reader(reader).await)
    }

    async fn lock_run(&self) -> Result<()> {
        self.mark(self.inner.lock_run().await)
    }

    async fn task_record(&self) -> Result<Option<TaskRecord>> {
        self.mark(self.inner.task_record().await)
    }

    async fn record_state(&self, state: TaskState, failure: Option<&TaskFailure>) -> Result<()> {
        self.mark(self.inner.record_state(state, failure).await)
    }

    async fn beat(&self, progress: Option<&PublishedProgress>) -> Result<bool> {
        self.mark(self.inner.beat(progress).await)
    }

    async fn request_stop(&self) -> Result<bool> {
        self.mark(self.inner.request_stop().await)
    }

    async fn record_switchover_position(&self, position: &Position) -> Result<()> {
        self.mark(self.inner.record_switchover_position(position).await)
    }

    async fn run_holder(&self) -> Result<Option<RunHolder>> {
        self.mark(self.inner.run_holder().await)
    }

    async fn copied_chunks(&self) -> Result<Vec<CopiedChunks>> {
        self.mark(self.inner.copied_chunks().await)
    }

    async fn planned_chunks(&self) -> Result<Vec<(TableName, u64)>> {
        self.mark(self.inner.planned_chunks().await)
    }

    async fn statements_done(&self, step: &str) -> Result<u64> {
        self.mark(self.inner.statements_done(step).await)
    }

    async fn applied_age(&self) -> Result<Option<std::time::Duration>> {
        self.mark(self.inner.applied_age().await)
    }

    async fn drop_task(&self) -> Result<DroppedState> {
        self.mark(self.inner.drop_task().await)
    }

    async fn run_lock_lost(&self) -> Error {
        self.inner.run_lock_lost().await.with_end(self.end)
    }
}

impl<R: dts_core::TargetReader> dts_core::TargetReader for AtEnd<R> {
    fn read_chunk<'a>(
        &'a mut self,
        table: &'a TargetTable,
        chunk: &'a Chunk,
    ) -> BoxStream<'a, Result<RowBatch>> {
        marked(self.end, self.inner.read_chunk(table, chunk))
    }
}

#[async_trait]
impl<S: dts_core::RepairSink> dts_core::RepairSink for AtEnd<S> {
    async fn hold_apply(&mut self, task: &str) -> Result<Option<Position>> {
        let r = self.inner.hold_apply(task).await;
        self.mark(r)
    }

    async fn repair(
        &mut self,
        table: &TargetTable,
        key: &[String],
        repairs: &[dts_core::Repair],
        mode: dts_core::RepairMode,
    ) -> Result<Vec<String>> {
        let r = self.inner.repair(table, key, repairs, mode).await;
        self.mark(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dts_core::ErrorKind;

    struct Failing;

    #[async_trait]
    impl ChangeSource for Failing {
        async fn next_events(&mut self, _: usize, _: Duration) -> Result<Vec<ChangeEvent>> {
            Err(Error::new(ErrorKind::Connection, "reading the binlog"))
        }

        fn acknowledge(&mut self, _: &Position) {}
    }

    #[async_trait]
    impl ChunkSink for Failing {
        async fn write_chunk<'a>(
            &'a mut self,
            _: &'a TargetTable,
            _: &'a Chunk,
            mut batches: BoxStream<'a, Result<RowBatch>>,
        ) -> Result<ChunkStats> {
            while let Some(b) = batches.next().await {
                b?;
            }
            Err(Error::new(ErrorKind::Database, "writing"))
        }

        async fn done_chunks(&mut self, _: &TargetTable) -> Result<Vec<u32>> {
            Ok(Vec::new())
        }
    }

    #[tokio::test]
    async fn errors_are_marked_with_their_end() {
        let e = AtEnd::source(Failing)
            .next_events(1, Duration::ZERO)
            .await
            .unwrap_err();
        assert_eq!(e.end(), Some(End::Source));
        assert_eq!(
            e.to_string(),
            "source: connection error: reading the binlog"
        );

        let table = TargetTable {
            name: TableName::new("shop", "orders"),
            columns: Vec::new(),
        };
        let chunk = Chunk::whole_table();
        let mut sink = AtEnd::target(Failing);
        let e = sink
            .write_chunk(&table, &chunk, futures::stream::empty().boxed())
            .await
            .unwrap_err();
        assert_eq!(e.end(), Some(End::Target));

        // A source error the sink passes on stays the source's.
        let from_source =
            Error::new(ErrorKind::Connection, "reading chunk 0").with_end(End::Source);
        let batches = futures::stream::iter([Err(from_source)]).boxed();
        let e = sink.write_chunk(&table, &chunk, batches).await.unwrap_err();
        assert_eq!(e.end(), Some(End::Source));
    }
}
