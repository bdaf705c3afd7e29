//! Following a `resolve` server's addresses (safe Rust): given its node slots and the
//! addresses its name resolves to now, which slots drain (their address vanished) and which
//! take a new address. Addresses that stay keep their slot, so their health and pooled
//! connections stay too.

use std::net::SocketAddr;

/// One node slot of a `resolve` server as the worker has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// It takes calls, at `addr`.
    pub active: bool,
    /// A connection to it is still open (calls in flight after a drain).
    pub busy: bool,
    pub addr: SocketAddr,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// Slot indices that stop taking calls.
    pub drain: Vec<usize>,
    /// Slot indices that take calls at a new address.
    pub join: Vec<(usize, SocketAddr)>,
    /// New addresses left out: every free slot is in use or still draining.
    pub left_out: Vec<SocketAddr>,
}

/// What changes when the name now resolves to `now` (each address once, in the DNS order).
/// A slot that drained is taken again only once its connections are gone, so a connection
/// to an old address can never serve a slot's new one.
pub fn plan(slots: &[Slot], now: &[SocketAddr]) -> Change {
    let mut change = Change::default();
    let mut free: Vec<usize> = Vec::new();
    for (i, s) in slots.iter().enumerate() {
        if s.active && !now.contains(&s.addr) {
            change.drain.push(i);
        }
        if !s.active && !s.busy {
            free.push(i);
        }
    }
    // A slot that drains now still has its connections (idle ones close at once, those in
    // flight when their call ends): it is free from the next resolution on.
    let mut free = free.into_iter();
    for a in now {
        if slots.iter().any(|s| s.active && s.addr == *a) {
            continue;
        }
        match free.next() {
            Some(i) => change.join.push((i, *a)),
            None => change.left_out.push(*a),
        }
    }
    change
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }
    fn slot(active: bool, busy: bool, addr: &str) -> Slot {
        Slot { active, busy, addr: a(addr) }
    }
    const EMPTY: &str = "0.0.0.0:80";

    #[test]
    fn the_first_answer_fills_slots_in_dns_order() {
        let slots = [slot(false, false, EMPTY), slot(false, false, EMPTY), slot(false, false, EMPTY)];
        let c = plan(&slots, &[a("10.0.0.2:80"), a("10.0.0.1:80")]);
        assert_eq!(c.join, vec![(0, a("10.0.0.2:80")), (1, a("10.0.0.1:80"))]);
        assert!(c.drain.is_empty() && c.left_out.is_empty());
    }

    #[test]
    fn addresses_that_stay_keep_their_slot_new_ones_join_vanished_ones_drain() {
        let slots = [slot(true, true, "10.0.0.1:80"), slot(true, false, "10.0.0.2:80"), slot(false, false, EMPTY)];
        let c = plan(&slots, &[a("10.0.0.2:80"), a("10.0.0.3:80")]);
        assert_eq!(c.drain, vec![0]);
        assert_eq!(c.join, vec![(2, a("10.0.0.3:80"))]);
        assert!(c.left_out.is_empty());
        let same = plan(&slots[..2], &[a("10.0.0.1:80"), a("10.0.0.2:80")]);
        assert_eq!(same, Change::default(), "nothing changes when the answer does not");
    }

    #[test]
    fn a_slot_still_draining_is_not_reused_and_extra_addresses_wait() {
        let slots = [slot(false, true, "10.0.0.1:80"), slot(true, false, "10.0.0.2:80")];
        let c = plan(&slots, &[a("10.0.0.2:80"), a("10.0.0.3:80")]);
        assert!(c.join.is_empty());
        assert_eq!(c.left_out, vec![a("10.0.0.3:80")]);
        let c = plan(&[slot(false, false, "10.0.0.1:80"), slots[1]], &[a("10.0.0.2:80"), a("10.0.0.3:80")]);
        assert_eq!(c.join, vec![(0, a("10.0.0.3:80"))], "once its connections are gone");
    }

    #[test]
    fn a_name_that_no_longer_resolves_drains_every_slot() {
        let slots = [slot(true, false, "10.0.0.1:80"), slot(true, true, "10.0.0.2:80")];
        assert_eq!(plan(&slots, &[]).drain, vec![0, 1]);
    }
}
