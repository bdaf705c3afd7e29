//! The status page's Content-Security-Policy, computed when the module is compiled: the
//! browser may run the page's one inline script and apply its one inline style (named by
//! their SHA-256, so nothing injected would run), fetch only from this nginx, and load
//! nothing else. Safe Rust, all `const`.

/// The base64 SHA-256 of the page's inline script and of its inline style.
pub const fn policy_parts(page: &[u8]) -> ([u8; 44], [u8; 44]) {
    (
        base64_32(&sha256(element_text(page, b"<script>", b"</script>"))),
        base64_32(&sha256(element_text(page, b"<style>", b"</style>"))),
    )
}

pub const POLICY_HEAD: &str = "default-src 'none'; script-src 'sha256-";
pub const POLICY_MIDDLE: &str = "'; style-src 'sha256-";
pub const POLICY_TAIL: &str =
    "'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
pub const POLICY_LEN: usize = POLICY_HEAD.len() + 44 + POLICY_MIDDLE.len() + 44 + POLICY_TAIL.len();

/// `POLICY_HEAD` script-hash `POLICY_MIDDLE` style-hash `POLICY_TAIL`, as bytes.
pub const fn policy(page: &[u8]) -> [u8; POLICY_LEN] {
    let (script, style) = policy_parts(page);
    let mut out = [0u8; POLICY_LEN];
    let mut at = 0;
    at = put(&mut out, at, POLICY_HEAD.as_bytes());
    at = put(&mut out, at, &script);
    at = put(&mut out, at, POLICY_MIDDLE.as_bytes());
    at = put(&mut out, at, &style);
    put(&mut out, at, POLICY_TAIL.as_bytes());
    out
}

const fn put(out: &mut [u8; POLICY_LEN], at: usize, part: &[u8]) -> usize {
    let mut i = 0;
    while i < part.len() {
        out[at + i] = part[i];
        i += 1;
    }
    at + part.len()
}

/// The text between the first `open` and the `close` after it, which must be the only
/// such element (a second one would run without being allowed: fail the build instead).
pub const fn element_text<'a>(page: &'a [u8], open: &[u8], close: &[u8]) -> &'a [u8] {
    let Some(start) = find(page, open, 0) else { panic!("the status page has no such element") };
    let start = start + open.len();
    let Some(end) = find(page, close, start) else { panic!("the status page's element is not closed") };
    if find(page, open, end).is_some() {
        panic!("the status page has a second such element");
    }
    page.split_at(end).0.split_at(start).1
}

const fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + needle.len() <= hay.len() {
        let mut j = 0;
        while j < needle.len() && hay[i + j] == needle[j] {
            j += 1;
        }
        if j == needle.len() {
            return Some(i);
        }
        i += 1;
    }
    None
}

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
    0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
    0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
    0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
];

/// SHA-256 (FIPS 180-4) of `data`.
pub const fn sha256(data: &[u8]) -> [u8; 32] {
    let mut h: [u32; 8] =
        [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
    // The message, a 0x80 byte, zeros, and the length in bits: a whole number of 64-byte blocks.
    let blocks = (data.len() + 9).div_ceil(64);
    let bits = (data.len() as u64).wrapping_mul(8).to_be_bytes();
    let mut b = 0;
    while b < blocks {
        let mut w = [0u32; 64];
        let mut t = 0;
        while t < 16 {
            let mut word = 0u32;
            let mut k = 0;
            while k < 4 {
                let i = b * 64 + t * 4 + k;
                let byte = if i < data.len() {
                    data[i]
                } else if i == data.len() {
                    0x80
                } else if i >= blocks * 64 - 8 {
                    bits[i - (blocks * 64 - 8)]
                } else {
                    0
                };
                word = (word << 8) | byte as u32;
                k += 1;
            }
            w[t] = word;
            t += 1;
        }
        while t < 64 {
            let s0 = w[t - 15].rotate_right(7) ^ w[t - 15].rotate_right(18) ^ (w[t - 15] >> 3);
            let s1 = w[t - 2].rotate_right(17) ^ w[t - 2].rotate_right(19) ^ (w[t - 2] >> 10);
            w[t] = w[t - 16].wrapping_add(s0).wrapping_add(w[t - 7]).wrapping_add(s1);
            t += 1;
        }
        let (mut a, mut bb, mut c, mut d, mut e, mut f, mut g, mut hh) =
            (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]);
        t = 0;
        while t < 64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh.wrapping_add(s1).wrapping_add(ch).wrapping_add(K[t]).wrapping_add(w[t]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & bb) ^ (a & c) ^ (bb & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = bb;
            bb = a;
            a = t1.wrapping_add(t2);
            t += 1;
        }
        let add = [a, bb, c, d, e, f, g, hh];
        let mut i = 0;
        while i < 8 {
            h[i] = h[i].wrapping_add(add[i]);
            i += 1;
        }
        b += 1;
    }
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = h[i / 4].to_be_bytes()[i % 4];
        i += 1;
    }
    out
}

