//! Keep-alive limits on the pooled connections to the ASE (issue 24, item 2), as nginx's
//! upstream keep-alive has them: `ase_keepalive_timeout`, `ase_keepalive_requests`,
//! `ase_keepalive_time` (and `keepalive_*` lines in an `ase_upstream` block),
//! `ase_socket_keepalive`; and a pooled connection a middlebox forgot (the double's "forget
//! idle flows": a request on a connection idle too long is silently hung) costs no check
//! and marks no node down.
//!
//! No timed assertions: the waits are on purpose (idle time) with wide margins, and every
//! `ase_timeout` is long enough for a loaded machine.

use std::process::Command;
use std::time::Duration;

use ngx_ase_tests::nginx::{config_with_http, Nginx};
use ngx_ase_tests::{client, AseDouble, Backend};
use serde_json::Value;

fn get(n: &Nginx, path: &str) -> u16 {
    client().get(n.url(path)).send().expect("request").status().as_u16()
}

/// The distinct connections that carried the double's request calls, in order.
fn connections(double: &AseDouble) -> Vec<u64> {
    let mut out: Vec<u64> = double.records_of("request").iter().filter_map(|r| r["connection"].as_u64()).collect();
    out.dedup();
    out
}

fn stat(double: &AseDouble, what: &str) -> u64 {
    let stats: Value = double.stats();
    stats[what].as_u64().unwrap_or_else(|| panic!("no {what} in the double's stats: {stats}"))
}

/// The issue's scenario: a middlebox between nginx and the ASE forgets flows idle for more
/// than 1.5 s; the pooled connection sits idle 4 s (well within `ase_keepalive_timeout`'s
/// default 60 s, so nginx still trusts it). The next check's request is black-holed on it.
/// It must still be answered by the ASE (on a new connection), and the node, with
/// `max_fails=1`, must not be marked down.
#[test]
fn a_pooled_connection_a_middlebox_forgot_costs_no_check_and_marks_no_node_down() {
    let (double, backend) = (AseDouble::start(&["--keepalive", "--forget-idle-ms", "1500"]), Backend::start());
    double.deny("ip", "127.0.0.1");
    let n = Nginx::start(&format!(
        r#"
    ase_server {ase} max_fails=1 fail_timeout=60s;
    ase_request on;
    ase_timeout 3s;
    ase_connect_timeout 1s;
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ proxy_pass http://{b}; }}
    }}
"#,
        ase = double.url(),
        b = backend.addr()
    ));
    assert_eq!(get(&n, "/first"), 403, "the ASE's block, on a new connection");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(get(&n, "/after-quiet"), 403, "the check after the quiet was answered by the ASE");
    assert_eq!(stat(&double, "forgotten_flows"), 1, "the pooled connection was reused and its request lost");
    let log = n.error_log();
    assert!(!log.contains(" is down"), "the node was marked down:\n{log}");
    assert!(log.contains("did not answer (a middlebox forgot it?)"), "said once:\n{log}");
    for i in 0..5 {
        assert_eq!(get(&n, &format!("/next/{i}")), 403, "the blocked client stays blocked");
    }
    assert_eq!(double.records_of("request").len(), 7, "every check reached the ASE once");
}

