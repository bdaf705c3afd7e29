//! The common module's directives: a safe setter each, which the directive table's rows
//! (`module.rs`) hand to `ngx_ase_glue::directive::set_by_post`, over the safe parsers in
//! `settings.rs`; and the unsafe glue they need (the `ase_upstream` block's lines, files
//! named against nginx's prefix, the merge and the http block's final checks).

use core::ffi::{c_char, c_void};

use nginx_sys::{ngx_command_t, ngx_conf_full_name, ngx_conf_parse, ngx_conf_t, ngx_str_t, NGX_LOG_WARN, NGX_OK};
use ngx::http::{HttpModuleLocationConf, NgxHttpCoreModule};
use ngx_ase_glue::conf::{
    conf_ok, current_position, directive_args, directive_name, emerg, log_at, log_conf, log_emerg_at,
};
use ngx_ase_glue::directive::{ConfError, Directive};
use ngx_ase_glue::module::guard_conf as checked;
use ngx_ase_glue::values::in_directive;

use crate::conf::settings::{
    check_node_count, parse_group_name, parse_server, parse_token, token_looks_like_ase, Token,
};
use crate::conf::{ConfFile, GroupConf, LocConf, MainConf, TokenSource};

/// `ase_server URL [resolve] ...;`: a node of the default group.
pub fn server(conf: &mut MainConf, d: &Directive) -> Result<(), ConfError> {
    let so_far = conf.node_count();
    add_server(d.args(), d.position(), so_far, &mut conf.servers, &mut conf.addresses, &mut conf.server_positions)
        .map_err(|e| d.error(&e))
}

/// Parses and resolves one server line (`ase_server`, or `server` in an `ase_upstream`
/// block, at `position`) into a group's lists; `so_far` nodes exist in the whole channel
/// before it.
fn add_server(
    args: &[&[u8]],
    position: String,
    so_far: usize,
    servers: &mut Vec<crate::conf::settings::ServerSpec>,
    addresses: &mut Vec<Vec<std::net::SocketAddr>>,
    positions: &mut Vec<String>,
) -> Result<(), String> {
    let spec = parse_server(args)?;
    let addrs = spec.config_addresses()?;
    if servers.iter().any(|s| s.url == spec.url) {
        return Err(format!("\"{}\" is listed twice", spec.url));
    }
    check_node_count(&spec.url, so_far, addrs.len())?;
    servers.push(spec);
    addresses.push(addrs);
    positions.push(position);
    Ok(())
}

/// `ase_upstream NAME { server URL ...; keepalive N; token_file PATH; least_conn; hash KEY; }`:
/// a named group of ASE nodes. The block's lines are read by `upstream_line`.
pub fn upstream(conf: &mut MainConf, d: &Directive) -> Result<(), ConfError> {
    let name = parse_group_name(d.arg()).map_err(|e| d.error(&e))?;
    if conf.groups.iter().any(|g| g.name == name) {
        return Err(d.error(&format!("a group named \"{name}\" is already defined")));
    }
    let mut block = UpstreamBlock {
        main: conf as *mut MainConf,
        group: GroupConf { name, position: d.position(), ..GroupConf::default() },
    };
    // SAFETY: the configuration nginx is reading, live while the directive is; `block`
    // outlives the block's parse, and `conf` is not used until it is over.
    unsafe { read_block(d.raw(), &mut block) }?;
    let group = block.group;
    if group.servers.is_empty() {
        // SAFETY: as above.
        unsafe {
            log_emerg_at(d.raw(), &format!("ase_upstream \"{}\" has no \"server\"", group.name), &group.position)
        };
        return Err(ConfError::Logged);
    }
    if let Some((msg, at)) = group.backup_with_hash() {
        // SAFETY: as above.
        unsafe { log_emerg_at(d.raw(), &msg, at) };
        return Err(ConfError::Logged);
    }
    conf.groups.push(group);
    Ok(())
}

