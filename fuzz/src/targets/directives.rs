//! Target `directive_values`: every directive value parser with the same arbitrary bytes
//! (`ase_server` gets them split at NUL bytes into arguments). None may panic, and what
//! each accepts must be what its directive allows:
//! - `parse_url`: a host of allowed characters, a port > 0; what it accepts prints (Display)
//!   as a URL that parses back to the same value (see `url_round_trips` for the one
//!   exception, host names with `:`);
//! - `parse_server`: its URL is `parse_url` of the first argument;
//! - `parse_msec`, `parse_sec` (nginx's time syntax): a value they give back reads again as
//!   `<value>ms` (`<value>s`), never more than nginx's largest time, and `parse_fail_timeout`
//!   is `parse_msec`;
//! - `parse_token`: the trimmed bytes, all sendable in a header; its errors and `Debug`
//!   never contain the token;
//! - `parse_fail_mode`, `parse_block_status` (400..=599), `user_header_variable` (the
//!   `$http_` variable of a header name), `parse_request_mode`, and
//!   `header_names::add_name` (`ase_hide_header`: what it takes is found again in any case).

use std::net::Ipv6Addr;

use crate::ngx_ase_common::settings::{
    parse_fail_timeout, parse_server, parse_token, parse_url, token_looks_like_ase, AseUrl, TokenError,
};
use crate::ngx_ase_request::conf::{
    parse_block_status, parse_fail_mode, parse_request_mode, user_header_variable, FailMode,
};
use ngx_ase_glue::time::{parse_msec, parse_sec};
use ngx_ase_shared::abi::RequestMode;
use ngx_ase_shared::header_names;

pub fn check(data: &[u8]) {
    check_url(data);
    let args: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    check_server(&args);
    check_time(data);
    check_token(data);
    check_request_values(data);
}

fn check_url(raw: &[u8]) {
    let Ok(u) = parse_url(raw) else { return };
    assert!(u.port > 0);
    assert!(!u.host.is_empty());
    assert!(u.host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:_".contains(&b)), "{:?}", u.host);
    let _ = (u.authority(), u.host_is_name());
    if url_round_trips(&u) {
        let shown = u.to_string();
        assert_eq!(parse_url(shown.as_bytes()).as_ref(), Ok(&u), "{shown}");
    }
}

/// Whether `u` should read back from its own `Display`. A host with a `:` that is not an
/// IPv6 address (`http://a:b:80` reads as host `a:b`, port 80) prints as `[a:b]`, which is
/// (rightly) not a valid bracketed address: that input is accepted at parse time and fails
/// at resolve time ("host not found"), which is acceptable for a configuration value.
fn url_round_trips(u: &AseUrl) -> bool {
    !u.host.contains(':') || u.host.parse::<Ipv6Addr>().is_ok()
}

fn check_server(args: &[&[u8]]) {
    let Ok(s) = parse_server(args) else { return };
    assert_eq!(Ok(&s.url), parse_url(args[0]).as_ref());
}

fn check_time(raw: &[u8]) {
    let ms = parse_msec(raw);
    if let Ok(text) = std::str::from_utf8(raw) {
        assert_eq!(parse_fail_timeout(text).ok(), ms.ok());
    }
    if let Ok(ms) = ms {
        assert!(ms <= i64::MAX as u64);
        assert_eq!(parse_msec(format!("{ms}ms").as_bytes()), Ok(ms));
    }
    if let Ok(s) = parse_sec(raw) {
        assert!(s <= i64::MAX as u64);
        assert_eq!(parse_sec(format!("{s}s").as_bytes()), Ok(s));
    }
}

fn check_token(raw: &[u8]) {
    match parse_token(raw) {
        Ok(t) => {
            assert_eq!(t.as_bytes(), raw.trim_ascii());
            assert!(!t.as_bytes().is_empty());
            assert!(t.as_bytes().iter().all(|b| (0x21..=0x7e).contains(b)));
            assert_eq!(format!("{t:?}"), format!("Token(<{} bytes, hidden>)", t.as_bytes().len()));
            let _ = token_looks_like_ase(&t);
        }
        // The error carries no byte of the token, only where the first bad one is.
        Err(TokenError::Empty) => assert!(raw.trim_ascii().is_empty()),
        Err(TokenError::BadByte { at }) => {
            let trimmed = raw.trim_ascii();
            assert!(at >= 1 && at <= trimmed.len(), "{at}");
            assert!(!(0x21..=0x7e).contains(&trimmed[at - 1]));
        }
    }
}

fn check_request_values(raw: &[u8]) {
    match parse_fail_mode(raw) {
        Ok(FailMode::Open) => assert!(raw.eq_ignore_ascii_case(b"open")),
        Ok(FailMode::Closed) => assert!(raw.eq_ignore_ascii_case(b"closed")),
        Ok(FailMode::Unset) => panic!("parse_fail_mode gave Unset"),
        Err(_) => assert!(!raw.eq_ignore_ascii_case(b"open") && !raw.eq_ignore_ascii_case(b"closed")),
    }
    if let Ok(n) = parse_block_status(raw) {
        assert!((400..=599).contains(&n), "{n}");
    }
    if let Ok(v) = user_header_variable(raw) {
        let name = v.strip_prefix("$http_").expect("a $http_ variable");
        assert_eq!(name.len(), raw.len());
        assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'), "{v}");
    }
    match parse_request_mode(raw) {
        Ok(RequestMode::On) => assert!(raw.eq_ignore_ascii_case(b"on")),
        Ok(RequestMode::Off) => assert!(raw.eq_ignore_ascii_case(b"off")),
        Ok(RequestMode::Monitor) => assert!(raw.eq_ignore_ascii_case(b"monitor")),
        Err(_) => assert!(![&b"on"[..], b"off", b"monitor"].iter().any(|w| raw.eq_ignore_ascii_case(w))),
    }
    let mut list = Vec::new();
    if header_names::add_name(&mut list, raw).is_ok() {
        assert!(header_names::is_listed(&list, raw) && header_names::is_listed(&list, &raw.to_ascii_uppercase()));
        assert_eq!(header_names::names(&list).count(), 1);
    }
}
