//! The gateway's configuration: a TOML file with one `[[app]]` table per protected app.
//!
//! Every value is parsed into a validated newtype on load, so the rest of the engine never sees
//! a raw string it has to re-check. Unknown keys are errors (a typo must not silently turn a
//! setting off), and every error carries the line and column `toml` reports.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Errors reading or validating the configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `message` is `toml`'s own report, which names the line and column and quotes the line.
    #[error("invalid config file {path}:\n{message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("The configuration file was changed outside SimpleOTP since it was loaded. Your change was not saved; SimpleOTP loaded the file again — make your change again. ({path})")]
    ChangedOnDisk { path: PathBuf },
    #[error("cannot write the config file {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The whole configuration, as read from `config.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The URL path prefix owned by the gateway on every protected host (default `/_simpleotp/`).
    #[serde(default)]
    pub route_prefix: RoutePrefix,
    /// A fixed loopback address for the auth server. Only needed when you run nginx yourself
    /// (`simpleotp serve --external-nginx` with `simpleotp nginx-snippet`); otherwise the
    /// gateway picks a free port and tells its own nginx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_listen: Option<SocketAddr>,
    /// The issuer and account name shown in the authenticator app (part of the QR code).
    /// Defaults: `SimpleOTP` and `user@host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<Issuer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<Account>,
    #[serde(default)]
    pub session: SessionSettings,
    #[serde(default)]
    pub nginx: NginxSettings,
    /// Which network interfaces face other devices (`[lan]`).
    #[serde(default, skip_serializing_if = "LanSettings::is_default")]
    pub lan: LanSettings,
    /// Whether to ask for newer releases (`[updates]`).
    #[serde(default, skip_serializing_if = "UpdateSettings::is_default")]
    pub updates: UpdateSettings,
    /// Protected apps; one nginx `server` each.
    #[serde(default, rename = "app")]
    pub apps: Vec<AppConfig>,
}

/// Session lifetimes. Defaults: 7 days absolute, 12 hours idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSettings {
    /// A session ends this long after login, however active it is.
    #[serde(default = "SessionSettings::default_lifetime", with = "duration_secs", rename = "lifetime_seconds")]
    pub lifetime: Duration,
    /// A session ends when no request used it for this long.
    #[serde(default = "SessionSettings::default_idle", with = "duration_secs", rename = "idle_timeout_seconds")]
    pub idle_timeout: Duration,
}

impl SessionSettings {
    pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(12 * 3600);
    fn default_lifetime() -> Duration {
        Self::DEFAULT_LIFETIME
    }
    fn default_idle() -> Duration {
        Self::DEFAULT_IDLE_TIMEOUT
    }
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings { lifetime: Self::DEFAULT_LIFETIME, idle_timeout: Self::DEFAULT_IDLE_TIMEOUT }
    }
}

/// The network interfaces whose addresses apps on `0.0.0.0`/`::` are offered at: those go into
/// the certificate other devices see (and its URLs and mDNS). Every other address of the
/// machine (a VPN's, a docker bridge's) stays out of it, so a device that completes a TLS
/// handshake does not learn it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanSettings {
    /// The interfaces by name (`interfaces = ["eth0", "wlan0"]`; on Windows the adapter's name,
    /// e.g. `"Wi-Fi"`). Absent: the interfaces that carry a default route (see
    /// `lan::network_interfaces`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<Vec<InterfaceName>>,
}

impl LanSettings {
    fn is_default(&self) -> bool {
        self == &LanSettings::default()
    }
}

/// Asking for newer releases (see `updates`). On by default: a security tool that never hears
/// of its fixes is a liability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateSettings {
    /// `check = false`: never ask (the tray app then neither checks nor installs; `simpleotp`
    /// stays quiet about new releases).
    #[serde(default = "UpdateSettings::default_check")]
    pub check: bool,
}

impl UpdateSettings {
    fn default_check() -> bool {
        true
    }
    fn is_default(&self) -> bool {
        self == &UpdateSettings::default()
    }
}

impl Default for UpdateSettings {
    fn default() -> Self {
        UpdateSettings { check: true }
    }
}

/// How to find and run nginx.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NginxSettings {
    /// Use this nginx binary instead of searching for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

/// One protected app: nginx listens on `listen` and proxies to `upstream` once a session is valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    pub name: AppName,
    pub upstream: UpstreamUrl,
    pub listen: ListenAddr,
    /// Extra host names this app may be reached by (besides `localhost`, this machine's own
    /// names and IP addresses). Requests for any other name are refused by nginx, so a web page
    /// cannot rebind a name of its own to this machine (DNS rebinding) and talk to the app.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostName>,
    /// Whether an `https` upstream's certificate is checked against the system's roots
    /// (default). Turn off only for an app with a self-signed certificate on this machine.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub tls_verify: bool,
    /// For an app on this computer only (a loopback `listen`): serve it over HTTPS at this name
    /// of its own, `https://<https_name>:PORT/`, with a certificate from SimpleOTP's CA (which
    /// this computer must trust). Always `<label>.localhost` (browsers resolve every
    /// `*.localhost` name to loopback themselves, RFC 6761, and the CA may vouch for them);
    /// [`AppConfig::new_https_name`] makes one with a random part, e.g.
    /// `jupyter-k3x9q2ab.localhost`. The session cookie is then bound to that name: programs
    /// listening on other ports of `127.0.0.1` or `localhost` never receive it (on
    /// `http://127.0.0.1` every one of them would: cookies ignore ports). Browsers treat every
    /// `*.localhost` origin as secure, plain HTTP included, so a listener on another port *of
    /// this very name* would get the cookie if the browser were sent there: the random part
    /// keeps the name from being guessed. Apps facing other devices are served over HTTPS
    /// anyway and ignore this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https_name: Option<HostName>,
}

