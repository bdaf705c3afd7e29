//! One directive callback for every directive of the three modules, as nginx's own slot
//! functions are one per kind: the table row names a safe setter through `cmd->post`, and
//! [`set_by_post`] casts the configuration, hands the setter the directive's arguments and
//! logs its error with nginx's " in FILE:LINE". A directive is then a table row and a safe
//! fn; the unsafe code that knows nginx's types is here, once.

use core::ffi::{c_char, c_void};

use nginx_sys::{
    ngx_command_t, ngx_conf_set_msec_slot, ngx_conf_t, ngx_msec_t, ngx_uint_t, NGX_LOG_EMERG, NGX_LOG_WARN,
};

use crate::conf::{conf_error, conf_ok, current_position, directive_args, log_conf};
use crate::module::{guard_conf, SetFn};
use crate::values::{duplicate, in_directive};

/// Why a directive is refused.
#[derive(Debug)]
pub enum ConfError {
    /// Logged as `emerg` at the directive's line (nginx appends " in FILE:LINE").
    Message(String),
    /// Already logged: by nginx (an unknown variable), or by us naming another line.
    Logged,
    /// The return value of nginx's own slot function (its message, or `NGX_CONF_ERROR`),
    /// handed back to nginx, which words it as for its own directives.
    Nginx(*mut c_char),
}

impl From<String> for ConfError {
    fn from(msg: String) -> Self {
        ConfError::Message(msg)
    }
}

/// A directive's safe setter: the configuration of its level (`cmd->conf`) and the line.
pub type SetterFn<C> = fn(&mut C, &Directive<'_>) -> Result<(), ConfError>;

/// What `cmd->post` points at: a `static` (or a promoted constant) holding the setter.
pub struct Setter<C>(pub SetterFn<C>);

/// The directive line being read, for its setter.
pub struct Directive<'a> {
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    args: Vec<&'a [u8]>,
    name: String,
}

impl<'a> Directive<'a> {
    /// The arguments after the directive's name (nginx has checked their number against
    /// the row's `NGX_CONF_TAKE*` flags).
    pub fn args(&self) -> &[&'a [u8]] {
        &self.args
    }

    /// The first argument; empty where there is none (a row without arguments).
    pub fn arg(&self) -> &'a [u8] {
        self.args.first().copied().unwrap_or_default()
    }

    /// The directive's name, as written in the configuration.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the line stands, as "FILE:LINE", for messages about it said later.
    pub fn position(&self) -> String {
        // SAFETY: `cf` is nginx's, live while the directive is read (`set_by_post`).
        unsafe { current_position(self.cf) }
    }

    /// `what` in nginx's words for this directive: `what in "NAME" directive`.
    pub fn error(&self, what: &str) -> ConfError {
        ConfError::Message(in_directive(what, &self.name))
    }

    /// nginx's "is duplicate" for this directive.
    pub fn duplicate(&self) -> ConfError {
        ConfError::Message(duplicate(&self.name))
    }

    /// A value that may be given once per level: `is_set` says whether it already was,
    /// `parsed` is the value or the message.
    pub fn set_once<T>(&self, slot: &mut T, is_set: bool, parsed: Result<T, String>) -> Result<(), ConfError> {
        if is_set {
            return Err(self.duplicate());
        }
        *slot = parsed?;
        Ok(())
    }

    /// The `NAME SIZE` of a shared memory zone directive (`ase_zone`, `ase_cache_zone`): a
    /// name, and a size in nginx's syntax (`64k`, `1m`).
    pub fn zone_args(&self) -> Result<(&'a [u8], usize), ConfError> {
        let [name, size_text] = self.args() else { return Err(self.error("invalid number of arguments")) };
        if name.is_empty() {
            return Err(self.error("the zone needs a name"));
        }
        let mut raw = nginx_sys::ngx_str_t { len: size_text.len(), data: size_text.as_ptr() as *mut u8 };
        // SAFETY: nginx only reads the `len` bytes of `raw`, which `size_text` holds.
        let size = unsafe { nginx_sys::ngx_parse_size(&mut raw) };
        let invalid = || self.error(&format!("invalid size \"{}\"", String::from_utf8_lossy(size_text)));
        Ok((name, usize::try_from(size).map_err(|_| invalid())?))
    }

    /// Logs a warning about this line (nginx appends " in FILE:LINE").
    pub fn warn(&self, msg: &str) {
        // SAFETY: as in `position`.
        unsafe { log_conf(self.cf, NGX_LOG_WARN, msg) }
    }

    /// nginx's configuration being read, for its own lookups (`ngx::http` configurations).
    pub fn conf(&self) -> &ngx_conf_t {
        // SAFETY: as in `position`; nginx does not move it while the directive is read.
        unsafe { &*self.cf }
    }

    /// The raw `ngx_conf_t`, for the thin unsafe layers that call nginx (file names,
    /// compiled values, shared memory, nested blocks). Live while the directive is read.
    pub fn raw(&self) -> *mut ngx_conf_t {
        self.cf
    }

    /// Runs nginx's own slot function (`ngx_conf_set_size_slot`, `..._flag_slot`) on the
    /// row's `offset` field of `conf`: its syntax and its messages, our checks after.
    pub fn nginx_slot<C>(&self, conf: &mut C, slot: SetFn) -> Result<(), ConfError> {
        // nginx's slots read a non-null `cmd->post` as their own `ngx_conf_post_t` and call
        // it: they get the row without our setter.
        // SAFETY: `cmd` is nginx's, live for the call.
        let mut row = unsafe { *self.cmd };
        row.post = core::ptr::null_mut();
        // SAFETY: `cf` is nginx's, live for the call; `conf` is the row's own
        // configuration, whose `offset` field is of the kind `slot` writes (the row says
        // both with `offset_of!` next to the slot's setter).
        let rv = unsafe { slot(self.cf, &mut row, (conf as *mut C).cast()) };
        if rv.is_null() {
            Ok(())
        } else {
            Err(ConfError::Nginx(rv))
        }
    }

    /// [`Directive::nginx_slot`] with `ngx_conf_set_msec_slot`, giving the time it read.
    pub fn msec_slot<C>(&self, conf: &mut C) -> Result<ngx_msec_t, ConfError> {
        self.nginx_slot(conf, ngx_conf_set_msec_slot)?;
        // SAFETY: `cmd` is nginx's, live for the call; its `offset` names the `ngx_msec_t`
        // field of `conf` that nginx's slot has just written (as for `nginx_slot`).
        unsafe { Ok(*(conf as *mut C).cast::<u8>().add((*self.cmd).offset).cast::<ngx_msec_t>()) }
    }
}

