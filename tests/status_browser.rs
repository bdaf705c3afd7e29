//! The status page in a real browser: headless Chromium opens `ase_status` as a browser
//! does (it gets the HTML page), the page polls the JSON and draws it; every figure the page
//! shows equals the JSON's, the rates add up to the counters' increase, it fits a phone's
//! width, says when it lost contact with nginx, and requests nothing but this nginx.

use std::time::Duration;

use ngx_ase_tests::chromium::Browser;
use ngx_ase_tests::nginx::config_with_http;
use ngx_ase_tests::{client, free_port, repo_root, wait_for, AseDouble, Backend, Nginx};
use serde_json::{json, Value};

const PAGE_LIMIT: Duration = Duration::from_secs(90);

fn start(double: &AseDouble, backend: &Backend) -> Nginx {
    start_groups(double, None, backend)
}

/// The second ASE group's name: a dot in it, as group names may have.
const TWO: &str = "eu.two";

/// With `two`, a second ASE group `eu.two` for `/two/` with that double, whose node is
/// marked down at its first failure and stays down for the whole test.
fn start_groups(double: &AseDouble, two: Option<&AseDouble>, backend: &Backend) -> Nginx {
    let port = free_port();
    let (upstream, location) = match two {
        Some(b) => (
            format!("ase_upstream {TWO} {{ server {} max_fails=1 fail_timeout=10m; }}", b.url()),
            format!("location /two/ {{ ase_pass {TWO}; proxy_pass http://{}; }}", backend.addr()),
        ),
        None => (String::new(), String::new()),
    };
    let http = format!(
        r#"
    ase_server {ase};
    {upstream}
    ase_zone ase 1m;
    ase_request on;
    ase_response on;
    ase_timeout 2s;
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://{backend}; }}
        {location}
        location = /ase-status {{ ase_request off; ase_response off; ase_status; }}
    }}
"#,
        ase = double.url(),
        backend = backend.addr()
    );
    let mut n = Nginx::prepare(&config_with_http(&http));
    n.port = port;
    n.launch();
    n
}

/// `allowed` plain requests, `blocked` ones with a denied token, `failed_open` ones while
/// the ASE answers a status that means error.
fn drive(n: &Nginx, double: &AseDouble, allowed: usize, blocked: usize, failed_open: usize) {
    for i in 0..allowed {
        assert_eq!(client().get(n.url(&format!("/a{i}"))).send().unwrap().status(), 200);
    }
    for i in 0..blocked {
        let r = client().get(n.url(&format!("/b{i}"))).header("Authorization", "Bearer blocked-token").send().unwrap();
        assert_eq!(r.status(), 403);
    }
    double.fault(json!({"kind": "status", "status": 418, "calls": "request"}));
    for i in 0..failed_open {
        assert_eq!(client().get(n.url(&format!("/f{i}"))).send().unwrap().status(), 200);
    }
    double.clear_fault();
}

/// The JSON once every response report offered has been answered or dropped, in total and
/// in each group (the counters then stay put).
fn settled(n: &Nginx) -> Value {
    wait_for("the response reports to settle", Duration::from_secs(20), || {
        let s: Value = client().get(n.url("/ase-status?format=json")).send().ok()?.json().ok()?;
        let done = s["reports_sent"].as_u64()?
            + s["reports_dropped_queue_full"].as_u64()?
            + s["reports_dropped_unavailable"].as_u64()?;
        let group_done =
            |g: &Value| Some(g["reports_sent"].as_u64()? + g["reports_dropped"].as_u64()? == g["reports"].as_u64()?);
        let groups_done = s["groups"].as_object()?.values().all(|g| group_done(g) == Some(true));
        (done == s["reports"].as_u64()? && groups_done).then_some(s)
    })
}

/// `count` requests to group `eu.two`, whose ASE is down: each fails open.
fn drive_two(n: &Nginx, count: usize) {
    for i in 0..count {
        assert_eq!(client().get(n.url(&format!("/two/{i}"))).send().unwrap().status(), 200, "group {TWO} fails open");
    }
}

