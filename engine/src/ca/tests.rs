//! The CA's own tests. Certificates are checked by a verifier that is not ours (`openssl x509`,
//! `openssl verify`), so a constraint we only *think* we wrote cannot pass. On Linux and macOS
//! openssl is required (`scripts/test` installs it); on Windows, which has none of its own, the
//! tests that are about openssl's verdict are skipped by name when it is not on PATH. Keychain tests use the
//! real OS keychain (on Linux: run through `scripts/with-keyring.sh`), like the secret's.

use std::fs;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::*;
use crate::secret::SecretStore;

const SKIP_KEYCHAIN: &str = "SIMPLEOTP_SKIP_KEYCHAIN_TESTS";

fn machine() -> MachineNames {
    MachineNames::from_host_name("testbox")
}

fn host(name: &str) -> HostName {
    name.parse().unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn new_ca() -> CertificateAuthority {
    CertificateAuthority::generate(&machine(), SystemTime::now()).unwrap()
}

/// The key PEM's base64 body (what would leak if a key were printed).
fn key_body(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

fn ca_key_pem(ca: &CertificateAuthority) -> Zeroizing<String> {
    ca.key.to_pkcs8_pem(LineEnding::LF).unwrap()
}

fn file_store(dir: &Path) -> CaStore {
    CaStore::beside(&SecretStore::file(dir.join("secret")), &dir.join("data"))
}

// ------------------------------------------------------------------------------ the certificate

#[test]
fn fingerprint_is_sha256_of_the_der_in_upper_case_pairs() {
    let ca = new_ca();
    let text = ca.fingerprint().to_string();
    assert_eq!(text.len(), 32 * 3 - 1, "{text}");
    assert!(text.split(':').all(|pair| pair.len() == 2 && pair.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())), "{text}");
    assert_eq!(ca.fingerprint().as_bytes(), &<[u8; 32]>::from(Sha256::digest(ca.certificate_der())));
    assert_eq!(ca.fingerprint().to_hex(), text.replace(':', "").to_lowercase());
    assert!(ca.certificate_pem().starts_with("-----BEGIN CERTIFICATE-----\n"));
}

#[test]
fn the_ca_permits_the_machine_localhost_and_private_ranges_only() {
    let ca = new_ca();
    for name in ["testbox.local", "localhost", "app.testbox.local"] {
        assert!(ca.permits_name(&host(name)), "{name}");
    }
    // The bare "testbox" is letters only: it could be a top-level domain (see the next test).
    for name in ["testbox", "www.testbox", "example.com", "testbox.example.com", "local", "xtestbox.local", "attacker-localhost"] {
        assert!(!ca.permits_name(&host(name)), "{name}");
    }
    for address in ["127.0.0.1", "10.1.2.3", "172.31.255.1", "192.168.1.20", "169.254.3.4", "100.100.1.2", "::1", "fd12::1", "fe80::1"] {
        assert!(ca.permits_address(ip(address)), "{address}");
    }
    for address in ["8.8.8.8", "172.32.0.1", "192.169.0.1", "100.128.0.1", "2001:db8::1", "::2", "1.1.1.1"] {
        assert!(!ca.permits_address(ip(address)), "{address}");
    }
}

#[test]
fn only_names_that_can_never_be_public_are_permitted() {
    let permitted = |host: &str| permitted_names(&MachineNames::from_host_name(host));
    // Letters-only host names can be top-level domains (.dev, .ubuntu): only `<name>.local`.
    assert_eq!(permitted("dev"), ["dev.local", "localhost"]);
    assert_eq!(permitted("ubuntu"), ["ubuntu.local", "localhost"]);
    // With a digit or a hyphen, a label is never a TLD.
    assert_eq!(permitted("DESKTOP-7H3K2"), ["desktop-7h3k2", "desktop-7h3k2.local", "localhost"]);
    assert_eq!(permitted("pi4"), ["pi4", "pi4.local", "localhost"]);
    assert_eq!(permitted("xn--mgbh0fb"), ["xn--mgbh0fb.local", "localhost"]);
    // Full names only under suffixes reserved for local use.
    assert_eq!(permitted("box.home.arpa"), ["box.home.arpa", "box.local", "localhost"]);
    assert_eq!(permitted("box.internal"), ["box.internal", "box.local", "localhost"]);
    assert_eq!(permitted("box.example.com"), ["box.local", "localhost"]);
    assert_eq!(permitted("box.lan"), ["box.local", "localhost"]);
    assert_eq!(permitted("box-1.example.com"), ["box-1", "box-1.local", "localhost"]);
}

/// And verifiers agree: a CA made on a machine called "dev" cannot vouch for web.dev.
#[test]
fn openssl_refuses_what_a_ca_made_on_dev_signs_for_web_dev() {
    if openssl_missing("ca::tests::openssl_refuses_what_a_ca_made_on_dev_signs_for_web_dev") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::generate(&MachineNames::from_host_name("dev"), SystemTime::now()).unwrap();
    assert!(!ca.permits_name(&host("web.dev")) && !ca.permits_name(&host("dev")));
    let leaf = ca.sign_leaf(&[host("web.dev")], &[], SystemTime::now()).unwrap();
    let (ok, text) = openssl_verify(dir.path(), &ca, &leaf);
    assert!(!ok, "web.dev accepted: {text}");
    let leaf = ca.issue_leaf(&[host("dev.local")], &[]).unwrap();
    let (ok, text) = openssl_verify(dir.path(), &ca, &leaf);
    assert!(ok, "{text}");
}

#[test]
fn a_leaf_covers_what_it_was_issued_for_and_nothing_else() {
    let ca = new_ca();
    let names = [host("testbox.local"), host("localhost")];
    let addresses = [ip("192.168.1.20"), ip("::1")];
    let leaf = ca.issue_leaf(&names, &addresses).unwrap();
    assert!(leaf.covers(&names, &addresses));
    assert!(leaf.covers(&names[..1], &[]));
    assert!(!leaf.covers(&[host("testbox")], &[]));
    assert!(!leaf.covers(&[], &[ip("192.168.1.21")]));
    assert!(leaf.issued_by(&ca));
    assert_eq!(leaf.issuer_fingerprint(), ca.fingerprint());
    let life = leaf.not_after().duration_since(leaf.not_before()).unwrap();
    assert!(life <= Duration::from_secs(397 * 24 * 3600), "{life:?}");
    assert!(leaf.chain_pem().ends_with(&ca.certificate_pem()), "the chain is leaf then CA");
    assert!(leaf.private_key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));

    // Read back from its PEM, it is the same leaf.
    let again = LeafCertificate::from_pem(leaf.chain_pem(), leaf.private_key_pem()).unwrap();
    assert_eq!(again.names(), leaf.names());
    assert_eq!(again.addresses(), leaf.addresses());
    assert_eq!(again.not_after(), leaf.not_after());
}

