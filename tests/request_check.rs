//! ngx_http_ase_request_module against a real nginx and the ASE double: allowed requests
//! reach the backend, denied clients get 403 and never do, the exact JSON the ASE sees,
//! fail open / fail closed, once per main request, and the variables.

use std::time::{Duration, Instant};

use ngx_ase_tests::{client, AseDouble, Backend, Nginx};
use serde_json::{json, Value};

fn start(double: &AseDouble, backend: &Backend, extra: &str) -> Nginx {
    Nginx::start(&format!(
        r#"
    ase_server {ase};
    ase_request on;
    {timeout}
    log_format ase '$request $status $ase_verdict $ase_correlation_id $ase_time';
    access_log logs/ase.log ase;
    {extra}
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ proxy_pass http://{backend}; }}
        location /closed {{ ase_fail_mode closed; proxy_pass http://{backend}; }}
        location /off {{ ase_request off; proxy_pass http://{backend}; }}
        location /redirect {{ try_files /nonexistent @named; }}
        location @named {{ proxy_pass http://{backend}; }}
    }}
"#,
        ase = double.url(),
        timeout = if extra.contains("ase_timeout") { "" } else { "ase_timeout 400ms;" },
        backend = backend.addr()
    ))
}

fn get(n: &Nginx, path: &str, headers: &[(&str, &str)]) -> reqwest::blocking::Response {
    let mut req = client().get(n.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().expect("request through nginx")
}

#[test]
fn allowed_request_reaches_backend_with_the_exact_payload() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend, "");
    let resp = get(
        &n,
        "/shop/items?id=7&sort=asc",
        &[("Accept", "text/html"), ("accept", "application/json"), ("X-Forwarded-For", "198.51.100.4")],
    );
    assert_eq!(resp.status(), 200);
    assert_eq!(backend.paths(), vec!["/shop/items?id=7&sort=asc"]);
    let recs = double.wait_records("request", 1);
    let body = &recs[0]["body"];
    assert_eq!(body["source_ip"], "127.0.0.1");
    assert!(body["source_port"].as_u64().is_some_and(|p| p > 0), "{body}");
    assert_eq!(body["method"], "GET");
    assert_eq!(body["url"], "/shop/items?id=7&sort=asc");
    assert_eq!(body["http_version"], "1.1");
    assert!(body.get("user_info").is_none());
    let headers = body["headers"].as_array().unwrap();
    assert!(headers.contains(&json!({"accept": "text/html"})), "{body}");
    assert!(headers.contains(&json!({"accept": "application/json"})), "{body}");
    assert!(headers.contains(&json!({"x-forwarded-for": "198.51.100.4"})), "{body}");
    // the host nginx routed by, first: `$host`, without the port the client gave
    assert_eq!(headers[0], json!({"host": "127.0.0.1"}), "{body}");
    let cid = recs[0]["correlation_id"].as_str().expect("X-CorrelationID sent").to_string();
    assert_eq!(cid.len(), 22);
    let log = n.log_lines("logs/ase.log", 1).join("\n");
    assert!(log.contains(&format!("200 allow {cid} ")), "{log}");
}

#[test]
fn denied_clients_get_403_and_never_reach_the_backend() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend, "");
    double.deny("token", "bad-token");
    double.deny("api_key", "stolen-key");
    double.deny("cookie", "evil-session");
    let cases: [(&str, Vec<(&str, &str)>); 3] = [
        ("/api/a", vec![("Authorization", "Bearer bad-token")]),
        ("/api/b?apikey=stolen-key", vec![]),
        ("/api/c", vec![("Cookie", "JSESSIONID=evil-session")]),
    ];
    for (path, headers) in &cases {
        assert_eq!(get(&n, path, headers).status(), 403, "{path}");
    }
    assert_eq!(get(&n, "/api/ok", &[("Authorization", "Bearer good-token")]).status(), 200);
    assert_eq!(backend.paths(), vec!["/api/ok"], "denied requests reached the backend");
    let log = n.log_lines("logs/ase.log", 4).join("\n");
    assert_eq!(log.matches(" 403 block ").count(), 3, "{log}");
}

#[test]
fn denied_ip_is_blocked_with_the_configured_status() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend, "ase_block_status 429;");
    double.deny("ip", "127.0.0.1");
    assert_eq!(get(&n, "/x", &[]).status(), 429);
    assert_eq!(backend.hits(), 0);
}

