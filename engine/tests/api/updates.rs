//! "Is there a newer SimpleOTP?" as the headless command answers it: `simpleotp --version` and
//! `serve`'s start line, against a real HTTP server on loopback playing the release manifest
//! (a newer release, the same one, a server error, a Wi-Fi sign-in page, a cut-off file, no
//! answer, nobody listening). The command only tells; it never downloads or installs anything.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::cli::{init_secret_file, run, simpleotp, stdout, write_config, Serve, NO_UPDATE_SERVER};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A one-answer HTTP server: every request gets `status` and `body` (or, with `silent`, no
/// answer at all). Counts the requests.
struct ManifestServer {
    url: String,
    requests: Arc<AtomicUsize>,
}

impl ManifestServer {
    fn start(status: u16, body: &str) -> Self {
        Self::spawn(Some((status, body.to_string())))
    }

    /// Accepts connections and never answers (a network that swallows packets).
    fn silent() -> Self {
        Self::spawn(None)
    }

    fn spawn(answer: Option<(u16, String)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/latest.json", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                counted.fetch_add(1, Ordering::SeqCst);
                let mut request = [0u8; 4096];
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = stream.read(&mut request);
                match &answer {
                    Some((status, body)) => {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    }
                    None => held.push(stream),
                }
            }
        });
        ManifestServer { url, requests }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn manifest(version: &str) -> String {
    format!(
        r#"{{"version":"{version}","notes":"Fixes.","pub_date":"2026-12-01T00:00:00Z","platforms":{{"linux-x86_64-deb":{{"url":"https://example.invalid/a.deb","signature":"x"}}}}}}"#
    )
}

/// `simpleotp --version` with the OS's config and data directories in `home`.
fn version_in(home: &Path, url: &str) -> Vec<String> {
    let output = run(simpleotp(&["--version"])
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("SIMPLEOTP_UPDATE_URL", url));
    assert!(output.status.success());
    stdout(&output).lines().map(str::to_string).collect()
}

fn home() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("data/simpleotp")).unwrap();
    home
}

#[test]
fn version_says_when_a_newer_release_exists_and_asks_at_most_once_a_day() {
    let home = home();
    let server = ManifestServer::start(200, &manifest("99.0.0"));
    let said = version_in(home.path(), &server.url);
    assert_eq!(said[0], format!("simpleotp {VERSION}"));
    assert_eq!(said[1], format!("SimpleOTP 99.0.0 is available (this is {VERSION}), says {}", server.url), "{said:?}");
    assert_eq!(said.len(), 2);
    // The answer is kept (owner-only) and used for a day: the second run asks nobody.
    let record = home.path().join("data/simpleotp/update-check.json");
    assert_eq!(std::fs::metadata(&record).unwrap().permissions().mode() & 0o077, 0);
    assert_eq!(version_in(home.path(), &server.url), said);
    assert_eq!(server.requests(), 1);
    // Another manifest (an organisation's mirror) is asked anew.
    let mirror = ManifestServer::start(200, &manifest(VERSION));
    assert_eq!(version_in(home.path(), &mirror.url), [format!("simpleotp {VERSION}")]);
    assert_eq!(mirror.requests(), 1);
}

#[test]
fn version_stays_one_line_when_nothing_newer_can_be_learned() {
    let older = ManifestServer::start(200, &manifest("0.0.1"));
    let same = ManifestServer::start(200, &manifest(VERSION));
    let error = ManifestServer::start(500, "Internal Server Error");
    let portal = ManifestServer::start(200, "<html><body>Sign in to the Wi-Fi</body></html>");
    let truncated = ManifestServer::start(200, &manifest("99.0.0")[..20]);
    let silent = ManifestServer::silent();
    for url in [&older.url, &same.url, &error.url, &portal.url, &truncated.url, &silent.url, &NO_UPDATE_SERVER.to_string()] {
        let home = home();
        assert_eq!(version_in(home.path(), url), [format!("simpleotp {VERSION}")], "{url}");
        let record = std::fs::read_to_string(home.path().join("data/simpleotp/update-check.json")).unwrap();
        assert!(record.contains(url.as_str()), "{record}");
    }
    for server in [&older, &same, &error, &portal, &truncated, &silent] {
        assert_eq!(server.requests(), 1, "{}", server.url);
    }
}

#[test]
fn update_checks_can_be_turned_off_and_plain_http_elsewhere_is_refused() {
    let off = home();
    let server = ManifestServer::start(200, &manifest("99.0.0"));
    std::fs::create_dir_all(off.path().join("config/simpleotp")).unwrap();
    std::fs::write(off.path().join("config/simpleotp/config.toml"), "[updates]\ncheck = false\n").unwrap();
    assert_eq!(version_in(off.path(), &server.url), [format!("simpleotp {VERSION}")]);
    assert_eq!(server.requests(), 0, "check = false asks nobody");

    let elsewhere = home();
    assert_eq!(version_in(elsewhere.path(), "http://updates.example.org/latest.json"), [format!("simpleotp {VERSION}")]);
    assert!(!elsewhere.path().join("data/simpleotp/update-check.json").exists(), "refused before asking");
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_says_on_its_start_line_when_a_newer_release_exists() {
    let dir = tempfile::tempdir().unwrap();
    let (secret, _) = init_secret_file(dir.path());
    let (config, _) = write_config(dir.path(), "http://127.0.0.1:9");
    let server = ManifestServer::start(200, &manifest("99.0.0"));
    let mut lines = Vec::new();
    let (serve, _url) = tokio::task::block_in_place(|| {
        Serve::start_with_running_line(dir.path(), &config, &secret, &[("SIMPLEOTP_UPDATE_URL", server.url.as_str())], &mut lines)
    });
    assert_eq!(lines[0], format!("SimpleOTP {VERSION} is running. SimpleOTP 99.0.0 is available (this is {VERSION}), says {}", server.url));
    drop(serve);
}
