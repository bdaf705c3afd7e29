//! The access-phase handler and its per-request state (unsafe glue over `payload.rs` and
//! `verdict.rs`).
//!
//! The state lives in a pool cleanup of the main request, not only in `r->ctx`: an
//! internal redirect (`index`, `try_files`, `error_page`) clears `r->ctx` and runs the
//! access phase again, and the cleanup is how we still find "already checked". The same
//! cleanup cancels a pending check when the request ends early (client went away).

use core::ffi::c_void;
use core::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use nginx_sys::{
    ngx_http_core_run_phases, ngx_http_request_t, ngx_http_test_reading, ngx_int_t,
    ngx_pool_cleanup_add, ngx_pool_cleanup_t, ngx_post_event, ngx_posted_events,
    ngx_table_elt_t, NGX_AGAIN, NGX_DECLINED, NGX_ERROR, NGX_LOG_ERR,
};
use ngx::http::HttpModuleLocationConf;
use ngx_ase_glue::panic::guard;
use ngx_ase_shared::abi::{AseError, Bytes, ChannelApi, CheckResult, Verdict};
use ngx_ase_shared::correlation::{new_id, ID_LEN};

use crate::payload::{build, http_version_name, RequestMeta};
use crate::verdict::{decide, Complaint, Decision};
use crate::Module;

/// The channel's function table, set at configuration time.
pub static API: AtomicPtr<ChannelApi> = AtomicPtr::new(ptr::null_mut());

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
    result: CheckResult,
    pub correlation_id: [u8; ID_LEN],
    pub verdict: Verdict,
    pub elapsed_ms: Option<u64>,
}

fn api() -> Option<&'static ChannelApi> {
    // SAFETY: points into the common module's static data, set once at configuration.
    unsafe { API.load(Ordering::Relaxed).as_ref() }
}

/// Finds the request's state by its cleanup handler.
pub unsafe fn find_ctx(r: *mut ngx_http_request_t) -> Option<&'static mut Ctx> {
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

/// The one pointer to `cleanup` both set and compared, so the comparison is exact.
static CLEANUP: unsafe extern "C" fn(*mut c_void) = cleanup;

unsafe extern "C" fn cleanup(data: *mut c_void) {
    let ctx = &mut *(data as *mut Ctx);
    if !ctx.handle.is_null() {
        if let Some(api) = api() {
            (api.cancel_check)(ctx.handle);
        }
        ctx.handle = ptr::null_mut();
    }
}

pub unsafe extern "C" fn access_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    let log = (*(*r).connection).log;
    guard(log, "access handler", NGX_DECLINED as ngx_int_t, || access(r))
}

unsafe fn access(r: *mut ngx_http_request_t) -> ngx_int_t {
    if (*r).main != r {
        return NGX_DECLINED as ngx_int_t;
    }
    let Some(lc) = Module::location_conf(&*r) else { return NGX_DECLINED as ngx_int_t };
    if let Some(ctx) = find_ctx(r) {
        return match ctx.state {
            State::Pending => NGX_AGAIN as ngx_int_t,
            State::Answered => finish(r, ctx, lc),
            // Already checked (internal redirect): once per main request.
            State::Decided => NGX_DECLINED as ngx_int_t,
        };
    }
    if !lc.is_enabled() {
        return NGX_DECLINED as ngx_int_t;
    }
    let Some(api) = api() else { return NGX_DECLINED as ngx_int_t };
    let cl = ngx_pool_cleanup_add((*r).pool, core::mem::size_of::<Ctx>());
    if cl.is_null() {
        return NGX_ERROR as ngx_int_t;
    }
    let ctx_ptr = (*cl).data as *mut Ctx;
    ptr::write(ctx_ptr, Ctx {
        r,
        state: State::Pending,
        handle: ptr::null_mut(),
        result: CheckResult { status: 0, error: AseError::None, elapsed_ms: 0 },
        correlation_id: new_id(),
        verdict: Verdict::Skip,
        elapsed_ms: None,
    });
    (*cl).handler = Some(CLEANUP);
    let ctx = &mut *ctx_ptr;

    let body = build(&request_meta(r, lc.user_header.as_deref()));
    let handle = (api.start_check)(r.cast(), Bytes::new(&ctx.correlation_id), Bytes::new(&body), on_done, ctx_ptr.cast());
    if handle.is_null() {
        if ctx.state == State::Pending {
            ctx.result = CheckResult { status: 0, error: AseError::NotStarted, elapsed_ms: 0 };
            ctx.state = State::Answered;
        }
        return finish(r, ctx, lc);
    }
    if ctx.state == State::Pending {
        ctx.handle = handle;
        // Notice a client that goes away while we wait.
        (*r).read_event_handler = Some(ngx_http_test_reading);
    }
    NGX_AGAIN as ngx_int_t
}

