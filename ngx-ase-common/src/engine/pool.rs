//! The connection pool: connection slots, the idle connections kept per node, their reuse
//! and return, and nginx's upstream keep-alive limits on them.

use super::io::Xfer;
use super::{ConnId, Engine, Io, Limits};
use crate::counters::{bump, counters};

/// How long and how much a pooled connection may serve (`ase_keepalive_timeout`,
/// `ase_keepalive_requests`, `ase_keepalive_time`, or the `ase_upstream` block's own), as
/// nginx's upstream keep-alive limits its connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolLimits {
    /// An idle connection older than this (idle time) is closed, not reused.
    pub idle_timeout_ms: u64,
    /// A connection that carried this many calls is closed after its answer.
    pub requests: u64,
    /// A connection older than this (since its connect) is not pooled again.
    pub max_age_ms: u64,
}

impl Default for PoolLimits {
    /// nginx's `keepalive_timeout 60s`, `keepalive_requests 1000`, `keepalive_time 1h`.
    fn default() -> Self {
        PoolLimits { idle_timeout_ms: 60_000, requests: 1000, max_age_ms: 3_600_000 }
    }
}

/// A reused connection that sat idle at least this long may have been forgotten by a
/// middlebox (a NAT or load balancer that dropped the flow): its request gets a shorter
/// first-byte bound (see `stale_bound`). Connections reused sooner (a busy worker's) keep
/// the whole `ase_timeout`, so a slow ASE under load is not sent every call twice.
const STALE_IDLE_MS: u64 = 1000;

/// Where a connection is in its exchange, or idle in the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ConnState {
    Connecting,
    Sending,
    Reading,
    Idle,
}

/// One connection to a node (open while `live`); slots are reused, read buffer and all.
pub(super) struct ConnSlot {
    pub(super) live: bool,
    pub(super) node: usize,
    pub(super) state: ConnState,
    /// The call it serves (not while idle).
    pub(super) call: usize,
    pub(super) reused: bool,
    /// When it connected, calls it carried and when it last went idle (the pool limits).
    pub(super) opened: u64,
    pub(super) requests: u64,
    pub(super) idle_since: u64,
    pub(super) written: usize,
    /// The answer so far: `buf[..filled]` (the buffer is kept for the next exchange).
    pub(super) buf: Vec<u8>,
    pub(super) filled: usize,
}

/// The first size of a connection's read buffer; an ASE answer is usually far smaller.
pub(super) const READ_BUFFER: usize = 1024;

impl<D> Engine<D> {
    /// An idle connection to `node` for call slot `slot`, bound to it with its first-byte
    /// bound armed; none when the pool has no usable one (expired ones are closed here).
    pub(super) fn take_idle(&mut self, slot: usize, node: usize, io: &mut impl Io) -> Option<ConnId> {
        let now = io.now();
        while let Some(conn) = self.idle[node].pop() {
            if self.idle_expired(conn, now) {
                // Its idle timer is due but has not run yet in this turn of the event loop.
                self.close_conn(conn, io);
                continue;
            }
            if io.pending(conn) {
                // Something arrived on it since its last answer (an ASE or a middlebox
                // writing what nobody asked for, or its close), and its readiness event, if
                // any, has not run yet: what is there must not be read as this call's
                // answer. Never reused; the next idle one, or a new connection.
                self.close_conn(conn, io);
                continue;
            }
            bump(&counters().connections_reused);
            if self.calls[slot].trace {
                io.trace(
                    Some(slot),
                    format_args!("ase: connection reused to {}{}", self.names[node], self.group_of_node(node)),
                );
            }
            io.set_idle(conn, false);
            let idled = now.saturating_sub(self.conns[conn].idle_since);
            self.bind(conn, slot, true, ConnState::Sending);
            let c = &mut self.calls[slot];
            c.first_byte_deadline = stale_bound(idled, now, &c.limits, c.deadline);
            io.arm(slot, c.next_wake());
            return Some(conn);
        }
        None
    }

    /// After an answer: back to the pool, or closed.
    pub(super) fn give_back(&mut self, conn: ConnId, reusable: bool, io: &mut impl Io) {
        let node = self.conns[conn].node;
        let now = io.now();
        let spent = self.spent(conn, now);
        let pool = &mut self.idle[node];
        if !reusable || spent || io.exiting() || pool.len() >= self.keepalive[node] || !self.nodes.is_active(node) {
            return self.close_conn(conn, io);
        }
        let cs = &mut self.conns[conn];
        cs.state = ConnState::Idle;
        cs.filled = 0;
        if cs.buf.len() > READ_BUFFER {
            cs.buf.truncate(READ_BUFFER);
            cs.buf.shrink_to_fit();
        }
        cs.written = 0;
        cs.idle_since = now;
        pool.push(conn);
        io.set_idle(conn, true);
        io.arm_idle(conn, self.pool_limits[node].idle_timeout_ms);
    }

    /// Whether `conn` carried `ase_keepalive_requests` calls or is older than
    /// `ase_keepalive_time`: then it is closed after its answer instead of pooled (nginx's
    /// upstream keep-alive does the same with `keepalive_requests` and `keepalive_time`).
    fn spent(&self, conn: ConnId, now: u64) -> bool {
        let cs = &self.conns[conn];
        let limits = &self.pool_limits[cs.node];
        cs.requests >= limits.requests || now.saturating_sub(cs.opened) >= limits.max_age_ms
    }

