//! The protected apps: added, edited and removed from the window, each change applied to the
//! running nginx before it is saved (through `config`).
//!
//! Around that, what makes the first app work in one try: a free port offered up front, a
//! taken port answered with a free one to use instead (not nginx's bind error), a **Test** of
//! the upstream before saving, and a warning when the app itself is reachable at this
//! computer's network address (`listeners`), since other devices then skip the code through its
//! own port.

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::info;

use simpleotp_engine::config::{AppConfig, AppName, Config, ListenAddr, UpstreamUrl};

use super::listeners;
use super::views::{AppInput, AppSaved, AppView, StatusView, UpstreamCheck};
use super::{listen_ip, Core, CoreError, Result};
use crate::sync::lock;

/// How long "does the upstream answer?" waits before warning.
const UPSTREAM_PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

/// The port offered for a new app, when it is free: the one the README and the screens use.
const FIRST_OFFERED_PORT: u16 = 8081;

impl Core {
    pub async fn app_add(self: &Arc<Self>, input: AppInput) -> Result<AppSaved> {
        let mut edit = self.edit_config().await;
        let app = self.parse_app(&input)?;
        self.check_port_is_free(&edit.config, &app, None)?;
        edit.config.apps.push(app.clone());
        let warnings = self.apply_app_change(&edit, false).await?;
        drop(edit);
        info!(app = %app.name, "app added");
        self.recheck_bypasses_soon();
        Ok(with_warnings(saved(&app).await, warnings))
    }

    /// Applies a change of the apps (reload, or `restart` when an app moves between loopback and
    /// the network), and keeps "other devices may connect" true to the apps: the first app that
    /// faces the network asks Windows' firewall first and says what it means; the last one to
    /// stop facing it forgets the firewall rule. Returns what to tell the user.
    async fn apply_app_change(self: &Arc<Self>, edit: &super::config::ConfigEdit<'_>, restart: bool) -> Result<Vec<String>> {
        let lan = super::listens_on_lan(&edit.config);
        let was_lan = *lock(&self.lan);
        let mut warnings = Vec::new();
        if lan && !was_lan {
            warnings.push(super::views::LAN_WARNING.to_string());
            warnings.extend(self.open_firewall(edit.config.nginx.path.as_deref()).await);
        }
        if restart {
            self.save_and_restart(edit).await?;
        } else {
            self.apply(edit).await?;
        }
        *lock(&self.lan) = lan;
        if was_lan && !lan {
            self.forget_firewall();
        }
        Ok(warnings)
    }

    /// Changes the app named `original` (its name may change too).
    pub async fn app_edit(self: &Arc<Self>, original: &str, input: AppInput) -> Result<AppSaved> {
        let mut edit = self.edit_config().await;
        let app = self.parse_app(&input)?;
        self.check_port_is_free(&edit.config, &app, Some(original))?;
        let slot =
            edit.config.apps.iter_mut().find(|a| a.name.as_str() == original).ok_or_else(|| CoreError::NoSuchApp(original.into()))?;
        // The window edits name, upstream, port and whether the app has its own address;
        // settings only the config file has (extra host names, TLS verification) stay as they
        // were, and so does an own address the app keeps (bookmarks and the signed-in cookie
        // belong to it).
        let https_name = if input.own_address { slot.https_name.take().or(app.https_name) } else { None };
        let app = AppConfig { hosts: std::mem::take(&mut slot.hosts), tls_verify: slot.tls_verify, https_name, ..app };
        // nginx cannot move a port it holds between 127.0.0.1 and 0.0.0.0 by reloading: letting
        // other devices in (or out) restarts the gateway, as the Settings switch does. Sessions
        // survive (they are in the state file).
        let moves = slot.listen.socket_addr().ip() != app.listen.socket_addr().ip();
        *slot = app.clone();
        let warnings = self.apply_app_change(&edit, moves).await?;
        drop(edit);
        info!(app = %app.name, "app changed");
        self.recheck_bypasses_soon();
        Ok(with_warnings(saved(&app).await, warnings))
    }

