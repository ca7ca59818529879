//! Durability under `kill -9` (SPEC 3.9): the real `finops-db serve` binary takes concurrent
//! INSERT and COPY FROM STDIN writers, is killed with SIGKILL at a random moment, and restarted on
//! the same data directory, a few times over. Every acknowledged statement must be there exactly
//! once, and every statement (acknowledged or not) must be there entirely or not at all.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::SinkExt;
use rand::Rng;
use tokio_postgres::{Client, NoTls};

const WRITERS: usize = 4;
const ROUNDS: usize = 3;

/// A server process and the address it listens on.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    /// Start `finops-db serve` on a free port (`127.0.0.1:0`, the bound address read from its log).
    fn start(data_dir: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_finops-db"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("server starts");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            // Keep draining the log so the server never blocks on a full pipe.
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1)
                    && let Some(tx) = tx.take()
                {
                    let addr = rest.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server reports its address");
        Server { child, addr }
    }

    fn conn_str(&self) -> String {
        let (host, port) = self.addr.rsplit_once(':').expect("host:port");
        format!("host={host} port={port} user=finops password=finops dbname=finops")
    }

    /// SIGKILL, as `Child::kill` is on Unix: no shutdown code runs.
    fn kill(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn connect(conn_str: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(conn_str, NoTls)
        .await
        .expect("connects");
    tokio::spawn(connection);
    client
}

/// One statement: the event ids it writes.
#[derive(Debug, Clone)]
struct Statement {
    ids: Vec<String>,
}

#[derive(Default)]
struct Log {
    attempted: Vec<Statement>,
    acknowledged: Vec<Statement>,
}

/// Write statements until the connection fails; every statement goes in `log.attempted` before
/// it is sent and in `log.acknowledged` once the server said so.
async fn writer(conn_str: String, round: usize, writer: usize, log: Arc<Mutex<Log>>) {
    let Ok((client, connection)) = tokio_postgres::connect(&conn_str, NoTls).await else {
        return;
    };
    tokio::spawn(connection);
    for seq in 0.. {
        let rows = rand::rng().random_range(1..=20);
        let ids: Vec<String> = (0..rows)
            .map(|k| format!("r{round}-w{writer}-s{seq}-{k}"))
            .collect();
        log.lock()
            .expect("log")
            .attempted
            .push(Statement { ids: ids.clone() });
        let written = if seq % 2 == 0 {
            let values: Vec<String> = ids
                .iter()
                .map(|id| {
                    format!(
                        "('{id}', TIMESTAMPTZ '2025-06-01T00:00:00Z', 'openai', 'gpt-4o', 10, 5)"
                    )
                })
                .collect();
            client
                .execute(
                    &format!(
                        "INSERT INTO finops.usage_events (event_id, ts, provider, model, input_tokens, output_tokens) VALUES {}",
                        values.join(", ")
                    ),
                    &[],
                )
                .await
        } else {
            copy(&client, &ids).await
        };
        match written {
            Ok(n) => {
                assert_eq!(n as usize, ids.len(), "every row of a new statement is new");
                log.lock()
                    .expect("log")
                    .acknowledged
                    .push(Statement { ids });
            }
            Err(_) => return,
        }
    }
}

async fn copy(client: &Client, ids: &[String]) -> Result<u64, tokio_postgres::Error> {
    let sink = client
        .copy_in(
            "COPY finops.usage_events (event_id, ts, provider, model, input_tokens) FROM STDIN WITH (FORMAT csv)",
        )
        .await?;
    futures::pin_mut!(sink);
    let body: String = ids
        .iter()
        .map(|id| format!("{id},2025-06-01T00:00:01Z,anthropic,claude-3-5-haiku,7\n"))
        .collect();
    sink.send(bytes::Bytes::from(body)).await?;
    sink.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().expect("data dir");
    let log = Arc::new(Mutex::new(Log::default()));
    for round in 0..ROUNDS {
        let server = Server::start(dir.path());
        let conn_str = server.conn_str();
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| tokio::spawn(writer(conn_str.clone(), round, w, Arc::clone(&log))))
            .collect();
        // Kill once every writer is likely under way (a loaded machine starts slowly), at a random
        // moment after that.
        let before = log.lock().expect("log").acknowledged.len();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while log.lock().expect("log").acknowledged.len() < before + WRITERS
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let delay = rand::rng().random_range(0..600);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        server.kill();
        for task in tasks {
            task.await.expect("writer task");
        }
    }

    let server = Server::start(dir.path());
    let client = connect(&server.conn_str()).await;
    let rows = client
        .query(
            "SELECT event_id, count(*) AS n FROM finops.usage_events GROUP BY event_id",
            &[],
        )
        .await
        .expect("read back");
    let stored: HashMap<String, i64> = rows
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
        .collect();
    let log = log.lock().expect("log");
    eprintln!(
        "{} statements attempted, {} acknowledged, {} rows stored",
        log.attempted.len(),
        log.acknowledged.len(),
        stored.len()
    );
    assert!(
        log.acknowledged.len() >= ROUNDS,
        "the writers got going: {} statements acknowledged",
        log.acknowledged.len()
    );
    for (id, n) in &stored {
        assert_eq!(*n, 1, "{id} stored {n} times");
    }
    for statement in &log.acknowledged {
        for id in &statement.ids {
            assert!(stored.contains_key(id), "acknowledged {id} lost");
        }
    }
    let mut present_statements = 0;
    for statement in &log.attempted {
        let present = statement
            .ids
            .iter()
            .filter(|id| stored.contains_key(*id))
            .count();
        assert!(
            present == 0 || present == statement.ids.len(),
            "statement half-present: {present} of {:?}",
            statement.ids
        );
        if present > 0 {
            present_statements += 1;
        }
    }
    let total: usize = log.attempted.iter().map(|s| s.ids.len()).sum();
    assert!(stored.len() <= total, "no row from nowhere");
    assert!(present_statements >= log.acknowledged.len());
    server.kill();
}
