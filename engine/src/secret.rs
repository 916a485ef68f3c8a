//! Where the TOTP secret lives: the OS keychain (the default), or a private file.
//!
//! With several authenticator apps the same entry (or file) holds all of them, so there is one
//! place that holds secrets: the bare base32 secret while there is only the one setup made, a
//! small JSON document otherwise (see [`crate::authenticator`]).
//!
//! The keychain is the default because it keeps the secret encrypted at rest and out of backups
//! of the config directory; it is reached through the `keyring` crate (macOS Keychain, Windows
//! Credential Manager, the freedesktop Secret Service on Linux). The tray app reads the same entry
//! ([`KEYCHAIN_SERVICE`], [`KEYCHAIN_ACCOUNT`]), so both must agree on these names.
//!
//! A headless server usually has no Secret Service, or one that is locked because nobody logged in
//! to a desktop. Then the secret is kept in a file instead (`--secret-file PATH`): the base32
//! secret on one line, so a person can also type it into an authenticator app, written atomically
//! with 0600 permissions (an owner-only access list on Windows) and refused on load if other
//! users could read it.
//!
//! # Blocking
//!
//! Every keychain operation is a **blocking** call: on Linux it is a synchronous D-Bus round trip
//! to the Secret Service, and if the keychain is locked on a desktop, the Secret Service may show
//! an unlock prompt and the call waits until the user answers it (`keyring` sets no timeout).
//! Callers in async code must run these methods under `tokio::task::spawn_blocking` (or on
//! another thread), never directly on a runtime worker; the gateway loads the secret once at
//! start-up and never touches the keychain while serving requests.
//!
//! # Never printing the secret
//!
//! No error here carries the secret or any part of what was read: a corrupt file or keychain entry
//! is reported by *where* it is, and keychain error details come from the platform's error text,
//! which describes the failure, not the data (and are scrubbed of the secret when storing, to be
//! sure).

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use zeroize::{Zeroize, Zeroizing};

use crate::authenticator::Authenticators;
use crate::totp::TotpSecret;

/// Keychain service name, shared with the tray app.
pub const KEYCHAIN_SERVICE: &str = "org.simpleotp.SimpleOTP";
/// Keychain account (user) name of the TOTP secret.
pub const KEYCHAIN_ACCOUNT: &str = "totp-secret";

/// Where the TOTP secret is kept.
///
/// All methods that touch the keychain block (D-Bus, possibly an unlock prompt): from async code,
/// call them inside `tokio::task::spawn_blocking`. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretStore {
    /// An entry in the OS keychain.
    Keychain { service: String, account: String },
    /// A file holding the base32 secret on one line (0600 on Unix).
    File(PathBuf),
}

/// Why the secret could not be loaded, stored or deleted. Messages are meant for the person
/// running the command, and never contain the secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("no TOTP secret is stored in {location}")]
    NotFound { location: String },

    #[error("a TOTP secret is already stored in {location}; refusing to replace it (it would break the authenticator app that uses it)")]
    AlreadyExists { location: String },

    #[error("No OS keychain is available ({detail}). On a server without a desktop, keep the secret in a file: --secret-file PATH.")]
    KeychainUnavailable { detail: String },

    #[error("The OS keychain is locked or refused access ({detail}). Unlock it (log in to your desktop session) or keep the secret in a file instead with --secret-file PATH.")]
    KeychainLocked { detail: String },

    #[error("cannot access the secret file {}: {source}", .path.display())]
    FileIo {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("the secret file {} can be read or written by other users (mode {mode:03o}); run `chmod 600 {}` and try again", .path.display(), .path.display())]
    FilePermissions { path: PathBuf, mode: u32 },

    /// Windows: the file's access list lets `who` read or change it.
    #[error("the secret file {} can be read or changed by {who}; make it private to your account (Properties > Security, or `icacls \"{}\" /inheritance:r /grant:r \"%USERNAME%:F\"`) and try again", .path.display(), .path.display())]
    FileShared { path: PathBuf, who: String },

    #[error("{location} does not hold a valid TOTP secret ({reason})")]
    Corrupt { location: String, reason: String },
}

impl SecretStore {
    /// The keychain entry the tray app also uses.
    pub fn keychain() -> SecretStore {
        SecretStore::Keychain { service: KEYCHAIN_SERVICE.to_owned(), account: KEYCHAIN_ACCOUNT.to_owned() }
    }

    /// A secret file at `path`.
    pub fn file(path: impl Into<PathBuf>) -> SecretStore {
        SecretStore::File(path.into())
    }

