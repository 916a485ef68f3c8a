//! Several authenticator apps (#22 point 2) through the real nginx: `simpleotp authenticator add`
//! (the code piped in, as a person types it) adds one through the running gateway; codes of
//! either app sign in, each with its own replay guard; both and their guards survive a restart;
//! a removed one's code fails at once; the last one stays; a bare secret file (every earlier
//! version's) is one authenticator, and an old state file's replay step is the first one's;
//! without a gateway the command works on the secret file itself.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use simpleotp_engine::authenticator::{AuthenticatorName, Authenticators, PendingAuthenticator, DEFAULT_NAME, FIRST_ID};
use simpleotp_engine::config::{Account, Issuer};
use simpleotp_engine::totp::{unix_now, Totp, TotpSecret};

use crate::cli::{run, simpleotp, stderr, stdout};
use crate::helpers::*;

/// Codes of a secret, whatever the labels (they are not part of the code).
fn totp_of(secret: &TotpSecret) -> Totp {
    Totp::new(secret, &Issuer::parse("SimpleOTP").unwrap(), &Account::parse("test").unwrap())
}

/// Runs `simpleotp authenticator add` like a person: reads the setup key it shows, and types
/// (pipes) first `typed_first` if given (a wrong code, to be asked again), then the new app's
/// current code. Returns the new secret and everything it printed.
fn add_through_cli(command: &mut Command, typed_first: Option<&str>) -> (TotpSecret, String, bool) {
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("simpleotp runs");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    let mut line = String::new();
    let key = loop {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            panic!("no setup key was shown:\n{printed}\n{err}");
        }
        printed.push_str(&line);
        if let Some(key) = line.strip_prefix("Or enter this setup key by hand: ") {
            break key.trim().to_string();
        }
    };
    let secret = TotpSecret::from_base32(&key).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if let Some(wrong) = typed_first {
        writeln!(stdin, "{wrong}").unwrap();
    }
    writeln!(stdin, "{}", totp_of(&secret).code_at(unix_now())).unwrap();
    drop(stdin);
    out.read_to_string(&mut printed).unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    printed.push_str(&err);
    let ok = child.wait().unwrap().success();
    (secret, printed, ok)
}

fn gateway_args(command: &mut Command, data_dir: &Path, secret_file: &Path) {
    command.arg("--data-dir").arg(data_dir).arg("--secret-file").arg(secret_file);
}

/// A code of `totp` for `step` (Unix seconds of its start).
fn code_of(totp: &Totp, step: u64) -> String {
    totp.code_at(step * 30)
}

