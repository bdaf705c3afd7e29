//! Correlation IDs: one per API call, sent as `X-CorrelationID` on both sideband calls.
//! 22 URL-safe characters (128 bits). Uniqueness, not secrecy, is what the ASE needs, but
//! every worker of every nginx in front of one ASE draws from the same space: each worker
//! seeds two independent 64-bit generators from the operating system's randomness (128
//! bits in all), so two workers, two hosts or two restarts never share a sequence. A step
//! is two splitmix64 rounds: no system call and no allocation per ID.
//!
//! The seed is drawn on a thread's first ID: in nginx that is in a worker, after the fork,
//! never in the master (which checks nothing), so workers never inherit one state.

use std::cell::Cell;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
pub const ID_LEN: usize = 22;

thread_local! {
    static STATE: Cell<[u64; 2]> = Cell::new(seed());
}

/// 128 bits from the operating system; only if it has none to give (never on Linux since
/// 3.17), the clock and the process ID, so that IDs are still distinct within a worker.
fn seed() -> [u64; 2] {
    let mut bytes = [0u8; 16];
    if getrandom::getrandom(&mut bytes).is_err() {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        bytes = (t ^ (u128::from(std::process::id()) << 96)).to_le_bytes();
    }
    let (a, b) = bytes.split_at(8);
    let word = |s: &[u8]| u64::from_le_bytes(s.try_into().unwrap_or([0; 8]));
    [word(a), word(b)]
}

/// One splitmix64 output for a state that has just been stepped.
fn mix(v: u64) -> u64 {
    let mut z = v;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Both generators one step on: 128 bits.
fn next_u128() -> u128 {
    STATE.with(|s| {
        let [a, b] = s.get();
        let (a, b) = (a.wrapping_add(0x9e37_79b9_7f4a_7c15), b.wrapping_add(0xd1b5_4a32_d192_ed03));
        s.set([a, b]);
        (u128::from(mix(a)) << 64) | u128::from(mix(b))
    })
}

/// A new correlation ID.
pub fn new_id() -> [u8; ID_LEN] {
    let mut bits = next_u128();
    let mut out = [0u8; ID_LEN];
    for c in out.iter_mut() {
        *c = ALPHABET[(bits & 63) as usize];
        bits >>= 6;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_url_safe_and_distinct() {
        let mut seen = HashSet::new();
        for _ in 0..100_000 {
            let id = new_id();
            assert!(id.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_'));
            assert!(seen.insert(id), "duplicate id");
        }
    }

    /// Each thread (in nginx: each worker) seeds itself from the system: two threads started
    /// at the same instant in the same process do not draw the same IDs.
    #[test]
    fn threads_draw_from_unrelated_seeds() {
        let draw = || std::thread::spawn(|| (0..1000).map(|_| new_id()).collect::<Vec<_>>());
        let (a, b) = (draw(), draw());
        let (a, b): (HashSet<_>, HashSet<_>) =
            (a.join().unwrap().into_iter().collect(), b.join().unwrap().into_iter().collect());
        assert!(a.is_disjoint(&b), "two threads drew the same IDs");
    }
}
