//! `ase_status` with `ase_zone`: the totals of all workers equal what the ASE double saw
//! after a mixed load, the Prometheus output parses with a real parser, and the counters
//! survive a reload.

use std::collections::HashMap;

use ngx_ase_tests::nginx::config_with_http;
use ngx_ase_tests::{client, free_port, AseDouble, Backend, Nginx};
use serde_json::{json, Value};

fn start(double: &AseDouble, backend: &Backend, workers: u32, zone: bool) -> Nginx {
    let port = free_port();
    let http = format!(
        r#"
    ase_server {ase};
    {zone}
    ase_request on;
    ase_response on;
    ase_timeout 1s;
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://{backend}; }}
        location = /status {{ ase_request off; ase_response off; ase_status; }}
    }}
"#,
        ase = double.url(),
        zone = if zone { "ase_zone ase 1m;" } else { "" },
        backend = backend.addr()
    );
    let config = config_with_http(&http).replace("worker_processes 1;", &format!("worker_processes {workers};"));
    let mut n = Nginx::prepare(&config);
    n.port = port;
    n.launch();
    n
}

fn status(n: &Nginx) -> Value {
    client().get(n.url("/status")).send().unwrap().json().unwrap()
}

fn mixed_load(n: &Nginx, double: &AseDouble) -> usize {
    double.deny("token", "blocked-token");
    let mut sent = 0;
    for i in 0..30 {
        let mut req = client().get(n.url(&format!("/m{i}")));
        if i % 3 == 0 {
            req = req.header("Authorization", "Bearer blocked-token");
        }
        req.send().unwrap();
        sent += 1;
    }
    // A status the protocol does not name: an ASE error (fail open) that does not mark the node down.
    double.fault(json!({"kind": "status", "status": 418, "calls": "request"}));
    for i in 0..5 {
        client().get(n.url(&format!("/f{i}"))).send().unwrap();
        sent += 1;
    }
    double.clear_fault();
    sent
}

#[test]
fn totals_across_workers_equal_what_the_ase_saw() {
    let (double, backend) = (AseDouble::start(&["--keepalive"]), Backend::start());
    let n = start(&double, &backend, 2, true);
    let sent = mixed_load(&n, &double);
    let responses = double.wait_records("response", sent);
    let requests = double.records_of("request");
    let s = status(&n);
    assert_eq!(s["scope"], "all_workers");
    assert_eq!(s["checks"].as_u64(), Some(requests.len() as u64), "{s}");
    assert_eq!(s["verdicts"]["block"].as_u64(), Some(requests.iter().filter(|r| r["status"] == 403).count() as u64));
    assert_eq!(s["verdicts"]["allow"].as_u64(), Some(requests.iter().filter(|r| r["status"] == 200).count() as u64));
    assert_eq!(s["verdicts"]["fail_open"].as_u64(), Some(5));
    assert_eq!(s["fail_open_by_cause"]["ase_status"].as_u64(), Some(5));
    assert_eq!(s["ase_status"]["403"].as_u64(), Some(10));
    assert_eq!(s["reports_sent"].as_u64(), Some(responses.len() as u64));
    assert_eq!(s["payload_truncated"].as_u64(), Some(0), "every payload fits in 64k: {s}");
    let node = &s["nodes"][0];
    assert_eq!(node["url"].as_str(), Some(double.url().as_str()));
    assert_eq!(node["calls"].as_u64(), Some((requests.len() + responses.len()) as u64), "{s}");
    assert!(node["latency_ms"]["p50"].as_u64().is_some(), "{s}");
    let stats = double.stats();
    assert_eq!(stats["requests"].as_u64(), Some(requests.len() as u64));
    assert_eq!(stats["responses"].as_u64(), Some(responses.len() as u64));
}

#[test]
fn prometheus_output_parses() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend, 1, true);
    mixed_load(&n, &double);
    let text = client().get(n.url("/status?format=prometheus")).send().unwrap().text().unwrap();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    let mut by: HashMap<(String, String), f64> = HashMap::new();
    for s in &scrape.samples {
        let mut labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        let label = labels.join(",");
        let v = match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        };
        by.insert((s.metric.clone(), label), v);
    }
    assert_eq!(by[&("nginx_ase_verdicts_total".into(), "verdict=block".into())], 10.0);
    assert_eq!(by[&("nginx_ase_checks_total".into(), String::new())], 35.0);
    assert_eq!(by[&("nginx_ase_node_up".into(), format!("group=default,node={}", double.url()))], 1.0);
    assert_eq!(by[&("nginx_ase_breaker_open".into(), "group=default".into())], 0.0);
    assert_eq!(by[&("nginx_ase_group_checks_total".into(), "group=default".into())], 35.0);
    assert!(scrape.docs.contains_key("nginx_ase_errors_total"));
    assert_eq!(by[&("nginx_ase_payload_truncated_total".into(), String::new())], 0.0);
}

#[test]
fn counters_survive_a_reload() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend, 1, true);
    for i in 0..5 {
        client().get(n.url(&format!("/r{i}"))).send().unwrap();
    }
    assert_eq!(status(&n)["checks"].as_u64(), Some(5));
    n.signal("reload");
    // the new worker answers once the old one is gone
    ngx_ase_tests::wait_for("the reloaded worker", std::time::Duration::from_secs(5), || {
        (n.error_log().matches("exited with code 0").count() >= 1).then_some(())
    });
    client().get(n.url("/after")).send().unwrap();
    assert_eq!(status(&n)["checks"].as_u64(), Some(6), "counters were reset by the reload");
}

#[test]
fn without_a_zone_the_page_shows_this_workers_counters() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend, 1, false);
    client().get(n.url("/w")).send().unwrap();
    let s = status(&n);
    assert_eq!((s["scope"].as_str(), s["checks"].as_u64()), (Some("this_worker"), Some(1)));
}

#[test]
fn zone_mistakes_are_configuration_errors() {
    for (zone, needle) in [
        ("ase_zone ase 8k;", "is too small, it must be at least 64k"),
        ("ase_zone ase lots;", "invalid size \"lots\""),
        ("ase_zone ase 1m;\nase_zone other 1m;", "\"ase_zone\" directive is duplicate"),
    ] {
        let n = Nginx::prepare(&config_with_http(&format!("ase_server http://127.0.0.1:1;\n{zone}")));
        let out = n.test_config();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(needle) && err.contains("nginx.conf:"), "{zone}: {err}");
    }
}
