//! `COPY ... FROM STDIN` and `COPY ... TO STDOUT` on the simple and the extended protocol; the
//! COPY data sub-protocol itself is [`CopyIn`], the connection's copy handler.
//!
//! Parsing and appending belong to the engine (`crate::copy`, [`Session::copy_sink`]); this file
//! only speaks the protocol. Rows are passed on as each CopyData message is parsed, so a large
//! COPY into a durable table is staged while it arrives instead of being held until CopyDone (see
//! `storage/stage.rs`); the statement is still atomic and is acknowledged only once committed.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{CopySource, CopyTarget, Statement};
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use futures::{Sink, SinkExt, StreamExt};
use pgwire::api::ClientInfo;
use pgwire::api::copy::CopyHandler;
use pgwire::api::results::{CopyResponse, Response, Tag};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};

use crate::copy::{CopyFormat, CopyOptions, CopyParser, render, render_header};
use crate::engine::{CopySink, Output, Session};
use crate::error::{Error, Result};
use crate::server::handler::ConnectionState;
use crate::server::hooks::to_pgwire;
use crate::server::sqlstate;

/// A `COPY FROM STDIN` waiting for its data.
pub struct PendingCopy {
    parser: CopyParser,
    /// Where parsed rows go as they complete; `None` once the statement failed.
    sink: Option<CopySink>,
    error: Option<Error>,
}

/// The connection's COPY state, shared by the hook that starts a copy and the handler that
/// receives its data.
pub type CopyState = Arc<Mutex<Option<PendingCopy>>>;

/// Starts COPY in either direction.
pub struct CopyHook {
    session: Session,
    state: CopyState,
}

impl CopyHook {
    /// The hook for `session`.
    pub fn new(session: Session, state: CopyState) -> Self {
        CopyHook { session, state }
    }

    async fn start(&self, statement: &Statement) -> Option<PgWireResult<Response>> {
        let Statement::Copy {
            source,
            to,
            target,
            options,
            legacy_options,
            ..
        } = statement
        else {
            return None;
        };
        let result = match (to, target) {
            (false, CopyTarget::Stdin) => self.copy_in(source, options, legacy_options).await,
            (true, CopyTarget::Stdout) => self.copy_out(source, options, legacy_options).await,
            // COPY to or from a server-side file is left to DataFusion (COPY ... TO 'file').
            _ => return None,
        };
        Some(result.map_err(to_pgwire))
    }

    async fn copy_in(
        &self,
        source: &CopySource,
        options: &[datafusion::sql::sqlparser::ast::CopyOption],
        legacy: &[datafusion::sql::sqlparser::ast::CopyLegacyOption],
    ) -> Result<Response> {
        let CopySource::Table {
            table_name,
            columns,
        } = source
        else {
            return Err(Error::Unsupported("COPY (query) FROM STDIN".into()));
        };
        let options = CopyOptions::from_statement(options, legacy)?;
        let columns: Vec<String> = columns.iter().map(|c| c.value.clone()).collect();
        let (table, schema, targets) = self
            .session
            .copy_target(&table_name.to_string(), &columns)
            .await?;
        let width = targets.len();
        let parser = CopyParser::new(schema, targets, options);
        let sink = self.session.copy_sink(&table).await?;
        let mut state = self
            .state
            .lock()
            .map_err(|_| Error::Internal("copy state poisoned".into()))?;
        *state = Some(PendingCopy {
            parser,
            sink: Some(sink),
            error: None,
        });
        Ok(Response::CopyIn(CopyResponse::new(
            0,
            width,
            futures::stream::empty(),
        )))
    }

    async fn copy_out(
        &self,
        source: &CopySource,
        options: &[datafusion::sql::sqlparser::ast::CopyOption],
        legacy: &[datafusion::sql::sqlparser::ast::CopyLegacyOption],
    ) -> Result<Response> {
        let options = CopyOptions::from_statement(options, legacy)?;
        let query = match source {
            CopySource::Table {
                table_name,
                columns,
            } => {
                let list = if columns.is_empty() {
                    "*".to_string()
                } else {
                    columns
                        .iter()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                format!("SELECT {list} FROM {table_name}")
            }
            CopySource::Query(query) => query.to_string(),
        };
        let df = match self.session.sql(&query).await?.pop() {
            Some(Output::Rows(df)) => df,
            _ => {
                return Err(Error::Unsupported(
                    "COPY of a statement without rows".into(),
                ));
            }
        };
        let schema: datafusion::arrow::datatypes::SchemaRef =
            Arc::new(df.schema().as_arrow().clone());
        let columns = schema.fields().len();
        let header = (options.header && options.format == CopyFormat::Csv)
            .then(|| render_header(&schema, &options));
        let batches = self.session.engine().execute_stream(df).await?;
        // One row per CopyData message, as Postgres sends them: clients that read rows take each
        // message as one, and the command tag counts messages. The CSV header goes out with the
        // first row, so that the count is of rows (alone when there are none).
        let options = Arc::new(options);
        let stream = futures::stream::unfold(Some((batches, header)), move |state| {
            let options = Arc::clone(&options);
            async move {
                let (mut batches, mut header) = state?;
                loop {
                    let Some(batch) = batches.next().await else {
                        // No row came: the header alone.
                        let header = header?;
                        return Some((vec![Ok(CopyData::new(Bytes::from(header)))], None));
                    };
                    let mut out = header.take().unwrap_or_default();
                    let ends = match batch
                        .map_err(|e| to_pgwire(e.into()))
                        .and_then(|b| render(&b, &options, &mut out).map_err(to_pgwire))
                    {
                        Ok(ends) => ends,
                        Err(e) => return Some((vec![Err(e)], None)),
                    };
                    if ends.is_empty() {
                        header = (!out.is_empty()).then_some(out);
                        continue;
                    }
                    let out = Bytes::from(out);
                    let mut from = 0;
                    let rows = ends
                        .into_iter()
                        .map(|end| {
                            let row = out.slice(from..end);
                            from = end;
                            Ok(CopyData::new(row))
                        })
                        .collect();
                    return Some((rows, Some((batches, None))));
                }
            }
        })
        .flat_map(futures::stream::iter);
        Ok(Response::CopyOut(CopyResponse::new(0, columns, stream)))
    }
}

fn is_copy(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::Copy {
            target: CopyTarget::Stdin | CopyTarget::Stdout,
            ..
        }
    )
}

