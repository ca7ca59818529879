//! Runs every built-in SQL object against a small demo `finops.usage` with stand-in UDFs, so a
//! definition that stops parsing, planning or making sense fails here rather than at startup.
//!
//! The stand-ins only share names and types with the real `finops-udfs` functions: prices come
//! from the demo's sizing table, so the numbers are plausible, not exact.

use std::sync::Arc;

use chrono::{NaiveDate, Utc};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Date32Type, Field, Float64Type, Int64Type, Schema};
use datafusion::common::Result;
use datafusion::common::TableReference;
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use super::BUILTIN_SQL;
use crate::demo::{self, test_support};
use crate::schema::{money_type, timestamp_type, usage_events_schema};

const ROWS_PER_DAY: usize = 200;

fn tier(provider: &str, model: &str) -> Option<&'static str> {
    let [input, output, ..] = test_support::sizing_price(provider, model)?;
    Some(match input + output {
        x if x >= 10.0 => "frontier",
        x if x >= 1.0 => "mid",
        _ => "small",
    })
}

fn alternative(provider: &str, model: &str) -> Option<String> {
    let target = match tier(provider, model)? {
        "frontier" => "mid",
        "mid" => "small",
        _ => return None,
    };
    test_support::models()
        .filter(|(p, m)| *p == provider && tier(p, m) == Some(target))
        .filter(|(_, m)| !m.contains("embedding"))
        .filter_map(|(p, m)| test_support::sizing_price(p, m).map(|price| (price[0] + price[1], m)))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, m)| m.to_string())
}

/// USD scaled to the money type's 12 decimals.
fn cost(provider: &str, model: &str, tokens: [i64; 4], tier: Option<&str>) -> Option<i128> {
    let [input, output, read, write] = test_support::sizing_price(provider, model)?;
    let [inp, out, cached, cw] = tokens.map(|t| t as f64);
    let batch = if tier == Some("batch") { 0.5 } else { 1.0 };
    let usd =
        batch * ((inp - cached - cw) * input + cached * read + cw * write + out * output) / 1e6;
    Some((usd * 1e12).round() as i128)
}

fn text_arg(arrays: &[ArrayRef], i: usize) -> &StringArray {
    arrays[i].as_string::<i32>()
}

fn register_stub_udfs(ctx: &SessionContext) {
    let text_fn = |name: &str, f: fn(&str, &str) -> Option<String>| {
        create_udf(
            name,
            vec![DataType::Utf8, DataType::Utf8],
            DataType::Utf8,
            Volatility::Stable,
            Arc::new(move |args: &[ColumnarValue]| {
                let arrays = ColumnarValue::values_to_arrays(args)?;
                let (p, m) = (text_arg(&arrays, 0), text_arg(&arrays, 1));
                let out: StringArray = (0..p.len())
                    .map(|i| {
                        (p.is_valid(i) && m.is_valid(i))
                            .then(|| f(p.value(i), m.value(i)))
                            .flatten()
                    })
                    .collect();
                Ok(ColumnarValue::Array(Arc::new(out)))
            }),
        )
    };
    ctx.register_udf(text_fn("model_tier", |p, m| tier(p, m).map(str::to_string)));
    ctx.register_udf(text_fn("cheaper_alternative", alternative));
    let mut token_cost_args = vec![DataType::Utf8, DataType::Utf8];
    token_cost_args.extend([
        DataType::Int64,
        DataType::Int64,
        DataType::Int64,
        DataType::Int64,
    ]);
    token_cost_args.extend([timestamp_type(), DataType::Utf8]);
    ctx.register_udf(create_udf(
        "token_cost",
        token_cost_args,
        money_type(),
        Volatility::Stable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let (p, m, st) = (
                text_arg(&arrays, 0),
                text_arg(&arrays, 1),
                text_arg(&arrays, 7),
            );
            let ints: Vec<_> = (2..6)
                .map(|i| arrays[i].as_primitive::<Int64Type>())
                .collect();
            let out: Decimal128Array = (0..p.len())
                .map(|i| {
                    if p.is_null(i) || m.is_null(i) || ints.iter().any(|a| a.is_null(i)) {
                        return None;
                    }
                    let tokens = [0, 1, 2, 3].map(|k| ints[k].value(i));
                    let tier = st.is_valid(i).then(|| st.value(i));
                    cost(p.value(i), m.value(i), tokens, tier)
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(
                out.with_data_type(money_type()),
            )))
        }),
    ));
}

