//! The verdict cache (`ase_cache_zone`, `ase_cache`, `ase_cache_key`, `ase_cache_valid`,
//! `ase_cache_use_stale`, `$ase_cache_status`) against a real nginx and the real double: a hit
//! decides at once and the ASE still gets every request's metadata (and the report with the
//! same correlation ID), a new deny reaches a cached client, stale-if-error, one zone for
//! every worker, LRU eviction, `nginx -t` errors, and cache-on variants of the bypasses of
//! `bypasses_metadata.rs` (a variant request never finds another identity's cached allow).

use std::time::{Duration, Instant};

use ngx_ase_tests::double::{api, api_definitions};
use ngx_ase_tests::nginx::{config_with_http, nginx_t};
use ngx_ase_tests::raw_http::{get_raw, line};
use ngx_ase_tests::{client, wait_for, AseDouble, Backend, Nginx, TEST_TOKEN};
use serde_json::{json, Value};

/// The cache settings of one test.
struct Cache<'a> {
    zone: &'a str,
    allow: &'a str,
    block: &'a str,
    stale: &'a str,
    extra: &'a str,
}

const CACHE: Cache = Cache { zone: "1m", allow: "60s", block: "60s", stale: "0", extra: "" };

fn config(double: &AseDouble, backend: &Backend, c: &Cache) -> String {
    format!(
        r#"
    ase_server {ase};
    ase_timeout 5s;
    ase_response on;
    ase_cache_zone verdicts {zone};
    server {{
        listen 127.0.0.1:{{port}} reuseport;
        add_header X-Cache $ase_cache_status always;
        add_header X-Cid $ase_correlation_id always;
        add_header X-Pid $pid always;
        {extra}
        location / {{
            ase_request on;
            ase_cache verdicts;
            ase_cache_valid allow {allow};
            ase_cache_valid block {block};
            ase_cache_use_stale {stale};
            proxy_pass http://{b};
        }}
        location = /status {{ ase_request off; ase_response off; ase_status; }}
    }}
"#,
        ase = double.url(),
        b = backend.addr(),
        zone = c.zone,
        allow = c.allow,
        block = c.block,
        stale = c.stale,
        extra = c.extra,
    )
}

fn start(double: &AseDouble, backend: &Backend, c: &Cache) -> Nginx {
    Nginx::start(&config(double, backend, c))
}

/// One answer: status, `$ase_cache_status`, correlation ID, worker pid.
struct Answer {
    status: u16,
    cache: String,
    cid: String,
    pid: String,
}

fn header(r: &reqwest::blocking::Response, name: &str) -> String {
    r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
}

