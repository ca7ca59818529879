//! The demo's configuration rows: owners, budgets sized against the generated spend, a price
//! change, and attribution rules, as Arrow batches (and as SQL `INSERT` text, see
//! [`super::sql_text`]).
//!
//! Owns the demo's values and the column layout of these rows as SPEC 3.4/3.7 names them. It
//! must not create or register tables: the engine owns `finops.owners`, `finops.budgets`,
//! `finops.model_prices` and `finops.attribution_rules` and appends these rows to them.

use std::sync::Arc;

use chrono::{Datelike, Days, NaiveDate};
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Decimal128Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::catalog::{LEGACY_PROJECT, MODELS, TEAMS, project_id};
use super::usage::Generated;
use crate::schema::{MONEY_SCALE, money_type, timestamp_type};

/// The model whose price changes in the middle of the window.
pub const PRICE_CHANGE_MODEL: (&str, &str) = ("openai", "gpt-4o-2024-08-06");
/// How many days before `as_of` the price cut takes effect.
pub const PRICE_CHANGE_DAYS_BEFORE: u64 = 45;

fn text(values: Vec<Option<String>>) -> ArrayRef {
    Arc::new(StringArray::from(values))
}

fn money(values: &[Option<f64>]) -> ArrayRef {
    let scale = 10f64.powi(i32::from(MONEY_SCALE));
    let raw: Decimal128Array = values
        .iter()
        .map(|v| v.map(|v| (v * scale).round() as i128))
        .collect();
    Arc::new(raw.with_data_type(money_type()))
}

fn batch(schema: SchemaRef, columns: Vec<ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(schema, columns).expect("demo config columns follow their schema")
}

/// Columns of the `finops.owners` rows (the table's own columns).
pub fn owners_schema() -> SchemaRef {
    crate::ownership::owners_schema()
}

