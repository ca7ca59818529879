//! `finops.checks`: scheduled SQL whose every returned row is an alert. Its columns, the rules
//! a row must follow (a cron schedule, SQL that parses and plans as one query, a known
//! severity, a `log` or webhook target), the built-in checks seeded at first start, and
//! running checks once.
//!
//! Owns what a check is and how its rows become alerts. Storing and delivering alerts is
//! `alerts.rs`.

use std::str::FromStr;
use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::Statement;

use super::rows::check_notify;
use crate::engine::Session;
use crate::error::{Error, Result};
use crate::storage::{ColumnDefault, TableOptions};

/// `(schema, table)` of the checks.
pub const CHECKS: (&str, &str) = ("finops", "checks");

/// Severities a check may have.
pub const SEVERITIES: [&str; 3] = ["info", "warning", "critical"];

/// Columns of `finops.checks`.
pub fn checks_schema() -> SchemaRef {
    Arc::clone(&CHECKS_SCHEMA)
}

static CHECKS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("schedule", DataType::Utf8, false),
        Field::new("sql", DataType::Utf8, false),
        Field::new("severity", DataType::Utf8, false),
        Field::new("notify", DataType::Utf8, true),
        Field::new("enabled", DataType::Boolean, false),
    ]))
});

/// Storage options of `finops.checks`: severity `warning`, notify `log`, enabled by default.
pub fn checks_options() -> TableOptions {
    let mut options = TableOptions::config();
    options.defaults = vec![
        ("severity".into(), ColumnDefault::Text("warning".into())),
        ("notify".into(), ColumnDefault::Text("log".into())),
        ("enabled".into(), ColumnDefault::Boolean(true)),
    ];
    options
}

/// The built-in checks, as `(name, schedule, severity, sql)`. A check row may name its own
/// `key`, `period`, `message`, `severity` and `notify`; see [`alerts_of`].
pub const BUILTIN_CHECKS: &[(&str, &str, &str, &str)] = &[
    (
        "budget_threshold",
        "*/15 * * * *",
        "warning",
        "SELECT budget_id || '@' || threshold || '%' AS key, \
                CAST(period_start AS VARCHAR) AS period, \
                'budget ' || budget_id || ' reached ' || threshold || '% of ' || \
                CAST(CAST(amount AS DECIMAL(20,2)) AS VARCHAR) || ' USD this ' || period || \
                ' (spent ' || CAST(CAST(spent AS DECIMAL(20,2)) AS VARCHAR) || ', ' || \
                CAST(pct_used AS VARCHAR) || '%)' AS message, \
                CASE WHEN CAST(threshold AS DOUBLE) >= 100 THEN 'critical' ELSE 'warning' END \
                AS severity, \
                COALESCE(notify, 'log') AS notify, budget_id, spent, amount, pct_used \
         FROM (SELECT budget_id, period, period_start, amount, spent, pct_used, notify, \
                      trim(replace(th, '%', '')) AS threshold \
               FROM (SELECT *, unnest(string_to_array(thresholds, ',')) AS th \
                     FROM finops.budget_status)) t \
         WHERE pct_used >= CAST(threshold AS DOUBLE)",
    ),
    (
        "budget_projected_breach",
        "0 * * * *",
        "warning",
        "SELECT budget_id AS key, CAST(period_start AS VARCHAR) AS period, \
                'budget ' || budget_id || ' is projected to spend ' || \
                CAST(CAST(projected AS DECIMAL(20,2)) AS VARCHAR) || ' of ' || \
                CAST(CAST(amount AS DECIMAL(20,2)) AS VARCHAR) || ' USD by ' || \
                CAST(period_end AS VARCHAR) AS message, \
                COALESCE(notify, 'log') AS notify, budget_id, spent, projected, amount \
         FROM finops.budget_status WHERE status = 'projected_to_exceed'",
    ),
    (
        "spend_anomaly",
        "0 * * * *",
        "warning",
        "SELECT dimension || ':' || key || ':' || CAST(day AS VARCHAR) AS key, \
                CAST(day AS VARCHAR) AS period, \
                dimension || ' ' || key || ' spent ' || CAST(round(cost, 2) AS VARCHAR) || \
                ' USD on ' || CAST(CAST(day AS DATE) AS VARCHAR) || ', ' || \
                CAST(round(jump, 2) AS VARCHAR) || ' above its trailing mean' AS message, \
                dimension, key AS dimension_value, day, cost, trailing_mean, z_score \
         FROM kpi.anomalies \
         WHERE day >= finops_now() - INTERVAL '3 days' AND day < finops_now()",
    ),
    // The last two read `finops.usage` filtered on `ts` before grouping (not the views of the
    // same name, filtered after): the time filter then skips every older file.
    (
        "unpriced_usage",
        "0 * * * *",
        "warning",
        "SELECT provider || '/' || model AS key, \
                'no price for ' || provider || '/' || model || ': ' || \
                CAST(SUM(requests) AS VARCHAR) || ' requests in the last day are unpriced' \
                AS message, \
                provider, model, COUNT(*) AS events, SUM(requests) AS requests, \
                MAX(ts) AS last_seen \
         FROM finops.usage \
         WHERE priced IS NOT TRUE AND ts >= finops_now() - INTERVAL '1 day' \
           AND ts <= finops_now() \
         GROUP BY provider, model",
    ),
    (
        "unowned_spend",
        "0 6 * * *",
        "info",
        "SELECT COALESCE(provider, '') || '/' || COALESCE(project, '') || '/' || \
                COALESCE(api_key_id, '') AS key, \
                CAST(CAST(SUM(cost) AS DECIMAL(20,2)) AS VARCHAR) || ' USD of ' || provider || \
                ' spend in the last day has no owning team (project ' || \
                COALESCE(project, '-') || ', api key ' || COALESCE(api_key_id, '-') || ')' \
                AS message, \
                provider, project, api_key_id, SUM(cost) AS cost, MAX(ts) AS last_seen \
         FROM finops.usage \
         WHERE (team IS NULL OR team = '') \
           AND ts >= finops_now() - INTERVAL '1 day' AND ts <= finops_now() \
         GROUP BY provider, project, api_key_id \
         HAVING SUM(cost) > 0",
    ),
];

