//! Unit tests of the engine over a scripted fake `Io`: each node follows a `Script` (accept
//! or refuse, answer these bytes after so many ms, in pieces, hang, close...), the clock is
//! manual, and `advance` fires due connection events and timers in time order. The fake
//! records what the engine did (connects, request bytes, closes, pool changes, timers, log
//! lines), and panics when the engine uses a connection that is not open.
//!
//! Readiness is edge-triggered, as nginx's epoll is: a connection gets one `Readable` event
//! when bytes arrive (or the stream ends), none for bytes already there that a read left
//! behind (a read that filled the engine's buffer), and `pending` sees bytes that arrived
//! but whose event has not run yet (later in the same turn of the event loop).

use core::fmt;
use std::collections::{BTreeMap, VecDeque};

use ngx_ase_shared::abi::{Admission, AseError, CallKind, CheckResult};

use super::calls::LOW;
use super::pool::READ_BUFFER;
use super::*;
use crate::counters::counters;
use crate::health::NodePolicy;

// ---------------------------------------------------------------------- the fake

/// How a node takes a connection.
#[derive(Clone, Copy, Debug)]
enum Accept {
    Now,
    /// `Connect::Pending`, then `on_connected` after so many ms.
    After(u64),
    RefuseNow,
    /// nginx has no connection to give (worker_connections, descriptors): `Local` at once.
    NoLocalConnection,
    /// `Connect::Pending`, then `on_connect_failed(Refused)` after so many ms.
    RefuseAfter(u64),
    /// `Connect::Pending` forever.
    Never,
}

/// What a node does, per connection and per request.
#[derive(Clone, Debug)]
struct Script {
    accept: Accept,
    /// Sent back after each request (nothing: no answer).
    answer: Vec<u8>,
    /// Milliseconds from the request to the answer.
    after: u64,
    /// Pieces of this many bytes, 1 ms apart (0: one piece).
    piece: usize,
    /// After the request (and the answer, if any): the stream ends (`Done(0)`) or breaks
    /// (`Failed`) this many ms after the request.
    end: Option<(u64, Xfer)>,
    /// Takes at most this many bytes per write, then `WouldBlock` for 1 ms (0: all).
    write_piece: usize,
    /// Bytes nobody asked for, sent after each answer: in the answer's last piece (0), or
    /// so many ms after it, with their own event.
    stray: Option<(u64, Vec<u8>)>,
}

fn answers(bytes: &[u8]) -> Script {
    Script { accept: Accept::Now, answer: bytes.to_vec(), after: 0, piece: 0, end: None, write_piece: 0, stray: None }
}
fn hangs() -> Script {
    answers(b"")
}
fn refuses() -> Script {
    Script { accept: Accept::RefuseNow, ..hangs() }
}
fn refuses_after(ms: u64) -> Script {
    Script { accept: Accept::RefuseAfter(ms), ..hangs() }
}
fn no_local_connection() -> Script {
    Script { accept: Accept::NoLocalConnection, ..hangs() }
}
fn never_accepts() -> Script {
    Script { accept: Accept::Never, ..hangs() }
}
/// Accepts, then closes the connection before answering.
fn closes() -> Script {
    Script { end: Some((0, Xfer::Done(0))), ..hangs() }
}
fn resets_after(ms: u64) -> Script {
    Script { end: Some((ms, Xfer::Failed)), ..hangs() }
}
impl Script {
    fn after(self, after: u64) -> Script {
        Script { after, ..self }
    }
    fn pieces(self, piece: usize) -> Script {
        Script { piece, ..self }
    }
    fn accepts_after(self, ms: u64) -> Script {
        Script { accept: Accept::After(ms), ..self }
    }
    fn writes_in(self, write_piece: usize) -> Script {
        Script { write_piece, ..self }
    }
    fn then_stray(self, after: u64, bytes: &[u8]) -> Script {
        Script { stray: Some((after, bytes.to_vec())), ..self }
    }
}

struct FakeConn {
    node: usize,
    open: bool,
    /// Bytes the node sent, each available from its time on.
    inbox: VecDeque<(u64, Vec<u8>)>,
    end: Option<(u64, Xfer)>,
    /// The ASE closed it while it sat in the pool: reads see the end, writes fail if set.
    dead: bool,
    send_fails: bool,
    /// The request written so far.
    req: Vec<u8>,
    /// A partial write happened: writes would block until the `Writable` event.
    blocked: bool,
    /// A middlebox forgot the flow: what is written vanishes, nothing comes back, ever.
    black_holed: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ev {
    Connected(ConnId),
    ConnectFailed(ConnId),
    Readable(ConnId),
    Writable(ConnId),
}

impl Ev {
    fn conn(self) -> ConnId {
        match self {
            Ev::Connected(c) | Ev::ConnectFailed(c) | Ev::Readable(c) | Ev::Writable(c) => c,
        }
    }
}

#[derive(Default)]
struct FakeIo {
    now: u64,
    nodes: Vec<Script>,
    exiting: bool,
    conns: BTreeMap<ConnId, FakeConn>,
    events: Vec<(u64, Ev)>,
    /// Armed timers: call slot -> when.
    timers: BTreeMap<usize, u64>,
    // records
    connects: Vec<(ConnId, usize)>,
    /// Every whole request written: (node, bytes).
    sent: Vec<(usize, Vec<u8>)>,
    closes: Vec<ConnId>,
    set_idle: Vec<(ConnId, bool)>,
    /// Idle connections' own timers (`arm_idle`): connection -> when.
    idle_timers: BTreeMap<ConnId, u64>,
    logs: Vec<String>,
    flushes_scheduled: usize,
    /// Whether calls are traced (the caller's log at debug), and the trace lines written.
    tracing: bool,
    trace_begun: Vec<usize>,
    traces: Vec<(Option<usize>, String)>,
}

impl FakeIo {
    fn new(nodes: Vec<Script>) -> FakeIo {
        FakeIo { nodes, ..FakeIo::default() }
    }

    fn connects_to(&self, node: usize) -> usize {
        self.connects.iter().filter(|c| c.1 == node).count()
    }

    fn sends_to(&self, node: usize) -> usize {
        self.sent.iter().filter(|s| s.0 == node).count()
    }

    fn logged(&self, needle: &str) -> usize {
        self.logs.iter().filter(|l| l.contains(needle)).count()
    }

    fn is_open(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_some_and(|c| c.open)
    }

    /// The ASE closed pooled connection `conn`: reads see the end; writes fail if `send_fails`.
    fn peer_closes(&mut self, conn: ConnId, send_fails: bool) {
        let c = self.conns.get_mut(&conn).expect("known connection");
        c.dead = true;
        c.send_fails = send_fails;
    }

    fn conn(&mut self, conn: ConnId) -> &mut FakeConn {
        let c = self.conns.get_mut(&conn).unwrap_or_else(|| panic!("unknown connection {conn}"));
        assert!(c.open, "the engine used connection {conn}, which is not open");
        c
    }

    fn schedule(&mut self, at: u64, ev: Ev) {
        if at > self.now {
            self.events.push((at, ev));
        }
    }

    /// `bytes` arrive on `conn` now; their readiness event is queued behind what runs in
    /// this turn (the engine hears of it at the next `advance`).
    fn arrive_unannounced(&mut self, conn: ConnId, bytes: &[u8]) {
        let now = self.now;
        self.conn(conn).inbox.push_back((now, bytes.to_vec()));
        self.events.push((now, Ev::Readable(conn)));
    }
}

impl Io for FakeIo {
    fn now(&self) -> u64 {
        self.now
    }

    fn connect(&mut self, conn: ConnId, node: usize) -> Connect {
        assert!(!self.is_open(conn), "connection id {conn} reused while open");
        self.connects.push((conn, node));
        let accept = self.nodes[node].accept;
        let open = !matches!(accept, Accept::RefuseNow | Accept::NoLocalConnection);
        let fc = FakeConn {
            node,
            open,
            inbox: VecDeque::new(),
            end: None,
            dead: false,
            send_fails: false,
            req: Vec::new(),
            blocked: false,
            black_holed: false,
        };
        self.conns.insert(conn, fc);
        match accept {
            Accept::Now => Connect::Ready,
            Accept::After(ms) => {
                self.events.push((self.now + ms, Ev::Connected(conn)));
                Connect::Pending
            }
            Accept::RefuseNow => Connect::Failed(AseError::Refused.into()),
            Accept::NoLocalConnection => Connect::Failed(AseError::Local.into()),
            Accept::RefuseAfter(ms) => {
                self.events.push((self.now + ms, Ev::ConnectFailed(conn)));
                Connect::Pending
            }
            Accept::Never => Connect::Pending,
        }
    }

    fn send(&mut self, conn: ConnId, data: &[u8]) -> Xfer {
        let now = self.now;
        let c = self.conns.get(&conn).expect("known connection");
        let script = self.nodes[c.node].clone();
        let c = self.conn(conn);
        if c.send_fails {
            return Xfer::Failed;
        }
        if c.blocked {
            return Xfer::WouldBlock;
        }
        let n = if script.write_piece == 0 { data.len() } else { data.len().min(script.write_piece) };
        c.req.extend_from_slice(&data[..n]);
        if n < data.len() {
            c.blocked = true;
            self.schedule(now + 1, Ev::Writable(conn));
        }
        let c = self.conn(conn);
        if !request_complete(&c.req) {
            return Xfer::Done(n);
        }
        let (node, dead, req) = (c.node, c.dead || c.black_holed, core::mem::take(&mut c.req));
        self.sent.push((node, req));
        if dead {
            return Xfer::Done(n);
        }
        // The node answers this request as its script says now (a test may change a
        // node's script between calls).
        let at = now + script.after;
        let piece = if script.piece == 0 { script.answer.len().max(1) } else { script.piece };
        let mut times = Vec::new();
        let c = self.conn(conn);
        for (i, chunk) in script.answer.chunks(piece).enumerate() {
            c.inbox.push_back((at + i as u64, chunk.to_vec()));
            times.push(at + i as u64);
        }
        match script.stray {
            Some((0, bytes)) => match c.inbox.back_mut() {
                Some(last) => last.1.extend_from_slice(&bytes),
                None => {
                    c.inbox.push_back((at, bytes));
                    times.push(at);
                }
            },
            Some((ms, bytes)) => {
                let t = times.last().copied().unwrap_or(at) + ms;
                c.inbox.push_back((t, bytes));
                times.push(t);
            }
            None => {}
        }
        c.end = script.end.map(|(ms, x)| (now + ms, x));
        times.extend(c.end.map(|e| e.0));
        for t in times {
            self.schedule(t, Ev::Readable(conn));
        }
        Xfer::Done(n)
    }

