//! The local CA as a person meets it: `simpleotp ca export` and `ca rotate` (the real binary,
//! with the secret file and with the real OS keychain), and the CA page with its downloads,
//! fetched through the real nginx. Certificates are judged by openssl and the profile by
//! Python's plist parser, not by our own code.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};
use simpleotp_engine::ca::{self, CaStore, MachineNames};
use simpleotp_engine::config::HostName;
use simpleotp_engine::protocol::routes;
use simpleotp_engine::secret::SecretStore;

use crate::cli::{keychain_tests_wanted, run, simpleotp, stderr, stdout, write_config};
use crate::helpers::*;

/// `simpleotp ca ARGS… --config … --data-dir … --secret-file …` in `dir` (the file store).
fn ca_command(dir: &Path, args: &[&str]) -> Command {
    let mut command = simpleotp(&["ca"]);
    command.args(args).arg("--config").arg(dir.join("config.toml")).arg("--data-dir").arg(dir.join("data"));
    command.arg("--secret-file").arg(dir.join("secret"));
    command
}

fn openssl(args: &[&str]) -> (bool, String) {
    let output = Command::new("openssl").args(args).output().expect("openssl is needed (apt-get install openssl)");
    (output.status.success(), format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
}

/// The fingerprint line `ca export` / `ca rotate` print.
fn printed_fingerprint(out: &str) -> String {
    out.lines().find_map(|l| l.strip_prefix("SHA-256 fingerprint: ")).unwrap_or_else(|| panic!("no fingerprint in:\n{out}")).to_string()
}

/// `openssl x509 -fingerprint -sha256` of a PEM file, as `AB:CD:…`.
fn openssl_fingerprint(pem: &Path) -> String {
    let (ok, text) = openssl(&["x509", "-noout", "-fingerprint", "-sha256", "-in", pem.to_str().unwrap()]);
    assert!(ok, "{text}");
    text.trim().split_once('=').unwrap().1.to_string()
}

/// The base64 body of a PEM private key: what would show if the key leaked anywhere.
fn key_body(pem: &str) -> String {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(body.len() > 100, "not a key: {pem:?}");
    body
}

/// Every file under `dir`, recursively (the data directory: state, nginx files, logs).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Neither the key's body nor any private-key PEM is in these files or texts.
fn assert_key_nowhere(body: &str, files: &[PathBuf], texts: &[&str]) {
    for path in files {
        let text = String::from_utf8_lossy(&fs::read(path).unwrap()).replace(['\n', '\r'], "");
        assert!(!text.contains(body), "the CA key is in {}", path.display());
        assert!(!text.contains("PRIVATE KEY"), "a private key is in {}", path.display());
    }
    for text in texts {
        assert!(!text.replace('\n', "").contains(body), "the CA key was printed:\n{text}");
    }
}

#[test]
fn ca_export_and_rotate_with_the_secret_file() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "http://127.0.0.1:9");
    let exported = dir.path().join("exported.pem");
    let output = run(ca_command(dir.path(), &["export"]).arg(&exported));
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    let fingerprint = printed_fingerprint(&out);
    assert_eq!(fingerprint, openssl_fingerprint(&exported), "the printed fingerprint is the file's");
    assert_eq!(fs::read(&exported).unwrap(), fs::read(dir.path().join("data").join(ca::CERTIFICATE_FILE)).unwrap());
    let (ok, text) = openssl(&["x509", "-noout", "-text", "-in", exported.to_str().unwrap()]);
    assert!(ok && text.contains("X509v3 Name Constraints: critical") && text.contains("DNS:localhost"), "{text}");
    assert!(text.contains("IP:192.168.0.0/255.255.0.0") && text.contains("CA:TRUE, pathlen:0"), "{text}");

    // The key: a 0600 file beside the secret file, and nowhere else.
    let key_file = dir.path().join("secret.ca-key.pem");
    assert_eq!(fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    let key = fs::read_to_string(&key_file).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
    let body = key_body(&key);
    let mut files = files_under(&dir.path().join("data"));
    files.extend([dir.path().join("config.toml"), exported.clone()]);
    assert_key_nowhere(&body, &files, &[&out, &stderr(&output)]);

    // Exporting again exports the same CA.
    let again = run(ca_command(dir.path(), &["export"]).arg(dir.path().join("again.pem")));
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(printed_fingerprint(&stdout(&again)), fingerprint);

    // A leaf the old CA signed, as a running gateway would have it.
    let store = CaStore::beside(&SecretStore::file(dir.path().join("secret")), &dir.path().join("data"));
    let old = ca::load_or_create(&store, &MachineNames::this_machine()).unwrap();
    assert_eq!(old.fingerprint().to_string(), fingerprint);
    let localhost: HostName = "localhost".parse().unwrap();
    let old_leaf = old.issue_leaf(std::slice::from_ref(&localhost), &["127.0.0.1".parse().unwrap()]).unwrap();
    let leaf_file = dir.path().join("leaf.pem");
    fs::write(&leaf_file, old_leaf.chain_pem()).unwrap();
    let verify =
        |ca_file: &Path| openssl(&["verify", "-purpose", "sslserver", "-CAfile", ca_file.to_str().unwrap(), leaf_file.to_str().unwrap()]);
    assert!(verify(&exported).0, "{}", verify(&exported).1);

    let rotated = run(&mut ca_command(dir.path(), &["rotate"]));
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    let rotated_out = stdout(&rotated);
    let new_fingerprint = printed_fingerprint(&rotated_out);
    assert_ne!(new_fingerprint, fingerprint);
    assert!(rotated_out.contains(&fingerprint) && rotated_out.contains("Remove the old one"), "says what to do:\n{rotated_out}");
    assert!(rotated_out.contains("Trust on this computer"), "{rotated_out}");
    // No gateway runs on this data directory: the stored CA was rotated here, for the next one.
    assert!(rotated_out.contains("The next `simpleotp serve`") && !rotated_out.contains("running gateway"), "{rotated_out}");
    let new_key = fs::read_to_string(&key_file).unwrap();
    assert_ne!(key_body(&new_key), body, "a new key");
    assert_key_nowhere(&key_body(&new_key), &files_under(&dir.path().join("data")), &[&rotated_out, &stderr(&rotated)]);

    // The new CA is what gets exported now, and the old CA's leaf does not verify against it.
    let new_export = dir.path().join("new.pem");
    let output = run(ca_command(dir.path(), &["export"]).arg(&new_export));
    assert_eq!(printed_fingerprint(&stdout(&output)), new_fingerprint);
    assert_eq!(openssl_fingerprint(&new_export), new_fingerprint);
    let (ok, text) = verify(&new_export);
    assert!(!ok, "the old CA's leaf verifies against the new CA: {text}");
    let new = ca::load_or_create(&store, &MachineNames::this_machine()).unwrap();
    assert!(!old_leaf.issued_by(&new));
    fs::write(&leaf_file, new.issue_leaf(&[localhost], &[]).unwrap().chain_pem()).unwrap();
    assert!(verify(&new_export).0, "{}", verify(&new_export).1);
}