/// A GET on a new connection (so that either worker may take it) with `headers`.
fn get(n: &Nginx, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = client().get(n.url(path)).header("Connection", "close");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().expect("request");
    let a = Answer {
        status: r.status().as_u16(),
        cache: header(&r, "x-cache"),
        cid: header(&r, "x-cid"),
        pid: header(&r, "x-pid"),
    };
    let _ = r.text();
    a
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The double's records of `kind` with this correlation ID, once there is one.
fn record_with_id(double: &AseDouble, kind: &str, cid: &str) -> Value {
    wait_for(&format!("the {kind} call with correlation ID {cid}"), Duration::from_secs(20), || {
        double.records_of(kind).into_iter().find(|r| r["correlation_id"] == cid)
    })
}

#[test]
fn a_hit_answers_at_once_and_the_ase_still_gets_its_metadata() {
    let (double, backend) = (AseDouble::start(&["--keepalive"]), Backend::start());
    let n = start(&double, &backend, &CACHE);
    let alice = bearer("alice");
    let first = get(&n, "/orders", &[("Authorization", &alice)]);
    assert_eq!((first.status, first.cache.as_str()), (200, "MISS"));

    let delay = Duration::from_millis(1000);
    double.fault(json!({"kind": "delay", "ms": delay.as_millis() as u64, "calls": "request"}));
    // An unknown client waits for the slow ASE...
    let t = Instant::now();
    let other = get(&n, "/orders", &[("Authorization", &bearer("bob"))]);
    assert_eq!((other.status, other.cache.as_str()), (200, "MISS"));
    assert!(t.elapsed() >= delay * 3 / 4, "the delay fault did not apply: {:?}", t.elapsed());
    // ...a cached one does not, however loaded the machine.
    for _ in 0..3 {
        let t = Instant::now();
        let hit = get(&n, "/orders", &[("Authorization", &alice)]);
        assert_eq!((hit.status, hit.cache.as_str()), (200, "HIT"));
        assert!(t.elapsed() < delay / 2, "a cache hit waited {:?} (the ASE takes {delay:?})", t.elapsed());
        // The ASE still gets the hit's metadata, and the report pairs with it.
        let req = record_with_id(&double, "request", &hit.cid);
        assert_eq!(req["body"]["url"], "/orders");
        let rep = record_with_id(&double, "response", &hit.cid);
        assert_eq!(rep["body"]["response_code"], "200");
    }
    assert_eq!(backend.hits(), 5);
}

#[test]
fn a_client_the_ase_starts_to_deny_is_blocked_within_valid_allow() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend, &Cache { allow: "1s", ..CACHE });
    let mallory = bearer("mallory");
    assert_eq!(get(&n, "/a", &[("Authorization", &mallory)]).cache, "MISS");
    double.deny("token", "mallory");
    let denied_at = Instant::now();
    // Until the ASE's new answer is in, the cached allow may stand, at most `valid allow`.
    let blocked = wait_for("the newly denied client to be blocked", Duration::from_secs(20), || {
        let a = get(&n, "/a", &[("Authorization", &mallory)]);
        if a.status == 200 {
            // Only the cached allow (never a new check's), and only while it can still be under
            // 1 s old (slack for a loaded machine: the code bounds the age, not this clock).
            assert_eq!(a.cache, "HIT");
            assert!(denied_at.elapsed() < Duration::from_secs(6), "an allow outlived valid allow");
        }
        (a.status == 403).then_some(a)
    });
    // Learned from a hit's own check: the block is cached and now refused at once.
    let again = get(&n, "/a", &[("Authorization", &mallory)]);
    assert_eq!((again.status, again.cache.as_str()), (403, "HIT"), "first blocked as {}", blocked.cache);
}

#[test]
fn a_cached_block_is_refused_at_once_and_still_reported() {
    let (double, backend) = (AseDouble::start(&["--keepalive"]), Backend::start());
    let n = start(&double, &backend, &CACHE);
    double.deny("token", "mallory");
    let mallory = bearer("mallory");
    let first = get(&n, "/x", &[("Authorization", &mallory)]);
    assert_eq!((first.status, first.cache.as_str()), (403, "MISS"));
    let delay = Duration::from_millis(1000);
    double.fault(json!({"kind": "delay", "ms": delay.as_millis() as u64, "calls": "request"}));
    let t = Instant::now();
    let hit = get(&n, "/x", &[("Authorization", &mallory)]);
    assert_eq!((hit.status, hit.cache.as_str()), (403, "HIT"));
    assert!(t.elapsed() < delay / 2, "a cached block waited {:?}", t.elapsed());
    let req = record_with_id(&double, "request", &hit.cid);
    assert_eq!(req["body"]["url"], "/x");
    let rep = record_with_id(&double, "response", &hit.cid);
    assert_eq!(rep["body"]["response_code"], "403");
    assert_eq!(backend.hits(), 0, "{:?}", backend.paths());
}

