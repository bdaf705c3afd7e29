//! Named ASE groups (`ase_upstream NAME { ... }` and `ase_pass NAME`): two groups in one
//! nginx, each with its own ASE double, token, pool, node health and breaker. One group's
//! ASE going down must leave the other group's checks exactly as they were, and the status
//! page must show both. Real nginx and two ASE doubles on loopback.

use ngx_ase_tests::nginx::{config_with_http, nginx_t, Nginx};
use ngx_ase_tests::{client, wait_for, AseDouble, Backend};
use serde_json::Value;
use std::time::Duration;

const TOKEN_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01";
const TOKEN_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb02";

/// nginx with the default group (`ase_server` at http level, token A) and group `two`
/// (token B, its own keep-alive), both checked and reported; `/b/` passes to `two`,
/// `/b/back/` passes to the default group again.
fn start(a: &AseDouble, b: &AseDouble, backend: &Backend) -> Nginx {
    let port = ngx_ase_tests::free_port();
    let http = format!(
        r#"
    ase_server {a} max_fails=1 fail_timeout=30s;
    ase_token_file a.token;
    ase_upstream two {{
        server {b} max_fails=1 fail_timeout=30s;
        keepalive 4;
        token_file b.token;
    }}
    ase_zone ase 1m;
    ase_request on;
    ase_response on;
    log_format verdicts '$request_uri $status $ase_verdict';
    access_log logs/verdicts.log verdicts;
    server {{
        listen 127.0.0.1:{port};
        location /a/ {{ proxy_pass http://{backend}; }}
        location /b/ {{
            ase_pass two;
            proxy_pass http://{backend};
            location /b/back/ {{ ase_pass default; proxy_pass http://{backend}; }}
        }}
        location = /status {{ ase_request off; ase_response off; ase_status; }}
    }}
"#,
        a = a.url(),
        b = b.url(),
        backend = backend.addr()
    );
    let mut n = Nginx::prepare(&config_with_http(&http));
    for (file, token) in [("conf/a.token", TOKEN_A), ("conf/b.token", TOKEN_B)] {
        let p = n.write_file(file, token);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    n.port = port;
    n.launch();
    n
}

fn status(n: &Nginx) -> Value {
    client().get(n.url("/status")).send().expect("status page").json().expect("status JSON")
}

fn get(n: &Nginx, path: &str) -> u16 {
    client().get(n.url(path)).send().expect("request").status().as_u16()
}

/// The `$ase_verdict`s logged for requests whose URI starts with `prefix`.
fn verdicts(n: &Nginx, at_least: usize, prefix: &str) -> Vec<String> {
    n.log_lines("logs/verdicts.log", at_least)
        .into_iter()
        .filter(|l| l.starts_with(prefix))
        .map(|l| l.rsplit(' ').next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn each_location_talks_to_its_group_with_its_token() {
    let (a, b, backend) =
        (AseDouble::start(&["--token", TOKEN_A]), AseDouble::start(&["--token", TOKEN_B]), Backend::start());
    let n = start(&a, &b, &backend);
    assert_eq!(get(&n, "/a/1"), 200);
    assert_eq!(get(&n, "/b/1"), 200);
    assert_eq!(get(&n, "/b/back/1"), 200);
    a.wait_records("response", 2);
    b.wait_records("response", 1);
    let urls = |recs: Vec<Value>| -> Vec<String> {
        recs.iter().filter_map(|r| r["body"]["url"].as_str().map(String::from)).collect()
    };
    assert_eq!(urls(a.records_of("request")), vec!["/a/1", "/b/back/1"]);
    assert_eq!(urls(b.records_of("request")), vec!["/b/1"]);
    // Each double requires its own token and answers 401 to another: every check was allowed.
    assert_eq!(verdicts(&n, 3, "/"), vec!["allow", "allow", "allow"]);
    assert_eq!(b.records_of("response").len(), 1, "the report goes to the group the request went to");

    let s = status(&n);
    let nodes = s["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 2, "{s}");
    assert_eq!((nodes[0]["url"].as_str(), nodes[0]["group"].as_str()), (Some(a.url().as_str()), Some("default")));
    assert_eq!((nodes[1]["url"].as_str(), nodes[1]["group"].as_str()), (Some(b.url().as_str()), Some("two")));
    assert_eq!(s["groups"]["default"]["checks"], 2, "{s}");
    assert_eq!(s["groups"]["two"]["checks"], 1, "{s}");
    assert_eq!(s["groups"]["two"]["reports_sent"], 1, "{s}");
    assert_eq!(s["checks"], 3, "the top-level totals count every group: {s}");
    let text = client().get(n.url("/status?format=prometheus")).send().unwrap().text().unwrap();
    assert!(text.contains(&format!("nginx_ase_node_up{{node=\"{}\",group=\"two\"}} 1\n", b.url())), "{text}");
    assert!(text.contains("nginx_ase_group_checks_total{group=\"two\"} 1\n"), "{text}");
}

#[test]
fn one_groups_ase_down_leaves_the_other_groups_checks_untouched() {
    let (a, mut b, backend) =
        (AseDouble::start(&["--token", TOKEN_A]), AseDouble::start(&["--token", TOKEN_B]), Backend::start());
    let n = start(&a, &b, &backend);
    a.deny("ip", "127.0.0.1");
    b.stop();
    for i in 0..6 {
        assert_eq!(get(&n, &format!("/b/{i}")), 200, "group two's ASE is down: fail open");
        assert_eq!(get(&n, &format!("/a/{i}")), 403, "the default group's ASE still blocks");
    }
    a.allow("ip", "127.0.0.1");
    for i in 0..4 {
        assert_eq!(get(&n, &format!("/a/ok{i}")), 200);
    }
    let b_verdicts = verdicts(&n, 16, "/b/");
    assert_eq!(b_verdicts.len(), 6);
    assert!(b_verdicts.iter().all(|v| v == "fail_open"), "{b_verdicts:?}");
    let a_verdicts = verdicts(&n, 16, "/a/");
    assert_eq!(a_verdicts.iter().filter(|v| *v == "block").count(), 6, "{a_verdicts:?}");
    assert_eq!(a_verdicts.iter().filter(|v| *v == "allow").count(), 4, "{a_verdicts:?}");
    assert_eq!(a.records_of("request").len(), 10, "every default-group check reached its ASE");

    let s = wait_for("the reports to settle", Duration::from_secs(10), || {
        let s = status(&n);
        let g = &s["groups"]["default"];
        let n = |k: &str| g[k].as_u64().unwrap_or(0);
        (n("reports") > 0 && n("reports") == n("reports_sent") + n("reports_dropped")).then_some(s)
    });
    let (default, two) = (&s["groups"]["default"], &s["groups"]["two"]);
    assert_eq!(two["breaker"], "open", "{s}");
    assert_eq!(two["breaker_trips"], 1, "{s}");
    assert_eq!(two["errors"]["refused"], 1, "one refusal marked the node down, then the breaker: {s}");
    assert_eq!(two["errors"]["unavailable"], 5, "the breaker answered the other five at once: {s}");
    assert_eq!(default["breaker"], "closed", "{s}");
    assert_eq!(s["breaker"], "closed", "the top-level breaker is the default group's: {s}");
    assert_eq!(default["breaker_trips"], 0, "{s}");
    assert_eq!(default["checks"], 10, "{s}");
    let default_errors: u64 = default["errors"].as_object().expect("errors").values().filter_map(Value::as_u64).sum();
    assert_eq!(default_errors, 0, "{s}");
    let node = |url: &str| s["nodes"].as_array().unwrap().iter().find(|x| x["url"] == url).cloned().expect("node");
    assert_eq!(node(&b.url())["state"], "down", "{s}");
    assert_eq!(node(&a.url())["state"], "up", "{s}");
    assert_eq!(node(&a.url())["failures"], 0, "{s}");
    let log = n.error_log();
    assert!(log.contains("every ASE node is down in group \"two\""), "{log}");
    assert!(!log.contains("every ASE node is down;"), "the default group's breaker never opened:\n{log}");
}

/// The line (1-based) of the http block's line `i` (0-based) in the full configuration.
fn http_line(i: usize) -> usize {
    config_with_http("").lines().position(|l| l.contains("access_log")).unwrap() + 2 + i
}

fn expect_error(http: &str, needle: &str, line: usize) {
    let (ok, err, path) = nginx_t(http);
    assert!(!ok, "nginx -t accepted:\n{http}");
    assert!(err.contains(needle), "expected {needle:?} in:\n{err}");
    assert!(err.contains(&format!("{path}:{line}")), "expected line {line} in:\n{err}");
}

#[test]
fn group_mistakes_are_errors_with_file_and_line() {
    let block = "ase_upstream eu {\n server http://127.0.0.1:18001;\n}\n";
    expect_error(
        &format!("{block}server {{ listen 127.0.0.1:1;\n location / {{ ase_pass us; }} }}"),
        "no \"ase_upstream\" block is named \"us\" in \"ase_pass\" directive",
        http_line(4),
    );
    expect_error(&format!("{block}ase_pass nope;"), "no \"ase_upstream\" block is named \"nope\"", http_line(3));
    expect_error(
        &format!("{block}ase_upstream eu {{ server http://127.0.0.1:18002; }}"),
        "a group named \"eu\" is already defined",
        http_line(3),
    );
    expect_error("ase_upstream empty {\n keepalive 2;\n}", "ase_upstream \"empty\" has no \"server\"", http_line(0));
    expect_error(
        "ase_upstream eu {\n server http://127.0.0.1:18001;\n weight 3;\n}",
        "unknown directive \"weight\" in ase_upstream \"eu\"",
        http_line(2),
    );
    expect_error(
        "ase_upstream eu {\n server http://127.0.0.1:18001 weight=two;\n}",
        "invalid weight value \"two\" in \"server\" directive of ase_upstream \"eu\"",
        http_line(1),
    );
    expect_error(
        "ase_upstream eu {\n server http://127.0.0.1:18001 max_conns=x;\n}",
        "invalid max_conns value \"x\" in \"server\" directive of ase_upstream \"eu\"",
        http_line(1),
    );
    expect_error(
        "ase_upstream eu {\n server http://127.0.0.1:18001;\n least_conn on;\n}",
        "invalid number of arguments in \"least_conn\" directive of ase_upstream \"eu\"",
        http_line(2),
    );
    expect_error(
        "ase_upstream eu {\n server http://127.0.0.1:18001;\n least_conn;\n least_conn;\n}",
        "\"least_conn\" directive of ase_upstream \"eu\" is duplicate",
        http_line(3),
    );
    expect_error(
        "ase_upstream eu {\n server http://127.0.0.1:18001;\n server http://127.0.0.1:18001;\n}",
        "is listed twice",
        http_line(2),
    );
    expect_error(
        "ase_upstream eu {\n server http://127.0.0.1:18001;\n keepalive x;\n}",
        "invalid value \"x\" in \"keepalive\" directive of ase_upstream \"eu\", it must be a number",
        http_line(2),
    );
    expect_error(
        "ase_upstream eu {\n server http://127.0.0.1:18001;\n token_file /nonexistent/t;\n}",
        "cannot read \"/nonexistent/t\"",
        http_line(2),
    );
    expect_error("ase_upstream default {\n server http://127.0.0.1:18001;\n}", "reserved", http_line(0));
    expect_error(
        "ase_upstream eu {\n server http://127.0.0.1:18001;\n}\nase_pass eu;\nase_pass eu;",
        "\"ase_pass\" directive is duplicate",
        http_line(4),
    );
}

#[test]
fn a_pass_before_its_block_and_groups_without_ase_server_are_fine() {
    let http = "server { listen 127.0.0.1:1; location / { ase_request on; ase_pass late; return 200; } }\n\
                ase_upstream late { server http://127.0.0.1:18001; keepalive 0; }";
    let (ok, err, _) = nginx_t(http);
    assert!(ok, "nginx -t failed:\n{err}");
}
