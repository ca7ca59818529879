//! One client connection from TLS negotiation to its last message: pgwire's `process_socket`
//! with a larger write buffer.
//!
//! pgwire feeds every row of a result into its framed socket, which writes its buffer out each
//! time it passes the buffer's boundary (8 KiB by default): a 1M-row result was some 14,000
//! `send` calls, each waking the client. The boundary here is [`WRITE_BUFFER`]; everything else
//! (startup timeout, message dispatch, error handling, `Terminate`) is pgwire's own, through its
//! public pieces.

use std::io;
use std::time::Duration;

use futures::StreamExt;
use pgwire::api::{ClientInfo, ErrorHandler, PgWireConnectionState, PgWireServerHandlers};
use pgwire::messages::PgWireFrontendMessage;
use pgwire::tokio::TlsAcceptor;
use pgwire::tokio::server::{negotiate_tls, process_error, process_message};
use tokio::net::TcpStream;

/// Bytes of outgoing messages a connection collects before writing them to its socket (the
/// end of each response is written at once, whatever its size).
pub(crate) const WRITE_BUFFER: usize = 64 * 1024;

/// How long a client has to finish startup and authentication, as pgwire allows.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Serve the connection on `socket` with `handlers` until the client leaves.
pub(crate) async fn process_socket<H>(
    socket: TcpStream,
    tls: Option<TlsAcceptor>,
    handlers: H,
) -> io::Result<()>
where
    H: PgWireServerHandlers,
{
    let startup_timeout = tokio::time::sleep(STARTUP_TIMEOUT);
    tokio::pin!(startup_timeout);
    let socket = tokio::select! {
        _ = &mut startup_timeout => return Ok(()),
        socket = negotiate_tls(socket, tls) => socket?,
    };
    // A client asking for direct TLS when none is configured gets no answer.
    let Some(mut socket) = socket else {
        return Ok(());
    };
    socket.set_backpressure_boundary(WRITE_BUFFER);

    let startup = handlers.startup_handler();
    let simple = handlers.simple_query_handler();
    let extended = handlers.extended_query_handler();
    let copy = handlers.copy_handler();
    let cancel = handlers.cancel_handler();
    let errors = handlers.error_handler();
    loop {
        let message = if matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup
                | PgWireConnectionState::AuthenticationInProgress
        ) {
            tokio::select! {
                _ = &mut startup_timeout => None,
                message = socket.next() => message,
            }
        } else {
            socket.next().await
        };
        let Some(Ok(message)) = message else {
            break;
        };
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            break;
        }
        let extended_query = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended_query) => extended_query,
            _ => message.is_extended_query(),
        };
        if let Err(mut e) = process_message(
            message,
            &mut socket,
            startup.clone(),
            simple.clone(),
            extended.clone(),
            copy.clone(),
            cancel.clone(),
        )
        .await
        {
            errors.on_error(&socket, &mut e);
            process_error(&mut socket, e, extended_query).await?;
        }
    }
    Ok(())
}
