//! `hash KEY [consistent];` in an `ase_upstream` block, against three real doubles: one
//! client's checks (and their reports) meet one node, clients spread over the nodes, and a
//! node that goes down moves only its own clients, whose checks are still answered.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ngx_ase_tests::{client, wait_for, AseDouble, Backend, Nginx};

/// nginx in front of `backend` with group `h` of `doubles` balanced by `balance`.
fn start(doubles: &[AseDouble], backend: &Backend, balance: &str) -> Nginx {
    Nginx::start(&http_block(doubles.iter(), backend, balance))
}

/// The http block of `start` (`{port}` left for the harness).
fn http_block<'a>(doubles: impl Iterator<Item = &'a AseDouble>, backend: &Backend, balance: &str) -> String {
    let servers: String = doubles.map(|d| format!("server {} max_fails=1 fail_timeout=60s; ", d.url())).collect();
    format!(
        r#"
    ase_upstream h {{ {balance} {servers} }}
    ase_request on;
    ase_response on;
    ase_timeout 2s;
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ ase_pass h; proxy_pass http://{be}; }}
    }}
"#,
        be = backend.addr()
    )
}

/// One request of client `k` (`X-Client: client-k`; no header for `None`); its status.
fn call(n: &Nginx, k: Option<usize>, i: usize) -> u16 {
    let who = k.map_or("anon".to_string(), |k| k.to_string());
    let mut req = client().get(n.url(&format!("/c/{who}/{i}")));
    if let Some(k) = k {
        req = req.header("X-Client", format!("client-{k}"));
    }
    req.send().expect("request").status().as_u16()
}

/// Per client: the nodes (indices of `doubles`) its checks were recorded on; a stopped
/// double (`stopped`) is not asked.
fn nodes_of_clients(doubles: &[AseDouble], stopped: Option<usize>) -> BTreeMap<String, BTreeSet<usize>> {
    let mut seen: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for (node, d) in doubles.iter().enumerate().filter(|&(i, _)| Some(i) != stopped) {
        for r in d.records_of("request") {
            let url = r["body"]["url"].as_str().unwrap_or_default().to_string();
            let who = url.split('/').nth(2).unwrap_or_default().to_string();
            seen.entry(who).or_default().insert(node);
        }
    }
    seen
}

/// One request of each of `clients` clients; the node each one's check went to.
fn first_round(n: &Nginx, doubles: &[AseDouble], clients: usize) -> BTreeMap<String, usize> {
    for k in 0..clients {
        assert_eq!(call(n, Some(k), 0), 200);
    }
    let home: BTreeMap<String, usize> =
        nodes_of_clients(doubles, None).into_iter().filter_map(|(who, nodes)| Some((who, *nodes.first()?))).collect();
    assert_eq!(home.len(), clients, "{home:?}");
    home
}

/// With `hash $http_x_client`, plain and `consistent`: each client's checks land on one
/// node, the clients spread over more than one, and every report goes to the node that
/// had its check; a request without the header (an empty key) goes round robin.
#[test]
fn one_clients_checks_and_reports_meet_one_node() {
    let backend = Backend::start();
    for balance in ["hash $http_x_client;", "hash $http_x_client consistent;"] {
        let doubles: Vec<AseDouble> = (0..3).map(|_| AseDouble::start(&["--keepalive"])).collect();
        let n = start(&doubles, &backend, balance);
        let (clients, rounds) = (24, 3);
        for i in 0..rounds {
            for k in 0..clients {
                assert_eq!(call(&n, Some(k), i), 200);
            }
        }
        let seen = nodes_of_clients(&doubles, None);
        assert_eq!(seen.len(), clients, "{balance}: {seen:?}");
        for (who, nodes) in &seen {
            assert_eq!(nodes.len(), 1, "{balance}: client {who} met nodes {nodes:?}");
        }
        let used: BTreeSet<usize> = seen.values().flatten().copied().collect();
        assert!(used.len() > 1, "{balance}: every client on one node");
        // The reports are queued: wait for all of them, then match them to their checks.
        let total = clients * rounds;
        wait_for("every report at the doubles", Duration::from_secs(20), || {
            (doubles.iter().map(|d| d.records_of("response").len()).sum::<usize>() >= total).then_some(())
        });
        let mut check_node = BTreeMap::new();
        for (node, d) in doubles.iter().enumerate() {
            for r in d.records_of("request") {
                check_node.insert(r["correlation_id"].as_str().expect("cid").to_string(), node);
            }
        }
        for (node, d) in doubles.iter().enumerate() {
            for r in d.records_of("response") {
                let cid = r["correlation_id"].as_str().expect("cid");
                assert_eq!(check_node.get(cid), Some(&node), "{balance}: report {cid} went elsewhere than its check");
            }
        }
        // No header, an empty key: round robin.
        for d in &doubles {
            d.clear_records();
        }
        for i in 0..6 {
            assert_eq!(call(&n, None, i), 200);
        }
        let anon = doubles.iter().filter(|d| !d.records_of("request").is_empty()).count();
        assert!(anon > 1, "{balance}: requests without a key all went to one node");
    }
}

