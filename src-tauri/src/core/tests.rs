//! Every command against the real parts: the engine's auth server, a real nginx, and the
//! keychain (run inside `scripts/with-keyring.sh`, which provides a throw-away GNOME keyring).
//! Each test has its own directories, ports and keychain entry, so they run in parallel.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use simpleotp_engine::gateway::LoginOutcome;
use simpleotp_engine::nginx;
use simpleotp_engine::protocol::session_cookie_name;
// Ports: `free_port` for a port that stays closed or that a test holds itself; `on_free_port`
// to add (or move) an app, so that a port another program takes first is replaced by another.
use simpleotp_engine::test_support::{free_port, on_free_port, process_alive, spawn_demo_upstream_until};
use simpleotp_engine::totp::{unix_now, Totp, TotpSecret};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::*;

struct FakeLaunch(AtomicBool);

impl LaunchAtLogin for FakeLaunch {
    fn is_enabled(&self) -> std::result::Result<bool, String> {
        Ok(self.0.load(Ordering::SeqCst))
    }
    fn set_enabled(&self, enabled: bool) -> std::result::Result<(), String> {
        self.0.store(enabled, Ordering::SeqCst);
        Ok(())
    }
}

/// Windows Firewall as the core sees it: answers as the test says, and counts the prompts.
#[derive(Default)]
struct FakeFirewall {
    open: AtomicBool,
    prompts: AtomicUsize,
    checks: AtomicUsize,
}

impl firewall::Firewall for FakeFirewall {
    fn check(&self, nginx: &std::path::Path) -> std::result::Result<(), String> {
        assert!(nginx.is_absolute(), "the nginx that runs: {}", nginx.display());
        self.checks.fetch_add(1, Ordering::SeqCst);
        if self.open.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err("a rule blocks nginx".into())
        }
    }
    fn allow(&self, nginx: &std::path::Path) -> std::result::Result<(), String> {
        assert!(nginx.is_absolute(), "the nginx that runs: {}", nginx.display());
        self.prompts.fetch_add(1, Ordering::SeqCst);
        if self.open.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err("the person said no".into())
        }
    }
}

struct Harness {
    dir: tempfile::TempDir,
    core: Arc<Core>,
    store: SecretStore,
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.store.delete();
        // And the CA's key, which the engine put beside the secret when LAN access was on.
        if let SecretStore::Keychain { service, .. } = &self.store {
            let ca_key = SecretStore::Keychain { service: service.clone(), account: simpleotp_engine::ca::KEYCHAIN_CA_ACCOUNT.into() };
            let _ = ca_key.delete();
        }
    }
}

impl Harness {
    fn new(name: &str) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        // The keychain (inside scripts/with-keyring.sh), one entry per test; or, where there is
        // no Secret Service (SIMPLEOTP_SKIP_KEYCHAIN_TESTS=1, as for the engine's tests), a
        // secret file, so every command is still tested.
        let store = if std::env::var("SIMPLEOTP_SKIP_KEYCHAIN_TESTS").as_deref() == Ok("1") {
            SecretStore::file(dir.path().join("secret"))
        } else {
            // A service of its own: the CA's key goes beside the secret, under the secret's
            // service with a fixed account, and two tests with LAN access must not share one.
            SecretStore::Keychain {
                service: format!("org.simpleotp.SimpleOTP.tests.{name}-{}", std::process::id()),
                account: "totp-secret".into(),
            }
        };
        let _ = store.delete();
        let core = Core::new(Self::paths(&dir, &store), Box::new(FakeLaunch(AtomicBool::new(false))));
        Harness { dir, core, store }
    }

    /// With a stand-in for Windows Firewall (the real one is Windows-only).
    fn with_firewall(name: &str, firewall: &Arc<FakeFirewall>) -> Harness {
        let mut h = Harness::new(name);
        h.core = h.reopen_with_firewall(firewall);
        h
    }

    fn reopen_with_firewall(&self, firewall: &Arc<FakeFirewall>) -> Arc<Core> {
        let launch = Box::new(FakeLaunch(AtomicBool::new(false)));
        Core::with_firewall(Self::paths(&self.dir, &self.store), launch, firewall.clone())
    }

    fn paths(dir: &tempfile::TempDir, store: &SecretStore) -> Paths {
        Paths {
            config: dir.path().join("config.toml"),
            data_dir: dir.path().join("data"),
            secret: store.clone(),
            home: Some(dir.path().join("home")),
        }
    }

    /// A second app instance over the same files (as after a restart).
    fn reopen(&self) -> Arc<Core> {
        Core::new(Self::paths(&self.dir, &self.store), Box::new(FakeLaunch(AtomicBool::new(false))))
    }

    fn code_for(&self, view: &SecretView) -> String {
        let secret = TotpSecret::from_base32(&view.secret_groups.concat()).unwrap();
        let (issuer, account) = (view.issuer.parse().unwrap(), view.account.parse().unwrap());
        Totp::new(&secret, &issuer, &account).code_at(unix_now())
    }

    /// The current code of the secret in the keychain.
    fn stored_code(&self) -> String {
        self.code_in(0)
    }

    /// A code the stored secret does not accept now or in the next minute (its codes from one
    /// step back to three ahead are avoided), so a test that expects a refusal cannot pass by luck.
    fn wrong_code(&self) -> String {
        let secret = self.store.load().unwrap();
        let config = Config::load(&self.dir.path().join("config.toml")).unwrap();
        let totp = Totp::new(&secret, &config.issuer(), &config.account());
        let near: Vec<String> = (0..5).map(|step| totp.code_at(unix_now() - 30 + step * 30)).collect();
        (0..).map(|n| format!("{n:06}")).find(|c| !near.contains(c)).expect("a six-digit code outside five")
    }

    fn code_in(&self, seconds: u64) -> String {
        let secret = self.store.load().unwrap();
        let config = Config::load(&self.dir.path().join("config.toml")).unwrap();
        Totp::new(&secret, &config.issuer(), &config.account()).code_at(unix_now() + seconds)
    }

    /// Runs the wizard to the end; protection is on afterwards.
    async fn set_up(&self) {
        self.core.start_up().await;
        let view = self.core.wizard_begin().await.unwrap();
        let status = self.core.wizard_confirm(&self.code_for(&view)).await.unwrap();
        assert_eq!(status.state, Protection::Running, "{status:?}");
    }

    fn config_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("config.toml")).unwrap_or_default()
    }
}

/// A running upstream app (the engine's demo page); returns its address.
async fn upstream() -> (SocketAddr, CancellationToken) {
    let stop = CancellationToken::new();
    (spawn_demo_upstream_until(Default::default(), stop.clone()).await, stop)
}

/// A plain HTTP/1.0 GET: (status code, headers and body).
async fn get(url: &str, cookie: Option<&str>) -> (u16, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (authority, _) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = tokio::net::TcpStream::connect(authority).await.unwrap();
    let port: u16 = authority.rsplit(':').next().unwrap().parse().unwrap();
    let cookie = cookie.map(|c| format!("Cookie: {}={c}\r\n", session_cookie_name(port, false))).unwrap_or_default();
    stream.write_all(format!("GET / HTTP/1.0\r\nHost: {authority}\r\n{cookie}\r\n").as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, response)
}

fn input(name: &str, upstream: &str, port: u16) -> AppInput {
    AppInput { name: name.into(), upstream: upstream.into(), port, own_address: false, other_devices: None }
}

/// The app port sessions are made for where the test has no app of its own.
const SOME_APP_PORT: u16 = 8081;