#[test]
fn a_leaf_outside_the_constraints_is_refused_with_a_reason() {
    let ca = new_ca();
    let err = ca.issue_leaf(&[host("example.com")], &[]).unwrap_err();
    assert!(matches!(err, CaError::NotPermitted { .. }), "{err:?}");
    assert!(err.to_string().contains("example.com") && err.to_string().contains("testbox.local"), "{err}");
    let err = ca.issue_leaf(&[host("testbox.local")], &[ip("8.8.8.8")]).unwrap_err();
    assert!(err.to_string().contains("8.8.8.8"), "{err}");
    assert!(matches!(ca.issue_leaf(&[], &[]), Err(CaError::NothingToCover)));
}

#[test]
fn a_leaf_is_renewed_when_a_third_of_its_life_remains() {
    let ca = new_ca();
    let now = SystemTime::now();
    let leaf = ca.issue_leaf_at(&[host("testbox.local")], &[], now).unwrap();
    let day = Duration::from_secs(24 * 3600);
    assert!(!leaf.needs_renewal(now));
    assert!(!leaf.needs_renewal(now + 200 * day));
    assert!(leaf.needs_renewal(now + 300 * day), "about 97 days left");
    assert!(leaf.needs_renewal(now + 400 * day), "expired");
    assert!(leaf.needs_renewal(now - 2 * day), "not valid yet");
}

#[test]
fn a_leaf_with_a_foreign_key_or_a_broken_chain_is_refused() {
    let ca = new_ca();
    let leaf = ca.issue_leaf(&[host("testbox.local")], &[]).unwrap();
    let other = ca.issue_leaf(&[host("testbox.local")], &[]).unwrap();
    // A leaf presented with a CA that did not sign it.
    let leaf_only = leaf.chain_pem().strip_suffix(&ca.certificate_pem()).unwrap();
    let wrong_ca = format!("{leaf_only}{}", new_ca().certificate_pem());
    for (chain, key) in [
        (wrong_ca.as_str(), leaf.private_key_pem()),
        (leaf.chain_pem(), other.private_key_pem()),
        (leaf.chain_pem(), "not a key"),
        ("not a chain", leaf.private_key_pem()),
        (&leaf.chain_pem()[..leaf.chain_pem().len() / 2], leaf.private_key_pem()),
    ] {
        let err = LeafCertificate::from_pem(chain, key).unwrap_err();
        assert!(matches!(err, CaError::InvalidLeaf(_)), "{err:?}");
        assert!(!format!("{err} {err:?}").contains(&key_body(leaf.private_key_pem())));
    }
}

