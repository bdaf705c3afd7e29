//! A count of calls in flight with a ceiling, per worker (safe Rust).
//!
//! `ase_request monitor` sends a check no client waits for: the request ends at once, while
//! the check may hold a connection to the ASE for `ase_timeout`. With a slow or hanging ASE,
//! nothing else bounds how many pile up (an enforced check is bounded by the clients it
//! holds), and they would take every worker connection; past the ceiling a monitored
//! request's metadata is not sent.

use core::sync::atomic::{AtomicUsize, Ordering};

pub struct InFlight(AtomicUsize);

impl InFlight {
    pub const fn new() -> Self {
        InFlight(AtomicUsize::new(0))
    }

    /// Takes a place if fewer than `ceiling` are taken.
    pub fn try_take(&self, ceiling: usize) -> bool {
        // One thread per worker: a load and a store are enough, the atomic makes it a safe static.
        let n = self.0.load(Ordering::Relaxed);
        if n >= ceiling {
            return false;
        }
        self.0.store(n + 1, Ordering::Relaxed);
        true
    }

    /// Gives back a place taken by `try_take`.
    pub fn release(&self) {
        let n = self.0.load(Ordering::Relaxed);
        self.0.store(n.saturating_sub(1), Ordering::Relaxed);
    }
}

impl Default for InFlight {
    fn default() -> Self {
        InFlight::new()
    }
}

/// The most monitored checks a worker keeps in flight: a quarter of its connections
/// (`worker_connections`), at least one.
pub fn monitor_ceiling(worker_connections: usize) -> usize {
    (worker_connections / 4).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_up_to_the_ceiling_and_back() {
        let f = InFlight::new();
        assert!(f.try_take(2) && f.try_take(2));
        assert!(!f.try_take(2), "a third place under a ceiling of 2");
        f.release();
        assert!(f.try_take(2));
        f.release();
        f.release();
        f.release(); // one too many: stays at zero
        assert!(f.try_take(1) && !f.try_take(1));
    }

    #[test]
    fn a_quarter_of_the_connections() {
        assert_eq!(monitor_ceiling(1024), 256);
        assert_eq!(monitor_ceiling(64), 16);
        assert_eq!(monitor_ceiling(2), 1);
    }
}
