//! The FinOps workload, end to end, against a `finops-db serve` process: ingest by COPY (one and
//! four clients, durable) and by single-row INSERTs, a scan against plain DataFusion over one
//! Parquet file, the reference FinOps queries asked of `finops.usage`, pricing by UDF against a
//! SQL range join, materialized-view refreshes and dashboard latency over the wire, and the
//! server's peak memory.
//!
//! Input: the benchmark generator's files (`benches/workload/run.sh` makes them and runs this
//! with DuckDB and PostgreSQL 15 beside it). Environment: `FINOPS_BENCH_DATA` (folder with
//! `usage.parquet`, `model_prices.parquet`, `budgets.parquet`), optional `FINOPS_BENCH_PG`
//! (a libpq URL: PostgreSQL COPY of the same rows into an equivalent table).
//! Prints one JSON object per measurement.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::csv::WriterBuilder;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::SinkExt;
use tokio_postgres::{Client, NoTls};

/// The generator's rows in the columns of `finops.usage_events`.
const TO_USAGE_EVENTS: &str = "SELECT request_id AS event_id, ts, provider, model, team, app, \
    feature, user_id, CAST(NULL AS VARCHAR) AS api_key_id, CAST(NULL AS VARCHAR) AS project, \
    CAST(NULL AS VARCHAR) AS environment, input_tokens, cached_input_tokens, \
    CAST(0 AS BIGINT) AS cache_write_tokens, output_tokens, CAST(0 AS BIGINT) AS reasoning_tokens, \
    CAST(1 AS BIGINT) AS requests, 'standard' AS service_tier, latency_ms, status, prompt_hash, \
    CAST(NULL AS DECIMAL(38, 12)) AS reported_cost, CAST(NULL AS VARCHAR) AS tags, \
    'bench' AS source FROM gen";

const COLUMNS: &str = "event_id, ts, provider, model, team, app, feature, user_id, api_key_id, \
    project, environment, input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, \
    reasoning_tokens, requests, service_tier, latency_ms, status, prompt_hash, reported_cost, \
    tags, source";

fn report(name: &str, fields: serde_json::Value) {
    let mut object = serde_json::json!({ "bench": name });
    if let (Some(o), serde_json::Value::Object(f)) = (object.as_object_mut(), fields) {
        o.extend(f);
    }
    println!("{object}");
}