/// Reads the `{ ... }` of an `ase_upstream` line, each line going to `upstream_line` with
/// `block`, as nginx reads its `map` and `types` blocks.
unsafe fn read_block(cf: *mut ngx_conf_t, block: &mut UpstreamBlock) -> Result<(), ConfError> {
    unsafe {
        let saved = *cf;
        (*cf).handler = Some(upstream_line);
        (*cf).handler_conf = (block as *mut UpstreamBlock).cast();
        let rv = ngx_conf_parse(cf, core::ptr::null_mut());
        *cf = saved;
        if rv.is_null() {
            Ok(())
        } else {
            Err(ConfError::Nginx(rv))
        }
    }
}

/// The `ase_upstream` block being read.
struct UpstreamBlock {
    main: *mut MainConf,
    group: GroupConf,
}

/// One line inside an `ase_upstream` block (nginx's `cf->handler`, as its `map` and `types`
/// blocks are read); errors name the line.
unsafe extern "C" fn upstream_line(cf: *mut ngx_conf_t, _dummy: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    unsafe {
        checked(cf, || {
            let block = &mut *(conf as *mut UpstreamBlock);
            let group = &mut block.group;
            let what = String::from_utf8_lossy(directive_name(cf)).into_owned();
            let args = directive_args(cf);
            // nginx's words, naming the block: `... in "server" directive of ase_upstream "eu"`.
            let place = format!("\"{what}\" directive of ase_upstream \"{}\"", group.name);
            match (what.as_str(), args.len()) {
                ("server", 1..) => {
                    let so_far = (*block.main).node_count() + group.addresses.iter().map(Vec::len).sum::<usize>();
                    let at = current_position(cf);
                    match add_server(
                        &args,
                        at,
                        so_far,
                        &mut group.servers,
                        &mut group.addresses,
                        &mut group.server_positions,
                    ) {
                        Ok(()) => conf_ok(),
                        Err(e) => emerg(cf, &format!("{e} in {place}")),
                    }
                }
                ("keepalive", 1) => {
                    if group.keepalive.is_some() {
                        return emerg(cf, &format!("{place} is duplicate"));
                    }
                    let text = String::from_utf8_lossy(args[0]);
                    match text.parse::<usize>() {
                        Ok(n) if text.bytes().all(|b| b.is_ascii_digit()) => {
                            group.keepalive = Some(n);
                            conf_ok()
                        }
                        _ => emerg(cf, &format!("invalid value \"{text}\" in {place}, it must be a number")),
                    }
                }
                ("keepalive_timeout" | "keepalive_time", 1) => {
                    let slot =
                        if what == "keepalive_time" { &mut group.keepalive_time } else { &mut group.keepalive_timeout };
                    block_time(cf, slot, args[0], &place)
                }
                ("keepalive_requests", 1) => {
                    if group.keepalive_requests.is_some() {
                        return emerg(cf, &format!("{place} is duplicate"));
                    }
                    let text = String::from_utf8_lossy(args[0]);
                    match text.parse::<u64>() {
                        Ok(n) if text.bytes().all(|b| b.is_ascii_digit()) => {
                            group.keepalive_requests = Some(n);
                            conf_ok()
                        }
                        _ => emerg(cf, &format!("invalid value \"{text}\" in {place}, it must be a number")),
                    }
                }
                ("token_file", 1) => {
                    if group.token.is_some() {
                        return emerg(cf, &format!("{place} is duplicate"));
                    }
                    match read_token_file(cf, args[0], &place) {
                        Ok(t) => {
                            group.token = Some(t);
                            conf_ok()
                        }
                        Err(rv) => rv,
                    }
                }
                ("least_conn", 0) => {
                    if group.least_conn {
                        return emerg(cf, &format!("{place} is duplicate"));
                    }
                    if group.hash.take().is_some() {
                        balancing_redefined(cf);
                    }
                    group.least_conn = true;
                    conf_ok()
                }
                ("hash", 1 | 2) => set_hash(cf, group, &args, &place),
                ("latency_guard", 1 | 2) => {
                    if group.latency_guard.is_some() {
                        return emerg(cf, &format!("{place} is duplicate"));
                    }
                    match parse_latency_guard(&args) {
                        Ok(g) => {
                            group.latency_guard = Some(g);
                            conf_ok()
                        }
                        Err(e) => emerg(cf, &format!("{e} in {place}")),
                    }
                }
                (
                    "server" | "keepalive" | "keepalive_timeout" | "keepalive_requests" | "keepalive_time"
                    | "token_file" | "least_conn" | "hash" | "latency_guard",
                    _,
                ) => emerg(cf, &format!("invalid number of arguments in {place}")),
                _ => emerg(
                    cf,
                    &format!(
                        "unknown directive \"{what}\" in ase_upstream \"{}\" (it takes server, keepalive, \
                         keepalive_timeout, keepalive_requests, keepalive_time, token_file, least_conn, hash and \
                         latency_guard)",
                        group.name
                    ),
                ),
            }
        })
    }
}

