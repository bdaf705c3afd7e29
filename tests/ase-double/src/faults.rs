//! Fault injection on the data port: what to do instead of (or before) a normal answer.

use serde::{Deserialize, Serialize};

/// The kind of a data-port call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// `POST /ase/request`
    Request,
    /// `POST /ase/response`
    Response,
    /// `GET /ase`
    Health,
    /// Anything else (answered 404).
    Other,
}

impl CallKind {
    pub fn name(self) -> &'static str {
        match self {
            CallKind::Request => "request",
            CallKind::Response => "response",
            CallKind::Health => "health",
            CallKind::Other => "other",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer normally.
    None,
    /// Wait `ms`, then answer normally.
    Delay,
    /// Answer `status` instead of the normal answer.
    Status,
    /// Read the request, then close with SO_LINGER 0 (a TCP RST), without answering.
    Reset,
    /// Write bytes that are not HTTP, then close.
    Garbage,
    /// Read the request and never answer; the socket stays open until the peer closes it.
    Hang,
    /// A 200 with a 16 MiB body.
    Huge,
    /// A 200 with `Content-Length: 1000` and only 10 bytes of body, then close.
    CloseMidBody,
    /// The normal answer, its body padded with spaces so that the whole answer is exactly
    /// [`EXACT_LEN`] bytes (the size of ngx-ase's first read buffer); with `stray`, a stray
    /// answer follows as after `stray`.
    #[serde(rename = "exact_1024")]
    Exact1024,
    /// The normal answer, then [`STRAY_ANSWER`], which nobody asked for: `ms` after the
    /// answer, or in the same write for `ms: 0`.
    Stray,
}

/// The length of an `exact_1024` answer.
pub const EXACT_LEN: usize = 1024;

/// What `stray` writes after an answer: a whole 200, as a misbehaving ASE or middlebox would.
pub const STRAY_ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nServer: ase-double\r\nContent-Length: 0\r\n\r\n";

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::None => "none",
            FaultKind::Delay => "delay",
            FaultKind::Status => "status",
            FaultKind::Reset => "reset",
            FaultKind::Garbage => "garbage",
            FaultKind::Hang => "hang",
            FaultKind::Huge => "huge",
            FaultKind::CloseMidBody => "close_mid_body",
            FaultKind::Exact1024 => "exact_1024",
            FaultKind::Stray => "stray",
        }
    }
}

/// Which calls a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultCalls {
    Request,
    Response,
    /// Every call on the data port, health checks included.
    #[default]
    All,
}

pub const HUGE_BODY_LEN: usize = 16 * 1024 * 1024;

/// A fault as the admin API sets it (`PUT /fault`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub kind: FaultKind,
    /// For `delay`: milliseconds to wait (default 1000).
    #[serde(default = "default_ms")]
    pub ms: u64,
    /// For `status`: the status code to answer (default 500).
    #[serde(default = "default_status")]
    pub status: u16,
    #[serde(default)]
    pub calls: FaultCalls,
    /// Apply to this many calls only, then clear itself (default: until cleared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// For `exact_1024`: a stray answer follows it, as with `stray`.
    #[serde(default, skip_serializing_if = "core::ops::Not::not")]
    pub stray: bool,
}

fn default_ms() -> u64 {
    1000
}

fn default_status() -> u16 {
    500
}

impl Default for Fault {
    fn default() -> Self {
        Fault::none()
    }
}

impl Fault {
    pub fn none() -> Fault {
        Fault {
            kind: FaultKind::None,
            ms: default_ms(),
            status: default_status(),
            calls: FaultCalls::All,
            count: None,
            stray: false,
        }
    }

