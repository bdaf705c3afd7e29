//! The engine's `Io` on nginx (the unsafe layer under the channel): peer connections made
//! with `ngx_event_connect_peer`, read and write through `c->recv`/`c->send` (so TLS is
//! nginx's own), one non-cancelable nginx timer per call slot, nginx's clock and log.
//!
//! nginx keeps a pointer to each connection's `Peer` in `c->data`; the event handlers at the
//! bottom hand nginx's events up through the `Events` this layer was built with (the owner,
//! `worker.rs`, wires them to the engine): nothing here calls its owner by name.
//!
//! An idle pooled connection is marked `c->idle` only, as nginx's upstream keep-alive pool
//! does: a gracefully exiting worker then closes it (`ngx_close_idle_connections` sets
//! `c->close` and calls the read handler), and `stub_status` does not count it as a
//! waiting client connection.

use core::ffi::{c_void, CStr};
use core::fmt;
use core::ptr;
use std::ffi::CString;
use std::net::SocketAddr;

use nginx_sys::{
    ngx_add_timer, ngx_close_connection, ngx_connection_t, ngx_create_pool, ngx_cycle, ngx_del_timer, ngx_destroy_pool,
    ngx_event_connect_peer, ngx_event_get_peer, ngx_event_t, ngx_handle_read_event, ngx_handle_write_event, ngx_log_t,
    ngx_peer_connection_t, ngx_pool_t, ngx_ssl_create_connection, ngx_ssl_handshake, ngx_ssl_shutdown, ngx_ssl_t,
    ngx_str_t, SSL_ctrl, SSL_pending, NGX_AGAIN, NGX_DECLINED, NGX_ERROR, NGX_OK, NGX_SSL_BUFFER, NGX_SSL_CLIENT,
};
use ngx_ase_glue::ase_log;
use ngx_ase_glue::log::{Cycle, RateLimit, ONCE_A_MINUTE};
use ngx_ase_glue::time::MAX_TIMER_MS;
use ngx_ase_shared::abi::AseError;

use crate::engine::{ConnId, Connect, ConnectError, Io, Level, Xfer};
use crate::net::connect_error::with_errno;

/// Where nginx's events for the channel go, given at construction. Each runs the event
/// (under its owner's panic guard) with nothing of this layer borrowed.
pub struct Events {
    /// A connecting peer's socket or TLS handshake moved: `NgxIo::finish_connect` says how.
    pub connecting: fn(ConnId),
    /// A connected peer is readable (an answer, or a hang-up of an idle one).
    pub readable: fn(ConnId),
    /// A connected peer has room to write.
    pub writable: fn(ConnId),
    /// An idle peer's `arm_idle` timer ran out.
    pub idle_timeout: fn(ConnId),
    /// Call slot `slot`'s timer (`arm`) fired.
    pub timer: fn(usize),
    /// The posted event of `schedule_flush` ran.
    pub flush: fn(),
}

/// Where a node is and how to talk to it.
pub struct NodeAddr {
    pub addr: SocketAddr,
    /// The node's name (as `NodeSpec::display`), for logs and `$upstream_addr`-like
    /// connection names.
    pub display: String,
    pub tls: bool,
    /// The name sent as SNI and checked against the certificate; none for an IP address.
    pub tls_name: Option<CString>,
    /// For a node given by IP address: the address the certificate must name.
    pub tls_ip: Option<CString>,
}

pub struct NgxIo {
    events: &'static Events,
    nodes: Vec<NodeAddr>,
    /// Per node: its TLS failures are logged at most once a minute (a node with a bad
    /// certificate fails every call).
    tls_log: Vec<RateLimit>,
    /// The client TLS context (null when no node is `https://`).
    ssl: *mut ngx_ssl_t,
    ssl_verify: bool,
    /// By `ConnId`; `None` once closed.
    peers: Vec<Option<Box<Peer>>>,
    /// By call slot; an event never moves once made (nginx's timer tree points into it).
    #[allow(clippy::vec_box)]
    timers: Vec<Box<CallTimer>>,
    /// Posted to run `Engine::flush` at the end of the event loop's turn.
    flush: Box<CallTimer>,
    /// The debug trace: the log of the request whose call starts next (set by the ABI entry
    /// around the engine call), and per call slot the log its trace lines go to.
    pub trace_next: Option<ngx_log_t>,
    trace_logs: Vec<Option<ngx_log_t>>,
    socket_keepalive: bool,
}

