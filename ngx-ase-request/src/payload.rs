//! The `POST /ase/request` body, built straight into one buffer from borrowed request
//! parts (see docs/protocol.md). Safe Rust; header bytes of any kind give valid JSON.
//!
//! Nothing here allocates but the output buffer: the headers are any cloneable iterator of
//! borrowed pairs (the handler walks nginx's header list in place, no `Vec` of pairs), and
//! [`build_into`] appends to a buffer the caller reuses.
//!
//! # The bound (`ase_request_max_size`)
//! A request's JSON can be far larger than the request (a control byte in a header value
//! takes six bytes as `\u00XX`), so the payload is held to a limit. A request whose
//! metadata fits is sent whole. One that does not is sent *cut short*, and [`build_into`]
//! says so:
//! - `source_ip`, `source_port`, `method`, `url`, `http_version` and `user_info` come
//!   first, then as many header lines as fit, in order, each one whole: the headers sent are
//!   always the first ones the client sent, and the rest are left out.
//! - When those fields alone do not fit (a huge URL), the URL is cut at a character
//!   boundary to the room the other fields leave (no header is sent then): the ASE still
//!   sees the path, which names the API. Should even an empty URL not fit, `user_info` is
//!   left out (never a cut name), then `method` and `source_ip` are cut. With the smallest
//!   limit the directive allows (`conf::MIN_MAX_SIZE`, 1k) only an absurd method or username gets
//!   that far.
//! - The output is always valid JSON with every field of the protocol, and never longer
//!   than the limit once the limit holds the skeleton (every string empty, about 100 bytes),
//!   which every limit from `conf::MIN_MAX_SIZE` does.
//!
//! Checking costs nothing for the usual request: a string of `n` bytes takes at most
//! `6n + 2` ([`str_len_bound`]); only a field or header that might not fit by that bound is
//! measured exactly.

use ngx_ase_shared::json::{
    decimal, str_len, str_len_bound, str_prefix_within, write_header_pair, write_str, write_uint,
};

/// The request's metadata. `H` yields every header line; it is walked once per
/// [`build_into`] (from a clone), so an iterator over nginx's list costs nothing to clone.
pub struct RequestMeta<'a, H = Vec<(&'a [u8], &'a [u8])>> {
    pub source_ip: &'a [u8],
    pub source_port: u16,
    pub method: &'a [u8],
    /// Path and query as the client sent them.
    pub url: &'a [u8],
    /// `1.0`, `1.1`, `2.0` or `3.0`.
    pub http_version: &'a str,
    /// Every header line in order, as received.
    pub headers: H,
    /// `user_info`'s `username` (`ase_user`, `ase_user_header`), when known and not empty.
    pub username: Option<&'a [u8]>,
    /// `user_info`'s `client_id` (`ase_client_id`), when known and not empty.
    pub client_id: Option<&'a [u8]>,
}

impl<H> RequestMeta<'_, H> {
    /// Whether the payload has a `user_info` (one object with the keys that are known).
    fn has_user_info(&self) -> bool {
        self.username.is_some() || self.client_id.is_some()
    }

    /// The two `user_info` strings that are there.
    fn user_strings(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.username.into_iter().chain(self.client_id)
    }

    /// `user_info`'s bytes but for its strings.
    fn user_frame(&self) -> usize {
        if !self.has_user_info() {
            return 0;
        }
        let both = self.username.is_some() && self.client_id.is_some();
        K_USER.len()
            + K_USER_END.len()
            + usize::from(both)
            + self.username.map_or(0, |_| K_USERNAME.len())
            + self.client_id.map_or(0, |_| K_CLIENT_ID.len())
    }
}

pub use ngx_ase_shared::http::version_name as http_version_name;

/// The payload in a new buffer, at most `limit` bytes (tests, fuzzing; the handler uses
/// [`build_into`]), and whether it was cut short.
pub fn build<'a, H>(meta: &RequestMeta<'a, H>, limit: usize) -> (Vec<u8>, bool)
where
    H: IntoIterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    let mut out = Vec::new();
    let truncated = build_into(&mut out, meta, limit);
    (out, truncated)
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
/// A header entry's bytes around its quoted name and value: `,{` `:` `}` (no comma before
/// the first).
const PAIR_FRAME: usize = 4;

