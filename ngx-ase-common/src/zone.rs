//! `ase_zone NAME SIZE;`: the shared memory zone that holds the counters of all workers
//! (unsafe glue). nginx keeps a zone of the same name and size across reloads, and `init`
//! then adopts the old counters, so they survive a reload.

use core::ffi::c_void;
use core::ptr;

use nginx_sys::{
    ngx_conf_t, ngx_int_t, ngx_shared_memory_add, ngx_shm_zone_t, ngx_slab_calloc, ngx_slab_pool_t, ngx_str_t,
    NGX_ERROR, NGX_OK,
};
use ngx_ase_glue::directive::{ConfError, Directive};

use crate::conf::settings::check_zone_size;
use crate::conf::MainConf;
use crate::counters::Counters;

/// The layout of [`Counters`]: bumped whenever a field is added, removed or moved (the size
/// alone would not tell a reordering). 2: `payload_truncated`. 3: `groups`. 4: `monitor_skipped`. 5: `identity_too_large`.
/// 6: the groups' `blind_ms`. 7: error `bad_503`. 8: `connections_closed_by_ase`. 9: errors `unreachable`, `local`.
/// 10: `cache`, the groups' `mirrored*` (ase_mirror) and `slow_*` (ase_latency_guard).
const LAYOUT_VERSION: u64 = 10;

/// Identifies counters of this exact layout, so a zone left by another build is not misread
/// (a reload into a build with another layout starts the counters afresh).
const MAGIC: u64 = (0x6173_655f_7a6f_6e65 ^ (core::mem::size_of::<Counters>() as u64)) ^ (LAYOUT_VERSION << 56);

#[repr(C)]
struct ZoneData {
    magic: u64,
    counters: Counters,
}

/// `ase_zone NAME SIZE;`
pub fn zone(conf: &mut MainConf, d: &Directive) -> Result<(), ConfError> {
    if !conf.zone.is_null() {
        return Err(d.duplicate());
    }
    let (name, size) = d.zone_args()?;
    let size = check_zone_size(name, size).map_err(|e| d.error(&e))?;
    // SAFETY: the configuration nginx is reading, live while the directive is.
    conf.zone = unsafe { add_zone(d.raw(), name, size) }.map_err(|e| d.error(&e))?;
    Ok(())
}

/// Asks nginx for the shared memory zone `name` of `size` bytes, ours alone.
///
/// # Safety
/// `cf` must be the configuration nginx is reading.
unsafe fn add_zone(cf: *mut ngx_conf_t, name: &[u8], size: usize) -> Result<*mut ngx_shm_zone_t, String> {
    unsafe {
        let Some(mut name_str) = ngx_str_t::from_bytes((*cf).pool, name) else {
            return Err("out of memory".to_string());
        };
        let tag = ptr::addr_of_mut!(crate::ngx_ase_common_module).cast::<c_void>();
        let zone = ngx_shared_memory_add(cf, &mut name_str, size, tag);
        if zone.is_null() {
            return Err("cannot add the shared memory zone".to_string());
        }
        if (*zone).init.is_some() {
            return Err(format!("zone \"{}\" is already used", String::from_utf8_lossy(name)));
        }
        (*zone).init = Some(init_zone);
        Ok(zone)
    }
}

/// Allocates the counters in a new zone, or adopts those of the zone before a reload.
unsafe extern "C" fn init_zone(zone: *mut ngx_shm_zone_t, old: *mut c_void) -> ngx_int_t {
    unsafe {
        let old = old as *mut ZoneData;
        if let Some(d) = old.as_ref() {
            if d.magic == MAGIC {
                (*zone).data = old.cast();
                return NGX_OK as ngx_int_t;
            }
        }
        let pool = (*zone).shm.addr as *mut ngx_slab_pool_t;
        let data = ngx_slab_calloc(pool, core::mem::size_of::<ZoneData>()) as *mut ZoneData;
        if data.is_null() {
            return NGX_ERROR as ngx_int_t;
        }
        ptr::write(data, ZoneData { magic: MAGIC, counters: Counters::new() });
        (*zone).data = data.cast();
        NGX_OK as ngx_int_t
    }
}

/// The counters in the zone, once nginx has initialised it.
pub unsafe fn shared_counters(zone: *mut ngx_shm_zone_t) -> Option<&'static Counters> {
    unsafe {
        let data = (zone.as_ref()?.data as *const ZoneData).as_ref()?;
        Some(&data.counters)
    }
}
