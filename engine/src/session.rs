//! Browser sessions: what a successful login buys, and what `check` looks up on every request.
//!
//! A session token is 256 bits from the operating system's random number generator, handed to
//! the browser once in a cookie and never kept: the store holds only its SHA-256 hash. Someone
//! who reads the state file (or a backup of it) learns nothing they can present as a cookie.
//! A plain hash (not a slow password hash) is right here because the token already has 256 bits
//! of entropy; there is nothing to brute-force.
//!
//! Each session has an absolute lifetime and an idle timeout. Sessions also get a short random
//! public id, so the UI can name and revoke one without ever handling its token hash.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::SessionSettings;

const TOKEN_BYTES: usize = 32;
/// Length of a token in unpadded base64url.
const TOKEN_CHARS: usize = 43;
/// Longest user agent kept per session (they are shown in the UI, not parsed).
const MAX_USER_AGENT: usize = 200;
/// `last_seen` is only moved forward when it has changed by this much, so that a busy page does
/// not mark the store dirty (and trigger a disk write) on every request. The idle timeout is
/// therefore accurate to this granularity.
const TOUCH_GRANULARITY_SECS: u64 = 30;

/// A session token as the browser holds it. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(String);

impl SessionToken {
    /// A fresh random token.
    pub fn generate() -> SessionToken {
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
        SessionToken(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Accepts a cookie value only if it has exactly the shape of a token we issue; anything
    /// else (truncated, oversized, padded, other alphabet) is not worth hashing.
    pub fn parse(value: &str) -> Option<SessionToken> {
        (value.len() == TOKEN_CHARS && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
            .then(|| SessionToken(value.to_string()))
    }

    /// The value to put in the cookie.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0.as_bytes()).into())
    }

    /// A per-session value for forms that change state (logout), derived from the token so it
    /// needs no storage. Another site cannot read it, so it cannot forge the form.
    pub fn csrf_token(&self) -> String {
        let digest = Sha256::new().chain_update(b"simpleotp-csrf\0").chain_update(self.0.as_bytes()).finalize();
        URL_SAFE_NO_PAD.encode(&digest[..24])
    }

    /// The form value of "Continue" (another app's login page, one sign-in per device): like
    /// [`SessionToken::csrf_token`], for that one purpose, so the page of one app never shows the
    /// sign-out form value of another.
    pub fn continue_token(&self) -> String {
        let digest = Sha256::new().chain_update(b"simpleotp-continue\0").chain_update(self.0.as_bytes()).finalize();
        URL_SAFE_NO_PAD.encode(&digest[..24])
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

/// SHA-256 of a token: the only form in which tokens are stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

impl Serialize for TokenHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl<'de> Deserialize<'de> for TokenHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = URL_SAFE_NO_PAD.decode(text.as_bytes()).map_err(serde::de::Error::custom)?;
        let array: [u8; 32] = bytes.try_into().map_err(|_| serde::de::Error::custom("token hash must be 32 bytes"))?;
        Ok(TokenHash(array))
    }
}

/// A short random identifier for a session, safe to show and to pass around in the UI.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(String);

impl SessionId {
    fn generate() -> SessionId {
        let mut bytes = [0u8; 9];
        getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
        SessionId(URL_SAFE_NO_PAD.encode(bytes))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for SessionId {
    fn from(s: &str) -> Self {
        SessionId(s.to_string())
    }
}

/// How a session's browser signed in, for the lists that show sessions ("Chrome on Android ·
/// Pixel"). Stored with the session; sessions from before it was recorded read as `Unknown`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SignInMethod {
    /// A code from an authenticator app: its name at sign-in (a later rename or removal does not
    /// change what happened).
    Code { authenticator: String },
    /// A one-time recovery code (see [`crate::recovery`]).
    RecoveryCode,
    /// "Continue": this device's live session of another app (one sign-in per device).
    Continued,
    /// A passkey (see [`crate::passkey`]): its name at sign-in.
    Passkey { name: String },
    /// Signed in before the method was recorded.
    #[default]
    Unknown,
}

impl SignInMethod {
    /// In words, for lists ("Chrome on Android · Pixel"): the authenticator's name, "recovery
    /// code", "passkey MacBook Touch ID", "Continue"; empty when unknown.
    pub fn describe(&self) -> String {
        match self {
            SignInMethod::Code { authenticator } => authenticator.clone(),
            SignInMethod::RecoveryCode => "recovery code".into(),
            SignInMethod::Passkey { name } => format!("passkey {name}"),
            SignInMethod::Continued => "Continue".into(),
            SignInMethod::Unknown => String::new(),
        }
    }
}

/// One session as stored and as listed. Times are Unix seconds (wall clock: they must mean the
/// same after a restart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub id: SessionId,
    pub token_hash: TokenHash,
    pub created_at: u64,
    pub last_seen: u64,
    pub client_ip: Option<IpAddr>,
    pub user_agent: String,
    /// The protected app (its listen port) the session was made for; it opens no other.
    /// `None` only in state files written before sessions were per app: such sessions are
    /// dropped at load, because nobody can tell which app they were for.
    #[serde(default)]
    pub app_port: Option<u16>,
    /// How the browser signed in; absent in state files written before it was recorded.
    #[serde(default)]
    pub signed_in_with: SignInMethod,
}

/// What the UI shows about a session: everything but the token hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    pub id: SessionId,
    pub created_at: u64,
    pub last_seen: u64,
    pub expires_at: u64,
    pub client_ip: Option<IpAddr>,
    pub user_agent: String,
    /// The app (listen port) this session opens.
    pub app_port: u16,
    pub signed_in_with: SignInMethod,
}

/// The result of looking a token up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Valid,
    /// The token was known but its session ran out (and is now removed).
    Expired,
    Unknown,
}

