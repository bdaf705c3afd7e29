//! The handle a module keeps to the common module's channel table (`ChannelApi`), set once
//! at postconfiguration and read by its handlers.

use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, Ordering};

use ngx_ase_shared::abi::ChannelApi;

/// Where the common module's function table is; empty until postconfiguration.
pub struct ChannelHandle(AtomicPtr<ChannelApi>);

impl ChannelHandle {
    pub const fn new() -> Self {
        ChannelHandle(AtomicPtr::new(null_mut()))
    }

    /// Notes the table.
    ///
    /// # Safety
    /// `api` must be the common module's table from its main configuration header (static
    /// data of a loaded module, checked for this ABI by `conf::common_header`), or null.
    pub unsafe fn set(&self, api: *const ChannelApi) {
        self.0.store(api as *mut ChannelApi, Ordering::Relaxed);
    }

    /// The table, once set.
    pub fn api(&self) -> Option<&'static ChannelApi> {
        // SAFETY: `set` only takes the common module's static table (or null).
        unsafe { self.0.load(Ordering::Relaxed).as_ref() }
    }
}

impl Default for ChannelHandle {
    fn default() -> Self {
        Self::new()
    }
}
