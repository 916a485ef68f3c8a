//! SimpleOTP's own certificate authority, made for this machine only, so apps reached over the
//! local network can be served over HTTPS (issue 12).
//!
//! A person trusts the CA once on each device (the page at [`crate::protocol::routes::CA_PAGE`]
//! helps); from then on the leaf certificates it issues for this machine's names and addresses are
//! accepted, and a new leaf can be issued whenever the machine's address changes, without asking
//! anyone again.
//!
//! # Why name constraints
//!
//! A CA that a phone trusts can normally vouch for *any* site. mkcert's and Caddy's local CAs are
//! like that: whoever steals their key can impersonate your bank to every device that trusts it.
//! Ours carries a critical X.509 name-constraints extension (RFC 5280 §4.2.1.10): it may only
//! vouch for this machine's names and `localhost` (each with its subdomains, as the RFC defines
//! DNS constraints) and for non-public address ranges ([`PERMITTED_RANGES`]). Of the machine's
//! names ([`MachineNames`]) only those that can never be a public name are permitted (see
//! [`permitted_names`]): `<name>.local` always, but the bare host name only when it cannot be a
//! top-level domain, because a DNS constraint `dev` would also permit every `*.dev` site.
//! Verifiers reject any certificate under it for another name or address, so even a stolen key
//! cannot be used against public sites. The constraints are fixed when the CA is made; a machine
//! that is renamed needs a new CA ([`rotate`]), and [`CertificateAuthority::permits_name`] tells
//! which names the current one can still cover.
//!
//! Every other name type a verifier checks is constrained too: e-mail addresses (rfc822Name,
//! also the subject's `emailAddress`) and URIs may only be under `.invalid`, which nothing is
//! (see [`name_constraints_der`] for why permitted rather than excluded subtrees). And the CA's
//! own Extended Key Usage is `serverAuth` alone, so verifiers that check a CA's EKU (OpenSSL,
//! Windows, Apple) refuse an S/MIME, client-authentication or code-signing certificate under it;
//! NSS decides by the trust flags an anchor is added with (`C,,`: websites only, as the tray
//! adds it). A stolen key is worth a website certificate for this machine, nothing more
//! (`ca::tests::a_stolen_ca_key_signs_websites_only`). A CA made before this form is renewed at
//! the next start ([`load_or_create`]); the old certificate is kept in `ca-previous.pem` for the
//! tray to take out of the stores it was added to.
//!
//! Other limits: basic constraints CA with path length 0 (it signs leaves, never another CA),
//! key usage certificate and CRL signing only; valid for [`CA_LIFETIME`]. Leaves: at most
//! [`LEAF_LIFETIME`] (under Apple's 398-day limit), server authentication only, and renewed when
//! a third of their life remains ([`LeafCertificate::needs_renewal`]).
//!
//! # Keys and crypto
//!
//! ECDSA P-256 with SHA-256, signed by the pure-Rust RustCrypto `p256` crate through rcgen's
//! [`rcgen::SigningKey`] trait; rcgen is built without ring or aws-lc (no C build scripts, so the
//! engine still type-checks for Windows and macOS here). Certificates are read back with
//! `x509-parser`. Where the CA key lives, see [`store`]. The private keys are wiped from memory
//! when dropped, and no `Debug` output here shows them.
//!
//! # API
//!
//! [`load_or_create`] and [`rotate`] (blocking: they may touch the OS keychain) give a
//! [`CertificateAuthority`]; its [`issue_leaf`](CertificateAuthority::issue_leaf) gives a
//! [`LeafCertificate`] (chain and key PEM for nginx). A leaf kept on disk is read back with
//! [`LeafCertificate::from_pem`] and checked with [`LeafCertificate::covers`],
//! [`LeafCertificate::needs_renewal`] and [`LeafCertificate::issued_by`].
//!
//! Where this differs from the API first sketched for issue 12: [`CaStore`]'s variants also carry
//! the certificate's path (`Keychain { service, account, certificate }`, `File { path,
//! certificate }`), and [`CaStore::beside`] is the one way to make one (next to the TOTP secret's
//! store, certificate in the data directory); names are [`HostName`]s; [`MachineNames`] lives in
//! [`crate::config`] (nginx's allowed names come from it too) and is re-exported here;
//! [`CertificateAuthority::issue_leaf`] refuses names and addresses outside the constraints
//! (filter with [`CertificateAuthority::permits_name`] / [`permits_address`](CertificateAuthority::permits_address):
//! a letters-only bare host name is not permitted, see [`permitted_names`]); the public part for
//! pages and the tray is [`CaCertificate`] ([`CertificateAuthority::certificate`], or
//! [`CaStore::stored_certificate`] without the keychain).

mod store;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, LineEnding};
use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, CustomExtension, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyIdMethod, KeyUsagePurpose, SanType, SerialNumber,
};
use sha2::{Digest as _, Sha256};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use zeroize::Zeroizing;

use crate::config::HostName;
pub use crate::config::MachineNames;
pub use store::{load_or_create, rotate, CaStore, CERTIFICATE_FILE, KEYCHAIN_CA_ACCOUNT, PREVIOUS_FILE};

