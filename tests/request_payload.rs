//! The exact JSON the ASE receives for `POST /ase/request`, for the shapes of request the
//! issue names: GET with a query, POST with a body, HTTP/2, repeated headers, bytes that
//! are not UTF-8, a long URL, 100 headers, and a client address rewritten by realip; and
//! the bound on it (`ase_request_max_size`): 32 KiB of control bytes in headers (what is cut
//! first when the identity is padded: `bypasses_metadata.rs`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use ngx_ase_tests::{client, AseDouble, Backend, Nginx};
use serde_json::{json, Value};

fn start(double: &AseDouble, backend: &Backend, listen_extra: &str, extra: &str) -> Nginx {
    Nginx::start(&format!(
        r#"
    ase_server {ase};
    ase_request on;
    {extra}
    server {{
        listen 127.0.0.1:{{port}} {listen_extra};
        location / {{ proxy_pass http://{backend}; }}
    }}
"#,
        ase = double.url(),
        backend = backend.addr()
    ))
}

/// Sends raw bytes as one HTTP/1.1 request and returns the status code.
fn raw_request(port: u16, request: &[u8]) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

fn only_request_body(double: &AseDouble) -> Value {
    let recs = double.wait_records("request", 1);
    assert_eq!(recs.len(), 1, "{recs:?}");
    recs[0]["body"].clone()
}

fn headers_of(body: &Value) -> Vec<Value> {
    body["headers"].as_array().cloned().unwrap_or_default()
}

#[test]
fn post_with_a_body() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend, "", "");
    let resp = client()
        .post(n.url("/orders?x=1"))
        .header("Content-Type", "application/json")
        .body("{\"item\":7}")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = only_request_body(&double);
    assert_eq!((body["method"].as_str(), body["url"].as_str()), (Some("POST"), Some("/orders?x=1")));
    let hs = headers_of(&body);
    assert!(hs.contains(&json!({"content-type": "application/json"})), "{body}");
    assert!(hs.contains(&json!({"content-length": "10"})), "{body}");
    assert_eq!(backend.paths(), vec!["/orders?x=1"]);
}

#[test]
fn http2_requests_say_2_0() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend, "http2", "");
    let h2 = reqwest::blocking::Client::builder().http2_prior_knowledge().no_proxy().build().unwrap();
    let resp = h2.get(n.url("/h2?q=1")).header("x-test", "h2").send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let body = only_request_body(&double);
    assert_eq!(body["http_version"], "2.0");
    assert_eq!(body["url"], "/h2?q=1");
    assert!(headers_of(&body).contains(&json!({"x-test": "h2"})), "{body}");
}

#[test]
fn http_1_0_says_1_0() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend, "", "");
    assert_eq!(raw_request(n.port, b"GET /old HTTP/1.0\r\nHost: a\r\n\r\n"), 200);
    assert_eq!(only_request_body(&double)["http_version"], "1.0");
}

#[test]
fn repeated_headers_stay_repeated_and_in_order() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend, "", "");
    let req = b"GET /r HTTP/1.1\r\nHost: a\r\nX-Dup: one\r\nAccept: text/html\r\nX-Dup: two\r\nx-dup: three\r\n\r\n";
    assert_eq!(raw_request(n.port, req), 200);
    let hs = headers_of(&only_request_body(&double));
    assert_eq!(
        hs,
        vec![
            json!({"host": "a"}),
            json!({"x-dup": "one"}),
            json!({"accept": "text/html"}),
            json!({"x-dup": "two"}),
            json!({"x-dup": "three"})
        ]
    );
}

#[test]
fn bytes_that_are_not_utf8_are_kept_as_valid_json() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend, "", "ignore_invalid_headers off;");
    let mut req =
        b"GET /bytes HTTP/1.1\r\nHost: a\r\nX-Bytes: caf\xe9 \xff\xfe \"q\" \\ end\r\nUser-Agent: caf\xc3\xa9\r\n\r\n"
            .to_vec();
    assert_eq!(raw_request(n.port, &req), 200, "the request is allowed, not failed open");
    let body = only_request_body(&double);
    let hs = headers_of(&body);
    assert!(hs.contains(&json!({"x-bytes": "caf\u{e9} \u{ff}\u{fe} \"q\" \\ end"})), "{body}");
    assert!(hs.contains(&json!({"user-agent": "café"})), "{body}");
    req.clear();
}

