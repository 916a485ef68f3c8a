//! The managed nginx, end to end with the real nginx binary: a tiny auth server and app written
//! here stand in for SimpleOTP's auth server and a protected app.
//!
//! Every test uses its own prefix directory and free ports, so they run in parallel. Helpers
//! are local to this file on purpose (it may later be folded into a single test binary).

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener as StdListener};
#[cfg(target_os = "linux")]
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use simpleotp_engine::config::ListenAddr;
use simpleotp_engine::config::{AppConfig, RoutePrefix};
use simpleotp_engine::nginx::{discover, render_config, Nginx, NginxError, NginxLayout, NginxStatus, RestartPolicy};
use simpleotp_engine::protocol::NginxProof;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{free_port, init_tracing, on_free_port, process_alive, wait_until};

// ----------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 responder (keep-alive aware, since nginx keeps auth connections open).

#[derive(Debug, Clone)]
struct Req {
    method: String,
    target: String,
    headers: HashMap<String, String>,
    body_len: usize,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
}

struct Resp {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

fn resp(status: u16, body: impl Into<String>) -> Resp {
    Resp { status, headers: Vec::new(), body: body.into() }
}

type Handler = Arc<dyn Fn(&Req) -> Resp + Send + Sync>;

struct Server {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Req>>>,
}

impl Server {
    async fn start(handler: impl Fn(&Req) -> Resp + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log: Arc<Mutex<Vec<Req>>> = Arc::default();
        let handler: Handler = Arc::new(handler);
        let log2 = log.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_conn(stream, handler.clone(), log2.clone()));
            }
        });
        Server { addr, log }
    }

    fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }
}

async fn serve_conn(stream: TcpStream, handler: Handler, log: Arc<Mutex<Vec<Req>>>) {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).await.unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let body_len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut body = vec![0; body_len];
        if r.read_exact(&mut body).await.is_err() {
            return;
        }
        let req = Req { method, target, headers, body_len };
        log.lock().unwrap().push(req.clone());
        let resp = handler(&req);
        let mut out = format!("HTTP/1.1 {} X\r\nContent-Length: {}\r\n", resp.status, resp.body.len());
        for (k, v) in &resp.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(&resp.body);
        if w.write_all(out.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Stands in for the auth server: a request is allowed when it carries `X-Allow: yes`.
async fn auth_server() -> Server {
    Server::start(|req| {
        let path = req.target.split('?').next().unwrap_or("");
        match path {
            "/_simpleotp/check" if req.header("x-allow") == Some("yes") => resp(200, ""),
            "/_simpleotp/check" => {
                let next = req.header("x-simpleotp-original-uri").unwrap_or("").to_string();
                Resp { status: 401, headers: vec![("X-SimpleOTP-Login", format!("/_simpleotp/login?next={next}"))], body: String::new() }
            }
            _ => resp(200, format!("auth page {}", req.target)),
        }
    })
    .await
}

/// Stands in for the protected app: echoes what it received; `/own-401` answers 401 itself.
async fn app_server() -> Server {
    Server::start(|req| {
        if req.target == "/own-401" {
            return resp(401, "the app's own 401");
        }
        resp(200, format!("app: {} {} {}", req.method, req.target, req.body_len))
    })
    .await
}

// ----------------------------------------------------------------------------------------------
// Fixture.

fn app_config(name: &str, upstream: SocketAddr, port: u16) -> AppConfig {
    AppConfig::new(name.parse().unwrap(), format!("http://{upstream}").parse().unwrap(), format!("127.0.0.1:{port}").parse().unwrap())
}

struct Fixture {
    _dir: tempfile::TempDir,
    layout: NginxLayout,
    auth: Server,
    app: Server,
    apps: Vec<AppConfig>,
    binary: std::path::PathBuf,
}

impl Fixture {
    async fn new() -> Fixture {
        init_tracing();
        let dir = tempfile::tempdir().unwrap();
        let layout = NginxLayout::new(dir.path().join("wt-nginx-test"));
        let auth = auth_server().await;
        let app = app_server().await;
        let apps = vec![app_config("Jupyter", app.addr, free_port())];
        Fixture { _dir: dir, layout, auth, app, apps, binary: discover(None).expect("nginx must be installed") }
    }

    fn config(&self, apps: &[AppConfig]) -> String {
        render_config(self.auth.addr, &NginxProof::generate(), &RoutePrefix::default(), apps)
    }

    async fn start(&mut self) -> Nginx {
        self.start_with(RestartPolicy::default()).await
    }

    /// Starts nginx for `self.apps`. Should another program take one of their ports before
    /// nginx binds it, every app moves to a new port (on the same address) and nginx starts
    /// again; tests read the ports from `self.apps` after the start.
    async fn start_with(&mut self, policy: RestartPolicy) -> Nginx {
        let mut first = true;
        let (_, nginx) = on_free_port("nginx", async |port| {
            if !std::mem::take(&mut first) {
                let ports = std::iter::once(port).chain(std::iter::repeat_with(free_port));
                for (app, port) in self.apps.iter_mut().zip(ports) {
                    app.listen = ListenAddr(SocketAddr::new(app.listen.socket_addr().ip(), port));
                }
            }
            Nginx::start_with_policy(self.binary.clone(), self.layout.clone(), self.config(&self.apps), &self.apps, policy.clone()).await
        })
        .await;
        nginx
    }

    /// Starts nginx for `self.apps` on exactly their ports, for tests that arranged themselves
    /// who holds which port.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    async fn start_on_these_ports(&self) -> Nginx {
        Nginx::start(self.binary.clone(), self.layout.clone(), self.config(&self.apps), &self.apps).await.unwrap()
    }

    fn url(&self, i: usize, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.apps[i].listen.socket_addr().port())
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).no_proxy().timeout(Duration::from_secs(5)).build().unwrap()
}

