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

/// A file named by a directive: its path made absolute, and where the directive is
/// ("FILE:LINE") for messages about it after the http block is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfFile {
    pub path: String,
    pub position: String,
}

/// http-level settings. `#[repr(C)]` because other modules read `header` (see the ABI).
#[repr(C)]
pub struct MainConf {
    pub header: CommonMainHeader,
    pub servers: Vec<ServerSpec>,
    /// Resolved addresses of each server, same order as `servers`.
    pub addresses: Vec<Vec<std::net::SocketAddr>>,
    /// Where each `ase_server` line is ("FILE:LINE"), same order as `servers`.
    pub server_positions: Vec<String>,
    pub token: Option<(Token, TokenSource)>,
    pub keepalive: ngx_uint_t,
    pub ssl_verify: ngx_flag_t,
    pub ssl_trusted_certificate: ngx_str_t,
    /// `ase_ssl_certificate`: the client certificate for nodes that require one.
    pub ssl_certificate: Option<ConfFile>,
    /// `ase_ssl_certificate_key`: its key.
    pub ssl_certificate_key: Option<ConfFile>,
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
            server_positions: Vec::new(),
            token: None,
            keepalive: UNSET_UINT,
            ssl_verify: UNSET_FLAG,
            ssl_trusted_certificate: ngx_str_t::empty(),
            ssl_certificate: None,
            ssl_certificate_key: None,
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

    /// The client certificate and key, once both are known to be given together: `Err`
    /// names the one that is missing, with where the other one is.
    pub fn client_certificate(&self) -> Result<Option<(&ConfFile, &ConfFile)>, (String, &str)> {
        match (&self.ssl_certificate, &self.ssl_certificate_key) {
            (Some(c), Some(k)) => Ok(Some((c, k))),
            (None, None) => Ok(None),
            (Some(c), None) => Err((
                format!("no \"ase_ssl_certificate_key\" is defined for certificate \"{}\"", c.path),
                &c.position,
            )),
            (None, Some(k)) => Err((
                format!("no \"ase_ssl_certificate\" is defined for key \"{}\"", k.path),
                &k.position,
            )),
        }
    }

    /// The `ase_server` lines (indices) to which an `ASE-Token` would go in clear text over
    /// a network: `http://` nodes with an address off this host.
    pub fn clear_text_token_nodes(&self) -> Vec<usize> {
        if self.token.is_none() {
            return Vec::new();
        }
        self.servers
            .iter()
            .zip(&self.addresses)
            .enumerate()
            .filter(|(_, (s, addrs))| !s.url.tls && !crate::settings::all_loopback(addrs))
            .map(|(i, _)| i)
            .collect()
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

    fn with_servers(urls: &[&str], token: bool) -> MainConf {
        let mut m = MainConf::default();
        for u in urls {
            let spec = crate::settings::parse_server(&[u.as_bytes()]).unwrap();
            let ip: std::net::IpAddr = spec.url.host.parse().unwrap();
            m.addresses.push(vec![std::net::SocketAddr::new(ip, spec.url.port)]);
            m.servers.push(spec);
            m.server_positions.push(format!("nginx.conf:{}", m.servers.len()));
        }
        if token {
            let t = crate::settings::parse_token(b"abcdefghij0123456789abcdefghij01").unwrap();
            m.token = Some((t, TokenSource::Inline));
        }
        m
    }

    #[test]
    fn a_token_to_an_http_node_off_this_host_is_found() {
        let urls = ["http://127.0.0.1:8000", "http://192.0.2.1:8000", "https://192.0.2.2", "http://[::1]:1", "http://[2001:db8::1]:1"];
        assert_eq!(with_servers(&urls, true).clear_text_token_nodes(), vec![1, 4]);
        assert!(with_servers(&urls, false).clear_text_token_nodes().is_empty(), "no token, nothing to leak");
    }

    #[test]
    fn certificate_and_key_go_together() {
        let f = |p: &str| Some(ConfFile { path: p.into(), position: format!("{p}.conf:7") });
        let mut m = MainConf::default();
        assert_eq!(m.client_certificate(), Ok(None));
        m.ssl_certificate = f("/c.pem");
        let (msg, at) = m.client_certificate().unwrap_err();
        assert!(msg.contains("no \"ase_ssl_certificate_key\" is defined for certificate \"/c.pem\""), "{msg}");
        assert_eq!(at, "/c.pem.conf:7");
        m.ssl_certificate_key = f("/k.pem");
        assert_eq!(m.client_certificate().unwrap().map(|(c, k)| (c.path.as_str(), k.path.as_str())), Some(("/c.pem", "/k.pem")));
        m.ssl_certificate = None;
        assert!(m.client_certificate().unwrap_err().0.contains("no \"ase_ssl_certificate\" is defined for key \"/k.pem\""));
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
