//! One connection's handlers: its state (session, cancel signal), and the query handlers that put
//! our hooks in front of the generic DataFusion query service, map every error to its SQLSTATE,
//! stop a running query on cancel or `statement_timeout`, and send `COPY ... TO STDOUT` as
//! Postgres does.
//!
//! It must not interpret statements: hooks and the engine do. The one exception is answering a
//! lone `ROLLBACK TO SAVEPOINT` itself, because pgwire fixes the transaction status a simple
//! query ends in before the query runs.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{DataType as SqlDataType, ExactNumberInfo, Statement};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser as SqlParser;
use datafusion_postgres::{DfSessionService, Parser, QueryHook};
use futures::{Sink, SinkExt, Stream, StreamExt};
use pgwire::api::Type;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::query::{send_execution_response, send_ready_for_query};
use pgwire::api::results::FieldInfo;
use pgwire::api::results::Tag;
use pgwire::api::results::{CopyResponse, Response};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionManager, DEFAULT_NAME, PgWireServerHandlers,
};
use pgwire::api::{ErrorHandler, PgWireConnectionState, cancel::CancelHandler};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::copy::{CopyDone, CopyOutResponse};
use pgwire::messages::extendedquery::{Bind, Describe, Execute, Parse, ParseComplete};
use pgwire::messages::response::TransactionStatus;
use pgwire::messages::simplequery::Query;
use pgwire::messages::startup::SecretKey;
use pgwire::types::format::FormatOptions;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::activity::{BackendGuard, BackendInfo, Waiting};
use crate::engine::{Engine, Identity, Session};
use crate::error::{Error, Result};
use crate::server::auth::UserDirectory;
use crate::server::hooks::savepoint::SavepointState;
use crate::server::startup::FinopsStartup;
use crate::server::until_sync::UntilSync;
use crate::server::{Registry, hooks, portal, sqlstate};

/// The parameter `pg_stat_activity.application_name` shows.
const APPLICATION_NAME: &str = "application_name";

/// Everything one connection owns.
pub struct ConnectionState {
    engine: Arc<Engine>,
    users: UserDirectory,
    registry: Arc<Registry>,
    tls_required: bool,
    rejection: Option<String>,
    connected: OnceLock<Connected>,
    /// The session being opened for the user whose login is in progress.
    prepared: Mutex<Option<(String, JoinHandle<Result<Connected>>)>>,
    cancel: watch::Sender<u64>,
    copy: hooks::copy::CopyState,
    savepoints: SavepointState,
    /// This connection in `pg_stat_activity`, once logged in.
    backend: OnceLock<BackendGuard>,
}

/// The part that exists once the user has logged in.
struct Connected {
    session: Session,
    copy: hooks::copy::CopyState,
    savepoints: SavepointState,
    /// Made on first use: building its parser (which tokenizes a table of client queries) was
    /// a fifth of a login's server time, and a client that only sends plain queries over the
    /// simple protocol never needs it.
    service: OnceLock<Arc<DfSessionService>>,
    /// The optimized plans of this connection's prepared statements.
    plans: portal::PlanCache,
}

impl Connected {
    /// The generic query service with our hooks in front of it.
    fn service(&self) -> Arc<DfSessionService> {
        Arc::clone(self.service.get_or_init(|| {
            let hooks: Vec<Arc<dyn QueryHook>> = hooks::chain(
                self.session.clone(),
                Arc::clone(&self.copy),
                Arc::clone(&self.savepoints),
            );
            Arc::new(DfSessionService::new_with_hooks(
                Arc::clone(self.session.context()),
                hooks,
            ))
        }))
    }
}

/// A session of `identity`; its query service is made when first needed.
fn open(
    engine: &Arc<Engine>,
    identity: Identity,
    parameters: &[(String, String)],
    copy: hooks::copy::CopyState,
    savepoints: SavepointState,
) -> Result<Connected> {
    let session = engine.session(identity)?;
    session.set_pg_parameters(parameters);
    // The copy of the state the first query plans on, made now (while the client computes its
    // login proof) rather than when that query arrives.
    let planning = session.planning_state();
    planning.task_ctx();
    session.keep_state(planning);
    Ok(Connected {
        session,
        copy,
        savepoints,
        service: OnceLock::new(),
        plans: portal::PlanCache::default(),
    })
}

