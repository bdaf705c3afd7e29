//! The status page's body: JSON (default, serde view structs of the counters) or Prometheus
//! text (written by hand: a line format serde has no writer for), from the counters and this
//! worker's view of the nodes. Safe Rust.

use std::fmt::Write;
use std::sync::atomic::AtomicU64;

use ngx_ase_shared::abi::{AseError, Verdict};
use serde::{Serialize, Serializer};

use crate::counters::{get, Counters, GroupStats, MAX_GROUPS, MAX_NODES, STATUS_CODES};

/// One node (one address of an `ase_server` line) as the page shows it.
pub struct NodeView<'a> {
    /// Its number in the channel (its counters' index). A `resolve` server's slots that have
    /// no address are not shown, so the numbers of the nodes listed may have gaps.
    pub index: usize,
    /// The `ase_server` URL; every address of a host name has the same one.
    pub url: &'a str,
    /// The address this node connects to (`127.0.0.1:8000`, `[::1]:8000`).
    pub address: &'a str,
    /// Its name in logs and the Prometheus `node` label: the URL, plus the address in
    /// parentheses for a host name (see `settings::Node::display`).
    pub name: &'a str,
    pub backup: bool,
    /// The group it belongs to (`default` for the `ase_server` lines).
    pub group: &'a str,
}

/// One group (the default one first, then the `ase_upstream` blocks, in order).
pub struct GroupPageView<'a> {
    pub name: &'a str,
    /// This worker's breaker for the group.
    pub breaker_open: bool,
    pub nodes: usize,
}

pub struct PageInput<'a> {
    pub counters: &'a Counters,
    pub nodes: Vec<NodeView<'a>>,
    /// The groups; the top-level `breaker` is the default group's (the first).
    pub groups: Vec<GroupPageView<'a>>,
    pub now_ms: u64,
    /// Whether the counters are the zone's (all workers) or this worker's.
    pub shared: bool,
}

pub(super) fn status_name(code: u16) -> String {
    if code == 0 {
        "other".to_string()
    } else {
        code.to_string()
    }
}

pub(super) fn error_name(e: AseError) -> &'static str {
    if e == AseError::None {
        "ase_status"
    } else {
        e.name()
    }
}

/// A JSON object whose keys come from the counters' tables, in the tables' order (a map
/// type would sort them, and the page's order is part of its format).
struct Ordered<K, V = u64>(Vec<(K, V)>);

impl<K: Serialize, V: Serialize> Serialize for Ordered<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// The ASE errors (not `none`) and a count for each.
fn errors_of(counts: &[AtomicU64]) -> Ordered<&'static str> {
    Ordered(AseError::ALL.iter().skip(1).map(|e| (e.name(), get(&counts[*e as usize]))).collect())
}

/// The page's JSON body; its fields, in their order, are the format users parse.
#[derive(Serialize)]
struct PageJson<'a> {
    scope: &'static str,
    checks: u64,
    reports: u64,
    ase_status: Ordered<String>,
    errors: Ordered<&'static str>,
    verdicts: Ordered<&'static str>,
    fail_open_by_cause: Ordered<&'static str>,
    breaker: &'static str,
    breaker_trips: u64,
    blind_ms: u64,
    connections_new: u64,
    connections_reused: u64,
    connections_closed_by_ase: u64,
    reports_sent: u64,
    reports_dropped_queue_full: u64,
    reports_dropped_unavailable: u64,
    payload_truncated: u64,
    monitor_skipped: u64,
    identity_too_large: u64,
    cache: CacheJson,
    nodes: Vec<NodeJson<'a>>,
    nodes_untracked: usize,
    /// By name, in configuration order.
    groups: Ordered<&'a str, GroupJson>,
}

#[derive(Serialize)]
struct CacheJson {
    hits: u64,
    misses: u64,
    stale: u64,
    evictions: u64,
}

#[derive(Serialize)]
struct NodeJson<'a> {
    url: &'a str,
    address: &'a str,
    backup: bool,
    group: &'a str,
    /// `up`, `down`, or `untracked` past the counters' `MAX_NODES` (no numbers then).
    state: &'static str,
    #[serde(flatten)]
    stats: Option<NodeStatsJson>,
}

#[derive(Serialize)]
struct NodeStatsJson {
    calls: u64,
    failures: u64,
    latency_ms: LatencyJson,
}

