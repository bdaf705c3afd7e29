//! Directive callbacks' plumbing: arguments, errors with file and line, module lookup.

use core::ffi::{c_char, CStr};

use nginx_sys::{ngx_conf_t, ngx_http_conf_ctx_t, ngx_module_t, ngx_str_t, NGX_LOG_EMERG};
use ngx_ase_shared::abi::{api_mismatch, CommonMainHeader, COMMON_MODULE_NAME};

/// nginx's "configuration error" return value for directive callbacks.
pub fn conf_error() -> *mut c_char {
    ngx::core::NGX_CONF_ERROR as *mut c_char
}

/// nginx's "configuration ok" return value for directive callbacks.
pub fn conf_ok() -> *mut c_char {
    core::ptr::null_mut()
}

/// The directive's arguments after its name, as byte strings.
///
/// # Safety
/// `cf` must be the `ngx_conf_t` nginx passed to a directive callback.
pub unsafe fn directive_args<'a>(cf: *mut ngx_conf_t) -> Vec<&'a [u8]> {
    unsafe {
        let args = &*(*cf).args;
        let elts = args.elts as *const ngx_str_t;
        (1..args.nelts).map(|i| (*elts.add(i)).as_bytes()).collect()
    }
}

/// The directive's name (the first word), for messages.
///
/// # Safety
/// As for [`directive_args`].
pub unsafe fn directive_name<'a>(cf: *mut ngx_conf_t) -> &'a [u8] {
    unsafe {
        let args = &*(*cf).args;
        if args.nelts == 0 {
            return b"";
        }
        (*(args.elts as *const ngx_str_t)).as_bytes()
    }
}

/// Logs `msg` as an `emerg` configuration error; nginx appends " in FILE:LINE".
///
/// # Safety
/// `cf` must be a live `ngx_conf_t`.
pub unsafe fn log_conf(cf: *mut ngx_conf_t, level: u32, msg: &str) {
    ngx::ngx_conf_log_error!(level, cf, "{}", msg);
}

/// Logs `msg` as an `emerg` configuration error and returns `NGX_CONF_ERROR`.
///
/// # Safety
/// `cf` must be a live `ngx_conf_t`.
pub unsafe fn emerg(cf: *mut ngx_conf_t, msg: &str) -> *mut c_char {
    unsafe {
        log_conf(cf, NGX_LOG_EMERG, msg);
        conf_error()
    }
}

/// Where the directive being parsed stands, as "FILE:LINE".
///
/// # Safety
/// `cf` must be a live `ngx_conf_t` that is reading a file.
pub unsafe fn current_position(cf: *mut ngx_conf_t) -> String {
    unsafe {
        let Some(file) = (*cf).conf_file.as_ref() else {
            return String::from("(unknown)");
        };
        format!("{}:{}", String::from_utf8_lossy(file.file.name.as_bytes()), file.line)
    }
}

/// Finds a module by its nginx name in the cycle being configured.
///
/// # Safety
/// `cf` must be a live `ngx_conf_t` whose cycle's module list is set up.
pub unsafe fn find_module<'a>(cf: *mut ngx_conf_t, name: &str) -> Option<&'a ngx_module_t> {
    unsafe {
        let cycle = &*(*cf).cycle;
        if cycle.modules.is_null() {
            return None;
        }
        (0..cycle.modules_n)
            .map(|i| *cycle.modules.add(i))
            .filter(|m| !m.is_null())
            .map(|m| &*m)
            .find(|m| !m.name.is_null() && CStr::from_ptr(m.name).to_bytes() == name.as_bytes())
    }
}

/// Whether module `a` comes before module `b` in the cycle's module order.
///
/// # Safety
/// As for [`find_module`].
pub unsafe fn module_index(cf: *mut ngx_conf_t, name: &str) -> Option<usize> {
    unsafe { find_module(cf, name).map(|m| m.index) }
}

/// The message printed when a module is loaded without the common module before it.
pub fn missing_common_message(module_name: &str) -> String {
    format!(
        "{module_name} needs {COMMON_MODULE_NAME}: add \"load_module modules/{COMMON_MODULE_NAME}.so;\" \
         before \"load_module modules/{module_name}.so;\""
    )
}

