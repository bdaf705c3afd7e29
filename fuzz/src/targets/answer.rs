//! Target `ase_answer`: arbitrary bytes as the ASE's answer, read by hyper's HTTP/1 client
//! as the channel reads it (`ngx-ase-common/src/net/call.rs`): `http1::handshake` over the
//! connection, `send_request` with the channel's request, the status, then the body
//! through `Limited::new(body, 64 KiB).collect()`, errors classified as the channel
//! classifies them (kept in step with `call.rs` by hand: that file needs nginx); then a
//! second call on the same connection when the first left it open (the keep-alive pool's
//! `try_send_request`, whose failure is no outcome: the channel reconnects). Each outcome
//! goes through `ngx_ase_request::verdict::decide`, which must follow the protocol's table.
//!
//! The connection is an in-memory stream instead of an nginx peer connection (which needs
//! a running nginx). Like a socket, it has nothing to read before a request was sent: the
//! answer's first `split` bytes arrive once the first request is written, the rest once
//! the second is (an ASE that answers early or twice is in the fuzzed bytes all the same);
//! then EOF. Bytes come in pieces of a fuzzed size with "not ready" in between. Writes are
//! all accepted.
//!
//! The two futures (the connection task and the caller) are polled by a tiny executor
//! whose waker counts wake-ups: a round in which nothing woke anything means no one would
//! poll again (in nginx: the call waits until `ase_timeout` fires), which is the outcome
//! `Timeout`; more than `MAX_ROUNDS` rounds in one call is a busy loop, a crash.

use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1;
use crate::ngx_ase_request::conf::FailMode;
use crate::ngx_ase_request::verdict::{decide, Decision};
use ngx_ase_shared::abi::{AseError, CheckResult, Verdict};

/// As in `net/call.rs`.
pub const MAX_ANSWER_BODY: usize = 64 * 1024;

/// Polling rounds after which a call counts as a busy loop (each round moves at least one
/// piece of at least one byte; the fuzzer's inputs are a few KiB).
const MAX_ROUNDS: usize = 1 << 16;

const REQUEST_LINE: &[u8] = b"POST /ase/request HTTP/1.1\r\n";

pub struct MemIo {
    data: Vec<u8>,
    /// Bytes readable once the first request is written; all of them after the second.
    split: usize,
    pos: usize,
    piece: usize,
    /// Say "not ready" before the next piece.
    not_ready: bool,
    written: Vec<u8>,
    /// Requests in `written`.
    requests: usize,
    /// The reader waiting for the next request to be sent (a socket wakes it when the
    /// answer arrives).
    read_waker: Option<Waker>,
}

impl hyper::rt::Read for MemIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let available = match self.requests {
            0 => 0,
            1 => self.split,
            _ => self.data.len(),
        };
        if self.pos >= self.data.len() {
            return Poll::Ready(Ok(())); // EOF
        }
        if self.pos >= available {
            // Nothing to read until the next request is sent.
            self.read_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        if self.not_ready {
            self.not_ready = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let n = self.piece.min(available - self.pos).min(buf.remaining());
        let pos = self.pos;
        buf.put_slice(&self.data[pos..pos + n]);
        self.pos += n;
        self.not_ready = true;
        Poll::Ready(Ok(()))
    }
}

