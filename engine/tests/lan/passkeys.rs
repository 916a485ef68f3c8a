//! Passkeys for other devices (#22): made and used at `<hostname>.local` over HTTPS that
//! verifies against SimpleOTP's CA, in a network namespace like the other LAN tests. Chromium
//! trusts the CA through NSS (no certificate errors ignored), and the chain is checked with
//! openssl as well: chromedriver's virtual authenticator skips Chromium's certificate check, so
//! the browser alone would prove nothing about the certificate.

use std::process::Command;
use std::time::Duration;

use fantoccini::Locator;

use crate::netns::{self, LAN_ADDRESS};
use crate::support::*;

fn simpleotp(serve: &Serve, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_simpleotp"))
        .args(args)
        .arg("--config")
        .arg(&serve.config_path)
        .arg("--data-dir")
        .arg(&serve.data_dir)
        .env("SIMPLEOTP_UPDATE_URL", "http://127.0.0.1:9/latest.json")
        .output()
        .unwrap();
    assert!(output.status.success(), "simpleotp {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn a_passkey_made_at_the_local_name_signs_in_there_over_verified_https_and_not_at_localhost() {
    netns::run("passkeys::a_passkey_made_at_the_local_name_signs_in_there_over_verified_https_and_not_at_localhost", || async {
        let serve = Serve::start().await;
        let local_name = machine_local_name();
        let port = serve.lan_port;
        let secret = simpleotp_engine::secret::SecretStore::file(serve.dir.path().join("secret"));
        let ca = simpleotp_engine::ca::CaStore::beside(&secret, &serve.data_dir).certificate_path().to_path_buf();

        // The certificate the phone's browser gets at the name verifies against the CA.
        let chain = presented_chain(LAN_ADDRESS, port, &local_name);
        openssl_verify(&ca, &chain[0], &["-verify_hostname", &local_name]).unwrap();

        // `simpleotp passkey add` gives another device its link at the network name.
        let printed = simpleotp(&serve, &["passkey", "add", "--no-open"]);
        let prefix = format!("https://{local_name}:{port}/_simpleotp/passkey/add?link=");
        let link =
            printed.split_whitespace().find(|w| w.starts_with(&prefix)).unwrap_or_else(|| panic!("no link for a phone in:\n{printed}"));

        let home = serve.dir.path().join("home");
        trust_in_nss(&home, &ca);
        let driver = ChromeDriver::start(&home).await;
        let browser = driver.session(&local_name, LAN_ADDRESS).await;
        add_virtual_authenticator(&browser).await;
        browser.goto(link).await.unwrap();
        let help = browser.wait().at_most(Duration::from_secs(15)).for_element(Locator::Id("passkey-help")).await.unwrap();
        assert!(help.text().await.unwrap().contains(&format!("at {local_name}.")), "where it works is said");
        let name = browser.find(Locator::Id("passkey-name")).await.unwrap();
        name.clear().await.unwrap();
        name.send_keys("Phone").await.unwrap();
        browser.find(Locator::Id("passkey-add")).await.unwrap().click().await.unwrap();
        let done = browser.find(Locator::Id("passkey-done")).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while !done.is_displayed().await.unwrap_or(false) {
            assert!(std::time::Instant::now() < deadline, "the passkey was not added:\n{}", browser.source().await.unwrap());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let listed = simpleotp(&serve, &["passkey", "list"]);
        assert!(listed.contains(&format!("Phone  (works at {local_name};")), "{listed}");

        // Signing in with it at the name, over HTTPS (the button, or the field's autofill).
        browser.goto(&format!("https://{local_name}:{port}/")).await.unwrap();
        let button = browser.wait().at_most(Duration::from_secs(15)).for_element(Locator::Id("passkey-signin")).await;
        if let Ok(button) = button {
            let _ = button.click().await; // the autofill may have signed in already
        }
        browser.wait().at_most(Duration::from_secs(15)).for_element(Locator::Id("demo-title")).await.unwrap();
        assert_eq!(browser.current_url().await.unwrap().as_str(), format!("https://{local_name}:{port}/"));
        browser.close().await.unwrap();

        // It is not offered at localhost (another relying party), nor at the IP address, which
        // says where passkeys work instead.
        let here = curl(&["-H", &format!("Host: localhost:{port}"), &format!("http://127.0.0.1:{port}/_simpleotp/login")]);
        assert_eq!(here.status, 200, "{here:?}");
        assert!(!here.body.contains("id=\"passkey-signin\"") && !here.body.contains("id=\"passkey-where\""), "{}", here.body);
        let ca_arg = ca.to_str().unwrap();
        let by_ip = curl(&["--cacert", ca_arg, &format!("https://{LAN_ADDRESS}:{port}/_simpleotp/login")]);
        assert!(
            by_ip.body.contains(&format!("Passkeys work at <a href=\"https://{local_name}:{port}/_simpleotp/login?next=%2F\">")),
            "{}",
            by_ip.body
        );
    });
}
