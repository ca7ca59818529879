//! Tests of materialized views: statements, create/query/drop, restart, atomic and serialised
//! refresh, and incremental refresh checked against the defining query run from scratch.

#![allow(clippy::unwrap_used)] // A failed unwrap is the test failing.

use std::sync::Arc;
use std::time::Duration;

use datafusion::common::ScalarValue;
use datafusion::prelude::{SessionConfig, SessionContext};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

fn context() -> SessionContext {
    SessionContext::new_with_config(SessionConfig::new().with_information_schema(true))
}

async fn base_table(ctx: &SessionContext) {
    ctx.sql("CREATE TABLE events (ts TIMESTAMP, team VARCHAR, cost BIGINT)")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
}

async fn exec(ctx: &SessionContext, sql: &str) {
    ctx.sql(sql).await.unwrap().collect().await.unwrap();
}

async fn open(dir: &tempfile::TempDir, ctx: &SessionContext) -> Arc<MaterializedViews> {
    let store = Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    MaterializedViews::open(store, Path::from("materialized"), ctx)
        .await
        .unwrap()
}

/// Rows of `sql` as sorted text lines, so that results compare regardless of order.
async fn rows(ctx: &SessionContext, sql: &str) -> Vec<String> {
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let mut out = Vec::new();
    for b in &batches {
        for i in 0..b.num_rows() {
            let cells: Vec<String> = (0..b.num_columns())
                .map(|c| {
                    ScalarValue::try_from_array(b.column(c), i)
                        .unwrap()
                        .to_string()
                })
                .collect();
            out.push(cells.join("|"));
        }
    }
    out.sort();
    out
}

fn create(name: &str, query: &str) -> CreateRequest {
    CreateRequest {
        name: name.into(),
        query: query.into(),
        refresh: RefreshMode::Manual,
        if_not_exists: false,
    }
}

const DAILY: &str = "SELECT date_trunc('day', ts) AS day, team, sum(cost) AS cost, count(*) AS n \
                     FROM events GROUP BY date_trunc('day', ts), team";

#[tokio::test]
async fn create_query_drop() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context();
    base_table(&ctx).await;
    exec(&ctx, "INSERT INTO events VALUES (TIMESTAMP '2026-01-01 10:00:00', 'a', 5), (TIMESTAMP '2026-01-01 11:00:00', 'a', 7)").await;
    let views = open(&dir, &ctx).await;
    assert!(views.create(&ctx, &create("daily", DAILY)).await.unwrap());
    assert_eq!(rows(&ctx, "SELECT cost, n FROM daily").await, vec!["12|2"]);
    let err = views
        .create(&ctx, &create("daily", DAILY))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TableExists(_)));
    let mut again = create("daily", DAILY);
    again.if_not_exists = true;
    assert!(!views.create(&ctx, &again).await.unwrap());

    let status = rows(
        &ctx,
        "SELECT name, refresh, incremental, rows, stale FROM finops.materialized_views",
    )
    .await;
    assert_eq!(status, vec!["public.daily|manual|true|1|false"]);
    let info = &views.list()[0];
    assert!(info.bytes > 0 && info.last_refresh.is_some());

    assert!(views.drop_view(&ctx, "daily", false).await.unwrap());
    assert!(ctx.sql("SELECT * FROM daily").await.is_err());
    assert!(!views.drop_view(&ctx, "daily", true).await.unwrap());
    assert!(views.list().is_empty());
    let left: Vec<_> = walk(dir.path());
    assert!(left.is_empty(), "files left after drop: {left:?}");
}

fn walk(path: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path).unwrap().flatten() {
        if entry.path().is_dir() {
            out.extend(walk(&entry.path()));
        } else {
            out.push(entry.path());
        }
    }
    out
}

