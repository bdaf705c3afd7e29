//! The common module's configuration: what each directive sets, defaults and inheritance.
//! Plain Rust; the value parsers are in `settings.rs`, the directive callbacks that fill it
//! in `directives.rs`.

#[cfg(not(test))]
pub(crate) mod directives;
mod mirror;
pub mod settings;

use nginx_sys::{ngx_flag_t, ngx_msec_t, ngx_str_t, ngx_uint_t};
use ngx::http::{Merge, MergeConfigError};
use ngx_ase_glue::values::{init, merge, UNSET_FLAG, UNSET_MSEC, UNSET_UINT};
use ngx_ase_shared::abi::CommonMainHeader;

pub use settings::DEFAULT_GROUP;
use settings::{expand_nodes, Node, ServerSpec, Token};

pub const DEFAULT_CONNECT_TIMEOUT_MS: ngx_msec_t = 200;
pub const DEFAULT_TIMEOUT_MS: ngx_msec_t = 500;
pub const DEFAULT_KEEPALIVE: ngx_uint_t = 32;
/// nginx's upstream keep-alive defaults: `keepalive_timeout`, `keepalive_requests`,
/// `keepalive_time`.
pub const DEFAULT_KEEPALIVE_TIMEOUT_MS: ngx_msec_t = 60_000;
pub const DEFAULT_KEEPALIVE_REQUESTS: ngx_uint_t = 1000;
pub const DEFAULT_KEEPALIVE_TIME_MS: ngx_msec_t = 3_600_000;
pub const DEFAULT_RESPONSE_QUEUE: ngx_uint_t = 256;
/// nginx's `resolver_timeout` default.
pub const DEFAULT_RESOLVER_TIMEOUT_MS: ngx_msec_t = 30_000;

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

/// One `ase_upstream NAME { ... }` block: a group of ASE nodes with its own pool, health and
/// breaker, and optionally its own token and keep-alive.
#[derive(Debug, Default)]
pub struct GroupConf {
    pub name: String,
    /// Where the block starts ("FILE:LINE").
    pub position: String,
    pub servers: Vec<ServerSpec>,
    pub addresses: Vec<Vec<std::net::SocketAddr>>,
    pub server_positions: Vec<String>,
    /// `token_file` in the block; without it the http-level token is sent.
    pub token: Option<(Token, TokenSource)>,
    /// `keepalive N` in the block; without it `ase_keepalive`.
    pub keepalive: Option<usize>,
    /// `least_conn;` in the block; without it (and `hash`), round robin.
    pub least_conn: bool,
    /// `hash KEY [consistent];` in the block.
    pub hash: Option<HashKey>,
    /// `keepalive_timeout`, `keepalive_requests`, `keepalive_time` in the block; without
    /// them the http level's `ase_keepalive_*`.
    pub keepalive_timeout: Option<u64>,
    pub keepalive_requests: Option<u64>,
    pub keepalive_time: Option<u64>,
    /// `latency_guard P99 [window=T]` in the block.
    pub latency_guard: Option<crate::latency_guard::GuardConf>,
}

/// `hash KEY [consistent];`: the key nginx evaluates per request, so that one key's
/// checks and reports meet one node.
#[derive(Debug)]
pub struct HashKey {
    /// The compiled key (a complex value in the configuration's pool).
    pub value: *mut nginx_sys::ngx_http_complex_value_t,
    pub consistent: bool,
}

impl GroupConf {
    /// How the block shares its calls (the later of `least_conn` and `hash` wins).
    pub fn balance(&self) -> crate::health::Balance {
        use crate::health::Balance;
        match (&self.hash, self.least_conn) {
            (Some(h), _) => Balance::Hash { consistent: h.consistent },
            (None, true) => Balance::LeastConn,
            (None, false) => Balance::RoundRobin,
        }
    }

    /// A `backup` server in a block that hashes, which nginx's `hash` does not take: where
    /// it is and the message.
    pub fn backup_with_hash(&self) -> Option<(String, &str)> {
        self.hash.as_ref()?;
        let i = self.servers.iter().position(|s| s.backup)?;
        let msg = format!(
            "invalid parameter \"backup\" in \"server\" directive of ase_upstream \"{}\": a group that \
             hashes (\"hash\") takes no backup, as nginx's upstream hash",
            self.name
        );
        Some((msg, self.server_positions.get(i).map_or("", String::as_str)))
    }
}

