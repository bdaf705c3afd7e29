//! The worker process's start and stop (nginx's `init_process` and `exit_process`): the
//! channel built from the configuration (engine, nginx side, shared counters, names to
//! follow), and torn down at exit.

use nginx_sys::{ngx_cycle_t, ngx_int_t, ngx_process, NGX_OK};
use ngx::http::HttpModuleMainConf;
use ngx_ase_glue::panic::guard;

use crate::engine::{Engine, GroupSpec, NodeSpec};
use crate::health::NodePolicy;
use crate::net::ngx_io::{NgxIo, NodeAddr};
use crate::worker::{self, Worker};
use crate::Module;

/// Builds this worker's channel (workers and single-process mode only).
pub unsafe extern "C" fn init_process(cycle: *mut ngx_cycle_t) -> ngx_int_t {
    unsafe {
        guard((*cycle).log, "init_process", NGX_OK as ngx_int_t, || {
            let p = ngx_process as u32;
            if p != nginx_sys::NGX_PROCESS_WORKER && p != nginx_sys::NGX_PROCESS_SINGLE {
                return NGX_OK as ngx_int_t;
            }
            if let Some(conf) = Module::main_conf(&*cycle) {
                if let Some(shared) = crate::zone::shared_counters(conf.zone) {
                    crate::counters::use_shared(shared);
                }
                if conf.node_count() > 0 {
                    worker::install(build_worker(conf));
                    let names = resolve_names(conf);
                    if !names.is_empty() && !conf.resolver.is_null() {
                        crate::net::resolve::start(conf.resolver, conf.resolver_timeout, names, worker::follow_name);
                    }
                }
            }
            NGX_OK as ngx_int_t
        })
    }
}

/// The engine and its nginx side for the configured groups and their nodes: one per
/// address each server line resolved to (see `settings::expand_nodes`), numbered through
/// the groups in order (`MainConf::nodes` gives the status page the same order).
fn build_worker(conf: &crate::conf::MainConf) -> Worker {
    let mut groups = Vec::new();
    let mut all_addrs = Vec::new();
    for g in conf.group_views() {
        let (specs, addrs) = node_specs(g.nodes());
        groups.push(GroupSpec {
            name: g.name.to_string(),
            nodes: specs,
            token: g.token.map(|t| t.as_bytes()),
            keepalive: g.keepalive,
            balance: g.balance,
        });
        all_addrs.extend(addrs);
    }
    let mut engine = Engine::with_groups(groups, conf.response_queue);
    for (g, view) in conf.group_views().iter().enumerate() {
        engine.set_pool_limits(g, view.pool_limits);
        engine.set_latency_guard(g, view.latency_guard, crate::clock::now_ms());
    }
    let mut io = NgxIo::new(all_addrs, conf.ssl, conf.ssl_verify == 1, &worker::EVENTS);
    io.set_socket_keepalive(conf.socket_keepalive == 1);
    Worker { engine, io }
}

/// The `resolve` servers' names and the node slots each one's addresses take (the node
/// numbers `build_worker` gives).
fn resolve_names(conf: &crate::conf::MainConf) -> Vec<crate::net::resolve::Name> {
    let mut names = Vec::new();
    let mut first = 0;
    for g in conf.group_views() {
        for (s, addrs) in g.servers.iter().zip(g.addresses) {
            if s.resolve {
                names.push(crate::net::resolve::Name { url: s.url.clone(), first, slots: addrs.len() });
            }
            first += addrs.len();
        }
    }
    names
}

/// What the engine and the nginx side each need of a group's nodes.
fn node_specs(nodes: Vec<crate::conf::settings::Node>) -> (Vec<NodeSpec>, Vec<NodeAddr>) {
    nodes
        .into_iter()
        .map(|n| {
            let (s, display) = (&n.server, n.display());
            let spec = NodeSpec {
                display: display.clone(),
                authority: s.url.authority(),
                policy: NodePolicy {
                    backup: s.backup,
                    max_fails: s.max_fails,
                    fail_timeout_ms: s.fail_timeout_ms,
                    weight: s.weight,
                    max_conns: s.max_conns,
                },
                // A `resolve` server's slots wait for the resolver's answer.
                active: !s.resolve,
            };
            let addr = NodeAddr {
                addr: n.addr,
                display,
                tls: s.url.tls,
                tls_name: s.url.host_is_name().then(|| std::ffi::CString::new(s.url.host.clone()).ok()).flatten(),
                tls_ip: (!s.url.host_is_name()).then(|| std::ffi::CString::new(n.addr.ip().to_string()).ok()).flatten(),
            };
            (spec, addr)
        })
        .unzip()
}

pub unsafe extern "C" fn exit_process(cycle: *mut ngx_cycle_t) {
    unsafe {
        guard((*cycle).log, "exit_process", (), || {
            crate::net::resolve::stop();
            worker::uninstall();
        })
    }
}