#[tokio::test]
async fn restart_restores_views() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let ctx = context();
        base_table(&ctx).await;
        exec(&ctx, "CREATE SCHEMA kpi").await;
        exec(&ctx, "INSERT INTO events VALUES (TIMESTAMP '2026-01-01 10:00:00', 'a', 5), (TIMESTAMP '2026-01-02 11:00:00', 'b', 7)").await;
        let views = open(&dir, &ctx).await;
        let mut request = create("kpi.daily", DAILY);
        request.refresh = RefreshMode::parse("5 minutes").unwrap();
        views.create(&ctx, &request).await.unwrap();
        rows(&ctx, "SELECT * FROM kpi.daily").await
    };
    let ctx = context();
    let views = open(&dir, &ctx).await;
    assert_eq!(rows(&ctx, "SELECT * FROM kpi.daily").await, before);
    let info = &views.list()[0];
    assert_eq!(info.name, "kpi.daily");
    assert_eq!(info.refresh, RefreshMode::Every(Duration::from_secs(300)));
    assert!(info.incremental);
    assert_eq!(info.rows, 2);
}

/// A view over view-typed text (what `finops.usage_events` scans produce) is stored and read
/// back after a restart with the same rows and types.
#[tokio::test]
async fn restart_restores_views_of_view_typed_text() {
    use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringViewArray};
    use datafusion::arrow::datatypes::DataType;
    let base = || {
        let ctx = context();
        let team: ArrayRef = Arc::new(StringViewArray::from(vec![
            Some("search"),
            Some("search-and-rescue-operations"),
            None,
            Some("search"),
        ]));
        let cost: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3, 4]));
        let batch = RecordBatch::try_from_iter(vec![("team", team), ("cost", cost)]).unwrap();
        ctx.register_batch("spend", batch).unwrap();
        ctx
    };
    let dir = tempfile::tempdir().unwrap();
    let query = "SELECT team, sum(cost) AS cost FROM spend GROUP BY team";
    let before = {
        let ctx = base();
        exec(&ctx, "CREATE SCHEMA kpi").await;
        let views = open(&dir, &ctx).await;
        views
            .create(&ctx, &create("kpi.by_team", query))
            .await
            .unwrap();
        rows(&ctx, "SELECT * FROM kpi.by_team").await
    };
    assert_eq!(before.len(), 3, "{before:?}");
    let ctx = base();
    exec(&ctx, "CREATE SCHEMA kpi").await;
    let views = open(&dir, &ctx).await;
    assert_eq!(rows(&ctx, "SELECT * FROM kpi.by_team").await, before);
    let table = ctx.table("kpi.by_team").await.unwrap();
    assert_eq!(
        table.schema().field(0).data_type(),
        &DataType::Utf8View,
        "stored as it was computed"
    );
    views.refresh(&ctx, "kpi.by_team").await.unwrap();
    assert_eq!(rows(&ctx, "SELECT * FROM kpi.by_team").await, before);
}

#[tokio::test]
async fn refresh_is_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context();
    base_table(&ctx).await;
    exec(
        &ctx,
        "INSERT INTO events VALUES (TIMESTAMP '2026-01-01 10:00:00', 'a', 5)",
    )
    .await;
    let views = open(&dir, &ctx).await;
    views.create(&ctx, &create("daily", DAILY)).await.unwrap();
    // The reader's plan is built (and its snapshot taken) before the refresh.
    let reader = ctx
        .sql("SELECT sum(cost) FROM daily")
        .await
        .unwrap()
        .execute_stream()
        .await
        .unwrap();
    exec(
        &ctx,
        "INSERT INTO events VALUES (TIMESTAMP '2026-01-03 10:00:00', 'a', 100)",
    )
    .await;
    let stats = views.refresh(&ctx, "daily").await.unwrap();
    assert_eq!(stats.kind, RefreshKind::Incremental);
    let old: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(reader)
        .await
        .unwrap();
    assert_eq!(
        ScalarValue::try_from_array(old[0].column(0), 0).unwrap(),
        ScalarValue::Int64(Some(5))
    );
    assert_eq!(rows(&ctx, "SELECT sum(cost) FROM daily").await, vec!["105"]);
    // One result file after the swap: the old one is gone.
    let files: Vec<_> = walk(dir.path())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
}

