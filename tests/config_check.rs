//! `nginx -t` against the real nginx: every directive accepted in its contexts, and every
//! configuration mistake reported with a clear message naming the file and line.

use ngx_ase_tests::nginx::{binary_and_modules, config_with_http, Nginx, MODULE_FILES};
use ngx_ase_tests::TEST_TOKEN;

/// Runs `nginx -t` on `config`; returns (success, stderr).
fn nginx_t(config: &str, token: Option<(&str, u32)>) -> (bool, String, Nginx) {
    let n = Nginx::prepare(config);
    if let Some((content, mode)) = token {
        let p = n.write_file("conf/ase.token", content);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    let out = n.test_config();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned(), n)
}

fn expect_error(http: &str, needle: &str, line: usize) {
    let config = config_with_http(http);
    let (ok, err, n) = nginx_t(&config, Some((TEST_TOKEN, 0o600)));
    assert!(!ok, "nginx -t accepted:\n{config}");
    let conf_path = n.path("conf/nginx.conf");
    let place = format!("{}:{}", conf_path.display(), line);
    assert!(err.contains(needle), "expected {needle:?} in:\n{err}");
    assert!(err.contains(&place), "expected the place {place} in:\n{err}");
    assert!(!err.contains(TEST_TOKEN), "the token leaked into nginx -t output:\n{err}");
}

/// The line number (1-based) in the full config of the http block's line `i` (0-based).
fn http_line(i: usize) -> usize {
    // modules (3), user (maybe), worker_processes, error_log, pid, events, "http {", access_log
    let header = config_with_http("").lines().position(|l| l.contains("access_log")).unwrap() + 1;
    header + 1 + i
}

const EVERY_DIRECTIVE: &str = r#"
    ase_server http://127.0.0.1:18000 max_fails=3 fail_timeout=30s;
    ase_server http://localhost:18001 backup;
    ase_token_file ase.token;
    ase_connect_timeout 100ms;
    ase_timeout 1s;
    ase_keepalive 16;
    ase_ssl_verify on;
    ase_response_queue 128;
    ase_request on;
    ase_response on;
    ase_fail_mode open;
    ase_block_status 403;
    ase_user_header X-User;
    ase_client_id $http_x_client_id;
    ase_hide_header Cookie Authorization;
    ase_hide_header X-Secret;
    ase_request_max_size 32k;
    ase_upstream eu {
        server http://127.0.0.1:18002 max_fails=2 fail_timeout=5s;
        server http://127.0.0.1:18003 backup;
        keepalive 8;
        token_file ase.token;
    }
    ase_pass default;
    server {
        listen 127.0.0.1:1;
        ase_pass eu;
        ase_timeout 800ms;
        ase_fail_mode closed;
        ase_request_after_access off;
        location / { ase_request off; ase_response off; ase_connect_timeout 50ms; ase_block_status 429; return 200; }
        location /api { ase_user_header X-Consumer; ase_fail_mode open; ase_request_max_size 1m; return 200; }
        location /learn { ase_request monitor; ase_user "$remote_user"; ase_client_id ""; ase_hide_header x-api-key; return 200; }
        location /late { ase_request_after_access on; ase_user $remote_user; return 200; }
        location = /ase-status { ase_status; }
    }
"#;

#[test]
fn every_directive_is_accepted() {
    let (ok, err, _n) = nginx_t(&config_with_http(EVERY_DIRECTIVE), Some((TEST_TOKEN, 0o600)));
    assert!(ok, "nginx -t failed:\n{err}");
    assert!(!err.contains("[warn]"), "unexpected warning:\n{err}");
}

#[test]
fn inline_token_and_https_with_verify_off_warn() {
    let http = "ase_server https://127.0.0.1:18443;\nase_token abcdefghij0123456789abcdefghij01;\nase_ssl_verify off;";
    let (ok, err, _n) = nginx_t(&config_with_http(http), None);
    assert!(ok, "{err}");
    assert!(err.contains("[warn]") && err.contains("ase_ssl_verify is off"), "{err}");
}

#[test]
fn world_readable_token_file_warns() {
    let http = "ase_server http://127.0.0.1:18000;\nase_token_file ase.token;";
    let (ok, err, _n) = nginx_t(&config_with_http(http), Some((TEST_TOKEN, 0o644)));
    assert!(ok, "{err}");
    assert!(err.contains("is readable by every user"), "{err}");
    assert!(!err.contains(TEST_TOKEN), "{err}");
}

