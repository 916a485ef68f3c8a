//! Passkeys with the real parts: nginx, the gateway, headless Chromium through chromedriver, and
//! chromedriver's WebAuthn *virtual authenticator* (the W3C extension commands, sent through
//! fantoccini's raw-command support) standing in for Touch ID or Windows Hello. It makes real
//! P-256 keys and signs real challenges; the gateway checks them with webauthn-rs like any other.
//!
//! Passkeys need a name (browsers refuse IP addresses as relying parties), so these tests open
//! the app at `http://localhost:PORT`, which Chromium treats as a secure context.

use std::time::Duration;

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, Locator};
use hyper::Method;
use serde_json::{json, Value};
use simpleotp_engine::config::AppName;
use webauthn_rs::prelude::Url;

use crate::browser::{assert_accessible, axe_source, save_screenshot, submit_code, text_of, ChromeDriver};
use crate::helpers::*;

/// A WebAuthn extension command for this session (`/session/{id}/webauthn/…`).
#[derive(Debug)]
struct WebAuthn {
    method: Method,
    path: String,
    body: Option<Value>,
}

impl WebDriverCompatibleCommand for WebAuthn {
    fn endpoint(&self, base: &Url, session: Option<&str>) -> Result<Url, url::ParseError> {
        base.join(&format!("session/{}/webauthn/{}", session.unwrap_or_default(), self.path))
    }

    fn method_and_body(&self, _: &Url) -> (Method, Option<String>) {
        (self.method.clone(), self.body.as_ref().map(Value::to_string))
    }
}

/// A platform authenticator that verifies its user (like Touch ID) and keeps discoverable
/// credentials; answers prompts at once. Its id.
async fn add_authenticator(browser: &Client) -> String {
    let options = json!({
        "protocol": "ctap2",
        "transport": "internal",
        "hasResidentKey": true,
        "hasUserVerification": true,
        "isUserVerified": true,
        "automaticPresenceSimulation": true,
    });
    let answer = browser
        .issue_cmd(WebAuthn { method: Method::POST, path: "authenticator".into(), body: Some(options) })
        .await
        .expect("chromedriver adds a virtual authenticator");
    answer.as_str().or_else(|| answer["authenticatorId"].as_str()).expect("an authenticator id").to_owned()
}

/// The credentials the virtual authenticator holds.
async fn credentials(browser: &Client, authenticator: &str) -> Vec<Value> {
    let answer = browser
        .issue_cmd(WebAuthn { method: Method::GET, path: format!("authenticator/{authenticator}/credentials"), body: None })
        .await
        .unwrap();
    answer.as_array().cloned().unwrap_or_default()
}

/// Whether the virtual authenticator verifies its user (a fingerprint that matches). Off, every
/// request fails in the browser (passkeys require user verification), so the login page's
/// autofill request, which this authenticator answers by itself where a person would pick the
/// passkey, cannot sign the browser in behind a test's back.
async fn set_user_verified(browser: &Client, authenticator: &str, verified: bool) {
    browser
        .issue_cmd(WebAuthn {
            method: Method::POST,
            path: format!("authenticator/{authenticator}/uv"),
            body: Some(json!({ "isUserVerified": verified })),
        })
        .await
        .unwrap();
}

/// The app at `localhost` (where passkeys work), `path` on it.
fn at_localhost(app: &TestApp, path: &str) -> String {
    format!("http://localhost:{}{path}", app.port())
}

async fn wait_displayed(browser: &Client, id: &str) {
    let element = match browser.wait().for_element(Locator::Id(id)).await {
        Ok(element) => element,
        Err(e) => panic!("#{id}: {e} on {}", browser.current_url().await.unwrap()),
    };
    wait_until(&format!("#{id} to show"), Duration::from_secs(15), async || element.is_displayed().await.unwrap_or(false)).await;
}

/// Makes a passkey named `name` on the page that adds one (the offer or an owner's link).
async fn create_passkey(browser: &Client, name: &str) {
    wait_displayed(browser, "passkey-add").await;
    let field = browser.find(Locator::Id("passkey-name")).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(name).await.unwrap();
    browser.find(Locator::Id("passkey-add")).await.unwrap().click().await.unwrap();
    wait_displayed(browser, "passkey-done").await;
}

async fn sign_out(browser: &Client) {
    browser.find(Locator::Id("logout")).await.unwrap().click().await.unwrap();
    browser.wait().for_element(Locator::Id("submit")).await.unwrap().click().await.unwrap();
    assert!(text_of(browser, "#msg").await.contains("signed out"));
}

