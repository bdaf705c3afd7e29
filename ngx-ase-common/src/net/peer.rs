//! An nginx peer connection (`ngx_event_connect_peer`) as an async byte stream for hyper.
//! This is the unsafe layer under the channel: nginx owns the socket and its events; the
//! read/write handlers only wake the task waiting on them.
//!
//! While a connection sits idle in the keep-alive pool it is marked reusable, so a worker
//! that shuts down gracefully (reload) closes it through `c->close` instead of finding an
//! open socket left behind.

use core::ffi::{c_void, CStr};
use core::pin::Pin;
use core::ptr;
use core::task::{Context, Poll, Waker};
use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use nginx_sys::{
    ngx_add_timer, ngx_close_connection, ngx_connection_t, ngx_create_pool, ngx_cycle,
    ngx_del_timer, ngx_destroy_pool, ngx_event_connect_peer, ngx_event_get_peer, ngx_event_t,
    ngx_handle_read_event, ngx_handle_write_event, ngx_log_t, ngx_msec_t, ngx_peer_connection_t,
    ngx_pool_t, ngx_reusable_connection, ngx_ssl_create_connection, ngx_ssl_handshake, ngx_ssl_shutdown,
    ngx_ssl_t, ngx_str_t, SSL_ctrl, NGX_AGAIN, NGX_ERROR, NGX_OK, NGX_SSL_BUFFER, NGX_SSL_CLIENT,
};

/// Shared between a pooled sender and its connection: lets the pool mark the socket idle
/// (reusable) or busy without owning it. Null once the connection is closed.
pub struct ConnLink {
    conn: Cell<*mut ngx_connection_t>,
    /// The connection's owner, so an exiting worker can close it (see `close_all`).
    peer: Cell<*mut PeerConn>,
}

thread_local! {
    /// Every connection this worker opened, to close what is left when it exits.
    static OPEN: std::cell::RefCell<(Vec<std::rc::Weak<ConnLink>>, usize)> = const { std::cell::RefCell::new((Vec::new(), 0)) };
}

fn register(link: &Rc<ConnLink>) {
    OPEN.with(|o| {
        let mut o = o.borrow_mut();
        o.1 += 1;
        if o.1 % 256 == 0 {
            o.0.retain(|w| w.strong_count() > 0);
        }
        o.0.push(Rc::downgrade(link));
    });
}

/// Closes every sideband connection still open (worker exit). nginx's event loop has
/// stopped, so no task will touch them again; nginx would otherwise report each one as an
/// "open socket left".
pub fn close_all() {
    let links: Vec<Rc<ConnLink>> = OPEN.with(|o| o.borrow_mut().0.drain(..).filter_map(|w| w.upgrade()).collect());
    for link in links {
        let peer = link.peer.get();
        if !link.conn.get().is_null() && !peer.is_null() {
            // SAFETY: the PeerConn is alive while its connection is open (close() clears
            // `conn` before the PeerConn goes away).
            unsafe { (*peer).close() };
        }
    }
}

impl ConnLink {
    /// Marks the connection idle (in the pool) or busy (lent to a call).
    pub fn set_idle(&self, idle: bool) {
        let c = self.conn.get();
        if c.is_null() {
            return;
        }
        // SAFETY: non-null only while the connection is open (cleared in PeerConn::close).
        unsafe {
            (*c).set_idle(idle as _);
            ngx_reusable_connection(c, idle as _);
        }
    }

    pub fn is_open(&self) -> bool {
        !self.conn.get().is_null()
    }
}

