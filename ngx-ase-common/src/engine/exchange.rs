//! One attempt on a connection: connecting, writing the request, reading the answer and
//! what the answer says of the node.

use ngx_ase_shared::abi::{AseError, CallKind};

use super::io::{Connect, ConnectError, Xfer};
use super::notes::StatusWhy;
use super::pool::{ConnState, READ_BUFFER};
use super::{answer, ConnId, Engine, Io, Level};
use crate::counters::{bump, counters, status_slot};
use crate::health::{Cause, Failure};

impl<D> Engine<D> {
    /// The call's attempt on its node goes on a new connection.
    pub(super) fn connect_new(&mut self, slot: usize, io: &mut impl Io) {
        let node = self.calls[slot].node;
        let conn = self.alloc_conn(node);
        let cs = &mut self.conns[conn];
        (cs.opened, cs.requests) = (io.now(), 0);
        self.bind(conn, slot, false, ConnState::Connecting);
        match io.connect(conn, node) {
            Connect::Ready => self.on_connected(conn, io),
            Connect::Pending => {
                let c = &mut self.calls[slot];
                let at = io.now().saturating_add(c.limits.connect_timeout_ms.max(1)).min(c.deadline);
                c.connect_deadline = Some(at);
                io.arm(slot, c.next_wake());
            }
            Connect::Failed(e) => {
                // Nothing is open: just forget the connection.
                self.forget_conn(conn);
                self.calls[slot].conn = None;
                self.fail_over(slot, connect_failure(e), io);
            }
        }
    }

    /// A connection finished connecting (and its TLS handshake).
    pub fn on_connected(&mut self, conn: ConnId, io: &mut impl Io) {
        let Some(cs) = self.conns.get_mut(conn).filter(|c| c.live && c.state == ConnState::Connecting) else { return };
        cs.state = ConnState::Sending;
        let slot = cs.call;
        bump(&counters().connections_new);
        if self.calls[slot].trace {
            let node = cs.node;
            io.trace(
                Some(slot),
                format_args!("ase: connection opened to {}{}", self.names[node], self.group_of_node(node)),
            );
        }
        let c = &mut self.calls[slot];
        c.connect_deadline = None;
        io.arm(slot, c.next_wake());
        self.send(conn, io);
    }

    /// Connecting failed (refused, TLS); the connection is already closed.
    pub fn on_connect_failed(&mut self, conn: ConnId, e: ConnectError, io: &mut impl Io) {
        let Some(cs) = self.conns.get(conn).filter(|c| c.live && c.state == ConnState::Connecting) else { return };
        let slot = cs.call;
        self.forget_conn(conn);
        self.calls[slot].conn = None;
        self.fail_over(slot, connect_failure(e), io);
    }

    pub fn on_writable(&mut self, conn: ConnId, io: &mut impl Io) {
        if self.conns.get(conn).is_some_and(|c| c.live && c.state == ConnState::Sending) {
            self.send(conn, io);
        }
    }

    pub fn on_readable(&mut self, conn: ConnId, io: &mut impl Io) {
        match self.conns.get(conn).filter(|c| c.live).map(|c| c.state) {
            Some(ConnState::Reading) => self.read(conn, io),
            Some(ConnState::Idle) => self.check_idle(conn, io),
            // An early answer or a hang-up shows when the request is written.
            _ => {}
        }
    }

    pub(super) fn send(&mut self, conn: ConnId, io: &mut impl Io) {
        loop {
            let cs = &mut self.conns[conn];
            let wire = &self.calls[cs.call].wire;
            if cs.written >= wire.len() {
                cs.state = ConnState::Reading;
                return self.read(conn, io);
            }
            match io.send(conn, &wire[cs.written..]) {
                Xfer::Done(n) if n > 0 => cs.written += n,
                Xfer::WouldBlock => return,
                Xfer::Done(_) | Xfer::Failed => return self.exchange_failed(conn, AseError::Reset, io),
            }
        }
    }

