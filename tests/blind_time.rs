//! One bad answer must not buy blind time: with every node of a group down, nginx probes
//! early (a few hundred ms after the failure, backing off to a second while it keeps
//! failing) instead of failing every check open for a whole `fail_timeout`. The time the
//! breaker was open is counted (`blind_ms`).

use std::time::{Duration, Instant};

use ngx_ase_tests::{client, AseDouble, Backend, Nginx};
use serde_json::{json, Value};

/// A lone node with `max_fails=1 fail_timeout=60s` gives one 500: a client the ASE denies is
/// let through while the breaker is open, but blocked again long before the 60 s are over,
/// and the status page and Prometheus show the blind time.
#[test]
fn one_failed_answer_does_not_leave_nginx_blind_for_fail_timeout() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = Nginx::start(&format!(
        r#"
    ase_server {ase} max_fails=1 fail_timeout=60s;
    ase_request on;
    ase_timeout 2s;
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ proxy_pass http://{b}; }}
        location = /status {{ ase_request off; ase_status; }}
    }}
"#,
        ase = double.url(),
        b = backend.addr()
    ));
    let get = |path: &str| client().get(n.url(path)).send().expect("request").status().as_u16();
    double.deny("ip", "127.0.0.1");
    assert_eq!(get("/a"), 403);
    double.fault(json!({"kind": "status", "status": 500, "count": 1}));
    assert_eq!(get("/b"), 200, "the 500 fails open");
    // The ASE answers again at once. Enforcement is back within a bound far below
    // fail_timeout (60 s); it is ~250 ms, the bound leaves room for a loaded machine.
    let started = Instant::now();
    let mut through = 0;
    loop {
        match get("/c") {
            403 => break,
            _ if started.elapsed() < Duration::from_secs(20) => through += 1,
            s => panic!("still {s} after {:?}: blind for fail_timeout", started.elapsed()),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let status: Value = client().get(n.url("/status")).send().and_then(|r| r.json()).expect("status JSON");
    let blind = status["groups"]["default"]["blind_ms"].as_u64().expect("blind_ms");
    assert!(through == 0 || blind > 0, "{through} requests passed blind, none counted: {status}");
    assert_eq!(status["blind_ms"], status["groups"]["default"]["blind_ms"], "{status}");
    let prom = client().get(n.url("/status?format=prometheus")).send().and_then(|r| r.text()).expect("prometheus");
    assert!(prom.contains(&format!("nginx_ase_group_blind_ms_total{{group=\"default\"}} {blind}\n")), "{prom}");
}
