//! `finops.alerts`: every alert a check raised, deduplicated per check, key and period, with
//! its delivery state; running checks into alerts; delivering pending alerts to the log and to
//! webhooks (JSON POST with a Slack-compatible `text`, retried with exponential backoff).
//!
//! Owns the alert rows and delivery. Pending deliveries live in the table, so they survive a
//! restart; each alert is delivered on its own, so a failing target never holds up another.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::checks::{Check, load_checks};
use super::rows::quote;
use super::spend::ts_literal;
use crate::engine::Session;
use crate::error::{Error, Result};
use crate::schema::timestamp_type;
use crate::storage::{ColumnDefault, TableOptions};

/// `(schema, table)` of the alerts.
pub const ALERTS: (&str, &str) = ("finops", "alerts");

/// Columns of `finops.alerts`. `delivery_state` is `pending`, `delivered` or `failed`.
pub fn alerts_schema() -> SchemaRef {
    Arc::clone(&ALERTS_SCHEMA)
}

static ALERTS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let text = |n: &str, null: bool| Field::new(n, DataType::Utf8, null);
    Arc::new(Schema::new(vec![
        text("alert_id", false),
        text("check_name", false),
        text("key", false),
        text("period", false),
        text("severity", false),
        text("message", false),
        text("payload", true),
        text("notify", false),
        Field::new("created_at", timestamp_type(), false),
        Field::new("delivered_at", timestamp_type(), true),
        text("delivery_state", false),
        Field::new("attempts", DataType::Int64, false),
        Field::new("next_attempt_at", timestamp_type(), true),
        text("last_error", true),
    ]))
});

/// Storage options of `finops.alerts`.
pub fn alerts_options() -> TableOptions {
    let mut options = TableOptions::config();
    options.defaults = vec![
        (
            "delivery_state".into(),
            ColumnDefault::Text("pending".into()),
        ),
        ("attempts".into(), ColumnDefault::Int64(0)),
    ];
    options
}

/// One alert a check raised.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Alert {
    /// Stable id: a hash of check, key and period.
    pub alert_id: String,
    /// The check that raised it.
    pub check_name: String,
    /// What it is about (a budget and threshold, a model, ...).
    pub key: String,
    /// The period within which it is not repeated.
    pub period: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// One line for humans.
    pub message: String,
    /// The check's row as JSON.
    pub payload: Value,
    /// `log` or a webhook URL.
    pub notify: String,
    /// False when the same alert was already raised in this period.
    pub new: bool,
}