#[tokio::test]
async fn concurrent_refreshes_are_serialised() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context();
    base_table(&ctx).await;
    exec(
        &ctx,
        "INSERT INTO events VALUES (TIMESTAMP '2026-01-01 10:00:00', 'a', 5)",
    )
    .await;
    let views = open(&dir, &ctx).await;
    views.create(&ctx, &create("daily", DAILY)).await.unwrap();
    exec(
        &ctx,
        "INSERT INTO events VALUES (TIMESTAMP '2026-01-02 10:00:00', 'a', 1)",
    )
    .await;
    let runs = (0..4).map(|_| {
        let views = Arc::clone(&views);
        let ctx = ctx.clone();
        tokio::spawn(async move { views.refresh(&ctx, "daily").await })
    });
    let mut kinds = Vec::new();
    for run in futures::future::join_all(runs).await {
        kinds.push(run.unwrap().unwrap().kind);
    }
    // Had two run at once, both would have seen the change and recomputed.
    kinds.sort_by_key(|k| *k != RefreshKind::Incremental);
    assert_eq!(
        kinds,
        vec![
            RefreshKind::Incremental,
            RefreshKind::Unchanged,
            RefreshKind::Unchanged,
            RefreshKind::Unchanged
        ]
    );
    assert_eq!(rows(&ctx, "SELECT sum(cost) FROM daily").await, vec!["6"]);
}

#[tokio::test]
async fn non_incremental_query_refreshes_fully() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context();
    base_table(&ctx).await;
    exec(
        &ctx,
        "INSERT INTO events VALUES (TIMESTAMP '2026-01-01 10:00:00', 'a', 5)",
    )
    .await;
    let views = open(&dir, &ctx).await;
    let query = "SELECT team, sum(cost) AS cost FROM events GROUP BY team";
    views.create(&ctx, &create("by_team", query)).await.unwrap();
    // Ordered output, or a median, are not decomposed either.
    let ordered = format!("{DAILY} ORDER BY day");
    views
        .create(&ctx, &create("ordered", &ordered))
        .await
        .unwrap();
    assert!(views.list().iter().all(|v| !v.incremental));
    exec(
        &ctx,
        "INSERT INTO events VALUES (TIMESTAMP '2026-01-02 10:00:00', 'a', 1)",
    )
    .await;
    for name in ["by_team", "ordered"] {
        assert_eq!(
            views.refresh(&ctx, name).await.unwrap().kind,
            RefreshKind::Full
        );
    }
    assert_eq!(rows(&ctx, "SELECT cost FROM by_team").await, vec!["6"]);
}

#[tokio::test]
async fn mark_stale_forces_a_full_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context();
    base_table(&ctx).await;
    exec(
        &ctx,
        "INSERT INTO events VALUES (TIMESTAMP '2026-01-01 10:00:00', 'a', 5)",
    )
    .await;
    let views = open(&dir, &ctx).await;
    views.create(&ctx, &create("daily", DAILY)).await.unwrap();
    views.mark_stale(&["public.events"]).await.unwrap();
    assert!(views.list()[0].stale);
    // Persisted: a restart still refreshes fully.
    drop(views);
    let views = open(&dir, &ctx).await;
    assert!(views.list()[0].stale);
    assert_eq!(
        views.refresh(&ctx, "daily").await.unwrap().kind,
        RefreshKind::Full
    );
    assert!(!views.list()[0].stale);
    assert_eq!(
        views.refresh(&ctx, "daily").await.unwrap().kind,
        RefreshKind::Unchanged
    );
}

