//! "Is there a newer SimpleOTP?" as the headless command answers it: `simpleotp --version` and
//! `serve`'s start line, against a real HTTP server on loopback playing the release manifest
//! (a newer release, the same one, a server error, a Wi-Fi sign-in page, a cut-off file, no
//! answer, nobody listening). The command only tells; it never downloads or installs anything.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use simpleotp_engine::test_support::{StubAnswer, StubHttpServer};

use crate::cli::{init_secret_file, run, simpleotp, stdout, write_config, Serve, NO_UPDATE_SERVER};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The release server: every request gets `status` and `body`.
fn release_server(status: u16, body: &str) -> StubHttpServer {
    let body = body.as_bytes().to_vec();
    StubHttpServer::start(move |_, _| StubAnswer::Status(status, body.clone()))
}

/// A server that accepts connections and never answers (a network that swallows packets).
fn silent_server() -> StubHttpServer {
    StubHttpServer::start(|_, _| StubAnswer::Silent)
}

fn manifest_url(server: &StubHttpServer) -> String {
    format!("{}/latest.json", server.base)
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
    let server = release_server(200, &manifest("99.0.0"));
    let said = version_in(home.path(), &manifest_url(&server));
    assert_eq!(said[0], format!("simpleotp {VERSION}"));
    assert_eq!(said[1], format!("SimpleOTP 99.0.0 is available (this is {VERSION}), says {}", manifest_url(&server)), "{said:?}");
    assert_eq!(said.len(), 2);
    // The answer is kept (owner-only) and used for a day: the second run asks nobody.
    let record = home.path().join("data/simpleotp/update-check.json");
    assert_eq!(std::fs::metadata(&record).unwrap().permissions().mode() & 0o077, 0);
    assert_eq!(version_in(home.path(), &manifest_url(&server)), said);
    assert_eq!(server.requests(), 1);
    // Another manifest (an organisation's mirror) is asked anew.
    let mirror = release_server(200, &manifest(VERSION));
    assert_eq!(version_in(home.path(), &manifest_url(&mirror)), [format!("simpleotp {VERSION}")]);
    assert_eq!(mirror.requests(), 1);
}

#[test]
fn version_stays_one_line_when_nothing_newer_can_be_learned() {
    let older = release_server(200, &manifest("0.0.1"));
    let same = release_server(200, &manifest(VERSION));
    let error = release_server(500, "Internal Server Error");
    let portal = release_server(200, "<html><body>Sign in to the Wi-Fi</body></html>");
    let truncated = release_server(200, &manifest("99.0.0")[..20]);
    let silent = silent_server();
    let servers = [&older, &same, &error, &portal, &truncated, &silent];
    for url in servers.iter().map(|s| manifest_url(s)).chain([NO_UPDATE_SERVER.to_string()]) {
        let home = home();
        assert_eq!(version_in(home.path(), &url), [format!("simpleotp {VERSION}")], "{url}");
        let record = std::fs::read_to_string(home.path().join("data/simpleotp/update-check.json")).unwrap();
        assert!(record.contains(url.as_str()), "{record}");
    }
    for server in servers {
        assert_eq!(server.requests(), 1, "{}", manifest_url(server));
    }
}

#[test]
fn update_checks_can_be_turned_off_and_plain_http_elsewhere_is_refused() {
    let off = home();
    let server = release_server(200, &manifest("99.0.0"));
    std::fs::create_dir_all(off.path().join("config/simpleotp")).unwrap();
    std::fs::write(off.path().join("config/simpleotp/config.toml"), "[updates]\ncheck = false\n").unwrap();
    assert_eq!(version_in(off.path(), &manifest_url(&server)), [format!("simpleotp {VERSION}")]);
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
    let server = release_server(200, &manifest("99.0.0"));
    let mut lines = Vec::new();
    let (serve, _url) = tokio::task::block_in_place(|| {
        Serve::start_with_running_line(
            dir.path(),
            &config,
            &secret,
            &[("SIMPLEOTP_UPDATE_URL", manifest_url(&server).as_str())],
            &mut lines,
        )
    });
    assert_eq!(
        lines[0],
        format!("SimpleOTP {VERSION} is running. SimpleOTP 99.0.0 is available (this is {VERSION}), says {}", manifest_url(&server))
    );
    drop(serve);
}
