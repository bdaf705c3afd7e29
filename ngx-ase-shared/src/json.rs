//! A small JSON writer for the sideband payloads. It writes straight into one buffer (no
//! intermediate values) and accepts raw bytes as string values, because header values from
//! clients are arbitrary bytes.
//!
//! Byte strings become JSON strings this way: every valid UTF-8 sequence is kept as is
//! (with JSON's required escapes), and every byte that is not part of valid UTF-8 becomes the
//! character with the same number (U+0080..U+00FF, i.e. read as Latin-1). Nothing is ever
//! dropped, the output is always valid JSON, and [`decode_like_writer`] states the mapping
//! for tests.

/// Appends `bytes` as a quoted JSON string.
pub fn write_str(out: &mut Vec<u8>, bytes: &[u8]) {
    write_str_cased(out, bytes, false);
}

/// Appends `a`, `sep` and `b` as one quoted JSON string, the same bytes as `write_str` of
/// their concatenation, without building it: `sep` is non-empty ASCII, and an ASCII byte
/// never continues a UTF-8 sequence, so no sequence (valid or cut short) spans a part
/// boundary. Any other `sep` takes a copy (correct, but it allocates).
pub fn write_str_joined(out: &mut Vec<u8>, a: &[u8], sep: &[u8], b: &[u8]) {
    if sep.is_empty() || !sep.is_ascii() {
        let mut joined = Vec::with_capacity(a.len() + sep.len() + b.len());
        joined.extend_from_slice(a);
        joined.extend_from_slice(sep);
        joined.extend_from_slice(b);
        write_str(out, &joined);
        return;
    }
    out.push(b'"');
    write_str_body(out, a, false);
    write_str_body(out, sep, false);
    write_str_body(out, b, false);
    out.push(b'"');
}

/// `write_str`, with ASCII letters lower-cased on the way (header names), without a copy.
fn write_str_cased(out: &mut Vec<u8>, bytes: &[u8], lower: bool) {
    out.push(b'"');
    write_str_body(out, bytes, lower);
    out.push(b'"');
}

/// The inside of a JSON string for `bytes` (no quotes).
fn write_str_body(out: &mut Vec<u8>, bytes: &[u8], lower: bool) {
    let mut rest = bytes;
    while !rest.is_empty() {
        match core::str::from_utf8(rest) {
            Ok(valid) => {
                write_escaped_utf8(out, valid, lower);
                break;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                // SAFETY-free: `valid_up_to` guarantees this prefix is UTF-8.
                write_escaped_utf8(out, core::str::from_utf8(valid).unwrap_or_default(), lower);
                let bad = e.error_len().unwrap_or(after.len()).max(1);
                for &b in &after[..bad] {
                    write_latin1_byte(out, b);
                }
                rest = &after[bad..];
            }
        }
    }
}

fn write_escaped_utf8(out: &mut Vec<u8>, s: &str, lower: bool) {
    let copy = |out: &mut Vec<u8>, run: &[u8]| {
        if lower {
            out.extend(run.iter().map(u8::to_ascii_lowercase));
        } else {
            out.extend_from_slice(run);
        }
    };
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0x00..=0x1f | 0x7f => None,
            _ => continue,
        };
        copy(out, &bytes[start..i]);
        match escape {
            Some(e) => out.extend_from_slice(e),
            None => write_unicode_escape(out, b),
        }
        start = i + 1;
    }
    copy(out, &bytes[start..]);
}

/// A byte that is not part of valid UTF-8: U+00XX, written as the two UTF-8 bytes of
/// that character.
fn write_latin1_byte(out: &mut Vec<u8>, b: u8) {
    let mut tmp = [0u8; 4];
    out.extend_from_slice(char::from(b).encode_utf8(&mut tmp).as_bytes());
}

fn write_unicode_escape(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(b"\\u00");
    out.push(HEX[(b >> 4) as usize]);
    out.push(HEX[(b & 0xf) as usize]);
}

/// An upper bound of what [`write_str`] appends for `bytes`, in O(1): no byte takes more
/// than six (`\u00XX`), plus the quotes.
pub fn str_len_bound(bytes: &[u8]) -> usize {
    bytes.len().saturating_mul(6).saturating_add(2)
}

