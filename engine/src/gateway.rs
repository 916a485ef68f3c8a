//! The gateway's shared state and every operation on it.
//!
//! The HTTP server ([`crate::server`]) maps requests onto these methods, and the tray app and
//! CLI call the same methods directly (list and revoke sessions, unlock, replace the secret), so
//! each rule exists in one place.
//!
//! Locks: each piece of state has its own `std::sync::Mutex`, held for microseconds and never
//! across an `.await`. Writing the state file is the only slow thing, and it happens on a
//! blocking thread, serialised by an async mutex so writes never interleave.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;
use tokio::sync::{broadcast, watch};
use tracing::{error, info, warn};

use crate::authenticator::{Authenticator, AuthenticatorError, AuthenticatorInfo, Authenticators, PendingAuthenticator};
use crate::ca::CaCertificate;
use crate::config::{Account, AppConfig, AppName, Issuer, RoutePrefix, SessionSettings};
use crate::limiter::{Limiter, LimiterSettings, LimiterStatus, Locked};
use crate::passkey::{AddLink, PasskeyError, PasskeyInfo, PasskeyName, PasskeyRegistry, RelyingParty, Started};
use crate::protocol::NginxProof;
use crate::recovery::{RecoveryCode, RecoveryCodes};
use crate::secret::SecretStore;
use crate::session::{Lookup, SessionId, SessionInfo, SessionStore, SessionToken, SignInMethod};
use crate::state::{PersistedState, StateFile, StateWriteError};
use crate::ticket::{TicketStore, UnlockTicket};
use crate::totp::{unix_now, CodeRejected, Totp};

/// Something the tray app (or a log) may want to react to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayEvent {
    /// Someone is guessing codes: a lockout just began.
    LockoutStarted(Locked),
    /// Sessions were created or ended.
    SessionsChanged,
    /// Someone signed in with a recovery code; this many are left.
    RecoveryCodeUsed { remaining: usize },
    /// A passkey was added, renamed or removed.
    PasskeysChanged,
    /// The state file could not be written (the message says why and what to do).
    PersistFailed(String),
    /// An authenticator was added or removed.
    AuthenticatorsChanged,
}

/// A step another device took towards the apps, for the tray's "Add a phone" progress: it
/// opened the CA page (over plain HTTP, before it trusts anything), then reached the apps'
/// HTTPS without a certificate error (the CA page's own check, [`crate::protocol::routes::TRUST_CHECK`]).
/// The sign-in that follows is a session like any other ([`Gateway::sessions`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStep {
    OpenedCaPage,
    TrustsCa,
}

/// One [`DeviceStep`], by whom (the address nginx saw) and when (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceEvent {
    pub ip: IpAddr,
    pub step: DeviceStep,
    pub at: u64,
}

/// How many [`DeviceEvent`]s are kept (the newest): enough for a few phones at once, and a
/// bound on what anyone on the network can make the gateway remember.
const DEVICE_EVENTS_KEPT: usize = 64;

/// The answer to "Continue" (one sign-in per device, [`Gateway::continue_session`]).
#[derive(Debug)]
pub enum ContinueOutcome {
    Success(SessionToken),
    /// The session to continue from is not live (signed out, expired, another app's port).
    NoSession,
    Locked(Locked),
    NotSaved(String),
}

/// The answer to a login attempt.
#[derive(Debug)]
pub enum LoginOutcome {
    /// The code was right; here is the new session's token for the cookie.
    Success(SessionToken),
    /// The code was wrong, malformed or already used. `lockout` is set when this failure
    /// started a lockout.
    Rejected { reason: CodeRejected, lockout: Option<Locked> },
    /// Refused before the code was looked at.
    Locked(Locked),
    /// The code was right, but the state file could not be written, so the code could be
    /// replayed after a restart: no session is started. The message says what to fix.
    NotSaved(String),
}

/// Why an authenticator was not added ([`Gateway::add_authenticator`]).
#[derive(Debug)]
pub enum AddAuthenticatorError {
    /// The code is not the new app's: the pending authenticator comes back, to try again.
    Code(CodeRejected, PendingAuthenticator),
    /// The set refuses it (name taken, too many).
    Refused(AuthenticatorError),
    /// The secret store could not be written: nothing changed. The message says what to do.
    NotSaved(String),
}

impl std::fmt::Display for AddAuthenticatorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddAuthenticatorError::Code(CodeRejected::Malformed, _) => f.write_str("a code is six digits; type the one the new app shows"),
            AddAuthenticatorError::Code(CodeRejected::Wrong | CodeRejected::Replayed, _) => f.write_str(
                "that is not the new app's code: check that you scanned the new QR code (or typed the new setup key) and type the code it shows now",
            ),
            AddAuthenticatorError::Refused(e) => write!(f, "{e}"),
            AddAuthenticatorError::NotSaved(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for AddAuthenticatorError {}

/// Why an authenticator was not removed ([`Gateway::remove_authenticator`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoveAuthenticatorError {
    #[error("{0}")]
    Refused(AuthenticatorError),
    #[error("{0}")]
    NotSaved(String),
}

/// What [`Gateway::new`] needs.
pub struct GatewayParts {
    pub route_prefix: RoutePrefix,
    /// The authenticator apps whose codes sign in, as loaded from `secret_store`.
    pub authenticators: Authenticators,
    /// Where the authenticators are kept: adding or removing one writes it.
    pub secret_store: SecretStore,
    /// The entry authenticator apps show (issuer and account), for QR codes and the login page.
    pub issuer: Issuer,
    pub account: Account,
    pub session_settings: SessionSettings,
    pub limiter_settings: LimiterSettings,
    pub state_file: StateFile,
    pub persisted: PersistedState,
    /// The secret a local client must present to the control routes.
    pub control_token: String,
    /// What our nginx sends to prove a request comes from it (see [`crate::protocol`]).
    pub nginx_proof: NginxProof,
    /// The protected apps (for their names on pages and in session lists).
    pub apps: Vec<AppConfig>,
}