/// Behind a load balancer, nginx's realip module makes the client's address the one the
/// ASE sees and blocks; only from the balancer's address is the header believed.
#[test]
fn behind_a_load_balancer_the_ase_sees_the_client_named_by_realip() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend, "set_real_ip_from 127.0.0.1; real_ip_header X-Forwarded-For;");
    double.deny("ip", "198.51.100.66");
    assert_eq!(get(&n, "/lb", &[("X-Forwarded-For", "198.51.100.7")]).status(), 200);
    assert_eq!(get(&n, "/lb", &[("X-Forwarded-For", "198.51.100.66")]).status(), 403);
    let recs = double.wait_records("request", 2);
    assert_eq!(recs[0]["body"]["source_ip"], "198.51.100.7");
    assert_eq!(recs[1]["body"]["source_ip"], "198.51.100.66");
    assert_eq!(backend.hits(), 1);
}

#[test]
fn user_header_becomes_user_info() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend, "ase_user_header X-User;");
    double.deny("username", "mallory");
    assert_eq!(get(&n, "/u", &[("X-User", "alice")]).status(), 200);
    assert_eq!(get(&n, "/u", &[("X-User", "mallory")]).status(), 403);
    let recs = double.wait_records("request", 2);
    assert_eq!(recs[0]["body"]["user_info"], json!([{"username": "alice"}]));
}

#[test]
fn once_per_main_request_and_off_skips() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend, "");
    assert_eq!(get(&n, "/redirect", &[]).status(), 200);
    assert_eq!(get(&n, "/off/x", &[]).status(), 200);
    std::thread::sleep(Duration::from_millis(200));
    let recs = double.records_of("request");
    assert_eq!(recs.len(), 1, "one check for the redirected request, none for /off: {recs:?}");
    assert_eq!(recs[0]["body"]["url"], "/redirect");
    let log = n.log_lines("logs/ase.log", 2).join("\n");
    assert!(log.lines().any(|l| l.starts_with("GET /off/x") && l.contains(" skip ") && l.ends_with(" -")), "{log}");
}

#[test]
fn ase_down_fails_open_by_default_and_closed_where_configured() {
    let (mut double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend, "");
    double.stop();
    assert_eq!(get(&n, "/open", &[]).status(), 200);
    assert_eq!(get(&n, "/closed", &[]).status(), 503);
    assert_eq!(backend.paths(), vec!["/open"]);
    let log = n.log_lines("logs/ase.log", 2).join("\n");
    assert!(log.contains("200 fail_open") && log.contains("503 fail_closed"), "{log}");
}

#[test]
fn slow_ase_costs_at_most_the_timeout_then_fails_open() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend, "");
    double.fault(json!({"kind": "delay", "ms": 3000}));
    let t = Instant::now();
    assert_eq!(get(&n, "/slow", &[]).status(), 200);
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(350) && took < Duration::from_millis(2500), "took {took:?}");
    assert!(n.error_log().contains("timeout"), "the timeout is logged");
}

#[test]
fn garbage_answers_fail_open_and_closed() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend, "");
    double.fault(json!({"kind": "garbage"}));
    assert_eq!(get(&n, "/g", &[]).status(), 200);
    assert_eq!(get(&n, "/closed", &[]).status(), 503);
}

#[test]
fn wrong_token_is_logged_as_a_configuration_error() {
    let double = AseDouble::start(&["--token", ngx_ase_tests::TEST_TOKEN]);
    let backend = Backend::start();
    let n = start(&double, &backend, "ase_token wrongwrongwrongwrongwrongwrong12;");
    assert_eq!(get(&n, "/t", &[]).status(), 200);
    assert_eq!(get(&n, "/t", &[]).status(), 200);
    let log = n.error_log();
    assert_eq!(log.matches("answered 401").count(), 1, "logged once, not per request:\n{log}");
    assert!(log.contains("ase_token_file"));
    assert!(!log.contains("wrongwrongwrong"), "token leaked into the log");
}

