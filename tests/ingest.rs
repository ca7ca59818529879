//! `finops-db ingest`: usage files (CSV, Parquet, JSON Lines) and provider exports loaded into
//! `finops.usage_events`, one atomic and idempotent statement per file; and the command itself.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Decimal128Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::parquet::arrow::ArrowWriter;
use finops_db::Engine;
use finops_db::config::Config;
use finops_db::engine::{Identity, Session};
use finops_db::ingest::{FileOutcome, IngestKind, Ingested, ingest};

async fn open(dir: &Path) -> (Arc<Engine>, Session) {
    let config = Config {
        data_dir: dir.to_string_lossy().into_owned(),
        ..Config::default()
    };
    let engine = Engine::open(config).await.expect("engine opens");
    let session = engine.session(Identity::local_admin()).expect("session");
    (engine, session)
}

async fn count(session: &Session, filter: &str) -> i64 {
    let batches = session
        .query(&format!(
            "SELECT count(*) AS n FROM finops.usage_events WHERE {filter}"
        ))
        .await
        .expect("count");
    batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("bigint")
        .value(0)
}

fn ok(outcomes: &[FileOutcome]) -> Vec<Ingested> {
    outcomes
        .iter()
        .map(|o| match &o.result {
            Ok(done) => *done,
            Err(e) => panic!("{} failed: {e}", o.file),
        })
        .collect()
}

const CSV: &str = "event_id,ts,provider,model,team,input_tokens,output_tokens,reported_cost\n\
    csv-1,2025-03-01T10:00:00Z,openai,gpt-4o,search,1200,300,0.0105\n\
    csv-2,2025-03-01T10:00:05Z,anthropic,claude-3-5-sonnet-20241022,,800,200,\n\
    csv-3,2025-03-01 10:00:09,openai,gpt-4o-mini,chat,50,10,0.000015\n";

#[tokio::test]
async fn csv_reingest_inserts_nothing() {
    let data = tempfile::tempdir().expect("data dir");
    let files = tempfile::tempdir().expect("files");
    let path = files.path().join("usage.csv");
    std::fs::write(&path, CSV).expect("write csv");
    let (_engine, session) = open(data.path()).await;
    let location = path.to_string_lossy().into_owned();

    let first = ingest(&session, IngestKind::Usage, &location)
        .await
        .expect("lists");
    assert_eq!(
        ok(&first),
        vec![Ingested {
            rows: 3,
            inserted: 3
        }]
    );
    assert_eq!(
        first[0].file,
        path.canonicalize().expect("path").to_string_lossy()
    );
    let again = ingest(&session, IngestKind::Usage, &location)
        .await
        .expect("lists");
    assert_eq!(
        ok(&again),
        vec![Ingested {
            rows: 3,
            inserted: 0
        }]
    );
    assert_eq!(count(&session, "true").await, 3);
    // Defaults and NULLs as SPEC 3.1: requests 1, an empty field NULL, the file as source.
    assert_eq!(count(&session, "requests = 1").await, 3);
    assert_eq!(
        count(&session, "team IS NULL AND event_id = 'csv-2'").await,
        1
    );
    assert_eq!(count(&session, "reported_cost = 0.0105").await, 1);
    assert_eq!(count(&session, "source LIKE '%usage.csv'").await, 3);
}

#[tokio::test]
async fn bad_line_rejects_only_its_file() {
    let data = tempfile::tempdir().expect("data dir");
    let files = tempfile::tempdir().expect("files");
    std::fs::write(files.path().join("a_good.csv"), CSV).expect("write good");
    std::fs::write(
        files.path().join("b_bad.csv"),
        "event_id,ts,provider,model,input_tokens\n\
         bad-1,2025-03-02T00:00:00Z,openai,gpt-4o,10\n\
         bad-2,2025-03-02T00:00:01Z,openai,gpt-4o,20\n\
         bad-3,2025-03-02T00:00:02Z,openai,gpt-4o,lots\n",
    )
    .expect("write bad");
    std::fs::write(files.path().join("notes.txt"), "not usage").expect("write other");
    let (_engine, session) = open(data.path()).await;

    let outcomes = ingest(&session, IngestKind::Usage, &files.path().to_string_lossy())
        .await
        .expect("lists");
    assert_eq!(outcomes.len(), 2, "the .txt file is not listed");
    assert!(outcomes[0].result.is_ok(), "{:?}", outcomes[0].result);
    let err = outcomes[1].result.as_ref().expect_err("bad file");
    let message = err.to_string();
    assert!(
        message.contains("b_bad.csv, line 4") && message.contains("input_tokens"),
        "{message}"
    );
    assert_eq!(count(&session, "event_id LIKE 'bad-%'").await, 0);
    assert_eq!(count(&session, "true").await, 3);
}

