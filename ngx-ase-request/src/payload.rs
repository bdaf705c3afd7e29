//! The `POST /ase/request` body, built straight into one buffer from borrowed request
//! parts (see docs/protocol.md). Safe Rust; header bytes of any kind give valid JSON.
//!
//! Nothing here allocates but the output buffer: the headers are any cloneable iterator of
//! borrowed pairs (the handler walks nginx's header list in place, no `Vec` of pairs), and
//! [`build_into`] appends to a buffer the caller reuses.
//!
//! # What nginx routed by
//! The ASE must judge the request nginx serves, not another spelling of it: `url` is the
//! path nginx routed by with the query string ([`Url`]), and the `host` entry, first among
//! the headers, carries the host nginx routed by, in place of every `Host` line the client
//! sent (an absolute-form request line's host wins over the `Host` header in nginx).
//!
//! # The bound (`ase_request_max_size`)
//! A request's JSON can be far larger than the request (a control byte in a header value
//! takes six bytes as `\u00XX`), so the payload is held to a limit. A request whose
//! metadata fits is sent whole, its headers in the order received. One that does not is
//! sent *cut short*, and what is kept comes in this order:
//! 1. What identifies the request, never cut: `source_ip`, `source_port`, `method`,
//!    `http_version`, `user_info`, the `host` entry and every identity header line
//!    ([`IDENTITY`], and the names given with `ase_identity_header`). A client must not be
//!    able to push its own token out with padding. When these alone do not fit, nothing is
//!    built ([`Fit::IdentityTooLarge`]): the check is not sent and follows the fail mode.
//! 2. The `url`, whole if it fits, else cut to the room left (never inside an escape): the
//!    ASE matches APIs by path prefix. A cut URL leaves no room for other headers.
//! 3. The other header lines, as many as fit, smallest first: the largest are left out
//!    first (of equal sizes, the later one). Those kept are written in the order received.
//!
//! The output is valid JSON with every field of the protocol, never longer than the limit.
//! Checking costs nothing for the usual request: a string of `n` bytes takes at most
//! `6n + 2` ([`str_len_bound`]); only a payload that might not fit by that bound is measured
//! exactly, and only one that does not fit walks its headers more than once.

use ngx_ase_shared::header_names::is_listed;
use ngx_ase_shared::json::{decimal, str_len, str_len_bound, write_header_pair, write_str, write_uint};
pub use ngx_ase_shared::url::Url;

/// Header names (lower case) the ASE identifies clients by: kept whatever else is cut. The
/// ASE's API definitions name the API-key header; `ase_identity_header` adds others.
pub const IDENTITY: [&[u8]; 7] =
    [b"host", b"authorization", b"cookie", b"x-api-key", b"apikey", b"api-key", b"x-forwarded-for"];

/// The request's metadata. `H` yields every header line; it is walked once per
/// [`build_into`] (from a clone) when the payload fits, so an iterator over nginx's list
/// costs nothing to clone.
pub struct RequestMeta<'a, H = Vec<(&'a [u8], &'a [u8])>> {
    pub source_ip: &'a [u8],
    pub source_port: u16,
    pub method: &'a [u8],
    /// The path nginx routed by, and the query string.
    pub url: Url<'a>,
    /// `1.0`, `1.1`, `2.0` or `3.0`.
    pub http_version: &'a str,
    /// The host nginx routed by: the `host` entry, first, in place of every `Host` line.
    /// `None`: no such entry, and `Host` lines go as received.
    pub host: Option<&'a [u8]>,
    /// Every header line in order, as received.
    pub headers: H,
    /// More identity header names (`ase_identity_header`), packed as `header_names` makes them.
    pub identity: &'a [u8],
    /// `user_info`'s `username` (`ase_user`, `ase_user_header`), when known and not empty.
    pub username: Option<&'a [u8]>,
    /// `user_info`'s `client_id` (`ase_client_id`), when known and not empty.
    pub client_id: Option<&'a [u8]>,
}