fn jupyter() -> AppName {
    "Jupyter".parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_passkey_offered_after_a_code_signs_in_next_time_survives_a_restart_and_stops_when_removed() {
    let mut app = spawn_app_with(AppOptions { app_name: Some(jupyter()), ..Default::default() }).await;
    let driver = ChromeDriver::start().await;
    let browser = driver.session(false).await;
    let authenticator = add_authenticator(&browser).await;
    let wanted = at_localhost(&app, "/notebooks/demo.ipynb?kernel=python3");

    // A code first; then, once, the offer.
    browser.goto(&wanted).await.unwrap();
    submit_code(&browser, &app.fresh_code()).await;
    wait_displayed(&browser, "passkey-add").await;
    assert_eq!(browser.current_url().await.unwrap().path(), "/_simpleotp/passkey/add");
    assert_eq!(text_of(&browser, "h1").await, "Sign in with Face ID, Windows Hello or your security key next time?");
    assert!(text_of(&browser, "#passkey-help").await.contains("on this computer (at localhost)"));
    // Its link is in this page's URL only: another program's server on another port of
    // localhost, which gets every cookie of localhost, gets no link.
    let offer_url = browser.current_url().await.unwrap();
    let link = offer_url.query_pairs().find(|(k, _)| k == "link").map(|(_, v)| v.into_owned()).expect("the link in the URL");
    let other = crate::browser::serve_page("<!doctype html><title>other</title><p id=other>another server".into()).await;
    browser.goto(&format!("http://localhost:{}/", other.addr.port())).await.unwrap();
    browser.wait().for_element(Locator::Id("other")).await.unwrap();
    let heard = other.heard.lock().unwrap().join("\n");
    assert!(heard.contains("simpleotp_passkey_asked"), "the check can see cookies: {heard}");
    assert!(!heard.contains(&link.to_lowercase()), "another port received the passkey link:\n{heard}");
    browser.goto(offer_url.as_str()).await.unwrap();
    wait_displayed(&browser, "passkey-add").await;
    save_screenshot(&browser, "passkey-offer").await;
    assert_accessible(&browser, &axe_source(), "the passkey offer").await;
    create_passkey(&browser, "Laptop Touch ID").await;
    assert!(text_of(&browser, "#passkey-done").await.contains("Laptop Touch ID"));
    browser.find(Locator::Id("passkey-continue")).await.unwrap().click().await.unwrap();
    browser.wait().for_element(Locator::Id("demo-title")).await.unwrap();
    assert_eq!(browser.current_url().await.unwrap().as_str(), wanted, "on to the page asked for");

    let gateway = app.handle().gateway().clone();
    let passkeys = gateway.passkeys();
    assert_eq!(passkeys.len(), 1);
    assert_eq!((passkeys[0].name.as_str(), passkeys[0].rp_id.as_str()), ("Laptop Touch ID", "localhost"));
    let held = credentials(&browser, &authenticator).await;
    assert_eq!(held.len(), 1, "the authenticator made one key: {held:?}");
    assert_eq!(held[0]["rpId"], "localhost");

    // Next time: "Sign in with a passkey", back at the page asked for, no code.
    set_user_verified(&browser, &authenticator, false).await;
    sign_out(&browser).await;
    browser.goto(&wanted).await.unwrap();
    wait_displayed(&browser, "passkey-signin").await;
    save_screenshot(&browser, "login-passkey").await;
    assert_accessible(&browser, &axe_source(), "the login page with a passkey").await;
    set_user_verified(&browser, &authenticator, true).await;
    browser.find(Locator::Id("passkey-signin")).await.unwrap().click().await.unwrap();
    browser.wait().for_element(Locator::Id("demo-title")).await.unwrap();
    assert_eq!(browser.current_url().await.unwrap().as_str(), wanted);
    assert_eq!(gateway.sessions().len(), 1);
    assert!(gateway.passkeys()[0].last_used_at.is_some(), "the use is recorded");

    // The passkey and its counter survive a restart; the code field's autofill offers it
    // (conditional mediation, which this authenticator answers by itself).
    app.restart().await;
    let gateway = app.handle().gateway().clone();
    assert_eq!(gateway.passkeys().len(), 1);
    browser.goto(&wanted).await.unwrap();
    browser.wait().for_element(Locator::Id("demo-title")).await.unwrap();
    set_user_verified(&browser, &authenticator, false).await;
    sign_out(&browser).await;
    set_user_verified(&browser, &authenticator, true).await;
    browser.goto(&wanted).await.unwrap();
    browser.wait().for_element(Locator::Id("demo-title")).await.unwrap();
    assert_eq!(browser.current_url().await.unwrap().as_str(), wanted, "signed in through the field's autofill");
    set_user_verified(&browser, &authenticator, false).await;
    sign_out(&browser).await;

    // A page that tells the authenticator not to verify its user (someone's tampered copy of
    // the script): the fingerprint-less answer comes back without the user-verified flag, and
    // the gateway refuses it (user verification is required), counted like a wrong code.
    browser.goto(&wanted).await.unwrap();
    wait_displayed(&browser, "passkey-signin").await;
    assert_eq!(browser.execute_async(START_CEREMONY, vec![]).await.unwrap(), true);
    browser.execute("window.discourageVerification = true;", vec![]).await.unwrap();
    let answer = browser.execute_async(ANSWER_STARTED_CEREMONY, vec![]).await.unwrap();
    assert_eq!(answer["status"], 401, "an answer without user verification: {answer}");
    assert!(gateway.sessions().is_empty());
    assert_eq!(gateway.limiter_status().recent_failures.len(), 1, "counted like a wrong code");

    // Removed while a sign-in is under way: the answer that comes back is refused, and the
    // refusal counts like a wrong code.
    browser.goto(&wanted).await.unwrap();
    wait_displayed(&browser, "passkey-signin").await;
    assert_eq!(browser.execute_async(START_CEREMONY, vec![]).await.unwrap(), true);
    gateway.remove_passkey("Laptop Touch ID").await.unwrap();
    set_user_verified(&browser, &authenticator, true).await;
    let answer = browser.execute_async(ANSWER_STARTED_CEREMONY, vec![]).await.unwrap();
    assert_eq!(answer["status"], 401, "{answer}");
    assert!(answer["body"].as_str().unwrap().contains("not accepted"), "{answer}");
    assert!(gateway.sessions().is_empty());
    let failures = gateway.limiter_status().recent_failures;
    assert_eq!(failures.len(), 2, "the refused passkey counts like a wrong code: {failures:?}");

    // With none left here, the login page has codes only.
    browser.goto(&wanted).await.unwrap();
    browser.wait().for_element(Locator::Id("code")).await.unwrap();
    assert!(browser.find(Locator::Id("passkey-signin")).await.is_err());
    browser.close().await.unwrap();
}

/// Starts a sign-in ceremony as the login page's script does and keeps it in `window.started`.
const START_CEREMONY: &str = "
    const done = arguments[arguments.length - 1];
    const button = document.getElementById('passkey-signin');
    fetch(button.dataset.start, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' })
      .then(r => r.json()).then(s => { window.started = s; done(s.ceremony.length > 0); });";

/// Answers the ceremony `window.started` holds with the authenticator and posts the answer as
/// the page's script would; resolves to the gateway's status and body.
const ANSWER_STARTED_CEREMONY: &str = "
    const done = arguments[arguments.length - 1];
    const b = t => Uint8Array.from(atob(t.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((t.length + 3) % 4)), c => c.charCodeAt(0)).buffer;
    const t = buf => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '');
    const options = window.started.options;
    options.publicKey.challenge = b(options.publicKey.challenge);
    options.publicKey.allowCredentials.forEach(c => { c.id = b(c.id); });
    if (window.discourageVerification) options.publicKey.userVerification = 'discouraged';
    navigator.credentials.get(options).then(c => fetch(document.getElementById('passkey-signin').dataset.finish, {
        method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ ceremony: window.started.ceremony, next: '/', credential: {
          id: c.id, rawId: t(c.rawId), type: c.type, extensions: {},
          response: { authenticatorData: t(c.response.authenticatorData), clientDataJSON: t(c.response.clientDataJSON),
                      signature: t(c.response.signature), userHandle: c.response.userHandle ? t(c.response.userHandle) : null } } }) }))
      .then(r => r.text().then(body => done({ status: r.status, body })))
      .catch(e => done({ status: 0, body: String(e) }));";

