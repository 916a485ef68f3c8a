//! The attempt budget through the real nginx: spent tries stay spent across restarts, and the
//! owner's unlock lifts the per-address lockouts and gives a one-time sign-in link without
//! refilling the budget (see `limiter` and `ticket` in the engine).

use std::time::Duration;

use simpleotp_engine::control;
use simpleotp_engine::limiter::LimiterSettings;
use simpleotp_engine::state::PersistedState;
use simpleotp_engine::ticket::TICKET_ATTEMPTS;
use simpleotp_engine::totp::unix_now;

use crate::helpers::*;

/// Three tries in all, no refill within a test; the third failure from one address also locks
/// that address (so unlock has something to lift).
fn small_budget() -> AppOptions {
    AppOptions {
        limiter: LimiterSettings {
            ip_free_failures: 3,
            ip_base_lockout: Duration::from_secs(600),
            ip_max_lockout: Duration::from_secs(3600),
            global_burst: 3,
            global_refill: Duration::from_secs(24 * 3600),
        },
        ..Default::default()
    }
}

/// Spends the whole budget with wrong codes, checking after each answer that the spent try was
/// already on disk when it was answered.
async fn drain(app: &TestApp) {
    let browser = client();
    for spent in 1..=3u64 {
        assert_eq!(app.post_code(&browser, &app.wrong_code(), "/").await.status(), 401);
        let state = PersistedState::from_bytes(&std::fs::read(app.data_dir.join("state.json")).unwrap()).unwrap();
        let budget = state.limiter.expect("the budget is in the state file");
        assert!(budget.bucket_milli_tokens <= (3 - spent) * 1000 + 1, "try {spent} not on disk when answered: {budget:?}");
    }
}

/// A right code (that the gateway must refuse without checking it) from a new browser.
async fn plain_login_is_refused(app: &TestApp, why: &str) {
    let response = app.post_code(&client(), &app.code_at(unix_now()), "/").await;
    assert_eq!(response.status(), 429, "{why}");
    assert!(response.text().await.unwrap().contains("Too many wrong codes"), "{why}");
}

#[tokio::test]
async fn a_restart_does_not_refill_the_budget() {
    let mut app = spawn_app_with(small_budget()).await;
    drain(&app).await;
    plain_login_is_refused(&app, "budget spent").await;

    app.restart().await;
    plain_login_is_refused(&app, "still spent after a restart").await;
    let status = app.handle().gateway().limiter_status();
    assert!(status.everyone_locked_for.is_some_and(|d| d > Duration::from_secs(23 * 3600)), "{status:?}");
    assert_eq!(status.locked_clients.len(), 1, "the address's lockout survived too: {status:?}");
}

#[tokio::test]
async fn unlock_lifts_address_lockouts_keeps_the_budget_and_gives_a_one_time_link() {
    let app = spawn_app_with(small_budget()).await;
    drain(&app).await;
    let status = app.handle().gateway().limiter_status();
    assert!(status.everyone_locked_for.is_some() && status.locked_clients.len() == 1, "{status:?}");

    // Through the real control route, with the token from the control file.
    let (link, _) = control::unlock(&app.data_dir).await.expect("unlock through the control file");
    assert!(link.login_path.starts_with("/_simpleotp/login?ticket="), "{}", link.login_path);
    assert_eq!((link.expires_in_secs, link.attempts), (600, TICKET_ATTEMPTS));
    let status = app.handle().gateway().limiter_status();
    assert!(status.locked_clients.is_empty(), "per-address lockouts lifted: {status:?}");
    assert!(status.everyone_locked_for.is_some(), "the budget is not refilled: {status:?}");
    plain_login_is_refused(&app, "unlock gives plain logins nothing").await;

    // The owner opens the link: the form carries the ticket, and a right code gets in.
    let owner = client();
    let page = owner.get(app.url(&link.login_path)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("Unlock link accepted"), "{page}");
    assert!(!page.contains("Too many wrong codes"), "{page}");
    let ticket = form_field(&page, "ticket").expect("a hidden ticket field");
    assert_eq!(link.login_path, format!("/_simpleotp/login?ticket={ticket}"));
    let code = app.fresh_code();
    let signed_in = owner
        .post(app.route("login"))
        .header("origin", &app.base)
        .form(&[("code", code.as_str()), ("next", "/"), ("ticket", ticket.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    assert_eq!(owner.get(app.url("/")).send().await.unwrap().status(), 200, "signed in");

    // Used once, gone: the page says so, and the form posted again is an ordinary (refused) login.
    let again = client();
    let page = again.get(app.url(&link.login_path)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("expired or was already used"), "{page}");
    assert_eq!(form_field(&page, "ticket"), None);
    let replay = again
        .post(app.route("login"))
        .header("origin", &app.base)
        .form(&[("code", app.fresh_code().as_str()), ("next", "/"), ("ticket", ticket.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 429, "a used ticket skips nothing");
    assert_eq!(app.handle().gateway().sessions().len(), 1);
}

#[tokio::test]
async fn a_ticket_is_worth_a_few_codes_only_and_made_up_ones_nothing() {
    let app = spawn_app_with(small_budget()).await;
    drain(&app).await;
    let browser = client();
    let post = async |code: &str, ticket: &str| {
        browser
            .post(app.route("login"))
            .header("origin", &app.base)
            .form(&[("code", code), ("next", "/"), ("ticket", ticket)])
            .send()
            .await
            .unwrap()
    };

    let made_up = "A".repeat(43);
    assert_eq!(post(&app.code_at(unix_now()), &made_up).await.status(), 429, "a made-up ticket skips nothing");

    let (link, _) = control::unlock(&app.data_dir).await.unwrap();
    let ticket = link.login_path.rsplit_once("ticket=").unwrap().1.to_string();
    for n in 1..=TICKET_ATTEMPTS {
        let response = post(&app.wrong_code(), &ticket).await;
        assert_eq!(response.status(), 401, "wrong code {n} with the ticket is checked");
        let page = response.text().await.unwrap();
        assert!(page.contains("That code didn"), "{page}");
        // The form keeps the ticket while it has tries left.
        assert_eq!(form_field(&page, "ticket").is_some(), n < TICKET_ATTEMPTS, "after {n} tries");
    }
    assert_eq!(post(&app.code_at(unix_now()), &ticket).await.status(), 429, "the ticket's tries are used up");
    assert!(app.handle().gateway().sessions().is_empty());
    let status = app.handle().gateway().limiter_status();
    assert!(status.everyone_locked_for.is_some(), "{status:?}");

    // A new unlock replaces the ticket: the old one is dead even before it was used.
    let (first, _) = control::unlock(&app.data_dir).await.unwrap();
    let (second, _) = control::unlock(&app.data_dir).await.unwrap();
    assert_ne!(first.login_path, second.login_path);
    let page = browser.get(app.url(&first.login_path)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("expired or was already used"), "{page}");
}
