//! Logging as nginx modules written in Rust do it: one macro, [`ase_log!`], for any log
//! source (a request, a connection, the cycle, or a bare `ngx_log_t`), at any of nginx's
//! levels, formatted only when the level is on (into ngx's stack buffer: no `String`); and
//! one rate limiter for lines that a steady fault would repeat for every request.

use core::sync::atomic::{AtomicU64, Ordering};

use nginx_sys::{ngx_connection_t, ngx_cycle, ngx_http_request_t, ngx_log_t};

/// Something that has an nginx log.
pub trait LogSource {
    /// The log to write to (null when there is none).
    ///
    /// # Safety
    /// A pointer source must be null or point to a live object of its type.
    unsafe fn log_ptr(&self) -> *mut ngx_log_t;
}

impl LogSource for *mut ngx_log_t {
    unsafe fn log_ptr(&self) -> *mut ngx_log_t {
        *self
    }
}

/// A request logs on its connection's log (which names the client and the request).
impl LogSource for *mut ngx_http_request_t {
    unsafe fn log_ptr(&self) -> *mut ngx_log_t {
        // SAFETY: null or a live request (the caller's promise), whose connection is null
        // or live; the cycle's log lives as long as the process.
        unsafe {
            match self.as_ref().and_then(|r| r.connection.as_ref()) {
                Some(c) => c.log,
                None => Cycle.log_ptr(),
            }
        }
    }
}

impl LogSource for *mut ngx_connection_t {
    unsafe fn log_ptr(&self) -> *mut ngx_log_t {
        // SAFETY: null or a live connection (the caller's promise).
        unsafe { self.as_ref().map_or(core::ptr::null_mut(), |c| c.log) }
    }
}

/// The cycle's log: for what belongs to no request (the channel, the resolver).
pub struct Cycle;

impl LogSource for Cycle {
    unsafe fn log_ptr(&self) -> *mut ngx_log_t {
        // SAFETY: nginx's current cycle, set before any module code runs, read on its thread.
        unsafe { ngx_cycle.as_ref().map_or(core::ptr::null_mut(), |c| c.log) }
    }
}

/// Logs at an nginx level (`NGX_LOG_ERR`, ...) to a [`LogSource`]; the arguments are
/// formatted only when the log takes that level. Call inside `unsafe` (the source is read).
///
/// `ase_log!(nginx_sys::NGX_LOG_WARN, r, "ase: ... {x}")`
#[macro_export]
#[allow(edition_2024_expr_fragment_specifier)] // either edition's `expr` reads these arguments alike
macro_rules! ase_log {
    ($level:expr, $source:expr, $($arg:tt)+) => {{
        let log = $crate::log::LogSource::log_ptr(&$source);
        if !log.is_null() {
            $crate::log::ngx::ngx_log_error!($level, log, $($arg)+);
        }
    }};
}

#[doc(hidden)]
pub use ngx;

/// At most one line per `period_ms` from one place (a `static` beside the log call, so per
/// worker): the first one is logged, repeats within the period are not.
pub struct RateLimit {
    /// When a line was last let through; `NEVER` before the first.
    last_ms: AtomicU64,
    period_ms: u64,
}

const NEVER: u64 = u64::MAX;

impl RateLimit {
    pub const fn new(period_ms: u64) -> Self {
        RateLimit { last_ms: AtomicU64::new(NEVER), period_ms }
    }

    /// Whether a line may be logged at `now_ms` (and, if so, notes it).
    pub fn allow_at(&self, now_ms: u64) -> bool {
        let last = self.last_ms.load(Ordering::Relaxed);
        if last != NEVER && now_ms.saturating_sub(last) < self.period_ms {
            return false;
        }
        self.last_ms.store(now_ms, Ordering::Relaxed);
        true
    }

    /// [`Self::allow_at`] on nginx's cached clock.
    pub fn allow(&self) -> bool {
        // SAFETY: a plain integer nginx updates on this same thread.
        self.allow_at(unsafe { nginx_sys::ngx_current_msec } as u64)
    }
}

/// The period of [`RateLimit`]s for faults that repeat on every call: once a minute.
pub const ONCE_A_MINUTE: u64 = 60_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_period() {
        let limit = RateLimit::new(60_000);
        assert!(limit.allow_at(0), "the first line is logged, even at time 0");
        assert!(!limit.allow_at(59_999));
        assert!(limit.allow_at(60_000));
        assert!(!limit.allow_at(60_001));
        assert!(limit.allow_at(200_000));
    }
}
