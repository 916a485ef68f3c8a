//! Updates as the window and the tray menu show them: whether checks are on, when the last one
//! was and what it found, a newer release with its notes, and what went wrong (quietly: a line
//! in Settings and in the log, never a dialog).
//!
//! The checking, downloading, signature check and installing are Tauri's updater, driven by
//! [`crate::updates`]; it reports here in [`CheckReport`]s, so that everything a person reads
//! about updates is worded in one place and tested without a webview. The last answer is kept
//! in the data directory (the engine's `update-check.json`), so "Last checked" survives a restart.

use std::time::SystemTime;

use serde::Serialize;

use simpleotp_engine::updates::{current_version, CheckFailure, CheckOutcome, Release, UpdateRecord};

use super::Core;
use crate::sync::lock;

/// What one check found, as the Tauri part reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckReport {
    /// Nothing newer. `offered_older`: the manifest named an older release (a mirror that lags,
    /// or an attempt to downgrade): ignored and logged.
    UpToDate {
        newest: Option<String>,
        offered_older: bool,
    },
    /// A newer release. `cannot_install` says why this copy cannot install it itself (no
    /// package for its install format in the release, no signing key in this build); the window
    /// then offers the releases page.
    Available {
        version: String,
        notes: Option<String>,
        cannot_install: Option<String>,
    },
    Failed(CheckFailure),
}