/// Signs in as a browser at `ip` would, to the app on `app_port`; returns the session token.
async fn sign_in(core: &Core, ip: &str, app_port: u16, code: &str) -> String {
    let gateway = core.running_gateway().expect("running");
    match gateway.login(ip.parse().unwrap(), app_port, code, "TestBrowser/1.0").await {
        LoginOutcome::Success(token) => token.expose().to_string(),
        other => panic!("login failed: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_run_needs_setup_and_nothing_is_stored_before_the_code_is_confirmed() {
    let h = Harness::new("first-run");
    h.core.start_up().await;
    assert_eq!(h.core.status().state, Protection::NeedsSetup);
    assert!(h.core.needs_setup());

    let view = h.core.wizard_begin().await.unwrap();
    assert!(view.qr_svg.starts_with("<svg"));
    assert_eq!(view.secret_groups.len(), 8, "160 bits = 32 base32 characters in groups of four");
    assert!(view.secret_groups.iter().all(|g| g.len() == 4));
    assert_eq!(view.issuer, "SimpleOTP");
    let again = h.core.wizard_begin().await.unwrap();
    assert_eq!(again.secret_groups, view.secret_groups, "going back shows the same secret");
    assert!(!h.store.exists().unwrap(), "nothing is stored before a code confirms it");

    assert!(matches!(h.core.wizard_confirm("000000").await, Err(CoreError::WrongCode) | Ok(_)));
    assert!(matches!(h.core.wizard_confirm("12").await, Err(CoreError::MalformedCode)));
    assert!(!h.store.exists().unwrap());

    let status = h.core.wizard_confirm(&h.code_for(&view)).await.unwrap();
    assert_eq!(status.state, Protection::Running);
    assert_eq!(h.store.load().unwrap().to_grouped_base32().split_whitespace().collect::<Vec<_>>(), view.secret_groups);
    assert!(matches!(h.core.wizard_begin().await, Err(CoreError::AlreadySetUp)));
    assert!(!h.config_text().contains(&view.secret_groups.concat()), "the secret is never in the config");
    h.core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wizard_cancel_forgets_the_secret() {
    let h = Harness::new("cancel");
    h.core.start_up().await;
    let view = h.core.wizard_begin().await.unwrap();
    h.core.wizard_cancel();
    assert!(matches!(h.core.wizard_confirm(&h.code_for(&view)).await, Err(CoreError::NoPendingSecret)));
    let fresh = h.core.wizard_begin().await.unwrap();
    assert_ne!(fresh.secret_groups, view.secret_groups);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_are_added_protected_edited_and_removed_with_reloads() {
    let h = Harness::new("apps");
    h.set_up().await;
    let (up, _stop) = upstream().await;

    let (port, saved) = on_free_port("the app", async |port| h.core.app_add(input("Demo", &up.to_string(), port)).await).await;
    assert_eq!(saved.app.url, format!("http://localhost:{port}/"));
    assert_eq!(saved.app.upstream, format!("http://{up}"), "a bare host:port gets http://");
    assert_eq!(saved.warning, None, "the upstream answers");
    assert!(h.config_text().contains("name = \"Demo\""));
    assert_eq!(h.core.status().apps, vec![saved.app.clone()]);
    assert_eq!(h.core.app_url("Demo").unwrap(), saved.app.url);

    // Protected at once (an nginx reload): without a session, the login page.
    let (status, response) = get(&saved.app.url, None).await;
    assert_eq!(status, 302, "{response}");
    assert!(response.contains("/_simpleotp/login"), "{response}");
    let token = sign_in(&h.core, "127.0.0.1", port, &h.stored_code()).await;
    let (status, response) = get(&saved.app.url, Some(&token)).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(h.core.sessions_list()[0].app, "Demo", "Sessions names the app");

    // Rename and move it.
    let (new_port, edited) =
        on_free_port("the moved app", async |port| h.core.app_edit("Demo", input("Demo two", &format!("http://{up}"), port)).await).await;
    assert_eq!(edited.app.url, format!("http://localhost:{new_port}/"));
    // A session belongs to the app on its port: at the new port, the browser signs in again.
    assert_eq!(get(&edited.app.url, Some(&token)).await.0, 302);
    assert!(h.config_text().contains("Demo two"));
    assert!(matches!(h.core.app_edit("Nope", input("x", "http://127.0.0.1:1", 9)).await, Err(CoreError::NoSuchApp(_))));

    h.core.app_remove("Demo two").await.unwrap();
    assert!(h.core.status().apps.is_empty());
    assert!(!h.config_text().contains("Demo two"));
    assert!(matches!(h.core.app_remove("Demo two").await, Err(CoreError::NoSuchApp(_))));
    h.core.shutdown().await;
}

/// "Its own HTTPS address on this computer": the app gets `https://demo-<random>.localhost:PORT/`
/// (served by nginx over HTTPS with the CA's certificate), keeps that name across edits, and
/// loses it when the box is unticked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_gets_its_own_https_address_keeps_it_when_edited_and_gives_it_up() {
    let h = Harness::new("own-address");
    h.set_up().await;
    let (up, _stop) = upstream().await;
    let own = |name: &str, port| AppInput { own_address: true, ..input(name, &up.to_string(), port) };
    let (port, saved) = on_free_port("the app", async |port| h.core.app_add(own("Demo", port)).await).await;
    let url = saved.app.url.clone();
    assert!(url.starts_with("https://demo-") && url.ends_with(&format!(".localhost:{port}/")), "{url}");
    assert!(saved.app.own_address);
    let name = url.trim_start_matches("https://").split(':').next().unwrap().to_string();
    assert!(h.config_text().contains(&format!("https_name = \"{name}\"")), "{}", h.config_text());
    // nginx answers TLS on the port now, with a certificate for that name.
    let output = simpleotp_engine::child::command("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-servername", &name, "-verify_hostname", &name, "-CAfile"])
        .arg(h.dir.path().join("data/ca-certificate.pem"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(said.contains("Verify return code: 0 (ok)"), "{said}");

    let (_, edited) = on_free_port("the moved app", async |port| h.core.app_edit("Demo", own("Demo", port)).await).await;
    assert!(edited.app.url.starts_with(&format!("https://{name}:")), "the name stays: {}", edited.app.url);
    let (new_port, plain) =
        on_free_port("the plain app", async |port| h.core.app_edit("Demo", input("Demo", &up.to_string(), port)).await).await;
    assert_eq!(plain.app.url, format!("http://localhost:{new_port}/"));
    assert!(!plain.app.own_address && !h.config_text().contains("https_name"));
    h.core.shutdown().await;
}

/// One gateway per data directory: the app started while `simpleotp serve` holds its data
/// directory says who holds it and starts nothing (no nginx of its own, the other one's
/// untouched); once `serve` is gone, Retry starts protection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_started_while_serve_holds_the_data_directory_says_so_and_retry_works_after() {
    let h = Harness::new("one-gateway");
    h.set_up().await;
    let (up, _stop) = upstream().await;
    on_free_port("the app", async |port| h.core.app_add(input("Demo", &up.to_string(), port)).await).await;
    h.core.shutdown().await;

    // The CLI from the same build, on the same config and data directory (its own secret file).
    let simpleotp = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/simpleotp");
    let secret = h.dir.path().join("serve-secret");
    let init = simpleotp_engine::child::command(&simpleotp).arg("init").arg("--secret-file").arg(&secret).output().unwrap();
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let mut serve = simpleotp_engine::child::command(&simpleotp)
        .arg("serve")
        .arg("--config")
        .arg(h.dir.path().join("config.toml"))
        .arg("--data-dir")
        .arg(h.dir.path().join("data"))
        .arg("--secret-file")
        .arg(&secret)
        // Its update check goes nowhere (a port nothing listens on).
        .env("SIMPLEOTP_UPDATE_URL", "http://127.0.0.1:9/latest.json")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // "SimpleOTP x.y.z is running.", then the app's line with its address.
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(serve.stdout.take().unwrap()));
    let (running, app_line) = (lines.next().unwrap().unwrap(), lines.next().unwrap().unwrap());
    assert!(running.starts_with("SimpleOTP ") && app_line.contains("http://localhost:"), "serve runs: {running} / {app_line}");
    let serve_nginx = std::fs::read_to_string(h.dir.path().join("data/nginx/nginx.pid")).unwrap();

    let app = h.reopen();
    app.start_up().await;
    let status = app.status();
    assert_eq!(status.state, Protection::Error, "{status:?}");
    let message = status.message.unwrap_or_default();
    assert!(
        message.contains(&format!("Another SimpleOTP gateway (simpleotp serve, pid {}) is already using the data directory", serve.id())),
        "{message}"
    );
    assert_eq!(std::fs::read_to_string(h.dir.path().join("data/nginx/nginx.pid")).unwrap(), serve_nginx, "serve's nginx is left alone");

    serve.kill().unwrap();
    serve.wait().unwrap();
    assert_eq!(app.retry().await.unwrap().state, Protection::Running);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_apps_are_refused_with_readable_messages_and_nothing_is_saved() {
    let h = Harness::new("bad-apps");
    h.set_up().await;
    let port = free_port();
    let err = h.core.app_add(input("Bad/name", "http://127.0.0.1:8888", port)).await.unwrap_err();
    assert!(err.user_message().contains("may only contain letters"), "{}", err.user_message());
    let err = h.core.app_add(input("Jupyter", "ftp://127.0.0.1:8888", port)).await.unwrap_err();
    assert!(err.user_message().contains("only http and https"), "{}", err.user_message());
    let err = h.core.app_add(input("Jupyter", "http://127.0.0.1:8888", 8888)).await.unwrap_err();
    assert!(err.user_message().contains("the app's own port"), "{}", err.user_message());
    let err = h.core.app_add(input("Jupyter", "http://127.0.0.1:8888", 0)).await.unwrap_err();
    assert!(err.user_message().contains("between 1 and 65535"), "{}", err.user_message());

    // A port another program holds: nginx's check says so.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let err = h.core.app_add(input("Jupyter", "http://127.0.0.1:8888", taken_port)).await.unwrap_err();
    assert!(err.user_message().contains("already in use"), "{}", err.user_message());

    // Duplicate names.
    on_free_port("the app", async |port| h.core.app_add(input("Jupyter", "http://127.0.0.1:8888", port)).await).await;
    let err = h.core.app_add(input("Jupyter", "http://127.0.0.1:8889", free_port())).await.unwrap_err();
    assert!(err.user_message().contains("names must be unique"), "{}", err.user_message());
    assert_eq!(h.core.status().apps.len(), 1);
    assert_eq!(Config::load(&h.dir.path().join("config.toml")).unwrap().apps.len(), 1);
    h.core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_does_not_answer_is_saved_with_a_warning() {
    let h = Harness::new("no-upstream");
    h.set_up().await;
    let silent = free_port();
    let (_, saved) =
        on_free_port("the app", async |port| h.core.app_add(input("Jupyter", &format!("http://127.0.0.1:{silent}"), port)).await).await;
    let warning = saved.warning.expect("a warning");
    assert!(warning.contains("Nothing answers at"), "{warning}");
    assert_eq!(h.core.status().apps.len(), 1);
    h.core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_listed_revoked_one_by_one_and_all_at_once() {
    let h = Harness::new("sessions");
    h.set_up().await;
    let mut events = h.core.subscribe();
    assert!(h.core.sessions_list().is_empty());
    let code = h.stored_code();
    let first = sign_in(&h.core, "192.0.2.7", SOME_APP_PORT, &code).await;
    let sessions = h.core.sessions_list();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].client_ip, "192.0.2.7");
    assert_eq!(sessions[0].app, format!("port {SOME_APP_PORT}"), "no app listens there: the port is named");
    assert_eq!(sessions[0].user_agent, "TestBrowser/1.0");
    assert!(sessions[0].expires_at > sessions[0].created_at);
    // Read like a device: what it is, how long it has been idle, when it ends.
    assert_eq!(sessions[0].device, "TestBrowser/1.0");
    assert!(!sessions[0].this_computer, "192.0.2.7 is another device");
    assert_eq!(sessions[0].idle, "active now");
    assert!(sessions[0].ends.starts_with("ends in ") && !sessions[0].ends.ends_with(" s"), "{}", sessions[0].ends);
    assert_eq!(h.core.status().sessions, 1);
    assert_eq!(tokio::time::timeout(Duration::from_secs(5), events.recv()).await.unwrap().unwrap(), CoreEvent::Changed);

    h.core.session_revoke(&sessions[0].id).await.unwrap();
    assert!(h.core.sessions_list().is_empty());
    let gateway = h.core.running_gateway().unwrap();
    assert!(!gateway.is_valid_any(&[simpleotp_engine::session::SessionToken::parse(&first).unwrap()], SOME_APP_PORT));
    assert!(matches!(h.core.session_revoke(&sessions[0].id).await, Err(CoreError::NoSuchSession)));

    // A code is accepted once; the next step's code (accepted as clock skew) signs in again.
    sign_in(&h.core, "192.0.2.8", SOME_APP_PORT, &h.code_in(30)).await;
    assert_eq!(h.core.sessions_list().len(), 1);
    assert_eq!(h.core.sessions_revoke_all().await, 1);
    assert!(h.core.sessions_list().is_empty());
    assert_eq!(h.core.sessions_revoke_all().await, 0);
    h.core.shutdown().await;
}

/// Security › Add another authenticator (#22 point 2): a name and a current code from the app in
/// use first (the limiter counts wrong ones, and guessing locks out), then the new app's QR code;
/// only its own code adds it. Both apps' codes then sign in and the session says which one; a
/// removed one's codes fail at once; the last one stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_authenticator_is_added_behind_a_current_code_confirmed_by_its_own_and_removable() {
    let h = Harness::new("add-authenticator");
    h.set_up().await;
    let first = h.store.load().unwrap().to_base32();
    let listed = h.core.security_status().authenticators;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!((listed[0].name.as_str(), listed[0].added.as_str()), ("Authenticator app", "added at setup"));

    // A bad or taken name, or a wrong current code: refused before any new secret exists.
    assert!(matches!(h.core.authenticator_add_begin("  ", &h.stored_code()).await, Err(CoreError::Invalid(_))));
    let taken = h.core.authenticator_add_begin("authenticator APP", &h.stored_code()).await.unwrap_err();
    assert!(taken.user_message().contains("exists already"), "{}", taken.user_message());
    assert!(matches!(h.core.authenticator_add_begin("Pixel", &h.wrong_code()).await, Err(CoreError::WrongCode)));
    assert!(matches!(h.core.authenticator_add_confirm("123456").await, Err(CoreError::NoPendingSecret)));

    let view = h.core.authenticator_add_begin("Pixel", &h.stored_code()).await.unwrap();
    assert!(view.qr_svg.starts_with("<svg"));
    assert_ne!(view.secret_groups.concat(), first);
    assert!(!format!("{view:?}").contains(&view.secret_groups[0]), "Debug never prints the secret");
    // The first app's code does not confirm the new one; it stays to be tried again.
    assert!(matches!(h.core.authenticator_add_confirm(&h.stored_code()).await, Err(CoreError::WrongCode)));
    assert_eq!(h.store.load_authenticators().unwrap().len(), 1, "nothing stored before it is confirmed");
    let added = h.core.authenticator_add_confirm(&h.code_for(&view)).await.unwrap();
    assert_eq!(added.name, "Pixel");
    assert!(added.added == "added just now" && added.last_used.as_deref() == Some("last code just now"), "{added:?}");
    let stored = h.store.load_authenticators().unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored.first().secret.to_base32(), first, "the first one is unchanged");
    assert_eq!(stored.find("Pixel").unwrap().secret.to_base32(), view.secret_groups.concat());
    assert_eq!(h.core.security_status().authenticators.len(), 2);

    // Both sign in (Pixel's confirming code is used: its next step's code), and say which.
    let pixel_in = |seconds: u64| {
        let secret = TotpSecret::from_base32(&view.secret_groups.concat()).unwrap();
        Totp::new(&secret, &view.issuer.parse().unwrap(), &view.account.parse().unwrap()).code_at(unix_now() + seconds)
    };
    let gateway = h.core.running_gateway().unwrap();
    let replayed = gateway.login("192.0.2.20".parse().unwrap(), SOME_APP_PORT, &h.code_for(&view), "B").await;
    assert!(matches!(replayed, LoginOutcome::Rejected { reason: CodeRejected::Replayed, .. }), "{replayed:?}");
    sign_in(&h.core, "192.0.2.20", SOME_APP_PORT, &pixel_in(30)).await;
    sign_in(&h.core, "192.0.2.21", SOME_APP_PORT, &h.stored_code()).await;
    let mut with: Vec<String> = h.core.sessions_list().into_iter().map(|s| s.signed_in_with).collect();
    with.sort();
    assert_eq!(with, ["Authenticator app", "Pixel"]);

    // Removed: Pixel's codes fail at once; the last one stays.
    h.core.authenticator_remove(&added.id).await.unwrap();
    assert_eq!(h.store.load_authenticators().unwrap().len(), 1);
    assert_eq!(h.core.security_status().authenticators.len(), 1);
    let refused = gateway.login("192.0.2.22".parse().unwrap(), SOME_APP_PORT, &pixel_in(0), "B").await;
    assert!(matches!(refused, LoginOutcome::Rejected { reason: CodeRejected::Wrong, .. }), "{refused:?}");
    let last = h.core.authenticator_remove("first").await.unwrap_err();
    assert!(last.user_message().contains("only authenticator"), "{}", last.user_message());
    assert_eq!(h.store.load().unwrap().to_base32(), first);
    h.core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_at_the_current_code_gate_locks_out() {
    let h = Harness::new("gate-lockout");
    h.set_up().await;
    let mut events = h.core.subscribe();

    // Wrong codes: refused, recorded, and the fifth starts a lockout (with a notice).
    for _ in 0..5 {
        assert!(matches!(h.core.authenticator_add_begin("Pixel", "000000").await, Err(CoreError::WrongCode) | Ok(_)));
    }
    let security = h.core.security_status();
    assert!(security.running);
    assert!(security.recent_failures.len() >= 5);
    assert_eq!(security.recent_failures[0].ip, "127.0.0.1");
    assert_eq!(security.locked_clients.len(), 1, "{security:?}");
    let err = h.core.authenticator_add_begin("Pixel", &h.stored_code()).await.unwrap_err();
    assert!(matches!(err, CoreError::Locked(_)), "{err:?}");
    assert!(err.user_message().contains("press Unlock"));
    let notice = loop {
        match tokio::time::timeout(Duration::from_secs(5), events.recv()).await.unwrap().unwrap() {
            CoreEvent::LockoutStarted(notice) => break notice,
            CoreEvent::Changed => continue,
            other => panic!("{other:?}"),
        }
    };
    assert!(notice.contains("wrong codes"), "{notice}");

    let security = h.core.security_unlock().unwrap().security;
    assert!(security.locked_clients.is_empty());
    assert!(security.everyone_locked_for_secs.is_none());
    h.core.authenticator_add_begin("Pixel", &h.stored_code()).await.unwrap();
    h.core.wizard_cancel();
    assert!(matches!(h.core.authenticator_add_confirm("123456").await, Err(CoreError::NoPendingSecret)), "Cancel forgets it");
    h.core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tray_sees_a_lockout_and_unlocks_it_leaving_the_links_for_the_window() {
    let h = Harness::new("tray-unlock");
    h.set_up().await;
    let (up, _stop) = upstream().await;
    on_free_port("the app", async |port| h.core.app_add(input("Demo", &up.to_string(), port)).await).await;
    assert!(!h.core.tray_state().locked_out);
    assert!(h.core.take_tray_unlock().is_none());
    for _ in 0..5 {
        let _ = h.core.authenticator_add_begin("Pixel", "000000").await;
    }
    assert!(h.core.tray_state().locked_out, "{:?}", h.core.security_status());
    assert_eq!(crate::tray_icon::icon_for(&h.core.tray_state()), crate::tray_icon::TrayIconKind::LockedOut);

    h.core.unlock_from_tray().unwrap();
    assert!(!h.core.tray_state().locked_out, "{:?}", h.core.security_status());
    let unlocked = h.core.take_tray_unlock().expect("the links wait for the window");
    assert_eq!(unlocked.links.len(), 1);
    h.core.check_unlock_link(&unlocked.links[0].url).unwrap();
    assert!(h.core.take_tray_unlock().is_none(), "taken once");
    h.core.shutdown().await;
}

/// Security › Recovery codes (#22 point 3): behind a current code, ten shown once; Security
/// counts what is left; a use raises the desktop notification with the count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_codes_are_made_behind_a_current_code_and_a_use_is_notified() {
    let h = Harness::new("recovery-codes");
    h.set_up().await;
    // The setup made ten, for the wizard's last screen to show once.
    let setup = h.core.wizard_recovery_codes().expect("codes made at setup");
    assert_eq!(setup.codes.len(), 10);
    assert_eq!(h.core.wizard_recovery_codes(), None, "shown once");
    assert_eq!(h.core.security_status().recovery_left, Some(10));
    let (now, next) = (h.stored_code(), h.code_in(30));
    let wrong = (0..1_000_000).map(|n| format!("{n:06}")).find(|c| *c != now && *c != next).unwrap();
    assert!(h.core.recovery_codes_new(&wrong).await.is_err(), "a wrong current code makes nothing");
    let gateway = h.core.running_gateway().unwrap();
    let still = gateway.login_with_recovery_code("192.0.2.8".parse().unwrap(), SOME_APP_PORT, &setup.codes[1], "Phone").await;
    assert!(matches!(still, LoginOutcome::Success(_)), "the setup's codes still work: {still:?}");
    let made = h.core.recovery_codes_new(&h.stored_code()).await.unwrap();
    assert_eq!(made.codes.len(), 10);
    assert!(!format!("{made:?}").contains(&made.codes[0]));
    let status = h.core.security_status();
    assert_eq!(status.recovery_left, Some(10));
    assert!(status.recovery_made_at.is_some_and(|t| t.abs_diff(unix_now()) < 60));

    let old = gateway.login_with_recovery_code("192.0.2.8".parse().unwrap(), SOME_APP_PORT, &setup.codes[2], "Phone").await;
    assert!(matches!(old, LoginOutcome::Rejected { .. }), "the new set replaced the setup's: {old:?}");
    let mut events = h.core.subscribe();
    let outcome = gateway.login_with_recovery_code("192.0.2.9".parse().unwrap(), SOME_APP_PORT, &made.codes[0], "Phone").await;
    assert!(matches!(outcome, LoginOutcome::Success(_)), "{outcome:?}");
    let notice = loop {
        match tokio::time::timeout(Duration::from_secs(5), events.recv()).await.unwrap().unwrap() {
            CoreEvent::RecoveryCodeUsed(notice) => break notice,
            _ => continue,
        }
    };
    assert!(notice.contains("9 are left") && notice.contains("If it was not you"), "{notice}");
    assert_eq!(h.core.security_status().recovery_left, Some(9));
    h.core.shutdown().await;
}

/// Security › Passkeys (#22 point 1): "Add a passkey" is behind a current code and gives a
/// one-time link at localhost (passkeys need a name), which the window may open while it is
/// live; nothing else is opened; rename and remove say what is wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passkey_link_is_made_behind_a_current_code_at_localhost_and_only_it_is_opened() {
    let h = Harness::new("passkey-link");
    h.set_up().await;
    assert!(h.core.passkeys().is_empty());
    let (now, next) = (h.stored_code(), h.code_in(30));
    let wrong = (0..1_000_000).map(|n| format!("{n:06}")).find(|c| *c != now && *c != next).unwrap();
    assert!(matches!(h.core.passkey_link(&wrong).await, Err(CoreError::WrongCode)), "a wrong current code makes no link");

    let no_app = h.core.passkey_link(&h.stored_code()).await.unwrap_err().user_message();
    assert!(no_app.contains("need an app on this computer"), "{no_app}");
    let (_, saved) = on_free_port("the app", async |port| h.core.app_add(input("Demo", "http://127.0.0.1:9999", port)).await).await;
    let link = h.core.passkey_link(&h.stored_code()).await.unwrap();
    let here = saved.app.url.clone();
    assert!(here.starts_with("http://localhost:"), "{here}");
    let prefix = format!("{here}_simpleotp/passkey/add?link=");
    assert!(link.url.starts_with(&prefix), "{}", link.url);
    assert_eq!(link.expires_in_secs, 300);
    assert!(!format!("{link:?}").contains(&link.url), "Debug does not show the link");
    h.core.check_passkey_link(&link.url).unwrap();
    let made_up = format!("{prefix}AAAA");
    assert!(h.core.check_passkey_link(&made_up).unwrap_err().user_message().contains("used already or is more than 5 minutes old"));
    for other in ["https://example.com/", "file:///etc/passwd", &format!("{here}_simpleotp/login?ticket=x")] {
        assert!(h.core.check_passkey_link(other).is_err(), "{other}");
    }
    let gateway = h.core.running_gateway().unwrap();
    assert!(gateway.passkey_link_is_valid(link.url.strip_prefix(&prefix).unwrap()), "the gateway knows the link");

    let missing = h.core.passkey_remove("Desk key").await.unwrap_err().user_message();
    assert!(missing.contains("no passkey with that name"), "{missing}");
    let bad = h.core.passkey_rename("Desk key", "").await.unwrap_err().user_message();
    assert!(bad.contains("1 to 60 characters"), "{bad}");
    h.core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlock_gives_a_one_time_sign_in_link_and_does_not_refill_the_budget() {
    let h = Harness::new("unlock-link");
    h.set_up().await;
    let (up, _stop) = upstream().await;
    let (port, _) = on_free_port("the app", async |port| h.core.app_add(input("Demo", &up.to_string(), port)).await).await;
    let gateway = h.core.running_gateway().unwrap();

    // Ten wrong codes from ten addresses empty the shared budget.
    let (now, next) = (h.stored_code(), h.code_in(30));
    let wrong = (0..1_000_000).map(|n| format!("{n:06}")).find(|c| *c != now && *c != next).unwrap();
    for n in 0..10 {
        let ip = format!("192.0.2.{n}").parse().unwrap();
        assert!(matches!(gateway.login(ip, SOME_APP_PORT, &wrong, "Guesser").await, LoginOutcome::Rejected { .. }));
    }
    assert!(h.core.security_status().everyone_locked_for_secs.is_some());

    let unlocked = h.core.security_unlock().unwrap();
    assert!(unlocked.security.everyone_locked_for_secs.is_some(), "unlock does not refill the budget");
    assert_eq!((unlocked.expires_in_secs, unlocked.attempts), (600, 3));
    assert_eq!(unlocked.links.len(), 1);
    let link = &unlocked.links[0];
    assert_eq!(link.app, "Demo");
    let prefix = format!("http://localhost:{port}/_simpleotp/login?ticket=");
    assert!(link.url.starts_with(&prefix), "{}", link.url);
    assert!(!format!("{unlocked:?}").contains(&link.url), "Debug does not show the ticket");

    // The window may open this link, and nothing else.
    h.core.check_unlock_link(&link.url).unwrap();
    assert!(h.core.check_unlock_link("https://evil.example/").is_err());
    assert!(h.core.check_unlock_link(&format!("{prefix}{}", "A".repeat(43))).is_err());

    // A plain login is still refused; the ticket gets the owner in, once.
    let ip = "198.51.100.1".parse().unwrap();
    assert!(matches!(gateway.login(ip, SOME_APP_PORT, &h.stored_code(), "Owner").await, LoginOutcome::Locked(_)));
    let ticket = link.url.strip_prefix(&prefix).unwrap();
    assert!(matches!(gateway.login_with_ticket(ip, SOME_APP_PORT, &h.stored_code(), "Owner", ticket).await, LoginOutcome::Success(_)));
    assert!(h.core.check_unlock_link(&link.url).is_err(), "used up");
    assert_eq!((&link.other_device_url, &link.other_device_qr_svg), (&None, &None), "no other device reaches this app");

    // Once other devices reach the app, a locked-out phone gets the link at the network address,
    // as a QR code to scan (it has no tray of its own).
    h.core.settings_set(SettingsView { lan: true, ..h.core.settings_get() }).await.unwrap();
    let unlocked = h.core.security_unlock().unwrap();
    let link = &unlocked.links[0];
    let phone = link.other_device_url.as_deref().expect("a link for other devices");
    assert!(phone.starts_with("https://") && phone.contains(&format!(":{port}/_simpleotp/login?ticket=")), "{phone}");
    assert_eq!(phone.split_once("?ticket=").unwrap().1, link.url.split_once("?ticket=").unwrap().1, "the same one-time ticket");
    assert!(link.other_device_qr_svg.as_deref().is_some_and(|svg| svg.starts_with("<svg")));
    assert!(!format!("{unlocked:?}").contains(phone));
    h.core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_the_secret_needs_a_code_from_the_new_one_and_signs_everyone_out() {
    let h = Harness::new("replace");
    h.set_up().await;
    let old = h.store.load().unwrap().to_base32();
    sign_in(&h.core, "192.0.2.9", SOME_APP_PORT, &h.stored_code()).await;

    // The sign-in used this step's code (each code works once): the next step's is current too.
    let current = h.code_in(30);
    let view = h.core.secret_replace_begin(&current).await.unwrap();
    assert_ne!(view.secret_groups.concat(), old);
    assert!(matches!(h.core.secret_replace_confirm("000000").await, Err(CoreError::WrongCode) | Ok(_)));
    assert_eq!(h.store.load().unwrap().to_base32(), old, "unchanged until confirmed");
    // The gate does not use the code up: it still opens (e.g. after Cancel and a second try).
    let view = h.core.secret_replace_begin(&current).await.unwrap();
    assert_eq!(h.core.secret_replace_confirm(&h.code_for(&view)).await.unwrap(), 1);
    assert_eq!(h.store.load().unwrap().to_base32(), view.secret_groups.concat());
    assert!(h.core.sessions_list().is_empty());
    // The running gateway uses the new secret at once (the gate accepts its code).
    h.core.authenticator_add_begin("Pixel", &h.code_for(&view)).await.unwrap();
    h.core.wizard_cancel();
    assert!(matches!(h.core.secret_replace_confirm(&h.code_for(&view)).await, Err(CoreError::NoPendingSecret)));
    h.core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_the_secret_asks_for_a_current_code_of_the_old_one_first() {
    let h = Harness::new("replace-gate");
    h.set_up().await;
    let mut events = h.core.subscribe();
    let old = h.store.load().unwrap().to_base32();
    let wrong = h.wrong_code();

    // Without a code or with a wrong one: refused with a clear message, and no new secret is
    // made (there is nothing to show, and nothing a code of it could confirm).
    let err = h.core.secret_replace_begin("").await.unwrap_err();
    assert!(matches!(err, CoreError::MalformedCode), "{err:?}");
    let err = h.core.secret_replace_begin(&wrong).await.unwrap_err();
    assert!(matches!(err, CoreError::WrongCode), "{err:?}");
    assert!(err.user_message().contains("That code is not right"), "{}", err.user_message());
    assert!(matches!(h.core.secret_replace_confirm(&wrong).await, Err(CoreError::NoPendingSecret)));
    assert_eq!(h.store.load().unwrap().to_base32(), old, "the keychain still holds the old secret");
    // Each refusal is a failed attempt from this computer, as at the QR gate.
    let failures = h.core.security_status().recent_failures;
    assert_eq!(failures.iter().filter(|f| f.ip == "127.0.0.1").count(), 2, "{failures:?}");

    // Guessing here locks out like guessing at the QR gate (the same limiter): the fifth wrong
    // code starts a lockout, with the notice, and then even the right code is refused, here
    // and at the QR gate.
    for _ in 0..3 {
        let err = h.core.secret_replace_begin(&wrong).await.unwrap_err();
        assert!(matches!(err, CoreError::WrongCode), "{err:?}");
    }
    assert_eq!(h.core.security_status().locked_clients.len(), 1, "{:?}", h.core.security_status());
    let notice = loop {
        match tokio::time::timeout(Duration::from_secs(5), events.recv()).await.unwrap().unwrap() {
            CoreEvent::LockoutStarted(notice) => break notice,
            CoreEvent::Changed => continue,
            other => panic!("{other:?}"),
        }
    };
    assert!(notice.contains("wrong codes"), "{notice}");
    let err = h.core.secret_replace_begin(&h.stored_code()).await.unwrap_err();
    assert!(matches!(err, CoreError::Locked(_)), "{err:?}");
    assert!(matches!(h.core.authenticator_add_begin("Pixel", &h.stored_code()).await, Err(CoreError::Locked(_))));
    assert_eq!(h.store.load().unwrap().to_base32(), old);
    // The old secret still opens the gateway (from another address, which is not locked).
    sign_in(&h.core, "192.0.2.10", SOME_APP_PORT, &h.stored_code()).await;

    // After Unlock, a right code of the old secret (the next step's: this one signed in above)
    // lets the replacement begin; the keychain changes only when the new secret is confirmed.
    h.core.security_unlock().unwrap();
    let view = h.core.secret_replace_begin(&h.code_in(30)).await.unwrap();
    assert_ne!(view.secret_groups.concat(), old);
    assert_eq!(h.store.load().unwrap().to_base32(), old, "unchanged until confirmed");
    assert_eq!(h.core.secret_replace_confirm(&h.code_for(&view)).await.unwrap(), 1);
    assert_eq!(h.store.load().unwrap().to_base32(), view.secret_groups.concat());
    h.core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_change_lifetimes_listen_scope_nginx_path_and_launch_at_login() {
    let h = Harness::new("settings");
    h.set_up().await;
    let (app, _stop_app) = upstream().await;
    let (port, _) = on_free_port("the app", async |port| h.core.app_add(input("Jupyter", &format!("http://{app}"), port)).await).await;
    let token = sign_in(&h.core, "127.0.0.1", port, &h.stored_code()).await;
    let before = h.core.settings_get();
    assert_eq!(
        before,
        SettingsView {
            lifetime_secs: 7 * 24 * 3600,
            idle_timeout_secs: 12 * 3600,
            launch_at_login: false,
            lan: false,
            nginx_path: None,
            interfaces: None,
            check_updates: true,
        }
    );

    let saved = h
        .core
        .settings_set(SettingsView {
            lifetime_secs: 3600,
            idle_timeout_secs: 600,
            launch_at_login: true,
            lan: true,
            nginx_path: None,
            interfaces: None,
            check_updates: true,
        })
        .await
        .unwrap();
    assert!(saved.warnings.iter().any(|w| w.contains("over HTTPS") && w.contains("trust SimpleOTP's certificate")), "{:?}", saved.warnings);
    assert!(saved.nginx.starts_with("Using nginx at"), "{}", saved.nginx);
    assert_eq!(saved.settings.lifetime_secs, 3600);
    assert!(saved.settings.launch_at_login);
    assert!(h.core.tray_state().launch_at_login);
    // Other devices get HTTPS; this computer keeps the same plain address and stays signed in
    // (the same cookie: no certificate warning, no unexpected sign-out).
    let url = format!("http://localhost:{port}/");
    assert_eq!(h.core.status().apps[0].url, url, "this computer opens it as before");
    assert_eq!(get(&url, Some(&token)).await.0, 200, "still signed in over plain HTTP on loopback");
    assert_eq!(get(&url, None).await.0, 302);
    assert!(h.config_text().contains(&format!("0.0.0.0:{port}")));
    assert!(h.config_text().contains("lifetime_seconds = 3600"));
    assert_eq!(h.core.running_gateway().unwrap().session_settings().idle_timeout, Duration::from_secs(600));
    // New apps follow the scope.
    let (_, other) = on_free_port("the app", async |port| h.core.app_add(input("Other", "http://127.0.0.1:9999", port)).await).await;
    assert!(other.app.url.starts_with("http://localhost:"), "{}", other.app.url);

    // Back to this computer only; an explicit nginx path restarts the gateway with it.
    let nginx = nginx::discover(None).unwrap();
    let saved = h
        .core
        .settings_set(SettingsView {
            lifetime_secs: 3600,
            idle_timeout_secs: 600,
            launch_at_login: false,
            lan: false,
            nginx_path: Some(nginx.display().to_string()),
            interfaces: None,
            check_updates: true,
        })
        .await
        .unwrap();
    assert!(saved.warnings.is_empty(), "{:?}", saved.warnings);
    assert_eq!(saved.settings.nginx_path.as_deref(), Some(nginx.display().to_string().as_str()));
    assert!(!saved.settings.launch_at_login);
    assert_eq!(h.core.status().state, Protection::Running);
    assert!(h.config_text().contains(&format!("127.0.0.1:{port}")));

    let err =
        h.core.settings_set(SettingsView { nginx_path: Some("/nonexistent/nginx".into()), ..saved.settings.clone() }).await.unwrap_err();
    assert!(err.user_message().contains("/nonexistent/nginx"), "{}", err.user_message());
    let err = h.core.settings_set(SettingsView { lifetime_secs: 5, ..saved.settings.clone() }).await.unwrap_err();
    assert!(err.user_message().contains("at least one minute"));

    // The interfaces facing the network: a choice is written as `[lan] interfaces` (the gateway
    // keeps running), a bad name is refused with what to write, and the default is written as
    // nothing at all.
    let chosen = h.core.settings_set(SettingsView { interfaces: Some(vec!["lo".into()]), ..saved.settings.clone() }).await.unwrap();
    assert_eq!(chosen.settings.interfaces.as_deref(), Some(&["lo".to_string()][..]));
    assert!(h.config_text().contains("[lan]") && h.config_text().contains("interfaces = [\"lo\"]"), "{}", h.config_text());
    assert_eq!(h.core.status().state, Protection::Running);
    let err = h.core.settings_set(SettingsView { interfaces: Some(vec![" eth0".into()]), ..saved.settings.clone() }).await.unwrap_err();
    assert!(err.user_message().contains("interface name") && err.user_message().contains("\"eth0\""), "{}", err.user_message());
    h.core.settings_set(SettingsView { interfaces: None, ..saved.settings.clone() }).await.unwrap();
    assert!(!h.config_text().contains("[lan]"), "{}", h.config_text());

    // Automatic update checks: off is written as `[updates] check = false` (nothing else changes,
    // protection runs on), on again as nothing (the default).
    let before_updates = h.config_text();
    let off = h.core.settings_set(SettingsView { check_updates: false, ..saved.settings.clone() }).await.unwrap();
    assert!(!off.settings.check_updates && !h.core.updates_automatic() && !h.core.updates_view().automatic);
    assert!(h.config_text().contains("[updates]\ncheck = false"), "{}", h.config_text());
    assert_eq!(h.core.status().state, Protection::Running);
    h.core.settings_set(SettingsView { check_updates: true, ..saved.settings.clone() }).await.unwrap();
    assert_eq!(h.config_text(), before_updates);

    // The wizard's pre-checked box and Status's "Start at login" set it; Status knows.
    assert!(!h.core.status().launch_at_login);
    h.core.set_launch_at_login(true).unwrap();
    assert!(h.core.status().launch_at_login && h.core.settings_get().launch_at_login);
    h.core.set_launch_at_login(true).unwrap();
    h.core.set_launch_at_login(false).unwrap();
    assert!(!h.core.status().launch_at_login);
    assert!(main_js_reads("status.launch_at_login"));

    assert!(h.core.toggle_launch_at_login().unwrap());
    assert!(h.core.settings_get().launch_at_login);
    h.core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_stops_the_protected_addresses_and_resume_brings_them_back() {
    let h = Harness::new("pause");
    h.set_up().await;
    let (up, _stop) = upstream().await;
    let (_, saved) = on_free_port("the app", async |port| h.core.app_add(input("Demo", &up.to_string(), port)).await).await;
    assert_eq!(get(&saved.app.url, None).await.0, 302);

    assert_eq!(h.core.set_paused(true).await.unwrap().state, Protection::Paused);
    assert!(tokio::net::TcpStream::connect(saved.app.url.trim_start_matches("http://").trim_end_matches('/')).await.is_err());
    assert_eq!(h.core.tray_state().protection, Protection::Paused);
    assert!(h.core.sessions_list().is_empty());
    assert!(!h.core.security_status().running);

    assert_eq!(h.core.set_paused(false).await.unwrap().state, Protection::Running);
    assert_eq!(get(&saved.app.url, None).await.0, 302);
    h.core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_finds_the_secret_and_the_apps() {
    let h = Harness::new("restart");
    h.set_up().await;
    let (port, _) = on_free_port("the app", async |port| h.core.app_add(input("Jupyter", "http://127.0.0.1:8888", port)).await).await;
    h.core.shutdown().await;

    let core = h.reopen();
    core.start_up().await;
    let status = core.status();
    assert_eq!(status.state, Protection::Running);
    assert_eq!(status.apps[0].port, port);
    core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_config_is_reported_kept_and_retried() {
    let h = Harness::new("broken-config");
    let path = h.dir.path().join("config.toml");
    std::fs::write(&path, "this is = = not toml").unwrap();
    let core = h.reopen();
    core.start_up().await;
    let status = core.status();
    assert_eq!(status.state, Protection::Error);
    assert!(status.message.as_deref().unwrap().contains("config.toml"), "{status:?}");
    let err = core.app_add(input("Jupyter", "http://127.0.0.1:8888", free_port())).await.unwrap_err();
    assert!(matches!(err, CoreError::ConfigBroken(_)));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "this is = = not toml", "never saved over");

    std::fs::remove_file(&path).unwrap();
    assert_eq!(core.retry().await.unwrap().state, Protection::NeedsSetup);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_failure_shows_nginx_message_and_retry_recovers() {
    let h = Harness::new("start-failure");
    h.set_up().await;
    let (port, _) = on_free_port("the app", async |port| h.core.app_add(input("Jupyter", "http://127.0.0.1:8888", port)).await).await;
    h.core.shutdown().await;

    // Another program takes the app's port while SimpleOTP is not running.
    let squatter = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let core = h.reopen();
    core.start_up().await;
    let status = core.status();
    assert_eq!(status.state, Protection::Error);
    assert!(status.message.as_deref().unwrap().contains("already in use"), "{status:?}");
    assert_eq!(core.tray_state().protection, Protection::Error);

    drop(squatter);
    assert_eq!(core.retry().await.unwrap().state, Protection::Running);
    core.shutdown().await;
}

/// One format for waits, the login page's ("4 min 58 s"); `ui/main.js`'s countdown has the
/// same rules (the e2e compares them on these values).
#[test]
fn durations_read_as_the_login_page_says_them() {
    let s = Duration::from_secs;
    assert_eq!(human_duration(s(0)), "1 s", "never 0 s while it runs");
    assert_eq!(human_duration(s(1)), "1 s");
    assert_eq!(human_duration(s(58)), "58 s");
    assert_eq!(human_duration(Duration::from_millis(57_200)), "58 s", "rounded up");
    assert_eq!(human_duration(s(60)), "1 min");
    assert_eq!(human_duration(s(298)), "4 min 58 s");
    assert_eq!(human_duration(s(3600)), "1 h");
    assert_eq!(human_duration(s(7470)), "2 h 5 min");
    // Ages and times left, to their largest unit, rounded down.
    assert_eq!(short_duration(s(0)), "0 s");
    assert_eq!(short_duration(s(59)), "59 s");
    assert_eq!(short_duration(s(119)), "1 min");
    assert_eq!(short_duration(s(12 * 3600 + 3599)), "12 h");
    assert_eq!(short_duration(s(86_399)), "23 h");
    assert_eq!(short_duration(s(6 * 86_400 + 80_000)), "6 d");
}

/// What reaches the window has no Markdown, and a program's error names no temporary file that
/// SimpleOTP made for it (see `trust::said`).
#[test]
fn messages_for_the_window_are_plain_words() {
    let temp = std::env::temp_dir().join(".tmpAbC123").join("ca.pem");
    let raw = format!("run `simpleotp ca rotate` to make a **new** CA; security failed: {}: No such file", temp.display());
    assert_eq!(
        views::without_temp_paths(&views::plain_words(&raw)),
        "run simpleotp ca rotate to make a new CA; security failed: a temporary file: No such file"
    );
    let config = std::env::temp_dir().join("simpleotp-e2e").join("config.toml");
    let kept = format!("cannot read {}", config.display());
    assert_eq!(views::without_temp_paths(&kept), kept, "only the temporary files SimpleOTP makes itself are hidden");
    let markdown = CoreError::Invalid("Use `Replace the setup key`.".into());
    assert_eq!(markdown.user_message(), "Use Replace the setup key.", "every command's error goes through user_message");
}

/// Sessions read like devices: the browser and the system from the User-Agent, in one line.
#[test]
fn a_user_agent_reads_as_browser_on_system() {
    let cases = [
        ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36", "Chrome on Android"),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "Safari on iPhone"),
        ("Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/126.0 Mobile/15E148 Safari/604.1", "Chrome on iPad"),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15", "Safari on macOS"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0", "Edge on Windows"),
        ("Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0", "Firefox on Linux"),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/126.0.0.0 Safari/537.36", "Headless Chrome on Linux"),
        ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", "Chrome on ChromeOS"),
        ("Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36", "Samsung Internet on Android"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 OPR/111.0.0.0", "Opera on Windows"),
        ("curl/8.5.0", "curl"),
        ("", "Unknown browser"),
        ("TestBrowser/1.0", "TestBrowser/1.0"),
        ("Mozilla/5.0 (Linux; Android 14) SomethingNew/1.0", "A browser on Android"),
    ];
    for (ua, expected) in cases {
        assert_eq!(device_name(ua), expected, "{ua}");
    }
    let long = "x".repeat(60);
    assert_eq!(device_name(&long), format!("{}…", "x".repeat(40)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_changes_at_once_both_reach_the_saved_config() {
    let h = Harness::new("concurrent-apps");
    h.set_up().await;
    // Both start before either is saved: each applies through an nginx reload, during which
    // the other runs. A change that copied the config before the other was saved would drop it.
    tokio::join!(
        on_free_port("the first app", async |port| h.core.app_add(input("First", "http://127.0.0.1:8888", port)).await),
        on_free_port("the second app", async |port| h.core.app_add(input("Second", "http://127.0.0.1:8889", port)).await),
    );
    let text = h.config_text();
    assert!(text.contains("name = \"First\"") && text.contains("name = \"Second\""), "{text}");
    let names: Vec<String> = h.core.status().apps.into_iter().map(|a| a.name).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let reopened = h.reopen();
    assert!(reopened.app_url("First").is_ok() && reopened.app_url("Second").is_ok(), "the file has both");
    h.core.shutdown().await;
}

#[test]
fn the_window_gets_the_status_names_it_matches_on() {
    let all = [Protection::NeedsSetup, Protection::Starting, Protection::Running, Protection::Paused, Protection::Error];
    let names: Vec<String> = all.iter().map(|p| serde_json::to_value(p).unwrap().as_str().unwrap().to_string()).collect();
    assert_eq!(names, ["needs_setup", "starting", "running", "paused", "error"]);
    let main_js = include_str!("../../../ui/main.js");
    for name in &names {
        // Each state has its line in the status text table (STATE_TEXT).
        assert!(main_js.contains(&format!("\n  {name}: '")), "ui/main.js has no status text for {name:?}");
    }
    let status = StatusView {
        state: Protection::NeedsSetup,
        message: None,
        apps: vec![],
        sessions: 0,
        warnings: vec![],
        lan: false,
        tray_available: false,
        update_available: None,
        launch_at_login: false,
    };
    assert_eq!(serde_json::to_value(&status).unwrap()["state"], "needs_setup");
    assert_eq!(serde_json::to_value(&status).unwrap()["tray_available"], false, "ui/main.js reads status.tray_available");
    assert!(main_js.contains("status.tray_available"));
}

/// "Other devices": nothing (and no CA) while the apps are for this computer only; with LAN
/// access on, each app's HTTPS address as a QR code, and the engine's own CA: the same
/// certificate file (fingerprint checked with openssl), and a CA page address that really
/// answers over plain HTTP on the app's TLS port and shows that fingerprint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_devices_show_each_apps_https_address_and_the_engines_ca() {
    let h = Harness::new("devices");
    h.set_up().await;
    let (port, _) = on_free_port("the app", async |port| h.core.app_add(input("Jupyter", "http://127.0.0.1:8888", port)).await).await;
    let store = simpleotp_engine::ca::CaStore::beside(&h.store, &h.dir.path().join("data"));

    let off = h.core.devices().await.unwrap();
    assert!(!off.lan && off.apps.is_empty() && off.ca.is_none(), "{off:?}");
    assert!(!store.certificate_path().exists(), "showing the screen never makes a CA");

    let settings = SettingsView { lan: true, ..h.core.settings_get() };
    h.core.settings_set(settings).await.unwrap();
    let on = h.core.devices().await.unwrap();
    assert!(on.lan);
    assert_eq!(on.apps.len(), 1, "{on:?}");
    let app = &on.apps[0];
    let machine = simpleotp_engine::config::MachineNames::this_machine();
    let local = machine.names().iter().map(|n| n.as_str().to_string()).find(|n| n.ends_with(".local"));
    if let Some(local) = &local {
        assert_eq!(app.url, format!("https://{local}:{port}/"), "the .local name comes first");
    }
    assert!(app.url.starts_with("https://"), "{}", app.url);
    assert_eq!(app.qr_svg, simpleotp_engine::qr::svg(&app.url).unwrap(), "the QR code holds the address");
    assert!(app.other_urls.iter().all(|u| u.starts_with("https://") && u.ends_with(&format!(":{port}/"))), "{:?}", app.other_urls);

    let ca = on.ca.as_ref().expect("the engine made its CA when LAN access started");
    let openssl = simpleotp_engine::child::command("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(store.certificate_path())
        .output()
        .expect("openssl runs");
    let openssl = String::from_utf8_lossy(&openssl.stdout);
    assert_eq!(openssl.trim().rsplit('=').next().unwrap(), ca.fingerprint, "the fingerprint of the engine's CA file");
    let page = ca.page_url.clone().expect("a CA page address");
    assert_eq!(page, format!("http://{}/_simpleotp/ca", app.url.trim_start_matches("https://").trim_end_matches('/')));
    assert_eq!(ca.page_qr_svg.as_deref(), Some(simpleotp_engine::qr::svg(&page).unwrap().as_str()));
    // The page as a phone opens it: plain HTTP to the app's port, by the name in the QR code
    // (resolved to this machine here, as mDNS would on the network).
    let host = page.trim_start_matches("http://").rsplit_once(':').unwrap().0.to_string();
    let curl = simpleotp_engine::child::command("curl")
        .args(["-sS", "--max-time", "10", "--resolve", &format!("{host}:{port}:127.0.0.1"), &page])
        .output()
        .expect("curl runs");
    let body = String::from_utf8_lossy(&curl.stdout);
    // The page names the CA the tray shows, and never a fingerprint to compare (the device
    // computes that from what it downloaded; the tray shows it for the comparison).
    assert!(body.contains(&ca.common_name) && body.contains("your device"), "the CA page is the tray's CA's:\n{body}");
    assert!(!body.contains(&ca.fingerprint), "the CA page shows a fingerprint:\n{body}");
    assert_eq!(ca.sha1_thumbprint.len(), 40, "Windows' thumbprint for the comparison there");
    h.core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnostics_name_versions_nginx_ports_and_errors_but_no_secret_or_token() {
    let h = Harness::new("diagnostics");
    h.set_up().await;
    let (up, _stop) = upstream().await;
    let (port, _) = on_free_port("the app", async |port| h.core.app_add(input("Jupyter", &up.to_string(), port)).await).await;
    let secret = h.store.load().unwrap();
    let session = sign_in(&h.core, "127.0.0.1", port, &h.stored_code()).await;
    let ticket_link = h.core.security_unlock().unwrap().links.remove(0).url;
    let session_id = h.core.sessions_list()[0].id.clone();
    h.core.remember_error("nginx keeps failing: example");
    // The log's last lines are in the report, scrubbed again: even lines that should never have
    // been logged lose what a person could sign in with.
    let log = simpleotp_engine::logfile::path(&h.core.paths.data_dir);
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    let ticket = ticket_link.split("ticket=").nth(1).unwrap().to_string();
    std::fs::write(
        &log,
        format!(
            "INFO gateway started on the test port\nWARN leaked: GET /?ticket={ticket} code {} cookie simpleotp_{port}={session}\n",
            h.stored_code()
        ),
    )
    .unwrap();

    let report = h.core.diagnostics().await;
    assert!(report.contains("INFO gateway started on the test port"), "{report}");
    assert!(report.contains(&format!("Log file: {}", log.display())), "{report}");
    assert!(report.contains(&format!("SimpleOTP {}", env!("CARGO_PKG_VERSION"))), "{report}");
    assert!(report.contains("nginx version: nginx/") || report.contains("nginx version: "), "{report}");
    assert!(report.contains("nginx -t: ok"), "{report}");
    assert!(report.contains(&format!("Jupyter: port 127.0.0.1:{port}")), "{report}");
    assert!(report.contains("Protection: on"), "{report}");
    assert!(report.contains("Signed in: 1"), "{report}");
    assert!(report.contains("Sessions last: 7 days (12 hours when unused)"), "{report}");
    assert!(report.contains("nginx keeps failing: example"), "{report}");
    assert!(report.contains(&h.dir.path().join("config.toml").display().to_string()), "{report}");

    // Nothing a person could sign in with, in any spelling.
    let base32 = secret.to_grouped_base32();
    for group in base32.split_whitespace() {
        assert!(!report.contains(group), "a piece of the secret is in the report:\n{report}");
    }
    assert!(!report.contains(&base32.replace(' ', "")));
    assert!(!report.contains(&session), "the session token is in the report");
    assert!(!report.contains(&session_id), "the session id is in the report");
    assert!(!report.contains(&ticket), "the unlock ticket is in the report");
    assert!(!report.contains(&h.stored_code()), "a current code is in the report");
    assert_eq!(h.core.config_folder(), h.dir.path());
    h.core.shutdown().await;
}

/// The app forms start with a port nothing uses: 8081 if it is free, else the next free one,
/// skipping ports other programs hold and ports our own apps use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offered_port_is_8081_or_the_next_free_one() {
    let h = Harness::new("free-port-offer");
    let offered = h.core.app_free_port().unwrap();
    assert!(offered >= 8081, "{offered}");
    // Another program takes it: the next offer is past it.
    let holder = std::net::TcpListener::bind(("127.0.0.1", offered)).expect("the offered port is free");
    let next = h.core.app_free_port().unwrap();
    assert!(next > offered, "{next} after {offered}, which is held");
    drop(holder);
    // One of our own apps uses it (protection is off, so nothing listens there yet): skipped too.
    h.core.app_add(input("Jupyter", "http://127.0.0.1:8888", offered)).await.unwrap();
    let after_app = h.core.app_free_port().unwrap();
    assert_ne!(after_app, offered, "the port of an app is not offered again");
    assert!(std::net::TcpListener::bind(("127.0.0.1", after_app)).is_ok(), "{after_app} is free");
}

/// Other devices per app (#21 point 2): one app let in from the Apps form listens on all
/// interfaces (HTTPS at this computer's network address) while the other stays on this computer
/// only; taking it back out restarts the gateway onto loopback, and this computer stays signed
/// in through both moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_devices_are_chosen_per_app() {
    let h = Harness::new("per-app-lan");
    h.set_up().await;
    let (up, _stop) = upstream().await;
    let network = *listeners::network_addresses().iter().find(|ip| ip.is_ipv4()).expect("a network address besides loopback");
    let phone_side = |port: u16| std::net::TcpStream::connect_timeout(&SocketAddr::new(network, port), Duration::from_secs(1)).is_ok();
    let (local, _) = on_free_port("the app", async |port| h.core.app_add(input("Local", &format!("http://{up}"), port)).await).await;
    let (shared, saved) = on_free_port("the app", async |port| {
        h.core.app_add(AppInput { other_devices: Some(true), ..input("Shared", &format!("http://{up}"), port) }).await
    })
    .await;
    assert!(saved.app.other_devices && saved.warning.as_deref().is_some_and(|w| w.contains("reached from other devices")), "{saved:?}");
    assert!(h.config_text().contains(&format!("0.0.0.0:{shared}")) && h.config_text().contains(&format!("127.0.0.1:{local}")));
    assert!(h.core.settings_get().lan, "Settings say other devices may connect");
    assert!(phone_side(shared) && !phone_side(local), "only the app let in answers at {network}");
    let token = sign_in(&h.core, "127.0.0.1", shared, &h.stored_code()).await;
    assert_eq!(get(&format!("http://127.0.0.1:{shared}/"), Some(&token)).await.0, 200);
    let devices = h.core.devices().await.unwrap();
    assert_eq!(devices.apps.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["Shared"], "only it is offered to phones");

    let back = h
        .core
        .app_edit("Shared", AppInput { other_devices: Some(false), ..input("Shared", &format!("http://{up}"), shared) })
        .await
        .unwrap();
    assert!(!back.app.other_devices);
    assert!(h.config_text().contains(&format!("127.0.0.1:{shared}")), "{}", h.config_text());
    assert!(!phone_side(shared), "moved back to this computer only");
    assert_eq!(get(&format!("http://127.0.0.1:{shared}/"), Some(&token)).await.0, 200, "still signed in after the restart");
    assert!(!h.core.settings_get().lan);
    h.core.shutdown().await;
}

/// "Open it at: …" while the port is typed: this computer's address, the same when other
/// devices may reach the apps too (loopback stays plain HTTP).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_preview_follows_the_port() {
    let h = Harness::new("address-preview");
    assert_eq!(h.core.app_address(8081).unwrap(), "http://localhost:8081/");
    assert_eq!(h.core.app_address(9000).unwrap(), "http://localhost:9000/");
    *lock(&h.core.lan) = true;
    assert_eq!(h.core.app_address(8081).unwrap(), "http://localhost:8081/");
}

/// A taken port is refused with a free one to use instead, which then works; a port of another
/// of our apps names that app; an app keeps its own port when edited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_is_refused_with_a_free_alternative_that_works() {
    let h = Harness::new("port-alternative");
    h.set_up().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let err = h.core.app_add(input("Jupyter", "http://127.0.0.1:8888", taken_port)).await.unwrap_err();
    let message = err.user_message();
    let CoreError::PortTaken { port, used_by: None, alternative: Some(alternative) } = err else { panic!("{err:?}") };
    assert_eq!(port, taken_port);
    assert!(alternative > taken_port, "{alternative}");
    assert_eq!(message, format!("Port {taken_port} is already in use by another program. Use {alternative} instead."));
    assert!(h.core.status().apps.is_empty(), "nothing saved");

    // The alternative works (the window's "Use …" button sends the same app with it).
    let saved = h.core.app_add(input("Jupyter", "http://127.0.0.1:8888", alternative)).await.unwrap();
    assert_eq!(saved.app.url, format!("http://localhost:{alternative}/"));
    assert!(saved.own_sign_in.contains("Jupyter will still ask for its own token or password"), "{}", saved.own_sign_in);

    // Our own app's port: named, with another alternative; editing the app keeps its port.
    let err = h.core.app_add(input("Grafana", "http://127.0.0.1:3000", alternative)).await.unwrap_err();
    assert!(err.user_message().starts_with(&format!("Port {alternative} is already in use by Jupyter. Use ")), "{}", err.user_message());
    assert!(matches!(err, CoreError::PortTaken { alternative: Some(other), .. } if other != alternative && other != taken_port));
    let edited = h.core.app_edit("Jupyter", input("Jupyter", "http://127.0.0.1:8889", alternative)).await.unwrap();
    assert_eq!(edited.app.port, alternative);
    let (_, grafana) = on_free_port("Grafana", async |port| h.core.app_add(input("Grafana", "http://127.0.0.1:3000", port)).await).await;
    assert!(grafana.own_sign_in.contains("If Grafana has a password of its own"), "{}", grafana.own_sign_in);
    drop(taken);
    h.core.shutdown().await;
}

/// The **Test** button makes a real HTTP request: a live upstream answers with its status, a
/// closed port is "nothing answers", and a server that accepts but does not speak HTTP is not
/// taken for a working app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_button_asks_the_upstream_over_http() {
    let h = Harness::new("upstream-test");
    let (up, _stop) = upstream().await;
    let live = h.core.app_test(&input("Jupyter", &format!("http://{up}"), 0)).await.unwrap();
    assert!(live.answers, "{live:?}");
    assert_eq!(live.message, "Jupyter answered: it runs there.", "in plain words, no HTTP status");

    // A server that redirects (as Jupyter does to its login) answered too.
    let redirecting = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirecting_addr = redirecting.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = redirecting.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = stream.read(&mut buf).await;
        let _ = stream.write_all(b"HTTP/1.1 302 Found\r\nLocation: /login\r\nContent-Length: 0\r\n\r\n").await;
    });
    let redirect = h.core.app_test(&input("Jupyter", &redirecting_addr.to_string(), 0)).await.unwrap();
    assert_eq!(redirect.message, "Jupyter answered: it runs there.");

    let dead_port = free_port();
    let dead = h.core.app_test(&input("Jupyter", &format!("http://127.0.0.1:{dead_port}"), 0)).await.unwrap();
    assert!(!dead.answers, "{dead:?}");
    assert_eq!(dead.message, format!("Nothing answers at http://127.0.0.1:{dead_port} — is it running?"));

    let not_http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let not_http_addr = not_http.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = not_http.accept().await.unwrap();
        let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await;
    });
    let other = h.core.app_test(&input("Jupyter", &format!("http://{not_http_addr}"), 0)).await.unwrap();
    assert!(other.message.contains("not as a web page"), "{other:?}");

    // An https upstream: connected to, and said so (no TLS client here to read its status).
    let tls = h.core.app_test(&input("Jupyter", &format!("https://{up}"), 0)).await.unwrap();
    assert!(tls.answers && tls.message.contains("over HTTPS (the connection works"), "{tls:?}");
    let tls_dead = h.core.app_test(&input("Jupyter", &format!("https://127.0.0.1:{dead_port}"), 0)).await.unwrap();
    assert!(!tls_dead.answers, "{tls_dead:?}");

    let bad = h.core.app_test(&input("Jupyter", "ftp://127.0.0.1:21", 0)).await.unwrap_err();
    assert!(bad.user_message().contains("only http and https"), "{}", bad.user_message());
}

/// The bypass check (`listeners`), with real sockets at this machine's real network address: an
/// app that itself listens on all interfaces is reachable there, so Test and the saved app warn,
/// Status and the tray menu flag it (the periodic check runs right after the app is added), and
/// once it listens on 127.0.0.1 only, the next check clears all of it. Skipped (said so) on a
/// machine with no network address besides loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_reachable_without_a_code_is_flagged_until_it_listens_on_127_0_0_1_only() {
    let addresses = listeners::network_addresses();
    if addresses.is_empty() {
        eprintln!("skipped: this machine has no network address besides loopback");
        return;
    }
    let h = Harness::new("reachable");
    h.set_up().await;
    tokio::spawn(Core::recheck_bypasses_periodically(Arc::downgrade(&h.core)));
    let everywhere = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = everywhere.local_addr().unwrap().port();
    let upstream = format!("http://127.0.0.1:{port}");
    let is_this_computers = |at: &str| addresses.iter().any(|ip| SocketAddr::new(*ip, port).to_string() == at);

    let check = h.core.app_test(&input("Jupyter", &upstream, 0)).await.unwrap();
    let warning = check.exposure.expect("Test warns");
    assert!(warning.starts_with("Jupyter is reachable without a code") && warning.contains("--ip=127.0.0.1"), "{warning}");
    assert!(addresses.iter().any(|ip| warning.contains(&SocketAddr::new(*ip, port).to_string())), "names where: {warning}");
    let mut events = h.core.subscribe();
    let (_, saved) = on_free_port("the app", async |p| h.core.app_add(input("Jupyter", &upstream, p)).await).await;
    assert!(saved.exposure.is_some_and(|e| e.starts_with("Jupyter is reachable without a code")));
    assert!(saved.app.reachable_without_code.as_deref().is_some_and(is_this_computers), "{:?}", saved.app);

    // The periodic check was asked to run at once: Status and the tray follow, and are told.
    let flagged = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(at) = h.core.status().apps[0].reachable_without_code.clone() {
                return at;
            }
            let _ = events.recv().await;
        }
    })
    .await
    .expect("Status flags the app soon after it is added");
    assert!(is_this_computers(&flagged), "{flagged} is not at {addresses:?}");
    assert_eq!(h.core.tray_state().reachable_without_code, ["Jupyter"]);

    // Fixed: the same app, on the same port, now on 127.0.0.1 only. "Check again" clears it.
    drop(everywhere);
    let local = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let status = h.core.check_bypasses().await;
    assert_eq!(status.apps[0].reachable_without_code, None, "{status:?}");
    assert!(h.core.tray_state().reachable_without_code.is_empty());
    assert_eq!(h.core.app_test(&input("Jupyter", &upstream, 0)).await.unwrap().exposure, None);
    assert!(main_js_reads("reachable_without_code"), "the window shows it");
    drop(local);
    h.core.shutdown().await;
}

