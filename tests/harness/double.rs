//! The ASE test double (`tests/ase-double`) as a child process, and its admin API.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::{client, repo_root, wait_for};

/// A directory of API definition files for the double's `--apis`, kept while it lives.
pub fn api_definitions(defs: &[Value]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("ase-apis-").tempdir().expect("tempdir");
    for (i, d) in defs.iter().enumerate() {
        std::fs::write(dir.path().join(format!("api{i}.json")), d.to_string()).expect("write API file");
    }
    dir
}

/// An API definition that blocks, with the ASE's usual identity settings.
pub fn api(url: &str, hostname: &str) -> Value {
    serde_json::json!({"api_metadata": {"url": url, "hostname": hostname, "cookie": "JSESSIONID",
        "oauth2_access_token": true, "apikey_header": "x-api-key", "enable_blocking": true}})
}

pub fn binary() -> PathBuf {
    std::env::var_os("ASE_DOUBLE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/double/release/ase-double"))
}

pub struct AseDouble {
    pub dir: tempfile::TempDir,
    /// `127.0.0.1:PORT` of the sideband (data) port.
    pub data: String,
    /// `127.0.0.1:PORT` of the admin port.
    pub admin: String,
    child: Option<Child>,
    args: Vec<String>,
}

impl AseDouble {
    /// Starts the double with extra command-line flags (e.g. `["--keepalive"]`).
    pub fn start(extra: &[&str]) -> AseDouble {
        Self::start_on("127.0.0.1:0", extra)
    }

    /// Starts it on a given data address (to restart it on the same port).
    pub fn start_on(data: &str, extra: &[&str]) -> AseDouble {
        let dir = tempfile::Builder::new().prefix("ase-double-").tempdir().expect("tempdir");
        let mut d = AseDouble { dir, data: String::new(), admin: String::new(), child: None, args: Vec::new() };
        d.args = extra.iter().map(|s| s.to_string()).collect();
        d.spawn(data);
        d
    }

    fn spawn(&mut self, data: &str) {
        let bin = binary();
        assert!(
            bin.exists(),
            "{} not found: build it with scripts/test.sh or cargo build -p ase-double",
            bin.display()
        );
        let ready = self.dir.path().join("ready.json");
        let _ = std::fs::remove_file(&ready);
        let child = Command::new(bin)
            .args(["--listen", data, "--admin", "127.0.0.1:0", "--ready-file"])
            .arg(&ready)
            .arg("--log")
            .arg(self.dir.path().join("calls.log"))
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ase-double");
        self.child = Some(child);
        let info: Value = wait_for("the ASE double to start", Duration::from_secs(10), || {
            std::fs::read(&ready).ok().and_then(|b| serde_json::from_slice(&b).ok())
        });
        self.data = info["data"].as_str().expect("data address").to_string();
        self.admin = info["admin"].as_str().expect("admin address").to_string();
    }

    /// `http://127.0.0.1:PORT`, for `ase_server`.
    pub fn url(&self) -> String {
        format!("http://{}", self.data)
    }

    /// Stops the process (the port stops answering).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same data port, with the same flags.
    pub fn restart(&mut self) {
        self.stop();
        let data = self.data.clone();
        self.spawn(&data);
    }

    fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = client().request(method, self.admin_url(path));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().expect("ASE double admin API");
        assert!(resp.status().is_success(), "admin {path}: {}", resp.status());
        resp.json().unwrap_or(Value::Null)
    }

    pub fn records(&self) -> Vec<Value> {
        self.send(reqwest::Method::GET, "/records", None)["records"].as_array().cloned().unwrap_or_default()
    }

    /// Records of one kind (`"request"` or `"response"`).
    pub fn records_of(&self, kind: &str) -> Vec<Value> {
        self.records().into_iter().filter(|r| r["kind"] == kind).collect()
    }

    pub fn clear_records(&self) {
        self.send(reqwest::Method::DELETE, "/records", None);
    }

    pub fn stats(&self) -> Value {
        self.send(reqwest::Method::GET, "/stats", None)
    }

    /// Puts a client on the deny list: kind is ip, cookie, token, api_key or username.
    pub fn deny(&self, kind: &str, value: &str) {
        self.send(reqwest::Method::POST, "/deny", Some(json!({"kind": kind, "value": value})));
    }

    pub fn allow(&self, kind: &str, value: &str) {
        self.send(reqwest::Method::DELETE, "/deny", Some(json!({"kind": kind, "value": value})));
    }

    /// Sets a fault, e.g. `json!({"kind": "delay", "ms": 500})`.
    pub fn fault(&self, fault: Value) {
        self.send(reqwest::Method::PUT, "/fault", Some(fault));
    }

    pub fn clear_fault(&self) {
        self.send(reqwest::Method::DELETE, "/fault", None);
    }

    pub fn set_keepalive(&self, on: bool) {
        self.send(reqwest::Method::PUT, "/keepalive", Some(json!({"enabled": on})));
    }

    /// Waits until the double holds at least `n` records of `kind`, and returns them.
    pub fn wait_records(&self, kind: &str, n: usize) -> Vec<Value> {
        wait_for(&format!("{n} {kind} records at the ASE double"), Duration::from_secs(10), || {
            let r = self.records_of(kind);
            (r.len() >= n).then_some(r)
        })
    }
}

impl Drop for AseDouble {
    fn drop(&mut self) {
        self.stop();
    }
}
