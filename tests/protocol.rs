//! The wire protocol with a real client: simple and extended queries, typed parameters in text
//! and binary, exact numerics and time-zone-aware timestamps, SQLSTATE codes, cancel and timeout,
//! login, TLS requirement, connection limits and misbehaving clients.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use finops_db::config::{Config, Role, TlsConfig, UserConfig};
use finops_db::server::auth::hash_password;
use finops_db::testing::TestServer;
use rust_decimal::Decimal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

async fn start() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("scratch dir");
    let config = Config {
        data_dir: dir.path().to_string_lossy().into_owned(),
        ..Config::default()
    };
    (TestServer::start(config).await.expect("server starts"), dir)
}

async fn connect(conn_str: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(conn_str, NoTls)
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

#[tokio::test]
async fn simple_and_extended_queries_agree() {
    let (server, _dir) = start().await;
    let client = connect(&server.conn_str()).await;
    let text = first_text(&client, "SELECT 41 + 1 AS answer").await;
    assert_eq!(text.as_deref(), Some("42"));
    let row = client
        .query_one("SELECT 41 + 1 AS answer", &[])
        .await
        .expect("extended");
    assert_eq!(row.get::<_, i64>("answer"), 42);
}

#[tokio::test]
async fn unaliased_columns_are_named_as_postgres_names_them() {
    let (server, _dir) = start().await;
    let client = connect(&server.conn_str()).await;
    client
        .batch_execute(
            "CREATE TABLE t (team TEXT, cost NUMERIC(12, 2)); INSERT INTO t VALUES ('a', 1.50)",
        )
        .await
        .expect("table");
    let sql = "SELECT team, sum(cost), count(*), round(sum(cost), 1), sum(cost) / count(*), \
               max(team)::text, DATE '2024-01-01', CASE WHEN team = 'a' THEN 1 ELSE 0 END, \
               sum(cost) AS total FROM t GROUP BY team";
    let expected = [
        "team", "sum", "count", "round", "?column?", "max", "date", "case", "total",
    ];
    let messages = client.simple_query(sql).await.expect("simple");
    let simple: Vec<String> = messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::RowDescription(columns) => {
                Some(columns.iter().map(|c| c.name().to_string()).collect())
            }
            _ => None,
        })
        .expect("a row description");
    assert_eq!(simple, expected);
    let statement = client.prepare(sql).await.expect("prepare");
    let extended: Vec<&str> = statement.columns().iter().map(|c| c.name()).collect();
    assert_eq!(extended, expected);
    let row = client.query_one(sql, &[]).await.expect("extended");
    assert_eq!(row.get::<_, i64>("count"), 1);
    // A parameter's cast names it; a name two columns would share is given to neither.
    let statement = client
        .prepare("SELECT $1::text, sum(cost), sum(cost * 2) FROM t")
        .await
        .expect("prepare");
    let names: Vec<&str> = statement.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names[0], "text");
    assert_ne!(names[1], "sum");
    assert_ne!(names[1], names[2]);
}

#[tokio::test]
async fn json_values_are_described_as_json() {
    let (server, _dir) = start().await;
    let client = connect(&server.conn_str()).await;
    let sql = "SELECT '{\"b\": 1, \"a\": [1, 2]}'::jsonb AS doc, \
               json_build_object('k', 2) -> 'k' AS k, '{\"a\": \"x\"}'::json ->> 'a' AS a";
    let statement = client.prepare(sql).await.expect("prepare");
    let types: Vec<_> = statement
        .columns()
        .iter()
        .map(|c| c.type_().clone())
        .collect();
    assert_eq!(
        types,
        [
            tokio_postgres::types::Type::JSON,
            tokio_postgres::types::Type::JSON,
            tokio_postgres::types::Type::TEXT
        ]
    );
    let messages = client.simple_query(sql).await.expect("simple");
    let row = messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .expect("a row");
    assert_eq!(row.get(0), Some("{\"a\": [1, 2], \"b\": 1}"));
    assert_eq!(row.get(1), Some("2"));
    assert_eq!(row.get(2), Some("x"));
}

/// The first value of the first row of `sql`'s simple-query answer./// The first value of the first row of `sql`'s simple-query answer.
async fn first_text(client: &Client, sql: &str) -> Option<String> {
    let messages = client.simple_query(sql).await.expect(sql);
    messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    })
}

#[tokio::test]
async fn float_text_follows_extra_float_digits() {
    let (server, _dir) = start().await;
    let client = connect(&server.conn_str()).await;
    let sql = "SELECT CAST(2 AS DOUBLE PRECISION) / 3";
    assert_eq!(
        first_text(&client, sql).await.as_deref(),
        Some("0.6666666666666666")
    );
    client
        .simple_query("SET extra_float_digits = 0")
        .await
        .expect("set");
    assert_eq!(
        first_text(&client, sql).await.as_deref(),
        Some("0.666666666666667")
    );
    client
        .simple_query("SET extra_float_digits = -10")
        .await
        .expect("set");
    assert_eq!(first_text(&client, sql).await.as_deref(), Some("0.66667"));
}

#[tokio::test]
async fn typed_parameters_round_trip_in_binary() {
    let (server, _dir) = start().await;
    let client = connect(&server.conn_str()).await;
    let ts: DateTime<Utc> = "2025-09-01T12:30:45.123456Z".parse().expect("ts");
    let day = NaiveDate::from_ymd_opt(2024, 2, 29).expect("leap day");
    let amount = Decimal::from_str_exact("12345678901234.123456").expect("decimal");
    let row = client
        .query_one(
            "SELECT $1::SMALLINT, $2::INT, $3::BIGINT, $4::TEXT, $5::DOUBLE PRECISION, $6::BOOLEAN, \
             $7::TIMESTAMPTZ, $8::DATE, $9::NUMERIC, $10::TEXT",
            &[
                &7i16,
                &70_000i32,
                &9_000_000_000i64,
                &"it's, \"quoted\"",
                &0.25f64,
                &true,
                &ts,
                &day,
                &amount,
                &None::<String>,
            ],
        )
        .await
        .expect("typed query");
    assert_eq!(row.get::<_, i16>(0), 7);
    assert_eq!(row.get::<_, i32>(1), 70_000);
    assert_eq!(row.get::<_, i64>(2), 9_000_000_000);
    assert_eq!(row.get::<_, String>(3), "it's, \"quoted\"");
    assert_eq!(row.get::<_, f64>(4), 0.25);
    assert!(row.get::<_, bool>(5));
    assert_eq!(
        row.get::<_, DateTime<Utc>>(6),
        ts,
        "timestamptz comes back zone-aware"
    );
    assert_eq!(row.get::<_, NaiveDate>(7), day);
    assert_eq!(row.get::<_, Decimal>(8), amount, "numeric stays exact");
    assert_eq!(row.get::<_, Option<String>>(9), None);
}

