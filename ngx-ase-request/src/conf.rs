//! The request module's settings: parsing, defaults and inheritance, in safe Rust.

use nginx_sys::{ngx_flag_t, ngx_uint_t};
use ngx::http::{Merge, MergeConfigError};

pub const UNSET_FLAG: ngx_flag_t = -1;
pub const UNSET_UINT: ngx_uint_t = ngx_uint_t::MAX;
pub const DEFAULT_BLOCK_STATUS: ngx_uint_t = 403;
/// nginx's `NGX_CONF_UNSET_SIZE`, which `ngx_conf_set_size_slot` expects in an unset field.
pub const UNSET_SIZE: usize = usize::MAX;
/// `ase_request_max_size`'s default: the most bytes of JSON a request's metadata takes.
pub const DEFAULT_MAX_SIZE: usize = 64 * 1024;
/// The smallest `ase_request_max_size`: room for every field but the headers, with a URL of
/// several hundred bytes (see `payload.rs`).
pub const MIN_MAX_SIZE: usize = 1024;

/// What an ASE error (timeout, refused, bad answer, ...) means for the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailMode {
    Unset,
    /// Let the request through (the default), counted and logged.
    Open,
    /// Answer 503.
    Closed,
}

pub fn parse_fail_mode(raw: &[u8]) -> Result<FailMode, String> {
    if raw.eq_ignore_ascii_case(b"open") {
        Ok(FailMode::Open)
    } else if raw.eq_ignore_ascii_case(b"closed") {
        Ok(FailMode::Closed)
    } else {
        Err(format!(
            "invalid value \"{}\" in \"ase_fail_mode\" directive, it must be \"open\" or \"closed\"",
            String::from_utf8_lossy(raw)
        ))
    }
}

/// `ase_block_status`: a 4xx or 5xx status, as nginx's `return` would send it.
pub fn parse_block_status(raw: &[u8]) -> Result<ngx_uint_t, String> {
    let text = String::from_utf8_lossy(raw);
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    match text.parse::<ngx_uint_t>() {
        Ok(n) if digits && (400..=599).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid value \"{text}\" in \"ase_block_status\" directive, it must be a status code from 400 to 599"
        )),
    }
}

/// `ase_user_header`: a header name (compared case-insensitively, stored lower-case).
pub fn parse_user_header(raw: &[u8]) -> Result<Vec<u8>, String> {
    let valid = !raw.is_empty()
        && raw.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(raw.to_ascii_lowercase())
    } else {
        Err(format!(
            "invalid header name \"{}\" in \"ase_user_header\" directive",
            String::from_utf8_lossy(raw)
        ))
    }
}

/// `ase_request_max_size`, once nginx's size parser has read it.
pub fn check_max_size(size: usize) -> Result<usize, String> {
    if size < MIN_MAX_SIZE {
        Err(format!("\"ase_request_max_size\" must be at least 1k ({MIN_MAX_SIZE} bytes), not {size}"))
    } else {
        Ok(size)
    }
}

/// http-level bookkeeping for checks that need the whole `http` block.
#[derive(Debug, Default)]
pub struct MainConf {
    /// "FILE:LINE" of the first `ase_request on`, for the "no ase_server" error.
    pub first_enabled_at: Option<String>,
}

/// http/server/location settings.
#[derive(Debug)]
pub struct LocConf {
    pub enabled: ngx_flag_t,
    pub fail_mode: FailMode,
    pub block_status: ngx_uint_t,
    /// Lower-cased header name; `None` = unset, `Some(empty)` never happens.
    pub user_header: Option<Vec<u8>>,
    /// `ase_request_max_size` in bytes (`UNSET_SIZE` until merged).
    pub max_size: usize,
}

impl Default for LocConf {
    fn default() -> Self {
        LocConf {
            enabled: UNSET_FLAG,
            fail_mode: FailMode::Unset,
            block_status: UNSET_UINT,
            user_header: None,
            max_size: UNSET_SIZE,
        }
    }
}

impl LocConf {
    pub fn is_enabled(&self) -> bool {
        self.enabled == 1
    }
}

impl Merge for LocConf {
    fn merge(&mut self, prev: &LocConf) -> Result<(), MergeConfigError> {
        if self.enabled == UNSET_FLAG {
            self.enabled = if prev.enabled == UNSET_FLAG { 0 } else { prev.enabled };
        }
        if self.fail_mode == FailMode::Unset {
            self.fail_mode = if prev.fail_mode == FailMode::Unset { FailMode::Open } else { prev.fail_mode };
        }
        if self.block_status == UNSET_UINT {
            self.block_status =
                if prev.block_status == UNSET_UINT { DEFAULT_BLOCK_STATUS } else { prev.block_status };
        }
        if self.user_header.is_none() {
            self.user_header = prev.user_header.clone();
        }
        if self.max_size == UNSET_SIZE {
            self.max_size = if prev.max_size == UNSET_SIZE { DEFAULT_MAX_SIZE } else { prev.max_size };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(parse_fail_mode(b"OPEN"), Ok(FailMode::Open));
        assert_eq!(parse_fail_mode(b"closed"), Ok(FailMode::Closed));
        assert!(parse_fail_mode(b"shut").unwrap_err().contains("\"shut\""));
        assert_eq!(parse_block_status(b"429"), Ok(429));
        for bad in [&b"200"[..], b"600", b"x", b"-403", b"+403", b""] {
            assert!(parse_block_status(bad).is_err());
        }
        assert_eq!(parse_user_header(b"X-User").unwrap(), b"x-user");
        assert!(parse_user_header(b"x user").is_err());
        assert!(parse_user_header(b"").is_err());
        assert_eq!(check_max_size(1024), Ok(1024));
        assert!(check_max_size(1023).unwrap_err().contains("at least 1k"));
    }

    #[test]
    fn inheritance() {
        let http = LocConf {
            enabled: 1,
            fail_mode: FailMode::Closed,
            block_status: UNSET_UINT,
            user_header: Some(b"x-user".to_vec()),
            max_size: 8 * 1024,
        };
        let mut server = LocConf::default();
        server.merge(&http).unwrap();
        let mut location = LocConf { enabled: 0, ..LocConf::default() };
        location.merge(&server).unwrap();
        assert!(server.is_enabled());
        assert!(!location.is_enabled());
        assert_eq!(location.fail_mode, FailMode::Closed);
        assert_eq!(location.block_status, DEFAULT_BLOCK_STATUS);
        assert_eq!(location.user_header.as_deref(), Some(&b"x-user"[..]));
        assert_eq!(location.max_size, 8 * 1024);
        let mut own = LocConf { max_size: 2048, ..LocConf::default() };
        own.merge(&server).unwrap();
        assert_eq!(own.max_size, 2048);
        let mut bare = LocConf::default();
        bare.merge(&LocConf::default()).unwrap();
        assert_eq!((bare.enabled, bare.fail_mode, bare.user_header), (0, FailMode::Open, None));
        assert_eq!(bare.max_size, DEFAULT_MAX_SIZE);
    }
}
