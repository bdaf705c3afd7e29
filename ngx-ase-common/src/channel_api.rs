//! The C ABI table the request and response modules call (`ngx_ase_shared::abi::ChannelApi`):
//! unsafe glue from their calls to this worker's channel (`worker.rs`).

use core::ffi::c_void;

use nginx_sys::ngx_http_request_t;
use ngx::http::{HttpModuleLocationConf, HttpModuleMainConf};
use ngx_ase_glue::log::LogSource;
use ngx_ase_glue::panic::guard;
use ngx_ase_shared::abi::{
    Admission, AseError, Bytes, CallKind, ChannelApi, CheckDone, Event, Verdict, ABI_VERSION, CHANNEL_API_SIZE,
};

use crate::counters::{bump, counters};
use crate::engine::Limits;
use crate::worker;
use crate::Module;

pub static CHANNEL_API: ChannelApi = ChannelApi {
    abi_version: ABI_VERSION,
    size: CHANNEL_API_SIZE,
    admit,
    start_check,
    cancel_check,
    send_report,
    count_verdict,
    count_event,
    group_of,
};

unsafe fn request_log(r: *mut c_void) -> *mut nginx_sys::ngx_log_t {
    unsafe { LogSource::log_ptr(&(r as *mut ngx_http_request_t)) }
}

/// This location's time limits, and the group its calls go to (`ase_pass`, resolved when
/// the configuration was read).
unsafe fn limits(r: *mut c_void) -> Option<(Limits, usize)> {
    unsafe {
        let lc = Module::location_conf(&*(r as *mut ngx_http_request_t))?;
        Some((
            Limits { timeout_ms: lc.timeout as u64, connect_timeout_ms: lc.connect_timeout.min(lc.timeout) as u64 },
            lc.group,
        ))
    }
}

/// The hash key of `r`'s calls to group `group` when that group hashes (`hash KEY`): the
/// CRC-32 of the key's value, evaluated in the request's pool. `None` (round robin, as
/// nginx) when the group does not hash or the value is empty.
unsafe fn hash_key(r: *mut c_void, group: usize) -> Option<u32> {
    unsafe {
        // The default group (0) never hashes: nothing to look up on most sites.
        let block = group.checked_sub(1)?;
        let r = r as *mut ngx_http_request_t;
        let main = <Module as HttpModuleMainConf>::main_conf(&*r)?;
        let hash = main.groups.get(block)?.hash.as_ref()?;
        ngx_ase_glue::complex_value::evaluate(r, hash.value).map(crate::key_hash::crc32)
    }
}

unsafe extern "C" fn admit(r: *mut c_void, kind: u8) -> u8 {
    unsafe {
        guard(request_log(r), "admit", Admission::Unavailable as u8, || {
            let kind = if kind == CallKind::Report as u8 { CallKind::Report } else { CallKind::Check };
            let group = limits(r).map_or(0, |(_, g)| g);
            let admitted = worker::with(|w| {
                let a = w.engine.admit(kind, group, &mut w.io);
                if !matches!(a, Admission::Go | Admission::Detach) {
                    trace_refused(r, kind, a, w.engine.group_name(group));
                }
                a
            });
            admitted.unwrap_or(Admission::Unavailable) as u8
        })
    }
}

/// The trace line of a call refused before it started (no payload was built, so there is
/// no correlation ID yet): the breaker is open, or the report queue is full.
unsafe fn trace_refused(r: *mut c_void, kind: CallKind, a: Admission, group: &str) {
    unsafe {
        let Some(mut log) = crate::net::ngx_io::trace_log(request_log(r)) else { return };
        let why = if a == Admission::QueueFull { "queue_full" } else { "unavailable" };
        let log: *mut nginx_sys::ngx_log_t = &mut log;
        if kind == CallKind::Check {
            ngx::ngx_log_debug!(mask: ngx::log::DebugMask::Http, log, "ase: check group={group} node=- error={why} ms=0 cid=- verdict=fail");
        } else {
            ngx::ngx_log_debug!(mask: ngx::log::DebugMask::Http, log, "ase: report group={group} node=- error={why} ms=0 cid=- (not sent)");
        }
    }
}

/// `ase_mirror`: a copy of the call for the location's mirror group, queued for the end of
/// the turn and never waited for; its outcome changes nothing here (`engine/mirror.rs`).
unsafe fn mirror(r: *mut c_void, kind: CallKind, correlation_id: Bytes, body: Bytes) {
    unsafe {
        let Some(lc) = Module::location_conf(&*(r as *mut ngx_http_request_t)) else { return };
        let Some(group) = lc.mirror_group else { return };
        let Some((limits, _)) = limits(r) else { return };
        let key = hash_key(r, group);
        worker::with(|w| {
            w.io.trace_next = crate::net::ngx_io::trace_log(request_log(r));
            w.engine.send_mirror(kind, group, key, correlation_id.as_slice(), body.as_slice(), limits, &mut w.io);
            w.io.trace_next = None;
        });
    }
}

