//! `month_end_forecast(spend_to_date, as_of)`: linear run-rate projection of a month's
//! spend to the end of that month.

use std::sync::LazyLock;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, TimeUnit, TimestampMicrosecondType,
};
use datafusion::common::{Result, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use crate::args::{FINOPS_SECTION, MONEY_TYPE, check_arity, money_array, output, to_arrays};
use crate::money::div_round;

const NAME: &str = "month_end_forecast";
const SYNTAX: &str = "month_end_forecast(spend_to_date, as_of)";
const MICROS_PER_DAY: i64 = 86_400_000_000;

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        FINOPS_SECTION,
        "Projected spend for the whole month of `as_of` (UTC) at the month's run rate so far: \
         spend_to_date * month_length / elapsed, exact decimal rounded half away from zero to \
         12 places. A DATE `as_of` counts its whole day as elapsed (spend through that day); a \
         TIMESTAMP counts time since the month started. NULL when nothing has elapsed or an \
         argument is NULL.",
        SYNTAX,
    )
    .with_sql_example("SELECT month_end_forecast(100, DATE '2025-09-10');\n-- 300.000000000000")
    .with_argument(
        "spend_to_date",
        "Spend since the first of the month (numeric).",
    )
    .with_argument("as_of", "DATE or TIMESTAMP the spend runs through.")
    .build()
});

/// Projected month spend (scale 12) from `spend` (scale 12) elapsed over `elapsed_micros`
/// of a month `month_micros` long.
fn project(spend: i128, elapsed_micros: i64, month_micros: i64) -> Option<i128> {
    if elapsed_micros <= 0 {
        return None;
    }
    div_round(
        spend.checked_mul(i128::from(month_micros))?,
        i128::from(elapsed_micros),
    )
}

fn month_bounds(date: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let start = NaiveDate::from_ymd_opt(date.year(), date.month(), 1)?;
    let next = if date.month() == 12 {
        NaiveDate::from_ymd_opt(date.year() + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(date.year(), date.month() + 1, 1)?
    };
    let utc = |d: NaiveDate| Some(Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0)?));
    Some((utc(start)?, utc(next)?))
}

/// Projected spend for the month containing `as_of_micros` (UTC microseconds); with
/// `whole_day` the day of `as_of` counts as fully elapsed.
pub fn month_end_forecast(spend: i128, as_of_micros: i64, whole_day: bool) -> Option<i128> {
    let as_of = DateTime::<Utc>::from_timestamp_micros(as_of_micros)?;
    let (start, next) = month_bounds(as_of.date_naive())?;
    let month = (next - start).num_microseconds()?;
    let mut elapsed = (as_of - start).num_microseconds()?;
    if whole_day {
        elapsed = (elapsed / MICROS_PER_DAY + 1) * MICROS_PER_DAY;
    }
    project(spend, elapsed, month)
}

/// `month_end_forecast`: linear month-end projection.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MonthEndForecastFunc {
    signature: Signature,
}

impl Default for MonthEndForecastFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl MonthEndForecastFunc {
    /// A `month_end_forecast`.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for MonthEndForecastFunc {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(MONEY_TYPE)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(NAME, SYNTAX, arg_types.len(), 2, 2)?;
        let spend = &arg_types[0];
        if !(spend.is_numeric() || spend.is_null()) {
            return plan_err!("{NAME}: `spend_to_date` must be numeric, got {spend}");
        }
        let as_of = match &arg_types[1] {
            DataType::Date32 | DataType::Date64 | DataType::Null => DataType::Date32,
            DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
            dt if dt.is_string() => DataType::Timestamp(TimeUnit::Microsecond, None),
            other => return plan_err!("{NAME}: `as_of` must be a date or timestamp, got {other}"),
        };
        Ok(vec![MONEY_TYPE, as_of])
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, all_scalar) = to_arrays(&args.args)?;
        let spend = arrays[0].as_primitive::<Decimal128Type>();
        let n = spend.len();
        let mut values = vec![0i128; n];
        let mut valid = vec![false; n];
        for i in 0..n {
            if spend.is_null(i) || arrays[1].is_null(i) {
                continue;
            }
            let projected = match arrays[1].data_type() {
                DataType::Date32 => {
                    let days = i64::from(arrays[1].as_primitive::<Date32Type>().value(i));
                    month_end_forecast(spend.value(i), days * MICROS_PER_DAY, true)
                }
                _ => {
                    let ts = arrays[1]
                        .as_primitive::<TimestampMicrosecondType>()
                        .value(i);
                    month_end_forecast(spend.value(i), ts, false)
                }
            };
            if let Some(value) = projected {
                values[i] = value;
                valid[i] = true;
            }
        }
        output(money_array(values, valid)?, all_scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::{MONEY_ONE, parse_money};

    fn micros(text: &str) -> i64 {
        crate::pricing::parse_instant_for_tests(text)
    }

    #[test]
    fn projects_linearly_to_month_end() {
        let cases = [
            ("100", "2025-09-10", true, "300"),
            ("100", "2025-09-16T00:00:00Z", false, "200"),
            ("31", "2025-01-01", true, "961"),
            ("-50", "2025-02-14", true, "-100"),
        ];
        for (spend, as_of, whole_day, expected) in cases {
            let spend = parse_money(spend).expect("spend");
            let got = month_end_forecast(spend, micros(as_of), whole_day);
            assert_eq!(got, parse_money(expected), "{as_of}");
        }
        assert_eq!(
            month_end_forecast(MONEY_ONE, micros("2025-09-01T00:00:00Z"), false),
            None
        );
    }
}