#[tokio::test]
async fn parameters_keep_the_type_the_client_declares() {
    let (server, _dir) = start().await;
    let client = connect(&server.conn_str()).await;
    client
        .batch_execute(
            "INSERT INTO finops.usage_events (event_id, ts, provider, model, input_tokens, \
             output_tokens) VALUES ('p-1', '2025-09-01T00:00:00Z', 'openai', 'gpt-4o', 10, 5), \
             ('p-2', '2025-09-01T00:00:00Z', 'anthropic', 'claude-sonnet-4', 20, 5)",
        )
        .await
        .expect("insert");
    // A text parameter against a text column (a `Utf8View` column, a `Utf8` parameter).
    let row = client
        .query_one(
            "SELECT count(*), sum(input_tokens) FROM finops.usage_events WHERE provider = $1",
            &[&"anthropic"],
        )
        .await
        .expect("text parameter against a text column");
    assert_eq!(row.get::<_, i64>(0), 1);
    assert_eq!(row.get::<_, i64>(1), 20);
    let row = client
        .query_one(
            "SELECT count(*) FROM finops.usage_events WHERE model LIKE $1 OR provider IN ($2, $3)",
            &[&"gpt%", &"x", &"anthropic"],
        )
        .await
        .expect("LIKE and IN with text parameters");
    assert_eq!(row.get::<_, i64>(0), 2);

    // A parameter declared numeric stays numeric where the context alone would make it an
    // integer (`$1 * 2`), as in Postgres; likewise double precision.
    let half = Decimal::from_str_exact("0.5").expect("decimal");
    let statement = client
        .prepare_typed("SELECT $1 * 2", &[tokio_postgres::types::Type::NUMERIC])
        .await
        .expect("prepare numeric");
    let row = client
        .query_one(&statement, &[&half])
        .await
        .expect("numeric");
    assert_eq!(
        row.get::<_, Decimal>(0),
        Decimal::from_str_exact("1.0").expect("1.0")
    );
    let statement = client
        .prepare_typed(
            "SELECT sum(input_tokens * $1) FROM finops.usage_events",
            &[tokio_postgres::types::Type::FLOAT8],
        )
        .await
        .expect("prepare float8");
    let row = client
        .query_one(&statement, &[&0.5f64])
        .await
        .expect("float8");
    assert_eq!(row.get::<_, f64>(0), 15.0);
}

#[tokio::test]
async fn a_prepared_query_sees_new_rows_and_time_on_every_execute() {
    let (server, _dir) = start().await;
    let client = connect(&server.conn_str()).await;
    client
        .batch_execute("CREATE TABLE t (id BIGINT, name TEXT)")
        .await
        .expect("create");
    let count = client
        .prepare("SELECT count(*) FROM t WHERE id > $1")
        .await
        .expect("prepare");
    let rows = async |after: i64| -> i64 {
        client
            .query_one(&count, &[&after])
            .await
            .expect("count")
            .get(0)
    };
    assert_eq!(rows(0).await, 0);
    client
        .execute("INSERT INTO t VALUES (1, 'a'), (2, 'b')", &[])
        .await
        .expect("insert");
    assert_eq!((rows(0).await, rows(1).await), (2, 1));

    let now = client.prepare("SELECT now()").await.expect("prepare");
    let first: DateTime<Utc> = client.query_one(&now, &[]).await.expect("now").get(0);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second: DateTime<Utc> = client.query_one(&now, &[]).await.expect("now").get(0);
    assert!(second > first, "{first} then {second}");

    // An execution that fails at run time reports its SQLSTATE; the statement runs again.
    let divide = client
        .prepare("SELECT 10 / (id - 1) FROM t WHERE id = $1")
        .await
        .expect("prepare");
    let e = client
        .query(&divide, &[&1i64])
        .await
        .expect_err("division by zero");
    assert_eq!(sqlstate(&e), "22012");
    let row = client.query_one(&divide, &[&2i64]).await.expect("divide");
    assert_eq!(row.get::<_, i64>(0), 10);
}

#[tokio::test]
async fn numeric_literals_are_exact_and_arrays_decode() {
    let (server, _dir) = start().await;
    let client = connect(&server.conn_str()).await;
    let row = client
        .query_one("SELECT 12345678901234.123456 AS n, now() AS t", &[])
        .await
        .expect("query");
    assert_eq!(
        row.get::<_, Decimal>("n").to_string(),
        "12345678901234.123456"
    );
    let t: DateTime<Utc> = row.get("t");
    assert!((Utc::now() - t).num_seconds().abs() < 60);
    let row = client
        .query_one("SELECT ARRAY['a,b', 'c\"d', 'e''f'] AS a", &[])
        .await
        .expect("array");
    assert_eq!(row.get::<_, Vec<String>>("a"), vec!["a,b", "c\"d", "e'f"]);
}

#[tokio::test]
async fn errors_carry_sqlstate_and_the_connection_survives() {
    let (server, _dir) = start().await;
    let client = connect(&server.conn_str()).await;
    let cases = [
        ("SELECT * FROM no_such_table", "42P01"),
        ("SELECT nope FROM (SELECT 1 AS a)", "42703"),
        ("SELECT no_such_fn(1)", "42883"),
        ("SELEC 1", "42601"),
        ("SELECT CAST('abc' AS INT)", "22P02"),
        ("SELECT 1/0", "22012"),
        ("SET finops.not_an_option = 1", "42704"),
    ];
    for (sql, code) in cases {
        let simple = client.simple_query(sql).await.expect_err(sql);
        assert_eq!(sqlstate(&simple), code, "simple: {sql}");
        let extended = client.query(sql, &[]).await.expect_err(sql);
        assert_eq!(sqlstate(&extended), code, "extended: {sql}");
    }
    let row = client
        .query_one("SELECT 1::BIGINT", &[])
        .await
        .expect("still usable");
    assert_eq!(row.get::<_, i64>(0), 1);
}

