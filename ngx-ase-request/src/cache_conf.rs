//! The verdict cache's settings (`ase_cache`, `ase_cache_key`, `ase_cache_valid`,
//! `ase_cache_use_stale`): parsing, defaults and inheritance, in safe Rust.

use nginx_sys::{ngx_http_complex_value_t, ngx_shm_zone_t};
use ngx_ase_glue::time::{parse_msec, MAX_TIMER_MS};
use ngx_ase_glue::values::{invalid_value, merge, merge_option};

use crate::cache_table::Cached;

/// How long an allow stands by default: one second. The ASE refreshes its attack lists every
/// few minutes, so an allow a second old loses almost nothing, and a client the ASE starts to
/// deny is blocked at most a second later (each hit's metadata still reaches the ASE).
pub const DEFAULT_VALID_ALLOW_MS: u64 = 1_000;
/// How long a block stands by default: ten seconds. A blocked client is refused without
/// waiting; the ASE's own blocks last minutes, and a longer block costs the ASE nothing, as
/// every refused request is still reported to it.
pub const DEFAULT_VALID_BLOCK_MS: u64 = 10_000;

const UNSET_MS: u64 = u64::MAX;

/// One level's cache settings.
#[derive(Clone, Copy, Debug)]
pub struct CacheConf {
    /// `ase_cache NAME | off`: `None` unset, `Some(null)` off, else the zone.
    pub zone: Option<*mut ngx_shm_zone_t>,
    /// `ase_cache_key VALUE`; `None`: the default key (`cache_check.rs`).
    pub key: Option<*mut ngx_http_complex_value_t>,
    pub valid_allow_ms: u64,
    pub valid_block_ms: u64,
    /// `ase_cache_use_stale TIME`; 0 (the default): an ASE error follows `ase_fail_mode`.
    pub use_stale_ms: u64,
}

impl Default for CacheConf {
    fn default() -> Self {
        CacheConf { zone: None, key: None, valid_allow_ms: UNSET_MS, valid_block_ms: UNSET_MS, use_stale_ms: UNSET_MS }
    }
}

impl CacheConf {
    /// The zone verdicts are cached in here, if any.
    pub fn zone(&self) -> Option<*mut ngx_shm_zone_t> {
        self.zone.filter(|z| !z.is_null())
    }

    /// How long `verdict` stands here.
    pub fn valid_ms(&self, verdict: Cached) -> u64 {
        match verdict {
            Cached::Allow => self.valid_allow_ms,
            Cached::Block => self.valid_block_ms,
        }
    }

    /// The `valid_*` field `ase_cache_valid` sets for `verdict`, and whether it is set.
    pub fn valid_slot(&mut self, verdict: Cached) -> (&mut u64, bool) {
        let slot = match verdict {
            Cached::Allow => &mut self.valid_allow_ms,
            Cached::Block => &mut self.valid_block_ms,
        };
        let set = *slot != UNSET_MS;
        (slot, set)
    }

    pub fn use_stale_is_set(&self) -> bool {
        self.use_stale_ms != UNSET_MS
    }

    /// nginx's inheritance: an unset value takes the enclosing level's.
    pub fn merge(&mut self, prev: &CacheConf) {
        merge_option(&mut self.zone, &prev.zone);
        merge_option(&mut self.key, &prev.key);
        merge(&mut self.valid_allow_ms, prev.valid_allow_ms, UNSET_MS, DEFAULT_VALID_ALLOW_MS);
        merge(&mut self.valid_block_ms, prev.valid_block_ms, UNSET_MS, DEFAULT_VALID_BLOCK_MS);
        merge(&mut self.use_stale_ms, prev.use_stale_ms, UNSET_MS, 0);
    }
}

/// `allow` or `block`, the first argument of `ase_cache_valid`.
pub fn parse_valid_verdict(raw: &[u8]) -> Result<Cached, String> {
    if raw.eq_ignore_ascii_case(b"allow") {
        Ok(Cached::Allow)
    } else if raw.eq_ignore_ascii_case(b"block") {
        Ok(Cached::Block)
    } else {
        Err(invalid_value("ase_cache_valid", raw, "\"allow\" or \"block\""))
    }
}

/// A time of `directive` in nginx's syntax, in ms, at most nginx's longest timer.
pub fn parse_cache_time(directive: &str, raw: &[u8]) -> Result<u64, String> {
    match parse_msec(raw) {
        Ok(ms) if ms <= MAX_TIMER_MS => Ok(ms),
        Ok(_) => Err(ngx_ase_glue::time::timer_too_long(directive, raw)),
        Err(_) => Err(invalid_value(directive, raw, "a time (\"1s\", \"500ms\")")),
    }
}

/// `ase_cache_zone`'s size: at least `min` bytes (eight pages, as `limit_req_zone`).
pub fn check_cache_zone_size(name: &[u8], size: usize, min: usize) -> Result<usize, String> {
    if size < min {
        Err(format!("zone \"{}\" is too small: at least {min} bytes", String::from_utf8_lossy(name)))
    } else {
        Ok(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(parse_valid_verdict(b"ALLOW"), Ok(Cached::Allow));
        assert_eq!(parse_valid_verdict(b"block"), Ok(Cached::Block));
        assert!(parse_valid_verdict(b"deny").unwrap_err().contains("\"allow\" or \"block\""));
        assert_eq!(parse_cache_time("ase_cache_valid", b"1s"), Ok(1000));
        assert_eq!(parse_cache_time("ase_cache_valid", b"250ms"), Ok(250));
        assert!(parse_cache_time("ase_cache_valid", b"1x").unwrap_err().contains("invalid value \"1x\""));
        assert!(parse_cache_time("ase_cache_valid", b"30d").unwrap_err().contains("at most"));
        assert!(check_cache_zone_size(b"v", 4096, 32768).unwrap_err().contains("zone \"v\" is too small"));
        assert_eq!(check_cache_zone_size(b"v", 32768, 32768), Ok(32768));
    }

    #[test]
    fn inheritance() {
        let zone = core::ptr::dangling_mut::<ngx_shm_zone_t>();
        let mut http = CacheConf { zone: Some(zone), valid_allow_ms: 200, ..CacheConf::default() };
        http.merge(&CacheConf::default());
        let mut location = CacheConf { use_stale_ms: 5000, ..CacheConf::default() };
        location.merge(&http);
        assert_eq!(location.zone(), Some(zone));
        assert_eq!(location.valid_ms(Cached::Allow), 200);
        assert_eq!(location.valid_ms(Cached::Block), DEFAULT_VALID_BLOCK_MS);
        assert_eq!(location.use_stale_ms, 5000);
        assert_eq!(http.use_stale_ms, 0);
        let mut off = CacheConf { zone: Some(core::ptr::null_mut()), ..CacheConf::default() };
        off.merge(&http);
        assert_eq!(off.zone(), None);
        let mut bare = CacheConf::default();
        bare.merge(&CacheConf::default());
        assert_eq!((bare.zone(), bare.valid_ms(Cached::Allow)), (None, DEFAULT_VALID_ALLOW_MS));
    }
}
