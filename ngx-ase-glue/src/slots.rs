//! nginx's slot functions with the bounds our arithmetic needs (unsafe glue): nginx parses
//! the value (its syntax, its "invalid value" and "is duplicate"), then the bound is checked
//! in safe Rust and refused at the directive's line.

use core::ffi::{c_char, c_void};

use nginx_sys::{ngx_command_t, ngx_conf_set_msec_slot, ngx_conf_t, ngx_msec_t};

use crate::conf::{conf_ok, directive_args, emerg};
use crate::module::guard_conf;
use crate::time::{timer_too_long, MAX_TIMER_MS};

/// `ngx_conf_set_msec_slot` for a time that becomes one of our timers: at most
/// [`MAX_TIMER_MS`].
///
/// # Safety
/// nginx's arguments to a directive callback; `cmd->offset` names an `ngx_msec_t` in `conf`.
pub unsafe extern "C" fn timer_msec_slot(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx's arguments, live for the call; the field is the command's own.
    unsafe {
        guard_conf(cf, || {
            let rv = ngx_conf_set_msec_slot(cf, cmd, conf);
            if !rv.is_null() {
                return rv;
            }
            let ms = *(conf.cast::<u8>().add((*cmd).offset).cast::<ngx_msec_t>());
            if ms as u64 <= MAX_TIMER_MS {
                return conf_ok();
            }
            let name = String::from_utf8_lossy((*cmd).name.as_bytes());
            let raw = directive_args(cf).first().copied().unwrap_or_default();
            emerg(cf, &timer_too_long(&name, raw))
        })
    }
}
