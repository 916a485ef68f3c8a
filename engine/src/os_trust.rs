//! Windows: SimpleOTP's CA in the current user's certificate stores, trusted for TLS servers
//! only. `certutil -addstore Root` trusts a root for every purpose (code signing, e-mail,
//! client authentication); here the certificate goes in with its enhanced-key-usage property
//! (`CERT_ENHKEY_USAGE_PROP_ID`) set to server authentication alone, which Windows' chain engine
//! intersects with every other use, so even a certificate the CA's key signed for code signing
//! does not chain to a trusted root for that use. Windows still shows its own warning for adding
//! a root; that prompt is the point and nothing here avoids it.
//!
//! Entries are found by the SHA-256 of their encoded bytes (the fingerprint the tray shows),
//! never by name. The functions take the store's name so the tests use a store of their own
//! (`Root` would open Windows' prompt in a test); the tray passes [`ROOT`]. They run under Wine
//! (which implements crypt32) through `scripts/wine-test.sh`.
//!
//! The crate builds this module on every OS (the error type and the encoding are plain data);
//! only the store calls are `cfg(windows)`.

/// The current user's trusted roots.
pub const ROOT: &str = "Root";

/// `SEQUENCE { OBJECT IDENTIFIER 1.3.6.1.5.5.7.3.1 }`: the DER of an enhanced-key-usage list
/// holding server authentication alone, the value of `CERT_ENHKEY_USAGE_PROP_ID`.
pub const SERVER_AUTH_ONLY: [u8; 12] = [0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];

/// The OID of server authentication, as Windows lists it.
pub const SERVER_AUTH_OID: &str = "1.3.6.1.5.5.7.3.1";

/// Why a store could not be changed or read.
#[derive(Debug, thiserror::Error)]
pub enum OsTrustError {
    #[error("You said No to Windows' prompt, so nothing was changed.")]
    Cancelled,
    #[error("Windows could not {action} (error {code:#010x}).")]
    Windows { action: &'static str, code: u32 },
}

#[cfg(windows)]
pub use imp::{add_for_server_auth, contains, enhanced_key_usage, remove};

#[cfg(windows)]
mod imp {
    use std::ptr::{null, null_mut};

    use windows_sys::Win32::Foundation::GetLastError;
    use windows_sys::Win32::Security::Cryptography::{
        CertAddCertificateContextToStore, CertCloseStore, CertCreateCertificateContext, CertDeleteCertificateFromStore,
        CertDuplicateCertificateContext, CertEnumCertificatesInStore, CertFreeCertificateContext, CertGetEnhancedKeyUsage, CertOpenStore,
        CertSetCertificateContextProperty, CERT_CONTEXT, CERT_ENHKEY_USAGE_PROP_ID, CERT_FIND_PROP_ONLY_ENHKEY_USAGE_FLAG,
        CERT_STORE_ADD_REPLACE_EXISTING, CERT_STORE_PROV_SYSTEM_W, CERT_SYSTEM_STORE_CURRENT_USER, CRYPT_INTEGER_BLOB, CTL_USAGE,
        HCERTSTORE, PKCS_7_ASN_ENCODING, X509_ASN_ENCODING,
    };

    use super::{OsTrustError, SERVER_AUTH_ONLY};
    use crate::ca::Fingerprint;

    /// HRESULT_FROM_WIN32(ERROR_CANCELLED): the person answered No to the root-store warning.
    const CANCELLED: u32 = 0x800704C7;
    const ERROR_CANCELLED: u32 = 1223;

    fn last_error(action: &'static str) -> OsTrustError {
        let code = unsafe { GetLastError() };
        if code == CANCELLED || code == ERROR_CANCELLED {
            OsTrustError::Cancelled
        } else {
            OsTrustError::Windows { action, code }
        }
    }

    /// A current-user system store, closed when dropped.
    struct Store(HCERTSTORE);

