//! Passkeys (WebAuthn): signing in with Touch ID, Windows Hello, a security key or a phone
//! instead of typing a code.
//!
//! **Where they work.** A passkey belongs to a relying-party ID: a domain name, no scheme, no
//! port. Browsers refuse IP addresses as relying parties, so passkeys work where the apps are
//! opened by name: `localhost` on this computer (plain HTTP counts as secure there), and over
//! HTTPS the names the apps' certificate carries for other devices (`box.local`, a configured
//! `.home.arpa` or `.internal` name). [`RelyingParty::for_request`] decides from the address a
//! browser used; at an IP address the login page offers codes only and says why. Because the ID
//! carries no port, the origins a passkey is accepted from are listed exactly: the scheme, that
//! name and the port of each configured app, never any port. A passkey made at `localhost` does
//! not work at `box.local`, nor the other way round: the screens that add and list them say so.
//!
//! **Adding one** needs an [`AddLink`]: 256 random bits, kept only as a hash, single use, for
//! [`LINK_LIFETIME`]. The tray's "Add a passkey" and `simpleotp passkey add` make one for the
//! owner, and so does the login page right after a sign-in with a code (its offer "Sign in with
//! Face ID / Windows Hello / your security key next time"): a person who just proved a code may
//! add a passkey, someone holding only a session cookie may not.
//!
//! **What is kept** (in the 0600 state file, see [`crate::state`]): for each passkey its public
//! key, credential id and signature counter (webauthn-rs's [`Passkey`]), its name, its
//! relying-party ID, when it was made and last used. Nothing here signs anyone in by itself: the
//! private key never leaves the authenticator. The ceremonies (challenges) live in memory only,
//! for [`CEREMONY_LIFETIME`], at most [`MAX_CEREMONIES`] at once.
//!
//! **What is checked** (by webauthn-rs, with our settings): the origin (one of the listed ones),
//! the relying-party ID's hash, the challenge (used once), the signature, *user verification*
//! (a fingerprint, a face or a PIN, not just a touch: required when adding and signing in) and
//! the signature counter (a counter that goes backwards means a cloned authenticator: refused).
//! A removed passkey is gone from the list the next ceremony reads, so it stops working at once.
//! The brute-force limiter counts a failed passkey sign-in like a wrong code ([`crate::gateway`]).

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use webauthn_rs::prelude::{
    Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, Webauthn,
    WebauthnBuilder,
};

/// How long a link to add a passkey works after it was made.
pub const LINK_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// How long a browser has to answer a challenge (the authenticator's own prompt included).
pub const CEREMONY_LIFETIME: Duration = Duration::from_secs(3 * 60);
/// Challenges kept at once; the oldest goes first. Anyone who can open the login page can start
/// a sign-in ceremony, so this bounds what they make the gateway remember.
pub const MAX_CEREMONIES: usize = 64;
/// Passkeys kept at most (a person has a handful; this bounds the state file).
pub const MAX_PASSKEYS: usize = 32;
/// Links to add a passkey alive at once; the oldest goes first.
const MAX_LINKS: usize = 8;

const RP_NAME: &str = "SimpleOTP";

/// A passkey's name as people see it in lists ("MacBook Touch ID", "YubiKey"): 1 to 60
/// characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PasskeyName(String);

