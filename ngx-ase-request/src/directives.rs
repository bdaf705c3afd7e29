//! Directive callbacks of the request module (unsafe glue over `conf.rs`).

use core::ffi::{c_char, c_void};

use nginx_sys::{ngx_command_t, ngx_conf_set_flag_slot, ngx_conf_t};
use ngx::http::HttpModuleMainConf;
use ngx_ase_glue::conf::{conf_error, conf_ok, current_position, directive_args, emerg};
use ngx_ase_glue::panic::guard;

use crate::conf::{parse_block_status, parse_fail_mode, parse_user_header, FailMode, LocConf, UNSET_UINT};
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
        let rv = ngx_conf_set_flag_slot(cf, cmd, conf);
        if !rv.is_null() {
            return rv;
        }
        if (*(conf as *mut LocConf)).is_enabled() {
            if let Some(main) = Module::main_conf_mut(&*cf) {
                main.first_enabled_at.get_or_insert_with(|| current_position(cf));
            }
        }
        conf_ok()
    })
}

pub unsafe extern "C" fn set_fail_mode(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    checked(cf, || {
        let conf = &mut *(conf as *mut LocConf);
        if conf.fail_mode != FailMode::Unset {
            return emerg(cf, "\"ase_fail_mode\" directive is duplicate");
        }
        match parse_fail_mode(directive_args(cf)[0]) {
            Ok(m) => {
                conf.fail_mode = m;
                conf_ok()
            }
            Err(e) => emerg(cf, &e),
        }
    })
}

pub unsafe extern "C" fn set_block_status(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    checked(cf, || {
        let conf = &mut *(conf as *mut LocConf);
        if conf.block_status != UNSET_UINT {
            return emerg(cf, "\"ase_block_status\" directive is duplicate");
        }
        match parse_block_status(directive_args(cf)[0]) {
            Ok(s) => {
                conf.block_status = s;
                conf_ok()
            }
            Err(e) => emerg(cf, &e),
        }
    })
}

pub unsafe extern "C" fn set_user_header(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    checked(cf, || {
        let conf = &mut *(conf as *mut LocConf);
        if conf.user_header.is_some() {
            return emerg(cf, "\"ase_user_header\" directive is duplicate");
        }
        match parse_user_header(directive_args(cf)[0]) {
            Ok(h) => {
                conf.user_header = Some(h);
                conf_ok()
            }
            Err(e) => emerg(cf, &e),
        }
    })
}
