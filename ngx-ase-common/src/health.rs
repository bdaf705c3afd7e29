//! Which ASE node a call goes to: the primaries share the calls by nginx's smooth weighted
//! round robin (`weight=N`), by `least_conn`, or by the call's key (`hash KEY [consistent]`,
//! its arithmetic in `key_hash.rs`); backups only while every primary is down, failover to
//! the next node within a call, `max_fails`/`fail_timeout` as nginx upstreams define them, and a circuit breaker
//! that lets one probe at a time test a node whose down time has passed. Safe Rust; time is
//! passed in (milliseconds) so the tests drive it.
//!
//! While every node of a group is down, nginx would be blind for a whole `fail_timeout`
//! (anyone who can provoke one slow answer buys that long). So a group with no node up
//! probes early: the node that failed first gets its probe `QUICK_PROBE_FIRST_MS` after its
//! last failure, doubling with each failed probe up to `QUICK_PROBE_MAX_MS` (nginx's round
//! robin likewise forgets failures once every peer has failed). The time a group's breaker
//! is open is its *blind time*, counted for the status page.
//!
//! Nodes belong to groups (the http-level `ase_server` lines are group 0, each
//! `ase_upstream` block one more): a call picks only within its group, and each group has
//! its own breaker, so one group's ASE being down never touches another group's calls.

use core::ops::Range;

use ngx_ase_shared::abi::AseError;

use crate::key_hash::{self, Ring, HASH_TRIES};

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
    /// When the node last failed a call (for the early probe while its group is all down).
    last_failure: u64,
    /// Probes that failed in a row since the node went down (the early probe backs off).
    failed_probes: u32,
}

/// While every node of a group is down, the first early probe follows the last failure by
/// this much; each failed probe doubles it, up to `QUICK_PROBE_MAX_MS`, so that enforcement
/// is back within a second of the ASE's recovery.
pub const QUICK_PROBE_FIRST_MS: u64 = 250;
pub const QUICK_PROBE_MAX_MS: u64 = 1000;

impl Health {
    /// When this down node may be probed early, its group having no node up.
    fn early_probe_at(&self, fail_timeout_ms: u64) -> u64 {
        let delay = QUICK_PROBE_FIRST_MS.saturating_mul(1 << self.failed_probes.min(16));
        self.last_failure.saturating_add(delay.min(QUICK_PROBE_MAX_MS).min(fail_timeout_ms.max(1)))
    }
}

#[derive(Clone, Debug)]
pub struct NodePolicy {
    pub backup: bool,
    pub max_fails: u32,
    pub fail_timeout_ms: u64,
    /// Its share of the calls among the nodes of its role (`weight=N`, at least 1).
    pub weight: u32,
    /// The most calls in flight to it at once (`max_conns=N`; 0: no limit).
    pub max_conns: u32,
}

