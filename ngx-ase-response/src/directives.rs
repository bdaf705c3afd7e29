//! The response module's directive (a safe setter for `ngx_ase_glue::directive`) and its
//! merge (unsafe glue), which also reads the request module's settings for the same level.

use core::ffi::{c_char, c_void};

use nginx_sys::{ngx_conf_set_flag_slot, ngx_conf_t};
use ngx::http::{HttpModuleMainConf, Merge};
use ngx_ase_glue::conf::{conf_error, conf_ok, log_at};
use ngx_ase_glue::directive::{ConfError, Directive};
use ngx_ase_glue::module::{guard_conf, note_switch};
use ngx_ase_glue::peer::{merging_a_serving_level, request_loc_shared};
use ngx_ase_shared::abi::RequestMode;

use crate::conf::{no_request_warning, LocConf, Module};
use crate::MODULE_NAME;

/// `ase_response on|off`: nginx's own flag parser, noting where it is and where it was
/// first on.
pub fn response(conf: &mut LocConf, d: &Directive) -> Result<(), ConfError> {
    d.nginx_slot(conf, ngx_conf_set_flag_slot)?;
    conf.enabled_at = Some(note_switch(d, conf.is_enabled(), Module::main_conf_mut(d.conf())));
    Ok(())
}

/// Merges as `LocConf::merge`, then takes the request module's settings for the same level:
/// its `ase_hide_header` list, and a warning where `ase_response on` meets `ase_request off`
/// (one per configuration line it names).
pub unsafe extern "C" fn merge_loc_conf(cf: *mut ngx_conf_t, prev: *mut c_void, conf: *mut c_void) -> *mut c_char {
    unsafe {
        guard_conf(cf, || {
            let prev = &*(prev as *const LocConf);
            let conf = &mut *(conf as *mut LocConf);
            if conf.merge(prev).is_err() {
                return conf_error();
            }
            let Some(peer) = request_loc_shared(cf, MODULE_NAME) else { return conf_ok() };
            conf.hidden = peer.hidden.as_slice().to_vec();
            let request_at = core::str::from_utf8(peer.mode_at.as_slice()).ok();
            let serving = merging_a_serving_level(cf);
            let warning = no_request_warning(
                serving && conf.is_enabled(),
                conf.enabled_at.as_deref(),
                RequestMode::from_u8(peer.mode),
                request_at,
            );
            if let (Some((msg, at)), Some(main)) = (warning, Module::main_conf_mut(&*cf)) {
                if main.first_warning_at(&at) {
                    log_at(cf, nginx_sys::NGX_LOG_WARN, &msg, &at);
                }
            }
            conf_ok()
        })
    }
}