impl ConnectionState {
    /// State for a new connection; `rejection` refuses it at start-up (connection limit).
    pub fn new(
        engine: Arc<Engine>,
        users: UserDirectory,
        registry: Arc<Registry>,
        tls_required: bool,
        rejection: Option<String>,
    ) -> Arc<Self> {
        Arc::new(ConnectionState {
            engine,
            users,
            registry,
            tls_required,
            rejection,
            connected: OnceLock::new(),
            prepared: Mutex::new(None),
            cancel: watch::channel(0).0,
            copy: Default::default(),
            savepoints: Default::default(),
            backend: OnceLock::new(),
        })
    }

    /// The users who may log in.
    pub fn users(&self) -> &UserDirectory {
        &self.users
    }

    /// Whether plain-text clients are refused.
    pub fn tls_required(&self) -> bool {
        self.tls_required
    }

    /// Why this connection is refused, if it is.
    pub fn rejection(&self) -> Option<&str> {
        self.rejection.as_deref()
    }

    /// Start building the session of `identity` on a blocking thread, so that it is ready when
    /// its login succeeds (the client spends that time on its side of SCRAM). A login as
    /// another user, or one that fails, leaves it unused.
    /// `parameters` are the Postgres parameters the client sent, with their values.
    pub fn prepare(&self, identity: Identity, parameters: Vec<(String, String)>) {
        let engine = Arc::clone(&self.engine);
        let copy = Arc::clone(&self.copy);
        let savepoints = Arc::clone(&self.savepoints);
        let user = identity.user.clone();
        let task = tokio::task::spawn_blocking(move || {
            open(&engine, identity, &parameters, copy, savepoints)
        });
        let previous = self
            .prepared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace((user, task));
        if let Some((_, task)) = previous {
            task.abort();
        }
    }

    /// Called once the login succeeded: open the session (or take the one [`prepare`]d for
    /// this user), register for cancel requests, and list the connection in
    /// `pg_stat_activity` (whose `pg_cancel_backend` cancels as a cancel request does).
    ///
    /// [`prepare`]: ConnectionState::prepare
    pub async fn connect(
        self: &Arc<Self>,
        identity: Identity,
        parameters: &[(String, String)],
        pid: i32,
        secret: &SecretKey,
        client: Option<std::net::SocketAddr>,
        manager: Arc<ConnectionManager>,
    ) -> Result<()> {
        let prepared = self
            .prepared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let connected = match prepared {
            Some((user, task)) if user == identity.user => task
                .await
                .map_err(|e| Error::Internal(format!("opening the session: {e}")))??,
            other => {
                if let Some((_, task)) = other {
                    task.abort();
                }
                open(
                    &self.engine,
                    identity,
                    parameters,
                    Arc::clone(&self.copy),
                    Arc::clone(&self.savepoints),
                )?
            }
        };
        let session = connected.session.clone();
        self.connected
            .set(connected)
            .map_err(|_| Error::Internal("connection logged in twice".into()))?;
        self.registry.register(pid, secret, self);
        session.set_backend_pid(pid);
        let info = BackendInfo {
            pid,
            user: session.identity().user.clone(),
            admin: session.identity().role == crate::config::Role::Admin,
            session_id: session.context().session_id(),
            application_name: parameters
                .iter()
                .find(|(name, _)| name == APPLICATION_NAME)
                .map(|(_, value)| value.clone()),
            client,
        };
        let state = Arc::downgrade(self);
        let runtime = tokio::runtime::Handle::current();
        let secret = secret.clone();
        let guard = self.engine.activity().register(info, move || {
            if let Some(state) = state.upgrade() {
                state.cancel();
            }
            let (manager, secret) = (Arc::clone(&manager), secret.clone());
            runtime.spawn(async move { manager.cancel(pid, &secret).await });
        });
        let _ = self.backend.set(guard);
        Ok(())
    }

