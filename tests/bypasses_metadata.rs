//! A denied client tries to make the ASE see another request than the one nginx routes:
//! padding that pushes its identity out of the metadata, an absolute-form request line whose
//! host differs from the `Host` header, and other spellings of a path (issue 23, items 1-3).
//! Each request here reaches the backend on a build that sends the raw request line and cuts
//! headers in order.

use ngx_ase_tests::double::{api, api_definitions as apis};
use ngx_ase_tests::raw_http::{get_raw, line, raw};
use ngx_ase_tests::{client, AseDouble, Backend, Nginx};
use serde_json::{json, Value};

/// `NAME: ` and `n` bytes of 0x01 (six bytes of JSON each).
fn padding(name: &str, n: usize) -> Vec<u8> {
    let mut h = format!("{name}: ").into_bytes();
    h.extend(std::iter::repeat_n(1u8, n));
    h
}

fn header_names(body: &Value) -> Vec<String> {
    body["headers"]
        .as_array()
        .map(|hs| hs.iter().filter_map(|h| h.as_object()?.keys().next().cloned()).collect())
        .unwrap_or_default()
}

fn status_page(n: &Nginx) -> Value {
    client().get(n.url("/status")).send().and_then(|r| r.json()).expect("status JSON")
}

/// Item 1. Two 7,000-byte headers of control bytes (42,000 bytes of JSON each) before the
/// denied client's `Authorization`: the metadata is over `ase_request_max_size` and is cut,
/// but never of the identity: the ASE still sees the token and blocks. Among the other
/// headers the largest go first and the kept ones stay in the order received.
#[test]
fn padding_cannot_push_the_identity_out_of_the_metadata() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = Nginx::start(&format!(
        r#"
    ase_server {ase};
    ase_request on;
    ase_timeout 5s;
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ proxy_pass http://{b}; }}
        location = /status {{ ase_request off; ase_status; }}
    }}
"#,
        ase = double.url(),
        b = backend.addr()
    ));
    double.deny("token", "denied-token");
    let pads = [padding("X-Pad-1", 7000), line("X-Small: s"), padding("X-Pad-2", 7000)];
    let headers = [vec![line("Host: a")], pads.to_vec(), vec![line("Authorization: Bearer denied-token")]].concat();
    assert_eq!(get_raw(n.port, "/api/orders", &headers), 403, "padding pushed the token out");
    let record = double.wait_records("request", 1).remove(0);
    // host (the routed host) first; then, in the order received, what fits: the largest
    // padding header is cut (both are the same size: the later one goes), the rest stays.
    let body = &record["body"];
    assert_eq!(header_names(body), ["host", "x-pad-1", "x-small", "authorization", "connection"], "{body}");
    assert!(record["body_len"].as_u64().is_some_and(|l| l <= 64 * 1024), "{}", record["body_len"]);
    assert_eq!(backend.hits(), 0, "a denied client reached the backend: {:?}", backend.paths());
    let s = status_page(&n);
    assert_eq!((s["payload_truncated"].as_u64(), s["identity_too_large"].as_u64()), (Some(1), Some(0)), "{s}");
}