/// A group's servers and settings as the channel uses them, the default group (the
/// http-level `ase_server` lines) and `ase_upstream` blocks alike.
pub struct GroupView<'a> {
    pub name: &'a str,
    pub servers: &'a [ServerSpec],
    pub addresses: &'a [Vec<std::net::SocketAddr>],
    pub server_positions: &'a [String],
    pub token: Option<&'a Token>,
    pub keepalive: usize,
    pub balance: crate::health::Balance,
    pub pool_limits: crate::engine::PoolLimits,
    /// `ase_latency_guard` (default group) or the block's `latency_guard`.
    pub latency_guard: Option<crate::latency_guard::GuardConf>,
}

impl GroupView<'_> {
    pub fn nodes(&self) -> Vec<Node> {
        expand_nodes(self.servers, self.addresses)
    }
}

/// http-level settings. `#[repr(C)]` because other modules read `header` (see the ABI).
#[repr(C)]
pub struct MainConf {
    pub header: CommonMainHeader,
    /// The http-level `ase_server` lines: the default group.
    pub servers: Vec<ServerSpec>,
    /// Resolved addresses of each server, same order as `servers`.
    pub addresses: Vec<Vec<std::net::SocketAddr>>,
    /// Where each `ase_server` line is ("FILE:LINE"), same order as `servers`.
    pub server_positions: Vec<String>,
    pub token: Option<(Token, TokenSource)>,
    pub keepalive: ngx_uint_t,
    /// `ase_keepalive_timeout`, `ase_keepalive_requests`, `ase_keepalive_time`.
    pub keepalive_timeout: ngx_msec_t,
    pub keepalive_requests: ngx_uint_t,
    pub keepalive_time: ngx_msec_t,
    /// `ase_socket_keepalive`: SO_KEEPALIVE on the connections to the ASE.
    pub socket_keepalive: ngx_flag_t,
    pub ssl_verify: ngx_flag_t,
    pub ssl_trusted_certificate: ngx_str_t,
    /// `ase_ssl_certificate`: the client certificate for nodes that require one.
    pub ssl_certificate: Option<ConfFile>,
    /// `ase_ssl_certificate_key`: its key.
    pub ssl_certificate_key: Option<ConfFile>,
    pub response_queue: ngx_uint_t,
    /// `ase_latency_guard P99 [window=T]`: the default group's.
    pub latency_guard: Option<crate::latency_guard::GuardConf>,
    /// The client TLS context for `https://` nodes (null when none is needed).
    pub ssl: *mut nginx_sys::ngx_ssl_t,
    /// `ase_zone`: counters shared by all workers (null without it).
    pub zone: *mut nginx_sys::ngx_shm_zone_t,
    /// The `ase_upstream` blocks, in order: group `i + 1`.
    pub groups: Vec<GroupConf>,
    /// The http block's `resolver`, for `resolve` servers (null when none is needed).
    pub resolver: *mut nginx_sys::ngx_resolver_t,
    pub resolver_timeout: ngx_msec_t,
}

impl Default for MainConf {
    fn default() -> Self {
        MainConf {
            // The table is set by the module when nginx creates this (see `module.rs`).
            header: CommonMainHeader { api: core::ptr::null(), server_count: 0 },
            servers: Vec::new(),
            addresses: Vec::new(),
            server_positions: Vec::new(),
            token: None,
            keepalive: UNSET_UINT,
            keepalive_timeout: UNSET_MSEC,
            keepalive_requests: UNSET_UINT,
            keepalive_time: UNSET_MSEC,
            socket_keepalive: UNSET_FLAG,
            ssl_verify: UNSET_FLAG,
            ssl_trusted_certificate: ngx_str_t::empty(),
            ssl_certificate: None,
            ssl_certificate_key: None,
            response_queue: UNSET_UINT,
            latency_guard: None,
            ssl: core::ptr::null_mut(),
            zone: core::ptr::null_mut(),
            groups: Vec::new(),
            resolver: core::ptr::null_mut(),
            resolver_timeout: DEFAULT_RESOLVER_TIMEOUT_MS,
        }
    }
}