#[tokio::test]
async fn failed_transaction_block_reports_25p02_until_rollback() {
    let (server, _dir) = start().await;
    let client = connect(&server.conn_str()).await;
    client.simple_query("BEGIN").await.expect("begin");
    client
        .simple_query("SELECT * FROM nope")
        .await
        .expect_err("fails");
    let e = client
        .simple_query("SELECT 1")
        .await
        .expect_err("aborted block");
    assert_eq!(sqlstate(&e), "25P02");
    client.simple_query("ROLLBACK").await.expect("rollback");
    client.simple_query("SELECT 1").await.expect("usable again");
    // Savepoints, as psycopg 3 sends them, are accepted.
    client
        .batch_execute("BEGIN; SAVEPOINT s1; RELEASE SAVEPOINT s1; COMMIT")
        .await
        .expect("savepoints");
    // Only inside a block, and only ones that exist.
    let e = client
        .simple_query("SAVEPOINT s1")
        .await
        .expect_err("outside a block");
    assert_eq!(sqlstate(&e), "25P01");
    client.simple_query("BEGIN").await.expect("begin");
    let e = client
        .simple_query("RELEASE SAVEPOINT nope")
        .await
        .expect_err("unknown savepoint");
    assert_eq!(sqlstate(&e), "3B001");
    let e = client
        .simple_query("ROLLBACK TO SAVEPOINT nope")
        .await
        .expect_err("unknown savepoint");
    assert_eq!(sqlstate(&e), "3B001");
    let e = client
        .simple_query("SELECT 1")
        .await
        .expect_err("still a failed block");
    assert_eq!(sqlstate(&e), "25P02");
    client.simple_query("ROLLBACK").await.expect("rollback");
    // ROLLBACK TO SAVEPOINT takes a failed block back to a usable one, in the simple protocol
    // and in the extended one.
    for extended in [false, true] {
        client.simple_query("BEGIN").await.expect("begin");
        client
            .simple_query("SAVEPOINT s1")
            .await
            .expect("savepoint");
        client
            .simple_query("SELECT * FROM nope")
            .await
            .expect_err("fails");
        let e = client
            .simple_query("SAVEPOINT s2")
            .await
            .expect_err("aborted block");
        assert_eq!(sqlstate(&e), "25P02");
        if extended {
            client
                .execute("ROLLBACK TO SAVEPOINT s1", &[])
                .await
                .expect("rollback to, extended");
        } else {
            client
                .simple_query("ROLLBACK TO SAVEPOINT s1")
                .await
                .expect("rollback to");
        }
        let row = client
            .query_one("SELECT 2::BIGINT", &[])
            .await
            .expect("usable");
        assert_eq!(row.get::<_, i64>(0), 2);
        client
            .simple_query("RELEASE SAVEPOINT s1")
            .await
            .expect("s1 is still defined");
        client.simple_query("COMMIT").await.expect("commit");
    }
}

#[tokio::test]
async fn ddl_and_dml_get_postgres_command_tags() {
    let (server, _dir) = start().await;
    let client = connect(&server.conn_str()).await;
    let messages = client
        .simple_query("CREATE TABLE t (a BIGINT, b TEXT); INSERT INTO t VALUES (1, 'x'), (2, 'y')")
        .await
        .expect("ddl and dml");
    let counts: Vec<u64> = messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .collect();
    assert_eq!(counts, vec![0, 2]);
    let inserted = client
        .execute("INSERT INTO t VALUES ($1, $2)", &[&3i64, &"z"])
        .await
        .expect("parameterised insert");
    assert_eq!(inserted, 1);
    let row = client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .expect("count");
    assert_eq!(row.get::<_, i64>(0), 3);
}

#[tokio::test]
async fn sql_prepare_and_deallocate_are_commands() {
    let (server, _dir) = start().await;
    let client = connect(&server.conn_str()).await;
    // A command answers with its tag alone; a query, even of no rows, describes its columns.
    let is_command = |messages: &[SimpleQueryMessage]| {
        !messages
            .iter()
            .any(|m| matches!(m, SimpleQueryMessage::RowDescription(_)))
    };
    let prepared = client
        .simple_query("PREPARE plus_one AS SELECT $1::BIGINT + 1 AS n")
        .await
        .expect("prepare");
    assert!(is_command(&prepared), "{prepared:?}");
    let executed = client
        .simple_query("EXECUTE plus_one(41)")
        .await
        .expect("execute");
    let n = executed.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
        _ => None,
    });
    assert_eq!(n.as_deref(), Some("42"));
    let deallocated = client
        .simple_query("DEALLOCATE plus_one")
        .await
        .expect("deallocate");
    assert!(is_command(&deallocated), "{deallocated:?}");
    let e = client
        .simple_query("EXECUTE plus_one(1)")
        .await
        .expect_err("deallocated");
    assert_eq!(sqlstate(&e), "26000", "{e:?}");
    // The connection goes on.
    let row = client
        .query_one("SELECT 1::BIGINT", &[])
        .await
        .expect("usable");
    assert_eq!(row.get::<_, i64>(0), 1);
}

#[tokio::test]
async fn deallocate_all_and_discard_all_drop_sql_prepared_statements() {
    let (server, _dir) = start().await;
    let client = connect(&server.conn_str()).await;
    let tag = |messages: &[SimpleQueryMessage]| {
        messages.iter().find_map(|m| match m {
            SimpleQueryMessage::CommandComplete(rows) => Some(*rows),
            _ => None,
        })
    };
    for reset in ["DEALLOCATE ALL", "DISCARD ALL"] {
        client
            .batch_execute("PREPARE one AS SELECT 1; PREPARE two AS SELECT 2")
            .await
            .expect("prepare");
        let done = client.simple_query(reset).await.expect(reset);
        assert_eq!(tag(&done), Some(0), "{reset}: {done:?}");
        for name in ["one", "two"] {
            let e = client
                .simple_query(&format!("EXECUTE {name}"))
                .await
                .expect_err("deallocated");
            assert_eq!(sqlstate(&e), "26000", "{reset} {name}: {e:?}");
        }
        // The names are free again.
        client
            .batch_execute("PREPARE one AS SELECT 3; DEALLOCATE one")
            .await
            .expect("prepared again");
    }
    // With nothing prepared, DEALLOCATE ALL still succeeds.
    client
        .batch_execute("DEALLOCATE ALL")
        .await
        .expect("nothing to drop");
}

