//! Every built-in object over the demo data set, through a real engine: the demo loaded the
//! way `serve --demo` loads it, priced by the real price book, so a definition that stops
//! planning or making sense fails here rather than at startup.

use chrono::Utc;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Date32Type, Float64Type};

use super::{BUILTIN_SQL, USAGE_VIEW};
use crate::config::Config;
use crate::demo::{self, test_support};
use crate::engine::{Engine, Identity, Session};

const ROWS_PER_DAY: usize = 200;

async fn rows(session: &Session, sql: &str) -> Vec<RecordBatch> {
    session
        .query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn scalar_f64(session: &Session, sql: &str) -> f64 {
    let batches = rows(
        session,
        &format!("SELECT CAST(({sql}) AS DOUBLE PRECISION) AS v"),
    )
    .await;
    let v = batches[0].column(0).as_primitive::<Float64Type>();
    assert!(v.is_valid(0), "{sql} is NULL");
    v.value(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_objects_over_the_demo() {
    let dir = tempfile::tempdir().expect("scratch dir");
    let config = Config {
        data_dir: dir.path().join("data").display().to_string(),
        ..Config::default()
    };
    let engine = Engine::open(config).await.expect("engine opens");
    let today = Utc::now().date_naive();
    let loaded = demo::load(
        &engine,
        today,
        ROWS_PER_DAY,
        Some(dir.path().join("exports")),
    )
    .await
    .expect("demo loads");
    assert!(matches!(loaded, demo::Loaded::Loaded { .. }), "{loaded:?}");
    let again = demo::load(&engine, today, ROWS_PER_DAY, None)
        .await
        .expect("reload");
    assert_eq!(again, demo::Loaded::AlreadyHasData);
    let session = engine.session(Identity::local_admin()).expect("session");

    // Every object plans and has rows.
    for (name, _) in std::iter::once(&USAGE_VIEW).chain(BUILTIN_SQL) {
        let batches = rows(&session, &format!("SELECT * FROM {name}")).await;
        let n: usize = batches.iter().map(RecordBatch::num_rows).sum();
        assert!(n > 0, "{name} is empty");
    }

    // kpi.daily counts every request and costs what finops.usage costs.
    let total = scalar_f64(&session, "SELECT SUM(requests) FROM finops.usage").await;
    assert_eq!(
        scalar_f64(&session, "SELECT SUM(requests) FROM kpi.daily").await,
        total
    );
    let cost = scalar_f64(&session, "SELECT SUM(cost) FROM kpi.daily").await;
    let usage_cost = scalar_f64(&session, "SELECT SUM(cost) FROM finops.usage").await;
    assert!((cost - usage_cost).abs() < 1e-6, "{cost} vs {usage_cost}");
    let pct = scalar_f64(
        &session,
        "SELECT 100.0 * SUM(redundant_requests) / SUM(requests) FROM kpi.daily",
    )
    .await;
    assert!((8.0..=20.0).contains(&pct), "redundant {pct}%");

    // The provider exports are part of finops.usage, attributed to teams by the demo's rules.
    let from_exports = scalar_f64(
        &session,
        "SELECT COUNT(*) FROM finops.usage WHERE source <> 'demo' AND team IS NOT NULL",
    )
    .await;
    assert!(from_exports > 0.0);

    // The planted problems show.
    let planted = test_support::spikes(today);
    let found = rows(
        &session,
        "SELECT key, CAST(day AS DATE) AS day FROM kpi.anomalies WHERE dimension = 'team'",
    )
    .await;
    let mut hits = Vec::new();
    for b in &found {
        let key = datafusion::arrow::compute::cast(
            b.column(0),
            &datafusion::arrow::datatypes::DataType::Utf8,
        )
        .expect("text");
        let key = key.as_string::<i32>();
        let day = b.column(1).as_primitive::<Date32Type>();
        for i in 0..b.num_rows() {
            hits.push((key.value(i).to_string(), day.value(i)));
        }
    }
    let caught = planted.iter().filter(|p| hits.contains(p)).count();
    assert!(caught >= 3, "caught {caught} of {planted:?} in {hits:?}");
    let savings = scalar_f64(
        &session,
        "SELECT SUM(savings) FROM kpi.model_fit WHERE feature = 'classify-intent'",
    )
    .await;
    assert!(savings > 0.0);
    let unpriced = scalar_f64(
        &session,
        &format!(
            "SELECT SUM(requests) FROM finops.unpriced_usage WHERE model = '{}'",
            demo::UNPRICED_MODEL
        ),
    )
    .await;
    assert!(unpriced > 0.0);
    let unpriced_cost = rows(
        &session,
        "SELECT cost FROM finops.usage WHERE NOT priced LIMIT 1",
    )
    .await;
    assert!(
        unpriced_cost[0].column(0).is_null(0),
        "unpriced is NULL, never 0"
    );
    let unowned = scalar_f64(&session, "SELECT SUM(requests) FROM finops.unowned_spend").await;
    assert!(unowned > 0.0);

    // The seed KPIs are one SELECT away.
    for (kpi, period) in [
        ("cost_per_request", "last_30_days"),
        ("cost_per_user", "last_30_days"),
        ("weekly_spend", "previous_week"),
        ("monthly_spend", "previous_month"),
    ] {
        let sql =
            format!("SELECT value FROM kpi.summary WHERE kpi = '{kpi}' AND period = '{period}'");
        let value = scalar_f64(&session, &sql).await;
        assert!(value > 0.0, "{kpi}/{period} = {value}");
    }
    let per_request = scalar_f64(
        &session,
        "SELECT value FROM kpi.summary WHERE kpi = 'cost_per_request'",
    )
    .await;
    assert!(per_request > 0.0 && per_request < 1.0, "{per_request}");

    // The price cut in the middle of the window re-prices the rows after it, not before.
    let (provider, model) = demo::PRICE_CHANGE_MODEL;
    let versions = scalar_f64(
        &session,
        &format!(
            "SELECT COUNT(DISTINCT price_version) FROM finops.usage \
             WHERE provider = '{provider}' AND model = '{model}'"
        ),
    )
    .await;
    assert_eq!(versions, 2.0);

    // Rows appended to today refresh kpi.daily by recomputing today only, and the result equals
    // its definition run from scratch, redundancy included.
    session
        .query(
            "INSERT INTO finops.usage_events (event_id, ts, provider, model, team, input_tokens, \
             output_tokens, prompt_hash) VALUES \
             ('late-1', now() - INTERVAL '1 second', 'openai', 'gpt-4o-mini', 'search', 100, 10, 'p-late'), \
             ('late-2', now(), 'openai', 'gpt-4o-mini', 'search', 100, 10, 'p-late'), \
             ('late-3', now(), 'openai', 'gpt-4o-mini', 'support', 50, 5, 'p-late')",
        )
        .await
        .expect("append");
    let stats = engine
        .views()
        .expect("views")
        .refresh(engine.base_context(), "kpi.daily")
        .await
        .expect("refresh");
    assert_ne!(
        stats.kind,
        crate::materialized::RefreshKind::Full,
        "{stats:?}"
    );
    let definition = rows(
        &session,
        "SELECT definition FROM finops.materialized_views WHERE name = 'kpi.daily'",
    )
    .await;
    let definition = definition[0]
        .column(0)
        .as_string::<i32>()
        .value(0)
        .to_string();
    let summary = "COUNT(*) AS n, SUM(requests) AS r, SUM(redundant_requests) AS rr, \
                   SUM(redundant_cost) AS rc, SUM(cost) AS c, SUM(unpriced_requests) AS u";
    let stored = rows(&session, &format!("SELECT {summary} FROM kpi.daily")).await;
    let fresh = rows(
        &session,
        &format!("SELECT {summary} FROM ({definition}) AS d"),
    )
    .await;
    assert_eq!(
        datafusion::arrow::util::pretty::pretty_format_batches(&stored)
            .expect("format")
            .to_string(),
        datafusion::arrow::util::pretty::pretty_format_batches(&fresh)
            .expect("format")
            .to_string()
    );
}
