//! The verdict cache around one request's check (unsafe glue over `cache_policy.rs`,
//! `cache_key.rs` and `cache_zone.rs`; `handler.rs` calls it).
//!
//! The key: the ASE group, the location, the host nginx routed by, then who the client is:
//! `ase_cache_key`'s value, or by default the client address, the routed path, `ase_user`,
//! `ase_client_id` and every identity header line (`payload::IDENTITY` and
//! `ase_identity_header`) as sent.
//! Any byte of those that differs gives another key, so a padded or respelled identity
//! never finds another client's verdict: at worst it misses and waits for the ASE.
//!
//! A hit's metadata still goes to the ASE, detached as `ase_request monitor` sends it and
//! under the same ceiling; its answer refreshes the entry (`on_refresh_done`). What that
//! callback needs (zone and key) waits in a per-worker slot list that grows to the
//! ceiling once and is then reused, so a hit allocates nothing once warm.

use core::cell::RefCell;
use core::ffi::c_void;

use nginx_sys::{ngx_http_request_t, ngx_shm_zone_t};
use ngx::http::{HttpModuleLocationConf, NgxHttpCoreModule};
use ngx_ase_glue::headers::request_headers;
use ngx_ase_shared::abi::{CheckResult, Event};
use ngx_ase_shared::header_names::is_listed;

use crate::cache_key::KeyHasher;
use crate::cache_policy::{classify, learned, stale_answer, CacheStatus};
use crate::cache_table::{self, Cached, Found};
use crate::cache_zone;
use crate::conf::LocConf;
use crate::payload::IDENTITY;
use crate::routed;

/// The cache's part of a request's state.
#[derive(Clone, Copy)]
pub struct CacheState {
    pub status: CacheStatus,
    zone: *mut ngx_shm_zone_t,
    key: [u64; 2],
    /// What the lookup found, and when (nginx msec).
    found: Option<Found>,
    looked_at: u64,
}

impl CacheState {
    /// The verdict that decides at once, on a hit.
    pub fn hit(&self) -> Option<Cached> {
        (self.status == CacheStatus::Hit).then(|| self.found.map(|f| f.verdict)).flatten()
    }

    /// The status page's count for the lookup: a hit, or a miss (nothing, or too old).
    pub fn event(&self) -> Option<Event> {
        match self.status {
            CacheStatus::Hit => Some(Event::CacheHit),
            CacheStatus::Miss | CacheStatus::Expired => Some(Event::CacheMiss),
            CacheStatus::Stale | CacheStatus::Bypass => None,
        }
    }
}

fn now() -> u64 {
    // SAFETY: nginx's cached clock, written only by this worker's thread.
    unsafe { nginx_sys::ngx_current_msec as u64 }
}

/// Looks the request up where `ase_cache` is on; `None` where it is off.
///
/// # Safety
/// `r` must be a live main request; `lc` its location's configuration.
pub unsafe fn look_up(r: *mut ngx_http_request_t, lc: &LocConf, group: u32) -> Option<CacheState> {
    unsafe {
        let zone = lc.cache.zone()?;
        let looked_at = now();
        let bypass = CacheState { status: CacheStatus::Bypass, zone, key: [0; 2], found: None, looked_at };
        let Some(key) = key(r, lc, zone, group) else { return Some(bypass) };
        let Some(found) = cache_zone::with_table(zone, |sets| cache_table::lookup(sets, key, looked_at)) else {
            return Some(bypass);
        };
        Some(CacheState { status: classify(found, &lc.cache), zone, key, found, looked_at })
    }
}

