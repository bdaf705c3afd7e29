//! The `POST /ase/request` body, built straight into one buffer from borrowed request
//! parts (see ase-protocol.md). Safe Rust; header bytes of any kind give valid JSON.
//!
//! Nothing here allocates but the output buffer: the headers are any cloneable iterator of
//! borrowed pairs (the handler walks nginx's header list in place, no `Vec` of pairs), and
//! [`build_into`] appends to a buffer the caller reuses.

use ngx_ase_shared::json::{write_header_pair, write_headers_field, write_str, write_uint};

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
    /// `user_info.username`, when `ase_user_header` names a header that is present.
    pub username: Option<&'a [u8]>,
}

/// nginx's `r->http_version` (major * 1000 + minor) as the protocol spells it.
pub fn http_version_name(v: usize) -> &'static str {
    match v {
        3000.. => "3.0",
        2000..=2999 => "2.0",
        1001..=1999 => "1.1",
        _ => "1.0",
    }
}

/// The payload in a new buffer (tests, fuzzing); the handler uses [`build_into`].
pub fn build<'a, H>(meta: &RequestMeta<'a, H>) -> Vec<u8>
where
    H: IntoIterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    let mut out = Vec::new();
    build_into(&mut out, meta);
    out
}

/// Appends the payload to `out`.
pub fn build_into<'a, H>(out: &mut Vec<u8>, meta: &RequestMeta<'a, H>)
where
    H: IntoIterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    out.extend_from_slice(b"{\"source_ip\":");
    write_str(out, meta.source_ip);
    out.extend_from_slice(b",\"source_port\":");
    write_uint(out, u64::from(meta.source_port));
    out.extend_from_slice(b",\"method\":");
    write_str(out, meta.method);
    out.extend_from_slice(b",\"url\":");
    write_str(out, meta.url);
    out.extend_from_slice(b",\"http_version\":");
    write_str(out, meta.http_version.as_bytes());
    if let Some(user) = meta.username {
        out.extend_from_slice(b",\"user_info\":[");
        write_header_pair(out, b"username", user);
        out.push(b']');
    }
    out.push(b',');
    write_headers_field(out, meta.headers.clone());
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
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
        }
    }

    #[test]
    fn matches_the_protocol_example() {
        let m = meta(vec![(b"Host", b"shop.example.com"), (b"Accept", b"text/html"), (b"accept", b"application/json")]);
        let v: Value = serde_json::from_slice(&build(&m)).unwrap();
        assert_eq!(v, json!({
            "source_ip": "203.0.113.7", "source_port": 52144, "method": "GET",
            "url": "/shop/items?id=7&sort=asc", "http_version": "1.1",
            "headers": [{"host": "shop.example.com"}, {"accept": "text/html"}, {"accept": "application/json"}]
        }));
    }

    #[test]
    fn user_info_only_when_known() {
        let mut m = meta(vec![]);
        assert!(!String::from_utf8(build(&m)).unwrap().contains("user_info"));
        m.username = Some(b"alice");
        let v: Value = serde_json::from_slice(&build(&m)).unwrap();
        assert_eq!(v["user_info"], json!([{"username": "alice"}]));
    }

    #[test]
    fn build_into_appends_the_same_bytes_from_any_header_iterator() {
        let pairs: [(&[u8], &[u8]); 2] = [(b"Host", b"h"), (b"X-A", b"\xff\"")];
        let m = meta(pairs.to_vec());
        let expected = build(&m);
        let lazy = RequestMeta {
            source_ip: m.source_ip,
            source_port: m.source_port,
            method: m.method,
            url: m.url,
            http_version: m.http_version,
            headers: pairs.iter().copied(),
            username: None,
        };
        let mut out = b"old".to_vec();
        build_into(&mut out, &lazy);
        assert_eq!(&out[..3], b"old");
        assert_eq!(&out[3..], &expected[..]);
    }

    #[test]
    fn building_into_the_scratch_buffer_allocates_nothing_once_warm() {
        let pairs: Vec<(&[u8], &[u8])> = (0..30).map(|_| (&b"X-Header-Name"[..], &b"some value \xff\" here"[..])).collect();
        let run = || {
            let m = RequestMeta {
                source_ip: b"203.0.113.7",
                source_port: 52144,
                method: b"GET",
                url: b"/shop/items?id=7&sort=asc",
                http_version: "1.1",
                headers: pairs.iter().copied(),
                username: Some(&b"alice"[..]),
            };
            ngx_ase_shared::json::with_scratch(|buf| build_into(buf, &m));
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

    #[test]
    fn versions() {
        assert_eq!(http_version_name(1000), "1.0");
        assert_eq!(http_version_name(1001), "1.1");
        assert_eq!(http_version_name(2000), "2.0");
        assert_eq!(http_version_name(3000), "3.0");
        assert_eq!(http_version_name(9), "1.0");
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
            let v: Value = serde_json::from_slice(&build(&m)).expect("valid JSON");
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
}
