//! `ase_latency_guard P99 [window=T]`: a group whose checks have been slow stops holding
//! clients for them. Per worker and per group, each check's time feeds a tumbling window of
//! `window`; when a window closes with enough checks, its p99 (nearest rank) against the
//! threshold decides: above it the group is degraded (its checks go on as with `ase_request
//! monitor`), at or below it the group is normal again. Two counters per window: recording a
//! check is two additions and a comparison, nothing is allocated. p99 > T exactly when more
//! checks than the 1 % allowance took longer than T, so no histogram is needed to decide.

/// Fewer checks than this in a window decide nothing (the state stays): the p99 of a handful
/// of checks is their slowest one.
pub const MIN_CHECKS: u64 = 10;
/// `window=` when not given.
pub const DEFAULT_WINDOW_MS: u64 = 10_000;

/// The directive's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuardConf {
    /// The p99 above which the group is slow, in milliseconds.
    pub p99_ms: u64,
    pub window_ms: u64,
}

/// What closing a window changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    None,
    /// Slow: `slow` of `checks` in the window took longer than the threshold.
    Entered {
        slow: u64,
        checks: u64,
    },
    Left {
        slow: u64,
        checks: u64,
    },
}

#[derive(Clone, Debug)]
pub struct LatencyGuard {
    conf: GuardConf,
    window_start: u64,
    checks: u64,
    /// Checks of this window that took longer than `p99_ms`.
    slow: u64,
    degraded: bool,
}

impl LatencyGuard {
    pub fn new(conf: GuardConf, now: u64) -> Self {
        LatencyGuard { conf, window_start: now, checks: 0, slow: 0, degraded: false }
    }

    pub fn conf(&self) -> GuardConf {
        self.conf
    }

    pub fn degraded(&self) -> bool {
        self.degraded
    }

    /// A check of the group took `ms`, at `now`.
    pub fn record(&mut self, ms: u64, now: u64) -> Change {
        let change = self.roll(now);
        self.checks += 1;
        self.slow += u64::from(ms > self.conf.p99_ms);
        change
    }

    /// Closes the window when its time is over (asked before each decision, so a window
    /// closes even when the next check comes late).
    pub fn roll(&mut self, now: u64) -> Change {
        if now < self.window_start.saturating_add(self.conf.window_ms) {
            return Change::None;
        }
        let (checks, slow) = (core::mem::take(&mut self.checks), core::mem::take(&mut self.slow));
        self.window_start = now;
        if checks < MIN_CHECKS {
            return Change::None;
        }
        let over = p99_above(slow, checks);
        match (self.degraded, over) {
            (false, true) => {
                self.degraded = true;
                Change::Entered { slow, checks }
            }
            (true, false) => {
                self.degraded = false;
                Change::Left { slow, checks }
            }
            _ => Change::None,
        }
    }
}

/// Whether the nearest-rank p99 of `checks` values is above the threshold, `slow` of them
/// being above it: the p99 is the `ceil(0.99 n)`-th smallest, above the threshold exactly
/// when fewer than that many are at or below it.
fn p99_above(slow: u64, checks: u64) -> bool {
    let rank = (checks * 99).div_ceil(100);
    checks - slow < rank
}

/// Parses `P99 [window=T]` (times as nginx writes them) with `parse_ms` for each time.
pub fn parse(args: &[&[u8]], parse_ms: impl Fn(&[u8]) -> Option<u64>) -> Result<GuardConf, String> {
    let (p99, rest) = args.split_first().ok_or("no threshold")?;
    let p99_ms = parse_ms(p99)
        .filter(|&ms| ms > 0)
        .ok_or_else(|| format!("invalid threshold \"{}\" (a time such as 250ms)", String::from_utf8_lossy(p99)))?;
    let mut window_ms = DEFAULT_WINDOW_MS;
    for arg in rest {
        let value = arg
            .strip_prefix(b"window=")
            .ok_or_else(|| format!("invalid parameter \"{}\" (window=TIME)", String::from_utf8_lossy(arg)))?;
        window_ms = parse_ms(value).filter(|&ms| ms >= 100).ok_or_else(|| {
            format!("invalid window \"{}\" (a time of 100ms or more)", String::from_utf8_lossy(value))
        })?;
    }
    Ok(GuardConf { p99_ms, window_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: GuardConf = GuardConf { p99_ms: 250, window_ms: 1000 };

    fn window(g: &mut LatencyGuard, start: u64, times: &[u64]) {
        for (i, &ms) in times.iter().enumerate() {
            assert_eq!(g.record(ms, start + i as u64), Change::None, "inside the window");
        }
    }

    #[test]
    fn p99_is_nearest_rank() {
        assert!(!p99_above(1, 100), "1 slow in 100: the p99 is the 99th, fast");
        assert!(p99_above(2, 100));
        assert!(!p99_above(0, 10));
        assert!(p99_above(1, 10), "1 in 10: the p99 of 10 is the slowest");
        assert!(!p99_above(2, 200) && p99_above(3, 200));
    }

    #[test]
    fn enters_after_a_slow_window_and_leaves_after_a_fast_one() {
        let mut g = LatencyGuard::new(CONF, 0);
        window(&mut g, 0, &[10; 20]);
        assert_eq!(g.roll(1000), Change::None);
        assert!(!g.degraded());
        let mut slow = [10; 20];
        slow[3] = 300;
        window(&mut g, 1000, &slow);
        assert_eq!(g.roll(2000), Change::Entered { slow: 1, checks: 20 });
        assert!(g.degraded());
        window(&mut g, 2000, &[900; 30]);
        assert_eq!(g.roll(3000), Change::None, "still slow: no second change");
        window(&mut g, 3000, &[250; 30]);
        assert_eq!(g.roll(4000), Change::Left { slow: 0, checks: 30 }, "at the threshold is not above it");
        assert!(!g.degraded());
    }

    #[test]
    fn a_window_of_few_checks_changes_nothing() {
        let mut g = LatencyGuard::new(CONF, 0);
        window(&mut g, 0, &[900; (MIN_CHECKS - 1) as usize]);
        assert_eq!(g.roll(1000), Change::None);
        assert!(!g.degraded());
        window(&mut g, 1000, &[900; MIN_CHECKS as usize]);
        // The first check after the window closes it.
        assert_eq!(g.record(5, 2500), Change::Entered { slow: 10, checks: 10 });
        window(&mut g, 2501, &[5; 3]);
        assert_eq!(g.roll(9000), Change::None, "a quiet window keeps the state");
        assert!(g.degraded());
    }

    #[test]
    fn parses_threshold_and_window() {
        let ms = |v: &[u8]| match v {
            b"250ms" => Some(250),
            b"5s" => Some(5000),
            b"50ms" => Some(50),
            b"0" => Some(0),
            _ => None,
        };
        assert_eq!(parse(&[b"250ms"], ms), Ok(GuardConf { p99_ms: 250, window_ms: DEFAULT_WINDOW_MS }));
        assert_eq!(parse(&[b"250ms", b"window=5s"], ms), Ok(GuardConf { p99_ms: 250, window_ms: 5000 }));
        assert!(parse(&[b"fast"], ms).unwrap_err().contains("invalid threshold \"fast\""));
        assert!(parse(&[b"0"], ms).is_err());
        assert!(parse(&[b"250ms", b"span=5s"], ms).unwrap_err().contains("invalid parameter \"span=5s\""));
        assert!(parse(&[b"250ms", b"window=50ms"], ms).unwrap_err().contains("invalid window"));
    }
}
