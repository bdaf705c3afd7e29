//! The worker's channel: the engine and its nginx `Io`, built in `init_process` (never in
//! the master), and the one way in from nginx's events.
//!
//! Every entry runs under `guard`: a panic never unwinds into nginx. After a panic the call
//! it touched ends as an internal error (so the request waiting on it is not left hanging,
//! and its timer can never fire into a request that is gone), and answers are delivered only
//! once the engine is no longer borrowed, so a callback may call back into the channel.

use core::ffi::c_void;
use std::cell::RefCell;
use std::net::SocketAddr;

use nginx_sys::{NGX_LOG_NOTICE, NGX_LOG_WARN};
use ngx_ase_glue::ase_log;
use ngx_ase_glue::log::Cycle;
use ngx_ase_glue::panic::guard;
use ngx_ase_shared::abi::{AseError, CheckDone, CheckResult};

use crate::conf::settings::node_display;
use crate::engine::{ConnId, Engine};
use crate::net::follow::{plan, Slot};
use crate::net::ngx_io::{Events, NgxIo};
use crate::net::resolve::Name;

/// Who waits for a check's answer: the request module's callback and its data.
pub struct Waiter {
    pub done: CheckDone,
    pub data: *mut c_void,
}

pub struct Worker {
    pub engine: Engine<Waiter>,
    pub io: NgxIo,
}

thread_local! {
    static WORKER: RefCell<Option<Worker>> = const { RefCell::new(None) };
}

pub fn install(w: Worker) {
    WORKER.with(|cell| *cell.borrow_mut() = Some(w));
}

/// Closes every connection and drops the channel (worker exit).
pub fn uninstall() {
    if let Some(mut w) = WORKER.with(|cell| cell.borrow_mut().take()) {
        w.engine.close_all(&mut w.io);
    }
}

/// Runs `f` on the worker's channel; `None` when there is none (or it is busy, which only
/// a bug could cause: the engine never calls out while borrowed).
pub fn with<R>(f: impl FnOnce(&mut Worker) -> R) -> Option<R> {
    WORKER.with(|cell| {
        let mut guard = cell.try_borrow_mut().ok()?;
        guard.as_mut().map(f)
    })
}

fn cycle_log() -> *mut nginx_sys::ngx_log_t {
    // SAFETY: the cycle and its log live as long as the worker.
    unsafe { (*nginx_sys::ngx_cycle).log }
}

/// Hands every finished check to its waiter, outside the engine's borrow.
pub fn deliver_finished() {
    while let Some((w, result)) = with(|w| w.engine.take_finished()).flatten() {
        // SAFETY: the waiter's callback and data are valid until it is called or the
        // check is cancelled (the ABI's contract), and a cancelled check is never here.
        guard(cycle_log(), "check callback", (), || unsafe { (w.done)(w.data, result) });
    }
}

/// Runs one engine event under a panic guard; after a panic, `recover` ends what the event
/// was doing. Then hands out the answers it produced.
fn dispatch(what: &str, run: impl FnOnce(&mut Worker), recover: impl FnOnce(&mut Worker)) {
    let ok = guard(cycle_log(), what, false, || {
        with(run);
        true
    });
    if !ok {
        guard(cycle_log(), what, (), || {
            with(recover);
        });
    }
    deliver_finished();
}

/// Where the nginx side hands its events: each one into the engine (`NgxIo::new` takes it).
pub static EVENTS: Events = Events {
    connecting: on_connecting,
    readable: |id| dispatch_conn(id, "ASE read event", |w| w.engine.on_readable(id, &mut w.io)),
    writable: |id| dispatch_conn(id, "ASE write event", |w| w.engine.on_writable(id, &mut w.io)),
    idle_timeout: |id| dispatch_conn(id, "ASE idle timer", |w| w.engine.on_idle_timeout(id, &mut w.io)),
    timer: on_timer,
    // A report left unsent by a panic ends at its own timer.
    flush: || dispatch("ASE flush", |w| w.engine.flush(&mut w.io), |_| {}),
};

