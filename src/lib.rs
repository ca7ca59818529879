//! finops-db: the FinOps database for AI APIs.
//!
//! Opens a data directory, registers the FinOps tables, UDFs and views in a DataFusion
//! `SessionContext`, and serves them over the Postgres wire protocol.

pub mod error;
pub mod schema;
pub mod storage;

pub use error::{Error, ErrorKind, Result};
