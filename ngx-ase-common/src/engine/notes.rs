//! What the engine tells: counters per group, the log lines of node health and the
//! breaker, and the debug trace's lines.

use core::fmt;

use ngx_ase_shared::abi::{Admission, AseError, CallKind};

use super::{wire, Engine, Io, Level};
use crate::counters::{bump, counters, GroupStats};
use crate::health::Transition;

impl<D> Engine<D> {
    /// The trace line of a call that ended: one per check and per report.
    pub(super) fn trace_call(&self, slot: usize, status: u16, e: AseError, now: u64, io: &mut impl Io) {
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

    /// Group `g`'s name (`-` for a group that does not exist).
    pub fn group_name(&self, g: usize) -> &str {
        self.group_names.get(g).map_or("-", String::as_str)
    }

    /// ` (group NAME)` for node `node`, for the connection trace lines.
    pub(super) fn group_of_node(&self, node: usize) -> GroupOf<'_> {
        let g = (0..self.group_names.len()).find(|&g| self.nodes.group(g).contains(&node)).unwrap_or(0);
        GroupOf(self.group_name(g))
    }

    /// Node `node`'s health changed: one log line, and its down time on the status page.
    pub(super) fn log_transition(&self, node: usize, t: Transition, why: impl fmt::Display, io: &mut impl Io) {
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

/// One more in a counter of group `g`, when the status page keeps its numbers.
pub(super) fn bump_group(g: usize, which: impl Fn(&GroupStats) -> &core::sync::atomic::AtomicU64) {
    if let Some(s) = crate::counters::group(g) {
        bump(which(s));
    }
}

/// A report the group could not take, counted as dropped by why.
pub(super) fn count_dropped(group: usize, a: Admission) {
    match a {
        Admission::QueueFull => bump(&counters().reports_dropped_queue_full),
        _ => bump(&counters().reports_dropped_unavailable),
    }
    bump_group(group, |s| &s.reports_dropped);
}

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
pub(super) struct GroupOf<'a>(&'a str);

impl fmt::Display for GroupOf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, " (group {})", self.0)
    }
}

/// ` in group "NAME"` for a named group; nothing for the default one (so the messages of a
/// configuration without groups read as they always did).
pub(super) struct GroupSuffix<'a>(pub(super) &'a str);

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
pub(super) struct StatusWhy(pub(super) u16);

impl fmt::Display for StatusWhy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "it answered {}", self.0)
    }
}