/// All sessions, keyed by token hash. Not synchronised: the server wraps it in a mutex and
/// holds it only for the few microseconds a lookup takes.
#[derive(Debug)]
pub struct SessionStore {
    settings: SessionSettings,
    sessions: HashMap<TokenHash, Session>,
    /// Set whenever something worth persisting changed; cleared by [`SessionStore::take_dirty`].
    dirty: bool,
}

impl SessionStore {
    pub fn new(settings: SessionSettings) -> SessionStore {
        SessionStore { settings, sessions: HashMap::new(), dirty: false }
    }

    /// Rebuilds a store from persisted sessions, dropping the ones that expired meanwhile.
    pub fn from_sessions(settings: SessionSettings, sessions: Vec<Session>, now: u64) -> SessionStore {
        let mut store = SessionStore::new(settings);
        store.sessions = sessions.into_iter().filter(|s| s.app_port.is_some()).map(|s| (s.token_hash, s)).collect();
        if store.purge_expired(now) == 0 {
            store.dirty = false;
        }
        store
    }

    pub fn settings(&self) -> SessionSettings {
        self.settings
    }

    /// New lifetimes apply to existing sessions too (a shorter lifetime ends old sessions).
    pub fn set_settings(&mut self, settings: SessionSettings) {
        self.settings = settings;
    }

    /// Starts a session and returns the token for the cookie. The token is fresh at every
    /// login, so a token planted before login (session fixation) is never upgraded.
    pub fn create(
        &mut self,
        app_port: u16,
        client_ip: Option<IpAddr>,
        user_agent: &str,
        signed_in_with: SignInMethod,
        now: u64,
    ) -> (SessionToken, SessionInfo) {
        let token = SessionToken::generate();
        let user_agent: String = user_agent.chars().filter(|c| !c.is_control()).take(MAX_USER_AGENT).collect();
        let session = Session {
            id: SessionId::generate(),
            token_hash: token.hash(),
            created_at: now,
            last_seen: now,
            client_ip,
            user_agent,
            app_port: Some(app_port),
            signed_in_with,
        };
        let info = self.info(&session);
        self.sessions.insert(session.token_hash, session);
        self.dirty = true;
        (token, info)
    }

    /// Looks a token up for the app on `app_port` and, when valid, records the use. This is the
    /// hot path of `check`. A session made for another app is `Unknown` here.
    pub fn touch(&mut self, token: &SessionToken, app_port: u16, now: u64) -> Lookup {
        let hash = token.hash();
        let Some(session) = self.sessions.get_mut(&hash).filter(|s| s.app_port == Some(app_port)) else {
            return Lookup::Unknown;
        };
        if is_expired(&self.settings, session, now) {
            self.sessions.remove(&hash);
            self.dirty = true;
            return Lookup::Expired;
        }
        if now >= session.last_seen.saturating_add(TOUCH_GRANULARITY_SECS) {
            session.last_seen = now;
            self.dirty = true;
        }
        Lookup::Valid
    }