/// The window's "how to reach me" wording follows `tray_available`: in the status, and announced
/// (once) when it changes, since the Tauri part asks again each time the window opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tray_available_is_in_the_status_and_announced_when_it_changes() {
    let h = Harness::new("tray-available");
    let mut events = h.core.subscribe();
    assert!(h.core.status().tray_available, "assumed until the Tauri part knows better");
    h.core.set_tray_available(false);
    assert!(!h.core.status().tray_available);
    assert!(matches!(events.try_recv(), Ok(CoreEvent::Changed)));
    h.core.set_tray_available(false);
    assert!(events.try_recv().is_err(), "no change, no event");
    h.core.set_tray_available(true);
    assert!(h.core.status().tray_available);
}

/// Quit, Cmd+Q, log-out and signals all end in `shutdown` (lib.rs): nginx stops, its ports close,
/// the sessions are written for the next start, and a second call (the exit after Quit) does
/// nothing and returns at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_nginx_writes_the_state_and_a_second_one_does_nothing() {
    let h = Harness::new("shutdown");
    h.set_up().await;
    let (up, _stop) = upstream().await;
    let (port, _) = on_free_port("the app", async |port| h.core.app_add(input("Demo", &up.to_string(), port)).await).await;
    sign_in(&h.core, "127.0.0.1", port, &h.stored_code()).await;
    let pid_file = find_file(&h.dir.path().join("data"), "nginx.pid").expect("nginx wrote its pid file");
    let pid: u32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    assert!(process_alive(pid));

    h.core.shutdown().await;
    assert!(!process_alive(pid), "nginx ({pid}) still runs after the shutdown");
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err(), "the app's port still answers");
    assert!(h.dir.path().join("data").join(simpleotp_engine::state::STATE_FILE_NAME).is_file(), "the state file was written");
    tokio::time::timeout(Duration::from_secs(1), h.core.shutdown()).await.expect("a second shutdown returns at once");

    let core = h.reopen();
    core.start_up().await;
    assert_eq!(core.sessions_list().len(), 1, "the session survived the shutdown");
    core.shutdown().await;
}

