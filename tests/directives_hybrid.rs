//! The request module's smaller directives of issue #25, against a real nginx and the ASE
//! double: `ase_correlation_id` (the operator's ID on the check and its report, the module's
//! own when the value is empty or unusable), `ase_set_header` (add, replace, remove,
//! all-or-nothing inheritance, `ase_hide_header` and the identity-first cut), `ase_skip` (no
//! check, no report, `$ase_verdict` `skip`, counted; a skipped request redirected into a
//! checking location is checked there), `ase_fail_status`, and their `nginx -t` errors.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use ngx_ase_tests::{client, wait_for, AseDouble, Backend, Nginx, TEST_TOKEN};
use serde_json::Value;

fn get(n: &Nginx, path: &str, headers: &[(&str, &str)]) -> reqwest::blocking::Response {
    let mut req = client().get(n.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().expect("request")
}

/// The one request call the double got since its records were cleared.
fn only_request(double: &AseDouble) -> Value {
    let recs = double.wait_records("request", 1);
    assert_eq!(recs.len(), 1, "{recs:?}");
    recs[0].clone()
}

/// A request call's header lines, as (name, value).
fn headers_of(record: &Value) -> Vec<(String, String)> {
    record["body"]["headers"]
        .as_array()
        .map(|a| {
            a.iter().filter_map(|o| o.as_object()?.iter().next().map(|(k, v)| (k.clone(), v.to_string()))).collect()
        })
        .unwrap_or_default()
}

/// The values sent under `name` (any case), as JSON text.
fn sent(record: &Value, name: &str) -> Vec<String> {
    headers_of(record).into_iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v).collect()
}

/// The access-log line (`logs/ids.log`) for `uri`, split on spaces.
fn logged(n: &Nginx, uri: &str) -> Vec<String> {
    let line = wait_for(&format!("the access log line of {uri}"), Duration::from_secs(10), || {
        n.log_lines("logs/ids.log", 1).into_iter().find(|l| l.starts_with(&format!("{uri} ")))
    });
    line.split(' ').map(str::to_string).collect()
}

