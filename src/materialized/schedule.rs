//! When views refresh on their own: a debounced refresh of `auto` views after appends to a table
//! they read, a background loop for interval views, and staleness after in-place changes.
//!
//! Background work holds the registry weakly, so dropping the engine stops it. It must not
//! compute results itself: it calls the refresh in `refresh.rs`.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Instant;

use super::{MaterializedViews, RefreshMode, View, lock, manifest};
use crate::error::Result;

/// However long appends keep coming, an `auto` view is refreshed at most this many debounce
/// times (30 s by default) after the first append it has not seen.
pub const MAX_DEFERRALS: u32 = 30;

impl MaterializedViews {
    /// Rows were appended to `table` (schema-qualified or bare): mark the views reading it stale
    /// and schedule a debounced refresh of the `auto` ones. Needs a running tokio runtime for the
    /// refresh; without one the views are only marked.
    pub fn notify_appended(self: &Arc<Self>, table: &str) {
        for view in self.dependents(&[table]) {
            lock(&view.manifest).stale = true;
            if view.mode == RefreshMode::Auto {
                self.schedule(&view);
            }
        }
    }

    /// Rows for `tables` are arriving (a large COPY is streaming): a pending refresh of the `auto`
    /// views reading them waits until the load goes quiet, so a bulk load of many statements
    /// refreshes them once rather than after each statement (see [`MAX_DEFERRALS`]).
    pub fn notify_loading(self: &Arc<Self>, tables: &[&str]) {
        for view in self.dependents(tables) {
            if view.mode == RefreshMode::Auto && view.pending.load(Ordering::SeqCst) {
                *lock(&view.last_notified) = Instant::now();
            }
        }
    }

    /// `tables` changed in place (prices, adjustments, attribution rules): the views reading them
    /// are stale and their next refresh is full. `auto` views are refreshed soon after.
    pub async fn mark_stale(self: &Arc<Self>, tables: &[&str]) -> Result<()> {
        for view in self.dependents(tables) {
            let manifest = {
                let mut m = lock(&view.manifest);
                m.stale = true;
                m.needs_full = true;
                m.clone()
            };
            // Persisted, so that a restart before the refresh still refreshes fully.
            if !view.dropped.load(Ordering::SeqCst) {
                manifest::write_manifest(self.store.as_ref(), &view.dir, &manifest).await?;
            }
            if view.mode == RefreshMode::Auto {
                self.schedule(&view);
            }
        }
        Ok(())
    }

    /// Views whose query reads one of `tables`.
    fn dependents(&self, tables: &[&str]) -> Vec<Arc<View>> {
        let matches = |dependency: &str, table: &str| {
            let table = table.trim_matches('"').to_ascii_lowercase();
            dependency == table
                || dependency
                    .rsplit_once('.')
                    .is_some_and(|(_, bare)| bare == table)
                || table
                    .split_once('.')
                    .is_some_and(|(_, rest)| rest == dependency)
        };
        self.all()
            .into_iter()
            .filter(|v| {
                lock(&v.manifest)
                    .depends_on
                    .iter()
                    .any(|d| tables.iter().any(|t| matches(d, t)))
            })
            .collect()
    }

    /// Refresh `view` once no append has been notified for the debounce time.
    fn schedule(self: &Arc<Self>, view: &Arc<View>) {
        *lock(&view.last_notified) = Instant::now();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if view.pending.swap(true, Ordering::SeqCst) {
            return;
        }
        let registry = Arc::downgrade(self);
        let view = Arc::clone(view);
        runtime.spawn(async move {
            let scheduled = Instant::now();
            loop {
                let Some(debounce) = registry.upgrade().map(|r| *lock(&r.debounce)) else {
                    return;
                };
                let quiet = lock(&view.last_notified).elapsed();
                let deadline = debounce * MAX_DEFERRALS;
                if quiet >= debounce || scheduled.elapsed() >= deadline {
                    break;
                }
                let wait = (debounce - quiet).min(deadline.saturating_sub(scheduled.elapsed()));
                tokio::time::sleep(wait).await;
            }
            view.pending.store(false, Ordering::SeqCst);
            background_refresh(&registry, &view).await;
        });
    }

    /// Start the background loop of an interval view.
    pub(super) fn start_interval(self: &Arc<Self>, view: &Arc<View>) {
        let RefreshMode::Every(every) = view.mode else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let registry = Arc::downgrade(self);
        let view = Arc::clone(view);
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if view.dropped.load(Ordering::SeqCst) {
                    return;
                }
                if !background_refresh(&registry, &view).await {
                    return;
                }
            }
        });
    }
}

/// Refresh in the engine's context; `false` when the registry is gone.
async fn background_refresh(registry: &Weak<MaterializedViews>, view: &Arc<View>) -> bool {
    let Some(views) = registry.upgrade() else {
        return false;
    };
    if view.dropped.load(Ordering::SeqCst) {
        return true;
    }
    let ctx = views.ctx.clone();
    if let Err(e) = super::refresh::refresh(&views, &ctx, view).await {
        log::warn!(
            "background refresh of materialized view {} failed: {e}",
            view.manifest().qualified_name()
        );
    }
    true
}