#[test]
fn debug_output_never_shows_a_private_key() {
    let ca = new_ca();
    let leaf = ca.issue_leaf(&[host("testbox.local")], &[]).unwrap();
    let shown = format!("{ca:?} {ca:#?} {leaf:?} {leaf:#?}");
    assert!(shown.contains("redacted"), "{shown}");
    assert!(!shown.contains(&key_body(leaf.private_key_pem())), "{shown}");
    assert!(!shown.contains(&key_body(&ca_key_pem(&ca))), "{shown}");
    // Nor in the key's bytes, in any form Debug would print them.
    let scalar = ca.key.to_bytes();
    assert!(!shown.contains(&format!("{:?}", scalar.as_slice())), "{shown}");
}

// --------------------------------------------------------------------- checked by openssl

/// Whether openssl can be run. Always "yes" on Unix, where a missing openssl fails the test (in
/// [`openssl`]); on Windows, which has none of its own, only when one is on PATH.
fn have_openssl() -> bool {
    cfg!(unix) || crate::child::command("openssl").arg("version").output().is_ok()
}

/// `true` (after saying so) when `test`, which is about openssl's verdict, must be skipped
/// because openssl is not installed (Windows only).
fn openssl_missing(test: &str) -> bool {
    if have_openssl() {
        return false;
    }
    crate::fsutil::testing::skipped(
        test,
        "openssl is not on PATH (Windows has none of its own; the test runs on Linux, where it is required)",
    );
    true
}

