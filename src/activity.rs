//! Who is connected and what they are running: the server's backends, as Postgres shows them in
//! `pg_stat_activity`, with `pg_backend_pid()` and `pg_cancel_backend(pid)`.
//!
//! The server registers a [`Backend`] per logged-in connection and reports each statement's start
//! and end; the engine owns the registry ([`Activity`]) so that the catalog table and the
//! functions of every session read the same one. An embedded engine has no backends.
//!
//! As in Postgres, every session sees every backend, but only an administrator, or the backend's
//! own user, sees what it runs and where it comes from; other rows show
//! `<insufficient privilege>` as their query (a scoped reader never sees another user's SQL,
//! which can name teams and values it may not read).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, Weak};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Int32Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    new_null_array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{Session as CatalogSession, TableProvider};
use datafusion::common::{DataFusionError, ScalarValue, exec_err};
use datafusion::datasource::TableType;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
    create_udf,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;

use crate::config::DATABASE;
use crate::engine::Identity;
use crate::error::Error;

/// The most of a statement's text kept for `pg_stat_activity.query`, in bytes (Postgres'
/// default `track_activity_query_size`).
pub const QUERY_TEXT_BYTES: usize = 1024;

/// What `pg_stat_activity.query` shows of a backend whose statements the reader may not see.
const HIDDEN: &str = "<insufficient privilege>";

/// The live backends, by process id.
#[derive(Default)]
pub struct Activity {
    backends: Mutex<BTreeMap<i32, Arc<Backend>>>,
}

impl std::fmt::Debug for Activity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Activity").finish_non_exhaustive()
    }
}

/// What a backend's connection is known by from its start.
pub struct BackendInfo {
    pub pid: i32,
    pub user: String,
    /// Whether the user is an administrator (sees every backend's statements, may cancel them).
    pub admin: bool,
    /// The DataFusion session id of the backend's session, which tells the catalog table whose
    /// session is reading it.
    pub session_id: String,
    pub application_name: Option<String>,
    pub client: Option<SocketAddr>,
}

/// One connection, as `pg_stat_activity` shows it.
pub struct Backend {
    info: BackendInfo,
    started: DateTime<Utc>,
    current: Mutex<Current>,
    cancel: Box<dyn Fn() + Send + Sync>,
}

/// Where a backend's transaction is when it waits for the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waiting {
    /// Outside a transaction block.
    Idle,
    /// In a transaction block.
    InTransaction,
    /// In a failed transaction block.
    Failed,
}

struct Current {
    state: &'static str,
    query: String,
    application_name: Option<String>,
    query_start: Option<DateTime<Utc>>,
    xact_start: Option<DateTime<Utc>>,
    state_change: DateTime<Utc>,
}

impl Backend {
    fn current(&self) -> std::sync::MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A statement starts: `query` is its text (only the first [`QUERY_TEXT_BYTES`] are kept);
    /// `application_name` is the connection's current one.
    pub fn begin(&self, query: &str, application_name: Option<&str>) {
        let now = Utc::now();
        let mut current = self.current();
        current.state = "active";
        current.query.clear();
        current.query.push_str(truncate(query, QUERY_TEXT_BYTES));
        current.query_start = Some(now);
        current.state_change = now;
        if current.xact_start.is_none() {
            current.xact_start = Some(now);
        }
        if current.application_name.as_deref() != application_name {
            current.application_name = application_name.map(str::to_string);
        }
    }

    /// The statement has ended; the backend waits for the client in `waiting`.
    pub fn end(&self, waiting: Waiting) {
        let mut current = self.current();
        current.state = match waiting {
            Waiting::Idle => "idle",
            Waiting::InTransaction => "idle in transaction",
            Waiting::Failed => "idle in transaction (aborted)",
        };
        if waiting == Waiting::Idle {
            current.xact_start = None;
        }
        current.state_change = Utc::now();
    }
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Removes its backend from the registry when dropped (the connection has ended).
pub struct BackendGuard {
    activity: Weak<Activity>,
    backend: Arc<Backend>,
}

impl BackendGuard {
    pub fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }
}

impl Drop for BackendGuard {
    fn drop(&mut self) {
        if let Some(activity) = self.activity.upgrade() {
            let mut backends = activity.backends.lock().unwrap_or_else(|e| e.into_inner());
            if backends
                .get(&self.backend.info.pid)
                .is_some_and(|b| Arc::ptr_eq(b, &self.backend))
            {
                backends.remove(&self.backend.info.pid);
            }
        }
    }
}