#[test]
fn bad_urls_are_errors_with_file_and_line() {
    expect_error("ase_server ftp://ase:8000;", "must start with http:// or https://", http_line(0));
    expect_error("\nase_server http://ase:99999;", "invalid port", http_line(1));
    expect_error("ase_server http://ase:8000/ase/request;", "give only scheme, host and port", http_line(0));
    expect_error("ase_server http://ase.invalid:8000;", "host not found", http_line(0));
    expect_error(
        "ase_server http://127.0.0.1:8000 weight=0;",
        "invalid weight value \"0\" in \"ase_server\" directive",
        http_line(0),
    );
    expect_error("ase_server http://127.0.0.1:8000 fail_timeout=soon;", "invalid fail_timeout", http_line(0));
    expect_error(
        "ase_server http://127.0.0.1:8000;\nase_server http://127.0.0.1:8000;",
        "is listed twice",
        http_line(1),
    );
}

/// `count` `ase_server` lines, each a different loopback port (one address each).
fn many_servers(count: usize) -> String {
    (0..count).map(|i| format!("ase_server http://127.0.0.1:{};\n", 20_000 + i)).collect()
}

#[test]
fn more_than_64_node_addresses_is_an_error_at_the_line_that_goes_over() {
    let (ok, err, _n) = nginx_t(
        &config_with_http(&format!("{}ase_token_file ase.token;", many_servers(64))),
        Some((TEST_TOKEN, 0o600)),
    );
    assert!(ok, "64 nodes are allowed:\n{err}");
    expect_error(
        &many_servers(65),
        "http://127.0.0.1:20064: this makes 65 ASE node addresses; at most 64 are supported",
        http_line(64),
    );
}

#[test]
fn nodes_past_the_status_pages_16_draw_a_warning() {
    let http = format!("{}ase_token_file ase.token;", many_servers(17));
    let (ok, err, _n) = nginx_t(&config_with_http(&http), Some((TEST_TOKEN, 0o600)));
    assert!(ok, "{err}");
    assert!(
        err.contains("[warn]") && err.contains("keeps statistics for the first 16 of the 17 ASE node addresses"),
        "{err}"
    );
    let (ok, err, _n) = nginx_t(
        &config_with_http(&format!("{}ase_token_file ase.token;", many_servers(16))),
        Some((TEST_TOKEN, 0o600)),
    );
    assert!(ok && !err.contains("[warn]"), "{err}");
}

#[test]
fn token_file_problems_are_errors() {
    expect_error("ase_token_file /nonexistent/ase.token;", "cannot read \"/nonexistent/ase.token\"", http_line(0));
    expect_error("ase_token_file ase.token;\nase_token abc;", "already set", http_line(1));
    let (ok, err, n) = nginx_t(&config_with_http("ase_token_file ase.token;"), Some(("  \n", 0o600)));
    assert!(!ok && err.contains("the token is empty"), "{err}");
    assert!(err.contains(&format!("{}:{}", n.path("conf/nginx.conf").display(), http_line(0))), "{err}");
}

#[test]
fn token_file_unreadable_is_an_error() {
    // root reads any file, so make the path a directory instead.
    let config = config_with_http("ase_token_file tokendir;");
    let n = Nginx::prepare(&config);
    std::fs::create_dir_all(n.path("conf/tokendir")).unwrap();
    let out = n.test_config();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("cannot read"), "{err}");
}