    impl Store {
        fn open(name: &str) -> Result<Store, OsTrustError> {
            let wide: Vec<u16> = name.encode_utf16().chain([0]).collect();
            // SAFETY: the name is a NUL-terminated UTF-16 string alive for the call.
            let handle = unsafe { CertOpenStore(CERT_STORE_PROV_SYSTEM_W, 0, 0, CERT_SYSTEM_STORE_CURRENT_USER, wide.as_ptr().cast()) };
            if handle.is_null() {
                return Err(last_error("open the certificate store"));
            }
            Ok(Store(handle))
        }

        /// The first entry whose encoded bytes hash to `fingerprint` (a context the caller owns).
        fn find(&self, fingerprint: &Fingerprint) -> Option<*const CERT_CONTEXT> {
            let mut current: *const CERT_CONTEXT = null();
            loop {
                // SAFETY: `current` is null or the context the previous call returned, which
                // this call frees.
                current = unsafe { CertEnumCertificatesInStore(self.0, current) };
                if current.is_null() {
                    return None;
                }
                // SAFETY: a context from the store holds its encoded bytes.
                let der = unsafe { std::slice::from_raw_parts((*current).pbCertEncoded, (*current).cbCertEncoded as usize) };
                if Fingerprint::of_der(der) == *fingerprint {
                    // SAFETY: the enumeration stops here; the duplicate is the caller's.
                    let found = unsafe { CertDuplicateCertificateContext(current) };
                    unsafe { CertFreeCertificateContext(current) };
                    return Some(found);
                }
            }
        }
    }

    impl Drop for Store {
        fn drop(&mut self) {
            // SAFETY: the handle came from CertOpenStore and is closed once.
            unsafe { CertCloseStore(self.0, 0) };
        }
    }

    /// Adds the certificate (DER) to the current user's store `store`, with its enhanced key
    /// usage limited to server authentication. Replaces an entry with the same bytes (and so
    /// narrows one that `certutil -addstore` trusted for everything).
    pub fn add_for_server_auth(store: &str, der: &[u8]) -> Result<(), OsTrustError> {
        let store = Store::open(store)?;
        // SAFETY: `der` is alive for the call; the context is freed below.
        let context = unsafe { CertCreateCertificateContext(X509_ASN_ENCODING | PKCS_7_ASN_ENCODING, der.as_ptr(), der.len() as u32) };
        if context.is_null() {
            return Err(last_error("read the certificate"));
        }
        let mut usage = SERVER_AUTH_ONLY;
        let blob = CRYPT_INTEGER_BLOB { cbData: usage.len() as u32, pbData: usage.as_mut_ptr() };
        // SAFETY: the blob points at `usage`, alive for the call (crypt32 copies it).
        let result = if unsafe {
            CertSetCertificateContextProperty(context, CERT_ENHKEY_USAGE_PROP_ID, 0, (&blob as *const CRYPT_INTEGER_BLOB).cast())
        } == 0
        {
            Err(last_error("limit the certificate to websites"))
        } else if unsafe { CertAddCertificateContextToStore(store.0, context, CERT_STORE_ADD_REPLACE_EXISTING, null_mut()) } == 0 {
            Err(last_error("add the certificate"))
        } else {
            Ok(())
        };
        unsafe { CertFreeCertificateContext(context) };
        result
    }

    /// Whether the store holds a certificate with this SHA-256.
    pub fn contains(store: &str, fingerprint: &Fingerprint) -> Result<bool, OsTrustError> {
        let store = Store::open(store)?;
        Ok(store.find(fingerprint).map(|found| unsafe { CertFreeCertificateContext(found) }).is_some())
    }

    /// Removes every entry with this SHA-256; whether there was one.
    pub fn remove(store: &str, fingerprint: &Fingerprint) -> Result<bool, OsTrustError> {
        let store = Store::open(store)?;
        let mut removed = false;
        while let Some(found) = store.find(fingerprint) {
            // SAFETY: CertDeleteCertificateFromStore frees the context it is given.
            if unsafe { CertDeleteCertificateFromStore(found) } == 0 {
                return Err(last_error("remove the certificate"));
            }
            removed = true;
        }
        Ok(removed)
    }