#[tokio::test]
async fn set_config_sets_a_parameter_as_set_does() {
    let (server, _dir) = start().await;
    let client = connect(&server.conn_str()).await;
    // Answered with the value now set, over the simple and the extended protocol alike.
    let rows = client
        .simple_query("SELECT set_config('search_path', 'finops, public', false)")
        .await
        .expect("simple");
    let value = rows.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
        _ => None,
    });
    assert_eq!(value.as_deref(), Some("finops, public"));
    let row = client
        .query_one("SELECT set_config('myapp.tenant', 'acme', false) AS t", &[])
        .await
        .expect("extended");
    assert_eq!(row.get::<_, String>("t"), "acme");
    let row = client
        .query_one("SELECT set_config('TimeZone', 'europe/paris', false)", &[])
        .await
        .expect("time zone in any case");
    assert_eq!(row.get::<_, String>(0), "Europe/Paris");
    for (name, expected) in [
        ("search_path", "finops, public"),
        ("myapp.tenant", "acme"),
        ("TimeZone", "Europe/Paris"),
    ] {
        let row = client
            .query_one(&format!("SELECT current_setting('{name}')"), &[])
            .await
            .expect("read back");
        assert_eq!(row.get::<_, String>(0), expected, "{name}");
    }
    // The session's own options too.
    client
        .simple_query("SELECT set_config('finops.as_of', '2026-11-01', false)")
        .await
        .expect("finops option");
    let shown = client
        .simple_query("SHOW finops.as_of")
        .await
        .expect("show");
    let value = shown.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
        _ => None,
    });
    assert_eq!(value.as_deref(), Some("2026-11-01"));
    // Transaction-scoped settings do not exist; a bad value is refused as SET refuses it.
    let e = client
        .simple_query("SELECT set_config('myapp.x', 'y', true)")
        .await
        .expect_err("local");
    assert_eq!(sqlstate(&e), "0A000", "{e:?}");
    let e = client
        .simple_query("SELECT set_config('statement_timeout', 'abc', false)")
        .await
        .expect_err("bad value");
    assert_eq!(sqlstate(&e), "22023", "{e:?}");
}

#[tokio::test]
async fn session_settings_do_not_leak_between_connections() {
    let (server, _dir) = start().await;
    let a = connect(&server.conn_str()).await;
    let b = connect(&server.conn_str()).await;
    let get = "SELECT current_setting('finops.currency')";
    let currency =
        async |client: &Client| -> String { client.query_one(get, &[]).await.expect("get").get(0) };
    // A query before the change: the session keeps the state it planned on for the next.
    assert_eq!(currency(&a).await, "USD");
    a.simple_query("SET finops.currency = 'EUR'")
        .await
        .expect("set");
    assert_eq!(currency(&a).await, "EUR");
    assert_eq!(currency(&b).await, "USD");
    // Over the extended protocol too, and seen by a simple query.
    a.execute("SET finops.currency = 'GBP'", &[])
        .await
        .expect("set");
    let simple = a.simple_query(get).await.expect("simple");
    let value = simple.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
        _ => None,
    });
    assert_eq!(value.as_deref(), Some("GBP"));
    assert_eq!(currency(&b).await, "USD");
}

/// The one value `SHOW` gives (simple protocol), with its column's name.
async fn show(client: &Client, sql: &str) -> (String, String) {
    let messages = client.simple_query(sql).await.expect(sql);
    let row = messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{sql}: no row"));
    (
        row.columns()[0].name().to_string(),
        row.get(0).unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn postgres_parameters_set_show_and_reset() {
    let (server, _dir) = start().await;
    let client = connect(&server.conn_str()).await;
    let other = connect(&server.conn_str()).await;
    assert_eq!(
        show(&client, "SHOW timezone").await,
        ("TimeZone".into(), "UTC".into())
    );
    assert_eq!(show(&client, "SHOW TIME ZONE").await.1, "UTC");
    assert_eq!(show(&client, "SHOW server_version").await.1, "16.6");
    assert_eq!(
        show(&client, "SHOW transaction isolation level").await.1,
        "read committed"
    );

    for sql in [
        "SET TIME ZONE 'Europe/Berlin'",
        "SET datestyle TO ISO, DMY",
        "SET statement_timeout = '90s'",
        "SET application_name = 'nightly-report'",
        "SET myapp.tenant = 'acme'",
    ] {
        client.simple_query(sql).await.expect(sql);
    }
    assert_eq!(show(&client, "SHOW TimeZone").await.1, "Europe/Berlin");
    assert_eq!(show(&client, "SHOW DateStyle").await.1, "ISO, DMY");
    assert_eq!(show(&client, "SHOW statement_timeout").await.1, "90s");
    assert_eq!(
        show(&client, "SHOW application_name").await.1,
        "nightly-report"
    );
    assert_eq!(show(&client, "SHOW myapp.tenant").await.1, "acme");
    // Queries read the same values.
    let row = client
        .query_one(
            "SELECT current_setting('TimeZone'), current_setting('myapp.tenant')",
            &[],
        )
        .await
        .expect("current_setting");
    assert_eq!(row.get::<_, String>(0), "Europe/Berlin");
    assert_eq!(row.get::<_, String>(1), "acme");
    // Extended protocol: the column is described at Parse.
    let row = client
        .query_one("SHOW statement_timeout", &[])
        .await
        .expect("extended SHOW");
    assert_eq!(row.columns()[0].name(), "statement_timeout");
    assert_eq!(row.get::<_, String>(0), "90s");
    // Another connection keeps its own.
    assert_eq!(show(&other, "SHOW TimeZone").await.1, "UTC");
    assert_eq!(show(&other, "SHOW statement_timeout").await.1, "0");

    client
        .simple_query("RESET statement_timeout")
        .await
        .expect("reset one");
    assert_eq!(show(&client, "SHOW statement_timeout").await.1, "0");
    assert_eq!(show(&client, "SHOW TimeZone").await.1, "Europe/Berlin");
    // Session options are reset by name and by RESET ALL, to the server's values.
    for sql in [
        "SET finops.currency = 'EUR'",
        "SET finops.redundancy_window_hours = 6",
    ] {
        client.simple_query(sql).await.expect(sql);
    }
    client
        .simple_query("RESET finops.currency")
        .await
        .expect("reset an option");
    assert_eq!(show(&client, "SHOW finops.currency").await.1, "USD");
    assert_eq!(
        show(&client, "SHOW finops.redundancy_window_hours").await.1,
        "6"
    );
    client.simple_query("RESET ALL").await.expect("reset all");
    assert_eq!(
        show(&client, "SHOW finops.redundancy_window_hours").await.1,
        "24"
    );
    assert_eq!(show(&client, "SHOW TimeZone").await.1, "UTC");
    let row = client
        .query_one("SELECT current_setting('TimeZone')", &[])
        .await
        .expect("current_setting after RESET ALL");
    assert_eq!(row.get::<_, String>(0), "UTC");
    assert_eq!(show(&client, "SHOW DateStyle").await.1, "ISO, MDY");
    assert_eq!(show(&client, "SHOW application_name").await.1, "");
    let gone = client
        .simple_query("SHOW myapp.tenant")
        .await
        .expect_err("custom parameter reset");
    assert_eq!(sqlstate(&gone), "42704");

    client
        .simple_query("SET datestyle = 'SQL'")
        .await
        .expect("datestyle");
    client.simple_query("DISCARD ALL").await.expect("discard");
    assert_eq!(show(&client, "SHOW DateStyle").await.1, "ISO, MDY");

    let refused = [
        ("SET no_such_parameter = 1", "42704"),
        ("SHOW no_such_parameter", "42704"),
        ("RESET no_such_parameter", "42704"),
        ("RESET finops.no_such_option", "42704"),
        ("SHOW finops.no_such_option", "42704"),
        ("SET TIME ZONE 'Mars/Olympus_Mons'", "22023"),
        ("SET statement_timeout = 'soon'", "22023"),
        ("SET extra_float_digits = 9", "22023"),
        ("SET client_encoding = 'LATIN1'", "0A000"),
        ("SET server_version = '17'", "55P02"),
        ("SET LOCAL statement_timeout = '1s'", "0A000"),
    ];
    for (sql, code) in refused {
        let simple = client.simple_query(sql).await.expect_err(sql);
        assert_eq!(sqlstate(&simple), code, "simple: {sql}");
        let extended = client.query(sql, &[]).await.expect_err(sql);
        assert_eq!(sqlstate(&extended), code, "extended: {sql}");
    }
    // Nothing refused changed anything.
    assert_eq!(show(&client, "SHOW TimeZone").await.1, "UTC");
    assert_eq!(show(&client, "SHOW statement_timeout").await.1, "0");
    let all = client.simple_query("SHOW ALL").await.expect("show all");
    let names: Vec<String> = all
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
            _ => None,
        })
        .collect();
    for name in [
        "TimeZone",
        "DateStyle",
        "statement_timeout",
        "finops.currency",
    ] {
        assert!(names.iter().any(|n| n == name), "SHOW ALL lists {name}");
    }
}

