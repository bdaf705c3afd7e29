//! `ngx_http_ase_response_module`: a header filter that reports each checked response's
//! status and headers to the ASE (`POST /ase/response`) in the background, never delaying
//! the response.
//!
//! The shape of all three modules: `module.rs` declares the module (registration,
//! directive table, hooks), `conf.rs` holds its settings and their merge (safe; here also the
//! module's marker type, so that nothing imports `module.rs` back),
//! `directives.rs` the directive callbacks and merge (unsafe glue), then the handlers:
//! here the header filter (`filter.rs`, unsafe glue) and what goes into the report
//! (`payload.rs`, safe, unit-tested), as the request module's `payload.rs` builds its own.

pub mod conf;
#[cfg(not(test))]
mod directives;
#[cfg(not(test))]
mod filter;
#[cfg(not(test))]
mod module;
pub mod payload;

pub const MODULE_NAME: &str = "ngx_http_ase_response_module";

#[cfg(not(test))]
pub use module::*;
