//! The response module's settings, in safe Rust.

use nginx_sys::ngx_flag_t;
use ngx::http::{Merge, MergeConfigError};

pub const UNSET_FLAG: ngx_flag_t = -1;

/// http-level bookkeeping for checks that need the whole `http` block.
#[derive(Debug, Default)]
pub struct MainConf {
    /// "FILE:LINE" of the first `ase_response on`, for the "no ase_server" error.
    pub first_enabled_at: Option<String>,
}

/// http/server/location settings.
#[derive(Debug)]
pub struct LocConf {
    /// `ase_response on|off`; unset inherits, and off by default.
    pub enabled: ngx_flag_t,
}

impl Default for LocConf {
    fn default() -> Self {
        LocConf { enabled: UNSET_FLAG }
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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inheritance() {
        let mut server = LocConf::default();
        server.merge(&LocConf { enabled: 1 }).unwrap();
        let mut location = LocConf { enabled: 0 };
        location.merge(&server).unwrap();
        let mut bare = LocConf::default();
        bare.merge(&LocConf::default()).unwrap();
        assert!(server.is_enabled() && !location.is_enabled() && !bare.is_enabled());
    }
}
