//! Who owns the spend and what it may cost: the columns of `finops.owners` and `finops.budgets`
//! (SPEC 3.7), created at first start.
//!
//! Owns these tables' columns. It must not read usage or evaluate budgets.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::schema::money_type;

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

/// The ownership tables created at first start, with their columns.
pub fn tables() -> [((&'static str, &'static str), SchemaRef); 2] {
    [(OWNERS, owners_schema()), (BUDGETS, budgets_schema())]
}