    /// The uses the entry's enhanced-key-usage property allows (OIDs), `None` when it has no
    /// such property (trusted for every use its own extensions allow), `Err` when not found.
    pub fn enhanced_key_usage(store: &str, fingerprint: &Fingerprint) -> Result<Option<Vec<String>>, OsTrustError> {
        let store = Store::open(store)?;
        let found = store.find(fingerprint).ok_or(OsTrustError::Windows { action: "find the certificate", code: 0 })?;
        let mut size = 0u32;
        // SAFETY: the first call asks for the size, the second fills a buffer of that size
        // (u64-aligned: it starts with a CTL_USAGE and holds the pointers into itself).
        let usages = unsafe {
            if CertGetEnhancedKeyUsage(found, CERT_FIND_PROP_ONLY_ENHKEY_USAGE_FLAG, null_mut(), &mut size) == 0 {
                CertFreeCertificateContext(found);
                return Ok(None);
            }
            let mut buffer = vec![0u64; (size as usize).div_ceil(8)];
            let usage = buffer.as_mut_ptr().cast::<CTL_USAGE>();
            let ok = CertGetEnhancedKeyUsage(found, CERT_FIND_PROP_ONLY_ENHKEY_USAGE_FLAG, usage, &mut size) != 0;
            CertFreeCertificateContext(found);
            if !ok {
                return Err(last_error("read the certificate's uses"));
            }
            let ids = std::slice::from_raw_parts((*usage).rgpszUsageIdentifier, (*usage).cUsageIdentifier as usize);
            ids.iter().map(|id| std::ffi::CStr::from_ptr(id.cast()).to_string_lossy().into_owned()).collect::<Vec<String>>()
        };
        Ok(Some(usages))
    }
}

#[cfg(all(test, windows))]
mod tests {
    use super::*;
    use crate::ca::{load_or_create, CaStore, Fingerprint, MachineNames};
    use crate::secret::SecretStore;

    fn ca_der(dir: &std::path::Path) -> Vec<u8> {
        let store = CaStore::beside(&SecretStore::file(dir.join("secret")), dir);
        load_or_create(&store, &MachineNames::from_host_name("box")).unwrap();
        store.stored_certificate().unwrap().unwrap().der().to_vec()
    }

    /// In a store of the test's own (the `Root` store would ask the person): added with its
    /// uses limited to server authentication, read back so by crypt32, found and removed by
    /// fingerprint; another CA under the same name is left alone.
    #[test]
    fn the_ca_goes_into_a_user_store_for_server_authentication_only_and_out_by_fingerprint() {
        // Fresh CAs and a store name of this run's own: Wine reuses small process ids, and its
        // prefix keeps both temporary files and stores from one run to the next.
        let dir = tempfile::tempdir().unwrap();
        let (one, other) = (ca_der(&dir.path().join("one")), ca_der(&dir.path().join("other")));
        let (one_fp, other_fp) = (Fingerprint::of_der(&one), Fingerprint::of_der(&other));
        let store = format!("SimpleOTP-test-{}", &one_fp.to_hex()[..16]);
        assert!(!contains(&store, &one_fp).unwrap());

        add_for_server_auth(&store, &one).unwrap();
        add_for_server_auth(&store, &other).unwrap();
        assert!(contains(&store, &one_fp).unwrap());
        assert_eq!(enhanced_key_usage(&store, &one_fp).unwrap(), Some(vec![SERVER_AUTH_OID.to_string()]));

        // `remove` deletes until a search of the open store finds nothing: true means gone there.
        assert!(remove(&store, &one_fp).unwrap());
        if crate::fsutil::testing::under_wine() {
            crate::fsutil::testing::skipped(
                "os_trust::tests::the_ca_goes_into_a_user_store_for_server_authentication_only_and_out_by_fingerprint (after the removal)",
                "under Wine: Wine 8 deletes the entry from the open store but does not write the deletion to its registry-backed \
                 system store (a new handle still finds it); Windows persists it",
            );
            return;
        }
        assert!(!contains(&store, &one_fp).unwrap());
        assert!(contains(&store, &other_fp).unwrap(), "only that fingerprint was removed");
        assert!(!remove(&store, &one_fp).unwrap(), "removing again finds nothing");
        remove(&store, &other_fp).unwrap();
    }
}