/// How long the CA certificate is valid. Long, because every device that trusts it would have to
/// be set up again when it expires; the name constraints bound what it can do meanwhile.
pub const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How long a leaf certificate is valid: 397 days, under the 398 days Apple's platforms accept
/// for a TLS server certificate.
pub const LEAF_LIFETIME: Duration = Duration::from_secs(397 * 24 * 3600);
/// Certificates start this long before they are made, so a device whose clock is a little behind
/// does not see them as not yet valid.
const BACKDATE: Duration = Duration::from_secs(3600);

/// The address ranges the CA may vouch for: none of them is reachable from the public internet,
/// and no public CA can issue certificates for them, so a stolen CA key can impersonate nothing
/// on the public web.
///
/// 100.64.0.0/10 (RFC 6598 shared address space: carrier-grade NAT, and the addresses Tailscale
/// gives each machine) is included: it is not routed on the internet either, and a phone reaching
/// this machine over Tailscale sees it at such an address. What a stolen key could do there is
/// what it could do in 192.168/16: impersonate a non-public address on a network the victim is
/// on, never a public site.
pub const PERMITTED_RANGES: &[(IpAddr, u8)] = &[
    (IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8),                 // loopback
    (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)), 8),                  // RFC 1918
    (IpAddr::V4(Ipv4Addr::new(172, 16, 0, 0)), 12),               // RFC 1918
    (IpAddr::V4(Ipv4Addr::new(192, 168, 0, 0)), 16),              // RFC 1918
    (IpAddr::V4(Ipv4Addr::new(169, 254, 0, 0)), 16),              // link-local
    (IpAddr::V4(Ipv4Addr::new(100, 64, 0, 0)), 10),               // RFC 6598 shared (CGNAT, Tailscale)
    (IpAddr::V6(Ipv6Addr::LOCALHOST), 128),                       // loopback
    (IpAddr::V6(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0)), 7),  // unique local
    (IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0)), 10), // link-local
];

/// id-ce-nameConstraints (RFC 5280 §4.2.1.10).
const NAME_CONSTRAINTS_OID: &[u64] = &[2, 5, 29, 30];

/// What e-mail addresses and URIs the CA may vouch for: nothing. `.invalid` is reserved (RFC
/// 2606, RFC 6761) and never resolves, so no real address or URI host is within it.
const NOTHING_BELOW: &str = ".invalid";

/// The CA's name-constraints extension (DER), written here because rcgen cannot express a URI
/// subtree. Every name type a verifier checks gets permitted subtrees:
///
/// * DNS: `names` (this machine's names that can never be public, and `localhost`);
/// * IP: [`PERMITTED_RANGES`];
/// * rfc822Name (e-mail, also the subject's `emailAddress`) and uniformResourceIdentifier:
///   only `.invalid`, which nothing can be in.
///
/// RFC 5280 forbids a whole name type this way: once a type has permitted subtrees, every name
/// of that type in a certificate below must fall within one of them. An *excluded* subtree
/// cannot say "all of them" (an empty e-mail constraint matches no address in OpenSSL, and
/// excluding 0.0.0.0/0 would exclude the private ranges too). directoryName is left
/// unconstrained: the subject DN vouches for nothing a browser checks (the SAN does), its
/// e-mail attribute is caught by the rfc822Name subtree, and a DN constraint every leaf must
/// match byte for byte is a failure we could not test on Apple's and Microsoft's verifiers here.
/// With the CA's own EKU (`serverAuth` only), a stolen key can sign website certificates for
/// these names and addresses and nothing else (tests in `ca::tests`, with openssl and NSS).
fn name_constraints_der(names: &[String]) -> Vec<u8> {
    let mut subtrees = Vec::new();
    for name in names {
        subtrees.extend(der(0x30, &der(0x82, name.as_bytes()))); // dNSName [2]
    }
    for &(network, prefix) in PERMITTED_RANGES {
        let range = CidrSubnet::from_addr_prefix(network, prefix);
        let (address, mask): (Vec<u8>, Vec<u8>) = match range {
            CidrSubnet::V4(a, m) => (a.to_vec(), m.to_vec()),
            CidrSubnet::V6(a, m) => (a.to_vec(), m.to_vec()),
        };
        subtrees.extend(der(0x30, &der(0x87, &[address, mask].concat()))); // iPAddress [7]
    }
    subtrees.extend(der(0x30, &der(0x81, NOTHING_BELOW.as_bytes()))); // rfc822Name [1]
    subtrees.extend(der(0x30, &der(0x86, NOTHING_BELOW.as_bytes()))); // uniformResourceIdentifier [6]
    der(0x30, &der(0xa0, &subtrees)) // NameConstraints { permittedSubtrees [0] }
}

/// One DER element: tag, definite length, contents.
fn der(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(contents);
    out
}

/// `localhost` is always permitted (and covered by leaves asked for it): browsers resolve it to
/// loopback themselves.
const LOCALHOST: &str = "localhost";

