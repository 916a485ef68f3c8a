//! The brute-force bound: how many codes anyone can try, from anywhere, over any time.
//!
//! Two limits work together:
//!
//! * **Per client IP, escalating lockouts.** After [`LimiterSettings::ip_free_failures`]
//!   consecutive failures an address is locked out, first for `ip_base_lockout`, doubling with
//!   every further failure up to `ip_max_lockout`. A correct code clears the address's count.
//!   This stops a single guesser early and keeps it from spending the global budget.
//! * **Global budget.** Every attempt, from any address, spends one token from a bucket that
//!   holds [`LimiterSettings::global_burst`] tokens and gains one every `global_refill`.
//!   A correct code gives its token back. This is what bounds an attacker with many addresses,
//!   and it is what the arithmetic below rests on.
//!
//! A token is taken *before* the code is checked ([`Limiter::begin`]), so a thousand attempts
//! sent at once cannot all slip past a bucket with one token left.
//!
//! ## The arithmetic (defaults)
//!
//! A guess succeeds with probability at most 3 / 10⁶: three steps' codes are accepted (replay
//! protection can only make it less). In any period of `T` seconds the bucket allows at most
//! `burst + T / refill` failed attempts, whatever the number of addresses or their timing. For
//! one year: 10 + 31 536 000 / 10 800 = 2 930 attempts, so the chance of getting in is at most
//! 1 − (1 − 3·10⁻⁶)^2930 ≈ 0.875 %, below 1 %. The test
//! `simulated_year_of_attacks_stays_below_one_percent` drives the limiter through a simulated year
//! with several strategies and checks the count.
//!
//! The price: while an attack keeps the bucket empty, the owner cannot log in either (already
//! signed-in browsers are not affected). They are told how long to wait, and can lift the
//! lockout locally (`simpleotp unlock`, or Unlock in the tray app), which is why that exists.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Tunables. The defaults are the ones the arithmetic in the module documentation is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimiterSettings {
    pub ip_free_failures: u32,
    pub ip_base_lockout: Duration,
    pub ip_max_lockout: Duration,
    pub global_burst: u32,
    pub global_refill: Duration,
}

impl Default for LimiterSettings {
    fn default() -> Self {
        LimiterSettings {
            ip_free_failures: 5,
            ip_base_lockout: Duration::from_secs(60),
            ip_max_lockout: Duration::from_secs(3600),
            global_burst: 10,
            global_refill: Duration::from_secs(3 * 3600),
        }
    }
}

impl LimiterSettings {
    /// The most attempts the limiter can let through in `period`, from any number of addresses.
    pub fn max_attempts_in(&self, period: Duration) -> u64 {
        self.global_burst as u64 + (period.as_secs() / self.global_refill.as_secs().max(1))
    }
}

/// Which limit refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockScope {
    /// This client address failed too often.
    Client,
    /// Too many failures overall: everyone waits.
    Everyone,
}

/// An attempt was refused before the code was even looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked {
    pub scope: LockScope,
    pub retry_after: Duration,
}

/// Permission to check one code. Hand it back through [`Limiter::succeeded`] when the code was
/// right; a failure needs no call (it was counted up front).
#[derive(Debug)]
#[must_use]
pub struct Attempt {
    ip: IpAddr,
    /// Set when this attempt, if it fails, is the one that started a lockout.
    pub lockout_started: Option<Locked>,
}

/// A failed attempt, for "recent failed attempts" in the UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedAttempt {
    pub ip: IpAddr,
    /// Seconds since the Unix epoch (for display).
    pub at_unix: u64,
}

/// What the UI shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimiterStatus {
    pub everyone_locked_for: Option<Duration>,
    pub locked_clients: Vec<(IpAddr, Duration)>,
    pub recent_failures: Vec<FailedAttempt>,
}

#[derive(Debug, Clone, Copy)]
struct ClientRecord {
    consecutive_failures: u32,
    locked_until: Option<Instant>,
    last_attempt: Instant,
}

