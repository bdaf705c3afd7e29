//! The channel on nginx's event loop: nginx peer connections, events and timers for the
//! engine (`ngx_io.rs`), TLS through nginx's OpenSSL (`tls.rs`), and `resolve` names
//! followed with nginx's resolver (`resolve.rs`; which slots change: `follow.rs`, safe);
//! whose fault a failed connect was (`connect_error.rs`, safe).

pub mod connect_error;
pub mod follow;
#[cfg(not(test))]
pub(crate) mod ngx_io;
#[cfg(not(test))]
pub(crate) mod resolve;
#[cfg(not(test))]
pub(crate) mod tls;