    /// Where the secret is, in words, for messages: "the OS keychain (service …, account …)" or
    /// "the file /x/y".
    pub fn describe(&self) -> String {
        match self {
            SecretStore::Keychain { service, account } => {
                format!("the OS keychain (service {service}, account {account})")
            }
            SecretStore::File(path) => format!("the file {}", path.display()),
        }
    }

    /// Reads the authenticators (see [`crate::authenticator`] for the encoding; a bare secret is
    /// one authenticator). [`SecretError::NotFound`] when nothing is stored. Blocking (see the
    /// module docs).
    pub fn load_authenticators(&self) -> Result<Authenticators, SecretError> {
        let text = match self {
            SecretStore::Keychain { .. } => {
                let entry = self.entry()?;
                Zeroizing::new(entry.get_password().map_err(|e| self.keychain_error(e, None))?)
            }
            SecretStore::File(path) => read_private_file(path, self)?,
        };
        Authenticators::decode(&text).map_err(|reason| SecretError::Corrupt {
            location: self.describe(),
            // `decode` names the problem, never the input.
            reason,
        })
    }

    /// The first authenticator's secret (for tests that check what setup stored).
    #[cfg(any(test, feature = "test-support"))]
    pub fn load(&self) -> Result<TotpSecret, SecretError> {
        self.load_authenticators().map(|set| set.first().secret.clone())
    }

