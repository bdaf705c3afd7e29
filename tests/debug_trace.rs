//! The debug trace: with `error_log ... debug` (or `debug_connection` for a client), one
//! line per check and per report (group, node, status or error, milliseconds, correlation
//! ID, verdict) and one per sideband connection opened, reused or closed; nothing at all
//! at `info`, or from an nginx built without `--with-debug` (like nginx's own debug log).
//! Real nginx, an ASE double and a backend on loopback.

use std::net::IpAddr;
use std::time::Duration;

use ngx_ase_tests::nginx::{binary_and_modules, config_with_http, Nginx};
use ngx_ase_tests::{free_port, wait_for_quiet, AseDouble, Backend};

/// Whether the nginx under test writes debug lines at all (`--with-debug`).
fn nginx_has_debug() -> bool {
    let (bin, _) = binary_and_modules();
    let out = std::process::Command::new(bin).arg("-V").output().expect("nginx -V");
    String::from_utf8_lossy(&out.stderr).contains("--with-debug")
}

/// nginx with its error log at `level`, `events_extra` in `events {}`, checks and reports
/// to the double, and the correlation ID of each request in `logs/cid.log`.
fn start(double: &AseDouble, backend: &Backend, level: &str, events_extra: &str) -> Nginx {
    let port = free_port();
    let http = format!(
        r#"
    ase_server {ase};
    ase_upstream eu {{ server {ase}; }}
    ase_request on;
    ase_response on;
    log_format cid '$request_uri $ase_verdict $ase_correlation_id';
    access_log logs/cid.log cid;
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://{backend}; }}
        location /eu/ {{ ase_pass eu; proxy_pass http://{backend}; }}
    }}
"#,
        ase = double.url(),
        backend = backend.addr()
    );
    let config = config_with_http(&http)
        .replace("error_log logs/error.log debug;", &format!("error_log logs/error.log {level};"))
        .replace(
            "events { worker_connections 4096; }",
            &format!("events {{ worker_connections 4096; {events_extra} }}"),
        );
    let mut n = Nginx::prepare(&config);
    n.port = port;
    n.launch();
    n
}

fn get_from(n: &Nginx, from: &str, path: &str) -> u16 {
    let client = reqwest::blocking::Client::builder()
        .local_address(from.parse::<IpAddr>().expect("address"))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    client.get(n.url(path)).send().expect("request").status().as_u16()
}

/// The trace lines in the error log (the part after nginx's "[debug] pid#tid: [*conn] " prefix).
fn trace_lines(n: &Nginx) -> Vec<String> {
    n.error_log()
        .lines()
        .filter_map(|l| l.split_once("] ").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split_once(": ").map(|(_, msg)| msg))
        // A connection's log lines carry its number first: "*12 ase: ...".
        .map(|msg| if msg.starts_with('*') { msg.split_once(' ').map_or(msg, |(_, m)| m) } else { msg })
        .filter(|m| m.starts_with("ase: check ") || m.starts_with("ase: report ") || m.starts_with("ase: connection "))
        .map(String::from)
        .collect()
}

/// The correlation ID nginx logged for the request to `path`.
fn cid_of(n: &Nginx, path: &str, lines: usize) -> String {
    let log = n.log_lines("logs/cid.log", lines);
    let line =
        log.iter().find(|l| l.starts_with(&format!("{path} "))).unwrap_or_else(|| panic!("{path} not logged: {log:?}"));
    line.rsplit(' ').next().unwrap_or("").to_string()
}

/// Waits until the trace holds `n` report lines (a report ends after the client's answer).
fn wait_reports(n: &Nginx, count: usize) -> Vec<String> {
    let _ = wait_for_quiet(Duration::from_secs(10), || {
        trace_lines(n).iter().filter(|l| l.starts_with("ase: report ")).count() >= count
    });
    trace_lines(n)
}

