//! The nginx module declaration (unsafe glue): module table, directives, context, and the
//! hooks of the marker `Module` (which lives with the configuration it finds, `conf.rs`).
//! Not compiled into unit-test binaries, which run without nginx's symbols.

use core::mem::offset_of;
use core::ptr::addr_of;

use nginx_sys::{ngx_command_t, ngx_conf_t, ngx_http_module_t, ngx_int_t, ngx_module_t, NGX_CONF_FLAG};
use ngx::http::{HttpModule, HttpModuleMainConf};
use ngx::ngx_string;
use ngx_ase_glue::conf::{check_channel, check_common_first, log_at, log_conf};
use ngx_ase_glue::directive::{directive, Setter};
use ngx_ase_glue::module::{guard_hook, ANY_LEVEL, LOC_CONF};
use ngx_ase_glue::peer::{check_request_module_first, request_module_loaded};
use ngx_ase_shared::abi::REQUEST_MODULE_NAME;

use crate::conf::{LocConf, Module};
use crate::directives::{merge_loc_conf, response};
use crate::MODULE_NAME;

impl HttpModule for Module {
    fn module() -> &'static ngx_module_t {
        // SAFETY: nginx only writes the module table (indices) before workers start.
        unsafe { &*addr_of!(ngx_http_ase_response_module) }
    }

    unsafe extern "C" fn preconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
        unsafe {
            // Before the http block's directives are read: a missing common module is named
            // here, not reported as an unknown "ase_server".
            guard_hook(cf, "preconfiguration", || {
                check_common_first(cf, MODULE_NAME)?;
                // Our merge reads the request module's merged settings: it must be merged first.
                check_request_module_first(cf, MODULE_NAME).map_err(|msg| log_conf(cf, nginx_sys::NGX_LOG_EMERG, &msg))
            })
        }
    }

    unsafe extern "C" fn postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
        unsafe {
            guard_hook(cf, "postconfiguration", || {
                let enabled_at = Module::main_conf(&*cf).and_then(|m| m.first_enabled_at.clone());
                let header = check_channel(cf, MODULE_NAME, "ase_response", enabled_at.as_deref())?;
                // Only where some location reports: the chain is rebuilt for every cycle, so a
                // configuration without `ase_response on` costs nothing.
                if let Some(at) = enabled_at.as_deref() {
                    crate::filter::install(header.api);
                    if !request_module_loaded(cf) {
                        let msg = format!(
                            "\"ase_response\" is on but {REQUEST_MODULE_NAME} is not loaded: no response is \
                         reported, as reports go only with requests whose metadata went to the ASE"
                        );
                        log_at(cf, nginx_sys::NGX_LOG_WARN, &msg, at);
                    }
                }
                Ok(())
            })
        }
    }
}

static mut COMMANDS: [ngx_command_t; 2] = [
    // nginx's flag slot reads the value into `enabled` (see `response`).
    directive(
        ngx_string!("ase_response"),
        ANY_LEVEL | NGX_CONF_FLAG,
        LOC_CONF,
        offset_of!(LocConf, enabled),
        &Setter(response),
    ),
    ngx_command_t::empty(),
];

static MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: Some(Module::preconfiguration),
    postconfiguration: Some(Module::postconfiguration),
    create_main_conf: Some(Module::create_main_conf),
    init_main_conf: None,
    create_srv_conf: None,
    merge_srv_conf: None,
    create_loc_conf: Some(Module::create_loc_conf),
    merge_loc_conf: Some(merge_loc_conf),
};

ngx_ase_glue::http_module!(ngx_http_ase_response_module, MODULE_CTX, COMMANDS);
