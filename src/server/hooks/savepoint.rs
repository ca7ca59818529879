//! `SAVEPOINT`, `RELEASE` and `ROLLBACK TO SAVEPOINT`, which drivers (psycopg 3, SQLAlchemy) send
//! around statements.
//!
//! Every finops-db statement is atomic on its own, so a savepoint has no writes to undo. What it
//! has is Postgres's bookkeeping, which clients rely on: the names defined in the current
//! transaction block (`RELEASE` or `ROLLBACK TO` an unknown one is `3B001`), savepoints only
//! inside a block (`25P01`), nothing but `ROLLBACK [TO]` in a failed block (`25P02`), and
//! `ROLLBACK TO` taking a failed block back to a usable one, as psycopg's nested
//! `conn.transaction()` does after an error.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Ident, Statement};
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use pgwire::api::ClientInfo;
use pgwire::api::results::{Response, Tag};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::response::TransactionStatus;

use crate::server::sqlstate;

/// `25P01` no active SQL transaction.
const NO_ACTIVE_TRANSACTION: &str = "25P01";
/// `3B001` invalid savepoint specification.
const INVALID_SAVEPOINT: &str = "3B001";

/// The savepoints of one connection's transaction block.
#[derive(Debug, Default)]
pub struct Savepoints {
    /// Defined savepoints, oldest first (a name may repeat; the newest wins, as in Postgres).
    names: Vec<String>,
    /// Set by a `ROLLBACK TO` that succeeded: the block is usable again. The protocol layer
    /// takes it once the statement's response is out and sets the transaction status.
    restored: bool,
    /// A `BEGIN` was seen and no `COMMIT` or `ROLLBACK` since. The protocol layer updates the
    /// transaction status only once a simple query's statements have all run, so `BEGIN;
    /// SAVEPOINT a` in one query would otherwise look like a savepoint outside a block.
    begun: bool,
}

/// A connection's savepoints, shared by its hook and its query handler.
pub type SavepointState = Arc<Mutex<Savepoints>>;

impl Savepoints {
    /// What `statement` does to the savepoints in transaction state `status`: `None` if it is
    /// not a savepoint statement, else its command tag or its error.
    pub fn apply(
        &mut self,
        statement: &Statement,
        status: TransactionStatus,
    ) -> Option<Result<&'static str, (&'static str, String)>> {
        let status = match status {
            TransactionStatus::Idle if self.begun => TransactionStatus::Transaction,
            status => status,
        };
        match statement {
            // The transaction hook answers these; a block's savepoints end with it.
            Statement::StartTransaction { .. } => {
                if status == TransactionStatus::Idle {
                    self.names.clear();
                    self.begun = true;
                }
                None
            }
            Statement::Commit { .. }
            | Statement::Rollback {
                savepoint: None, ..
            } => {
                self.names.clear();
                self.begun = false;
                None
            }
            Statement::Savepoint { name } => Some(self.savepoint(name, status)),
            Statement::ReleaseSavepoint { name } => Some(self.release(name, status)),
            Statement::Rollback {
                savepoint: Some(name),
                ..
            } => Some(self.rollback_to(name, status)),
            _ => None,
        }
    }

    fn savepoint(
        &mut self,
        name: &Ident,
        status: TransactionStatus,
    ) -> Result<&'static str, (&'static str, String)> {
        match status {
            TransactionStatus::Idle => Err(outside_block("SAVEPOINT")),
            TransactionStatus::Error => Err(aborted()),
            TransactionStatus::Transaction => {
                self.names.push(name.value.clone());
                Ok("SAVEPOINT")
            }
        }
    }

    fn release(
        &mut self,
        name: &Ident,
        status: TransactionStatus,
    ) -> Result<&'static str, (&'static str, String)> {
        match status {
            TransactionStatus::Idle => Err(outside_block("RELEASE SAVEPOINT")),
            TransactionStatus::Error => Err(aborted()),
            TransactionStatus::Transaction => {
                let at = self.find(name)?;
                self.names.truncate(at);
                Ok("RELEASE")
            }
        }
    }

    fn rollback_to(
        &mut self,
        name: &Ident,
        status: TransactionStatus,
    ) -> Result<&'static str, (&'static str, String)> {
        if status == TransactionStatus::Idle {
            return Err(outside_block("ROLLBACK TO SAVEPOINT"));
        }
        let at = self.find(name)?;
        // The savepoint itself stays defined; later ones are gone.
        self.names.truncate(at + 1);
        self.restored = true;
        Ok("ROLLBACK")
    }

    fn find(&self, name: &Ident) -> Result<usize, (&'static str, String)> {
        self.names
            .iter()
            .rposition(|n| *n == name.value)
            .ok_or_else(|| {
                (
                    INVALID_SAVEPOINT,
                    format!("savepoint \"{}\" does not exist", name.value),
                )
            })
    }

    /// Whether a `ROLLBACK TO` has made the block usable again since the last call.
    pub fn take_restored(&mut self) -> bool {
        std::mem::take(&mut self.restored)
    }
}

fn outside_block(what: &str) -> (&'static str, String) {
    (
        NO_ACTIVE_TRANSACTION,
        format!("{what} can only be used in transaction blocks"),
    )
}