/// The directive callback of every row built by [`directive`]: `C` is the configuration
/// of the row's level (`cmd->conf`), `cmd->post` its [`Setter`].
///
/// # Safety
/// nginx's arguments to a directive callback, for a row built by [`directive`] with the
/// same `C`.
pub unsafe extern "C" fn set_by_post<C>(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx's arguments, live for the call; `cmd->post` is the row's `Setter<C>`
    // and `conf` the configuration of the row's level, a `C` (see `directive`).
    unsafe {
        guard_conf(cf, || {
            let (Some(setter), Some(conf)) = (((*cmd).post as *const Setter<C>).as_ref(), conf.cast::<C>().as_mut())
            else {
                log_conf(cf, NGX_LOG_EMERG, "internal error: a directive without its setter or configuration");
                return conf_error();
            };
            let args = directive_args(cf);
            let name = String::from_utf8_lossy((*cmd).name.as_bytes()).into_owned();
            let line = Directive { cf, cmd, args, name };
            match (setter.0)(conf, &line) {
                Ok(()) => conf_ok(),
                Err(ConfError::Message(msg)) => {
                    log_conf(cf, NGX_LOG_EMERG, &msg);
                    conf_error()
                }
                Err(ConfError::Logged) => conf_error(),
                Err(ConfError::Nginx(rv)) => rv,
            }
        })
    }
}

/// A directive table row whose callback is [`set_by_post`] with `setter` in `cmd->post`:
/// `type_` the levels and argument count, `conf` which configuration `C` is
/// (`LOC_CONF`, `MAIN_CONF`), `offset` a field for [`Directive::nginx_slot`] (else 0).
pub const fn directive<C>(
    name: nginx_sys::ngx_str_t,
    type_: u32,
    conf: usize,
    offset: usize,
    setter: &'static Setter<C>,
) -> ngx_command_t {
    ngx_command_t {
        name,
        type_: type_ as ngx_uint_t,
        set: Some(set_by_post::<C>),
        conf: conf as ngx_uint_t,
        offset,
        post: setter as *const Setter<C> as *mut c_void,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line as the setters see it; these tests use none of nginx's state.
    fn line<'a>(name: &str, args: &[&'a [u8]]) -> Directive<'a> {
        Directive { cf: core::ptr::null_mut(), cmd: core::ptr::null_mut(), args: args.to_vec(), name: name.into() }
    }

    fn message(e: ConfError) -> String {
        match e {
            ConfError::Message(m) => m,
            other => panic!("not a message: {other:?}"),
        }
    }

    #[test]
    fn errors_are_in_nginxs_words_for_the_directive() {
        let d = line("ase_zone", &[b"ase", b"1m"]);
        assert_eq!((d.arg(), d.args().len(), d.name()), (&b"ase"[..], 2, "ase_zone"));
        assert_eq!(message(d.error("the zone needs a name")), "the zone needs a name in \"ase_zone\" directive");
        assert_eq!(message(d.duplicate()), "\"ase_zone\" directive is duplicate");
        assert_eq!(line("ase_status", &[]).arg(), b"");
    }

    #[test]
    fn a_value_is_set_once_and_a_refused_one_leaves_the_slot_alone() {
        let d = line("ase_fail_mode", &[b"open"]);
        let mut slot = 0;
        d.set_once(&mut slot, false, Ok(7)).unwrap();
        assert_eq!(slot, 7);
        assert_eq!(
            message(d.set_once(&mut slot, true, Ok(8)).unwrap_err()),
            "\"ase_fail_mode\" directive is duplicate"
        );
        assert_eq!(message(d.set_once(&mut slot, false, Err("bad".into())).unwrap_err()), "bad");
        assert_eq!(slot, 7);
    }
}
