//! The login flow in a real browser: headless Chromium driven through chromedriver.
//!
//! Screenshots of the login page and the CA page are taken on every run (and checked to be PNGs); with
//! `SIMPLEOTP_UPDATE_SCREENSHOTS=1` they replace the ones under `docs/screenshots/` that the
//! README shows.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::helpers::*;

/// A chromedriver child process, killed on drop.
struct ChromeDriver {
    url: String,
    _child: tokio::process::Child,
}

impl ChromeDriver {
    async fn start() -> ChromeDriver {
        let binary = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("chromedriver is not installed: run the README's test command (it installs chromium-driver)");
        let port = free_port();
        let child = tokio::process::Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let status = format!("{url}/status");
        wait_until("chromedriver to listen", Duration::from_secs(20), async || {
            reqwest::get(&status).await.is_ok_and(|r| r.status().is_success())
        })
        .await;
        ChromeDriver { url, _child: child }
    }

    /// A new headless Chromium session; `phone` emulates a phone's screen and touch.
    async fn session(&self, phone: bool) -> Client {
        let mut options = json!({
            "binary": "/usr/bin/chromium",
            // The flags a sandboxed, offline CI machine needs (root has no Chromium sandbox; no
            // background connections to Google that the closed network would refuse).
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run", "--window-size=1280,800", "--force-device-scale-factor=1"],
        });
        if phone {
            options["mobileEmulation"] = json!({ "deviceMetrics": { "width": 390, "height": 844, "pixelRatio": 2.0, "touch": true } });
        }
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), options);
        ClientBuilder::rustls().unwrap().capabilities(caps).connect(&self.url).await.expect("a Chromium session")
    }
}

fn screenshot_dir() -> PathBuf {
    if std::env::var_os("SIMPLEOTP_UPDATE_SCREENSHOTS").is_some() {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots")
    } else {
        std::env::temp_dir().join("simpleotp-screenshots")
    }
}

async fn save_screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000, "not a real screenshot");
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

async fn text_of(browser: &Client, css: &str) -> String {
    match browser.wait().for_element(Locator::Css(css)).await {
        Ok(element) => element.text().await.unwrap(),
        Err(e) => panic!("{css} not found ({e}) on {}:\n{}", browser.current_url().await.unwrap(), browser.source().await.unwrap()),
    }
}

/// Types `code` and submits it, then waits until the page it was typed on is gone, so that the
/// next lookup finds the answer's elements, not the old page's (which would then go stale).
async fn submit_code(browser: &Client, code: &str) {
    let field = browser.wait().for_element(Locator::Id("code")).await.unwrap();
    field.send_keys(code).await.unwrap();
    browser.find(Locator::Id("submit")).await.unwrap().click().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while field.is_displayed().await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "the form was not submitted");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn browser_signs_in_to_the_url_it_asked_for_and_out_again() {
    let app = spawn_app().await;
    let driver = ChromeDriver::start().await;
    let browser = driver.session(false).await;
    let wanted = app.url("/notebooks/demo.ipynb?kernel=python3&x=1");

    browser.goto(&wanted).await.unwrap();
    let url = browser.current_url().await.unwrap();
    assert_eq!(url.path(), "/_simpleotp/login");
    assert_eq!(url.query_pairs().find(|(k, _)| k == "next").unwrap().1, "/notebooks/demo.ipynb?kernel=python3&x=1");
    // The field has focus on arrival: typing goes straight into it.
    let active = browser.active_element().await.unwrap();
    assert_eq!(active.attr("id").await.unwrap().as_deref(), Some("code"));
    save_screenshot(&browser, "login-desktop").await;

    submit_code(&browser, &app.wrong_code()).await;
    let message = text_of(&browser, "#msg").await;
    assert!(message.contains("didn't work"), "{message}");
    save_screenshot(&browser, "login-wrong-code").await;

    submit_code(&browser, &app.fresh_code()).await;
    browser.wait().for_element(Locator::Id("demo-title")).await.unwrap();
    assert_eq!(browser.current_url().await.unwrap().as_str(), wanted);
    assert_eq!(text_of(&browser, "#path").await, "/notebooks/demo.ipynb");
    assert_eq!(text_of(&browser, "#query").await, "kernel=python3&x=1");

    browser.refresh().await.unwrap();
    browser.wait().for_element(Locator::Id("demo-title")).await.unwrap();
    assert_eq!(browser.current_url().await.unwrap().as_str(), wanted, "a reload stays signed in");

    browser.find(Locator::Id("logout")).await.unwrap().click().await.unwrap();
    browser.wait().for_element(Locator::Id("submit")).await.unwrap().click().await.unwrap();
    let message = text_of(&browser, "#msg").await;
    assert!(message.contains("signed out"), "{message}");
    assert!(app.handle().gateway().sessions().is_empty());

    browser.goto(&wanted).await.unwrap();
    assert_eq!(browser.current_url().await.unwrap().path(), "/_simpleotp/login", "signed out means out");
    browser.close().await.unwrap();
}