/// Why the CA could not be loaded, made, stored, or could not issue a certificate. Messages are
/// for the person running the command, say what to do, and never contain a private key.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("No OS keychain is available for the local CA's key ({detail}). On a server without a desktop, keep the keys in files: --secret-file PATH (the CA key goes next to it).")]
    KeychainUnavailable { detail: String },

    #[error("The OS keychain is locked or refused access to the local CA's key ({detail}). Unlock it (log in to your desktop session) or keep the keys in files instead with --secret-file PATH.")]
    KeychainLocked { detail: String },

    #[error("cannot access {}: {source}", .path.display())]
    FileIo {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("the local CA's key file {} can be read or written by other users (mode {mode:03o}); run `chmod 600 {}` and try again", .path.display(), .path.display())]
    FilePermissions { path: std::path::PathBuf, mode: u32 },

    /// Windows: the file's access list lets `who` read or change it.
    #[error("the local CA's key file {} can be read or changed by {who}; make it private to your account (Properties > Security, or `icacls \"{}\" /inheritance:r /grant:r \"%USERNAME%:F\"`) and try again", .path.display(), .path.display())]
    FileShared { path: std::path::PathBuf, who: String },

    #[error("{location} does not hold a valid key for the local CA ({reason}); run `simpleotp ca rotate` to make a new CA (devices that trusted the old one must then trust the new one)")]
    CorruptKey { location: String, reason: String },

    #[error("the local CA's certificate {} is not valid ({reason}); run `simpleotp ca rotate` to make a new CA (devices that trusted the old one must then trust the new one)", .path.display())]
    CorruptCertificate { path: std::path::PathBuf, reason: String },

    #[error("the local CA's key in {key} and its certificate {} do not belong together (one of them was replaced); run `simpleotp ca rotate` to make a new CA (devices that trusted the old one must then trust the new one)", .certificate.display())]
    Mismatch { key: String, certificate: std::path::PathBuf },

    #[error("the local CA's certificate {} is there but its key is missing from {key}; run `simpleotp ca rotate` to make a new CA (devices that trusted the old one must then trust the new one)", .certificate.display())]
    KeyMissing { key: String, certificate: std::path::PathBuf },

    #[error("the local CA's key is in {key} but its certificate {} is missing; restore the file, or run `simpleotp ca rotate` to make a new CA (devices that trusted the old one must then trust the new one)", .certificate.display())]
    CertificateMissing { key: String, certificate: std::path::PathBuf },

    #[error("the local CA can only vouch for this machine's names ({permitted}) and private addresses, not for {what}")]
    NotPermitted { what: String, permitted: String },

    #[error("a certificate must cover at least one name or address")]
    NothingToCover,

    #[error("not a certificate chain and key made by SimpleOTP's local CA ({0})")]
    InvalidLeaf(String),

    #[error("cannot make a certificate: {0}")]
    Signing(String),
}

/// The SHA-256 fingerprint of a certificate (of its DER bytes), what a person compares on the
/// device that asks whether to trust it. Shown as `AB:CD:…` (upper-case hex pairs), the way
/// browsers and the OS certificate viewers show it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    pub fn of_der(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex without separators (for file names and identifiers).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// The local CA: its certificate and its private key, loaded from or created in a [`CaStore`].
pub struct CertificateAuthority {
    key: p256::ecdsa::SigningKey,
    certificate_der: Vec<u8>,
    fingerprint: Fingerprint,
    /// What rcgen needs to name the issuer in a leaf: the subject, exactly as in the certificate.
    subject: DistinguishedName,
    subject_key_id: Vec<u8>,
    not_after: SystemTime,
    permitted_names: Vec<String>,
    permitted_ranges: Vec<(IpAddr, u8)>,
    /// Whether the certificate has the form of security round 3 (EKU `serverAuth` only, every
    /// name type constrained); an older one is renewed at the next start ([`load_or_create`]).
    current_form: bool,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("fingerprint", &self.fingerprint)
            .field("permitted_names", &self.permitted_names)
            .field("key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Makes a new CA for `machine` (not stored: see [`rotate`] and [`load_or_create`]).
    pub(crate) fn generate(machine: &MachineNames, now: SystemTime) -> Result<CertificateAuthority, CaError> {
        let key = random_signing_key();
        let signer = P256Signer::new(&key);
        let mut params = CertificateParams::default();
        params.serial_number = Some(random_serial());
        params.not_before = now.checked_sub(BACKDATE).unwrap_or(now).into();
        params.not_after = (now + CA_LIFETIME).into();
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, ca_common_name(machine, now));
        subject.push(DnType::OrganizationName, "SimpleOTP");
        params.distinguished_name = subject;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.key_identifier_method = KeyIdMethod::PreSpecified(signer.key_id());
        // Only for websites: verifiers refuse an S/MIME, client or code-signing certificate
        // under a CA whose own EKU does not include that purpose.
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let mut constraints = CustomExtension::from_oid_content(NAME_CONSTRAINTS_OID, name_constraints_der(&permitted_names(machine)));
        constraints.set_criticality(true);
        params.custom_extensions.push(constraints);
        let certificate = params.self_signed(&signer).map_err(|e| CaError::Signing(e.to_string()))?;
        CertificateAuthority::from_parts(key, certificate.der().to_vec())
            .map_err(|e| CaError::Signing(format!("the new CA certificate does not read back: {e:?}")))
    }