/// The common module's http main configuration header, looked up by module name.
///
/// Must be called while the `http` block is parsed (`cf->ctx` is its `ngx_http_conf_ctx_t`)
/// and after the common module created its main configuration.
///
/// # Safety
/// `cf` must be a live `ngx_conf_t` inside the `http` block.
pub unsafe fn common_header<'a>(cf: *mut ngx_conf_t, module_name: &str) -> Result<&'a CommonMainHeader, String> {
    unsafe {
        let Some(common) = find_module(cf, COMMON_MODULE_NAME) else {
            return Err(missing_common_message(module_name));
        };
        let ours = module_index(cf, module_name).unwrap_or(usize::MAX);
        if common.index > ours {
            return Err(missing_common_message(module_name));
        }
        let ctx = (*cf).ctx as *mut ngx_http_conf_ctx_t;
        let main = *(*ctx).main_conf.add(common.ctx_index) as *const CommonMainHeader;
        let Some(header) = main.as_ref() else {
            return Err(missing_common_message(module_name));
        };
        let why = match header.api.as_ref() {
            // The version is the table's first field in every build; the size follows it.
            Some(api) => match api_mismatch(api.abi_version, api.size) {
                None => return Ok(header),
                Some(why) => why,
            },
            None => "no function table".to_string(),
        };
        Err(format!(
            "{module_name} and {COMMON_MODULE_NAME} come from different ngx-ase builds ({why}): \
         install all three modules from the same build"
        ))
    }
}

/// For the preconfiguration hook of a module that sends through the common module: nginx
/// runs it at the start of the `http` block, after every module created its main
/// configuration and before the block's directives are read. Checking here gives the
/// clear message (which `load_module` line is missing, or that the builds differ), naming
/// the `http` block's file and line, instead of nginx's `unknown directive "ase_server"`.
///
/// # Safety
/// `cf` must be the `ngx_conf_t` of a preconfiguration callback.
#[allow(clippy::result_unit_err)] // the message is logged already
pub unsafe fn check_common_first(cf: *mut ngx_conf_t, module_name: &str) -> Result<(), ()> {
    unsafe {
        match common_header(cf, module_name) {
            Ok(_) => Ok(()),
            Err(msg) => {
                log_conf(cf, NGX_LOG_EMERG, &msg);
                Err(())
            }
        }
    }
}

/// Logs an `emerg` message for a problem found after parsing, naming the place it
/// refers to the way nginx does (" in FILE:LINE").
///
/// # Safety
/// `cf` must be a live `ngx_conf_t`.
pub unsafe fn log_emerg_at(cf: *mut ngx_conf_t, msg: &str, position: &str) {
    unsafe {
        log_at(cf, NGX_LOG_EMERG, msg, position);
    }
}

/// Logs `msg` at `level` naming the place it refers to (" in FILE:LINE"), for a problem
/// found after the directive there was read.
///
/// # Safety
/// `cf` must be a live `ngx_conf_t`.
pub unsafe fn log_at(cf: *mut ngx_conf_t, level: u32, msg: &str, position: &str) {
    unsafe {
        ngx::ngx_log_error!(level, (*cf).log, "{} in {}", msg, position);
    }
}

/// The checks every module that sends through the common module makes once the `http`
/// block is read: the common module is loaded first, and a module turned on somewhere
/// (`enabled_at` = where) has at least one `ase_server` to talk to.
///
/// # Safety
/// `cf` must be the `ngx_conf_t` of a postconfiguration callback.
#[allow(clippy::result_unit_err)] // the message is logged already
pub unsafe fn check_channel<'a>(
    cf: *mut ngx_conf_t,
    module_name: &str,
    directive: &str,
    enabled_at: Option<&str>,
) -> Result<&'a CommonMainHeader, ()> {
    unsafe {
        let header = match common_header(cf, module_name) {
            Ok(h) => h,
            Err(msg) => {
                ngx::ngx_log_error!(NGX_LOG_EMERG, (*cf).log, "{}", msg);
                return Err(());
            }
        };
        if let (Some(at), 0) = (enabled_at, header.server_count) {
            log_emerg_at(cf, &format!("\"{directive}\" is on but the http block has no \"ase_server\""), at);
            return Err(());
        }
        Ok(header)
    }
}