/// What the page must show for a JSON value: the number or string as is, "–" for null.
fn shown(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some("–".into()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The value at a dotted path; a key with dots in it (a group named `eu.two`) is found by
/// trying the shortest run of segments that is a key.
fn at<'a>(json: &'a Value, path: &str) -> Option<&'a Value> {
    let parts: Vec<&str> = path.split('.').collect();
    at_parts(json, &parts)
}

fn at_parts<'a>(json: &'a Value, parts: &[&str]) -> Option<&'a Value> {
    if parts.is_empty() {
        return Some(json);
    }
    if let (Some(a), Ok(i)) = (json.as_array(), parts[0].parse::<usize>()) {
        return at_parts(a.get(i)?, &parts[1..]);
    }
    (1..=parts.len()).find_map(|n| at_parts(json.get(parts[..n].join("."))?, &parts[n..]))
}

/// The figures the page shows (`data-k` = their JSON path) that differ from `json`.
fn mismatches(figures: &Value, json: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for f in figures.as_array().expect("figures") {
        let (path, text) = (f[0].as_str().unwrap_or_default(), f[1].as_str().unwrap_or_default());
        match at(json, path).and_then(shown) {
            Some(want) if want == text => {}
            want => out.push(format!("{path}: page shows {text:?}, JSON has {want:?}")),
        }
    }
    out
}

const FIGURES: &str =
    "JSON.stringify([...document.querySelectorAll('[data-k]')].map(e => [e.dataset.k, e.textContent]))";

