//! Faults, caused for real: an app that is down, a full or read-only data directory (a small
//! tmpfs, which needs root: CI runs as root), the engine SIGKILLed while it writes its state,
//! and the wall clock jumping (libfaketime under the real `simpleotp serve`).
//!
//! nginx killed or crashing in a loop is in [`crate::nginx`]; a missing or locked keychain in
//! the `secret` module's tests and [`crate::cli`].

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use simpleotp_engine::protocol::session_cookie_name;
use simpleotp_engine::session::{SessionStore, SignInMethod};
use simpleotp_engine::state::{PersistedState, StateFile};
use simpleotp_engine::totp::unix_now;

use crate::cli::{init_secret_file, serve_on_free_port, write_config, write_config_on, Serve, ServeFailed};
use crate::helpers::*;

#[tokio::test]
async fn an_app_that_is_down_gets_a_clear_502_page_not_a_login_loop() {
    // A port nothing listens on (and no other test is given): the app is down.
    let closed = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let app = spawn_app_with(AppOptions { upstream: Some(closed), ..Default::default() }).await;
    let browser = client();
    app.login(&browser, "/").await;
    let response = browser.get(app.url("/notebooks")).send().await.unwrap();
    assert_eq!(response.status(), 502);
    let page = response.text().await.unwrap();
    assert!(page.contains("Demo is not answering"), "{page}");
    assert!(page.contains("You are signed in"));
    assert_eq!(app.handle().gateway().sessions().len(), 1, "still signed in: no login loop");

    // The app's name comes from the configuration, never from a request header: neither
    // through nginx nor straight at the auth server.
    let evil = "<b>Evil</b> app";
    let page = browser.get(app.url("/")).header("x-simpleotp-app", evil).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Demo is not answering") && !page.contains("Evil"), "{page}");
    let direct = format!("http://{}{}", app.auth_addr(), app.config.route_prefix.route("upstream-down"));
    let page = client().get(direct).header("x-simpleotp-app", evil).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("The app is not answering") && !page.contains("Evil"), "{page}");
}

/// An `https` app is proxied only if its certificate checks out against the system's roots,
/// unless the app says `tls_verify = false` (a self-signed app on this machine).
#[tokio::test]
async fn https_upstreams_are_verified_unless_the_app_opts_out() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl is installed");
    assert!(made.success());
    // Port 0: s_server takes a free port itself and says which ("ACCEPT 127.0.0.1:PORT"; not
    // with -quiet), so no other program can take it between our choice and its bind.
    let mut server = Command::new("openssl")
        .args(["s_server", "-www", "-accept", "127.0.0.1:0"])
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut output = std::io::BufReader::new(server.stdout.take().unwrap()).lines();
    let accept = output.find_map(|line| line.ok()?.strip_prefix("ACCEPT ").map(str::to_string)).expect("openssl s_server says its port");
    let port: u16 = accept.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("s_server said ACCEPT {accept}"));
    // The rest of its output is read and dropped, so that a full pipe never blocks it.
    std::thread::spawn(move || output.for_each(drop));
    wait_until("openssl s_server to listen", Duration::from_secs(10), async || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())
        .await;

    let app = spawn_app().await;
    let mut config = app.config.clone();
    config.apps[0].upstream = format!("https://127.0.0.1:{port}").parse().unwrap();
    app.handle().apply_config(&config).await.unwrap();
    let browser = client();
    app.login(&browser, "/").await;
    // Self-signed: nginx refuses to talk to it, and the browser gets the "not answering" page.
    // (nginx reloads in the background: the old workers may answer a moment longer.)
    wait_until("the reloaded nginx to refuse the certificate", Duration::from_secs(10), async || {
        browser.get(app.url("/")).send().await.unwrap().status() == 502
    })
    .await;
    let log = std::fs::read_to_string(app.data_dir.join("nginx/logs/error.log")).unwrap();
    assert!(log.contains("certificate verify failed") || log.contains("self-signed"), "{log}");

    config.apps[0].tls_verify = false;
    app.handle().apply_config(&config).await.unwrap();
    wait_until("the app to be reached without verification", Duration::from_secs(10), async || {
        let page = browser.get(app.url("/")).send().await.unwrap();
        page.status() == 200 && page.text().await.unwrap().contains("s_server")
    })
    .await;
    let _ = server.kill();
    let _ = server.wait();
}

