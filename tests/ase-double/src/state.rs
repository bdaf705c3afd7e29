//! What the data port and the admin port share: settings, deny list, fault, records, counters.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{json, Value};

use crate::apis::Api;
use crate::calllog::CallLog;
use crate::deny::DenyList;
use crate::faults::{CallKind, Fault};

pub struct State {
    /// The required `ASE-Token`, if any. Never logged.
    pub token: Option<String>,
    pub apis: Vec<Api>,
    pub keepalive_timeout: Duration,
    pub deny: Mutex<DenyList>,
    keepalive: AtomicBool,
    fault: Mutex<Fault>,
    /// Accepted connections since the last clear.
    connections: AtomicU64,
    /// Numbers connections (never reset).
    last_connection_id: AtomicU64,
    /// Stray answers written (faults `stray`, `exact_1024` with `stray`) since the last clear.
    strays: AtomicU64,
    /// "Forget idle flows": a request on a connection idle longer than this (ms) is hung,
    /// as behind a NAT or load balancer that dropped the flow; 0 is off.
    forget_idle_ms: AtomicU64,
    /// Requests hung so (since the last clear).
    forgotten: AtomicU64,
    calls: Mutex<Calls>,
    log: CallLog,
}

/// One data-port call, as recorded and logged.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub seq: u64,
    pub kind: &'static str,
    pub correlation_id: Option<String>,
    /// "ok", "missing" or "wrong".
    pub token: &'static str,
    /// The status answered; null when a fault answered no HTTP status (reset, garbage, hang).
    pub status: Option<u16>,
    /// The parsed JSON body, or the raw body as a (lossy) string when it is not JSON.
    pub body: Value,
    /// The body's length in bytes, as received.
    pub body_len: usize,
    pub method: String,
    pub path: String,
    /// Why the call was answered 400, if it was.
    pub error: Option<String>,
    /// The url of the API the request matched.
    pub api: Option<String>,
    /// The deny-list kind that matched ("ip", "cookie", "token", "api_key", "username").
    pub denied: Option<&'static str>,
    /// The fault applied to this call.
    pub fault: Option<&'static str>,
    /// Which accepted connection (1, 2, ...) carried the call.
    pub connection: u64,
}

#[derive(Default)]
struct Calls {
    seq: u64,
    records: Vec<Record>,
    requests: u64,
    responses: u64,
    health: u64,
    other: u64,
    by_status: BTreeMap<String, u64>,
}

impl State {
    pub fn new(
        token: Option<String>,
        apis: Vec<Api>,
        keepalive: bool,
        keepalive_timeout: Duration,
        log: CallLog,
    ) -> State {
        State {
            token,
            apis,
            keepalive_timeout,
            deny: Mutex::new(DenyList::default()),
            keepalive: AtomicBool::new(keepalive),
            fault: Mutex::new(Fault::none()),
            connections: AtomicU64::new(0),
            last_connection_id: AtomicU64::new(0),
            strays: AtomicU64::new(0),
            forget_idle_ms: AtomicU64::new(0),
            forgotten: AtomicU64::new(0),
            calls: Mutex::new(Calls::default()),
            log,
        }
    }

    pub fn keepalive(&self) -> bool {
        self.keepalive.load(Ordering::SeqCst)
    }

    pub fn set_keepalive(&self, on: bool) {
        self.keepalive.store(on, Ordering::SeqCst);
    }

    pub fn fault(&self) -> Fault {
        self.fault.lock().clone()
    }

    pub fn set_fault(&self, fault: Fault) {
        *self.fault.lock() = fault;
    }

    /// The fault to apply to one call of this kind, if any.
    pub fn take_fault(&self, call: CallKind) -> Option<Fault> {
        self.fault.lock().take(call)
    }

