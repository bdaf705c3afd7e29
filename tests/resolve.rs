//! `resolve` on a server line: the ASE's host name is resolved by nginx's own resolver while
//! nginx runs, and its addresses are followed without a reload (new ones join, vanished
//! ones drain). A tiny DNS server on loopback (`harness/dns.rs`) whose answer the test
//! changes, and two ASE doubles on the same port of two loopback addresses.

use std::time::Duration;

use ngx_ase_tests::nginx::{config_with_http, Nginx};
use ngx_ase_tests::{client, wait_for, AseDouble, Backend, Dns};
use serde_json::Value;

const NAME: &str = "ase.test";

/// Two doubles on 127.0.0.2:P and 127.0.0.3:P (one URL port for both addresses).
fn two_doubles() -> (AseDouble, AseDouble, u16) {
    let a = AseDouble::start_on("127.0.0.2:0", &["--keepalive"]);
    let port: u16 = a.url().rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
    let b = AseDouble::start_on(&format!("127.0.0.3:{port}"), &["--keepalive"]);
    (a, b, port)
}

fn start(dns: &Dns, port: u16, backend: &Backend) -> Nginx {
    start_valid(dns, port, backend, "1s")
}

/// nginx following `ase.test` with answers valid for `valid`.
fn start_valid(dns: &Dns, port: u16, backend: &Backend, valid: &str) -> Nginx {
    Nginx::start(&format!(
        r#"
    resolver {dns} valid={valid} ipv6=off;
    resolver_timeout 2s;
    ase_server http://{NAME}:{port} resolve;
    ase_request on;
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ proxy_pass http://{backend}; }}
        location = /status {{ ase_request off; ase_status; }}
    }}
"#,
        dns = dns.addr(),
        backend = backend.addr()
    ))
}

fn status(n: &Nginx) -> Value {
    client().get(n.url("/status")).send().expect("status page").json().expect("status JSON")
}

/// The addresses the status page lists for the name.
fn listed(n: &Nginx) -> Vec<String> {
    let s = status(n);
    let mut a: Vec<String> =
        s["nodes"].as_array().expect("nodes").iter().filter_map(|x| x["address"].as_str().map(String::from)).collect();
    a.sort();
    a
}

/// Sends requests until one reaches `double` (the resolver's answer takes a moment).
fn until_reached(n: &Nginx, double: &AseDouble, what: &str) {
    let mut i = 0;
    wait_for(what, Duration::from_secs(30), || {
        i += 1;
        let r = client().get(n.url(&format!("/probe{i}"))).send().expect("request");
        assert_eq!(r.status(), 200);
        (!double.records_of("request").is_empty()).then_some(())
    });
}

#[test]
fn a_name_whose_address_changes_is_followed_without_a_reload() {
    let (dns, backend) = (Dns::start(), Backend::start());
    let (a, b, port) = two_doubles();
    dns.set(NAME, &["127.0.0.2"]);
    let n = start(&dns, port, &backend);
    until_reached(&n, &a, "a check to reach 127.0.0.2");
    assert_eq!(listed(&n), vec![format!("127.0.0.2:{port}")]);
    assert!(b.records_of("request").is_empty());

    // The name moves: the new address joins, the old one drains; no reload.
    dns.set(NAME, &["127.0.0.3"]);
    until_reached(&n, &b, "a check to reach 127.0.0.3");
    a.clear_records();
    for i in 0..5 {
        assert_eq!(client().get(n.url(&format!("/after{i}"))).send().unwrap().status(), 200);
    }
    assert_eq!(
        b.records_of("request")
            .iter()
            .filter(|r| r["body"]["url"].as_str().is_some_and(|u| u.starts_with("/after")))
            .count(),
        5
    );
    assert!(a.records_of("request").is_empty(), "nothing more goes to the vanished address");
    assert_eq!(listed(&n), vec![format!("127.0.0.3:{port}")]);
    let log = n.error_log();
    assert!(log.contains(&format!("node http://{NAME}:{port} (127.0.0.3:{port}) joins")), "{log}");
    assert!(log.contains(&format!("node http://{NAME}:{port} (127.0.0.2:{port}) drains")), "{log}");

    // Both addresses: both nodes, each with its own health.
    dns.set(NAME, &["127.0.0.3", "127.0.0.2"]);
    let both = vec![format!("127.0.0.2:{port}"), format!("127.0.0.3:{port}")];
    wait_for("both addresses to be in use", Duration::from_secs(30), || (listed(&n) == both).then_some(()));
    assert!(dns.queries() >= 3, "re-resolved per the answer's validity");
    assert!(n.crashed_workers().is_empty());
}

