//! Per-worker counters. A worker is one thread, so relaxed atomics cost what plain
//! integers cost and keep this file free of `unsafe`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use ngx_ase_shared::abi::{AseError, Verdict};

pub struct Counters {
    /// Sideband calls started, by kind.
    pub checks: AtomicU64,
    pub reports: AtomicU64,
    /// ASE answers by status class: index 0 = 2xx-other, see `status_slot`.
    pub status: [AtomicU64; STATUS_SLOTS],
    /// Failed calls by cause (`AseError as usize`).
    pub errors: [AtomicU64; AseError::ALL.len()],
    /// Request verdicts (`Verdict as usize`).
    pub verdicts: [AtomicU64; Verdict::ALL.len()],
    /// Fail-opens by cause (`AseError as usize`; `None` = an ASE status that means error).
    pub fail_open_by_cause: [AtomicU64; AseError::ALL.len()],
    pub breaker_trips: AtomicU64,
    pub connections_new: AtomicU64,
    pub connections_reused: AtomicU64,
    pub reports_sent: AtomicU64,
    pub reports_dropped_queue_full: AtomicU64,
    pub reports_dropped_unavailable: AtomicU64,
}

/// The statuses counted one by one; everything else lands in "other".
pub const STATUS_CODES: [u16; 6] = [200, 400, 401, 403, 503, 0];
pub const STATUS_SLOTS: usize = STATUS_CODES.len();

pub fn status_slot(status: u16) -> usize {
    STATUS_CODES.iter().position(|&s| s == status).unwrap_or(STATUS_SLOTS - 1)
}

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU64 = AtomicU64::new(0);

pub static COUNTERS: Counters = Counters {
    checks: ZERO,
    reports: ZERO,
    status: [ZERO; STATUS_SLOTS],
    errors: [ZERO; AseError::ALL.len()],
    verdicts: [ZERO; Verdict::ALL.len()],
    fail_open_by_cause: [ZERO; AseError::ALL.len()],
    breaker_trips: ZERO,
    connections_new: ZERO,
    connections_reused: ZERO,
    reports_sent: ZERO,
    reports_dropped_queue_full: ZERO,
    reports_dropped_unavailable: ZERO,
};

pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

pub fn get(c: &AtomicU64) -> u64 {
    c.load(Relaxed)
}

/// The worker's counters as JSON (the status page's body).
pub fn to_json(c: &Counters) -> String {
    let mut s = String::from("{");
    let field = |s: &mut String, k: &str, v: u64| {
        if !s.ends_with('{') {
            s.push(',');
        }
        s.push_str(&format!("\"{k}\":{v}"));
    };
    field(&mut s, "checks", get(&c.checks));
    field(&mut s, "reports", get(&c.reports));
    s.push_str(",\"ase_status\":{");
    for (i, code) in STATUS_CODES.iter().enumerate() {
        let name = if *code == 0 { "other".to_string() } else { code.to_string() };
        field(&mut s, &name, get(&c.status[i]));
    }
    s.push_str("},\"errors\":{");
    for e in AseError::ALL.iter().skip(1) {
        field(&mut s, e.name(), get(&c.errors[*e as usize]));
    }
    s.push_str("},\"verdicts\":{");
    for v in Verdict::ALL {
        field(&mut s, v.name(), get(&c.verdicts[v as usize]));
    }
    s.push_str("},\"fail_open_by_cause\":{");
    for e in AseError::ALL {
        let name = if e == AseError::None { "ase_status" } else { e.name() };
        field(&mut s, name, get(&c.fail_open_by_cause[e as usize]));
    }
    s.push('}');
    field(&mut s, "breaker_trips", get(&c.breaker_trips));
    field(&mut s, "connections_new", get(&c.connections_new));
    field(&mut s, "connections_reused", get(&c.connections_reused));
    field(&mut s, "reports_sent", get(&c.reports_sent));
    field(&mut s, "reports_dropped_queue_full", get(&c.reports_dropped_queue_full));
    field(&mut s, "reports_dropped_unavailable", get(&c.reports_dropped_unavailable));
    s.push('}');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_well_formed() {
        let c = Counters {
            checks: AtomicU64::new(3),
            reports: ZERO,
            status: [ZERO; STATUS_SLOTS],
            errors: [ZERO; AseError::ALL.len()],
            verdicts: [ZERO; Verdict::ALL.len()],
            fail_open_by_cause: [ZERO; AseError::ALL.len()],
            breaker_trips: ZERO,
            connections_new: ZERO,
            connections_reused: ZERO,
            reports_sent: ZERO,
            reports_dropped_queue_full: ZERO,
            reports_dropped_unavailable: ZERO,
        };
        bump(&c.status[status_slot(403)]);
        bump(&c.status[status_slot(302)]);
        let json = to_json(&c);
        assert!(json.starts_with("{\"checks\":3,"), "{json}");
        assert!(json.contains("\"ase_status\":{\"200\":0,\"400\":0,\"401\":0,\"403\":1,\"503\":0,\"other\":1}"), "{json}");
        assert!(json.contains("\"verdicts\":{\"allow\":0,\"block\":0,\"fail_open\":0,\"fail_closed\":0,\"skip\":0}"), "{json}");
    }
}
