//! The data (sideband) port: accepts connections (plain TCP or TLS), reads requests,
//! answers them, and carries out the injected faults byte by byte.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::faults::{self, FaultKind, HUGE_BODY_LEN};
use crate::handler::{self, Outcome, TEXT};
use crate::state::State;
use crate::wire::{self, ReadError};

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A data-port connection: plain or TLS, with its TCP socket reachable (for SO_LINGER).
pub trait Conn: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    fn tcp(&self) -> &TcpStream;
}

impl Conn for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Conn for TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

pub async fn run(listener: TcpListener, tls: Option<TlsAcceptor>, state: Arc<State>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                eprintln!("ase-double: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let id = state.connection_accepted();
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve(stream, &state, id).await,
                Some(acceptor) => match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => serve(stream, &state, id).await,
                    Ok(Err(e)) => eprintln!("ase-double: connection {id}: TLS handshake: {e}"),
                    Err(_) => eprintln!("ase-double: connection {id}: TLS handshake timed out"),
                },
            }
        });
    }
}

/// Serves the calls of one connection until it closes.
async fn serve<S: Conn>(mut s: S, state: &State, id: u64) {
    let mut buf = Vec::new();
    // When the connection was last busy (accepted, or an answer written): the idle time a
    // "forget idle flows" middlebox counts.
    let mut quiet_since = std::time::Instant::now();
    loop {
        let req = match wire::read_request(&mut s, &mut buf, state.keepalive_timeout).await {
            Ok(req) => req,
            Err(ReadError::Closed) => return,
            Err(ReadError::Io(e)) => {
                if !buf.is_empty() {
                    eprintln!("ase-double: connection {id}: reading a request: {e}");
                }
                return;
            }
            Err(ReadError::Bad(status, text)) => {
                let _ = wire::write_answer(&mut s, status, TEXT, text.as_bytes(), true).await;
                let _ = s.shutdown().await;
                return;
            }
        };
        if state.forgets(quiet_since.elapsed()) {
            // The flow was forgotten: the request never reaches the ASE and nothing comes
            // back, not even a reset (black-holed packets). Held until the peer closes.
            let mut sink = [0u8; 4096];
            while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
            return;
        }
        let keep = state.keepalive() && req.wants_keepalive();
        let outcome = handler::handle(state, &req, id);
        let head_only = req.method == "HEAD";
        let next = answer(&mut s, state, outcome, keep, head_only).await;
        quiet_since = std::time::Instant::now();
        match next {
            Ok(Next::KeepOpen) => continue,
            Ok(Next::Close) => {
                let _ = s.shutdown().await;
                return;
            }
            Ok(Next::Drop) | Err(_) => return,
        }
    }
}

/// What becomes of a connection after an answer.
enum Next {
    KeepOpen,
    /// Close it gracefully (FIN, or TLS close_notify then FIN).
    Close,
    /// Drop it as it is (after a reset: SO_LINGER 0 makes the drop send a RST).
    Drop,
}

impl Next {
    fn keep(keep: bool) -> Next {
        if keep {
            Next::KeepOpen
        } else {
            Next::Close
        }
    }
}

/// Records the call and answers it, with the fault that applies, if any.
async fn answer<S: Conn>(
    s: &mut S,
    state: &State,
    mut outcome: Outcome,
    keep: bool,
    head_only: bool,
) -> std::io::Result<Next> {
    let fault = state.take_fault(outcome.kind);
    let kind = fault.as_ref().map_or(FaultKind::None, |f| f.kind);
    outcome.record.fault = fault.as_ref().map(|f| f.kind.name());
    match &fault {
        Some(f) if f.kind == FaultKind::Status => {
            outcome.status = f.status;
            outcome.content_type = TEXT;
            outcome.body = b"Error: Injected Fault".to_vec();
        }
        Some(f) if matches!(f.kind, FaultKind::Huge | FaultKind::CloseMidBody) => outcome.status = 200,
        _ => {}
    }
    outcome.record.status = match kind {
        FaultKind::Reset | FaultKind::Garbage | FaultKind::Hang => None,
        _ => Some(outcome.status),
    };
    state.record(outcome.kind, outcome.record);

    match (kind, &fault) {
        (FaultKind::Delay, Some(f)) => tokio::time::sleep(Duration::from_millis(f.ms)).await,
        (FaultKind::Reset, _) => {
            let _ = s.tcp().set_zero_linger();
            // dropping the socket with SO_LINGER 0 sends a RST
            return Ok(Next::Drop);
        }
        (FaultKind::Garbage, _) => {
            s.write_all(b"\x00\x01\x02\x03 this is not HTTP \xff\xfe\xfd\r\n\r\n\x1b[0m}{").await?;
            s.flush().await?;
            return Ok(Next::Close);
        }
        (FaultKind::Hang, _) => {
            // read and discard until the peer closes
            let mut sink = [0u8; 4096];
            while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
            return Ok(Next::Drop);
        }
        (FaultKind::Huge, _) => {
            s.write_all(&wire::head(200, "application/json", HUGE_BODY_LEN, !keep)).await?;
            let chunk = vec![b' '; 64 * 1024];
            let mut left = HUGE_BODY_LEN;
            while left > 0 && !head_only {
                let n = left.min(chunk.len());
                s.write_all(&chunk[..n]).await?;
                left -= n;
            }
            s.flush().await?;
            return Ok(Next::keep(keep));
        }
        (FaultKind::CloseMidBody, _) => {
            s.write_all(&wire::head(200, "application/json", 1000, true)).await?;
            s.write_all(b"{\"partial\"").await?;
            s.flush().await?;
            return Ok(Next::Close);
        }
        (FaultKind::Exact1024 | FaultKind::Stray, Some(f)) if !head_only => {
            let mut out = wire::head(outcome.status, outcome.content_type, outcome.body.len(), !keep);
            out.extend_from_slice(&outcome.body);
            if f.kind == FaultKind::Exact1024 {
                let head = |n| wire::head(outcome.status, outcome.content_type, n, !keep);
                out = faults::exact_answer(head, &outcome.body).unwrap_or(out);
            }
            let stray = f.kind == FaultKind::Stray || f.stray;
            if stray && f.ms == 0 {
                // One write: the stray is in the same segment as the answer.
                out.extend_from_slice(faults::STRAY_ANSWER);
            }
            s.write_all(&out).await?;
            s.flush().await?;
            if stray && f.ms > 0 {
                tokio::time::sleep(Duration::from_millis(f.ms)).await;
                s.write_all(faults::STRAY_ANSWER).await?;
                s.flush().await?;
            }
            if stray {
                state.stray_written();
            }
            return Ok(Next::keep(keep));
        }
        _ => {}
    }
    if head_only {
        s.write_all(&wire::head(outcome.status, outcome.content_type, outcome.body.len(), !keep)).await?;
        s.flush().await?;
    } else {
        wire::write_answer(s, outcome.status, outcome.content_type, &outcome.body, !keep).await?;
    }
    Ok(Next::keep(keep))
}