/// Multi-threaded: the command waits for the gateway, which runs in this test's runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_authenticator_signs_in_with_its_own_replay_guard_and_survives_a_restart() {
    let mut app = spawn_app().await;
    let (data_dir, secret_file) = (app.data_dir.clone(), app.secret_file.clone());
    let (pixel, printed, ok) = tokio::task::spawn_blocking(move || {
        let mut add = simpleotp(&["authenticator", "add", "--name", "Pixel"]);
        gateway_args(&mut add, &data_dir, &secret_file);
        add_through_cli(&mut add, Some("000000"))
    })
    .await
    .unwrap();
    assert!(ok, "{printed}");
    assert!(printed.contains("That is not the new app's code"), "a wrong code is asked again: {printed}");
    assert!(printed.contains("Added \"Pixel\""), "{printed}");
    let pixel = totp_of(&pixel);
    let listed = app.handle().gateway().authenticators();
    assert_eq!(listed.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), [DEFAULT_NAME, "Pixel"]);
    let stored = std::fs::read_to_string(&app.secret_file).unwrap();
    assert!(stored.starts_with("{\"v\":1,"), "the secret file holds both now");
    assert_eq!(std::fs::metadata(&app.secret_file).unwrap().permissions().mode() & 0o777, 0o600);

    // `list` through the gateway: names and ids, never a secret.
    let (data_dir, secret_file) = (app.data_dir.clone(), app.secret_file.clone());
    let list = tokio::task::spawn_blocking(move || {
        let mut list = simpleotp(&["authenticator", "list"]);
        gateway_args(&mut list, &data_dir, &secret_file);
        run(&mut list)
    })
    .await
    .unwrap();
    let listed_text = stdout(&list);
    assert!(list.status.success(), "{}", stderr(&list));
    assert!(listed_text.contains("Pixel") && listed_text.contains(DEFAULT_NAME) && listed_text.contains(&listed[1].id), "{listed_text}");
    assert!(listed_text.contains("at setup"), "{listed_text}");
    assert!(!listed_text.contains(&app.secret_base32()[..10]), "{listed_text}");

    // The first app's code signs in; so does Pixel's (its confirming code's step is used, so the
    // next step's), once; and the first app's code of that same step still works: each has its
    // own guard.
    let first = client();
    assert_eq!(app.login(&first, "/").await.status(), 303);
    let step = Totp::step_at(unix_now()) + 1;
    let second = client();
    assert_eq!(app.post_code(&second, &code_of(&pixel, step), "/").await.status(), 303, "Pixel's code signs in");
    assert_eq!(second.get(app.url("/")).send().await.unwrap().status(), 200);
    let replayed = app.post_code(&client(), &code_of(&pixel, step), "/").await;
    assert_eq!(replayed.status(), 401, "Pixel's code works once");
    assert_eq!(app.post_code(&client(), &app.code_at(step * 30), "/").await.status(), 303, "the first app's guard is its own");
    let sessions = app.handle().gateway().sessions();
    let mut with: Vec<String> = sessions.iter().map(|s| s.signed_in_with.describe()).collect();
    with.sort();
    assert_eq!(with, [DEFAULT_NAME, DEFAULT_NAME, "Pixel"]);

    // A restart keeps both, and both guards.
    app.restart().await;
    assert_eq!(app.handle().gateway().authenticators().len(), 2);
    assert_eq!(app.post_code(&client(), &code_of(&pixel, step), "/").await.status(), 401, "still used after a restart");
    assert_eq!(app.post_code(&client(), &app.code_at(step * 30), "/").await.status(), 401, "still used after a restart");
    let state = std::fs::read_to_string(app.data_dir.join("state.json")).unwrap();
    assert!(state.contains("\"last_totp_steps\"") && state.contains(&listed[1].id), "{state}");
    assert!(state.contains(r#""signed_in_with":{"kind":"code","authenticator":"Pixel"}"#), "{state}");
}

/// A removed authenticator's code fails at once (the gateway's set changes as the secret store
/// is written); the last one cannot be removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_authenticators_code_fails_at_once_and_the_last_one_stays() {
    let app = spawn_app().await;
    let gateway = app.handle().gateway().clone();
    let (issuer, account) = gateway.issuer_and_account();
    let pending = PendingAuthenticator::new(AuthenticatorName::parse("Watch").unwrap());
    let watch = pending.totp(&issuer, &account);
    let added = gateway.add_authenticator(pending, &watch.code_at(unix_now())).await.unwrap();
    assert_eq!(added.name, "Watch");

    let (data_dir, secret_file) = (app.data_dir.clone(), app.secret_file.clone());
    let removed = tokio::task::spawn_blocking(move || {
        let mut remove = simpleotp(&["authenticator", "remove", "watch"]);
        gateway_args(&mut remove, &data_dir, &secret_file);
        run(&mut remove)
    })
    .await
    .unwrap();
    assert!(removed.status.success(), "{}", stderr(&removed));
    assert!(stdout(&removed).contains("Removed \"Watch\""), "{}", stdout(&removed));
    // The next step's code is newer than the one that confirmed it: it would sign in if Watch
    // were still there.
    let step = Totp::step_at(unix_now()) + 1;
    assert_eq!(app.post_code(&client(), &code_of(&watch, step), "/").await.status(), 401);
    assert_eq!(gateway.authenticators().len(), 1);
    // The file holds the set setup made again: the bare secret, as before.
    assert!(TotpSecret::from_base32(&app.secret_base32()).is_ok());

    let (data_dir, secret_file) = (app.data_dir.clone(), app.secret_file.clone());
    let last = tokio::task::spawn_blocking(move || {
        let mut remove = simpleotp(&["authenticator", "remove", FIRST_ID]);
        gateway_args(&mut remove, &data_dir, &secret_file);
        run(&mut remove)
    })
    .await
    .unwrap();
    assert!(!last.status.success());
    assert!(stderr(&last).contains("only authenticator"), "{}", stderr(&last));
    assert_eq!(app.login(&client(), "/").await.status(), 303, "the first one still signs in");
}

