//! The unsafe FFI helpers the three ngx-ase modules share. Each function is small and says
//! what it assumes; the modules' logic stays in safe Rust.

pub mod conf;
pub mod headers;
pub mod panic;
pub mod peer;
