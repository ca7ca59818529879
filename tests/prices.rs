//! The price book as a table: UPDATE and DELETE on `finops.model_prices` are validated like INSERT
//! (SQLSTATE 23514, nothing changes), and `finops-db prices import` loads either upstream catalog
//! format (trimmed samples in `tests/fixtures/prices/`).

use std::path::{Path, PathBuf};

use finops_db::config::Config;
use finops_db::engine::Identity;
use finops_db::pricing::import::{CatalogFormat, import};
use finops_db::testing::TestServer;
use finops_db::{Engine, Session};
use rust_decimal::Decimal;
use tokio_postgres::{Client, NoTls};

async fn start() -> (TestServer, Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("scratch dir");
    let config = Config {
        data_dir: dir.path().to_string_lossy().into_owned(),
        ..Config::default()
    };
    let server = TestServer::start(config).await.expect("server starts");
    let (client, connection) = tokio_postgres::connect(&server.conn_str(), NoTls)
        .await
        .expect("connects");
    tokio::spawn(connection);
    (server, client, dir)
}

fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.code().code().to_string())
        .unwrap_or_else(|| format!("not a server error: {e}"))
}

async fn acme_input(client: &Client) -> Option<Decimal> {
    client
        .query_one(
            "SELECT model_price('acme', 'acme-1', 'input', TIMESTAMPTZ '2025-03-01T00:00:00Z')",
            &[],
        )
        .await
        .expect("model_price")
        .get(0)
}

#[tokio::test]
async fn invalid_update_of_prices_is_rejected_and_changes_nothing() {
    let (_server, client, _dir) = start().await;
    client
        .batch_execute(
            "INSERT INTO finops.model_prices (provider, model, \"match\", valid_from, valid_to, input, output, source) \
             VALUES ('acme', 'acme-1', 'exact', TIMESTAMPTZ '2025-01-01T00:00:00Z', TIMESTAMPTZ '2025-06-01T00:00:00Z', 1, 2, 'test')",
        )
        .await
        .expect("insert");
    assert_eq!(acme_input(&client).await, Some(Decimal::from(1)));
    let invalid = [
        "UPDATE finops.model_prices SET input = -1 WHERE provider = 'acme'",
        "UPDATE finops.model_prices SET valid_to = TIMESTAMPTZ '2024-01-01T00:00:00Z' WHERE provider = 'acme'",
        "UPDATE finops.model_prices SET \"match\" = 'fuzzy' WHERE provider = 'acme'",
        "UPDATE finops.model_prices SET \"match\" = 'regex', model = 'acme-(' WHERE provider = 'acme'",
        "INSERT INTO finops.model_prices (provider, model, \"match\", input, output) VALUES ('acme', 'acme-2', 'exact', 1, -2)",
    ];
    for sql in invalid {
        let err = client.batch_execute(sql).await.expect_err(sql);
        assert_eq!(sqlstate(&err), "23514", "{sql}: {err}");
    }
    let row = client
        .query_one(
            "SELECT count(*), min(input), min(\"match\"), min(valid_to) FROM finops.model_prices WHERE provider = 'acme'",
            &[],
        )
        .await
        .expect("read back");
    assert_eq!(row.get::<_, i64>(0), 1);
    assert_eq!(row.get::<_, Decimal>(1), Decimal::from(1));
    assert_eq!(row.get::<_, String>(2), "exact");
    assert_eq!(acme_input(&client).await, Some(Decimal::from(1)));

    let updated = client
        .execute(
            "UPDATE finops.model_prices SET input = 3 WHERE provider = 'acme'",
            &[],
        )
        .await
        .expect("valid update");
    assert_eq!(updated, 1);
    assert_eq!(acme_input(&client).await, Some(Decimal::from(3)));
    let deleted = client
        .execute(
            "DELETE FROM finops.model_prices WHERE provider = 'acme'",
            &[],
        )
        .await
        .expect("delete");
    assert_eq!(deleted, 1);
    assert_eq!(acme_input(&client).await, None);
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/prices")
        .join(name)
}

