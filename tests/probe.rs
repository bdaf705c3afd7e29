//! The probe of a down node must not cost the client who carries it its check: a primary
//! that accepts and never answers, and a healthy backup that denies the client. Each time
//! the primary's down time is over, one check probes it; it gives up after half its
//! `ase_timeout` and is answered by the backup (403), instead of failing open.

use std::time::Duration;

use ngx_ase_tests::{client, nginx_time, AseDouble, Backend, Nginx};
use serde_json::json;

#[test]
fn the_check_that_probes_a_hung_primary_is_answered_by_the_backup() {
    let (primary, backup, backend) = (AseDouble::start(&[]), AseDouble::start(&[]), Backend::start());
    let n = Nginx::start(&format!(
        r#"
    ase_server {p} max_fails=1 fail_timeout=1s;
    ase_server {b} backup;
    ase_request on;
    ase_timeout {timeout};
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ proxy_pass http://{be}; }}
    }}
"#,
        p = primary.url(),
        b = backup.url(),
        be = backend.addr(),
        timeout = nginx_time(Duration::from_secs(2)),
    ));
    let get = |path: &str| client().get(n.url(path)).send().expect("request").status().as_u16();
    primary.fault(json!({"kind": "hang"}));
    backup.deny("ip", "127.0.0.1");
    // The primary takes the whole ase_timeout and goes down: that one check fails open.
    assert_eq!(get("/first"), 200);
    assert_eq!(get("/second"), 403, "the backup answers while the primary is down");
    for round in 0..2 {
        // The primary's fail_timeout runs out: the next check probes it.
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(get(&format!("/probe{round}")), 403, "the probing check failed open (round {round})");
    }
    assert_eq!(backend.paths(), ["/first"], "a denied client reached the backend");
    assert!(primary.records_of("request").len() >= 3, "the primary was probed");
}