/// `hash KEY [consistent];` in an `ase_upstream` block: the key compiled (it may hold
/// variables), as nginx's upstream `hash`.
unsafe fn set_hash(cf: *mut ngx_conf_t, group: &mut GroupConf, args: &[&[u8]], place: &str) -> *mut c_char {
    unsafe {
        if group.hash.is_some() {
            return emerg(cf, &format!("{place} is duplicate"));
        }
        let consistent = match args.get(1) {
            None => false,
            Some(&b"consistent") => true,
            Some(other) => {
                return emerg(cf, &format!("invalid parameter \"{}\" in {place}", String::from_utf8_lossy(other)))
            }
        };
        let Some(value) = ngx_ase_glue::complex_value::compile(cf, args[0]) else {
            return ngx_ase_glue::conf::conf_error();
        };
        if core::mem::take(&mut group.least_conn) {
            balancing_redefined(cf);
        }
        group.hash = Some(crate::conf::HashKey { value, consistent });
        conf_ok()
    }
}

/// nginx's warning when a block names a second balancing method (the later one is used).
unsafe fn balancing_redefined(cf: *mut ngx_conf_t) {
    unsafe { log_conf(cf, NGX_LOG_WARN, "load balancing method redefined") }
}

/// A time line of an `ase_upstream` block (`keepalive_timeout`, `keepalive_time`), read as
/// nginx's `ngx_conf_set_msec_slot` reads them: a bare number is milliseconds.
unsafe fn block_time(cf: *mut ngx_conf_t, slot: &mut Option<u64>, raw: &[u8], place: &str) -> *mut c_char {
    if slot.is_some() {
        return unsafe { emerg(cf, &format!("{place} is duplicate")) };
    }
    // nginx's time rules; at most what one nginx timer takes (the idle timer uses it).
    match ngx_ase_glue::time::parse_msec(raw) {
        Ok(ms) if ms <= ngx_ase_glue::time::MAX_TIMER_MS => {
            *slot = Some(ms);
            conf_ok()
        }
        Ok(_) | Err(ngx_ase_glue::time::TimeError::TooLarge) => unsafe {
            emerg(cf, &format!("{place}: {}", ngx_ase_glue::time::timer_too_long("keepalive time", raw)))
        },
        Err(_) => unsafe { emerg(cf, &format!("invalid value \"{}\" in {place}", String::from_utf8_lossy(raw))) },
    }
}

/// `ase_pass NAME;`: the group calls from this level go to (checked once the http block
/// is read, so a block may come after the `ase_pass` naming it).
pub fn pass(lc: &mut LocConf, d: &Directive) -> Result<(), ConfError> {
    if lc.pass.is_some() {
        return Err(d.duplicate());
    }
    lc.pass = Some((String::from_utf8_lossy(d.arg()).into_owned(), d.position()));
    Ok(())
}

