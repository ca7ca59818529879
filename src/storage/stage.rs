//! Bulk appends (`COPY ... FROM STDIN`): one statement whose rows arrive over time and may not fit
//! in memory, written while they arrive and published all at once.
//!
//! # Design
//! Rows are conformed to the table as they come (casts, defaults, NOT NULL with the statement's row
//! numbers) and buffered. Whenever `stage_rows` rows are buffered they become the next rows of a
//! *staged* segment: a normal Parquet segment file (plus its key index) under `data/`, with an id
//! reserved from the manifest's counter, that no manifest lists yet. Readers only ever see segments
//! of a committed manifest, so staged files are invisible, and the buffer's memory is released once
//! its rows are encoded; each completed row group is uploaded at once. A chunk is sorted, encoded
//! and uploaded in the background while the next one fills (at most one at a time), so parsing and
//! encoding use two cores. Chunks are small (32Ki rows by default) so that the statement's first
//! chunk, parsed while the encoder has nothing to do, and its last, encoded after the input ended,
//! are short; row groups still have their full size. Memory is thus bounded by two chunks, a row
//! group's encoded pages and the statement's event-id hashes (8 bytes per row in a hash set),
//! whatever the size of the statement.
//!
//! Chunks go on into the same file while their rows follow the file's in time and it has fewer than
//! `compaction_target_rows` rows; otherwise the file is finished and a new one started. Time-ordered
//! input (most exports) thus lands in files of the compaction target's size, sorted by `ts`, which
//! compaction leaves alone: each row is encoded once.
//!
//! At the end, [`BulkAppend::commit`] stages what is left and commits one manifest version that
//! lists every staged segment: that create-if-absent write is the statement's single commit point,
//! so all of its rows become visible (one snapshot swap) and durable together. A statement that never
//! filled a chunk skips staging and goes through the WAL like any INSERT.
//!
//! * Atomic: until the manifest commit nothing of the statement is visible; if the statement fails
//!   (bad input, client gone, I/O error) its staged files are deleted, and if the process dies they
//!   are unreferenced files, which table open deletes (`delete_orphans` in `table.rs`).
//! * Durable: segment files, key indexes and the manifest are fsynced (with `sync`) before the
//!   commit returns.
//! * Idempotent: each chunk is checked, under the writer lock, against the stored event ids and the
//!   ids kept earlier in the statement; rows already present are dropped before staging. Other
//!   writers are not blocked while a statement streams, so the check is repeated at commit, under
//!   the lock, when stored keys changed meanwhile: a staged row whose id was stored concurrently is
//!   removed (its segment rewritten). If rows were *removed* meanwhile (DELETE, TRUNCATE) and the
//!   statement had skipped rows as already stored, those skips may no longer be right and the rows
//!   are gone from memory, so the statement fails and can be retried.
//!
//! It owns staging, the final commit and clean-up of a bulk append. It must not parse input (that is
//! `crate::copy`) nor change the WAL or segment formats.

use std::sync::Arc;