fn find_file(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.file_name().is_some_and(|n| n == name) {
            return Some(path);
        }
        if path.is_dir() {
            if let Some(found) = find_file(&path, name) {
                return Some(found);
            }
        }
    }
    None
}

/// Windows Firewall (a stand-in here): turning on other devices asks once; declined, the status,
/// the tray and Other devices say other devices may be blocked instead of "on", and "Ask Windows
/// again" asks again; allowed, the warning goes. Apps for this computer only need nothing. At
/// the next start the rules are read again (no prompt), so a block is still shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_firewall_prompt_is_shown_until_windows_lets_other_devices_in() {
    let firewall = Arc::new(FakeFirewall::default());
    let h = Harness::with_firewall("firewall", &firewall);
    h.set_up().await;
    on_free_port("the app", async |port| h.core.app_add(input("Jupyter", "http://127.0.0.1:8888", port)).await).await;
    assert_eq!(firewall.checks.load(Ordering::SeqCst), 0, "for this computer only, nothing is asked");
    let blocked = |core: &Core| core.status().warnings.iter().any(|w| w == firewall::BLOCKED_WARNING);
    assert!(firewall::BLOCKED_WARNING.starts_with("Windows Firewall may block other devices: "));

    let saved = h.core.settings_set(SettingsView { lan: true, ..h.core.settings_get() }).await.unwrap();
    assert_eq!(firewall.prompts.load(Ordering::SeqCst), 1);
    assert!(saved.warnings.iter().any(|w| w == firewall::BLOCKED_WARNING), "{:?}", saved.warnings);
    assert_eq!(h.core.status().state, Protection::Running, "this computer is still protected");
    assert!(blocked(&h.core));
    assert!(h.core.tray_state().firewall_blocked);
    assert_eq!(h.core.devices().await.unwrap().firewall_blocked.as_deref(), Some(firewall::BLOCKED_WARNING));

    firewall.open.store(true, Ordering::SeqCst);
    let mut events = h.core.subscribe();
    assert_eq!(h.core.firewall_retry().await, None);
    assert!(matches!(events.try_recv(), Ok(CoreEvent::Changed)), "the tray and the window hear of it");
    assert_eq!(firewall.prompts.load(Ordering::SeqCst), 2);
    assert!(!blocked(&h.core) && !h.core.tray_state().firewall_blocked);
    assert_eq!(h.core.devices().await.unwrap().firewall_blocked, None);

    // Declined again, then other devices turned off: nothing left to warn about or ask.
    firewall.open.store(false, Ordering::SeqCst);
    assert_eq!(h.core.firewall_retry().await.as_deref(), Some(firewall::BLOCKED_WARNING));
    let saved = h.core.settings_set(SettingsView { lan: false, ..h.core.settings_get() }).await.unwrap();
    assert!(saved.warnings.is_empty(), "{:?}", saved.warnings);
    assert!(!blocked(&h.core) && !h.core.tray_state().firewall_blocked);
    assert_eq!(h.core.firewall_retry().await, None);
    assert_eq!(firewall.prompts.load(Ordering::SeqCst), 3, "no prompt while the apps are for this computer only");

    // On again (declined), then a restart: the rules are read without a prompt.
    h.core.settings_set(SettingsView { lan: true, ..h.core.settings_get() }).await.unwrap();
    assert_eq!(firewall.prompts.load(Ordering::SeqCst), 4);
    // Another nginx (Settings) facing the network needs its own rule: asked again.
    let nginx = nginx::discover(None).unwrap();
    h.core.settings_set(SettingsView { nginx_path: Some(nginx.display().to_string()), ..h.core.settings_get() }).await.unwrap();
    assert_eq!(firewall.prompts.load(Ordering::SeqCst), 5);
    h.core.shutdown().await;
    let core = h.reopen_with_firewall(&firewall);
    core.start_up().await;
    assert_eq!(firewall.prompts.load(Ordering::SeqCst), 5, "no prompt at start");
    assert_eq!(firewall.checks.load(Ordering::SeqCst), 1);
    assert!(blocked(&core) && core.tray_state().firewall_blocked);
    core.shutdown().await;
}