    /// Looks a token up for the app on `app_port` without recording a use.
    pub fn is_valid(&self, token: &SessionToken, app_port: u16, now: u64) -> bool {
        self.sessions.get(&token.hash()).is_some_and(|s| s.app_port == Some(app_port) && !is_expired(&self.settings, s, now))
    }

    /// Ends the session holding `token`, if any.
    pub fn revoke_token(&mut self, token: &SessionToken) -> bool {
        let removed = self.sessions.remove(&token.hash()).is_some();
        self.dirty |= removed;
        removed
    }

    /// Ends the session with this public id, if any.
    pub fn revoke(&mut self, id: &SessionId) -> bool {
        let before = self.sessions.len();
        self.sessions.retain(|_, s| &s.id != id);
        let removed = self.sessions.len() != before;
        self.dirty |= removed;
        removed
    }

    /// Ends every session; returns how many there were.
    pub fn revoke_all(&mut self) -> usize {
        let count = self.sessions.len();
        self.sessions.clear();
        self.dirty |= count > 0;
        count
    }

    /// Removes expired sessions; returns how many.
    pub fn purge_expired(&mut self, now: u64) -> usize {
        let before = self.sessions.len();
        let settings = self.settings;
        self.sessions.retain(|_, s| !is_expired(&settings, s, now));
        let removed = before - self.sessions.len();
        self.dirty |= removed > 0;
        removed
    }

    /// Active sessions, newest first.
    pub fn list(&self, now: u64) -> Vec<SessionInfo> {
        let mut list: Vec<SessionInfo> =
            self.sessions.values().filter(|s| !is_expired(&self.settings, s, now)).map(|s| self.info(s)).collect();
        list.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.id.as_str().cmp(b.id.as_str())));
        list
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// All sessions, for persisting.
    pub fn snapshot(&self) -> Vec<Session> {
        self.sessions.values().cloned().collect()
    }

    /// Marks the store as needing a write (e.g. after a write failed).
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Whether anything changed since the last call.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    fn info(&self, s: &Session) -> SessionInfo {
        SessionInfo {
            id: s.id.clone(),
            created_at: s.created_at,
            last_seen: s.last_seen,
            // Saturating: a state file may hold any u64 (found by the property test
            // `properties::state_files_load_safely`).
            expires_at: (s.created_at.saturating_add(self.settings.lifetime.as_secs()))
                .min(s.last_seen.saturating_add(self.settings.idle_timeout.as_secs())),
            client_ip: s.client_ip,
            user_agent: s.user_agent.clone(),
            app_port: s.app_port.unwrap_or_default(),
            signed_in_with: s.signed_in_with.clone(),
        }
    }
}

/// A session is over once it is older than the lifetime or unused for longer than the idle
/// timeout. If the clock jumps backwards, ages saturate at zero: the session stays valid until
/// the clock catches up, rather than ending for everyone (or never ending).
fn is_expired(settings: &SessionSettings, s: &Session, now: u64) -> bool {
    now.saturating_sub(s.created_at) >= settings.lifetime.as_secs() || now.saturating_sub(s.last_seen) >= settings.idle_timeout.as_secs()
}

/// Finds the session tokens in the cookie named `name` among the `Cookie` headers' values. A
/// browser may send a cookie more than once (e.g. one set for another path); every well-formed
/// candidate is returned so the caller can accept the one that is valid.
pub fn tokens_from_cookie_headers<'a>(headers: impl Iterator<Item = &'a str>, name: &str) -> Vec<SessionToken> {
    let mut found = Vec::new();
    for header in headers {
        for pair in header.split(';') {
            if let Some((pair_name, value)) = pair.trim().split_once('=') {
                if pair_name.trim() == name {
                    if let Some(token) = SessionToken::parse(value.trim().trim_matches('"')) {
                        if found.len() < 4 {
                            found.push(token);
                        }
                    }
                }
            }
        }
    }
    found
}

