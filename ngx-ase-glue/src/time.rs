//! nginx's time syntax, in plain Rust: `ngx_parse_time` of `src/core/ngx_parse.c` (nginx
//! 1.22 to 1.28), so that a time nginx's own slot functions would refuse is refused here too,
//! and the bound our timers need. The unit tests pin nginx's accept/refuse set.
//!
//! nginx's rules: a number and a unit, repeated, units from the largest to the smallest and
//! each once (`1m30s`, not `1s1m`, not `1s1s`): `y` (365 d), `M` (30 d), `w`, `d`, `h`, `m`,
//! `s`, and `ms` where milliseconds are allowed (`y` and `M` only where they are not); a
//! bare number at the end is seconds; spaces may follow a unit, and one space may end a bare
//! number that more follows (`1 1` is 2 s, as nginx reads it). Every sum and product is
//! checked against `NGX_MAX_INT_T_VALUE`.

/// `NGX_MAX_INT_T_VALUE` on the 64-bit platforms the modules are built for.
const MAX: u64 = i64::MAX as u64;

/// `NGX_MAX_INT32_VALUE` milliseconds (24 days, 20 h): the longest timer we arm. nginx hands
/// the nearest timer to `epoll_wait` as an `int`, so a longer one would wrap there (2^32 ms
/// reads as 0: a busy loop; 2^31 ms as "no timeout").
pub const MAX_TIMER_MS: u64 = 0x7fff_ffff;

/// Why nginx refuses a time (it says only "invalid value"; we say which).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeError {
    Syntax,
    /// More than `NGX_MAX_INT_T_VALUE` of the result's unit.
    TooLarge,
}

/// `ngx_parse_time(line, 0)`: milliseconds, `ms` allowed, a bare number in seconds. The
/// parser of nginx's `ngx_conf_set_msec_slot` (`proxy_read_timeout`, `ase_timeout`).
pub fn parse_msec(raw: &[u8]) -> Result<u64, TimeError> {
    parse(raw, false)
}

/// `ngx_parse_time(line, 1)`: seconds, no `ms`. The parser of `ngx_conf_set_sec_slot` and of
/// nginx's upstream `fail_timeout=`.
pub fn parse_sec(raw: &[u8]) -> Result<u64, TimeError> {
    parse(raw, true)
}

/// The largest time `parse_msec` takes, as written in messages.
pub const MAX_MSEC_TEXT: &str = "9223372036854775807ms";

/// The units in the order nginx requires them (`Step` of `ngx_parse_time`).
#[derive(Clone, Copy, PartialEq, PartialOrd)]
enum Step {
    Start,
    Year,
    Month,
    Week,
    Day,
    Hour,
    Min,
    Sec,
    Msec,
    Last,
}

fn parse(raw: &[u8], is_sec: bool) -> Result<u64, TimeError> {
    use TimeError::{Syntax, TooLarge};
    let within = |v: Option<u64>| v.filter(|&v| v <= MAX).ok_or(TooLarge);
    let mut step = if is_sec { Step::Start } else { Step::Month };
    let (mut valid, mut value, mut total) = (false, 0u64, 0u64);
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        i += 1;
        if c.is_ascii_digit() {
            value = within(value.checked_mul(10).and_then(|v| v.checked_add(u64::from(c - b'0'))))?;
            valid = true;
            continue;
        }
        let (next, seconds) = match c {
            // Years only in seconds mode, and first (milliseconds mode starts at months).
            b'y' if step > Step::Start => return Err(Syntax),
            b'y' => (Step::Year, 60 * 60 * 24 * 365),
            b'M' => (Step::Month, 60 * 60 * 24 * 30),
            b'w' => (Step::Week, 60 * 60 * 24 * 7),
            b'd' => (Step::Day, 60 * 60 * 24),
            b'h' => (Step::Hour, 60 * 60),
            b'm' if raw.get(i) == Some(&b's') => {
                if is_sec || step >= Step::Msec {
                    return Err(Syntax);
                }
                i += 1;
                (Step::Msec, 0)
            }
            b'm' => (Step::Min, 60),
            b's' => (Step::Sec, 1),
            b' ' if step >= Step::Sec => return Err(Syntax),
            b' ' => (Step::Last, 1),
            _ => return Err(Syntax),
        };
        if next != Step::Year && next != Step::Msec && step >= next {
            return Err(Syntax);
        }
        step = next;
        let scale = match (next, is_sec) {
            (Step::Msec, _) => 1,
            (_, true) => seconds,
            (_, false) => seconds * 1000,
        };
        total = within(value.checked_mul(scale).and_then(|v| total.checked_add(v)))?;
        value = 0;
        while raw.get(i) == Some(&b' ') {
            i += 1;
        }
    }
    if !valid {
        return Err(Syntax);
    }
    let last = if is_sec { Some(value) } else { value.checked_mul(1000) };
    within(last.and_then(|v| total.checked_add(v)))
}

