//! The `POST /ase/response` payload, in safe Rust: the reason phrase, the HTTP version, the
//! headers as the client gets them (the `headers_out` list plus the headers nginx keeps in
//! dedicated fields and writes itself), and the JSON.
//!
//! The glue in `filter.rs` copies plain slices and numbers out of `r->headers_out` into a
//! [`Snapshot`]; everything that decides what goes into the report is here, unit-tested.
//!
//! Nothing here allocates but the output buffer: headers are an iterator over borrowed
//! list entries, values nginx would compute (`content-type` with its charset, the length,
//! the date) are written straight into the JSON from stack buffers, and [`write_json`]
//! appends to a buffer the caller reuses. (`http_date` and `to_json`
//! return owned values for tests and fuzzing.)

use core::fmt::Write as _;

use ngx_ase_shared::json::{write_header_pair_with, write_str, write_str_joined, write_uint};

/// A few bytes formatted on the stack (`core::fmt::Write`); what does not fit is cut off
/// and reported by `write!` as an error. `N` is chosen so that nothing here is ever cut.
#[derive(Clone, Copy)]
pub struct StackBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StackBuf<N> {
    pub fn new() -> Self {
        StackBuf { buf: [0; N], len: 0 }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl<const N: usize> Default for StackBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> core::fmt::Write for StackBuf<N> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = N - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        if n < s.len() {
            Err(core::fmt::Error)
        } else {
            Ok(())
        }
    }
}

/// The reason phrase for `code`: what nginx's own HTTP/1 header filter writes after the code
/// (so the report matches the status line the client reads; note `302 Moved Temporarily`,
/// `405 Not Allowed`, `503 Service Temporarily Unavailable`), else the IANA-registered
/// phrase, else `""`.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        // 1xx (nginx never writes these through its header filter)
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        // 2xx: nginx's table
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        // 3xx
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        // 4xx
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Time-out",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Large",
        415 => "Unsupported Media Type",
        416 => "Requested Range Not Satisfiable",
        417 => "Expectation Failed",
        418 => "I'm a teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        // 5xx
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Temporarily Unavailable",
        504 => "Gateway Time-out",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        510 => "Not Extended",
        511 => "Network Authentication Required",
        _ => "",
    }
}

/// The reason phrase for a response: taken from `status_line` (what an upstream sent, e.g.
/// `"404 Nicht gefunden"`, which nginx relays verbatim over HTTP/1) when it is set and starts
/// with `code`, else [`reason_phrase`].
pub fn reason_for(code: u16, status_line: &[u8]) -> &[u8] {
    if !status_line.is_empty() {
        let mut digits = StackBuf::<5>::new();
        let _ = write!(digits, "{code}");
        if let Some(rest) = status_line.strip_prefix(digits.as_bytes()) {
            match rest.first() {
                Some(b' ') => {
                    let reason = rest[1..].trim_ascii();
                    if !reason.is_empty() {
                        return reason;
                    }
                }
                None => {}
                Some(_) => return reason_phrase(code).as_bytes(),
            }
        }
    }
    reason_phrase(code).as_bytes()
}

/// `r->http_version` as the protocol spells it (the request's payload says it alike).
pub use ngx_ase_shared::http::version_name as http_version;

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110's IMF-fixdate, as nginx's
/// `ngx_http_time` writes it) for a Unix time.
pub fn http_date(t: i64) -> String {
    String::from_utf8_lossy(http_date_buf(t).as_bytes()).into_owned()
}

/// [`http_date`] on the stack. 48 bytes hold the longest: a 12-digit year with its sign
/// (any `i64` time) and the 25 other characters.
pub fn http_date_buf(t: i64) -> StackBuf<48> {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut out = StackBuf::new();
    let _ = write!(
        out,
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    );
    out
}

/// Howard Hinnant's days-to-civil: (year, month 1..=12, day 1..=31) of a day count since
/// 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// One entry of the `headers_out.headers` list (an `ngx_table_elt_t`).
#[derive(Clone, Copy, Debug)]
pub struct ListHeader<'a> {
    /// nginx's "this entry is live" mark: entries with `hash == 0` were removed or are
    /// written by nginx from a dedicated field, and are not sent as they stand.
    pub hash: usize,
    pub name: &'a [u8],
    pub value: &'a [u8],
}