fn default_true() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

impl AppConfig {
    /// An app with the defaults for everything but its name, upstream and address.
    pub fn new(name: AppName, upstream: UpstreamUrl, listen: ListenAddr) -> AppConfig {
        AppConfig { name, upstream, listen, hosts: Vec::new(), tls_verify: true, https_name: None }
    }

    /// Whether nginx serves this app over HTTPS on its `listen` address: every network-facing
    /// app, and a loopback one with an [`AppConfig::https_name`]. (A network-facing app on all
    /// interfaces is also served on loopback as [`AppConfig::on_this_computer`] says.)
    pub fn served_over_https(&self) -> bool {
        self.listen.is_network_facing() || self.own_host_name().is_some()
    }

    /// The app's own host name on this computer ([`AppConfig::https_name`]); `None` for an app
    /// without one, or for the network-facing side of an app (served under the machine's names;
    /// its loopback side, [`AppConfig::on_this_computer`], keeps the name).
    pub fn own_host_name(&self) -> Option<HostName> {
        self.https_name.clone().filter(|_| !self.listen.is_network_facing())
    }

    /// How this computer itself reaches the app: the app as it is when it listens on loopback;
    /// for an app that listens on all interfaces (`0.0.0.0`, `::`), the same app on the loopback
    /// address of that family and the same port, which nginx serves exactly as it would an app
    /// on this computer only (plain HTTP, or HTTPS at its own name), while every other address
    /// speaks TLS. So letting other devices in changes nothing on this computer: no certificate
    /// warning, and the same session cookie (no unexpected sign-out). `None` for an app on one
    /// specific network address, which this computer reaches there like any other device.
    pub fn on_this_computer(&self) -> Option<AppConfig> {
        let addr = self.listen.socket_addr();
        let loopback = match addr.ip() {
            ip if ip.is_loopback() => return Some(self.clone()),
            IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            _ => return None,
        };
        Some(AppConfig { listen: ListenAddr(SocketAddr::new(loopback, addr.port())), ..self.clone() })
    }

    /// A new [`AppConfig::https_name`] for an app called `name`: `<label>-<random>.localhost`,
    /// the label made of the name in lower-case ASCII letters and digits (anything else
    /// becomes `-`, at most 20 characters, `app` when nothing is left), the random part 8
    /// characters of base 32 (40 bits) from the OS, so no other program can guess where to wait
    /// for the cookie.
    pub fn new_https_name(name: &AppName) -> HostName {
        let mut label = String::new();
        for c in name.as_str().chars() {
            if c.is_ascii_alphanumeric() {
                label.push(c.to_ascii_lowercase());
            } else if !label.ends_with('-') {
                label.push('-');
            }
        }
        let label: String = label.trim_matches('-').chars().take(20).collect();
        let label = match label.trim_end_matches('-') {
            "" => "app",
            label => label,
        };
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
        let random: String = bytes.iter().map(|b| char::from(b"abcdefghijklmnopqrstuvwxyz234567"[usize::from(b % 32)])).collect();
        format!("{label}-{random}.localhost").parse().expect("letters, digits and inner hyphens make a host name")
    }

    /// The URL a person opens on this machine to reach this app through the gateway: that of
    /// [`AppConfig::on_this_computer`] (`http://localhost:8081/`, or `https://` at the app's own
    /// name), also for an app facing other devices on all interfaces; `https://ADDRESS:PORT/` for
    /// one on a specific network address. [`crate::lan::app_urls`] gives the LAN URLs too.
    pub fn protected_url(&self) -> String {
        let app = self.on_this_computer();
        let app = app.as_ref().unwrap_or(self);
        let addr = app.listen.socket_addr();
        if let Some(own) = app.own_host_name() {
            return format!("https://{own}:{}/", addr.port());
        }
        if app.listen.is_network_facing() {
            // SocketAddr's Display brackets an IPv6 address.
            return format!("https://{addr}/");
        }
        // By name on this computer: browsers offer passkeys only at a name, never at an IP
        // address (see crate::passkey). `localhost` is 127.0.0.1 in every OS's hosts setup, and
        // browsers treat it as secure over plain HTTP. An app on ::1 keeps its address, which a
        // `localhost` that resolves to 127.0.0.1 first would not reach.
        match addr.ip() {
            std::net::IpAddr::V4(v4) if v4.is_loopback() && v4.octets() == [127, 0, 0, 1] => format!("http://localhost:{}/", addr.port()),
            _ => format!("http://{addr}/"),
        }
    }
}

