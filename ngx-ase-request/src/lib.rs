//! `ngx_http_ase_request_module`: in the access phase, sends each main request's metadata
//! to the ASE through the common module's channel, waits without blocking the worker, and
//! blocks the client when the ASE answers 403.
//!
//! The nginx module declaration is in `module.rs` (unsafe glue).

#[cfg(not(test))]
mod cache_check;
pub mod cache_conf;
#[cfg(not(test))]
mod cache_directives;
pub mod cache_key;
pub mod cache_policy;
pub mod cache_table;
#[cfg(not(test))]
mod cache_zone;
pub mod conf;
pub mod correlation_id;
#[cfg(not(test))]
mod directives;
#[cfg(not(test))]
mod handler;
pub mod in_flight;
#[cfg(not(test))]
mod module;
pub mod payload;
#[cfg(not(test))]
mod routed;
pub mod set_header;
#[cfg(not(test))]
mod set_header_values;
pub mod skip;
#[cfg(not(test))]
mod variables;
pub mod verdict;

pub const MODULE_NAME: &str = "ngx_http_ase_request_module";

#[cfg(not(test))]
pub use module::*;
