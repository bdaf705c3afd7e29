//! Reads the ASE's answer: an HTTP/1.x response with a bounded body, parsed from the bytes
//! received so far (`httparse` for the status line and headers). The channel only needs
//! the status, where the answer ends, and whether the connection may be used again, and
//! for a 503, whether it is the ASE's own "unknown API / host name" answer (its body).

/// The largest answer body read from the ASE; a larger one is a bad answer.
pub const MAX_ANSWER_BODY: usize = 64 * 1024;
/// The largest status line plus headers.
pub const MAX_ANSWER_HEAD: usize = 16 * 1024;
/// Header lines read in one answer; more is a bad answer.
const MAX_HEADERS: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed.
    Partial,
    /// A whole answer: its status, how many bytes of the buffer it took, and whether the
    /// connection may carry another exchange.
    Done { status: u16, len: usize, keep_alive: bool },
    /// A whole 503 answer that is not the ASE's own unknown-API / unknown-hostname answer
    /// (see [`is_ase_unknown`]): a load balancer in front of the ASE, or anything else
    /// answering 503, has nothing to say about the API. It is an ASE error, not "continue".
    Foreign503 { len: usize, keep_alive: bool },
    /// Not HTTP/1.x, or larger than the limits.
    Bad,
}

/// The bodies of the ASE's own 503 answers (Ping's documentation: the ASE's error bodies are
/// plain text): the API, or the host name, is not one the ASE protects.
pub const UNKNOWN_API: &[u8] = b"Error: Unknown API";
pub const UNKNOWN_HOSTNAME: &[u8] = b"Error: Unknown Hostname";

/// Whether a 503's body is the ASE's unknown-API or unknown-hostname answer: exactly one of
/// the two texts, byte for byte and case included, with only whitespace (CR and LF
/// included) around it. Narrow on purpose: this answer lets a request through even under
/// `ase_fail_mode closed`, so anything else (an HTML error page, an empty body, another
/// spelling) is an ASE error.
pub fn is_ase_unknown(body: &[u8]) -> bool {
    // The whitespace Python's `bytes.strip()` takes (scripts/ase-check): space, \t, \n, \r,
    // \x0b, \x0c, so that the tool and the modules never disagree on an answer.
    let space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let start = body.iter().position(|b| !space(b)).unwrap_or(body.len());
    let end = body.iter().rposition(|b| !space(b)).map_or(start, |e| e + 1);
    let body = &body[start..end];
    body == UNKNOWN_API || body == UNKNOWN_HOSTNAME
}

/// Parses `buf` (everything received for this exchange). `eof` = the ASE closed the
/// connection after these bytes: an answer without a length ends there.
pub fn parse(buf: &[u8], eof: bool) -> Parsed {
    let mut start = 0;
    loop {
        match parse_one(&buf[start..], eof) {
            // An interim answer (100 Continue and the like): the real one follows.
            One::Interim(len) => start += len,
            One::Final(Parsed::Done { status, len, keep_alive }) => {
                return Parsed::Done { status, len: start + len, keep_alive };
            }
            One::Final(Parsed::Foreign503 { len, keep_alive }) => {
                return Parsed::Foreign503 { len: start + len, keep_alive };
            }
            One::Final(p) => return p,
        }
    }
}

enum One {
    Interim(usize),
    Final(Parsed),
}

fn parse_one(buf: &[u8], eof: bool) -> One {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_ANSWER_HEAD => return One::Final(Parsed::Bad),
        Ok(httparse::Status::Partial) => return One::Final(Parsed::Partial),
        Err(_) => return One::Final(Parsed::Bad),
    };
    let status = resp.code.unwrap_or(0);
    // httparse takes any three digits; a status below 100 ("HTTP/1.1 020 OK") is no HTTP
    // status (hyper, before, refused it too), and would count as a node's success.
    if status < 100 || status == 101 {
        return One::Final(Parsed::Bad);
    }
    if (100..200).contains(&status) {
        return One::Interim(head_len);
    }
    let Some(framing) = Framing::of(resp.version.unwrap_or(0), resp.headers) else {
        return One::Final(Parsed::Bad);
    };
    let body = &buf[head_len..];
    let body_result = if status == 204 || status == 304 {
        Body::Complete(0)
    } else if framing.chunked {
        chunked_len(body)
    } else if let Some(n) = framing.content_length {
        if n > MAX_ANSWER_BODY as u64 {
            Body::Bad
        } else if body.len() as u64 >= n {
            Body::Complete(n as usize)
        } else {
            Body::Partial
        }
    } else if body.len() > MAX_ANSWER_BODY {
        Body::Bad
    } else if eof {
        // Delimited by the end of the connection.
        return One::Final(done(status, body, buf.len(), false, false));
    } else {
        Body::Partial
    };
    One::Final(match body_result {
        Body::Complete(n) => done(status, &body[..n], head_len + n, framing.keep_alive, framing.chunked),
        Body::Partial => Parsed::Partial,
        Body::Bad => Parsed::Bad,
    })
}

