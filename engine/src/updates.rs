//! Whether a newer SimpleOTP has been released: where the release manifest is read from, what
//! it says, and the one line a person is told.
//!
//! Every release publishes `latest.json` (written by `scripts/release-manifest.mjs`): the
//! version, its release notes, and per install format (`linux-x86_64-deb`,
//! `windows-x86_64-nsis`, …) the package's URL and its minisign signature. The tray app hands the
//! same manifest to Tauri's updater, which verifies and installs the package; the headless
//! `simpleotp` command only reads the version from it and says when a newer one exists (package
//! managers update it, not the command itself). So this module never downloads a package and
//! trusts the manifest for nothing but a notice.
//!
//! What is asked, and when, is the owner's choice: `[updates] check = false` in the config turns
//! every check off; `SIMPLEOTP_UPDATE_URL` points them at another manifest (an organisation's
//! mirror, or a test's local server). The last answer is kept in the data directory
//! (`update-check.json`), so `simpleotp --version` asks the network at most once a day.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::fsutil;

/// Where official releases publish their manifest.
pub const DEFAULT_MANIFEST_URL: &str = "https://github.com/simpleotp/simpleotp/releases/latest/download/latest.json";
/// Where a person downloads a release by hand.
pub const RELEASES_PAGE: &str = "https://github.com/simpleotp/simpleotp/releases";
/// The environment variable that replaces [`DEFAULT_MANIFEST_URL`].
pub const UPDATE_URL_ENV: &str = "SIMPLEOTP_UPDATE_URL";
/// How often a program that runs all day asks again.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// The record's file name in the data directory.
const RECORD_FILE: &str = "update-check.json";

/// This build's version (the workspace's, which every package carries).
pub fn current_version() -> semver::Version {
    env!("CARGO_PKG_VERSION").parse().expect("the crate's own version is semver")
}

/// The address of a release manifest: `https://` anywhere, or `http://` to this computer only (a
/// local mirror, a test server). Plain HTTP across a network would let anyone on the way change
/// what the notice says; the packages themselves are checked by their signature either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestUrl(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestUrlError {
    #[error("{UPDATE_URL_ENV}={0:?} is not an http(s) address")]
    NotAUrl(String),
    #[error("{UPDATE_URL_ENV}={0:?}: plain http:// is allowed only to this computer (127.0.0.1, ::1, localhost); use https://")]
    PlainHttpElsewhere(String),
    #[error("{UPDATE_URL_ENV}={0:?}: a user name or password in the address would end up in logs; use an address without one")]
    Credentials(String),
}

impl ManifestUrl {
    pub fn parse(text: &str) -> Result<Self, ManifestUrlError> {
        let text = text.trim();
        let not_a_url = || ManifestUrlError::NotAUrl(text.to_string());
        let (scheme, rest) = text.split_once("://").ok_or_else(not_a_url)?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err(ManifestUrlError::Credentials(text.to_string()));
        }
        let host = host_of(authority).ok_or_else(not_a_url)?;
        if host.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(not_a_url());
        }
        match scheme.to_ascii_lowercase().as_str() {
            "https" => Ok(ManifestUrl(text.to_string())),
            "http" if is_loopback(host) => Ok(ManifestUrl(text.to_string())),
            "http" => Err(ManifestUrlError::PlainHttpElsewhere(text.to_string())),
            _ => Err(not_a_url()),
        }
    }

    /// `SIMPLEOTP_UPDATE_URL` when set (and not empty), else the official manifest.
    pub fn from_env() -> Result<Self, ManifestUrlError> {
        match std::env::var(UPDATE_URL_ENV) {
            Ok(value) if !value.trim().is_empty() => Self::parse(&value),
            _ => Ok(Self::default()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the official manifest (the notice then points at the releases page).
    pub fn is_official(&self) -> bool {
        self.0 == DEFAULT_MANIFEST_URL
    }
}

impl Default for ManifestUrl {
    fn default() -> Self {
        ManifestUrl(DEFAULT_MANIFEST_URL.to_string())
    }
}

impl fmt::Display for ManifestUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The host of an authority (`host`, `host:port`, `[v6]:port`), without brackets.
fn host_of(authority: &str) -> Option<&str> {
    if let Some(bracketed) = authority.strip_prefix('[') {
        return bracketed.split_once(']').map(|(host, _)| host);
    }
    Some(authority.rsplit_once(':').map_or(authority, |(host, _)| host))
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// What a release manifest says, as far as a notice needs it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Release {
    #[serde(deserialize_with = "version_without_v")]
    pub version: semver::Version,
    #[serde(default)]
    pub notes: Option<String>,
}

fn version_without_v<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<semver::Version, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.trim_start_matches('v').parse().map_err(serde::de::Error::custom)
}

/// Why a check found nothing out. Never a reason to bother anyone: the caller logs one line and
/// shows it where the person looks for it (Settings), and tries again later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckFailure {
    /// No connection: offline, DNS, refused, or no answer in time.
    #[error("could not reach the update server")]
    Unreachable,
    /// The server answered with an error status (`None`: not known which).
    #[error("could not reach the update server (it answered with an error{})", .0.map(|code| format!(" {code}")).unwrap_or_default())]
    ServerError(Option<u16>),
    /// An answer that is not a release manifest: a Wi-Fi sign-in page, a proxy's page, a cut-off
    /// or malformed file.
    #[error("could not reach the update server (the answer was not an update list; a Wi-Fi sign-in page?)")]
    NotAManifest,
}