/// The demo usage with made-up `cost` (list minus a 10% Anthropic discount), `list_cost`,
/// `priced` and `price_version` columns, as the `finops.usage` view would show it.
fn usage_view(as_of: NaiveDate) -> Result<MemTable> {
    let base = usage_events_schema();
    let mut fields: Vec<Field> = base.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("cost", money_type(), true));
    fields.push(Field::new("list_cost", money_type(), true));
    fields.push(Field::new("priced", DataType::Boolean, false));
    fields.push(Field::new("price_version", DataType::Utf8, true));
    let schema = Arc::new(Schema::new(fields));
    let mut batches = Vec::new();
    for batch in demo::usage(as_of, ROWS_PER_DAY) {
        let col = |name: &str| Arc::clone(batch.column_by_name(name).expect("canonical column"));
        let (provider, model, tier) = (col("provider"), col("model"), col("service_tier"));
        let (provider, model, tier) = (
            provider.as_string::<i32>(),
            model.as_string::<i32>(),
            tier.as_string::<i32>(),
        );
        let counts = [
            "input_tokens",
            "output_tokens",
            "cached_input_tokens",
            "cache_write_tokens",
        ]
        .map(col);
        let list: Vec<Option<i128>> = (0..batch.num_rows())
            .map(|i| {
                let tokens = [0, 1, 2, 3].map(|k| counts[k].as_primitive::<Int64Type>().value(i));
                cost(
                    provider.value(i),
                    model.value(i),
                    tokens,
                    Some(tier.value(i)),
                )
            })
            .collect();
        let net: Decimal128Array = list
            .iter()
            .zip(provider.iter())
            .map(|(c, p)| {
                c.map(|c| {
                    if p == Some("anthropic") {
                        c * 9 / 10
                    } else {
                        c
                    }
                })
            })
            .collect();
        let list_cost: Decimal128Array = list.iter().copied().collect();
        let priced: BooleanArray = list.iter().map(|c| Some(c.is_some())).collect();
        let version: StringArray = list.iter().map(|c| c.map(|_| "stub-1")).collect();
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(net.with_data_type(money_type())));
        columns.push(Arc::new(list_cost.with_data_type(money_type())));
        columns.push(Arc::new(priced));
        columns.push(Arc::new(version));
        batches.push(RecordBatch::try_new(Arc::clone(&schema), columns)?);
    }
    MemTable::try_new(schema, vec![batches])
}

/// A session with `finops.usage` and every built-in object, created in `BUILTIN_SQL` order the
/// way the engine does: views as views, the materialized view as a table of its query's rows.
async fn session() -> Result<SessionContext> {
    let ctx = SessionContext::new();
    for schema in ["finops", "kpi"] {
        ctx.sql(&format!("CREATE SCHEMA {schema}"))
            .await?
            .collect()
            .await?;
    }
    register_stub_udfs(&ctx);
    let today = Utc::now().date_naive();
    let usage = Arc::new(usage_view(today)?);
    ctx.register_table(TableReference::partial("finops", "usage"), usage)?;
    for (name, sql) in BUILTIN_SQL {
        let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).expect("parses");
        let Some(Statement::CreateView(view)) = statements.first() else {
            panic!("{name}: not a view");
        };
        if view.materialized {
            let df = ctx.sql(&view.query.to_string()).await?;
            let schema = Arc::new(df.schema().as_arrow().clone());
            let rows = df.collect().await?;
            let table = MemTable::try_new(schema, vec![rows])?;
            ctx.register_table(TableReference::parse_str(name), Arc::new(table))?;
        } else {
            ctx.sql(sql).await?.collect().await?;
        }
    }
    Ok(ctx)
}