/// A whole answer of `len` bytes whose body (as framed: chunked or not) is `body`.
fn done(status: u16, body: &[u8], len: usize, keep_alive: bool, chunked: bool) -> Parsed {
    if status == 503 && !unknown_body(body, chunked) {
        return Parsed::Foreign503 { len, keep_alive };
    }
    Parsed::Done { status, len, keep_alive }
}

/// Whether a 503's body, chunked or not, is the ASE's own unknown-API/hostname answer.
fn unknown_body(body: &[u8], chunked: bool) -> bool {
    if !chunked {
        return is_ase_unknown(body);
    }
    // The chunks' data, joined; the texts are short, so a longer body is not one of them.
    let mut joined = [0u8; 64];
    let mut n = 0;
    let mut pos = 0;
    while let Ok(httparse::Status::Complete((consumed, size))) = httparse::parse_chunk_size(&body[pos..]) {
        pos += consumed;
        let Ok(size) = usize::try_from(size) else { return false };
        if size == 0 {
            return is_ase_unknown(&joined[..n]);
        }
        let (Some(data), Some(room)) = (body.get(pos..pos + size), joined.get_mut(n..n + size)) else { return false };
        room.copy_from_slice(data);
        n += size;
        pos += size + 2;
    }
    false
}

/// How the answer's body is delimited and whether the connection stays open.
struct Framing {
    content_length: Option<u64>,
    chunked: bool,
    keep_alive: bool,
}

