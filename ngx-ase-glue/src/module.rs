//! The pieces every ngx-ase module's declaration is made of: the directive table's entries,
//! the http-level bookkeeping of a module that is switched on per location, and the
//! guarded entry points nginx calls while it reads the configuration.

use core::ffi::{c_char, c_void};
use core::ptr::null_mut;

use nginx_sys::{
    ngx_command_t, ngx_conf_t, ngx_int_t, ngx_uint_t, NGX_ERROR, NGX_HTTP_LOC_CONF, NGX_HTTP_LOC_CONF_OFFSET,
    NGX_HTTP_MAIN_CONF, NGX_HTTP_MAIN_CONF_OFFSET, NGX_HTTP_SRV_CONF,
};

use crate::conf::conf_error;
use crate::directive::Directive;
use crate::panic::guard;

/// A directive allowed in `http`, `server` and `location` blocks.
pub const ANY_LEVEL: u32 = NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF;
/// The directive sets the module's location configuration (`cmd->conf`).
pub const LOC_CONF: usize = NGX_HTTP_LOC_CONF_OFFSET;
/// The directive sets the module's http main configuration (`cmd->conf`).
pub const MAIN_CONF: usize = NGX_HTTP_MAIN_CONF_OFFSET;

/// A directive callback, as nginx calls it.
pub type SetFn = unsafe extern "C" fn(*mut ngx_conf_t, *mut ngx_command_t, *mut c_void) -> *mut c_char;

/// One entry of a directive table: `type_` the levels and argument count, `conf` which
/// configuration it sets ([`LOC_CONF`], [`MAIN_CONF`]), `offset` the field for nginx's own
/// slot functions (0 for our callbacks, which know their field).
pub const fn command(name: nginx_sys::ngx_str_t, type_: u32, set: SetFn, conf: usize, offset: usize) -> ngx_command_t {
    ngx_command_t {
        name,
        type_: type_ as ngx_uint_t,
        set: Some(set),
        conf: conf as ngx_uint_t,
        offset,
        post: null_mut(),
    }
}

/// The http-level bookkeeping of a module switched on per location (`ase_request`,
/// `ase_response`): checks that need the whole `http` block read this.
#[derive(Debug, Default)]
pub struct MainConf {
    /// "FILE:LINE" of the first directive that switched the module on, for the "on but no
    /// ase_server" error.
    pub first_enabled_at: Option<String>,
    /// The lines already named by a warning (one warning per configuration line).
    pub warned_at: Vec<String>,
}

impl MainConf {
    /// Notes `at` when it is the first place the module is switched on.
    pub fn note_enabled(&mut self, at: &str) {
        self.first_enabled_at.get_or_insert_with(|| at.to_string());
    }

    /// Whether a warning naming `at` is still to be said (and notes it as said).
    pub fn first_warning_at(&mut self, at: &str) -> bool {
        let first = !self.warned_at.iter().any(|w| w == at);
        if first {
            self.warned_at.push(at.to_string());
        }
        first
    }
}

/// A directive callback's (or a merge's) body: a panic becomes a configuration error.
///
/// # Safety
/// `cf` must be the live `ngx_conf_t` nginx passed.
pub unsafe fn guard_conf(cf: *mut ngx_conf_t, f: impl FnOnce() -> *mut c_char) -> *mut c_char {
    // SAFETY: `cf` is live (the caller's promise).
    let log = unsafe { (*cf).log };
    guard(log, "configuration", conf_error(), f)
}

/// A pre- or postconfiguration hook's body (`what` names it): a panic fails the
/// configuration, as an `Err` does.
///
/// # Safety
/// `cf` must be the live `ngx_conf_t` nginx passed.
pub unsafe fn guard_hook(cf: *mut ngx_conf_t, what: &str, f: impl FnOnce() -> Result<(), ()>) -> ngx_int_t {
    // SAFETY: `cf` is live (the caller's promise).
    let log = unsafe { (*cf).log };
    match guard(log, what, Err(()), f) {
        Ok(()) => nginx_sys::NGX_OK as ngx_int_t,
        Err(()) => NGX_ERROR as ngx_int_t,
    }
}

/// Where a directive that switches a module on or off (`ase_request`, `ase_response`)
/// stands; when it turns the module `on`, the place is noted in `main` too.
pub fn note_switch(d: &Directive, on: bool, main: Option<&mut MainConf>) -> String {
    let here = d.position();
    if let (true, Some(main)) = (on, main) {
        main.note_enabled(&here);
    }
    here
}

/// Declares an HTTP module's `ngx_module_t` under its nginx name, from its context and
/// directive table (`static`s of the calling crate), with any further fields (the common
/// module's `init_process`, `exit_process`). A loadable module (`export-modules`, the
/// default) also exports nginx's `ngx_modules` list; the static build (`ngx-ase-static`)
/// finds the module by its unmangled name instead.
#[macro_export]
#[allow(edition_2024_expr_fragment_specifier)] // either edition's `expr` reads these alike
macro_rules! http_module {
    ($name:ident, $ctx:ident, $commands:ident $(, $field:ident: $value:expr)* $(,)?) => {
        #[cfg(feature = "export-modules")]
        ::ngx::ngx_modules!($name);

        #[used]
        #[allow(non_upper_case_globals)]
        #[cfg_attr(not(feature = "export-modules"), unsafe(no_mangle))]
        pub static mut $name: ::nginx_sys::ngx_module_t = ::nginx_sys::ngx_module_t {
            ctx: ::core::ptr::addr_of!($ctx) as _,
            // SAFETY: only the table's address is taken; nginx reads it at configuration.
            commands: unsafe { ::core::ptr::addr_of!($commands[0]) as *mut _ },
            type_: ::nginx_sys::NGX_HTTP_MODULE as _,
            $($field: $value,)*
            ..::nginx_sys::ngx_module_t::default()
        };
    };
}
