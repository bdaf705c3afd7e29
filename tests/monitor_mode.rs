//! `ase_request monitor` (the metadata goes to the ASE, the request never waits and is never
//! blocked, `$ase_verdict` is `monitor`, the report pairs with it, the status page counts
//! it) and reports only for requests whose metadata went to the ASE (no orphan reports).

use std::time::{Duration, Instant};

use ngx_ase_tests::{client, wait_for, AseDouble, Backend, Nginx};
use serde_json::{json, Value};

fn start(double: &AseDouble, backend: &Backend) -> Nginx {
    Nginx::start(&format!(
        r#"
    ase_server {ase};
    ase_timeout 5s;
    ase_response on;
    log_format verdicts '$request_uri $status $ase_verdict $ase_correlation_id $ase_time';
    server {{
        listen 127.0.0.1:{{port}};
        access_log logs/verdicts.log verdicts;
        location /learn/ {{ ase_request monitor; proxy_pass http://{backend}; }}
        location /enforce/ {{ ase_request on; proxy_pass http://{backend}; }}
        location /unchecked/ {{ ase_request off; proxy_pass http://{backend}; }}
        location = /returned {{ ase_request on; return 200 "returned\n"; }}
        location = /status {{ ase_request off; ase_response off; ase_status; }}
    }}
"#,
        ase = double.url(),
        backend = backend.addr()
    ))
}

fn get(n: &Nginx, path: &str) -> reqwest::blocking::Response {
    client().get(n.url(path)).send().expect("request")
}

/// The access-log line for `uri`: (status, verdict, correlation ID, time).
fn logged(n: &Nginx, uri: &str) -> (String, String, String, String) {
    let line = wait_for(&format!("the access log line of {uri}"), Duration::from_secs(10), || {
        n.log_lines("logs/verdicts.log", 1).into_iter().find(|l| l.starts_with(&format!("{uri} ")))
    });
    let f: Vec<&str> = line.split(' ').collect();
    (f[1].to_string(), f[2].to_string(), f[3].to_string(), f[4].to_string())
}

/// The records of `kind` with this correlation ID.
fn with_id(double: &AseDouble, kind: &str, cid: &str) -> Vec<Value> {
    double.records_of(kind).into_iter().filter(|r| r["correlation_id"] == cid).collect()
}

#[test]
fn monitor_never_blocks_a_denied_client_and_pairs_its_report() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend);
    double.deny("ip", "127.0.0.1");

    // Enforced, the same client is blocked: the deny list does apply to it.
    assert_eq!(get(&n, "/enforce/a").status(), 403);
    let r = get(&n, "/learn/a");
    assert_eq!(r.status(), 200);
    assert!(r.text().unwrap().contains("\"backend\":\"ok\""));
    assert_eq!(backend.paths(), vec!["/learn/a"]);

    let (status, verdict, cid, time) = logged(&n, "/learn/a");
    assert_eq!((status.as_str(), verdict.as_str(), time.as_str()), ("200", "monitor", "-"));
    assert_eq!(cid.len(), 22, "{cid}");
    // The ASE got the metadata (and said 403, which changed nothing), and the report with
    // the same correlation ID.
    let req = wait_for("the monitor request call", Duration::from_secs(10), || {
        let r = with_id(&double, "request", &cid);
        (!r.is_empty()).then_some(r)
    });
    assert_eq!(req.len(), 1, "{req:?}");
    assert_eq!(req[0]["status"], 403);
    assert_eq!(req[0]["body"]["url"], "/learn/a");
    let rep = wait_for("the monitor report", Duration::from_secs(10), || {
        let r = with_id(&double, "response", &cid);
        (!r.is_empty()).then_some(r)
    });
    assert_eq!(rep.len(), 1, "{rep:?}");
    assert_eq!(rep[0]["body"]["response_code"], "200");

    // Counted apart on the status page, in JSON and in Prometheus text.
    let status: Value = get(&n, "/status").json().unwrap();
    assert_eq!(status["verdicts"]["monitor"], 1, "{status}");
    assert_eq!(status["verdicts"]["block"], 1, "{status}");
    let text = get(&n, "/status?format=prometheus").text().unwrap();
    assert!(text.contains("nginx_ase_verdicts_total{verdict=\"monitor\"} 1\n"), "{text}");
}

#[test]
fn monitor_adds_no_wait_with_a_slow_ase() {
    let (double, backend) = (AseDouble::start(&["--keepalive"]), Backend::start());
    let n = start(&double, &backend);
    let delay = Duration::from_millis(2000);
    double.fault(json!({"kind": "delay", "ms": delay.as_millis() as u64, "calls": "request"}));

    // The same slow ASE holds an enforced request for the whole delay...
    let t = Instant::now();
    assert_eq!(get(&n, "/enforce/slow").status(), 200);
    assert!(t.elapsed() >= delay * 3 / 4, "the delay fault did not apply: {:?}", t.elapsed());

    // ...and a monitored one not at all: well under half the delay, however loaded the machine.
    for i in 0..5 {
        let t = Instant::now();
        let r = get(&n, &format!("/learn/slow{i}"));
        assert_eq!(r.status(), 200);
        r.text().unwrap();
        assert!(t.elapsed() < delay / 2, "a monitored request waited {:?} (the ASE takes {delay:?})", t.elapsed());
    }
    // The calls still reach the ASE, and each report pairs with its request call.
    let reqs = wait_for("the monitored calls at the ASE", Duration::from_secs(20), || {
        let r: Vec<Value> = double
            .records_of("request")
            .into_iter()
            .filter(|r| r["body"]["url"].as_str().is_some_and(|u| u.starts_with("/learn/")))
            .collect();
        (r.len() == 5).then_some(r)
    });
    for req in reqs {
        let cid = req["correlation_id"].as_str().unwrap().to_string();
        wait_for("the report of a monitored call", Duration::from_secs(10), || {
            (with_id(&double, "response", &cid).len() == 1).then_some(())
        });
    }
    double.clear_fault();
}

#[test]
fn no_report_without_a_request_call() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend);
    assert_eq!(get(&n, "/unchecked/a").status(), 200);
    assert_eq!(get(&n, "/returned").status(), 200);
    // A checked request after them: once its report is in, theirs would have been too.
    assert_eq!(get(&n, "/enforce/b").status(), 200);
    let (_, _, cid, _) = logged(&n, "/enforce/b");
    wait_for("the checked request's report", Duration::from_secs(10), || {
        (with_id(&double, "response", &cid).len() == 1).then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    let reports = double.records_of("response");
    let requests = double.records_of("request");
    assert_eq!(reports.len(), 1, "orphan reports: {reports:?}");
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(reports[0]["correlation_id"], requests[0]["correlation_id"]);
    let (_, verdict, unchecked_cid, _) = logged(&n, "/unchecked/a");
    assert_eq!((verdict.as_str(), unchecked_cid.as_str()), ("skip", "-"));
}

/// `nginx-conf/ase-log-format-json.conf`, included as shipped: each line parses as JSON
/// with the ASE's fields, whatever bytes the client put in the request line.
#[test]
fn the_json_log_format_example_writes_json() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let example = ngx_ase_tests::repo_root().join("nginx-conf/ase-log-format-json.conf");
    let n = Nginx::start(&format!(
        r#"
    ase_server {ase};
    include {example};
    server {{
        listen 127.0.0.1:{{port}};
        access_log logs/ase.json ase_json;
        location /learn/ {{ ase_request monitor; proxy_pass http://{backend}; }}
        location /enforce/ {{ ase_request on; proxy_pass http://{backend}; }}
        location /plain/ {{ proxy_pass http://{backend}; }}
    }}
"#,
        ase = double.url(),
        example = example.display(),
        backend = backend.addr()
    ));
    double.deny("ip", "127.0.0.1");
    assert_eq!(get(&n, "/learn/a?q=%22quoted%5C").status(), 200);
    assert_eq!(get(&n, "/enforce/b").status(), 403);
    assert_eq!(get(&n, "/plain/c").status(), 200);
    let lines = n.log_lines("logs/ase.json", 3);
    assert_eq!(lines.len(), 3, "{lines:?}");
    let parsed: Vec<Value> =
        lines.iter().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    let verdicts: Vec<&str> = parsed.iter().map(|v| v["ase_verdict"].as_str().unwrap()).collect();
    assert_eq!(verdicts, ["monitor", "block", "skip"]);
    assert_eq!((parsed[1]["status"].as_u64(), parsed[2]["ase_time"].as_str()), (Some(403), Some("-")));
    assert_eq!(parsed[0]["ase_correlation_id"].as_str().map(str::len), Some(22));
    assert!(parsed[0]["request"].as_str().unwrap().contains("/learn/a?q=%22quoted%5C"), "{}", lines[0]);
    assert!(parsed[1]["ase_time"].as_str().unwrap().parse::<u64>().is_ok(), "{}", lines[1]);
}
