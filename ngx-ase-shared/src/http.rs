//! HTTP facts both payloads state the same way.

/// nginx's `r->http_version` (`major * 1000 + minor`) as the protocol spells it
/// (docs/protocol.md): `"1.0"`, `"1.1"`, `"2.0"` or `"3.0"`. HTTP/0.9 is sent as `"1.0"`,
/// the oldest version the protocol names; anything newer than 3 as `"3.0"`.
pub fn version_name(v: usize) -> &'static str {
    match v {
        3000.. => "3.0",
        2000..=2999 => "2.0",
        1001..=1999 => "1.1",
        _ => "1.0",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_as_the_protocol_names_them() {
        assert_eq!(version_name(9), "1.0");
        assert_eq!(version_name(1000), "1.0");
        assert_eq!(version_name(1001), "1.1");
        assert_eq!(version_name(2000), "2.0");
        assert_eq!(version_name(3000), "3.0");
        assert_eq!(version_name(4000), "3.0");
    }
}
