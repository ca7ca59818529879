//! Provider tables end to end: `CREATE EXTERNAL TABLE ... STORED AS <FORMAT>` over folders and
//! gzip files, the canonical view, the parse cache, and errors naming file and line.

use std::io::Write;
use std::sync::Arc;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::SessionContext;

use super::{
    FileContext, OnError, ProviderTable, ProviderTableFactory, parse_file, register_factories,
    register_factories_in, skipped_batch,
};
use crate::error::Error;

fn fixture(rel: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn context() -> (SessionContext, Arc<ProviderTableFactory>) {
    let factory = Arc::new(ProviderTableFactory::new());
    let mut state = SessionStateBuilder::new().with_default_features().build();
    register_factories(&mut state, Arc::clone(&factory));
    (SessionContext::new_with_state(state), factory)
}

#[tokio::test]
async fn factories_are_registered_under_upper_case_names() {
    let ctx = SessionContext::new();
    register_factories_in(&ctx, Arc::new(ProviderTableFactory::new()));
    for name in super::formats() {
        assert!(ctx.table_factory(name).is_some(), "{name}");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("report.json");
    std::fs::write(&file, fixture("anthropic/usage_report.json")).expect("write");
    // `STORED AS` in any case, and a `file://` URL.
    let location = format!("file://{}", file.display());
    create(&ctx, "usage", "anthropic_usage", &location, "").await;
    assert_eq!(count(&ctx, "SELECT count(*) FROM usage").await, 96);
}

async fn count(ctx: &SessionContext, sql: &str) -> i64 {
    let batches: Vec<RecordBatch> = ctx
        .sql(sql)
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    batches[0].column(0).as_primitive::<Int64Type>().value(0)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

async fn create(ctx: &SessionContext, name: &str, format: &str, location: &str, options: &str) {
    let sql =
        format!("CREATE EXTERNAL TABLE {name} STORED AS {format} LOCATION '{location}' {options}");
    ctx.sql(&sql)
        .await
        .expect("create")
        .collect()
        .await
        .expect("create");
}

async fn canonical_of(ctx: &SessionContext, name: &str) -> ProviderTable {
    let table = ctx.table_provider(name).await.expect("table");
    table
        .downcast_ref::<ProviderTable>()
        .expect("provider table")
        .clone()
}

#[tokio::test]
async fn folder_with_overlapping_gzip_export_counts_each_event_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("2025/09")).expect("mkdir");
    let lines = fixture("openai/request_usage.jsonl");
    std::fs::write(root.join("a.jsonl"), &lines).expect("write");
    // The same export again, compressed, one level down: an overlapping re-delivery.
    std::fs::write(root.join("2025/09/b.jsonl.gz"), gzip(&lines)).expect("write");
    std::fs::write(root.join("notes.txt"), "not an export").expect("write");
    let (ctx, _) = context();
    let location = format!("{}/", root.display());
    create(&ctx, "req", "openai_requests", &location, "").await;
    assert_eq!(count(&ctx, "SELECT count(*) FROM req").await, 64);
    assert_eq!(
        count(&ctx, "SELECT count(DISTINCT _file) FROM req").await,
        2
    );
    let table = canonical_of(&ctx, "req").await;
    ctx.register_table("req_usage", table.canonical())
        .expect("register");
    // 32 lines per file, 31 distinct request ids across both.
    assert_eq!(count(&ctx, "SELECT count(*) FROM req_usage").await, 31);
    assert_eq!(
        count(
            &ctx,
            "SELECT count(*) FROM req_usage WHERE ts >= '2030-01-01T00:00:00Z'"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &ctx,
            "SELECT sum(output_tokens) FROM req_usage WHERE provider = 'openai'"
        )
        .await,
        // 44871 over 32 lines, less the repeated chatcmpl-synth0001 (357 output tokens).
        44_871 - 357
    );
}

#[tokio::test]
async fn unchanged_files_are_parsed_once_and_changed_files_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("messages.jsonl");
    let bytes = fixture("anthropic/messages_usage.jsonl");
    std::fs::write(&file, &bytes).expect("write");
    let (ctx, factory) = context();
    create(
        &ctx,
        "msgs",
        "ANTHROPIC_MESSAGES",
        &file.display().to_string(),
        "",
    )
    .await;
    assert_eq!(count(&ctx, "SELECT count(*) FROM msgs").await, 33);
    assert_eq!(count(&ctx, "SELECT count(*) FROM msgs").await, 33);
    assert_eq!(factory.cache().parse_count(), 1);
    let mut more = bytes.clone();
    more.extend_from_slice(
        br#"{"id":"msg_new","model":"claude-sonnet-4-20250514","usage":{"input_tokens":1,"output_tokens":2}}"#,
    );
    more.push(b'\n');
    std::fs::write(&file, &more).expect("rewrite");
    assert_eq!(count(&ctx, "SELECT count(*) FROM msgs").await, 34);
    assert_eq!(factory.cache().parse_count(), 2);
}

