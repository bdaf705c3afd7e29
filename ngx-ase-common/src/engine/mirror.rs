//! `ase_mirror`: a copy of a check or a report sent to a second group, which nobody waits
//! for and whose answer nobody acts on. Mirrored calls share the report queue's ceiling
//! (`ase_response_queue`), so a slow or dead mirror holds at most that many slots, and they
//! go out when the turn's reports do, after the clients were answered.

use ngx_ase_shared::abi::{Admission, CallKind};

use super::notes::bump_group;
use super::{Engine, Io, Limits};

impl<D> Engine<D> {
    /// Queues a copy of a call of `kind` to group `group`. A mirrored check may probe the
    /// mirror group's down nodes (as any check), so the group can come back; a mirrored
    /// report only goes to a node that is up. Counted in the group's `mirrored` and, when
    /// not sent, `mirrored_dropped`.
    #[allow(clippy::too_many_arguments)]
    pub fn send_mirror(
        &mut self,
        kind: CallKind,
        group: usize,
        key: Option<u32>,
        correlation_id: &[u8],
        body: &[u8],
        limits: Limits,
        io: &mut impl Io,
    ) -> Admission {
        bump_group(group, |s| &s.mirrored);
        let admission = self.mirror_admission(kind, group, io.now());
        if admission != Admission::Go {
            bump_group(group, |s| &s.mirrored_dropped);
            return admission;
        }
        self.reports_in_flight += 1;
        let slot = self.prepare(kind, None, (group, key), correlation_id, body, limits, io);
        self.calls[slot].mirror = true;
        self.queue_for_flush(slot, io);
        Admission::Go
    }

    fn mirror_admission(&mut self, kind: CallKind, group: usize, now: u64) -> Admission {
        if self.reports_in_flight >= self.response_queue {
            return Admission::QueueFull;
        }
        let usable = match kind {
            CallKind::Check => self.nodes.admit_check(group, now).is_ok(),
            CallKind::Report => self.nodes.has_settled(group),
        };
        if usable {
            Admission::Go
        } else {
            Admission::Unavailable
        }
    }

    /// A mirrored call ended: its queue place is free; an answer counts as sent.
    pub(super) fn finish_mirror(&mut self, group: usize, answered: bool) {
        self.reports_in_flight = self.reports_in_flight.saturating_sub(1);
        if answered {
            bump_group(group, |s| &s.mirrored_sent);
        }
    }
}