#[test]
fn the_page_shows_what_the_json_says() {
    let (double, backend) = (AseDouble::start(&["--keepalive"]), Backend::start());
    double.deny("token", "blocked-token");
    let n = start(&double, &backend);
    drive(&n, &double, 6, 3, 2);
    let first = settled(&n);
    let origin = n.url("");

    let mut b = Browser::launch();
    b.viewport(1200, 900, false);
    b.navigate(&n.url("/ase-status"));
    assert_eq!(b.eval("document.contentType"), json!("text/html"), "a browser's Accept header gets the page");
    b.wait_until("the page's first figures", PAGE_LIMIT, "Number(document.body.dataset.polls) >= 2");

    // More traffic while the page watches, in rounds a poll apart (so the charts have a
    // shape): its rates must account for exactly this much.
    for round in 0..6 {
        let polls = b.eval("Number(document.body.dataset.polls)").as_u64().unwrap();
        drive(&n, &double, 2 + round, round % 3, usize::from(round == 2 || round == 3));
        b.wait_until("the next poll", PAGE_LIMIT, &format!("Number(document.body.dataset.polls) > {polls}"));
    }
    let mut last = Value::Null;
    let mut diff = Vec::new();
    let agreed = ngx_ase_tests::wait_for_quiet(PAGE_LIMIT, || {
        last = settled(&n);
        let figures: Value = serde_json::from_str(b.eval(FIGURES).as_str().unwrap_or("[]")).unwrap_or_default();
        diff = mismatches(&figures, &last);
        diff.is_empty() && figures.as_array().is_some_and(|f| !f.is_empty())
    });
    assert!(agreed, "the page's figures never matched the JSON:\n{}", diff.join("\n"));

    let figures: Value = serde_json::from_str(b.eval(FIGURES).as_str().unwrap()).unwrap();
    let keys: Vec<&str> = figures.as_array().unwrap().iter().filter_map(|f| f[0].as_str()).collect();
    for want in [
        "checks",
        "verdicts.allow",
        "verdicts.block",
        "verdicts.fail_open",
        "verdicts.fail_closed",
        "reports_sent",
        "reports_dropped_queue_full",
        "reports_dropped_unavailable",
        "breaker",
        "breaker_trips",
        "fail_open_by_cause.ase_status",
        "nodes.0.state",
        "nodes.0.calls",
        "nodes.0.failures",
        "nodes.0.latency_ms.p50",
        "nodes.0.latency_ms.p99",
        "ase_status.403",
        "errors.timeout",
        "payload_truncated",
    ] {
        assert!(keys.contains(&want), "the page does not show {want}: {keys:?}");
    }
    assert_eq!(
        (last["verdicts"]["block"].as_u64(), last["verdicts"]["fail_open"].as_u64()),
        (Some(3 + 6), Some(2 + 2)),
        "{last}"
    );

    // The charts: points drawn, and each verdict's rates add up to its counter's increase.
    b.wait_until("the charts", PAGE_LIMIT, "Number(document.getElementById('chart-verdicts').dataset.samples) >= 3");
    for verdict in ["allow", "block", "fail_open"] {
        let want = last["verdicts"][verdict].as_u64().unwrap() - first["verdicts"][verdict].as_u64().unwrap();
        let expr =
            format!("Number(document.querySelector('#legend-verdicts [data-series=\"v:{verdict}\"]').dataset.delta)");
        assert_eq!(
            b.eval(&expr).as_u64(),
            Some(want),
            "{verdict}: the rates drawn do not add up to the counter's increase"
        );
        let path =
            format!("document.querySelector('#chart-verdicts path[data-series=\"v:{verdict}\"]').getAttribute('d')");
        assert!(
            b.eval(&path).as_str().is_some_and(|d| d.starts_with('M') && d.contains('L')),
            "{verdict}: no line drawn"
        );
    }
    let reports = last["reports_sent"].as_u64().unwrap() - first["reports_sent"].as_u64().unwrap();
    let expr = "Number(document.querySelector('#legend-reports [data-series=\"r:sent\"]').dataset.delta)";
    assert_eq!(b.eval(expr).as_u64(), Some(reports), "reports sent: the rates do not add up");

    assert_eq!(
        b.eval("document.getElementById('error').hidden && document.getElementById('lost').hidden"),
        json!(true),
        "the page shows an error: {}",
        b.eval("document.getElementById('error').textContent + document.getElementById('lost').textContent")
    );
    assert_eq!(
        b.eval("document.getElementById('groups-card').hidden && !document.querySelector('#nodes h3')"),
        json!(true),
        "only the default group: no group table, no group headings"
    );
    assert_eq!(b.problems(), Vec::<String>::new(), "the page logged errors");
    b.screenshot(&repo_root().join("build/status-page.png"));

    // A phone: nothing wider than the screen (tables scroll inside their card).
    b.viewport(390, 844, true);
    let polls = b.eval("Number(document.body.dataset.polls)").as_u64().unwrap();
    b.wait_until("a poll at phone width", PAGE_LIMIT, &format!("Number(document.body.dataset.polls) > {polls}"));
    assert_eq!(
        b.eval("document.documentElement.scrollWidth <= window.innerWidth"),
        json!(true),
        "the page is wider than a phone: {} > {}",
        b.eval("document.documentElement.scrollWidth"),
        b.eval("window.innerWidth")
    );
    b.screenshot(&repo_root().join("build/status-page-phone.png"));
    b.viewport(1200, 900, false);

    // nginx goes away: the page says so, and keeps the last figures.
    n.signal("stop");
    let banner = b.wait_until("the lost-contact banner", PAGE_LIMIT,
        "document.body.dataset.contact === 'lost' && !document.getElementById('lost').hidden && document.getElementById('lost').textContent");
    assert!(banner.as_str().is_some_and(|t| t.starts_with("Lost contact with nginx")), "{banner}");
    b.screenshot(&repo_root().join("build/status-page-lost.png"));

    // Every request the page made went to the nginx it came from (the document and its JSON).
    let urls = b.requested_urls();
    assert!(urls.iter().any(|u| u == &format!("{origin}/ase-status?format=json")), "{urls:?}");
    let outside: Vec<&String> =
        urls.iter().filter(|u| !u.starts_with(&format!("{origin}/")) && !u.starts_with("data:")).collect();
    assert!(outside.is_empty(), "the page requested something outside nginx: {outside:?}");
}

