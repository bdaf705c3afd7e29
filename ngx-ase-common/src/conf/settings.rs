//! Parsing of the common module's directive values, in safe Rust. Values that nginx has
//! its own parser for (`on|off`, times, numbers, paths) go through nginx's slot functions
//! instead, so their syntax and messages are exactly nginx's; a time inside a parameter
//! (`fail_timeout=`) by nginx's rules (`ngx_ase_glue::time`).

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};

use ngx_ase_glue::time::{parse_msec, TimeError, MAX_MSEC_TEXT};

/// One `ase_server URL [backup] [weight=N] [max_conns=N] [max_fails=N] [fail_timeout=T] [resolve];` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSpec {
    pub url: AseUrl,
    pub backup: bool,
    /// Failures within `fail_timeout_ms` that mark the node down; 0 never marks it down.
    pub max_fails: u32,
    /// How long a node stays down, and the window in which failures count.
    pub fail_timeout_ms: u64,
    /// Its share of the calls among the nodes of its role (round robin), as in nginx.
    pub weight: u32,
    /// The most calls in flight to the node at once in a worker (0: no limit), as in nginx.
    pub max_conns: u32,
    /// `resolve`: the host name is resolved by nginx's `resolver` while nginx runs, and its
    /// addresses followed (`RESOLVE_SLOTS` node slots), instead of once at configuration.
    pub resolve: bool,
}

/// Node slots a `resolve` server keeps: the most addresses of its name used at a time.
pub const RESOLVE_SLOTS: usize = 8;

impl ServerSpec {
    /// The addresses a server line stands for when the configuration is read: those its
    /// host resolves to now, or, with `resolve`, `RESOLVE_SLOTS` empty slots (the
    /// unspecified address) that the worker fills from nginx's resolver.
    pub fn config_addresses(&self) -> Result<Vec<SocketAddr>, String> {
        if !self.resolve {
            return self.url.resolve();
        }
        if !self.url.host_is_name() {
            return Err(format!("\"resolve\" needs a host name; \"{}\" is an address", self.url.host));
        }
        Ok(vec![SocketAddr::from(([0, 0, 0, 0], self.url.port)); RESOLVE_SLOTS])
    }
}

pub const DEFAULT_MAX_FAILS: u32 = 1;
pub const DEFAULT_FAIL_TIMEOUT_MS: u64 = 10_000;

/// An ASE node's address as written in the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AseUrl {
    pub tls: bool,
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    pub port: u16,
}

