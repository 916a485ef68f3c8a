//! The persisted state: sessions, the last accepted TOTP step of each authenticator and the attempt budget
//! ([`crate::limiter::LimiterSnapshot`]), in `state.json` in the data directory.
//!
//! One file, written whole and atomically (see [`crate::fsutil::write_atomic`]) with 0600
//! permissions. Losing it is not a disaster (people log in again), but refusing to start because
//! of it would be: a file that cannot be read is renamed aside with a warning and the gateway
//! starts empty. The last accepted step is written *before* a login is answered, so a code can
//! never be replayed after a crash, and a failed attempt is written before it is answered, so a
//! restart cannot refill the budget; session `last_seen` updates are written lazily by
//! [`crate::app`], off the request path.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::limiter::LimiterSnapshot;
use crate::session::Session;

const FORMAT_VERSION: u32 = 1;
pub const STATE_FILE_NAME: &str = "state.json";

/// Everything that must survive a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistedState {
    pub version: u32,
    /// Written by versions with a single authenticator: the newest TOTP step a login used. It
    /// belonged to the first authenticator; the gateway moves it into
    /// [`PersistedState::last_totp_steps`] at start and never writes it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_totp_step: Option<u64>,
    /// Per authenticator id (see [`crate::authenticator`]): the newest TOTP step a code of that
    /// authenticator was accepted for; its codes of this step or older are refused.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub last_totp_steps: std::collections::BTreeMap<String, u64>,
    pub sessions: Vec<Session>,
    /// The brute-force budget and per-address lockouts. Absent in files written before it was
    /// saved (same format version: old files stay readable); then the bucket starts full, as it
    /// always did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limiter: Option<LimiterSnapshot>,
    /// The hashes of the unused recovery codes (see [`crate::recovery`]); absent until a set is
    /// made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<crate::recovery::RecoveryCodes>,
    /// The passkeys' public keys, counters and names (see [`crate::passkey`]); absent until one
    /// is added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passkeys: Option<crate::passkey::PersistedPasskeys>,
}

impl PersistedState {
    /// Parses the state file's contents; `Err` says what is wrong with them, in words (and
    /// never quotes them: they hold token hashes).
    pub fn from_bytes(bytes: &[u8]) -> Result<PersistedState, String> {
        match serde_json::from_slice::<PersistedState>(bytes) {
            Ok(state) if state.version == FORMAT_VERSION => Ok(state),
            Ok(state) => Err(format!("it has format version {}, this program reads version {FORMAT_VERSION}", state.version)),
            Err(e) => Err(format!("it is not valid (line {}, column {}: {:?} error)", e.line(), e.column(), e.classify())),
        }
    }
}

/// Errors writing the state file. Reading never fails (see [`StateFile::load`]).
#[derive(Debug, thiserror::Error)]
#[error("cannot save the gateway state to {path}: {source}. The gateway keeps running, but sessions started now will not survive a restart; check that the data directory is writable and the disk not full.")]
pub struct StateWriteError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// What loading found.
#[derive(Debug)]
pub struct Loaded {
    pub state: PersistedState,
    /// Set when an unreadable file was moved aside; the message says where.
    pub warning: Option<String>,
}

