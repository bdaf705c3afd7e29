//! The sideband channel's logic, in plain Rust over the `Io` trait: each call is a small
//! state machine driven by connection and timer events, as nginx's own upstream module
//! drives a proxied request. Nothing here blocks, allocates per call in the steady state
//! (call slots, their request buffers and the connections' read buffers are reused), or
//! touches nginx; `net/ngx_io.rs` runs it on the worker's event loop and the unit tests run it
//! over a scripted fake.
//!
//! The rules (README, "Node health"):
//! - A call tries nodes in order (backups only while every primary is down); the breaker
//!   answers at once when every node is down, and lets one check at a time probe a node
//!   whose down time has passed.
//! - A call has one deadline, `ase_timeout` from its start. A failover attempt does not
//!   start with less than `ase_connect_timeout` left.
//! - A node is charged with a failure only for what it did: refused, reset, a bad answer,
//!   a 5xx other than the ASE's own unknown-API 503, a connect that took longer than
//!   `ase_connect_timeout`, or no answer within a whole `ase_timeout` of its own. A timeout that came because earlier
//!   attempts used up the call's time is not the node's failure.
//! - Only request checks change a node's health. Response reports go to nodes that are up,
//!   never probe, and never mark a node down or up.

pub mod answer;
pub mod io;
#[cfg(test)]
mod tests;
pub mod wire;

use core::fmt;

use ngx_ase_shared::abi::{Admission, AseError, CallKind, CheckResult};

use crate::counters::{bump, counters, status_slot, GroupStats};
pub use crate::health::Balance;
use crate::health::{with_tried, NodePolicy, Nodes, Pick, Transition};
pub use io::{ConnId, Connect, Io, Level, Xfer};
use wire::NodeHeads;

/// One `ase_server` as the engine needs it.
pub struct NodeSpec {
    /// The node's name in logs: `http://host:port`, with the address for a host name
    /// (`http://ase.example:8000 (127.0.0.1:8000)`; see `settings::Node::display`).
    pub display: String,
    /// The `Host` header.
    pub authority: String,
    pub policy: NodePolicy,
    /// In use from the start; a `resolve` server's slots wait for an address.
    pub active: bool,
}

/// One group of nodes (the http-level `ase_server` lines, or one `ase_upstream` block):
/// its own nodes, breaker and keep-alive pools, and its own token.
pub struct GroupSpec<'a> {
    /// The name in logs and on the status page (`default` for the `ase_server` lines).
    pub name: String,
    pub nodes: Vec<NodeSpec>,
    pub token: Option<&'a [u8]>,
    /// Idle connections kept per node of this group.
    pub keepalive: usize,
    /// How the group shares its calls among its nodes (`least_conn` in its block).
    pub balance: Balance,
}

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

/// A call's time limits (the location's `ase_timeout` and `ase_connect_timeout`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Limits {
    pub timeout_ms: u64,
    pub connect_timeout_ms: u64,
}

/// A pending call as the caller holds it: its slot and that slot's generation, so a stale
/// handle is recognised instead of touching another call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallId {
    slot: usize,
    generation: u32,
}

const HALF: u32 = usize::BITS / 2;
const LOW: usize = (1 << HALF) - 1;

impl CallId {
    /// A non-zero integer for the C handle.
    pub fn to_bits(self) -> usize {
        ((self.generation as usize & LOW) << HALF) | (self.slot + 1)
    }

    pub fn from_bits(bits: usize) -> Option<CallId> {
        let slot = (bits & LOW).checked_sub(1)?;
        Some(CallId { slot, generation: (bits >> HALF) as u32 })
    }
}

struct CallSlot<D> {
    generation: u32,
    live: bool,
    kind: Option<CallKind>,
    /// Who gets the answer of a check; `None` for reports and cancelled checks.
    waiter: Option<D>,
    node: usize,
    conn: Option<ConnId>,
    /// Nodes this call failed on (bit per node).
    tried: u64,
    /// This call is the one testing a node that was down.
    probe: bool,
    /// Its caller's log is at debug: trace lines are written for it.
    trace: bool,
    started: u64,
    deadline: u64,
    attempt_started: u64,
    /// While connecting: when `ase_connect_timeout` runs out.
    connect_deadline: Option<u64>,
    /// The call counts as in flight on `node` (`Nodes::entered`).
    on_node: bool,
    /// On a reused connection that was idle a while: when, with no answer byte yet, the
    /// connection is taken for dead and the call goes on a new one (`stale_reuse`).
    first_byte_deadline: Option<u64>,
    /// A probe of a down node while another node of the group is up: when, with no answer
    /// yet, the probe has failed and the call moves on (`probe_gave_up`), so a hung node
    /// costs the client who probes it only part of its `ase_timeout`.
    probe_deadline: Option<u64>,
    limits: Limits,
    /// The group whose nodes this call may use.
    group: usize,
    /// Its hash key when the group hashes (`hash KEY`): the check and its report of one
    /// key meet one node.
    key: Option<u32>,
    last_error: Option<AseError>,
    /// The whole request; its first `head_len` bytes are the node's fixed part.
    wire: Vec<u8>,
    head_len: usize,
}

