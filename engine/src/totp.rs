//! Time-based one-time passwords (RFC 6238) as every authenticator app makes them:
//! HMAC-SHA-1, 30-second steps, 6 digits.
//!
//! Verification accepts the previous, current and next step, so a phone whose clock is a little
//! off still works, and refuses any code whose step is not newer than the last accepted one: a
//! code seen over someone's shoulder, or replayed from a captured request, is worthless once
//! used. The caller persists that step (see [`crate::state`]) so the rule holds across restarts.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};
use zeroize::Zeroizing;

use crate::config::{Account, Issuer};

/// Seconds per TOTP step.
pub const STEP_SECONDS: u64 = 30;
/// Digits per code.
pub const DIGITS: usize = 6;
/// Bytes in a newly generated secret: 160 bits, the size RFC 4226 recommends for SHA-1.
pub const NEW_SECRET_BYTES: usize = 20;
/// The shortest secret accepted from outside (RFC 4226's minimum, 128 bits).
pub const MIN_SECRET_BYTES: usize = 16;

/// The shared TOTP secret (raw bytes, ≥ 128 bits). Zeroed on drop; `Debug` never prints it.
pub struct TotpSecret(Zeroizing<Vec<u8>>);

/// A secret that could not be read: wrong alphabet or too short. Never contains the input.
#[derive(Debug, thiserror::Error)]
#[error("not a valid TOTP secret: {0}")]
pub struct SecretFormatError(&'static str);

impl TotpSecret {
    pub fn from_bytes(bytes: Vec<u8>) -> Result<TotpSecret, SecretFormatError> {
        let bytes = Zeroizing::new(bytes);
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(SecretFormatError("it must be at least 128 bits long"));
        }
        Ok(TotpSecret(bytes))
    }

    /// A new random secret from the operating system's CSPRNG.
    pub fn generate() -> TotpSecret {
        let mut bytes = Zeroizing::new(vec![0u8; NEW_SECRET_BYTES]);
        getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
        TotpSecret(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// RFC 4648 base32, upper case, no padding: what authenticator apps expect.
    pub fn to_base32(&self) -> String {
        const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let mut out = String::with_capacity(self.0.len().div_ceil(5) * 8);
        for chunk in self.0.chunks(5) {
            let mut buf = [0u8; 5];
            buf[..chunk.len()].copy_from_slice(chunk);
            let bits = u64::from_be_bytes([0, 0, 0, buf[0], buf[1], buf[2], buf[3], buf[4]]);
            let chars = (chunk.len() * 8).div_ceil(5);
            for i in 0..chars {
                let index = (bits >> (35 - i * 5)) & 0x1f;
                out.push(ALPHABET[index as usize] as char);
            }
        }
        out
    }

    /// Reads base32, tolerating lower case, spaces, dashes and `=` padding (people copy secrets
    /// in groups of four).
    pub fn from_base32(text: &str) -> Result<TotpSecret, SecretFormatError> {
        let mut bytes = Zeroizing::new(Vec::with_capacity(text.len() * 5 / 8));
        let mut acc: u64 = 0;
        let mut bits = 0u32;
        for c in text.chars() {
            let value = match c.to_ascii_uppercase() {
                c @ 'A'..='Z' => c as u64 - 'A' as u64,
                c @ '2'..='7' => c as u64 - '2' as u64 + 26,
                ' ' | '-' | '=' | '\n' | '\r' | '\t' => continue,
                _ => return Err(SecretFormatError("it contains a character that is not base32")),
            };
            acc = (acc << 5) | value;
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                bytes.push((acc >> bits) as u8);
                acc &= (1 << bits) - 1;
            }
        }
        TotpSecret::from_bytes(std::mem::take(&mut *bytes))
    }

    /// The secret in groups of four characters, for a person to type into an app.
    pub fn to_grouped_base32(&self) -> String {
        let b32 = self.to_base32();
        let chars: Vec<char> = b32.chars().collect();
        chars.chunks(4).map(|g| g.iter().collect::<String>()).collect::<Vec<_>>().join(" ")
    }
}

impl Clone for TotpSecret {
    fn clone(&self) -> Self {
        TotpSecret(Zeroizing::new(self.0.to_vec()))
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

/// Why a code was refused. The login page tells a person which, since none of them helps an
/// attacker: the code space is the same either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeRejected {
    /// Not six digits.
    Malformed,
    /// Not the code of any accepted step.
    Wrong,
    /// A valid code whose step was already used (or is older than one that was).
    Replayed,
}

/// The TOTP parameters of one secret, plus the account label shown in authenticator apps.
pub struct Totp {
    inner: TOTP,
}

impl fmt::Debug for Totp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Totp").field("issuer", &self.inner.issuer).field("account", &self.inner.account_name).finish()
    }
}

