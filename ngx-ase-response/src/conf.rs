//! The response module's settings, in safe Rust.

use nginx_sys::ngx_flag_t;
use ngx::http::{Merge, MergeConfigError};
use ngx_ase_glue::values::UNSET_FLAG;
use ngx_ase_shared::abi::RequestMode;

/// http/server/location settings.
#[derive(Debug)]
pub struct LocConf {
    /// `ase_response on|off`; unset inherits, and off by default.
    pub enabled: ngx_flag_t,
    /// "FILE:LINE" of the `ase_response` line that set `enabled`.
    pub enabled_at: Option<String>,
    /// The request module's `ase_hide_header` list for this level (packed, see
    /// `ngx_ase_shared::header_names`), copied when merged.
    pub hidden: Vec<u8>,
}

impl Default for LocConf {
    fn default() -> Self {
        LocConf { enabled: UNSET_FLAG, enabled_at: None, hidden: Vec::new() }
    }
}

/// Where `ase_response on` meets `ase_request off` (no report can go out: reports go only
/// with requests whose metadata went to the ASE), the warning and the line it names: the
/// `ase_request off` line when there is one, else the `ase_response on` line.
/// `None` when reports do go out here.
pub fn no_request_warning(
    response_on: bool,
    response_at: Option<&str>,
    request_mode: RequestMode,
    request_at: Option<&str>,
) -> Option<(String, String)> {
    if !response_on || request_mode.sends_metadata() {
        return None;
    }
    let response_at = response_at.unwrap_or("(unknown)");
    Some(match request_at.filter(|at| !at.is_empty()) {
        Some(at) => (
            format!(
                "\"ase_request off\" where \"ase_response on\" (from {response_at}) applies: no response is \
                 reported there, as reports go only with requests whose metadata went to the ASE"
            ),
            at.to_string(),
        ),
        None => (
            "\"ase_response on\" applies where \"ase_request\" is off (its default): no response is reported \
             there, as reports go only with requests whose metadata went to the ASE"
                .to_string(),
            response_at.to_string(),
        ),
    })
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
            self.enabled_at = prev.enabled_at.clone();
        }
        Ok(())
    }
}

/// The module's marker: nginx's configuration of this module is found through it
/// (`Module::location_conf` and `main_conf`); `module.rs` gives it the module table and
/// hooks. It lives here so that the directives and the filter, which only read the
/// configuration, need nothing from `module.rs`, which needs them.
#[cfg(not(test))]
pub struct Module;

// SAFETY: the types match what create_main_conf/create_loc_conf allocate.
#[cfg(not(test))]
unsafe impl ngx::http::HttpModuleMainConf for Module {
    type MainConf = ngx_ase_glue::module::MainConf;
}
#[cfg(not(test))]
unsafe impl ngx::http::HttpModuleLocationConf for Module {
    type LocationConf = LocConf;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inheritance() {
        let mut server = LocConf::default();
        server.merge(&LocConf { enabled: 1, enabled_at: Some("a.conf:2".into()), ..LocConf::default() }).unwrap();
        let mut location = LocConf { enabled: 0, ..LocConf::default() };
        location.merge(&server).unwrap();
        let mut bare = LocConf::default();
        bare.merge(&LocConf::default()).unwrap();
        assert!(server.is_enabled() && !location.is_enabled() && !bare.is_enabled());
        assert_eq!(server.enabled_at.as_deref(), Some("a.conf:2"));
    }

    #[test]
    fn reports_without_requests_are_named() {
        assert_eq!(no_request_warning(true, Some("a:1"), RequestMode::On, Some("a:2")), None);
        assert_eq!(no_request_warning(true, Some("a:1"), RequestMode::Monitor, None), None);
        assert_eq!(no_request_warning(false, None, RequestMode::Off, None), None);
        let (msg, at) = no_request_warning(true, Some("a:1"), RequestMode::Off, Some("a:7")).unwrap();
        assert_eq!(at, "a:7");
        assert!(msg.contains("\"ase_request off\"") && msg.contains("(from a:1)"), "{msg}");
        let (msg, at) = no_request_warning(true, Some("a:1"), RequestMode::Off, Some("")).unwrap();
        assert_eq!(at, "a:1");
        assert!(msg.contains("its default"), "{msg}");
    }
}
