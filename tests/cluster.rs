//! An ASE cluster: the checks and reports are shared among the primaries (nginx's smooth
//! weighted round robin), in the default group and in an `ase_upstream` block.

use ngx_ase_tests::{client, AseDouble, Backend, Nginx};

/// Three primaries share the checks evenly, a `weight=2` node twice as much, and a backup
/// takes none while a primary is up; the reports are spread too.
#[test]
fn the_primaries_share_the_checks() {
    let doubles: Vec<AseDouble> = (0..4).map(|_| AseDouble::start(&["--keepalive"])).collect();
    let backup = AseDouble::start(&[]);
    let backend = Backend::start();
    let n = Nginx::start(&format!(
        r#"
    ase_server {a};
    ase_server {b};
    ase_server {c};
    ase_server {bk} backup;
    ase_upstream weighted {{ server {a} weight=2; server {d}; }}
    ase_request on;
    ase_response on;
    ase_timeout 2s;
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ proxy_pass http://{be}; }}
        location /weighted/ {{ ase_pass weighted; proxy_pass http://{be}; }}
    }}
"#,
        a = doubles[0].url(),
        b = doubles[1].url(),
        c = doubles[2].url(),
        d = doubles[3].url(),
        bk = backup.url(),
        be = backend.addr()
    ));
    for i in 0..300 {
        assert_eq!(client().get(n.url(&format!("/api/{i}"))).send().expect("request").status(), 200);
    }
    let checks = |d: &AseDouble| d.records_of("request").len();
    assert_eq!([checks(&doubles[0]), checks(&doubles[1]), checks(&doubles[2])], [100, 100, 100]);
    assert_eq!(checks(&backup), 0, "a backup took checks while the primaries were up");
    // The reports of those 300 responses go round as well (they are queued, so wait).
    for d in &doubles[..3] {
        d.wait_records("response", 100);
    }
    for d in &doubles[..4] {
        d.clear_records();
    }
    for i in 0..300 {
        assert_eq!(client().get(n.url(&format!("/weighted/{i}"))).send().expect("request").status(), 200);
    }
    assert_eq!([checks(&doubles[0]), checks(&doubles[3])], [200, 100], "weight=2 takes twice the share");
}