impl MainConf {
    /// Fills in defaults once the `http` block is read.
    pub fn finish(&mut self) {
        init(&mut self.keepalive, UNSET_UINT, DEFAULT_KEEPALIVE);
        init(&mut self.keepalive_timeout, UNSET_MSEC, DEFAULT_KEEPALIVE_TIMEOUT_MS);
        init(&mut self.keepalive_requests, UNSET_UINT, DEFAULT_KEEPALIVE_REQUESTS);
        init(&mut self.keepalive_time, UNSET_MSEC, DEFAULT_KEEPALIVE_TIME_MS);
        init(&mut self.socket_keepalive, UNSET_FLAG, 0);
        init(&mut self.ssl_verify, UNSET_FLAG, 1);
        init(&mut self.response_queue, UNSET_UINT, DEFAULT_RESPONSE_QUEUE);
        // Other modules check that a module turned on has some ASE node to talk to.
        self.header.server_count = self.servers.len() + self.groups.iter().map(|g| g.servers.len()).sum::<usize>();
    }

    /// Every group: the default one (index 0, maybe without servers), then the
    /// `ase_upstream` blocks in order. Call after `finish` (the keep-alive default).
    pub fn group_views(&self) -> Vec<GroupView<'_>> {
        let http_token = self.token.as_ref().map(|(t, _)| t);
        let mut out = vec![GroupView {
            name: DEFAULT_GROUP,
            servers: &self.servers,
            addresses: &self.addresses,
            server_positions: &self.server_positions,
            token: http_token,
            keepalive: self.keepalive,
            balance: crate::health::Balance::RoundRobin,
            pool_limits: self.pool_limits(None),
            latency_guard: self.latency_guard,
        }];
        out.extend(self.groups.iter().map(|g| GroupView {
            name: &g.name,
            servers: &g.servers,
            addresses: &g.addresses,
            server_positions: &g.server_positions,
            token: g.token.as_ref().map(|(t, _)| t).or(http_token),
            keepalive: g.keepalive.unwrap_or(self.keepalive),
            balance: g.balance(),
            pool_limits: self.pool_limits(Some(g)),
            latency_guard: g.latency_guard,
        }));
        out
    }

    /// The keep-alive limits of the default group (`None`) or of block `g`: the block's own
    /// lines, else the http level's `ase_keepalive_*`.
    fn pool_limits(&self, g: Option<&GroupConf>) -> crate::engine::PoolLimits {
        crate::engine::PoolLimits {
            idle_timeout_ms: g.and_then(|g| g.keepalive_timeout).unwrap_or(self.keepalive_timeout as u64),
            requests: g.and_then(|g| g.keepalive_requests).unwrap_or(self.keepalive_requests as u64),
            max_age_ms: g.and_then(|g| g.keepalive_time).unwrap_or(self.keepalive_time as u64),
        }
    }

    /// The group `ase_pass NAME` chooses: 0 for `default`, `i + 1` for the `i`th block.
    pub fn group_index(&self, name: &str) -> Option<usize> {
        if name == DEFAULT_GROUP {
            return Some(0);
        }
        self.groups.iter().position(|g| g.name == name).map(|i| i + 1)
    }

    /// Every ASE node in the channel's order, with its group: the default group's nodes
    /// (one per address each `ase_server` resolved to), then each block's.
    pub fn nodes(&self) -> Vec<(usize, Node)> {
        self.group_views().iter().enumerate().flat_map(|(g, v)| v.nodes().into_iter().map(move |n| (g, n))).collect()
    }

    /// How many nodes `nodes()` gives (every group).
    pub fn node_count(&self) -> usize {
        let groups = self.groups.iter().flat_map(|g| &g.addresses);
        self.addresses.iter().chain(groups).map(Vec::len).sum()
    }

    /// Where the first server line with `resolve` is ("FILE:LINE"), if any.
    pub fn first_resolve_server(&self) -> Option<String> {
        self.group_views()
            .into_iter()
            .flat_map(|g| {
                g.servers
                    .iter()
                    .zip(g.server_positions)
                    .filter(|(s, _)| s.resolve)
                    .map(|(_, at)| at.clone())
                    .collect::<Vec<_>>()
            })
            .next()
    }

    pub fn uses_tls(&self) -> bool {
        self.servers.iter().chain(self.groups.iter().flat_map(|g| &g.servers)).any(|s| s.url.tls)
    }

    /// The client certificate and key, once both are known to be given together: `Err`
    /// names the one that is missing, with where the other one is.
    pub fn client_certificate(&self) -> Result<Option<(&ConfFile, &ConfFile)>, (String, &str)> {
        match (&self.ssl_certificate, &self.ssl_certificate_key) {
            (Some(c), Some(k)) => Ok(Some((c, k))),
            (None, None) => Ok(None),
            (Some(c), None) => {
                Err((format!("no \"ase_ssl_certificate_key\" is defined for certificate \"{}\"", c.path), &c.position))
            }
            (None, Some(k)) => {
                Err((format!("no \"ase_ssl_certificate\" is defined for key \"{}\"", k.path), &k.position))
            }
        }
    }

    /// The server lines (URL and "FILE:LINE") to which an `ASE-Token` would go in clear
    /// text over a network: `http://` nodes with an address off this host, in a group that
    /// sends a token.
    pub fn clear_text_token_nodes(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for g in self.group_views().iter().filter(|g| g.token.is_some()) {
            for ((s, addrs), at) in g.servers.iter().zip(g.addresses).zip(g.server_positions) {
                if !s.url.tls && !crate::conf::settings::all_loopback(addrs) {
                    out.push((s.url.to_string(), at.clone()));
                }
            }
        }
        out
    }
}

