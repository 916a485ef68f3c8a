//! `spawn_app()`: a whole gateway (auth server + real nginx) in front of the demo app, in a
//! temp directory, plus the small tools the tests share.
//!
//! Ports, the demo upstream and waiting come from `simpleotp_engine::test_support` (shared with
//! the tray app's tests) and are re-exported here: `free_port`, `on_free_port`,
//! `is_port_in_use`, `spawn_demo_upstream`, `spawn_demo_upstream_until`, `wait_until`. A test
//! that starts anything on a fixed port does it through `on_free_port`, which tries another
//! port when another program took the first one.

// Some of these serve only the Unix-only modules (see main.rs).
#![cfg_attr(not(unix), allow(dead_code, unused_imports))]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::cookie::{CookieStore, Jar};
use simpleotp_engine::protocol::session_cookie_name;

use simpleotp_engine::app::{Application, GatewayHandle, Settings, StartError};
use simpleotp_engine::config::{AppConfig, Config};
use simpleotp_engine::limiter::LimiterSettings;
use simpleotp_engine::secret::SecretStore;
use simpleotp_engine::totp::{unix_now, Totp, TotpSecret};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use simpleotp_engine::test_support::{
    free_port, is_port_in_use, on_free_port, process_alive, spawn_demo_upstream, spawn_demo_upstream_until, wait_until,
};

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("simpleotp_engine=debug").try_init();
}

/// A running gateway and everything a test needs to talk to it.
pub struct TestApp {
    /// Holds the data directory and secret; removed when the test ends.
    _dir: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub secret_file: PathBuf,
    pub config: Config,
    /// The protected app's base URL, e.g. `http://127.0.0.1:41234`.
    pub base: String,
    totp: Totp,
    /// The last TOTP step a test consumed (codes are single-use).
    last_step: AtomicU64,
    running: Option<Running>,
    /// The limiter settings the gateway runs with, across restarts too.
    limiter: LimiterSettings,
    _upstream_stop: CancellationToken,
}

/// Options for [`spawn_app_with`].
#[derive(Clone, Default)]
pub struct AppOptions {
    pub limiter: LimiterSettings,
    /// Use this upstream instead of the demo app.
    pub upstream: Option<SocketAddr>,
    /// Use this data directory (e.g. a small filesystem) instead of one in the temp dir.
    pub data_dir: Option<PathBuf>,
    /// The app's name (default "Demo"); the login page's screenshots use "Jupyter".
    pub app_name: Option<simpleotp_engine::config::AppName>,
    /// Serve the app over HTTPS at a name of its own on this computer (`https_name`).
    pub https_name: bool,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default()).await
}

pub async fn spawn_app_with(options: AppOptions) -> TestApp {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    let store = SecretStore::file(&secret_file);
    let secret = TotpSecret::generate();
    store.store(&secret, false).unwrap();

    let upstream_stop = CancellationToken::new();
    let config = Config::default();
    let upstream = match options.upstream {
        Some(addr) => addr,
        None => spawn_demo_upstream_until(config.route_prefix.clone(), upstream_stop.clone()).await,
    };
    let data_dir = options.data_dir.clone().unwrap_or_else(|| dir.path().join("data"));
    // nginx cannot listen on port 0: the app gets a chosen port, and another one if a program
    // took that port before nginx could bind it.
    let (_, (config, running)) = on_free_port("the gateway", async |port| {
        let mut config = config.clone();
        let mut app = AppConfig::new(
            options.app_name.clone().unwrap_or_else(|| "Demo".parse().unwrap()),
            format!("http://{upstream}").parse().unwrap(),
            format!("127.0.0.1:{port}").parse().unwrap(),
        );
        if options.https_name {
            app.https_name = Some(AppConfig::new_https_name(&app.name));
        }
        config.apps.push(app);
        launch(&config, &data_dir, &secret_file, options.limiter).await.map(|running| (config, running))
    })
    .await;
    TestApp {
        data_dir,
        secret_file,
        base: format!("http://127.0.0.1:{}", config.apps[0].listen.socket_addr().port()),
        totp: Totp::new(&secret, &config.issuer(), &config.account()),
        config,
        _dir: dir,
        last_step: AtomicU64::new(0),
        running: Some(running),
        limiter: options.limiter,
        _upstream_stop: upstream_stop,
    }
}

