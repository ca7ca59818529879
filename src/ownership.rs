//! Who owns the spend and what it may cost: the columns of `finops.owners` and `finops.budgets`
//! (SPEC 3.7), created at first start.
//!
//! Owns these tables' columns. It must not read usage or evaluate budgets (`budget/` does).

use std::sync::{Arc, LazyLock};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::schema::money_type;
use crate::storage::{ColumnDefault, TableOptions};

/// `(schema, table)` of the owners.
pub const OWNERS: (&str, &str) = ("finops", "owners");
/// `(schema, table)` of the budgets.
pub const BUDGETS: (&str, &str) = ("finops", "budgets");

/// Columns of `finops.owners`: `scope` (`team`, `app`, `feature`, `project`, `api_key_id`, ...),
/// `scope_value`, `owner`, `cost_center`.
pub fn owners_schema() -> SchemaRef {
    Arc::clone(&OWNERS_SCHEMA)
}

static OWNERS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("scope", DataType::Utf8, false),
        Field::new("scope_value", DataType::Utf8, false),
        Field::new("owner", DataType::Utf8, false),
        Field::new("cost_center", DataType::Utf8, true),
    ]))
});

/// Columns of `finops.budgets`: `budget_id`, `scope` (`org`, `team`, `app`, `feature`,
/// `user_id`, `api_key_id`, `provider`, `model`, `tag`), `scope_value`, `period` (`day`,
/// `week`, `month`, `quarter`), `amount` (USD), `thresholds` (percentages, `50,80,100`),
/// `owner`, `notify`, `hard_cap`.
pub fn budgets_schema() -> SchemaRef {
    Arc::clone(&BUDGETS_SCHEMA)
}

static BUDGETS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("budget_id", DataType::Utf8, false),
        Field::new("scope", DataType::Utf8, false),
        Field::new("scope_value", DataType::Utf8, true),
        Field::new("period", DataType::Utf8, false),
        Field::new("amount", money_type(), false),
        Field::new("thresholds", DataType::Utf8, false),
        Field::new("owner", DataType::Utf8, true),
        Field::new("notify", DataType::Utf8, true),
        Field::new("hard_cap", DataType::Boolean, false),
    ]))
});

/// Storage options of `finops.budgets`: `thresholds` defaults to `50,80,100` and `hard_cap` to
/// false when an INSERT leaves them out.
pub fn budgets_options() -> TableOptions {
    let mut options = TableOptions::config();
    options.defaults = vec![
        (
            "thresholds".into(),
            ColumnDefault::Text(crate::budget::rows::DEFAULT_THRESHOLDS.into()),
        ),
        ("hard_cap".into(), ColumnDefault::Boolean(false)),
    ];
    options
}

/// The ownership tables created at first start that no index reads, with their columns
/// (`finops.budgets` is a validated configuration table, see `engine::ConfigTable`).
pub fn tables() -> [((&'static str, &'static str), SchemaRef); 1] {
    [(OWNERS, owners_schema())]
}