/// `ase_keepalive_timeout 1s`: a connection idle longer is closed by nginx before the
/// middlebox (3 s here) forgets it, so no request is ever lost; the same for an
/// `ase_upstream` block's `keepalive_timeout`, and a block without one inherits the http
/// level's.
#[test]
fn keepalive_timeout_closes_idle_connections_in_time() {
    let forget = ["--keepalive", "--forget-idle-ms", "3000"];
    let (plain, own, inherits, backend) =
        (AseDouble::start(&forget), AseDouble::start(&forget), AseDouble::start(&forget), Backend::start());
    let n = Nginx::start(&format!(
        r#"
    ase_server {plain};
    ase_keepalive_timeout 1s;
    ase_upstream own {{ server {own}; keepalive_timeout 1500ms; }}
    ase_upstream inherits {{ server {inherits}; }}
    ase_request on;
    ase_timeout 10s;
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ proxy_pass http://{b}; }}
        location /own/ {{ ase_pass own; proxy_pass http://{b}; }}
        location /inherits/ {{ ase_pass inherits; proxy_pass http://{b}; }}
    }}
"#,
        plain = plain.url(),
        own = own.url(),
        inherits = inherits.url(),
        b = backend.addr()
    ));
    for round in 0..2 {
        for prefix in ["/", "/own/", "/inherits/"] {
            assert_eq!(get(&n, &format!("{prefix}r{round}")), 200);
        }
        std::thread::sleep(Duration::from_secs(5));
    }
    for (name, double) in [("http level", &plain), ("block", &own), ("inherited", &inherits)] {
        assert_eq!(stat(double, "forgotten_flows"), 0, "{name}: a request went on a connection idle 5 s");
        assert_eq!(connections(double).len(), 2, "{name}: each check after the quiet on a new connection");
    }
}

/// `ase_keepalive_requests 2`: a connection carries two calls, then closes after its
/// answer. An `ase_upstream` block's `keepalive_time 1s`: a connection older than that is
/// not pooled again after its answer.
#[test]
fn keepalive_requests_and_keepalive_time_retire_connections() {
    let (counted, aged, backend) =
        (AseDouble::start(&["--keepalive"]), AseDouble::start(&["--keepalive"]), Backend::start());
    let n = Nginx::start(&format!(
        r#"
    ase_server {counted};
    ase_keepalive_requests 2;
    ase_upstream aged {{ server {aged}; keepalive_time 1s; keepalive_requests 100; }}
    ase_request on;
    ase_timeout 10s;
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ proxy_pass http://{b}; }}
        location /aged/ {{ ase_pass aged; proxy_pass http://{b}; }}
    }}
"#,
        counted = counted.url(),
        aged = aged.url(),
        b = backend.addr()
    ));
    for i in 0..5 {
        assert_eq!(get(&n, &format!("/c/{i}")), 200);
    }
    assert_eq!(stat(&counted, "connections"), 3, "two calls per connection: 2 + 2 + 1");

    assert_eq!(get(&n, "/aged/1"), 200);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(get(&n, "/aged/2"), 200);
    assert_eq!(get(&n, "/aged/3"), 200);
    assert_eq!(
        connections(&aged).len(),
        2,
        "the 2.5 s old connection carried its call, then was closed instead of pooled"
    );
}

/// The port of a double's data address (`http://127.0.0.1:PORT`).
fn port_of(double: &AseDouble) -> String {
    double.url().rsplit(':').next().expect("a port").to_string()
}

/// nginx's side of its established connections to `double`, as `ss -tno` shows them (with
/// a `timer:(keepalive,...)` for a socket with SO_KEEPALIVE).
fn sockets_to(double: &AseDouble) -> String {
    let out = Command::new("ss")
        .args(["-tnoH", "state", "established", "dst", &format!("127.0.0.1:{}", port_of(double))])
        .output()
        .expect("ss (iproute2)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ase_socket_keepalive on` sets SO_KEEPALIVE on the connections to the ASE (as
/// `proxy_socket_keepalive`); the default is off.
#[test]
fn socket_keepalive_sets_so_keepalive_on_the_ase_connections() {
    for (on, expected) in [("ase_socket_keepalive on;", true), ("", false)] {
        let (double, backend) = (AseDouble::start(&["--keepalive"]), Backend::start());
        let n = Nginx::start(&format!(
            r#"
    ase_server {ase};
    {on}
    ase_request on;
    ase_timeout 10s;
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ proxy_pass http://{b}; }}
    }}
"#,
            ase = double.url(),
            b = backend.addr()
        ));
        assert_eq!(get(&n, "/"), 200);
        let sockets = sockets_to(&double);
        assert_eq!(sockets.lines().count(), 1, "one pooled connection:\n{sockets}");
        assert_eq!(sockets.contains("keepalive"), expected, "{on:?}:\n{sockets}");
    }
}

/// `nginx -t` accepts the new lines and refuses bad values, naming the file and line.
#[test]
fn nginx_t_checks_the_keepalive_limits() {
    let good = "    ase_server http://127.0.0.1:18000;\n    ase_keepalive_timeout 30s;\n    \
                ase_keepalive_requests 500;\n    ase_keepalive_time 2h;\n    ase_socket_keepalive on;\n    \
                ase_upstream g { server http://127.0.0.1:18001; keepalive_timeout 5s; keepalive_requests 10; keepalive_time 1m; }\n";
    let n = Nginx::prepare(&config_with_http(good));
    let out = n.test_config();
    assert!(out.status.success(), "nginx -t refused:\n{}", String::from_utf8_lossy(&out.stderr));

    let bad = [
        ("    ase_keepalive_timeout 1x;\n", "invalid value"),
        ("    ase_keepalive_requests many;\n", "invalid number"),
        ("    ase_keepalive_time 1h1x;\n", "invalid value"),
        ("    ase_socket_keepalive maybe;\n", "invalid value"),
        ("    ase_upstream g { server http://127.0.0.1:18001;\n keepalive_timeout soon; }\n", "keepalive_timeout"),
        ("    ase_upstream g { server http://127.0.0.1:18001;\n keepalive_requests -1; }\n", "keepalive_requests"),
        (
            "    ase_upstream g { server http://127.0.0.1:18001;\n keepalive_time 1s 2s; }\n",
            "invalid number of arguments",
        ),
        (
            "    ase_upstream g { server http://127.0.0.1:18001;\n keepalive_time 1s; keepalive_time 2s; }\n",
            "is duplicate",
        ),
    ];
    for (http, needle) in bad {
        let config = config_with_http(&format!("    ase_server http://127.0.0.1:18000;\n{http}"));
        let n = Nginx::prepare(&config);
        let out = n.test_config();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "nginx -t accepted:\n{config}");
        assert!(err.contains(needle), "expected {needle:?} in:\n{err}");
        // The bad value is on the last line before the http block's closing brace.
        let lines: Vec<&str> = config.lines().collect();
        let line = lines.iter().rposition(|l| !l.trim().is_empty() && l.trim() != "}").expect("a line") + 1;
        let place = format!("{}:{line}", n.path("conf/nginx.conf").display());
        assert!(err.contains(&place), "expected the place {place} in:\n{err}");
    }
}

/// The idle connections' timers (`ase_keepalive_timeout`, 60 s here) must not keep a
/// reloaded worker alive: it closes its idle connections when it starts exiting, as nginx
/// does with its upstream keep-alive pool, and exits long before 60 s.
#[test]
fn idle_timers_do_not_hold_an_exiting_worker() {
    let (double, backend) = (AseDouble::start(&["--keepalive"]), Backend::start());
    let n = Nginx::start(&format!(
        r#"
    ase_server {ase};
    ase_request on;
    ase_timeout 10s;
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ proxy_pass http://{b}; }}
    }}
"#,
        ase = double.url(),
        b = backend.addr()
    ));
    assert_eq!(get(&n, "/"), 200);
    assert_eq!(sockets_to(&double).lines().count(), 1, "a pooled connection with its idle timer");
    n.signal("reload");
    ngx_ase_tests::wait_for("the old worker to exit", Duration::from_secs(30), || {
        n.error_log().contains("exited with code 0").then_some(())
    });
    assert_eq!(get(&n, "/after"), 200);
}
