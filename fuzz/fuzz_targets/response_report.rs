#![no_main]
//! See `src/targets/report.rs` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ngx_ase_fuzz::targets::report::check(data);
});
