//! Target `ase_answer`: arbitrary bytes as the ASE's answers, read by the REAL channel
//! engine (`ngx-ase-common/src/engine/`: the call state machine in its files by job, the
//! answer parser `answer.rs`, the request bytes `wire.rs`, with `counters.rs` and `health.rs`),
//! compiled here from its own files (`src/lib.rs`) and driven through its `Io` trait by a
//! fake world instead of nginx. Each outcome then goes through
//! `ngx_ase_request::verdict::decide`, which must follow the protocol's table.
//!
//! The fake ([`FuzzIo`]): one or two nodes (`ase_server`s); a connect is ready at once;
//! every write is taken whole and recorded. The answer bytes arrive on the connection that
//! carries the call, a piece of fuzzed size per round, each with one readiness event; the
//! stream then ends as fuzzed: EOF (`Done(0)`), reset (`Failed`) or nothing more (the call's
//! timer ends it). Readiness is edge-triggered, as nginx's epoll is: a read hands out what
//! has arrived, up to the buffer's size, says `WouldBlock` only when nothing is left, and
//! bytes a read left behind get no new event. The clock is manual: it advances by a fuzzed
//! tick per round, and jumps to the next armed timer when nothing else can happen. A
//! failover or reconnect reads on in the stream where the last connection's arrived bytes
//! end (what arrived on a connection stays with it).
//!
//! Two checks run on one engine: the first over the answer's first `split` bytes, the
//! second over the rest, after the first ended (so the kept-alive connection, if the first
//! answer left one in the pool, carries the second: the reuse path). What the first
//! segment holds beyond the first answer (a second answer nobody asked for, or the
//! stream's end) arrives on the pooled connection before the second check: its readiness
//! event runs before the check, or (fuzzed) only after the check has started, in the same
//! turn of the event loop.
//!
//! What must hold (a panic otherwise): no panic in the engine; the second check never reads
//! a byte of the first segment (sent before its request: no answer to it); every started check is
//! delivered exactly once (`take_finished`), none twice, none for a check not started; a
//! result without an error has a status in 100..=999 and one with an error status 0; no
//! busy loop (more rounds than bytes plus a few is one); after each check no call is live,
//! no timer is armed, and every connection still open is an idle pooled one (at most
//! `keepalive` per node); the engine never reads from a connection that is not open, that
//! ended, or that said `WouldBlock` with no readiness event since, never with an empty
//! buffer, never writes to a connection not open, never connects an id that is open;
//! `close_all` closes everything; the decision follows the protocol's table for both fail
//! modes.

use std::collections::BTreeMap;
use std::fmt;

use crate::engine::{ConnId, Connect, Engine, Io, Level, Limits, NodeSpec, Xfer};
use crate::health::NodePolicy;
use crate::ngx_ase_request::conf::FailMode;
use crate::ngx_ase_request::verdict::{decide, Decision};
use ngx_ase_shared::abi::{AseError, CheckResult, Verdict};

/// The call's limits (`ase_timeout`, `ase_connect_timeout`).
pub const LIMITS: Limits = Limits { timeout_ms: 500, connect_timeout_ms: 100 };

/// Rounds a check may take beyond one per byte (ends of stream, timers, failover).
const SPARE_ROUNDS: usize = 16;

/// How the stream goes on once a check's bytes are used up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// `Done(0)`: the ASE closed the connection.
    Eof,
    /// `Failed`: the connection broke.
    Reset,
    /// `WouldBlock` forever: the ASE says nothing more.
    Hang,
}

/// The world the engine runs in, as the input's first bytes choose it.
#[derive(Clone, Copy, Debug)]
pub struct Setup {
    /// Read pieces alternate between these sizes (each at least 1).
    pub pieces: [usize; 2],
    pub two_nodes: bool,
    /// How the stream ends after the first check's bytes, and after the second's.
    pub ends: [End; 2],
    /// Milliseconds the clock moves per round.
    pub tick: u64,
    /// `max_fails` of every node (0: never marked down).
    pub max_fails: u32,
    /// `ase_keepalive`.
    pub keepalive: usize,
    /// What the first segment holds after the first answer gets its readiness event before
    /// the second check starts (else in the same turn, after it).
    pub announce: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            pieces: [4096, 4096],
            two_nodes: false,
            ends: [End::Hang, End::Eof],
            tick: 0,
            max_fails: 0,
            keepalive: 1,
            announce: true,
        }
    }
}

