//! The sideband protocol's rules: the token check, what a well-formed call looks like
//! (else 400), and the verdict on a request call (200, 403, 503).

use serde_json::Value;

use crate::apis::{find_api, Api, ApiMiss};
use crate::deny::{DenyKind, DenyList};

pub const UNAUTHORIZED: &str = "Error: Unauthorized";
pub const MALFORMED: &str = "Error: Malformed Request";
pub const UNKNOWN_API: &str = "Error: Unknown API";
pub const UNKNOWN_HOSTNAME: &str = "Error: Unknown Hostname";

/// What the `ASE-Token` header of a call was, as logged (never the value itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenStatus {
    /// The expected token; or any token when the double checks none.
    Ok,
    Missing,
    Wrong,
}

impl TokenStatus {
    pub fn name(self) -> &'static str {
        match self {
            TokenStatus::Ok => "ok",
            TokenStatus::Missing => "missing",
            TokenStatus::Wrong => "wrong",
        }
    }
}

/// Checks a call's `ASE-Token` header value against the configured token.
pub fn check_token(expected: Option<&str>, got: Option<&[u8]>) -> TokenStatus {
    let Some(got) = got.map(<[u8]>::trim_ascii).filter(|g| !g.is_empty()) else {
        return TokenStatus::Missing;
    };
    match expected {
        None => TokenStatus::Ok,
        Some(expected) if constant_time_eq(expected.as_bytes(), got) => TokenStatus::Ok,
        Some(_) => TokenStatus::Wrong,
    }
}

/// Whether a call with this token status is answered 401.
pub fn token_rejected(expected: Option<&str>, status: TokenStatus) -> bool {
    expected.is_some() && status != TokenStatus::Ok
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A well-formed `POST /ase/request` body.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestCall {
    pub source_ip: String,
    pub source_port: u64,
    pub method: String,
    pub url: String,
    pub http_version: String,
    pub headers: Vec<(String, String)>,
    pub user_info: Vec<(String, Value)>,
}

/// A well-formed `POST /ase/response` body.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseCall {
    pub response_code: String,
    pub response_status: String,
    pub http_version: String,
    pub headers: Vec<(String, String)>,
}

type Obj = serde_json::Map<String, Value>;

fn string_field(obj: &Obj, key: &str) -> Result<String, String> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(format!("{key} must be a string")),
        None => Err(format!("{key} is missing")),
    }
}

/// An array of objects with exactly one pair each: `[{"name": value}, ...]`.
fn pairs(value: &Value, key: &str) -> Result<Vec<(String, Value)>, String> {
    let Value::Array(items) = value else {
        return Err(format!("{key} must be an array"));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let pair = match item {
                Value::Object(o) if o.len() == 1 => o.iter().next(),
                _ => None,
            };
            pair.map(|(k, v)| (k.clone(), v.clone()))
                .ok_or_else(|| format!("{key}[{i}] must be an object with exactly one pair"))
        })
        .collect()
}

/// `user_info`: an array of objects. The object ngx-ase sends holds `username` and/or
/// `client_id`, both strings; single-pair objects (`[{"username": ...}, {"client_id": ...}]`)
/// are read as well. An object of several pairs with any other key, or a non-string value
/// for a known key, is malformed. Returned flat, in order.
fn user_info_field(value: &Value) -> Result<Vec<(String, Value)>, String> {
    let Value::Array(items) = value else {
        return Err("user_info must be an array".to_string());
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Value::Object(o) = item else {
            return Err(format!("user_info[{i}] must be an object"));
        };
        if o.is_empty() {
            return Err(format!("user_info[{i}] is empty"));
        }
        for (k, v) in o {
            let known = k == "username" || k == "client_id";
            if o.len() > 1 && !known {
                return Err(format!("user_info[{i}] has an unknown key {k:?}"));
            }
            if known && !v.is_string() {
                return Err(format!("user_info[{i}].{k} must be a string"));
            }
            out.push((k.clone(), v.clone()));
        }
    }
    Ok(out)
}

