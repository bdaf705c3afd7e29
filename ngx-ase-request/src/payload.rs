//! The `POST /ase/request` body, built straight into one buffer from borrowed request
//! parts (see ase-protocol.md). Safe Rust; header bytes of any kind give valid JSON.

use ngx_ase_shared::json::{write_header_pair, write_headers_field, write_str, write_uint};

pub struct RequestMeta<'a> {
    pub source_ip: &'a [u8],
    pub source_port: u16,
    pub method: &'a [u8],
    /// Path and query as the client sent them.
    pub url: &'a [u8],
    /// `1.0`, `1.1`, `2.0` or `3.0`.
    pub http_version: &'a str,
    /// Every header line in order, as received.
    pub headers: Vec<(&'a [u8], &'a [u8])>,
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

pub fn build(meta: &RequestMeta<'_>) -> Vec<u8> {
    let size = 128 + meta.url.len() + meta.headers.iter().map(|(n, v)| n.len() + v.len() + 8).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(b"{\"source_ip\":");
    write_str(&mut out, meta.source_ip);
    out.extend_from_slice(b",\"source_port\":");
    write_uint(&mut out, u64::from(meta.source_port));
    out.extend_from_slice(b",\"method\":");
    write_str(&mut out, meta.method);
    out.extend_from_slice(b",\"url\":");
    write_str(&mut out, meta.url);
    out.extend_from_slice(b",\"http_version\":");
    write_str(&mut out, meta.http_version.as_bytes());
    if let Some(user) = meta.username {
        out.extend_from_slice(b",\"user_info\":[");
        write_header_pair(&mut out, b"username", user);
        out.push(b']');
    }
    out.push(b',');
    write_headers_field(&mut out, meta.headers.iter().copied());
    out.push(b'}');
    out
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