fn alert_id(check: &str, key: &str, period: &str) -> String {
    let digest = Sha256::digest(format!("{check}\u{0}{key}\u{0}{period}").as_bytes());
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

fn cell(array: &ArrayRef, i: usize) -> Value {
    if array.is_null(i) {
        return Value::Null;
    }
    let options = FormatOptions::default();
    let text = ArrayFormatter::try_new(array.as_ref(), &options)
        .map(|f| f.value(i).to_string())
        .unwrap_or_default();
    match array.data_type() {
        DataType::Boolean => Value::Bool(text == "true"),
        t if t.is_integer() => text
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or(Value::String(text)),
        DataType::Float32 | DataType::Float64 => text
            .parse::<f64>()
            .ok()
            .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
            .unwrap_or(Value::String(text)),
        _ => Value::String(text),
    }
}

/// The alerts of `check`'s result rows. A row's own `key`, `period`, `message`, `severity`
/// and `notify` columns win; without a `key` the whole row is the key, without a `period` the
/// alert is not repeated within `default_period` (the day), without a `message` the check name
/// and key are.
pub fn alerts_of(check: &Check, batches: &[RecordBatch], default_period: &str) -> Vec<Alert> {
    let mut out = Vec::new();
    for batch in batches {
        let schema = batch.schema();
        for i in 0..batch.num_rows() {
            let mut row = Map::new();
            for (field, column) in schema.fields().iter().zip(batch.columns()) {
                row.insert(field.name().clone(), cell(column, i));
            }
            let get = |name: &str| match row.get(name) {
                Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                Some(Value::Null) | None => None,
                Some(other) => Some(other.to_string()),
            };
            let key = get("key").unwrap_or_else(|| Value::Object(row.clone()).to_string());
            let period = get("period").unwrap_or_else(|| default_period.to_string());
            let severity = get("severity")
                .filter(|s| super::checks::SEVERITIES.contains(&s.as_str()))
                .unwrap_or_else(|| check.severity.clone());
            let notify = get("notify")
                .filter(|n| super::rows::check_notify(Some(n)).is_ok())
                .unwrap_or_else(|| check.notify.clone());
            let message = get("message").unwrap_or_else(|| format!("{}: {key}", check.name));
            out.push(Alert {
                alert_id: alert_id(&check.name, &key, &period),
                check_name: check.name.clone(),
                key,
                period,
                severity,
                message,
                payload: Value::Object(row),
                notify,
                new: true,
            });
        }
    }
    out
}

/// What running checks produced.
#[derive(Debug, Default, serde::Serialize)]
pub struct Run {
    /// Every alert raised, new or repeated.
    pub alerts: Vec<Alert>,
    /// Checks that failed, with the error.
    pub errors: Vec<(String, String)>,
}

/// Run `checks` once in `session` (whose `finops.as_of` is "now"), store the new alerts as
/// pending deliveries and return every alert raised.
pub async fn run_checks(session: &Session, checks: &[Check]) -> Result<Run> {
    let (tz, now) = super::status::clock_of(session.context().state().config_options())?;
    let default_period = period_of(now, tz);
    let (schema, table) = ALERTS;
    let mut run = Run::default();
    for check in checks {
        let rows = match session.query(&check.sql).await {
            Ok(rows) => rows,
            Err(e) => {
                log::warn!("check {} failed: {e}", check.name);
                run.errors.push((check.name.clone(), e.to_string()));
                continue;
            }
        };
        let mut alerts = alerts_of(check, &rows, &default_period);
        if alerts.is_empty() {
            continue;
        }
        let known: HashSet<String> = string_column(
            &session
                .query(&format!(
                    "SELECT alert_id FROM {schema}.{table} WHERE check_name = {}",
                    quote(&check.name)
                ))
                .await?,
        );
        let mut fresh: Vec<&Alert> = Vec::new();
        let mut seen = HashSet::new();
        for alert in &mut alerts {
            alert.new = !known.contains(&alert.alert_id) && seen.insert(alert.alert_id.clone());
        }
        fresh.extend(alerts.iter().filter(|a| a.new));
        if !fresh.is_empty() {
            session
                .append(&format!("{schema}.{table}"), vec![alert_batch(&fresh)?])
                .await?;
        }
        run.alerts.extend(alerts);
    }
    Ok(run)
}

/// Run every enabled check (or the one named `name`, enabled or not) once.
pub async fn run_named(session: &Session, name: Option<&str>) -> Result<Run> {
    let checks: Vec<Check> = load_checks(session)
        .await?
        .into_iter()
        .filter(|c| match name {
            Some(n) => c.name == n,
            None => c.enabled,
        })
        .collect();
    if let Some(n) = name
        && checks.is_empty()
    {
        return Err(Error::InvalidParameter(format!("no check named \"{n}\"")));
    }
    run_checks(session, &checks).await
}

fn string_column(batches: &[RecordBatch]) -> HashSet<String> {
    batches
        .iter()
        .filter_map(|b| cast(b.column(0), &DataType::Utf8).ok())
        .flat_map(|a| {
            a.as_string::<i32>()
                .iter()
                .flatten()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn alert_batch(alerts: &[&Alert]) -> Result<RecordBatch> {
    let text = |f: &dyn Fn(&Alert) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(alerts.iter().map(|a| f(a))))
    };
    let now = Utc::now().timestamp_micros();
    let null_ts = || -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::new_null(alerts.len()).with_timezone("UTC"))
    };
    RecordBatch::try_new(
        alerts_schema(),
        vec![
            text(&|a| a.alert_id.clone()),
            text(&|a| a.check_name.clone()),
            text(&|a| a.key.clone()),
            text(&|a| a.period.clone()),
            text(&|a| a.severity.clone()),
            text(&|a| a.message.clone()),
            text(&|a| a.payload.to_string()),
            text(&|a| a.notify.clone()),
            Arc::new(TimestampMicrosecondArray::from(vec![now; alerts.len()]).with_timezone("UTC")),
            null_ts(),
            text(&|_| "pending".to_string()),
            Arc::new(Int64Array::from(vec![0i64; alerts.len()])),
            null_ts(),
            Arc::new(StringArray::new_null(alerts.len())),
        ],
    )
    .map_err(crate::error::arrow_error)
}

/// How webhooks are retried.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Timeout of one POST.
    pub timeout: Duration,
    /// Attempts before an alert is marked `failed`.
    pub max_attempts: i64,
    /// Wait after the first failure; doubled after each further one.
    pub backoff: Duration,
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_attempts: 6,
            backoff: Duration::from_secs(30),
        }
    }
}