#[derive(Default)]
struct Conn {
    open: bool,
    node: usize,
    /// Lent to the pool (`set_idle(true)`).
    idle: bool,
    /// A read returned the end (`Done(0)` or `Failed`).
    ended: bool,
    /// The ASE ended the stream behind the bytes that arrived (while it sat in the pool).
    peer_end: Option<End>,
    /// A read said `WouldBlock`; no readiness event since.
    waiting: bool,
    /// Bytes written.
    sent: usize,
}

/// The fake `Io` (see the module's doc).
pub struct FuzzIo {
    now: u64,
    nodes: usize,
    data: Vec<u8>,
    /// The next byte to hand out, the end of what has arrived, and where the current
    /// check's bytes end.
    pos: usize,
    arrived: usize,
    limit: usize,
    end: End,
    /// The stream's end (not `Hang`) has arrived after `limit`.
    end_arrived: bool,
    /// The connection the bytes arrive on: the last one a request was written to.
    current: Option<ConnId>,
    /// During the second check: bytes before this are the first segment's, stale.
    stale_below: usize,
    /// A readiness event queued in this turn, run in the next round.
    owed_event: Option<ConnId>,
    pieces: [usize; 2],
    pieces_given: usize,
    conns: Vec<Conn>,
    /// Armed timers: call slot -> when.
    timers: BTreeMap<usize, u64>,
    scratch: String,
}

impl FuzzIo {
    fn conn(&mut self, conn: ConnId, what: &str) -> &mut Conn {
        match self.conns.get_mut(conn) {
            Some(c) if c.open => c,
            _ => panic!("the engine {what} connection {conn}, which is not open"),
        }
    }

    fn next_timer(&self) -> Option<(usize, u64)> {
        self.timers.iter().map(|(&s, &at)| (s, at)).min_by_key(|&(s, at)| (at, s))
    }

    /// The connection bytes arrive on, when it is open and waits for them.
    fn receiving(&self) -> Option<ConnId> {
        self.current.filter(|&c| {
            let c = &self.conns[c];
            c.open && !c.ended && c.peer_end.is_none() && c.sent > 0
        })
    }

    /// The next piece (or the stream's end) arrives on the receiving connection: `Some`
    /// (it, for its readiness event) when something did.
    fn arrive(&mut self) -> Option<ConnId> {
        let conn = self.receiving()?;
        if self.arrived < self.limit {
            let piece = self.pieces[self.pieces_given % 2];
            self.pieces_given += 1;
            self.arrived = (self.arrived + piece).min(self.limit);
            return Some(conn);
        }
        if self.end != End::Hang && !self.end_arrived {
            self.end_arrived = true;
            return Some(conn);
        }
        None
    }

    /// A readiness event for `conn`.
    fn ready(&mut self, conn: ConnId) {
        self.conns[conn].waiting = false;
    }
}

impl Io for FuzzIo {
    fn now(&self) -> u64 {
        self.now
    }

    fn connect(&mut self, conn: ConnId, node: usize) -> Connect {
        assert!(node < self.nodes, "the engine connects to node {node} of {}", self.nodes);
        if self.conns.len() <= conn {
            self.conns.resize_with(conn + 1, Conn::default);
        }
        assert!(!self.conns[conn].open, "the engine connects id {conn}, which is still open");
        self.conns[conn] = Conn { open: true, node, ..Conn::default() };
        if self.current == Some(conn) {
            // A new connection under a closed one's id: nothing arrived on it yet.
            self.current = None;
        }
        Connect::Ready
    }