use datafusion::arrow::array::{BooleanArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::error::DataFusionError;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::keys::{self, KeySet};
use super::manifest::SegmentMeta;
use super::options::TableKind;
use super::segment::{self, SegmentWriter};
use super::table::TableCore;
use crate::error::{Error, Result};

/// One statement's rows on their way into a durable table, staged in segment files invisible to
/// readers until [`BulkAppend::commit`]. Dropping it uncommitted deletes what was staged.
#[derive(Debug)]
pub struct BulkAppend {
    inner: Option<Box<Staging>>,
}

impl BulkAppend {
    pub(crate) fn new(core: Arc<TableCore>) -> Self {
        let usage = core.options.kind == TableKind::Usage;
        BulkAppend {
            inner: Some(Box::new(Staging {
                core,
                rows_in: 0,
                buffer: Vec::new(),
                buffer_rows: 0,
                staged: Vec::new(),
                seen: usage.then(KeySet::default),
                skipped_stored: 0,
                checked_at: None,
                writing: None,
                open: None,
                done: false,
            })),
        }
    }

    fn take(&mut self) -> Result<Box<Staging>> {
        self.inner
            .take()
            .ok_or_else(|| Error::Internal("bulk append used after it failed".into()))
    }

    /// Add rows to the statement (columns by position, cast to the table's types). A full chunk is
    /// staged before this returns. On error the statement is over: what was staged is deleted and
    /// later calls fail.
    pub async fn push(&mut self, batches: Vec<RecordBatch>) -> crate::Result<()> {
        let mut staging = self.take()?;
        // In its own task, so a cancelled statement cannot stop a segment write halfway; the
        // staging state comes back with the outcome.
        let (staging, outcome) = tokio::spawn(async move {
            let outcome = staging.push(batches).await;
            (staging, outcome)
        })
        .await
        .map_err(|e| Error::Internal(format!("staging task failed: {e}")))?;
        match outcome {
            Ok(()) => {
                self.inner = Some(staging);
                Ok(())
            }
            Err(e) => {
                staging.abort().await;
                Err(e)
            }
        }
    }

    /// Publish every row of the statement atomically and durably; returns the rows inserted
    /// (usage tables skip rows whose `event_id` is stored already or earlier in the statement).
    pub async fn commit(mut self) -> crate::Result<u64> {
        let staging = self.take()?;
        let (done, outcome) = oneshot::channel();
        tokio::spawn(staging.commit(done));
        outcome
            .await
            .map_err(|_| Error::Internal("storage write task failed".into()))?
    }

    /// Give up the statement: delete what was staged.
    pub async fn abort(mut self) {
        if let Some(staging) = self.inner.take() {
            staging.abort().await;
        }
    }

    /// Rows staged in segment files so far (not counting the in-memory chunk), once the segment
    /// being written is.
    #[cfg(test)]
    pub(crate) async fn staged_rows(&mut self) -> u64 {
        match self.inner.as_mut() {
            Some(staging) => {
                let _ = staging.settle().await;
                staging.staged.iter().map(|m| m.rows).sum::<u64>()
                    + staging.open.as_ref().map_or(0, SegmentWriter::rows)
            }
            None => 0,
        }
    }

    /// Forget the statement without deleting its staged files, as a crash would.
    #[cfg(test)]
    pub(crate) async fn abandon(mut self) -> Vec<u64> {
        match self.inner.take() {
            Some(mut staging) => {
                let _ = staging.close().await;
                staging.done = true;
                staging.staged.iter().map(|m| m.id).collect()
            }
            None => Vec::new(),
        }
    }
}

/// The state of a bulk append.
#[derive(Debug)]
struct Staging {
    core: Arc<TableCore>,
    /// Rows received so far, for the row numbers of messages.
    rows_in: usize,
    /// Conformed rows not staged yet.
    buffer: Vec<RecordBatch>,
    buffer_rows: usize,
    /// Staged segments, in order.
    staged: Vec<SegmentMeta>,
    /// Event-id hashes of the rows kept so far (usage tables).
    seen: Option<KeySet>,
    /// Rows dropped because their event id was stored.
    skipped_stored: u64,
    /// The writer's `(keys_added, keys_removed)` when stored keys were first checked.
    checked_at: Option<(u64, u64)>,
    /// The chunk being written in the background, at most one: the next chunk is parsed,
    /// conformed and checked meanwhile. When it is settled, the file it finished (if any) joins
    /// `staged` and the file it went into becomes `open`.
    writing: Option<JoinHandle<Result<Written>>>,
    /// The staged segment later chunks go on into, while the background write is not running.
    open: Option<SegmentWriter>,
    /// Committed or cleaned up: nothing to delete on drop.
    done: bool,
}

impl Staging {
    async fn push(&mut self, batches: Vec<RecordBatch>) -> Result<()> {
        let batches = self.core.prepare_from(batches, self.rows_in)?;
        for batch in batches {
            self.rows_in += batch.num_rows();
            self.buffer_rows += batch.num_rows();
            if batch.num_rows() > 0 {
                self.buffer.push(batch);
            }
        }
        if self.buffer_rows >= self.core.settings.stage_rows.max(1) {
            self.stage().await?;
        }
        Ok(())
    }

    /// Write the buffered rows (less duplicates) as one staged segment.
    async fn stage(&mut self) -> Result<()> {
        let buffer = std::mem::take(&mut self.buffer);
        self.buffer_rows = 0;
        if buffer.is_empty() {
            return Ok(());
        }
        let core = Arc::clone(&self.core);
        // The chunk stays in the batches it arrived in: the background task writes them one after
        // the other (and only copies them to sort when they are out of time order).
        let mut batches = buffer;
        // Hashing is the costly part of idempotency; do it before taking the writer lock.
        let hashes = match &self.seen {
            Some(_) => Some(
                batches
                    .iter()
                    .map(keys::event_id_hashes)
                    .collect::<Result<Vec<_>>>()?,
            ),
            None => None,
        };
        let mut chunk_hashes = None;
        let id = {
            let mut guard = core.writer.lock().await;
            let writer = &mut *guard;
            if let (Some(hashes), Some(seen)) = (hashes, self.seen.as_mut()) {
                let stored = writer.keys.as_ref();
                self.checked_at
                    .get_or_insert((writer.keys_added, writer.keys_removed));
                let mut skipped = 0u64;
                let mut kept_hashes = Vec::new();
                for (batch, hashes) in batches.iter_mut().zip(hashes) {
                    let keep: BooleanArray = hashes
                        .iter()
                        .map(|h| {
                            let keep = if stored.is_some_and(|s| s.contains(h)) {
                                skipped += 1;
                                false
                            } else {
                                seen.insert(*h)
                            };
                            if keep {
                                kept_hashes.push(*h);
                            }
                            Some(keep)
                        })
                        .collect();
                    if keep.false_count() > 0 {
                        *batch =
                            filter_record_batch(batch, &keep).map_err(DataFusionError::from)?;
                    }
                }
                self.skipped_stored += skipped;
                batches.retain(|b| b.num_rows() > 0);
                chunk_hashes = Some(kept_hashes);
            }
            if batches.is_empty() {
                return Ok(());
            }
            // Reserved like compaction's outputs: the id is never handed out again.
            let id = writer.manifest.next_segment;
            writer.manifest.next_segment += 1;
            id
        };
        // One chunk in flight: wait for the previous one, then write this one while the caller
        // goes on with the next chunk.
        self.settle().await?;
        let open = self.open.take();
        self.writing = Some(tokio::spawn(write_chunk(
            core,
            open,
            batches,
            chunk_hashes,
            id,
        )));
        Ok(())
    }

    /// Wait for the chunk being written, if any: the file it finished joins the staged ones, the
    /// one it went into stays open.
    async fn settle(&mut self) -> Result<()> {
        if let Some(task) = self.writing.take() {
            let written = task
                .await
                .map_err(|e| Error::Internal(format!("segment write task failed: {e}")))??;
            self.staged.extend(written.finished);
            self.open = Some(written.open);
        }
        Ok(())
    }

    /// Settle, then finish the open file: everything staged is in `staged`.
    async fn close(&mut self) -> Result<()> {
        self.settle().await?;
        if let Some(open) = self.open.take() {
            let meta = open.finish(&self.core.backend, &self.core.dir).await?;
            self.staged.push(meta);
        }
        Ok(())
    }

    /// Commit and send the outcome on `done` as soon as the rows are durable and visible; work
    /// that only keeps the writer's state current (merging the statement's keys into the stored
    /// ones) goes on after, under the writer lock, so the next write waits for it but the client
    /// does not.
    async fn commit(mut self, done: oneshot::Sender<Result<u64>>) {
        if self.staged.is_empty() && self.writing.is_none() && self.open.is_none() {
            // Never filled a chunk: an ordinary append through the WAL.
            self.done = true;
            let buffer = std::mem::take(&mut self.buffer);
            let _ = done.send(self.core.append(buffer).await);
            return;
        }
        let mut done = Some(done);
        let outcome = self.commit_staged(&mut done).await;
        if outcome.is_err() {
            self.abort().await;
        }
        if let Some(done) = done {
            let _ = done.send(outcome);
        }
    }

    async fn commit_staged(
        &mut self,
        done: &mut Option<oneshot::Sender<Result<u64>>>,
    ) -> Result<u64> {
        self.stage().await?;
        self.close().await?;
        let core = Arc::clone(&self.core);
        let mut guard = core.writer.lock().await;
        let writer = &mut *guard;
        if let (Some(seen), Some((added, removed))) = (self.seen.as_mut(), self.checked_at) {
            if writer.keys_removed != removed && self.skipped_stored > 0 {
                return Err(Error::Cancelled(
                    "a concurrent DELETE or TRUNCATE of the table while COPY skipped rows as \
                     already stored; retry the COPY",
                ));
            }
            if writer.keys_added != added
                && let Some(stored) = writer.keys.as_ref()
            {
                // Stored keys grew while the statement streamed: drop rows stored meanwhile.
                let mut replaced = Vec::new();
                for meta in &mut self.staged {
                    let hashes =
                        segment::read_keys(&core.backend, &core.dir, &core.schema, meta).await?;
                    if !hashes.iter().any(|h| stored.contains(h)) {
                        continue;
                    }
                    let keep: BooleanArray =
                        hashes.iter().map(|h| Some(!stored.contains(h))).collect();
                    for (h, k) in hashes.iter().zip(keep.values().iter()) {
                        if !k {
                            seen.remove(h);
                        }
                    }
                    let batch = segment::read(&core.backend, &core.dir, &core.schema, meta).await?;
                    let batch =
                        filter_record_batch(&batch, &keep).map_err(DataFusionError::from)?;
                    let id = writer.manifest.next_segment;
                    writer.manifest.next_segment += 1;
                    let old = meta.id;
                    *meta = segment::write(&core.backend, &core.dir, id, &batch, true).await?;
                    replaced.push(old);
                }
                for id in replaced {
                    let _ = segment::delete(&core.backend, &core.dir, id).await;
                }
                self.staged.retain(|m| m.rows > 0);
            }
        }
        let rows: u64 = self.staged.iter().map(|m| m.rows).sum();
        let mut next = writer.manifest.clone();
        next.segments.extend(self.staged.iter().cloned());
        let mem = core.snapshot().mem.clone();
        // On failure `commit` deletes the segments it did not adopt: the staged ones.
        core.commit(writer, next, mem, &[]).await?;
        self.done = true;
        if rows > 0 {
            // Each staged segment knows its smallest `ts`; a segment without one (no `ts`
            // column, or only NULLs) leaves the bound unknown.
            let bounds: Option<Vec<i64>> = self.staged.iter().map(|m| m.min_ts).collect();
            core.record_append(bounds.and_then(|b| b.into_iter().min()));
        }
        if let Some(done) = done.take() {
            let _ = done.send(Ok(rows));
        }
        if let (Some(seen), Some(stored)) = (self.seen.take(), writer.keys.as_mut()) {
            // Keep the larger set and fold the smaller into it.
            let mut seen = seen;
            if seen.len() > stored.len() {
                std::mem::swap(&mut seen, stored);
            }
            stored.extend(seen);
            writer.keys_added += 1;
        }
        if rows > 0 {
            core.notify_appended(None);
        }
        Ok(rows)
    }

    /// Delete the staged files.
    async fn abort(mut self) {
        self.done = true;
        // A failed write deleted its own files.
        let _ = self.settle().await;
        if let Some(open) = self.open.take() {
            open.abort(&self.core.backend, &self.core.dir).await;
        }
        for meta in std::mem::take(&mut self.staged) {
            if let Err(e) = segment::delete(&self.core.backend, &self.core.dir, meta.id).await {
                log::warn!(
                    "cannot delete staged segment {} of {}, it goes at next open: {e}",
                    meta.id,
                    self.core.qualified_name()
                );
            }
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.done || (self.staged.is_empty() && self.writing.is_none() && self.open.is_none()) {
            return;
        }
        // Dropped uncommitted (the client went away): delete the staged files in the background,
        // the ones still being written once they are. Without a runtime they stay until the next
        // open deletes them.
        let mut staged = std::mem::take(&mut self.staged);
        let writing = self.writing.take();
        let mut open = self.open.take();
        let core = Arc::clone(&self.core);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Some(Ok(Ok(written))) = match writing {
                    Some(task) => Some(task.await),
                    None => None,
                } {
                    staged.extend(written.finished);
                    open = Some(written.open);
                }
                if let Some(open) = open {
                    open.abort(&core.backend, &core.dir).await;
                }
                for meta in staged {
                    let _ = segment::delete(&core.backend, &core.dir, meta.id).await;
                }
            });
        }
    }
}