#[test]
fn ca_with_a_damaged_key_or_certificate_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(ca_command(dir.path(), &["export"]).arg(dir.path().join("ca.pem")));
    assert!(output.status.success(), "{}", stderr(&output));
    let key_file = dir.path().join("secret.ca-key.pem");
    let certificate = dir.path().join("data").join(ca::CERTIFICATE_FILE);
    let good_key = fs::read_to_string(&key_file).unwrap();
    let good_certificate = fs::read(&certificate).unwrap();
    let export = || run(ca_command(dir.path(), &["export"]).arg(dir.path().join("out.pem")));

    // A damaged key file.
    fs::write(&key_file, good_key.replace(&key_body(&good_key)[20..40], "AAAAAAAAAAAAAAAAAAAA")).unwrap();
    let output = export();
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains(&key_file.display().to_string()) && err.contains("simpleotp ca rotate"), "{err}");
    assert!(!err.contains(&key_body(&good_key)[40..]), "the key is echoed: {err}");

    // A key readable by others.
    fs::write(&key_file, &good_key).unwrap();
    fs::set_permissions(&key_file, fs::Permissions::from_mode(0o644)).unwrap();
    let err = stderr(&export());
    assert!(err.contains("chmod 600"), "{err}");
    fs::set_permissions(&key_file, fs::Permissions::from_mode(0o600)).unwrap();

    // Another CA's certificate in place of ours: key and certificate do not match.
    let other = tempfile::tempdir().unwrap();
    assert!(run(ca_command(other.path(), &["export"]).arg(other.path().join("ca.pem"))).status.success());
    fs::copy(other.path().join("ca.pem"), &certificate).unwrap();
    let err = stderr(&export());
    assert!(err.contains("do not belong together") && err.contains("simpleotp ca rotate"), "{err}");

    // The certificate gone, the key still there: not silently replaced.
    fs::remove_file(&certificate).unwrap();
    let output = export();
    assert!(!output.status.success());
    assert!(stderr(&output).contains("is missing"), "{}", stderr(&output));
    assert!(!certificate.exists());

    // rotate is the way out, and it says so above.
    let output = run(&mut ca_command(dir.path(), &["rotate"]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(export().status.success());
    assert_ne!(fs::read(&certificate).unwrap(), good_certificate);
}

#[test]
fn ca_without_a_keychain_suggests_the_secret_file() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(simpleotp(&["ca", "export"])
        .arg(dir.path().join("ca.pem"))
        .arg("--config")
        .arg(dir.path().join("none.toml"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("DBUS_SESSION_BUS_ADDRESS", format!("unix:path={}/no-bus", dir.path().display())));
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("keychain") && err.contains("--secret-file"), "{err}");
    assert!(!dir.path().join("ca.pem").exists() && !dir.path().join("data").join(ca::CERTIFICATE_FILE).exists());
}

/// The real keychain entry the app uses, in the throw-away keyring of `scripts/with-keyring.sh`.
#[test]
fn ca_export_with_the_os_keychain_keeps_the_key_there() {
    if !keychain_tests_wanted() {
        return;
    }
    let lookup = || {
        let output = Command::new("secret-tool")
            .args(["lookup", "service", simpleotp_engine::secret::KEYCHAIN_SERVICE, "username", ca::KEYCHAIN_CA_ACCOUNT])
            .output()
            .expect("secret-tool runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let dir = tempfile::tempdir().unwrap();
    let exported = dir.path().join("ca.pem");
    let data = dir.path().join("data");
    let in_keychain = |args: &[&str]| {
        let mut command = simpleotp(&["ca"]);
        command.args(args).arg("--config").arg(dir.path().join("none.toml")).arg("--data-dir").arg(&data);
        run(&mut command)
    };
    let output = in_keychain(&["rotate"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = in_keychain(&["export", exported.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let key = lookup();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "the keychain holds the key: {key:?}");
    assert_eq!(printed_fingerprint(&stdout(&output)), openssl_fingerprint(&exported));
    assert_key_nowhere(&key_body(&key), &[files_under(dir.path()), vec![]].concat(), &[&stdout(&output), &stderr(&output)]);
    assert!(!dir.path().read_dir().unwrap().flatten().any(|e| e.file_name().to_string_lossy().contains("ca-key")));

    let output = in_keychain(&["rotate"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_ne!(key_body(&lookup()), key_body(&key), "rotate replaced the key in the keychain");
    let _ = Command::new("secret-tool")
        .args(["clear", "service", simpleotp_engine::secret::KEYCHAIN_SERVICE, "username", ca::KEYCHAIN_CA_ACCOUNT])
        .status();
}

// ----------------------------------------------------------------------------- the CA page

/// The CA page and its two downloads, through the real nginx: 404 before there is a CA; then
/// the fingerprint, the DER certificate and an iOS profile that Python's plist parser reads
/// back to the same certificate, with UUIDs that stay put for one CA and change with the next.
#[tokio::test]
async fn the_ca_page_offers_the_certificate_and_an_apple_profile() {
    let mut app = spawn_app().await;
    let http = reqwest::Client::new();
    // Routes are fetched by URL, so the app can be restarted in between.
    let base = app.base.clone();
    let get = |route: &str| http.get(format!("{base}/_simpleotp/{route}")).send();

    let none = get(routes::CA_PAGE).await.unwrap();
    assert_eq!(none.status(), 404);
    assert!(none.text().await.unwrap().contains("not set up"));
    assert_eq!(get(routes::CA_CERTIFICATE).await.unwrap().status(), 404);

    // What the gateway does when it loads the CA (the lan part), and at the next start.
    let store = CaStore::beside(&SecretStore::file(&app.secret_file), &app.data_dir);
    let authority = ca::load_or_create(&store, &MachineNames::this_machine()).unwrap();
    app.handle().gateway().set_ca_certificate(Some(authority.certificate()));

    let page = get(routes::CA_PAGE).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-security-policy"].to_str().unwrap().starts_with("default-src 'none'"));
    let html = page.text().await.unwrap();
    let fingerprint = authority.fingerprint().to_string();
    // The page never offers a fingerprint to compare (it may come over plain HTTP, and whoever
    // swaps the certificate swaps the page): it says where the device shows its own.
    assert_no_fingerprint(&html, &authority.certificate());
    for needle in [
        "compare the fingerprint",
        "<strong>your device</strong>",
        "VPN &amp; Device Management",
        "More Details",
        "Trusted credentials",
        "Thumbprint",
        "SHA-256 Fingerprint",
    ] {
        assert!(html.contains(needle), "{needle} missing:\n{html}");
    }
    for needle in [
        "href=\"/_simpleotp/ca.mobileconfig\"",
        "href=\"/_simpleotp/ca.crt\"",
        "steps-ios",
        "steps-android",
        "steps-windows",
        "steps-macos",
    ] {
        assert!(html.contains(needle), "{needle} missing:\n{html}");
    }
    assert!(html.contains(&authority.certificate().common_name().to_string()), "{html}");

    let crt = get(routes::CA_CERTIFICATE).await.unwrap();
    assert_eq!(crt.status(), 200);
    assert_eq!(crt.headers()["content-type"], "application/x-x509-ca-cert");
    let disposition = crt.headers()["content-disposition"].to_str().unwrap().to_string();
    assert!(disposition.contains(".crt\""));
    assert!(!disposition.to_lowercase().contains(&authority.fingerprint().to_hex()[..8]), "{disposition}");
    let der = crt.bytes().await.unwrap();
    assert_eq!(der.as_ref(), authority.certificate_der().as_slice());
    let hex: String = Sha256::digest(&der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":");
    assert_eq!(hex, fingerprint, "the file's SHA-256 is the CA's fingerprint (what the device shows)");
    let dir = tempfile::tempdir().unwrap();
    let der_file = dir.path().join("ca.crt");
    fs::write(&der_file, &der).unwrap();
    let (ok, text) = openssl(&["x509", "-inform", "DER", "-noout", "-text", "-in", der_file.to_str().unwrap()]);
    assert!(ok && text.contains("Name Constraints: critical"), "{text}");

    let profile = get(routes::CA_PROFILE).await.unwrap();
    assert_eq!(profile.status(), 200);
    assert_eq!(profile.headers()["content-type"], "application/x-apple-aspen-config");
    let profile = profile.text().await.unwrap();
    let read = read_profile(dir.path(), &profile);
    assert_eq!(read["root_type"], "com.apple.security.root");
    assert_eq!(read["type"], "Configuration");
    assert_eq!(read["der_sha256"], fingerprint.replace(':', "").to_lowercase(), "the profile holds the certificate");
    assert_ne!(read["uuid"], read["root_uuid"]);
    assert_no_fingerprint(&profile, &authority.certificate());
    assert!(profile.contains("compare the SHA-256 fingerprint this device shows"), "{profile}");
    assert_eq!(read_profile(dir.path(), &get(routes::CA_PROFILE).await.unwrap().text().await.unwrap()), read, "stable for one CA");

    // After a restart the page comes from the stored certificate (no keychain needed)...
    app.restart().await;
    let html = get(routes::CA_PAGE).await.unwrap().text().await.unwrap();
    assert!(html.contains(authority.certificate().common_name()), "{html}");
    // ...and a rotated CA is another profile, with other identifiers.
    let rotated = ca::rotate(&store, &MachineNames::this_machine()).unwrap();
    app.handle().gateway().set_ca_certificate(Some(rotated.certificate()));
    let new = read_profile(dir.path(), &get(routes::CA_PROFILE).await.unwrap().text().await.unwrap());
    assert_ne!(new["uuid"], read["uuid"]);
    assert_ne!(new["root_uuid"], read["root_uuid"]);
    assert_ne!(new["identifier"], read["identifier"]);
    assert!(get(routes::CA_PAGE).await.unwrap().text().await.unwrap().contains(rotated.certificate().common_name()));
}

/// No form of the certificate's fingerprints (SHA-256 or SHA-1, any case, with or without
/// separators) is in `text`.
fn assert_no_fingerprint(text: &str, certificate: &ca::CaCertificate) {
    let flat: String = text.chars().filter(|c| c.is_ascii_hexdigit()).collect::<String>().to_lowercase();
    for hex in [certificate.fingerprint().to_hex(), certificate.sha1_thumbprint().to_lowercase()] {
        assert!(!flat.contains(&hex[..16]), "a fingerprint ({hex}) is in:\n{text}");
    }
}

/// The fields of a profile that matter, as Python's `plistlib` reads them (it rejects anything
/// that is not a well-formed property list).
fn read_profile(dir: &Path, profile: &str) -> serde_json::Value {
    let path = dir.join("profile.mobileconfig");
    fs::write(&path, profile).unwrap();
    let script = r#"
import hashlib, json, plistlib, sys, uuid
p = plistlib.load(open(sys.argv[1], "rb"))
(root,) = p["PayloadContent"]
for u in (p["PayloadUUID"], root["PayloadUUID"]):
    assert str(uuid.UUID(u)).upper() == u, u
print(json.dumps({
    "type": p["PayloadType"], "uuid": p["PayloadUUID"], "identifier": p["PayloadIdentifier"],
    "root_type": root["PayloadType"], "root_uuid": root["PayloadUUID"],
    "der_sha256": hashlib.sha256(root["PayloadContent"]).hexdigest(),
}))
"#;
    let output = Command::new("python3").args(["-c", script]).arg(&path).output().expect("python3 runs");
    assert!(output.status.success(), "not a valid profile: {}\n{profile}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}
