//! The sideband channel (ngx_ase_common_module) against a real nginx and ASE doubles:
//! keep-alive reuse, `Connection: close`, stale pooled connections, failover to a backup,
//! the circuit breaker, recovery, and reloads under load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ngx_ase_tests::{client, nginx_time, AseDouble, Backend, Nginx};
use serde_json::{json, Value};

/// nginx with one worker, the given `ase_server` lines, checks on, a status page; its
/// timeouts (1 s, 300 ms) stretched by the time scale (under valgrind, a fresh worker is slow).
fn start(servers: &str, backend: &Backend, extra: &str) -> Nginx {
    Nginx::start(&format!(
        r#"
    {servers}
    ase_request on;
    ase_timeout {timeout};
    ase_connect_timeout {connect_timeout};
    log_format ase '$request_uri $status $ase_verdict';
    access_log logs/ase.log ase;
    {extra}
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ proxy_pass http://{backend}; }}
        location = /status {{ ase_request off; ase_status; }}
    }}
"#,
        timeout = nginx_time(Duration::from_secs(1)),
        connect_timeout = nginx_time(Duration::from_millis(300)),
        backend = backend.addr()
    ))
}

fn get_status(n: &Nginx, path: &str) -> u16 {
    client().get(n.url(path)).send().map(|r| r.status().as_u16()).unwrap_or(0)
}

fn counters(n: &Nginx) -> Value {
    client().get(n.url("/status")).send().expect("status page").json().expect("status JSON")
}

/// The verdicts logged so far (waiting briefly for the log to catch up with `expected`).
fn verdicts_n(n: &Nginx, expected: usize) -> Vec<String> {
    n.log_lines("logs/ase.log", expected)
        .into_iter()
        .filter(|l| !l.starts_with("/status"))
        .map(|l| l.rsplit(' ').next().unwrap_or("").to_string())
        .collect()
}

fn verdicts(n: &Nginx) -> Vec<String> {
    verdicts_n(n, 0)
}

#[test]
fn keepalive_connections_are_reused() {
    let (double, backend) = (AseDouble::start(&["--keepalive"]), Backend::start());
    let n = start(&format!("ase_server {};", double.url()), &backend, "");
    for i in 0..20 {
        assert_eq!(get_status(&n, &format!("/k{i}")), 200);
    }
    assert_eq!(double.records_of("request").len(), 20);
    let conns = double.stats()["connections"].as_u64().unwrap();
    assert_eq!(conns, 1, "20 sequential checks should share one connection");
    let c = counters(&n);
    assert_eq!((c["connections_new"].as_u64(), c["connections_reused"].as_u64()), (Some(1), Some(19)), "{c}");
    assert!(verdicts(&n).iter().all(|v| v == "allow"), "{:?}", verdicts(&n));
}

#[test]
fn connection_close_mode_works_on_every_call() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&format!("ase_server {};", double.url()), &backend, "");
    for i in 0..20 {
        assert_eq!(get_status(&n, &format!("/c{i}")), 200);
    }
    assert_eq!(double.stats()["connections"].as_u64(), Some(20));
    assert_eq!(verdicts_n(&n, 20), vec!["allow"; 20]);
}

#[test]
fn a_pooled_connection_the_ase_closed_is_replaced_without_failing_the_call() {
    let (double, backend) = (AseDouble::start(&["--keepalive", "--keepalive-timeout", "1"]), Backend::start());
    let n = start(&format!("ase_server {};", double.url()), &backend, "");
    assert_eq!(get_status(&n, "/first"), 200);
    std::thread::sleep(Duration::from_millis(1600)); // the double closes the idle connection
    assert_eq!(get_status(&n, "/second"), 200);
    assert_eq!(verdicts_n(&n, 2), vec!["allow", "allow"]);
    assert_eq!(double.records_of("request").len(), 2);
}

#[test]
fn primary_dies_under_load_and_traffic_moves_to_the_backup_then_back() {
    let (mut primary, backup, backend) =
        (AseDouble::start(&["--keepalive"]), AseDouble::start(&["--keepalive"]), Backend::start());
    let servers =
        format!("ase_server {} max_fails=1 fail_timeout=1s;\nase_server {} backup;", primary.url(), backup.url());
    let n = start(&servers, &backend, "");
    for i in 0..5 {
        assert_eq!(get_status(&n, &format!("/before{i}")), 200);
    }
    assert_eq!((primary.records_of("request").len(), backup.records_of("request").len()), (5, 0));
    primary.stop();
    for i in 0..10 {
        assert_eq!(get_status(&n, &format!("/during{i}")), 200);
    }
    assert_eq!(backup.records_of("request").len(), 10, "every check after the primary died went to the backup");
    assert!(verdicts(&n).iter().all(|v| v == "allow"), "no request failed open: {:?}", verdicts(&n));
    assert!(n.error_log().contains(&format!("node {} is down", primary.url())), "{}", n.error_log());
    // The primary comes back: after fail_timeout it is probed and used again.
    primary.restart();
    std::thread::sleep(Duration::from_millis(1200));
    for i in 0..5 {
        assert_eq!(get_status(&n, &format!("/after{i}")), 200);
    }
    assert_eq!(primary.records_of("request").len(), 5, "traffic is back on the primary");
    assert!(n.error_log().contains(&format!("node {} is back", primary.url())));
}

