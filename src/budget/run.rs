//! `run_checks([name])`: the checks of `finops.checks` run once, as a table function in the
//! caller's session — what `finops-db check --server` asks a running server, and what a cron job
//! with psql can call. One row per alert raised (new, or already raised this period) and per check
//! that failed. New alerts are recorded in `finops.alerts` as pending deliveries, which the
//! server's scheduler delivers. `SET finops.as_of` beforehand replays the checks at that moment.
//!
//! The checks run when the query executes, not when it is planned, so `EXPLAIN` runs nothing.
//! Only an administrator may call it: it writes `finops.alerts`.

use std::sync::{Arc, Weak};

use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{Result as DfResult, plan_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::SessionContext;

use super::alerts::{self, Run};
use crate::config::Role;
use crate::engine::{Engine, Identity, Session};
use crate::error::{Error, Result};

/// The table function's name.
pub const RUN_CHECKS: &str = "run_checks";

/// Columns of `run_checks()`: an alert's fields (`payload` as JSON text), or for a check that
/// failed its name and `error`.
pub fn run_schema() -> SchemaRef {
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        text("check_name", false),
        text("severity", true),
        text("key", true),
        text("period", true),
        text("message", true),
        Field::new("new", DataType::Boolean, true),
        text("alert_id", true),
        text("notify", true),
        text("payload", true),
        text("error", true),
    ]))
}

/// `run_checks` for one session.
#[derive(Debug)]
pub struct RunChecksFunction {
    engine: Weak<Engine>,
    ctx: Weak<SessionContext>,
    identity: Identity,
}

impl RunChecksFunction {
    /// The function of the session over `ctx` of `engine`, running as `identity`.
    pub fn new(engine: &Arc<Engine>, ctx: &Arc<SessionContext>, identity: Identity) -> Self {
        RunChecksFunction {
            engine: Arc::downgrade(engine),
            ctx: Arc::downgrade(ctx),
            identity,
        }
    }
}

impl TableFunctionImpl for RunChecksFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let name = match args.exprs() {
            [] => None,
            [Expr::Literal(value, _)] => match value.try_as_str() {
                Some(name) => name.map(str::to_string),
                None => return plan_err!("{RUN_CHECKS}(name): the name must be text"),
            },
            _ => {
                return plan_err!(
                    "{RUN_CHECKS} takes no argument, or the name of one check as a text literal"
                );
            }
        };
        if self.identity.role != Role::Admin {
            return Err(Error::PermissionDenied(format!(
                "permission denied for function {RUN_CHECKS}: it records alerts, which only an \
                 admin may do"
            ))
            .into());
        }
        let partition = ChecksRun {
            schema: run_schema(),
            engine: self.engine.clone(),
            ctx: self.ctx.clone(),
            identity: self.identity.clone(),
            name,
        };
        Ok(Arc::new(StreamingTable::try_new(
            run_schema(),
            vec![Arc::new(partition)],
        )?))
    }
}

/// One execution of the checks.
#[derive(Debug)]
struct ChecksRun {
    schema: SchemaRef,
    engine: Weak<Engine>,
    ctx: Weak<SessionContext>,
    identity: Identity,
    name: Option<String>,
}

impl PartitionStream for ChecksRun {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _task: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (engine, ctx) = (self.engine.upgrade(), self.ctx.upgrade());
        let identity = self.identity.clone();
        let name = self.name.clone();
        let schema = Arc::clone(&self.schema);
        let run = async move {
            let (Some(engine), Some(ctx)) = (engine, ctx) else {
                return Err(
                    Error::Internal("the session running the checks is gone".into()).into(),
                );
            };
            let session = Session::resume(engine, ctx, identity);
            let run = alerts::run_named(&session, name.as_deref()).await?;
            Ok(run_batch(&run)?)
        };
        Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::once(run),
        ))
    }
}

/// The rows of a run: its alerts, then its failed checks.
pub fn run_batch(run: &Run) -> Result<RecordBatch> {
    let failed = run.errors.iter();
    let text = |alert: &dyn Fn(&alerts::Alert) -> Option<String>,
                error: &dyn Fn(&(String, String)) -> Option<String>|
     -> ArrayRef {
        Arc::new(StringArray::from_iter(
            run.alerts
                .iter()
                .map(alert)
                .chain(run.errors.iter().map(error)),
        ))
    };
    let new: BooleanArray = run
        .alerts
        .iter()
        .map(|a| Some(a.new))
        .chain(failed.map(|_| None))
        .collect();
    Ok(RecordBatch::try_new(
        run_schema(),
        vec![
            text(&|a| Some(a.check_name.clone()), &|(c, _)| Some(c.clone())),
            text(&|a| Some(a.severity.clone()), &|_| None),
            text(&|a| Some(a.key.clone()), &|_| None),
            text(&|a| Some(a.period.clone()), &|_| None),
            text(&|a| Some(a.message.clone()), &|_| None),
            Arc::new(new),
            text(&|a| Some(a.alert_id.clone()), &|_| None),
            text(&|a| Some(a.notify.clone()), &|_| None),
            text(&|a| Some(a.payload.to_string()), &|_| None),
            text(&|_| None, &|(_, e)| Some(e.clone())),
        ],
    )
    .map_err(datafusion::error::DataFusionError::from)?)
}