fn headers_field(obj: &Obj) -> Result<Vec<(String, String)>, String> {
    let value = obj.get("headers").ok_or("headers is missing")?;
    pairs(value, "headers")?
        .into_iter()
        .enumerate()
        .map(|(i, (k, v))| match v {
            Value::String(s) => Ok((k, s)),
            _ => Err(format!("headers[{i}] ({k}) must have a string value")),
        })
        .collect()
}

fn object(body: &Value) -> Result<&Obj, String> {
    body.as_object().ok_or_else(|| "the body must be a JSON object".to_string())
}

/// Validates a request call body; the error says what is wrong (for the log).
pub fn parse_request_call(body: &Value) -> Result<RequestCall, String> {
    let obj = object(body)?;
    let source_port = match obj.get("source_port") {
        Some(v) => v.as_u64().filter(|p| *p <= 65535).ok_or("source_port must be an integer in 0..=65535")?,
        None => return Err("source_port is missing".to_string()),
    };
    let user_info = match obj.get("user_info") {
        None => Vec::new(),
        Some(v) => user_info_field(v)?,
    };
    Ok(RequestCall {
        source_ip: string_field(obj, "source_ip")?,
        source_port,
        method: string_field(obj, "method")?,
        url: string_field(obj, "url")?,
        http_version: string_field(obj, "http_version")?,
        headers: headers_field(obj)?,
        user_info,
    })
}

/// Validates a response call body.
pub fn parse_response_call(body: &Value) -> Result<ResponseCall, String> {
    let obj = object(body)?;
    Ok(ResponseCall {
        response_code: string_field(obj, "response_code")?,
        response_status: string_field(obj, "response_status")?,
        http_version: string_field(obj, "http_version")?,
        headers: headers_field(obj)?,
    })
}

/// The ASE's answer to a well-formed, authorised request call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub status: u16,
    pub body: &'static str,
    /// The API url the request matched.
    pub api: Option<String>,
    /// Which deny-list entry matched, if one did (the status is 200 when the API does not block).
    pub denied: Option<DenyKind>,
}

/// Decides on a request call: 503 for an unknown API or hostname, 403 for a denied client
/// of a blocking API, else 200.
pub fn decide(call: &RequestCall, apis: &[Api], deny: &DenyList) -> Decision {
    let (path, _) = split_url(&call.url);
    let host = header(&call.headers, "host").next();
    let api = match find_api(apis, path, host) {
        Ok(api) => api,
        Err(miss) => {
            let body = match miss {
                ApiMiss::UnknownApi => UNKNOWN_API,
                ApiMiss::UnknownHostname => UNKNOWN_HOSTNAME,
            };
            return Decision { status: 503, body, api: None, denied: None };
        }
    };
    let denied = client_ids(call, api).into_iter().find(|(kind, value)| deny.contains(*kind, value)).map(|(k, _)| k);
    let status = if denied.is_some() && api.enable_blocking { 403 } else { 200 };
    Decision { status, body: "", api: Some(api.url.clone()), denied }
}

/// Everything in a request that identifies its client to the deny list, for this API.
pub fn client_ids(call: &RequestCall, api: &Api) -> Vec<(DenyKind, String)> {
    let mut ids = vec![(DenyKind::Ip, call.source_ip.clone())];
    if !api.cookie.is_empty() {
        for cookies in header(&call.headers, "cookie") {
            for pair in cookies.split(';') {
                if let Some((name, value)) = pair.trim().split_once('=') {
                    if name.trim() == api.cookie {
                        let value = value.trim();
                        ids.push((DenyKind::Cookie, value.to_string()));
                        ids.push((DenyKind::Cookie, value.trim_matches('"').to_string()));
                    }
                }
            }
        }
    }
    if api.oauth2_access_token {
        for auth in header(&call.headers, "authorization") {
            let auth = auth.trim();
            if let Some((scheme, token)) = auth.split_once(' ') {
                if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() {
                    ids.push((DenyKind::Token, token.trim().to_string()));
                }
            }
        }
    }
    if !api.apikey_header.is_empty() {
        for key in header(&call.headers, &api.apikey_header) {
            ids.push((DenyKind::ApiKey, key.trim().to_string()));
        }
    }
    if !api.apikey_qs.is_empty() {
        let (_, query) = split_url(&call.url);
        for pair in query.unwrap_or("").split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if name == api.apikey_qs || percent_decode(name) == api.apikey_qs {
                ids.push((DenyKind::ApiKey, value.to_string()));
                ids.push((DenyKind::ApiKey, percent_decode(value)));
            }
        }
    }
    for (key, value) in &call.user_info {
        if let ("username", Value::String(name)) = (key.as_str(), value) {
            ids.push((DenyKind::Username, name.clone()));
        }
    }
    ids
}

