//! Target `ase_answer`: arbitrary bytes as the ASE's answers, read by the REAL channel
//! engine (`ngx-ase-common/src/engine/`: the call state machine in `mod.rs`, the answer
//! parser `answer.rs`, the request bytes `wire.rs`, with `counters.rs` and `health.rs`),
//! compiled here from its own files (`src/lib.rs`) and driven through its `Io` trait by a
//! fake world instead of nginx. Each outcome then goes through
//! `ngx_ase_request::verdict::decide`, which must follow the protocol's table.
//!
//! The fake ([`FuzzIo`]): one or two nodes (`ase_server`s); a connect is ready at once;
//! every write is taken whole and recorded; reads hand out the answer bytes in pieces of
//! fuzzed sizes with `WouldBlock` in between (the driver then delivers a readiness event),
//! and when the bytes of the current check are used up, the stream ends as fuzzed: EOF
//! (`Done(0)`), reset (`Failed`) or nothing more (the call's timer ends it). The clock is
//! manual: it advances by a fuzzed tick per round, and jumps to the next armed timer when
//! nothing else can happen. The bytes are one stream shared by the connections (a failover
//! or reconnect reads on where the last connection stopped).
//!
//! Two checks run on one engine: the first over the answer's first `split` bytes, the
//! second over the rest, after the first ended (so the kept-alive connection, if the first
//! answer left one in the pool, carries the second: the reuse path; between the checks,
//! an idle connection with bytes or an end pending is readable, as a socket would be).
//!
//! What must hold (a panic otherwise): no panic in the engine; every started check is
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
    /// The last read gave a piece: the next one says `WouldBlock`.
    owes_block: bool,
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
    /// The next byte to hand out, and where the current check's bytes end.
    pos: usize,
    limit: usize,
    end: End,
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

    /// Whether a read on `conn` would give something (bytes, or the end).
    fn readable(&self, conn: ConnId) -> bool {
        let c = &self.conns[conn];
        c.open && !c.ended && (self.pos < self.limit || self.end != End::Hang)
    }

    fn next_readable(&self, idle: bool) -> Option<ConnId> {
        (0..self.conns.len()).find(|&c| self.readable(c) && (!idle || self.conns[c].idle))
    }

    fn next_timer(&self) -> Option<(usize, u64)> {
        self.timers.iter().map(|(&s, &at)| (s, at)).min_by_key(|&(s, at)| (at, s))
    }

    /// A readiness event for `conn`.
    fn ready(&mut self, conn: ConnId) {
        let c = &mut self.conns[conn];
        c.waiting = false;
        c.owes_block = false;
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
        c.owes_block = false;
        Xfer::Done(data.len())
    }

    fn recv(&mut self, conn: ConnId, buf: &mut [u8]) -> Xfer {
        let (pos, limit, end) = (self.pos, self.limit, self.end);
        let piece = self.pieces[self.pieces_given % 2];
        let c = self.conn(conn, "reads from");
        assert!(!buf.is_empty(), "the engine reads into an empty buffer (it would see an end)");
        assert!(!c.ended, "the engine reads from connection {conn} after its end");
        assert!(!c.waiting, "the engine reads from connection {conn} again after WouldBlock, with no readiness event");
        assert!(c.idle || c.sent > 0, "the engine reads from connection {conn} before writing a request");
        if c.owes_block {
            c.owes_block = false;
            c.waiting = true;
            return Xfer::WouldBlock;
        }
        if pos < limit {
            let n = piece.min(limit - pos).min(buf.len());
            c.owes_block = true;
            buf[..n].copy_from_slice(&self.data[pos..pos + n]);
            self.pos += n;
            self.pieces_given += 1;
            return Xfer::Done(n);
        }
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
    let started = io.now;
    let budget = limit.saturating_sub(io.pos) + SPARE_ROUNDS;
    engine.start_check(id, 0, b"fuzz-correlation-id", b"{\"source_ip\":\"127.0.0.1\"}", LIMITS, io);
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
        if let Some(conn) = io.next_readable(false) {
            io.ready(conn);
            engine.on_readable(conn, io);
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
    let policy = NodePolicy { backup: false, max_fails: setup.max_fails, fail_timeout_ms: 10_000 };
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
        limit: 0,
        end: End::Hang,
        pieces: [setup.pieces[0].max(1), setup.pieces[1].max(1)],
        pieces_given: 0,
        conns: Vec::new(),
        timers: BTreeMap::new(),
        scratch: String::new(),
    };
    let first = run_check(&mut engine, &mut io, 1, split, setup.ends[0], &setup);
    // Between the checks: a pooled connection with bytes or an end pending is readable.
    for _ in 0..io.conns.len() + 2 {
        let Some(conn) = io.next_readable(true) else { break };
        io.ready(conn);
        engine.on_readable(conn, &mut io);
    }
    assert!(io.next_readable(true).is_none(), "a readable idle connection stays in the pool");
    // The second check's bytes (a new connection does not see what the old one left).
    io.pos = io.pos.max(split);
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
        let (decision, _) = decide(&result, mode, block_status);
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
/// - 2: the block status, 400 + n % 200;
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
    };
    let block_status = 400 + u16::from(byte(2)) % 200;
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
