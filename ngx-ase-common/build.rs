//! Computes the status page's Content-Security-Policy (`src/status/csp.rs`) from
//! `src/status/page.html` at build time: the hashing crates are build dependencies only.

use std::path::Path;

use base64::Engine;
use sha2::{Digest, Sha256};

#[path = "src/status/csp.rs"]
mod csp;

const PAGE: &str = "src/status/page.html";

fn sha256_base64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text.as_bytes()))
}

fn main() -> Result<(), String> {
    println!("cargo::rerun-if-changed={PAGE}");
    println!("cargo::rerun-if-changed=src/status/csp.rs");
    let page = std::fs::read_to_string(PAGE).map_err(|e| format!("{PAGE}: {e}"))?;
    let script = csp::element_text(&page, "<script>", "</script>")?;
    let style = csp::element_text(&page, "<style>", "</style>")?;
    let out = std::env::var("OUT_DIR").map_err(|e| format!("OUT_DIR: {e}"))?;
    let policy = csp::policy(&sha256_base64(script), &sha256_base64(style));
    std::fs::write(Path::new(&out).join("status_csp.txt"), policy).map_err(|e| format!("{out}: {e}"))
}
