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
}

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
        Fault { kind: FaultKind::None, ms: default_ms(), status: default_status(), calls: FaultCalls::All, count: None }
    }

    /// Checks the values the JSON shape cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.kind == FaultKind::Status && !(200..=999).contains(&self.status) {
            return Err(format!("status must be in 200..=999, not {}", self.status));
        }
        if self.kind == FaultKind::Delay && self.ms > 3_600_000 {
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
