//! The common module's configuration: what each directive sets, defaults and inheritance.
//! Plain Rust; the directive callbacks that fill it are in `directives.rs`.

use nginx_sys::{ngx_flag_t, ngx_msec_t, ngx_str_t, ngx_uint_t};
use ngx::http::{Merge, MergeConfigError};
use ngx_ase_shared::abi::CommonMainHeader;

use crate::settings::{expand_nodes, Node, ServerSpec, Token};

pub const DEFAULT_CONNECT_TIMEOUT_MS: ngx_msec_t = 200;
pub const DEFAULT_TIMEOUT_MS: ngx_msec_t = 500;
pub const DEFAULT_KEEPALIVE: ngx_uint_t = 32;
pub const DEFAULT_RESPONSE_QUEUE: ngx_uint_t = 256;

// nginx's "not set" markers, as the slot functions expect them.
pub const UNSET_FLAG: ngx_flag_t = -1;
pub const UNSET_UINT: ngx_uint_t = ngx_uint_t::MAX;
pub const UNSET_MSEC: ngx_msec_t = ngx_msec_t::MAX;

/// Where the token came from; only the kind and place are kept for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenSource {
    File(String),
    Inline,
}

/// http-level settings. `#[repr(C)]` because other modules read `header` (see the ABI).
#[repr(C)]
pub struct MainConf {
    pub header: CommonMainHeader,
    pub servers: Vec<ServerSpec>,
    /// Resolved addresses of each server, same order as `servers`.
    pub addresses: Vec<Vec<std::net::SocketAddr>>,
    pub token: Option<(Token, TokenSource)>,
    pub keepalive: ngx_uint_t,
    pub ssl_verify: ngx_flag_t,
    pub ssl_trusted_certificate: ngx_str_t,
    pub response_queue: ngx_uint_t,
    /// The client TLS context for `https://` nodes (null when none is needed).
    pub ssl: *mut nginx_sys::ngx_ssl_t,
    /// `ase_zone`: counters shared by all workers (null without it).
    pub zone: *mut nginx_sys::ngx_shm_zone_t,
}

impl Default for MainConf {
    fn default() -> Self {
        MainConf {
            header: CommonMainHeader { api: channel_api(), server_count: 0 },
            servers: Vec::new(),
            addresses: Vec::new(),
            token: None,
            keepalive: UNSET_UINT,
            ssl_verify: UNSET_FLAG,
            ssl_trusted_certificate: ngx_str_t::empty(),
            response_queue: UNSET_UINT,
            ssl: core::ptr::null_mut(),
            zone: core::ptr::null_mut(),
        }
    }
}

/// The function table other modules call; absent from unit-test binaries (no nginx).
fn channel_api() -> *const ngx_ase_shared::abi::ChannelApi {
    #[cfg(not(test))]
    return &crate::api::CHANNEL_API;
    #[cfg(test)]
    return core::ptr::null();
}

impl MainConf {
    /// Fills in defaults once the `http` block is read.
    pub fn finish(&mut self) {
        init(&mut self.keepalive, UNSET_UINT, DEFAULT_KEEPALIVE);
        init(&mut self.ssl_verify, UNSET_FLAG, 1);
        init(&mut self.response_queue, UNSET_UINT, DEFAULT_RESPONSE_QUEUE);
        self.header.server_count = self.servers.len();
    }

    /// The ASE nodes in failover order: one per address each `ase_server` resolved to.
    pub fn nodes(&self) -> Vec<Node> {
        expand_nodes(&self.servers, &self.addresses)
    }

    /// How many nodes `nodes()` gives.
    pub fn node_count(&self) -> usize {
        self.addresses.iter().map(Vec::len).sum()
    }

    pub fn uses_tls(&self) -> bool {
        self.servers.iter().any(|s| s.url.tls)
    }
}

/// http/server/location-level settings.
#[derive(Debug)]
pub struct LocConf {
    pub connect_timeout: ngx_msec_t,
    pub timeout: ngx_msec_t,
}

impl Default for LocConf {
    fn default() -> Self {
        LocConf { connect_timeout: UNSET_MSEC, timeout: UNSET_MSEC }
    }
}

impl Merge for LocConf {
    fn merge(&mut self, prev: &LocConf) -> Result<(), MergeConfigError> {
        merge(&mut self.connect_timeout, prev.connect_timeout, UNSET_MSEC, DEFAULT_CONNECT_TIMEOUT_MS);
        merge(&mut self.timeout, prev.timeout, UNSET_MSEC, DEFAULT_TIMEOUT_MS);
        Ok(())
    }
}

/// nginx's `ngx_conf_init_*_value`.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_inherits_then_defaults() {
        let http = LocConf { connect_timeout: UNSET_MSEC, timeout: 900 };
        let mut server = LocConf::default();
        server.merge(&http).unwrap();
        let mut location = LocConf { connect_timeout: 50, timeout: UNSET_MSEC };
        location.merge(&server).unwrap();
        assert_eq!((server.connect_timeout, server.timeout), (DEFAULT_CONNECT_TIMEOUT_MS, 900));
        assert_eq!((location.connect_timeout, location.timeout), (50, 900));
    }

    #[test]
    fn main_defaults() {
        let mut m = MainConf::default();
        m.keepalive = 4;
        m.finish();
        assert_eq!((m.keepalive, m.ssl_verify, m.response_queue), (4, 1, DEFAULT_RESPONSE_QUEUE));
        assert_eq!(m.header.server_count, 0);
    }
}