/// How a group shares its calls among the nodes of one role.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Balance {
    /// nginx's smooth weighted round robin (the default).
    #[default]
    RoundRobin,
    /// `least_conn`: the node with the fewest calls in flight for its weight; ties go round.
    LeastConn,
    /// `hash KEY [consistent]`: a call with a key goes to the node its key hashes to
    /// (`key_hash.rs`), another node when that one cannot take it; a call without a key
    /// (its value was empty) goes round robin, as in nginx.
    Hash { consistent: bool },
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
    /// Per group: since when its blind time has not been counted (while the breaker is
    /// open), and how much has been counted but not yet taken (`take_blind_ms`).
    blind_since: Vec<Option<u64>>,
    blind_untaken: Vec<u64>,
    /// Whether a node is in use: a `resolve` server's slot without an address (or whose
    /// address vanished from the DNS) takes no call.
    active: Vec<bool>,
    /// Per node: the smooth weighted round robin's current weight.
    current_weight: Vec<i64>,
    /// Per node: calls in flight to it (`max_conns`, `least_conn`).
    in_flight: Vec<u32>,
    /// Per group: how its calls are shared.
    balance: Vec<Balance>,
    /// Per group: its consistent-hash ring (empty unless `hash ... consistent`).
    rings: Vec<Ring>,
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
    /// Nodes are up, but every one has its `max_conns` calls in flight: the call is not
    /// made (the breaker is not involved).
    Busy,
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
        let (blind_since, blind_untaken) = (vec![None; groups.len()], vec![0; groups.len()]);
        let active = vec![true; policies.len()];
        let (current_weight, in_flight) = (vec![0; policies.len()], vec![0; policies.len()]);
        let balance = vec![Balance::RoundRobin; groups.len()];
        let rings = groups.iter().map(|_| Ring::default()).collect();
        Nodes {
            policies,
            health,
            groups,
            breaker_open,
            blind_since,
            blind_untaken,
            active,
            current_weight,
            in_flight,
            balance,
            rings,
        }
    }

    /// How group `g` shares its calls; `names` (every node's, by index) place its nodes on
    /// the ring of `hash ... consistent`, so a node keeps its keys whatever its index.
    pub fn set_balance(&mut self, g: usize, balance: Balance, names: &[String]) {
        let Some(b) = self.balance.get_mut(g) else { return };
        *b = balance;
        if balance == (Balance::Hash { consistent: true }) {
            let primaries = self.group(g).filter(|&i| !self.policies[i].backup);
            let named = primaries.map(|i| (i, names.get(i).map_or("", String::as_str), self.policies[i].weight));
            self.rings[g] = Ring::new(named);
        }
    }

    /// A call went to node `i` (until `left`): counted for `max_conns` and `least_conn`.
    pub fn entered(&mut self, i: usize) {
        if let Some(n) = self.in_flight.get_mut(i) {
            *n = n.saturating_add(1);
        }
    }

    /// A call that `entered` node `i` is over there.
    pub fn left(&mut self, i: usize) {
        if let Some(n) = self.in_flight.get_mut(i) {
            *n = n.saturating_sub(1);
        }
    }

    /// Whether node `i` may take one more call (`max_conns`).
    fn has_room(&self, i: usize) -> bool {
        let max = self.policies[i].max_conns;
        max == 0 || self.in_flight[i] < max
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
    fn trip(&mut self, g: usize, now: u64) -> bool {
        let opened = match self.breaker_open.get_mut(g) {
            Some(open) => !core::mem::replace(open, true),
            None => false,
        };
        if opened {
            self.blind_since[g] = Some(now);
        }
        opened
    }

    fn close_breaker(&mut self, g: usize, now: u64) {
        if let Some(open) = self.breaker_open.get_mut(g) {
            *open = false;
        }
        if let Some(since) = self.blind_since.get_mut(g).and_then(Option::take) {
            self.blind_untaken[g] = self.blind_untaken[g].saturating_add(now.saturating_sub(since));
        }
    }

    /// Group `g`'s blind time (milliseconds with its breaker open) not taken before, up to
    /// `now`: the caller adds it to the status page's counter.
    pub fn take_blind_ms(&mut self, g: usize, now: u64) -> u64 {
        let Some(untaken) = self.blind_untaken.get_mut(g) else { return 0 };
        let mut ms = core::mem::take(untaken);
        if let Some(since) = self.blind_since[g].as_mut() {
            ms = ms.saturating_add(now.saturating_sub(*since));
            *since = now.max(*since);
        }
        ms
    }

    /// Whether a node of group `g` other than `i` is up (a probe of `i` may then be cut
    /// short: the call has somewhere else to go).
    pub fn another_up(&self, g: usize, i: usize) -> bool {
        self.group(g).any(|j| j != i && self.is_up(j))
    }

    /// Whether node `i` takes calls now: in use, not marked down, not being probed.
    fn is_up(&self, i: usize) -> bool {
        self.active[i] && self.health[i].down_until == 0 && !self.health[i].probing
    }

    /// Whether no node of group `g` is up or being probed: its down nodes may be probed
    /// early (see the module comment).
    fn all_down(&self, g: usize) -> bool {
        !self.group(g).any(|i| self.active[i] && (self.health[i].down_until == 0 || self.health[i].probing))
    }

    /// Whether down node `i` may be probed now: its down time ran out, or its group has no
    /// node up and its early probe is due.
    fn probe_due(&self, i: usize, now: u64, all_down: bool) -> bool {
        let h = &self.health[i];
        self.active[i]
            && h.down_until != 0
            && !h.probing
            && (h.down_until <= now || (all_down && h.early_probe_at(self.policies[i].fail_timeout_ms) <= now))
    }

    /// The group node `i` belongs to.
    fn group_of(&self, i: usize) -> usize {
        self.groups.iter().position(|r| r.contains(&i)).unwrap_or(0)
    }

    /// Whether a check of group `g` started now would find a node (up, or due for its
    /// probe). When none would, the breaker opens here as `pick` would open it:
    /// `Err(tripped)`.
    pub fn admit_check(&mut self, g: usize, now: u64) -> Result<(), bool> {
        let all_down = self.all_down(g);
        let usable = self.group(g).any(|i| self.is_up(i) || self.probe_due(i, now, all_down));
        if usable {
            return Ok(());
        }
        Err(self.trip(g, now))
    }

    /// Whether group `g` has a node a response report may go to.
    pub fn has_settled(&self, g: usize) -> bool {
        self.settled_candidates(g, 0) != 0
    }

    /// The node a response report goes to: one that is up (the primaries in turn, backups
    /// while no primary is up), never one that is down or being probed. Reports never
    /// change a node's health, so they never test one.
    /// With `key` (a hashing group), the node its check went to while that one is up.
    pub fn pick_settled(&mut self, g: usize, tried: u64, key: Option<u32>) -> Option<usize> {
        let candidates = self.settled_candidates(g, tried);
        self.choose(g, candidates, key)
    }

    /// One of `candidates` (a bit per node) by group `g`'s balancing, skipping nodes at
    /// their `max_conns`; `key` is the call's hash key (used only by `hash`).
    fn choose(&mut self, g: usize, candidates: u64, key: Option<u32>) -> Option<usize> {
        let with_room = self.members(candidates).filter(|&i| self.has_room(i)).fold(0, with_tried);
        match self.balance.get(g).copied().unwrap_or_default() {
            Balance::RoundRobin => self.round_robin(with_room),
            Balance::Hash { .. } => match key {
                Some(key) => self.by_key(g, with_room, key).or_else(|| self.round_robin(with_room)),
                None => self.round_robin(with_room),
            },
            Balance::LeastConn => {
                // Fewest in flight for the weight (a/wa < b/wb as a*wb < b*wa), ties in turn.
                let load = |i: usize| (u64::from(self.in_flight[i]), u64::from(self.policies[i].weight.max(1)));
                let best = self.members(with_room).min_by(|&a, &b| {
                    let ((ca, wa), (cb, wb)) = (load(a), load(b));
                    (ca * wb).cmp(&(cb * wa))
                })?;
                let (cb, wb) = load(best);
                let ties = self.members(with_room).filter(|&i| load(i).0 * wb == cb * load(i).1).fold(0, with_tried);
                self.round_robin(ties)
            }
        }
    }

    /// The node of `candidates` that `key` hashes to in group `g`: on its ring (walked on
    /// past nodes that cannot take the call), or by weight over the group's nodes of the
    /// candidates' role, rehashed up to `HASH_TRIES` times while the node it falls on is not
    /// a candidate (down, full, already tried). `None`: the caller goes round robin.
    fn by_key(&self, g: usize, candidates: u64, key: u32) -> Option<usize> {
        let backup = self.policies[self.members(candidates).next()?].backup;
        let ring = self.rings.get(g).filter(|r| !r.is_empty());
        if let Some(ring) = ring {
            return ring.walk(key).find(|&i| is_tried(candidates, i) && i < MAX_NODES);
        }
        let role = self.group(g).filter(|&i| self.policies[i].backup == backup).map(|i| (i, self.policies[i].weight));
        (0..HASH_TRIES)
            .filter_map(|n| key_hash::weighted(key_hash::rehash(key, n), role.clone()))
            .find(|&i| is_tried(candidates, i) && i < MAX_NODES)
    }

    /// The nodes in `set` (a bit per node).
    fn members(&self, set: u64) -> impl Iterator<Item = usize> + use<> {
        (0..self.policies.len().min(MAX_NODES)).filter(move |&i| is_tried(set, i))
    }

    /// The nodes `pick_settled` chooses among, as a bit per node.
    fn settled_candidates(&self, g: usize, tried: u64) -> u64 {
        let any_primary_up = self.group(g).any(|i| !self.policies[i].backup && self.is_up(i));
        let want_backup = !any_primary_up;
        self.group(g)
            .filter(|&i| self.policies[i].backup == want_backup && !is_tried(tried, i) && self.is_up(i))
            .fold(0, with_tried)
    }

    /// nginx's smooth weighted round robin among `candidates` (a bit per node): each gains
    /// its weight, the one furthest ahead is chosen and pays back the total, so calls are
    /// spread in proportion to the weights and evenly interleaved.
    fn round_robin(&mut self, candidates: u64) -> Option<usize> {
        let mut total: i64 = 0;
        let mut best: Option<usize> = None;
        for i in (0..self.policies.len().min(MAX_NODES)).filter(|&i| is_tried(candidates, i)) {
            let w = i64::from(self.policies[i].weight.max(1));
            self.current_weight[i] = self.current_weight[i].saturating_add(w);
            total = total.saturating_add(w);
            if best.is_none_or(|b| self.current_weight[i] > self.current_weight[b]) {
                best = Some(i);
            }
        }
        let b = best?;
        self.current_weight[b] = self.current_weight[b].saturating_sub(total);
        Some(b)
    }

    /// Chooses a node of group `g` for a check, skipping `tried` (a bit per node this call
    /// already failed on); `key` is its hash key when the group hashes.
    pub fn pick(&mut self, g: usize, now: u64, tried: u64, key: Option<u32>) -> Pick {
        let all_down = self.all_down(g);
        for want_backup in [false, true] {
            if want_backup && self.any_primary_usable(g, now, tried, all_down) {
                break;
            }
            // A node that is up, in turn.
            let up = self
                .group(g)
                .filter(|&i| self.policies[i].backup == want_backup && !is_tried(tried, i) && self.is_up(i))
                .fold(0, with_tried);
            if let Some(index) = self.choose(g, up, key) {
                self.close_breaker(g, now);
                return Pick::Node { index, probe: false };
            }
            // A node due for its probe that nobody is probing yet.
            let retry = self.group(g).find(|&i| {
                self.policies[i].backup == want_backup && !is_tried(tried, i) && self.probe_due(i, now, all_down)
            });
            if let Some(index) = retry {
                self.health[index].probing = true;
                return Pick::Node { index, probe: true };
            }
        }
        if tried != 0 {
            return Pick::Exhausted;
        }
        if self.group(g).any(|i| self.is_up(i) && !self.has_room(i)) {
            return Pick::Busy;
        }
        Pick::Unavailable { tripped: self.trip(g, now) }
    }

    /// `all_down` as `pick` found it for the group.
    fn any_primary_usable(&self, g: usize, now: u64, tried: u64, all_down: bool) -> bool {
        self.group(g).any(|i| {
            !self.policies[i].backup && !is_tried(tried, i) && (self.is_up(i) || self.probe_due(i, now, all_down))
        })
    }

    /// Records that a call to node `i` worked (the node answered).
    pub fn succeeded(&mut self, i: usize, now: u64) -> Transition {
        let h = &mut self.health[i];
        let was_down = h.down_until != 0;
        *h = Health::default();
        self.close_breaker(self.group_of(i), now);
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
        h.last_failure = now;
        if h.probing {
            h.probing = false;
            h.failed_probes = h.failed_probes.saturating_add(1);
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
        h.fails = h.fails.saturating_add(1);
        if h.fails >= policy.max_fails {
            h.down_until = now.saturating_add(policy.fail_timeout_ms.max(1));
            h.failed_probes = 0;
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

/// What ended one attempt of a call without an answer it can use: kept whole, so the one
/// failover rule (`judge`) sees everything that decides whose fault it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    pub error: AseError,
    /// The system's error number, where there is one (a failed connect).
    pub errno: Option<i32>,
    /// The attempt was on a reused idle connection and no byte of answer came: the peer may
    /// never have seen the request.
    pub unanswered_reuse: bool,
    pub cause: Cause,
}

/// Where in an attempt the failure came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// Connecting failed (refused, unreachable, TLS; or nginx had no connection to give).
    Connect,
    /// The node did not accept within `ase_connect_timeout`.
    ConnectTimeout,
    /// The exchange broke: a write or read failed, the stream ended early, a bad answer.
    Exchange,
    /// The node answered, with an error of its own (a 503 that is not the ASE's).
    Answer,
    /// No answer byte within the first-byte bound of a reused idle connection.
    FirstByte,
    /// A probe of a down node got no answer within its bound while another node is up.
    ProbeBound,
    /// The call's `ase_timeout` ran out; `whole_time`: this attempt had all of it.
    Deadline { whole_time: bool },
    /// A panic inside the channel while handling the call.
    Panic,
    /// The caller gave the call up (its request is over).
    Cancelled,
}

/// Who a failure is charged to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blame {
    /// The node: it counts towards `max_fails` (checks only; reports never change health).
    Node,
    /// Nobody the breaker should hear of.
    Nobody(Excuse),
    /// The caller, who went away: nothing is counted or answered.
    Client,
}

/// Why a failure is charged to no node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Excuse {
    /// nginx could not open a connection (worker_connections, descriptors, ports).
    LocalShortage,
    /// A reused idle connection stayed silent: a middlebox most likely forgot the flow.
    SilentReuse,
    /// A reused idle connection had been closed by the ASE before the request.
    ClosedReuse,
    /// The call's time ran out after earlier attempts had used part of it.
    OutOfTime,
    /// The channel's own bug (a panic).
    Internal,
}

