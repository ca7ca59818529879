//! The client's ceiling: what `tokio-postgres` can read when the server costs nothing.
//!
//! A proxy records the bytes finops-db sends for one binary and one text read of a query; a
//! replay server then answers the same client messages with those recorded bytes, written from
//! memory by a thread of its own. Reading from it measures the client alone (message framing,
//! the connection task, row decoding) on the same result, which bounds any server's rate.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The recorded answers to one query.
pub struct Recording {
    /// ParameterDescription and RowDescription: the answer to Describe of the statement.
    describe: Vec<u8>,
    /// Every DataRow of the binary read and its CommandComplete.
    binary_rows: Vec<u8>,
    /// RowDescription, every DataRow and CommandComplete of the text (simple-protocol) read.
    text_rows: Vec<u8>,
}

/// Forward one client connection to `upstream`, keeping a copy of what the server sends.
pub async fn proxy(upstream: SocketAddr) -> (SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("proxy bind");
    let addr = listener.local_addr().expect("proxy address");
    let task = tokio::spawn(async move {
        let (client, _) = listener.accept().await.expect("proxy accept");
        let server = tokio::net::TcpStream::connect(upstream)
            .await
            .expect("proxy connect");
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        let up = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
            let _ = server_write.shutdown().await;
        });
        let mut recorded = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    recorded.extend_from_slice(&buf[..n]);
                    if client_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = up.await;
        recorded
    });
    (addr, task)
}

/// Split a backend byte stream into (type, whole message) pairs.
fn messages(bytes: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 5 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[at + 1..at + 5].try_into().expect("4 bytes")) as usize;
        out.push((bytes[at], &bytes[at..at + 1 + len]));
        at += 1 + len;
    }
    assert_eq!(at, bytes.len(), "recorded stream ends inside a message");
    out
}

impl Recording {
    /// Pick the answers out of a recorded session that prepared the query, read it in binary,
    /// then ran it as a simple query.
    pub fn from_session(bytes: &[u8]) -> Recording {
        let messages = messages(bytes);
        let position = |from: usize, kind: u8| {
            from + messages[from..]
                .iter()
                .position(|(t, _)| *t == kind)
                .unwrap_or_else(|| panic!("no '{}' message recorded", kind as char))
        };
        let params = position(0, b't');
        let rows = position(params, b'T');
        let describe = [messages[params].1, messages[rows].1].concat();
        let bind = position(rows, b'2');
        let done = position(bind, b'C');
        let binary_rows: Vec<u8> = messages[bind + 1..=done]
            .iter()
            .flat_map(|(_, m)| m.iter().copied())
            .collect();
        let text_start = position(done + 1, b'T');
        let text_done = position(text_start, b'C');
        let text_rows: Vec<u8> = messages[text_start..=text_done]
            .iter()
            .filter(|(t, _)| matches!(t, b'T' | b'D' | b'C'))
            .flat_map(|(_, m)| m.iter().copied())
            .collect();
        Recording {
            describe,
            binary_rows,
            text_rows,
        }
    }
}

/// A server that accepts any login and answers every query with the recording; each
/// connection is served by a thread of its own.
pub fn serve(recording: Recording) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("replay bind");
    let addr = listener.local_addr().expect("replay address");
    let recording = Arc::new(recording);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let recording = Arc::clone(&recording);
            std::thread::spawn(move || {
                let _ = answer(stream, &recording);
            });
        }
    });
    addr
}

fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + body.len());
    out.push(kind);
    out.extend_from_slice(&(4 + body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn answer(mut stream: TcpStream, recording: &Recording) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    // Startup (after a refused SSLRequest, if the client asks for TLS).
    loop {
        let mut len = [0u8; 4];
        stream.read_exact(&mut len)?;
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize - 4];
        stream.read_exact(&mut body)?;
        if body[..4] == 80877103u32.to_be_bytes() {
            stream.write_all(b"N")?;
            continue;
        }
        break;
    }
    let ready = message(b'Z', b"I");
    let mut out = message(b'R', &0u32.to_be_bytes());
    out.extend_from_slice(&ready);
    stream.write_all(&out)?;
    out.clear();
    loop {
        let mut head = [0u8; 5];
        stream.read_exact(&mut head)?;
        let mut body =
            vec![0u8; u32::from_be_bytes(head[1..5].try_into().expect("4")) as usize - 4];
        stream.read_exact(&mut body)?;
        match head[0] {
            b'P' => out.extend_from_slice(&message(b'1', &[])),
            b'D' => out.extend_from_slice(&recording.describe),
            b'B' => out.extend_from_slice(&message(b'2', &[])),
            b'E' => {
                stream.write_all(&out)?;
                out.clear();
                stream.write_all(&recording.binary_rows)?;
            }
            b'C' => out.extend_from_slice(&message(b'3', &[])),
            b'S' => {
                out.extend_from_slice(&ready);
                stream.write_all(&out)?;
                out.clear();
            }
            b'Q' => {
                stream.write_all(&recording.text_rows)?;
                stream.write_all(&ready)?;
            }
            b'X' => return Ok(()),
            _ => {}
        }
    }
}
