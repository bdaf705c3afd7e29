//! The C ABI table the request and response modules call, and the worker's lifecycle
//! hooks that build and tear down the channel (unsafe glue over `channel.rs`,
//! `check.rs` and `net/`).

use core::ffi::c_void;

use bytes::Bytes as Buf;
use nginx_sys::{ngx_cycle_t, ngx_http_request_t, ngx_int_t, ngx_process, NGX_OK};
use ngx::http::{HttpModuleLocationConf, HttpModuleMainConf};
use ngx_ase_glue::panic::guard;
use ngx_ase_shared::abi::{AseError, Bytes, ChannelApi, CheckDone, ReportQueued, Verdict, ABI_VERSION};

use crate::channel::Channel;
use crate::check::Check;
use crate::counters::{bump, counters};
use crate::net::call::{call, CallSpec};
use crate::net::select::unless;
use crate::Module;

pub static CHANNEL_API: ChannelApi = ChannelApi {
    abi_version: ABI_VERSION,
    start_check,
    cancel_check,
    send_report,
    count_verdict,
};

unsafe fn request_log(r: *mut c_void) -> *mut nginx_sys::ngx_log_t {
    let r = r as *mut ngx_http_request_t;
    if r.is_null() || (*r).connection.is_null() {
        return (*nginx_sys::ngx_cycle).log;
    }
    (*(*r).connection).log
}

/// What a call sends and its limits (this location's); the caller's bytes are copied, as
/// the ABI requires.
///
/// # Safety
/// `correlation_id` and `body` must be valid for the duration of the call.
unsafe fn call_spec(path: &'static str, lc: &crate::conf::LocConf, correlation_id: Bytes, body: Bytes) -> CallSpec {
    CallSpec {
        path,
        correlation_id: Buf::copy_from_slice(correlation_id.as_slice()),
        body: Buf::copy_from_slice(body.as_slice()),
        connect_timeout_ms: lc.connect_timeout.min(lc.timeout),
        timeout_ms: lc.timeout as u64,
    }
}

unsafe extern "C" fn start_check(
    r: *mut c_void,
    correlation_id: Bytes,
    body: Bytes,
    done: CheckDone,
    data: *mut c_void,
) -> *mut c_void {
    guard(request_log(r), "start_check", core::ptr::null_mut(), || {
        bump(&counters().checks);
        let (Some(ch), Some(lc)) = (Channel::get(), Module::location_conf(&*(r as *mut ngx_http_request_t))) else {
            bump(&counters().errors[AseError::NotStarted as usize]);
            return core::ptr::null_mut();
        };
        let spec = call_spec("/ase/request", lc, correlation_id, body);
        let (handle, task_check) = Check::start(done, data, lc.timeout);
        ngx::async_::spawn(async move {
            let outcome = unless(call(ch, spec), task_check.cancel.wait()).await;
            if let Some(result) = outcome {
                if task_check.is_pending() {
                    let (status, error) = match result {
                        Ok(s) => (s, AseError::None),
                        Err(e) => (0, e),
                    };
                    // The handle is still held (pending), so the pointer is valid.
                    Check::deliver(std::rc::Rc::as_ptr(&task_check), status, error);
                }
            }
        })
        .detach();
        handle as *mut c_void
    })
}

unsafe extern "C" fn cancel_check(handle: *mut c_void) {
    guard((*nginx_sys::ngx_cycle).log, "cancel_check", (), || {
        if !handle.is_null() {
            Check::cancel(handle as *const Check);
        }
    })
}

unsafe extern "C" fn send_report(r: *mut c_void, correlation_id: Bytes, body: Bytes) -> ReportQueued {
    guard(request_log(r), "send_report", ReportQueued::DroppedUnavailable, || {
        bump(&counters().reports);
        let (Some(ch), Some(lc)) = (Channel::get(), Module::location_conf(&*(r as *mut ngx_http_request_t))) else {
            bump(&counters().reports_dropped_unavailable);
            return ReportQueued::DroppedUnavailable;
        };
        // Reports never probe: while every node is down, only checks test for a node's return.
        if ch.health.borrow().breaker_open() {
            bump(&counters().reports_dropped_unavailable);
            return ReportQueued::DroppedUnavailable;
        }
        if ch.reports_in_flight.get() >= ch.response_queue {
            bump(&counters().reports_dropped_queue_full);
            return ReportQueued::DroppedQueueFull;
        }
        let spec = call_spec("/ase/response", lc, correlation_id, body);
        ch.reports_in_flight.set(ch.reports_in_flight.get() + 1);
        ngx::async_::spawn(async move {
            let in_flight = InFlight(ch.clone());
            // call() bounds itself by ase_timeout.
            if call(ch, spec).await.is_ok() {
                bump(&counters().reports_sent);
            }
            drop(in_flight);
        })
        .detach();
        ReportQueued::Queued
    })
}

/// Counts a report in flight until its task ends, however it ends.
struct InFlight(std::rc::Rc<Channel>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.reports_in_flight.set(self.0.reports_in_flight.get().saturating_sub(1));
    }
}

unsafe extern "C" fn count_verdict(verdict: Verdict, error: AseError) {
    bump(&counters().verdicts[verdict as usize]);
    if verdict == Verdict::FailOpen || verdict == Verdict::FailClosed {
        bump(&counters().fail_open_by_cause[error as usize]);
    }
}

/// Builds this worker's channel (workers and single-process mode only).
pub unsafe extern "C" fn init_process(cycle: *mut ngx_cycle_t) -> ngx_int_t {
    guard((*cycle).log, "init_process", NGX_OK as ngx_int_t, || {
        let p = ngx_process as u32;
        if p != nginx_sys::NGX_PROCESS_WORKER && p != nginx_sys::NGX_PROCESS_SINGLE {
            return NGX_OK as ngx_int_t;
        }
        if let Some(conf) = Module::main_conf(&*cycle) {
            if let Some(shared) = crate::zone::shared_counters(conf.zone) {
                crate::counters::use_shared(shared);
            }
            if !conf.servers.is_empty() {
                Channel::install(Channel::from_conf(conf));
            }
        }
        NGX_OK as ngx_int_t
    })
}

pub unsafe extern "C" fn exit_process(cycle: *mut ngx_cycle_t) {
    guard((*cycle).log, "exit_process", (), || {
        Channel::shutdown();
        crate::net::peer::close_all();
    })
}
