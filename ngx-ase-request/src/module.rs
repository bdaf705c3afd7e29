//! The nginx module declaration (unsafe glue): module table, directives, context.
//! Not compiled into unit-test binaries, which run without nginx's symbols.

use core::ffi::{c_char, c_void};
use core::mem::offset_of;
use core::ptr::{addr_of, null_mut};

use nginx_sys::{
    ngx_command_t, ngx_conf_t, ngx_http_module_t, ngx_int_t, ngx_module_t, ngx_str_t, ngx_uint_t,
    NGX_CONF_1MORE, NGX_CONF_FLAG, NGX_CONF_TAKE1, NGX_HTTP_LOC_CONF, NGX_HTTP_LOC_CONF_OFFSET, NGX_HTTP_MAIN_CONF,
    NGX_HTTP_MODULE, NGX_HTTP_SRV_CONF, NGX_ERROR, NGX_OK,
};
use ngx::http::{HttpModule, HttpModuleLocationConf, HttpModuleMainConf};
use ngx::ngx_string;
use ngx_ase_glue::panic::guard;

use crate::MODULE_NAME;


use crate::conf::{LocConf, MainConf};


pub struct Module;

impl HttpModule for Module {
    fn module() -> &'static ngx_module_t {
        // SAFETY: nginx only writes the module table (indices) before workers start.
        unsafe { &*addr_of!(ngx_http_ase_request_module) }
    }

    unsafe extern "C" fn preconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
        guard((*cf).log, "preconfiguration", NGX_ERROR as ngx_int_t, || {
            // Before the http block's directives are read: a missing common module is
            // named here, not reported as an unknown "ase_server".
            if ngx_ase_glue::conf::check_common_first(cf, MODULE_NAME).is_err() {
                return NGX_ERROR as ngx_int_t;
            }
            crate::variables::register(cf)
        })
    }

    unsafe extern "C" fn postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
        guard((*cf).log, "postconfiguration", NGX_ERROR as ngx_int_t, || {
            let enabled_at = Module::main_conf(&*cf).and_then(|m| m.first_enabled_at.clone());
            let header = match ngx_ase_glue::conf::check_channel(cf, MODULE_NAME, "ase_request", enabled_at.as_deref()) {
                Ok(h) => h,
                Err(()) => return NGX_ERROR as ngx_int_t,
            };
            crate::handler::API.store(header.api as *mut _, core::sync::atomic::Ordering::Relaxed);
            // The check's two places: the access phase (first of its handlers, before
            // `auth_basic`, `auth_request`, `allow`/`deny`) and, with
            // `ase_request_after_access on`, the precontent phase (after every access
            // module let the request through). Each acts only where its location says.
            let Some(cmcf) = ngx::http::NgxHttpCoreModule::main_conf_mut(&*cf) else {
                return NGX_ERROR as ngx_int_t;
            };
            let phases = [
                (nginx_sys::ngx_http_phases_NGX_HTTP_ACCESS_PHASE, crate::handler::access_handler as Handler),
                (nginx_sys::ngx_http_phases_NGX_HTTP_PRECONTENT_PHASE, crate::handler::after_access_handler),
            ];
            for (phase, handler) in phases {
                let h = nginx_sys::ngx_array_push(&mut cmcf.phases[phase as usize].handlers)
                    as *mut nginx_sys::ngx_http_handler_pt;
                if h.is_null() {
                    return NGX_ERROR as ngx_int_t;
                }
                *h = Some(handler);
            }
            NGX_OK as ngx_int_t
        })
    }
}

// SAFETY: the types match what create_main_conf/create_loc_conf allocate.
unsafe impl HttpModuleMainConf for Module {
    type MainConf = MainConf;
}
unsafe impl HttpModuleLocationConf for Module {
    type LocationConf = LocConf;
}

const ANY_LEVEL: u32 = NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF;

type Handler = unsafe extern "C" fn(*mut nginx_sys::ngx_http_request_t) -> ngx_int_t;

type SetFn = unsafe extern "C" fn(*mut ngx_conf_t, *mut ngx_command_t, *mut c_void) -> *mut c_char;

const fn command(name: ngx_str_t, type_: u32, set: SetFn, offset: usize) -> ngx_command_t {
    ngx_command_t {
        name,
        type_: type_ as ngx_uint_t,
        set: Some(set),
        conf: NGX_HTTP_LOC_CONF_OFFSET as ngx_uint_t,
        offset,
        post: null_mut(),
    }
}

static mut COMMANDS: [ngx_command_t; 10] = [
    command(ngx_string!("ase_request"), ANY_LEVEL | NGX_CONF_TAKE1, crate::directives::set_request, 0),
    command(ngx_string!("ase_fail_mode"), ANY_LEVEL | NGX_CONF_TAKE1, crate::directives::set_fail_mode, 0),
    command(ngx_string!("ase_block_status"), ANY_LEVEL | NGX_CONF_TAKE1, crate::directives::set_block_status, 0),
    command(ngx_string!("ase_user_header"), ANY_LEVEL | NGX_CONF_TAKE1, crate::directives::set_user_header, 0),
    command(ngx_string!("ase_user"), ANY_LEVEL | NGX_CONF_TAKE1, crate::directives::set_user, 0),
    command(ngx_string!("ase_client_id"), ANY_LEVEL | NGX_CONF_TAKE1, crate::directives::set_client_id, 0),
    command(ngx_string!("ase_request_after_access"), ANY_LEVEL | NGX_CONF_FLAG, nginx_sys::ngx_conf_set_flag_slot,
        offset_of!(LocConf, after_access)),
    command(ngx_string!("ase_hide_header"), ANY_LEVEL | NGX_CONF_1MORE, crate::directives::set_hide_header, 0),
    command(ngx_string!("ase_request_max_size"), ANY_LEVEL | NGX_CONF_TAKE1, crate::directives::set_max_size,
        offset_of!(LocConf, max_size)),
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
    merge_loc_conf: Some(Module::merge_loc_conf),
};

#[cfg(feature = "export-modules")]
ngx::ngx_modules!(ngx_http_ase_request_module);

#[used]
#[allow(non_upper_case_globals)]
#[cfg_attr(not(feature = "export-modules"), no_mangle)]
pub static mut ngx_http_ase_request_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(MODULE_CTX) as _,
    commands: unsafe { addr_of!(COMMANDS[0]) as *mut _ },
    type_: NGX_HTTP_MODULE as _,
    ..ngx_module_t::default()
};