/// Runs an engine event for connection `id`; after a panic, ends its call.
fn dispatch_conn(id: ConnId, what: &str, f: impl FnOnce(&mut Worker)) {
    dispatch(what, f, |w| w.engine.abort_conn(id, &mut w.io));
}

/// A connecting peer's socket (or TLS handshake) moved.
fn on_connecting(id: ConnId) {
    dispatch_conn(id, "ASE connect", |w| match w.io.finish_connect(id) {
        None => {}
        Some(Ok(())) => w.engine.on_connected(id, &mut w.io),
        Some(Err(e)) => w.engine.on_connect_failed(id, e, &mut w.io),
    });
}

/// Call slot `slot`'s timer fired.
fn on_timer(slot: usize) {
    dispatch("ASE timer", |w| w.engine.on_timer(slot, &mut w.io), |w| w.engine.abort_slot(slot, &mut w.io));
}

/// Starts a check. Returns the caller's handle, or null when `done` has already been
/// called (the answer was known at once, or the check could not start).
pub fn start_check(
    start: impl FnOnce(&mut Worker, Waiter) -> Option<usize>,
    done: CheckDone,
    data: *mut c_void,
) -> *mut c_void {
    let started = guard(cycle_log(), "start_check", Err(AseError::Internal), || {
        with(|w| start(w, Waiter { done, data })).ok_or(AseError::NotStarted)
    });
    let handle = match started {
        Ok(Some(bits)) => bits as *mut c_void,
        Ok(None) => core::ptr::null_mut(),
        Err(e) => {
            // Nothing may stay armed for this waiter: its request treats the check as over.
            guard(cycle_log(), "start_check", (), || {
                with(|w| w.engine.forget_waiter(|x| x.data == data, &mut w.io));
            });
            if e == AseError::Internal {
                crate::counters::bump(&crate::counters::counters().errors[AseError::Internal as usize]);
            }
            deliver_finished();
            // SAFETY: the caller's callback, called once as the ABI says.
            guard(cycle_log(), "check callback", (), || unsafe { done(data, CheckResult::new(0, e, 0)) });
            return core::ptr::null_mut();
        }
    };
    deliver_finished();
    handle
}

/// A `resolve` name's addresses (`net::resolve` calls this after each answer that says
/// them): new ones join the channel, vanished ones drain.
pub fn follow_name(name: &Name, addrs: &[SocketAddr], changed: bool) {
    let (first, count, url) = (name.first, name.slots, &name.url);
    with(|w| {
        let slots: Vec<Slot> = (first..first + count)
            .map(|i| Slot {
                active: w.engine.node_active(i),
                busy: w.engine.node_busy(i),
                addr: w.io.address(i).unwrap_or(([0, 0, 0, 0], 0).into()),
            })
            .collect();
        let change = plan(&slots, addrs);
        for i in change.drain {
            w.engine.drain(first + i, &mut w.io);
            let display = node_display(url, &slots[i].addr);
            // SAFETY: the cycle's log lives as long as the worker.
            unsafe {
                ase_log!(NGX_LOG_NOTICE, Cycle, "ase: node {display} drains: \"{}\" no longer resolves to it", url.host)
            };
        }
        for (i, a) in change.join {
            let display = node_display(url, &a);
            w.io.set_address(first + i, a, display.clone());
            w.engine.activate(first + i, display.clone());
            // SAFETY: as above.
            unsafe { ase_log!(NGX_LOG_NOTICE, Cycle, "ase: node {display} joins: \"{}\" resolves to it", url.host) };
        }
        if !change.left_out.is_empty() && changed {
            // SAFETY: as above.
            unsafe {
                ase_log!(
                    NGX_LOG_WARN,
                    Cycle,
                    "ase: \"{}\" resolves to more addresses than the {count} in use at a time; left out for now: {:?}",
                    url.host,
                    change.left_out
                );
            }
        }
    });
}