fn openssl(args: &[&str]) -> (bool, String) {
    let output = crate::child::command("openssl").args(args).output().expect("openssl is needed for these tests (apt-get install openssl)");
    (output.status.success(), format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
}

/// `openssl verify` of a leaf against the CA as the only trust anchor, as a TLS server
/// certificate, at the current time.
fn openssl_verify(dir: &Path, ca: &CertificateAuthority, leaf: &LeafCertificate) -> (bool, String) {
    let ca_path = dir.join("ca.pem");
    let leaf_path = dir.join("leaf.pem");
    fs::write(&ca_path, ca.certificate_pem()).unwrap();
    fs::write(&leaf_path, leaf.chain_pem()).unwrap();
    openssl(&["verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", ca_path.to_str().unwrap(), leaf_path.to_str().unwrap()])
}

#[test]
fn openssl_sees_a_constrained_ca_and_a_server_leaf() {
    if openssl_missing("ca::tests::openssl_sees_a_constrained_ca_and_a_server_leaf") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca();
    let path = dir.path().join("ca.pem");
    fs::write(&path, ca.certificate_pem()).unwrap();
    let (ok, text) = openssl(&["x509", "-noout", "-text", "-in", path.to_str().unwrap()]);
    assert!(ok, "{text}");
    for expected in [
        "X509v3 Name Constraints: critical",
        "Permitted:",
        "DNS:testbox.local",
        "DNS:localhost",
        "IP:192.168.0.0/255.255.0.0",
        "IP:10.0.0.0/255.0.0.0",
        "IP:172.16.0.0/255.240.0.0",
        "IP:127.0.0.0/255.0.0.0",
        "IP:169.254.0.0/255.255.0.0",
        "IP:100.64.0.0/255.192.0.0",
        "IP:0:0:0:0:0:0:0:1/FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF",
        "IP:FC00:0:0:0:0:0:0:0/FE00:0:0:0:0:0:0:0",
        "IP:FE80:0:0:0:0:0:0:0/FFC0:0:0:0:0:0:0:0",
        "X509v3 Basic Constraints: critical",
        "CA:TRUE, pathlen:0",
        "Certificate Sign, CRL Sign",
        "ecdsa-with-SHA256",
        "NIST CURVE: P-256",
        "O = SimpleOTP",
        "X509v3 Extended Key Usage",
        "TLS Web Server Authentication",
        "email:.invalid",
        "URI:.invalid",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!text.contains("Excluded:"), "{text}");
    assert!(!text.lines().any(|l| l.trim() == "DNS:testbox"), "the bare letters-only name is not permitted:\n{text}");

    let leaf = ca.issue_leaf(&[host("testbox.local")], &[ip("10.20.30.40")]).unwrap();
    fs::write(&path, leaf.chain_pem()).unwrap();
    let (ok, text) = openssl(&["x509", "-noout", "-text", "-in", path.to_str().unwrap()]);
    assert!(ok, "{text}");
    for expected in [
        "DNS:testbox.local, IP Address:10.20.30.40",
        "TLS Web Server Authentication",
        "Digital Signature",
        "CA:FALSE",
        "X509v3 Authority Key Identifier",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn openssl_accepts_leaves_for_this_machine_and_rejects_public_names() {
    if openssl_missing("ca::tests::openssl_accepts_leaves_for_this_machine_and_rejects_public_names") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca();
    let now = SystemTime::now();
    for (names, addresses) in [
        (vec![host("testbox.local"), host("localhost"), host("app.testbox.local")], vec![]),
        (vec![], vec![ip("192.168.1.20"), ip("10.0.0.5"), ip("127.0.0.1"), ip("fd00::5"), ip("::1")]),
        (vec![host("testbox.local")], vec![ip("100.101.102.103")]),
    ] {
        let leaf = ca.issue_leaf(&names, &addresses).unwrap();
        let (ok, text) = openssl_verify(dir.path(), &ca, &leaf);
        assert!(ok && text.contains(": OK"), "{names:?} {addresses:?}: {text}");
    }
    // Signed by the CA's key, but for names and addresses outside its constraints: what a thief
    // with the key could make. Verifiers must refuse every one.
    for (names, addresses) in [
        (vec![host("example.com")], vec![]),
        (vec![host("testbox.local"), host("bank.example")], vec![]),
        (vec![host("testbox")], vec![]),
        (vec![], vec![ip("8.8.8.8")]),
        (vec![host("testbox.local")], vec![ip("2001:db8::1")]),
    ] {
        let leaf = ca.sign_leaf(&names, &addresses, now).unwrap();
        let (ok, text) = openssl_verify(dir.path(), &ca, &leaf);
        assert!(!ok, "{names:?} {addresses:?} was accepted: {text}");
        assert!(text.contains("name constraint") || text.contains("permitted subtree violation"), "{names:?} {addresses:?}: {text}");
    }
}

/// The CA as versions before security round 3 made it: name constraints for DNS and IP only,
/// no Extended Key Usage. Kept to show what the new form stops, and to test the renewal of such
/// a CA.
pub(super) fn old_form_ca(machine: &MachineNames) -> CertificateAuthority {
    use rcgen::{GeneralSubtree, NameConstraints};
    let now = SystemTime::now();
    let key = random_signing_key();
    let signer = P256Signer::new(&key);
    let mut params = CertificateParams::default();
    params.serial_number = Some(random_serial());
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + CA_LIFETIME).into();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, ca_common_name(machine, now));
    subject.push(DnType::OrganizationName, "SimpleOTP");
    params.distinguished_name = subject;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.key_identifier_method = KeyIdMethod::PreSpecified(signer.key_id());
    let mut permitted_subtrees: Vec<GeneralSubtree> = permitted_names(machine).into_iter().map(GeneralSubtree::DnsName).collect();
    permitted_subtrees.extend(PERMITTED_RANGES.iter().map(|&(a, p)| GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(a, p))));
    params.name_constraints = Some(NameConstraints { permitted_subtrees, excluded_subtrees: Vec::new() });
    let certificate = params.self_signed(&signer).unwrap();
    CertificateAuthority::from_parts(key, certificate.der().to_vec()).unwrap_or_else(|_| panic!("the old form reads back"))
}

/// What a thief with the CA's key could try to make besides a website certificate.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Misuse {
    /// E-mail signing for someone's address (an rfc822Name SAN, emailProtection).
    Smime,
    /// A client certificate (clientAuth), to log in to a service that trusts the CA.
    ClientAuth,
    /// Code signing.
    CodeSigning,
    /// A website certificate for an allowed name: must still work.
    Website,
}

/// A certificate of `kind` signed with `ca`'s key, without any of our own checks; PEM.
fn sign_as(ca: &CertificateAuthority, kind: Misuse) -> String {
    let leaf_key = random_signing_key();
    let leaf_signer = P256Signer::new(&leaf_key);
    let mut params = CertificateParams::default();
    params.serial_number = Some(random_serial());
    let now = SystemTime::now();
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + Duration::from_secs(30 * 24 * 3600)).into();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, "someone");
    params.distinguished_name = subject;
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_identifier_method = KeyIdMethod::PreSpecified(leaf_signer.key_id());
    let (usages, ekus, sans) = match kind {
        Misuse::Smime => (
            vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment],
            vec![ExtendedKeyUsagePurpose::EmailProtection],
            vec![SanType::Rfc822Name("ceo@bank.example".try_into().unwrap())],
        ),
        Misuse::ClientAuth => (
            vec![KeyUsagePurpose::DigitalSignature],
            vec![ExtendedKeyUsagePurpose::ClientAuth],
            vec![SanType::DnsName("testbox.local".try_into().unwrap())],
        ),
        Misuse::CodeSigning => (vec![KeyUsagePurpose::DigitalSignature], vec![ExtendedKeyUsagePurpose::CodeSigning], vec![]),
        Misuse::Website => (
            vec![KeyUsagePurpose::DigitalSignature],
            vec![ExtendedKeyUsagePurpose::ServerAuth],
            vec![SanType::DnsName("testbox.local".try_into().unwrap())],
        ),
    };
    params.key_usages = usages;
    params.extended_key_usages = ekus;
    params.subject_alt_names = sans;
    let mut issuer_params = CertificateParams::default();
    issuer_params.distinguished_name = ca.subject.clone();
    issuer_params.key_identifier_method = KeyIdMethod::PreSpecified(ca.subject_key_id.clone());
    let issuer = Issuer::new(issuer_params, P256Signer::new(&ca.key));
    pem_encode("CERTIFICATE", params.signed_by(&leaf_signer, &issuer).unwrap().der())
}