/// http/server/location-level settings.
#[derive(Debug)]
pub struct LocConf {
    pub connect_timeout: ngx_msec_t,
    pub timeout: ngx_msec_t,
    /// `ase_pass NAME` as written here (name, "FILE:LINE"); inherited when not given.
    pub pass: Option<(String, String)>,
    /// The group calls from here go to (`pass` resolved once the http block is read; 0, the
    /// default group, without `ase_pass`).
    pub group: usize,
    /// `ase_mirror NAME|off` as written here (name, "FILE:LINE"); inherited when not given.
    pub mirror: Option<(String, String)>,
    /// The group that gets a copy of each call from here (`mirror` resolved, see `mirror.rs`).
    pub mirror_group: Option<usize>,
}

impl Default for LocConf {
    fn default() -> Self {
        LocConf {
            connect_timeout: UNSET_MSEC,
            timeout: UNSET_MSEC,
            pass: None,
            group: 0,
            mirror: None,
            mirror_group: None,
        }
    }
}

impl LocConf {
    /// Inherits `ase_pass` and finds its group: `Err` (message, where the `ase_pass` is)
    /// for a name that no `ase_upstream` block has. Names are resolved once the whole http
    /// block is read, so `ase_pass` may come before the block it names.
    pub fn resolve_pass(&mut self, prev: &LocConf, main: &MainConf) -> Result<(), (String, String)> {
        if self.pass.is_none() {
            self.pass = prev.pass.clone();
        }
        self.group = match &self.pass {
            None => 0,
            Some((name, at)) => main.group_index(name).ok_or_else(|| {
                (format!("no \"ase_upstream\" block is named \"{name}\" in \"ase_pass\" directive"), at.clone())
            })?,
        };
        Ok(())
    }
}

