//! The FinOps functions in `pg_catalog`, so that psql's `\df` and `\df+` list them with their
//! arguments, result type and description, as Postgres lists an extension's functions.
//!
//! A function is listed when its DataFusion documentation is in the FinOps section: the
//! `finops-udfs` functions and the server's own (`finops.reserve`, `adjusted_cost`, ...). Each
//! gets a `pg_proc` row in schema `public` (they are called unqualified, and `public` is on the
//! search path), or in `finops` when it is called as `finops.<name>`; `pg_get_function_result`,
//! `pg_get_function_arguments` and `obj_description(oid, 'pg_proc')` answer for those rows and
//! are NULL for any other object, as before.
//!
//! It owns only this listing. It must not change how functions are planned or run.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, ListBuilder, RecordBatch, StringArray, StringBuilder, new_null_array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;

use crate::error::{Error, Result};

/// The first oid given to a FinOps function: far above the system catalog's (below 16384) and
/// the oids of the relations and schemas a data directory creates.
const FIRST_OID: i64 = 1_000_000_000;

/// Postgres' `record` type.
const RECORD_OID: u32 = 2249;

/// One FinOps function as `pg_proc` shows it.
#[derive(Debug, Clone, PartialEq)]
struct Function {
    oid: i64,
    schema: &'static str,
    name: String,
    /// What `pg_get_function_arguments` says: the documented syntax without the name.
    arguments: String,
    argument_names: Vec<String>,
    /// The Postgres name and oid of the result type, when the function can say it.
    result: Option<(&'static str, u32)>,
    volatility: &'static str,
    description: String,
}

/// The FinOps functions registered in `ctx`, in name order, each with its oid.
fn finops_functions(ctx: &SessionContext) -> Vec<Function> {
    let state = ctx.state();
    let mut udfs: BTreeMap<String, Arc<ScalarUDF>> = BTreeMap::new();
    for udf in state.scalar_functions().values() {
        let Some(doc) = udf.documentation() else {
            continue;
        };
        if doc.doc_section.label == finops_udfs::FINOPS_SECTION.label {
            udfs.insert(udf.name().to_string(), Arc::clone(udf));
        }
    }
    udfs.into_values()
        .enumerate()
        .filter_map(|(i, udf)| {
            let doc = udf.documentation()?;
            let argument_names: Vec<String> = doc
                .arguments
                .iter()
                .flatten()
                .map(|(name, _)| name.clone())
                .collect();
            let arguments = doc
                .syntax_example
                .split_once('(')
                .and_then(|(_, rest)| rest.rsplit_once(')'))
                .map_or_else(String::new, |(inside, _)| inside.trim().to_string());
            let result = udf
                .return_type(&[])
                .or_else(|_| udf.return_type(&vec![DataType::Utf8; argument_names.len()]))
                .ok()
                .and_then(|t| match t {
                    // Several values in one: what Postgres calls a record.
                    DataType::Struct(_) => Some(("record", RECORD_OID)),
                    t => Some((super::sql_type_name(&t), arrow_pg_oid(&t)?)),
                });
            let qualified = udf
                .aliases()
                .iter()
                .any(|a| *a == format!("finops.{}", udf.name()));
            Some(Function {
                oid: FIRST_OID + i as i64,
                schema: if qualified { "finops" } else { "public" },
                name: udf.name().to_string(),
                arguments,
                argument_names,
                result,
                volatility: match udf.signature().volatility {
                    Volatility::Immutable => "i",
                    Volatility::Stable => "s",
                    Volatility::Volatile => "v",
                },
                description: doc.description.clone(),
            })
        })
        .collect()
}

fn arrow_pg_oid(t: &DataType) -> Option<u32> {
    datafusion_postgres::arrow_pg::datatypes::into_pg_type(t)
        .ok()
        .map(|t| t.oid())
}

/// List the FinOps functions registered in `ctx` in its `pg_catalog`: call after every FinOps
/// function is registered and after `setup_pg_catalog`.
pub fn register_function_catalog(ctx: &SessionContext, catalog: &str) -> Result<()> {
    let functions: Arc<[Function]> = finops_functions(ctx).into();
    for kind in [Text::Result, Text::Arguments, Text::Description] {
        ctx.register_udf(ScalarUDF::from(FunctionText {
            kind,
            functions: Arc::clone(&functions),
            signature: Signature::variadic_any(Volatility::Stable),
        }));
    }
    let catalog = ctx
        .catalog(catalog)
        .ok_or_else(|| Error::Internal(format!("catalog {catalog} missing")))?;
    let inner = catalog
        .schema("pg_catalog")
        .ok_or_else(|| Error::Internal("pg_catalog is not set up".into()))?;
    if inner.as_ref().is::<WithFunctions>() {
        return Ok(());
    }
    catalog.register_schema("pg_catalog", Arc::new(WithFunctions { inner, functions }))?;
    Ok(())
}

/// Which text a [`FunctionText`] gives for a function's oid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Text {
    Result,
    Arguments,
    Description,
}