impl hyper::rt::Write for MemIo {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        // Count request lines that end in this write (one may span two writes).
        let from = self.written.len().saturating_sub(REQUEST_LINE.len() - 1);
        self.written.extend_from_slice(buf);
        let new = self.written[from..].windows(REQUEST_LINE.len()).filter(|x| *x == REQUEST_LINE).count();
        if new > 0 {
            self.requests += new;
            if let Some(waker) = self.read_waker.take() {
                waker.wake();
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

struct WakeCount(AtomicUsize);

impl Wake for WakeCount {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

type Side<'a> = Option<Pin<&'a mut dyn Future<Output = ()>>>;

/// Polls `main` to completion, polling `side` (the connection task) alongside it; `None`
/// when it stalls (no wake-up pending).
fn drive<T>(side: &mut Side<'_>, main: Pin<&mut dyn Future<Output = T>>) -> Option<T> {
    let mut main = main;
    let count = Arc::new(WakeCount(AtomicUsize::new(0)));
    let waker = Waker::from(count.clone());
    let mut cx = Context::from_waker(&waker);
    for _ in 0..MAX_ROUNDS {
        let before = count.0.load(Ordering::Relaxed);
        if let Some(s) = side.as_mut() {
            if s.as_mut().poll(&mut cx).is_ready() {
                *side = None;
            }
        }
        if let Poll::Ready(v) = main.as_mut().poll(&mut cx) {
            return Some(v);
        }
        if count.0.load(Ordering::Relaxed) == before {
            return None;
        }
    }
    panic!("a call still polling after {MAX_ROUNDS} rounds: hyper spins on this answer");
}

/// What `net/call.rs`'s `classify` makes of a hyper error.
fn classify(e: &hyper::Error) -> AseError {
    if e.is_parse() || e.is_parse_status() {
        AseError::BadAnswer
    } else {
        AseError::Reset
    }
}

/// The request the channel sends (`build_request` in `net/call.rs`).
fn request() -> hyper::Request<Full<Bytes>> {
    hyper::Request::post("/ase/request")
        .header(hyper::header::HOST, "127.0.0.1:8000")
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::CONNECTION, "keep-alive")
        .header("x-correlationid", "AAAAAAAAAAAAAAAAAAAAAA")
        .header("ase-token", "t0k3nt0k3nt0k3nt0k3nt0k3nt0k3n99")
        .body(Full::new(Bytes::from_static(b"{\"source_ip\":\"127.0.0.1\"}")))
        .expect("a valid request")
}

/// `finish` in `net/call.rs`: the status once the bounded body is read.
async fn finish(resp: hyper::Response<hyper::body::Incoming>) -> Result<u16, AseError> {
    let status = resp.status().as_u16();
    Limited::new(resp.into_body(), MAX_ANSWER_BODY).collect().await.map_err(|e| {
        // Too large is a bad answer; a body cut short is a connection that broke.
        if e.is::<http_body_util::LengthLimitError>() { AseError::BadAnswer } else { AseError::Reset }
    })?;
    Ok(status)
}

/// Up to two calls on one connection over `answer` (`split`: see [`MemIo`]), read in
/// pieces of `piece` bytes: the outcome of each call made.
pub fn exchange(answer: &[u8], piece: usize, split: usize) -> Vec<Result<u16, AseError>> {
    let io = MemIo {
        data: answer.to_vec(),
        split: split.min(answer.len()),
        pos: 0,
        piece: piece.max(1),
        not_ready: true,
        written: Vec::new(),
        requests: 0,
        read_waker: None,
    };
    let mut outcomes = Vec::new();
    let mut none: Side<'_> = None;
    let (mut sender, conn) = match drive(&mut none, pin!(http1::handshake(io))) {
        Some(Ok(pair)) => pair,
        Some(Err(e)) => {
            outcomes.push(Err(classify(&e)));
            return outcomes;
        }
        None => panic!("the handshake stalled"),
    };
    let conn = pin!(async move {
        let _ = conn.await;
    });
    let mut side: Side<'_> = Some(conn);
    // The first call, on a new connection.
    let first = drive(
        &mut side,
        pin!(async {
            match sender.send_request(request()).await {
                Ok(resp) => finish(resp).await,
                Err(e) => Err(classify(&e)),
            }
        }),
    );
    // A stalled call is one the check's timer ends.
    let first = first.unwrap_or(Err(AseError::Timeout));
    outcomes.push(first);
    if first.is_err() {
        return outcomes;
    }
    // The pool: a connection is reused only when open and ready; a failure to send on it
    // is no outcome (the channel opens a new connection).
    let second = drive(
        &mut side,
        pin!(async {
            if sender.is_closed() || sender.ready().await.is_err() {
                return None;
            }
            match sender.try_send_request(request()).await {
                Ok(resp) => Some(finish(resp).await),
                Err(_) => None,
            }
        }),
    );
    match second {
        Some(Some(o)) => outcomes.push(o),
        Some(None) => {}
        None => outcomes.push(Err(AseError::Timeout)),
    }
    outcomes
}

/// What the request module decides for an outcome, checked against the protocol's table.
pub fn check_decision(outcome: Result<u16, AseError>, block_status: u16) {
    let result = match outcome {
        Ok(status) => CheckResult::new(status, AseError::None, 1),
        Err(error) => {
            assert_ne!(error, AseError::None);
            CheckResult::new(0, error, 1)
        }
    };
    for mode in [FailMode::Open, FailMode::Closed] {
        let (decision, _) = decide(&result, mode, block_status);
        let failed = match mode {
            FailMode::Closed => Decision::Finalize(503, Verdict::FailClosed),
            _ => Decision::Continue(Verdict::FailOpen),
        };
        let expected = match outcome {
            Ok(200) | Ok(503) => Decision::Continue(Verdict::Allow),
            Ok(403) => Decision::Finalize(block_status, Verdict::Block),
            _ => failed,
        };
        assert_eq!(decision, expected, "{outcome:?} with {mode:?}");
    }
}

/// The input's layout: `piece - 1` (1 byte), the block status (2 bytes, little-endian,
/// 400 + n % 200), a flag (1 byte: odd = the whole answer comes after the first request),
/// `split` (2 bytes, little-endian, modulo the answer's length + 1), then the answer.
pub fn encode(piece: u8, block_status: u16, split: Option<u16>, answer: &[u8]) -> Vec<u8> {
    let mut v = vec![piece.saturating_sub(1)];
    v.extend_from_slice(&(block_status - 400).to_le_bytes());
    v.push(if split.is_some() { 0 } else { 1 });
    v.extend_from_slice(&split.unwrap_or(0).to_le_bytes());
    v.extend_from_slice(answer);
    v
}

pub fn check(data: &[u8]) {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let piece = usize::from(byte(0)) + 1;
    let block_status = 400 + u16::from_le_bytes([byte(1), byte(2)]) % 200;
    let whole = byte(3) & 1 == 1;
    let split_raw = usize::from(u16::from_le_bytes([byte(4), byte(5)]));
    let answer = data.get(6..).unwrap_or(&[]);
    let split = if whole { answer.len() } else { split_raw % (answer.len() + 1) };
    let outcomes = exchange(answer, piece, split);
    assert!(!outcomes.is_empty() && outcomes.len() <= 2);
    for o in &outcomes {
        if let Ok(status) = o {
            assert!((100..=999).contains(status), "hyper gave status {status}");
        }
        check_decision(*o, block_status);
    }
}