/// A request's log as the trace keeps it, when it is at debug for HTTP (`error_log ...
/// debug`, or `debug_connection` for this client): a copy, because a report outlives its
/// request, and without the request's context handler, whose data is in the request's
/// pool. Only nginx built `--with-debug` writes debug lines; elsewhere this is `None` at
/// no cost, as nginx's own `ngx_log_debug`.
///
/// # Safety
/// `log` must be null or a live `ngx_log_t`.
pub unsafe fn trace_log(log: *const ngx_log_t) -> Option<ngx_log_t> {
    unsafe {
        let l = log.as_ref()?;
        if !ngx::log::DEBUG || !ngx::log::check_mask(ngx::log::DebugMask::Http, l.log_level) {
            return None;
        }
        let mut copy = *l;
        copy.handler = None;
        copy.data = ptr::null_mut();
        copy.action = ptr::null_mut();
        Some(copy)
    }
}

/// A call slot's timer. `ev.data` points at the whole struct: nginx's debug log reads
/// `ev->data` as a connection (`ngx_event_ident`), so it must point to readable memory
/// at least as large as the start of one, never to a small integer.
#[repr(C)]
struct CallTimer {
    ev: ngx_event_t,
    slot: usize,
    events: &'static Events,
}

/// One connection: what `ngx_event_connect_peer` needs, kept at a stable address.
pub struct Peer {
    pc: ngx_peer_connection_t,
    log: ngx_log_t,
    /// The node's name when it connected (`name` points into it): a `resolve` node's name
    /// changes with its address while a connection to the old one may still be open.
    name_buf: String,
    name: ngx_str_t,
    sockaddr: libc::sockaddr_storage,
    pool: *mut ngx_pool_t,
    pub id: ConnId,
    node: usize,
    /// Still connecting (TCP or the TLS handshake).
    pub connecting: bool,
    events: &'static Events,
}

impl NgxIo {
    pub fn new(nodes: Vec<NodeAddr>, ssl: *mut ngx_ssl_t, ssl_verify: bool, events: &'static Events) -> NgxIo {
        NgxIo {
            events,
            tls_log: nodes.iter().map(|_| RateLimit::new(ONCE_A_MINUTE)).collect(),
            nodes,
            ssl,
            ssl_verify,
            peers: Vec::new(),
            timers: Vec::new(),
            flush: event(on_flush, usize::MAX, events),
            trace_next: None,
            trace_logs: Vec::new(),
            socket_keepalive: false,
        }
    }

    /// `ase_socket_keepalive on`: SO_KEEPALIVE on every new connection (as nginx's
    /// `proxy_socket_keepalive`), so the kernel's keep-alive probes find a dead peer.
    pub fn set_socket_keepalive(&mut self, on: bool) {
        self.socket_keepalive = on;
    }

    /// A TLS failure with node `n`, logged at `error` (at most once a minute per node).
    fn tls_failed(&self, n: usize, why: &str) {
        if self.tls_log[n].allow() {
            // SAFETY: the cycle's log lives as long as the worker.
            unsafe { ase_log!(nginx_sys::NGX_LOG_ERR, Cycle, "ase: TLS to {} failed: {why}", self.nodes[n].display) };
        }
    }

    /// Node `node`'s address (for a `resolve` node: its current one).
    pub fn address(&self, node: usize) -> Option<SocketAddr> {
        self.nodes.get(node).map(|n| n.addr)
    }

    /// A `resolve` node's new address and name. Connections already open keep theirs.
    pub fn set_address(&mut self, node: usize, addr: SocketAddr, display: String) {
        if let Some(n) = self.nodes.get_mut(node) {
            n.addr = addr;
            n.display = display;
        }
    }

    fn conn(&self, id: ConnId) -> *mut ngx_connection_t {
        self.peers.get(id).and_then(|p| p.as_ref()).map_or(ptr::null_mut(), |p| p.pc.connection)
    }

