//! The counters behind `ase_status`. They live either in this process (one worker's view)
//! or, with `ase_zone`, in a shared memory zone that every worker adds to and that
//! survives reloads. Updates are relaxed atomic additions: no lock on the hot path, and no
//! `unsafe` here (the zone glue is in `zone.rs`).

use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering::Relaxed};

use ngx_ase_shared::abi::{AseError, Verdict};

/// Nodes the status page tracks (an `ase_server` list longer than this shows the first ones).
pub const MAX_NODES: usize = 16;
/// Groups the status page keeps numbers for (the default group and the first `ase_upstream`s).
pub const MAX_GROUPS: usize = 16;
/// Latency window: `WINDOW_SLOTS` slots of `SLOT_MS` each (one minute).
pub const WINDOW_SLOTS: usize = 6;
pub const SLOT_MS: u64 = 10_000;
/// Upper bounds (ms) of the latency histogram's buckets; the last one catches the rest.
pub const BUCKET_BOUNDS_MS: [u64; 20] =
    [1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2000, u64::MAX];

/// The statuses counted one by one; everything else lands in "other".
pub const STATUS_CODES: [u16; 6] = [200, 400, 401, 403, 503, 0];
pub const STATUS_SLOTS: usize = STATUS_CODES.len();

const N_ERRORS: usize = AseError::ALL.len();
const N_VERDICTS: usize = Verdict::ALL.len();

#[repr(C)]
pub struct LatencySlot {
    /// Which `SLOT_MS` period this slot holds (`now / SLOT_MS`).
    epoch: AtomicU64,
    buckets: [AtomicU64; BUCKET_BOUNDS_MS.len()],
}

#[repr(C)]
pub struct NodeStats {
    pub calls: AtomicU64,
    pub failures: AtomicU64,
    /// When a worker last marked the node down (nginx msec), 0 when up.
    pub down_since_ms: AtomicU64,
    window: [LatencySlot; WINDOW_SLOTS],
}

/// One group's share of the channel's counters (the totals above count every group).
#[repr(C)]
pub struct GroupStats {
    pub checks: AtomicU64,
    pub reports: AtomicU64,
    pub errors: [AtomicU64; N_ERRORS],
    pub breaker_trips: AtomicU64,
    pub reports_sent: AtomicU64,
    pub reports_dropped: AtomicU64,
    /// Milliseconds the group's breaker was open (every node down): checks were not asked.
    /// Brought up to date by each check of the group.
    pub blind_ms: AtomicU64,
    /// `ase_mirror` copies (checks and reports) handed to this group, those it answered,
    /// and those not sent (report queue full, every node down).
    pub mirrored: AtomicU64,
    pub mirrored_sent: AtomicU64,
    pub mirrored_dropped: AtomicU64,
    /// `ase_latency_guard`: times a worker found the group slow, checks not waited for
    /// because of it, and the workers that find it slow now (a gauge).
    pub slow_entered: AtomicU64,
    pub slow_detached: AtomicU64,
    pub slow_workers: AtomicU64,
}

/// The verdict cache (`ase_cache`), all zones together.
#[repr(C)]
pub struct CacheStats {
    pub hits: AtomicU64,
    /// Requests that waited for the ASE: no verdict cached, or one past `ase_cache_valid`.
    pub misses: AtomicU64,
    /// ASE errors decided by a verdict within `ase_cache_use_stale`.
    pub stale: AtomicU64,
    pub evictions: AtomicU64,
}

#[repr(C)]
pub struct Counters {
    pub checks: AtomicU64,
    pub reports: AtomicU64,
    pub status: [AtomicU64; STATUS_SLOTS],
    pub errors: [AtomicU64; N_ERRORS],
    pub verdicts: [AtomicU64; N_VERDICTS],
    /// Fail-opens (and fail-closes) by cause; `None` = an ASE status that means error.
    pub fail_open_by_cause: [AtomicU64; N_ERRORS],
    pub breaker_trips: AtomicU64,
    pub connections_new: AtomicU64,
    pub connections_reused: AtomicU64,
    /// Answers that said `Connection: close` (the ASE keeps no sideband connection).
    pub connections_closed_by_ase: AtomicU64,
    pub reports_sent: AtomicU64,
    pub reports_dropped_queue_full: AtomicU64,
    pub reports_dropped_unavailable: AtomicU64,
    /// Request checks whose payload was cut short to `ase_request_max_size`.
    pub payload_truncated: AtomicU64,
    /// Monitored requests whose metadata was not sent: too many monitored checks in flight.
    pub monitor_skipped: AtomicU64,
    /// Request checks not sent: what identifies the request does not fit in
    /// `ase_request_max_size` (the check followed the fail mode).
    pub identity_too_large: AtomicU64,
    pub cache: CacheStats,
    pub nodes: [NodeStats; MAX_NODES],
    pub groups: [GroupStats; MAX_GROUPS],
}

#[allow(clippy::declare_interior_mutable_const)]
const Z: AtomicU64 = AtomicU64::new(0);