/// The dedicated `headers_out` fields that nginx's header filter turns into headers itself.
#[derive(Clone, Copy, Debug)]
pub struct Dedicated<'a> {
    /// `content_type` (after the header filter ran, it already includes the charset).
    pub content_type: &'a [u8],
    /// `content_type_len`: the length of the media type alone; when it equals
    /// `content_type.len()` and `charset` is set, nginx appends `; charset=...`.
    pub content_type_len: usize,
    pub charset: &'a [u8],
    /// Whether `headers_out.content_length` points to a list entry.
    pub has_content_length_entry: bool,
    /// `content_length_n`; -1 when unknown.
    pub content_length_n: i64,
    /// Whether `headers_out.last_modified` points to a list entry.
    pub has_last_modified_entry: bool,
    /// `last_modified_time`; -1 when none.
    pub last_modified_time: i64,
    /// `headers_out.location`, when set: (its `hash`, its value). nginx's header filters
    /// set the entry's hash to 0 and write it themselves (made absolute with
    /// `absolute_redirect`, the entry's value updated to what was written).
    pub location: Option<(usize, &'a [u8])>,
}

impl Default for Dedicated<'_> {
    fn default() -> Self {
        Dedicated {
            content_type: b"",
            content_type_len: 0,
            charset: b"",
            has_content_length_entry: false,
            content_length_n: -1,
            has_last_modified_entry: false,
            last_modified_time: -1,
            location: None,
        }
    }
}

/// A header value for the report: borrowed bytes, or what nginx computes from a dedicated
/// field, written into the JSON without building it first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    Bytes(&'a [u8]),
    /// The media type, `; charset=`, the charset.
    WithCharset(&'a [u8], &'a [u8]),
    /// `content_length_n`, in decimal.
    Length(i64),
    /// `last_modified_time`, as an HTTP date.
    Date(i64),
}

impl Value<'_> {
    /// Appends the value as a JSON string: the bytes [`Value::to_vec`] gives, as `write_str`
    /// writes them.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match *self {
            Value::Bytes(b) => write_str(out, b),
            Value::WithCharset(t, c) => write_str_joined(out, t, b"; charset=", c),
            Value::Length(n) => {
                let mut digits = StackBuf::<20>::new();
                let _ = write!(digits, "{n}");
                write_str(out, digits.as_bytes());
            }
            Value::Date(t) => write_str(out, http_date_buf(t).as_bytes()),
        }
    }

    /// The value's bytes (tests, fuzzing; allocates).
    pub fn to_vec(&self) -> Vec<u8> {
        match *self {
            Value::Bytes(b) => b.to_vec(),
            Value::WithCharset(t, c) => [t, b"; charset=", c].concat(),
            Value::Length(n) => n.to_string().into_bytes(),
            Value::Date(t) => http_date(t).into_bytes(),
        }
    }
}

/// A header for the report: its name and value.
pub type Header<'a> = (&'a [u8], Value<'a>);

