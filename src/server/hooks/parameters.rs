//! Postgres run-time parameters: `SET`, `SET TIME ZONE`, `SET NAMES`, `RESET`, `SHOW` and
//! `DISCARD ALL` of the parameters clients set and read (`TimeZone`, `DateStyle`,
//! `statement_timeout`, `application_name`, `client_encoding`, ...).
//!
//! Values live in the connection's metadata, where the result encoding (`DateStyle`,
//! `IntervalStyle`, `bytea_output`, `extra_float_digits`) and the statement timeout read them;
//! values a client sent at start-up are found there too. As in Postgres: a name it does not
//! know is 42704, a value a parameter cannot take is 22023, a read-only parameter is 55P02, a
//! custom name with a dot (`myapp.tenant`) is kept as given, and a changed parameter that
//! Postgres reports is sent to the client as a ParameterStatus.
//!
//! finops-db computes in UTC whatever `TimeZone` says; timestamps go out with their offset, so
//! clients read the same instants. `SET LOCAL` is refused: there are no transaction-scoped
//! settings to undo at `COMMIT`. `RESET` of a `finops.*` or `datafusion.*` session option puts
//! back the server's value, and `RESET ALL` and `DISCARD ALL` reset those options too.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::{DFSchema, ParamValues};
use datafusion::logical_expr::{EmptyRelation, LogicalPlan};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    ContextModifier, DiscardObject, Expr, Ident, ObjectName, Reset, Set, Statement, Value,
};
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use futures::stream;
use pgwire::api::ClientInfo;
use pgwire::api::Type;
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::store::PortalStore;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::startup::ParameterStatus;

use crate::catalog::PG_VERSION;
use crate::engine::Session;
use crate::server::hooks::settings::owned_name;
use crate::server::hooks::to_pgwire;
use crate::server::sqlstate;

mod set_config;

/// `55P02` cannot change a run-time parameter.
const CANT_CHANGE: &str = "55P02";

/// Metadata key of the statement timeout, in milliseconds (read by the query handler).
pub const STATEMENT_TIMEOUT_KEY: &str = "statement_timeout_ms";

/// What values a parameter takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Any text.
    Text,
    /// One of these words (case-insensitive; kept lowercase).
    Choice(&'static [&'static str]),
    /// An integer in a range.
    Integer(i64, i64),
    /// A duration: a number of milliseconds, or with a unit (`ms`, `s`, `min`, `h`, `d`).
    Duration,
    /// A time zone name.
    TimeZone,
    /// An output style and a field order (`ISO, MDY`).
    DateStyle,
    /// An encoding: finops-db speaks UTF8 only.
    Encoding,
    /// Fixed by the server.
    ReadOnly,
}

/// A Postgres parameter: its name as `SHOW` gives it, its default, what it takes and whether a
/// change is reported to the client (Postgres' `GUC_REPORT`).
struct Parameter {
    name: &'static str,
    default: &'static str,
    kind: Kind,
    reported: bool,
}

const fn param(name: &'static str, default: &'static str, kind: Kind) -> Parameter {
    Parameter {
        name,
        default,
        kind,
        reported: false,
    }
}

const fn reported(name: &'static str, default: &'static str, kind: Kind) -> Parameter {
    Parameter {
        name,
        default,
        kind,
        reported: true,
    }
}

const BOOL: Kind = Kind::Choice(&["on", "off", "true", "false", "yes", "no", "1", "0"]);
const ISOLATION: Kind = Kind::Choice(&[
    "read committed",
    "read uncommitted",
    "repeatable read",
    "serializable",
]);

