//! The arithmetic of `hash KEY [consistent];` in an `ase_upstream` block (`health.rs`
//! applies it to a group's nodes): the key's CRC-32 (the checksum nginx's own `hash` uses),
//! the weighted choice and its rehash when the chosen node cannot take the call, and the
//! consistent-hash ring. Safe Rust, no nginx, no allocation per call.

/// A hashed call that lands on nodes that cannot take it rehashes this many times before
/// it goes round robin, as nginx's `hash` does.
pub const HASH_TRIES: u32 = 20;

/// Points a node gets on the consistent-hash ring per unit of weight (nginx's number).
pub const POINTS_PER_WEIGHT: u32 = 160;

/// Weights above this count as this on the ring, so a huge `weight=` cannot make nginx
/// allocate gigabytes at start (64 nodes at most: about 8 MB of points).
pub const RING_WEIGHT_CAP: u32 = 100;

const CRC_TABLE: [u32; 256] = crc_table();

/// The table of the reflected CRC-32 (polynomial 0xEDB88320, as zlib and nginx).
const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

fn crc_update(mut crc: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        crc = CRC_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

/// CRC-32 of `bytes` (`ngx_crc32_long`).
pub fn crc32(bytes: &[u8]) -> u32 {
    crc_update(0xFFFF_FFFF, bytes) ^ 0xFFFF_FFFF
}

/// Where try `n` of a key hashing to `hash` lands: the hash itself first, then a mixed
/// value per try (murmur3's finalizer), so each try is an independent draw.
pub fn rehash(hash: u32, n: u32) -> u32 {
    if n == 0 {
        return hash;
    }
    let mut h = hash ^ n.wrapping_mul(0x9E37_79B9);
    h ^= h >> 16;
    h = h.wrapping_mul(0x85EB_CA6B);
    h ^= h >> 13;
    h = h.wrapping_mul(0xC2B2_AE35);
    h ^ (h >> 16)
}

/// The node a hash falls on when each of `nodes` (index, weight) owns a share of
/// `[0, total weight)` in proportion to its weight, as nginx's plain `hash` divides them.
pub fn weighted(hash: u32, nodes: impl Iterator<Item = (usize, u32)> + Clone) -> Option<usize> {
    let total: u64 = nodes.clone().map(|(_, w)| u64::from(w.max(1))).sum();
    if total == 0 {
        return None;
    }
    let mut at = u64::from(hash) % total;
    for (i, w) in nodes {
        let w = u64::from(w.max(1));
        if at < w {
            return Some(i);
        }
        at -= w;
    }
    None
}

/// The consistent-hash ring of one group (ketama, as nginx's `hash ... consistent`): each
/// node has `POINTS_PER_WEIGHT` points per unit of weight, hashed from its name, so adding
/// or removing a node moves only the keys whose points it owns (about 1/n of them).
#[derive(Debug, Default)]
pub struct Ring {
    /// (point, node index), sorted by point; 8 bytes a point (a channel has at most 64 nodes).
    points: Vec<(u32, u32)>,
}

impl Ring {
    /// The ring of `nodes`: (index, name, weight). A node's points depend only on its name
    /// and weight, never on its index or the other nodes.
    pub fn new<'a>(nodes: impl Iterator<Item = (usize, &'a str, u32)>) -> Ring {
        let mut points = Vec::new();
        for (i, name, weight) in nodes {
            let base = crc_update(0xFFFF_FFFF, name.as_bytes());
            let mut prev = 0u32;
            let Ok(i) = u32::try_from(i) else { continue };
            for _ in 0..POINTS_PER_WEIGHT.saturating_mul(weight.clamp(1, RING_WEIGHT_CAP)) {
                // Each point chains on the one before, as ketama's (and nginx's) do.
                prev = crc_update(base, &prev.to_le_bytes()) ^ 0xFFFF_FFFF;
                points.push((prev, i));
            }
        }
        points.sort_unstable();
        Ring { points }
    }

    /// The ring's nodes from `hash` on, clockwise round the ring once (a node appears once
    /// per point it owns).
    pub fn walk(&self, hash: u32) -> impl Iterator<Item = usize> + '_ {
        let start = self.points.partition_point(|&(p, _)| p < hash);
        self.points[start..].iter().chain(&self.points[..start]).map(|&(_, i)| i as usize)
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_the_standard_one() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    /// Each node owns a share of the hashes in proportion to its weight.
    #[test]
    fn weighted_shares_follow_the_weights() {
        let nodes = [(4usize, 1u32), (5, 2), (6, 1)];
        let mut count = [0u32; 3];
        for k in 0..4000u32 {
            let i = weighted(crc32(format!("client-{k}").as_bytes()), nodes.iter().copied()).unwrap();
            count[i - 4] += 1;
        }
        for (c, want) in count.iter().zip([1000, 2000, 1000]) {
            assert!(c.abs_diff(want) < 200, "{count:?}");
        }
        assert_eq!(weighted(7, core::iter::empty()), None);
    }

    /// The tries after the first land elsewhere and differ from one another.
    #[test]
    fn rehash_gives_fresh_draws() {
        assert_eq!(rehash(12345, 0), 12345);
        let tries: Vec<u32> = (0..HASH_TRIES).map(|n| rehash(12345, n)).collect();
        let mut sorted = tries.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), tries.len());
    }

    /// The ring spreads keys about evenly, and removing a node moves only its own keys.
    #[test]
    fn the_ring_moves_only_the_keys_of_a_removed_node() {
        let names = ["http://127.0.0.1:9001", "http://127.0.0.1:9002", "http://127.0.0.1:9003"];
        let three = Ring::new(names.iter().enumerate().map(|(i, n)| (i, *n, 1)));
        // The same nodes without the middle one (the indices change, as after a reload).
        let two = Ring::new([(0, names[0], 1), (1, names[2], 1)].into_iter());
        let mut count = [0u32; 3];
        for k in 0..3000u32 {
            let h = crc32(format!("client-{k}").as_bytes());
            let before = three.walk(h).next().unwrap();
            let after = two.walk(h).next().unwrap();
            count[before] += 1;
            if before != 1 {
                assert_eq!(names[before], [names[0], names[2]][after], "key {k} moved off a node that stayed");
            }
        }
        assert!(count.iter().all(|&c| c > 600), "{count:?}");
    }

    /// A walk visits every point once, starting at the key.
    #[test]
    fn a_walk_goes_round_once() {
        let ring = Ring::new([(0, "a", 1), (1, "b", 2)].into_iter());
        assert_eq!(ring.walk(0).count(), 3 * POINTS_PER_WEIGHT as usize);
        assert_eq!(ring.walk(u32::MAX).count(), 3 * POINTS_PER_WEIGHT as usize);
        assert!(Ring::default().walk(5).next().is_none());
    }
}
