//! The verdict cache's table, in safe Rust over the zone's memory (`cache_zone.rs` maps it
//! and holds the zone's mutex around every call here).
//!
//! A fixed set-associative table: a key's first word picks one set of [`WAYS`] entries, and
//! a full set gives up its least recently used entry. Every operation looks at one set only,
//! so the time the mutex is held is bounded whatever the zone's size, and nothing is
//! allocated after the zone is made (a full zone evicts; it never fails).

/// Entries per set: the LRU order is exact within a set.
pub const WAYS: usize = 8;

/// A verdict the ASE gave, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cached {
    Allow,
    Block,
}

const EMPTY: u8 = 0;
const ALLOW: u8 = 1;
const BLOCK: u8 = 2;

/// One entry as laid out in shared memory. `key` is the 128-bit keyed hash of the cache key
/// (`cache_key.rs`); `verdict` [`EMPTY`] marks a free entry.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct Entry {
    key: [u64; 2],
    /// When the ASE gave the verdict (nginx's monotonic msec, the same in every worker).
    learned_ms: u64,
    /// When a request last used or refreshed the entry: the LRU order.
    used_ms: u64,
    verdict: u8,
    _pad: [u8; 7],
}

/// A set of entries.
pub type Set = [Entry; WAYS];

/// What a lookup found: the verdict and how old it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    pub verdict: Cached,
    pub age_ms: u64,
}

/// The set a key lives in.
fn set_of(sets: &mut [Set], key: [u64; 2]) -> Option<&mut Set> {
    let n = sets.len() as u64;
    if n == 0 {
        return None;
    }
    sets.get_mut((key[0] % n) as usize)
}

/// The entry for `key`, marked used at `now`.
pub fn lookup(sets: &mut [Set], key: [u64; 2], now: u64) -> Option<Found> {
    let set = set_of(sets, key)?;
    let e = set.iter_mut().find(|e| e.verdict != EMPTY && e.key == key)?;
    e.used_ms = now;
    let verdict = if e.verdict == BLOCK { Cached::Block } else { Cached::Allow };
    Some(Found { verdict, age_ms: now.saturating_sub(e.learned_ms) })
}

/// Stores the ASE's verdict for `key`, learned at `now`. Returns whether another entry was
/// evicted to make room.
pub fn store(sets: &mut [Set], key: [u64; 2], verdict: Cached, now: u64) -> bool {
    let Some(set) = set_of(sets, key) else { return false };
    let same = set.iter().position(|e| e.verdict != EMPTY && e.key == key);
    let free = || set.iter().position(|e| e.verdict == EMPTY);
    let (i, evicted) = match same.map(|i| (i, false)).or_else(|| free().map(|i| (i, false))) {
        Some(found) => found,
        // Full: the least recently used entry of the set goes.
        None => (set.iter().enumerate().min_by_key(|(_, e)| e.used_ms).map(|(i, _)| i).unwrap_or(0), true),
    };
    let code = match verdict {
        Cached::Allow => ALLOW,
        Cached::Block => BLOCK,
    };
    set[i] = Entry { key, learned_ms: now, used_ms: now, verdict: code, _pad: [0; 7] };
    evicted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(sets: usize) -> Vec<Set> {
        vec![[Entry::default(); WAYS]; sets]
    }

    #[test]
    fn stores_and_finds_with_age() {
        let mut t = table(4);
        assert_eq!(lookup(&mut t, [1, 1], 0), None);
        assert!(!store(&mut t, [1, 1], Cached::Allow, 100));
        assert_eq!(lookup(&mut t, [1, 1], 150), Some(Found { verdict: Cached::Allow, age_ms: 50 }));
        // same first word, other second word: another key
        assert_eq!(lookup(&mut t, [1, 2], 150), None);
        // a refresh replaces the verdict and its age
        assert!(!store(&mut t, [1, 1], Cached::Block, 200));
        assert_eq!(lookup(&mut t, [1, 1], 200), Some(Found { verdict: Cached::Block, age_ms: 0 }));
        // a clock that went back gives age 0, not a huge one
        assert_eq!(lookup(&mut t, [1, 1], 10).map(|f| f.age_ms), Some(0));
    }

    #[test]
    fn a_full_set_evicts_its_least_recently_used() {
        let mut t = table(1);
        for k in 0..WAYS as u64 {
            assert!(!store(&mut t, [k, k], Cached::Allow, k));
        }
        // key 0 is used again: key 1 is now the least recently used
        assert!(lookup(&mut t, [0, 0], 100).is_some());
        assert!(store(&mut t, [99, 99], Cached::Block, 101));
        assert!(lookup(&mut t, [1, 1], 102).is_none());
        assert!(lookup(&mut t, [0, 0], 102).is_some());
        assert!(lookup(&mut t, [99, 99], 102).is_some());
        assert!(t[0].iter().all(|e| e.verdict != EMPTY));
    }

    #[test]
    fn no_sets_no_entries() {
        let mut t = table(0);
        assert!(!store(&mut t, [1, 1], Cached::Allow, 1));
        assert_eq!(lookup(&mut t, [1, 1], 1), None);
    }
}