    /// A statement with text `query` starts (for `pg_stat_activity`).
    fn begin<C: ClientInfo>(&self, client: &C, query: &str) {
        if let Some(guard) = self.backend.get() {
            let application_name = client.metadata().get(APPLICATION_NAME);
            guard
                .backend()
                .begin(query, application_name.map(String::as_str));
        }
    }

    /// The statement has ended: the connection waits in its transaction status.
    fn end<C: ClientInfo>(&self, client: &C) {
        if let Some(guard) = self.backend.get() {
            guard.backend().end(match client.transaction_status() {
                TransactionStatus::Idle => Waiting::Idle,
                TransactionStatus::Transaction => Waiting::InTransaction,
                TransactionStatus::Error => Waiting::Failed,
            });
        }
    }

    /// The session, once logged in.
    pub fn session(&self) -> Option<&Session> {
        self.connected.get().map(|c| &c.session)
    }

    /// Whether a `ROLLBACK TO SAVEPOINT` has just made a failed block usable again.
    fn take_restored(&self) -> bool {
        self.savepoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take_restored()
    }

    /// The pending `COPY FROM STDIN`, if any.
    pub fn copy_state(&self) -> &hooks::copy::CopyState {
        &self.copy
    }

    fn connected(&self) -> PgWireResult<&Connected> {
        self.connected.get().ok_or_else(|| {
            PgWireError::UserError(Box::new(sqlstate::error(
                sqlstate::INVALID_AUTHORIZATION,
                "not logged in",
            )))
        })
    }

    /// Stop whatever this connection is running.
    pub fn cancel(&self) {
        self.cancel.send_modify(|generation| *generation += 1);
    }

    fn default_timeout(&self) -> Option<Duration> {
        let ms = self.engine.config().limits.statement_timeout_ms;
        (ms > 0).then(|| Duration::from_millis(ms))
    }
}

/// The handlers pgwire asks for, one set per connection.
pub struct ConnectionHandlers {
    query: Arc<QueryHandler>,
    copy: Arc<hooks::copy::CopyIn>,
    startup: Arc<FinopsStartup>,
    cancel: Arc<RegistryCancel>,
}

impl ConnectionHandlers {
    /// Handlers for a connection with `state`.
    pub fn new(state: Arc<ConnectionState>, manager: Arc<ConnectionManager>) -> Self {
        let registry = Arc::clone(&state.registry);
        ConnectionHandlers {
            startup: Arc::new(FinopsStartup::new(Arc::clone(&state), Arc::clone(&manager))),
            copy: Arc::new(hooks::copy::CopyIn::new(Arc::clone(&state))),
            query: Arc::new(QueryHandler { state }),
            cancel: Arc::new(RegistryCancel { manager, registry }),
        }
    }
}

impl PgWireServerHandlers for ConnectionHandlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::clone(&self.query)
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::clone(&self.query)
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        Arc::clone(&self.startup)
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::clone(&self.cancel)
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(LogErrors)
    }

    fn copy_handler(&self) -> Arc<impl pgwire::api::copy::CopyHandler> {
        Arc::clone(&self.copy)
    }
}

struct LogErrors;

impl ErrorHandler for LogErrors {
    fn on_error<C>(&self, client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        log::debug!("error sent to {}: {error}", client.socket_addr());
    }
}

/// Cancel requests reach both pgwire (which stops a statement still being planned) and our
/// connection state (which stops rows already streaming).
pub struct RegistryCancel {
    manager: Arc<ConnectionManager>,
    registry: Arc<Registry>,
}

#[async_trait]
impl CancelHandler for RegistryCancel {
    async fn on_cancel_request(&self, request: CancelRequest) {
        if let Some(state) = self.registry.lookup(request.pid, &request.secret_key) {
            state.cancel();
        }
        self.manager.cancel(request.pid, &request.secret_key).await;
    }
}

/// Simple and extended query handling for one connection.
pub struct QueryHandler {
    state: Arc<ConnectionState>,
}

impl QueryHandler {
    fn timeout<C: ClientInfo>(&self, client: &C) -> Option<Duration> {
        // `SET statement_timeout` (0 turns the server's default off), else the default.
        hooks::parameters::statement_timeout(client.metadata())
            .unwrap_or_else(|| self.state.default_timeout())
    }

