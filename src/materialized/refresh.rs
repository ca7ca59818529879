//! Computing a view's result (fully, or only the changed time buckets), storing it and swapping it
//! in. Called with the view's refresh lock held, so one view never has two refreshes at once.
//!
//! It must not decide eligibility (that is `incremental.rs`) nor know the storage layout beyond
//! `manifest.rs`'s functions.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::TableReference;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path;

use super::incremental::{self, Incremental};
use super::manifest::{self, BucketCount, Manifest};
use super::{
    ChangeFeed, MaterializedTable, MaterializedViews, RefreshKind, RefreshStats, View, lock,
};
use crate::error::{Error, Result};
use crate::storage::{ChangePosition, Changes};

/// A computed result, not yet stored.
struct Computed {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    kind: RefreshKind,
    rows_recomputed: u64,
    incremental: bool,
    depends_on: Vec<String>,
    bucket_counts: Option<Vec<BucketCount>>,
    positions: BTreeMap<String, ChangePosition>,
}

/// Compute and store the first result of a new view; returns it with the manifest written.
pub(super) async fn first_result(
    views: &MaterializedViews,
    ctx: &SessionContext,
    dir: &Path,
    mut manifest: Manifest,
) -> Result<(SchemaRef, Vec<RecordBatch>, Manifest)> {
    let started = Instant::now();
    let feed = views.change_feed();
    let computed = compute(ctx, &manifest, None, feed.as_deref()).await?;
    store_result(views.store.as_ref(), dir, &mut manifest, &computed, started).await?;
    Ok((computed.schema, computed.batches, manifest))
}

/// Refresh `view` in `ctx`.
pub(super) async fn refresh(
    views: &MaterializedViews,
    ctx: &SessionContext,
    view: &Arc<View>,
) -> Result<RefreshStats> {
    let _guard = view.refresh_lock.lock().await;
    if view.dropped.load(Ordering::SeqCst) {
        return Err(Error::TableNotFound(view.manifest().qualified_name()));
    }
    let started = Instant::now();
    // Cleared before computing: an append notified while this refresh runs marks it stale again.
    let (mut manifest, needs_full) = {
        let mut m = lock(&view.manifest);
        let needs_full = m.needs_full;
        m.stale = false;
        m.needs_full = false;
        (m.clone(), needs_full)
    };
    manifest.needs_full = needs_full;
    let table = view.table();
    use datafusion::catalog::TableProvider;
    let previous = table.batches();
    let feed = views.change_feed();
    let result = compute(
        ctx,
        &manifest,
        Some((&table.schema(), previous.as_slice())),
        feed.as_deref(),
    )
    .await;
    let computed = match result {
        Ok(c) => c,
        Err(e) => {
            let mut m = lock(&view.manifest);
            m.stale = true;
            m.needs_full |= needs_full;
            return Err(e);
        }
    };
    store_result(
        views.store.as_ref(),
        &view.dir,
        &mut manifest,
        &computed,
        started,
    )
    .await?;
    if computed.kind != RefreshKind::Unchanged {
        swap(ctx, view, &table, &computed)?;
    }
    {
        // Keep flags raised by notifications that arrived meanwhile.
        let mut m = lock(&view.manifest);
        let (stale, needs_full) = (m.stale, m.needs_full);
        *m = manifest.clone();
        m.stale = stale;
        m.needs_full = needs_full;
    }
    Ok(RefreshStats {
        kind: computed.kind,
        rows: manifest.rows,
        rows_recomputed: computed.rows_recomputed,
        bytes: manifest.bytes,
        refresh_ms: manifest.refresh_ms,
    })
}

