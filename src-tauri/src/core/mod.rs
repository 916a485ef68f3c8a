//! The tray app's state and every command the window and the tray menu use, in plain Rust.
//!
//! Nothing here knows about Tauri: the commands in [`crate::commands`] are one-line wrappers,
//! and the tests (`core/tests.rs`) drive a real engine (auth server, nginx, keychain) without a
//! webview.
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
//! One [`Core`], its methods split by what they manage:
//!
//! * `lifecycle`: starting, pausing, retrying and stopping the engine; the status;
//! * `wizard`: the setup wizard and replacing the secret (a new secret waits in memory until
//!   a code from it confirms it);
//! * `security`: the lockouts, unlock links, and the current-code gate in front of the secret;
//! * `listeners`: the bypass check, whether other devices open an app through its own port
//!   without a code (the same connection attempts on every OS; its findings live in `Core`);
//! * `apps` and `settings`: what the user changes; both go through `config`, the one write
//!   path of the config file (one change at a time, applied before it is saved);
//! * `sessions`: who is signed in;
//! * `devices`: "Open on another device" (QR codes of the apps' HTTPS addresses and of the CA
//!   page) and "Trust on this computer", which `trust` carries out in each OS's own way;
//!   `phone`: the live progress of "Add a phone" (what another device did since the flow began);
//! * `updates`: what Settings and the tray menu say about newer releases (Tauri's updater,
//!   driven by [`crate::updates`], does the checking and installing);
//! * `diagnostics`: "Copy diagnostics" (versions, paths, ports, state, recent errors; never
//!   a secret) and the config folder;
//! * `views`: what the window is sent, as JSON (re-exported here), with [`Protection`], the
//!   status the window, the tray menu and the Tauri part all match on, and the wording they
//!   share ([`human_duration`], [`LAN_WARNING`]).
//!
//! This file holds the state itself (`Core`'s fields and the types they keep) and the rule
//! for the listen address (`listen_ip`), so that the files above depend on it and on
//! `views`, never on each other in a circle.
//!
//! The secret leaves the keychain only for the two screens that show it (the wizard and "show
//! the QR code again" after a current code), and is never logged or written to the config.
//! Replacing it also needs a current code of the old one first (the same gate).

mod apps;
mod authenticators;
mod config;
mod devices;
mod diagnostics;
pub(crate) mod firewall;
mod lifecycle;
pub(crate) mod listeners;
mod passkeys;
mod phone;
mod security;
mod sessions;
mod settings;
pub(crate) mod trust;
mod updates;
pub(crate) mod views;
mod wizard;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use simpleotp_engine::app::{GatewayHandle, StartError};
use simpleotp_engine::config::{Config, ConfigError};
use simpleotp_engine::gateway::Gateway;
use simpleotp_engine::secret::{SecretError, SecretStore};
use simpleotp_engine::totp::{CodeRejected, TotpSecret};

use crate::paths::Paths;
use crate::sync::lock;