async fn get_allowed(url: &str) -> reqwest::Response {
    client().get(url).header("X-Allow", "yes").send().await.unwrap()
}

/// Live processes in process group `pgid` (an nginx master we start leads its own group).
#[cfg(target_os = "linux")]
fn group_members(pgid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..].split_whitespace().collect();
        if fields.get(2) == Some(&pgid.to_string().as_str()) && fields[0] != "Z" {
            out.push(pid);
        }
    }
    out
}

/// The nginx master `pid` and, where the test can list them (Linux: its process group), its workers.
/// Elsewhere the workers are seen through the port they hold: it is free only once all are gone.
fn nginx_processes(pid: u32) -> Vec<u32> {
    #[cfg(target_os = "linux")]
    return group_members(pid);
    #[cfg(not(target_os = "linux"))]
    return vec![pid].into_iter().filter(|p| process_alive(*p)).collect();
}

#[cfg(unix)]
fn sigkill(pid: u32) {
    // SAFETY: plain kill(2).
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
}

// ----------------------------------------------------------------------------------------------
// Tests.

#[tokio::test]
async fn allowed_request_reaches_the_app() {
    let mut f = Fixture::new().await;
    let nginx = f.start().await;
    let pid = nginx.pid().unwrap();
    assert!(process_alive(pid));

    let r = client()
        .get(f.url(0, "/notebooks/a%2Fb?x=1"))
        .header("X-Allow", "yes")
        .header("X-SimpleOTP-Original-URI", "/forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The URI reaches the app exactly as sent, still percent-encoded.
    assert_eq!(r.text().await.unwrap(), "app: GET /notebooks/a%2Fb?x=1 0");

    let app_req = f.app.requests().pop().unwrap();
    let port = f.apps[0].listen.socket_addr().port();
    assert_eq!(app_req.header("host"), Some(format!("127.0.0.1:{port}").as_str()));
    assert_eq!(app_req.header("x-real-ip"), Some("127.0.0.1"));
    assert_eq!(app_req.header("x-forwarded-proto"), Some("http"));

    // The auth check saw the browser's headers, no body, and the URI nginx got, not the forged
    // original-URI header.
    let check = f.auth.requests().into_iter().find(|r| r.target == "/_simpleotp/check").unwrap();
    assert_eq!(check.header("x-allow"), Some("yes"));
    assert_eq!(check.header("host"), Some(format!("127.0.0.1:{port}").as_str()));
    assert_eq!(check.header("x-simpleotp-original-uri"), Some("/notebooks/a%2Fb?x=1"));

    // Uploads stream through without a size limit (beyond the 16k of the login pages).
    let body = vec![b'x'; 3 * 1024 * 1024];
    let r = client().post(f.url(0, "/upload")).header("X-Allow", "yes").body(body).send().await.unwrap();
    if r.status() != 200 {
        eprintln!("{}", std::fs::read_to_string(f.layout.error_log()).unwrap());
    }
    assert_eq!(r.text().await.unwrap(), format!("app: POST /upload {}", 3 * 1024 * 1024));

    // The app's own 401 is passed through, not turned into a login redirect.
    let r = get_allowed(&f.url(0, "/own-401")).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.text().await.unwrap(), "the app's own 401");

    nginx.stop().await;
}

