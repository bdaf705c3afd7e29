//! The C ABI between `ngx_ase_common_module` (which owns the sideband channel) and the
//! request and response modules (which call it).
//!
//! Each module is its own shared object with its own copy of Rust's runtime, so only
//! `#[repr(C)]` values and plain function pointers cross between them, and every byte
//! buffer is copied by the callee before the call returns.
//!
//! How a caller finds the table: the common module's http main configuration begins with a
//! [`CommonMainHeader`]; the caller looks the common module up by its name in
//! `cycle->modules` and reads that header through its `ctx_index`. No symbol lookup, so the
//! same code works for dynamic modules and for a static build.

use core::ffi::c_void;

/// Bumped whenever the layout of anything in this file changes.
pub const ABI_VERSION: u32 = 1;

/// The nginx module name of the common module, as `cycle->modules[i]->name` spells it.
pub const COMMON_MODULE_NAME: &str = "ngx_ase_common_module";

/// A borrowed byte string; valid only for the duration of the call it is passed to.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Bytes {
    pub ptr: *const u8,
    pub len: usize,
}

impl Bytes {
    pub fn new(s: &[u8]) -> Self {
        Bytes { ptr: s.as_ptr(), len: s.len() }
    }

    /// # Safety
    /// `ptr` must point to `len` readable bytes that outlive the returned slice.
    pub unsafe fn as_slice<'a>(self) -> &'a [u8] {
        if self.ptr.is_null() || self.len == 0 {
            &[]
        } else {
            core::slice::from_raw_parts(self.ptr, self.len)
        }
    }
}

/// Why a sideband call produced no usable answer.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AseError {
    /// The ASE answered (see `status`).
    None = 0,
    /// `ase_timeout` or `ase_connect_timeout` ran out.
    Timeout = 1,
    /// Connection refused or no route.
    Refused = 2,
    /// The connection was reset or closed before a whole answer arrived.
    Reset = 3,
    /// TLS handshake or certificate verification failed.
    Tls = 4,
    /// The answer was not HTTP/1.x, or its body was too large.
    BadAnswer = 5,
    /// Every ASE node is marked down: the circuit breaker answered without trying.
    Unavailable = 6,
    /// Memory allocation or another local failure.
    Internal = 7,
    /// The channel could not take the call (e.g. the worker is shutting down).
    NotStarted = 8,
}

impl AseError {
    pub const ALL: [AseError; 9] = [
        AseError::None,
        AseError::Timeout,
        AseError::Refused,
        AseError::Reset,
        AseError::Tls,
        AseError::BadAnswer,
        AseError::Unavailable,
        AseError::Internal,
        AseError::NotStarted,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AseError::None => "none",
            AseError::Timeout => "timeout",
            AseError::Refused => "refused",
            AseError::Reset => "reset",
            AseError::Tls => "tls",
            AseError::BadAnswer => "bad_answer",
            AseError::Unavailable => "unavailable",
            AseError::Internal => "internal",
            AseError::NotStarted => "not_started",
        }
    }
}

/// What a request check came back with.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckResult {
    /// The ASE's HTTP status, or 0 when `error` is not `None`.
    pub status: u16,
    pub error: AseError,
    /// Milliseconds from the start of the check to this result.
    pub elapsed_ms: u64,
}

/// Called exactly once per started check, on the worker's event loop, unless the check was
/// cancelled first. `data` is what the caller passed to `start_check`.
pub type CheckDone = unsafe extern "C" fn(data: *mut c_void, result: CheckResult);

/// What `send_report` did with a response report.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportQueued {
    Queued = 0,
    /// `ase_response_queue` reports are already in flight on this worker.
    DroppedQueueFull = 1,
    /// No usable ASE node (breaker open) or the channel is not running.
    DroppedUnavailable = 2,
}

/// The functions the common module offers. `r` is always an `ngx_http_request_t *`: the
/// common module reads its own per-location settings (timeouts) from it.
#[repr(C)]
pub struct ChannelApi {
    pub abi_version: u32,
    /// Starts `POST /ase/request`. Returns a handle for `cancel_check`, or null when the
    /// check could not start; then `done` is never called and the caller treats it as an
    /// ASE error of kind `NotStarted`.
    pub start_check: unsafe extern "C" fn(
        r: *mut c_void,
        correlation_id: Bytes,
        body: Bytes,
        done: CheckDone,
        data: *mut c_void,
    ) -> *mut c_void,
    /// Cancels a pending check: `done` will not be called. The handle is invalid after.
    pub cancel_check: unsafe extern "C" fn(handle: *mut c_void),
    /// Queues `POST /ase/response`, fire-and-forget.
    pub send_report:
        unsafe extern "C" fn(r: *mut c_void, correlation_id: Bytes, body: Bytes) -> ReportQueued,
    /// Adds one to the status page's verdict counters (see `Verdict`).
    pub count_verdict: unsafe extern "C" fn(verdict: Verdict, error: AseError),
}

/// The outcome of a request check as the request module decided it.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    Allow = 0,
    Block = 1,
    FailOpen = 2,
    FailClosed = 3,
    Skip = 4,
}

impl Verdict {
    pub const ALL: [Verdict; 5] =
        [Verdict::Allow, Verdict::Block, Verdict::FailOpen, Verdict::FailClosed, Verdict::Skip];

    /// The value of `$ase_verdict`.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Block => "block",
            Verdict::FailOpen => "fail_open",
            Verdict::FailClosed => "fail_closed",
            Verdict::Skip => "skip",
        }
    }
}

/// The start of the common module's http main configuration; other modules read only this.
#[repr(C)]
pub struct CommonMainHeader {
    /// The function table; never null once the configuration is created.
    pub api: *const ChannelApi,
    /// How many `ase_server` lines the http block has.
    pub server_count: usize,
}