/// The fields before the headers as they will be written: each string possibly cut.
struct Fixed<'a> {
    source_ip: &'a [u8],
    method: &'a [u8],
    url: &'a [u8],
    /// Whether `user_info` is written (whole, or not at all).
    user_info: bool,
    truncated: bool,
}

fn digits(n: u16) -> usize {
    decimal(u64::from(n), &mut [0; 20]).len()
}

/// Decides what of the fields before the headers fits in `limit` (with an empty header
/// list after them).
fn fit_fixed<'a, H>(meta: &RequestMeta<'a, H>, limit: usize) -> Fixed<'a> {
    let frame = K_IP.len()
        + K_PORT.len()
        + K_METHOD.len()
        + K_URL.len()
        + K_VERSION.len()
        + K_HEADERS.len()
        + K_END.len()
        + digits(meta.source_port)
        + str_len(meta.http_version.as_bytes());
    let whole = Fixed {
        source_ip: meta.source_ip,
        method: meta.method,
        url: meta.url,
        user_info: meta.has_user_info(),
        truncated: false,
    };
    // The usual case, in O(1): even at six bytes a byte, everything fits.
    let bound = [meta.source_ip, meta.method, meta.url]
        .into_iter()
        .chain(meta.user_strings())
        .fold(frame + meta.user_frame(), |sum, s| sum.saturating_add(str_len_bound(s)));
    if bound <= limit {
        return whole;
    }
    let (ip, method, url) = (str_len(meta.source_ip), str_len(meta.method), str_len(meta.url));
    let user = meta.user_frame() + meta.user_strings().map(str_len).sum::<usize>();
    if frame + ip + method + url + user <= limit {
        return whole;
    }
    let mut cut = Fixed { truncated: true, ..whole };
    // The URL gets the room the rest leaves; when the rest leaves not even "", the
    // user_info goes first, whole.
    let mut rest = frame + ip + method + user;
    if rest + 2 > limit && cut.user_info {
        cut.user_info = false;
        rest -= user;
    }
    let (n, url_len) = str_prefix_within(meta.url, limit.saturating_sub(rest));
    cut.url = &meta.url[..n];
    rest += url_len;
    // Then the method, then the client address (only for absurd values).
    if rest > limit {
        let (n, len) = str_prefix_within(meta.method, limit.saturating_sub(rest - method));
        cut.method = &meta.method[..n];
        rest = rest - method + len;
    }
    if rest > limit {
        let (n, _) = str_prefix_within(meta.source_ip, limit.saturating_sub(rest - ip));
        cut.source_ip = &meta.source_ip[..n];
    }
    cut
}

