//! Requests written byte by byte (what a client library would normalise: absolute-form
//! request lines, odd header spellings, padding), for the bypass tests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Sends raw bytes as one request (the caller adds `Connection: close`) and returns the status.
pub fn raw(port: u16, request: &[u8]) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to nginx");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    s.write_all(request).expect("send the request");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let head = String::from_utf8_lossy(&buf[..buf.len().min(64)]).into_owned();
    head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// A `GET` of `target` with `headers` (raw lines, no CRLF) and `Connection: close`.
pub fn get_raw(port: u16, target: &str, headers: &[Vec<u8>]) -> u16 {
    let mut req = format!("GET {target} HTTP/1.1\r\n").into_bytes();
    for h in headers {
        req.extend_from_slice(h);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"Connection: close\r\n\r\n");
    raw(port, &req)
}

/// A header line for [`get_raw`].
pub fn line(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}