/// (openssl's verdict, NSS's verdict) on a certificate of `kind` signed by `ca`, each verifier
/// asked for the purpose the certificate was made for. openssl takes the CA as an anchor for
/// every purpose, so only the CA's own form can stop it there; NSS trusts the CA with
/// `nss_trust` (`C,,` is how the tray adds it: websites only; `CT,C,C` is everything).
fn verdicts(dir: &Path, ca: &CertificateAuthority, kind: Misuse, nss_trust: &str) -> ((bool, String), (bool, String)) {
    let ca_path = dir.join("ca.pem");
    let leaf_path = dir.join("leaf.pem");
    fs::write(&ca_path, ca.certificate_pem()).unwrap();
    fs::write(&leaf_path, sign_as(ca, kind)).unwrap();
    // openssl before 3.5 has no code-signing purpose ("Invalid purpose codesign", which would
    // read as a refusal): that case is NSS's alone (object signing, `-u J`).
    let (purpose, usage) = match kind {
        Misuse::Smime => ("smimesign", "S"),
        Misuse::ClientAuth => ("sslclient", "C"),
        Misuse::CodeSigning => ("", "J"),
        Misuse::Website => ("sslserver", "V"),
    };
    let openssl_verdict = if purpose.is_empty() {
        (false, "not asked: this openssl has no code-signing purpose".to_string())
    } else {
        let verdict = openssl(&["verify", "-purpose", purpose, "-CAfile", ca_path.to_str().unwrap(), leaf_path.to_str().unwrap()]);
        assert!(!verdict.1.contains("Invalid purpose"), "{}", verdict.1);
        verdict
    };
    let db = dir.join(format!("nss-{usage}-{}", nss_trust.replace(',', "_")));
    let _ = fs::remove_dir_all(&db);
    fs::create_dir_all(&db).unwrap();
    let db = format!("sql:{}", db.display());
    let certutil = |args: &[&str]| {
        let output = crate::child::command("certutil").arg("-d").arg(&db).args(args).output().expect("certutil (libnss3-tools) is needed");
        (output.status.success(), format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
    };
    assert!(certutil(&["-N", "--empty-password"]).0);
    assert!(certutil(&["-A", "-n", "ca", "-t", nss_trust, "-i", ca_path.to_str().unwrap()]).0);
    assert!(certutil(&["-A", "-n", "leaf", "-t", ",,", "-i", leaf_path.to_str().unwrap()]).0);
    let nss_verdict = certutil(&["-V", "-n", "leaf", "-u", usage]);
    (openssl_verdict, nss_verdict)
}

/// NSS's verifier (what Chromium and Firefox use on Linux) does not look at a trust anchor's own
/// EKU: the trust flags the anchor is added with decide, which is why the tray adds it as `C,,`
/// (websites only). The name constraints still hold under any flags: the S/MIME certificate for
/// someone's address fails even with the CA trusted for everything.
#[test]
fn a_stolen_ca_key_signs_websites_only() {
    if !cfg!(target_os = "linux") {
        crate::fsutil::testing::skipped("ca::tests::a_stolen_ca_key_signs_websites_only", "needs openssl and NSS certutil (Linux)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca();
    let valid = |said: &str| said.contains("certificate is valid");
    for kind in [Misuse::Smime, Misuse::ClientAuth, Misuse::CodeSigning] {
        let ((openssl_ok, openssl_said), (_, nss_said)) = verdicts(dir.path(), &ca, kind, "C,,");
        assert!(!openssl_ok, "openssl accepted a {kind:?} certificate: {openssl_said}");
        assert!(!valid(&nss_said), "NSS (anchor as the tray adds it) accepted a {kind:?} certificate: {nss_said}");
    }
    let (_, (_, nss_said)) = verdicts(dir.path(), &ca, Misuse::Smime, "CT,C,C");
    assert!(!valid(&nss_said), "NSS with the CA trusted for everything accepted an S/MIME certificate: {nss_said}");
    let ((openssl_ok, openssl_said), (_, nss_said)) = verdicts(dir.path(), &ca, Misuse::Website, "C,,");
    assert!(openssl_ok, "{openssl_said}");
    assert!(valid(&nss_said), "{nss_said}");

    // The same certificates under the old form of the CA pass: that is what the new form stops
    // (and why an old CA is renewed at the next start).
    let old = old_form_ca(&machine());
    for kind in [Misuse::Smime, Misuse::ClientAuth] {
        let ((openssl_ok, openssl_said), _) = verdicts(dir.path(), &old, kind, "C,,");
        assert!(openssl_ok, "the old form was expected to let openssl accept {kind:?}: {openssl_said}");
    }
    for kind in [Misuse::Smime, Misuse::CodeSigning] {
        let (_, (_, nss_said)) = verdicts(dir.path(), &old, kind, "CT,C,C");
        assert!(valid(&nss_said), "the old form was expected to let NSS (trusted for everything) accept {kind:?}: {nss_said}");
    }
}

// -------------------------------------------------------------------------------- the store

#[test]
fn the_file_store_keeps_the_key_private_and_beside_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let store = file_store(dir.path());
    let CaStore::File { path, certificate } = &store else { panic!("{store:?}") };
    assert_eq!(path, &dir.path().join("secret.ca-key.pem"));
    assert_eq!(certificate, &dir.path().join("data").join(store::CERTIFICATE_FILE));

    let ca = load_or_create(&store, &machine()).unwrap();
    let again = load_or_create(&store, &machine()).unwrap();
    assert_eq!(again.fingerprint(), ca.fingerprint(), "loaded, not made again");
    assert_eq!(fs::read_to_string(certificate).unwrap(), ca.certificate_pem());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // The key is in its file and nowhere in the data directory.
    let body = key_body(&ca_key_pem(&ca));
    assert!(fs::read_to_string(path).unwrap().replace('\n', "").contains(&body));
    for entry in fs::read_dir(dir.path().join("data")).unwrap() {
        let text = fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(!text.contains(&body) && !text.contains("PRIVATE KEY"), "{text}");
    }
    // A leaf from the loaded CA verifies against the certificate made at first (by openssl too
    // where it is installed).
    let leaf = again.issue_leaf(&[host("testbox.local")], &[ip("192.168.5.5")]).unwrap();
    assert!(leaf.issued_by(&ca));
    if have_openssl() {
        let (ok, text) = openssl_verify(dir.path(), &ca, &leaf);
        assert!(ok, "{text}");
    }
}

#[cfg(unix)]
#[test]
fn a_key_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = file_store(dir.path());
    load_or_create(&store, &machine()).unwrap();
    let CaStore::File { path, .. } = &store else { unreachable!() };
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
    let err = load_or_create(&store, &machine()).unwrap_err();
    assert!(matches!(err, CaError::FilePermissions { mode: 0o644, .. }), "{err:?}");
    assert!(err.to_string().contains("chmod 600"), "{err}");
}

#[cfg(windows)]
#[test]
fn a_key_file_others_can_read_is_refused_on_windows() {
    let dir = tempfile::tempdir().unwrap();
    let store = file_store(dir.path());
    load_or_create(&store, &machine()).unwrap();
    let CaStore::File { path, .. } = &store else { unreachable!() };
    crate::fsutil::testing::let_everyone_read(path);
    let err = load_or_create(&store, &machine()).unwrap_err();
    assert!(matches!(&err, CaError::FileShared { who, .. } if who.contains("Everyone") || who == "S-1-1-0"), "{err:?}");
    assert!(err.to_string().contains("icacls"), "{err}");
}

#[test]
fn a_corrupt_key_file_is_reported_with_its_place_and_the_way_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = file_store(dir.path());
    let ca = load_or_create(&store, &machine()).unwrap();
    let CaStore::File { path, .. } = &store else { unreachable!() };
    let good = ca_key_pem(&ca);
    let body = key_body(&good);
    for content in [good.replace(&body[10..30], "AAAAAAAAAAAAAAAAAAAA"), "garbage".to_string(), String::new()] {
        crate::fsutil::write_atomic(path, content.as_bytes()).unwrap();
        let err = load_or_create(&store, &machine()).unwrap_err();
        assert!(matches!(err, CaError::CorruptKey { .. }), "{err:?}");
        let shown = format!("{err} {err:?}");
        assert!(shown.contains(&path.display().to_string()) && shown.contains("simpleotp ca rotate"), "{shown}");
        assert!(!shown.contains(&body[30..]), "key echoed: {shown}");
    }
    // rotate is the way out.
    let rotated = rotate(&store, &machine()).unwrap();
    assert_eq!(load_or_create(&store, &machine()).unwrap().fingerprint(), rotated.fingerprint());
}