/// Kept for the UI; older entries are dropped.
const RECENT_FAILURES_KEPT: usize = 50;
/// Client records unused for this long are forgotten (their lockouts have long expired).
const FORGET_CLIENT_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The limiter's state. Times are passed in (monotonic `Instant`s) so tests can simulate a year
/// in milliseconds; the server passes `Instant::now()`.
#[derive(Debug)]
pub struct Limiter {
    settings: LimiterSettings,
    clients: HashMap<IpAddr, ClientRecord>,
    /// Tokens in the global bucket, as of `refilled_at`. Fractional so refill is exact.
    tokens: f64,
    refilled_at: Instant,
    recent_failures: VecDeque<FailedAttempt>,
}

impl Limiter {
    pub fn new(settings: LimiterSettings, now: Instant) -> Limiter {
        Limiter {
            settings,
            clients: HashMap::new(),
            tokens: settings.global_burst as f64,
            refilled_at: now,
            recent_failures: VecDeque::new(),
        }
    }

    pub fn settings(&self) -> LimiterSettings {
        self.settings
    }

    /// Asks to check one code from `ip`. Counts the attempt as a failure until told otherwise.
    pub fn begin(&mut self, ip: IpAddr, now: Instant, now_unix: u64) -> Result<Attempt, Locked> {
        self.refill(now);
        if let Some(record) = self.clients.get(&ip) {
            if let Some(until) = record.locked_until.filter(|until| *until > now) {
                return Err(Locked { scope: LockScope::Client, retry_after: until - now });
            }
        }
        if self.tokens < 1.0 {
            return Err(Locked { scope: LockScope::Everyone, retry_after: self.time_to_next_token() });
        }
        self.tokens -= 1.0;

        if self.clients.len() > 10_000 {
            self.forget_old_clients(now);
        }
        let settings = self.settings;
        let record = self.clients.entry(ip).or_insert(ClientRecord { consecutive_failures: 0, locked_until: None, last_attempt: now });
        record.consecutive_failures += 1;
        record.last_attempt = now;
        let mut lockout_started = None;
        if record.consecutive_failures >= settings.ip_free_failures {
            let doublings = record.consecutive_failures - settings.ip_free_failures;
            let lockout = settings
                .ip_base_lockout
                .checked_mul(1u32 << doublings.min(20))
                .unwrap_or(settings.ip_max_lockout)
                .min(settings.ip_max_lockout);
            record.locked_until = Some(now + lockout);
            lockout_started = Some(Locked { scope: LockScope::Client, retry_after: lockout });
        }
        if lockout_started.is_none() && self.tokens < 1.0 {
            lockout_started = Some(Locked { scope: LockScope::Everyone, retry_after: self.time_to_next_token() });
        }

        self.recent_failures.push_back(FailedAttempt { ip, at_unix: now_unix });
        while self.recent_failures.len() > RECENT_FAILURES_KEPT {
            self.recent_failures.pop_front();
        }
        Ok(Attempt { ip, lockout_started })
    }

    /// The code was right: refund the token and clear the address's record.
    pub fn succeeded(&mut self, attempt: Attempt, now: Instant) {
        self.refill(now);
        self.tokens = (self.tokens + 1.0).min(self.settings.global_burst as f64);
        self.clients.remove(&attempt.ip);
        // The attempt was provisionally listed as a failure; it was not one.
        if let Some(pos) = self.recent_failures.iter().rposition(|f| f.ip == attempt.ip) {
            self.recent_failures.remove(pos);
        }
    }

    /// Whether `ip` would be refused right now, without spending anything (for the login page).
    pub fn peek(&mut self, ip: IpAddr, now: Instant) -> Option<Locked> {
        self.refill(now);
        if let Some(until) = self.clients.get(&ip).and_then(|r| r.locked_until).filter(|u| *u > now) {
            return Some(Locked { scope: LockScope::Client, retry_after: until - now });
        }
        (self.tokens < 1.0).then(|| Locked { scope: LockScope::Everyone, retry_after: self.time_to_next_token() })
    }

    /// The owner lifts every lockout: all client records are cleared and the bucket refilled.
    pub fn unlock(&mut self, now: Instant) {
        self.clients.clear();
        self.tokens = self.settings.global_burst as f64;
        self.refilled_at = now;
    }