impl PasskeyName {
    pub fn parse(text: &str) -> Result<PasskeyName, PasskeyError> {
        let trimmed = text.trim();
        let chars = trimmed.chars().count();
        if chars == 0 || chars > 60 || trimmed.chars().any(char::is_control) {
            return Err(PasskeyError::BadName);
        }
        Ok(PasskeyName(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PasskeyName {
    type Error = PasskeyError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        PasskeyName::parse(&text)
    }
}

impl From<PasskeyName> for String {
    fn from(name: PasskeyName) -> String {
        name.0
    }
}

impl fmt::Display for PasskeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What went wrong with a passkey, in words for the person (and never a key, challenge or link).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasskeyError {
    #[error("this link to add a passkey was used already or is more than 5 minutes old: make a new one (SimpleOTP's Security screen, or `simpleotp passkey add`)")]
    LinkInvalid,
    #[error("that took too long or the page was opened twice: try again")]
    CeremonyUnknown,
    #[error("no passkey was added for this address yet")]
    NoPasskeys,
    #[error("a passkey name is 1 to 60 characters (letters, digits, spaces, punctuation)")]
    BadName,
    #[error("there are {MAX_PASSKEYS} passkeys already: remove one first")]
    TooMany,
    #[error("there is no passkey with that name or id")]
    NotFound,
    /// Passkeys do not work at the address the browser used; the reason, in words.
    #[error("passkeys do not work here: {0}")]
    NotHere(String),
    #[error("sign-in is locked for {0}: too many failed tries")]
    Locked(String),
    /// The state file could not be written: nothing changed (the detail is for the log).
    #[error("SimpleOTP could not save this (its state file could not be written), so nothing changed; the computer's owner sees why in SimpleOTP")]
    NotSaved(String),
    /// The browser's answer did not verify (wrong origin, no user verification, a counter that
    /// went back, an unknown or removed passkey, a bad signature). The detail is for the log.
    #[error("the passkey was not accepted")]
    Refused(String),
}

/// A passkey's public id: its credential id, base64url (what the lists and `remove` use).
pub type PasskeyId = String;

/// One passkey as kept in the state file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredPasskey {
    pub id: PasskeyId,
    pub name: PasskeyName,
    /// The relying-party ID it was made for (`localhost`, `box.local`): it works there only.
    pub rp_id: String,
    pub created_at: u64,
    #[serde(default)]
    pub last_used_at: Option<u64>,
    key: Passkey,
}

impl PartialEq for StoredPasskey {
    fn eq(&self, other: &Self) -> bool {
        // webauthn-rs's Passkey has no PartialEq; its serialised form is what we keep anyway.
        self.info() == other.info() && serde_json::to_value(&self.key).ok() == serde_json::to_value(&other.key).ok()
    }
}
impl Eq for StoredPasskey {}

impl StoredPasskey {
    pub fn info(&self) -> PasskeyInfo {
        PasskeyInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            rp_id: self.rp_id.clone(),
            created_at: self.created_at,
            last_used_at: self.last_used_at,
        }
    }
}

/// What the screens and the CLI show about a passkey: everything but the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeyInfo {
    pub id: PasskeyId,
    pub name: PasskeyName,
    pub rp_id: String,
    pub created_at: u64,
    pub last_used_at: Option<u64>,
}

/// The passkeys as persisted, with the owner's user handle (random per install: `localhost` is
/// one relying party for every local server, and an authenticator keeps one passkey per relying
/// party and user handle, so a fixed handle would let another install's passkey replace ours).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistedPasskeys {
    user_handle: String,
    passkeys: Vec<StoredPasskey>,
}

/// The relying party a browser talks to: its ID (the host name it used) and exactly the
/// origins of the configured apps at that name and scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelyingParty {
    id: String,
    origins: Vec<Url>,
}

