//! The correlation ID a check and its report carry as `X-CorrelationID`: the module's own
//! (random, 128 bits) or the operator's `ase_correlation_id` value. Safe Rust.
//!
//! The operator's value may come from the client (a trace header): it is used only when it
//! can go in a header line as it is, and fits; otherwise the module's own ID is used, so
//! the check is still sent and its report still pairs with it. Never cut to fit: two long
//! IDs cut to one prefix would pair one request's report with another's check.

use ngx_ase_shared::correlation::new_id;

/// The longest value sent as it is (the channel's own bound on `X-CorrelationID`).
pub const MAX_LEN: usize = 128;

/// A correlation ID, kept inline (the request's state holds it; no allocation).
#[derive(Clone, Copy)]
pub struct CorrelationId {
    bytes: [u8; MAX_LEN],
    len: u8,
}

/// What became of the operator's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Used as it is.
    Operator,
    /// None configured, or empty here (a header the client did not send): the module's own.
    Own,
    /// Too long or with bytes a header value cannot hold: the module's own instead.
    Refused,
}

impl CorrelationId {
    /// A new ID of the module's own.
    pub fn own() -> CorrelationId {
        let id = new_id();
        let mut bytes = [0u8; MAX_LEN];
        bytes[..id.len()].copy_from_slice(&id);
        CorrelationId { bytes, len: id.len() as u8 }
    }

    /// The operator's value when it is usable, else the module's own.
    pub fn from_operator(value: Option<&[u8]>) -> (CorrelationId, Source) {
        match value {
            None | Some(b"") => (CorrelationId::own(), Source::Own),
            Some(v) if !usable(v) => (CorrelationId::own(), Source::Refused),
            Some(v) => {
                let mut bytes = [0u8; MAX_LEN];
                bytes[..v.len()].copy_from_slice(v);
                (CorrelationId { bytes, len: v.len() as u8 }, Source::Operator)
            }
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// Visible ASCII only (no space, no control byte, nothing past 0x7E), 1 to [`MAX_LEN`]
/// bytes: a value that cannot end the header line or start another, and that the ASE's
/// records and nginx's logs show the same.
fn usable(v: &[u8]) -> bool {
    !v.is_empty() && v.len() <= MAX_LEN && v.iter().all(u8::is_ascii_graphic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operators_value_is_used_as_it_is() {
        let trace = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let (id, source) = CorrelationId::from_operator(Some(trace));
        assert_eq!((id.as_bytes(), source), (&trace[..], Source::Operator));
        let longest = [b'a'; MAX_LEN];
        assert_eq!(CorrelationId::from_operator(Some(&longest)).0.as_bytes(), &longest[..]);
    }

    #[test]
    fn empty_or_unset_takes_the_modules_own() {
        for value in [None, Some(&b""[..])] {
            let (id, source) = CorrelationId::from_operator(value);
            assert_eq!((id.as_bytes().len(), source), (22, Source::Own));
        }
        assert_ne!(CorrelationId::own().as_bytes(), CorrelationId::own().as_bytes());
    }

    #[test]
    fn what_cannot_go_in_a_header_as_it_is_is_refused() {
        let long = [b'a'; MAX_LEN + 1];
        for bad in [&b"a\r\nX-Injected: 1"[..], b"a b", b"tab\there", b"\x00", "caf\u{e9}".as_bytes(), b"\x7f", &long] {
            let (id, source) = CorrelationId::from_operator(Some(bad));
            assert_eq!(source, Source::Refused, "{bad:?}");
            assert_eq!(id.as_bytes().len(), 22);
            assert!(id.as_bytes().iter().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(b)));
        }
    }
}
