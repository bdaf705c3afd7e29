#![no_main]
//! See `src/targets/payload.rs` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ngx_ase_fuzz::targets::payload::check(data);
});
