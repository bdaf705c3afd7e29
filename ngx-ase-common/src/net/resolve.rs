//! `resolve` on a server line (unsafe glue): each worker resolves the server's host name
//! with nginx's own asynchronous resolver (the http block's `resolver`), from the event
//! loop, again whenever the answer's TTL (or `resolver ... valid=`) runs out, and hands the
//! addresses up to its owner through the function it was started with (`worker.rs` hands
//! them to the channel: new ones join, vanished ones drain, as `follow.rs` decides).
//!
//! A name's state lives in a box whose address nginx holds (its timer event and the
//! resolver context's `data`); the resolver may answer inside `ngx_resolve_name` (a cached
//! name), so resolutions start outside the channel's borrow.

use core::ffi::c_void;
use core::ptr;
use std::cell::RefCell;
use std::net::SocketAddr;

use nginx_sys::{
    ngx_add_timer, ngx_cycle, ngx_del_timer, ngx_event_t, ngx_msec_t, ngx_resolve_name, ngx_resolve_name_done,
    ngx_resolve_start, ngx_resolver_ctx_t, ngx_resolver_t, ngx_str_t, ngx_time, NGX_LOG_ERR, NGX_LOG_WARN, NGX_OK,
};
use ngx_ase_glue::ase_log;
use ngx_ase_glue::log::Cycle;
use ngx_ase_glue::panic::guard;
use ngx_ase_glue::time::MAX_TIMER_MS;

use crate::conf::settings::AseUrl;

/// After an error the resolver could not even report (no memory), try again this much later.
const RETRY_MS: ngx_msec_t = 10_000;
/// `ngx_resolve_start`'s answer when the resolver has no name server.
const NO_RESOLVER: usize = usize::MAX;
/// The DNS's "no such name": the name's addresses are gone.
const NXDOMAIN: isize = 3;

/// A `resolve` server's name and the node slots its addresses take.
pub struct Name {
    pub url: AseUrl,
    /// The first of its node slots (the channel's node numbers) and how many there are.
    pub first: usize,
    pub slots: usize,
}

/// Where a name's addresses go after each answer that says them (`changed`: they differ
/// from the last answer's).
pub type OnAddresses = fn(name: &Name, addrs: &[SocketAddr], changed: bool);

/// One name being followed.
#[repr(C)]
struct Following {
    /// The timer of the next resolution. First: nginx's debug log reads `ev->data` as a
    /// connection, which must be readable memory at least that large (see `ngx_io.rs`).
    ev: ngx_event_t,
    name: Name,
    host: Vec<u8>,
    resolver: *mut ngx_resolver_t,
    timeout: ngx_msec_t,
    /// The resolution under way, if any.
    pending: *mut ngx_resolver_ctx_t,
    /// The last answer's addresses, to log only changes.
    last: Vec<SocketAddr>,
    on_addresses: OnAddresses,
}

thread_local! {
    // Boxed: nginx's timer tree and the resolver point into each one, which must not move.
    #[allow(clippy::vec_box)]
    static FOLLOWING: RefCell<Vec<Box<Following>>> = const { RefCell::new(Vec::new()) };
}

/// Starts following `names` in this worker (each resolved at once, then per its TTL).
///
/// # Safety
/// `resolver` must be the cycle's live http-level resolver.
pub unsafe fn start(resolver: *mut ngx_resolver_t, timeout: ngx_msec_t, names: Vec<Name>, on_addresses: OnAddresses) {
    unsafe {
        let mut boxes: Vec<Box<Following>> = names
            .into_iter()
            .map(|name| {
                let host = name.url.host.clone().into_bytes();
                Box::new(Following {
                    ev: core::mem::zeroed(),
                    name,
                    host,
                    resolver,
                    timeout,
                    pending: ptr::null_mut(),
                    last: Vec::new(),
                    on_addresses,
                })
            })
            .collect();
        for f in &mut boxes {
            let data: *mut Following = &mut **f;
            f.ev.handler = Some(on_timer);
            f.ev.data = data.cast();
            f.ev.log = (*ngx_cycle).log;
            // A worker that is quitting does not wait for the next resolution.
            f.ev.set_cancelable(1);
            ngx_add_timer(&mut f.ev, 1);
        }
        FOLLOWING.with(|cell| cell.borrow_mut().extend(boxes));
    }
}

