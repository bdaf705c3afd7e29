//! The integration test harness: starts a real nginx (from `build/<flavour>/`) with the
//! freshly built modules, the ASE test double, and a small backend, all on loopback ports,
//! each in its own temporary directory, and tears them down when dropped (a failing test
//! unwinds and drops them too).
//!
//! The nginx flavour comes from `NGX_ASE_FLAVOUR`: `vendored` (the default), `system` or
//! `static` (modules compiled in, no load_module).
//!
//! `NGX_ASE_WRAPPER` runs every nginx the harness starts under a program, e.g.
//! `valgrind --tool=memcheck ...` (`scripts/valgrind.sh`); with valgrind, each nginx's
//! memcheck logs are checked when it is dropped (`memcheck.rs`). `NGX_ASE_TIME_SCALE`
//! stretches every bound the harness waits for (a wrapped nginx is slower).

pub mod backend;
pub mod chromium;
pub mod dns;
pub mod double;
pub mod memcheck;
pub mod nginx;
pub mod raw_http;

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use backend::Backend;
pub use dns::Dns;
pub use double::AseDouble;
pub use nginx::Nginx;

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Which nginx build the tests run against.
pub fn flavour() -> String {
    std::env::var("NGX_ASE_FLAVOUR").unwrap_or_else(|_| "vendored".to_string())
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    // The port is free again once the probe socket closes, so the kernel may hand it to the
    // next caller before nginx binds it: two tests of one file running side by side would
    // then share an nginx. Never hand out the same port twice in this process.
    static HANDED: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("no free loopback port");
        let mut handed = HANDED.lock().unwrap_or_else(|e| e.into_inner());
        if !handed.contains(&port) {
            handed.push(port);
            return port;
        }
    }
}

/// How many times slower than usual nginx runs: `NGX_ASE_TIME_SCALE` (a whole number, at
/// least 1; `scripts/valgrind.sh` sets it for nginx under memcheck). Default 1.
pub fn time_scale() -> u32 {
    std::env::var("NGX_ASE_TIME_SCALE").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(1).max(1)
}

/// `d` times `time_scale()`: for bounds on how long nginx may take (never for how long a
/// test waits on purpose, e.g. for a `fail_timeout` to pass).
pub fn scaled(d: Duration) -> Duration {
    d * time_scale()
}

/// `d` stretched by `time_scale()` as an nginx time (`"2000ms"`): for a test's `ase_timeout`
/// or `ase_connect_timeout` that bounds how long nginx itself may take, not the ASE.
pub fn nginx_time(d: Duration) -> String {
    format!("{}ms", scaled(d).as_millis())
}

/// Polls `f` every 20 ms until it returns `Some`, or panics with `what` after `limit`
/// (stretched by `time_scale()`).
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let limit = scaled(limit);
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `done` every 20 ms for up to `limit` (stretched by `time_scale()`); returns
/// whether it became true.
pub fn wait_for_quiet(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let limit = scaled(limit);
    let start = Instant::now();
    while !done() {
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// A blocking HTTP client with a bounded timeout (10 s, stretched by `time_scale()`) and no
/// proxy, for talking to nginx.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(scaled(Duration::from_secs(10)))
        .no_proxy()
        .build()
        .expect("reqwest client")
}

/// A 32-character token in the shape ASE's `create_sideband_token` makes.
pub const TEST_TOKEN: &str = "t0k3nt0k3nt0k3nt0k3nt0k3nt0k3n99";
