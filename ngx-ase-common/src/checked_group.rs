//! Which group a main request's check went to (unsafe glue over nginx's pool cleanups).
//!
//! A report goes where its check went: the ASE pairs the two by correlation ID, and only the
//! cluster that got the request call can. The response is reported from the location that
//! sends the header, which an internal redirect (`try_files`, `error_page`) may have moved
//! into a location with another `ase_pass`; its group is not the check's.
//!
//! The note is a pool cleanup entry of the main request, found by its handler (as the request
//! module keeps its own state): `r->ctx` is zeroed by every internal redirect, the pool is not.

use core::ffi::c_void;

use nginx_sys::{ngx_http_request_t, ngx_pool_cleanup_add, ngx_pool_cleanup_t};

/// The cleanup handler that marks the note; it has nothing to free.
unsafe extern "C" fn marker(_data: *mut c_void) {}

/// The one value of the marker both stored and compared.
static MARKER: unsafe extern "C" fn(*mut c_void) = marker;

unsafe fn find(r: *mut ngx_http_request_t) -> Option<&'static mut usize> {
    unsafe {
        let mut c: *mut ngx_pool_cleanup_t = (*(*(*r).main).pool).cleanup;
        while let Some(cl) = c.as_ref() {
            if cl.handler.is_some_and(|h| core::ptr::fn_addr_eq(h, MARKER)) {
                return (cl.data as *mut usize).as_mut();
            }
            c = cl.next;
        }
        None
    }
}

/// Notes that `r`'s (latest) check went to `group`. Without pool memory for it, the report
/// takes its own location's group, as before a redirect.
///
/// # Safety
/// `r` is a live request.
pub unsafe fn note(r: *mut ngx_http_request_t, group: usize) {
    unsafe {
        if let Some(g) = find(r) {
            *g = group;
            return;
        }
        let cl = ngx_pool_cleanup_add((*(*r).main).pool, core::mem::size_of::<usize>());
        if let Some(cl) = cl.as_mut() {
            (cl.data as *mut usize).write(group);
            cl.handler = Some(MARKER);
        }
    }
}

/// The group `r`'s latest check went to, if one was started.
///
/// # Safety
/// `r` is a live request.
pub unsafe fn noted(r: *mut ngx_http_request_t) -> Option<usize> {
    unsafe { find(r).map(|g| *g) }
}