#[test]
fn bad_values_are_errors() {
    let s = "ase_server http://127.0.0.1:18000;\n";
    expect_error(&format!("{s}ase_fail_mode maybe;"), "it must be \"open\" or \"closed\"", http_line(1));
    expect_error(&format!("{s}ase_request yes;"), "it must be \"on\", \"off\" or \"monitor\"", http_line(1));
    expect_error(&format!("{s}ase_response 1;"), "it must be \"on\" or \"off\"", http_line(1));
    expect_error(&format!("{s}ase_timeout 5parsecs;"), "\"ase_timeout\" directive invalid value", http_line(1));
    expect_error(
        &format!("{s}ase_connect_timeout -1;"),
        "\"ase_connect_timeout\" directive invalid value",
        http_line(1),
    );
    expect_error(&format!("{s}ase_keepalive many;"), "invalid number", http_line(1));
    expect_error(&format!("{s}ase_block_status 200;"), "from 400 to 599", http_line(1));
    expect_error(&format!("{s}ase_user_header \"x user\";"), "invalid header name", http_line(1));
    expect_error(&format!("{s}ase_fail_mode open;\nase_fail_mode closed;"), "is duplicate", http_line(2));
    expect_error(
        &format!("{s}ase_request_max_size lots;"),
        "\"ase_request_max_size\" directive invalid value",
        http_line(1),
    );
    expect_error(
        &format!("{s}ase_request_max_size -8k;"),
        "\"ase_request_max_size\" directive invalid value",
        http_line(1),
    );
    expect_error(
        &format!("{s}ase_request_max_size 512;"),
        "\"ase_request_max_size\" must be at least 1k",
        http_line(1),
    );
    expect_error(
        &format!("{s}server {{\n ase_request_max_size 8k;\n ase_request_max_size 16k;\n}}"),
        "\"ase_request_max_size\" directive is duplicate",
        http_line(3),
    );
    expect_error(&format!("{s}ase_ssl_trusted_certificate /nonexistent/ca.pem;"), "cannot read", http_line(2));
}

// Times and sizes by nginx's rules, and none whose arithmetic would wrap: each refused at
// its line, naming the directive; the largest accepted ones pass.

const SERVER: &str = "ase_server http://127.0.0.1:18000";

#[test]
fn a_time_with_units_out_of_order_is_an_error() {
    let server = SERVER;
    expect_error(
        &format!("{server} fail_timeout=1s1m;"),
        "invalid fail_timeout value \"1s1m\", it must be a time such as 10s, 1m30s or 500ms (units from the largest to the smallest, each once) in \"ase_server\" directive",
        http_line(0),
    );
    expect_error(&format!("{server};\nase_timeout 1s1m;"), "\"ase_timeout\" directive invalid value", http_line(1));
}

#[test]
fn a_fail_timeout_that_would_wrap_is_an_error() {
    let server = SERVER;
    expect_error(
        &format!("{server} fail_timeout=18446744073709551s;"),
        "fail_timeout value \"18446744073709551s\" is too large, it must be at most 9223372036854775807ms in \"ase_server\" directive",
        http_line(0),
    );
    expect_error(
        &format!("ase_upstream eu {{\n    server http://127.0.0.1:18001 fail_timeout=9223372036854775808ms;\n}}"),
        "fail_timeout value \"9223372036854775808ms\" is too large, it must be at most 9223372036854775807ms in \"server\" directive of ase_upstream \"eu\"",
        http_line(1),
    );
}

#[test]
fn a_timeout_longer_than_a_timer_takes_is_an_error() {
    let server = SERVER;
    expect_error(
        &format!("{server};\nase_timeout 4294967296ms;"),
        "\"ase_timeout\" must be at most 2147483647ms (24 days), not \"4294967296ms\"",
        http_line(1),
    );
    expect_error(
        &format!("{server};\nserver {{\n    location / {{ ase_connect_timeout 25d; }}\n}}"),
        "\"ase_connect_timeout\" must be at most 2147483647ms (24 days), not \"25d\"",
        http_line(2),
    );
}

#[test]
fn a_zone_size_past_the_bound_is_an_error() {
    let server = SERVER;
    expect_error(
        &format!("{server};\nase_zone ase 8796093022207m;"),
        "zone \"ase\" is too large, it must be at most 1024m in \"ase_zone\" directive",
        http_line(1),
    );
    expect_error(
        &format!("{server};\nase_zone ase 2048m;"),
        "zone \"ase\" is too large, it must be at most 1024m in \"ase_zone\" directive",
        http_line(1),
    );
}