pub use passkeys::{PasskeyLinkView, PasskeyView};
pub use trust::{TrustError, TrustState};
pub use updates::{AvailableUpdate, CheckReport, UpdatesView};
pub use views::{
    device_name, human_duration, short_duration, AppInput, AppSaved, AppView, AuthenticatorView, CaView, DeviceAppView, DevicesView,
    FailureView, LockedClientView, PhoneProgressView, PhoneStep, Protection, RecoveryCodesView, SecretView, SecurityView, SessionView,
    SettingsSaved, SettingsView, StatusView, UnlockLinkView, UnlockView, UpstreamCheck, LAN_WARNING,
};

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
    #[error("SimpleOTP is already set up. To start over with a new setup key, use Replace the setup key under Security.")]
    AlreadySetUp,
    #[error("No new setup key is waiting to be confirmed; start again.")]
    NoPendingSecret,
    #[error("Protection is not running. {0}")]
    NotRunning(&'static str),
    #[error("{}", port_taken_message(*port, used_by.as_deref(), *alternative))]
    PortTaken { port: u16, used_by: Option<String>, alternative: Option<u16> },
    #[error("No app is named {0:?}.")]
    NoSuchApp(String),
    #[error("That session has already ended.")]
    NoSuchSession,
    #[error("Launch at login could not be changed: {0}")]
    LaunchAtLogin(String),
    #[error("The QR code cannot be shown ({0}); shorten the issuer or account name in the config file.")]
    Qr(#[from] simpleotp_engine::qr::QrError),
    #[error(
        "SimpleOTP's certificate is not made yet: it is made when protection runs with \"Other devices on my network\" on (Settings)."
    )]
    NoCa,
    #[error(transparent)]
    Ca(#[from] simpleotp_engine::ca::CaError),
    #[error(transparent)]
    Trust(#[from] TrustError),
}

impl CoreError {
    /// The message with its causes, for the UI (`cannot write …: Permission denied`), in
    /// [`plain_words`](views::plain_words): no Markdown.
    pub fn user_message(&self) -> String {
        views::plain_words(&simpleotp_engine::error_chain(self))
    }
}

/// "Port 8081 is already in use by another program. Use 8082 instead." (the window turns the
/// alternative into a button).
fn port_taken_message(port: u16, used_by: Option<&str>, alternative: Option<u16>) -> String {
    let by = match used_by {
        Some(app) => format!("by {app}"),
        None => "by another program".into(),
    };
    match alternative {
        Some(free) => format!("Port {port} is already in use {by}. Use {free} instead."),
        None => format!("Port {port} is already in use {by}. Choose another port."),
    }
}

type Result<T, E = CoreError> = std::result::Result<T, E>;

/// The user's error for a code the TOTP check refused.
impl From<CodeRejected> for CoreError {
    fn from(reason: CodeRejected) -> CoreError {
        match reason {
            CodeRejected::Malformed => CoreError::MalformedCode,
            CodeRejected::Replayed => CoreError::CodeReplayed,
            _ => CoreError::WrongCode,
        }
    }
}

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
    /// Someone signed in with a recovery code (the message is for a desktop notification).
    RecoveryCodeUsed(String),
}

// The state `Core` keeps, used by several of the files below it.

/// Where the gateway is in its life (see `lifecycle`).
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

/// A running engine (see `lifecycle`).
struct Engine {
    cancel: CancellationToken,
    task: JoinHandle<()>,
    watchers: Vec<JoinHandle<()>>,
    warnings: Vec<String>,
}

/// A secret shown on screen but not yet confirmed with a code (see `wizard`).
struct Pending {
    secret: TotpSecret,
    purpose: Purpose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Setup,
    Replace,
}

/// The address every protected app listens on: all interfaces when other devices on the
/// network may reach them (`lan`), else this computer only.
fn listen_ip(lan: bool) -> IpAddr {
    if lan {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    }
}

/// Whether `config` lets other devices in: the inverse of [`listen_ip`], for a config read
/// from the file.
fn listens_on_lan(config: &Config) -> bool {
    config.apps.iter().any(|a| a.listen.socket_addr().ip().is_unspecified())
}