impl Counters {
    pub const fn new() -> Counters {
        // Array-repeat initializers: each use is a fresh value (what the lint warns about).
        #[allow(clippy::declare_interior_mutable_const)]
        const SLOT: LatencySlot = LatencySlot { epoch: Z, buckets: [Z; BUCKET_BOUNDS_MS.len()] };
        #[allow(clippy::declare_interior_mutable_const)]
        const NODE: NodeStats = NodeStats { calls: Z, failures: Z, down_since_ms: Z, window: [SLOT; WINDOW_SLOTS] };
        #[allow(clippy::declare_interior_mutable_const)]
        const GROUP: GroupStats = GroupStats {
            checks: Z,
            reports: Z,
            errors: [Z; N_ERRORS],
            breaker_trips: Z,
            reports_sent: Z,
            reports_dropped: Z,
            blind_ms: Z,
            mirrored: Z,
            mirrored_sent: Z,
            mirrored_dropped: Z,
            slow_entered: Z,
            slow_detached: Z,
            slow_workers: Z,
        };
        Counters {
            checks: Z,
            reports: Z,
            status: [Z; STATUS_SLOTS],
            errors: [Z; N_ERRORS],
            verdicts: [Z; N_VERDICTS],
            fail_open_by_cause: [Z; N_ERRORS],
            breaker_trips: Z,
            connections_new: Z,
            connections_reused: Z,
            connections_closed_by_ase: Z,
            reports_sent: Z,
            reports_dropped_queue_full: Z,
            reports_dropped_unavailable: Z,
            payload_truncated: Z,
            monitor_skipped: Z,
            identity_too_large: Z,
            cache: CacheStats { hits: Z, misses: Z, stale: Z, evictions: Z },
            nodes: [NODE; MAX_NODES],
            groups: [GROUP; MAX_GROUPS],
        }
    }
}

impl Default for Counters {
    fn default() -> Self {
        Counters::new()
    }
}

static LOCAL: Counters = Counters::new();
static ACTIVE: AtomicPtr<Counters> = AtomicPtr::new(core::ptr::null_mut());

/// The counters this process adds to.
pub fn counters() -> &'static Counters {
    // SAFETY: ACTIVE is null or points to counters in a shared zone mapped for the life of
    // the process (set once in init_process).
    unsafe { ACTIVE.load(Relaxed).as_ref() }.unwrap_or(&LOCAL)
}

/// Makes `shared` (in the `ase_zone`) the counters every update goes to.
pub fn use_shared(shared: &'static Counters) {
    ACTIVE.store(shared as *const Counters as *mut Counters, Relaxed);
}

/// Group `g`'s counters, when the page keeps numbers for it.
pub fn group(g: usize) -> Option<&'static GroupStats> {
    counters().groups.get(g)
}

pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

pub fn get(c: &AtomicU64) -> u64 {
    c.load(Relaxed)
}

pub fn status_slot(status: u16) -> usize {
    STATUS_CODES.iter().position(|&s| s == status).unwrap_or(STATUS_SLOTS - 1)
}

impl NodeStats {
    /// Records one call's outcome and latency at time `now` (ms).
    pub fn record(&self, now: u64, latency_ms: u64, failed: bool) {
        bump(&self.calls);
        if failed {
            bump(&self.failures);
        }
        let epoch = now / SLOT_MS;
        let slot = &self.window[(epoch % WINDOW_SLOTS as u64) as usize];
        let seen = slot.epoch.load(Relaxed);
        if seen != epoch && slot.epoch.compare_exchange(seen, epoch, Relaxed, Relaxed).is_ok() {
            for b in &slot.buckets {
                b.store(0, Relaxed);
            }
        }
        let i = BUCKET_BOUNDS_MS.iter().position(|&ub| latency_ms <= ub).unwrap_or(BUCKET_BOUNDS_MS.len() - 1);
        bump(&slot.buckets[i]);
    }

    /// The latency quantile `q` (0..1) over the last minute, as a bucket's upper bound in
    /// ms; `None` without calls in the window.
    pub fn quantile_ms(&self, now: u64, q: f64) -> Option<u64> {
        let current = now / SLOT_MS;
        let mut merged = [0u64; BUCKET_BOUNDS_MS.len()];
        for slot in &self.window {
            let e = slot.epoch.load(Relaxed);
            if e + (WINDOW_SLOTS as u64) > current && e <= current {
                for (m, b) in merged.iter_mut().zip(&slot.buckets) {
                    *m += b.load(Relaxed);
                }
            }
        }
        let total: u64 = merged.iter().sum();
        if total == 0 {
            return None;
        }
        let want = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in merged.iter().enumerate() {
            seen += n;
            if seen >= want {
                return Some(BUCKET_BOUNDS_MS[i].min(BUCKET_BOUNDS_MS[BUCKET_BOUNDS_MS.len() - 2] * 2));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_have_slots() {
        assert_eq!(STATUS_CODES[status_slot(403)], 403);
        assert_eq!(status_slot(302), STATUS_SLOTS - 1);
    }

    #[test]
    fn latency_quantiles_over_the_window() {
        let c = Counters::new();
        let n = &c.nodes[0];
        for _ in 0..98 {
            n.record(1_000, 2, false);
        }
        n.record(1_000, 40, false);
        n.record(1_000, 400, true);
        assert_eq!(n.quantile_ms(1_000, 0.5), Some(2));
        assert_eq!(n.quantile_ms(1_000, 0.99), Some(50));
        assert_eq!(n.quantile_ms(1_000, 1.0), Some(500));
        assert_eq!((get(&n.calls), get(&n.failures)), (100, 1));
        // a minute later the old slot no longer counts
        assert_eq!(n.quantile_ms(1_000 + 60_000, 0.5), None);
        n.record(75_000, 7, false);
        assert_eq!(n.quantile_ms(75_000, 0.5), Some(7));
    }

    #[test]
    fn shared_counters_take_over() {
        static SHARED: Counters = Counters::new();
        bump(&counters().checks);
        use_shared(&SHARED);
        bump(&counters().checks);
        assert_eq!(get(&SHARED.checks), 1);
    }
}