#[tokio::test]
async fn denied_request_is_redirected_through_the_auth_server() {
    let mut f = Fixture::new().await;
    let nginx = f.start().await;

    let r = client().post(f.url(0, "/tree/x?a=1&b=%20")).header("X-SimpleOTP-Original-URI", "/forged").body("data").send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/_simpleotp/login?next=/tree/x?a=1&b=%20");
    // Also for a large upload: the body limit of the login pages must not apply here.
    let r = client().post(f.url(0, "/upload")).body(vec![b'x'; 3 * 1024 * 1024]).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/_simpleotp/login?next=/upload");
    assert!(f.app.requests().is_empty(), "the app must not see an unauthenticated request");

    // nginx asked `check` (no body, the URL the browser asked for, the client's forged copy
    // replaced) and redirected itself: nothing else reached the auth server.
    let checks = f.auth.requests();
    assert!(checks.iter().all(|r| r.target == "/_simpleotp/check" && r.body_len == 0), "{checks:?}");
    assert_eq!(checks[0].header("x-simpleotp-original-uri"), Some("/tree/x?a=1&b=%20"));

    // Gateway pages go to the auth server without auth; the control API is never exposed.
    let r = client().get(f.url(0, "/_simpleotp/login?next=/")).header("X-SimpleOTP-Original-URI", "/forged").send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "auth page /_simpleotp/login?next=/");
    let login = f.auth.requests().into_iter().find(|r| r.target.starts_with("/_simpleotp/login")).unwrap();
    assert_eq!(login.header("x-simpleotp-original-uri"), None);
    assert_eq!(client().get(f.url(0, "/_simpleotp/control/unlock")).send().await.unwrap().status(), 404);
    // The check endpoint is internal.
    assert_eq!(client().get(f.url(0, "/_simpleotp/check")).header("X-Allow", "yes").send().await.unwrap().status(), 404);

    nginx.stop().await;
}

#[tokio::test]
async fn port_in_use_is_reported_with_app_and_port() {
    let f = Fixture::new().await;
    let holder = StdListener::bind(f.apps[0].listen.socket_addr()).unwrap();
    let err = Nginx::start(f.binary.clone(), f.layout.clone(), f.config(&f.apps), &f.apps).await.err().unwrap();
    let port = f.apps[0].listen.socket_addr().port();
    assert!(matches!(&err, NginxError::PortInUse { app, addr } if app == "Jupyter" && addr.port() == port), "{err:?}");
    assert!(err.to_string().contains(&format!("port {port} for app \"Jupyter\"")), "{err}");
    drop(holder);
    // (`nginx -t` leaves an empty pid file behind; only a started master writes its pid.)
    let pid = std::fs::read_to_string(f.layout.pid_path()).unwrap_or_default();
    assert_eq!(pid.trim(), "", "nginx must not have been started");
}

