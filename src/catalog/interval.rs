//! Postgres' interval arithmetic that DataFusion lacks: `age(timestamp[, timestamp])` in years,
//! months and days, and `interval * number`, `number * interval`, `interval / number`
//! (`now() - interval '1 day' * 7`), planned as `interval_mul` and `interval_div`.
//!
//! Both follow Postgres: `age` subtracts field by field, borrowing the days of the month, so
//! `age('2026-03-01', '2026-01-31')` is `1 mon 1 day`; a fractional product of months or days
//! cascades down to days (30 to a month) and to time (24 hours to a day), never up. Timestamps
//! are taken in UTC, as finops-db computes.
//!
//! It owns only these functions and the planning of the two operators.

use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDateTime, Timelike, Utc};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, IntervalMonthDayNanoBuilder, PrimitiveArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Float64Type, IntervalMonthDayNano, IntervalUnit, TimeUnit, TimestampMicrosecondType,
};
use datafusion::common::{DFSchema, ScalarValue, exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::ExprSchemable;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::BinaryOperator;

pub fn register(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::from(AgeFunc::new()));
    ctx.register_udf(ScalarUDF::from(IntervalScaleFunc::new(false)));
    ctx.register_udf(ScalarUDF::from(IntervalScaleFunc::new(true)));
}

const INTERVAL: DataType = DataType::Interval(IntervalUnit::MonthDayNano);
const TIMESTAMP: DataType = DataType::Timestamp(TimeUnit::Microsecond, None);
const NANOS_PER_SECOND: f64 = 1e9;
const SECONDS_PER_DAY: f64 = 86_400.0;

/// Plans `interval * number`, `number * interval` and `interval / number`.
#[derive(Debug, Default)]
pub struct IntervalOperators;

impl ExprPlanner for IntervalOperators {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        let divide = match expr.op {
            BinaryOperator::Multiply => false,
            BinaryOperator::Divide => true,
            _ => return Ok(PlannerResult::Original(expr)),
        };
        // A side whose type cannot be told yet (a parameter) is left to DataFusion.
        let (Ok(left), Ok(right)) = (expr.left.get_type(schema), expr.right.get_type(schema))
        else {
            return Ok(PlannerResult::Original(expr));
        };
        let interval = |t: &DataType| matches!(t, DataType::Interval(_));
        let (span, factor) = if interval(&left) && right.is_numeric() {
            (expr.left, expr.right)
        } else if !divide && left.is_numeric() && interval(&right) {
            (expr.right, expr.left)
        } else {
            return Ok(PlannerResult::Original(expr));
        };
        let udf = Arc::new(ScalarUDF::from(IntervalScaleFunc::new(divide)));
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            datafusion::logical_expr::expr::ScalarFunction::new_udf(udf, vec![span, factor]),
        )))
    }
}

/// `interval_mul(interval, factor)` and `interval_div(interval, divisor)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct IntervalScaleFunc {
    divide: bool,
    signature: Signature,
}