/// `fail_timeout=` takes exactly the times nginx's own parser takes: `proxy_read_timeout`
/// beside it, on the nginx under test.
#[test]
fn fail_timeout_takes_the_times_nginx_takes() {
    let token = Some((TEST_TOKEN, 0o600));
    for t in [
        "0",
        "7",
        "500ms",
        "1m30s",
        "1m 30s",
        "1h1m1s1ms",
        "2w",
        "1m30",
        "1 1",
        " 5",
        "1s 1",
        "5 ",
        "007s",
        "9223372036854775807ms",
        "9223372036854775",
        "",
        "s",
        "ms",
        " ",
        "1s1m",
        "1s1s",
        "1ms1s",
        "1h1d",
        "1M",
        "1y",
        "1 1 1",
        "1 1s",
        "5x",
        "-1",
        "1.5s",
        "1S",
        "18446744073709551s",
        "9223372036854775808ms",
        "9223372036854776",
        "106751991167d7h",
        "106751991167d8h",
    ] {
        let nginx = nginx_t(&config_with_http(&format!("proxy_read_timeout \"{t}\";")), token).0;
        let ours =
            nginx_t(&config_with_http(&format!("{SERVER} \"fail_timeout={t}\";\nase_token_file ase.token;")), token).0;
        assert_eq!(ours, nginx, "fail_timeout={t:?}: ours {ours}, nginx's {nginx}");
    }
}

#[test]
fn the_largest_times_are_accepted() {
    let server = SERVER;
    let largest = format!(
        "{server} fail_timeout=9223372036854775807ms;\nase_token_file ase.token;\nase_timeout 2147483647ms;\n\
         ase_connect_timeout 24d20h31m23s647ms;\nase_zone ase 64k;"
    );
    let (ok, err, _n) = nginx_t(&config_with_http(&largest), Some((TEST_TOKEN, 0o600)));
    assert!(ok, "the largest values are accepted:\n{err}");
}

#[test]
fn identity_and_hidden_header_mistakes_are_errors_with_file_and_line() {
    let s = "ase_server http://127.0.0.1:18000;\n";
    expect_error(
        &format!("{s}server {{\n ase_user $remote_user;\n ase_user_header X-User;\n}}"),
        "\"ase_user_header\" and \"ase_user\" in one block",
        http_line(3),
    );
    expect_error(
        &format!("{s}ase_user_header X-User;\nase_user $remote_user;"),
        "\"ase_user\" and \"ase_user_header\" in one block",
        http_line(2),
    );
    expect_error(
        &format!("{s}ase_user $remote_user;\nase_user $http_x;"),
        "\"ase_user\" directive is duplicate",
        http_line(2),
    );
    expect_error(
        &format!("{s}ase_client_id a;\nase_client_id b;"),
        "\"ase_client_id\" directive is duplicate",
        http_line(2),
    );
    // nginx itself finds unknown variables once the whole configuration is read, and names
    // no line for them (as for proxy_set_header's); the message names the variable.
    let (ok, err, _n) = nginx_t(&config_with_http(&format!("{s}ase_user $no_such_variable;")), None);
    assert!(!ok && err.contains("unknown \"no_such_variable\" variable"), "{err}");
    expect_error(
        &format!("{s}ase_hide_header Cookie \"X Bad\";"),
        "invalid header name \"X Bad\" in \"ase_hide_header\" directive",
        http_line(1),
    );
    expect_error(&format!("{s}ase_hide_header;"), "invalid number of arguments in \"ase_hide_header\"", http_line(1));
    expect_error(&format!("{s}ase_request_after_access maybe;"), "it must be \"on\" or \"off\"", http_line(1));
    expect_error(
        &format!("{s}ase_request on;\nase_request monitor;"),
        "\"ase_request\" directive is duplicate",
        http_line(2),
    );
}

/// The `[warn]` lines of `nginx -t`'s output that mention `needle`.
fn warnings<'a>(err: &'a str, needle: &str) -> Vec<&'a str> {
    err.lines().filter(|l| l.contains("[warn]") && l.contains(needle)).collect()
}

