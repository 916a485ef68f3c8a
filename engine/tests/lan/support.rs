//! What the LAN tests share: the real `simpleotp serve` in a temp directory, and probes with the
//! real `openssl`, `curl` and Chromium.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use simpleotp_engine::config::{AppConfig, Config};
use simpleotp_engine::secret::SecretStore;
use simpleotp_engine::totp::{unix_now, Totp, TotpSecret};
use tokio_util::sync::CancellationToken;

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
}

/// Polls `cond` every 100 ms until it holds; panics naming `what` after `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// This machine's short host name and its mDNS name (`vm`, `vm.local`).
pub fn machine_local_name() -> String {
    let host = String::from_utf8(Command::new("hostname").output().unwrap().stdout).unwrap();
    format!("{}.local", host.trim().split('.').next().unwrap().to_ascii_lowercase())
}

/// `simpleotp serve` (the real binary) with two apps in front of the demo app: "LAN" on
/// `0.0.0.0:lan_port` and "Local" on `127.0.0.1:local_port`, its keys in files in a temp
/// directory, its stdout and log (stderr) captured. Stopped with SIGTERM when dropped.
pub struct Serve {
    pub dir: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub config_path: PathBuf,
    pub lan_port: u16,
    pub local_port: u16,
    totp: Totp,
    last_step: u64,
    child: std::process::Child,
    _upstream: CancellationToken,
}

impl Serve {
    pub async fn start() -> Serve {
        Serve::start_with(|_| {}).await
    }

    /// [`Serve::start`] with the config changed by `edit` first (e.g. `[lan] interfaces`).
    pub async fn start_with(edit: impl FnOnce(&mut Config)) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let secret_file = dir.path().join("secret");
        let secret = TotpSecret::generate();
        SecretStore::file(&secret_file).store(&secret, false).unwrap();

        let upstream_stop = CancellationToken::new();
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let upstream = listener.local_addr().unwrap();
        tokio::spawn(simpleotp_engine::demo::serve_demo_app(listener, Default::default(), upstream_stop.clone()));