    fn recv(&mut self, conn: ConnId, buf: &mut [u8]) -> Xfer {
        let now = self.now;
        let c = self.conn(conn);
        if c.dead {
            return Xfer::Done(0);
        }
        match c.inbox.front_mut() {
            Some((at, bytes)) if *at <= now => {
                let n = bytes.len().min(buf.len());
                buf[..n].copy_from_slice(&bytes[..n]);
                bytes.drain(..n);
                if bytes.is_empty() {
                    c.inbox.pop_front();
                }
                Xfer::Done(n)
            }
            Some(_) => Xfer::WouldBlock,
            None => match c.end {
                Some((at, x)) if at <= now => x,
                _ => Xfer::WouldBlock,
            },
        }
    }

    fn pending(&mut self, conn: ConnId) -> bool {
        let now = self.now;
        let c = self.conn(conn);
        c.dead || c.inbox.front().is_some_and(|b| b.0 <= now) || c.end.is_some_and(|e| e.0 <= now)
    }

    fn close(&mut self, conn: ConnId) {
        self.conn(conn).open = false;
        self.idle_timers.remove(&conn);
        self.closes.push(conn);
        self.events.retain(|e| e.1.conn() != conn);
    }

    fn set_idle(&mut self, conn: ConnId, idle: bool) {
        self.conn(conn);
        self.set_idle.push((conn, idle));
        if !idle {
            self.idle_timers.remove(&conn);
        }
    }

    fn arm_idle(&mut self, conn: ConnId, after_ms: u64) {
        self.conn(conn);
        self.idle_timers.insert(conn, self.now + after_ms);
    }

    fn arm(&mut self, slot: usize, at_ms: u64) {
        self.timers.insert(slot, at_ms);
    }

    fn disarm(&mut self, slot: usize) {
        self.timers.remove(&slot);
    }

    fn schedule_flush(&mut self) {
        self.flushes_scheduled += 1;
    }

    fn exiting(&self) -> bool {
        self.exiting
    }

    fn logs(&self, _level: Level) -> bool {
        true
    }

    fn log(&mut self, level: Level, args: fmt::Arguments<'_>) {
        self.logs.push(format!("{level:?}: {args}"));
    }

    fn trace_begin(&mut self, slot: usize) -> bool {
        self.trace_begun.push(slot);
        self.tracing
    }

    fn traces(&self) -> bool {
        self.tracing
    }

    fn trace(&mut self, slot: Option<usize>, args: fmt::Arguments<'_>) {
        assert!(self.tracing, "a trace line for a call that is not traced");
        self.traces.push((slot, args.to_string()));
    }
}

/// Whether `req` holds a whole request (head and `Content-Length` body).
fn request_complete(req: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut r = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(head)) = r.parse(req) else { return false };
    let len = r.headers.iter().find(|h| h.name.eq_ignore_ascii_case("content-length"));
    let len: usize = len.map_or(0, |h| std::str::from_utf8(h.value).unwrap().parse().unwrap());
    req.len() >= head + len
}

/// Moves the clock `ms` forward, firing connection events and timers as they fall due, in
/// time order (events first at the same time).
fn advance(e: &mut Engine<u32>, io: &mut FakeIo, ms: u64) {
    let target = io.now + ms;
    loop {
        let ev =
            io.events.iter().enumerate().filter(|(_, x)| x.0 <= target).min_by_key(|(_, x)| x.0).map(|(i, x)| (i, x.0));
        let timer = io.timers.iter().filter(|t| *t.1 <= target).min_by_key(|t| *t.1).map(|(&s, &at)| (s, at));
        match (ev, timer) {
            (Some((i, at)), t) if t.is_none_or(|t| at <= t.1) => {
                let (at, ev) = io.events.remove(i);
                io.now = io.now.max(at);
                match ev {
                    Ev::Connected(c) => e.on_connected(c, io),
                    Ev::ConnectFailed(c) => {
                        // The connection is closed when the engine hears of it.
                        io.conn(c).open = false;
                        e.on_connect_failed(c, AseError::Refused.into(), io);
                    }
                    Ev::Readable(c) => e.on_readable(c, io),
                    Ev::Writable(c) => {
                        io.conn(c).blocked = false;
                        e.on_writable(c, io);
                    }
                }
            }
            (_, Some((slot, at))) => {
                io.timers.remove(&slot);
                io.now = io.now.max(at);
                e.on_timer(slot, io);
            }
            _ => break,
        }
    }
    io.now = target;
}

// ---------------------------------------------------------------------- set-up

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
const BLOCK: &[u8] = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
/// The ASE's own 503: the API is not one it protects.
const UNKNOWN_API: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 18\r\n\r\nError: Unknown API";
/// HAProxy's own 503 when no server behind it is up (its built-in error page).
const HAPROXY_503: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 107\r\ncache-control: no-cache\r\ncontent-type: text/html\r\n\r\n<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request.\n</body></html>\n";
const LIMITS: Limits = Limits { timeout_ms: 500, connect_timeout_ms: 100 };
const FAIL_TIMEOUT: u64 = 10_000;
const CID: &[u8] = b"cid-1";
const BODY: &[u8] = b"{\"a\":1}";

fn node(name: &str, backup: bool, max_fails: u32) -> NodeSpec {
    NodeSpec {
        display: format!("http://{name}"),
        authority: name.to_string(),
        policy: NodePolicy { backup, max_fails, fail_timeout_ms: FAIL_TIMEOUT, weight: 1, max_conns: 0 },
        active: true,
    }
}

/// One primary ("primary:8000"), max_fails=1.
fn one_node(script: Script) -> (Engine<u32>, FakeIo) {
    (Engine::new(vec![node("primary:8000", false, 1)], Some(b"tok"), 4, 2), FakeIo::new(vec![script]))
}

/// A primary and a backup, both max_fails=1.
fn two_nodes(primary: Script, backup: Script) -> (Engine<u32>, FakeIo) {
    let nodes = vec![node("primary:8000", false, 1), node("backup:8000", true, 1)];
    (Engine::new(nodes, Some(b"tok"), 4, 2), FakeIo::new(vec![primary, backup]))
}

fn check(e: &mut Engine<u32>, io: &mut FakeIo, waiter: u32) -> Option<CallId> {
    e.start_check(waiter, 0, None, CID, BODY, LIMITS, io)
}

/// A report, sent as the end of the event loop's turn sends it.
fn report(e: &mut Engine<u32>, io: &mut FakeIo) -> Admission {
    let a = e.send_report(0, None, CID, BODY, LIMITS, io);
    e.flush(io);
    a
}

#[test]
fn reports_wait_for_the_end_of_the_turn_and_go_together() {
    let (mut e, mut io) = one_node(answers(OK));
    for _ in 0..2 {
        assert_eq!(e.send_report(0, None, CID, BODY, LIMITS, &mut io), Admission::Go);
    }
    assert!(io.sent.is_empty() && io.connects.is_empty(), "nothing goes out before the flush");
    assert_eq!(io.flushes_scheduled, 1, "one flush per turn, however many reports");
    e.flush(&mut io);
    assert_eq!(io.sent.len(), 2, "both reports went out at the flush");
    e.flush(&mut io);
    assert_eq!(io.sent.len(), 2, "a second flush sends nothing again");
    assert_eq!(e.send_report(0, None, CID, BODY, LIMITS, &mut io), Admission::Go);
    assert_eq!(io.flushes_scheduled, 2, "the next turn schedules its own flush");
}

fn delivered(e: &mut Engine<u32>) -> Vec<(u32, CheckResult)> {
    core::iter::from_fn(|| e.take_finished()).collect()
}

/// The one result delivered since the last look.
fn result(e: &mut Engine<u32>) -> CheckResult {
    let d = delivered(e);
    assert_eq!(d.len(), 1, "one result expected: {d:?}");
    d[0].1
}

fn ok(status: u16, elapsed_ms: u64) -> CheckResult {
    CheckResult::new(status, AseError::None, elapsed_ms)
}

fn failed(error: AseError, elapsed_ms: u64) -> CheckResult {
    CheckResult::new(0, error, elapsed_ms)
}

/// The request bytes the engine must send to `authority` (token "tok").
fn request(kind: CallKind, authority: &str) -> Vec<u8> {
    let heads = NodeHeads::new(authority, Some(b"tok"));
    let mut out = Vec::new();
    wire::write_request(&mut out, heads.get(kind), CID, BODY);
    out
}

fn down(e: &Engine<u32>, io: &FakeIo, node: usize) -> bool {
    e.nodes.is_down(node, io.now)
}

// ---------------------------------------------------------------------- tests

#[test]
fn a_check_is_answered_and_its_connection_pooled_and_reused() {
    let (mut e, mut io) = one_node(answers(OK));
    assert_eq!(e.admit(CallKind::Check, 0, &mut io), Admission::Go);
    assert_eq!(check(&mut e, &mut io, 7), None, "answered at once");
    assert_eq!(delivered(&mut e), vec![(7, ok(200, 0))]);
    assert_eq!(io.connects, vec![(0, 0)]);
    assert_eq!(io.sent, vec![(0, request(CallKind::Check, "primary:8000"))]);
    assert_eq!(io.set_idle, vec![(0, true)], "pooled");
    assert!(io.closes.is_empty());
    assert!(io.timers.is_empty(), "the call's timer is disarmed");

    io.nodes[0] = answers(BLOCK).after(20);
    let id = check(&mut e, &mut io, 8);
    assert!(id.is_some(), "pending until the answer");
    assert_eq!(io.set_idle, vec![(0, true), (0, false)], "lent to the call");
    assert_eq!(io.timers.get(&0), Some(&LIMITS.timeout_ms), "deadline armed");
    advance(&mut e, &mut io, 20);
    assert_eq!(result(&mut e), ok(403, 20));
    assert_eq!(io.connects.len(), 1, "no new connection");
    assert_eq!(io.sent.len(), 2);
    assert_eq!(io.sent[1].1, request(CallKind::Check, "primary:8000"));
    assert_eq!(io.set_idle.last(), Some(&(0, true)), "back in the pool");
    assert_eq!(e.idle[0], vec![0]);
    assert!(io.closes.is_empty() && io.timers.is_empty());
}