impl AseUrl {
    /// The `Host` header value (and the name shown in logs).
    pub fn authority(&self) -> String {
        let default_port = if self.tls { 443 } else { 80 };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// Whether the host is a name (SNI and certificate name checks apply) or an IP literal.
    pub fn host_is_name(&self) -> bool {
        self.host.parse::<std::net::IpAddr>().is_err()
    }

    /// Resolves the host with the system resolver, as nginx does for upstream servers at
    /// configuration time: every address, in the resolver's order, each once.
    pub fn resolve(&self) -> Result<Vec<SocketAddr>, String> {
        let addrs = unique(
            (self.host.as_str(), self.port)
                .to_socket_addrs()
                .map_err(|e| format!("host not found in \"{}\": {e}", self.host))?,
        );
        if addrs.is_empty() {
            return Err(format!("host not found in \"{}\"", self.host));
        }
        Ok(addrs)
    }
}

/// The addresses in their order, each kept once (a hosts file may list one twice).
pub fn unique(addrs: impl IntoIterator<Item = SocketAddr>) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = Vec::new();
    for a in addrs {
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

/// One ASE node: one address of an `ase_server` line. A host name that resolves to several
/// addresses gives one node per address, in the resolver's order, as nginx upstream servers
/// do; they share the line's role, `max_fails` and `fail_timeout`, and its host name for
/// the `Host` header, SNI and the certificate check, but each has its own health.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub server: ServerSpec,
    pub addr: SocketAddr,
}

impl Node {
    /// The name in logs and on the status page: the URL, and for a host name the address
    /// too (`http://ase.example:8000 (127.0.0.1:8000)`). A URL with an IP address is the
    /// address already, so it is shown alone.
    pub fn display(&self) -> String {
        if self.server.url.host_is_name() {
            node_display(&self.server.url, &self.addr)
        } else {
            self.server.url.to_string()
        }
    }
}

/// A node's name for a host name and one of its addresses.
pub fn node_display(url: &AseUrl, addr: &SocketAddr) -> String {
    format!("{url} ({addr})")
}

/// The nodes of the `ase_server` lines (`addresses[i]` are those `servers[i]` resolved to),
/// in failover order: line by line, and within a line in the resolver's order.
pub fn expand_nodes(servers: &[ServerSpec], addresses: &[Vec<SocketAddr>]) -> Vec<Node> {
    servers
        .iter()
        .zip(addresses)
        .flat_map(|(s, addrs)| addrs.iter().map(move |a| Node { server: s.clone(), addr: *a }))
        .collect()
}

/// Checks that `url`, resolving to `adding` addresses after `so_far` node addresses, keeps
/// the channel within `MAX_NODES` (a call marks the nodes it tried in a `u64`).
pub fn check_node_count(url: &AseUrl, so_far: usize, adding: usize) -> Result<(), String> {
    let max = crate::health::MAX_NODES;
    let total = so_far + adding;
    if total <= max {
        return Ok(());
    }
    let what = if url.host_is_name() {
        format!("\"{}\" resolves to {adding} address{}, which makes", url.host, if adding == 1 { "" } else { "es" })
    } else {
        "this makes".to_string()
    };
    Err(format!("{url}: {what} {total} ASE node addresses; at most {max} are supported (every address a host name resolves to is a node)"))
}

impl fmt::Display for AseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", if self.tls { "https" } else { "http" }, self.authority())
    }
}

/// Parses `http://host[:port][/]` or `https://...`.
pub fn parse_url(raw: &[u8]) -> Result<AseUrl, String> {
    let text = std::str::from_utf8(raw).map_err(|_| "the URL is not valid UTF-8".to_string())?;
    let bad = |why: &str| format!("invalid ASE URL \"{text}\": {why}");
    let (tls, rest) = if let Some(r) = strip_prefix_ignore_case(text, "http://") {
        (false, r)
    } else if let Some(r) = strip_prefix_ignore_case(text, "https://") {
        (true, r)
    } else {
        return Err(bad("it must start with http:// or https://"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if !(path.is_empty() || path == "/") {
        return Err(bad("give only scheme, host and port; the module adds /ase/request and /ase/response"));
    }
    if authority.contains('@') {
        return Err(bad("user information is not supported"));
    }
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let end = v6.find(']').ok_or_else(|| bad("unterminated [IPv6] address"))?;
        let host = &v6[..end];
        let after = &v6[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => parse_port(p).ok_or_else(|| bad("invalid port"))?,
            None if after.is_empty() => default_port,
            None => return Err(bad("unexpected text after the IPv6 address")),
        };
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad("invalid IPv6 address"));
        }
        (host.to_string(), port)
    } else {
        match authority.split_once(':') {
            Some((_, p)) if p.contains(':') => {
                return Err(bad("an IPv6 address must be in brackets: http://[::1]:8000"))
            }
            Some((h, p)) => (h.to_string(), parse_port(p).ok_or_else(|| bad("invalid port"))?),
            None => (authority.to_string(), default_port),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    if !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':' || b == b'_') {
        return Err(bad("invalid host name"));
    }
    Ok(AseUrl { tls, host, port })
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes()) {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse::<u16>().ok().filter(|&n| n > 0)
}

/// Parses the arguments of `ase_server` (everything after the directive name).
pub fn parse_server(args: &[&[u8]]) -> Result<ServerSpec, String> {
    let (url, params) = args.split_first().ok_or("a URL is required")?;
    let mut spec = ServerSpec {
        url: parse_url(url)?,
        backup: false,
        max_fails: DEFAULT_MAX_FAILS,
        fail_timeout_ms: DEFAULT_FAIL_TIMEOUT_MS,
        weight: 1,
        max_conns: 0,
        resolve: false,
    };
    for param in params {
        let text = String::from_utf8_lossy(param);
        if let Some(v) = text.strip_prefix("max_fails=") {
            spec.max_fails = Some(v)
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u32>().ok())
                .ok_or_else(|| format!("invalid max_fails value \"{v}\""))?;
        } else if let Some(v) = text.strip_prefix("weight=") {
            // As nginx's upstream: a positive whole number (the round robin's sums saturate).
            spec.weight = Some(v)
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u32>().ok())
                .filter(|&w| w > 0 && w <= i32::MAX as u32)
                .ok_or_else(|| format!("invalid weight value \"{v}\""))?;
        } else if let Some(v) = text.strip_prefix("max_conns=") {
            spec.max_conns = Some(v)
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u32>().ok())
                .ok_or_else(|| format!("invalid max_conns value \"{v}\""))?;
        } else if let Some(v) = text.strip_prefix("fail_timeout=") {
            spec.fail_timeout_ms = parse_fail_timeout(v)?;
        } else if text == "backup" {
            spec.backup = true;
        } else if text == "resolve" {
            spec.resolve = true;
        } else {
            return Err(format!("invalid parameter \"{text}\""));
        }
    }
    Ok(spec)
}