    /// A connecting peer's socket or TLS handshake moved (its `Events::connecting`):
    /// `Some` once connecting is over, the peer then connected, or closed on an error.
    pub fn finish_connect(&mut self, id: ConnId) -> Option<Result<(), ConnectError>> {
        if !self.peers.get(id).is_some_and(|p| p.as_ref().is_some_and(|p| p.connecting)) {
            return None;
        }
        // SAFETY: `id` names an open connection that is still connecting.
        let done = unsafe { self.continue_connect(id) }?;
        match done {
            Ok(()) => self.connected(id),
            Err(_) => self.close(id),
        }
        Some(done)
    }

    /// A connecting peer's socket became ready: connected, refused, or the TLS handshake
    /// moved. `Some(result)` once connecting is over.
    ///
    /// # Safety
    /// `id` must name an open connection.
    unsafe fn continue_connect(&mut self, id: ConnId) -> Option<Result<(), ConnectError>> {
        unsafe {
            let c = self.conn(id);
            if c.is_null() {
                return Some(Err(AseError::Internal.into()));
            }
            let rc = if (*c).ssl.is_null() {
                // TCP connect finished (or failed).
                if let Err(e) = socket_error(c) {
                    return Some(Err(e));
                }
                let n = self.peers[id].as_ref()?.node;
                let node = &self.nodes[n];
                if !node.tls {
                    return Some(Ok(()));
                }
                if let Err(why) = start_tls(c, self.ssl, node, self.ssl_verify) {
                    self.tls_failed(n, &why);
                    return Some(Err(AseError::Tls.into()));
                }
                let rc = ngx_ssl_handshake(c);
                if rc == NGX_AGAIN as isize {
                    // nginx's handshake handlers run until it is done, then call on_handshake.
                    (*(*c).ssl).handler = Some(on_handshake);
                    return None;
                }
                rc
            } else if (*(*c).ssl).handshaked() != 0 {
                NGX_OK as isize
            } else {
                NGX_ERROR as isize
            };
            // The handshake handlers replaced ours: put them back.
            (*(*c).read).handler = Some(on_read);
            (*(*c).write).handler = Some(on_write);
            let n = self.peers[id].as_ref()?.node;
            let node = &self.nodes[n];
            let verified = if rc != NGX_OK as isize {
                Err(crate::net::tls::handshake_failure(c))
            } else if self.ssl_verify {
                crate::net::tls::verify_peer(c, node.tls_name.as_deref().map(CStr::to_bytes))
            } else {
                Ok(())
            };
            Some(verified.map_err(|why| {
                self.tls_failed(n, &why);
                AseError::Tls.into()
            }))
        }
    }

    /// Marks a peer connected (its events now go to `readable` and `writable`).
    fn connected(&mut self, id: ConnId) {
        if let Some(Some(p)) = self.peers.get_mut(id) {
            p.connecting = false;
        }
    }

    fn timer(&mut self, slot: usize) -> *mut ngx_event_t {
        while self.timers.len() <= slot {
            self.timers.push(event(on_timer, self.timers.len(), self.events));
        }
        &mut self.timers[slot].ev
    }
}

/// A boxed event whose `data` points at itself (see `CallTimer`).
fn event(handler: unsafe extern "C" fn(*mut ngx_event_t), slot: usize, events: &'static Events) -> Box<CallTimer> {
    // SAFETY: ngx_event_t is a plain C struct; zero is its idle state.
    let mut t = Box::new(CallTimer { ev: unsafe { core::mem::zeroed() }, slot, events });
    t.ev.handler = Some(handler);
    t.ev.data = ptr::addr_of_mut!(*t).cast();
    // SAFETY: the cycle's log lives as long as the worker.
    t.ev.log = unsafe { (*ngx_cycle).log };
    // Non-cancelable: a gracefully exiting worker waits for its calls to end.
    t.ev.set_cancelable(0);
    t
}

impl Drop for NgxIo {
    fn drop(&mut self) {
        // Nothing of ours may stay in nginx's queue of posted events.
        if self.flush.ev.posted() != 0 {
            // SAFETY: the event is ours and in the posted queue.
            unsafe { nginx_sys::ngx_delete_posted_event(&mut self.flush.ev) };
        }
    }
}

impl Io for NgxIo {
    fn now(&self) -> u64 {
        crate::clock::now_ms()
    }

