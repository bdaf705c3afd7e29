//! Reliability under operations, misbehaving clients and a misbehaving ASE (short
//! versions; `scripts/soak.sh` runs longer ones). A load generator checks every response.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ngx_ase_tests::{client, AseDouble, Backend, Nginx};
use serde_json::{json, Value};

fn start(servers: &str, backend: &Backend, extra: &str) -> Nginx {
    Nginx::start(&format!(
        r#"
    {servers}
    ase_request on;
    ase_response on;
    ase_timeout 1s;
    {extra}
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ proxy_pass http://{backend}; }}
        location = /status {{ ase_request off; ase_response off; ase_status; }}
    }}
"#,
        backend = backend.addr()
    ))
}

/// Clients hammering nginx until stopped; returns every status they got (0 = no answer).
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Vec<u16>>>,
}

impl Load {
    fn start(url: String, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..clients)
            .map(|c| {
                let (url, stop) = (url.clone(), stop.clone());
                std::thread::spawn(move || {
                    // A new connection per request: a keep-alive connection that a reloading
                    // worker closes just as the client reuses it fails in any HTTP server, so
                    // it would not tell us anything about the modules.
                    let http = reqwest::blocking::Client::builder()
                        .timeout(Duration::from_secs(10))
                        .no_proxy()
                        .pool_max_idle_per_host(0)
                        .build()
                        .unwrap();
                    let mut out = Vec::new();
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        out.push(
                            http.get(format!("{url}/load{c}-{i}")).send().map(|r| r.status().as_u16()).unwrap_or(0),
                        );
                        i += 1;
                    }
                    out
                })
            })
            .collect();
        Load { stop, threads }
    }

    fn finish(self) -> Vec<u16> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads.into_iter().flat_map(|t| t.join().unwrap()).collect()
    }
}

fn assert_all_ok(statuses: &[u16]) {
    assert!(statuses.len() > 20, "the load ran ({} requests)", statuses.len());
    let bad: Vec<_> = statuses.iter().filter(|&&s| s != 200).collect();
    assert!(
        bad.is_empty(),
        "{} of {} client requests failed: {:?}",
        bad.len(),
        statuses.len(),
        &bad[..bad.len().min(20)]
    );
}

fn status(n: &Nginx) -> Value {
    client().get(n.url("/status")).send().unwrap().json().unwrap()
}

fn worker_rss_kib(n: &Nginx) -> u64 {
    let master: u32 = std::fs::read_to_string(n.path("logs/nginx.pid")).unwrap().trim().parse().unwrap();
    let children = std::fs::read_to_string(format!("/proc/{master}/task/{master}/children")).unwrap_or_default();
    children
        .split_whitespace()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .sum()
}

#[test]
fn ten_reloads_under_load_fail_no_request() {
    let (double, backend) = (AseDouble::start(&["--keepalive"]), Backend::start());
    let n = start(&format!("ase_server {};", double.url()), &backend, "");
    double.fault(json!({"kind": "delay", "ms": 50, "calls": "request"}));
    let load = Load::start(n.url(""), 6);
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(150));
        n.signal("reload");
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_all_ok(&load.finish());
    assert!(n.crashed_workers().is_empty(), "{:?}", n.crashed_workers());
    let left: Vec<String> = n.error_log().lines().filter(|l| l.contains("open socket")).map(String::from).collect();
    assert!(left.is_empty(), "a worker left a socket behind: {left:?}");
}