/// The `Cookie` headers' pairs joined into one header value, without any SimpleOTP session
/// cookie (of any app): what the app behind the gateway receives. Works on bytes, so cookies
/// that are not UTF-8 still reach the app unchanged.
pub fn cookies_without_sessions<'a>(headers: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for header in headers {
        for pair in header.split(|b| *b == b';') {
            let pair = pair.trim_ascii();
            if pair.is_empty() {
                continue;
            }
            let name = pair.split(|b| *b == b'=').next().unwrap_or_default().trim_ascii();
            if crate::protocol::is_session_cookie_name(name) {
                continue;
            }
            if !out.is_empty() {
                out.extend_from_slice(b"; ");
            }
            out.extend_from_slice(pair);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const APP: u16 = 8081;
    const COOKIE: &str = "simpleotp_8081";

    fn settings() -> SessionSettings {
        SessionSettings { lifetime: Duration::from_secs(1000), idle_timeout: Duration::from_secs(100) }
    }

    #[test]
    fn tokens_are_random_and_256_bits() {
        let a = SessionToken::generate();
        let b = SessionToken::generate();
        assert_ne!(a, b);
        assert_eq!(URL_SAFE_NO_PAD.decode(a.expose()).unwrap().len(), 32);
        assert!(SessionToken::parse(a.expose()).is_some());
        assert_eq!(format!("{a:?}"), "SessionToken(<redacted>)");
    }

    #[test]
    fn only_well_formed_tokens_parse() {
        let good = SessionToken::generate();
        let v = good.expose();
        for bad in [&v[..42], &format!("{v}A")[..], "", &v.replace(|_: char| true, "=")[..43], &format!("{}+", &v[..42])[..]] {
            assert!(SessionToken::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn store_keeps_only_hashes() {
        let mut store = SessionStore::new(settings());
        let (token, _) = store.create(APP, None, "ua", SignInMethod::Unknown, 10);
        let json = serde_json::to_string(&store.snapshot()).unwrap();
        assert!(!json.contains(token.expose()));
        assert_eq!(store.touch(&token, APP, 11), Lookup::Valid);
    }

    #[test]
    fn idle_timeout_and_lifetime_end_sessions() {
        let mut store = SessionStore::new(settings());
        let (token, _) = store.create(APP, None, "ua", SignInMethod::Unknown, 0);
        // Used every 90 s: stays alive through idle timeouts until the absolute lifetime.
        let mut t = 0;
        while t + 90 < 1000 {
            t += 90;
            assert_eq!(store.touch(&token, APP, t), Lookup::Valid, "at {t}");
        }
        assert_eq!(store.touch(&token, APP, 1000), Lookup::Expired);
        assert_eq!(store.touch(&token, APP, 1001), Lookup::Unknown);

        let (idle, _) = store.create(APP, None, "ua", SignInMethod::Unknown, 2000);
        assert_eq!(store.touch(&idle, APP, 2099), Lookup::Valid);
        // last_seen moved at 2099 (≥ 30 s later), so idle counts from there.
        assert_eq!(store.touch(&idle, APP, 2198), Lookup::Valid);
        assert_eq!(store.touch(&idle, APP, 2298), Lookup::Expired);
    }

    #[test]
    fn clock_going_back_keeps_sessions_valid() {
        let mut store = SessionStore::new(settings());
        let (token, _) = store.create(APP, None, "ua", SignInMethod::Unknown, 5000);
        assert_eq!(store.touch(&token, APP, 4000), Lookup::Valid);
        // …and forward past the lifetime ends them.
        assert_eq!(store.touch(&token, APP, 7000), Lookup::Expired);
    }

    #[test]
    fn revoke_one_and_all() {
        let mut store = SessionStore::new(settings());
        let (a, info_a) = store.create(APP, "127.0.0.1".parse().ok(), "A", SignInMethod::Unknown, 1);
        let (b, _) = store.create(APP, None, "B", SignInMethod::Unknown, 2);
        let (c, _) = store.create(APP, None, "C", SignInMethod::Unknown, 3);
        assert!(store.revoke(&info_a.id));
        assert!(!store.revoke(&info_a.id));
        assert_eq!(store.touch(&a, APP, 4), Lookup::Unknown);
        assert_eq!(store.touch(&b, APP, 4), Lookup::Valid);
        assert_eq!(store.revoke_all(), 2);
        assert_eq!(store.touch(&c, APP, 4), Lookup::Unknown);
    }

    #[test]
    fn list_shows_metadata_but_no_hash() {
        let mut store = SessionStore::new(settings());
        store.create(APP, "10.0.0.7".parse().ok(), "Mozilla/5.0\r\nX: y", SignInMethod::Unknown, 1);
        let list = store.list(2);
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].client_ip, "10.0.0.7".parse().ok());
        assert_eq!(list[0].user_agent, "Mozilla/5.0X: y", "control characters are dropped");
        assert_eq!(list[0].expires_at, 101);
    }

    #[test]
    fn dirty_tracking_skips_frequent_touches() {
        let mut store = SessionStore::new(settings());
        let (token, _) = store.create(APP, None, "ua", SignInMethod::Unknown, 0);
        assert!(store.take_dirty());
        store.touch(&token, APP, 5);
        assert!(!store.take_dirty(), "a touch within the granularity is not worth a write");
        store.touch(&token, APP, 40);
        assert!(store.take_dirty());
    }

    #[test]
    fn reload_drops_expired_sessions() {
        let mut store = SessionStore::new(settings());
        let (old, _) = store.create(APP, None, "ua", SignInMethod::Unknown, 0);
        let (fresh, _) = store.create(APP, None, "ua", SignInMethod::Unknown, 950);
        let restored = SessionStore::from_sessions(settings(), store.snapshot(), 1001);
        assert_eq!(restored.len(), 1);
        assert!(restored.is_valid(&fresh, APP, 1001));
        assert!(!restored.is_valid(&old, APP, 1001));
    }

    #[test]
    fn cookie_header_parsing() {
        let t = SessionToken::generate();
        let header = format!("a=1; {COOKIE}=garbage; {COOKIE}={}; b=2", t.expose());
        let found = tokens_from_cookie_headers([header.as_str()].into_iter(), COOKIE);
        assert_eq!(found, vec![t.clone()]);
        assert!(tokens_from_cookie_headers(["x=1", ""].into_iter(), COOKIE).is_empty());
        let quoted = format!("{COOKIE}=\"{}\"", t.expose());
        assert_eq!(tokens_from_cookie_headers([quoted.as_str()].into_iter(), COOKIE), vec![t]);
    }

    #[test]
    fn csrf_token_depends_on_the_session() {
        let a = SessionToken::generate();
        let b = SessionToken::generate();
        assert_ne!(a.csrf_token(), b.csrf_token());
        assert_eq!(a.csrf_token(), a.csrf_token());
        assert!(!a.csrf_token().contains(a.expose()));
    }

    #[test]
    fn a_session_opens_only_the_app_it_was_made_for() {
        let mut store = SessionStore::new(settings());
        let (token, info) = store.create(APP, None, "ua", SignInMethod::Unknown, 10);
        assert_eq!(info.app_port, APP);
        assert_eq!(store.touch(&token, 8082, 11), Lookup::Unknown);
        assert!(!store.is_valid(&token, 8082, 11));
        assert_eq!(store.touch(&token, APP, 11), Lookup::Valid);
    }

    #[test]
    fn sessions_from_before_apps_had_their_own_are_dropped_at_load() {
        let mut store = SessionStore::new(settings());
        let (token, _) = store.create(APP, None, "ua", SignInMethod::Unknown, 10);
        let mut old = store.snapshot();
        old[0].app_port = None;
        let restored = SessionStore::from_sessions(settings(), old, 11);
        assert!(restored.is_empty());
        assert!(!restored.is_valid(&token, APP, 11));
        // And a state file without the field reads as such a session.
        let json = serde_json::to_value(&store.snapshot()[0]).unwrap();
        let mut json = json.as_object().unwrap().clone();
        json.remove("app_port");
        let parsed: Session = serde_json::from_value(serde_json::Value::Object(json)).unwrap();
        assert_eq!(parsed.app_port, None);
    }

    #[test]
    fn the_app_gets_every_cookie_but_the_sessions() {
        let headers: [&[u8]; 2] = [b"_xsrf=2|ab; simpleotp_8081=tok; theme=dark", b"__Host-simpleotp_8082=x;; simpleotp_9=y; bin=\xff;"];
        assert_eq!(cookies_without_sessions(headers.into_iter()), b"_xsrf=2|ab; theme=dark; bin=\xff".to_vec());
        assert_eq!(cookies_without_sessions([b"simpleotp_8081=tok".as_slice()].into_iter()), Vec::<u8>::new());
        assert_eq!(cookies_without_sessions([b"\xfe=\xff".as_slice()].into_iter()), b"\xfe=\xff".to_vec());
    }
}