    fn connect(&mut self, id: ConnId, node: usize) -> Connect {
        let Some(addr) = self.nodes.get(node) else { return Connect::Failed(AseError::Internal.into()) };
        let mut p = Box::new(Peer {
            // SAFETY: plain C structs; zero is their empty state.
            pc: unsafe { core::mem::zeroed() },
            log: unsafe { *(*ngx_cycle).log },
            name_buf: addr.display.clone(),
            name: ngx_str_t::empty(),
            sockaddr: unsafe { core::mem::zeroed() },
            pool: ptr::null_mut(),
            id,
            node,
            connecting: true,
            events: self.events,
        });
        p.log.action = c"talking to the ASE".as_ptr() as *mut _;
        p.pc.socklen = write_sockaddr(&addr.addr, &mut p.sockaddr);
        p.pc.sockaddr = ptr::addr_of_mut!(p.sockaddr).cast();
        p.name = ngx_str_t { len: p.name_buf.len(), data: p.name_buf.as_ptr() as *mut u8 };
        p.pc.name = ptr::addr_of_mut!(p.name);
        p.pc.get = Some(ngx_event_get_peer);
        p.pc.log = ptr::addr_of_mut!(p.log);
        p.pc.set_log_error(nginx_sys::ngx_connection_log_error_e_NGX_ERROR_INFO as _);
        // ngx_event_connect_peer sets SO_KEEPALIVE on the socket for this flag.
        p.pc.set_so_keepalive(self.socket_keepalive as _);
        // SAFETY: pc is set up; nginx fills pc.connection.
        let rc = unsafe { ngx_event_connect_peer(&mut p.pc) };
        // Read before anything else can touch it: connect()'s own error.
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        let c = p.pc.connection;
        if c.is_null() {
            // NGX_DECLINED: connect() failed, errno says how. NGX_ERROR: nginx had no
            // connection (worker_connections) or socket to give: our shortage, not the ASE's.
            return Connect::Failed(if rc == NGX_DECLINED as isize {
                with_errno(errno)
            } else {
                AseError::Local.into()
            });
        }
        // SAFETY: c is the live connection nginx just made for us; `p` is boxed, so the
        // pointer in c->data stays valid until `close` drops it.
        unsafe {
            (*c).data = ptr::from_mut(&mut *p).cast();
            (*(*c).read).handler = Some(on_read);
            (*(*c).write).handler = Some(on_write);
            if addr.tls {
                // TLS keeps its state in c->pool.
                p.pool = ngx_create_pool(1024, (*ngx_cycle).log);
                (*c).pool = p.pool;
            }
        }
        // A request goes out in one write and waits for its answer: never hold it back
        // for an ACK (Nagle), as nginx's upstream keep-alive connections do not either.
        // SAFETY: c->fd is the connection's open socket.
        unsafe {
            let on: libc::c_int = 1;
            libc::setsockopt(
                (*c).fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                ptr::addr_of!(on).cast(),
                core::mem::size_of::<libc::c_int>() as _,
            );
        }
        if self.peers.len() <= id {
            self.peers.resize_with(id + 1, || None);
        }
        self.peers[id] = Some(p);
        if addr.tls && self.peers[id].as_ref().is_some_and(|p| p.pool.is_null()) {
            self.close(id);
            return Connect::Failed(AseError::Internal.into());
        }
        if rc == NGX_AGAIN as isize {
            return Connect::Pending;
        }
        if rc != NGX_OK as isize {
            // NGX_DECLINED / NGX_BUSY: refused at once.
            self.close(id);
            return Connect::Failed(AseError::Refused.into());
        }
        // Connected at once (a local socket): the handshake may still be needed.
        // SAFETY: c is open.
        match unsafe { self.continue_connect(id) } {
            None => Connect::Pending,
            Some(Ok(())) => {
                self.connected(id);
                Connect::Ready
            }
            Some(Err(e)) => {
                self.close(id);
                Connect::Failed(e)
            }
        }
    }

    fn send(&mut self, id: ConnId, data: &[u8]) -> Xfer {
        let c = self.conn(id);
        // SAFETY: c is open (or null); send only reads `data`.
        unsafe {
            let Some(send) = c.as_ref().and_then(|c| c.send) else { return Xfer::Failed };
            let n = send(c, data.as_ptr() as *mut u8, data.len());
            if n == NGX_AGAIN as isize {
                return if ngx_handle_write_event((*c).write, 0) == NGX_OK as isize {
                    Xfer::WouldBlock
                } else {
                    Xfer::Failed
                };
            }
            if n < 0 {
                Xfer::Failed
            } else {
                Xfer::Done(n as usize)
            }
        }
    }

