//! Node health as the sideband channel must judge it: a node is marked down for its own
//! failures only (never for time another node used up, never for a slow response report),
//! and the channel's own sockets never show up in nginx's client-connection counters.
//! Real nginx and the ASE double on loopback; the timing assertions are bounds with
//! generous margins, never speeds.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ngx_ase_tests::{client, wait_for_quiet, AseDouble, Backend, Nginx};
use serde_json::{json, Value};

/// nginx with one worker, the given directives, checks on, an access log of verdicts and a
/// status page.
fn start(backend: &Backend, directives: &str, extra_locations: &str) -> Nginx {
    Nginx::start(&format!(
        r#"
    {directives}
    ase_request on;
    log_format verdicts '$request_uri $status $ase_verdict';
    access_log logs/verdicts.log verdicts;
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ proxy_pass http://{backend}; }}
        location = /status {{ ase_request off; ase_response off; ase_status; }}
        {extra_locations}
    }}
"#,
        backend = backend.addr()
    ))
}

fn status_page(n: &Nginx) -> Value {
    client().get(n.url("/status")).send().expect("status page").json().expect("status JSON")
}

/// The status page's entry for the node with this URL.
fn node<'a>(status: &'a Value, url: &str) -> &'a Value {
    status["nodes"]
        .as_array()
        .and_then(|a| a.iter().find(|n| n["url"] == url))
        .unwrap_or_else(|| panic!("no node {url}: {status}"))
}

/// The `$ase_verdict` of every logged request except the status page's.
fn verdicts(n: &Nginx, expected: usize) -> Vec<String> {
    n.log_lines("logs/verdicts.log", expected)
        .into_iter()
        .filter(|l| !l.starts_with("/status"))
        .map(|l| l.rsplit(' ').next().unwrap_or("").to_string())
        .collect()
}

/// A "node" that accepts connections and never answers, holding every socket open:
/// a black-holed ASE. Counts the connections it accepted (= the calls sent to it).
struct BlackHole {
    port: u16,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BlackHole {
    fn start() -> BlackHole {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the black hole");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let (accepted, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let (a, s) = (accepted.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((sock, _)) => {
                        a.fetch_add(1, Ordering::Relaxed);
                        held.push(sock);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        BlackHole { port, accepted, stop, thread: Some(thread) }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `clients` threads sending requests one after another (each on a new connection) for
/// `how_long`, pausing `pause` between requests; every status they got (0 = no answer).
fn traffic(n: &Nginx, clients: usize, how_long: Duration, pause: Duration) -> Vec<u16> {
    let end = Instant::now() + how_long;
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let url = n.url("");
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .no_proxy()
                    .pool_max_idle_per_host(0)
                    .build()
                    .unwrap();
                let mut out = Vec::new();
                let mut i = 0;
                while Instant::now() < end {
                    out.push(http.get(format!("{url}/t{c}-{i}")).send().map(|r| r.status().as_u16()).unwrap_or(0));
                    i += 1;
                    std::thread::sleep(pause);
                }
                out
            })
        })
        .collect();
    threads.into_iter().flat_map(|t| t.join().unwrap()).collect()
}

