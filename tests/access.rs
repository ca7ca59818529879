//! Roles over the wire (SPEC 3.8): a writer may only append usage, a reader may only read, and
//! a reader scoped to teams sees only those teams' rows — in the usage view, the native table,
//! materialized views and anything built on them, whichever protocol and however the SQL is
//! written.

use finops_db::config::{Config, Role, UserConfig};
use finops_db::server::auth::hash_password;
use finops_db::testing::TestServer;
use tokio_postgres::{Client, NoTls};

fn user(name: &str, role: Role, teams: &[&str]) -> UserConfig {
    UserConfig {
        name: name.into(),
        password_hash: hash_password("pw"),
        role,
        teams: teams.iter().map(|t| t.to_string()).collect(),
    }
}

async fn connect(server: &TestServer, name: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(&server.conn_str_as(name, "pw"), NoTls)
        .await
        .expect("connects");
    tokio::spawn(connection);
    client
}

fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.code().code().to_string())
        .unwrap_or_else(|| format!("not a server error: {e}"))
}

async fn count(client: &Client, sql: &str) -> i64 {
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_team_scopes_are_enforced_in_the_plan() {
    let dir = tempfile::tempdir().expect("scratch dir");
    let config = Config {
        data_dir: dir.path().to_string_lossy().into_owned(),
        users: vec![
            user("root", Role::Admin, &[]),
            user("gateway", Role::Writer, &[]),
            user("analyst", Role::Reader, &[]),
            user("lead", Role::Reader, &["search"]),
        ],
        ..Config::default()
    };
    let server = TestServer::start(config).await.expect("server");
    let admin = connect(&server, "root").await;
    let writer = connect(&server, "gateway").await;
    let reader = connect(&server, "analyst").await;
    let lead = connect(&server, "lead").await;

    // The writer appends usage; the search rows carry their team or get it from a rule.
    let inserted = writer
        .execute(
            "INSERT INTO finops.usage_events (event_id, ts, provider, model, team, project, requests) VALUES \
             ('a', TIMESTAMP '2026-01-01 00:00:00', 'openai', 'gpt-4o', 'search', NULL, 1), \
             ('b', TIMESTAMP '2026-01-01 00:00:00', 'openai', 'gpt-4o', 'legal', NULL, 1), \
             ('c', TIMESTAMP '2026-01-01 00:00:00', 'openai', 'gpt-4o', NULL, 'proj_s', 1), \
             ('d', TIMESTAMP '2026-01-01 00:00:00', 'openai', 'gpt-4o', NULL, NULL, 1)",
            &[],
        )
        .await
        .expect("writer inserts usage");
    assert_eq!(inserted, 4);
    admin
        .batch_execute(
            "INSERT INTO finops.attribution_rules (rule_id, field, value, team) \
             VALUES ('s', 'project', 'proj_s', 'search')",
        )
        .await
        .expect("admin adds a rule");

    // Writers and readers cannot change anything else (42501), on either protocol.
    for (client, sql) in [
        (
            &writer,
            "INSERT INTO finops.model_prices (provider, model, match, input, output) VALUES ('x', 'y', 'exact', 1, 1)",
        ),
        (&writer, "DELETE FROM finops.usage_events"),
        (&writer, "CREATE TABLE finops.mine (a BIGINT)"),
        (
            &reader,
            "INSERT INTO finops.usage_events (event_id, ts, provider, model) VALUES ('z', now(), 'p', 'm')",
        ),
        (&reader, "UPDATE finops.budgets SET amount = 0"),
        (&reader, "DROP TABLE finops.owners"),
        (
            &reader,
            "CREATE MATERIALIZED VIEW kpi.mine AS SELECT 1 AS x",
        ),
        (
            &reader,
            "EXPLAIN ANALYZE INSERT INTO finops.usage_events (event_id, ts, provider, model) VALUES ('z', now(), 'p', 'm')",
        ),
        // Running the checks records alerts.
        (&writer, "SELECT * FROM run_checks()"),
        (&reader, "SELECT * FROM run_checks('budget_threshold')"),
    ] {
        let simple = client.simple_query(sql).await.expect_err(sql);
        assert_eq!(sqlstate(&simple), "42501", "{sql}: {simple}");
        let extended = client.execute(sql, &[]).await.expect_err(sql);
        assert_eq!(sqlstate(&extended), "42501", "{sql}: {extended}");
    }
    let copier = connect(&server, "analyst").await;
    let copy_sink = copier
        .copy_in::<_, bytes::Bytes>(
            "COPY finops.usage_events (event_id, ts, provider, model) FROM STDIN",
        )
        .await
        .err()
        .expect("reader cannot COPY in");
    assert_eq!(sqlstate(&copy_sink), "42501");
    assert_eq!(
        count(&copier, "SELECT 1::BIGINT").await,
        1,
        "the connection stays usable"
    );
    assert_eq!(
        count(&admin, "SELECT COUNT(*) FROM finops.usage_events").await,
        4
    );

    // An unscoped reader sees everything; the scoped one sees its team's rows only, including
    // the row attributed to it by a rule, however the query is written.
    assert_eq!(count(&reader, "SELECT COUNT(*) FROM finops.usage").await, 4);
    for sql in [
        "SELECT COUNT(*) FROM finops.usage",
        "SELECT COUNT(*) FROM finops.usage_events",
        "SELECT COUNT(*) FROM finops.usage_all",
        "SELECT COUNT(*) FROM (SELECT * FROM finops.usage WHERE team <> 'nobody') t",
        "SELECT COUNT(*) FROM finops.usage_events WHERE event_id IN (SELECT event_id FROM finops.usage_events)",
        "SELECT SUM(requests) FROM kpi.daily",
    ] {
        admin
            .batch_execute("REFRESH MATERIALIZED VIEW kpi.daily")
            .await
            .expect("refresh");
        assert_eq!(count(&lead, sql).await, 2, "{sql}");
    }
    let teams: Vec<String> = lead
        .query("SELECT DISTINCT team FROM finops.usage ORDER BY team", &[])
        .await
        .expect("teams")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(teams, vec!["search".to_string()]);
    // A refresh asked by the scoped reader is computed for everyone.
    lead.batch_execute("REFRESH MATERIALIZED VIEW kpi.daily")
        .await
        .expect("readers may refresh");
    assert_eq!(
        count(&admin, "SELECT SUM(requests) FROM kpi.daily").await,
        4
    );
    assert_eq!(count(&lead, "SELECT SUM(requests) FROM kpi.daily").await, 2);
    // Budgets: the scoped reader sees its teams' budgets only.
    admin
        .batch_execute(
            "INSERT INTO finops.budgets (budget_id, scope, scope_value, period, amount, hard_cap) VALUES \
             ('b-search', 'team', 'search', 'month', 100, true), \
             ('b-legal', 'team', 'legal', 'month', 100, true), \
             ('b-org', 'org', NULL, 'month', 1000, false)",
        )
        .await
        .expect("admin adds budgets");
    assert_eq!(
        count(&admin, "SELECT COUNT(*) FROM finops.budget_status").await,
        3
    );
    for sql in [
        "SELECT COUNT(*) FROM finops.budget_status",
        "SELECT COUNT(*) FROM finops.cap_status",
    ] {
        assert_eq!(count(&lead, sql).await, 1, "{sql}");
    }
    // Raw provider tables carry every team's rows with nothing to scope them by.
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/openai");
    admin
        .batch_execute(&format!(
            "CREATE EXTERNAL TABLE providers.oa STORED AS OPENAI_USAGE LOCATION '{fixture}'"
        ))
        .await
        .expect("admin registers a provider table");
    let raw = lead
        .query("SELECT * FROM providers.oa", &[])
        .await
        .expect_err("scoped reader cannot read raw provider rows");
    assert_eq!(sqlstate(&raw), "42501");

    // Another user's connection: listed, but not what it runs; and not to be cancelled.
    let admin_pid: i32 = admin
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0);
    let row = lead
        .query_one(
            "SELECT usename, query, state, client_addr FROM pg_stat_activity WHERE pid = $1",
            &[&admin_pid],
        )
        .await
        .expect("the administrator's connection is listed");
    assert_eq!(row.get::<_, &str>(0), "root");
    assert_eq!(row.get::<_, &str>(1), "<insufficient privilege>");
    assert_eq!(row.get::<_, Option<&str>>(2), None);
    assert_eq!(row.get::<_, Option<&str>>(3), None);
    let refused = lead
        .query_one("SELECT pg_cancel_backend($1::int4)", &[&admin_pid])
        .await
        .expect_err("a reader cannot cancel another user's query");
    assert_eq!(sqlstate(&refused), "42501");
    let lead_pid: i32 = lead
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0);
    let seen: String = admin
        .query_one(
            "SELECT query FROM pg_stat_activity WHERE pid = $1",
            &[&lead_pid],
        )
        .await
        .expect("the administrator sees every query")
        .get(0);
    assert_eq!(seen, "SELECT pg_backend_pid()");
}