/// What a connection pool sends when a connection is given back (asyncpg's reset query, one
/// simple-query message) succeeds and leaves the session at its defaults; `LISTEN` and `NOTIFY`,
/// which would never deliver anything here, are refused.
#[tokio::test]
async fn pool_reset_query_succeeds_and_notifications_are_refused() {
    let (server, _dir) = start().await;
    let client = connect(&server.conn_str()).await;
    client
        .simple_query("SET finops.currency = 'EUR'; SET application_name = 'worker'")
        .await
        .expect("set");
    client
        .batch_execute("SELECT pg_advisory_unlock_all();\nCLOSE ALL;\nUNLISTEN *;\nRESET ALL;")
        .await
        .expect("pool reset query");
    assert_eq!(show(&client, "SHOW finops.currency").await.1, "USD");
    assert_eq!(show(&client, "SHOW application_name").await.1, "");
    client
        .execute("UNLISTEN jobs", &[])
        .await
        .expect("unlisten");
    for sql in ["LISTEN jobs", "NOTIFY jobs, 'x'"] {
        let e = client.simple_query(sql).await.expect_err(sql);
        assert_eq!(sqlstate(&e), "0A000", "{sql}: {e}");
    }
    // The connection is still usable.
    let row = client
        .query_one("SELECT 1::bigint", &[])
        .await
        .expect("select");
    assert_eq!(row.get::<_, i64>(0), 1);
}

#[tokio::test]
async fn identity_functions_report_the_logged_in_user() {
    let dir = tempfile::tempdir().expect("scratch dir");
    let config = Config {
        data_dir: dir.path().to_string_lossy().into_owned(),
        users: vec![UserConfig {
            name: "alice".into(),
            password_hash: hash_password("wonderland"),
            role: Role::Admin,
            teams: vec![],
        }],
        ..Config::default()
    };
    let server = TestServer::start(config).await.expect("server");
    let client = connect(&server.conn_str_as("alice", "wonderland")).await;
    let row = client
        .query_one(
            "SELECT current_user, current_database(), current_schema(), version(), pg_backend_pid()",
            &[],
        )
        .await
        .expect("identity");
    assert_eq!(row.get::<_, String>(0), "alice");
    assert_eq!(row.get::<_, String>(1), "finops");
    assert_eq!(row.get::<_, String>(2), "public");
    assert!(row.get::<_, String>(3).starts_with("PostgreSQL 16."));

    let wrong = tokio_postgres::connect(&server.conn_str_as("alice", "nope"), NoTls)
        .await
        .err()
        .expect("wrong password refused");
    assert_eq!(sqlstate(&wrong), "28P01");
    let unknown = tokio_postgres::connect(&server.conn_str_as("mallory", "x"), NoTls)
        .await
        .err()
        .expect("unknown user refused");
    assert_eq!(sqlstate(&unknown), "28P01");
    let default_user = tokio_postgres::connect(&server.conn_str(), NoTls)
        .await
        .err()
        .expect("no default login once users are configured");
    assert_eq!(sqlstate(&default_user), "28P01");
}

/// A query that runs for minutes unless stopped.
const ENDLESS: &str = "SELECT count(*) FROM range(0, 100000000000) AS r(v) WHERE v % 7 = 3";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_request_stops_a_running_query() {
    let (server, _dir) = start().await;
    let client = connect(&server.conn_str()).await;
    let token = client.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        token.cancel_query(NoTls).await
    });
    let started = std::time::Instant::now();
    let e = client.simple_query(ENDLESS).await.expect_err("cancelled");
    assert_eq!(sqlstate(&e), "57014");
    assert!(started.elapsed() < Duration::from_secs(20));
    canceller.await.expect("joins").expect("cancel sent");
    client
        .simple_query("SELECT 1")
        .await
        .expect("usable after cancel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_timeout_stops_a_running_query() {
    let (server, _dir) = start().await;
    let client = connect(&server.conn_str()).await;
    client
        .simple_query("SET statement_timeout = '200ms'")
        .await
        .expect("set timeout");
    let e = client.query(ENDLESS, &[]).await.expect_err("timed out");
    assert_eq!(sqlstate(&e), "57014");
    client
        .simple_query("SET statement_timeout = 0")
        .await
        .expect("reset");
    client
        .simple_query("SELECT 1")
        .await
        .expect("usable after timeout");
}