/// The update state the window shows (Settings › Updates) and the tray menu follows.
#[derive(Debug, Default)]
pub(super) struct UpdateState {
    pub(super) checking: bool,
    /// What the install is doing ("Downloading SimpleOTP 0.2.0… 40 %"), while it runs.
    pub(super) installing: Option<String>,
    pub(super) last: Option<UpdateRecord>,
    pub(super) available: Option<AvailableUpdate>,
    /// A refused update or a failed install, until the next check.
    pub(super) problem: Option<String>,
    /// The tray's "Update to x.y.z…" asked the window to open on Updates.
    pub(super) focus_requested: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AvailableUpdate {
    pub version: String,
    /// The release notes, as text (the window never renders them as HTML).
    pub notes: Option<String>,
    pub cannot_install: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpdatesView {
    pub current_version: String,
    /// "Check for updates automatically" (`[updates] check` in the config).
    pub automatic: bool,
    pub checking: bool,
    pub installing: Option<String>,
    /// "Last checked 5 Dec 12:03 — up to date": the time as seconds since the epoch (the page
    /// formats it in the person's locale), the rest in words.
    pub last_checked: Option<u64>,
    pub last_result: Option<String>,
    pub available: Option<AvailableUpdate>,
    pub problem: Option<String>,
    /// Where the manifest comes from when `SIMPLEOTP_UPDATE_URL` replaced the official one.
    pub source: Option<String>,
    pub releases_page: &'static str,
}

impl Core {
    /// Whether the owner wants automatic checks.
    pub fn updates_automatic(&self) -> bool {
        self.config().updates.check
    }

    pub fn updates_view(&self) -> UpdatesView {
        let state = lock(&self.updates);
        let source = simpleotp_engine::updates::ManifestUrl::from_env().ok().filter(|url| !url.is_official()).map(|url| url.to_string());
        UpdatesView {
            current_version: current_version().to_string(),
            automatic: self.updates_automatic(),
            checking: state.checking,
            installing: state.installing.clone(),
            last_checked: state.last.as_ref().map(|r| r.checked_at),
            last_result: state.last.as_ref().map(last_result),
            available: state.available.clone(),
            problem: state.problem.clone(),
            source,
            releases_page: simpleotp_engine::updates::RELEASES_PAGE,
        }
    }

    /// The version the tray menu offers ("Update to 0.2.0…"), if any.
    pub fn update_available(&self) -> Option<String> {
        lock(&self.updates).available.as_ref().map(|a| a.version.clone())
    }

    pub fn update_check_started(&self) {
        lock(&self.updates).checking = true;
        self.changed();
    }

    /// Takes what a check found: remembered (and kept on disk), shown, and logged in one line.
    pub fn update_checked(&self, report: CheckReport) {
        let now = SystemTime::now();
        let outcome = match &report {
            CheckReport::UpToDate { newest, offered_older } => {
                if *offered_older {
                    tracing::warn!(
                        "update check: the update server offers SimpleOTP {}, older than this {}: ignored",
                        newest.as_deref().unwrap_or("?"),
                        current_version()
                    );
                } else {
                    tracing::info!("update check: SimpleOTP {} is up to date", current_version());
                }
                let newest = newest.as_deref().and_then(|v| v.parse().ok()).unwrap_or_else(current_version);
                Ok(CheckOutcome::UpToDate { newest })
            }
            CheckReport::Available { version, notes, cannot_install } => {
                match cannot_install {
                    None => tracing::info!("update check: SimpleOTP {version} is available"),
                    Some(why) => tracing::info!("update check: SimpleOTP {version} is available; {why}"),
                }
                match version.parse() {
                    Ok(version) => Ok(CheckOutcome::Newer(Release { version, notes: notes.clone() })),
                    Err(_) => Err(CheckFailure::NotAManifest),
                }
            }
            CheckReport::Failed(failure) => {
                tracing::info!("update check: {failure}");
                Err(failure.clone())
            }
        };
        let record = UpdateRecord::of(&outcome, now);
        if let Err(e) = record.save(&self.paths.data_dir) {
            tracing::debug!("cannot keep the update check's answer: {e}");
        }
        let mut state = lock(&self.updates);
        state.checking = false;
        state.last = Some(record);
        match report {
            CheckReport::Available { version, notes, cannot_install } => {
                state.available = Some(AvailableUpdate { version, notes, cannot_install });
                state.problem = None;
            }
            CheckReport::UpToDate { .. } => {
                state.available = None;
                state.problem = None;
            }
            // A failed check forgets nothing it knew: an update found yesterday is still there.
            CheckReport::Failed(_) => {}
        }
        drop(state);
        self.changed();
    }

    /// The install's progress, or `None` when it stopped.
    pub fn update_progress(&self, what: Option<String>) {
        lock(&self.updates).installing = what;
        self.changed();
    }

    /// An update that was refused (a bad signature) or could not be installed: logged, and shown
    /// in Settings until the next check.
    pub fn update_problem(&self, problem: String) {
        tracing::warn!("update: {problem}");
        let mut state = lock(&self.updates);
        state.installing = None;
        state.problem = Some(problem);
        drop(state);
        self.changed();
    }

    /// The tray's "Update to x.y.z…": the window opens on Updates.
    pub fn request_updates_focus(&self) {
        lock(&self.updates).focus_requested = true;
    }

    /// Whether the window should open on Updates (asked once by a page that loads).
    pub fn take_updates_focus(&self) -> bool {
        std::mem::take(&mut lock(&self.updates).focus_requested)
    }
}

/// The words after "Last checked …".
fn last_result(record: &UpdateRecord) -> String {
    if let Some(failure) = &record.failure {
        return failure.clone();
    }
    match record.newer_than(&current_version()) {
        Some(newer) => format!("SimpleOTP {newer} is available"),
        None => "up to date".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_result_reads_as_words_and_follows_the_running_version() {
        let at = SystemTime::now();
        let failed = UpdateRecord::of(&Err(CheckFailure::Unreachable), at);
        assert_eq!(last_result(&failed), "could not reach the update server");
        let newer = Release { version: "99.0.0".parse().unwrap(), notes: None };
        assert_eq!(last_result(&UpdateRecord::of(&Ok(CheckOutcome::Newer(newer)), at)), "SimpleOTP 99.0.0 is available");
        // Found before this version was installed: no longer news.
        let installed = Release { version: current_version(), notes: None };
        assert_eq!(last_result(&UpdateRecord::of(&Ok(CheckOutcome::Newer(installed)), at)), "up to date");
    }
}
