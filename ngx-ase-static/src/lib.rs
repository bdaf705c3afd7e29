//! The three ngx-ase modules in one static library, for an nginx built with
//! `./configure --add-module=ngx-ase-common --add-module=ngx-ase-request
//! --add-module=ngx-ase-response` (what `scripts/build.sh --static` does).
//!
//! nginx's generated `objs/ngx_modules.c` refers to the three `ngx_module_t` statics by
//! their C names; the module crates are built without `export-modules`, which makes those
//! statics `#[no_mangle]` and leaves out the `ngx_modules` table of a loadable module.
//! Re-exporting them here keeps them in the library's public surface.

pub use ngx_ase_common::ngx_ase_common_module;
pub use ngx_ase_request::ngx_http_ase_request_module;
pub use ngx_ase_response::ngx_http_ase_response_module;