/// One owner row per team, plus the two shared apps that have their own owner.
pub fn owners() -> RecordBatch {
    let mut rows: Vec<[&'static str; 4]> = TEAMS
        .iter()
        .map(|t| ["team", t.name, t.owner, t.cost_center])
        .collect();
    rows.push(["app", "ai-gateway", "priya.nair@acme.example", "CC-1006"]);
    rows.push([
        "app",
        "nightly-batch",
        "arjun.patel@acme.example",
        "CC-1005",
    ]);
    let columns = (0..4)
        .map(|i| text(rows.iter().map(|r| Some(r[i].to_string())).collect()))
        .collect();
    batch(owners_schema(), columns)
}

/// Columns of the `finops.budgets` rows (the table's own columns).
pub fn budgets_schema() -> SchemaRef {
    crate::ownership::budgets_schema()
}

/// How far through the month each team's run rate should land against its budget: most are
/// comfortable, a few warn, two are projected to exceed and `data-science` (index 4) has
/// already exceeded.
const TEAM_PROJECTED_RATIO: [f64; 12] = [
    0.6, 1.15, 0.75, 0.5, 1.3, 0.8, 0.95, 0.4, 0.55, 0.7, 0.65, 1.05,
];
const EXCEEDED_TEAM: usize = 4;

/// A round amount: budgets are set by people, to 2 significant digits.
fn round_amount(x: f64) -> f64 {
    // A budget of zero would read as "no spend allowed"; the demo never means that.
    let x = x.max(1.0);
    let unit = 10f64.powf(x.log10().floor() - 1.0);
    (x / unit).round() * unit
}

/// Budgets sized against `data`'s month-to-date spend as of `as_of`, so their statuses vary.
pub fn budgets(as_of: NaiveDate, data: &Generated) -> RecordBatch {
    let elapsed = f64::from(as_of.day());
    let month_days = f64::from(days_in_month(as_of));
    let projected = |mtd: f64| mtd / elapsed * month_days;
    let mtd_of = |team: &str| data.month_to_date.get(&Some(team)).copied().unwrap_or(0.0);
    struct B {
        id: String,
        scope: &'static str,
        value: Option<String>,
        period: &'static str,
        amount: f64,
        owner: Option<&'static str>,
        notify: String,
        hard_cap: bool,
    }
    let mut rows: Vec<B> = TEAMS
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mtd = mtd_of(t.name);
            let amount = if i == EXCEEDED_TEAM {
                mtd / 1.1
            } else {
                projected(mtd) / TEAM_PROJECTED_RATIO[i]
            };
            B {
                id: format!("team-{}-monthly", t.name),
                scope: "team",
                value: Some(t.name.to_string()),
                period: "month",
                amount: round_amount(amount),
                owner: Some(t.owner),
                notify: format!("https://hooks.example.com/finops/{}", t.name),
                hard_cap: false,
            }
        })
        .collect();
    let total: f64 = data.month_to_date.values().sum();
    rows.push(B {
        id: "org-monthly".into(),
        scope: "org",
        value: None,
        period: "month",
        amount: round_amount(projected(total) / 0.9),
        owner: Some("cfo-office@acme.example"),
        notify: "log".into(),
        hard_cap: false,
    });
    // The support bot may not run away again: a daily hard cap at 1.6x its usual day.
    rows.push(B {
        id: "team-support-daily-cap".into(),
        scope: "team",
        value: Some("support".into()),
        period: "day",
        amount: round_amount(mtd_of("support") / elapsed * 1.6),
        owner: Some(TEAMS[1].owner),
        notify: "https://hooks.example.com/finops/support".into(),
        hard_cap: true,
    });
    rows.push(B {
        id: "provider-anthropic-quarterly".into(),
        scope: "provider",
        value: Some("anthropic".into()),
        period: "quarter",
        amount: round_amount(total / elapsed * 92.0 * 0.6),
        owner: Some("emma.schmidt@acme.example"),
        notify: "log".into(),
        hard_cap: false,
    });
    rows.push(B {
        id: "model-opus-monthly".into(),
        scope: "model",
        value: Some("claude-opus-4-1-20250805".into()),
        period: "month",
        amount: 500.0,
        owner: Some("emma.schmidt@acme.example"),
        notify: "log".into(),
        hard_cap: false,
    });
    let s = |f: &dyn Fn(&B) -> Option<String>| text(rows.iter().map(f).collect());
    batch(
        budgets_schema(),
        vec![
            s(&|b| Some(b.id.clone())),
            s(&|b| Some(b.scope.to_string())),
            s(&|b| b.value.clone()),
            s(&|b| Some(b.period.to_string())),
            money(&rows.iter().map(|b| Some(b.amount)).collect::<Vec<_>>()),
            s(&|_| Some("50,80,100".to_string())),
            s(&|b| b.owner.map(str::to_string)),
            s(&|b| Some(b.notify.clone())),
            Arc::new(
                rows.iter()
                    .map(|b| Some(b.hard_cap))
                    .collect::<BooleanArray>(),
            ),
        ],
    )
}

fn days_in_month(d: NaiveDate) -> u32 {
    let first = d.with_day(1).unwrap_or(d);
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .unwrap_or(first);
    u32::try_from((next - first).num_days())
        .unwrap_or(30)
        .max(28)
}

/// Price kinds of a `finops.model_prices` row, in column order (USD per million tokens).
const PRICE_KINDS: [&str; 11] = [
    "input",
    "output",
    "cache_read",
    "cache_write",
    "cache_write_1h",
    "batch_input",
    "batch_output",
    "priority_input",
    "priority_output",
    "flex_input",
    "flex_output",
];
const TIER_KINDS: [&str; 4] = [
    "tier_input",
    "tier_output",
    "tier_cache_read",
    "tier_cache_write",
];

/// Columns of `finops.model_prices` (SPEC 3.4): provider, model, match, validity, prices per
/// million tokens, long-context tier, `tier` override and `source`.
pub fn model_prices_schema() -> SchemaRef {
    let mut fields = vec![
        Field::new("provider", DataType::Utf8, false),
        Field::new("model", DataType::Utf8, false),
        Field::new("match", DataType::Utf8, true),
        Field::new("valid_from", timestamp_type(), true),
        Field::new("valid_to", timestamp_type(), true),
    ];
    fields.extend(
        PRICE_KINDS
            .iter()
            .map(|k| Field::new(*k, money_type(), true)),
    );
    fields.push(Field::new("tier_threshold_tokens", DataType::Int64, true));
    fields.extend(
        TIER_KINDS
            .iter()
            .map(|k| Field::new(*k, money_type(), true)),
    );
    fields.push(Field::new("tier", DataType::Utf8, true));
    fields.push(Field::new("source", DataType::Utf8, true));
    Arc::new(Schema::new(fields))
}

