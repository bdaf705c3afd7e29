//! nginx's header lists, walked and extended in place (unsafe glue).

use core::marker::PhantomData;
use core::ptr;

use nginx_sys::{ngx_http_request_t, ngx_list_part_t, ngx_list_push, ngx_str_t, ngx_table_elt_t};

/// The request's header lines, walked in place in nginx's list (no copy, no `Vec`).
#[derive(Clone, Copy)]
pub struct HeaderLines<'a> {
    part: *const ngx_list_part_t,
    i: usize,
    _list: PhantomData<&'a ngx_table_elt_t>,
}

impl<'a> Iterator for HeaderLines<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            // SAFETY: the parts of `r->headers_in.headers` and their `nelts` entries live as
            // long as the request ('a).
            let p = unsafe { self.part.as_ref()? };
            if self.i < p.nelts {
                let h = unsafe { &*(p.elts as *const ngx_table_elt_t).add(self.i) };
                self.i += 1;
                return Some((h.key.as_bytes(), h.value.as_bytes()));
            }
            self.part = p.next;
            self.i = 0;
        }
    }
}

/// The header lines of `r`.
///
/// # Safety
/// `r` must be a live request that outlives 'a.
pub unsafe fn request_headers<'a>(r: *const ngx_http_request_t) -> HeaderLines<'a> {
    unsafe { HeaderLines { part: ptr::addr_of!((*r).headers_in.headers.part), i: 0, _list: PhantomData } }
}

/// Adds `name: value` to the response headers of `r`. Both are static, so nginx may keep
/// pointing at them. Returns false when out of memory.
///
/// # Safety
/// `r` must be a live request whose header has not been sent yet.
pub unsafe fn add_response_header(r: *mut ngx_http_request_t, name: &'static str, value: &'static str) -> bool {
    unsafe {
        let h = ngx_list_push(&mut (*r).headers_out.headers) as *mut ngx_table_elt_t;
        if h.is_null() {
            return false;
        }
        let as_ngx = |s: &'static str| ngx_str_t { len: s.len(), data: s.as_ptr() as *mut u8 };
        // Zeroed first: the entry is uninitialised, and nginx 1.23+ has a `next` field that
        // nginx 1.22 lacks (null there means "no other header of this name").
        ptr::write_bytes(h, 0, 1);
        (*h).hash = 1;
        (*h).key = as_ngx(name);
        (*h).value = as_ngx(value);
        true
    }
}
