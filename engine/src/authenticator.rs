//! Several authenticator apps: each one a TOTP secret with a name ("Pixel", "1Password"), an id
//! and the time it was added.
//!
//! The whole set lives where the single secret always lived ([`crate::secret::SecretStore`]:
//! the OS keychain entry or the 0600 `--secret-file`), so there is still one place that holds
//! secrets. Its encoding ([`Authenticators::encode`]):
//!
//! * the set that setup makes — one authenticator, [`FIRST_ID`], [`DEFAULT_NAME`], no added
//!   time — is the bare base32 secret on one line, exactly what every earlier version wrote and
//!   reads (so existing installs, `simpleotp init`'s file and tools that read it keep working,
//!   and a downgrade still finds its secret while only one authenticator is in use);
//! * any other set is a small JSON document, `{"v":1,"a":[[id,name,added,secret],...]}`: arrays
//!   rather than objects, because the Windows Credential Manager keeps at most 2560 bytes per
//!   entry and `keyring` stores text there as UTF-16 (1280 units). [`MAX_AUTHENTICATORS`] is
//!   chosen so that the largest possible set fits (a unit test checks the worst case).
//!
//! A new authenticator becomes real only through [`PendingAuthenticator::confirm`]: a code made
//! by the new app from the new secret proves the app has it, as in the setup wizard. The
//! gateway, the CLI and the tray app all add authenticators through it.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::config::{Account, Issuer};
use crate::totp::{CodeRejected, Totp, TotpSecret};

/// The most authenticators a set may hold (see the module docs: the keychain's size limit).
pub const MAX_AUTHENTICATORS: usize = 8;
/// The longest name, in characters.
pub const MAX_NAME_CHARS: usize = 40;
/// The name of the authenticator setup made (and of a bare secret from an earlier version).
pub const DEFAULT_NAME: &str = "Authenticator app";
/// The id of the authenticator setup made (and of a bare secret from an earlier version).
pub const FIRST_ID: &str = "first";
/// What the Windows Credential Manager keeps per entry, in bytes of UTF-16.
pub const KEYCHAIN_VALUE_LIMIT: usize = 2560;
const FORMAT_VERSION: u32 = 1;
const ID_CHARS: usize = 8;

/// An authenticator's id: short, stable, safe to show and to type (`k3x9q2ab`; [`FIRST_ID`] for
/// the first one): 1 to 16 lower-case letters and digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AuthenticatorId(String);

impl AuthenticatorId {
    pub fn parse(s: &str) -> Result<AuthenticatorId, AuthenticatorError> {
        if (1..=16).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
            Ok(AuthenticatorId(s.to_string()))
        } else {
            Err(AuthenticatorError::BadId)
        }
    }

    /// A new random id (40 bits, Crockford's base32 in lower case).
    pub fn generate() -> AuthenticatorId {
        const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
        let mut bytes = [0u8; ID_CHARS];
        getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
        AuthenticatorId(bytes.iter().map(|b| ALPHABET[(b & 31) as usize] as char).collect())
    }

    pub fn first() -> AuthenticatorId {
        AuthenticatorId(FIRST_ID.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AuthenticatorId {
    type Error = AuthenticatorError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        AuthenticatorId::parse(&s)
    }
}

impl From<AuthenticatorId> for String {
    fn from(id: AuthenticatorId) -> String {
        id.0
    }
}

impl fmt::Display for AuthenticatorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a person calls an authenticator ("Pixel", "1Password"): trimmed, 1 to
/// [`MAX_NAME_CHARS`] characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AuthenticatorName(String);

impl AuthenticatorName {
    pub fn parse(s: &str) -> Result<AuthenticatorName, AuthenticatorError> {
        let name = s.trim();
        if name.is_empty() {
            return Err(AuthenticatorError::BadName("Give the authenticator a name, e.g. Pixel or 1Password.".into()));
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(AuthenticatorError::BadName(format!("The name is too long: at most {MAX_NAME_CHARS} characters.")));
        }
        if name.chars().any(char::is_control) {
            return Err(AuthenticatorError::BadName("The name may not contain control characters (such as a line break).".into()));
        }
        Ok(AuthenticatorName(name.to_string()))
    }

    pub fn default_name() -> AuthenticatorName {
        AuthenticatorName(DEFAULT_NAME.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Names are unique in a set regardless of case ("pixel" is "Pixel").
    fn same_as(&self, other: &str) -> bool {
        self.0.to_lowercase() == other.trim().to_lowercase()
    }
}

impl TryFrom<String> for AuthenticatorName {
    type Error = AuthenticatorError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        AuthenticatorName::parse(&s)
    }
}

impl From<AuthenticatorName> for String {
    fn from(name: AuthenticatorName) -> String {
        name.0
    }
}

impl std::str::FromStr for AuthenticatorName {
    type Err = AuthenticatorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AuthenticatorName::parse(s)
    }
}

impl fmt::Display for AuthenticatorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What went wrong with an authenticator or a set, in words for the person who asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthenticatorError {
    #[error("{0}")]
    BadName(String),
    #[error("not an authenticator id (lower-case letters and digits)")]
    BadId,
    #[error("an authenticator named {0:?} exists already; choose another name")]
    NameTaken(String),
    #[error("there are {MAX_AUTHENTICATORS} authenticators already, the most SimpleOTP keeps; remove one first")]
    TooMany,
    #[error("no authenticator is called {0:?} (see the list for names and ids)")]
    NotFound(String),
    #[error(
        "{0:?} is the only authenticator: removing it would leave no way to sign in. Add another one first (or replace the setup key)"
    )]
    LastOne(String),
}