/// Exactly what [`write_str`] appends for `bytes` (quotes included), without writing it.
pub fn str_len(bytes: &[u8]) -> usize {
    body_prefix(bytes, usize::MAX).1 + 2
}

/// The longest prefix of `bytes` whose [`write_str`] takes at most `max` bytes, quotes
/// included: `(prefix length in bytes, what writing it takes)`. It is cut only between the
/// characters the writer reads (a whole UTF-8 sequence, or one byte outside valid UTF-8),
/// so it says a prefix of what the whole string says. With `max` below 2 (no room for the
/// quotes) the prefix is empty and still takes 2.
pub fn str_prefix_within(bytes: &[u8], max: usize) -> (usize, usize) {
    let (n, body) = body_prefix(bytes, max.saturating_sub(2));
    (n, body + 2)
}

/// The longest prefix of `bytes` whose string body (no quotes) takes at most `budget`
/// bytes: `(its length in bytes, its body length)`. Walks the bytes as `write_str_body` does.
fn body_prefix(bytes: &[u8], budget: usize) -> (usize, usize) {
    let (mut taken, mut used) = (0usize, 0usize);
    let mut rest = bytes;
    while !rest.is_empty() {
        let (valid, bad) = match core::str::from_utf8(rest) {
            Ok(valid) => (valid, 0),
            Err(e) => {
                let valid = core::str::from_utf8(&rest[..e.valid_up_to()]).unwrap_or_default();
                (valid, e.error_len().unwrap_or(rest.len() - e.valid_up_to()).max(1))
            }
        };
        for c in valid.chars() {
            let w = escaped_len(c);
            if used + w > budget {
                return (taken, used);
            }
            used += w;
            taken += c.len_utf8();
        }
        for &b in &rest[valid.len()..valid.len() + bad] {
            let w = char::from(b).len_utf8();
            if used + w > budget {
                return (taken, used);
            }
            used += w;
            taken += 1;
        }
        rest = &rest[valid.len() + bad..];
    }
    (taken, used)
}

/// What `write_escaped_utf8` writes for `c`.
fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' => 2,
        '\0'..='\x1f' | '\x7f' => 6,
        _ => c.len_utf8(),
    }
}

/// What a JSON parser reads back from `write_str(bytes)`: the reference for tests.
pub fn decode_like_writer(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        match core::str::from_utf8(rest) {
            Ok(valid) => {
                s.push_str(valid);
                break;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                s.push_str(core::str::from_utf8(valid).unwrap_or_default());
                let bad = e.error_len().unwrap_or(after.len()).max(1);
                s.extend(after[..bad].iter().map(|&b| char::from(b)));
                rest = &after[bad..];
            }
        }
    }
    s
}

/// Appends `{"name":"value"}` with both parts from raw bytes; names are lower-cased.
pub fn write_header_pair(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    write_header_pair_with(out, name, |out| write_str(out, value));
}

/// Appends `{"name":` + what `value` writes (one JSON value) + `}`; the name is lower-cased.
pub fn write_header_pair_with(out: &mut Vec<u8>, name: &[u8], value: impl FnOnce(&mut Vec<u8>)) {
    out.push(b'{');
    write_str_cased(out, name, true);
    out.push(b':');
    value(out);
    out.push(b'}');
}

/// Appends `"headers":[{"name":"value"},...]`, one object per header line, in order.
pub fn write_headers_field<N: AsRef<[u8]>, V: AsRef<[u8]>>(
    out: &mut Vec<u8>,
    headers: impl IntoIterator<Item = (N, V)>,
) {
    out.extend_from_slice(b"\"headers\":[");
    for (i, (name, value)) in headers.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_header_pair(out, name.as_ref(), value.as_ref());
    }
    out.push(b']');
}

/// Appends an unsigned integer.
pub fn write_uint(out: &mut Vec<u8>, n: u64) {
    let mut buf = [0u8; 20];
    out.extend_from_slice(decimal(n, &mut buf));
}

/// `n` in decimal digits, written at the end of `buf` (no allocation).
pub fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// Buffers larger than this are freed after use instead of kept (a rare huge payload does
/// not pin its memory in the worker for good).
pub const SCRATCH_KEEP: usize = 64 * 1024;

