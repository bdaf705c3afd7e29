//! Command-line flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// A test double of Ping Identity's API Security Enforcer (ASE) in sideband mode.
///
/// Serves the ASE sideband protocol (POST /ase/request, POST /ase/response, GET /ase) on
/// the data port, and a JSON admin API (records, stats, deny list, keep-alive, fault
/// injection) on the admin port. Once both ports listen it prints one line,
/// {"data":"HOST:PORT","admin":"HOST:PORT"}, then one JSON line per call.
#[derive(Debug, Parser)]
#[command(name = "ase-double", version)]
pub struct Cli {
    /// Address of the data (sideband) port; port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,

    /// Address of the admin port; port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub admin: SocketAddr,

    /// Require this ASE-Token on every sideband call (else 401).
    #[arg(long, value_name = "TOKEN", conflicts_with = "token_file")]
    pub token: Option<String>,

    /// Read the required ASE-Token from this file (surrounding whitespace trimmed).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// Keep sideband connections open when the client asks for it (the ASE's
    /// enable_sideband_keepalive); without it every answer says Connection: close.
    #[arg(long)]
    pub keepalive: bool,

    /// Seconds an idle keep-alive connection is kept before the double closes it.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub keepalive_timeout: u64,

    /// Forget idle flows, as a NAT or load balancer does: a request on a connection idle
    /// for more than MS milliseconds is silently hung (never answered, never reset).
    /// 0: off. Also `PUT /forget_idle {"ms": N}` on the admin port.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub forget_idle_ms: u64,

    /// API definitions: one ASE API JSON file, or a directory of *.json files.
    /// Without it, one built-in API: url "/", hostname "*", blocking on.
    #[arg(long, value_name = "PATH")]
    pub apis: Option<PathBuf>,

    /// Serve TLS on the data port with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Require every client on the TLS data port to present a certificate signed by a CA
    /// in this PEM file (mutual TLS); a client without one fails the handshake.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,

    /// Once both ports listen, also write the ready JSON line to this file (atomically).
    #[arg(long, value_name = "FILE")]
    pub ready_file: Option<PathBuf>,

    /// Write the per-call JSON lines to this file (appended) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
}

impl Cli {
    /// The required token, if any: `--token`, or `--token-file` trimmed.
    pub fn token(&self) -> Result<Option<String>, String> {
        let token = match (&self.token, &self.token_file) {
            (Some(t), _) => t.trim().to_string(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| format!("--token-file {}: {e}", path.display()))?
                .trim()
                .to_string(),
            (None, None) => return Ok(None),
        };
        if token.is_empty() {
            return Err("the ASE token is empty".to_string());
        }
        Ok(Some(token))
    }
}