#[test]
fn binary_upgrade_under_load_fails_no_request() {
    let (double, backend) = (AseDouble::start(&["--keepalive"]), Backend::start());
    // nginx refuses USR2 unless its master is a daemon (parent = init): start it daemonised.
    let port = ngx_ase_tests::free_port();
    let http = format!(
        "ase_server {};\nase_request on;\nase_response on;\nserver {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://{}; }} }}",
        double.url(),
        backend.addr()
    );
    let mut n = Nginx::prepare(&ngx_ase_tests::nginx::config_with_http(&http));
    n.port = port;
    let (bin, _) = ngx_ase_tests::nginx::binary_and_modules();
    let bin = std::fs::canonicalize(bin).unwrap();
    assert!(std::process::Command::new(&bin)
        .arg("-p")
        .arg(n.prefix.path())
        .args(["-c", "conf/nginx.conf"])
        .status()
        .unwrap()
        .success());
    let pid_of =
        |f: &str| std::fs::read_to_string(n.path(f)).ok().map(|p| p.trim().to_string()).filter(|p| !p.is_empty());
    let kill = |sig: &str, pid: &str| {
        std::process::Command::new("kill").args([sig, pid]).status().map(|s| s.success()).unwrap_or(false)
    };
    ngx_ase_tests::wait_for("nginx to listen", Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    });
    let old_master = ngx_ase_tests::wait_for("the pid file", Duration::from_secs(10), || pid_of("logs/nginx.pid"));
    let load = Load::start(n.url(""), 6);
    std::thread::sleep(Duration::from_millis(200));
    assert!(kill("-USR2", &old_master));
    let new_master = ngx_ase_tests::wait_for("the new master", Duration::from_secs(10), || {
        pid_of("logs/nginx.pid").filter(|p| *p != old_master && pid_of("logs/nginx.pid.oldbin").is_some())
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(kill("-WINCH", &old_master));
    std::thread::sleep(Duration::from_millis(300));
    assert!(kill("-QUIT", &old_master));
    std::thread::sleep(Duration::from_millis(500));
    let statuses = load.finish();
    kill("-TERM", &new_master);
    assert_all_ok(&statuses);
    assert!(n.crashed_workers().is_empty(), "{:?}", n.crashed_workers());
    assert!(n.error_log().contains("SIGUSR2"), "the upgrade happened");
}

#[test]
fn ase_killed_and_restarted_under_load_fails_no_request_and_records_resume() {
    let (mut double, backend) = (AseDouble::start(&["--keepalive"]), Backend::start());
    let n = start(&format!("ase_server {} fail_timeout=1s;", double.url()), &backend, "");
    let load = Load::start(n.url(""), 4);
    std::thread::sleep(Duration::from_millis(300));
    double.stop();
    std::thread::sleep(Duration::from_millis(500));
    double.restart();
    std::thread::sleep(Duration::from_millis(1500));
    assert_all_ok(&load.finish());
    assert!(!double.records_of("request").is_empty(), "the restarted ASE gets checks again");
}

#[test]
fn primary_killed_with_a_backup_under_load_fails_no_request() {
    let (mut primary, backup, backend) =
        (AseDouble::start(&["--keepalive"]), AseDouble::start(&["--keepalive"]), Backend::start());
    let n = start(&format!("ase_server {};\nase_server {} backup;", primary.url(), backup.url()), &backend, "");
    let load = Load::start(n.url(""), 4);
    std::thread::sleep(Duration::from_millis(300));
    primary.stop();
    std::thread::sleep(Duration::from_millis(700));
    assert_all_ok(&load.finish());
    assert!(!backup.records_of("request").is_empty());
    assert_eq!(
        status(&n)["verdicts"]["fail_open"].as_u64(),
        Some(0),
        "the backup answered every check: {}",
        status(&n)
    );
}

/// Connections nginx has not finished with, from the kernel's table: client connections to
/// `nginx_port` (established or closed by the client, accepted yet or not), and its
/// connections to the ASE at `ase_port`. A socket nginx closed first sits in TIME_WAIT,
/// which it no longer holds.
fn nginx_connections(nginx_port: u16, ase_port: u16) -> (usize, usize) {
    const HELD: [&str; 3] = ["01", "03", "08"]; // ESTABLISHED, SYN_RECV, CLOSE_WAIT
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let port = |addr: &str| addr.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
    let (mut clients, mut ase) = (0, 0);
    for row in table.lines().skip(1) {
        let f: Vec<&str> = row.split_whitespace().collect();
        if f.len() < 4 || !HELD.contains(&f[3]) {
            continue;
        }
        if port(f[1]) == Some(nginx_port) {
            clients += 1;
        } else if port(f[2]) == Some(ase_port) {
            ase += 1;
        }
    }
    (clients, ase)
}

#[test]
fn thousands_of_clients_leaving_mid_check_leak_nothing() {
    let (double, backend) = (AseDouble::start(&["--keepalive"]), Backend::start());
    // max_fails=0: checks that time out on a starved machine do not take the node down, so
    // every round does the same work (with the breaker open a round costs next to nothing).
    let n = start(&format!("ase_server {} max_fails=0;", double.url()), &backend, "ase_keepalive 16;");
    double.fault(json!({"kind": "delay", "ms": 100, "calls": "request"}));
    let ase_port: u16 = double.data.rsplit(':').next().unwrap().parse().unwrap();
    // Every client has gone and nginx has finished with it: no client connection left, and
    // no ASE connection beyond the idle pool (an abandoned check's call has ended too).
    let settle = || {
        let mut last = (0, 0);
        let settled = ngx_ase_tests::wait_for_quiet(Duration::from_secs(30), || {
            last = nginx_connections(n.port, ase_port);
            last.0 == 0 && last.1 <= 16
        });
        assert!(
            settled,
            "nginx still holds {} client and {} ASE connections 30 s after the clients left",
            last.0, last.1
        );
    };
    // 250 clients at a time connect, send a request and leave while it is being checked;
    // then nginx settles. Batches bound how many checks are pending at once, whatever the
    // machine's load: RSS keeps much of what the allocator once held (freed memory is not
    // always given back), so an unbounded burst would let a round that happens to pile up
    // more pending checks raise it, which is not a leak.
    let leave = |count: usize| {
        for _ in 0..count / 250 {
            for _ in 0..250 {
                if let Ok(mut s) = TcpStream::connect(("127.0.0.1", n.port)) {
                    let _ = s.write_all(b"GET /leave HTTP/1.1\r\nHost: x\r\n\r\n");
                }
            }
            settle();
        }
    };
    let mut rss = Vec::new();
    for _ in 0..8 {
        leave(3_000);
        rss.push(worker_rss_kib(&n));
    }
    eprintln!("worker RSS after each round of 3,000 clients, settled (KiB): {rss:?}");
    double.clear_fault();
    assert_eq!(client().get(n.url("/still-ok")).send().unwrap().status(), 200);
    assert!(n.crashed_workers().is_empty(), "{:?}", n.crashed_workers());
    // Settled RSS is the live memory plus whatever freed memory the allocator kept, which
    // varies a little from round to round: compare the floors of the first and the last
    // four rounds. A leak raises the floor with every round (12,000 clients between the
    // floors: 2 MiB is about 175 bytes each); the allocator's slack does not.
    let floor = |r: &[u64]| *r.iter().min().unwrap();
    let (first, last) = (floor(&rss[..4]), floor(&rss[4..]));
    assert!(
        last < first + 2 * 1024,
        "settled worker RSS rose from a floor of {first} KiB to {last} KiB over 12,000 more clients ({rss:?})"
    );
    assert_eq!(backend.paths(), vec!["/still-ok"], "no abandoned request reached the backend");
}

#[test]
fn slow_pipelined_and_oversized_requests() {
    let (double, backend) = (AseDouble::start(&["--keepalive"]), Backend::start());
    let n = start(&format!("ase_server {};", double.url()), &backend, "");
    // a slow client: one byte at a time
    let mut s = TcpStream::connect(("127.0.0.1", n.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for b in b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" {
        s.write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    // three pipelined requests in one write
    let mut s = TcpStream::connect(("127.0.0.1", n.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /p1 HTTP/1.1\r\nHost: x\r\n\r\nGET /p2 HTTP/1.1\r\nHost: x\r\n\r\nGET /p3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert_eq!(out.matches("HTTP/1.1 200").count(), 3, "{out}");
    // repeated and large headers up to nginx's limits, and one beyond them
    let mut big = String::from("GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for i in 0..200 {
        big.push_str(&format!("X-Rep: {i}\r\n"));
    }
    big.push_str(&format!("X-Large: {}\r\n\r\n", "v".repeat(7000)));
    let mut s = TcpStream::connect(("127.0.0.1", n.port)).unwrap();
    s.write_all(big.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{}", &out[..out.len().min(200)]);
    let mut s = TcpStream::connect(("127.0.0.1", n.port)).unwrap();
    s.write_all(format!("GET /huge HTTP/1.1\r\nHost: x\r\nX-Huge: {}\r\n\r\n", "v".repeat(20_000)).as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 400") || out.starts_with("HTTP/1.1 494"), "{}", &out[..out.len().min(200)]);
    let reqs = double.records_of("request");
    let big_rec = reqs.iter().find(|r| r["body"]["url"] == "/big").expect("the big request was checked");
    assert_eq!(big_rec["body"]["headers"].as_array().unwrap().len(), 203);
    assert_eq!(backend.paths(), vec!["/slow", "/p1", "/p2", "/p3", "/big"]);
    assert!(n.crashed_workers().is_empty());
}

#[test]
fn a_misbehaving_ase_follows_the_fail_mode_and_is_counted_by_cause() {
    let (double, backend) = (AseDouble::start(&["--keepalive"]), Backend::start());
    // max_fails=0: keep trying the node so that every fault reaches it.
    let n = start(&format!("ase_server {} max_fails=0;", double.url()), &backend, "");
    let cases: [(Value, &str); 7] = [
        (json!({"kind": "delay", "ms": 3000}), "timeout"),
        (json!({"kind": "garbage"}), "bad_answer"),
        (json!({"kind": "huge"}), "bad_answer"),
        (json!({"kind": "close_mid_body"}), "reset"),
        (json!({"kind": "reset"}), "reset"),
        (json!({"kind": "status", "status": 418}), "ase_status"),
        (json!({"kind": "status", "status": 500}), "ase_status"),
    ];
    let mut expected: std::collections::HashMap<&str, u64> = Default::default();
    for (fault, cause) in &cases {
        let mut f = fault.clone();
        f["calls"] = json!("request");
        double.fault(f);
        assert_eq!(client().get(n.url("/m")).send().unwrap().status(), 200, "{fault} fails open");
        *expected.entry(cause).or_default() += 1;
    }
    double.clear_fault();
    let s = status(&n);
    for (cause, count) in expected {
        assert_eq!(s["fail_open_by_cause"][cause].as_u64(), Some(count), "cause {cause}: {s}");
    }
    assert_eq!(client().get(n.url("/fine")).send().unwrap().status(), 200);
    assert!(n.crashed_workers().is_empty());
}