/// A `finops-db serve` child process on its own data directory.
struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().expect("scratch dir");
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            l.local_addr().expect("addr").port()
        };
        let child = Command::new(env!("CARGO_BIN_EXE_finops-db"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env(
                "RUST_LOG",
                std::env::var("FINOPS_BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .spawn()
            .expect("finops-db serve starts");
        let server = Server {
            child,
            port,
            _dir: dir,
        };
        for _ in 0..600 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("server did not start");
    }

    async fn client(&self) -> Client {
        connect(&format!(
            "host=127.0.0.1 port={} user=finops password=finops dbname=finops",
            self.port
        ))
        .await
    }

    /// Peak resident memory of the server process so far, in MiB.
    fn peak_rss_mib(&self) -> f64 {
        peak_rss_mib(self.child.id())
    }

    fn data_dir(&self) -> PathBuf {
        self._dir.path().join("data")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn peak_rss_mib(pid: u32) -> f64 {
    proc_status_mib(pid, "VmHWM:")
}

/// A memory line of `/proc/<pid>/status` (`VmHWM:` peak, `VmRSS:` now), in MiB.
fn proc_status_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

async fn connect(conn: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(conn, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect {conn}: {e}"));
    tokio::spawn(connection);
    client
}

/// The usage rows as CSV chunks of about 8,192 rows each.
async fn csv_chunks(data: &Path) -> (Vec<Bytes>, usize, Vec<RecordBatch>) {
    // One partition keeps the file's order (by `ts`): the last chunks are the latest rows.
    let ctx = SessionContext::new_with_config(
        datafusion::prelude::SessionConfig::new().with_target_partitions(1),
    );
    ctx.register_parquet(
        "gen",
        data.join("usage.parquet").to_string_lossy().as_ref(),
        ParquetReadOptions::default(),
    )
    .await
    .expect("usage.parquet");
    let batches = ctx
        .sql(TO_USAGE_EVENTS)
        .await
        .expect("plan")
        .collect()
        .await
        .expect("read");
    let mut chunks = Vec::new();
    let mut rows = 0;
    for batch in &batches {
        let mut offset = 0;
        while offset < batch.num_rows() {
            let len = 8192.min(batch.num_rows() - offset);
            let slice = batch.slice(offset, len);
            let mut out = Vec::new();
            {
                let mut writer = WriterBuilder::new()
                    .with_header(false)
                    .with_timestamp_tz_format("%Y-%m-%d %H:%M:%S%.6f%:z".to_string())
                    .build(&mut out);
                writer.write(&slice).expect("csv");
            }
            chunks.push(Bytes::from(out));
            rows += len;
            offset += len;
        }
    }
    (chunks, rows, batches)
}

async fn copy_in(client: &Client, sql: &str, chunks: &[Bytes]) -> u64 {
    let sink = client.copy_in(sql).await.expect("copy in");
    futures::pin_mut!(sink);
    for chunk in chunks {
        sink.send(chunk.clone()).await.expect("copy data");
    }
    sink.finish().await.expect("copy done")
}

/// COPY of all chunks split over `clients` connections; rows/s.
async fn copy_bench(
    clients: Vec<Client>,
    sql: &'static str,
    chunks: &[Bytes],
    rows: usize,
) -> (f64, u64) {
    let per = chunks.len().div_ceil(clients.len());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, client) in clients.into_iter().enumerate() {
        let part: Vec<Bytes> = chunks.iter().skip(i * per).take(per).cloned().collect();
        tasks.push(tokio::spawn(async move {
            // One statement per million rows at most, like a real bulk loader.
            let mut n = 0;
            for statement in part.chunks(128) {
                n += copy_in(&client, sql, statement).await;
            }
            n
        }));
    }
    let mut inserted = 0;
    for t in tasks {
        inserted += t.await.expect("copy task");
    }
    (rows as f64 / started.elapsed().as_secs_f64(), inserted)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn time_query(client: &Client, sql: &str, runs: usize) -> (f64, usize) {
    let mut times = Vec::new();
    let mut rows = 0;
    for _ in 0..runs {
        let started = Instant::now();
        rows = client
            .simple_query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .iter()
            .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
            .count();
        times.push(started.elapsed());
    }
    times.sort();
    (times[times.len() / 2].as_secs_f64(), rows)
}

/// A deterministic xorshift generator for the export files.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Provider exports of about `bytes` in all, half Bedrock invocation logs and half OpenAI
/// request logs (JSON lines, files of about 64 MB under `bedrock/` and `openai/`), over the
/// generator's 90 days; returns the bytes written.
fn write_exports(dir: &Path, bytes: u64) -> u64 {
    use std::io::Write;
    const FILE_BYTES: u64 = 64_000_000;
    const START: u64 = 1_742_169_600; // 2025-03-17T00:00:00Z
    const SPAN: u64 = 90 * 86_400;
    let bedrock_models = [
        "us.anthropic.claude-sonnet-4-20250514-v1:0",
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        "meta.llama3-1-70b-instruct-v1:0",
        "amazon.nova-pro-v1:0",
    ];
    let openai_models = ["gpt-4o-mini-2024-07-18", "gpt-4.1-2025-04-14", "o3-mini"];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut written = 0;
    for (kind, share) in [("bedrock", bytes / 2), ("openai", bytes - bytes / 2)] {
        std::fs::create_dir_all(dir.join(kind)).expect("export dir");
        let mut in_kind = 0;
        let mut file_no = 0;
        while in_kind < share {
            let path = dir.join(kind).join(format!("part-{file_no:04}.jsonl"));
            let mut out = std::io::BufWriter::new(std::fs::File::create(&path).expect("file"));
            let mut in_file = 0;
            while in_file < FILE_BYTES && in_kind + in_file < share {
                let at = START + rng.below(SPAN);
                let input = 50 + rng.below(20_000);
                let cached = if rng.below(3) == 0 { input / 2 } else { 0 };
                let output = 10 + rng.below(2_000);
                let line = if kind == "bedrock" {
                    let model = bedrock_models[rng.below(4) as usize];
                    let time = chrono::DateTime::from_timestamp(at as i64, 0)
                        .expect("time")
                        .format("%Y-%m-%dT%H:%M:%SZ");
                    format!(
                        "{{\"schemaType\":\"ModelInvocationLog\",\"schemaVersion\":\"1.0\",\
                         \"timestamp\":\"{time}\",\"accountId\":\"111122223333\",\
                         \"identity\":{{\"arn\":\"arn:aws:iam::111122223333:user/app-{user}\"}},\
                         \"region\":\"us-east-1\",\"requestId\":\"{id:016x}\",\
                         \"operation\":\"Converse\",\"modelId\":\"{model}\",\
                         \"input\":{{\"inputContentType\":\"application/json\",\
                         \"inputTokenCount\":{input},\"cacheReadInputTokenCount\":{cached},\
                         \"cacheWriteInputTokenCount\":0}},\"output\":{{\
                         \"outputContentType\":\"application/json\",\"outputTokenCount\":{output},\
                         \"outputBodyJson\":{{\"stopReason\":\"end_turn\",\
                         \"metrics\":{{\"latencyMs\":{latency}}}}}}},\
                         \"inferenceRegion\":\"us-east-1\"}}\n",
                        user = rng.below(40),
                        id = rng.next(),
                        latency = 200 + rng.below(5_000),
                    )
                } else {
                    let model = openai_models[rng.below(3) as usize];
                    format!(
                        "{{\"id\":\"chatcmpl-{id:016x}\",\"object\":\"chat.completion\",\
                         \"created\":{at},\"model\":\"{model}\",\"service_tier\":\"default\",\
                         \"usage\":{{\"prompt_tokens\":{input},\"completion_tokens\":{output},\
                         \"total_tokens\":{total},\"prompt_tokens_details\":{{\
                         \"cached_tokens\":{cached}}},\"completion_tokens_details\":{{\
                         \"reasoning_tokens\":0}}}}}}\n",
                        id = rng.next(),
                        total = input + output,
                    )
                };
                out.write_all(line.as_bytes()).expect("write");
                in_file += line.len() as u64;
            }
            out.flush().expect("flush");
            in_kind += in_file;
            file_no += 1;
        }
        written += in_kind;
    }
    written
}

/// The live segments of `finops.usage_events` in the data directory at `dir` (those its newest
/// manifest lists; replaced files stay on disk for the 10-minute grace period of readers that
/// still hold an older snapshot) and their bytes.
fn parquet_files(dir: &Path) -> (usize, u64) {
    let Some(table) = std::fs::read_dir(dir.join("tables"))
        .ok()
        .and_then(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .find(|p| p.to_string_lossy().contains("finops.usage_events-"))
        })
    else {
        return (0, 0);
    };
    let newest = std::fs::read_dir(table.join("manifest"))
        .ok()
        .and_then(|entries| entries.flatten().map(|e| e.path()).max());
    let Some(manifest) = newest
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    else {
        return (0, 0);
    };
    let segments = manifest["segments"].as_array().cloned().unwrap_or_default();
    let bytes = segments.iter().filter_map(|s| s["bytes"].as_u64()).sum();
    (segments.len(), bytes)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let Some(data) = std::env::var_os("FINOPS_BENCH_DATA").map(PathBuf::from) else {
        eprintln!("workload bench: set FINOPS_BENCH_DATA (see benches/workload/run.sh); skipped");
        return;
    };
    let (chunks, rows, batches) = csv_chunks(&data).await;
    let csv_mb = chunks.iter().map(|c| c.len()).sum::<usize>() as f64 / 1e6;
    report(
        "input",
        serde_json::json!({ "rows": rows, "csv_mb": csv_mb }),
    );
    let copy_sql: &'static str = Box::leak(
        format!("COPY finops.usage_events ({COLUMNS}) FROM STDIN WITH (FORMAT csv)")
            .into_boxed_str(),
    );

    // COPY, four clients, on a fresh server (FINOPS_BENCH_SKIP_INGEST=1 skips the ingest
    // comparisons and only loads the data).
    let skip_ingest = std::env::var_os("FINOPS_BENCH_SKIP_INGEST").is_some();
    if !skip_ingest {
        let server = Server::start().await;
        let mut clients = Vec::new();
        for _ in 0..4 {
            clients.push(server.client().await);
        }
        let (rate, inserted) = copy_bench(clients, copy_sql, &chunks, rows).await;
        report(
            "copy_csv_4_clients",
            serde_json::json!({ "rows_per_s": rate, "inserted": inserted,
                                "server_peak_rss_mib": server.peak_rss_mib() }),
        );
    }

    // COPY, one client; then everything else on this server.
    let server = Server::start().await;
    let client = server.client().await;
    let (rate, inserted) = copy_bench(vec![server.client().await], copy_sql, &chunks, rows).await;
    report(
        "copy_csv_1_client",
        serde_json::json!({ "rows_per_s": rate, "inserted": inserted,
                            "server_peak_rss_mib": server.peak_rss_mib() }),
    );
    let again = copy_in(&client, copy_sql, &chunks[..chunks.len().min(16)]).await;
    report(
        "copy_reingest",
        serde_json::json!({ "inserted": again, "note": "overlapping re-ingest skips every row" }),
    );

    // PostgreSQL 15 COPY of the same CSV into an equivalent table.
    if let Ok(pg) = std::env::var("FINOPS_BENCH_PG")
        && !pg.is_empty()
    {
        let pg_client = connect(&pg).await;
        for clients in [1usize, 4] {
            pg_client
                .batch_execute(
                    "DROP TABLE IF EXISTS usage_events; CREATE TABLE usage_events (\
                     event_id text PRIMARY KEY, ts timestamptz NOT NULL, provider text NOT NULL, \
                     model text NOT NULL, team text, app text, feature text, user_id text, \
                     api_key_id text, project text, environment text, input_tokens bigint, \
                     cached_input_tokens bigint, cache_write_tokens bigint, output_tokens bigint, \
                     reasoning_tokens bigint, requests bigint DEFAULT 1, service_tier text, \
                     latency_ms bigint, status text, prompt_hash text, reported_cost numeric, \
                     tags text, source text)",
                )
                .await
                .expect("pg table");
            let mut pcs = Vec::new();
            for _ in 0..clients {
                pcs.push(connect(&pg).await);
            }
            let sql: &'static str = Box::leak(
                format!("COPY usage_events ({COLUMNS}) FROM STDIN WITH (FORMAT csv)")
                    .into_boxed_str(),
            );
            let (rate, inserted) = copy_bench(pcs, sql, &chunks, rows).await;
            report(
                &format!("postgres15_copy_csv_{clients}_clients"),
                serde_json::json!({ "rows_per_s": rate, "inserted": inserted }),
            );
        }
    }

    // 10,000 single-row INSERTs with parameters from 8 clients.
    if !skip_ingest {
        let mut tasks = Vec::new();
        for c in 0..8 {
            let client = server.client().await;
            tasks.push(tokio::spawn(async move {
                let statement = client
                    .prepare(
                        "INSERT INTO finops.usage_events (event_id, ts, provider, model, team, \
                         input_tokens, output_tokens) VALUES ($1, now(), 'openai', 'gpt-4o', $2, $3, $4)",
                    )
                    .await
                    .expect("prepare");
                let mut latencies = Vec::with_capacity(1250);
                for i in 0..1250i64 {
                    let id = format!("single-{c}-{i}");
                    let team = format!("team-{}", i % 7);
                    let started = Instant::now();
                    client
                        .execute(&statement, &[&id, &team, &(i * 10), &i])
                        .await
                        .expect("insert");
                    latencies.push(started.elapsed());
                }
                latencies
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("insert task"));
        }
        all.sort();
        report(
            "single_row_insert_8_clients",
            serde_json::json!({ "inserts": all.len(), "p50_ms": percentile(&all, 0.5),
                                "p99_ms": percentile(&all, 0.99) }),
        );
    }

    if std::env::var_os("FINOPS_BENCH_INGEST_ONLY").is_some() {
        return;
    }

    // Scan: finops-db's table against DataFusion over one well-formed Parquet file, once the
    // background compaction that follows the ingest has settled (the file count unchanged for
    // 20 s, at most 5 minutes).
    tokio::time::sleep(Duration::from_secs(15)).await;
    let (files, bytes) = parquet_files(&server.data_dir());
    report(
        "storage_after_ingest",
        serde_json::json!({ "live_segments": files, "bytes_per_row": bytes as f64 / rows as f64 }),
    );
    let settle = Instant::now();
    let mut last = parquet_files(&server.data_dir()).0;
    let mut steady = 0;
    while steady < 2 && settle.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let now = parquet_files(&server.data_dir()).0;
        steady = if now == last { steady + 1 } else { 0 };
        last = now;
    }
    let (files, bytes) = parquet_files(&server.data_dir());
    report(
        "storage_compacted",
        serde_json::json!({ "live_segments": files, "bytes_per_row": bytes as f64 / rows as f64,
                            "settled_after_s": 15.0 + settle.elapsed().as_secs_f64() }),
    );
    let scan = "SELECT team, SUM(input_tokens) FROM finops.usage_events GROUP BY team";
    let (finops_scan, _) = time_query(&client, scan, 5).await;
    let plain = tempfile::tempdir().expect("scratch");
    let plain_file = plain.path().join("usage_events.parquet");
    {
        let file = std::fs::File::create(&plain_file).expect("parquet file");
        let mut writer =
            datafusion::parquet::arrow::ArrowWriter::try_new(file, batches[0].schema(), None)
                .expect("writer");
        for b in &batches {
            writer.write(b).expect("write");
        }
        writer.close().expect("close");
    }
    let ctx = SessionContext::new();
    ctx.register_parquet(
        "usage_events",
        plain_file.to_string_lossy().as_ref(),
        ParquetReadOptions::default(),
    )
    .await
    .expect("plain parquet");
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        ctx.sql("SELECT team, SUM(input_tokens) FROM usage_events GROUP BY team")
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run");
        times.push(started.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    report(
        "scan_sum_by_team",
        serde_json::json!({ "finops_db_s": finops_scan, "datafusion_parquet_s": times[2],
                            "ratio": finops_scan / times[2] }),
    );

    // The generator's prices replace the catalog, so costs match the reference queries.
    let prices = data.join("model_prices.parquet");
    let budgets = data.join("budgets.parquet");
    for statement in [
        format!(
            "CREATE EXTERNAL TABLE bench_prices STORED AS PARQUET LOCATION '{}'",
            prices.display()
        ),
        format!(
            "CREATE EXTERNAL TABLE bench_budgets STORED AS PARQUET LOCATION '{}'",
            budgets.display()
        ),
        "DELETE FROM finops.model_prices".to_string(),
        "INSERT INTO finops.model_prices (provider, model, match, valid_from, valid_to, \
         input, output, cache_read, source) \
         SELECT provider, model, 'exact', valid_from, valid_to, input_per_mtok, \
         output_per_mtok, cached_input_per_mtok, 'benchmark generator' FROM bench_prices"
            .to_string(),
    ] {
        client
            .batch_execute(&statement)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    // New prices mark the views over finops.usage for a full refresh; have it done before the
    // timings, not beside them.
    client
        .batch_execute("REFRESH MATERIALIZED VIEW kpi.daily")
        .await
        .expect("refresh kpi.daily");

    // Pricing: the token_cost UDF against the equivalent range join, same engine.
    let udf = "SELECT SUM(token_cost(provider, model, input_tokens, output_tokens, \
               cached_input_tokens, 0, ts)) FROM finops.usage_events";
    let join = "SELECT SUM(((e.input_tokens - e.cached_input_tokens) * p.input \
                + e.cached_input_tokens * p.cache_read + e.output_tokens * p.output) / 1000000) \
                FROM finops.usage_events e JOIN finops.model_prices p \
                ON p.provider = e.provider AND p.model = e.model \
                AND e.ts >= COALESCE(p.valid_from, TIMESTAMP '1970-01-01 00:00:00') \
                AND (p.valid_to IS NULL OR e.ts < p.valid_to)";
    let (udf_s, _) = time_query(&client, udf, 3).await;
    let (join_s, _) = time_query(&client, join, 3).await;
    report(
        "pricing_udf_vs_join",
        serde_json::json!({ "rows": rows, "udf_s": udf_s, "join_s": join_s,
                            "speedup": join_s / udf_s,
                            "udf_rows_per_s": rows as f64 / udf_s }),
    );

    // The reference questions asked of finops.usage.
    let queries = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/workload/finops");
    for q in 1..=6 {
        let sql = std::fs::read_to_string(queries.join(format!("q{q}.sql"))).expect("query file");
        let (seconds, result_rows) = time_query(&client, &sql, 3).await;
        report(
            &format!("finops_q{q}"),
            serde_json::json!({ "median_s": seconds, "rows": result_rows }),
        );
    }

    // Materialized views: a manual copy of kpi.daily (the built-in one refreshes by itself after
    // ingest), created (a full refresh) and refreshed after 100,000 rows are appended (only the
    // days they touch are recomputed); the same for a single-scan view.
    let daily_sql =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/kpi/daily.sql"))
            .expect("kpi.daily definition")
            .replace(
                "kpi.daily WITH (refresh = 'auto')",
                "kpi.bench_daily WITH (refresh = 'manual')",
            );
    assert!(
        daily_sql.contains("kpi.bench_daily"),
        "kpi.daily's definition moved"
    );
    let started = Instant::now();
    client.batch_execute(&daily_sql).await.expect("bench_daily");
    let daily_full_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    client
        .batch_execute(
            "CREATE MATERIALIZED VIEW kpi.bench_team_day WITH (refresh = 'manual') AS \
             SELECT date_trunc('day', ts) AS day, team, model, SUM(requests) AS requests, \
             SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens, \
             COUNT(*) AS events FROM finops.usage_events \
             GROUP BY date_trunc('day', ts), team, model",
        )
        .await
        .expect("incremental view");
    let team_day_full_s = started.elapsed().as_secs_f64();
    // New event ids on the latest days (the generator writes rows in time order).
    let appended: Vec<Bytes> = chunks
        .iter()
        .rev()
        .take(100_000usize.div_ceil(8192))
        .map(|c| {
            Bytes::from(
                String::from_utf8_lossy(c)
                    .lines()
                    .map(|l| format!("new-{l}\n"))
                    .collect::<String>(),
            )
        })
        .collect();
    let added = copy_in(&client, copy_sql, &appended).await;
    // The built-in kpi.daily refreshes itself after that append; let it finish (a REFRESH waits
    // for a running one) so it does not share the CPU with the refreshes timed below.
    client
        .batch_execute("REFRESH MATERIALIZED VIEW kpi.daily")
        .await
        .expect("refresh kpi.daily");
    let (daily_inc_s, _) =
        time_query(&client, "REFRESH MATERIALIZED VIEW kpi.bench_daily", 1).await;
    let (team_day_inc_s, _) =
        time_query(&client, "REFRESH MATERIALIZED VIEW kpi.bench_team_day", 1).await;
    let kinds = client
        .simple_query(
            "SELECT name, CAST(incremental AS VARCHAR) FROM finops.materialized_views \
             WHERE name LIKE 'kpi.bench%'",
        )
        .await
        .expect("views");
    let incremental: Vec<String> = kinds
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(format!(
                "{}={}",
                r.get(0).unwrap_or(""),
                r.get(1).unwrap_or("")
            )),
            _ => None,
        })
        .collect();
    report(
        "materialized_views",
        serde_json::json!({ "kpi_daily_full_refresh_s": daily_full_s,
                            "appended_rows": added,
                            "kpi_daily_incremental_refresh_s": daily_inc_s,
                            "kpi_daily_incremental_over_full": daily_inc_s / daily_full_s,
                            "team_day_full_refresh_s": team_day_full_s,
                            "team_day_incremental_refresh_s": team_day_inc_s,
                            "team_day_incremental_over_full": team_day_inc_s / team_day_full_s,
                            "incremental": incremental }),
    );
    client
        .batch_execute("REFRESH MATERIALIZED VIEW kpi.daily")
        .await
        .expect("refresh");
    for (name, sql) in [
        (
            "spend_by_team_30d",
            "SELECT team, SUM(cost) FROM kpi.daily WHERE day >= TIMESTAMP '2025-05-16 00:00:00' GROUP BY team ORDER BY 2 DESC",
        ),
        (
            "cost_per_feature",
            "SELECT feature, SUM(cost) / SUM(requests) AS cost_per_request FROM kpi.daily GROUP BY feature ORDER BY 2 DESC",
        ),
        (
            "redundant_pct",
            "SELECT 100.0 * SUM(redundant_requests) / SUM(requests) FROM kpi.daily",
        ),
    ] {
        let mut times = Vec::new();
        for _ in 0..50 {
            let started = Instant::now();
            client.simple_query(sql).await.expect("dashboard");
            times.push(started.elapsed());
        }
        times.sort();
        report(
            &format!("dashboard_{name}"),
            serde_json::json!({ "p50_ms": percentile(&times, 0.5), "p99_ms": percentile(&times, 0.99) }),
        );
    }

    // Every check as the scheduler runs them: their SQL, one after another, "now" being the end
    // of the generated data (its last day and month are what the checks look at).
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(data.join("meta.json")).expect("generator meta.json"),
    )
    .expect("meta.json");
    let end = format!(
        "{}T00:00:00Z",
        meta["end_exclusive"].as_str().expect("end_exclusive")
    );
    client
        .batch_execute(&format!("SET finops.as_of = '{end}'"))
        .await
        .expect("as_of");
    let checks = client
        .query("SELECT name, sql FROM finops.checks WHERE enabled", &[])
        .await
        .expect("checks");
    let started = Instant::now();
    for row in &checks {
        let (name, sql): (String, String) = (row.get(0), row.get(1));
        client
            .simple_query(&sql)
            .await
            .unwrap_or_else(|e| panic!("check {name}: {e}"));
    }
    report(
        "all_checks",
        serde_json::json!({ "checks": checks.len(), "total_s": started.elapsed().as_secs_f64(),
                            "as_of": end }),
    );
    // The same as `finops-db check --server` runs them: run_checks() records the alerts too.
    let (run_checks_s, raised) = time_query(&client, "SELECT * FROM run_checks()", 1).await;
    report(
        "run_checks",
        serde_json::json!({ "total_s": run_checks_s, "alerts": raised }),
    );
    client
        .batch_execute("SET finops.as_of = ''")
        .await
        .expect("as_of");

    // Hard caps: point queries and reservations from 32 clients.
    client
        .batch_execute(
            "INSERT INTO finops.budgets (budget_id, scope, scope_value, period, amount, hard_cap) \
             VALUES ('bench-cap', 'team', 'search', 'month', 1000000000, true)",
        )
        .await
        .expect("cap budget");
    for (name, sql) in [
        (
            "cap_status_point",
            "SELECT remaining, allowed FROM finops.cap_status WHERE budget_id = 'bench-cap'",
        ),
        ("reserve", "SELECT finops.reserve('team', 'search', 0.0001)"),
    ] {
        let mut tasks = Vec::new();
        let started = Instant::now();
        for _ in 0..32 {
            let client = server.client().await;
            tasks.push(tokio::spawn(async move {
                let statement = client.prepare(sql).await.expect("prepare");
                let mut latencies = Vec::with_capacity(300);
                for _ in 0..300 {
                    let t = Instant::now();
                    client.query(&statement, &[]).await.expect(sql);
                    latencies.push(t.elapsed());
                }
                latencies
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("client task"));
        }
        let elapsed = started.elapsed().as_secs_f64();
        all.sort();
        report(
            &format!("{name}_32_clients"),
            serde_json::json!({ "calls": all.len(), "p50_ms": percentile(&all, 0.5),
                                "p99_ms": percentile(&all, 0.99),
                                "calls_per_s": all.len() as f64 / elapsed }),
        );
    }
    let rss_before_exports = server.peak_rss_mib();

    // Provider exports where they lie: FINOPS_BENCH_EXPORT_MB (default 1,000) MB of Bedrock and
    // OpenAI JSON lines, scanned a first time (parsed) and again (parse cache) by the provider
    // tables alone in this process, then `finops.usage` by provider with them registered on the
    // server beside the native rows.
    let export_mb: u64 = std::env::var("FINOPS_BENCH_EXPORT_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let exports = tempfile::tempdir().expect("scratch");
    let export_bytes = write_exports(exports.path(), export_mb * 1_000_000);
    let tables = [
        ("bench_bedrock", "BEDROCK_INVOCATIONS", "bedrock"),
        ("bench_openai", "OPENAI_REQUESTS", "openai"),
    ];
    {
        let ctx = SessionContext::new();
        finops_db::providers::register_factories_in(
            &ctx,
            std::sync::Arc::new(finops_db::providers::ProviderTableFactory::new()),
        );
        for (name, format, folder) in tables {
            ctx.sql(&format!(
                "CREATE EXTERNAL TABLE {name} STORED AS {format} LOCATION '{}'",
                exports.path().join(folder).display()
            ))
            .await
            .expect("provider table")
            .collect()
            .await
            .expect("provider table");
        }
        let scan = "SELECT (SELECT count(*) + sum(input_token_count) FROM bench_bedrock) \
                    + (SELECT count(*) + sum(total_tokens) FROM bench_openai)";
        let mut times = Vec::new();
        let mut records = 0;
        for _ in 0..4 {
            let started = Instant::now();
            let batches = ctx
                .sql(scan)
                .await
                .expect("scan")
                .collect()
                .await
                .expect("scan");
            times.push(started.elapsed().as_secs_f64());
            records = datafusion::arrow::array::AsArray::as_primitive::<
                datafusion::arrow::datatypes::Int64Type,
            >(batches[0].column(0))
            .value(0);
        }
        let first_s = times[0];
        let mut repeats = times[1..].to_vec();
        repeats.sort_by(f64::total_cmp);
        let repeat_s = repeats[repeats.len() / 2];
        report(
            "provider_exports_scan",
            serde_json::json!({ "bytes": export_bytes, "records_plus_tokens": records,
                                "first_s": first_s,
                                "first_mb_per_s": export_bytes as f64 / 1e6 / first_s,
                                "repeat_s": repeat_s, "repeat_speedup": first_s / repeat_s }),
        );
    }
    for (name, format, folder) in tables {
        client
            .batch_execute(&format!(
                "CREATE EXTERNAL TABLE providers.{name} STORED AS {format} LOCATION '{}'",
                exports.path().join(folder).display()
            ))
            .await
            .expect("provider table");
    }
    // The views over finops.usage refresh after the new tables; let that finish first.
    client
        .batch_execute("REFRESH MATERIALIZED VIEW kpi.daily")
        .await
        .expect("refresh kpi.daily");
    let (usage_s, providers) = time_query(
        &client,
        "SELECT provider, sum(cost) FROM finops.usage GROUP BY 1",
        3,
    )
    .await;
    report(
        "usage_by_provider_with_exports",
        serde_json::json!({ "native_rows": rows, "median_s": usage_s, "providers": providers,
                            "server_peak_rss_mib": server.peak_rss_mib(),
                            "server_rss_now_mib": proc_status_mib(server.child.id(), "VmRSS:") }),
    );
    report(
        "server",
        serde_json::json!({ "peak_rss_mib": rss_before_exports,
                            "peak_rss_mib_with_exports": server.peak_rss_mib() }),
    );
}
