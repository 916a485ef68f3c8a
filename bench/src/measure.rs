//! Starting the parts, driving `wrk`, and reading CPU and memory from `/proc`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use simpleotp_engine::config::{Account, AppConfig, Config, Issuer, RoutePrefix};
use simpleotp_engine::nginx::{self, Nginx, NginxLayout};
use simpleotp_engine::protocol::{routes, session_cookie_name, NginxProof};
use simpleotp_engine::secret::SecretStore;
use simpleotp_engine::session::SessionStore;
use simpleotp_engine::state::{PersistedState, StateFile};
use simpleotp_engine::totp::{unix_now, Totp, TotpSecret};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// What to measure and for how long.
pub struct Plan {
    pub connections: Vec<u32>,
    pub duration: Duration,
    pub many_sessions: usize,
}

impl Plan {
    pub fn full() -> Plan {
        Plan { connections: vec![1, 16, 64, 256], duration: Duration::from_secs(10), many_sessions: 100_000 }
    }

    /// The CI smoke run: every code path, a few seconds, no thresholds.
    pub fn quick() -> Plan {
        Plan { connections: vec![16], duration: Duration::from_secs(2), many_sessions: 1_000 }
    }
}

/// One `wrk` run. Latencies in microseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WrkRun {
    pub requests: u64,
    pub duration_us: u64,
    #[serde(default)]
    pub connect_errors: u64,
    #[serde(default)]
    pub read_errors: u64,
    #[serde(default)]
    pub write_errors: u64,
    /// Responses that were not 2xx or 3xx.
    pub status_errors: u64,
    #[serde(default)]
    pub timeouts: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    #[serde(default)]
    pub p999_us: u64,
    #[serde(default)]
    pub max_us: u64,
    /// CPU used by the auth server process during the run, in % of one core.
    #[serde(default)]
    pub auth_cpu_percent: Option<f64>,
}

impl WrkRun {
    pub fn requests_per_second(&self) -> f64 {
        self.requests as f64 / (self.duration_us as f64 / 1e6)
    }

    pub fn errors(&self) -> u64 {
        self.connect_errors + self.read_errors + self.write_errors + self.status_errors + self.timeouts
    }
}

#[derive(Debug, Serialize)]
pub struct Level {
    pub connections: u32,
    pub a_unprotected: WrkRun,
    pub b_protected: WrkRun,
    pub c_noop_auth: WrkRun,
    pub d_no_cookie: WrkRun,
}

#[derive(Debug, Serialize)]
pub struct Burst {
    /// B at 16 connections while the wrong codes arrive.
    pub check_during_burst: WrkRun,
    /// The wrong codes: 64 connections posting to the login endpoint (all refused: 401, then 429).
    pub wrong_codes: WrkRun,
}

#[derive(Debug, Serialize)]
pub struct Memory {
    pub idle_rss_kib: u64,
    pub max_rss_under_load_kib: u64,
    pub sessions: usize,
    pub rss_with_sessions_kib: u64,
    /// B at 16 connections with that many sessions stored (the check must not slow down).
    pub check_with_sessions: WrkRun,
    pub startup_ms: f64,
    pub startup_with_sessions_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub kernel: String,
    pub nginx: String,
    pub wrk: String,
    pub duration_s: u64,
    /// `/proc/loadavg` when the run started: other work on the machine skews absolute numbers
    /// (the ratios, measured side by side, much less).
    pub load_average: String,
}

#[derive(Debug, Serialize)]
pub struct Results {
    pub machine: Machine,
    pub levels: Vec<Level>,
    pub burst: Burst,
    pub memory: Memory,
}

type BenchResult<T> = Result<T, String>;

/// `simpleotp serve` protecting the static app, as a user runs it, with a signed-in session.
pub struct Gateway {
    dir: tempfile::TempDir,
    bin_dir: PathBuf,
    _upstream: Child,
    pub app_addr: SocketAddr,
    pub port: u16,
    /// `simpleotp_session=TOKEN`
    pub cookie: String,
    pub totp: Totp,
    /// Tokens of the extra sessions stored before start.
    pub extra_tokens: Vec<String>,
    pub startup_ms: f64,
    serve: Child,
}

