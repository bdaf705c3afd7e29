//! The nginx module declaration (unsafe glue): module table, directives, context.
//! Not compiled into unit-test binaries, which run without nginx's symbols.

use core::ffi::{c_char, c_void};
use core::mem::offset_of;
use core::ptr::addr_of;

use nginx_sys::{
    ngx_command_t, ngx_conf_set_flag_slot, ngx_conf_set_num_slot, ngx_conf_set_str_slot, ngx_conf_t, ngx_http_module_t,
    ngx_module_t, NGX_CONF_1MORE, NGX_CONF_BLOCK, NGX_CONF_FLAG, NGX_CONF_NOARGS, NGX_CONF_TAKE1, NGX_CONF_TAKE2,
    NGX_HTTP_LOC_CONF, NGX_HTTP_MAIN_CONF,
};
use ngx::http::{HttpModule, HttpModuleLocationConf, HttpModuleMainConf};
use ngx::ngx_string;
use ngx_ase_glue::directive::{directive, Setter};
use ngx_ase_glue::module::{command, ANY_LEVEL, LOC_CONF, MAIN_CONF};
use ngx_ase_glue::slots::timer_msec;

use ngx_ase_shared::abi::CommonMainHeader;

use crate::channel_api::CHANNEL_API;
use crate::conf::directives as set;
use crate::conf::{LocConf, MainConf};

pub struct Module;

impl HttpModule for Module {
    fn module() -> &'static ngx_module_t {
        // SAFETY: nginx only writes the module table (indices) before workers start.
        unsafe { &*addr_of!(ngx_ase_common_module) }
    }

    /// As ngx's default (the `Default` value in the configuration's pool), with the channel
    /// table noted in the header the other modules read.
    unsafe extern "C" fn create_main_conf(cf: *mut ngx_conf_t) -> *mut c_void {
        let conf = MainConf { header: CommonMainHeader { api: &CHANNEL_API, server_count: 0 }, ..MainConf::default() };
        // SAFETY: nginx passes a live configuration whose pool outlives the cycle.
        unsafe { ngx::core::Pool::from_ngx_pool((*cf).pool).allocate(conf).cast() }
    }

    unsafe extern "C" fn init_main_conf(cf: *mut ngx_conf_t, conf: *mut c_void) -> *mut c_char {
        // SAFETY: nginx's arguments, passed on.
        unsafe { crate::conf::directives::init_main_conf(cf, conf) }
    }

    unsafe extern "C" fn merge_loc_conf(cf: *mut ngx_conf_t, prev: *mut c_void, conf: *mut c_void) -> *mut c_char {
        // SAFETY: nginx's arguments, passed on.
        unsafe { crate::conf::directives::merge_loc_conf(cf, prev, conf) }
    }
}

// SAFETY: the types match what create_main_conf/create_loc_conf allocate.
unsafe impl HttpModuleMainConf for Module {
    type MainConf = MainConf;
}
unsafe impl HttpModuleLocationConf for Module {
    type LocationConf = LocConf;
}

const HTTP: u32 = NGX_HTTP_MAIN_CONF;