/// Parse a cron schedule: five fields (minute hour day month weekday), six or seven with
/// seconds and year, or `@hourly`-style names.
pub fn parse_schedule(text: &str) -> std::result::Result<cron::Schedule, String> {
    let text = text.trim();
    let full = if !text.starts_with('@') && text.split_whitespace().count() == 5 {
        format!("0 {text}")
    } else {
        text.to_string()
    };
    cron::Schedule::from_str(&full).map_err(|e| format!("invalid cron schedule \"{text}\": {e}"))
}

/// One row of `finops.checks`.
#[derive(Debug, Clone)]
pub struct Check {
    /// `name`.
    pub name: String,
    /// `schedule` as stored.
    pub schedule_text: String,
    /// `schedule` parsed.
    pub schedule: cron::Schedule,
    /// `sql`.
    pub sql: String,
    /// `severity`.
    pub severity: String,
    /// `notify`.
    pub notify: String,
    /// `enabled`.
    pub enabled: bool,
}

fn text(batch: &RecordBatch, name: &str) -> Result<datafusion::arrow::array::StringArray> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| Error::Internal(format!("column {name} missing")))?;
    Ok(cast(column, &DataType::Utf8)
        .map_err(crate::error::arrow_error)?
        .as_string::<i32>()
        .clone())
}

fn value_at(array: &datafusion::arrow::array::StringArray, i: usize) -> Option<&str> {
    array.is_valid(i).then(|| array.value(i))
}

/// Read the checks in `batches`, checking every rule but the SQL (see [`validate`]).
pub fn checks_from_batches(batches: &[RecordBatch]) -> Result<Vec<Check>> {
    let mut out: Vec<Check> = Vec::new();
    for batch in batches {
        let (names, schedules, sqls, severities, notifies) = (
            text(batch, "name")?,
            text(batch, "schedule")?,
            text(batch, "sql")?,
            text(batch, "severity")?,
            text(batch, "notify")?,
        );
        let enabled = batch
            .column_by_name("enabled")
            .ok_or_else(|| Error::Internal("column enabled missing".into()))?;
        let enabled = cast(enabled, &DataType::Boolean).map_err(crate::error::arrow_error)?;
        let enabled = enabled.as_boolean();
        for i in 0..batch.num_rows() {
            let name = value_at(&names, i).unwrap_or("").trim();
            let bad = |m: String| {
                Error::InvalidParameter(format!("finops.checks: check \"{name}\": {m}"))
            };
            if name.is_empty() {
                return Err(Error::CheckViolation {
                    message: "finops.checks: name must not be empty".into(),
                });
            }
            if out.iter().any(|c| c.name == name) {
                return Err(Error::CheckViolation {
                    message: format!("finops.checks: check \"{name}\" already exists"),
                });
            }
            let schedule_text = value_at(&schedules, i).unwrap_or("");
            let schedule = parse_schedule(schedule_text).map_err(bad)?;
            let severity = value_at(&severities, i).unwrap_or("warning");
            if !SEVERITIES.contains(&severity) {
                return Err(bad(format!(
                    "unknown severity \"{severity}\" (expected one of {})",
                    SEVERITIES.join(", ")
                )));
            }
            let notify = value_at(&notifies, i).unwrap_or("log");
            check_notify(Some(notify)).map_err(bad)?;
            out.push(Check {
                name: name.to_string(),
                schedule_text: schedule_text.to_string(),
                schedule,
                sql: value_at(&sqls, i).unwrap_or("").to_string(),
                severity: severity.to_string(),
                notify: notify.to_string(),
                enabled: enabled.is_valid(i) && enabled.value(i),
            });
        }
    }
    Ok(out)
}