/// A tmpfs of `size` at `path`, unmounted on drop.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    fn mount(path: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"]).arg(path).status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "mounting a tmpfs failed: this fault test needs root (as in CI); run the suite with scripts/test as root"
        );
        SmallDisk { path: path.to_path_buf() }
    }

    fn mount_read_only(path: &Path) -> SmallDisk {
        let disk = SmallDisk::mount(path, "1m");
        assert!(Command::new("mount").args(["-o", "remount,ro"]).arg(&disk.path).status().unwrap().success());
        disk
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn full_data_directory_is_reported_and_the_gateway_keeps_serving() {
    let scratch = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(&scratch.path().join("data"), "4m");
    let app = spawn_app_with(AppOptions { data_dir: Some(disk.path.clone()), ..Default::default() }).await;
    let mut events = app.handle().gateway().subscribe();
    let first = client();
    assert_eq!(app.login(&first, "/").await.status(), 303);
    assert!(app.handle().gateway().persist_error().is_none());

    // Fill the disk to the last byte.
    let _ =
        Command::new("dd").args(["if=/dev/zero", "bs=64k"]).arg(format!("of={}/fill", disk.path.display())).stderr(Stdio::null()).status();
    // A sign-in is answered only once its code is on disk: on a full disk it is refused, and
    // says so, because after a restart the same code would work again.
    let second = client();
    let refused = app.login(&second, "/").await;
    assert_eq!(refused.status(), 503, "a sign-in that cannot be saved is refused");
    assert!(refused.headers().get("set-cookie").is_none());
    assert!(refused.text().await.unwrap().contains("could not save it"));
    assert_eq!(second.get(app.url("/")).send().await.unwrap().status(), 302, "no session was started");
    let error = app.handle().gateway().persist_error().expect("the failed write is reported");
    assert!(error.contains("No space left") && error.contains("disk"), "{error}");
    let reported = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(simpleotp_engine::gateway::GatewayEvent::PersistFailed(message)) = events.recv().await {
                return message;
            }
        }
    })
    .await
    .expect("a PersistFailed event for the tray app");
    assert_eq!(reported, error);
    assert_eq!(first.get(app.url("/")).send().await.unwrap().status(), 200, "signed-in browsers keep working");
    let on_disk = PersistedState::from_bytes(&std::fs::read(disk.path.join("state.json")).unwrap()).unwrap();
    assert_eq!(on_disk.sessions.len(), 1, "the file on disk is the last complete one");

    // Space again: the next maintenance pass writes everything and clears the error, and the
    // next code signs in (the refused one stays used).
    std::fs::remove_file(disk.path.join("fill")).unwrap();
    wait_until("the state to be written again", Duration::from_secs(15), async || app.handle().gateway().persist_error().is_none()).await;
    let code = app.fresh_code_waiting().await;
    assert_eq!(app.post_code(&second, &code, "/").await.status(), 303);
    let on_disk = PersistedState::from_bytes(&std::fs::read(disk.path.join("state.json")).unwrap()).unwrap();
    assert_eq!(on_disk.sessions.len(), 2);

    // Revocations are kept in memory while the disk is full, and written once it is not.
    let _ =
        Command::new("dd").args(["if=/dev/zero", "bs=64k"]).arg(format!("of={}/fill", disk.path.display())).stderr(Stdio::null()).status();
    assert_eq!(app.handle().gateway().revoke_all().await, 2);
    assert!(app.handle().gateway().persist_error().is_some());
    assert_eq!(first.get(app.url("/")).send().await.unwrap().status(), 302, "the revocation holds");
    std::fs::remove_file(disk.path.join("fill")).unwrap();
    wait_until("the state to be written again", Duration::from_secs(15), async || app.handle().gateway().persist_error().is_none()).await;
    let on_disk = PersistedState::from_bytes(&std::fs::read(disk.path.join("state.json")).unwrap()).unwrap();
    assert!(on_disk.sessions.is_empty());
    drop(app);
}