#[tokio::test]
async fn login_page_fits_a_phone_and_shows_a_lockout() {
    let app = spawn_app().await;
    let driver = ChromeDriver::start().await;
    let browser = driver.session(true).await;
    browser.goto(&app.url("/")).await.unwrap();
    browser.wait().for_element(Locator::Id("code")).await.unwrap();
    // Nothing wider than the screen: no sideways scrolling on a phone.
    let overflow = browser.execute("return document.documentElement.scrollWidth - window.innerWidth", vec![]).await.unwrap();
    assert!(overflow.as_i64().unwrap() <= 0, "the page scrolls sideways by {overflow}px");
    save_screenshot(&browser, "login-phone").await;

    for _ in 0..5 {
        submit_code(&browser, &app.wrong_code()).await;
        browser.wait().for_element(Locator::Id("msg")).await.unwrap();
    }
    let message = text_of(&browser, "#msg").await;
    assert!(message.contains("Too many wrong codes") && message.contains("Try again in"), "{message}");
    save_screenshot(&browser, "login-locked-phone").await;
    browser.close().await.unwrap();
}

/// The page that helps trust the local CA, on a phone: the CSP lets its stylesheet apply (the
/// fingerprint is a block that wraps), nothing scrolls sideways, the steps open without a script.
#[tokio::test]
async fn ca_page_fits_a_phone_and_opens_its_steps() {
    let app = spawn_app().await;
    let store = simpleotp_engine::ca::CaStore::beside(&simpleotp_engine::secret::SecretStore::file(&app.secret_file), &app.data_dir);
    let authority = simpleotp_engine::ca::load_or_create(&store, &simpleotp_engine::config::MachineNames::this_machine()).unwrap();
    app.handle().gateway().set_ca_certificate(Some(authority.certificate()));
    let driver = ChromeDriver::start().await;
    let browser = driver.session(true).await;
    browser.goto(&app.route(simpleotp_engine::protocol::routes::CA_PAGE)).await.unwrap();
    assert_eq!(text_of(&browser, "#fingerprint").await, authority.fingerprint().to_string());
    let display = browser.execute("return getComputedStyle(document.getElementById('fingerprint')).display", vec![]).await.unwrap();
    assert_eq!(display, "block", "the page's stylesheet was not applied (CSP?)");
    let overflow = browser.execute("return document.documentElement.scrollWidth - window.innerWidth", vec![]).await.unwrap();
    assert!(overflow.as_i64().unwrap() <= 0, "the page scrolls sideways by {overflow}px");
    save_screenshot(&browser, "ca-page-phone").await;

    browser.find(Locator::Css("#steps-ios summary")).await.unwrap().click().await.unwrap();
    let steps = text_of(&browser, "#steps-ios ol").await;
    assert!(steps.contains("Certificate Trust Settings"), "{steps}");
    browser.execute("document.getElementById('steps-ios').scrollIntoView()", vec![]).await.unwrap();
    save_screenshot(&browser, "ca-page-phone-ios-steps").await;
    let href = browser.find(Locator::Id("profile")).await.unwrap().attr("href").await.unwrap();
    assert_eq!(href.as_deref(), Some("/_simpleotp/ca.mobileconfig"));
    browser.close().await.unwrap();
}