        let (lan_port, local_port) = (free_port(), free_port());
        let mut config = Config::default();
        for (name, listen) in [("LAN", format!("0.0.0.0:{lan_port}")), ("Local", format!("127.0.0.1:{local_port}"))] {
            config.apps.push(AppConfig::new(name.parse().unwrap(), format!("http://{upstream}").parse().unwrap(), listen.parse().unwrap()));
        }
        edit(&mut config);
        let config_path = dir.path().join("config.toml");
        config.save(&config_path).unwrap();
        let data_dir = dir.path().join("data");
        let stdout = std::fs::File::create(dir.path().join("stdout")).unwrap();
        let stderr = std::fs::File::create(dir.path().join("stderr")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_simpleotp"))
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--secret-file")
            .arg(&secret_file)
            // Everything the gateway logs, so the tests can check no key is among it.
            .env("SIMPLEOTP_LOG", "debug")
            // Its update check asks nobody (a port nothing listens on), not the internet.
            .env("SIMPLEOTP_UPDATE_URL", "http://127.0.0.1:9/latest.json")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap();
        let serve = Serve {
            totp: Totp::new(&secret, &config.issuer(), &config.account()),
            dir,
            data_dir,
            config_path,
            lan_port,
            local_port,
            last_step: 0,
            child,
            _upstream: upstream_stop,
        };
        let started = Instant::now();
        while !serve.stdout().contains("Local: ") {
            assert!(started.elapsed() < Duration::from_secs(30), "simpleotp serve did not start:\n{}", serve.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        serve
    }

    /// What `simpleotp serve` printed (the apps' URLs).
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout")).unwrap_or_default()
    }

    /// Its log (stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    /// nginx's own error log.
    pub fn nginx_log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("nginx/logs/error.log")).unwrap_or_default()
    }

    /// A valid code nobody used yet (this step's, then the next one's).
    pub async fn fresh_code(&mut self) -> String {
        loop {
            let step = Totp::step_at(unix_now()).max(self.last_step + 1);
            if step <= Totp::step_at(unix_now()) + 1 {
                self.last_step = step;
                return self.totp.code_at(step * 30);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        // SIGTERM: the gateway stops nginx and withdraws its mDNS names.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The result of one `curl` request.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// The response headers, lower-cased names (`name: value` lines).
    pub headers: String,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// Runs `curl` with `args` (plus `-s -S -D <headers file>`) and returns the answer; panics when
/// curl fails (e.g. a certificate it does not accept), with curl's message.
pub fn curl(args: &[&str]) -> Reply {
    try_curl(args).unwrap_or_else(|message| panic!("curl {} failed: {message}", args.join(" ")))
}

/// [`curl`], with curl's error instead of a panic.
pub fn try_curl(args: &[&str]) -> Result<Reply, String> {
    let headers = tempfile::NamedTempFile::new().unwrap();
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-D"])
        .arg(headers.path())
        .args(args)
        .output()
        .expect("the LAN tests need curl");
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let headers = std::fs::read_to_string(headers.path()).unwrap();
    let status = headers.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok(Reply { status, headers, body: String::from_utf8_lossy(&output.stdout).into_owned() })
}

/// The certificates `addr:port` presents in a TLS handshake (SNI `server_name`), as PEM blocks,
/// leaf first.
pub fn presented_chain(addr: &str, port: u16, server_name: &str) -> Vec<String> {
    let output = Command::new("openssl")
        .args(["s_client", "-connect", &format!("{addr}:{port}"), "-servername", server_name, "-showcerts"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("the LAN tests need openssl");
    let text = String::from_utf8_lossy(&output.stdout);
    let mut blocks = Vec::new();
    let mut rest = &text[..];
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let end = rest[start..].find("-----END CERTIFICATE-----").unwrap() + start + "-----END CERTIFICATE-----".len();
        blocks.push(format!("{}\n", &rest[start..end]));
        rest = &rest[end..];
    }
    blocks
}

/// `openssl verify` of `leaf` against the CA file, checking the name or address the way a
/// browser would (`-verify_hostname`/`-verify_ip`, purpose TLS server). Ok, or openssl's words.
pub fn openssl_verify(ca: &Path, leaf_pem: &str, check: &[&str]) -> Result<(), String> {
    let leaf = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(leaf.path(), leaf_pem).unwrap();
    let output =
        Command::new("openssl").args(["verify", "-purpose", "sslserver", "-CAfile"]).arg(ca).args(check).arg(leaf.path()).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    if output.status.success() && text.contains(": OK") {
        Ok(())
    } else {
        Err(text)
    }
}

/// The certificate in PEM, whether `bytes` is PEM or DER.
pub fn to_pem(bytes: &[u8]) -> String {
    if bytes.starts_with(b"-----BEGIN") {
        return String::from_utf8(bytes.to_vec()).unwrap();
    }
    let der = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(der.path(), bytes).unwrap();
    let output = Command::new("openssl").args(["x509", "-inform", "DER", "-in"]).arg(der.path()).output().unwrap();
    assert!(output.status.success(), "not a certificate: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// A chromedriver child process, killed on drop (like the api tests' one).
pub struct ChromeDriver {
    url: String,
    _child: tokio::process::Child,
}

impl ChromeDriver {
    /// chromedriver with `home` as Chromium's `$HOME` (so it reads `home/.pki/nssdb`).
    pub async fn start(home: &Path) -> ChromeDriver {
        let binary = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("chromedriver is not installed: run the README's test command (it installs chromium-driver)");
        let port = free_port();
        let child = tokio::process::Command::new(binary)
            .arg(format!("--port={port}"))
            .env("HOME", home)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let status_port = port;
        wait_until("chromedriver to listen", Duration::from_secs(20), || std::net::TcpStream::connect(("127.0.0.1", status_port)).is_ok())
            .await;
        ChromeDriver { url, _child: child }
    }

    /// A headless Chromium that resolves `name` to `address` (as mDNS would on a real network).
    pub async fn session(&self, name: &str, address: &str) -> fantoccini::Client {
        let options = serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run", "--window-size=1280,800",
                     format!("--host-resolver-rules=MAP {name} {address}")],
        });
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), options);
        fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

/// An NSS database in `home/.pki/nssdb` (where Chromium on Linux looks) that trusts `ca` to
/// identify web sites, made with the real `certutil` the way a person (or the tray) would.
pub fn trust_in_nss(home: &Path, ca: &Path) {
    let db = home.join(".pki/nssdb");
    std::fs::create_dir_all(&db).unwrap();
    let db = format!("sql:{}", db.display());
    for args in [
        vec!["-N", "-d", &db, "--empty-password"],
        vec!["-A", "-d", &db, "-n", "SimpleOTP test CA", "-t", "C,,", "-i", ca.to_str().unwrap()],
    ] {
        let output = Command::new("certutil").args(&args).output().expect("the LAN tests need certutil (libnss3-tools)");
        assert!(output.status.success(), "certutil {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    }
}

/// Waits until nginx presents, at `address`, a leaf that verifies for that address against `ca`
/// (a new address is picked up by the watcher; nginx reloads). Panics after `within`, with the
/// gateway's log.
pub async fn wait_for_leaf_at(ca: &Path, address: &str, port: u16, within: std::time::Duration, log: impl Fn() -> String) {
    let started = std::time::Instant::now();
    loop {
        let chain = presented_chain(address, port, address);
        if chain.first().is_some_and(|leaf| openssl_verify(ca, leaf, &["-verify_ip", address]).is_ok()) {
            return;
        }
        assert!(started.elapsed() < within, "no certificate for {address} from that CA after {within:?}; log:\n{}", log());
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// A WebAuthn extension command for the session (`/session/{id}/webauthn/…`), as the api tests
/// send it.
#[derive(Debug)]
struct WebAuthnCommand(serde_json::Value);

impl fantoccini::wd::WebDriverCompatibleCommand for WebAuthnCommand {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/webauthn/authenticator", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (hyper::Method, Option<String>) {
        (hyper::Method::POST, Some(self.0.to_string()))
    }
}

/// chromedriver's virtual authenticator in `browser`: a platform authenticator that verifies
/// its user and keeps discoverable credentials, as a phone's would.
pub async fn add_virtual_authenticator(browser: &fantoccini::Client) {
    let options = serde_json::json!({
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": true,
        "hasUserVerification": true, "isUserVerified": true, "automaticPresenceSimulation": true,
    });
    browser.issue_cmd(WebAuthnCommand(options)).await.expect("chromedriver adds a virtual authenticator");
}

/// Waits for the demo app after a sign-in. At a name where passkeys work (`<hostname>.local`), a
/// browser's first sign-in with a code offers a passkey first: "Not now" goes on to the app.
pub async fn past_the_passkey_offer(browser: &fantoccini::Client) {
    use fantoccini::Locator;
    let wait = || browser.wait().at_most(Duration::from_secs(15));
    let shown = match wait().for_element(Locator::Css("#demo-title, #passkey-skip")).await {
        Ok(element) => element,
        Err(e) => panic!("not signed in ({e}) at {}:\n{}", browser.current_url().await.unwrap(), browser.source().await.unwrap()),
    };
    if shown.attr("id").await.unwrap().as_deref() == Some("passkey-skip") {
        shown.click().await.unwrap();
        wait().for_element(Locator::Id("demo-title")).await.unwrap();
    }
}
