//! `SET` and `SHOW` of session options that DataFusion owns: `finops.*` (our config extension)
//! and `datafusion.*`. Unknown options are errors (42704), as in Postgres, instead of being
//! silently accepted.
//!
//! Postgres client parameters (`DateStyle`, `search_path`, `statement_timeout`, ...) are left to
//! the next hook (`parameters`); `SHOW ALL` lists both.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::{DFSchema, ParamValues};
use datafusion::logical_expr::{EmptyRelation, LogicalPlan};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Set, Statement};
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use pgwire::api::ClientInfo;
use pgwire::api::portal::Format;
use pgwire::api::results::Response;
use pgwire::error::PgWireResult;
use pgwire::types::format::FormatOptions;

use crate::engine::{Output, Session};
use crate::server::hooks::{respond, to_pgwire};

/// Handles `SET`/`SHOW` of `finops.*` and `datafusion.*`, and `SHOW ALL`.
#[derive(Debug)]
pub struct SessionSettingsHook {
    session: Session,
}

impl SessionSettingsHook {
    /// The hook for `session`.
    pub fn new(session: Session) -> Self {
        SessionSettingsHook { session }
    }
}

/// A plan with no columns, for statements answered by a hook.
pub(crate) fn empty_plan() -> LogicalPlan {
    LogicalPlan::EmptyRelation(EmptyRelation {
        produce_one_row: false,
        schema: Arc::new(DFSchema::empty()),
    })
}

fn show_plan(columns: &[&str]) -> LogicalPlan {
    let fields: Vec<Field> = columns
        .iter()
        .map(|c| Field::new(*c, DataType::Utf8, true))
        .collect();
    let schema = DFSchema::try_from(Schema::new(fields)).unwrap_or_else(|_| DFSchema::empty());
    LogicalPlan::EmptyRelation(EmptyRelation {
        produce_one_row: false,
        schema: Arc::new(schema),
    })
}

/// Whether `name` is a session option (`finops.*`, `datafusion.*`) rather than a Postgres
/// parameter.
pub(super) fn owned_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("finops.") || lower.starts_with("datafusion.")
}

enum Kind {
    Set,
    Show(String),
    ShowAll,
}

fn classify(statement: &Statement) -> Option<Kind> {
    match statement {
        Statement::Set(Set::SingleAssignment { variable, .. })
            if owned_name(&variable.to_string()) =>
        {
            Some(Kind::Set)
        }
        Statement::ShowVariable { variable } => {
            let parts: Vec<String> = variable.iter().map(|i| i.value.clone()).collect();
            // `SHOW finops.currency` arrives as the identifiers `finops`, `currency`.
            let name = parts.join(".");
            if name.eq_ignore_ascii_case("all") {
                Some(Kind::ShowAll)
            } else if owned_name(&name) {
                Some(Kind::Show(name.to_ascii_lowercase()))
            } else {
                None
            }
        }
        _ => None,
    }
}

impl SessionSettingsHook {
    fn settings(&self) -> Vec<(String, String)> {
        crate::engine::settings(self.session.context().state().config_options())
    }

    /// Answer `statement`; `parameters` are the connection's Postgres parameters (for `SHOW ALL`).
    async fn answer(
        &self,
        statement: &Statement,
        kind: Kind,
        parameters: Vec<(String, String)>,
    ) -> PgWireResult<Response> {
        let options = Arc::new(FormatOptions::default());
        match kind {
            Kind::Set => {
                self.session
                    .execute(statement.clone())
                    .await
                    .map_err(to_pgwire)?;
                let done = Output::Command {
                    tag: "SET".into(),
                    rows: None,
                };
                respond(&self.session, done, &Format::UnifiedText, options).await
            }
            Kind::Show(name) => {
                let value = self
                    .settings()
                    .into_iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v)
                    .ok_or_else(|| super::parameters::unknown(&name))?;
                let schema = Arc::new(Schema::new(vec![Field::new(&name, DataType::Utf8, true)]));
                let batch = RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![Arc::new(StringArray::from(vec![value]))],
                )
                .map_err(|e| to_pgwire(datafusion::error::DataFusionError::from(e).into()))?;
                respond(
                    &self.session,
                    Output::Batches(schema, vec![batch]),
                    &Format::UnifiedText,
                    options,
                )
                .await
            }
            Kind::ShowAll => {
                let (names, values): (Vec<String>, Vec<String>) =
                    parameters.into_iter().chain(self.settings()).unzip();
                let schema = Arc::new(Schema::new(vec![
                    Field::new("name", DataType::Utf8, true),
                    Field::new("setting", DataType::Utf8, true),
                ]));
                let batch = RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![
                        Arc::new(StringArray::from(names)),
                        Arc::new(StringArray::from(values)),
                    ],
                )
                .map_err(|e| to_pgwire(datafusion::error::DataFusionError::from(e).into()))?;
                respond(
                    &self.session,
                    Output::Batches(schema, vec![batch]),
                    &Format::UnifiedText,
                    options,
                )
                .await
            }
        }
    }
}

#[async_trait]
impl QueryHook for SessionSettingsHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let kind = classify(statement)?;
        let parameters = super::parameters::entries(client.metadata());
        Some(self.answer(statement, kind, parameters).await)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        Some(Ok(match classify(statement)? {
            Kind::Set => empty_plan(),
            Kind::Show(name) => show_plan(&[name.as_str()]),
            Kind::ShowAll => show_plan(&["name", "setting"]),
        }))
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let kind = classify(statement)?;
        let parameters = super::parameters::entries(client.metadata());
        Some(self.answer(statement, kind, parameters).await)
    }
}
