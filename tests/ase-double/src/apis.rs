//! API definitions in the ASE's JSON shape, and which API a request belongs to.

use std::path::Path;

use serde::Deserialize;

/// What the double keeps of one ASE API definition (`api_metadata`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Api {
    #[serde(deserialize_with = "nullable")]
    pub protocol: String,
    #[serde(deserialize_with = "nullable")]
    pub url: String,
    #[serde(deserialize_with = "nullable")]
    pub hostname: String,
    #[serde(deserialize_with = "nullable")]
    pub cookie: String,
    #[serde(deserialize_with = "nullable")]
    pub oauth2_access_token: bool,
    #[serde(deserialize_with = "nullable")]
    pub apikey_qs: String,
    #[serde(deserialize_with = "nullable")]
    pub apikey_header: String,
    #[serde(deserialize_with = "nullable")]
    pub enable_blocking: bool,
}

/// A field given as `null` takes its type's default (off / empty).
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

impl Default for Api {
    fn default() -> Self {
        Api {
            protocol: "http".to_string(),
            url: "/".to_string(),
            hostname: "*".to_string(),
            cookie: String::new(),
            oauth2_access_token: false,
            apikey_qs: String::new(),
            apikey_header: String::new(),
            enable_blocking: false,
        }
    }
}

impl Api {
    /// The API used when no `--apis` is given: everything, blocking on.
    pub fn builtin() -> Api {
        Api {
            url: "/".to_string(),
            hostname: "*".to_string(),
            cookie: "JSESSIONID".to_string(),
            oauth2_access_token: true,
            apikey_qs: "apikey".to_string(),
            apikey_header: "x-api-key".to_string(),
            enable_blocking: true,
            ..Api::default()
        }
    }

    /// Whether `path` lies under this API's url prefix, on path segment boundaries.
    pub fn matches_path(&self, path: &str) -> bool {
        let prefix = self.url.trim_end_matches('/');
        if prefix.is_empty() {
            return true;
        }
        match path.strip_prefix(prefix) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }

    /// Whether this API serves the given `host` header value (`*` serves any host; the
    /// host is compared with and without its `:port`).
    pub fn matches_host(&self, host: Option<&str>) -> bool {
        if self.hostname == "*" {
            return true;
        }
        let Some(host) = host.map(str::trim) else {
            return false;
        };
        host.eq_ignore_ascii_case(&self.hostname) || strip_port(host).eq_ignore_ascii_case(&self.hostname)
    }

    fn prefix_len(&self) -> usize {
        self.url.trim_end_matches('/').len()
    }
}

/// `host:port` → `host`, `[v6]:port` → `[v6]`; anything else unchanged.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// Why no API was found for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiMiss {
    /// No API url is a prefix of the path: `Error: Unknown API`.
    UnknownApi,
    /// Some are, but none serves the request's host: `Error: Unknown Hostname`.
    UnknownHostname,
}

/// The API of a request: among the APIs whose url is a prefix of `path` and whose hostname
/// serves `host`, the one with the longest url (an exact hostname wins over `*` at equal
/// length).
pub fn find_api<'a>(apis: &'a [Api], path: &str, host: Option<&str>) -> Result<&'a Api, ApiMiss> {
    let mut any_prefix = false;
    let mut best: Option<&Api> = None;
    for api in apis.iter().filter(|a| a.matches_path(path)) {
        any_prefix = true;
        if !api.matches_host(host) {
            continue;
        }
        let better = match best {
            None => true,
            Some(b) => {
                api.prefix_len() > b.prefix_len()
                    || (api.prefix_len() == b.prefix_len() && b.hostname == "*" && api.hostname != "*")
            }
        };
        if better {
            best = Some(api);
        }
    }
    match best {
        Some(api) => Ok(api),
        None if any_prefix => Err(ApiMiss::UnknownHostname),
        None => Err(ApiMiss::UnknownApi),
    }
}

#[derive(Deserialize)]
struct ApiFile {
    api_metadata: Api,
}

/// Parses one API definition file's text.
pub fn parse_api(text: &str) -> Result<Api, String> {
    let file: ApiFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut api = file.api_metadata;
    if !api.url.starts_with('/') {
        return Err(format!("api_metadata.url must start with '/': {:?}", api.url));
    }
    if api.hostname.trim().is_empty() {
        api.hostname = "*".to_string();
    }
    Ok(api)
}

