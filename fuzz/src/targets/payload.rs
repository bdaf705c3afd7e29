//! Target `request_payload`: `ngx_ase_request::payload::build` with arbitrary bytes for
//! the client address, method, URL, every header name and value, and the username. The
//! output must parse as JSON (serde_json), have exactly the protocol's fields, and give
//! back every byte string as `ngx_ase_shared::json::decode_like_writer` says (header names
//! lower-cased, repeated headers kept, in order).

use arbitrary::{Arbitrary, Unstructured};
use crate::ngx_ase_request::payload::{build, http_version_name, RequestMeta};
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
    };
    let out = build(&meta);
    let v: Value = match serde_json::from_slice(&out) {
        Ok(v) => v,
        Err(e) => panic!("the payload is not JSON ({e}): {}", String::from_utf8_lossy(&out)),
    };
    let obj = v.as_object().expect("the payload is a JSON object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = vec!["headers", "http_version", "method", "source_ip", "source_port", "url"];
    if input.username.is_some() {
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

    if let Some(user) = &input.username {
        let info = obj["user_info"].as_array().expect("user_info is an array");
        assert_eq!(info.len(), 1);
        assert_pair(&info[0], b"username", user);
    }

    let headers = obj["headers"].as_array().expect("headers is an array");
    assert_eq!(headers.len(), input.headers.len(), "one entry per header line");
    for ((name, value), got) in input.headers.iter().zip(headers) {
        assert_pair(got, &name.to_ascii_lowercase(), value);
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
