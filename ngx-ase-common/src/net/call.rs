//! One sideband call: pick a node (failover, breaker), take or open a connection, send the
//! POST, read the status and a bounded body, give the connection back to the pool.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1;
use ngx_ase_shared::abi::AseError;

use crate::channel::{Channel, Pooled};
use crate::counters::{bump, counters, status_slot};
use crate::log;
use crate::net::peer::{ConnectError, PeerIo};
use crate::net::select::unless;
use crate::nodes::{Pick, Transition};

/// The largest answer body read from the ASE; a larger one is a bad answer.
const MAX_ANSWER_BODY: usize = 64 * 1024;

pub struct CallSpec {
    pub path: &'static str,
    pub correlation_id: Bytes,
    pub body: Bytes,
    pub connect_timeout_ms: usize,
    /// The whole call's time limit (`ase_timeout`); an exchange still running then is a
    /// timeout, and counts against its node.
    pub timeout_ms: u64,
}

/// Runs a call with failover; the caller bounds its total time.
pub async fn call(ch: Rc<Channel>, spec: CallSpec) -> Result<u16, AseError> {
    let deadline = log::now_ms() + spec.timeout_ms;
    let mut tried: Vec<usize> = Vec::new();
    let mut last_error = AseError::Unavailable;
    loop {
        let pick = ch.health.borrow_mut().pick(log::now_ms(), &tried);
        let (index, probe) = match pick {
            Pick::Node { index, probe } => (index, probe),
            Pick::Exhausted => return Err(last_error),
            Pick::Unavailable { tripped } => {
                bump(&counters().errors[AseError::Unavailable as usize]);
                if tripped {
                    bump(&counters().breaker_trips);
                    log::warn("ase: every ASE node is down; answering \"unavailable\" at once until one comes back");
                }
                return Err(AseError::Unavailable);
            }
        };
        let guard = ProbeGuard { ch: &ch, index, armed: probe };
        let started = log::now_ms();
        let left = Duration::from_millis(deadline.saturating_sub(log::now_ms()).max(1));
        let outcome = unless(exchange(&ch, index, &spec), ngx::async_::sleep(left)).await.unwrap_or(Err(AseError::Timeout));
        guard.disarm();
        if let Some(stats) = counters().nodes.get(index) {
            let failed = match outcome {
                Ok(status) => status >= 500 && status != 503,
                Err(_) => true,
            };
            stats.record(log::now_ms(), log::now_ms().saturating_sub(started), failed);
        }
        match outcome {
            Ok(status) => {
                bump(&counters().status[status_slot(status)]);
                let node_failed = status >= 500 && status != 503;
                let t = if node_failed {
                    ch.health.borrow_mut().failed(index, log::now_ms())
                } else {
                    ch.health.borrow_mut().succeeded(index)
                };
                if t != Transition::None {
                    report_transition(&ch, index, t, &format!("it answered {status}"));
                }
                return Ok(status);
            }
            Err(e) => {
                bump(&counters().errors[e as usize]);
                let t = ch.health.borrow_mut().failed(index, log::now_ms());
                report_transition(&ch, index, t, e.name());
                last_error = e;
                tried.push(index);
            }
        }
    }
}

fn report_transition(ch: &Channel, index: usize, t: Transition, why: &str) {
    let name = &ch.nodes[index].display;
    let down_since = counters().nodes.get(index).map(|n| &n.down_since_ms);
    match t {
        Transition::WentDown => {
            log::warn(&format!("ase: node {name} is down ({why})"));
            if let Some(d) = down_since {
                d.store(log::now_ms().max(1), std::sync::atomic::Ordering::Relaxed);
            }
        }
        Transition::CameBack => {
            log::notice(&format!("ase: node {name} is back"));
            if let Some(d) = down_since {
                d.store(0, std::sync::atomic::Ordering::Relaxed);
            }
        }
        Transition::None => {}
    }
}

/// Frees a node's probe slot if the call is dropped (cancelled) before it finished.
struct ProbeGuard<'a> {
    ch: &'a Channel,
    index: usize,
    armed: bool,
}

impl ProbeGuard<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            if let Ok(mut h) = self.ch.health.try_borrow_mut() {
                h.abandoned(self.index);
            }
        }
    }
}