/// The answer to "is there a newer release?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    /// The newest release is this one, or older (a manifest may lag behind, or a mirror may offer
    /// an old release: never a reason to go back).
    UpToDate {
        newest: semver::Version,
    },
    Newer(Release),
}

/// Asks `url` for the newest release and compares it with `current`.
pub async fn check(url: &ManifestUrl, current: &semver::Version, timeout: Duration) -> Result<CheckOutcome, CheckFailure> {
    install_crypto_provider();
    let client = release_client::Client::builder()
        .user_agent(concat!("simpleotp/", env!("CARGO_PKG_VERSION")))
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .map_err(|_| CheckFailure::Unreachable)?;
    let response = client.get(url.as_str()).header("Accept", "application/json").send().await.map_err(|_| CheckFailure::Unreachable)?;
    let status = response.status();
    if !status.is_success() {
        return Err(CheckFailure::ServerError(Some(status.as_u16())));
    }
    let body = response.bytes().await.map_err(|_| CheckFailure::Unreachable)?;
    let release = parse_manifest(&body)?;
    Ok(compare(release, current))
}

/// The release a manifest announces.
pub fn parse_manifest(body: &[u8]) -> Result<Release, CheckFailure> {
    serde_json::from_slice(body).map_err(|_| CheckFailure::NotAManifest)
}

/// A release is news only when it is newer than `current`.
pub fn compare(release: Release, current: &semver::Version) -> CheckOutcome {
    if release.version > *current {
        CheckOutcome::Newer(release)
    } else {
        CheckOutcome::UpToDate { newest: release.version }
    }
}

