//! Signed updates, through Tauri's updater plugin: when to check, what a check found, and
//! installing an update, then restarting.
//!
//! * When: the first check 30 s after the app starts, then once a day, while "Check for updates
//!   automatically" is on (`[updates] check` in the config); "Check now" any time.
//! * Where: the release manifest (`latest.json`) at the engine's [`ManifestUrl`], which
//!   `SIMPLEOTP_UPDATE_URL` replaces (https://, or http:// to this computer only).
//! * Which package: the manifest has one entry per install format (`linux-x86_64-deb`,
//!   `windows-x86_64-nsis`, …), and this copy takes only its own ([`install_target`]): an
//!   installed .deb updates to a .deb, never to an AppImage.
//! * Trust: the package's minisign signature must verify with the public key in the app's
//!   config (`plugins.updater.pubkey`), and its signed trusted comment must name the version the
//!   manifest announces (`requireSignedVersion`), so a manifest cannot pass off an old, genuinely
//!   signed package as new. A build without a key still tells of new releases, and sends people
//!   to the releases page instead of installing.
//! * What people see: never a dialog from a check. Offline, a Wi-Fi sign-in page, a server error
//!   or a broken manifest is one log line and "Last checked … — could not reach the update server"
//!   in Settings; a bad signature, a downgrade or a manifest without this install's format is
//!   refused, logged, and said in Settings. Installing is asked once in the window, then the app
//!   restarts; sessions are in the state file, so everyone stays signed in.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use simpleotp_engine::updates::{CheckFailure, ManifestUrl, CHECK_INTERVAL};
use tauri::{AppHandle, Manager, Runtime};
use tauri_plugin_updater::{Error as UpdaterError, Update, UpdaterExt};
use tokio::time::Instant;
use tracing::info;

use crate::core::{CheckReport, Core};
use crate::sync::lock;

/// The first automatic check, this long after the app starts (the issue asks within a minute:
/// late enough not to slow a start at login, early enough that a fix arrives the same day).
pub const FIRST_CHECK_DELAY: Duration = Duration::from_secs(30);
/// How long a check may take before it counts as "could not reach".
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a download may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The update a check found, kept for Install (managed by Tauri).
#[derive(Default)]
pub struct Updates {
    pending: Mutex<Option<Update>>,
}

/// What [`check`] found: the report for the core, and the update to install when this copy can.
pub struct Checked {
    pub report: CheckReport,
    pub update: Option<Update>,
}

/// This copy's entry in the manifest, from how it was installed (the bundler marks the binary
/// inside each package): `linux-x86_64-deb`, `darwin-aarch64-app`, … `None` for a copy that
/// came from no package (`cargo run`), which cannot install updates.
pub fn install_target() -> Option<String> {
    use tauri::utils::config::BundleType;
    let format = match tauri::utils::platform::bundle_type()? {
        BundleType::Deb => "deb",
        BundleType::Rpm => "rpm",
        BundleType::AppImage => "appimage",
        BundleType::Msi => "msi",
        BundleType::Nsis => "nsis",
        BundleType::App | BundleType::Dmg => "app",
    };
    Some(format!("{}-{format}", os_arch()?))
}

fn os_arch() -> Option<&'static str> {
    Some(match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "x86_64") => "linux-x86_64",
        ("linux", "aarch64") => "linux-aarch64",
        ("windows", "x86_64") => "windows-x86_64",
        ("windows", "aarch64") => "windows-aarch64",
        ("macos", "x86_64") => "darwin-x86_64",
        ("macos", "aarch64") => "darwin-aarch64",
        _ => return None,
    })
}

/// Whether this build carries the public key updates are checked with (`plugins.updater.pubkey`;
/// empty until a maintainer sets up signing, CONTRIBUTING.md).
pub fn has_signing_key<R: Runtime>(app: &AppHandle<R>) -> bool {
    app.config()
        .plugins
        .0
        .get("updater")
        .and_then(|updater| updater.get("pubkey"))
        .and_then(|key| key.as_str())
        .is_some_and(|key| !key.trim().is_empty())
}

