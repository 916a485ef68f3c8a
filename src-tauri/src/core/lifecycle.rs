//! The engine's life in the tray app: start up (or the wizard), pause and resume, retry after
//! an error, quit; and the status the window and the tray show.
//!
//! `Phase` is what the core did last; [`Protection`] is what the user is told, which also
//! depends on what nginx is doing now (a running gateway whose nginx was given up on is an
//! error). Starting and stopping hold the `engine` lock, so two of them never interleave.

use std::sync::Arc;

use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use simpleotp_engine::app::{Application, GatewayHandle, Settings};
use simpleotp_engine::gateway::GatewayEvent;
use simpleotp_engine::nginx::NginxStatus;

use super::security::lockout_notice;
use super::views::{plain_words, AppView, Protection, StatusView};
use super::{listens_on_lan, Core, CoreError, CoreEvent, Engine, Phase, Result};
use crate::sync::lock;
use crate::tray_menu::TrayState;

impl Core {
    pub(super) fn set_phase(&self, phase: Phase) {
        if let Phase::Failed(message) = &phase {
            self.remember_error(message);
        }
        *lock(&self.phase) = phase;
        self.changed();
    }

    /// First thing after launch: the wizard if there is no secret, else protection on.
    pub async fn start_up(self: &Arc<Self>) {
        if let Some(message) = lock(&self.config_error).clone() {
            self.set_phase(Phase::Failed(format!("{}", CoreError::ConfigBroken(message))));
            return;
        }
        match self.keychain(|s| s.exists()).await {
            Ok(false) => self.set_phase(Phase::NeedsSetup),
            Ok(true) => {
                if self.start_engine().await.is_ok() {
                    self.check_firewall().await;
                }
            }
            Err(e) => self.set_phase(Phase::Failed(CoreError::from(e).user_message())),
        }
    }

    /// Whether the wizard has yet to run.
    pub fn needs_setup(&self) -> bool {
        *lock(&self.phase) == Phase::NeedsSetup
    }

    pub(super) async fn start_engine(self: &Arc<Self>) -> Result<()> {
        let mut slot = self.engine.lock().await;
        if slot.is_some() {
            return Ok(());
        }
        self.set_phase(Phase::Starting);
        let mut settings = Settings::new(self.config(), self.paths.data_dir.clone(), self.secret_store());
        settings.program = "the SimpleOTP app";
        let app = match Application::build(settings).await {
            Ok(app) => app,
            Err(e) => {
                let e = CoreError::from(e);
                warn!("protection could not start: {}", e.user_message());
                self.set_phase(Phase::Failed(e.user_message()));
                return Err(e);
            }
        };
        let handle = app.handle();
        let warnings = app.warnings().to_vec();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(app.run_until_stopped(cancel.clone()));
        let watchers = self.watch(&handle);
        *lock(&self.handle) = Some(handle);
        *slot = Some(Engine { cancel, task, watchers, warnings });
        self.set_phase(Phase::Running);
        info!("protection on");
        Ok(())
    }

