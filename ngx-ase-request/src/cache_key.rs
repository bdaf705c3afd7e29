//! The verdict cache's key: a 128-bit keyed hash of what identifies a client to the ASE
//! (safe Rust). Two SipHash-2-4 runs with the zone's random seed: a client cannot choose a
//! request whose key collides with another client's without knowing the seed, and 128 bits
//! make a chance collision negligible. Each field is hashed with its length, so moving bytes
//! from one field to the next (`a` + `bc` against `ab` + `c`) gives another key.

use std::hash::Hasher;
#[allow(deprecated)] // SipHash-2-4 with our own keys; its deprecation only points at std's RandomState.
use std::hash::SipHasher;

#[allow(deprecated)]
pub struct KeyHasher {
    a: SipHasher,
    b: SipHasher,
}

impl KeyHasher {
    #[allow(deprecated)]
    pub fn new(seed: [u64; 2]) -> KeyHasher {
        KeyHasher {
            a: SipHasher::new_with_keys(seed[0], seed[1]),
            b: SipHasher::new_with_keys(seed[1] ^ 0x5bd1_e995_5bd1_e995, seed[0].rotate_left(29)),
        }
    }

    /// Adds one field (its length first).
    pub fn field(&mut self, bytes: &[u8]) {
        for h in [&mut self.a, &mut self.b] {
            h.write_u64(bytes.len() as u64);
            h.write(bytes);
        }
    }

    pub fn finish(&self) -> [u64; 2] {
        [self.a.finish(), self.b.finish()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: [u64; 2], fields: &[&[u8]]) -> [u64; 2] {
        let mut h = KeyHasher::new(seed);
        for f in fields {
            h.field(f);
        }
        h.finish()
    }

    #[test]
    fn fields_keep_their_bounds() {
        let s = [7, 9];
        assert_eq!(key(s, &[b"ab", b"c"]), key(s, &[b"ab", b"c"]));
        assert_ne!(key(s, &[b"ab", b"c"]), key(s, &[b"a", b"bc"]));
        assert_ne!(key(s, &[b"ab", b""]), key(s, &[b"ab"]));
        assert_ne!(key(s, &[b"x"]), key([7, 10], &[b"x"]));
        let k = key(s, &[b"x"]);
        assert_ne!(k[0], k[1]);
    }
}
