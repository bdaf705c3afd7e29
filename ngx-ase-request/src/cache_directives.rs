//! The verdict cache's directives (`ase_cache_zone` is in `cache_zone.rs`): a safe setter
//! each, which the directive table's rows (`module.rs`) hand to
//! `ngx_ase_glue::directive::set_by_post`.

use ngx_ase_glue::directive::{ConfError, Directive};

use crate::cache_conf::{parse_cache_time, parse_valid_verdict};
use crate::conf::LocConf;

/// `ase_cache NAME | off`: the zone must be defined above (`ase_cache_zone`).
pub fn cache(conf: &mut LocConf, d: &Directive) -> Result<(), ConfError> {
    if conf.cache.zone.is_some() {
        return Err(d.duplicate());
    }
    let zone = if d.arg() == b"off" {
        core::ptr::null_mut()
    } else {
        // SAFETY: the configuration nginx is reading, live while the directive is.
        unsafe { crate::cache_zone::find(d.raw(), d.arg()) }.map_err(|e| d.error(&e))?
    };
    conf.cache.zone = Some(zone);
    Ok(())
}

/// `ase_cache_key VALUE` (variables allowed).
pub fn cache_key(conf: &mut LocConf, d: &Directive) -> Result<(), ConfError> {
    if conf.cache.key.is_some() {
        return Err(d.duplicate());
    }
    if d.arg().is_empty() {
        return Err(d.error("empty key"));
    }
    // SAFETY: the configuration nginx is reading, live while the directive is.
    let cv = unsafe { ngx_ase_glue::complex_value::compile(d.raw(), d.arg()) }.ok_or(ConfError::Logged)?;
    conf.cache.key = Some(cv);
    Ok(())
}

/// `ase_cache_valid allow|block TIME`: once per verdict and level.
pub fn cache_valid(conf: &mut LocConf, d: &Directive) -> Result<(), ConfError> {
    let [verdict, time] = d.args() else { return Err(d.error("invalid number of arguments")) };
    let verdict = parse_valid_verdict(verdict)?;
    let ms = parse_cache_time("ase_cache_valid", time)?;
    let (slot, is_set) = conf.cache.valid_slot(verdict);
    d.set_once(slot, is_set, Ok(ms))
}

/// `ase_cache_use_stale TIME` (0 is off).
pub fn cache_use_stale(conf: &mut LocConf, d: &Directive) -> Result<(), ConfError> {
    let is_set = conf.cache.use_stale_is_set();
    d.set_once(&mut conf.cache.use_stale_ms, is_set, parse_cache_time("ase_cache_use_stale", d.arg()))
}