    /// The CA from its key and certificate, after checking that they belong together and that
    /// the certificate is a CA certificate this module could have made. The error is a reason for
    /// a message; `Err(None)` means the two do not belong together.
    fn from_parts(key: p256::ecdsa::SigningKey, certificate_der: Vec<u8>) -> Result<CertificateAuthority, PartsError> {
        let (rest, cert) = x509_parser::parse_x509_certificate(&certificate_der).map_err(|e| PartsError::Certificate(e.to_string()))?;
        if !rest.is_empty() {
            return Err(PartsError::Certificate("trailing bytes after the certificate".into()));
        }
        if cert.public_key().subject_public_key.data.as_ref() != P256Signer::new(&key).public.as_slice() {
            return Err(PartsError::Mismatch);
        }
        match cert.basic_constraints() {
            Ok(Some(bc)) if bc.value.ca => {}
            _ => return Err(PartsError::Certificate("it is not a CA certificate".into())),
        }
        let subject = distinguished_name(&cert).map_err(PartsError::Certificate)?;
        let subject_key_id = P256Signer::new(&key).key_id();
        let (permitted_names, permitted_ranges) = name_constraints(&cert).map_err(PartsError::Certificate)?;
        let not_after = system_time(cert.validity().not_after.timestamp());
        let fingerprint = Fingerprint::of_der(&certificate_der);
        let current_form = has_current_form(&cert);
        Ok(CertificateAuthority {
            key,
            certificate_der,
            fingerprint,
            subject,
            subject_key_id,
            not_after,
            permitted_names,
            permitted_ranges,
            current_form,
        })
    }

    /// Whether this CA can only vouch for websites (see [`CertificateAuthority::generate`]);
    /// false for one made before security round 3.
    pub fn has_current_form(&self) -> bool {
        self.current_form
    }

    /// The CA's public part (certificate, fingerprint, name), for pages, exports and the tray.
    pub fn certificate(&self) -> CaCertificate {
        CaCertificate::from_der(self.certificate_der.clone()).expect("the CA's own certificate was read when it was loaded")
    }

    /// The CA certificate in PEM (public: what devices are asked to trust).
    pub fn certificate_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.certificate_der)
    }

    /// The CA certificate in DER.
    pub fn certificate_der(&self) -> Vec<u8> {
        self.certificate_der.clone()
    }

    /// SHA-256 of the certificate's DER.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// When the CA certificate expires.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// The DNS names the CA may vouch for (each with its subdomains), from its certificate.
    pub fn permitted_names(&self) -> &[String] {
        &self.permitted_names
    }

    /// Whether the CA may vouch for `name` (verifiers would reject a leaf for any other).
    pub fn permits_name(&self, name: &HostName) -> bool {
        self.permitted_names.iter().any(|permitted| dns_within(name.as_str(), permitted))
    }

    /// Whether the CA may vouch for `address`.
    pub fn permits_address(&self, address: IpAddr) -> bool {
        self.permitted_ranges.iter().any(|&(network, prefix)| ip_within(address, network, prefix))
    }

    /// A new leaf certificate for nginx covering `names` and `addresses`, valid for
    /// [`LEAF_LIFETIME`]. Every name and address must be one the CA may vouch for
    /// ([`CaError::NotPermitted`] otherwise: verifiers would reject the certificate anyway).
    pub fn issue_leaf(&self, names: &[HostName], addresses: &[IpAddr]) -> Result<LeafCertificate, CaError> {
        self.issue_leaf_at(names, addresses, SystemTime::now())
    }

    pub(crate) fn issue_leaf_at(&self, names: &[HostName], addresses: &[IpAddr], now: SystemTime) -> Result<LeafCertificate, CaError> {
        let names = dedup(names.to_vec());
        let addresses = dedup(addresses.to_vec());
        if names.is_empty() && addresses.is_empty() {
            return Err(CaError::NothingToCover);
        }
        let not_permitted = |what: String| CaError::NotPermitted { what, permitted: self.permitted_names.join(", ") };
        if let Some(name) = names.iter().find(|n| !self.permits_name(n)) {
            return Err(not_permitted(format!("the name {name}")));
        }
        if let Some(address) = addresses.iter().find(|a| !self.permits_address(**a)) {
            return Err(not_permitted(format!("the address {address}")));
        }
        self.sign_leaf(&names, &addresses, now)
    }

    /// Signs a leaf without checking the names against the constraints (tests use this to show
    /// that verifiers enforce them).
    pub(crate) fn sign_leaf(&self, names: &[HostName], addresses: &[IpAddr], now: SystemTime) -> Result<LeafCertificate, CaError> {
        let signing_error = |e: rcgen::Error| CaError::Signing(e.to_string());
        let leaf_key = random_signing_key();
        let leaf_signer = P256Signer::new(&leaf_key);
        let mut params = CertificateParams::default();
        params.serial_number = Some(random_serial());
        let not_before = now.checked_sub(BACKDATE).unwrap_or(now);
        params.not_before = not_before.into();
        params.not_after = (not_before + LEAF_LIFETIME).into();
        let mut subject = DistinguishedName::new();
        // Not a host name (no dot), so no verifier mistakes it for one to check; the names are in
        // the subject alternative names.
        subject.push(DnType::CommonName, "SimpleOTP gateway");
        params.distinguished_name = subject;
        params.subject_alt_names = names
            .iter()
            .map(|n| n.as_str().to_string().try_into().map(SanType::DnsName))
            .chain(addresses.iter().map(|a| Ok(SanType::IpAddress(*a))))
            .collect::<Result<_, _>>()
            .map_err(signing_error)?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method = KeyIdMethod::PreSpecified(leaf_signer.key_id());

        let mut issuer_params = CertificateParams::default();
        issuer_params.distinguished_name = self.subject.clone();
        issuer_params.key_identifier_method = KeyIdMethod::PreSpecified(self.subject_key_id.clone());
        issuer_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = Issuer::new(issuer_params, P256Signer::new(&self.key));
        let certificate = params.signed_by(&leaf_signer, &issuer).map_err(signing_error)?;
        let private_key_pem = leaf_key.to_pkcs8_pem(LineEnding::LF).map_err(|e| CaError::Signing(e.to_string()))?;
        let chain_pem = format!("{}{}", pem_encode("CERTIFICATE", certificate.der()), self.certificate_pem());
        LeafCertificate::from_pem(&chain_pem, &private_key_pem)
    }
}

