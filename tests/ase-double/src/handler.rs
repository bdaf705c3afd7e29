//! One data-port call: routing, token check, validation and verdict, giving the normal
//! answer and the record of the call (faults are applied afterwards, by the server).

use serde_json::{json, Value};

use crate::faults::CallKind;
use crate::protocol::{self, TokenStatus};
use crate::state::{Record, State};
use crate::wire::WireRequest;

pub const TEXT: &str = "text/plain";
pub const JSON: &str = "application/json";

/// The normal answer to a call, and its record (status filled in).
pub struct Outcome {
    pub kind: CallKind,
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub record: Record,
}

pub fn route(method: &str, path: &str) -> CallKind {
    match (method, path) {
        ("POST", "/ase/request") => CallKind::Request,
        ("POST", "/ase/response") => CallKind::Response,
        ("GET" | "HEAD", "/ase") => CallKind::Health,
        _ => CallKind::Other,
    }
}

pub fn handle(state: &State, req: &WireRequest, connection: u64) -> Outcome {
    let kind = route(&req.method, req.path());
    let token = protocol::check_token(state.token.as_deref(), req.header("ase-token"));
    let parsed: Result<Value, String> = serde_json::from_slice(&req.body).map_err(|e| format!("invalid JSON: {e}"));
    let body = match (&parsed, kind) {
        (Ok(v), _) => v.clone(),
        (Err(_), CallKind::Health | CallKind::Other) if req.body.is_empty() => Value::Null,
        (Err(_), _) => Value::String(String::from_utf8_lossy(&req.body).into_owned()),
    };
    let mut record = Record {
        seq: 0,
        kind: kind.name(),
        correlation_id: req.header_str("x-correlationid"),
        token: token.name(),
        status: None,
        body,
        body_len: req.body.len(),
        method: req.method.clone(),
        path: req.path().to_string(),
        error: None,
        api: None,
        denied: None,
        fault: None,
        connection,
    };
    let (status, content_type, answer): (u16, &'static str, Vec<u8>) = match kind {
        CallKind::Health => (200, JSON, json!({"status": "ok"}).to_string().into_bytes()),
        CallKind::Other => (404, TEXT, b"Error: Not Found".to_vec()),
        CallKind::Request | CallKind::Response => match sideband(state, kind, token, parsed, &mut record) {
            Ok(Some(body)) => (200, JSON, body.into_bytes()),
            Ok(None) => (200, JSON, Vec::new()),
            Err((status, text)) => (status, TEXT, text.as_bytes().to_vec()),
        },
    };
    // a 403 has an empty body
    let content_type = if status == 403 { JSON } else { content_type };
    record.status = Some(status);
    Outcome { kind, status, content_type, body: answer, record }
}

