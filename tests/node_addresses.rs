//! `ase_server` with a host name: one node per address the name resolves to, as nginx
//! upstreams do. A name that resolves to `::1` first while the ASE double listens on
//! 127.0.0.1 only costs one refused connect and that node marked down, never a failed
//! check; the status page and the logs name each address. The name is given to nginx by a
//! hosts file of its own, in a private mount namespace (`unshare -m`, root; skipped with a
//! note otherwise), so the machine's /etc/hosts is neither needed nor touched; `localhost`
//! is checked too, with whatever it resolves to here. Also: an ASE on IPv6 only.

use std::net::{SocketAddr, ToSocketAddrs};

use ngx_ase_tests::{client, AseDouble, Backend, Nginx};
use serde_json::Value;

/// nginx with one worker, the given `ase_server` line, checks on, a status page.
fn start(server: &str, backend: &Backend) -> Nginx {
    Nginx::start(&http_block(server, backend))
}

/// The http block for `start` (`{port}` still to fill in).
fn http_block(server: &str, backend: &Backend) -> String {
    format!(
        r#"
    {server}
    ase_request on;
    ase_timeout 1s;
    ase_connect_timeout 300ms;
    log_format ase '$request_uri $status $ase_verdict';
    access_log logs/ase.log ase;
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ proxy_pass http://{backend}; }}
        location = /status {{ ase_request off; ase_status; }}
    }}
"#,
        backend = backend.addr()
    )
}

fn status(n: &Nginx) -> Value {
    client().get(n.url("/status")).send().expect("status page").json().expect("status JSON")
}

fn prometheus(n: &Nginx) -> String {
    client().get(n.url("/status?format=prometheus")).send().expect("status page").text().expect("text")
}

/// The verdicts of the checked requests (waiting briefly for `expected` of them).
fn verdicts(n: &Nginx, expected: usize) -> Vec<String> {
    let read = || -> Vec<String> {
        n.log_lines("logs/ase.log", 0)
            .into_iter()
            .filter(|l| !l.starts_with("/status"))
            .map(|l| l.rsplit(' ').next().unwrap_or("").to_string())
            .collect()
    };
    ngx_ase_tests::wait_for_quiet(std::time::Duration::from_secs(5), || read().len() >= expected);
    read()
}

