//! `ase_cache_zone NAME SIZE;` and the zone's memory (unsafe glue over `cache_table.rs`).
//!
//! The zone is nginx's shared memory, as `limit_req_zone`'s: one slab allocation holds a
//! header (a layout mark, the key seed, the number of sets) and the table of sets. Every
//! lookup and store takes the slab pool's mutex for one set's worth of work; the seed is
//! written once, before the workers start, and read without it. nginx keeps a zone of the
//! same name and size across a reload, and the new configuration adopts its verdicts.

use core::ffi::c_void;
use core::ptr;

use nginx_sys::{
    ngx_conf_t, ngx_int_t, ngx_pagesize, ngx_pcalloc, ngx_shared_memory_add, ngx_shm_zone_t, ngx_shmtx_lock,
    ngx_shmtx_unlock, ngx_slab_alloc, ngx_slab_pool_t, ngx_str_t, NGX_ERROR, NGX_OK,
};
use ngx_ase_glue::directive::{ConfError, Directive};

use crate::cache_conf::check_cache_zone_size;
use crate::cache_table::Set;
use crate::conf::LocConf;

/// Bumped whenever `Header` or `cache_table::Entry` change, so a zone another build left is
/// not misread after a reload.
const LAYOUT_VERSION: u64 = 1;
const MAGIC: u64 = 0x6173_655f_6361_6368 ^ (LAYOUT_VERSION << 56);

/// The start of the zone's one allocation; the sets follow it.
#[repr(C)]
struct Header {
    magic: u64,
    seed: [u64; 2],
    sets: usize,
}

/// What `zone->data` points at (in the configuration's pool): the zone's memory, once
/// nginx has mapped it. Null until then, as in `nginx -t`.
#[repr(C)]
struct ZoneCtx {
    header: *mut Header,
    pool: *mut ngx_slab_pool_t,
}

/// The zone's tag: ours, so another module's zone of the same name is refused by nginx.
fn tag() -> *mut c_void {
    ptr::addr_of!(crate::ngx_http_ase_request_module) as *mut c_void
}

/// `ase_cache_zone NAME SIZE;` (http level; `conf` is unused: the zone itself is the setting).
pub fn cache_zone(_conf: &mut LocConf, d: &Directive) -> Result<(), ConfError> {
    let (name, size) = d.zone_args()?;
    // SAFETY: nginx sets its page size before it reads the configuration.
    let page = unsafe { ngx_pagesize };
    let size = check_cache_zone_size(name, size, 8 * page).map_err(|e| d.error(&e))?;
    // SAFETY: the configuration nginx is reading, live while the directive is.
    unsafe { define(d.raw(), name, size) }.map_err(|e| d.error(&e))
}

/// Adds the zone `name` of `size` bytes, with its (empty) context.
///
/// # Safety
/// `cf` must be the configuration nginx is reading.
unsafe fn define(cf: *mut ngx_conf_t, name: &[u8], size: usize) -> Result<(), String> {
    unsafe {
        let zone = add(cf, name, size)?;
        if !(*zone).data.is_null() {
            return Err(format!("duplicate zone \"{}\"", String::from_utf8_lossy(name)));
        }
        let ctx = ngx_pcalloc((*cf).pool, core::mem::size_of::<ZoneCtx>()) as *mut ZoneCtx;
        if ctx.is_null() {
            return Err("out of memory".to_string());
        }
        (*zone).data = ctx.cast();
        (*zone).init = Some(init_zone);
        Ok(())
    }
}

/// nginx's zone `name` with our tag (`size` 0: a reference, sized by its definition).
unsafe fn add(cf: *mut ngx_conf_t, name: &[u8], size: usize) -> Result<*mut ngx_shm_zone_t, String> {
    unsafe {
        let Some(mut name_str) = ngx_str_t::from_bytes((*cf).pool, name) else {
            return Err("out of memory".to_string());
        };
        let zone = ngx_shared_memory_add(cf, &mut name_str, size, tag());
        // nginx has logged why (another module's zone of that name, say).
        zone.as_mut().map(|z| z as *mut _).ok_or_else(|| "cannot use the shared memory zone".to_string())
    }
}