/// Check rows about to be stored: every rule of [`checks_from_batches`], and each `sql` must
/// be one query that plans in `session` (SQLSTATE 22023 otherwise).
pub async fn validate(session: &Session, batches: &[RecordBatch]) -> Result<()> {
    for check in checks_from_batches(batches)? {
        let bad = |m: String| {
            Error::InvalidParameter(format!("finops.checks: check \"{}\": {m}", check.name))
        };
        let statements = crate::statements::parse(&check.sql)
            .map_err(|e| bad(format!("sql does not parse: {e}")))?;
        let [DFStatement::Statement(statement)] = statements.as_slice() else {
            return Err(bad("sql must be exactly one SELECT query".into()));
        };
        if !matches!(statement.as_ref(), Statement::Query(_)) {
            return Err(bad("sql must be a SELECT query".into()));
        }
        crate::statements::plan(session, statement.as_ref().clone())
            .await
            .map_err(|e| bad(format!("sql does not plan: {e}")))?;
    }
    Ok(())
}

/// Every row of `finops.checks`.
pub async fn load_checks(session: &Session) -> Result<Vec<Check>> {
    let (schema, table) = CHECKS;
    let batches = session
        .query(&format!("SELECT * FROM {schema}.{table}"))
        .await?;
    checks_from_batches(&batches)
}

/// The built-in checks as rows of `finops.checks`.
pub fn builtin_batch() -> Result<RecordBatch> {
    use datafusion::arrow::array::{BooleanArray, StringArray};
    type Row = (&'static str, &'static str, &'static str, &'static str);
    let col = |f: fn(&Row) -> &'static str| -> Arc<dyn Array> {
        Arc::new(StringArray::from_iter_values(BUILTIN_CHECKS.iter().map(f)))
    };
    RecordBatch::try_new(
        checks_schema(),
        vec![
            col(|c| c.0),
            col(|c| c.1),
            col(|c| c.3),
            col(|c| c.2),
            Arc::new(StringArray::from_iter_values(
                BUILTIN_CHECKS.iter().map(|_| "log"),
            )),
            Arc::new(BooleanArray::from(vec![true; BUILTIN_CHECKS.len()])),
        ],
    )
    .map_err(crate::error::arrow_error)
}

/// Whether `check` was due at some time in `(after, until]`.
pub fn due(check: &Check, after: DateTime<Utc>, until: DateTime<Utc>) -> bool {
    check
        .schedule
        .after(&after)
        .next()
        .is_some_and(|next| next <= until)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_take_five_or_six_fields() {
        assert!(parse_schedule("*/15 * * * *").is_ok());
        assert!(parse_schedule("0 0 6 * * *").is_ok());
        assert!(parse_schedule("@hourly").is_ok());
        assert!(parse_schedule("every tuesday").is_err());
        assert!(parse_schedule("61 * * * *").is_err());
        for (name, schedule, _, _) in BUILTIN_CHECKS {
            assert!(parse_schedule(schedule).is_ok(), "{name}");
        }
    }

    #[test]
    fn due_when_a_fire_time_falls_in_the_window() {
        let batch = builtin_batch().expect("batch");
        let checks = checks_from_batches(&[batch]).expect("checks");
        let hourly = checks
            .iter()
            .find(|c| c.name == "unpriced_usage")
            .expect("check");
        let at = |s| crate::budget::period::as_of(s).expect("ts");
        assert!(due(
            hourly,
            at("2026-05-15T09:59:00Z"),
            at("2026-05-15T10:00:00Z")
        ));
        assert!(!due(
            hourly,
            at("2026-05-15T10:00:00Z"),
            at("2026-05-15T10:59:00Z")
        ));
    }
}