/// Sends a raw HTTP/1.0 request with one extra header line (bytes a client library refuses).
fn raw_get(n: &Nginx, path: &str, header: &[u8]) -> String {
    let port = n.url("/").split(':').nth(2).and_then(|p| p.trim_end_matches('/').parse::<u16>().ok()).expect("port");
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n").into_bytes();
    req.extend_from_slice(header);
    req.extend_from_slice(b"\r\n\r\n");
    s.write_all(&req).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// An nginx with the double as its ASE, `http` in its http block and `server` in a server
/// block on a free port (`BACKEND` in either is the backend's address).
fn start(double: &AseDouble, backend: &Backend, http: &str, server: &str) -> Nginx {
    let config = format!(
        "    ase_server {ase};\n    ase_token {TEST_TOKEN};\n{http}\n    server {{\n        listen 127.0.0.1:{{port}};\n{server}\n    }}\n",
        ase = double.url()
    );
    Nginx::start(&config.replace("BACKEND", &backend.addr().to_string()))
}

// ---- ase_correlation_id ----

fn start_ids(double: &AseDouble, backend: &Backend) -> Nginx {
    start(
        double,
        backend,
        r#"
    ase_request on;
    ase_response on;
    ase_correlation_id $http_x_trace_id;
    log_format ids '$request_uri $status $ase_correlation_id $request_id';
"#,
        r#"
        access_log logs/ids.log ids;
        location /trace/ { proxy_pass http://BACKEND; }
        location /rid/ { ase_correlation_id $request_id; proxy_pass http://BACKEND; }
"#,
    )
}

/// The check and the report the double got for one request: (check's ID, report's ID).
fn pair(double: &AseDouble) -> (String, String) {
    let report = double.wait_records("response", 1);
    let check = only_request(double);
    assert_eq!(report.len(), 1, "{report:?}");
    let id = |v: &Value| v["correlation_id"].as_str().expect("a correlation ID").to_string();
    (id(&check), id(&report[0]))
}

#[test]
fn the_operators_correlation_id_goes_on_the_check_and_its_report() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start_ids(&double, &backend);
    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    assert_eq!(get(&n, "/trace/a", &[("X-Trace-Id", trace)]).status(), 200);
    assert_eq!(pair(&double), (trace.to_string(), trace.to_string()));
    assert_eq!(logged(&n, "/trace/a")[2], trace, "$ase_correlation_id shows the ID sent");

    // nginx's own $request_id: the access log and the ASE's records share it.
    double.clear_records();
    assert_eq!(get(&n, "/rid/b", &[("X-Trace-Id", "not-this-one")]).status(), 200);
    let (check, report) = pair(&double);
    let line = logged(&n, "/rid/b");
    assert_eq!(check.len(), 32, "{check}");
    assert_eq!([&check, &report, &line[2]], [&line[3]; 3], "{line:?}");
}

#[test]
fn an_empty_or_unusable_correlation_id_falls_back_to_the_modules_own() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start_ids(&double, &backend);
    let long = "a".repeat(129);
    let cases: [(&str, Vec<u8>); 5] = [
        ("/trace/absent", Vec::new()),
        ("/trace/empty", b"X-Trace-Id: ".to_vec()),
        ("/trace/space", b"X-Trace-Id: a b".to_vec()),
        ("/trace/long", format!("X-Trace-Id: {long}").into_bytes()),
        ("/trace/high", b"X-Trace-Id: caf\xc3\xa9".to_vec()),
    ];
    let mut seen = Vec::new();
    for (path, header) in cases {
        double.clear_records();
        let answer = raw_get(&n, path, &header);
        assert!(answer.starts_with("HTTP/1.1 200"), "{path}: {answer}");
        // Still checked and reported, with one ID of the module's own (22 URL-safe characters).
        let (check, report) = pair(&double);
        assert_eq!(check, report, "{path}: the report does not pair with its check");
        assert_eq!(check.len(), 22, "{path}: {check}");
        assert!(check.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{check}");
        assert_eq!(logged(&n, path)[2], check);
        seen.push(check);
    }
    seen.dedup();
    assert_eq!(seen.len(), 5, "one new ID per request: {seen:?}");
    // An unusable value is logged (rate-limited), never echoed by the module (nginx's own
    // debug lines show every header: only ours are looked at).
    let log = n.error_log();
    let ours: Vec<&str> = log.lines().filter(|l| l.contains("ase: ")).collect();
    assert!(ours.iter().any(|l| l.contains("ase_correlation_id value is longer than 128 bytes")), "{log}");
    assert!(ours.iter().all(|l| !l.contains(&long) && !l.contains("caf\u{e9}")), "{ours:?}");
}

// ---- ase_set_header ----

fn start_set(double: &AseDouble, backend: &Backend) -> Nginx {
    start(
        double,
        backend,
        r#"
    ase_request on;
    ase_set_header X-Forwarded-For $remote_addr;
    ase_set_header X-Env prod;
"#,
        r#"
        location /inherit/ { proxy_pass http://BACKEND; }
        location /own/ { ase_set_header X-Api-Key $arg_key; proxy_pass http://BACKEND; }
        location /remove/ { ase_set_header X-Forwarded-For ""; proxy_pass http://BACKEND; }
        location /hidden/ { ase_hide_header X-Env; proxy_pass http://BACKEND; }
        location /cut/ { ase_request_max_size 1k; proxy_pass http://BACKEND; }
"#,
    )
}

#[test]
fn set_headers_replace_add_remove_and_inherit_all_or_nothing() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start_set(&double, &backend);
    let spoofed = [("X-Forwarded-For", "6.6.6.6"), ("x-forwarded-for", "7.7.7.7"), ("X-Env", "dev")];

    // Inherited from http: the client's lines of those names are replaced, not added to.
    assert_eq!(get(&n, "/inherit/a", &spoofed).status(), 200);
    let rec = only_request(&double);
    assert_eq!(sent(&rec, "x-forwarded-for"), ["\"127.0.0.1\""], "{rec}");
    assert_eq!(sent(&rec, "x-env"), ["\"prod\""], "{rec}");

    // A level with its own ase_set_header inherits none of the parent's.
    double.clear_records();
    assert_eq!(get(&n, "/own/b?key=k1", &spoofed).status(), 200);
    let rec = only_request(&double);
    assert_eq!(sent(&rec, "x-api-key"), ["\"k1\""], "{rec}");
    assert_eq!(sent(&rec, "x-forwarded-for"), ["\"6.6.6.6\"", "\"7.7.7.7\""], "the client's lines as sent: {rec}");
    assert_eq!(sent(&rec, "x-env"), ["\"dev\""], "{rec}");
    // An empty value sends no line: here, no key at all.
    double.clear_records();
    assert_eq!(get(&n, "/own/c", &[("X-Api-Key", "client-key")]).status(), 200);
    assert!(sent(&only_request(&double), "x-api-key").is_empty(), "the client's key was not replaced");
    double.clear_records();
    assert_eq!(get(&n, "/remove/d", &spoofed).status(), 200);
    let rec = only_request(&double);
    assert!(sent(&rec, "x-forwarded-for").is_empty(), "{rec}");

    // ase_hide_header wins over a set line.
    double.clear_records();
    assert_eq!(get(&n, "/hidden/e", &spoofed).status(), 200);
    let rec = only_request(&double);
    assert!(sent(&rec, "x-env").is_empty(), "{rec}");
    assert_eq!(sent(&rec, "x-forwarded-for"), ["\"127.0.0.1\""], "{rec}");

    // The verdict follows the set value: the double denies by API key.
    double.deny("api_key", "k-bad");
    assert_eq!(get(&n, "/own/f?key=k-bad", &[]).status(), 403);
    assert_eq!(get(&n, "/own/f?key=k-good", &[("X-Api-Key", "k-bad")]).status(), 200);
}

#[test]
fn a_set_identity_header_survives_the_cut_and_a_padding_client_cannot_push_it_out() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start_set(&double, &backend);
    let pad = "p".repeat(1500);
    let r = get(&n, "/cut/a", &[("X-Pad", &pad), ("X-Forwarded-For", "6.6.6.6"), ("X-Small", "s")]);
    assert_eq!(r.status(), 200);
    let rec = only_request(&double);
    assert!(sent(&rec, "x-pad").is_empty(), "the payload was not cut: {rec}");
    assert_eq!(sent(&rec, "x-forwarded-for"), ["\"127.0.0.1\""], "{rec}");
    assert_eq!(sent(&rec, "x-small"), ["\"s\""], "{rec}");
}

// ---- ase_skip and ase_fail_status ----

fn start_skip(double: &AseDouble, backend: &Backend) -> Nginx {
    start(
        double,
        backend,
        r#"
    ase_timeout 5s;
    ase_request on;
    ase_response on;
    map $request_method $is_options { OPTIONS 1; default 0; }
    log_format ids '$request_uri $status $ase_verdict';
"#,
        r#"
        access_log logs/ids.log ids;
        ase_skip $arg_skip;
        location /api/ { ase_skip $is_options $http_x_no_check; proxy_pass http://BACKEND; }
        location /inherit/ { proxy_pass http://BACKEND; }
        location /pre/ { ase_skip 1; try_files /nothing-here /api/from-pre; }
        location /pre-learn/ { ase_skip 1; try_files /nothing-here /learn/from-pre; }
        location /learn/ { ase_request monitor; proxy_pass http://BACKEND; }
        location /closed/ { ase_fail_mode closed; ase_fail_status 429; proxy_pass http://BACKEND; }
        location /closed-default/ { ase_fail_mode closed; proxy_pass http://BACKEND; }
        location = /status { ase_request off; ase_response off; ase_status; }
"#,
    )
}

#[test]
fn a_skipped_request_is_not_checked_nor_reported_and_is_counted() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start_skip(&double, &backend);
    double.deny("ip", "127.0.0.1");

    assert_eq!(get(&n, "/api/get", &[]).status(), 403, "the deny list applies");
    let preflight = client().request(reqwest::Method::OPTIONS, n.url("/api/pre")).send().expect("request");
    assert_eq!(preflight.status(), 200, "CORS preflight skipped");
    assert_eq!(get(&n, "/api/h", &[("X-No-Check", "yes")]).status(), 200);
    assert_eq!(get(&n, "/api/zero", &[("X-No-Check", "0")]).status(), 403, "\"0\" does not skip");
    assert_eq!(get(&n, "/inherit/i?skip=1", &[]).status(), 200, "the server's ase_skip inherited");
    assert_eq!(get(&n, "/api/not-inherited?skip=1", &[]).status(), 403, "a level with its own ase_skip");
    assert_eq!(logged(&n, "/api/pre")[2], "skip");
    assert_eq!(logged(&n, "/api/get")[2], "block");

    // A barrier: once this checked request's report is in, a skipped one's would be too.
    double.allow("ip", "127.0.0.1");
    assert_eq!(get(&n, "/api/barrier", &[]).status(), 200);
    double.wait_records("response", 4);
    std::thread::sleep(Duration::from_millis(300));
    let urls: Vec<String> =
        double.records_of("request").iter().map(|r| r["body"]["url"].as_str().unwrap_or("").to_string()).collect();
    assert_eq!(
        urls,
        ["/api/get", "/api/zero", "/api/not-inherited?skip=1", "/api/barrier"],
        "skipped requests were sent"
    );
    assert_eq!(double.records_of("response").len(), 4, "a report without a check");
    assert_eq!(
        backend.paths(),
        vec!["/api/pre", "/api/h", "/inherit/i?skip=1", "/api/barrier"],
        "only the allowed and the skipped reached the backend"
    );

    let status: Value = get(&n, "/status", &[]).json().unwrap();
    assert_eq!(status["verdicts"]["skip"], 3, "{status}");
    assert_eq!(status["verdicts"]["block"], 3, "{status}");
    let text = get(&n, "/status?format=prometheus", &[]).text().unwrap();
    assert!(text.contains("nginx_ase_verdicts_total{verdict=\"skip\"} 3\n"), "{text}");
}

#[test]
fn a_skipped_request_redirected_into_a_checking_location_is_checked_there() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start_skip(&double, &backend);
    double.deny("ip", "127.0.0.1");
    assert_eq!(get(&n, "/pre/x", &[]).status(), 403, "try_files took a skipped request past the check");
    assert!(backend.paths().is_empty());
    assert_eq!(only_request(&double)["body"]["url"], "/api/from-pre");
    // Into a location that monitors: monitored (sent, not acted on) and reported.
    double.clear_records();
    assert_eq!(get(&n, "/pre-learn/y", &[]).status(), 200);
    assert_eq!(only_request(&double)["body"]["url"], "/learn/from-pre");
    assert_eq!(double.wait_records("response", 1).len(), 1);
    assert_eq!(backend.paths(), vec!["/learn/from-pre"]);
}

#[test]
fn a_check_that_fails_closed_answers_ase_fail_status() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start_skip(&double, &backend);
    double.deny("ip", "127.0.0.1");
    assert_eq!(get(&n, "/closed/b", &[]).status(), 403, "a block keeps ase_block_status");
    // (The breaker may open after the first 500: the requests after it fail closed alike.)
    double.fault(serde_json::json!({"kind": "status", "status": 500}));
    assert_eq!(get(&n, "/closed/a", &[]).status(), 429);
    assert_eq!(get(&n, "/closed-default/a", &[]).status(), 503);
    assert_eq!(get(&n, "/closed/c", &[]).status(), 429);
    assert!(backend.paths().is_empty());
}

// ---- nginx -t ----

/// `nginx -t` on an http block holding `line`: fails, naming the file and that line.
fn refused(line: &str, needle: &str) {
    let http = format!("    ase_server http://127.0.0.1:1;\n    ase_token {TEST_TOKEN};\n    server {{ listen 127.0.0.1:1;\n    {line}\n    }}");
    let config = ngx_ase_tests::nginx::config_with_http(&http);
    let at = config.lines().position(|l| l.contains(line)).expect("the line") + 1;
    let n = Nginx::prepare(&config);
    let out = n.test_config();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "nginx -t accepted {line:?}");
    assert!(err.contains(needle), "expected {needle:?} for {line:?} in:\n{err}");
    let place = format!("{}:{at}", n.path("conf/nginx.conf").display());
    assert!(err.contains(&place), "expected {place} in:\n{err}");
}

#[test]
fn nginx_t_accepts_the_directives_everywhere_and_names_mistakes() {
    let ok = format!(
        r#"
    ase_server http://127.0.0.1:1;
    ase_token {TEST_TOKEN};
    ase_correlation_id $request_id;
    ase_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    ase_skip $arg_skip;
    ase_fail_status 429;
    server {{
        listen 127.0.0.1:1;
        ase_correlation_id $http_traceparent;
        ase_set_header X-A a;
        ase_set_header X-B "";
        ase_skip $arg_a $arg_b;
        ase_skip $http_x_c;
        ase_fail_status 599;
        location / {{ ase_request on; ase_correlation_id "id-$connection"; ase_set_header X-C c; ase_skip 0; ase_fail_status 400; }}
    }}
"#
    );
    let n = Nginx::prepare(&ngx_ase_tests::nginx::config_with_http(&ok));
    let out = n.test_config();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("[warn]"), "{err}");

    refused("ase_fail_status 200;", "invalid value \"200\" in \"ase_fail_status\"");
    refused("ase_fail_status 600;", "a status code from 400 to 599");
    refused("ase_fail_status 5xx;", "invalid value");
    refused("ase_fail_status 429; ase_fail_status 503;", "is duplicate");
    refused("ase_correlation_id a; ase_correlation_id b;", "is duplicate");
    refused("ase_set_header Host example.com;", "cannot set \"Host\"");
    refused("ase_set_header \"X A\" v;", "invalid header name \"X A\"");
    refused("ase_set_header X-A 1; ase_set_header x-a 2;", "set twice");
    refused("ase_set_header X-A;", "invalid number of arguments in \"ase_set_header\"");
    refused("ase_skip;", "invalid number of arguments in \"ase_skip\"");
    // nginx finds unknown variables once every directive is read: its message names no line.
    for line in ["ase_correlation_id $no_such_variable;", "ase_skip $arg_a $no_such_variable;"] {
        let http = format!("    ase_server http://127.0.0.1:1;\n    server {{ listen 127.0.0.1:1; {line} }}");
        let out = Nginx::prepare(&ngx_ase_tests::nginx::config_with_http(&http)).test_config();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("unknown \"no_such_variable\" variable"), "{line}: {err}");
    }
}