/// The response headers as nginx writes them to the client: first the ones it writes from
/// dedicated fields (content-type, content-length, last-modified, location), then every live
/// list entry in order (repeated headers stay repeated). An iterator: nothing is collected.
///
/// Not reconstructed (nginx writes them itself, and they describe the connection or the
/// server rather than the API's response): `server`, `date`, `connection`, `keep-alive`,
/// `transfer-encoding: chunked` and `vary: accept-encoding` from `gzip_vary`.
pub fn client_headers<'a, L>(list: L, d: &Dedicated<'a>) -> impl Iterator<Item = Header<'a>> + Clone + use<'a, L>
where
    L: IntoIterator<Item = ListHeader<'a>>,
    L::IntoIter: Clone,
{
    let content_type = (!d.content_type.is_empty()).then(|| {
        let value = if d.content_type_len == d.content_type.len() && !d.charset.is_empty() {
            Value::WithCharset(d.content_type, d.charset)
        } else {
            Value::Bytes(d.content_type)
        };
        (&b"content-type"[..], value)
    });
    let content_length = (!d.has_content_length_entry && d.content_length_n >= 0)
        .then_some((&b"content-length"[..], Value::Length(d.content_length_n)));
    let last_modified = (!d.has_last_modified_entry && d.last_modified_time != -1)
        .then_some((&b"last-modified"[..], Value::Date(d.last_modified_time)));
    let location = match d.location {
        Some((0, value)) if !value.is_empty() => Some((&b"location"[..], Value::Bytes(value))),
        _ => None,
    };
    [content_type, content_length, last_modified, location]
        .into_iter()
        .flatten()
        .chain(list.into_iter().filter(|h| h.hash != 0).map(|h| (h.name, Value::Bytes(h.value))))
}

/// What the report says about one response.
#[derive(Clone, Debug)]
pub struct Snapshot<'a, H> {
    pub code: u16,
    pub reason: &'a [u8],
    /// `r->http_version`.
    pub http_version: usize,
    /// The headers (e.g. [`client_headers`]).
    pub headers: H,
}

/// Appends the `POST /ase/response` body, in the shape of docs/protocol.md, to `out`.
pub fn write_json<'a, H: IntoIterator<Item = Header<'a>>>(out: &mut Vec<u8>, s: Snapshot<'a, H>) {
    out.extend_from_slice(b"{\"response_code\":\"");
    write_uint(out, u64::from(s.code));
    out.extend_from_slice(b"\",\"response_status\":");
    write_str(out, s.reason);
    out.extend_from_slice(b",\"http_version\":\"");
    out.extend_from_slice(http_version(s.http_version).as_bytes());
    out.extend_from_slice(b"\",\"headers\":[");
    for (i, (name, value)) in s.headers.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_header_pair_with(out, name, |out| value.write_json(out));
    }
    out.extend_from_slice(b"]}");
}