impl<D> CallSlot<D> {
    /// When the slot's one timer must fire next: the earliest of its deadlines.
    fn next_wake(&self) -> u64 {
        [self.connect_deadline, self.first_byte_deadline, self.probe_deadline]
            .into_iter()
            .flatten()
            .fold(self.deadline, u64::min)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConnState {
    Connecting,
    Sending,
    Reading,
    Idle,
}

struct ConnSlot {
    live: bool,
    node: usize,
    state: ConnState,
    /// The call it serves (not while idle).
    call: usize,
    reused: bool,
    /// When it connected, calls it carried and when it last went idle (the pool limits).
    opened: u64,
    requests: u64,
    idle_since: u64,
    written: usize,
    /// The answer so far: `buf[..filled]` (the buffer is kept for the next exchange).
    buf: Vec<u8>,
    filled: usize,
}

/// The first size of a connection's read buffer; an ASE answer is usually far smaller.
const READ_BUFFER: usize = 1024;
/// A call slot's request buffer: its first size (most requests fit), and the most it keeps
/// once its call is over (a larger one is freed; see `release`).
const WIRE_START: usize = 2048;
const KEEP_WIRE: usize = 16 * 1024;

pub struct Engine<D> {
    nodes: Nodes,
    names: Vec<String>,
    group_names: Vec<String>,
    heads: Vec<NodeHeads>,
    /// Per node: idle connections kept (its group's `keepalive`).
    keepalive: Vec<usize>,
    /// Per node: its group's keep-alive limits (`set_pool_limits`).
    pool_limits: Vec<PoolLimits>,
    response_queue: usize,
    reports_in_flight: usize,
    calls: Vec<CallSlot<D>>,
    free_calls: Vec<usize>,
    conns: Vec<ConnSlot>,
    free_conns: Vec<ConnId>,
    /// Idle connections per node, most recently used last.
    idle: Vec<Vec<ConnId>>,
    /// Checks answered, for the caller to deliver outside the engine.
    finished: Vec<(D, CheckResult)>,
    /// Reports waiting for the end of this turn of the event loop (`flush`).
    pending_reports: Vec<CallId>,
    /// Per node: whether this worker already said that the node closes its connections.
    said_closes: Vec<bool>,
    /// When this worker last said that nginx itself had no connection to give.
    local_said_at: Option<u64>,
    /// Per node: whether this worker already said that a reused connection to it was dead.
    said_stale: Vec<bool>,
}

impl<D> Drop for Engine<D> {
    /// Each call's buffer holds a whole request, `ASE-Token` included: zeroed before the
    /// memory is freed (the worker exits, or a reload replaces the channel).
    fn drop(&mut self) {
        for c in &mut self.calls {
            crate::secret::zeroize_vec(&mut c.wire);
        }
    }
}

impl<D> Engine<D> {
    /// One group (the http-level `ase_server` lines only).
    pub fn new(nodes: Vec<NodeSpec>, token: Option<&[u8]>, keepalive: usize, response_queue: usize) -> Self {
        let balance = Balance::RoundRobin;
        Engine::with_groups(
            vec![GroupSpec { name: "default".into(), nodes, token, keepalive, balance }],
            response_queue,
        )
    }

    /// Nodes in groups; group `g` of a call is `groups[g]`. Node indices run through the
    /// groups in order (the `Io`'s and the status page's node numbers).
    pub fn with_groups(groups: Vec<GroupSpec<'_>>, response_queue: usize) -> Self {
        let (mut heads, mut keepalive, mut names, mut policies, mut ranges) = (vec![], vec![], vec![], vec![], vec![]);
        let (mut group_names, mut inactive, mut balances) = (Vec::new(), Vec::new(), Vec::new());
        for g in groups {
            balances.push(g.balance);
            let start = policies.len();
            for n in g.nodes {
                heads.push(NodeHeads::new(&n.authority, g.token));
                keepalive.push(g.keepalive);
                names.push(n.display);
                policies.push(n.policy);
                if !n.active {
                    inactive.push(policies.len() - 1);
                }
            }
            ranges.push(start..policies.len());
            group_names.push(g.name);
        }
        let idle = names.iter().map(|_| Vec::new()).collect();
        let said_closes = vec![false; names.len()];
        let (said_stale, pool_limits) = (said_closes.clone(), vec![PoolLimits::default(); names.len()]);
        let mut nodes = Nodes::with_groups(policies, ranges);
        for i in inactive {
            nodes.set_active(i, false);
        }
        for (g, balance) in balances.into_iter().enumerate() {
            nodes.set_balance(g, balance, &names);
        }
        Engine {
            nodes,
            names,
            group_names,
            heads,
            keepalive,
            pool_limits,
            response_queue,
            reports_in_flight: 0,
            calls: Vec::new(),
            free_calls: Vec::new(),
            conns: Vec::new(),
            free_conns: Vec::new(),
            idle,
            finished: Vec::new(),
            pending_reports: Vec::new(),
            said_closes,
            local_said_at: None,
            said_stale,
        }
    }

    /// Group `g`'s keep-alive limits (the defaults until set).
    pub fn set_pool_limits(&mut self, g: usize, limits: PoolLimits) {
        let range = self.nodes.group(g);
        for l in self.pool_limits.get_mut(range).into_iter().flatten() {
            *l = limits;
        }
    }

    /// Whether node `node` takes calls (see `activate` and `drain`).
    pub fn node_active(&self, node: usize) -> bool {
        self.nodes.is_active(node)
    }

    /// Whether a connection to node `node` is still open (a drained node's calls in flight).
    pub fn node_busy(&self, node: usize) -> bool {
        self.conns.iter().any(|c| c.live && c.node == node)
    }

    /// A `resolve` server's new address took node slot `node` (named `display` now): calls
    /// may go to it, with fresh health.
    pub fn activate(&mut self, node: usize, display: String) {
        if let Some(name) = self.names.get_mut(node) {
            *name = display;
            self.nodes.set_active(node, true);
            if let Some(d) = counters().nodes.get(node) {
                d.down_since_ms.store(0, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// A `resolve` server's address vanished from the DNS: node `node` takes no new call;
    /// calls in flight finish on their connections, which then close; idle ones close now.
    pub fn drain(&mut self, node: usize, io: &mut impl Io) {
        if node >= self.names.len() {
            return;
        }
        self.nodes.set_active(node, false);
        while let Some(&conn) = self.idle[node].last() {
            self.close_conn(conn, io);
        }
    }

    /// Whether group `g`'s breaker is open (every node of it is down).
    pub fn breaker_open(&self, g: usize) -> bool {
        self.nodes.breaker_open(g)
    }

    /// Whether a call of `kind` to group `group` may go out now. A refusal is counted as
    /// the call's outcome.
    pub fn admit(&mut self, kind: CallKind, group: usize, io: &mut impl Io) -> Admission {
        match kind {
            CallKind::Check => match self.admit_check(group, io.now()) {
                Ok(()) => Admission::Go,
                Err(tripped) => {
                    bump(&counters().checks);
                    bump_group(group, |s| &s.checks);
                    self.unavailable(group, tripped, io);
                    Admission::Unavailable
                }
            },
            CallKind::Report => {
                let verdict = self.report_admission(group);
                if verdict != Admission::Go {
                    bump(&counters().reports);
                    bump_group(group, |s| &s.reports);
                    count_dropped(group, verdict);
                }
                verdict
            }
        }
    }

    /// Whether group `g` has a node for a check now; each check brings the group's blind
    /// time (milliseconds with its breaker open) on the status page up to date.
    fn admit_check(&mut self, g: usize, now: u64) -> Result<(), bool> {
        let admitted = self.nodes.admit_check(g, now);
        self.count_blind_time(g, now);
        admitted
    }

    fn count_blind_time(&mut self, g: usize, now: u64) {
        let ms = self.nodes.take_blind_ms(g, now);
        if ms > 0 {
            if let Some(s) = crate::counters::group(g) {
                s.blind_ms.fetch_add(ms, core::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    fn report_admission(&self, group: usize) -> Admission {
        if !self.nodes.has_settled(group) {
            Admission::Unavailable
        } else if self.reports_in_flight >= self.response_queue {
            Admission::QueueFull
        } else {
            Admission::Go
        }
    }

    /// Starts a check (`waiter` gets its answer) or a report. `None`: the call already
    /// ended (a check's answer is then in `take_finished`). `key`: its hash key when the
    /// group hashes.
    #[allow(clippy::too_many_arguments)]
    pub fn start_check(
        &mut self,
        waiter: D,
        group: usize,
        key: Option<u32>,
        correlation_id: &[u8],
        body: &[u8],
        limits: Limits,
        io: &mut impl Io,
    ) -> Option<CallId> {
        bump(&counters().checks);
        bump_group(group, |s| &s.checks);
        let slot = self.prepare(CallKind::Check, Some(waiter), (group, key), correlation_id, body, limits, io);
        self.start(slot, io)
    }

    /// Queues a report to group `group`; fire-and-forget. `key`: as its check's.
    #[allow(clippy::too_many_arguments)]
    pub fn send_report(
        &mut self,
        group: usize,
        key: Option<u32>,
        correlation_id: &[u8],
        body: &[u8],
        limits: Limits,
        io: &mut impl Io,
    ) -> Admission {
        bump(&counters().reports);
        bump_group(group, |s| &s.reports);
        let verdict = self.report_admission(group);
        if verdict != Admission::Go {
            count_dropped(group, verdict);
            return verdict;
        }
        self.reports_in_flight += 1;
        let slot = self.prepare(CallKind::Report, None, (group, key), correlation_id, body, limits, io);
        // Sent once this turn of the event loop has answered its clients (`flush`): the
        // report is no part of the client's wait, and the ASE gets the turn's reports
        // together.
        io.arm(slot, self.calls[slot].deadline);
        if self.pending_reports.is_empty() {
            io.schedule_flush();
        }
        self.pending_reports.push(CallId { slot, generation: self.calls[slot].generation });
        Admission::Go
    }

    /// Sends the reports queued since the last flush.
    pub fn flush(&mut self, io: &mut impl Io) {
        let mut pending = core::mem::take(&mut self.pending_reports);
        for id in pending.drain(..) {
            if self.is_current(id) && self.calls[id.slot].conn.is_none() {
                self.attempt(id.slot, io);
            }
        }
        // The (now empty) vector keeps its capacity for the next turn.
        if self.pending_reports.is_empty() {
            self.pending_reports = pending;
        }
    }

    /// Sends the call `prepare`d in `slot`.
    fn start(&mut self, slot: usize, io: &mut impl Io) -> Option<CallId> {
        let id = CallId { slot, generation: self.calls[slot].generation };
        self.attempt(slot, io);
        // A call whose caller has its answer (a detached probe) gives no handle.
        (self.is_current(id) && self.calls[slot].waiter.is_some()).then_some(id)
    }

    /// A call slot filled in for a new call (its request bytes written), not yet sent.
    #[allow(clippy::too_many_arguments)]
    fn prepare(
        &mut self,
        kind: CallKind,
        waiter: Option<D>,
        (group, key): (usize, Option<u32>),
        cid: &[u8],
        body: &[u8],
        limits: Limits,
        io: &mut impl Io,
    ) -> usize {
        let now = io.now();
        let first = self.nodes.group(group).start;
        let slot = self.alloc_call();
        let c = &mut self.calls[slot];
        c.live = true;
        c.kind = Some(kind);
        c.waiter = waiter;
        c.conn = None;
        c.tried = 0;
        c.probe = false;
        c.started = now;
        c.attempt_started = now;
        // No node yet (the trace shows "-" for a call that never got one).
        c.node = NO_NODE;
        c.deadline = now.saturating_add(limits.timeout_ms.max(1));
        c.connect_deadline = None;
        c.limits = limits;
        c.group = group;
        c.key = key;
        c.last_error = None;
        // Written for the group's first node; failover replaces the node's part only.
        let head = self.heads.get(first).map_or(&[][..], |h| h.get(kind));
        c.head_len = wire::write_request(&mut c.wire, head, cid, body);
        c.trace = io.trace_begin(slot);
        slot
    }

    /// Cancels a check: its answer is not delivered and its connection is closed.
    pub fn cancel(&mut self, id: CallId, io: &mut impl Io) {
        if !self.is_current(id) {
            return;
        }
        let c = &mut self.calls[id.slot];
        c.waiter = None;
        if let Some(conn) = c.conn.take() {
            self.close_conn(conn, io);
        }
        let c = &mut self.calls[id.slot];
        if c.probe {
            c.probe = false;
            self.nodes.abandoned(c.node);
        }
        self.release(id.slot, io);
    }

    /// A check's answer, for the caller to deliver.
    pub fn take_finished(&mut self) -> Option<(D, CheckResult)> {
        self.finished.pop()
    }

    /// Calls not yet ended (checks and reports), for the fuzz harness's leak check.
    #[doc(hidden)]
    pub fn live_calls(&self) -> usize {
        self.calls.iter().filter(|c| c.live).count()
    }

    fn is_current(&self, id: CallId) -> bool {
        self.calls.get(id.slot).is_some_and(|c| c.live && c.generation == id.generation)
    }

    // ------------------------------------------------------------------ attempts

    /// Sends the call to the next node, or ends it when there is none (or too little time).
    fn attempt(&mut self, slot: usize, io: &mut impl Io) {
        let now = io.now();
        let c = &self.calls[slot];
        let (kind, group) = (c.kind.unwrap_or(CallKind::Check), c.group);
        let floor = c.limits.connect_timeout_ms.min(c.limits.timeout_ms);
        if c.tried != 0 && c.deadline.saturating_sub(now) < floor.max(1) {
            let e = c.last_error.unwrap_or(AseError::Timeout);
            return self.finish(slot, 0, e, io);
        }
        let (node, probe) = match kind {
            CallKind::Check => match self.nodes.pick(group, now, c.tried, c.key) {
                Pick::Node { index, probe } => (index, probe),
                Pick::Exhausted => {
                    let e = c.last_error.unwrap_or(AseError::Unavailable);
                    return self.finish(slot, 0, e, io);
                }
                Pick::Unavailable { tripped } => {
                    self.unavailable(group, tripped, io);
                    return self.finish(slot, 0, AseError::Unavailable, io);
                }
                Pick::Busy => {
                    // Every node that is up has its `max_conns` calls: not made, no breaker.
                    self.unavailable(group, false, io);
                    return self.finish(slot, 0, AseError::Unavailable, io);
                }
            },
            CallKind::Report => match self.nodes.pick_settled(group, c.tried, c.key) {
                Some(index) => (index, false),
                None => {
                    let e = c.last_error.unwrap_or(AseError::Unavailable);
                    if c.tried == 0 {
                        bump(&counters().reports_dropped_unavailable);
                        bump_group(group, |s| &s.reports_dropped);
                    }
                    return self.finish(slot, 0, e, io);
                }
            },
        };
        self.leave_node(slot);
        self.nodes.entered(node);
        let c = &mut self.calls[slot];
        c.on_node = true;
        c.head_len = wire::switch_node(&mut c.wire, c.head_len, self.heads[node].get(kind));
        c.node = node;
        c.probe = probe;
        c.attempt_started = now;
        c.connect_deadline = None;
        c.probe_deadline = None;
        if probe && self.nodes.another_up(group, node) {
            let c = &mut self.calls[slot];
            let bound = (c.limits.timeout_ms / 2).max(1);
            c.probe_deadline = Some(now.saturating_add(bound).min(c.deadline));
        } else if probe && kind == CallKind::Check {
            self.detach_probe(slot, group, now);
        }
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
            return self.send(conn, io);
        }
        self.connect_new(slot, io);
    }

    fn connect_new(&mut self, slot: usize, io: &mut impl Io) {
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
                self.attempt_failed(slot, e, io);
            }
        }
    }

    /// The attempt on the call's node failed with `e`: charge the node (checks only), then
    /// the next node.
    fn attempt_failed(&mut self, slot: usize, e: AseError, io: &mut impl Io) {
        if e == AseError::Local {
            return self.local_shortage(slot, io);
        }
        self.count_attempt_failure(slot, e, true, io);
        let c = &mut self.calls[slot];
        c.tried = with_tried(c.tried, c.node);
        c.last_error = Some(e);
        self.attempt(slot, io);
    }

    /// nginx could not open a connection for the call (no free connection in
    /// `worker_connections`, no descriptor, no local port). Not the ASE's doing: no node is
    /// charged, no other node tried (the shortage is ours, for every node alike); the call
    /// ends as `local` and says so at most once a minute.
    fn local_shortage(&mut self, slot: usize, io: &mut impl Io) {
        let e = AseError::Local;
        bump(&counters().errors[e as usize]);
        let c = &mut self.calls[slot];
        bump_group(c.group, |s| &s.errors[e as usize]);
        if core::mem::take(&mut c.probe) {
            let node = c.node;
            self.nodes.abandoned(node);
        }
        let now = io.now();
        if self.local_said_at.is_none_or(|at| now.saturating_sub(at) >= 60_000) {
            self.local_said_at = Some(now);
            io.log(
                Level::Error,
                format_args!(
                    "ase: nginx could not open a connection to the ASE (worker_connections or file descriptors \
                     exhausted): the call fails as \"local\", no ASE node is charged"
                ),
            );
        }
        self.finish(slot, 0, AseError::Local, io);
    }

    fn count_attempt_failure(&mut self, slot: usize, e: AseError, node_at_fault: bool, io: &mut impl Io) {
        let now = io.now();
        bump(&counters().errors[e as usize]);
        let c = &mut self.calls[slot];
        bump_group(c.group, |s| &s.errors[e as usize]);
        if let Some(stats) = counters().nodes.get(c.node) {
            stats.record(now, now.saturating_sub(c.attempt_started), true);
        }
        let probe = core::mem::take(&mut c.probe);
        let (node, kind) = (c.node, c.kind);
        if kind == Some(CallKind::Check) && node_at_fault {
            let t = self.nodes.failed(node, now);
            self.log_transition(node, t, e.name(), io);
        } else if probe {
            self.nodes.abandoned(node);
        }
    }

    // ------------------------------------------------------------------ events

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
    pub fn on_connect_failed(&mut self, conn: ConnId, e: AseError, io: &mut impl Io) {
        let Some(cs) = self.conns.get(conn).filter(|c| c.live && c.state == ConnState::Connecting) else { return };
        let slot = cs.call;
        self.forget_conn(conn);
        let c = &mut self.calls[slot];
        c.conn = None;
        c.connect_deadline = None;
        self.attempt_failed(slot, e, io);
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

    /// The timer of call slot `slot` fired.
    pub fn on_timer(&mut self, slot: usize, io: &mut impl Io) {
        let now = io.now();
        let Some(c) = self.calls.get_mut(slot).filter(|c| c.live) else { return };
        if now < c.deadline {
            if c.connect_deadline.is_some_and(|at| now >= at) {
                // The node did not accept within ase_connect_timeout: its failure.
                c.connect_deadline = None;
                if let Some(conn) = c.conn.take() {
                    self.close_conn(conn, io);
                }
                return self.attempt_failed(slot, AseError::Timeout, io);
            }
            if c.probe_deadline.is_some_and(|at| now >= at) {
                c.probe_deadline = None;
                return self.probe_gave_up(slot, io);
            }
            if c.first_byte_deadline.is_some_and(|at| now >= at) {
                c.first_byte_deadline = None;
                return self.stale_reuse(slot, io);
            }
            return io.arm(slot, c.next_wake());
        }
        // The call's time is up. The node is at fault only if it had the whole time.
        if let Some(conn) = c.conn.take() {
            self.close_conn(conn, io);
        }
        let c = &self.calls[slot];
        let had_whole_time = c.attempt_started == c.started;
        self.count_attempt_failure(slot, AseError::Timeout, had_whole_time, io);
        self.finish(slot, 0, AseError::Timeout, io);
    }

    // ------------------------------------------------------------------ one exchange

    fn send(&mut self, conn: ConnId, io: &mut impl Io) {
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
                    return self.attempt_failed(slot, AseError::Bad503, io);
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

    /// A reused connection that had been idle a while carried the call's request and no
    /// answer byte came within its first-byte bound: a middlebox most likely forgot the flow
    /// and drops its packets (nothing resets it, so only a timer tells). The call goes once
    /// on a new connection, within its own deadline, and the node is not charged: it never
    /// saw the request. A connection that is answering (some bytes came) keeps the call.
    fn stale_reuse(&mut self, slot: usize, io: &mut impl Io) {
        let Some(conn) = self.calls[slot].conn else { return };
        let cs = &self.conns[conn];
        if cs.filled > 0 || !cs.reused {
            return io.arm(slot, self.calls[slot].next_wake());
        }
        let node = cs.node;
        if let Some(said) = self.said_stale.get_mut(node).filter(|said| !**said) {
            *said = true;
            io.log(
                Level::Warn,
                format_args!(
                    "ase: a reused idle connection to {} did not answer (a middlebox forgot it?): the call went \
                     on a new connection; consider a shorter ase_keepalive_timeout",
                    self.names[node]
                ),
            );
        }
        if self.calls[slot].trace {
            io.trace(
                Some(slot),
                format_args!("ase: reused connection to {} silent, retried on a new one", self.names[node]),
            );
        }
        self.close_conn(conn, io);
        self.calls[slot].conn = None;
        self.connect_new(slot, io);
    }

    /// The probe of a group whose every node is down: its client is answered now as the
    /// open breaker would answer it ("unavailable", the fail mode), and the call goes on
    /// without it, so a hung or black-holed ASE costs no client a wait; the probe's outcome
    /// only changes the node's health (an answer brings it back for the next checks).
    fn detach_probe(&mut self, slot: usize, group: usize, now: u64) {
        let c = &mut self.calls[slot];
        if let Some(w) = c.waiter.take() {
            self.finished.push((w, CheckResult::new(0, AseError::Unavailable, now.saturating_sub(c.started))));
            bump(&counters().errors[AseError::Unavailable as usize]);
            bump_group(group, |s| &s.errors[AseError::Unavailable as usize]);
        }
    }

    /// A probe of a down node got no answer within its bound while another node of the
    /// group is up: the probe failed (the node stays down, charged as a timeout), and the
    /// call moves on to a node that is up, within its own deadline.
    fn probe_gave_up(&mut self, slot: usize, io: &mut impl Io) {
        if let Some(conn) = self.calls[slot].conn.take() {
            self.close_conn(conn, io);
        }
        self.calls[slot].connect_deadline = None;
        self.calls[slot].first_byte_deadline = None;
        self.attempt_failed(slot, AseError::Timeout, io);
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
        let (slot, unanswered_reuse) = (cs.call, cs.reused && cs.filled == 0 && e == AseError::Reset);
        self.close_conn(conn, io);
        let c = &mut self.calls[slot];
        c.conn = None;
        if unanswered_reuse {
            // The ASE had closed this idle connection and sent nothing: the call was not
            // answered, in part or whole, so it goes once more, on a new connection (which
            // is not `reused`, so this happens once per attempt).
            return self.connect_new(slot, io);
        }
        self.attempt_failed(slot, e, io);
    }

    /// Ends a call: a check's answer goes to `finished`, the slot is free again.
    /// The call's attempt on its node is over (for `max_conns` and `least_conn`).
    fn leave_node(&mut self, slot: usize) {
        let c = &mut self.calls[slot];
        if core::mem::take(&mut c.on_node) {
            let node = c.node;
            self.nodes.left(node);
        }
    }

    fn finish(&mut self, slot: usize, status: u16, e: AseError, io: &mut impl Io) {
        let now = io.now();
        let c = &mut self.calls[slot];
        if let Some(conn) = c.conn.take() {
            self.close_conn(conn, io);
        }
        let c = &mut self.calls[slot];
        match c.kind {
            Some(CallKind::Check) => {
                if let Some(w) = c.waiter.take() {
                    self.finished.push((w, CheckResult::new(status, e, now.saturating_sub(c.started))));
                }
            }
            Some(CallKind::Report) => {
                self.reports_in_flight = self.reports_in_flight.saturating_sub(1);
                if e == AseError::None {
                    bump(&counters().reports_sent);
                    bump_group(c.group, |s| &s.reports_sent);
                }
            }
            None => {}
        }
        if self.calls[slot].trace {
            self.trace_call(slot, status, e, now, io);
        }
        self.release(slot, io);
    }

    /// The trace line of a call that ended: one per check and per report.
    fn trace_call(&self, slot: usize, status: u16, e: AseError, now: u64, io: &mut impl Io) {
        let c = &self.calls[slot];
        let node = self.names.get(c.node).map_or("-", String::as_str);
        let cid = String::from_utf8_lossy(wire::correlation_id(&c.wire, c.head_len));
        let outcome = Outcome(status, e);
        let ms = now.saturating_sub(c.started);
        let group = self.group_name(c.group);
        if c.kind == Some(CallKind::Report) {
            io.trace(Some(slot), format_args!("ase: report group={group} node={node} {outcome} ms={ms} cid={cid}"));
        } else {
            io.trace(
                Some(slot),
                format_args!(
                    "ase: check group={group} node={node} {outcome} ms={ms} cid={cid} verdict={}",
                    outcome.verdict()
                ),
            );
        }
    }

    fn release(&mut self, slot: usize, io: &mut impl Io) {
        io.disarm(slot);
        self.leave_node(slot);
        let c = &mut self.calls[slot];
        c.live = false;
        c.waiter = None;
        // A burst of large payloads must not leave every slot at its peak size for good:
        // a buffer past the usual size goes back (zeroed first: it held the token).
        if c.wire.capacity() > KEEP_WIRE {
            crate::secret::zeroize_vec(&mut c.wire);
            c.wire = Vec::with_capacity(WIRE_START);
        }
        // Fix (found while writing the engine tests): the generation must wrap within the bits a
        // handle carries (`to_bits` keeps its low HALF bits). Where usize is 32 bits that
        // is 16 bits, and a generation that grew past them never matched its own handle
        // again: `cancel` ignored it and the answer went to a waiter that was gone.
        c.generation = c.generation.wrapping_add(1) & (LOW as u32);
        self.free_calls.push(slot);
    }

    // ------------------------------------------------------------------ connections

    /// After an answer: back to the pool, or closed.
    fn give_back(&mut self, conn: ConnId, reusable: bool, io: &mut impl Io) {
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
    fn drained(&mut self, conn: ConnId, io: &mut impl Io) -> bool {
        let mut scratch = [0u8; 1];
        io.recv(conn, &mut scratch) == Xfer::WouldBlock
    }

    /// An idle connection became readable: the ASE closed it (or sent what nobody asked
    /// for, or the worker is closing idle connections). It goes.
    fn check_idle(&mut self, conn: ConnId, io: &mut impl Io) {
        let mut scratch = [0u8; 64];
        if io.recv(conn, &mut scratch) != Xfer::WouldBlock {
            self.close_conn(conn, io);
        }
    }

    fn bind(&mut self, conn: ConnId, slot: usize, reused: bool, state: ConnState) {
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

    fn close_conn(&mut self, conn: ConnId, io: &mut impl Io) {
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
    fn forget_conn(&mut self, conn: ConnId) {
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

    fn alloc_conn(&mut self, node: usize) -> ConnId {
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

    fn alloc_call(&mut self) -> usize {
        self.free_calls.pop().unwrap_or_else(|| {
            self.calls.push(CallSlot {
                generation: 0,
                live: false,
                kind: None,
                waiter: None,
                node: 0,
                conn: None,
                tried: 0,
                probe: false,
                trace: false,
                started: 0,
                deadline: 0,
                attempt_started: 0,
                connect_deadline: None,
                on_node: false,
                first_byte_deadline: None,
                probe_deadline: None,
                limits: Limits::default(),
                group: 0,
                key: None,
                last_error: None,
                wire: Vec::with_capacity(WIRE_START),
                head_len: 0,
            });
            self.calls.len() - 1
        })
    }

    /// Bytes the call slots and connections keep allocated for requests and answers.
    pub fn buffer_bytes(&self) -> usize {
        let calls: usize = self.calls.iter().map(|c| c.wire.capacity()).sum();
        calls + self.conns.iter().map(|c| c.buf.capacity()).sum::<usize>()
    }

    // ------------------------------------------------------------------ shutdown, panics

    /// Closes every connection (the worker exits).
    pub fn close_all(&mut self, io: &mut impl Io) {
        for conn in 0..self.conns.len() {
            self.close_conn(conn, io);
        }
    }

    /// After a panic while handling `conn`: end its call as an internal error and close it.
    pub fn abort_conn(&mut self, conn: ConnId, io: &mut impl Io) {
        let Some(cs) = self.conns.get(conn).filter(|c| c.live) else { return };
        let slot = (cs.state != ConnState::Idle).then_some(cs.call);
        self.close_conn(conn, io);
        if let Some(slot) = slot {
            self.abort_slot(slot, io);
        }
    }

    /// After a panic while handling call slot `slot`: end it as an internal error.
    pub fn abort_slot(&mut self, slot: usize, io: &mut impl Io) {
        if self.calls.get(slot).is_some_and(|c| c.live) {
            bump(&counters().errors[AseError::Internal as usize]);
            let c = &mut self.calls[slot];
            bump_group(c.group, |s| &s.errors[AseError::Internal as usize]);
            if core::mem::take(&mut c.probe) {
                self.nodes.abandoned(c.node);
            }
            self.finish(slot, 0, AseError::Internal, io);
        }
    }

    /// After a panic while starting a check: cancels every call (and drops every answer not
    /// yet delivered) whose waiter matches, so nothing is left to fire for it.
    pub fn forget_waiter(&mut self, matches: impl Fn(&D) -> bool, io: &mut impl Io) {
        self.finished.retain(|(w, _)| !matches(w));
        for slot in 0..self.calls.len() {
            let c = &self.calls[slot];
            if c.live && c.waiter.as_ref().is_some_and(&matches) {
                self.cancel(CallId { slot, generation: c.generation }, io);
            }
        }
    }

    // ------------------------------------------------------------------ counting, logging

    fn unavailable(&mut self, group: usize, tripped: bool, io: &mut impl Io) {
        bump(&counters().errors[AseError::Unavailable as usize]);
        bump_group(group, |s| &s.errors[AseError::Unavailable as usize]);
        if tripped {
            bump(&counters().breaker_trips);
            bump_group(group, |s| &s.breaker_trips);
            io.log(
                Level::Warn,
                format_args!(
                    "ase: every ASE node is down{}; answering \"unavailable\" at once until one comes back",
                    GroupSuffix(self.group_name(group))
                ),
            );
        }
    }

    /// Group `g`'s name (`-` for a group that does not exist).
    pub fn group_name(&self, g: usize) -> &str {
        self.group_names.get(g).map_or("-", String::as_str)
    }

    /// ` (group NAME)` for node `node`, for the connection trace lines.
    fn group_of_node(&self, node: usize) -> GroupOf<'_> {
        let g = (0..self.group_names.len()).find(|&g| self.nodes.group(g).contains(&node)).unwrap_or(0);
        GroupOf(self.group_name(g))
    }

    fn log_transition(&self, node: usize, t: Transition, why: impl fmt::Display, io: &mut impl Io) {
        let name = &self.names[node];
        let down_since = counters().nodes.get(node).map(|n| &n.down_since_ms);
        match t {
            Transition::WentDown => {
                io.log(Level::Warn, format_args!("ase: node {name} is down ({why})"));
                if let Some(d) = down_since {
                    d.store(io.now().max(1), std::sync::atomic::Ordering::Relaxed);
                }
            }
            Transition::CameBack => {
                io.log(Level::Notice, format_args!("ase: node {name} is back"));
                if let Some(d) = down_since {
                    d.store(0, std::sync::atomic::Ordering::Relaxed);
                }
            }
            Transition::None => {}
        }
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

fn count_dropped(group: usize, a: Admission) {
    match a {
        Admission::QueueFull => bump(&counters().reports_dropped_queue_full),
        _ => bump(&counters().reports_dropped_unavailable),
    }
    bump_group(group, |s| &s.reports_dropped);
}

/// One more in a counter of group `g`, when the status page keeps its numbers.
fn bump_group(g: usize, which: impl Fn(&GroupStats) -> &core::sync::atomic::AtomicU64) {
    if let Some(s) = crate::counters::group(g) {
        bump(which(s));
    }
}

/// A call slot's node before the call picked one.
const NO_NODE: usize = usize::MAX;

/// How a call ended, for the trace: `status=403` or `error=timeout`.
struct Outcome(u16, AseError);

impl Outcome {
    /// What the answer means for the request, as the protocol table says (the request
    /// module decides the same way): `fail` is an ASE error, which the location's
    /// `ase_fail_mode` turns into `fail_open` or `fail_closed` (`$ase_verdict` tells).
    fn verdict(&self) -> &'static str {
        match (self.1, self.0) {
            (AseError::None, 200 | 503) => "allow",
            (AseError::None, 403) => "block",
            _ => "fail",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            AseError::None => write!(f, "status={}", self.0),
            e => write!(f, "error={}", e.name()),
        }
    }
}

/// ` (group NAME)`, for the connection trace lines.
struct GroupOf<'a>(&'a str);

impl fmt::Display for GroupOf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, " (group {})", self.0)
    }
}

/// ` in group "NAME"` for a named group; nothing for the default one (so the messages of a
/// configuration without groups read as they always did).
struct GroupSuffix<'a>(&'a str);

impl fmt::Display for GroupSuffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == "default" {
            Ok(())
        } else {
            write!(f, " in group \"{}\"", self.0)
        }
    }
}

/// "it answered 502", for the node-down log line.
struct StatusWhy(u16);

impl fmt::Display for StatusWhy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "it answered {}", self.0)
    }
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