/// `P99 [window=TIME]` of `ase_latency_guard` and of `latency_guard` in a block.
fn parse_latency_guard(args: &[&[u8]]) -> Result<crate::latency_guard::GuardConf, String> {
    crate::latency_guard::parse(args, |v| ngx_ase_glue::time::parse_msec(v).ok())
}

/// `ase_latency_guard P99 [window=TIME];`: the default group's latency guard.
pub fn latency_guard(conf: &mut MainConf, d: &Directive) -> Result<(), ConfError> {
    if conf.latency_guard.is_some() {
        return Err(d.duplicate());
    }
    conf.latency_guard = Some(parse_latency_guard(d.args()).map_err(|e| d.error(&e))?);
    Ok(())
}

/// `ase_mirror NAME | off;`: the group that also gets a copy of each call from this level
/// (checked once the http block is read, as `ase_pass`).
pub fn mirror(lc: &mut LocConf, d: &Directive) -> Result<(), ConfError> {
    if lc.mirror.is_some() {
        return Err(d.duplicate());
    }
    lc.mirror = Some((String::from_utf8_lossy(d.arg()).into_owned(), d.position()));
    Ok(())
}

/// nginx's merge of the common module's location settings: timeouts, then `ase_pass`
/// resolved to its group, an unknown name being an error at its line.
pub unsafe fn merge_loc_conf(cf: *mut ngx_conf_t, prev: *mut c_void, conf: *mut c_void) -> *mut c_char {
    unsafe {
        checked(cf, || {
            let (prev, lc) = (&*(prev as *const LocConf), &mut *(conf as *mut LocConf));
            let _ = ngx::http::Merge::merge(lc, prev);
            let Some(main) = <crate::Module as ngx::http::HttpModuleMainConf>::main_conf(&*cf) else {
                return emerg(cf, &in_directive("no main configuration", "ase_pass"));
            };
            resolve_pass(cf, lc, prev, main)
        })
    }
}

unsafe fn resolve_pass(cf: *mut ngx_conf_t, lc: &mut LocConf, prev: &LocConf, main: &MainConf) -> *mut c_char {
    unsafe {
        match lc.resolve_pass(prev, main).and_then(|()| lc.resolve_mirror(prev, main)) {
            Ok(()) => conf_ok(),
            Err((msg, at)) => {
                log_emerg_at(cf, &msg, &at);
                ngx_ase_glue::conf::conf_error()
            }
        }
    }
}

/// `ase_token_file PATH;`: the http level's token, read from a file.
pub fn token_file(conf: &mut MainConf, d: &Directive) -> Result<(), ConfError> {
    check_no_token(conf)?;
    // SAFETY: the configuration nginx is reading, live while the directive is.
    let token = unsafe { read_token_file(d.raw(), d.arg(), "\"ase_token_file\" directive") };
    conf.token = Some(token.map_err(|_| ConfError::Logged)?);
    Ok(())
}

/// `ase_token TOKEN;`: the http level's token, written out.
pub fn token(conf: &mut MainConf, d: &Directive) -> Result<(), ConfError> {
    check_no_token(conf)?;
    let token = parse_token(d.arg()).map_err(|e| d.error(&e.to_string()))?;
    conf.token = Some((token, TokenSource::Inline));
    Ok(())
}

/// The http level has one token, from either directive.
fn check_no_token(conf: &MainConf) -> Result<(), ConfError> {
    match conf.token {
        Some(_) => {
            Err(ConfError::Message("the ASE token is already set (by \"ase_token\" or \"ase_token_file\")".to_string()))
        }
        None => Ok(()),
    }
}