impl Config {
    /// The default location: `config.toml` in the OS config directory
    /// (`~/.config/simpleotp` on Linux, `~/Library/Application Support/...` on macOS,
    /// `%APPDATA%\SimpleOTP\...` on Windows).
    pub fn default_path() -> Option<PathBuf> {
        project_dirs().map(|d| d.config_dir().join("config.toml"))
    }

    /// Parses and validates a configuration. `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string() })?;
        config.validate().map_err(|message| ConfigError::Invalid { path: path.to_path_buf(), message })?;
        Ok(config)
    }

    /// Reads `path`. A missing file is not an error: it is an empty configuration, so that a
    /// fresh install starts (and the tray app can add the first app).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(source) => Err(ConfigError::Read { path: path.to_path_buf(), source }),
        }
    }

    /// Writes the configuration atomically (the config never holds a secret, but a crash must
    /// not leave half a file behind).
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let text = toml::to_string_pretty(self).expect("config always serializes");
        crate::fsutil::write_atomic(path, text.as_bytes()).map_err(|source| ConfigError::Write { path: path.to_path_buf(), source })
    }

    /// Checks what serde cannot: rules that span several values.
    pub fn validate(&self) -> Result<(), String> {
        if self.session.lifetime.is_zero() || self.session.idle_timeout.is_zero() {
            return Err("session lifetime_seconds and idle_timeout_seconds must be greater than 0".into());
        }
        if let Some(addr) = self.auth_listen {
            if !addr.ip().is_loopback() {
                return Err(format!("auth_listen {addr} must be a loopback address (127.0.0.1 or ::1): the auth server must only be reachable through nginx"));
            }
        }
        if let Some(interfaces) = &self.lan.interfaces {
            if let Some((_, name)) = interfaces.iter().enumerate().find(|(i, name)| interfaces[..*i].contains(name)) {
                return Err(format!("[lan] interfaces lists {:?} twice", name.as_str()));
            }
        }
        for (i, app) in self.apps.iter().enumerate() {
            if let Some(name) = &app.https_name {
                let label = name.as_str().strip_suffix(".localhost").unwrap_or("");
                if label.is_empty() || label.contains('.') {
                    return Err(format!(
                        "app {:?}: https_name {:?} must be one label followed by .localhost, like \"jupyter-k3x9q2ab.localhost\"",
                        app.name.as_str(),
                        name.as_str()
                    ));
                }
            }
            for other in &self.apps[..i] {
                if other.name == app.name {
                    return Err(format!("two apps are named {:?}; names must be unique", app.name.as_str()));
                }
                if app.https_name.is_some() && other.https_name == app.https_name {
                    return Err(format!(
                        "apps {:?} and {:?} have the same https_name; each needs its own",
                        other.name.as_str(),
                        app.name.as_str()
                    ));
                }
                if other.listen.0.port() == app.listen.0.port() && addrs_overlap(other.listen.0, app.listen.0) {
                    return Err(format!(
                        "apps {:?} and {:?} both listen on {}; each app needs its own port",
                        other.name.as_str(),
                        app.name.as_str(),
                        app.listen
                    ));
                }
            }
        }
        Ok(())
    }

    /// The issuer shown in the authenticator app.
    pub fn issuer(&self) -> Issuer {
        self.issuer.clone().unwrap_or_default()
    }

    /// The account name shown in the authenticator app.
    pub fn account(&self) -> Account {
        self.account.clone().unwrap_or_else(Account::default_for_this_machine)
    }

    /// The app with this name.
    pub fn app(&self, name: &AppName) -> Option<&AppConfig> {
        self.apps.iter().find(|a| &a.name == name)
    }
}

fn addrs_overlap(a: SocketAddr, b: SocketAddr) -> bool {
    a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified()
}

pub const DEFAULT_ISSUER: &str = "SimpleOTP";

/// The per-user directories SimpleOTP uses (shared with the tray app).
pub fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("org", "SimpleOTP", "simpleotp")
}

/// The default data directory (sessions, nginx prefix, the CA, the log, the control file).
///
/// On Windows it is `%LOCALAPPDATA%\org.simpleotp.SimpleOTP\data`, not the usual
/// `%LOCALAPPDATA%\SimpleOTP\…`: the tray app's per-user installer puts the program in
/// `%LOCALAPPDATA%\SimpleOTP`, and an uninstall that clears that folder must never take the
/// sessions, the CA and the log with it. (The folder named by the app's identifier is the one the
/// uninstaller's own "delete the application data" choice removes.) A data directory at the old
/// place is moved here the first time.
pub fn default_data_dir() -> Option<PathBuf> {
    #[cfg(windows)]
    {
        let local = directories::BaseDirs::new()?.data_local_dir().to_path_buf();
        let dir = windows_data_dir(&local);
        match move_old_data_dir(&old_windows_data_dir(&local), &dir) {
            Ok(true) => tracing::info!("moved the data directory to {}", dir.display()),
            Ok(false) => {}
            Err(e) => tracing::warn!("cannot move the old data directory to {}: {e}", dir.display()),
        }
        Some(dir)
    }
    #[cfg(not(windows))]
    {
        project_dirs().map(|d| d.data_local_dir().to_path_buf())
    }
}

