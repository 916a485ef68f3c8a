//! Recovery codes: ten one-time codes for the day the phone with the authenticator app is lost.
//!
//! Each code is 12 characters of Crockford's base32 (`7kq2-m9xd-4hbn`: 60 random bits from the
//! OS), shown once when the set is made and never again. Only a hash of each is kept, in the
//! state file: PBKDF2-HMAC-SHA256 with a salt of the set's own and [`HASH_ROUNDS`] rounds, so
//! a copy of the state file is no shortcut to a code (2^59 guesses on average, each costing
//! that many rounds). A code works once: a sign-in with it removes its hash. Making a new set
//! replaces the old one entirely.
//!
//! Typing is forgiving where it cannot cost security: case, spaces and dashes are ignored, and
//! the letters people confuse with digits read as those digits (`o` → `0`, `i`/`l` → `1`), as
//! Crockford's alphabet intends (it has none of `i l o u`).

use std::fmt;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// How many codes a set holds.
pub const CODES_PER_SET: usize = 10;

/// Characters per code, without the dashes: 12 × 5 bits = 60 random bits.
pub const CODE_LENGTH: usize = 12;

/// PBKDF2 rounds per hash. A sign-in computes one hash (the set shares a salt) and compares it
/// with each stored one; an attacker with the state file pays this for every guess.
pub const HASH_ROUNDS: u32 = 20_000;

/// Crockford's base32: digits and letters without `i l o u`.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// One recovery code as shown to its owner, `xxxx-xxxx-xxxx`. `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCode(String);

impl RecoveryCode {
    /// The code as the owner reads it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode(<redacted>)")
    }
}

/// The hashes of the codes of one set that are still unused, with the set's salt.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryCodes {
    #[serde(with = "hex_bytes")]
    salt: Vec<u8>,
    #[serde(with = "hex_list")]
    unused: Vec<Vec<u8>>,
    /// When the set was made (Unix seconds).
    pub created_at: u64,
}

impl fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecoveryCodes").field("unused", &self.unused.len()).field("created_at", &self.created_at).finish()
    }
}

impl RecoveryCodes {
    /// A new set of [`CODES_PER_SET`] codes: the hashes to keep, and the codes to show once.
    pub fn generate(now: u64) -> (RecoveryCodes, Vec<RecoveryCode>) {
        let mut salt = vec![0u8; 16];
        getrandom::fill(&mut salt).expect("the OS has random numbers");
        let codes: Vec<RecoveryCode> = (0..CODES_PER_SET).map(|_| random_code()).collect();
        let unused = codes.iter().map(|code| hash(&salt, &normalize(code.expose()).expect("our own code reads back"))).collect();
        (RecoveryCodes { salt, unused, created_at: now }, codes)
    }

    /// How many codes of the set are still unused.
    pub fn remaining(&self) -> usize {
        self.unused.len()
    }

    /// Whether `typed` is an unused code of this set; if so it is used up (removed). Every
    /// stored hash is compared, in constant time, whatever matches.
    pub fn use_code(&mut self, typed: &str) -> bool {
        let Some(normalized) = normalize(typed) else { return false };
        let candidate = hash(&self.salt, &normalized);
        let mut found = None;
        for (index, stored) in self.unused.iter().enumerate() {
            if bool::from(stored.as_slice().ct_eq(candidate.as_slice())) {
                found = Some(index);
            }
        }
        match found {
            Some(index) => {
                self.unused.swap_remove(index);
                true
            }
            None => false,
        }
    }
}

/// The file name "Save as a text file" starts with.
pub const CODES_FILE_NAME: &str = "SimpleOTP recovery codes";

/// "Save as a text file": the codes the owner was just shown, in a new file in `dir` (their
/// Downloads folder) that only they can read, never replacing one (`SimpleOTP recovery
/// codes.txt`, then `… (2).txt`). Anything that is not a set of codes is refused (the window
/// hands them back, and nothing else may be written this way). Returns the file's path.
pub fn save_codes_file(dir: &std::path::Path, codes: &[String], made_for: &str) -> std::io::Result<std::path::PathBuf> {
    if codes.len() != CODES_PER_SET || codes.iter().any(|c| normalize(c).is_none()) {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "these are not SimpleOTP recovery codes"));
    }
    let mut text = format!(
        "SimpleOTP recovery codes for {made_for}\n\
         Each works once, on the sign-in page under \"Use a recovery code\", when your phone is lost.\n\
         Keep this file away from your phone (print it, or put the codes in a password manager, then delete it).\n\n"
    );
    for code in codes {
        text.push_str(code);
        text.push('\n');
    }
    let path = (1..1000)
        .map(|n| if n == 1 { dir.join(format!("{CODES_FILE_NAME}.txt")) } else { dir.join(format!("{CODES_FILE_NAME} ({n}).txt")) })
        .find(|p| !p.exists())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::AlreadyExists, "too many saved code files"))?;
    crate::fsutil::write_atomic(&path, text.as_bytes())?;
    Ok(path)
}

