//! nginx's complex values (text with variables, as `proxy_set_header` values): compiled
//! while the configuration is read, evaluated per request in the request's pool.

use nginx_sys::{
    ngx_conf_t, ngx_http_compile_complex_value, ngx_http_compile_complex_value_t, ngx_http_complex_value,
    ngx_http_complex_value_t, ngx_http_request_t, ngx_int_t, ngx_pcalloc, ngx_pnalloc, ngx_str_t, NGX_OK,
};

/// Compiles `value`. On `None` nginx has logged its own message ("unknown variable" ...)
/// naming the line.
///
/// # Safety
/// `cf` is nginx's configuration being read.
pub unsafe fn compile(cf: *mut ngx_conf_t, value: &[u8]) -> Option<*mut ngx_http_complex_value_t> {
    unsafe {
        let pool = (*cf).pool;
        let cv = ngx_pcalloc(pool, core::mem::size_of::<ngx_http_complex_value_t>()) as *mut ngx_http_complex_value_t;
        // The text lives in the configuration's pool: the compiled value refers to it.
        let data = ngx_pnalloc(pool, value.len().max(1)) as *mut u8;
        let text = ngx_pcalloc(pool, core::mem::size_of::<ngx_str_t>()) as *mut ngx_str_t;
        if cv.is_null() || data.is_null() || text.is_null() {
            return None;
        }
        core::ptr::copy_nonoverlapping(value.as_ptr(), data, value.len());
        *text = ngx_str_t { len: value.len(), data };
        let mut ccv: ngx_http_compile_complex_value_t = core::mem::zeroed();
        ccv.cf = cf;
        ccv.value = text;
        ccv.complex_value = cv;
        if ngx_http_compile_complex_value(&mut ccv) != NGX_OK as ngx_int_t {
            return None;
        }
        Some(cv)
    }
}

/// `cv`'s value for request `r`: `None` when null, empty, or not computable.
///
/// # Safety
/// `r` is a live request; `cv` is null or was made by `compile` for this configuration.
pub unsafe fn evaluate<'a>(r: *mut ngx_http_request_t, cv: *mut ngx_http_complex_value_t) -> Option<&'a [u8]> {
    unsafe {
        if cv.is_null() {
            return None;
        }
        let mut out = ngx_str_t { len: 0, data: core::ptr::null_mut() };
        if ngx_http_complex_value(r, cv, &mut out) != NGX_OK as ngx_int_t {
            return None;
        }
        if out.data.is_null() || out.len == 0 {
            return None;
        }
        // SAFETY: nginx wrote `len` bytes in the request's pool, alive as long as the request.
        Some(core::slice::from_raw_parts(out.data, out.len))
    }
}
