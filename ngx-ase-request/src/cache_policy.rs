//! What the verdict cache means for one request (safe Rust): a hit, a miss, an expired
//! entry, a stale verdict used on an ASE error, and which answers of the ASE are stored.

use ngx_ase_shared::abi::{AseError, CheckResult};

use crate::cache_conf::CacheConf;
use crate::cache_table::{Cached, Found};

/// `$ase_cache_status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheStatus {
    /// Nothing cached for the key: the request waited for the ASE.
    Miss,
    /// A verdict within `ase_cache_valid`: decided at once, the ASE told without waiting.
    Hit,
    /// The ASE failed and a verdict within `ase_cache_use_stale` decided instead.
    Stale,
    /// A verdict older than `ase_cache_valid`: the request waited for the ASE.
    Expired,
    /// The cache is on here but the request has no key (`ase_cache_key` gave nothing).
    Bypass,
}

impl CacheStatus {
    pub fn name(self) -> &'static str {
        match self {
            CacheStatus::Miss => "MISS",
            CacheStatus::Hit => "HIT",
            CacheStatus::Stale => "STALE",
            CacheStatus::Expired => "EXPIRED",
            CacheStatus::Bypass => "BYPASS",
        }
    }
}

/// What a lookup's result means here.
pub fn classify(found: Option<Found>, conf: &CacheConf) -> CacheStatus {
    match found {
        None => CacheStatus::Miss,
        Some(f) if f.age_ms < conf.valid_ms(f.verdict) => CacheStatus::Hit,
        Some(_) => CacheStatus::Expired,
    }
}

/// The verdict to store for the ASE's answer; `None` for an error (nothing is learned).
/// The ASE's 503 "unknown API" lets the request through, as `verdict.rs` says: an allow.
pub fn learned(result: &CheckResult) -> Option<Cached> {
    if result.error() != AseError::None {
        return None;
    }
    match result.status {
        200 | 503 => Some(Cached::Allow),
        403 => Some(Cached::Block),
        _ => None,
    }
}

/// On an ASE error, the answer a stale verdict stands for: a verdict no older than
/// `ase_cache_use_stale` (its age now, `age_ms`). `None`: the fail mode decides.
pub fn stale_answer(result: &CheckResult, found: Option<(Cached, u64)>, conf: &CacheConf) -> Option<CheckResult> {
    if learned(result).is_some() {
        return None;
    }
    let (verdict, age_ms) = found?;
    if conf.use_stale_ms == 0 || age_ms > conf.use_stale_ms {
        return None;
    }
    let status = match verdict {
        Cached::Allow => 200,
        Cached::Block => 403,
    };
    Some(CheckResult::new(status, AseError::None, result.elapsed_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf() -> CacheConf {
        let mut c =
            CacheConf { valid_allow_ms: 1000, valid_block_ms: 10_000, use_stale_ms: 30_000, ..Default::default() };
        c.merge(&CacheConf::default());
        c
    }

    #[test]
    fn hits_within_valid_only() {
        let c = conf();
        let f = |verdict, age_ms| Some(Found { verdict, age_ms });
        assert_eq!(classify(None, &c), CacheStatus::Miss);
        assert_eq!(classify(f(Cached::Allow, 999), &c), CacheStatus::Hit);
        assert_eq!(classify(f(Cached::Allow, 1000), &c), CacheStatus::Expired);
        assert_eq!(classify(f(Cached::Block, 5000), &c), CacheStatus::Hit);
        assert_eq!(classify(f(Cached::Block, 10_000), &c), CacheStatus::Expired);
        let never = CacheConf { valid_allow_ms: 0, ..c };
        assert_eq!(classify(f(Cached::Allow, 0), &never), CacheStatus::Expired);
    }

    #[test]
    fn answers_are_learned_errors_are_not() {
        assert_eq!(learned(&CheckResult::new(200, AseError::None, 1)), Some(Cached::Allow));
        assert_eq!(learned(&CheckResult::new(403, AseError::None, 1)), Some(Cached::Block));
        assert_eq!(learned(&CheckResult::new(503, AseError::None, 1)), Some(Cached::Allow));
        assert_eq!(learned(&CheckResult::new(401, AseError::None, 1)), None);
        assert_eq!(learned(&CheckResult::new(0, AseError::Timeout, 1)), None);
        assert_eq!(learned(&CheckResult::new(0, AseError::Bad503, 1)), None);
    }

    #[test]
    fn stale_within_use_stale_only() {
        let c = conf();
        let err = CheckResult::new(0, AseError::Refused, 3);
        let block = stale_answer(&err, Some((Cached::Block, 29_000)), &c).unwrap();
        assert_eq!((block.status, block.error()), (403, AseError::None));
        assert_eq!(stale_answer(&err, Some((Cached::Allow, 1)), &c).map(|r| r.status), Some(200));
        assert_eq!(stale_answer(&err, Some((Cached::Allow, 30_001)), &c), None);
        assert_eq!(stale_answer(&err, None, &c), None);
        // an answer is never replaced
        assert_eq!(stale_answer(&CheckResult::new(200, AseError::None, 1), Some((Cached::Block, 1)), &c), None);
        // 401 (a bad token) is an error: stale applies
        assert!(stale_answer(&CheckResult::new(401, AseError::None, 1), Some((Cached::Allow, 1)), &c).is_some());
        let off = CacheConf { use_stale_ms: 0, ..c };
        assert_eq!(stale_answer(&err, Some((Cached::Allow, 1)), &off), None);
    }
}
