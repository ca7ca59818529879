//! The catalog clients see: the `finops`, `providers` and `kpi` schemas, and the Postgres system
//! functions that psql, BI tools and drivers call on connect which the pg_catalog crate lacks.
//!
//! Owns names and introspection. It must not own data: tables come from storage and providers.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, TimeUnit};
use datafusion::catalog::{MemorySchemaProvider, Session, TableProvider};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, create_udf,
};
use datafusion::physical_plan::collect;
use datafusion::prelude::SessionContext;

use datafusion_pg_catalog::pg_catalog::context::{PgCatalogContextProvider, Role as PgRole};

use crate::config::{Config, DATABASE, Role};
use crate::engine::Identity;
use crate::error::{Error, Result};

mod expand_array;
pub(crate) mod format;
mod functions;
pub(crate) mod int2_arrays;
mod interval;
pub(crate) mod settings;
mod to_char;
mod to_date;

pub use expand_array::NAME as EXPAND_ARRAY;
pub use functions::register_function_catalog;
pub use interval::IntervalOperators;

/// Schemas that exist from the first start.
pub const SCHEMAS: [&str; 3] = ["finops", "providers", "kpi"];

/// The PostgreSQL version finops-db speaks; clients (SQLAlchemy, JDBC) parse it.
pub const PG_VERSION: &str = "16.6";

/// The string `version()` returns.
pub fn version_string() -> String {
    format!(
        "PostgreSQL {PG_VERSION} on {}-linux-gnu, compiled by rustc (finops-db {})",
        std::env::consts::ARCH,
        env!("CARGO_PKG_VERSION")
    )
}

/// The login roles `pg_roles` (and so psql `\du`) lists: the configured users.
#[derive(Debug, Clone)]
pub struct Roles {
    users: Arc<Vec<(String, Role)>>,
}

impl Roles {
    /// The roles of `config`: its users, or the default user when none are configured.
    pub fn from_config(config: &Config) -> Roles {
        let mut users: Vec<(String, Role)> = config
            .users
            .iter()
            .map(|u| (u.name.clone(), u.role))
            .collect();
        if users.is_empty() {
            users.push((crate::config::DEFAULT_USER.to_string(), Role::Admin));
        }
        Roles {
            users: Arc::new(users),
        }
    }

    /// The role that owns every relation: the first administrator.
    fn owner(&self) -> String {
        self.users
            .iter()
            .find(|(_, role)| *role == Role::Admin)
            .or(self.users.first())
            .map_or_else(
                || crate::config::DEFAULT_USER.to_string(),
                |(n, _)| n.clone(),
            )
    }

    /// `pg_get_userbyid(oid)`, which psql's `\dt`, `\dv` and `\l` call for the Owner column:
    /// the owner for the oid `pg_class.relowner` and `pg_roles.oid` give (0) and for Postgres'
    /// bootstrap superuser (10), and `unknown (OID=n)` for any other, as in Postgres.
    pub fn register_owner_function(&self, ctx: &SessionContext) {
        let owner = self.owner();
        ctx.register_udf(create_udf(
            "pg_get_userbyid",
            vec![DataType::Int64],
            DataType::Utf8,
            Volatility::Stable,
            Arc::new(move |args: &[ColumnarValue]| {
                let arrays = ColumnarValue::values_to_arrays(args)?;
                let oids = cast(&arrays[0], &DataType::Int64)?;
                let out: StringArray = oids
                    .as_primitive::<Int64Type>()
                    .iter()
                    .map(|oid| {
                        oid.map(|oid| match oid {
                            0 | 10 => owner.clone(),
                            other => format!("unknown (OID={other})"),
                        })
                    })
                    .collect();
                Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
            }),
        ));
    }
}

#[async_trait::async_trait]
impl PgCatalogContextProvider for Roles {
    async fn roles(&self) -> Vec<String> {
        self.users.iter().map(|(name, _)| name.clone()).collect()
    }