#[tokio::test(flavor = "multi_thread")]
async fn a_one_time_link_adds_one_passkey_and_a_cloned_authenticator_is_refused() {
    let mut app = spawn_app_with(AppOptions { app_name: Some(jupyter()), ..Default::default() }).await;
    let driver = ChromeDriver::start().await;
    let browser = driver.session(false).await;
    add_authenticator(&browser).await;

    // The owner's link (the tray's "Add a passkey", `simpleotp passkey add`): no session needed.
    let link = app.handle().gateway().issue_passkey_link();
    let page = at_localhost(&app, &format!("/_simpleotp/passkey/add?link={}&name=YubiKey&next=/", link.expose()));
    browser.goto(&page).await.unwrap();
    assert_eq!(text_of(&browser, "h1").await, "Add a passkey");
    let prefilled = browser.find(Locator::Id("passkey-name")).await.unwrap().prop("value").await.unwrap();
    assert_eq!(prefilled.as_deref(), Some("YubiKey"), "the name given with the link");
    create_passkey(&browser, "Desk key").await;
    assert_eq!(app.handle().gateway().passkeys().len(), 1);
    let renamed = app
        .handle()
        .gateway()
        .rename_passkey("desk KEY", simpleotp_engine::passkey::PasskeyName::parse("Desk YubiKey").unwrap())
        .await
        .unwrap();
    assert_eq!(renamed.name.as_str(), "Desk YubiKey", "found by its name, whatever the case");
    app.handle().gateway().rename_passkey(&renamed.id, simpleotp_engine::passkey::PasskeyName::parse("Desk key").unwrap()).await.unwrap();
    assert_eq!(app.handle().gateway().passkeys()[0].name.as_str(), "Desk key", "and by its id");
    assert!(app.handle().gateway().sessions().is_empty(), "adding a passkey signs nobody in");

    // Used once: the same link again is refused, and says what to do.
    browser.goto(&page).await.unwrap();
    assert_eq!(text_of(&browser, "h1").await, "This link no longer works");
    assert!(text_of(&browser, "p.help").await.contains("make a new one"));

    // At the IP address, the login page says where passkeys work.
    browser.goto(&app.url("/")).await.unwrap();
    let where_ = text_of(&browser, "#passkey-where").await;
    assert!(where_.contains(&format!("http://localhost:{}/_simpleotp/login", app.port())), "{where_}");

    // A cloned authenticator: the stored signature counter is ahead of the one the key sends.
    app.stop().await;
    let state_path = app.data_dir.join("state.json");
    let mut state: Value = serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    let counter = state.pointer_mut("/passkeys/passkeys/0/key/cred/counter").expect("the passkey's counter is kept");
    *counter = json!(1_000_000);
    std::fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();
    app.restart().await;
    browser.goto(&at_localhost(&app, "/")).await.unwrap();
    wait_displayed(&browser, "passkey-signin").await;
    browser.find(Locator::Id("passkey-signin")).await.unwrap().click().await.unwrap();
    wait_displayed(&browser, "passkey-msg").await;
    assert!(text_of(&browser, "#passkey-msg").await.contains("not accepted"));
    assert!(app.handle().gateway().sessions().is_empty());
    browser.close().await.unwrap();
}