/// The Windows data directory under `%LOCALAPPDATA%` (see [`default_data_dir`]).
#[cfg_attr(not(windows), allow(dead_code))]
fn windows_data_dir(local_app_data: &Path) -> PathBuf {
    local_app_data.join("org.simpleotp.SimpleOTP").join("data")
}

/// Where earlier versions kept it on Windows: inside the per-user install folder.
#[cfg_attr(not(windows), allow(dead_code))]
fn old_windows_data_dir(local_app_data: &Path) -> PathBuf {
    local_app_data.join("SimpleOTP").join("simpleotp").join("data")
}

/// Moves `old` to `new` when only `old` exists (true: it moved). A `new` that exists is never
/// touched or merged into.
#[cfg_attr(not(windows), allow(dead_code))]
fn move_old_data_dir(old: &Path, new: &Path) -> std::io::Result<bool> {
    if new.exists() || !old.is_dir() {
        return Ok(false);
    }
    if let Some(parent) = new.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::rename(old, new)?;
    Ok(true)
}

mod duration_secs {
    use super::*;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs(u64::deserialize(d)?))
    }
}

/// Implements `Display`, `Serialize` and `Deserialize` (through `FromStr`) for a newtype, so
/// that a bad value becomes a toml error with its line and column.
macro_rules! string_newtype {
    ($ty:ident) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.as_string(), f)
            }
        }
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.as_string())
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                raw.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// An app's display name: 1–40 characters of letters, digits, space, `-`, `_`, `.`.
/// It is written into nginx.conf comments and shown in the UI, so nothing else is allowed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AppName(String);

impl AppName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    fn as_string(&self) -> String {
        self.0.clone()
    }
}

impl FromStr for AppName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() || s.chars().count() > 40 {
            return Err("app name must be 1 to 40 characters".into());
        }
        if !s.chars().all(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.')) {
            return Err(format!("app name {s:?} may only contain letters, digits, spaces, '-', '_' and '.'"));
        }
        Ok(AppName(s.to_string()))
    }
}
string_newtype!(AppName);

/// The longest issuer or account name, in bytes. Both go into the `otpauth://` URI that the QR
/// code holds, percent-encoded (up to 3 bytes each) and the issuer twice; with this limit even
/// the worst case stays a few hundred bytes, a code a phone can still scan from a screen
/// (a QR code holds at most 2331 bytes at the error correction level used, see [`crate::qr`]).
pub const MAX_LABEL_BYTES: usize = 64;

/// The checks issuer and account share; `key` names the setting in the message.
fn check_label(key: &str, s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err(format!("{key} must not be empty"));
    }
    if s.len() > MAX_LABEL_BYTES {
        return Err(format!("{key} must be at most {MAX_LABEL_BYTES} bytes long (it goes into the QR code), not {}", s.len()));
    }
    if s.chars().any(char::is_control) {
        return Err(format!("{key} {s:?} must not contain control characters"));
    }
    Ok(())
}

/// Who the authenticator app says the codes are for (`issuer = "Home Lab"`): 1 to
/// [`MAX_LABEL_BYTES`] bytes, no `:` (the authenticator label is `issuer:account`), no control
/// characters. Default [`DEFAULT_ISSUER`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Issuer(String);

