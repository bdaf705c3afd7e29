//! Target `request_payload`: `ngx_ase_request::payload::build` with arbitrary bytes for
//! the client address, method, URL (path and query string, split at the first `?`), every
//! header name and value, the routed host, the username and the client ID (`user_info`: one
//! object with the keys known). The output must parse as JSON (serde_json), have exactly the
//! protocol's fields, and give back every byte string as
//! `ngx_ase_shared::json::decode_like_writer` says (header names lower-cased, repeated
//! headers kept, in order; the routed host first, in place of every `Host` line), the URL as
//! `ngx_ase_shared::url` writes it (printable ASCII).
//!
//! With a limit (`ase_request_max_size`, any value up to 64k; none in most corpus inputs) a
//! payload that fits is the whole one; one cut short says so, is valid JSON no longer than
//! the limit, has every field but the URL as in the whole one, a prefix of the URL, every
//! identity header line, and the other lines a subsequence in the order received (which
//! of them, smallest first, the unit tests check); and one whose identity does not fit is not built at all.

use crate::ngx_ase_request::payload::{build, http_version_name, Fit, RequestMeta, Url, IDENTITY};
use arbitrary::{Arbitrary, Unstructured};
use ngx_ase_shared::header_names::is_listed;
use ngx_ase_shared::json::decode_like_writer;
use serde_json::Value;

/// The operator's identity header names in every input (`ase_identity_header`).
const OWN_IDENTITY: &[u8] = b"x-session ";

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
    /// The routed host; after the older fields, for the same reason.
    pub host: Option<Vec<u8>>,
}

pub fn check(data: &[u8]) {
    let input: Input = crate::take(&mut Unstructured::new(data));
    check_input(&input);
}

/// The header lines the payload carries besides the `host` entry.
fn lines(input: &Input) -> impl Iterator<Item = &(Vec<u8>, Vec<u8>)> {
    input.headers.iter().filter(|(n, _)| input.host.is_none() || !n.eq_ignore_ascii_case(b"host"))
}

fn is_identity(name: &[u8]) -> bool {
    IDENTITY.iter().any(|n| n.eq_ignore_ascii_case(name)) || is_listed(OWN_IDENTITY, name)
}

pub fn check_input(input: &Input) {
    let version = http_version_name(input.http_version);
    assert!(["1.0", "1.1", "2.0", "3.0"].contains(&version), "{version}");
    let meta = RequestMeta {
        source_ip: &input.source_ip,
        source_port: input.source_port,
        method: &input.method,
        url: Url::split(&input.url),
        http_version: version,
        host: input.host.as_deref(),
        // A lazy iterator, as the handler passes nginx's header list (no `Vec` of pairs).
        headers: input.headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())),
        identity: OWN_IDENTITY,
        username: input.username.as_deref(),
        client_id: input.client_id.as_deref(),
    };
    let limit = input.limit.map_or(usize::MAX, usize::from);
    let (out, fit) = build(&meta, limit);
    match fit {
        Fit::Whole => {}
        Fit::Cut => return check_cut_short(input, &meta, &out, limit),
        Fit::IdentityTooLarge => {
            assert!(out.is_empty(), "built though the identity does not fit");
            let (whole, fit) = build(&meta, usize::MAX);
            assert!(fit == Fit::Whole && whole.len() > limit);
            return;
        }
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
    let mut url = Vec::new();
    meta.url.write_json(&mut url);
    assert_eq!(format!("\"{}\"", text("url")).as_bytes(), &url[..]);
    assert!(url.iter().all(|b| (0x21..0x7f).contains(b)), "the URL is printable ASCII");
    assert_eq!(text("http_version"), version);

    if let Some(info) = obj.get("user_info") {
        assert_user_info(info, input);
    }

    let headers = obj["headers"].as_array().expect("headers is an array");
    let first = usize::from(input.host.is_some());
    if let Some(host) = &input.host {
        assert_pair(&headers[0], b"host", host);
    }
    assert_eq!(headers.len() - first, lines(input).count(), "one entry per header line");
    for ((name, value), got) in lines(input).zip(&headers[first..]) {
        assert_pair(got, &name.to_ascii_lowercase(), value);
    }
}

fn check_cut_short<'a, H>(input: &Input, meta: &RequestMeta<'a, H>, out: &[u8], limit: usize)
where
    H: IntoIterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    let (whole, fit) = build(meta, usize::MAX);
    assert!(
        fit == Fit::Whole && whole.len() > limit,
        "cut short, but the whole payload takes {} of {limit}",
        whole.len()
    );
    assert!(out.len() <= limit, "{} bytes for a limit of {limit}", out.len());
    let v: Value = match serde_json::from_slice(out) {
        Ok(v) => v,
        Err(e) => panic!("the cut payload is not JSON ({e}): {}", String::from_utf8_lossy(out)),
    };
    let all: Value = serde_json::from_slice(&whole).expect("the whole payload is JSON");
    let obj = v.as_object().expect("the payload is a JSON object");
    for key in ["source_ip", "source_port", "method", "http_version", "user_info"] {
        assert_eq!(obj.get(key), all.get(key), "{key}");
    }
    let (url, of) = (obj["url"].as_str().expect("url"), all["url"].as_str().expect("url"));
    assert!(of.starts_with(url), "url: {url:?} is not a prefix of {of:?}");
    let headers = obj["headers"].as_array().expect("headers is an array");
    let mut next = 0;
    if let Some(host) = &input.host {
        assert_pair(&headers[0], b"host", host);
        next = 1;
    }
    let mut others_kept = false;
    for (name, value) in lines(input) {
        let pair = serde_json::json!({decode_like_writer(&name.to_ascii_lowercase()): decode_like_writer(value)});
        let here = headers.get(next) == Some(&pair);
        next += usize::from(here);
        if is_identity(name) {
            assert!(here, "identity line {name:?} left out");
        } else {
            others_kept |= here;
        }
    }
    assert_eq!(next, headers.len(), "the headers sent are the client's, in order");
    assert!(url == of || !others_kept, "a cut URL leaves no room for other headers");
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
