//! Connection start-up: connection limit, TLS requirement, database name and SCRAM login; on
//! success the connection gets its engine [`Session`](crate::Session).
//!
//! It must not run statements.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::Sink;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::sasl::scram::ScramAuth;
use pgwire::api::auth::{DefaultServerParameterProvider, StartupHandler};
use pgwire::api::{ClientInfo, ConnectionManager, METADATA_DATABASE, METADATA_USER};
use pgwire::api::{PgWireConnectionState, auth::ServerParameterProvider};
use pgwire::api::{PidSecretKeyGenerator, RandomPidSecretKeyGenerator};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use crate::catalog::PG_VERSION;
use crate::config::DATABASE;
use crate::engine::Identity;
use crate::server::handler::ConnectionState;
use crate::server::sqlstate;

/// Parameters sent to the client after login.
pub struct FinopsParameters {
    inner: DefaultServerParameterProvider,
}

impl FinopsParameters {
    fn new() -> Self {
        let mut inner = DefaultServerParameterProvider::default();
        inner.server_version = PG_VERSION.to_string();
        inner.is_superuser = false;
        inner.time_zone = "UTC".to_string();
        FinopsParameters { inner }
    }
}

impl ServerParameterProvider for FinopsParameters {
    fn server_parameters<C>(&self, client: &C) -> Option<std::collections::HashMap<String, String>>
    where
        C: ClientInfo,
    {
        self.inner.server_parameters(client)
    }
}

/// Start-up handler of one connection.
pub struct FinopsStartup {
    state: Arc<ConnectionState>,
    sasl: SASLAuthStartupHandler<FinopsParameters>,
    /// Where pgwire's cancel of a running statement goes (`pg_cancel_backend` uses it too).
    manager: Arc<ConnectionManager>,
}

impl FinopsStartup {
    /// The start-up handler for a new connection.
    pub fn new(state: Arc<ConnectionState>, manager: Arc<ConnectionManager>) -> Self {
        let scram = ScramAuth::new(Arc::new(state.users().clone()));
        let sasl = SASLAuthStartupHandler::new(Arc::new(FinopsParameters::new()))
            .with_scram(scram)
            .with_connection_manager(Arc::clone(&manager))
            .with_pid_secret_key_generator(process_ids());
        FinopsStartup {
            state,
            sasl,
            manager,
        }
    }
}

/// The process's one sequence of connection process ids (`pg_backend_pid()`, cancel keys):
/// pgwire's default generator counts per start-up handler, and there is one per connection.
fn process_ids() -> Arc<dyn PidSecretKeyGenerator> {
    static IDS: std::sync::OnceLock<Arc<RandomPidSecretKeyGenerator>> = std::sync::OnceLock::new();
    Arc::clone(IDS.get_or_init(Default::default)) as Arc<dyn PidSecretKeyGenerator>
}

impl FinopsStartup {
    /// Who `user_name` is, if it may log in.
    fn identity(&self, user_name: &str) -> Option<Identity> {
        let user = self.state.users().get(user_name)?.clone();
        Some(Identity {
            user: user.name,
            role: user.role,
            teams: user.teams,
        })
    }
}

fn fatal(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(sqlstate::fatal(code, message)))
}

#[async_trait]
impl StartupHandler for FinopsStartup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let PgWireFrontendMessage::Startup(startup) = &message {
            if let Some(reason) = self.state.rejection() {
                return Err(fatal(sqlstate::TOO_MANY_CONNECTIONS, reason));
            }
            if self.state.tls_required() && !client.is_secure() {
                return Err(fatal(
                    sqlstate::INVALID_AUTHORIZATION,
                    "SSL connection is required: this server only accepts TLS",
                ));
            }
            let database = startup
                .parameters
                .get("database")
                .or_else(|| startup.parameters.get("user"))
                .cloned()
                .unwrap_or_default();
            if database != DATABASE {
                return Err(fatal(
                    "3D000",
                    format!(
                        "database \"{database}\" does not exist (the database is \"{DATABASE}\")"
                    ),
                ));
            }
            if let Some(identity) = startup
                .parameters
                .get("user")
                .and_then(|name| self.identity(name))
            {
                let parameters = crate::server::hooks::parameters::connection_values(
                    &startup.parameters.clone().into_iter().collect(),
                );
                self.state.prepare(identity, parameters);
            }
        }
        let was_authenticating = matches!(
            client.state(),
            PgWireConnectionState::AuthenticationInProgress
        );
        self.sasl.on_startup(client, message).await?;
        if was_authenticating && matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            let user_name = client
                .metadata()
                .get(METADATA_USER)
                .cloned()
                .unwrap_or_default();
            let Some(identity) = self.identity(&user_name) else {
                return Err(crate::server::auth::login_failed(&user_name));
            };
            let (pid, secret) = client.pid_and_secret_key();
            let parameters = crate::server::hooks::parameters::connection_values(client.metadata());
            self.state
                .connect(
                    identity,
                    &parameters,
                    pid,
                    &secret,
                    Some(client.socket_addr()),
                    Arc::clone(&self.manager),
                )
                .await
                .map_err(|e| PgWireError::UserError(Box::new(sqlstate::error_info(&e))))?;
            log::debug!(
                "{user_name} logged in to {:?} from {}",
                client.metadata().get(METADATA_DATABASE),
                client.socket_addr()
            );
        }
        Ok(())
    }
}