/// Issue 19: the tray saves into the user's file (comments and key order kept), and a file
/// edited by hand while the app runs is never overwritten: the save is refused, says so, and
/// the app takes the file as it is now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saves_keep_the_users_file_and_a_hand_edit_is_not_overwritten() {
    let mut h = Harness::new("config-in-place");
    let config_path = h.dir.path().join("config.toml");
    let hand_written = "# written by hand\nissuer = \"Home\"  # my label\n";
    std::fs::write(&config_path, hand_written).unwrap();
    h.core = h.reopen();

    let (port, _) = on_free_port("the app", async |port| h.core.app_add(input("Jupyter", "http://127.0.0.1:8888", port)).await).await;
    let saved = std::fs::read_to_string(&config_path).unwrap();
    assert!(saved.starts_with(hand_written), "the comments and the order were lost:\n{saved}");
    assert!(saved.contains(&format!("127.0.0.1:{port}")), "{saved}");

    // A hand edit while the app runs: the next save is refused and the edit stays.
    let by_hand = saved.replace("\"Home\"", "\"Office\"");
    std::fs::write(&config_path, &by_hand).unwrap();
    let err = h.core.app_add(input("Grafana", "http://127.0.0.1:3000", free_port())).await.unwrap_err();
    assert!(
        err.user_message().contains("The configuration file was changed outside SimpleOTP since it was loaded. Your change was not saved; SimpleOTP loaded the file again — make your change again."),
        "{}",
        err.user_message()
    );
    assert_eq!(std::fs::read_to_string(&config_path).unwrap(), by_hand);
    assert_eq!(h.core.config().issuer().as_str(), "Office", "the app took the file as it is now");
    assert_eq!(h.core.status().apps.len(), 1);

    // Made again, the change is saved over the hand edit, which is kept.
    on_free_port("the second app", async |port| h.core.app_add(input("Grafana", "http://127.0.0.1:3000", port)).await).await;
    let saved = std::fs::read_to_string(&config_path).unwrap();
    assert!(saved.starts_with(&by_hand), "{saved}");
    assert_eq!(Config::load(&config_path).unwrap().apps.len(), 2);

    // A hand edit that breaks the file: refused too, and the message says where it is wrong.
    let broken = std::fs::read_to_string(&config_path).unwrap().replace("issuer = \"Office\"", "issuer = Office");
    std::fs::write(&config_path, &broken).unwrap();
    let err = h.core.app_remove("Grafana").await.unwrap_err();
    assert!(err.user_message().contains("is not valid now") && err.user_message().contains("line 2"), "{}", err.user_message());
    assert_eq!(std::fs::read_to_string(&config_path).unwrap(), broken);
    h.core.shutdown().await;
}

