//! Building the engine from its groups and nodes, and the nodes' comings and goings
//! (`resolve` addresses that join or drain).

use super::pool::PoolLimits;
use super::wire::NodeHeads;
use super::{Engine, Io};
use crate::counters::counters;
use crate::health::{Balance, NodePolicy, Nodes};

/// One `ase_server` as the engine needs it.
pub struct NodeSpec {
    /// The node's name in logs: `http://host:port`, with the address for a host name
    /// (`http://ase.example:8000 (127.0.0.1:8000)`; see `settings::Node::display`).
    pub display: String,
    /// The `Host` header.
    pub authority: String,
    pub policy: NodePolicy,
    /// In use from the start; a `resolve` server's slots wait for an address.
    pub active: bool,
}

/// One group of nodes (the http-level `ase_server` lines, or one `ase_upstream` block):
/// its own nodes, breaker and keep-alive pools, and its own token.
pub struct GroupSpec<'a> {
    /// The name in logs and on the status page (`default` for the `ase_server` lines).
    pub name: String,
    pub nodes: Vec<NodeSpec>,
    pub token: Option<&'a [u8]>,
    /// Idle connections kept per node of this group.
    pub keepalive: usize,
    /// How the group shares its calls among its nodes (`least_conn` in its block).
    pub balance: Balance,
}

impl<D> Engine<D> {
    /// One group (the http-level `ase_server` lines only).
    pub fn new(nodes: Vec<NodeSpec>, token: Option<&[u8]>, keepalive: usize, response_queue: usize) -> Self {
        let balance = Balance::RoundRobin;
        Engine::with_groups(
            vec![GroupSpec { name: "default".into(), nodes, token, keepalive, balance }],
            response_queue,
        )
    }

    /// Nodes in groups; group `g` of a call is `groups[g]`. Node indices run through the
    /// groups in order (the `Io`'s and the status page's node numbers).
    pub fn with_groups(groups: Vec<GroupSpec<'_>>, response_queue: usize) -> Self {
        let (mut heads, mut keepalive, mut names, mut policies, mut ranges) = (vec![], vec![], vec![], vec![], vec![]);
        let (mut group_names, mut inactive, mut balances) = (Vec::new(), Vec::new(), Vec::new());
        for g in groups {
            balances.push(g.balance);
            let start = policies.len();
            for n in g.nodes {
                heads.push(NodeHeads::new(&n.authority, g.token));
                keepalive.push(g.keepalive);
                names.push(n.display);
                policies.push(n.policy);
                if !n.active {
                    inactive.push(policies.len() - 1);
                }
            }
            ranges.push(start..policies.len());
            group_names.push(g.name);
        }
        let idle = names.iter().map(|_| Vec::new()).collect();
        let said_closes = vec![false; names.len()];
        let (said_stale, pool_limits) = (said_closes.clone(), vec![PoolLimits::default(); names.len()]);
        let mut nodes = Nodes::with_groups(policies, ranges);
        for i in inactive {
            nodes.set_active(i, false);
        }
        for (g, balance) in balances.into_iter().enumerate() {
            nodes.set_balance(g, balance, &names);
        }
        Engine {
            nodes,
            names,
            group_names,
            heads,
            keepalive,
            pool_limits,
            response_queue,
            reports_in_flight: 0,
            calls: Vec::new(),
            free_calls: Vec::new(),
            conns: Vec::new(),
            free_conns: Vec::new(),
            idle,
            finished: Vec::new(),
            pending_reports: Vec::new(),
            said_closes,
            local_said_at: None,
            said_stale,
            guards: Vec::new(),
        }
    }

    /// Group `g`'s keep-alive limits (the defaults until set).
    pub fn set_pool_limits(&mut self, g: usize, limits: PoolLimits) {
        let range = self.nodes.group(g);
        for l in self.pool_limits.get_mut(range).into_iter().flatten() {
            *l = limits;
        }
    }

    /// Whether node `node` takes calls (see `activate` and `drain`).
    pub fn node_active(&self, node: usize) -> bool {
        self.nodes.is_active(node)
    }

    /// A `resolve` server's new address took node slot `node` (named `display` now): calls
    /// may go to it, with fresh health.
    pub fn activate(&mut self, node: usize, display: String) {
        if let Some(name) = self.names.get_mut(node) {
            *name = display;
            self.nodes.set_active(node, true);
            if let Some(d) = counters().nodes.get(node) {
                d.down_since_ms.store(0, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// A `resolve` server's address vanished from the DNS: node `node` takes no new call;
    /// calls in flight finish on their connections, which then close; idle ones close now.
    pub fn drain(&mut self, node: usize, io: &mut impl Io) {
        if node >= self.names.len() {
            return;
        }
        self.nodes.set_active(node, false);
        while let Some(&conn) = self.idle[node].last() {
            self.close_conn(conn, io);
        }
    }

    /// Whether group `g`'s breaker is open (every node of it is down).
    pub fn breaker_open(&self, g: usize) -> bool {
        self.nodes.breaker_open(g)
    }
}