/// A cross join that counts 10^12 rows: it never waits for its input, so nothing but the
/// server's own budget makes it yield.
const HEAVY: &str = "SELECT count(*) FROM range(0, 1000000) AS a(x), range(0, 1000000) AS b(y)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_queries_leave_the_server_responsive() {
    let (server, _dir) = start().await;
    let mut running = Vec::new();
    // More heavy queries than the machine has cores.
    let heavy = std::thread::available_parallelism().map_or(2, |n| n.get()) + 1;
    for _ in 0..heavy {
        let client = connect(&server.conn_str()).await;
        let token = client.cancel_token();
        let query = tokio::spawn(async move { client.simple_query(HEAVY).await.map(|_| ()) });
        running.push((token, query));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answered = tokio::time::timeout(Duration::from_secs(10), async {
        let client = connect(&server.conn_str()).await;
        client.simple_query("SELECT 1").await.expect("select 1");
    })
    .await;
    assert!(answered.is_ok(), "a new connection was not served");
    for (token, query) in running {
        token.cancel_query(NoTls).await.expect("cancel sent");
        let result = tokio::time::timeout(Duration::from_secs(10), query)
            .await
            .expect("the cancel took effect")
            .expect("joins");
        assert_eq!(sqlstate(&result.expect_err("cancelled")), "57014");
    }
}

#[tokio::test]
async fn connections_past_the_limit_get_a_clear_error() {
    let dir = tempfile::tempdir().expect("scratch dir");
    let mut config = Config {
        data_dir: dir.path().to_string_lossy().into_owned(),
        ..Config::default()
    };
    config.limits.max_connections = 1;
    let server = TestServer::start(config).await.expect("server");
    let first = connect(&server.conn_str()).await;
    let second = tokio_postgres::connect(&server.conn_str(), NoTls)
        .await
        .err()
        .expect("refused");
    assert_eq!(sqlstate(&second), "53300");
    first
        .simple_query("SELECT 1")
        .await
        .expect("first still works");
}

#[tokio::test]
async fn garbage_and_abandoned_clients_do_not_take_the_server_down() {
    let (server, _dir) = start().await;
    for garbage in [
        &b"\x00\x00\x00\x08\xff\xff\xff\xff"[..],
        b"GET / HTTP/1.1\r\n\r\n",
        &[0u8; 3],
    ] {
        let mut raw = tokio::net::TcpStream::connect(server.addr)
            .await
            .expect("raw");
        raw.write_all(garbage).await.expect("write");
        let mut buf = [0u8; 64];
        let _ = tokio::time::timeout(Duration::from_secs(2), raw.read(&mut buf)).await;
    }
    // A client that disconnects in the middle of a query.
    let quitter = connect(&server.conn_str()).await;
    let pending = tokio::spawn(async move { quitter.simple_query(ENDLESS).await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(200)).await;
    pending.abort();
    let client = connect(&server.conn_str()).await;
    client
        .simple_query("SELECT 1")
        .await
        .expect("server still serves");
}

#[tokio::test]
async fn tls_configured_refuses_plain_text() {
    let dir = tempfile::tempdir().expect("scratch dir");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let cert_path = dir.path().join("server.crt");
    let key_path = dir.path().join("server.key");
    std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("write key");
    let config = Config {
        data_dir: dir.path().join("data").to_string_lossy().into_owned(),
        tls: Some(TlsConfig {
            cert: cert_path.clone(),
            key: key_path,
        }),
        ..Config::default()
    };
    let server = TestServer::start(config.clone()).await.expect("server");
    let e = tokio_postgres::connect(&server.conn_str(), NoTls)
        .await
        .err()
        .expect("plain text refused");
    assert_eq!(sqlstate(&e), "28000");

    // A key that does not load refuses to start rather than serve without TLS.
    let broken = dir.path().join("broken.key");
    std::fs::write(&broken, "not a key").expect("write");
    let mut bad = config;
    bad.data_dir = dir.path().join("data2").to_string_lossy().into_owned();
    bad.tls = Some(TlsConfig {
        cert: cert_path,
        key: broken,
    });
    let err = TestServer::start(bad)
        .await
        .err()
        .expect("refuses to start");
    assert!(err.to_string().contains("tls.key"), "{err}");
}

#[tokio::test]
async fn copy_in_csv_and_text_then_copy_out() {
    use futures::{SinkExt, TryStreamExt};
    let (server, _dir) = start().await;
    let client = connect(&server.conn_str()).await;
    client
        .batch_execute("CREATE TABLE c (id BIGINT NOT NULL, name TEXT, amount NUMERIC(10, 2))")
        .await
        .expect("create");
    let sink = client
        .copy_in("COPY c FROM STDIN WITH (FORMAT csv, HEADER true)")
        .await
        .expect("copy in");
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(
        b"id,name,amount\n1,\"a, \"\"b\"\"\",1.5\n2,",
    ))
    .await
    .expect("chunk");
    sink.send(bytes::Bytes::from_static(b",2.25\n"))
        .await
        .expect("chunk");
    assert_eq!(sink.finish().await.expect("copy done"), 2);

    let sink = client
        .copy_in("COPY c (id, name) FROM STDIN")
        .await
        .expect("text copy");
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"3\ttab\\there\n4\t\\N\n"))
        .await
        .expect("chunk");
    assert_eq!(sink.finish().await.expect("copy done"), 2);

    let out = client
        .copy_out("COPY (SELECT id, name, amount FROM c ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER true)")
        .await
        .expect("copy out");
    let chunks: Vec<bytes::Bytes> = out.try_collect().await.expect("read");
    let text = String::from_utf8(chunks.concat()).expect("utf8");
    assert_eq!(
        text,
        "id,name,amount\n1,\"a, \"\"b\"\"\",1.50\n2,,2.25\n3,tab\there,\n4,,\n"
    );
    // One row per CopyData message, as Postgres sends them (the header goes with the first).
    assert_eq!(chunks.len(), 4, "{chunks:?}");
    assert!(
        chunks[1..]
            .iter()
            .all(|c| c.iter().filter(|b| **b == b'\n').count() == 1)
    );
}

