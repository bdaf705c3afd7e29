//! `ase_latency_guard P99 [window=T]`: when a group's checks have been slow for a window,
//! its clients stop waiting for them (the metadata still goes, as with `ase_request
//! monitor`), and they wait again once a window shows the ASE fast. Real nginx (one worker)
//! and the ASE double, which delays its answers on demand.

use ngx_ase_tests::nginx::{config_with_http, expect_refused, Nginx};
use ngx_ase_tests::{client, wait_for, AseDouble, Backend, TEST_TOKEN};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const DELAY: Duration = Duration::from_millis(3000);

fn start(double: &AseDouble, backend: &Backend) -> Nginx {
    Nginx::start(&format!(
        r#"
    ase_server {ase};
    ase_token {TEST_TOKEN};
    ase_latency_guard 200ms window=1s;
    ase_timeout 20s;
    ase_zone ase 1m;
    ase_request on;
    log_format verdicts '$request_uri $ase_verdict';
    access_log logs/verdicts.log verdicts;
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ proxy_pass http://{backend}; }}
        location = /status {{ ase_request off; ase_status; }}
    }}
"#,
        ase = double.url(),
        backend = backend.addr()
    ))
}

fn status(n: &Nginx) -> Value {
    client().get(n.url("/status")).send().expect("status page").json().expect("status JSON")
}

/// GETs `path`; its status and how long the client waited.
fn timed_get(n: &Nginx, path: &str) -> (u16, Duration) {
    let t = Instant::now();
    let r = client().get(n.url(path)).send().expect("request");
    let status = r.status().as_u16();
    r.text().expect("body");
    (status, t.elapsed())
}

/// `count` requests at once (a window's worth of checks), each answered 200.
fn burst(n: &Nginx, prefix: &str, count: usize) {
    std::thread::scope(|s| {
        for i in 0..count {
            let path = format!("/{prefix}{i}");
            s.spawn(move || assert_eq!(timed_get(n, &path).0, 200));
        }
    });
}

/// Sends windows of checks (a burst, then one request after the window is over, whose
/// admission closes it) until `want` workers find the default group slow.
fn until_slow_workers(n: &Nginx, prefix: &str, want: u64) {
    let mut round = 0;
    wait_for(&format!("{want} slow workers"), Duration::from_secs(60), || {
        round += 1;
        burst(n, &format!("{prefix}{round}-"), 12);
        std::thread::sleep(Duration::from_millis(1100));
        timed_get(n, &format!("/{prefix}-close{round}"));
        (status(n)["groups"]["default"]["slow_workers"].as_u64() == Some(want)).then_some(())
    });
}

#[test]
fn slow_checks_stop_holding_clients_until_the_ase_is_fast_again() {
    let (double, backend) = (AseDouble::start(&["--keepalive"]), Backend::start());
    let n = start(&double, &backend);
    assert_eq!(timed_get(&n, "/warm").0, 200);
    double.fault(json!({"kind": "delay", "ms": DELAY.as_millis() as u64, "calls": "request"}));

    // A window of slow checks (each client waits the whole delay), then the next check's
    // admission closes it and finds the p99 above 200ms.
    until_slow_workers(&n, "slow", 1);
    assert!(n.error_log().contains("ase: the checks of group \"default\" are slow"), "{}", n.error_log());

    // Degraded: clients no longer wait the delay, and their metadata still reaches the ASE.
    for i in 0..3 {
        let (code, waited) = timed_get(&n, &format!("/detached{i}"));
        assert_eq!(code, 200);
        assert!(waited < DELAY / 2, "a client waited {waited:?} for a slow group's check");
    }
    wait_for("the detached checks at the ASE", Duration::from_secs(30), || {
        let urls: Vec<String> = double
            .records_of("request")
            .iter()
            .filter_map(|r| r["body"]["url"].as_str().map(String::from))
            .filter(|u| u.starts_with("/detached"))
            .collect();
        (urls.len() == 3).then_some(())
    });
    let verdicts = n.log_lines("logs/verdicts.log", 1);
    assert!(verdicts.iter().any(|l| l == "/detached0 monitor"), "{verdicts:?}");
    let s = status(&n);
    assert_eq!(s["groups"]["default"]["slow_entered"], 1, "{s}");
    assert!(s["groups"]["default"]["slow_detached"].as_u64().unwrap_or(0) >= 3, "{s}");
    let text = client().get(n.url("/status?format=prometheus")).send().unwrap().text().unwrap();
    assert!(text.contains("nginx_ase_group_slow_workers{group=\"default\"} 1\n"), "{text}");

    // The ASE is fast again: the detached checks measure it, and a fast window ends it.
    double.clear_fault();
    until_slow_workers(&n, "fast", 0);
    assert!(n.error_log().contains("ase: the checks of group \"default\" are fast again"), "{}", n.error_log());
    double.deny("ip", "127.0.0.1");
    assert_eq!(timed_get(&n, "/waited").0, 403, "checks are waited for (and enforced) again");
}

#[test]
fn configuration_mistakes_are_refused_at_their_line() {
    let base = format!("ase_server http://127.0.0.1:1; ase_token {TEST_TOKEN};");
    for (line, needle) in [
        ("ase_latency_guard fast;", "invalid threshold \"fast\""),
        ("ase_latency_guard 0;", "invalid threshold \"0\""),
        ("ase_latency_guard 250ms span=1s;", "invalid parameter \"span=1s\""),
        ("ase_latency_guard 250ms window=10ms;", "invalid window \"10ms\""),
        ("ase_latency_guard 250ms 1s 2s;", "invalid number of arguments in \"ase_latency_guard\""),
    ] {
        expect_refused(&format!("{base}\n {line}"), needle, line);
    }
    expect_refused(
        &format!("{base}\n ase_latency_guard 1s;\n ase_latency_guard 2s;"),
        "\"ase_latency_guard\" directive is duplicate",
        "ase_latency_guard 2s",
    );
    expect_refused(
        &format!("{base}\n ase_upstream eu {{ server http://127.0.0.1:2;\n latency_guard 1s window=oops;\n }}"),
        "invalid window \"oops\"",
        "window=oops",
    );
    expect_refused(
        &format!("{base}\n ase_upstream eu {{ server http://127.0.0.1:2; latency_guard 1s;\n latency_guard 2s;\n }}"),
        "\"latency_guard\" directive of ase_upstream \"eu\" is duplicate",
        "latency_guard 2s",
    );
    let fine = config_with_http(&format!(
        "{base}\n ase_latency_guard 250ms;\n ase_upstream eu {{ server http://127.0.0.1:2; latency_guard 100ms \
         window=30s; }}"
    ));
    let out = Nginx::prepare(&fine).test_config();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
