//! The `ase_set_header` lines' values for one request (unsafe glue over `set_header.rs`).

use crate::set_header::SetHeaders;

/// The set lines' values for request `r`, in its pool: the lines whose value is not empty.
/// Empty when there are none or the pool has no memory left.
///
/// # Safety
/// `r` is a live request; `set`'s values were compiled for its configuration, which
/// outlives it ('a).
pub unsafe fn evaluate<'a>(r: *mut nginx_sys::ngx_http_request_t, set: &'a SetHeaders) -> &'a [(&'a [u8], &'a [u8])] {
    type Pair<'p> = (&'p [u8], &'p [u8]);
    if set.lines.is_empty() {
        return &[];
    }
    unsafe {
        let size = core::mem::size_of::<Pair>() * set.lines.len();
        // nginx's pool alignment (a word) suits a pair of slices.
        let pairs = nginx_sys::ngx_palloc((*r).pool, size) as *mut Pair<'a>;
        if pairs.is_null() {
            return &[];
        }
        let mut n = 0;
        for line in &set.lines {
            if let Some(value) = ngx_ase_glue::complex_value::evaluate(r, line.value) {
                pairs.add(n).write((line.name.as_slice(), value));
                n += 1;
            }
        }
        core::slice::from_raw_parts(pairs, n)
    }
}
