//! `ngx_ase_common_module`: owns the sideband channel to the ASE nodes and the `ase_*`
//! directives that configure it. The request and response modules reach the channel
//! through the C ABI table in `api.rs`.
//!
//! The channel's logic is `engine/` (plain Rust, unit-tested over a fake); `ngx_io.rs` runs
//! it on nginx's event loop over nginx peer connections, and `worker.rs` holds it per worker.
//!
//! The nginx module declaration is in `module.rs` (unsafe glue); see `conf.rs`,
//! `settings.rs` and the channel modules for the logic.

pub mod conf;
pub mod counters;
pub mod engine;
pub mod follow;
pub mod nodes;
pub mod secret;
pub mod settings;
pub mod status_csp;
pub mod status_format;
pub mod status_json;
#[cfg(not(test))]
mod api;
#[cfg(not(test))]
mod clock;
#[cfg(not(test))]
mod ngx_io;
#[cfg(not(test))]
mod resolve;
#[cfg(not(test))]
mod worker;
#[cfg(not(test))]
mod directives;
// The status page's file is being reworked in parallel: it still reads the clock as
// `crate::log::now_ms` and has no unsafe blocks of its own yet. When the two meet, point it
// at `clock` and drop the alias and the allow.
#[cfg(not(test))]
mod log {
    pub use crate::clock::now_ms;
}
#[cfg(not(test))]
#[allow(unsafe_op_in_unsafe_fn)]
mod status_page;
#[cfg(not(test))]
mod tls;
#[cfg(not(test))]
mod zone;
#[cfg(not(test))]
mod module;

#[cfg(not(test))]
pub use module::*;