/// What a check found reaches Settings and the tray in words, is kept across a restart, and a
/// failed check forgets nothing it knew (an update found earlier is still offered).
#[tokio::test]
async fn update_checks_reach_settings_and_the_tray_and_survive_a_restart() {
    use simpleotp_engine::updates::CheckFailure;
    let h = Harness::new("updates");
    let fresh = h.core.updates_view();
    assert_eq!((fresh.last_checked, fresh.available.clone(), fresh.automatic), (None, None, true));

    h.core.update_check_started();
    assert!(h.core.updates_view().checking);
    h.core.update_checked(CheckReport::Available { version: "99.0.0".into(), notes: Some("Fixes.".into()), cannot_install: None });
    let found = h.core.updates_view();
    assert!(!found.checking && found.last_checked.is_some());
    assert_eq!(found.available.as_ref().map(|a| a.version.as_str()), Some("99.0.0"));
    assert_eq!(h.core.tray_state().update_available.as_deref(), Some("99.0.0"));

    h.core.update_checked(CheckReport::Failed(CheckFailure::Unreachable));
    let offline = h.core.updates_view();
    assert_eq!(offline.last_result.as_deref(), Some("could not reach the update server"));
    assert_eq!(offline.available.as_ref().map(|a| a.version.as_str()), Some("99.0.0"), "still offered");

    h.core.update_problem("SimpleOTP 99.0.0 was refused: its signature does not match".into());
    assert!(h.core.updates_view().problem.unwrap().contains("refused"));
    assert_eq!(h.core.updates_view().installing, None);

    // The record is in the data directory, owner-only, and read by the next start.
    let record = simpleotp_engine::updates::UpdateRecord::path(&h.core.paths.data_dir);
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&record).unwrap().permissions()) & 0o077, 0);
    let reopened = h.reopen();
    assert_eq!(reopened.updates_view().last_checked, offline.last_checked);
    assert_eq!(reopened.updates_view().last_result.as_deref(), Some("could not reach the update server"));

    h.core.update_checked(CheckReport::UpToDate { newest: Some("0.0.1".into()), offered_older: true });
    let up_to_date = h.core.updates_view();
    assert_eq!((up_to_date.available, up_to_date.problem), (None, None));
    assert_eq!(up_to_date.last_result.as_deref(), Some("up to date"));
    assert_eq!(h.core.tray_state().update_available, None);

    assert!(!h.core.take_updates_focus());
    h.core.request_updates_focus();
    assert!(h.core.take_updates_focus() && !h.core.take_updates_focus(), "asked once");
}

/// Whether ui/main.js reads a field of what it is sent (a field nobody reads is a feature nobody sees).
fn main_js_reads(field: &str) -> bool {
    include_str!("../../../ui/main.js").contains(field)
}