/// Two groups, `eu.two`'s ASE stopped so its breaker is open: the page's table of groups
/// shows each group's figures as the JSON has them (breaker, checks, errors by cause,
/// trips, reports sent and dropped), its rates add up to the counters' increase, and each
/// node is listed under its group.
#[test]
fn the_page_shows_each_group() {
    let (a, mut down, backend) = (AseDouble::start(&["--keepalive"]), AseDouble::start(&[]), Backend::start());
    a.deny("token", "blocked-token");
    down.stop();
    let n = start_groups(&a, Some(&down), &backend);
    drive(&n, &a, 4, 2, 1);
    drive_two(&n, 3);
    let first = settled(&n);
    assert_eq!(
        (&first["groups"]["default"]["breaker"], &first["groups"][TWO]["breaker"]),
        (&json!("closed"), &json!("open")),
        "{first}"
    );

    let mut b = Browser::launch();
    b.viewport(1200, 900, false);
    b.navigate(&n.url("/ase-status"));
    b.wait_until("the page's first figures", PAGE_LIMIT, "Number(document.body.dataset.polls) >= 2");
    for round in 0..4 {
        let polls = b.eval("Number(document.body.dataset.polls)").as_u64().unwrap();
        drive(&n, &a, 1 + round, round % 2, 0);
        drive_two(&n, round + 1);
        b.wait_until("the next poll", PAGE_LIMIT, &format!("Number(document.body.dataset.polls) > {polls}"));
    }
    let mut last = Value::Null;
    let mut diff = Vec::new();
    let agreed = ngx_ase_tests::wait_for_quiet(PAGE_LIMIT, || {
        last = settled(&n);
        let figures: Value = serde_json::from_str(b.eval(FIGURES).as_str().unwrap_or("[]")).unwrap_or_default();
        diff = mismatches(&figures, &last);
        diff.is_empty() && figures.as_array().is_some_and(|f| !f.is_empty())
    });
    assert!(agreed, "the page's figures never matched the JSON:\n{}", diff.join("\n"));

    // Every group figure is on the page, and every cause a group has errors for.
    let figures: Value = serde_json::from_str(b.eval(FIGURES).as_str().unwrap()).unwrap();
    let keys: Vec<&str> = figures.as_array().unwrap().iter().filter_map(|f| f[0].as_str()).collect();
    let mut want: Vec<String> = Vec::new();
    for g in ["default", TWO] {
        for k in ["breaker", "nodes", "checks", "breaker_trips", "reports_sent", "reports_dropped"] {
            want.push(format!("groups.{g}.{k}"));
        }
        let errors = last["groups"][g]["errors"].as_object().expect("errors by cause");
        want.extend(
            errors.iter().filter(|(_, v)| v.as_u64() != Some(0)).map(|(cause, _)| format!("groups.{g}.errors.{cause}")),
        );
    }
    assert!(
        want.contains(&format!("groups.{TWO}.errors.refused"))
            && want.contains(&format!("groups.{TWO}.errors.unavailable")),
        "{last}"
    );
    for w in &want {
        assert!(keys.contains(&w.as_str()), "the page does not show {w}: {keys:?}");
    }

    // The rates drawn add up to each group's counters' increase.
    let errors = |s: &Value, g: &str| -> u64 {
        s["groups"][g]["errors"].as_object().unwrap().values().filter_map(Value::as_u64).sum()
    };
    for (g, rate, field) in [
        ("default", "checks", "checks"),
        (TWO, "checks", "checks"),
        ("default", "sent", "reports_sent"),
        (TWO, "dropped", "reports_dropped"),
    ] {
        let want = last["groups"][g][field].as_u64().unwrap() - first["groups"][g][field].as_u64().unwrap();
        assert!(want > 0, "{g} {field}: no traffic while the page watched");
        let expr = format!("Number(document.querySelector('#groups [data-rate=\"g:{g}:{rate}\"]').dataset.delta)");
        assert_eq!(b.eval(&expr).as_u64(), Some(want), "{g} {rate}: the rates do not add up to the counter's increase");
    }
    let want = errors(&last, TWO) - errors(&first, TWO);
    assert!(want > 0);
    assert_eq!(
        b.eval(&format!("Number(document.querySelector('#groups [data-rate=\"g:{TWO}:errors\"]').dataset.delta)"))
            .as_u64(),
        Some(want)
    );

    // The open breaker shows as such, in the table and in the tile.
    for (g, state) in [("default", "closed"), (TWO, "open")] {
        assert_eq!(
            cell_class(&mut b, &format!("#groups tr[data-group=\"{g}\"] [data-k=\"groups.{g}.breaker\"]")),
            state,
            "{g}"
        );
    }
    assert_eq!(b.eval("document.getElementById('breakers-open').textContent"), json!("1 of 2"));
    assert_eq!(b.eval("document.getElementById('groups-card').hidden"), json!(false));

    // Each node under its group.
    let groups = b.eval(
        "[...document.querySelectorAll('#nodes h3')].map(h => [h.textContent, \
        [...h.nextElementSibling.querySelectorAll('tr[data-node]')].map(r => Number(r.dataset.node))])",
    );
    assert_eq!(groups, json!([["group default", [0]], [format!("group {TWO}"), [1]]]));
    assert_eq!((&last["nodes"][0]["group"], &last["nodes"][1]["group"]), (&json!("default"), &json!(TWO)));
    assert_eq!(last["nodes"][1]["state"], "down", "{last}");

    assert_eq!(
        b.eval("document.getElementById('error').hidden && document.getElementById('lost').hidden"),
        json!(true),
        "the page shows an error: {}",
        b.eval("document.getElementById('error').textContent + document.getElementById('lost').textContent")
    );
    assert_eq!(b.problems(), Vec::<String>::new(), "the page logged errors");
    b.screenshot(&repo_root().join("build/status-page-groups-live.png"));
    b.viewport(390, 844, true);
    let polls = b.eval("Number(document.body.dataset.polls)").as_u64().unwrap();
    b.wait_until("a poll at phone width", PAGE_LIMIT, &format!("Number(document.body.dataset.polls) > {polls}"));
    assert_eq!(
        b.eval("document.documentElement.scrollWidth <= window.innerWidth"),
        json!(true),
        "the group table is wider than a phone"
    );
}