/// The name of the group the http-level `ase_server` lines make (`ase_pass default;`).
pub const DEFAULT_GROUP: &str = "default";

/// Checks an `ase_upstream` name: letters, digits, `_`, `-` and `.` (it appears in the
/// status page's JSON keys and Prometheus labels), and not `default`, which names the
/// http-level `ase_server` lines.
pub fn parse_group_name(raw: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(raw);
    if text.is_empty() || !raw.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')) {
        return Err(format!("invalid group name \"{text}\" (letters, digits, \"_\", \"-\" and \".\" only)"));
    }
    if text == DEFAULT_GROUP {
        return Err(format!("the name \"{text}\" is reserved for the http-level \"ase_server\" lines"));
    }
    Ok(text.into_owned())
}

/// `fail_timeout=`: nginx's time syntax with milliseconds allowed (`500ms`; nginx's own
/// upstream takes whole seconds), a bare number in seconds, at most nginx's largest time.
pub fn parse_fail_timeout(raw: &str) -> Result<u64, String> {
    parse_msec(raw.as_bytes()).map_err(|e| match e {
        TimeError::Syntax => format!(
            "invalid fail_timeout value \"{raw}\", it must be a time such as 10s, 1m30s or 500ms (units from the largest to the smallest, each once)"
        ),
        TimeError::TooLarge => format!("fail_timeout value \"{raw}\" is too large, it must be at most {MAX_MSEC_TEXT}"),
    })
}

/// `ase_zone`'s sizes: room for the counters (`1m` is plenty), and at most 1024m. A larger
/// size is a typo; one nginx cannot map fails at `mmap` without naming the directive, and
/// nginx writes a descriptor for every page of the zone at start.
pub const MIN_ZONE_SIZE: usize = 64 * 1024;
pub const MAX_ZONE_SIZE: usize = 1024 * 1024 * 1024;

/// Checks `ase_zone`'s size, once nginx's size parser has read it.
pub fn check_zone_size(name: &[u8], size: usize) -> Result<usize, String> {
    let name = String::from_utf8_lossy(name);
    if size < MIN_ZONE_SIZE {
        Err(format!("zone \"{name}\" is too small, it must be at least 64k"))
    } else if size > MAX_ZONE_SIZE {
        Err(format!("zone \"{name}\" is too large, it must be at most 1024m"))
    } else {
        Ok(size)
    }
}

/// The `ASE-Token`. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Vec<u8>);