impl Issuer {
    pub fn parse(s: &str) -> Result<Issuer, String> {
        check_label("issuer", s)?;
        // The authenticator's label is `issuer:account`: a `:` in the issuer would move the
        // split, and apps that group entries by issuer would file this one elsewhere.
        if s.contains(':') {
            return Err(format!("issuer {s:?} must not contain ':'"));
        }
        Ok(Issuer(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    fn as_string(&self) -> String {
        self.0.clone()
    }
}

impl Default for Issuer {
    fn default() -> Self {
        Issuer(DEFAULT_ISSUER.to_string())
    }
}

impl FromStr for Issuer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Issuer::parse(s)
    }
}
string_newtype!(Issuer);

/// The account name the authenticator app shows under the issuer (`account = "alice@laptop"`):
/// 1 to [`MAX_LABEL_BYTES`] bytes, no control characters. A `:` is allowed (people write
/// `alice:laptop`); the authenticator label shows it as `-` (see [`crate::totp::Totp::new`]).
/// Default `user@host`, so one authenticator app can tell several machines apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Account(String);

impl Account {
    pub fn parse(s: &str) -> Result<Account, String> {
        check_label("account", s)?;
        Ok(Account(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    fn as_string(&self) -> String {
        self.0.clone()
    }

    /// `user@host` from the environment. A user or host name that breaks the rules (a control
    /// character, too long) is made to fit rather than refused: nobody chose it.
    pub fn default_for_this_machine() -> Account {
        let user = std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_else(|_| "me".into());
        let host = host_name().unwrap_or_else(|| "localhost".into());
        Account::fitted(&format!("{user}@{host}"))
    }

    /// `s` with control characters replaced by `-` and cut to [`MAX_LABEL_BYTES`].
    fn fitted(s: &str) -> Account {
        let mut out = String::new();
        for c in s.chars().map(|c| if c.is_control() { '-' } else { c }) {
            if out.len() + c.len_utf8() > MAX_LABEL_BYTES {
                break;
            }
            out.push(c);
        }
        if out.trim().is_empty() {
            out = "me".into();
        }
        Account(out)
    }
}

impl FromStr for Account {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Account::parse(s)
    }
}
string_newtype!(Account);

/// This machine's host name, as the OS reports it (the default account's `@host`, and the
/// names every protected app answers for).
#[cfg(unix)]
pub(crate) fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it (or
    // truncates, which the CStr search below tolerates).
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let name = std::ffi::CStr::from_bytes_until_nul(&buf).ok()?.to_str().ok()?;
    (ok && !name.is_empty()).then(|| name.to_string())
}

#[cfg(windows)]
pub(crate) fn host_name() -> Option<String> {
    std::env::var("COMPUTERNAME").ok().filter(|n| !n.is_empty())
}

/// This machine's own names, which every protected app answers for and the local CA may vouch
/// for: the host name as the OS reports it, its first label, and `<first label>.local` (the name
/// mDNS answers on the local network). Names that are not valid DNS names are left out;
/// `localhost` is not among them (it is everyone's name, and each user adds it where it fits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineNames(Vec<HostName>);

impl MachineNames {
    /// The names of the machine this runs on (none when the OS reports no usable host name).
    pub fn this_machine() -> MachineNames {
        host_name().map(|host| MachineNames::from_host_name(&host)).unwrap_or(MachineNames(Vec::new()))
    }

    /// The names that follow from a host name (`box`, `box.lan` → `box.lan`, `box`, `box.local`).
    pub fn from_host_name(host: &str) -> MachineNames {
        let short = host.split('.').next().unwrap_or_default().to_string();
        let mut names: Vec<HostName> = Vec::new();
        for name in [host.to_string(), short.clone(), format!("{short}.local")].iter().filter_map(|n| n.parse().ok()) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        MachineNames(names)
    }

    pub fn names(&self) -> &[HostName] {
        &self.0
    }
}

/// A DNS host name an app may be reached by (`hosts = ["jupyter.home.arpa"]`): letters, digits,
/// `-` and `.`, at most 253 characters, no wildcards. Lower-cased, as host names compare.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostName(String);

impl HostName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    fn as_string(&self) -> String {
        self.0.clone()
    }
}

impl FromStr for HostName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let name = s.trim().trim_end_matches('.').to_ascii_lowercase();
        let labels_ok = name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
        if name.is_empty() || name.len() > 253 || !labels_ok {
            return Err(format!("host name {s:?} is not a valid DNS name (letters, digits, '-' and '.', e.g. \"jupyter.home.arpa\")"));
        }
        Ok(HostName(name))
    }
}
string_newtype!(HostName);

/// A network interface's name as the OS shows it: 1–64 characters, no control characters, not
/// blank (Linux names are at most 15 bytes; Windows adapter names are longer and may hold
/// spaces). Compared exactly.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InterfaceName(String);

impl InterfaceName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    fn as_string(&self) -> String {
        self.0.clone()
    }
}

impl FromStr for InterfaceName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim().is_empty() || s.chars().count() > 64 || s.chars().any(char::is_control) || s.trim() != s {
            return Err(format!(
                "interface name {s:?} is not valid: use the name your system shows (e.g. \"eth0\", \"wlan0\", \"Wi-Fi\"), 1 to 64 characters without leading or trailing spaces"
            ));
        }
        Ok(InterfaceName(s.to_string()))
    }
}
string_newtype!(InterfaceName);

/// Where nginx forwards requests for an app: `http://host:port` with an optional path.
/// Only `http` and `https` are accepted; no credentials, query or fragment, no whitespace,
/// and nothing that could break out of an nginx directive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UpstreamUrl {
    scheme: String,
    host: String,
    port: u16,
    path: String,
}

