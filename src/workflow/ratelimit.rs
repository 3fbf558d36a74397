//! Per-person limits: a token bucket per key, in memory, per replica (with two
//! replicas behind a load balancer a person gets up to twice the rate). The
//! workflow keeps one for creating requests (every entry point draws on it,
//! keyed by `requestedBy`), one for suggestions, and one for how many refusals
//! of one actor are written to the system log.
//!
//! Requests default to [`DEFAULT_BURST`] at once, refilled at that many per
//! [`DEFAULT_PERIOD`]; `ACCESSBOT_REQUEST_RATE` changes it (`20/1m`, `5/30s`) or
//! turns it off (`off`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Requests a user may create at once, and per [`DEFAULT_PERIOD`].
pub const DEFAULT_BURST: u32 = 10;
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(60);
/// Memory is bounded: when the number of tracked users reaches a threshold
/// (first this, then twice what the last sweep kept), buckets untouched for a
/// whole period (full again, so they carry nothing) are dropped; at
/// [`MAX_TRACKED`] the least recently used half goes too (those users start
/// afresh: the only way the limit is ever lenient).
const SWEEP_AT: usize = 10_000;
const MAX_TRACKED: usize = 100_000;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// What a successful [`RateLimiter::take_at`] leaves: whole tokens, and when the bucket is full again.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Left {
    pub remaining: u32,
    pub full_in: Duration,
}

/// A token bucket per key.
#[derive(Debug)]
pub struct RateLimiter {
    /// `None`: no limit.
    rate: Option<(u32, Duration)>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    buckets: HashMap<String, Bucket>,
    next_sweep: usize,
}

impl State {
    fn new() -> Mutex<State> {
        Mutex::new(State { buckets: HashMap::new(), next_sweep: SWEEP_AT })
    }

    fn sweep(&mut self, now: Instant, period: Duration) {
        self.buckets.retain(|_, b| now.saturating_duration_since(b.at) < period);
        if self.buckets.len() >= MAX_TRACKED {
            let mut ages: Vec<Instant> = self.buckets.values().map(|b| b.at).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            self.buckets.retain(|_, b| b.at > cut);
        }
        self.next_sweep = (2 * self.buckets.len()).clamp(SWEEP_AT, MAX_TRACKED);
    }
}

/// Parses `N/DURATION` (`10/1m`, `5/30s`, `100/1h`); `off`, `none`, `0` mean no limit.
pub fn parse(s: &str) -> Result<Option<(u32, Duration)>, String> {
    let s = s.trim();
    if ["off", "none", "0", "unlimited"].iter().any(|w| s.eq_ignore_ascii_case(w)) {
        return Ok(None);
    }
    let bad = || format!("\"{s}\" is not a rate: write e.g. 10/1m (10 per minute per person), or off");
    let (n, per) = s.split_once('/').ok_or_else(bad)?;
    let n: u32 = n.trim().parse().map_err(|_| bad())?;
    let per = humantime::parse_duration(per.trim()).map_err(|_| bad())?;
    if n == 0 || per.is_zero() {
        return Err(bad());
    }
    Ok(Some((n, per)))
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter::new(DEFAULT_BURST, DEFAULT_PERIOD)
    }
}

impl RateLimiter {
    /// `burst` requests at once, refilled at `burst` per `period`.
    pub fn new(burst: u32, period: Duration) -> RateLimiter {
        RateLimiter { rate: Some((burst.max(1), period)), state: State::new() }
    }

    pub fn unlimited() -> RateLimiter {
        RateLimiter { rate: None, state: State::new() }
    }

    /// From a parsed rate (`None`: unlimited).
    pub fn from_rate(rate: Option<(u32, Duration)>) -> RateLimiter {
        match rate {
            Some((n, per)) => RateLimiter::new(n, per),
            None => RateLimiter::unlimited(),
        }
    }

    /// `(burst, period)`, or `None` when unlimited.
    pub fn rate(&self) -> Option<(u32, Duration)> {
        self.rate
    }