    /// Whether a secret is stored. An unreadable (corrupt) one counts as stored, so that
    /// [`store`](Self::store) without `overwrite` never silently replaces it.
    pub fn exists(&self) -> Result<bool, SecretError> {
        match self.load_authenticators() {
            Ok(_) | Err(SecretError::Corrupt { .. }) => Ok(true),
            Err(SecretError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Saves `secret` as the only authenticator (the set setup makes, stored as the bare secret).
    /// Unless `overwrite`, fails with [`SecretError::AlreadyExists`] when one is already stored:
    /// replacing it silently would lock the user out of their authenticator app.
    ///
    /// The check and the write are two steps (the keychain has no "create if absent"); this is
    /// run by a person setting up, not concurrently, so the gap does not matter.
    pub fn store(&self, secret: &TotpSecret, overwrite: bool) -> Result<(), SecretError> {
        if !overwrite && self.exists()? {
            return Err(SecretError::AlreadyExists { location: self.describe() });
        }
        self.store_authenticators(&Authenticators::single(secret.clone()))
    }

    /// Writes the whole set of authenticators in place of what is stored (adding or removing one:
    /// the caller read the set, changed it and writes it back, see [`crate::gateway`]).
    pub fn store_authenticators(&self, set: &Authenticators) -> Result<(), SecretError> {
        let encoded = set.encode();
        match self {
            SecretStore::Keychain { .. } => {
                let entry = self.entry()?;
                entry.set_password(&encoded).map_err(|e| self.keychain_error(e, Some(&encoded)))
            }
            SecretStore::File(path) => {
                let mut line = Zeroizing::new(String::with_capacity(encoded.len() + 1));
                line.push_str(&encoded);
                line.push('\n');
                crate::fsutil::write_atomic(path, line.as_bytes()).map_err(|source| SecretError::FileIo { path: path.clone(), source })
            }
        }
    }

    /// Removes the secret. [`SecretError::NotFound`] when there was none.
    pub fn delete(&self) -> Result<(), SecretError> {
        match self {
            SecretStore::Keychain { .. } => self.entry()?.delete_credential().map_err(|e| self.keychain_error(e, None)),
            SecretStore::File(path) => fs::remove_file(path).map_err(|source| {
                if source.kind() == io::ErrorKind::NotFound {
                    SecretError::NotFound { location: self.describe() }
                } else {
                    SecretError::FileIo { path: path.clone(), source }
                }
            }),
        }
    }

    fn entry(&self) -> Result<keyring::Entry, SecretError> {
        let SecretStore::Keychain { service, account } = self else { unreachable!("entry() is only called for the keychain store") };
        keyring::Entry::new(service, account).map_err(|e| self.keychain_error(e, None))
    }

    /// Maps a `keyring` error to ours. `secret` (when storing) is scrubbed from the detail text
    /// in case a platform ever echoes its input.
    fn keychain_error(&self, err: keyring::Error, secret: Option<&str>) -> SecretError {
        match KeychainFailure::from_keyring(err, secret) {
            KeychainFailure::NotFound => SecretError::NotFound { location: self.describe() },
            KeychainFailure::Locked(detail) => SecretError::KeychainLocked { detail },
            KeychainFailure::Unavailable(detail) => SecretError::KeychainUnavailable { detail },
            KeychainFailure::Corrupt(reason) => SecretError::Corrupt { location: self.describe(), reason },
        }
    }
}

/// A keychain failure, sorted by what a person can do about it, before it is put into words for
/// one kind of value (the TOTP secret here, the CA key in [`crate::ca`]).
pub(crate) enum KeychainFailure {
    NotFound,
    /// Locked, or access refused: unlock it, or use a file.
    Locked(String),
    /// No keychain at all (no D-Bus session, no Secret Service): use a file.
    Unavailable(String),
    /// Something is stored but unusable; the reason never contains the stored value.
    Corrupt(String),
}

impl KeychainFailure {
    /// Sorts a `keyring` error. `secret` (when storing) is scrubbed from the detail text in case
    /// a platform ever echoes its input.
    pub(crate) fn from_keyring(err: keyring::Error, secret: Option<&str>) -> KeychainFailure {
        use keyring::Error as K;
        let detail = |inner: &dyn std::fmt::Display| {
            let mut text = inner.to_string();
            if let Some(secret) = secret.filter(|s| !s.is_empty()) {
                text = text.replace(secret, "<redacted>");
            }
            text
        };
        match err {
            K::NoEntry => KeychainFailure::NotFound,
            // Secret Service: the collection is locked and unlocking was refused or impossible
            // (no prompter), or there is no default collection at all.
            K::NoStorageAccess(inner) => KeychainFailure::Locked(detail(&inner)),
            // No D-Bus session, no Secret Service on it, or the platform store failing.
            K::PlatformFailure(inner) => KeychainFailure::Unavailable(detail(&inner)),
            K::BadEncoding(mut bytes) => {
                // These are the stored bytes: wipe them, and never show them.
                bytes.zeroize();
                KeychainFailure::Corrupt("the stored value is not text".to_owned())
            }
            K::Ambiguous(items) => KeychainFailure::Corrupt(format!("{} keychain entries match it; remove the extra ones", items.len())),
            // Invalid/too long service or account names: nothing that works on this platform.
            other => KeychainFailure::Unavailable(detail(&other)),
        }
    }
}

/// Reads a secret file after checking, on the open handle (so the file checked is the file read),
/// that no other user can read or change it.
fn read_private_file(path: &Path, store: &SecretStore) -> Result<Zeroizing<String>, SecretError> {
    read_private_text(path).map_err(|failure| match failure {
        PrivateFileFailure::NotFound => SecretError::NotFound { location: store.describe() },
        PrivateFileFailure::Io(source) => SecretError::FileIo { path: path.to_owned(), source },
        PrivateFileFailure::Permissions { mode } => SecretError::FilePermissions { path: path.to_owned(), mode },
        PrivateFileFailure::Shared { who } => SecretError::FileShared { path: path.to_owned(), who },
        PrivateFileFailure::NotText => SecretError::Corrupt { location: store.describe(), reason: "the file is not text".to_owned() },
    })
}

/// Why a private file could not be read, before it is put into words for one kind of value (the
/// TOTP secret here, the CA key in [`crate::ca`]).
#[derive(Debug)]
pub(crate) enum PrivateFileFailure {
    NotFound,
    Io(io::Error),
    /// Unix: other users may read or write it (the permission bits).
    #[cfg_attr(not(unix), allow(dead_code))]
    Permissions {
        mode: u32,
    },
    /// Windows: the file's access list lets `who` read or change it.
    #[cfg_attr(not(windows), allow(dead_code))]
    Shared {
        who: String,
    },
    /// Not UTF-8 (the bytes are wiped, never shown).
    NotText,
}

/// Reads a file that must be private to its owner, checking that on the open handle (so the file
/// checked is the file read). The text is wiped from memory when dropped.
pub(crate) fn read_private_text(path: &Path) -> Result<Zeroizing<String>, PrivateFileFailure> {
    let io_error = |source: io::Error| {
        if source.kind() == io::ErrorKind::NotFound {
            PrivateFileFailure::NotFound
        } else {
            PrivateFileFailure::Io(source)
        }
    };
    let mut file = File::open(path).map_err(io_error)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata().map_err(io_error)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(PrivateFileFailure::Permissions { mode });
        }
    }
    #[cfg(windows)]
    if let Err(who) = crate::fsutil::check_owner_only(&file) {
        return Err(PrivateFileFailure::Shared { who });
    }
    let mut bytes = Zeroizing::new(Vec::new());
    file.read_to_end(&mut bytes).map_err(io_error)?;
    match String::from_utf8(std::mem::take(&mut *bytes)) {
        Ok(text) => Ok(Zeroizing::new(text)),
        Err(e) => {
            e.into_bytes().zeroize();
            Err(PrivateFileFailure::NotText)
        }
    }
}

#[cfg(test)]
mod tests {
    //! File-store tests run anywhere. Keychain tests talk to the REAL OS keychain; on Linux that
    //! is a Secret Service on the D-Bus session bus, which `scripts/with-keyring.sh` provides:
    //!
    //! ```text
    //! scripts/with-keyring.sh cargo test -p simpleotp-engine --lib secret
    //! ```
    //!
    //! Fault tests re-run this test binary as a child process (one `--exact` test, with
    //! [`CHILD_MODE`] set) in a deliberately broken environment: no bus at all, or a keyring
    //! daemon that is running but locked. The child prints one line per operation, which the
    //! parent checks.

