//! TLS to `https://` ASE nodes through nginx's OpenSSL (unsafe glue): the client context,
//! created once at configuration time like the proxy module's, and the checks after a
//! handshake.

use core::ffi::CStr;
use core::ptr;

use nginx_sys::{
    ngx_conf_t, ngx_connection_t, ngx_pool_cleanup_add, ngx_ssl_certificate, ngx_ssl_check_host, ngx_ssl_cleanup_ctx,
    ngx_ssl_create, ngx_ssl_t, ngx_ssl_trusted_certificate, ngx_str_t, NGX_SSL_TLSv1_2, NGX_SSL_TLSv1_3,
    SSL_CTX_set_default_verify_paths, SSL_get_verify_result, X509_verify_cert_error_string, NGX_OK,
};

/// Creates the client TLS context. With verification on, certificates are checked against
/// `trusted` (a CA file, already made absolute) or else the system's store.
///
/// # Safety
/// `cf` must be the live `ngx_conf_t` of the http block.
pub unsafe fn create_client_ssl(cf: *mut ngx_conf_t, verify: bool, trusted: &str) -> Result<*mut ngx_ssl_t, String> {
    unsafe {
        let ssl = nginx_sys::ngx_pcalloc((*cf).pool, core::mem::size_of::<ngx_ssl_t>()) as *mut ngx_ssl_t;
        if ssl.is_null() {
            return Err("out of memory".into());
        }
        (*ssl).log = (*cf).log;
        let protocols = (NGX_SSL_TLSv1_2 | NGX_SSL_TLSv1_3) as usize;
        if ngx_ssl_create(ssl, protocols, ptr::null_mut()) != NGX_OK as isize {
            return Err("cannot create the TLS context for the ASE".into());
        }
        let cln = ngx_pool_cleanup_add((*cf).pool, 0);
        if cln.is_null() {
            nginx_sys::ngx_ssl_cleanup_ctx(ssl.cast());
            return Err("out of memory".into());
        }
        (*cln).handler = Some(ngx_ssl_cleanup_ctx);
        (*cln).data = ssl.cast();
        if verify {
            let mut path = conf_cstr(cf, trusted).ok_or("out of memory")?;
            // Sets nginx's verify callback and depth; loads the CA file when one is given.
            if ngx_ssl_trusted_certificate(cf, ssl, &mut path, 9) != NGX_OK as isize {
                return Err(format!("cannot load ase_ssl_trusted_certificate \"{trusted}\""));
            }
            if trusted.is_empty() && SSL_CTX_set_default_verify_paths((*ssl).ctx.cast()) != 1 {
                return Err("cannot load the system's CA store for the ASE".into());
            }
        }
        Ok(ssl)
    }
}

/// Loads the client certificate and its key (paths already made absolute) into the
/// context, for nodes that require mutual TLS: nginx's `ngx_ssl_certificate`, as the proxy
/// module does for `proxy_ssl_certificate` (no key passwords). nginx logs what OpenSSL
/// said; the caller adds where the directive is.
///
/// # Safety
/// `cf` must be the live `ngx_conf_t` of the http block; `ssl` a context from
/// [`create_client_ssl`].
pub unsafe fn use_client_certificate(
    cf: *mut ngx_conf_t,
    ssl: *mut ngx_ssl_t,
    cert: &str,
    key: &str,
) -> Result<(), String> {
    unsafe {
        let (Some(mut c), Some(mut k)) = (conf_cstr(cf, cert), conf_cstr(cf, key)) else {
            return Err("out of memory".into());
        };
        if ngx_ssl_certificate(cf, ssl, &mut c, &mut k, ptr::null_mut()) != NGX_OK as isize {
            return Err(format!("cannot use the certificate \"{cert}\" with the key \"{key}\""));
        }
        Ok(())
    }
}

/// A NUL-terminated copy of `s` in the configuration's pool (it lives as long as the
/// configuration): nginx opens files by `data` as a C string.
unsafe fn conf_cstr(cf: *mut ngx_conf_t, s: &str) -> Option<ngx_str_t> {
    unsafe {
        let data = nginx_sys::ngx_pnalloc((*cf).pool, s.len() + 1) as *mut u8;
        if data.is_null() {
            return None;
        }
        ptr::copy_nonoverlapping(s.as_ptr(), data, s.len());
        *data.add(s.len()) = 0;
        Some(ngx_str_t { len: s.len(), data })
    }
}

/// Why a handshake failed, for the log: the certificate's verification error when there
/// was one (it ends the handshake: see `ngx_io::start_tls`).
///
/// # Safety
/// `c` must be a connection with TLS set up.
pub unsafe fn handshake_failure(c: *mut ngx_connection_t) -> String {
    unsafe {
        let rc = SSL_get_verify_result((*(*c).ssl).connection.cast());
        if rc != 0 {
            let why = CStr::from_ptr(X509_verify_cert_error_string(rc)).to_string_lossy().into_owned();
            return format!("TLS handshake failed: certificate verify error: ({rc}:{why})");
        }
        "TLS handshake failed".to_string()
    }
}

/// After the handshake: the certificate chain verified and, for a host name, matches it.
/// `Err` carries a reason for the log.
///
/// # Safety
/// `c` must be a connection whose TLS handshake completed.
pub unsafe fn verify_peer(c: *mut ngx_connection_t, host: Option<&[u8]>) -> Result<(), String> {
    unsafe {
        let rc = SSL_get_verify_result((*(*c).ssl).connection.cast());
        if rc != 0 {
            let why = CStr::from_ptr(X509_verify_cert_error_string(rc)).to_string_lossy().into_owned();
            return Err(format!("certificate verify error: ({rc}:{why})"));
        }
        if let Some(h) = host {
            let mut name = ngx_str_t { len: h.len(), data: h.as_ptr() as *mut u8 };
            if ngx_ssl_check_host(c, &mut name) != NGX_OK as isize {
                return Err(format!("certificate does not match \"{}\"", String::from_utf8_lossy(h)));
            }
        }
        Ok(())
    }
}