impl UpstreamUrl {
    pub fn scheme(&self) -> &str {
        &self.scheme
    }
    pub fn host(&self) -> &str {
        &self.host
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    /// The path part, `""` when none was given.
    pub fn path(&self) -> &str {
        &self.path
    }
    /// `host:port`, as used to connect.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
    fn as_string(&self) -> String {
        format!("{}://{}:{}{}", self.scheme, self.host, self.port, self.path)
    }
}

impl FromStr for UpstreamUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("upstream {s:?} is not a valid URL like http://127.0.0.1:8888 ({why})");
        let (scheme, rest) = s.split_once("://").ok_or_else(|| bad("missing http://"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(bad("only http and https are supported"));
        }
        if rest
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, ';' | '{' | '}' | '"' | '\'' | '\\' | '$' | '#' | '?' | '@'))
        {
            return Err(bad("it contains a character that is not allowed"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let path = if path == "/" { "" } else { path };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            let port = after.strip_prefix(':');
            (format!("[{h}]"), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        if host.is_empty() || host == "[]" {
            return Err(bad("missing host"));
        }
        let port = match port {
            Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| bad("port must be 1-65535"))?,
            None if scheme == "https" => 443,
            None => 80,
        };
        Ok(UpstreamUrl { scheme, host: host.to_ascii_lowercase(), port, path: path.to_string() })
    }
}
string_newtype!(UpstreamUrl);

/// The address and port nginx listens on for an app, e.g. `127.0.0.1:8081`
/// (this computer only) or `0.0.0.0:8081` (the local network).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenAddr(pub SocketAddr);

impl ListenAddr {
    pub fn socket_addr(&self) -> SocketAddr {
        self.0
    }
    /// Whether other machines can reach this address: anything but loopback (`0.0.0.0`, `::`
    /// and the machine's own addresses). Such apps are served over HTTPS only.
    pub fn is_network_facing(&self) -> bool {
        !self.0.ip().is_loopback()
    }
    fn as_string(&self) -> String {
        self.0.to_string()
    }
}

impl FromStr for ListenAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let addr: SocketAddr = s.parse().map_err(|_| format!("listen {s:?} must be an address and port like 127.0.0.1:8081"))?;
        if addr.port() == 0 {
            return Err(format!("listen {s:?} needs a fixed port, not 0"));
        }
        Ok(ListenAddr(addr))
    }
}
string_newtype!(ListenAddr);

/// The URL path prefix that belongs to the gateway on every protected host, e.g. `/_simpleotp/`.
/// Always starts and ends with `/`, and has at least one segment: apps own the rest of the path
/// space (Jupyter owns `/login`, many apps own `/auth`), so the default is deliberately unusual.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoutePrefix(String);

impl RoutePrefix {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The full path of one of the gateway's routes ([`crate::protocol::routes`]), e.g.
    /// `route(routes::LOGIN)` → `/_simpleotp/login`.
    pub fn route(&self, name: &str) -> String {
        format!("{}{}", self.0, name)
    }
    fn as_string(&self) -> String {
        self.0.clone()
    }
}

impl Default for RoutePrefix {
    fn default() -> Self {
        RoutePrefix("/_simpleotp/".into())
    }
}

impl FromStr for RoutePrefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let trimmed = s.trim_matches('/');
        if trimmed.is_empty()
            || !trimmed.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
            || trimmed.contains("//")
            || trimmed.split('/').any(|seg| seg == "." || seg == "..")
        {
            return Err(format!("route_prefix {s:?} must be a path like /_simpleotp/ (letters, digits, '_', '-', '.')"));
        }
        Ok(RoutePrefix(format!("/{trimmed}/")))
    }
}
string_newtype!(RoutePrefix);

#[cfg(test)]
mod lan_settings_tests {
    use super::*;

