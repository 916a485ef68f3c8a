//! Passkeys as the owner manages them in Security: the list (where each works, when it was
//! added and last used), rename, remove, and "Add a passkey": a one-time link (the engine's
//! `passkey` module), made behind a current code like every other new way in, opened in the
//! browser at this computer's name, with a QR code of the same link at the network name for a
//! phone.

use serde::Serialize;
use simpleotp_engine::config::MachineNames;
use simpleotp_engine::lan;
use simpleotp_engine::passkey::{PasskeyError, PasskeyInfo, PasskeyName, LINK_LIFETIME};
use simpleotp_engine::qr;

use super::{Core, CoreError, Result};

/// A passkey as Security lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PasskeyView {
    pub id: String,
    pub name: String,
    /// Where it signs in, in words: "this computer" (made at localhost) or "other devices at
    /// box.local".
    pub works_at: String,
    pub created_at: u64,
    pub last_used_at: Option<u64>,
}

impl From<PasskeyInfo> for PasskeyView {
    fn from(info: PasskeyInfo) -> PasskeyView {
        let works_at = if info.rp_id == "localhost" { "this computer".to_owned() } else { format!("other devices at {}", info.rp_id) };
        PasskeyView { id: info.id, name: info.name.to_string(), works_at, created_at: info.created_at, last_used_at: info.last_used_at }
    }
}

/// "Add a passkey": the one-time link for this computer's browser, and for a phone.
#[derive(Clone, Serialize)]
pub struct PasskeyLinkView {
    pub url: String,
    pub other_device_url: Option<String>,
    pub other_device_qr_svg: Option<String>,
    pub expires_in_secs: u64,
}

impl std::fmt::Debug for PasskeyLinkView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasskeyLinkView").field("expires_in_secs", &self.expires_in_secs).finish_non_exhaustive()
    }
}

fn passkey_error(e: PasskeyError) -> CoreError {
    let text = e.to_string();
    let mut chars = text.chars();
    CoreError::Invalid(chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default())
}

impl Core {
    pub fn passkeys(&self) -> Vec<PasskeyView> {
        self.gateway().map(|g| g.passkeys().into_iter().map(PasskeyView::from).collect()).unwrap_or_default()
    }

    /// A one-time link to add a passkey, after a current code (a passkey is a new way in, like
    /// a second authenticator). The link for this computer is at `localhost` (passkeys need a
    /// name); a phone gets the network name's, as a QR code.
    pub async fn passkey_link(&self, code: &str) -> Result<PasskeyLinkView> {
        self.require_current_code(code).await?;
        let gateway = self.gateway().ok_or(CoreError::NotRunning("Bring apps back online first."))?;
        let config = self.config();
        let link = gateway.issue_passkey_link();
        let path = format!("{}?link={}", gateway.route_prefix().route(simpleotp_engine::protocol::routes::PASSKEY_ADD), link.expose());
        let here = config
            .apps
            .iter()
            .map(|app| app.protected_url())
            .find(|url| url.starts_with("http://localhost:"))
            .ok_or_else(|| CoreError::Invalid("Passkeys need an app on this computer (at localhost); add one under Apps.".into()))?;
        let machine = MachineNames::this_machine();
        let interfaces = lan::facing_addresses(config.lan.interfaces.as_deref());
        let other_device_url = config
            .apps
            .iter()
            .find_map(|app| lan::other_device_url(app, &machine, &interfaces))
            .filter(|url| !url.trim_start_matches("https://").starts_with(|c: char| c.is_ascii_digit() || c == '['))
            .map(|url| format!("{}{path}", url.trim_end_matches('/')));
        Ok(PasskeyLinkView {
            url: format!("{}{path}", here.trim_end_matches('/')),
            other_device_qr_svg: other_device_url.as_deref().map(qr::svg).transpose()?,
            other_device_url,
            expires_in_secs: LINK_LIFETIME.as_secs(),
        })
    }

    /// The window may open only a live link of ours (not arbitrary URLs).
    pub fn check_passkey_link(&self, url: &str) -> Result<()> {
        let gateway = self.gateway().ok_or(CoreError::NotRunning("Add the passkey again once it runs."))?;
        let link = self
            .secret_of_our_link(url, &gateway.route_prefix().route(simpleotp_engine::protocol::routes::PASSKEY_ADD), "link")
            .ok_or_else(|| CoreError::Invalid("That is not a SimpleOTP link to add a passkey.".into()))?;
        if !gateway.passkey_link_is_valid(link) {
            return Err(passkey_error(PasskeyError::LinkInvalid));
        }
        Ok(())
    }

    pub async fn passkey_rename(&self, id: &str, name: &str) -> Result<Vec<PasskeyView>> {
        let gateway = self.gateway().ok_or(CoreError::NotRunning("Bring apps back online first."))?;
        let name = PasskeyName::parse(name).map_err(passkey_error)?;
        gateway.rename_passkey(id, name).await.map_err(passkey_error)?;
        Ok(self.passkeys())
    }

    /// Removes a passkey: it stops signing anyone in at once.
    pub async fn passkey_remove(&self, id: &str) -> Result<Vec<PasskeyView>> {
        let gateway = self.gateway().ok_or(CoreError::NotRunning("Bring apps back online first."))?;
        gateway.remove_passkey(id).await.map_err(passkey_error)?;
        Ok(self.passkeys())
    }
}
