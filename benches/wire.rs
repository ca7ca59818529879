//! Result streaming and connection latency over the wire, against the same query in process.
//!
//! A 1,000,000-row × 8-column result (ints, text, numeric, timestamptz) read by `tokio-postgres`
//! in binary (extended protocol) and text (simple protocol), the same query collected in process,
//! and connect + `SELECT 1` round trips on loopback.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use finops_db::config::Config;
use finops_db::engine::Identity;
use finops_db::testing::TestServer;
use futures::{StreamExt, pin_mut};
use tokio_postgres::NoTls;

const ROWS: u64 = 1_000_000;

const QUERY: &str = "SELECT v AS id, CAST(v % 1000 AS INT) AS bucket, v * 3 AS tokens, \
    CAST(v % 97 AS BIGINT) AS requests, 'team-' || CAST(v % 20 AS TEXT) AS team, \
    'model-' || CAST(v % 25 AS TEXT) AS model, CAST(v AS DECIMAL(38, 12)) / 1000 AS cost, \
    to_timestamp(1700000000 + v) AS ts FROM wide";

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
        let (client, conn) = tokio_postgres::connect(&server.conn_str(), NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        client
            .batch_execute(&format!(
                "CREATE TABLE wide AS SELECT value AS v FROM range(0, {ROWS})"
            ))
            .await
            .expect("create");
        (server, client)
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
    group.bench_function("wire_binary", |b| {
        b.to_async(&rt).iter(|| async {
            let stream = client
                .query_raw(QUERY, std::iter::empty::<i32>())
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
        })
    });
    group.bench_function("wire_text", |b| {
        b.to_async(&rt).iter(|| async {
            let messages = client.simple_query(QUERY).await.expect("query");
            let n = messages
                .iter()
                .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
                .count();
            assert_eq!(n as u64, ROWS);
        })
    });
    group.finish();

    let conn_str = server.conn_str();
    let mut group = c.benchmark_group("connect");
    group.sample_size(50);
    group.bench_function("connect_and_select_1", |b| {
        b.to_async(&rt).iter(|| async {
            let (client, conn) = tokio_postgres::connect(&conn_str, NoTls)
                .await
                .expect("connect");
            let handle = tokio::spawn(conn);
            client.simple_query("SELECT 1").await.expect("select 1");
            drop(client);
            let _ = handle.await;
        })
    });
    group.bench_function("select_1_round_trip", |b| {
        b.to_async(&rt).iter(|| async {
            client.simple_query("SELECT 1").await.expect("select 1");
        })
    });
    group.finish();
}

criterion_group!(benches, streaming);
criterion_main!(benches);
