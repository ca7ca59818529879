//! `finops.budget_status` (one row per budget for its current period) and
//! `finops.budget_history` (one row per budget and past period) as table providers: the
//! period arithmetic needs the configured time zone and `finops.as_of`, which plain SQL cannot
//! read, so the rows are computed at scan time from `finops.budgets` and `finops.usage`.
//!
//! Owns these two tables' columns and rows. It must not write anything.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Decimal128Builder, Float64Builder, IntervalMonthDayNanoBuilder,
    RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, IntervalUnit, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::SessionState;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;

use super::period;
use super::rows::{Budget, budgets_from_batches};
use super::spend::{self, spend_between, spend_buckets, standing};
use crate::engine::FinopsOptions;
use crate::error::{Error, Result};
use crate::schema::{money_type, timestamp_type};

/// Name of the current-period view inside `finops`.
pub const BUDGET_STATUS: &str = "budget_status";
/// Name of the past-periods view inside `finops`.
pub const BUDGET_HISTORY: &str = "budget_history";

/// Past periods listed per budget, at most (a daily budget: about three years).
const MAX_HISTORY_PERIODS: usize = 1100;

/// Columns of `finops.budget_status`.
pub fn status_schema() -> SchemaRef {
    Arc::clone(&STATUS_SCHEMA)
}

static STATUS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = head_fields();
    fields.insert(
        6,
        Field::new(
            "resets_in",
            DataType::Interval(IntervalUnit::MonthDayNano),
            false,
        ),
    );
    fields.extend([
        Field::new("projected", money_type(), false),
        Field::new("status", DataType::Utf8, false),
        Field::new("thresholds", DataType::Utf8, false),
        Field::new("owner", DataType::Utf8, true),
        Field::new("notify", DataType::Utf8, true),
        Field::new("hard_cap", DataType::Boolean, false),
    ]);
    Arc::new(Schema::new(fields))
});

/// Columns of `finops.budget_history`.
pub fn history_schema() -> SchemaRef {
    Arc::clone(&HISTORY_SCHEMA)
}

static HISTORY_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = head_fields();
    fields.push(Field::new("status", DataType::Utf8, false));
    Arc::new(Schema::new(fields))
});

fn head_fields() -> Vec<Field> {
    vec![
        Field::new("budget_id", DataType::Utf8, false),
        Field::new("scope", DataType::Utf8, false),
        Field::new("scope_value", DataType::Utf8, true),
        Field::new("period", DataType::Utf8, false),
        Field::new("period_start", timestamp_type(), false),
        Field::new("period_end", timestamp_type(), false),
        Field::new("amount", money_type(), false),
        Field::new("spent", money_type(), false),
        Field::new("remaining", money_type(), false),
        Field::new("pct_used", DataType::Float64, true),
    ]
}

/// The time zone and "now" of a session: `finops.timezone` and `finops.as_of` (empty: the
/// clock).
pub fn clock_of(
    options: &datafusion::common::config::ConfigOptions,
) -> Result<(Tz, DateTime<Utc>)> {
    let finops = options.extensions.get::<FinopsOptions>();
    let tz = period::time_zone(finops.map(|f| f.timezone.as_str()).unwrap_or("UTC"))?;
    let now = period::as_of(finops.map(|f| f.as_of.as_str()).unwrap_or(""))?;
    Ok((tz, now))
}

/// Every row of `finops.budgets`, validated.
pub async fn load_budgets(ctx: &SessionContext) -> Result<Vec<Budget>> {
    let (schema, table) = crate::ownership::BUDGETS;
    let batches = ctx
        .sql(&format!("SELECT * FROM {schema}.{table}"))
        .await?
        .collect()
        .await?;
    budgets_from_batches(&batches)
}

/// Which of the two tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetView {
    /// `finops.budget_status`.
    Status,
    /// `finops.budget_history`.
    History,
}

/// `finops.budget_status` or `finops.budget_history`.
#[derive(Debug)]
pub struct BudgetTable {
    view: BudgetView,
}

impl BudgetTable {
    /// The table for `view`.
    pub fn new(view: BudgetView) -> Self {
        Self { view }
    }
}

/// Columns under construction shared by both tables.
#[derive(Default)]
struct Head {
    id: StringBuilder,
    scope: StringBuilder,
    value: StringBuilder,
    period: StringBuilder,
    start: TimestampMicrosecondBuilder,
    end: TimestampMicrosecondBuilder,
    amount: Decimal128Builder,
    spent: Decimal128Builder,
    remaining: Decimal128Builder,
    pct: Float64Builder,
}

impl Head {
    fn push(
        &mut self,
        b: &Budget,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        spent: i128,
        pct: Option<f64>,
    ) {
        self.id.append_value(&b.id);
        self.scope.append_value(&b.scope_name);
        self.value.append_option(b.scope_value.as_deref());
        self.period.append_value(&b.period_name);
        self.start.append_value(start.timestamp_micros());
        self.end.append_value(end.timestamp_micros());
        self.amount.append_value(b.amount);
        self.spent.append_value(spent);
        self.remaining.append_value(b.amount - spent);
        self.pct.append_option(pct);
    }