/// The CA's certificate alone (public), what devices are asked to trust: for the CA page, the
/// tray and `simpleotp ca export`. Made from a loaded [`CertificateAuthority`], or read from the
/// data directory without touching the keychain ([`CaStore::stored_certificate`]).
#[derive(Clone, PartialEq, Eq)]
pub struct CaCertificate {
    der: Vec<u8>,
    fingerprint: Fingerprint,
    common_name: String,
}

impl fmt::Debug for CaCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaCertificate").field("common_name", &self.common_name).field("fingerprint", &self.fingerprint).finish()
    }
}

impl CaCertificate {
    /// Reads a CA certificate (DER); the reason on failure is for a message.
    pub(crate) fn from_der(der: Vec<u8>) -> Result<CaCertificate, String> {
        let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| format!("it is not a certificate ({e})"))?;
        let common_name = cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).unwrap_or("SimpleOTP CA").to_string();
        let fingerprint = Fingerprint::of_der(&der);
        Ok(CaCertificate { der, fingerprint, common_name })
    }

    /// The SHA-1 thumbprint in upper-case hex without separators: what Windows shows as the
    /// certificate's "Thumbprint" (certmgr, the certificate dialog) and what `certutil` takes to
    /// name a certificate in a store. SHA-1 only identifies here; it vouches for nothing.
    pub fn sha1_thumbprint(&self) -> String {
        use sha1::Digest as _;
        sha1::Sha1::digest(&self.der).iter().map(|b| format!("{b:02X}")).collect()
    }

    /// DER, what the CA page offers as `.crt` (see [`crate::server`]).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    pub fn pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.der)
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The name devices list it under ("SimpleOTP CA <host> <date>").
    pub fn common_name(&self) -> &str {
        &self.common_name
    }

    /// An iOS/iPadOS/macOS configuration profile (`.mobileconfig`, unsigned) with one
    /// `com.apple.security.root` payload holding the certificate. Its identifiers and UUIDs are
    /// derived from the fingerprint: installing the same CA again replaces the profile rather
    /// than adding a second one, and a rotated CA is a different profile (the old one stays
    /// until the person removes it, which the CA page tells them to do).
    pub fn apple_profile(&self) -> String {
        use base64::Engine as _;
        // Derived from the fingerprint, not the fingerprint itself: nothing in the profile should
        // look like something to compare (the device computes that from the certificate).
        let id = &self.derived_uuid("identifier").replace('-', "")[..16];
        let name = crate::html::html_escape(&self.common_name);
        let data = base64::engine::general_purpose::STANDARD.encode(&self.der);
        let data: Vec<&str> = data.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect();
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>PayloadContent</key>
	<array>
		<dict>
			<key>PayloadCertificateFileName</key>
			<string>SimpleOTP-CA-{id}.cer</string>
			<key>PayloadContent</key>
			<data>
			{data}
			</data>
			<key>PayloadDescription</key>
			<string>Trusts {name}, which can only vouch for one computer's names and private network addresses.</string>
			<key>PayloadDisplayName</key>
			<string>{name}</string>
			<key>PayloadIdentifier</key>
			<string>org.simpleotp.ca.{id}.root</string>
			<key>PayloadType</key>
			<string>com.apple.security.root</string>
			<key>PayloadUUID</key>
			<string>{root_uuid}</string>
			<key>PayloadVersion</key>
			<integer>1</integer>
		</dict>
	</array>
	<key>PayloadDescription</key>
	<string>Lets this device open SimpleOTP-protected apps over HTTPS on your local network. Before you install it, compare the SHA-256 fingerprint this device shows for the certificate (More Details) with the one the SimpleOTP app shows on the computer.</string>
	<key>PayloadDisplayName</key>
	<string>{name}</string>
	<key>PayloadIdentifier</key>
	<string>org.simpleotp.ca.{id}</string>
	<key>PayloadOrganization</key>
	<string>SimpleOTP</string>
	<key>PayloadRemovalDisallowed</key>
	<false/>
	<key>PayloadType</key>
	<string>Configuration</string>
	<key>PayloadUUID</key>
	<string>{profile_uuid}</string>
	<key>PayloadVersion</key>
	<integer>1</integer>
</dict>
</plist>
"#,
            data = data.join("\n\t\t\t"),
            root_uuid = self.derived_uuid("root payload"),
            profile_uuid = self.derived_uuid("profile"),
        )
    }

    /// A UUID (RFC 9562 version 8, "custom") from SHA-256(purpose, fingerprint): the same for the
    /// same CA, different for another.
    fn derived_uuid(&self, purpose: &str) -> String {
        let mut digest: [u8; 32] = Sha256::new().chain_update(purpose.as_bytes()).chain_update(self.fingerprint.0).finalize().into();
        digest[6] = (digest[6] & 0x0f) | 0x80; // version 8
        digest[8] = (digest[8] & 0x3f) | 0x80; // RFC 9562 variant
        let hex: String = digest[..16].iter().map(|b| format!("{b:02X}")).collect();
        format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
    }
}