#[test]
fn keep_alive_only_when_the_answer_allows_and_up_to_keepalive() {
    // Connection: close, said once per node however often it happens.
    let (mut e, mut io) = one_node(answers(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"));
    check(&mut e, &mut io, 1);
    assert_eq!(result(&mut e), ok(200, 0));
    assert_eq!(io.closes, vec![0]);
    assert!(io.set_idle.is_empty() && e.idle[0].is_empty());
    check(&mut e, &mut io, 2);
    assert_eq!(result(&mut e), ok(200, 0));
    assert_eq!(io.logged("closes every sideband connection"), 1, "{:?}", io.logs);
    assert_eq!(io.logged("set enable_sideband_keepalive=true"), 1);

    // Bytes after the answer: the connection is out of step.
    let mut extra = OK.to_vec();
    extra.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    let (mut e, mut io) = one_node(answers(&extra));
    check(&mut e, &mut io, 1);
    assert_eq!(result(&mut e), ok(200, 0));
    assert_eq!(io.closes, vec![0]);
    assert!(io.set_idle.is_empty() && e.idle[0].is_empty());

    // At most `keepalive` idle connections per node.
    let (mut e, mut io) = one_node(answers(OK).after(10));
    e.keepalive = vec![2];
    for w in 0..3 {
        assert!(check(&mut e, &mut io, w).is_some());
    }
    assert_eq!(io.connects.len(), 3, "three calls at once, three connections");
    advance(&mut e, &mut io, 10);
    assert_eq!(delivered(&mut e).len(), 3);
    assert_eq!(e.idle[0].len(), 2);
    assert_eq!(io.set_idle.iter().filter(|s| s.1).count(), 2);
    assert_eq!(io.closes.len(), 1);

    // A worker that is exiting keeps nothing; close_all closes the pool.
    io.exiting = true;
    check(&mut e, &mut io, 9);
    advance(&mut e, &mut io, 10);
    assert_eq!(result(&mut e), ok(200, 10));
    assert_eq!(e.idle[0].len(), 1, "the lent connection was closed, not pooled");
    e.close_all(&mut io);
    assert!(e.idle[0].is_empty());
    assert!(io.conns.values().all(|c| !c.open));
}

#[test]
fn a_pooled_connection_the_ase_closed_is_replaced_once_without_charge() {
    for send_fails in [false, true] {
        let (mut e, mut io) = one_node(answers(OK));
        check(&mut e, &mut io, 1);
        assert_eq!(result(&mut e), ok(200, 0));
        io.peer_closes(0, send_fails);

        check(&mut e, &mut io, 2);
        assert_eq!(result(&mut e), ok(200, 0), "send_fails={send_fails}");
        assert_eq!(io.connects, vec![(0, 0), (0, 0)], "a new connection to the same node");
        assert_eq!(io.closes, vec![0], "the dead one closed");
        assert!(!down(&e, &io, 0));
        assert_eq!(io.logged("is down"), 0);
        assert_eq!(e.idle[0].len(), 1, "the new connection is pooled");
        // The node is still up and well: the next check goes out as usual.
        check(&mut e, &mut io, 3);
        assert_eq!(result(&mut e), ok(200, 0));
    }
}

#[test]
fn a_pooled_connection_is_replaced_only_once() {
    // The fresh connection also closes before answering: that is the node's failure.
    let (mut e, mut io) = one_node(answers(OK));
    check(&mut e, &mut io, 1);
    delivered(&mut e);
    io.peer_closes(0, false);
    io.nodes[0] = closes();
    check(&mut e, &mut io, 2);
    assert_eq!(result(&mut e), failed(AseError::Reset, 0));
    assert_eq!(io.connects.len(), 2, "one replacement, not more");
    assert!(down(&e, &io, 0));
}

#[test]
fn failover_to_the_backup_when_the_primary_refuses() {
    let (mut e, mut io) = two_nodes(refuses(), answers(OK));
    assert_eq!(check(&mut e, &mut io, 1), None);
    assert_eq!(result(&mut e), ok(200, 0));
    assert_eq!(io.connects, vec![(0, 0), (0, 1)]);
    assert_eq!(io.sent, vec![(1, request(CallKind::Check, "backup:8000"))], "the backup's Host");
    assert_eq!(io.logged("node http://primary:8000 is down (refused)"), 1);
    assert!(down(&e, &io, 0) && !down(&e, &io, 1));

    // The primary is down: the next check goes straight to the backup (its pooled connection).
    advance(&mut e, &mut io, 1_000);
    check(&mut e, &mut io, 2);
    assert_eq!(result(&mut e), ok(200, 0));
    assert_eq!(io.connects_to(0), 1, "the primary is not tried");
    assert_eq!(io.sends_to(1), 2);
    assert_eq!(io.logged("is down"), 1);
}

#[test]
fn a_node_that_hangs_for_the_whole_timeout_is_charged_and_no_failover_follows() {
    let (mut e, mut io) = two_nodes(hangs(), answers(OK));
    let id = check(&mut e, &mut io, 1);
    assert!(id.is_some());
    advance(&mut e, &mut io, LIMITS.timeout_ms - 1);
    assert!(delivered(&mut e).is_empty());
    advance(&mut e, &mut io, 1);
    assert_eq!(result(&mut e), failed(AseError::Timeout, LIMITS.timeout_ms));
    assert_eq!(io.connects_to(1), 0, "the backup is not tried");
    assert_eq!(io.closes, vec![0]);
    assert!(down(&e, &io, 0), "the primary had the whole timeout");
    assert_eq!(io.logged("node http://primary:8000 is down (timeout)"), 1);
    assert!(!down(&e, &io, 1), "the backup is not charged");
    assert!(io.timers.is_empty());
}

#[test]
fn the_longest_limits_do_not_wrap_the_deadline() {
    let (mut e, mut io) = one_node(hangs());
    io.now = 1_000;
    let longest = Limits { timeout_ms: u64::MAX, connect_timeout_ms: u64::MAX };
    assert!(e.start_check(1, 0, None, CID, BODY, longest, &mut io).is_some());
    assert_eq!(io.timers.get(&0), Some(&u64::MAX), "the deadline saturates");
    advance(&mut e, &mut io, 1_000_000);
    assert!(delivered(&mut e).is_empty(), "still waiting for the answer");
}

#[test]
fn no_failover_with_less_than_connect_timeout_left() {
    // The primary resets after 450 ms of 500: 50 ms < ase_connect_timeout (100) remain.
    let (mut e, mut io) = two_nodes(resets_after(450), answers(OK));
    check(&mut e, &mut io, 1);
    advance(&mut e, &mut io, 450);
    assert_eq!(result(&mut e), failed(AseError::Reset, 450), "ends at once with the primary's error");
    assert_eq!(io.connects_to(1), 0, "no attempt on the backup");
    assert!(down(&e, &io, 0) && !down(&e, &io, 1));
    assert!(io.timers.is_empty());

    // With exactly ase_connect_timeout left, the backup is tried.
    let (mut e, mut io) = two_nodes(resets_after(400), answers(OK));
    check(&mut e, &mut io, 1);
    advance(&mut e, &mut io, 400);
    assert_eq!(result(&mut e), ok(200, 400));
    assert_eq!(io.connects_to(1), 1);
}

#[test]
fn a_timeout_from_the_calls_deadline_on_a_later_attempt_is_not_charged() {
    // The primary refuses after 50 ms; the backup then hangs until the call's deadline.
    let (mut e, mut io) = two_nodes(refuses_after(50), hangs());
    check(&mut e, &mut io, 1);
    assert_eq!(io.timers.get(&0), Some(&LIMITS.connect_timeout_ms), "connect timer");
    advance(&mut e, &mut io, 50);
    assert_eq!(io.connects, vec![(0, 0), (0, 1)], "failover at 50 ms");
    assert_eq!(io.timers.get(&0), Some(&LIMITS.timeout_ms));
    advance(&mut e, &mut io, 450);
    assert_eq!(result(&mut e), failed(AseError::Timeout, 500));
    assert!(down(&e, &io, 0), "the primary refused");
    assert!(!down(&e, &io, 1), "the backup had 450 ms, not a whole ase_timeout");
    assert_eq!(io.logged("backup:8000 is down"), 0);
    // It is still in use: the next check goes to it.
    io.nodes[1] = answers(OK);
    assert_eq!(e.admit(CallKind::Check, 0, &mut io), Admission::Go);
    check(&mut e, &mut io, 2);
    assert_eq!(result(&mut e), ok(200, 0));
}

#[test]
fn a_node_that_does_not_accept_within_connect_timeout_is_charged() {
    let (mut e, mut io) = two_nodes(never_accepts(), answers(OK));
    check(&mut e, &mut io, 1);
    advance(&mut e, &mut io, LIMITS.connect_timeout_ms - 1);
    assert_eq!(io.connects.len(), 1);
    advance(&mut e, &mut io, 1);
    assert_eq!(result(&mut e), ok(200, LIMITS.connect_timeout_ms), "answered by the backup");
    assert_eq!(io.closes, vec![0], "the pending connect is closed");
    assert_eq!(io.connects, vec![(0, 0), (0, 1)]);
    assert!(down(&e, &io, 0));
    assert_eq!(io.logged("node http://primary:8000 is down (timeout)"), 1);
}

#[test]
fn a_slow_connect_and_partial_writes_are_fine() {
    // Accepts after 60 ms (within ase_connect_timeout), takes the request 50 bytes at a
    // time (1 ms apart), answers 10 ms later.
    let (mut e, mut io) = two_nodes(answers(OK).accepts_after(60).writes_in(50).after(10), answers(OK));
    let want = request(CallKind::Check, "primary:8000");
    let writes = want.len().div_ceil(50) as u64;
    check(&mut e, &mut io, 1).unwrap();
    assert_eq!(io.timers.get(&0), Some(&LIMITS.connect_timeout_ms));
    advance(&mut e, &mut io, 60);
    assert_eq!(io.timers.get(&0), Some(&LIMITS.timeout_ms), "connected: the call's deadline now");
    advance(&mut e, &mut io, writes - 1);
    assert_eq!(io.sent, vec![(0, want)], "the whole request, in order");
    assert!(delivered(&mut e).is_empty());
    advance(&mut e, &mut io, 10);
    assert_eq!(result(&mut e), ok(200, 60 + writes - 1 + 10));
    assert!(!down(&e, &io, 0));
    assert_eq!(io.connects_to(1), 0);
    assert_eq!(e.idle[0].len(), 1);
}

#[test]
fn reports_never_change_health() {
    // Refused, reset, a bad answer, a hang: the node stays up, and reports do not fail
    // over to a backup while the primary is up.
    for script in [refuses(), resets_after(10), answers(b"garbage\r\n\r\n"), hangs()] {
        let (mut e, mut io) = two_nodes(script.clone(), answers(OK));
        assert_eq!(report(&mut e, &mut io), Admission::Go);
        advance(&mut e, &mut io, LIMITS.timeout_ms);
        assert_eq!(e.reports_in_flight, 0, "{script:?}");
        assert!(!down(&e, &io, 0), "{script:?}");
        assert_eq!(io.logged("is down"), 0);
        assert_eq!(io.connects_to(1), 0);
        assert!(delivered(&mut e).is_empty(), "reports deliver nothing");
    }
}

#[test]
fn reports_do_not_bring_a_node_back_or_reset_its_failures() {
    // max_fails=2 on the one node: one check failure, a report answered, one more check
    // failure: down (a report must not have cleared the count).
    let mut e = Engine::new(vec![node("primary:8000", false, 2)], None, 4, 2);
    let mut io = FakeIo::new(vec![answers(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")]);
    check(&mut e, &mut io, 1);
    assert_eq!(result(&mut e), ok(502, 0));
    assert!(!down(&e, &io, 0));
    io.nodes[0] = answers(OK);
    report(&mut e, &mut io);
    assert_eq!(io.sent.last().unwrap().1[..25], b"POST /ase/response HTTP/1"[..]);
    io.nodes[0] = answers(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
    check(&mut e, &mut io, 2);
    assert_eq!(result(&mut e), ok(502, 0));
    assert!(down(&e, &io, 0), "two check failures in the window");
}

#[test]
fn reports_never_probe_and_go_to_an_up_backup() {
    let (mut e, mut io) = two_nodes(refuses(), answers(OK));
    check(&mut e, &mut io, 1);
    assert_eq!(result(&mut e), ok(200, 0));
    assert!(down(&e, &io, 0));
    io.nodes[0] = answers(OK);
    advance(&mut e, &mut io, FAIL_TIMEOUT + 1);
    // The primary's down time ran out: a check could probe it, a report may not.
    assert_eq!(e.admit(CallKind::Report, 0, &mut io), Admission::Go);
    assert_eq!(report(&mut e, &mut io), Admission::Go);
    assert_eq!(io.connects_to(0), 1, "no report to the primary");
    assert_eq!(io.sent.last().map(|s| s.0), Some(1));
    assert_eq!(io.sent.last().unwrap().1, request(CallKind::Report, "backup:8000"));
    assert_eq!(io.logged("is back"), 0);
    // A check probes it and brings it back.
    check(&mut e, &mut io, 2);
    assert_eq!(result(&mut e), ok(200, 0));
    assert_eq!(io.connects_to(0), 2);
    assert_eq!(io.logged("node http://primary:8000 is back"), 1);
}

#[test]
fn reports_respect_the_response_queue() {
    let (mut e, mut io) = one_node(answers(OK).after(100)); // response_queue = 2
    assert_eq!(report(&mut e, &mut io), Admission::Go);
    assert_eq!(report(&mut e, &mut io), Admission::Go);
    assert_eq!(e.reports_in_flight, 2);
    assert_eq!(e.admit(CallKind::Report, 0, &mut io), Admission::QueueFull);
    assert_eq!(report(&mut e, &mut io), Admission::QueueFull);
    assert_eq!(io.sent.len(), 2, "the third was not sent");
    advance(&mut e, &mut io, 100);
    assert_eq!(e.reports_in_flight, 0);
    assert_eq!(e.admit(CallKind::Report, 0, &mut io), Admission::Go);
    assert_eq!(report(&mut e, &mut io), Admission::Go);
    assert_eq!(io.connects.len(), 2, "a pooled connection carried it");
    // Every node down: reports are refused as unavailable.
    let (mut e, mut io) = one_node(refuses());
    check(&mut e, &mut io, 1);
    assert_eq!(result(&mut e), failed(AseError::Refused, 0));
    assert_eq!(e.admit(CallKind::Report, 0, &mut io), Admission::Unavailable);
    assert_eq!(report(&mut e, &mut io), Admission::Unavailable);
    assert_eq!(e.reports_in_flight, 0);
}

#[test]
fn the_breaker_answers_at_once_and_lets_one_probe_through() {
    let (mut e, mut io) = two_nodes(refuses(), refuses());
    check(&mut e, &mut io, 1);
    assert_eq!(result(&mut e), failed(AseError::Refused, 0), "both refused");
    assert!(down(&e, &io, 0) && down(&e, &io, 1));
    assert_eq!(io.logged("is down"), 2);

    assert_eq!(e.admit(CallKind::Check, 0, &mut io), Admission::Unavailable);
    assert!(e.breaker_open(0));
    assert_eq!(e.admit(CallKind::Check, 0, &mut io), Admission::Unavailable);
    // A check started anyway is answered at once, without a connection.
    assert_eq!(check(&mut e, &mut io, 2), None);
    assert_eq!(result(&mut e), failed(AseError::Unavailable, 0));
    assert_eq!(io.connects.len(), 2);
    assert_eq!(io.logged("every ASE node is down"), 1, "logged once");

    // After fail_timeout each node is probed (they hang) by a check whose client is
    // answered at once, as the breaker answers; the rest meet the breaker.
    advance(&mut e, &mut io, FAIL_TIMEOUT);
    io.nodes = vec![hangs(), hangs()];
    assert_eq!(e.admit(CallKind::Check, 0, &mut io), Admission::Go);
    assert_eq!(check(&mut e, &mut io, 3), None, "a detached probe gives no handle");
    assert_eq!(result(&mut e), failed(AseError::Unavailable, 0));
    assert_eq!(io.connects.last().map(|c| c.1), Some(0));
    assert_eq!(e.admit(CallKind::Check, 0, &mut io), Admission::Go, "the backup is due for its probe too");
    assert_eq!(check(&mut e, &mut io, 4), None);
    assert_eq!(result(&mut e), failed(AseError::Unavailable, 0));
    assert_eq!(io.connects.last().map(|c| c.1), Some(1));
    assert_eq!(e.admit(CallKind::Check, 0, &mut io), Admission::Unavailable, "both nodes are being probed");
    assert_eq!(check(&mut e, &mut io, 5), None);
    assert_eq!(result(&mut e), failed(AseError::Unavailable, 0));
    assert_eq!(io.logged("every ASE node is down"), 1);

    // The probes time out (nobody waited for them); the primary answers again, and its
    // next early probe (500 ms after the failed one) brings it back.
    advance(&mut e, &mut io, LIMITS.timeout_ms);
    assert_eq!(e.live_calls(), 0);
    assert!(delivered(&mut e).is_empty());
    io.nodes[0] = answers(OK);
    advance(&mut e, &mut io, 2 * crate::health::QUICK_PROBE_FIRST_MS);
    assert_eq!(e.admit(CallKind::Check, 0, &mut io), Admission::Go);
    assert_eq!(check(&mut e, &mut io, 6), None);
    assert_eq!(result(&mut e), failed(AseError::Unavailable, 0), "the probe's client was answered at once");
    check(&mut e, &mut io, 7);
    assert_eq!(result(&mut e), ok(200, 0), "the primary is back");
    assert_eq!(io.connects_to(0), 3);
    assert_eq!(io.logged("node http://primary:8000 is back"), 1);
    assert!(!e.breaker_open(0));
    assert!(delivered(&mut e).is_empty());
}

/// `max_conns=1`: while one check waits on the node, the next is not made (the call fails
/// as `unavailable` at once, the breaker stays closed); once it is over, the node takes
/// calls again: the count of calls in flight follows every way a call ends.
#[test]
fn max_conns_holds_calls_back_while_the_node_is_full() {
    let mut spec = node("primary:8000", false, 0);
    spec.policy.max_conns = 1;
    let (mut e, mut io) = (Engine::new(vec![spec], Some(b"tok"), 4, 2), FakeIo::new(vec![hangs()]));
    check(&mut e, &mut io, 1);
    check(&mut e, &mut io, 2);
    assert_eq!(delivered(&mut e), vec![(2, failed(AseError::Unavailable, 0))]);
    assert!(!e.breaker_open(0));
    advance(&mut e, &mut io, LIMITS.timeout_ms + 1);
    assert_eq!(delivered(&mut e).len(), 1, "the first timed out");
    check(&mut e, &mut io, 3);
    assert!(delivered(&mut e).is_empty(), "the node has room again: the call waits on it");
    assert_eq!(io.connects_to(0), 2);
}

/// `least_conn` with every node idle each time: the nodes take turns, checks and reports.
#[test]
fn least_conn_takes_turns_among_idle_nodes() {
    let spec = |n: &str| node(n, false, 1);
    let groups = vec![GroupSpec {
        name: "default".into(),
        nodes: vec![spec("a:1"), spec("b:1")],
        token: None,
        keepalive: 4,
        balance: Balance::LeastConn,
    }];
    let (mut e, mut io) = (Engine::with_groups(groups, 4), FakeIo::new(vec![answers(OK), answers(OK)]));
    for i in 0..10 {
        check(&mut e, &mut io, i);
        assert_eq!(result(&mut e), ok(200, 0));
        report(&mut e, &mut io);
        advance(&mut e, &mut io, 1);
    }
    assert_eq!((io.sends_to(0), io.sends_to(1)), (10, 10));
}

/// Three nodes ("a:1", "b:1", "c:1") in a group that hashes.
fn hashing(consistent: bool, scripts: Vec<Script>) -> (Engine<u32>, FakeIo) {
    let nodes = vec![node("a:1", false, 1), node("b:1", false, 1), node("c:1", false, 1)];
    let balance = Balance::Hash { consistent };
    let groups = vec![GroupSpec { name: "default".into(), nodes, token: None, keepalive: 4, balance }];
    (Engine::with_groups(groups, 4), FakeIo::new(scripts))
}

/// `hash`: the checks and reports of one key go to one node; a key whose node refuses
/// fails over within its call and then keeps to another node while that one is down.
#[test]
fn a_hash_key_keeps_its_node_for_checks_and_reports_and_fails_over() {
    let (mut e, mut io) = hashing(false, vec![answers(OK), answers(OK), answers(OK)]);
    let sends = |io: &FakeIo| [io.sends_to(0), io.sends_to(1), io.sends_to(2)];
    for key in 0..3u32 {
        let before = sends(&io);
        for i in 0..4 {
            e.start_check(i, 0, Some(key), CID, BODY, LIMITS, &mut io);
            assert_eq!(result(&mut e), ok(200, 0));
            e.send_report(0, Some(key), CID, BODY, LIMITS, &mut io);
            e.flush(&mut io);
            advance(&mut e, &mut io, 1);
        }
        let grew: Vec<usize> = (0..3).filter(|&n| sends(&io)[n] != before[n]).collect();
        assert_eq!(grew.len(), 1, "key {key}: every check and report on one node: {:?}", sends(&io));
        assert_eq!(sends(&io)[grew[0]] - before[grew[0]], 8);
    }
    // Where key 7 goes on the ring; then that node refuses.
    let (mut e, mut io) = hashing(true, vec![answers(OK), answers(OK), answers(OK)]);
    e.start_check(1, 0, Some(7), CID, BODY, LIMITS, &mut io);
    assert_eq!(result(&mut e), ok(200, 0));
    let home = (0..3).find(|&n| io.sends_to(n) == 1).expect("one node took it");
    let mut scripts = vec![answers(OK), answers(OK), answers(OK)];
    scripts[home] = refuses();
    let (mut e, mut io) = hashing(true, scripts);
    for i in 0..3 {
        e.start_check(i, 0, Some(7), CID, BODY, LIMITS, &mut io);
        assert_eq!(result(&mut e), ok(200, 0), "check {i} answered by another node");
        advance(&mut e, &mut io, 1);
    }
    assert!(down(&e, &io, home));
    let others: Vec<usize> = (0..3).filter(|&n| n != home && io.sends_to(n) > 0).collect();
    assert_eq!(others.len(), 1, "the key keeps to one other node: {others:?}");
    assert_eq!(io.sends_to(others[0]), 3);
}

/// A primary that accepts and never answers, a healthy backup: when the primary's down
/// time is over, the check that probes it gives up after half its `ase_timeout` and gets
/// its answer from the backup, instead of failing open; the primary stays down.
#[test]
fn the_probe_of_a_hung_primary_does_not_cost_the_client_its_check() {
    let (mut e, mut io) = two_nodes(hangs(), answers(OK));
    check(&mut e, &mut io, 1);
    advance(&mut e, &mut io, LIMITS.timeout_ms);
    assert_eq!(result(&mut e), failed(AseError::Timeout, LIMITS.timeout_ms), "the primary had the whole time");
    check(&mut e, &mut io, 2);
    assert_eq!(result(&mut e), ok(200, 0), "the backup while the primary is down");
    advance(&mut e, &mut io, FAIL_TIMEOUT);
    check(&mut e, &mut io, 3);
    assert!(delivered(&mut e).is_empty(), "the probe waits on the primary");
    advance(&mut e, &mut io, LIMITS.timeout_ms / 2);
    assert_eq!(result(&mut e), ok(200, LIMITS.timeout_ms / 2), "answered by the backup within the deadline");
    check(&mut e, &mut io, 4);
    assert_eq!(result(&mut e), ok(200, 0), "the primary stays down");
    assert_eq!(io.connects_to(0), 2);
}

/// A check that probes a down primary and is cancelled (its request went away) charges
/// nobody and leaves the probe to the next check: the primary is not left "being probed".
#[test]
fn a_cancelled_probe_charges_nobody_and_lets_the_next_check_probe() {
    let (mut e, mut io) = two_nodes(hangs(), answers(OK));
    check(&mut e, &mut io, 1);
    advance(&mut e, &mut io, LIMITS.timeout_ms);
    assert_eq!(result(&mut e), failed(AseError::Timeout, LIMITS.timeout_ms));
    advance(&mut e, &mut io, FAIL_TIMEOUT);
    let probe = check(&mut e, &mut io, 2).unwrap();
    assert_eq!(io.connects_to(0), 2, "the probe went to the primary");
    e.cancel(probe, &mut io);
    assert!(delivered(&mut e).is_empty(), "a cancelled call is answered to nobody");
    check(&mut e, &mut io, 3);
    assert_eq!(io.connects_to(0), 3, "the next check probes the primary again");
    assert!(down(&e, &io, 0));
}

/// A lone node that hangs: the early probe goes out without its client, who is answered
/// at once (no wait on a black-holed ASE); once the node answers again, checks are back.
#[test]
fn the_early_probe_of_a_hung_lone_node_keeps_no_client_waiting() {
    let (mut e, mut io) = one_node(hangs());
    check(&mut e, &mut io, 1);
    advance(&mut e, &mut io, LIMITS.timeout_ms);
    assert_eq!(result(&mut e), failed(AseError::Timeout, LIMITS.timeout_ms));
    advance(&mut e, &mut io, crate::health::QUICK_PROBE_FIRST_MS);
    assert_eq!(check(&mut e, &mut io, 2), None);
    assert_eq!(result(&mut e), failed(AseError::Unavailable, 0), "answered at once");
    assert_eq!(io.connects_to(0), 2, "the probe went out");
    assert_eq!(e.live_calls(), 1, "and goes on without its client");
    advance(&mut e, &mut io, LIMITS.timeout_ms);
    assert_eq!(e.live_calls(), 0);
    assert!(delivered(&mut e).is_empty(), "nothing delivered for the detached probe");
}

/// A burst of large checks against a hanging ASE grows every call slot's buffer; once the
/// calls are over, what they grew goes back (a worker keeps no burst's peak for good).
#[test]
fn a_burst_of_large_checks_leaves_no_large_buffers_behind() {
    let (mut e, mut io) = one_node(hangs());
    let body = vec![b'x'; 60_000];
    for i in 0..100 {
        e.start_check(i, 0, None, CID, &body, LIMITS, &mut io);
    }
    assert!(e.buffer_bytes() >= 100 * 60_000, "{}", e.buffer_bytes());
    advance(&mut e, &mut io, LIMITS.timeout_ms + 1);
    assert_eq!(delivered(&mut e).len(), 100);
    assert!(e.buffer_bytes() <= 100 * 4096, "kept {} bytes after the burst", e.buffer_bytes());
    // The slots are reused as before.
    check(&mut e, &mut io, 101);
}

/// nginx's own shortage (no free connection, no descriptor) is not the ASE's: the call
/// fails as `local` at once, no other node is tried, no node is charged, said once a minute.
#[test]
fn a_local_shortage_charges_no_node() {
    let (mut e, mut io) = two_nodes(no_local_connection(), answers(OK));
    for i in 0..3 {
        check(&mut e, &mut io, i);
        assert_eq!(result(&mut e), failed(AseError::Local, 0), "check {i}");
    }
    assert_eq!(io.connects_to(1), 0, "the backup is not tried for our own shortage");
    assert!(!e.breaker_open(0));
    assert_eq!(e.admit(CallKind::Check, 0, &mut io), Admission::Go, "no node marked down");
    assert_eq!(io.logged("could not open a connection to the ASE"), 1);
    assert_eq!(io.logged("is down"), 0);
    advance(&mut e, &mut io, 60_000);
    check(&mut e, &mut io, 9);
    assert_eq!(io.logged("could not open a connection to the ASE"), 2, "again a minute later");
}

/// A lone node that failed is probed early (its group has no node up), and a failed probe
/// doubles the wait: nginx is not blind for a whole `fail_timeout`.
#[test]
fn a_lone_node_that_failed_is_probed_early_and_backs_off() {
    use crate::health::QUICK_PROBE_FIRST_MS as FIRST;
    const { assert!(2 * FIRST < FAIL_TIMEOUT, "the test shows an early probe") };
    let (mut e, mut io) = one_node(refuses());
    check(&mut e, &mut io, 1);
    delivered(&mut e);
    assert_eq!(e.admit(CallKind::Check, 0, &mut io), Admission::Unavailable);
    advance(&mut e, &mut io, FIRST - 1);
    assert_eq!(e.admit(CallKind::Check, 0, &mut io), Admission::Unavailable);
    advance(&mut e, &mut io, 1);
    assert_eq!(e.admit(CallKind::Check, 0, &mut io), Admission::Go);
    // The probe goes out, but its client is answered at once as the breaker would.
    assert_eq!(check(&mut e, &mut io, 2), None, "no handle: the client has its answer");
    assert_eq!(result(&mut e), failed(AseError::Unavailable, 0));
    assert_eq!(io.connects.len(), 2);
    assert_eq!(e.admit(CallKind::Check, 0, &mut io), Admission::Unavailable);
    advance(&mut e, &mut io, 2 * FIRST - 1);
    assert_eq!(e.admit(CallKind::Check, 0, &mut io), Admission::Unavailable);
    advance(&mut e, &mut io, 1);
    assert_eq!(e.admit(CallKind::Check, 0, &mut io), Admission::Go);
}

#[test]
fn a_cancelled_check_is_not_delivered_and_its_connection_closed() {
    let (mut e, mut io) = one_node(answers(OK).after(100));
    let id = check(&mut e, &mut io, 1).unwrap();
    assert!(io.timers.contains_key(&0));
    e.cancel(id, &mut io);
    assert_eq!(io.closes, vec![0]);
    assert!(io.timers.is_empty(), "timer disarmed");
    advance(&mut e, &mut io, 1_000);
    assert!(delivered(&mut e).is_empty());
    assert!(io.set_idle.is_empty() && e.idle[0].is_empty(), "not pooled");

    // A stale id is ignored, even when its slot serves another call now.
    e.cancel(id, &mut io);
    let next = check(&mut e, &mut io, 2).unwrap();
    assert_eq!(next.slot, id.slot);
    assert_ne!(next, id);
    e.cancel(id, &mut io);
    assert_eq!(io.closes, vec![0]);
    advance(&mut e, &mut io, 100);
    assert_eq!(result(&mut e), ok(200, 100));
    // After it finished, its id is stale too: the pooled connection stays.
    e.cancel(next, &mut io);
    assert_eq!(io.closes, vec![0]);
    assert_eq!(e.idle[0].len(), 1);

    // A cancel during a connect closes the pending connection.
    io.nodes[0] = never_accepts();
    e.close_all(&mut io);
    let id = check(&mut e, &mut io, 3).unwrap();
    let conn = io.connects.last().unwrap().0;
    e.cancel(id, &mut io);
    assert!(!io.is_open(conn));
    assert!(io.timers.is_empty());
    advance(&mut e, &mut io, 1_000);
    assert!(delivered(&mut e).is_empty());
    assert!(!down(&e, &io, 0), "a cancelled call charges nobody");
}

#[test]
fn answers_bad_503_502_pieces_oversize() {
    // Garbage: a bad answer, charged.
    let (mut e, mut io) = one_node(answers(b"SSH-2.0-OpenSSH_9.6\r\n"));
    check(&mut e, &mut io, 1);
    assert_eq!(result(&mut e), failed(AseError::BadAnswer, 0));
    assert!(down(&e, &io, 0));
    assert_eq!(io.logged("is down (bad_answer)"), 1);
    assert_eq!(io.closes, vec![0]);

    // 503 (unknown API): delivered, not charged.
    let (mut e, mut io) = one_node(answers(UNKNOWN_API));
    check(&mut e, &mut io, 1);
    assert_eq!(result(&mut e), ok(503, 0));
    assert!(!down(&e, &io, 0));
    assert_eq!(e.idle[0].len(), 1, "a 503 is a whole answer: pooled");

    // 502: delivered, charged.
    let (mut e, mut io) = one_node(answers(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"));
    check(&mut e, &mut io, 1);
    assert_eq!(result(&mut e), ok(502, 0));
    assert!(down(&e, &io, 0));
    assert_eq!(io.logged("node http://primary:8000 is down (it answered 502)"), 1);

    // In pieces of 3 bytes, 1 ms apart.
    let (mut e, mut io) = one_node(answers(BLOCK).pieces(3).after(5));
    check(&mut e, &mut io, 1);
    let last = 5 + (BLOCK.len() as u64).div_ceil(3) - 1;
    advance(&mut e, &mut io, last - 1);
    assert!(delivered(&mut e).is_empty());
    advance(&mut e, &mut io, 1);
    assert_eq!(result(&mut e), ok(403, last));
    assert_eq!(e.idle[0].len(), 1);

    // Too large: by its length, or read until the limit.
    let big = b"HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n".to_vec();
    let mut endless = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
    endless.resize(answer::MAX_ANSWER_BODY + 100, b'a');
    for a in [big, endless] {
        let (mut e, mut io) = one_node(answers(&a));
        check(&mut e, &mut io, 1);
        assert_eq!(result(&mut e), failed(AseError::BadAnswer, 0));
        assert!(down(&e, &io, 0));
    }

    // Closed before answering on a fresh connection: reset, charged.
    let (mut e, mut io) = one_node(closes());
    check(&mut e, &mut io, 1);
    assert_eq!(result(&mut e), failed(AseError::Reset, 0));
    assert!(down(&e, &io, 0));
}

#[test]
fn abort_conn_and_abort_slot_end_the_call_as_internal() {
    let (mut e, mut io) = one_node(hangs());
    check(&mut e, &mut io, 1).unwrap();
    e.abort_conn(0, &mut io);
    assert_eq!(result(&mut e), failed(AseError::Internal, 0));
    assert_eq!(io.closes, vec![0]);
    assert!(io.timers.is_empty());
    assert!(!down(&e, &io, 0));

    let id = check(&mut e, &mut io, 2).unwrap();
    e.abort_slot(id.slot, &mut io);
    assert_eq!(result(&mut e), failed(AseError::Internal, 0));
    assert_eq!(io.closes, vec![0, 0]);
    assert!(io.timers.is_empty());
    // A free slot or a closed connection: nothing happens.
    e.abort_slot(id.slot, &mut io);
    e.abort_conn(0, &mut io);
    e.abort_slot(99, &mut io);
    assert!(delivered(&mut e).is_empty());
    assert_eq!(io.closes.len(), 2);

    // An idle connection: closed, no call touched.
    io.nodes[0] = answers(OK);
    check(&mut e, &mut io, 3);
    delivered(&mut e);
    assert_eq!(e.idle[0], vec![0]);
    e.abort_conn(0, &mut io);
    assert!(e.idle[0].is_empty());
    assert!(delivered(&mut e).is_empty());

    // An aborted probe frees the node for another probe.
    io.nodes[0] = refuses();
    check(&mut e, &mut io, 4);
    delivered(&mut e);
    advance(&mut e, &mut io, FAIL_TIMEOUT);
    io.nodes[0] = hangs();
    assert_eq!(check(&mut e, &mut io, 5), None, "a detached probe");
    assert_eq!(result(&mut e), failed(AseError::Unavailable, 0));
    assert_eq!(e.admit(CallKind::Check, 0, &mut io), Admission::Unavailable);
    let probe = (0..e.calls.len()).find(|&s| e.calls[s].live).expect("the probe goes on");
    e.abort_slot(probe, &mut io);
    assert!(delivered(&mut e).is_empty(), "nobody waits for it");
    assert_eq!(e.admit(CallKind::Check, 0, &mut io), Admission::Go);
}

#[test]
fn an_idle_connection_that_turns_readable_is_closed() {
    let (mut e, mut io) = one_node(answers(OK));
    check(&mut e, &mut io, 1);
    delivered(&mut e);
    e.on_readable(0, &mut io);
    assert!(io.closes.is_empty(), "nothing to read: it stays");
    io.peer_closes(0, false);
    e.on_readable(0, &mut io);
    assert_eq!(io.closes, vec![0]);
    assert!(e.idle[0].is_empty());
    check(&mut e, &mut io, 2);
    assert_eq!(result(&mut e), ok(200, 0));
    assert_eq!(io.connects.len(), 2);
}

#[test]
fn call_ids_round_trip_through_bits() {
    for (slot, generation) in [(0, 0), (5, 7), (1234, u32::MAX), (LOW - 1, 1)] {
        let id = CallId { slot, generation };
        let bits = id.to_bits();
        assert_ne!(bits, 0);
        assert_eq!(CallId::from_bits(bits), Some(id), "{id:?}");
    }
    assert_eq!(CallId::from_bits(0), None);
}

#[test]
fn a_slots_generation_wraps_within_the_handle() {
    // Where usize is 32 bits a handle holds 16 bits of generation: the engine's ids must
    // still round-trip after the generation wrapped (on 64 bits this is u32::MAX).
    let (mut e, mut io) = one_node(answers(OK).after(1));
    check(&mut e, &mut io, 1).unwrap();
    advance(&mut e, &mut io, 1);
    delivered(&mut e);
    e.calls[0].generation = LOW as u32;
    for w in 0..3 {
        let id = check(&mut e, &mut io, w).unwrap();
        assert_eq!(CallId::from_bits(id.to_bits()), Some(id));
        e.cancel(CallId::from_bits(id.to_bits()).unwrap(), &mut io);
        assert!(!e.calls[0].live, "cancelled through its handle");
    }
    assert!(delivered(&mut e).is_empty());
}

#[test]
fn a_thousand_checks_use_one_call_slot_and_one_connection() {
    let (mut e, mut io) = one_node(answers(OK).after(1));
    for w in 0..1000 {
        assert!(check(&mut e, &mut io, w).is_some());
        advance(&mut e, &mut io, 1);
        assert_eq!(result(&mut e), ok(200, 1));
    }
    assert_eq!(e.calls.len(), 1);
    assert_eq!(e.conns.len(), 1);
    assert_eq!(io.connects.len(), 1);
    assert_eq!(io.closes, vec![0], "closed after its 1000th call only (ase_keepalive_requests' default)");
}

/// Group 0: "a:1" (primary) and "a:2" (backup), token "tok"; group "two": "b:1", token "tok2",
/// keepalive 1.
fn two_groups(a1: Script, a2: Script, b1: Script) -> (Engine<u32>, FakeIo) {
    let groups = vec![
        GroupSpec {
            name: "default".into(),
            nodes: vec![node("a:1", false, 1), node("a:2", true, 1)],
            token: Some(b"tok"),
            keepalive: 4,
            balance: Balance::RoundRobin,
        },
        GroupSpec {
            name: "two".into(),
            nodes: vec![node("b:1", false, 1)],
            token: Some(b"tok2"),
            keepalive: 1,
            balance: Balance::RoundRobin,
        },
    ];
    (Engine::with_groups(groups, 2), FakeIo::new(vec![a1, a2, b1]))
}

#[test]
fn a_group_whose_nodes_are_down_leaves_the_other_group_alone() {
    let (mut e, mut io) = two_groups(refuses(), refuses(), answers(OK));
    assert_eq!(e.start_check(1, 0, None, CID, BODY, LIMITS, &mut io), None);
    assert_eq!(result(&mut e), failed(AseError::Refused, 0), "group 0 tried its primary and its backup");
    assert_eq!((io.connects_to(0), io.connects_to(1), io.connects_to(2)), (1, 1, 0), "never another group's node");
    assert_eq!(e.admit(CallKind::Check, 0, &mut io), Admission::Unavailable);
    assert!(e.breaker_open(0));
    assert_eq!(io.logged("every ASE node is down;"), 1, "the default group's message reads as without groups");

    assert!(!e.breaker_open(1));
    assert_eq!(e.admit(CallKind::Check, 1, &mut io), Admission::Go);
    assert_eq!(e.start_check(2, 1, None, CID, BODY, LIMITS, &mut io), None);
    assert_eq!(result(&mut e), ok(200, 0));
    assert_eq!(io.sent.last().map(|s| s.0), Some(2));
    let sent = &io.sent.last().unwrap().1;
    let head = NodeHeads::new("b:1", Some(b"tok2"));
    assert!(sent.starts_with(head.get(CallKind::Check)), "group two's Host and token");
    assert_eq!(e.admit(CallKind::Report, 1, &mut io), Admission::Go);
    assert_eq!(e.admit(CallKind::Report, 0, &mut io), Admission::Unavailable, "reports of group 0 have no node");

    // Group two's only node goes down: its own breaker, its own message.
    io.nodes[2] = refuses();
    let pooled = io.connects.iter().rev().find(|c| c.1 == 2).map(|c| c.0).expect("group two's connection");
    io.peer_closes(pooled, true);
    e.start_check(3, 1, None, CID, BODY, LIMITS, &mut io);
    assert_eq!(result(&mut e), failed(AseError::Refused, 0));
    assert_eq!(e.admit(CallKind::Check, 1, &mut io), Admission::Unavailable);
    assert_eq!(io.logged("every ASE node is down in group \"two\""), 1);
    // A check of a group that does not exist finds no node (never another group's).
    assert_eq!(e.start_check(4, 9, None, CID, BODY, LIMITS, &mut io), None);
    assert_eq!(result(&mut e), failed(AseError::Unavailable, 0));
}

#[test]
fn each_group_keeps_its_own_keepalive() {
    let (mut e, mut io) = two_groups(answers(OK), answers(OK), answers(OK).after(5));
    // Two checks of group two at once: two connections; keepalive 1 keeps one.
    e.start_check(1, 1, None, CID, BODY, LIMITS, &mut io).expect("pending");
    e.start_check(2, 1, None, CID, BODY, LIMITS, &mut io).expect("pending");
    advance(&mut e, &mut io, 10);
    assert_eq!(delivered(&mut e).len(), 2);
    assert_eq!(io.connects_to(2), 2);
    assert_eq!(io.closes.len(), 1, "one of the two is over group two's keepalive");
}

#[test]
fn the_trace_has_one_line_per_call_and_per_connection_event_and_nothing_when_off() {
    let (mut e, mut io) = two_nodes(refuses(), answers(BLOCK));
    io.tracing = true;
    check(&mut e, &mut io, 1);
    assert_eq!(result(&mut e), ok(403, 0));
    check(&mut e, &mut io, 2);
    delivered(&mut e);
    report(&mut e, &mut io);
    let lines: Vec<&str> = io.traces.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(
        lines,
        vec![
            "ase: connection opened to http://backup:8000 (group default)",
            "ase: check group=default node=http://backup:8000 status=403 ms=0 cid=cid-1 verdict=block",
            "ase: connection reused to http://backup:8000 (group default)",
            "ase: check group=default node=http://backup:8000 status=403 ms=0 cid=cid-1 verdict=block",
            "ase: connection reused to http://backup:8000 (group default)",
            "ase: report group=default node=http://backup:8000 status=403 ms=0 cid=cid-1",
        ]
    );
    assert!(io.traces.iter().all(|(slot, _)| slot.is_some()), "every line went to its call's log");

    // The breaker answers: no node, an error, the verdict the fail mode decides.
    let (mut e, mut io) = one_node(refuses());
    io.tracing = true;
    check(&mut e, &mut io, 1);
    check(&mut e, &mut io, 2);
    delivered(&mut e);
    let lines: Vec<&str> = io.traces.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(
        lines,
        vec![
            "ase: check group=default node=http://primary:8000 error=refused ms=0 cid=cid-1 verdict=fail",
            "ase: check group=default node=- error=unavailable ms=0 cid=cid-1 verdict=fail",
        ]
    );

    // Off: the engine asks once per call and writes nothing (FakeIo::trace would panic).
    let (mut e, mut io) = two_nodes(answers(OK), answers(OK));
    check(&mut e, &mut io, 1);
    report(&mut e, &mut io);
    assert_eq!(io.trace_begun.len(), 2);
    assert!(io.traces.is_empty());
}

#[test]
fn an_idle_connection_closed_by_the_ase_is_traced_with_the_worker() {
    let (mut e, mut io) = one_node(answers(OK));
    io.tracing = true;
    check(&mut e, &mut io, 1);
    delivered(&mut e);
    io.peer_closes(0, false);
    e.on_readable(0, &mut io);
    assert_eq!(
        io.traces.last(),
        Some(&(None, "ase: connection closed to http://primary:8000 (group default)".to_string()))
    );
}

#[test]
fn a_drained_node_takes_no_new_call_and_its_connections_go() {
    let (mut e, mut io) = two_nodes(answers(OK).after(5), answers(OK));
    // One connection pooled, one call in flight on a second.
    check(&mut e, &mut io, 1);
    advance(&mut e, &mut io, 5);
    delivered(&mut e);
    check(&mut e, &mut io, 2).expect("pending");
    check(&mut e, &mut io, 3).expect("pending");
    assert_eq!(io.connects_to(0), 2, "the pooled one and a new one");
    e.drain(0, &mut io);
    assert!(!e.node_active(0) && e.node_busy(0));
    assert_eq!(check(&mut e, &mut io, 4), None, "the next check goes to the backup");
    assert_eq!(io.connects_to(1), 1);
    advance(&mut e, &mut io, 10);
    let done: Vec<u32> = delivered(&mut e)
        .into_iter()
        .map(|(w, r)| {
            assert_eq!(r.status, 200);
            w
        })
        .collect();
    assert_eq!(done.len(), 3, "the calls in flight finished: {done:?}");
    assert!(!e.node_busy(0), "and their connections closed instead of going back to the pool");
    assert!(e.idle[0].is_empty());
    e.activate(0, "http://primary:8000 (10.0.0.9:8000)".into());
    check(&mut e, &mut io, 5);
    assert_eq!(io.connects_to(0), 3, "back in use");
}

#[test]
fn a_node_that_starts_without_an_address_takes_no_call() {
    let mut slot = node("named:8000", false, 1);
    slot.active = false;
    let mut e: Engine<u32> = Engine::new(vec![slot], None, 4, 2);
    let mut io = FakeIo::new(vec![answers(OK)]);
    assert_eq!(e.admit(CallKind::Check, 0, &mut io), Admission::Unavailable);
    assert_eq!(e.admit(CallKind::Report, 0, &mut io), Admission::Unavailable);
    e.activate(0, "http://named:8000 (10.0.0.1:8000)".into());
    assert_eq!(e.admit(CallKind::Check, 0, &mut io), Admission::Go);
    assert_eq!(check(&mut e, &mut io, 1), None);
    assert_eq!(result(&mut e), ok(200, 0));
}

/// An `Io` that allocates nothing itself: connects at once, takes every write whole and
/// answers each request with `OK`, so the engine's own allocations can be counted.
#[derive(Default)]
struct QuietIo {
    answer_due: bool,
}

impl Io for QuietIo {
    fn now(&self) -> u64 {
        0
    }
    fn connect(&mut self, _: ConnId, _: usize) -> Connect {
        Connect::Ready
    }
    fn send(&mut self, _: ConnId, data: &[u8]) -> Xfer {
        self.answer_due = true;
        Xfer::Done(data.len())
    }
    fn recv(&mut self, _: ConnId, buf: &mut [u8]) -> Xfer {
        if !core::mem::take(&mut self.answer_due) {
            return Xfer::WouldBlock;
        }
        buf[..OK.len()].copy_from_slice(OK);
        Xfer::Done(OK.len())
    }
    fn pending(&mut self, _: ConnId) -> bool {
        false
    }
    fn close(&mut self, _: ConnId) {}
    fn set_idle(&mut self, _: ConnId, _: bool) {}
    fn arm(&mut self, _: usize, _: u64) {}
    fn disarm(&mut self, _: usize) {}
    fn schedule_flush(&mut self) {}
    fn exiting(&self) -> bool {
        false
    }
    fn logs(&self, _: Level) -> bool {
        false
    }
    fn log(&mut self, _: Level, _: fmt::Arguments<'_>) {}
    fn trace_begin(&mut self, _: usize) -> bool {
        false
    }
    fn traces(&self) -> bool {
        false
    }
    fn trace(&mut self, _: Option<usize>, _: fmt::Arguments<'_>) {}
}

// Counts this thread's heap allocations (the test harness allocates on other threads).
use ngx_ase_shared::alloc_count as counting;
#[global_allocator]
static COUNTING: counting::Counting = counting::Counting;

#[test]
fn a_check_and_a_report_of_a_named_group_allocate_nothing_once_warm() {
    let (mut e, _) = two_groups(answers(OK), answers(OK), answers(OK));
    let mut io = QuietIo::default();
    let mut round = || {
        assert_eq!(e.admit(CallKind::Check, 1, &mut io), Admission::Go);
        assert_eq!(e.start_check(7, 1, None, CID, BODY, LIMITS, &mut io), None);
        assert_eq!(e.take_finished().map(|(w, r)| (w, r.status)), Some((7, 200)));
        assert_eq!(e.send_report(1, None, CID, BODY, LIMITS, &mut io), Admission::Go);
        e.flush(&mut io);
    };
    round();
    round();
    assert_eq!(counting::allocations(&mut round), 0);
    assert!(counting::allocations(|| drop(std::hint::black_box(vec![1u8; 8]))) > 0, "the counter counts");
}

/// `hash` (plain and on its ring) allocates nothing per call either: the ring is built
/// once, with the engine.
#[test]
fn a_hashed_check_and_report_allocate_nothing_once_warm() {
    for consistent in [false, true] {
        let (mut e, _) = hashing(consistent, vec![answers(OK), answers(OK), answers(OK)]);
        let mut io = QuietIo::default();
        let mut key = 0u32;
        let mut round = || {
            key = key.wrapping_add(0x9E37_79B9);
            assert_eq!(e.start_check(7, 0, Some(key), CID, BODY, LIMITS, &mut io), None);
            assert_eq!(e.take_finished().map(|(w, r)| (w, r.status)), Some((7, 200)));
            assert_eq!(e.send_report(0, Some(key), CID, BODY, LIMITS, &mut io), Admission::Go);
            e.flush(&mut io);
        };
        // Warm: every node's connection made and pooled.
        (0..30).for_each(|_| round());
        assert_eq!(counting::allocations(|| (0..30).for_each(|_| round())), 0, "consistent={consistent}");
    }
}

// ---------------------------------------------------------------------- a 503 not the ASE's

#[test]
fn a_503_that_is_not_the_ases_own_is_an_error_charged_to_the_node() {
    // One node: the check fails (the request module's fail mode decides), the node is down.
    let (mut e, mut io) = one_node(answers(HAPROXY_503));
    let errors_before = counters().errors[AseError::Bad503 as usize].load(core::sync::atomic::Ordering::Relaxed);
    check(&mut e, &mut io, 1);
    assert_eq!(result(&mut e), failed(AseError::Bad503, 0));
    assert!(down(&e, &io, 0));
    assert_eq!(io.logged("node http://primary:8000 is down (bad_503)"), 1);
    assert!(counters().errors[AseError::Bad503 as usize].load(core::sync::atomic::Ordering::Relaxed) > errors_before);
    assert_eq!(e.idle[0].len(), 1, "a whole answer: the connection is kept");
    // The breaker: every node down, the next check is answered at once.
    assert_eq!(e.admit(CallKind::Check, 0, &mut io), Admission::Unavailable);

    // A backup takes the check, as after a 502.
    let (mut e, mut io) = two_nodes(answers(HAPROXY_503), answers(BLOCK));
    check(&mut e, &mut io, 1);
    assert_eq!(result(&mut e), ok(403, 0));
    assert!(down(&e, &io, 0) && !down(&e, &io, 1));
}

// ---------------------------------------------------------------------- stale bytes

/// A 403 of exactly the engine's first read buffer (1,024 bytes), its body padded.
fn block_of_1024() -> Vec<u8> {
    let head = |n: usize| format!("HTTP/1.1 403 Forbidden\r\nContent-Length: {n:04}\r\n\r\n");
    let body = READ_BUFFER - head(0).len();
    let mut a = head(body).into_bytes();
    a.resize(READ_BUFFER, b' ');
    a
}

#[test]
fn an_answer_that_fills_the_read_buffer_leaves_nothing_for_the_next_call() {
    // The ASE answers 403 to every call, and writes a 200 nobody asked for behind each, in
    // the same segment: the first read takes exactly the 403, the 200 stays in the socket
    // with no new readiness event to come.
    let a = block_of_1024();
    assert_eq!(a.len(), READ_BUFFER);
    let (mut e, mut io) = one_node(answers(&a).then_stray(0, OK));
    check(&mut e, &mut io, 1);
    assert_eq!(result(&mut e), ok(403, 0));
    assert!(e.idle[0].is_empty(), "bytes were left behind the answer: not pooled");
    assert_eq!(io.closes, vec![0]);
    check(&mut e, &mut io, 2);
    assert_eq!(result(&mut e), ok(403, 0), "the second call's own answer, not the stray 200");
    assert_eq!(io.connects.len(), 2);
}

#[test]
fn bytes_that_arrive_on_an_idle_connection_in_the_turn_it_is_reused_are_no_answer() {
    let (mut e, mut io) = one_node(answers(BLOCK));
    check(&mut e, &mut io, 1);
    assert_eq!(result(&mut e), ok(403, 0));
    assert_eq!(e.idle[0], vec![0]);
    // A stray 200 arrives; its readiness event runs after this turn's check reuses the
    // connection.
    io.arrive_unannounced(0, OK);
    check(&mut e, &mut io, 2);
    advance(&mut e, &mut io, 0);
    assert_eq!(result(&mut e), ok(403, 0), "the stray 200 was taken as the answer");
    assert_eq!(io.closes, vec![0], "the connection with bytes pending was closed, not reused");
    assert_eq!(io.connects.len(), 2);

    // Later (a stray after each answer, 5 ms on): the idle connection's own event closes it.
    let (mut e, mut io) = one_node(answers(BLOCK).then_stray(5, OK));
    for waiter in 1..=3 {
        check(&mut e, &mut io, waiter);
        assert_eq!(result(&mut e), ok(403, 0));
        advance(&mut e, &mut io, 10);
    }
    assert_eq!(io.connects.len(), 3, "each connection closed after its stray");
}

// ---------------------------------------------------------------------- keep-alive limits

const SHORT_POOL: PoolLimits = PoolLimits { idle_timeout_ms: 1000, requests: 1000, max_age_ms: 3_600_000 };

impl FakeIo {
    /// A middlebox forgot pooled connection `conn`'s flow: requests on it vanish unanswered.
    fn forget(&mut self, conn: ConnId) {
        self.conn(conn).black_holed = true;
    }
}

/// Fires the idle timers that are due, as nginx's timer tree would.
fn fire_idle_timers(e: &mut Engine<u32>, io: &mut FakeIo) {
    let due: Vec<ConnId> = io.idle_timers.iter().filter(|t| *t.1 <= io.now).map(|t| *t.0).collect();
    for conn in due {
        io.idle_timers.remove(&conn);
        e.on_idle_timeout(conn, io);
    }
}

#[test]
fn an_idle_connection_is_closed_when_keepalive_timeout_runs_out() {
    let (mut e, mut io) = one_node(answers(OK));
    e.set_pool_limits(0, SHORT_POOL);
    check(&mut e, &mut io, 1);
    assert_eq!(result(&mut e), ok(200, 0));
    assert_eq!(io.idle_timers.get(&0), Some(&1000), "the idle connection's timer is armed");
    advance(&mut e, &mut io, 999);
    fire_idle_timers(&mut e, &mut io);
    assert_eq!(e.idle[0], vec![0], "not yet");
    advance(&mut e, &mut io, 1);
    fire_idle_timers(&mut e, &mut io);
    assert!(e.idle[0].is_empty() && io.closes == vec![0], "closed when its idle time reached the limit");
    check(&mut e, &mut io, 2);
    assert_eq!(result(&mut e), ok(200, 0));
    assert_eq!(io.connects.len(), 2, "the next call on a new connection");

    // Its timer not run yet when a call comes (later in the same turn): not reused either.
    let (mut e, mut io) = one_node(answers(OK));
    e.set_pool_limits(0, SHORT_POOL);
    check(&mut e, &mut io, 1);
    assert_eq!(result(&mut e), ok(200, 0));
    advance(&mut e, &mut io, 1500);
    check(&mut e, &mut io, 2);
    assert_eq!(result(&mut e), ok(200, 0));
    assert_eq!((io.connects.len(), io.closes.first()), (2, Some(&0)), "the expired one closed, a new one used");
    // A reused connection's timer is taken off while it serves a call.
    advance(&mut e, &mut io, 500);
    check(&mut e, &mut io, 3);
    assert_eq!(result(&mut e), ok(200, 0));
    assert_eq!(io.connects.len(), 2, "reused within the limit");
    assert_eq!(io.idle_timers.get(&0), Some(&(io.now + 1000)), "armed afresh when it went back to the pool");
}

#[test]
fn a_connection_that_carried_keepalive_requests_calls_is_closed_after_its_answer() {
    let (mut e, mut io) = one_node(answers(OK));
    e.set_pool_limits(0, PoolLimits { requests: 2, ..PoolLimits::default() });
    for waiter in 1..=3 {
        check(&mut e, &mut io, waiter);
        assert_eq!(result(&mut e), ok(200, 0));
    }
    assert_eq!(io.closes, vec![0], "closed after its second answer");
    assert_eq!(io.connects.len(), 2, "the third call on a new connection");
    assert_eq!(e.idle[0].len(), 1, "which is pooled (one call so far)");
}

#[test]
fn a_connection_older_than_keepalive_time_is_not_pooled_again() {
    let (mut e, mut io) = one_node(answers(OK));
    e.set_pool_limits(0, PoolLimits { max_age_ms: 5000, ..PoolLimits::default() });
    check(&mut e, &mut io, 1);
    advance(&mut e, &mut io, 4000);
    check(&mut e, &mut io, 2);
    assert_eq!(io.connects.len(), 1, "4 s old: reused");
    assert_eq!(e.idle[0], vec![0], "and pooled again");
    advance(&mut e, &mut io, 1000);
    check(&mut e, &mut io, 3);
    assert_eq!(delivered(&mut e).len(), 3);
    assert_eq!(io.connects.len(), 1, "reused once more (the limit is checked after the answer)");
    assert!(e.idle[0].is_empty() && io.closes == vec![0], "5 s old after its answer: closed");
}

#[test]
fn a_reused_idle_connection_a_middlebox_forgot_is_retried_on_a_new_one_uncharged() {
    // max_fails=1: one charge would mark the only node down.
    let (mut e, mut io) = one_node(answers(BLOCK));
    check(&mut e, &mut io, 1);
    assert_eq!(result(&mut e), ok(403, 0));
    advance(&mut e, &mut io, 4500);
    io.forget(0);
    assert!(check(&mut e, &mut io, 2).is_some(), "sent on the reused connection, unanswered");
    assert_eq!(io.sends_to(0), 2);
    // The first-byte bound: min(ase_timeout / 2, ase_connect_timeout) = 100 ms.
    advance(&mut e, &mut io, 99);
    assert!(delivered(&mut e).is_empty() && io.connects.len() == 1, "still waiting");
    advance(&mut e, &mut io, 1);
    assert_eq!(io.closes, vec![0], "the silent connection closed");
    assert_eq!(io.connects.len(), 2, "the call went on a new connection");
    assert_eq!(result(&mut e), ok(403, 100), "and the ASE's own answer came back");
    assert!(!down(&e, &io, 0), "the node was not charged");
    assert_eq!(io.logged("did not answer (a middlebox forgot it?)"), 1);
    // (Its id is the closed one's, given out again.)
    assert_eq!(e.idle[0], vec![0], "the new connection is pooled");

    // Silent on the new connection too (the ASE itself hangs): the call still ends at its
    // deadline, ase_timeout after its start, and the node is charged as for any hang.
    io.nodes[0] = hangs();
    advance(&mut e, &mut io, 4500);
    io.forget(0);
    check(&mut e, &mut io, 3);
    advance(&mut e, &mut io, 499);
    assert!(delivered(&mut e).is_empty());
    advance(&mut e, &mut io, 1);
    assert_eq!(result(&mut e), failed(AseError::Timeout, 500), "bounded by ase_timeout");
    assert_eq!(io.connects.len(), 3, "one retry, no more");
    assert_eq!(io.logged("did not answer"), 1, "said once per node");
}

#[test]
fn a_connection_reused_soon_keeps_the_whole_timeout() {
    // Idle well under a second (a busy worker): a slow answer is waited for, not retried.
    let (mut e, mut io) = one_node(answers(OK));
    check(&mut e, &mut io, 1);
    assert_eq!(result(&mut e), ok(200, 0));
    advance(&mut e, &mut io, 10);
    io.nodes[0] = answers(OK).after(300);
    check(&mut e, &mut io, 2);
    advance(&mut e, &mut io, 300);
    assert_eq!(result(&mut e), ok(200, 300));
    assert_eq!(io.connects.len(), 1, "no second connection");
}

#[test]
fn mirrored_calls_deliver_nothing_and_share_the_report_queue() {
    let (mut e, mut io) = one_node(answers(OK).after(100)); // response_queue = 2
    assert_eq!(e.send_mirror(CallKind::Check, 0, None, CID, BODY, LIMITS, &mut io), Admission::Go);
    assert!(io.sent.is_empty(), "a mirrored check waits for the end of the turn, as a report");
    assert_eq!(report(&mut e, &mut io), Admission::Go);
    assert_eq!(io.sent.len(), 2);
    assert_eq!(io.sent[0].1, request(CallKind::Check, "primary:8000"), "the copy is a check");
    assert_eq!(e.send_mirror(CallKind::Report, 0, None, CID, BODY, LIMITS, &mut io), Admission::QueueFull);
    advance(&mut e, &mut io, 100);
    assert!(delivered(&mut e).is_empty(), "nobody waits for a mirrored check");
    assert_eq!(e.reports_in_flight, 0, "its place in the queue is free again");
    assert_eq!(e.send_mirror(CallKind::Report, 0, None, CID, BODY, LIMITS, &mut io), Admission::Go);
    e.flush(&mut io);
    advance(&mut e, &mut io, 100);
    assert_eq!(e.reports_in_flight, 0);
    // Every node down: a mirrored report is not sent; a mirrored check may probe, once.
    let (mut e, mut io) = one_node(refuses());
    assert_eq!(e.send_mirror(CallKind::Check, 0, None, CID, BODY, LIMITS, &mut io), Admission::Go);
    e.flush(&mut io);
    assert!(down(&e, &io, 0), "a mirrored check's failure marks the mirror group's node down");
    assert_eq!(e.send_mirror(CallKind::Report, 0, None, CID, BODY, LIMITS, &mut io), Admission::Unavailable);
    assert_eq!(e.send_mirror(CallKind::Check, 0, None, CID, BODY, LIMITS, &mut io), Admission::Unavailable);
    assert_eq!(e.reports_in_flight, 0);
}

#[test]
fn a_slow_groups_checks_are_admitted_detached_until_a_fast_window() {
    use crate::latency_guard::{GuardConf, MIN_CHECKS};
    let (mut e, mut io) = one_node(answers(OK).after(300));
    e.set_latency_guard(0, Some(GuardConf { p99_ms: 200, window_ms: 5000 }), io.now);
    for w in 0..MIN_CHECKS as u32 {
        assert_eq!(e.admit(CallKind::Check, 0, &mut io), Admission::Go);
        check(&mut e, &mut io, w);
        advance(&mut e, &mut io, 300);
        assert_eq!(result(&mut e), ok(200, 300));
    }
    assert_eq!(io.logged("are slow"), 0, "the window is not over yet");
    advance(&mut e, &mut io, 2000);
    assert_eq!(e.admit(CallKind::Check, 0, &mut io), Admission::Detach, "the closed window's p99 was 300ms");
    assert_eq!(io.logged("ase: the checks of group \"default\" are slow (10 of 10 over 200ms"), 1);
    // Detached checks still measure the group: a fast window ends it, said once.
    io.nodes[0] = answers(OK).after(5);
    for w in 0..MIN_CHECKS as u32 {
        check(&mut e, &mut io, 100 + w);
        advance(&mut e, &mut io, 5);
    }
    delivered(&mut e);
    advance(&mut e, &mut io, 5000);
    assert_eq!(e.admit(CallKind::Check, 0, &mut io), Admission::Go);
    assert_eq!(e.admit(CallKind::Check, 0, &mut io), Admission::Go);
    assert_eq!(io.logged("are fast again"), 1);
    assert_eq!(io.logged("are slow"), 1);
    // No guard on a group: always Go.
    let (mut e, mut io) = one_node(answers(OK).after(300));
    check(&mut e, &mut io, 1);
    advance(&mut e, &mut io, 5000);
    assert_eq!(e.admit(CallKind::Check, 0, &mut io), Admission::Go);
}