impl IntervalScaleFunc {
    fn new(divide: bool) -> Self {
        Self {
            divide,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for IntervalScaleFunc {
    fn name(&self) -> &str {
        if self.divide {
            "interval_div"
        } else {
            "interval_mul"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        match args {
            [DataType::Interval(_) | DataType::Null, factor]
                if factor.is_numeric() || factor.is_null() =>
            {
                Ok(vec![INTERVAL, DataType::Float64])
            }
            _ => plan_err!("{} expects an interval and a number", self.name()),
        }
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(INTERVAL)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let spans = cast(&arrays[0], &INTERVAL)?;
        let spans = spans.as_primitive::<datafusion::arrow::datatypes::IntervalMonthDayNanoType>();
        let factors = cast(&arrays[1], &DataType::Float64)?;
        let factors = factors.as_primitive::<Float64Type>();
        let mut out = IntervalMonthDayNanoBuilder::with_capacity(spans.len());
        for row in 0..spans.len() {
            if spans.is_null(row) || factors.is_null(row) {
                out.append_null();
                continue;
            }
            let factor = factors.value(row);
            if self.divide && factor == 0.0 {
                return exec_err!("division by zero");
            }
            let scaled = if self.divide {
                scale(spans.value(row), |x| x / factor)
            } else {
                scale(spans.value(row), |x| x * factor)
            };
            match scaled {
                Some(value) => out.append_value(value),
                None => return exec_err!("interval out of range"),
            }
        }
        finish(Arc::new(out.finish()), scalar)
    }
}

/// `span` with each field scaled by `op`, fractions cascading down as Postgres' `interval_mul`
/// does: months to days (30 to a month), days to time (24 hours to a day), rounded to the
/// microsecond on the way. `None` when a field leaves its range.
fn scale(span: IntervalMonthDayNano, op: impl Fn(f64) -> f64) -> Option<IntervalMonthDayNano> {
    let round_micros = |x: f64| (x * 1e6).round() / 1e6;
    let months = op(f64::from(span.months));
    let days = op(f64::from(span.days));
    if !months.is_finite() || !days.is_finite() {
        return None;
    }
    let whole_months = fits_i32(months.trunc())?;
    let mut whole_days = fits_i32(days.trunc())?;
    let month_remainder_days = round_micros((months - f64::from(whole_months)) * 30.0);
    let mut second_remainder = round_micros(
        (days - f64::from(whole_days) + month_remainder_days - month_remainder_days.trunc())
            * SECONDS_PER_DAY,
    );
    if second_remainder.abs() >= SECONDS_PER_DAY {
        let carried = (second_remainder / SECONDS_PER_DAY).trunc();
        whole_days = whole_days.checked_add(fits_i32(carried)?)?;
        second_remainder -= carried * SECONDS_PER_DAY;
    }
    whole_days = whole_days.checked_add(fits_i32(month_remainder_days.trunc())?)?;
    let nanos = (op(span.nanoseconds as f64) + second_remainder * NANOS_PER_SECOND).round();
    if !nanos.is_finite() || nanos.abs() >= i64::MAX as f64 {
        return None;
    }
    Some(IntervalMonthDayNano::new(
        whole_months,
        whole_days,
        nanos as i64,
    ))
}

fn fits_i32(x: f64) -> Option<i32> {
    (x >= f64::from(i32::MIN) && x <= f64::from(i32::MAX)).then_some(x as i32)
}

/// `age(later, earlier)`, and `age(t)` from today's midnight (UTC).
#[derive(Debug, PartialEq, Eq, Hash)]
struct AgeFunc {
    signature: Signature,
}

impl AgeFunc {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Stable),
        }
    }
}

impl ScalarUDFImpl for AgeFunc {
    fn name(&self) -> &str {
        "age"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        if args.is_empty() || args.len() > 2 {
            return plan_err!("age expects one or two timestamps");
        }
        args.iter()
            .map(|t| match t {
                DataType::Timestamp(..)
                | DataType::Date32
                | DataType::Date64
                | DataType::Null
                | DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View => Ok(TIMESTAMP),
                other => plan_err!("age expects timestamps, not {other}"),
            })
            .collect()
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(INTERVAL)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let mut args = args.args;
        if args.len() == 1 {
            let today = Utc::now().date_naive().and_hms_opt(0, 0, 0).map(|t| {
                ScalarValue::TimestampMicrosecond(Some(t.and_utc().timestamp_micros()), None)
            });
            let Some(today) = today else {
                return exec_err!("age: no current date");
            };
            args.insert(0, ColumnarValue::Scalar(today));
        }
        let arrays = ColumnarValue::values_to_arrays(&args)?;
        let later = cast(&arrays[0], &TIMESTAMP)?;
        let earlier = cast(&arrays[1], &TIMESTAMP)?;
        let later: &PrimitiveArray<TimestampMicrosecondType> = later.as_primitive();
        let earlier: &PrimitiveArray<TimestampMicrosecondType> = earlier.as_primitive();
        let mut out = IntervalMonthDayNanoBuilder::with_capacity(later.len());
        for row in 0..later.len() {
            if later.is_null(row) || earlier.is_null(row) {
                out.append_null();
                continue;
            }
            let (Some(a), Some(b)) = (
                DateTime::from_timestamp_micros(later.value(row)),
                DateTime::from_timestamp_micros(earlier.value(row)),
            ) else {
                return exec_err!("age: timestamp out of range");
            };
            out.append_value(age(&a.naive_utc(), &b.naive_utc()));
        }
        finish(Arc::new(out.finish()), scalar)
    }
}

/// `a - b` field by field as Postgres' `age`: negative fields borrow from the next larger one,
/// a day borrow taking the length of the month the earlier value lies in.
fn age(a: &NaiveDateTime, b: &NaiveDateTime) -> IntervalMonthDayNano {
    let negative = a < b;
    let (hi, lo) = if negative { (b, a) } else { (a, b) };
    let mut micros = i64::from(hi.nanosecond() / 1_000) - i64::from(lo.nanosecond() / 1_000);
    let mut seconds = i64::from(hi.second()) - i64::from(lo.second());
    let mut minutes = i64::from(hi.minute()) - i64::from(lo.minute());
    let mut hours = i64::from(hi.hour()) - i64::from(lo.hour());
    let mut days = i64::from(hi.day()) - i64::from(lo.day());
    let mut months = i64::from(hi.month()) - i64::from(lo.month());
    let mut years = i64::from(hi.year()) - i64::from(lo.year());
    if micros < 0 {
        micros += 1_000_000;
        seconds -= 1;
    }
    if seconds < 0 {
        seconds += 60;
        minutes -= 1;
    }
    if minutes < 0 {
        minutes += 60;
        hours -= 1;
    }
    if hours < 0 {
        hours += 24;
        days -= 1;
    }
    if days < 0 {
        // Postgres borrows the length of the month of the earlier value (of `b` when `a` is
        // later; of `a` when the result is negative, which after the swap is `lo` as well).
        days += i64::from(days_in_month(lo.year(), lo.month()));
        months -= 1;
    }
    if months < 0 {
        months += 12;
        years -= 1;
    }
    let sign = if negative { -1 } else { 1 };
    let nanos = ((hours * 60 + minutes) * 60 + seconds) * 1_000_000_000 + micros * 1_000;
    IntervalMonthDayNano::new(
        (sign * (years * 12 + months)) as i32,
        (sign * days) as i32,
        sign * nanos,
    )
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let (next_year, next_month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    chrono::NaiveDate::from_ymd_opt(next_year, next_month, 1)
        .and_then(|d| d.pred_opt())
        .map_or(31, |d| d.day())
}

fn finish(array: ArrayRef, scalar: bool) -> Result<ColumnarValue> {
    Ok(if scalar {
        ColumnarValue::Scalar(ScalarValue::try_from_array(&array, 0)?)
    } else {
        ColumnarValue::Array(array)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").expect("time")
    }

    fn span(months: i32, days: i32, seconds: f64) -> IntervalMonthDayNano {
        IntervalMonthDayNano::new(months, days, (seconds * NANOS_PER_SECOND) as i64)
    }

    #[test]
    fn age_borrows_as_postgres_does() {
        // Each expected value is Postgres 16's `age` of the same timestamps.
        let cases = [
            (
                "2001-04-10 00:00:00",
                "1957-06-13 00:00:00",
                span(43 * 12 + 9, 27, 0.0),
            ),
            (
                "2026-03-01 00:00:00",
                "2026-01-31 00:00:00",
                span(1, 1, 0.0),
            ),
            (
                "2024-03-01 00:00:00",
                "2024-02-28 12:00:00",
                span(0, 1, 43_200.0),
            ),
            (
                "2026-01-31 00:00:00",
                "2026-03-01 00:00:00",
                span(-1, -1, 0.0),
            ),
            (
                "2026-12-03 10:00:00.25",
                "2026-12-03 09:59:59.5",
                span(0, 0, 0.75),
            ),
            (
                "2026-12-03 00:00:00",
                "2026-12-03 00:00:00",
                span(0, 0, 0.0),
            ),
        ];
        for (a, b, expected) in cases {
            assert_eq!(age(&at(a), &at(b)), expected, "age({a}, {b})");
        }
    }

    #[test]
    fn scaling_cascades_fractions_down() {
        // Postgres: interval '1 day' * 7 = 7 days; '1 mon' * 1.5 = 1 mon 15 days;
        // '1 day' * 1.5 = 1 day 12:00:00; '1 day' / 3 = 08:00:00; '1 hour' * 2.5 = 02:30:00.
        let times = |s: IntervalMonthDayNano, f: f64| scale(s, |x| x * f).expect("in range");
        assert_eq!(times(span(0, 1, 0.0), 7.0), span(0, 7, 0.0));
        assert_eq!(times(span(1, 0, 0.0), 1.5), span(1, 15, 0.0));
        assert_eq!(times(span(0, 1, 0.0), 1.5), span(0, 1, 43_200.0));
        assert_eq!(times(span(0, 0, 3_600.0), 2.5), span(0, 0, 9_000.0));
        assert_eq!(times(span(1, 2, 3.0), -2.0), span(-2, -4, -6.0));
        assert_eq!(
            scale(span(0, 1, 0.0), |x| x / 3.0).expect("in range"),
            span(0, 0, 28_800.0)
        );
        assert_eq!(scale(span(1, 0, 0.0), |x| x * 1e10), None);
    }
}
