//! The latency guard of each group (`latency_guard.rs`) inside the engine: fed by every
//! check that ends with a time (waited for, detached or mirrored: while degraded, the checks
//! nobody waits for are what shows the group has recovered), asked at each check's
//! admission, and said once per change in the log and on the status page.

use std::sync::atomic::Ordering::Relaxed;

use super::notes::bump_group;
use super::{Engine, Io, Level};
use crate::latency_guard::{Change, GuardConf, LatencyGuard};

impl<D> Engine<D> {
    /// Group `g`'s `ase_latency_guard` (none until set).
    pub fn set_latency_guard(&mut self, g: usize, conf: Option<GuardConf>, now: u64) {
        if self.guards.len() <= g {
            self.guards.resize(g + 1, None);
        }
        self.guards[g] = conf.map(|c| LatencyGuard::new(c, now));
    }

    /// Whether group `g`'s checks are not to be waited for now (its p99 is above its guard's
    /// threshold). Counted as a detached check when so.
    pub(super) fn detaches(&mut self, g: usize, io: &mut impl Io) -> bool {
        let now = io.now();
        let Some(guard) = self.guards.get_mut(g).and_then(Option::as_mut) else { return false };
        let change = guard.roll(now);
        let degraded = guard.degraded();
        self.say_change(g, change, io);
        if degraded {
            bump_group(g, |s| &s.slow_detached);
        }
        degraded
    }

    /// A check of group `g` took `ms`.
    pub(super) fn note_latency(&mut self, g: usize, ms: u64, io: &mut impl Io) {
        let now = io.now();
        let Some(guard) = self.guards.get_mut(g).and_then(Option::as_mut) else { return };
        let change = guard.record(ms, now);
        self.say_change(g, change, io);
    }

    fn say_change(&self, g: usize, change: Change, io: &mut impl Io) {
        let Some(Some(guard)) = self.guards.get(g) else { return };
        let conf = guard.conf();
        let group = self.group_name(g);
        match change {
            Change::None => {}
            Change::Entered { slow, checks } => {
                bump_group(g, |s| &s.slow_entered);
                if let Some(s) = crate::counters::group(g) {
                    s.slow_workers.fetch_add(1, Relaxed);
                }
                io.log(
                    Level::Warn,
                    format_args!(
                        "ase: the checks of group \"{group}\" are slow ({slow} of {checks} over {}ms in the last {}ms, \
                         p99 above it): not waiting for them (as ase_request monitor) until latency recovers",
                        conf.p99_ms, conf.window_ms
                    ),
                );
            }
            Change::Left { slow, checks } => {
                if let Some(s) = crate::counters::group(g) {
                    let _ = s.slow_workers.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
                }
                io.log(
                    Level::Notice,
                    format_args!(
                        "ase: the checks of group \"{group}\" are fast again ({slow} of {checks} over {}ms in the last \
                         {}ms): waiting for them again",
                        conf.p99_ms, conf.window_ms
                    ),
                );
            }
        }
    }

    /// The engine goes (the worker exits, a reload): a degraded group is no longer degraded
    /// by this worker.
    pub(super) fn forget_guards(&mut self) {
        for (g, guard) in self.guards.iter().enumerate() {
            if guard.as_ref().is_some_and(LatencyGuard::degraded) {
                if let Some(s) = crate::counters::group(g) {
                    let _ = s.slow_workers.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
                }
            }
        }
    }
}
