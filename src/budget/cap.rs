//! Hard caps for gateways: the spend of every `hard_cap` budget in its current period, kept in
//! memory with the reservations granted by `finops.reserve`, and `finops.cap_status` over it.
//!
//! The spend is read from `finops.usage` when the caps are loaded (at start, when budgets
//! change), when a period begins, and after any change that is not an append (a DELETE, a price,
//! rule or provider-table change). Appends to `finops.usage_events` are added as they come: the
//! storage hands each statement's inserted rows to [`Caps::observer`], and
//! [`Caps::apply_appended`] prices just those rows through `finops.usage`'s own definition and
//! adds them to the caps they fall in, so keeping caps current costs the size of the ingest, not
//! of the period's history. Updates run one at a time; a full read discards the queued appends
//! (the read already sees them).
//!
//! Owns the cap state and its locking. It must not write to storage; reservations live in
//! memory and are released as the usage they stood for is ingested (or when the period ends).

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, Mutex, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Decimal128Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::functions_aggregate::expr_fn::sum;
use datafusion::logical_expr::{Expr, when};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use datafusion::prelude::col;

use super::rows::Budget;
use super::spend::{money_at, spend_between, ts_literal};
use super::status::load_budgets;
use crate::error::{Error, Result};
use crate::live::{LiveExec, LiveRows};
use crate::schema::{money_type, timestamp_type};
use crate::storage::AppendObserver;

/// Name of the cap table inside `finops`.
pub const CAP_STATUS: &str = "cap_status";

#[derive(Debug)]
struct CapEntry {
    budget: Budget,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    spent: i128,
    reserved: i128,
}

impl CapEntry {
    /// Move to the period containing `now` if the current one has ended: spend and
    /// reservations start again from zero (the next refresh reads any usage already there).
    fn roll(&mut self, now: DateTime<Utc>, tz: Tz) {
        if now >= self.end || now < self.start {
            let (start, end) = self.budget.period.bounds(now, tz);
            *self = CapEntry {
                budget: self.budget.clone(),
                start,
                end,
                spent: 0,
                reserved: 0,
            };
        }
    }

    /// The period starting at `start` has `spent` so far: reservations are used up by what
    /// arrived (it is the usage they were made for). Ignored if the period moved on meanwhile.
    fn arrived(&mut self, start: DateTime<Utc>, spent: i128) {
        if self.start == start {
            let arrived = (spent - self.spent).max(0);
            self.reserved = (self.reserved - arrived).max(0);
            self.spent = spent;
        }
    }

    fn left(&self) -> i128 {
        self.budget.amount - self.spent - self.reserved
    }
}

/// The cap state of every `hard_cap` budget. One mutex per budget: a reservation locks the
/// budgets it touches (in `budget_id` order) and checks and books them as one step.
#[derive(Debug)]
pub struct Caps {
    tz: Tz,
    entries: RwLock<BTreeMap<String, Arc<Mutex<CapEntry>>>>,
    /// Rows appended to `finops.usage_events` and not yet added to the caps.
    pending: Mutex<Vec<RecordBatch>>,
    /// Serializes loads, refreshes and applied appends.
    update: tokio::sync::Mutex<()>,
    /// How many times a cap's spend was read from `finops.usage` in full.
    full_reads: std::sync::atomic::AtomicU64,
    /// Rows were appended that the observer was not handed: read the periods again.
    unseen_appends: std::sync::atomic::AtomicBool,
}

fn poisoned<T>(_: T) -> Error {
    Error::Internal("cap state lock poisoned".into())
}