pub struct Core {
    paths: Paths,
    launch_at_login: Box<dyn LaunchAtLogin>,
    /// The config that runs, for the quick, synchronous reads. Replaced only by a holder of
    /// `config_writer`.
    config: Mutex<Config>,
    /// Held by every change of the config from its read to its save (see `config`), so that
    /// two changes never start from the same copy and one of them is lost.
    config_writer: tokio::sync::Mutex<()>,
    /// Set when the config file could not be read: nothing is saved over it until it is fixed.
    config_error: Mutex<Option<String>>,
    /// What the config file was when `config` was read from it: a save over a file changed by
    /// hand since then is refused (see `config_edit`). Replaced only by a holder of
    /// `config_writer`.
    config_file: Mutex<simpleotp_engine::config_edit::LoadedFile>,
    /// Listen on the local network (0.0.0.0) rather than this computer only. Follows the apps.
    lan: Mutex<bool>,
    phase: Mutex<Phase>,
    /// Held across starting and stopping, so that two of them never interleave.
    engine: tokio::sync::Mutex<Option<Engine>>,
    /// A clone of the running gateway's handle for the quick, synchronous reads.
    handle: Mutex<Option<GatewayHandle>>,
    pending: Mutex<Option<Pending>>,
    /// An authenticator shown on screen (Security's "Add another authenticator") but not yet
    /// confirmed with a code from the new app (see `authenticators`).
    adding: Mutex<Option<simpleotp_engine::authenticator::PendingAuthenticator>>,
    events: broadcast::Sender<CoreEvent>,
    /// The last error messages protection failed with, for "Copy diagnostics" (when, message).
    recent_errors: Mutex<std::collections::VecDeque<(u64, String)>>,
    /// Whether the desktop shows tray icons (the Tauri part finds out at launch). Without one,
    /// the window says how it is reached instead of pointing at a tray.
    tray_available: std::sync::atomic::AtomicBool,
    /// What Unlock sign-ins in the tray menu gave, until the window (which it opens) takes it
    /// to show the one-time links. In memory only: the links carry a ticket.
    tray_unlock: Mutex<Option<UnlockView>>,
    /// The recovery codes made when the wizard's setup was confirmed, until its last screen
    /// takes them (once: see `wizard`).
    setup_recovery: Mutex<Option<RecoveryCodesView>>,
    /// When the window last started "Add a phone" (Unix seconds): its progress counts from then.
    phone_flow_since: Mutex<Option<u64>>,
    /// The firewall other devices must get through (Windows Defender Firewall; nothing to do
    /// elsewhere).
    firewall: Arc<dyn firewall::Firewall>,
    /// Why other devices may be blocked by Windows Firewall (see `firewall`), shown while the
    /// apps face the network.
    firewall_blocked: Mutex<Option<String>>,
    /// Newer releases: the last check, an update waiting, an install under way (see `updates`).
    updates: Mutex<updates::UpdateState>,
    /// What the bypass check last found, and its one-at-a-time lock (see `listeners`).
    bypass: listeners::Findings,
}

impl Core {
    /// Loads the config. A config that cannot be read is reported by [`Core::status`], and
    /// nothing is saved over it until it is fixed.
    pub fn new(paths: Paths, launch_at_login: Box<dyn LaunchAtLogin>) -> Arc<Core> {
        Core::with_firewall(paths, launch_at_login, Arc::new(firewall::SystemFirewall))
    }

    /// [`Core::new`] with another firewall (the tests' stand-in for Windows Firewall).
    pub fn with_firewall(paths: Paths, launch_at_login: Box<dyn LaunchAtLogin>, firewall: Arc<dyn firewall::Firewall>) -> Arc<Core> {
        let (config, config_file, config_error) = match simpleotp_engine::config_edit::load(&paths.config) {
            Ok((config, file)) => (config, file, None),
            Err(e) => (Config::default(), Default::default(), Some(e.to_string())),
        };
        let lan = listens_on_lan(&config);
        let (events, _) = broadcast::channel(32);
        let updates = updates::UpdateState { last: simpleotp_engine::updates::UpdateRecord::load(&paths.data_dir), ..Default::default() };
        Arc::new(Core {
            paths,
            launch_at_login,
            config: Mutex::new(config),
            config_writer: tokio::sync::Mutex::new(()),
            config_error: Mutex::new(config_error),
            config_file: Mutex::new(config_file),
            lan: Mutex::new(lan),
            phase: Mutex::new(Phase::Idle),
            engine: tokio::sync::Mutex::new(None),
            handle: Mutex::new(None),
            pending: Mutex::new(None),
            adding: Mutex::new(None),
            events,
            recent_errors: Mutex::new(std::collections::VecDeque::with_capacity(diagnostics::RECENT_ERRORS)),
            tray_available: std::sync::atomic::AtomicBool::new(true),
            tray_unlock: Mutex::new(None),
            setup_recovery: Mutex::new(None),
            phone_flow_since: Mutex::new(None),
            firewall,
            firewall_blocked: Mutex::new(None),
            updates: Mutex::new(updates),
            bypass: listeners::Findings::default(),
        })
    }

    /// Records whether a tray shows SimpleOTP's icon (see [`StatusView::tray_available`]); the
    /// window hears of a change.
    pub fn set_tray_available(&self, available: bool) {
        if self.tray_available.swap(available, std::sync::atomic::Ordering::Relaxed) != available {
            self.changed();
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<CoreEvent> {
        self.events.subscribe()
    }

    fn changed(&self) {
        let _ = self.events.send(CoreEvent::Changed);
    }

    /// A copy of the config that runs, for reading. To change it, see `Core::edit_config`.
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
}

#[cfg(test)]
mod tests;