/// A black-holed primary costs each call that tries it the whole ase_timeout. That is the
/// primary's failure: the call must not then charge the backup for the time the primary
/// used up. So the backup is never marked down, and in fail-closed mode a client request
/// fails only when its check was the one that tried the primary (once at the start, then
/// one probe per fail_timeout), while every other check is answered by the backup.
#[test]
fn black_holed_primary_with_a_backup() {
    let (hole, backup, backend) = (BlackHole::start(), AseDouble::start(&["--keepalive"]), Backend::start());
    backup.fault(json!({"kind": "delay", "ms": 5}));
    let n = start(
        &backend,
        &format!(
            "ase_server {} max_fails=1 fail_timeout=2s;\n    ase_server {} backup max_fails=1 fail_timeout=10s;\n    \
             ase_timeout 300ms;\n    ase_connect_timeout 100ms;\n    ase_fail_mode closed;",
            hole.url(),
            backup.url()
        ),
        "",
    );
    let clients = 2;
    let t = Instant::now();
    let statuses = traffic(&n, clients, Duration::from_secs(8), Duration::from_millis(20));
    let elapsed = t.elapsed();

    let log = n.error_log();
    let status = status_page(&n);
    let failed = statuses.iter().filter(|&&s| s != 200).count();
    let ok = statuses.len() - failed;
    let probes = hole.accepted();
    let summary = format!(
        "{} requests in {elapsed:?}: {ok} ok, {failed} failed ({} of them 503); {probes} calls reached the black-holed primary; status page: {status}",
        statuses.len(),
        statuses.iter().filter(|&&s| s == 503).count()
    );
    eprintln!("{summary}");

    assert!(statuses.len() >= 40, "the traffic ran: {summary}");
    assert!(log.contains(&format!("node {} is down", hole.url())), "the black-holed primary is marked down: {summary}");
    let backup_down: Vec<&str> =
        log.lines().filter(|l| l.contains(&format!("node {} is down", backup.url()))).collect();
    assert!(backup_down.is_empty(), "the backup was marked down for the primary's time: {backup_down:?}\n{summary}");
    assert_eq!(node(&status, &backup.url())["state"], "up", "{summary}");
    assert_eq!(status["breaker_trips"].as_u64(), Some(0), "the breaker never opened: {summary}");
    // Each call to the black hole is one connection to it (nothing is ever answered, so none
    // is reused). The primary is tried once per client at the start at most, then probed
    // once per fail_timeout (2 s); a margin of 2 for a slow machine.
    let periods = (elapsed.as_secs_f64() / 2.0).ceil() as usize;
    assert!(probes <= clients + periods + 2, "the primary was tried more than once per fail_timeout: {summary}");
    // Fail-closed: only a check that went to the black hole may fail its client.
    assert!(failed <= probes, "a check that did not try the primary failed: {summary}");
    assert!(statuses.iter().all(|&s| s == 200 || s == 503), "fail-closed answers 503: {summary}");
    assert!(ok * 10 >= statuses.len() * 8, "most requests succeed through the backup: {summary}");
    assert!(backup.records_of("request").len() >= ok, "{summary}");
}

/// The longest `fail_timeout` nginx's time syntax takes (its largest time) keeps a dead
/// node down: the time it comes back does not wrap, so it is not tried on every request.
/// (A longer one, `fail_timeout=18446744073709551s`, would wrap: `nginx -t` refuses it, config_check.rs.)
#[test]
fn a_dead_node_with_the_longest_fail_timeout_is_tried_once() {
    let (hole, backup, backend) = (BlackHole::start(), AseDouble::start(&["--keepalive"]), Backend::start());
    let n = start(
        &backend,
        &format!(
            "ase_server {} max_fails=1 fail_timeout=9223372036854775807ms;\n    ase_server {} backup;\n    \
             ase_timeout 300ms;",
            hole.url(),
            backup.url()
        ),
        "",
    );
    let http = client();
    for i in 0..10 {
        let r = http.get(n.url(&format!("/r{i}"))).send().expect("request");
        assert_eq!(r.status().as_u16(), 200, "request {i} (fail open, then the backup)");
    }
    let status = status_page(&n);
    assert_eq!(hole.accepted(), 1, "the dead node was tried again: {status}");
    assert_eq!(node(&status, &hole.url())["state"], "down", "{status}");
    assert_eq!(node(&status, &backup.url())["state"], "up", "{status}");
    assert!(backup.records_of("request").len() >= 9, "the backup answered the rest: {status}");
}

