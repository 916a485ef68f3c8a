//! The brute-force limiter as the owner sees it (lockouts, recent failures, Unlock with its
//! one-time sign-in links), and the gate in front of the secret: a current code, checked by
//! the same limiter as a login.

use std::net::{IpAddr, Ipv4Addr};

use simpleotp_engine::config::MachineNames;
use simpleotp_engine::gateway::LoginOutcome;
use simpleotp_engine::lan;
use simpleotp_engine::limiter::{LockScope, Locked};
use simpleotp_engine::qr;

use super::views::{human_duration, FailureView, LockedClientView, RecoveryCodesView, SecurityView, UnlockLinkView, UnlockView};
use super::{Core, CoreError, CoreEvent, Result};
use crate::sync::lock;

/// The address the desktop user's own attempts count against in the limiter (the current-code
/// gates).
const DESKTOP_IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

impl Core {
    /// Whether wrong codes have locked sign-ins now, for everyone or for some address (the
    /// tray then shows the locked icon and offers Unlock sign-ins).
    pub fn locked_out(&self) -> bool {
        let security = self.security_status();
        security.everyone_locked_for_secs.is_some() || !security.locked_clients.is_empty()
    }

    /// A lockout ends by itself, without an event: tell the UI when it has, so the tray's icon
    /// and Unlock item do not outlive it.
    pub(super) fn refresh_when_lockout_ends(&self, locked: &Locked) {
        let events = self.events.clone();
        let wait = locked.retry_after + std::time::Duration::from_secs(1);
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let _ = events.send(CoreEvent::Changed);
        });
    }

    pub fn security_status(&self) -> SecurityView {
        let Some(gateway) = self.gateway() else {
            return SecurityView {
                running: false,
                everyone_locked_for_secs: None,
                locked_clients: vec![],
                recent_failures: vec![],
                recovery_left: None,
                recovery_made_at: None,
                authenticators: vec![],
            };
        };
        let status = gateway.limiter_status();
        let recovery = gateway.recovery_codes_left();
        SecurityView {
            running: true,
            recovery_left: recovery.map(|(left, _)| left),
            recovery_made_at: recovery.map(|(_, made)| made),
            authenticators: super::authenticators::views(&gateway),
            everyone_locked_for_secs: status.everyone_locked_for.map(|d| d.as_secs().max(1)),
            locked_clients: status
                .locked_clients
                .iter()
                .map(|(ip, d)| LockedClientView { ip: ip.to_string(), secs: d.as_secs().max(1) })
                .collect(),
            // Newest first, as the limiter lists them.
            recent_failures: status.recent_failures.iter().map(|f| FailureView { ip: f.ip.to_string(), at: f.at_unix }).collect(),
        }
    }

    /// Lifts the per-address lockouts and issues a one-time sign-in link (see the engine's
    /// `ticket` module); the shared budget is not refilled.
    pub fn security_unlock(&self) -> Result<UnlockView> {
        let gateway = self.gateway().ok_or(CoreError::NotRunning("There is nothing to unlock."))?;
        let ticket = gateway.issue_unlock_ticket();
        let login_path = format!("{}?ticket={}", gateway.route_prefix().route("login"), ticket.expose());
        let config = self.config();
        let machine = MachineNames::this_machine();
        let interfaces = lan::facing_addresses(config.lan.interfaces.as_deref());
        let links = config
            .apps
            .iter()
            .map(|app| {
                let other_device_url =
                    lan::other_device_url(app, &machine, &interfaces).map(|url| format!("{}{login_path}", url.trim_end_matches('/')));
                Ok(UnlockLinkView {
                    app: app.name.as_str().to_string(),
                    url: format!("{}{login_path}", app.protected_url().trim_end_matches('/')),
                    other_device_qr_svg: other_device_url.as_deref().map(qr::svg).transpose()?,
                    other_device_url,
                })
            })
            .collect::<Result<_>>()?;
        self.changed();
        Ok(UnlockView {
            security: self.security_status(),
            links,
            expires_in_secs: simpleotp_engine::ticket::TICKET_LIFETIME.as_secs(),
            attempts: simpleotp_engine::ticket::TICKET_ATTEMPTS,
        })
    }

    /// Unlock sign-ins from the tray menu: the same unlock as the window's, its one-time links
    /// kept for the window to show ([`Core::take_tray_unlock`]).
    pub fn unlock_from_tray(&self) -> Result<()> {
        let unlocked = self.security_unlock()?;
        *lock(&self.tray_unlock) = Some(unlocked);
        Ok(())
    }

    /// The links of the last Unlock from the tray, once.
    pub fn take_tray_unlock(&self) -> Option<UnlockView> {
        lock(&self.tray_unlock).take()
    }

    /// Checks that `url` is an unlock link this app made, on a configured app's address, with
    /// a live ticket: the window may open those, not arbitrary URLs.
    pub fn check_unlock_link(&self, url: &str) -> Result<()> {
        let gateway = self.gateway().ok_or(CoreError::NotRunning("Unlock again once it runs."))?;
        let ticket = self
            .secret_of_our_link(url, &gateway.route_prefix().route("login"), "ticket")
            .ok_or_else(|| CoreError::Invalid("That is not a SimpleOTP sign-in link.".into()))?;
        if !gateway.unlock_ticket_is_valid(ticket) {
            return Err(CoreError::Invalid("This sign-in link has expired or was used. Press Unlock again for a new one.".into()));
        }
        Ok(())
    }

    /// The one-time secret in `url` when it is a link of ours: a configured app's address
    /// (as this computer opens it), `route`, then `?key=` and the secret. The window opens only
    /// such links, never arbitrary URLs.
    pub(super) fn secret_of_our_link<'u>(&self, url: &'u str, route: &str, key: &str) -> Option<&'u str> {
        self.config().apps.iter().find_map(|app| url.strip_prefix(&format!("{}{route}?{key}=", app.protected_url().trim_end_matches('/'))))
    }

    /// The gate in front of everything that shows or replaces the secret: a current code of the
    /// secret in use. The running gateway checks it through its brute-force limiter like a
    /// login (a wrong code is a failed attempt from this computer and counts toward a lockout)
    /// without consuming it. Someone at an unlocked desktop must not be able to add their own
    /// authenticator or swap in their own setup key (replace) without the owner's phone.
    pub(super) async fn require_current_code(&self, code: &str) -> Result<()> {
        let gateway = self.gateway().ok_or(CoreError::NotRunning("Bring apps back online first."))?;
        match gateway.verify_code(DESKTOP_IP, code) {
            Ok(()) => Ok(()),
            Err(LoginOutcome::Locked(locked)) => Err(CoreError::Locked(human_duration(locked.retry_after))),
            Err(LoginOutcome::Rejected { reason, lockout }) => {
                // verify_code does not announce lockouts (login does): announce this one.
                if let Some(locked) = lockout {
                    let _ = self.events.send(CoreEvent::LockoutStarted(lockout_notice(&locked)));
                    self.changed();
                    self.refresh_when_lockout_ends(&locked);
                }
                Err(CoreError::from(reason))
            }
            Err(LoginOutcome::Success(_) | LoginOutcome::NotSaved(_)) => unreachable!("verify_code never signs in"),
        }
    }

    /// New recovery codes in place of the old ones, behind the same current-code gate as adding
    /// an authenticator (whoever sees them can sign in ten times).
    pub async fn recovery_codes_new(&self, code: &str) -> Result<RecoveryCodesView> {
        self.require_current_code(code).await?;
        let gateway = self.gateway().ok_or(CoreError::NotRunning("Start protection first."))?;
        let codes = gateway
            .new_recovery_codes()
            .await
            .map_err(|e| CoreError::Invalid(format!("The new codes could not be saved, so the old ones still work: {e}")))?;
        self.changed();
        Ok(RecoveryCodesView { codes: codes.iter().map(|c| c.expose().to_string()).collect() })
    }

    /// "Save as a text file" for the codes the window just showed: a new owner-only file in the
    /// Downloads folder (the home folder when there is none). WebKit's webview cannot download a
    /// page's own data, so the file is written here.
    pub fn save_recovery_codes(&self, codes: &[String]) -> Result<std::path::PathBuf> {
        let dirs =
            directories::UserDirs::new().ok_or_else(|| CoreError::Invalid("This account has no home folder to save into.".into()))?;
        let folder = dirs.download_dir().unwrap_or(dirs.home_dir()).to_path_buf();
        simpleotp_engine::recovery::save_codes_file(&folder, codes, self.config().account().as_str())
            .map_err(|e| CoreError::Invalid(format!("The codes could not be saved in {}: {e}", folder.display())))
    }
}

/// The desktop notification for a lockout that just started.
pub(super) fn lockout_notice(locked: &Locked) -> String {
    let wait = human_duration(locked.retry_after);
    match locked.scope {
        LockScope::Client => format!("Several wrong codes came from one address; it must wait {wait}. Open SimpleOTP to see or unlock."),
        LockScope::Everyone => format!("Too many wrong codes overall: every sign-in waits {wait}. Open SimpleOTP to see or unlock."),
    }
}