    pub async fn app_remove(self: &Arc<Self>, name: &str) -> Result<StatusView> {
        let mut edit = self.edit_config().await;
        let before = edit.config.apps.len();
        edit.config.apps.retain(|a| a.name.as_str() != name);
        if edit.config.apps.len() == before {
            return Err(CoreError::NoSuchApp(name.into()));
        }
        self.apply_app_change(&edit, false).await?;
        drop(edit);
        info!(app = name, "app removed");
        self.recheck_bypasses_soon();
        Ok(self.status())
    }

    /// The protected URL of an app, to open in the browser.
    pub fn app_url(&self, name: &str) -> Result<String> {
        let config = self.config();
        config.apps.iter().find(|a| a.name.as_str() == name).map(|a| a.protected_url()).ok_or_else(|| CoreError::NoSuchApp(name.into()))
    }

    /// A port to offer for a new app: 8081 if it is free, else the next free one.
    pub fn app_free_port(&self) -> Result<u16> {
        let config = self.config();
        free_port_from(&config, self.listen_ip(), FIRST_OFFERED_PORT, None)
            .ok_or_else(|| CoreError::Invalid("No port from 8081 up is free; stop a program that holds ports.".into()))
    }

    /// Where an app on `port` will answer ("Open it at: …"), as the window previews it while the
    /// port is typed: `http://127.0.0.1:PORT/`, or the HTTPS address when other devices may
    /// reach the apps.
    pub fn app_address(&self, port: u16) -> Result<String> {
        let listen = ListenAddr(SocketAddr::new(self.listen_ip(), port));
        let name: AppName = "preview".parse().map_err(CoreError::Invalid)?;
        let upstream: UpstreamUrl = "http://127.0.0.1:1".parse().map_err(CoreError::Invalid)?;
        Ok(AppConfig::new(name, upstream, listen).protected_url())
    }

    /// The **Test** button: a real HTTP request to the upstream the window describes (nothing
    /// is saved), and whether the app itself is reachable from other devices.
    pub async fn app_test(&self, input: &AppInput) -> Result<UpstreamCheck> {
        let upstream = parse_upstream(&input.upstream)?;
        let name = match input.name.trim() {
            "" => "The app",
            name => name,
        };
        let (answers, message) = match probe(&upstream).await {
            // The status code only when it is an error page: a working app "answered".
            Probe::Http(status) if status < 400 => (true, format!("{name} answered: it runs there.")),
            Probe::Http(status) => (true, format!("{name} answered, but with an error page (code {status}): check the address.")),
            Probe::Tls => (true, format!("{name} answered at {upstream} over HTTPS (the connection works; its page is not read here).")),
            Probe::Connected => {
                (true, format!("Something answers at {upstream}, but not as a web page (should the address start with https://?)."))
            }
            Probe::Nothing => (false, format!("Nothing answers at {upstream} — is it running?")),
        };
        let exposure = exposure_warning(name, &upstream, &listeners::network_addresses()).await;
        Ok(UpstreamCheck { answers, message, exposure })
    }

    fn listen_ip(&self) -> IpAddr {
        listen_ip(*lock(&self.lan))
    }

    /// Refuses a port another app of ours or another program holds, with a free one to use
    /// instead. `editing`: the app being changed, whose own port is not "taken" (our nginx
    /// holds it).
    fn check_port_is_free(&self, config: &Config, app: &AppConfig, editing: Option<&str>) -> Result<()> {
        let addr = app.listen.socket_addr();
        let port = addr.port();
        let mut others = config.apps.iter().filter(|a| Some(a.name.as_str()) != editing);
        let used_by = others.find(|a| a.listen.socket_addr().port() == port).map(|a| a.name.to_string());
        let own_port = config.apps.iter().any(|a| Some(a.name.as_str()) == editing && a.listen.socket_addr().port() == port);
        if used_by.is_none() && (own_port || bindable(addr.ip(), port)) {
            return Ok(());
        }
        let avoid = upstream_port_if_local(&app.upstream);
        let alternative = free_port_from(config, addr.ip(), port.saturating_add(1), avoid);
        Err(CoreError::PortTaken { port, used_by, alternative })
    }