fn aborted() -> (&'static str, String) {
    (
        sqlstate::IN_FAILED_TRANSACTION,
        "current transaction is aborted, commands ignored until end of transaction block".into(),
    )
}

/// Answers savepoint statements from the connection's [`Savepoints`].
#[derive(Debug)]
pub struct SavepointHook {
    state: SavepointState,
}

impl SavepointHook {
    /// The hook over a connection's savepoints.
    pub fn new(state: SavepointState) -> Self {
        SavepointHook { state }
    }

    fn answer(
        &self,
        statement: &Statement,
        status: TransactionStatus,
    ) -> Option<PgWireResult<Response>> {
        let mut savepoints = self.state.lock().unwrap_or_else(|e| e.into_inner());
        savepoints
            .apply(statement, status)
            .map(|outcome| match outcome {
                Ok(tag) => Ok(Response::Execution(Tag::new(tag))),
                Err((code, message)) => Err(PgWireError::UserError(Box::new(sqlstate::error(
                    code, message,
                )))),
            })
    }
}

/// Whether `statement` is one this hook answers (at parse time, without changing anything).
fn is_savepoint_statement(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::Savepoint { .. }
            | Statement::ReleaseSavepoint { .. }
            | Statement::Rollback {
                savepoint: Some(_),
                ..
            }
    )
}

#[async_trait]
impl QueryHook for SavepointHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        self.answer(statement, client.transaction_status())
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        is_savepoint_statement(statement).then(|| Ok(super::settings::empty_plan()))
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        self.answer(statement, client.transaction_status())
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn run(
        savepoints: &mut Savepoints,
        sql: &str,
        status: TransactionStatus,
    ) -> Option<Result<&'static str, &'static str>> {
        let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .expect("test SQL parses")
            .remove(0);
        savepoints
            .apply(&statement, status)
            .map(|r| r.map_err(|(code, _)| code))
    }

    #[test]
    fn savepoints_follow_postgres_bookkeeping() {
        use TransactionStatus::*;
        let mut s = Savepoints::default();
        assert_eq!(run(&mut s, "SAVEPOINT a", Idle), Some(Err("25P01")));
        // `BEGIN; SAVEPOINT a` in one simple query: the status is still Idle.
        assert_eq!(run(&mut s, "BEGIN", Idle), None);
        assert_eq!(run(&mut s, "SAVEPOINT a", Idle), Some(Ok("SAVEPOINT")));
        assert_eq!(run(&mut s, "ROLLBACK", Idle), None);
        assert_eq!(run(&mut s, "RELEASE a", Idle), Some(Err("25P01")));
        assert_eq!(run(&mut s, "SELECT 1", Transaction), None);
        assert_eq!(
            run(&mut s, "SAVEPOINT a", Transaction),
            Some(Ok("SAVEPOINT"))
        );
        assert_eq!(
            run(&mut s, "SAVEPOINT b", Transaction),
            Some(Ok("SAVEPOINT"))
        );
        assert_eq!(
            run(&mut s, "RELEASE SAVEPOINT c", Transaction),
            Some(Err("3B001"))
        );
        // In a failed block only ROLLBACK TO works, and it makes the block usable again.
        assert_eq!(run(&mut s, "SAVEPOINT c", Error), Some(Err("25P02")));
        assert_eq!(run(&mut s, "RELEASE b", Error), Some(Err("25P02")));
        assert!(!s.take_restored());
        assert_eq!(
            run(&mut s, "ROLLBACK TO SAVEPOINT zz", Error),
            Some(Err("3B001"))
        );
        assert!(!s.take_restored());
        assert_eq!(
            run(&mut s, "ROLLBACK TO SAVEPOINT a", Error),
            Some(Ok("ROLLBACK"))
        );
        assert!(s.take_restored());
        assert!(!s.take_restored());
        // `a` is still defined, `b` is gone.
        assert_eq!(run(&mut s, "RELEASE b", Transaction), Some(Err("3B001")));
        assert_eq!(
            run(&mut s, "ROLLBACK TO a", Transaction),
            Some(Ok("ROLLBACK"))
        );
        assert_eq!(run(&mut s, "RELEASE a", Transaction), Some(Ok("RELEASE")));
        assert_eq!(run(&mut s, "RELEASE a", Transaction), Some(Err("3B001")));
        // The end of the block forgets its savepoints.
        assert_eq!(
            run(&mut s, "SAVEPOINT d", Transaction),
            Some(Ok("SAVEPOINT"))
        );
        assert_eq!(run(&mut s, "COMMIT", Transaction), None);
        assert_eq!(run(&mut s, "BEGIN", Idle), None);
        assert_eq!(
            run(&mut s, "ROLLBACK TO d", Transaction),
            Some(Err("3B001"))
        );
        // A nested BEGIN (a warning in Postgres) keeps them.
        assert_eq!(
            run(&mut s, "SAVEPOINT e", Transaction),
            Some(Ok("SAVEPOINT"))
        );
        assert_eq!(run(&mut s, "BEGIN", Transaction), None);
        assert_eq!(run(&mut s, "RELEASE e", Transaction), Some(Ok("RELEASE")));
    }
}
