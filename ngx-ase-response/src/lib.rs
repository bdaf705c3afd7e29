//! `ngx_http_ase_response_module`: a header filter that reports each checked response's
//! status and headers to the ASE (`POST /ase/response`) in the background, never delaying
//! the response.
//!
//! The nginx module declaration is in `module.rs` and the header filter in `filter.rs`
//! (unsafe glue); what goes into the report is decided in `report.rs` (safe, unit-tested).

pub mod conf;
pub mod report;
#[cfg(not(test))]
mod filter;
#[cfg(not(test))]
mod module;

pub const MODULE_NAME: &str = "ngx_http_ase_response_module";

#[cfg(not(test))]
pub use module::*;