/// `"DIRECTIVE" must be at most 2147483647ms (24 days), not "VALUE"`, in the words of
/// nginx's range messages; nginx adds the file and line.
pub fn timer_too_long(directive: &str, raw: &[u8]) -> String {
    format!("\"{directive}\" must be at most {MAX_TIMER_MS}ms (24 days), not \"{}\"", String::from_utf8_lossy(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_nginx_accepts() {
        for (raw, ms) in [
            (&b"0"[..], 0),
            (b"7", 7_000),
            (b"500ms", 500),
            (b"1s", 1_000),
            (b"1m30s", 90_000),
            (b"1m 30s", 90_000),
            (b"1h1m1s1ms", 3_661_001),
            (b"1d2h", 93_600_000),
            (b"2w", 1_209_600_000),
            (b"1w1d1h1m1s1ms", 694_861_001),
            (b"1m30", 90_000),
            (b"1s 5", 6_000),
            (b"1s 1", 2_000),
            (b"1 1", 2_000),
            (b"5 ", 5_000),
            (b" 5", 5_000),
            (b"1ms ", 1),
            (b"007s", 7_000),
            (b"9223372036854775807ms", 9_223_372_036_854_775_807),
            (b"9223372036854775s", 9_223_372_036_854_775_000),
            (b"9223372036854775", 9_223_372_036_854_775_000),
        ] {
            assert_eq!(parse_msec(raw), Ok(ms), "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn what_nginx_refuses() {
        for raw in [
            &b""[..],
            b"s",
            b"ms",
            b" ",
            b"1s1m",
            b"1s1s",
            b"1m1m",
            b"1ms1s",
            b"1ms1ms",
            b"1h1d",
            b"1w2w",
            b"1y",
            b"1M",
            b"1M1y",
            b"1 1 1",
            b"1 1s",
            b"1 1ms",
            b"5x",
            b"-1",
            b"+1",
            b"1.5s",
            b"1S",
            b"1\t",
        ] {
            assert_eq!(parse_msec(raw), Err(TimeError::Syntax), "{:?}", String::from_utf8_lossy(raw));
        }
        for raw in [
            &b"18446744073709551s"[..],
            b"9223372036854775808ms",
            b"9223372036854776s",
            b"9223372036854776",
            b"99999999999999999999",
            b"99999999999999999999999999999ms",
            b"9223372036854775807ms1",
            b"106751991168d",
            b"106751991167d8h",
        ] {
            assert_eq!(parse_msec(raw), Err(TimeError::TooLarge), "{:?}", String::from_utf8_lossy(raw));
        }
        assert_eq!(MAX_MSEC_TEXT.as_bytes(), b"9223372036854775807ms");
        assert_eq!(parse_msec(MAX_MSEC_TEXT.as_bytes()), Ok(i64::MAX as u64));
    }

    #[test]
    fn seconds_mode_takes_years_and_refuses_milliseconds() {
        assert_eq!(parse_sec(b"1y1M"), Ok(31_536_000 + 2_592_000));
        assert_eq!(parse_sec(b"10"), Ok(10));
        assert_eq!(parse_sec(b"1m30s"), Ok(90));
        assert_eq!(parse_sec(b"18446744073709551s"), Ok(18_446_744_073_709_551));
        for raw in [&b"500ms"[..], b"1y1y", b"1s1m", b"1 1 1"] {
            assert_eq!(parse_sec(raw), Err(TimeError::Syntax), "{:?}", String::from_utf8_lossy(raw));
        }
        assert_eq!(parse_sec(b"9223372036854775808"), Err(TimeError::TooLarge));
    }

    #[test]
    fn the_timer_bound_is_nginxs_int32() {
        assert_eq!(MAX_TIMER_MS, i32::MAX as u64);
        assert_eq!(
            timer_too_long("ase_timeout", b"30d"),
            "\"ase_timeout\" must be at most 2147483647ms (24 days), not \"30d\""
        );
    }
}
