//! Forecast functions: `month_end_forecast`.

mod month_end_forecast;

pub use month_end_forecast::{MonthEndForecastFunc, month_end_forecast};