/// Why connecting failed.
#[derive(Debug)]
pub enum ConnectError {
    Refused(#[allow(dead_code)] io::Error),
    Timeout,
    Internal,
}

pub struct PeerConn {
    pc: ngx_peer_connection_t,
    pool: *mut ngx_pool_t,
    log: ngx_log_t,
    name: ngx_str_t,
    name_bytes: Vec<u8>,
    sockaddr: libc::sockaddr_storage,
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
    pub link: Rc<ConnLink>,
}

/// What hyper reads and writes: a boxed `PeerConn` (its address is stable, nginx keeps a
/// pointer to it in `c->data`).
pub struct PeerIo(Box<PeerConn>);

impl PeerIo {
    /// Starts connecting to `addr` and waits (asynchronously) until connected, refused or
    /// `connect_timeout` ran out.
    pub async fn connect(addr: SocketAddr, display: &str, connect_timeout: ngx_msec_t) -> Result<PeerIo, ConnectError> {
        let mut io = PeerIo(PeerConn::new(addr, display)?);
        match io.0.start_connect(connect_timeout)? {
            true => Ok(io),
            false => {
                core::future::poll_fn(|cx| io.0.poll_connected(cx)).await?;
                Ok(io)
            }
        }
    }

    pub fn link(&self) -> Rc<ConnLink> {
        self.0.link.clone()
    }

    /// Runs the TLS handshake over the connected socket. `sni` is the host name to send
    /// (none for an IP address); `verify` checks the certificate after the handshake.
    pub async fn tls_handshake(&mut self, ssl: *mut ngx_ssl_t, sni: Option<&CStr>, verify: bool) -> Result<(), String> {
        self.0.start_tls(ssl, sni)?;
        core::future::poll_fn(|cx| self.0.poll_handshake(cx)).await?;
        if verify {
            let c = self.0.pc.connection;
            // SAFETY: the handshake completed on this open connection.
            unsafe { crate::tls::verify_peer(c, sni.map(CStr::to_bytes)) }?;
        }
        Ok(())
    }
}

impl PeerConn {
    fn new(addr: SocketAddr, display: &str) -> Result<Box<PeerConn>, ConnectError> {
        // SAFETY: the cycle's log outlives every connection of this worker.
        let log = unsafe { *(*ngx_cycle).log };
        let pool = unsafe { ngx_create_pool(1024, (*ngx_cycle).log) };
        if pool.is_null() {
            return Err(ConnectError::Internal);
        }
        let mut p = Box::new(PeerConn {
            // SAFETY: ngx_peer_connection_t is a plain C struct; zero is its "empty" state.
            pc: unsafe { core::mem::zeroed() },
            pool,
            log,
            name: ngx_str_t::empty(),
            name_bytes: display.as_bytes().to_vec(),
            // SAFETY: plain C struct.
            sockaddr: unsafe { core::mem::zeroed() },
            read_waker: None,
            write_waker: None,
            link: Rc::new(ConnLink { conn: Cell::new(ptr::null_mut()), peer: Cell::new(ptr::null_mut()) }),
        });
        let raw: *mut PeerConn = &mut *p;
        p.link.peer.set(raw);
        register(&p.link);
        let socklen = write_sockaddr(&addr, &mut p.sockaddr);
        p.name = ngx_str_t { len: p.name_bytes.len(), data: p.name_bytes.as_mut_ptr() };
        p.log.action = c"talking to the ASE".as_ptr() as *mut _;
        p.pc.sockaddr = ptr::addr_of_mut!(p.sockaddr).cast();
        p.pc.socklen = socklen;
        p.pc.name = ptr::addr_of_mut!(p.name);
        p.pc.get = Some(ngx_event_get_peer);
        p.pc.log = ptr::addr_of_mut!(p.log);
        p.pc.set_log_error(nginx_sys::ngx_connection_log_error_e_NGX_ERROR_INFO as _);
        Ok(p)
    }