#[test]
fn on_an_ase_error_a_verdict_within_use_stale_decides_then_the_fail_mode() {
    let (mut double, backend) = (AseDouble::start(&[]), Backend::start());
    let c = Cache { allow: "100ms", block: "100ms", stale: "4s", extra: "ase_fail_mode closed;", ..CACHE };
    let n = start(&double, &backend, &c);
    double.deny("token", "mallory");
    let (alice, mallory) = (bearer("alice"), bearer("mallory"));
    // Taken before the verdicts are learned: each entry's age counts from its answer, so
    // use_stale cannot run out before this instant plus 4 s.
    let learned = Instant::now();
    assert_eq!(get(&n, "/s", &[("Authorization", &alice)]).status, 200);
    assert_eq!(get(&n, "/s", &[("Authorization", &mallory)]).status, 403);
    double.stop();
    std::thread::sleep(Duration::from_millis(300));
    // Expired (100ms), the ASE down: the cached verdicts stand, while under 4 s old.
    let a = get(&n, "/s", &[("Authorization", &alice)]);
    let m = get(&n, "/s", &[("Authorization", &mallory)]);
    let stale_checked = learned.elapsed();
    if stale_checked < Duration::from_millis(3500) {
        assert_eq!((a.status, a.cache.as_str()), (200, "STALE"));
        assert_eq!((m.status, m.cache.as_str()), (403, "STALE"));
    }
    // A client never seen follows the fail mode at once.
    let unknown = get(&n, "/s", &[("Authorization", &bearer("carol"))]);
    assert_eq!((unknown.status, unknown.cache.as_str()), (503, "MISS"));
    // Past use_stale: the fail mode (closed) for the known ones too.
    let failed = wait_for("use_stale to run out", Duration::from_secs(20), || {
        let a = get(&n, "/s", &[("Authorization", &alice)]);
        if a.status == 200 {
            assert_eq!(a.cache, "STALE");
        }
        (a.status != 200).then_some(a)
    });
    assert!(learned.elapsed() >= Duration::from_secs(4), "stale ran out early: {:?}", learned.elapsed());
    assert_eq!((failed.status, failed.cache.as_str()), (503, "EXPIRED"));
    let status: Value = client().get(n.url("/status")).send().unwrap().json().unwrap();
    assert!(status["cache"]["stale"].as_u64().is_some_and(|s| s >= 1), "{}", status["cache"]);
    let text = client().get(n.url("/status?format=prometheus")).send().unwrap().text().unwrap();
    assert!(text.contains("nginx_ase_cache_stale_total "), "{text}");
}

#[test]
fn a_verdict_learned_by_one_worker_serves_the_other() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let port = ngx_ase_tests::free_port();
    let conf = config_with_http(&config(&double, &backend, &CACHE).replace("{port}", &port.to_string()))
        .replace("worker_processes 1;", "worker_processes 2;");
    let mut n = Nginx::prepare(&conf);
    n.port = port;
    n.launch();
    double.deny("token", "mallory");
    let (alice, mallory) = (bearer("alice"), bearer("mallory"));
    let first = get(&n, "/w", &[("Authorization", &alice)]);
    assert_eq!(first.cache, "MISS");
    let blocked = get(&n, "/w", &[("Authorization", &mallory)]);
    assert_eq!((blocked.status, blocked.cache.as_str()), (403, "MISS"));
    // Until the other worker has answered (each request on a new connection).
    let mut pids = std::collections::BTreeSet::new();
    for _ in 0..400 {
        let a = get(&n, "/w", &[("Authorization", &alice)]);
        let m = get(&n, "/w", &[("Authorization", &mallory)]);
        assert_eq!((a.status, a.cache.as_str()), (200, "HIT"), "worker {}", a.pid);
        assert_eq!((m.status, m.cache.as_str()), (403, "HIT"), "worker {}", m.pid);
        pids.insert(a.pid);
        pids.insert(m.pid);
        if pids.len() == 2 {
            break;
        }
    }
    assert_eq!(pids.len(), 2, "one worker served every request: {pids:?}");
}

/// nginx keeps a zone of the same name and size across a reload: the new workers find the
/// verdicts the old ones learned.
#[test]
fn the_verdicts_survive_a_reload() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend, &CACHE);
    double.deny("token", "mallory");
    let (alice, mallory) = (bearer("alice"), bearer("mallory"));
    let before = get(&n, "/r", &[("Authorization", &alice)]);
    assert_eq!(get(&n, "/r", &[("Authorization", &mallory)]).status, 403);
    n.signal("reload");
    wait_for("the old worker to exit", Duration::from_secs(30), || {
        n.error_log().contains("exited with code 0").then_some(())
    });
    let a = get(&n, "/r", &[("Authorization", &alice)]);
    let m = get(&n, "/r", &[("Authorization", &mallory)]);
    assert_ne!(a.pid, before.pid, "no new worker");
    assert_eq!((a.status, a.cache.as_str()), (200, "HIT"));
    assert_eq!((m.status, m.cache.as_str()), (403, "HIT"));
}

