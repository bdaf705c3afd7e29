//! `ase_hide_header`'s list of header names, shared by the request payload and the response
//! report. Safe Rust, no nginx.
//!
//! The list is one byte string: each name lower-cased and followed by one space
//! (`"cookie authorization "`). It is built once at configuration time, crosses from the
//! request module to the response module as one [`crate::abi::Bytes`], and is searched per
//! header line without allocating: a list is a few names, so a scan beats a hash.

/// Appends `name` to the packed list `list` (lower-cased), or says why it is not a header
/// name. A name already in the list is not added again.
pub fn add_name(list: &mut Vec<u8>, name: &[u8]) -> Result<(), String> {
    if !is_token(name) {
        return Err(format!("invalid header name \"{}\"", String::from_utf8_lossy(name)));
    }
    if !is_listed(list, name) {
        list.extend(name.iter().map(u8::to_ascii_lowercase));
        list.push(b' ');
    }
    Ok(())
}

/// Whether `name` (any case) is in the packed list.
pub fn is_listed(list: &[u8], name: &[u8]) -> bool {
    !name.is_empty() && list.split(|&b| b == b' ').any(|listed| listed.eq_ignore_ascii_case(name))
}

/// The names in a packed list (for messages and tests).
pub fn names(list: &[u8]) -> impl Iterator<Item = &[u8]> {
    list.split(|&b| b == b' ').filter(|n| !n.is_empty())
}

/// The items of `items` whose name (`name` of the item) is not in the packed list: the
/// header lines that may go to the ASE. Lazy and cloneable, as the payload builders want.
pub fn visible<'l, T: 'l, I>(items: I, hidden: &'l [u8], name: fn(&T) -> &[u8]) -> impl Iterator<Item = T> + Clone + 'l
where
    I: Iterator<Item = T> + Clone + 'l,
{
    items.filter(move |item| hidden.is_empty() || !is_listed(hidden, name(item)))
}

/// RFC 9110's `token`: what a field name may be.
fn is_token(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_matched_in_any_case() {
        let mut list = Vec::new();
        add_name(&mut list, b"Cookie").unwrap();
        add_name(&mut list, b"X-API-Key").unwrap();
        add_name(&mut list, b"COOKIE").unwrap();
        assert_eq!(list, b"cookie x-api-key ");
        for yes in [&b"cookie"[..], b"COOKIE", b"x-api-KEY"] {
            assert!(is_listed(&list, yes), "{yes:?}");
        }
        for no in [&b"cook"[..], b"cookies", b"x-api", b"", b" ", b"cookie x-api-key"] {
            assert!(!is_listed(&list, no), "{no:?}");
        }
        assert!(!is_listed(b"", b"cookie"));
        assert_eq!(names(&list).collect::<Vec<_>>(), [&b"cookie"[..], b"x-api-key"]);
    }

    #[test]
    fn hidden_lines_are_left_out_repeats_and_all() {
        let mut list = Vec::new();
        add_name(&mut list, b"cookie").unwrap();
        add_name(&mut list, b"authorization").unwrap();
        let lines: [(&[u8], &[u8]); 5] =
            [(b"Host", b"h"), (b"Cookie", b"a=1"), (b"AUTHORIZATION", b"x"), (b"cOOkie", b"b=2"), (b"Accept", b"*/*")];
        let kept: Vec<_> = visible(lines.iter().copied(), &list, |h| h.0).collect();
        assert_eq!(kept, [lines[0], lines[4]]);
        let all: Vec<_> = visible(lines.iter().copied(), b"", |h| h.0).collect();
        assert_eq!(all, lines);
    }

    #[test]
    fn only_header_names_are_taken() {
        let mut list = Vec::new();
        for bad in [&b""[..], b"x user", b"x:y", b"a\nb", b"\xff"] {
            assert!(add_name(&mut list, bad).unwrap_err().contains("invalid header name"), "{bad:?}");
        }
        assert!(list.is_empty());
        add_name(&mut list, b"X_Odd.Name~1").unwrap();
        assert!(is_listed(&list, b"x_odd.name~1"));
    }
}
