//! `$ase_verdict`, `$ase_correlation_id`, `$ase_time` and `$ase_cache_status` (unsafe glue).

use core::ptr;

use nginx_sys::{
    ngx_conf_t, ngx_http_add_variable, ngx_http_request_t, ngx_http_variable_value_t, ngx_int_t, ngx_pnalloc,
    ngx_str_t, NGX_ERROR, NGX_HTTP_VAR_NOCACHEABLE, NGX_OK,
};

use crate::handler::find_ctx;

type Getter = unsafe extern "C" fn(*mut ngx_http_request_t, *mut ngx_http_variable_value_t, usize) -> ngx_int_t;

/// Adds the variables to the configuration being read (preconfiguration).
pub unsafe fn register(cf: *mut ngx_conf_t) -> Result<(), ()> {
    unsafe {
        let vars: [(&str, Getter); 4] = [
            ("ase_verdict", get_verdict),
            ("ase_correlation_id", get_correlation_id),
            ("ase_time", get_time),
            ("ase_cache_status", get_cache_status),
        ];
        for (name, get) in vars {
            let mut n = ngx_str_t { len: name.len(), data: name.as_ptr() as *mut u8 };
            let v = ngx_http_add_variable(cf, &mut n, NGX_HTTP_VAR_NOCACHEABLE as _);
            let v = v.as_mut().ok_or(())?;
            v.get_handler = Some(get);
        }
        Ok(())
    }
}

unsafe fn set(r: *mut ngx_http_request_t, v: *mut ngx_http_variable_value_t, value: &[u8]) -> ngx_int_t {
    unsafe {
        let p = ngx_pnalloc((*r).pool, value.len().max(1)) as *mut u8;
        if p.is_null() {
            return NGX_ERROR as ngx_int_t;
        }
        ptr::copy_nonoverlapping(value.as_ptr(), p, value.len());
        (*v).data = p;
        (*v).set_len(value.len() as _);
        (*v).set_valid(1);
        (*v).set_no_cacheable(1);
        (*v).set_not_found(0);
        NGX_OK as ngx_int_t
    }
}

unsafe fn not_found(v: *mut ngx_http_variable_value_t) -> ngx_int_t {
    unsafe {
        // Every field, not only `not_found`: a variable read by name (ngx_http_get_variable, as
        // the response module does) lives in fresh, uninitialised pool memory, and a reader
        // may test several of its bits at once (valgrind saw exactly that).
        (*v).set_len(0);
        (*v).set_valid(0);
        (*v).set_no_cacheable(0);
        (*v).set_escape(0);
        (*v).data = core::ptr::null_mut();
        (*v).set_not_found(1);
        NGX_OK as ngx_int_t
    }
}

unsafe extern "C" fn get_verdict(r: *mut ngx_http_request_t, v: *mut ngx_http_variable_value_t, _: usize) -> ngx_int_t {
    unsafe {
        let name = find_ctx(r).map(|c| c.verdict).unwrap_or(ngx_ase_shared::abi::Verdict::Skip).name();
        set(r, v, name.as_bytes())
    }
}

unsafe extern "C" fn get_correlation_id(
    r: *mut ngx_http_request_t,
    v: *mut ngx_http_variable_value_t,
    _: usize,
) -> ngx_int_t {
    unsafe {
        // Only an ID the ASE got a request call with: the response module reports a
        // response only when this is found.
        match find_ctx(r).and_then(|c| c.sent_id) {
            Some(id) => set(r, v, id.as_bytes()),
            None => not_found(v),
        }
    }
}

unsafe extern "C" fn get_time(r: *mut ngx_http_request_t, v: *mut ngx_http_variable_value_t, _: usize) -> ngx_int_t {
    unsafe {
        match find_ctx(r).and_then(|c| c.elapsed_ms) {
            Some(ms) => {
                // Digits on the stack: no `String` per request.
                let mut buf = [0u8; 20];
                set(r, v, ngx_ase_shared::json::decimal(ms, &mut buf))
            }
            None => set(r, v, b"-"),
        }
    }
}

/// `MISS`, `HIT`, `STALE`, `EXPIRED` or `BYPASS`; not found where the cache was not asked.
unsafe extern "C" fn get_cache_status(
    r: *mut ngx_http_request_t,
    v: *mut ngx_http_variable_value_t,
    _: usize,
) -> ngx_int_t {
    unsafe {
        match find_ctx(r).and_then(|c| c.cache) {
            Some(state) => set(r, v, state.status.name().as_bytes()),
            None => not_found(v),
        }
    }
}
