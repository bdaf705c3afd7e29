//! The smallest proof that the modules work in an nginx: a request allowed, a client blocked
//! and the responses reported, paired by correlation ID. `scripts/test.sh` also runs it
//! against an nginx built the way a user's is (`scripts/build.sh --nginx-src`), where the
//! rest of the suite would ask for modules that nginx does not have.

use ngx_ase_tests::{client, AseDouble, Backend, Nginx};

#[test]
fn allowed_blocked_and_reported() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = Nginx::start(&format!(
        r#"
    ase_server {ase};
    ase_timeout 2s;
    ase_request on;
    ase_response on;
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ proxy_pass http://{backend}; }}
    }}
"#,
        ase = double.url(),
        backend = backend.addr()
    ));
    double.deny("ip", "127.0.0.2");

    let allowed = client().get(n.url("/api/items")).send().expect("allowed request");
    assert_eq!(allowed.status(), 200);
    assert_eq!(backend.paths(), vec!["/api/items"]);

    // The same nginx, reached from the denied address (all of 127/8 is loopback).
    let blocked = reqwest::blocking::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().expect("address"))
        .no_proxy()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("client")
        .get(n.url("/api/items"))
        .send()
        .expect("blocked request");
    assert_eq!(blocked.status(), 403);
    assert_eq!(backend.hits(), 1, "the blocked client must not reach the backend");

    let requests = double.wait_records("request", 2);
    let responses = double.wait_records("response", 2);
    for req in &requests {
        let cid = req["correlation_id"].as_str().expect("X-CorrelationID on the request");
        let paired = responses.iter().find(|r| r["correlation_id"] == cid).expect("a report with the same ID");
        let want = if req["body"]["source_ip"] == "127.0.0.2" { "403" } else { "200" };
        assert_eq!(paired["body"]["response_code"], want, "{paired}");
    }
}
