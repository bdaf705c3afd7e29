//! Small helpers for `scripts/bench.sh`: the standard library and `httparse` (the parser the
//! modules use, already in the workspace's lock file), built offline by `cargo` from
//! `bench/Cargo.toml`, a workspace of its own so that the product's stays untouched:
//!
//!   loadgen rate URL --rate N --duration SECS [--conns C] [-H 'Name: value']...
//!       Open-loop load at a fixed rate, for latency. Request k is due at t0 + k/N and its
//!       latency is counted from that due time, not from when it was sent, so a stalled
//!       server cannot hide its stall by slowing the generator down (no "coordinated
//!       omission", as in wrk2). C keep-alive connections, one thread each, share the
//!       schedule round-robin. Requests still unsent at the deadline (duration + 2 s) are
//!       counted as `unsent` and enter the percentiles with their lateness at the deadline.
//!       Prints one line of `key=value` pairs (latencies in microseconds).
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
    let (mut rate, mut duration, mut conns) = (1000.0f64, 10.0f64, 16usize);
    let mut headers = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_else(|| die(&format!("{a} needs a value")));
        match a.as_str() {
            "--rate" => rate = val().parse().unwrap_or_else(|_| die("bad --rate")),
            "--duration" => duration = val().parse().unwrap_or_else(|_| die("bad --duration")),
            "--conns" => conns = val().parse().unwrap_or_else(|_| die("bad --conns")),
            "-H" => headers.push(val()),
            u if url.is_none() && u.starts_with("http://") => url = Some(parse_url(u)),
            other => die(&format!("unknown argument {other}")),
        }
    }
    let url = Arc::new(url.unwrap_or_else(|| die("rate: URL missing")));
    let req = Arc::new(request_bytes(&url, &headers));
    let total = (rate * duration).round() as u64;
    let interval_ns = 1e9 / rate;
    // Every thread connects first; the schedule starts when all are ready.
    let t0 = Instant::now() + Duration::from_millis(200);
    let deadline = t0 + Duration::from_secs_f64(duration + 2.0);
    let late_max = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for j in 0..conns {
        let (url, req, late_max) = (url.clone(), req.clone(), late_max.clone());
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
                    s.write_all(&req)?;
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

fn blackhole(args: &[String]) {
    let mut port = None;
    let (mut max, mut lifetime) = (1000usize, 3600u64);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_else(|| die(&format!("{a} needs a value")));
        match a.as_str() {
            "--max" => max = val().parse().unwrap_or_else(|_| die("bad --max")),
            "--lifetime" => lifetime = val().parse().unwrap_or_else(|_| die("bad --lifetime")),
            p if port.is_none() => port = Some(p.parse::<u16>().unwrap_or_else(|_| die("bad port"))),
            other => die(&format!("unknown argument {other}")),
        }
    }
    let port = port.unwrap_or_else(|| die("blackhole: PORT missing"));
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| die(&format!("bind {port}: {e}")));
    thread::spawn(move || {
        thread::sleep(Duration::from_secs(lifetime));
        exit(0);
    });
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
        _ => die("usage: loadgen rate URL --rate N --duration S [--conns C] [-H H]... | blackhole PORT [--max N] [--lifetime S] | get URL"),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_head;

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
