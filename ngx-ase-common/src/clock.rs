//! nginx's cached clock and the "worker is exiting" flag, as the channel reads them.

/// nginx's cached monotonic time in milliseconds (updated once per event loop turn).
pub fn now_ms() -> u64 {
    // SAFETY: a plain integer nginx updates on this same thread.
    unsafe { nginx_sys::ngx_current_msec as u64 }
}

/// Whether the worker is shutting down (graceful quit or reload) or terminating.
pub fn worker_exiting() -> bool {
    // SAFETY: plain flags nginx sets on this same thread.
    unsafe { nginx_sys::ngx_exiting != 0 || nginx_sys::ngx_terminate != 0 }
}
