//! `ase_set_header NAME VALUE`: header lines of the operator's in the metadata sent to the
//! ASE, in place of the client's lines of that name; an empty value sends none. A level
//! with any `ase_set_header` replaces the enclosing level's whole list (as nginx's
//! `proxy_set_header`).
//!
//! The lines set here go through the same filters as the client's: `ase_hide_header` wins
//! (a hidden name is never sent), and an identity name (`ase_identity_header`,
//! `Authorization`, `X-Forwarded-For`...) is never cut from a payload held to
//! `ase_request_max_size`.
//!
//! Safe Rust (the settings); `set_header_values.rs` evaluates them per request.

use nginx_sys::ngx_http_complex_value_t;
use ngx_ase_shared::header_names::{add_name, is_listed};

/// One `ase_set_header` line: the name as written, its compiled value.
#[derive(Clone, Debug)]
pub struct SetHeader {
    pub name: Vec<u8>,
    pub value: *mut ngx_http_complex_value_t,
}

/// One level's `ase_set_header` lines, and their names packed for lookups
/// (`ngx_ase_shared::header_names`).
#[derive(Clone, Debug, Default)]
pub struct SetHeaders {
    pub lines: Vec<SetHeader>,
    pub names: Vec<u8>,
}

impl SetHeaders {
    /// Adds a line, or says why not: not a header name, set twice at one level, or `Host`
    /// (the payload's `host` entry is always the host nginx routed by).
    pub fn add(&mut self, name: &[u8], value: *mut ngx_http_complex_value_t) -> Result<(), String> {
        if name.eq_ignore_ascii_case(b"host") {
            return Err("cannot set \"Host\" (the ASE is always sent the host nginx routed by)".into());
        }
        if is_listed(&self.names, name) {
            return Err(format!("header \"{}\" is set twice at one level", String::from_utf8_lossy(name)));
        }
        add_name(&mut self.names, name)?;
        self.lines.push(SetHeader { name: name.to_vec(), value });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_once_per_level() {
        let mut set = SetHeaders::default();
        set.add(b"X-Forwarded-For", core::ptr::null_mut()).unwrap();
        set.add(b"X-Api-Key", core::ptr::null_mut()).unwrap();
        assert_eq!(set.names, b"x-forwarded-for x-api-key ");
        assert!(set.add(b"x-forwarded-FOR", core::ptr::null_mut()).unwrap_err().contains("set twice"));
        assert!(set.add(b"HOST", core::ptr::null_mut()).unwrap_err().contains("routed by"));
        assert!(set.add(b"bad name", core::ptr::null_mut()).unwrap_err().contains("invalid header name"));
        assert_eq!(set.lines.len(), 2);
    }
}