    /// Counts an accepted connection; returns its number (1, 2, ..., never reused).
    pub fn connection_accepted(&self) -> u64 {
        self.connections.fetch_add(1, Ordering::SeqCst);
        self.last_connection_id.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Records and logs a call: request and response calls are kept for `GET /records`;
    /// health checks and unknown paths are only counted and logged. Sets `seq`.
    pub fn record(&self, kind: CallKind, mut record: Record) {
        let mut calls = self.calls.lock();
        calls.seq += 1;
        record.seq = calls.seq;
        match kind {
            CallKind::Request => calls.requests += 1,
            CallKind::Response => calls.responses += 1,
            CallKind::Health => calls.health += 1,
            CallKind::Other => calls.other += 1,
        }
        let mut line = serde_json::to_value(&record).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut line {
            map.insert("time".to_string(), json!(unix_time()));
        }
        if matches!(kind, CallKind::Request | CallKind::Response) {
            if let Some(status) = record.status {
                *calls.by_status.entry(status.to_string()).or_insert(0) += 1;
            }
            calls.records.push(record);
        }
        // under the lock, so that the log is in seq order
        self.log.line(&line);
    }

    /// A stray answer went out (after the answer it follows).
    pub fn forget_idle_ms(&self) -> u64 {
        self.forget_idle_ms.load(Ordering::SeqCst)
    }

    pub fn set_forget_idle_ms(&self, ms: u64) {
        self.forget_idle_ms.store(ms, Ordering::SeqCst);
    }

    /// Whether a request that arrived after `idle` of quiet on its connection is one a
    /// middlebox forgot (counted when it is).
    pub fn forgets(&self, idle: Duration) -> bool {
        let ms = self.forget_idle_ms();
        let forgot = ms > 0 && idle > Duration::from_millis(ms);
        if forgot {
            self.forgotten.fetch_add(1, Ordering::SeqCst);
        }
        forgot
    }

    pub fn stray_written(&self) {
        self.strays.fetch_add(1, Ordering::SeqCst);
    }

    pub fn records_json(&self) -> Value {
        json!({ "records": self.calls.lock().records })
    }

    pub fn stats_json(&self) -> Value {
        let calls = self.calls.lock();
        json!({
            "connections": self.connections.load(Ordering::SeqCst),
            "requests": calls.requests,
            "responses": calls.responses,
            "health": calls.health,
            "other": calls.other,
            "by_status": calls.by_status,
            "strays_written": self.strays.load(Ordering::SeqCst),
            "forgotten_flows": self.forgotten.load(Ordering::SeqCst),
        })
    }

    /// Clears the records and every counter (the sequence numbers go on).
    pub fn clear_records(&self) {
        let mut calls = self.calls.lock();
        let seq = calls.seq;
        *calls = Calls { seq, ..Calls::default() };
        self.forgotten.store(0, Ordering::SeqCst);
        self.connections.store(0, Ordering::SeqCst);
        self.strays.store(0, Ordering::SeqCst);
    }
}

fn unix_time() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| (d.as_millis() as f64) / 1000.0).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State::new(
            None,
            vec![Api::builtin()],
            false,
            Duration::from_secs(1),
            CallLog::file(std::path::Path::new("/dev/null")).expect("/dev/null"),
        )
    }

    fn rec(status: Option<u16>) -> Record {
        Record {
            seq: 0,
            kind: "request",
            correlation_id: Some("c1".into()),
            token: "ok",
            status,
            body: json!({}),
            body_len: 2,
            method: "POST".into(),
            path: "/ase/request".into(),
            error: None,
            api: None,
            denied: None,
            fault: None,
            connection: 1,
        }
    }

    #[test]
    fn records_and_stats() {
        let s = state();
        s.connection_accepted();
        s.record(CallKind::Request, rec(Some(200)));
        s.record(CallKind::Response, Record { kind: "response", ..rec(Some(200)) });
        s.record(CallKind::Request, rec(Some(403)));
        s.record(CallKind::Request, rec(None));
        s.record(CallKind::Health, Record { kind: "health", ..rec(Some(200)) });
        let stats = s.stats_json();
        assert_eq!(stats["connections"], 1);
        assert_eq!(stats["requests"], 3);
        assert_eq!(stats["responses"], 1);
        assert_eq!(stats["health"], 1);
        assert_eq!(stats["by_status"], json!({"200": 2, "403": 1}));
        let records = s.records_json();
        assert_eq!(records["records"].as_array().map(Vec::len), Some(4));
        assert_eq!(records["records"][0]["seq"], 1);
        assert_eq!(records["records"][3]["status"], Value::Null);
        s.clear_records();
        assert_eq!(s.stats_json()["requests"], 0);
        assert_eq!(s.stats_json()["connections"], 0);
        assert_eq!(s.connection_accepted(), 2);
        assert_eq!(s.records_json()["records"], json!([]));
        s.record(CallKind::Request, rec(Some(200)));
        assert_eq!(s.records_json()["records"][0]["seq"], 6);
    }
}
