//! `ase_status` with `ase_zone`: the totals of all workers equal what the ASE double saw
//! after a mixed load, the Prometheus output parses with a real parser, and the counters
//! survive a reload.

use std::collections::HashMap;

use ngx_ase_tests::nginx::config_with_http;
use ngx_ase_tests::{client, free_port, AseDouble, Backend, Nginx};
use serde_json::{json, Value};

fn start(double: &AseDouble, backend: &Backend, workers: u32, zone: bool) -> Nginx {
    start_groups(double, None, backend, workers, zone)
}

/// With `two`, a second ASE group `two` (`ase_upstream`) with that double, for `/two/`.
fn start_groups(double: &AseDouble, two: Option<&AseDouble>, backend: &Backend, workers: u32, zone: bool) -> Nginx {
    let port = free_port();
    let (upstream, location) = match two {
        Some(b) => (
            format!("ase_upstream two {{ server {} max_fails=1 fail_timeout=30s; }}", b.url()),
            format!("location /two/ {{ ase_pass two; proxy_pass http://{}; }}", backend.addr()),
        ),
        None => (String::new(), String::new()),
    };
    let http = format!(
        r#"
    ase_server {ase};
    {upstream}
    {zone}
    ase_request on;
    ase_response on;
    ase_timeout 1s;
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://{backend}; }}
        {location}
        location = /status {{ ase_request off; ase_response off; ase_status; }}
    }}
"#,
        ase = double.url(),
        zone = if zone { "ase_zone ase 1m;" } else { "" },
        backend = backend.addr()
    );
    let config = config_with_http(&http).replace("worker_processes 1;", &format!("worker_processes {workers};"));
    let mut n = Nginx::prepare(&config);
    n.port = port;
    n.launch();
    n
}

fn status(n: &Nginx) -> Value {
    client().get(n.url("/status")).send().unwrap().json().unwrap()
}

fn mixed_load(n: &Nginx, double: &AseDouble) -> usize {
    double.deny("token", "blocked-token");
    let mut sent = 0;
    for i in 0..30 {
        let mut req = client().get(n.url(&format!("/m{i}")));
        if i % 3 == 0 {
            req = req.header("Authorization", "Bearer blocked-token");
        }
        req.send().unwrap();
        sent += 1;
    }
    // A status the protocol does not name: an ASE error (fail open) that does not mark the node down.
    double.fault(json!({"kind": "status", "status": 418, "calls": "request"}));
    for i in 0..5 {
        client().get(n.url(&format!("/f{i}"))).send().unwrap();
        sent += 1;
    }
    double.clear_fault();
    sent
}

#[test]
fn totals_across_workers_equal_what_the_ase_saw() {
    let (double, backend) = (AseDouble::start(&["--keepalive"]), Backend::start());
    let n = start(&double, &backend, 2, true);
    let sent = mixed_load(&n, &double);
    let responses = double.wait_records("response", sent);
    let requests = double.records_of("request");
    let s = status(&n);
    assert_eq!(s["scope"], "all_workers");
    assert_eq!(s["checks"].as_u64(), Some(requests.len() as u64), "{s}");
    assert_eq!(s["verdicts"]["block"].as_u64(), Some(requests.iter().filter(|r| r["status"] == 403).count() as u64));
    assert_eq!(s["verdicts"]["allow"].as_u64(), Some(requests.iter().filter(|r| r["status"] == 200).count() as u64));
    assert_eq!(s["verdicts"]["fail_open"].as_u64(), Some(5));
    assert_eq!(s["fail_open_by_cause"]["ase_status"].as_u64(), Some(5));
    assert_eq!(s["ase_status"]["403"].as_u64(), Some(10));
    assert_eq!(s["reports_sent"].as_u64(), Some(responses.len() as u64));
    assert_eq!(s["payload_truncated"].as_u64(), Some(0), "every payload fits in 64k: {s}");
    let node = &s["nodes"][0];
    assert_eq!(node["url"].as_str(), Some(double.url().as_str()));
    assert_eq!(node["calls"].as_u64(), Some((requests.len() + responses.len()) as u64), "{s}");
    assert!(node["latency_ms"]["p50"].as_u64().is_some(), "{s}");
    let stats = double.stats();
    assert_eq!(stats["requests"].as_u64(), Some(requests.len() as u64));
    assert_eq!(stats["responses"].as_u64(), Some(responses.len() as u64));
}