/// `daily` with `refresh = 'auto'` (`debounce`) over `events`, then one more row appended and
/// announced.
async fn auto_daily_after_an_append(
    dir: &tempfile::TempDir,
    ctx: &SessionContext,
    debounce: Duration,
) -> Arc<MaterializedViews> {
    let views = open(dir, ctx).await;
    views.set_debounce(debounce);
    let mut request = create("daily", DAILY);
    request.refresh = RefreshMode::Auto;
    views.create(ctx, &request).await.unwrap();
    exec(
        ctx,
        "INSERT INTO events VALUES (TIMESTAMP '2026-01-01 12:00:00', 'a', 2)",
    )
    .await;
    views.notify_appended("events");
    views
}

#[tokio::test]
async fn auto_view_refreshes_after_append() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context();
    base_table(&ctx).await;
    exec(
        &ctx,
        "INSERT INTO events VALUES (TIMESTAMP '2026-01-01 10:00:00', 'a', 5)",
    )
    .await;
    // Kept alive to the end: it runs the automatic refresh.
    let _views = auto_daily_after_an_append(&dir, &ctx, Duration::from_millis(20)).await;
    let mut seen = Vec::new();
    for _ in 0..500 {
        seen = rows(&ctx, "SELECT cost FROM daily").await;
        if seen == vec!["7"] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen, vec!["7"]);
}

