//! The access-phase handler and its per-request state (unsafe glue over `payload.rs` and
//! `verdict.rs`).
//!
//! The state lives in a pool cleanup of the main request, not only in `r->ctx`: an
//! internal redirect (`index`, `try_files`, `error_page`) clears `r->ctx` and runs the
//! access phase again, and the cleanup is how we still find "already checked". The same
//! cleanup cancels a pending check when the request ends early (client went away).
//!
//! `admit` is asked before the payload is built (a refusal takes the fail mode at
//! once, as an `Unavailable` error); `done` may run inside `start_check`, and then the
//! handler decides in the same call instead of posting an event. Per request nothing is
//! allocated on the heap: the header list is walked in place and the payload is built in a
//! reused per-thread buffer (`with_scratch`), which the channel copies.
//!
//! The payload is held to `ase_request_max_size` (`payload.rs` says what is left out); a
//! payload cut short is counted (`count_event`) and the check goes on as usual. One
//! whose identity alone does not fit is not sent: counted, and refused with 431 whatever the
//! fail mode (`refuse_unsendable`).
//!
//! `ase_request monitor`: the check is started as with `on`, but with a callback that
//! ignores its outcome and no pointer to the request: the request is decided (`monitor`) at
//! once and goes on, the check is never cancelled, and it may outlive the request. The state
//! is kept all the same: it holds the correlation ID the response report carries.

use core::ffi::c_void;
use core::ptr;

use nginx_sys::{
    ngx_http_core_run_phases, ngx_http_request_t, ngx_http_test_reading, ngx_int_t, ngx_pool_cleanup_add,
    ngx_pool_cleanup_t, ngx_post_event, ngx_posted_events, NGX_AGAIN, NGX_DECLINED, NGX_ERROR, NGX_LOG_ERR,
};
use ngx::http::HttpModuleLocationConf;
use ngx_ase_glue::ase_log;
use ngx_ase_glue::channel::ChannelHandle;
use ngx_ase_glue::headers::request_headers;
use ngx_ase_glue::log::{RateLimit, ONCE_A_MINUTE};
use ngx_ase_glue::panic::guard;
use ngx_ase_shared::abi::{Admission, AseError, Bytes, CallKind, ChannelApi, CheckResult, Event, RequestMode, Verdict};
use ngx_ase_shared::header_names::{is_listed, visible};
use ngx_ase_shared::json::with_scratch;

use crate::cache_check::{self, CacheState};
use crate::cache_table::Cached;
use crate::conf::{LocConf, PerRequestValue};
use crate::correlation_id::{CorrelationId, Source};
use crate::in_flight::{monitor_ceiling, InFlight};
use crate::payload::{build_into, http_version_name, Fit, RequestMeta};
use crate::routed;
use crate::verdict::{decide, Complaint, Decision};
use crate::Module;
use crate::{set_header_values, skip};

/// The channel's function table, set at postconfiguration.
pub static CHANNEL: ChannelHandle = ChannelHandle::new();

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Answered,
    Decided,
}

/// Per main request, inside its pool cleanup.
pub struct Ctx {
    r: *mut ngx_http_request_t,
    state: State,
    handle: *mut c_void,
    /// `start_check` is running: a `done` called now is inside our own handler call, which
    /// finishes the request itself, so it must not post the write event.
    in_start: bool,
    result: CheckResult,
    correlation_id: CorrelationId,
    pub verdict: Verdict,
    pub elapsed_ms: Option<u64>,
    /// The status the request was answered with (block or fail closed), 0 if it went on.
    refused_with: u16,
    /// The group (`ase_pass`, as the channel numbers them) of the location that decided.
    group: u32,
    /// The correlation ID of the latest check whose metadata went to the channel: what
    /// `$ase_correlation_id` gives and the response report carries. `None` while nothing was
    /// sent (breaker open, monitor ceiling reached): the ASE could pair no report with it.
    pub sent_id: Option<CorrelationId>,
    /// What the verdict cache said (`None` where `ase_cache` is off).
    pub cache: Option<CacheState>,
}

fn api() -> Option<&'static ChannelApi> {
    CHANNEL.api()
}