#[test]
fn prometheus_output_parses() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend, 1, true);
    mixed_load(&n, &double);
    let text = client().get(n.url("/status?format=prometheus")).send().unwrap().text().unwrap();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    let mut by: HashMap<(String, String), f64> = HashMap::new();
    for s in &scrape.samples {
        let mut labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        let label = labels.join(",");
        let v = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        };
        by.insert((s.metric.clone(), label), v);
    }
    assert_eq!(by[&("nginx_ase_verdicts_total".into(), "verdict=block".into())], 10.0);
    assert_eq!(by[&("nginx_ase_checks_total".into(), String::new())], 35.0);
    assert_eq!(by[&("nginx_ase_node_up".into(), format!("group=default,node={}", double.url()))], 1.0);
    assert_eq!(by[&("nginx_ase_breaker_open".into(), "group=default".into())], 0.0);
    assert_eq!(by[&("nginx_ase_group_checks_total".into(), "group=default".into())], 35.0);
    assert!(scrape.docs.contains_key("nginx_ase_errors_total"));
    assert_eq!(by[&("nginx_ase_payload_truncated_total".into(), String::new())], 0.0);
}

#[test]
fn counters_survive_a_reload() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend, 1, true);
    for i in 0..5 {
        client().get(n.url(&format!("/r{i}"))).send().unwrap();
    }
    assert_eq!(status(&n)["checks"].as_u64(), Some(5));
    n.signal("reload");
    // the new worker answers once the old one is gone
    ngx_ase_tests::wait_for("the reloaded worker", std::time::Duration::from_secs(5), || {
        (n.error_log().matches("exited with code 0").count() >= 1).then_some(())
    });
    client().get(n.url("/after")).send().unwrap();
    assert_eq!(status(&n)["checks"].as_u64(), Some(6), "counters were reset by the reload");
}

#[test]
fn without_a_zone_the_page_shows_this_workers_counters() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend, 1, false);
    client().get(n.url("/w")).send().unwrap();
    let s = status(&n);
    assert_eq!((s["scope"].as_str(), s["checks"].as_u64()), (Some("this_worker"), Some(1)));
}

#[test]
fn zone_mistakes_are_configuration_errors() {
    for (zone, needle) in [
        ("ase_zone ase 8k;", "is too small, it must be at least 64k"),
        ("ase_zone ase lots;", "invalid size \"lots\""),
        ("ase_zone ase 1m;\nase_zone other 1m;", "\"ase_zone\" directive is duplicate"),
    ] {
        let n = Nginx::prepare(&config_with_http(&format!("ase_server http://127.0.0.1:1;\n{zone}")));
        let out = n.test_config();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(needle) && err.contains("nginx.conf:"), "{zone}: {err}");
    }
}

#[test]
fn machines_keep_getting_json_and_prometheus_text() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend, 1, true);
    client().get(n.url("/j")).send().unwrap();
    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let get = |path: &str, accept: Option<&str>| {
        let mut req = client().get(n.url(path));
        if let Some(a) = accept {
            req = req.header("Accept", a);
        }
        let r = req.send().unwrap();
        let h = r.headers().clone();
        (
            h["content-type"].to_str().unwrap().to_string(),
            h.get("vary").map(|v| v.to_str().unwrap().to_string()),
            r.text().unwrap(),
        )
    };
    // curl's */*, no Accept at all, or asking for JSON: the JSON, as before the page existed.
    for accept in [Some("*/*"), None, Some("application/json"), Some("application/json, text/html;q=0.5")] {
        let (ctype, vary, body) = get("/status", accept);
        assert_eq!(ctype, "application/json", "{accept:?}");
        assert_eq!(vary.as_deref(), Some("Accept"), "a negotiated answer says so to caches");
        let v: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(v["checks"].as_u64(), Some(1), "{body}");
    }
    // An explicit format wins over a browser's Accept header.
    let (ctype, vary, body) = get("/status?format=json", Some(browser));
    assert_eq!((ctype.as_str(), vary), ("application/json", None));
    assert!(serde_json::from_str::<Value>(&body).is_ok(), "{body}");
    let (ctype, _, body) = get("/status?format=prometheus", Some(browser));
    assert_eq!(ctype, "text/plain; version=0.0.4; charset=utf-8");
    assert!(body.contains("nginx_ase_checks_total 1\n"), "{body}");
    // A browser gets the page.
    let (ctype, vary, body) = get("/status", Some(browser));
    assert_eq!((ctype.as_str(), vary.as_deref()), ("text/html; charset=utf-8", Some("Accept")));
    assert!(body.starts_with("<!doctype html>") && body.contains("?format=json"), "{}", &body[..body.len().min(200)]);
}