/// A node that goes down: its clients' checks are answered by the other nodes (a denied
/// client is still blocked), each moved client keeps to one new node, and every other
/// client keeps its node (plain `hash` rehashes only keys that fall on a down node; the
/// consistent ring moves only the down node's points).
#[test]
fn a_down_node_moves_only_its_own_clients() {
    let backend = Backend::start();
    for balance in ["hash $http_x_client;", "hash $http_x_client consistent;"] {
        let mut doubles: Vec<AseDouble> = (0..3).map(|_| AseDouble::start(&["--keepalive"])).collect();
        let n = start(&doubles, &backend, balance);
        let clients = 30;
        let home = first_round(&n, &doubles, clients);
        // The node with the most clients goes down.
        let gone = (0..3).max_by_key(|&d| home.values().filter(|&&h| h == d).count()).unwrap();
        doubles[gone].stop();
        for (_, d) in doubles.iter().enumerate().filter(|&(i, _)| i != gone) {
            d.clear_records();
        }
        for i in 1..3 {
            for k in 0..clients {
                assert_eq!(call(&n, Some(k), i), 200, "{balance}: client {k} was answered");
            }
        }
        let after = nodes_of_clients(&doubles, Some(gone));
        for (who, nodes) in &after {
            assert!(!nodes.contains(&gone), "{balance}: {who} recorded on the stopped node");
            assert_eq!(nodes.len(), 1, "{balance}: client {who} met nodes {nodes:?} after the failover");
            if home[who] != gone {
                assert_eq!(
                    nodes.iter().next(),
                    Some(&home[who]),
                    "{balance}: client {who} moved off a node that is up"
                );
            }
        }
        assert_eq!(after.len(), clients, "{balance}: every client's checks were recorded by a live node");
        // A denied client whose node is the stopped one is still blocked by another node.
        let moved = home.iter().find(|(_, &h)| h == gone).map(|(who, _)| who.parse::<usize>().unwrap()).unwrap();
        for (i, d) in doubles.iter().enumerate() {
            if i != gone {
                d.deny("ip", "127.0.0.1");
            }
        }
        assert_eq!(call(&n, Some(moved), 9), 403, "{balance}: the denied client got through");
    }
}

/// `consistent` across a reload that takes one server line out: the clients of the nodes
/// that stay keep their node (the ring's points are hashed from each node's name, not its
/// place in the block).
#[test]
fn a_reload_without_one_node_keeps_the_other_nodes_clients() {
    let backend = Backend::start();
    let doubles: Vec<AseDouble> = (0..3).map(|_| AseDouble::start(&["--keepalive"])).collect();
    let balance = "hash $http_x_client consistent;";
    let n = start(&doubles, &backend, balance);
    let clients = 30;
    let home = first_round(&n, &doubles, clients);
    // The first node's server line goes (its double keeps running: only the reload moves keys).
    let gone = 0;
    assert!(home.values().any(|&h| h == gone), "no client on node 0");
    let http = http_block(doubles.iter().skip(1), &backend, balance).replace("{port}", &n.port.to_string());
    n.write_file("conf/nginx.conf", &ngx_ase_tests::nginx::config_with_http(&http));
    n.signal("reload");
    wait_for("the old worker to exit", Duration::from_secs(30), || {
        n.error_log().contains("exited with code 0").then_some(())
    });
    for d in &doubles {
        d.clear_records();
    }
    for k in 0..clients {
        assert_eq!(call(&n, Some(k), 100), 200);
    }
    let after = nodes_of_clients(&doubles, None);
    assert_eq!(after.len(), clients);
    for (who, nodes) in &after {
        assert!(!nodes.contains(&gone), "client {who} checked by the node taken out");
        if home[who] != gone {
            assert_eq!(nodes.iter().next(), Some(&home[who]), "client {who} moved off a node that stayed");
        }
    }
}
