//! `ase_skip VALUE ...`: no check where any value is set and not "0" (as nginx's
//! `proxy_cache_bypass`). A skipped request sends nothing to the ASE, so no response report
//! either: the ASE could pair it with no check.

/// Whether one evaluated value asks for the skip.
pub fn says_skip(value: &[u8]) -> bool {
    !value.is_empty() && value != b"0"
}

/// Whether request `r` skips the check here.
///
/// # Safety
/// `r` is a live request; `values` were compiled for its configuration.
#[cfg(not(test))]
pub unsafe fn requested(
    r: *mut nginx_sys::ngx_http_request_t,
    values: &[*mut nginx_sys::ngx_http_complex_value_t],
) -> bool {
    // SAFETY: as the caller promises.
    values.iter().any(|&cv| unsafe { ngx_ase_glue::complex_value::evaluate(r, cv) }.is_some_and(says_skip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_not_zero() {
        assert!(says_skip(b"1") && says_skip(b"OPTIONS") && says_skip(b"00"));
        assert!(!says_skip(b"") && !says_skip(b"0"));
    }
}
