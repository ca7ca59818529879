//! Compaction: merge small segments into ones of about `compaction_target_rows`, sorted by `ts`, so
//! the file count stays bounded under a stream of small inserts.
//!
//! Inputs are read and the output written without the writer lock (segments are immutable), so
//! writers and readers are not blocked; only the final manifest commit takes the lock, and it is
//! abandoned if a DELETE or UPDATE replaced an input meanwhile. Inputs are retired, and deleted only
//! after the grace period, since older snapshots may still read them.
//!
//! It owns choosing and merging segments. It must not change rows.

use std::collections::BTreeMap;

use super::manifest::SegmentMeta;
use super::options::TableKind;
use super::segment;
use super::table::TableCore;
use crate::error::Result;

/// Segments per size tier that trigger a merge, and the size ratio between tiers.
const FAN_IN: usize = 4;

impl TableCore {
    /// Merge small segments; returns how many merges were committed.
    pub(crate) async fn compact(&self) -> Result<usize> {
        let mut merges = 0;
        for group in self.plan_compaction() {
            if self.merge(&group).await? {
                merges += 1;
            }
        }
        Ok(merges)
    }

    /// Groups of small segments to merge. Segments below the target are put in size tiers (a tier
    /// spans a factor of [`FAN_IN`] in rows); a tier holding at least [`FAN_IN`] segments is merged
    /// in `ts` order into groups of up to about the target. Each row is thus rewritten about
    /// log_FAN_IN(target / flush size) times, and at most `FAN_IN - 1` segments wait per tier, so
    /// the file count stays bounded by `total / target + (FAN_IN - 1) × tiers`.
    fn plan_compaction(&self) -> Vec<Vec<SegmentMeta>> {
        let target = self.settings.compaction_target_rows.max(1) as u64;
        let mut tiers: BTreeMap<u32, Vec<SegmentMeta>> = BTreeMap::new();
        for seg in self.snapshot().segments.iter().filter(|s| s.rows < target) {
            let tier = seg.rows.max(1).ilog(FAN_IN as u64);
            tiers.entry(tier).or_default().push(seg.clone());
        }
        let mut groups = Vec::new();
        for (_, mut tier) in tiers {
            if tier.len() < FAN_IN {
                continue;
            }
            tier.sort_by_key(|s| (s.min_ts, s.id));
            let mut group: Vec<SegmentMeta> = Vec::new();
            let mut rows = 0u64;
            for seg in tier {
                if !group.is_empty() && rows + seg.rows > target {
                    groups.push(std::mem::take(&mut group));
                    rows = 0;
                }
                rows += seg.rows;
                group.push(seg);
            }
            groups.push(group);
        }
        groups.retain(|g| g.len() >= 2);
        groups
    }

    /// Merge one group; `false` when the inputs changed under it and the merge was dropped.
    async fn merge(&self, group: &[SegmentMeta]) -> Result<bool> {
        let mut batches = Vec::with_capacity(group.len());
        for seg in group {
            batches.push(segment::read(&self.backend, &self.dir, &self.schema, seg).await?);
        }
        let merged = segment::concat(&self.schema, &batches)?;
        // The inputs are copied into `merged`; keep only one copy while sorting and writing.
        drop(batches);
        let merged = if self.options.kind == TableKind::Usage {
            segment::sort_by_ts(merged)?
        } else {
            merged
        };
        let usage = self.options.kind == TableKind::Usage;
        // Reserve the output id under the lock so it cannot collide with a concurrent flush.
        let id = {
            let mut writer = self.writer.lock().await;
            let id = writer.manifest.next_segment;
            writer.manifest.next_segment += 1;
            id
        };
        // Encoding a merged segment takes a while: off the runtime's worker threads.
        let encoded = tokio::task::spawn_blocking(move || segment::encode(&merged, usage))
            .await
            .map_err(|e| crate::error::Error::Internal(format!("compaction task failed: {e}")))??;
        let meta = segment::store(&self.backend, &self.dir, id, encoded).await?;
        let mut writer = self.writer.lock().await;
        let live = &writer.manifest.segments;
        if !group.iter().all(|g| live.contains(g)) {
            drop(writer);
            segment::delete(&self.backend, &self.dir, id).await?;
            return Ok(false);
        }
        let mut next = writer.manifest.clone();
        // The merged segment takes the place of the first input so segment order stays stable.
        let first = group[0].id;
        let replaced: Vec<u64> = group.iter().map(|g| g.id).collect();
        let mut segments = Vec::with_capacity(next.segments.len());
        for seg in next.segments.drain(..) {
            if seg.id == first {
                segments.push(meta.clone());
            } else if !replaced.contains(&seg.id) {
                segments.push(seg);
            }
        }
        next.segments = segments;
        let mem = self.snapshot().mem.clone();
        self.commit(&mut writer, next, mem, &replaced).await?;
        Ok(true)
    }
}