    /// `[lan] interfaces` is optional (absent: the default-route interfaces), read and written
    /// back, and a bad name or a repeated one is refused with what to write instead.
    #[test]
    fn lan_interfaces_are_optional_validated_and_round_trip() {
        let config: Config = toml::from_str("").unwrap();
        assert_eq!(config.lan.interfaces, None);
        assert!(!toml::to_string(&config).unwrap().contains("[lan]"), "the default is not written out");

        let config: Config = toml::from_str("[lan]\ninterfaces = [\"eth0\", \"Wi-Fi 2\"]\n").unwrap();
        let names: Vec<&str> = config.lan.interfaces.as_ref().unwrap().iter().map(InterfaceName::as_str).collect();
        assert_eq!(names, ["eth0", "Wi-Fi 2"]);
        config.validate().unwrap();
        assert_eq!(toml::from_str::<Config>(&toml::to_string(&config).unwrap()).unwrap(), config);

        for bad in ["\"\"", "\" eth0\"", "\"eth\\u0000\"", &format!("\"{}\"", "x".repeat(65))] {
            let err = toml::from_str::<Config>(&format!("[lan]\ninterfaces = [{bad}]\n")).unwrap_err().to_string();
            assert!(err.contains("interface name") && err.contains("e.g. \"eth0\""), "{bad}: {err}");
        }
        let twice: Config = toml::from_str("[lan]\ninterfaces = [\"eth0\", \"eth0\"]\n").unwrap();
        assert!(twice.validate().unwrap_err().contains("\"eth0\" twice"));
        assert!(toml::from_str::<Config>("[lan]\ninterface = [\"eth0\"]\n").is_err(), "a misspelt key is refused");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The per-user installer's folder (`%LOCALAPPDATA%\SimpleOTP`) and the data directory are
    /// apart, and data at the old place, inside the install folder, moves out once.
    #[test]
    fn an_https_name_is_a_random_localhost_name_and_validated() {
        let name: AppName = "My Notebook 2".parse().unwrap();
        let first = AppConfig::new_https_name(&name);
        let second = AppConfig::new_https_name(&name);
        let random =
            |n: &HostName| n.as_str().strip_prefix("my-notebook-2-").and_then(|r| r.strip_suffix(".localhost")).map(str::to_string);
        let part = random(&first).unwrap_or_else(|| panic!("{first}"));
        assert!(part.len() == 8 && part.chars().all(|c| c.is_ascii_lowercase() || ('2'..='7').contains(&c)), "{first}");
        assert_ne!(first, second, "each name has its own random part");
        assert!(AppConfig::new_https_name(&"Zoë".parse().unwrap()).as_str().starts_with("zo-"));
        assert!(AppConfig::new_https_name(&"ëë".parse().unwrap()).as_str().starts_with("app-"));
        assert!(AppConfig::new_https_name(&"a-very-long-name-of-an-app-indeed".parse().unwrap())
            .as_str()
            .starts_with("a-very-long-name-of-"));

        let text = |https_name: &str| {
            format!("[[app]]\nname = \"Jupyter\"\nupstream = \"http://127.0.0.1:8888\"\nlisten = \"127.0.0.1:8081\"\nhttps_name = \"{https_name}\"\n")
        };
        let config = Config::parse(&text("jupyter-k3x9q2ab.localhost"), Path::new("c.toml")).unwrap();
        let app = &config.apps[0];
        assert_eq!(app.protected_url(), "https://jupyter-k3x9q2ab.localhost:8081/");
        assert!(app.served_over_https());
        for bad in ["jupyter.example.com", "a.b.localhost", "localhost"] {
            let error = Config::parse(&text(bad), Path::new("c.toml")).unwrap_err().to_string();
            assert!(error.contains("must be one label followed by .localhost"), "{bad}: {error}");
        }
        // An app facing other devices is served under the machine's names there; this computer
        // keeps opening it at its own name.
        let facing = AppConfig { listen: "0.0.0.0:8081".parse().unwrap(), ..app.clone() };
        assert_eq!(facing.own_host_name(), None);
        assert_eq!(facing.on_this_computer().unwrap().own_host_name(), app.https_name);
        assert_eq!(facing.protected_url(), "https://jupyter-k3x9q2ab.localhost:8081/");
        let twice = Config {
            apps: vec![app.clone(), AppConfig { name: "Other".parse().unwrap(), listen: "127.0.0.1:8082".parse().unwrap(), ..app.clone() }],
            ..Config::default()
        };
        assert!(twice.validate().unwrap_err().contains("the same https_name"));
    }

    #[test]
    fn the_windows_data_directory_is_outside_the_install_folder_and_old_data_moves_there() {
        let local = tempfile::tempdir().unwrap();
        let install = local.path().join("SimpleOTP");
        let data = windows_data_dir(local.path());
        assert!(!data.starts_with(&install), "{}", data.display());
        let old = old_windows_data_dir(local.path());
        assert!(old.starts_with(&install));

        std::fs::create_dir_all(old.join("nginx")).unwrap();
        std::fs::write(old.join("state.json"), "{}").unwrap();
        assert!(move_old_data_dir(&old, &data).unwrap());
        assert_eq!(std::fs::read_to_string(data.join("state.json")).unwrap(), "{}");
        assert!(data.join("nginx").is_dir() && !old.exists());
        // Once moved, nothing more happens; a new directory is never merged into.
        std::fs::create_dir_all(&old).unwrap();
        std::fs::write(old.join("state.json"), "old").unwrap();
        assert!(!move_old_data_dir(&old, &data).unwrap());
        assert_eq!(std::fs::read_to_string(data.join("state.json")).unwrap(), "{}");
        assert!(!move_old_data_dir(&local.path().join("nothing"), &local.path().join("new")).unwrap());
    }

    #[test]
    fn machine_names_follow_from_the_host_name() {
        let names = |host: &str| MachineNames::from_host_name(host).names().iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(names("Box.LAN"), ["box.lan", "box", "box.local"]);
        assert_eq!(names("testbox"), ["testbox", "testbox.local"]);
        // A name that is not a valid DNS name is left out rather than guessed at.
        assert_eq!(names("my_box"), Vec::<String>::new());
        assert_eq!(names(""), Vec::<String>::new());
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("config.toml"))
    }

    #[test]
    fn parses_a_full_config() {
        let c = parse(
            r#"
route_prefix = "/_gate/"
[session]
lifetime_seconds = 3600
idle_timeout_seconds = 600
[nginx]
path = "/opt/nginx/sbin/nginx"
[[app]]
name = "Jupyter"
upstream = "http://127.0.0.1:8888"
listen = "127.0.0.1:8081"
"#,
        )
        .unwrap();
        assert_eq!(c.route_prefix.as_str(), "/_gate/");
        assert_eq!(c.session.lifetime, Duration::from_secs(3600));
        assert_eq!(c.apps[0].upstream.port(), 8888);
        assert_eq!(c.apps[0].protected_url(), "http://localhost:8081/");
        let lan = AppConfig::new("lan".parse().unwrap(), "http://127.0.0.1:1".parse().unwrap(), "0.0.0.0:8082".parse().unwrap());
        assert_eq!(lan.protected_url(), "http://localhost:8082/", "this computer keeps plain HTTP on loopback");
        let lan6 = AppConfig { listen: "[::]:8082".parse().unwrap(), ..lan.clone() };
        assert_eq!(lan6.protected_url(), "http://[::1]:8082/");
        let one_address = AppConfig { listen: "192.168.1.20:8082".parse().unwrap(), ..lan.clone() };
        assert!(one_address.on_this_computer().is_none());
        assert_eq!(one_address.protected_url(), "https://192.168.1.20:8082/", "only TLS is spoken there");
        assert_eq!(c.nginx.path.as_deref(), Some(Path::new("/opt/nginx/sbin/nginx")));
    }