impl Totp {
    /// `issuer` and `account` label the entry in the authenticator app (e.g. "SimpleOTP" and
    /// "alice@laptop"). The label is `issuer:account`; an [`Issuer`] never contains `:`, and a
    /// `:` in the account is shown as `-` so it cannot move the split.
    pub fn new(secret: &TotpSecret, issuer: &Issuer, account: &Account) -> Totp {
        let inner = TOTP::new_unchecked(
            Algorithm::SHA1,
            DIGITS,
            1,
            STEP_SECONDS,
            secret.as_bytes().to_vec(),
            Some(issuer.as_str().to_string()),
            account.as_str().replace(':', "-"),
        );
        Totp { inner }
    }

    /// The code for the step containing `unix_seconds`.
    /// The entry as the authenticator app shows it: issuer and account name.
    pub fn entry(&self) -> (String, String) {
        (self.inner.issuer.clone().unwrap_or_default(), self.inner.account_name.clone())
    }

    pub fn code_at(&self, unix_seconds: u64) -> String {
        self.inner.generate(unix_seconds)
    }

    /// The step number containing `unix_seconds`.
    pub fn step_at(unix_seconds: u64) -> u64 {
        unix_seconds / STEP_SECONDS
    }

    /// Checks `code` at time `unix_seconds`. Returns the matched step, which the caller must
    /// remember and pass back as `last_used_step` from then on.
    ///
    /// The three candidate codes are always all computed and compared in constant time, so the
    /// answer's timing says nothing about which digits or which step matched.
    pub fn verify(&self, code: &str, unix_seconds: u64, last_used_step: Option<u64>) -> Result<u64, CodeRejected> {
        // Authenticator apps show and copy codes as "123 456" (some "123-456"): the grouping is
        // not part of the code.
        let code: String = code.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
        if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CodeRejected::Malformed);
        }
        let current = Self::step_at(unix_seconds);
        let mut matched: Option<u64> = None;
        for step in [current.saturating_sub(1), current, current + 1] {
            // Saturating: at the very end of u64 time the next step's start does not fit (found
            // by the `form` fuzz target); there it simply counts as the current step.
            let candidate = Zeroizing::new(self.inner.generate(step.saturating_mul(STEP_SECONDS)));
            if bool::from(candidate.as_bytes().ct_eq(code.as_bytes())) {
                // Keep the newest matching step (two steps cannot share a code in practice, but
                // the newest is the safe one to remember if they ever did).
                matched = Some(step);
            }
        }
        match (matched, last_used_step) {
            (None, _) => Err(CodeRejected::Wrong),
            (Some(step), Some(last)) if step <= last => Err(CodeRejected::Replayed),
            (Some(step), _) => Ok(step),
        }
    }

    /// The `otpauth://totp/...` URI that authenticator apps read from a QR code.
    pub fn otpauth_uri(&self) -> String {
        self.inner.get_url()
    }
}