#[tokio::test]
async fn reload_adds_an_app_without_restarting_the_master() {
    let mut f = Fixture::new().await;
    let nginx = f.start().await;
    let pid = nginx.pid().unwrap();

    on_free_port("the second app (a reload)", async |port| {
        let mut apps = f.apps.clone();
        apps.push(app_config("Second", f.app.addr, port));
        nginx.reload(f.config(&apps), &apps).await.map(|()| f.apps = apps)
    })
    .await;
    assert_eq!(nginx.pid(), Some(pid), "a reload keeps the master");
    let r = get_allowed(&f.url(1, "/second")).await;
    assert_eq!(r.text().await.unwrap(), "app: GET /second 0");
    assert_eq!(get_allowed(&f.url(0, "/first")).await.status(), 200);

    // A new port that another program holds is refused before anything changes.
    let holder = StdListener::bind("127.0.0.1:0").unwrap();
    let mut taken = f.apps.clone();
    taken.push(app_config("Third", f.app.addr, holder.local_addr().unwrap().port()));
    let before = std::fs::read_to_string(f.layout.conf_path()).unwrap();
    let err = nginx.reload(f.config(&taken), &taken).await.unwrap_err();
    assert!(matches!(&err, NginxError::PortInUse { app, .. } if app == "Third"), "{err:?}");
    assert_eq!(std::fs::read_to_string(f.layout.conf_path()).unwrap(), before);

    nginx.stop().await;
}

#[tokio::test]
async fn invalid_reload_keeps_serving() {
    let mut f = Fixture::new().await;
    let nginx = f.start().await;
    let pid = nginx.pid().unwrap();
    let before = std::fs::read_to_string(f.layout.conf_path()).unwrap();

    let bad = f.config(&f.apps).replace("access_log off;", "access_log off;\n    no_such_directive 1;");
    let err = nginx.reload(bad, &f.apps).await.unwrap_err();
    let NginxError::ConfigInvalid { message } = &err else { panic!("{err:?}") };
    assert!(message.contains("unknown directive \"no_such_directive\""), "{message}");

    assert_eq!(std::fs::read_to_string(f.layout.conf_path()).unwrap(), before, "the running config is untouched");
    assert!(!f.layout.candidate_conf_path().exists());
    assert_eq!(nginx.pid(), Some(pid));
    assert_eq!(get_allowed(&f.url(0, "/")).await.status(), 200);
    nginx.stop().await;
}

#[cfg(target_os = "linux")] // SIGKILL, the workers found by process group
#[tokio::test]
async fn killed_master_is_restarted() {
    let mut f = Fixture::new().await;
    let nginx = f.start().await;
    let old = nginx.pid().unwrap();
    let workers: Vec<u32> = group_members(old).into_iter().filter(|p| *p != old).collect();
    assert!(!workers.is_empty(), "nginx has a worker in its process group");

    sigkill(old);
    let mut status = nginx.status();
    tokio::time::timeout(Duration::from_secs(5), status.wait_for(|s| matches!(s, NginxStatus::Running { pid } if *pid != old)))
        .await
        .expect("nginx was not restarted within 5 s")
        .unwrap();
    let new = nginx.pid().unwrap();
    assert_ne!(new, old);
    // The orphaned workers of the killed master are gone (they would hold the port).
    for w in workers {
        assert!(!process_alive(w), "worker {w} of the killed master survived");
    }
    assert_eq!(get_allowed(&f.url(0, "/again")).await.text().await.unwrap(), "app: GET /again 0");
    nginx.stop().await;
}

