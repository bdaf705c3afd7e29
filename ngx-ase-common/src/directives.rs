//! Directive callbacks of the common module (unsafe glue). Each one reads its arguments,
//! hands them to the safe parsers in `settings.rs`, and reports errors with nginx's
//! "in FILE:LINE" suffix.

use core::ffi::{c_char, c_void};

use nginx_sys::{ngx_command_t, ngx_conf_full_name, ngx_conf_t, ngx_str_t, NGX_LOG_WARN, NGX_OK};
use ngx::http::{HttpModuleLocationConf, NgxHttpCoreModule};
use ngx_ase_glue::conf::{conf_ok, current_position, directive_args, emerg, log_at, log_conf, log_emerg_at};
use ngx_ase_glue::panic::guard;

use crate::conf::{ConfFile, MainConf, TokenSource};
use crate::settings::{check_node_count, parse_server, parse_token, token_looks_like_ase};

/// Runs a directive body with panics turned into a configuration error.
unsafe fn checked(cf: *mut ngx_conf_t, f: impl FnOnce() -> *mut c_char) -> *mut c_char {
    guard((*cf).log, "configuration", ngx_ase_glue::conf::conf_error(), f)
}

pub unsafe extern "C" fn set_server(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    checked(cf, || {
        let conf = &mut *(conf as *mut MainConf);
        let spec = match parse_server(&directive_args(cf)) {
            Ok(s) => s,
            Err(e) => return emerg(cf, &format!("ase_server: {e}")),
        };
        let addrs = match spec.url.resolve() {
            Ok(a) => a,
            Err(e) => return emerg(cf, &format!("ase_server: {e}")),
        };
        if conf.servers.iter().any(|s| s.url == spec.url) {
            return emerg(cf, &format!("ase_server: \"{}\" is listed twice", spec.url));
        }
        if let Err(e) = check_node_count(&spec.url, conf.node_count(), addrs.len()) {
            return emerg(cf, &format!("ase_server: {e}"));
        }
        conf.servers.push(spec);
        conf.addresses.push(addrs);
        conf.server_positions.push(current_position(cf));
        conf_ok()
    })
}

pub unsafe extern "C" fn set_token_file(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    checked(cf, || {
        let conf = &mut *(conf as *mut MainConf);
        if conf.token.is_some() {
            return emerg(cf, "the ASE token is already set (by \"ase_token\" or \"ase_token_file\")");
        }
        let args = directive_args(cf);
        let Some(path) = full_name(cf, args[0]) else {
            return emerg(cf, "ase_token_file: cannot build the file's full path");
        };
        let mut content = match std::fs::read(&path) {
            Ok(c) => c,
            Err(e) => return emerg(cf, &format!("ase_token_file: cannot read \"{path}\": {e}")),
        };
        let parsed = parse_token(&content);
        crate::secret::zeroize_vec(&mut content);
        let token = match parsed {
            Ok(t) => t,
            Err(e) => return emerg(cf, &format!("ase_token_file: \"{path}\": {e}")),
        };
        warn_if_world_readable(cf, &path);
        if !token_looks_like_ase(&token) {
            log_conf(cf, NGX_LOG_WARN, &format!(
                "ase_token_file: the token in \"{path}\" is not 32 characters of a-z0-9 as ASE's create_sideband_token makes them"));
        }
        conf.token = Some((token, TokenSource::File(path)));
        conf_ok()
    })
}

pub unsafe extern "C" fn set_token_inline(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    checked(cf, || {
        let conf = &mut *(conf as *mut MainConf);
        if conf.token.is_some() {
            return emerg(cf, "the ASE token is already set (by \"ase_token\" or \"ase_token_file\")");
        }
        match parse_token(directive_args(cf)[0]) {
            Ok(t) => {
                conf.token = Some((t, TokenSource::Inline));
                conf_ok()
            }
            Err(e) => emerg(cf, &format!("ase_token: {e}")),
        }
    })
}

/// `ase_ssl_certificate FILE;`
pub unsafe extern "C" fn set_ssl_certificate(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    checked(cf, || {
        let conf = &mut *(conf as *mut MainConf);
        set_conf_file(cf, "ase_ssl_certificate", &mut conf.ssl_certificate)
    })
}

/// `ase_ssl_certificate_key FILE;`
pub unsafe extern "C" fn set_ssl_certificate_key(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    checked(cf, || {
        let conf = &mut *(conf as *mut MainConf);
        set_conf_file(cf, "ase_ssl_certificate_key", &mut conf.ssl_certificate_key)
    })
}

