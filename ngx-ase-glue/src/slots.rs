//! nginx's slot functions with the bounds our arithmetic needs, as safe setters for
//! [`crate::directive`]: nginx parses the value (its syntax, its "invalid value" and "is
//! duplicate"), then the bound is checked and refused at the directive's line.

use crate::directive::{ConfError, Directive};
use crate::time::{timer_too_long, MAX_TIMER_MS};

/// `ngx_conf_set_msec_slot` for a time that becomes one of our timers: at most
/// [`MAX_TIMER_MS`]. Its rows give the `ngx_msec_t` field as their `offset`.
pub fn timer_msec<C>(conf: &mut C, d: &Directive) -> Result<(), ConfError> {
    let ms = d.msec_slot(conf)?;
    if ms as u64 <= MAX_TIMER_MS {
        Ok(())
    } else {
        Err(ConfError::Message(timer_too_long(d.name(), d.arg())))
    }
}
