//! What nginx routed the request by, as the payload tells the ASE (unsafe glue; see
//! `payload.rs` and docs/protocol.md): the host and the URI.

use nginx_sys::ngx_http_request_t;
use ngx::http::{HttpModuleServerConf, NgxHttpCoreModule};
use ngx_ase_shared::header_names::is_listed;
use ngx_ase_shared::url::Url;

/// The host nginx chose the server by, as `$host` says it: the request line's host (an
/// absolute-form target), else the `Host` header's, else HTTP/2's `:authority` (nginx has
/// validated it: lower case, no port, no trailing dot), else the server's first
/// `server_name`. `None` when that is empty or `host` is hidden (`ase_hide_header host`).
///
/// # Safety
/// `r` must be a live request that outlives 'a.
pub unsafe fn host<'a>(r: *mut ngx_http_request_t, hidden: &[u8]) -> Option<&'a [u8]> {
    if is_listed(hidden, b"host") {
        return None;
    }
    // SAFETY: the request and its server configuration live as long as the request ('a).
    let server = unsafe { (*r).headers_in.server.as_bytes() };
    let host = if server.is_empty() {
        let cscf = unsafe { NgxHttpCoreModule::server_conf(&*r) }?;
        cscf.server_name.as_bytes()
    } else {
        server
    };
    (!host.is_empty()).then_some(host)
}

/// The URI nginx routed by (`r->uri`: decoded, normalised, the one `location` matched, after
/// any `rewrite`) and the query string (`r->args`, as sent or as rewritten).
///
/// # Safety
/// `r` must be a live request that outlives 'a.
pub unsafe fn url<'a>(r: *mut ngx_http_request_t) -> Url<'a> {
    // SAFETY: both strings live in the request's pool, as long as the request ('a).
    unsafe { Url { path: (*r).uri.as_bytes(), args: (*r).args.as_bytes() } }
}