unsafe extern "C" fn start_check(
    r: *mut c_void,
    correlation_id: Bytes,
    body: Bytes,
    done: CheckDone,
    data: *mut c_void,
) -> *mut c_void {
    // SAFETY: r is the caller's live request; its bytes are valid for this call.
    unsafe { guard(request_log(r), "mirror", (), || mirror(r, CallKind::Check, correlation_id, body)) };
    // SAFETY: r is the caller's live request (ABI contract); the note is for its report.
    let checked = unsafe {
        guard(request_log(r), "start_check", None, || {
            let (limits, group) = limits(r)?;
            crate::checked_group::note(r.cast(), group);
            Some((limits, group, hash_key(r, group)))
        })
    };
    let Some((limits, group, key)) = checked else {
        bump(&counters().errors[AseError::NotStarted as usize]);
        // SAFETY: the caller's callback and its data, called once (ABI contract).
        unsafe { done(data, ngx_ase_shared::abi::CheckResult::new(0, AseError::NotStarted, 0)) };
        return core::ptr::null_mut();
    };
    worker::start_check(
        |w, waiter| {
            // SAFETY: the caller's bytes are valid for this call; the engine copies them.
            let (cid, body) = unsafe { (correlation_id.as_slice(), body.as_slice()) };
            // SAFETY: r is the caller's live request.
            w.io.trace_next = unsafe { crate::net::ngx_io::trace_log(request_log(r)) };
            let id = w.engine.start_check(waiter, group, key, cid, body, limits, &mut w.io);
            w.io.trace_next = None;
            id.map(|id| id.to_bits())
        },
        done,
        data,
    )
}

unsafe extern "C" fn cancel_check(handle: *mut c_void) {
    unsafe {
        guard((*nginx_sys::ngx_cycle).log, "cancel_check", (), || {
            if let Some(id) = crate::engine::CallId::from_bits(handle as usize) {
                worker::with(|w| w.engine.cancel(id, &mut w.io));
            }
        })
    }
}

unsafe extern "C" fn send_report(r: *mut c_void, correlation_id: Bytes, body: Bytes) -> u8 {
    unsafe {
        guard(request_log(r), "mirror", (), || mirror(r, CallKind::Report, correlation_id, body));
        guard(request_log(r), "send_report", Admission::Unavailable as u8, || {
            // To the group the request's check went to, which a redirect may have left.
            let sent = limits(r).and_then(|(limits, here)| {
                let group = crate::checked_group::noted(r.cast()).unwrap_or(here);
                let key = hash_key(r, group);
                worker::with(|w| {
                    w.io.trace_next = crate::net::ngx_io::trace_log(request_log(r));
                    let a =
                        w.engine.send_report(group, key, correlation_id.as_slice(), body.as_slice(), limits, &mut w.io);
                    w.io.trace_next = None;
                    if a != Admission::Go {
                        trace_refused(r, CallKind::Report, a, w.engine.group_name(group));
                    }
                    a
                })
            });
            sent.unwrap_or_else(|| {
                bump(&counters().reports);
                bump(&counters().reports_dropped_unavailable);
                Admission::Unavailable
            }) as u8
        })
    }
}

unsafe extern "C" fn count_verdict(verdict: u8, error: u8) {
    let Some(verdict) = Verdict::from_u8(verdict) else { return };
    bump(&counters().verdicts[verdict as usize]);
    if verdict == Verdict::FailOpen || verdict == Verdict::FailClosed {
        bump(&counters().fail_open_by_cause[AseError::from_u8(error) as usize]);
    }
}

/// One more of an [`Event`]; a byte that names none is ignored (a value from another
/// module is never trusted to be one of ours).
unsafe extern "C" fn count_event(event: u8) {
    match Event::from_u8(event) {
        Some(Event::PayloadTruncated) => bump(&counters().payload_truncated),
        Some(Event::MonitorSkipped) => bump(&counters().monitor_skipped),
        Some(Event::IdentityTooLarge) => bump(&counters().identity_too_large),
        Some(Event::CacheHit) => bump(&counters().cache.hits),
        Some(Event::CacheMiss) => bump(&counters().cache.misses),
        Some(Event::CacheStale) => bump(&counters().cache.stale),
        Some(Event::CacheEviction) => bump(&counters().cache.evictions),
        None => {}
    }
}

/// The group of `r`'s location; `u32::MAX` when it has no configuration of ours.
unsafe extern "C" fn group_of(r: *mut c_void) -> u32 {
    unsafe {
        guard(request_log(r), "group_of", u32::MAX, || {
            limits(r).map_or(u32::MAX, |(_, g)| u32::try_from(g).unwrap_or(u32::MAX))
        })
    }
}
