//! A new secret: first at setup (the wizard), later to replace the one in use.
//!
//! Either way the new secret waits in memory (`Pending`) until a code from it proves the
//! authenticator app has it; only then is it stored in the keychain. Replacing also needs a
//! current code of the old secret first (`security`'s gate), before the new one exists.

use std::sync::Arc;

use tracing::{info, warn};

use simpleotp_engine::authenticator::Authenticators;
use simpleotp_engine::totp::{unix_now, Totp, TotpSecret};

use super::views::{RecoveryCodesView, SecretView, StatusView};
use super::{Core, CoreError, Pending, Phase, Purpose, Result};
use crate::sync::lock;

impl Core {
    /// Step 2 of the wizard: a new secret, held in memory until confirmed. Asking again
    /// returns the same secret (the user may already have scanned it).
    pub async fn wizard_begin(&self) -> Result<SecretView> {
        if self.keychain(|s| s.exists()).await? {
            return Err(CoreError::AlreadySetUp);
        }
        let config = self.config();
        let mut pending = lock(&self.pending);
        if !matches!(&*pending, Some(p) if p.purpose == Purpose::Setup) {
            *pending = Some(Pending { secret: TotpSecret::generate(), purpose: Purpose::Setup });
        }
        let secret = &pending.as_ref().expect("just set").secret;
        Ok(SecretView::new(secret, &config)?)
    }

    /// Step 3: the code proves the authenticator app has the secret; only now is it stored,
    /// and protection starts.
    pub async fn wizard_confirm(self: &Arc<Self>, code: &str) -> Result<StatusView> {
        let secret = self.take_pending_if_code_matches(Purpose::Setup, code)?;
        let stored = self.keychain(move |s| s.store(&secret, false).map_err(|e| (e, secret))).await;
        if let Err((e, secret)) = stored {
            // Keep it on screen so the user can try again once the keychain is unlocked.
            *lock(&self.pending) = Some(Pending { secret, purpose: Purpose::Setup });
            return Err(e.into());
        }
        info!("secret stored; setup complete");
        *lock(&self.phase) = Phase::Idle;
        let _ = self.start_engine().await;
        // Recovery codes come with the setup, for the wizard's last screen to show once; if
        // protection did not start, Security makes them later.
        if let Some(gateway) = self.gateway() {
            match gateway.new_recovery_codes().await {
                Ok(codes) => {
                    *lock(&self.setup_recovery) = Some(RecoveryCodesView { codes: codes.iter().map(|c| c.expose().to_string()).collect() });
                }
                Err(e) => warn!("no recovery codes at setup: {e}"),
            }
        }
        Ok(self.status())
    }

    /// The recovery codes made at setup, for the wizard's last screen: once, then never again.
    pub fn wizard_recovery_codes(&self) -> Option<RecoveryCodesView> {
        lock(&self.setup_recovery).take()
    }

    /// Leaves the wizard (or the replace screen, or adding an authenticator) without storing
    /// anything.
    pub fn wizard_cancel(&self) {
        *lock(&self.pending) = None;
        *lock(&self.adding) = None;
    }

    fn take_pending_if_code_matches(&self, purpose: Purpose, code: &str) -> Result<TotpSecret> {
        let config = self.config();
        let mut pending = lock(&self.pending);
        let secret = match &*pending {
            Some(p) if p.purpose == purpose => &p.secret,
            _ => return Err(CoreError::NoPendingSecret),
        };
        Totp::new(secret, &config.issuer(), &config.account()).verify(code, unix_now(), None).map_err(CoreError::from)?;
        Ok(pending.take().expect("checked above").secret)
    }

    /// A new secret to replace the current one, only after a current code of the old one (the
    /// same gate as showing the QR code again); nothing changes until the new one is confirmed.
    pub async fn secret_replace_begin(&self, current_code: &str) -> Result<SecretView> {
        if self.needs_setup() {
            return Err(CoreError::NotRunning("Finish the setup first."));
        }
        // Before the new secret exists: a wrong code leaves nothing pending and shows nothing.
        self.require_current_code(current_code).await?;
        let secret = TotpSecret::generate();
        let view = SecretView::new(&secret, &self.config())?;
        *lock(&self.pending) = Some(Pending { secret, purpose: Purpose::Replace });
        Ok(view)
    }

    /// A code from the new secret confirms it: it replaces every authenticator in the keychain
    /// and in the running gateway (it becomes the only one, as at setup), which signs everyone
    /// out.
    pub async fn secret_replace_confirm(&self, code: &str) -> Result<usize> {
        let secret = self.take_pending_if_code_matches(Purpose::Replace, code)?;
        let set = Authenticators::single(secret.clone());
        self.keychain(move |s| s.store(&secret, true)).await?;
        let signed_out = match self.gateway() {
            Some(gateway) => {
                let count = gateway.sessions().len();
                gateway.replace_authenticators(set).await;
                count
            }
            None => 0,
        };
        info!("secret replaced; everyone signed out");
        self.changed();
        Ok(signed_out)
    }
}