#[cfg(unix)] // SIGKILL
#[tokio::test]
async fn crash_loop_ends_in_failed_without_busy_looping() {
    let mut f = Fixture::new().await;
    let policy = RestartPolicy { initial_backoff: Duration::from_millis(100), max_failures: 4, ..RestartPolicy::default() };
    let nginx = f.start_with(policy).await;
    let good = std::fs::read_to_string(f.layout.conf_path()).unwrap();

    // A config nginx cannot start with, then a crash: every restart fails at once.
    std::fs::write(f.layout.conf_path(), "this_is_not_nginx;\n").unwrap();
    let started = Instant::now();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut status = nginx.status();
    let seen2 = seen.clone();
    let watcher = tokio::spawn(async move {
        while status.changed().await.is_ok() {
            let s = status.borrow_and_update().clone();
            seen2.lock().unwrap().push(s);
        }
    });
    sigkill(nginx.pid().unwrap());
    let mut status = nginx.status();
    let failed = tokio::time::timeout(Duration::from_secs(8), status.wait_for(|s| matches!(s, NginxStatus::Failed { .. })))
        .await
        .expect("no Failed state within 8 s")
        .unwrap()
        .clone();
    let elapsed = started.elapsed();
    let NginxStatus::Failed { message } = failed else { unreachable!() };
    assert!(message.contains("unknown directive \"this_is_not_nginx\""), "{message}");
    // Backoff 100 + 200 + 400 ms before the three restart attempts: no busy loop.
    assert!(elapsed >= Duration::from_millis(700), "gave up too fast: {elapsed:?}");

    // It stays down: no more attempts. A negative that only time can show (the supervisor
    // reports no event for "did not restart"): the test waits as long as the next backoff
    // would have been (800 ms), had the supervisor gone on.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(matches!(*nginx.status().borrow(), NginxStatus::Failed { .. }));
    let restarts = seen.lock().unwrap().iter().filter(|s| matches!(s, NginxStatus::Restarting { .. })).count();
    assert_eq!(restarts, 3, "{:?}", seen.lock().unwrap());
    assert_eq!(nginx.pid(), None);

    // A valid configuration brings it back.
    let _ = good;
    nginx.reload(f.config(&f.apps), &f.apps).await.unwrap();
    let mut status = nginx.status();
    tokio::time::timeout(Duration::from_secs(5), status.wait_for(|s| matches!(s, NginxStatus::Running { .. })))
        .await
        .expect("not running again after a good reload")
        .unwrap();
    assert_eq!(get_allowed(&f.url(0, "/back")).await.status(), 200);
    nginx.stop().await;
    watcher.abort();
}

#[tokio::test]
async fn stop_leaves_no_nginx_behind() {
    let mut f = Fixture::new().await;
    let nginx = f.start().await;
    let pid = nginx.pid().unwrap();
    #[cfg(target_os = "linux")]
    assert!(group_members(pid).len() >= 2, "master and worker");

    nginx.stop().await;
    assert_eq!(*nginx.status().borrow(), NginxStatus::Stopped);
    assert_eq!(nginx.pid(), None);
    assert!(!process_alive(pid));
    assert!(nginx_processes(pid).is_empty(), "workers left: {:?}", nginx_processes(pid));
    assert!(!f.layout.pid_path().exists());
    // The port is free again and nothing restarted it: the test holds the port from now on,
    // so a restart at any later moment would fail to bind and show in the status, which must
    // still say Stopped at the end (no fixed wait for "nothing happened").
    let _held = StdListener::bind(f.apps[0].listen.socket_addr()).unwrap();
    assert!(matches!(nginx.reload(f.config(&f.apps), &f.apps).await, Err(NginxError::Stopped)));
    nginx.stop().await; // idempotent
    assert_eq!(*nginx.status().borrow(), NginxStatus::Stopped);
    assert_eq!(nginx.pid(), None);
}