/// The parameters finops-db knows. Those that change nothing here (`work_mem`, `lock_timeout`,
/// ...) are kept so that clients and poolers which set them work, and `SHOW` tells them back.
const PARAMETERS: &[Parameter] = &[
    reported("application_name", "", Kind::Text),
    reported("client_encoding", "UTF8", Kind::Encoding),
    reported("DateStyle", "ISO, MDY", Kind::DateStyle),
    reported("default_transaction_read_only", "off", BOOL),
    reported("in_hot_standby", "off", Kind::ReadOnly),
    reported("integer_datetimes", "on", Kind::ReadOnly),
    reported(
        "IntervalStyle",
        "postgres",
        Kind::Choice(&["postgres", "postgres_verbose", "sql_standard", "iso_8601"]),
    ),
    reported("is_superuser", "off", Kind::ReadOnly),
    reported("server_encoding", "UTF8", Kind::ReadOnly),
    reported("server_version", PG_VERSION, Kind::ReadOnly),
    reported("standard_conforming_strings", "on", Kind::Choice(&["on"])),
    reported("TimeZone", "UTC", Kind::TimeZone),
    param("bytea_output", "hex", Kind::Choice(&["hex", "escape"])),
    param(
        "client_min_messages",
        "notice",
        Kind::Choice(&[
            "debug5", "debug4", "debug3", "debug2", "debug1", "debug", "log", "notice", "warning",
            "error",
        ]),
    ),
    param("default_transaction_isolation", "read committed", ISOLATION),
    param("extra_float_digits", "1", Kind::Integer(-15, 3)),
    param("idle_in_transaction_session_timeout", "0", Kind::Duration),
    param("idle_session_timeout", "0", Kind::Duration),
    param("jit", "off", BOOL),
    param("lc_messages", "C", Kind::Text),
    param("lc_monetary", "C", Kind::Text),
    param("lc_numeric", "C", Kind::Text),
    param("lc_time", "C", Kind::Text),
    param("lock_timeout", "0", Kind::Duration),
    param("maintenance_work_mem", "64MB", Kind::Text),
    param("max_identifier_length", "63", Kind::ReadOnly),
    param(
        "max_parallel_workers_per_gather",
        "2",
        Kind::Integer(0, 1024),
    ),
    param("row_security", "on", BOOL),
    param("search_path", "\"$user\", public", Kind::Text),
    param("server_version_num", "160006", Kind::ReadOnly),
    param("statement_timeout", "0", Kind::Duration),
    param(
        "synchronous_commit",
        "on",
        Kind::Choice(&["on", "off", "local", "remote_write", "remote_apply"]),
    ),
    param("transaction_isolation", "read committed", ISOLATION),
    param("transaction_read_only", "off", BOOL),
    param("work_mem", "4MB", Kind::Text),
];

fn lookup(name: &str) -> Option<&'static Parameter> {
    PARAMETERS
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name))
}

/// What a statement asks of the parameters.
#[derive(Debug)]
enum Request {
    /// Set `name` to `value` (`None`: back to its default).
    Set {
        name: String,
        value: Option<String>,
    },
    Reset(String),
    ResetAll,
    Show(String),
    DiscardAll,
    /// `SELECT set_config(name, value, is_local)`.
    SetConfig(set_config::SetConfig),
    /// A `SET` form that changes nothing here (`SET TRANSACTION`, `SET SESSION
    /// CHARACTERISTICS`): acknowledged.
    Accept,
    /// Refused with 0A000 and this message.
    Unsupported(&'static str),
}

/// Names `SHOW` and `SET` take as several words.
fn joined_name(parts: &[Ident]) -> String {
    let words: Vec<String> = parts.iter().map(|p| p.value.to_ascii_lowercase()).collect();
    match words.join(" ").as_str() {
        "time zone" => "TimeZone".to_string(),
        "transaction isolation level" => "transaction_isolation".to_string(),
        "session authorization" => "session_authorization".to_string(),
        _ => parts
            .iter()
            .map(|p| p.value.as_str())
            .collect::<Vec<_>>()
            .join("."),
    }
}

fn object_name(name: &ObjectName) -> String {
    name.to_string().trim_matches('"').to_string()
}

/// The text of a `SET` value list: `'x'` is x, `ISO, MDY` is "ISO, MDY", `DEFAULT` is `None`.
fn value_text(values: &[Expr]) -> Option<String> {
    if let [Expr::Identifier(ident)] = values
        && ident.quote_style.is_none()
        && ident.value.eq_ignore_ascii_case("default")
    {
        return None;
    }
    let parts: Vec<String> = values
        .iter()
        .map(|v| match v {
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
                other => other.to_string(),
            },
            Expr::Identifier(ident) => ident.value.clone(),
            other => other.to_string(),
        })
        .collect();
    Some(parts.join(", "))
}

/// Whether `statement` is a `SELECT set_config(...)` this hook answers (the server's own
/// query path, which runs plain queries without the hooks, leaves it to them).
pub(crate) fn is_set_config(statement: &Statement) -> bool {
    set_config::set_config(statement).is_some()
}