/// Stops following (worker exit): timers removed, resolutions under way ended.
pub fn stop() {
    let boxes = FOLLOWING.with(|cell| core::mem::take(&mut *cell.borrow_mut()));
    for mut f in boxes {
        // SAFETY: the event and the context are ours and still registered with nginx.
        unsafe {
            if f.ev.timer_set() != 0 {
                ngx_del_timer(&mut f.ev);
            }
            if !f.pending.is_null() {
                ngx_resolve_name_done(f.pending);
            }
        }
    }
}

unsafe extern "C" fn on_timer(ev: *mut ngx_event_t) {
    unsafe {
        let f = (*ev).data as *mut Following;
        guard((*ngx_cycle).log, "ASE resolve", (), || resolve(f));
    }
}

/// Starts one resolution of `f`'s name.
unsafe fn resolve(f: *mut Following) {
    unsafe {
        let f = &mut *f;
        let ctx = ngx_resolve_start(f.resolver, ptr::null_mut());
        if ctx as usize == NO_RESOLVER {
            ase_log!(NGX_LOG_ERR, Cycle, "ase: no resolver to resolve \"{}\"", f.name.url.host);
            return;
        }
        if ctx.is_null() {
            ngx_add_timer(&mut f.ev, RETRY_MS);
            return;
        }
        (*ctx).name = ngx_str_t { len: f.host.len(), data: f.host.as_mut_ptr() };
        (*ctx).handler = Some(on_resolved);
        (*ctx).data = (f as *mut Following).cast::<c_void>();
        (*ctx).timeout = f.timeout;
        (*ctx).set_cancelable(1);
        f.pending = ctx;
        if ngx_resolve_name(ctx) != NGX_OK as isize {
            // The resolver freed the context.
            f.pending = ptr::null_mut();
            ngx_add_timer(&mut f.ev, RETRY_MS);
        }
    }
}

/// The resolver's answer (maybe from inside `ngx_resolve_name`, for a cached name).
unsafe extern "C" fn on_resolved(ctx: *mut ngx_resolver_ctx_t) {
    unsafe {
        let f = &mut *((*ctx).data as *mut Following);
        let (state, valid) = ((*ctx).state, (*ctx).valid);
        let mut addrs = Vec::new();
        if state == 0 {
            for i in 0..(*ctx).naddrs {
                let a = &*(*ctx).addrs.add(i);
                if let Some(ip) = read_ip(a.sockaddr) {
                    let addr = SocketAddr::new(ip, f.name.url.port);
                    if !addrs.contains(&addr) {
                        addrs.push(addr);
                    }
                }
            }
        }
        ngx_resolve_name_done(ctx);
        f.pending = ptr::null_mut();
        guard((*ngx_cycle).log, "ASE resolve", (), || {
            if state == 0 || state == NXDOMAIN {
                (f.on_addresses)(&f.name, &addrs, f.last != addrs);
                f.last = addrs;
            } else {
                // A failed lookup (timeout, SERVFAIL...) is no news about the name: its
                // addresses stay until an answer says otherwise.
                ase_log!(
                    NGX_LOG_WARN,
                    Cycle,
                    "ase: resolving \"{}\" failed (DNS error {state}); its addresses stay in use",
                    f.name.url.host
                );
            }
        });
        // The next resolution when this answer expires (nginx's resolver says when; its
        // `valid=` may be years), within what a timer takes.
        let wait_s = valid.saturating_sub(ngx_time()).max(1) as u64;
        ngx_add_timer(&mut f.ev, wait_s.saturating_mul(1000).min(MAX_TIMER_MS) as ngx_msec_t);
    }
}

/// The IP address of a resolver answer's `sockaddr`.
unsafe fn read_ip(sa: *const nginx_sys::sockaddr) -> Option<std::net::IpAddr> {
    unsafe {
        let family = i32::from(sa.as_ref()?.sa_family);
        if family == libc::AF_INET {
            let sin = &*sa.cast::<libc::sockaddr_in>();
            Some(std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)).into())
        } else if family == libc::AF_INET6 {
            let sin6 = &*sa.cast::<libc::sockaddr_in6>();
            Some(std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr).into())
        } else {
            None
        }
    }
}