    pub fn status(&mut self, now: Instant) -> LimiterStatus {
        self.refill(now);
        let mut locked_clients: Vec<(IpAddr, Duration)> = self
            .clients
            .iter()
            .filter_map(|(ip, r)| r.locked_until.filter(|u| *u > now).map(|u| (*ip, u - now)))
            .collect();
        locked_clients.sort();
        LimiterStatus {
            everyone_locked_for: (self.tokens < 1.0).then(|| self.time_to_next_token()),
            locked_clients,
            recent_failures: self.recent_failures.iter().rev().cloned().collect(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled_at);
        let gained = elapsed.as_secs_f64() / self.settings.global_refill.as_secs_f64();
        self.tokens = (self.tokens + gained).min(self.settings.global_burst as f64);
        self.refilled_at = now;
    }

    fn time_to_next_token(&self) -> Duration {
        let missing = (1.0 - self.tokens).max(0.0);
        // Round up to whole seconds: "try again in 0 s" helps nobody.
        Duration::from_secs((missing * self.settings.global_refill.as_secs_f64()).ceil() as u64)
    }

    fn forget_old_clients(&mut self, now: Instant) {
        self.clients.retain(|_, r| {
            now.saturating_duration_since(r.last_attempt) < FORGET_CLIENT_AFTER || r.locked_until.is_some_and(|u| u > now)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    #[test]
    fn one_client_gets_escalating_lockouts() {
        let t0 = Instant::now();
        let mut limiter = Limiter::new(LimiterSettings { global_burst: 1000, ..Default::default() }, t0);
        let a = ip(1);
        for _ in 0..4 {
            assert!(limiter.begin(a, t0, 0).unwrap().lockout_started.is_none());
        }
        let fifth = limiter.begin(a, t0, 0).unwrap();
        assert_eq!(fifth.lockout_started, Some(Locked { scope: LockScope::Client, retry_after: Duration::from_secs(60) }));
        let locked = limiter.begin(a, t0 + Duration::from_secs(30), 0).unwrap_err();
        assert_eq!(locked, Locked { scope: LockScope::Client, retry_after: Duration::from_secs(30) });
        // Another address is not affected.
        assert!(limiter.begin(ip(2), t0, 0).is_ok());
        // After the first lockout, the next failure locks for twice as long.
        let t1 = t0 + Duration::from_secs(61);
        assert_eq!(limiter.begin(a, t1, 0).unwrap().lockout_started.unwrap().retry_after, Duration::from_secs(120));
        // The doubling stops at the maximum.
        let mut t = t1;
        for _ in 0..10 {
            t += Duration::from_secs(3601);
            let d = limiter.begin(a, t, 0).unwrap().lockout_started.unwrap().retry_after;
            assert!(d <= Duration::from_secs(3600));
        }
    }

    #[test]
    fn success_clears_the_client_and_refunds_the_token() {
        let t0 = Instant::now();
        let mut limiter = Limiter::new(LimiterSettings::default(), t0);
        for _ in 0..3 {
            let _ = limiter.begin(ip(1), t0, 0).unwrap();
        }
        let ok = limiter.begin(ip(1), t0, 0).unwrap();
        limiter.succeeded(ok, t0);
        // Four attempts, one refunded: three tokens spent.
        assert_eq!(limiter.status(t0).recent_failures.len(), 3);
        for _ in 0..4 {
            assert!(limiter.begin(ip(1), t0, 0).unwrap().lockout_started.is_none(), "count was reset");
        }
    }

    #[test]
    fn many_addresses_share_the_global_budget() {
        let t0 = Instant::now();
        let mut limiter = Limiter::new(LimiterSettings::default(), t0);
        for n in 0..10 {
            let attempt = limiter.begin(ip(n), t0, 0).unwrap();
            assert_eq!(attempt.lockout_started.map(|l| l.scope), (n == 9).then_some(LockScope::Everyone));
        }
        let locked = limiter.begin(ip(99), t0, 0).unwrap_err();
        assert_eq!(locked.scope, LockScope::Everyone);
        assert_eq!(locked.retry_after, Duration::from_secs(3 * 3600));
        assert_eq!(limiter.peek(ip(100), t0).map(|l| l.scope), Some(LockScope::Everyone));
        // One token back after the refill interval.
        let later = t0 + Duration::from_secs(3 * 3600);
        assert!(limiter.begin(ip(99), later, 0).is_ok());
        assert!(limiter.begin(ip(98), later, 0).is_err());
    }

    #[test]
    fn unlock_lifts_everything() {
        let t0 = Instant::now();
        let mut limiter = Limiter::new(LimiterSettings::default(), t0);
        // One client locked out on its own...
        for _ in 0..5 {
            let _ = limiter.begin(ip(1), t0, 0).unwrap();
        }
        assert_eq!(limiter.begin(ip(1), t0, 0).unwrap_err().scope, LockScope::Client);
        // ...and then everyone, by many addresses.
        for n in 10..20 {
            let _ = limiter.begin(ip(n), t0, 0);
        }
        assert_eq!(limiter.begin(ip(2), t0, 0).unwrap_err().scope, LockScope::Everyone);
        limiter.unlock(t0);
        let status = limiter.status(t0);
        assert!(status.everyone_locked_for.is_none() && status.locked_clients.is_empty());
        assert!(limiter.begin(ip(1), t0, 0).is_ok());
        assert!(limiter.begin(ip(2), t0, 0).is_ok());
    }

    #[test]
    fn status_lists_lockouts_and_recent_failures() {
        let t0 = Instant::now();
        let mut limiter = Limiter::new(LimiterSettings::default(), t0);
        for _ in 0..5 {
            let _ = limiter.begin(ip(7), t0, 42);
        }
        let status = limiter.status(t0);
        assert_eq!(status.locked_clients, vec![(ip(7), Duration::from_secs(60))]);
        assert_eq!(status.recent_failures.len(), 5);
        assert_eq!(status.recent_failures[0], FailedAttempt { ip: ip(7), at_unix: 42 });
    }

    /// An attacker guesses for a simulated year. Whatever the strategy, the number of codes
    /// actually checked stays within the stated bound, and the chance that one of them was right
    /// stays below 1 %. The simulation is event-driven: the attacker retries at the exact moment
    /// a lockout ends (the most aggressive timing there is) and switches address whenever only
    /// its own address is locked and it has others.
    #[test]
    fn simulated_year_of_attacks_stays_below_one_percent() {
        let year = Duration::from_secs(365 * 24 * 3600);
        let settings = LimiterSettings::default();
        let bound = settings.max_attempts_in(year);
        assert_eq!(bound, 2930);

        // (name, number of addresses (0 = unlimited), pause between attempts)
        let strategies = [
            ("unlimited addresses, non-stop", 0u32, Duration::from_millis(100)),
            ("single address, non-stop", 1, Duration::from_millis(100)),
            ("50 addresses in turn", 50, Duration::from_secs(1)),
            ("unlimited addresses, slow and steady", 0, Duration::from_secs(3600)),
        ];
        for (name, addresses, pause) in strategies {
            let t0 = Instant::now();
            let mut limiter = Limiter::new(settings, t0);
            let (mut checked, mut refused, mut who) = (0u64, 0u64, 0u32);
            let mut t = Duration::ZERO;
            while t < year {
                let address = if addresses == 0 { who } else { who % addresses };
                match limiter.begin(ip(address), t0 + t, t.as_secs()) {
                    Ok(_) => {
                        checked += 1;
                        t += pause;
                    }
                    Err(locked) => {
                        refused += 1;
                        if locked.scope == LockScope::Client && addresses != 1 {
                            who += 1;
                        } else {
                            t += locked.retry_after.max(Duration::from_millis(1));
                        }
                    }
                }
                if addresses == 0 {
                    who += 1;
                }
            }
            let p_success = 1.0 - (1.0 - 3e-6f64).powf(checked as f64);
            assert!(checked <= bound, "{name}: {checked} codes checked, bound is {bound}");
            assert!(p_success < 0.01, "{name}: P = {p_success}");
            assert!(checked > 100 && refused > 0, "{name}: the simulation must really attack ({checked} checked, {refused} refused)");
        }
    }
}