#[test]
fn a_long_url_and_a_hundred_headers() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend, "", "large_client_header_buffers 4 16k;");
    let url = format!("/long?{}", "a".repeat(7000));
    let mut req = format!("GET {url} HTTP/1.1\r\nHost: a\r\n");
    for i in 0..100 {
        req.push_str(&format!("X-H{i}: value-{i}\r\n"));
    }
    req.push_str("\r\n");
    assert_eq!(raw_request(n.port, req.as_bytes()), 200);
    let body = only_request_body(&double);
    assert_eq!(body["url"].as_str(), Some(url.as_str()));
    let hs = headers_of(&body);
    assert_eq!(hs.len(), 101);
    assert_eq!(hs[100], json!({"x-h99": "value-99"}));
}

#[test]
fn source_ip_follows_the_realip_module() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend, "", "set_real_ip_from 127.0.0.1;\n    real_ip_header X-Forwarded-For;");
    double.deny("ip", "198.51.100.9");
    let r = client().get(n.url("/rip")).header("X-Forwarded-For", "198.51.100.4").send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(only_request_body(&double)["source_ip"], "198.51.100.4");
    let blocked = client().get(n.url("/rip2")).header("X-Forwarded-For", "198.51.100.9").send().unwrap();
    assert_eq!(blocked.status(), 403, "the deny list sees nginx's view of the client address");
}

/// About 32 KiB of headers whose values are control bytes (each one `\u0001` in JSON: about
/// 190 KiB of payload), sent raw: Host, X-Fill-0..7 (4000 bytes of 0x01 each), Connection.
fn control_byte_request(path: &str) -> Vec<u8> {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: a\r\n").into_bytes();
    for i in 0..8 {
        req.extend_from_slice(format!("X-Fill-{i}: ").as_bytes());
        req.extend(std::iter::repeat(1u8).take(4000));
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"Connection: close\r\n\r\n");
    req
}

fn fill_header(i: usize) -> Value {
    let mut pair = serde_json::Map::new();
    pair.insert(format!("x-fill-{i}"), Value::String("\u{1}".repeat(4000)));
    Value::Object(pair)
}

/// The ASE double's records of request checks, each as (body length in bytes, body).
fn request_bodies(double: &AseDouble, n: usize) -> Vec<(u64, Value)> {
    double
        .wait_records("request", n)
        .iter()
        .map(|r| (r["body_len"].as_u64().expect("body_len"), r["body"].clone()))
        .collect()
}

fn status_page(n: &Nginx) -> Value {
    client().get(n.url("/status")).send().unwrap().json().unwrap()
}

const BIG_HEADERS: &str = "large_client_header_buffers 8 8k;";

#[test]
fn a_payload_larger_than_the_limit_is_sent_cut_short_and_counted() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = Nginx::start(&format!(
        r#"
    ase_server {ase};
    ase_request on;
    {BIG_HEADERS}
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ proxy_pass http://{backend}; }}
        location = /status {{ ase_request off; ase_status; }}
    }}
"#,
        ase = double.url(),
        backend = backend.addr()
    ));
    assert_eq!(raw_request(n.port, &control_byte_request("/fill?x=1")), 200, "the client gets its answer");
    let (len, body) = request_bodies(&double, 1).remove(0);
    assert!(len <= 64 * 1024, "{len} bytes sent for ase_request_max_size 64k");
    assert!(len > 40 * 1024, "as many headers as fit: {len}");
    assert_eq!((body["url"].as_str(), body["method"].as_str()), (Some("/fill?x=1"), Some("GET")));
    // whole headers, smallest first, written in the order received: Host (the routed host,
    // kept whatever else is cut), then two of the fillers (24 016 bytes each; of equal sizes
    // the first ones) and Connection
    let close = json!({"connection": "close"});
    assert_eq!(headers_of(&body), vec![json!({"host": "a"}), fill_header(0), fill_header(1), close]);
    assert_eq!(backend.paths(), vec!["/fill?x=1"]);

    // a request that fits is sent whole and not counted
    assert_eq!(client().get(n.url("/small")).header("X-Small", "s").send().unwrap().status(), 200);
    let (_, small) = request_bodies(&double, 2).remove(1);
    assert!(headers_of(&small).contains(&json!({"x-small": "s"})), "{small}");

    let s = status_page(&n);
    assert_eq!((s["checks"].as_u64(), s["payload_truncated"].as_u64()), (Some(2), Some(1)), "{s}");
    let text = client().get(n.url("/status?format=prometheus")).send().unwrap().text().unwrap();
    assert!(text.contains("\nnginx_ase_payload_truncated_total 1\n"), "{text}");
}