#[test]
fn a_full_zone_evicts_its_least_recently_used_verdicts() {
    let (double, backend) = (AseDouble::start(&["--keepalive"]), Backend::start());
    let n = start(&double, &backend, &Cache { zone: "32k", ..CACHE });
    assert_eq!(get(&n, "/e", &[("X-API-Key", "first")]).cache, "MISS");
    assert_eq!(get(&n, "/e", &[("X-API-Key", "first")]).cache, "HIT");
    // A 32k zone holds a few hundred verdicts: 1,500 other clients push the first one out.
    let c = client();
    for i in 0..1500 {
        let r = c.get(n.url("/e")).header("X-API-Key", format!("k{i}")).send().expect("request");
        assert_eq!(r.status(), 200);
        let _ = r.text();
    }
    assert_eq!(get(&n, "/e", &[("X-API-Key", "first")]).cache, "MISS", "never evicted");
    // The newest are still there.
    assert_eq!(get(&n, "/e", &[("X-API-Key", "k1499")]).cache, "HIT");
    let status: Value = client().get(n.url("/status")).send().unwrap().json().unwrap();
    assert!(status["cache"]["evictions"].as_u64().is_some_and(|e| e > 0), "{}", status["cache"]);
    assert!(status["cache"]["hits"].as_u64().is_some_and(|e| e >= 2), "{}", status["cache"]);
}

/// `ase_cache_key`: the operator's key in place of the default's client part (here across
/// the location's paths); a request for which it is empty is not cached (`BYPASS`).
#[test]
fn ase_cache_key_replaces_the_client_part_and_an_empty_key_bypasses() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let extra = format!(
        "location /k/ {{ ase_request on; ase_cache verdicts; ase_cache_key $http_x_client; proxy_pass http://{}; }}",
        backend.addr()
    );
    let n = start(&double, &backend, &Cache { extra: &extra, ..CACHE });
    assert_eq!(get(&n, "/k/1", &[("X-Client", "a")]).cache, "MISS");
    assert_eq!(get(&n, "/k/2", &[("X-Client", "a")]).cache, "HIT");
    assert_eq!(get(&n, "/k/2", &[("X-Client", "b")]).cache, "MISS");
    for _ in 0..2 {
        let a = get(&n, "/k/3", &[]);
        assert_eq!((a.status, a.cache.as_str()), (200, "BYPASS"));
    }
    // Every request's metadata reached the ASE, the hit's too (detached).
    assert_eq!(double.wait_records("request", 5).len(), 5);
}

fn line_of(http: &str, needle: &str) -> usize {
    let full = config_with_http(http);
    full.lines().position(|l| l.contains(needle)).expect("the line") + 1
}

#[test]
fn config_errors_name_the_file_and_line() {
    let cases: [(&str, &str, &str); 8] = [
        ("ase_cache nope;", "ase_cache nope", "unknown ase_cache_zone \"nope\""),
        ("ase_cache later; ase_cache_zone later 1m;", "ase_cache later", "unknown ase_cache_zone \"later\""),
        ("ase_cache_zone v 1x;", "ase_cache_zone v", "invalid size \"1x\""),
        ("ase_cache_zone v 4k;", "ase_cache_zone v", "zone \"v\" is too small"),
        ("ase_cache_zone v 1m;\n    ase_cache_zone  v 1m;", "ase_cache_zone  v", "duplicate zone \"v\""),
        ("ase_cache_valid maybe 1s;", "ase_cache_valid", "it must be \"allow\" or \"block\""),
        ("ase_cache_valid allow 1x;", "ase_cache_valid", "invalid value \"1x\""),
        (
            "ase_cache_valid allow 1s;\n    ase_cache_valid allow 2s;",
            "allow 2s",
            "\"ase_cache_valid\" directive is duplicate",
        ),
    ];
    for (directives, at, message) in cases {
        let http = format!("    ase_server http://127.0.0.1:1;\n    {directives}\n");
        let (ok, err, path) = nginx_t(&http);
        assert!(!ok, "nginx -t accepted {directives:?}");
        assert!(err.contains(message), "expected {message:?} in:\n{err}");
        let line = line_of(&http, at);
        assert!(err.contains(&format!("{path}:{line}")), "expected {path}:{line} in:\n{err}");
        assert!(!err.contains(TEST_TOKEN));
    }
    // Every directive, at every level it takes.
    let good = "    ase_server http://127.0.0.1:1;\n    ase_cache_zone v 1m;\n    ase_cache v;\n    ase_cache_valid allow 1s;\n\
                ase_cache_valid block 10s;\n    ase_cache_use_stale 30s;\n    ase_cache_key $remote_addr$http_authorization;\n\
                server { listen 127.0.0.1:1; ase_cache off; location / { ase_cache v; ase_cache_valid allow 500ms; return 200; } }\n";
    let (ok, err, _) = nginx_t(good);
    assert!(ok, "{err}");
}