/// Every panel query of `nginx-conf/grafana-ase-dashboard.json` against real scrapes, of an
/// nginx with only the default ASE group and of one with a second group `two` whose ASE is
/// down: each metric exists, each label it selects on or sums by exists on it (or is added
/// by Prometheus: `instance`, `job`), each fixed label value is in the output, and a
/// `group=~"$group"` selector finds every group the `$group` variable offers; every
/// `nginx_ase_*` family has a panel; the file is dashboard JSON Grafana imports as is
/// (panels on the 24-column grid without overlaps, targets with a refId and the
/// `${datasource}` variable, the variables the queries use).
#[test]
fn the_grafana_dashboard_queries_metrics_that_exist() {
    let path = ngx_ase_tests::repo_root().join("nginx-conf/grafana-ase-dashboard.json");
    let dash: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("dashboard file")).expect("valid JSON");
    let exprs = dashboard::check_structure(&dash);
    assert!(exprs.len() >= 10, "{exprs:?}");
    let group_query = dashboard::variable_query(&dash, "group");

    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend, 1, true);
    mixed_load(&n, &double);
    let scrape = dashboard::Scrape::of(&n);
    assert_eq!(scrape.label_values(&group_query, "group"), ["default"], "without ase_upstream: {group_query}");
    scrape.check_queries(&exprs, &["default"]);
    drop(n);

    // Two groups: `two`'s only ASE is down, so its breaker opens and its errors count.
    let (a, mut b) = (AseDouble::start(&[]), AseDouble::start(&[]));
    b.stop();
    let n = start_groups(&a, Some(&b), &backend, 1, true);
    mixed_load(&n, &a);
    for i in 0..4 {
        assert_eq!(client().get(n.url(&format!("/two/{i}"))).send().unwrap().status(), 200, "group two fails open");
    }
    ngx_ase_tests::wait_for("the reports to settle", std::time::Duration::from_secs(20), || {
        let s = status(&n);
        let settled =
            |g: &Value| Some(g["reports_sent"].as_u64()? + g["reports_dropped"].as_u64()? == g["reports"].as_u64()?);
        (settled(&s["groups"]["default"])? && settled(&s["groups"]["two"])?).then_some(())
    });
    let scrape = dashboard::Scrape::of(&n);
    assert_eq!(scrape.label_values(&group_query, "group"), ["default", "two"], "{group_query}");
    let used = scrape.check_queries(&exprs, &["default", "two"]);
    for (metric, labels, want) in [
        ("nginx_ase_breaker_open", "group=default", 0.0),
        ("nginx_ase_breaker_open", "group=two", 1.0),
        ("nginx_ase_group_checks_total", "group=default", 35.0),
        ("nginx_ase_group_checks_total", "group=two", 4.0),
        ("nginx_ase_group_errors_total", "cause=refused,group=two", 1.0),
        ("nginx_ase_group_errors_total", "cause=unavailable,group=two", 3.0),
        ("nginx_ase_group_errors_total", "cause=refused,group=default", 0.0),
        ("nginx_ase_group_breaker_trips_total", "group=two", 1.0),
        ("nginx_ase_group_breaker_trips_total", "group=default", 0.0),
        ("nginx_ase_group_reports_sent_total", "group=default", 35.0),
        ("nginx_ase_group_reports_sent_total", "group=two", 0.0),
        // Only the first request's metadata went out (refused); the three the open breaker
        // kept from the ASE get no report either, so one report is dropped.
        ("nginx_ase_group_reports_dropped_total", "group=two", 1.0),
        ("nginx_ase_node_up", &format!("group=two,node={}", b.url()), 0.0),
    ] {
        assert_eq!(scrape.value(metric, labels), Some(want), "{metric}{{{labels}}}");
    }
    let families: Vec<&String> = scrape.families.iter().filter(|k| k.starts_with("nginx_ase_")).collect();
    assert!(families.len() >= 20, "{families:?}");
    for f in families {
        assert!(used.contains(f), "the dashboard has no panel for {f}");
    }
}