impl RelyingParty {
    /// The relying party for a page the browser opened at `host` (the `Host` header: name and
    /// port), over HTTPS or not, for the apps listening on `app_ports`; `https_names` are the
    /// names the apps' certificate carries. `Err` says, for the login page, why passkeys do not
    /// work at this address.
    pub fn for_request(host: &str, https: bool, app_ports: &[u16], https_names: &[String]) -> Result<RelyingParty, PasskeyError> {
        let (name, port) = split_host_port(host).ok_or_else(|| PasskeyError::NotHere("this address is not one SimpleOTP serves".into()))?;
        let name = name.to_ascii_lowercase();
        if name.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>().is_ok() {
            return Err(PasskeyError::NotHere("browsers offer them at a name, not at an IP address".into()));
        }
        let known = if https { https_names.iter().any(|n| n.eq_ignore_ascii_case(&name)) } else { name == "localhost" };
        if !known || !app_ports.contains(&port) {
            return Err(PasskeyError::NotHere("this address is not one SimpleOTP serves".into()));
        }
        let scheme = if https { "https" } else { "http" };
        let origins = app_ports.iter().filter_map(|p| Url::parse(&format!("{scheme}://{name}:{p}")).ok()).collect();
        Ok(RelyingParty { id: name, origins })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    fn webauthn(&self) -> Result<Webauthn, PasskeyError> {
        let refused = |e: webauthn_rs::prelude::WebauthnError| PasskeyError::Refused(format!("relying party {}: {e}", self.id));
        let (first, rest) = self.origins.split_first().ok_or(PasskeyError::NotHere("no app listens here".into()))?;
        let mut builder = WebauthnBuilder::new(&self.id, first).map_err(refused)?.rp_name(RP_NAME).timeout(CEREMONY_LIFETIME);
        for origin in rest {
            builder = builder.append_allowed_origin(origin);
        }
        builder.build().map_err(refused)
    }
}

/// `name:port` (or `[v6]:port`) → (name, port). The port is required: every app has one.
fn split_host_port(host: &str) -> Option<(&str, u16)> {
    let (name, port) = host.trim().rsplit_once(':')?;
    if name.is_empty() || (name.contains(':') && !name.starts_with('[')) {
        return None;
    }
    Some((name, port.parse().ok()?))
}

/// A link's secret part as the owner receives it. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct AddLink(String);

impl AddLink {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AddLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AddLink(<redacted>)")
    }
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

fn hash(presented: &str) -> [u8; 32] {
    Sha256::digest(presented.as_bytes()).into()
}

/// A challenge handed to a browser, by its random id.
enum Ceremony {
    Add { link: [u8; 32], rp: RelyingParty, state: Box<PasskeyRegistration> },
    SignIn { rp: RelyingParty, state: Box<PasskeyAuthentication> },
}

/// A started ceremony: its id (the browser sends it back) and the options for
/// `navigator.credentials.create/get` as JSON (`{"publicKey": …}`, binary fields base64url).
pub struct Started {
    pub ceremony: String,
    pub options: serde_json::Value,
}

/// The passkeys, the links to add one and the ceremonies in flight. Not synchronised (the
/// gateway holds it in a mutex); times are passed in so tests can move them.
pub struct PasskeyRegistry {
    user_handle: Uuid,
    passkeys: Vec<StoredPasskey>,
    links: Vec<([u8; 32], Instant)>,
    ceremonies: HashMap<String, (Instant, Ceremony)>,
}

impl fmt::Debug for PasskeyRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasskeyRegistry").field("passkeys", &self.passkeys.len()).field("ceremonies", &self.ceremonies.len()).finish()
    }
}

impl PasskeyRegistry {
    /// The registry of the persisted passkeys (a new, empty one with a fresh user handle when
    /// none were ever added).
    pub fn restore(persisted: Option<&PersistedPasskeys>) -> PasskeyRegistry {
        let restored = persisted.and_then(|p| Uuid::parse_str(&p.user_handle).ok().map(|handle| (handle, p.passkeys.clone())));
        let (user_handle, passkeys) = restored.unwrap_or_else(|| {
            let mut bytes = [0u8; 16];
            getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
            (Uuid::from_bytes(bytes), Vec::new())
        });
        PasskeyRegistry { user_handle, passkeys, links: Vec::new(), ceremonies: HashMap::new() }
    }

    /// What the state file keeps; `None` while no passkey was ever added.
    pub fn snapshot(&self) -> Option<PersistedPasskeys> {
        (!self.passkeys.is_empty())
            .then(|| PersistedPasskeys { user_handle: self.user_handle.to_string(), passkeys: self.passkeys.clone() })
    }

    pub fn list(&self) -> Vec<PasskeyInfo> {
        self.passkeys.iter().map(StoredPasskey::info).collect()
    }

    /// Whether a passkey exists for this relying party (the login page's button).
    pub fn any_for(&self, rp: &RelyingParty) -> bool {
        self.passkeys.iter().any(|p| p.rp_id == rp.id)
    }

    /// A new one-time link to add a passkey (the oldest live one goes when there are too many).
    pub fn issue_link(&mut self, now: Instant) -> AddLink {
        self.links.retain(|(_, expires)| *expires > now);
        if self.links.len() >= MAX_LINKS {
            self.links.remove(0);
        }
        let link = AddLink(random_token());
        self.links.push((hash(link.expose()), now + LINK_LIFETIME));
        link
    }

    /// Whether `presented` is a live link (spends nothing).
    pub fn link_is_valid(&self, presented: &str, now: Instant) -> bool {
        let presented = hash(presented);
        self.links.iter().any(|(h, expires)| *expires > now && bool::from(h.ct_eq(&presented)))
    }

