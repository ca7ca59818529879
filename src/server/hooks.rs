//! The chain of statement hooks in front of the generic query service: each looks at the parsed
//! statement and either answers it or passes.
//!
//! Owns the order of the chain. Each hook lives in its own file under `hooks/`.

pub mod copy;
mod engine;
mod notify;
pub mod parameters;
pub mod savepoint;
mod settings;

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use pgwire::api::portal::Format;
use pgwire::api::results::{QueryResponse, Response, Tag};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::types::format::FormatOptions;

use crate::engine::{Output, Session};
use crate::error::Error;
use crate::server::sqlstate;

/// The hooks of one connection, in the order they are asked.
pub fn chain(
    session: Session,
    copy_state: copy::CopyState,
    savepoints: savepoint::SavepointState,
) -> Vec<Arc<dyn QueryHook>> {
    vec![
        // Before the transaction hook, which would take `ROLLBACK TO` for a full rollback.
        Arc::new(savepoint::SavepointHook::new(savepoints)),
        // Next, so that nothing runs inside an aborted transaction block.
        Arc::new(TransactionStatementHook),
        Arc::new(settings::SessionSettingsHook::new(session.clone())),
        Arc::new(parameters::ParametersHook::new(session.clone())),
        Arc::new(notify::NotifyHook),
        Arc::new(CursorStatementHook),
        Arc::new(copy::CopyHook::new(session.clone(), copy_state)),
        Arc::new(engine::EngineHook::new(session)),
    ]
}

/// An engine error as a pgwire error with its SQLSTATE.
pub(crate) fn to_pgwire(e: Error) -> PgWireError {
    PgWireError::UserError(Box::new(sqlstate::error_info(&e)))
}

/// Turn an engine [`Output`] of `session` into a protocol response (rows run on its engine's
/// executor).
pub(crate) async fn respond(
    session: &Session,
    output: Output,
    format: &Format,
    options: Arc<FormatOptions>,
) -> PgWireResult<Response> {
    match output {
        Output::Command { tag, rows } => {
            let tag = match (tag.as_str(), rows) {
                ("INSERT", Some(n)) => Tag::new(&tag).with_oid(0).with_rows(n),
                (_, Some(n)) => Tag::new(&tag).with_rows(n),
                (_, None) => Tag::new(&tag),
            };
            Ok(Response::Execution(tag))
        }
        Output::Rows(df) => Ok(Response::Query(
            super::rows::dataframe_response(session.engine(), df, format, options).await?,
        )),
        Output::Batches(schema, batches) => Ok(Response::Query(encode_batches(
            schema, batches, format, options,
        )?)),
        Output::Returned {
            tag,
            schema,
            batches,
        } => {
            let mut response = encode_batches(schema, batches, format, options)?;
            // pgwire appends the row count: `INSERT 0 3`.
            response.set_command_tag(&if tag == "INSERT" {
                format!("{tag} 0")
            } else {
                tag.to_string()
            });
            Ok(Response::Query(response))
        }
    }
}

fn encode_batches(
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    format: &Format,
    options: Arc<FormatOptions>,
) -> PgWireResult<QueryResponse> {
    let fields = Arc::new(super::rows::pg_fields(&schema, format, Some(options))?);
    let mut rows = Vec::new();
    for batch in &batches {
        rows.extend(
            super::rows::encode_batch(&fields, batch)?
                .into_iter()
                .map(Ok),
        );
    }
    Ok(QueryResponse::new(fields, futures::stream::iter(rows)))
}
