//! Test support shared by the integration tests and benches: a server on a free loopback port,
//! and Postgres text rendering of in-process results so both paths print values the same way.
//!
//! Not for production use; it has no state of its own.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::{Config, DEFAULT_PASSWORD, DEFAULT_USER};
use crate::copy::text_rows;
use crate::engine::{Engine, Output, Session};
use crate::error::{Error, Result};
use crate::server::Server;

/// A server running in this process on `127.0.0.1:<free port>`.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The engine it serves.
    pub engine: Arc<Engine>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<()>>>,
}

impl TestServer {
    /// Start a server for `config` (its `listen` is replaced by `127.0.0.1:0`).
    pub async fn start(config: Config) -> Result<TestServer> {
        Self::start_with(config, crate::storage::StorageOptions::default()).await
    }

    /// [`TestServer::start`] with explicit storage options (e.g. small COPY chunks).
    pub async fn start_with(
        mut config: Config,
        storage: crate::storage::StorageOptions,
    ) -> Result<TestServer> {
        config.listen = "127.0.0.1:0".to_string();
        let engine = Engine::open_with(config.clone(), storage).await?;
        let server = Server::bind(Arc::clone(&engine), &config).await?;
        let addr = server.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        Ok(TestServer {
            addr,
            engine,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// A libpq connection string for `user`/`password`.
    pub fn conn_str_as(&self, user: &str, password: &str) -> String {
        format!(
            "host={} port={} user={user} password={password} dbname=finops",
            self.addr.ip(),
            self.addr.port()
        )
    }

    /// A libpq connection string for the default user.
    pub fn conn_str(&self) -> String {
        self.conn_str_as(DEFAULT_USER, DEFAULT_PASSWORD)
    }

    /// Stop accepting connections and wait for the accept loop to end.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|e| Error::Internal(format!("server task: {e}")))?,
            None => Ok(()),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Run `sql` in `session` and render the last statement's result as text rows, or the count of a
/// command.
pub async fn run_text(session: &Session, sql: &str) -> Result<TextOutput> {
    let mut last = TextOutput::Command(0);
    for output in session.sql(sql).await? {
        last = match output {
            Output::Rows(df) => TextOutput::Rows(text_rows(&df.collect().await?)?),
            Output::Batches(_, batches) | Output::Returned { batches, .. } => {
                TextOutput::Rows(text_rows(&batches)?)
            }
            Output::Command { rows, .. } => TextOutput::Command(rows.unwrap_or(0) as u64),
        };
    }
    Ok(last)
}

/// A statement's result as text.
#[derive(Debug, PartialEq)]
pub enum TextOutput {
    /// Rows of text values.
    Rows(Vec<Vec<Option<String>>>),
    /// A command and the rows it affected.
    Command(u64),
}