/// One authenticator app: its id, name, secret and when it was added (Unix seconds; `None` for
/// the one setup made, or one from before authenticators had names). `Debug` never shows the
/// secret.
#[derive(Clone)]
pub struct Authenticator {
    pub id: AuthenticatorId,
    pub name: AuthenticatorName,
    pub secret: TotpSecret,
    pub added_at: Option<u64>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator").field("id", &self.id).field("name", &self.name).field("added_at", &self.added_at).finish()
    }
}

impl Authenticator {
    /// What may be shown and sent anywhere: everything but the secret.
    pub fn info(&self) -> AuthenticatorInfo {
        AuthenticatorInfo { id: self.id.to_string(), name: self.name.to_string(), added_at: self.added_at, last_used_at: None }
    }
}

/// An authenticator as lists show it (the CLI, the control route, the tray): never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthenticatorInfo {
    pub id: String,
    pub name: String,
    pub added_at: Option<u64>,
    /// The start of the 30-second step of the newest code accepted from it (sign-in, or the
    /// code that confirmed it), when the gateway knows one.
    #[serde(default)]
    pub last_used_at: Option<u64>,
}

/// The authenticators in use: at least one, at most [`MAX_AUTHENTICATORS`], ids and names
/// unique. Oldest first (the first is the one setup made, unless it was removed).
#[derive(Clone, Debug)]
pub struct Authenticators(Vec<Authenticator>);

impl Authenticators {
    /// The set setup makes: one authenticator with this secret ([`FIRST_ID`], [`DEFAULT_NAME`]).
    pub fn single(secret: TotpSecret) -> Authenticators {
        Authenticators(vec![Authenticator {
            id: AuthenticatorId::first(),
            name: AuthenticatorName::default_name(),
            secret,
            added_at: None,
        }])
    }

    pub fn iter(&self) -> impl Iterator<Item = &Authenticator> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true (a set has at least one); here for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn first(&self) -> &Authenticator {
        &self.0[0]
    }

    pub fn infos(&self) -> Vec<AuthenticatorInfo> {
        self.0.iter().map(Authenticator::info).collect()
    }

    /// The authenticator with this id, else the one with this name (any case).
    pub fn find(&self, id_or_name: &str) -> Option<&Authenticator> {
        let wanted = id_or_name.trim();
        self.0.iter().find(|a| a.id.as_str() == wanted).or_else(|| self.0.iter().find(|a| a.name.same_as(wanted)))
    }

    /// This set with `added` at the end. Refused when its name is taken, or when the set is full.
    pub fn with_added(&self, added: Authenticator) -> Result<Authenticators, AuthenticatorError> {
        if self.0.iter().any(|a| a.name.same_as(added.name.as_str())) {
            return Err(AuthenticatorError::NameTaken(added.name.to_string()));
        }
        if self.0.len() >= MAX_AUTHENTICATORS {
            return Err(AuthenticatorError::TooMany);
        }
        let mut id = added.id.clone();
        while self.0.iter().any(|a| a.id == id) {
            id = AuthenticatorId::generate();
        }
        let mut list = self.0.clone();
        list.push(Authenticator { id, ..added });
        Ok(Authenticators(list))
    }