/// The offer to add a passkey after a code: once per browser, only where passkeys work, and
/// its link only in the page's URL (never a cookie, which other ports would receive).
#[tokio::test]
async fn the_offer_after_a_code_comes_once_per_browser_and_never_at_an_ip_address() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let localhost = format!("localhost:{}", app.port());
    let post = |code: String, asked: bool| {
        let mut request = client.post(app.route("login")).header("host", &localhost).form(&[("code", code.as_str()), ("next", "/lab")]);
        if asked {
            request = request.header("cookie", "simpleotp_passkey_asked=1");
        }
        request.send()
    };

    let first = post(app.fresh_code(), false).await.unwrap();
    assert_eq!(first.status(), 303);
    let offer = first.headers()["location"].to_str().unwrap().to_owned();
    assert!(offer.starts_with("/_simpleotp/passkey/add?offer=1&link=") && offer.ends_with("&next=%2Flab"), "{offer}");
    let cookies: Vec<&str> = first.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
    assert!(cookies.iter().any(|c| c.starts_with("simpleotp_passkey_asked=1; HttpOnly")), "{cookies:?}");
    // The link is never in a cookie: cookies ignore ports, so every server on localhost would get it.
    let link = offer.split("link=").nth(1).unwrap().split('&').next().unwrap();
    assert!(cookies.iter().all(|c| !c.contains(link)), "{cookies:?}");
    let page = client.get(app.url(&offer)).header("host", &localhost).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["referrer-policy"], "no-referrer", "no Referer carries the link on");
    assert!(page.text().await.unwrap().contains(&format!("data-link=\"{link}\"")));

    let again = post(app.fresh_code(), true).await.unwrap();
    assert_eq!(again.headers()["location"], "/lab", "asked once per browser");

    tokio::time::sleep(Duration::from_secs(30 - simpleotp_engine::totp::unix_now() % 30)).await;
    let at_ip = app.login(&client, "/lab").await;
    assert_eq!(at_ip.headers()["location"], "/lab", "no passkeys at an IP address");
    assert!(!at_ip.headers().get_all("set-cookie").iter().any(|c| c.to_str().unwrap().contains("passkey")));
}

