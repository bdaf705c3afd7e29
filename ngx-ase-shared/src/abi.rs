//! The C ABI between `ngx_ase_common_module` (which owns the sideband channel) and the
//! request and response modules (which call it).
//!
//! Each module is its own shared object with its own copy of Rust's runtime, so only
//! `#[repr(C)]` structs, integers and plain function pointers cross between them, and every
//! byte buffer is copied by the callee before the call returns. Enums cross as `u8` and are
//! read back with `from_u8`, which maps a value it does not know (a build of another
//! version) to a safe one: a Rust enum holding an unknown value would be undefined
//! behaviour.
//!
//! How a caller finds the table: the common module's http main configuration begins with a
//! [`CommonMainHeader`]; the caller looks the common module up by its name in
//! `cycle->modules` and reads that header through its `ctx_index`. No symbol lookup, so the
//! same code works for dynamic modules and for a static build.

use core::ffi::c_void;

/// Bumped whenever the layout of anything in this file changes.
pub const ABI_VERSION: u32 = 7;

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
        unsafe {
            if self.ptr.is_null() || self.len == 0 {
                &[]
            } else {
                core::slice::from_raw_parts(self.ptr, self.len)
            }
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
    /// Connection refused (or a connect that failed in another way the node is to blame for).
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
    /// A 503 that is not the ASE's own unknown-API / unknown-hostname answer (e.g. a load
    /// balancer in front of the ASE whose nodes are gone): an ASE error, not "continue".
    Bad503 = 9,
    /// The network said there is no way to the node (`ENETUNREACH`, `EHOSTUNREACH`, ...).
    Unreachable = 10,
    /// nginx itself could not open a connection (no free connection in `worker_connections`,
    /// no file descriptor, no local port): not the ASE's doing, never charged to a node.
    Local = 11,
}

impl AseError {
    pub const ALL: [AseError; 12] = [
        AseError::None,
        AseError::Timeout,
        AseError::Refused,
        AseError::Reset,
        AseError::Tls,
        AseError::BadAnswer,
        AseError::Unavailable,
        AseError::Internal,
        AseError::NotStarted,
        AseError::Bad503,
        AseError::Unreachable,
        AseError::Local,
    ];

    /// The error a `u8` from the other side of the ABI names; an unknown value is `Internal`.
    pub fn from_u8(v: u8) -> AseError {
        AseError::ALL.get(usize::from(v)).copied().unwrap_or(AseError::Internal)
    }

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
            AseError::Bad503 => "bad_503",
            AseError::Unreachable => "unreachable",
            AseError::Local => "local",
        }
    }
}

/// What a request check came back with.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckResult {
    /// The ASE's HTTP status, or 0 when `error` is not `None`.
    pub status: u16,
    /// An [`AseError`] as `u8` (read it with [`CheckResult::error`]).
    pub error: u8,
    /// Milliseconds from the start of the check to this result.
    pub elapsed_ms: u64,
}

impl CheckResult {
    pub fn new(status: u16, error: AseError, elapsed_ms: u64) -> Self {
        CheckResult { status, error: error as u8, elapsed_ms }
    }

    pub fn error(&self) -> AseError {
        AseError::from_u8(self.error)
    }
}

/// Called exactly once per check that `start_check` was asked for, unless the caller
/// cancelled it first. `data` is what the caller passed to `start_check`. It runs on the
/// worker's event loop, either later (the ASE answered, or the check timed out) or *before
/// `start_check` returns*, when the outcome is known at once (no node can be used, the
/// channel cannot take the call); `start_check` then returns null.
pub type CheckDone = unsafe extern "C" fn(data: *mut c_void, result: CheckResult);

/// Which kind of call [`ChannelApi::admit`] is asked about.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallKind {
    Check = 0,
    Report = 1,
}

/// What `admit` and `send_report` say about a call.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead (from `send_report`: queued).
    Go = 0,
    /// `ase_response_queue` reports are already in flight on this worker (reports only).
    QueueFull = 1,
    /// Every ASE node is down (the breaker is open) or the channel is not running.
    Unavailable = 2,
    /// Checks only: send it, but do not wait for it (`ase_latency_guard`: the group's checks
    /// are slow); the request goes on as with `ase_request monitor`.
    Detach = 3,
}

impl Admission {
    /// An unknown value is `Unavailable`: nothing is sent.
    pub fn from_u8(v: u8) -> Admission {
        match v {
            0 => Admission::Go,
            1 => Admission::QueueFull,
            3 => Admission::Detach,
            _ => Admission::Unavailable,
        }
    }
}

