//! A tiny DNS server on a loopback UDP port, for `resolve` tests: it answers `A` queries
//! for the names it is given (TTL 1 s) from a table the test changes while nginx runs,
//! `AAAA` queries for those names with no address, and anything else with NXDOMAIN.

use std::collections::HashMap;
use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Table = Arc<Mutex<HashMap<String, Vec<Ipv4Addr>>>>;

pub struct Dns {
    port: u16,
    table: Table,
    queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Dns {
    pub fn start() -> Dns {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the DNS port");
        socket.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
        let port = socket.local_addr().expect("addr").port();
        let (table, queries, stop) =
            (Table::default(), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let (t, q, s) = (table.clone(), queries.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !s.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else { continue };
                q.fetch_add(1, Ordering::Relaxed);
                let table = t.lock().expect("table").clone();
                if let Some(answer) = answer(&buf[..n], &table) {
                    let _ = socket.send_to(&answer, from);
                }
            }
        });
        Dns { port, table, queries, stop, thread: Some(thread) }
    }

    /// `127.0.0.1:PORT`, for nginx's `resolver`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// From now on `name` resolves to `addrs` (none: NXDOMAIN).
    pub fn set(&self, name: &str, addrs: &[&str]) {
        let addrs = addrs.iter().map(|a| a.parse().expect("IPv4 address")).collect::<Vec<_>>();
        let mut table = self.table.lock().expect("table");
        if addrs.is_empty() {
            table.remove(&name.to_ascii_lowercase());
        } else {
            table.insert(name.to_ascii_lowercase(), addrs);
        }
    }

    /// Queries received so far.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::Relaxed)
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The answer to one query, or `None` for a message that is not one.
fn answer(q: &[u8], table: &HashMap<String, Vec<Ipv4Addr>>) -> Option<Vec<u8>> {
    if q.len() < 12 || q[2] & 0x80 != 0 || u16::from_be_bytes([q[4], q[5]]) != 1 {
        return None;
    }
    // The question: labels, then type and class.
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(q.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    let question_end = i + 4;
    let found = table.get(&labels.join("."));
    let addrs: &[Ipv4Addr] = match (found, qtype) {
        (Some(a), 1) => a,
        _ => &[],
    };
    let mut out = Vec::with_capacity(question_end + 16 * addrs.len());
    out.extend_from_slice(&q[..2]);
    // A response, authoritative, recursion as asked, available; NXDOMAIN for an unknown name.
    out.push(0x84 | (q[2] & 0x01));
    out.push(0x80 | if found.is_some() { 0 } else { 3 });
    out.extend_from_slice(&[0, 1]);
    out.extend_from_slice(&(addrs.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(q.get(12..question_end)?);
    for a in addrs {
        // The name by pointer to the question's, type A, class IN, TTL 1 s, 4 bytes.
        out.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4]);
        out.extend_from_slice(&a.octets());
    }
    Some(out)
}