    async fn role(&self, name: &str) -> Option<PgRole> {
        let (name, role) = self.users.iter().find(|(n, _)| n == name)?;
        let admin = *role == Role::Admin;
        Some(PgRole {
            name: name.clone(),
            is_superuser: admin,
            can_login: true,
            can_create_db: false,
            can_create_role: admin,
            can_create_user: admin,
            can_replication: false,
            grants: Vec::new(),
            inherited_roles: Vec::new(),
        })
    }
}

/// Create the built-in schemas in the `finops` database.
pub fn register_schemas(ctx: &SessionContext) -> Result<()> {
    let catalog = ctx
        .catalog(DATABASE)
        .ok_or_else(|| Error::Internal(format!("catalog {DATABASE} missing")))?;
    for schema in SCHEMAS {
        if catalog.schema(schema).is_none() {
            catalog.register_schema(schema, Arc::new(MemorySchemaProvider::new()))?;
        }
    }
    Ok(())
}

/// Every row of `table`, a small catalog table read in full.
pub(crate) async fn scan_all(
    table: &Arc<dyn TableProvider>,
    state: &dyn Session,
) -> datafusion::error::Result<Vec<RecordBatch>> {
    let plan = table.scan(state, None, &[], None).await?;
    collect(plan, state.task_ctx()).await
}

/// A scan of `batches` (rows a catalog table made for this query), with the scan's projection,
/// filters and limit applied as DataFusion's in-memory table applies them.
pub(crate) async fn scan_rows(
    schema: datafusion::arrow::datatypes::SchemaRef,
    batches: Vec<RecordBatch>,
    state: &dyn Session,
    projection: Option<&Vec<usize>>,
    filters: &[datafusion::logical_expr::Expr],
    limit: Option<usize>,
) -> datafusion::error::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
    datafusion::catalog::MemTable::try_new(schema, vec![batches])?
        .scan(state, projection, filters, limit)
        .await
}

/// The oid and name of every schema `pg_namespace` lists (none without the table).
pub(crate) async fn schema_oids(
    pg_namespace: Option<&Arc<dyn TableProvider>>,
    state: &dyn Session,
) -> datafusion::error::Result<Vec<(i64, String)>> {
    let mut out = Vec::new();
    let Some(pg_namespace) = pg_namespace else {
        return Ok(out);
    };
    for batch in scan_all(pg_namespace, state).await? {
        let (Some(oid), Some(name)) =
            (batch.column_by_name("oid"), batch.column_by_name("nspname"))
        else {
            continue;
        };
        let oid = cast(oid, &DataType::Int64)?;
        let name = cast(name, &DataType::Utf8)?;
        let (oid, name) = (oid.as_primitive::<Int64Type>(), name.as_string::<i32>());
        for i in 0..batch.num_rows() {
            if oid.is_valid(i) && name.is_valid(i) {
                out.push((oid.value(i), name.value(i).to_string()));
            }
        }
    }
    Ok(out)
}

