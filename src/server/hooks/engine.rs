//! Statements the engine runs itself (DDL and DML, with Postgres command tags), on the simple and
//! the extended protocol.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use pgwire::api::ClientInfo;
use pgwire::api::portal::Format;
use pgwire::api::results::Response;
use pgwire::error::PgWireResult;
use pgwire::types::format::FormatOptions;

use crate::engine::Session;
use crate::server::hooks::{respond, to_pgwire};
use crate::statements;

/// Hands the statements the engine intercepts to the engine.
#[derive(Debug)]
pub struct EngineHook {
    session: Session,
}

impl EngineHook {
    /// The hook for `session`.
    pub fn new(session: Session) -> Self {
        EngineHook { session }
    }
}

fn options(client: &(dyn ClientInfo + Send + Sync)) -> Arc<FormatOptions> {
    Arc::new(FormatOptions::from_client_metadata(client.metadata()))
}

#[async_trait]
impl QueryHook for EngineHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let statement = match statements::rewrite(statement) {
            Some(rewritten) => rewritten,
            None if self.session.intercepts(statement) => statement.clone(),
            None => return None,
        };
        let result = match self.session.execute(statement).await {
            Ok(output) => {
                respond(&self.session, output, &Format::UnifiedText, options(client)).await
            }
            Err(e) => Err(to_pgwire(e)),
        };
        Some(result)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        // A rewritten statement is planned here, so that the generic path runs it with the
        // portal's parameter and result formats; everything else is planned by the default
        // parser, which gives typed parameters.
        if crate::materialized::recognise(statement).is_some() {
            // Run whole at execute time; nothing to plan.
            return Some(Ok(LogicalPlan::EmptyRelation(
                datafusion::logical_expr::EmptyRelation {
                    produce_one_row: false,
                    schema: Arc::new(datafusion::common::DFSchema::empty()),
                },
            )));
        }
        // DataFusion cannot plan RETURNING; the engine plans it as a projection of the rows
        // written, so that Describe gives the columns returned.
        if statements::insert_returning(statement) {
            return Some(
                statements::plan(&self.session, statement.clone())
                    .await
                    .map_err(to_pgwire),
            );
        }
        let rewritten = statements::rewrite(statement)?;
        Some(
            statements::plan(&self.session, rewritten)
                .await
                .map_err(to_pgwire),
        )
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        plan: &LogicalPlan,
        params: &ParamValues,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if !self.session.intercepts(statement) {
            return None;
        }
        let tag = statements::command_tag(statement);
        let outcome = match crate::materialized::recognise(statement) {
            Some(mv) => match mv {
                Ok(mv) => statements::materialized_view(&self.session, mv).await,
                Err(e) => Err(e),
            },
            None => statements::execute_plan(&self.session, tag, plan.clone(), Some(params)).await,
        };
        let result = match outcome {
            Ok(output) => {
                respond(&self.session, output, &Format::UnifiedText, options(client)).await
            }
            Err(e) => Err(to_pgwire(e)),
        };
        Some(result)
    }
}
