//! Where a request ends up decides: a verdict that was no answer (fail open, monitor) or an
//! answer from another group's ASE does not carry a request into a location that enforces;
//! the report goes where the check went; and no report goes out for a request whose
//! metadata never did.

use std::collections::HashSet;
use std::time::Duration;

use ngx_ase_tests::{client, wait_for, AseDouble, Backend, Nginx};

fn get(n: &Nginx, path: &str) -> reqwest::blocking::Response {
    client().get(n.url(path)).send().expect("request through nginx")
}

/// The correlation IDs of the double's calls of one kind.
fn ids(double: &AseDouble, kind: &str) -> Vec<String> {
    double.records_of(kind).iter().map(|r| r["correlation_id"].as_str().unwrap_or("").to_string()).collect()
}

/// The ASE is down. A location that fails open redirects (`try_files`, `error_page`) to one
/// that fails closed: the request ends up where closed applies, so it is refused, not let
/// through to that location's backend on the first location's fail-open.
#[test]
fn a_request_that_failed_open_is_failed_closed_where_it_ends_up() {
    let (mut double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = Nginx::start(&format!(
        r#"
    ase_server {ase} max_fails=1 fail_timeout=30s;
    ase_request on;
    ase_timeout 2s;
    log_format ase '$uri $status $ase_verdict';
    access_log logs/ase.log ase;
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ ase_fail_mode open; try_files /nonexistent @pay; }}
        location @pay {{ ase_fail_mode closed; proxy_pass http://{b}; }}
        location /pay/ {{ ase_fail_mode closed; proxy_pass http://{b}; }}
        location /open/ {{ error_page 404 = /pay/by-error-page; return 404; }}
        location /plain/ {{ proxy_pass http://{b}; }}
    }}
"#,
        ase = double.url(),
        b = backend.addr()
    ));
    double.stop();
    // The first call finds the node down (refused), the rest find the breaker open: both ways.
    for i in 0..3 {
        assert_eq!(get(&n, "/pay/transfer").status(), 503, "request {i}");
        assert_eq!(get(&n, "/transfer").status(), 503, "request {i} through try_files");
        assert_eq!(get(&n, "/open/x").status(), 503, "request {i} through error_page");
    }
    assert_eq!(backend.hits(), 0, "a request that failed open reached a fail-closed backend: {:?}", backend.paths());
    // Where no location of the request fails closed, it still fails open.
    assert_eq!(get(&n, "/plain/x").status(), 200);
    let log = n.log_lines("logs/ase.log", 10).join("\n");
    assert_eq!(log.matches(" 503 fail_closed").count(), 9, "{log}");
}

/// The default group's ASE is down and the request fails open there, then is redirected to a
/// location whose group is up and denies the client: it is checked there, and refused.
#[test]
fn a_request_that_failed_open_in_one_group_is_checked_in_the_group_it_ends_up_in() {
    let (mut a, b, backend) = (AseDouble::start(&[]), AseDouble::start(&[]), Backend::start());
    let n = Nginx::start(&format!(
        r#"
    ase_server {a};
    ase_upstream two {{ server {b}; }}
    ase_request on;
    ase_timeout 2s;
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ try_files /nonexistent @two; }}
        location @two {{ ase_pass two; proxy_pass http://{be}; }}
    }}
"#,
        a = a.url(),
        b = b.url(),
        be = backend.addr()
    ));
    b.deny("ip", "127.0.0.1");
    a.stop();
    for i in 0..3 {
        assert_eq!(get(&n, &format!("/payments/{i}")).status(), 403, "request {i}");
    }
    assert_eq!(backend.hits(), 0, "a client group two denies reached its backend: {:?}", backend.paths());
    assert_eq!(b.records_of("request").len(), 3);
}

/// Allowed by one group's ASE, then redirected to a location of another group: that
/// group's ASE has not seen the request and may deny the client, so it is asked.
#[test]
fn an_allow_from_one_group_does_not_stand_in_another() {
    let (a, b, backend) = (AseDouble::start(&[]), AseDouble::start(&[]), Backend::start());
    let n = Nginx::start(&format!(
        r#"
    ase_server {a};
    ase_upstream two {{ server {b}; }}
    ase_request on;
    ase_timeout 2s;
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ try_files /nonexistent @two; }}
        location @two {{ ase_pass two; proxy_pass http://{be}; }}
        location /same/ {{ try_files /nonexistent @same; }}
        location @same {{ proxy_pass http://{be}; }}
    }}
"#,
        a = a.url(),
        b = b.url(),
        be = backend.addr()
    ));
    b.deny("ip", "127.0.0.1");
    assert_eq!(get(&n, "/orders").status(), 403);
    assert_eq!(backend.hits(), 0, "group two's denied client reached its backend");
    // Within one group, one check per request, as before.
    assert_eq!(get(&n, "/same/x").status(), 200);
    assert_eq!(a.records_of("request").len(), 2, "{:?}", a.records_of("request"));
    assert_eq!(b.records_of("request").len(), 1);
}

/// Checked in the default group, then redirected to a location of group `two` that reports
/// but does not check: the report goes to the default group's ASE, which has the request
/// call it pairs with, and none to `two`.
#[test]
fn the_report_goes_to_the_group_the_check_went_to() {
    let (a, b, backend) = (AseDouble::start(&[]), AseDouble::start(&[]), Backend::start());
    let n = Nginx::start(&format!(
        r#"
    ase_server {a};
    ase_upstream two {{ server {b}; }}
    ase_request on;
    ase_response on;
    ase_timeout 2s;
    server {{
        listen 127.0.0.1:{{port}};
        location /api/ {{ try_files /nonexistent @two; }}
        location @two {{ ase_pass two; ase_request off; proxy_pass http://{be}; }}
        location /err/ {{ root /nonexistent; error_page 404 = @two; }}
    }}
"#,
        a = a.url(),
        b = b.url(),
        be = backend.addr()
    ));
    assert_eq!(get(&n, "/api/x").status(), 200);
    assert_eq!(get(&n, "/err/x").status(), 200);
    let reports = a.wait_records("response", 2);
    let checks = ids(&a, "request");
    assert_eq!(checks.len(), 2);
    for r in &reports {
        assert!(checks.iter().any(|c| r["correlation_id"] == c.as_str()), "unpaired report {r}");
    }
    // Nothing more arrives at either double; `two` never got a report it cannot pair.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(a.records_of("response").len(), 2);
    assert!(b.records().is_empty(), "group two got calls: {:?}", b.records());
}

/// `ase_request monitor` with the ASE hanging: past the in-flight ceiling a request's
/// metadata is not sent (`monitor_skipped`), so no report goes out for it either; every
/// report the ASE gets pairs with a request call it got.
#[test]
fn no_report_goes_out_for_a_request_whose_metadata_did_not() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let http = format!(
        r#"
    ase_server {ase};
    ase_request monitor;
    ase_response on;
    ase_timeout 60s;
    log_format ase '$uri $ase_verdict [$ase_correlation_id]';
    access_log logs/ase.log ase;
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ proxy_pass http://{b}; }}
        location = /status {{ ase_request off; ase_response off; ase_status; }}
    }}
"#,
        ase = double.url(),
        b = backend.addr()
    );
    let port = ngx_ase_tests::free_port();
    let config = ngx_ase_tests::nginx::config_with_http(&http.replace("{port}", &port.to_string()))
        .replace("worker_connections 4096", "worker_connections 64");
    let mut n = Nginx::prepare(&config);
    n.port = port;
    n.launch();
    // Request calls hang (each holds its place), reports are answered.
    double.fault(serde_json::json!({"kind": "hang", "calls": "request"}));
    for i in 0..24 {
        let r = client().get(n.url(&format!("/m{i}"))).header("Connection", "close").send();
        assert!(r.as_ref().is_ok_and(|r| r.status() == 200), "request {i}: {r:?}");
    }
    let status: serde_json::Value = client().get(n.url("/status")).send().and_then(|r| r.json()).expect("status JSON");
    assert_eq!(status["monitor_skipped"], 24 - 16, "{status}");
    // 16 requests went to the ASE: 16 reports, each with the ID of one of them.
    let reports = double.wait_records("response", 16);
    let sent: HashSet<String> = wait_for("the 16 request calls", Duration::from_secs(10), || {
        let s: HashSet<String> = ids(&double, "request").into_iter().collect();
        (s.len() >= 16).then_some(s)
    });
    std::thread::sleep(Duration::from_millis(500));
    let reported = ids(&double, "response");
    assert_eq!(reported.len(), 16, "reports for requests the ASE never got: {} of 24", reported.len());
    for r in &reports {
        assert!(sent.contains(r["correlation_id"].as_str().unwrap_or("")), "unpaired report {r}");
    }
    // The log says which requests the ASE never saw: no correlation ID for them.
    let log = n.log_lines("logs/ase.log", 24);
    assert_eq!(log.iter().filter(|l| l.ends_with(" monitor [-]")).count(), 8, "{log:?}");
    double.clear_fault();
}