/// Functions shared by every session.
pub fn register_functions(ctx: &SessionContext) {
    let version = version_string();
    ctx.register_udf(constant_text("version", version));
    ctx.register_udf(ScalarUDF::from(CurrentSettingFunc::new()));
    format::register(ctx);
    expand_array::register(ctx);
    to_char::register(ctx);
    to_date::register(ctx);
    interval::register(ctx);
    // Postgres' name for a random UUID (version 4), DataFusion's `uuid()`.
    let uuid = ctx.state().scalar_functions().get("uuid").cloned();
    if let Some(uuid) = uuid {
        ctx.register_udf(uuid.as_ref().clone().with_aliases(["gen_random_uuid"]));
    }
    ctx.register_udf(ScalarUDF::from(RegclassIn {
        signature: Signature::any(2, Volatility::Stable),
    }));
    ctx.register_udf(ScalarUDF::from(PgTypeofFunc {
        signature: Signature::any(1, Volatility::Immutable),
    }));
    ctx.register_udf(create_udf(
        "pg_size_pretty",
        vec![DataType::Int64],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let Some(sizes) = arrays[0].as_any().downcast_ref::<Int64Array>() else {
                return exec_err!("pg_size_pretty expects bigint");
            };
            let out: StringArray = sizes.iter().map(|v| v.map(size_pretty)).collect();
            Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
        }),
    ));
    for name in [
        "pg_function_is_visible",
        "pg_type_is_visible",
        "pg_operator_is_visible",
        "pg_opclass_is_visible",
        "pg_opfamily_is_visible",
        "pg_collation_is_visible",
        "pg_conversion_is_visible",
    ] {
        ctx.register_udf(create_udf(
            name,
            vec![DataType::Int64],
            DataType::Boolean,
            Volatility::Stable,
            Arc::new(|args: &[ColumnarValue]| {
                let arrays = ColumnarValue::values_to_arrays(args)?;
                let out: BooleanArray = (0..arrays[0].len())
                    .map(|i| (!arrays[0].is_null(i)).then_some(true))
                    .collect();
                Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
            }),
        ));
    }
    // finops-db has no sequences: every column's serial sequence is NULL.
    ctx.register_udf(create_udf(
        "pg_get_serial_sequence",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(|_args: &[ColumnarValue]| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)))),
    ));
    // Descriptions and function signatures: NULL (shown empty by psql and BI tools), except
    // for the FinOps functions, which `register_function_catalog` describes.
    for name in [
        "pg_get_function_result",
        "pg_get_function_arguments",
        "pg_get_function_identity_arguments",
        "pg_get_function_sqlbody",
        "obj_description",
        "col_description",
        "shobj_description",
    ] {
        ctx.register_udf(ScalarUDF::from(NullFunc {
            name,
            signature: Signature::variadic_any(Volatility::Stable),
            returns: DataType::Utf8,
        }));
    }
    // Sizes of single relations and databases, which finops-db does not track: NULL (unknown),
    // shown as an empty Size by psql's `\dt+`, `\l+` and `\dm+`, never a made-up 0.
    for name in [
        "pg_table_size",
        "pg_relation_size",
        "pg_total_relation_size",
        "pg_indexes_size",
        "pg_database_size",
    ] {
        ctx.register_udf(ScalarUDF::from(NullFunc {
            name,
            signature: Signature::variadic_any(Volatility::Stable),
            returns: DataType::Int64,
        }));
    }
    ctx.register_udf(create_udf(
        SQL_TYPE_NAME,
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let Some(types) = arrays[0].as_any().downcast_ref::<StringArray>() else {
                return exec_err!("{SQL_TYPE_NAME} expects text");
            };
            let out: StringArray = types
                .iter()
                .map(|t| t.map(|t| t.parse::<DataType>().map_or(t, |t| sql_type_name(&t))))
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
        }),
    ));
    // finops-db takes no advisory locks, so there are none to release; connection pools
    // (asyncpg) call this when a connection is given back. Postgres returns `void`; this NULL.
    ctx.register_udf(ScalarUDF::from(NullFunc {
        name: "pg_advisory_unlock_all",
        signature: Signature::exact(vec![], Volatility::Volatile),
        returns: DataType::Utf8,
    }));
    // A primary, never a standby in recovery; and when it started (this engine: the server's
    // start for `serve`). Monitoring tools (postgres_exporter, pgAdmin's dashboard) ask both.
    ctx.register_udf(create_udf(
        "pg_is_in_recovery",
        vec![],
        DataType::Boolean,
        Volatility::Stable,
        Arc::new(|_args: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(false))))
        }),
    ));
    let started = chrono::Utc::now().timestamp_micros();
    ctx.register_udf(create_udf(
        "pg_postmaster_start_time",
        vec![],
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Volatility::Stable,
        Arc::new(move |_args: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::TimestampMicrosecond(
                Some(started),
                Some("UTC".into()),
            )))
        }),
    ));
    // finops-db has no tablespaces of its own: every relation is in the default one.
    ctx.register_udf(ScalarUDF::from(NullFunc {
        name: "pg_tablespace_location",
        signature: Signature::variadic_any(Volatility::Stable),
        returns: DataType::Utf8,
    }));
}