impl Activity {
    /// Register a logged-in connection; `cancel` stops the statement it runs (as a cancel request
    /// with its key does). It stays listed until the guard is dropped.
    pub fn register(
        self: &Arc<Self>,
        info: BackendInfo,
        cancel: impl Fn() + Send + Sync + 'static,
    ) -> BackendGuard {
        let now = Utc::now();
        let backend = Arc::new(Backend {
            current: Mutex::new(Current {
                state: "idle",
                query: String::new(),
                application_name: info.application_name.clone(),
                query_start: None,
                xact_start: None,
                state_change: now,
            }),
            info,
            started: now,
            cancel: Box::new(cancel),
        });
        self.backends
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(backend.info.pid, Arc::clone(&backend));
        BackendGuard {
            activity: Arc::downgrade(self),
            backend,
        }
    }

    fn snapshot(&self) -> Vec<Arc<Backend>> {
        self.backends
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn get(&self, pid: i32) -> Option<Arc<Backend>> {
        self.backends
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&pid)
            .cloned()
    }

    /// `pg_cancel_backend(pid)` on behalf of `identity`: whether a backend was signalled.
    pub fn cancel(&self, identity: &Identity, pid: i32) -> Result<bool, Error> {
        let Some(backend) = self.get(pid) else {
            log::warn!("PID {pid} is not a finops-db backend process");
            return Ok(false);
        };
        let admin = identity.role == crate::config::Role::Admin;
        if !admin && backend.info.user != identity.user {
            return Err(Error::PermissionDenied(format!(
                "permission denied to cancel query: only an administrator or user \"{}\" may \
                 cancel queries of backend {pid}",
                backend.info.user
            )));
        }
        (backend.cancel)();
        Ok(true)
    }
}

/// The columns of Postgres 15's `pg_stat_activity`, in its order.
fn pg_stat_activity_schema() -> SchemaRef {
    let oid = || DataType::Int32;
    let ts = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("datid", oid(), true),
        Field::new("datname", DataType::Utf8, true),
        Field::new("pid", DataType::Int32, true),
        Field::new("leader_pid", DataType::Int32, true),
        Field::new("usesysid", oid(), true),
        Field::new("usename", DataType::Utf8, true),
        Field::new("application_name", DataType::Utf8, true),
        Field::new("client_addr", DataType::Utf8, true),
        Field::new("client_hostname", DataType::Utf8, true),
        Field::new("client_port", DataType::Int32, true),
        Field::new("backend_start", ts(), true),
        Field::new("xact_start", ts(), true),
        Field::new("query_start", ts(), true),
        Field::new("state_change", ts(), true),
        Field::new("wait_event_type", DataType::Utf8, true),
        Field::new("wait_event", DataType::Utf8, true),
        Field::new("state", DataType::Utf8, true),
        Field::new("backend_xid", DataType::Utf8, true),
        Field::new("backend_xmin", DataType::Utf8, true),
        Field::new("query_id", DataType::Int64, true),
        Field::new("query", DataType::Utf8, true),
        Field::new("backend_type", DataType::Utf8, true),
    ]))
}

/// `pg_catalog.pg_stat_activity`: a row per backend, as the reading session may see it.
#[derive(Debug)]
pub struct PgStatActivity {
    schema: SchemaRef,
    activity: Weak<Activity>,
    /// Where the database's oid (`datid`) is read.
    pg_database: Option<Arc<dyn TableProvider>>,
}

/// One backend's row as one reader sees it (`None`: NULL).
struct Row {
    datid: Option<i32>,
    pid: i32,
    user: String,
    application_name: Option<String>,
    client_addr: Option<String>,
    client_port: Option<i32>,
    backend_start: Option<i64>,
    xact_start: Option<i64>,
    query_start: Option<i64>,
    state_change: Option<i64>,
    state: Option<&'static str>,
    query: String,
}

impl PgStatActivity {
    pub fn new(activity: Weak<Activity>, pg_database: Option<Arc<dyn TableProvider>>) -> Self {
        PgStatActivity {
            schema: pg_stat_activity_schema(),
            activity,
            pg_database,
        }
    }

    /// `pg_database.oid` of the database, if the catalog has it.
    async fn datid(&self, state: &dyn CatalogSession) -> datafusion::error::Result<Option<i32>> {
        let Some(pg_database) = &self.pg_database else {
            return Ok(None);
        };
        for batch in crate::catalog::scan_all(pg_database, state).await? {
            let (Some(oid), Some(name)) =
                (batch.column_by_name("oid"), batch.column_by_name("datname"))
            else {
                continue;
            };
            let oid = cast(oid, &DataType::Int32)?;
            let name = cast(name, &DataType::Utf8)?;
            let (oid, name) = (oid.as_primitive::<Int32Type>(), name.as_string::<i32>());
            if let Some(i) = (0..batch.num_rows()).find(|&i| name.value(i) == DATABASE) {
                return Ok(oid.is_valid(i).then(|| oid.value(i)));
            }
        }
        Ok(None)
    }

