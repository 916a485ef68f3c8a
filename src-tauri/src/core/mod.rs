//! The tray app's state and every command the window and the tray menu use, in plain Rust.
//!
//! Nothing here knows about Tauri: the commands in [`crate::commands`] are one-line wrappers,
//! and the tests below drive a real engine (auth server, nginx, keychain) without a webview.
//!
//! ```text
//! Core::new(paths)      load the config (a broken one is reported, not overwritten)
//!   .start_up()         no secret → NeedsSetup (the wizard), else start the engine
//!   .wizard_begin()     a new secret, kept in memory only → QR code and key for the screen
//!   .wizard_confirm()   a current code proves the phone has it → keychain → engine starts
//!   .app_add() …        validate → apply to the running nginx (reload) → save the config
//!   .shutdown()         stop nginx and the auth server, write the state file (Quit)
//! ```
//!
//! The secret leaves the keychain only for the two screens that show it (the wizard and "show
//! the QR code again" after a current code), and is never logged or written to the config.
//! Replacing it also needs a current code of the old one first (the same gate).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use simpleotp_engine::app::{Application, GatewayHandle, Settings, StartError};
use simpleotp_engine::config::{AppConfig, AppName, Config, ConfigError, ListenAddr, SessionSettings, UpstreamUrl};
use simpleotp_engine::gateway::{Gateway, GatewayEvent, LoginOutcome};
use simpleotp_engine::limiter::{LockScope, Locked};
use simpleotp_engine::nginx::{self, NginxStatus};
use simpleotp_engine::qr;
use simpleotp_engine::secret::{SecretError, SecretStore};
use simpleotp_engine::session::SessionId;
use simpleotp_engine::totp::{unix_now, CodeRejected, Totp, TotpSecret};

use crate::paths::Paths;
use crate::tray_menu::{Protection, TrayState};

/// How long "does the upstream answer?" waits before warning.
const UPSTREAM_PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

/// The address the desktop user's own attempts count against in the limiter (show QR again).
const DESKTOP_IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Errors of the commands. Each message is shown to the user as it is.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("The config file has a problem; fix it (or move it away) and press Retry.\n{0}")]
    ConfigBroken(String),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("That code is not right. Type the code your authenticator app shows now (and check that this computer's clock is right).")]
    WrongCode,
    #[error("That code was already used. Wait for the next one: codes change every 30 seconds.")]
    CodeReplayed,
    #[error("A code has 6 digits.")]
    MalformedCode,
    #[error("Too many wrong codes. Try again in {0}, or press Unlock under Security.")]
    Locked(String),
    #[error("SimpleOTP is already set up. To use a new secret, use Replace secret under Security.")]
    AlreadySetUp,
    #[error("No new secret is waiting to be confirmed; start again.")]
    NoPendingSecret,
    #[error("Protection is not running. {0}")]
    NotRunning(&'static str),
    #[error("No app is named {0:?}.")]
    NoSuchApp(String),
    #[error("That session has already ended.")]
    NoSuchSession,
    #[error("Launch at login could not be changed: {0}")]
    LaunchAtLogin(String),
}

impl CoreError {
    /// The message with its causes, for the UI (`cannot write …: Permission denied`).
    pub fn user_message(&self) -> String {
        simpleotp_engine::error_chain(self)
    }
}

type Result<T, E = CoreError> = std::result::Result<T, E>;

/// Launch at login is the OS's business (a LaunchAgent, a registry key, an autostart entry); the
/// Tauri part implements it with tauri-plugin-autostart, tests with a flag.
pub trait LaunchAtLogin: Send + Sync {
    fn is_enabled(&self) -> std::result::Result<bool, String>;
    fn set_enabled(&self, enabled: bool) -> std::result::Result<(), String>;
}

/// What the Tauri part reacts to: refresh the tray and the window, or notify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreEvent {
    /// The status, the apps or the sessions changed.
    Changed,
    /// Someone is guessing codes (the message is for a desktop notification).
    LockoutStarted(String),
}

/// Where the gateway is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Not started yet (before `start_up`).
    Idle,
    NeedsSetup,
    Starting,
    Running,
    Paused,
    /// It could not start; the message says why.
    Failed(String),
}

/// A running engine.
struct Engine {
    cancel: CancellationToken,
    task: JoinHandle<()>,
    watchers: Vec<JoinHandle<()>>,
    warnings: Vec<String>,
}

/// A secret shown on screen but not yet confirmed with a code.
struct Pending {
    secret: TotpSecret,
    purpose: Purpose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Setup,
    Replace,
}

