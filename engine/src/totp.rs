//! MINIMAL STAND-IN for the lead's `totp.rs`: only the secret type that `secret` and `qr` need.
//! The real file (same `TotpSecret` shape plus code verification and otpauth URIs) replaces this
//! one at merge.

use std::fmt;

use zeroize::Zeroizing;

/// The shared TOTP secret (raw bytes, ≥ 128 bits). Zeroed on drop; Debug never prints it.
pub struct TotpSecret(Zeroizing<Vec<u8>>);

/// A secret that could not be read: wrong alphabet or too short. Never contains the input.
#[derive(Debug, thiserror::Error)]
#[error("not a valid TOTP secret: {0}")]
pub struct SecretFormatError(&'static str);

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

impl TotpSecret {
    /// Errors if shorter than 16 bytes (RFC 4226's minimum of 128 bits).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<TotpSecret, SecretFormatError> {
        let bytes = Zeroizing::new(bytes);
        if bytes.len() < 16 {
            return Err(SecretFormatError("it must be at least 128 bits long"));
        }
        Ok(TotpSecret(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// RFC 4648 base32, upper case, no padding.
    pub fn to_base32(&self) -> String {
        let mut out = String::with_capacity(self.0.len().div_ceil(5) * 8);
        let (mut acc, mut bits) = (0u32, 0u32);
        for &b in self.0.iter() {
            acc = (acc << 8) | u32::from(b);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
            }
        }
        if bits > 0 {
            out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
        }
        out
    }

    /// Reads base32, tolerating lower case, spaces, dashes and `=` padding.
    pub fn from_base32(s: &str) -> Result<TotpSecret, SecretFormatError> {
        let mut bytes = Zeroizing::new(Vec::with_capacity(s.len() * 5 / 8));
        let (mut acc, mut bits) = (0u32, 0u32);
        for c in s.chars() {
            let value = match c.to_ascii_uppercase() {
                c @ 'A'..='Z' => c as u32 - 'A' as u32,
                c @ '2'..='7' => c as u32 - '2' as u32 + 26,
                ' ' | '-' | '=' | '\n' | '\r' | '\t' => continue,
                _ => return Err(SecretFormatError("it contains characters that are not base32")),
            };
            acc = ((acc << 5) | value) & 0xffff;
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                bytes.push((acc >> bits) as u8);
            }
        }
        TotpSecret::from_bytes(std::mem::take(&mut *bytes))
    }

    /// 20 random bytes (160 bits) from the operating system.
    pub fn generate() -> TotpSecret {
        let mut bytes = Zeroizing::new(vec![0u8; 20]);
        getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
        TotpSecret(bytes)
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}