#[test]
fn a_quitting_worker_does_not_wait_for_the_next_resolution() {
    let (dns, backend) = (Dns::start(), Backend::start());
    let (a, _b, port) = two_doubles();
    dns.set(NAME, &["127.0.0.2"]);
    let n = start_valid(&dns, port, &backend, "300s");
    until_reached(&n, &a, "a check to reach 127.0.0.2");
    n.signal("quit");
    // The next resolution is 300 s away: a timer nginx waited for would hold the worker.
    wait_for("nginx to quit", Duration::from_secs(20), || {
        let log = n.error_log();
        (log.contains("exited with code 0") && std::net::TcpStream::connect(("127.0.0.1", n.port)).is_err())
            .then_some(())
    });
}

/// A DNS query for `name` of type `qtype` (1 = A, 28 = AAAA).
fn query(name: &str, qtype: u16) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for l in name.split('.') {
        q.push(l.len() as u8);
        q.extend_from_slice(l.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    q
}

#[test]
fn the_test_dns_server_answers_from_its_table() {
    let dns = Dns::start();
    dns.set(NAME, &["127.0.0.2", "127.0.0.3"]);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let ask = |name: &str, qtype: u16| {
        sock.send_to(&query(name, qtype), dns.addr()).unwrap();
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).expect("an answer");
        buf[..n].to_vec()
    };
    let a = ask("ASE.test", 1);
    assert_eq!(&a[..2], &[0x12, 0x34]);
    assert_eq!((a[3] & 0x0f, u16::from_be_bytes([a[6], a[7]])), (0, 2), "NOERROR, two answers");
    assert_eq!(&a[a.len() - 4..], &[127, 0, 0, 3]);
    let aaaa = ask(NAME, 28);
    assert_eq!((aaaa[3] & 0x0f, u16::from_be_bytes([aaaa[6], aaaa[7]])), (0, 0));
    assert_eq!(ask("other.test", 1)[3] & 0x0f, 3, "NXDOMAIN");
    dns.set(NAME, &[]);
    assert_eq!(ask(NAME, 1)[3] & 0x0f, 3, "a name taken away is gone");
}

#[test]
fn resolve_needs_a_resolver_and_a_host_name() {
    for (http, needle) in [
        (
            "ase_server http://ase.test:8000 resolve;",
            "\"resolve\" needs nginx's \"resolver\" directive in the http block",
        ),
        ("resolver 127.0.0.1;\nase_server http://127.0.0.1:8000 resolve;", "\"resolve\" needs a host name"),
        (
            "ase_upstream eu {\n server http://ase.test:8000 resolve;\n}",
            "\"resolve\" needs nginx's \"resolver\" directive in the http block",
        ),
    ] {
        let n = Nginx::prepare(&config_with_http(http));
        let out = n.test_config();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "nginx -t accepted:\n{http}");
        assert!(err.contains(needle), "expected {needle:?} in:\n{err}");
        let line = config_with_http(http).lines().position(|l| l.contains("resolve;")).unwrap() + 1;
        assert!(
            err.contains(&format!("{}:{line}", n.path("conf/nginx.conf").display())),
            "expected line {line} in:\n{err}"
        );
    }
    let n = Nginx::prepare(&config_with_http("resolver 127.0.0.1;\nase_server http://ase.test:8000 resolve;"));
    let out = n.test_config();
    assert!(
        out.status.success(),
        "a name nobody resolves yet is fine with resolve:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
