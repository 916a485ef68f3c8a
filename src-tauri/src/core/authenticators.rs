//! Security's authenticator apps: the list, "Add another authenticator" and Remove.
//!
//! Adding is the wizard's confirm-a-code flow through the engine's one rule
//! (`PendingAuthenticator::confirm`, inside `Gateway::add_authenticator`): a current code from
//! an app already in use first (the same gate as new recovery codes, counted by the brute-force
//! limiter), then the new QR code and setup key, then a code from the new app; only then is it
//! stored and do its codes sign in. Removing needs the gateway too: it writes the keychain and
//! stops accepting the codes at once.

use std::time::Duration;

use tracing::info;

use simpleotp_engine::authenticator::{AuthenticatorName, PendingAuthenticator};
use simpleotp_engine::gateway::{AddAuthenticatorError, Gateway, RemoveAuthenticatorError};
use simpleotp_engine::totp::unix_now;

use super::views::{short_duration, AuthenticatorView, SecretView};
use super::{Core, CoreError, Result};
use crate::sync::lock;

/// The running gateway's authenticators as Security lists them.
pub(super) fn views(gateway: &Gateway) -> Vec<AuthenticatorView> {
    let now = unix_now();
    let ago = |at: u64| {
        let secs = now.saturating_sub(at);
        if secs < 60 {
            "just now".to_string()
        } else {
            format!("{} ago", short_duration(Duration::from_secs(secs)))
        }
    };
    gateway
        .authenticators()
        .into_iter()
        .map(|a| AuthenticatorView {
            added: a.added_at.map_or_else(|| "added at setup".to_string(), |at| format!("added {}", ago(at))),
            last_used: a.last_used_at.map(|at| format!("last code {}", ago(at))),
            id: a.id,
            name: a.name,
        })
        .collect()
}

impl Core {
    /// "Add another authenticator", step 1: a name and a current code from an app in use; then
    /// a new secret for the new app, held in memory until it is confirmed.
    pub async fn authenticator_add_begin(&self, name: &str, current_code: &str) -> Result<SecretView> {
        let name = AuthenticatorName::parse(name).map_err(|e| CoreError::Invalid(e.to_string()))?;
        let gateway = self.gateway().ok_or(CoreError::NotRunning("Start protection first."))?;
        if gateway.authenticators().iter().any(|a| a.name.to_lowercase() == name.as_str().to_lowercase()) {
            return Err(CoreError::Invalid(format!("An authenticator named {name} exists already. Choose another name.")));
        }
        if gateway.authenticators().len() >= simpleotp_engine::authenticator::MAX_AUTHENTICATORS {
            return Err(CoreError::Invalid(format!(
                "There are {} authenticators already, the most SimpleOTP keeps. Remove one first.",
                simpleotp_engine::authenticator::MAX_AUTHENTICATORS
            )));
        }
        // Before the new secret exists: a wrong code leaves nothing pending and shows nothing.
        self.require_current_code(current_code).await?;
        let pending = PendingAuthenticator::new(name);
        let view = SecretView::new(pending.secret(), &self.config())?;
        *lock(&self.adding) = Some(pending);
        Ok(view)
    }

    /// Step 2: the code the new app shows. Added (stored in the keychain, its codes sign in) only
    /// when it is right; a wrong one keeps the new app's QR code on screen to try again.
    pub async fn authenticator_add_confirm(&self, code: &str) -> Result<AuthenticatorView> {
        let gateway = self.gateway().ok_or(CoreError::NotRunning("Start protection first."))?;
        let pending = lock(&self.adding).take().ok_or(CoreError::NoPendingSecret)?;
        match gateway.add_authenticator(pending, code).await {
            Ok(added) => {
                info!(id = %added.id, "authenticator added from the tray");
                self.changed();
                Ok(views(&gateway).into_iter().find(|a| a.id == added.id).expect("just added"))
            }
            Err(AddAuthenticatorError::Code(reason, pending)) => {
                *lock(&self.adding) = Some(pending);
                Err(reason.into())
            }
            Err(AddAuthenticatorError::Refused(e)) => Err(CoreError::Invalid(capitalized(&e.to_string()))),
            Err(AddAuthenticatorError::NotSaved(e)) => Err(CoreError::Invalid(capitalized(&e))),
        }
    }

    /// Removes the authenticator `id`: its codes stop working at once. Never the last one.
    pub async fn authenticator_remove(&self, id: &str) -> Result<()> {
        let gateway = self.gateway().ok_or(CoreError::NotRunning("Start protection first."))?;
        match gateway.remove_authenticator(id).await {
            Ok(_) => {
                self.changed();
                Ok(())
            }
            Err(e @ (RemoveAuthenticatorError::Refused(_) | RemoveAuthenticatorError::NotSaved(_))) => {
                Err(CoreError::Invalid(capitalized(&e.to_string())))
            }
        }
    }
}

/// The engine's messages start in lower case (they follow "error: " in the CLI); the window's
/// are sentences.
fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