    fn remember(&mut self, ceremony: Ceremony, now: Instant) -> String {
        self.ceremonies.retain(|_, (expires, _)| *expires > now);
        if self.ceremonies.len() >= MAX_CEREMONIES {
            if let Some(oldest) = self.ceremonies.iter().min_by_key(|(_, (expires, _))| *expires).map(|(id, _)| id.clone()) {
                self.ceremonies.remove(&oldest);
            }
        }
        let id = random_token();
        self.ceremonies.insert(id.clone(), (now + CEREMONY_LIFETIME, ceremony));
        id
    }

    fn take_ceremony(&mut self, id: &str, now: Instant) -> Result<Ceremony, PasskeyError> {
        match self.ceremonies.remove(id) {
            Some((expires, ceremony)) if expires > now => Ok(ceremony),
            _ => Err(PasskeyError::CeremonyUnknown),
        }
    }

    /// Starts adding a passkey with a live link, at `rp`. The link is spent only when the
    /// passkey is added ([`PasskeyRegistry::finish_adding`]): a cancelled prompt can be retried.
    pub fn start_adding(&mut self, link: &str, rp: &RelyingParty, now: Instant) -> Result<Started, PasskeyError> {
        if !self.link_is_valid(link, now) {
            return Err(PasskeyError::LinkInvalid);
        }
        if self.passkeys.len() >= MAX_PASSKEYS {
            return Err(PasskeyError::TooMany);
        }
        let webauthn = rp.webauthn()?;
        // The authenticator is told which of ours it holds already, so it does not make a second.
        let exclude = self.passkeys.iter().filter(|p| p.rp_id == rp.id).map(|p| p.key.cred_id().clone()).collect();
        let display = format!("SimpleOTP on {}", rp.id);
        let (challenge, state) = webauthn
            .start_passkey_registration(self.user_handle, "simpleotp", &display, Some(exclude))
            .map_err(|e| PasskeyError::Refused(e.to_string()))?;
        let mut options = serde_json::to_value(&challenge).map_err(|e| PasskeyError::Refused(e.to_string()))?;
        // A passkey the browser can offer without being told which one (the sign-in field's
        // autofill, a phone's passkey): ask for a discoverable credential where the
        // authenticator can make one. webauthn-rs asks for none; it does not check this on return.
        if let Some(selection) = options.pointer_mut("/publicKey/authenticatorSelection").and_then(|s| s.as_object_mut()) {
            selection.insert("residentKey".into(), "preferred".into());
        }
        let ceremony = self.remember(Ceremony::Add { link: hash(link), rp: rp.clone(), state: Box::new(state) }, now);
        Ok(Started { ceremony, options })
    }

    /// Finishes adding: the browser's answer verifies, the link is spent, the passkey is kept.
    pub fn finish_adding(
        &mut self,
        ceremony: &str,
        name: PasskeyName,
        credential: &RegisterPublicKeyCredential,
        now: Instant,
        unix_now: u64,
    ) -> Result<PasskeyInfo, PasskeyError> {
        let Ceremony::Add { link, rp, state } = self.take_ceremony(ceremony, now)? else {
            return Err(PasskeyError::CeremonyUnknown);
        };
        // Spent first: a link works for one passkey, even if two tabs raced with it.
        let before = self.links.len();
        self.links.retain(|(h, expires)| !(bool::from(h.ct_eq(&link)) && *expires > now));
        if self.links.len() == before {
            return Err(PasskeyError::LinkInvalid);
        }
        let key = rp.webauthn()?.finish_passkey_registration(credential, &state).map_err(|e| PasskeyError::Refused(e.to_string()))?;
        let id = URL_SAFE_NO_PAD.encode(key.cred_id().as_slice());
        if self.passkeys.iter().any(|p| p.id == id) {
            return Err(PasskeyError::Refused("that passkey is added already".into()));
        }
        let stored = StoredPasskey { id, name, rp_id: rp.id.clone(), created_at: unix_now, last_used_at: None, key };
        let info = stored.info();
        self.passkeys.push(stored);
        Ok(info)
    }