    /// Run `work` under the statement timeout, then guard its row streams.
    async fn guarded<F>(&self, timeout: Option<Duration>, work: F) -> PgWireResult<Vec<Response>>
    where
        F: std::future::Future<Output = PgWireResult<Vec<Response>>>,
    {
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut cancel = self.state.cancel.subscribe();
        cancel.mark_unchanged();
        let result = match deadline {
            Some(at) => match tokio::time::timeout_at(at, work).await {
                Ok(r) => r,
                Err(_) => return Err(timeout_error()),
            },
            None => work.await,
        };
        let responses = result.map_err(sqlstate::map_pgwire)?;
        Ok(responses
            .into_iter()
            .map(|r| match r {
                Response::Query(mut q) => {
                    let rows =
                        std::mem::replace(&mut q.data_rows, Box::pin(futures::stream::empty()));
                    q.data_rows = Box::pin(guard_rows(rows, cancel.clone(), deadline));
                    Response::Query(q)
                }
                Response::CopyOut(mut copy) => {
                    let data = std::mem::replace(
                        &mut copy.data_stream,
                        Box::pin(futures::stream::empty()),
                    );
                    copy.data_stream = Box::pin(guard_rows(data, cancel.clone(), deadline));
                    Response::CopyOut(copy)
                }
                Response::Error(info) => match sqlstate::map_pgwire(PgWireError::UserError(info)) {
                    PgWireError::UserError(info) => Response::Error(info),
                    other => Response::Error(Box::new(sqlstate::error(
                        sqlstate::INTERNAL_ERROR,
                        other.to_string(),
                    ))),
                },
                other => other,
            })
            .collect())
    }
}

fn timeout_error() -> PgWireError {
    PgWireError::UserError(Box::new(sqlstate::error(
        sqlstate::QUERY_CANCELED,
        "canceling statement due to statement timeout",
    )))
}

/// `sql` parsed, if it is one `ROLLBACK TO SAVEPOINT` statement.
fn rollback_to_savepoint(sql: &str) -> Option<Statement> {
    let start = sql.trim_start();
    if !start
        .get(..8)
        .is_some_and(|word| word.eq_ignore_ascii_case("rollback"))
    {
        return None;
    }
    let mut statements = SqlParser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
    match statements.as_slice() {
        [
            Statement::Rollback {
                savepoint: Some(_), ..
            },
        ] => statements.pop(),
        _ => None,
    }
}

/// Rows handed on between two checks for cancel and deadline, when they are ready at once.
const ROWS_PER_CHECK: usize = 1024;

/// Stop a stream of rows (`DataRow`s, or a COPY's `CopyData`) on cancel or deadline; dropping
/// the inner stream stops the query. Rows that are ready go on in runs of up to
/// [`ROWS_PER_CHECK`] between checks; while the query has no row ready, the cancel and the
/// deadline are waited for beside it.
fn guard_rows<T: Send + 'static>(
    rows: impl Stream<Item = PgWireResult<T>> + Send + 'static,
    cancel: watch::Receiver<u64>,
    deadline: Option<tokio::time::Instant>,
) -> impl Stream<Item = PgWireResult<T>> + Send + 'static {
    let rows = Box::pin(rows.ready_chunks(ROWS_PER_CHECK));
    futures::stream::unfold(Some((rows, cancel)), move |state| async move {
        let (mut rows, mut cancel) = state?;
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            changed = cancel.changed() => {
                if changed.is_ok() {
                    Some((vec![Err(PgWireError::UserError(Box::new(sqlstate::error(
                        sqlstate::QUERY_CANCELED,
                        "canceling statement due to user request",
                    ))))], None))
                } else {
                    let next = rows.next().await?;
                    Some((next, Some((rows, cancel))))
                }
            }
            _ = sleep => Some((vec![Err(timeout_error())], None)),
            next = rows.next() => {
                let next = next?;
                Some((next, Some((rows, cancel))))
            }
        }
    })
    .flat_map(|chunk| {
        futures::stream::iter(
            chunk
                .into_iter()
                .map(|row| row.map_err(sqlstate::map_pgwire)),
        )
    })
}