impl Caps {
    /// Empty state for budgets in time zone `tz`.
    pub fn new(tz: Tz) -> Self {
        Self {
            tz,
            entries: RwLock::new(BTreeMap::new()),
            pending: Mutex::new(Vec::new()),
            update: tokio::sync::Mutex::new(()),
            full_reads: std::sync::atomic::AtomicU64::new(0),
            unseen_appends: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// How many times a cap's spend has been read from `finops.usage` in full (at load, at the
    /// start of a period, after a change other than an append).
    pub fn full_reads(&self) -> u64 {
        self.full_reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The storage observer of `finops.usage_events`: queues each statement's inserted rows
    /// for [`Caps::apply_appended`] while any budget has a hard cap; an append whose rows it is
    /// not handed (a bulk load) makes the next update read the periods in full.
    pub fn observer(self: &Arc<Self>) -> AppendObserver {
        let caps = Arc::downgrade(self);
        AppendObserver(Arc::new(move |batch: Option<&RecordBatch>| {
            let Some(caps) = caps.upgrade() else {
                return;
            };
            if caps.is_empty() {
                return;
            }
            match batch {
                Some(batch) => {
                    if let Ok(mut pending) = caps.pending.lock() {
                        pending.push(batch.clone());
                    }
                }
                None => caps
                    .unseen_appends
                    .store(true, std::sync::atomic::Ordering::SeqCst),
            }
        }))
    }

    /// The queued appends, cleared, and whether rows were appended unseen since the last call;
    /// a full read that starts now sees them all.
    fn take_pending(&self) -> Result<(Vec<RecordBatch>, bool)> {
        let unseen = self
            .unseen_appends
            .swap(false, std::sync::atomic::Ordering::SeqCst);
        let batches = std::mem::take(&mut *self.pending.lock().map_err(poisoned)?);
        Ok((batches, unseen))
    }

    fn entries(&self) -> Result<Vec<Arc<Mutex<CapEntry>>>> {
        Ok(self
            .entries
            .read()
            .map_err(poisoned)?
            .values()
            .cloned()
            .collect())
    }

    /// Whether any budget has a hard cap.
    pub fn is_empty(&self) -> bool {
        self.entries.read().map(|e| e.is_empty()).unwrap_or(true)
    }

    /// Load the `hard_cap` budgets and their spend so far this period. Reservations of a
    /// budget whose amount, scope and period are unchanged are kept.
    pub async fn reload(&self, ctx: &SessionContext, now: DateTime<Utc>) -> Result<()> {
        let _update = self.update.lock().await;
        self.take_pending()?;
        let budgets: Vec<Budget> = load_budgets(ctx)
            .await?
            .into_iter()
            .filter(|b| b.hard_cap)
            .collect();
        let mut fresh = BTreeMap::new();
        for budget in budgets {
            let (start, end) = budget.period.bounds(now, self.tz);
            let (spent, _) = spend_between(ctx, &budget.scope, start, end, end).await?;
            self.full_reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let reserved = self
                .entries
                .read()
                .map_err(poisoned)?
                .get(&budget.id)
                .and_then(|e| {
                    let e = e.lock().ok()?;
                    (e.budget.scope == budget.scope
                        && e.budget.period == budget.period
                        && e.start == start)
                        .then_some(e.reserved)
                })
                .unwrap_or(0);
            fresh.insert(
                budget.id.clone(),
                Arc::new(Mutex::new(CapEntry {
                    budget,
                    start,
                    end,
                    spent,
                    reserved,
                })),
            );
        }
        *self.entries.write().map_err(poisoned)? = fresh;
        Ok(())
    }

    /// Re-read each capped scope's spend in its current period after usage changed other than by
    /// appends; spend that arrived uses up reservations first (it is the usage they were made for).
    pub async fn refresh(&self, ctx: &SessionContext, now: DateTime<Utc>) -> Result<()> {
        let _update = self.update.lock().await;
        self.take_pending()?;
        self.rescan(ctx, now, self.entries()?).await
    }

    async fn rescan(
        &self,
        ctx: &SessionContext,
        now: DateTime<Utc>,
        entries: Vec<Arc<Mutex<CapEntry>>>,
    ) -> Result<()> {
        for entry in entries {
            let (scope, start, end) = {
                let mut e = entry.lock().map_err(poisoned)?;
                e.roll(now, self.tz);
                (e.budget.scope.clone(), e.start, e.end)
            };
            let (spent, _) = spend_between(ctx, &scope, start, end, end).await?;
            self.full_reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            entry.lock().map_err(poisoned)?.arrived(start, spent);
        }
        Ok(())
    }

    /// Add the rows appended since the last update to the caps they fall in. Only a cap whose
    /// period just began is read from `finops.usage` in full.
    pub async fn apply_appended(&self, ctx: &SessionContext, now: DateTime<Utc>) -> Result<()> {
        let _update = self.update.lock().await;
        let (batches, unseen) = self.take_pending()?;
        if unseen {
            return self.rescan(ctx, now, self.entries()?).await;
        }
        if batches.is_empty() {
            return Ok(());
        }
        let mut rolled = Vec::new();
        let mut current = Vec::new();
        for entry in self.entries()? {
            let mut e = entry.lock().map_err(poisoned)?;
            let start = e.start;
            e.roll(now, self.tz);
            let target = (e.budget.scope.clone(), e.start, e.end);
            drop(e);
            if target.1 == start {
                current.push((entry, target));
            } else {
                rolled.push(entry);
            }
        }
        if !current.is_empty() {
            let targets: Vec<_> = current.iter().map(|(_, t)| t.clone()).collect();
            let added = spend_of_rows(ctx, batches, &targets).await?;
            for ((entry, (_, start, _)), added) in current.iter().zip(added) {
                let mut e = entry.lock().map_err(poisoned)?;
                let total = e.spent + added;
                e.arrived(*start, total);
            }
        }
        self.rescan(ctx, now, rolled).await
    }

    /// Reserve `amount` against every capped budget of `scope`/`value` (and the `org` caps):
    /// granted only if it fits all of them, and then booked on all of them at once.
    /// A scope with no cap is always granted.
    pub fn reserve(
        &self,
        scope: &str,
        value: Option<&str>,
        amount: i128,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        if amount < 0 {
            return Err(Error::InvalidParameter(format!(
                "finops.reserve: amount must be at least 0 (got {})",
                super::rows::format_money(amount)
            )));
        }
        let matching: Vec<Arc<Mutex<CapEntry>>> = {
            let entries = self.entries.read().map_err(poisoned)?;
            entries
                .values()
                .filter(|e| {
                    e.lock().is_ok_and(|e| {
                        e.budget.scope == super::rows::Scope::Org
                            || e.budget.scope.matches(scope, value)
                    })
                })
                .cloned()
                .collect()
        };
        let mut guards = Vec::with_capacity(matching.len());
        for entry in &matching {
            guards.push(entry.lock().map_err(poisoned)?);
        }
        for g in guards.iter_mut() {
            g.roll(now, self.tz);
        }
        if guards.iter().any(|g| g.left() < amount) {
            return Ok(false);
        }
        for g in guards.iter_mut() {
            g.reserved += amount;
        }
        Ok(true)
    }

    /// The rows of `finops.cap_status` at `now`.
    pub fn batch(&self, now: DateTime<Utc>) -> Result<RecordBatch> {
        // Sized to the budgets (a gateway's point query runs this for every call; builders'
        // default room for 1,024 rows cost more than the rows).
        let entries = self.entries()?;
        let n = entries.len();
        let text = || StringBuilder::with_capacity(n, n * 16);
        let (mut id, mut scope, mut value, mut period) = (text(), text(), text(), text());
        let mut start = TimestampMicrosecondBuilder::with_capacity(n);
        let mut end = TimestampMicrosecondBuilder::with_capacity(n);
        let mut amount = Decimal128Builder::with_capacity(n);
        let mut spent = Decimal128Builder::with_capacity(n);
        let mut reserved = Decimal128Builder::with_capacity(n);
        let mut remaining = Decimal128Builder::with_capacity(n);
        let mut allowed = BooleanBuilder::with_capacity(n);
        for entry in entries {
            let mut e = entry.lock().map_err(poisoned)?;
            e.roll(now, self.tz);
            id.append_value(&e.budget.id);
            scope.append_value(&e.budget.scope_name);
            value.append_option(e.budget.scope_value.as_deref());
            period.append_value(&e.budget.period_name);
            start.append_value(e.start.timestamp_micros());
            end.append_value(e.end.timestamp_micros());
            amount.append_value(e.budget.amount);
            spent.append_value(e.spent);
            reserved.append_value(e.reserved);
            remaining.append_value(e.left());
            allowed.append_value(e.left() > 0);
        }
        let money = |mut b: Decimal128Builder| -> ArrayRef {
            Arc::new(b.finish().with_data_type(money_type()))
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(id.finish()),
            Arc::new(scope.finish()),
            Arc::new(value.finish()),
            Arc::new(period.finish()),
            Arc::new(start.finish().with_timezone("UTC")),
            Arc::new(end.finish().with_timezone("UTC")),
            money(amount),
            money(spent),
            money(reserved),
            money(remaining),
            Arc::new(allowed.finish()),
        ];
        RecordBatch::try_new(cap_schema(), columns).map_err(crate::error::arrow_error)
    }
}

/// The spend of `rows` (rows of `finops.usage_all`, priced and attributed as `finops.usage`
/// would) in each `(scope, start, end)` of `targets`.
async fn spend_of_rows(
    ctx: &SessionContext,
    rows: Vec<RecordBatch>,
    targets: &[(super::rows::Scope, DateTime<Utc>, DateTime<Utc>)],
) -> Result<Vec<i128>> {
    let usage = crate::usage::usage_of_rows(ctx, rows).await?;
    let mut sums = Vec::with_capacity(targets.len());
    for (i, (scope, start, end)) in targets.iter().enumerate() {
        let inside = usage.parse_sql_expr(&format!(
            "ts >= {} AND ts < {} AND ({})",
            ts_literal(*start),
            ts_literal(*end),
            scope.predicate()
        ))?;
        sums.push(sum(when(inside, col("cost")).end()?).alias(format!("cap_{i}")));
    }
    let batches = usage.aggregate(vec![], sums)?.collect().await?;
    (0..targets.len()).map(|i| money_at(&batches, i)).collect()
}

/// Columns of `finops.cap_status`: `remaining` is `amount - spent - reserved`; `allowed` says
/// whether the scope may still spend.
pub fn cap_schema() -> SchemaRef {
    Arc::clone(&CAP_SCHEMA)
}

static CAP_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("budget_id", DataType::Utf8, false),
        Field::new("scope", DataType::Utf8, false),
        Field::new("scope_value", DataType::Utf8, true),
        Field::new("period", DataType::Utf8, false),
        Field::new("period_start", timestamp_type(), false),
        Field::new("period_end", timestamp_type(), false),
        Field::new("amount", money_type(), false),
        Field::new("spent", money_type(), false),
        Field::new("reserved", money_type(), false),
        Field::new("remaining", money_type(), false),
        Field::new("allowed", DataType::Boolean, false),
    ]))
});

/// `finops.cap_status`, read from the in-memory state.
#[derive(Debug)]
pub struct CapTable {
    caps: Arc<Caps>,
}

impl CapTable {
    /// The table over `caps`.
    pub fn new(caps: Arc<Caps>) -> Self {
        Self { caps }
    }
}

#[async_trait]
impl TableProvider for CapTable {
    fn schema(&self) -> SchemaRef {
        cap_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let rows = Arc::new(CapRows {
            caps: Arc::clone(&self.caps),
        });
        LiveExec::new_arc(rows, &cap_schema(), projection)
    }
}

/// The rows of `finops.cap_status`, computed each time a plan reading it runs.
struct CapRows {
    caps: Arc<Caps>,
}

impl std::fmt::Debug for CapRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl LiveRows for CapRows {
    fn name(&self) -> &str {
        "finops.cap_status"
    }

    fn rows(&self) -> datafusion::error::Result<RecordBatch> {
        Ok(self.caps.batch(Utc::now())?)
    }
}
