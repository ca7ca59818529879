//! Budgets, caps, checks and alerts (SPEC 3.7): `finops.budget_status`, `finops.budget_history`,
//! `finops.cap_status` with `finops.reserve`, `finops.checks` and `finops.alerts`, and the
//! scheduler that runs checks and delivers alerts inside `serve`.
//!
//! Owns the meaning of these objects. It must not know about the wire protocol.

pub mod alerts;
pub mod cap;
pub mod checks;
pub mod functions;
pub mod period;
pub mod rows;
pub mod run;
pub mod spend;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use datafusion::arrow::array::TimestampMicrosecondArray;
use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::engine::{Engine, Identity};
use crate::schema::timestamp_type;

/// `finops_now()`: the session's `finops.as_of` if set, else the current time — what the
/// checks and budget views call "now", so a check can be replayed as of a past moment.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct NowFunc {
    signature: Signature,
}

impl NowFunc {
    /// The function as a UDF.
    pub fn udf() -> ScalarUDF {
        ScalarUDF::from(Self {
            signature: Signature::nullary(Volatility::Stable),
        })
    }
}

impl ScalarUDFImpl for NowFunc {
    fn name(&self) -> &str {
        "finops_now"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(timestamp_type())
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let (_, now) = status::clock_of(&args.config_options)?;
        let array =
            TimestampMicrosecondArray::from(vec![now.timestamp_micros()]).with_timezone("UTC");
        Ok(ColumnarValue::Scalar(
            datafusion::common::ScalarValue::try_from_array(&array, 0)?,
        ))
    }
}

/// Run the enabled checks on their schedules and deliver pending alerts, every `tick`, until
/// the task is aborted. A failing check or target is logged and the loop goes on.
pub fn spawn_scheduler(engine: Arc<Engine>, tick: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        let delivery = alerts::Delivery::default();
        let mut last = Utc::now();
        loop {
            tokio::time::sleep(tick).await;
            let now = Utc::now();
            let session = match engine.session(Identity::local_admin()) {
                Ok(s) => s,
                Err(e) => {
                    log::warn!("scheduler: no session: {e}");
                    continue;
                }
            };
            match checks::load_checks(&session).await {
                Ok(all) => {
                    let due: Vec<_> = all
                        .into_iter()
                        .filter(|c| c.enabled && checks::due(c, last, now))
                        .collect();
                    if !due.is_empty()
                        && let Err(e) = alerts::run_checks(&session, &due).await
                    {
                        log::warn!("scheduler: running checks failed: {e}");
                    }
                }
                Err(e) => log::warn!("scheduler: cannot read finops.checks: {e}"),
            }
            last = now;
            if let Err(e) = alerts::deliver_pending(&session, &client, &delivery).await {
                log::warn!("scheduler: delivering alerts failed: {e}");
            }
        }
    })
}