/// `output` of `session` as one response, in text.
async fn respond_text<C: ClientInfo>(
    session: &Session,
    output: crate::engine::Output,
    client: &C,
) -> PgWireResult<Vec<Response>> {
    let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
    hooks::respond(session, output, &Format::UnifiedText, options)
        .await
        .map(|r| vec![r])
}

/// An error as the `ErrorResponse` it is sent as, with its SQLSTATE.
fn error_response(e: PgWireError) -> Response {
    match sqlstate::map_pgwire(e) {
        PgWireError::UserError(info) => Response::Error(info),
        other => Response::Error(Box::new(sqlstate::error(
            sqlstate::INTERNAL_ERROR,
            other.to_string(),
        ))),
    }
}

/// Send the messages of a `COPY ... TO STDOUT` now, and answer with what ends it: its command
/// tag, or the error that stopped it, for the caller to send. Postgres ends a COPY that fails
/// on the way with an `ErrorResponse`; pgwire would send `CopyFail`, a message only clients send
/// (psql: "unexpected response from server").
async fn send_copy_out<C>(client: &mut C, copy: CopyResponse) -> PgWireResult<Response>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let formats = copy.column_formats();
    let columns = i16::try_from(copy.columns)
        .map_err(|_| PgWireError::ApiError("COPY of more than 32767 columns".into()))?;
    let mut data = copy.data_stream;
    client
        .send(PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(
            copy.format,
            columns,
            formats,
        )))
        .await?;
    let mut rows = 0;
    while let Some(message) = data.next().await {
        match message {
            Ok(message) if message.data.is_empty() => {}
            Ok(message) => {
                // The binary format's trailer is not a row.
                if message.data.as_ref() != [0xFF, 0xFF] {
                    rows += 1;
                }
                client.feed(PgWireBackendMessage::CopyData(message)).await?;
            }
            Err(e) => return Ok(error_response(e)),
        }
    }
    client
        .send(PgWireBackendMessage::CopyDone(CopyDone::new()))
        .await?;
    Ok(Response::Execution(Tag::new("COPY").with_rows(rows)))
}

#[async_trait]
impl SimpleQueryHandler for QueryHandler {
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.state.begin(client, &query.query);
        let result = self.simple_query(client, query).await;
        self.state.end(client);
        result
    }

    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.simple_statements(client, query).await
    }
}

