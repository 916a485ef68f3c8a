//! What the window is sent (serialised to JSON for `ui/main.js`) and what it sends back, and
//! the wording shared by the user's messages (how a wait reads, the LAN warning).
//!
//! These are plain data: the `Core` methods build them; nothing here reads the state.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use simpleotp_engine::config::{AppConfig, Config};
use simpleotp_engine::qr;
use simpleotp_engine::totp::{Totp, TotpSecret};

use super::trust::TrustState;

/// Where protection is, as the window (`status.state`), the tray menu and the Tauri part see it.
/// One enum for all three, so that no one compares strings: the JSON names are what
/// `ui/main.js` matches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protection {
    /// No secret yet: the wizard has not been completed.
    NeedsSetup,
    Starting,
    Running,
    /// The owner took the apps offline: protected addresses do not answer.
    Paused,
    /// It could not start or nginx keeps failing; the status message says why.
    Error,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StatusView {
    pub state: Protection,
    /// Why it is in an error state, or what nginx is doing, in nginx's own words.
    pub message: Option<String>,
    pub apps: Vec<AppView>,
    pub sessions: usize,
    pub warnings: Vec<String>,
    pub lan: bool,
    /// Whether a system tray shows SimpleOTP's icon. Stock GNOME has none (without the
    /// AppIndicator extension): the window then says to run SimpleOTP again to reach it.
    pub tray_available: bool,
    /// A newer release this copy was told of ("Update to 0.2.0…" in the tray menu).
    pub update_available: Option<String>,
    /// Whether SimpleOTP starts at login; when not, Status says that after a restart the
    /// protected addresses stop answering.
    pub launch_at_login: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AppView {
    pub name: String,
    pub upstream: String,
    pub port: u16,
    pub url: String,
    /// Served over HTTPS at a name of its own on this computer.
    pub own_address: bool,
    /// Phones and other computers on the network can open it (it listens beyond loopback).
    pub other_devices: bool,
    /// Where other devices open the app itself without a code (`192.168.1.20:8888`: its own
    /// port at this computer's network address), as of the last check (see `listeners`).
    pub reachable_without_code: Option<String>,
}

impl From<&AppConfig> for AppView {
    fn from(app: &AppConfig) -> AppView {
        AppView {
            name: app.name.to_string(),
            upstream: app.upstream.to_string(),
            port: app.listen.socket_addr().port(),
            url: app.protected_url(),
            own_address: app.https_name.is_some(),
            other_devices: app.listen.is_network_facing(),
            reachable_without_code: None,
        }
    }
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

impl SecretView {
    /// The screen that shows `secret`: its QR code and its key, under the config's issuer and
    /// account.
    pub(super) fn new(secret: &TotpSecret, config: &Config) -> Result<SecretView, qr::QrError> {
        let (issuer, account) = (config.issuer(), config.account());
        let uri = Totp::new(secret, &issuer, &account).otpauth_uri();
        Ok(SecretView {
            qr_svg: qr::svg(&uri)?,
            secret_groups: secret.to_grouped_base32().split_whitespace().map(str::to_string).collect(),
            issuer: issuer.to_string(),
            account: account.to_string(),
        })
    }
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
    /// "Its own HTTPS address on this computer": an `https_name` (see
    /// [`AppConfig::https_name`]); absent from the wizard, which leaves it off.
    #[serde(default)]
    pub own_address: bool,
    /// "Phones and other computers on this network can open it": the app listens on all
    /// interfaces (HTTPS there; this computer keeps its plain address). `None` (the wizard):
    /// as the other apps do.
    #[serde(default)]
    pub other_devices: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AppSaved {
    pub app: AppView,
    /// Set when nothing answers at the upstream (the app may just not be running yet).
    pub warning: Option<String>,
    /// Set when the app itself is reachable from other devices without a code (see
    /// `listeners`): where, and what to do about it.
    pub exposure: Option<String>,
    /// What the app asks for itself once past SimpleOTP (Jupyter's token), for the done screen.
    pub own_sign_in: String,
}

/// The window's **Test** button: does the app answer at the upstream, before it is saved.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UpstreamCheck {
    pub answers: bool,
    /// "Jupyter answered: it runs there." or "Nothing answers at … — is it running?"
    pub message: String,
    /// As [`AppSaved::exposure`].
    pub exposure: Option<String>,
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
    /// The browser and the system, in one line: "Chrome on Android" (see [`device_name`]).
    pub device: String,
    /// The browser runs on this computer (it came from a loopback address).
    pub this_computer: bool,
    /// "active now" or "idle 12 h" (see [`short_duration`]).
    pub idle: String,
    /// "ends in 6 d".
    pub ends: String,
    /// How it signed in: the authenticator's name ("Pixel"), "recovery code", "Continue"; empty
    /// for sessions from before this was recorded.
    pub signed_in_with: String,
}

/// How far a phone got in "Add a phone" (see `core::phone`).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PhoneStep {
    /// No other device has opened the page since the flow began.
    Waiting,
    /// A device opened the CA page (the QR code worked).
    OpenedPage,
    /// A device reached the apps over HTTPS without a certificate error.
    TrustsCa,
    /// A device signed in to an app.
    SignedIn,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PhoneProgressView {
    pub step: PhoneStep,
    /// The app the device signed in to ([`PhoneStep::SignedIn`]).
    pub app: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SecurityView {
    pub running: bool,
    pub everyone_locked_for_secs: Option<u64>,
    pub locked_clients: Vec<LockedClientView>,
    pub recent_failures: Vec<FailureView>,
    /// Unused recovery codes and when their set was made (`None`: none made yet).
    pub recovery_left: Option<usize>,
    pub recovery_made_at: Option<u64>,
    /// The authenticator apps whose codes sign in, oldest first.
    pub authenticators: Vec<AuthenticatorView>,
}

/// One authenticator app, as Security lists it: never its secret.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuthenticatorView {
    pub id: String,
    pub name: String,
    /// "added 3 d ago", or "added at setup".
    pub added: String,
    /// "last code 5 min ago" (a sign-in, or the code that added it), when one was used.
    pub last_used: Option<String>,
}

/// A new set of recovery codes, shown once.
#[derive(Clone, Serialize, PartialEq, Eq)]
pub struct RecoveryCodesView {
    pub codes: Vec<String>,
}

impl std::fmt::Debug for RecoveryCodesView {
    /// The codes are for their owner's eyes, not for logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoveryCodesView").field("codes", &self.codes.len()).finish()
    }
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
    /// The link on this computer (the window opens it).
    pub url: String,
    /// For an app other devices reach: the same link at its network address, and as a QR code
    /// a phone scans (a phone that is locked out cannot use this computer's tray).
    pub other_device_url: Option<String>,
    pub other_device_qr_svg: Option<String>,
}

impl std::fmt::Debug for UnlockLinkView {
    /// The URLs (and the QR code) hold the ticket, which is for the owner only, not for logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnlockLinkView")
            .field("app", &self.app)
            .field("url", &"<redacted>")
            .field("other_device_url", &self.other_device_url.as_ref().map(|_| "<redacted>"))
            .finish()
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
    /// The interfaces chosen to face the network (`[lan] interfaces`); `None`: the default, the
    /// interfaces with a default route.
    #[serde(default)]
    pub interfaces: Option<Vec<String>>,
    /// "Check for updates automatically" (`[updates] check`).
    #[serde(default = "default_true")]
    pub check_updates: bool,
}

fn default_true() -> bool {
    true
}

/// A network interface as Settings lists it, with a checkbox.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct InterfaceView {
    pub name: String,
    pub addresses: Vec<String>,
    /// It carries a default route (chosen by default).
    pub default_route: bool,
    /// Its addresses are offered to other devices now (the choice, or the default).
    pub facing: bool,
}