/// `pg_get_function_result(oid)`, `pg_get_function_arguments(oid)` and
/// `obj_description(oid [, catalog])` over the FinOps functions; NULL for any other oid.
#[derive(Debug)]
struct FunctionText {
    kind: Text,
    functions: Arc<[Function]>,
    signature: Signature,
}

impl PartialEq for FunctionText {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.functions == other.functions
    }
}

impl Eq for FunctionText {}

impl std::hash::Hash for FunctionText {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.kind.hash(state);
        self.functions.len().hash(state);
    }
}

impl FunctionText {
    fn text(&self, oid: i64) -> Option<String> {
        let function = self.functions.iter().find(|f| f.oid == oid)?;
        match self.kind {
            Text::Result => function.result.map(|(name, _)| name.to_string()),
            Text::Arguments => Some(function.arguments.clone()),
            Text::Description => Some(function.description.clone()),
        }
    }
}

impl ScalarUDFImpl for FunctionText {
    fn name(&self) -> &str {
        match self.kind {
            Text::Result => "pg_get_function_result",
            Text::Arguments => "pg_get_function_arguments",
            Text::Description => "obj_description",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<DfResult<_>>()?;
        let Some(oids) = arrays.first() else {
            return Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)));
        };
        // Only functions have descriptions here: `obj_description(oid, 'pg_class')` is NULL.
        let catalogs = match (self.kind, arrays.get(1)) {
            (Text::Description, Some(catalog)) => Some(cast(catalog, &DataType::Utf8)?),
            _ => None,
        };
        let oids = cast(oids, &DataType::Int64)?;
        let oids = oids.as_primitive::<Int64Type>();
        let out: StringArray = (0..rows)
            .map(|i| {
                if oids.is_null(i) {
                    return None;
                }
                if let Some(catalogs) = &catalogs {
                    let catalogs = catalogs.as_string::<i32>();
                    if catalogs.is_null(i) || catalogs.value(i) != "pg_proc" {
                        return None;
                    }
                }
                self.text(oids.value(i))
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `pg_catalog` with the FinOps functions added to `pg_proc`; every other table unchanged.
#[derive(Debug)]
struct WithFunctions {
    inner: Arc<dyn SchemaProvider>,
    functions: Arc<[Function]>,
}

#[async_trait]
impl SchemaProvider for WithFunctions {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let table = self.inner.table(name).await?;
        Ok(match (name.eq_ignore_ascii_case("pg_proc"), table) {
            (true, Some(pg_proc)) => Some(Arc::new(PgProc {
                schema: with_acl_arrays(&pg_proc.schema()),
                pg_namespace: self.inner.table("pg_namespace").await?,
                pg_proc,
                functions: Arc::clone(&self.functions),
            })),
            (_, table) => table,
        })
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

/// `pg_proc`: the system functions, then one row per FinOps function. `proacl` is an array of
/// text, as in Postgres (the catalog crate has it as text), so that psql's `\df+` can
/// `array_to_string` it.
#[derive(Debug)]
struct PgProc {
    schema: SchemaRef,
    pg_proc: Arc<dyn TableProvider>,
    pg_namespace: Option<Arc<dyn TableProvider>>,
    functions: Arc<[Function]>,
}

impl PgProc {
    /// The FinOps functions as a batch of `pg_proc`'s schema: each value is written as text
    /// and cast to its column's type.
    fn rows(&self, namespaces: &BTreeMap<String, i64>) -> DfResult<RecordBatch> {
        let schema = Arc::clone(&self.schema);
        let columns = schema
            .fields()
            .iter()
            .map(|field| {
                if field.name() == ACL {
                    return Ok(new_null_array(field.data_type(), self.functions.len()));
                }
                let values: StringArray = self
                    .functions
                    .iter()
                    .map(|f| {
                        value(f, field.name(), namespaces).or_else(|| {
                            // A column this listing does not know, if it may not be NULL.
                            (!field.is_nullable()).then(|| match field.data_type() {
                                DataType::Boolean => "false".to_string(),
                                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                                    String::new()
                                }
                                _ => "0".to_string(),
                            })
                        })
                    })
                    .collect();
                cast(&(Arc::new(values) as ArrayRef), field.data_type())
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        RecordBatch::try_new(schema, columns)
            .map_err(|e| DataFusionError::Internal(format!("pg_proc rows: {e}")))
    }
}

/// The text of column `column` of `f`'s `pg_proc` row, if this listing knows it.
fn value(f: &Function, column: &str, namespaces: &BTreeMap<String, i64>) -> Option<String> {
    Some(match column {
        "oid" => f.oid.to_string(),
        "proname" | "prosrc" => f.name.clone(),
        "pronamespace" => namespaces.get(f.schema)?.to_string(),
        // The bootstrap superuser and the `internal` language, as for built-in functions.
        "proowner" => "10".to_string(),
        "prolang" => "12".to_string(),
        "procost" => "1".to_string(),
        "prorows" | "provariadic" | "pronargdefaults" => "0".to_string(),
        "prosupport" => "-".to_string(),
        "prokind" => "f".to_string(),
        "prosecdef" | "proleakproof" | "proisstrict" | "proretset" => "false".to_string(),
        "provolatile" => f.volatility.to_string(),
        "proparallel" => "s".to_string(),
        "pronargs" => f.argument_names.len().to_string(),
        "prorettype" => f.result.map_or(0, |(_, oid)| oid).to_string(),
        "proargtypes" => String::new(),
        "proargnames" => format!("{{{}}}", f.argument_names.join(",")),
        _ => return None,
    })
}

/// The access privileges column of `pg_proc`.
const ACL: &str = "proacl";

/// `schema` with `proacl` as a list of text.
fn with_acl_arrays(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if f.name() == ACL {
                Field::new(ACL, acl_type(), true)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

fn acl_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))
}

/// `batch` of the catalog crate's `pg_proc` in `schema`: its `proacl` text (`{a=X/b,c=X/b}`,
/// entries without quotes or commas of their own) as an array.
fn acl_as_array(batch: RecordBatch, schema: &SchemaRef) -> DfResult<RecordBatch> {
    let Ok(index) = batch.schema().index_of(ACL) else {
        return Ok(batch);
    };
    let text = cast(batch.column(index), &DataType::Utf8)?;
    let text = text.as_string::<i32>();
    let mut lists = ListBuilder::new(StringBuilder::new());
    for i in 0..text.len() {
        if text.is_null(i) {
            lists.append(false);
            continue;
        }
        let inner = text.value(i).trim_start_matches('{').trim_end_matches('}');
        for entry in inner.split(',').filter(|e| !e.is_empty()) {
            lists.values().append_value(entry);
        }
        lists.append(true);
    }
    let mut columns = batch.columns().to_vec();
    columns[index] = Arc::new(lists.finish());
    RecordBatch::try_new(Arc::clone(schema), columns)
        .map_err(|e| DataFusionError::Internal(format!("pg_proc rows: {e}")))
}

#[async_trait]
impl TableProvider for PgProc {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        self.pg_proc.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let mut batches = super::scan_all(&self.pg_proc, state)
            .await?
            .into_iter()
            .map(|b| acl_as_array(b, &self.schema))
            .collect::<DfResult<Vec<_>>>()?;
        let namespaces = super::schema_oids(self.pg_namespace.as_ref(), state)
            .await?
            .into_iter()
            .map(|(oid, name)| (name, oid))
            .collect();
        batches.push(self.rows(&namespaces)?);
        super::scan_rows(self.schema(), batches, state, projection, filters, limit).await
    }
}
