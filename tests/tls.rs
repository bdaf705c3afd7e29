//! TLS to an `https://` ASE (the double with a self-signed certificate): verification on
//! refuses it with a clear log line, a trusted CA file makes it work, `ase_ssl_verify off`
//! works and warns; a node requiring a client certificate (mutual TLS) accepts the one
//! `ase_ssl_certificate` gives and refuses nginx without it.

use std::process::Command;

use ngx_ase_tests::{client, AseDouble, Backend, Nginx};
use serde_json::Value;

/// A self-signed certificate for localhost (and 127.0.0.1) in `dir`.
fn self_signed(dir: &std::path::Path) -> (String, String) {
    let (cert, key) = (dir.join("ase.crt"), dir.join("ase.key"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl")
        .status
        .success();
    assert!(ok, "openssl req failed");
    (cert.display().to_string(), key.display().to_string())
}

/// `ase_timeout` 2 s and `ase_connect_timeout` (which bounds the TLS handshake) at its
/// default 200 ms, both stretched by the time scale: a handshake under valgrind takes longer.
fn ase_timeout() -> String {
    use ngx_ase_tests::nginx_time;
    use std::time::Duration;
    format!(
        "ase_timeout {};\n    ase_connect_timeout {};",
        nginx_time(Duration::from_secs(2)),
        nginx_time(Duration::from_millis(200))
    )
}

fn setup(extra: &str) -> (AseDouble, Backend, Nginx, tempfile::TempDir) {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(certs.path());
    let double = AseDouble::start(&["--tls-cert", &cert, "--tls-key", &key, "--keepalive"]);
    let port = double.data.rsplit(':').next().unwrap().to_string();
    let backend = Backend::start();
    let n = Nginx::start(&format!(
        r#"
    ase_server https://localhost:{port};
    ase_request on;
    {timeout}
    {extra}
    log_format ase '$ase_verdict';
    access_log logs/ase.log ase;
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ proxy_pass http://{b}; }}
    }}
"#,
        extra = extra.replace("{cert}", &cert),
        timeout = ase_timeout(),
        b = backend.addr()
    ));
    (double, backend, n, certs)
}

fn verdicts(n: &Nginx, count: usize) -> Vec<String> {
    n.log_lines("logs/ase.log", count)
}

#[test]
fn verification_on_refuses_a_self_signed_ase_with_a_clear_log_line() {
    let (double, _b, n, _c) = setup("");
    assert_eq!(client().get(n.url("/a")).send().unwrap().status(), 200, "fails open");
    assert_eq!(verdicts(&n, 1), vec!["fail_open"]);
    assert!(double.records().is_empty(), "nothing was sent to an unverified ASE");
    let log = n.error_log();
    assert!(log.contains("TLS to https://localhost:") && log.contains("certificate verify error"), "{log}");
}

#[test]
fn a_trusted_ca_file_makes_it_work_with_sni_and_name_check() {
    let (double, _b, n, _c) = setup("ase_ssl_trusted_certificate {cert};");
    for i in 0..3 {
        assert_eq!(client().get(n.url(&format!("/t{i}"))).send().unwrap().status(), 200);
    }
    assert_eq!(verdicts(&n, 3), vec!["allow"; 3]);
    assert_eq!(double.records_of("request").len(), 3);
    assert_eq!(double.stats()["connections"].as_u64(), Some(1), "TLS connections are kept alive too");
}

#[test]
fn verify_off_works_and_warns_at_startup() {
    let (double, _b, n, _c) = setup("ase_ssl_verify off;");
    assert_eq!(client().get(n.url("/o")).send().unwrap().status(), 200);
    assert_eq!(verdicts(&n, 1), vec!["allow"]);
    assert_eq!(double.records_of("request").len(), 1);
    assert!(n.error_log().contains("ase_ssl_verify is off"));
}