    fn send(&mut self, conn: ConnId, data: &[u8]) -> Xfer {
        let c = self.conn(conn, "writes to");
        assert!(!c.idle, "the engine writes to idle connection {conn}");
        assert!(!c.ended, "the engine writes to connection {conn} after its end");
        assert!(!data.is_empty(), "the engine writes nothing");
        c.sent += data.len();
        // A request was written: what follows is new.
        c.waiting = false;
        if self.current != Some(conn) {
            // Another connection: the bytes that arrived on the last one stay there.
            self.current = Some(conn);
            self.pos = self.arrived;
            self.end_arrived = false;
        }
        Xfer::Done(data.len())
    }

    fn recv(&mut self, conn: ConnId, buf: &mut [u8]) -> Xfer {
        let (pos, arrived, limit, end, end_arrived) = (self.pos, self.arrived, self.limit, self.end, self.end_arrived);
        let (current, stale_below) = (self.current == Some(conn), self.stale_below);
        let c = self.conn(conn, "reads from");
        assert!(!buf.is_empty(), "the engine reads into an empty buffer (it would see an end)");
        assert!(!c.ended, "the engine reads from connection {conn} after its end");
        assert!(!c.waiting, "the engine reads from connection {conn} again after WouldBlock, with no readiness event");
        assert!(c.idle || c.sent > 0, "the engine reads from connection {conn} before writing a request");
        if current && pos < arrived {
            assert!(
                c.idle || pos >= stale_below,
                "the second check read byte {pos} of the first segment on connection {conn}: an answer sent before its request"
            );
            let n = (arrived - pos).min(buf.len());
            buf[..n].copy_from_slice(&self.data[pos..pos + n]);
            self.pos += n;
            return Xfer::Done(n);
        }
        let end = match c.peer_end {
            Some(e) => e,
            None if current && arrived == limit && end_arrived => end,
            None => End::Hang,
        };
        match end {
            End::Hang => {
                c.waiting = true;
                Xfer::WouldBlock
            }
            End::Eof => {
                c.ended = true;
                Xfer::Done(0)
            }
            End::Reset => {
                c.ended = true;
                Xfer::Failed
            }
        }
    }

    fn pending(&mut self, conn: ConnId) -> bool {
        let current = self.current == Some(conn);
        let readable = current && (self.pos < self.arrived || (self.end_arrived && self.arrived == self.limit));
        let c = self.conn(conn, "peeks at");
        c.peer_end.is_some() || readable
    }

    fn close(&mut self, conn: ConnId) {
        self.conn(conn, "closes").open = false;
    }

    fn set_idle(&mut self, conn: ConnId, idle: bool) {
        let c = self.conn(conn, "pools");
        assert_ne!(c.idle, idle, "set_idle({conn}, {idle}) twice");
        c.idle = idle;
    }

    fn arm(&mut self, slot: usize, at_ms: u64) {
        self.timers.insert(slot, at_ms);
    }

    fn disarm(&mut self, slot: usize) {
        self.timers.remove(&slot);
    }

    /// Only checks run here; reports (the one user of the flush) are not fuzzed.
    fn schedule_flush(&mut self) {}

    fn exiting(&self) -> bool {
        false
    }

    fn logs(&self, _: Level) -> bool {
        true
    }

    fn log(&mut self, _: Level, args: fmt::Arguments<'_>) {
        // Formatted (that code runs too), then dropped.
        self.scratch.clear();
        let _ = fmt::write(&mut self.scratch, args);
    }

    fn trace_begin(&mut self, _: usize) -> bool {
        true
    }

    fn traces(&self) -> bool {
        true
    }

    fn trace(&mut self, _: Option<usize>, args: fmt::Arguments<'_>) {
        self.log(Level::Debug, args);
    }
}

