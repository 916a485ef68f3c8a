//! The protected apps: added, edited and removed from the window, each change applied to the
//! running nginx before it is saved (through `config`).

use std::net::SocketAddr;
use std::time::Duration;

use tracing::info;

use simpleotp_engine::config::{AppConfig, AppName, ListenAddr, UpstreamUrl};

use super::views::{AppInput, AppSaved, AppView, StatusView};
use super::{listen_ip, Core, CoreError, Result};
use crate::sync::lock;

/// How long "does the upstream answer?" waits before warning.
const UPSTREAM_PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

impl Core {
    pub async fn app_add(&self, input: AppInput) -> Result<AppSaved> {
        let mut edit = self.edit_config().await;
        let app = self.parse_app(&input)?;
        edit.config.apps.push(app.clone());
        self.apply(&edit).await?;
        drop(edit);
        info!(app = %app.name, "app added");
        Ok(AppSaved { warning: upstream_warning(&app.upstream).await, app: AppView::from(&app) })
    }

    /// Changes the app named `original` (its name may change too).
    pub async fn app_edit(&self, original: &str, input: AppInput) -> Result<AppSaved> {
        let mut edit = self.edit_config().await;
        let app = self.parse_app(&input)?;
        let slot =
            edit.config.apps.iter_mut().find(|a| a.name.as_str() == original).ok_or_else(|| CoreError::NoSuchApp(original.into()))?;
        // The window edits name, upstream and port; settings only the config file has (extra
        // host names, TLS verification) stay as they were.
        let app = AppConfig { hosts: std::mem::take(&mut slot.hosts), tls_verify: slot.tls_verify, ..app };
        *slot = app.clone();
        self.apply(&edit).await?;
        drop(edit);
        info!(app = %app.name, "app changed");
        Ok(AppSaved { warning: upstream_warning(&app.upstream).await, app: AppView::from(&app) })
    }

    pub async fn app_remove(&self, name: &str) -> Result<StatusView> {
        let mut edit = self.edit_config().await;
        let before = edit.config.apps.len();
        edit.config.apps.retain(|a| a.name.as_str() != name);
        if edit.config.apps.len() == before {
            return Err(CoreError::NoSuchApp(name.into()));
        }
        self.apply(&edit).await?;
        drop(edit);
        info!(app = name, "app removed");
        Ok(self.status())
    }

    /// The protected URL of an app, to open in the browser.
    pub fn app_url(&self, name: &str) -> Result<String> {
        let config = self.config();
        config.apps.iter().find(|a| a.name.as_str() == name).map(|a| a.protected_url()).ok_or_else(|| CoreError::NoSuchApp(name.into()))
    }

    /// The app the window describes, listening where the other apps do (see `listen_ip`).
    fn parse_app(&self, input: &AppInput) -> Result<AppConfig> {
        let name: AppName = input.name.parse().map_err(CoreError::Invalid)?;
        let upstream_text = input.upstream.trim();
        let upstream_text = if upstream_text.contains("://") { upstream_text.to_string() } else { format!("http://{upstream_text}") };
        let upstream: UpstreamUrl = upstream_text.parse().map_err(CoreError::Invalid)?;
        if input.port == 0 {
            return Err(CoreError::Invalid("Choose a port between 1 and 65535 for the protected app.".into()));
        }
        let ip = listen_ip(*lock(&self.lan));
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
