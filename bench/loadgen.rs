//! Small helpers for `scripts/bench.sh`: the standard library and `httparse` (the parser the
//! modules use, already in the workspace's lock file), built offline by `cargo` from
//! `bench/Cargo.toml`, a workspace of its own so that the product's stays untouched:
//!
//!   loadgen rate URL --rate N --duration SECS [--conns C] [--identities I] [-H 'Name: value']...
//!       Open-loop load at a fixed rate, for latency. Request k is due at t0 + k/N and its
//!       latency is counted from that due time, not from when it was sent, so a stalled
//!       server cannot hide its stall by slowing the generator down (no "coordinated
//!       omission", as in wrk2). C keep-alive connections, one thread each, share the
//!       schedule round-robin. Requests still unsent at the deadline (duration + 2 s) are
//!       counted as `unsent` and enter the percentiles with their lateness at the deadline.
//!       Prints one line of `key=value` pairs (latencies in microseconds). With I identities,
//!       request k carries `Authorization: Bearer client-(k mod I)` (the cache benchmark's
//!       1,000 clients); give no other Authorization header then.
//!   loadgen delay PORT --delay-us D [--lifetime SECS]
//!       An HTTP/1.1 keep-alive server on 127.0.0.1:PORT answering every request 200 after D
//!       microseconds (a thread per connection: an ASE that is D away); counts the requests by
//!       path, and answers `GET /stub-counts` at once with those counts as JSON.
//!   loadgen blackhole PORT [--max N] [--lifetime SECS]
//!       Accepts TCP connections on 127.0.0.1:PORT and never reads or answers; holds at most
//!       N of them (the oldest is closed beyond that) and exits after SECS.
//!   loadgen get URL
//!       One GET; prints the body (for the `ase_status` page).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::process::exit;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

extern "C" {
    fn prctl(option: i32, ...) -> i32;
}
const PR_SET_TIMERSLACK: i32 = 29;

/// Wakes a sleeping thread within a microsecond or so of its due time (the default timer
/// slack of 50 µs would add up to that much to every measured latency).
fn tight_timer_slack() {
    // SAFETY: prctl(PR_SET_TIMERSLACK, ns) only changes this thread's timer slack.
    unsafe {
        prctl(PR_SET_TIMERSLACK, 1u64);
    }
}

fn die(msg: &str) -> ! {
    eprintln!("loadgen: {msg}");
    exit(2);
}

struct Url {
    addr: SocketAddr,
    host: String,
    path: String,
}

fn parse_url(s: &str) -> Url {
    let rest = s.strip_prefix("http://").unwrap_or_else(|| die("only http:// URLs"));
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let with_port = if hostport.contains(':') { hostport.to_string() } else { format!("{hostport}:80") };
    let addr = with_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| die(&format!("cannot resolve {hostport}")));
    Url { addr, host: hostport.to_string(), path: path.to_string() }
}

fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    Ok(s)
}

/// What the head of a response says, once it is complete.
struct Head {
    /// The head's length in bytes, blank line included.
    len: usize,
    status: u16,
    keep_alive: bool,
    body_len: usize,
}

/// Parses a response head at the start of `buf`: `None` while it is incomplete.
fn parse_head(buf: &[u8]) -> io::Result<Option<Head>> {
    let bad = |m: String| io::Error::new(io::ErrorKind::InvalidData, m);
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(bad(format!("bad response head: {e}"))),
    };
    let status = resp.code.unwrap_or(0);
    let mut keep_alive = resp.version == Some(1);
    let mut length = None;
    for h in resp.headers.iter() {
        let value = std::str::from_utf8(h.value).unwrap_or("").trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        } else if h.name.eq_ignore_ascii_case("connection") {
            if value.eq_ignore_ascii_case("close") {
                keep_alive = false;
            } else if value.eq_ignore_ascii_case("keep-alive") {
                keep_alive = true;
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(bad("chunked answers are not supported".into()));
        }
    }
    let body_len = match (length, status) {
        (Some(l), _) => l,
        (None, 204 | 304) => 0,
        (None, _) => return Err(bad("no content-length".into())),
    };
    Ok(Some(Head { len, status, keep_alive, body_len }))
}