/// Finds the request's state by its cleanup handler.
pub unsafe fn find_ctx(r: *mut ngx_http_request_t) -> Option<&'static mut Ctx> {
    unsafe {
        let main = (*r).main;
        let mut c: *mut ngx_pool_cleanup_t = (*(*main).pool).cleanup;
        while let Some(cl) = c.as_ref() {
            if cl.handler.map(|f| f as usize) == Some(CLEANUP as usize) {
                return (cl.data as *mut Ctx).as_mut();
            }
            c = cl.next;
        }
        None
    }
}

/// The one pointer to `cleanup` both set and compared, so the comparison is exact.
static CLEANUP: unsafe extern "C" fn(*mut c_void) = cleanup;

unsafe extern "C" fn cleanup(data: *mut c_void) {
    unsafe {
        let ctx = &mut *(data as *mut Ctx);
        if !ctx.handle.is_null() {
            if let Some(api) = api() {
                (api.cancel_check)(ctx.handle);
            }
            ctx.handle = ptr::null_mut();
        }
    }
}

/// First in the access phase: checks where `ase_request_after_access` is off.
pub unsafe extern "C" fn access_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    unsafe {
        let log = (*(*r).connection).log;
        guard(log, "access handler", NGX_DECLINED as ngx_int_t, || access(r, false))
    }
}

/// In the precontent phase, once every access module let the request through: checks
/// where `ase_request_after_access` is on (so `auth_request_set` values are known).
pub unsafe extern "C" fn after_access_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    unsafe {
        let log = (*(*r).connection).log;
        guard(log, "precontent handler", NGX_DECLINED as ngx_int_t, || access(r, true))
    }
}

/// `late`: whether this is the precontent phase's call. A check in progress is always
/// resumed by the handler that started it (nginx re-runs the same phase handler).
unsafe fn access(r: *mut ngx_http_request_t, late: bool) -> ngx_int_t {
    unsafe {
        if (*r).main != r {
            return NGX_DECLINED as ngx_int_t;
        }
        let Some(lc) = Module::location_conf(&*r) else { return NGX_DECLINED as ngx_int_t };
        let mode = lc.mode();
        let here = mode != RequestMode::Off && lc.after_access() == late;
        if let Some(ctx) = find_ctx(r) {
            return match ctx.state {
                State::Pending => NGX_AGAIN as ngx_int_t,
                State::Answered => finish(r, ctx, lc),
                // Refused, then redirected (`error_page` on the block status) to a location that
                // checks: refused again, as nginx's `deny` would be, not let through to its
                // backend. Not checked again: once per main request.
                State::Decided if ctx.refused_with != 0 && mode == RequestMode::On => refuse(r, ctx.refused_with),
                // Where the request ends up decides: redirected into a location that enforces,
                // a request that was only monitored, that failed open, or that another group
                // allowed is checked here, in this location's group and with its fail mode (a
                // new correlation ID: the report pairs with this check).
                State::Decided if mode == RequestMode::On && here => match api() {
                    Some(api) if needs_check_here(ctx, r, api) && !skip::requested(r, lc.skip()) => {
                        let ctx_ptr: *mut Ctx = ctx;
                        let sent_id = ctx.sent_id;
                        ptr::write(ctx_ptr, Ctx::new(r, lc));
                        (*ctx_ptr).sent_id = sent_id;
                        enforce(r, ctx_ptr, lc, api)
                    }
                    _ => NGX_DECLINED as ngx_int_t,
                },
                // A skip holds only where it was decided: redirected into a location that
                // monitors and does not skip, the request is monitored there.
                State::Decided
                    if ctx.verdict == Verdict::Skip
                        && mode == RequestMode::Monitor
                        && here
                        && !skip::requested(r, lc.skip()) =>
                {
                    if let Some(api) = api() {
                        let ctx_ptr: *mut Ctx = ctx;
                        ptr::write(ctx_ptr, Ctx::new(r, lc));
                        monitor(r, &mut *ctx_ptr, lc, api, false);
                    }
                    NGX_DECLINED as ngx_int_t
                }
                State::Decided => NGX_DECLINED as ngx_int_t,
            };
        }
        if !here {
            return NGX_DECLINED as ngx_int_t;
        }
        let Some(api) = api() else { return NGX_DECLINED as ngx_int_t };
        let cl = ngx_pool_cleanup_add((*r).pool, core::mem::size_of::<Ctx>());
        if cl.is_null() {
            return NGX_ERROR as ngx_int_t;
        }
        let ctx_ptr = (*cl).data as *mut Ctx;
        if skip::requested(r, lc.skip()) {
            ptr::write(ctx_ptr, Ctx::skipped(r));
            (*cl).handler = Some(CLEANUP);
            (api.count_verdict)(Verdict::Skip as u8, AseError::None as u8);
            trace_verdict(r, &*ctx_ptr);
            return NGX_DECLINED as ngx_int_t;
        }
        ptr::write(ctx_ptr, Ctx::new(r, lc));
        (*cl).handler = Some(CLEANUP);
        if mode == RequestMode::Monitor {
            monitor(r, &mut *ctx_ptr, lc, api, false);
            return NGX_DECLINED as ngx_int_t;
        }
        enforce(r, ctx_ptr, lc, api)
    }
}