/// The values of the headers with this name (case-insensitive), in order.
pub fn header<'a>(headers: &'a [(String, String)], name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers.iter().filter(move |(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// `/path?query#frag` → (`/path`, Some(`query`)); an absolute URL loses its scheme and authority.
pub fn split_url(url: &str) -> (&str, Option<&str>) {
    let url = url.split_once('#').map_or(url, |(u, _)| u);
    let url = match url.split_once("://") {
        Some((scheme, rest)) if !scheme.contains('/') && !scheme.contains('?') => {
            rest.find(['/', '?']).map_or("/", |i| &rest[i..])
        }
        _ => url,
    };
    match url.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (url, None),
    }
}

/// Query-string decoding: `%XX` and `+`; invalid escapes stay as they are.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(extra: Value) -> Value {
        let mut base = json!({
            "source_ip": "203.0.113.7",
            "source_port": 52144,
            "method": "GET",
            "url": "/shop/items?id=7&sort=asc",
            "http_version": "1.1",
            "headers": [{"host": "shop.example.com"}, {"accept": "text/html"}, {"accept": "application/json"}]
        });
        if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
            for (k, v) in e {
                if v.is_null() {
                    b.remove(&k);
                } else {
                    b.insert(k, v);
                }
            }
        }
        base
    }

    fn call(extra: Value) -> RequestCall {
        parse_request_call(&request(extra)).expect("well-formed")
    }

    fn response(extra: Value) -> Value {
        let mut base = json!({
            "response_code": "200", "response_status": "OK", "http_version": "1.1",
            "headers": [{"content-type": "application/json"}]
        });
        if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
            for (k, v) in e {
                if v.is_null() {
                    b.remove(&k);
                } else {
                    b.insert(k, v);
                }
            }
        }
        base
    }

    #[test]
    fn token_check() {
        assert_eq!(check_token(Some("abc"), Some(b"abc")), TokenStatus::Ok);
        assert_eq!(check_token(Some("abc"), Some(b" abc ")), TokenStatus::Ok);
        assert_eq!(check_token(Some("abc"), Some(b"abd")), TokenStatus::Wrong);
        assert_eq!(check_token(Some("abc"), Some(b"abcd")), TokenStatus::Wrong);
        assert_eq!(check_token(Some("abc"), Some(b"\xff\xfe")), TokenStatus::Wrong);
        assert_eq!(check_token(Some("abc"), None), TokenStatus::Missing);
        assert_eq!(check_token(Some("abc"), Some(b"")), TokenStatus::Missing);
        // without a configured token, any token is accepted
        assert_eq!(check_token(None, Some(b"whatever")), TokenStatus::Ok);
        assert_eq!(check_token(None, None), TokenStatus::Missing);
        assert!(token_rejected(Some("abc"), TokenStatus::Missing));
        assert!(token_rejected(Some("abc"), TokenStatus::Wrong));
        assert!(!token_rejected(Some("abc"), TokenStatus::Ok));
        assert!(!token_rejected(None, TokenStatus::Missing));
    }

    #[test]
    fn well_formed_request() {
        let c = call(json!({"user_info": [{"username": "alice"}, {"client_id": "app"}]}));
        assert_eq!(c.source_port, 52144);
        assert_eq!(c.headers.len(), 3);
        assert_eq!(c.headers[2], ("accept".to_string(), "application/json".to_string()));
        assert_eq!(c.user_info.len(), 2);
        // the one object ngx-ase sends, with the keys it knows
        let c = call(json!({"user_info": [{"username": "alice", "client_id": "app"}]}));
        let mut got = c.user_info.clone();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got, vec![("client_id".to_string(), json!("app")), ("username".to_string(), json!("alice"))]);
        assert!(call(json!({"headers": []})).headers.is_empty());
        // unknown fields are ignored
        assert!(parse_request_call(&request(json!({"extra": 1}))).is_ok());
    }

    #[test]
    fn malformed_requests() {
        let bad = [
            json!({"source_ip": null}),
            json!({"source_ip": 7}),
            json!({"source_port": null}),
            json!({"source_port": "52144"}),
            json!({"source_port": 1.5}),
            json!({"source_port": -1}),
            json!({"source_port": 70000}),
            json!({"method": null}),
            json!({"method": 1}),
            json!({"url": null}),
            json!({"url": ["/"]}),
            json!({"http_version": null}),
            json!({"http_version": 1.1}),
            json!({"headers": null}),
            json!({"headers": {"host": "x"}}),
            json!({"headers": [{"host": 1}]}),
            json!({"headers": [{"host": "x", "accept": "y"}]}),
            json!({"headers": [{}]}),
            json!({"headers": ["host: x"]}),
            json!({"user_info": {"username": "alice"}}),
            json!({"user_info": [{"username": "alice", "x": "y"}]}),
            json!({"user_info": Value::Array(vec![json!("alice")])}),
            json!({"user_info": [{}]}),
            json!({"user_info": [{"username": 7}]}),
            json!({"user_info": [{"username": "alice", "client_id": null}]}),
        ];
        for extra in bad {
            assert!(parse_request_call(&request(extra.clone())).is_err(), "accepted {extra}");
        }
        assert!(parse_request_call(&json!([1, 2])).is_err());
        assert!(parse_request_call(&json!("x")).is_err());
    }

    #[test]
    fn response_calls() {
        let r = parse_response_call(&response(json!({}))).expect("well-formed");
        assert_eq!(r.response_code, "200");
        for extra in [
            json!({"response_code": null}),
            json!({"response_code": 200}),
            json!({"response_status": null}),
            json!({"http_version": null}),
            json!({"headers": null}),
            json!({"headers": [{"a": "b", "c": "d"}]}),
        ] {
            assert!(parse_response_call(&response(extra.clone())).is_err(), "accepted {extra}");
        }
    }

    fn decide_default(c: &RequestCall, deny: &DenyList) -> Decision {
        decide(c, &[Api::builtin()], deny)
    }

    #[test]
    fn allow_by_default() {
        let d = decide_default(&call(json!({})), &DenyList::default());
        assert_eq!(d.status, 200);
        assert_eq!(d.api.as_deref(), Some("/"));
        assert_eq!(d.denied, None);
    }

    #[test]
    fn unknown_api_and_hostname() {
        let apis = [Api { url: "/shop".into(), hostname: "shop.example.com".into(), ..Api::default() }];
        let deny = DenyList::default();
        let d = decide(&call(json!({"url": "/other?x=1"})), &apis, &deny);
        assert_eq!((d.status, d.body), (503, UNKNOWN_API));
        let d = decide(&call(json!({"headers": [{"host": "evil.example.com"}]})), &apis, &deny);
        assert_eq!((d.status, d.body), (503, UNKNOWN_HOSTNAME));
        let d = decide(&call(json!({"headers": [{"Host": "shop.example.com:443"}]})), &apis, &deny);
        assert_eq!(d.status, 200);
        // the query string is not part of the path
        let d = decide(&call(json!({"url": "/other?u=/shop"})), &apis, &deny);
        assert_eq!(d.body, UNKNOWN_API);
    }

    fn denied(kind: DenyKind, value: &str) -> DenyList {
        let mut d = DenyList::default();
        d.add(kind, value);
        d
    }

    #[test]
    fn deny_by_ip() {
        let d = decide_default(&call(json!({})), &denied(DenyKind::Ip, "203.0.113.7"));
        assert_eq!((d.status, d.denied), (403, Some(DenyKind::Ip)));
        assert_eq!(decide_default(&call(json!({})), &denied(DenyKind::Ip, "203.0.113.8")).status, 200);
    }

    #[test]
    fn deny_by_cookie() {
        let deny = denied(DenyKind::Cookie, "s3cr3t");
        let c = call(json!({"headers": [{"cookie": "a=1; JSESSIONID=s3cr3t; b=2"}]}));
        assert_eq!(decide_default(&c, &deny).status, 403);
        let c = call(json!({"headers": [{"cookie": "a=1"}, {"cookie": "JSESSIONID=s3cr3t"}]}));
        assert_eq!(decide_default(&c, &deny).status, 403);
        // another cookie with that value is not the session cookie
        let c = call(json!({"headers": [{"cookie": "OTHER=s3cr3t"}]}));
        assert_eq!(decide_default(&c, &deny).status, 200);
        // an API without a session cookie ignores cookies
        let api = Api { cookie: String::new(), ..Api::builtin() };
        let c = call(json!({"headers": [{"cookie": "JSESSIONID=s3cr3t"}]}));
        assert_eq!(decide(&c, &[api], &deny).status, 200);
    }

    #[test]
    fn deny_by_oauth_token() {
        let deny = denied(DenyKind::Token, "tok123");
        let c = call(json!({"headers": [{"authorization": "Bearer tok123"}]}));
        assert_eq!(decide_default(&c, &deny).status, 403);
        let c = call(json!({"headers": [{"authorization": "bearer  tok123 "}]}));
        assert_eq!(decide_default(&c, &deny).status, 403);
        let c = call(json!({"headers": [{"authorization": "Basic tok123"}]}));
        assert_eq!(decide_default(&c, &deny).status, 200);
        let api = Api { oauth2_access_token: false, ..Api::builtin() };
        let c = call(json!({"headers": [{"authorization": "Bearer tok123"}]}));
        assert_eq!(decide(&c, &[api], &deny).status, 200);
    }

    #[test]
    fn deny_by_api_key() {
        let deny = denied(DenyKind::ApiKey, "key 1");
        let c = call(json!({"headers": [{"x-api-key": "key 1"}]}));
        assert_eq!(decide_default(&c, &deny).status, 403);
        let c = call(json!({"headers": [{"X-API-Key": "key 1"}]}));
        assert_eq!(decide_default(&c, &deny).status, 403);
        let c = call(json!({"url": "/x?a=1&apikey=key%201"}));
        assert_eq!(decide_default(&c, &deny).status, 403);
        let c = call(json!({"url": "/x?a=1&apikey=key+1"}));
        assert_eq!(decide_default(&c, &deny).status, 403);
        let c = call(json!({"url": "/x?notapikey=key%201"}));
        assert_eq!(decide_default(&c, &deny).status, 200);
        let api = Api { apikey_qs: String::new(), apikey_header: String::new(), ..Api::builtin() };
        let c = call(json!({"url": "/x?apikey=key%201", "headers": [{"x-api-key": "key 1"}]}));
        assert_eq!(decide(&c, &[api], &deny).status, 200);
    }

    #[test]
    fn deny_by_username() {
        let deny = denied(DenyKind::Username, "alice");
        let c = call(json!({"user_info": [{"client_id": "app"}, {"username": "alice"}]}));
        assert_eq!(decide_default(&c, &deny).status, 403);
        let c = call(json!({"user_info": [{"client_id": "alice"}]}));
        assert_eq!(decide_default(&c, &deny).status, 200);
        let c = call(json!({"user_info": [{"client_id": "app", "username": "alice"}]}));
        assert_eq!(decide_default(&c, &deny).status, 403);
        assert_eq!(decide_default(&call(json!({})), &deny).status, 200);
    }

    #[test]
    fn no_blocking_means_allow_even_when_denied() {
        let api = Api { enable_blocking: false, ..Api::builtin() };
        let d = decide(&call(json!({})), &[api], &denied(DenyKind::Ip, "203.0.113.7"));
        assert_eq!((d.status, d.denied), (200, Some(DenyKind::Ip)));
    }

    #[test]
    fn urls() {
        assert_eq!(split_url("/a/b?x=1#f"), ("/a/b", Some("x=1")));
        assert_eq!(split_url("/a/b"), ("/a/b", None));
        assert_eq!(split_url("http://h:1/a?q"), ("/a", Some("q")));
        assert_eq!(split_url("http://h:1"), ("/", None));
        assert_eq!(split_url("/a?u=http://x/"), ("/a", Some("u=http://x/")));
        assert_eq!(percent_decode("a%20b+c%zz%4"), "a b c%zz%4");
    }
}
