//! HTTP/1.1 on the data port, by hand: reading one request (head + Content-Length body)
//! and writing an answer head. Hand-written so that faults control every byte.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const MAX_HEAD: usize = 64 * 1024;
pub const MAX_BODY: usize = 16 * 1024 * 1024;
const MAX_HEADERS: usize = 128;

/// One request read off the wire.
#[derive(Debug, Clone)]
pub struct WireRequest {
    pub method: String,
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl WireRequest {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }

    pub fn header_str(&self, name: &str) -> Option<String> {
        self.header(name).map(|v| String::from_utf8_lossy(v).trim().to_string())
    }

    /// The path without its query string.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(self.target.as_str(), |(p, _)| p)
    }

    /// Whether the client wants the connection kept open after this request.
    pub fn wants_keepalive(&self) -> bool {
        let tokens: Vec<String> = self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("connection"))
            .flat_map(|(_, v)| {
                String::from_utf8_lossy(v).split(',').map(|t| t.trim().to_ascii_lowercase()).collect::<Vec<_>>()
            })
            .collect();
        if tokens.iter().any(|t| t == "close") {
            return false;
        }
        self.version >= 1 || tokens.iter().any(|t| t == "keep-alive")
    }
}

#[derive(Debug)]
pub enum ReadError {
    /// The peer closed (or went idle too long) between requests: nothing to answer.
    Closed,
    /// A socket error, or the peer closed in the middle of a request.
    Io(std::io::Error),
    /// A request that cannot be read: answer this status and close.
    Bad(u16, &'static str),
}

/// Reads one request. `buf` holds bytes already read (pipelining) and keeps what follows
/// the request. `idle` limits the wait for each read.
pub async fn read_request<S>(s: &mut S, buf: &mut Vec<u8>, idle: Duration) -> Result<WireRequest, ReadError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut req, head_len, body_len) = loop {
        if let Some(parsed) = parse_head(buf)? {
            break parsed;
        }
        if buf.len() > MAX_HEAD {
            return Err(ReadError::Bad(431, "Error: Request Header Fields Too Large"));
        }
        if read_more(s, buf, idle).await? == 0 {
            return Err(if buf.is_empty() { ReadError::Closed } else { eof() });
        }
    };
    if buf.len() < head_len + body_len && req.header("expect").is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"))
    {
        s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.map_err(ReadError::Io)?;
    }
    while buf.len() < head_len + body_len {
        if read_more(s, buf, idle).await? == 0 {
            return Err(eof());
        }
    }
    req.body = buf[head_len..head_len + body_len].to_vec();
    buf.drain(..head_len + body_len);
    Ok(req)
}

fn eof() -> ReadError {
    ReadError::Io(std::io::ErrorKind::UnexpectedEof.into())
}

async fn read_more<S: AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>, idle: Duration) -> Result<usize, ReadError> {
    let mut chunk = [0u8; 16 * 1024];
    match tokio::time::timeout(idle, s.read(&mut chunk)).await {
        Err(_) if buf.is_empty() => Err(ReadError::Closed),
        Err(_) => Err(ReadError::Io(std::io::ErrorKind::TimedOut.into())),
        Ok(Err(e)) => Err(ReadError::Io(e)),
        Ok(Ok(n)) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(n)
        }
    }
}

/// Parses a complete head: the request without its body, the head's length, the body's length.
fn parse_head(buf: &[u8]) -> Result<Option<(WireRequest, usize, usize)>, ReadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ReadError::Bad(431, "Error: Too Many Headers")),
        Err(_) => return Err(ReadError::Bad(400, "Error: Bad Request")),
    };
    let req = WireRequest {
        method: parsed.method.unwrap_or_default().to_string(),
        target: parsed.path.unwrap_or_default().to_string(),
        version: parsed.version.unwrap_or(1),
        headers: parsed.headers.iter().map(|h| (h.name.to_string(), h.value.to_vec())).collect(),
        body: Vec::new(),
    };
    if req.header("transfer-encoding").is_some() {
        return Err(ReadError::Bad(400, "Error: chunked request bodies are not supported"));
    }
    let body_len = match req.header("content-length") {
        None => 0,
        Some(v) => std::str::from_utf8(v)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .ok_or(ReadError::Bad(400, "Error: Bad Content-Length"))?,
    };
    if body_len > MAX_BODY {
        return Err(ReadError::Bad(413, "Error: Payload Too Large"));
    }
    Ok(Some((req, head_len, body_len)))
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// An answer head with a Content-Length.
pub fn head(status: u16, content_type: &str, content_length: usize, close: bool) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {}\r\nServer: ase-double\r\nContent-Type: {content_type}\r\nContent-Length: {content_length}\r\nConnection: {}\r\n\r\n",
        reason(status),
        if close { "close" } else { "keep-alive" },
    )
    .into_bytes()
}