/// POST /ase/response is fire-and-forget: the ASE answering it late (2 s, past ase_timeout)
/// changes nothing for the client, fails no check and does not mark the node down (the
/// node answers every request check at once).
#[test]
fn slow_ase_response_fails_no_check_and_marks_no_node_down() {
    let (double, backend) = (AseDouble::start(&["--keepalive"]), Backend::start());
    double.fault(json!({"kind": "delay", "ms": 2000, "calls": "response"}));
    let n = start(&backend, &format!("ase_server {};\n    ase_response on;\n    ase_timeout 500ms;", double.url()), "");
    let statuses = traffic(&n, 1, Duration::from_secs(5), Duration::from_millis(50));
    let got = verdicts(&n, statuses.len());
    let status = status_page(&n);
    let count = |v: &str| got.iter().filter(|g| *g == v).count();
    let summary = format!(
        "{} requests; verdicts: {} allow, {} fail_open, {} other; status page: {status}",
        statuses.len(),
        count("allow"),
        count("fail_open"),
        got.len() - count("allow") - count("fail_open")
    );

    assert!(statuses.len() >= 20, "the traffic ran: {summary}");
    assert!(statuses.iter().all(|&s| s == 200), "every client request succeeded: {summary}");
    assert_eq!(got.len(), statuses.len(), "{summary}");
    assert!(got.iter().all(|v| v == "allow"), "every check was answered by the ASE: {summary}");
    assert!(!n.error_log().contains(" is down"), "no node was marked down:\n{}", n.error_log());
    assert_eq!(node(&status, &double.url())["state"], "up", "{summary}");
    assert_eq!(status["breaker"], "closed", "{summary}");
    assert_eq!(status["breaker_trips"].as_u64(), Some(0), "{summary}");
    assert!(!double.records_of("response").is_empty(), "the reports were sent: {summary}");
}

/// Whether the nginx under test has the stub_status module.
fn has_stub_status() -> bool {
    let (bin, _) = ngx_ase_tests::nginx::binary_and_modules();
    let out = std::process::Command::new(bin).arg("-V").output().expect("nginx -V");
    String::from_utf8_lossy(&out.stderr).contains("--with-http_stub_status_module")
}

/// `(active, waiting)` from a stub_status page fetched on a new connection.
fn stub_status(n: &Nginx) -> (u64, u64) {
    let mut s = TcpStream::connect(("127.0.0.1", n.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /stub HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut page = String::new();
    s.read_to_string(&mut page).unwrap();
    let number_after = |label: &str| -> u64 {
        let rest = &page[page.find(label).unwrap_or_else(|| panic!("no {label:?} in {page}")) + label.len()..];
        rest.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{page}"))
    };
    (number_after("Active connections:"), number_after("Waiting:"))
}

/// stub_status counts client connections. Idle keep-alive connections to the ASE are
/// nginx's own outgoing sockets, like upstream keep-alive connections, and must not be
/// counted as clients "Waiting" (today they are: the pool marks them reusable, and
/// ngx_reusable_connection() counts every reusable connection as waiting).
#[test]
fn stub_status_does_not_count_idle_ase_connections_as_waiting() {
    if !has_stub_status() {
        eprintln!("skipped: this nginx was built without --with-http_stub_status_module (nginx -V)");
        return;
    }
    let (double, backend) = (AseDouble::start(&["--keepalive"]), Backend::start());
    // Checks that overlap, so the worker opens several ASE connections and then pools them.
    double.fault(json!({"kind": "delay", "ms": 200, "calls": "request"}));
    let n = start(
        &backend,
        &format!("ase_server {};\n    ase_timeout 5s;", double.url()),
        "location = /stub { ase_request off; stub_status; }",
    );
    let clients: Vec<_> = (0..20)
        .map(|i| {
            let port = n.port;
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                s.write_all(format!("GET /c{i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
                let mut out = String::new();
                let _ = s.read_to_string(&mut out);
                out.starts_with("HTTP/1.1 200")
            })
        })
        .collect();
    assert!(clients.into_iter().all(|c| c.join().unwrap()), "every client request succeeded");
    let status = status_page(&n);
    let pooled = status["connections_new"].as_u64().unwrap_or(0);
    assert!(pooled >= 2, "several ASE connections were opened (and are now idle in the pool): {status}");

    // No client traffic is in flight now; the only client connection is the one asking.
    // Give the closed client connections a moment to be counted out.
    let mut last = (0, 0);
    let settled = wait_for_quiet(Duration::from_secs(5), || {
        last = stub_status(&n);
        last == (1, 0)
    });
    let (active, waiting) = last;
    assert!(
        settled,
        "stub_status: Active {active}, Waiting {waiting} with one client connection (the one asking) and {pooled} idle ASE connections"
    );
    assert!(waiting < active);
}