/// A bare secret file, as every earlier version wrote it, is one authenticator; an old state
/// file's single replay step belongs to it.
#[tokio::test]
async fn a_legacy_secret_file_and_state_file_load_as_the_first_authenticator() {
    let mut app = spawn_app().await;
    let listed = app.handle().gateway().authenticators();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].id.as_str(), listed[0].name.as_str(), listed[0].added_at), (FIRST_ID, DEFAULT_NAME, None));

    app.stop().await;
    let now_step = Totp::step_at(unix_now());
    std::fs::write(app.data_dir.join("state.json"), format!(r#"{{"version":1,"last_totp_step":{now_step},"sessions":[]}}"#)).unwrap();
    app.restart().await;
    let used = app.post_code(&client(), &app.code_at(now_step * 30), "/").await;
    assert_eq!(used.status(), 401, "the old file's step guards the first authenticator");
    assert_eq!(app.post_code(&client(), &app.code_at((now_step + 1) * 30), "/").await.status(), 303);
    let state = std::fs::read_to_string(app.data_dir.join("state.json")).unwrap();
    assert!(
        state.contains(&format!(r#""last_totp_steps":{{"first":{}}}"#, now_step + 1)) && !state.contains("\"last_totp_step\""),
        "{state}"
    );
}

/// Without a gateway, the commands work on the secret file (0600) themselves; removing the
/// added one leaves the bare secret `init` wrote.
#[test]
fn without_a_gateway_the_commands_change_the_secret_file() {
    let dir = tempfile::tempdir().unwrap();
    let (secret_file, data_dir) = (dir.path().join("secret"), dir.path().join("data"));
    let init = run(simpleotp(&["init", "--secret-file"]).arg(&secret_file));
    assert!(init.status.success(), "{}", stderr(&init));
    let bare = std::fs::read_to_string(&secret_file).unwrap();

    let mut add = simpleotp(&["authenticator", "add", "--name", "1Password"]);
    gateway_args(&mut add, &data_dir, &secret_file);
    let (secret, printed, ok) = add_through_cli(&mut add, None);
    assert!(ok, "{printed}");
    assert_eq!(std::fs::metadata(&secret_file).unwrap().permissions().mode() & 0o777, 0o600);
    let set = Authenticators::decode(&std::fs::read_to_string(&secret_file).unwrap()).unwrap();
    assert_eq!(set.len(), 2);
    assert_eq!(set.find("1password").unwrap().secret.as_bytes(), secret.as_bytes());
    assert_eq!(set.first().secret.to_base32(), bare.trim());
    // Its confirming code's step is its replay guard in the state file.
    let state = std::fs::read_to_string(data_dir.join("state.json")).unwrap();
    assert!(state.contains(set.find("1Password").unwrap().id.as_str()), "{state}");

    // A taken name is refused before anything is shown.
    let mut again = simpleotp(&["authenticator", "add", "--name", "1PASSWORD"]);
    gateway_args(&mut again, &data_dir, &secret_file);
    let again = run(again.stdin(Stdio::null()));
    assert!(!again.status.success() && stderr(&again).contains("exists already"), "{}", stderr(&again));
    assert!(!stdout(&again).contains("setup key"));

    let mut list = simpleotp(&["authenticator", "list"]);
    gateway_args(&mut list, &data_dir, &secret_file);
    let list = run(&mut list);
    assert!(list.status.success() && stdout(&list).contains("1Password"), "{}", stderr(&list));
    assert!(!stdout(&list).contains(&secret.to_base32()[..10]));

    let mut remove = simpleotp(&["authenticator", "remove", "1Password"]);
    gateway_args(&mut remove, &data_dir, &secret_file);
    let remove = run(&mut remove);
    assert!(remove.status.success(), "{}", stderr(&remove));
    assert_eq!(std::fs::read_to_string(&secret_file).unwrap(), bare, "back to the bare secret");

    let mut last = simpleotp(&["authenticator", "remove", DEFAULT_NAME]);
    gateway_args(&mut last, &data_dir, &secret_file);
    let last = run(&mut last);
    assert!(!last.status.success() && stderr(&last).contains("only authenticator"), "{}", stderr(&last));

    // Typing nothing (end of input) adds nothing.
    let mut nothing = simpleotp(&["authenticator", "add", "--name", "Pixel"]);
    gateway_args(&mut nothing, &data_dir, &secret_file);
    let nothing = run(nothing.stdin(Stdio::null()));
    assert!(!nothing.status.success() && stderr(&nothing).contains("nothing was added"), "{}", stderr(&nothing));
    assert_eq!(std::fs::read_to_string(&secret_file).unwrap(), bare);
}