/// "Open on another device": each app's addresses for phones and laptops, and the card that
/// helps them trust SimpleOTP's CA.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DevicesView {
    /// Whether other devices may connect at all (Settings); when not, the screen says how.
    pub lan: bool,
    pub apps: Vec<DeviceAppView>,
    /// `None` until the CA exists (it is made when protection first runs with LAN access on).
    pub ca: Option<CaView>,
    /// Why the CA could not be read (a damaged file), as the CA's own message.
    pub ca_problem: Option<String>,
    /// Windows Firewall may block other devices (the person declined its prompt): the screen
    /// says so, with "Ask Windows again".
    pub firewall_blocked: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeviceAppView {
    pub name: String,
    /// The address to open on another device: `https://<hostname>.local:PORT/` when the
    /// machine has a name, else its first network address.
    pub url: String,
    /// A QR code of `url` (SVG).
    pub qr_svg: String,
    /// The same app at each of this machine's network addresses (for devices without mDNS).
    pub other_urls: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CaView {
    /// SHA-256 of the CA certificate, `AB:CD:…`, to compare with what the phone or the other
    /// computer shows for the certificate it downloaded (never with the CA page, which comes
    /// over plain HTTP and proves nothing).
    pub fingerprint: String,
    /// SHA-1 of the certificate, what Windows shows as its "Thumbprint".
    pub sha1_thumbprint: String,
    pub common_name: String,
    /// The CA page over plain HTTP (a phone cannot check HTTPS before it trusts the CA).
    pub page_url: Option<String>,
    pub page_qr_svg: Option<String>,
    /// Where this computer trusts it.
    pub trust: TrustState,
}

/// Shown when LAN access is turned on: what is true now (HTTPS from SimpleOTP's own CA) and the
/// one thing each device needs.
pub const LAN_WARNING: &str = "Your apps can now be reached from other devices on your network, over HTTPS with SimpleOTP's \
own certificate. Once on each device, trust SimpleOTP's certificate (Other devices › Add a phone shows \
how), or its browser will warn. On this computer nothing changes: the same addresses, still signed in.";

#[derive(Debug, Clone, Serialize)]
pub struct SettingsSaved {
    pub settings: SettingsView,
    /// This machine's interfaces, for the "which interfaces face the network" checkboxes.
    pub network_interfaces: Vec<InterfaceView>,
    /// Which nginx will be used, or why none can be.
    pub nginx: String,
    pub warnings: Vec<String>,
}

/// A message for the window in plain words: no Markdown. The engine's messages are also the
/// CLI's, where `simpleotp ca rotate` in backticks reads well; the window shows them as text.
pub fn plain_words(message: &str) -> String {
    message.replace("**", "").replace('`', "")
}

/// `text` with the paths of the temporary files SimpleOTP makes itself (`/tmp/.tmpAbC123/ca.pem`,
/// made and removed within one action, as a program it runs may name them in its error) read as
/// "a temporary file": they mean nothing to the reader.
pub fn without_temp_paths(text: &str) -> String {
    let prefix = std::env::temp_dir().join(".tmp").to_string_lossy().into_owned();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(&prefix) {
        out.push_str(&rest[..at]);
        let path = &rest[at..];
        let end = path.find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ')' | ',' | ';')).unwrap_or(path.len());
        // A path ends before a colon that follows it ("…/ca.pem: No such file").
        let end = path[..end].trim_end_matches([':', '.']).len();
        out.push_str("a temporary file");
        rest = &path[end..];
    }
    out.push_str(rest);
    out
}

