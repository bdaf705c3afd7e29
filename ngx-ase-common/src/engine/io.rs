//! What the engine asks of the world: connections, timers, the clock and the log. nginx
//! provides them in the worker (`net/ngx_io.rs`); the unit tests provide a scripted fake.

use core::fmt;

use ngx_ase_shared::abi::AseError;

/// A connection's index in the engine's table.
pub type ConnId = usize;

/// How starting a connection went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connect {
    /// Usable now (TLS included).
    Ready,
    /// Under way: `Engine::on_connected` or `Engine::on_connect_failed` follows.
    Pending,
    Failed(ConnectError),
}

/// A failed connect: the channel's error for it and, where the system gave one, its errno
/// (kept for the failover rule and the logs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectError {
    pub error: AseError,
    pub errno: Option<i32>,
}

impl From<AseError> for ConnectError {
    fn from(error: AseError) -> Self {
        ConnectError { error, errno: None }
    }
}

/// How a read or write went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Xfer {
    /// This many bytes moved; 0 from a read is the end of the stream.
    Done(usize),
    /// Nothing can move now; the next readiness event says when.
    WouldBlock,
    /// The connection broke (or the worker is closing it).
    Failed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Alert,
    Error,
    Warn,
    Notice,
    Debug,
}

pub trait Io {
    /// Milliseconds on a monotonic clock.
    fn now(&self) -> u64;
    /// Starts connection `conn` to node `node`.
    fn connect(&mut self, conn: ConnId, node: usize) -> Connect;
    fn send(&mut self, conn: ConnId, data: &[u8]) -> Xfer;
    fn recv(&mut self, conn: ConnId, buf: &mut [u8]) -> Xfer;
    /// Whether anything waits unread on `conn` (bytes, the end of the stream, an error),
    /// seen without reading it (a non-blocking peek). Asked of an idle connection before it
    /// is reused: bytes that arrived since its last answer may have no readiness event yet
    /// (it comes later in this turn of the event loop, or never, epoll being
    /// edge-triggered), and must never be read as the next call's answer.
    fn pending(&mut self, conn: ConnId) -> bool;
    /// Closes the connection; its id may be given to a new one afterwards.
    fn close(&mut self, conn: ConnId);
    /// An idle pooled connection, or one lent to a call.
    fn set_idle(&mut self, conn: ConnId, idle: bool);
    /// Arms idle `conn`'s own timer (`ase_keepalive_timeout`): `Engine::on_idle_timeout`
    /// follows after `after_ms` unless the connection is taken or closed first (nginx: a
    /// timer on the idle connection's read event). Without it (the default) an expired idle
    /// connection is still closed when a call would take it, just later.
    fn arm_idle(&mut self, _conn: ConnId, _after_ms: u64) {}
    /// (Re)arms the timer of call slot `slot` to fire at `at_ms`.
    fn arm(&mut self, slot: usize, at_ms: u64);
    fn disarm(&mut self, slot: usize);
    /// Calls `Engine::flush` once the current turn of the event loop has handled its events
    /// (a posted event in nginx).
    fn schedule_flush(&mut self);
    /// Whether the worker is shutting down: keep no connection.
    fn exiting(&self) -> bool;
    /// Whether messages at `level` are logged at all (so that nothing is formatted for
    /// nothing).
    fn logs(&self, level: Level) -> bool;
    fn log(&mut self, level: Level, args: fmt::Arguments<'_>);
    /// The debug trace (`error_log ... debug`, `debug_connection`). Called when call slot
    /// `slot` starts a call: whether this call is traced (the caller's log is at debug).
    /// Nothing more is asked or formatted for a call that is not.
    fn trace_begin(&mut self, slot: usize) -> bool;
    /// Whether the worker's own log is at debug (for connection lines that belong to no call).
    fn traces(&self) -> bool;
    /// Writes a trace line to call slot `slot`'s log, or to the worker's log for `None`.
    fn trace(&mut self, slot: Option<usize>, args: fmt::Arguments<'_>);
}