#[test]
fn a_smaller_limit_and_a_location_of_its_own() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = Nginx::start(&format!(
        r#"
    ase_server {ase};
    ase_request on;
    ase_request_max_size 8k;
    {BIG_HEADERS}
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ proxy_pass http://{backend}; }}
        location /roomy/ {{ ase_request_max_size 256k; proxy_pass http://{backend}; }}
        location = /status {{ ase_request off; ase_status; }}
    }}
"#,
        ase = double.url(),
        backend = backend.addr()
    ));
    assert_eq!(raw_request(n.port, &control_byte_request("/eight")), 200);
    let (len, body) = request_bodies(&double, 1).remove(0);
    assert!(len <= 8 * 1024, "{len} bytes sent for ase_request_max_size 8k");
    assert_eq!(body["url"], "/eight");
    assert_eq!(headers_of(&body), vec![json!({"host": "a"}), json!({"connection": "close"})], "no filler fits in 8k");

    assert_eq!(raw_request(n.port, &control_byte_request("/roomy/all")), 200);
    let (len, body) = request_bodies(&double, 2).remove(1);
    assert!(len > 190 * 1000 && len <= 256 * 1024, "{len}");
    let hs = headers_of(&body);
    assert_eq!(hs.len(), 10, "every header in 256k");
    assert_eq!((&hs[8], &hs[9]), (&fill_header(7), &json!({"connection": "close"})));

    let s = status_page(&n);
    assert_eq!((s["checks"].as_u64(), s["payload_truncated"].as_u64()), (Some(2), Some(1)), "{s}");
}

/// Every header line of the request reaches the ASE, with its value, in the order the client
/// sent it (names lower-cased), except the lines `ase_hide_header` names, in any case. The
/// identity headers (`Authorization`, `Cookie`, API keys) are the ASE's way to tell clients
/// apart: losing one of them must fail a payload test, not only a blocking one.
#[test]
fn every_header_not_hidden_is_sent_with_its_value_in_order() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend, "", "ase_hide_header X-Internal-Secret Proxy-Authorization;");
    let sent: &[(&str, &str)] = &[
        ("Host", "api.example"),
        ("User-Agent", "curl/8.5.0"),
        ("Accept", "*/*"),
        ("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"),
        ("Cookie", "session=9f2c; theme=dark"),
        ("X-API-Key", "key-123"),
        ("apikey", "k2"),
        ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
        ("X-Forwarded-For", "203.0.113.7, 198.51.100.2"),
        ("Content-Type", "application/json; charset=utf-8"),
        ("Content-Length", "2"),
        ("X-Internal-Secret", "s1"),
        ("X-Request-Id", "r-1"),
        ("Accept-Language", "en-GB,en;q=0.8"),
        ("If-None-Match", "\"v1\""),
        ("x-internal-secret", "s2"),
        ("Referer", "https://app.example/page?a=1&b=2"),
        ("X-Dup", "first"),
        ("Accept-Encoding", "gzip, deflate"),
        ("X-Dup", "second"),
        ("X-Unicode", "caf\u{e9} \u{2603}"),
        ("Cache-Control", "no-cache"),
        ("Connection", "close"),
    ];
    let mut req = String::from("POST /orders/7?expand=items HTTP/1.1\r\n");
    for (name, value) in sent {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n{}");
    assert_eq!(raw_request(n.port, req.as_bytes()), 200);
    let hidden = ["x-internal-secret", "proxy-authorization"];
    let want: Vec<Value> = sent
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value))
        .filter(|(name, _)| !hidden.contains(&name.as_str()))
        .map(|(name, value)| json!({ name: value }))
        .collect();
    let body = only_request_body(&double);
    assert_eq!(headers_of(&body), want, "{body}");
    assert_eq!(want.len(), sent.len() - 3, "three lines hidden");
}
