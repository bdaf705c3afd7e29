//! `ase_response on`: every client response of a main request whose metadata went to the
//! ASE (`ase_request on` or `monitor`) is reported to the ASE once (`POST /ase/response`),
//! with the status code, reason phrase, HTTP version and the headers the client got, and the
//! response itself reaches the client normally, without waiting for the ASE. A response
//! whose request was not checked (`ase_request off`, or a `return`, which runs before the
//! access phase) is not reported: the ASE could not pair it with anything. The locations
//! below therefore make their statuses after the access phase (static files, `error_page`).
//!
//! The record-checking tests use the ASE test double; the first test runs with no ASE at all
//! and checks, through the filter's debug log line, that each client response was handed to
//! the channel exactly once.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ngx_ase_tests::{free_port, AseDouble, Backend, Nginx, TEST_TOKEN};
use reqwest::blocking::{Client, Response};
use reqwest::Method;
use serde_json::Value;

/// Headers nginx writes itself that the report leaves out on purpose (they describe the
/// server or the connection, not the API's response).
const NOT_REPORTED: [&str; 5] = ["server", "date", "connection", "keep-alive", "transfer-encoding"];

const STATIC_BODY: &str = "hello, static\n";

struct Env {
    nginx: Nginx,
    _backend: Backend,
    client: Client,
}