/// Reading the dashboard file and its PromQL, just enough for the test above.
mod dashboard {
    use std::collections::{BTreeSet, HashMap, HashSet};

    use ngx_ase_tests::{client, Nginx};
    use serde_json::Value;

    /// One Prometheus scrape of `ase_status`: each sample's metric, labels and value.
    pub struct Scrape {
        samples: Vec<(String, Vec<(String, String)>, f64)>,
        pub families: Vec<String>,
    }

    impl Scrape {
        pub fn of(n: &Nginx) -> Scrape {
            let text = client().get(n.url("/status?format=prometheus")).send().unwrap().text().unwrap();
            let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
                .expect("valid Prometheus text");
            let samples = scrape.samples.iter().map(|s| {
                let v = match s.value {
                    prometheus_parse::Value::Counter(v)
                    | prometheus_parse::Value::Gauge(v)
                    | prometheus_parse::Value::Untyped(v) => v,
                    _ => f64::NAN,
                };
                (s.metric.clone(), s.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(), v)
            });
            Scrape { samples: samples.collect(), families: scrape.docs.keys().cloned().collect() }
        }

        /// The value of `metric` with exactly these labels (`k=v` sorted by name, joined by `,`).
        pub fn value(&self, metric: &str, labels: &str) -> Option<f64> {
            self.samples
                .iter()
                .find(|(m, l, _)| {
                    let mut l: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    l.sort();
                    m == metric && l.join(",") == labels
                })
                .map(|s| s.2)
        }

        /// What Grafana's `label_values(METRIC{...}, label)` lists (its matchers on
        /// Prometheus' own labels aside), sorted.
        pub fn label_values(&self, query: &str, label: &str) -> Vec<String> {
            let (metric, _) = selectors(query).into_iter().next().unwrap_or_else(|| panic!("no metric in {query}"));
            let values: BTreeSet<String> =
                self.labels_of(&metric).filter(|(k, _)| k == label).map(|(_, v)| v.clone()).collect();
            values.into_iter().collect()
        }

        fn labels_of<'a>(&'a self, metric: &'a str) -> impl Iterator<Item = &'a (String, String)> + 'a {
            self.samples.iter().filter(move |(m, _, _)| m == metric).flat_map(|(_, l, _)| l)
        }

