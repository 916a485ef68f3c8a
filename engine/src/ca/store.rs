//! Where the local CA lives: its private key where the TOTP secret is kept, its certificate in
//! the data directory.
//!
//! The key goes where the person already chose to keep the TOTP secret ([`CaStore::beside`]):
//! in the OS keychain (same service as the secret, account [`KEYCHAIN_CA_ACCOUNT`]) by default,
//! or, on a server started with `--secret-file PATH`, in a 0600 file next to it
//! (`PATH.ca-key.pem`), refused on load if other users could read it. Both hold the key as a
//! PKCS#8 PEM block. The certificate is public and lives in the data directory
//! ([`CERTIFICATE_FILE`]); it is never put in the config.
//!
//! Key and certificate are written as two steps; if only one of them is found later (a crash
//! between the two, a data directory restored without the keychain), loading says so and points
//! at `simpleotp ca rotate` rather than quietly making a new CA that devices do not trust.
//!
//! Keychain operations block (see [`crate::secret`]): call [`load_or_create`] and [`rotate`]
//! from `spawn_blocking` in async code.

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, LineEnding};
use zeroize::Zeroizing;

use super::{CaCertificate, CaError, CertificateAuthority, MachineNames, PartsError};
use crate::secret::{read_private_text, KeychainFailure, PrivateFileFailure, SecretStore};

/// Keychain account (user) name of the CA's private key, under the TOTP secret's service.
pub const KEYCHAIN_CA_ACCOUNT: &str = "ca-private-key";
/// The CA certificate's file name in the data directory.
pub const CERTIFICATE_FILE: &str = "ca-certificate.pem";
/// Beside it: every CA certificate this data directory had before (a PEM bundle), for the sweep.
pub const PREVIOUS_FILE: &str = "ca-previous.pem";
/// Appended to the secret file's name for the CA key file beside it.
const KEY_FILE_SUFFIX: &str = ".ca-key.pem";

/// Where the CA's key and certificate are kept. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaStore {
    /// The key in the OS keychain; the certificate in a file.
    Keychain { service: String, account: String, certificate: PathBuf },
    /// The key in a 0600 file at `path`; the certificate in a file.
    File { path: PathBuf, certificate: PathBuf },
}

