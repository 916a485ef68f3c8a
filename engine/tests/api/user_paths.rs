//! A data directory under a person's name, on every OS.
//!
//! On Windows the data directory is `%LOCALAPPDATA%\SimpleOTP`, so the user name is part of every
//! path the gateway hands nginx: `C:\Users\Zoë Müller\AppData\Local\…`. nginx for Windows reads its
//! command line in the ANSI code page but opens files as UTF-8, so an absolute `-c` under such a
//! name fails with `CreateFile() … (1113: No Unicode translation)` (issue 18). The gateway runs
//! nginx in its prefix with relative, ASCII arguments; these tests run a whole gateway in a
//! folder named `Zoë Müller` (non-ASCII and a space) and use it the way a person does.

use std::time::Duration;

use crate::helpers::*;

/// A temp folder with `Zoë Müller` in it (held by the returned guard) and the data directory under it.
fn zoe_mueller_data_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let home = tempfile::tempdir().unwrap();
    let data_dir = home.path().join("Zoë Müller").join("AppData").join("SimpleOTP");
    (home, data_dir)
}

/// Signs `browser` out through the logout form (GET for the CSRF value, then POST).
async fn sign_out(app: &TestApp, browser: &Browser) {
    let confirm = browser.get(app.route("logout")).send().await.unwrap();
    let csrf = form_field(&confirm.text().await.unwrap(), "csrf").expect("the logout form has a CSRF field");
    let out = browser.post(app.route("logout")).header("origin", &app.base).form(&[("csrf", &csrf)]).send().await.unwrap();
    assert_eq!(out.status(), 303);
}

#[tokio::test]
async fn a_data_directory_under_zoe_mueller_signs_in_restarts_and_stops_cleanly() {
    let (_home, data_dir) = zoe_mueller_data_dir();
    let mut app = spawn_app_with(AppOptions { data_dir: Some(data_dir.clone()), ..Default::default() }).await;
    let layout = simpleotp_engine::app::nginx_layout(&data_dir);
    assert!(layout.conf_path().is_file() && layout.pid_path().is_file(), "nginx's files are in {}", layout.prefix_dir.display());

    // Signed out: nginx asks the auth server and sends the browser to the login page.
    let browser = client();
    let response = browser.get(app.url("/notebooks")).send().await.unwrap();
    assert_eq!(response.status(), 302);
    assert!(location(&response).contains("/login?next=%2Fnotebooks"), "{}", location(&response));
    // Sign in through nginx.
    assert_eq!(app.login(&browser, "/").await.status(), 303);
    assert_eq!(browser.get(app.url("/")).send().await.unwrap().status(), 200);

    // Stopped and started again on that folder: the session was kept there.
    app.restart().await;
    assert_eq!(browser.get(app.url("/")).send().await.unwrap().status(), 200, "signed in after a restart");

    // A clean stop leaves nothing behind: no master, no worker holding the port.
    let pid = app.handle().nginx().unwrap().pid().unwrap();
    app.stop().await;
    assert!(!process_alive(pid), "nginx stopped with the gateway");
    wait_until("the app's port to be free", Duration::from_secs(5), async || {
        std::net::TcpListener::bind(("127.0.0.1", app.port())).is_ok()
    })
    .await;
}

#[tokio::test]
async fn under_zoe_mueller_a_config_change_reloads_and_a_sign_out_recycles_the_workers() {
    let (_home, data_dir) = zoe_mueller_data_dir();
    let app = spawn_app_with(AppOptions { data_dir: Some(data_dir), ..Default::default() }).await;
    let browser = client();
    assert_eq!(app.login(&browser, "/").await.status(), 303);

    // A config change: nginx tests the new config in that folder and reloads it.
    let nginx = app.handle().nginx().unwrap();
    let pid = nginx.pid().unwrap();
    let (_, config) = app.add_app("Second").await;
    assert_eq!(nginx.pid(), Some(pid), "a reload keeps the master");
    assert_eq!(client().get(config.apps[1].protected_url()).send().await.unwrap().status(), 302);

    // A sign-out has nginx replace its workers; the new ones serve from the same folder.
    sign_out(&app, &browser).await;
    assert_eq!(browser.get(app.url("/")).send().await.unwrap().status(), 302, "signed out");
    let again = client();
    assert_eq!(app.login(&again, "/").await.status(), 303);
    wait_until("the new workers to let the signed-in browser in", Duration::from_secs(10), async || {
        again.get(app.url("/")).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert_eq!(nginx.pid(), Some(pid), "the workers were replaced, not the master");
}

/// nginx runs in its prefix and is given only relative, ASCII names, whatever the data directory
/// is called. Read back from the running master where the OS lets a test see another process's
/// command line and working directory (Linux: /proc; macOS: ps); on Windows the tests above are
/// the proof (an absolute path under `Zoë Müller` would fail there).
#[cfg(unix)]
#[tokio::test]
async fn nginx_is_started_in_its_prefix_with_relative_ascii_arguments() {
    let (home, data_dir) = zoe_mueller_data_dir();
    let app = spawn_app_with(AppOptions { data_dir: Some(data_dir.clone()), ..Default::default() }).await;
    let pid = app.handle().nginx().unwrap().pid().unwrap();

    #[cfg(target_os = "linux")]
    let cmdline = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap()).replace('\0', " ");
    #[cfg(not(target_os = "linux"))]
    let cmdline = String::from_utf8_lossy(
        &std::process::Command::new("ps").args(["-o", "command=", "-p", &pid.to_string()]).output().unwrap().stdout,
    )
    .into_owned();
    // nginx rewrites its argv to "nginx: master process <binary> -p … -c … -e …".
    let args: Vec<&str> = cmdline.split_whitespace().collect();
    for flag in ["-p", "-c", "-e"] {
        let at = args.iter().position(|a| *a == flag).unwrap_or_else(|| panic!("no {flag} in {cmdline:?}"));
        let value = args.get(at + 1).unwrap_or_else(|| panic!("{flag} without a value in {cmdline:?}"));
        assert!(value.is_ascii() && !value.starts_with('/'), "{flag} {value} is not a relative ASCII name: {cmdline:?}");
    }
    let home = home.path().to_string_lossy();
    assert!(!cmdline.contains("Zoë Müller") && !cmdline.contains(&*home), "the data directory is on nginx's command line: {cmdline:?}");
    #[cfg(target_os = "linux")]
    {
        let prefix = simpleotp_engine::app::nginx_layout(&data_dir).prefix_dir.canonicalize().unwrap();
        assert_eq!(std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(), prefix, "nginx runs in its prefix");
    }
}