/// A wait, the way the login page says it: "58 s", "4 min 58 s", "2 h 5 min" (the engine's
/// [`format_duration`](simpleotp_engine::server::format_duration), rounded up so that a wait is
/// never shown shorter than it is; never "0 s" while it runs). `ui/main.js` has the same rules
/// for its live countdown (`duration`).
pub fn human_duration(d: Duration) -> String {
    simpleotp_engine::server::format_duration(d.max(Duration::from_secs(1)))
}

/// An age or a time left in the same units, to its largest one only and rounded down (never
/// more than it is): "45 s", "5 min", "12 h", "6 d". For Sessions: "idle 12 h · ends in 6 d".
pub fn short_duration(d: Duration) -> String {
    match d.as_secs() {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

/// A session's browser and system from its User-Agent header, as a person names a device:
/// "Chrome on Android", "Safari on iPhone", "Firefox on Windows"; "curl" for a program; the
/// header itself (shortened) when nothing is recognised, "Unknown browser" when there is none.
pub fn device_name(user_agent: &str) -> String {
    let ua = user_agent.trim();
    if ua.is_empty() {
        return "Unknown browser".into();
    }
    // Order matters: Edge and Opera also say "Chrome/", Chrome also says "Safari/", an iPhone
    // says "like Mac OS X" and Android says "Linux".
    const BROWSERS: [(&str, &str); 11] = [
        ("Edg", "Edge"),
        ("OPR/", "Opera"),
        ("SamsungBrowser/", "Samsung Internet"),
        ("Firefox/", "Firefox"),
        ("FxiOS/", "Firefox"),
        ("CriOS/", "Chrome"),
        ("HeadlessChrome/", "Headless Chrome"),
        ("Chrome/", "Chrome"),
        ("Chromium/", "Chromium"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
    ];
    const SYSTEMS: [(&str, &str); 8] = [
        ("Android", "Android"),
        ("iPhone", "iPhone"),
        ("iPad", "iPad"),
        ("CrOS", "ChromeOS"),
        ("Windows", "Windows"),
        ("Macintosh", "macOS"),
        ("Mac OS X", "macOS"),
        ("Linux", "Linux"),
    ];
    let browser = BROWSERS.iter().find(|(key, _)| ua.contains(key)).map(|(_, name)| *name);
    let system = SYSTEMS.iter().find(|(key, _)| ua.contains(key)).map(|(_, name)| *name);
    match (browser, system) {
        (Some(browser), Some(system)) => format!("{browser} on {system}"),
        (Some(browser), None) => browser.to_string(),
        (None, Some(system)) => format!("A browser on {system}"),
        (None, None) if ua.chars().count() > 40 => format!("{}…", ua.chars().take(40).collect::<String>()),
        (None, None) => ua.to_string(),
    }
}
