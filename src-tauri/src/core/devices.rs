//! "Other devices" (Add a phone): what a phone or another laptop needs to reach the protected apps
//! over the network, and to trust them.
//!
//! * each network-facing app's address, preferring `https://<hostname>.local:PORT/` (mDNS, see
//!   the engine's `lan` module), with a QR code a phone's camera opens, and the same app at each
//!   of the machine's addresses for devices without mDNS;
//! * the "Trust SimpleOTP on a phone" card: a QR code of the CA page over **plain HTTP** (a
//!   phone cannot check an HTTPS certificate before it trusts the CA that signed it; nginx serves
//!   that one page unencrypted on the app's TLS port), and the CA's SHA-256 fingerprint, which the
//!   page shows too, so the person can see that the two match;
//! * "Trust on this computer" and "Remove" (see `trust`).
//!
//! The CA is the engine's: its certificate is read from the same [`CaStore`] the engine uses
//! ([`CaStore::beside`] the secret), without its key (no keychain prompt), and never made here;
//! the engine makes it when protection first runs with LAN access on.

use std::path::Path;

use simpleotp_engine::ca::CaStore;
use simpleotp_engine::config::{AppConfig, Config, MachineNames};
use simpleotp_engine::lan::{app_urls, facing_addresses};
use simpleotp_engine::protocol::routes;
use simpleotp_engine::qr;

use super::trust::{self, CaFile, TrustError};
use super::views::{CaView, DeviceAppView, DevicesView};
use super::{Core, CoreError, Result};
use crate::sync::lock;

impl Core {
    /// Where the engine keeps its CA (the same rule as the engine: beside the secret).
    fn ca_store(&self) -> CaStore {
        CaStore::beside(&self.paths.secret, &self.paths.data_dir)
    }

    /// The "Other devices" screen.
    pub async fn devices(&self) -> Result<DevicesView> {
        let config = self.config();
        let lan = *lock(&self.lan);
        let store = self.ca_store();
        let home = self.paths.home.clone();
        // Interfaces, the certificate file and the trust stores (certutil) are blocking reads.
        let mut view = tokio::task::spawn_blocking(move || devices_view(&config, lan, &store, home.as_deref()))
            .await
            .expect("building the devices view does not panic")?;
        view.firewall_blocked = self.firewall_warning();
        Ok(view)
    }

    /// "Trust on this computer": the OS asks for confirmation (this waits for the person).
    pub async fn ca_trust(&self) -> Result<DevicesView> {
        self.change_trust(trust::add).await
    }

    /// "Remove": undoes [`Core::ca_trust`].
    pub async fn ca_untrust(&self) -> Result<DevicesView> {
        self.change_trust(trust::remove).await
    }

    async fn change_trust(&self, change: fn(CaFile<'_>, Option<&Path>) -> Result<(), TrustError>) -> Result<DevicesView> {
        let store = self.ca_store();
        let home = self.paths.home.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let certificate = store.stored_certificate()?.ok_or(CoreError::NoCa)?;
            // Every CA this data directory had before: taken out in the same step. A damaged
            // list is logged and skipped (the current CA's trust must still change).
            let previous = store.previous_certificates().unwrap_or_else(|e| {
                tracing::warn!("{e}");
                Vec::new()
            });
            change(CaFile { path: store.certificate_path(), certificate: &certificate, previous: &previous }, home.as_deref())?;
            Ok(())
        })
        .await
        .expect("changing the trust stores does not panic")?;
        self.devices().await
    }
}

fn devices_view(config: &Config, lan: bool, store: &CaStore, home: Option<&Path>) -> Result<DevicesView> {
    let machine = MachineNames::this_machine();
    // The same addresses as the gateway's certificate: those of the interfaces facing the network.
    let interfaces = facing_addresses(config.lan.interfaces.as_deref());
    let mut apps = Vec::new();
    for app in config.apps.iter().filter(|app| lan && app.listen.is_network_facing()) {
        apps.push(device_app(app, &machine, &interfaces)?);
    }
    let (ca, ca_problem) = match store.stored_certificate() {
        Ok(Some(certificate)) => {
            let page_url = apps.first().map(|app| ca_page_url(&app.url, config));
            let previous = store.previous_certificates().unwrap_or_default();
            (
                Some(ca_view(CaFile { path: store.certificate_path(), certificate: &certificate, previous: &previous }, page_url, home)?),
                None,
            )
        }
        Ok(None) => (None, None),
        Err(e) => (None, Some(e.to_string())),
    };
    Ok(DevicesView { lan, apps, ca, ca_problem, firewall_blocked: None })
}

fn device_app(app: &AppConfig, machine: &MachineNames, interfaces: &[std::net::IpAddr]) -> Result<DeviceAppView> {
    // The name first (app_urls puts `<hostname>.local` before the addresses), then each address;
    // not this computer's own plain-HTTP address, which other devices cannot use.
    let mut urls = app_urls(app, machine, interfaces).into_iter().filter(|url| url.starts_with("https://"));
    let url = urls.next().unwrap_or_else(|| app.protected_url());
    Ok(DeviceAppView { name: app.name.to_string(), qr_svg: qr::svg(&url)?, url, other_urls: urls.collect() })
}

/// The CA page on an app's port over plain HTTP: `https://box.local:8081/` →
/// `http://box.local:8081/_simpleotp/ca`.
fn ca_page_url(app_url: &str, config: &Config) -> String {
    let authority = app_url.strip_prefix("https://").or_else(|| app_url.strip_prefix("http://")).unwrap_or(app_url);
    format!("http://{}{}", authority.trim_end_matches('/'), config.route_prefix.route(routes::CA_PAGE))
}

fn ca_view(ca: CaFile<'_>, page_url: Option<String>, home: Option<&Path>) -> Result<CaView> {
    let page_qr_svg = page_url.as_deref().map(qr::svg).transpose()?;
    Ok(CaView {
        fingerprint: ca.certificate.fingerprint().to_string(),
        sha1_thumbprint: ca.certificate.sha1_thumbprint(),
        common_name: ca.certificate.common_name().to_string(),
        page_url,
        page_qr_svg,
        trust: trust::state(ca, home),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_page_is_plain_http_on_the_apps_port() {
        let config = Config::default();
        assert_eq!(ca_page_url("https://box.local:8081/", &config), "http://box.local:8081/_simpleotp/ca");
        assert_eq!(ca_page_url("https://[fd00::5]:8443/", &config), "http://[fd00::5]:8443/_simpleotp/ca");
    }
}
