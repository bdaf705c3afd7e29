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

/// The answer target reads what the channel would: a check that the in-memory harness
/// (answers after requests, pieces, "not ready" in between, EOF) drives hyper to the
/// channel's outcomes.
#[test]
fn the_answer_harness_gives_the_channels_outcomes() {
    use ngx_ase_fuzz::ngx_ase_shared_abi::AseError;
    use ngx_ase_fuzz::targets::answer::exchange;
    let two = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
    let cases: [(&[u8], usize, &[Result<u16, AseError>]); 10] = [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 99, &[Ok(200)]),
        (two, 38, &[Ok(200), Ok(403)]),
        // the second answer before the second request: hyper drops the connection, the
        // pool reconnects (no outcome)
        (two, 99, &[Ok(200)]),
        // the first answer not complete: the ASE stalls, the timer ends the call
        (two, 10, &[Err(AseError::Timeout)]),
        (b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 3\r\n\r\nxyz", 99, &[Ok(503)]),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 99, &[Ok(200)]),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\nno", 99, &[Ok(401)]),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789", 99, &[Err(AseError::Reset)]),
        (b"\x00\xffNOT HTTP\r\n\r\n", 99, &[Err(AseError::BadAnswer)]),
        (b"", 0, &[Err(AseError::Reset)]),
    ];
    for (answer, split, expected) in cases {
        for piece in [1, 7, 4096] {
            assert_eq!(exchange(answer, piece, split), expected, "{:?} in pieces of {piece}", String::from_utf8_lossy(answer));
        }
    }
}