/// Reads a token file (`ase_token_file`, or `token_file` in an `ase_upstream` block;
/// `place` names it at the end of the messages). `Err` is the directive's return value, the
/// error logged.
unsafe fn read_token_file(cf: *mut ngx_conf_t, raw: &[u8], place: &str) -> Result<(Token, TokenSource), *mut c_char> {
    unsafe {
        let Some(path) = full_name(cf, raw) else {
            return Err(emerg(cf, &format!("cannot build the file's full path in {place}")));
        };
        let mut content = match std::fs::read(&path) {
            Ok(c) => c,
            Err(e) => return Err(emerg(cf, &format!("cannot read \"{path}\" ({e}) in {place}"))),
        };
        let parsed = parse_token(&content);
        crate::secret::zeroize_vec(&mut content);
        let token = match parsed {
            Ok(t) => t,
            Err(e) => return Err(emerg(cf, &format!("{e} (\"{path}\") in {place}"))),
        };
        warn_if_world_readable(cf, &path, place);
        if !token_looks_like_ase(&token) {
            log_conf(cf, NGX_LOG_WARN, &format!(
            "the token in \"{path}\" ({place}) is not 32 characters of a-z0-9 as ASE's create_sideband_token makes them"));
        }
        Ok((token, TokenSource::File(path)))
    }
}

/// `ase_ssl_certificate FILE;`
pub fn ssl_certificate(conf: &mut MainConf, d: &Directive) -> Result<(), ConfError> {
    set_conf_file(d, &mut conf.ssl_certificate)
}

/// `ase_ssl_certificate_key FILE;`
pub fn ssl_certificate_key(conf: &mut MainConf, d: &Directive) -> Result<(), ConfError> {
    set_conf_file(d, &mut conf.ssl_certificate_key)
}

/// A file directive given once: the path made absolute against the configuration prefix
/// (as nginx does for `proxy_ssl_certificate`), and a file that cannot be opened reported
/// here, at its line. nginx's OpenSSL reads it once the http block is read.
fn set_conf_file(d: &Directive, slot: &mut Option<ConfFile>) -> Result<(), ConfError> {
    if slot.is_some() {
        return Err(d.duplicate());
    }
    // SAFETY: the configuration nginx is reading, live while the directive is.
    let path = unsafe { full_name(d.raw(), d.arg()) }.ok_or_else(|| d.error("cannot build the file's full path"))?;
    if let Err(e) = std::fs::File::open(&path) {
        return Err(d.error(&format!("cannot read \"{path}\" ({e})")));
    }
    *slot = Some(ConfFile { path, position: d.position() });
    Ok(())
}

/// `ase_status;`: this location serves the status page.
pub fn status(_lc: &mut LocConf, d: &Directive) -> Result<(), ConfError> {
    let clcf = NgxHttpCoreModule::location_conf_mut(d.conf()).ok_or_else(|| d.error("no location configuration"))?;
    clcf.handler = Some(crate::status::handler::handler);
    Ok(())
}