    /// Returns Ok(true) when connected at once, Ok(false) when the connect is under way.
    fn start_connect(&mut self, connect_timeout: ngx_msec_t) -> Result<bool, ConnectError> {
        // SAFETY: pc is fully set up in `new`; nginx fills pc.connection.
        let rc = unsafe { ngx_event_connect_peer(&mut self.pc) };
        if rc == NGX_ERROR as isize || self.pc.connection.is_null() {
            return Err(ConnectError::Refused(io::Error::last_os_error()));
        }
        let c = self.pc.connection;
        // SAFETY: c is the live connection nginx just made for us.
        unsafe {
            (*c).data = ptr::from_mut(self).cast();
            (*c).pool = self.pool;
            (*(*c).read).handler = Some(on_read);
            (*(*c).write).handler = Some(on_write);
        }
        self.link.conn.set(c);
        if rc == NGX_AGAIN as isize {
            // SAFETY: the write event belongs to c.
            unsafe { ngx_add_timer((*c).write, connect_timeout) };
            return Ok(false);
        }
        if rc == NGX_OK as isize {
            return Ok(true);
        }
        // NGX_BUSY / NGX_DECLINED: connect() failed at once.
        let err = io::Error::last_os_error();
        self.close();
        Err(ConnectError::Refused(err))
    }

    fn poll_connected(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        let c = self.pc.connection;
        if c.is_null() {
            return Poll::Ready(Err(ConnectError::Internal));
        }
        // SAFETY: c is open (non-null) and ours.
        unsafe {
            let wev = (*c).write;
            if (*wev).timedout() != 0 {
                self.close();
                return Poll::Ready(Err(ConnectError::Timeout));
            }
            if (*wev).ready() == 0 && (*(*c).read).ready() == 0 {
                self.write_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            if (*wev).timer_set() != 0 {
                ngx_del_timer(wev);
            }
            let mut err: libc::c_int = 0;
            let mut len = core::mem::size_of::<libc::c_int>() as libc::socklen_t;
            let rc = libc::getsockopt((*c).fd, libc::SOL_SOCKET, libc::SO_ERROR, ptr::addr_of_mut!(err).cast(), &mut len);
            if rc == -1 || err != 0 {
                let e = if rc == -1 { io::Error::last_os_error() } else { io::Error::from_raw_os_error(err) };
                self.close();
                return Poll::Ready(Err(ConnectError::Refused(e)));
            }
        }
        Poll::Ready(Ok(()))
    }

    fn start_tls(&mut self, ssl: *mut ngx_ssl_t, sni: Option<&CStr>) -> Result<(), String> {
        let c = self.pc.connection;
        if c.is_null() {
            return Err("not connected".into());
        }
        // SAFETY: c is open; ssl is the context made at configuration time.
        unsafe {
            let flags = (NGX_SSL_BUFFER | NGX_SSL_CLIENT) as usize;
            if ngx_ssl_create_connection(ssl, c, flags) != NGX_OK as isize {
                return Err("cannot create a TLS connection".into());
            }
            if let Some(name) = sni {
                // SSL_set_tlsext_host_name is a macro over SSL_ctrl.
                const SSL_CTRL_SET_TLSEXT_HOSTNAME: i32 = 55;
                const TLSEXT_NAMETYPE_HOST_NAME: i64 = 0;
                SSL_ctrl((*(*c).ssl).connection.cast(), SSL_CTRL_SET_TLSEXT_HOSTNAME,
                    TLSEXT_NAMETYPE_HOST_NAME as _, name.as_ptr() as *mut c_void);
            }
        }
        Ok(())
    }

    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), String>> {
        let c = self.pc.connection;
        if c.is_null() {
            return Poll::Ready(Err("connection closed during the TLS handshake".into()));
        }
        // SAFETY: c is open with c->ssl set by start_tls.
        unsafe {
            if (*(*c).ssl).handshaked() == 0 {
                let rc = ngx_ssl_handshake(c);
                if rc == NGX_AGAIN as isize {
                    // nginx's handshake handler calls c->ssl->handler when it is done.
                    (*(*c).ssl).handler = Some(on_handshake);
                    self.read_waker = Some(cx.waker().clone());
                    return Poll::Pending;
                }
                if rc != NGX_OK as isize {
                    return Poll::Ready(Err("TLS handshake failed".into()));
                }
            }
            // The handshake handlers replaced ours: put them back.
            (*(*c).read).handler = Some(on_read);
            (*(*c).write).handler = Some(on_write);
        }
        Poll::Ready(Ok(()))
    }