    /// Starts a sign-in at `rp` with any passkey made there.
    pub fn start_sign_in(&mut self, rp: &RelyingParty, now: Instant) -> Result<Started, PasskeyError> {
        let keys: Vec<Passkey> = self.passkeys.iter().filter(|p| p.rp_id == rp.id).map(|p| p.key.clone()).collect();
        if keys.is_empty() {
            return Err(PasskeyError::NoPasskeys);
        }
        let (challenge, state) = rp.webauthn()?.start_passkey_authentication(&keys).map_err(|e| PasskeyError::Refused(e.to_string()))?;
        let options = serde_json::to_value(&challenge).map_err(|e| PasskeyError::Refused(e.to_string()))?;
        let ceremony = self.remember(Ceremony::SignIn { rp: rp.clone(), state: Box::new(state) }, now);
        Ok(Started { ceremony, options })
    }

    /// Finishes a sign-in: the answer verifies against a passkey that still exists (removed
    /// ones are gone from the list), its counter and last use are updated. The caller saves the
    /// state before the session is answered, like a code's step.
    pub fn finish_sign_in(
        &mut self,
        ceremony: &str,
        credential: &PublicKeyCredential,
        now: Instant,
        unix_now: u64,
    ) -> Result<PasskeyInfo, PasskeyError> {
        let Ceremony::SignIn { rp, state } = self.take_ceremony(ceremony, now)? else {
            return Err(PasskeyError::CeremonyUnknown);
        };
        let result = rp.webauthn()?.finish_passkey_authentication(credential, &state).map_err(|e| PasskeyError::Refused(e.to_string()))?;
        let id = URL_SAFE_NO_PAD.encode(result.cred_id().as_slice());
        let Some(stored) = self.passkeys.iter_mut().find(|p| p.id == id && p.rp_id == rp.id) else {
            return Err(PasskeyError::Refused("the passkey was removed".into()));
        };
        stored.key.update_credential(&result);
        stored.last_used_at = Some(unix_now);
        Ok(stored.info())
    }

    /// Finds a passkey by id or (case-insensitive) name.
    fn position(&self, id_or_name: &str) -> Option<usize> {
        self.passkeys
            .iter()
            .position(|p| p.id == id_or_name)
            .or_else(|| self.passkeys.iter().position(|p| p.name.as_str().eq_ignore_ascii_case(id_or_name.trim())))
    }

    pub fn rename(&mut self, id_or_name: &str, name: PasskeyName) -> Result<PasskeyInfo, PasskeyError> {
        let index = self.position(id_or_name).ok_or(PasskeyError::NotFound)?;
        self.passkeys[index].name = name;
        Ok(self.passkeys[index].info())
    }

    /// Removes a passkey: it stops working at once (a sign-in in flight with it fails too).
    pub fn remove(&mut self, id_or_name: &str) -> Result<PasskeyInfo, PasskeyError> {
        let index = self.position(id_or_name).ok_or(PasskeyError::NotFound)?;
        Ok(self.passkeys.remove(index).info())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["box.local".into(), "localhost".into()]
    }

    #[test]
    fn names_are_validated() {
        assert_eq!(PasskeyName::parse("  MacBook Touch ID ").unwrap().as_str(), "MacBook Touch ID");
        assert_eq!(PasskeyName::parse(""), Err(PasskeyError::BadName));
        assert_eq!(PasskeyName::parse("   "), Err(PasskeyError::BadName));
        assert_eq!(PasskeyName::parse("a\nb"), Err(PasskeyError::BadName));
        assert_eq!(PasskeyName::parse(&"x".repeat(61)), Err(PasskeyError::BadName));
        assert!(PasskeyName::parse(&"é".repeat(60)).is_ok(), "characters, not bytes");
        assert!(serde_json::from_str::<PasskeyName>("\"\"").is_err(), "a state file cannot smuggle a bad name in");
    }

    #[test]
    fn the_relying_party_is_the_name_the_browser_used_with_exactly_the_apps_origins() {
        let rp = RelyingParty::for_request("localhost:8081", false, &[8081, 8082], &names()).unwrap();
        assert_eq!(rp.id(), "localhost");
        let origins: Vec<String> = rp.origins.iter().map(|o| o.origin().ascii_serialization()).collect();
        assert_eq!(origins, ["http://localhost:8081", "http://localhost:8082"]);
        assert!(rp.webauthn().is_ok());

        let rp = RelyingParty::for_request("Box.Local:8443", true, &[8443], &names()).unwrap();
        assert_eq!(rp.id(), "box.local");
        assert_eq!(rp.origins[0].as_str(), "https://box.local:8443/");
    }