    /// Forwards the gateway's events and nginx's status changes to the UI.
    fn watch(self: &Arc<Self>, handle: &GatewayHandle) -> Vec<JoinHandle<()>> {
        let mut tasks = Vec::new();
        let mut events = handle.gateway().subscribe();
        let core = Arc::downgrade(self);
        tasks.push(tokio::spawn(async move {
            loop {
                let event = match events.recv().await {
                    Ok(event) => event,
                    Err(broadcast::error::RecvError::Lagged(_)) => GatewayEvent::SessionsChanged,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let Some(core) = core.upgrade() else { return };
                match event {
                    GatewayEvent::LockoutStarted(locked) => {
                        let _ = core.events.send(CoreEvent::LockoutStarted(lockout_notice(&locked)));
                        core.changed();
                        core.refresh_when_lockout_ends(&locked);
                    }
                    GatewayEvent::RecoveryCodeUsed { remaining } => {
                        let _ = core.events.send(CoreEvent::RecoveryCodeUsed(recovery_notice(remaining)));
                        core.changed();
                    }
                    GatewayEvent::SessionsChanged
                    | GatewayEvent::PasskeysChanged
                    | GatewayEvent::PersistFailed(_)
                    | GatewayEvent::AuthenticatorsChanged => core.changed(),
                }
            }
        }));
        if let Some(nginx) = handle.nginx() {
            let mut status = nginx.status();
            let core = Arc::downgrade(self);
            tasks.push(tokio::spawn(async move {
                while status.changed().await.is_ok() {
                    let Some(core) = core.upgrade() else { return };
                    core.changed();
                }
            }));
        }
        tasks
    }

    pub(super) async fn stop_engine(&self) {
        let mut slot = self.engine.lock().await;
        if let Some(engine) = slot.take() {
            *lock(&self.handle) = None;
            engine.cancel.cancel();
            if let Err(e) = engine.task.await {
                warn!("the gateway task ended badly: {e}");
            }
            for watcher in engine.watchers {
                watcher.abort();
            }
            info!("protection off");
        }
    }

    /// Quit: stops nginx and the auth server and writes the state file.
    pub async fn shutdown(&self) {
        self.stop_engine().await;
    }

    /// Take apps offline: protected addresses stop answering (nginx and the auth server stop); Resume
    /// (bring them back online) starts them again.
    pub async fn set_paused(self: &Arc<Self>, paused: bool) -> Result<StatusView> {
        if self.needs_setup() {
            return Err(CoreError::NotRunning("Finish the setup first."));
        }
        if paused {
            self.stop_engine().await;
            self.set_phase(Phase::Paused);
        } else {
            self.start_engine().await?;
        }
        Ok(self.status())
    }

    /// Retry after an error: reads the config file again and restarts.
    pub async fn retry(self: &Arc<Self>) -> Result<StatusView> {
        {
            // The file replaces the config as a whole: no change may be half-way through.
            let _writer = self.config_writer.lock().await;
            match simpleotp_engine::config_edit::load(&self.paths.config) {
                Ok((config, file)) => {
                    *lock(&self.config_file) = file;
                    *lock(&self.lan) = listens_on_lan(&config);
                    *lock(&self.config) = config;
                    *lock(&self.config_error) = None;
                }
                Err(e) => {
                    let message = e.to_string();
                    *lock(&self.config_error) = Some(message.clone());
                    self.set_phase(Phase::Failed(CoreError::ConfigBroken(message).to_string()));
                    return Ok(self.status());
                }
            }
        }
        self.stop_engine().await;
        *lock(&self.phase) = Phase::Idle;
        self.start_up().await;
        Ok(self.status())
    }

    pub fn status(&self) -> StatusView {
        let phase = lock(&self.phase).clone();
        let handle = lock(&self.handle).clone();
        let nginx_status = handle.as_ref().and_then(|h| h.nginx()).map(|n| n.status().borrow().clone());
        let (state, message) = match (&phase, nginx_status) {
            (Phase::Idle | Phase::Starting, _) => (Protection::Starting, None),
            (Phase::NeedsSetup, _) => (Protection::NeedsSetup, None),
            (Phase::Paused, _) => (Protection::Paused, None),
            (Phase::Failed(message), _) => (Protection::Error, Some(message.clone())),
            (Phase::Running, Some(NginxStatus::Failed { message })) => {
                (Protection::Error, Some(format!("nginx keeps failing and was given up on:\n{message}")))
            }
            (Phase::Running, Some(NginxStatus::Restarting { attempt, last_error })) => {
                (Protection::Starting, Some(format!("nginx stopped unexpectedly; restarting (attempt {attempt}):\n{last_error}")))
            }
            (Phase::Running, _) => (Protection::Running, None),
        };
        let message = message.map(|m| plain_words(&m));
        let config = self.config();
        let mut warnings = match &phase {
            Phase::Running => self.engine.try_lock().ok().and_then(|e| e.as_ref().map(|e| e.warnings.clone())).unwrap_or_default(),
            _ => Vec::new(),
        };
        // Sessions and the replay counter could not be written (e.g. a full disk).
        if let Some(error) = handle.as_ref().and_then(|h| h.gateway().persist_error()) {
            warnings.push(error);
        }
        warnings.extend(self.firewall_warning());
        let warnings = warnings.iter().map(|w| plain_words(w)).collect();
        StatusView {
            state,
            message,
            apps: config
                .apps
                .iter()
                .map(|app| AppView { reachable_without_code: self.reachable_without_code(app), ..AppView::from(app) })
                .collect(),
            sessions: handle.map(|h| h.gateway().sessions().len()).unwrap_or(0),
            warnings,
            lan: *lock(&self.lan),
            tray_available: self.tray_available.load(std::sync::atomic::Ordering::Relaxed),
            update_available: self.update_available(),
            launch_at_login: self.launch_at_login.is_enabled().unwrap_or(false),
        }
    }

    /// What the tray menu shows.
    pub fn tray_state(&self) -> TrayState {
        let status = self.status();
        TrayState {
            protection: status.state,
            reachable_without_code: status.apps.iter().filter(|a| a.reachable_without_code.is_some()).map(|a| a.name.clone()).collect(),
            apps: status.apps.into_iter().map(|a| (a.name, a.url)).collect(),
            active_sessions: status.sessions,
            launch_at_login: self.launch_at_login.is_enabled().unwrap_or(false),
            locked_out: self.locked_out(),
            firewall_blocked: self.firewall_warning().is_some(),
            update_available: self.update_available(),
        }
    }
}

/// The desktop notification when a recovery code was used: if it was not the owner, they must
/// act now; if it was, how many are left.
pub(super) fn recovery_notice(remaining: usize) -> String {
    let left = match remaining {
        0 => "None are left: make new ones under Security.".to_string(),
        1 => "1 is left.".to_string(),
        n => format!("{n} are left."),
    };
    format!("Someone signed in with one of your recovery codes. {left} If it was not you, make new codes under Security now.")
}