impl Token {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Token {
    /// The token's bytes are zeroed before its memory is freed.
    fn drop(&mut self) {
        crate::secret::zeroize_vec(&mut self.0);
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(<{} bytes, hidden>)", self.0.len())
    }
}

/// Why a token is refused. The variants carry no byte of the token, so no message can
/// show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenError {
    /// Nothing but white space.
    Empty,
    /// A byte an HTTP header cannot carry, at this 1-based position of the trimmed token.
    BadByte { at: usize },
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Empty => f.write_str("the token is empty"),
            TokenError::BadByte { at } => {
                write!(f, "the token has a character that cannot be sent in an HTTP header (at byte {at})")
            }
        }
    }
}

/// Checks a token read from `ase_token_file` (surrounding white space trimmed) or given
/// inline.
pub fn parse_token(raw: &[u8]) -> Result<Token, TokenError> {
    let trimmed = raw.trim_ascii();
    if trimmed.is_empty() {
        return Err(TokenError::Empty);
    }
    if let Some(pos) = trimmed.iter().position(|&b| !(0x21..=0x7e).contains(&b)) {
        return Err(TokenError::BadByte { at: pos + 1 });
    }
    Ok(Token(trimmed.to_vec()))
}

/// Whether every address is on this host (127.0.0.0/8, ::1, or 127.x as an IPv4-mapped
/// IPv6 address): what is sent there in clear text does not cross a network.
pub fn all_loopback(addrs: &[SocketAddr]) -> bool {
    addrs.iter().all(|a| match a.ip() {
        std::net::IpAddr::V4(v4) => v4.is_loopback(),
        std::net::IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    })
}

