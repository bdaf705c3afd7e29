//! Where a call goes next: the node it tries (`attempt`), the breaker that answers when no
//! node is up, and the one function every failed attempt goes through (`fail_over`), which
//! charges whom the rule (`health::judge`) blames and moves the call on or ends it, as
//! nginx's `ngx_http_upstream_next` does.

use ngx_ase_shared::abi::{Admission, AseError, CallKind, CheckResult};

use super::notes::count_dropped;
use super::notes::{bump_group, GroupSuffix};
use super::pool::ConnState;
use super::{wire, ConnId, Engine, Io, Level};
use crate::counters::{bump, counters};
use crate::health::{judge, with_tried, Blame, Cause, Excuse, Failure, Next, Pick};

impl<D> Engine<D> {
    /// Whether a call of `kind` to group `group` may go out now. A refusal is counted as
    /// the call's outcome.
    pub fn admit(&mut self, kind: CallKind, group: usize, io: &mut impl Io) -> Admission {
        match kind {
            CallKind::Check => match self.admit_check(group, io.now()) {
                Ok(()) if self.detaches(group, io) => Admission::Detach,
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

    pub(super) fn count_blind_time(&mut self, g: usize, now: u64) {
        let ms = self.nodes.take_blind_ms(g, now);
        if ms > 0 {
            if let Some(s) = crate::counters::group(g) {
                s.blind_ms.fetch_add(ms, core::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    pub(super) fn report_admission(&self, group: usize) -> Admission {
        if !self.nodes.has_settled(group) {
            Admission::Unavailable
        } else if self.reports_in_flight >= self.response_queue {
            Admission::QueueFull
        } else {
            Admission::Go
        }
    }

    // ------------------------------------------------------------------ attempts

    /// Sends the call to the next node, or ends it when there is none (or too little time).
    pub(super) fn attempt(&mut self, slot: usize, io: &mut impl Io) {
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
        if let Some(conn) = self.take_idle(slot, node, io) {
            return self.send(conn, io);
        }
        self.connect_new(slot, io);
    }

    /// The one way on after a failed attempt: the call's connection goes, whoever the rule
    /// blames is charged (or the excuse said), and the call moves on or ends.
    pub(super) fn fail_over(&mut self, slot: usize, f: Failure, io: &mut impl Io) {
        let c = &mut self.calls[slot];
        (c.connect_deadline, c.first_byte_deadline) = (None, None);
        if let Some(conn) = c.conn.take() {
            self.close_conn(conn, io);
        }
        let verdict = judge(&f);
        let counted = verdict.next != Next::RetryFresh && verdict.blame != Blame::Client;
        if counted {
            bump(&counters().errors[f.error as usize]);
            bump_group(self.calls[slot].group, |s| &s.errors[f.error as usize]);
        }
        match verdict.blame {
            Blame::Node => self.charge_node(slot, f.error, true, io),
            Blame::Nobody(Excuse::OutOfTime) => self.charge_node(slot, f.error, false, io),
            Blame::Nobody(Excuse::SilentReuse) => self.say_silent_reuse(slot, io),
            // The call goes on to the same node: it is still its probe, if it was one.
            Blame::Nobody(Excuse::ClosedReuse) => {}
            Blame::Nobody(Excuse::LocalShortage) => {
                self.drop_probe(slot);
                self.say_local_shortage(io);
            }
            Blame::Nobody(Excuse::Internal) | Blame::Client => self.drop_probe(slot),
        }
        match verdict.next {
            Next::RetryFresh => self.connect_new(slot, io),
            Next::MoveOn => {
                let c = &mut self.calls[slot];
                c.tried = with_tried(c.tried, c.node);
                c.last_error = Some(f.error);
                self.attempt(slot, io);
            }
            // A cancelled call is answered to nobody and traced as nothing: it just goes.
            Next::Finish if verdict.blame == Blame::Client => self.release(slot, io),
            Next::Finish => self.finish(slot, 0, f.error, io),
        }
    }

    /// The attempt's node had its time: its latency counted as a failure, and (checks only,
    /// when `at_fault`) its health charged.
    fn charge_node(&mut self, slot: usize, e: AseError, at_fault: bool, io: &mut impl Io) {
        let now = io.now();
        let c = &mut self.calls[slot];
        if let Some(stats) = counters().nodes.get(c.node) {
            stats.record(now, now.saturating_sub(c.attempt_started), true);
        }
        let (node, kind) = (c.node, c.kind);
        if kind == Some(CallKind::Check) && at_fault {
            c.probe = false;
            let t = self.nodes.failed(node, now);
            self.log_transition(node, t, e.name(), io);
        } else {
            self.drop_probe(slot);
        }
    }

    /// The call no longer probes its node: another call may.
    fn drop_probe(&mut self, slot: usize) {
        let c = &mut self.calls[slot];
        if core::mem::take(&mut c.probe) {
            let node = c.node;
            self.nodes.abandoned(node);
        }
    }

    /// A reused idle connection stayed silent: a middlebox most likely forgot the flow and
    /// drops its packets (nothing resets it, so only a timer tells). Said once per node.
    fn say_silent_reuse(&mut self, slot: usize, io: &mut impl Io) {
        let node = self.calls[slot].node;
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
    }

    /// nginx could not open a connection (no free connection in `worker_connections`, no
    /// descriptor, no local port): said at most once a minute.
    fn say_local_shortage(&mut self, io: &mut impl Io) {
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
    }

    /// The first-byte bound of a call on a reused idle connection ran out. One that is
    /// answering (some bytes came) keeps the call; a silent one is a failure.
    pub(super) fn first_byte_due(&mut self, slot: usize, io: &mut impl Io) {
        let Some(conn) = self.calls[slot].conn else { return };
        let cs = &self.conns[conn];
        if cs.filled > 0 || !cs.reused {
            return io.arm(slot, self.calls[slot].next_wake());
        }
        let f = Failure { error: AseError::Timeout, errno: None, unanswered_reuse: true, cause: Cause::FirstByte };
        self.fail_over(slot, f, io);
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
            let f = Failure { error: AseError::Internal, errno: None, unanswered_reuse: false, cause: Cause::Panic };
            self.fail_over(slot, f, io);
        }
    }

    /// A call answered "unavailable" without a try: counted, and a breaker that opened
    /// just now said.
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
}
