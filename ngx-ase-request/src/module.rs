//! The nginx module declaration (unsafe glue): module table, directives, context.
//! Not compiled into unit-test binaries, which run without nginx's symbols.

use core::mem::offset_of;
use core::ptr::addr_of;

use nginx_sys::{
    ngx_command_t, ngx_conf_t, ngx_http_module_t, ngx_int_t, ngx_module_t, NGX_CONF_1MORE, NGX_CONF_FLAG,
    NGX_CONF_TAKE1, NGX_CONF_TAKE2,
};
use ngx::http::{HttpModule, HttpModuleLocationConf, HttpModuleMainConf};
use ngx::ngx_string;
use ngx_ase_glue::conf::{check_channel, check_common_first};
use ngx_ase_glue::directive::{directive, Setter};
use ngx_ase_glue::module::{command, guard_hook, MainConf, ANY_LEVEL, LOC_CONF};

use crate::cache_directives as cache;
use crate::conf::LocConf;
use crate::directives as set;
use crate::MODULE_NAME;

pub struct Module;

impl HttpModule for Module {
    fn module() -> &'static ngx_module_t {
        // SAFETY: nginx only writes the module table (indices) before workers start.
        unsafe { &*addr_of!(ngx_http_ase_request_module) }
    }

    unsafe extern "C" fn preconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
        unsafe {
            guard_hook(cf, "preconfiguration", || {
                // Before the http block's directives are read: a missing common module is
                // named here, not reported as an unknown "ase_server".
                check_common_first(cf, MODULE_NAME)?;
                crate::variables::register(cf)
            })
        }
    }

    unsafe extern "C" fn postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
        unsafe {
            guard_hook(cf, "postconfiguration", || {
                let enabled_at = Module::main_conf(&*cf).and_then(|m| m.first_enabled_at.clone());
                let header = check_channel(cf, MODULE_NAME, "ase_request", enabled_at.as_deref())?;
                crate::handler::CHANNEL.set(header.api);
                // The check's two places: the access phase (first of its handlers, before
                // `auth_basic`, `auth_request`, `allow`/`deny`) and, with
                // `ase_request_after_access on`, the precontent phase (after every access
                // module let the request through). Each acts only where its location says.
                let cmcf = ngx::http::NgxHttpCoreModule::main_conf_mut(&*cf).ok_or(())?;
                let phases = [
                    (nginx_sys::ngx_http_phases_NGX_HTTP_ACCESS_PHASE, crate::handler::access_handler as Handler),
                    (nginx_sys::ngx_http_phases_NGX_HTTP_PRECONTENT_PHASE, crate::handler::after_access_handler),
                ];
                for (phase, handler) in phases {
                    let h = nginx_sys::ngx_array_push(&mut cmcf.phases[phase as usize].handlers)
                        as *mut nginx_sys::ngx_http_handler_pt;
                    if h.is_null() {
                        return Err(());
                    }
                    *h = Some(handler);
                }
                Ok(())
            })
        }
    }
}

type Handler = unsafe extern "C" fn(*mut nginx_sys::ngx_http_request_t) -> ngx_int_t;

// SAFETY: the types match what create_main_conf/create_loc_conf allocate.
unsafe impl HttpModuleMainConf for Module {
    type MainConf = MainConf;
}
unsafe impl HttpModuleLocationConf for Module {
    type LocationConf = LocConf;
}

static mut COMMANDS: [ngx_command_t; 20] = [
    directive(ngx_string!("ase_request"), ANY_LEVEL | NGX_CONF_TAKE1, LOC_CONF, 0, &Setter(set::request)),
    directive(ngx_string!("ase_fail_mode"), ANY_LEVEL | NGX_CONF_TAKE1, LOC_CONF, 0, &Setter(set::fail_mode)),
    directive(ngx_string!("ase_block_status"), ANY_LEVEL | NGX_CONF_TAKE1, LOC_CONF, 0, &Setter(set::block_status)),
    directive(ngx_string!("ase_user_header"), ANY_LEVEL | NGX_CONF_TAKE1, LOC_CONF, 0, &Setter(set::user_header)),
    directive(ngx_string!("ase_user"), ANY_LEVEL | NGX_CONF_TAKE1, LOC_CONF, 0, &Setter(set::user)),
    directive(ngx_string!("ase_client_id"), ANY_LEVEL | NGX_CONF_TAKE1, LOC_CONF, 0, &Setter(set::client_id)),
    command(
        ngx_string!("ase_request_after_access"),
        ANY_LEVEL | NGX_CONF_FLAG,
        nginx_sys::ngx_conf_set_flag_slot,
        LOC_CONF,
        offset_of!(LocConf, after_access),
    ),
    directive(ngx_string!("ase_hide_header"), ANY_LEVEL | NGX_CONF_1MORE, LOC_CONF, 0, &Setter(set::hide_header)),
    directive(
        ngx_string!("ase_identity_header"),
        ANY_LEVEL | NGX_CONF_1MORE,
        LOC_CONF,
        0,
        &Setter(set::identity_header),
    ),
    // nginx's size slot reads the value into `max_size` (see `set::max_size`).
    directive(
        ngx_string!("ase_request_max_size"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        LOC_CONF,
        offset_of!(LocConf, max_size),
        &Setter(set::max_size),
    ),
    directive(ngx_string!("ase_fail_status"), ANY_LEVEL | NGX_CONF_TAKE1, LOC_CONF, 0, &Setter(set::fail_status)),
    directive(ngx_string!("ase_correlation_id"), ANY_LEVEL | NGX_CONF_TAKE1, LOC_CONF, 0, &Setter(set::correlation_id)),
    directive(ngx_string!("ase_set_header"), ANY_LEVEL | NGX_CONF_TAKE2, LOC_CONF, 0, &Setter(set::set_header)),
    directive(ngx_string!("ase_skip"), ANY_LEVEL | NGX_CONF_1MORE, LOC_CONF, 0, &Setter(set::skip)),
    // The verdict cache (`cache_directives.rs`, `cache_zone.rs`).
    directive(
        ngx_string!("ase_cache_zone"),
        nginx_sys::NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE2,
        LOC_CONF,
        0,
        &Setter(crate::cache_zone::cache_zone),
    ),
    directive(ngx_string!("ase_cache"), ANY_LEVEL | NGX_CONF_TAKE1, LOC_CONF, 0, &Setter(cache::cache)),
    directive(ngx_string!("ase_cache_key"), ANY_LEVEL | NGX_CONF_TAKE1, LOC_CONF, 0, &Setter(cache::cache_key)),
    directive(ngx_string!("ase_cache_valid"), ANY_LEVEL | NGX_CONF_TAKE2, LOC_CONF, 0, &Setter(cache::cache_valid)),
    directive(
        ngx_string!("ase_cache_use_stale"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        LOC_CONF,
        0,
        &Setter(cache::cache_use_stale),
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
    merge_loc_conf: Some(Module::merge_loc_conf),
};

ngx_ase_glue::http_module!(ngx_http_ase_request_module, MODULE_CTX, COMMANDS);
