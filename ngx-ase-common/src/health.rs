//! Which ASE node a call goes to: failover in order (backups only while every primary is
//! down), `max_fails`/`fail_timeout` as nginx upstreams define them, and a circuit breaker
//! that lets one probe at a time test a node whose down time has passed. Safe Rust; time is
//! passed in (milliseconds) so the tests drive it.
//!
//! Nodes belong to groups (the http-level `ase_server` lines are group 0, each
//! `ase_upstream` block one more): a call picks only within its group, and each group has
//! its own breaker, so one group's ASE being down never touches another group's calls.

use core::ops::Range;

/// Health of one node.
#[derive(Clone, Debug, Default)]
pub struct Health {
    /// Failures counted in the current window.
    fails: u32,
    /// When the current failure window started.
    window_start: u64,
    /// The node is down until this time (0 = up).
    down_until: u64,
    /// A call is testing this node after its down time ran out.
    probing: bool,
}

#[derive(Clone, Debug)]
pub struct NodePolicy {
    pub backup: bool,
    pub max_fails: u32,
    pub fail_timeout_ms: u64,
}

/// What happened to the node's health with an outcome, for one log line per change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    None,
    WentDown,
    CameBack,
}

pub struct Nodes {
    policies: Vec<NodePolicy>,
    health: Vec<Health>,
    /// The nodes of each group (indices into `policies`, contiguous, in group order).
    groups: Vec<Range<usize>>,
    /// Per group: whether the last `pick` found every node down (to count trips once).
    breaker_open: Vec<bool>,
    /// Whether a node is in use: a `resolve` server's slot without an address (or whose
    /// address vanished from the DNS) takes no call.
    active: Vec<bool>,
}

/// The result of `pick`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    /// Use this node; `probe` = it is the one call testing a node that was down.
    Node { index: usize, probe: bool },
    /// Every node is down: answer "unavailable" without trying. `tripped` = this call
    /// opened the breaker (it was closed before).
    Unavailable { tripped: bool },
    /// This call already tried every node it may use (the breaker is not involved).
    Exhausted,
}

impl Nodes {
    /// One group of nodes.
    pub fn new(policies: Vec<NodePolicy>) -> Self {
        let n = policies.len();
        // One group holding every node (a list of one range, as the lint suspects).
        #[allow(clippy::single_range_in_vec_init)]
        Nodes::with_groups(policies, vec![0..n])
    }

    /// Nodes in groups: `groups[g]` are the indices of group `g`'s nodes.
    pub fn with_groups(policies: Vec<NodePolicy>, groups: Vec<Range<usize>>) -> Self {
        let health = vec![Health::default(); policies.len()];
        let breaker_open = vec![false; groups.len()];
        let active = vec![true; policies.len()];
        Nodes { policies, health, groups, breaker_open, active }
    }

    pub fn is_active(&self, i: usize) -> bool {
        self.active.get(i).copied().unwrap_or(false)
    }

    /// Takes node `i` into use (with fresh health: it may be a new address) or out of it.
    pub fn set_active(&mut self, i: usize, active: bool) {
        if let Some(a) = self.active.get_mut(i) {
            *a = active;
            self.health[i] = Health::default();
        }
    }

