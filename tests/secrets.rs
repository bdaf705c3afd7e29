//! The `ASE-Token` never shows: every log, status page, error message and client response
//! the modules produce along allowed, blocked and failing requests (bad token, ASE errors,
//! timeouts, a dead ASE, a reload), at debug level, is searched for the token (whole, and
//! either half of it) and must not contain it.
//!
//! Searched: nginx's error log (debug level, plus what it wrote to stderr) and access logs
//! (one with the `$ase_*` variables), the output of `nginx -t`, `nginx -T` (token file
//! form: an inline `ase_token` is shown there by design) and `nginx -s reload`, the status
//! page as JSON and as Prometheus text, the headers and bodies nginx sent to clients, and
//! the ASE double's own call log.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ngx_ase_tests::nginx::{binary_and_modules, config_with_http};
use ngx_ase_tests::{client, free_port, wait_for_quiet, AseDouble, Backend, Nginx, TEST_TOKEN};
use serde_json::json;

/// A token of the same shape that the double does not accept.
const WRONG_TOKEN: &str = "wr0ngt0k3nwr0ngt0k3nwr0ngt0k3n00";

/// How nginx is given the token.
#[derive(Clone, Copy, PartialEq)]
enum TokenForm {
    File,
    Inline,
}

/// Everything produced so far, by name, to be searched.
#[derive(Default)]
struct Outputs(Vec<(String, String)>);

impl Outputs {
    fn add(&mut self, name: impl Into<String>, text: impl Into<String>) {
        self.0.push((name.into(), text.into()));
    }

    fn add_bytes(&mut self, name: impl Into<String>, bytes: &[u8]) {
        self.add(name, String::from_utf8_lossy(bytes).into_owned());
    }

    /// Every file under `dir` (recursively), except the token file itself.
    fn add_dir(&mut self, label: &str, dir: &Path) {
        let Ok(entries) = fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                self.add_dir(label, &p);
            } else if p.file_name().is_some_and(|n| n != "ase.token") {
                self.add_bytes(format!("{label}: {}", p.display()), &fs::read(&p).unwrap_or_default());
            }
        }
    }

    /// Panics naming each output that holds `secret` or either half of it.
    fn assert_free_of(&self, secret: &str) {
        let half = secret.len() / 2;
        let needles = [secret, &secret[..half], &secret[half..]];
        let leaks: Vec<String> = self
            .0
            .iter()
            .filter(|(_, text)| needles.iter().any(|n| text.contains(n)))
            .map(|(name, text)| {
                let line = text.lines().find(|l| needles.iter().any(|n| l.contains(n))).unwrap_or("");
                format!("{name}: {line}")
            })
            .collect();
        assert!(leaks.is_empty(), "the token leaked into:\n{}", leaks.join("\n"));
    }

    fn total_len(&self) -> usize {
        self.0.iter().map(|(_, t)| t.len()).sum()
    }
}

struct Env {
    nginx: Nginx,
    double: AseDouble,
    _backend: Backend,
    out: Outputs,
}

/// nginx (checks, reports, zone, status page, `$ase_*` access log) in front of a backend,
/// with the double requiring `TEST_TOKEN` and nginx sending `sent`.
fn start(sent: &str, form: TokenForm) -> Env {
    let double = AseDouble::start(&["--token", TEST_TOKEN, "--keepalive"]);
    let backend = Backend::start();
    let port = free_port();
    let mut nginx = Nginx::prepare("");
    let token_file = nginx.write_file("conf/ase.token", &format!("{sent}\n"));
    fs::set_permissions(&token_file, fs::Permissions::from_mode(0o600)).expect("chmod token file");
    let token_line = match form {
        TokenForm::File => format!("ase_token_file {};", token_file.display()),
        TokenForm::Inline => format!("ase_token {sent};"),
    };
    let http = format!(
        r#"
    ase_server {ase} max_fails=1 fail_timeout=1s;
    {token_line}
    ase_timeout 500ms;
    ase_connect_timeout 300ms;
    ase_zone ase 1m;
    ase_request on;
    ase_response on;
    ase_user_header X-User;
    log_format ase '$remote_addr "$request" $status $ase_verdict $ase_correlation_id $ase_time "$http_authorization"';
    access_log logs/ase.log ase;
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://{backend}; }}
        location /closed/ {{ ase_fail_mode closed; proxy_pass http://{backend}; }}
        location = /status {{ ase_request off; ase_response off; ase_status; }}
    }}
"#,
        ase = double.url(),
        backend = backend.addr(),
    );
    nginx.write_file("conf/nginx.conf", &config_with_http(&http));
    nginx.port = port;
    let mut out = Outputs::default();
    let t = nginx_cmd(&nginx, &["-t"]);
    assert!(t.status.success(), "nginx -t failed:\n{}", String::from_utf8_lossy(&t.stderr));
    out.add_bytes("nginx -t", &[t.stdout, t.stderr].concat());
    nginx.launch();
    Env { nginx, double, _backend: backend, out }
}

