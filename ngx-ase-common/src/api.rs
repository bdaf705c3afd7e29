//! The C ABI table the request and response modules call, and the worker's lifecycle hooks.
//!
//! NOTE: this commit lays down the table only; the channel behind it (issue #3) is not
//! written yet, so `start_check` returns null (the caller fails open with `NotStarted`)
//! and `send_report` drops every report as `DroppedUnavailable`. Both are counted.

use core::ffi::c_void;

use nginx_sys::{ngx_cycle_t, ngx_int_t, NGX_OK};
use ngx_ase_shared::abi::{AseError, Bytes, ChannelApi, CheckDone, ReportQueued, Verdict, ABI_VERSION};

use crate::counters::{bump, COUNTERS};

pub static CHANNEL_API: ChannelApi = ChannelApi {
    abi_version: ABI_VERSION,
    start_check,
    cancel_check,
    send_report,
    count_verdict,
};

unsafe extern "C" fn start_check(
    _r: *mut c_void,
    _correlation_id: Bytes,
    _body: Bytes,
    _done: CheckDone,
    _data: *mut c_void,
) -> *mut c_void {
    bump(&COUNTERS.checks);
    bump(&COUNTERS.errors[AseError::NotStarted as usize]);
    core::ptr::null_mut()
}

unsafe extern "C" fn cancel_check(_handle: *mut c_void) {}

unsafe extern "C" fn send_report(_r: *mut c_void, _correlation_id: Bytes, _body: Bytes) -> ReportQueued {
    bump(&COUNTERS.reports);
    bump(&COUNTERS.reports_dropped_unavailable);
    ReportQueued::DroppedUnavailable
}

unsafe extern "C" fn count_verdict(verdict: Verdict, error: AseError) {
    bump(&COUNTERS.verdicts[verdict as usize]);
    if verdict == Verdict::FailOpen {
        bump(&COUNTERS.fail_open_by_cause[error as usize]);
    }
}

pub unsafe extern "C" fn init_process(_cycle: *mut ngx_cycle_t) -> ngx_int_t {
    NGX_OK as ngx_int_t
}

pub unsafe extern "C" fn exit_process(_cycle: *mut ngx_cycle_t) {}