#[test]
fn a_key_and_certificate_that_do_not_belong_together_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = file_store(dir.path());
    load_or_create(&store, &machine()).unwrap();
    // Someone copies another CA's certificate over ours.
    fs::write(store.certificate_path(), new_ca().certificate_pem()).unwrap();
    let err = load_or_create(&store, &machine()).unwrap_err();
    assert!(matches!(err, CaError::Mismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("do not belong together") && err.to_string().contains("simpleotp ca rotate"), "{err}");

    fs::write(store.certificate_path(), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
    let err = load_or_create(&store, &machine()).unwrap_err();
    assert!(matches!(err, CaError::CorruptCertificate { .. }), "{err:?}");
    fs::write(store.certificate_path(), "hello").unwrap();
    assert!(matches!(load_or_create(&store, &machine()), Err(CaError::CorruptCertificate { .. })));
}

#[test]
fn half_a_ca_is_reported_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let store = file_store(dir.path());
    load_or_create(&store, &machine()).unwrap();
    let certificate = fs::read(store.certificate_path()).unwrap();
    fs::remove_file(store.certificate_path()).unwrap();
    let err = load_or_create(&store, &machine()).unwrap_err();
    assert!(matches!(err, CaError::CertificateMissing { .. }), "{err:?}");

    fs::write(store.certificate_path(), &certificate).unwrap();
    let CaStore::File { path, .. } = &store else { unreachable!() };
    fs::remove_file(path).unwrap();
    let err = load_or_create(&store, &machine()).unwrap_err();
    assert!(matches!(err, CaError::KeyMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("simpleotp ca rotate"), "{err}");
    assert_eq!(fs::read(store.certificate_path()).unwrap(), certificate, "the certificate devices trust is left alone");
}

/// An install from before security round 3: its CA is renewed at the next start, the old
/// certificate is kept for the tray's sweep, and the key in the store is the new one.
#[test]
fn an_old_form_ca_is_renewed_at_the_next_start_and_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let store = file_store(dir.path());
    let old = old_form_ca(&machine());
    assert!(!old.has_current_form());
    store.save(&old).unwrap();
    assert!(store.previous_certificates().unwrap().is_empty());

    let renewed = load_or_create(&store, &machine()).unwrap();
    assert!(renewed.has_current_form());
    assert_ne!(renewed.fingerprint(), old.fingerprint());
    let previous = store.previous_certificates().unwrap();
    assert_eq!(previous.iter().map(CaCertificate::fingerprint).collect::<Vec<_>>(), vec![old.fingerprint()]);
    let reloaded = load_or_create(&store, &machine()).unwrap();
    assert_eq!(reloaded.fingerprint(), renewed.fingerprint(), "renewed once, then loaded");
    assert_eq!(ca_key_pem(&reloaded).as_str(), ca_key_pem(&renewed).as_str(), "the stored key is the new one");

    // A rotation adds to the list; a damaged list is set aside (its CAs may still be trusted
    // somewhere), and a new one started, so renewing is never blocked by it.
    rotate(&store, &machine()).unwrap();
    assert_eq!(store.previous_certificates().unwrap().len(), 2);
    let previous_path = dir.path().join("data").join(PREVIOUS_FILE);
    fs::write(&previous_path, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    let error = store.previous_certificates().unwrap_err().to_string();
    assert!(error.contains(PREVIOUS_FILE) && error.contains("delete it"), "{error}");
    rotate(&store, &machine()).unwrap();
    assert_eq!(store.previous_certificates().unwrap().len(), 1);
    assert!(dir.path().join("data").join("ca-previous.pem.damaged").exists());
}

/// A list whose last certificate was cut short (a crash while it was written, a disk that
/// filled up) is damaged, not one CA shorter: the tray would otherwise leave that CA trusted.
#[test]
fn a_list_of_earlier_cas_with_a_certificate_cut_short_is_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let store = file_store(dir.path());
    load_or_create(&store, &machine()).unwrap();
    rotate(&store, &machine()).unwrap();
    let previous_path = dir.path().join("data").join(PREVIOUS_FILE);
    let whole = fs::read_to_string(&previous_path).unwrap();
    assert_eq!(store.previous_certificates().unwrap().len(), 1);
    fs::write(&previous_path, format!("{whole}-----BEGIN CERTIFICATE-----\nMIIB")).unwrap();
    let error = store.previous_certificates().unwrap_err().to_string();
    assert!(error.contains(PREVIOUS_FILE) && error.contains("delete it"), "{error}");
}