/// A request decided elsewhere and redirected into a location that enforces: does that
/// verdict stand here? Only the ASE's own answer from this location's group does: a monitor
/// verdict, a skip or a fail-open is no answer, and another group's allow speaks for another
/// cluster.
unsafe fn needs_check_here(ctx: &Ctx, r: *mut ngx_http_request_t, api: &ChannelApi) -> bool {
    unsafe {
        match ctx.verdict {
            Verdict::Monitor | Verdict::FailOpen | Verdict::Skip => true,
            Verdict::Allow => (api.group_of)(r.cast()) != ctx.group,
            Verdict::Block | Verdict::FailClosed => false,
        }
    }
}

impl Ctx {
    /// A check about to start, with a new correlation ID (`ase_correlation_id`'s or the
    /// module's own).
    unsafe fn new(r: *mut ngx_http_request_t, lc: &LocConf) -> Ctx {
        Ctx::with_id(r, unsafe { correlation_id(r, lc) })
    }

    /// A request `ase_skip` lets through unchecked: nothing is sent (no `sent_id`).
    fn skipped(r: *mut ngx_http_request_t) -> Ctx {
        Ctx { state: State::Decided, ..Ctx::with_id(r, CorrelationId::own()) }
    }

    fn with_id(r: *mut ngx_http_request_t, correlation_id: CorrelationId) -> Ctx {
        Ctx {
            r,
            state: State::Pending,
            handle: ptr::null_mut(),
            in_start: false,
            result: CheckResult::new(0, AseError::None, 0),
            correlation_id,
            verdict: Verdict::Skip,
            elapsed_ms: None,
            refused_with: 0,
            group: u32::MAX,
            sent_id: None,
            cache: None,
        }
    }
}

/// The request's correlation ID: `ase_correlation_id`'s value when it can go in a header
/// as it is, else the module's own (an unusable value is logged, at most once a minute,
/// without itself: it may be the client's).
unsafe fn correlation_id(r: *mut ngx_http_request_t, lc: &LocConf) -> CorrelationId {
    let Some(value) = lc.correlation_id else { return CorrelationId::own() };
    let (id, source) = CorrelationId::from_operator(unsafe { evaluate(r, Some(value)) });
    static REFUSED: RateLimit = RateLimit::new(ONCE_A_MINUTE);
    if source == Source::Refused && REFUSED.allow() {
        ase_log!(
            nginx_sys::NGX_LOG_WARN,
            r,
            "ase: the ase_correlation_id value is longer than {} bytes or has bytes a header cannot carry (space, \
             control, non-ASCII): the module's own ID sent instead",
            crate::correlation_id::MAX_LEN
        );
    }
    id
}