/// A sideband call: `Ok` for a 200 (with an optional body), `Err((status, body))` otherwise.
fn sideband(
    state: &State,
    kind: CallKind,
    token: TokenStatus,
    parsed: Result<Value, String>,
    record: &mut Record,
) -> Result<Option<String>, (u16, &'static str)> {
    if protocol::token_rejected(state.token.as_deref(), token) {
        return Err((401, protocol::UNAUTHORIZED));
    }
    let malformed = |record: &mut Record, why: String| {
        record.error = Some(why);
        (400, protocol::MALFORMED)
    };
    let value = parsed.map_err(|why| malformed(record, why))?;
    if kind == CallKind::Response {
        protocol::parse_response_call(&value).map_err(|why| malformed(record, why))?;
        return Ok(None);
    }
    let call = protocol::parse_request_call(&value).map_err(|why| malformed(record, why))?;
    let decision = protocol::decide(&call, &state.apis, &state.deny.lock());
    record.api = decision.api;
    record.denied = decision.denied.map(|k| k.name());
    match decision.status {
        200 => Ok(None),
        403 => Err((403, "")),
        status => Err((status, decision.body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apis::Api;
    use crate::calllog::CallLog;
    use crate::deny::DenyKind;
    use std::time::Duration;

    fn state(token: Option<&str>) -> State {
        let log = CallLog::file(std::path::Path::new("/dev/null")).expect("/dev/null");
        State::new(token.map(str::to_string), vec![Api::builtin()], false, Duration::from_secs(1), log)
    }

    fn post(path: &str, token: Option<&str>, body: &str) -> WireRequest {
        let mut headers = vec![("X-CorrelationID".to_string(), b"cid-1".to_vec())];
        if let Some(t) = token {
            headers.push(("ASE-Token".to_string(), t.as_bytes().to_vec()));
        }
        WireRequest { method: "POST".into(), target: path.into(), version: 1, headers, body: body.as_bytes().to_vec() }
    }

    const REQ: &str = r#"{"source_ip":"10.0.0.1","source_port":1,"method":"GET","url":"/","http_version":"1.1","headers":[{"host":"x"}]}"#;
    const RESP: &str = r#"{"response_code":"200","response_status":"OK","http_version":"1.1","headers":[]}"#;

    #[test]
    fn statuses() {
        let s = state(Some("tok"));
        let o = handle(&s, &post("/ase/request", Some("tok"), REQ), 1);
        assert_eq!((o.status, o.record.token, o.record.correlation_id.as_deref()), (200, "ok", Some("cid-1")));
        assert_eq!(o.record.body["source_ip"], "10.0.0.1");
        let o = handle(&s, &post("/ase/request", None, REQ), 1);
        assert_eq!((o.status, o.body.as_slice(), o.record.token), (401, &b"Error: Unauthorized"[..], "missing"));
        let o = handle(&s, &post("/ase/response", Some("nope"), RESP), 1);
        assert_eq!((o.status, o.record.token), (401, "wrong"));
        let o = handle(&s, &post("/ase/request", Some("tok"), "{not json"), 1);
        assert_eq!((o.status, o.body.as_slice()), (400, &b"Error: Malformed Request"[..]));
        assert_eq!(o.record.body, Value::String("{not json".into()));
        let o = handle(&s, &post("/ase/request", Some("tok"), RESP), 1);
        assert_eq!(o.status, 400);
        assert!(o.record.error.is_some());
        let o = handle(&s, &post("/ase/response", Some("tok"), RESP), 1);
        assert_eq!((o.status, o.kind), (200, CallKind::Response));
        s.deny.lock().add(DenyKind::Ip, "10.0.0.1");
        let o = handle(&s, &post("/ase/request", Some("tok"), REQ), 1);
        assert_eq!((o.status, o.record.denied), (403, Some("ip")));
        assert!(o.body.is_empty());
        let o = handle(&s, &post("/ase/other", Some("tok"), REQ), 1);
        assert_eq!((o.status, o.kind), (404, CallKind::Other));
        let get =
            WireRequest { method: "GET".into(), target: "/ase".into(), version: 1, headers: vec![], body: vec![] };
        let o = handle(&s, &get, 1);
        assert_eq!((o.status, o.kind), (200, CallKind::Health));
        let get = WireRequest { target: "/ase/request".into(), ..get };
        assert_eq!(handle(&s, &get, 1).status, 404);
    }

    #[test]
    fn unknown_api_and_host() {
        let log = CallLog::file(std::path::Path::new("/dev/null")).expect("/dev/null");
        let apis = vec![Api { url: "/shop".into(), hostname: "shop".into(), ..Api::default() }];
        let s = State::new(None, apis, false, Duration::from_secs(1), log);
        let o = handle(&s, &post("/ase/request", None, REQ), 1);
        assert_eq!((o.status, o.body.as_slice()), (503, &b"Error: Unknown API"[..]));
        let req = REQ.replace("\"url\":\"/\"", "\"url\":\"/shop/x\"");
        let o = handle(&s, &post("/ase/request", None, &req), 1);
        assert_eq!((o.status, o.body.as_slice()), (503, &b"Error: Unknown Hostname"[..]));
        // no token configured: none needed
        assert_eq!(o.record.token, "missing");
    }
}