/// A browser without a session cannot fill the disk with an upload: nginx discards the body of
/// a request it redirects to the login page instead of buffering it in the data directory
/// (where a full disk would then refuse every sign-in).
#[tokio::test(flavor = "multi_thread")]
async fn uploads_without_a_session_cannot_fill_the_disk() {
    let scratch = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(&scratch.path().join("data"), "4m");
    let app = spawn_app_with(AppOptions { data_dir: Some(disk.path.clone()), ..Default::default() }).await;
    for _ in 0..3 {
        let r = client().post(app.url("/upload")).body(vec![b'x'; 16 * 1024 * 1024]).send().await.unwrap();
        assert_eq!(r.status(), 302, "redirected to the login page, whatever the size");
        assert!(location(&r).starts_with("/_simpleotp/login?next=%2Fupload"), "{}", location(&r));
    }
    let browser = client();
    assert_eq!(app.login(&browser, "/").await.status(), 303, "the disk still has room for sign-ins");
    assert!(app.handle().gateway().persist_error().is_none());
    assert_eq!(browser.get(app.url("/")).send().await.unwrap().status(), 200);
}

/// A data directory that cannot be written at all (a read-only mount). (A running gateway's
/// directory cannot be remounted read-only: nginx keeps its logs open for writing there, so the
/// kernel refuses; the full disk above is how a running gateway meets write errors.)
#[tokio::test(flavor = "multi_thread")]
async fn read_only_data_directory_is_a_clear_error_at_start() {
    let scratch = tempfile::tempdir().unwrap();
    let (secret, _) = init_secret_file(scratch.path());
    let (config, _) = write_config(scratch.path(), "http://127.0.0.1:9");
    let disk = SmallDisk::mount_read_only(&scratch.path().join("data"));
    let output = Command::new(env!("CARGO_BIN_EXE_simpleotp"))
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--secret-file")
        .arg(&secret)
        .arg("--data-dir")
        .arg(&disk.path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains(&disk.path.display().to_string()) && err.contains("Read-only file system"), "{err}");
}

/// Writes `count` sessions into the state file and returns the tokens of the first `keep`.
/// `count` sessions for the app on `port` in a state file; returns the first `keep` tokens.
fn populate(data_dir: &Path, port: u16, count: usize, keep: usize) -> Vec<String> {
    let mut store = SessionStore::new(Default::default());
    let now = unix_now();
    let mut tokens = Vec::new();
    for i in 0..count {
        let (token, _) =
            store.create(port, Some([10, 0, (i >> 8) as u8, i as u8].into()), "Mozilla/5.0 fault test", SignInMethod::Unknown, now);
        if i < keep {
            tokens.push(token.expose().to_string());
        }
    }
    std::fs::create_dir_all(data_dir).unwrap();
    StateFile::in_dir(data_dir).save(&PersistedState { sessions: store.snapshot(), ..Default::default() }).unwrap();
    tokens
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_while_writing_the_state_never_loses_a_persisted_session() {
    const SESSIONS: usize = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let (secret, _) = init_secret_file(dir.path());
    let upstream_addr = spawn_demo_upstream().await;
    let upstream = format!("http://{upstream_addr}");
    // The first start is on a port the test chooses, again on another one should a program take
    // it first; the sessions are bound to the port, so they are written for each port tried. The
    // restarts after each kill need that same port (as a restarted gateway does).
    let (port, (config, tokens, started)) = on_free_port("simpleotp serve", async |port| {
        let config = write_config_on(dir.path(), &upstream, port);
        let tokens = populate(&data_dir, port, SESSIONS, 50);
        let started = tokio::task::block_in_place(|| Serve::try_start_with_env(dir.path(), &config, &secret, &[]))?;
        Ok::<_, ServeFailed>((config, tokens, started))
    })
    .await;
    let mut started = Some(started);
    let cookie_name = session_cookie_name(port, false);

    // Kill at moments spread over the 5 s write cycle, while requests keep every write busy
    // (each request moves a session's `last seen`, so every cycle rewrites ~4 MB).
    for (round, delay_ms) in [300u64, 5_100, 2_600, 4_950, 1_250, 5_020, 3_700, 5_080].into_iter().enumerate() {
        let (serve, url) = match started.take() {
            Some(first) => first,
            None => {
                wait_until("the port to be free", Duration::from_secs(10), async || {
                    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
                })
                .await;
                tokio::task::block_in_place(|| Serve::start(dir.path(), &config, &secret))
            }
        };
        let hammer = {
            let tokens = tokens.clone();
            let cookie_name = cookie_name.clone();
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                for i in 0.. {
                    let cookie = format!("{cookie_name}={}", tokens[i % tokens.len()]);
                    let _ = http.get(&url).header("cookie", cookie).send().await;
                }
            })
        };
        // The moment of the kill within the write cycle is what is tested: a fixed wait.
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        serve.signal(libc::SIGKILL);
        hammer.abort();
        drop(serve);

        let bytes = std::fs::read(data_dir.join("state.json")).unwrap();
        let state = PersistedState::from_bytes(&bytes).unwrap_or_else(|e| panic!("round {round}: the state file is damaged: {e}"));
        assert_eq!(state.sessions.len(), SESSIONS, "round {round}: sessions were lost");
    }
    // The next start cleans up the temp files of the killed writers, and everyone is still in.
    let (serve, url) = tokio::task::block_in_place(|| Serve::start(dir.path(), &config, &secret));
    let leftovers: Vec<_> =
        std::fs::read_dir(&data_dir).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().contains(".tmp-")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let r = reqwest::Client::new().get(&url).header("cookie", format!("{cookie_name}={}", tokens[7])).send().await.unwrap();
    assert_eq!(r.status(), 200);
    drop(serve);
}

