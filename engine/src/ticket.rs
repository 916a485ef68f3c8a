//! Unlock tickets: how the owner signs in while the global attempt budget is empty, without
//! giving anyone else more guesses.
//!
//! Refilling the bucket on "unlock" would hand whoever keeps it empty a fresh batch of tries
//! each time (see [`crate::limiter`]). Instead, unlocking (`simpleotp unlock`, the tray app's
//! Unlock) issues a ticket: 256 random bits, shown once as a login link
//! (`<prefix>login?ticket=…`), kept only as a SHA-256 hash, valid for [`TICKET_LIFETIME`].
//! A login form that carries it skips the budget, for at most [`TICKET_ATTEMPTS`] codes (a
//! typo, a code that rolled over); the first right code uses it up, and so does the last wrong
//! one. Only whoever can read the 0600 control file can get one, i.e. the owner, so the
//! attacker's bound does not change; should a link leak (history, a shoulder), it is worth at
//! most [`TICKET_ATTEMPTS`] guesses for ten minutes.
//!
//! One ticket at a time: issuing a new one replaces the old. Tickets live in memory only, so a
//! restart ends them (unlock again).

use std::fmt;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How long a ticket can be used after it was issued.
pub const TICKET_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// How many codes one ticket lets through, right or wrong.
pub const TICKET_ATTEMPTS: u32 = 3;

const TICKET_BYTES: usize = 32;

/// A ticket as the owner receives it. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct UnlockTicket(String);

impl UnlockTicket {
    fn generate() -> UnlockTicket {
        let mut bytes = [0u8; TICKET_BYTES];
        getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
        UnlockTicket(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The value for the login link (URL-safe as it is).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UnlockTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UnlockTicket(<redacted>)")
    }
}

#[derive(Debug)]
struct Pending {
    hash: [u8; 32],
    expires: Instant,
    attempts_left: u32,
}

/// The one pending ticket, if any. Times are passed in so tests can move them.
#[derive(Debug, Default)]
pub struct TicketStore {
    pending: Option<Pending>,
}

fn hash(presented: &str) -> [u8; 32] {
    Sha256::digest(presented.as_bytes()).into()
}

impl TicketStore {
    /// A new ticket, replacing any earlier one.
    pub fn issue(&mut self, now: Instant) -> UnlockTicket {
        let ticket = UnlockTicket::generate();
        self.pending = Some(Pending { hash: hash(ticket.expose()), expires: now + TICKET_LIFETIME, attempts_left: TICKET_ATTEMPTS });
        ticket
    }

    fn matching(&mut self, presented: &str, now: Instant) -> Option<&mut Pending> {
        if self.pending.as_ref().is_some_and(|p| p.expires <= now || p.attempts_left == 0) {
            self.pending = None;
        }
        let pending = self.pending.as_mut()?;
        bool::from(pending.hash.ct_eq(&hash(presented))).then_some(pending)
    }

    /// Whether `presented` is the live ticket (for the login page; spends nothing).
    pub fn is_valid(&mut self, presented: &str, now: Instant) -> bool {
        self.matching(presented, now).is_some()
    }

    /// Spends one of the ticket's attempts, before the code is checked (so concurrent posts
    /// cannot get more than [`TICKET_ATTEMPTS`] codes through). `false`: not a live ticket.
    pub fn begin(&mut self, presented: &str, now: Instant) -> bool {
        match self.matching(presented, now) {
            Some(pending) => {
                pending.attempts_left -= 1;
                true
            }
            None => false,
        }
    }

    /// The code was right: the ticket has done its job.
    pub fn used_up(&mut self) {
        self.pending = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_allows_a_few_attempts_then_dies() {
        let t0 = Instant::now();
        let mut store = TicketStore::default();
        let ticket = store.issue(t0);
        assert_eq!(ticket.expose().len(), 43);
        assert!(!format!("{ticket:?}").contains(ticket.expose()));
        assert!(store.is_valid(ticket.expose(), t0));
        assert!(!store.is_valid("not-the-ticket", t0));
        assert!(!store.begin("not-the-ticket", t0), "a wrong ticket spends nothing");
        for _ in 0..TICKET_ATTEMPTS {
            assert!(store.begin(ticket.expose(), t0));
        }
        assert!(!store.begin(ticket.expose(), t0));
        assert!(!store.is_valid(ticket.expose(), t0));
    }

    #[test]
    fn a_ticket_is_single_use_expires_and_is_replaced_by_the_next() {
        let t0 = Instant::now();
        let mut store = TicketStore::default();
        let first = store.issue(t0);
        assert!(store.begin(first.expose(), t0));
        store.used_up();
        assert!(!store.is_valid(first.expose(), t0), "used once, gone");

        let second = store.issue(t0);
        let third = store.issue(t0);
        assert_ne!(second, third);
        assert!(!store.is_valid(second.expose(), t0), "a new ticket replaces the old");
        assert!(store.is_valid(third.expose(), t0 + TICKET_LIFETIME - Duration::from_secs(1)));
        assert!(!store.begin(third.expose(), t0 + TICKET_LIFETIME), "expired");
    }
}