/// The functions the common module offers. `r` is always an `ngx_http_request_t *`: the
/// common module reads its own per-location settings (timeouts) from it.
#[repr(C)]
pub struct ChannelApi {
    pub abi_version: u32,
    /// `size_of::<ChannelApi>()` in the build that made the table: a caller refuses a table
    /// whose version or size is not its own, so it never calls past the table's end.
    pub size: u32,
    /// Asked before a payload is built: may a call of `kind` (a [`CallKind`] as `u8`) go out
    /// now? Returns an [`Admission`] as `u8`. Anything but `Go` is counted by the channel as
    /// that call's outcome (a check answered `Unavailable`, a report dropped), so the caller
    /// builds nothing, calls nothing more, and acts on it: a check takes the fail mode with
    /// error `Unavailable`.
    pub admit: unsafe extern "C" fn(r: *mut c_void, kind: u8) -> u8,
    /// Starts `POST /ase/request`. `done` is called exactly once unless the caller cancels
    /// first: maybe before this returns (see [`CheckDone`]), and then the result is null.
    /// Otherwise the result is the handle for `cancel_check`.
    pub start_check: unsafe extern "C" fn(
        r: *mut c_void,
        correlation_id: Bytes,
        body: Bytes,
        done: CheckDone,
        data: *mut c_void,
    ) -> *mut c_void,
    /// Cancels a pending check: `done` will not be called. The handle is invalid after; a
    /// handle that is no longer pending is ignored.
    pub cancel_check: unsafe extern "C" fn(handle: *mut c_void),
    /// Queues `POST /ase/response`, fire-and-forget. Returns an [`Admission`] as `u8`.
    pub send_report: unsafe extern "C" fn(r: *mut c_void, correlation_id: Bytes, body: Bytes) -> u8,
    /// Adds one to the status page's verdict counters: a [`Verdict`] and an [`AseError`],
    /// each as `u8`.
    pub count_verdict: unsafe extern "C" fn(verdict: u8, error: u8),
    /// Adds one to the status page's counter for an [`Event`] (as `u8`); a value the
    /// channel does not know is ignored. Never fails, never affects the request.
    pub count_event: unsafe extern "C" fn(event: u8),
    /// The group (`ase_pass`) that the calls of `r`'s location go to, as an index (0 is the
    /// default group): a request checked in one group and redirected into a location of
    /// another is checked again there.
    pub group_of: unsafe extern "C" fn(r: *mut c_void) -> u32,
}

/// Something a module counts on the status page through [`ChannelApi::count_event`].
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// A request's metadata was larger than `ase_request_max_size`: the payload was sent cut
    /// short (headers left out, or the URL cut).
    PayloadTruncated = 0,
    /// `ase_request monitor`: the worker already had its most monitored checks in flight (the
    /// ASE is slow or down), so this request's metadata was not sent.
    MonitorSkipped = 1,
    /// What identifies the request (the fields, `user_info`, the host and the identity
    /// headers) does not fit in `ase_request_max_size`: nothing was sent, and the check
    /// followed the fail mode.
    IdentityTooLarge = 2,
    /// `ase_cache`: a verdict within `ase_cache_valid` decided the request at once.
    CacheHit = 3,
    /// `ase_cache`: no verdict, or one too old: the request waited for the ASE.
    CacheMiss = 4,
    /// `ase_cache_use_stale`: the ASE failed and a cached verdict decided instead.
    CacheStale = 5,
    /// `ase_cache_zone`: a full set gave up its least recently used verdict.
    CacheEviction = 6,
}

impl Event {
    pub const ALL: [Event; 7] = [
        Event::PayloadTruncated,
        Event::MonitorSkipped,
        Event::IdentityTooLarge,
        Event::CacheHit,
        Event::CacheMiss,
        Event::CacheStale,
        Event::CacheEviction,
    ];

    /// The event a `u8` from the other side of the ABI names, if it is one.
    pub fn from_u8(v: u8) -> Option<Event> {
        Event::ALL.get(usize::from(v)).copied()
    }
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
    /// `ase_request monitor`: the metadata went to the ASE and the request went on at once,
    /// whatever the ASE says.
    Monitor = 5,
}

impl Verdict {
    pub const ALL: [Verdict; 6] =
        [Verdict::Allow, Verdict::Block, Verdict::FailOpen, Verdict::FailClosed, Verdict::Skip, Verdict::Monitor];

    /// The verdict a `u8` from the other side of the ABI names, if it is one.
    pub fn from_u8(v: u8) -> Option<Verdict> {
        Verdict::ALL.get(usize::from(v)).copied()
    }

    /// The value of `$ase_verdict`.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Block => "block",
            Verdict::FailOpen => "fail_open",
            Verdict::FailClosed => "fail_closed",
            Verdict::Skip => "skip",
            Verdict::Monitor => "monitor",
        }
    }
}

/// The nginx module name of the request module.
pub const REQUEST_MODULE_NAME: &str = "ngx_http_ase_request_module";

/// `ase_request`'s value, as it crosses to the response module (`u8`).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestMode {
    Off = 0,
    /// Check each request and act on the answer.
    On = 1,
    /// Send each request's metadata, never wait for or act on the answer.
    Monitor = 2,
}

