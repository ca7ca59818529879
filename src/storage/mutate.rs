//! DELETE, UPDATE and TRUNCATE: copy-on-write of the segments a predicate touches, committed with
//! one manifest version so the statement is atomic.
//!
//! Unflushed WAL rows are flushed first, so every row lives in a segment. Segments whose `ts` range
//! cannot match are not read; segments with no matching row are not rewritten. Replaced files are
//! retired, not deleted, so readers of older snapshots keep working.
//!
//! It owns rewriting segments. It must not plan SQL or touch the WAL format.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use datafusion::arrow::compute::kernels::zip::zip;
use datafusion::arrow::compute::{filter_record_batch, not};
use datafusion::error::DataFusionError;
use datafusion::physical_expr::PhysicalExpr;

use super::keys;
use super::manifest::SegmentMeta;
use super::options::TableKind;
use super::provider::prune;
use super::segment;
use super::table::{STRICT_CAST, TableCore};
use crate::error::{Error, Result};

impl TableCore {
    /// Delete rows matching `predicate` (every row without one); returns how many.
    pub(crate) async fn delete(&self, predicate: Option<Arc<dyn PhysicalExpr>>) -> Result<u64> {
        if predicate.is_none() {
            return self.truncate().await;
        }
        self.rewrite(predicate.as_ref(), |batch, matches| {
            Ok(
                filter_record_batch(batch, &not(matches).map_err(DataFusionError::from)?)
                    .map_err(DataFusionError::from)?,
            )
        })
        .await
    }

    /// Set columns on rows matching `predicate`; returns how many rows changed.
    pub(crate) async fn update(
        &self,
        assignments: Vec<(usize, Arc<dyn PhysicalExpr>)>,
        predicate: Option<Arc<dyn PhysicalExpr>>,
    ) -> Result<u64> {
        let schema = Arc::clone(&self.schema);
        let not_null = self.options.not_null.clone();
        self.rewrite(predicate.as_ref(), move |batch, matches| {
            let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
            for (index, expr) in &assignments {
                let field = schema.field(*index);
                let values = expr
                    .evaluate_selection(batch, matches)?
                    .into_array(batch.num_rows())?;
                let values = if values.data_type() == field.data_type() {
                    values
                } else {
                    datafusion::arrow::compute::cast_with_options(
                        &values,
                        field.data_type(),
                        &STRICT_CAST,
                    )
                    .map_err(DataFusionError::from)?
                };
                let merged =
                    zip(matches, &values, &columns[*index]).map_err(DataFusionError::from)?;
                let required = !field.is_nullable() || not_null.contains(field.name());
                if required && merged.null_count() > 0 {
                    return Err(Error::NotNullViolation {
                        message: format!(
                            "null value in column \"{}\" violates not-null constraint",
                            field.name()
                        ),
                    });
                }
                columns[*index] = merged;
            }
            Ok(
                RecordBatch::try_new(Arc::clone(&schema), columns)
                    .map_err(DataFusionError::from)?,
            )
        })
        .await
    }

    /// Remove every row; returns how many there were.
    pub(crate) async fn truncate(&self) -> Result<u64> {
        let mut writer = self.writer.lock().await;
        let current = self.snapshot();
        let count =
            current.segments.iter().map(|s| s.rows).sum::<u64>() + current.mem_rows() as u64;
        let through = writer.wal.rotate();
        let mut next = writer.manifest.clone();
        let replaced: Vec<u64> = next.segments.iter().map(|s| s.id).collect();
        next.segments.clear();
        next.wal_flushed_through = through;
        self.commit(&mut writer, next, Vec::new(), &replaced)
            .await?;
        self.record_rewrite();
        if let Some(set) = writer.keys.as_mut() {
            set.clear();
            writer.keys_removed += 1;
        }
        if let Err(e) = writer.wal.delete_through(through).await {
            log::warn!(
                "cannot delete WAL files of truncated {}: {e}",
                self.qualified_name()
            );
        }
        Ok(count)
    }

