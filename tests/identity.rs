//! Identity and privacy: `ase_user` and `ase_client_id` from nginx variables (the
//! authenticated user of `auth_basic`, values `auth_request_set` takes from an introspection
//! answer) arrive in `user_info` as one object; `ase_hide_header` keeps headers away from
//! the ASE in both calls, whatever their case and however often they are repeated.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use ngx_ase_tests::{client, free_port, AseDouble, Backend, Nginx};
use serde_json::{json, Value};

/// An nginx with a second server that plays the introspection endpoint: it answers
/// `X-Introspected-Sub` (the client's `X-Token-Sub`) and `X-Introspected-Client`.
fn start(double: &AseDouble, backend: &Backend, extra: &str) -> Nginx {
    let introspect = free_port();
    let n = Nginx::start(&format!(
        r#"
    ase_server {ase};
    ase_request on;
    {extra}
    server {{
        listen 127.0.0.1:{{port}};
        location /basic/ {{
            auth_basic "api";
            auth_basic_user_file htpasswd;
            ase_user $remote_user;
            ase_client_id $http_x_app;
            proxy_pass http://{backend};
        }}
        {auth_request_locations}
        location /client-only/ {{ ase_user ""; ase_client_id "app-$arg_v"; proxy_pass http://{backend}; }}
    }}
    server {{
        listen 127.0.0.1:{introspect};
        location /introspect {{
            add_header X-Introspected-Sub $http_x_token_sub;
            add_header X-Introspected-Client "client-of-$http_x_token_sub";
            return 204;
        }}
    }}
"#,
        ase = double.url(),
        backend = backend.addr(),
        auth_request_locations =
            if has_auth_request() { auth_request_locations(backend, introspect) } else { String::new() },
    ));
    n.write_file("conf/htpasswd", "alice:{PLAIN}wonderland\nmallory:{PLAIN}evil\n");
    n
}

/// Whether the nginx under test has `auth_request` (the static build's configure line, like
/// a plain `./configure`, leaves it out).
fn has_auth_request() -> bool {
    let (bin, _) = ngx_ase_tests::nginx::binary_and_modules();
    let out = std::process::Command::new(bin).arg("-V").output().expect("nginx -V");
    String::from_utf8_lossy(&out.stderr).contains("--with-http_auth_request_module")
}

/// `/introspected/` (checked after `auth_request` set its variables) and `/too-early/` (checked
/// first in the access phase, as by default), both asking `/auth`.
fn auth_request_locations(backend: &Backend, introspect: u16) -> String {
    format!(
        r#"
        location = /auth {{
            internal;
            proxy_pass http://127.0.0.1:{introspect}/introspect;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }}
        location /introspected/ {{
            ase_request_after_access on;
            auth_request /auth;
            auth_request_set $introspected_sub $upstream_http_x_introspected_sub;
            auth_request_set $introspected_client $upstream_http_x_introspected_client;
            ase_user $introspected_sub;
            ase_client_id $introspected_client;
            proxy_pass http://{backend};
        }}
        location /too-early/ {{
            auth_request /auth;
            auth_request_set $early_sub $upstream_http_x_introspected_sub;
            ase_user $early_sub;
            proxy_pass http://{backend};
        }}
"#,
        backend = backend.addr()
    )
}

fn get(n: &Nginx, path: &str, headers: &[(&str, &str)]) -> reqwest::blocking::Response {
    let mut req = client().get(n.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().expect("request")
}

fn get_as(n: &Nginx, path: &str, user: &str, password: &str, headers: &[(&str, &str)]) -> reqwest::blocking::Response {
    let mut req = client().get(n.url(path)).basic_auth(user, Some(password));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().expect("request")
}

/// The `user_info` of the one request call the double got since its records were cleared.
fn only_user_info(double: &AseDouble) -> Value {
    let recs = double.wait_records("request", 1);
    assert_eq!(recs.len(), 1, "{recs:?}");
    recs[0]["body"].get("user_info").cloned().unwrap_or(Value::Null)
}

#[test]
fn the_auth_basic_user_and_a_client_id_arrive_in_one_user_info_object() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend, "");
    let r = get_as(&n, "/basic/a", "alice", "wonderland", &[("X-App", "shop-web")]);
    assert_eq!(r.status(), 200);
    assert_eq!(only_user_info(&double), json!([{"username": "alice", "client_id": "shop-web"}]));

    // No client ID: only the username. The ASE blocks by that username.
    double.clear_records();
    double.deny("username", "mallory");
    let r = get_as(&n, "/basic/b", "mallory", "evil", &[]);
    assert_eq!(r.status(), 403);
    assert_eq!(only_user_info(&double), json!([{"username": "mallory"}]));
    assert_eq!(backend.paths(), vec!["/basic/a"], "a blocked client reached the backend");

    // No credentials: neither key is known, no user_info at all (and auth_basic answers 401
    // after the check, which ran first in the access phase).
    double.clear_records();
    assert_eq!(get(&n, "/basic/c", &[]).status(), 401);
    assert_eq!(only_user_info(&double), Value::Null);
}

#[test]
fn values_set_by_auth_request_set_arrive_when_the_check_runs_after_access() {
    if !has_auth_request() {
        eprintln!("skipped: this nginx is built without --with-http_auth_request_module");
        return;
    }
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend, "");
    let r = get(&n, "/introspected/x", &[("X-Token-Sub", "bob")]);
    assert_eq!(r.status(), 200);
    assert_eq!(only_user_info(&double), json!([{"username": "bob", "client_id": "client-of-bob"}]));

    double.clear_records();
    double.deny("username", "eve");
    assert_eq!(get(&n, "/introspected/y", &[("X-Token-Sub", "eve")]).status(), 403);
    assert_eq!(only_user_info(&double), json!([{"username": "eve", "client_id": "client-of-eve"}]));
    assert_eq!(backend.paths(), vec!["/introspected/x"]);

    // Checked first in the access phase (the default), the check runs before auth_request
    // and its variables are still empty: the username is left out, never sent empty.
    double.clear_records();
    assert_eq!(get(&n, "/too-early/z", &[("X-Token-Sub", "bob")]).status(), 200);
    assert_eq!(only_user_info(&double), Value::Null);
}

#[test]
fn an_empty_value_leaves_its_key_out() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend, "ase_user_header X-User;");
    // ase_user "" in the location replaces the http-level ase_user_header: no username.
    assert_eq!(get(&n, "/client-only/a?v=7", &[("X-User", "alice")]).status(), 200);
    assert_eq!(only_user_info(&double), json!([{"client_id": "app-7"}]));
}