/// The day the demo's price cut takes effect (midnight UTC).
pub fn price_change_date(as_of: NaiveDate) -> NaiveDate {
    as_of
        .checked_sub_days(Days::new(PRICE_CHANGE_DAYS_BEFORE))
        .unwrap_or(as_of)
}

/// The price cut for `gpt-4o-2024-08-06` in the middle of the window, as two
/// `finops.model_prices` rows: the list price closed on the change date, and the new price from
/// it on. Applying them re-prices the rows after the change (SPEC 3.4).
pub fn price_changes(as_of: NaiveDate) -> RecordBatch {
    let (provider, model) = PRICE_CHANGE_MODEL;
    let at = price_change_date(as_of)
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_micros());
    let old = MODELS
        .iter()
        .find(|m| m.provider == provider && m.id == model)
        .map(|m| m.price)
        .unwrap_or([2.5, 10.0, 1.25, 0.0]);
    let new = [old[0] * 0.8, old[1] * 0.8, old[2] * 0.8];
    let mut columns: Vec<ArrayRef> = vec![
        text(vec![Some(provider.into()); 2]),
        text(vec![Some(model.into()); 2]),
        text(vec![Some("exact".into()); 2]),
        Arc::new(TimestampMicrosecondArray::from(vec![None, at]).with_timezone("UTC")),
        Arc::new(TimestampMicrosecondArray::from(vec![at, None]).with_timezone("UTC")),
    ];
    for kind in PRICE_KINDS {
        let v = match kind {
            "input" => [Some(old[0]), Some(new[0])],
            "output" => [Some(old[1]), Some(new[1])],
            "cache_read" => [Some(old[2]), Some(new[2])],
            // The Batch API is half price.
            "batch_input" => [Some(old[0] / 2.0), Some(new[0] / 2.0)],
            "batch_output" => [Some(old[1] / 2.0), Some(new[1] / 2.0)],
            _ => [None, None],
        };
        columns.push(money(&v));
    }
    columns.push(Arc::new(Int64Array::from(vec![None::<i64>, None])));
    columns.extend(TIER_KINDS.iter().map(|_| money(&[None, None])));
    columns.push(text(vec![None, None]));
    columns.push(text(vec![
        Some("demo: list price before the cut".into()),
        Some("demo: list price cut".into()),
    ]));
    batch(model_prices_schema(), columns)
}

/// Columns of the `finops.attribution_rules` rows (the table's own columns).
pub fn attribution_rules_schema() -> SchemaRef {
    crate::attribution::rules_schema()
}

/// Rules mapping each team's OpenAI project and Bedrock account to the team (the provider
/// exports carry no team), and the legacy project to `growth`.
pub fn attribution_rules() -> RecordBatch {
    let mut rows: Vec<[Option<String>; 7]> = Vec::new();
    for t in TEAMS {
        for provider in ["openai", "aws_bedrock"] {
            rows.push([
                Some(format!("{provider}-{}", t.name)),
                Some(provider.into()),
                Some("project".into()),
                Some(project_id(provider, t.name)),
                Some(t.name.into()),
                None,
                None,
            ]);
        }
    }
    rows.push([
        Some("legacy-marketing-site".into()),
        None,
        Some("project".into()),
        Some(LEGACY_PROJECT.into()),
        Some("growth".into()),
        Some("marketing-site".into()),
        None,
    ]);
    let mut columns: Vec<ArrayRef> = (0..7)
        .map(|i| text(rows.iter().map(|r| r[i].clone()).collect()))
        .collect();
    // Team projects first; the legacy project rule is the catch-all of last resort.
    let priority: Vec<Option<i64>> = (0..rows.len())
        .map(|i| Some(if i + 1 == rows.len() { 100 } else { 10 }))
        .collect();
    columns.insert(1, Arc::new(Int64Array::from(priority)));
    batch(attribution_rules_schema(), columns)
}