#[test]
fn rotate_makes_a_new_ca_whose_trust_does_not_cover_old_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let store = file_store(dir.path());
    let old = load_or_create(&store, &machine()).unwrap();
    let old_leaf = old.issue_leaf(&[host("testbox.local")], &[]).unwrap();
    let new = rotate(&store, &machine()).unwrap();
    assert_ne!(new.fingerprint(), old.fingerprint());
    assert_eq!(load_or_create(&store, &machine()).unwrap().fingerprint(), new.fingerprint());
    assert!(!old_leaf.issued_by(&new));
    let new_leaf = new.issue_leaf(&[host("testbox.local")], &[]).unwrap();
    assert!(new_leaf.issued_by(&new));
    // And by openssl, where it is installed.
    if !have_openssl() {
        return;
    }
    let (ok, text) = openssl_verify(dir.path(), &new, &old_leaf);
    assert!(!ok, "the old CA's leaf verifies against the new CA: {text}");
    let (ok, text) = openssl_verify(dir.path(), &new, &new_leaf);
    assert!(ok, "{text}");
}

// -------------------------------------------------------------------- real keychain (gated)

/// Like the secret's keychain tests: they FAIL outside a session with a Secret Service rather
/// than pass silently, unless the skip is asked for explicitly.
fn keychain_tests_enabled(test: &str) -> bool {
    if std::env::var(SKIP_KEYCHAIN).as_deref() == Ok("1") {
        eprintln!("{test}: SKIPPED: {SKIP_KEYCHAIN}=1");
        return false;
    }
    if cfg!(target_os = "linux") && std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
        panic!("{test} needs a Secret Service: run it through `scripts/with-keyring.sh cargo test ...`, or set {SKIP_KEYCHAIN}=1");
    }
    true
}