#[test]
fn with_every_node_down_the_breaker_answers_at_once() {
    let (mut a, mut b, backend) = (AseDouble::start(&[]), AseDouble::start(&[]), Backend::start());
    let servers = format!("ase_server {} fail_timeout=30s;\nase_server {} backup fail_timeout=30s;", a.url(), b.url());
    let n = start(&servers, &backend, "");
    a.stop();
    b.stop();
    assert_eq!(get_status(&n, "/trip"), 200); // fails open after trying both
    let before = counters(&n);
    let t = Instant::now();
    for i in 0..50 {
        assert_eq!(get_status(&n, &format!("/open{i}")), 200);
    }
    let after = counters(&n);
    let elapsed = t.elapsed();
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    // No connect attempt while the breaker is open but the early probes: one at a time,
    // each node at most once per 250 ms (refused at once here).
    let refused = |c: &Value| c["errors"]["refused"].as_u64().unwrap_or(0);
    let probes = refused(&after) - refused(&before);
    assert!(probes <= 2 * (2 + elapsed.as_millis() as u64 / 250), "{probes} connects in {elapsed:?}");
    assert_eq!(after["breaker_trips"].as_u64(), Some(1), "{after}");
    // Each request was answered by the breaker at once, or was a probe that failed open.
    let cause = |c: &Value, k: &str| c["fail_open_by_cause"][k].as_u64().unwrap_or(0);
    let probed = cause(&after, "refused") - cause(&before, "refused");
    assert_eq!(cause(&after, "unavailable") + probed, 50, "{after}");
    assert!(n.error_log().contains("every ASE node is down"));
}

#[test]
fn the_ase_comes_back_and_is_used_again() {
    let (mut double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&format!("ase_server {} fail_timeout=1s;", double.url()), &backend, "");
    double.stop();
    assert_eq!(get_status(&n, "/down"), 200);
    double.restart();
    std::thread::sleep(Duration::from_millis(1200));
    // This check's metadata probes the node; its client does not wait for the probe (it
    // fails open, as the breaker answers), and the checks after the probe's answer are
    // the ASE's again.
    assert_eq!(get_status(&n, "/probe"), 200);
    let mut ups = 0;
    loop {
        ups += 1;
        assert_eq!(get_status(&n, &format!("/up{ups}")), 200);
        let v = verdicts_n(&n, 2 + ups);
        if v.last().map(String::as_str) == Some("allow") {
            assert_eq!(v[..2], ["fail_open", "fail_open"], "{v:?}");
            break;
        }
        assert!(ups < 100, "the ASE was never used again: {v:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(double.records_of("request").len() >= 2, "the probe and the check after it");
}

#[test]
fn reload_under_load_loses_no_request() {
    let (double, backend) = (AseDouble::start(&["--keepalive"]), Backend::start());
    let n = start(&format!("ase_server {};", double.url()), &backend, "");
    double.fault(json!({"kind": "delay", "ms": 150}));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (url, stop) = (n.url(""), stop.clone());
            std::thread::spawn(move || {
                let mut statuses = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let s = client().get(format!("{url}/r{w}-{i}")).send().map(|r| r.status().as_u16()).unwrap_or(0);
                    statuses.push(s);
                    i += 1;
                }
                statuses
            })
        })
        .collect();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(300));
        n.signal("reload");
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let statuses: Vec<u16> = workers.into_iter().flat_map(|h| h.join().unwrap()).collect();
    assert!(statuses.len() > 20, "load ran: {}", statuses.len());
    assert!(
        statuses.iter().all(|&s| s == 200),
        "failed client requests: {:?}",
        statuses.iter().filter(|&&s| s != 200).collect::<Vec<_>>()
    );
    assert!(
        verdicts(&n).iter().all(|v| v == "allow"),
        "a check was lost in a reload: {:?}",
        verdicts(&n).iter().filter(|v| *v != "allow").collect::<Vec<_>>()
    );
    assert!(n.crashed_workers().is_empty(), "{:?}", n.crashed_workers());
    assert!(!n.error_log().contains("open socket"), "a worker left a socket open at exit");
}

#[test]
fn a_black_holed_ase_is_marked_down_by_its_timeouts_and_the_breaker_opens() {
    let (double, backend) = (AseDouble::start(&["--keepalive"]), Backend::start());
    let n = start(&format!("ase_server {} max_fails=2 fail_timeout=30s;", double.url()), &backend, "");
    double.fault(json!({"kind": "hang"}));
    for i in 0..2 {
        assert_eq!(get_status(&n, &format!("/slow{i}")), 200, "fails open after ase_timeout");
    }
    // Give the calls' own deadlines (the same ase_timeout) a moment to record the failures.
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..20 {
        assert_eq!(get_status(&n, &format!("/fast{i}")), 200);
    }
    // Each of the 20 was answered at once as the open breaker answers ("unavailable"),
    // also the ones whose metadata went out as an early probe (at most one per 250 ms to
    // 1 s, which no client waits for).
    let c = counters(&n);
    assert_eq!(c["fail_open_by_cause"]["unavailable"].as_u64(), Some(20), "{c}");
    let probes = c["errors"]["timeout"].as_u64().map_or(0, |t| t.saturating_sub(2));
    assert!(probes <= 10, "{c}");
    assert_eq!(c["breaker_trips"].as_u64(), Some(1), "{c}");
    assert!(n.error_log().contains("is down (timeout)"), "the node-down line names the cause");
}