/// What the call does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Once more to the same node, on a new connection.
    RetryFresh,
    /// On to another node (within the call's deadline), or the end when there is none.
    MoveOn,
    /// The call ends with the failure's error.
    Finish,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub blame: Blame,
    pub next: Next,
}

/// The failover rule (nginx's `ngx_http_upstream_next` decides the same things): a node is
/// charged only for what it did; what was ours, or the middle's, or the caller's, is not.
pub fn judge(f: &Failure) -> Verdict {
    let (blame, next) = match f.cause {
        Cause::Cancelled => (Blame::Client, Next::Finish),
        Cause::Panic => (Blame::Nobody(Excuse::Internal), Next::Finish),
        Cause::Deadline { whole_time: true } => (Blame::Node, Next::Finish),
        Cause::Deadline { whole_time: false } => (Blame::Nobody(Excuse::OutOfTime), Next::Finish),
        // The shortage is ours, for every node alike: no other node is tried.
        _ if f.error == AseError::Local => (Blame::Nobody(Excuse::LocalShortage), Next::Finish),
        // A fresh connection is not `reused`, so each of these happens once per attempt.
        Cause::FirstByte if f.unanswered_reuse => (Blame::Nobody(Excuse::SilentReuse), Next::RetryFresh),
        Cause::Exchange if f.unanswered_reuse && f.error == AseError::Reset => {
            (Blame::Nobody(Excuse::ClosedReuse), Next::RetryFresh)
        }
        _ => (Blame::Node, Next::MoveOn),
    };
    Verdict { blame, next }
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

    fn failure(error: AseError, cause: Cause, unanswered_reuse: bool) -> Failure {
        Failure { error, errno: None, unanswered_reuse, cause }
    }

    fn verdict(blame: Blame, next: Next) -> Verdict {
        Verdict { blame, next }
    }

    /// What a node did is charged to it, and the call moves on to another node.
    #[test]
    fn what_the_node_did_is_charged_and_the_call_moves_on() {
        let cases = [
            (AseError::Refused, Cause::Connect),
            (AseError::Unreachable, Cause::Connect),
            (AseError::Tls, Cause::Connect),
            (AseError::Timeout, Cause::ConnectTimeout),
            (AseError::Reset, Cause::Exchange),
            (AseError::BadAnswer, Cause::Exchange),
            (AseError::Bad503, Cause::Answer),
            (AseError::Timeout, Cause::ProbeBound),
        ];
        for (error, cause) in cases {
            assert_eq!(judge(&failure(error, cause, false)), verdict(Blame::Node, Next::MoveOn), "{error:?} {cause:?}");
        }
        // A bad answer on a reused connection was an answer all the same.
        let bad = failure(AseError::BadAnswer, Cause::Exchange, true);
        assert_eq!(judge(&bad), verdict(Blame::Node, Next::MoveOn));
        // A probe cut short is the probed node's failure, reused connection or not.
        let probe = failure(AseError::Timeout, Cause::ProbeBound, true);
        assert_eq!(judge(&probe), verdict(Blame::Node, Next::MoveOn));
    }

    /// nginx's own shortage is nobody's fault and tries no other node: it is ours for all.
    #[test]
    fn a_local_shortage_charges_nobody_and_ends_the_call() {
        let f = Failure { errno: Some(libc::EMFILE), ..failure(AseError::Local, Cause::Connect, false) };
        assert_eq!(judge(&f), verdict(Blame::Nobody(Excuse::LocalShortage), Next::Finish));
    }

    /// A reused idle connection that never answered is retried on a fresh one, uncharged:
    /// the node may never have seen the request.
    #[test]
    fn a_dead_reused_connection_is_retried_fresh_uncharged() {
        let silent = failure(AseError::Timeout, Cause::FirstByte, true);
        assert_eq!(judge(&silent), verdict(Blame::Nobody(Excuse::SilentReuse), Next::RetryFresh));
        let closed = failure(AseError::Reset, Cause::Exchange, true);
        assert_eq!(judge(&closed), verdict(Blame::Nobody(Excuse::ClosedReuse), Next::RetryFresh));
        // On a fresh connection the same reset is the node's.
        let fresh = failure(AseError::Reset, Cause::Exchange, false);
        assert_eq!(judge(&fresh), verdict(Blame::Node, Next::MoveOn));
    }

    /// The deadline ends the call; the node is charged only if it had the whole time.
    #[test]
    fn the_deadline_charges_the_node_only_for_its_whole_time() {
        let whole = failure(AseError::Timeout, Cause::Deadline { whole_time: true }, false);
        assert_eq!(judge(&whole), verdict(Blame::Node, Next::Finish));
        let part = failure(AseError::Timeout, Cause::Deadline { whole_time: false }, true);
        assert_eq!(judge(&part), verdict(Blame::Nobody(Excuse::OutOfTime), Next::Finish));
    }

    /// A panic is our bug and a cancel the caller's doing: no node hears of either.
    #[test]
    fn panics_and_cancels_charge_no_node() {
        let panic = failure(AseError::Internal, Cause::Panic, false);
        assert_eq!(judge(&panic), verdict(Blame::Nobody(Excuse::Internal), Next::Finish));
        let cancel = failure(AseError::None, Cause::Cancelled, true);
        assert_eq!(judge(&cancel), verdict(Blame::Client, Next::Finish));
    }

    fn policy(backup: bool, max_fails: u32) -> NodePolicy {
        NodePolicy { backup, max_fails, fail_timeout_ms: 10_000, weight: 1, max_conns: 0 }
    }

    fn weighted(backup: bool, weight: u32) -> NodePolicy {
        NodePolicy { weight, ..policy(backup, 1) }
    }

    fn picks(n: &mut Nodes, count: usize) -> Vec<usize> {
        (0..count)
            .map(|_| match n.pick(0, 1, 0, None) {
                Pick::Node { index, .. } => index,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    /// The primaries take turns (nginx's round robin), never a backup while one is up.
    #[test]
    fn primaries_take_turns() {
        let mut n = Nodes::new(vec![policy(false, 1), policy(false, 1), policy(false, 1), policy(true, 1)]);
        assert_eq!(picks(&mut n, 6), [0, 1, 2, 0, 1, 2]);
        n.failed(1, 1);
        assert_eq!(picks(&mut n, 4), [0, 2, 0, 2], "the others share a down node's calls");
        n.failed(0, 1);
        n.failed(2, 1);
        assert_eq!(picks(&mut n, 2), [3, 3], "the backup only once every primary is down");
    }

    /// `weight=N`: shares in proportion, interleaved as nginx's smooth round robin does.
    #[test]
    fn weights_share_in_proportion_and_interleave() {
        let mut n = Nodes::new(vec![weighted(false, 5), weighted(false, 1), weighted(false, 1)]);
        assert_eq!(picks(&mut n, 7), [0, 0, 1, 0, 2, 0, 0], "nginx's sequence for 5, 1, 1");
        let mut n = Nodes::new(vec![weighted(false, 3), weighted(false, 1)]);
        let p = picks(&mut n, 400);
        assert_eq!((p.iter().filter(|&&i| i == 0).count(), p.iter().filter(|&&i| i == 1).count()), (300, 100));
    }

    /// `max_conns=N`: a node with N calls in flight takes no more; when every node that is
    /// up is full, the call is not made (`Busy`) and the breaker stays closed.
    #[test]
    fn max_conns_caps_the_calls_in_flight() {
        let mut n = Nodes::new(vec![NodePolicy { max_conns: 1, ..policy(false, 1) }, policy(false, 1)]);
        assert_eq!(n.pick(0, 0, 0, None), Pick::Node { index: 0, probe: false });
        n.entered(0);
        assert_eq!(picks(&mut n, 3), [1, 1, 1], "node 0 is full");
        n.left(0);
        assert!(picks(&mut n, 2).contains(&0), "room again");
        let mut n = Nodes::new(vec![NodePolicy { max_conns: 2, ..policy(false, 1) }]);
        n.entered(0);
        n.entered(0);
        assert_eq!(n.pick(0, 0, 0, None), Pick::Busy);
        assert!(!n.breaker_open(0));
    }

    /// `least_conn`: the node with the fewest calls in flight (for its weight) takes the
    /// call; ties take turns.
    #[test]
    fn least_conn_prefers_the_node_with_the_fewest_calls() {
        let mut n = Nodes::new(vec![policy(false, 1), policy(false, 1), weighted(false, 2)]);
        n.set_balance(0, Balance::LeastConn, &[]);
        assert_eq!(picks(&mut n, 3), [2, 0, 1], "all idle: in turn (weight 2 first)");
        n.entered(0);
        n.entered(0);
        n.entered(1);
        // In flight 2, 1, 0: node 2.
        assert_eq!(n.pick(0, 0, 0, None), Pick::Node { index: 2, probe: false });
        n.entered(2);
        n.entered(2);
        // 2/1, 1/1, 2/2: nodes 1 and 2 tie at one call per weight; node 0 never.
        let p = picks(&mut n, 4);
        assert!(p.iter().all(|&i| i != 0) && p.contains(&1) && p.contains(&2), "{p:?}");
    }

    fn hashing(consistent: bool, count: usize) -> Nodes {
        let mut n = Nodes::new((0..count).map(|_| policy(false, 1)).collect());
        let names: Vec<String> = (0..count).map(|i| format!("http://127.0.0.1:{}", 9000 + i)).collect();
        n.set_balance(0, Balance::Hash { consistent }, &names);
        n
    }

    fn keyed(n: &mut Nodes, key: u32, tried: u64) -> usize {
        match n.pick(0, 1, tried, Some(key)) {
            Pick::Node { index, .. } => index,
            other => panic!("{other:?}"),
        }
    }

    /// `hash`: a key always meets its node, checks and reports alike; keys spread over
    /// the nodes; a call without a key goes round robin.
    #[test]
    fn a_key_meets_one_node_and_keys_spread() {
        for consistent in [false, true] {
            let mut n = hashing(consistent, 3);
            let mut used = [0; 3];
            for k in 0..300 {
                let key = crate::key_hash::crc32(format!("client-{k}").as_bytes());
                let home = keyed(&mut n, key, 0);
                used[home] += 1;
                assert!((0..5).all(|_| keyed(&mut n, key, 0) == home), "consistent={consistent}");
                assert_eq!(n.pick_settled(0, 0, Some(key)), Some(home), "its report goes there too");
            }
            assert!(used.iter().all(|&u| u > 50), "consistent={consistent}: {used:?}");
            assert_eq!(picks(&mut n, 3).len(), 3);
            let mut n = hashing(consistent, 3);
            assert_eq!(picks(&mut n, 6), [0, 1, 2, 0, 1, 2], "no key: round robin");
        }
    }

    /// A key whose node is down, full or already tried goes to another node, the same one
    /// each time while that lasts; keys of the other nodes do not move.
    #[test]
    fn a_key_whose_node_cannot_take_the_call_goes_to_another() {
        for consistent in [false, true] {
            let mut n = hashing(consistent, 3);
            let keys: Vec<u32> = (0..200).map(|k| crate::key_hash::crc32(format!("c{k}").as_bytes())).collect();
            let homes: Vec<usize> = keys.iter().map(|&k| keyed(&mut n, k, 0)).collect();
            let (k0, h0) = (keys[0], homes[0]);
            assert_ne!(keyed(&mut n, k0, with_tried(0, h0)), h0, "failover within a call");
            n.failed(h0, 1);
            let moved: Vec<usize> = keys.iter().map(|&k| keyed(&mut n, k, 0)).collect();
            for (i, (&before, &after)) in homes.iter().zip(&moved).enumerate() {
                assert_ne!(after, h0, "key {i} went to a down node");
                if before != h0 {
                    assert_eq!(after, before, "consistent={consistent}: key {i} moved off a node that is up");
                }
            }
            let again: Vec<usize> = keys.iter().map(|&k| keyed(&mut n, k, 0)).collect();
            assert_eq!(again, moved, "a moved key keeps its new node");
            n.succeeded(h0, 2);
            let mut full = hashing(consistent, 3);
            full.policies[h0].max_conns = 1;
            full.entered(h0);
            assert_ne!(keyed(&mut full, k0, 0), h0, "its node is at max_conns");
        }
    }

    /// Plain `hash` shares the keys by weight.
    #[test]
    fn plain_hash_follows_the_weights() {
        let mut n = Nodes::new(vec![weighted(false, 3), weighted(false, 1)]);
        n.set_balance(0, Balance::Hash { consistent: false }, &[]);
        let on_first = (0..4000).filter(|k| keyed(&mut n, crate::key_hash::crc32(format!("{k}").as_bytes()), 0) == 0);
        assert!(on_first.count().abs_diff(3000) < 200);
    }

    /// Failover within a call skips the nodes it tried, whoever's turn it is.
    #[test]
    fn failover_within_a_call_skips_what_it_tried() {
        let mut n = Nodes::new(vec![policy(false, 1), policy(false, 1)]);
        assert_eq!(n.pick(0, 0, 1 << 0, None), Pick::Node { index: 1, probe: false });
        assert_eq!(n.pick(0, 0, 1 << 1, None), Pick::Node { index: 0, probe: false });
        assert_eq!(n.pick(0, 0, 0b11, None), Pick::Exhausted);
    }

    /// Reports take turns over the nodes that are up as well.
    #[test]
    fn reports_take_turns_over_nodes_that_are_up() {
        let mut n = Nodes::new(vec![policy(false, 1), policy(false, 1), policy(true, 1)]);
        let r: Vec<_> = (0..4).map(|_| n.pick_settled(0, 0, None)).collect();
        assert_eq!(r, [Some(0), Some(1), Some(0), Some(1)]);
        n.failed(0, 0);
        n.failed(1, 0);
        assert_eq!(n.pick_settled(0, 0, None), Some(2));
        n.failed(2, 0);
        assert!(!n.has_settled(0));
        assert_eq!(n.pick_settled(0, 0, None), None);
    }

    #[test]
    fn primary_first_then_backup_when_primary_down() {
        let mut n = Nodes::new(vec![policy(false, 1), policy(true, 1)]);
        assert_eq!(n.pick(0, 0, 0, None), Pick::Node { index: 0, probe: false });
        assert_eq!(n.failed(0, 0), Transition::WentDown);
        assert_eq!(n.pick(0, 1, 0, None), Pick::Node { index: 1, probe: false });
        assert!(n.is_down(0, 1));
    }

    #[test]
    fn backup_is_not_used_while_a_primary_is_up() {
        let mut n = Nodes::new(vec![policy(false, 1), policy(false, 1), policy(true, 1)]);
        n.failed(0, 0);
        assert_eq!(n.pick(0, 1, 0, None), Pick::Node { index: 1, probe: false });
        assert_eq!(n.pick(0, 1, 1 << 1, None), Pick::Node { index: 2, probe: false }, "failover within a call");
    }

    #[test]
    fn max_fails_counts_within_the_window() {
        let mut n = Nodes::new(vec![policy(false, 3)]);
        n.failed(0, 0);
        n.failed(0, 100);
        assert_eq!(n.pick(0, 200, 0, None), Pick::Node { index: 0, probe: false });
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
        assert_eq!(n.pick(0, 0, 1 << 0, None), Pick::Exhausted);
        assert!(!n.breaker_open(0));
    }

    #[test]
    fn max_fails_zero_never_marks_down() {
        let mut n = Nodes::new(vec![policy(false, 0)]);
        for t in 0..10 {
            assert_eq!(n.failed(0, t), Transition::None);
        }
        assert_eq!(n.pick(0, 10, 0, None), Pick::Node { index: 0, probe: false });
    }

    #[test]
    fn breaker_opens_once_and_answers_without_trying() {
        let mut n = Nodes::new(vec![policy(false, 1), policy(true, 1)]);
        n.failed(0, 0);
        n.failed(1, 0);
        assert_eq!(n.pick(0, 1, 0, None), Pick::Unavailable { tripped: true });
        assert_eq!(n.pick(0, 2, 0, None), Pick::Unavailable { tripped: false });
        assert!(n.breaker_open(0));
    }

    /// Every node of the group down: the first probe goes out `QUICK_PROBE_FIRST_MS` after
    /// the failure, not a whole `fail_timeout` later; one at a time; each failed probe
    /// doubles the wait up to `QUICK_PROBE_MAX_MS`. The breaker's open time is blind time.
    #[test]
    fn a_group_with_every_node_down_probes_early_and_backs_off() {
        let mut n = Nodes::new(vec![policy(false, 1)]);
        n.failed(0, 0);
        assert_eq!(n.pick(0, 100, 0, None), Pick::Unavailable { tripped: true });
        assert_eq!(n.admit_check(0, 249), Err(false));
        assert_eq!(n.pick(0, 250, 0, None), Pick::Node { index: 0, probe: true });
        assert_eq!(n.pick(0, 251, 0, None), Pick::Unavailable { tripped: false }, "second caller waits");
        // Each failed probe doubles the wait: 500, 1000, then 1000 again (the cap).
        let mut at = 300;
        for wait in [500, 1000, 1000] {
            assert_eq!(n.failed(0, at), Transition::None);
            assert_eq!(n.pick(0, at + wait - 1, 0, None), Pick::Unavailable { tripped: false }, "before {wait}");
            assert_eq!(n.admit_check(0, at + wait), Ok(()));
            assert_eq!(n.pick(0, at + wait, 0, None), Pick::Node { index: 0, probe: true }, "after {wait}");
            at += wait;
        }
        assert_eq!(n.succeeded(0, at + 1), Transition::CameBack);
        assert_eq!(n.pick(0, at + 2, 0, None), Pick::Node { index: 0, probe: false });
        assert!(!n.breaker_open(0));
        assert_eq!(n.take_blind_ms(0, at + 2), at + 1 - 100, "open from the trip to the answer");
        assert_eq!(n.take_blind_ms(0, at + 3), 0, "taken once");
        // Down again: the backoff starts over.
        n.failed(0, 50_000);
        assert_eq!(n.pick(0, 50_250, 0, None), Pick::Node { index: 0, probe: true });
    }

    /// Blind time is counted while the breaker is still open, as it accrues.
    #[test]
    fn blind_time_accrues_while_the_breaker_is_open() {
        let mut n = Nodes::new(vec![policy(false, 1)]);
        n.failed(0, 0);
        assert_eq!(n.admit_check(0, 10), Err(true));
        assert_eq!(n.take_blind_ms(0, 110), 100);
        assert_eq!(n.take_blind_ms(0, 160), 50);
        assert_eq!(n.take_blind_ms(1, 160), 0, "no such group");
    }

    /// The early probe is only for a group with no node up: while a backup answers, a
    /// down primary waits out its `fail_timeout` as in nginx.
    #[test]
    fn no_early_probe_while_another_node_of_the_group_is_up() {
        let mut n = Nodes::new(vec![policy(false, 1), policy(true, 1)]);
        n.failed(0, 0);
        assert_eq!(n.pick(0, 500, 0, None), Pick::Node { index: 1, probe: false });
        assert_eq!(n.pick(0, 9_999, 0, None), Pick::Node { index: 1, probe: false });
        assert_eq!(n.pick(0, 10_000, 0, None), Pick::Node { index: 0, probe: true });
    }

    /// A huge `fail_timeout` does not wrap: the node stays down.
    #[test]
    fn a_huge_fail_timeout_does_not_wrap() {
        let mut n = Nodes::new(vec![
            NodePolicy { backup: false, max_fails: 1, fail_timeout_ms: u64::MAX, weight: 1, max_conns: 0 },
            policy(true, 1),
        ]);
        n.failed(0, 5);
        assert!(n.is_down(0, u64::MAX - 1));
        assert_eq!(n.pick(0, 1_000_000, 0, None), Pick::Node { index: 1, probe: false });
    }

    #[test]
    fn primary_back_takes_traffic_from_backup() {
        let mut n = Nodes::new(vec![policy(false, 1), policy(true, 1)]);
        n.failed(0, 0);
        assert_eq!(n.pick(0, 1, 0, None), Pick::Node { index: 1, probe: false });
        assert_eq!(n.pick(0, 10_000, 0, None), Pick::Node { index: 0, probe: true });
        n.succeeded(0, 0);
        assert_eq!(n.pick(0, 10_001, 0, None), Pick::Node { index: 0, probe: false });
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
        assert_eq!(n.pick(0, 3, 0, None), Pick::Unavailable { tripped: false });
        assert_eq!(n.admit_check(0, 10_000), Ok(()), "a probe is due");
    }

    #[test]
    fn reports_use_only_nodes_that_are_up() {
        let mut n = Nodes::new(vec![policy(false, 1), policy(true, 1)]);
        assert_eq!(n.pick_settled(0, 0, None), Some(0));
        assert_eq!(n.pick_settled(0, 1 << 0, None), None, "no backup while a primary is up");
        n.failed(0, 0);
        assert_eq!(n.pick_settled(0, 0, None), Some(1));
        // The primary's down time ran out, but only a check may probe it.
        assert_eq!(n.pick_settled(0, 0, None), Some(1));
        assert_eq!(n.pick(0, 10_000, 0, None), Pick::Node { index: 0, probe: true });
        assert_eq!(n.pick_settled(0, 0, None), Some(1), "a node being probed gets no report");
        n.failed(1, 10_000);
        assert_eq!(n.pick_settled(0, 0, None), None);
    }

    #[test]
    fn abandoned_probe_frees_the_node_for_another() {
        let mut n = Nodes::new(vec![policy(false, 1)]);
        n.failed(0, 0);
        assert_eq!(n.pick(0, 10_000, 0, None), Pick::Node { index: 0, probe: true });
        n.abandoned(0);
        assert_eq!(n.pick(0, 10_001, 0, None), Pick::Node { index: 0, probe: true });
    }

    #[test]
    fn groups_pick_and_trip_on_their_own() {
        let mut n = Nodes::with_groups(vec![policy(false, 1), policy(true, 1), policy(false, 1)], vec![0..2, 2..3]);
        assert_eq!(n.pick(1, 0, 0, None), Pick::Node { index: 2, probe: false });
        assert_eq!(n.failed(2, 0), Transition::WentDown);
        assert_eq!(n.pick(1, 1, 0, None), Pick::Unavailable { tripped: true }, "group 1 has no backup of its own");
        assert_eq!(n.admit_check(1, 1), Err(false));
        assert!(n.breaker_open(1));
        assert!(!n.breaker_open(0), "group 0's breaker is its own");
        assert_eq!(n.admit_check(0, 1), Ok(()));
        assert_eq!(n.pick(0, 1, 0, None), Pick::Node { index: 0, probe: false });
        assert_eq!(n.pick_settled(1, 0, None), None);
        assert_eq!(n.pick_settled(0, 0, None), Some(0));
        assert_eq!(n.pick(1, 10_000, 0, None), Pick::Node { index: 2, probe: true });
        assert_eq!(n.succeeded(2, 0), Transition::CameBack);
        assert!(!n.breaker_open(1));
        assert_eq!(
            n.pick(7, 0, 0, None),
            Pick::Unavailable { tripped: false },
            "a group that does not exist has no node"
        );
    }

    #[test]
    fn a_node_out_of_use_takes_no_call_and_comes_back_fresh() {
        let mut n = Nodes::new(vec![policy(false, 1), policy(false, 1), policy(true, 1)]);
        n.set_active(0, false);
        assert_eq!(n.pick(0, 0, 0, None), Pick::Node { index: 1, probe: false });
        assert_eq!(n.pick_settled(0, 0, None), Some(1));
        n.set_active(1, false);
        assert_eq!(
            n.pick(0, 0, 0, None),
            Pick::Node { index: 2, probe: false },
            "the backup, while no primary is in use"
        );
        n.set_active(2, false);
        assert_eq!(n.admit_check(0, 0), Err(true));
        assert_eq!(n.pick_settled(0, 0, None), None);
        n.failed(0, 0);
        n.set_active(0, true);
        assert!(!n.is_down(0, 1), "a node taken into use starts with fresh health");
        assert_eq!(n.pick(0, 1, 0, None), Pick::Node { index: 0, probe: false });
    }
}