/// `simpleotp passkey add|list|remove` against the running gateway (the link opens in Chromium
/// and adds the passkey under the name given), then without one, on the state file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_adds_lists_and_removes_passkeys() {
    use crate::cli::{run, simpleotp, stderr, stdout};
    let mut app = spawn_app().await;
    let data_dir = app.data_dir.clone();
    let cli = move |args: &[&str]| {
        let mut command = simpleotp(args);
        command.arg("--data-dir").arg(&data_dir);
        tokio::task::spawn_blocking(move || run(&mut command))
    };

    let added = cli(&["passkey", "add", "--name", "Work laptop", "--no-open"]).await.unwrap();
    assert!(added.status.success(), "{}", stderr(&added));
    let out = stdout(&added);
    let prefix = format!("http://localhost:{}/_simpleotp/passkey/add?link=", app.port());
    let link = out.split_whitespace().find(|w| w.starts_with(&prefix)).unwrap_or_else(|| panic!("no link in:\n{out}"));
    assert!(link.ends_with("&name=Work+laptop"), "{link}");
    assert!(out.contains("works once, within 5 minutes"), "{out}");

    let driver = ChromeDriver::start().await;
    let browser = driver.session(false).await;
    add_authenticator(&browser).await;
    browser.goto(link).await.unwrap();
    wait_displayed(&browser, "passkey-add").await;
    assert_eq!(browser.find(Locator::Id("passkey-name")).await.unwrap().prop("value").await.unwrap().as_deref(), Some("Work laptop"));
    browser.find(Locator::Id("passkey-add")).await.unwrap().click().await.unwrap();
    wait_displayed(&browser, "passkey-done").await;
    browser.close().await.unwrap();

    let listed = cli(&["passkey", "list"]).await.unwrap();
    assert!(listed.status.success(), "{}", stderr(&listed));
    let list = stdout(&listed);
    assert!(list.contains("Work laptop  (works at localhost; added ") && list.contains("never used"), "{list}");

    let unknown = cli(&["passkey", "remove", "Phone"]).await.unwrap();
    assert!(!unknown.status.success());
    assert!(stderr(&unknown).contains("there is no passkey with that name or id"), "{}", stderr(&unknown));
    let removed = cli(&["passkey", "remove", "work LAPTOP"]).await.unwrap();
    assert!(removed.status.success(), "{}", stderr(&removed));
    assert!(stdout(&removed).contains("Removed the passkey Work laptop"));
    assert!(app.handle().gateway().passkeys().is_empty(), "gone from the running gateway at once");

    // Without a gateway: list and remove work on the state file; adding needs the gateway.
    app.stop().await;
    let listed = cli(&["passkey", "list"]).await.unwrap();
    assert!(stdout(&listed).contains("No passkeys yet"), "{}", stdout(&listed));
    let add = cli(&["passkey", "add", "--no-open"]).await.unwrap();
    assert!(!add.status.success());
    assert!(stderr(&add).contains("no running gateway uses the data directory"), "{}", stderr(&add));
}

/// A lockout stops every way in: a passkey ceremony is refused while the address is locked out,
/// with the time left (the login page hides the button then; a script that asks anyway is told).
#[tokio::test]
async fn a_lockout_refuses_passkey_ceremonies_too() {
    let app = spawn_app().await;
    crate::browser::lock_out(&app).await;
    let answer = client()
        .post(app.route("passkey/sign-in/start"))
        .header("host", format!("localhost:{}", app.port()))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 429);
    let body = answer.text().await.unwrap();
    assert!(body.contains("Sign-in is locked for ") && body.contains("too many failed tries"), "{body}");
}
