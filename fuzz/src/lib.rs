//! The checks behind the fuzz targets (`targets::*::check`, one per target, each taking
//! the fuzzer's raw bytes). They live here, not in `fuzz_targets/`, so that `cargo test`
//! replays the committed corpus through the same code on a plain stable toolchain.
//! Every check panics (= a crash for libFuzzer) when the code under test panics or breaks
//! one of the stated properties.
//!
//! The code under test is compiled here from the module crates' own source files (the
//! `#[path]` modules below), not linked from their rlibs: those rlibs carry the nginx glue
//! (module tables, handlers: `#[no_mangle]` items the linker keeps), whose references to
//! nginx's own symbols no binary but nginx can satisfy. The files included are the safe,
//! nginx-free parts, each with its own unit tests (run in the main workspace: this crate's
//! lib has `test = false`).

// ngx-ase-request: `conf.rs` must sit at the crate root, `verdict.rs` says `crate::conf`,
// and so must `set_header` (`conf.rs` says `crate::set_header`).
#[path = "../../ngx-ase-request/src/conf.rs"]
pub mod conf;
// `conf.rs` holds the verdict cache's settings, which say `crate::cache_table`.
#[path = "../../ngx-ase-request/src/cache_conf.rs"]
pub mod cache_conf;
#[path = "../../ngx-ase-request/src/cache_table.rs"]
pub mod cache_table;
#[path = "../../ngx-ase-request/src/payload.rs"]
pub mod request_payload;
#[path = "../../ngx-ase-request/src/set_header.rs"]
pub mod set_header;
#[path = "../../ngx-ase-request/src/verdict.rs"]
pub mod verdict;
// ngx-ase-common: the channel's engine (its submodules sit next to its `mod.rs`; its unit tests are `#[cfg(test)]`, not built here); `counters` and `health`
// must sit at the crate root, the engine says `crate::counters` and `crate::health`; so
// must `key_hash` (health.rs's `hash` arithmetic), `secret` (zeroizing the token's
// bytes), used by the engine and settings.rs, and `latency_guard` (the engine's guards).
#[path = "../../ngx-ase-common/src/counters.rs"]
pub mod counters;
#[path = "../../ngx-ase-common/src/engine/mod.rs"]
pub mod engine;
#[path = "../../ngx-ase-common/src/health.rs"]
pub mod health;
#[path = "../../ngx-ase-common/src/key_hash.rs"]
pub mod key_hash;
#[path = "../../ngx-ase-common/src/latency_guard.rs"]
pub mod latency_guard;
#[path = "../../ngx-ase-common/src/secret.rs"]
pub mod secret;
#[path = "../../ngx-ase-common/src/conf/settings.rs"]
pub mod settings;
// ngx-ase-response
#[path = "../../ngx-ase-response/src/payload.rs"]
pub mod response_payload;

/// The modules under the names of the crates they come from.
pub mod ngx_ase_request {
    pub use crate::{conf, request_payload as payload, verdict};
}
pub mod ngx_ase_common {
    pub use crate::{counters, engine, health, settings};
}
pub mod ngx_ase_response {
    pub use crate::response_payload as payload;
}
pub use ngx_ase_shared::abi as ngx_ase_shared_abi;

pub mod targets;

use arbitrary::{Arbitrary, Unstructured};

/// The targets by name, as `fuzz_targets/<name>.rs` and `corpus/<name>/` spell them.
pub const TARGETS: [(&str, fn(&[u8])); 4] = [
    ("request_payload", targets::payload::check),
    ("ase_answer", targets::answer::check),
    ("directive_values", targets::directives::check),
    ("response_report", targets::report::check),
];

/// Reads a `T` from the fuzzer's bytes (short inputs give defaults, never an error).
pub fn take<'a, T: Arbitrary<'a> + Default>(u: &mut Unstructured<'a>) -> T {
    T::arbitrary(u).unwrap_or_default()
}
