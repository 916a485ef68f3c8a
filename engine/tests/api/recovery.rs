//! Recovery codes (#22 point 3) through the real nginx: `simpleotp recovery-codes new` makes ten
//! through the running gateway; the login page offers "Use a recovery code"; a code signs in
//! once and only once; a wrong one is a failed attempt for the brute-force limiter like a wrong
//! code; what is left survives a restart; without a gateway the command writes the state file
//! itself, hashes only, 0600.

use std::os::unix::fs::PermissionsExt;

use crate::cli::{run, simpleotp, stderr, stdout};
use crate::helpers::*;

/// The codes `simpleotp recovery-codes new` printed.
fn printed_codes(out: &str) -> Vec<String> {
    out.split_whitespace().filter(|w| w.len() == 14 && w.matches('-').count() == 2).map(str::to_string).collect()
}

async fn post_recovery(app: &TestApp, browser: &reqwest::Client, code: &str) -> reqwest::Response {
    browser.post(app.route("login")).header("origin", &app.base).form(&[("recovery", code), ("next", "/lab")]).send().await.unwrap()
}

/// Multi-threaded: the command waits for the gateway, which runs in this test's runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_code_signs_in_once_and_what_is_left_survives_a_restart() {
    let mut app = spawn_app().await;
    assert!(!client().get(app.route("login")).send().await.unwrap().text().await.unwrap().contains("id=\"recovery\""), "no codes yet");

    let data_dir = app.data_dir.clone();
    let made = tokio::task::spawn_blocking(move || run(simpleotp(&["recovery-codes", "new", "--data-dir"]).arg(&data_dir))).await.unwrap();
    assert!(made.status.success(), "{}", stderr(&made));
    let codes = printed_codes(&stdout(&made));
    assert_eq!(codes.len(), 10, "{}", stdout(&made));
    assert_eq!(app.handle().gateway().recovery_codes_left().map(|(left, _)| left), Some(10));
    let state = std::fs::read_to_string(app.data_dir.join("state.json")).unwrap();
    assert!(codes.iter().all(|c| !state.contains(c.as_str()) && !state.contains(&c.replace('-', ""))), "only hashes are kept");

    let page = client().get(app.route("login")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Use a recovery code") && page.contains("name=\"recovery\""), "{page}");

    // Once: it signs in (typed in capitals, with spaces), then never again.
    let browser = client();
    let typed = codes[0].to_uppercase().replace('-', " ");
    let signed_in = post_recovery(&app, &browser, &typed).await;
    assert_eq!(signed_in.status(), 303, "{}", signed_in.text().await.unwrap());
    assert_eq!(location(&signed_in), "/lab");
    assert_eq!(browser.get(app.url("/lab")).send().await.unwrap().status(), 200, "signed in to the app");
    let again = post_recovery(&app, &client(), &codes[0]).await;
    assert_eq!(again.status(), 401);
    assert!(again.text().await.unwrap().contains("That recovery code didn't work"));
    assert_eq!(app.handle().gateway().recovery_codes_left().map(|(left, _)| left), Some(9));

    // A wrong one is a failure the limiter counts, like a wrong code.
    let before = app.handle().gateway().limiter_status().recent_failures.len();
    assert_eq!(post_recovery(&app, &client(), "0000-0000-0000").await.status(), 401);
    assert_eq!(app.handle().gateway().limiter_status().recent_failures.len(), before + 1);

    // After a restart: the used one still fails, the next one works.
    app.restart().await;
    assert_eq!(post_recovery(&app, &client(), &codes[0]).await.status(), 401);
    assert_eq!(post_recovery(&app, &client(), &codes[1]).await.status(), 303);
    assert_eq!(app.handle().gateway().recovery_codes_left().map(|(left, _)| left), Some(8));

    // A new set replaces the old one at once.
    let data_dir = app.data_dir.clone();
    let renewed =
        tokio::task::spawn_blocking(move || run(simpleotp(&["recovery-codes", "new", "--data-dir"]).arg(&data_dir))).await.unwrap();
    let renewed = printed_codes(&stdout(&renewed));
    assert_eq!(renewed.len(), 10);
    assert_eq!(post_recovery(&app, &client(), &codes[2]).await.status(), 401, "the old set stopped working");
    assert_eq!(post_recovery(&app, &client(), &renewed[0]).await.status(), 303);
}

/// With no gateway running, the command writes the state file itself (0600, hashes only), and
/// the next gateway reads them.
#[test]
fn without_a_gateway_the_codes_go_into_the_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let made = run(simpleotp(&["recovery-codes", "new", "--data-dir"]).arg(&data_dir));
    assert!(made.status.success(), "{}", stderr(&made));
    let codes = printed_codes(&stdout(&made));
    assert_eq!(codes.len(), 10);
    let path = data_dir.join("state.json");
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let state = simpleotp_engine::state::PersistedState::from_bytes(&std::fs::read(&path).unwrap()).unwrap();
    let mut set = state.recovery.expect("a set in the state file");
    assert_eq!(set.remaining(), 10);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(codes.iter().all(|c| !text.contains(&c.replace('-', ""))));
    assert!(set.use_code(&codes[4]));
}