pub struct Core {
    paths: Paths,
    launch_at_login: Box<dyn LaunchAtLogin>,
    config: Mutex<Config>,
    /// Set when the config file could not be read: nothing is saved over it until it is fixed.
    config_error: Mutex<Option<String>>,
    /// Listen on the local network (0.0.0.0) rather than this computer only. Follows the apps.
    lan: Mutex<bool>,
    phase: Mutex<Phase>,
    /// Held across starting and stopping, so that two of them never interleave.
    engine: tokio::sync::Mutex<Option<Engine>>,
    /// A clone of the running gateway's handle for the quick, synchronous reads.
    handle: Mutex<Option<GatewayHandle>>,
    pending: Mutex<Option<Pending>>,
    events: broadcast::Sender<CoreEvent>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ---- what the window sees (serialised to JSON) ----

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StatusView {
    /// `needs_setup`, `starting`, `running`, `paused`, `error`.
    pub state: &'static str,
    /// Why it is in an error state, or what nginx is doing, in nginx's own words.
    pub message: Option<String>,
    pub apps: Vec<AppView>,
    pub sessions: usize,
    pub warnings: Vec<String>,
    pub lan: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AppView {
    pub name: String,
    pub upstream: String,
    pub port: u16,
    pub url: String,
}

/// The secret, for the one screen that shows it.
#[derive(Serialize)]
pub struct SecretView {
    pub qr_svg: String,
    /// Base32 in groups of four (what a person types by hand).
    pub secret_groups: Vec<String>,
    pub issuer: String,
    pub account: String,
}

// Debug without the secret: a stray `{:?}` must not print it.
impl std::fmt::Debug for SecretView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretView").field("issuer", &self.issuer).field("account", &self.account).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct AppInput {
    pub name: String,
    /// `http://127.0.0.1:8888`; a bare `127.0.0.1:8888` gets `http://`.
    pub upstream: String,
    /// Where the protected app will answer.
    pub port: u16,
}

#[derive(Debug, Clone, Serialize)]
pub struct AppSaved {
    pub app: AppView,
    /// Set when nothing answers at the upstream (the app may just not be running yet).
    pub warning: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SessionView {
    pub id: String,
    /// The app the session opens (its name; its port if no app listens there any more).
    pub app: String,
    pub created_at: u64,
    pub last_seen: u64,
    pub expires_at: u64,
    pub client_ip: String,
    pub user_agent: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SecurityView {
    pub running: bool,
    pub everyone_locked_for_secs: Option<u64>,
    pub locked_clients: Vec<LockedClientView>,
    pub recent_failures: Vec<FailureView>,
}

/// What Unlock gives: the lockouts lifted, and a one-time sign-in link per app (all carrying the
/// same ticket) that gets past an empty budget, which unlocking does not refill.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UnlockView {
    pub security: SecurityView,
    pub links: Vec<UnlockLinkView>,
    pub expires_in_secs: u64,
    /// How many codes the link lets through.
    pub attempts: u32,
}

#[derive(Clone, Serialize, PartialEq, Eq)]
pub struct UnlockLinkView {
    pub app: String,
    pub url: String,
}

impl std::fmt::Debug for UnlockLinkView {
    /// The URL holds the ticket, which is for the owner's browser only, not for logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnlockLinkView").field("app", &self.app).field("url", &"<redacted>").finish()
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LockedClientView {
    pub ip: String,
    pub secs: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FailureView {
    pub ip: String,
    pub at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SettingsView {
    pub lifetime_secs: u64,
    pub idle_timeout_secs: u64,
    pub launch_at_login: bool,
    pub lan: bool,
    /// `None`: search for nginx.
    pub nginx_path: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SettingsSaved {
    pub settings: SettingsView,
    /// Which nginx will be used, or why none can be.
    pub nginx: String,
    pub warnings: Vec<String>,
}

pub const LAN_WARNING: &str = "Your apps can now be reached from other devices on your network, over plain HTTP: \
codes and session cookies cross the network unencrypted. Use this only on a network you trust.";

impl Core {
    /// Loads the config. A config that cannot be read is reported by [`Core::status`], and
    /// nothing is saved over it until it is fixed.
    pub fn new(paths: Paths, launch_at_login: Box<dyn LaunchAtLogin>) -> Arc<Core> {
        let (config, config_error) = match Config::load(&paths.config) {
            Ok(config) => (config, None),
            Err(e) => (Config::default(), Some(e.to_string())),
        };
        let lan = config.apps.iter().any(|a| a.listen.socket_addr().ip().is_unspecified());
        let (events, _) = broadcast::channel(32);
        Arc::new(Core {
            paths,
            launch_at_login,
            config: Mutex::new(config),
            config_error: Mutex::new(config_error),
            lan: Mutex::new(lan),
            phase: Mutex::new(Phase::Idle),
            engine: tokio::sync::Mutex::new(None),
            handle: Mutex::new(None),
            pending: Mutex::new(None),
            events,
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<CoreEvent> {
        self.events.subscribe()
    }

    fn changed(&self) {
        let _ = self.events.send(CoreEvent::Changed);
    }

    fn set_phase(&self, phase: Phase) {
        *lock(&self.phase) = phase;
        self.changed();
    }

    fn config(&self) -> Config {
        lock(&self.config).clone()
    }

    fn gateway(&self) -> Option<Gateway> {
        lock(&self.handle).as_ref().map(|h| h.gateway().clone())
    }

    /// The running gateway (for the tests, which sign in through it like a browser would).
    pub fn running_gateway(&self) -> Option<Gateway> {
        self.gateway()
    }

    fn secret_store(&self) -> SecretStore {
        self.paths.secret.clone()
    }

    /// Runs a (blocking) keychain call off the async threads.
    async fn keychain<T: Send + 'static>(&self, f: impl FnOnce(SecretStore) -> T + Send + 'static) -> T {
        let store = self.secret_store();
        tokio::task::spawn_blocking(move || f(store)).await.expect("keychain calls do not panic")
    }

    // ---- life cycle ----

    /// First thing after launch: the wizard if there is no secret, else protection on.
    pub async fn start_up(self: &Arc<Self>) {
        if let Some(message) = lock(&self.config_error).clone() {
            self.set_phase(Phase::Failed(format!("{}", CoreError::ConfigBroken(message))));
            return;
        }
        match self.keychain(|s| s.exists()).await {
            Ok(false) => self.set_phase(Phase::NeedsSetup),
            Ok(true) => {
                let _ = self.start_engine().await;
            }
            Err(e) => self.set_phase(Phase::Failed(CoreError::from(e).user_message())),
        }
    }

    /// Whether the wizard has yet to run.
    pub fn needs_setup(&self) -> bool {
        *lock(&self.phase) == Phase::NeedsSetup
    }

    async fn start_engine(self: &Arc<Self>) -> Result<()> {
        let mut slot = self.engine.lock().await;
        if slot.is_some() {
            return Ok(());
        }
        self.set_phase(Phase::Starting);
        let settings = Settings::new(self.config(), self.paths.data_dir.clone(), self.secret_store());
        let app = match Application::build(settings).await {
            Ok(app) => app,
            Err(e) => {
                let e = CoreError::from(e);
                warn!("protection could not start: {}", e.user_message());
                self.set_phase(Phase::Failed(e.user_message()));
                return Err(e);
            }
        };
        let handle = app.handle();
        let warnings = app.warnings().to_vec();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(app.run_until_stopped(cancel.clone()));
        let watchers = self.watch(&handle);
        *lock(&self.handle) = Some(handle);
        *slot = Some(Engine { cancel, task, watchers, warnings });
        self.set_phase(Phase::Running);
        info!("protection on");
        Ok(())
    }

    /// Forwards the gateway's events and nginx's status changes to the UI.
    fn watch(self: &Arc<Self>, handle: &GatewayHandle) -> Vec<JoinHandle<()>> {
        let mut tasks = Vec::new();
        let mut events = handle.gateway().subscribe();
        let core = Arc::downgrade(self);
        tasks.push(tokio::spawn(async move {
            loop {
                let event = match events.recv().await {
                    Ok(event) => event,
                    Err(broadcast::error::RecvError::Lagged(_)) => GatewayEvent::SessionsChanged,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let Some(core) = core.upgrade() else { return };
                match event {
                    GatewayEvent::LockoutStarted(locked) => {
                        let _ = core.events.send(CoreEvent::LockoutStarted(lockout_notice(&locked)));
                        core.changed();
                    }
                    GatewayEvent::SessionsChanged | GatewayEvent::PersistFailed(_) => core.changed(),
                }
            }
        }));
        if let Some(nginx) = handle.nginx() {
            let mut status = nginx.status();
            let core = Arc::downgrade(self);
            tasks.push(tokio::spawn(async move {
                while status.changed().await.is_ok() {
                    let Some(core) = core.upgrade() else { return };
                    core.changed();
                }
            }));
        }
        tasks
    }

    async fn stop_engine(&self) {
        let mut slot = self.engine.lock().await;
        if let Some(engine) = slot.take() {
            *lock(&self.handle) = None;
            engine.cancel.cancel();
            if let Err(e) = engine.task.await {
                warn!("the gateway task ended badly: {e}");
            }
            for watcher in engine.watchers {
                watcher.abort();
            }
            info!("protection off");
        }
    }

    /// Quit: stops nginx and the auth server and writes the state file.
    pub async fn shutdown(&self) {
        self.stop_engine().await;
    }

    /// Pause: protected addresses stop answering (nginx and the auth server stop); Resume
    /// starts them again.
    pub async fn set_paused(self: &Arc<Self>, paused: bool) -> Result<StatusView> {
        if self.needs_setup() {
            return Err(CoreError::NotRunning("Finish the setup first."));
        }
        if paused {
            self.stop_engine().await;
            self.set_phase(Phase::Paused);
        } else {
            self.start_engine().await?;
        }
        Ok(self.status())
    }

    /// Retry after an error: reads the config file again and restarts.
    pub async fn retry(self: &Arc<Self>) -> Result<StatusView> {
        match Config::load(&self.paths.config) {
            Ok(config) => {
                *lock(&self.lan) = config.apps.iter().any(|a| a.listen.socket_addr().ip().is_unspecified());
                *lock(&self.config) = config;
                *lock(&self.config_error) = None;
            }
            Err(e) => {
                let message = e.to_string();
                *lock(&self.config_error) = Some(message.clone());
                self.set_phase(Phase::Failed(CoreError::ConfigBroken(message).to_string()));
                return Ok(self.status());
            }
        }
        self.stop_engine().await;
        *lock(&self.phase) = Phase::Idle;
        self.start_up().await;
        Ok(self.status())
    }

    // ---- status ----

    pub fn status(&self) -> StatusView {
        let phase = lock(&self.phase).clone();
        let handle = lock(&self.handle).clone();
        let nginx_status = handle.as_ref().and_then(|h| h.nginx()).map(|n| n.status().borrow().clone());
        let (state, message) = match (&phase, nginx_status) {
            (Phase::Idle | Phase::Starting, _) => ("starting", None),
            (Phase::NeedsSetup, _) => ("needs_setup", None),
            (Phase::Paused, _) => ("paused", None),
            (Phase::Failed(message), _) => ("error", Some(message.clone())),
            (Phase::Running, Some(NginxStatus::Failed { message })) => {
                ("error", Some(format!("nginx keeps failing and was given up on:\n{message}")))
            }
            (Phase::Running, Some(NginxStatus::Restarting { attempt, last_error })) => {
                ("starting", Some(format!("nginx stopped unexpectedly; restarting (attempt {attempt}):\n{last_error}")))
            }
            (Phase::Running, _) => ("running", None),
        };
        let config = self.config();
        let mut warnings = match &phase {
            Phase::Running => self.engine.try_lock().ok().and_then(|e| e.as_ref().map(|e| e.warnings.clone())).unwrap_or_default(),
            _ => Vec::new(),
        };
        // Sessions and the replay counter could not be written (e.g. a full disk).
        if let Some(error) = handle.as_ref().and_then(|h| h.gateway().persist_error()) {
            warnings.push(error);
        }
        StatusView {
            state,
            message,
            apps: config.apps.iter().map(app_view).collect(),
            sessions: handle.map(|h| h.gateway().sessions().len()).unwrap_or(0),
            warnings,
            lan: *lock(&self.lan),
        }
    }

    /// What the tray menu shows.
    pub fn tray_state(&self) -> TrayState {
        let status = self.status();
        TrayState {
            protection: match status.state {
                "needs_setup" => Protection::NeedsSetup,
                "running" => Protection::On,
                "paused" => Protection::Paused,
                "error" => Protection::Error,
                _ => Protection::Starting,
            },
            apps: status.apps.into_iter().map(|a| (a.name, a.url)).collect(),
            active_sessions: status.sessions,
            launch_at_login: self.launch_at_login.is_enabled().unwrap_or(false),
        }
    }

    // ---- the setup wizard ----

    /// Step 2 of the wizard: a new secret, held in memory until confirmed. Asking again
    /// returns the same secret (the user may already have scanned it).
    pub async fn wizard_begin(&self) -> Result<SecretView> {
        if self.keychain(|s| s.exists()).await? {
            return Err(CoreError::AlreadySetUp);
        }
        let config = self.config();
        let mut pending = lock(&self.pending);
        if !matches!(&*pending, Some(p) if p.purpose == Purpose::Setup) {
            *pending = Some(Pending { secret: TotpSecret::generate(), purpose: Purpose::Setup });
        }
        let secret = &pending.as_ref().expect("just set").secret;
        Ok(secret_view(secret, &config))
    }

    /// Step 3: the code proves the authenticator app has the secret; only now is it stored,
    /// and protection starts.
    pub async fn wizard_confirm(self: &Arc<Self>, code: &str) -> Result<StatusView> {
        let secret = self.take_pending_if_code_matches(Purpose::Setup, code)?;
        let stored = self.keychain(move |s| s.store(&secret, false).map_err(|e| (e, secret))).await;
        if let Err((e, secret)) = stored {
            // Keep it on screen so the user can try again once the keychain is unlocked.
            *lock(&self.pending) = Some(Pending { secret, purpose: Purpose::Setup });
            return Err(e.into());
        }
        info!("secret stored; setup complete");
        *lock(&self.phase) = Phase::Idle;
        let _ = self.start_engine().await;
        Ok(self.status())
    }

    /// Leaves the wizard (or the replace screen) without storing anything.
    pub fn wizard_cancel(&self) {
        *lock(&self.pending) = None;
    }

    fn take_pending_if_code_matches(&self, purpose: Purpose, code: &str) -> Result<TotpSecret> {
        let config = self.config();
        let mut pending = lock(&self.pending);
        let secret = match &*pending {
            Some(p) if p.purpose == purpose => &p.secret,
            _ => return Err(CoreError::NoPendingSecret),
        };
        Totp::new(secret, &config.issuer(), &config.account()).verify(code, unix_now(), None).map_err(rejected)?;
        Ok(pending.take().expect("checked above").secret)
    }

    // ---- apps ----

    pub async fn app_add(&self, input: AppInput) -> Result<AppSaved> {
        let app = self.parse_app(&input)?;
        let mut config = self.config();
        config.apps.push(app.clone());
        self.apply(config).await?;
        info!(app = %app.name, "app added");
        Ok(AppSaved { warning: upstream_warning(&app.upstream).await, app: app_view(&app) })
    }

    /// Changes the app named `original` (its name may change too).
    pub async fn app_edit(&self, original: &str, input: AppInput) -> Result<AppSaved> {
        let app = self.parse_app(&input)?;
        let mut config = self.config();
        let slot = config.apps.iter_mut().find(|a| a.name.as_str() == original).ok_or_else(|| CoreError::NoSuchApp(original.into()))?;
        // The window edits name, upstream and port; settings only the config file has (extra
        // host names, TLS verification) stay as they were.
        let app = AppConfig { hosts: std::mem::take(&mut slot.hosts), tls_verify: slot.tls_verify, ..app };
        *slot = app.clone();
        self.apply(config).await?;
        info!(app = %app.name, "app changed");
        Ok(AppSaved { warning: upstream_warning(&app.upstream).await, app: app_view(&app) })
    }

    pub async fn app_remove(&self, name: &str) -> Result<StatusView> {
        let mut config = self.config();
        let before = config.apps.len();
        config.apps.retain(|a| a.name.as_str() != name);
        if config.apps.len() == before {
            return Err(CoreError::NoSuchApp(name.into()));
        }
        self.apply(config).await?;
        info!(app = name, "app removed");
        Ok(self.status())
    }

    /// The protected URL of an app, to open in the browser.
    pub fn app_url(&self, name: &str) -> Result<String> {
        let config = self.config();
        config.apps.iter().find(|a| a.name.as_str() == name).map(|a| a.protected_url()).ok_or_else(|| CoreError::NoSuchApp(name.into()))
    }

    fn parse_app(&self, input: &AppInput) -> Result<AppConfig> {
        let name: AppName = input.name.parse().map_err(CoreError::Invalid)?;
        let upstream_text = input.upstream.trim();
        let upstream_text =
            if upstream_text.contains("://") { upstream_text.to_string() } else { format!("http://{upstream_text}") };
        let upstream: UpstreamUrl = upstream_text.parse().map_err(CoreError::Invalid)?;
        if input.port == 0 {
            return Err(CoreError::Invalid("Choose a port between 1 and 65535 for the protected app.".into()));
        }
        let ip = if *lock(&self.lan) { IpAddr::V4(Ipv4Addr::UNSPECIFIED) } else { IpAddr::V4(Ipv4Addr::LOCALHOST) };
        let upstream_is_local = matches!(upstream.host(), "localhost" | "127.0.0.1" | "[::1]" | "0.0.0.0");
        if upstream_is_local && upstream.port() == input.port {
            return Err(CoreError::Invalid(format!(
                "Port {} is the app's own port. Choose another port for the protected address (for example {}).",
                input.port,
                input.port.checked_add(1).unwrap_or(8081)
            )));
        }
        Ok(AppConfig::new(name, upstream, ListenAddr(SocketAddr::new(ip, input.port))))
    }

    /// Applies a changed config to the running gateway (an nginx reload that nginx checks
    /// first), and only then saves it, so the file always describes what runs.
    async fn apply(&self, config: Config) -> Result<()> {
        if let Some(message) = lock(&self.config_error).clone() {
            return Err(CoreError::ConfigBroken(message));
        }
        config.validate().map_err(CoreError::Invalid)?;
        let handle = lock(&self.handle).clone();
        match handle {
            Some(handle) => handle.apply_config(&config).await?,
            // Not running: at least catch a port another program holds now.
            None => nginx::check_ports(&config.apps).map_err(StartError::from)?,
        }
        config.save(&self.paths.config)?;
        *lock(&self.config) = config;
        self.changed();
        Ok(())
    }

    /// For changes a reload cannot make: save, then restart the gateway if it runs. A failed
    /// start shows in the status (with nginx's message and Retry).
    async fn save_and_restart(self: &Arc<Self>, config: Config) -> Result<()> {
        if let Some(message) = lock(&self.config_error).clone() {
            return Err(CoreError::ConfigBroken(message));
        }
        config.validate().map_err(CoreError::Invalid)?;
        config.save(&self.paths.config)?;
        *lock(&self.config) = config;
        self.changed();
        if lock(&self.handle).is_some() {
            self.stop_engine().await;
            self.start_engine().await?;
        }
        Ok(())
    }

    // ---- sessions ----

    pub fn sessions_list(&self) -> Vec<SessionView> {
        let Some(gateway) = self.gateway() else { return Vec::new() };
        let mut sessions: Vec<SessionView> = gateway
            .sessions()
            .into_iter()
            .map(|s| SessionView {
                id: s.id.as_str().to_string(),
                app: gateway.app_name(s.app_port).map(|n| n.to_string()).unwrap_or_else(|| format!("port {}", s.app_port)),
                created_at: s.created_at,
                last_seen: s.last_seen,
                expires_at: s.expires_at,
                client_ip: s.client_ip.map(|ip| ip.to_string()).unwrap_or_else(|| "unknown".into()),
                user_agent: s.user_agent,
            })
            .collect();
        sessions.sort_by_key(|s| std::cmp::Reverse(s.last_seen));
        sessions
    }

    pub async fn session_revoke(&self, id: &str) -> Result<()> {
        let gateway = self.gateway().ok_or(CoreError::NoSuchSession)?;
        if gateway.revoke(&SessionId::from(id)).await {
            Ok(())
        } else {
            Err(CoreError::NoSuchSession)
        }
    }

    /// Signs everyone out; returns how many sessions ended.
    pub async fn sessions_revoke_all(&self) -> usize {
        match self.gateway() {
            Some(gateway) => gateway.revoke_all().await,
            None => 0,
        }
    }

    // ---- security ----

    pub fn security_status(&self) -> SecurityView {
        let Some(gateway) = self.gateway() else {
            return SecurityView { running: false, everyone_locked_for_secs: None, locked_clients: vec![], recent_failures: vec![] };
        };
        let status = gateway.limiter_status();
        SecurityView {
            running: true,
            everyone_locked_for_secs: status.everyone_locked_for.map(|d| d.as_secs().max(1)),
            locked_clients: status.locked_clients.iter().map(|(ip, d)| LockedClientView { ip: ip.to_string(), secs: d.as_secs().max(1) }).collect(),
            // Newest first, as the limiter lists them.
            recent_failures: status.recent_failures.iter().map(|f| FailureView { ip: f.ip.to_string(), at: f.at_unix }).collect(),
        }
    }

    /// Lifts the per-address lockouts and issues a one-time sign-in link (see the engine's
    /// `ticket` module); the shared budget is not refilled.
    pub fn security_unlock(&self) -> Result<UnlockView> {
        let gateway = self.gateway().ok_or(CoreError::NotRunning("There is nothing to unlock."))?;
        let ticket = gateway.issue_unlock_ticket();
        let login_path = format!("{}?ticket={}", gateway.route_prefix().route("login"), ticket.expose());
        let links = self
            .config()
            .apps
            .iter()
            .map(|app| UnlockLinkView { app: app.name.as_str().to_string(), url: format!("{}{login_path}", app.protected_url().trim_end_matches('/')) })
            .collect();
        self.changed();
        Ok(UnlockView {
            security: self.security_status(),
            links,
            expires_in_secs: simpleotp_engine::ticket::TICKET_LIFETIME.as_secs(),
            attempts: simpleotp_engine::ticket::TICKET_ATTEMPTS,
        })
    }

    /// Checks that `url` is an unlock link this app made, on a configured app's address, with
    /// a live ticket: the window may open those, not arbitrary URLs.
    pub fn check_unlock_link(&self, url: &str) -> Result<()> {
        let gateway = self.gateway().ok_or(CoreError::NotRunning("Unlock again once it runs."))?;
        let login = gateway.route_prefix().route("login");
        let ticket = self
            .config()
            .apps
            .iter()
            .find_map(|app| url.strip_prefix(&format!("{}{login}?ticket=", app.protected_url().trim_end_matches('/'))))
            .ok_or_else(|| CoreError::Invalid("That is not a SimpleOTP sign-in link.".into()))?;
        if !gateway.unlock_ticket_is_valid(ticket) {
            return Err(CoreError::Invalid("This sign-in link has expired or was used. Press Unlock again for a new one.".into()));
        }
        Ok(())
    }

    /// The gate in front of everything that shows or replaces the secret: a current code of the
    /// secret in use. The running gateway checks it through its brute-force limiter like a
    /// login (a wrong code is a failed attempt from this computer and counts toward a lockout)
    /// without consuming it. Someone at an unlocked desktop must not be able to read the secret
    /// (show the QR code again) or swap in their own (replace) without the owner's phone.
    async fn require_current_code(&self, code: &str) -> Result<()> {
        let gateway = self.gateway().ok_or(CoreError::NotRunning("Resume protection first."))?;
        match gateway.verify_code(DESKTOP_IP, code) {
            Ok(()) => Ok(()),
            Err(LoginOutcome::Locked(locked)) => Err(CoreError::Locked(human_duration(locked.retry_after))),
            Err(LoginOutcome::Rejected { reason, lockout }) => {
                // verify_code does not announce lockouts (login does): announce this one.
                if let Some(locked) = lockout {
                    let _ = self.events.send(CoreEvent::LockoutStarted(lockout_notice(&locked)));
                    self.changed();
                }
                Err(rejected(reason))
            }
            Err(LoginOutcome::Success(_) | LoginOutcome::NotSaved(_)) => unreachable!("verify_code never signs in"),
        }
    }

    /// The QR code again, for a second phone, only after a current code (which counts against
    /// the brute-force limiter like a login).
    pub async fn security_show_qr(&self, code: &str) -> Result<SecretView> {
        self.require_current_code(code).await?;
        let secret = self.keychain(|s| s.load()).await?;
        Ok(secret_view(&secret, &self.config()))
    }

    /// A new secret to replace the current one, only after a current code of the old one (the
    /// same gate as showing the QR code again); nothing changes until the new one is confirmed.
    pub async fn secret_replace_begin(&self, current_code: &str) -> Result<SecretView> {
        if self.needs_setup() {
            return Err(CoreError::NotRunning("Finish the setup first."));
        }
        // Before the new secret exists: a wrong code leaves nothing pending and shows nothing.
        self.require_current_code(current_code).await?;
        let secret = TotpSecret::generate();
        let view = secret_view(&secret, &self.config());
        *lock(&self.pending) = Some(Pending { secret, purpose: Purpose::Replace });
        Ok(view)
    }

    /// A code from the new secret confirms it: it replaces the old one in the keychain and in
    /// the running gateway, which signs everyone out.
    pub async fn secret_replace_confirm(&self, code: &str) -> Result<usize> {
        let secret = self.take_pending_if_code_matches(Purpose::Replace, code)?;
        let config = self.config();
        let totp = Totp::new(&secret, &config.issuer(), &config.account());
        self.keychain(move |s| s.store(&secret, true)).await?;
        let signed_out = match self.gateway() {
            Some(gateway) => {
                let count = gateway.sessions().len();
                gateway.replace_totp(totp).await;
                count
            }
            None => 0,
        };
        info!("secret replaced; everyone signed out");
        self.changed();
        Ok(signed_out)
    }

    // ---- settings ----

    pub fn settings_get(&self) -> SettingsView {
        let config = self.config();
        SettingsView {
            lifetime_secs: config.session.lifetime.as_secs(),
            idle_timeout_secs: config.session.idle_timeout.as_secs(),
            launch_at_login: self.launch_at_login.is_enabled().unwrap_or(false),
            lan: *lock(&self.lan),
            nginx_path: config.nginx.path.as_ref().map(|p| p.display().to_string()),
        }
    }

    /// Which nginx would be used, or why none can be found (for the Settings screen).
    pub fn nginx_found(&self) -> String {
        match nginx::discover(self.config().nginx.path.as_deref()) {
            Ok(path) => format!("Using nginx at {}", path.display()),
            Err(e) => e.to_string(),
        }
    }

    pub async fn settings_set(self: &Arc<Self>, wanted: SettingsView) -> Result<SettingsSaved> {
        let mut warnings = Vec::new();
        let old = self.config();
        let mut config = old.clone();
        if wanted.lifetime_secs < 60 || wanted.idle_timeout_secs < 60 {
            return Err(CoreError::Invalid("Session lifetime and idle timeout must be at least one minute.".into()));
        }
        if wanted.idle_timeout_secs > wanted.lifetime_secs {
            warnings.push("The idle timeout is longer than the lifetime, so only the lifetime matters.".to_string());
        }
        config.session = SessionSettings {
            lifetime: Duration::from_secs(wanted.lifetime_secs),
            idle_timeout: Duration::from_secs(wanted.idle_timeout_secs),
        };
        let nginx_path = wanted.nginx_path.as_deref().map(str::trim).filter(|p| !p.is_empty()).map(PathBuf::from);
        if let Some(path) = &nginx_path {
            nginx::discover(Some(path)).map_err(|e| CoreError::Start(e.into()))?;
        }
        config.nginx.path = nginx_path;
        let ip = if wanted.lan { IpAddr::V4(Ipv4Addr::UNSPECIFIED) } else { IpAddr::V4(Ipv4Addr::LOCALHOST) };
        for app in &mut config.apps {
            app.listen = ListenAddr(SocketAddr::new(ip, app.listen.socket_addr().port()));
        }
        let was_lan = std::mem::replace(&mut *lock(&self.lan), wanted.lan);
        // nginx cannot move a port it holds from 127.0.0.1 to 0.0.0.0 (or back) by reloading,
        // and a reload keeps the old nginx binary: those two changes restart the gateway.
        // Sessions survive (they are in the state file).
        let needs_restart = config.nginx.path != old.nginx.path || wanted.lan != was_lan;
        let result = if config == old {
            self.changed();
            Ok(())
        } else if needs_restart {
            self.save_and_restart(config).await
        } else {
            self.apply(config).await
        };
        if let Err(e) = result {
            *lock(&self.lan) = was_lan;
            return Err(e);
        }
        if wanted.lan && !was_lan {
            warnings.push(LAN_WARNING.to_string());
        }
        let autostart_now = self.launch_at_login.is_enabled().unwrap_or(!wanted.launch_at_login);
        if autostart_now != wanted.launch_at_login {
            self.launch_at_login.set_enabled(wanted.launch_at_login).map_err(CoreError::LaunchAtLogin)?;
            self.changed();
        }
        Ok(SettingsSaved { settings: self.settings_get(), nginx: self.nginx_found(), warnings })
    }

    /// The tray's check item.
    pub fn toggle_launch_at_login(&self) -> Result<bool> {
        let on = !self.launch_at_login.is_enabled().map_err(CoreError::LaunchAtLogin)?;
        self.launch_at_login.set_enabled(on).map_err(CoreError::LaunchAtLogin)?;
        self.changed();
        Ok(on)
    }
}

fn app_view(app: &AppConfig) -> AppView {
    AppView {
        name: app.name.to_string(),
        upstream: app.upstream.to_string(),
        port: app.listen.socket_addr().port(),
        url: app.protected_url(),
    }
}

fn secret_view(secret: &TotpSecret, config: &Config) -> SecretView {
    let (issuer, account) = (config.issuer(), config.account());
    let uri = Totp::new(secret, &issuer, &account).otpauth_uri();
    SecretView {
        qr_svg: qr::svg(&uri),
        secret_groups: secret.to_grouped_base32().split_whitespace().map(str::to_string).collect(),
        issuer,
        account,
    }
}

fn rejected(reason: CodeRejected) -> CoreError {
    match reason {
        CodeRejected::Malformed => CoreError::MalformedCode,
        CodeRejected::Replayed => CoreError::CodeReplayed,
        _ => CoreError::WrongCode,
    }
}

fn lockout_notice(locked: &Locked) -> String {
    let wait = human_duration(locked.retry_after);
    match locked.scope {
        LockScope::Client => format!("Several wrong codes came from one address; it must wait {wait}. Open SimpleOTP to see or unlock."),
        LockScope::Everyone => format!("Too many wrong codes overall: every sign-in waits {wait}. Open SimpleOTP to see or unlock."),
    }
}

pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs().max(1);
    match secs {
        s if s < 60 => format!("{s} second{}", if s == 1 { "" } else { "s" }),
        s if s < 3600 => {
            let m = s.div_ceil(60);
            format!("{m} minute{}", if m == 1 { "" } else { "s" })
        }
        s => {
            let h = s.div_ceil(3600);
            format!("{h} hour{}", if h == 1 { "" } else { "s" })
        }
    }
}

/// `Some(warning)` when nothing accepts a connection at the upstream right now.
async fn upstream_warning(upstream: &UpstreamUrl) -> Option<String> {
    let host = upstream.host().trim_start_matches('[').trim_end_matches(']').to_string();
    let connect = tokio::net::TcpStream::connect((host, upstream.port()));
    match tokio::time::timeout(UPSTREAM_PROBE_TIMEOUT, connect).await {
        Ok(Ok(_)) => None,
        _ => Some(format!(
            "Nothing answers at {upstream} yet. Start the app there; the protected address works as soon as it runs."
        )),
    }
}

#[cfg(test)]
mod tests;