/// The channel's answer (on the event loop): note it and resume the request's phases
/// from a posted event, outside the channel's task.
unsafe extern "C" fn on_done(data: *mut c_void, result: CheckResult) {
    let ctx = &mut *(data as *mut Ctx);
    let r = ctx.r;
    guard((*(*r).connection).log, "check callback", (), || {
        ctx.handle = ptr::null_mut();
        ctx.result = result;
        ctx.state = State::Answered;
        (*r).write_event_handler = Some(ngx_http_core_run_phases);
        ngx_post_event((*(*r).connection).write, ptr::addr_of_mut!(ngx_posted_events));
    })
}

unsafe fn finish(r: *mut ngx_http_request_t, ctx: &mut Ctx, lc: &crate::conf::LocConf) -> ngx_int_t {
    ctx.state = State::Decided;
    ctx.elapsed_ms = Some(ctx.result.elapsed_ms);
    (*r).read_event_handler = Some(nginx_sys::ngx_http_block_reading);
    let (decision, complaint) = decide(&ctx.result, lc.fail_mode, lc.block_status as u16);
    complain(r, complaint, &ctx.result);
    let (verdict, rc) = match decision {
        Decision::Continue(v) => (v, NGX_DECLINED as ngx_int_t),
        Decision::Finalize(status, v) => (v, status as ngx_int_t),
    };
    ctx.verdict = verdict;
    if let Some(api) = api() {
        (api.count_verdict)(verdict, ctx.result.error);
    }
    rc
}

/// 401 and 400 are configuration or software errors: logged at `error`, at most once a
/// minute per worker; other ASE errors at `warn`, also rate-limited.
unsafe fn complain(r: *mut ngx_http_request_t, c: Complaint, result: &CheckResult) {
    static LAST_BAD_TOKEN: AtomicU64 = AtomicU64::new(0);
    static LAST_MALFORMED: AtomicU64 = AtomicU64::new(0);
    static LAST_ERROR: AtomicU64 = AtomicU64::new(0);
    let (last, level, msg): (&AtomicU64, u32, String) = match c {
        Complaint::None => return,
        Complaint::BadToken => (&LAST_BAD_TOKEN, NGX_LOG_ERR,
            "ase: the ASE answered 401: the ASE-Token is missing or wrong; check ase_token_file against the ASE's sideband tokens".into()),
        Complaint::Malformed => (&LAST_MALFORMED, NGX_LOG_ERR,
            "ase: the ASE answered 400 (malformed request) to our request metadata".into()),
        Complaint::AseError => (&LAST_ERROR, nginx_sys::NGX_LOG_WARN, if result.error == AseError::None {
            format!("ase: the ASE answered {}, which the protocol does not define; treated as an ASE error", result.status)
        } else {
            format!("ase: request check failed: {}; treated as an ASE error", result.error.name())
        }),
    };
    let now = nginx_sys::ngx_current_msec as u64;
    let prev = last.load(Ordering::Relaxed);
    if prev != 0 && now.saturating_sub(prev) < 60_000 {
        return;
    }
    last.store(now.max(1), Ordering::Relaxed);
    ngx::ngx_log_error!(level, (*(*r).connection).log, "{}", msg);
}

/// Borrows what the payload needs from the request.
unsafe fn request_meta<'a>(r: *mut ngx_http_request_t, user_header: Option<&[u8]>) -> RequestMeta<'a> {
    let c = (*r).connection;
    let mut headers: Vec<(&[u8], &[u8])> = Vec::with_capacity(16);
    let mut username = None;
    let mut part = ptr::addr_of!((*r).headers_in.headers.part);
    while let Some(p) = part.as_ref() {
        let elts = p.elts as *const ngx_table_elt_t;
        for i in 0..p.nelts {
            let h = &*elts.add(i);
            let (name, value) = (h.key.as_bytes(), h.value.as_bytes());
            if username.is_none() && user_header.is_some_and(|u| u.eq_ignore_ascii_case(name)) {
                username = Some(value);
            }
            headers.push((name, value));
        }
        part = p.next;
    }
    RequestMeta {
        source_ip: (*c).addr_text.as_bytes(),
        source_port: nginx_sys::ngx_inet_get_port((*c).sockaddr) as u16,
        method: (*r).method_name.as_bytes(),
        url: (*r).unparsed_uri.as_bytes(),
        http_version: http_version_name((*r).http_version),
        headers,
        username,
    }
}