    use super::*;
    #[cfg(target_os = "linux")]
    use std::path::Path;
    #[cfg(target_os = "linux")]
    use std::process::Command;
    #[cfg(target_os = "linux")]
    use std::time::{Duration, Instant};

    // The fault tests in child processes (at the end) need a Secret Service to break: Linux only.
    /// Set in a child process: what the child should do ("store" or "probe").
    #[cfg(target_os = "linux")]
    const CHILD_MODE: &str = "SIMPLEOTP_SECRET_TEST_CHILD";
    #[cfg(target_os = "linux")]
    const CHILD_SERVICE: &str = "SIMPLEOTP_SECRET_TEST_SERVICE";
    #[cfg(target_os = "linux")]
    const CHILD_SECRET: &str = "SIMPLEOTP_SECRET_TEST_SECRET";
    const SKIP_KEYCHAIN: &str = "SIMPLEOTP_SKIP_KEYCHAIN_TESTS";
    /// A child that has not finished by then is killed and the test fails; nothing here may hang.
    #[cfg(target_os = "linux")]
    const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

    fn secret() -> TotpSecret {
        TotpSecret::generate()
    }

    #[cfg(target_os = "linux")]
    fn kind(err: &SecretError) -> &'static str {
        match err {
            SecretError::NotFound { .. } => "NotFound",
            SecretError::AlreadyExists { .. } => "AlreadyExists",
            SecretError::KeychainUnavailable { .. } => "KeychainUnavailable",
            SecretError::KeychainLocked { .. } => "KeychainLocked",
            SecretError::FileIo { .. } => "FileIo",
            SecretError::FilePermissions { .. } => "FilePermissions",
            SecretError::FileShared { .. } => "FileShared",
            SecretError::Corrupt { .. } => "Corrupt",
        }
    }

    /// Neither the secret's base32 nor its raw bytes rendered in any common way may appear.
    fn assert_no_secret(text: &str, secret: &TotpSecret) {
        let b32 = secret.to_base32();
        assert!(!text.contains(&b32), "secret (base32) leaked into: {text}");
        assert!(!text.to_lowercase().contains(&b32.to_lowercase()[..12]), "secret prefix leaked into: {text}");
        assert!(!text.contains(&format!("{:?}", secret.as_bytes())), "secret bytes leaked into: {text}");
        let hex: String = secret.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert!(!text.to_lowercase().contains(&hex), "secret (hex) leaked into: {text}");
    }

    fn assert_error_hides_secret(err: &SecretError, secret: &TotpSecret) {
        assert_no_secret(&err.to_string(), secret);
        assert_no_secret(&format!("{err:?}"), secret);
    }

    // ---------------------------------------------------------------- Debug never shows secrets

    #[test]
    fn debug_of_secret_is_redacted() {
        let s = secret();
        let debug = format!("{s:?} {:#?}", s);
        assert_no_secret(&debug, &s);
        assert!(debug.contains("redacted"), "{debug}");
    }

    #[test]
    fn describe_names_the_location() {
        assert_eq!(SecretStore::keychain().describe(), "the OS keychain (service org.simpleotp.SimpleOTP, account totp-secret)");
        assert_eq!(SecretStore::file("/x/y").describe(), "the file /x/y");
    }

    // ---------------------------------------------------------------------------- file store

