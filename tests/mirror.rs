//! `ase_mirror NAME`: every check and report also goes to a second group, which nobody
//! waits for and whose answer changes nothing. Real nginx and two ASE doubles on loopback:
//! the default group (the one the location passes to) and group `new` (the mirror).

use ngx_ase_tests::nginx::{config_with_http, expect_refused, Nginx};
use ngx_ase_tests::{client, wait_for, AseDouble, Backend, TEST_TOKEN};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// nginx checking and reporting to `main`, mirroring to `mirror` (group `new`) everywhere
/// but `/quiet/` (`ase_mirror off`).
fn start(main: &AseDouble, mirror: &AseDouble, backend: &Backend) -> Nginx {
    Nginx::start(&format!(
        r#"
    ase_server {main};
    ase_token {TEST_TOKEN};
    ase_upstream new {{ server {mirror}; }}
    ase_mirror new;
    ase_timeout 10s;
    ase_zone ase 1m;
    ase_request on;
    ase_response on;
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ proxy_pass http://{backend}; }}
        location /quiet/ {{ ase_mirror off; proxy_pass http://{backend}; }}
        location = /status {{ ase_request off; ase_response off; ase_status; }}
    }}
"#,
        main = main.url(),
        mirror = mirror.url(),
        backend = backend.addr()
    ))
}

fn status(n: &Nginx) -> Value {
    client().get(n.url("/status")).send().expect("status page").json().expect("status JSON")
}

fn get(n: &Nginx, path: &str) -> u16 {
    let r = client().get(n.url(path)).send().expect("request");
    let status = r.status().as_u16();
    r.text().expect("body");
    status
}

/// (url, correlation ID) of the `kind` records the double holds.
fn calls(d: &AseDouble, kind: &str) -> Vec<(String, String)> {
    d.records_of(kind)
        .iter()
        .map(|r| {
            let url = r["body"]["url"].as_str().unwrap_or_default().to_string();
            (url, r["correlation_id"].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

#[test]
fn both_groups_get_the_metadata_and_the_report() {
    let (main, mirror, backend) = (AseDouble::start(&[]), AseDouble::start(&[]), Backend::start());
    let n = start(&main, &mirror, &backend);
    assert_eq!(get(&n, "/one"), 200);
    assert_eq!(get(&n, "/quiet/two"), 200);
    main.wait_records("response", 2);
    mirror.wait_records("response", 1);
    assert_eq!(calls(&main, "request").len(), 2);
    let copied = calls(&mirror, "request");
    assert_eq!(copied.len(), 1, "ase_mirror off sends no copy: {copied:?}");
    // The same call, correlation ID and all: the new cluster can pair it with its report.
    assert!(calls(&main, "request").contains(&copied[0]), "{copied:?}");
    assert_eq!(copied[0].0, "/one");
    assert_eq!(calls(&mirror, "response")[0].1, copied[0].1, "the report pairs with the mirrored check");

    let s = wait_for("the mirror's counters", Duration::from_secs(10), || {
        let s = status(&n);
        (s["groups"]["new"]["mirrored_sent"] == 2).then_some(s)
    });
    assert_eq!(s["groups"]["new"]["mirrored"], 2, "{s}");
    assert_eq!(s["groups"]["new"]["mirrored_dropped"], 0, "{s}");
    assert_eq!(s["groups"]["default"]["mirrored"], 0, "{s}");
    assert_eq!(s["groups"]["default"]["checks"], 2, "{s}");
    let text = client().get(n.url("/status?format=prometheus")).send().unwrap().text().unwrap();
    assert!(text.contains("nginx_ase_group_mirrored_sent_total{group=\"new\"} 2\n"), "{text}");
}

#[test]
fn the_mirrors_deny_and_slowness_change_nothing_for_the_client() {
    let (main, mirror, backend) = (AseDouble::start(&[]), AseDouble::start(&[]), Backend::start());
    let n = start(&main, &mirror, &backend);
    mirror.deny("ip", "127.0.0.1");
    let delay = Duration::from_millis(4000);
    mirror.fault(json!({"kind": "delay", "ms": delay.as_millis() as u64, "calls": "request"}));
    for i in 0..3 {
        let t = Instant::now();
        assert_eq!(get(&n, &format!("/slow{i}")), 200, "the mirror's deny is not acted on");
        assert!(t.elapsed() < delay / 2, "a client waited {:?} for a mirror that takes {delay:?}", t.elapsed());
    }
    // The mirror did get (and deny) each check, in its own time.
    wait_for("the mirrored checks", Duration::from_secs(30), || (calls(&mirror, "request").len() == 3).then_some(()));
    mirror.clear_fault();
    let s = status(&n);
    assert_eq!(s["verdicts"]["allow"], 3, "{s}");
    assert_eq!(s["verdicts"]["block"], 0, "{s}");
    let errors = s["groups"]["default"]["errors"].as_object().expect("errors").values().filter_map(Value::as_u64);
    assert_eq!(errors.sum::<u64>(), 0, "the main group saw no error: {s}");
}

#[test]
fn a_dead_mirror_leaves_the_main_group_alone() {
    let (main, mut mirror, backend) = (AseDouble::start(&[]), AseDouble::start(&[]), Backend::start());
    let n = start(&main, &mirror, &backend);
    mirror.stop();
    for i in 0..6 {
        assert_eq!(get(&n, &format!("/dead{i}")), 200);
    }
    main.wait_records("response", 6);
    let s = wait_for("the mirror's failures counted", Duration::from_secs(10), || {
        let s = status(&n);
        (s["groups"]["new"]["mirrored"] == 12).then_some(s)
    });
    assert_eq!(s["groups"]["new"]["mirrored_sent"], 0, "{s}");
    assert_eq!(s["groups"]["default"]["breaker"], "closed", "{s}");
    assert_eq!(s["verdicts"]["allow"], 6, "{s}");
    let nodes = s["nodes"].as_array().expect("nodes");
    assert_eq!(nodes[0]["state"], "up", "the main node is up: {s}");
}

#[test]
fn configuration_mistakes_are_refused_at_their_line() {
    let upstream = "ase_server http://127.0.0.1:1; ase_token t0k3nt0k3nt0k3nt0k3nt0k3nt0k3n99;";
    expect_refused(
        &format!("{upstream}\n server {{ listen 127.0.0.1:1; location / {{\n ase_mirror nope;\n }} }}"),
        "no \"ase_upstream\" block is named \"nope\" in \"ase_mirror\" directive",
        "ase_mirror nope",
    );
    expect_refused(
        &format!("{upstream}\n ase_upstream new {{ server http://127.0.0.1:2; }}\n ase_mirror new;\n ase_mirror off;"),
        "\"ase_mirror\" directive is duplicate",
        "ase_mirror off",
    );
    expect_refused(
        &format!("{upstream}\n ase_mirror;"),
        "invalid number of arguments in \"ase_mirror\" directive",
        "ase_mirror;",
    );
    // Accepted anywhere, naming a block that comes later, and "default" or "off".
    let fine = config_with_http(&format!(
        "{upstream}\n ase_mirror new;\n ase_upstream new {{ server http://127.0.0.1:2; }}\n server {{ listen \
         127.0.0.1:1; ase_mirror default; location / {{ ase_pass new; }} location /x/ {{ ase_mirror off; }} }}"
    ));
    let out = Nginx::prepare(&fine).test_config();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