#[cfg(target_os = "linux")] // nginx started in a process group of its own, workers by group
#[tokio::test]
async fn stale_nginx_from_a_previous_run_is_cleaned_up() {
    let f = Fixture::new().await;
    // A previous run that "crashed": nginx started by hand on the same prefix as we start it (in
    // the prefix, with relative names), in its own session so nothing ties it to us.
    f.layout.prepare().unwrap();
    std::fs::write(f.layout.conf_path(), f.config(&f.apps)).unwrap();
    let mut stale = std::process::Command::new(&f.binary)
        .current_dir(&f.layout.prefix_dir)
        .args(["-p", "./", "-c", "nginx.conf", "-e", "logs/error.log"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let stale_pid = stale.id();
    wait_until("the stale nginx to write its pid file", Duration::from_secs(5), async || {
        std::fs::read_to_string(f.layout.pid_path()).is_ok_and(|t| t.trim() == stale_pid.to_string())
    })
    .await;
    assert_eq!(get_allowed(&f.url(0, "/")).await.status(), 200);

    // Without cleanup this would fail with "port in use" (so no second try on other ports).
    let nginx = f.start_on_these_ports().await;
    assert_ne!(nginx.pid(), Some(stale_pid));
    assert!(!process_alive(stale_pid));
    assert!(stale.wait().unwrap().success(), "the stale nginx was asked to quit gracefully");
    assert!(group_members(stale_pid).is_empty());
    assert_eq!(get_allowed(&f.url(0, "/")).await.status(), 200);
    nginx.stop().await;
}

#[cfg(unix)] // `sleep` as the unrelated process
#[tokio::test]
async fn pid_file_of_an_unrelated_process_is_left_alone() {
    let mut f = Fixture::new().await;
    f.layout.prepare().unwrap();
    let mut sleeper = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    std::fs::write(f.layout.pid_path(), format!("{}\n", sleeper.id())).unwrap();
    let nginx = f.start().await;
    assert!(process_alive(sleeper.id()), "an unrelated process named by a stale pid file must not be signalled");
    nginx.stop().await;
    sleeper.kill().unwrap();
    let _ = sleeper.wait();
}

/// The engine dies by SIGKILL: nginx must follow within a few seconds. The test re-executes
/// this test binary in a child mode (`SIMPLEOTP_TEST_CHILD=1`) that starts nginx, prints its
/// pid and sleeps; the parent kills that child and watches nginx go away.
#[tokio::test]
async fn nginx_dies_with_the_engine() {
    const NAME: &str = "nginx::nginx_dies_with_the_engine";
    if std::env::var_os("SIMPLEOTP_TEST_CHILD").is_some() {
        let mut f = Fixture::new().await;
        let nginx = f.start().await;
        println!("NGINX_PID={} PORT={}", nginx.pid().unwrap(), f.apps[0].listen.socket_addr().port());
        tokio::time::sleep(Duration::from_secs(60)).await;
        return;
    }

    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
        .env("SIMPLEOTP_TEST_CHILD", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // A generous wait, not a speed test: under Wine, beside the release builds of a full run, the
    // child once took more than 10 s to start nginx.
    let line = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.starts_with("NGINX_PID=") {
                return line;
            }
        }
        panic!("the child exited without starting nginx");
    })
    .await
    .expect("the child did not start nginx within 30 s");
    let fields: HashMap<&str, u32> =
        line.split_whitespace().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k, v.parse().unwrap())).collect();
    let (pid, port) = (fields["NGINX_PID"], fields["PORT"] as u16);
    assert!(process_alive(pid));
    let workers = nginx_processes(pid);
    #[cfg(target_os = "linux")]
    assert!(workers.len() >= 2);

    child.start_kill().unwrap(); // SIGKILL (Windows: TerminateProcess): the engine gets no chance to clean up
    child.wait().await.unwrap();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(5);
    while workers.iter().any(|p| process_alive(*p)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let survivors: Vec<u32> = workers.iter().copied().filter(|p| process_alive(*p)).collect();
    #[cfg(unix)]
    for p in &survivors {
        sigkill(*p); // don't leave them behind when the assertion fails
    }
    assert!(survivors.is_empty(), "nginx processes {survivors:?} outlived the engine by 5 s");
    eprintln!("nginx and its workers were gone {:?} after the engine died", started.elapsed());
    // And the port is free again (Wine, on a loaded machine, once took over 2 s to let it go
    // after the processes were gone; Linux takes milliseconds).
    wait_until("the port to be released", Duration::from_secs(10), async || StdListener::bind(("127.0.0.1", port)).is_ok()).await;
}

/// The layout only ever points inside its prefix.
#[test]
fn layout_is_inside_the_prefix() {
    let l = NginxLayout::new("/x/y");
    for p in [l.conf_path(), l.pid_path(), l.error_log(), l.candidate_conf_path()] {
        assert!(p.starts_with(&l.prefix_dir), "{}", p.display());
    }
}

