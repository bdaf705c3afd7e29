//! A panic inside the channel never reaches nginx: it fails the one call it happened in
//! (counted as `internal`, logged at `alert`), and the worker keeps serving.
//!
//! The panic is injected by the test-only build feature `fault-injection` of
//! ngx-ase-common (an ASE answer carrying `X-Ngx-Ase-Test-Panic` panics while it is
//! parsed), which only the `vendored` flavour has (scripts/build.sh).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ngx_ase_tests::{client, flavour, Backend, Nginx};
use serde_json::Value;

/// A minimal ASE: answers each request on its own connection with 200, and the first one
/// with the panic header too.
fn panicking_ase() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let n = count.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 8192];
            let mut got = Vec::new();
            // Read up to the end of the request (headers and a Content-Length body).
            while let Ok(k) = s.read(&mut buf) {
                if k == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..k]);
                if request_complete(&got) {
                    break;
                }
            }
            let extra = if n == 0 { "X-Ngx-Ase-Test-Panic: 1\r\n" } else { "" };
            let _ = write!(s, "HTTP/1.1 200 OK\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (format!("http://{addr}"), served)
}

fn request_complete(got: &[u8]) -> bool {
    let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else { return false };
    let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0)))
        .unwrap_or(0);
    got.len() >= end + 4 + len
}

#[test]
fn a_panic_in_the_channel_fails_one_call_and_the_worker_keeps_serving() {
    if flavour() != "vendored" {
        eprintln!("skipped: only the vendored build has the fault-injection feature");
        return;
    }
    let (ase, served) = panicking_ase();
    let backend = Backend::start();
    let n = Nginx::start(&format!(
        r#"
    ase_server {ase};
    ase_request on;
    ase_timeout 2s;
    log_format ase '$request_uri $status $ase_verdict';
    access_log logs/ase.log ase;
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ proxy_pass http://{backend}; }}
        location = /status {{ ase_request off; ase_status; }}
    }}
"#,
        backend = backend.addr()
    ));
    let first = client().get(n.url("/first")).send().expect("first request");
    assert_eq!(first.status(), 200, "the call that panicked fails open");
    for i in 0..5 {
        let r = client().get(n.url(&format!("/after{i}"))).send().expect("later request");
        assert_eq!(r.status(), 200);
    }
    let verdicts = n.log_lines("logs/ase.log", 6);
    assert_eq!(verdicts[0], "/first 200 fail_open", "{verdicts:?}");
    assert!(verdicts[1..].iter().all(|l| l.ends_with(" 200 allow")), "{verdicts:?}");
    assert!(served.load(Ordering::SeqCst) >= 6, "every check reached the ASE");
    let status: Value = client().get(n.url("/status")).send().expect("status").json().expect("json");
    assert_eq!(status["errors"]["internal"].as_u64(), Some(1), "{status}");
    assert_eq!(status["fail_open_by_cause"]["internal"].as_u64(), Some(1), "{status}");
    let log = n.error_log();
    let alerts: Vec<&str> = log.lines().filter(|l| l.contains("[alert]") && l.contains("injected panic")).collect();
    assert_eq!(alerts.len(), 1, "one alert for the one panic: {alerts:?}");
    assert!(alerts[0].contains("ase: internal error in ASE read event"), "{alerts:?}");
    // (crashed_workers() would list the injected panic's own lines: look for a dead worker.)
    assert!(!log.contains("exited on signal"), "a worker died");
    let started = log.lines().filter(|l| l.contains("start worker process ")).count();
    assert_eq!(started, 1, "the one worker (worker_processes 1) was never replaced");
}