/// A file behind an object-store URL other than `file://` (here `http://`, served by a minimal
/// server in the test) is read through a store made for its URL on first use, as `s3://`,
/// `gs://` and `az://` locations are (credentials from the environment).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_object_store_url_is_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let body = fixture("anthropic/messages_usage.jsonl");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let requests = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = Arc::clone(&requests);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&head)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            seen.lock().expect("requests").push(line.clone());
            let found = line.split(' ').nth(1) == Some("/exports/messages.jsonl");
            let status = if found { "200 OK" } else { "404 Not Found" };
            let payload: &[u8] = if found && line.starts_with("GET ") {
                &body
            } else {
                b""
            };
            let length = if found { body.len() } else { 0 };
            let reply = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {length}\r\n\
                 Last-Modified: Sun, 29 Nov 2026 08:00:00 GMT\r\nETag: \"v1\"\r\n\
                 Connection: close\r\n\r\n"
            );
            let _ = socket.write_all(reply.as_bytes()).await;
            let _ = socket.write_all(payload).await;
            let _ = socket.shutdown().await;
        }
    });
    let (ctx, _) = context();
    let location = format!("http://127.0.0.1:{port}/exports/messages.jsonl");
    create(&ctx, "remote", "ANTHROPIC_MESSAGES", &location, "").await;
    assert_eq!(count(&ctx, "SELECT count(*) FROM remote").await, 33);
    let asked = requests.lock().expect("requests").clone();
    assert!(
        asked
            .iter()
            .any(|r| r.starts_with("GET /exports/messages.jsonl")),
        "{asked:?}"
    );
    // A file that is not there: the error names the location.
    let missing = format!("http://127.0.0.1:{port}/exports/missing.jsonl");
    create(&ctx, "gone", "ANTHROPIC_MESSAGES", &missing, "").await;
    let err = ctx
        .sql("SELECT count(*) FROM gone")
        .await
        .expect("plan")
        .collect()
        .await
        .expect_err("missing file");
    assert!(err.to_string().contains("missing.jsonl"), "{err}");
}

/// Scans that meet on a file nobody has parsed yet parse it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_scans_parse_a_file_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["a.jsonl", "b.jsonl", "c.jsonl"] {
        std::fs::write(
            dir.path().join(name),
            fixture("anthropic/messages_usage.jsonl"),
        )
        .expect("write");
    }
    let (ctx, factory) = context();
    let location = format!("{}/", dir.path().display());
    create(&ctx, "msgs", "ANTHROPIC_MESSAGES", &location, "").await;
    let (a, b, c) = tokio::join!(
        count(&ctx, "SELECT count(*) FROM msgs"),
        count(&ctx, "SELECT sum(input_tokens) FROM msgs"),
        count(&ctx, "SELECT count(*) FROM msgs"),
    );
    assert_eq!((a, c), (99, 99));
    assert!(b > 0);
    assert_eq!(factory.cache().parse_count(), 3);
}

