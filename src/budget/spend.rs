//! Spend of one budget scope over a time range, read from `finops.usage`, and the pure
//! arithmetic of a budget's status (remaining, % used, run-rate projection, status).
//!
//! Owns the spend queries and the status rules. It must not register tables or keep state.

use chrono::{DateTime, Duration, Utc};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Int64Type};
use datafusion::prelude::SessionContext;

use super::rows::Scope;
use crate::error::Result;
use crate::schema::money_type;

/// Width of the spend buckets read for budget history: every real time zone's midnight falls
/// on a quarter hour, so period boundaries never split a bucket.
pub const BUCKET_SECONDS: i64 = 900;

/// Length of the trailing window whose run rate projects a period's end spend.
pub const RUN_RATE_DAYS: i64 = 7;

/// A timestamp as a SQL `timestamptz` literal.
pub fn ts_literal(t: DateTime<Utc>) -> String {
    format!(
        "CAST('{}' AS TIMESTAMP WITH TIME ZONE)",
        t.format("%Y-%m-%dT%H:%M:%S%.6fZ")
    )
}

/// The sum of the money column `column` over `batches` (NULLs count as 0).
pub fn money_at(batches: &[RecordBatch], column: usize) -> Result<i128> {
    let mut total = 0i128;
    for batch in batches {
        let array = cast(batch.column(column), &money_type()).map_err(crate::error::arrow_error)?;
        let array = array.as_primitive::<Decimal128Type>();
        total += array.iter().flatten().sum::<i128>();
    }
    Ok(total)
}

/// Spend of `scope` in `[from, to)`, and the part of it at or after `split`.
pub async fn spend_between(
    ctx: &SessionContext,
    scope: &Scope,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    split: DateTime<Utc>,
) -> Result<(i128, i128)> {
    let sql = format!(
        "SELECT SUM(cost), SUM(CASE WHEN ts >= {split} THEN cost END) FROM finops.usage \
         WHERE ts >= {from} AND ts < {to} AND ({pred})",
        split = ts_literal(split),
        from = ts_literal(from),
        to = ts_literal(to),
        pred = scope.predicate(),
    );
    let batches = ctx.sql(&sql).await?.collect().await?;
    Ok((money_at(&batches, 0)?, money_at(&batches, 1)?))
}

/// Spend of `scope` before `to`, by [`BUCKET_SECONDS`] bucket (Unix seconds of its start).
pub async fn spend_buckets(
    ctx: &SessionContext,
    scope: &Scope,
    to: DateTime<Utc>,
) -> Result<Vec<(i64, i128)>> {
    let sql = format!(
        "SELECT CAST(to_unixtime(ts) AS BIGINT) / {BUCKET_SECONDS} * {BUCKET_SECONDS} AS bucket, \
         SUM(cost) AS cost FROM finops.usage WHERE ts < {to} AND ({pred}) GROUP BY 1",
        to = ts_literal(to),
        pred = scope.predicate(),
    );
    let batches = ctx.sql(&sql).await?.collect().await?;
    let mut out = Vec::new();
    for batch in &batches {
        let buckets = cast(batch.column(0), &DataType::Int64).map_err(crate::error::arrow_error)?;
        let buckets = buckets.as_primitive::<Int64Type>();
        let costs = cast(batch.column(1), &money_type()).map_err(crate::error::arrow_error)?;
        let costs = costs.as_primitive::<Decimal128Type>();
        for i in 0..batch.num_rows() {
            if buckets.is_valid(i) {
                out.push((
                    buckets.value(i),
                    if costs.is_valid(i) { costs.value(i) } else { 0 },
                ));
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The trailing window `[now - w, now)` of the run rate: up to [`RUN_RATE_DAYS`], never
/// before the period start.
pub fn run_rate_window(start: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    (now - Duration::days(RUN_RATE_DAYS)).max(start)
}

/// A budget's standing in its current period.
#[derive(Debug, Clone, PartialEq)]
pub struct Standing {
    /// `amount - spent` (negative once exceeded).
    pub remaining: i128,
    /// Spent as a percentage of the amount (NULL for a zero amount), two decimals.
    pub pct_used: Option<f64>,
    /// Projected period-end spend.
    pub projected: i128,
    /// `ok`, `warning`, `exceeded` or `projected_to_exceed`.
    pub status: &'static str,
}

/// Evaluate a budget: `window_spend` was spent in the last `window_secs` seconds before now,
/// `left_secs` seconds remain in the period. Exceeded at 100 % used; projected to exceed when
/// the run rate carries period-end spend over the amount; warning at `warn_pct`.
pub fn standing(
    amount: i128,
    spent: i128,
    window_spend: i128,
    window_secs: i64,
    left_secs: i64,
    warn_pct: f64,
) -> Standing {
    let projected = if window_secs > 0 && left_secs > 0 {
        spent + window_spend * i128::from(left_secs) / i128::from(window_secs)
    } else {
        spent
    };
    let pct_used = (amount > 0).then(|| ((spent as f64 / amount as f64) * 10000.0).round() / 100.0);
    let status = match pct_used {
        None if spent > 0 => "exceeded",
        None => "ok",
        Some(p) if p >= 100.0 => "exceeded",
        Some(_) if projected > amount => "projected_to_exceed",
        Some(p) if p >= warn_pct => "warning",
        Some(_) => "ok",
    };
    Standing {
        remaining: amount - spent,
        pct_used,
        projected,
        status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USD: i128 = 1_000_000_000_000;

    #[test]
    fn status_follows_spend_and_run_rate() {
        let day = 86_400;
        // 30-day month, 10 days in: 30 spent of 100, 21 of it in the last 7 days.
        let s = standing(100 * USD, 30 * USD, 21 * USD, 7 * day, 20 * day, 80.0);
        assert_eq!(s.projected, 90 * USD);
        assert_eq!(s.status, "ok");
        assert_eq!(s.pct_used, Some(30.0));
        let s = standing(100 * USD, 30 * USD, 28 * USD, 7 * day, 20 * day, 80.0);
        assert_eq!(s.projected, 110 * USD);
        assert_eq!(s.status, "projected_to_exceed");
        let s = standing(100 * USD, 85 * USD, 0, 7 * day, 2 * day, 80.0);
        assert_eq!(s.status, "warning");
        let s = standing(100 * USD, 100 * USD, 0, 7 * day, 2 * day, 80.0);
        assert_eq!((s.status, s.remaining), ("exceeded", 0));
        let s = standing(0, USD, 0, 0, 0, 80.0);
        assert_eq!((s.status, s.pct_used), ("exceeded", None));
        let s = standing(0, 0, 0, 0, 0, 80.0);
        assert_eq!(s.status, "ok");
    }

    #[test]
    fn run_rate_window_stays_inside_the_period() {
        let start = crate::budget::period::as_of("2026-05-01").expect("ts");
        let now = crate::budget::period::as_of("2026-05-03").expect("ts");
        assert_eq!(run_rate_window(start, now), start);
        let later = crate::budget::period::as_of("2026-05-20").expect("ts");
        assert_eq!(
            run_rate_window(start, later),
            crate::budget::period::as_of("2026-05-13").expect("ts")
        );
    }
}
