//! The request module's directives: a safe setter each, which the directive table's rows
//! (`module.rs`) hand to `ngx_ase_glue::directive::set_by_post`.

use nginx_sys::{ngx_conf_set_size_slot, ngx_http_complex_value_t};
use ngx::http::HttpModuleMainConf;
use ngx_ase_glue::directive::{ConfError, Directive};
use ngx_ase_glue::module::note_switch;
use ngx_ase_glue::values::UNSET_UINT;
use ngx_ase_shared::header_names;

use crate::conf::{
    check_max_size, check_value_slot, parse_block_status, parse_fail_mode, parse_fail_status, parse_request_mode,
    user_header_variable, FailMode, LocConf, PerRequestValue,
};
use crate::Module;

/// `ase_request on|off|monitor`, noting where it is (for the response module's warning)
/// and where it was first on or monitor (for the "no ase_server" error).
pub fn request(conf: &mut LocConf, d: &Directive) -> Result<(), ConfError> {
    let is_set = conf.mode.is_some();
    d.set_once(&mut conf.mode, is_set, parse_request_mode(d.arg()).map(Some))?;
    conf.mode_at = Some(note_switch(d, conf.mode().sends_metadata(), Module::main_conf_mut(d.conf())));
    Ok(())
}

/// Sets a per-request value slot from `value`, or says why not.
fn set_value(
    d: &Directive,
    slot: &mut Option<PerRequestValue>,
    directive: &'static str,
    value: &[u8],
) -> Result<(), ConfError> {
    check_value_slot(slot, directive)?;
    *slot = Some(PerRequestValue { cv: compile(d, value)?, directive });
    Ok(())
}

/// Compiles a value with variables; nginx names the line of one it cannot compile.
fn compile(d: &Directive, value: &[u8]) -> Result<*mut ngx_http_complex_value_t, ConfError> {
    // SAFETY: the configuration nginx is reading, live while the directive is.
    unsafe { ngx_ase_glue::complex_value::compile(d.raw(), value) }.ok_or(ConfError::Logged)
}

/// `ase_user VALUE`: the username sent in `user_info` (variables allowed).
pub fn user(conf: &mut LocConf, d: &Directive) -> Result<(), ConfError> {
    set_value(d, &mut conf.user, "ase_user", d.arg())
}

/// `ase_client_id VALUE`: the OAuth client ID sent in `user_info` (variables allowed).
pub fn client_id(conf: &mut LocConf, d: &Directive) -> Result<(), ConfError> {
    set_value(d, &mut conf.client_id, "ase_client_id", d.arg())
}

/// `ase_user_header NAME`: shorthand for `ase_user $http_NAME`.
pub fn user_header(conf: &mut LocConf, d: &Directive) -> Result<(), ConfError> {
    let variable = user_header_variable(d.arg())?;
    set_value(d, &mut conf.user, "ase_user_header", variable.as_bytes())
}

/// `ase_hide_header NAME ...`: repeatable; the names add to this level's list.
pub fn hide_header(conf: &mut LocConf, d: &Directive) -> Result<(), ConfError> {
    add_header_names(d, conf.hidden.get_or_insert_with(Vec::new))
}

/// `ase_identity_header NAME ...`: repeatable; the names add to this level's list (and to
/// the enclosing levels', when merged).
pub fn identity_header(conf: &mut LocConf, d: &Directive) -> Result<(), ConfError> {
    add_header_names(d, conf.identity.get_or_insert_with(Vec::new))
}

/// Adds the directive's header names to `list`, or says which one is not a header name.
fn add_header_names(d: &Directive, list: &mut Vec<u8>) -> Result<(), ConfError> {
    for name in d.args() {
        header_names::add_name(list, name).map_err(|e| d.error(&e))?;
    }
    Ok(())
}

/// `ase_fail_mode open|closed`.
pub fn fail_mode(conf: &mut LocConf, d: &Directive) -> Result<(), ConfError> {
    let is_set = conf.fail_mode != FailMode::Unset;
    d.set_once(&mut conf.fail_mode, is_set, parse_fail_mode(d.arg()))
}

/// `ase_block_status CODE`.
pub fn block_status(conf: &mut LocConf, d: &Directive) -> Result<(), ConfError> {
    let is_set = conf.block_status != UNSET_UINT;
    d.set_once(&mut conf.block_status, is_set, parse_block_status(d.arg()))
}

/// `ase_request_max_size SIZE`: nginx's own size parser (its syntax, its "invalid value"
/// and "is duplicate" messages), then the smallest size the payload needs.
pub fn max_size(conf: &mut LocConf, d: &Directive) -> Result<(), ConfError> {
    d.nginx_slot(conf, ngx_conf_set_size_slot)?;
    check_max_size(conf.max_size)?;
    Ok(())
}

/// `ase_fail_status CODE`.
pub fn fail_status(conf: &mut LocConf, d: &Directive) -> Result<(), ConfError> {
    let is_set = conf.fail_status != UNSET_UINT;
    d.set_once(&mut conf.fail_status, is_set, parse_fail_status(d.arg()))
}

/// `ase_correlation_id VALUE`: the ID sent as `X-CorrelationID` (variables allowed).
pub fn correlation_id(conf: &mut LocConf, d: &Directive) -> Result<(), ConfError> {
    set_value(d, &mut conf.correlation_id, "ase_correlation_id", d.arg())
}

/// `ase_set_header NAME VALUE`: repeatable; the lines add to this level's list.
pub fn set_header(conf: &mut LocConf, d: &Directive) -> Result<(), ConfError> {
    let [name, value] = d.args() else { return Err(d.error("\"ase_set_header\" takes a name and a value")) };
    let cv = compile(d, value)?;
    conf.set_headers.get_or_insert_with(Default::default).add(name, cv).map_err(|e| d.error(&e))
}

/// `ase_skip VALUE ...`: repeatable; the values add to this level's list.
pub fn skip(conf: &mut LocConf, d: &Directive) -> Result<(), ConfError> {
    for value in d.args() {
        let cv = compile(d, value)?;
        conf.skip.get_or_insert_with(Vec::new).push(cv);
    }
    Ok(())
}