/// How the payload came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// Everything, within the limit.
    Whole,
    /// Cut short (see the module's notes): the URL cut, or headers left out.
    Cut,
    /// What identifies the request does not fit in the limit: nothing was written.
    IdentityTooLarge,
}

pub use ngx_ase_shared::http::version_name as http_version_name;

/// The payload in a new buffer, at most `limit` bytes (tests, fuzzing; the handler uses
/// [`build_into`]), and how it came out.
pub fn build<'a, H>(meta: &RequestMeta<'a, H>, limit: usize) -> (Vec<u8>, Fit)
where
    H: IntoIterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    let mut out = Vec::new();
    let fit = build_into(&mut out, meta, limit);
    (out, fit)
}

const K_IP: &[u8] = b"{\"source_ip\":";
const K_PORT: &[u8] = b",\"source_port\":";
const K_METHOD: &[u8] = b",\"method\":";
const K_URL: &[u8] = b",\"url\":";
const K_VERSION: &[u8] = b",\"http_version\":";
const K_USER: &[u8] = b",\"user_info\":[{";
const K_USERNAME: &[u8] = b"\"username\":";
const K_CLIENT_ID: &[u8] = b"\"client_id\":";
const K_USER_END: &[u8] = b"}]";
const K_HEADERS: &[u8] = b",\"headers\":[";
const K_END: &[u8] = b"]}";
/// A header entry's bytes around its quoted name and value, `{` `:` `}`, and the comma
/// before it (counted for every entry: one byte more than written, which keeps sums simple).
const ENTRY_FRAME: usize = 4;

/// What a header entry takes (see [`ENTRY_FRAME`]).
fn entry_len(name: &[u8], value: &[u8]) -> usize {
    ENTRY_FRAME + str_len(name) + str_len(value)
}

fn entry_len_bound(name: &[u8], value: &[u8]) -> usize {
    ENTRY_FRAME.saturating_add(str_len_bound(name)).saturating_add(str_len_bound(value))
}

/// Which of the non-identity header lines a cut payload keeps: those of at most `upto`
/// bytes, and the first `next_count` of exactly `next` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Keep {
    upto: usize,
    next: usize,
    next_count: usize,
}

impl Keep {
    const ALL: Keep = Keep { upto: usize::MAX, next: 0, next_count: 0 };
    const NONE: Keep = Keep { upto: 0, next: 0, next_count: 0 };

    /// Whether a line of `size()` bytes is kept; `taken` counts the `next`-sized ones kept.
    fn admits(&self, size: impl FnOnce() -> usize, taken: &mut usize) -> bool {
        if *self == Keep::ALL {
            return true;
        }
        let size = size();
        if size <= self.upto {
            return true;
        }
        if size == self.next && *taken < self.next_count {
            *taken += 1;
            return true;
        }
        false
    }
}

/// A header line as the cutting sees it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Line {
    /// A `Host` line, replaced by the `host` entry.
    Host,
    Identity,
    Other,
}