/// Sends `request` as is (header names in the case written) and returns the status code.
fn raw(n: &Nginx, request: &str) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", n.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// Every header name (lower-cased) in a record's body.
fn names(record: &Value) -> Vec<String> {
    record["body"]["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .filter_map(|p| p.as_object().and_then(|o| o.keys().next().cloned()))
        .collect()
}

#[test]
fn hidden_headers_never_reach_the_ase_in_either_call() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = Nginx::start(&format!(
        r#"
    ase_server {ase};
    ase_request on;
    ase_response on;
    ase_hide_header Cookie authorization;
    ase_hide_header X-Secret X-Backend Content-Type;
    server {{
        listen 127.0.0.1:{{port}};
        location / {{ proxy_pass http://{backend}; }}
        location /own-list/ {{ ase_hide_header x-other; proxy_pass http://{backend}; }}
    }}
"#,
        ase = double.url(),
        backend = backend.addr()
    ));
    let request = "GET /a HTTP/1.1\r\nHost: localhost\r\ncOOkie: a=1\r\nCOOKIE: b=2\r\nAuthorization: Bearer t\r\n\
                   X-SECRET: s1\r\nx-secret: s2\r\nX-Kept: yes\r\nConnection: close\r\n\r\n";
    assert_eq!(raw(&n, request), 200);
    let req = double.wait_records("request", 1);
    let resp = double.wait_records("response", 1);
    let sent = names(&req[0]);
    assert!(sent.contains(&"x-kept".to_string()) && sent.contains(&"host".to_string()), "{sent:?}");
    for hidden in ["cookie", "authorization", "x-secret"] {
        assert!(!sent.contains(&hidden.to_string()), "{hidden} reached the ASE: {}", req[0]["body"]);
    }
    let reported = names(&resp[0]);
    assert!(reported.contains(&"content-length".to_string()), "{reported:?}");
    for hidden in ["x-backend", "content-type"] {
        assert!(!reported.contains(&hidden.to_string()), "{hidden} reached the ASE: {}", resp[0]["body"]);
    }
    assert!(backend.paths().contains(&"/a".to_string()));

    // A location with a list of its own replaces the inherited one, as proxy_hide_header does.
    double.clear_records();
    let request =
        "GET /own-list/b HTTP/1.1\r\nHost: localhost\r\nCookie: a=1\r\nX-Other: o\r\nConnection: close\r\n\r\n";
    assert_eq!(raw(&n, request), 200);
    let req = double.wait_records("request", 1);
    let resp = double.wait_records("response", 1);
    let sent = names(&req[0]);
    assert!(sent.contains(&"cookie".to_string()) && !sent.contains(&"x-other".to_string()), "{sent:?}");
    assert!(names(&resp[0]).contains(&"x-backend".to_string()), "{}", resp[0]["body"]);
}

/// Checked after the access phase, the check still runs when `satisfy any` lets an earlier
/// access module's "yes" skip the others, and the ASE's block still keeps the backend out.
#[test]
fn after_access_checks_are_not_skipped_by_satisfy_any() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = Nginx::start(&format!(
        r#"
    ase_server {ase};
    ase_request on;
    ase_request_after_access on;
    server {{
        listen 127.0.0.1:{{port}};
        location /any/ {{
            satisfy any;
            allow 127.0.0.1;
            deny all;
            auth_basic "api";
            auth_basic_user_file htpasswd;
            ase_user $remote_user;
            proxy_pass http://{backend};
        }}
    }}
"#,
        ase = double.url(),
        backend = backend.addr()
    ));
    n.write_file("conf/htpasswd", "alice:{PLAIN}wonderland\n");
    assert_eq!(get(&n, "/any/a", &[]).status(), 200, "allow let the client in");
    assert_eq!(only_user_info(&double), Value::Null);
    double.clear_records();
    double.deny("ip", "127.0.0.1");
    assert_eq!(get(&n, "/any/b", &[]).status(), 403, "the ASE's block after satisfy any's yes");
    assert_eq!(double.wait_records("request", 1)[0]["status"], 403);
    assert_eq!(backend.paths(), vec!["/any/a"]);
}