/// A CA and a certificate it signed for `san` (e.g. "DNS:other.example" or
/// "IP:127.0.0.1"), in `dir`: (CA file, certificate, key).
fn ca_signed(dir: &std::path::Path, san: &str) -> (String, String, String) {
    let p = |n: &str| dir.join(n).display().to_string();
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).output().expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test CA",
        "-keyout",
        &p("ca.key"),
        "-out",
        &p("ca.crt"),
    ]);
    run(&["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=ase", "-keyout", &p("ase.key"), "-out", &p("ase.csr")]);
    std::fs::write(dir.join("ext.cnf"), format!("subjectAltName={san}\n")).unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        &p("ase.csr"),
        "-CA",
        &p("ca.crt"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &p("ext.cnf"),
        "-out",
        &p("ase.crt"),
    ]);
    (p("ca.crt"), p("ase.crt"), p("ase.key"))
}

/// nginx whose only ASE node is `scheme_host` (e.g. "https://127.0.0.1") on the double's
/// port, trusting `ca`.
fn with_node(double: &AseDouble, backend: &Backend, host: &str, ca: &str) -> Nginx {
    Nginx::start(&node_http(double, backend, host, ca, ""))
}

/// The http block of `with_node`, with `extra` directives.
fn node_http(double: &AseDouble, backend: &Backend, host: &str, ca: &str, extra: &str) -> String {
    let port = double.data.rsplit(':').next().unwrap().to_string();
    format!(
        r#"
    ase_server https://{host}:{port};
    ase_request on;
    {timeout}
    ase_ssl_trusted_certificate {ca};
    {extra}
    log_format ase '$ase_verdict';
    access_log logs/ase.log ase;
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ proxy_pass http://{b}; }}
    }}
"#,
        timeout = ase_timeout(),
        b = backend.addr()
    )
}

#[test]
fn a_trusted_certificate_for_another_name_or_address_is_refused_before_any_request_byte() {
    for (san, host) in
        [("DNS:other.example", "localhost"), ("IP:127.0.0.2", "127.0.0.1"), ("DNS:localhost", "127.0.0.1")]
    {
        let certs = tempfile::tempdir().unwrap();
        let (ca, cert, key) = ca_signed(certs.path(), san);
        let double = AseDouble::start(&["--tls-cert", &cert, "--tls-key", &key, "--keepalive"]);
        let backend = Backend::start();
        let n = with_node(&double, &backend, host, &ca);
        assert_eq!(client().get(n.url("/x")).send().unwrap().status(), 200, "fails open ({san} for {host})");
        assert_eq!(verdicts(&n, 1), vec!["fail_open"], "{san} for {host}");
        assert!(double.records().is_empty(), "the ASE saw a request although its certificate names {san}, not {host}");
        let log = n.error_log();
        assert!(
            log.contains("certificate verify error") && log.contains("mismatch"),
            "the reason is logged ({san} for {host}): {log}"
        );
    }
}

#[test]
fn a_node_given_by_ip_address_works_with_a_certificate_naming_that_address() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = ca_signed(certs.path(), "IP:127.0.0.1");
    let double = AseDouble::start(&["--tls-cert", &cert, "--tls-key", &key, "--keepalive"]);
    let backend = Backend::start();
    let n = with_node(&double, &backend, "127.0.0.1", &ca);
    for i in 0..2 {
        assert_eq!(client().get(n.url(&format!("/ip{i}"))).send().unwrap().status(), 200);
    }
    assert_eq!(verdicts(&n, 2), vec!["allow"; 2]);
    assert_eq!(double.records_of("request").len(), 2);
}

/// A client certificate (for nginx) signed by the CA that `ca_signed` made in `dir`:
/// (certificate, key).
fn client_signed(dir: &std::path::Path) -> (String, String) {
    let p = |n: &str| dir.join(n).display().to_string();
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).output().expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=nginx",
        "-keyout",
        &p("client.key"),
        "-out",
        &p("client.csr"),
    ]);
    std::fs::write(dir.join("client.cnf"), "extendedKeyUsage=clientAuth\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        &p("client.csr"),
        "-CA",
        &p("ca.crt"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &p("client.cnf"),
        "-out",
        &p("client.crt"),
    ]);
    (p("client.crt"), p("client.key"))
}