/// Functions whose answer depends on who is logged in.
pub fn register_session_functions(ctx: &SessionContext, identity: &Identity) {
    for name in ["current_user", "session_user", "current_role", "user"] {
        ctx.register_udf(constant_text(name, identity.user.clone()));
    }
}

/// The function that turns an Arrow type name (as DataFusion's `information_schema.columns`
/// gives it) into the SQL name Postgres gives there; used by the statement rewrite of
/// `information_schema.columns`.
pub const SQL_TYPE_NAME: &str = "information_schema_data_type";

/// The name Postgres' `information_schema.columns.data_type` uses for a column of type `t`: what
/// BI tools match on (Grafana offers `timestamp with time zone` and numeric columns as time
/// columns).
fn sql_type_name(t: &DataType) -> &'static str {
    match t {
        DataType::Boolean => "boolean",
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint",
        DataType::Int32 | DataType::UInt16 => "integer",
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => "bigint",
        DataType::Float16 | DataType::Float32 => "real",
        DataType::Float64 => "double precision",
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => "numeric",
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text",
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "bytea",
        DataType::Date32 | DataType::Date64 => "date",
        DataType::Time32(_) | DataType::Time64(_) => "time without time zone",
        DataType::Timestamp(_, Some(_)) => "timestamp with time zone",
        DataType::Timestamp(_, None) => "timestamp without time zone",
        DataType::Interval(_) | DataType::Duration(_) => "interval",
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::ListView(_)
        | DataType::LargeListView(_)
        | DataType::FixedSizeList(..) => "ARRAY",
        DataType::Dictionary(_, value) => sql_type_name(value),
        DataType::Null => "unknown",
        _ => "USER-DEFINED",
    }
}

fn constant_text(name: &str, value: String) -> ScalarUDF {
    create_udf(
        name,
        vec![],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |_args: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                value.clone(),
            ))))
        }),
    )
}

fn size_pretty(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["bytes", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    // Postgres switches unit once the value reaches 10240 of the current one.
    while value.abs() >= 10240.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{} {}", value.round() as i64, UNITS[unit])
    }
}

/// `current_setting(name)`: a session option (`finops.*`, `datafusion.*`) or a fixed server
/// parameter; an unknown name is an error, as in Postgres.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CurrentSettingFunc {
    signature: Signature,
}

impl CurrentSettingFunc {
    fn new() -> Self {
        CurrentSettingFunc {
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Stable),
        }
    }
}

fn fixed_setting(name: &str) -> Option<String> {
    Some(match name {
        "server_version" => PG_VERSION.to_string(),
        "server_version_num" => "160006".to_string(),
        "server_encoding" | "client_encoding" => "UTF8".to_string(),
        "search_path" => "\"$user\", public".to_string(),
        "standard_conforming_strings" => "on".to_string(),
        "datestyle" => "ISO, MDY".to_string(),
        "integer_datetimes" => "on".to_string(),
        "max_identifier_length" => "63".to_string(),
        "default_transaction_isolation" | "transaction_isolation" => "read committed".to_string(),
        "is_superuser" => "off".to_string(),
        _ => return None,
    })
}