#[test]
fn reports_where_no_request_goes_to_the_ase_draw_a_warning_naming_the_line() {
    let s = "ase_server http://127.0.0.1:18000;\nase_token_file ase.token;\n";
    // ase_request off in one location, under an http-level ase_response on: that line
    let http = format!(
        "{s}ase_request on;\nase_response on;\nserver {{\n listen 127.0.0.1:1;\n location /a {{ return 200; }}\n \
                        location /static/ {{\n  ase_request off;\n }}\n}}"
    );
    let (ok, err, n) = nginx_t(&config_with_http(&http), Some((TEST_TOKEN, 0o600)));
    assert!(ok, "{err}");
    let conf = n.path("conf/nginx.conf").display().to_string();
    let found = warnings(&err, "no response is reported there");
    assert_eq!(found.len(), 1, "{err}");
    assert!(
        found[0].contains("\"ase_request off\"") && found[0].contains(&format!("{conf}:{}", http_line(8))),
        "{err}"
    );
    assert!(found[0].contains(&format!("(from {conf}:{})", http_line(3))), "{err}");

    // ase_request never on: the ase_response line, named once for all the places it applies
    let http =
        format!("{s}server {{\n listen 127.0.0.1:1;\n ase_response on;\n location /a {{ }}\n location /b {{ }}\n}}");
    let (ok, err, _n) = nginx_t(&config_with_http(&http), Some((TEST_TOKEN, 0o600)));
    assert!(ok, "{err}");
    let found = warnings(&err, "no response is reported there");
    assert_eq!(found.len(), 1, "{err}");
    assert!(
        found[0].contains("its default")
            && found[0].contains(&format!(
                "{conf_other}:{}",
                http_line(4),
                conf_other = _n.path("conf/nginx.conf").display()
            )),
        "{err}"
    );

    // on or monitor with ase_response on: nothing to say
    for mode in ["on", "monitor"] {
        let http = format!("{s}ase_response on;\nserver {{ listen 127.0.0.1:1; location / {{ ase_request {mode}; }} location = /x {{ ase_request off; ase_response off; }} }}");
        let (ok, err, _n) = nginx_t(&config_with_http(&http), Some((TEST_TOKEN, 0o600)));
        assert!(ok && !err.contains("[warn]"), "{mode}:\n{err}");
    }
}

#[test]
fn the_response_module_before_the_request_module_fails_with_the_fix() {
    if ngx_ase_tests::nginx::modules_compiled_in() {
        eprintln!("skipped: the static build's module order is fixed at ./configure time (request before response)");
        return;
    }
    let (_, modules) = binary_and_modules();
    let config = format!(
        "load_module {};\nload_module {};\nload_module {};\nerror_log logs/error.log;\npid logs/nginx.pid;\nevents {{}}\nhttp {{ }}\n",
        modules.join(MODULE_FILES[0]).display(),
        modules.join(MODULE_FILES[2]).display(),
        modules.join(MODULE_FILES[1]).display()
    );
    let (ok, err, _n) = nginx_t(&config, None);
    assert!(!ok, "{err}");
    assert!(err.contains("ngx_http_ase_response_module must be loaded after ngx_http_ase_request_module"), "{err}");
}

#[test]
fn directives_outside_their_context_are_errors() {
    expect_error(
        "server { ase_server http://127.0.0.1:1; }",
        "\"ase_server\" directive is not allowed here",
        http_line(0),
    );
    expect_error("server { ase_keepalive 4; }", "\"ase_keepalive\" directive is not allowed here", http_line(0));
    expect_error("server { ase_status; }", "\"ase_status\" directive is not allowed here", http_line(0));
}

#[test]
fn turning_checks_on_without_any_server_is_an_error() {
    expect_error(
        "server {\n listen 127.0.0.1:1;\n location / { ase_request on; }\n}",
        "\"ase_request\" is on but the http block has no \"ase_server\"",
        http_line(2),
    );
    expect_error("ase_response on;", "\"ase_response\" is on but the http block has no \"ase_server\"", http_line(0));
}

#[test]
fn request_or_response_module_without_the_common_module_fails_with_the_fix() {
    if ngx_ase_tests::flavour() == "static" {
        eprintln!("skipped: the static build has all three modules compiled in, common first; there is no load_module to leave out");
        return;
    }
    let (_, modules) = binary_and_modules();
    for module in &MODULE_FILES[1..] {
        let config = format!(
            "load_module {};\nerror_log logs/error.log;\npid logs/nginx.pid;\nevents {{}}\nhttp {{ }}\n",
            modules.join(module).display()
        );
        let (ok, err, _n) = nginx_t(&config, None);
        assert!(!ok, "{config}");
        let name = module.trim_end_matches(".so");
        let expected = format!(
            "{name} needs ngx_ase_common_module: add \"load_module modules/ngx_ase_common_module.so;\" before \"load_module modules/{name}.so;\""
        );
        assert!(err.contains(&expected), "expected {expected:?} in:\n{err}");
        assert_eq!(err.lines().filter(|l| l.contains("[emerg]")).count(), 1, "one clear line:\n{err}");
    }
}

