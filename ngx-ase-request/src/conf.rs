//! The request module's settings: parsing, defaults and inheritance, in safe Rust.

use nginx_sys::{ngx_flag_t, ngx_http_complex_value_t, ngx_uint_t};
use ngx::http::{Merge, MergeConfigError};
use ngx_ase_glue::values::{invalid_value, merge, merge_option, UNSET_FLAG, UNSET_SIZE, UNSET_UINT};
use ngx_ase_shared::abi::{Bytes, RequestLocShared, RequestMode};
use ngx_ase_shared::header_names;

use crate::cache_conf::CacheConf;
use crate::set_header::SetHeaders;

pub const DEFAULT_BLOCK_STATUS: ngx_uint_t = 403;
/// `ase_fail_status`'s default: what a check that fails closed answers.
pub const DEFAULT_FAIL_STATUS: ngx_uint_t = 503;
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
        Err(invalid_value("ase_fail_mode", raw, "\"open\" or \"closed\""))
    }
}

/// `ase_block_status`: a 4xx or 5xx status, as nginx's `return` would send it.
pub fn parse_block_status(raw: &[u8]) -> Result<ngx_uint_t, String> {
    parse_error_status("ase_block_status", raw)
}

/// `ase_fail_status`: a 4xx or 5xx status (as nginx's `limit_req_status`).
pub fn parse_fail_status(raw: &[u8]) -> Result<ngx_uint_t, String> {
    parse_error_status("ase_fail_status", raw)
}

/// A status from 400 to 599, digits only.
fn parse_error_status(directive: &str, raw: &[u8]) -> Result<ngx_uint_t, String> {
    let text = String::from_utf8_lossy(raw);
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    match text.parse::<ngx_uint_t>() {
        Ok(n) if digits && (400..=599).contains(&n) => Ok(n),
        _ => Err(invalid_value(directive, raw, "a status code from 400 to 599")),
    }
}

/// `ase_request on|off|monitor`.
pub fn parse_request_mode(raw: &[u8]) -> Result<RequestMode, String> {
    if raw.eq_ignore_ascii_case(b"on") {
        Ok(RequestMode::On)
    } else if raw.eq_ignore_ascii_case(b"off") {
        Ok(RequestMode::Off)
    } else if raw.eq_ignore_ascii_case(b"monitor") {
        Ok(RequestMode::Monitor)
    } else {
        Err(invalid_value("ase_request", raw, "\"on\", \"off\" or \"monitor\""))
    }
}

/// `ase_user_header NAME`: the value `ase_user $http_NAME` would take, as nginx names the
/// variable (lower case, `-` as `_`). The name is checked as before (letters, digits, `-`, `_`).
pub fn user_header_variable(raw: &[u8]) -> Result<String, String> {
    let valid = !raw.is_empty() && raw.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        let name: String = raw.iter().map(|&b| if b == b'-' { '_' } else { b.to_ascii_lowercase() as char }).collect();
        Ok(format!("$http_{name}"))
    } else {
        Err(format!("invalid header name \"{}\" in \"ase_user_header\" directive", String::from_utf8_lossy(raw)))
    }
}

/// A value evaluated per request (`ase_user`, `ase_client_id`): nginx's compiled complex
/// value, and which directive set it (for the "both in one block" message).
#[derive(Clone, Copy, Debug)]
pub struct PerRequestValue {
    pub cv: *mut ngx_http_complex_value_t,
    pub directive: &'static str,
}

