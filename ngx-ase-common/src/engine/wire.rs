//! The bytes of one sideband request. The fixed part (request line, Host, Content-Type,
//! ASE-Token) is written once per node and path when the worker starts; a call adds its
//! correlation ID, length and body behind it, in one buffer that is sent with one write.

use ngx_ase_shared::abi::CallKind;
use ngx_ase_shared::json::decimal;

/// The request line and fixed headers for each path, for one node.
pub struct NodeHeads {
    check: Vec<u8>,
    report: Vec<u8>,
}

impl NodeHeads {
    /// `authority` is the `Host` value; `token` the `ASE-Token` (bytes checked at
    /// configuration; anything that could end a header line is left out here too).
    pub fn new(authority: &str, token: Option<&[u8]>) -> NodeHeads {
        NodeHeads { check: head("/ase/request", authority, token), report: head("/ase/response", authority, token) }
    }

    pub fn get(&self, kind: CallKind) -> &[u8] {
        match kind {
            CallKind::Check => &self.check,
            CallKind::Report => &self.report,
        }
    }
}

impl Drop for NodeHeads {
    /// The token is in these bytes: do not leave it in freed memory.
    fn drop(&mut self) {
        crate::secret::zeroize_vec(&mut self.check);
        crate::secret::zeroize_vec(&mut self.report);
    }
}

fn head(path: &str, authority: &str, token: Option<&[u8]>) -> Vec<u8> {
    let mut h = Vec::with_capacity(160);
    h.extend_from_slice(b"POST ");
    h.extend_from_slice(path.as_bytes());
    h.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    h.extend_from_slice(header_safe(authority.as_bytes()).unwrap_or(b"ase"));
    h.extend_from_slice(b"\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n");
    if let Some(t) = token.and_then(header_safe) {
        h.extend_from_slice(b"ASE-Token: ");
        h.extend_from_slice(t);
        h.extend_from_slice(b"\r\n");
    }
    h
}

/// `v` when it can be a header value on one line (visible ASCII and spaces), else `None`.
fn header_safe(v: &[u8]) -> Option<&[u8]> {
    v.iter().all(|&b| b == b' ' || b.is_ascii_graphic()).then_some(v)
}

/// The correlation ID in a request written by `write_request` whose node part is
/// `head_len` bytes long (for the debug trace).
pub fn correlation_id(wire: &[u8], head_len: usize) -> &[u8] {
    let start = head_len + CORRELATION_HEADER.len();
    let rest = wire.get(start..).unwrap_or(&[]);
    let end = rest.windows(2).position(|w| w == b"\r\n").unwrap_or(0);
    &rest[..end]
}

const CORRELATION_HEADER: &[u8] = b"X-CorrelationID: ";

/// The longest correlation ID sent as it is; a longer or unsafe one is replaced.
const MAX_CORRELATION_ID: usize = 128;

/// Writes the whole request into `out` (cleared first; its capacity is reused). Returns the
/// length of the node's part, which `switch_node` replaces on failover. `out` holds the
/// token: when it must grow, its old allocation is zeroed before it is freed.
pub fn write_request(out: &mut Vec<u8>, head: &[u8], correlation_id: &[u8], body: &[u8]) -> usize {
    out.clear();
    crate::secret::reserve(out, head.len() + correlation_id.len().min(MAX_CORRELATION_ID) + body.len() + 96);
    out.extend_from_slice(head);
    out.extend_from_slice(CORRELATION_HEADER);
    let id = match header_safe(correlation_id) {
        Some(id) if !id.is_empty() && id.len() <= MAX_CORRELATION_ID && !id.contains(&b' ') => id,
        _ => b"invalid",
    };
    out.extend_from_slice(id);
    out.extend_from_slice(b"\r\nContent-Length: ");
    let mut digits = [0u8; 20];
    out.extend_from_slice(decimal(body.len() as u64, &mut digits));
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
    head.len()
}

/// Replaces the node part (the first `old_len` bytes) of a written request with `head`.
/// Returns the new length of the node part.
pub fn switch_node(out: &mut Vec<u8>, old_len: usize, head: &[u8]) -> usize {
    if out.get(..old_len) != Some(head) {
        // Grown first (old allocation zeroed), so that the splice does not reallocate.
        crate::secret::reserve(out, head.len().saturating_sub(old_len));
        out.splice(..old_len.min(out.len()), head.iter().copied());
    }
    head.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_request_byte_for_byte() {
        let heads = NodeHeads::new("ase.example:8000", Some(b"tok123"));
        let mut out = Vec::new();
        let head_len = write_request(&mut out, heads.get(CallKind::Check), b"abc-1", b"{\"a\":1}");
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "POST /ase/request HTTP/1.1\r\nHost: ase.example:8000\r\nContent-Type: application/json\r\n\
             Connection: keep-alive\r\nASE-Token: tok123\r\nX-CorrelationID: abc-1\r\nContent-Length: 7\r\n\r\n{\"a\":1}"
        );
        assert_eq!(head_len, heads.get(CallKind::Check).len());
    }

    #[test]
    fn reports_go_to_ase_response_and_no_token_means_no_header() {
        let heads = NodeHeads::new("a:1", None);
        let mut out = Vec::new();
        write_request(&mut out, heads.get(CallKind::Report), b"id", b"");
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("POST /ase/response HTTP/1.1\r\n"));
        assert!(!text.contains("ASE-Token"));
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
    }

    #[test]
    fn a_correlation_id_cannot_add_headers() {
        let heads = NodeHeads::new("a:1", None);
        let mut out = Vec::new();
        write_request(&mut out, heads.get(CallKind::Check), b"x\r\nASE-Token: evil", b"");
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.contains("X-CorrelationID: invalid\r\n"));
        assert!(!text.contains("evil"));
        write_request(&mut out, heads.get(CallKind::Check), &[b'a'; 200], b"");
        assert!(String::from_utf8(out).unwrap().contains("X-CorrelationID: invalid\r\n"));
    }

    #[test]
    fn failover_replaces_only_the_node_part() {
        let a = NodeHeads::new("primary:1", Some(b"t"));
        let b = NodeHeads::new("backup.example:2", Some(b"t"));
        let mut out = Vec::new();
        let len = write_request(&mut out, a.get(CallKind::Check), b"id", b"{}");
        let len = switch_node(&mut out, len, b.get(CallKind::Check));
        let mut expected = Vec::new();
        write_request(&mut expected, b.get(CallKind::Check), b"id", b"{}");
        assert_eq!(out, expected);
        assert_eq!(len, b.get(CallKind::Check).len());
    }
}
