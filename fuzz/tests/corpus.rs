//! Replays the committed corpus (`corpus/<target>/*`) and the crash reproducers kept in
//! `regressions/<target>/*` through each target's checks, on a plain stable toolchain, and
//! then a few thousand pseudo-random inputs per target (a fixed seed: the run is the same
//! every time). `cargo test --release` in fuzz/.

use std::path::Path;

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn corpus_and_regressions_replay_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, check) in ngx_ase_fuzz::TARGETS {
        let corpus = files(&root.join("corpus").join(name));
        assert!(!corpus.is_empty(), "corpus/{name} is empty");
        for f in corpus.iter().chain(files(&root.join("regressions").join(name)).iter()) {
            let data = std::fs::read(f).expect("read corpus file");
            if let Err(e) = std::panic::catch_unwind(|| check(&data)) {
                panic!("{name}: {} fails: {e:?}", f.display());
            }
        }
    }
}

#[test]
fn pseudo_random_inputs() {
    // xorshift64*: no dependency, same sequence every run.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    for (_, check) in ngx_ase_fuzz::TARGETS {
        for _ in 0..3000 {
            let len = (next() % 600) as usize;
            let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            check(&data);
        }
    }
}

/// The answer target drives the real engine to the channel's outcomes: a check that the
/// fake world (pieces, edge-triggered readiness, the stream's end, the manual clock) and the
/// driver give what the engine's own unit tests say for these answers.
#[test]
fn the_answer_harness_gives_the_channels_outcomes() {
    use ngx_ase_fuzz::ngx_ase_shared_abi::AseError::{self, Bad503, BadAnswer, Reset, Timeout};
    use ngx_ase_fuzz::targets::answer::{exchange, outcome, End, Setup};
    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let two = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
    type Case<'a> = (&'a [u8], usize, End, [Result<u16, AseError>; 2]);
    let cases: [Case; 11] = [
        // kept alive; the second check finds it closed (EOF, nothing read), retries once on
        // a new connection, which ends too
        (ok, 99, End::Hang, [Ok(200), Err(Reset)]),
        // the second answer on the kept-alive connection
        (two, 38, End::Hang, [Ok(200), Ok(403)]),
        // the second answer came unasked: that connection is not used again
        (two, 99, End::Hang, [Ok(200), Err(Reset)]),
        // the first answer not complete: the check's timer ends it; the second check reads
        // the rest on a new connection
        (two, 10, End::Hang, [Err(Timeout), Err(BadAnswer)]),
        // a 503 that is not the ASE's unknown-API answer is an error; the ASE's own is an answer
        (
            b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 3\r\n\r\nxyz",
            99,
            End::Eof,
            [Err(Bad503), Err(Reset)],
        ),
        (
            b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 18\r\n\r\nError: Unknown API",
            99,
            End::Eof,
            [Ok(503), Err(Reset)],
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            99,
            End::Eof,
            [Ok(200), Err(Reset)],
        ),
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\nno",
            99,
            End::Hang,
            [Ok(401), Err(Reset)],
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789", 99, End::Eof, [Err(Reset), Err(Reset)]),
        (b"\x00\xffNOT HTTP\r\n\r\n", 99, End::Hang, [Err(BadAnswer), Err(Reset)]),
        (b"", 0, End::Reset, [Err(Reset), Err(Reset)]),
    ];
    for (answer, split, end, expected) in cases {
        for piece in [1, 7, 4096] {
            for tick in [0, 1] {
                let setup = Setup { pieces: [piece, piece], ends: [end, End::Eof], tick, ..Setup::default() };
                let got = exchange(setup, answer, split).map(|r| outcome(&r));
                assert_eq!(got, expected, "{:?} in pieces of {piece}, tick {tick}", String::from_utf8_lossy(answer));
            }
        }
    }
}

/// Issue 23, item 5, as the fake world finds it (edge-triggered readiness): bytes that
/// arrived behind an answer, or on a pooled connection in the turn it is reused, are no
/// answer to the next check. An engine that read them as the second check's answer fails
/// the target's "stale" property; the inputs that show it are kept in
/// `regressions/ase_answer/`.
#[test]
fn the_answer_harness_finds_stale_answers_on_pooled_connections() {
    use ngx_ase_fuzz::targets::answer::{exchange, outcome, End, Setup};
    let block = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
    let stray = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    // (a) A 403 of exactly 1,024 bytes, the engine's first read buffer, with the stray 200
    // in the same piece: the read stops at 1,024 bytes and no event comes for the rest.
    let head = |n: usize| format!("HTTP/1.1 403 Forbidden\r\nContent-Length: {n:04}\r\n\r\n").into_bytes();
    let mut exact = head(1024 - head(0).len());
    exact.resize(1024, b' ');
    let a: Vec<u8> = [&exact[..], stray].concat();
    let setup = Setup { pieces: [4096, 4096], ends: [End::Hang, End::Eof], ..Setup::default() };
    let got = exchange(setup, &a, a.len()).map(|r| outcome(&r));
    assert_eq!(got, [Ok(403), Err(ngx_ase_fuzz::ngx_ase_shared_abi::AseError::Reset)]);
    // (b) The 403, then the stray in a piece of its own, whose event runs only after the
    // second check took the pooled connection.
    let b: Vec<u8> = [&block[..], stray].concat();
    for announce in [true, false] {
        let setup = Setup { pieces: [block.len(), 4096], ends: [End::Hang, End::Eof], announce, ..Setup::default() };
        let got = exchange(setup, &b, b.len()).map(|r| outcome(&r));
        assert_eq!(got, [Ok(403), Err(ngx_ase_fuzz::ngx_ase_shared_abi::AseError::Reset)], "announce {announce}");
    }
}