/// Why a key and certificate could not make a CA (put into words by the store, which knows where
/// they came from).
#[derive(Debug)]
enum PartsError {
    Certificate(String),
    Mismatch,
}

/// A certificate for nginx: the chain (leaf, then the CA) and the leaf's private key, both PEM.
pub struct LeafCertificate {
    chain_pem: String,
    private_key_pem: Zeroizing<String>,
    not_before: SystemTime,
    not_after: SystemTime,
    names: Vec<HostName>,
    addresses: Vec<IpAddr>,
    issuer_fingerprint: Fingerprint,
}

impl fmt::Debug for LeafCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeafCertificate")
            .field("names", &self.names)
            .field("addresses", &self.addresses)
            .field("not_after", &self.not_after)
            .field("issuer_fingerprint", &self.issuer_fingerprint)
            .field("private_key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl LeafCertificate {
    /// Reads back a leaf kept on disk (what [`chain_pem`](Self::chain_pem) and
    /// [`private_key_pem`](Self::private_key_pem) gave): the leaf, then its CA, and a key that
    /// belongs to the leaf.
    pub fn from_pem(chain_pem: &str, private_key_pem: &str) -> Result<LeafCertificate, CaError> {
        let invalid = |reason: &str| CaError::InvalidLeaf(reason.to_string());
        let blocks = pem::parse_many(chain_pem).map_err(|_| invalid("the chain is not PEM"))?;
        let [leaf_block, ca_block] = blocks.as_slice() else {
            return Err(invalid("the chain must hold two certificates, the leaf and then the CA"));
        };
        if leaf_block.tag() != "CERTIFICATE" || ca_block.tag() != "CERTIFICATE" {
            return Err(invalid("the chain holds something other than certificates"));
        }
        let (_, leaf) = x509_parser::parse_x509_certificate(leaf_block.contents()).map_err(|_| invalid("the leaf is not a certificate"))?;
        let key = p256::ecdsa::SigningKey::from_pkcs8_pem(private_key_pem).map_err(|_| invalid("the key is not a P-256 PKCS#8 key"))?;
        if leaf.public_key().subject_public_key.data.as_ref() != P256Signer::new(&key).public.as_slice() {
            return Err(invalid("the key does not belong to the certificate"));
        }
        let (_, ca) = x509_parser::parse_x509_certificate(ca_block.contents()).map_err(|_| invalid("the CA is not a certificate"))?;
        if !signed_by(&leaf, &ca) {
            return Err(invalid("the leaf is not signed by the CA in the chain"));
        }
        let mut names = Vec::new();
        let mut addresses = Vec::new();
        if let Ok(Some(san)) = leaf.subject_alternative_name() {
            for general_name in &san.value.general_names {
                match general_name {
                    GeneralName::DNSName(name) => names.push(name.parse().map_err(|_| invalid("the leaf names an invalid host"))?),
                    GeneralName::IPAddress(bytes) => {
                        addresses.push(ip_from_bytes(bytes).ok_or_else(|| invalid("the leaf has a bad address"))?)
                    }
                    _ => {}
                }
            }
        }
        Ok(LeafCertificate {
            chain_pem: chain_pem.to_string(),
            private_key_pem: Zeroizing::new(private_key_pem.to_string()),
            not_before: system_time(leaf.validity().not_before.timestamp()),
            not_after: system_time(leaf.validity().not_after.timestamp()),
            names,
            addresses,
            issuer_fingerprint: Fingerprint::of_der(ca_block.contents()),
        })
    }

    /// The leaf certificate followed by the CA certificate (nginx's `ssl_certificate`).
    pub fn chain_pem(&self) -> &str {
        &self.chain_pem
    }

    /// The leaf's private key, PKCS#8 PEM (nginx's `ssl_certificate_key`; keep it in a 0600 file).
    pub fn private_key_pem(&self) -> &str {
        &self.private_key_pem
    }

    pub fn not_before(&self) -> SystemTime {
        self.not_before
    }

    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    pub fn names(&self) -> &[HostName] {
        &self.names
    }

    pub fn addresses(&self) -> &[IpAddr] {
        &self.addresses
    }

    /// The fingerprint of the CA certificate in the chain.
    pub fn issuer_fingerprint(&self) -> Fingerprint {
        self.issuer_fingerprint
    }

    /// Whether this leaf is from `ca` (after [`rotate`], leaves of the old CA are not).
    pub fn issued_by(&self, ca: &CertificateAuthority) -> bool {
        self.issuer_fingerprint == ca.fingerprint()
    }

    /// Whether the leaf covers every one of `names` and `addresses`.
    pub fn covers(&self, names: &[HostName], addresses: &[IpAddr]) -> bool {
        names.iter().all(|n| self.names.contains(n)) && addresses.iter().all(|a| self.addresses.contains(a))
    }

    /// Whether to issue a new leaf now: when less than a third of its life remains (about 132
    /// days for a 397-day leaf, so months of retries before it could expire), or when it is not
    /// valid yet (the clock was turned back).
    pub fn needs_renewal(&self, now: SystemTime) -> bool {
        let lifetime = self.not_after.duration_since(self.not_before).unwrap_or_default();
        match self.not_after.duration_since(now) {
            Ok(remaining) => remaining < lifetime / 3 || now < self.not_before,
            Err(_) => true,
        }
    }
}