/// What `statement` asks, if it is one of this hook's statements.
fn request(statement: &Statement) -> Option<Request> {
    match statement {
        Statement::Set(set) => Some(match set {
            Set::SingleAssignment {
                scope: Some(ContextModifier::Local),
                ..
            }
            | Set::SetTimeZone { local: true, .. } => Request::Unsupported(
                "SET LOCAL is not supported: finops-db keeps no transaction-scoped settings \
                 (use SET, and RESET after)",
            ),
            Set::SingleAssignment {
                hivevar: false,
                variable,
                values,
                ..
            } => Request::Set {
                name: object_name(variable),
                value: value_text(values),
            },
            Set::SetTimeZone { value, .. } => Request::Set {
                name: "TimeZone".to_string(),
                value: match value_text(std::slice::from_ref(value)) {
                    Some(v) if v.eq_ignore_ascii_case("local") => None,
                    v => v,
                },
            },
            Set::SetNames { charset_name, .. } => Request::Set {
                name: "client_encoding".to_string(),
                value: Some(charset_name.value.clone()),
            },
            Set::SetNamesDefault {} => Request::Set {
                name: "client_encoding".to_string(),
                value: None,
            },
            Set::SetRole { .. } | Set::SetSessionAuthorization(_) => Request::Unsupported(
                "SET ROLE and SET SESSION AUTHORIZATION are not supported: log in as the user",
            ),
            _ => Request::Accept,
        }),
        Statement::Reset(reset) => Some(match &reset.reset {
            Reset::ALL => Request::ResetAll,
            Reset::ConfigurationParameter(name) => Request::Reset(object_name(name)),
        }),
        Statement::ShowVariable { variable } => {
            let name = joined_name(variable);
            (!name.eq_ignore_ascii_case("all")).then_some(Request::Show(name))
        }
        Statement::Discard {
            object_type: DiscardObject::ALL,
        } => Some(Request::DiscardAll),
        Statement::Query(_) => set_config::set_config(statement).map(Request::SetConfig),
        _ => None,
    }
}

fn user_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(sqlstate::error(code, message)))
}

/// 42704 for a parameter or session option nobody knows.
pub(super) fn unknown(name: &str) -> PgWireError {
    user_error(
        sqlstate::UNDEFINED_OBJECT,
        format!("unrecognized configuration parameter \"{name}\""),
    )
}

fn invalid(name: &str, value: &str, hint: &str) -> PgWireError {
    user_error(
        sqlstate::INVALID_PARAMETER,
        format!("invalid value for parameter \"{name}\": \"{value}\"{hint}"),
    )
}

/// A duration in milliseconds, as Postgres reads `statement_timeout`.
fn parse_duration(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match unit.trim() {
        "" | "ms" => 1.0,
        "s" => 1_000.0,
        "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => return None,
    };
    let ms = (number * factor).round();
    (ms.is_finite() && ms <= i32::MAX as f64).then_some(ms as u64)
}

/// A duration as `SHOW` gives it: the largest unit that divides it.
fn show_duration(ms: u64) -> String {
    if ms == 0 {
        return "0".to_string();
    }
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("min", 60_000),
        ("s", 1_000),
    ] {
        if ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// `DateStyle` from `value` on top of `current`: the output style, the field order, or both.
fn date_style(value: &str, current: &str) -> Option<String> {
    let mut parts = current.split(',').map(str::trim);
    let mut style = parts.next().unwrap_or("ISO").to_string();
    let mut order = parts.next().unwrap_or("MDY").to_string();
    for word in value.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        match word.to_ascii_uppercase().as_str() {
            "ISO" => style = "ISO".into(),
            "SQL" => style = "SQL".into(),
            "POSTGRES" => style = "Postgres".into(),
            "GERMAN" => style = "German".into(),
            "DMY" | "EURO" | "EUROPEAN" => order = "DMY".into(),
            "MDY" | "US" | "NONEURO" | "NONEUROPEAN" => order = "MDY".into(),
            "YMD" => order = "YMD".into(),
            "DEFAULT" => {}
            _ => return None,
        }
    }
    Some(format!("{style}, {order}"))
}

