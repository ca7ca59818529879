//! Result streaming and connection latency over the wire, against the same query in process.
//!
//! A 1,000,000-row × 8-column result (ints, text, numeric, timestamptz) read by `tokio-postgres`
//! in binary (extended protocol) and text (simple protocol), the same query collected in process,
//! and connect + `SELECT 1` round trips on loopback. The binary result is read twice: by the
//! benchmark's own thread (`block_on`), and by a task on the runtime beside the client's
//! connection, as a service built on tokio reads it.
//!
//! The same two reads from a replay server, which answers with the bytes finops-db sent for them
//! (recorded once through a proxy) and does no other work, measure the client's own ceiling.
//!
//! With `FINOPS_BENCH_PG` set (a libpq URL of a PostgreSQL server, with a password if it asks for
//! one), the same reads and round trips run against it too, on an equivalent table and query.

use std::sync::Arc;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use finops_db::config::{Config, DEFAULT_PASSWORD, DEFAULT_USER};
use finops_db::engine::Identity;
use finops_db::testing::TestServer;
use futures::{StreamExt, pin_mut};
use tokio::runtime::Runtime;
use tokio_postgres::{Client, NoTls};

#[path = "wire/replay.rs"]
mod replay;

const ROWS: u64 = 1_000_000;

const QUERY: &str = "SELECT v AS id, CAST(v % 1000 AS INT) AS bucket, v * 3 AS tokens, \
    CAST(v % 97 AS BIGINT) AS requests, 'team-' || CAST(v % 20 AS TEXT) AS team, \
    'model-' || CAST(v % 25 AS TEXT) AS model, CAST(v AS DECIMAL(38, 12)) / 1000 AS cost, \
    to_timestamp(1700000000 + v) AS ts FROM wide";

/// The same result from PostgreSQL.
const PG_QUERY: &str = "SELECT v AS id, (v % 1000)::int AS bucket, v * 3 AS tokens, \
    (v % 97)::bigint AS requests, 'team-' || (v % 20)::text AS team, \
    'model-' || (v % 25)::text AS model, v::numeric(38, 12) / 1000 AS cost, \
    to_timestamp(1700000000 + v) AS ts FROM wide";

async fn connect(conn_str: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(conn_str, NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
}

/// Read `query`'s rows in binary, checking their count.
async fn read_binary(client: &Client, query: &str) {
    let stream = client
        .query_raw(query, std::iter::empty::<i32>())
        .await
        .expect("query");
    pin_mut!(stream);
    let mut n = 0u64;
    while let Some(row) = stream.next().await {
        let row = row.expect("row");
        std::hint::black_box(row.get::<_, i64>(0));
        n += 1;
    }
    assert_eq!(n, ROWS);
}

/// The streaming reads of `query` through `client`.
fn wire_reads(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    prefix: &str,
    client: &Arc<Client>,
    query: &'static str,
) {
    group.bench_function(format!("{prefix}wire_binary"), |b| {
        b.to_async(rt).iter(|| read_binary(client, query))
    });
    group.bench_function(format!("{prefix}wire_binary_task"), |b| {
        b.to_async(rt).iter(|| {
            let client = Arc::clone(client);
            async move {
                tokio::spawn(async move { read_binary(&client, query).await })
                    .await
                    .expect("reader task")
            }
        })
    });
    group.bench_function(format!("{prefix}wire_text"), |b| {
        b.to_async(rt).iter(|| async {
            let messages = client.simple_query(query).await.expect("query");
            let n = messages
                .iter()
                .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
                .count();
            assert_eq!(n as u64, ROWS);
        })
    });
}

/// Connect + `SELECT 1`, and `SELECT 1` alone on `client`.
fn round_trips(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    prefix: &str,
    conn_str: &str,
    client: &Client,
) {
    group.bench_function(format!("{prefix}connect_and_select_1"), |b| {
        b.to_async(rt).iter(|| async {
            let (client, conn) = tokio_postgres::connect(conn_str, NoTls)
                .await
                .expect("connect");
            let handle = tokio::spawn(conn);
            client.simple_query("SELECT 1").await.expect("select 1");
            drop(client);
            let _ = handle.await;
        })
    });
    group.bench_function(format!("{prefix}select_1_round_trip"), |b| {
        b.to_async(rt).iter(|| async {
            client.simple_query("SELECT 1").await.expect("select 1");
        })
    });
}

fn streaming(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("scratch dir");
    let config = Config {
        data_dir: dir.path().to_string_lossy().into_owned(),
        ..Config::default()
    };
    let (server, client) = rt.block_on(async {
        let server = TestServer::start(config).await.expect("server");
        let client = connect(&server.conn_str()).await;
        client
            .batch_execute(&format!(
                "CREATE TABLE wide AS SELECT value AS v FROM range(0, {ROWS})"
            ))
            .await
            .expect("create");
        (server, Arc::new(client))
    });
    let postgres = std::env::var("FINOPS_BENCH_PG")
        .ok()
        .filter(|url| !url.is_empty())
        .map(|url| {
            let client = rt.block_on(async {
                let client = connect(&url).await;
                client
                    .batch_execute(&format!(
                        "DROP TABLE IF EXISTS wide; \
                         CREATE TABLE wide AS SELECT v FROM generate_series(0::bigint, {}) v",
                        ROWS - 1
                    ))
                    .await
                    .expect("create in PostgreSQL");
                client
            });
            (url, Arc::new(client))
        });
    // Record finops-db's answers to a binary and a text read, then serve them from memory.
    let replayed = rt.block_on(async {
        let (addr, recorded) = replay::proxy(server.addr).await;
        let client = connect(&format!(
            "host=127.0.0.1 port={} user={DEFAULT_USER} password={DEFAULT_PASSWORD} dbname=finops",
            addr.port()
        ))
        .await;
        read_binary(&client, QUERY).await;
        client.simple_query(QUERY).await.expect("text read");
        drop(client);
        let recording = replay::Recording::from_session(&recorded.await.expect("proxy"));
        let addr = replay::serve(recording);
        Arc::new(
            connect(&format!(
                "host=127.0.0.1 port={} user=finops dbname=finops",
                addr.port()
            ))
            .await,
        )
    });
    let session = server
        .engine
        .session(Identity::local_admin())
        .expect("session");

    let mut group = c.benchmark_group("result_streaming_1m_x8");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(ROWS));
    group.bench_function("in_process", |b| {
        b.to_async(&rt).iter(|| async {
            let batches = session.query(QUERY).await.expect("query");
            let n: usize = batches.iter().map(|b| b.num_rows()).sum();
            assert_eq!(n as u64, ROWS);
        })
    });
    wire_reads(&mut group, &rt, "", &client, QUERY);
    wire_reads(&mut group, &rt, "client_ceiling_", &replayed, QUERY);
    if let Some((_, pg)) = &postgres {
        wire_reads(&mut group, &rt, "postgres_", pg, PG_QUERY);
    }
    group.finish();

    let mut group = c.benchmark_group("connect");
    group.sample_size(50);
    round_trips(&mut group, &rt, "", &server.conn_str(), &client);
    if let Some((url, pg)) = &postgres {
        round_trips(&mut group, &rt, "postgres_", url, pg);
    }
    group.finish();
}

criterion_group!(benches, streaming);
criterion_main!(benches);
