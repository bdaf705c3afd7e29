//! Code shared by the three ngx-ase modules. Nothing here touches nginx, so all of it is
//! unit-tested without a server.

pub mod abi;
pub mod alloc_count;
pub mod correlation;
pub mod header_names;
pub mod http;
pub mod json;
pub mod url;