/// The canonical form of `value` for `parameter`, or why it is refused.
fn checked(parameter: &Parameter, value: &str, current: &str) -> PgWireResult<String> {
    let name = parameter.name;
    match parameter.kind {
        Kind::Text => Ok(value.to_string()),
        Kind::Choice(choices) => {
            let lower = value.trim().to_ascii_lowercase();
            if choices.contains(&lower.as_str()) {
                Ok(lower)
            } else {
                Err(invalid(
                    name,
                    value,
                    &format!(" (one of: {})", choices.join(", ")),
                ))
            }
        }
        Kind::Integer(min, max) => match value.trim().parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n.to_string()),
            _ => Err(invalid(
                name,
                value,
                &format!(" (an integer from {min} to {max})"),
            )),
        },
        Kind::Duration => parse_duration(value)
            .map(|ms| ms.to_string())
            .ok_or_else(|| {
                invalid(
                    name,
                    value,
                    " (milliseconds, or a number with ms, s, min, h or d)",
                )
            }),
        Kind::TimeZone => {
            let trimmed = value.trim();
            crate::budget::period::time_zone(trimmed)
                .map(|zone| {
                    if trimmed.is_empty() {
                        String::new()
                    } else {
                        zone.name().to_string()
                    }
                })
                .map_err(|_| {
                    invalid(
                        name,
                        value,
                        " (a time zone name such as UTC or Europe/Berlin)",
                    )
                })
        }
        Kind::DateStyle => date_style(value, current).ok_or_else(|| {
            invalid(
                name,
                value,
                " (ISO, SQL, Postgres or German; DMY, MDY or YMD)",
            )
        }),
        Kind::Encoding => {
            let upper = value.trim().to_ascii_uppercase().replace('-', "");
            if upper == "UTF8" || upper == "UNICODE" {
                Ok("UTF8".to_string())
            } else {
                Err(user_error(
                    sqlstate::FEATURE_NOT_SUPPORTED,
                    format!(
                        "conversion to encoding \"{value}\" is not supported: finops-db speaks UTF8"
                    ),
                ))
            }
        }
        Kind::ReadOnly => Err(user_error(
            CANT_CHANGE,
            format!("parameter \"{name}\" cannot be changed"),
        )),
    }
}

/// The metadata key a parameter's value is kept under.
fn key(parameter: &Parameter) -> String {
    if parameter.kind == Kind::Duration && parameter.name == "statement_timeout" {
        STATEMENT_TIMEOUT_KEY.to_string()
    } else {
        parameter.name.to_ascii_lowercase()
    }
}