/// Item 1 for a header the operator names (`ase_identity_header`, here the API's key header):
/// kept as the built-in identity headers are, at the level named and below.
#[test]
fn padding_cannot_push_an_operators_identity_header_out() {
    // The built-in API, but with its API key in a header named X-Session.
    let mut own_key = api("/", "*");
    own_key["api_metadata"]["apikey_header"] = json!("x-session");
    let defs = apis(&[own_key]);
    let apis_dir = defs.path().to_string_lossy().into_owned();
    let (double, backend) = (AseDouble::start(&["--apis", &apis_dir]), Backend::start());
    let n = Nginx::start(&format!(
        r#"
    ase_server {ase};
    ase_request on;
    ase_timeout 5s;
    server {{
        listen 127.0.0.1:{{port}};
        ase_identity_header X-Tenant;
        location / {{ ase_identity_header X-Session; proxy_pass http://{b}; }}
    }}
"#,
        ase = double.url(),
        b = backend.addr()
    ));
    double.deny("api_key", "mallory");
    let pads = [padding("X-Pad-1", 7000), padding("X-Pad-2", 7000)];
    let own = [vec![line("Host: a")], pads.to_vec(), vec![line("X-Session: mallory"), line("X-Tenant: t")]].concat();
    assert_eq!(get_raw(n.port, "/x", &own), 403, "padding pushed the operator's identity header out");
    let body = double.wait_records("request", 1)[0]["body"].clone();
    assert_eq!(header_names(&body), ["host", "x-pad-1", "x-session", "x-tenant", "connection"], "{body}");
    assert_eq!(backend.hits(), 0);
}

/// Item 1, the rest of it: when the identity alone does not fit in `ase_request_max_size`,
/// nothing is cut from it: the check is not sent, counted (`identity_too_large`) and logged,
/// and the request is refused with 431 whatever `ase_fail_mode` says (the client padded its
/// own identity: failing open would let it choose not to be checked). Monitor never blocks.
#[test]
fn an_identity_too_large_for_the_limit_is_refused_whatever_the_fail_mode() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = Nginx::start(&format!(
        r#"
    ase_server {ase};
    ase_request on;
    ase_timeout 5s;
    ase_request_max_size 4k;
    ase_response on;
    log_format ase '$uri $status $ase_verdict cid=$ase_correlation_id';
    access_log logs/ase.log ase;
    server {{
        listen 127.0.0.1:{{port}};
        location /closed/ {{ ase_fail_mode closed; proxy_pass http://{b}; }}
        location /open/ {{ proxy_pass http://{b}; }}
        location /learn/ {{ ase_request monitor; proxy_pass http://{b}; }}
        location = /status {{ ase_request off; ase_status; }}
    }}
"#,
        ase = double.url(),
        b = backend.addr()
    ));
    // 1,000 control bytes in the cookie: 6,000 bytes of JSON, over the 4k limit.
    let headers = [line("Host: a"), padding("Cookie: JSESSIONID=x; pad", 1000)];
    assert_eq!(get_raw(n.port, "/closed/x", &headers), 431);
    assert_eq!(get_raw(n.port, "/open/x", &headers), 431);
    assert_eq!(get_raw(n.port, "/learn/x", &headers), 200);
    assert!(double.records_of("request").is_empty(), "a check without the identity went out");
    assert_eq!(backend.paths(), ["/learn/x"]);
    let s = status_page(&n);
    assert_eq!(s["identity_too_large"].as_u64(), Some(3), "{s}");
    assert_eq!(s["fail_open_by_cause"]["not_started"].as_u64(), Some(2), "{s}");
    let log = n.log_lines("logs/ase.log", 3).join("\n");
    // Nothing went to the ASE: no correlation ID to log, no report it could never pair.
    for want in ["/closed/x 431 fail_closed cid=-", "/open/x 431 fail_closed cid=-", "/learn/x 200 monitor cid=-"] {
        assert!(log.contains(want), "{want}: {log}");
    }
    assert!(double.records_of("response").is_empty(), "{:?}", double.records_of("response"));
    assert!(n.error_log().contains("does not fit in ase_request_max_size"), "{}", n.error_log());
    let text = client().get(n.url("/status?format=prometheus")).send().and_then(|r| r.text()).expect("metrics");
    assert!(text.contains("\nnginx_ase_identity_too_large_total 3\n"), "{text}");
}

/// Item 1 over HTTP/2: nginx puts the (joined) cookie header after every other header, so
/// cutting in order would drop it first. The ASE still gets it.
#[test]
fn http2_padding_cannot_push_the_cookie_out() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = Nginx::start(&format!(
        r#"
    ase_server {ase};
    ase_request on;
    ase_timeout 5s;
    ase_request_max_size 6k;
    server {{
        listen 127.0.0.1:{{port}} http2;
        location / {{ proxy_pass http://{b}; }}
    }}
"#,
        ase = double.url(),
        b = backend.addr()
    ));
    double.deny("cookie", "denied-session");
    let h2 = reqwest::blocking::Client::builder().http2_prior_knowledge().no_proxy().build().expect("h2 client");
    // 2,000 bytes of 0xff each (HPACK's Huffman code makes them 6,500, within nginx's 8k for
    // a field): 4,000 bytes of JSON, so the two cannot both fit in 6k.
    let pad = reqwest::header::HeaderValue::from_bytes(&[0xff; 2000]).expect("header value");
    let resp = h2
        .get(n.url("/api/orders"))
        .header("cookie", "JSESSIONID=denied-session")
        .header("x-pad-1", pad.clone())
        .header("x-pad-2", pad)
        .send()
        .expect("h2 request");
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 403, "padding pushed the cookie out");
    let body = double.wait_records("request", 1)[0]["body"].clone();
    assert!(header_names(&body).contains(&"cookie".to_string()), "{body}");
    assert_eq!(backend.hits(), 0);
}

/// Item 2. `GET http://shop.example/api/orders` with `Host: decoy.example`: nginx routes by
/// the request line's host, and so is the ASE told; likewise for a request without `Host`
/// (HTTP/1.0: the server's name) and for HTTP/2's `:authority`. Two `Host` headers nginx
/// refuses itself.
#[test]
fn the_ase_is_told_the_host_nginx_routed_by() {
    let defs = apis(&[api("/api", "shop.example")]);
    let apis_dir = defs.path().to_string_lossy().into_owned();
    let (double, backend) = (AseDouble::start(&["--apis", &apis_dir]), Backend::start());
    let n = Nginx::start(&format!(
        r#"
    ase_server {ase};
    ase_request on;
    ase_timeout 5s;
    server {{
        listen 127.0.0.1:{{port}} default_server;
        server_name shop.example;
        location /api/ {{ proxy_pass http://{b}; }}
    }}
    server {{
        listen 127.0.0.1:{{port}};
        server_name decoy.example;
        location / {{ return 404; }}
    }}
"#,
        ase = double.url(),
        b = backend.addr()
    ));
    double.deny("ip", "127.0.0.1");
    // The plain request: blocked.
    assert_eq!(get_raw(n.port, "/api/orders", &[line("Host: shop.example")]), 403);
    // Absolute form, another Host header: nginx routes to shop.example.
    let absolute = get_raw(n.port, "http://shop.example/api/orders", &[line("Host: decoy.example")]);
    assert_eq!(absolute, 403, "absolute-form request line with a decoy Host reached the backend");
    let body = double.wait_records("request", 2)[1]["body"].clone();
    assert_eq!(body["headers"][0], json!({"host": "shop.example"}), "{body}");
    assert!(!body.to_string().contains("decoy"), "the decoy host was sent: {body}");
    // Case, a trailing dot, a port: nginx's routed host is lower case without them.
    assert_eq!(get_raw(n.port, "/api/orders", &[line("Host: SHOP.example.:8080")]), 403);
    let body = double.wait_records("request", 3)[2]["body"].clone();
    assert_eq!(body["headers"][0], json!({"host": "shop.example"}), "{body}");
    // HTTP/1.0 without a Host header: the default server's name.
    assert_eq!(raw(n.port, b"GET /api/orders HTTP/1.0\r\n\r\n"), 403, "no Host header reached the backend");
    // Two Host headers: nginx answers 400 before any check.
    let two = get_raw(n.port, "/api/orders", &[line("Host: shop.example"), line("Host: decoy.example")]);
    assert_eq!(two, 400);
    assert_eq!(double.records_of("request").len(), 4, "{:?}", double.records_of("request"));
    assert_eq!(backend.hits(), 0, "a denied client reached the backend: {:?}", backend.paths());
}

/// Item 2 over HTTP/2: no `Host` line, only `:authority` (nginx adds a `host` line from it
/// last); the ASE gets the routed host first.
#[test]
fn http2_authority_is_the_host_sent() {
    let defs = apis(&[api("/api", "shop.example")]);
    let apis_dir = defs.path().to_string_lossy().into_owned();
    let (double, backend) = (AseDouble::start(&["--apis", &apis_dir]), Backend::start());
    let n = Nginx::start(&format!(
        r#"
    ase_server {ase};
    ase_request on;
    ase_timeout 5s;
    server {{
        listen 127.0.0.1:{{port}} http2;
        server_name shop.example;
        location /api/ {{ proxy_pass http://{b}; }}
    }}
"#,
        ase = double.url(),
        b = backend.addr()
    ));
    double.deny("ip", "127.0.0.1");
    let h2 = reqwest::blocking::Client::builder()
        .http2_prior_knowledge()
        .no_proxy()
        .resolve("shop.example", ([127, 0, 0, 1], n.port).into())
        .build()
        .expect("h2 client");
    let resp = h2.get(format!("http://shop.example:{}/api/orders", n.port)).send().expect("h2 request");
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 403);
    let body = double.wait_records("request", 1)[0]["body"].clone();
    assert_eq!(body["headers"][0], json!({"host": "shop.example"}), "{body}");
    assert_eq!(header_names(&body).iter().filter(|h| *h == "host").count(), 1, "{body}");
    assert_eq!(backend.hits(), 0);
}

/// Item 3. Other spellings of `/api/orders` reach `location /api/` as it does; the ASE is
/// told the path nginx routed by (normalised, slashes merged, re-escaped), so it knows the
/// API and blocks them all, `merge_slashes off` and a `rewrite` to the API included. What
/// would make the URL ambiguous is escaped again.
#[test]
fn every_spelling_of_a_path_is_checked_as_the_path_nginx_routed_by() {
    let defs = apis(&[api("/api", "*")]);
    let apis_dir = defs.path().to_string_lossy().into_owned();
    let (double, backend) = (AseDouble::start(&["--apis", &apis_dir]), Backend::start());
    let port2 = ngx_ase_tests::free_port();
    let n = Nginx::start(&format!(
        r#"
    ase_server {ase};
    ase_request on;
    ase_timeout 5s;
    server {{
        listen 127.0.0.1:{{port}};
        rewrite ^/v1/(.*)$ /api/$1 last;
        location /api/ {{ proxy_pass http://{b}; }}
        location / {{ proxy_pass http://{b}; }}
    }}
    server {{
        listen 127.0.0.1:{port2};
        merge_slashes off;
        location /api/ {{ proxy_pass http://{b}; }}
        location / {{ proxy_pass http://{b}; }}
    }}
"#,
        ase = double.url(),
        b = backend.addr()
    ));
    let spellings = ["//api/orders", "/./api/orders", "/x/../api/orders", "/%61pi/orders", "/api%2Forders"];
    double.deny("ip", "127.0.0.1");
    for path in spellings.iter().chain(&["/api/orders", "/v1/orders"]) {
        assert_eq!(get_raw(n.port, path, &[line("Host: a")]), 403, "{path} reached the backend");
    }
    assert_eq!(get_raw(port2, "//api/orders", &[line("Host: a")]), 403, "merge_slashes off");
    assert_eq!(backend.hits(), 0, "{:?}", backend.paths());
    // Every spelling was one URL at the ASE.
    let urls: Vec<Value> = double.wait_records("request", 8).iter().map(|r| r["body"]["url"].clone()).collect();
    assert_eq!(urls, vec![json!("/api/orders"); 8]);

    // Ambiguous bytes are escaped again; the query string goes as sent.
    double.allow("ip", "127.0.0.1");
    double.clear_records();
    assert_eq!(get_raw(n.port, "/api/caf%C3%A9%20x%3F%25?q=a%20b&k=1", &[line("Host: a")]), 200);
    let record = double.wait_records("request", 1).remove(0);
    assert_eq!(record["body"]["url"], "/api/caf%C3%A9%20x%3F%25?q=a%20b&k=1");
}

/// `ase_identity_header` takes header names only, as `ase_hide_header` does: `nginx -t` says
/// which line is wrong.
#[test]
fn ase_identity_header_takes_header_names_only() {
    let n = Nginx::prepare(&ngx_ase_tests::nginx::config_with_http(
        r#"
    ase_server http://127.0.0.1:9;
    ase_request on;
    ase_identity_header X-Session "x session";
    server { listen 127.0.0.1:9; }
"#,
    ));
    let out = n.test_config();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("invalid header name \"x session\" in \"ase_identity_header\" directive"), "{text}");
}
