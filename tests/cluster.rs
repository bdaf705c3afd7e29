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
    ase_upstream fewest {{ least_conn; server {b} max_conns=64; server {c}; }}
    ase_request on;
    ase_response on;
    ase_timeout 2s;
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ proxy_pass http://{be}; }}
        location /weighted/ {{ ase_pass weighted; proxy_pass http://{be}; }}
        location /fewest/ {{ ase_pass fewest; ase_response off; proxy_pass http://{be}; }}
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
    // least_conn: one check at a time (and no reports, which would keep a node busy as the
    // next check comes), so every node is idle each time: they take turns.
    for d in &doubles[..4] {
        d.clear_records();
    }
    for i in 0..100 {
        assert_eq!(client().get(n.url(&format!("/fewest/{i}"))).send().expect("request").status(), 200);
    }
    assert_eq!([checks(&doubles[1]), checks(&doubles[2])], [50, 50]);
}

/// A primary that was down comes back into the rotation once its `fail_timeout` is over,
/// while the other primary is up all along (nginx's round robin does the same): the first
/// check after `fail_timeout` probes it, and from its answer on the two share the checks.
#[test]
fn a_recovered_primary_takes_its_share_again() {
    let mut a = AseDouble::start(&["--keepalive"]);
    let b = AseDouble::start(&["--keepalive"]);
    let backend = Backend::start();
    let n = Nginx::start(&format!(
        r#"
    ase_server {a} max_fails=1 fail_timeout=1s;
    ase_server {b} max_fails=1 fail_timeout=1s;
    ase_request on;
    ase_timeout 2s;
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ proxy_pass http://{be}; }}
    }}
"#,
        a = a.url(),
        b = b.url(),
        be = backend.addr()
    ));
    let get = |i: usize| client().get(n.url(&format!("/api/{i}"))).send().expect("request").status();
    a.stop();
    for i in 0..10 {
        assert_eq!(get(i), 200, "the check moved on to the primary that is up");
    }
    a.restart();
    // Until fail_timeout is over the node stays down; after it, a check probes it. Poll:
    // a loaded machine may take longer than the second.
    let mut i = 10;
    ngx_ase_tests::wait_for("a check to reach the recovered primary", std::time::Duration::from_secs(20), || {
        i += 1;
        assert_eq!(get(i), 200);
        (!a.records_of("request").is_empty()).then_some(())
    });
    a.clear_records();
    b.clear_records();
    for j in 0..20 {
        assert_eq!(get(1000 + j), 200);
    }
    let checks = |d: &AseDouble| d.records_of("request").len();
    assert_eq!([checks(&a), checks(&b)], [10, 10], "the recovered primary takes its share again");
}
