//! The Settings screen: session lifetimes, who may connect (this computer or the local
//! network), which nginx, and launch at login.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use simpleotp_engine::config::{Config, InterfaceName, ListenAddr, SessionSettings};
use simpleotp_engine::lan::{self, NetworkInterface};
use simpleotp_engine::nginx;

use super::views::{InterfaceView, SettingsSaved, SettingsView, LAN_WARNING};
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
            interfaces: config.lan.interfaces.as_ref().map(|names| names.iter().map(|n| n.as_str().to_string()).collect()),
            check_updates: config.updates.check,
        }
    }

    /// This machine's interfaces and which of them face the network under the current choice.
    pub fn network_interfaces(&self) -> Vec<InterfaceView> {
        interface_views(&lan::network_interfaces(), self.config().lan.interfaces.as_deref())
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
        // A new choice of interfaces needs no restart: applying it issues the certificate for
        // the chosen interfaces' addresses and reloads nginx.
        config.lan.interfaces = match &wanted.interfaces {
            None => None,
            Some(names) => Some(
                names
                    .iter()
                    .map(|name| name.parse::<InterfaceName>())
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(CoreError::Invalid)?,
            ),
        };
        config.updates.check = wanted.check_updates;
        let ip = listen_ip(wanted.lan);
        for app in &mut config.apps {
            app.listen = ListenAddr(SocketAddr::new(ip, app.listen.socket_addr().port()));
        }
        let was_lan = std::mem::replace(&mut *lock(&self.lan), wanted.lan);
        // nginx cannot move a port it holds from 127.0.0.1 to 0.0.0.0 (or back) by reloading,
        // and a reload keeps the old nginx binary: those two changes restart the gateway. (With
        // apps let in one by one under Apps, the switch may move only some of them.)
        // Sessions survive (they are in the state file).
        let moves =
            old.apps.iter().zip(&config.apps).any(|(before, after)| before.listen.socket_addr().ip() != after.listen.socket_addr().ip());
        let needs_restart = config.nginx.path != old.nginx.path || moves;
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
        // Only the update checks changed: nothing for nginx to reload.
        let only_updates = Config { updates: old.updates, ..config.clone() } == old;
        let result = if *config == old {
            self.changed();
            Ok(())
        } else if only_updates {
            self.save_config(config).map(|()| self.changed())
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
        Ok(SettingsSaved {
            settings: self.settings_get(),
            network_interfaces: self.network_interfaces(),
            nginx: self.nginx_found(),
            warnings,
        })
    }

    /// The wizard's last screen (pre-checked) and Status's "Start at login".
    pub fn set_launch_at_login(&self, on: bool) -> Result<()> {
        if self.launch_at_login.is_enabled().map_err(CoreError::LaunchAtLogin)? != on {
            self.launch_at_login.set_enabled(on).map_err(CoreError::LaunchAtLogin)?;
            self.changed();
        }
        Ok(())
    }

    /// The tray's check item.
    pub fn toggle_launch_at_login(&self) -> Result<bool> {
        let on = !self.launch_at_login.is_enabled().map_err(CoreError::LaunchAtLogin)?;
        self.launch_at_login.set_enabled(on).map_err(CoreError::LaunchAtLogin)?;
        self.changed();
        Ok(on)
    }
}

/// The Settings rows for `interfaces`: each with its addresses, whether it has a default route,
/// and whether it faces the network under `choice` (the same rule the gateway applies).
fn interface_views(interfaces: &[NetworkInterface], choice: Option<&[InterfaceName]>) -> Vec<InterfaceView> {
    let facing = lan::facing(interfaces, choice);
    interfaces
        .iter()
        .map(|i| InterfaceView {
            name: i.name.clone(),
            addresses: i.addresses.iter().map(ToString::to_string).collect(),
            default_route: i.default_route,
            facing: facing.iter().any(|f| f.name == i.name),
        })
        .collect()
}

#[cfg(test)]
mod interface_tests {
    use super::*;

    /// The rows say which interfaces face the network: by default those with a default route,
    /// otherwise exactly the chosen ones.
    #[test]
    fn interface_rows_follow_the_choice_and_mark_the_default() {
        let interfaces = [
            NetworkInterface { name: "docker0".into(), addresses: vec!["172.17.0.1".parse().unwrap()], default_route: false },
            NetworkInterface { name: "wlan0".into(), addresses: vec!["192.168.1.20".parse().unwrap()], default_route: true },
        ];
        let rows = interface_views(&interfaces, None);
        assert_eq!(
            rows.iter().map(|r| (r.name.as_str(), r.default_route, r.facing)).collect::<Vec<_>>(),
            [("docker0", false, false), ("wlan0", true, true)]
        );
        assert_eq!(rows[1].addresses, ["192.168.1.20"]);
        let chosen: Vec<InterfaceName> = vec!["docker0".parse().unwrap()];
        let rows = interface_views(&interfaces, Some(&chosen));
        assert_eq!(rows.iter().map(|r| r.facing).collect::<Vec<_>>(), [true, false]);
    }
}