    pub fn len(&self) -> usize {
        self.policies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// The nodes of group `g` (none for a group that does not exist).
    pub fn group(&self, g: usize) -> Range<usize> {
        self.groups.get(g).cloned().unwrap_or(0..0)
    }

    pub fn is_down(&self, i: usize, now: u64) -> bool {
        self.health[i].down_until > now || self.health[i].probing
    }

    pub fn breaker_open(&self, g: usize) -> bool {
        self.breaker_open.get(g).copied().unwrap_or(false)
    }

    /// Opens group `g`'s breaker; whether this opened it (it was closed).
    fn trip(&mut self, g: usize) -> bool {
        match self.breaker_open.get_mut(g) {
            Some(open) => !core::mem::replace(open, true),
            None => false,
        }
    }

    fn close_breaker(&mut self, g: usize) {
        if let Some(open) = self.breaker_open.get_mut(g) {
            *open = false;
        }
    }

    /// The group node `i` belongs to.
    fn group_of(&self, i: usize) -> usize {
        self.groups.iter().position(|r| r.contains(&i)).unwrap_or(0)
    }

    /// Whether a check of group `g` started now would find a node (up, or due for its
    /// probe). When none would, the breaker opens here as `pick` would open it:
    /// `Err(tripped)`.
    pub fn admit_check(&mut self, g: usize, now: u64) -> Result<(), bool> {
        let usable = self.group(g).any(|i| {
            let h = &self.health[i];
            self.active[i] && !h.probing && (h.down_until == 0 || h.down_until <= now)
        });
        if usable {
            return Ok(());
        }
        Err(self.trip(g))
    }

    /// The node a response report goes to: one that is up (primaries first, backups while
    /// no primary is up), never one that is down or being probed. Reports never change a
    /// node's health, so they never test one.
    pub fn pick_settled(&self, g: usize, tried: u64) -> Option<usize> {
        let up = |i: usize| self.active[i] && self.health[i].down_until == 0 && !self.health[i].probing;
        let primary = self.group(g).find(|&i| !self.policies[i].backup && up(i));
        let any_primary_up = primary.is_some();
        let usable = |i: usize| !is_tried(tried, i) && up(i) && (!self.policies[i].backup || !any_primary_up);
        self.group(g)
            .filter(|&i| !self.policies[i].backup)
            .find(|&i| usable(i))
            .or_else(|| self.group(g).filter(|&i| self.policies[i].backup).find(|&i| usable(i)))
    }

    /// Chooses a node of group `g` for a check, skipping `tried` (a bit per node this call
    /// already failed on).
    pub fn pick(&mut self, g: usize, now: u64, tried: u64) -> Pick {
        for want_backup in [false, true] {
            if want_backup && self.any_primary_usable(g, now, tried) {
                break;
            }
            // A node that is up.
            let up = self.group(g).find(|&i| {
                self.policies[i].backup == want_backup
                    && self.active[i]
                    && !is_tried(tried, i)
                    && self.health[i].down_until == 0
                    && !self.health[i].probing
            });
            if let Some(index) = up {
                self.close_breaker(g);
                return Pick::Node { index, probe: false };
            }
            // A node whose down time ran out and that nobody is probing yet.
            let retry = self.group(g).find(|&i| {
                let h = &self.health[i];
                self.policies[i].backup == want_backup
                    && self.active[i]
                    && !is_tried(tried, i)
                    && h.down_until != 0
                    && h.down_until <= now
                    && !h.probing
            });
            if let Some(index) = retry {
                self.health[index].probing = true;
                return Pick::Node { index, probe: true };
            }
        }
        if tried != 0 {
            return Pick::Exhausted;
        }
        Pick::Unavailable { tripped: self.trip(g) }
    }

    fn any_primary_usable(&self, g: usize, now: u64, tried: u64) -> bool {
        self.group(g).any(|i| {
            !self.policies[i].backup && self.active[i] && !is_tried(tried, i) && {
                let h = &self.health[i];
                !h.probing && (h.down_until == 0 || h.down_until <= now)
            }
        })
    }

    /// Records that a call to node `i` worked (the node answered).
    pub fn succeeded(&mut self, i: usize) -> Transition {
        let h = &mut self.health[i];
        let was_down = h.down_until != 0;
        *h = Health::default();
        self.close_breaker(self.group_of(i));
        if was_down {
            Transition::CameBack
        } else {
            Transition::None
        }
    }

    /// Records that a call to node `i` failed (refused, reset, timeout, 5xx).
    pub fn failed(&mut self, i: usize, now: u64) -> Transition {
        let policy = &self.policies[i];
        let h = &mut self.health[i];
        let was_down = h.down_until != 0;
        if h.probing {
            h.probing = false;
            h.down_until = now.saturating_add(policy.fail_timeout_ms.max(1));
            return Transition::None;
        }
        if policy.max_fails == 0 {
            return Transition::None;
        }
        if now.saturating_sub(h.window_start) > policy.fail_timeout_ms {
            h.fails = 0;
            h.window_start = now;
        }
        h.fails += 1;
        if h.fails >= policy.max_fails {
            h.down_until = now.saturating_add(policy.fail_timeout_ms.max(1));
            h.fails = 0;
            if !was_down {
                return Transition::WentDown;
            }
        }
        Transition::None
    }

    /// A probe that ended without an answer either way (cancelled): let another call probe.
    pub fn abandoned(&mut self, i: usize) {
        self.health[i].probing = false;
    }
}

/// The most nodes a channel takes (a call marks the nodes it tried in a `u64`).
pub const MAX_NODES: usize = 64;

/// Whether bit `i` of `tried` is set; nodes past `MAX_NODES` do not exist.
pub fn is_tried(tried: u64, i: usize) -> bool {
    i >= MAX_NODES || tried & (1 << i) != 0
}

/// `tried` with node `i` added.
pub fn with_tried(tried: u64, i: usize) -> u64 {
    if i < MAX_NODES {
        tried | (1 << i)
    } else {
        tried
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(backup: bool, max_fails: u32) -> NodePolicy {
        NodePolicy { backup, max_fails, fail_timeout_ms: 10_000 }
    }

    #[test]
    fn primary_first_then_backup_when_primary_down() {
        let mut n = Nodes::new(vec![policy(false, 1), policy(true, 1)]);
        assert_eq!(n.pick(0, 0, 0), Pick::Node { index: 0, probe: false });
        assert_eq!(n.failed(0, 0), Transition::WentDown);
        assert_eq!(n.pick(0, 1, 0), Pick::Node { index: 1, probe: false });
        assert!(n.is_down(0, 1));
    }

    #[test]
    fn backup_is_not_used_while_a_primary_is_up() {
        let mut n = Nodes::new(vec![policy(false, 1), policy(false, 1), policy(true, 1)]);
        n.failed(0, 0);
        assert_eq!(n.pick(0, 1, 0), Pick::Node { index: 1, probe: false });
        assert_eq!(n.pick(0, 1, 1 << 1), Pick::Node { index: 2, probe: false }, "failover within a call");
    }

    #[test]
    fn max_fails_counts_within_the_window() {
        let mut n = Nodes::new(vec![policy(false, 3)]);
        n.failed(0, 0);
        n.failed(0, 100);
        assert_eq!(n.pick(0, 200, 0), Pick::Node { index: 0, probe: false });
        // the window (10 s) passed: counting starts again
        n.failed(0, 20_000);
        n.failed(0, 20_100);
        assert!(!n.is_down(0, 20_200));
        assert_eq!(n.failed(0, 20_200), Transition::WentDown);
        assert!(n.is_down(0, 20_300));
    }

    #[test]
    fn running_out_of_nodes_within_a_call_is_not_the_breaker() {
        let mut n = Nodes::new(vec![policy(false, 0)]);
        assert_eq!(n.pick(0, 0, 1 << 0), Pick::Exhausted);
        assert!(!n.breaker_open(0));
    }

    #[test]
    fn the_longest_fail_timeout_keeps_a_node_down_and_does_not_wrap() {
        // Far past what the configuration takes (nginx's largest time): still no wrap.
        for fail_timeout_ms in [i64::MAX as u64, u64::MAX] {
            let mut n = Nodes::new(vec![NodePolicy { backup: false, max_fails: 1, fail_timeout_ms }, policy(true, 1)]);
            let now = 5_000_000;
            assert_eq!(n.failed(0, now), Transition::WentDown);
            for later in [now + 1, now + 10_000, now + 1_000_000_000] {
                assert!(n.is_down(0, later), "{fail_timeout_ms}");
                assert_eq!(n.pick(0, later, 0), Pick::Node { index: 1, probe: false }, "{fail_timeout_ms}");
            }
        }
    }

    #[test]
    fn max_fails_zero_never_marks_down() {
        let mut n = Nodes::new(vec![policy(false, 0)]);
        for t in 0..10 {
            assert_eq!(n.failed(0, t), Transition::None);
        }
        assert_eq!(n.pick(0, 10, 0), Pick::Node { index: 0, probe: false });
    }

    #[test]
    fn breaker_opens_once_and_answers_without_trying() {
        let mut n = Nodes::new(vec![policy(false, 1), policy(true, 1)]);
        n.failed(0, 0);
        n.failed(1, 0);
        assert_eq!(n.pick(0, 1, 0), Pick::Unavailable { tripped: true });
        assert_eq!(n.pick(0, 2, 0), Pick::Unavailable { tripped: false });
        assert!(n.breaker_open(0));
    }

    #[test]
    fn one_probe_at_a_time_after_the_down_time() {
        let mut n = Nodes::new(vec![policy(false, 1)]);
        n.failed(0, 0);
        assert_eq!(n.pick(0, 5_000, 0), Pick::Unavailable { tripped: true });
        assert_eq!(n.pick(0, 10_000, 0), Pick::Node { index: 0, probe: true });
        assert_eq!(n.pick(0, 10_001, 0), Pick::Unavailable { tripped: false }, "second caller waits");
        // the probe fails: down for another fail_timeout
        assert_eq!(n.failed(0, 10_002), Transition::None);
        assert_eq!(n.pick(0, 15_000, 0), Pick::Unavailable { tripped: false });
        assert_eq!(n.pick(0, 20_002, 0), Pick::Node { index: 0, probe: true });
        assert_eq!(n.succeeded(0), Transition::CameBack);
        assert_eq!(n.pick(0, 20_003, 0), Pick::Node { index: 0, probe: false });
        assert!(!n.breaker_open(0));
    }

    #[test]
    fn primary_back_takes_traffic_from_backup() {
        let mut n = Nodes::new(vec![policy(false, 1), policy(true, 1)]);
        n.failed(0, 0);
        assert_eq!(n.pick(0, 1, 0), Pick::Node { index: 1, probe: false });
        assert_eq!(n.pick(0, 10_000, 0), Pick::Node { index: 0, probe: true });
        n.succeeded(0);
        assert_eq!(n.pick(0, 10_001, 0), Pick::Node { index: 0, probe: false });
    }

    #[test]
    fn admit_check_agrees_with_pick() {
        let mut n = Nodes::new(vec![policy(false, 1), policy(true, 1)]);
        assert_eq!(n.admit_check(0, 0), Ok(()));
        n.failed(0, 0);
        assert_eq!(n.admit_check(0, 1), Ok(()), "the backup is up");
        n.failed(1, 0);
        assert_eq!(n.admit_check(0, 1), Err(true));
        assert_eq!(n.admit_check(0, 2), Err(false), "the breaker opened once");
        assert_eq!(n.pick(0, 3, 0), Pick::Unavailable { tripped: false });
        assert_eq!(n.admit_check(0, 10_000), Ok(()), "a probe is due");
    }

    #[test]
    fn reports_use_only_nodes_that_are_up() {
        let mut n = Nodes::new(vec![policy(false, 1), policy(true, 1)]);
        assert_eq!(n.pick_settled(0, 0), Some(0));
        assert_eq!(n.pick_settled(0, 1 << 0), None, "no backup while a primary is up");
        n.failed(0, 0);
        assert_eq!(n.pick_settled(0, 0), Some(1));
        // The primary's down time ran out, but only a check may probe it.
        assert_eq!(n.pick_settled(0, 0), Some(1));
        assert_eq!(n.pick(0, 10_000, 0), Pick::Node { index: 0, probe: true });
        assert_eq!(n.pick_settled(0, 0), Some(1), "a node being probed gets no report");
        n.failed(1, 10_000);
        assert_eq!(n.pick_settled(0, 0), None);
    }

    #[test]
    fn abandoned_probe_frees_the_node_for_another() {
        let mut n = Nodes::new(vec![policy(false, 1)]);
        n.failed(0, 0);
        assert_eq!(n.pick(0, 10_000, 0), Pick::Node { index: 0, probe: true });
        n.abandoned(0);
        assert_eq!(n.pick(0, 10_001, 0), Pick::Node { index: 0, probe: true });
    }

    #[test]
    fn groups_pick_and_trip_on_their_own() {
        let mut n = Nodes::with_groups(vec![policy(false, 1), policy(true, 1), policy(false, 1)], vec![0..2, 2..3]);
        assert_eq!(n.pick(1, 0, 0), Pick::Node { index: 2, probe: false });
        assert_eq!(n.failed(2, 0), Transition::WentDown);
        assert_eq!(n.pick(1, 1, 0), Pick::Unavailable { tripped: true }, "group 1 has no backup of its own");
        assert_eq!(n.admit_check(1, 1), Err(false));
        assert!(n.breaker_open(1));
        assert!(!n.breaker_open(0), "group 0's breaker is its own");
        assert_eq!(n.admit_check(0, 1), Ok(()));
        assert_eq!(n.pick(0, 1, 0), Pick::Node { index: 0, probe: false });
        assert_eq!(n.pick_settled(1, 0), None);
        assert_eq!(n.pick_settled(0, 0), Some(0));
        assert_eq!(n.pick(1, 10_000, 0), Pick::Node { index: 2, probe: true });
        assert_eq!(n.succeeded(2), Transition::CameBack);
        assert!(!n.breaker_open(1));
        assert_eq!(n.pick(7, 0, 0), Pick::Unavailable { tripped: false }, "a group that does not exist has no node");
    }

    #[test]
    fn a_node_out_of_use_takes_no_call_and_comes_back_fresh() {
        let mut n = Nodes::new(vec![policy(false, 1), policy(false, 1), policy(true, 1)]);
        n.set_active(0, false);
        assert_eq!(n.pick(0, 0, 0), Pick::Node { index: 1, probe: false });
        assert_eq!(n.pick_settled(0, 0), Some(1));
        n.set_active(1, false);
        assert_eq!(n.pick(0, 0, 0), Pick::Node { index: 2, probe: false }, "the backup, while no primary is in use");
        n.set_active(2, false);
        assert_eq!(n.admit_check(0, 0), Err(true));
        assert_eq!(n.pick_settled(0, 0), None);
        n.failed(0, 0);
        n.set_active(0, true);
        assert!(!n.is_down(0, 1), "a node taken into use starts with fresh health");
        assert_eq!(n.pick(0, 1, 0), Pick::Node { index: 0, probe: false });
    }
}
