//! `ngx_ase_common_module`: owns the sideband channel to the ASE nodes and the `ase_*`
//! directives that configure it. The request and response modules reach the channel
//! through the C ABI table in `channel_api.rs`.
//!
//! - `module.rs`: the nginx module declaration (registration, directive table).
//! - `conf/`: the configuration: what each directive sets and its inheritance (`mod.rs`),
//!   the safe parsers of directive values (`settings.rs`), the directive callbacks
//!   (`directives.rs`, unsafe glue).
//! - `engine/`: the channel's logic (plain Rust, unit-tested over a fake); `health.rs`:
//!   which node a call goes to (failover, `max_fails`, the breaker); `key_hash.rs` the
//!   arithmetic of `hash KEY [consistent]`.
//! - `net/`: the channel on nginx's event loop: peer connections and timers (`ngx_io.rs`),
//!   TLS (`tls.rs`), following `resolve` names (`resolve.rs`, `follow.rs`).
//! - `worker.rs` holds the channel per worker; `process.rs` builds it at worker start;
//!   `channel_api.rs` is the table the other modules call (`checked_group.rs` notes where a
//!   request's check went, for its report); `clock.rs` nginx's clock.
//! - `counters.rs`, `zone.rs` (`ase_zone`) and `status/`: the numbers and the status page.

#[cfg(not(test))]
mod channel_api;
#[cfg(not(test))]
mod checked_group;
#[cfg(not(test))]
mod clock;
pub mod conf;
pub mod counters;
pub mod engine;
pub mod health;
pub mod key_hash;
pub mod latency_guard;
#[cfg(not(test))]
mod module;
pub mod net;
#[cfg(not(test))]
mod process;
pub mod secret;
pub mod status;
#[cfg(not(test))]
mod worker;
#[cfg(not(test))]
mod zone;

#[cfg(not(test))]
pub use module::*;