/// Put the new result in place: in the same table, or in a new one when the columns changed.
fn swap(
    ctx: &SessionContext,
    view: &View,
    table: &Arc<MaterializedTable>,
    computed: &Computed,
) -> Result<()> {
    use datafusion::catalog::TableProvider;
    if table.schema() == computed.schema {
        return table.swap(computed.batches.clone());
    }
    let next = Arc::new(MaterializedTable::try_new(
        Arc::clone(&computed.schema),
        view.manifest().definition,
        computed.batches.clone(),
    )?);
    let reference = TableReference::from(view.reference.clone());
    ctx.deregister_table(reference.clone())?;
    ctx.register_table(reference, Arc::clone(&next) as _)?;
    *view.table.write().unwrap_or_else(|p| p.into_inner()) = next;
    Ok(())
}

/// Write the result file (unless nothing changed) and then the manifest; drop the old file.
async fn store_result(
    store: &dyn ObjectStore,
    dir: &Path,
    manifest: &mut Manifest,
    computed: &Computed,
    started: Instant,
) -> Result<()> {
    let mut replaced = None;
    if computed.kind != RefreshKind::Unchanged || manifest.data_file.is_none() {
        let generation = manifest.generation + 1;
        let file = format!("data-{generation:08}.parquet");
        manifest.bytes =
            manifest::write_result(store, dir, &file, &computed.schema, &computed.batches).await?;
        manifest.generation = generation;
        replaced = manifest.data_file.replace(file);
    }
    manifest.rows = computed.batches.iter().map(|b| b.num_rows() as u64).sum();
    manifest.incremental = computed.incremental;
    manifest.depends_on = computed.depends_on.clone();
    manifest.bucket_counts = computed.bucket_counts.clone();
    manifest.positions = computed.positions.clone();
    manifest.last_refresh_micros = Some(chrono::Utc::now().timestamp_micros());
    manifest.refresh_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    manifest.stale = false;
    manifest.needs_full = false;
    manifest::write_manifest(store, dir, manifest).await?;
    if let Some(old) = replaced {
        manifest::delete(store, &dir.clone().join(old.as_str())).await?;
    }
    Ok(())
}

/// Compute the result: incrementally when the definition allows, a previous result and bucket
/// counts exist and no full refresh was asked for; fully otherwise.
async fn compute(
    ctx: &SessionContext,
    manifest: &Manifest,
    previous: Option<(&SchemaRef, &[RecordBatch])>,
    feed: Option<&dyn ChangeFeed>,
) -> Result<Computed> {
    let state = ctx.state();
    let plan = state.create_logical_plan(&manifest.definition).await?;
    let default_schema = state.config().options().catalog.default_schema.clone();
    let depends_on = incremental::dependencies(&plan, &manifest.catalog, &default_schema);
    // Taken before any query reads the tables: a change published meanwhile shows next time.
    let positions: BTreeMap<String, ChangePosition> = feed
        .map(|feed| {
            depends_on
                .iter()
                .filter_map(|t| Some((t.clone(), feed.position(t)?)))
                .collect()
        })
        .unwrap_or_default();
    let analysis = incremental::analyse(&plan);
    let counts = match (&analysis, &manifest.bucket_counts) {
        (Some(a), Some(old)) if previous.is_some() && !manifest.needs_full => {
            let sources = a.time_sources(&manifest.catalog, &default_schema);
            let since = appended_since(feed, manifest, &depends_on, sources.as_deref());
            log::debug!(
                "refresh of {}: input since the last refresh {}",
                manifest.qualified_name(),
                match since {
                    Some(None) => "unchanged".to_string(),
                    Some(Some(ts)) => format!("appended from ts {ts}"),
                    None => format!("not known from {sources:?}: counting every bucket"),
                }
            );
            match since {
                Some(None) => Some(old.clone()),
                Some(Some(min_ts)) => Some(counts_after_append(ctx, a, old, min_ts).await?),
                None => Some(bucket_counts(ctx, a).await?),
            }
        }
        (Some(a), _) => Some(bucket_counts(ctx, a).await?),
        (None, _) => None,
    };
    let base = |schema, batches, kind, rows_recomputed| Computed {
        schema,
        batches,
        kind,
        rows_recomputed,
        incremental: analysis.is_some(),
        depends_on: depends_on.clone(),
        bucket_counts: counts.clone(),
        positions: positions.clone(),
    };
    if let (Some(a), Some(old), Some(new), Some((schema, batches)), false) = (
        &analysis,
        &manifest.bucket_counts,
        &counts,
        previous,
        manifest.needs_full,
    ) {
        let Some(from) = changed_from(old, new) else {
            return Ok(base(
                Arc::clone(schema),
                batches.to_vec(),
                RefreshKind::Unchanged,
                0,
            ));
        };
        if let Some(merged) = recompute_from(ctx, a, &plan, from, schema, batches).await? {
            let (batches, recomputed) = merged;
            return Ok(base(
                Arc::clone(schema),
                batches,
                RefreshKind::Incremental,
                recomputed,
            ));
        }
    }
    let (schema, batches) = run(ctx, plan).await?;
    let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
    Ok(base(schema, batches, RefreshKind::Full, rows))
}