    /// Checks the values the JSON shape cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.kind == FaultKind::Status && !(200..=999).contains(&self.status) {
            return Err(format!("status must be in 200..=999, not {}", self.status));
        }
        if matches!(self.kind, FaultKind::Delay | FaultKind::Stray | FaultKind::Exact1024) && self.ms > 3_600_000 {
            return Err("ms must be at most 3600000".to_string());
        }
        Ok(())
    }

    /// Whether this fault applies to a call of this kind.
    pub fn applies_to(&self, call: CallKind) -> bool {
        if self.kind == FaultKind::None || self.count == Some(0) {
            return false;
        }
        match self.calls {
            FaultCalls::All => true,
            FaultCalls::Request => call == CallKind::Request,
            FaultCalls::Response => call == CallKind::Response,
        }
    }

    /// Takes this fault for one call of this kind: `Some(fault)` when it applies (and
    /// counts the call against `count`, clearing the fault when it runs out).
    pub fn take(&mut self, call: CallKind) -> Option<Fault> {
        if !self.applies_to(call) {
            return None;
        }
        let taken = self.clone();
        if let Some(n) = self.count.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                *self = Fault::none();
            }
        }
        Some(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Fault, String> {
        let f: Fault = serde_json::from_str(s).map_err(|e| e.to_string())?;
        f.validate().map(|()| f)
    }

    #[test]
    fn parses_and_defaults() {
        let f = parse(r#"{"kind": "delay", "ms": 500}"#).expect("ok");
        assert_eq!((f.kind, f.ms, f.calls), (FaultKind::Delay, 500, FaultCalls::All));
        let f = parse(r#"{"kind": "status", "status": 502, "calls": "response"}"#).expect("ok");
        assert_eq!((f.kind, f.status, f.calls), (FaultKind::Status, 502, FaultCalls::Response));
        assert_eq!(parse(r#"{"kind": "close_mid_body"}"#).expect("ok").kind, FaultKind::CloseMidBody);
        let f = parse(r#"{"kind": "exact_1024", "stray": true, "ms": 0}"#).expect("ok");
        assert_eq!((f.kind, f.stray, f.ms), (FaultKind::Exact1024, true, 0));
        assert_eq!(parse(r#"{"kind": "stray", "ms": 50}"#).expect("ok").kind, FaultKind::Stray);
        assert!(parse(r#"{"kind": "explode"}"#).is_err());
        assert!(parse(r#"{"kind": "status", "status": 99}"#).is_err());
        assert!(parse(r#"{"kind": "delay", "calls": "some"}"#).is_err());
        assert!(parse(r#"{"kind": "delay", "mss": 5}"#).is_err());
    }

    #[test]
    fn applies_by_call_kind() {
        let mut f = Fault { kind: FaultKind::Reset, calls: FaultCalls::Request, ..Fault::none() };
        assert!(f.applies_to(CallKind::Request));
        assert!(!f.applies_to(CallKind::Response));
        assert!(!f.applies_to(CallKind::Health));
        f.calls = FaultCalls::All;
        assert!(f.applies_to(CallKind::Health) && f.applies_to(CallKind::Response));
        assert!(!Fault::none().applies_to(CallKind::Request));
    }

    #[test]
    fn count_runs_out() {
        let mut f = Fault { kind: FaultKind::Hang, count: Some(2), ..Fault::none() };
        assert!(f.take(CallKind::Request).is_some());
        assert!(f.take(CallKind::Request).is_some());
        assert!(f.take(CallKind::Request).is_none());
        assert_eq!(f.kind, FaultKind::None);
    }
}

/// The answer `exact_1024` writes: `head(len)` + `body` padded with spaces to `len`, where
/// `len` makes the whole [`EXACT_LEN`] bytes (`None` when the body is too long for that).
pub fn exact_answer(head: impl Fn(usize) -> Vec<u8>, body: &[u8]) -> Option<Vec<u8>> {
    // The head's length depends on the digits of the body's length: try each.
    (body.len()..EXACT_LEN).find(|&n| head(n).len() + n == EXACT_LEN).map(|n| {
        let mut out = head(n);
        out.extend_from_slice(body);
        out.resize(EXACT_LEN, b' ');
        out
    })
}

#[cfg(test)]
mod exact_tests {
    use super::*;

    #[test]
    fn an_exact_answer_is_1024_bytes_with_its_length_right() {
        let head = |n: usize| format!("HTTP/1.1 403 Forbidden\r\nContent-Length: {n}\r\n\r\n").into_bytes();
        let a = exact_answer(head, b"").expect("fits");
        assert_eq!(a.len(), EXACT_LEN);
        let text = String::from_utf8(a).expect("text");
        let (h, body) = text.split_once("\r\n\r\n").expect("head");
        assert!(h.ends_with(&format!("Content-Length: {}", body.len())), "{h}");
        assert!(exact_answer(head, &[b'x'; 2000]).is_none());
    }
}