/// Past its budget the cache keeps what fits and a scan parses the rest again: the memory held
/// stays bounded, the answers stay the same, and a folder larger than the budget still gets the
/// files that fit from the cache on every scan (no scan pushes out what the next one needs).
#[tokio::test]
async fn the_parse_cache_keeps_to_its_budget() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = fixture("anthropic/messages_usage.jsonl");
    for name in ["a.jsonl", "b.jsonl"] {
        std::fs::write(dir.path().join(name), &bytes).expect("write");
    }
    let one_file = {
        let (ctx, factory) = context();
        let location = dir.path().join("a.jsonl").display().to_string();
        create(&ctx, "one", "ANTHROPIC_MESSAGES", &location, "").await;
        assert_eq!(count(&ctx, "SELECT count(*) FROM one").await, 33);
        factory.cache().cached_bytes()
    };
    assert!(one_file > 0);
    // Room for one parsed file, not two.
    let factory = Arc::new(ProviderTableFactory::with_cache_budget(one_file * 3 / 2));
    let mut state = SessionStateBuilder::new().with_default_features().build();
    register_factories(&mut state, Arc::clone(&factory));
    let ctx = SessionContext::new_with_state(state);
    let location = format!("{}/", dir.path().display());
    create(&ctx, "both", "ANTHROPIC_MESSAGES", &location, "").await;
    for round in 1..=3 {
        assert_eq!(count(&ctx, "SELECT count(*) FROM both").await, 66);
        assert_eq!(factory.cache().cached_bytes(), one_file);
        assert_eq!(factory.cache().parse_count(), round + 1, "round {round}");
    }
    // Without a budget nothing is kept.
    let (none, factory) = {
        let factory = Arc::new(ProviderTableFactory::with_cache_budget(0));
        let mut state = SessionStateBuilder::new().with_default_features().build();
        register_factories(&mut state, Arc::clone(&factory));
        (SessionContext::new_with_state(state), factory)
    };
    create(&none, "both", "ANTHROPIC_MESSAGES", &location, "").await;
    assert_eq!(count(&none, "SELECT count(*) FROM both").await, 66);
    assert_eq!(count(&none, "SELECT count(*) FROM both").await, 66);
    assert_eq!(factory.cache().parse_count(), 4);
    assert_eq!(factory.cache().cached_bytes(), 0);
}

#[tokio::test]
async fn malformed_record_fails_the_scan_naming_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("logs.jsonl");
    let mut bytes = fixture("bedrock/invocation_logs.jsonl");
    // Line 41: tokens as text; line 42: a truncated record.
    bytes.extend_from_slice(
        br#"{"schemaType":"ModelInvocationLog","timestamp":"2025-09-02T00:00:00Z","requestId":"r1","modelId":"m","input":{"inputTokenCount":"many"},"output":{"outputTokenCount":1}}"#,
    );
    bytes.extend_from_slice(b"\n{\"schemaType\":\"ModelInvocationLog\",\"timest");
    std::fs::write(&file, &bytes).expect("write");
    let (ctx, _) = context();
    let location = file.display().to_string();
    create(&ctx, "logs", "BEDROCK_INVOCATIONS", &location, "").await;
    let err = ctx
        .sql("SELECT count(*) FROM logs")
        .await
        .expect("plan")
        .collect()
        .await
        .expect_err("malformed");
    let msg = err.to_string();
    assert!(
        msg.contains("logs.jsonl") && msg.contains("line 41"),
        "{msg}"
    );
    assert!(msg.contains("inputTokenCount"), "{msg}");

    create(
        &ctx,
        "logs_skip",
        "BEDROCK_INVOCATIONS",
        &location,
        "OPTIONS ('on_error' 'skip')",
    )
    .await;
    assert_eq!(count(&ctx, "SELECT count(*) FROM logs_skip").await, 40);
    let table = canonical_of(&ctx, "logs_skip").await;
    let skipped = table.skipped();
    assert_eq!(skipped.len(), 2);
    assert_eq!(skipped[0].line, Some(41));
    assert_eq!(skipped[1].line, Some(42));
    assert!(
        skipped[1].message.contains("invalid JSON"),
        "{}",
        skipped[1].message
    );
    assert!(skipped[0].file.ends_with("logs.jsonl"));
    assert_eq!(skipped_batch(&skipped).expect("batch").num_rows(), 2);
}