#[tokio::test]
async fn auto_refresh_waits_while_a_load_streams_but_not_forever() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context();
    base_table(&ctx).await;
    let started = std::time::Instant::now();
    // Long enough that a busy machine's pauses do not look like the end of the load.
    let debounce = Duration::from_millis(100);
    let views = auto_daily_after_an_append(&dir, &ctx, debounce).await;
    // A load keeps streaming rows: no refresh while it does, for up to 30 debounce times. The
    // load is told on its own thread, so a slow query here (a busy machine) leaves no gap.
    let streaming = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let loader = {
        let (views, streaming) = (Arc::clone(&views), Arc::clone(&streaming));
        std::thread::spawn(move || {
            while streaming.load(std::sync::atomic::Ordering::SeqCst) {
                views.notify_loading(&["events"]);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let mut refreshed_after = None;
    while started.elapsed() < Duration::from_secs(20) {
        if rows(&ctx, "SELECT cost FROM daily").await == vec!["2"] {
            refreshed_after = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    streaming.store(false, std::sync::atomic::Ordering::SeqCst);
    loader.join().unwrap();
    let waited = refreshed_after.expect("refreshed despite the endless load");
    // The deadline counts from the append the helper notified, just after `started`.
    assert!(
        waited >= debounce * MAX_DEFERRALS - Duration::from_millis(100),
        "refreshed after {waited:?}, while rows were still arriving"
    );
}

/// A change feed for the tests' `events` table, told of each insert by the test itself.
#[derive(Default)]
struct EventsFeed(std::sync::Mutex<crate::storage::ChangeLog>);

impl EventsFeed {
    fn appended(&self, min_ts: Option<i64>) {
        self.0.lock().unwrap().appended(min_ts);
    }
}

impl ChangeFeed for EventsFeed {
    fn position(&self, table: &str) -> Option<ChangePosition> {
        (table == "public.events").then(|| self.0.lock().unwrap().position())
    }

    fn since(&self, table: &str, position: &ChangePosition) -> Changes {
        if table == "public.events" {
            self.0.lock().unwrap().since(position)
        } else {
            Changes::Unknown
        }
    }
}

/// With a change feed, a refresh believes it: told of nothing, it recounts nothing and keeps the
/// stored result; told of the append, it recomputes the buckets from the appended rows on.
#[tokio::test]
async fn a_change_feed_spares_counting_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context();
    exec(
        &ctx,
        "CREATE TABLE events (ts TIMESTAMP(6), team VARCHAR, cost BIGINT)",
    )
    .await;
    exec(&ctx, "INSERT INTO events VALUES (TIMESTAMP '2026-01-01 10:00:00', 'a', 5), (TIMESTAMP '2026-01-02 11:00:00', 'a', 7)").await;
    let views = open(&dir, &ctx).await;
    let feed = Arc::new(EventsFeed::default());
    views.set_change_feed(Arc::clone(&feed) as Arc<dyn ChangeFeed>);
    views.create(&ctx, &create("daily", DAILY)).await.unwrap();
    exec(
        &ctx,
        "INSERT INTO events VALUES (TIMESTAMP '2026-01-02 12:00:00', 'a', 1)",
    )
    .await;
    let stats = views.refresh(&ctx, "daily").await.unwrap();
    assert_eq!(stats.kind, RefreshKind::Unchanged);
    assert_eq!(
        rows(&ctx, "SELECT cost, n FROM daily ORDER BY day").await,
        vec!["5|1", "7|1"]
    );
    let noon = chrono::NaiveDate::from_ymd_opt(2026, 1, 2)
        .unwrap()
        .and_hms_opt(12, 0, 0)
        .unwrap();
    feed.appended(Some(noon.and_utc().timestamp_micros()));
    let stats = views.refresh(&ctx, "daily").await.unwrap();
    assert_eq!(stats.kind, RefreshKind::Incremental);
    assert_eq!(stats.rows_recomputed, 1, "only 2026-01-02 is recomputed");
    assert_eq!(
        rows(&ctx, "SELECT * FROM daily").await,
        rows(&ctx, DAILY).await
    );
}

/// After random appends (late rows and NULL timestamps included) and refreshes, every view equals
/// its query run from scratch: counting the input's buckets each time, and told what was appended
/// by a change feed.
#[tokio::test]
async fn incremental_views_match_their_query() {
    incremental_views_match(false).await;
}

#[tokio::test]
async fn incremental_views_fed_with_changes_match_their_query() {
    incremental_views_match(true).await;
}

async fn incremental_views_match(with_feed: bool) {
    let definitions = [
        ("v_day", DAILY.to_string(), true),
        (
            "v_stats",
            "SELECT team, date_trunc('hour', ts) AS hour, min(cost) AS lo, max(cost) AS hi, \
             avg(cost) AS mean FROM events WHERE cost > 10 GROUP BY team, date_trunc('hour', ts)"
                .to_string(),
            true,
        ),
        (
            "v_bin",
            "SELECT b, n FROM (SELECT date_bin(INTERVAL '6 hours', ts) AS b, count(cost) AS n \
             FROM events GROUP BY 1 HAVING count(*) > 1) AS s"
                .to_string(),
            true,
        ),
        (
            "v_date",
            "SELECT CAST(ts AS DATE) AS d, sum(cost) AS cost FROM events GROUP BY CAST(ts AS DATE)"
                .to_string(),
            true,
        ),
        (
            "v_full",
            "SELECT team, sum(cost) AS cost FROM events GROUP BY team".to_string(),
            false,
        ),
        // kpi.daily's shape: each row against the first of its team that day.
        ("v_first", first_seen_view("day", false), true),
        // The same with the aggregate on the join's build side.
        ("v_first_right", first_seen_view("day", true), true),
        // Joined to an aggregate of another bucket: a changed hour is not a changed day.
        ("v_first_hour", first_seen_view("hour", false), false),
        ("v_first_hour_right", first_seen_view("hour", true), false),
    ];
    for seed in [7_u64, 42, 2026] {
        let mut rng = StdRng::seed_from_u64(seed);
        let dir = tempfile::tempdir().unwrap();
        let ctx = context();
        let feed = Arc::new(EventsFeed::default());
        let views = if with_feed {
            exec(
                &ctx,
                "CREATE TABLE events (ts TIMESTAMP(6), team VARCHAR, cost BIGINT)",
            )
            .await;
            let views = open(&dir, &ctx).await;
            views.set_change_feed(Arc::clone(&feed) as Arc<dyn ChangeFeed>);
            views
        } else {
            base_table(&ctx).await;
            open(&dir, &ctx).await
        };
        for (name, query, _) in &definitions {
            views.create(&ctx, &create(name, query)).await.unwrap();
        }
        for (name, _, incremental) in &definitions {
            let info = views
                .list()
                .into_iter()
                .find(|v| v.name.ends_with(name))
                .unwrap();
            assert_eq!(info.incremental, *incremental, "{name}");
        }
        let mut incremental_runs = 0;
        for _round in 0..8 {
            let (values, times): (Vec<String>, Vec<Option<i64>>) = (0..rng.random_range(0..12))
                .map(|_| random_row(&mut rng))
                .unzip();
            if !values.is_empty() {
                exec(
                    &ctx,
                    &format!("INSERT INTO events VALUES {}", values.join(", ")),
                )
                .await;
                feed.appended(times.into_iter().flatten().min());
            }
            for (name, query, incremental) in &definitions {
                let stats = views.refresh(&ctx, name).await.unwrap();
                if !incremental {
                    assert_eq!(stats.kind, RefreshKind::Full);
                }
                if stats.kind == RefreshKind::Incremental {
                    incremental_runs += 1;
                }
                let stored = rows(&ctx, &format!("SELECT * FROM {name}")).await;
                let fresh = rows(&ctx, query).await;
                assert_eq!(stored, fresh, "view {name}, seed {seed}");
            }
        }
        assert!(
            incremental_runs > 0,
            "seed {seed} never refreshed incrementally"
        );
    }
}

/// Rows per team and day, and how many came after the team's first row of the `inner` bucket;
/// written `events LEFT JOIN first_seen`, or `first_seen RIGHT JOIN events` when `right`.
fn first_seen_view(inner: &str, right: bool) -> String {
    let join = if right {
        "first_seen f RIGHT JOIN events e"
    } else {
        "events e LEFT JOIN first_seen f"
    };
    format!(
        "WITH first_seen AS (SELECT date_trunc('{inner}', ts) AS b, team, MIN(ts) AS first_ts \
         FROM events WHERE cost > 3 GROUP BY date_trunc('{inner}', ts), team) \
         SELECT date_trunc('day', e.ts) AS day, e.team, count(*) AS n, \
         SUM(CASE WHEN e.ts > f.first_ts THEN e.cost ELSE 0 END) AS later \
         FROM {join} \
         ON f.b = date_trunc('day', e.ts) AND f.team = e.team \
         GROUP BY date_trunc('day', e.ts), e.team"
    )
}

/// A row as SQL, and its `ts` in microseconds.
fn random_row(rng: &mut StdRng) -> (String, Option<i64>) {
    let ts = (!rng.random_bool(0.05)).then(|| {
        chrono::NaiveDate::from_ymd_opt(2026, 1, rng.random_range(1..=9))
            .unwrap()
            .and_hms_opt(rng.random_range(0..24), rng.random_range(0..60), 0)
            .unwrap()
    });
    let literal = match ts {
        Some(ts) => format!("TIMESTAMP '{}'", ts.format("%Y-%m-%d %H:%M:%S")),
        None => "NULL".to_string(),
    };
    let team = ["'a'", "'b'", "'c'", "NULL"][rng.random_range(0..4)];
    (
        format!("({literal}, {team}, {})", rng.random_range(0..40)),
        ts.map(|t| t.and_utc().timestamp_micros()),
    )
}

#[test]
fn parse_refresh_recognises_valid_forms() {
    let ok = |sql: &str| parse_refresh(sql).map(|r| r.unwrap());
    assert_eq!(
        ok("REFRESH MATERIALIZED VIEW kpi.daily"),
        Some("kpi.daily".into())
    );
    assert_eq!(ok("refresh materialized view Daily;"), Some("daily".into()));
    assert_eq!(
        ok("REFRESH MATERIALIZED VIEW CONCURRENTLY \"Kpi\".daily WITH DATA ;"),
        Some("\"Kpi\".daily".into())
    );
    assert_eq!(
        ok("  -- note\n REFRESH /* x */ MATERIALIZED VIEW v"),
        Some("v".into())
    );
}

#[test]
fn parse_refresh_rejects_other_forms() {
    assert!(parse_refresh("SELECT 1").is_none());
    assert!(parse_refresh("REFRESH TABLE t").is_none());
    assert!(parse_refresh("REFRESH VIEW t").is_none());
    for bad in [
        "REFRESH MATERIALIZED VIEW",
        "REFRESH MATERIALIZED VIEW kpi.",
        "REFRESH MATERIALIZED VIEW a b",
        "REFRESH MATERIALIZED VIEW a; SELECT 1",
        "REFRESH MATERIALIZED VIEW a WITH NO DATA",
    ] {
        assert!(matches!(parse_refresh(bad), Some(Err(_))), "{bad}");
    }
}

#[test]
fn create_statement_is_recognised_with_its_options() {
    let parse = |sql: &str| {
        let statements = crate::statements::parse(sql).unwrap();
        let datafusion::sql::parser::Statement::Statement(statement) = &statements[0] else {
            panic!("a SQL statement");
        };
        recognise(statement)
    };
    let Some(Ok(MvStatement::Create(request))) = parse(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS kpi.daily WITH (refresh = '5 minutes') AS SELECT 1 AS x",
    ) else {
        panic!("not recognised");
    };
    assert_eq!(request.name, "kpi.daily");
    assert!(request.if_not_exists);
    assert_eq!(
        request.refresh,
        RefreshMode::Every(Duration::from_secs(300))
    );
    assert_eq!(request.query, "SELECT 1 AS x");
    assert!(matches!(
        parse("CREATE MATERIALIZED VIEW v WITH (refresh = 'sometimes') AS SELECT 1"),
        Some(Err(Error::InvalidParameter(_)))
    ));
    assert!(matches!(
        parse("DROP MATERIALIZED VIEW IF EXISTS a, b"),
        Some(Ok(MvStatement::Drop {
            if_exists: true,
            ..
        }))
    ));
    assert!(parse("CREATE VIEW v AS SELECT 1").is_none());
}

#[test]
fn refresh_modes_print_as_they_parse() {
    for (text, shown) in [
        ("manual", "manual"),
        ("AUTO", "auto"),
        ("5 minutes", "5 minutes"),
        ("90s", "90 seconds"),
        ("1 hour", "1 hour"),
        ("2d", "2 days"),
    ] {
        let mode = RefreshMode::parse(text).unwrap();
        assert_eq!(mode.to_string(), shown);
        assert_eq!(RefreshMode::parse(shown).unwrap(), mode);
    }
    for bad in ["", "0 minutes", "5 fortnights", "minutes", "-1 s"] {
        assert!(RefreshMode::parse(bad).is_err(), "{bad}");
    }
}

/// psql `\dm` (its catalog query, trimmed to what it filters on) lists the views, `\dv` does not.
#[tokio::test]
async fn psql_dm_lists_materialized_views() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context();
    base_table(&ctx).await;
    exec(&ctx, "CREATE VIEW plain AS SELECT * FROM events").await;
    datafusion_pg_catalog::pg_catalog::setup_pg_catalog(
        &ctx,
        "datafusion",
        datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider,
    )
    .unwrap();
    let views = open(&dir, &ctx).await;
    views.create(&ctx, &create("daily", DAILY)).await.unwrap();
    register_pg_catalog_overlay(&ctx, "datafusion", &views, &Arc::default()).unwrap();
    let listing = |kind: &str| {
        format!(
            "SELECT n.nspname, c.relname FROM pg_catalog.pg_class c \
             LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('{kind}','') AND n.nspname <> 'pg_catalog' \
             AND n.nspname <> 'information_schema'"
        )
    };
    assert_eq!(rows(&ctx, &listing("m")).await, vec!["public|daily"]);
    assert_eq!(
        rows(&ctx, &listing("v")).await,
        vec!["finops|materialized_views", "public|plain"]
    );
    assert_eq!(
        rows(
            &ctx,
            "SELECT schemaname, matviewname, ispopulated FROM pg_catalog.pg_matviews"
        )
        .await,
        vec!["public|daily|true"]
    );
}
