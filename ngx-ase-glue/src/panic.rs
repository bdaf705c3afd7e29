//! Panics must not unwind into nginx's C frames: every `extern "C"` entry point of the
//! modules runs its body through [`guard`], which turns a panic into an `alert` in the
//! error log and a fallback value chosen by the caller (always the safe, fail-open choice).

use std::panic::{catch_unwind, AssertUnwindSafe};

use nginx_sys::{ngx_log_t, NGX_LOG_ALERT};

/// Runs `f`; on panic logs `what` to `log` (when not null) and returns `fallback`.
pub fn guard<T>(log: *mut ngx_log_t, what: &str, fallback: T, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(payload) => {
            let detail = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| String::from("(no message)"));
            if !log.is_null() {
                ngx::ngx_log_error!(NGX_LOG_ALERT, log, "ase: internal error in {what}: {detail}");
            }
            fallback
        }
    }
}