#[test]
fn wrong_load_order_fails_with_the_fix() {
    if ngx_ase_tests::flavour() == "static" {
        eprintln!("skipped: the static build has no load_module lines; its module order is fixed at ./configure time (common first)");
        return;
    }
    let (_, modules) = binary_and_modules();
    let config = format!(
        "load_module {};\nload_module {};\nerror_log logs/error.log;\npid logs/nginx.pid;\nevents {{}}\nhttp {{ }}\n",
        modules.join(MODULE_FILES[1]).display(),
        modules.join(MODULE_FILES[0]).display()
    );
    let (ok, err, _n) = nginx_t(&config, None);
    assert!(!ok && err.contains("before \"load_module modules/ngx_http_ase_request_module.so;\""), "{err}");
}

#[test]
fn a_token_to_an_http_node_off_this_host_warns_naming_the_line() {
    // 192.0.2.1 (TEST-NET-1) is never contacted: nginx -t does not connect.
    let http =
        "ase_server http://127.0.0.1:18000;\nase_server http://192.0.2.1:8000 backup;\nase_token_file ase.token;";
    let (ok, err, n) = nginx_t(&config_with_http(http), Some((TEST_TOKEN, 0o600)));
    assert!(ok, "{err}");
    let warn =
        err.lines().find(|l| l.contains("clear text")).unwrap_or_else(|| panic!("no clear-text warning:\n{err}"));
    assert!(warn.contains("[warn]") && warn.contains("http://192.0.2.1:8000"), "{warn}");
    let place = format!("{}:{}", n.path("conf/nginx.conf").display(), http_line(1));
    assert!(warn.contains(&place), "expected {place} in {warn}");
    assert_eq!(err.matches("clear text").count(), 1, "only the node off this host:\n{err}");
    assert!(!err.contains(TEST_TOKEN), "{err}");

    // No token, nothing to leak; https:// is encrypted.
    for http in ["ase_server http://192.0.2.1:8000;", "ase_server https://192.0.2.1:8443;\nase_token_file ase.token;"] {
        let (ok, err, _n) = nginx_t(&config_with_http(http), Some((TEST_TOKEN, 0o600)));
        assert!(ok && !err.contains("clear text"), "{http}:\n{err}");
    }
}

#[test]
fn client_certificate_and_key_go_together_and_are_checked_with_file_and_line() {
    let s = "ase_server https://127.0.0.1:18443;\n";
    expect_error(&format!("{s}ase_ssl_certificate /nonexistent/client.crt;"), "cannot read \"/nonexistent/client.crt\" (No such file or directory (os error 2)) in \"ase_ssl_certificate\" directive", http_line(1));
    expect_error(
        &format!("{s}ase_ssl_certificate_key /nonexistent/client.key;"),
        "in \"ase_ssl_certificate_key\" directive",
        http_line(1),
    );
    // ase.token exists in these configurations' conf/: any readable file passes the first check.
    expect_error(
        &format!("{s}\nase_ssl_certificate ase.token;"),
        "no \"ase_ssl_certificate_key\" is defined for certificate",
        http_line(2),
    );
    expect_error(
        &format!("{s}ase_ssl_certificate_key ase.token;"),
        "no \"ase_ssl_certificate\" is defined for key",
        http_line(1),
    );
    expect_error(
        &format!("{s}ase_ssl_certificate ase.token;\nase_ssl_certificate ase.token;"),
        "\"ase_ssl_certificate\" directive is duplicate",
        http_line(2),
    );
    expect_error(
        "server { ase_ssl_certificate ase.token; }",
        "\"ase_ssl_certificate\" directive is not allowed here",
        http_line(0),
    );
    // Not a certificate: nginx's OpenSSL says why, and the place of the directive is named.
    expect_error(
        &format!("{s}ase_ssl_certificate ase.token;\nase_ssl_certificate_key ase.token;"),
        "cannot use the certificate \"",
        http_line(1),
    );
}