    fn finish(mut self) -> Result<Vec<ArrayRef>> {
        let money = |mut m: Decimal128Builder| -> Result<ArrayRef> {
            Ok(Arc::new(m.finish().with_data_type(money_type())))
        };
        Ok(vec![
            Arc::new(self.id.finish()),
            Arc::new(self.scope.finish()),
            Arc::new(self.value.finish()),
            Arc::new(self.period.finish()),
            Arc::new(self.start.finish().with_timezone("UTC")),
            Arc::new(self.end.finish().with_timezone("UTC")),
            money(std::mem::take(&mut self.amount))?,
            money(std::mem::take(&mut self.spent))?,
            money(std::mem::take(&mut self.remaining))?,
            Arc::new(self.pct.finish()),
        ])
    }
}

/// The rows of `finops.budget_status` at `now` in `tz`.
pub async fn status_batch(ctx: &SessionContext, tz: Tz, now: DateTime<Utc>) -> Result<RecordBatch> {
    let budgets = load_budgets(ctx).await?;
    let mut head = Head::default();
    let mut resets = IntervalMonthDayNanoBuilder::new();
    let mut projected = Decimal128Builder::new();
    let (mut status, mut thresholds, mut owner, mut notify) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let mut cap = BooleanBuilder::new();
    for b in &budgets {
        let (start, end) = b.period.bounds(now, tz);
        let window = spend::run_rate_window(start, now);
        let (spent, window_spend) = spend_between(ctx, &b.scope, start, now, window).await?;
        let s = standing(
            b.amount,
            spent,
            window_spend,
            (now - window).num_seconds(),
            (end - now).num_seconds(),
            b.warn_pct(),
        );
        head.push(b, start, end, spent, s.pct_used);
        let left = (end - now).num_microseconds().unwrap_or(0);
        let day = 86_400_000_000i64;
        resets.append_value(datafusion::arrow::datatypes::IntervalMonthDayNano::new(
            0,
            (left / day) as i32,
            (left % day) * 1000,
        ));
        projected.append_value(s.projected);
        status.append_value(s.status);
        thresholds.append_value(&b.thresholds_text);
        owner.append_option(b.owner.as_deref());
        notify.append_option(b.notify.as_deref());
        cap.append_value(b.hard_cap);
    }
    let mut columns = head.finish()?;
    columns.insert(6, Arc::new(resets.finish()));
    columns.extend([
        Arc::new(projected.finish().with_data_type(money_type())) as ArrayRef,
        Arc::new(status.finish()),
        Arc::new(thresholds.finish()),
        Arc::new(owner.finish()),
        Arc::new(notify.finish()),
        Arc::new(cap.finish()),
    ]);
    RecordBatch::try_new(status_schema(), columns).map_err(crate::error::arrow_error)
}

/// The rows of `finops.budget_history`: every budget's periods that ended by `now`, from the
/// first with spend, with the budget's current amount.
pub async fn history_batch(
    ctx: &SessionContext,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<RecordBatch> {
    let budgets = load_budgets(ctx).await?;
    let mut head = Head::default();
    let mut status = StringBuilder::new();
    for b in &budgets {
        let (current, _) = b.period.bounds(now, tz);
        let buckets = spend_buckets(ctx, &b.scope, current).await?;
        let Some(&(first, _)) = buckets.first() else {
            continue;
        };
        let first = DateTime::<Utc>::from_timestamp(first, 0).unwrap_or(current);
        let mut by_period: BTreeMap<i64, i128> = BTreeMap::new();
        for (bucket, cost) in &buckets {
            let at = DateTime::<Utc>::from_timestamp(*bucket, 0).unwrap_or(current);
            let (start, _) = b.period.bounds(at, tz);
            *by_period.entry(start.timestamp()).or_default() += cost;
        }
        let mut bounds = b.period.bounds(first, tz);
        let mut listed = 0;
        while bounds.0 < current && listed < MAX_HISTORY_PERIODS {
            let spent = by_period.get(&bounds.0.timestamp()).copied().unwrap_or(0);
            let s = standing(b.amount, spent, 0, 0, 0, b.warn_pct());
            head.push(b, bounds.0, bounds.1, spent, s.pct_used);
            status.append_value(s.status);
            bounds = b.period.next(bounds.0, tz);
            listed += 1;
        }
    }
    let mut columns = head.finish()?;
    columns.push(Arc::new(status.finish()));
    RecordBatch::try_new(history_schema(), columns).map_err(crate::error::arrow_error)
}

/// A context that runs queries with `state`'s catalog, functions and settings.
pub fn context_of(state: &dyn Session) -> Result<SessionContext> {
    let state = state
        .as_any()
        .downcast_ref::<SessionState>()
        .ok_or_else(|| Error::Internal("budget tables need a DataFusion session".into()))?;
    Ok(SessionContext::new_with_state(state.clone()))
}

#[async_trait]
impl TableProvider for BudgetTable {
    fn schema(&self) -> SchemaRef {
        match self.view {
            BudgetView::Status => status_schema(),
            BudgetView::History => history_schema(),
        }
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let (tz, now) = clock_of(state.config_options())?;
        let ctx = context_of(state)?;
        let batch = match self.view {
            BudgetView::Status => status_batch(&ctx, tz, now).await?,
            BudgetView::History => history_batch(&ctx, tz, now).await?,
        };
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema(),
            projection.cloned(),
        )?)
    }
}
