//! `LISTEN`, `UNLISTEN` and `NOTIFY`. finops-db has no notification channels: `UNLISTEN` (of a
//! channel or `*`) has nothing to stop and succeeds, as it does in Postgres for a channel not
//! listened to — connection pools (asyncpg) send `UNLISTEN *` when a connection is given back —
//! while `LISTEN` and `NOTIFY` are refused with 0A000 rather than accepted and never delivered.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::{DFSchema, ParamValues};
use datafusion::logical_expr::{EmptyRelation, LogicalPlan};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use pgwire::api::ClientInfo;
use pgwire::api::results::{Response, Tag};
use pgwire::error::{PgWireError, PgWireResult};

use crate::server::sqlstate;

/// Answers the notification statements.
#[derive(Debug, Default)]
pub struct NotifyHook;

/// The answer to `statement`, if it is a notification statement.
fn answer(statement: &Statement) -> Option<PgWireResult<Response>> {
    let refused = |what: &str| {
        Some(Err(PgWireError::UserError(Box::new(sqlstate::error(
            sqlstate::FEATURE_NOT_SUPPORTED,
            format!("{what} is not supported: finops-db has no notification channels"),
        )))))
    };
    match statement {
        Statement::UNLISTEN { .. } => Some(Ok(Response::Execution(Tag::new("UNLISTEN")))),
        Statement::LISTEN { .. } => refused("LISTEN"),
        Statement::NOTIFY { .. } => refused("NOTIFY"),
        _ => None,
    }
}

#[async_trait]
impl QueryHook for NotifyHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        answer(statement)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        // Described as returning no rows; `LISTEN` and `NOTIFY` are refused when executed.
        answer(statement).is_some().then_some(())?;
        Some(Ok(LogicalPlan::EmptyRelation(EmptyRelation {
            produce_one_row: false,
            schema: Arc::new(DFSchema::empty()),
        })))
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        answer(statement)
    }
}