    /// The app the window describes, listening where the other apps do (see `listen_ip`).
    fn parse_app(&self, input: &AppInput) -> Result<AppConfig> {
        let name: AppName = input.name.parse().map_err(CoreError::Invalid)?;
        let upstream = parse_upstream(&input.upstream)?;
        if input.port == 0 {
            return Err(CoreError::Invalid("Choose a port between 1 and 65535 for the protected app.".into()));
        }
        let ip = input.other_devices.map_or_else(|| self.listen_ip(), listen_ip);
        if upstream_port_if_local(&upstream) == Some(input.port) {
            return Err(CoreError::Invalid(format!(
                "Port {} is the app's own port. Choose another port for the protected address (for example {}).",
                input.port,
                input.port.checked_add(1).unwrap_or(8081)
            )));
        }
        let mut app = AppConfig::new(name, upstream, ListenAddr(SocketAddr::new(ip, input.port)));
        if input.own_address {
            app.https_name = Some(AppConfig::new_https_name(&app.name));
        }
        Ok(app)
    }
}

/// `http://127.0.0.1:8888`, also typed as `127.0.0.1:8888`.
fn parse_upstream(text: &str) -> Result<UpstreamUrl> {
    let text = text.trim();
    let text = if text.contains("://") { text.to_string() } else { format!("http://{text}") };
    text.parse().map_err(CoreError::Invalid)
}

fn is_local(upstream: &UpstreamUrl) -> bool {
    matches!(upstream.host(), "localhost" | "127.0.0.1" | "[::1]" | "0.0.0.0")
}

/// The upstream's port when it runs on this computer (then the protected app cannot use it, and
/// `listeners` checks whether other devices reach it there).
pub(super) fn upstream_port_if_local(upstream: &UpstreamUrl) -> Option<u16> {
    is_local(upstream).then(|| upstream.port())
}

/// Whether nothing listens on `ip:port` now (binding it and letting go at once).
fn bindable(ip: IpAddr, port: u16) -> bool {
    TcpListener::bind((ip, port)).is_ok()
}

/// The first port from `first` up that no app of `config` uses, is not `avoid`, and nothing
/// listens on.
fn free_port_from(config: &Config, ip: IpAddr, first: u16, avoid: Option<u16>) -> Option<u16> {
    (first.max(1)..=u16::MAX)
        .find(|&port| Some(port) != avoid && !config.apps.iter().any(|a| a.listen.socket_addr().port() == port) && bindable(ip, port))
}

/// What the app asks for itself once SimpleOTP lets the browser through.
fn own_sign_in_note(app: &AppConfig) -> String {
    let looks_like_jupyter = app.name.as_str().to_ascii_lowercase().contains("jupyter") || app.upstream.port() == 8888;
    if looks_like_jupyter {
        format!(
            "{} will still ask for its own token or password: SimpleOTP adds the code in front of it, it does not replace it.",
            app.name
        )
    } else {
        format!("If {} has a password of its own, it still asks for it after the code.", app.name)
    }
}

/// `saved` with `warnings` (other devices let in) before its own.
fn with_warnings(mut saved: AppSaved, warnings: Vec<String>) -> AppSaved {
    if !warnings.is_empty() {
        saved.warning = Some(warnings.into_iter().chain(saved.warning.take()).collect::<Vec<_>>().join(" "));
    }
    saved
}