    #[test]
    fn ip_addresses_and_strangers_get_no_passkeys_and_a_reason() {
        for (host, https) in [("127.0.0.1:8081", false), ("[::1]:8081", false), ("192.168.1.20:8443", true), ("[fe80::1]:8443", true)] {
            let err = RelyingParty::for_request(host, https, &[8081, 8443], &names()).unwrap_err();
            assert!(err.to_string().contains("IP address"), "{host}: {err}");
        }
        // A name the certificate does not carry, localhost over plain HTTP only, a port no app has.
        for (host, https) in [("evil.example:8443", true), ("box.local:8081", false), ("localhost:9999", false), ("localhost", false)] {
            let err = RelyingParty::for_request(host, https, &[8081, 8443], &names()).unwrap_err();
            assert!(err.to_string().contains("not one SimpleOTP serves"), "{host}: {err}");
        }
    }

    #[test]
    fn links_are_single_use_live_for_five_minutes_and_secret() {
        let mut registry = PasskeyRegistry::restore(None);
        let now = Instant::now();
        let link = registry.issue_link(now);
        assert!(!format!("{link:?}").contains(link.expose()));
        assert!(registry.link_is_valid(link.expose(), now));
        assert!(registry.link_is_valid(link.expose(), now + LINK_LIFETIME - Duration::from_secs(1)));
        assert!(!registry.link_is_valid(link.expose(), now + LINK_LIFETIME));
        assert!(!registry.link_is_valid("made-up", now));
        let rp = RelyingParty::for_request("localhost:8081", false, &[8081], &names()).unwrap();
        assert!(matches!(registry.start_adding(link.expose(), &rp, now + LINK_LIFETIME), Err(PasskeyError::LinkInvalid)));
        let started = registry.start_adding(link.expose(), &rp, now).unwrap();
        assert_eq!(started.options.pointer("/publicKey/rp/id").and_then(|v| v.as_str()), Some("localhost"));
        assert_eq!(started.options.pointer("/publicKey/authenticatorSelection/residentKey").and_then(|v| v.as_str()), Some("preferred"));
        assert_eq!(
            started.options.pointer("/publicKey/authenticatorSelection/userVerification").and_then(|v| v.as_str()),
            Some("required")
        );
    }

    #[test]
    fn ceremonies_expire_are_used_once_and_bounded() {
        let mut registry = PasskeyRegistry::restore(None);
        let now = Instant::now();
        let first = registry.remember(a_ceremony(), now);
        assert!(registry.take_ceremony(&first, now).is_ok());
        assert_eq!(registry.take_ceremony(&first, now).err(), Some(PasskeyError::CeremonyUnknown), "used once");
        let late = registry.remember(a_ceremony(), now);
        assert_eq!(registry.take_ceremony(&late, now + CEREMONY_LIFETIME).err(), Some(PasskeyError::CeremonyUnknown));
        for _ in 0..MAX_CEREMONIES + 10 {
            registry.remember(a_ceremony(), now);
        }
        assert_eq!(registry.ceremonies.len(), MAX_CEREMONIES);
    }

    #[test]
    fn signing_in_needs_a_passkey_for_that_name() {
        let mut registry = PasskeyRegistry::restore(None);
        assert_eq!(registry.start_sign_in(&localhost(), Instant::now()).err(), Some(PasskeyError::NoPasskeys));
        assert!(registry.snapshot().is_none(), "nothing to keep yet");
    }

    fn localhost() -> RelyingParty {
        RelyingParty::for_request("localhost:8081", false, &[8081], &names()).unwrap()
    }

    /// A real ceremony (the registry only keeps and hands them back; which kind does not matter).
    fn a_ceremony() -> Ceremony {
        let (_, state) = localhost().webauthn().unwrap().start_passkey_registration(Uuid::from_bytes([1; 16]), "u", "U", None).unwrap();
        Ceremony::Add { link: [0; 32], rp: localhost(), state: Box::new(state) }
    }
}