    fn rows(&self, session_id: &str, datid: Option<i32>) -> Vec<Row> {
        let Some(activity) = self.activity.upgrade() else {
            return Vec::new();
        };
        let backends = activity.snapshot();
        // The reader: the backend whose session this is (an embedded session has none and is
        // its process's administrator).
        let reader = backends.iter().find(|b| b.info.session_id == session_id);
        backends
            .iter()
            .map(|b| {
                let visible = reader.is_none_or(|r| r.info.admin || r.info.user == b.info.user);
                let current = b.current();
                let micros = |t: DateTime<Utc>| t.timestamp_micros();
                Row {
                    datid,
                    pid: b.info.pid,
                    user: b.info.user.clone(),
                    application_name: current.application_name.clone(),
                    client_addr: visible
                        .then(|| b.info.client.map(|a| a.ip().to_string()))
                        .flatten(),
                    client_port: visible
                        .then(|| b.info.client.map(|a| i32::from(a.port())))
                        .flatten(),
                    backend_start: visible.then(|| micros(b.started)),
                    xact_start: visible.then(|| current.xact_start.map(micros)).flatten(),
                    query_start: visible.then(|| current.query_start.map(micros)).flatten(),
                    state_change: visible.then(|| micros(current.state_change)),
                    state: visible.then_some(current.state),
                    query: if visible {
                        current.query.clone()
                    } else {
                        HIDDEN.to_string()
                    },
                }
            })
            .collect()
    }

    fn batch(&self, rows: &[Row]) -> datafusion::error::Result<RecordBatch> {
        let count = rows.len();
        let text = |f: &dyn Fn(&Row) -> Option<&str>| -> ArrayRef {
            Arc::new(rows.iter().map(f).collect::<StringArray>())
        };
        let int = |f: &dyn Fn(&Row) -> Option<i32>| -> ArrayRef {
            Arc::new(rows.iter().map(f).collect::<Int32Array>())
        };
        let time = |f: &dyn Fn(&Row) -> Option<i64>| -> ArrayRef {
            Arc::new(
                rows.iter()
                    .map(f)
                    .collect::<TimestampMicrosecondArray>()
                    .with_timezone("UTC"),
            )
        };
        let columns: Vec<ArrayRef> = self
            .schema
            .fields()
            .iter()
            .map(|field| match field.name().as_str() {
                "datid" => int(&|r| r.datid),
                "datname" => text(&|_| Some(DATABASE)),
                "pid" => int(&|r| Some(r.pid)),
                "usename" => text(&|r| Some(r.user.as_str())),
                "application_name" => text(&|r| Some(r.application_name.as_deref().unwrap_or(""))),
                "client_addr" => text(&|r| r.client_addr.as_deref()),
                "client_port" => int(&|r| r.client_port),
                "backend_start" => time(&|r| r.backend_start),
                "xact_start" => time(&|r| r.xact_start),
                "query_start" => time(&|r| r.query_start),
                "state_change" => time(&|r| r.state_change),
                "state" => text(&|r| r.state),
                "query" => text(&|r| Some(r.query.as_str())),
                "backend_type" => text(&|_| Some("client backend")),
                _ => new_null_array(field.data_type(), count),
            })
            .collect();
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

#[async_trait]
impl TableProvider for PgStatActivity {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn CatalogSession,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let datid = self.datid(state).await?;
        let rows = self.rows(state.session_id(), datid);
        let batch = self.batch(&rows)?;
        crate::catalog::scan_rows(
            self.schema(),
            vec![batch],
            state,
            projection,
            filters,
            limit,
        )
        .await
    }
}

/// Register the session's `pg_backend_pid()` (the value `pid` holds: the connection's process
/// id once the server knows it, this process's for an embedded session) and
/// `pg_cancel_backend(pid)`.
pub fn register_functions(
    ctx: &SessionContext,
    identity: &Identity,
    activity: &Arc<Activity>,
    pid: &Arc<AtomicI32>,
) {
    let pid = Arc::clone(pid);
    ctx.register_udf(create_udf(
        "pg_backend_pid",
        vec![],
        DataType::Int32,
        Volatility::Stable,
        Arc::new(move |_args: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Int32(Some(
                pid.load(Ordering::Relaxed),
            ))))
        }),
    ));
    ctx.register_udf(ScalarUDF::from(CancelBackend {
        signature: Signature::uniform(1, vec![DataType::Int64], Volatility::Volatile),
        activity: Arc::downgrade(activity),
        identity: identity.clone(),
    }));
}

/// `pg_cancel_backend(pid)`: stop the statement backend `pid` runs, as a cancel request does.
#[derive(Debug)]
struct CancelBackend {
    signature: Signature,
    activity: Weak<Activity>,
    identity: Identity,
}

