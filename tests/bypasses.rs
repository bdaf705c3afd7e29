//! A blocked client tries to reach the backend anyway: `error_page` on the block status,
//! internal redirects between locations that check in different phases.

use std::time::Duration;

use ngx_ase_tests::{client, AseDouble, Backend, Nginx};

fn get(n: &Nginx, path: &str) -> reqwest::blocking::Response {
    client().get(n.url(path)).send().expect("request through nginx")
}

/// nginx's `error_page` runs on the block status as on any other: the page it names is
/// served, but a location where `ase_request` is on answers a blocked request with the block
/// again (as nginx's own `deny` does where it applies), so `error_page 403 = @backend` cannot
/// carry a blocked client to the backend, in either phase. A page in a location with
/// `ase_request off` is served as usual.
#[test]
fn error_page_on_the_block_status_does_not_reach_the_backend() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = Nginx::start(&format!(
        r#"
    ase_server {ase};
    ase_request on;
    ase_timeout 2s;
    log_format ase '$uri $status $ase_verdict';
    access_log logs/ase.log ase;
    server {{
        listen 127.0.0.1:{{port}};
        location /early/ {{ error_page 403 = @fallback; proxy_pass http://{b}; }}
        location /late/ {{ ase_request_after_access on; error_page 403 = @fallback; proxy_pass http://{b}; }}
        location /by-uri/ {{ error_page 403 /fallback; proxy_pass http://{b}; }}
        location /closed/ {{ ase_fail_mode closed; error_page 503 = @fallback; proxy_pass http://{b}; }}
        location /page/ {{ error_page 403 /blocked.html; proxy_pass http://{b}; }}
        location @fallback {{ proxy_pass http://{b}; }}
        location /fallback {{ ase_request_after_access on; proxy_pass http://{b}; }}
        location = /blocked.html {{ ase_request off; default_type text/plain; return 200 "custom block page"; }}
    }}
"#,
        ase = double.url(),
        b = backend.addr()
    ));
    // While the ASE allows the client, error_page plays no part.
    assert_eq!(get(&n, "/early/ok").status(), 200);
    double.deny("ip", "127.0.0.1");
    for path in ["/early/x", "/late/x", "/by-uri/x"] {
        assert_eq!(get(&n, path).status(), 403, "{path}");
    }
    let page = get(&n, "/page/x");
    assert_eq!(page.status(), 403);
    assert_eq!(page.text().unwrap(), "custom block page");
    // Fail closed: the same with its 503.
    double.fault(serde_json::json!({"kind": "status", "status": 500}));
    assert_eq!(get(&n, "/closed/x").status(), 503);
    assert_eq!(backend.paths(), vec!["/early/ok"], "a blocked client reached the backend");
    // One check per request, whatever the redirects.
    assert_eq!(double.records_of("request").len(), 6);
}

/// The location a request is redirected to may check in the other phase: the request is
/// still checked exactly once, and a blocked one never reaches the backend.
#[test]
fn redirects_between_the_two_phases_check_exactly_once() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = Nginx::start(&format!(
        r#"
    ase_server {ase};
    ase_request on;
    ase_timeout 2s;
    server {{
        listen 127.0.0.1:{{port}};
        location /late-to-early/ {{ ase_request_after_access on; try_files /nonexistent @early; }}
        location @early {{ proxy_pass http://{b}; }}
        location /early-to-late/ {{ try_files /nonexistent @late; }}
        location @late {{ ase_request_after_access on; proxy_pass http://{b}; }}
        location /unchecked-to-late/ {{ ase_request off; try_files /nonexistent @late; }}
        location /rewritten/ {{ ase_request_after_access on; rewrite ^ /early-to-late/r last; }}
    }}
"#,
        ase = double.url(),
        b = backend.addr()
    ));
    let paths = ["/late-to-early/a", "/early-to-late/a", "/unchecked-to-late/a", "/rewritten/a"];
    for path in paths {
        assert_eq!(get(&n, path).status(), 200, "{path}");
    }
    assert_eq!(double.records_of("request").len(), paths.len(), "{:?}", double.records_of("request"));
    double.deny("ip", "127.0.0.1");
    for path in paths {
        assert_eq!(get(&n, path).status(), 403, "{path}");
    }
    assert_eq!(backend.hits(), paths.len(), "a blocked client reached the backend: {:?}", backend.paths());
    assert_eq!(double.records_of("request").len(), 2 * paths.len());
}

/// `ase_request monitor` waits for nothing, so a hanging ASE does not hold the client: it
/// must not hold nginx's connections either. Monitored checks in flight are bounded (as
/// reports are, by `ase_response_queue`): however many requests arrive while the ASE hangs,
/// new clients are still served.
#[test]
fn monitored_checks_do_not_pile_up_while_the_ase_hangs() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let http = format!(
        r#"
    ase_server {ase};
    ase_request monitor;
    ase_timeout 60s;
    ase_response_queue 16;
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ proxy_pass http://{b}; }}
        location = /status {{ ase_request off; ase_status; }}
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
    double.fault(serde_json::json!({"kind": "hang", "calls": "request"}));
    for i in 0..200 {
        // A new connection each time, as new clients would.
        let r = ngx_ase_tests::client().get(n.url(&format!("/m{i}"))).header("Connection", "close").send();
        assert!(r.as_ref().is_ok_and(|r| r.status() == 200), "request {i}: {r:?}");
    }
    // 16 (a quarter of 64) reached the ASE; the rest were not sent, and that is said once.
    let sent = ngx_ase_tests::wait_for("the monitored calls at the ASE", Duration::from_secs(10), || {
        let n = double.records_of("request").len();
        (n >= 16).then_some(n)
    });
    assert!(sent < 200, "{sent} monitored checks in flight at once");
    assert_eq!(n.error_log().matches("16 monitored checks in flight").count(), 1, "{}", n.error_log());
    // And counted: every request was monitored, all but the 16 in flight went unsent.
    let status: serde_json::Value =
        ngx_ase_tests::client().get(n.url("/status")).send().and_then(|r| r.json()).expect("status JSON");
    assert_eq!(status["verdicts"]["monitor"], 200, "{status}");
    assert_eq!(status["monitor_skipped"], 200 - 16, "{status}");
    double.clear_fault();
}

/// A group whose ASE is down follows the location's `ase_fail_mode`: `closed` answers 503
/// for every request, before and after the group's breaker opens, and `error_page` to a
/// location of a group whose ASE would allow the client does not let it through.
#[test]
fn a_group_that_is_down_fails_closed_where_configured_even_through_error_page() {
    let (a, mut b, backend) = (AseDouble::start(&[]), AseDouble::start(&[]), Backend::start());
    let n = Nginx::start(&format!(
        r#"
    ase_server {a};
    ase_upstream two {{ server {b} max_fails=1 fail_timeout=30s; }}
    ase_request on;
    ase_timeout 2s;
    log_format ase '$uri $status $ase_verdict';
    access_log logs/ase.log ase;
    server {{
        listen 127.0.0.1:{{port}};
        location /two/ {{ ase_pass two; ase_fail_mode closed; error_page 503 = @default; proxy_pass http://{be}; }}
        location /two-open/ {{ ase_pass two; proxy_pass http://{be}; }}
        location @default {{ proxy_pass http://{be}; }}
    }}
"#,
        a = a.url(),
        b = b.url(),
        be = backend.addr()
    ));
    b.stop();
    for i in 0..4 {
        assert_eq!(get(&n, &format!("/two/{i}")).status(), 503, "request {i}");
    }
    assert_eq!(backend.hits(), 0, "a request that failed closed reached the backend: {:?}", backend.paths());
    assert_eq!(get(&n, "/two-open/x").status(), 200, "open where not configured closed");
    let log = n.log_lines("logs/ase.log", 5).join("\n");
    assert_eq!(log.matches(" 503 fail_closed").count(), 4, "{log}");
    assert!(a.records_of("request").is_empty(), "the default group was asked about another group's requests");
}

/// With `ase_request_after_access on` the check shares the precontent phase with `mirror`
/// and `try_files`; it runs before them, so a blocked request sends no mirror copy either.
#[test]
fn a_blocked_request_sends_no_mirror_copy_in_either_phase() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = Nginx::start(&format!(
        r#"
    ase_server {ase};
    ase_request on;
    ase_timeout 2s;
    server {{
        listen 127.0.0.1:{{port}};
        location /early/ {{ mirror /mirror; proxy_pass http://{b}; }}
        location /late/ {{ ase_request_after_access on; mirror /mirror; proxy_pass http://{b}; }}
        location = /mirror {{ internal; proxy_pass http://{b}/mirrored; }}
    }}
"#,
        ase = double.url(),
        b = backend.addr()
    ));
    double.deny("ip", "127.0.0.1");
    assert_eq!(get(&n, "/early/x").status(), 403);
    assert_eq!(get(&n, "/late/x").status(), 403);
    double.allow("ip", "127.0.0.1");
    assert_eq!(get(&n, "/late/ok").status(), 200);
    ngx_ase_tests::wait_for("the allowed request's mirror copy", Duration::from_secs(5), || {
        (backend.hits() >= 2).then_some(())
    });
    std::thread::sleep(Duration::from_millis(200));
    let mut paths = backend.paths();
    paths.sort();
    assert_eq!(paths, vec!["/late/ok", "/mirrored"], "a blocked request reached a backend");
}

/// A request first reaches a location in `monitor` and is redirected to one with
/// `ase_request on`: the enforcing location checks it for real (as it would a request from
/// a location with `ase_request off`), so a client cannot route around the enforcement
/// through a learning location.
#[test]
fn a_redirect_from_a_monitored_location_to_an_enforcing_one_is_enforced() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = Nginx::start(&format!(
        r#"
    ase_server {ase};
    ase_request on;
    ase_response on;
    ase_timeout 2s;
    log_format ase '$uri $status $ase_verdict $ase_correlation_id';
    access_log logs/ase.log ase;
    server {{
        listen 127.0.0.1:{{port}};
        location /learn/ {{ ase_request monitor; try_files /nonexistent @enforced; }}
        location /learn-late/ {{ ase_request monitor; try_files /nonexistent @enforced-late; }}
        location @enforced {{ proxy_pass http://{b}; }}
        location @enforced-late {{ ase_request_after_access on; proxy_pass http://{b}; }}
        location /learn-only/ {{ ase_request monitor; proxy_pass http://{b}; }}
    }}
"#,
        ase = double.url(),
        b = backend.addr()
    ));
    double.deny("ip", "127.0.0.1");
    assert_eq!(get(&n, "/learn/x").status(), 403);
    assert_eq!(get(&n, "/learn-late/x").status(), 403);
    assert_eq!(get(&n, "/learn-only/x").status(), 200, "monitor alone never blocks");
    assert_eq!(backend.paths(), vec!["/learn-only/x"], "a blocked client reached the backend");
    // /learn/x: the monitored call, then the enforced one with its own correlation ID, which
    // the log and the report carry.
    let calls: Vec<String> = double
        .records_of("request")
        .iter()
        .filter(|r| r["body"]["url"] == "/learn/x")
        .map(|r| r["correlation_id"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_ne!(calls[0], calls[1]);
    let log = n.log_lines("logs/ase.log", 3);
    let line = log.iter().find(|l| l.starts_with("/learn/x ")).expect("/learn/x logged");
    let cid = line.rsplit(' ').next().unwrap_or("").to_string();
    assert!(line.starts_with("/learn/x 403 block ") && calls.contains(&cid), "{line} {calls:?}");
    ngx_ase_tests::wait_for("the report of /learn/x", Duration::from_secs(10), || {
        double.records_of("response").iter().any(|r| r["correlation_id"] == cid.as_str()).then_some(())
    });
}

/// `limit_except` moves a request with another method into a block of its own (nginx
/// merges it as a nested location): the check applies there too, in either phase.
#[test]
fn other_methods_under_limit_except_are_checked() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = Nginx::start(&format!(
        r#"
    ase_server {ase};
    ase_request on;
    ase_timeout 2s;
    server {{
        listen 127.0.0.1:{{port}};
        location /early/ {{ limit_except GET {{ allow 127.0.0.1; deny all; }} proxy_pass http://{b}; }}
        location /late/ {{
            ase_request_after_access on;
            limit_except GET {{ allow 127.0.0.1; deny all; }}
            proxy_pass http://{b};
        }}
    }}
"#,
        ase = double.url(),
        b = backend.addr()
    ));
    for path in ["/early/x", "/late/x"] {
        assert_eq!(client().post(n.url(path)).body("a").send().expect("POST").status(), 200, "{path}");
    }
    double.deny("ip", "127.0.0.1");
    for path in ["/early/y", "/late/y"] {
        assert_eq!(client().post(n.url(path)).body("a").send().expect("POST").status(), 403, "{path}");
    }
    assert_eq!(backend.paths(), vec!["/early/x", "/late/x"], "a blocked POST reached the backend");
    assert_eq!(double.records_of("request").len(), 4);
}
