//! A pending request check: its non-cancelable nginx timer (the check's timeout, which
//! also keeps a gracefully exiting worker alive until the check ends, so a reload loses no
//! request), the caller's callback, and the cancel signal of the task doing the call.
//!
//! Ownership: the caller's handle is one `Rc` reference, released exactly once — when the
//! result is delivered, or when the caller cancels. The task holds its own reference.

use core::cell::UnsafeCell;
use core::ffi::c_void;
use std::cell::Cell;
use std::rc::Rc;

use nginx_sys::{ngx_add_timer, ngx_cycle, ngx_del_timer, ngx_event_t, ngx_msec_t};
use ngx_ase_shared::abi::{AseError, CheckDone, CheckResult};

use crate::log::now_ms;
use crate::net::select::CancelFlag;

pub struct Check {
    timer: UnsafeCell<ngx_event_t>,
    done: Cell<Option<(CheckDone, *mut c_void)>>,
    pub cancel: CancelFlag,
    started_ms: u64,
}

impl Check {
    /// A check whose timeout starts now. Returns the caller's handle (a raw `Rc`) and the
    /// task's reference.
    pub fn start(done: CheckDone, data: *mut c_void, timeout: ngx_msec_t) -> (*const Check, Rc<Check>) {
        let check = Rc::new(Check {
            // SAFETY: ngx_event_t is a plain C struct; zero is its idle state.
            timer: UnsafeCell::new(unsafe { core::mem::zeroed() }),
            done: Cell::new(Some((done, data))),
            cancel: CancelFlag::default(),
            started_ms: now_ms(),
        });
        let task_ref = check.clone();
        let handle = Rc::into_raw(check);
        // SAFETY: the event lives inside the Rc, which the handle keeps alive until the
        // timer is deleted (deliver/cancel) or fires.
        unsafe {
            let ev = (*handle).timer.get();
            (*ev).handler = Some(on_timeout);
            (*ev).data = handle as *mut c_void;
            (*ev).log = (*ngx_cycle).log;
            (*ev).set_cancelable(0);
            ngx_add_timer(ev, timeout);
        }
        (handle, task_ref)
    }

    /// Hands `status`/`error` to the caller, once; later calls do nothing.
    ///
    /// # Safety
    /// `handle` must be the pointer `start` returned, whose reference has not been released.
    pub unsafe fn deliver(handle: *const Check, status: u16, error: AseError) {
        let Some((done, data)) = (*handle).done.take() else { return };
        (*handle).stop_timer();
        let result = CheckResult { status, error, elapsed_ms: now_ms().saturating_sub((*handle).started_ms) };
        done(data, result);
        drop(Rc::from_raw(handle));
    }

    /// The caller gives up on the check: no callback, the call is abandoned.
    ///
    /// # Safety
    /// As for `deliver`.
    pub unsafe fn cancel(handle: *const Check) {
        if (*handle).done.take().is_none() {
            return;
        }
        (*handle).stop_timer();
        (*handle).cancel.cancel();
        drop(Rc::from_raw(handle));
    }

    fn stop_timer(&self) {
        // SAFETY: the event is ours; deleting a set timer is what nginx expects.
        unsafe {
            let ev = self.timer.get();
            if (*ev).timer_set() != 0 {
                ngx_del_timer(ev);
            }
        }
    }

    /// Whether the caller still waits (the task skips work otherwise).
    pub fn is_pending(&self) -> bool {
        let d = self.done.take();
        let pending = d.is_some();
        self.done.set(d);
        pending
    }
}

/// The check's timer fired: the ASE took longer than `ase_timeout`. The request gets its
/// answer now; the call's task is left to end by its own deadline (the same `ase_timeout`,
/// a moment later at most), which records the timeout against the node so that a
/// black-holed ASE is marked down and the breaker opens.
unsafe extern "C" fn on_timeout(ev: *mut ngx_event_t) {
    let handle = (*ev).data as *const Check;
    Check::deliver(handle, 0, AseError::Timeout);
}