        /// Checks every query against this scrape, `groups` being what `$group` offers;
        /// returns the metrics they use.
        pub fn check_queries(&self, exprs: &[String], groups: &[&str]) -> HashSet<String> {
            let mut labels: HashMap<&str, Vec<&(String, String)>> = HashMap::new();
            for (m, l, _) in &self.samples {
                labels.entry(m.as_str()).or_default().extend(l);
            }
            let mut used = HashSet::new();
            for expr in exprs {
                let selectors = selectors(expr);
                assert!(!selectors.is_empty(), "no nginx_ase_ metric in {expr}");
                let mut known = vec!["instance".to_string(), "job".to_string()];
                for (metric, matchers) in selectors {
                    let have = labels
                        .get(metric.as_str())
                        .unwrap_or_else(|| panic!("{metric} (in {expr}) is not in the Prometheus output"));
                    used.insert(metric.clone());
                    known.extend(have.iter().map(|(k, _)| k.clone()));
                    for (label, op, value) in matchers {
                        if ["instance", "job"].contains(&label.as_str()) {
                            continue;
                        }
                        assert!(have.iter().any(|(k, _)| *k == label), "{metric} has no label {label} (in {expr})");
                        if op == "=" {
                            assert!(
                                have.iter().any(|(k, v)| *k == label && *v == value),
                                "{metric} never has {label}=\"{value}\" (in {expr})"
                            );
                        }
                        // Whichever group is picked in $group, the panel has its series.
                        if label == "group" && op == "=~" && value == "$group" {
                            for g in groups {
                                assert!(
                                    have.iter().any(|(k, v)| k == "group" && v.as_str() == *g),
                                    "{metric} has no series of group {g} (in {expr})"
                                );
                            }
                        }
                    }
                }
                for label in by_labels(expr) {
                    assert!(known.contains(&label), "sum by ({label}): no metric of {expr} has that label");
                }
            }
            used
        }
    }

    /// The query of the template variable `name`.
    pub fn variable_query(d: &Value, name: &str) -> String {
        let vars = d["templating"]["list"].as_array().expect("templating.list");
        let v = vars.iter().find(|v| v["name"] == name).unwrap_or_else(|| panic!("no ${name} variable"));
        v["query"]["query"].as_str().or(v["query"].as_str()).unwrap_or_default().to_string()
    }

    const PANEL_TYPES: [&str; 7] = ["row", "stat", "timeseries", "table", "state-timeline", "gauge", "bargauge"];

    /// Checks the dashboard's shape; returns every query of its panels.
    pub fn check_structure(d: &Value) -> Vec<String> {
        assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()), "title");
        assert!(d["uid"].as_str().is_some_and(|u| !u.is_empty() && u.len() <= 40), "uid");
        assert!(d["schemaVersion"].as_u64().is_some_and(|v| v >= 30), "schemaVersion");
        assert!(d.get("id").is_none_or(Value::is_null), "an id would tie the file to one Grafana database");
        let vars = d["templating"]["list"].as_array().expect("templating.list");
        let var = |name: &str| vars.iter().find(|v| v["name"] == name).unwrap_or_else(|| panic!("no ${name} variable"));
        let ds = var("datasource");
        assert_eq!((ds["type"].as_str(), ds["query"].as_str()), (Some("datasource"), Some("prometheus")));
        for name in ["instance", "group"] {
            let v = var(name);
            assert_eq!(v["type"], "query", "{name}");
            assert_eq!(v["datasource"]["uid"], "${datasource}", "{name}");
            let q = v["query"]["query"].as_str().or(v["query"].as_str()).unwrap_or_default();
            assert!(q.starts_with("label_values(nginx_ase_") && q.ends_with(&format!(", {name})")), "{name}: {q}");
            // Without ASE groups there is no group label: "All" must then match every node.
            assert_eq!((v["includeAll"].as_bool(), v["allValue"].as_str()), (Some(true), Some(".*")), "{name}");
        }

        let mut panels: Vec<&Value> = Vec::new();
        for p in d["panels"].as_array().expect("panels") {
            panels.push(p);
            panels.extend(p["panels"].as_array().into_iter().flatten());
        }
        let mut ids = Vec::new();
        let mut boxes: Vec<(u64, u64, u64, u64, String)> = Vec::new();
        let mut exprs = Vec::new();
        for p in panels {
            let title = p["title"].as_str().unwrap_or_else(|| panic!("a panel without a title: {p}")).to_string();
            let kind = p["type"].as_str().unwrap_or_default();
            assert!(PANEL_TYPES.contains(&kind), "{title}: panel type {kind:?}");
            let id = p["id"].as_u64().unwrap_or_else(|| panic!("{title}: no id"));
            assert!(!ids.contains(&id), "{title}: id {id} is used twice");
            ids.push(id);
            let g = &p["gridPos"];
            let (x, y, w, h) = (g["x"].as_u64(), g["y"].as_u64(), g["w"].as_u64(), g["h"].as_u64());
            let (Some(x), Some(y), Some(w), Some(h)) = (x, y, w, h) else { panic!("{title}: gridPos {g}") };
            assert!(w > 0 && h > 0 && x + w <= 24, "{title}: gridPos {g} is off the 24-column grid");
            for (bx, by, bw, bh, other) in &boxes {
                assert!(x >= bx + bw || bx >= &(x + w) || y >= by + bh || by >= &(y + h), "{title} overlaps {other}");
            }
            boxes.push((x, y, w, h, title.clone()));
            if kind == "row" {
                continue;
            }
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
            let targets =
                p["targets"].as_array().filter(|t| !t.is_empty()).unwrap_or_else(|| panic!("{title}: no targets"));
            let mut refs = Vec::new();
            for t in targets {
                let r = t["refId"].as_str().unwrap_or_else(|| panic!("{title}: a target without refId"));
                assert!(!refs.contains(&r), "{title}: refId {r} twice");
                refs.push(r);
                assert_eq!(t["datasource"]["uid"], "${datasource}", "{title}");
                let expr = t["expr"]
                    .as_str()
                    .filter(|e| !e.is_empty())
                    .unwrap_or_else(|| panic!("{title}: a target without expr"));
                check_balanced(expr);
                for var in expr
                    .split('$')
                    .skip(1)
                    .map(|s| s.split(|c: char| !c.is_alphanumeric() && c != '_').next().unwrap_or(""))
                {
                    let builtin = var.starts_with("__");
                    assert!(
                        builtin || vars.iter().any(|v| v["name"] == var),
                        "{title}: ${var} is not a variable of the dashboard"
                    );
                }
                exprs.push(expr.to_string());
            }
        }
        exprs
    }

    fn check_balanced(expr: &str) {
        let mut stack = Vec::new();
        let mut quoted = false;
        for c in expr.chars() {
            match c {
                '"' => quoted = !quoted,
                _ if quoted => {}
                '(' | '{' | '[' => stack.push(c),
                ')' | '}' | ']' => {
                    let open = stack.pop();
                    assert_eq!(
                        open,
                        Some(match c {
                            ')' => '(',
                            '}' => '{',
                            _ => '[',
                        }),
                        "unbalanced {expr}"
                    );
                }
                _ => {}
            }
        }
        assert!(stack.is_empty() && !quoted, "unbalanced {expr}");
    }

    /// A label matcher: (label, operator, value).
    pub type Matcher = (String, String, String);

    /// Each `nginx_ase_*` selector of `expr`: its metric and label matchers.
    pub fn selectors(expr: &str) -> Vec<(String, Vec<Matcher>)> {
        let mut out = Vec::new();
        let mut rest = expr;
        while let Some(at) = rest.find("nginx_ase_") {
            let tail = &rest[at..];
            let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
            let metric = tail[..end].to_string();
            let mut matchers = Vec::new();
            let after = &tail[end..];
            if let Some(body) = after.strip_prefix('{') {
                let close = body.find('}').expect("closing brace");
                for m in body[..close].split(',').map(str::trim).filter(|m| !m.is_empty()) {
                    let op_at = m.find(['=', '!']).unwrap_or_else(|| panic!("matcher {m} in {expr}"));
                    let op_len =
                        if m[op_at..].starts_with("=~") || m[op_at..].starts_with("!=") || m[op_at..].starts_with("!~")
                        {
                            2
                        } else {
                            1
                        };
                    let value = m[op_at + op_len..].trim().trim_matches('"').to_string();
                    matchers.push((m[..op_at].trim().to_string(), m[op_at..op_at + op_len].to_string(), value));
                }
            }
            out.push((metric, matchers));
            rest = &tail[end..];
        }
        out
    }

    /// The labels of every `by (...)` clause of `expr`.
    pub fn by_labels(expr: &str) -> Vec<String> {
        expr.split("by (")
            .skip(1)
            .flat_map(|s| {
                s.split(')').next().unwrap_or("").split(',').map(|l| l.trim().to_string()).collect::<Vec<_>>()
            })
            .collect()
    }
}