/// The zone `ase_cache NAME` names: it must be defined above, by `ase_cache_zone`.
///
/// # Safety
/// `cf` must be the configuration nginx is reading.
pub unsafe fn find(cf: *mut ngx_conf_t, name: &[u8]) -> Result<*mut ngx_shm_zone_t, String> {
    unsafe {
        let zone = add(cf, name, 0)?;
        if (*zone).data.is_null() {
            return Err(format!(
                "unknown ase_cache_zone \"{}\" (define it with \"ase_cache_zone\" before it is used)",
                String::from_utf8_lossy(name)
            ));
        }
        Ok(zone)
    }
}

/// Makes the table in a new zone, or adopts the one the zone held before a reload.
unsafe extern "C" fn init_zone(zone: *mut ngx_shm_zone_t, old: *mut c_void) -> ngx_int_t {
    unsafe {
        let ctx = (*zone).data as *mut ZoneCtx;
        if let Some(old) = (old as *const ZoneCtx).as_ref() {
            if old.header.as_ref().is_some_and(|h| h.magic == MAGIC) {
                (*ctx).header = old.header;
                (*ctx).pool = old.pool;
                return NGX_OK as ngx_int_t;
            }
        }
        let pool = (*zone).shm.addr as *mut ngx_slab_pool_t;
        // Every free page in one allocation: the table is as large as the zone allows.
        let bytes = (*pool).pfree * ngx_pagesize;
        let sets = bytes.saturating_sub(core::mem::size_of::<Header>()) / core::mem::size_of::<Set>();
        if sets == 0 {
            return NGX_ERROR as ngx_int_t;
        }
        let header = ngx_slab_alloc(pool, bytes) as *mut Header;
        if header.is_null() {
            return NGX_ERROR as ngx_int_t;
        }
        // Zeroed sets are empty entries.
        ptr::write_bytes(header.cast::<u8>(), 0, bytes);
        ptr::write(header, Header { magic: MAGIC, seed: random_seed(), sets });
        (*ctx).header = header;
        (*ctx).pool = pool;
        NGX_OK as ngx_int_t
    }
}

/// 128 bits from the system, for the key hash; the clock if there are none.
fn random_seed() -> [u64; 2] {
    use std::io::Read;
    let mut b = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if read.is_err() {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        b = (t ^ u128::from(std::process::id()) << 64).to_le_bytes();
    }
    let n = u128::from_le_bytes(b);
    [n as u64, (n >> 64) as u64]
}

/// The zone's memory, once nginx has made it.
unsafe fn header(zone: *mut ngx_shm_zone_t) -> Option<(&'static mut Header, *mut ngx_slab_pool_t)> {
    unsafe {
        let ctx = (zone.as_ref()?.data as *const ZoneCtx).as_ref()?;
        Some((ctx.header.as_mut()?, ctx.pool))
    }
}

/// The seed keys are hashed with in this zone (written before the workers start).
///
/// # Safety
/// `zone` must be one `find` returned, in a worker.
pub unsafe fn seed(zone: *mut ngx_shm_zone_t) -> Option<[u64; 2]> {
    unsafe { header(zone).map(|(h, _)| h.seed) }
}

/// Runs `f` on the zone's table, under the zone's mutex (held for `f` only: one set's work).
///
/// # Safety
/// `zone` must be one `find` returned, in a worker; `f` must not panic (it would leave the
/// mutex held).
pub unsafe fn with_table<T>(zone: *mut ngx_shm_zone_t, f: impl FnOnce(&mut [Set]) -> T) -> Option<T> {
    unsafe {
        let (h, pool) = header(zone)?;
        let first = (h as *mut Header).add(1).cast::<Set>();
        debug_assert_eq!(first as usize % core::mem::align_of::<Set>(), 0);
        let sets = core::slice::from_raw_parts_mut(first, h.sets);
        ngx_shmtx_lock(&mut (*pool).mutex);
        let out = f(sets);
        ngx_shmtx_unlock(&mut (*pool).mutex);
        Some(out)
    }
}