fn nginx_cmd(n: &Nginx, args: &[&str]) -> std::process::Output {
    let (bin, _) = binary_and_modules();
    Command::new(bin)
        .arg("-p")
        .arg(n.prefix.path())
        .args(["-c", "conf/nginx.conf"])
        .args(args)
        .output()
        .expect("run nginx")
}

fn nginx_has_debug() -> bool {
    let (bin, _) = binary_and_modules();
    Command::new(bin)
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).contains("--with-debug"))
        .unwrap_or(false)
}

impl Env {
    /// A request; its status, headers and body are kept for the search.
    fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> u16 {
        let mut req = client().get(self.nginx.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().expect("request through nginx");
        let status = resp.status().as_u16();
        let head = format!("{:?}", resp.headers());
        let body = resp.bytes().map(|b| b.to_vec()).unwrap_or_default();
        self.out.add(format!("response to {path}"), format!("{status} {head}\n{}", String::from_utf8_lossy(&body)));
        status
    }

    fn status_pages(&mut self, when: &str) {
        for (label, path) in [("status JSON", "/status"), ("status Prometheus", "/status?format=prometheus")] {
            let resp = client().get(self.nginx.url(path)).send().expect("status page");
            assert_eq!(resp.status(), 200, "{path}");
            let text = resp.text().expect("status page text");
            assert!(!text.is_empty());
            self.out.add(format!("{label} ({when})"), text);
        }
    }

    /// Allowed, blocked, a bad ASE status, a timeout, garbage, a reset, a reload, a dead ASE.
    fn drive(&mut self, token_accepted: bool) {
        // allowed either way: a 401 is an ASE error, and fails open
        let ok = 200;
        assert_eq!(self.get("/api/allowed", &[("X-User", "alice")]), ok);
        self.double.deny("token", "evil-bearer");
        let blocked = self.get("/api/blocked", &[("Authorization", "Bearer evil-bearer")]);
        assert_eq!(blocked, if token_accepted { 403 } else { 200 });
        assert_eq!(self.get("/closed/x", &[]), if token_accepted { 200 } else { 503 });
        self.status_pages("after allowed and blocked");

        for fault in [
            json!({"kind": "status", "status": 500, "calls": "request", "count": 1}),
            json!({"kind": "delay", "ms": 1500, "calls": "request", "count": 1}),
            json!({"kind": "garbage", "calls": "request", "count": 1}),
            json!({"kind": "reset", "calls": "request", "count": 1}),
            json!({"kind": "close_mid_body", "calls": "request", "count": 1}),
        ] {
            self.double.fault(fault.clone());
            assert_eq!(self.get("/api/fault", &[]), 200, "{fault}: fails open");
            self.double.clear_fault();
            // let a node marked down come back (fail_timeout=1s)
            std::thread::sleep(Duration::from_millis(1100));
        }
        self.double.fault(json!({"kind": "delay", "ms": 1500, "calls": "request", "count": 1}));
        assert_eq!(self.get("/closed/slow", &[]), 503, "timeout fails closed");
        self.double.clear_fault();
        std::thread::sleep(Duration::from_millis(1100));

        let reload = nginx_cmd(&self.nginx, &["-s", "reload"]);
        assert!(reload.status.success(), "nginx -s reload: {}", String::from_utf8_lossy(&reload.stderr));
        self.out.add_bytes("nginx -s reload", &[reload.stdout, reload.stderr].concat());
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(self.get("/api/after-reload", &[]), ok);

        // Response reports reach the double before it stops.
        let _ = wait_for_quiet(Duration::from_secs(5), || self.double.records_of("response").len() >= 3);
        self.double.stop();
        for i in 0..3 {
            assert_eq!(self.get(&format!("/api/ase-down-{i}"), &[]), 200, "a dead ASE fails open");
        }
        assert_eq!(self.get("/closed/ase-down", &[]), 503);
        self.status_pages("with the ASE down");
    }

    /// Gathers the logs of nginx and of the double (the double stopped first).
    fn collect(&mut self) {
        // access logs are written just after each response
        let _ = self.nginx.log_lines("logs/ase.log", 10);
        self.out.add("nginx error log and stderr", self.nginx.error_log());
        let logs = self.nginx.path("logs");
        self.out.add_dir("nginx logs", &logs);
        let calls = fs::read_to_string(self.double.dir.path().join("calls.log")).unwrap_or_default();
        assert!(calls.lines().count() >= 5, "the double logged its calls:\n{calls}");
        self.out.add("ASE double call log", calls);
        self.out.add_dir("ASE double dir", self.double.dir.path());
    }

    fn check_debug_logged(&self) {
        if nginx_has_debug() {
            let log = self.nginx.error_log();
            assert!(log.contains("[debug]"), "nginx has --with-debug but logged no debug lines");
        }
    }
}

#[test]
fn the_token_from_a_file_is_in_no_log_status_page_response_or_nginx_t_output() {
    let mut env = start(TEST_TOKEN, TokenForm::File);
    let dump = nginx_cmd(&env.nginx, &["-T"]);
    assert!(dump.status.success());
    let dump_text = String::from_utf8_lossy(&dump.stdout).into_owned();
    assert!(dump_text.contains("ase_token_file"), "nginx -T shows the configuration:\n{dump_text}");
    env.out.add_bytes("nginx -T", &[dump.stdout, dump.stderr].concat());

    env.drive(true);
    env.collect();
    let calls = fs::read_to_string(env.double.dir.path().join("calls.log")).unwrap_or_default();
    assert!(calls.contains(r#""token":"ok""#), "the double accepted the token:\n{calls}");
    assert!(env.nginx.error_log().contains("is down"), "the failures were logged");
    env.check_debug_logged();
    assert!(env.out.total_len() > 10_000, "searched too little: {} bytes", env.out.total_len());
    env.out.assert_free_of(TEST_TOKEN);
}

#[test]
fn a_wrong_token_is_in_no_log_status_page_or_response_either() {
    let mut env = start(WRONG_TOKEN, TokenForm::File);
    let dump = nginx_cmd(&env.nginx, &["-T"]);
    assert!(dump.status.success());
    env.out.add_bytes("nginx -T", &[dump.stdout, dump.stderr].concat());

    env.drive(false);
    env.collect();
    let calls = fs::read_to_string(env.double.dir.path().join("calls.log")).unwrap_or_default();
    assert!(calls.contains(r#""token":"wrong""#), "the double saw a wrong token:\n{calls}");
    assert!(env.nginx.error_log().contains("401"), "the 401 was logged:\n{}", env.nginx.error_log());
    env.check_debug_logged();
    env.out.assert_free_of(WRONG_TOKEN);
    env.out.assert_free_of(TEST_TOKEN);
}

#[test]
fn an_inline_token_is_in_no_log_or_status_page() {
    // `nginx -T` prints an inline `ase_token` (the user put it in the configuration, and
    // `nginx -t` warns about it): only the logs, pages and responses are searched here.
    let mut env = start(TEST_TOKEN, TokenForm::Inline);
    env.drive(true);
    env.collect();
    env.check_debug_logged();
    env.out.assert_free_of(TEST_TOKEN);
}