impl Gateway {
    pub async fn start(extra_sessions: usize) -> BenchResult<Gateway> {
        let bin_dir = std::env::current_exe().map_err(|e| e.to_string())?.parent().unwrap().to_path_buf();
        for binary in ["simpleotp", "bench-upstream"] {
            if !bin_dir.join(binary).exists() {
                return Err(format!(
                    "{binary} is missing next to the bench: build with `cargo build --release -p simpleotp-engine -p simpleotp-bench`"
                ));
            }
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (upstream, app_addr) = spawn_listener(&bin_dir.join("bench-upstream"), "static").await?;
        let secret = TotpSecret::generate();
        SecretStore::file(dir.path().join("secret")).store(&secret, false).map_err(|e| e.to_string())?;
        let totp = Totp::new(&secret, &Issuer::parse("bench")?, &Account::parse("bench")?);
        let port = free_port();
        let mut config = Config::default();
        config.apps.push(app("B", app_addr, port));
        config.save(&dir.path().join("config.toml")).map_err(|e| e.to_string())?;
        let extra_tokens = store_sessions(&dir.path().join("data"), port, extra_sessions)?;
        let (serve, startup_ms) = start_serve(&bin_dir.join("simpleotp"), dir.path(), port).await?;
        let token = login(port, &totp).await?;
        Ok(Gateway {
            dir,
            bin_dir,
            _upstream: upstream,
            app_addr,
            port,
            cookie: format!("{}={token}", session_cookie_name(port, false)),
            totp,
            extra_tokens,
            startup_ms,
            serve,
        })
    }

    pub fn pid(&self) -> u32 {
        self.serve.id().unwrap_or(0)
    }

    /// Stops the gateway, adds `count` sessions to its state file and starts it again. Returns
    /// the start-up time.
    pub async fn restart_with_sessions(&mut self, count: usize) -> BenchResult<f64> {
        stop(&mut self.serve).await;
        self.extra_tokens = store_sessions(&self.dir.path().join("data"), self.port, count)?;
        let (serve, startup_ms) = start_serve(&self.bin_dir.join("simpleotp"), self.dir.path(), self.port).await?;
        self.serve = serve;
        Ok(startup_ms)
    }
}

/// The highest throughput of B (16 connections, 5 s).
pub async fn max_rps(gateway: &Gateway) -> BenchResult<f64> {
    let wrk = Wrk { connections: 16, duration: Duration::from_secs(5) };
    let run = wrk.run(&format!("http://127.0.0.1:{}/", gateway.port), Some(&format!("Cookie: {}", gateway.cookie)), None).await?;
    Ok(run.requests_per_second())
}

/// Runs the whole plan. Everything started here is stopped when it returns (children are
/// killed on drop, the nginx instances stop on drop).
pub async fn run(plan: &Plan) -> BenchResult<Results> {
    let mut gateway = Gateway::start(0).await?;
    let bin_dir = gateway.bin_dir.clone();
    let (noop, noop_addr) = spawn_listener(&bin_dir.join("bench-upstream"), "noop-auth").await?;
    let app_addr = gateway.app_addr;
    let port_b = gateway.port;
    let startup_ms = gateway.startup_ms;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss_kib = rss_kib(gateway.pid());

    // A and C: the same generated config, in nginx instances of their own.
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let binary = nginx::discover(None).map_err(|e| e.to_string())?;
    let prefix = RoutePrefix::default();
    let port_a = free_port();
    let port_c = free_port();
    let apps_a = [app("A", app_addr, port_a)];
    let apps_c = [app("C", app_addr, port_c)];
    let layout_a = NginxLayout::new(dir.path().join("nginx-a"));
    let layout_c = NginxLayout::new(dir.path().join("nginx-c"));
    let unprotected = strip_auth(&nginx::render_config(noop_addr, &NginxProof::generate(), &prefix, &apps_a));
    let floor = nginx::render_config(noop_addr, &NginxProof::generate(), &prefix, &apps_c);
    let _nginx_a = Nginx::start(binary.clone(), layout_a, unprotected, &apps_a).await.map_err(|e| e.to_string())?;
    let _nginx_c = Nginx::start(binary, layout_c, floor, &apps_c).await.map_err(|e| e.to_string())?;

    let cookie_header = format!("Cookie: {}", gateway.cookie);
    let url = |port: u16| format!("http://127.0.0.1:{port}/");
    for (port, cookie, expected) in [(port_a, true, 200), (port_b, true, 200), (port_c, true, 200), (port_b, false, 302)] {
        let status = get_status(port, cookie.then_some(cookie_header.as_str())).await?;
        if status != expected {
            return Err(format!("sanity check: port {port} answered {status}, expected {expected}"));
        }
    }

    let serve_pid = gateway.pid();
    let noop_pid = noop.id().unwrap();
    let mut levels = Vec::new();
    let mut max_rss_under_load_kib = idle_rss_kib;
    for &connections in &plan.connections {
        eprintln!("{connections} connection(s)...");
        let wrk = Wrk { connections, duration: plan.duration };
        let a_unprotected = wrk.run(&url(port_a), Some(&cookie_header), None).await?;
        let (b_protected, rss) = wrk.run_sampling(&url(port_b), Some(&cookie_header), serve_pid).await?;
        max_rss_under_load_kib = max_rss_under_load_kib.max(rss);
        let c_noop_auth = wrk.run(&url(port_c), Some(&cookie_header), Some(noop_pid)).await?;
        let d_no_cookie = wrk.run(&url(port_b), None, Some(serve_pid)).await?;
        levels.push(Level { connections, a_unprotected, b_protected, c_noop_auth, d_no_cookie });
    }

    eprintln!("burst of wrong codes...");
    let check = Wrk { connections: 16, duration: plan.duration };
    let attack = Wrk { connections: 64, duration: plan.duration };
    let login_url = format!("http://127.0.0.1:{port_b}{}", prefix.route(routes::LOGIN));
    let url_b = url(port_b);
    let (check_during_burst, wrong_codes) =
        tokio::join!(check.run(&url_b, Some(&cookie_header), Some(serve_pid)), attack.run_script(&login_url, "wrong-codes.lua"),);
    let burst = Burst { check_during_burst: check_during_burst?, wrong_codes: wrong_codes? };

    eprintln!("{} sessions...", plan.many_sessions);
    let startup_with_sessions_ms = gateway.restart_with_sessions(plan.many_sessions).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_with_sessions_kib = rss_kib(gateway.pid());
    let token = gateway.extra_tokens[plan.many_sessions / 2].clone();
    let many_cookie = format!("Cookie: {}={token}", session_cookie_name(port_b, false));
    let check_with_sessions = check.run(&url(port_b), Some(&many_cookie), Some(gateway.pid())).await?;
    if check_with_sessions.requests == 0 || check_with_sessions.status_errors > 0 {
        return Err("the session stored with the others was not accepted".into());
    }

    Ok(Results {
        machine: machine(plan),
        levels,
        burst,
        memory: Memory {
            idle_rss_kib,
            max_rss_under_load_kib,
            sessions: plan.many_sessions,
            rss_with_sessions_kib,
            check_with_sessions,
            startup_ms,
            startup_with_sessions_ms,
        },
    })
}

fn app(name: &str, upstream: SocketAddr, port: u16) -> AppConfig {
    AppConfig::new(name.parse().unwrap(), format!("http://{upstream}").parse().unwrap(), format!("127.0.0.1:{port}").parse().unwrap())
}

/// The generated server block without its `auth_request`: scenario A is the same proxying,
/// unprotected.
fn strip_auth(config: &str) -> String {
    config
        .lines()
        .filter(|l| !l.trim_start().starts_with("auth_request ") && !l.trim_start().starts_with("error_page 401"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn spawn_listener(helper: &Path, mode: &str) -> BenchResult<(Child, SocketAddr)> {
    let mut child = Command::new(helper).arg(mode).stdout(Stdio::piped()).kill_on_drop(true).spawn().map_err(|e| e.to_string())?;
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next_line().await.map_err(|e| e.to_string())?.unwrap_or_default();
    let addr = line.strip_prefix("LISTENING ").and_then(|a| a.parse().ok()).ok_or(format!("{mode} did not start: {line:?}"))?;
    Ok((child, addr))
}

/// Starts `simpleotp serve` (config, secret and data in `dir`) and returns it with the time
/// until the first protected response.
async fn start_serve(binary: &Path, dir: &Path, port: u16) -> BenchResult<(Child, f64)> {
    let started = Instant::now();
    let child = Command::new(binary)
        .arg("serve")
        .arg("--config")
        .arg(dir.join("config.toml"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--secret-file")
        .arg(dir.join("secret"))
        .env("SIMPLEOTP_LOG", "warn")
        // No update check against the internet while measuring (a port nothing listens on).
        .env("SIMPLEOTP_UPDATE_URL", "http://127.0.0.1:9/latest.json")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| e.to_string())?;
    while started.elapsed() < Duration::from_secs(30) {
        if get_status(port, None).await == Ok(302) {
            return Ok((child, started.elapsed().as_secs_f64() * 1000.0));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Err("simpleotp serve did not answer within 30 s".into())
}

async fn stop(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(15), child.wait()).await;
}

/// One plain HTTP/1.1 exchange; returns the status code and the raw head.
async fn exchange(port: u16, request: String) -> BenchResult<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| e.to_string())?;
    stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or("no HTTP status")?;
    Ok((status, text))
}

async fn get_status(port: u16, header: Option<&str>) -> BenchResult<u16> {
    let extra = header.map(|h| format!("{h}\r\n")).unwrap_or_default();
    exchange(port, format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}Connection: close\r\n\r\n")).await.map(|r| r.0)
}

/// Signs in with the current code and returns the session token.
pub async fn login(port: u16, totp: &Totp) -> BenchResult<String> {
    let body = format!("code={}&next=%2F", totp.code_at(unix_now()));
    let request = format!(
        "POST /_simpleotp/login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (status, head) = exchange(port, request).await?;
    let prefix = format!("{}=", session_cookie_name(port, false));
    head.lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .find_map(|l| l.split_once(&prefix).map(|(_, rest)| rest.split(';').next().unwrap_or("").to_string()))
        .ok_or(format!("login failed with HTTP {status}"))
}

/// Adds `count` sessions to the state file in `data_dir` (the gateway must be stopped) and
/// returns their tokens.
fn store_sessions(data_dir: &Path, port: u16, count: usize) -> BenchResult<Vec<String>> {
    std::fs::create_dir_all(data_dir).map_err(|e| e.to_string())?;
    let file = StateFile::in_dir(data_dir);
    let state = file.load(unix_now()).state;
    let mut store = SessionStore::new(Default::default());
    let now = unix_now();
    let mut tokens = Vec::with_capacity(count);
    for i in 0..count {
        let ip = std::net::IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
        let (token, _) =
            store.create(port, Some(ip), "Mozilla/5.0 (X11; Linux x86_64) bench", simpleotp_engine::session::SignInMethod::Unknown, now);
        tokens.push(token.expose().to_string());
    }
    let mut sessions = state.sessions.clone();
    sessions.extend(store.snapshot());
    file.save(&PersistedState { sessions, ..state }).map_err(|e| e.to_string())?;
    Ok(tokens)
}

struct Wrk {
    connections: u32,
    duration: Duration,
}

impl Wrk {
    fn command(&self, url: &str, script: &str) -> Command {
        let mut command = Command::new("wrk");
        command
            .arg(format!("-t{}", self.connections.min(2)))
            .arg(format!("-c{}", self.connections))
            .arg(format!("-d{}s", self.duration.as_secs()))
            .arg("--timeout=5s")
            .arg("-s")
            .arg(script_path(script))
            .arg(url)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Runs wrk; with `cpu_of`, also measures that process's CPU during the run.
    async fn run(&self, url: &str, header: Option<&str>, cpu_of: Option<u32>) -> BenchResult<WrkRun> {
        let mut command = self.command(url, "report.lua");
        if let Some(header) = header {
            command.arg("-H").arg(header);
        }
        let before = cpu_of.map(|pid| (cpu_ticks(pid), Instant::now()));
        let output = command.output().await.map_err(|e| format!("cannot run wrk (apt-get install wrk): {e}"))?;
        let mut run = parse(&output.stdout, &output.stderr)?;
        if let (Some(pid), Some((ticks, at))) = (cpu_of, before) {
            let used = (cpu_ticks(pid) - ticks) as f64 / clock_ticks_per_second();
            run.auth_cpu_percent = Some(100.0 * used / at.elapsed().as_secs_f64());
        }
        Ok(run)
    }

    /// Like [`Wrk::run`] for the auth server, sampling its RSS every 100 ms; returns the peak.
    async fn run_sampling(&self, url: &str, header: Option<&str>, pid: u32) -> BenchResult<(WrkRun, u64)> {
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(rss_kib(pid)));
        let sampler = tokio::spawn({
            let peak = peak.clone();
            async move {
                loop {
                    peak.fetch_max(rss_kib(pid), std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        let run = self.run(url, header, Some(pid)).await;
        sampler.abort();
        Ok((run?, peak.load(std::sync::atomic::Ordering::Relaxed)))
    }

    async fn run_script(&self, url: &str, script: &str) -> BenchResult<WrkRun> {
        let output = self.command(url, script).output().await.map_err(|e| e.to_string())?;
        parse(&output.stdout, &output.stderr)
    }
}

fn script_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("wrk").join(name)
}

fn parse(stdout: &[u8], stderr: &[u8]) -> BenchResult<WrkRun> {
    let text = String::from_utf8_lossy(stdout);
    let json = text
        .lines()
        .find_map(|l| l.strip_prefix("BENCH_JSON "))
        .ok_or_else(|| format!("wrk printed no summary:\n{text}\n{}", String::from_utf8_lossy(stderr)))?;
    serde_json::from_str(json).map_err(|e| format!("{e}: {json}"))
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start at state (field 3).
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    field(14) + field(15)
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn machine(plan: &Plan) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let run = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .output()
            .map(|o| {
                format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string()
            })
            .unwrap_or_default()
    };
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        kernel: run("uname", &["-sr"]),
        nginx: run("nginx", &["-v"]),
        wrk: run("wrk", &["-v"]),
        duration_s: plan.duration.as_secs(),
        load_average: std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    }
}