#[test]
fn a_client_certificate_without_an_https_node_warns() {
    let http = "ase_server http://127.0.0.1:18000;\nase_ssl_certificate ase.token;\nase_ssl_certificate_key ase.token;";
    let (ok, err, n) = nginx_t(&config_with_http(http), Some((TEST_TOKEN, 0o600)));
    assert!(ok, "{err}");
    let place = format!("{}:{}", n.path("conf/nginx.conf").display(), http_line(1));
    assert!(err.contains("[warn]") && err.contains("ase_ssl_certificate is not used") && err.contains(&place), "{err}");
}

#[test]
fn directives_without_the_common_module_name_the_missing_load_module_line() {
    if ngx_ase_tests::nginx::modules_compiled_in() {
        eprintln!("skipped: the static build has all three modules compiled in, common first; there is no load_module to leave out");
        return;
    }
    let (_, modules) = binary_and_modules();
    for module in &MODULE_FILES[1..] {
        let config = format!(
            "load_module {};\nerror_log logs/error.log;\npid logs/nginx.pid;\nevents {{}}\nhttp {{\n    ase_server http://127.0.0.1:18000;\n    ase_timeout 1s;\n}}\n",
            modules.join(module).display()
        );
        let (ok, err, n) = nginx_t(&config, None);
        assert!(!ok, "{config}");
        let name = module.trim_end_matches(".so");
        let expected = format!(
            "{name} needs ngx_ase_common_module: add \"load_module modules/ngx_ase_common_module.so;\" before \"load_module modules/{name}.so;\""
        );
        assert!(err.contains(&expected), "expected {expected:?} in:\n{err}");
        assert!(
            !err.contains("unknown directive"),
            "the clear message comes before the http block's directives are read:\n{err}"
        );
        let place = format!("{}:5", n.path("conf/nginx.conf").display());
        assert!(err.contains(&place), "expected the http block's place {place} in:\n{err}");
        assert_eq!(err.lines().filter(|l| l.contains("[emerg]")).count(), 1, "one clear line:\n{err}");
    }
}

/// `hash KEY [consistent];` in an `ase_upstream` block: accepted with variables; its
/// mistakes are errors at their line; a second balancing method draws nginx's warning.
#[test]
fn hash_lines_are_checked_with_file_and_line() {
    let block = |lines: &str| format!("ase_upstream h {{\n server http://127.0.0.1:18002;\n{lines}\n}}");
    for ok in ["hash $remote_addr;", "hash \"$http_authorization:$uri\" consistent;"] {
        let (good, err, _n) = nginx_t(&config_with_http(&block(ok)), None);
        assert!(good && !err.contains("[warn]"), "{ok}:\n{err}");
    }
    let place = "\"hash\" directive of ase_upstream \"h\"";
    expect_error(&block(" hash;"), &format!("invalid number of arguments in {place}"), http_line(2));
    expect_error(&block(" hash $a consistent x;"), &format!("invalid number of arguments in {place}"), http_line(2));
    expect_error(
        &block(" hash $remote_addr consistant;"),
        &format!("invalid parameter \"consistant\" in {place}"),
        http_line(2),
    );
    expect_error(&block(" hash $remote_addr;\n hash $uri;"), &format!("{place} is duplicate"), http_line(3));
    // nginx checks variable names once the configuration is read: its message names no line.
    let (good, err, _n) = nginx_t(&config_with_http(&block(" hash $no_such_variable;")), None);
    assert!(!good && err.contains("unknown \"no_such_variable\" variable"), "{err}");
    // nginx's hash takes no backup: refused at the server line, whichever comes first.
    let backup = "invalid parameter \"backup\" in \"server\" directive of ase_upstream \"h\"";
    expect_error(&block(" server http://127.0.0.1:18003 backup;\n hash $remote_addr;"), backup, http_line(2));
    expect_error(&block(" hash $remote_addr;\n server http://127.0.0.1:18003 backup;"), backup, http_line(3));
    // hash and least_conn: nginx's warning at the later line, which wins.
    for (lines, at) in [(" least_conn;\n hash $remote_addr;", 3), (" hash $remote_addr;\n least_conn;", 3)] {
        let (good, err, n) = nginx_t(&config_with_http(&block(lines)), None);
        let found = warnings(&err, "load balancing method redefined");
        let place = format!("{}:{}", n.path("conf/nginx.conf").display(), http_line(at));
        assert!(good && found.len() == 1 && found[0].contains(&place), "{lines}:\n{err}");
    }
}