thread_local! {
    static SCRATCH: core::cell::RefCell<Vec<u8>> = const { core::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's reusable byte buffer, empty, and keeps its capacity for the
/// next call: building a payload allocates nothing once the buffer has grown to the size
/// payloads have. A nested call (the buffer is in use further up the stack) or a call
/// during thread exit gets a fresh `Vec` instead. Each shared object (each module) has its
/// own buffer; nginx runs a worker's requests on one thread, so it is never contended.
pub fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    let mut f = Some(f);
    let reused = SCRATCH.try_with(|cell| {
        let mut buf = cell.try_borrow_mut().ok()?;
        buf.clear();
        let r = (f.take()?)(&mut buf);
        if buf.capacity() > SCRATCH_KEEP {
            *buf = Vec::new();
        } else {
            buf.clear();
        }
        Some(r)
    });
    match (reused, f) {
        (Ok(Some(r)), _) => r,
        (_, Some(f)) => f(&mut Vec::new()),
        // `f` ran but gave no result: impossible (it is taken only where its result is kept).
        (_, None) => unreachable!("with_scratch: the closure ran without a result"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decimals() {
        let mut d = [0u8; 20];
        assert_eq!(decimal(0, &mut d), b"0");
        assert_eq!(decimal(1234567, &mut d), b"1234567");
        assert_eq!(decimal(u64::MAX, &mut d), u64::MAX.to_string().as_bytes());
    }

    fn as_json(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_str(&mut out, bytes);
        out
    }

    #[test]
    fn plain_ascii_is_kept() {
        assert_eq!(as_json(b"curl/8.5.0"), b"\"curl/8.5.0\"");
    }

    #[test]
    fn quotes_backslashes_and_controls_are_escaped() {
        assert_eq!(as_json(b"a\"b\\c\nd\x01\x7f"), b"\"a\\\"b\\\\c\\nd\\u0001\\u007f\"");
    }

    #[test]
    fn utf8_is_kept_and_invalid_bytes_read_as_latin1() {
        let json = as_json(b"caf\xc3\xa9 \xff\xfe end");
        let back: String = serde_json::from_slice(&json).expect("valid JSON");
        assert_eq!(back, "café \u{ff}\u{fe} end");
    }

    #[test]
    fn truncated_multibyte_sequence_at_the_end_is_kept() {
        let back: String = serde_json::from_slice(&as_json(b"ok\xe2\x82")).expect("valid JSON");
        assert_eq!(back, "ok\u{e2}\u{82}");
    }

    #[test]
    fn header_names_are_lowercased() {
        let mut out = Vec::new();
        write_header_pair(&mut out, b"X-Api-Key", b"K1");
        assert_eq!(out, b"{\"x-api-key\":\"K1\"}");
    }

    #[test]
    fn headers_field() {
        let mut out = Vec::new();
        write_headers_field(&mut out, [(b"A", b"1"), (b"a", b"2")]);
        assert_eq!(out, b"\"headers\":[{\"a\":\"1\"},{\"a\":\"2\"}]");
    }

    #[test]
    fn uints() {
        for n in [0u64, 7, 10, 52144, u64::MAX] {
            let mut out = Vec::new();
            write_uint(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }

    #[test]
    fn scratch_is_reused_and_nesting_gets_its_own_buffer() {
        let first = with_scratch(|b| {
            assert!(b.is_empty());
            b.extend_from_slice(&[1; 1000]);
            b.as_ptr() as usize
        });
        let (again, nested) = with_scratch(|b| {
            assert!(b.is_empty());
            assert!(b.capacity() >= 1000);
            b.push(1);
            let nested = with_scratch(|n| {
                assert!(n.is_empty());
                n.push(2);
                n.as_ptr() as usize
            });
            assert_eq!(b, &[1]);
            (b.as_ptr() as usize, nested)
        });
        assert_eq!(first, again);
        assert_ne!(again, nested);
        // a huge buffer is not kept
        with_scratch(|b| b.resize(SCRATCH_KEEP + 1, 0));
        with_scratch(|b| assert_eq!(b.capacity(), 0));
    }

    #[test]
    fn joined_strings() {
        let mut out = Vec::new();
        write_str_joined(&mut out, b"text/html", b"; charset=", b"utf-8");
        assert_eq!(out, b"\"text/html; charset=utf-8\"");
        let mut out = Vec::new();
        write_header_pair_with(&mut out, b"Content-Type", |o| write_str_joined(o, b"a\"", b"", b"\xff"));
        assert_eq!(out, "{\"content-type\":\"a\\\"\u{ff}\"}".as_bytes());
    }

    #[test]
    fn lengths_without_writing() {
        for bytes in [&b""[..], b"plain", b"a\"b\\c\nd\x01\x7f", b"caf\xc3\xa9 \xff\xfe", b"ok\xe2\x82"] {
            assert_eq!(str_len(bytes), as_json(bytes).len(), "{bytes:?}");
            assert!(str_len_bound(bytes) >= str_len(bytes));
        }
        // \x01 takes six, "é" two, an invalid byte two; never half a character
        assert_eq!(str_prefix_within(b"ab\x01c", 5), (2, 4));
        assert_eq!(str_prefix_within(b"ab\x01c", 10), (3, 10));
        assert_eq!(str_prefix_within(b"\xc3\xa9\xc3\xa9", 5), (2, 4));
        assert_eq!(str_prefix_within(b"\xff\xfe", 5), (1, 4));
        assert_eq!(str_prefix_within(b"abc", 1), (0, 2));
        assert_eq!(str_prefix_within(b"abc", usize::MAX), (3, 5));
    }

    proptest! {
        #[test]
        fn joined_is_write_str_of_the_concatenation(a in proptest::collection::vec(any::<u8>(), 0..20),
                                                    sep in proptest::collection::vec(any::<u8>(), 0..4),
                                                    b in proptest::collection::vec(any::<u8>(), 0..20)) {
            let mut joined = Vec::new();
            write_str_joined(&mut joined, &a, &sep, &b);
            prop_assert_eq!(joined, as_json(&[a.as_slice(), &sep, &b].concat()));
            let mut joined = Vec::new();
            write_str_joined(&mut joined, &a, b"; charset=", &b);
            prop_assert_eq!(joined, as_json(&[a.as_slice(), b"; charset=", &b].concat()));
        }

        #[test]
        fn any_bytes_give_json_that_parses_back(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let json = as_json(&bytes);
            let back: String = serde_json::from_slice(&json).expect("writer produced invalid JSON");
            prop_assert_eq!(back, decode_like_writer(&bytes));
        }

        #[test]
        fn prefixes_within_a_budget(bytes in proptest::collection::vec(any::<u8>(), 0..120), max in 0usize..800) {
            prop_assert_eq!(str_len(&bytes), as_json(&bytes).len());
            let (n, len) = str_prefix_within(&bytes, max);
            let json = as_json(&bytes[..n]);
            prop_assert_eq!(json.len(), len);
            prop_assert!(len <= max.max(2));
            // what the prefix says is a prefix of what the whole says
            let (part, whole) = (decode_like_writer(&bytes[..n]), decode_like_writer(&bytes));
            prop_assert!(whole.starts_with(&part), "{:?} / {:?}", part, whole);
            // and it is the longest: one more character would not fit
            if n < bytes.len() {
                let next = (n + 1..=bytes.len())
                    .find(|&k| decode_like_writer(&bytes[..k]).chars().count() > part.chars().count()
                        && whole.starts_with(&decode_like_writer(&bytes[..k])))
                    .unwrap_or(bytes.len());
                prop_assert!(as_json(&bytes[..next]).len() > max, "{} more bytes would fit", next - n);
            }
        }

        #[test]
        fn valid_utf8_round_trips_exactly(s in ".{0,100}") {
            let back: String = serde_json::from_slice(&as_json(s.as_bytes())).expect("valid JSON");
            prop_assert_eq!(back, s);
        }

        #[test]
        fn header_pairs_parse_as_one_pair_objects(name in proptest::collection::vec(any::<u8>(), 1..40),
                                                   value in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut out = Vec::new();
            write_header_pair(&mut out, &name, &value);
            let v: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
            let obj = v.as_object().expect("an object");
            prop_assert_eq!(obj.len(), 1);
            let (k, val) = obj.iter().next().expect("one pair");
            prop_assert_eq!(k, &decode_like_writer(&name.to_ascii_lowercase()));
            prop_assert_eq!(val.as_str().expect("a string"), decode_like_writer(&value));
        }
    }
}
