//! The worker's channel: the nodes, their keep-alive pools, the token, and the limits.
//! Built in `init_process` from the http main configuration (never in the master).

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;

use crate::conf::MainConf;
use crate::net::peer::ConnLink;
use crate::nodes::{NodePolicy, Nodes};

/// An idle keep-alive connection.
pub struct Pooled {
    pub sender: SendRequest<Full<Bytes>>,
    pub link: Rc<ConnLink>,
}

pub struct Node {
    /// `http://host:port`, for logs.
    pub display: String,
    /// The `Host` header.
    pub authority: String,
    pub addr: SocketAddr,
    pub tls: bool,
    /// The name sent as SNI and checked against the certificate; none for an IP address.
    pub tls_name: Option<std::ffi::CString>,
    pub idle: RefCell<Vec<Pooled>>,
}

pub struct Channel {
    pub nodes: Vec<Node>,
    /// The client TLS context (null when no node is `https://`).
    pub ssl: *mut nginx_sys::ngx_ssl_t,
    pub ssl_verify: bool,
    pub health: RefCell<Nodes>,
    pub token: Option<Bytes>,
    pub keepalive: usize,
    pub response_queue: usize,
    pub reports_in_flight: Cell<usize>,
}

thread_local! {
    static CHANNEL: RefCell<Option<Rc<Channel>>> = const { RefCell::new(None) };
}

impl Channel {
    pub fn from_conf(conf: &MainConf) -> Channel {
        let nodes = conf
            .servers
            .iter()
            .zip(&conf.addresses)
            .filter_map(|(s, addrs)| {
                Some(Node {
                    display: s.url.to_string(),
                    authority: s.url.authority(),
                    addr: *addrs.first()?,
                    tls: s.url.tls,
                    tls_name: s.url.host_is_name().then(|| std::ffi::CString::new(s.url.host.clone()).ok()).flatten(),
                    idle: RefCell::new(Vec::new()),
                })
            })
            .collect();
        let policies = conf
            .servers
            .iter()
            .map(|s| NodePolicy { backup: s.backup, max_fails: s.max_fails, fail_timeout_ms: s.fail_timeout_ms })
            .collect();
        Channel {
            nodes,
            ssl: conf.ssl,
            ssl_verify: conf.ssl_verify == 1,
            health: RefCell::new(Nodes::new(policies)),
            token: conf.token.as_ref().map(|(t, _)| Bytes::copy_from_slice(t.as_bytes())),
            keepalive: conf.keepalive,
            response_queue: conf.response_queue,
            reports_in_flight: Cell::new(0),
        }
    }

    /// Installs the worker's channel.
    pub fn install(ch: Channel) {
        CHANNEL.with(|c| *c.borrow_mut() = Some(Rc::new(ch)));
    }

    /// The worker's channel, if this process has one.
    pub fn get() -> Option<Rc<Channel>> {
        CHANNEL.with(|c| c.borrow().clone())
    }

    /// Drops every idle connection (worker exit).
    pub fn shutdown() {
        if let Some(ch) = CHANNEL.with(|c| c.borrow_mut().take()) {
            for n in &ch.nodes {
                n.idle.borrow_mut().clear();
            }
        }
    }
}