/// `null` where the last minute has no calls.
#[derive(Serialize)]
struct LatencyJson {
    p50: Option<u64>,
    p99: Option<u64>,
}

#[derive(Serialize)]
struct GroupJson {
    breaker: &'static str,
    nodes: usize,
    /// Only `untracked`, past the counters' `MAX_GROUPS` (no numbers then).
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'static str>,
    #[serde(flatten)]
    stats: Option<GroupStatsJson>,
}

#[derive(Serialize)]
struct GroupStatsJson {
    checks: u64,
    reports: u64,
    errors: Ordered<&'static str>,
    breaker_trips: u64,
    blind_ms: u64,
    reports_sent: u64,
    reports_dropped: u64,
    mirrored: u64,
    mirrored_sent: u64,
    mirrored_dropped: u64,
    slow_workers: u64,
    slow_entered: u64,
    slow_detached: u64,
}

fn node_json<'a>(p: &PageInput<'a>, n: &NodeView<'a>) -> NodeJson<'a> {
    let st = p.counters.nodes.get(n.index);
    NodeJson {
        url: n.url,
        address: n.address,
        backup: n.backup,
        group: n.group,
        state: match st {
            None => "untracked",
            Some(st) if get(&st.down_since_ms) != 0 => "down",
            Some(_) => "up",
        },
        stats: st.map(|st| NodeStatsJson {
            calls: get(&st.calls),
            failures: get(&st.failures),
            latency_ms: LatencyJson { p50: st.quantile_ms(p.now_ms, 0.5), p99: st.quantile_ms(p.now_ms, 0.99) },
        }),
    }
}

fn group_json(g: &GroupPageView<'_>, st: Option<&GroupStats>) -> GroupJson {
    GroupJson {
        breaker: breaker(g.breaker_open),
        nodes: g.nodes,
        state: st.is_none().then_some("untracked"),
        stats: st.map(|st| GroupStatsJson {
            checks: get(&st.checks),
            reports: get(&st.reports),
            errors: errors_of(&st.errors),
            breaker_trips: get(&st.breaker_trips),
            blind_ms: get(&st.blind_ms),
            reports_sent: get(&st.reports_sent),
            reports_dropped: get(&st.reports_dropped),
            mirrored: get(&st.mirrored),
            mirrored_sent: get(&st.mirrored_sent),
            mirrored_dropped: get(&st.mirrored_dropped),
            slow_workers: get(&st.slow_workers),
            slow_entered: get(&st.slow_entered),
            slow_detached: get(&st.slow_detached),
        }),
    }
}

/// One of a group's counters, for the families written in a loop.
type GroupCounter = fn(&GroupStats) -> &AtomicU64;

pub fn to_json(p: &PageInput<'_>) -> String {
    let c = p.counters;
    let page = PageJson {
        scope: if p.shared { "all_workers" } else { "this_worker" },
        checks: get(&c.checks),
        reports: get(&c.reports),
        ase_status: Ordered(
            STATUS_CODES.iter().enumerate().map(|(i, code)| (status_name(*code), get(&c.status[i]))).collect(),
        ),
        errors: errors_of(&c.errors),
        verdicts: Ordered(Verdict::ALL.iter().map(|v| (v.name(), get(&c.verdicts[*v as usize]))).collect()),
        fail_open_by_cause: Ordered(
            AseError::ALL.iter().map(|e| (error_name(*e), get(&c.fail_open_by_cause[*e as usize]))).collect(),
        ),
        breaker: breaker(p.groups.first().is_some_and(|g| g.breaker_open)),
        breaker_trips: get(&c.breaker_trips),
        blind_ms: c.groups.iter().map(|g| get(&g.blind_ms)).fold(0u64, u64::saturating_add),
        connections_new: get(&c.connections_new),
        connections_reused: get(&c.connections_reused),
        connections_closed_by_ase: get(&c.connections_closed_by_ase),
        reports_sent: get(&c.reports_sent),
        reports_dropped_queue_full: get(&c.reports_dropped_queue_full),
        reports_dropped_unavailable: get(&c.reports_dropped_unavailable),
        payload_truncated: get(&c.payload_truncated),
        monitor_skipped: get(&c.monitor_skipped),
        identity_too_large: get(&c.identity_too_large),
        cache: CacheJson {
            hits: get(&c.cache.hits),
            misses: get(&c.cache.misses),
            stale: get(&c.cache.stale),
            evictions: get(&c.cache.evictions),
        },
        nodes: p.nodes.iter().map(|n| node_json(p, n)).collect(),
        nodes_untracked: untracked(p),
        groups: Ordered(p.groups.iter().enumerate().map(|(i, g)| (g.name, group_json(g, c.groups.get(i)))).collect()),
    };
    let mut out = Vec::with_capacity(2048);
    // Writing plain structs of numbers and strings into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, &page);
    String::from_utf8(out).unwrap_or_default()
}