    /// This set without the authenticator `id_or_name` (see [`Authenticators::find`]), and the
    /// one removed. The last one is never removed.
    pub fn without(&self, id_or_name: &str) -> Result<(Authenticators, Authenticator), AuthenticatorError> {
        let found = self.find(id_or_name).ok_or_else(|| AuthenticatorError::NotFound(id_or_name.trim().to_string()))?;
        if self.0.len() == 1 {
            return Err(AuthenticatorError::LastOne(found.name.to_string()));
        }
        let removed = found.clone();
        Ok((Authenticators(self.0.iter().filter(|a| a.id != removed.id).cloned().collect()), removed))
    }

    /// The set as it is stored (see the module docs): the bare base32 secret for the set setup
    /// makes, else the JSON document.
    pub fn encode(&self) -> Zeroizing<String> {
        if let [only] = self.0.as_slice() {
            if only.id.as_str() == FIRST_ID && only.name.as_str() == DEFAULT_NAME && only.added_at.is_none() {
                return Zeroizing::new(only.secret.to_base32());
            }
        }
        let document = Document {
            v: FORMAT_VERSION,
            a: self.0.iter().map(|a| Entry(a.id.clone(), a.name.clone(), a.added_at, SecretText(a.secret.to_base32()))).collect(),
        };
        // Room for the largest set up front, so no growing buffer leaves copies behind.
        let mut bytes = Zeroizing::new(Vec::with_capacity(4 * KEYCHAIN_VALUE_LIMIT));
        serde_json::to_writer(&mut *bytes, &document).expect("the set always serializes");
        Zeroizing::new(String::from_utf8(std::mem::take(&mut *bytes)).expect("JSON is UTF-8"))
    }

    /// Reads what [`Authenticators::encode`] wrote (and a bare secret from any earlier version).
    /// The error names the problem, never the text.
    pub fn decode(text: &str) -> Result<Authenticators, String> {
        let text = text.trim();
        if !text.starts_with('{') {
            return TotpSecret::from_base32(text).map(Authenticators::single).map_err(|e| e.to_string());
        }
        let document: Document = serde_json::from_str(text).map_err(|e| {
            // serde_json's message may quote the input: only its kind and place are kept.
            format!("the list of authenticators is not valid (line {}, column {}: {:?} error)", e.line(), e.column(), e.classify())
        })?;
        if document.v != FORMAT_VERSION {
            return Err(format!(
                "the list of authenticators has format version {}, this program reads version {FORMAT_VERSION}",
                document.v
            ));
        }
        if document.a.is_empty() || document.a.len() > MAX_AUTHENTICATORS {
            return Err(format!("the list holds {} authenticators; between 1 and {MAX_AUTHENTICATORS} are allowed", document.a.len()));
        }
        let mut list: Vec<Authenticator> = Vec::with_capacity(document.a.len());
        for Entry(id, name, added_at, secret) in document.a {
            let secret = TotpSecret::from_base32(&secret.0).map_err(|e| format!("authenticator {id}: {e}"))?;
            if list.iter().any(|a| a.id == id || a.name.same_as(name.as_str())) {
                return Err(format!("authenticator {id} is in the list twice"));
            }
            list.push(Authenticator { id, name, secret, added_at });
        }
        Ok(Authenticators(list))
    }
}

/// The stored document (see the module docs).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    v: u32,
    a: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
struct Entry(AuthenticatorId, AuthenticatorName, Option<u64>, SecretText);

/// Base32 text of a secret on its way in or out of the document, wiped when dropped.
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
struct SecretText(String);

impl Drop for SecretText {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// An authenticator on its way in: a name and a fresh secret, shown to the person as a QR code
/// and a setup key. It becomes an [`Authenticator`] only through [`PendingAuthenticator::confirm`].
#[derive(Clone)]
pub struct PendingAuthenticator {
    name: AuthenticatorName,
    secret: TotpSecret,
}

impl fmt::Debug for PendingAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingAuthenticator").field("name", &self.name).finish_non_exhaustive()
    }
}

impl PendingAuthenticator {
    /// A new authenticator called `name`, with a new random secret.
    pub fn new(name: AuthenticatorName) -> PendingAuthenticator {
        PendingAuthenticator { name, secret: TotpSecret::generate() }
    }

    /// One whose secret was made elsewhere (the CLI made it and showed it; the gateway confirms).
    pub fn from_parts(name: AuthenticatorName, secret: TotpSecret) -> PendingAuthenticator {
        PendingAuthenticator { name, secret }
    }

    pub fn name(&self) -> &AuthenticatorName {
        &self.name
    }

    pub fn secret(&self) -> &TotpSecret {
        &self.secret
    }

    /// Its entry for the authenticator app (for the QR code and the setup key).
    pub fn totp(&self, issuer: &Issuer, account: &Account) -> Totp {
        Totp::new(&self.secret, issuer, account)
    }