async fn price(session: &Session, provider: &str, model: &str, kind: &str) -> Option<String> {
    let batches = session
        .query(&format!(
            "SELECT CAST(model_price('{provider}', '{model}', '{kind}') AS VARCHAR)"
        ))
        .await
        .expect("model_price");
    let column = batches[0].column(0);
    datafusion::arrow::util::display::array_value_to_string(column, 0)
        .ok()
        .filter(|s| !s.is_empty())
}

#[tokio::test]
async fn import_of_both_catalog_formats_replaces_matching_rows() {
    let dir = tempfile::tempdir().expect("scratch dir");
    let config = Config {
        data_dir: dir.path().to_string_lossy().into_owned(),
        ..Config::default()
    };
    let engine = Engine::open(config).await.expect("opens");
    let session = engine.session(Identity::local_admin()).expect("session");
    session
        .sql(
            "UPDATE finops.model_prices SET input = 99 WHERE provider = 'openai' AND model = 'gpt-4o' AND \"match\" = 'exact'",
        )
        .await
        .expect("change a price");
    assert_eq!(
        price(&session, "openai", "gpt-4o", "input")
            .await
            .as_deref(),
        Some("99.000000000000")
    );

    let views = engine.views().expect("views");
    views
        .refresh(engine.base_context(), "kpi.daily")
        .await
        .expect("refresh");
    let daily = || {
        views
            .list()
            .into_iter()
            .find(|v| v.name == "kpi.daily")
            .expect("kpi.daily")
    };
    let before = daily();
    assert!(!before.stale);

    let genai = std::fs::read_to_string(fixture("genai_prices.json")).expect("fixture");
    let report = import(&session, "genai_prices.json", &genai)
        .await
        .expect("imports genai-prices");
    // Marked stale, or refreshed since. A refresh already waiting on the view's lock (an
    // automatic one from the set-up) can start right after the import, clearing the mark while it
    // recomputes with the new prices: then wait for it to finish.
    let mut priced_anew = false;
    for _ in 0..600 {
        let after = daily();
        if after.stale || after.last_refresh > before.last_refresh {
            priced_anew = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(priced_anew, "views over finops.usage are priced anew");
    assert_eq!(report.format, CatalogFormat::GenaiPrices);
    assert!(report.rows > 0 && report.replaced >= 1, "{report:?}");
    assert_eq!(
        price(&session, "openai", "gpt-4o", "input")
            .await
            .as_deref(),
        Some("2.500000000000")
    );
    assert_eq!(
        price(&session, "openai", "gpt-4o-mini", "batch_input")
            .await
            .as_deref(),
        Some("0.075000000000"),
        "a price the file does not list is kept when input and output agree"
    );
    let again = import(&session, "genai_prices.json", &genai)
        .await
        .expect("imports again");
    assert_eq!(
        (
            again.inserted,
            again.replaced,
            again.superseded,
            again.unchanged
        ),
        (0, 0, 0, again.rows),
        "{again:?}"
    );

    let litellm = std::fs::read_to_string(fixture("model_prices.json")).expect("fixture");
    let report = import(&session, "model_prices.json", &litellm)
        .await
        .expect("imports litellm");
    assert_eq!(report.format, CatalogFormat::LitellmModelPrices);
    assert!(report.rows >= 3, "{report:?}");
    assert_eq!(
        price(&session, "google_gemini", "gemini-2.5-pro", "tier_input")
            .await
            .as_deref(),
        Some("2.500000000000")
    );
    assert_eq!(
        price(&session, "openai", "gpt-4o-mini", "batch_input")
            .await
            .as_deref(),
        Some("0.075000000000")
    );

    let broken = import(&session, "broken.json", "[{\"id\": \"openai\"}]")
        .await
        .expect_err("not genai-prices");
    assert!(broken.to_string().contains("broken.json"), "{broken}");
}

#[test]
fn prices_import_command_reports_counts() {
    let dir = tempfile::tempdir().expect("scratch dir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_finops-db"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["prices", "import"])
        .arg(fixture("model_prices.json"))
        .env("RUST_LOG", "warn")
        .output()
        .expect("runs");
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("price rows (litellm model prices) from") && stdout.contains("inserted"),
        "{stdout}"
    );
}
