//! The `simpleotp` command, run as a person runs it: real processes, real signals, real files.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use simpleotp_engine::config::{Account, Issuer};
use simpleotp_engine::totp::{unix_now, Totp, TotpSecret};

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_simpleotp");

/// The command as a test runs it. Its update checks go to a port nothing listens on (the tests
/// about them set their own manifest), so no test asks the internet.
pub fn simpleotp(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args).env("SIMPLEOTP_LOG", "info").env_remove("RUST_LOG").env("SIMPLEOTP_UPDATE_URL", NO_UPDATE_SERVER);
    command
}

pub const NO_UPDATE_SERVER: &str = "http://127.0.0.1:9/latest.json";

/// `serve`'s first line, then the first app's line: its URL.
fn running_then_url(lines: &mut impl Iterator<Item = std::io::Result<String>>) -> (String, String) {
    let running = lines.next().and_then(Result::ok).unwrap_or_default();
    if !running.starts_with("SimpleOTP ") {
        return (running, String::new());
    }
    let first_app = lines.next().and_then(Result::ok).unwrap_or_default();
    (running, first_app)
}

pub fn run(command: &mut Command) -> Output {
    command.output().expect("simpleotp runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A `serve` child that is killed (SIGKILL) if the test ends early.
pub struct Serve {
    child: Child,
    stderr_log: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// Starts `simpleotp serve` and waits for it to print the protected URL.
    pub fn start(dir: &Path, config: &Path, secret_file: &Path) -> (Serve, String) {
        Self::start_with_env(dir, config, secret_file, &[])
    }

    pub fn start_with_env(dir: &Path, config: &Path, secret_file: &Path, env: &[(&str, &str)]) -> (Serve, String) {
        Self::try_start_with_env(dir, config, secret_file, env).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Serve::start_with_env`]; a `serve` that does not get as far as printing the URL
    /// is an error that carries its stderr (e.g. a port in use).
    /// Like [`Serve::start_with_env`], and gives the line `serve` starts with ("SimpleOTP … is
    /// running.") in `printed`.
    pub fn start_with_running_line(
        dir: &Path,
        config: &Path,
        secret_file: &Path,
        env: &[(&str, &str)],
        printed: &mut Vec<String>,
    ) -> (Serve, String) {
        let (serve, url, running) = Self::start_inner(dir, config, secret_file, env).unwrap_or_else(|e| panic!("{e}"));
        printed.push(running);
        (serve, url)
    }

    pub fn try_start_with_env(dir: &Path, config: &Path, secret_file: &Path, env: &[(&str, &str)]) -> Result<(Serve, String), ServeFailed> {
        Self::start_inner(dir, config, secret_file, env).map(|(serve, url, _)| (serve, url))
    }

    fn start_inner(dir: &Path, config: &Path, secret_file: &Path, env: &[(&str, &str)]) -> Result<(Serve, String, String), ServeFailed> {
        let stderr_log = dir.join("serve.stderr");
        let mut child = simpleotp(&["serve"])
            .envs(env.iter().copied())
            .arg("--config")
            .arg(config)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--secret-file")
            .arg(secret_file)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_log).unwrap())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (running, first_app) = running_then_url(&mut lines);
        let serve = Serve { child, stderr_log };
        match first_app.split_once(": ") {
            Some((_, url)) => Ok((serve, url.to_string(), running)),
            None => Err(ServeFailed { printed: running, stderr: serve.stderr() }),
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child; no memory is involved.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "serve did not exit within {timeout:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `serve` did not start: what it printed instead of the URL, and its stderr.
#[derive(Debug)]
pub struct ServeFailed {
    printed: String,
    stderr: String,
}

impl std::fmt::Display for ServeFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "serve printed {:?}; stderr: {}", self.printed, self.stderr)
    }
}

impl std::error::Error for ServeFailed {}

/// A config with one app in front of `upstream` on a free port (that nothing starts on yet).
pub fn write_config(dir: &Path, upstream: &str) -> (PathBuf, u16) {
    let port = free_port();
    (write_config_on(dir, upstream, port), port)
}

/// A config with one app in front of `upstream` on `port`.
pub fn write_config_on(dir: &Path, upstream: &str, port: u16) -> PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(&path, format!("[[app]]\nname = \"Notebook\"\nupstream = \"{upstream}\"\nlisten = \"127.0.0.1:{port}\"\n")).unwrap();
    path
}

/// `serve` for a config of one app in front of `upstream` (see [`write_config`]), on a free port;
/// should another program take that port before nginx binds it, the config is written again
/// for a new port and `serve` starts again. Returns the server, the protected URL and the
/// config file.
pub async fn serve_on_free_port(dir: &Path, upstream: &str, secret_file: &Path, env: &[(&str, &str)]) -> (Serve, String, PathBuf) {
    let (port, (serve, url)) = on_free_port("simpleotp serve", async |port| {
        let config = write_config_on(dir, upstream, port);
        tokio::task::block_in_place(|| Serve::try_start_with_env(dir, &config, secret_file, env))
    })
    .await;
    (serve, url, write_config_on(dir, upstream, port))
}

pub fn init_secret_file(dir: &Path) -> (PathBuf, Totp) {
    let path = dir.join("secret");
    let output = run(simpleotp(&["init", "--secret-file"]).arg(&path).args(["--config"]).arg(dir.join("none.toml")));
    assert!(output.status.success(), "{}", stderr(&output));
    let secret = TotpSecret::from_base32(std::fs::read_to_string(&path).unwrap().trim()).unwrap();
    (path, Totp::new(&secret, &Issuer::parse("SimpleOTP").unwrap(), &Account::parse("test").unwrap()))
}

/// `ca export`/`ca rotate` find the CA where `serve` with the same options keeps it: the three
/// options mean the same in each, down to their help.
#[test]
fn serve_and_ca_take_the_same_gateway_options() {
    let options = |args: &[&str]| -> Vec<String> {
        let output = run(&mut simpleotp(args));
        assert!(output.status.success(), "{}", stderr(&output));
        let help = stdout(&output);
        ["--config", "--data-dir", "--secret-file"]
            .iter()
            .map(|flag| {
                help.lines()
                    .find(|line| line.trim_start().starts_with(flag))
                    .unwrap_or_else(|| panic!("{flag} missing:\n{help}"))
                    .to_string()
            })
            .collect()
    };
    let serve = options(&["serve", "--help"]);
    assert!(serve[1].contains("CA certificate") && serve[2].contains("CA key"), "{serve:?}");
    assert_eq!(options(&["ca", "export", "--help"]), serve);
    assert_eq!(options(&["ca", "rotate", "--help"]), serve);
}

#[test]
fn version_is_printed() {
    let output = run(&mut simpleotp(&["--version"]));
    assert!(output.status.success());
    assert_eq!(stdout(&output).trim(), format!("simpleotp {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn init_writes_a_private_secret_file_shows_the_qr_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    let png = dir.path().join("qr.png");
    let output = run(simpleotp(&["init", "--account", "alice@laptop", "--issuer", "Home Lab", "--secret-file"])
        .arg(&secret)
        .arg("--qr-png")
        .arg(&png)
        .arg("--config")
        .arg(dir.path().join("none.toml")));
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    let stored = std::fs::read_to_string(&secret).unwrap().trim().to_string();
    assert!(TotpSecret::from_base32(&stored).unwrap().as_bytes().len() >= 20, "at least 160 bits");
    assert_eq!(std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(out.contains(&format!("otpauth://totp/Home%20Lab:alice%40laptop?secret={stored}")), "{out}");
    assert!(out.contains('█'), "a QR code in the terminal");
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
    assert!(!stderr(&output).contains(&stored), "the secret goes to stdout for the user, never to the log");

    let again = run(simpleotp(&["init", "--secret-file"]).arg(&secret).arg("--config").arg(dir.path().join("none.toml")));
    assert!(!again.status.success());
    assert!(stderr(&again).contains("already stored"), "{}", stderr(&again));
    assert_eq!(std::fs::read_to_string(&secret).unwrap().trim(), stored, "nothing was lost");

    let forced = run(simpleotp(&["init", "--force", "--secret-file"]).arg(&secret).arg("--config").arg(dir.path().join("none.toml")));
    assert!(forced.status.success());
    assert_ne!(std::fs::read_to_string(&secret).unwrap().trim(), stored);
}

#[test]
fn init_without_a_keychain_suggests_the_secret_file() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(simpleotp(&["init", "--config"])
        .arg(dir.path().join("none.toml"))
        .env("DBUS_SESSION_BUS_ADDRESS", format!("unix:path={}/no-bus", dir.path().display())));
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("keychain") && err.contains("--secret-file"), "{err}");
}

/// Whether to run a test that writes the app's real keychain entry: skipped with
/// SIMPLEOTP_SKIP_KEYCHAIN_TESTS=1, else only inside the throw-away keyring of `scripts/with-keyring.sh`.
pub fn keychain_tests_wanted() -> bool {
    if std::env::var("SIMPLEOTP_SKIP_KEYCHAIN_TESTS").as_deref() == Ok("1") {
        eprintln!("SKIPPED: SIMPLEOTP_SKIP_KEYCHAIN_TESTS=1");
        return false;
    }
    assert!(
        std::env::var_os("SIMPLEOTP_THROWAWAY_KEYRING").is_some(),
        "this test writes the app's keychain entry; run it through scripts/with-keyring.sh (or set SIMPLEOTP_SKIP_KEYCHAIN_TESTS=1)"
    );
    true
}

/// The real keychain entry the app uses, in the throw-away keyring of `scripts/with-keyring.sh`.
#[test]
fn init_and_serve_with_the_os_keychain() {
    if !keychain_tests_wanted() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let none = dir.path().join("none.toml");
    let output = run(simpleotp(&["init", "--force", "--config"]).arg(&none));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("OS keychain"));
    let refused = run(simpleotp(&["init", "--config"]).arg(&none));
    assert!(stderr(&refused).contains("already stored"), "{}", stderr(&refused));

    // `serve` without --secret-file reads the keychain.
    let (config, _) = write_config(dir.path(), "http://127.0.0.1:9");
    let mut child = simpleotp(&["serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (running, line) = running_then_url(&mut BufReader::new(child.stdout.take().unwrap()).lines());
    assert_eq!(running, format!("SimpleOTP {} is running.", env!("CARGO_PKG_VERSION")));
    assert!(line.starts_with("Notebook: http://localhost:"), "{line}");
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}

#[test]
fn serve_without_a_secret_says_to_run_init() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = write_config(dir.path(), "http://127.0.0.1:9");
    let output = run(simpleotp(&["serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--secret-file")
        .arg(dir.path().join("missing")));
    assert!(!output.status.success());
    assert!(stderr(&output).contains("simpleotp init"), "{}", stderr(&output));
}

#[test]
fn bad_config_names_the_line_and_column_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (secret, _) = init_secret_file(dir.path());
    let config = dir.path().join("config.toml");
    let text = "[[app]]\nname = \"Notebook\"\nupstream = \"ftp://127.0.0.1:8888\"\nlisten = \"127.0.0.1:8081\"\n";
    std::fs::write(&config, text).unwrap();
    let output =
        run(simpleotp(&["serve", "--config"]).arg(&config).arg("--secret-file").arg(&secret).arg("--data-dir").arg(dir.path().join("d")));
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("line 3") && err.contains("column"), "{err}");
    assert!(err.contains("http"), "the message says what is allowed: {err}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), text);

    std::fs::write(&config, "[[app]]\nname = \"Notebook\"\nupstrem = \"http://127.0.0.1:8888\"\n").unwrap();
    let err = stderr(&run(simpleotp(&["nginx-snippet", "--config"]).arg(&config)));
    assert!(err.contains("upstrem") && err.contains("line 3"), "{err}");
}

#[test]
fn port_in_use_names_the_port_and_the_app() {
    let dir = tempfile::tempdir().unwrap();
    let (secret, _) = init_secret_file(dir.path());
    // The port is taken first (port 0: the system picks one), then written into the config.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let config = write_config_on(dir.path(), "http://127.0.0.1:9", port);
    let output =
        run(simpleotp(&["serve", "--config"]).arg(&config).arg("--secret-file").arg(&secret).arg("--data-dir").arg(dir.path().join("d")));
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains(&format!("port {port}")) && err.contains("Notebook"), "{err}");
}

#[test]
fn missing_nginx_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (secret, _) = init_secret_file(dir.path());
    let (config, _) = write_config(dir.path(), "http://127.0.0.1:9");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.insert_str(0, "[nginx]\npath = \"/opt/nowhere/nginx\"\n\n");
    std::fs::write(&config, text).unwrap();
    let output =
        run(simpleotp(&["serve", "--config"]).arg(&config).arg("--secret-file").arg(&secret).arg("--data-dir").arg(dir.path().join("d")));
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("/opt/nowhere/nginx"), "{err}");
}

/// `simpleotp nginx-snippet --data-dir D`: the snippet, with the proof kept (0600) in `D`.
fn print_snippet(config: &Path, data_dir: &Path) -> String {
    let output = run(simpleotp(&["nginx-snippet", "--config"]).arg(config).arg("--data-dir").arg(data_dir));
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output)
}

#[test]
fn nginx_snippet_is_ready_to_paste() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = write_config(dir.path(), "http://127.0.0.1:8888");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.insert_str(0, "auth_listen = \"127.0.0.1:9191\"\n");
    std::fs::write(&config, text).unwrap();
    let data_dir = dir.path().join("data");
    let snippet = print_snippet(&config, &data_dir);
    for needle in ["auth_request", "127.0.0.1:9191", "127.0.0.1:8888", "X-Real-IP", "Upgrade", "return 421"] {
        assert!(snippet.contains(needle), "snippet lacks {needle}:\n{snippet}");
    }
    // The proof nginx will send is kept privately in the data directory, and stays the same.
    let proof_file = data_dir.join("nginx-proof");
    let proof = std::fs::read_to_string(&proof_file).unwrap();
    assert!(snippet.contains(&format!("x-simpleotp-proof \"{}\"", proof.trim())), "{snippet}");
    assert_eq!(std::fs::metadata(&proof_file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(print_snippet(&config, &data_dir), snippet);
}

/// A child process stopped when the test ends, however it ends: SIGTERM first, so that an nginx
/// master takes its workers with it (after SIGKILL they would live on, holding the port and the
/// test's output), then SIGKILL if it has not gone within five seconds.
struct StopOnDrop(Child);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child; no memory is involved.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Someone else's nginx, running the pasted snippet, in front of `serve --external-nginx`: the
/// proof in the snippet is the one `serve` reads from the same data directory, so the auth server
/// believes that nginx and a browser signs in to the app.
#[tokio::test(flavor = "multi_thread")]
async fn external_nginx_with_the_pasted_snippet_protects_the_app() {
    let dir = tempfile::tempdir().unwrap();
    let (secret_file, totp) = init_secret_file(dir.path());
    let upstream_addr = spawn_demo_upstream().await;
    let upstream = format!("http://{upstream_addr}");
    let data_dir = dir.path().join("data");
    let own = dir.path().join("own-nginx");
    std::fs::create_dir_all(&own).unwrap();

    // Both are started on ports the test chooses (the app's for nginx, the auth server's for
    // serve). Should another program take one of them first, that process exits saying the
    // address is in use, and both start again on new ports.
    let (port, (nginx, serve)) = on_free_port("the external nginx and serve", async |port| {
        let config = write_config_on(dir.path(), &upstream, port);
        let text = format!("auth_listen = \"127.0.0.1:{}\"\n{}", free_port(), std::fs::read_to_string(&config).unwrap());
        std::fs::write(&config, text).unwrap();
        let pasted = print_snippet(&config, &data_dir);

        let p = own.display();
        // SAFETY: geteuid has no preconditions.
        let user = if unsafe { libc::geteuid() } == 0 { "user root;\n" } else { "" };
        let conf = format!(
            "daemon off;\nworker_processes 1;\n{user}pid {p}/nginx.pid;\nerror_log stderr warn;\nevents {{ worker_connections 64; }}\n\
             http {{\naccess_log off;\nclient_body_temp_path {p}/body;\nproxy_temp_path {p}/proxy;\nfastcgi_temp_path {p}/fcgi;\n\
             uwsgi_temp_path {p}/uwsgi;\nscgi_temp_path {p}/scgi;\n{pasted}\n}}\n"
        );
        std::fs::write(own.join("nginx.conf"), conf).unwrap();
        let (nginx_log, serve_log) = (own.join("stderr.log"), dir.path().join("serve.log"));
        let binary = simpleotp_engine::nginx::discover(None).unwrap();
        let mut nginx = Command::new(binary);
        nginx.arg("-p").arg(&own).arg("-c").arg(own.join("nginx.conf")).stdout(Stdio::null());
        let nginx = StopOnDrop(nginx.stderr(std::fs::File::create(&nginx_log).unwrap()).spawn().unwrap());
        let mut serve = simpleotp(&["serve", "--external-nginx", "--config"]);
        serve.arg(&config).arg("--data-dir").arg(&data_dir).arg("--secret-file").arg(&secret_file).stdout(Stdio::null());
        let serve = StopOnDrop(serve.stderr(std::fs::File::create(&serve_log).unwrap()).spawn().unwrap());

        // Up when a request through nginx gets the login redirect.
        let mut pair = [(nginx, nginx_log), (serve, serve_log)];
        let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let answer = no_redirects.get(format!("http://127.0.0.1:{port}")).send().await;
            if answer.is_ok_and(|r| r.status() == 302) {
                let [(nginx, _), (serve, _)] = pair;
                return Ok((nginx, serve));
            }
            for (process, log) in &mut pair {
                if let Ok(Some(status)) = process.0.try_wait() {
                    let said = std::fs::read_to_string(&*log).unwrap_or_default();
                    return Err(std::io::Error::other(format!("{} exited ({status}): {said}", log.display())));
                }
            }
            assert!(Instant::now() < deadline, "no login redirect through the external nginx on port {port} within 15 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;

    let base = format!("http://127.0.0.1:{port}");
    let browser = client();
    let login = browser
        .post(format!("{base}/_simpleotp/login"))
        .header("origin", &base)
        .form(&[("code", totp.code_at(unix_now()).as_str()), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    assert_eq!(browser.get(&base).send().await.unwrap().status(), 200);

    // Stopped in order, nothing of either is left behind: an orphaned nginx worker would keep
    // the port (and the test's output) open.
    drop((serve, nginx));
    wait_until("the external nginx and its workers to let go of the port", Duration::from_secs(10), async || {
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
    })
    .await;
}

#[test]
fn unlock_without_a_running_gateway_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(simpleotp(&["unlock", "--data-dir"]).arg(dir.path()));
    assert!(!output.status.success());
    assert!(stderr(&output).contains("no running gateway"), "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_logs_no_secrets_unlocks_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (secret_file, totp) = init_secret_file(dir.path());
    let upstream_addr = spawn_demo_upstream().await;
    let (mut serve, url, _) = serve_on_free_port(dir.path(), &format!("http://{upstream_addr}"), &secret_file, &[]).await;
    let base = url.trim_end_matches('/').to_string();

    // Lock ourselves out, then lift it with the CLI.
    let browser = client();
    let login = format!("{base}/_simpleotp/login");
    let wrong = |n: u32| format!("{:06}", (totp.code_at(unix_now()).parse::<u32>().unwrap() + 500_000 + n) % 1_000_000);
    for n in 0..6 {
        browser.post(&login).form(&[("code", wrong(n).as_str()), ("next", "/")]).send().await.unwrap();
    }
    let code = totp.code_at(unix_now());
    let locked = browser.post(&login).form(&[("code", code.as_str()), ("next", "/")]).send().await.unwrap();
    assert_eq!(locked.status(), 429);
    let output = run(simpleotp(&["unlock", "--data-dir"]).arg(dir.path().join("data")));
    assert!(output.status.success(), "{}", stderr(&output));
    // It prints a one-time sign-in link on the app's address, and says the budget is not refilled.
    let printed = stdout(&output);
    assert!(printed.contains("not refilled"), "{printed}");
    let link = printed
        .split_whitespace()
        .find(|word| word.starts_with(&format!("{base}/_simpleotp/login?ticket=")))
        .unwrap_or_else(|| panic!("no link for {base} in:\n{printed}"));
    let page = client().get(link).send().await.unwrap().text().await.unwrap();
    assert!(form_field(&page, "ticket").is_some(), "{page}");
    let response = browser.post(&login).form(&[("code", code.as_str()), ("next", "/")]).send().await.unwrap();
    assert_eq!(response.status(), 303);
    let token = browser.session_token(&base);
    assert_eq!(browser.get(&url).send().await.unwrap().status(), 200);

    let nginx_pid = read_pid(&dir.path().join("data/nginx/nginx.pid")).expect("nginx pid file");
    serve.signal(libc::SIGTERM);
    let status = serve.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "serve exits 0 on SIGTERM: {status:?}\n{}", serve.stderr());
    assert!(!process_alive(nginx_pid), "nginx stopped with serve");
    assert!(!dir.path().join("data/control.json").exists(), "the control file is removed");

    let log = serve.stderr();
    assert!(log.contains("signed in"), "the log shows events: {log}");
    let secret = std::fs::read_to_string(&secret_file).unwrap();
    for (what, value) in [("secret", secret.trim()), ("session token", token.as_str()), ("code", code.as_str())] {
        assert!(!log.contains(value), "the {what} appears in the log:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkilled_serve_leaves_no_nginx_and_the_next_start_works() {
    let dir = tempfile::tempdir().unwrap();
    let (secret_file, _) = init_secret_file(dir.path());
    let (serve, url, config) = serve_on_free_port(dir.path(), "http://127.0.0.1:9", &secret_file, &[]).await;
    let nginx_pid = read_pid(&dir.path().join("data/nginx/nginx.pid")).expect("nginx pid file");
    assert!(process_alive(nginx_pid));

    serve.signal(libc::SIGKILL);
    wait_until("nginx to follow the killed engine", Duration::from_secs(5), async || !process_alive(nginx_pid)).await;
    drop(serve);

    // A corrupt state file from the crash is set aside with a warning, never a crash.
    std::fs::write(dir.path().join("data/state.json"), b"{\"version\": 1, \"sess").unwrap();
    let (serve, url_again) = tokio::task::block_in_place(|| Serve::start(dir.path(), &config, &secret_file));
    assert_eq!(url_again, url);
    assert_eq!(client().get(&url).send().await.unwrap().status(), 302, "serving again after the crash");
    let log = serve.stderr();
    assert!(log.contains("state.json.corrupt-"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn second_serve_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (secret_file, _) = init_secret_file(dir.path());
    let (serve, url, _) = serve_on_free_port(dir.path(), "http://127.0.0.1:9", &secret_file, &[]).await;
    let data = dir.path().join("data");
    let control_before = std::fs::read(data.join("control.json")).unwrap();
    let nginx_pid = read_pid(&data.join("nginx/nginx.pid")).expect("nginx pid file");
    let (other_config, _) = {
        let other = dir.path().join("other");
        std::fs::create_dir(&other).unwrap();
        write_config(&other, "http://127.0.0.1:9")
    };
    let output = run(simpleotp(&["serve", "--config"])
        .arg(&other_config)
        .arg("--secret-file")
        .arg(&secret_file)
        .arg("--data-dir")
        .arg(dir.path().join("data")));
    assert!(!output.status.success());
    let said = stderr(&output);
    assert!(
        said.contains(&format!("Another SimpleOTP gateway (simpleotp serve, pid {}) is already using the data directory", serve.pid())),
        "{said}"
    );
    // The first one is untouched: its nginx, its control file, and it still serves.
    assert!(process_alive(nginx_pid), "the refused one killed the first one's nginx");
    assert_eq!(std::fs::read(data.join("control.json")).unwrap(), control_before);
    assert_eq!(client().get(&url).send().await.unwrap().status(), 302);
}

/// `ca rotate` knows a gateway runs by its lock (not by a control file that may be stale) and
/// has that gateway rotate its own CA; `ca export` meanwhile reads what it uses; with no gateway
/// the stored CA is rotated under the lock.
#[tokio::test(flavor = "multi_thread")]
async fn ca_rotate_goes_through_a_running_gateway_and_export_reads_what_it_uses() {
    let dir = tempfile::tempdir().unwrap();
    let (secret_file, _) = init_secret_file(dir.path());
    let ca_args = |command: &str| {
        let mut c = simpleotp(&["ca", command]);
        c.arg("--config")
            .arg(dir.path().join("config.toml"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--secret-file")
            .arg(&secret_file);
        c
    };
    let made = run(ca_args("export").arg(dir.path().join("first.pem")));
    assert!(made.status.success(), "{}", stderr(&made));
    let (serve, _, _) = serve_on_free_port(dir.path(), "http://127.0.0.1:9", &secret_file, &[]).await;
    let key_file = dir.path().join("secret.ca-key.pem");
    let key_before = std::fs::read(&key_file).unwrap();

    let rotated = run(&mut ca_args("rotate"));
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    let said = stdout(&rotated);
    assert!(said.contains(&format!("The running gateway (simpleotp serve, pid {}) made a new SimpleOTP CA", serve.pid())), "{said}");
    assert_ne!(std::fs::read(&key_file).unwrap(), key_before, "rotated by the gateway");
    let exported = run(ca_args("export").arg(dir.path().join("while.pem")));
    assert!(exported.status.success(), "{}", stderr(&exported));
    let while_running = std::fs::read(dir.path().join("while.pem")).unwrap();
    assert_ne!(while_running, std::fs::read(dir.path().join("first.pem")).unwrap(), "export reads the rotated CA");

    drop(serve);
    let key_between = std::fs::read(&key_file).unwrap();
    let rotated = run(&mut ca_args("rotate"));
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    assert!(stdout(&rotated).contains("The next `simpleotp serve`"), "{}", stdout(&rotated));
    assert_ne!(std::fs::read(&key_file).unwrap(), key_between);
}

/// After an unclean exit, another local user can bind the port a stale `control.json` names. A
/// squatter that answers like the old gateway (with a sign-in link of its choosing) gets
/// nothing: with no gateway holding the data directory, `unlock` says none runs (and `serve`
/// starts); while one is starting (the lock held, the old file still there), the squatter cannot
/// prove it knows the token, so the token is never sent and its link is never printed; a
/// control file with an app address carrying user-info is refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_squatter_on_a_stale_control_files_port_gets_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // The squatter: answers every request like the gateway's unlock, and records them.
    let squatter = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let squatted = squatter.local_addr().unwrap();
    let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    tokio::spawn({
        let heard = heard.clone();
        async move {
            while let Ok((mut stream, _)) = squatter.accept().await {
                let mut buf = vec![0u8; 4096];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                heard.lock().unwrap().push(String::from_utf8_lossy(&buf[..n]).to_string());
                let body = r#"{"login_path":"@evil.example/steal","expires_in_secs":600,"attempts":3}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-simpleotp-control-proof: {}\r\ncontent-length: {}\r\n\r\n{body}",
                    "0".repeat(64),
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        }
    });
    let write_control = |app_url: &str| {
        let control = serde_json::json!({
            "auth_addr": squatted.to_string(), "route_prefix": "/_simpleotp/", "token": "the-old-gateways-token",
            "pid": 1, "app_urls": [app_url],
        });
        std::fs::write(data.join("control.json"), control.to_string()).unwrap();
    };
    write_control("http://127.0.0.1:8081");
    let unlock = || run(simpleotp(&["unlock", "--data-dir"]).arg(&data));

    // No gateway holds the directory: none runs, whatever the file says.
    let output = unlock();
    assert!(!output.status.success());
    assert!(stderr(&output).contains("no running gateway"), "{}", stderr(&output));
    assert!(heard.lock().unwrap().is_empty(), "the squatter was contacted");

    // A gateway is starting (it holds the lock; the old file is still there).
    let lock = simpleotp_engine::instance::InstanceLock::acquire(&data, "a starting gateway").unwrap();
    let output = unlock();
    assert!(!output.status.success());
    let said = stderr(&output);
    assert!(said.contains("could not prove it knows the control token") && !said.contains("evil.example"), "{said}");
    let heard_now = heard.lock().unwrap().clone();
    assert_eq!(heard_now.len(), 1, "only the challenge: {heard_now:?}");
    assert!(!heard_now[0].contains("the-old-gateways-token") && !heard_now[0].to_lowercase().contains("authorization"), "{heard_now:?}");

    write_control("http://127.0.0.1:8081@evil.example");
    let output = unlock();
    assert!(!output.status.success());
    assert!(stderr(&output).contains("is not an app address") && stderr(&output).contains("control.json"), "{}", stderr(&output));
    drop(lock);

    // And `serve` starts in spite of the stale file (it replaces it).
    let (secret_file, _) = init_secret_file(dir.path());
    let (_serve, url, _) = serve_on_free_port(dir.path(), "http://127.0.0.1:9", &secret_file, &[]).await;
    assert_eq!(client().get(&url).send().await.unwrap().status(), 302);
    let control: serde_json::Value = serde_json::from_slice(&std::fs::read(data.join("control.json")).unwrap()).unwrap();
    assert_ne!(control["auth_addr"], squatted.to_string());
    let output = unlock();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("/_simpleotp/login?ticket="), "{}", stdout(&output));
}