    /// Takes a token for `key`, or says how long until one is available.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    pub fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        self.take_at(key, now).map(|_| ())
    }

    /// Takes a token for `key`: `Ok` with what is left, or how long until one is available.
    pub fn take_at(&self, key: &str, now: Instant) -> Result<Left, Duration> {
        let Some((burst, period)) = self.rate else {
            return Ok(Left { remaining: u32::MAX, full_in: Duration::ZERO });
        };
        let capacity = f64::from(burst);
        let per_token = period.as_secs_f64() / capacity;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.buckets.len() >= state.next_sweep && !state.buckets.contains_key(key) {
            state.sweep(now, period);
        }
        let b = state.buckets.entry(key.to_string()).or_insert(Bucket { tokens: capacity, at: now });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed / per_token).min(capacity);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            let full_in = Duration::from_secs_f64((capacity - b.tokens) * per_token);
            Ok(Left { remaining: b.tokens.floor() as u32, full_in })
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) * per_token))
        }
    }

    /// How many users are tracked (tests).
    pub fn tracked(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).buckets.len()
    }
}

/// Whole seconds to tell a caller to wait (rounded up, at least 1).
pub fn retry_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_per_interval() {
        let l = RateLimiter::new(10, Duration::from_secs(60));
        let t0 = Instant::now();
        for _ in 0..10 {
            assert!(l.check_at("U1", t0).is_ok());
        }
        let wait = l.check_at("U1", t0).unwrap_err();
        assert!(wait > Duration::from_secs(5) && wait <= Duration::from_secs(6), "{wait:?}");
        assert_eq!(retry_secs(wait), 6);
        // Other users are not affected.
        assert!(l.check_at("U2", t0).is_ok());
        // One token back after 6 s, not two.
        let t1 = t0 + Duration::from_secs(6);
        assert!(l.check_at("U1", t1).is_ok());
        assert!(l.check_at("U1", t1).is_err());
        // Full again after a minute, never more than the burst.
        let t2 = t1 + Duration::from_secs(600);
        for _ in 0..10 {
            assert!(l.check_at("U1", t2).is_ok());
        }
        assert!(l.check_at("U1", t2).is_err());
    }

    #[test]
    fn take_reports_what_is_left() {
        let l = RateLimiter::new(4, Duration::from_secs(60));
        let t0 = Instant::now();
        let first = l.take_at("k", t0).unwrap();
        assert_eq!(first.remaining, 3);
        assert_eq!(first.full_in, Duration::from_secs(15));
        for left in [2, 1, 0] {
            assert_eq!(l.take_at("k", t0).unwrap().remaining, left);
        }
        assert_eq!(l.take_at("k", t0).unwrap_err(), Duration::from_secs(15));
    }

    #[test]
    fn unlimited_and_parsing() {
        let l = RateLimiter::unlimited();
        let t = Instant::now();
        for _ in 0..1000 {
            assert!(l.check_at("U1", t).is_ok());
        }
        assert_eq!(l.tracked(), 0);
        assert_eq!(parse("10/1m").unwrap(), Some((10, Duration::from_secs(60))));
        assert_eq!(parse(" 5 / 30s ").unwrap(), Some((5, Duration::from_secs(30))));
        assert_eq!(parse("off").unwrap(), None);
        assert_eq!(parse("0").unwrap(), None);
        for bad in ["10", "ten/1m", "10/soon", "0/1m", "10/0s", "-1/1m"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(retry_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_secs(Duration::ZERO), 1);
        assert_eq!(retry_secs(Duration::from_secs(3)), 3);
    }

    #[test]
    fn memory_stays_bounded() {
        let l = RateLimiter::new(10, Duration::from_secs(3600));
        let t0 = Instant::now();
        // All within one period: nothing refills, so only the hard cap bounds the map.
        for i in 0..(MAX_TRACKED + MAX_TRACKED / 2) {
            let _ = l.check_at(&format!("U{i}"), t0 + Duration::from_micros(i as u64));
        }
        assert!(l.tracked() <= MAX_TRACKED, "{}", l.tracked());
        // The most recent users are still limited.
        let last = format!("U{}", MAX_TRACKED + MAX_TRACKED / 2 - 1);
        let t1 = t0 + Duration::from_secs(1);
        for _ in 0..9 {
            assert!(l.check_at(&last, t1).is_ok());
        }
        assert!(l.check_at(&last, t1).is_err());

        // Buckets idle for a whole period are dropped at the next sweep.
        let l = RateLimiter::new(10, Duration::from_secs(60));
        for i in 0..SWEEP_AT {
            let _ = l.check_at(&format!("U{i}"), t0);
        }
        assert_eq!(l.tracked(), SWEEP_AT);
        let _ = l.check_at("U-new", t0 + Duration::from_secs(120));
        assert_eq!(l.tracked(), 1);
    }
}
