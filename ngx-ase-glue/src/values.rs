//! nginx's conventions for directive values, in plain Rust (no nginx call, so the modules'
//! safe settings files and the fuzz crate use them too): the "not set" markers nginx's slot
//! functions expect, `ngx_conf_merge_*_value` / `ngx_conf_init_*_value`, and the wording of
//! a configuration error.

use nginx_sys::{ngx_flag_t, ngx_msec_t, ngx_uint_t};

/// `NGX_CONF_UNSET`, which `ngx_conf_set_flag_slot` expects in an unset flag.
pub const UNSET_FLAG: ngx_flag_t = -1;
/// `NGX_CONF_UNSET_UINT` (`ngx_conf_set_num_slot`).
pub const UNSET_UINT: ngx_uint_t = ngx_uint_t::MAX;
/// `NGX_CONF_UNSET_MSEC` (`ngx_conf_set_msec_slot`).
pub const UNSET_MSEC: ngx_msec_t = ngx_msec_t::MAX;
/// `NGX_CONF_UNSET_SIZE` (`ngx_conf_set_size_slot`).
pub const UNSET_SIZE: usize = usize::MAX;

/// nginx's `ngx_conf_init_*_value`: unset takes the default.
pub fn init<T: PartialEq + Copy>(value: &mut T, unset: T, default: T) {
    if *value == unset {
        *value = default;
    }
}

/// nginx's `ngx_conf_merge_*_value`: unset takes the parent's value, else the default.
pub fn merge<T: PartialEq + Copy>(value: &mut T, parent: T, unset: T, default: T) {
    if *value == unset {
        *value = if parent == unset { default } else { parent };
    }
}

/// An unset `Option` takes the parent's value (no default: `None` is one).
pub fn merge_option<T: Clone>(value: &mut Option<T>, parent: &Option<T>) {
    if value.is_none() {
        value.clone_from(parent);
    }
}

/// nginx's own words for a value a directive does not take:
/// `invalid value "shut" in "ase_fail_mode" directive, it must be "open" or "closed"`.
pub fn invalid_value(directive: &str, raw: &[u8], must: &str) -> String {
    format!("invalid value \"{}\" in \"{directive}\" directive, it must be {must}", String::from_utf8_lossy(raw))
}

/// A problem with a directive's arguments in nginx's words: `what` followed by
/// ` in "DIRECTIVE" directive` (nginx then appends ` in FILE:LINE`).
pub fn in_directive(what: &str, directive: &str) -> String {
    format!("{what} in \"{directive}\" directive")
}

/// A directive given twice at one level: nginx's own message.
pub fn duplicate(directive: &str) -> String {
    format!("\"{directive}\" directive is duplicate")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_and_init_as_nginx_does() {
        let mut v = UNSET_MSEC;
        merge(&mut v, 900, UNSET_MSEC, 500);
        assert_eq!(v, 900);
        let mut v = UNSET_MSEC;
        merge(&mut v, UNSET_MSEC, UNSET_MSEC, 500);
        assert_eq!(v, 500);
        let mut v = 7;
        merge(&mut v, 900, UNSET_MSEC, 500);
        init(&mut v, UNSET_MSEC, 1);
        assert_eq!(v, 7);
        let mut f = UNSET_FLAG;
        init(&mut f, UNSET_FLAG, 1);
        assert_eq!(f, 1);
        let mut o = None;
        merge_option(&mut o, &Some(3));
        assert_eq!(o, Some(3));
    }

    #[test]
    fn nginx_words() {
        assert_eq!(
            invalid_value("ase_fail_mode", b"shut", "\"open\" or \"closed\""),
            "invalid value \"shut\" in \"ase_fail_mode\" directive, it must be \"open\" or \"closed\""
        );
        assert_eq!(in_directive("invalid port", "ase_server"), "invalid port in \"ase_server\" directive");
        assert_eq!(duplicate("ase_zone"), "\"ase_zone\" directive is duplicate");
    }
}