    /// Replace every row of a config table with `change(current rows)` as one manifest commit:
    /// readers see the old rows or the new ones, never a mix, and a crash keeps one of the two.
    /// The current rows are read under the writer lock, so no concurrent write is lost.
    pub(crate) async fn replace_all<T>(
        &self,
        change: impl FnOnce(RecordBatch) -> Result<(RecordBatch, T)>,
    ) -> Result<T> {
        if self.options.kind == TableKind::Usage {
            return Err(Error::Unsupported(format!(
                "replacing every row of {}",
                self.qualified_name()
            )));
        }
        let mut writer = self.writer.lock().await;
        self.flush_locked(&mut writer).await?;
        let segments = writer.manifest.segments.clone();
        let mut batches = Vec::with_capacity(segments.len());
        for seg in &segments {
            batches.push(segment::read(&self.backend, &self.dir, &self.schema, seg).await?);
        }
        let current = segment::concat(&self.schema, &batches)?;
        let (rows, result) = change(current)?;
        let rows = segment::concat(&self.schema, &self.prepare(vec![rows])?)?;
        let mut next = writer.manifest.clone();
        next.segments.clear();
        if rows.num_rows() > 0 {
            let id = next.next_segment;
            next.next_segment += 1;
            next.segments
                .push(segment::write(&self.backend, &self.dir, id, &rows, false).await?);
        }
        let replaced: Vec<u64> = segments.iter().map(|s| s.id).collect();
        self.commit(&mut writer, next, Vec::new(), &replaced)
            .await?;
        self.record_rewrite();
        Ok(result)
    }

    /// Rewrite every segment where `predicate` matches some row with `change(batch, matches)`;
    /// returns the number of matching rows.
    async fn rewrite(
        &self,
        predicate: Option<&Arc<dyn PhysicalExpr>>,
        change: impl Fn(&RecordBatch, &BooleanArray) -> Result<RecordBatch>,
    ) -> Result<u64> {
        let mut writer = self.writer.lock().await;
        self.flush_locked(&mut writer).await?;
        let segments = writer.manifest.segments.clone();
        let candidates = match predicate {
            Some(p) => prune(p, &self.scan_schema, &segments),
            None => vec![true; segments.len()],
        };
        let mut next = writer.manifest.clone();
        next.segments.clear();
        let mut plan = Rewrite::default();
        let usage = self.options.kind == TableKind::Usage;
        let outcome: Result<()> = async {
            for (seg, candidate) in segments.iter().zip(candidates) {
                if !candidate {
                    next.segments.push(seg.clone());
                    continue;
                }
                let batch = segment::read(&self.backend, &self.dir, &self.schema, seg).await?;
                let matches = match predicate {
                    Some(p) => {
                        // Predicates are planned against what scans produce.
                        let scanned = crate::schema::cast_batch(&batch, &self.scan_schema)
                            .map_err(DataFusionError::from)?;
                        let value = p.evaluate(&scanned)?.into_array(batch.num_rows())?;
                        let mask = value
                            .as_any()
                            .downcast_ref::<BooleanArray>()
                            .ok_or_else(|| Error::Internal("predicate is not boolean".into()))?;
                        // NULL does not match (three-valued logic).
                        mask.iter()
                            .map(|v| Some(v == Some(true)))
                            .collect::<BooleanArray>()
                    }
                    None => BooleanArray::from(vec![true; batch.num_rows()]),
                };
                let hits = matches.true_count() as u64;
                if hits == 0 {
                    next.segments.push(seg.clone());
                    continue;
                }
                plan.affected += hits;
                plan.replaced.push(seg.id);
                let changed = change(&batch, &matches)?;
                if usage {
                    plan.removed_keys.extend(keys::event_id_hashes(&batch)?);
                }
                if changed.num_rows() > 0 {
                    let changed = if usage {
                        segment::sort_by_ts(changed)?
                    } else {
                        changed
                    };
                    let id = next.next_segment;
                    next.next_segment += 1;
                    let meta: SegmentMeta =
                        segment::write(&self.backend, &self.dir, id, &changed, usage).await?;
                    plan.written.push(id);
                    next.segments.push(meta);
                    if usage {
                        plan.added_keys.extend(keys::event_id_hashes(&changed)?);
                    }
                }
            }
            Ok(())
        }
        .await;
        if outcome.is_err() || plan.affected == 0 {
            for id in &plan.written {
                let _ = segment::delete(&self.backend, &self.dir, *id).await;
            }
            return outcome.map(|()| 0);
        }
        self.commit(&mut writer, next, Vec::new(), &plan.replaced)
            .await?;
        self.record_rewrite();
        if let Some(set) = writer.keys.as_mut() {
            for h in &plan.removed_keys {
                set.remove(h);
            }
            set.extend(plan.added_keys);
            writer.keys_removed += 1;
            writer.keys_added += 1;
        }
        Ok(plan.affected)
    }
}

/// What a rewrite did so far.
#[derive(Debug, Default)]
struct Rewrite {
    affected: u64,
    replaced: Vec<u64>,
    written: Vec<u64>,
    removed_keys: Vec<u64>,
    added_keys: Vec<u64>,
}
