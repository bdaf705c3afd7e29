//! The status page's JSON written by hand, brace by brace: the reference the serde view
//! structs (`json.rs`) are tested against, so that the page's format (fields, names, order,
//! values) is known not to depend on how it is written. Tests only.

use std::fmt::Write;

use ngx_ase_shared::abi::{AseError, Verdict};

use crate::counters::{get, STATUS_CODES};
use crate::status::json::{breaker, error_name, status_name, untracked, PageInput};

fn json_escape(s: &str) -> String {
    let mut out = Vec::new();
    ngx_ase_shared::json::write_str(&mut out, s.as_bytes());
    String::from_utf8_lossy(&out).into_owned()
}

pub fn to_json(p: &PageInput<'_>) -> String {
    let c = p.counters;
    let mut s = String::with_capacity(2048);
    let _ = write!(s, "{{\"scope\":\"{}\",", if p.shared { "all_workers" } else { "this_worker" });
    let _ = write!(s, "\"checks\":{},\"reports\":{},", get(&c.checks), get(&c.reports));
    s.push_str("\"ase_status\":{");
    let items: Vec<String> = STATUS_CODES
        .iter()
        .enumerate()
        .map(|(i, code)| format!("\"{}\":{}", status_name(*code), get(&c.status[i])))
        .collect();
    s.push_str(&items.join(","));
    s.push_str("},\"errors\":{");
    let items: Vec<String> =
        AseError::ALL.iter().skip(1).map(|e| format!("\"{}\":{}", e.name(), get(&c.errors[*e as usize]))).collect();
    s.push_str(&items.join(","));
    s.push_str("},\"verdicts\":{");
    let items: Vec<String> =
        Verdict::ALL.iter().map(|v| format!("\"{}\":{}", v.name(), get(&c.verdicts[*v as usize]))).collect();
    s.push_str(&items.join(","));
    s.push_str("},\"fail_open_by_cause\":{");
    let items: Vec<String> = AseError::ALL
        .iter()
        .map(|e| format!("\"{}\":{}", error_name(*e), get(&c.fail_open_by_cause[*e as usize])))
        .collect();
    s.push_str(&items.join(","));
    let _ = write!(
        s,
        "}},\"breaker\":\"{}\",\"breaker_trips\":{},\"blind_ms\":{},\"connections_new\":{},\"connections_reused\":{},\"connections_closed_by_ase\":{},\
         \"reports_sent\":{},\"reports_dropped_queue_full\":{},\"reports_dropped_unavailable\":{},\
         \"payload_truncated\":{},\"monitor_skipped\":{},\"identity_too_large\":{},\
         \"cache\":{{\"hits\":{},\"misses\":{},\"stale\":{},\"evictions\":{}}},\"nodes\":[",
        breaker(p.groups.first().is_some_and(|g| g.breaker_open)),
        get(&c.breaker_trips),
        c.groups.iter().map(|g| get(&g.blind_ms)).fold(0u64, u64::saturating_add),
        get(&c.connections_new),
        get(&c.connections_reused),
        get(&c.connections_closed_by_ase),
        get(&c.reports_sent),
        get(&c.reports_dropped_queue_full),
        get(&c.reports_dropped_unavailable),
        get(&c.payload_truncated),
        get(&c.monitor_skipped),
        get(&c.identity_too_large),
        get(&c.cache.hits),
        get(&c.cache.misses),
        get(&c.cache.stale),
        get(&c.cache.evictions)
    );
    for (i, n) in p.nodes.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "{{\"url\":{},\"address\":{},\"backup\":{},\"group\":{},",
            json_escape(n.url),
            json_escape(n.address),
            n.backup,
            json_escape(n.group)
        );
        let Some(st) = c.nodes.get(n.index) else {
            // Past the counters' MAX_NODES: the channel uses the node, the page has no numbers.
            s.push_str("\"state\":\"untracked\"}");
            continue;
        };
        let q = |x| st.quantile_ms(p.now_ms, x).map(|v| v.to_string()).unwrap_or_else(|| "null".into());
        let _ = write!(
            s,
            "\"state\":\"{}\",\"calls\":{},\"failures\":{},\"latency_ms\":{{\"p50\":{},\"p99\":{}}}}}",
            if get(&st.down_since_ms) != 0 { "down" } else { "up" },
            get(&st.calls),
            get(&st.failures),
            q(0.5),
            q(0.99)
        );
    }
    let _ = write!(s, "],\"nodes_untracked\":{},\"groups\":{{", untracked(p));
    for (i, g) in p.groups.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ =
            write!(s, "{}:{{\"breaker\":\"{}\",\"nodes\":{}", json_escape(g.name), breaker(g.breaker_open), g.nodes);
        let Some(st) = c.groups.get(i) else {
            // Past the counters' MAX_GROUPS: the channel uses the group, the page has no numbers.
            s.push_str(",\"state\":\"untracked\"}");
            continue;
        };
        let errors: Vec<String> = AseError::ALL
            .iter()
            .skip(1)
            .map(|e| format!("\"{}\":{}", e.name(), get(&st.errors[*e as usize])))
            .collect();
        let _ = write!(
            s,
            ",\"checks\":{},\"reports\":{},\"errors\":{{{}}},\"breaker_trips\":{},\"blind_ms\":{},\"reports_sent\":{},\"reports_dropped\":{},\"mirrored\":{},\"mirrored_sent\":{},\"mirrored_dropped\":{},\"slow_workers\":{},\"slow_entered\":{},\"slow_detached\":{}}}",
            get(&st.checks), get(&st.reports), errors.join(","), get(&st.breaker_trips), get(&st.blind_ms), get(&st.reports_sent), get(&st.reports_dropped),
            get(&st.mirrored), get(&st.mirrored_sent), get(&st.mirrored_dropped),
            get(&st.slow_workers), get(&st.slow_entered), get(&st.slow_detached)
        );
    }
    s.push_str("}}");
    s
}