/// Called once the `http` block is read: defaults and checks that need the whole block.
pub unsafe fn init_main_conf(cf: *mut ngx_conf_t, conf: *mut c_void) -> *mut c_char {
    unsafe {
        checked(cf, || {
            let conf = &mut *(conf as *mut MainConf);
            conf.finish();
            // The http level's own `ase_pass` (nginx never merges that level with another).
            if let Some(http) = <crate::Module as HttpModuleLocationConf>::location_conf_mut(&*cf) {
                let rv = resolve_pass(cf, http, &LocConf::default(), conf);
                if !rv.is_null() {
                    return rv;
                }
            }
            let nodes = conf.node_count();
            if nodes > crate::counters::MAX_NODES {
                log_conf(cf, NGX_LOG_WARN, &format!(
                "ase_server: the status page keeps statistics for the first {} of the {nodes} ASE node addresses; it lists the others as \"untracked\"",
                crate::counters::MAX_NODES));
            }
            if let Some(at) = conf.first_resolve_server() {
                // The http level's own `resolver` (not yet merged: unset is null, and its
                // timeout nginx's "unset").
                let core = NgxHttpCoreModule::location_conf(&*cf);
                let resolver = core.map_or(core::ptr::null_mut(), |c| c.resolver);
                if resolver.is_null() || (*resolver).connections.nelts == 0 {
                    log_emerg_at(cf, "\"resolve\" needs nginx's \"resolver\" directive in the http block", &at);
                    return ngx_ase_glue::conf::conf_error();
                }
                conf.resolver = resolver;
                if let Some(t) = core.map(|c| c.resolver_timeout).filter(|&t| t != ngx_ase_glue::values::UNSET_MSEC) {
                    conf.resolver_timeout = t;
                }
            }
            let groups = conf.groups.len() + 1;
            if groups > crate::counters::MAX_GROUPS {
                log_conf(cf, NGX_LOG_WARN, &format!(
                "ase_upstream: the status page keeps per-group numbers for the first {} of the {groups} ASE groups (the default one included); it lists the others as \"untracked\"",
                crate::counters::MAX_GROUPS));
            }
            if conf.uses_tls() && conf.ssl_verify == 0 {
                log_conf(cf, NGX_LOG_WARN,
                "ase_ssl_verify is off: the ASE's certificate is not checked, so anyone on the path can pose as the ASE");
            }
            let mut trusted = String::new();
            if !conf.ssl_trusted_certificate.is_empty() {
                let raw = conf.ssl_trusted_certificate.as_bytes().to_vec();
                let Some(path) = full_name(cf, &raw) else {
                    return emerg(
                        cf,
                        &in_directive("cannot build the file's full path", "ase_ssl_trusted_certificate"),
                    );
                };
                if let Err(e) = std::fs::File::open(&path) {
                    return emerg(
                        cf,
                        &in_directive(&format!("cannot read \"{path}\" ({e})"), "ase_ssl_trusted_certificate"),
                    );
                }
                trusted = path;
            }
            for (url, at) in conf.clear_text_token_nodes() {
                log_at(cf, NGX_LOG_WARN, &format!(
                "ase_server {url}: the ASE-Token would travel in clear text to a node that is not on this host (loopback); use https://"),
                &at);
            }
            let client_cert = match conf.client_certificate() {
                Ok(c) => c.map(|(c, k)| (c.clone(), k.clone())),
                Err((msg, at)) => {
                    log_emerg_at(cf, &msg, at);
                    return ngx_ase_glue::conf::conf_error();
                }
            };
            if let (Some((cert, _)), false) = (&client_cert, conf.uses_tls()) {
                log_at(cf, NGX_LOG_WARN,
                "ase_ssl_certificate is not used: no \"ase_server\" (or \"server\" in an \"ase_upstream\") is https://", &cert.position);
            }
            if conf.uses_tls() {
                match crate::net::tls::create_client_ssl(cf, conf.ssl_verify == 1, &trusted) {
                    Ok(ssl) => conf.ssl = ssl,
                    Err(e) => return emerg(cf, &in_directive(&e, "ase_server")),
                }
                if let Some((cert, key)) = &client_cert {
                    if let Err(e) = crate::net::tls::use_client_certificate(cf, conf.ssl, &cert.path, &key.path) {
                        log_emerg_at(cf, &in_directive(&e, "ase_ssl_certificate"), &cert.position);
                        return ngx_ase_glue::conf::conf_error();
                    }
                }
            }
            conf_ok()
        })
    }
}

/// A path relative to nginx's configuration prefix made absolute, as nginx does for its
/// own file directives.
unsafe fn full_name(cf: *mut ngx_conf_t, raw: &[u8]) -> Option<String> {
    unsafe {
        let mut name = ngx_str_t::from_bytes((*cf).pool, raw)?;
        if ngx_conf_full_name((*cf).cycle, &mut name, 1) != NGX_OK as isize {
            return None;
        }
        Some(String::from_utf8_lossy(name.as_bytes()).into_owned())
    }
}

fn warn_if_world_readable(cf: *mut ngx_conf_t, path: &str, place: &str) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o004 != 0 {
            unsafe {
                log_conf(cf, NGX_LOG_WARN, &format!("\"{path}\" in {place} is readable by every user; chmod o-r it"));
            }
        }
    }
}
