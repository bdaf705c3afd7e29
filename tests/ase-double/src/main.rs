//! ase-double: a test double of the PingIntelligence API Security Enforcer in sideband mode.

mod admin;
mod apis;
mod calllog;
mod cli;
mod data_server;
mod deny;
mod faults;
mod handler;
mod protocol;
mod state;
mod tls;
mod wire;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tokio::net::TcpListener;

use crate::calllog::CallLog;
use crate::cli::Cli;
use crate::state::State;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ase-double: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    // connections still open (hanging faults, idle keep-alive) are dropped
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ase-double: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let token = cli.token()?;
    let apis = match &cli.apis {
        Some(path) => apis::load(path)?,
        None => vec![apis::Api::builtin()],
    };
    let tls = match (&cli.tls_cert, &cli.tls_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key, cli.tls_client_ca.as_deref())?),
        _ => None,
    };
    let log = match &cli.log {
        Some(path) => CallLog::file(path)?,
        None => CallLog::stdout(),
    };
    let data = TcpListener::bind(cli.listen).await.map_err(|e| format!("--listen {}: {e}", cli.listen))?;
    let admin = TcpListener::bind(cli.admin).await.map_err(|e| format!("--admin {}: {e}", cli.admin))?;
    let data_addr = data.local_addr().map_err(|e| e.to_string())?;
    let admin_addr = admin.local_addr().map_err(|e| e.to_string())?;

    let state =
        Arc::new(State::new(token, apis, cli.keepalive, Duration::from_secs(cli.keepalive_timeout.max(1)), log));
    state.set_forget_idle_ms(cli.forget_idle_ms);
    tokio::spawn(data_server::run(data, tls, state.clone()));
    tokio::spawn(admin::run(admin, state));

    // by hand, to keep "data" first
    let ready = format!(
        "{{\"data\":{},\"admin\":{}}}",
        serde_json::Value::String(data_addr.to_string()),
        serde_json::Value::String(admin_addr.to_string())
    );
    println!("{ready}");
    if let Some(path) = &cli.ready_file {
        write_atomically(path, &ready)?;
    }
    wait_for_signal().await
}

/// Writes a file through a temporary file in the same directory and a rename.
fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, format!("{text}\n"))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("--ready-file {}: {e}", path.display()))
}

async fn wait_for_signal() -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT handler: {e}"))?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