/// What the owner typed, as the 12 characters of the alphabet, or `None` when it cannot be a
/// code (wrong length, other characters).
fn normalize(typed: &str) -> Option<String> {
    let mut out = String::with_capacity(CODE_LENGTH);
    for c in typed.chars() {
        let c = match c.to_ascii_lowercase() {
            ' ' | '-' => continue,
            'o' => '0',
            'i' | 'l' => '1',
            c => c,
        };
        if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) {
            return None;
        }
        out.push(c);
    }
    (out.len() == CODE_LENGTH).then_some(out)
}

fn hash(salt: &[u8], normalized: &str) -> Vec<u8> {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(normalized.as_bytes(), salt, HASH_ROUNDS, &mut out);
    out.to_vec()
}

/// 12 characters, each from 5 random bits (rejection-free: 32 symbols), as `xxxx-xxxx-xxxx`.
fn random_code() -> RecoveryCode {
    let mut bytes = [0u8; CODE_LENGTH];
    getrandom::fill(&mut bytes).expect("the OS has random numbers");
    let chars: Vec<char> = bytes.iter().map(|b| ALPHABET[usize::from(b & 31)] as char).collect();
    let groups: Vec<String> = chars.chunks(4).map(|g| g.iter().collect()).collect();
    RecoveryCode(groups.join("-"))
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::to_hex(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        super::from_hex(&text).ok_or_else(|| serde::de::Error::custom("not hexadecimal"))
    }
}

mod hex_list {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(list: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(list.iter().map(|bytes| super::to_hex(bytes)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        texts.iter().map(|t| super::from_hex(t).ok_or_else(|| serde::de::Error::custom("not hexadecimal"))).collect()
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_codes_file_is_private_new_each_time_and_holds_codes_only() {
        let dir = tempfile::tempdir().unwrap();
        let (_, codes) = RecoveryCodes::generate(0);
        let codes: Vec<String> = codes.iter().map(|c| c.expose().to_string()).collect();
        let first = save_codes_file(dir.path(), &codes, "alice@box").unwrap();
        assert_eq!(first.file_name().unwrap(), "SimpleOTP recovery codes.txt");
        let text = std::fs::read_to_string(&first).unwrap();
        assert!(text.starts_with("SimpleOTP recovery codes for alice@box\n"));
        assert!(codes.iter().all(|c| text.contains(&format!("{c}\n"))));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&first).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let second = save_codes_file(dir.path(), &codes, "alice@box").unwrap();
        assert_eq!(second.file_name().unwrap(), "SimpleOTP recovery codes (2).txt", "never over the first");
        let mut other = codes.clone();
        other[3] = "rm -rf /".into();
        assert!(save_codes_file(dir.path(), &other, "x").is_err(), "only codes are written");
        assert!(save_codes_file(dir.path(), &codes[..9], "x").is_err());
    }

    #[test]
    fn a_set_has_ten_codes_of_sixty_random_bits_that_work_once() {
        let (mut set, codes) = RecoveryCodes::generate(1_700_000_000);
        assert_eq!(codes.len(), CODES_PER_SET);
        for code in &codes {
            let text = code.expose();
            assert_eq!(text.len(), 14, "{text}");
            assert!(text.split('-').all(|g| g.len() == 4 && g.bytes().all(|b| ALPHABET.contains(&b))), "{text}");
        }
        let mut distinct: Vec<&str> = codes.iter().map(RecoveryCode::expose).collect();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), CODES_PER_SET);
        assert!(set.use_code(codes[3].expose()));
        assert!(!set.use_code(codes[3].expose()), "a code works once");
        assert_eq!(set.remaining(), CODES_PER_SET - 1);
        assert!(!set.use_code("0000-0000-0000"));
        assert!(!set.use_code("not a code"));
        assert_eq!(set.remaining(), CODES_PER_SET - 1);
    }

    #[test]
    fn typing_ignores_case_spaces_dashes_and_confusable_letters() {
        let (mut set, codes) = RecoveryCodes::generate(0);
        let typed = codes[0].expose().to_uppercase().replace('-', " ").replace('0', "O").replace('1', "l");
        assert!(set.use_code(&typed), "{typed} for {}", codes[0].expose());
        let (mut other, _) = RecoveryCodes::generate(0);
        assert!(!other.use_code(codes[1].expose()), "a code of another set");
    }

    #[test]
    fn only_hashes_are_kept_and_they_read_back() {
        let (set, codes) = RecoveryCodes::generate(5);
        let json = serde_json::to_string(&set).unwrap();
        for code in &codes {
            assert!(!json.contains(code.expose()) && !json.contains(&normalize(code.expose()).unwrap()), "{json}");
        }
        assert!(!format!("{set:?}{:?}", codes[0]).contains(codes[0].expose()));
        let mut back: RecoveryCodes = serde_json::from_str(&json).unwrap();
        assert_eq!(back, set);
        assert!(back.use_code(codes[9].expose()));
    }
}
