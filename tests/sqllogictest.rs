//! Runs every `tests/slt/**/*.slt` file twice: in-process against an engine session, and over the
//! wire through a real `tokio-postgres` client against a server on a free loopback port. Both
//! render values as Postgres text, so one expected file serves both.
//!
//! `FINOPS_SLT_COMPLETE=1 cargo test --test sqllogictest` rewrites the files from in-process
//! results; `FINOPS_SLT_FILTER=<substring>` runs only matching files.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use finops_db::config::Config;
use finops_db::engine::Identity;
use finops_db::server::sqlstate;
use finops_db::testing::{TestServer, TextOutput, run_text};
use sqllogictest::{DBOutput, DefaultColumnType, Runner};

#[derive(Debug)]
struct SqlError {
    code: String,
    message: String,
}

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for SqlError {}

fn render(rows: Vec<Vec<Option<String>>>) -> DBOutput<DefaultColumnType> {
    let width = rows.first().map(Vec::len).unwrap_or(0);
    DBOutput::Rows {
        types: vec![DefaultColumnType::Any; width],
        rows: rows
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|v| match v {
                        None => "NULL".to_string(),
                        Some(s) if s.is_empty() => "(empty)".to_string(),
                        Some(s) => s,
                    })
                    .collect()
            })
            .collect(),
    }
}

struct InProcess {
    session: finops_db::Session,
}

#[async_trait]
impl sqllogictest::AsyncDB for InProcess {
    type Error = SqlError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SqlError> {
        match run_text(&self.session, sql).await {
            Ok(TextOutput::Rows(rows)) => Ok(render(rows)),
            Ok(TextOutput::Command(n)) => Ok(DBOutput::StatementComplete(n)),
            Err(e) => {
                let info = sqlstate::error_info(&e);
                Err(SqlError {
                    code: info.code,
                    message: info.message,
                })
            }
        }
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "in-process"
    }

    async fn sleep(dur: std::time::Duration) {
        tokio::time::sleep(dur).await;
    }

    fn error_sql_state(err: &SqlError) -> Option<String> {
        Some(err.code.clone())
    }
}

struct Wire {
    client: tokio_postgres::Client,
}

#[async_trait]
impl sqllogictest::AsyncDB for Wire {
    type Error = SqlError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SqlError> {
        let messages = self
            .client
            .simple_query(sql)
            .await
            .map_err(|e| match e.as_db_error() {
                Some(db) => SqlError {
                    code: db.code().code().to_string(),
                    message: db.message().to_string(),
                },
                None => SqlError {
                    code: "XX000".into(),
                    message: e.to_string(),
                },
            })?;
        let mut rows = Vec::new();
        let mut saw_rows = false;
        let mut count = 0;
        for message in messages {
            match message {
                tokio_postgres::SimpleQueryMessage::Row(row) => {
                    saw_rows = true;
                    rows.push(
                        (0..row.len())
                            .map(|i| row.get(i).map(str::to_string))
                            .collect(),
                    );
                }
                tokio_postgres::SimpleQueryMessage::RowDescription(_) => {
                    saw_rows = true;
                    rows.clear();
                }
                tokio_postgres::SimpleQueryMessage::CommandComplete(n) => count = n,
                _ => {}
            }
        }
        if saw_rows {
            Ok(render(rows))
        } else {
            Ok(DBOutput::StatementComplete(count))
        }
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "wire"
    }

    async fn sleep(dur: std::time::Duration) {
        tokio::time::sleep(dur).await;
    }

    fn error_sql_state(err: &SqlError) -> Option<String> {
        Some(err.code.clone())
    }
}

fn slt_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "slt")
                && !path.to_string_lossy().contains("/include/")
            {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt"),
        &mut files,
    );
    files.sort();
    let filter = std::env::var("FINOPS_SLT_FILTER").unwrap_or_default();
    files.retain(|f| f.to_string_lossy().contains(&filter));
    files
}

fn config_for(dir: &Path) -> Config {
    Config {
        data_dir: dir.to_string_lossy().into_owned(),
        ..Config::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slt_in_process() {
    let files = slt_files();
    assert!(!files.is_empty(), "no .slt files found");
    let complete = std::env::var("FINOPS_SLT_COMPLETE").is_ok();
    let mut failures = Vec::new();
    for file in &files {
        let dir = tempfile::tempdir().expect("scratch dir");
        let engine = finops_db::Engine::open(config_for(dir.path()))
            .await
            .expect("engine opens");
        let mut runner = Runner::new(move || {
            let engine = engine.clone();
            async move {
                Ok(InProcess {
                    session: engine
                        .session(Identity::local_admin())
                        .expect("session opens"),
                })
            }
        });
        if complete {
            runner
                .update_test_file(
                    file,
                    " ",
                    sqllogictest::default_validator,
                    sqllogictest::default_normalizer,
                    sqllogictest::default_column_validator,
                )
                .await
                .expect("rewrites file");
            continue;
        }
        runner.with_column_validator(|_, _| true);
        if let Err(e) = runner.run_file_async(file).await {
            failures.push(format!("{}: {e}", file.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} file(s) failed in process:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slt_over_the_wire() {
    let files = slt_files();
    assert!(!files.is_empty(), "no .slt files found");
    let mut failures = Vec::new();
    for file in &files {
        let dir = tempfile::tempdir().expect("scratch dir");
        let server = TestServer::start(config_for(dir.path()))
            .await
            .expect("server starts");
        let conn_str = server.conn_str();
        let mut runner = Runner::new(move || {
            let conn_str = conn_str.clone();
            async move {
                let (client, connection) =
                    tokio_postgres::connect(&conn_str, tokio_postgres::NoTls)
                        .await
                        .map_err(|e| SqlError {
                            code: "08000".into(),
                            message: e.to_string(),
                        })?;
                tokio::spawn(connection);
                Ok(Wire { client })
            }
        });
        runner.with_column_validator(|_, _| true);
        if let Err(e) = runner.run_file_async(file).await {
            failures.push(format!("{}: {e}", file.display()));
        }
        server.stop().await.expect("server stops");
    }
    assert!(
        failures.is_empty(),
        "{} file(s) failed over the wire:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