/// The DNS names the CA for `machine` may vouch for: those of the machine's names that cannot be
/// (or be above) a public name, and `localhost`.
///
/// A DNS constraint also permits every name below it, so a constraint equal to a public
/// top-level domain would undo the point of constraining: a machine named `dev` or `ubuntu` (both
/// are TLDs) must not get a CA that vouches for `*.dev`. Permitted are:
/// * names under a suffix reserved for local use: `.local` (mDNS, RFC 6762), `.home.arpa`
///   (RFC 8375), `.internal` (reserved by ICANN for private use), `.localhost` (RFC 6761);
/// * a single-label host name with a digit or a hyphen in it (`desktop-7h3k2`, `pi4`): ICANN
///   only delegates top-level domains made of letters (or IDN `xn--` labels), so such a label can
///   never be one. A letters-only host name (`testbox`) is left out: it is reached over HTTPS as
///   `testbox.local`;
/// * `localhost`.
///
/// Anything else (`box.example.com`, `box.lan`) is left out: it may be, or lie under, a public
/// domain.
pub(crate) fn permitted_names(machine: &MachineNames) -> Vec<String> {
    const LOCAL_SUFFIXES: [&str; 4] = [".local", ".home.arpa", ".internal", ".localhost"];
    let never_public = |name: &str| {
        let single_label_not_tld =
            !name.contains('.') && !name.starts_with("xn--") && name.bytes().any(|b| b.is_ascii_digit() || b == b'-');
        single_label_not_tld || LOCAL_SUFFIXES.iter().any(|suffix| name.ends_with(suffix))
    };
    let mut names: Vec<String> = machine.names().iter().map(|n| n.as_str().to_string()).filter(|n| never_public(n)).collect();
    names.push(LOCALHOST.to_string());
    dedup(names)
}

/// "SimpleOTP CA <host> <date>": the name a person sees in the device's list of trusted
/// certificates; the date tells a rotated CA from the one before. At most 64 characters (RFC 5280).
fn ca_common_name(machine: &MachineNames, now: SystemTime) -> String {
    let host: String = machine.names().first().map(|n| n.as_str()).unwrap_or(LOCALHOST).chars().take(32).collect();
    let made = time::OffsetDateTime::from(now);
    format!("SimpleOTP CA {host} {:04}-{:02}-{:02} {:02}:{:02}", made.year(), made.month() as u8, made.day(), made.hour(), made.minute())
}

/// The subject of a CA certificate this module made, for naming it as a leaf's issuer. Only the
/// attributes [`CertificateAuthority::generate`] writes are accepted, as UTF-8 strings, so the
/// issuer name rcgen writes into a leaf is byte for byte the CA's subject.
fn distinguished_name(cert: &X509Certificate<'_>) -> Result<DistinguishedName, String> {
    let mut name = DistinguishedName::new();
    for attribute in cert.subject().iter_attributes() {
        let oid = attribute.attr_type().to_id_string();
        let kind = match oid.as_str() {
            "2.5.4.3" => DnType::CommonName,
            "2.5.4.10" => DnType::OrganizationName,
            _ => return Err(format!("unexpected attribute {oid} in its subject")),
        };
        let value = attribute.as_str().map_err(|_| "a subject attribute is not text".to_string())?;
        name.push(kind, value);
    }
    Ok(name)
}

