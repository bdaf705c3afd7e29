//! The sideband channel's networking: nginx peer connections as hyper streams, the
//! per-node keep-alive pool, and one HTTP exchange with failover.

pub mod call;
pub mod peer;
pub mod select;