/// Reads one response (head and a Content-Length body). Returns the status and whether the
/// connection stays open. `buf` keeps bytes read past this response.
fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<(u16, bool)> {
    let mut chunk = [0u8; 16 * 1024];
    let head = loop {
        if let Some(head) = parse_head(buf)? {
            break head;
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let end = head.len + head.body_len;
    while buf.len() < end {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed in body"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    buf.drain(..end);
    Ok((head.status, head.keep_alive))
}

fn request_bytes(url: &Url, headers: &[String]) -> Vec<u8> {
    let mut r = format!("GET {} HTTP/1.1\r\nHost: {}\r\n", url.path, url.host);
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// One request per identity (`Bearer client-N`), or the one request when `identities` is 0.
fn requests_for_identities(url: &Url, headers: &[String], identities: usize) -> Vec<Vec<u8>> {
    if identities == 0 {
        return vec![request_bytes(url, headers)];
    }
    (0..identities)
        .map(|n| {
            let mut h = headers.to_vec();
            h.push(format!("Authorization: Bearer client-{n}"));
            request_bytes(url, &h)
        })
        .collect()
}

#[derive(Default)]
struct ThreadResult {
    latencies_us: Vec<u64>,
    ok: u64,
    non2xx: u64,
    errors: u64,
    unsent: u64,
}

fn rate(args: &[String]) {
    let mut url = None;
    let (mut rate, mut duration, mut conns, mut identities) = (1000.0f64, 10.0f64, 16usize, 0usize);
    let mut headers = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_else(|| die(&format!("{a} needs a value")));
        match a.as_str() {
            "--rate" => rate = val().parse().unwrap_or_else(|_| die("bad --rate")),
            "--duration" => duration = val().parse().unwrap_or_else(|_| die("bad --duration")),
            "--conns" => conns = val().parse().unwrap_or_else(|_| die("bad --conns")),
            "--identities" => identities = val().parse().unwrap_or_else(|_| die("bad --identities")),
            "-H" => headers.push(val()),
            u if url.is_none() && u.starts_with("http://") => url = Some(parse_url(u)),
            other => die(&format!("unknown argument {other}")),
        }
    }
    let url = Arc::new(url.unwrap_or_else(|| die("rate: URL missing")));
    let reqs = Arc::new(requests_for_identities(&url, &headers, identities));
    let total = (rate * duration).round() as u64;
    let interval_ns = 1e9 / rate;
    // Every thread connects first; the schedule starts when all are ready.
    let t0 = Instant::now() + Duration::from_millis(200);
    let deadline = t0 + Duration::from_secs_f64(duration + 2.0);
    let late_max = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for j in 0..conns {
        let (url, reqs, late_max) = (url.clone(), reqs.clone(), late_max.clone());
        handles.push(thread::spawn(move || {
            tight_timer_slack();
            let mut res = ThreadResult::default();
            let mut conn = connect(url.addr).ok();
            let mut buf = Vec::with_capacity(16 * 1024);
            let mut k = j as u64;
            while k < total {
                let due = t0 + Duration::from_nanos((k as f64 * interval_ns) as u64);
                let now = Instant::now();
                if now >= deadline {
                    // Never sent: counted with the lateness it had reached.
                    res.unsent += 1;
                    res.latencies_us.push(deadline.saturating_duration_since(due).as_micros() as u64);
                    k += conns as u64;
                    continue;
                }
                if due > now {
                    thread::sleep(due - now);
                } else {
                    let late = (now - due).as_micros() as u64;
                    late_max.fetch_max(late, Ordering::Relaxed);
                }
                let outcome = (|| -> io::Result<(u16, bool)> {
                    if conn.is_none() {
                        conn = Some(connect(url.addr)?);
                        buf.clear();
                    }
                    let s = conn.as_mut().unwrap();
                    s.write_all(&reqs[(k % reqs.len() as u64) as usize])?;
                    read_response(s, &mut buf)
                })();
                let done = Instant::now();
                match outcome {
                    Ok((status, keep)) => {
                        res.latencies_us.push(done.saturating_duration_since(due).as_micros() as u64);
                        if (200..300).contains(&status) {
                            res.ok += 1;
                        } else {
                            res.non2xx += 1;
                        }
                        if !keep {
                            conn = None;
                        }
                    }
                    Err(_) => {
                        res.errors += 1;
                        res.latencies_us.push(done.saturating_duration_since(due).as_micros() as u64);
                        conn = None;
                    }
                }
                k += conns as u64;
            }
            res
        }));
    }
    let mut all = ThreadResult::default();
    for h in handles {
        let r = h.join().unwrap_or_else(|_| die("a load thread panicked"));
        all.latencies_us.extend(r.latencies_us);
        all.ok += r.ok;
        all.non2xx += r.non2xx;
        all.errors += r.errors;
        all.unsent += r.unsent;
    }
    let elapsed = Instant::now().saturating_duration_since(t0).as_secs_f64();
    let mut l = all.latencies_us;
    l.sort_unstable();
    let pct = |p: f64| -> u64 {
        if l.is_empty() {
            return 0;
        }
        let rank = ((p / 100.0) * l.len() as f64).ceil() as usize;
        l[rank.clamp(1, l.len()) - 1]
    };
    println!(
        "sent={} ok={} non2xx={} errors={} unsent={} elapsed_s={:.3} achieved_rps={:.1} p50_us={} p90_us={} p99_us={} p999_us={} max_us={} max_send_lag_us={}",
        total - all.unsent,
        all.ok,
        all.non2xx,
        all.errors,
        all.unsent,
        elapsed,
        (all.ok + all.non2xx) as f64 / elapsed.max(1e-9),
        pct(50.0),
        pct(90.0),
        pct(99.0),
        pct(99.9),
        l.last().copied().unwrap_or(0),
        late_max.load(Ordering::Relaxed),
    );
}

/// The arguments of a server mode, `PORT [OPTION N] [--lifetime SECS]`: binds 127.0.0.1:PORT,
/// arranges the exit after SECS (default an hour), and returns the listener and N.
fn serve_args(mode: &str, args: &[String], option: &str, default: u64) -> (TcpListener, u64) {
    let mut port = None;
    let (mut value, mut lifetime) = (default, 3600u64);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_else(|| die(&format!("{a} needs a value")));
        match a.as_str() {
            o if o == option => value = val().parse().unwrap_or_else(|_| die(&format!("bad {option}"))),
            "--lifetime" => lifetime = val().parse().unwrap_or_else(|_| die("bad --lifetime")),
            p if port.is_none() => port = Some(p.parse::<u16>().unwrap_or_else(|_| die("bad port"))),
            other => die(&format!("unknown argument {other}")),
        }
    }
    let port = port.unwrap_or_else(|| die(&format!("{mode}: PORT missing")));
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| die(&format!("bind {port}: {e}")));
    thread::spawn(move || {
        thread::sleep(Duration::from_secs(lifetime));
        exit(0);
    });
    (listener, value)
}

fn blackhole(args: &[String]) {
    let (listener, max) = serve_args("blackhole", args, "--max", 1000);
    let max = max as usize;
    let mut held: VecDeque<TcpStream> = VecDeque::new();
    for s in listener.incoming() {
        match s {
            Ok(s) => {
                held.push_back(s);
                if held.len() > max {
                    held.pop_front();
                }
            }
            // Out of descriptors (or another transient error): free one, don't spin.
            Err(_) => {
                held.pop_front();
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Requests the delay server received, by path.
#[derive(Default)]
struct StubCounts {
    ase_request: AtomicU64,
    ase_response: AtomicU64,
    other: AtomicU64,
}

impl StubCounts {
    fn json(&self) -> String {
        format!(
            "{{\"ase_request\":{},\"ase_response\":{},\"other\":{}}}",
            self.ase_request.load(Ordering::Relaxed),
            self.ase_response.load(Ordering::Relaxed),
            self.other.load(Ordering::Relaxed)
        )
    }
}

/// A request's head at the start of `buf`: its length, path and Content-Length, `None`
/// while incomplete.
fn parse_request_head(buf: &[u8]) -> io::Result<Option<(usize, String, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, format!("bad request head: {e}"))),
    };
    let body_len = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
        .unwrap_or(0);
    Ok(Some((len, req.path.unwrap_or("").to_string(), body_len)))
}

/// Serves one keep-alive connection of the delay server until the peer closes it.
fn serve_delayed(mut s: TcpStream, delay: Duration, counts: &StubCounts) -> io::Result<()> {
    tight_timer_slack();
    s.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let (head_len, path, body_len) = loop {
            if let Some(h) = parse_request_head(&buf)? {
                break h;
            }
            let n = s.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        while buf.len() < head_len + body_len {
            let n = s.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        buf.drain(..head_len + body_len);
        if path == "/stub-counts" {
            let body = counts.json();
            // `loadgen get` reads to the end: this connection ends here.
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close";
            return write!(s, "{head}\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        }
        let counter = match path.as_str() {
            p if p.starts_with("/ase/request") => &counts.ase_request,
            p if p.starts_with("/ase/response") => &counts.ase_response,
            _ => &counts.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        thread::sleep(delay);
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")?;
    }
}

fn delay_server(args: &[String]) {
    let (listener, delay_us) = serve_args("delay", args, "--delay-us", 1000);
    let counts = Arc::new(StubCounts::default());
    let delay = Duration::from_micros(delay_us);
    for s in listener.incoming() {
        match s {
            Ok(s) => {
                let counts = counts.clone();
                thread::spawn(move || serve_delayed(s, delay, &counts));
            }
            // Out of descriptors (or another transient error): don't spin.
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn get(args: &[String]) {
    let url = parse_url(args.first().unwrap_or_else(|| die("get: URL missing")));
    let mut s = connect(url.addr).unwrap_or_else(|e| die(&format!("connect: {e}")));
    let req = format!("GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", url.path, url.host);
    s.write_all(req.as_bytes()).unwrap_or_else(|e| die(&format!("write: {e}")));
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap_or_else(|e| die(&format!("read: {e}")));
    let head = parse_head(&all).unwrap_or_else(|e| die(&format!("get: {e}")));
    let body = head.map(|h| &all[h.len..]).unwrap_or_else(|| die("get: incomplete response"));
    io::stdout().write_all(body).ok();
    println!();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("rate") => rate(&args[1..]),
        Some("blackhole") => blackhole(&args[1..]),
        Some("get") => get(&args[1..]),
        Some("delay") => delay_server(&args[1..]),
        _ => die("usage: loadgen rate URL --rate N --duration S [--conns C] [--identities I] [-H H]... | blackhole PORT [--max N] [--lifetime S] | delay PORT --delay-us D [--lifetime S] | get URL"),
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_head, parse_request_head, parse_url, requests_for_identities};

    #[test]
    fn identities_rotate_as_bearer_clients_and_none_means_one_request() {
        let url = parse_url("http://127.0.0.1:1/api");
        assert_eq!(requests_for_identities(&url, &[], 0).len(), 1);
        let r = requests_for_identities(&url, &["Accept: */*".into()], 1000);
        assert_eq!(r.len(), 1000);
        let text = String::from_utf8(r[999].clone()).unwrap();
        assert!(text.contains("Accept: */*\r\nAuthorization: Bearer client-999\r\n\r\n"), "{text}");
    }

    #[test]
    fn a_request_head_gives_its_length_path_and_body_length() {
        let r = b"POST /ase/request HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(parse_request_head(r).unwrap(), Some((49, "/ase/request".to_string(), 5)));
        assert_eq!(parse_request_head(b"POST /ase/req").unwrap(), None);
        assert_eq!(parse_request_head(b"GET / HTTP/1.1\r\n\r\n").unwrap().unwrap().2, 0);
    }

    #[test]
    fn a_complete_head_gives_its_length_status_body_and_keep_alive() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n{\"ok\":true}\nnext";
        let h = parse_head(r).unwrap().unwrap();
        assert_eq!((h.len, h.status, h.keep_alive, h.body_len), (39, 200, true, 12));
    }

    #[test]
    fn an_incomplete_head_asks_for_more() {
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Len").unwrap().is_none());
    }

    #[test]
    fn connection_close_and_http_1_0_end_the_connection() {
        let h = parse_head(b"HTTP/1.1 200 OK\r\nconnection: Close\r\ncontent-length: 0\r\n\r\n").unwrap().unwrap();
        assert!(!h.keep_alive);
        let h = parse_head(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").unwrap().unwrap();
        assert!(!h.keep_alive);
        let h = parse_head(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n").unwrap().unwrap();
        assert!(h.keep_alive);
    }

    #[test]
    fn a_body_without_a_length_is_refused_unless_the_status_has_none() {
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
        assert_eq!(parse_head(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap().unwrap().body_len, 0);
        assert!(parse_head(b"garbage\r\n\r\n").is_err());
    }
}