#[test]
fn at_debug_each_check_report_and_connection_has_its_line() {
    let (double, backend) = (AseDouble::start(&["--keepalive"]), Backend::start());
    let n = start(&double, &backend, "debug", "");
    double.deny("ip", "127.0.0.1");
    assert_eq!(get_from(&n, "127.0.0.1", "/blocked"), 403);
    double.allow("ip", "127.0.0.1");
    assert_eq!(get_from(&n, "127.0.0.1", "/eu/allowed"), 200);
    let lines = wait_reports(&n, 2);
    if !nginx_has_debug() {
        assert!(lines.is_empty(), "an nginx without --with-debug writes no debug line: {lines:?}");
        return;
    }
    let url = double.url();
    let (blocked, allowed) = (cid_of(&n, "/blocked", 2), cid_of(&n, "/eu/allowed", 2));
    let has = |prefix: &str| lines.iter().any(|l| l.starts_with(prefix));
    let check_blocked = format!("ase: check group=default node={url} status=403 ms=");
    assert!(has(&check_blocked), "{lines:#?}");
    let line = lines.iter().find(|l| l.starts_with(&check_blocked)).unwrap();
    assert!(line.ends_with(&format!(" cid={blocked} verdict=block")), "{line}");
    let ms: u64 = line.split(" ms=").nth(1).and_then(|r| r.split(' ').next()).and_then(|v| v.parse().ok()).expect("ms");
    assert!(ms < 10_000, "{line}");
    let check_allowed = lines
        .iter()
        .find(|l| l.starts_with(&format!("ase: check group=eu node={url} status=200 ms=")))
        .expect("the eu check");
    assert!(check_allowed.ends_with(&format!(" cid={allowed} verdict=allow")), "{lines:#?}");
    for cid in [&blocked, &allowed] {
        assert_eq!(
            lines.iter().filter(|l| l.starts_with("ase: report ") && l.ends_with(&format!(" cid={cid}"))).count(),
            1,
            "one report line per request, with its correlation ID: {lines:#?}"
        );
    }
    assert!(has(&format!("ase: report group=eu node={url} status=200 ms=")), "{lines:#?}");
    assert!(has(&format!("ase: connection opened to {url} (group default)")), "{lines:#?}");
    assert!(has(&format!("ase: connection opened to {url} (group eu)")), "{lines:#?}");
    assert!(
        has(&format!("ase: connection reused to {url} (group ")),
        "the reports reuse the checks' connections: {lines:#?}"
    );
    assert_eq!(lines.iter().filter(|l| l.starts_with("ase: check ")).count(), 2, "{lines:#?}");

    // The ASE goes away: the idle connections close, and the next check's error is traced.
    let mut double = double;
    double.stop();
    assert!(
        wait_for_quiet(Duration::from_secs(10), || trace_lines(&n)
            .iter()
            .any(|l| l.starts_with("ase: connection closed to"))),
        "{:#?}",
        trace_lines(&n)
    );
    assert_eq!(get_from(&n, "127.0.0.1", "/down"), 200);
    let cid = cid_of(&n, "/down", 3);
    let lines = trace_lines(&n);
    assert!(
        lines.iter().any(|l| l.starts_with(&format!("ase: check group=default node={url} error=refused ms="))
            && l.ends_with(&format!(" cid={cid} verdict=fail"))),
        "{lines:#?}"
    );
}

#[test]
fn at_info_nothing_is_traced_and_debug_connection_traces_only_its_client() {
    let (double, backend) = (AseDouble::start(&["--keepalive"]), Backend::start());
    let n = start(&double, &backend, "info", "debug_connection 127.0.0.2;");
    assert_eq!(get_from(&n, "127.0.0.1", "/quiet"), 200);
    double.wait_records("response", 1);
    assert_eq!(get_from(&n, "127.0.0.2", "/traced"), 200);
    let lines = wait_reports(&n, 1);
    if !nginx_has_debug() {
        assert!(lines.is_empty(), "{lines:?}");
        return;
    }
    let (quiet, traced) = (cid_of(&n, "/quiet", 2), cid_of(&n, "/traced", 2));
    assert!(!lines.iter().any(|l| l.contains(&quiet)), "the client at 127.0.0.1 is not traced: {lines:#?}");
    assert!(lines.iter().any(|l| l.starts_with("ase: check group=default ") && l.ends_with(&format!(" cid={traced} verdict=allow"))),
        "{lines:#?}");
    assert!(
        lines.iter().any(|l| l.starts_with("ase: report group=default ") && l.ends_with(&format!(" cid={traced}"))),
        "{lines:#?}"
    );
    assert_eq!(lines.iter().filter(|l| l.starts_with("ase: check ")).count(), 1, "{lines:#?}");
}