    fn recv(&mut self, id: ConnId, buf: &mut [u8]) -> Xfer {
        let c = self.conn(id);
        // SAFETY: c is open (or null); recv writes at most buf.len() bytes into buf.
        unsafe {
            let Some(recv) = c.as_ref().and_then(|c| c.recv) else { return Xfer::Failed };
            if (*c).close() != 0 {
                // The worker is shutting down and closes idle connections.
                return Xfer::Failed;
            }
            // Nothing has arrived since the last read: no system call for nothing.
            let n = if (*(*c).read).ready() == 0 { NGX_AGAIN as isize } else { recv(c, buf.as_mut_ptr(), buf.len()) };
            if n == NGX_AGAIN as isize {
                return if ngx_handle_read_event((*c).read, 0) == NGX_OK as isize {
                    Xfer::WouldBlock
                } else {
                    Xfer::Failed
                };
            }
            if n < 0 {
                Xfer::Failed
            } else {
                Xfer::Done(n as usize)
            }
        }
    }

    fn pending(&mut self, id: ConnId) -> bool {
        let c = self.conn(id);
        // SAFETY: c is open (or null); the peek writes at most one byte into `byte`.
        unsafe {
            let Some(cr) = c.as_ref() else { return true };
            // A readiness flag still set, or the worker closing it: not a clean idle one.
            if cr.close() != 0 || (*cr.read).ready() != 0 {
                return true;
            }
            // Bytes OpenSSL already decrypted and holds.
            if !cr.ssl.is_null() && SSL_pending((*cr.ssl).connection) > 0 {
                return true;
            }
            // What the kernel holds (for TLS, records not yet read: a close_notify or data,
            // either way not for the next call). Non-blocking, nothing consumed.
            let mut byte = 0u8;
            let n = libc::recv(cr.fd, (&raw mut byte).cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT);
            if n >= 0 {
                return true; // bytes, or the end of the stream (0)
            }
            let err = std::io::Error::last_os_error().raw_os_error();
            // EAGAIN: nothing there, the one answer that lets it be reused. Any other error
            // (a reset) closes it too.
            err != Some(libc::EAGAIN) && err != Some(libc::EWOULDBLOCK)
        }
    }

    fn close(&mut self, id: ConnId) {
        let Some(mut p) = self.peers.get_mut(id).and_then(Option::take) else { return };
        let c = p.pc.connection;
        p.pc.connection = ptr::null_mut();
        // SAFETY: c is open and ours; nothing refers to it after this.
        unsafe {
            if !c.is_null() {
                if !(*c).ssl.is_null() {
                    (*(*c).ssl).set_no_wait_shutdown(1);
                    let _ = ngx_ssl_shutdown(c);
                }
                ngx_close_connection(c);
            }
            if !p.pool.is_null() {
                ngx_destroy_pool(p.pool);
            }
        }
    }

    fn set_idle(&mut self, id: ConnId, idle: bool) {
        let c = self.conn(id);
        // SAFETY: c is open (or null).
        if let Some(c) = unsafe { c.as_mut() } {
            c.set_idle(idle as _);
            // Taken from the pool: its idle timer (`arm_idle`) must not fire on the call.
            // SAFETY: c->read is the connection's live read event.
            unsafe {
                if !idle && (*c.read).timer_set() != 0 {
                    ngx_del_timer(c.read);
                }
            }
        }
    }

    fn arm_idle(&mut self, id: ConnId, after_ms: u64) {
        let c = self.conn(id);
        // SAFETY: c is open (or null); its read event is live while it is. nginx's upstream
        // keep-alive puts `keepalive_timeout` on the idle connection's read event the same
        // way; `on_read` sees `timedout` and hands the connection to `on_idle_timeout`.
        if let Some(c) = unsafe { c.as_mut() } {
            unsafe {
                if (*c.read).timer_set() != 0 {
                    ngx_del_timer(c.read);
                }
                ngx_add_timer(
                    c.read,
                    after_ms.clamp(1, nginx_sys::ngx_msec_t::MAX as u64 / 2) as nginx_sys::ngx_msec_t,
                );
            }
        }
    }