/// Padding, another `Authorization` spelling, another's cookie: each is another key, so a
/// denied token never finds the cached allow of the client whose headers it imitates.
#[test]
fn with_the_cache_padded_or_respelled_identities_find_no_other_clients_allow() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend, &CACHE);
    double.deny("token", "mallory");
    let alice = vec![line("Host: a"), line("Cookie: s=alice"), line("Authorization: Bearer alice")];
    assert_eq!(get_raw(n.port, "/p", &alice), 200);
    assert_eq!(get_raw(n.port, "/p", &alice), 200);
    let pad = line(&format!("X-Pad: {}", "x".repeat(7000)));
    let variants: [Vec<Vec<u8>>; 4] = [
        vec![line("Host: a"), pad.clone(), line("Authorization: Bearer mallory")],
        vec![line("Host: a"), line("Authorization:   Bearer mallory")],
        vec![line("Host: a"), line("Cookie: s=alice"), line("Authorization: Bearer mallory")],
        vec![line("Host: a"), line("authorization: Bearer mallory"), pad],
    ];
    for v in &variants {
        assert_eq!(
            get_raw(n.port, "/p", v),
            403,
            "{:?} got alice's allow",
            v.iter().map(|h| String::from_utf8_lossy(h)).collect::<Vec<_>>()
        );
    }
    assert_eq!(backend.hits(), 2, "{:?}", backend.paths());
}

/// A cached allow for a host the ASE does not protect (its 503 "unknown") never answers for
/// the protected host, whatever the request line or `Host` header say.
#[test]
fn with_the_cache_an_allow_for_one_host_does_not_stand_for_another() {
    let defs = api_definitions(&[api("/api", "shop.example")]);
    let apis_dir = defs.path().to_string_lossy().into_owned();
    let (double, backend) = (AseDouble::start(&["--apis", &apis_dir]), Backend::start());
    let n = start(&double, &backend, &Cache { extra: "server_name shop.example other.example;", ..CACHE });
    double.deny("ip", "127.0.0.1");
    for _ in 0..2 {
        assert_eq!(get_raw(n.port, "/api/orders", &[line("Host: other.example")]), 200);
    }
    assert_eq!(get_raw(n.port, "/api/orders", &[line("Host: shop.example")]), 403);
    let absolute = get_raw(n.port, "http://shop.example/api/orders", &[line("Host: other.example")]);
    assert_eq!(absolute, 403, "the decoy Host found the other host's allow");
    assert_eq!(get_raw(n.port, "/api/orders", &[line("Host: SHOP.example.:8080")]), 403);
    assert_eq!(backend.hits(), 2, "{:?}", backend.paths());
}

/// A cached allow for a path outside the ASE's API never answers for a spelling of the API's
/// path: the key holds the path nginx routed by, as the ASE is told it.
#[test]
fn with_the_cache_an_allow_for_one_path_does_not_stand_for_a_spelling_of_another() {
    let defs = api_definitions(&[api("/api", "*")]);
    let apis_dir = defs.path().to_string_lossy().into_owned();
    let (double, backend) = (AseDouble::start(&["--apis", &apis_dir]), Backend::start());
    let n = start(&double, &backend, &CACHE);
    double.deny("ip", "127.0.0.1");
    for _ in 0..2 {
        assert_eq!(get_raw(n.port, "/public/x", &[line("Host: a")]), 200);
    }
    for path in [
        "/api/orders",
        "//api/orders",
        "/./api/orders",
        "/public/../api/orders",
        "/%61pi/orders",
        "/api/orders?public/x",
    ] {
        assert_eq!(get_raw(n.port, path, &[line("Host: a")]), 403, "{path} found the allow of /public/x");
    }
    assert_eq!(backend.hits(), 2, "{:?}", backend.paths());
}