/// One check on `engine`, over the stream up to `limit`, then `end`: its result.
fn run_check(engine: &mut Engine<u32>, io: &mut FuzzIo, id: u32, limit: usize, end: End, setup: &Setup) -> CheckResult {
    io.limit = limit;
    io.end = end;
    io.end_arrived = false;
    let started = io.now;
    let budget = limit.saturating_sub(io.pos) + SPARE_ROUNDS;
    engine.start_check(id, 0, None, b"fuzz-correlation-id", b"{\"source_ip\":\"127.0.0.1\"}", LIMITS, io);
    let mut rounds = 0;
    while engine.live_calls() > 0 {
        rounds += 1;
        assert!(rounds <= budget, "check {id} still live after {rounds} rounds: a busy loop");
        io.now += setup.tick;
        // A timer that is due fires (nginx: it is no longer armed when its handler runs).
        if let Some((slot, _)) = io.next_timer().filter(|&(_, at)| at <= io.now) {
            io.timers.remove(&slot);
            engine.on_timer(slot, io);
            continue;
        }
        if let Some(conn) = io.owed_event.take().or_else(|| io.arrive()) {
            if io.conns[conn].open {
                io.ready(conn);
                engine.on_readable(conn, io);
            }
            continue;
        }
        // Nothing to read: only a timer can move the call on.
        let Some((_, at)) = io.next_timer() else {
            panic!("check {id} is live with no readable connection and no timer: it would never end");
        };
        io.now = io.now.max(at);
    }
    let mut results = Vec::new();
    while let Some(r) = engine.take_finished() {
        results.push(r);
    }
    assert!(
        results.len() == 1 && results[0].0 == id,
        "check {id} ended; delivered: {:?}",
        results.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    let result = results[0].1;
    assert!(io.timers.is_empty(), "timers armed after check {id} ended: {:?}", io.timers);
    assert!(result.elapsed_ms <= io.now - started, "elapsed {} ms in {} ms", result.elapsed_ms, io.now - started);
    if result.error() == AseError::None {
        assert!((100..=999).contains(&result.status), "the engine gave status {}", result.status);
    } else {
        assert_eq!(result.status, 0, "status {} with error {:?}", result.status, result.error());
    }
    for node in 0..io.nodes {
        let open: Vec<_> = (0..io.conns.len()).filter(|&c| io.conns[c].open && io.conns[c].node == node).collect();
        for &c in &open {
            assert!(
                io.conns[c].idle && !io.conns[c].ended,
                "connection {c} left open after check {id} (not pooled, or ended)"
            );
        }
        assert!(
            open.len() <= setup.keepalive,
            "{} connections to node {node} kept (keepalive {})",
            open.len(),
            setup.keepalive
        );
    }
    result
}

/// Both checks over `answer` (the first reads `answer[..split]`): their results.
pub fn exchange(setup: Setup, answer: &[u8], split: usize) -> [CheckResult; 2] {
    let split = split.min(answer.len());
    let policy =
        NodePolicy { backup: false, max_fails: setup.max_fails, fail_timeout_ms: 10_000, weight: 1, max_conns: 0 };
    let nodes = if setup.two_nodes { 2 } else { 1 };
    let specs = (0..nodes)
        .map(|i| NodeSpec {
            display: format!("http://127.0.0.{}:8000", i + 1),
            authority: format!("127.0.0.{}:8000", i + 1),
            policy: policy.clone(),
            active: true,
        })
        .collect();
    let mut engine: Engine<u32> = Engine::new(specs, Some(b"t0k3nt0k3nt0k3nt0k3nt0k3nt0k3n99"), setup.keepalive, 8);
    let mut io = FuzzIo {
        now: 1_000,
        nodes,
        data: answer.to_vec(),
        pos: 0,
        arrived: 0,
        limit: 0,
        end: End::Hang,
        end_arrived: false,
        current: None,
        stale_below: 0,
        owed_event: None,
        pieces: [setup.pieces[0].max(1), setup.pieces[1].max(1)],
        pieces_given: 0,
        conns: Vec::new(),
        timers: BTreeMap::new(),
        scratch: String::new(),
    };
    let first = run_check(&mut engine, &mut io, 1, split, setup.ends[0], &setup);
    // Between the checks: the rest of the first segment, and its end, arrive on the pooled
    // connection (the ASE sent them before the second request); the readiness event runs
    // now, or after the second check has started (the same turn of the event loop).
    let pooled = io.current.filter(|&c| io.conns[c].open && io.conns[c].idle && !io.conns[c].ended);
    match pooled {
        Some(conn) => {
            let more = io.arrived < split;
            io.arrived = split;
            let end = (io.end != End::Hang && !io.end_arrived).then_some(io.end);
            io.conns[conn].peer_end = end;
            if more || end.is_some() {
                if setup.announce {
                    io.ready(conn);
                    engine.on_readable(conn, &mut io);
                } else {
                    io.owed_event = Some(conn);
                }
            }
        }
        // No connection kept: what is left of the first segment is lost with its connection.
        None => {
            io.arrived = io.arrived.max(split);
            io.pos = io.arrived;
        }
    }
    io.stale_below = split;
    let second = run_check(&mut engine, &mut io, 2, answer.len(), setup.ends[1], &setup);
    engine.close_all(&mut io);
    assert!(io.conns.iter().all(|c| !c.open), "close_all left connections open");
    assert!(engine.take_finished().is_none(), "a result after both checks were delivered");
    [first, second]
}

/// A result as `Ok(status)` or `Err(error)`.
pub fn outcome(r: &CheckResult) -> Result<u16, AseError> {
    match r.error() {
        AseError::None => Ok(r.status),
        e => Err(e),
    }
}

/// What the request module decides for an outcome, checked against the protocol's table.
pub fn check_decision(outcome: Result<u16, AseError>, block_status: u16) {
    let result = match outcome {
        Ok(status) => CheckResult::new(status, AseError::None, 1),
        Err(error) => {
            assert_ne!(error, AseError::None);
            CheckResult::new(0, error, 1)
        }
    };
    for mode in [FailMode::Open, FailMode::Closed] {
        let (decision, _) = decide(&result, mode, block_status, 503);
        let failed = match mode {
            FailMode::Closed => Decision::Finalize(503, Verdict::FailClosed),
            _ => Decision::Continue(Verdict::FailOpen),
        };
        let expected = match outcome {
            Ok(200) | Ok(503) => Decision::Continue(Verdict::Allow),
            Ok(403) => Decision::Finalize(block_status, Verdict::Block),
            _ => failed,
        };
        assert_eq!(decision, expected, "{outcome:?} with {mode:?}");
    }
}

fn end_of(bits: u8) -> End {
    match bits & 3 {
        0 => End::Eof,
        2 => End::Reset,
        _ => End::Hang,
    }
}

/// The input's layout (6 bytes, then the answer; missing bytes read as 0):
/// - 0, 1: read piece sizes - 1 (pieces alternate between them);
/// - 2: bits 0-6 the block status, 400 + n % 200; bit 7: the readiness event of what
///   arrives between the checks runs only after the second check has started;
/// - 3: flags: bit 0 two nodes; bits 1-2 and 3-4 how the stream ends after the first and
///   the second check's bytes (0 EOF, 2 reset, 1 or 3 nothing more); bit 5 the clock
///   moves 1 ms per round; bit 6 `max_fails` 1 (else 0); bit 7 `keepalive` 0 (else 1);
/// - 4, 5: `split` (little-endian, modulo the answer's length + 1): the first check's bytes.
pub fn decode(data: &[u8]) -> (Setup, u16, usize, &[u8]) {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let flags = byte(3);
    let setup = Setup {
        pieces: [usize::from(byte(0)) + 1, usize::from(byte(1)) + 1],
        two_nodes: flags & 1 != 0,
        ends: [end_of(flags >> 1), end_of(flags >> 3)],
        tick: u64::from(flags >> 5 & 1),
        max_fails: u32::from(flags >> 6 & 1),
        keepalive: if flags & 0x80 != 0 { 0 } else { 1 },
        announce: byte(2) & 0x80 == 0,
    };
    let block_status = 400 + u16::from(byte(2) & 0x7f) % 200;
    let answer = data.get(6..).unwrap_or(&[]);
    let split = usize::from(u16::from_le_bytes([byte(4), byte(5)])) % (answer.len() + 1);
    (setup, block_status, split, answer)
}

pub fn check(data: &[u8]) {
    let (setup, block_status, split, answer) = decode(data);
    for r in exchange(setup, answer, split) {
        check_decision(outcome(&r), block_status);
    }
}
