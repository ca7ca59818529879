//! Budgets end to end: hard caps under concurrent reservations (in-process and over the wire),
//! checks raising each alert once per period, webhook delivery with retries against local HTTP
//! receivers, and the exit codes of `finops-db check`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use finops_db::budget::alerts::{self, Delivery};
use finops_db::config::Config;
use finops_db::engine::Identity;
use finops_db::testing::TestServer;
use finops_db::{Engine, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn config_for(dir: &std::path::Path) -> Config {
    Config {
        data_dir: dir.to_string_lossy().into_owned(),
        ..Config::default()
    }
}

async fn exec(session: &Session, sql: &str) {
    session
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn scalar_text(session: &Session, sql: &str) -> String {
    let batches = session
        .query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let column = datafusion::arrow::compute::cast(
        batches[0].column(0),
        &datafusion::arrow::datatypes::DataType::Utf8,
    )
    .expect("cast");
    datafusion::arrow::array::AsArray::as_string::<i32>(&column)
        .value(0)
        .to_string()
}

const PRICE: &str = "INSERT INTO finops.model_prices (provider, model, \"match\", input, output, source) \
                     VALUES ('acme', 'flat-1', 'exact', 1.0, 0.0, 'test')";

/// A fresh engine in a scratch directory, an admin session, and a price for `acme/flat-1`.
async fn priced_engine() -> (tempfile::TempDir, std::sync::Arc<Engine>, Session) {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::open(config_for(dir.path())).await.expect("open");
    let session = engine.session(Identity::local_admin()).expect("session");
    exec(&session, PRICE).await;
    (dir, engine, session)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_reservations_never_overspend_a_cap() {
    let (_dir, engine, admin) = priced_engine().await;
    exec(
        &admin,
        "INSERT INTO finops.budgets (budget_id, scope, scope_value, period, amount, hard_cap) \
         VALUES ('cap-search', 'team', 'search', 'day', 1.00, true)",
    )
    .await;
    let granted = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let session = engine.session(Identity::local_admin()).expect("session");
        let granted = Arc::clone(&granted);
        tasks.push(tokio::spawn(async move {
            let yes = scalar_text(&session, "SELECT finops.reserve('team', 'search', 0.05)").await;
            if yes == "true" {
                granted.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    assert_eq!(granted.load(Ordering::SeqCst), 20);
    assert_eq!(
        scalar_text(
            &admin,
            "SELECT remaining FROM finops.cap_status WHERE budget_id = 'cap-search'"
        )
        .await,
        "0.000000000000"
    );
    assert_eq!(
        scalar_text(&admin, "SELECT allowed FROM finops.cap_status").await,
        "false"
    );
    // Another scope has no cap.
    assert_eq!(
        scalar_text(&admin, "SELECT finops.reserve('team', 'ads', 1000)").await,
        "true"
    );
    // Usage that arrives uses up the reservations it was made for.
    exec(
        &admin,
        "INSERT INTO finops.usage_events (event_id, ts, provider, model, team, input_tokens, output_tokens) \
         VALUES ('u1', now(), 'acme', 'flat-1', 'search', 300000, 0)",
    )
    .await;
    assert_eq!(
        scalar_text(&admin, "SELECT CAST(spent AS VARCHAR) || '/' || CAST(reserved AS VARCHAR) FROM finops.cap_status").await,
        "0.300000000000/0.700000000000"
    );
    // A bigger cap after an UPDATE frees room; the reservations made stay booked.
    exec(
        &admin,
        "UPDATE finops.budgets SET amount = 2 WHERE budget_id = 'cap-search'",
    )
    .await;
    assert_eq!(
        scalar_text(&admin, "SELECT remaining FROM finops.cap_status").await,
        "1.000000000000"
    );
    let err = admin
        .query("SELECT finops.reserve('team', 'search', -1)")
        .await
        .expect_err("negative amount");
    assert_eq!(finops_db::server::sqlstate::error_info(&err).code, "22023");
}

/// Appends reach the caps without reading the period again, priced and attributed exactly as
/// `finops.usage` prices and attributes them; any other change reads the period in full.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn caps_follow_appends_without_rereading_the_period() {
    let (_dir, engine, admin) = priced_engine().await;
    exec(
        &admin,
        "INSERT INTO finops.attribution_rules (rule_id, field, value, team) \
         VALUES ('r1', 'project', 'proj-search', 'search')",
    )
    .await;
    exec(
        &admin,
        "INSERT INTO finops.price_adjustments (adjustment_id, provider, model, discount_pct) \
         VALUES ('a1', 'acme', 'flat-*', 10)",
    )
    .await;
    exec(
        &admin,
        "INSERT INTO finops.budgets (budget_id, scope, scope_value, period, amount, hard_cap) \
         VALUES ('cap-search', 'team', 'search', 'day', 100, true)",
    )
    .await;
    let spent = "SELECT CAST(spent AS VARCHAR) FROM finops.cap_status";
    let expected = "SELECT CAST(COALESCE(SUM(cost), 0) AS VARCHAR) FROM finops.usage \
                    WHERE team = 'search' AND ts >= date_trunc('day', now())";
    let reads = engine.caps().full_reads();
    for statement in [
        // Own team, this period: counts, at the discounted price.
        "('e1', now(), 'acme', 'flat-1', 'search', NULL, 1000000, 0)",
        // Another team, an earlier period, an unpriced model: none of them count.
        "('e2', now(), 'acme', 'flat-1', 'ads', NULL, 1000000, 0), \
         ('e3', now() - INTERVAL '3 days', 'acme', 'flat-1', 'search', NULL, 1000000, 0), \
         ('e4', now(), 'acme', 'unknown-model', 'search', NULL, 1000000, 0)",
        // Attributed to the team by a rule.
        "('e5', now(), 'acme', 'flat-1', NULL, 'proj-search', 2000000, 0)",
        // Re-sent: skipped, so it does not count twice.
        "('e1', now(), 'acme', 'flat-1', 'search', NULL, 1000000, 0)",
    ] {
        exec(
            &admin,
            &format!(
                "INSERT INTO finops.usage_events (event_id, ts, provider, model, team, project, \
                 input_tokens, output_tokens) VALUES {statement}"
            ),
        )
        .await;
        assert_eq!(
            scalar_text(&admin, spent).await,
            scalar_text(&admin, expected).await
        );
    }
    assert_eq!(scalar_text(&admin, spent).await, "2.700000000000");
    assert_eq!(
        engine.caps().full_reads(),
        reads,
        "appends read nothing again"
    );
    // A DELETE is not an append: the period is read again.
    exec(
        &admin,
        "DELETE FROM finops.usage_events WHERE event_id = 'e5'",
    )
    .await;
    assert_eq!(scalar_text(&admin, spent).await, "0.900000000000");
    assert!(engine.caps().full_reads() > reads);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reservations_over_the_wire_never_overspend() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(config_for(dir.path()))
        .await
        .expect("server");
    let (admin, conn) = tokio_postgres::connect(&server.conn_str(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    admin
        .batch_execute(
            "INSERT INTO finops.budgets (budget_id, scope, scope_value, period, amount, hard_cap) \
             VALUES ('cap-org', 'org', NULL, 'month', 0.50, true)",
        )
        .await
        .expect("budget");
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let conn_str = server.conn_str();
        tasks.push(tokio::spawn(async move {
            let (client, conn) = tokio_postgres::connect(&conn_str, tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(conn);
            let mut yes = 0;
            for _ in 0..5 {
                let row = client
                    .query_one("SELECT finops.reserve('app', 'chat', 0.01)", &[])
                    .await
                    .expect("reserve");
                if row.get::<_, bool>(0) {
                    yes += 1;
                }
            }
            yes
        }));
    }
    let mut granted = 0;
    for t in tasks {
        granted += t.await.expect("task");
    }
    assert_eq!(granted, 50);
}

/// A gateway prepares its cap lookup once and runs it before every call: each run sees the
/// reservations and budgets as they are then, not as they were at its first run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_cap_lookup_sees_every_change_since_its_last_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(config_for(dir.path()))
        .await
        .expect("server");
    let (client, conn) = tokio_postgres::connect(&server.conn_str(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let budget = |id: &str, amount: &str| {
        format!(
            "INSERT INTO finops.budgets (budget_id, scope, scope_value, period, amount, hard_cap) \
             VALUES ('{id}', 'team', 'search', 'month', {amount}, true)"
        )
    };
    client
        .batch_execute(&budget("cap-a", "1.00"))
        .await
        .expect("budget");
    let lookup = client
        .prepare(
            "SELECT CAST(remaining * 100 AS BIGINT), allowed FROM finops.cap_status \
             WHERE budget_id = $1",
        )
        .await
        .expect("prepare");
    let cents = async |id: &str| -> Vec<(i64, bool)> {
        client
            .query(&lookup, &[&id])
            .await
            .expect("lookup")
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect()
    };
    let reserve = async |amount: &str| {
        client
            .batch_execute(&format!(
                "SELECT finops.reserve('team', 'search', {amount})"
            ))
            .await
            .expect("reserve");
    };
    assert_eq!(cents("cap-a").await, vec![(100, true)]);
    assert_eq!(cents("cap-a").await, vec![(100, true)]);
    reserve("0.25").await;
    assert_eq!(cents("cap-a").await, vec![(75, true)]);
    assert_eq!(cents("cap-b").await, vec![]);
    client
        .batch_execute(&budget("cap-b", "0.50"))
        .await
        .expect("budget");
    assert_eq!(cents("cap-b").await, vec![(50, true)]);
    reserve("0.25").await;
    assert_eq!(cents("cap-a").await, vec![(50, true)]);
    assert_eq!(cents("cap-b").await, vec![(25, true)]);
    reserve("0.25").await;
    assert_eq!(cents("cap-a").await, vec![(25, true)]);
    assert_eq!(cents("cap-b").await, vec![(0, false)]);
    client
        .batch_execute("DELETE FROM finops.budgets WHERE budget_id = 'cap-a'")
        .await
        .expect("delete");
    assert_eq!(cents("cap-a").await, vec![]);
}

/// A local HTTP receiver: answers each POST with the next status of `statuses` (the last one
/// repeats) and keeps the bodies.
struct Receiver {
    url: String,
    bodies: Arc<tokio::sync::Mutex<Vec<serde_json::Value>>>,
}

async fn receiver(statuses: Vec<u16>) -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let bodies = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let kept = Arc::clone(&bodies);
    tokio::spawn(async move {
        let mut n = 0usize;
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let status = statuses[n.min(statuses.len() - 1)];
            n += 1;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let body = loop {
                let read = socket.read(&mut chunk).await.unwrap_or(0);
                if read == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..read]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + length {
                        break Some(buf[end + 4..end + 4 + length].to_vec());
                    }
                }
            };
            if let Some(body) = body {
                kept.lock()
                    .await
                    .push(serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null));
            }
            let response =
                format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = socket.write_all(response.as_bytes()).await;
        }
    });
    Receiver { url, bodies }
}

async fn states(session: &Session) -> String {
    let batches = session
        .query(
            "SELECT key || '=' || delivery_state || '/' || CAST(attempts AS VARCHAR) \
             FROM finops.alerts ORDER BY key",
        )
        .await
        .expect("alerts");
    let mut out = Vec::new();
    for b in &batches {
        let c = datafusion::arrow::compute::cast(
            b.column(0),
            &datafusion::arrow::datatypes::DataType::Utf8,
        )
        .expect("cast");
        let c = datafusion::arrow::array::AsArray::as_string::<i32>(&c);
        out.extend(c.iter().flatten().map(str::to_string));
    }
    out.join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thresholds_fire_once_per_period_and_webhooks_retry() {
    let flaky = receiver(vec![500, 200]).await;
    let down = receiver(vec![503]).await;
    let (_dir, _engine, s) = priced_engine().await;
    exec(
        &s,
        "INSERT INTO finops.usage_events (event_id, ts, provider, model, team, input_tokens, output_tokens) \
         VALUES ('a', TIMESTAMP '2026-05-02 10:00:00', 'acme', 'flat-1', 'search', 44000000, 0), \
                ('b', TIMESTAMP '2026-05-20 10:00:00', 'acme', 'flat-1', 'search', 10000000, 0), \
                ('c', TIMESTAMP '2026-06-02 10:00:00', 'acme', 'flat-1', 'search', 30000000, 0)",
    )
    .await;
    exec(
        &s,
        &format!(
            "INSERT INTO finops.budgets (budget_id, scope, scope_value, period, amount, notify) \
             VALUES ('search', 'team', 'search', 'month', 50, '{}'), \
                    ('search-copy', 'team', 'search', 'month', 50, '{}')",
            flaky.url, down.url
        ),
    )
    .await;
    let threshold = Some("budget_threshold");

    // 16 May: 44 of 50 spent (88 %): the 50 % and 80 % thresholds fire, for both budgets.
    s.set_as_of("2026-05-16T00:00:00Z").expect("as_of");
    let run = alerts::run_named(&s, threshold).await.expect("run");
    let mut keys: Vec<_> = run.alerts.iter().map(|a| a.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "search-copy@50%",
            "search-copy@80%",
            "search@50%",
            "search@80%"
        ]
    );
    assert_eq!(run.alerts.len(), 4, "{:?}", run.alerts);
    assert!(run.alerts.iter().all(|a| a.new));
    // Again the same day: the same thresholds, already raised this period.
    let run = alerts::run_named(&s, threshold).await.expect("run");
    assert_eq!(run.alerts.len(), 4);
    assert!(run.alerts.iter().all(|a| !a.new));
    // 21 May: 54 spent, 100 % fires; 50 and 80 stay quiet.
    s.set_as_of("2026-05-21T00:00:00Z").expect("as_of");
    let run = alerts::run_named(&s, threshold).await.expect("run");
    let new: Vec<_> = run
        .alerts
        .iter()
        .filter(|a| a.new)
        .map(|a| a.key.as_str())
        .collect();
    assert_eq!(new.len(), 2, "{new:?}");
    assert!(new.iter().all(|k| k.ends_with("@100%")));
    assert!(run.alerts.iter().any(|a| a.severity == "critical"));
    // June is a new period: 30 of 50 fires 50 % again.
    s.set_as_of("2026-06-03T00:00:00Z").expect("as_of");
    let run = alerts::run_named(&s, threshold).await.expect("run");
    let new: Vec<_> = run
        .alerts
        .iter()
        .filter(|a| a.new)
        .map(|a| a.key.as_str())
        .collect();
    assert_eq!(new.len(), 2, "{new:?}");
    assert!(new.iter().all(|k| k.ends_with("@50%")));
    assert_eq!(
        scalar_text(&s, "SELECT count(*) FROM finops.alerts").await,
        "8"
    );

    // Delivery: the flaky receiver fails once then takes the alerts; the one that is down
    // never does, and never holds up the other.
    let delivery = Delivery {
        timeout: Duration::from_secs(5),
        max_attempts: 3,
        backoff: Duration::ZERO,
    };
    let client = reqwest::Client::new();
    let first = alerts::deliver_pending(&s, &client, &delivery)
        .await
        .expect("deliver");
    assert_eq!(first.delivered + first.retrying, 8, "{first:?}");
    assert!(first.retrying >= 5, "{first:?}");
    let second = alerts::deliver_pending(&s, &client, &delivery)
        .await
        .expect("deliver");
    assert_eq!(
        second.delivered + first.delivered,
        4,
        "{first:?} {second:?}"
    );
    let third = alerts::deliver_pending(&s, &client, &delivery)
        .await
        .expect("deliver");
    assert_eq!(third.failed, 4, "{third:?}");
    let states = states(&s).await;
    assert_eq!(states.matches("=delivered/").count(), 4, "{states}");
    assert_eq!(states.matches("=failed/3").count(), 4, "{states}");
    let bodies = flaky.bodies.lock().await;
    assert!(bodies.len() >= 5, "{bodies:?}");
    let text = bodies[0]["text"].as_str().expect("slack text");
    assert!(
        text.contains("budget_threshold") && text.contains("budget search"),
        "{text}"
    );
    assert_eq!(bodies[0]["check"], "budget_threshold");
    assert!(down.bodies.lock().await.len() >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_deliveries_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    // One process raises an alert whose target is down; it stays pending, with its attempt.
    let setup = finops_db_cmd(
        dir.path(),
        &[
            "sql",
            "INSERT INTO finops.checks (name, schedule, sql, notify) \
             VALUES ('always', '@hourly', 'SELECT ''k'' AS key, ''hello'' AS message', 'http://127.0.0.1:9/none')",
        ],
    );
    assert!(
        setup.status.success(),
        "{}",
        String::from_utf8_lossy(&setup.stderr)
    );
    let fired = finops_db_cmd(dir.path(), &["check", "--name", "always"]);
    assert_eq!(
        fired.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&fired.stderr)
    );
    // The next process finds it pending and delivers it once the target is back.
    let ok = receiver(vec![200]).await;
    let engine = Engine::open(config_for(dir.path())).await.expect("reopen");
    let s = engine.session(Identity::local_admin()).expect("session");
    assert_eq!(states(&s).await, "k=pending/1");
    exec(
        &s,
        &format!(
            "UPDATE finops.alerts SET notify = '{}', next_attempt_at = NULL",
            ok.url
        ),
    )
    .await;
    let done = alerts::deliver_pending(&s, &reqwest::Client::new(), &Delivery::default())
        .await
        .expect("deliver");
    assert_eq!(done.delivered, 1);
    assert_eq!(states(&s).await, "k=delivered/2");
    assert_eq!(ok.bodies.lock().await[0]["text"], "[warning] always: hello");
}

fn finops_db_cmd(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_finops-db"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .expect("run finops-db")
}

#[test]
fn check_command_exit_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let setup = finops_db_cmd(
        dir.path(),
        &[
            "sql",
            &format!(
                "{PRICE}; \
                 INSERT INTO finops.usage_events (event_id, ts, provider, model, team, input_tokens, output_tokens) \
                 VALUES ('a', TIMESTAMP '2026-05-02 10:00:00', 'acme', 'flat-1', 'search', 90000000, 0); \
                 INSERT INTO finops.budgets (budget_id, scope, scope_value, period, amount) \
                 VALUES ('search', 'team', 'search', 'month', 100)"
            ),
        ],
    );
    assert!(
        setup.status.success(),
        "{}",
        String::from_utf8_lossy(&setup.stderr)
    );
    // April: nothing spent yet.
    let quiet = finops_db_cmd(dir.path(), &["check", "--as-of", "2026-04-15T00:00:00Z"]);
    assert_eq!(
        quiet.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&quiet.stdout)
    );
    // Mid May: 90 % used.
    let fired = finops_db_cmd(
        dir.path(),
        &[
            "check",
            "--as-of",
            "2026-05-15T00:00:00Z",
            "--format",
            "json",
        ],
    );
    assert_eq!(
        fired.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&fired.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&fired.stdout).expect("json");
    let keys: Vec<&str> = json["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter_map(|a| a["key"].as_str())
        .collect();
    assert!(
        keys.contains(&"search@50%") && keys.contains(&"search@80%"),
        "{keys:?}"
    );
    let named = finops_db_cmd(
        dir.path(),
        &[
            "check",
            "--name",
            "unowned_spend",
            "--as-of",
            "2026-05-15T00:00:00Z",
        ],
    );
    assert_eq!(
        named.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&named.stdout)
    );
    let missing = finops_db_cmd(dir.path(), &["check", "--name", "no_such_check"]);
    assert_eq!(missing.status.code(), Some(2));
    let bad = finops_db_cmd(dir.path(), &["check", "--as-of", "someday"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// `check --server` runs the checks on a running server (which holds the data directory, so the
/// local form is refused with a pointer to it); the server records the alerts once per period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_command_runs_the_checks_on_a_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(config_for(dir.path()))
        .await
        .expect("server");
    let (admin, conn) = tokio_postgres::connect(&server.conn_str(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    // `broken` plans when it is stored, and fails once the table it reads is gone.
    admin
        .batch_execute(
            "CREATE TABLE finops.scratch (a BIGINT); \
             INSERT INTO finops.checks (name, schedule, sql, severity, notify, enabled) VALUES \
             ('late_may', '@hourly', 'SELECT ''may'' AS key, ''it is late May'' AS message \
               WHERE finops_now() >= TIMESTAMPTZ ''2026-05-20 00:00:00+00''', 'critical', 'log', true), \
             ('broken', '@hourly', 'SELECT a AS key FROM finops.scratch', 'info', 'log', false); \
             DROP TABLE finops.scratch",
        )
        .await
        .expect("checks");
    let run = |args: Vec<String>| {
        let dir = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            finops_db_cmd(&dir, &args)
        })
    };
    let on_server = |extra: &[&str]| {
        let mut args = vec![
            "check".to_string(),
            "--server".to_string(),
            server.conn_str(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    let early = run(on_server(&[
        "--name",
        "late_may",
        "--as-of",
        "2026-05-01T00:00:00Z",
    ]))
    .await
    .expect("run");
    assert_eq!(
        early.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&early.stderr)
    );
    let late = on_server(&[
        "--name",
        "late_may",
        "--as-of",
        "2026-05-25T00:00:00Z",
        "--format",
        "json",
    ]);
    let fired = run(late.clone()).await.expect("run");
    assert_eq!(
        fired.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&fired.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&fired.stdout).expect("json");
    assert_eq!(json["alerts"][0]["key"], "may");
    assert_eq!(json["alerts"][0]["severity"], "critical");
    assert_eq!(json["alerts"][0]["new"], true);
    let again = run(late).await.expect("run");
    let json: serde_json::Value = serde_json::from_slice(&again.stdout).expect("json");
    assert_eq!(
        json["alerts"][0]["new"], false,
        "not raised twice in a period"
    );
    let recorded = admin
        .query_one(
            "SELECT count(*) FROM finops.alerts WHERE check_name = 'late_may'",
            &[],
        )
        .await
        .expect("alerts");
    assert_eq!(recorded.get::<_, i64>(0), 1);

    let broken = run(on_server(&["--name", "broken"])).await.expect("run");
    assert_eq!(broken.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&broken.stderr).contains("scratch"),
        "{}",
        String::from_utf8_lossy(&broken.stderr)
    );
    let unknown = run(on_server(&["--name", "nope"])).await.expect("run");
    assert_eq!(unknown.status.code(), Some(2));

    // The data directory is the server's: the local form says where to go instead.
    let local = run(vec!["check".into()]).await.expect("run");
    assert_eq!(local.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&local.stderr).contains("--server"),
        "{}",
        String::from_utf8_lossy(&local.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_budgets_land_on_several_statuses_and_every_builtin_check_runs() {
    let as_of = chrono::NaiveDate::from_ymd_opt(2026, 5, 15).expect("date");
    let data = finops_db::demo::generate(as_of, 60);
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::open(config_for(dir.path())).await.expect("open");
    let s = engine.session(Identity::local_admin()).expect("session");
    // Owners, attribution rules and budgets (the demo's price cut is not needed here).
    let config = data.config_sql().expect("config sql");
    let config = config
        .split("INSERT INTO finops.model_prices")
        .next()
        .expect("config rows");
    assert!(config.contains("INSERT INTO finops.budgets"));
    exec(&s, config).await;
    s.append("finops.usage_events", data.usage.clone())
        .await
        .expect("usage");
    s.set_as_of("2026-05-16T00:00:00Z").expect("as_of");
    let statuses = scalar_text(
        &s,
        "SELECT string_agg(DISTINCT status, ',' ORDER BY status) FROM finops.budget_status",
    )
    .await;
    let detail = scalar_text(
        &s,
        "SELECT string_agg(budget_id || ' ' || CAST(pct_used AS VARCHAR) || ' ' || status, '; ') \
         FROM finops.budget_status",
    )
    .await;
    assert!(
        statuses.contains("projected_to_exceed") && statuses.contains("ok"),
        "{detail}"
    );
    let history = scalar_text(&s, "SELECT count(*) FROM finops.budget_history").await;
    assert!(history.parse::<i64>().expect("count") > 0);
    let run = alerts::run_named(&s, None).await.expect("run");
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    let fired: std::collections::BTreeSet<&str> =
        run.alerts.iter().map(|a| a.check_name.as_str()).collect();
    assert!(fired.contains("budget_threshold"), "{fired:?}");
    assert!(fired.contains("budget_projected_breach"), "{fired:?}");
    assert!(fired.contains("unpriced_usage"), "{fired:?}");
}

/// The unpriced-usage and unowned-spend checks look at the last day before the check's "now"
/// only: older rows and rows after it (a check run `--as-of` a past instant) do not fire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpriced_and_unowned_checks_look_at_the_last_day_only() {
    let (_dir, _engine, s) = priced_engine().await;
    exec(
        &s,
        "INSERT INTO finops.usage_events (event_id, ts, provider, model, team, input_tokens, \
         output_tokens) VALUES \
         ('old-unpriced', TIMESTAMPTZ '2026-05-10 12:00:00+00', 'acme', 'mystery-1', 'search', 10, 1), \
         ('old-unowned', TIMESTAMPTZ '2026-05-10 12:00:00+00', 'acme', 'flat-1', NULL, 1000000, 0), \
         ('late-unpriced', TIMESTAMPTZ '2026-05-20 12:00:00+00', 'acme', 'mystery-2', 'search', 10, 1), \
         ('late-unowned', TIMESTAMPTZ '2026-05-20 12:00:00+00', 'acme', 'flat-2', NULL, 1000000, 0)",
    )
    .await;
    exec(
        &s,
        "INSERT INTO finops.model_prices (provider, model, \"match\", input, output, source) \
         VALUES ('acme', 'flat-2', 'exact', 1.0, 0.0, 'test')",
    )
    .await;
    let fired = |s: Session, at: &'static str| async move {
        s.set_as_of(at).expect("as_of");
        let run = alerts::run_named(&s, None).await.expect("run");
        assert!(run.errors.is_empty(), "{:?}", run.errors);
        let mut keys: Vec<String> = run
            .alerts
            .iter()
            .filter(|a| matches!(a.check_name.as_str(), "unpriced_usage" | "unowned_spend"))
            .map(|a| format!("{} {}", a.check_name, a.key))
            .collect();
        keys.sort();
        keys
    };
    assert!(fired(s.clone(), "2026-05-15T00:00:00Z").await.is_empty());
    assert_eq!(
        fired(s.clone(), "2026-05-11T00:00:00Z").await,
        ["unowned_spend acme//", "unpriced_usage acme/mystery-1"]
    );
    let late = fired(s.clone(), "2026-05-21T00:00:00Z").await;
    assert_eq!(
        late,
        ["unowned_spend acme//", "unpriced_usage acme/mystery-2"]
    );
}
