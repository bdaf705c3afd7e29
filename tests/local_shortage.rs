//! nginx's own shortage is not the ASE's fault: when slow clients hold every one of
//! `worker_connections`, the check of the next request cannot get a connection to the ASE.
//! That call fails as `local` (counted, logged), but no node is marked down and the breaker
//! stays closed, so the moment connections are free again the ASE is asked as usual.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use ngx_ase_tests::{AseDouble, Nginx};
use serde_json::Value;

/// One request on its own connection; its status (0 when nginx gave no answer).
fn get(port: u16, path: &str) -> u16 {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return 0 };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let req = format!("GET {path} HTTP/1.1\r\nHost: local\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return 0;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[test]
fn a_connection_nginx_cannot_open_charges_no_ase_node() {
    let double = AseDouble::start(&[]);
    let http = format!(
        r#"
    ase_server {ase} max_fails=1 fail_timeout=60s;
    ase_request on;
    ase_timeout 2s;
    log_format ase '$uri $status $ase_verdict';
    access_log logs/ase.log ase;
    server {{
        listen 127.0.0.1:{{port}};
        root html;
        location / {{ }}
        location = /status {{ ase_request off; ase_status; }}
    }}
"#,
        ase = double.url(),
    );
    let port = ngx_ase_tests::free_port();
    let config = ngx_ase_tests::nginx::config_with_http(&http.replace("{port}", &port.to_string()))
        .replace("worker_connections 4096", "worker_connections 16");
    let mut n = Nginx::prepare(&config);
    n.write_file("html/index.html", "ok");
    n.port = port;
    n.launch();
    assert_eq!(get(port, "/"), 200);
    // Slow clients take the connections one by one (a request line, never finished). Each
    // time, a request follows: once it is the last connection nginx has, its check finds no
    // connection for the ASE (the double closes each one, so every check needs a new one).
    let mut held = Vec::new();
    let mut local = false;
    for _ in 0..16 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("a slow client connects");
        s.write_all(b"GET / HTTP/1.1\r\n").expect("a slow client writes");
        held.push(s);
        std::thread::sleep(Duration::from_millis(50));
        let _ = get(port, "/");
        if n.error_log().contains("could not open a connection to the ASE") {
            local = true;
            break;
        }
    }
    assert!(local, "worker_connections never ran out for the check: {}", n.error_log());
    drop(held);
    // Connections are free again: the node was never marked down, so a client the ASE
    // denies is refused at once (no fail-open while a breaker waits out fail_timeout).
    double.deny("ip", "127.0.0.1");
    assert_eq!(get(port, "/"), 403);
    let log = n.error_log();
    assert!(!log.contains("is down"), "{log}");
    let status: Value = ngx_ase_tests::client().get(n.url("/status")).send().and_then(|r| r.json()).expect("status");
    assert!(status["errors"]["local"].as_u64().is_some_and(|l| l >= 1), "{status}");
    assert_eq!(status["errors"]["refused"], 0, "our shortage was called refused: {status}");
    assert_eq!(status["breaker_trips"], 0, "{status}");
}