/// The request's key; `None` when `ase_cache_key` gives nothing or the zone is not ready.
unsafe fn key(r: *mut ngx_http_request_t, lc: &LocConf, zone: *mut ngx_shm_zone_t, group: u32) -> Option<[u64; 2]> {
    unsafe {
        let mut h = KeyHasher::new(cache_zone::seed(zone)?);
        h.field(&group.to_le_bytes());
        h.field(NgxHttpCoreModule::location_conf(&*r).map(|c| c.name.as_bytes()).unwrap_or_default());
        h.field(routed::host(r, b"").unwrap_or_default());
        if let Some(cv) = lc.cache.key {
            let value = ngx_ase_glue::complex_value::evaluate(r, cv).filter(|v| !v.is_empty())?;
            h.field(b"key");
            h.field(value);
            return Some(h.finish());
        }
        h.field((*(*r).connection).addr_text.as_bytes());
        // The path the ASE is told (its APIs are path prefixes, and its verdicts may differ
        // per API); not the query string.
        h.field(routed::url(r).path);
        for value in [lc.user, lc.client_id] {
            h.field(value.and_then(|v| ngx_ase_glue::complex_value::evaluate(r, v.cv)).unwrap_or_default());
        }
        for (name, value) in request_headers(r) {
            if IDENTITY.iter().any(|n| n.eq_ignore_ascii_case(name)) || is_listed(lc.identity(), name) {
                h.field(name);
                h.field(value);
            }
        }
        Some(h.finish())
    }
}

/// After the check: stores what the ASE answered, or, on an ASE error, gives the answer a
/// verdict within `ase_cache_use_stale` stands for (and marks the request `STALE`).
/// Returns whether a store evicted another entry, and the answer to decide by.
pub fn settle(state: Option<&mut CacheState>, result: &CheckResult, lc: &LocConf) -> (bool, Option<CheckResult>) {
    let Some(state) = state else { return (false, None) };
    if state.status == CacheStatus::Bypass {
        return (false, None);
    }
    if let Some(verdict) = learned(result) {
        return (store(state.zone, state.key, verdict), None);
    }
    let aged = state.found.map(|f| (f.verdict, f.age_ms + now().saturating_sub(state.looked_at)));
    let stale = stale_answer(result, aged, &lc.cache);
    if stale.is_some() {
        state.status = CacheStatus::Stale;
    }
    (false, stale)
}

/// Stores `verdict`; whether another entry was evicted for it.
fn store(zone: *mut ngx_shm_zone_t, key: [u64; 2], verdict: Cached) -> bool {
    let at = now();
    // SAFETY: `zone` came from `look_up`, in this worker; the table code does not panic.
    unsafe { cache_zone::with_table(zone, |sets| cache_table::store(sets, key, verdict, at)) }.unwrap_or(false)
}

/// A detached check's pending refresh: the entry its answer goes to.
#[derive(Clone, Copy)]
struct Refresh {
    zone: *mut ngx_shm_zone_t,
    key: [u64; 2],
}

thread_local! {
    /// The pending refreshes of this worker (`None`: a free slot).
    static PENDING: RefCell<Vec<Option<Refresh>>> = const { RefCell::new(Vec::new()) };
}

/// Notes the refresh a hit's detached check will bring; its callback data (never null).
pub fn pending_refresh(state: &CacheState) -> *mut c_void {
    let refresh = Refresh { zone: state.zone, key: state.key };
    let i = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        match p.iter().position(Option::is_none) {
            Some(i) => {
                p[i] = Some(refresh);
                i
            }
            None => {
                p.push(Some(refresh));
                p.len() - 1
            }
        }
    });
    // The slot's number, shifted by one so the pointer is never null.
    (i + 1) as *mut c_void
}

/// Takes back the refresh `data` names (its check was not sent, or it answered).
fn take_refresh(data: *mut c_void) -> Option<Refresh> {
    let i = (data as usize).checked_sub(1)?;
    PENDING.with(|p| p.borrow_mut().get_mut(i).and_then(Option::take))
}

/// A hit's check that could not be sent: its slot is free again.
pub fn drop_refresh(data: *mut c_void) {
    take_refresh(data);
}

/// A hit's check answered: the ASE's answer refreshes the entry (an error changes nothing).
/// Returns whether the store evicted another entry.
pub fn refreshed(data: *mut c_void, result: &CheckResult) -> bool {
    match (take_refresh(data), learned(result)) {
        (Some(r), Some(verdict)) => store(r.zone, r.key, verdict),
        _ => false,
    }
}