impl RequestMode {
    /// An unknown value is `Off`: nothing is assumed to have been sent.
    pub fn from_u8(v: u8) -> RequestMode {
        match v {
            1 => RequestMode::On,
            2 => RequestMode::Monitor,
            _ => RequestMode::Off,
        }
    }

    /// Whether a request's metadata goes to the ASE in this mode.
    pub fn sends_metadata(self) -> bool {
        self != RequestMode::Off
    }
}

/// The start of the request module's location configuration, as the response module reads
/// it while it merges its own: the response module needs the request module's
/// merged `ase_request` (to warn where reports would have no request) and `ase_hide_header`
/// list, and a directive belongs to one module only. Filled by the request module's merge;
/// the byte strings point into that configuration and live as long as it does.
#[repr(C)]
#[derive(Debug)]
pub struct RequestLocShared {
    /// [`ABI_VERSION`] of the build that filled it.
    pub abi_version: u32,
    /// `size_of::<RequestLocShared>()` in that build.
    pub size: u32,
    /// The merged `ase_request`, a [`RequestMode`] as `u8`.
    pub mode: u8,
    /// "FILE:LINE" of the `ase_request` line that set `mode`; empty for the default.
    pub mode_at: Bytes,
    /// The merged `ase_hide_header` names, lower-cased, each followed by one space
    /// (see `header_names`); empty when none.
    pub hidden: Bytes,
}

/// The size a [`RequestLocShared`] of this build has.
pub const REQUEST_LOC_SHARED_SIZE: u32 = core::mem::size_of::<RequestLocShared>() as u32;

impl RequestLocShared {
    pub fn new() -> Self {
        RequestLocShared {
            abi_version: ABI_VERSION,
            size: REQUEST_LOC_SHARED_SIZE,
            mode: RequestMode::Off as u8,
            mode_at: Bytes::new(b""),
            hidden: Bytes::new(b""),
        }
    }

    /// Whether this build can read it (same version and size).
    pub fn is_compatible(&self) -> bool {
        self.abi_version == ABI_VERSION && self.size == REQUEST_LOC_SHARED_SIZE
    }
}

impl Default for RequestLocShared {
    fn default() -> Self {
        Self::new()
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

/// The size a [`ChannelApi`] of this build has, as its `size` field gives it.
pub const CHANNEL_API_SIZE: u32 = core::mem::size_of::<ChannelApi>() as u32;

/// Why a function table (its `abi_version` and `size` fields) cannot be used by this
/// build, if it cannot. The version is read first: a table of any version begins with it.
pub fn api_mismatch(abi_version: u32, size: u32) -> Option<String> {
    if abi_version != ABI_VERSION {
        return Some(format!("ABI version {abi_version} where {ABI_VERSION} is expected"));
    }
    if size != CHANNEL_API_SIZE {
        return Some(format!("a function table of {size} bytes where {CHANNEL_API_SIZE} are expected"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_of_another_version_or_size_is_refused() {
        assert_eq!(api_mismatch(ABI_VERSION, CHANNEL_API_SIZE), None);
        assert!(api_mismatch(ABI_VERSION, CHANNEL_API_SIZE - 8).unwrap().contains("bytes"));
        assert!(api_mismatch(ABI_VERSION - 1, CHANNEL_API_SIZE).unwrap().contains("ABI version"));
        assert!(api_mismatch(ABI_VERSION - 1, 0).unwrap().contains("ABI version"), "the version is checked first");
    }

    #[test]
    fn enums_cross_as_u8_and_unknown_values_are_safe() {
        for e in AseError::ALL {
            assert_eq!(AseError::from_u8(e as u8), e);
        }
        assert_eq!(AseError::from_u8(200), AseError::Internal);
        for v in Verdict::ALL {
            assert_eq!(Verdict::from_u8(v as u8), Some(v));
        }
        assert_eq!(Verdict::from_u8(99), None);
        for e in Event::ALL {
            assert_eq!(Event::from_u8(e as u8), Some(e));
        }
        assert_eq!(Event::from_u8(Event::ALL.len() as u8), None);
        assert_eq!(Admission::from_u8(Admission::QueueFull as u8), Admission::QueueFull);
        assert_eq!(Admission::from_u8(7), Admission::Unavailable);
        for m in [RequestMode::Off, RequestMode::On, RequestMode::Monitor] {
            assert_eq!(RequestMode::from_u8(m as u8), m);
        }
        assert_eq!(RequestMode::from_u8(9), RequestMode::Off);
        assert!(RequestMode::Monitor.sends_metadata() && RequestMode::On.sends_metadata());
        assert!(!RequestMode::Off.sends_metadata());
        assert_eq!(Verdict::Monitor.name(), "monitor");
    }

    #[test]
    fn the_request_location_header_says_which_build_filled_it() {
        let mut h = RequestLocShared::new();
        assert!(h.is_compatible());
        h.size -= 1;
        assert!(!h.is_compatible());
    }
}
