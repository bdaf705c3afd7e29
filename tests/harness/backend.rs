//! A tiny HTTP/1.1 backend (the "API" behind nginx) that counts what reaches it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Seen {
    paths: Vec<String>,
}

pub struct Backend {
    pub port: u16,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
}

impl Backend {
    /// Answers every request `200 {"backend":"ok","path":...}` and records its path.
    pub fn start() -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("backend bind");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(c) = conn {
                    let s = s.clone();
                    std::thread::spawn(move || serve(c, s));
                }
            }
        });
        Backend { port, seen, stop }
    }

    /// Paths of the requests that reached the backend, in order.
    pub fn paths(&self) -> Vec<String> {
        self.seen.lock().map(|s| s.paths.clone()).unwrap_or_default()
    }

    pub fn hits(&self) -> usize {
        self.paths().len()
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// One header line; bytes that are not UTF-8 are fine (clients send them).
fn read_line(reader: &mut BufReader<TcpStream>) -> Option<String> {
    let mut raw = Vec::new();
    match reader.read_until(b'\n', &mut raw) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(String::from_utf8_lossy(&raw).into_owned()),
    }
}

fn serve(conn: TcpStream, seen: Arc<Mutex<Seen>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut writer) = conn.try_clone() else { return };
    let mut reader = BufReader::new(conn);
    loop {
        let Some(request_line) = read_line(&mut reader) else { return };
        let path = request_line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut content_length = 0usize;
        loop {
            let Some(line) = read_line(&mut reader) else { return };
            if line == "\r\n" || line == "\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    content_length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; content_length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if let Ok(mut s) = seen.lock() {
            s.paths.push(path.clone());
        }
        let payload = format!("{{\"backend\":\"ok\",\"path\":{:?}}}", path);
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-Backend: 1\r\n\r\n{}",
            payload.len(),
            payload
        );
        if writer.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}