/// The value in `metadata` (set here, or sent at start-up under any case), if any.
fn stored<'a>(metadata: &'a HashMap<String, String>, key: &str) -> Option<&'a String> {
    metadata.get(key).or_else(|| {
        metadata
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// The value `SHOW` gives for `parameter`.
fn current(metadata: &HashMap<String, String>, parameter: &Parameter) -> String {
    let value = if parameter.kind == Kind::ReadOnly {
        None
    } else {
        stored(metadata, &key(parameter)).cloned()
    };
    match (parameter.name, value) {
        ("statement_timeout", Some(ms)) => show_duration(ms.parse().unwrap_or(0)),
        ("statement_timeout", None) => parameter.default.to_string(),
        (_, Some(v)) if parameter.kind == Kind::Duration => show_duration(v.parse().unwrap_or(0)),
        (_, Some(v)) => v,
        (_, None) => parameter.default.to_string(),
    }
}

/// Every parameter finops-db knows with its value on this connection, for `SHOW ALL`.
pub fn entries(metadata: &HashMap<String, String>) -> Vec<(String, String)> {
    PARAMETERS
        .iter()
        .map(|p| (p.name.to_string(), current(metadata, p)))
        .collect()
}

/// Every parameter with its value on this connection, and the custom ones it set: what
/// `current_setting(name)` reads in a query (see [`Session::set_pg_parameters`]).
pub fn connection_values(metadata: &HashMap<String, String>) -> Vec<(String, String)> {
    let mut values = entries(metadata);
    values.extend(
        metadata
            .iter()
            .filter(|(k, _)| k.contains('.') && !owned_name(k) && lookup(k).is_none())
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    values
}

/// Change one parameter on `client`; returns the ParameterStatus to send, if Postgres reports it.
fn set(
    session: &Session,
    client: &mut dyn HookClient,
    name: &str,
    value: Option<String>,
) -> PgWireResult<Option<ParameterStatus>> {
    let Some(parameter) = lookup(name) else {
        if owned_name(name) {
            // Only RESET comes here: the session-option hook answers SET.
            let known = crate::engine::settings(session.context().state().config_options())
                .iter()
                .any(|(key, _)| key.eq_ignore_ascii_case(name));
            if !known {
                return Err(unknown(name));
            }
            session.reset_options(Some(name)).map_err(to_pgwire)?;
            return Ok(None);
        }
        // A custom parameter (`myapp.tenant`) is kept under its name, as Postgres does.
        if name.contains('.') {
            let key = name.to_ascii_lowercase();
            match value {
                Some(v) => client.metadata_mut().insert(key, v),
                None => client.metadata_mut().remove(&key),
            };
            return Ok(None);
        }
        return Err(unknown(name));
    };
    let key = key(parameter);
    match value {
        Some(value) => {
            let before = current(client.metadata(), parameter);
            let value = checked(parameter, &value, &before)?;
            let metadata = client.metadata_mut();
            metadata.retain(|k, _| k == &key || !k.eq_ignore_ascii_case(&key));
            metadata.insert(key, value);
        }
        None => {
            if parameter.kind == Kind::ReadOnly {
                return Err(checked(parameter, "", "")
                    .err()
                    .unwrap_or_else(|| unknown(name)));
            }
            client
                .metadata_mut()
                .retain(|k, _| !k.eq_ignore_ascii_case(&key));
        }
    }
    Ok(parameter.reported.then(|| {
        ParameterStatus::new(
            parameter.name.to_string(),
            current(client.metadata(), parameter),
        )
    }))
}

/// Every parameter and session option back to its default; returns the reported parameters
/// that changed.
fn reset_all(session: &Session, client: &mut dyn HookClient) -> PgWireResult<Vec<ParameterStatus>> {
    session.reset_options(None).map_err(to_pgwire)?;
    let before: Vec<String> = PARAMETERS
        .iter()
        .map(|p| current(client.metadata(), p))
        .collect();
    let keys: Vec<String> = PARAMETERS
        .iter()
        .filter(|p| p.kind != Kind::ReadOnly)
        .map(key)
        .collect();
    client.metadata_mut().retain(|k, _| {
        !keys.iter().any(|key| k.eq_ignore_ascii_case(key)) && (!k.contains('.') || owned_name(k))
    });
    Ok(PARAMETERS
        .iter()
        .zip(before)
        .filter(|(p, was)| p.reported && current(client.metadata(), p) != *was)
        .map(|(p, _)| ParameterStatus::new(p.name.to_string(), p.default.to_string()))
        .collect())
}

/// The value `SHOW name` gives, and the column it is named by.
fn show(metadata: &HashMap<String, String>, name: &str) -> PgWireResult<(String, String)> {
    if let Some(parameter) = lookup(name) {
        return Ok((parameter.name.to_string(), current(metadata, parameter)));
    }
    if name.contains('.')
        && !owned_name(name)
        && let Some(value) = metadata.get(&name.to_ascii_lowercase())
    {
        return Ok((name.to_string(), value.clone()));
    }
    Err(unknown(name))
}

/// The one-column, one-row answer of `SHOW`.
fn show_response(column: String, value: String) -> PgWireResult<Response> {
    let fields = Arc::new(vec![FieldInfo::new(
        column,
        None,
        None,
        Type::TEXT,
        FieldFormat::Text,
    )]);
    let mut encoder = DataRowEncoder::new(Arc::clone(&fields));
    encoder.encode_field(&Some(value))?;
    let row = encoder.take_row();
    Ok(Response::Query(QueryResponse::new(
        fields,
        stream::iter([Ok(row)]),
    )))
}

/// The plan `Parse` describes a statement of this hook with: no columns, or `SHOW`'s one.
fn described_plan(column: Option<&str>) -> LogicalPlan {
    let fields: Vec<Field> = column
        .into_iter()
        .map(|c| Field::new(c, DataType::Utf8, true))
        .collect();
    let schema = DFSchema::try_from(Schema::new(fields)).unwrap_or_else(|_| DFSchema::empty());
    LogicalPlan::EmptyRelation(EmptyRelation {
        produce_one_row: false,
        schema: Arc::new(schema),
    })
}

async fn answer(
    session: &Session,
    client: &mut dyn HookClient,
    request: Request,
) -> PgWireResult<Response> {
    let (tag, statuses) = match request {
        Request::Set { name, value } => (
            "SET",
            set(session, client, &name, value)?.into_iter().collect(),
        ),
        Request::Reset(name) => (
            "RESET",
            set(session, client, &name, None)?.into_iter().collect(),
        ),
        Request::ResetAll => ("RESET", reset_all(session, client)?),
        Request::DiscardAll => {
            client.portal_store().clear_portals();
            session.deallocate_all().await;
            ("DISCARD ALL", reset_all(session, client)?)
        }
        Request::Show(name) => {
            let (column, value) = show(client.metadata(), &name)?;
            return show_response(column, value);
        }
        Request::SetConfig(call) => return answer_set_config(session, client, call).await,
        Request::Accept => ("SET", Vec::new()),
        Request::Unsupported(message) => {
            return Err(user_error(
                sqlstate::FEATURE_NOT_SUPPORTED,
                message.to_string(),
            ));
        }
    };
    session.set_pg_parameters(&connection_values(client.metadata()));
    send_statuses(client, statuses).await?;
    Ok(Response::Execution(Tag::new(tag)))
}

/// `set_config(name, value, false)`: `SET name = value`, answered with the value now set.
async fn answer_set_config(
    session: &Session,
    client: &mut dyn HookClient,
    call: set_config::SetConfig,
) -> PgWireResult<Response> {
    let set_config::SetConfig {
        name,
        value,
        local,
        column,
    } = call;
    if local {
        return Err(user_error(
            sqlstate::FEATURE_NOT_SUPPORTED,
            "set_config(..., true) is not supported: finops-db keeps no transaction-scoped \
             settings (pass false, and set the value back after)"
                .to_string(),
        ));
    }
    if owned_name(&name) {
        // A `finops.*` or `datafusion.*` option is the session's: set as `SET` sets it.
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err(unknown(&name));
        }
        let sql = format!("SET {name} = '{}'", value.replace('\'', "''"));
        for statement in crate::statements::parse(&sql).map_err(to_pgwire)? {
            if let datafusion::sql::parser::Statement::Statement(statement) = statement {
                session.execute(*statement).await.map_err(to_pgwire)?;
            }
        }
        return show_response(column, value);
    }
    let statuses = set(session, client, &name, Some(value.clone()))?
        .into_iter()
        .collect();
    session.set_pg_parameters(&connection_values(client.metadata()));
    send_statuses(client, statuses).await?;
    let value = lookup(&name).map_or(value, |parameter| current(client.metadata(), parameter));
    show_response(column, value)
}

async fn send_statuses(
    client: &mut dyn HookClient,
    statuses: Vec<ParameterStatus>,
) -> PgWireResult<()> {
    for status in statuses {
        client
            .send_message(PgWireBackendMessage::ParameterStatus(status))
            .await?;
    }
    Ok(())
}

/// The hook for Postgres run-time parameters of one connection.
#[derive(Debug)]
pub struct ParametersHook {
    session: Session,
}

impl ParametersHook {
    /// The hook for `session` (whose options `RESET` puts back).
    pub fn new(session: Session) -> Self {
        ParametersHook { session }
    }
}

/// The timeout `SET statement_timeout` gave this connection: `None` when it set none,
/// `Some(None)` when it turned it off.
pub fn statement_timeout(metadata: &HashMap<String, String>) -> Option<Option<Duration>> {
    let ms: u64 = metadata.get(STATEMENT_TIMEOUT_KEY)?.parse().ok()?;
    Some((ms > 0).then(|| Duration::from_millis(ms)))
}

#[async_trait]
impl QueryHook for ParametersHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let request = request(statement)?;
        Some(answer(&self.session, client, request).await)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        Some(match request(statement)? {
            Request::Show(name) => {
                show(client.metadata(), &name).map(|(column, _)| described_plan(Some(&column)))
            }
            Request::SetConfig(call) => Ok(described_plan(Some(&call.column))),
            _ => Ok(described_plan(None)),
        })
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let request = request(statement)?;
        Some(answer(&self.session, client, request).await)
    }
}