/// The state file in one data directory.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn in_dir(data_dir: &Path) -> StateFile {
        StateFile { path: data_dir.join(STATE_FILE_NAME) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the state. Missing → empty. Unreadable or corrupt → moved aside to
    /// `state.json.corrupt-<unix time>`, a warning, and empty state.
    pub fn load(&self, now_unix: u64) -> Loaded {
        self.remove_stale_temp_files();
        let problem = match std::fs::read(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Loaded { state: PersistedState { version: FORMAT_VERSION, ..Default::default() }, warning: None }
            }
            Err(e) => e.to_string(),
            Ok(bytes) => match PersistedState::from_bytes(&bytes) {
                Ok(state) => return Loaded { state, warning: None },
                Err(problem) => problem,
            },
        };
        let aside = self.path.with_file_name(format!("{STATE_FILE_NAME}.corrupt-{now_unix}"));
        let warning = match std::fs::rename(&self.path, &aside) {
            Ok(()) => format!(
                "the state file {} could not be read: {problem}. It was moved to {} and the gateway starts with no sessions (everyone signs in again).",
                self.path.display(),
                aside.display()
            ),
            Err(e) => format!(
                "the state file {} could not be read: {problem}, and could not be moved aside ({e}). The gateway starts with no sessions.",
                self.path.display()
            ),
        };
        Loaded { state: PersistedState { version: FORMAT_VERSION, ..Default::default() }, warning: Some(warning) }
    }

    /// A process killed in the middle of [`StateFile::save`] leaves its temp file behind (the
    /// state file itself is intact: it is replaced by a rename). Only one gateway uses a data
    /// directory, so at load every such file is stale.
    fn remove_stale_temp_files(&self) {
        crate::fsutil::remove_leftover_temp_files(&self.path);
    }

    /// Writes the state atomically with 0600 permissions. Blocking: call from a blocking task.
    pub fn save(&self, state: &PersistedState) -> Result<(), StateWriteError> {
        let mut state = state.clone();
        state.version = FORMAT_VERSION;
        let bytes = serde_json::to_vec(&state).expect("state always serializes");
        crate::fsutil::write_atomic(&self.path, &bytes).map_err(|source| StateWriteError { path: self.path.clone(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SessionSettings;
    use crate::session::{SessionStore, SignInMethod};

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::in_dir(dir.path());
        let mut store = SessionStore::new(SessionSettings::default());
        store.create(8081, "127.0.0.1".parse().ok(), "ua", SignInMethod::Code { authenticator: "Pixel".into() }, 100);
        let limiter = crate::limiter::LimiterSnapshot {
            saved_at_unix_ms: 1_800_000_000_000,
            bucket_milli_tokens: 2_500,
            clients: vec![crate::limiter::ClientSnapshot {
                ip: "192.0.2.7".parse().unwrap(),
                consecutive_failures: 6,
                locked_until_unix_ms: Some(1_800_000_060_000),
                last_attempt_unix_ms: 1_799_999_999_000,
            }],
        };
        let state = PersistedState {
            version: 1,
            last_totp_step: None,
            last_totp_steps: [("first".to_string(), 42), ("k3x9q2ab".to_string(), 41)].into(),
            sessions: store.snapshot(),
            limiter: Some(limiter),
            recovery: None,
            passkeys: None,
        };
        file.save(&state).unwrap();
        let loaded = file.load(200);
        assert!(loaded.warning.is_none());
        assert_eq!(loaded.state, state);
    }

    #[test]
    fn a_file_from_before_the_budget_was_saved_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::in_dir(dir.path());
        std::fs::write(file.path(), br#"{"version":1,"last_totp_step":7,"sessions":[]}"#).unwrap();
        let loaded = file.load(5);
        assert!(loaded.warning.is_none(), "{:?}", loaded.warning);
        assert_eq!(loaded.state.last_totp_step, Some(7));
        assert_eq!(loaded.state.limiter, None);
    }

    /// A file from before several authenticators: its single replay step and its sessions (which
    /// did not record how they signed in) still load.
    #[test]
    fn a_file_from_before_several_authenticators_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::in_dir(dir.path());
        let hash = "A".repeat(43);
        let old = format!(
            r#"{{"version":1,"last_totp_step":9,"sessions":[{{"id":"s1","token_hash":"{hash}","created_at":1,"last_seen":1,"client_ip":null,"user_agent":"ua","app_port":8081}}]}}"#
        );
        std::fs::write(file.path(), old).unwrap();
        let loaded = file.load(5);
        assert!(loaded.warning.is_none(), "{:?}", loaded.warning);
        assert_eq!((loaded.state.last_totp_step, loaded.state.last_totp_steps.len()), (Some(9), 0));
        assert_eq!(loaded.state.sessions[0].signed_in_with, SignInMethod::Unknown);
        // Written again, the old field is gone once the steps moved (the gateway moves them).
        let moved = PersistedState { last_totp_step: None, last_totp_steps: [("first".into(), 9)].into(), ..loaded.state };
        file.save(&moved).unwrap();
        let text = std::fs::read_to_string(file.path()).unwrap();
        assert!(!text.contains("last_totp_step\"") && text.contains(r#""last_totp_steps":{"first":9}"#), "{text}");
        assert!(text.contains(r#""signed_in_with":{"kind":"unknown"}"#), "{text}");
    }

    #[test]
    fn missing_file_is_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = StateFile::in_dir(dir.path()).load(1);
        assert!(loaded.warning.is_none());
        assert!(loaded.state.sessions.is_empty() && loaded.state.last_totp_steps.is_empty());
    }

    #[test]
    fn corrupt_file_is_moved_aside_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::in_dir(dir.path());
        std::fs::write(file.path(), b"{\"version\":1,\"sessions\":[{\"id\":").unwrap();
        let loaded = file.load(77);
        let warning = loaded.warning.expect("a warning");
        assert!(warning.contains("state.json.corrupt-77"), "{warning}");
        assert!(loaded.state.sessions.is_empty());
        assert!(dir.path().join("state.json.corrupt-77").exists());
        assert!(!file.path().exists());
        // The next save works normally.
        file.save(&PersistedState::default()).unwrap();
        assert!(file.load(78).warning.is_none());
    }

    #[test]
    fn unknown_version_is_set_aside_not_misread() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::in_dir(dir.path());
        std::fs::write(file.path(), br#"{"version":99,"last_totp_step":null,"sessions":[]}"#).unwrap();
        assert!(file.load(5).warning.unwrap().contains("format version 99"));
    }
}