/// What the change feed says about the view's input since the last refresh: `Some(None)` nothing
/// changed, `Some(Some(ts))` rows were only appended, all from `ts` on, to the table the view's
/// time buckets are taken from (`sources`: its scans' tables and time columns); `None` when it
/// cannot tell, and the buckets are counted again.
fn appended_since(
    feed: Option<&dyn ChangeFeed>,
    manifest: &Manifest,
    depends_on: &[String],
    sources: Option<&[(String, String)]>,
) -> Option<Option<i64>> {
    let feed = feed?;
    if depends_on.is_empty() {
        return None;
    }
    let mut lower: Option<i64> = None;
    for table in depends_on {
        let from = manifest.positions.get(table)?;
        match feed.since(table, from) {
            Changes::None => {}
            Changes::Appended { min_ts }
                if sources.is_some_and(|s| s.iter().all(|(t, c)| t == table && c == "ts")) =>
            {
                lower = Some(lower.map_or(min_ts, |l| l.min(min_ts)));
            }
            Changes::Appended { .. } | Changes::Unknown => return None,
        }
    }
    Some(lower)
}

/// Bucket counts after rows from `min_ts` on were appended: the stored counts of the buckets
/// before the one holding `min_ts`, and the rest counted again.
async fn counts_after_append(
    ctx: &SessionContext,
    analysis: &Incremental,
    old: &[BucketCount],
    min_ts: i64,
) -> Result<Vec<BucketCount>> {
    let Some(plan) = analysis.bucket_of_plan(min_ts)? else {
        return bucket_counts(ctx, analysis).await;
    };
    let (_, batches) = run(ctx, plan).await?;
    let first = batches
        .first()
        .and_then(|b| incremental::bucket_values(b.column(0)))
        .and_then(|v| v.first().copied().flatten());
    let Some(first) = first else {
        return bucket_counts(ctx, analysis).await;
    };
    let mut counts: BTreeMap<Option<i64>, u64> = old
        .iter()
        .filter(|(bucket, _)| bucket.is_some_and(|b| b < first))
        .copied()
        .collect();
    add_counts(ctx, analysis.bucket_counts_plan_from(first)?, &mut counts).await?;
    Ok(counts.into_iter().collect())
}