/// Writes a whole answer (head and body).
pub async fn write_answer<S: AsyncWrite + Unpin>(
    s: &mut S,
    status: u16,
    content_type: &str,
    body: &[u8],
    close: bool,
) -> std::io::Result<()> {
    let mut out = head(status, content_type, body.len(), close);
    out.extend_from_slice(body);
    s.write_all(&out).await?;
    s.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn read_all(input: &[u8]) -> (Vec<Result<WireRequest, String>>, Vec<u8>) {
        let (mut client, mut server) = tokio::io::duplex(1 << 20);
        client.write_all(input).await.expect("write");
        client.shutdown().await.expect("shutdown");
        let mut buf = Vec::new();
        let mut out = Vec::new();
        loop {
            match read_request(&mut server, &mut buf, Duration::from_secs(1)).await {
                Ok(r) => out.push(Ok(r)),
                Err(ReadError::Closed) => break,
                Err(ReadError::Bad(status, msg)) => {
                    out.push(Err(format!("{status} {msg}")));
                    break;
                }
                Err(ReadError::Io(e)) => {
                    out.push(Err(e.kind().to_string()));
                    break;
                }
            }
        }
        drop(server);
        let mut written = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut client, &mut written).await;
        (out, written)
    }

    #[tokio::test]
    async fn reads_pipelined_requests() {
        let (reqs, _) = read_all(
            b"POST /ase/request HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n{}GET /ase HTTP/1.0\r\n\r\n",
        )
        .await;
        assert_eq!(reqs.len(), 2);
        let first = reqs[0].as_ref().expect("first");
        assert_eq!((first.method.as_str(), first.path(), first.body.as_slice()), ("POST", "/ase/request", &b"{}"[..]));
        assert!(first.wants_keepalive());
        let second = reqs[1].as_ref().expect("second");
        assert_eq!(second.version, 0);
        assert!(!second.wants_keepalive());
    }

    #[tokio::test]
    async fn bad_requests() {
        let (reqs, _) = read_all(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n").await;
        assert!(matches!(&reqs[0], Err(e) if e.starts_with("400")));
        let (reqs, _) = read_all(b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n").await;
        assert!(matches!(&reqs[0], Err(e) if e.starts_with("400")));
        let (reqs, _) = read_all(b"\x00\x01 garbage\r\n\r\n").await;
        assert!(matches!(&reqs[0], Err(e) if e.starts_with("400")));
        let (reqs, _) = read_all(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc").await;
        assert!(matches!(&reqs[0], Err(e) if e.contains("end of file")), "{reqs:?}");
    }

    #[tokio::test]
    async fn expect_continue() {
        let (reqs, written) = read_all(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n").await;
        assert!(reqs[0].is_ok());
        assert!(written.is_empty(), "no 100 when the body is complete");
    }

    #[test]
    fn keepalive_rules() {
        let req = |version, conn: Option<&str>| WireRequest {
            method: "GET".into(),
            target: "/".into(),
            version,
            headers: conn.map(|c| vec![("Connection".to_string(), c.as_bytes().to_vec())]).unwrap_or_default(),
            body: vec![],
        };
        assert!(req(1, None).wants_keepalive());
        assert!(req(1, Some("Keep-Alive")).wants_keepalive());
        assert!(!req(1, Some("close")).wants_keepalive());
        assert!(!req(0, None).wants_keepalive());
        assert!(req(0, Some("keep-alive")).wants_keepalive());
    }
}