fn parquet_file(path: &Path) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            false,
        ),
        Field::new("provider", DataType::Utf8, false),
        Field::new("model", DataType::Utf8, false),
        Field::new("input_tokens", DataType::Int64, true),
        Field::new("requests", DataType::Int64, true),
        Field::new("reported_cost", DataType::Decimal128(10, 4), true),
    ]));
    let ts = datafusion::arrow::array::TimestampNanosecondArray::from(vec![
        1_740_823_200_000_000_000,
        1_740_823_260_000_000_000,
    ])
    .with_timezone("UTC");
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from(vec!["pq-1", "shared-1"])),
            Arc::new(ts),
            Arc::new(StringArray::from(vec!["openai", "openai"])),
            Arc::new(StringArray::from(vec!["gpt-4o", "gpt-4o"])),
            Arc::new(Int64Array::from(vec![Some(10), None])),
            Arc::new(Int64Array::from(vec![Some(5), None])),
            Arc::new(
                Decimal128Array::from(vec![Some(12_345), None])
                    .with_precision_and_scale(10, 4)
                    .expect("decimal"),
            ),
        ],
    )
    .expect("batch");
    let file = std::fs::File::create(path).expect("create parquet");
    let mut writer = ArrowWriter::try_new(file, schema, None).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
}

#[tokio::test]
async fn parquet_and_json_lines_in_one_folder() {
    let data = tempfile::tempdir().expect("data dir");
    let files = tempfile::tempdir().expect("files");
    parquet_file(&files.path().join("a.parquet"));
    std::fs::write(
        files.path().join("b.jsonl"),
        concat!(
            r#"{"event_id":"shared-1","ts":"2025-03-01T10:01:00Z","provider":"openai","model":"gpt-4o"}"#,
            "\n",
            r#"{"event_id":"js-1","ts":"2025-03-01T10:02:00Z","provider":"google_gemini","model":"gemini-2.0-flash","input_tokens":400,"tags":{"env":"prod"},"reported_cost":0.25}"#,
            "\n",
        ),
    )
    .expect("write jsonl");
    let (_engine, session) = open(data.path()).await;

    let outcomes = ingest(
        &session,
        IngestKind::Usage,
        &format!("file://{}/", files.path().display()),
    )
    .await
    .expect("lists");
    assert_eq!(
        ok(&outcomes),
        vec![
            Ingested {
                rows: 2,
                inserted: 2
            },
            Ingested {
                rows: 2,
                inserted: 1
            },
        ],
        "shared-1 is in both files"
    );
    assert_eq!(
        count(
            &session,
            "event_id = 'pq-1' AND requests = 5 AND reported_cost = 1.2345"
        )
        .await,
        1
    );
    assert_eq!(
        count(&session, "event_id = 'shared-1' AND requests = 1").await,
        1
    );
    assert_eq!(
        count(
            &session,
            "event_id = 'js-1' AND tags = '{\"env\":\"prod\"}'"
        )
        .await,
        1
    );
    assert_eq!(
        count(&session, "ts = TIMESTAMPTZ '2025-03-01T10:00:00Z'").await,
        1
    );
}