/// WebSockets pass through (Upgrade/Connection forwarded, HTTP/1.1 to the app), after auth.
#[tokio::test]
async fn websockets_pass_through_after_auth() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

    let mut f = Fixture::new().await;
    // An echoing WebSocket app.
    let ws_app = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_addr = ws_app.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = ws_app.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else { return };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() && ws.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    f.apps = vec![app_config("Sockets", ws_addr, free_port())];
    let nginx = f.start().await;
    let url = format!("ws://127.0.0.1:{}/api/kernels/1/channels", f.apps[0].listen.socket_addr().port());

    // Without a session the upgrade is refused with the login redirect.
    let err = tokio_tungstenite::connect_async(url.as_str()).await.unwrap_err();
    assert!(err.to_string().contains("302"), "{err}");

    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut().insert("X-Allow", "yes".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(Message::text("ping")).await.unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(echoed.into_text().unwrap().as_str(), "ping");
    ws.close(None).await.unwrap();
    nginx.stop().await;
}

/// An upstream with a path makes that path the start page; everything else passes through
/// unchanged. Also: an app listening on IPv6 loopback.
#[tokio::test]
async fn upstream_path_is_the_start_page_and_ipv6_listen_works() {
    let mut f = Fixture::new().await;
    f.apps = vec![AppConfig::new(
        "Lab".parse().unwrap(),
        format!("http://{}/lab", f.app.addr).parse().unwrap(),
        format!("[::1]:{}", free_port()).parse().unwrap(),
    )];
    let nginx = f.start().await;
    let base = format!("http://[::1]:{}", f.apps[0].listen.socket_addr().port());

    let r = get_allowed(&format!("{base}/")).await;
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/lab");
    let r = get_allowed(&format!("{base}/lab/tree?x=1")).await;
    assert_eq!(r.text().await.unwrap(), "app: GET /lab/tree?x=1 0");
    let r = get_allowed(&format!("{base}/api/status")).await;
    assert_eq!(r.text().await.unwrap(), "app: GET /api/status 0");
    // Unauthenticated deep links still go to the login page.
    let r = client().get(format!("{base}/lab/tree")).send().await.unwrap();
    assert_eq!(r.headers()["location"], "/_simpleotp/login?next=/lab/tree");
    nginx.stop().await;
}

/// PR_SET_PDEATHSIG fires when the *thread* that forked nginx exits. Starting nginx from a
/// short-lived thread must therefore not kill it when that thread ends.
#[cfg(target_os = "linux")] // PR_SET_PDEATHSIG is Linux's
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_survives_the_thread_that_started_it() {
    let f = Fixture::new().await;
    let handle = tokio::runtime::Handle::current();
    let (binary, layout, config, apps) = (f.binary.clone(), f.layout.clone(), f.config(&f.apps), f.apps.clone());
    let (nginx, thread_id) = std::thread::spawn(move || {
        // SAFETY: gettid(2) has no arguments and cannot fail.
        let thread_id = unsafe { libc::gettid() };
        (handle.block_on(Nginx::start(binary, layout, config, &apps)).unwrap(), thread_id)
    })
    .join()
    .unwrap();
    let pid = nginx.pid().unwrap();
    // Instead of a fixed wait: the thread is gone from /proc only after its exit is complete,
    // and the kernel sends the parent-death signal before that. Then nginx must still act on a
    // signal sent after it: a reload that adds an app opens the new port (a master killed by
    // the parent-death signal would never get to it, and the reload would fail).
    wait_until("the starting thread to be gone", Duration::from_secs(5), async || {
        !std::path::Path::new(&format!("/proc/self/task/{thread_id}")).exists()
    })
    .await;
    on_free_port("a second app (a reload)", async |port| {
        let apps = [f.apps.clone(), vec![app_config("Second", f.app.addr, port)]].concat();
        nginx.reload(f.config(&apps), &apps).await
    })
    .await;
    assert_eq!(nginx.pid(), Some(pid), "nginx was killed (and restarted) when the starting thread exited");
    assert!(process_alive(pid));
    assert_eq!(get_allowed(&f.url(0, "/")).await.status(), 200);
    nginx.stop().await;
}