const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

#[tokio::test(flavor = "multi_thread")]
async fn wall_clock_jumps_back_and_forward() {
    assert!(Path::new(FAKETIME_LIB).exists(), "libfaketime is missing: apt-get install faketime (scripts/deps.sh test does)");
    let dir = tempfile::tempdir().unwrap();
    let (secret, totp) = init_secret_file(dir.path());
    let upstream_addr = spawn_demo_upstream().await;
    let clock = dir.path().join("faketime");
    let set_clock = |offset: &str| std::fs::write(&clock, offset).unwrap();
    set_clock("+0");
    let clock_path = clock.display().to_string();
    // Only the wall clock moves (as when NTP or a person sets it); the monotonic clock, which
    // lockouts use, goes on.
    let env = [
        ("LD_PRELOAD", FAKETIME_LIB),
        ("FAKETIME_TIMESTAMP_FILE", clock_path.as_str()),
        ("FAKETIME_NO_CACHE", "1"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ];
    let (serve, url, _) = serve_on_free_port(dir.path(), &format!("http://{upstream_addr}"), &secret, &env).await;
    let base = url.trim_end_matches('/').to_string();
    let login = format!("{base}/_simpleotp/login");
    let post = |code: String| {
        let login = login.clone();
        async move {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap()
                .post(&login)
                .form(&[("code", code), ("next", "/".into())])
                .send()
                .await
                .unwrap()
        }
    };

    // The clock is an hour ahead when the owner signs in (with the code for that clock).
    set_clock("+1h");
    let ahead = totp.code_at(unix_now() + 3600);
    let r = post(ahead.clone()).await;
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();

    // The clock is corrected: the session is still valid (its times are "in the future", which
    // must not expire or crash anything), and today's code works again: the replay guard does
    // not wait an hour for the clock to catch up...
    set_clock("+0");
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    assert_eq!(http.get(&url).header("cookie", &cookie).send().await.unwrap().status(), 200);
    let now_code = totp.code_at(unix_now());
    assert_eq!(post(now_code.clone()).await.status(), 303, "a right code after the clock went back");
    // ...while the code just used is refused as always.
    assert_eq!(post(now_code).await.status(), 401);

    // A jump forward beyond the session lifetime (7 days) ends the sessions.
    set_clock("+8d");
    let r = http.get(&url).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert!(location(&r).contains("m=expired"), "{}", location(&r));
    let health = http.get(format!("{base}/_simpleotp/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let log = serve.stderr();
    assert!(log.contains("clock was set back"), "the jump back is logged:\n{log}");
    drop(serve);
}