/// What `host:port` resolves to here, in the resolver's order, each address once (what the
/// module does at configuration time).
fn resolve(host: &str, port: u16) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = Vec::new();
    for a in (host, port).to_socket_addrs().expect("resolve") {
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

fn port_of(addr: &str) -> u16 {
    addr.parse::<SocketAddr>().expect("the double's address").port()
}

/// Runs 10 checks through nginx, whose `ase_server` is `url` (a host name), and checks them
/// against what the name resolves to for nginx, `addrs`: every check allowed; one node per
/// address on the status page, in order, with the line's URL and role; the addresses before
/// 127.0.0.1 (where the double listens) marked down once, by their own address, in the
/// log and on the page; 127.0.0.1 up with every call.
fn checks_pass_with_one_node_per_address(n: &Nginx, double: &AseDouble, url: &str, addrs: &[SocketAddr]) {
    let port = port_of(&double.data);
    let v4: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert!(addrs.contains(&v4), "the name does not resolve to 127.0.0.1: {addrs:?}");
    for i in 0..10 {
        let code = client().get(n.url(&format!("/n{i}"))).send().map(|r| r.status().as_u16()).unwrap_or(0);
        assert_eq!(code, 200, "request {i}");
    }
    assert_eq!(verdicts(n, 10), vec!["allow"; 10], "every check reached the ASE");
    assert_eq!(double.records_of("request").len(), 10);

    let s = status(n);
    let nodes = s["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), addrs.len(), "one node per address: {s}");
    for (node, addr) in nodes.iter().zip(addrs) {
        assert_eq!(node["url"].as_str(), Some(url), "{s}");
        assert_eq!(node["address"].as_str(), Some(addr.to_string().as_str()), "{s}");
        assert_eq!(node["backup"], false, "every address keeps the line's role: {s}");
    }
    let v4_at = addrs.iter().position(|a| *a == v4).unwrap();
    assert_eq!((nodes[v4_at]["state"].as_str(), nodes[v4_at]["calls"].as_u64()), (Some("up"), Some(10)), "{s}");
    assert_eq!(s["nodes_untracked"], 0);

    let text = prometheus(n);
    assert!(text.contains(&format!("nginx_ase_node_up{{node=\"{url} ({v4})\",group=\"default\"}} 1\n")), "{text}");
    let log = n.error_log();
    // The addresses before 127.0.0.1 refuse: each is marked down after its one failure
    // (max_fails=1) and then skipped; the checks moved on to the next address within the call.
    for (node, addr) in nodes.iter().zip(addrs).take(v4_at) {
        assert_eq!((node["state"].as_str(), node["failures"].as_u64()), (Some("down"), Some(1)), "{addr}: {s}");
        assert_eq!(log.matches(&format!("node {url} ({addr}) is down")).count(), 1, "{log}");
        assert!(
            text.contains(&format!("nginx_ase_node_up{{node=\"{url} ({addr})\",group=\"default\"}} 0\n")),
            "{text}"
        );
    }
    for (node, addr) in nodes.iter().zip(addrs).skip(v4_at + 1) {
        assert_eq!(
            (node["state"].as_str(), node["calls"].as_u64()),
            (Some("up"), Some(0)),
            "{addr} is never needed: {s}"
        );
    }
    assert!(!log.contains(&format!("node {url} ({v4}) is down")), "{log}");
}

/// Whether this process may run nginx in a private mount namespace with its own
/// /etc/hosts (root, and `unshare` works here).
fn can_give_nginx_its_own_hosts_file(hosts: &std::path::Path) -> bool {
    std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", "mount --bind \"$0\" /etc/hosts"])
        .arg(hosts)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_name_on_ipv6_then_ipv4_with_the_ase_on_ipv4_only() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let port = port_of(&double.data);
    // nginx gets a hosts file in which the name resolves to ::1 and 127.0.0.1, in a mount
    // namespace of its own: the machine's /etc/hosts is not touched.
    let name = "ase-dual.test";
    let url = format!("http://{name}:{port}");
    let nginx_port = ngx_ase_tests::free_port();
    let http = http_block(&format!("ase_server {url} max_fails=1 fail_timeout=30s;"), &backend);
    let mut n =
        Nginx::prepare(&ngx_ase_tests::nginx::config_with_http(&http.replace("{port}", &nginx_port.to_string())));
    n.port = nginx_port;
    let system = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let hosts = n.write_file("hosts", &format!("::1 {name}\n127.0.0.1 {name}\n{system}"));
    if !can_give_nginx_its_own_hosts_file(&hosts) {
        eprintln!("note: skipped: cannot run nginx with its own /etc/hosts here (needs root and unshare -m)");
        return;
    }
    let hosts = hosts.to_string_lossy().into_owned();
    n.launch_wrapped(&["unshare", "-m", "sh", "-c", "mount --bind \"$0\" /etc/hosts && exec \"$@\"", &hosts]);
    // glibc puts ::1 first (RFC 6724); the check below accepts either order.
    let addrs: Vec<SocketAddr> = status(&n)["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|node| node["address"].as_str().expect("address").parse().expect("an address"))
        .collect();
    let expected: [SocketAddr; 2] =
        [format!("[::1]:{port}").parse().unwrap(), format!("127.0.0.1:{port}").parse().unwrap()];
    let mut sorted = addrs.clone();
    sorted.sort();
    let mut want = expected.to_vec();
    want.sort();
    assert_eq!(sorted, want, "both addresses are nodes");
    checks_pass_with_one_node_per_address(&n, &double, &url, &addrs);
    eprintln!("note: {name} resolved for nginx to {addrs:?}, in that failover order");
}

#[test]
fn localhost_gives_one_node_per_address_it_resolves_to() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let port = port_of(&double.data);
    let addrs = resolve("localhost", port);
    if addrs.len() == 1 {
        eprintln!(
            "note: localhost resolves only to {addrs:?} here: this checks one node shown with its address \
                   (the two-address case: a_name_on_ipv6_then_ipv4_with_the_ase_on_ipv4_only and the unit tests)"
        );
    }
    let url = format!("http://localhost:{port}");
    let n = start(&format!("ase_server {url} max_fails=1 fail_timeout=30s;"), &backend);
    checks_pass_with_one_node_per_address(&n, &double, &url, &addrs);
}

#[test]
fn an_ase_listening_on_ipv6_only() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("note: no IPv6 loopback here; skipped");
        return;
    }
    let (double, backend) = (AseDouble::start_on("[::1]:0", &[]), Backend::start());
    let port = port_of(&double.data);
    let url = format!("http://[::1]:{port}");
    assert_eq!(double.url(), url);
    let n = start(&format!("ase_server {url};"), &backend);
    for i in 0..5 {
        let code = client().get(n.url(&format!("/six{i}"))).send().map(|r| r.status().as_u16()).unwrap_or(0);
        assert_eq!(code, 200);
    }
    assert_eq!(verdicts(&n, 5), vec!["allow"; 5]);
    assert_eq!(double.records_of("request").len(), 5);
    let s = status(&n);
    let node = &s["nodes"][0];
    assert_eq!(
        (node["url"].as_str(), node["address"].as_str()),
        (Some(url.as_str()), Some(&url["http://".len()..])),
        "{s}"
    );
    assert_eq!((node["state"].as_str(), node["calls"].as_u64()), (Some("up"), Some(5)), "{s}");
    // Given by address, the node keeps its plain URL as its name.
    assert!(prometheus(&n).contains(&format!("nginx_ase_node_up{{node=\"{url}\",group=\"default\"}} 1\n")));
}