static mut COMMANDS: [ngx_command_t; 23] = [
    directive(ngx_string!("ase_server"), HTTP | NGX_CONF_1MORE, MAIN_CONF, 0, &Setter(set::server)),
    directive(
        ngx_string!("ase_upstream"),
        HTTP | NGX_CONF_BLOCK | NGX_CONF_TAKE1,
        MAIN_CONF,
        0,
        &Setter(set::upstream),
    ),
    directive(ngx_string!("ase_pass"), ANY_LEVEL | NGX_CONF_TAKE1, LOC_CONF, 0, &Setter(set::pass)),
    directive(
        ngx_string!("ase_latency_guard"),
        HTTP | NGX_CONF_TAKE1 | NGX_CONF_TAKE2,
        MAIN_CONF,
        0,
        &Setter(set::latency_guard),
    ),
    directive(ngx_string!("ase_mirror"), ANY_LEVEL | NGX_CONF_TAKE1, LOC_CONF, 0, &Setter(set::mirror)),
    directive(ngx_string!("ase_token_file"), HTTP | NGX_CONF_TAKE1, MAIN_CONF, 0, &Setter(set::token_file)),
    directive(ngx_string!("ase_token"), HTTP | NGX_CONF_TAKE1, MAIN_CONF, 0, &Setter(set::token)),
    directive(
        ngx_string!("ase_connect_timeout"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        LOC_CONF,
        offset_of!(LocConf, connect_timeout),
        &Setter(timer_msec::<LocConf>),
    ),
    directive(
        ngx_string!("ase_timeout"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        LOC_CONF,
        offset_of!(LocConf, timeout),
        &Setter(timer_msec::<LocConf>),
    ),
    command(
        ngx_string!("ase_keepalive"),
        HTTP | NGX_CONF_TAKE1,
        ngx_conf_set_num_slot,
        MAIN_CONF,
        offset_of!(MainConf, keepalive),
    ),
    directive(
        ngx_string!("ase_keepalive_timeout"),
        HTTP | NGX_CONF_TAKE1,
        MAIN_CONF,
        offset_of!(MainConf, keepalive_timeout),
        &Setter(timer_msec::<MainConf>),
    ),
    command(
        ngx_string!("ase_keepalive_requests"),
        HTTP | NGX_CONF_TAKE1,
        ngx_conf_set_num_slot,
        MAIN_CONF,
        offset_of!(MainConf, keepalive_requests),
    ),
    directive(
        ngx_string!("ase_keepalive_time"),
        HTTP | NGX_CONF_TAKE1,
        MAIN_CONF,
        offset_of!(MainConf, keepalive_time),
        &Setter(timer_msec::<MainConf>),
    ),
    command(
        ngx_string!("ase_socket_keepalive"),
        HTTP | NGX_CONF_FLAG,
        ngx_conf_set_flag_slot,
        MAIN_CONF,
        offset_of!(MainConf, socket_keepalive),
    ),
    command(
        ngx_string!("ase_ssl_verify"),
        HTTP | NGX_CONF_FLAG,
        ngx_conf_set_flag_slot,
        MAIN_CONF,
        offset_of!(MainConf, ssl_verify),
    ),
    command(
        ngx_string!("ase_ssl_trusted_certificate"),
        HTTP | NGX_CONF_TAKE1,
        ngx_conf_set_str_slot,
        MAIN_CONF,
        offset_of!(MainConf, ssl_trusted_certificate),
    ),
    directive(ngx_string!("ase_ssl_certificate"), HTTP | NGX_CONF_TAKE1, MAIN_CONF, 0, &Setter(set::ssl_certificate)),
    directive(
        ngx_string!("ase_ssl_certificate_key"),
        HTTP | NGX_CONF_TAKE1,
        MAIN_CONF,
        0,
        &Setter(set::ssl_certificate_key),
    ),
    command(
        ngx_string!("ase_response_queue"),
        HTTP | NGX_CONF_TAKE1,
        ngx_conf_set_num_slot,
        MAIN_CONF,
        offset_of!(MainConf, response_queue),
    ),
    directive(ngx_string!("ase_zone"), HTTP | NGX_CONF_TAKE2, MAIN_CONF, 0, &Setter(crate::zone::zone)),
    directive(ngx_string!("ase_status"), NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS, LOC_CONF, 0, &Setter(set::status)),
    // Sentinels: nginx stops at the first command with an empty name.
    ngx_command_t::empty(),
    ngx_command_t::empty(),
];

static MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: None,
    postconfiguration: None,
    create_main_conf: Some(Module::create_main_conf),
    init_main_conf: Some(Module::init_main_conf),
    create_srv_conf: None,
    merge_srv_conf: None,
    create_loc_conf: Some(Module::create_loc_conf),
    merge_loc_conf: Some(Module::merge_loc_conf),
};

ngx_ase_glue::http_module!(
    ngx_ase_common_module,
    MODULE_CTX,
    COMMANDS,
    init_process: Some(crate::process::init_process),
    exit_process: Some(crate::process::exit_process),
);