#[test]
fn a_node_requiring_a_client_certificate_accepts_ours_and_refuses_us_without_it() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = ca_signed(certs.path(), "IP:127.0.0.1");
    let (client_cert, client_key) = client_signed(certs.path());
    let double = AseDouble::start(&["--tls-cert", &cert, "--tls-key", &key, "--tls-client-ca", &ca, "--keepalive"]);
    let backend = Backend::start();
    let http = |extra: &str| node_http(&double, &backend, "127.0.0.1", &ca, extra);

    // Without a client certificate: the handshake fails, nothing reaches the ASE.
    let n = Nginx::start(&http(""));
    assert_eq!(client().get(n.url("/no-cert")).send().unwrap().status(), 200, "fails open");
    assert_eq!(verdicts(&n, 1), vec!["fail_open"]);
    assert!(double.records().is_empty(), "the double served a client without a certificate");
    // TLS 1.3: the node's refusal arrives as an alert after nginx's side of the handshake.
    assert!(n.error_log().contains("certificate required"), "nginx logged why:\n{}", n.error_log());
    drop(n);

    // With it, given by paths relative to the configuration prefix (conf/), which nginx
    // resolves as for its own file directives.
    let port_n = ngx_ase_tests::free_port();
    let config = ngx_ase_tests::nginx::config_with_http(
        &http("ase_ssl_certificate client.crt;\n    ase_ssl_certificate_key client.key;")
            .replace("{port}", &port_n.to_string()),
    );
    let mut n = Nginx::prepare(&config);
    std::fs::copy(&client_cert, n.path("conf/client.crt")).unwrap();
    std::fs::copy(&client_key, n.path("conf/client.key")).unwrap();
    n.port = port_n;
    n.launch();
    for i in 0..2 {
        assert_eq!(client().get(n.url(&format!("/cert{i}"))).send().unwrap().status(), 200);
    }
    assert_eq!(verdicts(&n, 2), vec!["allow"; 2]);
    assert_eq!(double.records_of("request").len(), 2, "the double recorded both checks");
}

/// A plain primary and a TLS backup (verified against its certificate): with the primary
/// dead, the backup answers the checks, its verdicts included.
#[test]
fn with_the_primary_dead_a_tls_backup_answers_and_blocks() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(certs.path());
    let mut primary = AseDouble::start(&["--keepalive"]);
    let backup = AseDouble::start(&["--tls-cert", &cert, "--tls-key", &key, "--keepalive"]);
    let backup_port = backup.data.rsplit(':').next().unwrap().to_string();
    let backend = Backend::start();
    let n = Nginx::start(&format!(
        r#"
    ase_server {primary} max_fails=1 fail_timeout=30s;
    ase_server https://localhost:{backup_port} backup;
    ase_ssl_trusted_certificate {cert};
    ase_request on;
    {timeout}
    log_format ase '$ase_verdict';
    access_log logs/ase.log ase;
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ proxy_pass http://{b}; }}
    }}
"#,
        primary = primary.url(),
        timeout = ase_timeout(),
        b = backend.addr()
    ));
    assert_eq!(client().get(n.url("/before")).send().unwrap().status(), 200);
    assert_eq!(primary.records_of("request").len(), 1, "the primary answers while it lives");
    primary.stop();
    assert_eq!(client().get(n.url("/failover")).send().unwrap().status(), 200);
    backup.deny("token", "evil-bearer");
    let blocked = client().get(n.url("/blocked")).header("Authorization", "Bearer evil-bearer").send().unwrap();
    assert_eq!(blocked.status(), 403, "the TLS backup's verdict is followed");
    assert_eq!(verdicts(&n, 3), vec!["allow", "allow", "block"]);
    let urls: Vec<Value> = backup.records_of("request").iter().map(|r| r["body"]["url"].clone()).collect();
    assert_eq!(urls, vec![Value::from("/failover"), Value::from("/blocked")], "both checks went to the TLS backup");
    assert_eq!(backend.paths(), vec!["/before", "/failover"]);
}