/// Whether the token has the shape ASE's `create_sideband_token` produces (32 × `a-z0-9`).
pub fn token_looks_like_ase(t: &Token) -> bool {
    t.0.len() == 32 && t.0.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = parse_url(b"http://ase.local:8000").unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port), (false, "ase.local", 8000));
        assert_eq!(u.authority(), "ase.local:8000");
        let u = parse_url(b"HTTPS://10.0.0.5/").unwrap();
        assert_eq!((u.tls, u.port, u.authority()), (true, 443, "10.0.0.5".to_string()));
        assert!(!u.host_is_name());
        let u = parse_url(b"http://[::1]:8000").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.authority()), ("::1", 8000, "[::1]:8000".to_string()));
        assert_eq!(u.to_string(), "http://[::1]:8000");
    }

    #[test]
    fn bad_urls_say_why() {
        for (raw, why) in [
            (&b"ftp://x"[..], "must start with http"),
            (b"ase.local:8000", "must start with http"),
            (b"http://", "no host"),
            (b"http://h:0", "invalid port"),
            (b"http://h:99999", "invalid port"),
            (b"http://h:80x", "invalid port"),
            (b"http://h/ase/request", "give only scheme"),
            (b"http://u@h", "user information"),
            (b"http://[::1", "unterminated"),
            (b"http://[zz]:1", "invalid IPv6"),
            (b"http://h!st", "invalid host"),
            (b"http://::1", "must be in brackets"),
            (b"http://a:b:80", "must be in brackets"),
        ] {
            let err = parse_url(raw).unwrap_err();
            assert!(err.contains(why), "{:?}: {err}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn server_parameters() {
        let s = parse_server(&[b"http://a:1", b"backup", b"max_fails=3", b"fail_timeout=30s"]).unwrap();
        assert!(s.backup);
        assert_eq!((s.max_fails, s.fail_timeout_ms), (3, 30_000));
        let s = parse_server(&[b"http://a:1", b"fail_timeout=10"]).unwrap();
        assert_eq!((s.backup, s.max_fails, s.fail_timeout_ms), (false, 1, 10_000));
        assert!(parse_server(&[b"http://a:1", b"down"]).unwrap_err().contains("invalid parameter \"down\""));
        assert_eq!(parse_server(&[b"http://a:1", b"weight=5"]).unwrap().weight, 5);
        assert_eq!(parse_server(&[b"http://a:1"]).unwrap().weight, 1);
        assert_eq!(parse_server(&[b"http://a:1", b"max_conns=100"]).unwrap().max_conns, 100);
        assert_eq!(parse_server(&[b"http://a:1"]).unwrap().max_conns, 0);
        assert!(parse_server(&[b"http://a:1", b"max_conns=-1"]).unwrap_err().contains("invalid max_conns value"));
        for bad in ["weight=0", "weight=", "weight=-1", "weight=+2", "weight=2x", "weight=99999999999"] {
            let err = parse_server(&[b"http://a:1", bad.as_bytes()]).unwrap_err();
            assert!(err.contains("invalid weight value"), "{bad}: {err}");
        }
        assert!(parse_server(&[b"http://a:1", b"max_fails=x"]).unwrap_err().contains("max_fails"));
        assert!(parse_server(&[b"http://a:1", b"max_fails=+3"]).unwrap_err().contains("max_fails"));
        assert!(parse_server(&[b"http://a:1", b"fail_timeout=1x"]).unwrap_err().contains("fail_timeout"));
        assert!(parse_server(&[]).is_err());
        let s = parse_server(&[b"http://ase.example:8000", b"resolve"]).unwrap();
        assert!(s.resolve);
        assert_eq!(s.config_addresses().unwrap().len(), RESOLVE_SLOTS, "slots, filled at run time");
        let ip = parse_server(&[b"http://10.0.0.1:8000", b"resolve"]).unwrap();
        assert!(ip.config_addresses().unwrap_err().contains("needs a host name"));
    }

    #[test]
    fn group_names() {
        assert_eq!(parse_group_name(b"eu-west_1.a").unwrap(), "eu-west_1.a");
        assert!(parse_group_name(b"default").unwrap_err().contains("reserved"));
        for bad in [&b""[..], b"a b", b"a\"b", b"a{"] {
            assert!(parse_group_name(bad).unwrap_err().contains("invalid group name"), "{bad:?}");
        }
    }

    #[test]
    fn fail_timeout_takes_nginxs_times_and_milliseconds() {
        assert_eq!(parse_fail_timeout("500ms"), Ok(500));
        assert_eq!(parse_fail_timeout("1m30s"), Ok(90_000));
        assert_eq!(parse_fail_timeout("7"), Ok(7_000));
        assert_eq!(parse_fail_timeout(MAX_MSEC_TEXT), Ok(i64::MAX as u64));
        for bad in ["", "s", "5x", "-1", "1.5s", "1s1m", "1s1s", "1ms1s"] {
            let err = parse_fail_timeout(bad).unwrap_err();
            assert!(err.starts_with(&format!("invalid fail_timeout value \"{bad}\"")), "{err}");
        }
        for big in ["18446744073709551s", "9223372036854775808ms", "99999999999999999999y"] {
            let err = parse_fail_timeout(big).unwrap_err();
            assert!(err.contains("is too large, it must be at most 9223372036854775807ms"), "{err}");
        }
        let err = parse_server(&[b"http://a:1", b"fail_timeout=1s1m"]).unwrap_err();
        assert!(err.contains("invalid fail_timeout value \"1s1m\""), "{err}");
    }

    #[test]
    fn zone_sizes() {
        assert_eq!(check_zone_size(b"ase", 64 * 1024), Ok(64 * 1024));
        assert_eq!(check_zone_size(b"ase", 1024 * 1024 * 1024), Ok(MAX_ZONE_SIZE));
        assert!(check_zone_size(b"ase", 64 * 1024 - 1).unwrap_err().contains("\"ase\" is too small"));
        for big in [MAX_ZONE_SIZE + 1, i64::MAX as usize] {
            assert_eq!(
                check_zone_size(b"ase", big).unwrap_err(),
                "zone \"ase\" is too large, it must be at most 1024m"
            );
        }
    }

    #[test]
    fn tokens_are_trimmed_checked_and_never_shown() {
        let t = parse_token(b"  abcdefghij0123456789abcdefghij01\n").unwrap();
        assert!(token_looks_like_ase(&t));
        assert!(!format!("{t:?}").contains("abcdef"));
        assert_eq!(parse_token(b" \n").unwrap_err(), TokenError::Empty);
        assert_eq!(parse_token(b" secret with space").unwrap_err(), TokenError::BadByte { at: 7 });
        assert_eq!(
            TokenError::BadByte { at: 7 }.to_string(),
            "the token has a character that cannot be sent in an HTTP header (at byte 7)"
        );
        assert_eq!(TokenError::Empty.to_string(), "the token is empty");
        assert!(!token_looks_like_ase(&parse_token(b"short").unwrap()));
    }

    fn server(url: &str, backup: bool) -> ServerSpec {
        ServerSpec {
            url: parse_url(url.as_bytes()).unwrap(),
            backup,
            max_fails: 3,
            weight: 1,
            max_conns: 0,
            fail_timeout_ms: 30_000,
            resolve: false,
        }
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_name_with_two_addresses_is_two_nodes_in_order() {
        let servers = [server("http://ase.example:8000", false), server("http://10.0.0.9:8000", true)];
        let addresses = [vec![addr("[::1]:8000"), addr("127.0.0.1:8000")], vec![addr("10.0.0.9:8000")]];
        let nodes = expand_nodes(&servers, &addresses);
        assert_eq!(nodes.len(), 3);
        assert_eq!(
            nodes.iter().map(|n| n.addr).collect::<Vec<_>>(),
            [addr("[::1]:8000"), addr("127.0.0.1:8000"), addr("10.0.0.9:8000")]
        );
        // Both addresses of the name keep its role, limits and name.
        for n in &nodes[..2] {
            assert_eq!(n.server, servers[0]);
            assert_eq!(n.server.url.authority(), "ase.example:8000");
        }
        assert!(nodes[2].server.backup);
        assert_eq!(nodes[0].display(), "http://ase.example:8000 ([::1]:8000)");
        assert_eq!(nodes[1].display(), "http://ase.example:8000 (127.0.0.1:8000)");
        assert_eq!(nodes[2].display(), "http://10.0.0.9:8000", "an IP URL is shown as it was");
        assert!(expand_nodes(&[], &[]).is_empty());
    }

    #[test]
    fn repeated_addresses_are_one_node() {
        let a = addr("127.0.0.1:1");
        let b = addr("[::1]:1");
        assert_eq!(unique([b, a, b, a]), [b, a]);
    }

    #[test]
    fn more_than_64_node_addresses_is_an_error() {
        let name = parse_url(b"http://ase.example:8000").unwrap();
        assert!(check_node_count(&name, 62, 2).is_ok());
        let err = check_node_count(&name, 62, 3).unwrap_err();
        assert!(
            err.contains("\"ase.example\" resolves to 3 addresses")
                && err.contains("65 ASE node addresses")
                && err.contains("at most 64"),
            "{err}"
        );
        let ip = parse_url(b"http://10.0.0.1:8000").unwrap();
        let err = check_node_count(&ip, 64, 1).unwrap_err();
        assert!(err.starts_with("http://10.0.0.1:8000: this makes 65"), "{err}");
    }

    #[test]
    fn loopback_addresses() {
        let a = |s: &str| -> SocketAddr { s.parse().unwrap() };
        assert!(all_loopback(&[a("127.0.0.1:80"), a("127.9.9.9:1"), a("[::1]:80"), a("[::ffff:127.0.0.1]:80")]));
        assert!(!all_loopback(&[a("127.0.0.1:80"), a("192.0.2.1:80")]));
        assert!(!all_loopback(&[a("[2001:db8::1]:80")]));
        assert!(!all_loopback(&[a("[::ffff:10.0.0.1]:80")]));
        assert!(!all_loopback(&[a("0.0.0.0:80")]));
    }

    #[test]
    fn resolves_loopback() {
        let u = parse_url(b"http://127.0.0.1:8000").unwrap();
        assert_eq!(u.resolve().unwrap()[0], "127.0.0.1:8000".parse().unwrap());
        assert!(parse_url(b"http://no-such-host.invalid:1").unwrap().resolve().is_err());
    }
}