impl QueryHandler {
    /// A simple-protocol query message, answered to the end (ReadyForQuery included).
    async fn simple_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // pgwire fixes the transaction status a query ends in before it runs, and sends it in
        // ReadyForQuery: a `ROLLBACK TO SAVEPOINT`, the one statement that takes a failed block
        // back to a usable one, is answered here.
        if matches!(client.state(), PgWireConnectionState::ReadyForQuery)
            && let Some(statement) = rollback_to_savepoint(&query.query)
        {
            let outcome = self
                .state
                .savepoints
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .apply(&statement, client.transaction_status());
            let mut status = client.transaction_status();
            match outcome {
                Some(Ok(tag)) => {
                    send_execution_response(client, Tag::new(tag)).await?;
                    status = TransactionStatus::Transaction;
                }
                Some(Err((code, message))) => {
                    client
                        .feed(PgWireBackendMessage::ErrorResponse(
                            sqlstate::error(code, message).into(),
                        ))
                        .await?;
                    status = status.to_error_state();
                }
                None => {}
            }
            self.state.take_restored();
            client.set_state(PgWireConnectionState::ReadyForQuery);
            client.set_transaction_status(status);
            return send_ready_for_query(client, status).await;
        }
        self._on_query(client, query).await
    }

    /// The statements of one simple query, each to its response.
    async fn simple_statements<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let connected = self.state.connected()?;
        let session = connected.session.clone();
        let timeout = self.timeout(client);
        // The statements borrow the client only until their responses are made.
        let reborrowed = &mut *client;
        let mut responses = self
            .guarded(timeout, async move {
                let client = reborrowed;
                if let Some(refresh) = crate::statements::refresh_statement(query) {
                    let output = match refresh {
                        Ok(mv) => crate::statements::materialized_view(&session, mv).await,
                        Err(e) => Err(e),
                    };
                    return match output {
                        Ok(output) => respond_text(&session, output, &*client).await,
                        Err(e) => Ok(vec![Response::Error(Box::new(sqlstate::error_info(&e)))]),
                    };
                }
                // Statement by statement, so that an error after a success still reports both,
                // as Postgres does.
                let statements = match crate::statements::parse(query) {
                    Ok(s) => s,
                    Err(e) => {
                        return Err(PgWireError::UserError(Box::new(sqlstate::error_info(&e))));
                    }
                };
                let single = statements.len() == 1;
                let mut responses = Vec::with_capacity(statements.len());
                for statement in statements {
                    let outcome = match statement {
                        DFStatement::Statement(s) => {
                            match portal::run_simple_query(&session, client, &s).await {
                                Some(result) => result.map(|r| vec![r]),
                                None => {
                                    // The generic service parses again; a lone statement keeps
                                    // its text.
                                    let text = if single {
                                        query.to_string()
                                    } else {
                                        s.to_string()
                                    };
                                    let result = SimpleQueryHandler::do_query(
                                        connected.service().as_ref(),
                                        client,
                                        &text,
                                    )
                                    .await;
                                    // It may have been a `SET` (the service answers some).
                                    session.forget_state();
                                    result
                                }
                            }
                        }
                        other => match session.execute_df(other).await {
                            Ok(output) => respond_text(&session, output, &*client).await,
                            Err(e) => {
                                Err(PgWireError::UserError(Box::new(sqlstate::error_info(&e))))
                            }
                        },
                    };
                    match outcome {
                        Ok(mut r) => responses.append(&mut r),
                        Err(e) => {
                            responses.push(error_response(e));
                            break;
                        }
                    }
                }
                Ok(responses)
            })
            .await?;
        // A COPY TO that comes first is sent here, so that an error on its way ends it as in
        // Postgres; one after other statements' responses is left to pgwire, which sends them
        // in order.
        if let Some(Response::CopyOut(_)) = responses.first() {
            let Response::CopyOut(copy) = responses.remove(0) else {
                unreachable!("matched above")
            };
            let end = send_copy_out(client, copy).await?;
            responses.insert(0, end);
        }
        Ok(responses)
    }
}