/// A locked or missing keychain cannot be caused here for the CA alone; the secret's tests cause
/// both for real through the same `KeychainFailure` sorting. Here: what the CA's errors say.
#[test]
fn keychain_failures_say_what_to_do() {
    use crate::secret::KeychainFailure;
    let store = CaStore::beside(&SecretStore::keychain(), Path::new("/data"));
    for failure in [KeychainFailure::Locked("the collection is locked".into()), KeychainFailure::Unavailable("no D-Bus session".into())] {
        let err = store.keychain_error(failure);
        assert!(err.to_string().contains("--secret-file PATH"), "{err}");
        assert!(err.to_string().contains("local CA"), "{err}");
    }
}

#[test]
fn the_keychain_store_keeps_the_key_in_the_keychain_only() {
    if !keychain_tests_enabled("the_keychain_store_keeps_the_key_in_the_keychain_only") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let service = format!("org.simpleotp.test.{}.ca", std::process::id());
    let secret = SecretStore::Keychain { service: service.clone(), account: crate::secret::KEYCHAIN_ACCOUNT.to_owned() };
    let store = CaStore::beside(&secret, dir.path());
    let entry = keyring::Entry::new(&service, KEYCHAIN_CA_ACCOUNT).unwrap();
    struct Cleanup(keyring::Entry);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = self.0.delete_credential();
        }
    }
    let _cleanup = Cleanup(keyring::Entry::new(&service, KEYCHAIN_CA_ACCOUNT).unwrap());

    let ca = load_or_create(&store, &machine()).unwrap();
    let stored = entry.get_password().unwrap();
    assert_eq!(stored, *ca_key_pem(&ca), "the keychain holds the CA key");
    assert_eq!(load_or_create(&store, &machine()).unwrap().fingerprint(), ca.fingerprint());
    let body = key_body(&stored);
    for file in fs::read_dir(dir.path()).unwrap() {
        let text = fs::read_to_string(file.unwrap().path()).unwrap();
        assert!(!text.contains(&body) && !text.contains("PRIVATE KEY"), "{text}");
    }

    // A corrupt keychain entry is named, not shown.
    entry.set_password("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap();
    let err = load_or_create(&store, &machine()).unwrap_err();
    assert!(matches!(err, CaError::CorruptKey { .. }), "{err:?}");
    assert!(err.to_string().contains(&service), "{err}");

    let rotated = rotate(&store, &machine()).unwrap();
    assert_ne!(rotated.fingerprint(), ca.fingerprint());
    assert_eq!(entry.get_password().unwrap(), *ca_key_pem(&rotated));
}
