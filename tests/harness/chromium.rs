//! Headless Chromium (Debian's `chromium`), driven over the DevTools protocol, for the tests
//! of the status page: open a page, evaluate JavaScript in it, take screenshots, and keep
//! every request it made and every error it logged.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use crate::wait_for;

/// Generous bounds: Chromium on a loaded 2-core machine can take seconds to start or answer.
const START_LIMIT: Duration = Duration::from_secs(90);
const CALL_LIMIT: Duration = Duration::from_secs(60);

/// The Chromium binary: `$CHROMIUM`, else `chromium` on `PATH`.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return PathBuf::from(p);
    }
    let found = std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).map(|d| d.join("chromium")).find(|p| p.is_file()));
    found.expect("chromium not found: install Debian's chromium package (scripts/test.sh does)")
}

pub struct Browser {
    child: Child,
    profile: tempfile::TempDir,
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    session: String,
    /// The viewport set last: width, height, mobile.
    viewport: (u32, u32, bool),
    /// Every event the page's session sent, in order.
    pub events: Vec<Value>,
}

impl Browser {
    /// Starts Chromium headless with an empty profile, and opens one blank page.
    pub fn launch() -> Browser {
        let profile = tempfile::Builder::new().prefix("ngx-ase-chromium-").tempdir().expect("tempdir");
        let child = Command::new(binary())
            .args([
                "--headless",
                // root (the CI runs as root) cannot use Chromium's sandbox
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                // nothing of Chromium's own on the network: only the page's requests happen
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::from(fs::File::create(profile.path().join("stderr.log")).expect("stderr log")))
            .spawn()
            .expect("start chromium");
        // Chromium writes the port it picked, then the browser's WebSocket path.
        let active = profile.path().join("DevToolsActivePort");
        let (port, path) = wait_for("chromium's DevTools port", START_LIMIT, || {
            let text = fs::read_to_string(&active).ok()?;
            let mut lines = text.lines();
            Some((lines.next()?.parse::<u16>().ok()?, lines.next()?.to_string()))
        });
        let (ws, _) = tungstenite::connect(format!("ws://127.0.0.1:{port}{path}")).expect("DevTools WebSocket");
        if let MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(CALL_LIMIT)).expect("read timeout");
        }
        let mut b = Browser {
            child,
            profile,
            ws,
            next_id: 0,
            session: String::new(),
            viewport: (800, 600, false),
            events: Vec::new(),
        };
        let target = b.call_browser("Target.createTarget", json!({"url": "about:blank"}));
        let target = target["targetId"].as_str().expect("targetId").to_string();
        let attached = b.call_browser("Target.attachToTarget", json!({"targetId": target, "flatten": true}));
        b.session = attached["sessionId"].as_str().expect("sessionId").to_string();
        for domain in ["Page", "Runtime", "Network", "Log"] {
            b.call(&format!("{domain}.enable"), json!({}));
        }
        b
    }

    fn call_browser(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params, None)
    }

    /// Calls `method` in the page's session and returns its result; panics on an error.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send(method, params, Some(session))
    }

    fn send(&mut self, method: &str, params: Value, session: Option<String>) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws.send(Message::text(msg.to_string())).unwrap_or_else(|e| panic!("DevTools {method}: {e}"));
        let start = Instant::now();
        loop {
            assert!(start.elapsed() < CALL_LIMIT, "DevTools {method}: no answer in {CALL_LIMIT:?}");
            let text = match self.ws.read().unwrap_or_else(|e| panic!("DevTools {method}: {e}\n{}", self.stderr())) {
                Message::Text(t) => t.to_string(),
                _ => continue,
            };
            let v: Value = serde_json::from_str(&text).expect("DevTools message is JSON");
            if v["id"].as_u64() == Some(id) {
                if let Some(err) = v.get("error") {
                    panic!("DevTools {method}: {err}");
                }
                return v["result"].clone();
            }
            if v.get("method").is_some() {
                self.events.push(v);
            }
        }
    }

    /// Loads `url` in the page (a browser's own request: its `Accept` header says text/html).
    pub fn navigate(&mut self, url: &str) {
        let r = self.call("Page.navigate", json!({"url": url}));
        assert!(r.get("errorText").is_none(), "navigating to {url}: {r}");
        // Page.navigate answers once the load has begun: wait until it has ended.
        let url_js = serde_json::to_string(url).expect("URL as JSON");
        self.wait_until(
            &format!("{url} to load"),
            CALL_LIMIT,
            &format!("location.href === {url_js} && document.readyState === 'complete'"),
        );
    }

    /// The value of a JavaScript expression evaluated in the page; panics on an exception.
    pub fn eval(&mut self, expr: &str) -> Value {
        let r = self.call("Runtime.evaluate", json!({"expression": expr, "returnByValue": true, "awaitPromise": true}));
        if let Some(e) = r.get("exceptionDetails") {
            panic!("evaluating {expr}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Evaluates `expr` until it gives something other than false/null/undefined (or `limit`).
    pub fn wait_until(&mut self, what: &str, limit: Duration, expr: &str) -> Value {
        let start = Instant::now();
        loop {
            let v = self.eval(expr);
            if !(v.is_null() || v == json!(false)) {
                return v;
            }
            if start.elapsed() > limit {
                panic!("timed out after {limit:?} waiting for {what} ({expr})\nproblems: {:?}", self.problems());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Sets the viewport (CSS pixels); `mobile` also makes it a touch phone's.
    pub fn viewport(&mut self, width: u32, height: u32, mobile: bool) {
        self.viewport = (width, height, mobile);
        self.set_metrics(width, height, mobile);
    }

    fn set_metrics(&mut self, width: u32, height: u32, mobile: bool) {
        let scale = if mobile { 2 } else { 1 };
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": scale, "mobile": mobile}),
        );
    }

    /// Saves a PNG of the whole page at `path`: the viewport is made as tall as the page
    /// for the shot (so the layout is the one at this width), then set back.
    pub fn screenshot(&mut self, path: &Path) {
        let (width, height, mobile) = self.viewport;
        let full = self.eval("document.documentElement.scrollHeight").as_u64().unwrap_or(height.into());
        self.set_metrics(width, full.clamp(height.into(), 16_000) as u32, mobile);
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}));
        self.set_metrics(width, height, mobile);
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().expect("screenshot data"))
            .expect("base64");
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).expect("screenshot directory");
        }
        fs::write(path, png).expect("write screenshot");
    }

    /// Every URL the page requested (document, fetches, anything), in order.
    pub fn requested_urls(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| e["method"] == "Network.requestWillBeSent")
            .filter_map(|e| e["params"]["request"]["url"].as_str().map(String::from))
            .collect()
    }

    /// Exceptions, console errors and browser log errors (a refused request, a blocked
    /// resource, a security policy violation) the page produced so far.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for e in &self.events {
            let p = &e["params"];
            match e["method"].as_str() {
                Some("Runtime.exceptionThrown") => out.push(format!("exception: {}", p["exceptionDetails"])),
                Some("Runtime.consoleAPICalled") if matches!(p["type"].as_str(), Some("error" | "assert")) => {
                    out.push(format!("console.{}: {}", p["type"], p["args"]))
                }
                Some("Log.entryAdded") if p["entry"]["level"] == "error" => {
                    out.push(format!("log: {}", p["entry"]["text"]))
                }
                _ => {}
            }
        }
        out
    }

    fn stderr(&self) -> String {
        fs::read_to_string(self.profile.path().join("stderr.log")).unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
