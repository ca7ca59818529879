//! The Postgres wire-protocol server: listening, TLS, connection limits, per-connection handlers
//! and graceful shutdown.
//!
//! The protocol layer talks to the [`Engine`] through sessions only; it never reaches into
//! DataFusion's planner or storage.

pub mod auth;
mod float_text;
pub mod handler;
pub mod hooks;
mod portal;
pub(crate) mod rows;
pub mod sqlstate;
pub mod startup;
mod until_sync;

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use pgwire::api::ConnectionManager;
use pgwire::messages::startup::SecretKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

use crate::config::{Config, TlsConfig};
use crate::engine::Engine;
use crate::error::{Error, Result};
use auth::UserDirectory;
use handler::{ConnectionHandlers, ConnectionState};

/// A connection's `(pid, secret key)` as sent in cancel requests.
type ConnectionKey = (i32, Vec<u8>);

/// Live connections by `(pid, secret key)`, so a cancel request finds its connection.
#[derive(Default)]
pub struct Registry {
    connections: Mutex<HashMap<ConnectionKey, Weak<ConnectionState>>>,
}

fn key_bytes(secret: &SecretKey) -> Vec<u8> {
    match secret {
        SecretKey::I32(v) => v.to_be_bytes().to_vec(),
        SecretKey::Bytes(b) => b.to_vec(),
    }
}

impl Registry {
    fn register(&self, pid: i32, secret: &SecretKey, state: &Arc<ConnectionState>) {
        if let Ok(mut map) = self.connections.lock() {
            map.retain(|_, weak| weak.strong_count() > 0);
            map.insert((pid, key_bytes(secret)), Arc::downgrade(state));
        }
    }

    fn lookup(&self, pid: i32, secret: &SecretKey) -> Option<Arc<ConnectionState>> {
        let map = self.connections.lock().ok()?;
        map.get(&(pid, key_bytes(secret)))?.upgrade()
    }
}

/// A bound, ready-to-serve server.
pub struct Server {
    engine: Arc<Engine>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    users: UserDirectory,
    registry: Arc<Registry>,
    manager: Arc<ConnectionManager>,
    active: Arc<AtomicUsize>,
}

/// Load the TLS certificate and key; any failure refuses to start (never a plain-text fallback).
pub fn load_tls(tls: &TlsConfig) -> Result<TlsAcceptor> {
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let open = |path: &std::path::Path| {
        File::open(path)
            .map(BufReader::new)
            .map_err(|e| Error::Config(format!("tls: cannot open {}: {e}", path.display())))
    };
    let certs = rustls_pemfile::certs(&mut open(&tls.cert)?)
        .collect::<std::result::Result<Vec<CertificateDer>, _>>()
        .map_err(|e| Error::Config(format!("tls.cert {}: {e}", tls.cert.display())))?;
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "tls.cert {}: no certificate found",
            tls.cert.display()
        )));
    }
    let key = rustls_pemfile::private_key(&mut open(&tls.key)?)
        .map_err(|e| Error::Config(format!("tls.key {}: {e}", tls.key.display())))?
        .ok_or_else(|| {
            Error::Config(format!(
                "tls.key {}: no private key found",
                tls.key.display()
            ))
        })?;
    let key: PrivateKeyDer = key;
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Config(format!("tls: certificate and key do not match: {e}")))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

impl Server {
    /// Validate the configuration, load TLS and bind the listener.
    pub async fn bind(engine: Arc<Engine>, config: &Config) -> Result<Server> {
        config.validate()?;
        let tls = config.tls.as_ref().map(load_tls).transpose()?;
        let users = UserDirectory::from_config(config).map_err(Error::Config)?;
        let addr = config.listen_addr()?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| Error::io(format!("listen {addr}"), e))?;
        Ok(Server {
            engine,
            listener,
            tls,
            users,
            registry: Arc::new(Registry::default()),
            manager: Arc::new(ConnectionManager::new()),
            active: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener
            .local_addr()
            .map_err(|e| Error::io("listener", e))
    }

    /// Accept connections until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        tokio::pin!(shutdown);
        let max = self.engine.config().limits.max_connections;
        loop {
            let accepted = tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => accepted,
            };
            let (socket, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    log::warn!("accept failed: {e}");
                    continue;
                }
            };
            let _ = socket.set_nodelay(true);
            let count = self.active.fetch_add(1, Ordering::SeqCst) + 1;
            let rejection = (max > 0 && count > max)
                .then(|| format!("sorry, too many clients already (max_connections = {max})"));
            let state = ConnectionState::new(
                Arc::clone(&self.engine),
                self.users.clone(),
                Arc::clone(&self.registry),
                self.tls.is_some(),
                rejection,
            );
            let handlers = ConnectionHandlers::new(state, Arc::clone(&self.manager));
            let tls = self.tls.clone();
            let active = Arc::clone(&self.active);
            tokio::spawn(async move {
                if let Err(e) = pgwire::tokio::process_socket(socket, tls, handlers).await {
                    log::debug!("connection from {peer} ended: {e}");
                }
                active.fetch_sub(1, Ordering::SeqCst);
            });
        }
        log::info!("shutting down");
        Ok(())
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
