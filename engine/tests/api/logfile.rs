//! The log file `simpleotp serve` keeps in its data directory (`logs/simpleotp.log`), after a
//! real sign-in through nginx: what happened is there, nothing a person could sign in with is.

use std::time::Duration;

use simpleotp_engine::logfile;
use simpleotp_engine::totp::unix_now;

use crate::cli::{init_secret_file, run, serve_on_free_port, simpleotp, stderr};
use crate::helpers::*;

/// The log's lines without their leading timestamp, whose microseconds could by chance spell a
/// code.
fn without_timestamps(log: &str) -> String {
    log.lines().map(|line| line.split_once(' ').map_or(line, |(_, rest)| rest)).collect::<Vec<_>>().join("\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_logs_a_sign_in_to_its_file_without_the_code_or_the_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (secret_file, totp) = init_secret_file(dir.path());
    let upstream_addr = spawn_demo_upstream().await;
    let (mut serve, url, config) = serve_on_free_port(dir.path(), &format!("http://{upstream_addr}"), &secret_file, &[]).await;
    let base = url.trim_end_matches('/').to_string();

    let browser = client();
    let login = format!("{base}/_simpleotp/login");
    let now = unix_now();
    let wrong = format!("{:06}", (totp.code_at(now).parse::<u32>().unwrap() + 500_000) % 1_000_000);
    assert_eq!(browser.post(&login).form(&[("code", wrong.as_str()), ("next", "/")]).send().await.unwrap().status(), 401);
    let code = totp.code_at(now);
    assert_eq!(browser.post(&login).form(&[("code", code.as_str()), ("next", "/")]).send().await.unwrap().status(), 303);
    let cookie = browser.session_token(&base);
    assert_eq!(browser.get(&url).send().await.unwrap().status(), 200);

    // A second gateway on the same data directory is refused: its error reaches the file too,
    // while the person at the terminal reads it once.
    let refused = run(simpleotp(&["serve", "--config"]).arg(&config).arg("--secret-file").arg(&secret_file).arg("--data-dir").arg(&data));
    assert!(!refused.status.success());
    assert_eq!(stderr(&refused).matches("is already using the data directory").count(), 1, "{}", stderr(&refused));

    serve.signal(libc::SIGTERM);
    let status = serve.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "{status:?}\n{}", serve.stderr());

    let log = std::fs::read_to_string(logfile::path(&data)).expect("serve wrote its log file");
    for event in ["log started", "simpleotp serve", "login failed", "signed in", "is already using the data directory", "stop requested"] {
        assert!(log.contains(event), "{event:?} is not in the log:\n{log}");
    }
    let secret = std::fs::read_to_string(&secret_file).unwrap();
    let text = without_timestamps(&log);
    for (what, value) in
        [("code", code.as_str()), ("wrong code", wrong.as_str()), ("cookie value", cookie.as_str()), ("secret", secret.trim())]
    {
        assert!(!text.contains(value), "the {what} {value} is in the log:\n{log}");
    }
    // What the tray's diagnostics include: the newest lines.
    let tail = logfile::tail(&data, 3);
    assert_eq!(tail.lines().count(), 3, "{tail}");
    assert!(log.ends_with(&tail), "tail:\n{tail}\nlog:\n{log}");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&logfile::dir(&data)), 0o700);
        assert_eq!(mode(&logfile::path(&data)), 0o600);
    }
}