#[tokio::test]
async fn copy_out_that_fails_on_the_way_ends_with_its_error() {
    use futures::StreamExt;
    let (server, _dir) = start().await;
    let client = connect(&server.conn_str()).await;
    // Rows go out before the 50,000th fails its cast.
    let out = client
        .copy_out(
            "COPY (SELECT CAST(CASE WHEN v = 50000 THEN 'x' ELSE '1' END AS INT) \
             FROM range(0, 100000) AS r(v)) TO STDOUT",
        )
        .await
        .expect("copy starts");
    futures::pin_mut!(out);
    let mut rows = 0;
    let error = loop {
        match out.next().await {
            Some(Ok(_)) => rows += 1,
            Some(Err(e)) => break e,
            None => panic!("the COPY ended without its error after {rows} rows"),
        }
    };
    assert!(rows > 0, "rows were sent before the error");
    // An ErrorResponse with its SQLSTATE, not a CopyFail.
    assert!(error.as_db_error().is_some(), "{error}");
    assert_eq!(sqlstate(&error), "22P02", "{error}");
    let one: i64 = client
        .query_one("SELECT 1::bigint", &[])
        .await
        .expect("usable after the failed COPY")
        .get(0);
    assert_eq!(one, 1);
}

#[tokio::test]
async fn copy_with_a_bad_row_rejects_the_whole_statement() {
    use futures::SinkExt;
    let (server, _dir) = start().await;
    let client = connect(&server.conn_str()).await;
    client
        .batch_execute("CREATE TABLE c (id BIGINT NOT NULL, name TEXT)")
        .await
        .expect("create");
    let sink = client
        .copy_in("COPY c FROM STDIN WITH (FORMAT csv)")
        .await
        .expect("copy");
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"1,a\n2,b\nthree,c\n4,d\n"))
        .await
        .expect("chunk");
    let e = sink.finish().await.expect_err("bad row");
    assert_eq!(sqlstate(&e), "22P02");
    let db = e.as_db_error().expect("server error");
    assert!(db.message().contains("line 3"), "{}", db.message());
    let row = client
        .query_one("SELECT count(*) FROM c", &[])
        .await
        .expect("count");
    assert_eq!(
        row.get::<_, i64>(0),
        0,
        "nothing of the failed COPY is stored"
    );

    let sink = client
        .copy_in("COPY c FROM STDIN WITH (FORMAT csv)")
        .await
        .expect("copy");
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"1,a\n,b\n"))
        .await
        .expect("chunk");
    let e = sink.finish().await.expect_err("null id");
    assert_eq!(sqlstate(&e), "23502");
    let e = client
        .copy_in::<_, bytes::Bytes>("COPY no_such_table FROM STDIN")
        .await
        .err()
        .expect("unknown table");
    assert_eq!(sqlstate(&e), "42P01");
}

/// A server whose COPY into a durable table stages every parser batch (8,192 rows) as its own
/// segment file, so a few tens of thousands of rows span several staged chunks.
async fn start_small_chunks() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("scratch dir");
    let config = Config {
        data_dir: dir.path().to_string_lossy().into_owned(),
        ..Config::default()
    };
    let storage = finops_db::storage::StorageOptions {
        stage_rows: 100,
        ..Default::default()
    };
    (
        TestServer::start_with(config, storage)
            .await
            .expect("server starts"),
        dir,
    )
}

fn usage_csv(ids: impl Iterator<Item = String>) -> Vec<u8> {
    let mut out = Vec::new();
    for id in ids {
        out.extend_from_slice(format!("{id},2025-01-01 00:00:00+00,openai,gpt-4o\n").as_bytes());
    }
    out
}

async fn copy_usage(client: &Client, data: Vec<u8>) -> Result<u64, tokio_postgres::Error> {
    use futures::SinkExt;
    let sink = client
        .copy_in(
            "COPY finops.usage_events (event_id, ts, provider, model) FROM STDIN WITH (FORMAT csv)",
        )
        .await?;
    futures::pin_mut!(sink);
    // Sent in pieces, as a client streaming a file would.
    for piece in data.chunks(64 * 1024) {
        sink.send(bytes::Bytes::copy_from_slice(piece)).await?;
    }
    sink.finish().await
}

/// Parquet files of the usage table (live or staged).
fn usage_segment_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for table in std::fs::read_dir(dir.join("tables")).expect("tables") {
        let table = table.expect("entry").path();
        let name = table
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if !name.starts_with("finops.usage_events-") {
            continue;
        }
        if let Ok(files) = std::fs::read_dir(table.join("data")) {
            found.extend(files.map(|f| f.expect("file").path()));
        }
    }
    found
}

#[tokio::test]
async fn copy_bad_line_after_staged_chunks_stores_nothing() {
    let (server, dir) = start_small_chunks().await;
    let client = connect(&server.conn_str()).await;
    let mut data = usage_csv((1..=30_000).map(|i| format!("e{i}")));
    data.extend_from_slice(
        b"e30001,not a time,openai,gpt-4o\ne30002,2025-01-01 00:00:00+00,openai,gpt-4o\n",
    );
    let e = copy_usage(&client, data).await.expect_err("bad ts");
    assert_eq!(sqlstate(&e), "22P02");
    let message = e.as_db_error().expect("server error").message().to_string();
    assert!(message.contains("line 30001"), "{message}");
    let row = client
        .query_one("SELECT count(*) FROM finops.usage_events", &[])
        .await
        .expect("count");
    assert_eq!(
        row.get::<_, i64>(0),
        0,
        "nothing of the failed COPY is visible"
    );
    assert!(
        usage_segment_files(dir.path()).is_empty(),
        "staged chunks are deleted: {:?}",
        usage_segment_files(dir.path())
    );

    // A missing NOT NULL value late in the input: 23502, same outcome.
    let mut data = usage_csv((1..=20_000).map(|i| format!("n{i}")));
    data.extend_from_slice(b"n20001,2025-01-01 00:00:00+00,,gpt-4o\n");
    let e = copy_usage(&client, data).await.expect_err("null provider");
    assert_eq!(sqlstate(&e), "23502");
    let message = e.as_db_error().expect("server error").message().to_string();
    assert!(message.contains("line 20001"), "{message}");
    let row = client
        .query_one("SELECT count(*) FROM finops.usage_events", &[])
        .await
        .expect("count");
    assert_eq!(row.get::<_, i64>(0), 0);
    assert!(usage_segment_files(dir.path()).is_empty());
}