/// The class of the table cell holding the element `selector` finds.
fn cell_class(b: &mut Browser, selector: &str) -> String {
    let expr = format!("(document.querySelector('{selector}') || {{}}).parentElement?.className ?? 'missing'");
    b.eval(&expr).as_str().unwrap_or_default().to_string()
}

#[test]
fn the_page_answers_with_its_security_policy() {
    let (double, backend) = (AseDouble::start(&[]), Backend::start());
    let n = start(&double, &backend);
    let page = client().get(n.url("/ase-status?format=html")).send().unwrap();
    assert_eq!(page.status(), 200);
    let h = page.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    let csp = h["content-security-policy"].to_str().unwrap();
    for directive in
        ["default-src 'none'", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'none'"]
    {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(
        !csp.contains("http:") && !csp.contains("https:") && !csp.contains('*'),
        "the policy names another origin: {csp}"
    );
    // Only the page's own script and style, by hash: an injected one would not run.
    assert!(
        csp.contains("script-src 'sha256-") && csp.contains("style-src 'sha256-") && !csp.contains("unsafe"),
        "{csp}"
    );
    let body = page.text().unwrap();
    assert!(body.len() < 64 * 1024, "the page is {} bytes", body.len());
    // Self-contained: no URL of any other place in it (the SVG namespace is a name, not a fetch).
    let without_ns = body.replace("http://www.w3.org/2000/svg", "");
    assert!(
        !without_ns.contains("http://") && !without_ns.contains("https://") && !without_ns.contains("//cdn"),
        "the page refers to another origin"
    );
    assert!(
        !body.contains(" src=") && !body.contains("@import") && !body.contains("url("),
        "the page loads a resource"
    );
}

/// JSON from a later version (a `monitor` verdict, counters the page has never heard of, a
/// group past the 16 with counters), served by nginx at `?format=json` where the page
/// polls: nodes are grouped, every figure is shown as the JSON has it, nothing breaks.
const FUTURE: &str = r#"{"scope":"all_workers","checks":43,"reports":40,"ase_status":{"200":30,"403":10,"other":1},
"errors":{"timeout":1},"verdicts":{"allow":20,"block":10,"fail_open":2,"fail_closed":0,"monitor":8,"skip":0,"shadow":3},
"fail_open_by_cause":{"ase_status":1,"timeout":1},"breaker":"closed","breaker_trips":1,"blind_ms":2750,"reports_sent":38,
"reports_dropped_queue_full":1,"reports_dropped_unavailable":1,"payload_truncated":0,"nodes":[
{"url":"http://10.0.0.1:8000","address":"10.0.0.1:8000","backup":false,"group":"payments","state":"up","calls":50,"failures":0,"latency_ms":{"p50":2,"p99":7}},
{"url":"http://10.0.0.2:8000","address":"10.0.0.2:8000","backup":true,"group":"payments","state":"down","calls":5,"failures":5,"latency_ms":{"p50":null,"p99":null}},
{"url":"http://10.0.0.3:8000","address":"10.0.0.3:8000","backup":false,"group":"public","state":"up","calls":30,"failures":1,"latency_ms":{"p50":1,"p99":3}}],
"nodes_untracked":0,"groups":{
"payments":{"breaker":"open","nodes":2,"checks":30,"reports":28,"errors":{"timeout":1,"refused":0},"breaker_trips":2,"blind_ms":2750,"reports_sent":27,"reports_dropped":1,"mirrored":4,"mirrored_sent":3,"mirrored_dropped":1,"slow_workers":1,"slow_entered":2,"slow_detached":9,"shadowed":3},
"public":{"breaker":"closed","nodes":1,"checks":13,"reports":12,"errors":{"timeout":0},"breaker_trips":0,"blind_ms":0,"reports_sent":11,"reports_dropped":1,"mirrored":0,"mirrored_sent":0,"mirrored_dropped":0,"slow_workers":0,"slow_entered":0,"slow_detached":0},
"late":{"breaker":"closed","nodes":0,"state":"untracked"}},
"groups_reloaded":4,"monitor_sessions":{"open":2,"closed":5}}"#;

#[test]
fn the_page_groups_nodes_and_shows_counters_it_does_not_know() {
    let port = free_port();
    let future = FUTURE.replace('\n', "");
    let http = format!(
        r#"
    ase_server http://127.0.0.1:1;
    server {{
        listen 127.0.0.1:{port};
        location = /ase-status {{
            default_type application/json;
            if ($arg_format = json) {{ return 200 '{future}'; }}
            ase_status;
        }}
    }}
"#
    );
    let mut n = Nginx::prepare(&config_with_http(&http));
    n.port = port;
    n.launch();
    let json: Value = serde_json::from_str(&future).expect("the future JSON parses");

    let mut b = Browser::launch();
    b.viewport(1200, 900, false);
    b.navigate(&n.url("/ase-status"));
    b.wait_until("two polls", PAGE_LIMIT, "Number(document.body.dataset.polls) >= 2");
    let figures: Value = serde_json::from_str(b.eval(FIGURES).as_str().unwrap()).unwrap();
    assert_eq!(mismatches(&figures, &json), Vec::<String>::new());
    let keys: Vec<&str> = figures.as_array().unwrap().iter().filter_map(|f| f[0].as_str()).collect();
    for want in [
        "verdicts.monitor",
        "verdicts.shadow",
        "groups_reloaded",
        "monitor_sessions.open",
        "nodes.2.latency_ms.p99",
        "nodes.1.state",
        "groups.payments.errors.timeout",
        "groups.public.checks",
        "groups.late.state",
        "groups.late.breaker",
    ] {
        assert!(keys.contains(&want), "the page does not show {want}: {keys:?}");
    }
    let groups = b.eval(
        "[...document.querySelectorAll('#nodes h3')].map(h => [h.textContent, \
        [...h.nextElementSibling.querySelectorAll('tr[data-node]')].map(r => Number(r.dataset.node))])",
    );
    assert_eq!(groups, json!([["group payments", [0, 1]], ["group public", [2]]]));
    assert!(
        !keys.contains(&"groups.payments.errors.refused") && !keys.contains(&"groups.public.errors.timeout"),
        "causes without errors: {keys:?}"
    );
    assert_eq!(
        b.eval("document.querySelector('#groups tr[data-group=\"late\"] td.untracked').textContent"),
        json!("untracked (no counters past the first 16 groups)")
    );
    assert_eq!(b.eval("document.getElementById('breakers-open').textContent"), json!("1 of 3"));
    assert_eq!(b.eval("!!document.querySelector('#chart-verdicts path[data-series=\"v:monitor\"]')"), json!(true));
    assert_eq!(
        b.eval("document.getElementById('error').hidden && document.getElementById('lost').hidden"),
        json!(true)
    );
    assert_eq!(b.problems(), Vec::<String>::new(), "the page logged errors");
    b.screenshot(&repo_root().join("build/status-page-groups.png"));
}
