//! The status page (`ase_status`): which answer a client gets (`format.rs`), the JSON and
//! Prometheus text (`json.rs`), the browser page (`page.html`) and its Content-Security-
//! Policy (`csp.rs`), all plain Rust; `handler.rs` is the nginx content handler.

pub mod csp;
pub mod format;
#[cfg(not(test))]
pub mod handler;
pub mod json;
#[cfg(test)]
mod json_by_hand;