impl PartialEq for CancelBackend {
    fn eq(&self, other: &Self) -> bool {
        Weak::ptr_eq(&self.activity, &other.activity) && self.identity.user == other.identity.user
    }
}

impl Eq for CancelBackend {}

impl std::hash::Hash for CancelBackend {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.identity.user.hash(state);
    }
}

impl ScalarUDFImpl for CancelBackend {
    fn name(&self) -> &str {
        "pg_cancel_backend"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let Some(pids) = arrays[0]
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
        else {
            return exec_err!("pg_cancel_backend expects an integer process id");
        };
        let activity = self.activity.upgrade();
        let mut out = Vec::with_capacity(pids.len());
        for pid in pids.iter() {
            out.push(match (pid, &activity) {
                (None, _) => None,
                (Some(_), None) => Some(false),
                (Some(pid), Some(activity)) => {
                    // A process id beyond int4 names no backend.
                    match i32::try_from(pid) {
                        Ok(pid) => Some(
                            activity
                                .cancel(&self.identity, pid)
                                .map_err(|e| DataFusionError::External(Box::new(e)))?,
                        ),
                        Err(_) => Some(false),
                    }
                }
            });
        }
        let out: BooleanArray = out.into_iter().collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn info(pid: i32, user: &str, admin: bool) -> BackendInfo {
        BackendInfo {
            pid,
            user: user.to_string(),
            admin,
            session_id: format!("session-{pid}"),
            application_name: Some("psql".to_string()),
            client: "127.0.0.1:5000".parse().ok(),
        }
    }

    fn identity(user: &str, role: crate::config::Role) -> Identity {
        Identity {
            user: user.to_string(),
            role,
            teams: Vec::new(),
        }
    }

    #[test]
    fn rows_follow_statements_and_hide_other_users_queries() {
        let activity = Arc::new(Activity::default());
        let admin = activity.register(info(7, "finops", true), || {});
        let reader = activity.register(info(9, "analyst", false), || {});
        admin
            .backend()
            .begin("SELECT secret FROM finops.usage", Some("psql"));
        reader.backend().begin("BEGIN", None);
        reader.backend().end(Waiting::InTransaction);
        let table = PgStatActivity::new(Arc::downgrade(&activity), None);

        let as_reader = table.rows("session-9", Some(16384));
        let own = as_reader.iter().find(|r| r.pid == 9).expect("own row");
        assert_eq!(own.state, Some("idle in transaction"));
        assert_eq!(own.query, "BEGIN");
        assert!(own.xact_start.is_some());
        let other = as_reader.iter().find(|r| r.pid == 7).expect("other row");
        assert_eq!(other.query, HIDDEN);
        assert_eq!((other.state, other.client_addr.as_deref()), (None, None));
        assert_eq!(other.user, "finops");

        let as_admin = table.rows("session-7", Some(16384));
        let admin_row = as_admin.iter().find(|r| r.pid == 7).expect("admin row");
        assert_eq!(admin_row.state, Some("active"));
        assert_eq!(admin_row.query, "SELECT secret FROM finops.usage");
        assert_eq!(admin_row.client_addr.as_deref(), Some("127.0.0.1"));
        assert_eq!(admin_row.client_port, Some(5000));
        let batch = table.batch(&as_admin).expect("batch");
        assert_eq!(batch.num_rows(), 2);

        drop(reader);
        assert_eq!(
            table.rows("session-7", Some(16384)).len(),
            1,
            "an ended connection is gone"
        );
    }

    #[test]
    fn cancel_needs_the_same_user_or_an_administrator() {
        let activity = Arc::new(Activity::default());
        let cancels = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&cancels);
        let _backend = activity.register(info(7, "finops", true), move || {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        let reader = identity("analyst", crate::config::Role::Reader);
        let err = activity
            .cancel(&reader, 7)
            .expect_err("another user's backend");
        assert!(err.to_string().contains("permission denied"), "{err}");
        assert_eq!(cancels.load(Ordering::SeqCst), 0);
        let owner = identity("finops", crate::config::Role::Reader);
        assert!(activity.cancel(&owner, 7).expect("own user"));
        let admin = identity("root", crate::config::Role::Admin);
        assert!(activity.cancel(&admin, 7).expect("administrator"));
        assert_eq!(cancels.load(Ordering::SeqCst), 2);
        assert!(!activity.cancel(&admin, 8).expect("no such backend"));
    }

    #[test]
    fn long_statements_are_cut_on_a_character_boundary() {
        let text = "é".repeat(QUERY_TEXT_BYTES);
        let cut = truncate(&text, QUERY_TEXT_BYTES);
        assert_eq!(cut.len(), QUERY_TEXT_BYTES);
        assert_eq!(truncate("abcé", 4), "abc");
    }
}