#[async_trait]
impl ExtendedQueryHandler for QueryHandler {
    type Statement = <DfSessionService as ExtendedQueryHandler>::Statement;
    type QueryParser = MappedParser;

    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // The portal is shared (an `Arc`): its text is read in place, not copied per Execute.
        let portal = client
            .portal_store()
            .get_portal(message.name.as_deref().unwrap_or(DEFAULT_NAME));
        let text = portal.as_ref().and_then(|entry| entry.value());
        self.state.begin(
            client,
            text.map_or("", |p| p.statement.statement.0.as_str()),
        );
        let result = self._on_execute(&mut UntilSync::new(client), message).await;
        self.state.end(client);
        // ReadyForQuery (sent at Sync) reports the status set here.
        if self.state.take_restored() && client.transaction_status() == TransactionStatus::Error {
            client.set_transaction_status(TransactionStatus::Transaction);
        }
        result
    }

    async fn on_parse<C>(&self, client: &mut C, message: Parse) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // pgwire's own, with ParseComplete left for Sync to send (see `until_sync`).
        let parser = self.query_parser();
        match StoredStatement::parse(client, &message, parser).await? {
            Some(statement) => client.portal_store().put_statement(Arc::new(statement)),
            None => client
                .portal_store()
                .put_empty_statement(message.name.as_deref().unwrap_or(DEFAULT_NAME)),
        }
        client
            .feed(PgWireBackendMessage::ParseComplete(ParseComplete::new()))
            .await?;
        Ok(())
    }

    async fn on_bind<C>(&self, client: &mut C, message: Bind) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // pgwire's own (the service does not change it), with BindComplete left for Sync.
        let connected = self.state.connected()?;
        connected
            .service()
            .on_bind(&mut UntilSync::new(client), message)
            .await
    }

    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self._on_describe(&mut UntilSync::new(client), message)
            .await
    }

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        let inner = match self.state.connected.get() {
            Some(c) => c.service().query_parser(),
            // pgwire only accepts Parse messages after login; this parser is never used to run
            // anything, it exists to satisfy the signature.
            None => DfSessionService::new(Arc::new(datafusion::prelude::SessionContext::new()))
                .query_parser(),
        };
        Arc::new(MappedParser { inner })
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let connected = self.state.connected()?;
        let service = connected.service();
        let session = connected.session.clone();
        let timeout = self.timeout(client);
        let reborrowed = &mut *client;
        let mut responses = self
            .guarded(timeout, async move {
                let client = reborrowed;
                if let Some(refresh) =
                    crate::statements::refresh_statement(&portal.statement.statement.0)
                {
                    let output = match refresh {
                        Ok(mv) => crate::statements::materialized_view(&session, mv).await,
                        Err(e) => Err(e),
                    };
                    return match output {
                        Ok(output) => respond_text(&session, output, &*client).await,
                        Err(e) => Err(PgWireError::UserError(Box::new(sqlstate::error_info(&e)))),
                    };
                }
                let parser = service.query_parser();
                if let Some(result) =
                    portal::run_query(&session, &connected.plans, &parser, client, portal).await
                {
                    return result.map(|r| vec![r]);
                }
                let result =
                    ExtendedQueryHandler::do_query(service.as_ref(), client, portal, max_rows)
                        .await
                        .map(|r| vec![r]);
                // It may have been a `SET` (the service answers some).
                session.forget_state();
                result
            })
            .await?;
        match responses.pop() {
            Some(Response::CopyOut(copy)) => send_copy_out(client, copy).await,
            Some(response) => Ok(response),
            None => Ok(Response::EmptyQuery),
        }
    }
}

/// The generic parser, with its errors mapped to SQLSTATE codes (a Parse message can fail with
/// an unknown table or a syntax error just as a simple query can).
pub struct MappedParser {
    inner: Arc<Parser>,
}

#[async_trait]
impl QueryParser for MappedParser {
    type Statement = <Parser as QueryParser>::Statement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        // REFRESH MATERIALIZED VIEW is not SQL the parser knows; it is run at execute time.
        if let Some(refresh) = crate::statements::refresh_statement(sql) {
            return match refresh {
                Ok(_) => Ok(Some((sql.to_string(), None))),
                Err(e) => Err(PgWireError::UserError(Box::new(sqlstate::error_info(&e)))),
            };
        }
        let declared: Vec<(usize, SqlDataType)> = types
            .iter()
            .enumerate()
            .filter_map(|(i, t)| match t.as_ref()? {
                t if *t == Type::NUMERIC => {
                    Some((i + 1, SqlDataType::Numeric(ExactNumberInfo::None)))
                }
                t if *t == Type::FLOAT8 => Some((i + 1, SqlDataType::DoublePrecision)),
                t if *t == Type::FLOAT4 => Some((i + 1, SqlDataType::Real)),
                _ => None,
            })
            .collect();
        let cast = if declared.is_empty() {
            None
        } else {
            crate::statements::cast_parameters(sql, &declared)
        };
        let parsed = self
            .inner
            .parse_sql(client, cast.as_deref().unwrap_or(sql), types)
            .await
            .map_err(sqlstate::map_pgwire)?;
        // Result columns named as Postgres names them (the service's own plans included).
        match parsed {
            Some((text, Some((statement, plan)))) => {
                let plan = crate::statements::relabel(&statement, plan)
                    .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
                Ok(Some((text, Some((statement, plan)))))
            }
            other => Ok(other),
        }
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        self.inner
            .get_parameter_types(stmt)
            .map_err(sqlstate::map_pgwire)
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        let fields = self
            .inner
            .get_result_schema(stmt, column_format)
            .map_err(sqlstate::map_pgwire)?;
        Ok(match stmt {
            (_, Some((_, plan))) => super::rows::json_typed(fields, plan.schema().as_arrow()),
            _ => fields,
        })
    }
}