    /// The one rule for adding an authenticator: a code the new app made from the new secret
    /// (previous, current or next step) proves the app has it. Returns the authenticator (added
    /// now) and the code's step, which the caller keeps as its replay guard so the confirming
    /// code cannot also sign in. A wrong code gives the pending one back, to try again.
    pub fn confirm(
        self,
        code: &str,
        now: u64,
        issuer: &Issuer,
        account: &Account,
    ) -> Result<(Authenticator, u64), (PendingAuthenticator, CodeRejected)> {
        match self.totp(issuer, account).verify(code, now, None) {
            Ok(step) => {
                Ok((Authenticator { id: AuthenticatorId::generate(), name: self.name, secret: self.secret, added_at: Some(now) }, step))
            }
            Err(reason) => Err((self, reason)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str) -> Authenticator {
        Authenticator {
            id: AuthenticatorId::generate(),
            name: AuthenticatorName::parse(name).unwrap(),
            secret: TotpSecret::generate(),
            added_at: Some(1_800_000_000),
        }
    }

    fn labels() -> (Issuer, Account) {
        (Issuer::parse("SimpleOTP").unwrap(), Account::parse("me@box").unwrap())
    }

    #[test]
    fn names_are_trimmed_bounded_and_printable() {
        assert_eq!(AuthenticatorName::parse("  Pixel 8 ").unwrap().as_str(), "Pixel 8");
        assert_eq!(AuthenticatorName::parse(&"é".repeat(40)).unwrap().as_str().chars().count(), 40);
        for bad in ["", "   ", &"x".repeat(41), "Pix\nel", "a\u{7}", "tab\there"] {
            assert!(AuthenticatorName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ids_are_short_lowercase_and_random() {
        let (a, b) = (AuthenticatorId::generate(), AuthenticatorId::generate());
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), ID_CHARS);
        assert!(AuthenticatorId::parse(a.as_str()).is_ok());
        for bad in ["", "UPPER", "with-dash", "a b", &"a".repeat(17)] {
            assert!(AuthenticatorId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_set_setup_makes_is_the_bare_secret_as_before() {
        let secret = TotpSecret::generate();
        let set = Authenticators::single(secret.clone());
        assert_eq!(&*set.encode(), &secret.to_base32());
        // And a bare secret (as every earlier version wrote it, grouped or not) is that set.
        let read = Authenticators::decode(&format!("{}\n", secret.to_grouped_base32())).unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!((read.first().id.as_str(), read.first().name.as_str(), read.first().added_at), (FIRST_ID, DEFAULT_NAME, None));
        assert_eq!(read.first().secret.as_bytes(), secret.as_bytes());
    }

    #[test]
    fn a_larger_set_round_trips_as_json_without_losing_anything() {
        let set =
            Authenticators::single(TotpSecret::generate()).with_added(named("Pixel")).unwrap().with_added(named("1Password")).unwrap();
        let text = set.encode();
        assert!(text.starts_with("{\"v\":1,"), "{}", text.len());
        let read = Authenticators::decode(&text).unwrap();
        assert_eq!(read.infos(), set.infos());
        for (a, b) in read.iter().zip(set.iter()) {
            assert_eq!(a.secret.as_bytes(), b.secret.as_bytes());
        }
        // One named authenticator is not the bare form either (the name would be lost).
        let (only_pixel, _) = set.without(FIRST_ID).unwrap().0.without("1password").unwrap();
        assert!(only_pixel.encode().starts_with('{'));
        assert_eq!(Authenticators::decode(&only_pixel.encode()).unwrap().first().name.as_str(), "Pixel");
    }

    #[test]
    fn the_largest_possible_set_fits_the_windows_credential_manager() {
        // Worst case: full, every name 40 characters that JSON escapes ('"' → 2 units) or that
        // take two UTF-16 units each, the largest times.
        for wide in ["\"", "😀", "\\"] {
            let mut set = Authenticators::single(TotpSecret::generate());
            for i in 0..MAX_AUTHENTICATORS - 1 {
                let mut a = named(&format!("{i}{}", wide.repeat(MAX_NAME_CHARS - 1)));
                a.added_at = Some(u64::MAX);
                set = set.with_added(a).unwrap();
            }
            set.0[0].name = AuthenticatorName::parse(&wide.repeat(MAX_NAME_CHARS)).unwrap();
            let units = set.encode().encode_utf16().count();
            assert!(units * 2 <= KEYCHAIN_VALUE_LIMIT, "{wide}: {units} UTF-16 units");
            assert_eq!(Authenticators::decode(&set.encode()).unwrap().len(), MAX_AUTHENTICATORS);
        }
    }

    #[test]
    fn adding_refuses_a_taken_name_and_a_full_set() {
        let set = Authenticators::single(TotpSecret::generate()).with_added(named("Pixel")).unwrap();
        assert_eq!(set.with_added(named("pixel")).unwrap_err(), AuthenticatorError::NameTaken("pixel".into()));
        assert!(matches!(set.with_added(named(DEFAULT_NAME)), Err(AuthenticatorError::NameTaken(_))));
        let mut full = set;
        while full.len() < MAX_AUTHENTICATORS {
            full = full.with_added(named(&format!("Phone {}", full.len()))).unwrap();
        }
        assert_eq!(full.with_added(named("One more")).unwrap_err(), AuthenticatorError::TooMany);
    }

    #[test]
    fn removing_by_id_or_name_never_the_last() {
        let pixel = named("Pixel");
        let pixel_id = pixel.id.to_string();
        let set = Authenticators::single(TotpSecret::generate()).with_added(pixel).unwrap();
        assert_eq!(set.find(&pixel_id).unwrap().name.as_str(), "Pixel");
        assert_eq!(set.find(" PIXEL ").unwrap().id.as_str(), pixel_id);
        let (left, removed) = set.without("pixel").unwrap();
        assert_eq!((left.len(), removed.id.as_str()), (1, pixel_id.as_str()));
        assert!(matches!(set.without("nobody"), Err(AuthenticatorError::NotFound(_))));
        let err = left.without(FIRST_ID).unwrap_err();
        assert_eq!(err, AuthenticatorError::LastOne(DEFAULT_NAME.into()));
        assert!(err.to_string().contains("only authenticator"), "{err}");
    }

    #[test]
    fn decoding_refuses_bad_documents_without_quoting_them() {
        let secret = TotpSecret::generate().to_base32();
        for bad in [
            format!(r#"{{"v":2,"a":[["first","A",null,"{secret}"]]}}"#),
            r#"{"v":1,"a":[]}"#.to_string(),
            format!(r#"{{"v":1,"a":[["first","A",null,"{secret}"],["first","B",null,"{secret}"]]}}"#),
            format!(r#"{{"v":1,"a":[["first","A",null,"{secret}"],["second","a",null,"{secret}"]]}}"#),
            format!(r#"{{"v":1,"a":[["BAD","A",null,"{secret}"]]}}"#),
            format!(r#"{{"v":1,"a":[["first","",null,"{secret}"]]}}"#),
            r#"{"v":1,"a":[["first","A",null,"NOTBASE32!"]]}"#.to_string(),
            format!(r#"{{"v":1,"a":[["first","A",null,"{secret}",5]]}}"#),
            format!(r#"{{"v":1,"a":[["first","A","{secret}"]]}}"#),
        ] {
            let err = Authenticators::decode(&bad).expect_err(&bad);
            assert!(!err.contains(&secret[..12]), "{err}");
        }
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let a = named("Pixel");
        let pending = PendingAuthenticator::new(AuthenticatorName::parse("Watch").unwrap());
        let shown = format!("{a:?} {:?} {pending:?}", Authenticators::single(a.secret.clone()));
        for secret in [&a.secret, pending.secret()] {
            assert!(!shown.contains(&secret.to_base32()[..8]), "{shown}");
        }
    }

    #[test]
    fn a_pending_authenticator_becomes_real_only_with_its_own_code() {
        let (issuer, account) = labels();
        let now = 1_800_000_015;
        let pending = PendingAuthenticator::new(AuthenticatorName::parse("Pixel").unwrap());
        let other = TotpSecret::generate();
        let wrong = Totp::new(&other, &issuer, &account).code_at(now);
        let right = pending.totp(&issuer, &account).code_at(now);
        let (pending, reason) = pending.confirm(if wrong == right { "000000" } else { &wrong }, now, &issuer, &account).unwrap_err();
        assert_eq!(reason, CodeRejected::Wrong);
        let (_, reason) = pending.clone().confirm("12", now, &issuer, &account).unwrap_err();
        assert_eq!(reason, CodeRejected::Malformed);
        let (added, step) = pending.confirm(&right, now, &issuer, &account).unwrap();
        assert_eq!(step, Totp::step_at(now));
        assert_eq!((added.name.as_str(), added.added_at), ("Pixel", Some(now)));
        assert_ne!(added.id.as_str(), FIRST_ID);
    }
}