/// [`write_json`] into a new buffer (tests, fuzzing).
pub fn to_json<'a, H: IntoIterator<Item = Header<'a>>>(s: Snapshot<'a, H>) -> Vec<u8> {
    let mut out = Vec::new();
    write_json(&mut out, s);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ngx_ase_shared::header_names::visible;
    use ngx_ase_shared::json::decode_like_writer;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    #[test]
    fn reason_phrases() {
        assert_eq!(reason_phrase(200), "OK");
        assert_eq!(reason_phrase(404), "Not Found");
        assert_eq!(reason_phrase(502), "Bad Gateway");
        assert_eq!(reason_phrase(302), "Moved Temporarily");
        assert_eq!(reason_phrase(429), "Too Many Requests");
        assert_eq!(reason_phrase(599), "");
        assert_eq!(reason_phrase(0), "");
        for code in 100..600u16 {
            let p = reason_phrase(code);
            assert!(p.bytes().all(|b| b.is_ascii_graphic() || b == b' '), "{code}: {p:?}");
            assert_eq!(p.trim(), p);
        }
    }

    #[test]
    fn reason_from_status_line() {
        assert_eq!(reason_for(200, b""), b"OK");
        assert_eq!(reason_for(404, b"404 Nicht gefunden"), b"Nicht gefunden");
        assert_eq!(reason_for(200, b"200 All Good \r"), b"All Good");
        // a status line for another code (a filter changed the status) is ignored
        assert_eq!(reason_for(304, b"200 OK"), b"Not Modified");
        assert_eq!(reason_for(200, b"2000 OK"), b"OK");
        // code without a phrase
        assert_eq!(reason_for(404, b"404"), b"Not Found");
        assert_eq!(reason_for(404, b"404 "), b"Not Found");
        assert_eq!(reason_for(299, b"299 "), b"");
        assert_eq!(reason_for(299, b"299 Custom"), b"Custom");
    }

    #[test]
    fn dates_match_nginx() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(http_date(1_700_000_000), "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(http_date(4_107_542_399), "Sun, 28 Feb 2100 23:59:59 GMT");
        assert_eq!(http_date(4_133_980_799), "Fri, 31 Dec 2100 23:59:59 GMT");
        assert_eq!(http_date(-1), "Wed, 31 Dec 1969 23:59:59 GMT");
        // the stack buffer holds any time, never cut short
        for t in [i64::MIN, i64::MIN + 1, i64::MAX, -62_167_219_201] {
            let d = http_date(t);
            assert!(d.ends_with(" GMT") && d.len() < 48, "{t}: {d}");
        }
    }

    /// The port of `ngx_http_time` against the `httpdate` crate: every day from 1970 to 2100
    /// at a different second each, then samples to the year 9999 (the crate's last).
    #[test]
    fn dates_match_the_httpdate_crate() {
        let every_day = (0..47_847i64).map(|d| d * 86_400 + (d * 7_919) % 86_400);
        let to_9999 = (0..253_402_300_799i64).step_by(633_497);
        for t in every_day.chain(to_9999).chain([253_402_300_799]) {
            let want = httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t as u64));
            assert_eq!(http_date(t), want, "{t}");
        }
    }

    /// No list entries.
    const NONE: [ListHeader<'static>; 0] = [];

    fn names_values<'a>(h: impl Iterator<Item = Header<'a>>) -> Vec<(String, String)> {
        h.map(|(n, v)| (String::from_utf8_lossy(n).into_owned(), String::from_utf8_lossy(&v.to_vec()).into_owned()))
            .collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn list_entries_with_hash_zero_are_skipped_and_repeats_kept() {
        let list = [
            ListHeader { hash: 1, name: b"X-Backend", value: b"1" },
            ListHeader { hash: 0, name: b"X-Removed", value: b"gone" },
            ListHeader { hash: 7, name: b"Set-Cookie", value: b"a=1" },
            ListHeader { hash: 7, name: b"Set-Cookie", value: b"b=2" },
        ];
        let h = client_headers(list, &Dedicated::default());
        assert_eq!(names_values(h), pairs(&[("X-Backend", "1"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]));
    }

    #[test]
    fn content_type_gets_the_charset_once() {
        let mut d =
            Dedicated { content_type: b"text/html", content_type_len: 9, charset: b"utf-8", ..Default::default() };
        assert_eq!(names_values(client_headers(NONE, &d)), pairs(&[("content-type", "text/html; charset=utf-8")]));
        // after nginx's header filter rewrote content_type to include the charset
        d.content_type = b"text/html; charset=utf-8";
        assert_eq!(names_values(client_headers(NONE, &d)), pairs(&[("content-type", "text/html; charset=utf-8")]));
        // no charset
        let d = Dedicated { content_type: b"application/json", content_type_len: 16, ..Default::default() };
        assert_eq!(names_values(client_headers(NONE, &d)), pairs(&[("content-type", "application/json")]));
    }

    #[test]
    fn content_length_from_the_number_only_without_an_entry() {
        let d = Dedicated { content_length_n: 1432, ..Default::default() };
        assert_eq!(names_values(client_headers(NONE, &d)), pairs(&[("content-length", "1432")]));
        let d = Dedicated { content_length_n: 0, ..Default::default() };
        assert_eq!(names_values(client_headers(NONE, &d)), pairs(&[("content-length", "0")]));
        let list = [ListHeader { hash: 1, name: b"Content-Length", value: b"17" }];
        let d = Dedicated { content_length_n: 17, has_content_length_entry: true, ..Default::default() };
        assert_eq!(names_values(client_headers(list, &d)), pairs(&[("Content-Length", "17")]));
        // unknown length (chunked)
        assert!(client_headers(NONE, &Dedicated::default()).next().is_none());
    }

    #[test]
    fn last_modified_from_the_time_only_without_an_entry() {
        let d = Dedicated { last_modified_time: 784_111_777, ..Default::default() };
        assert_eq!(
            names_values(client_headers(NONE, &d)),
            pairs(&[("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT")])
        );
        let list = [ListHeader { hash: 1, name: b"Last-Modified", value: b"yesterday" }];
        let d = Dedicated { last_modified_time: 5, has_last_modified_entry: true, ..Default::default() };
        assert_eq!(names_values(client_headers(list, &d)), pairs(&[("Last-Modified", "yesterday")]));
    }

    #[test]
    fn location_written_by_nginx_or_from_the_list() {
        // nginx's header filter made it absolute and set the entry's hash to 0
        let list = [ListHeader { hash: 0, name: b"Location", value: b"http://h:8080/x" }];
        let d = Dedicated { location: Some((0, b"http://h:8080/x")), ..Default::default() };
        assert_eq!(names_values(client_headers(list, &d)), pairs(&[("location", "http://h:8080/x")]));
        // still a live list entry: written once, from the list
        let list = [ListHeader { hash: 1, name: b"Location", value: b"/x" }];
        let d = Dedicated { location: Some((1, b"/x")), ..Default::default() };
        assert_eq!(names_values(client_headers(list, &d)), pairs(&[("Location", "/x")]));
        let d = Dedicated { location: Some((0, b"")), ..Default::default() };
        assert!(client_headers(NONE, &d).next().is_none());
    }

    #[test]
    fn json_has_the_protocol_shape() {
        let list = [ListHeader { hash: 1, name: b"X-Backend", value: b"1" }];
        let d = Dedicated {
            content_type: b"application/json",
            content_type_len: 16,
            content_length_n: 1432,
            ..Default::default()
        };
        let json =
            to_json(Snapshot { code: 200, reason: b"OK", http_version: 1001, headers: client_headers(list, &d) });
        assert_eq!(
            String::from_utf8(json.clone()).unwrap(),
            r#"{"response_code":"200","response_status":"OK","http_version":"1.1","headers":[{"content-type":"application/json"},{"content-length":"1432"},{"x-backend":"1"}]}"#
        );
        let v: Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            v,
            json!({"response_code": "200", "response_status": "OK", "http_version": "1.1",
                   "headers": [{"content-type": "application/json"}, {"content-length": "1432"}, {"x-backend": "1"}]})
        );
    }

    #[test]
    fn hidden_headers_are_left_out_dedicated_ones_too() {
        let list = [
            ListHeader { hash: 1, name: b"X-Backend", value: b"1" },
            ListHeader { hash: 1, name: b"Set-Cookie", value: b"a=1" },
            ListHeader { hash: 1, name: b"set-cookie", value: b"b=2" },
        ];
        let d = Dedicated {
            content_type: b"application/json",
            content_type_len: 16,
            content_length_n: 7,
            ..Default::default()
        };
        let hidden = b"set-cookie content-type ";
        let s = Snapshot {
            code: 200,
            reason: b"OK",
            http_version: 1001,
            headers: visible(client_headers(list.iter().copied(), &d), hidden, |h: &Header<'_>| h.0),
        };
        let v: serde_json::Value = serde_json::from_slice(&to_json(s)).unwrap();
        assert_eq!(v["headers"], json!([{"content-length": "7"}, {"x-backend": "1"}]));
    }

    #[test]
    fn writing_into_the_scratch_buffer_allocates_nothing_once_warm() {
        let list: Vec<ListHeader<'_>> = (0..30)
            .map(|i| ListHeader { hash: i % 3, name: b"X-Header-Name", value: b"some value \xff\" here" })
            .collect();
        let d = Dedicated {
            content_type: b"text/html",
            content_type_len: 9,
            charset: b"utf-8",
            content_length_n: 1432,
            last_modified_time: 784_111_777,
            location: Some((0, b"http://h/x")),
            ..Default::default()
        };
        // with ase_hide_header's filter, as the header filter writes it
        let hidden = b"content-type x-other ";
        let run = || {
            let s = Snapshot {
                code: 404,
                reason: reason_for(404, b"404 Nicht gefunden"),
                http_version: 1001,
                headers: visible(client_headers(list.iter().copied(), &d), hidden, |h: &Header<'_>| h.0),
            };
            ngx_ase_shared::json::with_scratch(|buf| write_json(buf, s));
        };
        run();
        assert_eq!(counting::allocations(run), 0);
        // the counter does count
        assert!(counting::allocations(|| drop(std::hint::black_box(vec![1u8; 8]))) > 0);
    }

    // Counts this thread's heap allocations (the test harness allocates on other threads).
    use ngx_ase_shared::alloc_count as counting;
    #[global_allocator]
    static COUNTING: counting::Counting = counting::Counting;

    #[test]
    fn empty_headers_and_reason() {
        let json = to_json(Snapshot {
            code: 599,
            reason: b"",
            http_version: 2000,
            headers: client_headers(NONE, &Dedicated::default()),
        });
        assert_eq!(json, br#"{"response_code":"599","response_status":"","http_version":"2.0","headers":[]}"#);
    }

    proptest! {
        #[test]
        fn any_header_bytes_give_json_that_parses(
            reason in proptest::collection::vec(any::<u8>(), 0..40),
            code in 0u16..1000,
            version in 0usize..4000,
            raw in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..30), proptest::collection::vec(any::<u8>(), 0..100), 0usize..3),
                0..12),
            ct in proptest::collection::vec(any::<u8>(), 0..30),
            charset in proptest::collection::vec(any::<u8>(), 0..10),
            cl in -1i64..100_000,
            lm in prop_oneof![Just(-1i64), any::<i64>()],
            location in proptest::option::of((0usize..2, proptest::collection::vec(any::<u8>(), 0..20))),
        ) {
            let list: Vec<ListHeader<'_>> = raw.iter().map(|(n, v, h)| ListHeader { hash: *h, name: n, value: v }).collect();
            let d = Dedicated {
                content_type: &ct, content_type_len: ct.len(), charset: &charset, content_length_n: cl,
                last_modified_time: lm, location: location.as_ref().map(|(h, v)| (*h, v.as_slice())), ..Default::default()
            };
            let headers: Vec<Header<'_>> = client_headers(list.iter().copied(), &d).collect();
            let json = to_json(Snapshot { code, reason: &reason, http_version: version, headers: headers.iter().copied() });
            // Byte for byte what writing each value's bytes as a plain string gives (the
            // values computed on the stack and the joined content type change nothing).
            let mut reference = Vec::new();
            reference.extend_from_slice(b"{\"response_code\":\"");
            reference.extend_from_slice(code.to_string().as_bytes());
            reference.extend_from_slice(b"\",\"response_status\":");
            write_str(&mut reference, &reason);
            reference.extend_from_slice(b",\"http_version\":");
            write_str(&mut reference, http_version(version).as_bytes());
            reference.push(b',');
            ngx_ase_shared::json::write_headers_field(&mut reference, headers.iter().map(|(n, v)| (n, v.to_vec())));
            reference.push(b'}');
            prop_assert_eq!(&json, &reference);
            let v: Value = serde_json::from_slice(&json).expect("invalid JSON");
            let code_str = code.to_string();
            prop_assert_eq!(v["response_code"].as_str(), Some(code_str.as_str()));
            prop_assert_eq!(v["response_status"].as_str().map(String::from), Some(decode_like_writer(&reason)));
            let arr = v["headers"].as_array().expect("headers array");
            prop_assert_eq!(arr.len(), headers.len());
            for (got, (name, value)) in arr.iter().zip(headers.iter()) {
                let obj = got.as_object().expect("object");
                prop_assert_eq!(obj.len(), 1);
                let (k, val) = obj.iter().next().unwrap();
                prop_assert_eq!(k, &decode_like_writer(&name.to_ascii_lowercase()));
                prop_assert_eq!(val.as_str().unwrap(), decode_like_writer(&value.to_vec()));
            }
            let live = raw.iter().filter(|(_, _, h)| *h != 0).count();
            let extra = usize::from(!ct.is_empty()) + usize::from(cl >= 0) + usize::from(lm != -1)
                + usize::from(matches!(&location, Some((0, v)) if !v.is_empty()));
            prop_assert_eq!(headers.len(), live + extra);
        }
    }
}