    fn arm(&mut self, slot: usize, at_ms: u64) {
        let ev = self.timer(slot);
        // Within what epoll_wait's int takes; a call woken early is armed again.
        let delay = at_ms.saturating_sub(self.now()).clamp(1, MAX_TIMER_MS);
        // SAFETY: the event is ours and never moves. Deleted first: ngx_add_timer would keep
        // an old time that is close to the new one.
        unsafe {
            if (*ev).timer_set() != 0 {
                ngx_del_timer(ev);
            }
            ngx_add_timer(ev, delay as _);
        }
    }

    fn disarm(&mut self, slot: usize) {
        if let Some(t) = self.timers.get_mut(slot) {
            if t.ev.timer_set() != 0 {
                // SAFETY: the event is ours and set.
                unsafe { ngx_del_timer(&mut t.ev) };
            }
        }
    }

    fn schedule_flush(&mut self) {
        // SAFETY: the event is ours, never moves, and is taken off the queue when dropped.
        unsafe { nginx_sys::ngx_post_event(&mut self.flush.ev, ptr::addr_of_mut!(nginx_sys::ngx_posted_events)) };
    }

    fn exiting(&self) -> bool {
        crate::clock::worker_exiting()
    }

    fn logs(&self, level: Level) -> bool {
        // SAFETY: the cycle's log lives as long as the worker.
        unsafe { (*(*ngx_cycle).log).log_level >= ngx_level(level) as usize }
    }

    fn log(&mut self, level: Level, args: fmt::Arguments<'_>) {
        // SAFETY: as above.
        let log = unsafe { (*ngx_cycle).log };
        if !log.is_null() {
            ngx::ngx_log_error!(ngx_level(level), log, "{}", args);
        }
    }

    fn trace_begin(&mut self, slot: usize) -> bool {
        let log = self.trace_next;
        if self.trace_logs.len() <= slot {
            if log.is_none() {
                return false;
            }
            self.trace_logs.resize(slot + 1, None);
        }
        self.trace_logs[slot] = log;
        log.is_some()
    }

    fn traces(&self) -> bool {
        // SAFETY: the cycle's log lives as long as the worker.
        unsafe { trace_log((*ngx_cycle).log).is_some() }
    }

    fn trace(&mut self, slot: Option<usize>, args: fmt::Arguments<'_>) {
        let log: *mut ngx_log_t = match slot {
            Some(s) => match self.trace_logs.get_mut(s).and_then(Option::as_mut) {
                Some(l) => l,
                None => return,
            },
            // SAFETY: as above.
            None => unsafe { (*ngx_cycle).log },
        };
        if !log.is_null() {
            ngx::ngx_log_debug!(mask: ngx::log::DebugMask::Http, log, "{}", args);
        }
    }
}

fn ngx_level(level: Level) -> u32 {
    match level {
        Level::Alert => nginx_sys::NGX_LOG_ALERT,
        Level::Error => nginx_sys::NGX_LOG_ERR,
        Level::Warn => nginx_sys::NGX_LOG_WARN,
        Level::Notice => nginx_sys::NGX_LOG_NOTICE,
        Level::Debug => nginx_sys::NGX_LOG_DEBUG,
    }
}

/// The outcome of a non-blocking connect, as `SO_ERROR` tells it.
unsafe fn socket_error(c: *mut ngx_connection_t) -> Result<(), ConnectError> {
    unsafe {
        let mut err: libc::c_int = 0;
        let mut len = core::mem::size_of::<libc::c_int>() as libc::socklen_t;
        let rc = libc::getsockopt((*c).fd, libc::SOL_SOCKET, libc::SO_ERROR, ptr::addr_of_mut!(err).cast(), &mut len);
        if rc == -1 {
            return Err(AseError::Refused.into());
        }
        if err != 0 {
            return Err(with_errno(err));
        }
        Ok(())
    }
}