impl Merge for LocConf {
    fn merge(&mut self, prev: &LocConf) -> Result<(), MergeConfigError> {
        merge(&mut self.connect_timeout, prev.connect_timeout, UNSET_MSEC, DEFAULT_CONNECT_TIMEOUT_MS);
        merge(&mut self.timeout, prev.timeout, UNSET_MSEC, DEFAULT_TIMEOUT_MS);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_inherits_then_defaults() {
        let http = LocConf { timeout: 900, ..LocConf::default() };
        let mut server = LocConf::default();
        server.merge(&http).unwrap();
        let mut location = LocConf { connect_timeout: 50, ..LocConf::default() };
        location.merge(&server).unwrap();
        assert_eq!((server.connect_timeout, server.timeout), (DEFAULT_CONNECT_TIMEOUT_MS, 900));
        assert_eq!((location.connect_timeout, location.timeout), (50, 900));
    }

    fn with_servers(urls: &[&str], token: bool) -> MainConf {
        let mut m = MainConf::default();
        for u in urls {
            let spec = crate::conf::settings::parse_server(&[u.as_bytes()]).unwrap();
            let ip: std::net::IpAddr = spec.url.host.parse().unwrap();
            m.addresses.push(vec![std::net::SocketAddr::new(ip, spec.url.port)]);
            m.servers.push(spec);
            m.server_positions.push(format!("nginx.conf:{}", m.servers.len()));
        }
        if token {
            let t = crate::conf::settings::parse_token(b"abcdefghij0123456789abcdefghij01").unwrap();
            m.token = Some((t, TokenSource::Inline));
        }
        m
    }

    #[test]
    fn a_token_to_an_http_node_off_this_host_is_found() {
        let urls = [
            "http://127.0.0.1:8000",
            "http://192.0.2.1:8000",
            "https://192.0.2.2",
            "http://[::1]:1",
            "http://[2001:db8::1]:1",
        ];
        let found: Vec<String> =
            with_servers(&urls, true).clear_text_token_nodes().into_iter().map(|(u, _)| u).collect();
        assert_eq!(found, vec!["http://192.0.2.1:8000", "http://[2001:db8::1]:1"]);
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
        assert_eq!(
            m.client_certificate().unwrap().map(|(c, k)| (c.path.as_str(), k.path.as_str())),
            Some(("/c.pem", "/k.pem"))
        );
        m.ssl_certificate = None;
        assert!(m
            .client_certificate()
            .unwrap_err()
            .0
            .contains("no \"ase_ssl_certificate\" is defined for key \"/k.pem\""));
    }

    #[test]
    fn main_defaults() {
        let mut m = MainConf { keepalive: 4, ..MainConf::default() };
        m.finish();
        assert_eq!((m.keepalive, m.ssl_verify, m.response_queue), (4, 1, DEFAULT_RESPONSE_QUEUE));
        assert_eq!(m.header.server_count, 0);
    }

    fn group(name: &str, urls: &[&str], token: Option<&[u8]>) -> GroupConf {
        let m = with_servers(urls, false);
        let token = token.map(|t| (crate::conf::settings::parse_token(t).unwrap(), TokenSource::Inline));
        let MainConf { servers, addresses, server_positions, .. } = m;
        GroupConf {
            name: name.into(),
            position: String::new(),
            servers,
            addresses,
            server_positions,
            token,
            keepalive: None,
            least_conn: false,
            hash: None,
            keepalive_timeout: None,
            keepalive_requests: None,
            keepalive_time: None,
            latency_guard: None,
        }
    }

    /// The later of `least_conn` and `hash` is the block's balancing (the lines clear each
    /// other); a `backup` server with `hash` is named by its line.
    #[test]
    fn a_block_balances_by_its_method_and_hash_refuses_backup() {
        use crate::health::Balance;
        let mut g = group("h", &["http://127.0.0.1:1", "http://127.0.0.1:2"], None);
        assert_eq!(g.balance(), Balance::RoundRobin);
        g.least_conn = true;
        assert_eq!(g.balance(), Balance::LeastConn);
        g.least_conn = false;
        g.hash = Some(HashKey { value: core::ptr::null_mut(), consistent: true });
        assert_eq!(g.balance(), Balance::Hash { consistent: true });
        assert_eq!(g.backup_with_hash(), None);
        g.servers[1].backup = true;
        let (msg, at) = g.backup_with_hash().expect("refused");
        assert!(msg.starts_with("invalid parameter \"backup\" in \"server\" directive of ase_upstream \"h\""), "{msg}");
        assert_eq!(at, "nginx.conf:2");
        g.hash = None;
        assert_eq!(g.backup_with_hash(), None, "backups are fine without hash");
    }

    #[test]
    fn keepalive_limits_default_to_nginx_and_blocks_inherit_what_they_do_not_set() {
        let mut m = with_servers(&["http://127.0.0.1:1"], true);
        m.groups.push(group("eu", &["http://127.0.0.2:1"], None));
        m.groups.push(group("us", &["http://127.0.0.3:1"], None));
        m.keepalive_requests = 7;
        m.groups[1].keepalive_timeout = Some(1500);
        m.groups[1].keepalive_time = Some(9000);
        m.finish();
        let limits: Vec<_> = m.group_views().iter().map(|v| v.pool_limits).collect();
        let default = crate::engine::PoolLimits { idle_timeout_ms: 60_000, requests: 7, max_age_ms: 3_600_000 };
        assert_eq!(limits[0], default);
        assert_eq!(limits[1], default);
        assert_eq!(limits[2], crate::engine::PoolLimits { idle_timeout_ms: 1500, requests: 7, max_age_ms: 9000 });
        assert_eq!(m.socket_keepalive, 0);
    }

    #[test]
    fn groups_come_after_the_default_one_with_their_own_token_and_keepalive() {
        let mut m = with_servers(&["http://127.0.0.1:1"], true);
        m.groups.push(group("eu", &["http://127.0.0.2:1", "http://192.0.2.9:1"], None));
        m.groups.push(group("us", &["http://192.0.2.7:1"], Some(b"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzz99")));
        m.groups[1].keepalive = Some(3);
        m.keepalive = 8;
        m.finish();
        assert_eq!(m.header.server_count, 4);
        assert_eq!(
            (m.group_index("default"), m.group_index("eu"), m.group_index("us"), m.group_index("x")),
            (Some(0), Some(1), Some(2), None)
        );
        let nodes: Vec<(usize, String)> = m.nodes().into_iter().map(|(g, n)| (g, n.addr.to_string())).collect();
        assert_eq!(
            nodes,
            vec![
                (0, "127.0.0.1:1".into()),
                (1, "127.0.0.2:1".into()),
                (1, "192.0.2.9:1".into()),
                (2, "192.0.2.7:1".into())
            ]
        );
        assert_eq!(m.node_count(), 4);
        let views = m.group_views();
        assert_eq!(views.iter().map(|v| v.keepalive).collect::<Vec<_>>(), vec![8, 8, 3]);
        assert_eq!(views[1].token.map(|t| t.as_bytes()), m.token.as_ref().map(|(t, _)| t.as_bytes()), "inherited");
        assert_eq!(views[2].token.map(|t| t.as_bytes()), Some(&b"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzz99"[..]));
        let clear: Vec<String> = m.clear_text_token_nodes().into_iter().map(|(u, _)| u).collect();
        assert_eq!(clear, vec!["http://192.0.2.9:1", "http://192.0.2.7:1"]);
    }

    #[test]
    fn ase_pass_is_inherited_and_resolved_by_name() {
        let mut m = MainConf::default();
        m.groups.push(group("eu", &["http://127.0.0.2:1"], None));
        let http = LocConf { pass: Some(("eu".into(), "nginx.conf:3".into())), ..LocConf::default() };
        let mut server = LocConf::default();
        server.resolve_pass(&http, &m).unwrap();
        assert_eq!(server.group, 1);
        let mut back = LocConf { pass: Some(("default".into(), "nginx.conf:9".into())), ..LocConf::default() };
        back.resolve_pass(&server, &m).unwrap();
        assert_eq!(back.group, 0, "ase_pass default goes back to the ase_server lines");
        let mut none = LocConf::default();
        none.resolve_pass(&LocConf::default(), &m).unwrap();
        assert_eq!(none.group, 0);
        let mut bad = LocConf { pass: Some(("nope".into(), "nginx.conf:12".into())), ..LocConf::default() };
        let (msg, at) = bad.resolve_pass(&server, &m).unwrap_err();
        assert!(msg.contains("no \"ase_upstream\" block is named \"nope\""), "{msg}");
        assert_eq!(at, "nginx.conf:12");
    }
}
