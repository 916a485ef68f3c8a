//! The Settings screen: session lifetimes, who may connect (this computer or the local
//! network), which nginx, and launch at login.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use simpleotp_engine::config::{ListenAddr, SessionSettings};
use simpleotp_engine::nginx;

use super::views::{SettingsSaved, SettingsView, LAN_WARNING};
use super::{listen_ip, Core, CoreError, Result};
use crate::sync::lock;

impl Core {
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
        let mut edit = self.edit_config().await;
        let old = edit.config.clone();
        let config = &mut edit.config;
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
        let ip = listen_ip(wanted.lan);
        for app in &mut config.apps {
            app.listen = ListenAddr(SocketAddr::new(ip, app.listen.socket_addr().port()));
        }
        let was_lan = std::mem::replace(&mut *lock(&self.lan), wanted.lan);
        // nginx cannot move a port it holds from 127.0.0.1 to 0.0.0.0 (or back) by reloading,
        // and a reload keeps the old nginx binary: those two changes restart the gateway.
        // Sessions survive (they are in the state file).
        let needs_restart = config.nginx.path != old.nginx.path || wanted.lan != was_lan;
        if wanted.lan && !was_lan {
            warnings.push(LAN_WARNING.to_string());
        }
        // Windows: the firewall is asked first, for the nginx that is about to face the network
        // (its rule names the program, so another nginx needs its own). Once nginx listens beyond
        // this computer without a rule, Windows Security prompts by itself, and Cancel there
        // blocks nginx.
        if wanted.lan && (!was_lan || config.nginx.path != old.nginx.path) {
            warnings.extend(self.open_firewall(config.nginx.path.as_deref()).await);
        }
        let result = if *config == old {
            self.changed();
            Ok(())
        } else if needs_restart {
            self.save_and_restart(&edit).await
        } else {
            self.apply(&edit).await
        };
        if let Err(e) = result {
            *lock(&self.lan) = was_lan;
            return Err(e);
        }
        drop(edit);
        if !wanted.lan {
            self.forget_firewall();
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
