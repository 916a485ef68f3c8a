//! The one write path of the config file.
//!
//! A change (an app added, edited or removed; the settings) is a read-modify-write of the whole
//! config: copy it, change the copy, apply it to the running gateway (an nginx reload that can
//! take a moment), save it. Two changes that copied the same config would each save their own
//! copy and the first one would be lost, so a change holds the writer lock from the copy to
//! the save: [`ConfigEdit`] is that lock plus the copy, and `apply` and `save_and_restart`
//! take one, so no change can be saved without holding it. The caller keeps it until it has
//! also dealt with the outcome (settings put the LAN flag back on a failure).

use std::sync::Arc;

use tokio::sync::MutexGuard;

use simpleotp_engine::app::StartError;
use simpleotp_engine::config::{Config, ConfigError};
use simpleotp_engine::config_edit;
use simpleotp_engine::nginx;

use super::{Core, CoreError, Result};
use crate::sync::lock;

/// A change of the config in progress: the config to change, and the writer lock held until
/// it is applied and saved (or dropped).
pub(super) struct ConfigEdit<'a> {
    pub(super) config: Config,
    _writer: MutexGuard<'a, ()>,
}

impl Core {
    /// Starts a change of the config: waits until no other change is under way, then copies
    /// the config that runs.
    pub(super) async fn edit_config(&self) -> ConfigEdit<'_> {
        let writer = self.config_writer.lock().await;
        ConfigEdit { config: self.config(), _writer: writer }
    }

    /// Applies a changed config to the running gateway (an nginx reload that nginx checks
    /// first), and only then saves it, so the file always describes what runs.
    pub(super) async fn apply(&self, edit: &ConfigEdit<'_>) -> Result<()> {
        let config = &edit.config;
        if let Some(message) = lock(&self.config_error).clone() {
            return Err(CoreError::ConfigBroken(message));
        }
        config.validate().map_err(CoreError::Invalid)?;
        // A file changed by hand is found before nginx is reloaded with a change that would
        // then not be saved (the save checks again).
        self.refuse_if_changed_on_disk()?;
        let handle = lock(&self.handle).clone();
        match handle {
            Some(handle) => handle.apply_config(config).await?,
            // Not running: at least catch a port another program holds now.
            None => nginx::check_ports(&config.apps).map_err(StartError::from)?,
        }
        if let Err(refused) = self.save_config(config) {
            // The gateway runs the change that was not saved: back to what the file says.
            let handle = lock(&self.handle).clone();
            if let Some(handle) = handle {
                let _ = handle.apply_config(&self.config()).await;
            }
            return Err(refused);
        }
        self.changed();
        Ok(())
    }

    /// For changes a reload cannot make: save, then restart the gateway if it runs. A failed
    /// start shows in the status (with nginx's message and Retry).
    pub(super) async fn save_and_restart(self: &Arc<Self>, edit: &ConfigEdit<'_>) -> Result<()> {
        let config = &edit.config;
        if let Some(message) = lock(&self.config_error).clone() {
            return Err(CoreError::ConfigBroken(message));
        }
        config.validate().map_err(CoreError::Invalid)?;
        self.save_config(config)?;
        self.changed();
        if lock(&self.handle).is_some() {
            self.stop_engine().await;
            self.start_engine().await?;
        }
        Ok(())
    }

    /// Saves into the user's file in place (comments and hand edits kept). When the file was
    /// changed outside SimpleOTP since it was loaded, nothing is saved: the file is loaded again
    /// (or, if it is no longer valid, reported like a broken config at start) and the refusal is
    /// returned for the window to show.
    pub(super) fn save_config(&self, config: &Config) -> Result<()> {
        let loaded = lock(&self.config_file).clone();
        match config_edit::save_in_place(config, &self.paths.config, &loaded) {
            Ok(file) => {
                *lock(&self.config_file) = file;
                *lock(&self.config) = config.clone();
                Ok(())
            }
            Err(refused @ ConfigError::ChangedOnDisk { .. }) => Err(self.reload_after_outside_change(refused)),
            Err(other) => Err(other.into()),
        }
    }

    fn refuse_if_changed_on_disk(&self) -> Result<()> {
        let loaded = lock(&self.config_file).clone();
        if config_edit::unchanged_since(&self.paths.config, &loaded)? {
            return Ok(());
        }
        Err(self.reload_after_outside_change(ConfigError::ChangedOnDisk { path: self.paths.config.clone() }))
    }

    /// Takes the file as it is now and returns the refusal to show. A file that is no longer
    /// valid is kept from being saved over (like a broken config at start), and the message says
    /// where it is wrong instead of claiming it was loaded.
    fn reload_after_outside_change(&self, refused: ConfigError) -> CoreError {
        let error = match config_edit::load(&self.paths.config) {
            Ok((config, file)) => {
                *lock(&self.lan) = super::listens_on_lan(&config);
                *lock(&self.config) = config;
                *lock(&self.config_file) = file;
                refused.into()
            }
            Err(broken) => {
                let message = format!(
                    "The configuration file was changed outside SimpleOTP and is not valid now; your change was not saved.\n{broken}"
                );
                *lock(&self.config_error) = Some(message.clone());
                CoreError::ConfigBroken(message)
            }
        };
        self.changed();
        error
    }
}