/// A started gateway.
pub struct Running {
    pub auth_addr: SocketAddr,
    pub handle: GatewayHandle,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

async fn launch(config: &Config, data_dir: &Path, secret_file: &Path, limiter: LimiterSettings) -> Result<Running, StartError> {
    let mut settings = Settings::new(config.clone(), data_dir.to_path_buf(), SecretStore::file(secret_file));
    settings.limiter = limiter;
    let app = Application::build(settings).await?;
    let shutdown = CancellationToken::new();
    Ok(Running { auth_addr: app.auth_addr(), handle: app.handle(), task: tokio::spawn(app.run_until_stopped(shutdown.clone())), shutdown })
}

impl TestApp {
    pub fn handle(&self) -> &GatewayHandle {
        &self.running.as_ref().expect("the gateway is running").handle
    }

    pub fn auth_addr(&self) -> SocketAddr {
        self.running.as_ref().expect("the gateway is running").auth_addr
    }

    /// Stops the gateway the way Ctrl-C does (nginx quit, state written).
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown.cancel();
            tokio::time::timeout(Duration::from_secs(20), running.task).await.expect("the gateway stops").unwrap();
        }
    }

    /// Stops and starts again on the same data directory and secret.
    pub async fn restart(&mut self) {
        self.stop().await;
        // The app keeps its port (sessions belong to it). Should another program hold it for a
        // moment, wait for it rather than fail; the port stays taken only if something else
        // listens there for good.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match launch(&self.config, &self.data_dir, &self.secret_file, self.limiter).await {
                Ok(running) => break self.running = Some(running),
                Err(e) if is_port_in_use(&e) && tokio::time::Instant::now() < deadline => {
                    tracing::warn!("restart: port {} is taken for now; trying again", self.port());
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("the gateway restarts: {}", simpleotp_engine::error_chain(&e)),
            }
        }
    }

    /// Adds an app named `name` in front of the same upstream, on a free port of 127.0.0.1, to
    /// the running gateway (nginx reloads): its port and the configuration now in force.
    pub async fn add_app(&self, name: &str) -> (u16, Config) {
        simpleotp_engine::test_support::on_free_port(&format!("the app {name}"), async |port| {
            let mut config = self.config.clone();
            let mut added = config.apps[0].clone();
            added.name = name.parse().unwrap();
            added.listen = format!("127.0.0.1:{port}").parse().unwrap();
            config.apps.push(added);
            self.handle().apply_config(&config).await.map(|_| config)
        })
        .await
    }

    /// The protected app's listen port.
    pub fn port(&self) -> u16 {
        self.config.apps[0].listen.socket_addr().port()
    }

    /// The name of the app's session cookie over plain http.
    pub fn cookie_name(&self) -> String {
        session_cookie_name(self.port(), false)
    }

    /// nginx's proof, as written into the generated config (for tests that talk to the auth
    /// server as nginx would).
    pub fn nginx_proof(&self) -> String {
        let conf = std::fs::read_to_string(self.data_dir.join("nginx/nginx.conf")).unwrap();
        let line = conf.lines().find(|l| l.contains("x-simpleotp-proof")).expect("the config sends the proof");
        line.split('"').nth(1).unwrap().to_string()
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }

    pub fn route(&self, name: &str) -> String {
        self.url(&self.config.route_prefix.route(name))
    }

    /// A valid code nobody has used yet: the current step's, then the next step's (the
    /// gateway accepts one step ahead). A third code within one step would need to wait.
    pub fn fresh_code(&self) -> String {
        let now = unix_now();
        let mut step = Totp::step_at(now);
        let last = self.last_step.load(Ordering::SeqCst);
        if step <= last {
            step = last + 1;
        }
        assert!(step <= Totp::step_at(now) + 1, "a test used more than two codes within one 30 s step");
        self.last_step.store(step, Ordering::SeqCst);
        self.totp.code_at(step * 30)
    }

    /// Like [`TestApp::fresh_code`], waiting for the next 30 s step when this one's codes are
    /// used up.
    pub async fn fresh_code_waiting(&self) -> String {
        loop {
            let next = self.last_step.load(Ordering::SeqCst) + 1;
            if next <= Totp::step_at(unix_now()) + 1 {
                return self.fresh_code();
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The code for any moment (for tests about old or future codes).
    pub fn code_at(&self, unix: u64) -> String {
        self.totp.code_at(unix)
    }

    /// A code that is not the current, previous or next one.
    pub fn wrong_code(&self) -> String {
        let now = unix_now();
        let valid: Vec<String> = [now - 30, now, now + 30].iter().map(|t| self.totp.code_at(*t)).collect();
        (0..1_000_000).map(|n| format!("{n:06}")).find(|c| !valid.contains(c)).unwrap()
    }

    pub fn secret_base32(&self) -> String {
        std::fs::read_to_string(&self.secret_file).unwrap().trim().to_string()
    }

    /// Logs in over HTTP with `client` and a fresh code; returns the response to the POST.
    pub async fn login(&self, client: &reqwest::Client, next: &str) -> reqwest::Response {
        self.post_code(client, &self.fresh_code(), next).await
    }

    pub async fn post_code(&self, client: &reqwest::Client, code: &str, next: &str) -> reqwest::Response {
        client.post(self.route("login")).header("origin", &self.base).form(&[("code", code), ("next", next)]).send().await.unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(running) = &self.running {
            running.shutdown.cancel();
        }
    }
}

/// An HTTP client that keeps cookies like a browser and does not follow redirects (the tests
/// look at each hop).
pub struct Browser {
    http: reqwest::Client,
    jar: Arc<Jar>,
}

impl std::ops::Deref for Browser {
    type Target = reqwest::Client;
    fn deref(&self) -> &reqwest::Client {
        &self.http
    }
}

impl Browser {
    /// The session token this browser would send to `base` (an `http://` app's address).
    pub fn session_token(&self, base: &str) -> String {
        let url: reqwest::Url = base.parse().unwrap();
        let cookies = self.jar.cookies(&url).expect("the browser holds cookies");
        let prefix = format!("{}=", session_cookie_name(url.port().expect("the base names its port"), false));
        cookies
            .to_str()
            .unwrap()
            .split("; ")
            .find_map(|kv| kv.strip_prefix(&prefix))
            .expect("the browser holds a session cookie")
            .to_string()
    }
}

impl Browser {
    /// The whole `Cookie` header this browser would send to `base` (for clients that do not
    /// share its cookie jar, such as a WebSocket handshake).
    pub fn cookie_header(&self, base: &str) -> String {
        let cookies = self.jar.cookies(&base.parse().unwrap()).expect("the browser holds cookies");
        cookies.to_str().unwrap().to_string()
    }
}

pub fn client() -> Browser {
    let jar = Arc::new(Jar::default());
    let http =
        reqwest::Client::builder().cookie_provider(jar.clone()).redirect(reqwest::redirect::Policy::none()).no_proxy().build().unwrap();
    Browser { http, jar }
}

pub fn location(response: &reqwest::Response) -> String {
    response.headers().get("location").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

/// The value of `name="NAME" value="..."` in an HTML form.
pub fn form_field(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let rest = &html[at..];
    let value = rest.find("value=\"")? + "value=\"".len();
    let end = rest[value..].find('"')?;
    Some(rest[value..value + end].to_string())
}

pub fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}
