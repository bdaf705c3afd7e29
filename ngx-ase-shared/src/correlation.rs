//! Correlation IDs: one per API call, sent as `X-CorrelationID` on both sideband calls.
//! 22 URL-safe characters (128 bits) from a per-worker generator; uniqueness, not secrecy,
//! is what the ASE needs, so a fast non-cryptographic generator seeded once is enough.

use std::cell::Cell;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
pub const ID_LEN: usize = 22;

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let t =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    let mut s = t ^ ((std::process::id() as u64) << 32) ^ 0x9e37_79b9_7f4a_7c15;
    if s == 0 {
        s = 1;
    }
    s
}

/// splitmix64: a good 64-bit mix, one step per call.
fn next_u64() -> u64 {
    STATE.with(|s| {
        let v = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        s.set(v);
        let mut z = v;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

/// A new correlation ID.
pub fn new_id() -> [u8; ID_LEN] {
    let (a, b) = (next_u64(), next_u64());
    let mut bits = (u128::from(a) << 64) | u128::from(b);
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
}