async fn saved(app: &AppConfig) -> AppSaved {
    let addresses = listeners::network_addresses();
    let reachable = match upstream_port_if_local(&app.upstream) {
        Some(port) => listeners::reachable_at(port, &addresses, listeners::CONNECT_TIMEOUT).await,
        None => None,
    };
    AppSaved {
        warning: upstream_warning(&app.upstream).await,
        exposure: reachable.map(|at| exposure_text(app.name.as_str(), at)),
        own_sign_in: own_sign_in_note(app),
        app: AppView { reachable_without_code: reachable.map(|at| at.to_string()), ..AppView::from(app) },
    }
}

/// When the app runs on this computer and answers on its own port at one of `addresses` (this
/// computer's network addresses), other devices reach it there without a code: say so.
async fn exposure_warning(name: &str, upstream: &UpstreamUrl, addresses: &[IpAddr]) -> Option<String> {
    let port = upstream_port_if_local(upstream)?;
    let at = listeners::reachable_at(port, addresses, listeners::CONNECT_TIMEOUT).await?;
    Some(exposure_text(name, at))
}

/// "Jupyter is reachable without a code: …", with where and what to do.
fn exposure_text(name: &str, at: SocketAddr) -> String {
    let port = at.port();
    format!(
        "{name} is reachable without a code: it answers on its own port at this computer's network address ({at}), so other \
         devices can open it there and skip the code. Start it for this computer only (on 127.0.0.1; Jupyter: --ip=127.0.0.1), or \
         block port {port} in the firewall."
    )
}

/// What answered the **Test** button's request.
enum Probe {
    /// An HTTP status line came back.
    Http(u16),
    /// A connection, but no HTTP answer (another protocol, or nothing said in time).
    Connected,
    /// A connection to an `https` upstream (its status would need a TLS client).
    Tls,
    Nothing,
}

/// A real `GET` of the upstream's path, within [`UPSTREAM_PROBE_TIMEOUT`]; only the status
/// line is read. An `https` upstream is only connected to (the status would need TLS).
async fn probe(upstream: &UpstreamUrl) -> Probe {
    let host = upstream.host().trim_start_matches('[').trim_end_matches(']').to_string();
    let connect = tokio::net::TcpStream::connect((host, upstream.port()));
    let Ok(Ok(mut stream)) = tokio::time::timeout(UPSTREAM_PROBE_TIMEOUT, connect).await else { return Probe::Nothing };
    if upstream.scheme() != "http" {
        return Probe::Tls;
    }
    let request = async {
        let path = if upstream.path().is_empty() { "/" } else { upstream.path() };
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: SimpleOTP-test\r\n\r\n", upstream.authority());
        if stream.write_all(request.as_bytes()).await.is_err() {
            return Probe::Connected;
        }
        let mut head = Vec::new();
        let mut buf = [0u8; 512];
        while !head.contains(&b'\n') && head.len() < 4096 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let status_line = String::from_utf8_lossy(&head);
        let status = status_line.strip_prefix("HTTP/").and_then(|rest| rest.split_whitespace().nth(1)).and_then(|code| code.parse().ok());
        status.map_or(Probe::Connected, Probe::Http)
    };
    // It accepted but said nothing in time: something is there all the same.
    tokio::time::timeout(UPSTREAM_PROBE_TIMEOUT, request).await.unwrap_or(Probe::Connected)
}

/// `Some(warning)` when nothing accepts a connection at the upstream right now.
async fn upstream_warning(upstream: &UpstreamUrl) -> Option<String> {
    let host = upstream.host().trim_start_matches('[').trim_end_matches(']').to_string();
    let connect = tokio::net::TcpStream::connect((host, upstream.port()));
    match tokio::time::timeout(UPSTREAM_PROBE_TIMEOUT, connect).await {
        Ok(Ok(_)) => None,
        _ => Some(format!("Nothing answers at {upstream} yet. Start the app there; the protected address works as soon as it runs.")),
    }
}