/// The request module's own line gives each checked request's final verdict (the channel's
/// says `fail` for an ASE error; the location's `ase_fail_mode` decides), with its
/// correlation ID; and no line of the log, at debug, holds the ASE token or a value of the
/// client's headers but nginx's own header lines.
#[test]
fn at_debug_each_verdict_has_its_line_and_no_secret_is_logged() {
    const TOKEN: &str = "tok3n-never-in-logs-0123456789ab";
    const BEARER: &str = "bearer-never-in-ase-lines-42";
    let (mut double, backend) = (AseDouble::start(&["--token", TOKEN]), Backend::start());
    let port = free_port();
    let http = format!(
        r#"
    ase_server {ase};
    ase_token_file ase.token;
    ase_request on;
    ase_response on;
    ase_timeout 2s;
    log_format cid '$request_uri $ase_verdict $ase_correlation_id';
    access_log logs/cid.log cid;
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://{backend}; }}
        location /closed/ {{ ase_fail_mode closed; proxy_pass http://{backend}; }}
        location /learn/ {{ ase_request monitor; proxy_pass http://{backend}; }}
    }}
"#,
        ase = double.url(),
        backend = backend.addr()
    );
    let mut n = Nginx::prepare(&config_with_http(&http));
    let token = n.write_file("conf/ase.token", TOKEN);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    n.port = port;
    n.launch();
    let get = |path: &str| {
        let auth = format!("Bearer {BEARER}");
        let r = ngx_ase_tests::client().get(n.url(path)).header("Authorization", auth).send().expect("request");
        r.status().as_u16()
    };
    double.deny("token", BEARER);
    assert_eq!(get("/blocked"), 403);
    assert_eq!(get("/learn/x"), 200);
    double.allow("token", BEARER);
    assert_eq!(get("/allowed"), 200);
    double.wait_records("response", 3);
    double.stop();
    assert_eq!(get("/open"), 200);
    assert_eq!(get("/closed/x"), 503);
    let paths = [
        ("/blocked", "block"),
        ("/learn/x", "monitor"),
        ("/allowed", "allow"),
        ("/open", "fail_open"),
        ("/closed/x", "fail_closed"),
    ];
    let log = n.error_log();
    if nginx_has_debug() {
        for (path, verdict) in paths {
            let line = format!("ase: verdict={verdict} cid={}", cid_of(&n, path, paths.len()));
            assert_eq!(
                log.matches(&format!("{line}\n")).count() + log.matches(&format!("{line},")).count(),
                1,
                "{path}: {line}"
            );
        }
    }
    assert!(!log.contains(TOKEN), "the ASE token is in the error log");
    // One entry per log call; nginx's dump of the request it sends upstream spans lines.
    let mut entries: Vec<String> = Vec::new();
    for line in log.lines() {
        match entries.last_mut() {
            Some(last) if !line.starts_with("20") => last.push_str(line),
            _ => entries.push(line.to_string()),
        }
    }
    for entry in entries.iter().filter(|e| e.contains(BEARER)) {
        // nginx's own debug lines for the headers it reads and the ones it passes on.
        assert!(
            entry.contains(" http header: \"") || entry.contains(" http proxy header:"),
            "a header value in a line that is not nginx's own header line: {entry}"
        );
    }
}
