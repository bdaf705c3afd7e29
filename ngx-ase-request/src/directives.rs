//! Directive callbacks of the request module (unsafe glue over `conf.rs`).

use core::ffi::{c_char, c_void};

use nginx_sys::{ngx_command_t, ngx_conf_set_size_slot, ngx_conf_t};
use ngx::http::HttpModuleMainConf;
use ngx_ase_glue::conf::{conf_error, conf_ok, current_position, directive_args, emerg, set_once};
use ngx_ase_glue::module::guard_conf as checked;
use ngx_ase_glue::values::{in_directive, UNSET_UINT};
use ngx_ase_shared::header_names;

use crate::conf::{
    check_max_size, check_value_slot, parse_block_status, parse_fail_mode, parse_request_mode, user_header_variable,
    FailMode, LocConf, PerRequestValue,
};
use crate::Module;

/// `ase_request on|off|monitor`, noting where it is (for the response module's warning)
/// and where it was first on or monitor (for the "no ase_server" error).
pub unsafe extern "C" fn set_request(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    unsafe {
        checked(cf, || {
            let conf = &mut *(conf as *mut LocConf);
            let is_set = conf.mode.is_some();
            let parsed = parse_request_mode(directive_args(cf)[0]);
            let rv = set_once(cf, &mut conf.mode, is_set, parsed.map(Some));
            if !rv.is_null() {
                return rv;
            }
            let here = current_position(cf);
            if conf.mode().sends_metadata() {
                if let Some(main) = Module::main_conf_mut(&*cf) {
                    main.note_enabled(&here);
                }
            }
            conf.mode_at = Some(here);
            conf_ok()
        })
    }
}

/// Sets a per-request value slot from `value`, or says why not.
unsafe fn set_value(
    cf: *mut ngx_conf_t,
    slot: &mut Option<PerRequestValue>,
    directive: &'static str,
    value: &[u8],
) -> *mut c_char {
    unsafe {
        if let Err(e) = check_value_slot(slot, directive) {
            return emerg(cf, &e);
        }
        match ngx_ase_glue::complex_value::compile(cf, value) {
            Some(cv) => {
                *slot = Some(PerRequestValue { cv, directive });
                conf_ok()
            }
            None => conf_error(),
        }
    }
}

/// `ase_user VALUE`: the username sent in `user_info` (variables allowed).
pub unsafe extern "C" fn set_user(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    unsafe {
        checked(cf, || {
            let conf = &mut *(conf as *mut LocConf);
            set_value(cf, &mut conf.user, "ase_user", directive_args(cf)[0])
        })
    }
}

/// `ase_client_id VALUE`: the OAuth client ID sent in `user_info` (variables allowed).
pub unsafe extern "C" fn set_client_id(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    unsafe {
        checked(cf, || {
            let conf = &mut *(conf as *mut LocConf);
            set_value(cf, &mut conf.client_id, "ase_client_id", directive_args(cf)[0])
        })
    }
}

/// `ase_hide_header NAME ...`: repeatable; the names add to this level's list.
pub unsafe extern "C" fn set_hide_header(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    unsafe {
        let conf = &mut *(conf as *mut LocConf);
        add_header_names(cf, conf.hidden.get_or_insert_with(Vec::new), "ase_hide_header")
    }
}

/// `ase_identity_header NAME ...`: repeatable; the names add to this level's list (and to
/// the enclosing levels', when merged).
pub unsafe extern "C" fn set_identity_header(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    unsafe {
        let conf = &mut *(conf as *mut LocConf);
        add_header_names(cf, conf.identity.get_or_insert_with(Vec::new), "ase_identity_header")
    }
}

/// Adds the directive's header names to `list`, or says which one is not a header name.
unsafe fn add_header_names(cf: *mut ngx_conf_t, list: &mut Vec<u8>, directive: &str) -> *mut c_char {
    unsafe {
        checked(cf, || {
            for name in directive_args(cf) {
                if let Err(e) = header_names::add_name(list, name) {
                    return emerg(cf, &in_directive(&e, directive));
                }
            }
            conf_ok()
        })
    }
}

pub unsafe extern "C" fn set_fail_mode(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    unsafe {
        checked(cf, || {
            let conf = &mut *(conf as *mut LocConf);
            let is_set = conf.fail_mode != FailMode::Unset;
            set_once(cf, &mut conf.fail_mode, is_set, parse_fail_mode(directive_args(cf)[0]))
        })
    }
}

pub unsafe extern "C" fn set_block_status(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    unsafe {
        checked(cf, || {
            let conf = &mut *(conf as *mut LocConf);
            let is_set = conf.block_status != UNSET_UINT;
            set_once(cf, &mut conf.block_status, is_set, parse_block_status(directive_args(cf)[0]))
        })
    }
}

/// `ase_user_header NAME`: shorthand for `ase_user $http_NAME`.
pub unsafe extern "C" fn set_user_header(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    unsafe {
        checked(cf, || {
            let conf = &mut *(conf as *mut LocConf);
            match user_header_variable(directive_args(cf)[0]) {
                Ok(variable) => set_value(cf, &mut conf.user, "ase_user_header", variable.as_bytes()),
                Err(e) => emerg(cf, &e),
            }
        })
    }
}

/// `ase_request_max_size SIZE`: nginx's own size parser (its syntax, its "invalid value"
/// and "is duplicate" messages), then the smallest size the payload needs.
pub unsafe extern "C" fn set_max_size(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    unsafe {
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
}