    /// Whether idle `conn` has been idle `ase_keepalive_timeout` or longer.
    fn idle_expired(&self, conn: ConnId, now: u64) -> bool {
        let cs = &self.conns[conn];
        now.saturating_sub(cs.idle_since) >= self.pool_limits[cs.node].idle_timeout_ms
    }

    /// The idle timer of `conn` (`Io::arm_idle`) fired: closed, as nginx's upstream
    /// keep-alive closes a cached connection when `keepalive_timeout` runs out.
    pub fn on_idle_timeout(&mut self, conn: ConnId, io: &mut impl Io) {
        if self.conns.get(conn).is_some_and(|c| c.live && c.state == ConnState::Idle) {
            self.close_conn(conn, io);
        }
    }

    /// Whether nothing is left to read on `conn` once its answer was read whole. nginx's
    /// epoll is edge-triggered: a read that filled the buffer exactly leaves the readiness
    /// flag set, and no new event comes for bytes already there, so what followed the answer
    /// (an extra answer nobody asked for) would be read by the next call on this connection
    /// as its own. One more read must say `WouldBlock`; anything else (bytes, the end, an
    /// error) and the connection is not kept. In nginx this read costs no system call when
    /// the last one already emptied the socket (the readiness flag is then clear).
    pub(super) fn drained(&mut self, conn: ConnId, io: &mut impl Io) -> bool {
        let mut scratch = [0u8; 1];
        io.recv(conn, &mut scratch) == Xfer::WouldBlock
    }

    /// An idle connection became readable: the ASE closed it (or sent what nobody asked
    /// for, or the worker is closing idle connections). It goes.
    pub(super) fn check_idle(&mut self, conn: ConnId, io: &mut impl Io) {
        let mut scratch = [0u8; 64];
        if io.recv(conn, &mut scratch) != Xfer::WouldBlock {
            self.close_conn(conn, io);
        }
    }

    pub(super) fn bind(&mut self, conn: ConnId, slot: usize, reused: bool, state: ConnState) {
        let cs = &mut self.conns[conn];
        cs.call = slot;
        cs.reused = reused;
        cs.state = state;
        cs.written = 0;
        cs.filled = 0;
        cs.requests = cs.requests.saturating_add(1);
        let c = &mut self.calls[slot];
        c.conn = Some(conn);
        c.first_byte_deadline = None;
    }

    pub(super) fn close_conn(&mut self, conn: ConnId, io: &mut impl Io) {
        let Some(cs) = self.conns.get(conn).filter(|c| c.live) else { return };
        // A connection serving a call is traced with it; an idle one with the worker.
        let slot = (cs.state != ConnState::Idle).then_some(cs.call);
        if slot.map_or_else(|| io.traces(), |s| self.calls[s].trace) {
            io.trace(
                slot,
                format_args!("ase: connection closed to {}{}", self.names[cs.node], self.group_of_node(cs.node)),
            );
        }
        io.close(conn);
        self.forget_conn(conn);
    }

    /// Drops a connection from the tables (it is closed already, or was never open).
    pub(super) fn forget_conn(&mut self, conn: ConnId) {
        let cs = &mut self.conns[conn];
        if !cs.live {
            return;
        }
        cs.live = false;
        // An answer buffer that grew for a large answer goes back to its usual size.
        if cs.buf.len() > READ_BUFFER {
            cs.buf = Vec::new();
        }
        if cs.state == ConnState::Idle {
            let pool = &mut self.idle[cs.node];
            if let Some(i) = pool.iter().position(|&c| c == conn) {
                pool.remove(i);
            }
        }
        self.free_conns.push(conn);
    }

    pub(super) fn alloc_conn(&mut self, node: usize) -> ConnId {
        let conn = self.free_conns.pop().unwrap_or_else(|| {
            self.conns.push(ConnSlot {
                live: false,
                node,
                state: ConnState::Connecting,
                call: 0,
                reused: false,
                opened: 0,
                requests: 0,
                idle_since: 0,
                written: 0,
                buf: Vec::new(),
                filled: 0,
            });
            self.conns.len() - 1
        });
        let cs = &mut self.conns[conn];
        cs.live = true;
        cs.node = node;
        if cs.buf.is_empty() {
            cs.buf.resize(READ_BUFFER, 0);
        }
        conn
    }

    /// Bytes the call slots and connections keep allocated for requests and answers.
    pub fn buffer_bytes(&self) -> usize {
        let calls: usize = self.calls.iter().map(|c| c.wire.capacity()).sum();
        calls + self.conns.iter().map(|c| c.buf.capacity()).sum::<usize>()
    }

    /// Closes every connection (the worker exits).
    pub fn close_all(&mut self, io: &mut impl Io) {
        for conn in 0..self.conns.len() {
            self.close_conn(conn, io);
        }
    }

    /// Whether a connection to node `node` is still open (a drained node's calls in flight).
    pub fn node_busy(&self, node: usize) -> bool {
        self.conns.iter().any(|c| c.live && c.node == node)
    }
}

/// The first-byte bound of a call on a reused connection that sat idle `idled` ms: none for
/// one reused soon (`STALE_IDLE_MS`); else the shorter of half `ase_timeout` and
/// `ase_connect_timeout` from now, so that a new connection still has at least half the
/// call's time (a connect and an answer) before its `deadline`, which bounds it all.
fn stale_bound(idled: u64, now: u64, limits: &Limits, deadline: u64) -> Option<u64> {
    if idled < STALE_IDLE_MS {
        return None;
    }
    let bound = (limits.timeout_ms / 2).min(limits.connect_timeout_ms).max(1);
    Some(now.saturating_add(bound).min(deadline))
}
