//! The header filter (unsafe glue): once per client response of a main request in a
//! location with `ase_response on`, copies the status and headers out of `r->headers_out`,
//! builds the report (`payload.rs`) and hands it to the common module's channel, which queues
//! it and returns at once.
//!
//! Exactly one report per client response:
//! - The snapshot is taken right *after* the rest of the header filter chain ran, when
//!   `r->header_sent` says the header really went out. The later filters change what the
//!   client gets (`not_modified` turns 200 into 304, `range` into 206 or 416, `gzip` drops
//!   the length, nginx's own header filter makes `Location` absolute and adds the charset
//!   to `Content-Type`), and calling them first costs the client nothing: building the
//!   report is a copy, and sending it is a queue push. Nothing ever waits for the ASE.
//! - The per-request state (`reported`, `in_progress`) lives in a pool cleanup entry found
//!   by its handler (as `ngx_http_realip_module` does), not only in the module context:
//!   internal redirects (`error_page`, `try_files`, `index`) and
//!   `ngx_http_filter_finalize_request` zero `r->ctx`, and the latter runs the whole header
//!   chain again from inside it (e.g. the range filter's 416). The nested call sees
//!   `in_progress` and passes; the outer call then reports the final header once.
//! - Only for a request whose metadata went to the ASE (`ase_request on` or `monitor`, so
//!   `$ase_correlation_id` is set): the report carries that request's correlation ID, and
//!   the ASE never gets a report it cannot pair. Other responses are not reported at all.
//! - Asked first: `admit` says whether a report may go out at all (queue full, breaker
//!   open); when not, nothing is built (the channel has counted the drop).
//! - Header lines named by `ase_hide_header` (as the request module has it for the
//!   location) are left out, whichever way nginx holds them.
//! - Nothing is allocated per response: the header list is walked in place, and the JSON
//!   is written into one reused per-thread buffer (the channel copies it).
//! - `error_page`: the original error never reaches the header filters (nginx redirects
//!   before sending a header), so the one report is the error page's, with the status the
//!   client got. Whether it is reported is decided by `ase_response` in the location that
//!   sends the header.

use core::ffi::c_void;
use core::marker::PhantomData;
use core::ptr::null_mut;
use std::sync::atomic::{AtomicUsize, Ordering};

use nginx_sys::{
    ngx_hash_key, ngx_http_get_variable, ngx_http_output_header_filter_pt, ngx_http_request_t, ngx_int_t,
    ngx_list_part_t, ngx_pool_cleanup_add, ngx_str_t, ngx_table_elt_t, NGX_OK,
};
use ngx::http::{HttpModule, HttpModuleLocationConf};
use ngx_ase_glue::channel::ChannelHandle;
use ngx_ase_glue::panic::guard;
use ngx_ase_shared::abi::{Admission, Bytes, CallKind, ChannelApi};
use ngx_ase_shared::header_names::visible;
use ngx_ase_shared::json::with_scratch;

use crate::conf::Module;
use crate::payload::{client_headers, reason_for, write_json, Dedicated, Header, ListHeader, Snapshot};

/// The next header filter in nginx's chain, saved when ours is installed.
static mut NEXT_HEADER_FILTER: ngx_http_output_header_filter_pt = None;

/// The common module's function table (points into its static data), set at
/// postconfiguration.
static CHANNEL: ChannelHandle = ChannelHandle::new();

/// `ngx_hash_key("ase_correlation_id")`, set at postconfiguration.
static CID_HASH: AtomicUsize = AtomicUsize::new(0);

const CID_VARIABLE: &[u8] = b"ase_correlation_id";

/// Puts our filter at the top of the header filter chain and notes the channel.
///
/// # Safety
/// Call from postconfiguration only, with `api` from the common module's main
/// configuration header.
pub unsafe fn install(api: *const ChannelApi) {
    unsafe {
        CHANNEL.set(api);
        let mut name = CID_VARIABLE.to_vec();
        CID_HASH.store(ngx_hash_key(name.as_mut_ptr(), name.len()), Ordering::Relaxed);
        NEXT_HEADER_FILTER = nginx_sys::ngx_http_top_header_filter;
        nginx_sys::ngx_http_top_header_filter = Some(header_filter);
    }
}