    fn read(&mut self, conn: ConnId, io: &mut impl Io) {
        loop {
            let cs = &mut self.conns[conn];
            if cs.filled == cs.buf.len() {
                let limit = answer::MAX_ANSWER_HEAD + answer::MAX_ANSWER_BODY;
                if cs.buf.len() >= limit {
                    return self.exchange_failed(conn, AseError::BadAnswer, io);
                }
                let grown = (cs.buf.len() * 2).clamp(READ_BUFFER, limit);
                cs.buf.resize(grown, 0);
            }
            let eof = match io.recv(conn, &mut cs.buf[cs.filled..]) {
                Xfer::WouldBlock => return,
                Xfer::Failed => return self.exchange_failed(conn, AseError::Reset, io),
                Xfer::Done(0) => true,
                Xfer::Done(n) => {
                    cs.filled += n;
                    false
                }
            };
            #[cfg(feature = "fault-injection")]
            inject_panic(&cs.buf[..cs.filled]);
            match answer::parse(&cs.buf[..cs.filled], eof) {
                answer::Parsed::Done { status, len, keep_alive } => {
                    let reusable = keep_alive && !eof && len == cs.filled && self.drained(conn, io);
                    if !keep_alive {
                        self.closed_by_ase(conn, io);
                    }
                    return self.answered(conn, status, reusable, io);
                }
                answer::Parsed::Foreign503 { len, keep_alive } => {
                    // Not the ASE's unknown-API answer: an ASE error, charged to the node
                    // like a 502. The connection carried a whole answer and may be kept.
                    let slot = cs.call;
                    let reusable = keep_alive && !eof && len == cs.filled && self.drained(conn, io);
                    self.calls[slot].conn = None;
                    self.give_back(conn, reusable, io);
                    let f =
                        Failure { error: AseError::Bad503, errno: None, unanswered_reuse: false, cause: Cause::Answer };
                    return self.fail_over(slot, f, io);
                }
                answer::Parsed::Bad => return self.exchange_failed(conn, AseError::BadAnswer, io),
                // The connection ended before a whole answer.
                answer::Parsed::Partial if eof => return self.exchange_failed(conn, AseError::Reset, io),
                answer::Parsed::Partial => {}
            }
        }
    }

    /// The answer on `conn` said `Connection: close`: the ASE keeps no sideband connection
    /// (`enable_sideband_keepalive` is off, its default), so every call pays a TCP connect
    /// (and a TLS handshake). Counted, and said once per node and worker.
    fn closed_by_ase(&mut self, conn: ConnId, io: &mut impl Io) {
        bump(&counters().connections_closed_by_ase);
        let node = self.conns[conn].node;
        if let Some(said) = self.said_closes.get_mut(node).filter(|said| !**said) {
            *said = true;
            io.log(
                Level::Warn,
                format_args!(
                    "ase: node {} closes every sideband connection (Connection: close): each call pays a new \
                     connection; set enable_sideband_keepalive=true in the ASE's ase.conf",
                    self.names[node]
                ),
            );
        }
    }

    /// The ASE answered `status`.
    fn answered(&mut self, conn: ConnId, status: u16, reusable: bool, io: &mut impl Io) {
        let slot = self.conns[conn].call;
        self.calls[slot].conn = None;
        self.give_back(conn, reusable, io);
        let now = io.now();
        let c = &mut self.calls[slot];
        let node_failed = status >= 500 && status != 503;
        if let Some(stats) = counters().nodes.get(c.node) {
            stats.record(now, now.saturating_sub(c.attempt_started), node_failed);
        }
        bump(&counters().status[status_slot(status)]);
        c.probe = false;
        if c.kind == Some(CallKind::Check) {
            let node = c.node;
            let t = if node_failed { self.nodes.failed(node, now) } else { self.nodes.succeeded(node, now) };
            let group = c.group;
            self.count_blind_time(group, now);
            self.log_transition(node, t, StatusWhy(status), io);
        }
        self.finish(slot, status, AseError::None, io);
    }

    /// The exchange on `conn` broke with `e`.
    fn exchange_failed(&mut self, conn: ConnId, e: AseError, io: &mut impl Io) {
        let cs = &self.conns[conn];
        let f =
            Failure { error: e, errno: None, unanswered_reuse: cs.reused && cs.filled == 0, cause: Cause::Exchange };
        self.fail_over(cs.call, f, io);
    }
}

fn connect_failure(e: ConnectError) -> Failure {
    Failure { error: e.error, errno: e.errno, unanswered_reuse: false, cause: Cause::Connect }
}

/// Test builds only: an answer carrying this header panics inside the channel, so the
/// integration tests can prove a panic fails one call and nothing else.
#[cfg(feature = "fault-injection")]
fn inject_panic(answer: &[u8]) {
    const MARK: &[u8] = b"X-Ngx-Ase-Test-Panic";
    if answer.windows(MARK.len()).any(|w| w.eq_ignore_ascii_case(MARK)) {
        panic!("injected panic (fault-injection build)");
    }
}