#[tokio::test]
async fn copy_skips_duplicates_across_staged_chunks() {
    let (server, _dir) = start_small_chunks().await;
    let client = connect(&server.conn_str()).await;
    client
        .batch_execute(
            "INSERT INTO finops.usage_events (event_id, ts, provider, model) \
             VALUES ('d5', TIMESTAMPTZ '2025-01-01 00:00:00+00', 'openai', 'gpt-4o')",
        )
        .await
        .expect("insert");
    // 30,000 rows over 12,000 distinct ids: repeats land in later chunks than their first copy.
    let data = usage_csv((0..30_000).map(|i| format!("d{}", i % 12_000)));
    assert_eq!(
        copy_usage(&client, data.clone()).await.expect("copy"),
        11_999
    );
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT event_id) FROM finops.usage_events",
            &[],
        )
        .await
        .expect("count");
    assert_eq!(row.get::<_, i64>(0), 12_000);
    assert_eq!(row.get::<_, i64>(1), 12_000);
    assert_eq!(
        copy_usage(&client, data).await.expect("re-copy"),
        0,
        "a re-run inserts nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_stat_activity_lists_connections_and_pg_cancel_backend_stops_their_queries() {
    let (server, _dir) = start().await;
    let (busy, connection) = tokio_postgres::connect(
        &format!("{} application_name=reporting", server.conn_str()),
        NoTls,
    )
    .await
    .expect("connects");
    tokio::spawn(connection);
    let watcher = connect(&server.conn_str()).await;
    let pid: i32 = busy
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0);
    let own: i32 = watcher
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0);
    assert_ne!(pid, own, "each connection has its own process id");

    let running = tokio::spawn(async move {
        let result = busy.simple_query(ENDLESS).await;
        (busy, result)
    });
    // The query shows as active, with the connection's user and application.
    let watch = "SELECT state, query, usename, application_name, datname, backend_type, \
                 client_addr, query_start IS NOT NULL AND backend_start <= query_start \
                 FROM pg_stat_activity WHERE pid = $1";
    let started = std::time::Instant::now();
    loop {
        let row = watcher.query_one(watch, &[&pid]).await.expect("activity");
        if row.get::<_, Option<&str>>(0) == Some("active") {
            assert_eq!(row.get::<_, &str>(1), ENDLESS);
            assert_eq!(row.get::<_, &str>(2), "finops");
            assert_eq!(row.get::<_, &str>(3), "reporting");
            assert_eq!(row.get::<_, &str>(4), "finops");
            assert_eq!(row.get::<_, &str>(5), "client backend");
            assert_eq!(row.get::<_, &str>(6), "127.0.0.1");
            assert!(row.get::<_, bool>(7));
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "never active");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cancelled: bool = watcher
        .query_one("SELECT pg_cancel_backend($1::int4)", &[&pid])
        .await
        .expect("cancel")
        .get(0);
    assert!(cancelled);
    let (busy, result) = tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .expect("the cancel took effect")
        .expect("joins");
    assert_eq!(sqlstate(&result.expect_err("cancelled")), "57014");

    // Between statements it is idle, or idle in its transaction; its last query stays shown.
    busy.batch_execute("BEGIN").await.expect("begin");
    let row = watcher.query_one(watch, &[&pid]).await.expect("activity");
    assert_eq!(row.get::<_, Option<&str>>(0), Some("idle in transaction"));
    assert_eq!(row.get::<_, &str>(1), "BEGIN");
    busy.batch_execute("COMMIT").await.expect("commit");
    let row = watcher.query_one(watch, &[&pid]).await.expect("activity");
    assert_eq!(row.get::<_, Option<&str>>(0), Some("idle"));
    // The reader's own statement, on the extended protocol, is the one running.
    let row = watcher
        .query_one(
            "SELECT state, query FROM pg_stat_activity WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("own row");
    assert_eq!(row.get::<_, &str>(0), "active");
    assert!(row.get::<_, &str>(1).contains("pg_backend_pid()"));

    // No such backend: false, as in Postgres; an ended connection leaves the view.
    let none: bool = watcher
        .query_one("SELECT pg_cancel_backend(-5)", &[])
        .await
        .expect("unknown pid")
        .get(0);
    assert!(!none);
    drop(busy);
    let started = std::time::Instant::now();
    while watcher
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
            &[&pid],
        )
        .await
        .expect("count")
        .get::<_, i64>(0)
        > 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "ended connection still listed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn insert_returning_answers_with_typed_rows_and_the_insert_tag() {
    let (server, _dir) = start().await;
    let client = connect(&server.conn_str()).await;
    client
        .batch_execute(
            "CREATE TABLE notes (id BIGINT NOT NULL, body TEXT, kind TEXT DEFAULT 'memo')",
        )
        .await
        .expect("table");
    // Extended protocol: parameters bound, the returned columns described and sent in binary.
    let statement = client
        .prepare("INSERT INTO notes (id, body) VALUES ($1, $2) RETURNING id, body, kind, id * 2 AS twice")
        .await
        .expect("prepare");
    let names: Vec<_> = statement.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["id", "body", "kind", "twice"]);
    let rows = client
        .query(&statement, &[&7i64, &"seven"])
        .await
        .expect("insert returning");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, i64>("id"), 7);
    assert_eq!(
        rows[0].get::<_, Option<String>>("body").as_deref(),
        Some("seven")
    );
    assert_eq!(rows[0].get::<_, String>("kind"), "memo");
    assert_eq!(rows[0].get::<_, i64>("twice"), 14);
    // The same prepared statement again writes another row.
    client
        .query(&statement, &[&8i64, &None::<String>])
        .await
        .expect("again");
    let count: i64 = client
        .query_one("SELECT count(*) FROM notes", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, 2);
    // The command tag is INSERT's, counting the rows.
    let messages = client
        .simple_query("INSERT INTO notes (id) VALUES (9), (10) RETURNING id")
        .await
        .expect("simple");
    let returned = messages
        .iter()
        .filter(|m| matches!(m, SimpleQueryMessage::Row(_)))
        .count();
    assert_eq!(returned, 2);
    assert!(
        messages
            .iter()
            .any(|m| matches!(m, SimpleQueryMessage::CommandComplete(2))),
        "{messages:?}"
    );
    // An INSERT that fails returns nothing, stores nothing, and the session goes on.
    let err = client
        .query(&statement, &[&None::<i64>, &"none"])
        .await
        .expect_err("NULL id");
    assert_eq!(err.code().map(|c| c.code()), Some("23502"));
    let count: i64 = client
        .query_one("SELECT count(*) FROM notes", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, 4);
    server.stop().await.expect("stop");
}