#[async_trait]
impl QueryHook for CopyHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        self.start(statement).await
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        if !is_copy(statement) {
            return None;
        }
        // A COPY into a table that does not exist or may not be written fails at Parse, before
        // the client pipelines its Execute and Sync: a failure at Execute would leave a client
        // that already sent Sync one ReadyForQuery out of step.
        if let Statement::Copy {
            source:
                CopySource::Table {
                    table_name,
                    columns,
                },
            to: false,
            ..
        } = statement
        {
            let columns: Vec<String> = columns.iter().map(|c| c.value.clone()).collect();
            if let Err(e) = self
                .session
                .copy_target(&table_name.to_string(), &columns)
                .await
            {
                return Some(Err(to_pgwire(e)));
            }
        }
        Some(Ok(super::settings::empty_plan()))
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        self.start(statement).await
    }
}

/// Receives COPY data for the connection's pending `COPY FROM STDIN`.
pub struct CopyIn {
    connection: Arc<ConnectionState>,
}

impl CopyIn {
    /// The handler of `connection`.
    pub fn new(connection: Arc<ConnectionState>) -> Self {
        CopyIn { connection }
    }

    fn take(&self) -> Option<PendingCopy> {
        self.connection
            .copy_state()
            .lock()
            .ok()
            .and_then(|mut s| s.take())
    }

    fn put_back(&self, pending: PendingCopy) {
        if let Ok(mut state) = self.connection.copy_state().lock() {
            *state = Some(pending);
        }
    }
}

impl PendingCopy {
    /// Parse `data` and pass the completed rows on. After the first error the rest of the data
    /// is read and dropped, and what was staged is deleted at once; the error is reported when the
    /// client ends the copy.
    async fn feed(&mut self, data: &[u8]) {
        if self.error.is_some() {
            return;
        }
        let outcome = match self.parser.push(data) {
            Ok(()) => match self.sink.as_mut() {
                Some(sink) => sink.push(self.parser.take_batches()).await,
                None => Ok(()),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            self.error = Some(e);
            if let Some(sink) = self.sink.take() {
                sink.abort().await;
            }
        }
    }
}

fn user_error(e: &Error) -> PgWireError {
    PgWireError::UserError(Box::new(sqlstate::error_info(e)))
}

#[async_trait]
impl CopyHandler for CopyIn {
    async fn on_copy_data<C>(&self, _client: &mut C, data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // Out of the shared state while rows are staged (the connection handles one message at a
        // time, so nothing else looks at it meanwhile).
        if let Some(mut pending) = self.take() {
            pending.feed(&data.data).await;
            self.put_back(pending);
        }
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Some(pending) = self.take() else {
            return Err(user_error(&Error::Internal(
                "COPY data without a COPY".into(),
            )));
        };
        if let Some(e) = pending.error {
            return Err(user_error(&e));
        }
        let Some(mut sink) = pending.sink else {
            return Err(user_error(&Error::Internal(
                "COPY without a destination".into(),
            )));
        };
        let batches = match pending.parser.finish() {
            Ok(batches) => batches,
            Err(e) => {
                sink.abort().await;
                return Err(user_error(&e));
            }
        };
        let Some(session) = self.connection.session() else {
            sink.abort().await;
            return Err(user_error(&Error::Internal("not logged in".into())));
        };
        if let Err(e) = sink.push(batches).await {
            sink.abort().await;
            return Err(user_error(&e));
        }
        let rows = sink.finish(session).await.map_err(|e| user_error(&e))?;
        let tag = Tag::new("COPY").with_rows(rows as usize);
        client
            .send(PgWireBackendMessage::CommandComplete(tag.into()))
            .await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, _client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(sink) = self.take().and_then(|p| p.sink) {
            sink.abort().await;
        }
        PgWireError::UserError(Box::new(sqlstate::error(
            sqlstate::QUERY_CANCELED,
            format!("COPY from stdin failed: {}", fail.message),
        )))
    }
}