impl ScalarUDFImpl for CurrentSettingFunc {
    fn name(&self) -> &str {
        "current_setting"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let Some(names) = arrays[0].as_any().downcast_ref::<StringArray>() else {
            return plan_err!("current_setting expects a text argument");
        };
        let entries = crate::engine::settings(&args.config_options);
        let mut out = Vec::with_capacity(names.len());
        for name in names.iter() {
            let Some(name) = name else {
                out.push(None);
                continue;
            };
            let lower = name.to_ascii_lowercase();
            let connection = args
                .config_options
                .extensions
                .get::<crate::engine::PgParameters>()
                .and_then(|p| p.get(&lower));
            let value = if let Some(value) = connection {
                Some(value.clone())
            } else if lower == "timezone" {
                Some(
                    args.config_options
                        .execution
                        .time_zone
                        .clone()
                        .unwrap_or_else(|| "UTC".to_string()),
                )
            } else {
                fixed_setting(&lower).or_else(|| {
                    entries
                        .iter()
                        .find(|(k, _)| *k == lower)
                        .map(|(_, v)| v.clone())
                })
            };
            match value {
                Some(v) => out.push(Some(v)),
                None => return exec_err!("unrecognized configuration parameter \"{name}\""),
            }
        }
        Ok(ColumnarValue::Array(
            Arc::new(StringArray::from(out)) as ArrayRef
        ))
    }
}

/// A catalog function finops-db has no data for: any arguments, NULL of type `returns`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct NullFunc {
    name: &'static str,
    signature: Signature,
    returns: DataType,
}

impl ScalarUDFImpl for NullFunc {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(self.returns.clone())
    }

    fn invoke_with_args(
        &self,
        _args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from(&self.returns)?))
    }
}

/// The name a `'name'::regclass` cast looks up, as the statement rewrite calls it:
/// `regclassin(oid, name)` is the oid found, and for a name that names no relation the error
/// Postgres gives (42P01), where a lookup alone would give NULL.
pub const REGCLASS_IN: &str = "regclassin";

#[derive(Debug, PartialEq, Eq, Hash)]
struct RegclassIn {
    signature: Signature,
}

impl ScalarUDFImpl for RegclassIn {
    fn name(&self) -> &str {
        REGCLASS_IN
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(arg_types[0].clone())
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let names = cast(&arrays[1], &DataType::Utf8)?;
        let names = names.as_string::<i32>();
        for row in 0..arrays[0].len() {
            if arrays[0].is_null(row) && names.is_valid(row) {
                return Err(datafusion::error::DataFusionError::External(Box::new(
                    Error::TableNotFound(names.value(row).to_string()),
                )));
            }
        }
        // The oid as it came: every name was found.
        Ok(args.args[0].clone())
    }
}

/// `pg_typeof(x)`: the Postgres type name of the argument as sent on the wire.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PgTypeofFunc {
    signature: Signature,
}

impl ScalarUDFImpl for PgTypeofFunc {
    fn name(&self) -> &str {
        "pg_typeof"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let data_type = args.arg_fields[0].data_type();
        let name = match arrow_pg::datatypes::into_pg_type(data_type) {
            Ok(t) => t.name().to_string(),
            Err(_) => data_type.to_string(),
        };
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(name))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, TimeUnit};

    #[test]
    fn size_pretty_matches_postgres() {
        assert_eq!(size_pretty(0), "0 bytes");
        assert_eq!(size_pretty(10239), "10239 bytes");
        assert_eq!(size_pretty(10240), "10 kB");
        assert_eq!(size_pretty(1 << 30), "1024 MB");
    }

    #[test]
    fn sql_type_names_are_postgres_information_schema_names() {
        for (arrow, sql) in [
            (DataType::Int64, "bigint"),
            (DataType::Utf8View, "text"),
            (DataType::Decimal128(38, 10), "numeric"),
            (DataType::Float64, "double precision"),
            (
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                "timestamp with time zone",
            ),
            (
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                "timestamp without time zone",
            ),
            (DataType::Date32, "date"),
            (
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                "ARRAY",
            ),
        ] {
            // Through the text DataFusion's information_schema holds, as the function reads it.
            let parsed: DataType = arrow.to_string().parse().expect("arrow type name parses");
            assert_eq!(sql_type_name(&parsed), sql, "{arrow}");
        }
    }

    #[test]
    fn version_looks_like_postgres() {
        assert!(version_string().starts_with("PostgreSQL 16."));
        assert!(version_string().contains("finops-db"));
    }
}
