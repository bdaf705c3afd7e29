//! What the response module reads of the request module's configuration: the shared part
//! at the start of its location configuration (`ngx_ase_shared::abi::RequestLocShared`),
//! for the level nginx is merging.

use nginx_sys::{ngx_conf_t, ngx_http_conf_ctx_t};
use ngx_ase_shared::abi::{RequestLocShared, REQUEST_MODULE_NAME};

use crate::conf::find_module;

/// The request module's merged settings for the level being merged, when that module is
/// loaded, comes from the same build, and was merged before the caller (it is loaded
/// first: see [`check_request_module_first`]).
///
/// # Safety
/// `cf` must be the `ngx_conf_t` of a `merge_loc_conf` callback: nginx points
/// `cf->ctx->loc_conf` at the level being merged while it merges it.
pub unsafe fn request_loc_shared<'a>(cf: *mut ngx_conf_t, our_module: &str) -> Option<&'a RequestLocShared> {
    unsafe {
        let request = find_module(cf, REQUEST_MODULE_NAME)?;
        let ours = find_module(cf, our_module)?;
        if request.index > ours.index {
            return None;
        }
        let ctx = ((*cf).ctx as *const ngx_http_conf_ctx_t).as_ref()?;
        if ctx.loc_conf.is_null() {
            return None;
        }
        let shared = (*ctx.loc_conf.add(request.ctx_index) as *const RequestLocShared).as_ref()?;
        shared.is_compatible().then_some(shared)
    }
}

/// Whether the request module is loaded at all.
///
/// # Safety
/// `cf` must be a live `ngx_conf_t` whose cycle's module list is set up.
pub unsafe fn request_module_loaded(cf: *mut ngx_conf_t) -> bool {
    unsafe { find_module(cf, REQUEST_MODULE_NAME).is_some() }
}

/// For `module_name`'s preconfiguration: the request module, when loaded, must come first
/// (its settings are merged before ours, and we read them). Returns the message otherwise.
///
/// # Safety
/// As for [`request_module_loaded`].
pub unsafe fn check_request_module_first(cf: *mut ngx_conf_t, module_name: &str) -> Result<(), String> {
    unsafe {
        match (find_module(cf, REQUEST_MODULE_NAME), find_module(cf, module_name)) {
            (Some(request), Some(ours)) if request.index > ours.index => Err(format!(
                "{module_name} must be loaded after {REQUEST_MODULE_NAME}: put \"load_module \
             modules/{REQUEST_MODULE_NAME}.so;\" before \"load_module modules/{module_name}.so;\""
            )),
            _ => Ok(()),
        }
    }
}

/// Whether requests are served with the settings of the level being merged: any location
/// (nested ones, `if` and `limit_except` blocks too), and a server only when it has no
/// location of its own (else every request matches one of them). The http level itself is
/// never merged. For warnings that should name only places requests really get.
///
/// # Safety
/// As for [`request_loc_shared`].
pub unsafe fn merging_a_serving_level(cf: *mut ngx_conf_t) -> bool {
    unsafe {
        let Some(ctx) = ((*cf).ctx as *const ngx_http_conf_ctx_t).as_ref() else { return true };
        if ctx.loc_conf.is_null() {
            return true;
        }
        let index = (*core::ptr::addr_of!(nginx_sys::ngx_http_core_module)).ctx_index;
        let Some(clcf) = (*ctx.loc_conf.add(index) as *const nginx_sys::ngx_http_core_loc_conf_t).as_ref() else {
            return true;
        };
        if clcf.name.len > 0 {
            return true;
        }
        // A server level: nginx keeps its locations in a queue until after the merge.
        let locations = clcf.locations;
        locations.is_null() || (*locations).prev == locations
    }
}