/// A file directive given once: the path made absolute against the configuration prefix
/// (as nginx does for `proxy_ssl_certificate`), and a file that cannot be opened reported
/// here, at its line. nginx's OpenSSL reads it once the http block is read.
unsafe fn set_conf_file(cf: *mut ngx_conf_t, name: &str, slot: &mut Option<ConfFile>) -> *mut c_char {
    if slot.is_some() {
        return emerg(cf, &format!("\"{name}\" directive is duplicate"));
    }
    let args = directive_args(cf);
    let Some(path) = full_name(cf, args[0]) else {
        return emerg(cf, &format!("{name}: cannot build the file's full path"));
    };
    if let Err(e) = std::fs::File::open(&path) {
        return emerg(cf, &format!("{name}: cannot read \"{path}\": {e}"));
    }
    *slot = Some(ConfFile { path, position: current_position(cf) });
    conf_ok()
}

pub unsafe extern "C" fn set_status(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    _conf: *mut c_void,
) -> *mut c_char {
    checked(cf, || {
        let Some(clcf) = NgxHttpCoreModule::location_conf_mut(&*cf) else {
            return emerg(cf, "ase_status: no location configuration");
        };
        clcf.handler = Some(crate::status_page::handler);
        conf_ok()
    })
}

/// Called once the `http` block is read: defaults and checks that need the whole block.
pub unsafe fn init_main_conf(cf: *mut ngx_conf_t, conf: *mut c_void) -> *mut c_char {
    checked(cf, || {
        let conf = &mut *(conf as *mut MainConf);
        conf.finish();
        let nodes = conf.node_count();
        if nodes > crate::counters::MAX_NODES {
            log_conf(cf, NGX_LOG_WARN, &format!(
                "ase_server: the status page keeps statistics for the first {} of the {nodes} ASE node addresses; it lists the others as \"untracked\"",
                crate::counters::MAX_NODES));
        }
        if conf.uses_tls() && conf.ssl_verify == 0 {
            log_conf(cf, NGX_LOG_WARN,
                "ase_ssl_verify is off: the ASE's certificate is not checked, so anyone on the path can pose as the ASE");
        }
        let mut trusted = String::new();
        if !conf.ssl_trusted_certificate.is_empty() {
            let raw = conf.ssl_trusted_certificate.as_bytes().to_vec();
            let Some(path) = full_name(cf, &raw) else {
                return emerg(cf, "ase_ssl_trusted_certificate: cannot build the file's full path");
            };
            if let Err(e) = std::fs::File::open(&path) {
                return emerg(cf, &format!("ase_ssl_trusted_certificate: cannot read \"{path}\": {e}"));
            }
            trusted = path;
        }
        for i in conf.clear_text_token_nodes() {
            log_at(cf, NGX_LOG_WARN, &format!(
                "ase_server {}: the ASE-Token would travel in clear text to a node that is not on this host (loopback); use https://",
                conf.servers[i].url), &conf.server_positions[i]);
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
                "ase_ssl_certificate is not used: no \"ase_server\" is https://", &cert.position);
        }
        if conf.uses_tls() {
            match crate::tls::create_client_ssl(cf, conf.ssl_verify == 1, &trusted) {
                Ok(ssl) => conf.ssl = ssl,
                Err(e) => return emerg(cf, &format!("ase_server: {e}")),
            }
            if let Some((cert, key)) = &client_cert {
                if let Err(e) = crate::tls::use_client_certificate(cf, conf.ssl, &cert.path, &key.path) {
                    log_emerg_at(cf, &format!("ase_ssl_certificate: {e}"), &cert.position);
                    return ngx_ase_glue::conf::conf_error();
                }
            }
        }
        conf_ok()
    })
}

/// A path relative to nginx's configuration prefix made absolute, as nginx does for its
/// own file directives.
unsafe fn full_name(cf: *mut ngx_conf_t, raw: &[u8]) -> Option<String> {
    let mut name = ngx_str_t::from_bytes((*cf).pool, raw)?;
    if ngx_conf_full_name((*cf).cycle, &mut name, 1) != NGX_OK as isize {
        return None;
    }
    Some(String::from_utf8_lossy(name.as_bytes()).into_owned())
}

fn warn_if_world_readable(cf: *mut ngx_conf_t, path: &str) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o004 != 0 {
            unsafe {
                log_conf(cf, NGX_LOG_WARN, &format!(
                    "ase_token_file: \"{path}\" is readable by every user; chmod o-r it"));
            }
        }
    }
}

