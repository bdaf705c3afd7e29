//! Directive callbacks of the request module (unsafe glue over `conf.rs`).

use core::ffi::{c_char, c_void};

use nginx_sys::{ngx_command_t, ngx_conf_set_size_slot, ngx_conf_t};
use ngx::http::HttpModuleMainConf;
use ngx_ase_glue::conf::{conf_error, conf_ok, directive_args, emerg, set_flag_noting_first_on, set_once};
use ngx_ase_glue::panic::guard;

use crate::conf::{check_max_size, parse_block_status, parse_fail_mode, parse_user_header, FailMode, LocConf, UNSET_UINT};
use crate::Module;

unsafe fn checked(cf: *mut ngx_conf_t, f: impl FnOnce() -> *mut c_char) -> *mut c_char {
    guard((*cf).log, "configuration", conf_error(), f)
}

/// `ase_request on|off`: nginx's own flag parser, plus a note of where it was first on.
pub unsafe extern "C" fn set_request(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    checked(cf, || {
        let first_on = Module::main_conf_mut(&*cf).map(|m| &mut m.first_enabled_at);
        set_flag_noting_first_on(cf, cmd, conf, first_on)
    })
}

pub unsafe extern "C" fn set_fail_mode(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    checked(cf, || {
        let conf = &mut *(conf as *mut LocConf);
        let is_set = conf.fail_mode != FailMode::Unset;
        set_once(cf, &mut conf.fail_mode, is_set, parse_fail_mode(directive_args(cf)[0]))
    })
}

pub unsafe extern "C" fn set_block_status(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    checked(cf, || {
        let conf = &mut *(conf as *mut LocConf);
        let is_set = conf.block_status != UNSET_UINT;
        set_once(cf, &mut conf.block_status, is_set, parse_block_status(directive_args(cf)[0]))
    })
}

pub unsafe extern "C" fn set_user_header(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    checked(cf, || {
        let conf = &mut *(conf as *mut LocConf);
        let is_set = conf.user_header.is_some();
        set_once(cf, &mut conf.user_header, is_set, parse_user_header(directive_args(cf)[0]).map(Some))
    })
}

/// `ase_request_max_size SIZE`: nginx's own size parser (its syntax, its "invalid value"
/// and "is duplicate" messages), then the smallest size the payload needs.
pub unsafe extern "C" fn set_max_size(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    checked(cf, || {
        let rv = ngx_conf_set_size_slot(cf, cmd, conf);
        if !rv.is_null() {
            return rv;
        }
        match check_max_size((*(conf as *mut LocConf)).max_size) {
            Ok(_) => conf_ok(),
            Err(e) => emerg(cf, &e),
        }
    })
}
