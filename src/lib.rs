//! finops-db: the FinOps database for AI APIs.
//!
//! Opens a data directory, registers the FinOps tables, UDFs and views in a DataFusion
//! `SessionContext`, and serves them over the Postgres wire protocol.
//!
//! ```no_run
//! # async fn demo() -> finops_db::Result<()> {
//! let config = finops_db::config::Config::default();
//! let engine = finops_db::Engine::open(config).await?;
//! let session = engine.session(finops_db::engine::Identity::local_admin())?;
//! let batches = session.query("SELECT version()").await?;
//! # Ok(()) }
//! ```

pub mod access;
pub mod activity;
pub mod adjustments;
pub mod attribution;
pub mod budget;
pub mod builtin_sql;
pub mod catalog;
pub mod config;
pub mod copy;
pub mod demo;
pub mod engine;
pub mod error;
pub mod executor;
pub mod ingest;
pub mod ingest_errors;
pub mod json;
pub mod live;
pub mod materialized;
pub mod ownership;
pub mod pricing;
pub mod providers;
pub mod schema;
pub mod server;
pub mod statements;
pub mod storage;
pub mod swap;
pub mod testing;
pub mod usage;
pub mod utc_time;

pub use engine::{Engine, Session};

/// Lock `mutex`, taking its value even if a holder panicked: every mutex this is used on
/// guards plain data its holders copy in and out or replace whole, so a poisoned value is
/// still whole.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
pub use error::{Error, ErrorKind, Result};