/// Starts the check the request waits for (`ase_request on`), or decides at once when the
/// channel cannot take it or answers at once.
unsafe fn enforce(r: *mut ngx_http_request_t, ctx_ptr: *mut Ctx, lc: &LocConf, api: &ChannelApi) -> ngx_int_t {
    unsafe {
        (*ctx_ptr).group = (api.group_of)(r.cast());
        (*ctx_ptr).cache = cache_check::look_up(r, lc, (*ctx_ptr).group);
        if let Some(state) = (*ctx_ptr).cache {
            if let Some(event) = state.event() {
                (api.count_event)(event as u8);
            }
            if let Some(verdict) = state.hit() {
                return decide_from_cache(r, &mut *ctx_ptr, lc, api, &state, verdict);
            }
        }
        // Asked before anything is built: when the channel cannot take the check (breaker
        // open), it has counted it already, and the request takes the fail mode at once.
        let admission = Admission::from_u8((api.admit)(r.cast(), CallKind::Check as u8));
        if admission == Admission::Detach {
            // The group's checks are slow (`ase_latency_guard`): not waited for, as monitor.
            monitor(r, &mut *ctx_ptr, lc, api, true);
            return NGX_DECLINED as ngx_int_t;
        }
        if admission != Admission::Go {
            let ctx = &mut *ctx_ptr;
            ctx.result = CheckResult::new(0, AseError::Unavailable, 0);
            ctx.state = State::Answered;
            return finish(r, ctx, lc);
        }

        // `done` may run inside `start_check` (an outcome known at once); it reaches the state
        // through `ctx_ptr`, so no reference to it is held across the call.
        (*ctx_ptr).in_start = true;
        let cid = (*ctx_ptr).correlation_id;
        let before = (*ctx_ptr).sent_id.replace(cid);
        let sent = send_metadata(r, lc, api, cid.as_bytes(), on_done, ctx_ptr.cast());
        let ctx = &mut *ctx_ptr;
        ctx.in_start = false;
        let Some(handle) = sent else {
            ctx.sent_id = before;
            return refuse_unsendable(r, ctx, api);
        };
        match ctx.state {
            // `done` already ran: decide now, in this handler call (no event was posted).
            State::Answered => finish(r, ctx, lc),
            State::Pending if handle.is_null() => {
                // A null handle means `done` ran inside `start_check`; should it not have (a
                // channel breaking its contract), the check is not started, never left pending.
                ctx.result = CheckResult::new(0, AseError::NotStarted, 0);
                ctx.state = State::Answered;
                finish(r, ctx, lc)
            }
            _ => {
                ctx.handle = handle;
                // Notice a client that goes away while we wait.
                (*r).read_event_handler = Some(ngx_http_test_reading);
                NGX_AGAIN as ngx_int_t
            }
        }
    }
}

/// A request whose identity does not fit in `ase_request_max_size` cannot be checked, and
/// it is the client's doing (padded cookies, say), not the ASE's: refused with 431 whatever
/// `ase_fail_mode` says, else any client could choose not to be checked. Its verdict is
/// `fail_closed`, counted with the cause `not_started`.
unsafe fn refuse_unsendable(r: *mut ngx_http_request_t, ctx: &mut Ctx, api: &ChannelApi) -> ngx_int_t {
    unsafe {
        ctx.state = State::Decided;
        ctx.verdict = Verdict::FailClosed;
        ctx.result = CheckResult::new(0, AseError::NotStarted, 0);
        ctx.elapsed_ms = Some(0);
        trace_verdict(r, ctx);
        (api.count_verdict)(Verdict::FailClosed as u8, AseError::NotStarted as u8);
        ctx.refused_with = IDENTITY_TOO_LARGE_STATUS;
        refuse(r, IDENTITY_TOO_LARGE_STATUS)
    }
}

/// 431 Request Header Fields Too Large.
const IDENTITY_TOO_LARGE_STATUS: u16 = 431;

/// Builds the payload and starts the check; the channel copies the body before
/// `start_check` returns, so one reused buffer will do. `None`: nothing was sent (the
/// identity does not fit; counted and logged here) and `done` was not called.
unsafe fn send_metadata(
    r: *mut ngx_http_request_t,
    lc: &LocConf,
    api: &ChannelApi,
    cid: &[u8],
    done: ngx_ase_shared::abi::CheckDone,
    data: *mut c_void,
) -> Option<*mut c_void> {
    unsafe {
        let meta = request_meta(r, lc);
        with_scratch(|body| match build_into(body, &meta, lc.max_size) {
            Fit::Whole => Some((api.start_check)(r.cast(), Bytes::new(cid), Bytes::new(body), done, data)),
            Fit::Cut => {
                (api.count_event)(Event::PayloadTruncated as u8);
                Some((api.start_check)(r.cast(), Bytes::new(cid), Bytes::new(body), done, data))
            }
            // Never cut from the identity: not sent, and decided as an ASE error (the fail
            // mode), through `done` as a channel that cannot take the call would.
            Fit::IdentityTooLarge => {
                (api.count_event)(Event::IdentityTooLarge as u8);
                static TOO_LARGE: RateLimit = RateLimit::new(ONCE_A_MINUTE);
                if TOO_LARGE.allow() {
                    ase_log!(
                        nginx_sys::NGX_LOG_WARN,
                        r,
                        "ase: the request's identity (its fields, host and identity headers) does not fit in \
                         ase_request_max_size ({} bytes): not sent to the ASE; refused with 431 (with ase_request \
                         monitor: let through)",
                        lc.max_size
                    );
                }
                let _ = (done, data);
                None
            }
        })
    }
}