#[tokio::test]
async fn provider_export_ingests_canonical_rows_once() {
    let data = tempfile::tempdir().expect("data dir");
    let files = tempfile::tempdir().expect("files");
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openai/usage_completions.json");
    std::fs::copy(&fixture, files.path().join("usage_completions.json")).expect("copy fixture");
    let (_engine, session) = open(data.path()).await;
    let kind = IngestKind::parse("openai_usage").expect("known format");
    let location = files.path().to_string_lossy().into_owned();

    let first = ok(&ingest(&session, kind, &location).await.expect("lists"));
    assert_eq!(first.len(), 1);
    assert!(first[0].inserted > 0, "{first:?}");
    let stored = count(&session, "provider = 'openai'").await;
    assert_eq!(stored, first[0].inserted as i64);
    let again = ok(&ingest(&session, kind, &location).await.expect("lists"));
    assert_eq!(again[0].inserted, 0);
    assert_eq!(count(&session, "true").await, stored);
    assert!(IngestKind::parse("no_such_format").is_err());
}

#[test]
fn command_prints_counts_and_fails_on_a_bad_file() {
    let data = tempfile::tempdir().expect("data dir");
    let files = tempfile::tempdir().expect("files");
    let good = files.path().join("usage.csv");
    std::fs::write(&good, CSV).expect("write csv");
    let run = |path: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_finops-db"))
            .args(["--data-dir"])
            .arg(data.path())
            .args(["ingest", "usage"])
            .arg(path)
            .env("RUST_LOG", "warn")
            .output()
            .expect("runs")
    };
    let first = run(&good);
    assert!(first.status.success(), "{first:?}");
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        stdout.contains("ingested 3 rows (0 skipped as duplicates) from ")
            && stdout.contains("usage.csv"),
        "{stdout}"
    );
    let second = run(&good);
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(
        stdout.contains("ingested 0 rows (3 skipped as duplicates)"),
        "{stdout}"
    );
    let bad = files.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"event_id\": \"x\",\n").expect("write bad");
    let third = run(&bad);
    assert!(!third.status.success());
    let stderr = String::from_utf8_lossy(&third.stderr);
    assert!(stderr.contains("bad.jsonl, line 1"), "{stderr}");
}

/// `finops-db sql` on `dir`: one process, as a restart would be; its stdout in CSV.
fn sql_cli(dir: &Path, sql: &str) -> Result<String, String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_finops-db"))
        .arg("--data-dir")
        .arg(dir)
        .args(["sql", "--format", "csv", sql])
        .env("RUST_LOG", "error")
        .output()
        .expect("run finops-db");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn views_outlive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |sql: &str| sql_cli(dir.path(), sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    run("CREATE TABLE finops.numbers (n BIGINT); \
         INSERT INTO finops.numbers VALUES (1), (2), (3); \
         CREATE VIEW finops.big AS SELECT n FROM finops.numbers WHERE n > 1; \
         CREATE VIEW kpi.big_count AS SELECT COUNT(*) AS c FROM finops.big; \
         CREATE VIEW kpi.gone AS SELECT 1 AS one");
    assert!(run("SELECT c FROM kpi.big_count").contains("\n2"));
    // Replaced after a view that reads it was stored, then one dropped.
    run(
        "CREATE OR REPLACE VIEW finops.big AS SELECT n FROM finops.numbers WHERE n > 2; \
         DROP VIEW kpi.gone",
    );
    let e = sql_cli(dir.path(), "DROP VIEW kpi.summary").expect_err("built-in views stay");
    assert!(e.contains("built-in view"), "{e}");
    // Each command is a new process: the views come back, in an order that plans.
    assert!(run("SELECT COUNT(*) AS n FROM finops.big").contains("\n1"));
    assert!(run("SELECT c FROM kpi.big_count").contains("\n1"));
    assert!(sql_cli(dir.path(), "SELECT * FROM kpi.gone").is_err());
    // Built-in views are not stored: they come from `sql/` at every start.
    let stored = run("SELECT name FROM finops.view_definitions ORDER BY name");
    assert_eq!(
        stored.lines().skip(1).collect::<Vec<_>>(),
        ["finops.big", "kpi.big_count"]
    );
    // A view whose table is gone is skipped at start; the rest still work.
    run("DROP TABLE finops.numbers");
    assert!(sql_cli(dir.path(), "SELECT * FROM finops.big").is_err());
    assert!(run("SELECT COUNT(*) AS n FROM kpi.summary").contains('n'));
}