/// A cheap, clonable handle to the gateway's state.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    route_prefix: RoutePrefix,
    /// The authenticators whose codes sign in, each with its `Totp` (same order).
    authenticators: RwLock<InUse>,
    secret_store: SecretStore,
    issuer: Issuer,
    account: Account,
    /// Held while the secret store is written, so two changes never interleave.
    authenticators_write: tokio::sync::Mutex<()>,
    sessions: Mutex<SessionStore>,
    /// Per authenticator id: the newest TOTP step of its codes a login used. Held while a code
    /// is verified, so two requests carrying the same code cannot both get in.
    last_steps: Mutex<std::collections::BTreeMap<String, u64>>,
    limiter: Mutex<Limiter>,
    /// The owner's way past an empty budget (see [`crate::ticket`]).
    unlock_ticket: Mutex<TicketStore>,
    /// The hashes of the unused recovery codes, once a set was made.
    recovery: Mutex<Option<RecoveryCodes>>,
    /// The passkeys, the links to add one and the ceremonies in flight (see [`crate::passkey`]).
    passkeys: Mutex<PasskeyRegistry>,
    /// The names the apps' certificate carries: where passkeys work over HTTPS.
    https_names: RwLock<Vec<String>>,
    state_file: StateFile,
    write_lock: tokio::sync::Mutex<()>,
    /// Group commit: every call to [`Gateway::persist`] takes a number; a write covers every
    /// number taken before its snapshot, so callers that queued behind it return at once
    /// instead of writing the same state again (a thousand concurrent sign-outs are a few
    /// writes, not a thousand).
    persist_requests: std::sync::atomic::AtomicU64,
    persisted_up_to: std::sync::atomic::AtomicU64,
    control_token: String,
    nginx_proof: NginxProof,
    /// Listen port → name of each protected app.
    apps: RwLock<Vec<(u16, AppName)>>,
    /// The same, for the apps other devices reach (what the CA page links to).
    apps_facing_network: RwLock<Vec<(u16, AppName)>>,
    /// The newest steps other devices took ([`DeviceEvent`]), oldest first.
    device_events: Mutex<std::collections::VecDeque<DeviceEvent>>,
    events: broadcast::Sender<GatewayEvent>,
    persist_error: Mutex<Option<String>>,
    /// Counts the moments sessions ended (sign-out, revoke, everyone signed out, new secret).
    /// A `watch` rather than an event: a listener only needs to know "something ended since I
    /// last looked", so a burst of a thousand sign-outs is one wake-up, never a lagged queue.
    sessions_ended: watch::Sender<u64>,
    /// The local CA's certificate the CA page offers, once there is one (see
    /// [`Gateway::set_ca_certificate`]).
    ca_certificate: RwLock<Option<Arc<CaCertificate>>>,
    /// How this gateway replaces its CA for `simpleotp ca rotate` (set by [`crate::app`], which
    /// knows the CA store, the leaf and nginx). Held while a rotation runs, so two rotations
    /// never write the CA at once.
    ca_rotation: tokio::sync::Mutex<Option<CaRotation>>,
}

/// The authenticators in use and their `Totp`s (index for index).
struct InUse {
    set: Authenticators,
    totps: Vec<Totp>,
}

impl InUse {
    fn new(set: Authenticators, issuer: &Issuer, account: &Account) -> InUse {
        let totps = set.iter().map(|a| Totp::new(&a.secret, issuer, account)).collect();
        InUse { set, totps }
    }

    fn each(&self) -> impl Iterator<Item = (&Authenticator, &Totp)> {
        self.set.iter().zip(&self.totps)
    }
}

/// Checks `code` against every authenticator (all of them, always, so the time taken does not
/// say which one matched), each against its own replay guard. The first that accepts it, with
/// the matched step; otherwise the most telling refusal (a right code replayed says so).
fn verify_any<'a>(
    in_use: &'a InUse,
    last_steps: &std::collections::BTreeMap<String, u64>,
    code: &str,
    now: u64,
) -> Result<(&'a Authenticator, u64), CodeRejected> {
    let mut accepted = None;
    let mut refusal = CodeRejected::Wrong;
    for (authenticator, totp) in in_use.each() {
        let floor = replay_floor(last_steps.get(authenticator.id.as_str()).copied(), now);
        match totp.verify(code, now, floor) {
            Ok(step) => {
                accepted.get_or_insert((authenticator, step));
            }
            Err(reason @ (CodeRejected::Replayed | CodeRejected::Malformed)) => refusal = reason,
            Err(CodeRejected::Wrong) => {}
        }
    }
    accepted.ok_or(refusal)
}

/// Replaces the running gateway's CA (and the leaf nginx presents); the answer for
/// `simpleotp ca rotate`, or what went wrong, in words for the person who ran it.
pub type CaRotation =
    Arc<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<crate::control::RotatedCa, String>> + Send>> + Send + Sync>;

/// The step a code must be newer than. Normally the last step used; but if that lies beyond
/// any code we would accept now, the clock was ahead when it was recorded and has since been
/// set back. Holding on to it would refuse every code until real time caught up (days, after a
/// bad NTP jump), locking the owner out; a code from that "future" can only be replayed once
/// the clock reaches it again, so the guard restarts from now instead.
fn replay_floor(last_step: Option<u64>, now: u64) -> Option<u64> {
    match last_step {
        Some(last) if last > Totp::step_at(now) + 1 => {
            warn!(
                ahead_secs = (last - Totp::step_at(now)) * 30,
                "the last code used is from the future: the clock was set back; replay protection restarts from now"
            );
            None
        }
        other => other,
    }
}

fn app_names(apps: &[AppConfig]) -> Vec<(u16, AppName)> {
    apps.iter().map(|a| (a.listen.socket_addr().port(), a.name.clone())).collect()
}