/// `ase_request monitor` (or a check of a group `ase_latency_guard` found slow, which the
/// channel `admitted` already): decided at once; the metadata goes out when the channel
/// takes it, and whatever the ASE answers changes nothing.
unsafe fn monitor(r: *mut ngx_http_request_t, ctx: &mut Ctx, lc: &LocConf, api: &ChannelApi, admitted: bool) {
    unsafe {
        ctx.state = State::Decided;
        ctx.verdict = Verdict::Monitor;
        ctx.group = (api.group_of)(r.cast());
        (api.count_verdict)(Verdict::Monitor as u8, AseError::None as u8);
        send_detached(r, ctx, lc, api, (on_monitor_done, ptr::null_mut()), admitted);
    }
}

/// A cache hit (`cache_check.rs`): decided at once by the cached verdict, and the metadata
/// still goes to the ASE, detached as with `monitor`; its answer refreshes the entry. A
/// cached block is refused here and now, as the ASE's own would be.
unsafe fn decide_from_cache(
    r: *mut ngx_http_request_t,
    ctx: &mut Ctx,
    lc: &LocConf,
    api: &ChannelApi,
    state: &CacheState,
    verdict: Cached,
) -> ngx_int_t {
    unsafe {
        ctx.state = State::Decided;
        ctx.elapsed_ms = Some(0);
        ctx.verdict = match verdict {
            Cached::Allow => Verdict::Allow,
            Cached::Block => Verdict::Block,
        };
        (api.count_verdict)(ctx.verdict as u8, AseError::None as u8);
        send_detached(r, ctx, lc, api, (on_refresh_done, cache_check::pending_refresh(state)), false);
        match verdict {
            Cached::Allow => NGX_DECLINED as ngx_int_t,
            Cached::Block => {
                ctx.refused_with = lc.block_status as u16;
                refuse(r, ctx.refused_with)
            }
        }
    }
}

/// The answer to a hit's detached check: frees its place and refreshes the cache entry.
unsafe extern "C" fn on_refresh_done(data: *mut c_void, result: CheckResult) {
    MONITORED.release();
    if cache_check::refreshed(data, &result) {
        count(Event::CacheEviction);
    }
}

/// Counts a cache event on the status page.
fn count(event: Event) {
    if let Some(api) = api() {
        // SAFETY: the channel's function table, valid for the process's life.
        unsafe { (api.count_event)(event as u8) };
    }
}

/// Sends the request's metadata without waiting for the answer (`monitor`, a cache hit),
/// when the channel takes it and the worker is under its ceiling of detached checks.
/// `done(data)` is called exactly once if it is sent; otherwise `data` is handed back to
/// [`drop_detached`]. `admitted`: the channel already admitted it (a slow group's check).
unsafe fn send_detached(
    r: *mut ngx_http_request_t,
    ctx: &mut Ctx,
    lc: &LocConf,
    api: &ChannelApi,
    (done, data): (ngx_ase_shared::abi::CheckDone, *mut c_void),
    admitted: bool,
) {
    unsafe {
        // A group whose checks are slow admits them detached: for a detached check, the same.
        let go = |a| matches!(Admission::from_u8(a), Admission::Go | Admission::Detach);
        if !admitted && !go((api.admit)(r.cast(), CallKind::Check as u8)) {
            drop_detached(data);
            trace_verdict(r, ctx);
            return;
        }
        // Bounded (see `in_flight.rs`); the place is given back by `on_monitor_done`, which
        // the channel calls exactly once, maybe inside `start_check`.
        let ceiling = monitor_ceiling((*nginx_sys::ngx_cycle).connection_n);
        if !MONITORED.try_take(ceiling) {
            drop_detached(data);
            (api.count_event)(Event::MonitorSkipped as u8);
            trace_verdict(r, ctx);
            static TOO_MANY: RateLimit = RateLimit::new(ONCE_A_MINUTE);
            if TOO_MANY.allow() {
                ase_log!(
                    nginx_sys::NGX_LOG_WARN,
                    r,
                    "ase: {ceiling} monitored checks in flight (a quarter of worker_connections), the ASE is slow \
                     or down: request metadata not sent to the ASE"
                );
            }
            return;
        }
        // No handle is kept: nothing cancels a monitor check, and its callback needs no data.
        let cid = ctx.correlation_id;
        let before = ctx.sent_id.replace(cid);
        trace_verdict(r, ctx);
        if send_metadata(r, lc, api, cid.as_bytes(), done, data).is_none() {
            // Not sent: its place is free again; no report, no $ase_correlation_id for it.
            MONITORED.release();
            drop_detached(data);
            ctx.sent_id = before;
        }
    }
}