/// Whether `directive` may set `slot` at this level: once, and `ase_user` and
/// `ase_user_header` (which set the same value) not both.
pub fn check_value_slot(slot: &Option<PerRequestValue>, directive: &str) -> Result<(), String> {
    match slot {
        None => Ok(()),
        Some(v) if v.directive == directive => Err(ngx_ase_glue::values::duplicate(directive)),
        Some(v) => Err(format!(
            "\"{directive}\" and \"{}\" in one block: both set the username sent to the ASE \
             (\"ase_user_header NAME\" is \"ase_user $http_NAME\"); keep one",
            v.directive
        )),
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

/// http/server/location settings. `repr(C)` with [`RequestLocShared`] first: the response
/// module reads that part (see `ngx_ase_shared::abi`).
#[derive(Debug)]
#[repr(C)]
pub struct LocConf {
    /// Filled from the fields below when merged.
    pub shared: RequestLocShared,
    /// `ase_request`; `None` = unset (off by default).
    pub mode: Option<RequestMode>,
    /// "FILE:LINE" of the `ase_request` line that set `mode`.
    pub mode_at: Option<String>,
    pub fail_mode: FailMode,
    pub block_status: ngx_uint_t,
    /// `ase_user` or `ase_user_header`; `None` = unset.
    pub user: Option<PerRequestValue>,
    /// `ase_client_id`; `None` = unset.
    pub client_id: Option<PerRequestValue>,
    /// `ase_hide_header` names set at this level (see `ngx_ase_shared::header_names`);
    /// `None` = unset: the level above's list applies, as with nginx's `proxy_hide_header`.
    pub hidden: Option<Vec<u8>>,
    /// `ase_identity_header` names (packed, as `hidden`), besides the built-in ones
    /// (`payload::IDENTITY`); `None` = none at this level or above.
    pub identity: Option<Vec<u8>>,
    /// `ase_request_max_size` in bytes (`UNSET_SIZE` until merged).
    pub max_size: usize,
    /// `ase_request_after_access on|off`: check in the precontent phase, after the access
    /// modules, instead of first in the access phase (`UNSET_FLAG` until merged).
    pub after_access: ngx_flag_t,
    /// `ase_fail_status` (`UNSET_UINT` until merged).
    pub fail_status: ngx_uint_t,
    /// `ase_correlation_id`; `None` = the module's own ID.
    pub correlation_id: Option<PerRequestValue>,
    /// `ase_set_header` lines; `None` = none at this level: the level above's apply.
    pub set_headers: Option<SetHeaders>,
    /// `ase_skip` values; `None` = none at this level: the level above's apply.
    pub skip: Option<Vec<*mut ngx_http_complex_value_t>>,
    /// `ase_cache`, `ase_cache_key`, `ase_cache_valid`, `ase_cache_use_stale`.
    pub cache: CacheConf,
}

impl Default for LocConf {
    fn default() -> Self {
        LocConf {
            shared: RequestLocShared::new(),
            mode: None,
            mode_at: None,
            fail_mode: FailMode::Unset,
            block_status: UNSET_UINT,
            user: None,
            client_id: None,
            hidden: None,
            identity: None,
            max_size: UNSET_SIZE,
            after_access: UNSET_FLAG,
            fail_status: UNSET_UINT,
            correlation_id: None,
            set_headers: None,
            skip: None,
            cache: CacheConf::default(),
        }
    }
}

impl LocConf {
    pub fn mode(&self) -> RequestMode {
        self.mode.unwrap_or(RequestMode::Off)
    }

    /// Whether the check waits for the access modules (`ase_request_after_access on`).
    pub fn after_access(&self) -> bool {
        self.after_access == 1
    }

    /// The header names never sent to the ASE here (packed).
    pub fn hidden(&self) -> &[u8] {
        self.hidden.as_deref().unwrap_or(b"")
    }

    /// The operator's identity header names here (packed).
    pub fn identity(&self) -> &[u8] {
        self.identity.as_deref().unwrap_or(b"")
    }

    /// The names `ase_set_header` sets here (packed): the client's lines of these names are
    /// not sent.
    pub fn set_names(&self) -> &[u8] {
        self.set_headers.as_ref().map_or(&[], |s| s.names.as_slice())
    }

    /// The `ase_skip` values here.
    pub fn skip(&self) -> &[*mut ngx_http_complex_value_t] {
        self.skip.as_deref().unwrap_or(&[])
    }

    /// Points the shared part at this level's merged values.
    fn fill_shared(&mut self) {
        self.shared = RequestLocShared {
            mode: self.mode() as u8,
            mode_at: Bytes::new(self.mode_at.as_deref().unwrap_or("").as_bytes()),
            hidden: Bytes::new(self.hidden()),
            ..RequestLocShared::new()
        };
    }
}

impl Merge for LocConf {
    fn merge(&mut self, prev: &LocConf) -> Result<(), MergeConfigError> {
        if self.mode.is_none() {
            self.mode = prev.mode;
            self.mode_at = prev.mode_at.clone();
        }
        merge(&mut self.fail_mode, prev.fail_mode, FailMode::Unset, FailMode::Open);
        merge(&mut self.block_status, prev.block_status, UNSET_UINT, DEFAULT_BLOCK_STATUS);
        merge_option(&mut self.user, &prev.user);
        merge_option(&mut self.client_id, &prev.client_id);
        // A level with its own list replaces the one above (nginx's array directives).
        merge_option(&mut self.hidden, &prev.hidden);
        merge_identity(&mut self.identity, &prev.identity);
        merge(&mut self.max_size, prev.max_size, UNSET_SIZE, DEFAULT_MAX_SIZE);
        merge(&mut self.after_access, prev.after_access, UNSET_FLAG, 0);
        merge(&mut self.fail_status, prev.fail_status, UNSET_UINT, DEFAULT_FAIL_STATUS);
        merge_option(&mut self.correlation_id, &prev.correlation_id);
        // All or nothing per level, as nginx's `proxy_set_header` and `proxy_cache_bypass`.
        merge_option(&mut self.set_headers, &prev.set_headers);
        merge_option(&mut self.skip, &prev.skip);
        self.cache.merge(&prev.cache);
        self.fill_shared();
        Ok(())
    }
}

/// `ase_identity_header` names add up through the levels (unlike `ase_hide_header`'s): an
/// inner level that names one more header must not make an outer one cuttable again.
fn merge_identity(own: &mut Option<Vec<u8>>, outer: &Option<Vec<u8>>) {
    match (own.as_mut(), outer) {
        (Some(list), Some(outer)) => {
            for name in header_names::names(outer) {
                // A name from a list is a valid name: nothing to refuse.
                let _ = header_names::add_name(list, name);
            }
        }
        (None, Some(outer)) => *own = Some(outer.clone()),
        (_, None) => {}
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
        assert_eq!(parse_fail_status(b"429"), Ok(429));
        assert!(parse_fail_status(b"399").unwrap_err().contains("\"ase_fail_status\""));
        for bad in [&b"200"[..], b"600", b"x", b"-403", b"+403", b""] {
            assert!(parse_block_status(bad).is_err());
        }
        assert_eq!(user_header_variable(b"X-User").unwrap(), "$http_x_user");
        assert!(user_header_variable(b"x user").is_err());
        assert!(user_header_variable(b"").is_err());
        assert_eq!(parse_request_mode(b"MONITOR"), Ok(RequestMode::Monitor));
        assert_eq!(parse_request_mode(b"on"), Ok(RequestMode::On));
        assert_eq!(parse_request_mode(b"off"), Ok(RequestMode::Off));
        assert!(parse_request_mode(b"yes").unwrap_err().contains("\"monitor\""));
        assert_eq!(check_max_size(1024), Ok(1024));
        assert!(check_max_size(1023).unwrap_err().contains("at least 1k"));
    }

    #[test]
    fn inheritance() {
        let user = PerRequestValue { cv: core::ptr::null_mut(), directive: "ase_user" };
        let http = LocConf {
            mode: Some(RequestMode::On),
            mode_at: Some("nginx.conf:3".into()),
            fail_mode: FailMode::Closed,
            user: Some(user),
            hidden: Some(b"cookie ".to_vec()),
            max_size: 8 * 1024,
            ..LocConf::default()
        };
        let mut server = LocConf::default();
        server.merge(&http).unwrap();
        let mut location =
            LocConf { mode: Some(RequestMode::Off), mode_at: Some("nginx.conf:9".into()), ..LocConf::default() };
        location.merge(&server).unwrap();
        assert_eq!(server.mode(), RequestMode::On);
        assert_eq!(location.mode(), RequestMode::Off);
        assert_eq!(location.fail_mode, FailMode::Closed);
        assert_eq!(location.block_status, DEFAULT_BLOCK_STATUS);
        assert_eq!(location.user.map(|u| u.directive), Some("ase_user"));
        assert!(location.client_id.is_none());
        assert_eq!(location.max_size, 8 * 1024);
        assert!(!location.after_access());
        let mut late = LocConf { after_access: 1, ..LocConf::default() };
        late.merge(&server).unwrap();
        let mut below = LocConf::default();
        below.merge(&late).unwrap();
        assert!(late.after_access() && below.after_access());
        // the shared part says what the response module needs, as merged
        assert!(server.shared.is_compatible());
        assert_eq!(RequestMode::from_u8(server.shared.mode), RequestMode::On);
        assert_eq!(unsafe { server.shared.mode_at.as_slice() }, b"nginx.conf:3");
        assert_eq!(unsafe { location.shared.mode_at.as_slice() }, b"nginx.conf:9");
        assert_eq!(unsafe { location.shared.hidden.as_slice() }, b"cookie ");
        // a level with its own hidden list replaces the inherited one
        let mut own_list = LocConf { hidden: Some(b"x-secret ".to_vec()), ..LocConf::default() };
        own_list.merge(&server).unwrap();
        assert_eq!(own_list.hidden(), b"x-secret ");
        assert_eq!(unsafe { own_list.shared.hidden.as_slice() }, b"x-secret ");
        let mut monitor = LocConf { mode: Some(RequestMode::Monitor), ..LocConf::default() };
        monitor.merge(&server).unwrap();
        assert_eq!(RequestMode::from_u8(monitor.shared.mode), RequestMode::Monitor);
        let mut own = LocConf { max_size: 2048, ..LocConf::default() };
        own.merge(&server).unwrap();
        assert_eq!(own.max_size, 2048);
        let mut bare = LocConf::default();
        bare.merge(&LocConf::default()).unwrap();
        assert_eq!((bare.mode(), bare.fail_mode), (RequestMode::Off, FailMode::Open));
        assert!(bare.user.is_none() && bare.hidden().is_empty() && bare.shared.mode_at.len == 0);
        assert_eq!(bare.max_size, DEFAULT_MAX_SIZE);
    }

    #[test]
    fn new_directives_inherit_all_or_nothing() {
        let mut xff = SetHeaders::default();
        xff.add(b"X-Forwarded-For", core::ptr::null_mut()).unwrap();
        let http = LocConf {
            fail_status: 429,
            set_headers: Some(xff),
            skip: Some(vec![core::ptr::null_mut()]),
            ..LocConf::default()
        };
        let mut server = LocConf::default();
        server.merge(&http).unwrap();
        assert_eq!(server.fail_status, 429);
        assert_eq!(server.set_names(), b"x-forwarded-for ");
        assert_eq!(server.skip().len(), 1);
        let mut key = SetHeaders::default();
        key.add(b"X-Api-Key", core::ptr::null_mut()).unwrap();
        let mut location = LocConf { set_headers: Some(key), ..LocConf::default() };
        location.merge(&server).unwrap();
        // its own list only: the parent's X-Forwarded-For is not inherited
        assert_eq!(location.set_names(), b"x-api-key ");
        let mut bare = LocConf::default();
        bare.merge(&LocConf::default()).unwrap();
        assert_eq!(bare.fail_status, DEFAULT_FAIL_STATUS);
        assert!(bare.set_headers.is_none() && bare.skip().is_empty() && bare.correlation_id.is_none());
    }

    #[test]
    fn identity_names_add_up_through_the_levels() {
        let http = LocConf { identity: Some(b"x-session ".to_vec()), ..LocConf::default() };
        let mut server = LocConf::default();
        server.merge(&http).unwrap();
        let mut location = LocConf { identity: Some(b"x-tenant x-session ".to_vec()), ..LocConf::default() };
        location.merge(&server).unwrap();
        assert_eq!(server.identity(), b"x-session ");
        assert_eq!(location.identity(), b"x-tenant x-session ");
        let mut bare = LocConf::default();
        bare.merge(&LocConf::default()).unwrap();
        assert_eq!(bare.identity(), b"");
    }

    #[test]
    fn one_username_source_per_block() {
        let set = |directive| Some(PerRequestValue { cv: core::ptr::null_mut(), directive });
        assert!(check_value_slot(&None, "ase_user").is_ok());
        assert!(check_value_slot(&set("ase_user"), "ase_user").unwrap_err().contains("is duplicate"));
        let both = check_value_slot(&set("ase_user"), "ase_user_header").unwrap_err();
        assert!(both.contains("\"ase_user_header\" and \"ase_user\" in one block"), "{both}");
    }
}
