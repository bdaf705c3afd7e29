//! The ASE's default closes every sideband connection (`enable_sideband_keepalive` is off):
//! every check then pays a TCP connect. nginx counts those answers and says so once.

use ngx_ase_tests::{client, AseDouble, Backend, Nginx};
use serde_json::Value;

#[test]
fn an_ase_that_closes_every_connection_is_counted_and_named_once() {
    // The double, like the ASE, answers `Connection: close` unless told to keep connections.
    let (closing, keeping, backend) = (AseDouble::start(&[]), AseDouble::start(&["--keepalive"]), Backend::start());
    let n = Nginx::start(&format!(
        r#"
    ase_server {closing};
    ase_upstream kept {{ server {keeping}; }}
    ase_request on;
    ase_timeout 2s;
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ proxy_pass http://{b}; }}
        location /kept/ {{ ase_pass kept; proxy_pass http://{b}; }}
        location = /status {{ ase_request off; ase_status; }}
    }}
"#,
        closing = closing.url(),
        keeping = keeping.url(),
        b = backend.addr()
    ));
    for i in 0..5 {
        assert_eq!(client().get(n.url(&format!("/a/{i}"))).send().expect("request").status(), 200);
        assert_eq!(client().get(n.url(&format!("/kept/{i}"))).send().expect("request").status(), 200);
    }
    let status: Value = client().get(n.url("/status")).send().and_then(|r| r.json()).expect("status JSON");
    assert_eq!(status["connections_closed_by_ase"], 5, "only the closing node's answers: {status}");
    let log = n.error_log();
    let warning = format!("node {} closes every sideband connection", closing.url());
    assert_eq!(log.matches(&warning).count(), 1, "{log}");
    assert!(log.contains("set enable_sideband_keepalive=true"));
    assert!(!log.contains(&format!("node {} closes", keeping.url())), "{log}");
    let prom = client().get(n.url("/status?format=prometheus")).send().and_then(|r| r.text()).expect("prometheus");
    assert!(prom.contains("\nnginx_ase_connections_closed_by_ase_total 5\n"), "{prom}");
}