#[test]
fn truncated_page_and_csv_name_the_line() {
    let page = fixture("openai/costs.json");
    let cut = &page[..page.len() / 2];
    let ctx = FileContext {
        file: "costs.json",
        modified: None,
    };
    let err = parse_file("OPENAI_COSTS", &ctx, cut, OnError::Fail).expect_err("truncated");
    let Error::ProviderData { file, line, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(file, "costs.json");
    assert!(line.is_some_and(|l| l > 500), "{err}");
    let skipped = parse_file("OPENAI_COSTS", &ctx, cut, OnError::Skip).expect("skip");
    assert_eq!((skipped.native.num_rows(), skipped.skipped.len()), (0, 1));

    let csv = fixture("azure/cost_export.csv");
    let text = String::from_utf8(csv).expect("utf8");
    let cut = &text[..text.len() - 40];
    let ctx = FileContext {
        file: "cost_export.csv",
        modified: None,
    };
    let err = parse_file("AZURE_COSTS", &ctx, cut.as_bytes(), OnError::Fail).expect_err("cut");
    assert!(err.to_string().contains("line 50"), "{err}");
    let ok = parse_file("AZURE_COSTS", &ctx, cut.as_bytes(), OnError::Skip).expect("skip");
    assert_eq!((ok.native.num_rows(), ok.skipped.len()), (48, 1));
}

#[test]
fn a_file_of_another_format_is_named_as_such() {
    let ctx = FileContext {
        file: "spend_logs.csv",
        modified: None,
    };
    let err = parse_file(
        "AWS_CUR",
        &ctx,
        &fixture("litellm/spend_logs.csv"),
        OnError::Fail,
    )
    .expect_err("wrong format");
    let msg = err.to_string();
    assert!(
        msg.contains("not a AWS_CUR record") && msg.contains("line 2"),
        "{msg}"
    );
    let ctx = FileContext {
        file: "usage_report.json",
        modified: None,
    };
    let err = parse_file(
        "OPENAI_USAGE",
        &ctx,
        &fixture("anthropic/usage_report.json"),
        OnError::Fail,
    )
    .expect_err("wrong format");
    assert!(err.to_string().contains("bucket 1, result 1"), "{err}");
    let err = parse_file(
        "OPENAI_USAGE",
        &ctx,
        &fixture("openai/request_usage.jsonl"),
        OnError::Fail,
    )
    .expect_err("wrong format");
    assert!(err.to_string().contains("line"), "{err}");
}

#[tokio::test]
async fn unknown_options_and_columns_are_refused() {
    let (ctx, _) = context();
    let dir = tempfile::tempdir().expect("tempdir");
    let location = format!("{}/", dir.path().display());
    let sql = format!(
        "CREATE EXTERNAL TABLE t STORED AS FOCUS LOCATION '{location}' OPTIONS ('delimiter' ';')"
    );
    let err = match ctx.sql(&sql).await {
        Ok(df) => df.collect().await.expect_err("unknown option"),
        Err(e) => e,
    };
    assert!(err.to_string().contains("delimiter"), "{err}");
    // An empty folder is an empty table, not an error.
    create(&ctx, "empty", "FOCUS", &location, "").await;
    assert_eq!(count(&ctx, "SELECT count(*) FROM empty").await, 0);
}

#[tokio::test]
async fn the_newest_export_wins_a_repeated_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let line = |out: u32| {
        format!(
            "{{\"id\":\"chatcmpl-x\",\"created\":1756684800,\"model\":\"gpt-4o\",\"usage\":{{\"prompt_tokens\":10,\"completion_tokens\":{out},\"total_tokens\":{}}}}}\n",
            10 + out
        )
    };
    let old = dir.path().join("z-old.jsonl");
    let new = dir.path().join("a-new.jsonl");
    std::fs::write(&old, line(1)).expect("write");
    std::fs::write(&new, line(5)).expect("write");
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .and_then(|f| f.set_modified(hour_ago))
        .expect("mtime");
    let (ctx, _) = context();
    create(
        &ctx,
        "req",
        "OPENAI_REQUESTS",
        &format!("{}/", dir.path().display()),
        "",
    )
    .await;
    let table = canonical_of(&ctx, "req").await;
    ctx.register_table("req_usage", table.canonical())
        .expect("register");
    assert_eq!(
        count(&ctx, "SELECT sum(output_tokens) FROM req_usage").await,
        5
    );
}
