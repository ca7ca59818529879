//! The deterministic demo data set behind `finops-db serve --demo` and `finops-db demo --out`:
//! 90 days of usage across five providers and twelve teams, the config rows that go with it
//! (owners, budgets, a price change, attribution rules) and small provider export folders.
//!
//! Owns what the demo contains. It must not register tables, run SQL or touch a data
//! directory: the engine takes these batches and files and loads them. Same inputs give
//! byte-identical output on every platform (a hand-written SplitMix64 stream, no library RNG).
//!
//! ```
//! let as_of = chrono::NaiveDate::from_ymd_opt(2026, 6, 15).expect("date");
//! let data = finops_db::demo::generate(as_of, 50);
//! assert_eq!(data.usage.len(), finops_db::demo::DAYS as usize);
//! ```

mod catalog;
mod config;
mod exports;
mod load;
mod rng;
mod sql_text;
mod usage;
mod write;

use chrono::NaiveDate;
use datafusion::arrow::array::RecordBatch;

pub use catalog::UNPRICED_MODEL;
pub use config::{
    PRICE_CHANGE_MODEL, attribution_rules, attribution_rules_schema, budgets_schema,
    model_prices_schema, owners, owners_schema, price_change_date, price_changes,
};
pub use exports::{DemoExport, EXPORT_DAYS, write_exports};
pub use load::{Loaded, load};
pub use sql_text::insert_sql;
pub use write::{DemoManifest, write_demo};

use crate::error::Result;

/// Days of usage in the demo window (ending on `as_of`, inclusive).
pub const DAYS: u32 = 90;
/// Default mean rows per day: about 180,000 rows in all.
pub const DEFAULT_ROWS_PER_DAY: usize = 2_000;
/// The config tables the demo fills, in load order (and the order of
/// [`DemoData::config_batches`]).
pub const CONFIG_TABLES: [&str; 4] = [
    "finops.owners",
    "finops.attribution_rules",
    "finops.budgets",
    "finops.model_prices",
];

/// The whole demo data set.
#[derive(Debug, Clone)]
pub struct DemoData {
    /// `finops.usage_events` rows, one batch per day, oldest first.
    pub usage: Vec<RecordBatch>,
    /// `finops.owners` rows ([`owners_schema`]).
    pub owners: RecordBatch,
    /// `finops.attribution_rules` rows ([`attribution_rules_schema`]).
    pub attribution_rules: RecordBatch,
    /// `finops.budgets` rows ([`budgets_schema`]), sized against the usage.
    pub budgets: RecordBatch,
    /// `finops.model_prices` rows ([`model_prices_schema`]) of the mid-window price cut.
    pub price_changes: RecordBatch,
}

impl DemoData {
    /// The config batches in [`CONFIG_TABLES`] order.
    pub fn config_batches(&self) -> [&RecordBatch; 4] {
        [
            &self.owners,
            &self.attribution_rules,
            &self.budgets,
            &self.price_changes,
        ]
    }

    /// Every config row as `INSERT` statements, in [`CONFIG_TABLES`] order.
    pub fn config_sql(&self) -> Result<String> {
        let mut out = String::from("-- finops-db demo configuration rows\n");
        for (table, batch) in CONFIG_TABLES.iter().zip(self.config_batches()) {
            out.push('\n');
            out.push_str(&insert_sql(table, batch)?);
        }
        Ok(out)
    }
}

/// The demo usage: [`DAYS`] days ending on `as_of` (pass today's date), about `rows_per_day`
/// rows a day on average, as [`crate::schema::usage_events_schema`] batches.
pub fn usage(as_of: NaiveDate, rows_per_day: usize) -> Vec<RecordBatch> {
    usage::generate(as_of, DAYS, rows_per_day).batches
}

/// The demo usage and the config rows that go with it.
pub fn generate(as_of: NaiveDate, rows_per_day: usize) -> DemoData {
    let generated = usage::generate(as_of, DAYS, rows_per_day);
    DemoData {
        owners: owners(),
        attribution_rules: attribution_rules(),
        budgets: config::budgets(as_of, &generated),
        price_changes: price_changes(as_of),
        usage: generated.batches,
    }
}

/// `finops.budgets` rows for the demo usage ending on `as_of` (regenerates the usage to size
/// them; use [`generate`] to get both at once).
pub fn budgets(as_of: NaiveDate, rows_per_day: usize) -> RecordBatch {
    config::budgets(as_of, &usage::generate(as_of, DAYS, rows_per_day))
}

#[cfg(test)]
mod tests;

/// Access to the demo's fixed world for tests elsewhere in the crate (the built-in SQL tests
/// look for the planted spikes).
#[cfg(test)]
pub(crate) mod test_support {
    use chrono::{Datelike, Days, NaiveDate};

    use super::catalog::{FEATURES, SPIKES, TEAMS};

    /// The planted spikes as (team, days since 1970-01-01).
    pub fn spikes(as_of: NaiveDate) -> Vec<(String, i32)> {
        SPIKES
            .iter()
            .filter_map(|s| {
                let day = as_of.checked_sub_days(Days::new(s.days_before as u64))?;
                let team = TEAMS[FEATURES[s.feature].team].name.to_string();
                Some((team, day.num_days_from_ce() - 719_163))
            })
            .collect()
    }
}