/// nginx reporting to `ase_url`, in front of a backend, with one location per case.
fn start(ase_url: &str) -> Env {
    let backend = Backend::start();
    let dead = free_port();
    let http = format!(
        r#"
    ase_server {ase_url};
    ase_token {TEST_TOKEN};
    ase_request on;
    ase_response on;
    server {{
        listen 127.0.0.1:{{port}};
        root html;
        charset utf-8;
        location /api/ {{ proxy_pass http://{backend}; }}
        location = /missing {{ }}
        location /static/ {{ }}
        location = /dead {{ proxy_pass http://127.0.0.1:{dead}; }}
        location = /err-page {{ error_page 404 /errors/404.html; }}
        location = /err-redirect {{ error_page 404 = /api/fallback; }}
        location = /err-dead {{ error_page 502 /errors/502.html; proxy_pass http://127.0.0.1:{dead}; }}
        location /errors/ {{ internal; }}
        location = /redirect {{ error_page 404 http://127.0.0.1:{{port}}/api/elsewhere; }}
        location = /barrier {{ add_header X-Barrier yes; try_files /static/hello.txt =404; }}
        location /off/ {{ ase_response off; return 200 "not reported\n"; }}
    }}
"#,
        backend = backend.addr(),
    );
    let nginx = Nginx::start(&http);
    nginx.write_file("html/static/hello.txt", STATIC_BODY);
    nginx.write_file("html/errors/404.html", "<html>custom 404</html>\n");
    nginx.write_file("html/errors/502.html", "<html>custom 502</html>\n");
    let client = Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    Env { nginx, _backend: backend, client }
}

impl Env {
    fn send(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut req = self.client.request(method.clone(), self.nginx.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let started = Instant::now();
        let resp = req.send().unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{method} {path} took {:?}: the response waited for something",
            started.elapsed()
        );
        resp
    }

    fn get(&self, path: &str) -> Response {
        self.send(Method::GET, path, &[])
    }

    fn assert_no_crash(&self) {
        let crashed = self.nginx.crashed_workers();
        assert!(crashed.is_empty(), "worker crashes: {crashed:?}");
        let log = self.nginx.error_log();
        assert!(!log.contains("internal error"), "a caught panic:\n{log}");
    }
}

/// The headers of a client response, names lower-cased, without the ones the report leaves
/// out, as a multiset.
fn client_headers(resp: &Response) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in resp.headers() {
        if NOT_REPORTED.contains(&name.as_str()) {
            continue;
        }
        map.entry(name.as_str().to_string()).or_default().push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    map.values_mut().for_each(|v| v.sort());
    map
}

/// The `POST /ase/response` body a record of the double holds, after checking that the
/// double took the call as well-formed, with the token, and with a correlation ID.
fn body_of(record: &Value) -> &Value {
    assert_eq!(record["kind"], "response", "{record}");
    assert_eq!(record["path"], "/ase/response", "{record}");
    assert!(record["error"].is_null(), "the double rejected the report: {record}");
    assert_eq!(record["status"], 200, "{record}");
    assert_eq!(record["token"], "ok", "{record}");
    let cid = record["correlation_id"].as_str().unwrap_or_default();
    assert!(!cid.is_empty(), "no X-CorrelationID: {record}");
    let body = &record["body"];
    assert!(body.get("response_code").is_some(), "no response report body in: {record}");
    body
}

fn report_headers(body: &Value) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in body["headers"].as_array().expect("headers array") {
        let obj = pair.as_object().expect("header object");
        assert_eq!(obj.len(), 1, "one pair per header object: {pair}");
        let (k, v) = obj.iter().next().expect("a pair");
        assert_eq!(k, &k.to_ascii_lowercase(), "header names are lower-cased");
        map.entry(k.clone()).or_default().push(v.as_str().expect("string value").to_string());
    }
    map.values_mut().for_each(|v| v.sort());
    map
}

/// Whether a report is the barrier's (its response has `X-Barrier`).
fn is_barrier(record: &Value) -> bool {
    report_headers(body_of(record)).contains_key("x-barrier")
}

/// Sends one request, then a barrier request (`/barrier`, a static file with `X-Barrier`),
/// and returns the reports the double received for the first one (all reports except the
/// barrier's). Exactly-once is checked by the callers on the length.
fn reports_for(env: &Env, ase: &AseDouble, send: impl FnOnce(&Env) -> Response) -> (Response, Vec<Value>) {
    ase.clear_records();
    let resp = send(env);
    // Let the request's report(s) be queued and sent before the barrier's.
    std::thread::sleep(Duration::from_millis(100));
    let barrier = env.get("/barrier");
    assert_eq!(barrier.status().as_u16(), 200);
    assert_eq!(barrier.headers()["x-barrier"], "yes");
    let records = ngx_ase_tests::wait_for("the barrier's report", Duration::from_secs(10), || {
        let r = ase.records_of("response");
        r.iter().any(is_barrier).then_some(r)
    });
    std::thread::sleep(Duration::from_millis(200));
    let records = {
        let again = ase.records_of("response");
        if again.len() > records.len() {
            again
        } else {
            records
        }
    };
    let barriers = records.iter().filter(|r| is_barrier(r)).count();
    assert_eq!(barriers, 1, "the barrier was reported {barriers} times: {records:?}");
    let ours = records.into_iter().filter(|r| !is_barrier(r)).collect();
    (resp, ours)
}

/// One report, matching the client's response: code, reason, version, headers.
fn assert_one_report(what: &str, resp: &Response, reports: &[Value], reason: &str) -> Value {
    assert_eq!(reports.len(), 1, "{what}: expected exactly one report, got {reports:#?}");
    let body = body_of(&reports[0]).clone();
    assert_eq!(body["response_code"], resp.status().as_u16().to_string(), "{what}: {body}");
    assert_eq!(body["response_status"], reason, "{what}: {body}");
    assert_eq!(body["http_version"], "1.1", "{what}: {body}");
    assert_eq!(report_headers(&body), client_headers(resp), "{what}: the reported headers differ from the client's");
    body
}

fn single_header<'a>(body: &'a Value, name: &str) -> &'a str {
    let values: Vec<&str> = body["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .filter_map(|p| p.get(name).and_then(Value::as_str))
        .collect();
    assert_eq!(values.len(), 1, "{name} in {body}");
    values[0]
}

// ---- the client side: always runs (the ASE is a port nobody listens on) ----

#[test]
fn responses_reach_the_client_normally_with_the_ase_down() {
    let env = start(&format!("http://127.0.0.1:{}", free_port()));

    let r = env.get("/api/items?id=7");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["x-backend"], "1");
    assert!(r.text().unwrap().contains("\"backend\":\"ok\""));

    let r = env.get("/missing");
    assert_eq!(r.status().as_u16(), 404);

    let r = env.get("/static/hello.txt");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
    assert!(r.headers().contains_key("last-modified"));
    assert_eq!(r.text().unwrap(), STATIC_BODY);

    let r = env.send(Method::HEAD, "/static/hello.txt", &[]);
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-length"], STATIC_BODY.len().to_string());
    assert_eq!(r.text().unwrap(), "");

    let r = env.send(Method::HEAD, "/api/head", &[]);
    assert_eq!(r.status().as_u16(), 200);

    let r = env.get("/err-page");
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(r.text().unwrap(), "<html>custom 404</html>\n");

    let r = env.get("/err-redirect");
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.text().unwrap().contains("/api/fallback"));

    let r = env.get("/dead");
    assert_eq!(r.status().as_u16(), 502);

    let r = env.get("/err-dead");
    assert_eq!(r.status().as_u16(), 502);
    assert_eq!(r.text().unwrap(), "<html>custom 502</html>\n");

    let r = env.get("/redirect");
    assert_eq!(r.status().as_u16(), 302);
    assert_eq!(r.headers()["location"], env.nginx.url("/api/elsewhere"));

    let r = env.send(Method::GET, "/static/hello.txt", &[("range", "bytes=1000-2000")]);
    assert_eq!(r.status().as_u16(), 416);

    let r = env.send(Method::GET, "/static/hello.txt", &[("range", "bytes=0-4")]);
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(r.text().unwrap(), "hello");

    let etag = env.get("/static/hello.txt").headers()["etag"].to_str().unwrap().to_string();
    let r = env.send(Method::GET, "/static/hello.txt", &[("if-none-match", &etag)]);
    assert_eq!(r.status().as_u16(), 304);

    let r = env.get("/off/x");
    assert_eq!(r.status().as_u16(), 200);

    // HTTP/1.0, keep-alive off
    let raw = raw_http10(&env, "/api/old");
    assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"), "{raw}");

    env.assert_no_crash();

    // Each client response above was handed to the channel exactly once, with the status
    // the client got (the channel drops them: no ASE), and /off/ not at all. The filter
    // says so at debug level.
    if nginx_has_debug() {
        let handed: Vec<String> = env
            .nginx
            .error_log()
            .lines()
            .filter_map(|l| l.split_once("ase: response report ").map(|(_, rest)| rest.to_string()))
            .collect();
        let codes: Vec<&str> = handed.iter().map(|l| l.split(' ').next().unwrap_or("")).collect();
        assert_eq!(
            codes,
            ["200", "404", "200", "200", "200", "404", "200", "502", "502", "302", "416", "206", "200", "304", "200"],
            "reports handed to the channel: {handed:#?}"
        );
    }
}

/// Whether the nginx under test logs at debug level (`--with-debug`).
fn nginx_has_debug() -> bool {
    let (bin, _) = ngx_ase_tests::nginx::binary_and_modules();
    let out = std::process::Command::new(bin).arg("-V").output().expect("nginx -V");
    String::from_utf8_lossy(&out.stderr).contains("--with-debug")
}

fn raw_http10(env: &Env, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", env.nginx.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

// ---- what the ASE receives ----

#[test]
fn the_report_carries_the_request_checks_correlation_id() {
    let ase = AseDouble::start(&["--keepalive"]);
    let backend = Backend::start();
    let nginx = Nginx::start(&format!(
        "ase_server {url};\nase_token {TEST_TOKEN};\nase_response on;\n\
         server {{ listen 127.0.0.1:{{port}};\n\
           location /api/ {{ ase_request on; proxy_pass http://{backend}; }}\n\
           location /unchecked/ {{ return 200 \"no check\\n\"; }} }}",
        url = ase.url(),
        backend = backend.addr()
    ));
    for i in 0..3 {
        ase.clear_records();
        let r = ngx_ase_tests::client().get(nginx.url(&format!("/api/c{i}"))).send().expect("request");
        assert_eq!(r.status().as_u16(), 200);
        let responses = ase.wait_records("response", 1);
        let requests = ase.records_of("request");
        assert_eq!((requests.len(), responses.len()), (1, 1), "{requests:?} {responses:?}");
        let cid = requests[0]["correlation_id"].as_str().expect("request correlation id");
        assert!(!cid.is_empty());
        assert_eq!(responses[0]["correlation_id"], cid, "the two calls of one API call differ");
        assert_eq!(body_of(&responses[0])["response_code"], "200");
    }
    // Without a check, no report: the ASE could not pair one with any request call. A
    // checked request after them is the barrier: once its report is in, theirs would be too.
    ase.clear_records();
    for _ in 0..2 {
        let r = ngx_ase_tests::client().get(nginx.url("/unchecked/x")).send().expect("request");
        assert_eq!(r.status().as_u16(), 200);
    }
    let r = ngx_ase_tests::client().get(nginx.url("/api/after")).send().expect("request");
    assert_eq!(r.status().as_u16(), 200);
    ase.wait_records("response", 1);
    std::thread::sleep(Duration::from_millis(300));
    let (requests, responses) = (ase.records_of("request"), ase.records_of("response"));
    assert_eq!((requests.len(), responses.len()), (1, 1), "orphan reports: {responses:?}");
    assert_eq!(responses[0]["correlation_id"], requests[0]["correlation_id"]);
}

fn with_double() -> (AseDouble, Env) {
    let ase = AseDouble::start(&["--keepalive"]);
    let env = start(&ase.url());
    (ase, env)
}

#[test]
fn proxied_response_is_reported_once_with_the_clients_headers() {
    let (ase, env) = with_double();
    let (resp, reports) = reports_for(&env, &ase, |e| e.get("/api/items?id=7"));
    assert_eq!(resp.status().as_u16(), 200);
    let body = assert_one_report("proxied 200", &resp, &reports, "OK");
    assert_eq!(single_header(&body, "content-type"), "application/json");
    assert_eq!(single_header(&body, "x-backend"), "1");
    let len = resp.text().unwrap().len().to_string();
    assert_eq!(single_header(&body, "content-length"), len);
    assert!(report_headers(&body).keys().all(|k| !NOT_REPORTED.contains(&k.as_str())));
    env.assert_no_crash();
}

#[test]
fn a_404_and_a_502_are_reported_with_their_reasons() {
    let (ase, env) = with_double();

    let (resp, reports) = reports_for(&env, &ase, |e| e.get("/missing"));
    assert_eq!(resp.status().as_u16(), 404);
    let body = assert_one_report("static 404", &resp, &reports, "Not Found");
    assert_eq!(single_header(&body, "content-type"), "text/html; charset=utf-8");

    let (resp, reports) = reports_for(&env, &ase, |e| e.get("/dead"));
    assert_eq!(resp.status().as_u16(), 502);
    let body = assert_one_report("proxy to a dead port", &resp, &reports, "Bad Gateway");
    assert_eq!(single_header(&body, "content-length"), resp.text().unwrap().len().to_string());
    env.assert_no_crash();
}

#[test]
fn static_file_and_head_are_reported_with_the_headers_nginx_writes_itself() {
    let (ase, env) = with_double();

    let (resp, reports) = reports_for(&env, &ase, |e| e.get("/static/hello.txt"));
    let body = assert_one_report("static file", &resp, &reports, "OK");
    assert_eq!(single_header(&body, "content-type"), "text/plain; charset=utf-8");
    assert_eq!(single_header(&body, "content-length"), STATIC_BODY.len().to_string());
    assert_eq!(single_header(&body, "last-modified"), resp.headers()["last-modified"].to_str().unwrap());
    assert_eq!(single_header(&body, "etag"), resp.headers()["etag"].to_str().unwrap());
    assert_eq!(single_header(&body, "accept-ranges"), "bytes");

    let (resp, reports) = reports_for(&env, &ase, |e| e.send(Method::HEAD, "/static/hello.txt", &[]));
    let body = assert_one_report("HEAD static file", &resp, &reports, "OK");
    assert_eq!(single_header(&body, "content-length"), STATIC_BODY.len().to_string());

    let (resp, reports) = reports_for(&env, &ase, |e| e.send(Method::HEAD, "/api/head", &[]));
    assert_one_report("HEAD proxied", &resp, &reports, "OK");
    env.assert_no_crash();
}

#[test]
fn error_pages_are_reported_once_as_the_client_gets_them() {
    let (ase, env) = with_double();

    let (resp, reports) = reports_for(&env, &ase, |e| e.get("/err-page"));
    assert_eq!(resp.status().as_u16(), 404);
    let body = assert_one_report("error_page 404 to a static page", &resp, &reports, "Not Found");
    assert_eq!(single_header(&body, "content-length"), "24");

    let (resp, reports) = reports_for(&env, &ase, |e| e.get("/err-redirect"));
    assert_eq!(resp.status().as_u16(), 200);
    let body = assert_one_report("error_page 404 = /api/fallback", &resp, &reports, "OK");
    assert_eq!(single_header(&body, "x-backend"), "1");

    let (resp, reports) = reports_for(&env, &ase, |e| e.get("/err-dead"));
    assert_eq!(resp.status().as_u16(), 502);
    assert_one_report("error_page 502 after a dead upstream", &resp, &reports, "Bad Gateway");
    env.assert_no_crash();
}

#[test]
fn statuses_changed_by_later_filters_are_reported_as_sent() {
    let (ase, env) = with_double();

    // the range filter re-runs the header chain for 416 (ngx_http_filter_finalize_request)
    let (resp, reports) =
        reports_for(&env, &ase, |e| e.send(Method::GET, "/static/hello.txt", &[("range", "bytes=1000-2000")]));
    assert_eq!(resp.status().as_u16(), 416);
    let body = assert_one_report("range not satisfiable", &resp, &reports, "Requested Range Not Satisfiable");
    assert_eq!(single_header(&body, "content-range"), format!("bytes */{}", STATIC_BODY.len()));

    let (resp, reports) =
        reports_for(&env, &ase, |e| e.send(Method::GET, "/static/hello.txt", &[("range", "bytes=0-4")]));
    assert_eq!(resp.status().as_u16(), 206);
    let body = assert_one_report("partial content", &resp, &reports, "Partial Content");
    assert_eq!(single_header(&body, "content-length"), "5");

    // Through reports_for too, so that this request's own report is in before the next
    // one's records are cleared (reports go out after the client's answer).
    let (plain, _) = reports_for(&env, &ase, |e| e.get("/static/hello.txt"));
    let etag = plain.headers()["etag"].to_str().unwrap().to_string();
    let (resp, reports) =
        reports_for(&env, &ase, |e| e.send(Method::GET, "/static/hello.txt", &[("if-none-match", &etag)]));
    assert_eq!(resp.status().as_u16(), 304);
    assert_one_report("not modified", &resp, &reports, "Not Modified");

    let (resp, reports) = reports_for(&env, &ase, |e| e.get("/redirect"));
    assert_eq!(resp.status().as_u16(), 302);
    let body = assert_one_report("redirect", &resp, &reports, "Moved Temporarily");
    assert_eq!(single_header(&body, "location"), env.nginx.url("/api/elsewhere"));
    env.assert_no_crash();
}

#[test]
fn http10_version_and_ase_response_off() {
    let (ase, env) = with_double();

    ase.clear_records();
    let raw = raw_http10(&env, "/api/old");
    assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"), "{raw}");
    let records = ase.wait_records("response", 1);
    assert_eq!(records.len(), 1, "{records:?}");
    let body = body_of(&records[0]);
    assert_eq!(body["response_code"], "200");
    assert_eq!(body["http_version"], "1.0");

    let (resp, reports) = reports_for(&env, &ase, |e| e.get("/off/x"));
    assert_eq!(resp.status().as_u16(), 200);
    assert!(reports.is_empty(), "ase_response off was reported: {reports:?}");
    env.assert_no_crash();
}

#[test]
fn http2_responses_are_reported_as_2_0() {
    let ase = AseDouble::start(&["--keepalive"]);
    let backend = Backend::start();
    let nginx = Nginx::start(&format!(
        "ase_server {url};\nase_token {TEST_TOKEN};\nase_request on;\nase_response on;\n\
         server {{ listen 127.0.0.1:{{port}} http2; root html;\n\
           location /api/ {{ proxy_pass http://{backend}; }}\n\
           location = /redirect {{ error_page 404 =301 http://127.0.0.1:{{port}}/api/moved; }} }}",
        url = ase.url(),
        backend = backend.addr()
    ));
    let h2 = Client::builder()
        .http2_prior_knowledge()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("h2 client");

    let resp = h2.get(nginx.url("/api/h2")).send().expect("h2 request");
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status().as_u16(), 200);
    let records = ase.wait_records("response", 1);
    assert_eq!(records.len(), 1, "{records:?}");
    let body = body_of(&records[0]);
    assert_eq!(body["response_code"], "200");
    assert_eq!(body["response_status"], "OK");
    assert_eq!(body["http_version"], "2.0");
    assert_eq!(report_headers(body), client_headers(&resp));

    ase.clear_records();
    let resp = h2.get(nginx.url("/redirect")).send().expect("h2 request");
    assert_eq!(resp.status().as_u16(), 301);
    let records = ase.wait_records("response", 1);
    let body = body_of(&records[0]);
    assert_eq!(body["http_version"], "2.0");
    assert_eq!(body["response_status"], "Moved Permanently");
    assert_eq!(single_header(body, "location"), resp.headers()["location"].to_str().unwrap());
    assert_eq!(report_headers(body), client_headers(&resp));
    let crashed = nginx.crashed_workers();
    assert!(crashed.is_empty(), "{crashed:?}");
}

/// Without the request module loaded, no request metadata goes to the ASE, so no response
/// is reported (nothing the ASE could pair), and `nginx -t` says so at start.
#[test]
fn reports_nothing_without_the_request_module() {
    if ngx_ase_tests::flavour() == "static" {
        eprintln!("skipped: the static build has the request module compiled in; it cannot be left out");
        return;
    }
    let (_, modules) = ngx_ase_tests::nginx::binary_and_modules();
    let port = free_port();
    let full = ngx_ase_tests::nginx::config_with_http(&format!(
        "ase_server http://127.0.0.1:{dead};\nase_response on;\n\
         server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"ok\\n\"; }} }}",
        dead = free_port()
    ));
    let request_module = format!("load_module {};\n", modules.join("ngx_http_ase_request_module.so").display());
    assert!(full.contains(&request_module));
    let mut nginx = Nginx::prepare(&full.replace(&request_module, ""));
    nginx.port = port;
    let out = nginx.test_config();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("[warn]") && err.contains("ngx_http_ase_request_module is not loaded: no response is reported"),
        "{err}"
    );
    nginx.launch();
    for _ in 0..3 {
        let r = ngx_ase_tests::client().get(nginx.url("/x")).send().expect("request");
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(r.text().unwrap(), "ok\n");
    }
    let crashed = nginx.crashed_workers();
    assert!(crashed.is_empty(), "{crashed:?}");
    if nginx_has_debug() {
        let log = nginx.error_log();
        let skipped = log
            .lines()
            .filter(|l| l.contains("ase: response report 200 not sent: no request metadata went to the ASE"))
            .count();
        assert_eq!(skipped, 3, "{log}");
        assert!(!log.contains("X-CorrelationID"), "a report was handed to the channel:\n{log}");
        assert!(!log.contains("unknown \"ase_correlation_id\""), "{log}");
    }
}

/// The report is fire-and-forget: an ASE that never answers `POST /ase/response` does not
/// slow a single response down.
#[test]
fn a_hanging_ase_does_not_slow_responses() {
    let (ase, env) = with_double();
    ase.fault(serde_json::json!({"kind": "hang", "calls": "response"}));
    let started = Instant::now();
    for i in 0..40 {
        let path = if i % 2 == 0 { format!("/api/slow{i}") } else { "/missing".to_string() };
        let t = Instant::now();
        let r = env.get(&path);
        assert!(r.status().as_u16() == 200 || r.status().as_u16() == 404, "{path}: {}", r.status());
        r.text().expect("body");
        assert!(t.elapsed() < Duration::from_millis(500), "{path} took {:?}", t.elapsed());
    }
    assert!(started.elapsed() < Duration::from_secs(5), "40 responses took {:?}", started.elapsed());
    // the double did get (and hold) the first reports
    let held = ase.wait_records("response", 1);
    assert!(!held.is_empty());
    ase.clear_fault();
    env.assert_no_crash();
}