/// A release a manifest offered: its version and notes.
type Offered = (semver::Version, Option<String>);

/// Asks `source` whether a newer release exists for `target` (see [`install_target`]).
pub async fn check<R: Runtime>(app: &AppHandle<R>, source: &ManifestUrl, target: Option<&str>, timeout: Duration) -> Checked {
    let failed = |failure| Checked { report: CheckReport::Failed(failure), update: None };
    let current = app.package_info().version.clone();
    // What the manifest offered, seen by the comparator, so that a downgrade or a release
    // without this install's format can still be named.
    let offered: Arc<Mutex<Option<Offered>>> = Arc::default();
    let seen = offered.clone();
    // A copy from no package looks for a key no manifest has: it learns the version, and
    // installs nothing.
    let key = target.map(str::to_string).unwrap_or_else(|| format!("{}-unpackaged", os_arch().unwrap_or("unknown")));
    let Ok(endpoint) = source.as_str().parse() else { return failed(CheckFailure::Unreachable) };
    let updater = app
        .updater_builder()
        .target(key.clone())
        .timeout(timeout)
        .version_comparator(move |current, release| {
            *lock(&seen) = Some((release.version.clone(), release.notes.clone()));
            release.version > current
        })
        .endpoints(vec![endpoint])
        .and_then(|builder| builder.build());
    let updater = match updater {
        Ok(updater) => updater,
        Err(e) => {
            tracing::warn!("cannot check for updates: {e}");
            return failed(CheckFailure::Unreachable);
        }
    };
    let result = updater.check().await;
    let offered = lock(&offered).clone();
    match result {
        Ok(Some(update)) => {
            let cannot_install = if !has_signing_key(app) {
                Some("this build has no key to check an update's signature with, so it cannot install updates itself".to_string())
            } else if target.is_none() {
                Some("this copy was not installed from a package, so it cannot update itself".to_string())
            } else {
                None
            };
            let report = CheckReport::Available {
                version: update.version.clone(),
                notes: update.body.clone(),
                cannot_install: cannot_install.clone(),
            };
            Checked { report, update: cannot_install.is_none().then_some(update) }
        }
        Ok(None) => Checked {
            report: CheckReport::UpToDate {
                offered_older: offered.as_ref().is_some_and(|(version, _)| *version < current),
                newest: offered.map(|(version, _)| version.to_string()),
            },
            update: None,
        },
        Err(UpdaterError::TargetNotFound(_) | UpdaterError::TargetsNotFound(_)) => match offered {
            Some((version, notes)) => {
                tracing::warn!("update: SimpleOTP {version} has no package for this kind of install ({key}): refused");
                let cannot_install = Some(format!("the release has no package for this kind of install ({key})"));
                Checked { report: CheckReport::Available { version: version.to_string(), notes, cannot_install }, update: None }
            }
            None => failed(CheckFailure::NotAManifest),
        },
        Err(e) => {
            tracing::debug!("update check failed: {e}");
            failed(check_failure(&e))
        }
    }
}

/// How a failed check reads: the plugin's errors sorted into the engine's three kinds.
fn check_failure(error: &UpdaterError) -> CheckFailure {
    match error {
        UpdaterError::Reqwest(e) if e.is_decode() => CheckFailure::NotAManifest,
        UpdaterError::Reqwest(e) => match e.status() {
            Some(status) => CheckFailure::ServerError(Some(status.as_u16())),
            None => CheckFailure::Unreachable,
        },
        // Every endpoint answered with an error status (the plugin does not keep which).
        UpdaterError::ReleaseNotFound => CheckFailure::ServerError(None),
        UpdaterError::Serialization(_) | UpdaterError::Semver(_) | UpdaterError::UrlParse(_) => CheckFailure::NotAManifest,
        _ => CheckFailure::Unreachable,
    }
}

