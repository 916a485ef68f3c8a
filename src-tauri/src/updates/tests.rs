//! The update logic with Tauri's own updater plugin (on the mock runtime: no window), against a
//! real HTTP server on loopback playing the release server, with packages signed by a
//! throw-away minisign key the way the release workflow signs them (the version in the signed
//! trusted comment).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::Engine as _;
use serde_json::json;
use simpleotp_engine::test_support::{StubAnswer, StubHttpServer};
use simpleotp_engine::updates::{CheckFailure, ManifestUrl};
use tauri::test::MockRuntime;

use super::*;

const TARGET: &str = "linux-x86_64-deb";
const QUICK: Duration = Duration::from_secs(3);

/// A throw-away signing key, as `tauri signer generate` makes one: the public half as the
/// app's config holds it (base64 of minisign's public key file).
struct SigningKey {
    pair: minisign::KeyPair,
}

impl SigningKey {
    fn new() -> Self {
        SigningKey { pair: minisign::KeyPair::generate_unencrypted_keypair().unwrap() }
    }

    fn public_for_config(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.pair.pk.to_box().unwrap().into_string())
    }

    /// The `.sig` file's content for `bytes` signed as `version` (base64, as in latest.json).
    fn sign(&self, bytes: &[u8], version: &str) -> String {
        let trusted = format!("timestamp:1796000000\tfile:SimpleOTP_{version}_amd64.deb\tversion:{version}");
        let signature = minisign::sign(Some(&self.pair.pk), &self.pair.sk, bytes, Some(&trusted), None).unwrap();
        base64::engine::general_purpose::STANDARD.encode(signature.into_string())
    }
}

/// The app as the release builds it, on the mock runtime, trusting `pubkey` ("" = a build
/// without a key).
fn app(pubkey: &str) -> tauri::App<MockRuntime> {
    let mut context = tauri::test::mock_context(tauri::test::noop_assets());
    let config: serde_json::Value = serde_json::from_str(include_str!("../../tauri.conf.json")).unwrap();
    let mut updater = config["plugins"]["updater"].clone();
    updater["pubkey"] = json!(pubkey);
    context.config_mut().plugins.0.insert("updater".into(), updater);
    tauri::test::mock_builder().plugin(tauri_plugin_updater::Builder::new().build()).build(context).unwrap()
}

/// The release server: the manifest at `/latest.json` (made once the server's own address is
/// known, since it links to the package there), the package at `/package`.
struct ReleaseServer {
    stub: StubHttpServer,
    downloads: Arc<AtomicUsize>,
}

impl ReleaseServer {
    fn start(manifest: impl Fn(&str) -> StubAnswer + Send + 'static, package: Vec<u8>) -> Self {
        let downloads = Arc::new(AtomicUsize::new(0));
        let counted = downloads.clone();
        let stub = StubHttpServer::start(move |request, base| {
            if request.starts_with("GET /package") {
                counted.fetch_add(1, Ordering::SeqCst);
                StubAnswer::Status(200, package.clone())
            } else {
                manifest(base)
            }
        });
        ReleaseServer { stub, downloads }
    }

    fn manifest_url(&self) -> ManifestUrl {
        ManifestUrl::parse(&format!("{}/latest.json", self.stub.base)).unwrap()
    }
}

/// latest.json announcing `version`, with one entry per key, all pointing at `/package`.
fn manifest(base: &str, version: &str, signature: &str, keys: &[&str]) -> StubAnswer {
    let platforms: serde_json::Map<String, serde_json::Value> =
        keys.iter().map(|key| (key.to_string(), json!({ "url": format!("{base}/package"), "signature": signature }))).collect();
    let body =
        json!({ "version": version, "notes": "Fixes a bug.\n- and another", "pub_date": "2026-12-01T00:00:00Z", "platforms": platforms });
    StubAnswer::Status(200, body.to_string().into_bytes())
}

