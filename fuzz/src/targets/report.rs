//! Target `response_report`: `ngx_ase_response::report` (the `POST /ase/response` body)
//! with arbitrary status codes, upstream status lines, header list entries, dedicated
//! `headers_out` fields (times and lengths of any value) and `r->http_version`. The JSON
//! must parse, say what `reason_for`, `http_version` and `client_headers` chose, and be
//! byte for byte what writing each header value's bytes as a plain string gives.

use crate::ngx_ase_response::payload::{
    client_headers, http_date, http_version, reason_for, to_json, Dedicated, Header, ListHeader, Snapshot,
};
use arbitrary::{Arbitrary, Unstructured};
use ngx_ase_shared::json::{decode_like_writer, write_headers_field, write_str};
use serde_json::Value;

#[derive(Arbitrary, Debug, Default)]
pub struct Input {
    pub code: u16,
    pub status_line: Vec<u8>,
    pub http_version: usize,
    /// (live, name, value): live = nginx's `hash != 0`.
    pub list: Vec<(bool, Vec<u8>, Vec<u8>)>,
    pub content_type: Vec<u8>,
    pub content_type_len: usize,
    pub charset: Vec<u8>,
    pub has_content_length_entry: bool,
    pub content_length_n: i64,
    pub has_last_modified_entry: bool,
    pub last_modified_time: i64,
    pub location: Option<(bool, Vec<u8>)>,
}

pub fn check(data: &[u8]) {
    let input: Input = crate::take(&mut Unstructured::new(data));
    check_input(&input);
}

pub fn check_input(input: &Input) {
    let _ = http_date(input.last_modified_time);
    let list: Vec<ListHeader<'_>> =
        input.list.iter().map(|(live, name, value)| ListHeader { hash: usize::from(*live), name, value }).collect();
    let d = Dedicated {
        content_type: &input.content_type,
        content_type_len: input.content_type_len,
        charset: &input.charset,
        has_content_length_entry: input.has_content_length_entry,
        content_length_n: input.content_length_n,
        has_last_modified_entry: input.has_last_modified_entry,
        last_modified_time: input.last_modified_time,
        location: input.location.as_ref().map(|(live, v)| (usize::from(*live), v.as_slice())),
    };
    let headers: Vec<Header<'_>> = client_headers(list.iter().copied(), &d).collect();
    let live = input.list.iter().filter(|(l, _, _)| *l).count();
    assert!(headers.len() >= live && headers.len() <= live + 4);
    let reason = reason_for(input.code, &input.status_line);
    let version = http_version(input.http_version);
    let json = to_json(Snapshot {
        code: input.code,
        reason,
        http_version: input.http_version,
        headers: headers.iter().copied(),
    });

    let mut reference = Vec::new();
    reference.extend_from_slice(b"{\"response_code\":\"");
    reference.extend_from_slice(input.code.to_string().as_bytes());
    reference.extend_from_slice(b"\",\"response_status\":");
    write_str(&mut reference, reason);
    reference.extend_from_slice(b",\"http_version\":");
    write_str(&mut reference, version.as_bytes());
    reference.push(b',');
    write_headers_field(&mut reference, headers.iter().map(|(n, v)| (n, v.to_vec())));
    reference.push(b'}');
    assert_eq!(json, reference, "the streamed report differs from the reference");

    let v: Value = match serde_json::from_slice(&json) {
        Ok(v) => v,
        Err(e) => panic!("the report is not JSON ({e}): {}", String::from_utf8_lossy(&json)),
    };
    assert_eq!(v["response_code"].as_str(), Some(input.code.to_string().as_str()));
    assert_eq!(v["response_status"].as_str(), Some(decode_like_writer(reason).as_str()));
    assert_eq!(v["http_version"].as_str(), Some(version));
    let got = v["headers"].as_array().expect("headers is an array");
    assert_eq!(got.len(), headers.len());
    for ((name, value), pair) in headers.iter().zip(got) {
        let obj = pair.as_object().expect("a header is an object");
        assert_eq!(obj.len(), 1);
        let (k, val) = obj.iter().next().expect("one pair");
        assert_eq!(k, &decode_like_writer(&name.to_ascii_lowercase()));
        assert_eq!(val.as_str(), Some(decode_like_writer(&value.to_vec()).as_str()));
    }
}