/// Downloads `update` and checks its signature; a refusal in the words Settings shows.
pub async fn download(update: &Update) -> Result<Vec<u8>, String> {
    let mut update = update.clone();
    update.timeout = Some(DOWNLOAD_TIMEOUT);
    update.download(|_, _| {}, || {}).await.map_err(|e| download_refusal(&update.version, &e))
}

fn download_refusal(version: &str, error: &UpdaterError) -> String {
    match error {
        UpdaterError::Minisign(_)
        | UpdaterError::Base64(_)
        | UpdaterError::SignatureUtf8(_)
        | UpdaterError::SignedVersionMismatch { .. }
        | UpdaterError::MissingSignedVersion => format!(
            "SimpleOTP {version} was refused: its signature does not match SimpleOTP's signing key (the download may have been changed on the way). Nothing was installed."
        ),
        other => format!("SimpleOTP {version} could not be downloaded ({other}). Nothing was installed; it is tried again at the next check."),
    }
}

/// Starts the automatic checks (first after [`FIRST_CHECK_DELAY`], then daily).
pub fn start<R: Runtime>(app: &AppHandle<R>, core: Arc<Core>) {
    app.manage(Updates::default());
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let mut next = Instant::now() + FIRST_CHECK_DELAY;
        loop {
            tokio::time::sleep_until(next).await;
            next = Instant::now() + CHECK_INTERVAL;
            if core.updates_automatic() {
                check_now(&app, &core).await;
            }
        }
    });
}

/// One check, now ("Check now", and the schedule).
pub async fn check_now<R: Runtime>(app: &AppHandle<R>, core: &Arc<Core>) {
    let source = match ManifestUrl::from_env() {
        Ok(source) => source,
        Err(e) => return core.update_problem(e.to_string()),
    };
    core.update_check_started();
    let checked = check(app, &source, install_target().as_deref(), CHECK_TIMEOUT).await;
    if let Some(updates) = app.try_state::<Updates>() {
        *lock(&updates.pending) = checked.update;
    }
    core.update_checked(checked.report);
}

/// Downloads and checks the waiting update, installs it, and restarts the app. Returns only if
/// that failed (the reason is also shown in Settings).
pub async fn install_and_restart<R: Runtime>(app: &AppHandle<R>, core: &Arc<Core>) -> Result<(), String> {
    let update = app.try_state::<Updates>().and_then(|u| lock(&u.pending).clone());
    let Some(update) = update else { return Err("No update is waiting to be installed; press Check now.".into()) };
    let version = update.version.clone();
    core.update_progress(Some(format!("Downloading SimpleOTP {version}…")));
    let bytes = match download(&update).await {
        Ok(bytes) => bytes,
        Err(problem) => {
            core.update_problem(problem.clone());
            return Err(problem);
        }
    };
    core.update_progress(Some(format!("Installing SimpleOTP {version}…")));
    // Windows: the installer replaces the app and its nginx.exe, which must not be running, and
    // ends this process itself once it has started.
    #[cfg(windows)]
    core.shutdown().await;
    // The package manager (pkexec dpkg/rpm, the NSIS/MSI installer) is waited for off the async
    // threads.
    let installed = tokio::task::spawn_blocking(move || update.install(bytes)).await;
    let problem = match installed {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("SimpleOTP {version} could not be installed: {e}. This version keeps running.")),
        Err(e) => Some(format!("SimpleOTP {version} could not be installed: {e}. This version keeps running.")),
    };
    if let Some(problem) = problem {
        #[cfg(windows)]
        core.start_up().await;
        core.update_problem(problem.clone());
        return Err(problem);
    }
    info!("installed SimpleOTP {version}; restarting");
    // The clean stop first (nginx quits, sessions are written), then the new version starts and
    // loads them.
    core.shutdown().await;
    app.request_restart();
    Ok(())
}

#[cfg(test)]
mod tests;