/// Seconds since the Unix epoch, from the system clock.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RFC 6238 appendix B secret for SHA-1 ("12345678901234567890").
    fn rfc_totp() -> Totp {
        Totp::new(
            &TotpSecret::from_bytes(b"12345678901234567890".to_vec()).unwrap(),
            &Issuer::parse("SimpleOTP").unwrap(),
            &Account::parse("test").unwrap(),
        )
    }

    #[test]
    fn matches_rfc6238_test_vectors() {
        // RFC 6238 gives 8-digit codes; the 6-digit code is their last six digits.
        let totp = rfc_totp();
        for (time, eight) in [
            (59, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ] {
            assert_eq!(totp.code_at(time), &eight[2..], "t={time}");
        }
    }

    #[test]
    fn accepts_previous_current_and_next_step_only() {
        let totp = rfc_totp();
        let now = 1_700_000_015;
        let step = Totp::step_at(now);
        for delta in [-1i64, 0, 1] {
            let t = ((step as i64 + delta) as u64) * STEP_SECONDS;
            assert_eq!(totp.verify(&totp.code_at(t), now, None), Ok((step as i64 + delta) as u64));
        }
        for delta in [-3i64, -2, 2, 3] {
            let t = ((step as i64 + delta) as u64) * STEP_SECONDS;
            let code = totp.code_at(t);
            // A code from another step could coincide with an accepted one by chance (1 in 10^6).
            if [-1i64, 0, 1].iter().all(|d| totp.code_at(((step as i64 + d) as u64) * STEP_SECONDS) != code) {
                assert_eq!(totp.verify(&code, now, None), Err(CodeRejected::Wrong), "delta {delta}");
            }
        }
    }

    #[test]
    fn refuses_replay_and_older_steps() {
        let totp = rfc_totp();
        let now = 1_700_000_015;
        let code = totp.code_at(now);
        let step = totp.verify(&code, now, None).unwrap();
        assert_eq!(totp.verify(&code, now, Some(step)), Err(CodeRejected::Replayed));
        let previous = totp.code_at(now - STEP_SECONDS);
        assert_eq!(totp.verify(&previous, now, Some(step)), Err(CodeRejected::Replayed));
        let next = totp.code_at(now + STEP_SECONDS);
        assert_eq!(totp.verify(&next, now, Some(step)), Ok(step + 1));
    }

    #[test]
    fn rejects_malformed_codes() {
        let totp = rfc_totp();
        for bad in ["", "12345", "1234567", "12a456", "１２３４５６", "-12345"] {
            assert_eq!(totp.verify(bad, 59, None), Err(CodeRejected::Malformed), "{bad:?}");
        }
        // Spaces inside are forgiven: apps show "123 456".
        assert_eq!(totp.verify("287 082", 59, None), Ok(1));
        // So are dashes ("123-456") and both around a paste.
        assert_eq!(totp.verify("287-082", 59, None), Ok(1));
        assert_eq!(totp.verify(" 287 - 082 ", 59, None), Ok(1));
        assert_eq!(totp.verify("28-70-82", 59, None), Ok(1));
    }

    #[test]
    fn base32_round_trips_and_matches_rfc4648() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
        assert_eq!(secret.to_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        let parsed = TotpSecret::from_base32("gezd gnbv gy3t qojq gezd gnbv gy3t qojq").unwrap();
        assert_eq!(parsed.as_bytes(), secret.as_bytes());
        for _ in 0..20 {
            let s = TotpSecret::generate();
            assert_eq!(s.as_bytes().len(), NEW_SECRET_BYTES);
            assert_eq!(TotpSecret::from_base32(&s.to_base32()).unwrap().as_bytes(), s.as_bytes());
        }
        assert!(TotpSecret::from_base32("GEZDGNBV").is_err(), "too short");
        assert!(TotpSecret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ1").is_err(), "bad alphabet");
    }

    #[test]
    fn generated_secrets_differ() {
        assert_ne!(TotpSecret::generate().as_bytes(), TotpSecret::generate().as_bytes());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
        let shown = format!("{secret:?} {:?}", Totp::new(&secret, &Issuer::parse("i").unwrap(), &Account::parse("a").unwrap()));
        assert!(!shown.contains("GEZDGNBV") && !shown.contains("12345678901234567890") && !shown.contains("49, 50"), "{shown}");
    }

    #[test]
    fn otpauth_uri_has_the_parameters_apps_need() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
        let uri = Totp::new(&secret, &Issuer::parse("SimpleOTP").unwrap(), &Account::parse("alice:laptop").unwrap()).otpauth_uri();
        assert!(uri.starts_with("otpauth://totp/SimpleOTP:alice-laptop?"), "{uri}");
        assert!(uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"), "{uri}");
        assert!(uri.contains("issuer=SimpleOTP"), "{uri}");
    }
}
