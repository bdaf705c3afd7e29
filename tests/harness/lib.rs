//! The integration test harness: starts a real nginx (from `build/<flavour>/`) with the
//! freshly built modules, the ASE test double, and a small backend, all on loopback ports,
//! each in its own temporary directory, and tears them down when dropped (a failing test
//! unwinds and drops them too).
//!
//! The nginx flavour comes from `NGX_ASE_FLAVOUR`: `vendored` (the default), `system` or
//! `static` (modules compiled in, no load_module).

pub mod backend;
pub mod chromium;
pub mod dns;
pub mod double;
pub mod nginx;

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
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// Polls `f` every 20 ms until it returns `Some`, or panics with `what` after `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
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

/// Polls `done` every 20 ms for up to `limit`; returns whether it became true.
pub fn wait_for_quiet(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// A blocking HTTP client with a bounded timeout and no proxy, for talking to nginx.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .expect("reqwest client")
}

/// A 32-character token in the shape ASE's `create_sideband_token` makes.
pub const TEST_TOKEN: &str = "t0k3nt0k3nt0k3nt0k3nt0k3nt0k3n99";