unsafe fn call_next(r: *mut ngx_http_request_t) -> ngx_int_t {
    unsafe {
        match NEXT_HEADER_FILTER {
            Some(next) => next(r),
            None => NGX_OK as ngx_int_t,
        }
    }
}

/// Per main request; survives `r->ctx` being zeroed (see the module comment).
#[repr(C)]
struct State {
    /// The header chain is running below our filter for this request.
    in_progress: bool,
    /// The report for this request's response was handed to the channel (or dropped).
    reported: bool,
}

/// The pool cleanup handler that marks our [`State`]; it has nothing to free.
unsafe extern "C" fn state_marker(_data: *mut c_void) {}

/// The one value of the marker that is both stored and compared (a function's address may
/// differ between codegen units; one static's value does not).
static STATE_MARKER: unsafe extern "C" fn(*mut c_void) = state_marker;

unsafe fn find_state(r: *mut ngx_http_request_t) -> *mut State {
    unsafe {
        let module = Module::module();
        let ctx = *(*r).ctx.add(module.ctx_index) as *mut State;
        if !ctx.is_null() {
            return ctx;
        }
        let mut cln = (*(*r).pool).cleanup;
        while !cln.is_null() {
            if (*cln).handler.is_some_and(|h| core::ptr::fn_addr_eq(h, STATE_MARKER)) {
                let st = (*cln).data as *mut State;
                *(*r).ctx.add(module.ctx_index) = st as *mut c_void;
                return st;
            }
            cln = (*cln).next;
        }
        null_mut()
    }
}

unsafe fn create_state(r: *mut ngx_http_request_t) -> *mut State {
    unsafe {
        let cln = ngx_pool_cleanup_add((*r).pool, core::mem::size_of::<State>());
        if cln.is_null() {
            return null_mut();
        }
        let st = (*cln).data as *mut State;
        st.write(State { in_progress: false, reported: false });
        (*cln).handler = Some(STATE_MARKER);
        *(*r).ctx.add(Module::module().ctx_index) = st as *mut c_void;
        st
    }
}

/// Whether this call should report; returns the request's state if so.
unsafe fn begin(r: *mut ngx_http_request_t) -> *mut State {
    unsafe {
        if r != (*r).main || CHANNEL.api().is_none() {
            return null_mut();
        }
        match Module::location_conf(&*r) {
            Some(conf) if conf.is_enabled() => {}
            _ => return null_mut(),
        }
        let mut st = find_state(r);
        if st.is_null() {
            st = create_state(r);
        }
        if st.is_null() || (*st).in_progress || (*st).reported {
            return null_mut();
        }
        st
    }
}

unsafe extern "C" fn header_filter(r: *mut ngx_http_request_t) -> ngx_int_t {
    unsafe {
        let log = (*(*r).connection).log;
        let st = guard(log, "ase_response header filter", null_mut(), || begin(r));
        if st.is_null() {
            return call_next(r);
        }
        (*st).in_progress = true;
        let rc = call_next(r);
        (*st).in_progress = false;
        if (*r).header_sent() != 0 && !(*st).reported {
            (*st).reported = true;
            guard(log, "ase_response report", (), || report(r));
        }
        rc
    }
}

fn str_bytes<'a>(s: &ngx_str_t) -> &'a [u8] {
    if s.data.is_null() || s.len == 0 {
        &[]
    } else {
        // SAFETY: nginx strings point to `len` bytes in the request's pool or static data,
        // alive for the request.
        unsafe { core::slice::from_raw_parts(s.data, s.len) }
    }
}

/// The live and dead entries of `r->headers_out.headers`, in order, walked in place.
#[derive(Clone, Copy)]
struct ListEntries<'a> {
    part: *const ngx_list_part_t,
    i: usize,
    _list: PhantomData<&'a ngx_table_elt_t>,
}

impl<'a> Iterator for ListEntries<'a> {
    type Item = ListHeader<'a>;