/// A release server announcing `version` for `keys`, whose package is `served`, signed (by
/// `key`) over `signed` as `signed_as`.
fn release(key: &SigningKey, version: &str, signed_as: &str, signed: &[u8], served: &[u8], keys: &[&str]) -> ReleaseServer {
    let signature = key.sign(signed, signed_as);
    let (version, keys): (String, Vec<String>) = (version.into(), keys.iter().map(|k| k.to_string()).collect());
    ReleaseServer::start(
        move |base| manifest(base, &version, &signature, &keys.iter().map(String::as_str).collect::<Vec<_>>()),
        served.to_vec(),
    )
}

const PACKAGE: &[u8] = b"!<arch>\ndebian-binary   the next SimpleOTP, as a .deb would carry it";

async fn check_at(app: &tauri::App<MockRuntime>, url: &ManifestUrl) -> Checked {
    check(app.handle(), url, Some(TARGET), QUICK).await
}

fn failure(checked: &Checked) -> Option<&CheckFailure> {
    match &checked.report {
        CheckReport::Failed(failure) => Some(failure),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_correctly_signed_update_is_found_downloaded_and_its_signature_accepted() {
    let key = SigningKey::new();
    let app = app(&key.public_for_config());
    let server = release(&key, "99.0.0", "99.0.0", PACKAGE, PACKAGE, &[TARGET, "windows-x86_64-nsis"]);
    let checked = check_at(&app, &server.manifest_url()).await;
    assert_eq!(
        checked.report,
        CheckReport::Available { version: "99.0.0".into(), notes: Some("Fixes a bug.\n- and another".into()), cannot_install: None }
    );
    let update = checked.update.expect("installable");
    assert_eq!(update.target, TARGET);
    assert_eq!(download(&update).await.unwrap(), PACKAGE);
    assert_eq!(server.downloads.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_signature_a_tampered_file_or_a_replayed_old_package_is_refused() {
    let key = SigningKey::new();
    let app = app(&key.public_for_config());
    let stranger = SigningKey::new();
    let mut tampered = PACKAGE.to_vec();
    tampered[10] ^= 1;
    for (server, what) in [
        (release(&stranger, "99.0.0", "99.0.0", PACKAGE, PACKAGE, &[TARGET]), "signed by another key"),
        (release(&key, "99.0.0", "99.0.0", PACKAGE, &tampered, &[TARGET]), "changed after signing"),
        // A genuine package of an old release, announced as new: its signed version gives it away.
        (release(&key, "99.0.0", "0.0.9", PACKAGE, PACKAGE, &[TARGET]), "an old package announced as new"),
    ] {
        let update = check_at(&app, &server.manifest_url()).await.update.expect(what);
        let refused = download(&update).await.expect_err(what);
        assert!(
            refused.contains("SimpleOTP 99.0.0 was refused: its signature does not match") && refused.contains("Nothing was installed"),
            "{what}: {refused}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_downgrade_is_ignored_and_named() {
    let key = SigningKey::new();
    let app = app(&key.public_for_config());
    let server = release(&key, "0.0.1", "0.0.1", PACKAGE, PACKAGE, &[TARGET]);
    let checked = check_at(&app, &server.manifest_url()).await;
    assert_eq!(checked.report, CheckReport::UpToDate { newest: Some("0.0.1".into()), offered_older: true });
    assert!(checked.update.is_none());
    let same = release(&key, "0.1.0", "0.1.0", PACKAGE, PACKAGE, &[TARGET]);
    assert_eq!(
        check_at(&app, &same.manifest_url()).await.report,
        CheckReport::UpToDate { newest: Some("0.1.0".into()), offered_older: false }
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn another_install_formats_package_is_never_taken() {
    let key = SigningKey::new();
    let app = app(&key.public_for_config());
    // The release has an AppImage and Windows installers, but no .deb: an installed .deb must
    // not turn into something else.
    let server = release(&key, "99.0.0", "99.0.0", PACKAGE, PACKAGE, &["linux-x86_64-appimage", "linux-x86_64", "windows-x86_64-nsis"]);
    let checked = check_at(&app, &server.manifest_url()).await;
    match &checked.report {
        CheckReport::Available { version, cannot_install: Some(why), .. } => {
            assert_eq!(version, "99.0.0");
            assert!(why.contains("no package for this kind of install (linux-x86_64-deb)"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    assert!(checked.update.is_none());
    assert_eq!(server.downloads.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_signing_key_or_a_package_a_new_release_is_told_but_not_installed() {
    let key = SigningKey::new();
    let server = release(&key, "99.0.0", "99.0.0", PACKAGE, PACKAGE, &[TARGET]);
    let unsigned_build = app("");
    let checked = check_at(&unsigned_build, &server.manifest_url()).await;
    assert!(
        matches!(&checked.report, CheckReport::Available { cannot_install: Some(why), .. } if why.contains("no key")),
        "{:?}",
        checked.report
    );
    assert!(checked.update.is_none());
    let cargo_run = app(&key.public_for_config());
    let checked = check(cargo_run.handle(), &server.manifest_url(), None, QUICK).await;
    assert!(
        matches!(&checked.report, CheckReport::Available { cannot_install: Some(why), .. } if why.contains("no package for this kind of install")),
        "{:?}",
        checked.report
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_network_a_portal_a_server_error_or_a_broken_manifest_is_a_quiet_failure() {
    let key = SigningKey::new();
    let app = app(&key.public_for_config());
    let StubAnswer::Status(_, good) = manifest("http://127.0.0.1:9", "99.0.0", &key.sign(PACKAGE, "99.0.0"), &[TARGET]) else {
        unreachable!()
    };
    let cut_off = good[..good.len() / 2].to_vec();
    // Each answer as a function of the cut-off manifest (which only one of them uses).
    type Answer = fn(&[u8]) -> StubAnswer;
    let cases: [(Answer, CheckFailure); 5] = [
        (|_| StubAnswer::Status(500, b"Internal Server Error".to_vec()), CheckFailure::ServerError(None)),
        (|_| StubAnswer::Status(200, b"<html><body>Sign in to the hotel Wi-Fi</body></html>".to_vec()), CheckFailure::NotAManifest),
        (|cut_off| StubAnswer::Status(200, cut_off.to_vec()), CheckFailure::NotAManifest),
        (|_| StubAnswer::Status(200, br#"{"version":"99.0.0"}"#.to_vec()), CheckFailure::NotAManifest),
        (|_| StubAnswer::Silent, CheckFailure::Unreachable),
    ];
    for (answer, expected) in cases {
        let cut_off = cut_off.clone();
        let server = ReleaseServer::start(move |_| answer(&cut_off), Vec::new());
        let checked = check_at(&app, &server.manifest_url()).await;
        assert_eq!(failure(&checked), Some(&expected), "{:?}", checked.report);
        assert!(checked.update.is_none());
    }
    // Nobody listening: offline.
    let nobody = ManifestUrl::parse("http://127.0.0.1:9/latest.json").unwrap();
    assert_eq!(failure(&check_at(&app, &nobody).await), Some(&CheckFailure::Unreachable));
}

/// The committed config: no key until a maintainer adds one (CONTRIBUTING.md), every signature
/// must name its version, and the address rule is ours (`ManifestUrl`: https, or http to this
/// computer), so the plugin's own https-only rule is off.
#[test]
fn the_shipped_config_requires_signed_versions() {
    let config: serde_json::Value = serde_json::from_str(include_str!("../../tauri.conf.json")).unwrap();
    let updater = &config["plugins"]["updater"];
    assert_eq!(updater["requireSignedVersion"], json!(true));
    assert_eq!(updater["dangerousInsecureTransportProtocol"], json!(true));
    assert!(updater["pubkey"].is_string());
    assert_eq!(updater.get("endpoints"), None, "the address comes from ManifestUrl (SIMPLEOTP_UPDATE_URL), one place");
}
