//! The `ase_status` content handler (unsafe glue): the counters (all workers' with
//! `ase_zone`, else this worker's) and node health, as JSON or, with `?format=prometheus`,
//! Prometheus text; a browser (or `?format=html`) gets `page.html`, a page that
//! polls the JSON and draws it (`format.rs` decides which).

use core::ptr;

use nginx_sys::{
    ngx_buf_t, ngx_chain_t, ngx_create_temp_buf, ngx_http_output_filter, ngx_http_request_t, ngx_http_send_header,
    ngx_int_t, NGX_ERROR, NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_HTTP_NOT_ALLOWED, NGX_OK,
};
use ngx_ase_glue::headers::{add_response_header, request_headers};
use ngx_ase_glue::panic::guard;

use crate::counters::counters;
use crate::status::format::{choose, Format};
use crate::status::json::{to_json, to_prometheus, GroupPageView, NodeView, PageInput};

/// # Safety
/// nginx calls it as a location's content handler with a live request.
pub unsafe extern "C" fn handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: `r` and its connection, pool and header lists are nginx's, alive for the call.
    unsafe { answer(r) }
}

unsafe fn answer(r: *mut ngx_http_request_t) -> ngx_int_t {
    unsafe {
        let log = (*(*r).connection).log;
        guard(log, "ase_status", NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t, || {
            let method = (*r).method as u32;
            if method & (nginx_sys::NGX_HTTP_GET | nginx_sys::NGX_HTTP_HEAD) == 0 {
                return NGX_HTTP_NOT_ALLOWED as ngx_int_t;
            }
            let accept = request_headers(r).filter(|(name, _)| name.eq_ignore_ascii_case(b"accept")).map(|(_, v)| v);
            let choice = choose((*r).args.as_bytes(), accept);
            if choice.negotiated && !add_response_header(r, "Vary", "Accept") {
                return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
            }
            if choice.format == Format::Html {
                for (name, value) in PAGE_HEADERS {
                    if !add_response_header(r, name, value) {
                        return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
                    }
                }
                return send(r, PAGE.as_bytes(), &ngx::ngx_string!("text/html; charset=utf-8"));
            }
            let conf = <crate::Module as ngx::http::HttpModuleMainConf>::main_conf(&*r);
            // One entry per node address, in the channel's order (api.rs build_worker); a
            // `resolve` server's slots as this worker has them (its current addresses).
            let mut nodes = Vec::new();
            for (i, (g, mut n)) in conf.map(|c| c.nodes()).unwrap_or_default().into_iter().enumerate() {
                if n.server.resolve {
                    match crate::worker::with(|w| (w.engine.node_active(i), w.io.address(i))) {
                        Some((true, Some(addr))) => n.addr = addr,
                        _ => continue,
                    }
                }
                nodes.push((i, n.server.url.to_string(), n.addr.to_string(), n.display(), n.server.backup, g));
            }
            let groups: Vec<(&str, usize)> =
                conf.map(|c| c.group_views().iter().map(|g| (g.name, g.nodes().len())).collect()).unwrap_or_default();
            let name = |g: usize| groups.get(g).map_or("-", |(n, _)| *n);
            let input = PageInput {
                counters: counters(),
                nodes: nodes
                    .iter()
                    .map(|(i, url, address, nm, backup, g)| NodeView {
                        index: *i,
                        url,
                        address,
                        name: nm,
                        backup: *backup,
                        group: name(*g),
                    })
                    .collect(),
                groups: groups
                    .iter()
                    .enumerate()
                    .map(|(i, (n, count))| GroupPageView {
                        name: n,
                        breaker_open: crate::worker::with(|w| w.engine.breaker_open(i)).unwrap_or(false),
                        nodes: *count,
                    })
                    .collect(),
                now_ms: crate::clock::now_ms(),
                shared: conf.is_some_and(|c| !c.zone.is_null()),
            };
            if choice.format == Format::Prometheus {
                send(r, to_prometheus(&input).as_bytes(), &ngx::ngx_string!("text/plain; version=0.0.4; charset=utf-8"))
            } else {
                send(r, to_json(&input).as_bytes(), &ngx::ngx_string!("application/json"))
            }
        })
    }
}

/// The page: one file, nothing outside it (it must work on an air-gapped gateway).
const PAGE: &str = include_str!("page.html");

/// Its Content-Security-Policy (`csp.rs`, computed by `build.rs`): only its own inline
/// script and style, only this nginx to fetch from, nothing else.
const POLICY: &str = include_str!(concat!(env!("OUT_DIR"), "/status_csp.txt"));

const PAGE_HEADERS: [(&str, &str); 4] = [
    ("Content-Security-Policy", POLICY),
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
];

/// Sends a 200 response with `body` of `content_type`.
unsafe fn send(r: *mut ngx_http_request_t, body: &[u8], content_type: &nginx_sys::ngx_str_t) -> ngx_int_t {
    unsafe {
        let rc = nginx_sys::ngx_http_discard_request_body(r);
        if rc != NGX_OK as ngx_int_t {
            return rc;
        }
        (*r).headers_out.status = 200;
        (*r).headers_out.content_length_n = body.len() as _;
        (*r).headers_out.content_type = *content_type;
        (*r).headers_out.content_type_len = (*r).headers_out.content_type.len;
        let rc = ngx_http_send_header(r);
        if rc == NGX_ERROR as ngx_int_t || rc > NGX_OK as ngx_int_t || (*r).header_only() != 0 {
            return rc;
        }
        let b: *mut ngx_buf_t = ngx_create_temp_buf((*r).pool, body.len().max(1));
        if b.is_null() {
            return NGX_ERROR as ngx_int_t;
        }
        ptr::copy_nonoverlapping(body.as_ptr(), (*b).last, body.len());
        (*b).last = (*b).last.add(body.len());
        (*b).set_last_buf(if (*r).main == r { 1 } else { 0 });
        (*b).set_last_in_chain(1);
        let mut out = ngx_chain_t { buf: b, next: ptr::null_mut() };
        ngx_http_output_filter(r, &mut out)
    }
}