/// Standard base64 (with padding) of 32 bytes: 44 characters.
pub const fn base64_32(v: &[u8; 32]) -> [u8; 44] {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = [b'='; 44];
    let mut i = 0;
    while i < 11 {
        // 3 bytes -> 4 characters; the last group has 2 bytes -> 3 characters and a '='.
        let b0 = v[i * 3] as u32;
        let b1 = v[i * 3 + 1] as u32;
        let b2 = if i * 3 + 2 < 32 { v[i * 3 + 2] as u32 } else { 0 };
        let n = (b0 << 16) | (b1 << 8) | b2;
        out[i * 4] = ALPHABET[(n >> 18) as usize & 63];
        out[i * 4 + 1] = ALPHABET[(n >> 12) as usize & 63];
        out[i * 4 + 2] = ALPHABET[(n >> 6) as usize & 63];
        if i * 3 + 2 < 32 {
            out[i * 4 + 3] = ALPHABET[n as usize & 63];
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(v: &[u8]) -> String {
        v.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn sha256_of_the_standard_vectors() {
        assert_eq!(hex(&sha256(b"")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(hex(&sha256(b"abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let two_blocks = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        assert_eq!(hex(&sha256(two_blocks)), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
        // 55, 56 and 64 bytes: where the length no longer fits in the message's last block
        assert_eq!(hex(&sha256(&[b'a'; 55])), "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
        assert_eq!(hex(&sha256(&[b'a'; 56])), "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
        assert_eq!(hex(&sha256(&[b'a'; 64])), "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
    }

    #[test]
    fn base64_as_csp_wants_it() {
        // The CSP hash source of "alert('Hello, world.');" from the CSP specification.
        let h = base64_32(&sha256(b"alert('Hello, world.');"));
        assert_eq!(std::str::from_utf8(&h).unwrap(), "qznLcsROx4GACP2dm0UCKCzCG+HiZ1guq6ZZDob/Tng=");
    }

    #[test]
    fn the_policy_names_the_elements_of_the_page() {
        let page = b"<html><style>p{}</style><script>go()</script></html>";
        let p = policy(page);
        let p = std::str::from_utf8(&p).unwrap();
        let want = |s: &[u8]| String::from_utf8(base64_32(&sha256(s)).to_vec()).unwrap();
        assert!(
            p.starts_with(&format!(
                "default-src 'none'; script-src 'sha256-{}'; style-src 'sha256-{}';",
                want(b"go()"),
                want(b"p{}")
            )),
            "{p}"
        );
        assert_eq!(element_text(page, b"<script>", b"</script>"), b"go()");
    }

    #[test]
    #[should_panic(expected = "second such element")]
    fn a_second_script_is_refused() {
        element_text(b"<script>a</script><script>b</script>", b"<script>", b"</script>");
    }
}