    #[test]
    fn issuer_and_account_are_checked_with_the_key_named() {
        let c = parse("issuer = \"Home Lab\"\naccount = \"alice:laptop\"\n").unwrap();
        assert_eq!(c.issuer().as_str(), "Home Lab");
        assert_eq!(c.account().as_str(), "alice:laptop");
        for (line, expected) in [
            ("issuer = \"\"", "issuer must not be empty"),
            ("issuer = \"  \"", "issuer must not be empty"),
            ("issuer = \"a:b\"", "issuer \"a:b\" must not contain ':'"),
            ("account = \"a\\u0007b\"", "account \"a\\u{7}b\" must not contain control characters"),
            ("issuer = \"a\\nb\"", "issuer \"a\\nb\" must not contain control characters"),
        ] {
            let err = parse(line).unwrap_err().to_string();
            assert!(err.contains(expected), "{line}: {err}");
        }
        let long = format!("account = \"{}\"", "é".repeat(33));
        let err = parse(&long).unwrap_err().to_string();
        assert!(err.contains("account must be at most 64 bytes long (it goes into the QR code), not 66"), "{err}");
        assert!(parse(&format!("account = \"{}\"", "a".repeat(MAX_LABEL_BYTES))).is_ok());
    }

    #[test]
    fn default_issuer_and_account_are_valid() {
        let c = Config::default();
        assert_eq!(c.issuer().as_str(), DEFAULT_ISSUER);
        let account = c.account();
        assert_eq!(Account::parse(account.as_str()), Ok(account.clone()), "{account}");
        assert_eq!(Account::fitted("a\tb").as_str(), "a-b");
        assert_eq!(Account::fitted(&"é".repeat(40)).as_str(), "é".repeat(32));
        assert_eq!(Account::fitted("\n").as_str(), "-");
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.route_prefix.as_str(), "/_simpleotp/");
    }

    #[test]
    fn unknown_key_is_an_error_with_line_and_column() {
        let err = parse("[[app]]\nname = \"a\"\nupstream = \"http://127.0.0.1:1\"\nlisten = \"127.0.0.1:2\"\nlisen = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 5"), "{err}");
        assert!(err.contains("lisen"), "{err}");
    }

    #[test]
    fn bad_value_is_an_error_with_line_and_column() {
        let err = parse("[[app]]\nname = \"a\"\nupstream = \"ftp://x\"\nlisten = \"127.0.0.1:2\"\n").unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("only http and https"), "{err}");
    }

    #[test]
    fn duplicate_ports_are_rejected() {
        let err = parse(
            "[[app]]\nname = \"a\"\nupstream = \"http://127.0.0.1:1\"\nlisten = \"127.0.0.1:2\"\n\
             [[app]]\nname = \"b\"\nupstream = \"http://127.0.0.1:1\"\nlisten = \"0.0.0.0:2\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("each app needs its own port"), "{err}");
    }

    #[test]
    fn upstream_rejects_nginx_injection() {
        for bad in [
            "http://127.0.0.1:1;evil",
            "http://a b",
            "http://h:1/x{",
            "http://user@h:1",
            "http://h:0",
            "http://h:99999",
            "http://",
            "127.0.0.1:1",
        ] {
            assert!(bad.parse::<UpstreamUrl>().is_err(), "{bad} accepted");
        }
        let u: UpstreamUrl = "http://LOCALHOST:8888/lab".parse().unwrap();
        assert_eq!(u.to_string(), "http://localhost:8888/lab");
        let u: UpstreamUrl = "http://[::1]:9000".parse().unwrap();
        assert_eq!(u.authority(), "[::1]:9000");
    }

    #[test]
    fn route_prefix_is_normalised() {
        assert_eq!("_x".parse::<RoutePrefix>().unwrap().as_str(), "/_x/");
        assert!("/".parse::<RoutePrefix>().is_err());
        assert!("/a/../b".parse::<RoutePrefix>().is_err());
        assert!("/a b/".parse::<RoutePrefix>().is_err());
    }

    #[test]
    fn app_names_are_restricted() {
        assert!("Jupyter Lab".parse::<AppName>().is_ok());
        assert!("a;b".parse::<AppName>().is_err());
        assert!("".parse::<AppName>().is_err());
    }

    #[test]
    fn config_round_trips() {
        let c = parse("[[app]]\nname = \"a\"\nupstream = \"http://127.0.0.1:1\"\nlisten = \"127.0.0.1:2\"\n").unwrap();
        let text = toml::to_string_pretty(&c).unwrap();
        assert_eq!(parse(&text).unwrap(), c);
    }
}