impl CaStore {
    /// The CA's store that goes with the TOTP secret's: the keychain for a keychain secret, a
    /// file next to a secret file; the certificate in `data_dir`.
    pub fn beside(secret: &SecretStore, data_dir: &Path) -> CaStore {
        let certificate = data_dir.join(CERTIFICATE_FILE);
        match secret {
            SecretStore::Keychain { service, .. } => {
                CaStore::Keychain { service: service.clone(), account: KEYCHAIN_CA_ACCOUNT.to_owned(), certificate }
            }
            SecretStore::File(path) => {
                let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "secret".into());
                name.push(KEY_FILE_SUFFIX);
                CaStore::File { path: path.with_file_name(name), certificate }
            }
        }
    }

    /// Where the CA certificate is kept.
    pub fn certificate_path(&self) -> &Path {
        match self {
            CaStore::Keychain { certificate, .. } | CaStore::File { certificate, .. } => certificate,
        }
    }

    /// The stored CA certificate alone, without touching the key (no keychain access, so no
    /// unlock prompt): for showing the fingerprint and serving the CA page. `None` when there is
    /// none yet. It is not checked against the key; [`load_or_create`] does that.
    pub fn stored_certificate(&self) -> Result<Option<CaCertificate>, CaError> {
        let Some(der) = self.read_certificate()? else { return Ok(None) };
        CaCertificate::from_der(der)
            .map(Some)
            .map_err(|reason| CaError::CorruptCertificate { path: self.certificate_path().to_owned(), reason })
    }

    /// Where the key is, in words, for messages.
    pub fn describe_key(&self) -> String {
        match self {
            CaStore::Keychain { service, account, .. } => format!("the OS keychain (service {service}, account {account})"),
            CaStore::File { path, .. } => format!("the file {}", path.display()),
        }
    }

    /// Every CA certificate this data directory had before the current one, oldest first, from
    /// [`PREVIOUS_FILE`] (none when it does not exist): what the tray sweeps from the stores it
    /// added them to. A damaged file is an error that names it (the gateway still starts: the
    /// list is only read to clean up).
    pub fn previous_certificates(&self) -> Result<Vec<CaCertificate>, CaError> {
        let path = self.previous_path();
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(CaError::FileIo { path, source }),
        };
        let corrupt = |reason: String| CaError::CorruptCertificate { path: path.clone(), reason };
        let blocks = pem::parse_many(&text).map_err(|e| corrupt(format!("it is not a PEM bundle ({e}); delete it")))?;
        if blocks.is_empty() && !text.iter().all(u8::is_ascii_whitespace) {
            return Err(corrupt("it holds no complete certificate; delete it".into()));
        }
        // The parser skips a block it cannot finish (one cut short by a crash or a full disk):
        // count the blocks begun, so a lost certificate is an error, not one CA fewer to sweep.
        let begun = text.windows(b"-----BEGIN ".len()).filter(|w| w == b"-----BEGIN ").count();
        if begun != blocks.len() {
            return Err(corrupt(format!("only {} of its {begun} blocks can be read; delete it", blocks.len())));
        }
        blocks
            .into_iter()
            .filter(|b| b.tag() == "CERTIFICATE")
            .map(|b| CaCertificate::from_der(b.into_contents()).map_err(|e| corrupt(format!("{e}; delete it"))))
            .collect()
    }

    fn previous_path(&self) -> PathBuf {
        self.certificate_path().with_file_name(PREVIOUS_FILE)
    }

    /// Appends `old` to [`PREVIOUS_FILE`] (once).
    fn remember_previous(&self, old: &CaCertificate) -> Result<(), CaError> {
        let path = self.previous_path();
        let mut known = match self.previous_certificates() {
            Ok(known) => known,
            Err(e) => {
                // Set aside, not overwritten: the certificates in it may still be trusted somewhere.
                let aside = path.with_extension("pem.damaged");
                tracing::warn!("{e}; it is kept as {} and a new list is started", aside.display());
                let _ = std::fs::rename(&path, &aside);
                Vec::new()
            }
        };
        if known.iter().any(|c| c.fingerprint() == old.fingerprint()) {
            return Ok(());
        }
        known.push(old.clone());
        let bundle: String = known.iter().map(CaCertificate::pem).collect();
        crate::fsutil::write_atomic(&path, bundle.as_bytes()).map_err(|source| CaError::FileIo { path, source })
    }

    /// The stored key's PEM, `None` when there is none.
    fn read_key(&self) -> Result<Option<Zeroizing<String>>, CaError> {
        match self {
            CaStore::Keychain { .. } => match self.entry()?.get_password() {
                Ok(text) => Ok(Some(Zeroizing::new(text))),
                Err(e) => match KeychainFailure::from_keyring(e, None) {
                    KeychainFailure::NotFound => Ok(None),
                    other => Err(self.keychain_error(other)),
                },
            },
            CaStore::File { path, .. } => match read_private_text(path) {
                Ok(text) => Ok(Some(text)),
                Err(PrivateFileFailure::NotFound) => Ok(None),
                Err(PrivateFileFailure::Io(source)) => Err(CaError::FileIo { path: path.clone(), source }),
                Err(PrivateFileFailure::Permissions { mode }) => Err(CaError::FilePermissions { path: path.clone(), mode }),
                Err(PrivateFileFailure::Shared { who }) => Err(CaError::FileShared { path: path.clone(), who }),
                Err(PrivateFileFailure::NotText) => {
                    Err(CaError::CorruptKey { location: self.describe_key(), reason: "the file is not text".into() })
                }
            },
        }
    }

    fn write_key(&self, pem: &str) -> Result<(), CaError> {
        match self {
            CaStore::Keychain { .. } => {
                self.entry()?.set_password(pem).map_err(|e| self.keychain_error(KeychainFailure::from_keyring(e, Some(pem))))
            }
            CaStore::File { path, .. } => {
                crate::fsutil::write_atomic(path, pem.as_bytes()).map_err(|source| CaError::FileIo { path: path.clone(), source })
            }
        }
    }

    /// Removes the key, if there is one (undoing a half-made CA).
    fn remove_key(&self) {
        let _ = match self {
            CaStore::Keychain { .. } => self.entry().ok().map(|entry| entry.delete_credential().is_ok()),
            CaStore::File { path, .. } => Some(std::fs::remove_file(path).is_ok()),
        };
    }

    /// The certificate's DER, `None` when there is no file.
    fn read_certificate(&self) -> Result<Option<Vec<u8>>, CaError> {
        let path = self.certificate_path();
        let text = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CaError::FileIo { path: path.to_owned(), source }),
        };
        let corrupt = |reason: &str| CaError::CorruptCertificate { path: path.to_owned(), reason: reason.to_owned() };
        let block = pem::parse(&text).map_err(|_| corrupt("it is not a PEM certificate"))?;
        if block.tag() != "CERTIFICATE" {
            return Err(corrupt("it is not a PEM certificate"));
        }
        Ok(Some(block.into_contents()))
    }

    fn write_certificate(&self, ca: &CertificateAuthority) -> Result<(), CaError> {
        let path = self.certificate_path();
        crate::fsutil::write_atomic(path, ca.certificate_pem().as_bytes())
            .map_err(|source| CaError::FileIo { path: path.to_owned(), source })
    }

    fn entry(&self) -> Result<keyring::Entry, CaError> {
        let CaStore::Keychain { service, account, .. } = self else { unreachable!("entry() is only called for the keychain store") };
        keyring::Entry::new(service, account).map_err(|e| self.keychain_error(KeychainFailure::from_keyring(e, None)))
    }

    pub(super) fn keychain_error(&self, failure: KeychainFailure) -> CaError {
        match failure {
            KeychainFailure::Locked(detail) => CaError::KeychainLocked { detail },
            KeychainFailure::Unavailable(detail) => CaError::KeychainUnavailable { detail },
            KeychainFailure::Corrupt(reason) => CaError::CorruptKey { location: self.describe_key(), reason },
            KeychainFailure::NotFound => CaError::KeyMissing { key: self.describe_key(), certificate: self.certificate_path().to_owned() },
        }
    }

    /// The stored CA, `None` when neither key nor certificate is there.
    fn load(&self) -> Result<Option<CertificateAuthority>, CaError> {
        let key = self.read_key()?;
        let certificate = self.read_certificate()?;
        let (key, certificate) = match (key, certificate) {
            (None, None) => return Ok(None),
            (Some(key), Some(certificate)) => (key, certificate),
            (None, Some(_)) => {
                return Err(CaError::KeyMissing { key: self.describe_key(), certificate: self.certificate_path().to_owned() })
            }
            (Some(_), None) => {
                return Err(CaError::CertificateMissing { key: self.describe_key(), certificate: self.certificate_path().to_owned() })
            }
        };
        // The parse error names the problem, never the input.
        let key = p256::ecdsa::SigningKey::from_pkcs8_pem(key.trim()).map_err(|_| CaError::CorruptKey {
            location: self.describe_key(),
            reason: "it is not a P-256 private key in PKCS#8 PEM".into(),
        })?;
        match CertificateAuthority::from_parts(key, certificate) {
            Ok(ca) => Ok(Some(ca)),
            Err(PartsError::Mismatch) => {
                Err(CaError::Mismatch { key: self.describe_key(), certificate: self.certificate_path().to_owned() })
            }
            Err(PartsError::Certificate(reason)) => Err(CaError::CorruptCertificate { path: self.certificate_path().to_owned(), reason }),
        }
    }

    /// Stores `ca`, replacing what was there: the key first, then the certificate (see the
    /// module docs for a failure in between).
    pub(super) fn save(&self, ca: &CertificateAuthority) -> Result<(), CaError> {
        let pem = ca.key.to_pkcs8_pem(LineEnding::LF).map_err(|e| CaError::Signing(e.to_string()))?;
        self.write_key(&pem)?;
        self.write_certificate(ca)
    }
}