async fn rows(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    ctx.sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn scalar_f64(ctx: &SessionContext, sql: &str) -> f64 {
    let batches = rows(
        ctx,
        &format!("SELECT CAST(({sql}) AS DOUBLE PRECISION) AS v"),
    )
    .await;
    let v = batches[0].column(0).as_primitive::<Float64Type>();
    assert!(v.is_valid(0), "{sql} is NULL");
    v.value(0)
}

#[tokio::test]
async fn every_builtin_object_plans_and_returns_rows() {
    let ctx = session().await.expect("built-in objects create");
    for (name, _) in BUILTIN_SQL {
        let batches = rows(&ctx, &format!("SELECT * FROM {name}")).await;
        let n: usize = batches.iter().map(RecordBatch::num_rows).sum();
        assert!(n > 0, "{name} is empty");
    }
}

#[tokio::test]
async fn daily_counts_every_request_and_flags_about_15pct_redundant() {
    let ctx = session().await.expect("session");
    let total = scalar_f64(&ctx, "SELECT SUM(requests) FROM finops.usage").await;
    assert_eq!(
        scalar_f64(&ctx, "SELECT SUM(requests) FROM kpi.daily").await,
        total
    );
    let pct = scalar_f64(
        &ctx,
        "SELECT 100.0 * SUM(redundant_requests) / SUM(requests) FROM kpi.daily",
    )
    .await;
    assert!((8.0..=20.0).contains(&pct), "redundant {pct}%");
    let cost = scalar_f64(&ctx, "SELECT SUM(cost) FROM kpi.daily").await;
    let usage_cost = scalar_f64(&ctx, "SELECT SUM(cost) FROM finops.usage").await;
    assert!((cost - usage_cost).abs() < 1e-6, "{cost} vs {usage_cost}");
    let summary = scalar_f64(
        &ctx,
        "SELECT value FROM kpi.summary WHERE kpi = 'redundant_requests_pct'",
    )
    .await;
    assert!(
        (8.0..=20.0).contains(&summary),
        "summary redundant {summary}%"
    );
}

#[tokio::test]
async fn anomalies_find_the_planted_spikes() {
    let ctx = session().await.expect("session");
    let found = rows(
        &ctx,
        "SELECT key, CAST(day AS DATE) AS day FROM kpi.anomalies WHERE dimension = 'team'",
    )
    .await;
    let mut hits = Vec::new();
    for b in &found {
        let key = b.column(0).as_string::<i32>();
        let day = b.column(1).as_primitive::<Date32Type>();
        for i in 0..b.num_rows() {
            hits.push((key.value(i).to_string(), day.value(i)));
        }
    }
    let planted = test_support::spikes(Utc::now().date_naive());
    let caught = planted.iter().filter(|p| hits.contains(p)).count();
    assert!(caught >= 3, "caught {caught} of {planted:?} in {hits:?}");
}

#[tokio::test]
async fn waste_views_show_the_planted_problems() {
    let ctx = session().await.expect("session");
    let savings = scalar_f64(
        &ctx,
        "SELECT SUM(savings) FROM kpi.model_fit WHERE feature = 'classify-intent'",
    )
    .await;
    assert!(savings > 0.0);
    let unpriced = scalar_f64(
        &ctx,
        "SELECT SUM(requests) FROM finops.unpriced_usage WHERE model = 'acme-internal-llm-v2'",
    )
    .await;
    assert!(unpriced > 0.0);
    let unowned = scalar_f64(&ctx, "SELECT SUM(requests) FROM finops.unowned_spend").await;
    assert!(unowned > 0.0);
    let per_request = scalar_f64(
        &ctx,
        "SELECT value FROM kpi.summary WHERE kpi = 'cost_per_request'",
    )
    .await;
    assert!(per_request > 0.0 && per_request < 1.0, "{per_request}");
}

#[test]
fn stub_prices_know_demo_models_but_not_the_internal_one() {
    assert_eq!(tier("openai", "gpt-4o-2024-08-06"), Some("frontier"));
    assert_eq!(tier("openai", "gpt-4o-mini-2024-07-18"), Some("small"));
    assert_eq!(tier("azure_openai", demo::UNPRICED_MODEL), None);
    assert!(alternative("openai", "gpt-4o-2024-08-06").is_some());
}

#[tokio::test]
async fn summary_filters_pick_exactly_one_row_per_kpi() {
    let ctx = session().await.expect("session");
    for (kpi, period) in [
        ("cost_per_request", "last_30_days"),
        ("cost_per_user", "last_30_days"),
        ("weekly_spend", "previous_week"),
        ("monthly_spend", "this_month"),
    ] {
        let sql =
            format!("SELECT value FROM kpi.summary WHERE kpi = '{kpi}' AND period = '{period}'");
        let value = scalar_f64(&ctx, &sql).await;
        assert!(value > 0.0, "{kpi}/{period} = {value}");
    }
    let features = scalar_f64(
        &ctx,
        "SELECT COUNT(dimension) FROM kpi.summary WHERE kpi = 'cost_per_feature'",
    )
    .await;
    assert_eq!(features, 30.0);
    let misuse = scalar_f64(
        &ctx,
        "SELECT value FROM kpi.summary WHERE dimension = 'support-bot/classify-intent'",
    )
    .await;
    assert!(misuse > 0.0);
}
