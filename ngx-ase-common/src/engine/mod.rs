//! The sideband channel's logic, in plain Rust over the `Io` trait: each call is a small
//! state machine driven by connection and timer events, as nginx's own upstream module
//! drives a proxied request. Nothing here blocks, allocates per call in the steady state
//! (call slots, their request buffers and the connections' read buffers are reused), or
//! touches nginx; `net/ngx_io.rs` runs it on the worker's event loop and the unit tests run it
//! over a scripted fake.
//!
//! The rules (README, "Node health"):
//! - A call tries nodes in order (backups only while every primary is down); the breaker
//!   answers at once when every node is down, and lets one check at a time probe a node
//!   whose down time has passed.
//! - A call has one deadline, `ase_timeout` from its start. A failover attempt does not
//!   start with less than `ase_connect_timeout` left.
//! - A node is charged with a failure only for what it did: refused, reset, a bad answer,
//!   a 5xx other than the ASE's own unknown-API 503, a connect that took longer than
//!   `ase_connect_timeout`, or no answer within a whole `ase_timeout` of its own. A timeout
//!   that came because earlier attempts used up the call's time is not the node's failure
//!   (`health::judge` is the whole rule).
//! - Only request checks change a node's health. Response reports go to nodes that are up,
//!   never probe, and never mark a node down or up.
//!
//! By job: `calls.rs` (call slots: start, finish, cancel, timers), `pool.rs` (connection
//! slots, the idle pool and its keep-alive limits), `exchange.rs` (connecting, writing a
//! request, reading its answer), `failover.rs` (the one place a failed attempt moves on or
//! ends, under the rule `health::judge`; the breaker), `setup.rs` (groups and nodes),
//! `notes.rs` (counters, log and trace lines).

pub mod answer;
mod calls;
mod exchange;
mod failover;
mod guard;
pub mod io;
mod mirror;
mod notes;
mod pool;
mod setup;
#[cfg(test)]
mod tests;
pub mod wire;

use ngx_ase_shared::abi::CheckResult;

pub use crate::health::Balance;
use crate::health::Nodes;
use calls::CallSlot;
pub use calls::{CallId, Limits};
pub use io::{ConnId, Connect, ConnectError, Io, Level, Xfer};
use pool::ConnSlot;
pub use pool::PoolLimits;
pub use setup::{GroupSpec, NodeSpec};
use wire::NodeHeads;

pub struct Engine<D> {
    nodes: Nodes,
    names: Vec<String>,
    group_names: Vec<String>,
    heads: Vec<NodeHeads>,
    /// Per node: idle connections kept (its group's `keepalive`).
    keepalive: Vec<usize>,
    /// Per node: its group's keep-alive limits (`set_pool_limits`).
    pool_limits: Vec<PoolLimits>,
    response_queue: usize,
    reports_in_flight: usize,
    calls: Vec<CallSlot<D>>,
    free_calls: Vec<usize>,
    conns: Vec<ConnSlot>,
    free_conns: Vec<ConnId>,
    /// Idle connections per node, most recently used last.
    idle: Vec<Vec<ConnId>>,
    /// Checks answered, for the caller to deliver outside the engine.
    finished: Vec<(D, CheckResult)>,
    /// Reports waiting for the end of this turn of the event loop (`flush`).
    pending_reports: Vec<CallId>,
    /// Per node: whether this worker already said that the node closes its connections.
    said_closes: Vec<bool>,
    /// When this worker last said that nginx itself had no connection to give.
    local_said_at: Option<u64>,
    /// Per node: whether this worker already said that a reused connection to it was dead.
    said_stale: Vec<bool>,
    /// Per group: its `ase_latency_guard`, if any (`guard.rs`).
    guards: Vec<Option<crate::latency_guard::LatencyGuard>>,
}

impl<D> Drop for Engine<D> {
    /// Each call's buffer holds a whole request, `ASE-Token` included: zeroed before the
    /// memory is freed (the worker exits, or a reload replaces the channel).
    fn drop(&mut self) {
        self.forget_guards();
        for c in &mut self.calls {
            crate::secret::zeroize_vec(&mut c.wire);
        }
    }
}