/// Counts of one delivery pass.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// Alerts delivered.
    pub delivered: usize,
    /// Alerts that failed and will be retried.
    pub retrying: usize,
    /// Alerts that failed for the last time.
    pub failed: usize,
}

struct Pending {
    alert_id: String,
    body: Value,
    notify: String,
    attempts: i64,
}

/// Deliver every pending alert whose next attempt is due, all at once; record each outcome.
pub async fn deliver_pending(
    session: &Session,
    client: &reqwest::Client,
    options: &Delivery,
) -> Result<Delivered> {
    let now = Utc::now();
    let (schema, table) = ALERTS;
    let batches = session
        .query(&format!(
            "SELECT alert_id, check_name, key, period, severity, message, payload, notify, \
             attempts FROM {schema}.{table} WHERE delivery_state = 'pending' \
             AND (next_attempt_at IS NULL OR next_attempt_at <= {}) ORDER BY created_at",
            ts_literal(now)
        ))
        .await?;
    let mut pending = Vec::new();
    for batch in &batches {
        let col = |i: usize| -> Result<StringArray> {
            Ok(cast(batch.column(i), &DataType::Utf8)
                .map_err(crate::error::arrow_error)?
                .as_string::<i32>()
                .clone())
        };
        let c: Vec<StringArray> = (0..8).map(col).collect::<Result<_>>()?;
        let attempts =
            cast(batch.column(8), &DataType::Int64).map_err(crate::error::arrow_error)?;
        let attempts = attempts.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        for i in 0..batch.num_rows() {
            let v = |k: usize| if c[k].is_valid(i) { c[k].value(i) } else { "" };
            let payload: Value = serde_json::from_str(v(6)).unwrap_or(Value::Null);
            pending.push(Pending {
                alert_id: v(0).to_string(),
                body: json!({
                    "text": format!("[{}] {}: {}", v(4), v(1), v(5)),
                    "alert_id": v(0),
                    "check": v(1),
                    "key": v(2),
                    "period": v(3),
                    "severity": v(4),
                    "message": v(5),
                    "payload": payload,
                }),
                notify: v(7).to_string(),
                attempts: if attempts.is_valid(i) {
                    attempts.value(i)
                } else {
                    0
                },
            });
        }
    }
    let outcomes =
        futures::future::join_all(pending.iter().map(|p| attempt(client, options, p))).await;
    let mut counts = Delivered::default();
    for (p, outcome) in pending.iter().zip(outcomes) {
        let attempts = p.attempts + 1;
        let set = match outcome {
            Ok(()) => {
                counts.delivered += 1;
                format!(
                    "delivery_state = 'delivered', delivered_at = {}, attempts = {attempts}, \
                     next_attempt_at = NULL, last_error = NULL",
                    ts_literal(Utc::now())
                )
            }
            Err(e) if attempts >= options.max_attempts => {
                counts.failed += 1;
                log::warn!(
                    "alert {} not delivered to {}: {e}; giving up",
                    p.alert_id,
                    p.notify
                );
                format!(
                    "delivery_state = 'failed', attempts = {attempts}, next_attempt_at = NULL, \
                     last_error = {}",
                    quote(&e)
                )
            }
            Err(e) => {
                counts.retrying += 1;
                let wait = options.backoff * 2u32.saturating_pow((attempts - 1) as u32);
                let next = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
                log::info!(
                    "alert {} not delivered to {}: {e}; retrying",
                    p.alert_id,
                    p.notify
                );
                format!(
                    "attempts = {attempts}, next_attempt_at = {}, last_error = {}",
                    ts_literal(next),
                    quote(&e)
                )
            }
        };
        session
            .query(&format!(
                "UPDATE {schema}.{table} SET {set} WHERE alert_id = {}",
                quote(&p.alert_id)
            ))
            .await?;
    }
    Ok(counts)
}

async fn attempt(
    client: &reqwest::Client,
    options: &Delivery,
    pending: &Pending,
) -> std::result::Result<(), String> {
    if pending.notify.is_empty() || pending.notify == "log" {
        log::warn!(
            "alert: {}",
            pending.body["text"].as_str().unwrap_or_default()
        );
        return Ok(());
    }
    let response = client
        .post(&pending.notify)
        .timeout(options.timeout)
        .json(&pending.body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {}", response.status()))
    }
}

/// A moment as the default alert period would show it, for messages.
pub fn period_of(now: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    now.with_timezone(&tz).date_naive().to_string()
}
