//! nginx's cached clock, the "worker is exiting" flag, and a log line said once per worker.

use std::cell::RefCell;
use std::collections::HashSet;

use nginx_sys::{ngx_current_msec, ngx_cycle, NGX_LOG_ERR};

/// nginx's cached monotonic time in milliseconds (updated once per event loop turn).
pub fn now_ms() -> u64 {
    // SAFETY: a plain integer nginx updates on this same thread.
    unsafe { ngx_current_msec as u64 }
}

/// Whether the worker is shutting down (graceful quit or reload) or terminating.
pub fn worker_exiting() -> bool {
    // SAFETY: plain flags nginx sets on this same thread.
    unsafe { nginx_sys::ngx_exiting != 0 || nginx_sys::ngx_terminate != 0 }
}

fn at(level: u32, msg: &str) {
    // SAFETY: the cycle and its log live as long as the worker.
    unsafe {
        let log = (*ngx_cycle).log;
        if !log.is_null() {
            ngx::ngx_log_error!(level, log, "{}", msg);
        }
    }
}

thread_local! {
    static SAID: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
}

/// Logs `msg` at `error` level the first time this worker sees it.
pub fn error_once(msg: &str) {
    let first = SAID.with(|s| s.borrow_mut().insert(msg.to_string()));
    if first {
        at(NGX_LOG_ERR, msg);
    }
}