    #[test]
    fn file_round_trip_is_one_base32_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/secret.txt");
        let store = SecretStore::file(&path);
        let s = secret();
        assert!(!store.exists().unwrap());
        store.store(&s, false).unwrap();
        assert!(store.exists().unwrap());
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{}\n", s.to_base32()));
        assert_eq!(store.load().unwrap().as_bytes(), s.as_bytes());
    }

    #[test]
    fn file_accepts_a_hand_written_secret() {
        // People paste secrets in groups of four, in lower case, without a trailing newline.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let s = secret();
        let grouped: Vec<String> =
            s.to_base32().to_lowercase().as_bytes().chunks(4).map(|c| String::from_utf8(c.to_vec()).unwrap()).collect();
        crate::fsutil::write_atomic(&path, grouped.join(" ").as_bytes()).unwrap();
        assert_eq!(SecretStore::file(&path).load().unwrap().as_bytes(), s.as_bytes());
    }

    #[cfg(unix)]
    #[test]
    fn file_is_written_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        SecretStore::file(&path).store(&secret(), false).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[cfg(unix)]
    #[test]
    fn group_or_world_accessible_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let store = SecretStore::file(&path);
        let s = secret();
        store.store(&s, false).unwrap();
        for mode in [0o640, 0o604, 0o620] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = store.load().unwrap_err();
            assert!(matches!(err, SecretError::FilePermissions { mode: m, .. } if m == mode), "{err:?}");
            let msg = err.to_string();
            assert!(msg.contains(&format!("chmod 600 {}", path.display())), "{msg}");
            assert_error_hides_secret(&err, &s);
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(store.load().unwrap().as_bytes(), s.as_bytes(), "read-only for the owner is fine");
    }

    /// Windows: the secret file is written private to us (by the same check `load` makes), and
    /// one that Everyone may read is refused with a way out that names it.
    #[cfg(windows)]
    #[test]
    fn file_shared_with_everyone_is_refused_on_windows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let store = SecretStore::file(&path);
        let s = secret();
        store.store(&s, false).unwrap();
        assert_eq!(crate::fsutil::check_owner_only(&File::open(&path).unwrap()), Ok(()));
        crate::fsutil::testing::let_everyone_read(&path);
        let err = store.load().unwrap_err();
        assert!(matches!(&err, SecretError::FileShared { who, .. } if who.contains("Everyone") || who == "S-1-1-0"), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&format!("icacls \"{}\"", path.display())), "{msg}");
        assert_error_hides_secret(&err, &s);
        // Stored again (overwriting), it is a new private file.
        store.store(&s, true).unwrap();
        assert_eq!(store.load().unwrap().as_bytes(), s.as_bytes());
    }

    #[test]
    fn corrupt_file_names_the_file_not_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let store = SecretStore::file(&path);
        // Not base32 (lots of it looks like a secret, so an echo would be caught), too short, binary.
        let contents: [&[u8]; 4] = [b"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP!\n", b"JBSWY3DPEHPK3PXP\n", b"\xff\xfeJBSWY3DP\x00", b""];
        for content in contents {
            crate::fsutil::write_atomic(&path, content).unwrap();
            let err = store.load().unwrap_err();
            assert!(matches!(err, SecretError::Corrupt { .. }), "{err:?}");
            let shown = format!("{err} {err:?}");
            assert!(shown.contains(&path.display().to_string()), "{shown}");
            assert!(!shown.contains("JBSWY3DP"), "content echoed: {shown}");
            // Something is there, so it must not be overwritten without asking.
            assert!(store.exists().unwrap());
            assert!(matches!(store.store(&secret(), false), Err(SecretError::AlreadyExists { .. })));
        }
    }

    #[test]
    fn missing_file_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecretStore::file(dir.path().join("nope"));
        assert!(matches!(store.load(), Err(SecretError::NotFound { .. })));
        assert!(!store.exists().unwrap());
        assert!(matches!(store.delete(), Err(SecretError::NotFound { .. })));
    }

    #[test]
    fn file_already_exists_unless_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecretStore::file(dir.path().join("secret"));
        let (first, second) = (secret(), secret());
        store.store(&first, false).unwrap();
        let err = store.store(&second, false).unwrap_err();
        assert!(matches!(err, SecretError::AlreadyExists { .. }), "{err:?}");
        assert_error_hides_secret(&err, &first);
        assert_error_hides_secret(&err, &second);
        assert_eq!(store.load().unwrap().as_bytes(), first.as_bytes(), "the first secret is untouched");
        store.store(&second, true).unwrap();
        assert_eq!(store.load().unwrap().as_bytes(), second.as_bytes());
        store.delete().unwrap();
        assert!(matches!(store.load(), Err(SecretError::NotFound { .. })));
    }

    #[test]
    fn unreadable_path_is_file_io() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be.
        let err = SecretStore::file(dir.path()).load().unwrap_err();
        assert!(matches!(err, SecretError::FileIo { .. } | SecretError::FilePermissions { .. }), "{err:?}");
    }

    // ------------------------------------------------------------------ real keychain (gated)

    /// Whether keychain tests should run. They FAIL outside a session with a Secret Service
    /// rather than pass silently, unless the skip is asked for explicitly.
    fn keychain_tests_enabled(test: &str) -> bool {
        if keychain_tests_skipped(test) {
            return false;
        }
        if cfg!(target_os = "linux") && std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
            panic!(
                "{test} needs a Secret Service on a D-Bus session bus, and DBUS_SESSION_BUS_ADDRESS is \
                 not set. Run the tests through `scripts/with-keyring.sh cargo test ...` (a throw-away \
                 unlocked GNOME keyring), or set {SKIP_KEYCHAIN}=1 to skip the keychain tests."
            );
        }
        true
    }

    /// Whether keychain tests were explicitly turned off (and says so).
    fn keychain_tests_skipped(test: &str) -> bool {
        let skipped = std::env::var(SKIP_KEYCHAIN).as_deref() == Ok("1");
        if skipped {
            eprintln!("{test}: SKIPPED: {SKIP_KEYCHAIN}=1");
        }
        skipped
    }

    /// A keychain entry unique to this process and test, deleted when dropped (even on panic).
    struct TestEntry(SecretStore);

    impl TestEntry {
        fn new(test: &str) -> TestEntry {
            TestEntry(SecretStore::Keychain {
                service: format!("org.simpleotp.test.{}.{test}", std::process::id()),
                account: KEYCHAIN_ACCOUNT.to_owned(),
            })
        }
    }

    impl Drop for TestEntry {
        fn drop(&mut self) {
            let _ = self.0.delete();
        }
    }

    #[test]
    fn keychain_round_trip_exists_overwrite_delete() {
        if !keychain_tests_enabled("keychain_round_trip_exists_overwrite_delete") {
            return;
        }
        let entry = TestEntry::new("round_trip");
        let store = &entry.0;
        let (first, second) = (secret(), secret());

        assert!(!store.exists().unwrap());
        assert!(matches!(store.load(), Err(SecretError::NotFound { .. })));

        store.store(&first, false).unwrap();
        assert!(store.exists().unwrap());
        assert_eq!(store.load().unwrap().as_bytes(), first.as_bytes());

        let err = store.store(&second, false).unwrap_err();
        assert!(matches!(err, SecretError::AlreadyExists { .. }), "{err:?}");
        assert!(err.to_string().contains("org.simpleotp.test."), "{err}");
        assert_error_hides_secret(&err, &first);
        assert_error_hides_secret(&err, &second);
        assert_eq!(store.load().unwrap().as_bytes(), first.as_bytes(), "not replaced without overwrite");

        store.store(&second, true).unwrap();
        assert_eq!(store.load().unwrap().as_bytes(), second.as_bytes());

        store.delete().unwrap();
        assert!(!store.exists().unwrap());
        let err = store.load().unwrap_err();
        assert!(matches!(err, SecretError::NotFound { .. }), "{err:?}");
        assert!(matches!(store.delete(), Err(SecretError::NotFound { .. })));
    }

    #[test]
    fn keychain_entries_are_separate() {
        if !keychain_tests_enabled("keychain_entries_are_separate") {
            return;
        }
        let (a, b) = (TestEntry::new("separate_a"), TestEntry::new("separate_b"));
        let (sa, sb) = (secret(), secret());
        a.0.store(&sa, false).unwrap();
        b.0.store(&sb, false).unwrap();
        assert_eq!(a.0.load().unwrap().as_bytes(), sa.as_bytes());
        assert_eq!(b.0.load().unwrap().as_bytes(), sb.as_bytes());
    }

    #[test]
    fn keychain_entry_with_garbage_is_corrupt() {
        if !keychain_tests_enabled("keychain_entry_with_garbage_is_corrupt") {
            return;
        }
        let entry = TestEntry::new("garbage");
        let SecretStore::Keychain { service, account } = &entry.0 else { unreachable!() };
        // Something else (an older tool, a person) wrote a value that is not a secret.
        keyring::Entry::new(service, account).unwrap().set_password("JBSWY3DPEHPK3PXP-not!base32").unwrap();
        let err = entry.0.load().unwrap_err();
        assert!(matches!(err, SecretError::Corrupt { .. }), "{err:?}");
        assert!(!format!("{err} {err:?}").contains("JBSWY3DP"), "{err:?}");
        assert!(entry.0.exists().unwrap());
    }

    // ------------------------------------------------------- fault tests, in child processes

    /// If this process is a fault-test child, does the keychain operations it was asked for,
    /// prints one `CHILD <op> <outcome>` line each, and returns true (the test body then returns).
    #[cfg(target_os = "linux")]
    fn run_child_if_requested() -> bool {
        let Ok(mode) = std::env::var(CHILD_MODE) else {
            return false;
        };
        let store = SecretStore::Keychain {
            service: std::env::var(CHILD_SERVICE).expect("child needs a service name"),
            account: KEYCHAIN_ACCOUNT.to_owned(),
        };
        let s = TotpSecret::from_base32(&std::env::var(CHILD_SECRET).expect("child needs a secret")).unwrap();
        let report = |op: &str, result: Result<String, SecretError>| match result {
            Ok(what) => println!("CHILD {op} ok {what}"),
            // Display and Debug both, so the parent can check neither leaks the secret.
            Err(e) => println!("CHILD {op} {} {e} | {e:?}", kind(&e)),
        };
        match mode.as_str() {
            "store" => report("store", store.store(&s, false).map(|()| String::new())),
            "probe" => {
                report("store", store.store(&s, true).map(|()| String::new()));
                report("load", store.load().map(|_| "<loaded>".to_owned()));
                report("exists", store.exists().map(|e| e.to_string()));
                report("delete", store.delete().map(|()| String::new()));
            }
            other => panic!("unknown {CHILD_MODE} {other}"),
        }
        true
    }

    /// The `--exact` name of a test in this module.
    #[cfg(target_os = "linux")]
    fn test_path(name: &str) -> String {
        let module = module_path!().split_once("::").map_or(module_path!(), |(_, rest)| rest);
        format!("{module}::{name}")
    }

    /// Runs `command` (whose environment the caller set up), killing it and its process group
    /// after [`CHILD_TIMEOUT`]. Returns stdout + stderr.
    #[cfg(target_os = "linux")]
    fn run_with_timeout(mut command: Command, what: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
        command
            .stdin(std::process::Stdio::null())
            .stdout(File::create(&out_path).unwrap())
            .stderr(File::create(&err_path).unwrap())
            // No prompter window may appear: it would wait for a click.
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY");
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > CHILD_TIMEOUT {
                #[cfg(unix)]
                // SAFETY: kill(2) with the child's own process group id; no memory is involved.
                unsafe {
                    libc::kill(-(child.id() as i32), libc::SIGKILL);
                }
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{what} did not finish within {CHILD_TIMEOUT:?}: killed.\nstdout:\n{}\nstderr:\n{}",
                    fs::read_to_string(&out_path).unwrap_or_default(),
                    fs::read_to_string(&err_path).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let output =
            format!("{}\n{}", fs::read_to_string(&out_path).unwrap_or_default(), fs::read_to_string(&err_path).unwrap_or_default());
        assert!(status.success(), "{what} failed ({status}):\n{output}");
        output
    }

    /// A command that re-runs `test` in this binary as a child doing `mode`.
    #[cfg(target_os = "linux")]
    fn child_command(program: &Path, test: &str, mode: &str, service: &str, s: &TotpSecret) -> Command {
        let mut command = crate::child::command(program);
        command
            .args(["--exact", &test_path(test), "--nocapture", "--test-threads=1"])
            .env(CHILD_MODE, mode)
            .env(CHILD_SERVICE, service)
            .env(CHILD_SECRET, s.to_base32())
            .env_remove(SKIP_KEYCHAIN);
        command
    }

    /// The `CHILD <op> …` lines of a child's output, as (op, outcome kind, rest).
    #[cfg(target_os = "linux")]
    fn child_results(output: &str) -> Vec<(String, String, String)> {
        output
            .lines()
            // The test harness prints "test … ... " before the child's first line.
            .filter_map(|l| l.find("CHILD ").map(|i| &l[i + "CHILD ".len()..]))
            .map(|l| {
                let mut parts = l.splitn(3, ' ');
                let op = parts.next().unwrap_or_default().to_owned();
                let kind = parts.next().unwrap_or_default().to_owned();
                (op, kind, parts.next().unwrap_or_default().to_owned())
            })
            .collect()
    }

    /// Every operation of a probe failed with one of `kinds`, naming --secret-file, leaking nothing.
    #[cfg(target_os = "linux")]
    fn assert_probe_failed(output: &str, kinds: &[&str], s: &TotpSecret, what: &str) {
        let results = child_results(output);
        let ops: Vec<&str> = results.iter().map(|(op, ..)| op.as_str()).collect();
        assert_eq!(ops, ["store", "load", "exists", "delete"], "{what}: unexpected child output:\n{output}");
        for (op, kind, message) in &results {
            assert!(kinds.contains(&kind.as_str()), "{what}: {op} gave {kind}, expected one of {kinds:?}:\n{output}");
            assert!(message.contains("--secret-file PATH"), "{what}: {op} gives no file hint: {message}");
        }
        assert_no_secret(output, s);
    }

    #[cfg(target_os = "linux")]
    fn have(tool: &str) -> bool {
        crate::child::command("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success())
    }

    /// (a) No Secret Service at all: the session bus address points nowhere, or there is none.
    #[cfg(target_os = "linux")]
    #[test]
    fn keychain_without_secret_service_is_unavailable() {
        if run_child_if_requested() {
            return;
        }
        let exe = std::env::current_exe().unwrap();
        let s = secret();
        let service = format!("org.simpleotp.test.{}.nobus", std::process::id());
        let test = "keychain_without_secret_service_is_unavailable";

        let mut nowhere = child_command(&exe, test, "probe", &service, &s);
        nowhere.env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent");
        let output = run_with_timeout(nowhere, "child with a bus address that points nowhere");
        assert_probe_failed(&output, &["KeychainUnavailable"], &s, "bus address points nowhere");
        assert!(output.contains("No OS keychain is available"), "{output}");

        // No address at all (a login over ssh): libdbus may try X11 autolaunch, which has no
        // display to use.
        let mut unset = child_command(&exe, test, "probe", &service, &s);
        unset.env_remove("DBUS_SESSION_BUS_ADDRESS").env("XDG_RUNTIME_DIR", "/nonexistent");
        let output = run_with_timeout(unset, "child without a session bus");
        assert_probe_failed(&output, &["KeychainUnavailable"], &s, "no bus address");
    }

    /// (b) A Secret Service that is running but locked: gnome-keyring in its own D-Bus session,
    /// with a password-protected login keyring that nobody unlocked. With no display, its unlock
    /// prompter cannot start and the prompt is dismissed at once, which is what a headless server
    /// sees; the child timeout guards against a prompter that would wait instead. Also the state
    /// before any keyring was ever created (daemon started, no login collection at all).
    #[cfg(target_os = "linux")]
    #[test]
    fn locked_keychain_is_reported_with_file_hint() {
        if run_child_if_requested() {
            return;
        }
        // Needs no session bus of its own (it makes its own), only the tools.
        if keychain_tests_skipped("locked_keychain_is_reported_with_file_hint") {
            return;
        }
        for tool in ["dbus-run-session", "dbus-send", "gnome-keyring-daemon"] {
            assert!(have(tool), "{tool} is needed (apt-get install dbus-daemon gnome-keyring), or set {SKIP_KEYCHAIN}=1");
        }
        let exe = std::env::current_exe().unwrap();
        let test = "locked_keychain_is_reported_with_file_hint";
        let s = secret();
        let service = format!("org.simpleotp.test.{}.locked", std::process::id());
        let keyrings = tempfile::tempdir().unwrap();

        // Shell run inside each session: start the daemon ($1 = "unlock" or "start"), wait for
        // it to own its bus name, then run the child test binary ("$@" after the mode).
        const SESSION: &str = r#"
            mode=$1; shift
            if [ "$mode" = unlock ]; then
                echo -n test-password | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1
            else
                gnome-keyring-daemon --start --components=secrets >/dev/null 2>&1
            fi
            for _ in $(seq 100); do
                dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
                    org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null |
                    grep -q 'boolean true' && break
                sleep 0.1
            done
            "$@"
        "#;
        let in_session = |mode: &str, child_mode: &str| {
            let inner = child_command(&exe, test, child_mode, &service, &s);
            let mut command = crate::child::command("dbus-run-session");
            command
                .args(["--", "sh", "-c", SESSION, "sh", mode])
                .arg(inner.get_program())
                .args(inner.get_args())
                .envs(inner.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
                .env("XDG_DATA_HOME", keyrings.path());
            command
        };

        // Never created: no login keyring on disk, daemon started but never unlocked.
        let output = run_with_timeout(in_session("start", "probe"), "child with a keyring never created");
        assert!(!keyrings.path().join("keyrings/login.keyring").exists(), "{output}");
        assert_probe_failed(&output, &["KeychainLocked", "KeychainUnavailable"], &s, "no login keyring");

        // Create the login keyring with a password and put our entry in it...
        let output = run_with_timeout(in_session("unlock", "store"), "child storing into an unlocked keyring");
        assert_eq!(child_results(&output).first().map(|r| r.1.as_str()), Some("ok"), "{output}");
        assert!(keyrings.path().join("keyrings/login.keyring").exists(), "{output}");

        // ...then, in a new session, start the daemon without unlocking it.
        let output = run_with_timeout(in_session("start", "probe"), "child with a locked keyring");
        assert_probe_failed(&output, &["KeychainLocked", "KeychainUnavailable"], &s, "locked keyring");
        println!("locked keyring, as the child saw it:\n{output}");
    }
}