/// The callback data of a detached check that was not sent (a cache hit's refresh slot).
fn drop_detached(data: *mut c_void) {
    if !data.is_null() {
        cache_check::drop_refresh(data);
    }
}

/// Monitored checks in flight in this worker.
static MONITORED: InFlight = InFlight::new();

/// A monitor check's outcome: its place is free again (the channel has counted it).
unsafe extern "C" fn on_monitor_done(_data: *mut c_void, _result: CheckResult) {
    MONITORED.release();
}

/// The channel's answer (on the event loop): note it and, when it comes later, resume the
/// request's phases from a posted event, outside the channel's task. Inside `start_check`
/// it only notes it: the handler that called `start_check` decides.
unsafe extern "C" fn on_done(data: *mut c_void, result: CheckResult) {
    unsafe {
        let ctx = &mut *(data as *mut Ctx);
        let r = ctx.r;
        guard((*(*r).connection).log, "check callback", (), || {
            ctx.handle = ptr::null_mut();
            if ctx.state != State::Pending {
                // Never for a well-behaved channel (once per check); keep the first outcome.
                return;
            }
            ctx.result = result;
            ctx.state = State::Answered;
            if !ctx.in_start {
                (*r).write_event_handler = Some(ngx_http_core_run_phases);
                ngx_post_event((*(*r).connection).write, ptr::addr_of_mut!(ngx_posted_events));
            }
        })
    }
}

unsafe fn finish(r: *mut ngx_http_request_t, ctx: &mut Ctx, lc: &LocConf) -> ngx_int_t {
    unsafe {
        ctx.state = State::Decided;
        ctx.elapsed_ms = Some(ctx.result.elapsed_ms);
        (*r).read_event_handler = Some(nginx_sys::ngx_http_block_reading);
        let (mut decision, complaint) =
            decide(&ctx.result, lc.fail_mode, lc.block_status as u16, lc.fail_status as u16);
        complain(r, complaint, &ctx.result);
        // The cache learns the ASE's answer, or stands in for the ASE on an error.
        let (evicted, stale) = cache_check::settle(ctx.cache.as_mut(), &ctx.result, lc);
        if evicted {
            count(Event::CacheEviction);
        }
        if let Some(stale) = stale {
            count(Event::CacheStale);
            decision = decide(&stale, lc.fail_mode, lc.block_status as u16, lc.fail_status as u16).0;
            ctx.result = stale;
        }
        let verdict = match decision {
            Decision::Continue(v) | Decision::Finalize(_, v) => v,
        };
        // Recorded before the request may end below (its log phase reads $ase_verdict).
        ctx.verdict = verdict;
        trace_verdict(r, ctx);
        if let Some(api) = api() {
            (api.count_verdict)(verdict as u8, ctx.result.error() as u8);
        }
        match decision {
            Decision::Continue(_) => NGX_DECLINED as ngx_int_t,
            // The ASE's block (or fail-closed) is final: answered here and now. Returned to the
            // access phase as a status instead, `satisfy any` would take it for one access
            // module's "no" and let an `allow` or `auth_basic` that says yes override it.
            // (`ctx` lives in the request's pool: not touched after this.)
            Decision::Finalize(status, _) => {
                ctx.refused_with = status;
                refuse(r, status)
            }
        }
    }
}

