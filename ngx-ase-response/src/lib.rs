//! `ngx_http_ase_response_module`: a header filter that reports each checked response's
//! status and headers to the ASE (`POST /ase/response`) in the background, never delaying
//! the response.
//!
//! The nginx module declaration is in `module.rs` (unsafe glue).

pub mod conf;
#[cfg(not(test))]
mod module;

pub const MODULE_NAME: &str = "ngx_http_ase_response_module";

#[cfg(not(test))]
pub use module::*;