/// Appends the payload to `out`: at most `limit` bytes of it (see the module's notes for
/// what is left out first). Returns whether it was cut short.
pub fn build_into<'a, H>(out: &mut Vec<u8>, meta: &RequestMeta<'a, H>, limit: usize) -> bool
where
    H: IntoIterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    let start = out.len();
    let fixed = fit_fixed(meta, limit);
    out.extend_from_slice(K_IP);
    write_str(out, fixed.source_ip);
    out.extend_from_slice(K_PORT);
    write_uint(out, u64::from(meta.source_port));
    out.extend_from_slice(K_METHOD);
    write_str(out, fixed.method);
    out.extend_from_slice(K_URL);
    write_str(out, fixed.url);
    out.extend_from_slice(K_VERSION);
    write_str(out, meta.http_version.as_bytes());
    if fixed.user_info {
        out.extend_from_slice(K_USER);
        if let Some(name) = meta.username {
            out.extend_from_slice(K_USERNAME);
            write_str(out, name);
        }
        if let Some(client) = meta.client_id {
            if meta.username.is_some() {
                out.push(b',');
            }
            out.extend_from_slice(K_CLIENT_ID);
            write_str(out, client);
        }
        out.extend_from_slice(K_USER_END);
    }
    out.extend_from_slice(K_HEADERS);
    let mut truncated = fixed.truncated;
    // What the header entries may take: the limit less what is written and the closing `]}`.
    let mut room = limit.saturating_sub(out.len() - start + K_END.len());
    for (i, (name, value)) in meta.headers.clone().into_iter().enumerate() {
        let bound = PAIR_FRAME.saturating_add(str_len_bound(name)).saturating_add(str_len_bound(value));
        if bound > room {
            let exact = PAIR_FRAME - usize::from(i == 0) + str_len(name) + str_len(value);
            if exact > room {
                truncated = true;
                break;
            }
        }
        let before = out.len();
        if i > 0 {
            out.push(b',');
        }
        write_header_pair(out, name, value);
        room -= out.len() - before;
    }
    out.extend_from_slice(K_END);
    truncated
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::{DEFAULT_MAX_SIZE, MIN_MAX_SIZE};
    use proptest::prelude::*;
    use serde_json::{json, Value};

    fn meta<'a>(headers: Vec<(&'a [u8], &'a [u8])>) -> RequestMeta<'a> {
        RequestMeta {
            source_ip: b"203.0.113.7",
            source_port: 52144,
            method: b"GET",
            url: b"/shop/items?id=7&sort=asc",
            http_version: "1.1",
            headers,
            username: None,
            client_id: None,
        }
    }

    #[test]
    fn matches_the_protocol_example() {
        let m = meta(vec![(b"Host", b"shop.example.com"), (b"Accept", b"text/html"), (b"accept", b"application/json")]);
        let v: Value = serde_json::from_slice(&build(&m, usize::MAX).0).unwrap();
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
    fn user_info_only_when_known() {
        let mut m = meta(vec![]);
        assert!(!String::from_utf8(build(&m, usize::MAX).0).unwrap().contains("user_info"));
        m.username = Some(b"alice");
        let v: Value = serde_json::from_slice(&build(&m, usize::MAX).0).unwrap();
        assert_eq!(v["user_info"], json!([{"username": "alice"}]));
        m.client_id = Some(b"app-7\"");
        let v: Value = serde_json::from_slice(&build(&m, usize::MAX).0).unwrap();
        assert_eq!(v["user_info"], json!([{"username": "alice", "client_id": "app-7\""}]));
        m.username = None;
        let v: Value = serde_json::from_slice(&build(&m, usize::MAX).0).unwrap();
        assert_eq!(v["user_info"], json!([{"client_id": "app-7\""}]));
        // user_info sits between http_version and headers, as in docs/protocol.md
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert!(keys.contains(&&"user_info".to_string()));
        let text = String::from_utf8(build(&m, usize::MAX).0).unwrap();
        assert!(
            text.find("\"http_version\"") < text.find("\"user_info\"")
                && text.find("\"user_info\"") < text.find("\"headers\"")
        );
    }

    #[test]
    fn build_into_appends_the_same_bytes_from_any_header_iterator() {
        let pairs: [(&[u8], &[u8]); 2] = [(b"Host", b"h"), (b"X-A", b"\xff\"")];
        let m = meta(pairs.to_vec());
        let expected = build(&m, usize::MAX).0;
        let lazy = RequestMeta {
            source_ip: m.source_ip,
            source_port: m.source_port,
            method: m.method,
            url: m.url,
            http_version: m.http_version,
            headers: pairs.iter().copied(),
            username: None,
            client_id: None,
        };
        let mut out = b"old".to_vec();
        assert!(!build_into(&mut out, &lazy, usize::MAX));
        assert_eq!(&out[..3], b"old");
        assert_eq!(&out[3..], &expected[..]);
    }

    #[test]
    fn building_into_the_scratch_buffer_allocates_nothing_once_warm() {
        let pairs: Vec<(&[u8], &[u8])> =
            (0..30).map(|_| (&b"X-Header-Name"[..], &b"some value \xff\" here"[..])).collect();
        let run = || {
            let m = RequestMeta {
                source_ip: b"203.0.113.7",
                source_port: 52144,
                method: b"GET",
                url: b"/shop/items?id=7&sort=asc",
                http_version: "1.1",
                headers: pairs.iter().copied(),
                username: Some(&b"alice"[..]),
                client_id: Some(&b"app"[..]),
            };
            ngx_ase_shared::json::with_scratch(|buf| build_into(buf, &m, DEFAULT_MAX_SIZE));
        };
        run();
        assert_eq!(counting::allocations(run), 0);
        // the counter does count
        assert!(counting::allocations(|| drop(std::hint::black_box(vec![1u8; 8]))) > 0);
    }

    // Counts this thread's heap allocations (the test harness allocates on other threads).
    use ngx_ase_shared::alloc_count as counting;
    #[global_allocator]
    static COUNTING: counting::Counting = counting::Counting;

    /// The payload parsed, checked against the limit and against what the whole payload
    /// says: every field there (user_info whole or left out), the strings prefixes of
    /// theirs, the headers the first ones; returns (parsed, truncated).
    fn check_bounded(m: &RequestMeta<'_>, limit: usize) -> (Value, bool) {
        let (whole, cut_short) = build(m, usize::MAX);
        assert!(!cut_short);
        let (out, truncated) = build(m, limit);
        let v: Value = serde_json::from_slice(&out).expect("valid JSON");
        let all: Value = serde_json::from_slice(&whole).unwrap();
        if out.len() <= limit && out == whole {
            assert!(!truncated);
            return (v, false);
        }
        assert!(truncated, "cut short without saying so");
        if limit >= skeleton_len(m) {
            assert!(out.len() <= limit, "{} bytes for a limit of {limit}", out.len());
        }
        for key in ["source_ip", "method", "url"] {
            let (got, of) = (v[key].as_str().expect(key), all[key].as_str().unwrap());
            assert!(of.starts_with(got), "{key}: {got:?} is not a prefix of {of:?}");
        }
        assert_eq!((&v["source_port"], &v["http_version"]), (&all["source_port"], &all["http_version"]));
        assert!(v.get("user_info").is_none() || v["user_info"] == all["user_info"]);
        let (got, of) = (v["headers"].as_array().unwrap(), all["headers"].as_array().unwrap());
        assert!(got.len() < of.len() || v != all);
        assert_eq!(got[..], of[..got.len()], "the headers sent are the first ones");
        (v, true)
    }

    /// The payload with every string empty and no user_info: what any limit must hold.
    fn skeleton_len(m: &RequestMeta<'_>) -> usize {
        let empty = RequestMeta {
            source_ip: b"",
            method: b"",
            url: b"",
            headers: vec![],
            username: None,
            client_id: None,
            ..*m
        };
        build(&empty, usize::MAX).0.len()
    }

    fn controls(n: usize) -> Vec<u8> {
        vec![1u8; n]
    }

    #[test]
    fn a_payload_that_fits_is_sent_whole_up_to_its_own_length() {
        let m = RequestMeta { username: Some(&b"alice"[..]), ..meta(vec![(b"Host", b"h"), (b"X-A", b"\x01\xff\"")]) };
        let (whole, _) = build(&m, usize::MAX);
        assert_eq!(build(&m, whole.len()), (whole.clone(), false));
        let (cut, truncated) = build(&m, whole.len() - 1);
        assert!(truncated && cut.len() < whole.len());
        let v: Value = serde_json::from_slice(&cut).unwrap();
        assert_eq!(v["headers"], json!([{"host": "h"}]), "the last header left out whole");
        assert_eq!(v["user_info"], json!([{"username": "alice"}]));
        assert!(skeleton_len(&m) < 128, "{}", skeleton_len(&m));
    }

    #[test]
    fn headers_that_do_not_fit_are_left_out_whole_in_order() {
        // 32 KiB of control bytes: about 190 KiB of JSON
        let fill = controls(4000);
        let names: Vec<String> = (0..8).map(|i| format!("X-Fill-{i}")).collect();
        let mut hs: Vec<(&[u8], &[u8])> = vec![(b"Host", b"shop.example.com")];
        hs.extend(names.iter().map(|n| (n.as_bytes(), fill.as_slice())));
        let m = meta(hs);
        // the fields and Host take 157 bytes, each X-Fill header 24 016
        for (limit, sent) in [(MIN_MAX_SIZE, 1), (8 * 1024, 1), (DEFAULT_MAX_SIZE, 3), (100_000, 5)] {
            let (v, truncated) = check_bounded(&m, limit);
            assert!(truncated);
            assert_eq!(v["url"], "/shop/items?id=7&sort=asc");
            assert_eq!(v["headers"].as_array().unwrap().len(), sent, "limit {limit}");
        }
    }

    #[test]
    fn a_huge_url_is_cut_at_a_character_boundary() {
        let url = [&b"/api/"[..], "\u{e9}".repeat(5000).as_bytes()].concat();
        let m = RequestMeta { url: &url, username: Some(&b"alice"[..]), ..meta(vec![(b"Host", b"h")]) };
        let (v, truncated) = check_bounded(&m, MIN_MAX_SIZE);
        assert!(truncated);
        let got = v["url"].as_str().unwrap();
        assert!(got.starts_with("/api/\u{e9}") && got.len() > 800, "{got}");
        assert_eq!(v["headers"], json!([]));
        assert_eq!(v["user_info"], json!([{"username": "alice"}]));
        assert!(build(&m, MIN_MAX_SIZE).0.len() >= MIN_MAX_SIZE - 1, "the URL takes the room there is");
    }

    #[test]
    fn a_username_too_large_for_the_limit_is_left_out_not_cut() {
        let user = controls(2000);
        let m = RequestMeta { username: Some(&user[..]), ..meta(vec![(b"Host", b"h")]) };
        let (v, truncated) = check_bounded(&m, MIN_MAX_SIZE);
        assert!(truncated);
        assert!(v.get("user_info").is_none(), "{v}");
        assert_eq!(v["url"], "/shop/items?id=7&sort=asc");
        assert_eq!(v["headers"], json!([{"host": "h"}]));
    }

    #[test]
    fn absurd_fields_are_cut_down_to_the_skeleton() {
        let (huge, ip) = (controls(3000), vec![b'a'; 3000]);
        let m = RequestMeta {
            source_ip: &ip,
            method: &huge,
            url: &huge,
            username: Some(&huge[..]),
            ..meta(vec![(b"Host", b"h")])
        };
        let skeleton = skeleton_len(&m);
        for limit in [skeleton, skeleton + 7, 200, MIN_MAX_SIZE, 4096] {
            let (v, truncated) = check_bounded(&m, limit);
            assert!(truncated && v["url"] == "" && v.get("user_info").is_none(), "{v}");
        }
        // below the skeleton: still valid JSON with every field, as small as it gets
        let (out, truncated) = build(&m, 10);
        assert!(truncated);
        assert_eq!(out.len(), skeleton);
        let _: Value = serde_json::from_slice(&out).unwrap();
    }

    proptest! {
        #[test]
        fn any_header_bytes_give_json_that_parses_back(
            headers in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 1..20),
                                                  proptest::collection::vec(any::<u8>(), 0..60)), 0..20),
            url in proptest::collection::vec(any::<u8>(), 0..80)) {
            let hs: Vec<(&[u8], &[u8])> = headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())).collect();
            let mut m = meta(hs);
            m.url = &url;
            let v: Value = serde_json::from_slice(&build(&m, usize::MAX).0).expect("valid JSON");
            let got = v["headers"].as_array().expect("headers array");
            prop_assert_eq!(got.len(), headers.len());
            for ((name, value), pair) in headers.iter().zip(got) {
                let obj = pair.as_object().expect("object");
                let expected_name = ngx_ase_shared::json::decode_like_writer(&name.to_ascii_lowercase());
                let expected_value = ngx_ase_shared::json::decode_like_writer(value);
                prop_assert_eq!(obj.get(&expected_name).and_then(Value::as_str), Some(expected_value.as_str()));
            }
            let expected_url = ngx_ase_shared::json::decode_like_writer(&url);
            prop_assert_eq!(v["url"].as_str(), Some(expected_url.as_str()));
        }
    }

    proptest! {
        #[test]
        fn a_bounded_payload_is_valid_json_within_the_limit_with_the_first_headers(
            headers in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 1..20),
                                                  proptest::collection::vec(any::<u8>(), 0..300)), 0..24),
            url in proptest::collection::vec(any::<u8>(), 0..1500),
            method in proptest::collection::vec(any::<u8>(), 1..12),
            username in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..400)),
            client_id in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
            limit in prop_oneof![MIN_MAX_SIZE..6000usize, 0..MIN_MAX_SIZE]) {
            let hs: Vec<(&[u8], &[u8])> = headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())).collect();
            let m = RequestMeta { url: &url, method: &method, username: username.as_deref(), client_id: client_id.as_deref(), ..meta(hs) };
            let (v, truncated) = check_bounded(&m, limit);
            let whole = build(&m, usize::MAX).0;
            prop_assert_eq!(truncated, whole.len() > limit);
            if limit >= MIN_MAX_SIZE {
                prop_assert!(build(&m, limit).0.len() <= limit);
            }
            if truncated && v["url"] != serde_json::from_slice::<Value>(&whole).unwrap()["url"] {
                prop_assert_eq!(v["headers"].as_array().map(Vec::len), Some(0), "a cut URL leaves no room for headers");
            }
        }
    }
}