impl Framing {
    /// `None` when the headers contradict each other or name a coding we cannot read.
    fn of(minor_version: u8, headers: &[httparse::Header<'_>]) -> Option<Framing> {
        let mut content_length = None;
        let mut chunked = false;
        let (mut close, mut keep_alive) = (false, false);
        for h in headers {
            if h.name.eq_ignore_ascii_case("content-length") {
                let n = parse_decimal(h.value)?;
                if content_length.is_some_and(|m| m != n) {
                    return None;
                }
                content_length = Some(n);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                // Only `chunked` (alone) is something a small JSON answer would use.
                if !h.value.trim_ascii().eq_ignore_ascii_case(b"chunked") || chunked {
                    return None;
                }
                chunked = true;
            } else if h.name.eq_ignore_ascii_case("connection") {
                for token in h.value.split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    close |= token.eq_ignore_ascii_case(b"close");
                    keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            }
        }
        if chunked && content_length.is_some() {
            return None;
        }
        let keep_alive = if minor_version >= 1 { !close } else { keep_alive && !close };
        Some(Framing { content_length, chunked, keep_alive })
    }
}

enum Body {
    Complete(usize),
    Partial,
    Bad,
}

/// The length of a complete chunked body at the start of `buf`, trailers included.
fn chunked_len(buf: &[u8]) -> Body {
    let mut pos = 0;
    let mut total: u64 = 0;
    loop {
        let (consumed, size) = match httparse::parse_chunk_size(&buf[pos..]) {
            Ok(httparse::Status::Complete(v)) => v,
            Ok(httparse::Status::Partial) => return Body::Partial,
            Err(_) => return Body::Bad,
        };
        pos += consumed;
        total = total.saturating_add(size);
        if total > MAX_ANSWER_BODY as u64 {
            return Body::Bad;
        }
        if size == 0 {
            // Trailer lines, then an empty line.
            let mut trailers = [httparse::EMPTY_HEADER; 8];
            return match httparse::parse_headers(&buf[pos..], &mut trailers) {
                Ok(httparse::Status::Complete((n, _))) => Body::Complete(pos + n),
                Ok(httparse::Status::Partial) => Body::Partial,
                Err(_) => Body::Bad,
            };
        }
        let end = pos + size as usize;
        if buf.len() < end + 2 {
            return Body::Partial;
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Body::Bad;
        }
        pos = end + 2;
    }
}

fn parse_decimal(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(status: u16, len: usize, keep_alive: bool) -> Parsed {
        Parsed::Done { status, len, keep_alive }
    }

    #[test]
    fn a_plain_answer_with_a_length() {
        let a = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(parse(a, false), done(200, a.len(), true));
        assert_eq!(parse(&a[..a.len() - 1], false), Parsed::Partial);
        let blocked = b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(parse(blocked, false), done(403, blocked.len(), true));
    }

    #[test]
    fn every_prefix_is_partial() {
        let a = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello";
        for n in 0..a.len() {
            assert_eq!(parse(&a[..n], false), Parsed::Partial, "prefix of {n} bytes");
        }
        assert_eq!(parse(a, false), done(200, a.len(), true));
    }

    #[test]
    fn bytes_after_the_answer_are_not_part_of_it() {
        let a = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n";
        assert_eq!(parse(a, false), done(200, 38, true));
    }

    #[test]
    fn connection_close_and_http_1_0() {
        let a = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(parse(a, false), done(200, a.len(), false));
        let b = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(parse(b, false), done(200, b.len(), false));
        let c = b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(parse(c, false), done(200, c.len(), true));
    }

    #[test]
    fn an_answer_without_length_ends_with_the_connection() {
        let a = b"HTTP/1.1 200 OK\r\n\r\n{\"a\":1}";
        assert_eq!(parse(a, false), Parsed::Partial);
        assert_eq!(parse(a, true), done(200, a.len(), false));
    }

    #[test]
    fn chunked_bodies() {
        let a = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
        assert_eq!(parse(a, false), done(200, a.len(), true));
        assert_eq!(parse(&a[..a.len() - 2], false), Parsed::Partial);
        let bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n";
        assert_eq!(parse(bad, false), Parsed::Bad);
        let gzip = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
        assert_eq!(parse(gzip, false), Parsed::Bad);
    }

    #[test]
    fn interim_answers_are_skipped() {
        let a = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(parse(a, false), done(403, a.len(), true));
    }

    #[test]
    fn garbage_and_oversize_are_bad() {
        assert_eq!(parse(b"SSH-2.0-OpenSSH\r\n", false), Parsed::Bad);
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false), Parsed::Bad);
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", false), Parsed::Bad);
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n", false), Parsed::Bad);
        let mut huge_head = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        huge_head.resize(MAX_ANSWER_HEAD + 10, b'a');
        assert_eq!(parse(&huge_head, false), Parsed::Bad);
        let mut endless = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        endless.resize(MAX_ANSWER_BODY + 100, b'a');
        assert_eq!(parse(&endless, false), Parsed::Bad);
        assert_eq!(parse(b"HTTP/1.1 101 Switching\r\n\r\n", false), Parsed::Bad);
        // Found by the fuzz target ase_answer: three digits, but no status.
        assert_eq!(parse(b"HTTP/1.0 020 OK\r\n\r\n", true), Parsed::Bad);
        assert_eq!(parse(b"HTTP/1.1 000 X\r\nContent-Length: 0\r\n\r\n", false), Parsed::Bad);
        assert_eq!(parse(b"HTTP/1.1 099 X\r\nContent-Length: 0\r\n\r\n", false), Parsed::Bad);
    }

    #[test]
    fn only_the_ases_own_503_is_unknown_api() {
        let ase = |body: &str| {
            format!(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        for body in
            ["Error: Unknown API", "Error: Unknown Hostname", "Error: Unknown API\r\n", "  Error: Unknown Hostname\n"]
        {
            let a = ase(body);
            assert_eq!(parse(a.as_bytes(), false), done(503, a.len(), true), "{body:?}");
        }
        let haproxy = "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 107\r\ncache-control: no-cache\r\ncontent-type: text/html\r\n\r\n<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request.\n</body></html>\n";
        assert_eq!(parse(haproxy.as_bytes(), false), Parsed::Foreign503 { len: haproxy.len(), keep_alive: true });
        for body in [
            "",
            "error: unknown api",
            "Error: Unknown APIs",
            "Error: Unknown API Error: Unknown API",
            "Error: Unauthorized",
        ] {
            let a = ase(body);
            assert_eq!(parse(a.as_bytes(), false), Parsed::Foreign503 { len: a.len(), keep_alive: true }, "{body:?}");
        }
        // Chunked, or ended by the connection: the body as framed.
        let chunked =
            b"HTTP/1.1 503 X\r\nTransfer-Encoding: chunked\r\n\r\n7\r\nError: \r\nb\r\nUnknown API\r\n0\r\n\r\n";
        assert_eq!(parse(chunked, false), done(503, chunked.len(), true));
        let chunked = b"HTTP/1.1 503 X\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nErr\r\n0\r\n\r\n";
        assert_eq!(parse(chunked, false), Parsed::Foreign503 { len: chunked.len(), keep_alive: true });
        let eof = b"HTTP/1.0 503 X\r\n\r\nError: Unknown Hostname";
        assert_eq!(parse(eof, true), done(503, eof.len(), false));
        let eof = b"HTTP/1.0 503 X\r\n\r\n<html>";
        assert_eq!(parse(eof, true), Parsed::Foreign503 { len: eof.len(), keep_alive: false });
        // Other statuses are read as before, whatever their body.
        let other = b"HTTP/1.1 502 X\r\nContent-Length: 3\r\n\r\nabc";
        assert_eq!(parse(other, false), done(502, other.len(), true));
    }

    #[test]
    fn no_body_for_204_and_304() {
        let a = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(parse(a, false), done(204, a.len(), true));
    }
}