async fn exchange(ch: &Channel, index: usize, spec: &CallSpec) -> Result<u16, AseError> {
    // A pooled connection first; if it turns out to be closed, a new one (the call is not
    // failed for a connection the ASE closed while it was idle).
    let mut conn = match take_idle(ch, index).await {
        Some(mut p) => {
            bump(&counters().connections_reused);
            match p.sender.try_send_request(build_request(ch, index, spec)).await {
                Ok(resp) => return finish(ch, index, p, resp).await,
                // The ASE closed the idle connection as we used it: hyper hands the request
                // back when it never went out, or the connection ended before a single byte
                // of answer. Either way the ASE did not answer it: send it on a new
                // connection. Any other failure is an error (the ASE never sees a call twice
                // that it answered in part).
                Err(mut e) => {
                    if e.take_message().is_some() || e.error().is_incomplete_message() {
                        drop(p);
                        connect(ch, index, spec).await?
                    } else {
                        return Err(classify(e.error()));
                    }
                }
            }
        }
        None => connect(ch, index, spec).await?,
    };
    let resp = conn
        .sender
        .send_request(build_request(ch, index, spec))
        .await
        .map_err(|e| classify(&e))?;
    finish(ch, index, conn, resp).await
}

async fn finish(
    ch: &Channel,
    index: usize,
    conn: Pooled,
    resp: hyper::Response<hyper::body::Incoming>,
) -> Result<u16, AseError> {
    let status = resp.status().as_u16();
    Limited::new(resp.into_body(), MAX_ANSWER_BODY).collect().await.map_err(|e| {
        // Too large is a bad answer; a body cut short is a connection that broke.
        if e.is::<http_body_util::LengthLimitError>() { AseError::BadAnswer } else { AseError::Reset }
    })?;
    give_back(ch, index, conn);
    Ok(status)
}

/// The first idle connection that is still open and ready.
async fn take_idle(ch: &Channel, index: usize) -> Option<Pooled> {
    loop {
        let mut p = ch.nodes[index].idle.borrow_mut().pop()?;
        if p.sender.is_closed() || !p.link.is_open() {
            continue;
        }
        p.link.set_idle(false);
        if p.sender.ready().await.is_ok() {
            return Some(p);
        }
    }
}

fn give_back(ch: &Channel, index: usize, p: Pooled) {
    if ch.keepalive == 0 || p.sender.is_closed() || !p.link.is_open() || log::worker_exiting() {
        // Dropping it closes the connection (an exiting worker must leave no socket open).
        return;
    }
    let mut idle = ch.nodes[index].idle.borrow_mut();
    if idle.len() < ch.keepalive {
        p.link.set_idle(true);
        idle.push(p);
    }
}

async fn connect(ch: &Channel, index: usize, spec: &CallSpec) -> Result<Pooled, AseError> {
    let node = &ch.nodes[index];
    let mut io = PeerIo::connect(node.addr, &node.display, spec.connect_timeout_ms as _)
        .await
        .map_err(|e| match e {
            ConnectError::Timeout => AseError::Timeout,
            ConnectError::Refused(_) => AseError::Refused,
            ConnectError::Internal => AseError::Internal,
        })?;
    if node.tls {
        if let Err(why) = io.tls_handshake(ch.ssl, node.tls_name.as_deref(), ch.ssl_verify).await {
            log::error_once(&format!("ase: TLS to {} failed: {why}", node.display));
            return Err(AseError::Tls);
        }
    }
    let link = io.link();
    let (sender, connection) = http1::handshake(io).await.map_err(|e| classify(&e))?;
    // The connection task reads and writes for the sender; it ends when the socket closes.
    ngx::async_::spawn(async move {
        let _ = connection.await;
    })
    .detach();
    bump(&counters().connections_new);
    Ok(Pooled { sender, link })
}

fn build_request(ch: &Channel, index: usize, spec: &CallSpec) -> hyper::Request<Full<Bytes>> {
    let node = &ch.nodes[index];
    let mut b = hyper::Request::post(spec.path)
        .header(hyper::header::HOST, node.authority.as_str())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::CONNECTION, "keep-alive")
        .header("x-correlationid", hyper::header::HeaderValue::from_maybe_shared(spec.correlation_id.clone())
            .unwrap_or(hyper::header::HeaderValue::from_static("invalid")));
    if let Some(t) = &ch.token {
        if let Ok(v) = hyper::header::HeaderValue::from_maybe_shared(t.clone()) {
            b = b.header("ase-token", v);
        }
    }
    // Content-Length is set by hyper from the full body.
    b.body(Full::new(spec.body.clone())).unwrap_or_else(|_| hyper::Request::new(Full::new(Bytes::new())))
}

fn classify(e: &hyper::Error) -> AseError {
    if e.is_parse() || e.is_parse_status() {
        AseError::BadAnswer
    } else {
        AseError::Reset
    }
}