impl<'a, H> RequestMeta<'a, H>
where
    H: IntoIterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    fn line(&self, name: &[u8]) -> Line {
        if self.host.is_some() && name.eq_ignore_ascii_case(b"host") {
            Line::Host
        } else if IDENTITY.iter().any(|n| n.eq_ignore_ascii_case(name)) || is_listed(self.identity, name) {
            Line::Identity
        } else {
            Line::Other
        }
    }

    /// The two `user_info` strings that are there.
    fn user_strings(&self) -> impl Iterator<Item = &'a [u8]> + use<'a, H> {
        self.username.into_iter().chain(self.client_id)
    }

    /// The fields before the headers, and the empty header list, but for the strings.
    fn frame(&self) -> usize {
        let user = match (self.username.is_some(), self.client_id.is_some()) {
            (false, false) => 0,
            (name, client) => {
                K_USER.len()
                    + K_USER_END.len()
                    + usize::from(name && client)
                    + if name { K_USERNAME.len() } else { 0 }
                    + if client { K_CLIENT_ID.len() } else { 0 }
            }
        };
        K_IP.len()
            + K_PORT.len()
            + K_METHOD.len()
            + K_URL.len()
            + K_VERSION.len()
            + K_HEADERS.len()
            + K_END.len()
            + decimal(u64::from(self.source_port), &mut [0; 20]).len()
            + str_len(self.http_version.as_bytes())
            + user
    }

    /// An upper bound of the whole payload, in O(number of headers).
    fn whole_len_bound(&self) -> usize {
        let strings = [self.source_ip, self.method].into_iter().chain(self.user_strings()).map(str_len_bound);
        let entries = self.headers.clone().into_iter().map(|(n, v)| entry_len_bound(n, v));
        let host = self.host.map_or(0, |h| entry_len_bound(b"host", h));
        strings.chain(entries).fold(self.frame() + self.url.json_len_bound() + host, usize::saturating_add)
    }

    /// The fields before the headers, exactly, with a URL of `url_len` bytes.
    fn fields_len(&self, url_len: usize) -> usize {
        let strings: usize = [self.source_ip, self.method].into_iter().chain(self.user_strings()).map(str_len).sum();
        self.frame() + strings + url_len
    }

    /// The `host` entry and the header lines `keep` takes (each with its comma).
    fn entries_len(&self, mut keep: impl FnMut(Line) -> bool) -> usize {
        let host = self.host.map_or(0, |h| entry_len(b"host", h));
        let lines = self.headers.clone().into_iter().filter(|(n, _)| keep(self.line(n)));
        host + lines.map(|(n, v)| entry_len(n, v)).sum::<usize>()
    }

    /// The sizes of the lines that may be cut.
    fn other_sizes(&self) -> impl Iterator<Item = usize> + use<'_, 'a, H> {
        let others = self.headers.clone().into_iter().filter(|(n, _)| self.line(n) == Line::Other);
        others.map(|(n, v)| entry_len(n, v))
    }

    /// The most of the other lines that fit in `room`, smallest first: the largest `upto` whose
    /// lines all fit (a binary search over sizes, with no list of them), then as many of the
    /// next size as still fit.
    fn smallest_first(&self, room: usize) -> Keep {
        let within = |t: usize| self.other_sizes().filter(|&s| s <= t).sum::<usize>();
        let (mut lo, mut hi) = (0, self.other_sizes().max().unwrap_or(0));
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if within(mid) <= room {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        let left = room.saturating_sub(within(lo));
        match self.other_sizes().filter(|&s| s > lo).min() {
            Some(next) => Keep { upto: lo, next, next_count: left / next },
            None => Keep { upto: lo, ..Keep::NONE },
        }
    }

    fn write(&self, out: &mut Vec<u8>, url: Url<'_>, keep: Keep) {
        out.extend_from_slice(K_IP);
        write_str(out, self.source_ip);
        out.extend_from_slice(K_PORT);
        write_uint(out, u64::from(self.source_port));
        out.extend_from_slice(K_METHOD);
        write_str(out, self.method);
        out.extend_from_slice(K_URL);
        url.write_json(out);
        out.extend_from_slice(K_VERSION);
        write_str(out, self.http_version.as_bytes());
        if self.username.is_some() || self.client_id.is_some() {
            out.extend_from_slice(K_USER);
            if let Some(name) = self.username {
                out.extend_from_slice(K_USERNAME);
                write_str(out, name);
            }
            if let Some(client) = self.client_id {
                if self.username.is_some() {
                    out.push(b',');
                }
                out.extend_from_slice(K_CLIENT_ID);
                write_str(out, client);
            }
            out.extend_from_slice(K_USER_END);
        }
        out.extend_from_slice(K_HEADERS);
        let mut first = true;
        let mut entry = |out: &mut Vec<u8>, name: &[u8], value: &[u8]| {
            if !first {
                out.push(b',');
            }
            first = false;
            write_header_pair(out, name, value);
        };
        if let Some(host) = self.host {
            entry(out, b"host", host);
        }
        let mut taken = 0;
        for (name, value) in self.headers.clone() {
            let kept = if keep == Keep::ALL {
                // The usual case: only `Host` lines are told apart, the rest all go.
                self.host.is_none() || !name.eq_ignore_ascii_case(b"host")
            } else {
                match self.line(name) {
                    Line::Host => false,
                    Line::Identity => true,
                    Line::Other => keep.admits(|| entry_len(name, value), &mut taken),
                }
            };
            if kept {
                entry(out, name, value);
            }
        }
        out.extend_from_slice(K_END);
    }
}

