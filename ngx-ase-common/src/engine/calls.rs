//! Call slots: a call's start (a check, or a report queued for the end of the turn), its
//! timer, its end (the answer handed out, the trace line) and its slot's reuse.

use ngx_ase_shared::abi::{Admission, AseError, CallKind, CheckResult};

use super::notes::{bump_group, count_dropped};
use super::{wire, ConnId, Engine, Io};
use crate::counters::{bump, counters};
use crate::health::{Cause, Failure};

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
    pub(super) slot: usize,
    pub(super) generation: u32,
}

pub(super) const HALF: u32 = usize::BITS / 2;
pub(super) const LOW: usize = (1 << HALF) - 1;

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

/// One call in flight (a check or a report); slots are reused, buffers and all.
pub(super) struct CallSlot<D> {
    pub(super) generation: u32,
    pub(super) live: bool,
    pub(super) kind: Option<CallKind>,
    /// Who gets the answer of a check; `None` for reports and cancelled checks.
    pub(super) waiter: Option<D>,
    pub(super) node: usize,
    pub(super) conn: Option<ConnId>,
    /// Nodes this call failed on (bit per node).
    pub(super) tried: u64,
    /// This call is the one testing a node that was down.
    pub(super) probe: bool,
    /// Its caller's log is at debug: trace lines are written for it.
    pub(super) trace: bool,
    pub(super) started: u64,
    pub(super) deadline: u64,
    pub(super) attempt_started: u64,
    /// While connecting: when `ase_connect_timeout` runs out.
    pub(super) connect_deadline: Option<u64>,
    /// The call counts as in flight on `node` (`Nodes::entered`).
    pub(super) on_node: bool,
    /// On a reused connection that was idle a while: when, with no answer byte yet, the
    /// connection is taken for dead and the call goes on a new one (`first_byte_due`).
    pub(super) first_byte_deadline: Option<u64>,
    /// A probe of a down node while another node of the group is up: when, with no answer
    /// yet, the probe has failed and the call moves on (`Cause::ProbeBound`), so a hung node
    /// costs the client who probes it only part of its `ase_timeout`.
    pub(super) probe_deadline: Option<u64>,
    pub(super) limits: Limits,
    /// The group whose nodes this call may use.
    pub(super) group: usize,
    /// Its hash key when the group hashes (`hash KEY`): the check and its report of one
    /// key meet one node.
    pub(super) key: Option<u32>,
    pub(super) last_error: Option<AseError>,
    /// A copy for the `ase_mirror` group: nobody waits for it, it holds a report queue place.
    pub(super) mirror: bool,
    /// The whole request; its first `head_len` bytes are the node's fixed part.
    pub(super) wire: Vec<u8>,
    pub(super) head_len: usize,
}

impl<D> CallSlot<D> {
    /// When the slot's one timer must fire next: the earliest of its deadlines.
    pub(super) fn next_wake(&self) -> u64 {
        [self.connect_deadline, self.first_byte_deadline, self.probe_deadline]
            .into_iter()
            .flatten()
            .fold(self.deadline, u64::min)
    }
}

/// A call slot's request buffer: its first size (most requests fit), and the most it keeps
/// once its call is over (a larger one is freed; see `release`).
const WIRE_START: usize = 2048;
const KEEP_WIRE: usize = 16 * 1024;

/// A call slot's node before the call picked one.
pub(super) const NO_NODE: usize = usize::MAX;

impl<D> Engine<D> {
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
        let id = CallId { slot, generation: self.calls[slot].generation };
        self.attempt(slot, io);
        // A call whose caller has its answer (a detached probe) gives no handle.
        (self.is_current(id) && self.calls[slot].waiter.is_some()).then_some(id)
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
        self.queue_for_flush(slot, io);
        Admission::Go
    }

    /// Sent once this turn of the event loop has answered its clients (`flush`): the call
    /// is no part of the client's wait, and the ASE gets the turn's reports together.
    pub(super) fn queue_for_flush(&mut self, slot: usize, io: &mut impl Io) {
        io.arm(slot, self.calls[slot].deadline);
        if self.pending_reports.is_empty() {
            io.schedule_flush();
        }
        self.pending_reports.push(CallId { slot, generation: self.calls[slot].generation });
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

    /// A call slot filled in for a new call (its request bytes written), not yet sent.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn prepare(
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
        c.mirror = false;
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
        self.calls[id.slot].waiter = None;
        let f = Failure { error: AseError::None, errno: None, unanswered_reuse: false, cause: Cause::Cancelled };
        self.fail_over(id.slot, f, io);
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

    /// The timer of call slot `slot` fired.
    pub fn on_timer(&mut self, slot: usize, io: &mut impl Io) {
        let now = io.now();
        let Some(c) = self.calls.get_mut(slot).filter(|c| c.live) else { return };
        if now < c.deadline {
            if c.connect_deadline.is_some_and(|at| now >= at) {
                return self.fail_over(slot, timed_out(Cause::ConnectTimeout), io);
            }
            if c.probe_deadline.is_some_and(|at| now >= at) {
                c.probe_deadline = None;
                return self.fail_over(slot, timed_out(Cause::ProbeBound), io);
            }
            if c.first_byte_deadline.is_some_and(|at| now >= at) {
                c.first_byte_deadline = None;
                return self.first_byte_due(slot, io);
            }
            return io.arm(slot, c.next_wake());
        }
        let whole_time = c.attempt_started == c.started;
        self.fail_over(slot, timed_out(Cause::Deadline { whole_time }), io);
    }

    /// The call's attempt on its node is over (for `max_conns` and `least_conn`).
    pub(super) fn leave_node(&mut self, slot: usize) {
        let c = &mut self.calls[slot];
        if core::mem::take(&mut c.on_node) {
            let node = c.node;
            self.nodes.left(node);
        }
    }

    /// Ends a call: a check's answer goes to `finished`, the slot is free again.
    pub(super) fn finish(&mut self, slot: usize, status: u16, e: AseError, io: &mut impl Io) {
        let now = io.now();
        let c = &mut self.calls[slot];
        if let Some(conn) = c.conn.take() {
            self.close_conn(conn, io);
        }
        let c = &mut self.calls[slot];
        let answered = e == AseError::None;
        // The group's latency, from every check with a time of its own (not one cancelled).
        if c.kind == Some(CallKind::Check) && (c.waiter.is_some() || c.mirror) {
            let (group, ms) = (c.group, now.saturating_sub(c.started));
            self.note_latency(group, ms, io);
        }
        let c = &mut self.calls[slot];
        match c.kind {
            _ if c.mirror => {
                let group = c.group;
                self.finish_mirror(group, answered);
            }
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

    /// Frees the slot of a call that is over.
    pub(super) fn release(&mut self, slot: usize, io: &mut impl Io) {
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
        // The generation wraps within the bits a handle carries (`to_bits` keeps its low
        // HALF bits, 16 where usize is 32): one that grew past them would never match its
        // own handle again, and `cancel` would miss it.
        c.generation = c.generation.wrapping_add(1) & (LOW as u32);
        self.free_calls.push(slot);
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
                mirror: false,
                wire: Vec::with_capacity(WIRE_START),
                head_len: 0,
            });
            self.calls.len() - 1
        })
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
}

/// An attempt's time bound ran out.
fn timed_out(cause: Cause) -> Failure {
    Failure { error: AseError::Timeout, errno: None, unanswered_reuse: false, cause }
}