/// Answers the request with `status` now (nginx's `error_page` for it still applies).
unsafe fn refuse(r: *mut ngx_http_request_t, status: u16) -> ngx_int_t {
    unsafe {
        nginx_sys::ngx_http_finalize_request(r, status as ngx_int_t);
        nginx_sys::NGX_DONE as ngx_int_t
    }
}

/// The debug trace's line for the request's own verdict: the channel's `check` line says
/// `verdict=fail` for an ASE error, as only the location knows `ase_fail_mode`. Written, as
/// the channel's lines, only by an nginx built `--with-debug`.
unsafe fn trace_verdict(r: *mut ngx_http_request_t, ctx: &Ctx) {
    if ngx::log::DEBUG {
        // The ID the access log's `$ase_correlation_id` shows: `-` when nothing was sent.
        let cid = ctx.sent_id.as_ref().and_then(|id| core::str::from_utf8(id.as_bytes()).ok()).unwrap_or("-");
        ase_log!(nginx_sys::NGX_LOG_DEBUG, r, "ase: verdict={} cid={cid}", ctx.verdict.name());
    }
}

/// 401 and 400 are configuration or software errors: logged at `error`, at most once a
/// minute per worker; other ASE errors at `warn`, also rate-limited.
unsafe fn complain(r: *mut ngx_http_request_t, c: Complaint, result: &CheckResult) {
    static BAD_TOKEN: RateLimit = RateLimit::new(ONCE_A_MINUTE);
    static MALFORMED: RateLimit = RateLimit::new(ONCE_A_MINUTE);
    static ASE_ERROR: RateLimit = RateLimit::new(ONCE_A_MINUTE);
    let (limit, level) = match c {
        Complaint::None => return,
        Complaint::BadToken => (&BAD_TOKEN, NGX_LOG_ERR),
        Complaint::Malformed => (&MALFORMED, NGX_LOG_ERR),
        Complaint::AseError => (&ASE_ERROR, nginx_sys::NGX_LOG_WARN),
    };
    if limit.allow() {
        ase_log!(level, r, "{}", Message(c, result));
    }
}

/// The log line for a complaint.
struct Message<'a>(Complaint, &'a CheckResult);

impl core::fmt::Display for Message<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Complaint::None => Ok(()),
            Complaint::BadToken => f.write_str(
                "ase: the ASE answered 401: the ASE-Token is missing or wrong; check ase_token_file against the ASE's sideband tokens"),
            Complaint::Malformed => f.write_str("ase: the ASE answered 400 (malformed request) to our request metadata"),
            Complaint::AseError => match self.1.error() {
                AseError::None => write!(f,
                    "ase: the ASE answered {}, which the protocol does not define; treated as an ASE error", self.1.status),
                e => write!(f, "ase: request check failed: {}; treated as an ASE error", e.name()),
            },
        }
    }
}

/// `ase_user` or `ase_client_id` for this request: `None` when unset, empty, or not
/// computable.
unsafe fn evaluate<'a>(r: *mut ngx_http_request_t, value: Option<PerRequestValue>) -> Option<&'a [u8]> {
    unsafe { ngx_ase_glue::complex_value::evaluate(r, value?.cv) }
}

/// Borrows what the payload needs from the request: its header lines but those
/// `ase_set_header` replaces, then the set ones; hidden lines are left out of both.
unsafe fn request_meta<'a>(
    r: *mut ngx_http_request_t,
    lc: &'a LocConf,
) -> RequestMeta<'a, impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone + 'a> {
    unsafe {
        let c = (*r).connection;
        let set_names = lc.set_names();
        let own = request_headers(r).filter(move |h| set_names.is_empty() || !is_listed(set_names, h.0));
        let set = lc.set_headers.as_ref().map_or(&[][..], |s| set_header_values::evaluate(r, s));
        let headers = visible(own.chain(set.iter().copied()), lc.hidden(), |h: &(&[u8], &[u8])| h.0);
        let username = evaluate(r, lc.user);
        let client_id = evaluate(r, lc.client_id);
        RequestMeta {
            source_ip: (*c).addr_text.as_bytes(),
            source_port: nginx_sys::ngx_inet_get_port((*c).sockaddr) as u16,
            method: (*r).method_name.as_bytes(),
            url: routed::url(r),
            http_version: http_version_name((*r).http_version),
            host: routed::host(r, lc.hidden()),
            headers,
            identity: lc.identity(),
            username,
            client_id,
        }
    }
}