/// The names a browser may use over HTTPS to reach the apps (their certificate's names), where
/// passkeys can work ([`RelyingParty::for_request`]).
fn https_names(apps: &[AppConfig]) -> Vec<String> {
    let machine = crate::config::MachineNames::this_machine();
    crate::lan::Reach::of(apps, &machine, &[]).map(|reach| reach.names.iter().map(|n| n.as_str().to_owned()).collect()).unwrap_or_default()
}

fn app_names_facing_network(apps: &[AppConfig]) -> Vec<(u16, AppName)> {
    let facing: Vec<AppConfig> = apps.iter().filter(|a| a.listen.is_network_facing()).cloned().collect();
    app_names(&facing)
}

/// The wall clock in milliseconds, for the limiter's snapshot (its own clock is monotonic).
fn unix_now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A poisoned lock means a panic happened while it was held; the data inside is still the best
/// we have (all updates are single assignments), so keep serving rather than cascade panics.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Gateway {
    pub fn new(parts: GatewayParts) -> Gateway {
        let now = unix_now();
        let sessions = SessionStore::from_sessions(parts.session_settings, parts.persisted.sessions, now);
        // Each authenticator's replay guard. A file from a version with one secret has one step:
        // it belonged to the first authenticator. Steps of authenticators no longer in the set
        // (removed by the CLI while no gateway ran) are dropped.
        let mut last_steps = parts.persisted.last_totp_steps;
        if let Some(step) = parts.persisted.last_totp_step {
            last_steps.entry(parts.authenticators.first().id.to_string()).or_insert(step);
        }
        last_steps.retain(|id, _| parts.authenticators.iter().any(|a| a.id.as_str() == id));
        let (events, _) = broadcast::channel(64);
        Gateway {
            inner: Arc::new(Inner {
                route_prefix: parts.route_prefix,
                authenticators: RwLock::new(InUse::new(parts.authenticators, &parts.issuer, &parts.account)),
                secret_store: parts.secret_store,
                issuer: parts.issuer,
                account: parts.account,
                authenticators_write: tokio::sync::Mutex::new(()),
                sessions: Mutex::new(sessions),
                last_steps: Mutex::new(last_steps),
                limiter: Mutex::new(Limiter::restore_or_new(
                    parts.limiter_settings,
                    parts.persisted.limiter.as_ref(),
                    Instant::now(),
                    unix_now_ms(),
                )),
                unlock_ticket: Mutex::new(TicketStore::default()),
                recovery: Mutex::new(parts.persisted.recovery.clone()),
                passkeys: Mutex::new(PasskeyRegistry::restore(parts.persisted.passkeys.as_ref())),
                https_names: RwLock::new(https_names(&parts.apps)),
                state_file: parts.state_file,
                write_lock: tokio::sync::Mutex::new(()),
                persist_requests: std::sync::atomic::AtomicU64::new(0),
                persisted_up_to: std::sync::atomic::AtomicU64::new(0),
                control_token: parts.control_token,
                nginx_proof: parts.nginx_proof,
                apps: RwLock::new(app_names(&parts.apps)),
                apps_facing_network: RwLock::new(app_names_facing_network(&parts.apps)),
                device_events: Mutex::new(std::collections::VecDeque::new()),
                events,
                persist_error: Mutex::new(None),
                sessions_ended: watch::Sender::new(0),
                ca_certificate: RwLock::new(None),
                ca_rotation: tokio::sync::Mutex::new(None),
            }),
        }
    }

    pub fn route_prefix(&self) -> &RoutePrefix {
        &self.inner.route_prefix
    }

    /// Sets (or clears) the local CA certificate the CA page and its downloads offer. Whoever
    /// loads or rotates the CA calls this; until then the CA routes answer 404.
    pub fn set_ca_certificate(&self, certificate: Option<CaCertificate>) {
        *self.inner.ca_certificate.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = certificate.map(Arc::new);
    }

    /// Sets how this gateway rotates its CA (see [`CaRotation`]).
    pub async fn set_ca_rotation(&self, rotation: CaRotation) {
        *self.inner.ca_rotation.lock().await = Some(rotation);
    }

    /// Rotates the CA the way [`Gateway::set_ca_rotation`] said; one rotation at a time. `None`
    /// when this gateway was given no way to (it is still starting).
    pub async fn rotate_ca(&self) -> Option<Result<crate::control::RotatedCa, String>> {
        let rotation = self.inner.ca_rotation.lock().await;
        let rotate = rotation.as_ref()?;
        Some(rotate().await)
    }

    /// The local CA certificate the CA page offers, if any.
    pub fn ca_certificate(&self) -> Option<Arc<CaCertificate>> {
        self.inner.ca_certificate.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<GatewayEvent> {
        self.inner.events.subscribe()
    }

    /// Wakes (`changed().await`) after sessions have ended, once the ended sessions are already
    /// refused. The app loop uses it to cut the WebSockets that were opened with them (see
    /// `app::cut_upgraded_connections`); a session being created does not count.
    pub fn sessions_ended(&self) -> watch::Receiver<u64> {
        self.inner.sessions_ended.subscribe()
    }

    fn emit(&self, event: GatewayEvent) {
        // No subscriber is fine: the CLI has none.
        let _ = self.inner.events.send(event);
    }

    /// `check`: is any of these tokens a live session for the app on `app_port`? Records the use.
    pub fn touch_any(&self, tokens: &[SessionToken], app_port: u16) -> bool {
        if tokens.is_empty() {
            return false;
        }
        let now = unix_now();
        let mut sessions = lock(&self.inner.sessions);
        tokens.iter().any(|t| sessions.touch(t, app_port, now) == Lookup::Valid)
    }

    /// Like [`Gateway::touch_any`] without recording a use.
    pub fn is_valid_any(&self, tokens: &[SessionToken], app_port: u16) -> bool {
        let now = unix_now();
        let sessions = lock(&self.inner.sessions);
        tokens.iter().any(|t| sessions.is_valid(t, app_port, now))
    }

    /// Whether `presented` is our nginx's proof (constant time).
    pub fn nginx_proof_matches(&self, presented: &[u8]) -> bool {
        self.inner.nginx_proof.matches(presented)
    }

    /// The name of the app listening on `port`, if it is one of ours.
    pub fn app_name(&self, port: u16) -> Option<AppName> {
        let apps = self.inner.apps.read().unwrap_or_else(|p| p.into_inner());
        apps.iter().find(|(p, _)| *p == port).map(|(_, name)| name.clone())
    }

    /// The protected apps changed (added, renamed, moved).
    pub fn set_apps(&self, apps: &[AppConfig]) {
        *self.inner.apps.write().unwrap_or_else(|p| p.into_inner()) = app_names(apps);
        *self.inner.apps_facing_network.write().unwrap_or_else(|p| p.into_inner()) = app_names_facing_network(apps);
        *self.inner.https_names.write().unwrap_or_else(|p| p.into_inner()) = https_names(apps);
    }

    /// The apps other devices reach: listen port and name.
    pub fn apps_facing_network(&self) -> Vec<(u16, AppName)> {
        self.inner.apps_facing_network.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Notes that the device at `ip` took `step` (see [`DeviceStep`]). This computer's own
    /// requests (loopback) are not another device and are not noted.
    pub fn record_device_step(&self, ip: IpAddr, step: DeviceStep) {
        if ip.is_loopback() {
            return;
        }
        let mut events = lock(&self.inner.device_events);
        let event = DeviceEvent { ip, step, at: unix_now() };
        // A page that checks every two seconds is one event per device and step, kept fresh.
        events.retain(|e| (e.ip, e.step) != (ip, step));
        if events.len() >= DEVICE_EVENTS_KEPT {
            events.pop_front();
        }
        events.push_back(event);
    }

    /// The steps other devices took, oldest first (see [`Gateway::record_device_step`]).
    pub fn device_events(&self) -> Vec<DeviceEvent> {
        lock(&self.inner.device_events).iter().copied().collect()
    }

    /// Whether a login from `ip` would be refused right now.
    pub fn peek_lockout(&self, ip: IpAddr) -> Option<Locked> {
        lock(&self.inner.limiter).peek(ip, Instant::now())
    }

    /// How many more wrong codes `ip` may send before sign-in locks (see [`Limiter::tries_left`]).
    pub fn tries_left(&self, ip: IpAddr) -> Option<crate::limiter::TriesLeft> {
        lock(&self.inner.limiter).tries_left(ip, Instant::now())
    }

    /// The authenticator app's entry for this gateway's secrets: issuer and account name.
    pub fn authenticator_entry(&self) -> (String, String) {
        (self.inner.issuer.to_string(), self.inner.account.to_string())
    }

    /// The entry's labels, for a new authenticator's QR code.
    pub fn issuer_and_account(&self) -> (Issuer, Account) {
        (self.inner.issuer.clone(), self.inner.account.clone())
    }

    fn in_use(&self) -> std::sync::RwLockReadGuard<'_, InUse> {
        self.inner.authenticators.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The authenticators in use, oldest first, with when a code of each was last accepted.
    pub fn authenticators(&self) -> Vec<AuthenticatorInfo> {
        let steps = lock(&self.inner.last_steps).clone();
        self.in_use()
            .set
            .iter()
            .map(|a| AuthenticatorInfo {
                last_used_at: steps.get(a.id.as_str()).map(|step| step.saturating_mul(crate::totp::STEP_SECONDS)),
                ..a.info()
            })
            .collect()
    }

    /// Adds an authenticator through the one rule ([`PendingAuthenticator::confirm`]): a code of
    /// the new secret. The secret store is written first; only then do its codes sign in, and
    /// the confirming code's step is its replay guard. If the store cannot be written, nothing
    /// changes.
    pub async fn add_authenticator(&self, pending: PendingAuthenticator, code: &str) -> Result<AuthenticatorInfo, AddAuthenticatorError> {
        let _writing = self.inner.authenticators_write.lock().await;
        let (added, step) = pending
            .confirm(code, unix_now(), &self.inner.issuer, &self.inner.account)
            .map_err(|(pending, reason)| AddAuthenticatorError::Code(reason, pending))?;
        let set = self.in_use().set.with_added(added).map_err(AddAuthenticatorError::Refused)?;
        let info = set.iter().last().expect("just added").info();
        self.write_authenticators(&set).await.map_err(AddAuthenticatorError::NotSaved)?;
        lock(&self.inner.last_steps).insert(info.id.clone(), step);
        *self.inner.authenticators.write().unwrap_or_else(|p| p.into_inner()) = InUse::new(set, &self.inner.issuer, &self.inner.account);
        let _ = self.persist().await;
        info!(id = %info.id, name = %info.name, "authenticator added");
        self.emit(GatewayEvent::AuthenticatorsChanged);
        Ok(info)
    }

    /// Removes the authenticator `id_or_name` (its id, or its name in any case): its codes fail
    /// from the moment the secret store no longer holds it. Never the last one. If the store
    /// cannot be written, nothing changes.
    pub async fn remove_authenticator(&self, id_or_name: &str) -> Result<AuthenticatorInfo, RemoveAuthenticatorError> {
        let _writing = self.inner.authenticators_write.lock().await;
        let (set, removed) = self.in_use().set.without(id_or_name).map_err(RemoveAuthenticatorError::Refused)?;
        self.write_authenticators(&set).await.map_err(RemoveAuthenticatorError::NotSaved)?;
        *self.inner.authenticators.write().unwrap_or_else(|p| p.into_inner()) = InUse::new(set, &self.inner.issuer, &self.inner.account);
        lock(&self.inner.last_steps).remove(removed.id.as_str());
        let _ = self.persist().await;
        info!(id = %removed.id, name = %removed.name, "authenticator removed");
        self.emit(GatewayEvent::AuthenticatorsChanged);
        Ok(removed.info())
    }

    /// Writes `set` to the secret store (off the async threads: the keychain may block).
    async fn write_authenticators(&self, set: &Authenticators) -> Result<(), String> {
        let (store, set) = (self.inner.secret_store.clone(), set.clone());
        let written = tokio::task::spawn_blocking(move || store.store_authenticators(&set)).await;
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                warn!("the authenticators could not be saved: {e}");
                Err(format!("nothing was changed: the authenticators could not be saved in {}: {e}", self.inner.secret_store.describe()))
            }
            Err(e) => Err(format!("nothing was changed: saving the authenticators failed ({e})")),
        }
    }

    /// Verifies a code from `ip` and, if right, starts a session for the app on `app_port`.
    pub async fn login(&self, ip: IpAddr, app_port: u16, code: &str, user_agent: &str) -> LoginOutcome {
        let attempt = match self.begin_attempt(ip, "login refused: locked out") {
            Ok(attempt) => attempt,
            Err(locked) => return locked,
        };
        let now = unix_now();
        let verified = self.verify_and_use_step(code, now);
        match verified {
            Ok(signed_in_with) => {
                lock(&self.inner.limiter).succeeded(attempt, Instant::now());
                self.start_session(ip, app_port, user_agent, signed_in_with, now).await
            }
            Err(reason) => {
                warn!(client = %ip, reason = ?reason, "login failed");
                self.attempt_failed(ip, &attempt, reason).await
            }
        }
    }

    /// Takes one try from the brute-force budget for `ip` (codes and recovery codes alike), or
    /// the refusal when `ip` (or everyone) is locked out, logged as `refused`.
    fn begin_attempt(&self, ip: IpAddr, refused: &'static str) -> Result<crate::limiter::Attempt, LoginOutcome> {
        lock(&self.inner.limiter).begin(ip, Instant::now(), unix_now()).map_err(|locked| {
            info!(client = %ip, retry_after_secs = locked.retry_after.as_secs(), scope = ?locked.scope, "{refused}");
            LoginOutcome::Locked(locked)
        })
    }

    /// A wrong code or recovery code: the spent token is on disk before the failure is answered
    /// (otherwise a crash or restart loop could hand out answers the budget never recorded), and
    /// a lockout it started is announced.
    async fn attempt_failed(&self, ip: IpAddr, attempt: &crate::limiter::Attempt, reason: CodeRejected) -> LoginOutcome {
        let _ = self.persist().await;
        if let Some(locked) = attempt.lockout_started {
            warn!(client = %ip, scope = ?locked.scope, lockout_secs = locked.retry_after.as_secs(), "lockout started: someone may be guessing codes");
            self.emit(GatewayEvent::LockoutStarted(locked));
        }
        LoginOutcome::Rejected { reason, lockout: attempt.lockout_started }
    }

    /// A sign-in with a recovery code (see [`crate::recovery`]): the brute-force limiter counts
    /// it exactly like a code (a wrong one is a failure, so guessing recovery codes spends the
    /// same budget); a right one is used up, and saved as used before the session is answered.
    pub async fn login_with_recovery_code(&self, ip: IpAddr, app_port: u16, typed: &str, user_agent: &str) -> LoginOutcome {
        let attempt = match self.begin_attempt(ip, "recovery code refused: locked out") {
            Ok(attempt) => attempt,
            Err(locked) => return locked,
        };
        let remaining = {
            let mut recovery = lock(&self.inner.recovery);
            recovery.as_mut().and_then(|set| set.use_code(typed).then(|| set.remaining()))
        };
        match remaining {
            Some(remaining) => {
                lock(&self.inner.limiter).succeeded(attempt, Instant::now());
                warn!(client = %ip, remaining, "signed in with a recovery code");
                self.emit(GatewayEvent::RecoveryCodeUsed { remaining });
                self.start_session(ip, app_port, user_agent, SignInMethod::RecoveryCode, unix_now()).await
            }
            None => {
                warn!(client = %ip, "recovery code refused");
                self.attempt_failed(ip, &attempt, CodeRejected::Wrong).await
            }
        }
    }

    /// A new set of recovery codes in place of the old one (which stops working at once), saved
    /// before the codes are handed out: they are shown once, and only their hashes are kept.
    pub async fn new_recovery_codes(&self) -> Result<Vec<RecoveryCode>, String> {
        let (set, codes) = RecoveryCodes::generate(unix_now());
        let previous = lock(&self.inner.recovery).replace(set);
        if let Err(e) = self.persist().await {
            *lock(&self.inner.recovery) = previous;
            return Err(e.to_string());
        }
        info!(codes = codes.len(), "new recovery codes made; the old ones no longer work");
        Ok(codes)
    }

    /// How many recovery codes are left, and when the set was made (`None`: none made yet).
    pub fn recovery_codes_left(&self) -> Option<(usize, u64)> {
        lock(&self.inner.recovery).as_ref().map(|set| (set.remaining(), set.created_at))
    }

    /// Where passkeys work for a page the browser opened at `host` (its `Host` header) over
    /// HTTPS or not; `Err` says why not (an IP address, a name SimpleOTP does not serve).
    pub fn relying_party(&self, host: &str, https: bool) -> Result<RelyingParty, PasskeyError> {
        let ports: Vec<u16> = self.inner.apps.read().unwrap_or_else(|p| p.into_inner()).iter().map(|(port, _)| *port).collect();
        let names = self.inner.https_names.read().unwrap_or_else(|p| p.into_inner());
        RelyingParty::for_request(host, https, &ports, &names)
    }

    /// Whether a passkey was added at this relying party (the login page's button).
    pub fn has_passkeys_for(&self, rp: &RelyingParty) -> bool {
        lock(&self.inner.passkeys).any_for(rp)
    }

    /// A one-time link to add a passkey (see [`crate::passkey::AddLink`]): for the owner only
    /// (the tray, the control route) or a browser that just signed in with a code.
    pub fn issue_passkey_link(&self) -> AddLink {
        let link = lock(&self.inner.passkeys).issue_link(Instant::now());
        info!("a link to add a passkey was made");
        link
    }

    pub fn passkey_link_is_valid(&self, link: &str) -> bool {
        lock(&self.inner.passkeys).link_is_valid(link, Instant::now())
    }

    /// The challenge for adding a passkey with a live link at `rp`.
    pub fn start_adding_passkey(&self, link: &str, rp: &RelyingParty) -> Result<Started, PasskeyError> {
        lock(&self.inner.passkeys).start_adding(link, rp, Instant::now())
    }

    /// Adds the passkey the browser made, saved before it is answered (a passkey the state file
    /// does not hold would vanish at the next restart).
    pub async fn finish_adding_passkey(
        &self,
        ceremony: &str,
        name: PasskeyName,
        credential: &webauthn_rs::prelude::RegisterPublicKeyCredential,
    ) -> Result<PasskeyInfo, PasskeyError> {
        let added = lock(&self.inner.passkeys).finish_adding(ceremony, name, credential, Instant::now(), unix_now());
        let added = added.inspect_err(|e| warn!(reason = ?e, "adding a passkey failed"))?;
        if let Err(e) = self.persist().await {
            let _ = lock(&self.inner.passkeys).remove(&added.id);
            return Err(PasskeyError::NotSaved(e.to_string()));
        }
        warn!(passkey = %added.name, rp_id = %added.rp_id, "a passkey was added");
        self.emit(GatewayEvent::PasskeysChanged);
        Ok(added)
    }

    /// The challenge for signing in with a passkey at `rp`; refused while `ip` is locked out
    /// (a lockout stops every way in, not just codes).
    pub fn start_passkey_sign_in(&self, ip: IpAddr, rp: &RelyingParty) -> Result<Started, PasskeyError> {
        if let Some(locked) = self.peek_lockout(ip) {
            return Err(PasskeyError::Locked(crate::server::format_duration(locked.retry_after)));
        }
        lock(&self.inner.passkeys).start_sign_in(rp, Instant::now())
    }

    /// A sign-in with a passkey: the limiter counts it like a code (a refused answer is a
    /// failure); a verified one updates the passkey's counter, which is saved with the session
    /// before the browser gets in.
    pub async fn sign_in_with_passkey(
        &self,
        ip: IpAddr,
        app_port: u16,
        ceremony: &str,
        credential: &webauthn_rs::prelude::PublicKeyCredential,
        user_agent: &str,
    ) -> LoginOutcome {
        let attempt = match self.begin_attempt(ip, "passkey sign-in refused: locked out") {
            Ok(attempt) => attempt,
            Err(locked) => return locked,
        };
        let verified = lock(&self.inner.passkeys).finish_sign_in(ceremony, credential, Instant::now(), unix_now());
        match verified {
            Ok(passkey) => {
                lock(&self.inner.limiter).succeeded(attempt, Instant::now());
                info!(client = %ip, passkey = %passkey.name, "signed in with a passkey");
                let method = SignInMethod::Passkey { name: passkey.name.to_string() };
                self.start_session(ip, app_port, user_agent, method, unix_now()).await
            }
            Err(e) => {
                warn!(client = %ip, reason = ?e, "passkey sign-in refused");
                self.attempt_failed(ip, &attempt, CodeRejected::Wrong).await
            }
        }
    }

    /// The passkeys, in the order they were added.
    pub fn passkeys(&self) -> Vec<PasskeyInfo> {
        lock(&self.inner.passkeys).list()
    }

    /// Renames a passkey (by id or name).
    pub async fn rename_passkey(&self, id_or_name: &str, name: PasskeyName) -> Result<PasskeyInfo, PasskeyError> {
        let renamed = lock(&self.inner.passkeys).rename(id_or_name, name)?;
        self.persist().await.map_err(|e| PasskeyError::NotSaved(e.to_string()))?;
        self.emit(GatewayEvent::PasskeysChanged);
        Ok(renamed)
    }

    /// Removes a passkey (by id or name): it stops working at once; saved before answering.
    pub async fn remove_passkey(&self, id_or_name: &str) -> Result<PasskeyInfo, PasskeyError> {
        let removed = lock(&self.inner.passkeys).remove(id_or_name)?;
        warn!(passkey = %removed.name, "a passkey was removed");
        self.persist().await.map_err(|e| PasskeyError::NotSaved(e.to_string()))?;
        self.emit(GatewayEvent::PasskeysChanged);
        Ok(removed)
    }

    /// Checks a code of any authenticator without starting a session and without consuming it
    /// (for the tray app's gates: adding an authenticator, new recovery codes, a new setup key).
    /// It still goes through the limiter.
    pub fn verify_code(&self, ip: IpAddr, code: &str) -> Result<(), LoginOutcome> {
        let attempt = lock(&self.inner.limiter).begin(ip, Instant::now(), unix_now()).map_err(LoginOutcome::Locked)?;
        let now = unix_now();
        let result = {
            let in_use = self.in_use();
            let steps = lock(&self.inner.last_steps);
            verify_any(&in_use, &steps, code, now).map(|_| ())
        };
        match result {
            Ok(_) => {
                lock(&self.inner.limiter).succeeded(attempt, Instant::now());
                Ok(())
            }
            Err(reason) => {
                self.persist_soon();
                Err(LoginOutcome::Rejected { reason, lockout: attempt.lockout_started })
            }
        }
    }

    /// Like [`Gateway::login`], past an empty budget, for the owner holding an unlock ticket
    /// (see [`crate::ticket`]). A live ticket lets its code be checked without the limiter (it
    /// spends one of the ticket's few attempts instead, right or wrong); a right code uses the
    /// ticket up. Anything that is not a live ticket (expired, used, made up) changes nothing:
    /// the attempt goes through [`Gateway::login`] like any other.
    pub async fn login_with_ticket(&self, ip: IpAddr, app_port: u16, code: &str, user_agent: &str, ticket: &str) -> LoginOutcome {
        if !lock(&self.inner.unlock_ticket).begin(ticket, Instant::now()) {
            return self.login(ip, app_port, code, user_agent).await;
        }
        let now = unix_now();
        let verified = self.verify_and_use_step(code, now);
        match verified {
            Ok(signed_in_with) => {
                lock(&self.inner.unlock_ticket).used_up();
                info!(client = %ip, "right code with an unlock ticket");
                self.start_session(ip, app_port, user_agent, signed_in_with, now).await
            }
            Err(reason) => {
                warn!(client = %ip, reason = ?reason, "login with an unlock ticket failed");
                LoginOutcome::Rejected { reason, lockout: None }
            }
        }
    }

    /// A right code's session for the app on `app_port`. The code's step must be on disk before
    /// the browser gets in: otherwise a restart would forget it and the same code would open a
    /// second session. So a failed write refuses the sign-in.
    async fn start_session(&self, ip: IpAddr, app_port: u16, user_agent: &str, signed_in_with: SignInMethod, now: u64) -> LoginOutcome {
        let (token, _) = lock(&self.inner.sessions).create(app_port, Some(ip), user_agent, signed_in_with, now);
        if let Err(e) = self.persist().await {
            lock(&self.inner.sessions).revoke_token(&token);
            warn!(client = %ip, "sign-in refused: the state file could not be written");
            return LoginOutcome::NotSaved(e.to_string());
        }
        info!(client = %ip, app_port, "signed in");
        self.emit(GatewayEvent::SessionsChanged);
        LoginOutcome::Success(token)
    }

    /// One sign-in per device: this browser holds `from`, a live session of the app on
    /// `from_port`, and asks for the app on `app_port` without a code. The new session is its
    /// own, bound to `app_port` like any other; a locked-out address gets none (the limiter
    /// decides as for a code), and the log says how the sign-in came about.
    pub async fn continue_session(
        &self,
        ip: IpAddr,
        app_port: u16,
        from_port: u16,
        from: &SessionToken,
        user_agent: &str,
    ) -> ContinueOutcome {
        if from_port == app_port || self.app_name(app_port).is_none() || !self.is_valid_any(std::slice::from_ref(from), from_port) {
            return ContinueOutcome::NoSession;
        }
        if let Some(locked) = self.peek_lockout(ip) {
            info!(client = %ip, app_port, retry_after_secs = locked.retry_after.as_secs(), "continue refused: locked out");
            return ContinueOutcome::Locked(locked);
        }
        info!(client = %ip, app_port, from_app_port = from_port, "continuing this device's session of another app");
        match self.start_session(ip, app_port, user_agent, SignInMethod::Continued, unix_now()).await {
            LoginOutcome::Success(token) => ContinueOutcome::Success(token),
            LoginOutcome::NotSaved(e) => ContinueOutcome::NotSaved(e),
            LoginOutcome::Locked(locked) => ContinueOutcome::Locked(locked),
            LoginOutcome::Rejected { .. } => ContinueOutcome::NoSession,
        }
    }

    /// The first of `tokens` (port, token) that is a live session of a configured app other than
    /// `app_port`, with that app's name: what "Continue — you are signed in to Jupyter" offers.
    pub fn live_session_elsewhere(&self, tokens: &[(u16, SessionToken)], app_port: u16) -> Option<(u16, AppName, SessionToken)> {
        tokens.iter().filter(|(port, _)| *port != app_port).find_map(|(port, token)| {
            let name = self.app_name(*port)?;
            self.is_valid_any(std::slice::from_ref(token), *port).then(|| (*port, name, token.clone()))
        })
    }

    /// Checks a code against every authenticator, each with its own replay guard; a right
    /// code's step becomes the newest used of the authenticator it came from (under the lock, so
    /// two requests with one code cannot both pass). Returns how the session signs in.
    fn verify_and_use_step(&self, code: &str, now: u64) -> Result<SignInMethod, CodeRejected> {
        let in_use = self.in_use();
        let mut last_steps = lock(&self.inner.last_steps);
        let (authenticator, step) = verify_any(&in_use, &last_steps, code, now)?;
        last_steps.insert(authenticator.id.to_string(), step);
        Ok(SignInMethod::Code { authenticator: authenticator.name.to_string() })
    }

    /// Whether `ticket` is a live unlock ticket (for the login page; spends nothing).
    pub fn unlock_ticket_is_valid(&self, ticket: &str) -> bool {
        lock(&self.inner.unlock_ticket).is_valid(ticket, Instant::now())
    }

    /// The owner's unlock: lifts the per-address lockouts (like [`Gateway::unlock`]) and issues
    /// a one-time ticket that gets the owner past an empty global budget; the budget itself is
    /// not refilled. Hand the ticket to the owner only (the control route and the tray app
    /// do); it replaces any earlier one.
    pub fn issue_unlock_ticket(&self) -> UnlockTicket {
        let ticket = lock(&self.inner.unlock_ticket).issue(Instant::now());
        self.unlock();
        info!("unlock ticket issued");
        ticket
    }

    /// Writes the state file without waiting for it, from sync code; the next write covers it
    /// when there is no runtime (a unit test).
    fn persist_soon(&self) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let gateway = self.clone();
            runtime.spawn(async move {
                let _ = gateway.persist().await;
            });
        }
    }

    pub fn sessions(&self) -> Vec<SessionInfo> {
        lock(&self.inner.sessions).list(unix_now())
    }

    /// Ends the session holding this token (logout).
    pub async fn revoke_token(&self, token: &SessionToken) -> bool {
        let removed = lock(&self.inner.sessions).revoke_token(token);
        self.after_revoke(removed).await
    }

    /// Ends one session by its public id (the UI's "Revoke").
    pub async fn revoke(&self, id: &SessionId) -> bool {
        let removed = lock(&self.inner.sessions).revoke(id);
        self.after_revoke(removed).await
    }

    /// Signs everyone out.
    pub async fn revoke_all(&self) -> usize {
        let count = lock(&self.inner.sessions).revoke_all();
        self.after_revoke(count > 0).await;
        count
    }

    async fn after_revoke(&self, removed: bool) -> bool {
        if removed {
            // Already refused by `check`; now its open WebSockets may be cut (no need to wait
            // for the disk).
            self.inner.sessions_ended.send_modify(|n| *n = n.wrapping_add(1));
            // A revoked session must not come back after a crash: write now, not lazily.
            let _ = self.persist().await;
            self.emit(GatewayEvent::SessionsChanged);
        }
        removed
    }

    /// Uses these authenticators from now on, in place of all others (a new setup key, which
    /// the caller already stored): everyone is signed out and the replay guards restart.
    pub async fn replace_authenticators(&self, set: Authenticators) {
        {
            let _writing = self.inner.authenticators_write.lock().await;
            *self.inner.authenticators.write().unwrap_or_else(|p| p.into_inner()) =
                InUse::new(set, &self.inner.issuer, &self.inner.account);
            lock(&self.inner.last_steps).clear();
        }
        self.revoke_all().await;
        let _ = self.persist().await;
        self.emit(GatewayEvent::AuthenticatorsChanged);
    }

    /// The owner lifts the per-address lockouts. The global budget is not refilled (that would
    /// give guessers more tries); see [`Gateway::issue_unlock_ticket`] for getting past it.
    pub fn unlock(&self) {
        lock(&self.inner.limiter).unlock(Instant::now());
        info!("per-address lockouts lifted by the owner");
        self.persist_soon();
    }

    pub fn limiter_status(&self) -> LimiterStatus {
        lock(&self.inner.limiter).status(Instant::now())
    }

    pub fn session_settings(&self) -> SessionSettings {
        lock(&self.inner.sessions).settings()
    }

    pub fn session_lifetime(&self) -> Duration {
        self.session_settings().lifetime
    }

    pub fn set_session_settings(&self, settings: SessionSettings) {
        lock(&self.inner.sessions).set_settings(settings);
    }

    /// The proof that this gateway knows the control token, for a client's `nonce`.
    pub fn control_proof(&self, nonce: &str) -> String {
        crate::protocol::control_proof(&self.inner.control_token, nonce)
    }

    pub fn control_token_matches(&self, presented: &str) -> bool {
        !presented.is_empty() && bool::from(self.inner.control_token.as_bytes().ct_eq(presented.as_bytes()))
    }

    /// The last state-file write error, if the last write failed.
    pub fn persist_error(&self) -> Option<String> {
        lock(&self.inner.persist_error).clone()
    }

    /// Removes expired sessions and writes the state if anything changed. Called periodically.
    pub async fn maintain(&self) {
        let dirty = {
            let mut sessions = lock(&self.inner.sessions);
            sessions.purge_expired(unix_now());
            sessions.take_dirty()
        };
        if dirty {
            let _ = self.persist().await;
        }
    }

    /// Writes the state file now.
    pub async fn persist(&self) -> Result<(), StateWriteError> {
        use std::sync::atomic::Ordering::SeqCst;
        // Taken after the caller's change was made, so a snapshot taken after this number was
        // read includes that change.
        let ticket = self.inner.persist_requests.fetch_add(1, SeqCst) + 1;
        let _serialised = self.inner.write_lock.lock().await;
        if self.inner.persisted_up_to.load(SeqCst) >= ticket && lock(&self.inner.persist_error).is_none() {
            return Ok(());
        }
        let covers = self.inner.persist_requests.load(SeqCst);
        let state = PersistedState {
            version: 1,
            last_totp_step: None,
            last_totp_steps: lock(&self.inner.last_steps).clone(),
            sessions: {
                let mut sessions = lock(&self.inner.sessions);
                sessions.take_dirty();
                sessions.snapshot()
            },
            limiter: Some(lock(&self.inner.limiter).snapshot(Instant::now(), unix_now_ms())),
            recovery: lock(&self.inner.recovery).clone(),
            passkeys: lock(&self.inner.passkeys).snapshot(),
        };
        let file = self.inner.state_file.clone();
        let path = file.path().to_path_buf();
        // A write task that panicked (or was cancelled by a runtime shutting down) is a failed
        // write like any other: reported and retried, never a panic here.
        let result = tokio::task::spawn_blocking(move || file.save(&state))
            .await
            .unwrap_or_else(|e| Err(StateWriteError { path, source: std::io::Error::other(e.to_string()) }));
        let mut last_error = lock(&self.inner.persist_error);
        match &result {
            Ok(()) => {
                *last_error = None;
                self.inner.persisted_up_to.store(covers, SeqCst);
            }
            Err(e) => {
                // Try again at the next maintenance tick.
                lock(&self.inner.sessions).mark_dirty();
                let message = e.to_string();
                if last_error.as_deref() != Some(message.as_str()) {
                    error!("{message}");
                    self.emit(GatewayEvent::PersistFailed(message.clone()));
                }
                *last_error = Some(message);
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_floor_keeps_recent_steps_and_forgets_future_ones() {
        let now = 1_700_000_000;
        let step = Totp::step_at(now);
        assert_eq!(replay_floor(None, now), None);
        assert_eq!(replay_floor(Some(step - 100), now), Some(step - 100));
        assert_eq!(replay_floor(Some(step), now), Some(step));
        // The next step's code may legitimately have been used already.
        assert_eq!(replay_floor(Some(step + 1), now), Some(step + 1));
        // Two steps or more ahead: the clock went back.
        assert_eq!(replay_floor(Some(step + 2), now), None);
        assert_eq!(replay_floor(Some(step + 10_000), now), None);
    }
}