/// rustls needs one crypto provider for the process; ring is the one Tauri's updater installs
/// too (no C toolchain beyond what `ring` brings, and the same on every OS). rustls deprecates it
/// for lacking post-quantum key exchange, which a public version number does not need; the
/// alternative (aws-lc-rs) needs CMake and a C compiler for every target.
#[allow(deprecated)]
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Fails only when another thread installed one meanwhile, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// The last check's answer, kept in the data directory so that a short-lived command need not
/// ask the network every time, and so the tray shows "last checked" across restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateRecord {
    /// When, in seconds since the Unix epoch.
    pub checked_at: u64,
    /// The newest version the manifest named, if the check got that far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest: Option<String>,
    /// Why it did not, in the words shown to the person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// The release notes of `newest`, when it is newer than the version that checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// The manifest asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl UpdateRecord {
    pub fn of(outcome: &Result<CheckOutcome, CheckFailure>, at: SystemTime) -> Self {
        let checked_at = at.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        match outcome {
            Ok(CheckOutcome::UpToDate { newest }) => UpdateRecord { checked_at, newest: Some(newest.to_string()), ..Default::default() },
            Ok(CheckOutcome::Newer(release)) => {
                UpdateRecord { checked_at, newest: Some(release.version.to_string()), notes: release.notes.clone(), ..Default::default() }
            }
            Err(failure) => UpdateRecord { checked_at, failure: Some(failure.to_string()), ..Default::default() },
        }
    }

    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(RECORD_FILE)
    }

    /// The record, if there is a readable one (a broken file only means asking again).
    pub fn load(data_dir: &Path) -> Option<Self> {
        let text = std::fs::read(Self::path(data_dir)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Written atomically, owner-only like every file of the data directory.
    pub fn save(&self, data_dir: &Path) -> std::io::Result<()> {
        fsutil::create_private_dir(data_dir)?;
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        fsutil::write_atomic(&Self::path(data_dir), &json)
    }

    /// Whether this answer is older than [`CHECK_INTERVAL`] (or from the future: a clock that
    /// was wrong then).
    pub fn is_stale(&self, now: SystemTime) -> bool {
        let now = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        now < self.checked_at || now - self.checked_at >= CHECK_INTERVAL.as_secs()
    }

    /// The newer release this record names, compared with `current` now (it may have been
    /// installed since).
    pub fn newer_than(&self, current: &semver::Version) -> Option<semver::Version> {
        let newest: semver::Version = self.newest.as_deref()?.parse().ok()?;
        (newest > *current).then_some(newest)
    }
}

/// The newer release, if any, for a command that asks now and then: from the record in
/// `data_dir` while it is less than a day old, else asked now (and recorded). A failure is one
/// quiet log line; the record keeps it, so an offline machine is not asked again for a day.
pub async fn newer_release(data_dir: Option<&Path>, url: &ManifestUrl, timeout: Duration) -> Option<semver::Version> {
    let current = current_version();
    let now = SystemTime::now();
    // A record made for another manifest says nothing about this one.
    let record = data_dir.and_then(UpdateRecord::load).filter(|r| !r.is_stale(now) && r.source.as_deref() == Some(url.as_str()));
    if let Some(record) = record {
        return record.newer_than(&current);
    }
    let outcome = check(url, &current, timeout).await;
    if let Err(failure) = &outcome {
        tracing::info!("update check: {failure} ({url})");
    }
    let record = UpdateRecord { source: Some(url.to_string()), ..UpdateRecord::of(&outcome, now) };
    if let Some(dir) = data_dir.filter(|d| d.is_dir()) {
        if let Err(e) = record.save(dir) {
            tracing::debug!("cannot keep the update check's answer in {}: {e}", dir.display());
        }
    }
    record.newer_than(&current)
}

/// The one line about a newer release, for the CLI and the log.
pub fn newer_release_line(newer: &semver::Version, url: &ManifestUrl) -> String {
    let current = current_version();
    if url.is_official() {
        format!("SimpleOTP {newer} is available (this is {current}): {RELEASES_PAGE}")
    } else {
        format!("SimpleOTP {newer} is available (this is {current}), says {url}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_urls_are_https_or_loopback_http() {
        for ok in [
            "https://github.com/simpleotp/simpleotp/releases/latest/download/latest.json",
            "https://mirror.example.org:8443/simpleotp/latest.json",
            "http://127.0.0.1:8000/latest.json",
            "http://localhost/latest.json",
            "http://[::1]:9/latest.json",
        ] {
            assert_eq!(ManifestUrl::parse(ok).map(|u| u.to_string()), Ok(ok.to_string()));
        }
        assert!(matches!(ManifestUrl::parse("http://updates.example.org/latest.json"), Err(ManifestUrlError::PlainHttpElsewhere(_))));
        assert!(matches!(ManifestUrl::parse("http://127.0.0.1.evil.example/latest.json"), Err(ManifestUrlError::PlainHttpElsewhere(_))));
        assert!(matches!(ManifestUrl::parse("http://localhost@evil.example/x"), Err(ManifestUrlError::Credentials(_))));
        assert!(matches!(ManifestUrl::parse("https://user:pw@mirror.example/x"), Err(ManifestUrlError::Credentials(_))));
        for bad in ["", "latest.json", "file:///tmp/latest.json", "ftp://example.org/x", "https:///x", "https://exa mple.org/"] {
            assert!(matches!(ManifestUrl::parse(bad), Err(ManifestUrlError::NotAUrl(_))), "{bad}");
        }
        assert!(ManifestUrl::default().is_official());
    }

    #[test]
    fn manifests_give_the_version_and_notes_or_fail_as_not_a_manifest() {
        let release = parse_manifest(br#"{"version":"v0.2.0","notes":"Fixes.","pub_date":"2026-12-01T00:00:00Z","platforms":{}}"#).unwrap();
        assert_eq!(release, Release { version: "0.2.0".parse().unwrap(), notes: Some("Fixes.".into()) });
        for bad in [&br#"{"version":"0.2.0","no"#[..], b"<html>Sign in to the Wi-Fi</html>", br#"{"version":"two"}"#, b""] {
            assert_eq!(parse_manifest(bad), Err(CheckFailure::NotAManifest));
        }
    }

    #[test]
    fn only_a_newer_version_is_news() {
        let current: semver::Version = "0.2.0".parse().unwrap();
        let release = |v: &str| Release { version: v.parse().unwrap(), notes: None };
        assert!(matches!(compare(release("0.2.1"), &current), CheckOutcome::Newer(_)));
        assert!(matches!(compare(release("0.2.0"), &current), CheckOutcome::UpToDate { .. }));
        assert!(matches!(compare(release("0.1.9"), &current), CheckOutcome::UpToDate { .. }), "a downgrade is never offered");
        assert!(matches!(compare(release("0.3.0-rc.1"), &current), CheckOutcome::Newer(_)));
    }

    #[test]
    fn the_record_is_private_stale_after_a_day_and_compared_again_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let at = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let newer = Release { version: "9.0.0".parse().unwrap(), notes: Some("Big.".into()) };
        let record = UpdateRecord::of(&Ok(CheckOutcome::Newer(newer)), at);
        record.save(dir.path()).unwrap();
        assert_eq!(UpdateRecord::load(dir.path()), Some(record.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(UpdateRecord::path(dir.path())).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{mode:o}");
        }
        assert!(!record.is_stale(at + Duration::from_secs(3600)));
        assert!(record.is_stale(at + CHECK_INTERVAL));
        assert!(record.is_stale(at - Duration::from_secs(60)), "a record from the future is not trusted");
        assert_eq!(record.newer_than(&"1.0.0".parse().unwrap()), Some("9.0.0".parse().unwrap()));
        assert_eq!(record.newer_than(&"9.0.0".parse().unwrap()), None, "installed since");

        let failed = UpdateRecord::of(&Err(CheckFailure::Unreachable), at);
        assert_eq!(failed.failure.as_deref(), Some("could not reach the update server"));
        assert_eq!(failed.newer_than(&"0.0.1".parse().unwrap()), None);

        std::fs::write(UpdateRecord::path(dir.path()), b"{not json").unwrap();
        assert_eq!(UpdateRecord::load(dir.path()), None, "a broken record means asking again");
    }
}