/// Appends the payload to `out`: at most `limit` bytes of it (see the module's notes for
/// what is left out first), or nothing when what identifies the request does not fit.
pub fn build_into<'a, H>(out: &mut Vec<u8>, meta: &RequestMeta<'a, H>, limit: usize) -> Fit
where
    H: IntoIterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    // The usual case: even at six bytes a byte, everything fits. (One comma too many is
    // counted with the entries; the exact length is one less when there is any.)
    let fits = || {
        let entries = meta.entries_len(|l| l != Line::Host);
        meta.fields_len(meta.url.json_len()) + entries - usize::from(entries > 0) <= limit
    };
    if meta.whole_len_bound() <= limit || fits() {
        meta.write(out, meta.url, Keep::ALL);
        return Fit::Whole;
    }
    let core = meta.fields_len(2) + meta.entries_len(|l| l == Line::Identity);
    if core > limit {
        return Fit::IdentityTooLarge;
    }
    let (url, url_len) = meta.url.prefix_within(limit - core + 2);
    let room = limit - (core - 2 + url_len);
    let keep = if url == meta.url { meta.smallest_first(room) } else { Keep::NONE };
    meta.write(out, url, keep);
    Fit::Cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::{DEFAULT_MAX_SIZE, MIN_MAX_SIZE};
    use ngx_ase_shared::json::decode_like_writer;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    fn meta<'a>(headers: Vec<(&'a [u8], &'a [u8])>) -> RequestMeta<'a> {
        RequestMeta {
            source_ip: b"203.0.113.7",
            source_port: 52144,
            method: b"GET",
            url: Url::split(b"/shop/items?id=7&sort=asc"),
            http_version: "1.1",
            host: None,
            headers,
            identity: b"",
            username: None,
            client_id: None,
        }
    }

    fn json_of(m: &RequestMeta<'_>, limit: usize) -> (Value, Fit) {
        let (out, fit) = build(m, limit);
        (serde_json::from_slice(&out).expect("valid JSON"), fit)
    }

    fn names(v: &Value) -> Vec<String> {
        let hs = v["headers"].as_array().expect("headers");
        hs.iter().map(|h| h.as_object().and_then(|o| o.keys().next().cloned()).expect("one pair")).collect()
    }

    #[test]
    fn matches_the_protocol_example() {
        let m = meta(vec![(b"Host", b"shop.example.com"), (b"Accept", b"text/html"), (b"accept", b"application/json")]);
        let (v, fit) = json_of(&m, usize::MAX);
        assert_eq!(fit, Fit::Whole);
        assert_eq!(
            v,
            json!({
                "source_ip": "203.0.113.7", "source_port": 52144, "method": "GET",
                "url": "/shop/items?id=7&sort=asc", "http_version": "1.1",
                "headers": [{"host": "shop.example.com"}, {"accept": "text/html"}, {"accept": "application/json"}]
            })
        );
    }

    #[test]
    fn the_routed_host_comes_first_in_place_of_every_host_line() {
        let lines: Vec<(&[u8], &[u8])> = vec![(b"Accept", b"*/*"), (b"Host", b"decoy.example"), (b"HOST", b"x")];
        let m = RequestMeta { host: Some(b"shop.example"), ..meta(lines) };
        let (v, _) = json_of(&m, usize::MAX);
        assert_eq!(v["headers"], json!([{"host": "shop.example"}, {"accept": "*/*"}]));
        // without a routed host, the lines go as received
        let m = RequestMeta { host: None, ..m };
        assert_eq!(names(&json_of(&m, usize::MAX).0), ["accept", "host", "host"]);
    }

    #[test]
    fn the_url_is_what_nginx_routed_by_escaped_again() {
        let m = RequestMeta { url: Url { path: b"//api/a?b c", args: b"k=%20" }, ..meta(vec![]) };
        assert_eq!(json_of(&m, usize::MAX).0["url"], "/api/a%3Fb%20c?k=%20");
    }

    #[test]
    fn user_info_only_when_known() {
        let mut m = meta(vec![]);
        assert!(json_of(&m, usize::MAX).0.get("user_info").is_none());
        m.username = Some(b"alice");
        assert_eq!(json_of(&m, usize::MAX).0["user_info"], json!([{"username": "alice"}]));
        m.client_id = Some(b"app-7\"");
        assert_eq!(json_of(&m, usize::MAX).0["user_info"], json!([{"username": "alice", "client_id": "app-7\""}]));
        m.username = None;
        assert_eq!(json_of(&m, usize::MAX).0["user_info"], json!([{"client_id": "app-7\""}]));
        // user_info sits between http_version and headers, as in docs/protocol.md
        let text = String::from_utf8(build(&m, usize::MAX).0).unwrap();
        assert!(
            text.find("\"http_version\"") < text.find("\"user_info\"")
                && text.find("\"user_info\"") < text.find("\"headers\"")
        );
    }

    #[test]
    fn build_into_appends_the_same_bytes_from_any_header_iterator() {
        let pairs: [(&[u8], &[u8]); 3] = [(b"Host", b"h"), (b"X-A", b"\xff\""), (b"Cookie", b"c=1")];
        let m = RequestMeta { host: Some(b"h"), ..meta(pairs.to_vec()) };
        for limit in [usize::MAX, 150] {
            let expected = build(&m, limit);
            let lazy = RequestMeta {
                source_ip: m.source_ip,
                source_port: m.source_port,
                method: m.method,
                url: m.url,
                http_version: m.http_version,
                host: m.host,
                headers: pairs.iter().copied(),
                identity: b"",
                username: None,
                client_id: None,
            };
            let mut out = b"old".to_vec();
            assert_eq!(build_into(&mut out, &lazy, limit), expected.1);
            assert_eq!(&out[..3], b"old");
            assert_eq!(&out[3..], &expected.0[..]);
        }
    }

    #[test]
    fn building_into_the_scratch_buffer_allocates_nothing_once_warm() {
        let pairs: Vec<(&[u8], &[u8])> =
            (0..30).map(|_| (&b"X-Header-Name"[..], &b"some value \xff\" here"[..])).collect();
        let fill = vec![1u8; 3000];
        let mut cut = pairs.clone();
        cut.extend([(&b"X-Fill"[..], &fill[..]), (b"Authorization", b"Bearer t"), (b"X-Fill-2", &fill[..])]);
        let run = |pairs: &[(&[u8], &[u8])], limit| {
            let m = RequestMeta {
                source_ip: b"203.0.113.7",
                source_port: 52144,
                method: b"GET",
                url: Url::split(b"/shop/items?id=7&sort=asc"),
                http_version: "1.1",
                host: Some(b"shop.example"),
                headers: pairs.iter().copied(),
                identity: b"x-session ",
                username: Some(&b"alice"[..]),
                client_id: Some(&b"app"[..]),
            };
            ngx_ase_shared::json::with_scratch(|buf| build_into(buf, &m, limit))
        };
        for (lines, limit, fit) in [(&pairs, DEFAULT_MAX_SIZE, Fit::Whole), (&cut, 8 * 1024, Fit::Cut)] {
            assert_eq!(run(lines, limit), fit);
            assert_eq!(counting::allocations(|| assert_eq!(run(lines, limit), fit)), 0, "{fit:?}");
        }
        // the counter does count
        assert!(counting::allocations(|| drop(std::hint::black_box(vec![1u8; 8]))) > 0);
    }

    // Counts this thread's heap allocations (the test harness allocates on other threads).
    use ngx_ase_shared::alloc_count as counting;
    #[global_allocator]
    static COUNTING: counting::Counting = counting::Counting;

    fn is_identity(m: &RequestMeta<'_>, name: &[u8]) -> bool {
        IDENTITY.iter().any(|n| n.eq_ignore_ascii_case(name)) || is_listed(m.identity, name)
    }

    /// The payload built with `limit`, checked against the whole one and the rules of the
    /// module's notes; returns (parsed, how it came out).
    fn check_bounded(m: &RequestMeta<'_>, limit: usize) -> (Value, Fit) {
        let (whole, fit) = build(m, usize::MAX);
        assert_eq!(fit, Fit::Whole);
        let (out, fit) = build(m, limit);
        if fit == Fit::IdentityTooLarge {
            assert!(out.is_empty());
            return (Value::Null, fit);
        }
        let v: Value = serde_json::from_slice(&out).expect("valid JSON");
        assert!(out.len() <= limit, "{} bytes for a limit of {limit}", out.len());
        if fit == Fit::Whole {
            assert_eq!(out, whole);
            return (v, fit);
        }
        assert!(whole.len() > limit, "cut short, but the whole takes {}", whole.len());
        let all: Value = serde_json::from_slice(&whole).unwrap();
        for key in ["source_ip", "source_port", "method", "http_version", "user_info"] {
            assert_eq!(v.get(key), all.get(key), "{key}");
        }
        let (url, of) = (v["url"].as_str().unwrap(), all["url"].as_str().unwrap());
        assert!(of.starts_with(url), "{url:?} is not a prefix of {of:?}");
        // The host entry, then a subsequence of the lines, identity lines all there.
        let sent = v["headers"].as_array().unwrap();
        let mut next = 0;
        if let Some(host) = m.host {
            assert_eq!(sent[0], json!({"host": decode_like_writer(host)}));
            next = 1;
        }
        let (mut kept, mut dropped) = (Vec::new(), Vec::new());
        for (i, &(name, value)) in m.headers.iter().enumerate() {
            if m.host.is_some() && name.eq_ignore_ascii_case(b"host") {
                continue;
            }
            let pair = json!({decode_like_writer(&name.to_ascii_lowercase()): decode_like_writer(value)});
            let here = sent.get(next) == Some(&pair);
            if here {
                next += 1;
            }
            match (is_identity(m, name), here) {
                (true, _) => assert!(here, "identity line {:?} left out", String::from_utf8_lossy(name)),
                (false, true) => kept.push((entry_len(name, value), i)),
                (false, false) => dropped.push((entry_len(name, value), i)),
            }
        }
        assert_eq!(next, sent.len(), "headers not in the order received, or not the client's");
        if url != of {
            assert!(kept.is_empty(), "a cut URL leaves no room for other headers");
        } else {
            // largest first: each dropped line is larger than each kept one, or as large and later
            for &(ds, di) in &dropped {
                assert!(kept.iter().all(|&(ks, ki)| ks < ds || (ks == ds && ki < di)), "{kept:?} {dropped:?}");
            }
            // and no more could be kept
            if let Some(&(smallest, _)) = dropped.iter().min() {
                assert!(out.len() + smallest >= limit, "{} + {smallest} fits in {limit}", out.len());
            }
        }
        (v, fit)
    }

    fn controls(n: usize) -> Vec<u8> {
        vec![1u8; n]
    }

    #[test]
    fn a_payload_that_fits_is_sent_whole_up_to_its_own_length() {
        let m = RequestMeta {
            username: Some(&b"alice"[..]),
            host: Some(b"h"),
            ..meta(vec![(b"Host", b"h"), (b"X-A", b"\x01\xff\""), (b"X-B", b"b")])
        };
        let (whole, _) = build(&m, usize::MAX);
        assert_eq!(build(&m, whole.len()), (whole.clone(), Fit::Whole));
        let (v, fit) = check_bounded(&m, whole.len() - 1);
        assert_eq!(fit, Fit::Cut);
        assert_eq!(v["headers"], json!([{"host": "h"}, {"x-b": "b"}]), "the larger header left out");
        assert_eq!(v["user_info"], json!([{"username": "alice"}]));
    }

    #[test]
    fn padding_cannot_push_the_identity_out() {
        // the request: two 7,000-byte headers of control bytes before the token
        let pad = controls(7000);
        let lines: Vec<(&[u8], &[u8])> = vec![
            (b"Host", b"a"),
            (b"X-Pad-1", &pad),
            (b"X-Small", b"s"),
            (b"X-Pad-2", &pad),
            (b"Authorization", b"Bearer denied"),
            (b"X-Session", b"s-1"),
            (b"Cookie", b"JSESSIONID=x"),
        ];
        let m = RequestMeta { host: Some(b"a"), identity: b"x-session ", ..meta(lines) };
        let (v, fit) = check_bounded(&m, DEFAULT_MAX_SIZE);
        assert_eq!(fit, Fit::Cut);
        assert_eq!(names(&v), ["host", "x-pad-1", "x-small", "authorization", "x-session", "cookie"]);
        let (v, _) = check_bounded(&m, 8 * 1024);
        assert_eq!(names(&v), ["host", "x-small", "authorization", "x-session", "cookie"]);
    }

    #[test]
    fn an_identity_that_does_not_fit_builds_nothing() {
        let cookie = controls(1000);
        let m = RequestMeta { host: Some(b"a"), ..meta(vec![(b"Cookie", &cookie), (b"X-A", b"a")]) };
        let mut out = b"old".to_vec();
        assert_eq!(build_into(&mut out, &m, 4096), Fit::IdentityTooLarge);
        assert_eq!(out, b"old");
        assert_eq!(check_bounded(&m, 8192).1, Fit::Whole);
        // the operator's own names count, in any case
        let m = RequestMeta { identity: b"x-session ", ..meta(vec![(b"X-SESSION", &cookie)]) };
        assert_eq!(build(&m, 4096).1, Fit::IdentityTooLarge);
        // as do user_info and absurd fields
        let m = RequestMeta { username: Some(&cookie), ..meta(vec![]) };
        assert_eq!(build(&m, 4096).1, Fit::IdentityTooLarge);
        let m = RequestMeta { method: &cookie, ..meta(vec![]) };
        assert_eq!(build(&m, 4096).1, Fit::IdentityTooLarge);
    }

    #[test]
    fn headers_that_do_not_fit_are_left_out_largest_first() {
        // 8 fillers of 4000 control bytes (24 016 bytes each), and a few small lines between
        let fill = controls(4000);
        let names_: Vec<String> = (0..8).map(|i| format!("X-Fill-{i}")).collect();
        let mut hs: Vec<(&[u8], &[u8])> = vec![(b"Host", b"shop.example.com")];
        for (i, n) in names_.iter().enumerate() {
            hs.push((n.as_bytes(), fill.as_slice()));
            if i % 3 == 0 {
                hs.push((b"Accept", b"*/*"));
            }
        }
        let m = RequestMeta { host: Some(b"shop.example.com"), ..meta(hs) };
        for (limit, fillers) in [(MIN_MAX_SIZE, 0), (8 * 1024, 0), (DEFAULT_MAX_SIZE, 2), (100_000, 4)] {
            let (v, fit) = check_bounded(&m, limit);
            assert_eq!(fit, Fit::Cut);
            assert_eq!(v["url"], "/shop/items?id=7&sort=asc");
            let sent = names(&v);
            assert_eq!(sent.iter().filter(|n| *n == "accept").count(), 3, "small lines kept at {limit}");
            let expected: Vec<String> = (0..fillers).map(|i| format!("x-fill-{i}")).collect();
            let got: Vec<String> = sent.into_iter().filter(|n| n.starts_with("x-fill")).collect();
            assert_eq!(got, expected, "the earliest of equal size kept, at {limit}");
        }
    }

    #[test]
    fn a_huge_url_is_cut_after_the_identity() {
        let path = [&b"/api/"[..], "\u{e9}".repeat(5000).as_bytes()].concat();
        let m = RequestMeta {
            url: Url { path: &path, args: b"" },
            username: Some(&b"alice"[..]),
            host: Some(b"h"),
            ..meta(vec![(b"Host", b"h"), (b"Cookie", b"c=1"), (b"Accept", b"a")])
        };
        let (v, fit) = check_bounded(&m, MIN_MAX_SIZE);
        assert_eq!(fit, Fit::Cut);
        let got = v["url"].as_str().unwrap();
        assert!(got.starts_with("/api/%C3%A9") && got.len() > 800, "{got}");
        assert_eq!(v["headers"], json!([{"host": "h"}, {"cookie": "c=1"}]));
        assert_eq!(v["user_info"], json!([{"username": "alice"}]));
        assert!(build(&m, MIN_MAX_SIZE).0.len() >= MIN_MAX_SIZE - 3, "the URL takes the room there is");
    }

    proptest! {
        #[test]
        fn any_header_bytes_give_json_that_parses_back(
            headers in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 1..20),
                                                  proptest::collection::vec(any::<u8>(), 0..60)), 0..20),
            path in proptest::collection::vec(any::<u8>(), 0..80),
            host in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20))) {
            let hs: Vec<(&[u8], &[u8])> = headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())).collect();
            let mut m = meta(hs);
            m.url = Url { path: &path, args: b"a=1" };
            m.host = host.as_deref();
            let v: Value = serde_json::from_slice(&build(&m, usize::MAX).0).expect("valid JSON");
            let got = v["headers"].as_array().expect("headers array");
            let expected: Vec<&(Vec<u8>, Vec<u8>)> =
                headers.iter().filter(|(n, _)| host.is_none() || !n.eq_ignore_ascii_case(b"host")).collect();
            prop_assert_eq!(got.len(), expected.len() + usize::from(host.is_some()));
            for ((name, value), pair) in expected.into_iter().zip(&got[usize::from(host.is_some())..]) {
                let obj = pair.as_object().expect("object");
                let expected_name = decode_like_writer(&name.to_ascii_lowercase());
                let expected_value = decode_like_writer(value);
                prop_assert_eq!(obj.get(&expected_name).and_then(Value::as_str), Some(expected_value.as_str()));
            }
            let mut url = Vec::new();
            m.url.write_json(&mut url);
            let url: Option<String> = serde_json::from_slice(&url).ok();
            prop_assert_eq!(v["url"].as_str(), url.as_deref());
        }
    }

    proptest! {
        #[test]
        fn a_bounded_payload_keeps_the_identity_and_cuts_the_largest_first(
            headers in proptest::collection::vec((prop_oneof![
                                                      Just(b"Authorization".to_vec()), Just(b"cookie".to_vec()),
                                                      Just(b"Host".to_vec()), Just(b"X-Session".to_vec()),
                                                      proptest::collection::vec(any::<u8>(), 1..20)],
                                                  proptest::collection::vec(any::<u8>(), 0..300)), 0..24),
            path in proptest::collection::vec(any::<u8>(), 0..1500),
            method in proptest::collection::vec(any::<u8>(), 1..12),
            host in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
            username in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..400)),
            client_id in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
            limit in prop_oneof![MIN_MAX_SIZE..6000usize, 0..MIN_MAX_SIZE]) {
            let hs: Vec<(&[u8], &[u8])> = headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())).collect();
            let m = RequestMeta {
                url: Url { path: &path, args: b"" },
                method: &method,
                host: host.as_deref(),
                identity: b"x-session ",
                username: username.as_deref(),
                client_id: client_id.as_deref(),
                ..meta(hs)
            };
            let (_, fit) = check_bounded(&m, limit);
            let whole = build(&m, usize::MAX).0;
            prop_assert_eq!(fit == Fit::Whole, whole.len() <= limit);
        }
    }
}