/// Keep the stored rows of buckets before `from`, and recompute the rest. `None` when the
/// recomputed rows do not fit the stored columns (the query's types changed): refresh fully.
async fn recompute_from(
    ctx: &SessionContext,
    analysis: &Incremental,
    plan: &LogicalPlan,
    from: Option<i64>,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<Option<(Vec<RecordBatch>, u64)>> {
    let restricted = analysis.restricted_plan(plan, from)?;
    let (new_schema, new_batches) = run(ctx, restricted).await?;
    let same_types = new_schema.fields().len() == schema.fields().len()
        && new_schema
            .fields()
            .iter()
            .zip(schema.fields())
            .all(|(a, b)| a.data_type() == b.data_type());
    if !same_types {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(batches.len() + new_batches.len());
    for batch in batches {
        let Some(mask) = analysis.keep_mask(batch.column(analysis.output_index()), from) else {
            return Ok(None);
        };
        let kept = filter_record_batch(batch, &mask).map_err(|e| Error::DataFusion(e.into()))?;
        if kept.num_rows() > 0 {
            out.push(kept);
        }
    }
    let mut recomputed = 0;
    for batch in new_batches {
        recomputed += batch.num_rows() as u64;
        match RecordBatch::try_new(Arc::clone(schema), batch.columns().to_vec()) {
            Ok(b) => out.push(b),
            Err(_) => return Ok(None),
        }
    }
    Ok(Some((out, recomputed)))
}

/// Run `plan` and collect its non-empty batches with the schema they have.
async fn run(ctx: &SessionContext, plan: LogicalPlan) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let stream = ctx
        .execute_logical_plan(plan)
        .await?
        .execute_stream()
        .await?;
    let schema = stream.schema();
    let batches: Vec<RecordBatch> = stream.try_collect().await?;
    Ok((
        schema,
        batches.into_iter().filter(|b| b.num_rows() > 0).collect(),
    ))
}

/// Rows per bucket of the view's input, sorted by bucket.
async fn bucket_counts(ctx: &SessionContext, analysis: &Incremental) -> Result<Vec<BucketCount>> {
    let mut counts = BTreeMap::new();
    add_counts(ctx, analysis.bucket_counts_plan()?, &mut counts).await?;
    Ok(counts.into_iter().collect())
}

/// Run a `(bucket, count)` plan and add what it counts to `counts`.
async fn add_counts(
    ctx: &SessionContext,
    plan: LogicalPlan,
    counts: &mut BTreeMap<Option<i64>, u64>,
) -> Result<()> {
    let (_, batches) = run(ctx, plan).await?;
    for batch in &batches {
        let buckets = incremental::bucket_values(batch.column(0))
            .ok_or_else(|| Error::Internal("bucket column of unexpected type".into()))?;
        let n = batch
            .column(1)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .ok_or_else(|| Error::Internal("count column of unexpected type".into()))?;
        for (i, bucket) in buckets.into_iter().enumerate() {
            *counts.entry(bucket).or_insert(0u64) += u64::try_from(n.value(i)).unwrap_or(0);
        }
    }
    Ok(())
}

/// The earliest bucket whose row count changed (`Some(None)`: only the NULL bucket), or `None`
/// when no bucket changed.
fn changed_from(old: &[BucketCount], new: &[BucketCount]) -> Option<Option<i64>> {
    let old: BTreeMap<_, _> = old.iter().copied().collect();
    let new: BTreeMap<_, _> = new.iter().copied().collect();
    let changed: Vec<Option<i64>> = old
        .keys()
        .chain(new.keys())
        .filter(|k| old.get(k) != new.get(k))
        .copied()
        .collect();
    if changed.is_empty() {
        return None;
    }
    Some(changed.into_iter().flatten().min())
}

#[cfg(test)]
mod tests {
    use super::changed_from;

    #[test]
    fn earliest_changed_bucket_is_found() {
        let old = [(None, 1), (Some(1), 2), (Some(2), 3)];
        assert_eq!(changed_from(&old, &old), None);
        assert_eq!(
            changed_from(&old, &[(None, 1), (Some(1), 2), (Some(2), 4)]),
            Some(Some(2))
        );
        assert_eq!(
            changed_from(&old, &[(None, 2), (Some(1), 2), (Some(2), 3)]),
            Some(None)
        );
        assert_eq!(
            changed_from(&old, &[(None, 1), (Some(2), 3)]),
            Some(Some(1))
        );
        assert_eq!(
            changed_from(&old, &[(None, 1), (Some(0), 1), (Some(1), 2), (Some(2), 3)]),
            Some(Some(0))
        );
    }
}