    fn next(&mut self) -> Option<ListHeader<'a>> {
        loop {
            // SAFETY: the list's parts and their `nelts` entries live as long as the
            // request ('a), and nothing changes them while the report is built.
            let p = unsafe { self.part.as_ref()? };
            if self.i < p.nelts {
                let h = unsafe { &*(p.elts as *const ngx_table_elt_t).add(self.i) };
                self.i += 1;
                return Some(ListHeader { hash: h.hash, name: str_bytes(&h.key), value: str_bytes(&h.value) });
            }
            self.part = p.next;
            self.i = 0;
        }
    }
}

/// `$ase_correlation_id` when the request module set it (in the request's pool).
unsafe fn correlation_var<'a>(r: *mut ngx_http_request_t) -> Option<&'a [u8]> {
    unsafe {
        let mut name = ngx_str_t { len: CID_VARIABLE.len(), data: CID_VARIABLE.as_ptr() as *mut u8 };
        let v = ngx_http_get_variable(r, &mut name, CID_HASH.load(Ordering::Relaxed));
        let v = v.as_ref()?;
        // For a variable nobody declared (the request module not loaded) nginx sets only
        // `not_found` in fresh pool memory: test that bit alone, before reading any other
        // (black_box keeps the compiler from testing neighbouring bit-fields together).
        if core::hint::black_box(v.not_found()) != 0 {
            return None;
        }
        if v.valid() != 0 && v.len() > 0 && !v.data.is_null() {
            Some(core::slice::from_raw_parts(v.data, v.len() as usize))
        } else {
            None
        }
    }
}

// `off_t` and `time_t` are not i64 on every platform nginx builds on.
#[allow(clippy::useless_conversion)]
unsafe fn report(r: *mut ngx_http_request_t) {
    unsafe {
        let Some(api) = CHANNEL.api() else { return };
        let log = (*(*r).connection).log;
        let out = &(*r).headers_out;
        let code = u16::try_from(out.status).unwrap_or(0);
        // No request call, no report: the ASE could not pair it with anything.
        let Some(cid) = correlation_var(r) else {
            ngx::ngx_log_debug_mask!(
                DebugMask::Http,
                log,
                "ase: response report {} not sent: no request metadata went to the ASE",
                code
            );
            return;
        };
        // Asked before anything is built; a refusal is counted by the channel as a drop.
        let admission = Admission::from_u8((api.admit)(r as *mut c_void, CallKind::Report as u8));
        if admission != Admission::Go {
            ngx::ngx_log_debug_mask!(DebugMask::Http, log, "ase: response report {} not sent: {:?}", code, admission);
            return;
        }
        let Some(conf) = Module::location_conf(&*r) else { return };
        let list = ListEntries { part: &out.headers.part, i: 0, _list: PhantomData };
        let location = out.location.as_ref().map(|l| (l.hash, str_bytes(&l.value)));
        let dedicated = Dedicated {
            content_type: str_bytes(&out.content_type),
            content_type_len: out.content_type_len,
            charset: str_bytes(&out.charset),
            has_content_length_entry: !out.content_length.is_null(),
            content_length_n: i64::from(out.content_length_n),
            has_last_modified_entry: !out.last_modified.is_null(),
            last_modified_time: i64::from(out.last_modified_time),
            location,
        };
        let snapshot = Snapshot {
            code,
            reason: reason_for(code, str_bytes(&out.status_line)),
            http_version: (*r).http_version,
            headers: visible(client_headers(list, &dedicated), &conf.hidden, |h: &Header<'_>| h.0),
        };
        // The channel copies the body before `send_report` returns: one reused buffer will do.
        let (queued, len) = with_scratch(|json| {
            write_json(json, snapshot);
            let queued = (api.send_report)(r as *mut c_void, Bytes::new(cid), Bytes::new(json));
            (Admission::from_u8(queued), json.len())
        });
        // Drops are counted by the common module (status page), and logged at debug level
        // only, so that an unavailable ASE does not write one error line per response.
        ngx::ngx_log_debug_mask!(
            DebugMask::Http,
            log,
            "ase: response report {} {:?} ({} bytes, X-CorrelationID {})",
            code,
            queued,
            len,
            core::str::from_utf8(cid).unwrap_or("?")
        );
    }
}