/// What the background write of a chunk leaves: the file it finished, if it started a new one,
/// and the file the chunk went into.
#[derive(Debug)]
struct Written {
    finished: Option<SegmentMeta>,
    open: SegmentWriter,
}

/// Sort `batches` (one chunk, with the event-id hashes of its rows in order when known) and write
/// them into the `open` file, or into a new segment `id` when there is none, the open one is full
/// (`compaction_target_rows`) or the chunk starts before the open one ends (so files stay sorted
/// by `ts`); an open file left behind is finished. On failure every file this touched is removed.
async fn write_chunk(
    core: Arc<TableCore>,
    open: Option<SegmentWriter>,
    batches: Vec<RecordBatch>,
    hashes: Option<Vec<u64>>,
    id: u64,
) -> Result<Written> {
    let usage = core.options.kind == TableKind::Usage;
    let min_ts = batches.iter().filter_map(|b| segment::ts_range(b).0).min();
    let full = core.settings.compaction_target_rows.max(1) as u64;
    let mut finished = None;
    let current = match open {
        Some(open) if open.rows() < full && open.max_ts() <= min_ts => open,
        other => {
            if let Some(open) = other {
                finished = Some(open.finish(&core.backend, &core.dir).await?);
            }
            segment::SegmentWriter::new(
                &core.backend,
                &core.dir,
                id,
                Arc::clone(&core.schema),
                usage,
            )?
        }
    };
    // Sorting and encoding are CPU work: off the runtime's worker threads.
    let schema = Arc::clone(&core.schema);
    let (mut current, encoded) = tokio::task::spawn_blocking(move || {
        let mut current = current;
        // The hashes follow the rows' order: they are computed again when sorting moved rows.
        let encoded = if usage {
            segment::sort_chunk(&schema, batches)
        } else {
            Ok((batches, false))
        }
        .and_then(|(batches, moved)| current.encode(&batches, hashes.filter(|_| !moved)));
        (current, encoded)
    })
    .await
    .map_err(|e| Error::Internal(format!("segment encoding task failed: {e}")))?;
    let outcome = match encoded {
        Ok(bytes) => current.upload(bytes).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => Ok(Written {
            finished,
            open: current,
        }),
        Err(e) => {
            current.abort(&core.backend, &core.dir).await;
            if let Some(meta) = finished {
                let _ = segment::delete(&core.backend, &core.dir, meta.id).await;
            }
            Err(e)
        }
    }
}
