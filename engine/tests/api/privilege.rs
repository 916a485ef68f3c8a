//! Least privilege: when the gateway runs as root (as these tests do on CI), nginx's workers,
//! which parse every byte a client sends, run as an unprivileged account that can write its
//! temp directory and read nothing of ours, and the protected app still works in full: logins,
//! proxied pages, large uploads (signed in or not) and downloads, and big login forms.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::helpers::*;

/// A protected app that answers `POST` with the number of body bytes it received and
/// `GET /big` with [`BIG_RESPONSE`] bytes; one request per connection.
async fn counting_upstream() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 64 * 1024];
                let head_end = loop {
                    if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break at + 4;
                    }
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                let length: usize = head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
                let mut received = buf.len() - head_end;
                while received < length {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => received += n,
                    }
                }
                let body =
                    if head.starts_with("get /big ") { vec![b'y'; BIG_RESPONSE] } else { format!("received {received}").into_bytes() };
                let mut response = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).into_bytes();
                response.extend_from_slice(&body);
                let _ = stream.write_all(&response).await;
            });
        }
    });
    addr
}

const UPLOAD: usize = 2 * 1024 * 1024;
const BIG_RESPONSE: usize = 5 * 1024 * 1024;

/// `(uid, gid)` (all four of real, effective, saved and file-system ids must agree) of a process.
fn ids(pid: u32) -> (u32, u32) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u32 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in {status}"));
        let values: Vec<u32> = line[name.len()..].split_whitespace().map(|v| v.parse().unwrap()).collect();
        assert!(values.len() == 4 && values.iter().all(|v| *v == values[0]), "{line}");
        values[0]
    };
    (field("Uid:"), field("Gid:"))
}

/// The children of `parent` (nginx's workers, for its master).
fn children(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // Fields after the command name (which may contain spaces): state, ppid, ...
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)).and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            out.push(pid);
        }
    }
    out
}

/// Whether `program arg`, run as `uid`/`gid` (and no other group), succeeds.
fn succeeds_as(uid: u32, gid: u32, program: &str, arg: &Path) -> bool {
    use std::os::unix::process::CommandExt;
    std::process::Command::new(program)
        .arg(arg)
        .uid(uid)
        .gid(gid)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[tokio::test(flavor = "multi_thread")]
async fn nginx_workers_are_unprivileged_and_the_app_still_works() {
    let app = spawn_app_with(AppOptions { upstream: Some(counting_upstream().await), ..Default::default() }).await;
    let prefix = app.data_dir.join("nginx");
    let master = read_pid(&prefix.join("nginx.pid")).expect("nginx wrote its pid file");
    let workers = children(master);
    assert!(!workers.is_empty(), "no workers found under the nginx master {master}");

    // SAFETY: geteuid has no preconditions.
    let we_are_root = unsafe { libc::geteuid() } == 0;
    assert_eq!(ids(master).0 == 0, we_are_root, "the master runs as we do");
    for &worker in &workers {
        let (uid, gid) = ids(worker);
        assert_ne!(uid, 0, "nginx worker {worker} runs as root");
        assert_ne!(gid, 0, "nginx worker {worker} runs in group root");
        if we_are_root {
            // The workers' account can use its temp directory, but cannot read the config, the
            // logs or the state, nor list the prefix or the data directory.
            assert!(succeeds_as(uid, gid, "ls", &prefix.join("temp/client_body")), "the workers cannot reach their temp directory");
            for closed in [prefix.join("nginx.conf"), prefix.join("logs/error.log"), app.data_dir.join("state.json")] {
                assert!(!succeeds_as(uid, gid, "cat", &closed), "the worker account can read {}", closed.display());
            }
            for closed in [&prefix, &app.data_dir, &prefix.join("logs")] {
                assert!(!succeeds_as(uid, gid, "ls", closed), "the worker account can list {}", closed.display());
            }
        }
    }

    // A signed-out browser's upload is buffered to a temp file before the redirect to login.
    let r = client().post(app.url("/upload")).body(vec![b'x'; UPLOAD]).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(location(&r), "/_simpleotp/login?next=%2Fupload");

    // The whole protected app works through these workers.
    let browser = client();
    let r = app.login(&browser, "/").await;
    assert_eq!(r.status(), 303, "login: {}", r.text().await.unwrap());
    let r = browser.get(app.url("/page")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "received 0");

    let r = browser.post(app.url("/upload")).body(vec![b'x'; UPLOAD]).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), format!("received {UPLOAD}"));

    let r = browser.get(app.url("/big")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), BIG_RESPONSE);

    // A login form between nginx's default body buffer (8k) and the login pages' 16k limit
    // (kept in memory) reaches the auth server, which refuses it as too large.
    let padding = "x".repeat(12 * 1024);
    let r = client()
        .post(app.route("login"))
        .header("origin", &app.base)
        .form(&[("code", "123456"), ("next", "/"), ("padding", &padding)])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "a 12k login form got {}", r.status());
}