/// The stored CA, or a new one for `machine` when none is stored yet (made and stored now).
/// Blocking (keychain). A stored CA whose name constraints no longer cover the machine's names
/// (it was renamed) is still returned, with a warning in the log: [`rotate`] makes one that does.
///
/// A stored CA of the form made before security round 3 (see [`CertificateAuthority::has_current_form`])
/// is replaced by a new one here, once: its certificate is kept in [`PREVIOUS_FILE`] so that the
/// tray can take it out of the stores it put it in, and the log says so with both fingerprints.
pub fn load_or_create(store: &CaStore, machine: &MachineNames) -> Result<CertificateAuthority, CaError> {
    if let Some(ca) = store.load()? {
        if !ca.has_current_form() {
            let renewed = rotate(store, machine)?;
            tracing::warn!(
                "renewed the local CA: the old one ({}) could also have vouched for e-mail, client and code-signing certificates;                  the new one ({}) can only vouch for this machine's websites. Devices that trusted the old one need the new one.",
                ca.fingerprint(),
                renewed.fingerprint()
            );
            return Ok(renewed);
        }
        if let Some(name) = machine.names().iter().find(|n| !ca.permits_name(n)) {
            tracing::warn!(
                "the local CA cannot vouch for this machine's name {name} (it was made for {}); `simpleotp ca rotate` makes a new one",
                ca.permitted_names().join(", ")
            );
        }
        return Ok(ca);
    }
    let ca = CertificateAuthority::generate(machine, SystemTime::now())?;
    if let Err(e) = store.save(&ca) {
        // Leave nothing half-made behind: the next try starts from scratch.
        store.remove_key();
        return Err(e);
    }
    tracing::info!("made a new local CA for {} (SHA-256 fingerprint {})", ca.permitted_names().join(", "), ca.fingerprint());
    Ok(ca)
}

/// Makes a new CA for `machine` and stores it in place of the old one, whatever state that was
/// in (this is also the way out of a corrupt or half-stored CA). Devices that trusted the old CA
/// no longer accept the leaves of the new one until they trust it too, and should remove the old
/// one. Blocking (keychain).
pub fn rotate(store: &CaStore, machine: &MachineNames) -> Result<CertificateAuthority, CaError> {
    let ca = CertificateAuthority::generate(machine, SystemTime::now())?;
    // The old certificate is remembered first: if saving the new CA fails, the worst case is an
    // entry for a CA that is still current (the sweep skips the current one).
    if let Ok(Some(old)) = store.stored_certificate() {
        store.remember_previous(&old)?;
    }
    store.save(&ca)?;
    tracing::info!("made a new local CA for {} (SHA-256 fingerprint {})", ca.permitted_names().join(", "), ca.fingerprint());
    Ok(ca)
}