/// Loads `--apis`: one file, or every `*.json` file of a directory (sorted by name).
pub fn load(path: &Path) -> Result<Vec<Api>, String> {
    let files = if path.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| format!("--apis {}: {e}", path.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|ext| ext == "json"))
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut apis = Vec::with_capacity(files.len());
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        apis.push(parse_api(&text).map_err(|e| format!("{}: {e}", file.display()))?);
    }
    if apis.is_empty() {
        return Err(format!("--apis {}: no API definition (*.json) found", path.display()));
    }
    Ok(apis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(url: &str, hostname: &str) -> Api {
        Api { url: url.to_string(), hostname: hostname.to_string(), ..Api::default() }
    }

    #[test]
    fn prefix_on_segment_boundaries() {
        let a = api("/shop", "*");
        assert!(a.matches_path("/shop"));
        assert!(a.matches_path("/shop/"));
        assert!(a.matches_path("/shop/items"));
        assert!(!a.matches_path("/shopping"));
        assert!(!a.matches_path("/"));
        assert!(!a.matches_path("/other/shop"));
        let trailing = api("/shop/", "*");
        assert!(trailing.matches_path("/shop/items"));
        assert!(trailing.matches_path("/shop"));
        assert!(!trailing.matches_path("/shopping"));
        let root = api("/", "*");
        assert!(root.matches_path("/"));
        assert!(root.matches_path("/anything/at/all"));
    }

    #[test]
    fn longest_prefix_wins() {
        let apis = vec![api("/", "*"), api("/shop", "*"), api("/shop/admin", "*")];
        assert_eq!(find_api(&apis, "/shop/items", None).map(|a| a.url.as_str()), Ok("/shop"));
        assert_eq!(find_api(&apis, "/shop/admin/x", None).map(|a| a.url.as_str()), Ok("/shop/admin"));
        assert_eq!(find_api(&apis, "/shopping", None).map(|a| a.url.as_str()), Ok("/"));
        // the order of the definitions does not matter
        let reversed: Vec<Api> = apis.into_iter().rev().collect();
        assert_eq!(find_api(&reversed, "/shop/items", None).map(|a| a.url.as_str()), Ok("/shop"));
    }

    #[test]
    fn unknown_api() {
        let apis = vec![api("/shop", "*")];
        assert_eq!(find_api(&apis, "/other", Some("x")), Err(ApiMiss::UnknownApi));
        assert_eq!(find_api(&apis, "/shopping", Some("x")), Err(ApiMiss::UnknownApi));
        assert_eq!(find_api(&[], "/", Some("x")), Err(ApiMiss::UnknownApi));
    }

    #[test]
    fn hostname_check() {
        let apis = vec![api("/shop", "shop.example.com")];
        let found = |host| find_api(&apis, "/shop/x", host).map(|a| a.url.clone());
        assert!(found(Some("shop.example.com")).is_ok());
        assert!(found(Some("shop.example.com:8080")).is_ok());
        assert!(found(Some("SHOP.example.com")).is_ok());
        assert_eq!(found(Some("other.example.com")), Err(ApiMiss::UnknownHostname));
        assert_eq!(found(Some("shop.example.com.evil")), Err(ApiMiss::UnknownHostname));
        assert_eq!(found(None), Err(ApiMiss::UnknownHostname));
        // a hostname with a port matches the host header with that port only
        let with_port = vec![api("/", "shop.example.com:8080")];
        assert!(find_api(&with_port, "/", Some("shop.example.com:8080")).is_ok());
        assert_eq!(find_api(&with_port, "/", Some("shop.example.com")), Err(ApiMiss::UnknownHostname));
        // IPv6 literal
        let v6 = vec![api("/", "[::1]")];
        assert!(find_api(&v6, "/", Some("[::1]:8080")).is_ok());
    }

    #[test]
    fn hostname_falls_back_to_a_shorter_prefix_that_serves_the_host() {
        let apis = vec![api("/", "*"), api("/shop", "shop.example.com")];
        assert_eq!(
            find_api(&apis, "/shop/x", Some("shop.example.com")).map(|a| a.hostname.as_str()),
            Ok("shop.example.com")
        );
        assert_eq!(find_api(&apis, "/shop/x", Some("other")).map(|a| a.url.as_str()), Ok("/"));
        // same url, exact host beats *
        let apis = vec![api("/shop", "*"), api("/shop", "shop.example.com")];
        assert_eq!(
            find_api(&apis, "/shop", Some("shop.example.com")).map(|a| a.hostname.as_str()),
            Ok("shop.example.com")
        );
    }

    #[test]
    fn parses_the_ase_shape() {
        let a = parse_api(
            r#"{"api_metadata": {"protocol": "http", "url": "/shop", "hostname": "*", "cookie": "JSESSIONID",
                "oauth2_access_token": true, "apikey_qs": "apikey", "apikey_header": "x-api-key",
                "enable_blocking": true, "login_url": "", "api_mapping": {"internal_url": ""},
                "servers": [{"host": "127.0.0.1", "port": 8080}]}}"#,
        )
        .expect("parses");
        assert_eq!(a.url, "/shop");
        assert!(a.oauth2_access_token && a.enable_blocking);
        assert_eq!(a.apikey_header, "x-api-key");
        let minimal = parse_api(r#"{"api_metadata": {"url": "/min", "cookie": null}}"#).expect("parses");
        assert_eq!(minimal.hostname, "*");
        assert!(!minimal.enable_blocking && !minimal.oauth2_access_token);
        assert!(minimal.cookie.is_empty() && minimal.apikey_qs.is_empty());
        assert!(parse_api(r#"{"url": "/x"}"#).is_err());
        assert!(parse_api(r#"{"api_metadata": {"url": "x"}}"#).is_err());
        assert!(parse_api("not json").is_err());
    }
}