pub(super) fn breaker(open: bool) -> &'static str {
    if open {
        "open"
    } else {
        "closed"
    }
}

/// Nodes past the first `MAX_NODES`, for which the page keeps no statistics.
pub(super) fn untracked(p: &PageInput<'_>) -> usize {
    p.nodes.iter().filter(|n| n.index >= MAX_NODES).count()
}

/// The nodes with statistics, and their counters.
fn tracked<'a, 'b>(p: &'a PageInput<'b>) -> impl Iterator<Item = (&'a NodeView<'b>, &'a crate::counters::NodeStats)> {
    p.nodes.iter().filter_map(|n| p.counters.nodes.get(n.index).map(|st| (n, st)))
}

/// Prometheus text exposition, named like nginx-prometheus-exporter's metrics
/// (`nginx_<module>_<what>_<unit>`, counters ending in `_total`).
pub fn to_prometheus(p: &PageInput<'_>) -> String {
    let c = p.counters;
    let mut s = String::with_capacity(4096);
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, u64)>| {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(s, "{name}{labels} {v}");
        }
    };
    let one = |v: u64| vec![(String::new(), v)];
    family("nginx_ase_checks_total", "counter", "Request checks started (POST /ase/request).", one(get(&c.checks)));
    family(
        "nginx_ase_reports_total",
        "counter",
        "Response reports offered (POST /ase/response).",
        one(get(&c.reports)),
    );
    family(
        "nginx_ase_responses_total",
        "counter",
        "ASE answers by status.",
        STATUS_CODES
            .iter()
            .enumerate()
            .map(|(i, code)| (format!("{{status=\"{}\"}}", status_name(*code)), get(&c.status[i])))
            .collect(),
    );
    family(
        "nginx_ase_errors_total",
        "counter",
        "Sideband calls that got no usable answer, by cause.",
        AseError::ALL
            .iter()
            .skip(1)
            .map(|e| (format!("{{cause=\"{}\"}}", e.name()), get(&c.errors[*e as usize])))
            .collect(),
    );
    family(
        "nginx_ase_verdicts_total",
        "counter",
        "Request verdicts.",
        Verdict::ALL.iter().map(|v| (format!("{{verdict=\"{}\"}}", v.name()), get(&c.verdicts[*v as usize]))).collect(),
    );
    family(
        "nginx_ase_fail_open_total",
        "counter",
        "Requests let through (or refused, in fail-closed mode) because of an ASE error, by cause.",
        AseError::ALL
            .iter()
            .map(|e| (format!("{{cause=\"{}\"}}", error_name(*e)), get(&c.fail_open_by_cause[*e as usize])))
            .collect(),
    );
    family(
        "nginx_ase_breaker_trips_total",
        "counter",
        "Times every ASE node was found down.",
        one(get(&c.breaker_trips)),
    );
    let group_label = |g: &str| format!("group=\"{}\"", g.replace('\\', "\\\\").replace('"', "\\\""));
    family(
        "nginx_ase_breaker_open",
        "gauge",
        "1 while this worker's circuit breaker for the group is open.",
        p.groups.iter().map(|g| (format!("{{{}}}", group_label(g.name)), g.breaker_open as u64)).collect(),
    );
    family(
        "nginx_ase_connections_total",
        "counter",
        "Sideband connections used, new or reused from the keep-alive pool.",
        vec![
            ("{kind=\"new\"}".into(), get(&c.connections_new)),
            ("{kind=\"reused\"}".into(), get(&c.connections_reused)),
        ],
    );
    family(
        "nginx_ase_connections_closed_by_ase_total",
        "counter",
        "ASE answers that said Connection: close (enable_sideband_keepalive off on the ASE).",
        one(get(&c.connections_closed_by_ase)),
    );
    family("nginx_ase_reports_sent_total", "counter", "Response reports the ASE answered.", one(get(&c.reports_sent)));
    family(
        "nginx_ase_reports_dropped_total",
        "counter",
        "Response reports dropped, by reason.",
        vec![
            ("{reason=\"queue_full\"}".into(), get(&c.reports_dropped_queue_full)),
            ("{reason=\"unavailable\"}".into(), get(&c.reports_dropped_unavailable)),
        ],
    );
    family(
        "nginx_ase_payload_truncated_total",
        "counter",
        "Request checks whose metadata was larger than ase_request_max_size and was sent cut short.",
        one(get(&c.payload_truncated)),
    );
    family(
        "nginx_ase_monitor_skipped_total",
        "counter",
        "Monitored requests whose metadata was not sent: the worker had its most monitored checks in flight.",
        one(get(&c.monitor_skipped)),
    );
    family(
        "nginx_ase_identity_too_large_total",
        "counter",
        "Request checks not sent: the client's identity did not fit in ase_request_max_size (the fail mode applied).",
        one(get(&c.identity_too_large)),
    );
    for (name, help, value) in [
        ("nginx_ase_cache_hits_total", "Requests decided at once by a cached verdict (ase_cache).", &c.cache.hits),
        ("nginx_ase_cache_misses_total", "Requests with ase_cache that waited for the ASE.", &c.cache.misses),
        (
            "nginx_ase_cache_stale_total",
            "ASE errors decided by a cached verdict (ase_cache_use_stale).",
            &c.cache.stale,
        ),
        ("nginx_ase_cache_evictions_total", "Cached verdicts evicted from a full ase_cache_zone.", &c.cache.evictions),
    ] {
        family(name, "counter", help, one(get(value)));
    }
    let node_label = |n: &NodeView<'_>| {
        format!("node=\"{}\",{}", n.name.replace('\\', "\\\\").replace('"', "\\\""), group_label(n.group))
    };
    family(
        "nginx_ase_node_up",
        "gauge",
        "1 when the ASE node (one address of an ase_server) is up.",
        tracked(p).map(|(n, st)| (format!("{{{}}}", node_label(n)), (get(&st.down_since_ms) == 0) as u64)).collect(),
    );
    family(
        "nginx_ase_node_calls_total",
        "counter",
        "Sideband calls per ASE node.",
        tracked(p).map(|(n, st)| (format!("{{{}}}", node_label(n)), get(&st.calls))).collect(),
    );
    family(
        "nginx_ase_node_failures_total",
        "counter",
        "Failed sideband calls per ASE node.",
        tracked(p).map(|(n, st)| (format!("{{{}}}", node_label(n)), get(&st.failures))).collect(),
    );
    family(
        "nginx_ase_nodes_untracked",
        "gauge",
        &format!("ASE node addresses past the first {MAX_NODES}, which have no per-node metrics here."),
        one(untracked(p) as u64),
    );
    let tracked_groups = || p.groups.iter().enumerate().take(MAX_GROUPS);
    let per_group = |f: &dyn Fn(&crate::counters::GroupStats) -> u64| -> Vec<(String, u64)> {
        tracked_groups().map(|(i, g)| (format!("{{{}}}", group_label(g.name)), f(&c.groups[i]))).collect()
    };
    family(
        "nginx_ase_group_checks_total",
        "counter",
        "Request checks started, per ASE group.",
        per_group(&|g| get(&g.checks)),
    );
    family(
        "nginx_ase_group_reports_total",
        "counter",
        "Response reports offered, per ASE group.",
        per_group(&|g| get(&g.reports)),
    );
    family(
        "nginx_ase_group_errors_total",
        "counter",
        "Sideband calls that got no usable answer, per ASE group, by cause.",
        tracked_groups()
            .flat_map(|(i, g)| {
                AseError::ALL.iter().skip(1).map(move |e| {
                    (
                        format!("{{{},cause=\"{}\"}}", group_label(g.name), e.name()),
                        get(&c.groups[i].errors[*e as usize]),
                    )
                })
            })
            .collect(),
    );
    family(
        "nginx_ase_group_breaker_trips_total",
        "counter",
        "Times every ASE node of the group was found down.",
        per_group(&|g| get(&g.breaker_trips)),
    );
    family(
        "nginx_ase_group_blind_ms_total",
        "counter",
        "Milliseconds the group's circuit breaker was open: every ASE node down, checks not asked.",
        per_group(&|g| get(&g.blind_ms)),
    );
    family(
        "nginx_ase_group_reports_sent_total",
        "counter",
        "Response reports the ASE answered, per ASE group.",
        per_group(&|g| get(&g.reports_sent)),
    );
    family(
        "nginx_ase_group_reports_dropped_total",
        "counter",
        "Response reports dropped, per ASE group.",
        per_group(&|g| get(&g.reports_dropped)),
    );
    let later: [(&str, &str, &str, GroupCounter); 6] = [
        ("mirrored_total", "counter", "Checks and reports copied to the group by ase_mirror.", |g| &g.mirrored),
        ("mirrored_sent_total", "counter", "ase_mirror copies the group answered.", |g| &g.mirrored_sent),
        (
            "mirrored_dropped_total",
            "counter",
            "ase_mirror copies not sent: report queue full or every node down.",
            |g| &g.mirrored_dropped,
        ),
        (
            "slow_workers",
            "gauge",
            "Workers that find the group's checks slow now (ase_latency_guard) and do not wait for them.",
            |g| &g.slow_workers,
        ),
        ("slow_entered_total", "counter", "Times a worker found the group's checks slow.", |g| &g.slow_entered),
        ("slow_detached_total", "counter", "Checks not waited for because the group's checks were slow.", |g| {
            &g.slow_detached
        }),
    ];
    for (name, kind, help, counter) in later {
        family(&format!("nginx_ase_group_{name}"), kind, help, per_group(&|g| get(counter(g))));
    }
    let mut lat = Vec::new();
    for (n, st) in tracked(p) {
        for q in [0.5, 0.99] {
            if let Some(ms) = st.quantile_ms(p.now_ms, q) {
                lat.push((format!("{{{},quantile=\"{}\"}}", node_label(n), q), ms));
            }
        }
    }
    let _ = writeln!(s, "# HELP nginx_ase_node_latency_milliseconds Sideband call latency per node over the last minute (histogram bucket bounds).\n# TYPE nginx_ase_node_latency_milliseconds gauge");
    for (labels, v) in lat {
        let _ = writeln!(s, "nginx_ase_node_latency_milliseconds{labels} {v}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::bump;

    fn page(c: &Counters) -> PageInput<'_> {
        PageInput {
            counters: c,
            nodes: vec![NodeView {
                index: 0,
                url: "http://a:1",
                address: "10.0.0.1:1",
                name: "http://a:1 (10.0.0.1:1)",
                backup: false,
                group: "default",
            }],
            groups: vec![GroupPageView { name: "default", breaker_open: false, nodes: 1 }],
            now_ms: 5_000,
            shared: true,
        }
    }

    fn view<'a>(url: &'a str, address: &'a str, name: &'a str) -> NodeView<'a> {
        NodeView { index: 0, url, address, name, backup: false, group: "default" }
    }

    /// Counters with every field different, two groups (one past the tracked ones) and
    /// nodes up, down, untracked and named with characters JSON escapes.
    fn busy_page(c: &Counters) -> PageInput<'_> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut n = 1;
        let mut set = |a: &AtomicU64| {
            a.store(n, Relaxed);
            n += 7;
        };
        for a in [&c.checks, &c.reports, &c.breaker_trips, &c.connections_new, &c.connections_reused] {
            set(a);
        }
        for a in [&c.connections_closed_by_ase, &c.reports_sent, &c.reports_dropped_queue_full] {
            set(a);
        }
        for a in [&c.reports_dropped_unavailable, &c.payload_truncated, &c.monitor_skipped, &c.identity_too_large] {
            set(a);
        }
        for a in [&c.cache.hits, &c.cache.misses, &c.cache.stale, &c.cache.evictions] {
            set(a);
        }
        c.status.iter().chain(&c.errors).chain(&c.verdicts).chain(&c.fail_open_by_cause).for_each(&mut set);
        for g in &c.groups[..2] {
            for a in
                [&g.checks, &g.reports, &g.breaker_trips, &g.blind_ms, &g.reports_sent, &g.reports_dropped, &g.mirrored]
            {
                set(a);
            }
            g.errors.iter().for_each(&mut set);
        }
        c.nodes[0].record(4_000, 3, false);
        c.nodes[0].record(4_500, 250, true);
        c.nodes[1].down_since_ms.store(4_200, Relaxed);
        set(&c.nodes[1].failures);
        let mut p = page(c);
        p.nodes.push(NodeView { index: 1, backup: true, group: "eu \"west\"", ..view("http://b:2", "[::1]:2", "b") });
        p.nodes.push(NodeView { index: MAX_NODES, ..view("http://c:3", "10.0.0.3:3", "c") });
        p.groups.push(GroupPageView { name: "eu \"west\"", breaker_open: true, nodes: 1 });
        p.groups.extend((2..=MAX_GROUPS).map(|_| GroupPageView { name: "more", breaker_open: false, nodes: 0 }));
        p
    }

    #[test]
    fn serde_writes_the_same_bytes_as_the_hand_written_json() {
        let c = Counters::new();
        let p = busy_page(&c);
        let by_hand = crate::status::json_by_hand::to_json(&p);
        assert!(by_hand.contains("\"state\":\"untracked\"}}"), "a group past MAX_GROUPS is shown: {by_hand}");
        assert_eq!(to_json(&p), by_hand);
        let empty = Counters::new();
        let mut quiet = page(&empty);
        quiet.shared = false;
        assert_eq!(to_json(&quiet), crate::status::json_by_hand::to_json(&quiet));
    }

    #[test]
    fn names_with_control_characters_are_the_same_json() {
        let c = Counters::new();
        let mut p = page(&c);
        p.nodes[0].url = "http://a:1/\u{1}\u{8}\u{c}\u{7f}\t\n";
        p.groups[0].name = "tab\there";
        let parse = |s: &str| serde_json::from_str::<serde_json::Value>(s).expect("valid JSON");
        assert_eq!(parse(&to_json(&p)), parse(&crate::status::json_by_hand::to_json(&p)));
    }

    #[test]
    fn every_address_of_a_name_is_its_own_node() {
        let c = Counters::new();
        c.nodes[0].down_since_ms.store(4_000, std::sync::atomic::Ordering::Relaxed);
        bump(&c.nodes[0].failures);
        bump(&c.nodes[1].calls);
        let mut p = page(&c);
        p.nodes = vec![
            view("http://localhost:1", "[::1]:1", "http://localhost:1 ([::1]:1)"),
            NodeView { index: 1, ..view("http://localhost:1", "127.0.0.1:1", "http://localhost:1 (127.0.0.1:1)") },
        ];
        let v: serde_json::Value = serde_json::from_str(&to_json(&p)).expect("valid JSON");
        assert_eq!(v["nodes"][0]["url"], "http://localhost:1");
        assert_eq!(
            (&v["nodes"][0]["address"], &v["nodes"][0]["state"], &v["nodes"][0]["failures"]),
            (&serde_json::json!("[::1]:1"), &serde_json::json!("down"), &serde_json::json!(1))
        );
        assert_eq!(
            (&v["nodes"][1]["address"], &v["nodes"][1]["state"], &v["nodes"][1]["calls"]),
            (&serde_json::json!("127.0.0.1:1"), &serde_json::json!("up"), &serde_json::json!(1))
        );
        assert_eq!(v["nodes_untracked"], 0);
        let text = to_prometheus(&p);
        assert!(
            text.contains("nginx_ase_node_up{node=\"http://localhost:1 ([::1]:1)\",group=\"default\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("nginx_ase_node_up{node=\"http://localhost:1 (127.0.0.1:1)\",group=\"default\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn nodes_past_the_tracked_ones_are_listed_as_untracked() {
        let c = Counters::new();
        let addrs: Vec<String> = (0..MAX_NODES + 2).map(|i| format!("10.0.0.{i}:1")).collect();
        let mut p = page(&c);
        p.nodes = addrs.iter().enumerate().map(|(i, a)| NodeView { index: i, ..view("http://many:1", a, a) }).collect();
        let v: serde_json::Value = serde_json::from_str(&to_json(&p)).expect("valid JSON");
        let nodes = v["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), MAX_NODES + 2);
        assert_eq!(nodes[MAX_NODES - 1]["state"], "up");
        assert_eq!(nodes[MAX_NODES]["state"], "untracked");
        assert_eq!(nodes[MAX_NODES + 1]["address"], addrs[MAX_NODES + 1].as_str());
        assert!(nodes[MAX_NODES].get("calls").is_none());
        assert_eq!(v["nodes_untracked"], 2);
        let text = to_prometheus(&p);
        assert!(text.contains("nginx_ase_nodes_untracked 2\n"), "{text}");
        assert_eq!(text.matches("nginx_ase_node_up{").count(), MAX_NODES);
    }

    #[test]
    fn json_parses_and_counts() {
        let c = Counters::new();
        bump(&c.checks);
        bump(&c.payload_truncated);
        bump(&c.status[crate::counters::status_slot(403)]);
        c.nodes[0].record(5_000, 3, false);
        let v: serde_json::Value = serde_json::from_str(&to_json(&page(&c))).expect("valid JSON");
        assert_eq!(v["checks"], 1);
        assert_eq!(v["payload_truncated"], 1);
        assert_eq!(v["ase_status"]["403"], 1);
        assert_eq!(v["nodes"][0]["url"], "http://a:1");
        assert_eq!(v["nodes"][0]["address"], "10.0.0.1:1");
        assert_eq!(v["nodes"][0]["latency_ms"]["p50"], 3);
        assert_eq!(v["scope"], "all_workers");
    }

    #[test]
    fn prometheus_lines_are_well_formed() {
        let c = Counters::new();
        bump(&c.verdicts[Verdict::Block as usize]);
        let text = to_prometheus(&page(&c));
        assert!(text.contains("nginx_ase_verdicts_total{verdict=\"block\"} 1\n"), "{text}");
        assert!(text.contains("nginx_ase_node_up{node=\"http://a:1 (10.0.0.1:1)\",group=\"default\"} 1\n"), "{text}");
        assert!(
            text.contains("# TYPE nginx_ase_payload_truncated_total counter\nnginx_ase_payload_truncated_total 0\n"),
            "{text}"
        );
        assert!(text.contains("nginx_ase_nodes_untracked 0\n"), "{text}");
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').expect("name and value");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn groups_have_their_own_section_and_label() {
        let c = Counters::new();
        bump(&c.groups[1].checks);
        bump(&c.groups[1].breaker_trips);
        bump(&c.groups[1].errors[AseError::Refused as usize]);
        bump(&c.checks);
        let mut p = page(&c);
        p.nodes.push(NodeView {
            index: 1,
            url: "http://b:1",
            address: "10.0.0.2:1",
            name: "http://b:1",
            backup: false,
            group: "eu",
        });
        p.groups.push(GroupPageView { name: "eu", breaker_open: true, nodes: 1 });
        let v: serde_json::Value = serde_json::from_str(&to_json(&p)).expect("valid JSON");
        assert_eq!(v["breaker"], "closed", "the top-level breaker is the default group's");
        assert_eq!(
            (&v["nodes"][0]["group"], &v["nodes"][1]["group"]),
            (&serde_json::json!("default"), &serde_json::json!("eu"))
        );
        assert_eq!(v["groups"]["eu"]["breaker"], "open");
        assert_eq!(v["groups"]["eu"]["checks"], 1);
        assert_eq!(v["groups"]["eu"]["breaker_trips"], 1);
        assert_eq!(v["groups"]["eu"]["errors"]["refused"], 1);
        assert_eq!(v["groups"]["eu"]["nodes"], 1);
        assert_eq!(v["groups"]["default"]["checks"], 0);
        assert_eq!(v["checks"], 1, "the totals are the channel's");
        let text = to_prometheus(&p);
        assert!(text.contains("nginx_ase_breaker_open{group=\"eu\"} 1\n"), "{text}");
        assert!(text.contains("nginx_ase_breaker_open{group=\"default\"} 0\n"), "{text}");
        assert!(text.contains("nginx_ase_node_up{node=\"http://b:1\",group=\"eu\"} 1\n"), "{text}");
        assert!(text.contains("nginx_ase_group_checks_total{group=\"eu\"} 1\n"), "{text}");
        assert!(text.contains("nginx_ase_group_errors_total{group=\"eu\",cause=\"refused\"} 1\n"), "{text}");
    }

    #[test]
    fn nodes_are_counted_by_their_channel_number() {
        let c = Counters::new();
        bump(&c.nodes[5].calls);
        let mut p = page(&c);
        // A resolve server's slots 0..5 have no address: only slot 5 is listed.
        p.nodes = vec![NodeView {
            index: 5,
            ..view("http://ase.example:1", "10.0.0.7:1", "http://ase.example:1 (10.0.0.7:1)")
        }];
        let v: serde_json::Value = serde_json::from_str(&to_json(&p)).expect("valid JSON");
        assert_eq!(v["nodes"][0]["calls"], 1);
        assert!(to_prometheus(&p)
            .contains("nginx_ase_node_calls_total{node=\"http://ase.example:1 (10.0.0.7:1)\",group=\"default\"} 1\n"));
    }
}
