//! The request metadata's `url`: the path nginx routed by and the query string, written as
//! one JSON string without allocating (see docs/protocol.md, "url").
//!
//! The path is nginx's `r->uri`: already percent-decoded and normalised (`.` and `..`
//! resolved, and slashes merged unless `merge_slashes off`). Decoded, it could say two
//! things (`/a%3Fb` is the path `/a?b`), so it is escaped again with the set nginx's own
//! `ngx_escape_uri(NGX_ESCAPE_URI)` uses when it passes a changed URI upstream: control
//! bytes, space, `"`, `#`, `%`, `<`, `>`, `?`, `\`, `^`, `` ` ``, `{`, `|`, `}` and every
//! byte from 0x7f, as `%XX`. Runs of `/` are written as one, whatever `merge_slashes` says:
//! the ASE matches APIs by path prefix, and `//api` must not be another API than `/api`.
//!
//! The query string is `r->args`, as the client sent it (nginx does not decode it): only what
//! cannot stand in a URL is escaped (the set above but `%` and `?`, which keep their meaning
//! there). It follows a `?` when it is not empty.
//!
//! What is written is printable ASCII without `"` or `\`, so it needs no JSON escape: each
//! byte takes one output byte or three (`%XX`), a merged `/` none, which makes lengths and
//! cuts exact and cheap.

/// The two parts, borrowed from the request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Url<'a> {
    /// The decoded, normalised path (`r->uri`).
    pub path: &'a [u8],
    /// The query string as sent, without its `?` (`r->args`); empty when there is none.
    pub args: &'a [u8],
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn escaped_in_path(b: u8) -> bool {
    b <= b' ' || b >= 0x7f || b"\"#%<>?\\^`{|}".contains(&b)
}

fn escaped_in_args(b: u8) -> bool {
    b <= b' ' || b >= 0x7f || b"\"#<>\\^`{|}".contains(&b)
}

impl<'a> Url<'a> {
    /// `path` and `args` from a target as a client sends it (`/a/b?x=1`): for tests.
    pub fn split(target: &'a [u8]) -> Url<'a> {
        match target.iter().position(|&b| b == b'?') {
            Some(i) => Url { path: &target[..i], args: &target[i + 1..] },
            None => Url { path: target, args: b"" },
        }
    }

    /// Calls `f` with what each input byte becomes, in order: `(part, index, width)`, where
    /// part 0 is the path and 1 the query string (its `?` is counted with its first byte).
    /// Stops when `f` returns false.
    fn walk(&self, mut f: impl FnMut(usize, usize, usize) -> bool) {
        let mut slash = false;
        for (i, &b) in self.path.iter().enumerate() {
            let width = match b {
                b'/' if slash => 0,
                _ if escaped_in_path(b) => 3,
                _ => 1,
            };
            slash = b == b'/';
            if !f(0, i, width) {
                return;
            }
        }
        for (i, &b) in self.args.iter().enumerate() {
            let width = if escaped_in_args(b) { 3 } else { 1 } + usize::from(i == 0);
            if !f(1, i, width) {
                return;
            }
        }
    }

    /// Exactly what [`Url::write_json`] appends, quotes included.
    pub fn json_len(&self) -> usize {
        let mut n = 2;
        self.walk(|_, _, w| {
            n += w;
            true
        });
        n
    }

    /// An upper bound of [`Url::json_len`] in O(1): three bytes a byte, the `?`, the quotes.
    pub fn json_len_bound(&self) -> usize {
        self.path.len().saturating_add(self.args.len()).saturating_mul(3).saturating_add(3)
    }

    /// The longest prefix (the path's first, then the query string's) whose JSON takes at
    /// most `max` bytes, and what it takes. Never half an escape; `""` (2) when nothing fits.
    pub fn prefix_within(&self, max: usize) -> (Url<'a>, usize) {
        let (mut used, mut cut) = (2, None);
        self.walk(|part, i, w| {
            if used + w > max {
                cut = Some((part, i));
                return false;
            }
            used += w;
            true
        });
        let prefix = match cut {
            None => *self,
            Some((0, i)) => Url { path: &self.path[..i], args: b"" },
            Some((_, i)) => Url { path: self.path, args: &self.args[..i] },
        };
        (prefix, used)
    }

    /// Appends the quoted JSON string.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'"');
        let mut slash = false;
        for &b in self.path {
            if b == b'/' && slash {
                continue;
            }
            slash = b == b'/';
            push(out, b, escaped_in_path(b));
        }
        if !self.args.is_empty() {
            out.push(b'?');
            for &b in self.args {
                push(out, b, escaped_in_args(b));
            }
        }
        out.push(b'"');
    }
}

fn push(out: &mut Vec<u8>, b: u8, escape: bool) {
    if escape {
        out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
    } else {
        out.push(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn json(url: Url<'_>) -> String {
        let mut out = Vec::new();
        url.write_json(&mut out);
        String::from_utf8(out).expect("ASCII")
    }

    #[test]
    fn a_plain_url_is_kept() {
        assert_eq!(json(Url::split(b"/shop/items?id=7&sort=asc")), "\"/shop/items?id=7&sort=asc\"");
        assert_eq!(json(Url { path: b"/a", args: b"" }), "\"/a\"");
    }

    #[test]
    fn what_would_be_ambiguous_is_escaped_again() {
        // r->uri of `/caf%C3%A9%20x%3F%25%23`, with its query string
        let url = Url { path: "/café x?%#\"\\\x01\x7f".as_bytes(), args: b"q=a%20b&k=\"#1 \xff" };
        assert_eq!(json(url), "\"/caf%C3%A9%20x%3F%25%23%22%5C%01%7F?q=a%20b&k=%22%231%20%FF\"");
    }

    #[test]
    fn slashes_are_merged() {
        assert_eq!(json(Url { path: b"//api///orders/", args: b"x=//" }), "\"/api/orders/?x=//\"");
    }

    #[test]
    fn prefixes_never_split_an_escape() {
        let url = Url { path: b"/a b", args: b"x" };
        // "/a%20b?x"
        assert_eq!(url.json_len(), 10);
        assert_eq!(url.prefix_within(100), (url, 10));
        assert_eq!(url.prefix_within(6), (Url { path: b"/a", args: b"" }, 4));
        assert_eq!(url.prefix_within(9), (Url { path: b"/a b", args: b"" }, 8));
        assert_eq!(url.prefix_within(0), (Url { path: b"", args: b"" }, 2));
    }

    proptest! {
        #[test]
        fn lengths_and_prefixes_are_exact(path in proptest::collection::vec(any::<u8>(), 0..60),
                                          args in proptest::collection::vec(any::<u8>(), 0..60),
                                          max in 0usize..300) {
            let url = Url { path: &path, args: &args };
            let text = json(url);
            prop_assert_eq!(text.len(), url.json_len());
            prop_assert!(url.json_len() <= url.json_len_bound());
            // plain printable ASCII, valid JSON, no escape cut
            prop_assert!(text.bytes().all(|b| (0x21..0x7f).contains(&b)));
            let parsed: Option<String> = serde_json::from_str(&text).ok();
            prop_assert_eq!(parsed.as_deref(), Some(&text[1..text.len() - 1]));
            let (prefix, len) = url.prefix_within(max);
            let cut = json(prefix);
            prop_assert_eq!(cut.len(), len);
            prop_assert!(len <= max.max(2));
            prop_assert!(text.starts_with(&cut[..cut.len() - 1]));
            if len < text.len() {
                prop_assert!(max < text.len());
            }
        }
    }
}