/// Whether `issuer`'s P-256 key made `cert`'s ECDSA-SHA256 signature (so [`LeafCertificate::issued_by`]
/// means what it says, even for files read back from disk).
fn signed_by(cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> bool {
    use p256::ecdsa::signature::Verifier as _;
    let Ok(key) = p256::ecdsa::VerifyingKey::from_sec1_bytes(issuer.public_key().subject_public_key.data.as_ref()) else {
        return false;
    };
    let Ok(signature) = p256::ecdsa::Signature::from_der(cert.signature_value.data.as_ref()) else {
        return false;
    };
    cert.signature_algorithm.algorithm == x509_parser::oid_registry::OID_SIG_ECDSA_WITH_SHA256
        && key.verify(cert.tbs_certificate.as_ref(), &signature).is_ok()
}

/// A CA certificate of the current form: its Extended Key Usage is `serverAuth` alone, and its
/// name constraints cover e-mail addresses and URIs too ([`name_constraints_der`]).
fn has_current_form(cert: &X509Certificate<'_>) -> bool {
    let websites_only = match cert.extended_key_usage() {
        Ok(Some(eku)) => {
            let eku = &eku.value;
            eku.server_auth && !eku.any && !eku.client_auth && !eku.code_signing && !eku.email_protection && eku.other.is_empty()
        }
        _ => false,
    };
    let every_type_constrained = match cert.name_constraints() {
        Ok(Some(constraints)) => {
            let permitted = constraints.value.permitted_subtrees.iter().flatten();
            let kinds: Vec<u8> = permitted
                .map(|subtree| match subtree.base {
                    GeneralName::RFC822Name(_) => 1,
                    GeneralName::URI(_) => 6,
                    _ => 0,
                })
                .collect();
            kinds.contains(&1) && kinds.contains(&6)
        }
        _ => false,
    };
    websites_only && every_type_constrained
}

/// The permitted DNS names and address ranges of a CA certificate's name constraints.
type Constraints = (Vec<String>, Vec<(IpAddr, u8)>);

fn name_constraints(cert: &X509Certificate<'_>) -> Result<Constraints, String> {
    let extension = cert.name_constraints().map_err(|e| format!("its name constraints cannot be read: {e}"))?;
    let Some(extension) = extension.filter(|e| e.critical) else {
        return Err("it has no critical name constraints".into());
    };
    let mut names = Vec::new();
    let mut ranges = Vec::new();
    for subtree in extension.value.permitted_subtrees.iter().flatten() {
        match subtree.base {
            GeneralName::DNSName(name) => names.push(name.to_ascii_lowercase()),
            GeneralName::IPAddress(bytes) => {
                let half = bytes.len() / 2;
                let (Some(network), Some(mask)) = (ip_from_bytes(&bytes[..half]), ip_from_bytes(&bytes[half..])) else {
                    return Err("a permitted address range is malformed".into());
                };
                let prefix = match mask {
                    IpAddr::V4(m) => u32::from(m).leading_ones() as u8,
                    IpAddr::V6(m) => u128::from(m).leading_ones() as u8,
                };
                ranges.push((network, prefix));
            }
            _ => {}
        }
    }
    Ok((names, ranges))
}

/// RFC 5280 DNS name constraints: the name itself or any name below it.
fn dns_within(name: &str, permitted: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == permitted || name.strip_suffix(permitted).is_some_and(|head| head.ends_with('.'))
}

fn ip_within(address: IpAddr, network: IpAddr, prefix: u8) -> bool {
    match (address, network) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix.min(32))).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix.min(128))).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

fn system_time(unix_seconds: i64) -> SystemTime {
    match u64::try_from(unix_seconds) {
        Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs),
        Err(_) => UNIX_EPOCH,
    }
}

fn dedup<T: PartialEq>(items: Vec<T>) -> Vec<T> {
    items.into_iter().fold(Vec::new(), |mut unique, item| {
        if !unique.contains(&item) {
            unique.push(item);
        }
        unique
    })
}

fn pem_encode(tag: &str, der: &[u8]) -> String {
    pem::encode_config(&pem::Pem::new(tag, der), pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF))
}

/// 128 random bits, positive (the top bit clear), as RFC 5280 and the CA/Browser Forum want.
fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01; // never a shorter (leading zero) serial
    SerialNumber::from_slice(&bytes)
}

/// A fresh P-256 key from the OS's random number generator.
fn random_signing_key() -> p256::ecdsa::SigningKey {
    loop {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut()).expect("the operating system's random number generator failed");
        // Fails only for zero or a value ≥ the group order (about 2^-32 of the time): draw again.
        if let Ok(key) = p256::ecdsa::SigningKey::from_slice(bytes.as_ref()) {
            return key;
        }
    }
}

/// A P-256 key as rcgen's signer: the uncompressed public point and ECDSA-SHA256 signatures in DER.
struct P256Signer<'a> {
    key: &'a p256::ecdsa::SigningKey,
    public: Vec<u8>,
}

impl<'a> P256Signer<'a> {
    fn new(key: &'a p256::ecdsa::SigningKey) -> P256Signer<'a> {
        P256Signer { key, public: key.verifying_key().to_encoded_point(false).as_bytes().to_vec() }
    }

    /// RFC 7093 method 1: the first 160 bits of the SHA-256 of the SubjectPublicKeyInfo (what
    /// rcgen computes itself when built with ring).
    fn key_id(&self) -> Vec<u8> {
        use rcgen::PublicKeyData as _;
        Sha256::digest(self.subject_public_key_info())[..20].to_vec()
    }
}

impl rcgen::PublicKeyData for P256Signer<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for P256Signer<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let signature: p256::ecdsa::Signature = self.key.try_sign(msg).map_err(|_| rcgen::Error::RemoteKeyError)?;
        Ok(signature.to_der().as_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests;
