//! Target `request_payload`: `ngx_ase_request::payload::build` with arbitrary bytes for
//! the client address, method, URL, every header name and value, the username and the
//! client ID (`user_info`: one object with the keys known). The
//! output must parse as JSON (serde_json), have exactly the protocol's fields, and give
//! back every byte string as `ngx_ase_shared::json::decode_like_writer` says (header names
//! lower-cased, repeated headers kept, in order).
//!
//! With a limit (`ase_request_max_size`, any value up to 64k; none in most corpus inputs) a
//! payload that fits is the whole one, and one cut short says so, is valid JSON no longer
//! than the limit (once the limit holds the skeleton, every string empty), has a prefix of
//! each string (a character prefix, never half a character), `user_info` whole or not at
//! all, and the first header lines, whole.

use crate::ngx_ase_request::payload::{build, http_version_name, RequestMeta};
use arbitrary::{Arbitrary, Unstructured};
use ngx_ase_shared::json::decode_like_writer;
use serde_json::Value;

#[derive(Arbitrary, Debug, Default)]
pub struct Input {
    pub source_ip: Vec<u8>,
    pub source_port: u16,
    pub method: Vec<u8>,
    pub url: Vec<u8>,
    /// `r->http_version`: any number, as nginx would never send but the mapping must take.
    pub http_version: usize,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub username: Option<Vec<u8>>,
    /// The payload's limit; `None` = unlimited (short inputs, the older corpus).
    pub limit: Option<u16>,
    /// Last, so that the older corpus reads as before (without one).
    pub client_id: Option<Vec<u8>>,
}

pub fn check(data: &[u8]) {
    let input: Input = crate::take(&mut Unstructured::new(data));
    check_input(&input);
}

pub fn check_input(input: &Input) {
    let version = http_version_name(input.http_version);
    assert!(["1.0", "1.1", "2.0", "3.0"].contains(&version), "{version}");
    let meta = RequestMeta {
        source_ip: &input.source_ip,
        source_port: input.source_port,
        method: &input.method,
        url: &input.url,
        http_version: version,
        // A lazy iterator, as the handler passes nginx's header list (no `Vec` of pairs).
        headers: input.headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())),
        username: input.username.as_deref(),
        client_id: input.client_id.as_deref(),
    };
    let limit = input.limit.map_or(usize::MAX, usize::from);
    let (out, truncated) = build(&meta, limit);
    if truncated {
        return check_cut_short(input, &meta, &out, limit);
    }
    assert!(out.len() <= limit, "{} bytes for a limit of {limit}", out.len());
    let v: Value = match serde_json::from_slice(&out) {
        Ok(v) => v,
        Err(e) => panic!("the payload is not JSON ({e}): {}", String::from_utf8_lossy(&out)),
    };
    let obj = v.as_object().expect("the payload is a JSON object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = vec!["headers", "http_version", "method", "source_ip", "source_port", "url"];
    if input.username.is_some() || input.client_id.is_some() {
        expected.push("user_info");
    }
    expected.sort_unstable();
    assert_eq!(keys, expected);

    let text = |key: &str| obj[key].as_str().unwrap_or_else(|| panic!("{key} is not a string")).to_string();
    assert_eq!(text("source_ip"), decode_like_writer(&input.source_ip));
    assert_eq!(obj["source_port"].as_u64(), Some(u64::from(input.source_port)));
    assert_eq!(text("method"), decode_like_writer(&input.method));
    assert_eq!(text("url"), decode_like_writer(&input.url));
    assert_eq!(text("http_version"), version);

    if let Some(info) = obj.get("user_info") {
        assert_user_info(info, input);
    }

    let headers = obj["headers"].as_array().expect("headers is an array");
    assert_eq!(headers.len(), input.headers.len(), "one entry per header line");
    for ((name, value), got) in input.headers.iter().zip(headers) {
        assert_pair(got, &name.to_ascii_lowercase(), value);
    }
}

fn check_cut_short<'a, H>(input: &Input, meta: &RequestMeta<'a, H>, out: &[u8], limit: usize)
where
    H: IntoIterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    let (whole, cut_short) = build(meta, usize::MAX);
    assert!(!cut_short && whole.len() > limit, "cut short, but the whole payload takes {} of {limit}", whole.len());
    let skeleton = RequestMeta {
        source_ip: b"",
        source_port: meta.source_port,
        method: b"",
        url: b"",
        http_version: meta.http_version,
        headers: Vec::new(),
        username: None,
        client_id: None,
    };
    if limit >= build(&skeleton, usize::MAX).0.len() {
        assert!(out.len() <= limit, "{} bytes for a limit of {limit}", out.len());
    }
    let v: Value = match serde_json::from_slice(out) {
        Ok(v) => v,
        Err(e) => panic!("the cut payload is not JSON ({e}): {}", String::from_utf8_lossy(out)),
    };
    let obj = v.as_object().expect("the payload is a JSON object");
    let has_user = obj.contains_key("user_info");
    assert!(!has_user || input.username.is_some() || input.client_id.is_some());
    assert_eq!(obj.len(), 6 + usize::from(has_user), "{v}");
    for (key, of) in [("source_ip", &input.source_ip), ("method", &input.method), ("url", &input.url)] {
        let got = obj[key].as_str().unwrap_or_else(|| panic!("{key} is not a string"));
        let of = decode_like_writer(of);
        assert!(of.starts_with(got), "{key}: {got:?} is not a prefix of {of:?}");
    }
    assert_eq!(obj["source_port"].as_u64(), Some(u64::from(input.source_port)));
    assert_eq!(obj["http_version"].as_str(), Some(meta.http_version));
    if has_user {
        assert_user_info(&obj["user_info"], input);
    }
    let headers = obj["headers"].as_array().expect("headers is an array");
    assert!(headers.len() <= input.headers.len());
    for ((name, value), got) in input.headers.iter().zip(headers) {
        assert_pair(got, &name.to_ascii_lowercase(), value);
    }
}

/// `user_info` is one object with exactly the keys the input has, whole.
fn assert_user_info(info: &Value, input: &Input) {
    let info = info.as_array().expect("user_info is an array");
    assert_eq!(info.len(), 1, "one object");
    let obj = info[0].as_object().expect("an object");
    let expected = [("username", &input.username), ("client_id", &input.client_id)];
    assert_eq!(obj.len(), expected.iter().filter(|(_, v)| v.is_some()).count(), "{obj:?}");
    for (key, value) in expected {
        if let Some(value) = value {
            assert_eq!(obj.get(key).and_then(Value::as_str), Some(decode_like_writer(value).as_str()), "{key}");
        }
    }
}

/// `got` is `{"name": "value"}`, one pair, as the writer maps those bytes.
fn assert_pair(got: &Value, name: &[u8], value: &[u8]) {
    let obj = got.as_object().expect("a header is an object");
    assert_eq!(obj.len(), 1, "a header is one pair: {got}");
    let (k, v) = obj.iter().next().expect("one pair");
    assert_eq!(k, &decode_like_writer(name));
    assert_eq!(v.as_str(), Some(decode_like_writer(value).as_str()));
}