    fn close(&mut self) {
        let c = self.pc.connection;
        if c.is_null() {
            return;
        }
        self.link.conn.set(ptr::null_mut());
        self.pc.connection = ptr::null_mut();
        // SAFETY: c is open and ours; after this nothing refers to it.
        unsafe {
            ngx_reusable_connection(c, 0);
            if !(*c).ssl.is_null() {
                (*(*c).ssl).set_no_wait_shutdown(1);
                let _ = ngx_ssl_shutdown(c);
            }
            ngx_close_connection(c);
        }
    }
}

impl Drop for PeerConn {
    fn drop(&mut self) {
        self.close();
        self.link.peer.set(ptr::null_mut());
        if !self.pool.is_null() {
            // SAFETY: created in `new`, used only by this connection.
            unsafe { ngx_destroy_pool(self.pool) };
            self.pool = ptr::null_mut();
        }
    }
}

impl hyper::rt::Read for PeerIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let me = &mut *self.0;
        let c = me.pc.connection;
        if c.is_null() {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        }
        // SAFETY: c is open; `buf.as_mut()` is uninitialised memory nginx's recv writes into
        // and we advance only by what it wrote.
        unsafe {
            if (*c).close() != 0 {
                // The worker is shutting down and closes idle connections: end this one.
                return Poll::Ready(Ok(()));
            }
            let dst = buf.as_mut();
            let recv = (*c).recv.ok_or(io::ErrorKind::Other)?;
            let n = recv(c, dst.as_mut_ptr().cast(), dst.len());
            if n == NGX_AGAIN as isize {
                if ngx_handle_read_event((*c).read, 0) != NGX_OK as isize {
                    return Poll::Ready(Err(io::ErrorKind::Other.into()));
                }
                me.read_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            if n == NGX_ERROR as isize {
                return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
            }
            if n > 0 {
                buf.advance(n as usize);
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl hyper::rt::Write for PeerIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let me = &mut *self.0;
        let c = me.pc.connection;
        if c.is_null() {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        }
        // SAFETY: c is open; send reads `data` only.
        unsafe {
            let send = (*c).send.ok_or(io::ErrorKind::Other)?;
            let n = send(c, data.as_ptr() as *mut u8, data.len());
            if n == NGX_AGAIN as isize {
                if ngx_handle_write_event((*c).write, 0) != NGX_OK as isize {
                    return Poll::Ready(Err(io::ErrorKind::Other.into()));
                }
                me.write_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            if n < 0 {
                return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
            }
            Poll::Ready(Ok(n as usize))
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.close();
        Poll::Ready(Ok(()))
    }
}

/// The TLS handshake finished (either way): wake the task to look at the result.
unsafe extern "C" fn on_handshake(c: *mut ngx_connection_t) {
    let me: *mut PeerConn = (*c).data.cast();
    if let Some(w) = (*me).read_waker.take() {
        w.wake();
    }
}

/// nginx read event handler: wake whoever waits to read (or, for an idle pooled
/// connection, hyper's connection task, which then sees EOF or `c->close`).
unsafe extern "C" fn on_read(ev: *mut ngx_event_t) {
    let c: *mut ngx_connection_t = (*ev).data.cast();
    let me: *mut PeerConn = (*c).data.cast();
    if let Some(w) = (*me).read_waker.take() {
        w.wake();
    }
}

/// nginx write event handler: wake the writer (or the connect in progress).
unsafe extern "C" fn on_write(ev: *mut ngx_event_t) {
    let c: *mut ngx_connection_t = (*ev).data.cast();
    let me: *mut PeerConn = (*c).data.cast();
    if let Some(w) = (*me).write_waker.take() {
        w.wake();
    } else if let Some(w) = (*me).read_waker.take() {
        // a connect that completed is reported on the write event; wake a reader too
        w.wake();
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