/// Sets up TLS on a connected socket: SNI, and (verification on) the checks OpenSSL makes
/// *during* the handshake, so a certificate that does not chain to a trusted CA or does not
/// name the node (its host name, or its IP address for a node given by address) ends the
/// handshake before a byte of request — or the token — is written.
unsafe fn start_tls(
    c: *mut ngx_connection_t,
    ssl: *mut ngx_ssl_t,
    node: &NodeAddr,
    verify: bool,
) -> Result<(), String> {
    unsafe {
        if ssl.is_null() {
            return Err("no TLS context".into());
        }
        let flags = (NGX_SSL_BUFFER | NGX_SSL_CLIENT) as usize;
        if ngx_ssl_create_connection(ssl, c, flags) != NGX_OK as isize {
            return Err("cannot create a TLS connection".into());
        }
        let conn = (*(*c).ssl).connection.cast::<nginx_sys::SSL>();
        if let Some(name) = &node.tls_name {
            // SSL_set_tlsext_host_name is a macro over SSL_ctrl.
            const SSL_CTRL_SET_TLSEXT_HOSTNAME: i32 = 55;
            const TLSEXT_NAMETYPE_HOST_NAME: i64 = 0;
            SSL_ctrl(
                conn.cast(),
                SSL_CTRL_SET_TLSEXT_HOSTNAME,
                TLSEXT_NAMETYPE_HOST_NAME as _,
                name.as_ptr() as *mut c_void,
            );
        }
        if verify {
            let param = nginx_sys::SSL_get0_param(conn);
            let named = match (&node.tls_name, &node.tls_ip) {
                (Some(name), _) => nginx_sys::X509_VERIFY_PARAM_set1_host(param, name.as_ptr(), 0) == 1,
                (None, Some(ip)) => nginx_sys::X509_VERIFY_PARAM_set1_ip_asc(param, ip.as_ptr()) == 1,
                (None, None) => false,
            };
            if !named {
                return Err("cannot set the name the certificate must match".into());
            }
            // OpenSSL's own verification, failing the handshake (nginx's context callback only
            // records the result for a check after the handshake).
            const SSL_VERIFY_PEER: i32 = 1;
            nginx_sys::SSL_set_verify(conn, SSL_VERIFY_PEER, None);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------- nginx's handlers

/// The connection's id, whether it is still connecting, and where its events go.
unsafe fn peer_of(c: *mut ngx_connection_t) -> Option<(ConnId, bool, &'static Events)> {
    // SAFETY: c->data is null or the connection's boxed `Peer` (set in `connect`), which
    // lives until `close`.
    unsafe { ((*c).data as *const Peer).as_ref().map(|p| (p.id, p.connecting, p.events)) }
}

/// Read event: the answer (or, for an idle connection, a hang-up or the worker's close).
unsafe extern "C" fn on_read(ev: *mut ngx_event_t) {
    unsafe {
        let c: *mut ngx_connection_t = (*ev).data.cast();
        let Some((id, connecting, events)) = peer_of(c) else { return };
        if connecting {
            (events.connecting)(id);
        } else if (*ev).timedout() != 0 {
            // Only an idle connection has a timer on its read event (`arm_idle`).
            (*ev).set_timedout(0);
            (events.idle_timeout)(id);
        } else {
            (events.readable)(id);
        }
    }
}

/// Write event: connected, or room to write the rest of the request.
unsafe extern "C" fn on_write(ev: *mut ngx_event_t) {
    unsafe {
        let c: *mut ngx_connection_t = (*ev).data.cast();
        let Some((id, connecting, events)) = peer_of(c) else { return };
        if connecting {
            (events.connecting)(id);
        } else {
            (events.writable)(id);
        }
    }
}

/// The TLS handshake ended, either way.
unsafe extern "C" fn on_handshake(c: *mut ngx_connection_t) {
    unsafe {
        if let Some((id, true, events)) = peer_of(c) {
            (events.connecting)(id);
        }
    }
}

/// A call's timer: its connect timeout or its deadline.
unsafe extern "C" fn on_timer(ev: *mut ngx_event_t) {
    unsafe {
        let t = &*((*ev).data as *const CallTimer);
        (t.events.timer)(t.slot);
    }
}

/// The end of the event loop's turn: the reports queued during it go out.
unsafe extern "C" fn on_flush(ev: *mut ngx_event_t) {
    unsafe {
        let t = &*((*ev).data as *const CallTimer);
        (t.events.flush)();
    }
}

/// Fills a C sockaddr from a Rust address; returns its length.
fn write_sockaddr(addr: &SocketAddr, out: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin = unsafe { &mut *(out as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            core::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *(out as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_scope_id = a.scope_id();
            core::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}