#[test]
fn clients_that_leave_mid_check_do_not_crash_the_worker() {
    use std::io::Write;
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend, "");
    double.fault(json!({"kind": "delay", "ms": 300}));
    for _ in 0..50 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", n.port)).unwrap();
        s.write_all(b"GET /leave HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        drop(s);
    }
    std::thread::sleep(Duration::from_millis(600));
    double.clear_fault();
    assert_eq!(get(&n, "/after", &[]).status(), 200);
    assert!(n.crashed_workers().is_empty(), "{:?}", n.crashed_workers());
    assert_eq!(backend.paths(), vec!["/after"]);
}

#[test]
fn worker_serves_others_while_checks_wait() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend, "ase_timeout 5s;");
    double.fault(json!({"kind": "delay", "ms": 1000}));
    let t = Instant::now();
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let url = n.url(&format!("/p{i}"));
            std::thread::spawn(move || client().get(url).send().map(|r| r.status().as_u16()).unwrap_or(0))
        })
        .collect();
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    // One worker: 20 serial checks would take 20 s; parallel ones about 1 s.
    assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
    let _ = Value::Null;
}

#[test]
fn subrequests_are_not_checked() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = Nginx::start(&format!(
        r#"
    ase_server {ase};
    ase_request on;
    server {{
        listen 127.0.0.1:{{port}};
        location /api {{ mirror /mirror; proxy_pass http://{b}; }}
        location = /mirror {{ internal; proxy_pass http://{b}/mirrored; }}
    }}
"#,
        ase = double.url(),
        b = backend.addr()
    ));
    assert_eq!(get(&n, "/api/x", &[]).status(), 200);
    ngx_ase_tests::wait_for("the mirror subrequest at the backend", Duration::from_secs(5), || {
        (backend.hits() >= 2).then_some(())
    });
    assert!(backend.paths().contains(&"/mirrored".to_string()), "{:?}", backend.paths());
    std::thread::sleep(Duration::from_millis(200));
    let recs = double.records_of("request");
    assert_eq!(recs.len(), 1, "only the main request is checked: {recs:?}");
    assert_eq!(recs[0]["body"]["url"], "/api/x");
}

/// `satisfy any` lets one access module's "yes" win over another's "no". The ASE's block
/// must not be one of those "no"s: a client the ASE blocks gets the block status whatever
/// `allow` or `auth_basic` say, and never reaches the backend.
#[test]
fn satisfy_any_cannot_overrule_the_ases_block() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    std::fs::write(&htpasswd, "alice:{PLAIN}secret\n").unwrap();
    let n = Nginx::start(&format!(
        r#"
    ase_server {ase};
    ase_request on;
    ase_timeout 400ms;
    server {{
        listen 127.0.0.1:{{port}};
        location /allowed {{ satisfy any; allow 127.0.0.1; deny all; proxy_pass http://{backend}; }}
        location /basic {{
            satisfy any;
            auth_basic "api";
            auth_basic_user_file {htpasswd};
            deny all;
            proxy_pass http://{backend};
        }}
    }}
"#,
        ase = double.url(),
        backend = backend.addr(),
        htpasswd = htpasswd.display()
    ));
    let basic = ("Authorization", "Basic YWxpY2U6c2VjcmV0"); // alice:secret
                                                             // Both locations let the client in while the ASE allows it...
    assert_eq!(get(&n, "/allowed/1", &[]).status(), 200);
    assert_eq!(get(&n, "/basic/1", &[basic]).status(), 200);
    // ...and neither does once the ASE blocks it.
    double.deny("ip", "127.0.0.1");
    assert_eq!(get(&n, "/allowed/2", &[]).status(), 403, "allow under satisfy any overruled the ASE");
    assert_eq!(get(&n, "/basic/2", &[basic]).status(), 403, "auth_basic under satisfy any overruled the ASE");
    assert_eq!(backend.paths(), vec!["/allowed/1", "/basic/1"], "a blocked client reached the backend");
}
